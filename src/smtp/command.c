/* command.c - SMTP command line parsing (see command.h).
 *
 * RFC 5321 4.1.1 (verbs), 4.1.2 (esmtp-param grammar), 4.1.1.11 (555 for
 * parameters not recognised); RFC 1870 SIZE; RFC 6152 BODY=8BITMIME;
 * RFC 6531 SMTPUTF8; RFC 3461 NOTIFY, RET, ENVID, ORCPT and xtext;
 * RFC 3030 BDAT; RFC 4954 5 AUTH=; RFC 3463 enhanced status codes.
 *
 * Every function is pure: it reads one command line and fills caller
 * storage or a static reply.  Paths are parsed by core/address.c. */
#include "smtp/command.h"

#include <string.h>
#include <strings.h>

#include "core/hex.h"

static int reply(struct smtp_reply *err, int code, const char *enhanced, const char *text)
{
	*err = SMTP_REPLY(code, enhanced, text);
	return -1;
}

/* Matches the text, case-insensitively, of LEN bytes at S against WORD. */
static int word_is(const char *s, size_t len, const char *word)
{
	return strlen(word) == len && strncasecmp(s, word, len) == 0;
}

/* Verb names by enum value; SMTP_CMD_UNKNOWN has none. */
static const char *const verb_names[] = {
	[SMTP_CMD_HELO] = "HELO",	  [SMTP_CMD_EHLO] = "EHLO", [SMTP_CMD_MAIL] = "MAIL",
	[SMTP_CMD_RCPT] = "RCPT",	  [SMTP_CMD_DATA] = "DATA", [SMTP_CMD_BDAT] = "BDAT",
	[SMTP_CMD_RSET] = "RSET",	  [SMTP_CMD_NOOP] = "NOOP", [SMTP_CMD_QUIT] = "QUIT",
	[SMTP_CMD_VRFY] = "VRFY",	  [SMTP_CMD_EXPN] = "EXPN", [SMTP_CMD_HELP] = "HELP",
	[SMTP_CMD_STARTTLS] = "STARTTLS", [SMTP_CMD_AUTH] = "AUTH",
};

/* smtp_command_split - verb, then the arguments after one SP.  Control
 * bytes that have no place in a command line (NUL, and CR or LF left over
 * once the line end was cut) are refused before anything else looks at the
 * line.  Bytes >= 0x80 are refused too, except in MAIL and RCPT: there they
 * may be SMTPUTF8 paths, which the path parser checks (RFC 6531 3.3). */
int smtp_command_split(const char *line, size_t len, struct smtp_command *out,
		       struct smtp_reply *err)
{
	size_t vlen = 0;
	int high = 0;

	*out = (struct smtp_command){SMTP_CMD_UNKNOWN, line + len, 0};
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];
		if (c == '\0' || c == '\r' || c == '\n')
			return reply(err, 500, "5.5.2", "Invalid character in command line");
		high |= c >= 0x80;
	}
	while (vlen < len && line[vlen] != ' ')
		vlen++;
	for (size_t v = 0; v < sizeof verb_names / sizeof verb_names[0]; v++) {
		if (verb_names[v] && word_is(line, vlen, verb_names[v])) {
			out->verb = (enum smtp_verb)v;
			break;
		}
	}
	if (high && out->verb != SMTP_CMD_MAIL && out->verb != SMTP_CMD_RCPT)
		return reply(err, 500, "5.5.2", "Non-ASCII character in command line");
	if (vlen < len) {
		out->args = line + vlen + 1;
		out->argslen = len - vlen - 1;
	}
	return 0;
}

/* xtext_check - RFC 3461 4 xtext; with PRINTABLE, every decoded octet must
 * also be printable US-ASCII (ENVID by 4.4; ORCPT, whose value is an
 * address, alike), so a "+0D+0A" can never reach a DSN's header.  Hex
 * digits of either case are taken (see core/hex.h). */
static int xtext_check(const char *s, size_t len, int printable)
{
	const unsigned char *p = (const unsigned char *)s;

	for (size_t i = 0; i < len; i++) {
		if (p[i] == '+') {
			if (len - i < 3)
				return 0;
			int hi = hex_value(p[i + 1]), lo = hex_value(p[i + 2]);
			if (hi < 0 || lo < 0)
				return 0;
			int v = hi * 16 + lo;
			if (printable && (v < 0x20 || v > 0x7e))
				return 0;
			i += 2;
		} else if (p[i] < 33 || p[i] > 126 || p[i] == '=') {
			/* xchar: "!" .. "~" except "+" and "=" */
			return 0;
		}
	}
	return 1;
}

int xtext_valid(const char *s, size_t len)
{
	return xtext_check(s, len, 0);
}

