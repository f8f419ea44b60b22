/* sasl.h - SASL mechanisms for SMTP AUTH (RFC 4954): PLAIN (RFC 4616) and
 * LOGIN (draft-murchison-sasl-login).  Pure functions: base64 in,
 * credentials out, no I/O.  Credentials live in fixed buffers that the
 * caller wipes (sodium_memzero) when done. */
#ifndef TERN_AUTH_SASL_H
#define TERN_AUTH_SASL_H

#include <stddef.h>

#define SASL_FIELD_MAX 256

struct sasl_credentials {
	char authzid[SASL_FIELD_MAX + 1];
	char authcid[SASL_FIELD_MAX + 1];
	char password[SASL_FIELD_MAX + 1];
};

/* sasl_base64_decode - strict base64 (RFC 4648, padding required) of IN
 * into OUT (OUTLEN bytes, NUL added); the decoded length in *N.  Returns 0,
 * or -1 on bad base64 or when it does not fit. */
int sasl_base64_decode(const char *in, size_t len, char *out, size_t outlen, size_t *n);

/* sasl_plain - parse the PLAIN message "[authzid] NUL authcid NUL passwd"
 * given in base64.  Returns 0, or -1 with *WHY set.  An authzid other than
 * empty or the authcid itself is refused (no proxy authorization). */
int sasl_plain(const char *b64, size_t len, struct sasl_credentials *out, const char **why);

/* sasl_login_field - one base64 LOGIN answer (user name or password) into
 * OUT (SASL_FIELD_MAX + 1 bytes).  Returns 0, or -1 with *WHY set. */
int sasl_login_field(const char *b64, size_t len, char *out, const char **why);

#endif
