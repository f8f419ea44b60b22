/* mime.c - composing an Internet message with MIME (see mime.h for the
 * RFCs and the promises).
 *
 * Header fields are written through a small line writer that knows its
 * column, so folding (RFC 5322 2.2.3) happens between words and every line
 * stays under 78 characters where the input allows it, always under 998.
 * Bodies are analysed once: a text with only printable ASCII, short lines
 * and no "=_" goes out as 7bit; anything else as quoted-printable.  Our
 * multipart boundaries start with "=_", which neither quoted-printable
 * ('=' is always followed by two hex digits or a line end) nor base64 can
 * produce, and which no 7bit part holds, so a part can never end early. */
#include "http/mime.h"

#include <event2/buffer.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/address.h"

#define LINE_SOFT 78 /* RFC 5322 2.1.1: lines SHOULD be no longer */
#define LINE_HARD 998 /* ... and MUST be no longer */
#define QP_LINE 76 /* RFC 2045 6.7 (5), the '=' of a soft break included */
#define B64_LINE_BYTES 57 /* 76 base64 characters per line */
#define EW_CHUNK 45 /* bytes per encoded-word: 60 base64 + 12 = 72 <= 75 */
#define PCT_CHUNK 60 /* characters per RFC 2231 continuation */

/* A header line being written: where it goes and the current column. */
struct line {
	struct evbuffer *out;
	size_t col;
	int failed;
};

static void put(struct line *l, const char *s, size_t n)
{
	if (evbuffer_add(l->out, s, n) < 0)
		l->failed = 1;
	l->col += n;
}

static void puts_(struct line *l, const char *s)
{
	put(l, s, strlen(s));
}

/* put_word - S preceded by a space, or by a fold (CRLF SP) when it would
 * pass the soft limit and something other than the field name is on the
 * line already. */
static void put_word(struct line *l, const char *s, size_t n, size_t min_col)
{
	if (l->col > min_col && l->col + 1 + n > LINE_SOFT) {
		put(l, "\r\n", 2);
		l->col = 0;
	}
	put(l, " ", 1);
	put(l, s, n);
}

/* field_start - "Name:" at the start of a line. */
static void field_start(struct line *l, const char *name)
{
	l->col = 0;
	puts_(l, name);
	put(l, ":", 1);
}

static void field_end(struct line *l)
{
	put(l, "\r\n", 2);
	l->col = 0;
}

/* ---- checks ---- */

/* MIME_FOLD_UNIT_MAX - the longest blank run plus word a header may hold:
 * folding (RFC 5322 2.2.3) breaks only before blanks, so a longer unit
 * would make a line over 998 octets. */
#define MIME_FOLD_UNIT_MAX 900

int mime_header_text_ok(const char *s, size_t len)
{
	size_t unit = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return 0;
		int blank = c == ' ' || c == '\t';
		if (blank && i > 0 && s[i - 1] != ' ' && s[i - 1] != '\t')
			unit = 0; /* a fold may go here */
		if (++unit > MIME_FOLD_UNIT_MAX)
			return 0;
	}
	return utf8_valid(s, len);
}

int mime_field_name_ok(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > MIME_FIELD_NAME_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (name[i] < 33 || name[i] > 126 || name[i] == ':')
			return 0;
	return 1;
}

int mime_field_reserved(const char *name)
{
	static const char *const exact[] = {
		"from",	    "sender",	   "to",	  "cc",		"bcc",
		"reply-to", "subject",	   "date",	  "message-id", "mime-version",
		"received", "return-path", "delivered-to",
	};
	static const char *const prefixes[] = { "content-", "resent-", "x-tern-" };
	for (size_t i = 0; i < sizeof exact / sizeof exact[0]; i++)
		if (strcasecmp(name, exact[i]) == 0)
			return 1;
	for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++)
		if (strncasecmp(name, prefixes[i], strlen(prefixes[i])) == 0)
			return 1;
	return 0;
}

/* is_token_char - RFC 2045 5.1 token: printable ASCII except SPACE and
 * tspecials. */
static int is_token_char(char c)
{
	return c > 32 && c < 127 && !strchr("()<>@,;:\\\"/[]?=", c);
}

