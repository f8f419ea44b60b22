/* sqlite.c - the accounts store on SQLite (see store.h).
 *
 * The database runs in WAL mode so the daemon's snapshot reads never wait
 * for ternctl's writes, with a 5 s busy timeout for the rare writer/writer
 * meeting and foreign keys on (users and aliases belong to a hosted
 * domain).  Every write is one IMMEDIATE transaction that checks, changes
 * and bumps meta.accounts_version, so a reader comparing versions knows
 * whether anything changed.
 *
 * The schema lives in migrations[]: schema_version holds how many have
 * been applied, and each runs in its own transaction under the write lock,
 * so two processes opening a new database at once migrate it once.
 *
 * Addresses and domains are checked with the RFC 5321 parser
 * (core/address.h) and kept in lower case. */
#include "store/store.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/address.h"

struct store {
	sqlite3 *db;
};

#define HASH_MAX 128 /* longest encoded hash + 1: crypto_pwhash_STRBYTES */

/* Applied in order; entry I brings the schema from version I to I + 1.
 * Never edit an entry once released: add a new one. */
static const char *const migrations[] = {
	/* 1: accounts */
	"CREATE TABLE domains ("
	"  name TEXT PRIMARY KEY NOT NULL"
	") WITHOUT ROWID;"
	"CREATE TABLE users ("
	"  address TEXT PRIMARY KEY NOT NULL,"
	"  domain TEXT NOT NULL REFERENCES domains(name),"
	"  password_hash TEXT NOT NULL,"
	"  quota_day INTEGER NOT NULL DEFAULT 0,"
	"  quota_month INTEGER NOT NULL DEFAULT 0,"
	"  source_ip TEXT,"
	"  created INTEGER NOT NULL"
	");"
	"CREATE INDEX users_domain ON users(domain);"
	"CREATE TABLE aliases ("
	"  address TEXT PRIMARY KEY NOT NULL,"
	"  domain TEXT NOT NULL REFERENCES domains(name),"
	"  targets TEXT NOT NULL"
	");"
	"CREATE INDEX aliases_domain ON aliases(domain);"
	"CREATE TABLE meta ("
	"  name TEXT PRIMARY KEY NOT NULL,"
	"  value INTEGER NOT NULL"
	") WITHOUT ROWID;"
	"INSERT INTO meta (name, value) VALUES ('accounts_version', 0);",
	/* 2: API keys (store/apikeys.c): a user's keys go with the user */
	"CREATE TABLE api_keys ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  user TEXT REFERENCES users(address) ON DELETE CASCADE,"
	"  hash TEXT NOT NULL UNIQUE,"
	"  prefix TEXT NOT NULL,"
	"  created INTEGER NOT NULL,"
	"  revoked INTEGER"
	");"
	"CREATE INDEX api_keys_user ON api_keys(user);",
	/* 3: the record (store/records.h): events by id with indexes for the
	 * per-user cursor, a message's history and "the last minute";
	 * counters per user and UTC hour (HOUR is the hour's first second,
	 * user '' for mail of no user); message summaries; suppression lists;
	 * webhooks; and the per-user rate limit. */
	"CREATE TABLE events ("
	"  id INTEGER PRIMARY KEY, time_ms INTEGER NOT NULL, type INTEGER NOT NULL,"
	"  message_id TEXT NOT NULL, user TEXT NOT NULL, recipient TEXT NOT NULL,"
	"  detail TEXT NOT NULL"
	");"
	"CREATE INDEX events_user ON events(user, id);"
	"CREATE INDEX events_message ON events(message_id);"
	"CREATE INDEX events_time ON events(time_ms);"
	"CREATE TABLE stats_hourly ("
	"  user TEXT NOT NULL,"
	"  hour INTEGER NOT NULL,"
	"  accepted INTEGER NOT NULL DEFAULT 0, delivered INTEGER NOT NULL DEFAULT 0,"
	"  deferred INTEGER NOT NULL DEFAULT 0, bounced INTEGER NOT NULL DEFAULT 0,"
	"  rejected INTEGER NOT NULL DEFAULT 0,"
	"  PRIMARY KEY (user, hour)"
	") WITHOUT ROWID;"
	"CREATE TABLE messages ("
	"  id TEXT PRIMARY KEY NOT NULL, user TEXT NOT NULL, sender TEXT NOT NULL,"
	"  subject TEXT NOT NULL, tags TEXT NOT NULL, created_ms INTEGER NOT NULL"
	");"
	"CREATE TABLE suppressions ("
	"  user TEXT NOT NULL,"
	"  address TEXT NOT NULL,"
	"  reason TEXT NOT NULL,"
	"  created INTEGER NOT NULL,"
	"  PRIMARY KEY (user, address)"
	") WITHOUT ROWID;"
	"CREATE TABLE webhooks ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  user TEXT NOT NULL,"
	"  url TEXT NOT NULL,"
	"  events INTEGER NOT NULL,"
	"  secret TEXT NOT NULL,"
	"  cursor INTEGER NOT NULL DEFAULT 0, failures INTEGER NOT NULL DEFAULT 0,"
	"  disabled INTEGER NOT NULL DEFAULT 0, last_error TEXT NOT NULL DEFAULT '',"
	"  created INTEGER NOT NULL"
	");"
	"ALTER TABLE users ADD COLUMN rate_minute INTEGER NOT NULL DEFAULT 0;",
};
#define NMIGRATIONS ((int)(sizeof migrations / sizeof migrations[0]))

