/* address.c - RFC 5321 paths and mailboxes (see address.h).
 *
 * Implements the grammar of RFC 5321 4.1.2 (Path, Mailbox, Local-part,
 * Domain, address-literal), the limits of 4.5.3.1.1-3 and the SMTPUTF8
 * extensions of RFC 6531 3.3 (UTF8-non-ascii in atoms, quoted strings and
 * domain labels).  A cursor walks the input once; nothing is allocated and
 * every output buffer is bounded by the limits checked on the way. */
#include "core/address.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

/* Internal flag, above the public ones: HELO names seen in the field often
 * hold '_' (desktop host names), so address_is_helo_name tolerates it. */
#define ADDR_LENIENT_UNDERSCORE 0x100

struct cursor {
	const unsigned char *s;
	size_t len, pos;
	unsigned flags;
	const char *why; /* first reason for failure */
	int utf8;	 /* non-ASCII bytes seen */
};

static struct cursor cursor_at(const char *s, size_t len, unsigned flags)
{
	return (struct cursor){.s = (const unsigned char *)s, .len = len, .flags = flags};
}

static int fail(struct cursor *c, const char *why)
{
	if (!c->why)
		c->why = why;
	return -1;
}

static int peek(const struct cursor *c)
{
	return c->pos < c->len ? c->s[c->pos] : -1;
}

/* utf8_seq - length of the well-formed UTF-8 sequence at S (1..4), or 0.
 * Follows the table of RFC 3629 4: no overlongs, no surrogates, nothing
 * above U+10FFFF.  *CP receives the code point. */
static size_t utf8_seq(const unsigned char *s, size_t len, uint32_t *cp)
{
	static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
	size_t n;
	uint32_t v;

	if (len == 0)
		return 0;
	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	} else if ((s[0] & 0xe0) == 0xc0) {
		n = 2, v = s[0] & 0x1f;
	} else if ((s[0] & 0xf0) == 0xe0) {
		n = 3, v = s[0] & 0x0f;
	} else if ((s[0] & 0xf8) == 0xf0) {
		n = 4, v = s[0] & 0x07;
	} else {
		return 0; /* continuation byte or 0xf8..0xff */
	}
	if (len < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		v = (v << 6) | (s[i] & 0x3f);
	}
	if (v < min_cp[n] || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
		return 0;
	*cp = v;
	return n;
}

int utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;
	uint32_t cp;

	while (i < len) {
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		size_t n = utf8_seq(p + i, len - i, &cp);
		if (n == 0)
			return 0;
		i += n;
	}
	return 1;
}

/* take_utf8 - consume one non-ASCII character at the cursor: allowed only
 * with ADDR_ALLOW_UTF8, well-formed, and not a C1 control (RFC 6531 3.3
 * builds on UTF8-non-ascii of RFC 6532, which excludes them by intent). */
static int take_utf8(struct cursor *c)
{
	uint32_t cp;

	if (!(c->flags & ADDR_ALLOW_UTF8))
		return fail(c, "Non-ASCII address requires SMTPUTF8");
	size_t n = utf8_seq(c->s + c->pos, c->len - c->pos, &cp);
	if (n == 0)
		return fail(c, "Invalid UTF-8 in address");
	if (cp < 0xa0)
		return fail(c, "Control character in address");
	c->pos += n;
	c->utf8 = 1;
	return 0;
}

/* RFC 5322 atext, the characters of a Dot-string atom. */
static int is_atext(int ch)
{
	if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9'))
		return 1;
	return ch > 0 && ch < 0x80 && strchr("!#$%&'*+-/=?^_`{|}~", ch) != NULL;
}

static int is_alnum(int ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
}

/* is_dot_string - is S a Dot-string: atoms of atext (or UTF-8 when the
 * cursor's flags allow), separated by single dots, none at either end? */
static int is_dot_string(const unsigned char *s, size_t len)
{
	int atom_len = 0;

	if (len == 0)
		return 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '.') {
			if (atom_len == 0)
				return 0;
			atom_len = 0;
		} else if (is_atext(s[i]) || s[i] >= 0x80) {
			/* UTF-8 has been validated when the bytes were read */
			atom_len++;
		} else {
			return 0;
		}
	}
	return atom_len > 0;
}

