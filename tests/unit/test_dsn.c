/* test_dsn.c - delivery status notifications: who gets one (NOTIFY), the
 * status codes, xtext, and the composed message itself, checked line by
 * line in C (CRLF, 998 octets, ASCII) and parsed back with Python's email
 * package (MIME structure, report fields, the returned original). */
#include <errno.h>
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "queue/dsn.h"
#include "queue/retry.h"
#include "smtp/command.h"

#define NOW ((time_t)1700000000) /* Tue, 14 Nov 2023 22:13:20 +0000 */

/* Prints one "key=value" line per fact the tests look at. */
static const char py_script[] =
	"import sys, email, email.policy, email.utils\n"
	"m = email.message_from_binary_file(open(sys.argv[1], 'rb'), "
	"policy=email.policy.compat32)\n"
	"def say(k, v): print('%s=%s' % (k, v))\n"
	"def bars(s): return s.replace('\\r\\n', '\\n').replace('\\n', '|')\n"
	"say('type', m.get_content_type())\n"
	"say('report-type', m.get_param('report-type'))\n"
	"say('defects', len(m.defects))\n"
	"for h in ('From', 'To', 'Subject', 'Message-ID', 'Auto-Submitted', 'MIME-Version'):\n"
	"    say(h, m[h])\n"
	"say('date-ok', email.utils.parsedate_to_datetime(m['Date']).timestamp())\n"
	"parts = m.get_payload()\n"
	"say('nparts', len(parts))\n"
	"for i, p in enumerate(parts):\n"
	"    say('part%d' % i, p.get_content_type())\n"
	"    say('part%d-defects' % i, len(p.defects))\n"
	"    t = p.get_content_type()\n"
	"    if t == 'text/plain':\n"
	"        t = p.get_payload(decode=True).decode('utf-8')\n"
	"        say('text', bars(t))\n"
	"        say('flat', ' '.join(t.split()))\n"
	"    elif t == 'message/delivery-status':\n"
	"        for j, b in enumerate(p.get_payload()):\n"
	"            for k, v in b.items():\n"
	"                say('b%d.%s' % (j, k), ' '.join(v.split()))\n"
	"    elif t in ('message/rfc822', 'message/global'):\n"
	"        o = p.get_payload()[0]\n"
	"        say('orig-subject', o['Subject'])\n"
	"        say('orig-body', bars(o.get_payload()))\n"
	"    else:\n"
	"        say('headers', bars(p.get_payload()))\n";

static char script_path[] = "/tmp/test_dsn_py_XXXXXX";

/* A message as the spool holds it: an envelope text before it, so the
 * offset matters. */
static const char original[] = "Received: from client.example.org\r\n"
			       "From: Alice <alice@example.org>\r\n"
			       "To: bob@example.net\r\n"
			       "Subject: hello there\r\n"
			       "\r\n"
			       "The body, line one.\r\n"
			       "Line two.\r\n";
static const char spool_prefix[] = "tern-spool 1\nid ABC\n\n";

struct body {
	int fd;
	long offset;
	size_t size;
};

static struct body body_file(const char *msg, size_t len)
{
	char path[] = "/tmp/test_dsn_body_XXXXXX";
	struct body b = {mkstemp(path), (long)strlen(spool_prefix), len};
	unlink(path);
	CHECK(write(b.fd, spool_prefix, strlen(spool_prefix)) == (ssize_t)strlen(spool_prefix));
	CHECK(write(b.fd, msg, len) == (ssize_t)len);
	return b;
}

static void envelope_fixture(struct envelope *env)
{
	memset(env, 0, sizeof *env);
	strcpy(env->id, "Q1a2B3");
	env->sender = "alice@example.org";
	env->envid = "QQ+2B314";
	env->received = NOW - 3600;
}

static struct dsn_report report_fixture(enum dsn_kind kind, const struct envelope *env,
					const struct dsn_rcpt *rcpts, size_t n, struct body b)
{
	struct dsn_report r = {
		.kind = kind,
		.env = env,
		.rcpts = rcpts,
		.nrcpts = n,
		.hostname = "mx.test",
		.message_id = "DSNID1",
		.now = NOW,
		.body_fd = b.fd,
		.body_offset = b.offset,
		.body_size = b.size,
	};
	return r;
}