/* fail_text - format a reason into ERR. */
__attribute__((format(printf, 3, 4))) static void fail_text(char *err, size_t errlen,
							   const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* fail - fail_text, then -1 for `return fail(...)`; a macro so that the
 * static analyser, which does not follow variadic functions, sees the -1. */
#define fail(err, errlen, ...) (fail_text((err), (errlen), __VA_ARGS__), -1)

static int db_fail(struct store *st, char *err, size_t errlen, const char *what)
{
	return fail(err, errlen, "database: %s: %s", what, sqlite3_errmsg(st->db));
}

static int exec(struct store *st, const char *sql, char *err, size_t errlen)
{
	char *msg = NULL;
	if (sqlite3_exec(st->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		(void)fail(err, errlen, "database: %s", msg ? msg : sqlite3_errmsg(st->db));
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

/* prepare - SQL with its first NARGS parameters (?1, ?2, ...) bound to
 * the const char * arguments that follow; a NULL argument binds NULL. */
static sqlite3_stmt *prepare(struct store *st, char *err, size_t errlen, const char *sql,
			     int nargs, ...)
{
	sqlite3_stmt *s = NULL;
	if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK) {
		db_fail(st, err, errlen, "prepare");
		return NULL;
	}
	va_list ap;
	va_start(ap, nargs);
	int rc = SQLITE_OK;
	for (int i = 1; i <= nargs && rc == SQLITE_OK; i++) {
		const char *a = va_arg(ap, const char *);
		rc = a ? sqlite3_bind_text(s, i, a, -1, SQLITE_STATIC) : sqlite3_bind_null(s, i);
	}
	va_end(ap);
	if (rc != SQLITE_OK) {
		db_fail(st, err, errlen, "bind");
		sqlite3_finalize(s);
		return NULL;
	}
	return s;
}

/* done - step a prepared write once and finalize it. */
static int done(struct store *st, sqlite3_stmt *s, char *err, size_t errlen)
{
	int rc = sqlite3_step(s);
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : db_fail(st, err, errlen, "write");
}

/* run - a write with one text parameter ?1 (or none when A is NULL). */
static int run(struct store *st, const char *sql, const char *a, char *err, size_t errlen)
{
	sqlite3_stmt *s = prepare(st, err, errlen, sql, a ? 1 : 0, a);
	return s ? done(st, s, err, errlen) : -1;
}

/* query_int - the first column of the first row of SQL (?1 = A) into *OUT.
 * Returns 1 with a row, 0 without one, -1 on error. */
static int query_int(struct store *st, const char *sql, const char *a, int64_t *out, char *err,
		     size_t errlen)
{
	sqlite3_stmt *s = prepare(st, err, errlen, sql, a ? 1 : 0, a);
	if (!s)
		return -1;
	int rc = sqlite3_step(s), r;
	if (rc == SQLITE_ROW) {
		*out = sqlite3_column_int64(s, 0);
		r = 1;
	} else {
		r = rc == SQLITE_DONE ? 0 : db_fail(st, err, errlen, "read");
	}
	sqlite3_finalize(s);
	return r;
}

static int user_exists(struct store *st, const char *address, char *err, size_t errlen)
{
	int64_t one;
	return query_int(st, "SELECT 1 FROM users WHERE address = ?1", address, &one, err, errlen);
}

static int alias_exists(struct store *st, const char *address, char *err, size_t errlen)
{
	int64_t one;
	return query_int(st, "SELECT 1 FROM aliases WHERE address = ?1", address, &one, err,
			 errlen);
}

static int domain_hosted(struct store *st, const char *domain, char *err, size_t errlen)
{
	int64_t one;
	return query_int(st, "SELECT 1 FROM domains WHERE name = ?1", domain, &one, err, errlen);
}

/* begin - take the write lock now (IMMEDIATE), so the checks a write makes
 * still hold when it changes the rows; busy_timeout waits for another
 * writer. */
static int begin(struct store *st, char *err, size_t errlen)
{
	return exec(st, "BEGIN IMMEDIATE", err, errlen);
}

/* finish - commit a write whose body returned R (bumping the version), or
 * roll it back.  Returns R, or -1 when the commit fails. */
static int finish(struct store *st, int r, char *err, size_t errlen)
{
	if (r == 0 &&
	    (run(st, "UPDATE meta SET value = value + 1 WHERE name = 'accounts_version'", NULL,
		 err, errlen) < 0 ||
	     exec(st, "COMMIT", err, errlen) < 0))
		r = -1;
	if (r < 0 && !sqlite3_get_autocommit(st->db))
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
	return r;
}

/* migrate_step - apply the next migration if one is due.  Returns 1 when
 * one was applied, 0 when the schema is current, -1 on error. */
static int migrate_step(struct store *st, char *err, size_t errlen)
{
	int64_t v = 0;
	if (begin(st, err, errlen) < 0)
		return -1;
	int r = exec(st, "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)",
		     err, errlen);
	if (r == 0)
		r = query_int(st, "SELECT version FROM schema_version", NULL, &v, err, errlen);
	if (r == 0) /* a new database: no row yet */
		r = run(st, "INSERT INTO schema_version (version) VALUES (0)", NULL, err, errlen);
	else if (r == 1)
		r = 0;
	if (r == 0 && v > NMIGRATIONS)
		r = fail(err, errlen, "database schema version %" PRId64 " is newer than this "
			 "program (%d)", v, NMIGRATIONS);
	int applied = 0;
	if (r == 0 && v < NMIGRATIONS) {
		char sql[64];
		snprintf(sql, sizeof sql, "UPDATE schema_version SET version = %" PRId64, v + 1);
		r = exec(st, migrations[v], err, errlen);
		if (r == 0)
			r = exec(st, sql, err, errlen);
		applied = 1;
	}
	if (r == 0 && exec(st, "COMMIT", err, errlen) == 0)
		return applied;
	if (!sqlite3_get_autocommit(st->db))
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
	return -1;
}

/* migrate - bring the schema to NMIGRATIONS.  The common case, a current
 * database, is answered by one read without taking the write lock. */
static int migrate(struct store *st, char *err, size_t errlen)
{
	int64_t v;
	char ignored[8];
	if (query_int(st, "SELECT version FROM schema_version", NULL, &v, ignored,
		      sizeof ignored) == 1 &&
	    v == NMIGRATIONS)
		return 0;
	int r;
	while ((r = migrate_step(st, err, errlen)) == 1)
		;
	return r;
}

struct store *store_open(const char *path, char *err, size_t errlen)
{
	struct store *st = calloc(1, sizeof *st);
	if (!st) {
		(void)fail(err, errlen, "out of memory");
		return NULL;
	}
	int rc = sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
	if (rc != SQLITE_OK) {
		(void)fail(err, errlen, "cannot open %s: %s", path,
		     st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc));
		store_close(&st);
		return NULL;
	}
	sqlite3_busy_timeout(st->db, 5000);
	sqlite3_extended_result_codes(st->db, 1);
	if (exec(st, "PRAGMA journal_mode = WAL", err, errlen) < 0 ||
	    exec(st, "PRAGMA foreign_keys = ON", err, errlen) < 0 || migrate(st, err, errlen) < 0) {
		char why[256];
		snprintf(why, sizeof why, "%s", err);
		(void)fail(err, errlen, "%s: %s", path, why);
		store_close(&st);
		return NULL;
	}
	return st;
}

void store_close(struct store **pst)
{
	struct store *st = *pst;
	if (!st)
		return;
	*pst = NULL;
	sqlite3_close(st->db);
	free(st);
}

/* lower - ASCII lower case in place; UTF-8 bytes are left as they are. */
static void lower(char *s)
{
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

/* norm_domain - DOMAIN checked and lower-cased into OUT (ADDR_DOMAIN_MAX+1). */
static int norm_domain(const char *domain, char *out, char *err, size_t errlen)
{
	size_t len = domain ? strlen(domain) : 0;
	if (len == 0 || len > ADDR_DOMAIN_MAX || !address_is_domain(domain, len, 1))
		return fail(err, errlen, "invalid domain name: %s", domain ? domain : "");
	memcpy(out, domain, len + 1);
	lower(out);
	return 0;
}

/* norm_target - any mailbox (local or remote) lower-cased into OUT
 * (ADDR_PATH_MAX bytes); *DOMAIN points at its domain inside OUT. */
static int norm_target(const char *s, char *out, const char **domain, char *err, size_t errlen)
{
	struct address a;
	const char *why = "empty";
	size_t len = strlen(s);
	if (len == 0 || address_parse_mailbox(s, len, ADDR_ALLOW_UTF8, &a, &why) < 0)
		return fail(err, errlen, "invalid address %s: %s", s, why);
	if (!a.domain[0])
		return fail(err, errlen, "invalid address %s: no domain", s);
	if (address_format(&a, out, ADDR_PATH_MAX) < 0)
		return fail(err, errlen, "invalid address %s: too long", s);
	lower(out);
	*domain = strrchr(out, '@') + 1;
	return 0;
}

/* norm_account - an address that names a user or an alias here: a plain
 * dot-string local part (it becomes a Maildir directory, hence no '/')
 * and a domain name, not an address literal. */
static int norm_account(const char *s, char *out, const char **domain, char *err,
			size_t errlen)
{
	if (!s)
		return fail(err, errlen, "missing address");
	if (norm_target(s, out, domain, err, errlen) < 0)
		return -1;
	if (out[0] == '"' || strchr(out, '/'))
		return fail(err, errlen, "invalid address %s: local part must be letters, digits "
			    "and . _ - + only", s);
	if (!address_is_domain(*domain, strlen(*domain), 1))
		return fail(err, errlen, "invalid address %s: not a domain name", s);
	return 0;
}

/* hosted_account - norm_account, and its domain must be hosted. */
static int hosted_account(struct store *st, const char *s, char *out, char *err, size_t errlen)
{
	const char *domain;
	if (norm_account(s, out, &domain, err, errlen) < 0)
		return -1;
	int r = domain_hosted(st, domain, err, errlen);
	if (r == 0)
		return fail(err, errlen, "domain %s is not hosted", domain);
	return r < 0 ? -1 : 0;
}

int store_domain_add(struct store *st, const char *domain, char *err, size_t errlen)
{
	char d[ADDR_DOMAIN_MAX + 1];
	if (norm_domain(domain, d, err, errlen) < 0 || begin(st, err, errlen) < 0)
		return -1;
	int r = domain_hosted(st, d, err, errlen);
	if (r == 1)
		r = fail(err, errlen, "domain %s already exists", d);
	else if (r == 0)
		r = run(st, "INSERT INTO domains (name) VALUES (?1)", d, err, errlen);
	return finish(st, r, err, errlen);
}

/* domain_del_tx - the checks and the delete, inside the transaction. */
static int domain_del_tx(struct store *st, const char *d, char *err, size_t errlen)
{
	int64_t users = 0, aliases = 0;
	int r = domain_hosted(st, d, err, errlen);
	if (r == 0)
		return fail(err, errlen, "domain %s is not hosted", d);
	if (r < 0 ||
	    query_int(st, "SELECT count(*) FROM users WHERE domain = ?1", d, &users, err,
		      errlen) < 0 ||
	    query_int(st, "SELECT count(*) FROM aliases WHERE domain = ?1", d, &aliases, err,
		      errlen) < 0)
		return -1;
	if (users || aliases)
		return fail(err, errlen,
			    "domain %s still has %" PRId64 " user%s and %" PRId64 " alias%s; "
			    "delete them first",
			    d, users, users == 1 ? "" : "s", aliases, aliases == 1 ? "" : "es");
	return run(st, "DELETE FROM domains WHERE name = ?1", d, err, errlen);
}

int store_domain_del(struct store *st, const char *domain, char *err, size_t errlen)
{
	char d[ADDR_DOMAIN_MAX + 1];
	if (norm_domain(domain, d, err, errlen) < 0 || begin(st, err, errlen) < 0)
		return -1;
	return finish(st, domain_del_tx(st, d, err, errlen), err, errlen);
}

void store_user_free(struct store_user *u)
{
	if (!u)
		return;
	free(u->address);
	free(u->password_hash);
	free(u->source_ip);
	u->address = u->password_hash = u->source_ip = NULL;
}

/* norm_ip - an IPv4 or IPv6 address in its canonical text form. */
static int norm_ip(const char *ip, char *out, size_t outlen, char *err, size_t errlen)
{
	unsigned char bin[16];
	int family = strchr(ip, ':') ? AF_INET6 : AF_INET;
	if (inet_pton(family, ip, bin) != 1 || !inet_ntop(family, bin, out, (socklen_t)outlen))
		return fail(err, errlen, "invalid source IP address: %s", ip);
	return 0;
}

/* check_hash - a password hash must be a non-empty encoded string; a
 * plain password stored here by mistake would never verify. */
static int check_hash(const char *hash, char *err, size_t errlen)
{
	if (!hash || hash[0] != '$' || strlen(hash) >= HASH_MAX)
		return fail(err, errlen, "invalid password hash");
	return 0;
}

/* user_add_tx - the checks and the insert, inside the transaction. */
static int user_add_tx(struct store *st, const char *addr, const struct store_user *u,
		       const char *ip, char *err, size_t errlen)
{
	int r = user_exists(st, addr, err, errlen);
	if (r == 1)
		return fail(err, errlen, "user %s already exists", addr);
	if (r == 0 && (r = alias_exists(st, addr, err, errlen)) == 1)
		return fail(err, errlen, "%s is already an alias", addr);
	if (r < 0)
		return -1;
	sqlite3_stmt *s = prepare(st, err, errlen,
				  "INSERT INTO users (address, domain, password_hash, source_ip, "
				  "quota_day, quota_month, created, rate_minute) "
				  "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
				  4, addr, strrchr(addr, '@') + 1, u->password_hash, ip);
	if (!s)
		return -1;
	if (sqlite3_bind_int64(s, 5, (sqlite3_int64)u->quota_day) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 6, (sqlite3_int64)u->quota_month) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 7, (sqlite3_int64)time(NULL)) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 8, (sqlite3_int64)u->rate_minute) != SQLITE_OK) {
		sqlite3_finalize(s);
		return db_fail(st, err, errlen, "bind");
	}
	return done(st, s, err, errlen);
}

