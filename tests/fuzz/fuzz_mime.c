/* fuzz_mime.c - libFuzzer target for the message composer of the HTTP
 * API (http/mime.c; RFC 5322 2.1.1 line length, 2.2 header fields, 3.4
 * mailboxes; RFC 2045 6.7/6.8 encodings; RFC 2047 encoded-words; RFC 2231
 * file names).
 *
 * API callers choose every value that mime_compose writes.  The input is
 * cut at NUL bytes into from, to, subject, text, html, attachment file
 * name, content type and content, custom field name and value.  Each value
 * first goes through the check the API runs on it (mime_split_mailbox and
 * core/address.c for mailboxes, mime_header_text_ok, mime_filename_ok,
 * mime_content_type_ok, mime_field_name_ok / mime_field_reserved); what
 * passes is composed, what does not is left out or replaced by a default,
 * as the composer trusts its input to have passed.  Checked beyond memory
 * safety:
 *   - an accepted value has the shape its check promises (no control
 *     characters in header text, no '/' in a file name, one '/' in a
 *     content type), and mime_split_mailbox never writes past its buffers,
 *     however small;
 *   - the message has CRLF line ends only, no bare CR or LF, no NUL, no
 *     line over 998 octets, and is 7-bit (the header fields above all);
 *   - the header ends in an empty line and every header line is a field
 *     ("name:") or a folded continuation (starts with SP or TAB)
 *     (check_message in fuzz_check.h). */
#include <event2/buffer.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/address.h"
#include "fuzz_check.h"
#include "http/mime.h"

#define FUZZ_INPUT_MAX 65536
#define NFIELDS	       10
#define ADDR_BUF       (ADDR_PATH_MAX + 8)

enum { F_FROM, F_TO, F_SUBJECT, F_TEXT, F_HTML, F_FNAME, F_CTYPE, F_CONTENT, F_HNAME, F_HVALUE };

/* utf8_ok - LEN bytes of S are well-formed UTF-8 (RFC 3629 4): the
 * composer is given JSON strings, which always are. */
