/* hex.h - the value of one hexadecimal digit.
 *
 * Shared by every decoder of %XX and +XX escapes: SMTP xtext (RFC 3461 4),
 * the DSN's xtext fields and the spool's envelope text form.  Both cases
 * are taken: RFC 3461 4 asks for upper case, but senders do emit lower. */
#ifndef TERN_CORE_HEX_H
#define TERN_CORE_HEX_H

/* hex_value - 0..15 for '0'-'9', 'A'-'F' and 'a'-'f'; -1 for anything else
 * (including NUL and bytes above 0x7f). */
static inline int hex_value(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

#endif