int mime_content_type_ok(const char *s)
{
	size_t n = strlen(s), slash = 0, nslash = 0;
	if (n == 0 || n > MIME_TYPE_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '/') {
			nslash++;
			slash = i;
		} else if (!is_token_char(s[i])) {
			return 0;
		}
	}
	return nslash == 1 && slash > 0 && slash + 1 < n;
}

int mime_filename_ok(const char *s)
{
	size_t n = strlen(s);
	return n > 0 && n <= MIME_FILENAME_MAX && mime_header_text_ok(s, n) && !strchr(s, '/') &&
	       !strchr(s, '\\');
}

static int copy_trimmed(const char *s, size_t n, char *out, size_t outlen)
{
	while (n && (*s == ' ' || *s == '\t'))
		s++, n--;
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	if (n >= outlen)
		return -1;
	memcpy(out, s, n);
	out[n] = '\0';
	return 0;
}

/* unquote - a quoted-string's content in place, backslash escapes removed
 * (RFC 5322 3.2.4).  -1 when an escape is left dangling. */
static int unquote(char *s)
{
	size_t n = strlen(s), j = 0;
	if (n < 2 || s[0] != '"' || s[n - 1] != '"')
		return 0;
	for (size_t i = 1; i + 1 < n; i++) {
		if (s[i] == '\\') {
			if (i + 2 >= n)
				return -1;
			i++;
		}
		s[j++] = s[i];
	}
	s[j] = '\0';
	return 0;
}

int mime_split_mailbox(const char *in, char *name, size_t namelen, char *addr, size_t addrlen)
{
	size_t n = strlen(in);
	while (n && (in[n - 1] == ' ' || in[n - 1] == '\t'))
		n--;
	const char *lt = n ? memrchr(in, '<', n) : NULL;
	if (!lt) {
		if (memchr(in, '>', n) || namelen == 0)
			return -1;
		name[0] = '\0';
		return copy_trimmed(in, n, addr, addrlen);
	}
	if (in[n - 1] != '>' || memchr(lt + 1, '>', (size_t)(in + n - 1 - (lt + 1))))
		return -1;
	if (copy_trimmed(lt + 1, (size_t)(in + n - 1 - (lt + 1)), addr, addrlen) < 0 ||
	    copy_trimmed(in, (size_t)(lt - in), name, namelen) < 0)
		return -1;
	/* Brackets and quotes are the syntax: inside a quoted name they are
	 * text, outside one they mean the input is not a single mailbox. */
	if (name[0] == '"') {
		if (unquote(name) < 0 || name[0] == '"')
			return -1;
	} else if (strpbrk(name, "<>\"")) {
		return -1;
	}
	return mime_header_text_ok(name, strlen(name)) ? 0 : -1;
}

/* ---- header text ---- */

static const char b64chars[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* base64 - LEN bytes of IN as base64 (with padding) into OUT, which holds
 * at least 4 * ((LEN + 2) / 3) bytes.  Returns the length written. */
static size_t base64(const unsigned char *in, size_t len, char *out)
{
	size_t o = 0;
	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;
		if (i + 1 < len)
			v |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < len)
			v |= in[i + 2];
		out[o++] = b64chars[(v >> 18) & 63];
		out[o++] = b64chars[(v >> 12) & 63];
		out[o++] = i + 1 < len ? b64chars[(v >> 6) & 63] : '=';
		out[o++] = i + 2 < len ? b64chars[v & 63] : '=';
	}
	return o;
}

/* put_encoded_words - S as RFC 2047 B-encoded words, each preceded by a
 * space or a fold.  A chunk never ends inside a UTF-8 sequence (6.3: each
 * encoded-word must be decodable by itself). */
static void put_encoded_words(struct line *l, const char *s, size_t len, size_t min_col)
{
	const unsigned char *p = (const unsigned char *)s;
	while (len) {
		/* As much as fits on this line (12 characters of syntax and a
		 * space around 4 per 3 bytes), or a full word on the next. */
		size_t room = l->col + 14 + 4 < LINE_SOFT ? (LINE_SOFT - l->col - 13) / 4 * 3 : 0;
		size_t chunk = room >= 6 && room < EW_CHUNK ? room : EW_CHUNK;
		size_t n = len < chunk ? len : chunk;
		while (n < len && n > 1 && (p[n] & 0xc0) == 0x80)
			n--;
		char word[16 + 4 * ((EW_CHUNK + 2) / 3)];
		size_t w = 0;
		memcpy(word, "=?utf-8?B?", 10);
		w = 10 + base64(p, n, word + 10);
		memcpy(word + w, "?=", 2);
		put_word(l, word, w + 2, min_col);
		p += n;
		len -= n;
	}
}

