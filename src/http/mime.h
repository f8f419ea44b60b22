/* mime.h - composing an Internet message from the parts an API caller
 * gives: RFC 5322 header fields, MIME structure and encodings.
 *
 *   RFC 5322 3.3 (Date), 3.4 (mailboxes), 3.6 (fields), 2.2.3 (folding)
 *   RFC 2045 6.7 (quoted-printable), 6.8 (base64, 76-character lines)
 *   RFC 2046 5.1 (multipart/mixed and multipart/alternative: the
 *            preferred form, html, comes last)
 *   RFC 2047 (encoded-words for non-ASCII text in Subject, display names
 *            and custom fields: "=?utf-8?B?...?=", at most 75 characters
 *            each, never splitting a UTF-8 sequence)
 *   RFC 2231 (filename*= with charset and continuations for non-ASCII
 *            or long attachment names), RFC 2183 (Content-Disposition)
 *
 * The output is 7-bit clean with CRLF line ends and no line longer than
 * 998 octets, so it relays through any SMTP server without 8BITMIME.
 * Text and html bodies are sent as 7bit when they can be, otherwise as
 * quoted-printable; attachments always as base64.
 *
 * The composer trusts its input to have passed the checks below (the API
 * runs them on every value first): it never refuses, it only encodes.  Bcc
 * is not a field of struct mime_message: blind recipients exist only in
 * the envelope.  Pure apart from the random multipart boundaries. */
#ifndef TERN_HTTP_MIME_H
#define TERN_HTTP_MIME_H

#include <stddef.h>
#include <time.h>

struct evbuffer;

#define MIME_NAME_MAX 256 /* bytes of a display name */
#define MIME_FIELD_NAME_MAX 76 /* a custom field's name */
#define MIME_FIELD_VALUE_MAX 4096 /* bytes of a custom field's value (folded) */
#define MIME_FILENAME_MAX 255 /* bytes of an attachment's file name */
#define MIME_TYPE_MAX 127 /* "type/subtype" */

struct mime_mailbox {
	const char *name; /* display name (UTF-8), or NULL */
	const char *address; /* "local@domain", checked by core/address.h */
};

struct mime_field {
	const char *name; /* mime_field_name_ok and not mime_field_reserved */
	const char *value; /* UTF-8, mime_header_text_ok */
};

struct mime_attachment {
	const char *filename; /* UTF-8, mime_filename_ok */
	const char *content_type; /* "type/subtype", mime_content_type_ok */
	const unsigned char *data;
	size_t len;
};

/* Everything the composer writes.  Pointers are borrowed for the call. */
struct mime_message {
	const char *trace; /* lines put first (Received:), CRLF-ended, or NULL */
	time_t date;
	struct mime_mailbox from;
	const struct mime_mailbox *reply_to, *to, *cc;
	size_t nreply_to, nto, ncc;
	const char *subject; /* UTF-8 or NULL (no Subject field) */
	const char *message_id; /* "<...@...>" */
	const struct mime_field *fields;
	size_t nfields;
	const char *text, *html; /* UTF-8 bodies or NULL; any line ends */
	const struct mime_attachment *attachments;
	size_t nattachments;
};

/* mime_compose - append the whole message to OUT.  Returns 0, or -1 when
 * memory runs out (OUT then holds a partial message: discard it). */
int mime_compose(const struct mime_message *m, struct evbuffer *out);

/* mime_format_date - T as an RFC 5322 date-time in local time ("Mon, 01
 * Jan 2024 12:00:00 +0100"), independent of the locale.  OUT holds at
 * least 40 bytes. */
void mime_format_date(time_t t, char *out, size_t outlen);

/* Checks run on API input before composing.  Each returns 1 when S is
 * acceptable, 0 when not. */

/* mime_header_text_ok - text for a header field: valid UTF-8, no CR, LF,
 * NUL or other control character except TAB (a CR or LF would end the
 * field and start one of the caller's choosing: header injection), and no
 * blank run plus word longer than 900 octets (it could not be folded under
 * the 998-octet line limit). */
int mime_header_text_ok(const char *s, size_t len);

/* mime_field_name_ok - RFC 5322 3.6.8 field-name: 1 to MIME_FIELD_NAME_MAX
 * printable ASCII characters except ':'. */
int mime_field_name_ok(const char *name);

/* mime_field_reserved - a field the composer writes itself or that names
 * the originator, which a caller may not set through custom fields: From,
 * Sender, To, Cc, Bcc, Reply-To, Subject, Date, Message-ID, MIME-Version,
 * Content-*, Received, Return-Path, Delivered-To, Resent-*, X-Tern-*
 * (case-insensitive). */
int mime_field_reserved(const char *name);

/* mime_content_type_ok - "type/subtype" of RFC 2045 tokens, no parameters. */
int mime_content_type_ok(const char *s);

/* mime_filename_ok - 1 to MIME_FILENAME_MAX bytes of header text without
 * '/' or '\\' (a name, not a path for the reader's disk). */
int mime_filename_ok(const char *s);

/* mime_split_mailbox - "Display Name <local@domain>", "<local@domain>" or
 * "local@domain": the display name (unquoted, may be empty) into NAME and
 * the address into ADDR.  A name in double quotes loses its quotes and
 * backslash escapes.  Returns 0, or -1 when a part does not fit its buffer,
 * the brackets do not pair, or the name is not mime_header_text_ok.  The
 * address itself is not checked here. */
int mime_split_mailbox(const char *in, char *name, size_t namelen, char *addr, size_t addrlen);

#endif
