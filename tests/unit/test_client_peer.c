/* test_client_peer.c - the outgoing SMTP client against a scripted server
 * on a loopback socket in the same loop, for what smtp-sink cannot do:
 * pipelining proven (no reply before every RCPT arrived), a recipient
 * refused among accepted ones, RSET after a failed transaction, SIZE,
 * HELO fallback, STARTTLS with a forged reply behind the 220, AUTH PLAIN,
 * require_tls, an endless reply line, silence, a connection lost in the
 * body, an unreadable body, a client freed from its own callback. */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/listener.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <strings.h>

#include "auth/tls.h"
#include "client_harness.h"

struct peer {
	struct evconnlistener *lis;
	struct bufferevent *bev;
	SSL_CTX *ssl;
	int port;
	/* behaviour */
	const char *greeting; /* NULL: say nothing */
	const char *ehlo;     /* EHLO reply, CRLF-terminated lines */
	const char *ehlo_tls; /* EHLO reply after STARTTLS */
	int reject_ehlo;      /* 502 to EHLO */
	int hold_rcpts;	      /* answer MAIL/RCPT only once this many RCPTs came */
	int close_in_body;    /* close the connection at the first body line */
	size_t flood;	      /* greeting of "220 " and FLOOD bytes without a line end */
	/* what happened */
	char log[8192]; /* command lines, "[tls]" when TLS started */
	size_t loglen;
	char body[8192]; /* data lines as received, stuffed, with CRLF */
	size_t bodylen;
	char held[4096];
	size_t heldlen;
	int rcpts_seen, in_data, closed;
	size_t unsent_at_close;
};

static void peer_log(struct peer *p, const char *line)
{
	p->loglen += (size_t)snprintf(p->log + p->loglen, sizeof p->log - p->loglen, "%s\n", line);
	if (p->loglen >= sizeof p->log)
		p->loglen = sizeof p->log - 1;
}

static void peer_close(struct peer *p)
{
	if (p->bev) {
		p->unsent_at_close = evbuffer_get_length(bufferevent_get_output(p->bev));
		bufferevent_free(p->bev);
		p->bev = NULL;
	}
	p->closed = 1;
}

static void peer_read(struct bufferevent *bev, void *arg);

static void peer_event(struct bufferevent *bev, short what, void *arg)
{
	struct peer *p = arg;
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		peer_close(p);
}

static void peer_write_done(struct bufferevent *bev, void *arg)
{
	struct peer *p = arg;
	if (p->closed == 2) /* after 221 */
		peer_close(p);
}

static void peer_say(struct peer *p, const char *s)
{
	bufferevent_write(p->bev, s, strlen(s));
}

static void peer_starttls(struct peer *p)
{
	/* A forged reply right behind the 220 must be ignored by the client. */
	peer_say(p, "220 2.0.0 go ahead\r\n250 2.0.0 injected\r\n");
	struct evbuffer *in = bufferevent_get_input(p->bev);
	evbuffer_drain(in, evbuffer_get_length(in));
	SSL *ssl = SSL_new(p->ssl);
	p->bev = bufferevent_openssl_filter_new(base, p->bev, ssl, BUFFEREVENT_SSL_ACCEPTING,
						BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(p->bev, peer_read, peer_write_done, peer_event, p);
	bufferevent_enable(p->bev, EV_READ | EV_WRITE);
	peer_log(p, "[tls]");
}

/* peer_auth - RFC 4616 PLAIN, "\0user\0secret" expected. */
static void peer_auth(struct peer *p, const char *b64)
{
	unsigned char raw[256];
	int n = EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)strlen(b64));
	static const char want[] = "\0user\0secret";
	/* EVP_DecodeBlock counts padding bytes as zeros at the end. */
	int ok = n >= (int)sizeof want - 1 && !memcmp(raw, want, sizeof want - 1);
	peer_say(p, ok ? "235 2.7.0 ok\r\n" : "535 5.7.8 no\r\n");
}

