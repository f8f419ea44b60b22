/* fuzz_data_stream.c - libFuzzer target for the DATA body decoder and the
 * BDAT chunk checks (smtp/data_stream.c; RFC 5321 4.1.1.4, 4.5.2,
 * 4.5.3.1.6, RFC 3030 2).
 *
 * The input is what a client sends after "354": message lines, the
 * terminating CRLF.CRLF, maybe the next commands.  It is decoded three
 * ways: in one piece, byte by byte, and in pieces whose sizes are read
 * from the input's own bytes (so the fuzzer steers the splits while every
 * seed stays a real body).  The promise of data_stream.h is that the split
 * does not matter: output, error, 8-bit flag, size, end and bytes consumed
 * must be identical, or abort().  The same input, cut into BDAT chunks
 * the same ways, must give the same verdict from bdat_check.
 *
 * The first byte also picks a size limit (0 = none) so DATA_TOO_BIG is
 * reached with small inputs. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/data_stream.h"

#define FUZZ_INPUT_MAX 65536

#define check(cond)                                                                                \
	do {                                                                                       \
		if (!(cond))                                                                       \
			abort();                                                                   \
	} while (0)

struct decoded {
	char *out; /* at most the input's length: decoding never adds bytes */
	size_t outlen, cap;
	long consumed;
	struct data_stream ds;
};

/* sink - collect the decoded bytes; an empty piece is a decoder bug. */
static int sink(void *ctx, const char *bytes, size_t len)
{
	struct decoded *d = ctx;

	check(len > 0 && len <= d->cap - d->outlen);
	memcpy(d->out + d->outlen, bytes, len);
	d->outlen += len;
	return 0;
}

/* refuse - a sink that fails, as when the spool cannot take more. */
static int refuse(void *ctx, const char *bytes, size_t len)
{
	return -1;
}

/* decode - feed DATA until the decoder stops: in one piece (MODE 0), byte
 * by byte (1), or in pieces of 1..64 bytes whose sizes are read from the
 * input at a moving position (2). */
static void decode(struct decoded *d, const uint8_t *data, size_t size, uint64_t max, int mode)
{
	size_t off = 0, k = 0;

	data_stream_init(&d->ds, max);
	d->outlen = 0;
	d->consumed = 0;
	while (off < size && !d->ds.done) {
		size_t n = mode == 0 ? size : mode == 1 ? 1 : (size_t)(data[k++ % size] % 64) + 1;
		if (n > size - off)
			n = size - off;
		long used = data_stream_feed(&d->ds, (const char *)data + off, n, sink, d);
		check(used >= 0 && (size_t)used <= n);
		/* a piece is consumed whole unless the body ended inside it */
		check((size_t)used == n || d->ds.done);
		off += (size_t)used;
		d->consumed += used;
	}
	/* after the end nothing more is taken */
	if (d->ds.done)
		check(data_stream_feed(&d->ds, "x", 1, sink, d) == 0);
}

static void check_same(const struct decoded *a, const struct decoded *b)
{
	check(a->outlen == b->outlen && !memcmp(a->out, b->out, a->outlen));
	check(a->consumed == b->consumed);
	check(a->ds.done == b->ds.done && a->ds.error == b->ds.error);
	check(a->ds.eight_bit == b->ds.eight_bit && a->ds.size == b->ds.size);
}

/* check_clean - a message accepted without error, against a plain reading
 * of RFC 5321: the body ends at the first CRLF "." CRLF (the DATA line's
 * CRLF counting as the first), every line ends with CRLF, a leading dot is
 * dropped, no line is over 1000 octets with its CRLF, no NUL. */
static void check_clean(const uint8_t *data, const struct decoded *d)
{
	size_t end = (size_t)d->consumed;
	uint8_t *framed = malloc(end + 2);

	check(framed != NULL);
	memcpy(framed, "\r\n", 2);
	memcpy(framed + 2, data, end);
	const uint8_t *term = memmem(framed, end + 2, "\r\n.\r\n", 5);
	check(term && (size_t)(term - framed) == end - 3);
	free(framed);

	size_t o = 0, i = 0, body = end - 3;
	while (i < body) {
		const uint8_t *lf = memchr(data + i, '\n', body - i);
		check(lf && lf > data + i && lf[-1] == '\r');
		size_t n = (size_t)(lf - (data + i)) + 1, skip = data[i] == '.';
		check(n - skip <= 1000 && !memchr(data + i, '\0', n));
		check(!memchr(data + i, '\r', n - 2)); /* no bare CR inside */
		check(o + n - skip <= d->outlen);
		check(!memcmp(d->out + o, data + i + skip, n - skip));
		o += n - skip;
		i += n;
	}
	check(o == d->outlen && d->ds.size == d->outlen);
}

/* fuzz_data - whole, byte by byte and input-steered pieces must agree. */
static void fuzz_data(const uint8_t *data, size_t size, uint64_t max)
{
	struct decoded whole = {.cap = size}, bytes = {.cap = size}, pieces = {.cap = size};
	whole.out = malloc(size);
	bytes.out = malloc(size);
	pieces.out = malloc(size);
	if (!whole.out || !bytes.out || !pieces.out)
		goto out;

	decode(&whole, data, size, max, 0);
	/* every output byte is counted; after an error output stops */
	check(whole.outlen <= whole.ds.size);
	check(whole.ds.error != DATA_OK || whole.outlen == whole.ds.size);
	check(!whole.ds.max_size || whole.ds.size <= whole.ds.max_size || whole.ds.error);
	check(data_error_text(whole.ds.error) != NULL);
	if (whole.ds.done && whole.ds.error == DATA_OK)
		check_clean(data, &whole);
	/* a failing sink fails the feed as soon as there is output */
	if (whole.outlen > 0) {
		struct data_stream ds;
		data_stream_init(&ds, max);
		check(data_stream_feed(&ds, (const char *)data, size, refuse, NULL) == -1);
	}
	decode(&bytes, data, size, max, 1);
	check_same(&whole, &bytes);
	decode(&pieces, data, size, max, 2);
	check_same(&whole, &pieces);
out:
	free(whole.out);
	free(bytes.out);
	free(pieces.out);
}

/* fuzz_bdat - the input as BDAT chunks: one chunk, then input-steered
 * chunks; the verdict and the counts must not depend on the cut. */
static void fuzz_bdat(const uint8_t *data, size_t size, uint64_t max)
{
	struct data_stream one, many;
	size_t off = 0, k = 0;

	data_stream_init(&one, max);
	enum data_error e = bdat_check(&one, (const char *)data, size, 1);
	check(e == one.error && one.done && one.size == size);

	data_stream_init(&many, max);
	do {
		size_t n = (size_t)(data[k++ % size] % 64) + 1;
		if (n > size - off)
			n = size - off;
		bdat_check(&many, (const char *)data + off, n, off + n == size);
		off += n;
	} while (off < size);
	check(many.error == one.error && many.eight_bit == one.eight_bit);
	check(many.size == one.size && many.done);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0 || size > FUZZ_INPUT_MAX)
		return 0;
	uint64_t max = data[0] & 0x80 ? (uint64_t)(data[0] & 0x7f) * 8 : 0;
	/* Exact-size copy: ASan sees any read past the end. */
	uint8_t *in = malloc(size);
	if (!in)
		return 0;
	memcpy(in, data, size);
	fuzz_data(in, size, max);
	fuzz_bdat(in, size, max);
	free(in);
	return 0;
}
