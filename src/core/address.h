/* address.h - RFC 5321 paths and mailboxes.
 *
 *   Reverse-path = Path / "<>"          Forward-path = Path
 *   Path = "<" [ A-d-l ":" ] Mailbox ">"  (source route parsed and ignored)
 *   Mailbox = Local-part "@" ( Domain / address-literal )
 *   Local-part = Dot-string / Quoted-string
 *
 * With SMTPUTF8 (RFC 6531) local parts and domain labels may hold UTF-8
 * (checked to be well-formed, no overlongs, no surrogates, no C1 controls).
 * Limits of RFC 5321 4.5.3.1: local part 64 octets, domain 255, path 256.
 * Pure functions, no allocation. */
#ifndef TERN_CORE_ADDRESS_H
#define TERN_CORE_ADDRESS_H

#include <stddef.h>

#define ADDR_LOCAL_MAX 64
#define ADDR_DOMAIN_MAX 255
#define ADDR_PATH_MAX 256

struct address {
	/* Local part as it must be written back: a dot-string, or a quoted
	 * string reduced to its minimal form ("a b"@x keeps its quotes,
	 * "ab"@x becomes ab@x).  Case preserved. */
	char local[ADDR_LOCAL_MAX + 3];
	/* Domain or address literal ("[192.0.2.1]", "[IPv6:...]"), case
	 * preserved; a trailing dot is refused. */
	char domain[ADDR_DOMAIN_MAX + 1];
	int is_null; /* the "<>" reverse path */
	int utf8; /* non-ASCII bytes present */
};

enum addr_parse_flags {
	ADDR_ALLOW_NULL = 1, /* accept "<>" (MAIL FROM) */
	ADDR_ALLOW_UTF8 = 2, /* SMTPUTF8 was given on MAIL */
	ADDR_ALLOW_NOBRACKETS = 4, /* "a@b" without <> (lenient clients) */
};

/* address_parse_path - parse a path at the start of S (LEN bytes).  On
 * success returns 0, fills OUT and sets *CONSUMED to the bytes used (the
 * closing '>' included).  On failure returns -1 and sets *WHY to a static
 * human-readable reason. */
int address_parse_path(const char *s, size_t len, unsigned flags,
		       struct address *out, size_t *consumed, const char **why);

/* address_parse_mailbox - a bare "local@domain" filling all of S. */
int address_parse_mailbox(const char *s, size_t len, unsigned flags,
			  struct address *out, const char **why);

/* address_format - "local@domain" (or "" for the null path) into OUT.
 * Returns the length, or -1 when OUTLEN is too small. */
int address_format(const struct address *a, char *out, size_t outlen);

/* address_is_domain - is S a syntactically valid domain name (LDH labels,
 * or UTF-8 labels when ALLOW_UTF8), at most 255 octets? */
int address_is_domain(const char *s, size_t len, int allow_utf8);

/* address_is_helo_name - does S start with a HELO/EHLO name: a Domain or
 * an address literal, with '_' tolerated in labels (common in the host
 * names of desktop machines)?  On success sets *CONSUMED to its length. */
int address_is_helo_name(const char *s, size_t len, size_t *consumed);

/* utf8_valid - well-formed UTF-8 without overlongs or surrogates. */
int utf8_valid(const char *s, size_t len);

#endif
