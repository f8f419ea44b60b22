/* apikeys.c - API keys in the SQLite store and the daemon's snapshot of
 * them (see apikeys.h; the table is created by the store's migrations).
 *
 * The snapshot is a sorted array of SHA-256 digests searched with
 * bsearch: a lookup hashes the presented key once and compares digests,
 * so it costs the same whatever the key and never touches SQLite. */
#include "store/apikeys.h"

#include <sodium.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/address.h"
#include "store/store.h"

#define DIGEST_LEN crypto_hash_sha256_BYTES
#define KEY_RANDOM_BYTES 32

struct key_slot {
	unsigned char digest[DIGEST_LEN];
	struct apikey_entry entry; /* entry.user malloc'ed */
};

struct apikey_set {
	struct key_slot *slots;
	size_t n, cap;
	int64_t accounts_version; /* of the accounts the keys were read with */
};

__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t errlen, const char *fmt,
						      ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

/* open_db - the store at PATH, migrated to the current schema, opened for
 * our own statements with the store's settings (busy timeout, foreign keys:
 * a user's keys go with the user). */
static sqlite3 *open_db(const char *path, char *err, size_t errlen)
{
	struct store *st = store_open(path, err, errlen);
	if (!st)
		return NULL;
	store_close(&st);
	sqlite3 *db = NULL;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK ||
	    sqlite3_busy_timeout(db, 5000) != SQLITE_OK ||
	    sqlite3_exec(db, "PRAGMA foreign_keys = ON", NULL, NULL, NULL) != SQLITE_OK) {
		fail(err, errlen, "cannot open %s: %s", path,
		     db ? sqlite3_errmsg(db) : "out of memory");
		sqlite3_close(db);
		return NULL;
	}
	return db;
}

static int db_fail(sqlite3 *db, char *err, size_t errlen, const char *what)
{
	return fail(err, errlen, "database: %s: %s", what, sqlite3_errmsg(db));
}

static void digest_of(const char *key, size_t len, unsigned char out[DIGEST_LEN])
{
	crypto_hash_sha256(out, (const unsigned char *)key, len);
}