/* compose - run dsn_compose and return the message as a C string (the
 * caller frees), NULL on failure. */
static char *compose(const struct dsn_report *r, struct dsn_info *info, size_t *len)
{
	struct evbuffer *b = evbuffer_new();
	char *s = NULL;
	if (dsn_compose(r, b, info) == 0) {
		*len = evbuffer_get_length(b);
		s = malloc(*len + 1);
		evbuffer_remove(b, s, *len);
		s[*len] = '\0';
	}
	evbuffer_free(b);
	return s;
}

/* check_lines - every line ends in CRLF, none is over 998 octets, and the
 * header section is ASCII unless UTF8_HEADERS. */
static void check_lines(const char *m, size_t len, int utf8_headers)
{
	size_t line = 0, max = 0, bare = 0, high = 0;
	int in_headers = 1;
	for (size_t i = 0; i < len; i++) {
		if (m[i] == '\r' && i + 1 < len && m[i + 1] == '\n') {
			if (line == 0)
				in_headers = 0;
			line = 0;
			i++;
			continue;
		}
		if (m[i] == '\r' || m[i] == '\n')
			bare++;
		if (in_headers && (unsigned char)m[i] >= 0x80)
			high++;
		if (++line > max)
			max = line;
	}
	CHECK(bare == 0);
	CHECK(max <= 998);
	CHECK(len >= 2 && m[len - 2] == '\r' && m[len - 1] == '\n');
	if (!utf8_headers)
		CHECK(high == 0);
}

/* parse - the Python summary of message M, malloc'ed. */
static char *parse(const char *m, size_t len)
{
	char path[] = "/tmp/test_dsn_msg_XXXXXX", cmd[256];
	int fd = mkstemp(path);
	CHECK(write(fd, m, len) == (ssize_t)len);
	close(fd);
	snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s %s", script_path, path);
	FILE *p = popen(cmd, "r");
	size_t cap = 1 << 16, n = 0;
	char *out = malloc(cap);
	size_t got;
	while (p && (got = fread(out + n, 1, cap - n - 1, p)) > 0) {
		n += got;
		if (n + 1 == cap)
			out = realloc(out, cap *= 2);
	}
	out[n] = '\0';
	CHECK(p && pclose(p) == 0);
	unlink(path);
	return out;
}

/* has - does the Python summary S have the line LINE? */
static int has(const char *s, const char *line)
{
	size_t n = strlen(line);
	for (const char *p = s; (p = strstr(p, line)); p++)
		if ((p == s || p[-1] == '\n') && p[n] == '\n')
			return 1;
	fprintf(stderr, "missing line: %s\n", line);
	return 0;
}

/* ------------------------------------------------------------------ tests */

static void test_dsn_wants_follows_notify(void)
{
	const unsigned U = SMTP_NOTIFY_UNSET, N = SMTP_NOTIFY_NEVER, S = SMTP_NOTIFY_SUCCESS,
		       F = SMTP_NOTIFY_FAILURE, D = SMTP_NOTIFY_DELAY;
	const char *a = "a@example.org";
	CHECK(dsn_wants(a, U, DSN_FAILURE, 0));
	CHECK(!dsn_wants(a, U, DSN_SUCCESS, 1));
	CHECK(!dsn_wants(a, U, DSN_DELAY, 0)); /* remote sender: no warning */
	CHECK(dsn_wants(a, U, DSN_DELAY, 1));  /* local sender: warned by default */
	CHECK(!dsn_wants(a, N, DSN_FAILURE, 1));
	CHECK(!dsn_wants(a, N, DSN_DELAY, 1));
	CHECK(!dsn_wants(a, N, DSN_SUCCESS, 1));
	CHECK(dsn_wants(a, S, DSN_SUCCESS, 0));
	CHECK(!dsn_wants(a, S, DSN_FAILURE, 0));
	CHECK(!dsn_wants(a, S, DSN_DELAY, 1)); /* asked, and not for this */
	CHECK(dsn_wants(a, F, DSN_FAILURE, 0));
	CHECK(!dsn_wants(a, F, DSN_DELAY, 1));
	CHECK(dsn_wants(a, F | D, DSN_DELAY, 0));
	CHECK(dsn_wants(a, S | F | D, DSN_SUCCESS, 0));
	CHECK(!dsn_wants("", U, DSN_FAILURE, 1)); /* never to the null sender */
	CHECK(!dsn_wants("", S | F | D, DSN_SUCCESS, 1));
	CHECK(!dsn_wants(NULL, F, DSN_FAILURE, 1));
}

