/* fuzz_address.c - libFuzzer target for RFC 5321 paths and mailboxes
 * (core/address.c; RFC 5321 4.1.2, 4.5.3.1, RFC 6531 3.3).
 *
 * The input is the text after "MAIL FROM:" / "RCPT TO:" (a path, maybe
 * with text after it) or a bare mailbox.  Every combination of the parse
 * flags is tried on it, so the seeds stay real paths.  Checked beyond
 * memory safety: the consumed length is inside the input, the limits of
 * RFC 5321 4.5.3.1 hold, and formatting a parsed address then parsing it
 * again gives the same address (the spool and the SMTP client write
 * addresses back with address_format). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/address.h"

#define FUZZ_INPUT_MAX 4096

#define check(cond)                                                                                \
	do {                                                                                       \
		if (!(cond))                                                                       \
			abort();                                                                   \
	} while (0)

/* check_round_trip - "local@domain" written back parses to A again, as a
 * bare mailbox and inside brackets. */
static void check_round_trip(const struct address *a, unsigned flags)
{
	char text[ADDR_PATH_MAX + 8];
	struct address again;
	const char *why = NULL;
	size_t used = 0;

	check(strlen(a->local) <= ADDR_LOCAL_MAX + 2 && strlen(a->domain) <= ADDR_DOMAIN_MAX);
	check(!a->utf8 || (flags & ADDR_ALLOW_UTF8));
	if (a->is_null) {
		check((flags & ADDR_ALLOW_NULL) && !a->local[0] && !a->domain[0]);
		check(address_format(a, text, sizeof text) == 0 && text[0] == '\0');
		return;
	}
	check(a->local[0] && a->domain[0]);
	int n = address_format(a, text + 1, sizeof text - 2);
	check(n > 0 && (size_t)n == strlen(text + 1));
	/* address_format refuses a buffer one byte too small */
	check(address_format(a, text + 1, (size_t)n) == -1);

	unsigned utf8 = a->utf8 ? ADDR_ALLOW_UTF8 : 0;
	check(address_parse_mailbox(text + 1, (size_t)n, utf8, &again, &why) == 0);
	check(!strcmp(again.local, a->local) && !strcmp(again.domain, a->domain));
	check(again.utf8 == a->utf8 && !again.is_null);

	text[0] = '<';
	text[n + 1] = '>';
	check(address_parse_path(text, (size_t)n + 2, utf8, &again, &used, &why) == 0);
	check(used == (size_t)n + 2);
	check(!strcmp(again.local, a->local) && !strcmp(again.domain, a->domain));
	check(again.utf8 == a->utf8);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > FUZZ_INPUT_MAX)
		return 0;
	/* An exact-size copy: ASan sees any read past the end. */
	char *s = malloc(size ? size : 1);
	if (!s)
		return 0;
	memcpy(s, data, size);

	for (unsigned flags = 0; flags < 8; flags++) {
		struct address a;
		const char *why = NULL;
		size_t used = 0;

		if (address_parse_path(s, size, flags, &a, &used, &why) == 0) {
			check(used > 0 && used <= size && used <= ADDR_PATH_MAX);
			check_round_trip(&a, flags);
		} else {
			check(why != NULL);
		}
		why = NULL;
		if (address_parse_mailbox(s, size, flags, &a, &why) == 0) {
			check(size + 2 <= ADDR_PATH_MAX);
			check_round_trip(&a, flags & ~(unsigned)ADDR_ALLOW_NULL);
		} else {
			check(why != NULL);
		}
	}

	size_t used = 0;
	if (address_is_helo_name(s, size, &used))
		check(used <= size);
	(void)address_is_domain(s, size, 0);
	(void)address_is_domain(s, size, 1);
	(void)utf8_valid(s, size);
	free(s);
	return 0;
}
