/* directory.h - the daemon's in-memory view of domains, users and aliases.
 *
 * The event loop answers RCPT from an immutable snapshot, never from
 * SQLite.  A snapshot is built on a worker (directory_load), then swapped in
 * on the loop; sessions hold a reference to the one they started with.
 *
 * Address rules: comparison is case-insensitive; "user+tag@domain" is
 * "user@domain" when no exact alias or user "user+tag" exists; aliases
 * expand recursively (an alias may name aliases) with a depth limit of 10
 * and a loop guard: a loop, or depth beyond the limit, is an error.
 *
 * Ownership: directory_load returns a snapshot with one reference;
 * directory_ref/unref are thread-safe (atomic). */
#ifndef TERN_STORE_DIRECTORY_H
#define TERN_STORE_DIRECTORY_H

#include <stddef.h>
#include <stdint.h>

struct directory;

/* directory_load - read a snapshot from the store at DB_PATH.  Blocking.
 * NULL with ERR set on failure. */
struct directory *directory_load(const char *db_path, char *err, size_t errlen);
/* directory_empty - a snapshot with nothing in it. */
struct directory *directory_empty(void);
struct directory *directory_ref(struct directory *d);
void directory_unref(struct directory **d);

int64_t directory_version(const struct directory *d);

/* directory_is_local_domain - is DOMAIN hosted (case-insensitive)? */
int directory_is_local_domain(const struct directory *d, const char *domain);

enum dir_result {
	DIR_OK, /* every target found: local mailboxes and/or remote addresses */
	DIR_NOT_LOCAL, /* the domain is not hosted */
	DIR_UNKNOWN, /* hosted domain, no such user or alias */
	DIR_LOOP, /* alias loop or too deep */
};

/* A resolved destination: a mailbox here, or an address elsewhere. */
struct dir_target {
	char address[320]; /* "local@domain" lower case, without +tag */
	int local; /* 1: a user's mailbox here; 0: a remote address */
};

/* directory_resolve - expand ADDRESS ("local@domain") to its final
 * destinations, at most MAX written to OUT (duplicates removed) and the
 * count in *N.  Returns the result above. */
enum dir_result directory_resolve(const struct directory *d, const char *address,
				  struct dir_target *out, size_t max, size_t *n);

/* directory_user - the user whose address is ADDRESS (exact, after
 * lower-casing and removing a +tag), or NULL.  Points into the snapshot. */
struct dir_user {
	const char *address;
	const char *password_hash;
	uint64_t quota_day, quota_month;
	const char *source_ip;
	uint64_t rate_minute; /* messages per minute, 0 = unlimited */
};
const struct dir_user *directory_user(const struct directory *d, const char *address);

/* directory_owns - may USER send as ADDRESS: its own address, a +tag of it,
 * or an alias whose expansion includes USER. */
int directory_owns(const struct directory *d, const char *user, const char *address);

#endif