static void test_status_from_reply(void)
{
	char s[DSN_STATUS_MAX];
	CHECK(dsn_status_from_reply("550 5.1.1 <b@x>: no such user", s) == 5);
	CHECK_STR(s, "5.1.1");
	CHECK(dsn_status_from_reply("550-5.7.1 policy\n550 5.7.1 more", s) == 5);
	CHECK_STR(s, "5.7.1");
	CHECK(dsn_status_from_reply("452 4.2.2 mailbox full", s) == 4);
	CHECK_STR(s, "4.2.2");
	CHECK(dsn_status_from_reply("250 2.0.0 Ok: queued as 1234", s) == 2);
	CHECK_STR(s, "2.0.0");
	CHECK(dsn_status_from_reply("421 mx busy, try later", s) == 4);
	CHECK_STR(s, "4.0.0");
	CHECK(dsn_status_from_reply("554", s) == 5);
	CHECK_STR(s, "5.0.0");
	CHECK(dsn_status_from_reply("550 4.1.1 class disagrees", s) == 5);
	CHECK_STR(s, "5.0.0");
	CHECK(dsn_status_from_reply("550 5.1234.1 too many digits", s) == 5);
	CHECK_STR(s, "5.0.0");
	CHECK(dsn_status_from_reply("550 5.1.1x glued", s) == 5);
	CHECK_STR(s, "5.0.0");
	CHECK(dsn_status_from_reply("550 5.123.456", s) == 5);
	CHECK_STR(s, "5.123.456");
	CHECK(dsn_status_from_reply("354 go ahead", s) == 0);
	CHECK_STR(s, "");
	CHECK(dsn_status_from_reply("5500 x", s) == 0);
	CHECK(dsn_status_from_reply("hello", s) == 0);
	CHECK(dsn_status_from_reply("", s) == 0);
	CHECK(dsn_status_from_reply(NULL, s) == 0);
	CHECK_STR(s, "");
}

static void test_xtext_decode(void)
{
	char out[64];
	CHECK(dsn_xtext_decode("a+2Bb+3Dc@x", 11, out, sizeof out) == 7);
	CHECK_STR(out, "a+b=c@x");
	CHECK(dsn_xtext_decode("j+c3+b6rg", 9, out, sizeof out) == 5); /* lower-case hex */
	CHECK_STR(out, "j\xc3\xb6rg");
	CHECK(dsn_xtext_decode("", 0, out, sizeof out) == 0);
	CHECK_STR(out, "");
	CHECK(dsn_xtext_decode("ab+2", 4, out, sizeof out) == -1);
	CHECK(dsn_xtext_decode("ab+G0", 5, out, sizeof out) == -1);
	CHECK(dsn_xtext_decode("a=b", 3, out, sizeof out) == -1);
	CHECK(dsn_xtext_decode("a b", 3, out, sizeof out) == -1);
	CHECK(dsn_xtext_decode("a+00", 4, out, sizeof out) == -1); /* NUL */
	CHECK(dsn_xtext_decode("abcdef", 6, out, 6) == -1);	   /* no room for NUL */
	CHECK(dsn_xtext_decode("abcdef", 6, out, 7) == 6);
}

