/* session.c - the I/O side of an SMTP server session.
 *
 * Reads bytes, splits them into command lines (bounded at 512 octets,
 * RFC 5321 4.5.3.1.4; the rest of an over-long line is skipped so the
 * session stays in sync, as Postfix's smtp_get does), feeds DATA and BDAT
 * bytes to their decoders, writes replies, enforces timeouts per state and
 * the error limit.  What a command means lives in session_commands.c. */
#include "smtp/session.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth/tls.h"
#include "core/log.h"
#include "store/directory.h"

/* Input is read in pieces of at most this much; output beyond OUT_HIGH
 * pauses reading until the client takes its replies (pipelining abuse). */
#define IN_HIGH (64 * 1024)
#define OUT_HIGH (64 * 1024)

/* RFC 3461 4: the DSN parameters may make MAIL and RCPT lines 500 octets
 * longer than the 512 of RFC 5321 4.5.3.1.4; every other command keeps 512. */
#define LINE_MAX_DSN (SMTP_CMD_LINE_MAX + 500)

static void on_read(struct bufferevent *bev, void *arg);
static void on_write(struct bufferevent *bev, void *arg);
static void on_event(struct bufferevent *bev, short what, void *arg);
static void process_input(struct session *s);

static unsigned long next_serial;

static void set_timeout(struct session *s)
{
	const struct config *cfg = &s->settings->cfg;
	unsigned secs = cfg->timeout_command;
	if (s->state == SS_INIT)
		secs = cfg->timeout_greeting_wait;
	else if (s->state == SS_DATA || s->state == SS_BDAT)
		secs = cfg->timeout_data;
	struct timeval tv = { .tv_sec = secs, .tv_usec = 0 };
	struct timeval wtv = { .tv_sec = cfg->timeout_command, .tv_usec = 0 };
	bufferevent_set_timeouts(s->bev, &tv, &wtv);
}

struct session *session_new(struct smtp_server *srv, const struct smtp_context *ctx,
			    struct settings *st, struct directory *d, enum listen_kind kind,
			    int fd, const struct sockaddr *peer, socklen_t peerlen)
{
	struct session *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	s->server = srv;
	s->ctx = ctx;
	s->settings = settings_ref(st);
	s->dir = directory_ref(d);
	s->kind = kind;
	s->serial = ++next_serial;
	memcpy(&s->peer, peer, peerlen < sizeof s->peer ? peerlen : sizeof s->peer);
	if (peer->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)peer)->sin_addr, s->peer_text,
			  sizeof s->peer_text);
	else if (peer->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)peer)->sin6_addr,
			  s->peer_text, sizeof s->peer_text);
	else
		snprintf(s->peer_text, sizeof s->peer_text, "local");
	envelope_init(&s->env);
	if (kind == LISTEN_SMTPS) {
		/* RFC 8314: TLS from the first byte; the greeting waits for
		 * the handshake inside the TLS bufferevent. */
		SSL *ssl = ctx->tls ? SSL_new(ctx->tls) : NULL;
		s->bev = ssl ? bufferevent_openssl_socket_new(ctx->base, fd, ssl,
							      BUFFEREVENT_SSL_ACCEPTING,
							      BEV_OPT_CLOSE_ON_FREE) : NULL;
		if (ssl && !s->bev)
			SSL_free(ssl);
		s->tls = 1;
	} else {
		s->bev = bufferevent_socket_new(ctx->base, fd, BEV_OPT_CLOSE_ON_FREE);
	}
	if (!s->bev) {
		settings_unref(&s->settings);
		directory_unref(&s->dir);
		free(s);
		return NULL;
	}
	bufferevent_setcb(s->bev, on_read, on_write, on_event, s);
	bufferevent_setwatermark(s->bev, EV_READ, 0, IN_HIGH);
	s->state = SS_INIT;
	set_timeout(s);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
	log_info("session %lu: connect from %s (%s)", s->serial, s->peer_text,
		 listen_kind_name(kind));
	session_replyf(s, 220, NULL, "%s ESMTP tern", s->settings->cfg.hostname);
	return s;
}

