/* http_server.c - listeners, evhttp set-up, routing, JSON replies, the
 * API key snapshot and its reloads (see http_server.h).
 *
 * RFC 9110 15.5.6 (405 with Allow), RFC 6750 3 (401 with
 * WWW-Authenticate: Bearer), RFC 9112 9.3 (persistent connections, which
 * evhttp keeps unless the client or an error closes them). */
#include "http/http_server.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/config.h"
#include "core/control.h"
#include "core/listen_socket.h"
#include "core/log.h"
#include "core/workers.h"
#include "http/http_private.h"
#include "smtp/server.h"
#include "store/apikeys.h"
#include "store/directory.h"

#define BODY_MARGIN (64 * 1024) /* JSON syntax and fields around the message */
#define BODY_HARD_MAX ((uint64_t)1 << 31) /* whatever max_message_size says */

static void healthz(struct api_request *r);

/* The API.  A path may have one entry per method (or set of methods);
 * a prefix entry ("/v1/messages/") takes what follows it as a parameter. */
static const struct http_route routes[] = {
	{ "/v1/messages", EVHTTP_REQ_POST, 1, api_messages_post },
	{ "/v1/messages/", EVHTTP_REQ_GET, 1, api_messages_get },
	{ "/v1/events", EVHTTP_REQ_GET, 1, api_events_list },
	{ "/v1/events/stream", EVHTTP_REQ_GET, 1, api_events_stream },
	{ "/v1/stats", EVHTTP_REQ_GET, 1, api_stats_get },
	{ "/v1/suppressions", EVHTTP_REQ_GET, 1, api_suppressions_list },
	{ "/v1/suppressions", EVHTTP_REQ_POST, 1, api_suppressions_post },
	{ "/v1/suppressions/", EVHTTP_REQ_DELETE, 1, api_suppressions_delete },
	{ "/v1/webhooks", EVHTTP_REQ_GET, 1, api_webhooks_list },
	{ "/v1/webhooks", EVHTTP_REQ_POST, 1, api_webhooks_post },
	{ "/v1/webhooks/", EVHTTP_REQ_DELETE, 1, api_webhooks_delete },
	{ "/metrics", EVHTTP_REQ_GET | EVHTTP_REQ_HEAD, 0, api_metrics },
	{ "/healthz", EVHTTP_REQ_GET | EVHTTP_REQ_HEAD, 0, healthz },
};

/* Answers sent, by status, for /metrics (tern_http_requests_total).  One
 * server per process, on the loop thread only. */
static unsigned long reply_counts[HTTP_STATUS_MAX];

/* ---- replies ---- */

void http_count_reply(int status)
{
	if (status >= 100 && status < HTTP_STATUS_MAX)
		reply_counts[status]++;
}

const unsigned long *http_reply_counts(void)
{
	return reply_counts;
}

void http_reply_empty(struct evhttp_request *req, int status)
{
	http_count_reply(status);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Cache-Control", "no-store");
	evhttp_send_reply(req, status, NULL, NULL);
}

void http_reply_json(struct evhttp_request *req, int status, json_t *body)
{
	http_count_reply(status);
	struct evbuffer *buf = evbuffer_new();
	char *text = body ? json_dumps(body, JSON_COMPACT) : strdup("{}");
	json_decref(body);
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	evhttp_add_header(h, "Content-Type", "application/json");
	evhttp_add_header(h, "Cache-Control", "no-store");
	if (!buf || !text || evbuffer_add_printf(buf, "%s\n", text) < 0) {
		/* Out of memory: the status alone still tells the client. */
		log_error("http: out of memory writing a %d reply", status);
		if (buf)
			evbuffer_drain(buf, evbuffer_get_length(buf));
	}
	evhttp_send_reply(req, status, NULL, buf);
	if (buf)
		evbuffer_free(buf);
	free(text);
}

