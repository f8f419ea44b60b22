/* relay_conn.c - one outgoing connection of the relay: routing its
 * destination, trying the addresses in turn, carrying requests, waiting
 * idle for more (see relay.h; the destinations and requests are relay.c).
 *
 * RFC 5321 5.1 (MX preference order, fall back to the next address or
 * host, drop this host and everything of equal or lower preference from
 * the list), RFC 7505 (null MX), RFC 5321 3.1 (a non-2xx greeting: go
 * elsewhere), RFC 3207 (opportunistic STARTTLS: a failed handshake is
 * retried in plaintext, except at a smarthost, where TLS is required). */
#include <arpa/inet.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "queue/relay_private.h"

static void conn_try(struct rconn *k);

/* relay_conn_close - close K (no callback of its client runs any more).  K must
 * not be sending a request. */
void relay_conn_close(struct rconn *k)
{
	struct relay *r = k->r;
	struct rdest *d = k->dest;
	for (struct rconn **pp = &d->conns; *pp; pp = &(*pp)->next)
		if (*pp == k) {
			*pp = k->next;
			break;
		}
	d->nconns--;
	r->nconns--;
	if (k->state == C_RESOLVING || k->state == C_CONNECTING)
		d->nopening--;
	if (k->c)
		smtp_client_free(&k->c);
	mx_result_free(&k->mx);
	if (k->idle)
		event_free(k->idle);
	free(k);
	relay_kick(r); /* a slot is free: waiting requests anywhere may go */
}

/* conn_fail_dns - the route itself failed: decide for every waiting request. */
static void conn_fail_dns(struct rconn *k, const struct mx_result *res)
{
	struct rdest *d = k->dest;
	struct smtp_client_result out;
	const char *dom = d->domain;
	switch (res->status) {
	case MX_NULL:
		relay_result(&out, 556, "5.1.10", "%s does not accept mail (null MX, RFC 7505)",
			     dom);
		break;
	case MX_NXDOMAIN:
		relay_result(&out, 550, "5.1.2", "Host or domain name not found: %s", dom);
		break;
	case MX_NOHOSTS:
		relay_result(&out, 550, "5.4.4", "No address for the mail servers of %s", dom);
		break;
	case MX_TEMPFAIL:
	default:
		relay_result(&out, 451, "4.4.3", "Temporary DNS failure looking up %s", dom);
		relay_conn_close(k);
		relay_dest_failed(d, &out);
		return;
	}
	relay_conn_close(k);
	relay_fail_waiting(d, &out, 1, 0);
}

/* drop_self - RFC 5321 5.1: an MX list that names this host must lose it
 * and every host of equal or lower preference.  0, or -1 when nothing is
 * left (mail for the domain would loop back here). */
static int drop_self(struct relay *r, struct mx_result *mx)
{
	if (mx->implicit || mx->literal)
		return 0;
	for (size_t i = 0; i < mx->nhosts; i++) {
		size_t n = strlen(mx->hosts[i].name);
		if (n && mx->hosts[i].name[n - 1] == '.')
			n--;
		if (n != strlen(r->hostname) || strncasecmp(mx->hosts[i].name, r->hostname, n))
			continue;
		size_t keep = 0;
		while (keep < mx->nhosts && mx->hosts[keep].preference < mx->hosts[i].preference)
			keep++;
		mx->nhosts = keep;
		return keep ? 0 : -1;
	}
	return 0;
}

static void on_mx(struct mx_result *res, void *arg)
{
	struct rconn *k = arg;
	k->mx = res;
	if (res->status != MX_OK) {
		conn_fail_dns(k, res);
		return;
	}
	if (drop_self(k->r, res) < 0) {
		struct rdest *d = k->dest;
		struct smtp_client_result out;
		relay_result(&out, 550, "5.4.6", "Mail for %s loops back to myself", d->domain);
		relay_conn_close(k);
		relay_fail_waiting(d, &out, 1, 0);
		return;
	}
	k->state = C_CONNECTING;
	k->host = k->addr = 0;
	conn_try(k);
}

static void on_idle(evutil_socket_t fd, short what, void *arg)
{
	struct rconn *k = arg;
	smtp_client_quit(&k->c);
	relay_conn_close(k);
}

