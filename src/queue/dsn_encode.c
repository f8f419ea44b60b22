/* dsn_encode.c - the values a delivery status notification is made of:
 * statuses taken from SMTP replies (RFC 3463 2, RFC 3464 2.3.4), xtext
 * decoded (RFC 3461 4, ORCPT 4.2, ENVID 4.4), free text cleaned to one line
 * and addresses written as address-type "rfc822" or as RFC 6533 3
 * utf-8-addr-xtext.  Pure functions over the caller's buffers; dsn.c puts
 * their results into the report. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/hex.h"
#include "queue/dsn_private.h"

/* ------------------------------------------------------- status and xtext */

/* dsn_status_len - length of an RFC 3463 status at S ("2|4|5 . 1*3digit .
 * 1*3digit") ending at a space, '\r', '\n' or the string's end; 0 if none. */
size_t dsn_status_len(const char *s)
{
	if (s[0] != '2' && s[0] != '4' && s[0] != '5')
		return 0;
	size_t i = 1;
	for (int part = 0; part < 2; part++) {
		if (s[i++] != '.')
			return 0;
		size_t digits = 0;
		while (s[i] >= '0' && s[i] <= '9' && digits < 4) {
			i++;
			digits++;
		}
		if (digits == 0 || digits > 3)
			return 0;
	}
	if (s[i] && s[i] != ' ' && s[i] != '\r' && s[i] != '\n')
		return 0;
	return i;
}

/* dsn_status_from_reply - the status a reply gives (see dsn.h). */
int dsn_status_from_reply(const char *reply, char *out)
{
	out[0] = '\0';
	if (!reply || reply[0] < '2' || reply[0] > '5' || reply[0] == '3')
		return 0;
	if (reply[1] < '0' || reply[1] > '9' || reply[2] < '0' || reply[2] > '9')
		return 0;
	char sep = reply[3];
	if (sep && sep != ' ' && sep != '-' && sep != '\r' && sep != '\n')
		return 0;
	int cls = reply[0] - '0';
	const char *p = sep == ' ' || sep == '-' ? reply + 4 : reply + 3;
	while (*p == ' ')
		p++;
	size_t n = dsn_status_len(p);
	if (n && p[0] == reply[0] && n < DSN_STATUS_MAX) {
		memcpy(out, p, n);
		out[n] = '\0';
	} else {
		snprintf(out, DSN_STATUS_MAX, "%d.0.0", cls);
	}
	return cls;
}

/* dsn_xtext_decode - RFC 3461 4 xtext decoded (see dsn.h). */
int dsn_xtext_decode(const char *in, size_t len, char *out, size_t outlen)
{
	const unsigned char *p = (const unsigned char *)in;
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		int c = p[i];
		if (c == '+') {
			if (len - i < 3 || hex_value(p[i + 1]) < 0 || hex_value(p[i + 2]) < 0)
				return -1;
			c = hex_value(p[i + 1]) * 16 + hex_value(p[i + 2]);
			if (c == 0)
				return -1;
			i += 2;
		} else if (c < '!' || c > '~' || c == '=') {
			return -1;
		}
		if (o + 1 >= outlen)
			return -1;
		out[o++] = (char)c;
	}
	if (outlen == 0)
		return -1;
	out[o] = '\0';
	return (int)o;
}

/* ------------------------------------------------ texts and addresses */

/* utf8_seq - length of the well-formed UTF-8 sequence at S (N octets
 * available) and its code point in *CP; 0 when it is not one (overlong,
 * surrogate, beyond U+10FFFF, truncated). */
static size_t utf8_seq(const unsigned char *s, size_t n, uint32_t *cp)
{
	if (n == 0)
		return 0;
	uint32_t c = s[0], v, min;
	size_t k;
	if (c < 0x80) {
		*cp = c;
		return 1;
	} else if (c >= 0xC2 && c <= 0xDF) {
		k = 2, v = c & 0x1F, min = 0x80;
	} else if (c >= 0xE0 && c <= 0xEF) {
		k = 3, v = c & 0x0F, min = 0x800;
	} else if (c >= 0xF0 && c <= 0xF4) {
		k = 4, v = c & 0x07, min = 0x10000;
	} else {
		return 0;
	}
	if (n < k)
		return 0;
	for (size_t i = 1; i < k; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		v = v << 6 | (s[i] & 0x3F);
	}
	if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
		return 0;
	*cp = v;
	return k;
}