int store_user_add(struct store *st, const struct store_user *u, char *err, size_t errlen)
{
	char addr[ADDR_PATH_MAX], ip[64];
	const char *domain;
	if (!u || norm_account(u->address, addr, &domain, err, errlen) < 0 ||
	    check_hash(u->password_hash, err, errlen) < 0 ||
	    (u->source_ip && norm_ip(u->source_ip, ip, sizeof ip, err, errlen) < 0))
		return -1;
	/* SQLite integers are signed 64-bit; nobody needs a larger quota. */
	if (u->quota_day > INT64_MAX || u->quota_month > INT64_MAX ||
	    u->rate_minute > INT64_MAX)
		return fail(err, errlen, "quota too large");
	if (begin(st, err, errlen) < 0)
		return -1;
	int r = domain_hosted(st, domain, err, errlen);
	if (r == 0)
		r = fail(err, errlen, "domain %s is not hosted", domain);
	else if (r == 1)
		r = user_add_tx(st, addr, u, u->source_ip ? ip : NULL, err, errlen);
	return finish(st, r, err, errlen);
}

/* change_one - run SQL (?1 = ADDR, ?2 = ARG) that must touch exactly one
 * row, else say "no such WHAT ADDR". */
static int change_one(struct store *st, const char *sql, const char *addr, const char *arg,
		      const char *what, char *err, size_t errlen)
{
	if (begin(st, err, errlen) < 0)
		return -1;
	sqlite3_stmt *s = prepare(st, err, errlen, sql, arg ? 2 : 1, addr, arg);
	int r = s ? done(st, s, err, errlen) : -1;
	if (r == 0 && sqlite3_changes(st->db) != 1)
		r = fail(err, errlen, "no such %s %s", what, addr);
	return finish(st, r, err, errlen);
}