/* parse_dot_string - Local-part as Dot-string = Atom *("."  Atom). */
static int parse_dot_string(struct cursor *c, char *out)
{
	size_t start = c->pos;
	int ch;

	while ((ch = peek(c)) != -1) {
		if (is_atext(ch) || ch == '.') {
			c->pos++;
		} else if (ch >= 0x80) {
			if (take_utf8(c) < 0)
				return -1;
		} else {
			break;
		}
		if (c->pos - start > ADDR_LOCAL_MAX)
			return fail(c, "Local part too long");
	}
	size_t n = c->pos - start;
	if (n == 0)
		return fail(c, "Empty local part");
	if (!is_dot_string(c->s + start, n))
		return fail(c, "Misplaced dot in local part");
	memcpy(out, c->s + start, n);
	out[n] = '\0';
	return 0;
}

/* write_quoted - the minimal quoted form of VAL: quotes, with a backslash
 * only before '"' and '\' (RFC 5321 4.1.2: other quoted-pairs SHOULD NOT be
 * sent).  The result is never longer than the quoted text it came from. */
static void write_quoted(char *out, const unsigned char *val, size_t n)
{
	size_t o = 0;

	out[o++] = '"';
	for (size_t i = 0; i < n; i++) {
		if (val[i] == '"' || val[i] == '\\')
			out[o++] = '\\';
		out[o++] = (char)val[i];
	}
	out[o++] = '"';
	out[o] = '\0';
}

/* parse_quoted - Quoted-string = DQUOTE *QcontentSMTP DQUOTE, written back
 * in minimal form: unquoted when the content is a valid Dot-string, so
 * "ab"@x and ab@x name the same mailbox in the same way. */
static int parse_quoted(struct cursor *c, char *out)
{
	unsigned char val[ADDR_LOCAL_MAX];
	size_t start = c->pos, n = 0;
	int ch;

	c->pos++; /* opening DQUOTE */
	for (;;) {
		/* the raw quoted text, quotes included, obeys the 64 limit */
		if (c->pos - start >= ADDR_LOCAL_MAX)
			return fail(c, "Local part too long");
		ch = peek(c);
		if (ch == -1)
			return fail(c, "Unterminated quoted local part");
		if (ch == '"') {
			c->pos++;
			break;
		}
		if (ch == '\\') {
			/* quoted-pairSMTP = %d92 %d32-126 */
			c->pos++;
			ch = peek(c);
			if (ch < 32 || ch > 126)
				return fail(c, "Invalid escape in quoted local part");
			val[n++] = (unsigned char)ch;
			c->pos++;
		} else if (ch >= 0x80) {
			size_t at = c->pos;
			if (take_utf8(c) < 0)
				return -1;
			if (c->pos - start >= ADDR_LOCAL_MAX)
				return fail(c, "Local part too long");
			memcpy(val + n, c->s + at, c->pos - at);
			n += c->pos - at;
		} else if (ch >= 32 && ch <= 126) {
			/* qtextSMTP: %d32-33 / %d35-91 / %d93-126 */
			val[n++] = (unsigned char)ch;
			c->pos++;
		} else {
			return fail(c, "Invalid character in quoted local part");
		}
	}
	if (is_dot_string(val, n)) {
		memcpy(out, val, n);
		out[n] = '\0';
	} else {
		write_quoted(out, val, n);
	}
	return 0;
}

/* parse_label - one sub-domain: Let-dig [Ldh-str], 1..63 octets; a U-label
 * may also hold UTF-8 (RFC 6531 3.3). */
static int parse_label(struct cursor *c)
{
	size_t start = c->pos;
	int ch, last = -1;

	while ((ch = peek(c)) != -1) {
		if (is_alnum(ch) || ch == '-' ||
		    (ch == '_' && (c->flags & ADDR_LENIENT_UNDERSCORE))) {
			c->pos++;
		} else if (ch >= 0x80) {
			if (take_utf8(c) < 0)
				return -1;
		} else {
			break;
		}
		last = ch;
		if (c->pos - start > 63)
			return fail(c, "Domain label too long");
	}
	if (c->pos == start)
		return fail(c, "Empty domain label");
	if (c->s[start] == '-' || last == '-')
		return fail(c, "Domain label starts or ends with a hyphen");
	return 0;
}