void session_free(struct session *s)
{
	if (!s)
		return;
	log_info("session %lu: disconnect from %s (%u errors)", s->serial, s->peer_text,
		 s->errors);
	session_reset_transaction(s);
	envelope_free(&s->env);
	if (s->auth_delay)
		event_free(s->auth_delay);
	if (s->close_timer)
		event_free(s->close_timer);
	if (s->bev)
		bufferevent_free(s->bev);
	free(s->helo);
	free(s->auth_user);
	free(s->auth_login_user);
	settings_unref(&s->settings);
	directory_unref(&s->dir);
	free(s);
}

void session_reset_transaction(struct session *s)
{
	envelope_free(&s->env);
	envelope_init(&s->env);
	memset(&s->mail, 0, sizeof s->mail);
	if (s->body) {
		evbuffer_free(s->body);
		s->body = NULL;
	}
	s->bdat_remaining = 0;
	s->bdat_last = 0;
	s->bdat_failed = 0;
	free(s->subject);
	s->subject = NULL;
}

void session_replyf(struct session *s, int code, const char *enh, const char *fmt, ...)
{
	char text[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	struct evbuffer *out = bufferevent_get_output(s->bev);
	if (enh)
		evbuffer_add_printf(out, "%d %s %s\r\n", code, enh, text);
	else
		evbuffer_add_printf(out, "%d %s\r\n", code, text);
}

void session_reply(struct session *s, struct smtp_reply r)
{
	if (r.code == 0)
		return;
	session_replyf(s, r.code, r.enhanced, "%s", r.text);
}

void session_close_after_reply(struct session *s, struct smtp_reply r)
{
	session_reply(s, r);
	s->state = SS_CLOSING;
	/* Freed from on_write once the reply is out; a client that never
	 * reads is dropped by the write timeout. */
	bufferevent_disable(s->bev, EV_READ);
}

void session_error(struct session *s, struct smtp_reply r)
{
	s->errors++;
	if (s->errors >= s->settings->cfg.max_errors) {
		session_reply(s, r);
		log_info("session %lu: too many errors from %s", s->serial, s->peer_text);
		session_close_after_reply(s, SMTP_REPLY(421, "4.7.0", "Too many errors, closing connection"));
		return;
	}
	session_reply(s, r);
}

/* data_sink - decoded DATA bytes go into the transaction's body. */
static int data_sink(void *arg, const char *bytes, size_t len)
{
	struct session *s = arg;
	return evbuffer_add(s->body, bytes, len) == 0 ? 0 : -1;
}

/* feed_data - hand buffered DATA bytes to the decoder; returns 1 when the
 * end of data was reached. */
static int feed_data(struct session *s, struct evbuffer *in)
{
	while (evbuffer_get_length(in) > 0) {
		struct evbuffer_iovec v;
		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			break;
		long used = data_stream_feed(&s->ds, v.iov_base, v.iov_len, data_sink, s);
		if (used < 0) {
			s->ds.error = DATA_TOO_BIG; /* out of memory: refuse */
			used = (long)v.iov_len;
		}
		evbuffer_drain(in, (size_t)used);
		if (s->ds.done)
			return 1;
	}
	return 0;
}

/* feed_bdat - take the current chunk's bytes; returns 1 at its end. */
static int feed_bdat(struct session *s, struct evbuffer *in)
{
	while (s->bdat_remaining > 0 && evbuffer_get_length(in) > 0) {
		struct evbuffer_iovec v;
		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			break;
		size_t n = v.iov_len;
		if (n > s->bdat_remaining)
			n = (size_t)s->bdat_remaining;
		if (!s->bdat_failed) {
			int last = s->bdat_last && n == s->bdat_remaining;
			if (bdat_check(&s->ds, v.iov_base, n, last) == DATA_OK &&
			    evbuffer_add(s->body, v.iov_base, n) < 0)
				s->ds.error = DATA_TOO_BIG;
		}
		evbuffer_drain(in, n);
		s->bdat_remaining -= n;
	}
	return s->bdat_remaining == 0;
}

/* bdat_chunk_done - RFC 3030 3: every chunk gets its own reply.  A chunk
 * refused at the command (no transaction) is discarded and answered with
 * its error; a content error refuses the whole message at once and resets
 * the transaction, so chunks pipelined after it meet "no transaction". */
static void bdat_chunk_done(struct session *s)
{
	if (s->bdat_failed) {
		s->bdat_failed = 0;
		s->state = s->bdat_prev_state;
		session_error(s, s->bdat_error);
		return;
	}
	if (s->ds.error != DATA_OK) {
		log_info("session %lu: message refused: %s", s->serial, data_error_text(s->ds.error));
		session_reset_transaction(s);
		s->state = SS_READY;
		session_error(s, data_error_reply(s->ds.error));
		return;
	}
	if (s->bdat_last) {
		session_commit_message(s);
		return;
	}
	s->state = SS_RCPT;
	session_replyf(s, 250, "2.0.0", "%llu octets received", (unsigned long long)s->ds.size);
}

static int mail_or_rcpt(const char *line, size_t len)
{
	return len >= 5 && (strncasecmp(line, "MAIL ", 5) == 0 || strncasecmp(line, "RCPT ", 5) == 0);
}

/* take_line - the next command line from IN into LINE; 1 when one was
 * taken, 0 when more input is needed. */
static int take_line(struct session *s, struct evbuffer *in, char *line, size_t *len)
{
	struct evbuffer_ptr eol = evbuffer_search(in, "\n", 1, NULL);
	if (eol.pos < 0) {
		size_t have = evbuffer_get_length(in);
		if (have >= LINE_MAX_DSN) {
			evbuffer_drain(in, have);
			s->skipping_long_line = 1;
		}
		return 0;
	}
	size_t n = (size_t)eol.pos; /* bytes before the LF */
	if (s->skipping_long_line || n + 1 > LINE_MAX_DSN) {
		evbuffer_drain(in, n + 1);
		s->skipping_long_line = 0;
		*len = SIZE_MAX; /* over-long */
		return 1;
	}
	evbuffer_remove(in, line, n + 1);
	line[n] = '\0';
	*len = n;
	return 1;
}

static void process_input(struct session *s)
{
	while (s->state != SS_BUSY && s->state != SS_CLOSING) {
		/* Fetched anew each time: STARTTLS replaces the bufferevent. */
		struct evbuffer *in = bufferevent_get_input(s->bev);
		if (evbuffer_get_length(bufferevent_get_output(s->bev)) > OUT_HIGH) {
			bufferevent_disable(s->bev, EV_READ); /* on_write resumes */
			return;
		}
		if (s->state == SS_DATA) {
			if (!feed_data(s, in))
				break;
			if (s->ds.error != DATA_OK) {
				log_info("session %lu: message refused: %s", s->serial,
					 data_error_text(s->ds.error));
				session_error(s, data_error_reply(s->ds.error));
				session_reset_transaction(s);
				if (s->state != SS_CLOSING)
					s->state = SS_READY;
			} else {
				session_commit_message(s);
			}
			continue;
		}
		if (s->state == SS_BDAT) {
			if (!feed_bdat(s, in))
				break;
			bdat_chunk_done(s);
			continue;
		}
		char line[LINE_MAX_DSN + 1];
		size_t len;
		if (!take_line(s, in, line, &len))
			break;
		if (len == SIZE_MAX) {
			session_error(s, SMTP_REPLY(500, "5.5.2", "Line too long"));
			continue;
		}
		if (len == 0 || line[len - 1] != '\r') {
			/* RFC 5321 2.3.8: lines end with CRLF; a bare LF is how
			 * smuggling starts, so it is refused everywhere. */
			session_error(s, SMTP_REPLY(500, "5.5.2", "Syntax error: line must end with CRLF"));
			continue;
		}
		line[--len] = '\0';
		if (len + 2 > SMTP_CMD_LINE_MAX && !mail_or_rcpt(line, len)) {
			session_error(s, SMTP_REPLY(500, "5.5.2", "Line too long"));
			continue;
		}
		if (s->auth_step)
			session_auth_response(s, line, len, s->auth_step);
		else
			session_command(s, line, len);
	}
	if (s->state != SS_CLOSING && s->state != SS_BUSY)
		set_timeout(s);
}

void session_resume(struct session *s)
{
	if (s->state == SS_CLOSING)
		return;
	bufferevent_enable(s->bev, EV_READ);
	set_timeout(s);
	process_input(s);
}

static void on_read(struct bufferevent *bev, void *arg)
{
	process_input(arg);
}

/* tls_bytes_pending - after STARTTLS the session's bufferevent is a filter:
 * its write callback means the reply reached the TLS layer, not the
 * socket; the encrypted bytes may still wait in the socket bufferevent. */
static int tls_bytes_pending(struct session *s)
{
	struct bufferevent *under = bufferevent_get_underlying(s->bev);
	return under && evbuffer_get_length(bufferevent_get_output(under)) > 0;
}

static void close_when_flushed(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;
	if (tls_bytes_pending(s) && ++s->close_checks < 500) {
		struct timeval tv = { 0, 10 * 1000 };
		evtimer_add(s->close_timer, &tv);
		return;
	}
	smtp_server_session_closed(s->server, s);
}

static void on_write(struct bufferevent *bev, void *arg)
{
	struct session *s = arg;
	if (s->state == SS_CLOSING) {
		if (!tls_bytes_pending(s)) {
			smtp_server_session_closed(s->server, s);
			return;
		}
		/* Poll the socket's buffer briefly (at most 5 s); the client
		 * is owed its last reply. */
		if (!s->close_timer)
			s->close_timer = evtimer_new(s->ctx->base, close_when_flushed, s);
		if (!s->close_timer) {
			smtp_server_session_closed(s->server, s);
			return;
		}
		close_when_flushed(-1, 0, s);
		return;
	}
	/* Output drained below the pause threshold: read again. */
	if (s->state != SS_BUSY && !(bufferevent_get_enabled(bev) & EV_READ)) {
		bufferevent_enable(bev, EV_READ);
		process_input(s);
	}
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	struct session *s = arg;
	if (what & BEV_EVENT_CONNECTED) {
		char desc[160];
		tls_describe(bufferevent_openssl_get_ssl(bev), desc, sizeof desc);
		log_info("session %lu: TLS established: %s", s->serial, desc);
		return;
	}
	if ((what & BEV_EVENT_ERROR) && s->tls) {
		unsigned long e;
		char buf[200];
		while ((e = bufferevent_get_openssl_error(bev))) {
			ERR_error_string_n(e, buf, sizeof buf);
			log_info("session %lu: TLS error from %s: %s", s->serial, s->peer_text, buf);
		}
	}
	if (what & BEV_EVENT_TIMEOUT) {
		if (s->state == SS_CLOSING) {
			smtp_server_session_closed(s->server, s);
			return;
		}
		if (s->state == SS_BUSY) {
			/* Our own commit is slow, not the client: wait. */
			bufferevent_enable(bev, EV_READ);
			return;
		}
		log_info("session %lu: timeout from %s", s->serial, s->peer_text);
		session_reset_transaction(s);
		session_close_after_reply(s, SMTP_REPLY(421, "4.4.2", "Timeout, closing connection"));
		if (s->state == SS_CLOSING)
			bufferevent_enable(bev, EV_WRITE);
		return;
	}
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		if (s->state == SS_DATA || s->state == SS_BDAT)
			log_info("session %lu: lost connection from %s in the middle of a message",
				 s->serial, s->peer_text);
		if (s->state == SS_BUSY) {
			/* The commit callback owns the session until it runs. */
			s->dead = 1;
			bufferevent_disable(bev, EV_READ | EV_WRITE);
			return;
		}
		smtp_server_session_closed(s->server, s);
	}
}

