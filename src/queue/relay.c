/* relay.c - remote delivery: destinations, their limits and holds, the
 * requests waiting for them, and the public functions (see relay.h; one
 * connection's life is relay_conn.c).
 *
 * Dispatching goes through one deferred event (the "kick"), so a callback
 * is never called from inside relay_submit, and a connection that closes
 * never walks lists that its caller is walking. */
#include "queue/relay.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "queue/relay_private.h"

void relay_kick(struct relay *r)
{
	event_active(r->kick, 0, 0);
}

/* relay_result - a result made up here. */
void relay_result(struct smtp_client_result *res, int code, const char *enh, const char *fmt, ...)
{
	va_list ap;
	memset(res, 0, sizeof *res);
	res->code = code;
	snprintf(res->enhanced, sizeof res->enhanced, "%s", enh);
	va_start(ap, fmt);
	vsnprintf(res->text, sizeof res->text, fmt, ap);
	va_end(ap);
	res->local = 1;
}

const char *relay_safe(char *buf, size_t len, const char *s)
{
	return log_sanitize(buf, len, s, strlen(s));
}

/* ---- requests ---- */

void relay_wait_push(struct rdest *d, struct relay_req *q, int front)
{
	q->dest = d;
	q->conn = NULL;
	if (front) {
		q->next = d->wait_head;
		d->wait_head = q;
		if (!d->wait_tail)
			d->wait_tail = q;
	} else {
		q->next = NULL;
		if (d->wait_tail)
			d->wait_tail->next = q;
		else
			d->wait_head = q;
		d->wait_tail = q;
	}
	d->nwait++;
}

struct relay_req *relay_wait_pop(struct rdest *d)
{
	struct relay_req *q = d->wait_head;
	if (!q)
		return NULL;
	d->wait_head = q->next;
	if (!d->wait_head)
		d->wait_tail = NULL;
	d->nwait--;
	q->next = NULL;
	return q;
}

/* relay_finish - hand OUT to Q's owner and forget Q. */
void relay_finish(struct relay_req *q, const struct relay_outcome *out)
{
	relay_done_cb cb = q->cb;
	void *arg = q->arg;
	free(q);
	cb(arg, out);
}

/* relay_finish_all - Q's recipients all get RES. */
void relay_finish_all(struct relay_req *q, const struct smtp_client_result *res, int attempted,
		      time_t not_before)
{
	size_t n = q->req.msg.nrcpts;
	struct smtp_client_result *all = calloc(n, sizeof *all);
	struct relay_outcome out = {.rcpts = all,
				    .nrcpts = n,
				    .remote_mta = "",
				    .attempted = attempted,
				    .not_before = not_before};
	if (!all) {
		/* No memory for the copies: one result stands for all. */
		out.rcpts = res;
		out.nrcpts = 1;
	}
	for (size_t i = 0; all && i < n; i++)
		all[i] = *res;
	relay_finish(q, &out);
	free(all);
}

/* relay_fail_waiting - every request waiting for D gets RES for each recipient. */
void relay_fail_waiting(struct rdest *d, const struct smtp_client_result *res, int attempted,
			time_t not_before)
{
	struct relay_req *list = d->wait_head;
	d->wait_head = d->wait_tail = NULL;
	d->nwait = 0;
	while (list) {
		struct relay_req *q = list;
		list = q->next;
		relay_finish_all(q, res, attempted, not_before);
	}
}

/* ---- destinations ---- */

static struct rdest *dest_get(struct relay *r, const char *domain, const char *source)
{
	for (struct rdest *d = r->dests; d; d = d->next)
		if (!strcasecmp(d->domain, domain) && !strcmp(d->source, source))
			return d;
	struct rdest *d = calloc(1, sizeof *d);
	if (!d)
		return NULL;
	d->r = r;
	snprintf(d->domain, sizeof d->domain, "%s", domain);
	snprintf(d->source, sizeof d->source, "%s", source);
	d->next = r->dests;
	r->dests = d;
	return d;
}