int store_user_del(struct store *st, const char *address, char *err, size_t errlen)
{
	char addr[ADDR_PATH_MAX];
	const char *domain;
	if (norm_account(address, addr, &domain, err, errlen) < 0)
		return -1;
	return change_one(st, "DELETE FROM users WHERE address = ?1", addr, NULL, "user", err,
			  errlen);
}

int store_user_set_password(struct store *st, const char *address, const char *hash, char *err,
			    size_t errlen)
{
	char addr[ADDR_PATH_MAX];
	const char *domain;
	if (norm_account(address, addr, &domain, err, errlen) < 0 ||
	    check_hash(hash, err, errlen) < 0)
		return -1;
	return change_one(st, "UPDATE users SET password_hash = ?2 WHERE address = ?1", addr, hash,
			  "user", err, errlen);
}

/* bind_limit - parameter I: V when BIT is in WHICH, else NULL (the
 * column keeps its value). */
static int bind_limit(sqlite3_stmt *s, int i, unsigned which, unsigned bit, uint64_t v)
{
	return which & bit ? sqlite3_bind_int64(s, i, (sqlite3_int64)v) : sqlite3_bind_null(s, i);
}

int store_user_set_limits(struct store *st, const char *address, const struct store_user *lim,
			  unsigned which, char *err, size_t errlen)
{
	char addr[ADDR_PATH_MAX], ip[64];
	const char *domain;
	int set_ip = (which & STORE_LIMIT_SOURCE_IP) && lim->source_ip;
	if (norm_account(address, addr, &domain, err, errlen) < 0 ||
	    (set_ip && norm_ip(lim->source_ip, ip, sizeof ip, err, errlen) < 0))
		return -1;
	if (lim->quota_day > INT64_MAX || lim->quota_month > INT64_MAX ||
	    lim->rate_minute > INT64_MAX)
		return fail(err, errlen, "quota too large");
	if (begin(st, err, errlen) < 0)
		return -1;
	sqlite3_stmt *s = prepare(st, err, errlen,
				  "UPDATE users SET quota_day = coalesce(?2, quota_day), "
				  "quota_month = coalesce(?3, quota_month), "
				  "rate_minute = coalesce(?4, rate_minute), source_ip = "
				  "CASE WHEN ?5 THEN ?6 ELSE source_ip END WHERE address = ?1",
				  1, addr);
	int r = s ? 0 : -1;
	if (s && (bind_limit(s, 2, which, STORE_LIMIT_QUOTA_DAY, lim->quota_day) ||
		  bind_limit(s, 3, which, STORE_LIMIT_QUOTA_MONTH, lim->quota_month) ||
		  bind_limit(s, 4, which, STORE_LIMIT_RATE_MINUTE, lim->rate_minute) ||
		  sqlite3_bind_int(s, 5, (which & STORE_LIMIT_SOURCE_IP) != 0) ||
		  (set_ip ? sqlite3_bind_text(s, 6, ip, -1, SQLITE_STATIC) :
			    sqlite3_bind_null(s, 6)))) {
		sqlite3_finalize(s);
		r = db_fail(st, err, errlen, "bind");
	} else if (s) {
		r = done(st, s, err, errlen);
	}
	if (r == 0 && sqlite3_changes(st->db) != 1)
		r = fail(err, errlen, "no such user %s", addr);
	return finish(st, r, err, errlen);
}

