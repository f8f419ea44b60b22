/* store.h - accounts: hosted domains, users, aliases (SQLite, WAL mode).
 *
 * The schema is created and migrated by store_open (a schema_version table;
 * each migration runs in one transaction).  Addresses and domains are kept
 * in lower case.  Every function is blocking: call from ternctl, from
 * start-up, or from a worker thread; never from the event loop.
 *
 * Ownership: a struct store is owned by its opener; strings returned
 * through out-parameters are malloc'ed and owned by the caller. */
#ifndef TERN_STORE_STORE_H
#define TERN_STORE_STORE_H

#include <stddef.h>
#include <stdint.h>

struct store;

/* store_open - open (creating if needed) the database at PATH and migrate
 * it to the current schema.  NULL with ERR set on failure. */
struct store *store_open(const char *path, char *err, size_t errlen);
void store_close(struct store **st);

/* All functions below return 0 on success, -1 on failure with a reason in
 * ERR ("domain example.org already exists", "no such user ...").  */

int store_domain_add(struct store *st, const char *domain, char *err, size_t errlen);
int store_domain_del(struct store *st, const char *domain, char *err, size_t errlen);

struct store_user {
	char *address;
	char *password_hash; /* Argon2id encoded string */
	uint64_t quota_day, quota_month; /* 0 = unlimited */
	char *source_ip; /* or NULL */
	uint64_t rate_minute; /* messages per minute, 0 = unlimited */
};
void store_user_free(struct store_user *u);

/* store_user_add - the domain of ADDRESS must be hosted. */
int store_user_add(struct store *st, const struct store_user *u, char *err, size_t errlen);
int store_user_del(struct store *st, const char *address, char *err, size_t errlen);
int store_user_set_password(struct store *st, const char *address, const char *hash,
			    char *err, size_t errlen);

/* store_user_set_limits - change the limits of user ADDRESS named by
 * WHICH (STORE_LIMIT_* bits) to those in LIMITS (its address and
 * password_hash are ignored; a NULL source_ip removes it). */
enum {
	STORE_LIMIT_QUOTA_DAY = 1u << 0,
	STORE_LIMIT_QUOTA_MONTH = 1u << 1,
	STORE_LIMIT_RATE_MINUTE = 1u << 2,
	STORE_LIMIT_SOURCE_IP = 1u << 3,
};
int store_user_set_limits(struct store *st, const char *address, const struct store_user *limits,
			  unsigned which, char *err, size_t errlen);

/* store_alias_set - ADDRESS (its domain hosted) expands to TARGETS
 * (comma-separated addresses, local or remote).  Replaces an existing alias. */
int store_alias_set(struct store *st, const char *address, const char *targets,
		    char *err, size_t errlen);
int store_alias_del(struct store *st, const char *address, char *err, size_t errlen);

/* Iteration for `list` commands and for directory snapshots: CB is called
 * once per row in address order; a non-zero return stops the walk. */
typedef int (*store_domain_cb)(void *ctx, const char *domain);
typedef int (*store_user_cb)(void *ctx, const struct store_user *u);
typedef int (*store_alias_cb)(void *ctx, const char *address, const char *targets);
int store_domain_each(struct store *st, store_domain_cb cb, void *ctx, char *err, size_t errlen);
int store_user_each(struct store *st, store_user_cb cb, void *ctx, char *err, size_t errlen);
int store_alias_each(struct store *st, store_alias_cb cb, void *ctx, char *err, size_t errlen);

/* store_version - a number that changes whenever accounts change (a counter
 * bumped by every write above), so a reader can tell its snapshot is stale. */
int store_version(struct store *st, int64_t *version, char *err, size_t errlen);

#endif