/* parse_domain_name - Domain = sub-domain *("." sub-domain), at most 255
 * octets.  A trailing dot is refused: it is not in the grammar. */
static int parse_domain_name(struct cursor *c, size_t *start_out)
{
	size_t start = c->pos;

	*start_out = start;
	for (;;) {
		if (parse_label(c) < 0)
			return -1;
		if (c->pos - start > ADDR_DOMAIN_MAX)
			return fail(c, "Domain too long");
		if (peek(c) != '.')
			break;
		c->pos++;
	}
	return 0;
}

/* parse_literal - address-literal = "[" ( IPv4-address-literal /
 * IPv6-address-literal / General-address-literal ) "]".  Only the two IP
 * forms have a registered meaning; both are checked with inet_pton. */
static int parse_literal(struct cursor *c)
{
	char text[64];
	unsigned char bin[16];
	size_t start = ++c->pos, n;
	int ch;

	while ((ch = peek(c)) != -1 && ch != ']') {
		/* dcontent = %d33-90 / %d94-126 */
		if (ch < 33 || ch > 126 || ch == '[' || ch == '\\')
			return fail(c, "Invalid character in address literal");
		if (c->pos - start >= sizeof text - 1)
			return fail(c, "Invalid address literal");
		c->pos++;
	}
	if (ch != ']')
		return fail(c, "Unterminated address literal");
	n = c->pos - start;
	memcpy(text, c->s + start, n);
	text[n] = '\0';
	c->pos++;
	if (n > 5 && strncasecmp(text, "IPv6:", 5) == 0) {
		if (inet_pton(AF_INET6, text + 5, bin) != 1)
			return fail(c, "Invalid IPv6 address literal");
		return 0;
	}
	if (inet_pton(AF_INET, text, bin) != 1)
		return fail(c, "Invalid address literal");
	return 0;
}

/* parse_domain - Domain or address-literal, copied into OUT. */
static int parse_domain(struct cursor *c, char *out)
{
	size_t start = c->pos;

	if (peek(c) == '[') {
		if (parse_literal(c) < 0)
			return -1;
	} else if (parse_domain_name(c, &start) < 0) {
		return -1;
	}
	size_t n = c->pos - start;
	if (n > ADDR_DOMAIN_MAX)
		return fail(c, "Domain too long");
	if (out) {
		memcpy(out, c->s + start, n);
		out[n] = '\0';
	}
	return 0;
}

/* parse_mailbox - Mailbox = Local-part "@" ( Domain / address-literal ). */
static int parse_mailbox(struct cursor *c, struct address *out)
{
	int r = peek(c) == '"' ? parse_quoted(c, out->local) : parse_dot_string(c, out->local);

	if (r < 0)
		return -1;
	if (peek(c) != '@')
		return fail(c, peek(c) == ' ' ? "Space in address" : "Missing @ in address");
	c->pos++;
	if (parse_domain(c, out->domain) < 0)
		return -1;
	return 0;
}

/* parse_source_route - A-d-l = At-domain *( "," At-domain ) ":".  RFC 5321
 * 4.1.2 / C: servers MUST accept and SHOULD ignore it. */
static int parse_source_route(struct cursor *c)
{
	for (;;) {
		if (peek(c) != '@')
			return fail(c, "Invalid source route");
		c->pos++;
		if (parse_domain(c, NULL) < 0)
			return -1;
		if (peek(c) != ',')
			break;
		c->pos++;
	}
	if (peek(c) != ':')
		return fail(c, "Invalid source route");
	c->pos++;
	return 0;
}