void http_reply_error(struct evhttp_request *req, int status, const char *code, const char *fmt,
		      ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	json_t *text = json_string(msg);
	if (!text) {
		/* Truncation cut a UTF-8 sequence, or a byte was never text. */
		char safe[sizeof msg];
		text = json_string(log_sanitize(safe, sizeof safe, msg, strlen(msg)));
	}
	json_t *body = json_pack("{s:{s:s,s:o}}", "error", "code", code, "message", text);
	http_reply_json(req, status, body);
}

/* ---- pending requests ---- */

void http_pending_add(struct http_server *srv, struct http_pending *p)
{
	p->prev = NULL;
	p->next = srv->pending;
	if (srv->pending)
		srv->pending->prev = p;
	srv->pending = p;
}

void http_pending_remove(struct http_server *srv, struct http_pending *p)
{
	if (p->prev)
		p->prev->next = p->next;
	else if (srv->pending == p)
		srv->pending = p->next;
	if (p->next)
		p->next->prev = p->prev;
	p->prev = p->next = NULL;
}

/* ---- routing ---- */

static const struct {
	unsigned method;
	const char *name;
} method_names[] = {
	{ EVHTTP_REQ_GET, "GET" },	 { EVHTTP_REQ_HEAD, "HEAD" },   { EVHTTP_REQ_POST, "POST" },
	{ EVHTTP_REQ_PUT, "PUT" },	 { EVHTTP_REQ_DELETE, "DELETE" },
	{ EVHTTP_REQ_PATCH, "PATCH" }, { EVHTTP_REQ_OPTIONS, "OPTIONS" },
};

static const char *method_name(unsigned m)
{
	for (size_t i = 0; i < sizeof method_names / sizeof method_names[0]; i++)
		if (method_names[i].method == m)
			return method_names[i].name;
	return "?";
}

/* path_matches - is PATH the route path RP, or under it when RP ends in
 * '/' (with something after the slash)? */
static int path_matches(const char *rp, const char *path)
{
	size_t n = strlen(rp);
	return rp[n - 1] == '/' ? strncmp(path, rp, n) == 0 && path[n] : strcmp(path, rp) == 0;
}

/* route_for - the route whose path matches PATH and that answers METHOD,
 * or NULL; *ALLOWED gets the methods of every route of that path (0: no
 * such path). */
static const struct http_route *route_for(const char *path, unsigned method, unsigned *allowed)
{
	const struct http_route *found = NULL;
	*allowed = 0;
	for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
		if (!path_matches(routes[i].path, path))
			continue;
		*allowed |= routes[i].methods;
		if (!found && (routes[i].methods & method))
			found = &routes[i];
	}
	return found;
}

static void method_not_allowed(struct evhttp_request *req, const char *path, unsigned methods)
{
	char allow[96] = "", safe[128];
	for (size_t i = 0; i < sizeof method_names / sizeof method_names[0]; i++)
		if (methods & method_names[i].method) {
			size_t n = strlen(allow);
			snprintf(allow + n, sizeof allow - n, "%s%s", n ? ", " : "",
				 method_names[i].name);
		}
	evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", allow);
	http_reply_error(req, 405, "method_not_allowed", "%s is not allowed on %s (allowed: %s)",
			 method_name(evhttp_request_get_command(req)),
			 log_sanitize(safe, sizeof safe, path, strlen(path)), allow);
}

static int defer(struct http_server *srv, struct evhttp_request *req);
static void start_reload(struct http_server *srv);

/* keys_stale - is the directory newer than the accounts the keys were
 * read with?  Then a user may have been deleted and added again, and the
 * old keys still in the snapshot must not act for the new user. */
static int keys_stale(const struct http_server *srv)
{
	return srv->keys &&
	       directory_version(srv->dir) > apikey_set_accounts_version(srv->keys);
}

/* dispatch - find the route, check the method and the key, hand over to
 * the handler.  WAITED: the request was held for a key reload already. */
