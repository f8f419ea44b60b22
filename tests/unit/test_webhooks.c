/* test_webhooks.c - the pure parts of webhooks (which addresses may be
 * posted to, URL form, signature, secrets) and one POST against an
 * in-process evhttp server on loopback. */
#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"
#include "http/webhook_private.h"

/* verdict - webhook_addr_forbidden for the address TEXT. */
static const char *verdict(const char *text)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6};
	if (inet_pton(AF_INET, text, &sin.sin_addr) == 1)
		return webhook_addr_forbidden((struct sockaddr *)&sin);
	if (inet_pton(AF_INET6, text, &sin6.sin6_addr) == 1)
		return webhook_addr_forbidden((struct sockaddr *)&sin6);
	return "unparsable test address";
}

static void check_refused(const char *text, const char *kind)
{
	const char *v = verdict(text);
	if (!v || strcmp(v, kind) != 0)
		fprintf(stderr, "  %s: %s, expected %s\n", text, v ? v : "allowed", kind);
	CHECK(v && strcmp(v, kind) == 0);
}

static void check_allowed(const char *text)
{
	const char *v = verdict(text);
	if (v)
		fprintf(stderr, "  %s: refused as %s, expected allowed\n", text, v);
	CHECK(v == NULL);
}

static void test_ipv4_private_ranges_are_refused(void)
{
	check_refused("0.0.0.0", "unspecified (this network)");
	check_refused("0.255.255.255", "unspecified (this network)");
	check_refused("10.0.0.1", "private");
	check_refused("10.255.255.255", "private");
	check_refused("100.64.0.1", "shared (CGNAT)");
	check_refused("100.127.255.254", "shared (CGNAT)");
	check_refused("127.0.0.1", "loopback");
	check_refused("127.255.255.254", "loopback");
	check_refused("169.254.169.254", "link-local"); /* cloud metadata */
	check_refused("172.16.0.1", "private");
	check_refused("172.31.255.255", "private");
	check_refused("192.168.1.1", "private");
	check_refused("192.0.0.8", "reserved (IETF protocol assignments)");
	check_refused("192.0.2.1", "reserved (documentation)");
	check_refused("198.18.0.1", "reserved (benchmarking)");
	check_refused("198.19.255.255", "reserved (benchmarking)");
	check_refused("224.0.0.1", "multicast");
	check_refused("239.255.255.250", "multicast");
	check_refused("240.0.0.1", "reserved (and broadcast)");
	check_refused("255.255.255.255", "reserved (and broadcast)");
	/* The neighbours of each range are public. */
	check_allowed("1.1.1.1");
	check_allowed("8.8.8.8");
	check_allowed("11.0.0.1");
	check_allowed("100.63.255.255");
	check_allowed("100.128.0.0");
	check_allowed("126.255.255.255");
	check_allowed("128.0.0.1");
	check_allowed("169.253.255.255");
	check_allowed("172.15.255.255");
	check_allowed("172.32.0.0");
	check_allowed("192.167.255.255");
	check_allowed("192.169.0.0");
	check_allowed("198.20.0.0");
	check_allowed("223.255.255.255");
	check_allowed("93.184.216.34");
}

static void test_ipv6_private_ranges_are_refused(void)
{
	check_refused("::", "unspecified");
	check_refused("::1", "loopback");
	check_refused("fe80::1", "link-local");
	check_refused("febf:ffff::1", "link-local");
	check_refused("fec0::1", "site-local");
	check_refused("fc00::1", "unique-local");
	check_refused("fd12:3456:789a::1", "unique-local");
	check_refused("ff02::1", "multicast");
	check_refused("ff0e::101", "multicast");
	check_refused("2001:db8::1", "reserved (documentation)");
	check_refused("2001:0:4136:e378:8000:63bf:3fff:fdd2", "reserved (Teredo)");
	check_refused("100::1", "reserved (discard-only)");
	check_refused("64:ff9b:1::1", "reserved (local NAT64)");
	check_refused("::2", "reserved (IPv4-compatible)");
	check_refused("4000::1", "reserved (not global unicast)");
	check_allowed("2606:4700:4700::1111");
	check_allowed("2a00:1450:4001:80b::200e");
	check_allowed("2001:4860:4860::8888");
	check_allowed("2001:1::1"); /* next to Teredo's /32 */
	check_refused("fbff:ffff::1", "reserved (not global unicast)");
}

