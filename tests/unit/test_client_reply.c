/* test_client_reply.c - the outgoing client's reply and EHLO parsers, fed
 * whole, byte by byte, and with hostile input. */
#include <stdlib.h>

#include "check.h"
#include "smtp/client_reply.h"

#define MAXREPLIES 8

struct parsed {
	int n;
	int codes[MAXREPLIES];
	char enhanced[MAXREPLIES][SMTP_ENHANCED_MAX];
	char text[MAXREPLIES][256];
	size_t nlines[MAXREPLIES];
	int error;
	struct smtp_ehlo ehlo; /* of the first reply */
};

static struct smtp_client_reply_parser parser;

/* parse - feed IN in pieces of STEP bytes and collect every reply. */
static void parse(const char *in, size_t len, size_t step, struct parsed *out)
{
	memset(out, 0, sizeof *out);
	smtp_client_reply_init(&parser, NULL);
	size_t off = 0;
	while (off < len) {
		size_t n = len - off < step ? len - off : step;
		size_t used = 0, done = 0;
		while (done < n) {
			enum smtp_reply_status st =
				smtp_client_reply_feed(&parser, in + off + done, n - done, &used);
			if (st == SMTP_REPLY_ERROR) {
				out->error = 1;
				return;
			}
			done += used;
			if (st == SMTP_REPLY_DONE && out->n < MAXREPLIES) {
				const struct smtp_client_reply *r = &parser.reply;
				if (out->n == 0)
					smtp_ehlo_parse(r, &out->ehlo);
				out->codes[out->n] = r->code;
				snprintf(out->enhanced[out->n], SMTP_ENHANCED_MAX, "%s",
					 r->enhanced);
				snprintf(out->text[out->n], 256, "%.255s", r->text);
				out->nlines[out->n] = r->nlines;
				out->n++;
			}
		}
		off += n;
	}
}

/* same_whole_and_bytewise - parse S whole and byte by byte; the two agree. */
static void parse_both(const char *s, struct parsed *out)
{
	struct parsed bytewise;
	parse(s, strlen(s), 1, &bytewise);
	parse(s, strlen(s), strlen(s), out);
	CHECK(bytewise.n == out->n);
	CHECK(bytewise.error == out->error);
	for (int i = 0; i < out->n && i < bytewise.n; i++) {
		CHECK(bytewise.codes[i] == out->codes[i]);
		CHECK_STR(bytewise.enhanced[i], out->enhanced[i]);
		CHECK_STR(bytewise.text[i], out->text[i]);
	}
	CHECK(bytewise.ehlo.ext == out->ehlo.ext);
	CHECK(bytewise.ehlo.size == out->ehlo.size);
}

static void test_single_line_with_enhanced_code(void)
{
	struct parsed p;
	parse_both("250 2.1.0 Ok\r\n", &p);
	CHECK(p.n == 1);
	CHECK(p.codes[0] == 250);
	CHECK_STR(p.enhanced[0], "2.1.0");
	CHECK_STR(p.text[0], "Ok");
	CHECK(!p.error);
}

static void test_multiline_repeated_enhanced_code_kept_once(void)
{
	struct parsed p;
	parse_both("550-5.1.1 The email account\r\n550-5.1.1 that you tried\r\n"
		   "550 5.1.1 does not exist\r\n",
		   &p);
	CHECK(p.n == 1);
	CHECK(p.codes[0] == 550);
	CHECK(p.nlines[0] == 3);
	CHECK_STR(p.enhanced[0], "5.1.1");
	CHECK_STR(p.text[0], "The email account\nthat you tried\ndoes not exist");
}

static void test_pipelined_replies_come_out_one_by_one(void)
{
	struct parsed p;
	parse_both("250 2.1.0 Sender ok\r\n250 2.1.5 Rcpt ok\r\n550 5.1.1 No such user\r\n"
		   "354 go ahead\r\n",
		   &p);
	CHECK(p.n == 4);
	CHECK(p.codes[0] == 250 && p.codes[1] == 250 && p.codes[2] == 550 && p.codes[3] == 354);
	CHECK_STR(p.enhanced[2], "5.1.1");
	CHECK_STR(p.text[2], "No such user");
	CHECK_STR(p.enhanced[3], "");
	CHECK_STR(p.text[3], "go ahead");
}

static void test_feed_stops_after_each_reply(void)
{
	const char *s = "221 2.0.0 Bye\r\n421 later\r\n";
	size_t used = 0;
	smtp_client_reply_init(&parser, NULL);
	CHECK(smtp_client_reply_feed(&parser, s, strlen(s), &used) == SMTP_REPLY_DONE);
	CHECK(used == strlen("221 2.0.0 Bye\r\n"));
	CHECK(parser.reply.code == 221);
	CHECK(smtp_client_reply_feed(&parser, s + used, 5, &used) == SMTP_REPLY_MORE);
	CHECK(used == 5);
}

