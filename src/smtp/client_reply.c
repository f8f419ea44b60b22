/* client_reply.c - parsing a remote SMTP server's replies and EHLO keywords
 * (see client_reply.h; RFC 5321 4.2, RFC 2034, RFC 3463). */
#include "smtp/client_reply.h"

#include <string.h>
#include <strings.h>

static size_t clamp(size_t v, size_t max)
{
	return v == 0 || v > max ? max : v;
}

void smtp_client_reply_init(struct smtp_client_reply_parser *p,
			    const struct smtp_reply_limits *limits)
{
	memset(p, 0, sizeof *p);
	if (limits)
		p->limits = *limits;
	p->limits.line_max = clamp(p->limits.line_max, SMTP_REPLY_LINE_MAX);
	p->limits.lines_max = clamp(p->limits.lines_max, SMTP_REPLY_LINES_MAX);
	p->limits.text_max = clamp(p->limits.text_max, SMTP_REPLY_TEXT_MAX);
}

void smtp_client_reply_reset(struct smtp_client_reply_parser *p)
{
	struct smtp_reply_limits lim = p->limits;
	smtp_client_reply_init(p, &lim);
}

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* enhanced_len - length of an RFC 3463 code "C.SSS.DDD" at S whose class
 * is CLASS, followed by a space or the end of the line; 0 if there is none. */
static size_t enhanced_len(const char *s, size_t len, char class)
{
	size_t i = 0;
	if (len < 5 || s[0] != class || s[1] != '.')
		return 0;
	i = 2;
	for (int part = 0; part < 2; part++) {
		size_t start = i;
		while (i < len && is_digit(s[i]) && i - start < 3)
			i++;
		if (i == start)
			return 0;
		if (part == 0) {
			if (i >= len || s[i] != '.')
				return 0;
			i++;
		}
	}
	if (i < len && s[i] != ' ')
		return 0;
	return i;
}

/* append_text - add one line's text to the reply, control bytes masked. */
static int append_text(struct smtp_client_reply_parser *p, const char *s, size_t len)
{
	struct smtp_client_reply *r = &p->reply;
	size_t need = len + (r->nlines > 1 ? 1 : 0);
	if (r->textlen + need > p->limits.text_max)
		return -1;
	if (r->nlines > 1)
		r->text[r->textlen++] = '\n';
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		r->text[r->textlen++] = (c < 0x20 && c != '\t') || c == 0x7f ? '?' : (char)c;
	}
	r->text[r->textlen] = '\0';
	return 0;
}

/* reply_line - one complete line without its line end.  Returns 1 when it
 * was the last line of the reply, 0 when more lines follow, -1 on error. */
