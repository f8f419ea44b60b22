/* password.h - Argon2id password hashes (libsodium crypto_pwhash_str).
 * Blocking and memory-hard: worker threads and ternctl only. */
#ifndef TERN_AUTH_PASSWORD_H
#define TERN_AUTH_PASSWORD_H

#include <stddef.h>

#define PASSWORD_HASH_MAX 128 /* crypto_pwhash_STRBYTES */

/* password_hash - encode PASSWORD into OUT (PASSWORD_HASH_MAX bytes).
 * Returns 0 or -1. */
int password_hash(const char *password, size_t len, char *out);
/* password_verify - constant-time check; 1 match, 0 no match or error. */
int password_verify(const char *hash, const char *password, size_t len);

#endif