/* norm_user - USER checked as an address and lower-cased into OUT. */
static int norm_user(const char *user, char *out, size_t outlen, char *err, size_t errlen)
{
	struct address a;
	const char *why = "empty";
	size_t len = strlen(user);
	if (len == 0 || address_parse_mailbox(user, len, 0, &a, &why) < 0 || !a.domain[0] ||
	    address_format(&a, out, outlen) < 0)
		return fail(err, errlen, "invalid address %s: %s", user, why);
	for (char *p = out; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	return 0;
}

/* new_key - "tern_" and 32 random bytes in base64url into KEY. */
static void new_key(char key[APIKEY_LEN + 1])
{
	unsigned char rnd[KEY_RANDOM_BYTES];
	randombytes_buf(rnd, sizeof rnd);
	memcpy(key, APIKEY_PREFIX, sizeof APIKEY_PREFIX - 1);
	sodium_bin2base64(key + sizeof APIKEY_PREFIX - 1, APIKEY_LEN + 2 - sizeof APIKEY_PREFIX,
			  rnd, sizeof rnd, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	sodium_memzero(rnd, sizeof rnd);
}

/* insert_key - the row for KEY (user USER or NULL), inside a transaction
 * that first checks that the user exists. */
static int insert_key(sqlite3 *db, const char *user, const char *key, int64_t *id, char *err,
		      size_t errlen)
{
	unsigned char digest[DIGEST_LEN];
	char hex[2 * DIGEST_LEN + 1], shown[APIKEY_SHOWN + 1];
	digest_of(key, strlen(key), digest);
	sodium_bin2hex(hex, sizeof hex, digest, sizeof digest);
	snprintf(shown, sizeof shown, "%s", key);
	sqlite3_stmt *s = NULL;
	int r = -1;
	if (user) {
		if (sqlite3_prepare_v2(db, "SELECT 1 FROM users WHERE address = ?1", -1, &s,
				       NULL) != SQLITE_OK ||
		    sqlite3_bind_text(s, 1, user, -1, SQLITE_STATIC) != SQLITE_OK)
			goto out_db;
		int rc = sqlite3_step(s);
		if (rc == SQLITE_DONE) {
			r = fail(err, errlen, "no such user %s", user);
			goto out;
		}
		if (rc != SQLITE_ROW)
			goto out_db;
		sqlite3_finalize(s);
		s = NULL;
	}
	if (sqlite3_prepare_v2(db,
			       "INSERT INTO api_keys (user, hash, prefix, created) "
			       "VALUES (?1, ?2, ?3, ?4)",
			       -1, &s, NULL) != SQLITE_OK ||
	    (user ? sqlite3_bind_text(s, 1, user, -1, SQLITE_STATIC) : sqlite3_bind_null(s, 1)) ||
	    sqlite3_bind_text(s, 2, hex, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_text(s, 3, shown, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 4, (sqlite3_int64)time(NULL)) != SQLITE_OK ||
	    sqlite3_step(s) != SQLITE_DONE)
		goto out_db;
	*id = sqlite3_last_insert_rowid(db);
	r = 0;
	goto out;
out_db:
	r = db_fail(db, err, errlen, "api key");
out:
	sqlite3_finalize(s);
	return r;
}

int apikey_create(const char *db_path, const char *user, char key[APIKEY_LEN + 1], int64_t *id,
		  char *err, size_t errlen)
{
	char addr[ADDR_PATH_MAX + 8];
	if (user && norm_user(user, addr, sizeof addr, err, errlen) < 0)
		return -1;
	sqlite3 *db = open_db(db_path, err, errlen);
	if (!db)
		return -1;
	new_key(key);
	int r = -1;
	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		db_fail(db, err, errlen, "begin");
	else if ((r = insert_key(db, user ? addr : NULL, key, id, err, errlen)) == 0 &&
		 sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		r = db_fail(db, err, errlen, "commit");
	if (r < 0) {
		if (!sqlite3_get_autocommit(db))
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		sodium_memzero(key, APIKEY_LEN + 1);
	}
	sqlite3_close(db);
	return r;
}

int apikey_revoke(const char *db_path, int64_t id, char *err, size_t errlen)
{
	sqlite3 *db = open_db(db_path, err, errlen);
	if (!db)
		return -1;
	sqlite3_stmt *s = NULL;
	int r = -1;
	if (sqlite3_prepare_v2(db, "UPDATE api_keys SET revoked = ?2 WHERE id = ?1 AND "
				   "revoked IS NULL",
			       -1, &s, NULL) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 1, id) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 2, (sqlite3_int64)time(NULL)) != SQLITE_OK ||
	    sqlite3_step(s) != SQLITE_DONE) {
		db_fail(db, err, errlen, "revoke");
	} else if (sqlite3_changes(db) == 1) {
		r = 0;
	} else {
		/* Nothing changed: say whether the key is unknown or gone. */
		sqlite3_finalize(s);
		s = NULL;
		int known = sqlite3_prepare_v2(db, "SELECT 1 FROM api_keys WHERE id = ?1", -1, &s,
					       NULL) == SQLITE_OK &&
			    sqlite3_bind_int64(s, 1, id) == SQLITE_OK &&
			    sqlite3_step(s) == SQLITE_ROW;
		fail(err, errlen, known ? "key %lld is already revoked" : "no such key %lld",
		     (long long)id);
	}
	sqlite3_finalize(s);
	sqlite3_close(db);
	return r;
}

int apikey_each(const char *db_path, apikey_cb cb, void *ctx, char *err, size_t errlen)
{
	sqlite3 *db = open_db(db_path, err, errlen);
	if (!db)
		return -1;
	sqlite3_stmt *s = NULL;
	int r = 0, rc = SQLITE_DONE;
	if (sqlite3_prepare_v2(db,
			       "SELECT id, user, prefix, created, coalesce(revoked, 0) "
			       "FROM api_keys ORDER BY id",
			       -1, &s, NULL) != SQLITE_OK) {
		r = db_fail(db, err, errlen, "list");
	} else {
		while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
			struct apikey_info k = {
				.id = sqlite3_column_int64(s, 0),
				.user = (const char *)sqlite3_column_text(s, 1),
				.shown = (const char *)sqlite3_column_text(s, 2),
				.created = sqlite3_column_int64(s, 3),
				.revoked = sqlite3_column_int64(s, 4),
			};
			if (!k.shown)
				k.shown = "";
			if (cb(ctx, &k))
				break;
		}
		if (rc != SQLITE_ROW && rc != SQLITE_DONE)
			r = db_fail(db, err, errlen, "list");
	}
	sqlite3_finalize(s);
	sqlite3_close(db);
	return r;
}

/* ---- the snapshot ---- */

struct apikey_set *apikey_set_empty(void)
{
	return calloc(1, sizeof(struct apikey_set));
}

void apikey_set_free(struct apikey_set **pset)
{
	struct apikey_set *set = *pset;
	if (!set)
		return;
	*pset = NULL;
	for (size_t i = 0; i < set->n; i++)
		free((char *)set->slots[i].entry.user);
	free(set->slots);
	free(set);
}

size_t apikey_set_count(const struct apikey_set *set)
{
	return set ? set->n : 0;
}

int64_t apikey_set_accounts_version(const struct apikey_set *set)
{
	return set ? set->accounts_version : -1;
}

static int cmp_slot(const void *a, const void *b)
{
	return memcmp(((const struct key_slot *)a)->digest, ((const struct key_slot *)b)->digest,
		      DIGEST_LEN);
}

/* add_row - one active key from the database into SET.  -1 when out of
 * memory or the stored hash is not 64 hex digits. */
static int add_row(struct apikey_set *set, sqlite3_stmt *s)
{
	if (set->n == set->cap) {
		size_t cap = set->cap ? set->cap * 2 : 16;
		struct key_slot *slots = realloc(set->slots, cap * sizeof *slots);
		if (!slots)
			return -1;
		set->slots = slots;
		set->cap = cap;
	}
	struct key_slot *k = &set->slots[set->n];
	const char *hex = (const char *)sqlite3_column_text(s, 1);
	const char *user = (const char *)sqlite3_column_text(s, 2);
	size_t got = 0;
	if (!hex || sodium_hex2bin(k->digest, DIGEST_LEN, hex, strlen(hex), NULL, &got, NULL) != 0 ||
	    got != DIGEST_LEN)
		return -1;
	k->entry.id = sqlite3_column_int64(s, 0);
	k->entry.user = user ? strdup(user) : NULL;
	if (user && !k->entry.user)
		return -1;
	set->n++;
	return 0;
}

/* read_version - meta.accounts_version into SET (inside the load's read
 * transaction, so it names the accounts the keys belong with). */
static int read_version(sqlite3 *db, struct apikey_set *set)
{
	sqlite3_stmt *s = NULL;
	int ok = sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE name = 'accounts_version'",
				    -1, &s, NULL) == SQLITE_OK &&
		 sqlite3_step(s) == SQLITE_ROW;
	if (ok)
		set->accounts_version = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return ok ? 0 : -1;
}