static void on_connect(struct smtp_client *c, const struct smtp_client_result *res, void *arg)
{
	struct rconn *k = arg;
	struct rdest *d = k->dest;
	if (res->code >= 200 && res->code < 300) {
		const struct mx_host *h = &k->mx->hosts[k->host];
		snprintf(k->mta, sizeof k->mta, "%s", h->name);
		k->state = C_IDLE;
		d->nopening--;
		retry_domain_succeeded(&d->hold);
		const char *tls = smtp_client_tls(c);
		char peer[300];
		log_info("relay: connected to %s%s%s",
			 relay_safe(peer, sizeof peer, smtp_client_peer(c)),
			 tls ? " with " : " without TLS", tls ? tls : "");
		relay_conn_ready(k);
		return;
	}
	k->last = *res;
	char peer[300], text[300];
	log_info("relay: %s: %d %s %s", relay_safe(peer, sizeof peer, smtp_client_peer(c)),
		 res->code, res->enhanced, relay_safe(text, sizeof text, res->text));
	smtp_client_free(&k->c);
	/* A failed handshake makes the connection useless; a plaintext retry
	 * on the same address is what opportunistic TLS means (client.h). */
	int tls_failed = res->local && res->code == 421 && !strcmp(res->enhanced, "4.7.0");
	if (tls_failed && !k->plain && !k->r->smarthost && k->r->ssl_ctx) {
		k->plain = 1;
	} else {
		k->plain = 0;
		k->addr++;
	}
	conn_try(k);
}

/* next_addr - the address to try now (moving past unusable ones), or NULL
 * when the list is done. */
static const struct mx_addr *next_addr(struct rconn *k, int family)
{
	while (k->host < k->mx->nhosts) {
		const struct mx_host *h = &k->mx->hosts[k->host];
		for (; k->addr < h->naddrs; k->addr++)
			if (!family || h->addrs[k->addr].u.sa.sa_family == family)
				return &h->addrs[k->addr];
		k->host++;
		k->addr = 0;
	}
	return NULL;
}