static void peer_command(struct peer *p, const char *line)
{
	peer_log(p, line);
	if (!strncasecmp(line, "EHLO", 4)) {
		peer_say(p, p->reject_ehlo			     ? "502 5.5.2 what?\r\n"
			    : strstr(p->log, "[tls]") && p->ehlo_tls ? p->ehlo_tls
								     : p->ehlo);
	} else if (!strncasecmp(line, "HELO", 4)) {
		peer_say(p, "250 peer.test\r\n");
	} else if (!strcasecmp(line, "STARTTLS")) {
		peer_starttls(p);
	} else if (!strncasecmp(line, "AUTH PLAIN ", 11)) {
		peer_auth(p, line + 11);
	} else if (!strncasecmp(line, "MAIL", 4) || !strncasecmp(line, "RCPT", 4)) {
		const char *reply = strstr(line, "bad") ? "550 5.1.1 no such user\r\n"
				    : line[0] == 'M'	? "250 2.1.0 sender ok\r\n"
							: "250 2.1.5 recipient ok\r\n";
		p->rcpts_seen += line[0] == 'R';
		p->heldlen += (size_t)snprintf(p->held + p->heldlen, sizeof p->held - p->heldlen,
					       "%s", reply);
		if (p->rcpts_seen >= p->hold_rcpts) {
			peer_say(p, p->held);
			p->heldlen = 0;
		}
	} else if (!strcasecmp(line, "DATA")) {
		peer_say(p, "354 go on\r\n");
		p->in_data = 1;
	} else if (!strcasecmp(line, "QUIT")) {
		peer_say(p, "221 2.0.0 bye\r\n");
		p->closed = 2;
	} else {
		peer_say(p, "250 2.0.0 ok\r\n");
	}
}

static void peer_read(struct bufferevent *bev, void *arg)
{
	struct peer *p = arg;
	char *line;
	size_t len;
	while (p->bev == bev && (line = evbuffer_readln(bufferevent_get_input(bev), &len,
							EVBUFFER_EOL_CRLF_STRICT))) {
		if (p->in_data) {
			if (p->close_in_body) {
				free(line);
				peer_close(p);
				return;
			}
			if (p->bodylen + len + 2 < sizeof p->body) {
				memcpy(p->body + p->bodylen, line, len);
				memcpy(p->body + p->bodylen + len, "\r\n", 2);
				p->bodylen += len + 2;
			}
			if (!strcmp(line, ".")) {
				p->in_data = 0;
				peer_say(p, "250 2.0.0 queued\r\n");
			}
		} else {
			peer_command(p, line);
		}
		free(line);
	}
}

static void peer_accept(struct evconnlistener *lis, evutil_socket_t fd, struct sockaddr *sa,
			int salen, void *arg)
{
	struct peer *p = arg;
	if (p->bev)
		bufferevent_free(p->bev); /* one client at a time: the newest */
	p->closed = p->in_data = p->rcpts_seen = 0;
	p->heldlen = 0;
	p->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(p->bev, peer_read, peer_write_done, peer_event, p);
	bufferevent_enable(p->bev, EV_READ | EV_WRITE);
	if (p->flood) {
		char *junk = malloc(p->flood);
		memset(junk, 'x', p->flood);
		memcpy(junk, "220 ", 4);
		bufferevent_write(p->bev, junk, p->flood);
		free(junk);
	} else if (p->greeting) {
		peer_say(p, p->greeting);
	}
}

static void peer_start(struct peer *p)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (!p->greeting && !p->flood && p->ehlo)
		p->greeting = "220 peer.test ESMTP\r\n";
	p->lis = evconnlistener_new_bind(base, peer_accept, p, LEV_OPT_CLOSE_ON_FREE, 8,
					 (struct sockaddr *)&sin, sizeof sin);
	CHECK(p->lis != NULL);
	struct sockaddr_in bound;
	socklen_t len = sizeof bound;
	getsockname(evconnlistener_get_fd(p->lis), (struct sockaddr *)&bound, &len);
	p->port = ntohs(bound.sin_port);
}

static void peer_stop(struct peer *p)
{
	if (p->bev)
		bufferevent_free(p->bev);
	p->bev = NULL;
	evconnlistener_free(p->lis);
}

static const char EHLO_PIPE[] = "250-peer.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n"
				"250-DSN\r\n250 SIZE 100000\r\n";