/* session_start_tls - RFC 3207 4: the 220 goes out in plaintext, then the
 * handshake; anything the client sent after STARTTLS before the handshake
 * was never protected and is thrown away (4.2: command injection), and the
 * session starts over from the greeting state. */
int session_start_tls(struct session *s)
{
	struct bufferevent *plain = s->bev;
	SSL *ssl = SSL_new(s->ctx->tls);
	if (!ssl)
		return -1;
	session_reply(s, SMTP_REPLY(220, "2.0.0", "Ready to start TLS"));
	struct evbuffer *in = bufferevent_get_input(plain);
	size_t injected = evbuffer_get_length(in);
	if (injected) {
		log_info("session %lu: discarded %zu bytes sent before the TLS handshake", s->serial,
			 injected);
		evbuffer_drain(in, injected);
	}
	struct bufferevent *tls = bufferevent_openssl_filter_new(
		s->ctx->base, plain, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (!tls) {
		SSL_free(ssl);
		return -1;
	}
	s->bev = tls;
	s->tls = 1;
	bufferevent_setcb(tls, on_read, on_write, on_event, s);
	bufferevent_setwatermark(tls, EV_READ, 0, IN_HIGH);
	bufferevent_enable(tls, EV_READ | EV_WRITE);
	session_reset_transaction(s);
	free(s->helo);
	s->helo = NULL;
	s->esmtp = 0;
	s->state = SS_INIT;
	set_timeout(s);
	return 0;
}