static int reply_line(struct smtp_client_reply_parser *p, const char *s, size_t len)
{
	struct smtp_client_reply *r = &p->reply;
	if (len < 3 || s[0] < '2' || s[0] > '5' || s[1] < '0' || s[1] > '5' || !is_digit(s[2])) {
		p->error = "malformed reply code";
		return -1;
	}
	if (len > 3 && s[3] != ' ' && s[3] != '-') {
		p->error = "malformed reply separator";
		return -1;
	}
	int code = (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
	if (!p->in_reply) {
		r->code = code;
		r->enhanced[0] = '\0';
		r->nlines = 0;
		r->textlen = 0;
		r->text[0] = '\0';
		p->in_reply = 1;
	} else if (code != r->code) {
		p->error = "reply code changes inside a multiline reply";
		return -1;
	}
	if (++r->nlines > p->limits.lines_max) {
		p->error = "too many reply lines";
		return -1;
	}
	int last = len == 3 || s[3] == ' ';
	const char *text = len > 4 ? s + 4 : s + len;
	size_t tlen = len > 4 ? len - 4 : 0;
	size_t elen = enhanced_len(text, tlen, s[0]);
	if (elen && r->nlines == 1 && elen < sizeof r->enhanced) {
		memcpy(r->enhanced, text, elen);
		r->enhanced[elen] = '\0';
	}
	/* RFC 2034: every line repeats the code; keep it out of the text once. */
	if (elen && r->enhanced[0] && elen == strlen(r->enhanced) &&
	    !memcmp(text, r->enhanced, elen)) {
		text += elen;
		tlen -= elen;
		if (tlen && *text == ' ') {
			text++;
			tlen--;
		}
	}
	if (append_text(p, text, tlen) < 0) {
		p->error = "reply too long";
		return -1;
	}
	if (last)
		p->in_reply = 0;
	return last;
}

enum smtp_reply_status smtp_client_reply_feed(struct smtp_client_reply_parser *p, const char *buf,
					      size_t len, size_t *used)
{
	size_t off = 0;
	*used = 0;
	if (p->error)
		return SMTP_REPLY_ERROR;
	while (off < len) {
		const char *nl = memchr(buf + off, '\n', len - off);
		size_t take = nl ? (size_t)(nl - (buf + off)) + 1 : len - off;
		/* The line buffer holds the line with its LF; refuse it the
		 * moment it cannot fit, without looking at the rest. */
		if (p->linelen + take > p->limits.line_max) {
			p->error = "reply line too long";
			return SMTP_REPLY_ERROR;
		}
		memcpy(p->line + p->linelen, buf + off, take);
		p->linelen += take;
		off += take;
		if (!nl)
			break;
		size_t l = p->linelen - 1;
		if (l && p->line[l - 1] == '\r')
			l--;
		p->linelen = 0;
		int r = reply_line(p, p->line, l);
		if (r < 0)
			return SMTP_REPLY_ERROR;
		if (r == 1) {
			*used = off;
			return SMTP_REPLY_DONE;
		}
	}
	*used = off;
	return SMTP_REPLY_MORE;
}

/* keyword_is - does the line start with keyword KW, followed by the end of
 * the line, a space or (for old AUTH=) an equals sign? */
static int keyword_is(const char *line, size_t len, const char *kw, size_t *kwlen)
{
	size_t n = strlen(kw);
	if (len < n || strncasecmp(line, kw, n))
		return 0;
	if (len > n && line[n] != ' ' && line[n] != '=')
		return 0;
	*kwlen = n;
	return 1;
}

/* parse_size - RFC 1870 "SIZE [n]"; overflow or junk means no limit. */
static uint64_t parse_size(const char *s, size_t len)
{
	uint64_t v = 0;
	size_t i = 0;
	while (i < len && s[i] == ' ')
		i++;
	for (; i < len && is_digit(s[i]); i++) {
		unsigned d = (unsigned)(s[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return 0;
		v = v * 10 + d;
	}
	return i == len ? v : 0;
}

/* parse_auth - mechanisms after "AUTH " / "AUTH=", space separated. */
static unsigned parse_auth(const char *s, size_t len)
{
	static const struct {
		const char *name;
		unsigned bit;
	} mechs[] = {
		{"PLAIN", SMTP_AUTH_PLAIN},
		{"LOGIN", SMTP_AUTH_LOGIN},
		{"CRAM-MD5", SMTP_AUTH_CRAM_MD5},
		{"XOAUTH2", SMTP_AUTH_XOAUTH2},
	};
	unsigned bits = 0;
	size_t i = 0;
	while (i < len) {
		while (i < len && (s[i] == ' ' || s[i] == '='))
			i++;
		size_t start = i;
		while (i < len && s[i] != ' ')
			i++;
		if (i == start)
			break;
		unsigned bit = SMTP_AUTH_OTHER;
		for (size_t m = 0; m < sizeof mechs / sizeof mechs[0]; m++)
			if (strlen(mechs[m].name) == i - start &&
			    !strncasecmp(s + start, mechs[m].name, i - start))
				bit = mechs[m].bit;
		bits |= bit;
	}
	return bits;
}

/* ehlo_line - one keyword line. */
static void ehlo_line(const char *line, size_t len, struct smtp_ehlo *out)
{
	static const struct {
		const char *kw;
		unsigned bit;
	} simple[] = {
		{"PIPELINING", SMTP_EXT_PIPELINING},
		{"8BITMIME", SMTP_EXT_8BITMIME},
		{"SMTPUTF8", SMTP_EXT_SMTPUTF8},
		{"DSN", SMTP_EXT_DSN},
		{"STARTTLS", SMTP_EXT_STARTTLS},
		{"CHUNKING", SMTP_EXT_CHUNKING},
		{"ENHANCEDSTATUSCODES", SMTP_EXT_ENHANCEDSTATUSCODES},
	};
	size_t kwlen;
	if (keyword_is(line, len, "SIZE", &kwlen)) {
		out->ext |= SMTP_EXT_SIZE;
		out->size = parse_size(line + kwlen, len - kwlen);
		return;
	}
	if (keyword_is(line, len, "AUTH", &kwlen)) {
		out->ext |= SMTP_EXT_AUTH;
		out->auth |= parse_auth(line + kwlen, len - kwlen);
		return;
	}
	for (size_t i = 0; i < sizeof simple / sizeof simple[0]; i++)
		if (keyword_is(line, len, simple[i].kw, &kwlen))
			out->ext |= simple[i].bit;
}

void smtp_ehlo_parse(const struct smtp_client_reply *r, struct smtp_ehlo *out)
{
	memset(out, 0, sizeof *out);
	const char *s = r->text, *end = r->text + r->textlen;
	const char *nl = memchr(s, '\n', (size_t)(end - s));
	if (!nl)
		return; /* only the server's name */
	s = nl + 1;
	while (s < end) {
		nl = memchr(s, '\n', (size_t)(end - s));
		const char *e = nl ? nl : end;
		ehlo_line(s, (size_t)(e - s), out);
		s = nl ? nl + 1 : end;
	}
}