static void test_bare_code_bare_lf_and_empty_text(void)
{
	struct parsed p;
	parse_both("250\r\n220 mx ready\n250-a\n250 \r\n", &p);
	CHECK(p.n == 3);
	CHECK(p.codes[0] == 250);
	CHECK_STR(p.text[0], "");
	CHECK(p.codes[1] == 220);
	CHECK_STR(p.text[1], "mx ready");
	CHECK_STR(p.text[2], "a\n");
}

static void test_enhanced_code_of_other_class_is_text(void)
{
	struct parsed p;
	parse_both("250 5.1.1 odd\r\n451 4.7.1\r\n", &p);
	CHECK_STR(p.enhanced[0], "");
	CHECK_STR(p.text[0], "5.1.1 odd");
	CHECK_STR(p.enhanced[1], "4.7.1");
	CHECK_STR(p.text[1], "");
}

static void test_control_bytes_are_masked(void)
{
	struct parsed p;
	const char in[] = "550 5.7.1 a\0b\x1b[31mc\tok\r\n";
	parse(in, sizeof in - 1, 1, &p);
	CHECK(p.n == 1);
	CHECK_STR(p.text[0], "a?b?[31mc\tok");
}

static void test_malformed_replies_are_errors(void)
{
	static const char *bad[] = {
		"abc\r\n",    "199 x\r\n", "650 x\r\n",
		"2501 x\r\n", "25\r\n",	   "250-a\r\n251 b\r\n", /* code changes inside one reply */
		"270 x\r\n",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct parsed p;
		parse_both(bad[i], &p);
		CHECK(p.error);
		CHECK(p.n == 0);
	}
}

static void test_ten_megabyte_line_is_refused_early(void)
{
	size_t total = 10u << 20, chunk = 65536;
	char *buf = malloc(chunk);
	CHECK(buf != NULL);
	if (!buf)
		return;
	memset(buf, 'x', chunk);
	memcpy(buf, "220 ", 4);
	smtp_client_reply_init(&parser, NULL);
	size_t fed = 0, used = 0;
	enum smtp_reply_status st = SMTP_REPLY_MORE;
	while (fed < total && st == SMTP_REPLY_MORE) {
		st = smtp_client_reply_feed(&parser, buf, chunk, &used);
		fed += chunk;
	}
	/* Refused in the first chunk: the parser never needed more than its
	 * fixed line buffer. */
	CHECK(st == SMTP_REPLY_ERROR);
	CHECK(fed == chunk);
	CHECK_STR(parser.error, "reply line too long");
	/* Sticky until reset. */
	CHECK(smtp_client_reply_feed(&parser, "250 ok\r\n", 8, &used) == SMTP_REPLY_ERROR);
	smtp_client_reply_reset(&parser);
	CHECK(smtp_client_reply_feed(&parser, "250 ok\r\n", 8, &used) == SMTP_REPLY_DONE);
	CHECK(parser.reply.code == 250);
	free(buf);
}

static void test_line_limit_is_exact(void)
{
	char line[SMTP_REPLY_LINE_MAX + 2];
	struct parsed p;
	/* Exactly the limit, CRLF included: accepted. */
	memset(line, 'a', sizeof line);
	memcpy(line, "250 ", 4);
	memcpy(line + SMTP_REPLY_LINE_MAX - 2, "\r\n", 2);
	parse(line, SMTP_REPLY_LINE_MAX, 7, &p);
	CHECK(!p.error && p.n == 1);
	/* One more byte: refused. */
	memcpy(line + SMTP_REPLY_LINE_MAX - 2, "a\r\n", 3);
	parse(line, SMTP_REPLY_LINE_MAX + 1, 7, &p);
	CHECK(p.error);
}

static void test_too_many_lines_is_an_error(void)
{
	static char buf[(SMTP_REPLY_LINES_MAX + 1) * 8 + 16];
	size_t len = 0;
	for (int i = 0; i < SMTP_REPLY_LINES_MAX; i++)
		len += (size_t)snprintf(buf + len, sizeof buf - len, "250-x\r\n");
	len += (size_t)snprintf(buf + len, sizeof buf - len, "250 x\r\n");
	struct parsed p;
	parse(buf, len, len, &p);
	CHECK(p.error);
	CHECK_STR(parser.error, "too many reply lines");
	/* One line fewer is fine. */
	parse(buf + 7, len - 7, len, &p);
	CHECK(!p.error && p.n == 1);
}

static void test_text_limit_is_an_error(void)
{
	struct smtp_reply_limits lim = {.text_max = 10};
	size_t used;
	smtp_client_reply_init(&parser, &lim);
	CHECK(smtp_client_reply_feed(&parser, "250-12345\r\n", 11, &used) == SMTP_REPLY_MORE);
	CHECK(smtp_client_reply_feed(&parser, "250 67890\r\n", 11, &used) == SMTP_REPLY_ERROR);
	CHECK_STR(parser.error, "reply too long");
}