/* plain_ok - can S go out as it is: printable ASCII (and TAB), nothing
 * that a reader would take for an encoded-word, and no word too long to
 * fold? */
static int plain_ok(const char *s)
{
	size_t run = 0;
	for (const char *p = s; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if (c >= 0x80 || (c < 0x20 && c != '\t') || c == 0x7f)
			return 0;
		if (c == '=' && p[1] == '?')
			return 0;
		run = (c == ' ' || c == '\t') ? 0 : run + 1;
		if (run > LINE_HARD - MIME_FIELD_NAME_MAX - 4)
			return 0;
	}
	return 1;
}

/* put_unstructured - an unstructured field body (RFC 5322 3.2.5): ASCII
 * text folded before the spaces between its words, anything else as
 * encoded-words.  Unfolding gives back exactly the text. */
static void put_unstructured(struct line *l, const char *s, size_t min_col)
{
	if (!plain_ok(s)) {
		put_encoded_words(l, s, strlen(s), min_col);
		return;
	}
	put(l, " ", 1);
	const char *p = s;
	while (*p) {
		/* One token: its leading blanks, then a word. */
		size_t blanks = strspn(p, " \t");
		size_t n = blanks + strcspn(p + blanks, " \t");
		/* Fold only before a word: a line of blanks alone is obsolete
		 * syntax (RFC 5322 4.2). */
		if (blanks && n > blanks && l->col > min_col + 1 && l->col + n > LINE_SOFT) {
			put(l, "\r\n", 2);
			l->col = 0;
		}
		put(l, p, n);
		p += n;
	}
}

/* put_mailbox - one mailbox: a quoted or encoded display name, then the
 * address in angle brackets; just the address without a name. */
static void put_mailbox(struct line *l, const struct mime_mailbox *m, size_t min_col)
{
	const char *name = m->name;
	if (!name || !*name) {
		put_word(l, m->address, strlen(m->address), min_col);
		return;
	}
	if (plain_ok(name)) {
		char q[2 * MIME_NAME_MAX + 3];
		size_t n = 0;
		q[n++] = '"';
		for (const char *p = name; *p && n + 3 < sizeof q; p++) {
			if (*p == '"' || *p == '\\')
				q[n++] = '\\';
			q[n++] = *p;
		}
		q[n++] = '"';
		put_word(l, q, n, min_col);
	} else {
		put_encoded_words(l, name, strnlen(name, MIME_NAME_MAX), min_col);
	}
	char addr[ADDR_PATH_MAX + 3];
	int n = snprintf(addr, sizeof addr, "<%s>", m->address);
	put_word(l, addr, n > 0 && (size_t)n < sizeof addr ? (size_t)n : 0, min_col);
}

/* put_address_field - "Name: a, b, c", folded between mailboxes. */
static void put_address_field(struct line *l, const char *field, const struct mime_mailbox *m,
			      size_t n)
{
	if (n == 0)
		return;
	field_start(l, field);
	size_t min_col = l->col;
	for (size_t i = 0; i < n; i++) {
		put_mailbox(l, &m[i], min_col);
		if (i + 1 < n)
			put(l, ",", 1);
	}
	field_end(l);
}

static const char *const wdays[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
				       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };

void mime_format_date(time_t t, char *out, size_t outlen)
{
	struct tm tm;
	localtime_r(&t, &tm);
	long off = tm.tm_gmtoff / 60;
	char sign = off < 0 ? '-' : '+';
	if (off < 0)
		off = -off;
	snprintf(out, outlen, "%s, %02d %s %04d %02d:%02d:%02d %c%02ld%02ld", wdays[tm.tm_wday % 7],
		 tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
		 tm.tm_sec, sign, off / 60, off % 60);
}

/* ---- parameters (RFC 2231) ---- */