static void dispatch(struct http_server *srv, struct evhttp_request *req, int waited)
{
	struct api_request r = { .srv = srv, .req = req };
	struct evhttp_connection *conn = evhttp_request_get_connection(req);
	char *peer = NULL;
	ev_uint16_t port = 0;
	if (conn)
		evhttp_connection_get_peer(conn, &peer, &port);
	snprintf(r.peer, sizeof r.peer, "%s", peer ? peer : "?");
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	r.path = uri ? evhttp_uri_get_path(uri) : NULL;
	if (!r.path || r.path[0] != '/') {
		http_reply_error(req, 400, "bad_request", "the request target is not a path");
		return;
	}
	unsigned method = evhttp_request_get_command(req);
	char safe[128];
	log_debug("http %s: %s %s", r.peer, method_name(method),
		  log_sanitize(safe, sizeof safe, r.path, strlen(r.path)));
	unsigned allowed;
	const struct http_route *rt = route_for(r.path, method, &allowed);
	if (!allowed) {
		http_reply_error(req, 404, "not_found", "no such resource: %s", safe);
		return;
	}
	if (!rt) {
		method_not_allowed(req, r.path, allowed);
		return;
	}
	if (rt->needs_key && !waited && keys_stale(srv)) {
		defer(srv, req);
		return;
	}
	if (rt->needs_key && api_authenticate(&r) < 0)
		return;
	rt->handler(&r);
}

/* on_request - evhttp's callback for every complete request. */
static void on_request(struct evhttp_request *req, void *arg)
{
	dispatch(arg, req, 0);
}

/* healthz - 200 while the daemon can accept mail: the spool and queue
 * are open and the API keys are loaded. */
static void healthz(struct api_request *r)
{
	const struct http_context *ctx = r->srv->ctx;
	if (!ctx->spool || !ctx->queue || !r->srv->keys) {
		http_reply_error(r->req, 503, "unavailable", "not ready to accept mail");
		return;
	}
	http_reply_json(r->req, 200, json_pack("{s:s}", "status", "ok"));
}

/* ---- listeners ---- */

