/* test_data_stream.c - the DATA body decoder and BDAT checks
 * (smtp/data_stream.c).  Every DATA input is decoded whole, byte by byte,
 * split at every single point and in random pieces; all must agree on the
 * output, the error, the end and the bytes consumed. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "smtp/data_stream.h"

#define OUT_MAX 300000

struct result {
	char *out;
	size_t outlen;
	int sink_calls;
	int fail_sink; /* make the sink refuse */
	long consumed;
	int sink_failed;
	struct data_stream ds;
};

static int sink(void *ctx, const char *bytes, size_t len)
{
	struct result *r = ctx;

	if (len == 0)
		return -1; /* an empty piece is a bug: make it show */
	r->sink_calls++;
	if (r->fail_sink)
		return -1;
	if (r->outlen + len > OUT_MAX)
		return -1;
	memcpy(r->out + r->outlen, bytes, len);
	r->outlen += len;
	return 0;
}

static void result_init(struct result *r, uint64_t max_size)
{
	static char bufs[2][OUT_MAX];
	static int which;

	memset(r, 0, sizeof *r);
	r->out = bufs[which++ % 2];
	data_stream_init(&r->ds, max_size);
}

/* feed_split - feed IN in pieces; CUT(i) says how long piece i is. */
static void feed_split(struct result *r, const char *in, size_t len, size_t (*cut)(size_t, void *),
		       void *arg)
{
	size_t pos = 0, i = 0;

	while (pos < len && !r->ds.done) {
		size_t n = cut(i++, arg);
		if (n == 0 || n > len - pos)
			n = len - pos;
		long got = data_stream_feed(&r->ds, in + pos, n, sink, r);
		if (got < 0) {
			r->sink_failed = 1;
			return;
		}
		/* only the terminator may stop a feed short */
		if ((size_t)got != n && !r->ds.done)
			r->consumed = -1000000;
		pos += (size_t)got;
		r->consumed += got;
	}
}

static size_t cut_whole(size_t i, void *arg)
{
	return 0;
}

static size_t cut_bytes(size_t i, void *arg)
{
	return 1;
}

/* cut_at - first piece of *ARG bytes, then the rest */
static size_t cut_at(size_t i, void *arg)
{
	return i == 0 ? *(size_t *)arg : 0;
}

/* cut_random - pieces of 1..17 bytes from a small LCG */
static size_t cut_random(size_t i, void *arg)
{
	unsigned *seed = arg;

	*seed = *seed * 1103515245u + 12345u;
	return 1 + (*seed >> 16) % 17;
}

static int same(const struct result *a, const struct result *b, const char *how)
{
	if (a->outlen == b->outlen && memcmp(a->out, b->out, a->outlen) == 0 &&
	    a->ds.error == b->ds.error && a->ds.done == b->ds.done && a->consumed == b->consumed &&
	    a->ds.size == b->ds.size && a->ds.eight_bit == b->ds.eight_bit)
		return 1;
	fprintf(stderr, "  %s differs: out %zu/%zu error %d/%d done %d/%d consumed %ld/%ld\n", how,
		a->outlen, b->outlen, a->ds.error, b->ds.error, a->ds.done, b->ds.done, a->consumed,
		b->consumed);
	return 0;
}

/* decode - decode IN whole into *R, after checking that every way of
 * splitting it gives the same result. */
static int decode(const char *in, size_t len, uint64_t max_size, struct result *r)
{
	struct result other;
	int ok = 1;

	result_init(r, max_size);
	feed_split(r, in, len, cut_whole, NULL);
	ok &= r->consumed >= 0;
	result_init(&other, max_size);
	feed_split(&other, in, len, cut_bytes, NULL);
	ok &= same(r, &other, "byte by byte");
	for (size_t at = 1; at < len && len < 5000; at++) {
		result_init(&other, max_size);
		feed_split(&other, in, len, cut_at, &at);
		ok &= same(r, &other, "split in two");
	}
	for (unsigned seed = 1; seed <= 20; seed++) {
		unsigned s = seed;
		result_init(&other, max_size);
		feed_split(&other, in, len, cut_random, &s);
		ok &= same(r, &other, "random pieces");
	}
	return ok;
}

#define DECODE(lit, max, r) decode((lit), sizeof(lit) - 1, (max), (r))