static void test_failure_bounce_structure(void)
{
	struct envelope env;
	envelope_fixture(&env);
	struct dsn_rcpt rc[2] = {
		{.address = "bob@example.net",
		 .reply = "550 5.1.1 <bob@example.net>: Recipient address rejected",
		 .remote_mta = "mx1.example.net",
		 .last_attempt = NOW - 60},
		{.address = "carol@example.com",
		 .status = RETRY_EXPIRED_STATUS,
		 .reason = RETRY_EXPIRED_TEXT,
		 .reply = "451-4.3.0 try again\r\n451 4.3.0 later"},
	};
	struct body b = body_file(original, strlen(original));
	struct dsn_report r = report_fixture(DSN_FAILURE, &env, rc, 2, b);
	struct dsn_info info = {-1, -1, -1};
	size_t len = 0;
	char *m = compose(&r, &info, &len);
	CHECK(m != NULL);
	if (!m)
		return;
	check_lines(m, len, 0);
	CHECK(info.eight_bit == 0 && info.smtputf8 == 0 && info.headers_only == 0);
	char *py = parse(m, len);
	CHECK(has(py, "type=multipart/report"));
	CHECK(has(py, "report-type=delivery-status"));
	CHECK(has(py, "defects=0"));
	CHECK(has(py, "From=\"Mail Delivery System\" <MAILER-DAEMON@mx.test>"));
	CHECK(has(py, "To=<alice@example.org>"));
	CHECK(has(py, "Subject=Undelivered Mail Returned to Sender"));
	CHECK(has(py, "Message-ID=<DSNID1@mx.test>"));
	CHECK(has(py, "Auto-Submitted=auto-replied"));
	CHECK(has(py, "MIME-Version=1.0"));
	CHECK(has(py, "date-ok=1700000000.0"));
	CHECK(has(py, "nparts=3"));
	CHECK(has(py, "part0=text/plain"));
	CHECK(has(py, "part1=message/delivery-status"));
	CHECK(has(py, "part2=text/rfc822-headers"));
	CHECK(has(py, "part0-defects=0") && has(py, "part1-defects=0") &&
	      has(py, "part2-defects=0"));
	/* per-message fields */
	CHECK(has(py, "b0.Reporting-MTA=dns; mx.test"));
	CHECK(has(py, "b0.Original-Envelope-Id=QQ+314")); /* xtext decoded */
	CHECK(has(py, "b0.Arrival-Date=Tue, 14 Nov 2023 21:13:20 +0000"));
	CHECK(has(py, "b0.X-Tern-Queue-ID=Q1a2B3"));
	/* the first recipient */
	CHECK(has(py, "b1.Final-Recipient=rfc822; bob@example.net"));
	CHECK(has(py, "b1.Action=failed"));
	CHECK(has(py, "b1.Status=5.1.1"));
	CHECK(has(py, "b1.Remote-MTA=dns; mx1.example.net"));
	CHECK(has(py, "b1.Diagnostic-Code=smtp; 550 5.1.1 <bob@example.net>: "
		      "Recipient address rejected"));
	CHECK(has(py, "b1.Last-Attempt-Date=Tue, 14 Nov 2023 22:12:20 +0000"));
	CHECK(!strstr(py, "b1.Original-Recipient") && !strstr(py, "b1.Will-Retry-Until"));
	/* the expired one keeps 4.4.7 and the last reply */
	CHECK(has(py, "b2.Final-Recipient=rfc822; carol@example.com"));
	CHECK(has(py, "b2.Action=failed"));
	CHECK(has(py, "b2.Status=4.4.7"));
	CHECK(has(py, "b2.Diagnostic-Code=smtp; 451-4.3.0 try again 451 4.3.0 later"));
	CHECK(!strstr(py, "b2.Remote-MTA"));
	/* headers only, no body (RET unset) */
	CHECK(strstr(py, "headers=Received: from client.example.org|From: Alice") != NULL);
	CHECK(strstr(py, "Subject: hello there|") != NULL);
	CHECK(!strstr(py, "The body"));
	/* the explanation names each recipient and why */
	CHECK(strstr(py, "<bob@example.net>: host mx1.example.net said: 550 5.1.1") != NULL);
	CHECK(strstr(py, "<carol@example.com>: Message expired") != NULL);
	CHECK(strstr(py, "This is the mail system at host mx.test.") != NULL);
	free(py);
	free(m);
	close(b.fd);
}

static void test_ret_full_returns_whole_message(void)
{
	struct envelope env;
	envelope_fixture(&env);
	env.ret = SMTP_RET_FULL;
	struct dsn_rcpt rc = {.address = "bob@example.net", .reply = "550 5.1.1 unknown"};
	struct body b = body_file(original, strlen(original));
	struct dsn_report r = report_fixture(DSN_FAILURE, &env, &rc, 1, b);
	struct dsn_info info;
	size_t len = 0;
	char *m = compose(&r, &info, &len);
	CHECK(m && !info.headers_only);
	if (!m)
		return;
	check_lines(m, len, 0);
	/* byte for byte, followed by the closing delimiter */
	const char *at = strstr(m, original);
	CHECK(at && !strncmp(at + strlen(original), "\r\n--=_tern_Q1a2B3_", 18));
	char *py = parse(m, len);
	CHECK(has(py, "part2=message/rfc822"));
	CHECK(has(py, "orig-subject=hello there"));
	CHECK(has(py, "orig-body=The body, line one.|Line two.|"));
	CHECK(strstr(py, "Your message is attached below.") != NULL);
	free(py);
	free(m);
	close(b.fd);
}