/* list_add - append ",ITEM" to the growing list *LIST unless it is there
 * already.  The list always starts with ',' and is searched for ",ITEM,"
 * against a copy ending in ',', so a@x never matches inside ba@x. */
static int list_add(char **list, size_t *used, size_t *cap, const char *item)
{
	size_t n = strlen(item);
	if (*used + n + 3 > *cap) {
		size_t ncap = (*cap + n + 3) * 2;
		char *p = realloc(*list, ncap);
		if (!p)
			return -1;
		*list = p;
		*cap = ncap;
	}
	char *l = *list;
	l[*used] = ',';
	l[*used + 1] = '\0';
	char needle[ADDR_PATH_MAX + 2];
	snprintf(needle, sizeof needle, ",%s,", item);
	if (!strstr(l, needle)) {
		memcpy(l + *used + 1, item, n + 1);
		*used += n + 1;
	}
	l[*used] = '\0'; /* drops the trailing ',' when ITEM was there */
	return 0;
}

/* trim - TOKEN without the blanks around it (in place). */
static char *trim(char *t)
{
	t += strspn(t, " \t");
	size_t len = strlen(t);
	while (len && (t[len - 1] == ' ' || t[len - 1] == '\t'))
		t[--len] = '\0';
	return t;
}

/* norm_targets - TARGETS ("a@x, b@y") checked, lower-cased, without
 * duplicates, into a malloc'ed "a@x,b@y" in *OUT.  SELF may not appear:
 * an alias naming itself could only loop. */