static void test_ipv4_inside_ipv6_is_judged_as_ipv4(void)
{
	/* IPv4-mapped (RFC 4291 2.5.5.2): what a dual-stack socket reaches. */
	check_refused("::ffff:127.0.0.1", "loopback");
	check_refused("::ffff:10.1.2.3", "private");
	check_refused("::ffff:169.254.169.254", "link-local");
	check_refused("::ffff:100.64.1.1", "shared (CGNAT)");
	check_refused("::ffff:0.0.0.0", "unspecified (this network)");
	check_allowed("::ffff:8.8.8.8");
	/* IPv4-compatible (deprecated) is refused whatever it holds. */
	check_refused("::127.0.0.1", "reserved (IPv4-compatible)");
	check_refused("::8.8.8.8", "reserved (IPv4-compatible)");
	/* NAT64 well-known prefix (RFC 6052) and 6to4 (RFC 3056). */
	check_refused("64:ff9b::127.0.0.1", "loopback");
	check_refused("64:ff9b::192.168.0.1", "private");
	check_allowed("64:ff9b::8.8.8.8");
	check_refused("2002:7f00:1::1", "loopback");
	check_refused("2002:a00:1::1", "private");
	check_allowed("2002:808:808::1");
}

static void test_non_ip_families_are_refused(void)
{
	struct sockaddr sa = {.sa_family = AF_UNIX};
	CHECK(webhook_addr_forbidden(&sa) != NULL);
}

/* parse_ok - URL parses; OUT filled. */
static int parse_ok(const char *url, struct webhook_url *out)
{
	char err[256] = "";
	int rc = webhook_url_parse(url, out, err, sizeof err);
	if (rc < 0)
		fprintf(stderr, "  %s: %s\n", url, err);
	return rc == 0;
}

static void test_urls_are_taken_apart(void)
{
	struct webhook_url u;
	CHECK(parse_ok("http://Hooks.Example.COM/tern?x=1&y=2", &u));
	CHECK(!u.tls && !u.literal && u.port == 80);
	CHECK_STR(u.host, "hooks.example.com");
	CHECK_STR(u.authority, "hooks.example.com");
	CHECK_STR(u.target, "/tern?x=1&y=2");
	CHECK(parse_ok("HTTPS://example.com", &u));
	CHECK(u.tls && u.port == 443);
	CHECK_STR(u.target, "/");
	CHECK_STR(u.authority, "example.com");
	CHECK(parse_ok("https://example.com:8443/a/b", &u));
	CHECK(u.port == 8443);
	CHECK_STR(u.authority, "example.com:8443");
	CHECK(parse_ok("http://[2001:DB8::1]:8080/h", &u));
	CHECK(u.literal && u.port == 8080);
	CHECK_STR(u.host, "2001:db8::1");
	CHECK_STR(u.authority, "[2001:db8::1]:8080");
	CHECK(parse_ok("http://192.0.2.7/", &u));
	CHECK(u.literal);
	CHECK_STR(u.host, "192.0.2.7");
	CHECK(parse_ok("http://example.com./x", &u));
	CHECK_STR(u.host, "example.com");
	CHECK(parse_ok("http://a.example:80/", &u));
	CHECK_STR(u.authority, "a.example"); /* the default port is not repeated */
	CHECK(parse_ok("http://h.example?q", &u));
	CHECK_STR(u.target, "/?q");
	CHECK(parse_ok("http://under_score.example/%41", &u));
	CHECK_STR(u.target, "/%41");
}