static void test_ret_full_too_large_sends_headers(void)
{
	struct envelope env;
	envelope_fixture(&env);
	env.ret = SMTP_RET_FULL;
	struct dsn_rcpt rc = {.address = "bob@example.net", .reply = "552 5.3.4 too big"};
	struct body b = body_file(original, strlen(original));
	struct dsn_report r = report_fixture(DSN_FAILURE, &env, &rc, 1, b);
	r.full_max = 40; /* the message is larger */
	struct dsn_info info;
	size_t len = 0;
	char *m = compose(&r, &info, &len);
	CHECK(m && info.headers_only == 1);
	if (!m)
		return;
	char *py = parse(m, len);
	CHECK(has(py, "part2=text/rfc822-headers"));
	CHECK(!strstr(py, "The body"));
	CHECK(strstr(py, "too large or not well formed") != NULL);
	free(py);
	free(m);
	/* exactly at the limit: still whole */
	r.full_max = strlen(original);
	m = compose(&r, &info, &len);
	CHECK(m && info.headers_only == 0 && strstr(m, original));
	CHECK(m && strstr(m, "Content-Type: message/rfc822\r\n"));
	free(m);
	close(b.fd);
}

static void test_ret_full_malformed_sends_clean_headers(void)
{
	/* a bare LF and a 1500-octet header line: not returned whole, and the
	 * headers that are returned are cut to 998 octets with CRLF ends */
	char msg[4096];
	size_t n = (size_t)snprintf(msg, sizeof msg, "Subject: odd\nX-Long: ");
	memset(msg + n, 'x', 1500);
	n += 1500;
	n += (size_t)snprintf(msg + n, sizeof msg - n, "\r\n\r\nbody\nmore\r\n");
	struct envelope env;
	envelope_fixture(&env);
	env.ret = SMTP_RET_FULL;
	struct dsn_rcpt rc = {.address = "bob@example.net"};
	struct body b = body_file(msg, n);
	struct dsn_report r = report_fixture(DSN_FAILURE, &env, &rc, 1, b);
	struct dsn_info info;
	size_t len = 0;
	char *m = compose(&r, &info, &len);
	CHECK(m && info.headers_only == 1);
	if (!m)
		return;
	check_lines(m, len, 0);
	char *py = parse(m, len);
	CHECK(has(py, "part2=text/rfc822-headers"));
	CHECK(strstr(py, "headers=Subject: odd|X-Long: xxx") != NULL);
	CHECK(!strstr(py, "body"));
	/* no reply: the status comes from the action */
	CHECK(has(py, "b1.Status=5.0.0"));
	CHECK(!strstr(py, "b1.Diagnostic-Code"));
	free(py);
	free(m);
	close(b.fd);
}