static int norm_targets(const char *targets, const char *self, char **out, char *err,
			size_t errlen)
{
	size_t used = 0, cap = 0;
	char *copy = strdup(targets), *list = NULL, *save = NULL;
	int r = copy ? 0 : fail(err, errlen, "out of memory");
	for (char *t = copy ? strtok_r(copy, ",", &save) : NULL; t && r == 0;
	     t = strtok_r(NULL, ",", &save)) {
		char one[ADDR_PATH_MAX];
		const char *domain;
		t = trim(t);
		if (!t[0])
			continue;
		if (norm_target(t, one, &domain, err, errlen) < 0)
			r = -1;
		else if (strcmp(one, self) == 0)
			r = fail(err, errlen, "alias %s cannot expand to itself", self);
		else if (list_add(&list, &used, &cap, one) < 0)
			r = fail(err, errlen, "out of memory");
	}
	free(copy);
	if (r == 0 && used == 0)
		r = fail(err, errlen, "alias %s needs at least one target", self);
	if (r < 0) {
		free(list);
		return -1;
	}
	memmove(list, list + 1, used); /* the leading ',' out, the NUL kept */
	*out = list;
	return 0;
}

int store_alias_set(struct store *st, const char *address, const char *targets, char *err,
		    size_t errlen)
{
	char addr[ADDR_PATH_MAX];
	char *list = NULL;
	if (!targets)
		return fail(err, errlen, "missing alias targets");
	if (begin(st, err, errlen) < 0)
		return -1;
	int r = hosted_account(st, address, addr, err, errlen);
	if (r == 0 && (r = user_exists(st, addr, err, errlen)) == 1)
		r = fail(err, errlen, "%s is already a user", addr);
	if (r == 0)
		r = norm_targets(targets, addr, &list, err, errlen);
	if (r == 0) {
		sqlite3_stmt *s = prepare(st, err, errlen,
					  "INSERT INTO aliases (address, domain, targets) "
					  "VALUES (?1, ?2, ?3) ON CONFLICT (address) "
					  "DO UPDATE SET targets = excluded.targets",
					  3, addr, strrchr(addr, '@') + 1, list);
		r = s ? done(st, s, err, errlen) : -1;
	}
	free(list);
	return finish(st, r, err, errlen);
}