static void test_bad_urls_are_refused(void)
{
	static const char *const bad[] = {
		"",
		"example.com/hook",
		"ftp://example.com/",
		"file:///etc/passwd",
		"gopher://example.com/",
		"http://",
		"http:///path",
		"http://user:pw@example.com/",
		"http://@example.com/",
		"http://example.com/#frag",
		"http://example.com:0/",
		"http://example.com:65536/",
		"http://exa mple.com/",
		"http://example.com/a b",
		"http://example.com/\x01",
		"http://ex\xc3\xa4mple.com/",
		"http://[::1/",
		"http://[fe80::1%25eth0]/",
		"http://[v1.fe]/",
		"http://a..b/",
		"http://-/x",
		"http://2130706433/",
		"http://0x7f.1/",
		"http://1.2.3/",
		"http://example.com/%zz",
		"//example.com/",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct webhook_url u;
		char err[256] = "";
		int rc = webhook_url_parse(bad[i], &u, err, sizeof err);
		if (rc == 0)
			fprintf(stderr, "  accepted: %s\n", bad[i]);
		CHECK(rc == -1);
		CHECK(err[0] != '\0');
		CHECK(webhooks_url_check(bad[i], err, sizeof err) == -1);
	}
	/* Length: WEBHOOK_URL_MAX bytes pass, one more does not. */
	static char url[WEBHOOK_URL_MAX + 2];
	size_t pre = strlen("http://example.com/");
	memcpy(url, "http://example.com/", pre);
	memset(url + pre, 'a', WEBHOOK_URL_MAX - pre);
	url[WEBHOOK_URL_MAX] = '\0';
	char err[256];
	CHECK(webhooks_url_check(url, err, sizeof err) == 0);
	url[WEBHOOK_URL_MAX] = 'a';
	url[WEBHOOK_URL_MAX + 1] = '\0';
	CHECK(webhooks_url_check(url, err, sizeof err) == -1);
}