static void test_orcpt_is_decoded(void)
{
	struct envelope env;
	envelope_fixture(&env);
	env.envid = NULL;
	struct dsn_rcpt rc[6] = {
		{.address = "bob@example.net", .orcpt = "rfc822;list+2Bx+3Dy@example.org"},
		{.address = "dan@example.net", .orcpt = "RFC822;j+C3+B6rg@example.org"},
		{.address = "eve@example.net", .orcpt = "x400;c=us+3Ba=x"},
		{.address = "fay@example.net", .orcpt = "rfc822;fay@example.net"},
		{.address = "gil@example.net", .orcpt = "utf-8;g\\x{E9}l@example.org"},
		{.address = "hal@example.net", .orcpt = "rfc822;"},
	};
	struct dsn_report r = report_fixture(DSN_FAILURE, &env, rc, 6, (struct body){-1, 0, 0});
	struct dsn_info info;
	size_t len = 0;
	char *m = compose(&r, &info, &len);
	CHECK(m != NULL);
	if (!m)
		return;
	check_lines(m, len, 0);
	char *py = parse(m, len);
	CHECK(has(py, "nparts=2")); /* no original given */
	CHECK(!strstr(py, "Original-Envelope-Id"));
	CHECK(has(py, "b1.Original-Recipient=rfc822; list+x=y@example.org"));
	CHECK(has(py, "b2.Original-Recipient=utf-8; j\\x{F6}rg@example.org"));
	CHECK(has(py, "b3.Original-Recipient=x400;c=us+3Ba=x")); /* other types as received */
	CHECK(has(py, "b4.Original-Recipient=rfc822; fay@example.net"));
	CHECK(has(py, "b5.Original-Recipient=utf-8; g\\x{E9}l@example.org")); /* type kept */
	CHECK(!strstr(py, "b6.Original-Recipient")); /* no address: no field */
	CHECK(has(py, "b6.Final-Recipient=rfc822; hal@example.net"));
	/* the text part names the address the sender used when it differs */
	CHECK(strstr(py, "<bob@example.net> (sent to <list+x=y@example.org>):") != NULL);
	CHECK(strstr(py, "<fay@example.net>: delivery failed") != NULL);
	CHECK(info.eight_bit == 1); /* jörg in the text part */
	CHECK(has(py, "part0=text/plain"));
	CHECK(strstr(m, "Content-Type: text/plain; charset=utf-8\r\n") != NULL);
	free(py);
	free(m);
}

static void test_long_replies_are_folded(void)
{
	char reply[6000];
	size_t n = (size_t)snprintf(reply, sizeof reply, "550 5.7.1 ");
	for (int i = 0; n + 20 < 3000; i++)
		n += (size_t)snprintf(reply + n, sizeof reply - n, "word%d ", i);
	reply[n - 1] = '\0';
	char solid[2500];
	memcpy(solid, "554 ", 4);
	memset(solid + 4, 'z', sizeof solid - 5);
	solid[sizeof solid - 1] = '\0';
	struct envelope env;
	envelope_fixture(&env);
	struct dsn_rcpt rc[2] = {
		{.address = "bob@example.net", .reply = reply},
		{.address = "eve@example.net", .reply = solid},
	};
	struct dsn_report r = report_fixture(DSN_FAILURE, &env, rc, 2, (struct body){-1, 0, 0});
	size_t len = 0;
	char *m = compose(&r, NULL, &len);
	CHECK(m != NULL);
	if (!m)
		return;
	check_lines(m, len, 0);
	char *py = parse(m, len);
	/* unfolded, the field is the reply again */
	char want[7000];
	snprintf(want, sizeof want, "b1.Diagnostic-Code=smtp; %s", reply);
	CHECK(has(py, want));
	CHECK(has(py, "b1.Status=5.7.1"));
	CHECK(has(py, "b2.Status=5.0.0"));
	CHECK(strstr(py, "b2.Diagnostic-Code=smtp; 554 zzzz") != NULL);
	free(py);
	free(m);
}

static void test_delay_warning(void)
{
	struct envelope env;
	envelope_fixture(&env);
	env.received = NOW - 4 * 3600;
	env.ret = SMTP_RET_FULL; /* only failures return the whole message */
	struct dsn_rcpt rc = {.address = "bob@example.net",
			      .reply = "451 4.7.1 greylisted",
			      .remote_mta = "mx.example.net",
			      .last_attempt = NOW - 100,
			      .retry_until = NOW + 86400};
	struct body b = body_file(original, strlen(original));
	struct dsn_report r = report_fixture(DSN_DELAY, &env, &rc, 1, b);
	size_t len = 0;
	char *m = compose(&r, NULL, &len);
	CHECK(m != NULL);
	if (!m)
		return;
	check_lines(m, len, 0);
	char *py = parse(m, len);
	CHECK(has(py, "Subject=Delayed Mail (still being retried)"));
	CHECK(has(py, "b1.Action=delayed"));
	CHECK(has(py, "b1.Status=4.7.1"));
	CHECK(has(py, "b1.Will-Retry-Until=Wed, 15 Nov 2023 22:13:20 +0000"));
	CHECK(has(py, "part2=text/rfc822-headers"));
	CHECK(!strstr(py, "The body") && !strstr(py, "too large"));
	CHECK(strstr(py, "warning only") != NULL);
	CHECK(strstr(py, "delayed for 4 hours") != NULL);
	CHECK(strstr(py, "(trying until Wed, 15 Nov 2023 22:13:20 +0000)") != NULL);
	free(py);
	free(m);
	close(b.fd);
}