int store_alias_del(struct store *st, const char *address, char *err, size_t errlen)
{
	char addr[ADDR_PATH_MAX];
	const char *domain;
	if (norm_account(address, addr, &domain, err, errlen) < 0)
		return -1;
	return change_one(st, "DELETE FROM aliases WHERE address = ?1", addr, NULL, "alias", err,
			  errlen);
}

/* text - a column as a C string ("" for NULL). */
static const char *text(sqlite3_stmt *s, int col)
{
	const unsigned char *t = sqlite3_column_text(s, col);
	return t ? (const char *)t : "";
}

/* walk - step through SQL's rows, calling ROW for each until it returns
 * non-zero.  Strings handed to callbacks live until the next step. */
static int walk(struct store *st, const char *sql, int (*row)(sqlite3_stmt *, void *),
		void *arg, char *err, size_t errlen)
{
	sqlite3_stmt *s = prepare(st, err, errlen, sql, 0);
	if (!s)
		return -1;
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		if (row(s, arg))
			break;
	sqlite3_finalize(s);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : db_fail(st, err, errlen, "read");
}

/* The caller's callback and context, for the row functions of walk(). */
struct each {
	store_domain_cb domain;
	store_user_cb user;
	store_alias_cb alias;
	void *ctx;
};

static int domain_row(sqlite3_stmt *s, void *arg)
{
	struct each *e = arg;
	return e->domain(e->ctx, text(s, 0));
}