static void test_signature_known_answers(void)
{
	char sig[WEBHOOK_SIGNATURE_MAX];
	/* RFC 4231 4.3, test case 2. */
	const char *data = "what do ya want for nothing?";
	CHECK(webhook_sign("Jefe", data, strlen(data), sig) == 0);
	CHECK_STR(sig, "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
	/* A webhook's secret and an event body, computed with Python's hmac:
	 * the key is the secret's hex text as written. */
	const char *secret = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
	const char *body =
		"{\"id\":42,\"time\":\"2026-11-29T08:30:00.123Z\",\"type\":\"delivered\","
		"\"message_id\":\"Q1\",\"recipient\":\"carol@example.org\","
		"\"user\":\"bob@tern.test\",\"detail\":\"250 ok\"}";
	CHECK(webhook_sign(secret, body, strlen(body), sig) == 0);
	CHECK_STR(sig, "sha256=60f88309dd0744c3ebad845148acd85c99dd4497ecb9d62ee805ce3ec8253b4a");
	CHECK(webhook_sign(secret, "", 0, sig) == 0);
	CHECK_STR(sig, "sha256=1637177535067e2306f08cb0fb01221f623c1a8127efbe158861237b105be535");
}

static void test_secrets_are_random_hex(void)
{
	char a[WEBHOOK_SECRET_HEX], b[WEBHOOK_SECRET_HEX];
	CHECK(webhook_secret_new(a) == 0);
	CHECK(webhook_secret_new(b) == 0);
	CHECK(strlen(a) == 64 && strlen(b) == 64);
	CHECK(strspn(a, "0123456789abcdef") == 64);
	CHECK(strcmp(a, b) != 0);
}

/* ---- one POST against evhttp on loopback ---- */

static struct event_base *base;

/* What the test server saw and how it answers. */
struct server {
	struct evhttp *http;
	int port;
	int status;	  /* to answer */
	size_t body_size; /* of the answer */
	int requests;
	char method[8], host[128], ctype[64], agent[32], event[32], sig[96], conn[16];
	char target[128], body[512];
};

static void copy_header(struct evkeyvalq *h, const char *name, char *out, size_t len)
{
	const char *v = evhttp_find_header(h, name);
	snprintf(out, len, "%s", v ? v : "");
}

static void on_server_request(struct evhttp_request *req, void *arg)
{
	struct server *s = arg;
	struct evkeyvalq *h = evhttp_request_get_input_headers(req);
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t n = evbuffer_get_length(in);
	s->requests++;
	snprintf(s->method, sizeof s->method, "%s",
		 evhttp_request_get_command(req) == EVHTTP_REQ_POST ? "POST" : "other");
	snprintf(s->target, sizeof s->target, "%s", evhttp_request_get_uri(req));
	copy_header(h, "Host", s->host, sizeof s->host);
	copy_header(h, "Content-Type", s->ctype, sizeof s->ctype);
	copy_header(h, "User-Agent", s->agent, sizeof s->agent);
	copy_header(h, "X-Tern-Event", s->event, sizeof s->event);
	copy_header(h, "X-Tern-Signature", s->sig, sizeof s->sig);
	copy_header(h, "Connection", s->conn, sizeof s->conn);
	if (n >= sizeof s->body)
		n = sizeof s->body - 1;
	evbuffer_remove(in, s->body, n);
	s->body[n] = '\0';
	struct evbuffer *out = evbuffer_new();
	for (size_t i = 0; out && i < s->body_size; i += 1024) {
		char chunk[1024];
		memset(chunk, 'x', sizeof chunk);
		evbuffer_add(out, chunk, sizeof chunk);
	}
	evhttp_send_reply(req, s->status, "Answer", out);
	if (out)
		evbuffer_free(out);
}

static int server_start(struct server *s)
{
	s->http = evhttp_new(base);
	struct evhttp_bound_socket *b =
		s->http ? evhttp_bind_socket_with_handle(s->http, "127.0.0.1", 0) : NULL;
	if (!b)
		return -1;
	struct sockaddr_in sin;
	socklen_t len = sizeof sin;
	getsockname(evhttp_bound_socket_get_fd(b), (struct sockaddr *)&sin, &len);
	s->port = ntohs(sin.sin_port);
	evhttp_set_gencb(s->http, on_server_request, s);
	return 0;
}

struct outcome {
	int calls, status;
	char error[WEBHOOK_ERROR_MAX];
};

static void on_outcome(void *arg, int status, const char *error)
{
	struct outcome *o = arg;
	o->calls++;
	o->status = status;
	snprintf(o->error, sizeof o->error, "%s", error ? error : "");
}

/* post - one POST of BODY to 127.0.0.1:PORT for URL (PATH on HOST:PORT);
 * waits for it. */
static struct outcome post(const char *host, int port, const char *path, const char *body)
{
	struct outcome o = {0};
	struct webhook_url u;
	char sig[WEBHOOK_SIGNATURE_MAX], err[256], url[256];
	snprintf(url, sizeof url, "http://%s:%d%s", host, port, path);
	CHECK(parse_ok(url, &u));
	CHECK(webhook_sign("s3cret", body, strlen(body), sig) == 0);
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(9)};
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	struct webhook_request r = {
		.url = &u,
		.addr = (struct sockaddr *)&sin,
		.addrlen = sizeof sin,
		.event_type = "delivered",
		.signature = sig,
		.body = body,
		.len = strlen(body),
	};
	struct webhook_post *p =
		webhook_post_start(base, NULL, &r, on_outcome, &o, err, sizeof err);
	CHECK(p != NULL);
	CHECK(o.calls == 0); /* never from inside the call */
	for (int i = 0; p && o.calls == 0 && i < 100000; i++)
		event_base_loop(base, EVLOOP_ONCE);
	CHECK(o.calls == 1);
	return o;
}