struct apikey_set *apikey_set_load(const char *db_path, char *err, size_t errlen)
{
	sqlite3 *db = open_db(db_path, err, errlen);
	if (!db)
		return NULL;
	struct apikey_set *set = apikey_set_empty();
	sqlite3_stmt *s = NULL;
	int rc = SQLITE_ERROR;
	if (!set) {
		fail(err, errlen, "out of memory");
	} else if (sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK ||
		   read_version(db, set) < 0 ||
		   sqlite3_prepare_v2(db,
				      "SELECT id, hash, user FROM api_keys WHERE revoked IS NULL",
				      -1, &s, NULL) != SQLITE_OK) {
		db_fail(db, err, errlen, "api keys");
	} else {
		while ((rc = sqlite3_step(s)) == SQLITE_ROW)
			if (add_row(set, s) < 0) {
				fail(err, errlen, "api key %lld: out of memory or a damaged hash",
				     (long long)sqlite3_column_int64(s, 0));
				break;
			}
		if (rc != SQLITE_DONE && rc != SQLITE_ROW)
			db_fail(db, err, errlen, "api keys");
	}
	sqlite3_finalize(s);
	sqlite3_exec(db, "COMMIT", NULL, NULL, NULL); /* ends the read */
	sqlite3_close(db);
	if (rc != SQLITE_DONE) {
		apikey_set_free(&set);
		return NULL;
	}
	if (set->n)
		qsort(set->slots, set->n, sizeof *set->slots, cmp_slot);
	return set;
}

const struct apikey_entry *apikey_set_find(const struct apikey_set *set, const char *key,
					   size_t len)
{
	if (!set || !set->n || len != APIKEY_LEN ||
	    memcmp(key, APIKEY_PREFIX, sizeof APIKEY_PREFIX - 1) != 0)
		return NULL;
	struct key_slot probe;
	memset(&probe, 0, sizeof probe);
	digest_of(key, len, probe.digest);
	const struct key_slot *k = bsearch(&probe, set->slots, set->n, sizeof *set->slots, cmp_slot);
	return k ? &k->entry : NULL;
}
