/* client.c - one outgoing SMTP connection on the loop: connecting, the
 * greeting, EHLO/HELO, STARTTLS, AUTH, reading replies, life cycle (see
 * client.h; RFC 5321 3.1, 3.2, 4.5.3.2; RFC 3207; RFC 4954 / RFC 4616).
 * The transaction itself is in client_send.c. */
#include "smtp/client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/tls.h"
#include "core/log.h"
#include "smtp/client_private.h"

#define READ_HIGH 65536 /* input buffered before the parser takes it */

static void destroy(struct smtp_client *c)
{
	if (c->bev)
		bufferevent_free(c->bev);
	event_free(c->timer);
	event_free(c->defer);
	free(c->tx.res);
	free(c->tx.live);
	if (c->ssl_ctx)
		SSL_CTX_free(c->ssl_ctx);
	explicit_bzero(c->pass, sizeof c->pass);
	free(c);
}

/* hold/release - bracket every entry from the loop, so a callback that
 * frees the client only marks it and the memory goes when we unwind. */
static void hold(struct smtp_client *c)
{
	c->depth++;
}

static void release(struct smtp_client *c)
{
	if (--c->depth == 0 && c->zombie)
		destroy(c);
}

void client_close(struct smtp_client *c)
{
	if (c->bev)
		bufferevent_free(c->bev);
	c->bev = NULL;
	evtimer_del(c->timer);
	c->state = ST_DEAD;
}

void client_set_deadline(struct smtp_client *c, unsigned ms, const char *what)
{
	struct timeval tv = {ms / 1000, (long)(ms % 1000) * 1000};
	c->waiting = what;
	evtimer_add(c->timer, &tv);
}

void client_vresult_local(struct smtp_client_result *r, int code, const char *enh, const char *fmt,
			  va_list ap)
{
	r->code = code;
	snprintf(r->enhanced, sizeof r->enhanced, "%s", enh);
	vsnprintf(r->text, sizeof r->text, fmt, ap);
	r->local = 1;
}

void client_result_local(struct smtp_client_result *r, int code, const char *enh, const char *fmt,
			 ...)
{
	va_list ap;
	va_start(ap, fmt);
	client_vresult_local(r, code, enh, fmt, ap);
	va_end(ap);
}

/* client_result_reply - the peer's reply as one line (lines joined by spaces). */
void client_result_reply(struct smtp_client_result *r, const struct smtp_client_reply *rep)
{
	size_t n = rep->textlen < sizeof r->text - 1 ? rep->textlen : sizeof r->text - 1;
	r->code = rep->code;
	memcpy(r->enhanced, rep->enhanced, sizeof r->enhanced);
	for (size_t i = 0; i < n; i++)
		r->text[i] = rep->text[i] == '\n' ? ' ' : rep->text[i];
	r->text[n] = '\0';
	r->local = 0;
}

void client_send_line(struct smtp_client *c, const char *fmt, ...)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	va_list ap;
	va_start(ap, fmt);
	evbuffer_add_vprintf(out, fmt, ap);
	va_end(ap);
	evbuffer_add(out, "\r\n", 2);
}

static void connect_done(struct smtp_client *c)
{
	smtp_client_connect_cb cb = c->connect_cb;
	c->connect_cb = NULL;
	if (cb)
		cb(c, &c->greeting, c->connect_arg);
}

/* connect_fail_reply - the peer refused us (greeting, EHLO, AUTH). */
static void connect_fail_reply(struct smtp_client *c, const struct smtp_client_reply *r)
{
	client_result_reply(&c->greeting, r);
	client_close(c);
	connect_done(c);
}

static void session_ready(struct smtp_client *c)
{
	c->state = ST_READY;
	c->connected = 1;
	evtimer_del(c->timer);
	connect_done(c);
}

/* client_fail - a local failure: whatever was going on ends with it. */
void client_fail(struct smtp_client *c, int code, const char *enh, const char *fmt, ...)
{
	struct smtp_client_result r;
	va_list ap;
	va_start(ap, fmt);
	client_vresult_local(&r, code, enh, fmt, ap);
	va_end(ap);
	enum client_state st = c->state;
	if (st != ST_QUIT && st != ST_DEAD)
		log_debug("smtp client %s: %d %s %s", c->peer, r.code, r.enhanced, r.text);
	client_close(c);
	if (st <= ST_AUTH) {
		c->greeting = r;
		connect_done(c);
	} else if (st >= ST_TX && st <= ST_DOT) {
		client_tx_decide(&c->tx, &r);
		client_tx_finish(c);
	} else if (st == ST_QUIT) {
		c->zombie = 1;
	}
}