static void test_refused_recipient_keeps_its_reply_with_pipelining(void)
{
	/* The peer answers nothing until all three RCPTs are in: a client
	 * that does not pipeline MAIL and the RCPTs never gets a reply. */
	struct peer p = {.ehlo = EHLO_PIPE, .hold_rcpts = 3};
	peer_start(&p);
	int fd = body_file(BODY, sizeof BODY - 1);
	struct smtp_client_config cfg = test_config();
	struct outcome o = {0};
	struct smtp_client *c = connect_to(&cfg, p.port, &o);
	const struct smtp_client_rcpt rcpts[] = {
		{"good1@dest.test", SMTP_NOTIFY_NEVER, NULL},
		{"bad@dest.test", SMTP_NOTIFY_UNSET, NULL},
		{"good2@dest.test", SMTP_NOTIFY_DELAY | SMTP_NOTIFY_FAILURE, "bogus value"},
	};
	struct smtp_client_msg m = test_msg(fd, rcpts, 3);
	if (c)
		send_and_wait(c, &m, &o);
	CHECK(o.rcpts[0].code == 250 && o.rcpts[2].code == 250);
	CHECK_STR(o.rcpts[0].text, "queued");
	CHECK(o.rcpts[1].code == 550 && !o.rcpts[1].local);
	CHECK_STR(o.rcpts[1].enhanced, "5.1.1");
	CHECK_STR(o.rcpts[1].text, "no such user");
	CHECK(o.final.code == 250);
	char want[128];
	snprintf(want, sizeof want,
		 "MAIL FROM:<a@sender.test> SIZE=%zu BODY=8BITMIME RET=FULL ENVID=ENV123\n",
		 sizeof BODY - 1);
	CHECK(strstr(p.log, want));
	CHECK(strstr(p.log, "RCPT TO:<good1@dest.test> NOTIFY=NEVER\n"));
	/* An ORCPT that is not xtext is dropped, never sent raw. */
	CHECK(strstr(p.log, "RCPT TO:<good2@dest.test> NOTIFY=FAILURE,DELAY\n"));
	static const char wire[] = "Subject: test\r\n\r\nline one\r\n..leading dot\r\n"
				   "...two dots\r\ncaf\xc3\xa9\r\n..\r\nlast line without CRLF\r\n"
				   ".\r\n";
	CHECK(p.bodylen == sizeof wire - 1 && !memcmp(p.body, wire, sizeof wire - 1));

	/* After a clean transaction no RSET; the next one starts with MAIL. */
	p.hold_rcpts = 0;
	p.loglen = 0;
	p.log[0] = '\0';
	if (c)
		send_and_wait(c, &m, &o);
	CHECK(strncmp(p.log, "MAIL FROM:", 10) == 0);
	smtp_client_quit(&c);
	run_for(200);
	CHECK(strstr(p.log, "QUIT\n"));
	CHECK(p.closed);
	close(fd);
	peer_stop(&p);
}

static void test_refused_transaction_is_followed_by_rset(void)
{
	struct peer p = {.ehlo = EHLO_PIPE};
	peer_start(&p);
	int fd = body_file(BODY, sizeof BODY - 1);
	struct smtp_client_config cfg = test_config();
	struct outcome o = {0};
	struct smtp_client *c = connect_to(&cfg, p.port, &o);
	const struct smtp_client_rcpt bad[] = {{"bad@dest.test", 0, NULL}};
	struct smtp_client_msg m = test_msg(fd, bad, 1);
	if (c)
		send_and_wait(c, &m, &o);
	CHECK(o.rcpts[0].code == 550 && o.final.code == 550);
	CHECK(!strstr(p.log, "DATA"));
	p.loglen = 0;
	p.log[0] = '\0';
	m.rcpts = TWO_RCPTS;
	if (c)
		send_and_wait(c, &m, &o);
	CHECK(strncmp(p.log, "RSET\nMAIL FROM:", 15) == 0);
	CHECK(o.final.code == 250);
	smtp_client_free(&c);
	close(fd);
	peer_stop(&p);
}

static void test_size_limit_is_respected(void)
{
	struct peer p = {.ehlo = "250-peer.test\r\n250 SIZE 50\r\n"};
	peer_start(&p);
	int fd = body_file(BODY, sizeof BODY - 1);
	struct smtp_client_config cfg = test_config();
	struct outcome o = {0};
	struct smtp_client *c = connect_to(&cfg, p.port, &o);
	CHECK(c && smtp_client_ehlo(c)->size == 50);
	struct smtp_client_msg m = test_msg(fd, TWO_RCPTS, 2);
	if (c)
		send_and_wait(c, &m, &o);
	CHECK(o.rcpts[0].code == 552 && o.rcpts[1].code == 552 && o.rcpts[0].local);
	CHECK_STR(o.final.enhanced, "5.3.4");
	CHECK(!strstr(p.log, "MAIL"));
	/* A message within the limit goes, with SIZE= and without DSN or
	 * BODY parameters the peer did not announce (8-bit sent anyway). */
	m.length = 39; /* up to ".leading dot", without its CRLF */
	if (c)
		send_and_wait(c, &m, &o);
	CHECK(o.final.code == 250);
	CHECK(strstr(p.log, "MAIL FROM:<a@sender.test> SIZE=39\n"));
	CHECK(strstr(p.log, "RCPT TO:<x@dest.test>\n"));
	/* One dot doubled, the missing CRLF added, then ".". */
	CHECK(p.bodylen == 39 + 1 + 2 + 3);
	smtp_client_free(&c);
	close(fd);
	peer_stop(&p);
}