/* dsn_clean_text - S as one line of text into OUT (OUTLEN bytes): line breaks
 * and runs of white space become one space, controls and malformed UTF-8
 * become '?', and with ASCII every non-ASCII character too.  Cut with
 * "..." when it does not fit.  Returns 1 when OUT holds non-ASCII. */
int dsn_clean_text(const char *s, int ascii, char *out, size_t outlen)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s), o = 0, i = 0;
	int space = 0, high = 0;
	while (i < n) {
		uint32_t cp;
		size_t k = 1;
		const unsigned char *src = p + i;
		if (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n') {
			space = o > 0;
			i++;
			continue;
		}
		if (p[i] < 0x20 || p[i] == 0x7f) {
			src = (const unsigned char *)"?";
		} else if (p[i] >= 0x80) {
			k = utf8_seq(p + i, n - i, &cp);
			if (k == 0 || ascii)
				src = (const unsigned char *)"?";
		}
		size_t w = src == p + i ? k : 1;
		if (o + space + w + 4 > outlen) {
			if (o + 4 <= outlen)
				memcpy(out + o, "...", 3), o += 3;
			break;
		}
		if (space)
			out[o++] = ' ';
		space = 0;
		memcpy(out + o, src, w);
		high |= w > 1;
		o += w;
		i += k ? k : 1;
	}
	out[o] = '\0';
	return high;
}

/* dsn_addr_value - "rfc822; ADDR" when ADDR is printable ASCII, else "utf-8; "
 * and ADDR in RFC 6533 3 utf-8-addr-xtext (7-bit: '+', '=', '\', space,
 * DEL and non-ASCII characters as "\x{HEX}"; controls and malformed octets
 * as '?'), into OUT.  Returns 1 when ADDR was not ASCII. */
int dsn_addr_value(const char *addr, size_t len, char *out, size_t outlen)
{
	const unsigned char *p = (const unsigned char *)addr;
	int ascii = 1;
	for (size_t i = 0; i < len; i++)
		if (p[i] < 0x20 || p[i] >= 0x7f)
			ascii = 0;
	size_t o = (size_t)snprintf(out, outlen, ascii ? "rfc822; " : "utf-8; ");
	for (size_t i = 0; i < len;) {
		char piece[16];
		uint32_t cp = '?';
		size_t k = utf8_seq(p + i, len - i, &cp);
		if (k == 0 || cp < 0x20)
			k = k ? k : 1, cp = '?';
		if (ascii || (cp > 0x20 && cp < 0x7f && cp != '+' && cp != '=' && cp != '\\'))
			snprintf(piece, sizeof piece, "%c", (char)cp);
		else
			snprintf(piece, sizeof piece, cp < 0x100 ? "\\x{%02X}" : "\\x{%X}",
				 (unsigned)cp);
		size_t w = strlen(piece);
		if (o + w >= outlen)
			break;
		memcpy(out + o, piece, w + 1);
		o += w;
		i += k;
	}
	out[o < outlen ? o : outlen - 1] = '\0';
	return !ascii;
}

/* dsn_orcpt_value - the Original-Recipient value of ORCPT ("type;xtext" as
 * received): the xtext decoded (RFC 3461 4.2); written as dsn_addr_value()
 * when the type is rfc822 or utf-8, kept as received (it is ASCII) when
 * the type is another or the xtext does not decode.  0, or -1 when ORCPT
 * has no type or no address. */
int dsn_orcpt_value(const char *orcpt, char *out, size_t outlen)
{
	const char *semi = strchr(orcpt, ';');
	if (!semi || semi == orcpt)
		return -1;
	size_t tlen = (size_t)(semi - orcpt);
	char dec[DSN_TEXT_MAX];
	int n = dsn_xtext_decode(semi + 1, strlen(semi + 1), dec, sizeof dec);
	if (n == 0)
		return -1;
	int utf8 = tlen == 5 && !strncasecmp(orcpt, "utf-8", 5);
	char raw[DSN_TEXT_MAX];
	if (n > 0 && (utf8 || (tlen == 6 && !strncasecmp(orcpt, "rfc822", 6)))) {
		/* a utf-8 address already in its 7-bit form keeps its type */
		if (!dsn_addr_value(dec, (size_t)n, out, outlen) && utf8)
			snprintf(out, outlen, "utf-8; %s", dec);
		return 0;
	}
	dsn_clean_text(orcpt, 1, raw, sizeof raw);
	snprintf(out, outlen, "%s", raw);
	return 0;
}
