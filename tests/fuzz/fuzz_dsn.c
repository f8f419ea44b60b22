/* fuzz_dsn.c - libFuzzer target for the DSN helpers that read network
 * text (queue/dsn.c and dsn_encode.c; RFC 3461 4 xtext, RFC 3463 status
 * codes, RFC 3464 delivery-status fields, RFC 5322 2.1.1 line length).
 *
 * Remote servers choose the reply text that becomes a Diagnostic-Code;
 * clients choose the ENVID and ORCPT xtext that come back in a bounce.
 * The input, as one C string, goes to dsn_status_from_reply and
 * dsn_xtext_decode; then, cut at NUL bytes into reply, ORCPT, recipient,
 * reason, remote MTA, ENVID, sender and host name, it becomes a report for
 * dsn_compose.  Checked beyond memory safety:
 *   - a status is "C.D.D" of the reply's class, or "" with 0;
 *   - xtext decodes exactly when command.c's xtext_valid accepts it (the
 *     server must never take an ENVID or ORCPT its bounces cannot read),
 *     and re-encoding the decoded octets decodes to the same octets;
 *   - the composed message has CRLF line ends only, no NUL, no line over
 *     998 octets, a 7-bit delivery-status part, and is pure ASCII when
 *     dsn_info says it needs neither 8BITMIME nor SMTPUTF8. */
#include <event2/buffer.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "queue/dsn.h"
#include "smtp/command.h"

#define FUZZ_INPUT_MAX 16384
#define NFIELDS	       8

#define check(cond)                                                                                \
	do {                                                                                       \
		if (!(cond))                                                                       \
			abort();                                                                   \
	} while (0)

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* check_status - OUT is the status dsn_status_from_reply gave with CLS. */
static void check_status(const char *reply, int cls, const char *out)
{
	if (cls == 0) {
		check(out[0] == '\0');
		return;
	}
	check(cls == 2 || cls == 4 || cls == 5);
	check(reply[0] == '0' + cls && out[0] == '0' + cls && out[1] == '.');
	size_t i = 2;
	for (int part = 0; part < 2; part++) {
		size_t start = i;
		while (is_digit(out[i]))
			i++;
		check(i > start && i - start <= 3);
		if (part == 0)
			check(out[i++] == '.');
	}
	check(out[i] == '\0' && i < DSN_STATUS_MAX);
}

/* xtext_encode - RFC 3461 4: "+XX" for '+', '=' and octets outside
 * '!'..'~'. */
static void xtext_encode(const char *in, size_t len, char *out)
{
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];
		if (c < '!' || c > '~' || c == '+' || c == '=')
			o += (size_t)sprintf(out + o, "+%02X", c);
		else
			out[o++] = (char)c;
	}
	out[o] = '\0';
}

static int has_encoded_nul(const char *s, size_t len)
{
	for (size_t i = 0; i + 2 < len; i++)
		if (s[i] == '+' && s[i + 1] == '0' && s[i + 2] == '0')
			return 1;
	return 0;
}

static void fuzz_xtext(const char *in, size_t len)
{
	char dec[FUZZ_INPUT_MAX + 1], enc[3 * FUZZ_INPUT_MAX + 1], again[FUZZ_INPUT_MAX + 1];
	int n = dsn_xtext_decode(in, len, dec, sizeof dec);

	/* with room enough, the verdict is the grammar's */
	check((n >= 0) == (xtext_valid(in, len) && !has_encoded_nul(in, len)));
	if (n < 0)
		return;
	check((size_t)n <= len && dec[n] == '\0' && strlen(dec) == (size_t)n);
	/* a buffer one byte short is refused, not overrun */
	char *tight = malloc((size_t)n + 1);
	check(tight != NULL);
	check(dsn_xtext_decode(in, len, tight, (size_t)n + 1) == n);
	check(!memcmp(tight, dec, (size_t)n + 1));
	if (n > 0)
		check(dsn_xtext_decode(in, len, tight, (size_t)n) == -1);
	free(tight);
	xtext_encode(dec, (size_t)n, enc);
	check(xtext_valid(enc, strlen(enc)));
	check(dsn_xtext_decode(enc, strlen(enc), again, sizeof again) == n);
	check(!memcmp(again, dec, (size_t)n));
}

