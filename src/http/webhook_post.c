/* webhook_post.c - one webhook POST (RFC 9110 9.3.3 over HTTP/1.1, RFC
 * 9112) with libevent's evhttp client, over TLS with bufferevent_openssl
 * for https (RFC 9110 4.3.4: the certificate must match the URL's host,
 * checked by OpenSSL against the system's CA store).
 *
 * The connection goes to the address the caller checked, never to a name
 * evhttp would resolve again: evhttp is given the address as text, and
 * the URL's host travels in the Host header, the TLS server name (SNI)
 * and the certificate check.  One request per connection
 * (Connection: close).
 *
 * Bounds: WEBHOOK_TIMEOUT seconds for everything from connect to the end
 * of the answer; WEBHOOK_HEADERS_MAX bytes of status line and headers;
 * the answer's body is read and thrown away as it comes, and once
 * WEBHOOK_RESPONSE_MAX bytes have come the status decides and the
 * connection is closed.
 *
 * evhttp calls back from deep inside itself, where freeing its connection
 * is not allowed; the post records the outcome there and ends from a
 * zero-delay event on the loop. */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/webhook_private.h"

struct webhook_post {
	struct event_base *base;
	struct evhttp_connection *evcon;
	SSL *ssl; /* owned by the connection's bufferevent; NULL for http */
	struct event *deadline;
	struct event *finish; /* ends the post from a clean stack */
	webhook_post_cb cb;
	void *arg;
	int ended; /* the outcome is known; evhttp's later calls are ignored */
	int status;
	size_t body_read;
	char peer[INET6_ADDRSTRLEN + 8]; /* "ADDR" or "[ADDR]" and ":PORT" for messages */
	char error[WEBHOOK_ERROR_MAX];
};

/* post_free - close the connection (a request still on it is freed
 * without its callback) and free P. */
static void post_free(struct webhook_post *p)
{
	if (p->evcon)
		evhttp_connection_free(p->evcon);
	if (p->deadline)
		event_free(p->deadline);
	if (p->finish)
		event_free(p->finish);
	free(p);
}

/* post_end - hand the outcome over; P is freed first, so the callback may
 * start the next post at once. */
static void post_end(struct webhook_post *p)
{
	webhook_post_cb cb = p->cb;
	void *arg = p->arg;
	int status = p->status;
	char error[WEBHOOK_ERROR_MAX];
	int ok = status >= 200 && status <= 299;
	if (!ok && !p->error[0])
		snprintf(p->error, sizeof p->error, "%s answered HTTP %d", p->peer, status);
	memcpy(error, p->error, sizeof error);
	post_free(p);
	cb(arg, status, ok ? NULL : error);
}

/* on_finish - the zero-delay event settle() arms. */
static void on_finish(evutil_socket_t fd, short what, void *arg)
{
	post_end(arg);
}

/* settle - the outcome is known (inside an evhttp callback): end soon. */
static void settle(struct webhook_post *p, int status)
{
	if (p->ended)
		return;
	p->ended = 1;
	p->status = status;
	event_active(p->finish, 0, 0);
}

/* on_deadline - WEBHOOK_TIMEOUT has passed without an outcome. */
static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct webhook_post *p = arg;
	if (p->ended)
		return;
	p->ended = 1;
	p->status = 0;
	snprintf(p->error, sizeof p->error, "no answer from %s within %d s", p->peer,
		 WEBHOOK_TIMEOUT);
	post_end(p);
}

/* tls_reason - what TLS said went wrong, if anything, into P->error. */
static int tls_reason(struct webhook_post *p)
{
	if (!p->ssl)
		return 0;
	long v = SSL_get_verify_result(p->ssl);
	if (v != X509_V_OK) {
		snprintf(p->error, sizeof p->error, "TLS with %s: certificate not accepted: %s",
			 p->peer, X509_verify_cert_error_string(v));
		return 1;
	}
	struct bufferevent *bev = evhttp_connection_get_bufferevent(p->evcon);
	unsigned long e = bev ? bufferevent_get_openssl_error(bev) : 0;
	if (e) {
		char text[160];
		ERR_error_string_n(e, text, sizeof text);
		snprintf(p->error, sizeof p->error, "TLS with %s: %s", p->peer, text);
		return 1;
	}
	return 0;
}