/* body_is - *R decoded to exactly WANT, no error, ended after CONSUMED. */
static int body_is(const struct result *r, const char *want, long consumed)
{
	size_t n = strlen(want);

	if (r->outlen != n || memcmp(r->out, want, n) || r->ds.error != DATA_OK || !r->ds.done ||
	    r->consumed != consumed || r->ds.size != n) {
		fprintf(stderr, "  got %zu bytes [%.*s] error %d done %d consumed %ld\n", r->outlen,
			(int)r->outlen, r->out, r->ds.error, r->ds.done, r->consumed);
		return 0;
	}
	return 1;
}

/* refused_as - *R ended (after all LEN bytes) with error E, and output
 * stopped right before the first bad byte: exactly the bytes of PREFIX. */
static int refused_as(const struct result *r, enum data_error e, const char *prefix, long len)
{
	size_t n = strlen(prefix);

	if (r->ds.error != e || !r->ds.done || r->consumed != len || r->outlen != n ||
	    memcmp(r->out, prefix, n)) {
		fprintf(stderr, "  got error %d done %d consumed %ld/%ld out %zu [%.*s]\n",
			r->ds.error, r->ds.done, r->consumed, len, r->outlen, (int)r->outlen,
			r->out);
		return 0;
	}
	return 1;
}

static void test_immediate_dot_is_empty_message(void)
{
	struct result r;

	CHECK(DECODE(".\r\n", 0, &r));
	CHECK(body_is(&r, "", 3));
	CHECK(r.sink_calls == 0);
}

static void test_plain_body(void)
{
	struct result r;

	CHECK(DECODE("Subject: x\r\n\r\nHello\r\n.\r\n", 0, &r));
	CHECK(body_is(&r, "Subject: x\r\n\r\nHello\r\n", 24));
	CHECK(DECODE("\r\n\r\n.\r\n", 0, &r));
	CHECK(body_is(&r, "\r\n\r\n", 7));
	CHECK(DECODE("a.b\r\nc.\r\n.\r\n", 0, &r));
	CHECK(body_is(&r, "a.b\r\nc.\r\n", 12));
}

static void test_stops_right_after_terminator(void)
{
	struct result r;

	CHECK(DECODE("a\r\n.\r\nQUIT\r\n", 0, &r));
	CHECK(body_is(&r, "a\r\n", 6));
	CHECK(data_stream_feed(&r.ds, "QUIT\r\n", 6, sink, &r) == 0);
	CHECK(DECODE(".\r\n.\r\n", 0, &r));
	CHECK(body_is(&r, "", 3));
}

static void test_dot_unstuffing(void)
{
	struct result r;

	CHECK(DECODE("..a\r\n.x\r\n...\r\n..\r\n. \r\n.\r\n", 0, &r));
	CHECK(body_is(&r, ".a\r\nx\r\n..\r\n.\r\n \r\n", 25));
	CHECK(DECODE("..\r\n.\r\n", 0, &r));
	CHECK(body_is(&r, ".\r\n", 7));
}

static void test_incomplete_input_waits(void)
{
	struct result r;

	CHECK(DECODE("a\r\n.\r", 0, &r));
	CHECK(!r.ds.done && r.ds.error == DATA_OK && r.consumed == 5);
	CHECK(r.outlen == 3);
	/* the held-back CR turns out to be bare */
	CHECK(data_stream_feed(&r.ds, "x\r\n.\r\n", 6, sink, &r) == 6);
	CHECK(r.ds.done && r.ds.error == DATA_BARE_CR && r.outlen == 3);
}

/* Each of these would end the message for a lax reader; here they mark it
 * bad and only the genuine CRLF.CRLF at the end finishes it. */