static void test_success_report(void)
{
	struct envelope env;
	envelope_fixture(&env);
	struct dsn_rcpt rc[2] = {
		{.address = "bob@example.net",
		 .reply = "250 2.0.0 Ok: queued as 4XyZ",
		 .remote_mta = "mx.example.net"},
		{.address = "dan@example.net", .action = DSN_ACTION_RELAYED, .reply = "250 ok"},
	};
	struct body b = body_file(original, strlen(original));
	struct dsn_report r = report_fixture(DSN_SUCCESS, &env, rc, 2, b);
	size_t len = 0;
	char *m = compose(&r, NULL, &len);
	CHECK(m != NULL);
	if (!m)
		return;
	char *py = parse(m, len);
	CHECK(has(py, "Subject=Successful Mail Delivery Report"));
	CHECK(has(py, "b1.Action=delivered"));
	CHECK(has(py, "b1.Status=2.0.0"));
	CHECK(has(py, "b2.Action=relayed"));
	CHECK(has(py, "b2.Status=2.0.0"));
	CHECK(strstr(py, "delivered to the recipients listed below") != NULL);
	free(py);
	free(m);
	close(b.fd);
}

static void test_utf8_addresses(void)
{
	static const char intl[] = "From: J\xc3\xb6rg <j\xc3\xb6rg@example.org>\r\n"
				   "Subject: Gr\xc3\xbc\xc3\x9f"
				   "e\r\n"
				   "\r\n"
				   "Hallo\r\n";
	struct envelope env;
	envelope_fixture(&env);
	env.sender = "j\xc3\xb6rg@example.org";
	env.smtputf8 = 1;
	env.ret = SMTP_RET_FULL;
	struct dsn_rcpt rc = {.address = "b\xc3\xa9"
					 "a+x@exa\xcc\x88mple.org",
			      .reply = "550 5.1.1 inconnu"};
	struct body b = body_file(intl, strlen(intl));
	struct dsn_report r = report_fixture(DSN_FAILURE, &env, &rc, 1, b);
	struct dsn_info info;
	size_t len = 0;
	char *m = compose(&r, &info, &len);
	CHECK(m != NULL);
	if (!m)
		return;
	check_lines(m, len, 1);
	CHECK(info.smtputf8 == 1 && info.eight_bit == 1);
	CHECK(strstr(m, "To: <j\xc3\xb6rg@example.org>\r\n") != NULL);
	CHECK(strstr(m, "\r\nContent-Transfer-Encoding: 8bit\r\n") != NULL);
	/* the report part stays 7-bit: RFC 6533 utf-8-addr-xtext */
	const char *ds = strstr(m, "Content-Type: message/delivery-status");
	const char *end = ds ? strstr(ds, "\r\n--=_tern") : NULL;
	CHECK(ds && end);
	for (const char *p = ds; p && p < end; p++)
		if ((unsigned char)*p >= 0x80) {
			CHECK(!"8-bit octet in message/delivery-status");
			break;
		}
	char *py = parse(m, len);
	CHECK(has(py, "b1.Final-Recipient=utf-8; b\\x{E9}a\\x{2B}x@exa\\x{308}mple.org"));
	CHECK(has(py, "b0.X-Tern-Sender=utf-8; j\\x{F6}rg@example.org"));
	CHECK(has(py, "part2=message/global"));
	CHECK(strstr(m, intl) != NULL);
	free(py);
	free(m);
	close(b.fd);

	/* the same with headers only */
	env.ret = SMTP_RET_HDRS;
	b = body_file(intl, strlen(intl));
	r = report_fixture(DSN_FAILURE, &env, &rc, 1, b);
	m = compose(&r, &info, &len);
	CHECK(m && strstr(m, "Content-Type: message/global-headers\r\n"));
	CHECK(m && !strstr(m, "Hallo"));
	free(m);
	close(b.fd);
}

