/* server.c - SMTP listeners and connection limits.
 *
 * Limits are applied at accept, before a session exists: the global
 * max_connections and max_connections_per_ip.  A refused client gets one
 * "421 4.7.0" line written straight to its socket (non-blocking; if it does
 * not fit, the client loses nothing it was promised) and is closed. */
#include "smtp/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "auth/throttle.h"
#include "core/listen_socket.h"
#include "core/log.h"
#include "smtp/session.h"
#include "store/directory.h"

/* Per-IP counts: open addressing keyed by the address bytes. */
struct ip_count {
	uint8_t addr[16];
	unsigned count; /* 0 = free slot */
};

struct listener {
	struct smtp_server *srv;
	enum listen_kind kind;
	int fd;
	struct evconnlistener *ev;
	struct event *resume; /* re-enables accepting after a pause */
	unsigned long pauses; /* accept failures for lack of descriptors */
};

struct session_node {
	struct session *s;
	struct session_node *prev, *next;
};

struct smtp_server {
	const struct smtp_context *ctx;
	struct settings *settings;
	struct directory *dir;
	struct listener *listeners;
	size_t nlisteners;
	unsigned nsessions;
	unsigned long connections_total; /* accepted since start */
	struct session_node *sessions;
	struct ip_count *ips;
	size_t ipcap; /* power of two */
	struct throttle *auth_throttle;
	struct throttle *conn_rate; /* new connections per address per minute */
};

struct throttle *smtp_server_throttle(struct smtp_server *srv)
{
	return srv->auth_throttle;
}

struct settings *settings_ref(struct settings *s)
{
	if (s)
		s->refs++;
	return s;
}

void settings_unref(struct settings **ps)
{
	struct settings *s = *ps;
	*ps = NULL;
	if (s && --s->refs == 0) {
		config_free(&s->cfg);
		free(s);
	}
}