/* dest_gc - forget destinations with nothing left to remember. */
static void dest_gc(struct relay *r)
{
	struct rdest **pp = &r->dests;
	while (*pp) {
		struct rdest *d = *pp;
		if (!d->conns && !d->nwait && !d->hold.failures) {
			*pp = d->next;
			free(d);
		} else {
			pp = &d->next;
		}
	}
}

/* relay_dest_failed - no address of D could be reached: hold D back and defer
 * what waits for it. */
void relay_dest_failed(struct rdest *d, const struct smtp_client_result *why)
{
	time_t now = time(NULL);
	char dom[128], text[300];
	retry_domain_failed(&d->hold, &d->r->policy, now);
	d->last_fail = *why;
	if (d->last_fail.code >= 500 || d->last_fail.code < 400) {
		/* A 5xx greeting from every host is still no verdict on the
		 * recipients: RFC 5321 3.1 lets the client go elsewhere later. */
		d->last_fail.code = 421;
		snprintf(d->last_fail.enhanced, sizeof d->last_fail.enhanced, "4.4.1");
	}
	log_warn("relay: %s failed (%d %s %s); held for %lds after %u failure(s)",
		 relay_safe(dom, sizeof dom, d->domain), why->code, why->enhanced,
		 relay_safe(text, sizeof text, why->text),
		 (long)(d->hold.hold_until - now), d->hold.failures);
	relay_fail_waiting(d, &d->last_fail, 1, d->hold.hold_until);
}

/* reclaim_idle - make room under the global limit by closing an idle
 * connection of another destination; 1 when one was closed. */
static int reclaim_idle(struct relay *r, const struct rdest *want)
{
	for (struct rdest *d = r->dests; d; d = d->next) {
		if (d == want)
			continue;
		for (struct rconn *k = d->conns; k; k = k->next) {
			if (k->state != C_IDLE)
				continue;
			smtp_client_quit(&k->c);
			relay_conn_close(k);
			return 1;
		}
	}
	return 0;
}

/* dispatch - give D's waiting requests to idle connections, open more when
 * the limits allow, or defer them at once while D is held. */
static void dispatch(struct rdest *d)
{
	struct relay *r = d->r;
	if (d->nwait && !d->conns && retry_domain_held(&d->hold, time(NULL))) {
		struct smtp_client_result res = d->last_fail;
		char text[SMTP_CLIENT_TEXT_MAX];
		snprintf(text, sizeof text, "%s", d->last_fail.text);
		snprintf(res.text, sizeof res.text, "not tried, destination held: %.400s", text);
		res.local = 1;
		relay_fail_waiting(d, &res, 0, d->hold.hold_until);
		return;
	}
	struct rconn *next;
	for (struct rconn *k = d->conns; k; k = next) {
		next = k->next;
		if (k->state != C_IDLE)
			continue;
		if (!smtp_client_ready(k->c))
			relay_conn_close(k); /* the peer went away while it was idle */
		else if (d->nwait)
			relay_conn_ready(k);
	}
	while (d->nwait > d->nopening && d->nconns < r->per_dest_max &&
	       (r->nconns < r->global_max || reclaim_idle(r, d)))
		relay_dest_open(d);
}

static void on_kick(evutil_socket_t fd, short what, void *arg)
{
	struct relay *r = arg;
	for (struct rdest *d = r->dests; d; d = d->next)
		if (d->nwait)
			dispatch(d);
	dest_gc(r);
}

/* ---- public ---- */

/* smarthost_target - relay_host "HOST:PORT" as mx_resolve's argument (a
 * name, or an address literal) and a port.  0 or -1. */
