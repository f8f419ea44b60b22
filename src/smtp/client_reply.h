/* client_reply.h - the replies a remote SMTP server sends to tern's outgoing
 * client: a resumable reply parser and the EHLO keyword parser.
 *
 * RFC 5321 4.2 (reply lines "NNN-text" / "NNN text", one code per reply),
 * 4.5.3.1.5 (reply line length), RFC 3463 / RFC 2034 (enhanced status
 * codes), RFC 5321 4.1.1.1 and the EHLO keywords of RFC 2920 (PIPELINING),
 * RFC 1870 (SIZE), RFC 6152 (8BITMIME), RFC 6531 (SMTPUTF8), RFC 3461 (DSN),
 * RFC 3207 (STARTTLS), RFC 3030 (CHUNKING), RFC 4954 (AUTH).
 *
 * Pure: bytes in (split anywhere), complete replies out; no I/O, no
 * allocation.  All memory is inside struct smtp_client_reply_parser, so a
 * hostile server that sends a 10 MB line costs nothing but an error: the
 * parser refuses the line as soon as it passes the limit.  Errors are final
 * (the reply stream no longer pairs with the commands sent), the client
 * closes the connection. */
#ifndef TERN_SMTP_CLIENT_REPLY_H
#define TERN_SMTP_CLIENT_REPLY_H

#include <stddef.h>
#include <stdint.h>

/* RFC 5321 4.5.3.1.5 allows 512 octets with CRLF; servers in the wild go a
 * little beyond, so lines up to 1024 are accepted and anything longer is a
 * broken or hostile server. */
#define SMTP_REPLY_LINE_MAX  1024
#define SMTP_REPLY_LINES_MAX 100
#define SMTP_REPLY_TEXT_MAX  16384 /* all lines of one reply, separators included */
#define SMTP_ENHANCED_MAX    12	   /* "5.123.123" and NUL */

/* One limits struct per parser; values above the compile-time maxima above
 * are clamped to them, 0 means the maximum. */
struct smtp_reply_limits {
	size_t line_max;  /* bytes in one line, CRLF included */
	size_t lines_max; /* lines in one reply */
	size_t text_max;  /* text bytes kept for one reply */
};

/* A complete reply. */
struct smtp_client_reply {
	int code;			  /* 200..559 */
	char enhanced[SMTP_ENHANCED_MAX]; /* "2.1.5" from the first line, or "" */
	size_t nlines;
	/* Each line's text after "NNN-" / "NNN ", without the enhanced code when
	 * the line starts with the first line's one; lines separated by '\n';
	 * NUL-terminated.  Control bytes (NUL included) are replaced by '?', so
	 * the text is a C string; 8-bit bytes are kept (RFC 6531 replies). */
	char text[SMTP_REPLY_TEXT_MAX + 1];
	size_t textlen;
};

enum smtp_reply_status {
	SMTP_REPLY_MORE,  /* every byte consumed, the reply is not complete yet */
	SMTP_REPLY_DONE,  /* parser->reply is complete; feed the rest again */
	SMTP_REPLY_ERROR, /* broken or hostile input; parser->error says why */
};

struct smtp_client_reply_parser {
	struct smtp_reply_limits limits;
	struct smtp_client_reply reply; /* valid after DONE until the next feed */
	const char *error;		/* static string, set with SMTP_REPLY_ERROR */
	int in_reply;			/* 1 when a multiline reply has begun */
	size_t linelen;
	char line[SMTP_REPLY_LINE_MAX];
};

/* smtp_client_reply_init - an empty parser with LIMITS (NULL = maxima). */
void smtp_client_reply_init(struct smtp_client_reply_parser *p,
			    const struct smtp_reply_limits *limits);

/* smtp_client_reply_reset - forget a partial reply and any error (after
 * STARTTLS: RFC 3207 5 says nothing read before the handshake counts). */
void smtp_client_reply_reset(struct smtp_client_reply_parser *p);

/* smtp_client_reply_feed - parse up to LEN bytes of BUF.  *USED is set to
 * the bytes consumed: all of them with MORE; up to and including the end of
 * the reply's last line with DONE (call again with the rest); undefined with
 * ERROR, which is sticky until reset.  Lines end with LF; a CR before it is
 * dropped (servers that send bare LF are tolerated, they are only talking to
 * us). */
enum smtp_reply_status smtp_client_reply_feed(struct smtp_client_reply_parser *p, const char *buf,
					      size_t len, size_t *used);

/* EHLO keywords that change what the client sends. */
enum smtp_ext {
	SMTP_EXT_PIPELINING = 1 << 0,
	SMTP_EXT_SIZE = 1 << 1,
	SMTP_EXT_8BITMIME = 1 << 2,
	SMTP_EXT_SMTPUTF8 = 1 << 3,
	SMTP_EXT_DSN = 1 << 4,
	SMTP_EXT_STARTTLS = 1 << 5,
	SMTP_EXT_CHUNKING = 1 << 6,
	SMTP_EXT_AUTH = 1 << 7,
	SMTP_EXT_ENHANCEDSTATUSCODES = 1 << 8,
};

enum smtp_auth_mech {
	SMTP_AUTH_PLAIN = 1 << 0,
	SMTP_AUTH_LOGIN = 1 << 1,
	SMTP_AUTH_CRAM_MD5 = 1 << 2,
	SMTP_AUTH_XOAUTH2 = 1 << 3,
	SMTP_AUTH_OTHER = 1 << 4,
};

struct smtp_ehlo {
	unsigned ext;  /* smtp_ext bits */
	uint64_t size; /* SIZE n; 0 = no fixed limit announced (RFC 1870 4) */
	unsigned auth; /* smtp_auth_mech bits */
};

/* smtp_ehlo_parse - the keywords of a 250 EHLO reply R (the first line is
 * the server's name and is skipped).  Keywords are case-insensitive;
 * unknown ones are ignored, and so is a SIZE whose value does not fit in
 * 64 bits (treated as no limit). */
void smtp_ehlo_parse(const struct smtp_client_reply *r, struct smtp_ehlo *out);

#endif