static void on_defer(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_client *c = arg;
	hold(c);
	if (c->connect_failed_pending) {
		c->connect_failed_pending = 0;
		connect_done(c);
	} else if (c->in_tx && c->tx.local_done) {
		client_tx_finish(c);
	}
	release(c);
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_client *c = arg;
	hold(c);
	client_fail(c, 421, c->state == ST_CONNECTING ? "4.4.1" : "4.4.2", "timeout waiting for %s",
		    c->waiting ? c->waiting : "the peer");
	release(c);
}

/* after_ehlo - STARTTLS when we can, AUTH when configured, then ready. */
static void after_ehlo(struct smtp_client *c)
{
	int offered = (c->ehlo.ext & SMTP_EXT_STARTTLS) != 0;
	if (!c->tls_desc[0] && c->ssl_ctx && offered && !c->tls_tried) {
		c->tls_tried = 1;
		client_send_line(c, "STARTTLS");
		c->state = ST_STARTTLS;
		client_set_deadline(c, c->to.helo, "the reply to STARTTLS");
		return;
	}
	if (!c->tls_desc[0] && c->require_tls) {
		client_fail(c, 421, "4.7.0", "TLS required but %s",
			    offered ? "STARTTLS was refused" : "STARTTLS is not offered");
		return;
	}
	if (c->user[0]) {
		if (!c->tls_desc[0] || !(c->ehlo.auth & SMTP_AUTH_PLAIN)) {
			client_fail(c, 454, "4.7.0", "cannot AUTH: %s",
				    !c->tls_desc[0] ? "no TLS" : "AUTH PLAIN not offered");
			return;
		}
		/* RFC 4616: "\0user\0password", base64 as initial response. */
		unsigned char raw[2 * SMTP_CLIENT_NAME_MAX + 2];
		char b64[4 * (sizeof raw + 2) / 3 + 4];
		size_t ul = strlen(c->user), pl = strlen(c->pass);
		raw[0] = 0;
		memcpy(raw + 1, c->user, ul);
		raw[1 + ul] = 0;
		memcpy(raw + 2 + ul, c->pass, pl);
		EVP_EncodeBlock((unsigned char *)b64, raw, (int)(ul + pl + 2));
		client_send_line(c, "AUTH PLAIN %s", b64);
		explicit_bzero(raw, sizeof raw);
		explicit_bzero(b64, sizeof b64);
		c->state = ST_AUTH;
		client_set_deadline(c, c->to.helo, "the reply to AUTH");
		return;
	}
	session_ready(c);
}

static void send_ehlo(struct smtp_client *c)
{
	memset(&c->ehlo, 0, sizeof c->ehlo);
	client_send_line(c, "EHLO %s", c->helo);
	c->state = ST_EHLO;
	client_set_deadline(c, c->to.helo, "the reply to EHLO");
}

static void on_read(struct bufferevent *bev, void *arg);
static void on_write(struct bufferevent *bev, void *arg);
static void on_event(struct bufferevent *bev, short what, void *arg);

/* start_tls - RFC 3207 4.2: anything the peer sent after its 220 is thrown
 * away (it could be a forged reply), then the handshake on the same socket. */
static void start_tls(struct smtp_client *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	evbuffer_drain(in, evbuffer_get_length(in));
	smtp_client_reply_reset(&c->parser);
	SSL *ssl = SSL_new(c->ssl_ctx);
	if (ssl && c->sni[0])
		SSL_set_tlsext_host_name(ssl, c->sni);
	struct bufferevent *tls = ssl ? bufferevent_openssl_filter_new(
						c->base, c->bev, ssl, BUFFEREVENT_SSL_CONNECTING,
						BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS)
				      : NULL;
	if (!tls) {
		if (ssl)
			SSL_free(ssl);
		client_fail(c, 421, "4.7.0", "cannot start TLS: out of memory");
		return;
	}
	c->bev = tls;
	bufferevent_openssl_set_allow_dirty_shutdown(tls, 1);
	bufferevent_setcb(tls, on_read, on_write, on_event, c);
	bufferevent_setwatermark(tls, EV_READ, 0, READ_HIGH);
	bufferevent_enable(tls, EV_READ | EV_WRITE);
	c->state = ST_HANDSHAKE;
	client_set_deadline(c, c->to.helo, "the TLS handshake");
}