/* on_error - evhttp says why the request failed (called just before
 * on_done with no request; errno is still the socket's). */
static void on_error(enum evhttp_request_error e, void *arg)
{
	struct webhook_post *p = arg;
	int saved = errno;
	if (p->ended || tls_reason(p))
		return;
	switch (e) {
	case EVREQ_HTTP_TIMEOUT:
		snprintf(p->error, sizeof p->error, "no answer from %s within %d s", p->peer,
			 WEBHOOK_TIMEOUT);
		break;
	case EVREQ_HTTP_INVALID_HEADER:
		snprintf(p->error, sizeof p->error,
			 "%s sent an answer that is not HTTP, or "
			 "headers over %d bytes",
			 p->peer, WEBHOOK_HEADERS_MAX);
		break;
	case EVREQ_HTTP_EOF:
	default:
		if (saved)
			snprintf(p->error, sizeof p->error, "connection to %s failed: %s", p->peer,
				 strerror(saved));
		else
			snprintf(p->error, sizeof p->error,
				 "%s closed the connection without "
				 "an answer",
				 p->peer);
		break;
	}
}

/* on_done - the answer is complete, or the request failed (REQ NULL). */
static void on_done(struct evhttp_request *req, void *arg)
{
	struct webhook_post *p = arg;
	int status = req ? evhttp_request_get_response_code(req) : 0;
	if (!p->ended && status == 0 && !p->error[0] && !tls_reason(p))
		snprintf(p->error, sizeof p->error, "no answer from %s", p->peer);
	settle(p, status);
}

/* on_chunk - part of the answer's body: counted and dropped (evhttp
 * drains it after this call).  Past the bound the status decides. */
static void on_chunk(struct evhttp_request *req, void *arg)
{
	struct webhook_post *p = arg;
	p->body_read += evbuffer_get_length(evhttp_request_get_input_buffer(req));
	if (p->body_read > WEBHOOK_RESPONSE_MAX)
		settle(p, evhttp_request_get_response_code(req));
}

/* tls_bufferevent - a TLS client stream for U's host on a socket evhttp
 * opens, or NULL with ERR set. */
static struct bufferevent *tls_bufferevent(struct webhook_post *p, SSL_CTX *ctx,
					   const struct webhook_url *u, char *err, size_t errlen)
{
	SSL *ssl = SSL_new(ctx);
	int ok = ssl != NULL;
	if (ok && u->literal)
		ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), u->host) == 1;
	else if (ok)
		ok = SSL_set_tlsext_host_name(ssl, u->host) == 1 &&
		     SSL_set1_host(ssl, u->host) == 1;
	if (ok)
		SSL_set_verify(ssl, SSL_VERIFY_PEER, NULL);
	struct bufferevent *bev =
		ok ? bufferevent_openssl_socket_new(p->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
						    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS)
		   : NULL;
	if (!bev) {
		SSL_free(ssl);
		snprintf(err, errlen, "cannot set up TLS for %s", u->host);
		return NULL;
	}
	/* Servers often close without close_notify; the answer's end is
	 * known from Content-Length or chunking anyway. */
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	p->ssl = ssl;
	return bev;
}