/* attr_char - RFC 2231 7 attribute-char: sent without percent-encoding. */
static int attr_char(unsigned char c)
{
	return c > 32 && c < 127 && !strchr("*'%()<>@,;:\\\"/[]?=", c);
}

/* put_param - "; NAME=VALUE" on a header line.  Short printable ASCII is
 * a quoted-string; anything else is RFC 2231: NAME*=utf-8''%XX..., split
 * into NAME*0*=, NAME*1*=... continuations when long, never inside a
 * %XX triple. */
static void put_param(struct line *l, const char *name, const char *value)
{
	size_t vlen = strlen(value);
	int plain = vlen <= PCT_CHUNK;
	for (size_t i = 0; plain && i < vlen; i++) {
		unsigned char c = (unsigned char)value[i];
		plain = c >= 32 && c < 127 && c != '"' && c != '\\';
	}
	char buf[2 * MIME_FILENAME_MAX + 64];
	if (plain) {
		int n = snprintf(buf, sizeof buf, "%s=\"%s\"", name, value);
		put(l, ";", 1);
		put_word(l, buf, (size_t)n < sizeof buf ? (size_t)n : 0, 0);
		return;
	}
	/* Percent-encode the whole value, then cut it into pieces. */
	size_t enc_cap = 3 * vlen + 1, enc_len = 0;
	char *enc = malloc(enc_cap);
	if (!enc) {
		l->failed = 1;
		return;
	}
	for (size_t i = 0; i < vlen; i++) {
		unsigned char c = (unsigned char)value[i];
		if (attr_char(c))
			enc[enc_len++] = (char)c;
		else
			enc_len += (size_t)snprintf(enc + enc_len, 4, "%%%02X", c);
	}
	int single = enc_len <= PCT_CHUNK;
	for (size_t off = 0, part = 0; off < enc_len; part++) {
		/* Each piece on its own line: " NAME*N*=[utf-8'']...;". */
		size_t syntax = strlen(name) + (part < 10 ? 6 : 7) + (part == 0 ? 7 : 0);
		size_t fit = LINE_SOFT - 2 - syntax > 6 ? LINE_SOFT - 2 - syntax : 6;
		size_t n = enc_len - off < fit ? enc_len - off : fit;
		if (single)
			n = enc_len;
		if (off + n < enc_len && n >= 2 && enc[off + n - 1] == '%')
			n -= 1;
		else if (off + n < enc_len && n >= 2 && enc[off + n - 2] == '%')
			n -= 2;
		int k;
		if (single)
			k = snprintf(buf, sizeof buf, "%s*=utf-8''%.*s", name, (int)n, enc + off);
		else
			k = snprintf(buf, sizeof buf, "%s*%zu*=%s%.*s", name, part,
				     part == 0 ? "utf-8''" : "", (int)n, enc + off);
		put(l, ";", 1);
		put_word(l, buf, k > 0 && (size_t)k < sizeof buf ? (size_t)k : 0, 0);
		off += n;
	}
	free(enc);
}

/* ---- bodies ---- */

/* normalize - TEXT with every line end (CRLF, LF or a lone CR) made CRLF,
 * malloc'ed, with its length in *LEN.  *SEVEN_BIT says whether it may go
 * out unencoded: printable ASCII and TAB only, lines within LINE_HARD, and
 * no "=_" (our boundaries' start). */
static char *normalize(const char *text, size_t *len, int *seven_bit)
{
	size_t n = strlen(text), o = 0, linelen = 0;
	char *out = malloc(2 * n + 1);
	if (!out)
		return NULL;
	int ok = 1;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)text[i];
		if (c == '\r' || c == '\n') {
			if (c == '\r' && text[i + 1] == '\n')
				i++;
			out[o++] = '\r';
			out[o++] = '\n';
			linelen = 0;
			continue;
		}
		if (c >= 0x80 || (c < 0x20 && c != '\t') || c == 0x7f || ++linelen > LINE_HARD ||
		    (c == '=' && text[i + 1] == '_'))
			ok = 0;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	*len = o;
	*seven_bit = ok;
	return out;
}

/* put_qp - S (CRLF lines) as quoted-printable, RFC 2045 6.7: '=' and
 * everything outside printable ASCII encoded, a blank before a line end
 * encoded (rule 3), soft breaks keep lines within 76 characters. */