static void peer_key(const struct sockaddr *sa, uint8_t key[16])
{
	memset(key, 0, 16);
	if (sa->sa_family == AF_INET)
		memcpy(key + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
	else if (sa->sa_family == AF_INET6)
		memcpy(key, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
}

/* ip_slot - the slot of KEY, or the free slot where it would go.  The
 * table is kept at most half full, so a free slot always exists. */
static struct ip_count *ip_slot(struct smtp_server *srv, const uint8_t key[16])
{
	uint32_t h = 2166136261u;
	for (int i = 0; i < 16; i++)
		h = (h ^ key[i]) * 16777619u;
	for (size_t i = h & (srv->ipcap - 1);; i = (i + 1) & (srv->ipcap - 1)) {
		struct ip_count *c = &srv->ips[i];
		if (c->count == 0 || memcmp(c->addr, key, 16) == 0)
			return c;
	}
}

/* ip_remove - free a slot and re-seat the run after it (linear probing). */
static void ip_remove(struct smtp_server *srv, struct ip_count *c)
{
	size_t i = (size_t)(c - srv->ips);
	c->count = 0;
	for (size_t j = (i + 1) & (srv->ipcap - 1); srv->ips[j].count;
	     j = (j + 1) & (srv->ipcap - 1)) {
		struct ip_count moved = srv->ips[j];
		srv->ips[j].count = 0;
		*ip_slot(srv, moved.addr) = moved;
	}
}

static int ip_grow(struct smtp_server *srv)
{
	size_t oldcap = srv->ipcap;
	struct ip_count *old = srv->ips;
	size_t cap = oldcap ? oldcap * 2 : 64;
	struct ip_count *ips = calloc(cap, sizeof *ips);
	if (!ips)
		return -1;
	srv->ips = ips;
	srv->ipcap = cap;
	for (size_t i = 0; i < oldcap; i++)
		if (old[i].count)
			*ip_slot(srv, old[i].addr) = old[i];
	free(old);
	return 0;
}

static void refuse(int fd, const char *line)
{
	ssize_t n = send(fd, line, strlen(line), MSG_DONTWAIT | MSG_NOSIGNAL);
	(void)n;
	close(fd);
}

static void on_accept(struct evconnlistener *ev, evutil_socket_t fd, struct sockaddr *sa,
		      int salen, void *arg)
{
	struct listener *l = arg;
	struct smtp_server *srv = l->srv;
	const struct config *cfg = &srv->settings->cfg;
	char peer[INET6_ADDRSTRLEN] = "?";
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)sa)->sin_addr, peer, sizeof peer);
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)sa)->sin6_addr, peer, sizeof peer);
	if (srv->nsessions >= cfg->max_connections) {
		log_warn("refused %s: max_connections (%u) reached", peer, cfg->max_connections);
		refuse(fd, "421 4.7.0 Too many connections, try again later\r\n");
		return;
	}
	if ((srv->nsessions + 1) * 2 > srv->ipcap && ip_grow(srv) < 0) {
		refuse(fd, "421 4.3.0 Out of memory\r\n");
		return;
	}
	time_t now = time(NULL);
	if (throttle_locked(srv->conn_rate, sa, now)) {
		log_warn("refused %s: max_connection_rate (%u/min) reached", peer,
			 cfg->max_connection_rate);
		refuse(fd, "421 4.7.0 Too many connections from your address, slow down\r\n");
		return;
	}
	/* Counted as a "failure" in a one-minute window: at the limit the
	 * address is shut out for the rest of the minute. */
	throttle_failure(srv->conn_rate, sa, now);
	uint8_t key[16];
	peer_key(sa, key);
	struct ip_count *c = ip_slot(srv, key);
	if (c->count >= cfg->max_connections_per_ip) {
		log_warn("refused %s: max_connections_per_ip (%u) reached", peer,
			 cfg->max_connections_per_ip);
		refuse(fd, "421 4.7.0 Too many connections from your address\r\n");
		return;
	}
	struct session_node *node = calloc(1, sizeof *node);
	struct session *s = node ? session_new(srv, srv->ctx, srv->settings, srv->dir, l->kind,
					       fd, sa, (socklen_t)salen) : NULL;
	if (!s) {
		free(node);
		refuse(fd, "421 4.3.0 Out of memory\r\n");
		return;
	}
	memcpy(c->addr, key, 16);
	c->count++;
	node->s = s;
	node->next = srv->sessions;
	if (srv->sessions)
		srv->sessions->prev = node;
	srv->sessions = node;
	srv->nsessions++;
	srv->connections_total++;
}

void smtp_server_session_closed(struct smtp_server *srv, struct session *s)
{
	uint8_t key[16];
	peer_key((struct sockaddr *)&s->peer, key);
	struct ip_count *c = ip_slot(srv, key);
	if (c->count && --c->count == 0)
		ip_remove(srv, c);
	for (struct session_node *n = srv->sessions; n; n = n->next) {
		if (n->s != s)
			continue;
		if (n->prev)
			n->prev->next = n->next;
		else
			srv->sessions = n->next;
		if (n->next)
			n->next->prev = n->prev;
		free(n);
		break;
	}
	srv->nsessions--;
	session_free(s);
}