static void test_smuggling_does_not_end_message(void)
{
	static const struct {
		const char *in;
		enum data_error e;
		const char *out;
	} cases[] = {
		{"a\n.\r\nMAIL FROM:<x@y>\r\n\r\n.\r\n", DATA_BARE_LF, "a"},
		{"a\r.\r\nMAIL FROM:<x@y>\r\n.\r\n", DATA_BARE_CR, "a\r"},
		{"a\n.\nMAIL FROM:<x@y>\r\n.\r\n", DATA_BARE_LF, "a"},
		{"a\r\n.\nMAIL FROM:<x@y>\r\n.\r\n", DATA_BARE_LF, "a\r\n"},
		{"a\r\n.\rMAIL FROM:<x@y>\r\n.\r\n", DATA_BARE_CR, "a\r\n"},
		{"a\r.\rMAIL FROM:<x@y>\r\n.\r\n", DATA_BARE_CR, "a\r"},
		{"a\r\n.\r\r\n.\r\n", DATA_BARE_CR, "a\r\n"},
		{"\n.\r\nRSET\r\n.\r\n", DATA_BARE_LF, ""},
		{"\r.\r\nRSET\r\n.\r\n", DATA_BARE_CR, "\r"},
		{"a\n\r\n.\r\n", DATA_BARE_LF, "a"},
		{"a\r\r\n.\r\n", DATA_BARE_CR, "a\r"},
		{"a\r\n\n.\r\n\r\n.\r\n", DATA_BARE_LF, "a\r\n"},
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct result r;
		size_t len = strlen(cases[i].in);
		CHECK(decode(cases[i].in, len, 0, &r));
		if (!refused_as(&r, cases[i].e, cases[i].out, (long)len))
			fprintf(stderr, "  case %zu\n", i);
		CHECK(refused_as(&r, cases[i].e, cases[i].out, (long)len));
	}
}

static void test_smuggled_end_then_more_data(void)
{
	struct result r;

	/* without a real end the stream is still open */
	CHECK(DECODE("a\n.\r\n", 0, &r));
	CHECK(!r.ds.done && r.ds.error == DATA_BARE_LF && r.consumed == 5);
	CHECK(DECODE("a\r\n.\n", 0, &r));
	CHECK(!r.ds.done && r.ds.error == DATA_BARE_LF);
	CHECK(DECODE("a\r.\r", 0, &r));
	CHECK(!r.ds.done && r.ds.error == DATA_BARE_CR);
}

static void test_nul_refused(void)
{
	struct result r;

	CHECK(DECODE("a\0b\r\n.\r\n", 0, &r));
	CHECK(refused_as(&r, DATA_NUL, "a", 8));
	CHECK(DECODE(".\0\r\n.\r\n", 0, &r));
	CHECK(refused_as(&r, DATA_NUL, "", 7));
}

static void test_first_error_kept(void)
{
	struct result r;

	CHECK(DECODE("a\rb\nc\0\r\n.\r\n", 0, &r));
	CHECK(refused_as(&r, DATA_BARE_CR, "a\r", 11));
	CHECK(DECODE("a\nb\rc\r\n.\r\n", 0, &r));
	CHECK(refused_as(&r, DATA_BARE_LF, "a", 10));
}

static void test_line_length_limit(void)
{
	static char in[4000];
	struct result r;
	size_t n;

	/* 998 octets and CRLF: exactly the limit */
	memset(in, 'x', 998);
	memcpy(in + 998, "\r\n.\r\n", 5);
	CHECK(decode(in, 1003, 0, &r));
	CHECK(r.ds.error == DATA_OK && r.ds.done && r.outlen == 1000);
	/* 999 octets: one too many; the CR still went out, the LF did not */
	memset(in, 'x', 999);
	memcpy(in + 999, "\r\n.\r\n", 5);
	CHECK(decode(in, 1004, 0, &r));
	CHECK(r.ds.error == DATA_LINE_TOO_LONG && r.ds.done && r.outlen == 1000);
	/* a stuffed dot does not count (RFC 5321 4.5.3.1.6) */
	in[0] = '.';
	memset(in + 1, 'x', 998);
	memcpy(in + 999, "\r\n.\r\n", 5);
	CHECK(decode(in, 1004, 0, &r));
	CHECK(r.ds.error == DATA_OK && r.outlen == 1000 && r.out[0] == 'x');
	/* a long line among short ones, and the limit restarts per line */
	n = 0;
	memcpy(in + n, "short\r\n", 7), n += 7;
	memset(in + n, 'y', 998), n += 998;
	memcpy(in + n, "\r\n", 2), n += 2;
	memset(in + n, 'z', 2000), n += 2000;
	memcpy(in + n, "\r\n.\r\n", 5), n += 5;
	CHECK(decode(in, n, 0, &r));
	CHECK(r.ds.error == DATA_LINE_TOO_LONG && r.ds.done && r.consumed == (long)n);
	CHECK(r.outlen == 7 + 1000 + 1000);
}