/* One esmtp-param = esmtp-keyword ["=" esmtp-value]. */
struct param {
	const char *key, *val;
	size_t keylen, vallen;
	int has_val;
};

/* next_param - the next parameter after *POS, or 0 at the end.  Parameters
 * are separated by SP; runs of SP and trailing SP are tolerated because
 * common clients send them.  Returns -1 with a 501 on bad syntax. */
static int next_param(const char *s, size_t len, size_t *pos, struct param *p,
		      struct smtp_reply *err)
{
	size_t i = *pos;

	while (i < len && s[i] == ' ')
		i++;
	if (i == len)
		return 0;
	*p = (struct param){s + i, NULL, 0, 0, 0};
	/* esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-") */
	while (i < len && s[i] != ' ' && s[i] != '=') {
		unsigned char c = (unsigned char)s[i];
		int alnum = (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
		alnum |= c >= '0' && c <= '9';
		if (!alnum && (c != '-' || p->keylen == 0))
			return reply(err, 501, "5.5.4", "Invalid parameter keyword");
		p->keylen++, i++;
	}
	if (p->keylen == 0)
		return reply(err, 501, "5.5.4", "Invalid parameter keyword");
	if (i < len && s[i] == '=') {
		p->has_val = 1;
		p->val = s + ++i;
		/* esmtp-value = 1*(%d33-60 / %d62-126) */
		while (i < len && s[i] != ' ') {
			unsigned char c = (unsigned char)s[i];
			if (c < 33 || c > 126 || c == '=')
				return reply(err, 501, "5.5.4", "Invalid parameter value");
			p->vallen++, i++;
		}
		if (p->vallen == 0)
			return reply(err, 501, "5.5.4", "Empty parameter value");
	}
	*pos = i;
	return 1;
}

static int is_key(const struct param *p, const char *name)
{
	return word_is(p->key, p->keylen, name);
}

static int is_val(const struct param *p, const char *name)
{
	return word_is(p->val, p->vallen, name);
}

/* parse_size - RFC 1870: size-value = 1*20DIGIT.  Twenty digits can exceed
 * 2^64; such a value is kept as UINT64_MAX, which any limit refuses with
 * 552 later, rather than wrapping to something small. */
static int parse_size(const struct param *p, uint64_t *size, struct smtp_reply *err)
{
	uint64_t v = 0;

	if (!p->has_val || p->vallen > 20)
		return reply(err, 501, "5.5.4", "Invalid SIZE value");
	for (size_t i = 0; i < p->vallen; i++) {
		unsigned d = (unsigned)(p->val[i] - '0');
		if (d > 9)
			return reply(err, 501, "5.5.4", "Invalid SIZE value");
		if (v > (UINT64_MAX - d) / 10)
			v = UINT64_MAX;
		else if (v != UINT64_MAX)
			v = v * 10 + d;
	}
	*size = v;
	return 0;
}

enum mail_key { MK_SIZE, MK_BODY, MK_SMTPUTF8, MK_RET, MK_ENVID, MK_AUTH, MK_COUNT };
static const char *const mail_keys[MK_COUNT] = {"SIZE", "BODY", "SMTPUTF8", "RET", "ENVID", "AUTH"};

/* mail_param - apply one MAIL parameter; SEEN guards against repeats. */
static int mail_param(const struct param *pm, struct smtp_mail_params *p, unsigned *seen,
		      struct smtp_reply *err)
{
	unsigned k = 0;

