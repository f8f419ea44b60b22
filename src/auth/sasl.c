/* sasl.c - PLAIN and LOGIN message parsing (see sasl.h). */
#include "auth/sasl.h"

#include <sodium.h>
#include <string.h>

int sasl_base64_decode(const char *in, size_t len, char *out, size_t outlen, size_t *n)
{
	size_t got = 0;
	if (outlen == 0)
		return -1;
	if (len % 4 != 0 ||
	    sodium_base642bin((unsigned char *)out, outlen - 1, in, len, NULL, &got, NULL,
			      sodium_base64_VARIANT_ORIGINAL) != 0)
		return -1;
	out[got] = '\0';
	*n = got;
	return 0;
}

/* has_control - a NUL, CR or LF inside a field would let it say more than
 * it seems to. */
static int has_control(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (s[i] == '\0' || s[i] == '\r' || s[i] == '\n')
			return 1;
	return 0;
}

int sasl_plain(const char *b64, size_t len, struct sasl_credentials *out, const char **why)
{
	char buf[3 * SASL_FIELD_MAX + 8];
	size_t n;
	memset(out, 0, sizeof *out);
	if (sasl_base64_decode(b64, len, buf, sizeof buf, &n) < 0) {
		*why = "invalid base64";
		return -1;
	}
	const char *z = buf, *end = buf + n;
	const char *nul1 = memchr(z, '\0', n);
	const char *nul2 = nul1 ? memchr(nul1 + 1, '\0', (size_t)(end - nul1 - 1)) : NULL;
	int rc = -1;
	*why = "malformed PLAIN message";
	if (!nul1 || !nul2)
		goto out;
	size_t zlen = (size_t)(nul1 - z), clen = (size_t)(nul2 - nul1 - 1);
	size_t plen = (size_t)(end - nul2 - 1);
	if (clen == 0 || plen == 0 || zlen > SASL_FIELD_MAX || clen > SASL_FIELD_MAX ||
	    plen > SASL_FIELD_MAX || has_control(nul2 + 1, plen))
		goto out;
	memcpy(out->authzid, z, zlen);
	memcpy(out->authcid, nul1 + 1, clen);
	memcpy(out->password, nul2 + 1, plen);
	if (zlen && strcmp(out->authzid, out->authcid) != 0) {
		*why = "authorization identity must be empty or equal the user";
		sodium_memzero(out, sizeof *out);
		goto out;
	}
	rc = 0;
out:
	sodium_memzero(buf, sizeof buf);
	return rc;
}

int sasl_login_field(const char *b64, size_t len, char *out, const char **why)
{
	char buf[SASL_FIELD_MAX + 8];
	size_t n;
	if (sasl_base64_decode(b64, len, buf, sizeof buf, &n) < 0 || n == 0 ||
	    n > SASL_FIELD_MAX || has_control(buf, n)) {
		*why = "invalid base64 or field";
		sodium_memzero(buf, sizeof buf);
		return -1;
	}
	memcpy(out, buf, n + 1);
	sodium_memzero(buf, sizeof buf);
	return 0;
}