/* post_request - the request with its headers and body, handed to evhttp. */
static int post_request(struct webhook_post *p, const struct webhook_request *r)
{
	struct evhttp_request *req = evhttp_request_new(on_done, p);
	if (!req)
		return -1;
	evhttp_request_set_chunked_cb(req, on_chunk);
	evhttp_request_set_error_cb(req, on_error);
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	if (evhttp_add_header(h, "Host", r->url->authority) < 0 ||
	    evhttp_add_header(h, "User-Agent", "tern") < 0 ||
	    evhttp_add_header(h, "Content-Type", "application/json") < 0 ||
	    evhttp_add_header(h, "X-Tern-Event", r->event_type) < 0 ||
	    evhttp_add_header(h, "X-Tern-Signature", r->signature) < 0 ||
	    evhttp_add_header(h, "Connection", "close") < 0 ||
	    evbuffer_add(evhttp_request_get_output_buffer(req), r->body, r->len) < 0) {
		evhttp_request_free(req);
		return -1;
	}
	/* On failure evhttp may already have called on_done (a connect
	 * refused at once); settle() is idempotent. */
	if (evhttp_make_request(p->evcon, req, EVHTTP_REQ_POST, r->url->target) < 0) {
		if (!p->error[0])
			snprintf(p->error, sizeof p->error, "cannot connect to %s", p->peer);
		settle(p, 0);
	}
	return 0;
}

/* peer_text - R's address as text into HOST, and "HOST:PORT" (brackets
 * around IPv6) into P->peer. */
static int peer_text(struct webhook_post *p, const struct webhook_request *r, char *host,
		     size_t hostlen)
{
	const void *a = r->addr->sa_family == AF_INET6
				? (const void *)&((const struct sockaddr_in6 *)r->addr)->sin6_addr
				: (const void *)&((const struct sockaddr_in *)r->addr)->sin_addr;
	if (!inet_ntop(r->addr->sa_family, a, host, (socklen_t)hostlen))
		return -1;
	int v6 = r->addr->sa_family == AF_INET6;
	snprintf(p->peer, sizeof p->peer, "%s%s%s:%u", v6 ? "[" : "", host, v6 ? "]" : "",
		 r->url->port);
	return 0;
}

/* webhook_post_start - set up the connection and queue the request on it. */
struct webhook_post *webhook_post_start(struct event_base *base, SSL_CTX *tls_ctx,
					const struct webhook_request *r, webhook_post_cb cb,
					void *arg, char *err, size_t errlen)
{
	struct webhook_post *p = calloc(1, sizeof *p);
	char host[INET6_ADDRSTRLEN];
	err[0] = '\0';
	if (!p || (r->addr->sa_family != AF_INET && r->addr->sa_family != AF_INET6) ||
	    peer_text(p, r, host, sizeof host) < 0) {
		snprintf(err, errlen, p ? "not an IP address" : "out of memory");
		free(p);
		return NULL;
	}
	p->base = base;
	p->cb = cb;
	p->arg = arg;
	p->deadline = evtimer_new(base, on_deadline, p);
	p->finish = event_new(base, -1, 0, on_finish, p);
	struct bufferevent *bev = NULL;
	if (!p->deadline || !p->finish ||
	    (r->url->tls && !(bev = tls_bufferevent(p, tls_ctx, r->url, err, errlen))))
		goto fail;
	p->evcon = evhttp_connection_base_bufferevent_new(base, NULL, bev, host,
							  (unsigned short)r->url->port);
	if (!p->evcon) {
		if (bev)
			bufferevent_free(bev);
		goto fail;
	}
	evhttp_connection_set_timeout(p->evcon, WEBHOOK_TIMEOUT);
	evhttp_connection_set_retries(p->evcon, 0);
	evhttp_connection_set_max_headers_size(p->evcon, WEBHOOK_HEADERS_MAX);
	struct timeval tv = {WEBHOOK_TIMEOUT, 0};
	if (evtimer_add(p->deadline, &tv) < 0 || post_request(p, r) < 0)
		goto fail;
	return p;
fail:
	if (!err[0])
		snprintf(err, errlen, "out of memory");
	post_free(p);
	return NULL;
}

/* webhook_post_cancel - close everything; no callback. */
void webhook_post_cancel(struct webhook_post **pp)
{
	struct webhook_post *p = *pp;
	if (!p)
		return;
	*pp = NULL;
	post_free(p);
}