	while (k < MK_COUNT && !is_key(pm, mail_keys[k]))
		k++;
	if (k == MK_COUNT)
		return reply(err, 555, "5.5.4", "Unsupported MAIL parameter");
	if (*seen & (1u << k))
		return reply(err, 555, "5.5.4", "Repeated MAIL parameter");
	*seen |= 1u << k;
	if (k != MK_SMTPUTF8 && !pm->has_val)
		return reply(err, 501, "5.5.4", "Missing parameter value");
	switch ((enum mail_key)k) {
	case MK_SIZE:
		p->has_size = 1;
		return parse_size(pm, &p->size, err);
	case MK_BODY:
		if (is_val(pm, "7BIT"))
			p->body = SMTP_BODY_7BIT;
		else if (is_val(pm, "8BITMIME"))
			p->body = SMTP_BODY_8BITMIME;
		else if (is_val(pm, "BINARYMIME")) /* RFC 3030 3: not offered */
			return reply(err, 555, "5.5.4", "BODY=BINARYMIME not supported");
		else
			return reply(err, 501, "5.5.4", "Invalid BODY value");
		return 0;
	case MK_SMTPUTF8:
		if (pm->has_val)
			return reply(err, 501, "5.5.4", "SMTPUTF8 takes no value");
		p->smtputf8 = 1;
		return 0;
	case MK_RET:
		if (is_val(pm, "FULL"))
			p->ret = SMTP_RET_FULL;
		else if (is_val(pm, "HDRS"))
			p->ret = SMTP_RET_HDRS;
		else
			return reply(err, 501, "5.5.4", "Invalid RET value");
		return 0;
	case MK_ENVID:
		if (pm->vallen > SMTP_ENVID_MAX || !xtext_check(pm->val, pm->vallen, 1))
			return reply(err, 501, "5.5.4", "Invalid ENVID value");
		memcpy(p->envid, pm->val, pm->vallen);
		p->envid[pm->vallen] = '\0';
		return 0;
	case MK_AUTH:
	case MK_COUNT:
		break;
	}
	/* AUTH=: RFC 4954 5 lets a server ignore it; it is only checked */
	if (!xtext_valid(pm->val, pm->vallen))
		return reply(err, 501, "5.5.4", "Invalid AUTH value");
	return 0;
}

/* end_or_sp - does the text at POS end or go on after a SP?  Used after a
 * path or a HELO name. */
static int end_or_sp(const char *args, size_t len, size_t pos)
{
	return pos == len || args[pos] == ' ';
}

/* smtp_parse_mail - mail = "MAIL FROM:" Reverse-path [SP Mail-parameters] */
int smtp_parse_mail(const char *args, size_t len, unsigned flags, struct address *from,
		    struct smtp_mail_params *p, struct smtp_reply *err)
{
	size_t pos = 5, used = 0;
	const char *why = NULL;
	unsigned seen = 0;
	struct param pm;
	int r;

	memset(p, 0, sizeof *p);
	p->body = SMTP_BODY_7BIT;
	p->ret = SMTP_RET_UNSET;
	if (len < 5 || strncasecmp(args, "FROM:", 5) != 0)
		return reply(err, 501, "5.5.2", "Syntax: MAIL FROM:<address> [parameters]");
	/* "MAIL FROM: <a@b>" is outside the grammar but a common client bug
	 * (RFC 5321 4.1.1.2 has no SP there); one space is tolerated. */
	if (pos < len && args[pos] == ' ')
		pos++;
	/* UTF-8 is admitted here and refused below unless SMTPUTF8 is among
	 * the parameters that follow the path. */
	flags = (flags & ADDR_ALLOW_NOBRACKETS) | ADDR_ALLOW_NULL | ADDR_ALLOW_UTF8;
	if (address_parse_path(args + pos, len - pos, flags, from, &used, &why) < 0)
		return reply(err, 501, "5.1.7", why);
	pos += used;
	if (!end_or_sp(args, len, pos))
		return reply(err, 501, "5.1.7", "Invalid character after address");
	while ((r = next_param(args, len, &pos, &pm, err)) > 0) {
		if (mail_param(&pm, p, &seen, err) < 0)
			return -1;
	}
	if (r < 0)
		return -1;
	if (from->utf8 && !p->smtputf8)
		return reply(err, 553, "5.6.7", "Non-ASCII address requires SMTPUTF8");
	return 0;
}

/* parse_notify - RFC 3461 4.1: "NEVER" / 1#("SUCCESS" / "FAILURE" / "DELAY") */
static int parse_notify(const struct param *pm, unsigned *notify, struct smtp_reply *err)
{
	/* names[k] is the flag 1 << k of enum smtp_notify_flags */
	static const char *const names[] = {"NEVER", "SUCCESS", "FAILURE", "DELAY"};
	size_t i = 0;

	while (i <= pm->vallen) {
		size_t j = i, k = 0;
		while (j < pm->vallen && pm->val[j] != ',')
			j++;
		while (k < 4 && !word_is(pm->val + i, j - i, names[k]))
			k++;
		if (k == 4 || (*notify & (1u << k)))
			return reply(err, 501, "5.5.4", "Invalid NOTIFY value");
		*notify |= 1u << k;
		i = j + 1;
	}
	if ((*notify & SMTP_NOTIFY_NEVER) && *notify != SMTP_NOTIFY_NEVER)
		return reply(err, 501, "5.5.4", "NOTIFY=NEVER cannot be combined");
	return 0;
}

/* parse_orcpt - RFC 3461 4.2: addr-type ";" xtext, addr-type an atom. */
static int parse_orcpt(const struct param *pm, char *orcpt, struct smtp_reply *err)
{
	size_t i = 0;

	while (i < pm->vallen && pm->val[i] != ';') {
		/* atom: RFC 5322 atext; '=' never reaches here (esmtp-value) */
		unsigned char c = (unsigned char)pm->val[i];
		int atext = ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') || (c >= '0' && c <= '9') ||
			    strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
		if (!atext)
			break;
		i++;
	}
	if (i == 0 || i == pm->vallen || pm->val[i] != ';' || i + 1 == pm->vallen ||
	    pm->vallen > SMTP_ORCPT_MAX || !xtext_check(pm->val + i + 1, pm->vallen - i - 1, 1))
		return reply(err, 501, "5.5.4", "Invalid ORCPT value");
	memcpy(orcpt, pm->val, pm->vallen);
	orcpt[pm->vallen] = '\0';
	return 0;
}

/* is_postmaster - the bare "<Postmaster>" of RFC 5321 4.1.1.3, any case. */
static int is_postmaster(const char *s, size_t len)
{
	return len >= 12 && strncasecmp(s, "<postmaster>", 12) == 0 && end_or_sp(s, len, 12);
}

/* smtp_parse_rcpt - rcpt = "RCPT TO:" ( "<Postmaster@" Domain ">" /
 * "<Postmaster>" / Forward-path ) [SP Rcpt-parameters] */
int smtp_parse_rcpt(const char *args, size_t len, unsigned flags, int smtputf8, struct address *to,
		    struct smtp_rcpt_params *p, struct smtp_reply *err)
{
	size_t pos = 3, used = 0;
	const char *why = NULL;
	unsigned seen = 0;
	struct param pm;
	int r;