static void test_size_limit(void)
{
	struct result r;

	/* 10 decoded octets fit a limit of 10 */
	CHECK(DECODE("01234567\r\n.\r\n", 10, &r));
	CHECK(body_is(&r, "01234567\r\n", 13));
	CHECK(DECODE("0123456789\r\n.\r\n", 10, &r));
	CHECK(refused_as(&r, DATA_TOO_BIG, "0123456789", 15));
	CHECK(r.ds.size == 12);
	/* stuffed dots are not message bytes */
	CHECK(DECODE("..3456789\r\n.\r\n", 10, &r));
	CHECK(body_is(&r, ".3456789\r\n", 14));
	/* 0: no limit */
	CHECK(DECODE("0123456789\r\n.\r\n", 0, &r));
	CHECK(r.ds.error == DATA_OK);
}

static void test_eight_bit_noted(void)
{
	struct result r;

	CHECK(DECODE("caf\xc3\xa9\r\n.\r\n", 0, &r));
	CHECK(body_is(&r, "caf\xc3\xa9\r\n", 10));
	CHECK(r.ds.eight_bit);
	CHECK(DECODE("cafe\r\n.\r\n", 0, &r));
	CHECK(!r.ds.eight_bit);
}

static void test_output_in_large_pieces(void)
{
	static char in[200000];
	struct result r;
	size_t n = 0;

	while (n + 80 < 190000) {
		memset(in + n, 'm', 78);
		memcpy(in + n + 78, "\r\n", 2);
		n += 80;
	}
	memcpy(in + n, ".\r\n", 3);
	result_init(&r, 0);
	CHECK(data_stream_feed(&r.ds, in, n + 3, sink, &r) == (long)n + 3);
	CHECK(r.ds.done && r.outlen == n);
	CHECK(r.sink_calls == 1);
	/* every stuffed dot costs one piece, no more */
	for (size_t i = 0; i < n; i += 80)
		in[i] = '.';
	result_init(&r, 0);
	CHECK(data_stream_feed(&r.ds, in, n + 3, sink, &r) == (long)n + 3);
	CHECK(r.outlen == n - n / 80);
	CHECK(r.sink_calls == (int)(n / 80));
}

static void test_sink_failure_aborts(void)
{
	struct result r;

	result_init(&r, 0);
	r.fail_sink = 1;
	CHECK(data_stream_feed(&r.ds, "abc\r\n.\r\n", 8, sink, &r) == -1);
	result_init(&r, 0);
	r.fail_sink = 1;
	CHECK(data_stream_feed(&r.ds, "abc", 3, sink, &r) == -1);
	/* no output, no sink call */
	result_init(&r, 0);
	r.fail_sink = 1;
	CHECK(data_stream_feed(&r.ds, ".\r\n", 3, sink, &r) == 3);
	CHECK(r.sink_calls == 0);
}

static void test_feed_after_end_consumes_nothing(void)
{
	struct result r;

	result_init(&r, 0);
	CHECK(data_stream_feed(&r.ds, ".\r\n", 3, sink, &r) == 3);
	CHECK(data_stream_feed(&r.ds, "x\r\n.\r\n", 6, sink, &r) == 0);
	CHECK(r.outlen == 0);
	CHECK(data_stream_feed(&r.ds, "", 0, sink, &r) == 0);
}

/* bdat - check IN as chunks of sizes CUTS (0-terminated), last flag on the
 * final one. */
static enum data_error bdat(const char *in, size_t len, const size_t *cuts, uint64_t max,
			    struct data_stream *ds)
{
	size_t pos = 0;
	enum data_error e = DATA_OK;

	data_stream_init(ds, max);
	for (size_t i = 0; cuts[i]; i++) {
		e = bdat_check(ds, in + pos, cuts[i], pos + cuts[i] == len);
		pos += cuts[i];
	}
	return e;
}

/* bdat_all_ways - the same error for IN whole, byte by byte and split at
 * each point. */
static int bdat_all_ways(const char *in, size_t len, uint64_t max, enum data_error want)
{
	struct data_stream ds;
	size_t cuts[4000];
	int ok = 1;

	cuts[0] = len, cuts[1] = 0;
	ok &= bdat(in, len, cuts, max, &ds) == want && ds.size == len && ds.done;
	for (size_t i = 0; i < len; i++)
		cuts[i] = 1;
	cuts[len] = 0;
	ok &= bdat(in, len, cuts, max, &ds) == want;
	for (size_t at = 1; at < len; at++) {
		cuts[0] = at, cuts[1] = len - at, cuts[2] = 0;
		ok &= bdat(in, len, cuts, max, &ds) == want;
	}
	if (!ok)
		fprintf(stderr, "  bdat [%s] want %d\n", in, want);
	return ok;
}