static void test_helo_fallback_when_ehlo_is_refused(void)
{
	struct peer p = {.ehlo = EHLO_PIPE, .reject_ehlo = 1};
	peer_start(&p);
	struct smtp_client_config cfg = test_config();
	struct outcome o = {0};
	struct smtp_client *c = connect_to(&cfg, p.port, &o);
	CHECK(o.conn.code == 220);
	CHECK(strstr(p.log, "EHLO client.test\nHELO client.test\n"));
	CHECK(c && smtp_client_ehlo(c)->ext == 0);
	smtp_client_free(&c);
	peer_stop(&p);
}

static SSL_CTX *server_ctx(void)
{
	char err[256] = "", dir[128];
	snprintf(dir, sizeof dir, "%s/tls-data", tmpdir);
	mkdir(dir, 0700);
	SSL_CTX *ctx =
		tls_server_new(NULL, NULL, dir, "peer.test", getuid(), getgid(), err, sizeof err);
	if (!ctx)
		fprintf(stderr, "tls_server_new: %s\n", err);
	CHECK(ctx != NULL);
	return ctx;
}

static void test_starttls_then_auth_plain(void)
{
	struct peer p = {.ehlo = "250-peer.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n",
			 .ehlo_tls = "250-peer.test\r\n250-PIPELINING\r\n250 AUTH LOGIN PLAIN\r\n",
			 .ssl = server_ctx()};
	peer_start(&p);
	int fd = body_file(BODY, sizeof BODY - 1);
	char err[200];
	struct smtp_client_config cfg = test_config();
	cfg.ssl_ctx = smtp_client_tls_ctx_new(err, sizeof err);
	cfg.require_tls = 1;
	cfg.auth_user = "user";
	cfg.auth_password = "secret";
	struct outcome o = {0};
	struct smtp_client *c = connect_to(&cfg, p.port, &o);
	SSL_CTX_free(cfg.ssl_ctx); /* the client holds its own reference */
	CHECK(o.conn.code == 220);
	CHECK(c && smtp_client_tls(c) && strstr(smtp_client_tls(c), "TLSv1."));
	CHECK(c && (smtp_client_ehlo(c)->auth & SMTP_AUTH_PLAIN));
	CHECK(strstr(p.log, "STARTTLS\n[tls]\nEHLO client.test\nAUTH PLAIN "));
	struct smtp_client_msg m = test_msg(fd, TWO_RCPTS, 2);
	if (c && o.conn.code == 220)
		send_and_wait(c, &m, &o);
	CHECK(o.final.code == 250 && o.rcpts[1].code == 250);
	CHECK(p.bodylen > 0);
	smtp_client_quit(&c);
	run_for(300);
	close(fd);
	peer_stop(&p);
	SSL_CTX_free(p.ssl);
}

static void test_require_tls_without_starttls_fails(void)
{
	struct peer p = {.ehlo = EHLO_PIPE};
	peer_start(&p);
	char err[200];
	struct smtp_client_config cfg = test_config();
	cfg.ssl_ctx = smtp_client_tls_ctx_new(err, sizeof err);
	cfg.require_tls = 1;
	struct outcome o = {0};
	struct smtp_client *c = connect_to(&cfg, p.port, &o);
	SSL_CTX_free(cfg.ssl_ctx);
	CHECK(o.conn.code == 421 && o.conn.local);
	CHECK_STR(o.conn.enhanced, "4.7.0");
	smtp_client_free(&c);
	/* AUTH without TLS is refused locally, never sent in the clear. */
	struct smtp_client_config cfg2 = test_config();
	cfg2.auth_user = "user";
	cfg2.auth_password = "secret";
	memset(&o, 0, sizeof o);
	c = connect_to(&cfg2, p.port, &o);
	CHECK(o.conn.code == 454 && o.conn.local);
	CHECK(!strstr(p.log, "AUTH"));
	smtp_client_free(&c);
	peer_stop(&p);
}

static void test_endless_greeting_line_is_refused(void)
{
	struct peer p = {.flood = 10u << 20};
	peer_start(&p);
	struct smtp_client_config cfg = test_config();
	struct outcome o = {0};
	struct smtp_client *c = connect_to(&cfg, p.port, &o);
	CHECK(o.conn.code == 421 && o.conn.local);
	CHECK_STR(o.conn.enhanced, "4.5.0");
	CHECK(strstr(o.conn.text, "reply line too long"));
	run_until(&p.closed, 5);
	/* The client hung up long before the 10 MB were through. */
	CHECK(p.closed && p.unsent_at_close > (8u << 20));
	smtp_client_free(&c);
	peer_stop(&p);
}

