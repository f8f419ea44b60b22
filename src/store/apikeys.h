/* apikeys.h - API keys for the HTTP API: created and revoked by ternctl,
 * checked by the daemon against an in-memory snapshot.
 *
 * A key is "tern_" and 43 base64url characters: 32 bytes from the system's
 * random source.  It is shown once, at creation; the database keeps only
 * its SHA-256 and its first APIKEY_SHOWN characters (so `apikey list` can
 * say which key is which).  A user key acts for its user (the users row;
 * deleting the user deletes its keys), an admin key for every user.
 *
 * Why SHA-256 and not a password hash: a password hash (Argon2id) is slow
 * on purpose, to make guessing a low-entropy password from a stolen
 * database expensive.  A 256-bit random key cannot be guessed however fast
 * the hash is, so a fast hash loses nothing, and it lets the event loop
 * check a key on every request in microseconds instead of sending each
 * request to a worker.
 *
 * The functions taking DB_PATH are blocking (ternctl, start-up, worker
 * threads): each opens the SQLite store at DB_PATH, migrating its schema
 * first (store_open), and closes it before returning.  A snapshot is
 * immutable once loaded and may be read by any thread.
 *
 * Ownership: strings passed to callbacks are valid only during the call;
 * a snapshot owns its entries and is freed with apikey_set_free. */
#ifndef TERN_STORE_APIKEYS_H
#define TERN_STORE_APIKEYS_H

#include <stddef.h>
#include <stdint.h>

#define APIKEY_PREFIX "tern_"
#define APIKEY_LEN 48 /* "tern_" + 43 base64url characters */
#define APIKEY_SHOWN 12 /* leading characters kept for `apikey list` */

/* apikey_create - a new key for USER ("local@domain", an existing user),
 * or an admin key when USER is NULL.  The key goes into KEY (APIKEY_LEN
 * + 1 bytes) and its id into *ID.  Returns 0, or -1 with ERR set ("no such
 * user ..."). */
int apikey_create(const char *db_path, const char *user, char key[APIKEY_LEN + 1], int64_t *id,
		  char *err, size_t errlen);

/* apikey_revoke - ID stops working (kept, marked revoked, for `list`).
 * Returns 0, or -1 with ERR set ("no such key 7", "key 7 is already
 * revoked"). */
int apikey_revoke(const char *db_path, int64_t id, char *err, size_t errlen);

struct apikey_info {
	int64_t id;
	const char *user; /* NULL: an admin key */
	const char *shown; /* the first APIKEY_SHOWN characters */
	int64_t created; /* Unix time */
	int64_t revoked; /* Unix time, 0 while the key is active */
};

/* apikey_each - CB once per key, in id order; a non-zero return stops the
 * walk.  Returns 0, or -1 with ERR set. */
typedef int (*apikey_cb)(void *ctx, const struct apikey_info *k);
int apikey_each(const char *db_path, apikey_cb cb, void *ctx, char *err, size_t errlen);

/* What the daemon knows about an active key. */
struct apikey_entry {
	int64_t id;
	const char *user; /* lower case; NULL for an admin key */
};

struct apikey_set;

/* apikey_set_load - every active key of the store (blocking), read in one
 * transaction with the accounts version (store_version).  NULL with ERR
 * set on failure. */
struct apikey_set *apikey_set_load(const char *db_path, char *err, size_t errlen);
/* apikey_set_empty - a snapshot without keys (NULL when out of memory). */
struct apikey_set *apikey_set_empty(void);
void apikey_set_free(struct apikey_set **set);
size_t apikey_set_count(const struct apikey_set *set);

/* apikey_set_accounts_version - the accounts version the keys were read
 * with.  A directory snapshot with a newer version may have seen a user
 * deleted and added again, whose old keys this snapshot still holds: the
 * keys must be read again before they are trusted for that directory. */
int64_t apikey_set_accounts_version(const struct apikey_set *set);

/* apikey_set_find - the active key KEY (LEN bytes, as presented), or NULL.
 * Only the key's hash is compared, so the time taken tells nothing about
 * the stored keys.  The entry points into SET. */
const struct apikey_entry *apikey_set_find(const struct apikey_set *set, const char *key,
					   size_t len);

#endif