struct smtp_server *smtp_server_new(const struct smtp_context *ctx, struct settings *s,
				    char *err, size_t errlen)
{
	struct smtp_server *srv = calloc(1, sizeof *srv);
	if (!srv || ip_grow(srv) < 0) {
		free(srv);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	srv->ctx = ctx;
	srv->settings = settings_ref(s);
	srv->auth_throttle = throttle_new(65536, s->cfg.auth_lockout_failures,
					  s->cfg.auth_lockout_time, s->cfg.auth_lockout_time);
	srv->conn_rate = throttle_new(65536, s->cfg.max_connection_rate, 60, 60);
	if (!srv->auth_throttle || !srv->conn_rate) {
		snprintf(err, errlen, "out of memory");
		smtp_server_free(&srv);
		return NULL;
	}
	srv->dir = directory_empty();
	const struct config *cfg = &s->cfg;
	srv->listeners = calloc(cfg->nlistens ? cfg->nlistens : 1, sizeof *srv->listeners);
	for (size_t i = 0; srv->listeners && i < cfg->nlistens; i++) {
		enum listen_kind k = cfg->listens[i].kind;
		if (k != LISTEN_SMTP && k != LISTEN_SUBMISSION && k != LISTEN_SMTPS)
			continue;
		struct listener *l = &srv->listeners[srv->nlisteners];
		l->srv = srv;
		l->kind = k;
		if ((l->fd = listen_socket(&cfg->listens[i], err, errlen)) < 0) {
			smtp_server_free(&srv);
			return NULL;
		}
		srv->nlisteners++;
	}
	return srv;
}

/* on_resume - accept again after the pause below. */
static void on_resume(evutil_socket_t fd, short what, void *arg)
{
	struct listener *l = arg;
	if (l->ev)
		evconnlistener_enable(l->ev);
}

/* on_accept_error - accept(2) failed.  Out of descriptors or memory
 * (EMFILE, ENFILE, ENOBUFS, ENOMEM) the pending connection stays in the
 * backlog and accept would fail again at once: stop accepting for a
 * moment instead of spinning (and logging) until a descriptor frees up. */
static void on_accept_error(struct evconnlistener *ev, void *arg)
{
	struct listener *l = arg;
	int err = EVUTIL_SOCKET_ERROR();
	if (err != EMFILE && err != ENFILE && err != ENOBUFS && err != ENOMEM)
		return; /* ECONNABORTED and the like: the next accept is fine */
	if (l->pauses++ % 100 == 0)
		log_error("accept: %s; pausing new connections for 100 ms (%lu times so far)",
			  strerror(err), l->pauses);
	const struct timeval pause = { 0, 100 * 1000 };
	if (!l->resume)
		l->resume = evtimer_new(l->srv->ctx->base, on_resume, l);
	if (l->resume) {
		evconnlistener_disable(ev);
		evtimer_add(l->resume, &pause);
	}
}

int smtp_server_start(struct smtp_server *srv)
{
	for (size_t i = 0; i < srv->nlisteners; i++) {
		struct listener *l = &srv->listeners[i];
		l->ev = evconnlistener_new(srv->ctx->base, on_accept, l, LEV_OPT_CLOSE_ON_FREE, -1,
					   l->fd);
		if (!l->ev)
			return -1;
		l->fd = -1; /* owned by the evconnlistener now */
		evconnlistener_set_error_cb(l->ev, on_accept_error);
	}
	return 0;
}

void smtp_server_set_settings(struct smtp_server *srv, struct settings *s)
{
	settings_unref(&srv->settings);
	srv->settings = settings_ref(s);
}

void smtp_server_set_directory(struct smtp_server *srv, struct directory *d)
{
	directory_unref(&srv->dir);
	srv->dir = directory_ref(d);
}

void smtp_server_stop_accepting(struct smtp_server *srv)
{
	for (size_t i = 0; i < srv->nlisteners; i++) {
		struct listener *l = &srv->listeners[i];
		if (l->ev)
			evconnlistener_free(l->ev);
		else if (l->fd > 0)
			close(l->fd);
		if (l->resume)
			event_free(l->resume);
		l->resume = NULL;
		l->ev = NULL;
		l->fd = -1;
	}
}

unsigned long smtp_server_connections_total(const struct smtp_server *srv)
{
	return srv->connections_total;
}

unsigned smtp_server_sessions(const struct smtp_server *srv)
{
	return srv->nsessions;
}

void smtp_server_free(struct smtp_server **psrv)
{
	struct smtp_server *srv = *psrv;
	if (!srv)
		return;
	*psrv = NULL;
	smtp_server_stop_accepting(srv);
	while (srv->sessions)
		smtp_server_session_closed(srv, srv->sessions->s);
	free(srv->listeners);
	free(srv->ips);
	throttle_free(&srv->auth_throttle);
	throttle_free(&srv->conn_rate);
	settings_unref(&srv->settings);
	directory_unref(&srv->dir);
	free(srv);
}
