/* fuzz_client_reply.c - libFuzzer target for the replies a remote SMTP
 * server sends to tern's client (smtp/client_reply.c; RFC 5321 4.2,
 * 4.5.3.1.5, RFC 2034, RFC 3463, and the EHLO keywords of RFC 1870, 2920,
 * 3030, 3207, 3461, 4954, 6152, 6531).
 *
 * The input is what a hostile server could send: any bytes.  It is parsed
 * in one piece, byte by byte, and in pieces whose sizes are read from the
 * input itself; the three must produce the same complete replies and end
 * the same way (more wanted, or the same error), or abort().  Every
 * complete reply is also handed to smtp_ehlo_parse, as the client does
 * with the EHLO reply.  Checked beyond memory safety: codes are 200..559,
 * the text is a C string of the announced length without control bytes,
 * the enhanced code is of the reply's class. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/client_reply.h"

#define FUZZ_INPUT_MAX	 65536
#define FUZZ_REPLIES_MAX 256 /* replies remembered for the comparison */

#define check(cond)                                                                                \
	do {                                                                                       \
		if (!(cond))                                                                       \
			abort();                                                                   \
	} while (0)

/* What is compared between the ways of feeding: a digest of each reply. */
struct seen {
	size_t nreplies;
	struct {
		int code;
		size_t nlines, textlen;
		uint32_t hash; /* FNV-1a of enhanced code and text */
		struct smtp_ehlo ehlo;
	} r[FUZZ_REPLIES_MAX];
	enum smtp_reply_status end;
	const char *error;
};

static uint32_t fnv(uint32_t h, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 16777619u;
	return h;
}

/* check_reply - one complete reply as client.c will read it. */
static void check_reply(const struct smtp_client_reply *r)
{
	check(r->code >= 200 && r->code <= 559);
	check(r->nlines >= 1 && r->nlines <= SMTP_REPLY_LINES_MAX);
	check(r->textlen <= SMTP_REPLY_TEXT_MAX && strlen(r->text) == r->textlen);
	for (size_t i = 0; i < r->textlen; i++) {
		unsigned char c = (unsigned char)r->text[i];
		check(c >= 0x20 || c == '\n' || c == '\t');
		check(c != 0x7f);
	}
	size_t e = strnlen(r->enhanced, SMTP_ENHANCED_MAX);
	check(e < SMTP_ENHANCED_MAX);
	if (e)
		check(r->enhanced[0] == '0' + r->code / 100 && r->enhanced[1] == '.');
}

static void note(struct seen *s, const struct smtp_client_reply *r)
{
	struct smtp_ehlo ehlo;

	check_reply(r);
	smtp_ehlo_parse(r, &ehlo);
	if (s->nreplies == FUZZ_REPLIES_MAX)
		return;
	s->r[s->nreplies].code = r->code;
	s->r[s->nreplies].nlines = r->nlines;
	s->r[s->nreplies].textlen = r->textlen;
	s->r[s->nreplies].hash =
		fnv(fnv(2166136261u, r->enhanced, strlen(r->enhanced)), r->text, r->textlen);
	s->r[s->nreplies].ehlo = ehlo;
	s->nreplies++;
}

/* feed - one piece, as many replies as it completes. */
static void feed(struct smtp_client_reply_parser *p, struct seen *s, const char *buf, size_t len)
{
	while (s->end != SMTP_REPLY_ERROR) {
		size_t used = 0;
		enum smtp_reply_status st = smtp_client_reply_feed(p, buf, len, &used);
		s->end = st;
		if (st == SMTP_REPLY_ERROR) {
			check(p->error != NULL);
			s->error = p->error;
			/* errors are sticky */
			check(smtp_client_reply_feed(p, "250 ok\r\n", 8, &used) ==
			      SMTP_REPLY_ERROR);
			return;
		}
		check(used <= len);
		if (st == SMTP_REPLY_MORE) {
			check(used == len);
			return;
		}
		check(used > 0 && buf[used - 1] == '\n');
		note(s, &p->reply);
		buf += used;
		len -= used;
		if (len == 0) {
			s->end = SMTP_REPLY_MORE;
			return;
		}
	}
}

/* parse - the input cut by MODE: 0 whole, 1 byte by byte, 2 pieces of
 * 1..64 bytes read from the input at a moving position. */
static void parse(struct seen *s, const struct smtp_reply_limits *lim, const uint8_t *data,
		  size_t size, int mode)
{
	struct smtp_client_reply_parser *p = malloc(sizeof *p);
	size_t off = 0, k = 0;

	check(p != NULL);
	memset(s, 0, sizeof *s);
	s->end = SMTP_REPLY_MORE;
	smtp_client_reply_init(p, lim);
	while (off < size && s->end != SMTP_REPLY_ERROR) {
		size_t n = mode == 0 ? size : mode == 1 ? 1 : (size_t)(data[k++ % size] % 64) + 1;
		if (n > size - off)
			n = size - off;
		feed(p, s, (const char *)data + off, n);
		off += n;
	}
	free(p);
}

static void check_same(const struct seen *a, const struct seen *b)
{
	check(a->nreplies == b->nreplies && a->end == b->end && a->error == b->error);
	for (size_t i = 0; i < a->nreplies; i++) {
		check(a->r[i].code == b->r[i].code && a->r[i].nlines == b->r[i].nlines);
		check(a->r[i].textlen == b->r[i].textlen && a->r[i].hash == b->r[i].hash);
		check(a->r[i].ehlo.ext == b->r[i].ehlo.ext);
		check(a->r[i].ehlo.size == b->r[i].ehlo.size);
		check(a->r[i].ehlo.auth == b->r[i].ehlo.auth);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct seen whole, bytes, pieces;

	if (size == 0 || size > FUZZ_INPUT_MAX)
		return 0;
	uint8_t *in = malloc(size); /* exact size: ASan sees reads past the end */
	if (!in)
		return 0;
	memcpy(in, data, size);
	/* The maxima, then small limits chosen by the last byte so that every
	 * limit is reached by short inputs too. */
	uint8_t b = in[size - 1];
	struct smtp_reply_limits small = {
		.line_max = 8 + (b & 0x3f), .lines_max = 1 + (b >> 6), .text_max = 16 + b};
	for (int l = 0; l < 2; l++) {
		const struct smtp_reply_limits *lim = l ? &small : NULL;
		parse(&whole, lim, in, size, 0);
		parse(&bytes, lim, in, size, 1);
		parse(&pieces, lim, in, size, 2);
		check_same(&whole, &bytes);
		check_same(&whole, &pieces);
	}
	free(in);
	return 0;
}