	memset(p, 0, sizeof *p);
	if (len < 3 || strncasecmp(args, "TO:", 3) != 0)
		return reply(err, 501, "5.5.2", "Syntax: RCPT TO:<address> [parameters]");
	/* one SP after "TO:" tolerated, as after "MAIL FROM:" */
	if (pos < len && args[pos] == ' ')
		pos++;
	if (is_postmaster(args + pos, len - pos)) {
		memset(to, 0, sizeof *to);
		strcpy(to->local, "postmaster");
		pos += 12;
	} else {
		flags = (flags & ADDR_ALLOW_NOBRACKETS) | ADDR_ALLOW_UTF8;
		if (address_parse_path(args + pos, len - pos, flags, to, &used, &why) < 0)
			return reply(err, 501, "5.1.3", why);
		pos += used;
		if (!end_or_sp(args, len, pos))
			return reply(err, 501, "5.1.3", "Invalid character after address");
	}
	while ((r = next_param(args, len, &pos, &pm, err)) > 0) {
		int k = is_key(&pm, "NOTIFY") ? 0 : is_key(&pm, "ORCPT") ? 1 : -1;
		if (k < 0)
			return reply(err, 555, "5.5.4", "Unsupported RCPT parameter");
		if (seen & (1u << k))
			return reply(err, 555, "5.5.4", "Repeated RCPT parameter");
		seen |= 1u << k;
		if (!pm.has_val)
			return reply(err, 501, "5.5.4", "Missing parameter value");
		if (k == 0 ? parse_notify(&pm, &p->notify, err) : parse_orcpt(&pm, p->orcpt, err))
			return -1;
	}
	if (r < 0)
		return -1;
	if (to->utf8 && !smtputf8)
		return reply(err, 553, "5.6.7", "Non-ASCII address requires SMTPUTF8");
	return 0;
}

/* smtp_parse_bdat - RFC 3030 2: bdat-cmd = "BDAT" SP chunk-size
 * [ SP end-marker ], chunk-size = 1*DIGIT, end-marker = "LAST". */
int smtp_parse_bdat(const char *args, size_t len, uint64_t *size, int *last, struct smtp_reply *err)
{
	uint64_t v = 0;
	size_t i = 0;

	while (i < len && args[i] >= '0' && args[i] <= '9') {
		unsigned d = (unsigned)(args[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return reply(err, 501, "5.5.4", "BDAT chunk size too large");
		v = v * 10 + d;
		i++;
	}
	if (i == 0)
		return reply(err, 501, "5.5.4", "Syntax: BDAT size [LAST]");
	*last = 0;
	if (i < len) {
		if (!word_is(args + i, len - i, " LAST"))
			return reply(err, 501, "5.5.4", "Syntax: BDAT size [LAST]");
		*last = 1;
	}
	*size = v;
	return 0;
}

/* smtp_parse_helo_domain - ehlo = "EHLO" SP ( Domain / address-literal ).
 * Text after the name and a SP is ignored, as some clients add it. */
int smtp_parse_helo_domain(const char *args, size_t len, struct smtp_reply *err)
{
	size_t used = 0;

	if (len == 0)
		return reply(err, 501, "5.5.4", "Syntax: EHLO hostname");
	if (!address_is_helo_name(args, len, &used) || !end_or_sp(args, len, used))
		return reply(err, 501, "5.5.4", "Invalid hostname");
	return 0;
}