static void test_refusals_leave_output_untouched(void)
{
	struct envelope env;
	envelope_fixture(&env);
	struct dsn_rcpt rc = {.address = "bob@example.net"};
	struct evbuffer *out = evbuffer_new();
	evbuffer_add(out, "x", 1);

	env.sender = "";
	struct dsn_report r = report_fixture(DSN_FAILURE, &env, &rc, 1, (struct body){-1, 0, 0});
	errno = 0;
	CHECK(dsn_compose(&r, out, NULL) == -1 && errno == EINVAL);
	env.sender = "alice@example.org";
	r.nrcpts = 0;
	CHECK(dsn_compose(&r, out, NULL) == -1 && errno == EINVAL);
	r.nrcpts = 1;
	r.hostname = NULL;
	CHECK(dsn_compose(&r, out, NULL) == -1 && errno == EINVAL);

	/* a spool file shorter than the size it claims */
	struct body b = body_file(original, strlen(original));
	r = report_fixture(DSN_FAILURE, &env, &rc, 1, b);
	r.body_size = strlen(original) + 100;
	errno = 0;
	CHECK(dsn_compose(&r, out, NULL) == -1 && errno == EIO);
	CHECK(evbuffer_get_length(out) == 1);
	close(b.fd);
	evbuffer_free(out);
}

static void test_headers_only_message_and_empty_headers(void)
{
	/* no blank line at all: the whole (short) message is headers */
	static const char nobody[] = "Subject: only headers\r\nX-A: 1\r\n";
	static const char noheaders[] = "\r\njust a body\r\n";
	struct envelope env;
	envelope_fixture(&env);
	struct dsn_rcpt rc = {.address = "bob@example.net"};
	struct body b = body_file(nobody, strlen(nobody));
	struct dsn_report r = report_fixture(DSN_FAILURE, &env, &rc, 1, b);
	size_t len = 0;
	char *m = compose(&r, NULL, &len);
	char *py = m ? parse(m, len) : NULL;
	CHECK(py && has(py, "headers=Subject: only headers|X-A: 1|"));
	free(py);
	free(m);
	close(b.fd);

	b = body_file(noheaders, strlen(noheaders));
	r = report_fixture(DSN_FAILURE, &env, &rc, 1, b);
	m = compose(&r, NULL, &len);
	py = m ? parse(m, len) : NULL;
	CHECK(py && has(py, "nparts=3") && has(py, "part2=text/rfc822-headers"));
	CHECK(py && !strstr(py, "just a body"));
	free(py);
	free(m);
	close(b.fd);
}

static void test_generated_message_id_and_boundary(void)
{
	struct envelope env;
	envelope_fixture(&env);
	struct dsn_rcpt rc = {.address = "bob@example.net"};
	struct dsn_report r = report_fixture(DSN_FAILURE, &env, &rc, 1, (struct body){-1, 0, 0});
	r.message_id = NULL;
	size_t len1 = 0, len2 = 0;
	char *m1 = compose(&r, NULL, &len1), *m2 = compose(&r, NULL, &len2);
	CHECK(m1 && m2);
	if (!m1 || !m2)
		return;
	const char *id1 = strstr(m1, "Message-ID: <1700000000.Q1a2B3.");
	const char *id2 = strstr(m2, "Message-ID: <1700000000.Q1a2B3.");
	CHECK(id1 && id2 && strncmp(id1, id2, 60) != 0); /* random part differs */
	const char *bd = strstr(m1, "boundary=\"");
	CHECK(bd != NULL);
	if (bd) {
		const char *q = strchr(bd + 10, '"');
		CHECK(q && q - (bd + 10) <= 70);
	}
	free(m1);
	free(m2);
}

int main(void)
{
	int fd = mkstemp(script_path);
	if (fd < 0 || write(fd, py_script, strlen(py_script)) != (ssize_t)strlen(py_script))
		return 1;
	close(fd);
	RUN(test_dsn_wants_follows_notify);
	RUN(test_status_from_reply);
	RUN(test_xtext_decode);
	RUN(test_failure_bounce_structure);
	RUN(test_ret_full_returns_whole_message);
	RUN(test_ret_full_too_large_sends_headers);
	RUN(test_ret_full_malformed_sends_clean_headers);
	RUN(test_orcpt_is_decoded);
	RUN(test_long_replies_are_folded);
	RUN(test_delay_warning);
	RUN(test_success_report);
	RUN(test_utf8_addresses);
	RUN(test_refusals_leave_output_untouched);
	RUN(test_headers_only_message_and_empty_headers);
	RUN(test_generated_message_id_and_boundary);
	unlink(script_path);
	return check_summary();
}