static void handle_reply(struct smtp_client *c, const struct smtp_client_reply *r)
{
	switch (c->state) {
	case ST_GREETING:
		if (r->code / 100 != 2) {
			connect_fail_reply(c, r);
			return;
		}
		client_result_reply(&c->greeting, r);
		send_ehlo(c);
		return;
	case ST_EHLO:
		if (r->code == 250) {
			smtp_ehlo_parse(r, &c->ehlo);
			after_ehlo(c);
		} else if (r->code / 100 == 5) {
			/* RFC 5321 3.2: an old server; HELO it is. */
			client_send_line(c, "HELO %s", c->helo);
			c->state = ST_HELO;
			client_set_deadline(c, c->to.helo, "the reply to HELO");
		} else {
			connect_fail_reply(c, r);
		}
		return;
	case ST_HELO:
		if (r->code != 250) {
			connect_fail_reply(c, r);
			return;
		}
		memset(&c->ehlo, 0, sizeof c->ehlo);
		after_ehlo(c);
		return;
	case ST_STARTTLS:
		if (r->code == 220)
			start_tls(c);
		else
			after_ehlo(c); /* opportunistic: go on in plaintext */
		return;
	case ST_AUTH:
		if (r->code == 235)
			session_ready(c);
		else
			connect_fail_reply(c, r);
		return;
	case ST_TX:
		client_tx_reply(c, r);
		return;
	case ST_DATA:
		client_tx_data_reply(c, r);
		return;
	case ST_BODY:
	case ST_DOT:
		client_tx_end_reply(c, r);
		return;
	case ST_QUIT:
		client_close(c);
		c->zombie = 1;
		return;
	default:
		/* Unsolicited, e.g. 421 when the peer's idle timer ran out. */
		client_fail(c, 421, "4.4.2", "unexpected reply %d from the peer", r->code);
		return;
	}
}

static void on_read(struct bufferevent *bev, void *arg)
{
	struct smtp_client *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	char buf[4096];
	hold(c);
	/* Stop when the client is freed, or STARTTLS replaced the stream. */
	while (!c->zombie && c->bev == bev && evbuffer_get_length(in) > 0) {
		ev_ssize_t n = evbuffer_copyout(in, buf, sizeof buf);
		size_t used = 0;
		enum smtp_reply_status st =
			smtp_client_reply_feed(&c->parser, buf, n > 0 ? (size_t)n : 0, &used);
		if (st == SMTP_REPLY_ERROR) {
			evbuffer_drain(in, evbuffer_get_length(in));
			log_warn("smtp client %s: broken reply: %s", c->peer, c->parser.error);
			client_fail(c, 421, "4.5.0", "broken reply from the peer: %s",
				    c->parser.error);
			break;
		}
		evbuffer_drain(in, used);
		if (st == SMTP_REPLY_DONE)
			handle_reply(c, &c->parser.reply);
	}
	release(c);
}

static void on_write(struct bufferevent *bev, void *arg)
{
	struct smtp_client *c = arg;
	hold(c);
	if (c->state == ST_BODY && c->bev == bev)
		client_tx_pump_body(c);
	release(c);
}

/* ssl_error - the last OpenSSL error of a TLS bufferevent, as text. */
static void ssl_error(struct bufferevent *bev, char *buf, size_t len)
{
	unsigned long e, last = 0;
	while ((e = bufferevent_get_openssl_error(bev)))
		last = e;
	if (last)
		ERR_error_string_n(last, buf, len);
	else
		snprintf(buf, len, "%s", "the peer closed the connection");
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	struct smtp_client *c = arg;
	int err = EVUTIL_SOCKET_ERROR();
	char why[256];
	hold(c);
	if (c->bev != bev) {
		/* a stale event of a stream already replaced */
	} else if ((what & BEV_EVENT_CONNECTED) && c->state == ST_CONNECTING) {
		c->state = ST_GREETING;
		client_set_deadline(c, c->to.greeting, "the greeting");
	} else if ((what & BEV_EVENT_CONNECTED) && c->state == ST_HANDSHAKE) {
		tls_describe(bufferevent_openssl_get_ssl(bev), c->tls_desc, sizeof c->tls_desc);
		log_info("smtp client %s: TLS established: %s", c->peer, c->tls_desc);
		send_ehlo(c);
	} else if (c->state == ST_CONNECTING) {
		client_fail(c, 421, "4.4.1", "cannot connect: %s", strerror(err));
	} else if (c->state == ST_HANDSHAKE) {
		ssl_error(bev, why, sizeof why);
		client_fail(c, 421, "4.7.0", "TLS handshake failed: %s", why);
	} else if (what & BEV_EVENT_TIMEOUT) {
		client_fail(c, 421, "4.4.2", "timeout sending the message body");
	} else if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		client_fail(c, 421, "4.4.2", "connection lost%s%s",
			    (what & BEV_EVENT_ERROR) ? ": " : "",
			    (what & BEV_EVENT_ERROR) ? strerror(err) : "");
	}
	release(c);
}

