/* data_stream.h - the DATA body decoder (RFC 5321 4.1.1.4, 4.5.2).
 *
 * Bytes in, message bytes out, in any number of pieces: the state lives in
 * struct data_stream so a body may arrive split anywhere, even byte by byte.
 *
 * Strict end: only CRLF "." CRLF ends the body (the first CRLF may be the
 * one that ended the DATA command line).  Leading dots are unstuffed.  A CR
 * not followed by LF, or an LF not preceded by CR, marks the message bad
 * (SMTP smuggling defence) but decoding goes on to the real end so the
 * session stays in sync; nothing of a bad message may be stored.  Lines
 * longer than SMTP_TEXT_LINE_MAX and bodies larger than the size limit mark
 * it bad the same way (and stop producing output).  NUL bytes mark it bad.
 *
 * Output keeps CRLF line ends, without the final ".CRLF". */
#ifndef TERN_SMTP_DATA_STREAM_H
#define TERN_SMTP_DATA_STREAM_H

#include <stddef.h>
#include <stdint.h>

enum data_error {
	DATA_OK = 0,
	DATA_BARE_CR,
	DATA_BARE_LF,
	DATA_NUL,
	DATA_LINE_TOO_LONG,
	DATA_TOO_BIG,
};

struct data_stream {
	int state; /* private */
	size_t line_len; /* private */
	uint64_t size; /* message bytes decoded so far (counted on after an error) */
	uint64_t max_size; /* 0 = no limit */
	enum data_error error; /* first error seen */
	int eight_bit; /* a byte >= 0x80 was seen */
	int done; /* the terminating CRLF.CRLF was seen */
};

/* Called with decoded message bytes; returns 0, or -1 to abort (then
 * data_stream_feed returns -1). */
typedef int (*data_sink_fn)(void *ctx, const char *bytes, size_t len);

void data_stream_init(struct data_stream *ds, uint64_t max_size);

/* data_stream_feed - decode up to LEN bytes of IN.  Stops right after the
 * terminating ".CRLF" (ds->done set) and returns the number of input bytes
 * consumed; bytes after the end belong to the next command.  Returns -1 if
 * SINK failed. */
long data_stream_feed(struct data_stream *ds, const char *in, size_t len,
		      data_sink_fn sink, void *ctx);

/* bdat_check - the same content checks for one BDAT chunk, which is not
 * dot-stuffed and has no terminator: bare CR/LF, NUL, line length, size.
 * Uses DS's line state across chunks; the caller passes LAST on the final
 * chunk so a trailing bare CR is caught.  Returns ds->error. */
enum data_error bdat_check(struct data_stream *ds, const char *in, size_t len,
			   int last);

/* data_error_text - a short reason for the log and the reply. */
const char *data_error_text(enum data_error e);

#endif