/* check_message - the composed DSN as a mail transport will see it. */
static void check_message(const char *m, size_t len, const struct dsn_info *info)
{
	size_t line = 0;
	int ascii = 1;

	check(len > 0 && !memchr(m, '\0', len));
	for (size_t i = 0; i < len; i++) {
		if (m[i] == '\n')
			abort(); /* a LF that no CR came before */
		if (m[i] == '\r') {
			check(i + 1 < len && m[i + 1] == '\n');
			i++;
			line = 0;
			continue;
		}
		check(++line <= 998);
		ascii &= (unsigned char)m[i] < 0x80;
	}
	check(m[len - 2] == '\r' && m[len - 1] == '\n');
	if (!info->eight_bit && !info->smtputf8)
		check(ascii);
	/* RFC 3464 2.1: the message/delivery-status part is 7-bit.  Parts
	 * are found by the real boundary, from the top header (the fields may
	 * hold text that looks like a part header). */
	const char *b = memmem(m, len, "\tboundary=\"", 11);
	check(b != NULL);
	b += 11;
	const char *bend = memchr(b, '"', len - (size_t)(b - m));
	check(bend != NULL && bend > b && bend - b <= 70);
	char delim[80];
	snprintf(delim, sizeof delim, "\r\n--%.*s\r\n", (int)(bend - b), b);
	size_t dlen = strlen(delim);
	const char *part = m;
	for (int i = 0; i < 2; i++) { /* past "Notification" to "Delivery report" */
		part = memmem(part, len - (size_t)(part - m), delim, dlen);
		check(part != NULL);
		part += dlen;
	}
	const char *end = memmem(part, len - (size_t)(part - m), delim, dlen - 2);
	check(end != NULL);
	check(memmem(part, (size_t)(end - part), "Content-Type: message/delivery-status", 37));
	for (const char *q = part; q < end; q++)
		check((unsigned char)*q < 0x80);
}

/* fuzz_compose - the input's NUL-separated fields as one recipient's
 * report; empty fields are absent (NULL), except the required ones. */
static void fuzz_compose(char *in, size_t len)
{
	const char *f[NFIELDS] = {0};
	size_t nf = 0, start = 0;

	for (size_t i = 0; i <= len && nf < NFIELDS; i++) {
		if (i == len || in[i] == '\0') {
			f[nf++] = i > start ? in + start : NULL;
			start = i + 1;
		}
	}
	struct envelope env;
	memset(&env, 0, sizeof env);
	snprintf(env.id, sizeof env.id, "0123456789abcdef");
	env.sender = (char *)(f[6] ? f[6] : "sender@example.org");
	env.envid = (char *)f[5];
	env.received = 1700000000 - 7200;
	env.ret = (int)(len % 3);
	env.smtputf8 = (int)(len / 3 % 2);
	struct dsn_rcpt rc = {
		.address = f[2] ? f[2] : "rcpt@example.net",
		.orcpt = f[1],
		.action = (enum dsn_action)(len / 6 % 6),
		.status = (len / 36) % 2 ? NULL : f[0],
		.reply = f[0],
		.reason = f[3],
		.remote_mta = f[4],
		.last_attempt = 1700000000 - 60,
		.retry_until = 1700000000 + 86400,
	};
	struct dsn_report r = {
		.kind = (enum dsn_kind)(len % 3),
		.env = &env,
		.rcpts = &rc,
		.nrcpts = 1,
		.hostname = f[7] ? f[7] : "mx.example.org",
		.message_id = "fuzz",
		.now = 1700000000,
		.body_fd = -1,
	};
	struct evbuffer *out = evbuffer_new();
	struct dsn_info info;
	check(out != NULL);
	check(dsn_compose(&r, out, &info) == 0);
	size_t mlen = evbuffer_get_length(out);
	const char *m = (const char *)evbuffer_pullup(out, -1);
	check(m != NULL);
	check_message(m, mlen, &info);
	evbuffer_free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char status[DSN_STATUS_MAX];

	if (size > FUZZ_INPUT_MAX)
		return 0;
	char *in = malloc(size + 1); /* the input as a C string */
	if (!in)
		return 0;
	memcpy(in, data, size);
	in[size] = '\0';

	memset(status, 'X', sizeof status);
	int cls = dsn_status_from_reply(in, status);
	check_status(in, cls, status);
	fuzz_xtext(in, size);
	fuzz_compose(in, size);
	free(in);
	return 0;
}