SSL_CTX *smtp_client_tls_ctx_new(char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx) {
		snprintf(err, errlen, "SSL_CTX_new: %s", ERR_reason_error_string(ERR_get_error()));
		return NULL;
	}
	/* Opportunistic (RFC 7435): any certificate beats plaintext. */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
	return ctx;
}

/* word_ok - one printable ASCII word of 1..max bytes (the HELO name). */
static int word_ok(const char *s, size_t max)
{
	size_t n = 0;
	for (; s && s[n]; n++)
		if (s[n] < 0x21 || s[n] > 0x7e)
			return 0;
	return s && n > 0 && n <= max;
}

struct smtp_client *smtp_client_new(struct event_base *base, const struct smtp_client_config *cfg,
				    char *err, size_t errlen)
{
	if (!word_ok(cfg->helo_name, SMTP_CLIENT_NAME_MAX) ||
	    (cfg->auth_user &&
	     (strlen(cfg->auth_user) > SMTP_CLIENT_NAME_MAX || !cfg->auth_user[0] ||
	      !cfg->auth_password || strlen(cfg->auth_password) > SMTP_CLIENT_NAME_MAX)) ||
	    (cfg->source && cfg->source_len > sizeof(struct sockaddr_storage))) {
		snprintf(err, errlen, "bad smtp client configuration");
		return NULL;
	}
	struct smtp_client *c = calloc(1, sizeof *c);
	if (!c || !(c->timer = evtimer_new(base, on_timeout, c)) ||
	    !(c->defer = evtimer_new(base, on_defer, c))) {
		if (c && c->timer)
			event_free(c->timer);
		free(c);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	c->base = base;
	const struct smtp_client_timeouts *t = &cfg->timeouts;
	c->to.connect = t->connect ? t->connect : 30000;
	c->to.greeting = t->greeting ? t->greeting : 300000;
	c->to.helo = t->helo ? t->helo : 300000;
	c->to.mail = t->mail ? t->mail : 300000;
	c->to.rcpt = t->rcpt ? t->rcpt : 300000;
	c->to.data_init = t->data_init ? t->data_init : 120000;
	c->to.data_block = t->data_block ? t->data_block : 180000;
	c->to.data_final = t->data_final ? t->data_final : 600000;
	c->to.quit = t->quit ? t->quit : 10000;
	snprintf(c->helo, sizeof c->helo, "%s", cfg->helo_name);
	if (cfg->auth_user) {
		snprintf(c->user, sizeof c->user, "%s", cfg->auth_user);
		snprintf(c->pass, sizeof c->pass, "%s", cfg->auth_password);
	}
	c->require_tls = cfg->require_tls;
	if (cfg->source) {
		memcpy(&c->source, cfg->source, cfg->source_len);
		c->source_len = cfg->source_len;
	}
	if (cfg->ssl_ctx && SSL_CTX_up_ref(cfg->ssl_ctx))
		c->ssl_ctx = cfg->ssl_ctx;
	smtp_client_reply_init(&c->parser, NULL);
	snprintf(c->peer, sizeof c->peer, "(not connected)");
	return c;
}

/* connect_later - a failure found before any I/O, reported from the loop. */
static int connect_later(struct smtp_client *c, int fd, const char *what, int err)
{
	static const struct timeval now = {0, 0};
	if (fd >= 0)
		close(fd);
	client_result_local(&c->greeting, 421, "4.4.1", "cannot connect: %s: %s", what,
			    strerror(err));
	c->state = ST_DEAD;
	c->connect_failed_pending = 1;
	evtimer_add(c->defer, &now);
	return 0;
}

/* set_peer - "name[address]:port" for the log, and the SNI name. */
static void set_peer(struct smtp_client *c, const struct sockaddr *sa, uint16_t port,
		     const char *peer_name)
{
	char addr[INET6_ADDRSTRLEN] = "?", name[SMTP_CLIENT_NAME_MAX + 1] = "";
	const void *p = sa->sa_family == AF_INET
				? (const void *)&((const struct sockaddr_in *)sa)->sin_addr
				: (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
	inet_ntop(sa->sa_family, p, addr, sizeof addr);
	if (peer_name)
		log_sanitize(name, sizeof name, peer_name, strlen(peer_name));
	snprintf(c->peer, sizeof c->peer, "%s[%s]:%u", name, addr, port);
	unsigned char tmp[16];
	/* SNI carries host names only, never an address (RFC 6066 3). */
	if (name[0] && name[0] != '[' && inet_pton(AF_INET, name, tmp) != 1 &&
	    inet_pton(AF_INET6, name, tmp) != 1)
		snprintf(c->sni, sizeof c->sni, "%s", name);
}

int smtp_client_connect(struct smtp_client *c, const struct sockaddr *addr, socklen_t addrlen,
			uint16_t port, const char *peer_name, smtp_client_connect_cb cb, void *arg)
{
	struct sockaddr_storage ss;
	int usable =
		addr && ((addr->sa_family == AF_INET && addrlen == sizeof(struct sockaddr_in)) ||
			 (addr->sa_family == AF_INET6 && addrlen == sizeof(struct sockaddr_in6)));
	if (c->state != ST_NEW || !usable)
		return -1;
	memset(&ss, 0, sizeof ss);
	memcpy(&ss, addr, addrlen);
	if (ss.ss_family == AF_INET)
		((struct sockaddr_in *)&ss)->sin_port = htons(port);
	else
		((struct sockaddr_in6 *)&ss)->sin6_port = htons(port);
	set_peer(c, addr, port, peer_name);
	c->connect_cb = cb;
	c->connect_arg = arg;
	c->state = ST_CONNECTING;
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return connect_later(c, fd, "socket", errno);
	if (c->source_len) {
		int one = 1;
		if (c->source.ss_family != ss.ss_family)
			return connect_later(c, fd, "source address", EAFNOSUPPORT);
		/* The port is chosen at connect time, per destination. */
		setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
		if (bind(fd, (struct sockaddr *)&c->source, c->source_len) < 0)
			return connect_later(c, fd, "bind to the source address", errno);
	}
	c->bev = bufferevent_socket_new(c->base, fd,
					BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (!c->bev)
		return connect_later(c, fd, "bufferevent", ENOMEM);
	bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
	bufferevent_setwatermark(c->bev, EV_READ, 0, READ_HIGH);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&ss, addrlen) < 0) {
		int e = errno;
		bufferevent_free(c->bev); /* closes fd */
		c->bev = NULL;
		return connect_later(c, -1, "connect", e);
	}
	client_set_deadline(c, c->to.connect, "the TCP connection");
	return 0;
}

int smtp_client_ready(const struct smtp_client *c)
{
	return c->state == ST_READY && !c->in_tx;
}

const struct smtp_ehlo *smtp_client_ehlo(const struct smtp_client *c)
{
	return &c->ehlo;
}

const char *smtp_client_tls(const struct smtp_client *c)
{
	return c->tls_desc[0] ? c->tls_desc : NULL;
}

const char *smtp_client_peer(const struct smtp_client *c)
{
	return c->peer;
}

void smtp_client_free(struct smtp_client **cp)
{
	struct smtp_client *c = *cp;
	if (!c)
		return;
	*cp = NULL;
	client_close(c);
	evtimer_del(c->defer);
	c->connect_cb = NULL;
	if (c->depth > 0)
		c->zombie = 1;
	else
		destroy(c);
}

void smtp_client_quit(struct smtp_client **cp)
{
	struct smtp_client *c = *cp;
	if (!c)
		return;
	if (c->state != ST_READY || c->in_tx || !c->bev) {
		smtp_client_free(cp);
		return;
	}
	*cp = NULL;
	client_send_line(c, "QUIT");
	c->state = ST_QUIT;
	client_set_deadline(c, c->to.quit, "the reply to QUIT");
}
