/* fuzz_sasl.c - libFuzzer target for SMTP AUTH payloads (auth/sasl.c;
 * RFC 4954 4, RFC 4616 PLAIN, draft-murchison-sasl-login LOGIN, RFC 4648
 * base64).
 *
 * The input is one base64 line a client sends after "AUTH PLAIN " or in
 * answer to a 334 challenge.  It goes to sasl_plain, sasl_login_field and
 * sasl_base64_decode.  Checked beyond memory safety: accepted credentials
 * are NUL-terminated, bounded, free of the bytes that would let a field say
 * more than it seems (NUL, CR, LF in the password and the LOGIN field), the
 * authorization identity is empty or the user's own, and encoding the
 * credentials again gives a message that parses to the same credentials. */
#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/sasl.h"

#define FUZZ_INPUT_MAX 4096

#define check(cond)                                                                                \
	do {                                                                                       \
		if (!(cond))                                                                       \
			abort();                                                                   \
	} while (0)

static size_t bounded_len(const char *s)
{
	size_t n = strnlen(s, SASL_FIELD_MAX + 1);
	check(n <= SASL_FIELD_MAX);
	return n;
}

/* check_plain - accepted PLAIN credentials, and their re-encoding. */
static void check_plain(const struct sasl_credentials *c)
{
	size_t z = bounded_len(c->authzid), u = bounded_len(c->authcid);
	size_t p = bounded_len(c->password);
	char msg[3 * SASL_FIELD_MAX + 2], b64[4 * SASL_FIELD_MAX + 8];
	struct sasl_credentials again;
	const char *why = NULL;

	check(u > 0 && p > 0);
	check(z == 0 || !strcmp(c->authzid, c->authcid));
	check(!strpbrk(c->password, "\r\n"));

	memcpy(msg, c->authzid, z);
	msg[z] = '\0';
	memcpy(msg + z + 1, c->authcid, u);
	msg[z + 1 + u] = '\0';
	memcpy(msg + z + u + 2, c->password, p);
	sodium_bin2base64(b64, sizeof b64, (const unsigned char *)msg, z + u + p + 2,
			  sodium_base64_VARIANT_ORIGINAL);
	check(sasl_plain(b64, strlen(b64), &again, &why) == 0);
	check(!strcmp(again.authzid, c->authzid) && !strcmp(again.authcid, c->authcid));
	check(!strcmp(again.password, c->password));
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	return sodium_init() < 0 ? -1 : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sasl_credentials cred;
	char field[SASL_FIELD_MAX + 1], dec[FUZZ_INPUT_MAX];
	const char *why = NULL;
	size_t n = 0;

	if (size > FUZZ_INPUT_MAX)
		return 0;
	/* An exact-size copy: ASan sees any read past the end. */
	char *in = malloc(size ? size : 1);
	if (!in)
		return 0;
	memcpy(in, data, size);

	if (sasl_plain(in, size, &cred, &why) == 0)
		check_plain(&cred);
	else
		check(why != NULL);

	why = NULL;
	memset(field, 'X', sizeof field);
	if (sasl_login_field(in, size, field, &why) == 0) {
		size_t len = bounded_len(field);
		check(len > 0 && !strpbrk(field, "\r\n"));
	} else {
		check(why != NULL);
	}

	/* the decoder itself, with a tight buffer: it must refuse, not spill */
	size_t outlen = size / 2 + 1;
	if (sasl_base64_decode(in, size, dec, outlen, &n) == 0)
		check(n < outlen && dec[n] == '\0' && n <= size / 4 * 3);
	if (sasl_base64_decode(in, size, dec, sizeof dec, &n) == 0)
		check(n < sizeof dec && dec[n] == '\0' && n <= size / 4 * 3);
	free(in);
	return 0;
}