static int smarthost_target(struct relay *r, const char *hostport)
{
	char host[MX_NAME_MAX + 1], target[MX_NAME_MAX + 8];
	const char *colon = strrchr(hostport, ':');
	if (!colon || colon == hostport || (size_t)(colon - hostport) >= sizeof host)
		return -1;
	snprintf(host, sizeof host, "%.*s", (int)(colon - hostport), hostport);
	char *end;
	unsigned long port = strtoul(colon + 1, &end, 10);
	if (*end || !port || port > 65535)
		return -1;
	unsigned char bin[16];
	size_t n = strlen(host);
	if (host[0] == '[' && host[n - 1] == ']') {
		host[n - 1] = '\0';
		if (inet_pton(AF_INET6, host + 1, bin) != 1)
			return -1;
		snprintf(target, sizeof target, "[IPv6:%s]", host + 1);
	} else if (inet_pton(AF_INET, host, bin) == 1) {
		snprintf(target, sizeof target, "[%s]", host);
	} else {
		snprintf(target, sizeof target, "%s", host);
	}
	r->smarthost = strdup(target);
	r->smarthost_port = (unsigned)port;
	return r->smarthost ? 0 : -1;
}

int relay_set_policy(struct relay *r, const struct retry_policy *p)
{
	size_t n = p->nintervals;
	unsigned *iv = calloc(n ? n : 1, sizeof *iv);
	if (!iv)
		return -1;
	if (n)
		memcpy(iv, p->intervals, n * sizeof *iv);
	free(r->intervals);
	r->intervals = iv;
	r->policy = *p;
	r->policy.intervals = iv;
	return 0;
}

static char *dup_opt(const char *s, int *failed)
{
	char *d = s ? strdup(s) : NULL;
	if (s && !d)
		*failed = 1;
	return d;
}

struct relay *relay_new(const struct relay_config *cfg, char *err, size_t errlen)
{
	struct relay *r = calloc(1, sizeof *r);
	int failed = !r;
	if (r) {
		r->base = cfg->base;
		r->ssl_ctx = cfg->ssl_ctx;
		r->port = cfg->remote_port ? cfg->remote_port : 25;
		r->per_dest_max = cfg->per_dest_max ? cfg->per_dest_max : RELAY_PER_DEST_MAX;
		r->global_max = cfg->global_max ? cfg->global_max : RELAY_GLOBAL_MAX;
		r->idle_keep_ms = cfg->idle_keep_ms ? cfg->idle_keep_ms : RELAY_IDLE_KEEP_MS;
		r->timeouts = cfg->timeouts;
		r->hostname = dup_opt(cfg->hostname ? cfg->hostname : "localhost", &failed);
		r->source_ip = dup_opt(cfg->source_ip, &failed);
		r->auth_user = dup_opt(cfg->relay_auth_user, &failed);
		r->auth_password = dup_opt(cfg->relay_auth_password, &failed);
		r->kick = event_new(r->base, -1, 0, on_kick, r);
		failed |= relay_set_policy(r, &cfg->policy) < 0 || !r->kick;
	}
	if (failed) {
		snprintf(err, errlen, "relay: out of memory");
		relay_free(&r);
		return NULL;
	}
	struct sockaddr_storage ss;
	socklen_t len;
	if (r->source_ip && relay_source_addr(r->source_ip, &ss, &len) < 0) {
		snprintf(err, errlen, "relay: source_ip %.64s is not an address", r->source_ip);
		relay_free(&r);
		return NULL;
	}
	if (cfg->relay_host && smarthost_target(r, cfg->relay_host) < 0) {
		snprintf(err, errlen, "relay: relay_host %.300s is not HOST:PORT", cfg->relay_host);
		relay_free(&r);
		return NULL;
	}
	char why[256];
	if (!(r->mx = mx_resolver_new(r->base, &cfg->dns, why, sizeof why))) {
		snprintf(err, errlen, "relay: DNS: %s", why);
		relay_free(&r);
		return NULL;
	}
	return r;
}

void relay_free(struct relay **pr)
{
	struct relay *r = *pr;
	if (!r)
		return;
	*pr = NULL;
	/* First, so no lookup answers into a connection freed below. */
	mx_resolver_free(&r->mx);
	while (r->dests) {
		struct rdest *d = r->dests;
		r->dests = d->next;
		struct relay_req *q;
		while ((q = relay_wait_pop(d)))
			free(q);
		while (d->conns) {
			struct rconn *k = d->conns;
			d->conns = k->next;
			free(k->cur);
			if (k->c)
				smtp_client_free(&k->c);
			mx_result_free(&k->mx);
			if (k->idle)
				event_free(k->idle);
			free(k);
		}
		free(d);
	}
	if (r->kick)
		event_free(r->kick);
	free(r->intervals);
	free(r->hostname);
	free(r->source_ip);
	free(r->auth_user);
	if (r->auth_password)
		explicit_bzero(r->auth_password, strlen(r->auth_password));
	free(r->auth_password);
	free(r->smarthost);
	free(r);
}