static int put_qp(struct evbuffer *out, const char *s, size_t len)
{
	char buf[QP_LINE + 8];
	size_t col = 0;
	int rc = 0;
	for (size_t i = 0; i < len && rc == 0; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\r' && i + 1 < len && s[i + 1] == '\n') {
			buf[col++] = '\r';
			buf[col++] = '\n';
			rc = evbuffer_add(out, buf, col);
			col = 0;
			i++;
			continue;
		}
		int at_end = i + 1 == len || s[i + 1] == '\r';
		int encode = c == '=' || c > 126 || (c < 32 && c != '\t' && c != ' ') ||
			     ((c == ' ' || c == '\t') && at_end);
		size_t need = encode ? 3 : 1;
		if (col + need > QP_LINE - 1) {
			buf[col++] = '=';
			buf[col++] = '\r';
			buf[col++] = '\n';
			rc = evbuffer_add(out, buf, col);
			col = 0;
		}
		if (encode) {
			static const char hex[] = "0123456789ABCDEF";
			buf[col++] = '=';
			buf[col++] = hex[c >> 4];
			buf[col++] = hex[c & 15];
		} else {
			buf[col++] = (char)c;
		}
	}
	if (rc == 0 && col)
		rc = evbuffer_add(out, buf, col);
	return rc;
}

/* put_base64 - DATA as base64 in lines of 76 characters (RFC 2045 6.8),
 * CRLF between lines, none after the last (the boundary brings it). */
static int put_base64(struct evbuffer *out, const unsigned char *data, size_t len)
{
	char line[4 * (B64_LINE_BYTES / 3) + 2];
	int rc = 0;
	for (size_t i = 0; i < len && rc == 0; i += B64_LINE_BYTES) {
		size_t n = len - i < B64_LINE_BYTES ? len - i : B64_LINE_BYTES;
		size_t k = base64(data + i, n, line);
		if (i + n < len) {
			line[k++] = '\r';
			line[k++] = '\n';
		}
		rc = evbuffer_add(out, line, k);
	}
	return rc;
}

/* put_text_entity - the header of a text/SUBTYPE entity and its body. */
static int put_text_entity(struct evbuffer *out, const char *subtype, const char *text)
{
	size_t len;
	int seven_bit;
	char *norm = normalize(text, &len, &seven_bit);
	if (!norm)
		return -1;
	int rc = evbuffer_add_printf(out,
				     "Content-Type: text/%s; charset=utf-8\r\n"
				     "Content-Transfer-Encoding: %s\r\n\r\n",
				     subtype, seven_bit ? "7bit" : "quoted-printable") < 0;
	if (rc == 0)
		rc = seven_bit ? evbuffer_add(out, norm, len) : put_qp(out, norm, len);
	free(norm);
	return rc ? -1 : 0;
}

/* put_attachment_entity - RFC 2183 attachment with its names, base64. */
static int put_attachment_entity(struct evbuffer *out, const struct mime_attachment *a)
{
	struct line l = { .out = out };
	field_start(&l, "Content-Type");
	put_word(&l, a->content_type, strlen(a->content_type), 0);
	put_param(&l, "name", a->filename);
	field_end(&l);
	puts_(&l, "Content-Transfer-Encoding: base64\r\n");
	field_start(&l, "Content-Disposition");
	put_word(&l, "attachment", 10, 0);
	put_param(&l, "filename", a->filename);
	field_end(&l);
	put(&l, "\r\n", 2);
	if (l.failed)
		return -1;
	return put_base64(out, a->data, a->len);
}

/* new_boundary - "=_tern_" and 24 random hex digits into OUT (32 bytes). */
static void new_boundary(char out[32])
{
	unsigned char rnd[12];
	randombytes_buf(rnd, sizeof rnd);
	memcpy(out, "=_tern_", 7);
	sodium_bin2hex(out + 7, 25, rnd, sizeof rnd);
}

/* put_multipart_head - the header of a multipart entity and a preamble
 * for readers that know no MIME (RFC 2046 5.1.1). */
static int put_multipart_head(struct evbuffer *out, const char *subtype, const char *boundary)
{
	int n = evbuffer_add_printf(out,
				    "Content-Type: multipart/%s;\r\n boundary=\"%s\"\r\n\r\n"
				    "This is a multi-part message in MIME format.\r\n",
				    subtype, boundary);
	return n < 0 ? -1 : 0;
}