static void test_silent_server_times_out(void)
{
	struct peer p = {0};
	peer_start(&p);
	struct smtp_client_config cfg = test_config();
	cfg.timeouts.greeting = 300;
	struct outcome o = {0};
	struct smtp_client *c = connect_to(&cfg, p.port, &o);
	CHECK(o.conn.code == 421 && o.conn.local);
	CHECK_STR(o.conn.enhanced, "4.4.2");
	CHECK(strstr(o.conn.text, "greeting"));
	smtp_client_free(&c);
	peer_stop(&p);
}

static void test_connection_lost_in_body(void)
{
	struct peer p = {.ehlo = EHLO_PIPE, .close_in_body = 1};
	peer_start(&p);
	int fd = body_file(BODY, sizeof BODY - 1);
	struct smtp_client_config cfg = test_config();
	struct outcome o = {0};
	struct smtp_client *c = connect_to(&cfg, p.port, &o);
	const struct smtp_client_rcpt rcpts[] = {{"good@dest.test", 0, NULL},
						 {"bad@dest.test", 0, NULL}};
	struct smtp_client_msg m = test_msg(fd, rcpts, 2);
	if (c)
		send_and_wait(c, &m, &o);
	CHECK(o.rcpts[0].code == 421 && o.rcpts[0].local);
	CHECK_STR(o.rcpts[0].enhanced, "4.4.2");
	CHECK(o.rcpts[1].code == 550); /* refused at RCPT: keeps its reply */
	CHECK(c && !smtp_client_ready(c));
	/* A send on the dead connection is answered locally. */
	if (c)
		send_and_wait(c, &m, &o);
	CHECK(o.rcpts[0].code == 421 && o.rcpts[1].code == 421);
	smtp_client_free(&c);
	close(fd);
	peer_stop(&p);
}

static void test_unreadable_body_aborts_without_end_of_data(void)
{
	struct peer p = {.ehlo = EHLO_PIPE};
	peer_start(&p);
	int fd = body_file(BODY, sizeof BODY - 1);
	struct smtp_client_config cfg = test_config();
	struct outcome o = {0};
	struct smtp_client *c = connect_to(&cfg, p.port, &o);
	struct smtp_client_msg m = test_msg(fd, TWO_RCPTS, 1);
	m.length = 100000; /* longer than the file */
	if (c)
		send_and_wait(c, &m, &o);
	CHECK(o.rcpts[0].code == 451 && o.rcpts[0].local);
	CHECK_STR(o.final.enhanced, "4.3.0");
	run_until(&p.closed, 3);
	CHECK(p.closed && p.in_data); /* cut off before "." */
	smtp_client_free(&c);
	close(fd);
	peer_stop(&p);
}

static void test_done_callback_may_free_the_client(void)
{
	struct peer p = {.ehlo = EHLO_PIPE};
	peer_start(&p);
	int fd = body_file(BODY, sizeof BODY - 1);
	struct smtp_client_config cfg = test_config();
	struct outcome o = {0};
	struct smtp_client *c = connect_to(&cfg, p.port, &o);
	o.free_in_done = 1;
	o.owner = &c;
	struct smtp_client_msg m = test_msg(fd, TWO_RCPTS, 2);
	if (c)
		send_and_wait(c, &m, &o);
	CHECK(o.final.code == 250);
	CHECK(c == NULL);
	run_until(&p.closed, 3);
	CHECK(p.closed);
	close(fd);
	peer_stop(&p);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	if (harness_init() < 0) {
		fprintf(stderr, "test_client_peer: needs a temporary directory\n");
		return 1;
	}
	RUN(test_refused_recipient_keeps_its_reply_with_pipelining);
	RUN(test_refused_transaction_is_followed_by_rset);
	RUN(test_size_limit_is_respected);
	RUN(test_helo_fallback_when_ehlo_is_refused);
	RUN(test_starttls_then_auth_plain);
	RUN(test_require_tls_without_starttls_fails);
	RUN(test_endless_greeting_line_is_refused);
	RUN(test_silent_server_times_out);
	RUN(test_connection_lost_in_body);
	RUN(test_unreadable_body_aborts_without_end_of_data);
	RUN(test_done_callback_may_free_the_client);
	harness_done();
	return check_summary();
}