static int user_row(sqlite3_stmt *s, void *arg)
{
	struct each *e = arg;
	/* The strings are sqlite's; the callback receives them const. */
	struct store_user u = {
		.address = (char *)text(s, 0),
		.password_hash = (char *)text(s, 1),
		.quota_day = (uint64_t)sqlite3_column_int64(s, 2),
		.quota_month = (uint64_t)sqlite3_column_int64(s, 3),
		.source_ip = sqlite3_column_type(s, 4) == SQLITE_NULL ? NULL : (char *)text(s, 4),
		.rate_minute = (uint64_t)sqlite3_column_int64(s, 5),
	};
	return e->user(e->ctx, &u);
}

static int alias_row(sqlite3_stmt *s, void *arg)
{
	struct each *e = arg;
	return e->alias(e->ctx, text(s, 0), text(s, 1));
}

int store_domain_each(struct store *st, store_domain_cb cb, void *ctx, char *err, size_t errlen)
{
	struct each e = { .domain = cb, .ctx = ctx };
	return walk(st, "SELECT name FROM domains ORDER BY name", domain_row, &e, err, errlen);
}

int store_user_each(struct store *st, store_user_cb cb, void *ctx, char *err, size_t errlen)
{
	struct each e = { .user = cb, .ctx = ctx };
	return walk(st,
		    "SELECT address, password_hash, quota_day, quota_month, source_ip, "
		    "rate_minute FROM users ORDER BY address",
		    user_row, &e, err, errlen);
}

int store_alias_each(struct store *st, store_alias_cb cb, void *ctx, char *err, size_t errlen)
{
	struct each e = { .alias = cb, .ctx = ctx };
	return walk(st, "SELECT address, targets FROM aliases ORDER BY address", alias_row, &e,
		    err, errlen);
}

int store_version(struct store *st, int64_t *version, char *err, size_t errlen)
{
	int r = query_int(st, "SELECT value FROM meta WHERE name = 'accounts_version'", NULL,
			  version, err, errlen);
	if (r == 0)
		return fail(err, errlen, "database: no accounts version");
	return r < 0 ? -1 : 0;
}