/* put_delimiter - "CRLF--BOUNDARY CRLF" (RFC 2046 5.1.1: the CRLF before
 * the dashes belongs to the delimiter), or the close with "--" after. */
static int put_delimiter(struct evbuffer *out, const char *boundary, int close)
{
	int n = evbuffer_add_printf(out, "\r\n--%s%s\r\n", boundary, close ? "--" : "");
	return n < 0 ? -1 : 0;
}

/* put_content - the text and/or html: one entity, or both as
 * multipart/alternative, plain text first (RFC 2046 5.1.4). */
static int put_content(struct evbuffer *out, const struct mime_message *m)
{
	if (!m->text || !m->html)
		return put_text_entity(out, m->text ? "plain" : "html", m->text ? m->text : m->html);
	char b[32];
	new_boundary(b);
	if (put_multipart_head(out, "alternative", b) < 0 || put_delimiter(out, b, 0) < 0 ||
	    put_text_entity(out, "plain", m->text) < 0 || put_delimiter(out, b, 0) < 0 ||
	    put_text_entity(out, "html", m->html) < 0 || put_delimiter(out, b, 1) < 0)
		return -1;
	return 0;
}

/* put_body - the top entity: content alone, or multipart/mixed with the
 * content first and each attachment after it. */
static int put_body(struct evbuffer *out, const struct mime_message *m)
{
	int has_content = m->text || m->html;
	if (m->nattachments == 0) {
		if (has_content)
			return put_content(out, m);
		return put_text_entity(out, "plain", "");
	}
	char b[32];
	new_boundary(b);
	if (put_multipart_head(out, "mixed", b) < 0)
		return -1;
	if (has_content && (put_delimiter(out, b, 0) < 0 || put_content(out, m) < 0))
		return -1;
	for (size_t i = 0; i < m->nattachments; i++)
		if (put_delimiter(out, b, 0) < 0 || put_attachment_entity(out, &m->attachments[i]) < 0)
			return -1;
	return put_delimiter(out, b, 1);
}

/* put_header - the message's own fields, in the order of RFC 5322 3.6's
 * table: trace, Date, originator, destination, identification, Subject,
 * the caller's fields, MIME-Version. */
static int put_header(struct evbuffer *out, const struct mime_message *m)
{
	struct line l = { .out = out };
	char date[64];
	if (m->trace)
		puts_(&l, m->trace);
	mime_format_date(m->date, date, sizeof date);
	field_start(&l, "Date");
	put_word(&l, date, strlen(date), 0);
	field_end(&l);
	put_address_field(&l, "From", &m->from, 1);
	put_address_field(&l, "Reply-To", m->reply_to, m->nreply_to);
	put_address_field(&l, "To", m->to, m->nto);
	put_address_field(&l, "Cc", m->cc, m->ncc);
	field_start(&l, "Message-ID");
	put_word(&l, m->message_id, strlen(m->message_id), 0);
	field_end(&l);
	if (m->subject) {
		field_start(&l, "Subject");
		put_unstructured(&l, m->subject, l.col);
		field_end(&l);
	}
	for (size_t i = 0; i < m->nfields; i++) {
		field_start(&l, m->fields[i].name);
		put_unstructured(&l, m->fields[i].value, l.col);
		field_end(&l);
	}
	puts_(&l, "MIME-Version: 1.0\r\n");
	return l.failed ? -1 : 0;
}

int mime_compose(const struct mime_message *m, struct evbuffer *out)
{
	if (put_header(out, m) < 0 || put_body(out, m) < 0)
		return -1;
	/* A message ends with a line end (RFC 5321 4.1.1.4 needs one before
	 * the final dot); only a text body without one lacks it. */
	struct evbuffer_ptr end;
	size_t len = evbuffer_get_length(out);
	char last[2] = { 0, 0 };
	if (len >= 2 && evbuffer_ptr_set(out, &end, len - 2, EVBUFFER_PTR_SET) == 0)
		evbuffer_copyout_from(out, &end, last, 2);
	if (memcmp(last, "\r\n", 2) != 0 && evbuffer_add(out, "\r\n", 2) < 0)
		return -1;
	return 0;
}