/* parse_bracketed - "<" [ A-d-l ":" ] Mailbox ">" or "<>". */
static int parse_bracketed(struct cursor *c, struct address *out)
{
	c->pos++; /* '<' */
	if (peek(c) == '>') {
		if (!(c->flags & ADDR_ALLOW_NULL))
			return fail(c, "Null path not allowed here");
		c->pos++;
		out->is_null = 1;
		return 0;
	}
	if (peek(c) == '@' && parse_source_route(c) < 0)
		return -1;
	if (parse_mailbox(c, out) < 0)
		return -1;
	if (peek(c) != '>') {
		if (peek(c) == ' ')
			return fail(c, "Space in address");
		return fail(c, peek(c) == -1 ? "Missing > after address"
					     : "Invalid character in address");
	}
	c->pos++;
	return 0;
}

/* mailbox_utf8 - non-ASCII in the mailbox itself: UTF-8 in a source route
 * is parsed and thrown away, so it must not mark the address. */
static int mailbox_utf8(const struct address *a)
{
	for (const char *p = a->local; *p; p++)
		if ((unsigned char)*p >= 0x80)
			return 1;
	for (const char *p = a->domain; *p; p++)
		if ((unsigned char)*p >= 0x80)
			return 1;
	return 0;
}

int address_parse_path(const char *s, size_t len, unsigned flags, struct address *out,
		       size_t *consumed, const char **why)
{
	struct cursor c = cursor_at(s, len, flags);
	int r;

	memset(out, 0, sizeof *out);
	if (len > 0 && s[0] == '<') {
		r = parse_bracketed(&c, out);
		if (r == 0 && c.pos > ADDR_PATH_MAX)
			r = fail(&c, "Path too long");
	} else if (flags & ADDR_ALLOW_NOBRACKETS) {
		r = parse_mailbox(&c, out);
		if (r == 0 && peek(&c) != -1 && peek(&c) != ' ')
			r = fail(&c, "Invalid character in address");
		/* the same limit as with the brackets it lacks */
		if (r == 0 && c.pos + 2 > ADDR_PATH_MAX)
			r = fail(&c, "Path too long");
	} else {
		r = fail(&c, len == 0 ? "Missing address" : "Address must be in <>");
	}
	if (r < 0) {
		memset(out, 0, sizeof *out);
		*why = c.why;
		return -1;
	}
	out->utf8 = mailbox_utf8(out);
	*consumed = c.pos;
	return 0;
}

int address_parse_mailbox(const char *s, size_t len, unsigned flags, struct address *out,
			  const char **why)
{
	struct cursor c = cursor_at(s, len, flags);
	int r;

	memset(out, 0, sizeof *out);
	r = parse_mailbox(&c, out);
	if (r == 0 && c.pos != len)
		r = fail(&c, "Invalid character in address");
	if (r == 0 && len + 2 > ADDR_PATH_MAX)
		r = fail(&c, "Address too long");
	if (r < 0) {
		memset(out, 0, sizeof *out);
		*why = c.why;
		return -1;
	}
	out->utf8 = c.utf8;
	return 0;
}

int address_format(const struct address *a, char *out, size_t outlen)
{
	size_t ll = a->is_null ? 0 : strlen(a->local);
	size_t dl = a->is_null ? 0 : strlen(a->domain);
	/* an empty domain is the bare <postmaster> of RFC 5321 4.1.1.3 */
	size_t n = ll + (dl ? 1 + dl : 0);

	if (outlen < n + 1)
		return -1;
	memcpy(out, a->local, ll);
	if (dl) {
		out[ll] = '@';
		memcpy(out + ll + 1, a->domain, dl);
	}
	out[n] = '\0';
	return (int)n;
}

int address_is_domain(const char *s, size_t len, int allow_utf8)
{
	struct cursor c = cursor_at(s, len, allow_utf8 ? ADDR_ALLOW_UTF8 : 0);
	size_t start;

	return parse_domain_name(&c, &start) == 0 && c.pos == len;
}

int address_is_helo_name(const char *s, size_t len, size_t *consumed)
{
	struct cursor c = cursor_at(s, len, ADDR_LENIENT_UNDERSCORE);

	if (parse_domain(&c, NULL) < 0)
		return 0;
	*consumed = c.pos;
	return 1;
}
