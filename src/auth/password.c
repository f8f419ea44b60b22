/* password.c - Argon2id password hashes through libsodium (see password.h).
 *
 * crypto_pwhash_str writes a self-describing PHC string ("$argon2id$v=19$
 * m=...,t=...,p=...$salt$hash") with a fresh random salt, so the cost
 * parameters can be raised later without invalidating stored hashes:
 * crypto_pwhash_str_verify reads them back from the string. */
#include "auth/password.h"

#include <pthread.h>
#include <sodium.h>
#include <string.h>

_Static_assert(PASSWORD_HASH_MAX == crypto_pwhash_STRBYTES,
	       "PASSWORD_HASH_MAX must match crypto_pwhash_STRBYTES");

static pthread_once_t sodium_once = PTHREAD_ONCE_INIT;
static int sodium_ready;

static void sodium_start(void)
{
	sodium_ready = sodium_init() >= 0;
}

/* ready - initialise libsodium once, whichever thread gets here first. */
static int ready(void)
{
	pthread_once(&sodium_once, sodium_start);
	return sodium_ready;
}

int password_hash(const char *password, size_t len, char *out)
{
	if (!ready() || len > crypto_pwhash_PASSWD_MAX)
		return -1;
	if (crypto_pwhash_str(out, password, len, crypto_pwhash_OPSLIMIT_INTERACTIVE,
			      crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0)
		return -1; /* out of memory: the hash needs MEMLIMIT bytes */
	return 0;
}

int password_verify(const char *hash, const char *password, size_t len)
{
	/* libsodium reads HASH as a C string: refuse one that is not
	 * terminated within the encoded length rather than read past it. */
	if (!hash || !ready() || strnlen(hash, PASSWORD_HASH_MAX) >= PASSWORD_HASH_MAX)
		return 0;
	return crypto_pwhash_str_verify(hash, password, len) == 0;
}