/* relay_source_addr - TEXT as a socket address; 0 or -1. */
int relay_source_addr(const char *text, struct sockaddr_storage *ss, socklen_t *len)
{
	memset(ss, 0, sizeof *ss);
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
	if (inet_pton(AF_INET, text, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		*len = sizeof *sin;
		return 0;
	}
	if (inet_pton(AF_INET6, text, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		*len = sizeof *sin6;
		return 0;
	}
	return -1;
}

/* conn_try - connect to the next usable address, or give up on the
 * destination when none is left. */
static void conn_try(struct rconn *k)
{
	struct relay *r = k->r;
	struct rdest *d = k->dest;
	struct sockaddr_storage src;
	socklen_t srclen = 0;
	char err[256];
	if (d->source[0] && relay_source_addr(d->source, &src, &srclen) < 0)
		srclen = 0; /* checked when the request came in; cannot happen */
	int family = srclen ? src.ss_family : 0;
	const struct mx_addr *a;
	while (k->tried < RELAY_ADDRS_MAX && (a = next_addr(k, family))) {
		const struct mx_host *h = &k->mx->hosts[k->host];
		struct smtp_client_config cc = {
			.helo_name = r->hostname,
			.timeouts = r->timeouts,
			.source = srclen ? (struct sockaddr *)&src : NULL,
			.source_len = srclen,
			.ssl_ctx = k->plain ? NULL : r->ssl_ctx,
			.require_tls = r->smarthost != NULL,
			.auth_user = r->smarthost ? r->auth_user : NULL,
			.auth_password = r->smarthost ? r->auth_password : NULL,
		};
		unsigned port = r->smarthost ? r->smarthost_port : r->port;
		if (!k->plain)
			k->tried++;
		k->c = smtp_client_new(r->base, &cc, err, sizeof err);
		if (k->c && smtp_client_connect(k->c, &a->u.sa, a->len, (uint16_t)port, h->name,
						on_connect, k) == 0)
			return;
		if (k->c)
			smtp_client_free(&k->c);
		else
			log_error("relay: cannot make an SMTP client: %s", err);
		k->plain = 0;
		k->addr++;
	}
	struct smtp_client_result why = k->last;
	if (!why.code) {
		relay_result(&why, 421, "4.4.1", "No usable address for %s", d->domain);
		if (family)
			snprintf(why.text, sizeof why.text,
				 "No address of the source address's family for %s", d->domain);
	}
	int others = 0;
	for (struct rconn *o = d->conns; o; o = o->next)
		others += o != k && (o->state == C_IDLE || o->state == C_BUSY);
	relay_conn_close(k);
	/* Another connection of D got through: D is fine, this one was unlucky. */
	if (!others)
		relay_dest_failed(d, &why);
}

static void on_sent(struct smtp_client *c, const struct smtp_client_result *msg,
		    const struct smtp_client_result *rcpts, size_t nrcpts, void *arg);

/* relay_conn_ready - K is ready: send the next request waiting for its
 * destination, or wait idle_keep_ms for one. */
void relay_conn_ready(struct rconn *k)
{
	struct rdest *d = k->dest;
	struct relay_req *q = relay_wait_pop(d);
	if (!q) {
		k->state = C_IDLE;
		struct timeval tv = {k->r->idle_keep_ms / 1000, (k->r->idle_keep_ms % 1000) * 1000};
		evtimer_add(k->idle, &tv);
		return;
	}
	evtimer_del(k->idle);
	k->state = C_BUSY;
	k->cur = q;
	q->conn = k;
	if (smtp_client_send(k->c, &q->req.msg, on_sent, k) < 0) {
		/* Not ready after all, or a request the client refuses. */
		k->cur = NULL;
		struct smtp_client_result res;
		relay_result(&res, 451, "4.3.0",
			     "Local error: the SMTP client refused the message");
		if (!smtp_client_ready(k->c) && !q->requeued) {
			q->requeued = 1;
			relay_wait_push(d, q, 1);
		} else {
			relay_finish_all(q, &res, 0, 0);
		}
		relay_conn_close(k);
	}
}

/* dead_on_reuse - did a reused connection turn out to be closed before
 * anything was sent (every recipient a local 421 4.4.2)? */
static int dead_on_reuse(const struct rconn *k, const struct smtp_client_result *rcpts, size_t n)
{
	if (k->transactions < 2)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!rcpts[i].local || rcpts[i].code != 421 || strcmp(rcpts[i].enhanced, "4.4.2"))
			return 0;
	return n > 0;
}

static void on_sent(struct smtp_client *c, const struct smtp_client_result *msg,
		    const struct smtp_client_result *rcpts, size_t nrcpts, void *arg)
{
	struct rconn *k = arg;
	struct relay_req *q = k->cur;
	k->cur = NULL;
	k->transactions++;
	if (dead_on_reuse(k, rcpts, nrcpts) && !q->requeued) {
		/* The server closed the idle connection: nothing was said about
		 * these recipients; send them on a fresh connection. */
		q->requeued = 1;
		relay_wait_push(k->dest, q, 1);
		relay_conn_close(k);
		return;
	}
	const struct smtp_ehlo *e = smtp_client_ehlo(c);
	struct relay_outcome out = {.rcpts = rcpts,
				    .nrcpts = nrcpts,
				    .remote_mta = k->mta,
				    .attempted = 1,
				    .dsn_offered = e && (e->ext & SMTP_EXT_DSN)};
	k->state = C_IDLE; /* the request is handed back: nothing runs on K now */
	relay_finish(q, &out);
	if (smtp_client_ready(k->c))
		relay_conn_ready(k);
	else
		relay_conn_close(k);
}

void relay_dest_open(struct rdest *d)
{
	struct relay *r = d->r;
	struct rconn *k = calloc(1, sizeof *k);
	if (k && !(k->idle = evtimer_new(r->base, on_idle, k))) {
		free(k);
		k = NULL;
	}
	if (!k) {
		struct smtp_client_result res;
		relay_result(&res, 451, "4.3.0", "Local error: out of memory");
		relay_fail_waiting(d, &res, 0, 0);
		return;
	}
	k->r = r;
	k->dest = d;
	k->state = C_RESOLVING;
	k->next = d->conns;
	d->conns = k;
	d->nconns++;
	d->nopening++;
	r->nconns++;
	const char *target = r->smarthost ? r->smarthost : d->domain;
	if (mx_resolve(r->mx, target, on_mx, k) < 0) {
		struct smtp_client_result res;
		relay_result(&res, 451, "4.3.0", "Local error: out of memory resolving %s", target);
		relay_conn_close(k);
		relay_fail_waiting(d, &res, 0, 0);
	}
}