#define BDAT_ALL_WAYS(lit, max, want) bdat_all_ways((lit), sizeof(lit) - 1, (max), (want))

static void test_bdat_checks(void)
{
	static char longline[2100];
	struct data_stream ds;

	CHECK(BDAT_ALL_WAYS("abc\r\ndef\r\n", 0, DATA_OK));
	CHECK(BDAT_ALL_WAYS(".\r\n..\r\n", 0, DATA_OK)); /* dots mean nothing */
	CHECK(BDAT_ALL_WAYS("abc", 0, DATA_OK));
	CHECK(BDAT_ALL_WAYS("a\nb\r\n", 0, DATA_BARE_LF));
	CHECK(BDAT_ALL_WAYS("a\rb\r\n", 0, DATA_BARE_CR));
	CHECK(BDAT_ALL_WAYS("abc\r", 0, DATA_BARE_CR)); /* CR ends the last chunk */
	CHECK(BDAT_ALL_WAYS("\n", 0, DATA_BARE_LF));
	CHECK(BDAT_ALL_WAYS("a\0b", 0, DATA_NUL));
	CHECK(BDAT_ALL_WAYS("a\rb\nc", 0, DATA_BARE_CR));
	CHECK(BDAT_ALL_WAYS("0123456789", 10, DATA_OK));
	CHECK(BDAT_ALL_WAYS("0123456789a", 10, DATA_TOO_BIG));
	memset(longline, 'b', 998);
	memcpy(longline + 998, "\r\n", 3);
	CHECK(bdat_all_ways(longline, strlen(longline), 0, DATA_OK));
	memset(longline, 'b', 999);
	memcpy(longline + 999, "\r\n", 3);
	CHECK(bdat_all_ways(longline, strlen(longline), 0, DATA_LINE_TOO_LONG));
	memset(longline, 'b', 2000);
	longline[2000] = '\0';
	CHECK(bdat_all_ways(longline, strlen(longline), 0, DATA_LINE_TOO_LONG));
	/* a CR ending one chunk may find its LF in the next */
	data_stream_init(&ds, 0);
	CHECK(bdat_check(&ds, "a\r", 2, 0) == DATA_OK);
	CHECK(!ds.done);
	CHECK(bdat_check(&ds, "\nb", 2, 1) == DATA_OK);
	CHECK(ds.done && ds.size == 4);
	data_stream_init(&ds, 0);
	CHECK(bdat_check(&ds, "a\r", 2, 0) == DATA_OK);
	CHECK(bdat_check(&ds, "b", 1, 1) == DATA_BARE_CR);
	/* an empty last chunk still catches a CR left hanging */
	data_stream_init(&ds, 0);
	CHECK(bdat_check(&ds, "a\r", 2, 0) == DATA_OK);
	CHECK(bdat_check(&ds, "", 0, 1) == DATA_BARE_CR);
}

static void test_error_texts(void)
{
	const char *seen[6];

	for (int e = DATA_OK; e <= DATA_TOO_BIG; e++) {
		seen[e] = data_error_text((enum data_error)e);
		CHECK(seen[e] && seen[e][0]);
		for (int f = 0; f < e; f++)
			CHECK(strcmp(seen[e], seen[f]) != 0);
	}
	CHECK(strstr(data_error_text(DATA_BARE_LF), "LF") != NULL);
}

int main(void)
{
	RUN(test_immediate_dot_is_empty_message);
	RUN(test_plain_body);
	RUN(test_stops_right_after_terminator);
	RUN(test_dot_unstuffing);
	RUN(test_incomplete_input_waits);
	RUN(test_smuggling_does_not_end_message);
	RUN(test_smuggled_end_then_more_data);
	RUN(test_nul_refused);
	RUN(test_first_error_kept);
	RUN(test_line_length_limit);
	RUN(test_size_limit);
	RUN(test_eight_bit_noted);
	RUN(test_output_in_large_pieces);
	RUN(test_sink_failure_aborts);
	RUN(test_feed_after_end_consumes_nothing);
	RUN(test_bdat_checks);
	RUN(test_error_texts);
	return check_summary();
}