struct relay_req *relay_submit(struct relay *r, const struct relay_request *req, relay_done_cb cb,
			       void *arg)
{
	const char *source = req->source_ip ? req->source_ip : r->source_ip;
	struct sockaddr_storage ss;
	socklen_t len;
	if (!req->domain || !*req->domain || strlen(req->domain) > MX_NAME_MAX || !cb ||
	    !req->msg.nrcpts || req->msg.nrcpts > SMTP_CLIENT_RCPTS_MAX)
		return NULL;
	if (source &&
	    (strlen(source) >= RELAY_SOURCE_MAX || relay_source_addr(source, &ss, &len) < 0)) {
		char a[80];
		log_warn("relay: source address %s is not an IP address; using the default",
			 relay_safe(a, sizeof a, source));
		source = r->source_ip;
	}
	struct relay_req *q = calloc(1, sizeof *q);
	struct rdest *d =
		q ? dest_get(r, r->smarthost ? r->smarthost : req->domain, source ? source : "")
		  : NULL;
	if (!d) {
		free(q);
		return NULL;
	}
	q->req = *req;
	q->cb = cb;
	q->arg = arg;
	relay_wait_push(d, q, 0);
	relay_kick(r);
	return q;
}

void relay_cancel(struct relay *r, struct relay_req *q)
{
	if (!q)
		return;
	struct rdest *d = q->dest;
	if (q->conn) {
		/* Being sent: the connection goes with it (a half-done
		 * transaction cannot be taken back). */
		q->conn->cur = NULL;
		relay_conn_close(q->conn);
		free(q);
		return;
	}
	for (struct relay_req **pp = &d->wait_head; *pp; pp = &(*pp)->next) {
		if (*pp != q)
			continue;
		*pp = q->next;
		if (d->wait_tail == q) {
			d->wait_tail = NULL;
			for (struct relay_req *w = d->wait_head; w; w = w->next)
				d->wait_tail = w;
		}
		d->nwait--;
		break;
	}
	free(q);
	relay_kick(r);
}

void relay_flush(struct relay *r)
{
	for (struct rdest *d = r->dests; d; d = d->next)
		retry_domain_succeeded(&d->hold);
	relay_kick(r);
}

unsigned relay_connections(const struct relay *r)
{
	return r->nconns;
}

/* ms_of - SECS in milliseconds, 0 kept (the client's default), bounded so
 * that a day's worth cannot overflow. */
static unsigned ms_of(unsigned secs)
{
	return secs > UINT_MAX / 1000 ? UINT_MAX / 1000 * 1000 : secs * 1000;
}

/* at_most - CAP_MS, or MS when that is set and shorter. */
static unsigned at_most(unsigned ms, unsigned cap_ms)
{
	return ms && ms < cap_ms ? ms : cap_ms;
}

/* relay_timeouts - the client's timeouts from the relay_timeout_* settings. */
struct smtp_client_timeouts relay_timeouts(unsigned connect, unsigned command, unsigned data)
{
	unsigned cmd = ms_of(command), dat = ms_of(data);
	return (struct smtp_client_timeouts){
		.connect = ms_of(connect),
		.greeting = cmd,
		.helo = cmd,
		.mail = cmd,
		.rcpt = cmd,
		.data_init = at_most(cmd, 120000),  /* RFC 5321 4.5.3.2.4 */
		.quit = at_most(cmd, 10000),	    /* waited for, then closed anyway */
		.data_block = at_most(dat, 180000), /* 4.5.3.2.5 */
		.data_final = dat,		    /* 4.5.3.2.6 */
	};
}