static int utf8_ok(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;
	while (i < len) {
		unsigned c = p[i], n, min;
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			n = 1, min = 0x80;
		else if (c >= 0xe0 && c <= 0xef)
			n = 2, min = 0x800;
		else if (c >= 0xf0 && c <= 0xf4)
			n = 3, min = 0x10000;
		else
			return 0;
		if (len - i <= n)
			return 0;
		unsigned cp = c & (0x3f >> n);
		for (unsigned k = 1; k <= n; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (p[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += n + 1;
	}
	return 1;
}

/* check_header_text - what mime_header_text_ok promises of an accepted S. */
static void check_header_text(const char *s, size_t len)
{
	check(utf8_ok(s, len));
	for (size_t i = 0; i < len; i++)
		check((unsigned char)s[i] >= 0x20 || s[i] == '\t');
}

/* split_checked - mime_split_mailbox into buffers of exactly the sizes
 * given (heap, so that ASan sees one byte too far); 0 and the parts in
 * NAME and ADDR when it accepts IN. */
static int split_checked(const char *in, size_t namelen, size_t addrlen, char *name, char *addr)
{
	char *n = malloc(namelen), *a = malloc(addrlen);
	check(n && a);
	int rc = mime_split_mailbox(in, n, namelen, a, addrlen);
	check(rc == 0 || rc == -1);
	if (rc == 0) {
		check(memchr(n, '\0', namelen) && memchr(a, '\0', addrlen));
		check_header_text(n, strlen(n));
		check(!strchr(a, '<') && !strchr(a, '>'));
		memcpy(name, n, strlen(n) + 1);
		memcpy(addr, a, strlen(a) + 1);
	}
	free(n);
	free(a);
	return rc;
}

/* mailbox - IN as the API would take it, or DEF when it would refuse it. */
static void mailbox(const char *in, size_t tight, char *name, char *addr, struct mime_mailbox *out,
		    const char *def)
{
	struct address a;
	const char *why;
	*out = (struct mime_mailbox){NULL, def};
	if (!in)
		return;
	/* small buffers are refused cleanly, not overrun */
	char n2[MIME_NAME_MAX + 1], a2[ADDR_BUF];
	split_checked(in, tight % 8 + 1, tight / 8 % 16 + 1, n2, a2);
	if (split_checked(in, MIME_NAME_MAX + 1, ADDR_BUF, name, addr) < 0 || !addr[0])
		return;
	if (address_parse_mailbox(addr, strlen(addr), 0, &a, &why) < 0 || !a.domain[0] ||
	    address_format(&a, addr, ADDR_BUF) < 0)
		return;
	*out = (struct mime_mailbox){name[0] ? name : NULL, addr};
}

/* header_value - S when it may be a Subject or custom field value. */
static const char *header_value(const char *s)
{
	if (!s)
		return NULL;
	size_t len = strlen(s);
	if (!mime_header_text_ok(s, len))
		return NULL;
	check_header_text(s, len);
	return len <= MIME_FIELD_VALUE_MAX ? s : NULL;
}

/* fuzz_checks - the checks alone on the raw values, accepted or not. */
static void fuzz_checks(const char *const *f)
{
	for (size_t i = 0; i < NFIELDS; i++) {
		if (!f[i])
			continue;
		const char *s = f[i];
		size_t len = strlen(s);
		if (mime_filename_ok(s)) {
			check(len >= 1 && len <= MIME_FILENAME_MAX);
			check(!strchr(s, '/') && !strchr(s, '\\'));
			check_header_text(s, len);
		}
		if (mime_content_type_ok(s)) {
			const char *slash = strchr(s, '/');
			check(len <= MIME_TYPE_MAX && slash && slash > s && slash[1]);
			check(!strchr(slash + 1, '/'));
			for (size_t k = 0; k < len; k++)
				check(s[k] > ' ' && s[k] <= '~' &&
				      !strchr("()<>@,;:\\\"[]?=", s[k]));
		}
		if (mime_field_name_ok(s)) {
			check(len >= 1 && len <= MIME_FIELD_NAME_MAX && !strchr(s, ':'));
			for (size_t k = 0; k < len; k++)
				check(s[k] > ' ' && s[k] <= '~');
		}
		(void)mime_field_reserved(s);
		header_value(s);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > FUZZ_INPUT_MAX)
		return 0;
	char *in = malloc(size + 1); /* the input as C strings */
	if (!in)
		return 0;
	memcpy(in, data, size);
	in[size] = '\0';
	const char *f[NFIELDS] = {0};
	size_t nf = 0, start = 0;
	for (size_t i = 0; i <= size && nf < NFIELDS; i++) {
		if (i == size || in[i] == '\0') {
			f[nf++] = i > start ? in + start : NULL;
			start = i + 1;
		}
	}
	fuzz_checks(f);

	char from_name[MIME_NAME_MAX + 1], from_addr[ADDR_BUF];
	char to_name[MIME_NAME_MAX + 1], to_addr[ADDR_BUF];
	struct mime_mailbox from, to[2];
	mailbox(f[F_FROM], size, from_name, from_addr, &from, "sender@example.org");
	mailbox(f[F_TO], size / 3, to_name, to_addr, &to[0], "rcpt@example.net");
	to[1] = from;

	struct mime_attachment att = {
		.filename = f[F_FNAME] && mime_filename_ok(f[F_FNAME]) ? f[F_FNAME] : "file.bin",
		.content_type = f[F_CTYPE] && mime_content_type_ok(f[F_CTYPE])
					? f[F_CTYPE]
					: "application/octet-stream",
		.data = (const unsigned char *)(f[F_CONTENT] ? f[F_CONTENT] : ""),
		.len = f[F_CONTENT] ? strlen(f[F_CONTENT]) : 0,
	};
	struct mime_field field = {"X-Fuzz", header_value(f[F_HVALUE])};
	if (f[F_HNAME] && mime_field_name_ok(f[F_HNAME]) && !mime_field_reserved(f[F_HNAME]))
		field.name = f[F_HNAME];
	const char *text = f[F_TEXT] && utf8_ok(f[F_TEXT], strlen(f[F_TEXT])) ? f[F_TEXT] : NULL;
	const char *html = f[F_HTML] && utf8_ok(f[F_HTML], strlen(f[F_HTML])) ? f[F_HTML] : NULL;

	struct mime_message m = {
		.trace = size % 2 ? "Received: from [192.0.2.1]\r\n\tby mx.example.org; "
				    "Tue, 14 Nov 2023 22:13:20 +0000\r\n"
				  : NULL,
		.date = 1700000000,
		.from = from,
		.reply_to = size % 3 ? NULL : &to[1],
		.nreply_to = size % 3 ? 0 : 1,
		.to = to,
		.nto = 1 + size / 2 % 2,
		.cc = size % 5 ? NULL : to,
		.ncc = size % 5 ? 0 : 1,
		.subject = header_value(f[F_SUBJECT]),
		.message_id = "<0123456789abcdef.fuzz@mx.example.org>",
		.fields = &field,
		.nfields = field.value ? 1 : 0,
		.text = text,
		.html = html,
		.attachments = &att,
		.nattachments = f[F_CONTENT] || f[F_FNAME] ? 1 : 0,
	};
	struct evbuffer *out = evbuffer_new();
	check(out != NULL);
	check(mime_compose(&m, out) == 0);
	size_t mlen = evbuffer_get_length(out);
	const char *msg = (const char *)evbuffer_pullup(out, -1);
	check(msg != NULL);
	check_message(msg, mlen, NULL);
	evbuffer_free(out);
	free(in);
	return 0;
}