static void test_post_sends_the_event_with_its_headers(void)
{
	struct server s = {.status = 200};
	CHECK(server_start(&s) == 0);
	const char *body = "{\"id\":7,\"type\":\"delivered\"}";
	struct outcome o = post("hooks.example", s.port, "/in?k=v", body);
	CHECK(o.status == 200);
	CHECK_STR(o.error, "");
	CHECK(s.requests == 1);
	CHECK_STR(s.method, "POST");
	CHECK_STR(s.target, "/in?k=v");
	/* The URL's host, though the connection went to an address. */
	char want[64];
	snprintf(want, sizeof want, "hooks.example:%d", s.port);
	CHECK_STR(s.host, want);
	CHECK_STR(s.ctype, "application/json");
	CHECK_STR(s.agent, "tern");
	CHECK_STR(s.event, "delivered");
	CHECK_STR(s.conn, "close");
	CHECK_STR(s.body, body);
	char sig[WEBHOOK_SIGNATURE_MAX];
	webhook_sign("s3cret", body, strlen(body), sig);
	CHECK_STR(s.sig, sig);
	evhttp_free(s.http);
}

static void test_post_outcomes(void)
{
	struct server s = {.status = 500};
	CHECK(server_start(&s) == 0);
	struct outcome o = post("h.example", s.port, "/", "{}");
	CHECK(o.status == 500);
	CHECK(strstr(o.error, "HTTP 500") != NULL);
	s.status = 204;
	o = post("h.example", s.port, "/", "{}");
	CHECK(o.status == 204 && o.error[0] == '\0');
	/* A big answer is not read to its end: the status decides. */
	s.status = 200;
	s.body_size = 4 * WEBHOOK_RESPONSE_MAX;
	o = post("h.example", s.port, "/", "{}");
	CHECK(o.status == 200 && o.error[0] == '\0');
	s.status = 404;
	o = post("h.example", s.port, "/", "{}");
	CHECK(o.status == 404 && strstr(o.error, "HTTP 404"));
	evhttp_free(s.http);
	/* Nobody listens now. */
	o = post("h.example", s.port, "/", "{}");
	CHECK(o.status == 0);
	CHECK(strstr(o.error, "127.0.0.1") != NULL);
}

static void test_post_cancel_calls_nothing(void)
{
	struct server s = {.status = 200};
	CHECK(server_start(&s) == 0);
	struct outcome o = {0};
	struct webhook_url u;
	char err[256];
	CHECK(parse_ok("http://h.example/", &u));
	u.port = (unsigned)s.port;
	struct sockaddr_in sin = {.sin_family = AF_INET};
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	struct webhook_request r = {
		.url = &u,
		.addr = (struct sockaddr *)&sin,
		.addrlen = sizeof sin,
		.event_type = "accepted",
		.signature = "sha256=00",
		.body = "{}",
		.len = 2,
	};
	struct webhook_post *p =
		webhook_post_start(base, NULL, &r, on_outcome, &o, err, sizeof err);
	CHECK(p != NULL);
	webhook_post_cancel(&p);
	CHECK(p == NULL);
	for (int i = 0; i < 20; i++)
		event_base_loop(base, EVLOOP_NONBLOCK);
	CHECK(o.calls == 0);
	evhttp_free(s.http);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	base = event_base_new();
	RUN(test_ipv4_private_ranges_are_refused);
	RUN(test_ipv6_private_ranges_are_refused);
	RUN(test_ipv4_inside_ipv6_is_judged_as_ipv4);
	RUN(test_non_ip_families_are_refused);
	RUN(test_urls_are_taken_apart);
	RUN(test_bad_urls_are_refused);
	RUN(test_signature_known_answers);
	RUN(test_secrets_are_random_hex);
	RUN(test_post_sends_the_event_with_its_headers);
	RUN(test_post_outcomes);
	RUN(test_post_cancel_calls_nothing);
	event_base_free(base);
	return check_summary();
}