struct http_server *http_server_new(const struct http_context *ctx, struct settings *s,
				    char *err, size_t errlen)
{
	struct http_server *srv = calloc(1, sizeof *srv);
	const struct config *cfg = &s->cfg;
	size_t n = cfg->nlistens ? cfg->nlistens : 1;
	if (!srv || !(srv->fds = calloc(n, sizeof *srv->fds)) ||
	    !(srv->bound = calloc(n, sizeof(struct evhttp_bound_socket *)))) {
		if (srv)
			free(srv->fds);
		free(srv);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	srv->ctx = ctx;
	srv->settings = settings_ref(s);
	srv->dir = directory_empty();
	for (size_t i = 0; i < cfg->nlistens; i++) {
		if (cfg->listens[i].kind != LISTEN_HTTP)
			continue;
		int fd = listen_socket(&cfg->listens[i], err, errlen);
		if (fd < 0) {
			http_server_free(&srv);
			return NULL;
		}
		srv->fds[srv->nfds++] = fd;
	}
	return srv;
}

/* body_limit - the largest request body: the biggest message allowed,
 * base64-encoded (4/3), with room for the JSON around it. */
static ev_ssize_t body_limit(const struct config *cfg)
{
	uint64_t n = cfg->max_message_size / 3 * 4 + BODY_MARGIN;
	return (ev_ssize_t)(n < BODY_HARD_MAX ? n : BODY_HARD_MAX);
}

/* apply_limits - the settings' limits for connections accepted from now. */
static void apply_limits(struct http_server *srv)
{
	const struct config *cfg = &srv->settings->cfg;
	evhttp_set_max_body_size(srv->http, body_limit(cfg));
	evhttp_set_max_headers_size(srv->http, HTTP_MAX_HEADERS);
	evhttp_set_timeout(srv->http, (int)(cfg->timeout_command ? cfg->timeout_command : 60));
}

int http_server_start(struct http_server *srv)
{
	char err[512];
	const char *db = config_db_path(&srv->settings->cfg);
	if (!db || !(srv->keys = apikey_set_load(db, err, sizeof err))) {
		log_error("http: cannot load the API keys: %s", db ? err : "the store is not SQLite");
		return -1;
	}
	if (!(srv->http = evhttp_new(srv->ctx->base))) {
		log_error("http: out of memory");
		return -1;
	}
	evhttp_set_allowed_methods(srv->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
						      EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
						      EVHTTP_REQ_PATCH | EVHTTP_REQ_OPTIONS);
	/* A body over the limit is read and thrown away before the 413, so
	 * the client sees the answer instead of a reset connection. */
	evhttp_set_flags(srv->http, EVHTTP_SERVER_LINGERING_CLOSE);
	apply_limits(srv);
	evhttp_set_gencb(srv->http, on_request, srv);
	for (size_t i = 0; i < srv->nfds; i++) {
		srv->bound[i] = evhttp_accept_socket_with_handle(srv->http, srv->fds[i]);
		if (!srv->bound[i]) {
			log_error("http: cannot accept on listener %zu", i);
			return -1;
		}
		srv->fds[i] = -1; /* evhttp's now */
	}
	return 0;
}

void http_server_set_settings(struct http_server *srv, struct settings *s)
{
	settings_unref(&srv->settings);
	srv->settings = settings_ref(s);
	if (srv->http)
		apply_limits(srv);
}

void http_server_set_directory(struct http_server *srv, struct directory *d)
{
	directory_unref(&srv->dir);
	srv->dir = directory_ref(d);
	/* Accounts changed: read the keys again (requests wait for it). */
	if (srv->http && keys_stale(srv))
		start_reload(srv);
}

/* ---- API key reloads ---- */

struct key_reload {
	struct http_server *srv; /* NULL once the server is gone */
	unsigned long seq;
	char *db_path;
	struct apikey_set *set;
	char err[256];
};

/* A control request answered when reload number SEQ has finished. */
struct key_waiter {
	struct control_request *req;
	unsigned long seq;
	struct key_waiter *next;
};

/* finish_waiters - answer every waiter whose reload (SEQ or older, or
 * all when SEQ is 0) is done; ERR says it failed. */
static void finish_waiters(struct http_server *srv, unsigned long seq, const char *err)
{
	for (struct key_waiter **w = &srv->waiters; *w;) {
		struct key_waiter *x = *w;
		if (seq && x->seq > seq) {
			w = &x->next;
			continue;
		}
		*w = x->next;
		control_finish(x->req, err);
		free(x);
	}
}

/* A request held until reload number SEQ has finished. */
struct deferred {
	struct evhttp_request *req;
	unsigned long seq;
	struct deferred *next;
};

/* release_deferred - dispatch the requests held for reload SEQ or older
 * (all when SEQ is 0), or answer them 503 when the keys could not be read. */
static void release_deferred(struct http_server *srv, unsigned long seq, int ok)
{
	struct deferred *ready = NULL, **tail = &ready;
	for (struct deferred **d = &srv->deferred; *d;) {
		struct deferred *x = *d;
		if (seq && x->seq > seq) {
			d = &x->next;
			continue;
		}
		*d = x->next;
		x->next = NULL;
		*tail = x;
		tail = &x->next;
	}
	while (ready) {
		struct deferred *x = ready;
		ready = x->next;
		if (ok)
			dispatch(srv, x->req, 1);
		else
			http_reply_error(x->req, 503, "unavailable", "the API keys cannot be read");
		free(x);
	}
}

static void reload_work(void *arg)
{
	struct key_reload *j = arg;
	j->set = apikey_set_load(j->db_path, j->err, sizeof j->err);
}

static void reload_done(void *arg)
{
	struct key_reload *j = arg;
	struct http_server *srv = j->srv;
	if (srv) {
		int ok = j->set != NULL;
		srv->reload = NULL;
		if (ok) {
			apikey_set_free(&srv->keys);
			srv->keys = j->set;
			j->set = NULL;
			log_info("API keys reloaded (%zu active)", apikey_set_count(srv->keys));
		} else {
			log_error("API keys reload failed, keeping the old keys: %s", j->err);
		}
		finish_waiters(srv, j->seq, ok ? NULL : j->err);
		release_deferred(srv, j->seq, ok);
		if (srv->reload_again) {
			srv->reload_again = 0;
			start_reload(srv);
		}
	}
	apikey_set_free(&j->set);
	free(j->db_path);
	free(j);
}

/* start_reload - a reload on the pool, or a note to run one after the
 * reload running now (which may have read the store before the change). */
static void start_reload(struct http_server *srv)
{
	if (srv->reload) {
		srv->reload_again = 1;
		return;
	}
	const char *db = config_db_path(&srv->settings->cfg);
	struct key_reload *j = calloc(1, sizeof *j);
	if (!j || !db || !(j->db_path = strdup(db))) {
		if (j)
			free(j);
		log_error("API keys reload: %s", db ? "out of memory" : "the store is not SQLite");
		finish_waiters(srv, 0, "cannot reload the API keys now");
		release_deferred(srv, 0, 0);
		return;
	}
	j->srv = srv;
	j->seq = ++srv->reloads_started;
	srv->reload = j;
	if (workers_submit(srv->ctx->pool, reload_work, reload_done, j) < 0) {
		srv->reload = NULL;
		free(j->db_path);
		free(j);
		finish_waiters(srv, 0, "cannot reload the API keys now");
		release_deferred(srv, 0, 0);
	}
}

/* defer - hold REQ until a key reload that starts from now has finished. */
static int defer(struct http_server *srv, struct evhttp_request *req)
{
	struct deferred *x = calloc(1, sizeof *x), **tail = &srv->deferred;
	if (!x) {
		http_reply_error(req, 500, "internal", "out of memory");
		return -1;
	}
	x->req = req;
	x->seq = srv->reloads_started + 1;
	while (*tail)
		tail = &(*tail)->next;
	*tail = x;
	start_reload(srv);
	return 0;
}

void http_server_reload_keys(struct http_server *srv)
{
	start_reload(srv);
}

void http_server_control_reload_keys(void *ctx, struct control_request *req, const char *args)
{
	struct http_server *srv = ctx;
	struct key_waiter *w = calloc(1, sizeof *w);
	if (!w) {
		control_finish(req, "out of memory");
		return;
	}
	/* The next reload to start is the first that reads the store after
	 * this command: a running one may have read it before. */
	w->req = req;
	w->seq = srv->reloads_started + 1;
	w->next = srv->waiters;
	srv->waiters = w;
	start_reload(srv);
}

/* ---- shutdown ---- */

void http_server_stop_accepting(struct http_server *srv)
{
	for (size_t i = 0; i < srv->nfds; i++) {
		if (srv->bound[i])
			evhttp_del_accept_socket(srv->http, srv->bound[i]);
		else if (srv->fds[i] >= 0)
			close(srv->fds[i]);
		srv->bound[i] = NULL;
		srv->fds[i] = -1;
	}
}

void http_server_free(struct http_server **psrv)
{
	struct http_server *srv = *psrv;
	if (!srv)
		return;
	*psrv = NULL;
	http_server_stop_accepting(srv);
	/* Requests still waiting lose their evhttp request with the
	 * connections below: tell their owners first. */
	while (srv->pending) {
		struct http_pending *p = srv->pending;
		http_pending_remove(srv, p);
		p->detach(p);
	}
	if (srv->reload)
		srv->reload->srv = NULL; /* its completion frees it */
	/* Held requests go with their connections in evhttp_free. */
	while (srv->deferred) {
		struct deferred *x = srv->deferred;
		srv->deferred = x->next;
		free(x);
	}
	/* Control requests still waiting are closed by control_free. */
	while (srv->waiters) {
		struct key_waiter *w = srv->waiters;
		srv->waiters = w->next;
		free(w);
	}
	if (srv->http)
		evhttp_free(srv->http);
	api_read_pool_unref(&srv->reads);
	apikey_set_free(&srv->keys);
	settings_unref(&srv->settings);
	directory_unref(&srv->dir);
	free(srv->fds);
	free(srv->bound);
	free(srv);
}
