/* data_stream.c - the DATA body decoder and BDAT chunk checker (see
 * data_stream.h).
 *
 * RFC 5321 4.1.1.4 (the end of mail data is CRLF "." CRLF), 4.5.2
 * (transparency: a leading dot is removed), 4.5.3.1.6 (text lines of at
 * most 1000 octets with CRLF), 2.3.8 (lines end with CRLF only; a bare CR
 * or LF is not a line end) and RFC 3030 2 (BDAT chunks carry no dots and
 * no terminator).
 *
 * One byte at a time through a small state machine, so a body split at any
 * point decodes the same.  Smuggling defence: only a CRLF that really is a
 * CRLF starts a line, so "\n.\r\n", "\r.\r\n" and ".\n" end nothing; they
 * mark the message bad and the search for the genuine CRLF.CRLF goes on. */
#include "smtp/data_stream.h"

#include <limits.h>

#include "smtp/command.h"

enum ds_state {
	DS_BOL,	   /* at the start of a line, after a real CRLF */
	DS_DOT,	   /* a "." at the start of a line (stuffing or terminator) */
	DS_DOT_CR, /* ".\r" at the start of a line: LF ends the message */
	DS_TEXT,   /* inside a line */
	DS_CR,	   /* a CR inside a line, waiting for its LF */
};

void data_stream_init(struct data_stream *ds, uint64_t max_size)
{
	*ds = (struct data_stream){.state = DS_BOL, .max_size = max_size};
}

/* set_error - keep only the first error: it is the one worth reporting. */
static void set_error(struct data_stream *ds, enum data_error e)
{
	if (ds->error == DATA_OK)
		ds->error = e;
}

/* text_byte - C as an ordinary byte of a line.  Returns 1: it belongs to
 * the message. */
static int text_byte(struct data_stream *ds, unsigned char c)
{
	ds->state = DS_TEXT;
	if (c == '\r') {
		ds->state = DS_CR;
	} else if (c == '\n') {
		/* a bare LF: not a line end, so no dot after it can end the
		 * message; the line count restarts only to bound the counter */
		set_error(ds, DATA_BARE_LF);
		ds->line_len = 0;
	} else if (c == '\0') {
		set_error(ds, DATA_NUL);
	}
	return 1;
}

/* step - advance by one input byte.  DOTS selects DATA (dot handling and
 * the terminator) over BDAT.  Returns 1 when C is a byte of the decoded
 * message, 0 when it is not (a stuffed dot, the terminator). */
static int step(struct data_stream *ds, unsigned char c, int dots)
{
	if (++ds->line_len > SMTP_TEXT_LINE_MAX)
		set_error(ds, DATA_LINE_TOO_LONG);
	if (c >= 0x80)
		ds->eight_bit = 1;
	switch (ds->state) {
	case DS_BOL:
		if (dots && c == '.') {
			/* 4.5.3.1.6: the limit does not count a stuffed dot */
			ds->line_len--;
			ds->state = DS_DOT;
			return 0;
		}
		return text_byte(ds, c);
	case DS_DOT:
		if (c == '\r') {
			/* held back: part of the terminator if LF follows,
			 * and a bare CR (no output any more) if not */
			ds->state = DS_DOT_CR;
			return 0;
		}
		/* the dot was stuffing (RFC 5321 4.5.2): dropped */
		return text_byte(ds, c);
	case DS_DOT_CR:
		if (c == '\n') {
			ds->done = 1;
			return 0;
		}
		set_error(ds, DATA_BARE_CR);
		return text_byte(ds, c);
	case DS_CR:
		if (c == '\n') {
			ds->state = DS_BOL;
			ds->line_len = 0;
			return 1;
		}
		set_error(ds, DATA_BARE_CR);
		return text_byte(ds, c);
	default:
		return text_byte(ds, c);
	}
}

/* count - one more decoded byte, against the size limit.  Bytes are
 * counted even once output has stopped, so the size can be logged. */
static void count(struct data_stream *ds)
{
	ds->size++;
	if (ds->max_size && ds->size > ds->max_size)
		set_error(ds, DATA_TOO_BIG);
}

/* data_stream_feed - decoded bytes go to SINK as runs: a run ends only at a
 * byte that is not output (a stuffed dot, the terminator) or at the first
 * error, after which nothing more is output. */
long data_stream_feed(struct data_stream *ds, const char *in, size_t len, data_sink_fn sink,
		      void *ctx)
{
	size_t i, run = 0;

	if (ds->done)
		return 0;
	if (len > LONG_MAX)
		len = LONG_MAX; /* the return value must be able to say it */
	for (i = 0; i < len && !ds->done; i++) {
		enum data_error before = ds->error;
		int emit = step(ds, (unsigned char)in[i], 1);
		if (emit)
			count(ds);
		if (emit && ds->error == DATA_OK)
			continue;
		/* byte I is not output: flush the run before it, unless output
		 * had already stopped before this byte */
		if (before == DATA_OK && i > run && sink(ctx, in + run, i - run) < 0)
			return -1;
		run = i + 1;
	}
	if (ds->error == DATA_OK && i > run && sink(ctx, in + run, i - run) < 0)
		return -1;
	return (long)i;
}

enum data_error bdat_check(struct data_stream *ds, const char *in, size_t len, int last)
{
	for (size_t i = 0; i < len; i++) {
		step(ds, (unsigned char)in[i], 0);
		count(ds);
	}
	if (last) {
		/* a CR that ends the last chunk has no LF left to come */
		if (ds->state == DS_CR)
			set_error(ds, DATA_BARE_CR);
		ds->done = 1;
	}
	return ds->error;
}

const char *data_error_text(enum data_error e)
{
	switch (e) {
	case DATA_OK:
		return "OK";
	case DATA_BARE_CR:
		return "Bare CR in message data";
	case DATA_BARE_LF:
		return "Bare LF in message data";
	case DATA_NUL:
		return "NUL byte in message data";
	case DATA_LINE_TOO_LONG:
		return "Line too long in message data";
	case DATA_TOO_BIG:
		return "Message too large";
	}
	return "Invalid message data";
}