static void test_ehlo_keywords(void)
{
	struct parsed p;
	parse_both("250-mx.example.org Hello\r\n"
		   "250-pipelining\r\n"
		   "250-SIZE 35882577\r\n"
		   "250-8BITMIME\r\n"
		   "250-SMTPUTF8\r\n"
		   "250-DSN\r\n"
		   "250-STARTTLS\r\n"
		   "250-CHUNKING\r\n"
		   "250-ENHANCEDSTATUSCODES\r\n"
		   "250-AUTH PLAIN LOGIN CRAM-MD5\r\n"
		   "250 AUTH=XOAUTH2\r\n",
		   &p);
	CHECK(p.n == 1);
	unsigned all = SMTP_EXT_PIPELINING | SMTP_EXT_SIZE | SMTP_EXT_8BITMIME | SMTP_EXT_SMTPUTF8 |
		       SMTP_EXT_DSN | SMTP_EXT_STARTTLS | SMTP_EXT_CHUNKING | SMTP_EXT_AUTH |
		       SMTP_EXT_ENHANCEDSTATUSCODES;
	CHECK(p.ehlo.ext == all);
	CHECK(p.ehlo.size == 35882577);
	CHECK(p.ehlo.auth ==
	      (SMTP_AUTH_PLAIN | SMTP_AUTH_LOGIN | SMTP_AUTH_CRAM_MD5 | SMTP_AUTH_XOAUTH2));
}

static void test_ehlo_lookalikes_and_odd_sizes(void)
{
	struct parsed p;
	parse_both("250-PIPELINING mx\r\n250-SIZEX 10\r\n250-DSNX\r\n250-STARTTLSX\r\n"
		   "250 SIZE 99999999999999999999999\r\n",
		   &p);
	/* The first line is the server's name, not a keyword. */
	CHECK(p.ehlo.ext == SMTP_EXT_SIZE);
	CHECK(p.ehlo.size == 0);
	parse_both("250-x\r\n250-SIZE\r\n250 AUTH GSSAPI\r\n", &p);
	CHECK(p.ehlo.ext == (SMTP_EXT_SIZE | SMTP_EXT_AUTH));
	CHECK(p.ehlo.size == 0);
	CHECK(p.ehlo.auth == SMTP_AUTH_OTHER);
	/* HELO-style one-line reply: no extensions at all. */
	parse_both("250 mx.example.org\r\n", &p);
	CHECK(p.ehlo.ext == 0);
}

/* Random bytes, lines and chunk sizes: the parser never consumes more than
 * it was given, and never reads or writes outside its buffers (ASan). */
static void test_random_input_stays_in_bounds(void)
{
	static char buf[1 << 16];
	uint32_t x = 2463534242u;
	for (int round = 0; round < 50; round++) {
		for (size_t i = 0; i < sizeof buf; i++) {
			x ^= x << 13, x ^= x >> 17, x ^= x << 5;
			static const char alphabet[] = "2345- 0123456789.\r\n\nab\0";
			buf[i] = alphabet[x % (sizeof alphabet - 1)];
		}
		smtp_client_reply_init(&parser, NULL);
		size_t off = 0;
		while (off < sizeof buf) {
			x ^= x << 13, x ^= x >> 17, x ^= x << 5;
			size_t n = 1 + x % 3000, used = 0;
			if (n > sizeof buf - off)
				n = sizeof buf - off;
			enum smtp_reply_status st =
				smtp_client_reply_feed(&parser, buf + off, n, &used);
			if (st == SMTP_REPLY_ERROR)
				break;
			CHECK(used <= n);
			CHECK(st == SMTP_REPLY_DONE || used == n);
			if (st == SMTP_REPLY_DONE)
				CHECK(parser.reply.textlen == strlen(parser.reply.text));
			off += used;
		}
	}
}

int main(void)
{
	RUN(test_single_line_with_enhanced_code);
	RUN(test_multiline_repeated_enhanced_code_kept_once);
	RUN(test_pipelined_replies_come_out_one_by_one);
	RUN(test_feed_stops_after_each_reply);
	RUN(test_bare_code_bare_lf_and_empty_text);
	RUN(test_enhanced_code_of_other_class_is_text);
	RUN(test_control_bytes_are_masked);
	RUN(test_malformed_replies_are_errors);
	RUN(test_ten_megabyte_line_is_refused_early);
	RUN(test_line_limit_is_exact);
	RUN(test_too_many_lines_is_an_error);
	RUN(test_text_limit_is_an_error);
	RUN(test_ehlo_keywords);
	RUN(test_ehlo_lookalikes_and_odd_sizes);
	RUN(test_random_input_stays_in_bounds);
	return check_summary();
}
