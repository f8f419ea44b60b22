/* test_store.c - the SQLite accounts store: schema migrations, domains,
 * users and aliases, the errors an administrator reads, the version. */
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ftw.h>
#include <unistd.h>

#include "check.h"
#include "store/store.h"

#define HASH "$argon2id$v=19$m=65536,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g"

static char dir[64], db[128];
static char err[256];

/* fresh - a new empty database path for each test. */
static struct store *fresh(void)
{
	static int n;
	snprintf(db, sizeof db, "%s/t%d.db", dir, ++n);
	struct store *st = store_open(db, err, sizeof err);
	if (!st)
		fprintf(stderr, "store_open: %s\n", err);
	return st;
}

static int remove_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int64_t version(struct store *st)
{
	int64_t v = -1;
	CHECK(store_version(st, &v, err, sizeof err) == 0);
	return v;
}

/* raw_int - one integer from the database, read without the store. */
static long long raw_int(const char *sql)
{
	sqlite3 *h;
	sqlite3_stmt *s;
	long long v = -1;
	if (sqlite3_open(db, &h) == SQLITE_OK && sqlite3_prepare_v2(h, sql, -1, &s, NULL) == 0) {
		if (sqlite3_step(s) == SQLITE_ROW)
			v = sqlite3_column_int64(s, 0);
		sqlite3_finalize(s);
	}
	sqlite3_close(h);
	return v;
}

static const char *raw_text(const char *sql, char *out, size_t outlen)
{
	sqlite3 *h;
	sqlite3_stmt *s;
	out[0] = '\0';
	if (sqlite3_open(db, &h) == SQLITE_OK && sqlite3_prepare_v2(h, sql, -1, &s, NULL) == 0) {
		if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_text(s, 0))
			snprintf(out, outlen, "%s", (const char *)sqlite3_column_text(s, 0));
		sqlite3_finalize(s);
	}
	sqlite3_close(h);
	return out;
}

static int add_user(struct store *st, const char *address)
{
	struct store_user u = { .address = (char *)address, .password_hash = HASH };
	return store_user_add(st, &u, err, sizeof err);
}

/* A list collected by the each callbacks: "a;b;c;" */
struct collect {
	char text[1024];
	int stop_after;
	int calls;
};

static void append(struct collect *c, const char *s)
{
	size_t n = strlen(c->text);
	snprintf(c->text + n, sizeof c->text - n, "%s;", s);
}

static int collect_domain(void *ctx, const char *domain)
{
	struct collect *c = ctx;
	append(c, domain);
	return ++c->calls == c->stop_after;
}

static int collect_user(void *ctx, const struct store_user *u)
{
	struct collect *c = ctx;
	char line[256];
	snprintf(line, sizeof line, "%s %llu %llu %s %s", u->address,
		 (unsigned long long)u->quota_day, (unsigned long long)u->quota_month,
		 u->source_ip ? u->source_ip : "-", u->password_hash);
	append(c, line);
	return ++c->calls == c->stop_after;
}

/* collect_limits - "address day month rate ip" per user. */
static int collect_limits(void *ctx, const struct store_user *u)
{
	struct collect *c = ctx;
	char line[256];
	snprintf(line, sizeof line, "%s %llu %llu %llu %s", u->address,
		 (unsigned long long)u->quota_day, (unsigned long long)u->quota_month,
		 (unsigned long long)u->rate_minute, u->source_ip ? u->source_ip : "-");
	append(c, line);
	return ++c->calls == c->stop_after;
}

static int collect_alias(void *ctx, const char *address, const char *targets)
{
	struct collect *c = ctx;
	char line[512];
	snprintf(line, sizeof line, "%s=%s", address, targets);
	append(c, line);
	return ++c->calls == c->stop_after;
}

static void test_open_creates_schema_in_wal_mode(void)
{
	struct store *st = fresh();
	CHECK(st != NULL);
	CHECK(version(st) == 0);
	CHECK(raw_int("SELECT version FROM schema_version") == 3);
	CHECK(raw_int("SELECT count(*) FROM schema_version") == 1);
	char mode[16];
	CHECK_STR(raw_text("PRAGMA journal_mode", mode, sizeof mode), "wal");
	store_close(&st);
	CHECK(st == NULL);
	store_close(&st); /* a second close is harmless */
}

static void test_reopen_keeps_data_and_schema(void)
{
	struct store *st = fresh();
	CHECK(store_domain_add(st, "example.org", err, sizeof err) == 0);
	CHECK(add_user(st, "bob@example.org") == 0);
	int64_t v = version(st);
	store_close(&st);
	for (int i = 0; i < 3; i++) {
		st = store_open(db, err, sizeof err);
		CHECK(st != NULL);
		if (!st)
			return;
		CHECK(version(st) == v);
		struct collect c = { .text = "" };
		CHECK(store_user_each(st, collect_user, &c, err, sizeof err) == 0);
		CHECK(c.calls == 1);
		store_close(&st);
	}
	CHECK(raw_int("SELECT version FROM schema_version") == 3);
	CHECK(raw_int("SELECT count(*) FROM schema_version") == 1);
}

static void test_newer_schema_refused(void)
{
	struct store *st = fresh();
	store_close(&st);
	sqlite3 *h;
	CHECK(sqlite3_open(db, &h) == SQLITE_OK);
	CHECK(sqlite3_exec(h, "UPDATE schema_version SET version = 99", NULL, NULL, NULL) == 0);
	sqlite3_close(h);
	st = store_open(db, err, sizeof err);
	CHECK(st == NULL);
	CHECK(strstr(err, "newer") != NULL);
	store_close(&st);
}

static void test_open_bad_path_fails(void)
{
	struct store *st = store_open("/nonexistent-dir/x/tern.db", err, sizeof err);
	CHECK(st == NULL);
	CHECK(strstr(err, "/nonexistent-dir/x/tern.db") != NULL);
}

static void test_domains(void)
{
	struct store *st = fresh();
	CHECK(store_domain_add(st, "Example.ORG", err, sizeof err) == 0);
	CHECK(store_domain_add(st, "example.org", err, sizeof err) == -1);
	CHECK_STR(err, "domain example.org already exists");
	CHECK(store_domain_add(st, "b.example", err, sizeof err) == 0);
	CHECK(store_domain_add(st, "not a domain", err, sizeof err) == -1);
	CHECK_STR(err, "invalid domain name: not a domain");
	CHECK(store_domain_add(st, "", err, sizeof err) == -1);
	CHECK(store_domain_add(st, "trailing.dot.", err, sizeof err) == -1);

	struct collect c = { .text = "" };
	CHECK(store_domain_each(st, collect_domain, &c, err, sizeof err) == 0);
	CHECK_STR(c.text, "b.example;example.org;");

	CHECK(store_domain_del(st, "nowhere.example", err, sizeof err) == -1);
	CHECK_STR(err, "domain nowhere.example is not hosted");
	CHECK(store_domain_del(st, "B.Example", err, sizeof err) == 0);
	c = (struct collect){ .text = "" };
	CHECK(store_domain_each(st, collect_domain, &c, err, sizeof err) == 0);
	CHECK_STR(c.text, "example.org;");
	store_close(&st);
}

static void test_domain_with_accounts_not_deleted(void)
{
	struct store *st = fresh();
	CHECK(store_domain_add(st, "example.org", err, sizeof err) == 0);
	CHECK(add_user(st, "bob@example.org") == 0);
	CHECK(store_alias_set(st, "sales@example.org", "bob@example.org", err, sizeof err) == 0);
	CHECK(store_alias_set(st, "info@example.org", "bob@example.org", err, sizeof err) == 0);
	CHECK(store_domain_del(st, "example.org", err, sizeof err) == -1);
	CHECK_STR(err, "domain example.org still has 1 user and 2 aliases; delete them first");
	CHECK(store_user_del(st, "bob@example.org", err, sizeof err) == 0);
	CHECK(store_alias_del(st, "sales@example.org", err, sizeof err) == 0);
	CHECK(store_domain_del(st, "example.org", err, sizeof err) == -1);
	CHECK_STR(err, "domain example.org still has 0 users and 1 alias; delete them first");
	CHECK(store_alias_del(st, "info@example.org", err, sizeof err) == 0);
	CHECK(store_domain_del(st, "example.org", err, sizeof err) == 0);
	store_close(&st);
}

static void test_users(void)
{
	struct store *st = fresh();
	CHECK(add_user(st, "bob@example.org") == -1);
	CHECK_STR(err, "domain example.org is not hosted");
	CHECK(store_domain_add(st, "example.org", err, sizeof err) == 0);
	struct store_user u = { .address = "Bob@Example.org", .password_hash = HASH,
				.quota_day = 100, .quota_month = 2000, .source_ip = "192.0.2.7" };
	CHECK(store_user_add(st, &u, err, sizeof err) == 0);
	CHECK(add_user(st, "BOB@example.org") == -1);
	CHECK_STR(err, "user bob@example.org already exists");
	u = (struct store_user){ .address = "alice@example.org", .password_hash = HASH,
				 .source_ip = "2001:DB8:0:0::1" };
	CHECK(store_user_add(st, &u, err, sizeof err) == 0);

	struct collect c = { .text = "" };
	CHECK(store_user_each(st, collect_user, &c, err, sizeof err) == 0);
	CHECK_STR(c.text, "alice@example.org 0 0 2001:db8::1 " HASH ";"
			  "bob@example.org 100 2000 192.0.2.7 " HASH ";");
	c = (struct collect){ .text = "", .stop_after = 1 };
	CHECK(store_user_each(st, collect_user, &c, err, sizeof err) == 0);
	CHECK(c.calls == 1);

	CHECK(store_user_set_password(st, "BOB@example.org", "$new", err, sizeof err) == 0);
	char h[64];
	CHECK_STR(raw_text("SELECT password_hash FROM users WHERE address='bob@example.org'", h,
			   sizeof h),
		  "$new");
	CHECK(store_user_set_password(st, "carol@example.org", "$x", err, sizeof err) == -1);
	CHECK_STR(err, "no such user carol@example.org");
	CHECK(store_user_del(st, "carol@example.org", err, sizeof err) == -1);
	CHECK_STR(err, "no such user carol@example.org");
	CHECK(store_user_del(st, "Alice@Example.org", err, sizeof err) == 0);
	CHECK(raw_int("SELECT count(*) FROM users") == 1);
	store_close(&st);
}

static void test_user_input_checked(void)
{
	struct store *st = fresh();
	CHECK(store_domain_add(st, "example.org", err, sizeof err) == 0);
	const char *bad[] = { "bob", "bob@", "@example.org", "bob@@example.org",
			      "\"b o b\"@example.org", "a/b@example.org", "bob@[192.0.2.1]",
			      "bob@example.org extra", "" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		err[0] = '\0';
		CHECK(add_user(st, bad[i]) == -1);
		CHECK(strncmp(err, "invalid address", 15) == 0);
	}
	struct store_user u = { .address = "bob@example.org", .password_hash = HASH,
				.source_ip = "192.0.2.300" };
	CHECK(store_user_add(st, &u, err, sizeof err) == -1);
	CHECK_STR(err, "invalid source IP address: 192.0.2.300");
	u.source_ip = NULL;
	u.password_hash = "plain text";
	CHECK(store_user_add(st, &u, err, sizeof err) == -1);
	CHECK_STR(err, "invalid password hash");
	u.password_hash = NULL;
	CHECK(store_user_add(st, &u, err, sizeof err) == -1);
	u.password_hash = HASH;
	u.quota_day = UINT64_MAX;
	CHECK(store_user_add(st, &u, err, sizeof err) == -1);
	CHECK_STR(err, "quota too large");
	CHECK(raw_int("SELECT count(*) FROM users") == 0);
	store_close(&st);
}

static void test_aliases(void)
{
	struct store *st = fresh();
	CHECK(store_alias_set(st, "sales@example.org", "bob@example.org", err, sizeof err) == -1);
	CHECK_STR(err, "domain example.org is not hosted");
	CHECK(store_domain_add(st, "example.org", err, sizeof err) == 0);
	CHECK(store_alias_set(st, "Sales@Example.org",
			      " Bob@Example.org, carol@remote.example ,bob@example.org,,", err,
			      sizeof err) == 0);
	CHECK(store_alias_set(st, "info@example.org", "ann@x.example,nn@x.example", err,
			      sizeof err) == 0);
	struct collect c = { .text = "" };
	CHECK(store_alias_each(st, collect_alias, &c, err, sizeof err) == 0);
	CHECK_STR(c.text, "info@example.org=ann@x.example,nn@x.example;"
			  "sales@example.org=bob@example.org,carol@remote.example;");

	CHECK(store_alias_set(st, "q@example.org", "\"a b\"@x.example,\"ab\"@x.example", err,
			      sizeof err) == 0);
	char q[128];
	CHECK_STR(raw_text("SELECT targets FROM aliases WHERE address='q@example.org'", q,
			   sizeof q),
		  "\"a b\"@x.example,ab@x.example");
	CHECK(store_alias_del(st, "q@example.org", err, sizeof err) == 0);

	/* set replaces */
	CHECK(store_alias_set(st, "sales@example.org", "dave@example.org", err, sizeof err) == 0);
	c = (struct collect){ .text = "", .stop_after = 1 };
	CHECK(store_alias_each(st, collect_alias, &c, err, sizeof err) == 0);
	CHECK(c.calls == 1);
	char t[128];
	CHECK_STR(raw_text("SELECT targets FROM aliases WHERE address='sales@example.org'", t,
			   sizeof t),
		  "dave@example.org");

	CHECK(store_alias_set(st, "loop@example.org", "x@y.example, LOOP@example.org", err,
			      sizeof err) == -1);
	CHECK_STR(err, "alias loop@example.org cannot expand to itself");
	CHECK(store_alias_set(st, "none@example.org", " , ", err, sizeof err) == -1);
	CHECK_STR(err, "alias none@example.org needs at least one target");
	CHECK(store_alias_set(st, "bad@example.org", "ok@x.example,not an address", err,
			      sizeof err) == -1);
	CHECK(strncmp(err, "invalid address not an address", 30) == 0);

	CHECK(store_alias_del(st, "nobody@example.org", err, sizeof err) == -1);
	CHECK_STR(err, "no such alias nobody@example.org");
	CHECK(store_alias_del(st, "INFO@example.org", err, sizeof err) == 0);
	CHECK(raw_int("SELECT count(*) FROM aliases") == 1);
	store_close(&st);
}

static void test_user_and_alias_cannot_share_an_address(void)
{
	struct store *st = fresh();
	CHECK(store_domain_add(st, "example.org", err, sizeof err) == 0);
	CHECK(add_user(st, "bob@example.org") == 0);
	CHECK(store_alias_set(st, "Bob@example.org", "x@y.example", err, sizeof err) == -1);
	CHECK_STR(err, "bob@example.org is already a user");
	CHECK(store_alias_set(st, "sales@example.org", "bob@example.org", err, sizeof err) == 0);
	CHECK(add_user(st, "sales@example.org") == -1);
	CHECK_STR(err, "sales@example.org is already an alias");
	store_close(&st);
}

static void test_version_bumps_on_every_change_only(void)
{
	struct store *st = fresh();
	int64_t v = version(st);
	CHECK(store_domain_add(st, "example.org", err, sizeof err) == 0);
	CHECK(version(st) == ++v);
	CHECK(store_domain_add(st, "example.org", err, sizeof err) == -1);
	CHECK(version(st) == v); /* a refused change changes nothing */
	CHECK(add_user(st, "bob@example.org") == 0);
	CHECK(version(st) == ++v);
	CHECK(store_user_set_password(st, "bob@example.org", HASH, err, sizeof err) == 0);
	CHECK(version(st) == ++v);
	CHECK(store_alias_set(st, "a@example.org", "bob@example.org", err, sizeof err) == 0);
	CHECK(version(st) == ++v);
	CHECK(store_alias_set(st, "a@example.org", "x@y.example", err, sizeof err) == 0);
	CHECK(version(st) == ++v);
	struct collect c = { .text = "" };
	CHECK(store_user_each(st, collect_user, &c, err, sizeof err) == 0);
	CHECK(version(st) == v); /* reading is not a change */
	CHECK(store_alias_del(st, "a@example.org", err, sizeof err) == 0);
	CHECK(version(st) == ++v);
	CHECK(store_alias_del(st, "a@example.org", err, sizeof err) == -1);
	CHECK(version(st) == v);
	CHECK(store_user_del(st, "bob@example.org", err, sizeof err) == 0);
	CHECK(version(st) == ++v);
	CHECK(store_domain_del(st, "example.org", err, sizeof err) == 0);
	CHECK(version(st) == ++v);
	store_close(&st);
}

static void test_second_connection_sees_writes(void)
{
	struct store *a = fresh();
	struct store *b = store_open(db, err, sizeof err);
	CHECK(a && b);
	if (!a || !b)
		return;
	CHECK(store_domain_add(a, "example.org", err, sizeof err) == 0);
	CHECK(version(b) == 1);
	CHECK(store_domain_add(b, "example.org", err, sizeof err) == -1);
	CHECK_STR(err, "domain example.org already exists");
	CHECK(add_user(a, "bob@example.org") == 0);
	struct collect c = { .text = "" };
	CHECK(store_user_each(b, collect_user, &c, err, sizeof err) == 0);
	CHECK(c.calls == 1);
	store_close(&a);
	store_close(&b);
}

static void test_foreign_keys_enforced(void)
{
	/* The schema itself refuses a user of an unknown domain. */
	struct store *st = fresh();
	CHECK(store_domain_add(st, "example.org", err, sizeof err) == 0);
	CHECK(add_user(st, "bob@example.org") == 0);
	store_close(&st);
	sqlite3 *h;
	CHECK(sqlite3_open(db, &h) == SQLITE_OK);
	sqlite3_exec(h, "PRAGMA foreign_keys = ON", NULL, NULL, NULL);
	CHECK(sqlite3_exec(h, "DELETE FROM domains", NULL, NULL, NULL) != SQLITE_OK);
	sqlite3_close(h);
	CHECK(raw_int("SELECT count(*) FROM domains") == 1);
}

static void test_user_rate_minute_stored(void)
{
	struct store *st = fresh();
	CHECK(store_domain_add(st, "example.org", err, sizeof err) == 0);
	struct store_user u = { .address = "bob@example.org", .password_hash = HASH,
				.quota_day = 5, .rate_minute = 30 };
	CHECK(store_user_add(st, &u, err, sizeof err) == 0);
	CHECK(add_user(st, "amy@example.org") == 0);
	struct collect c = { .text = "" };
	CHECK(store_user_each(st, collect_limits, &c, err, sizeof err) == 0);
	CHECK_STR(c.text, "amy@example.org 0 0 0 -;bob@example.org 5 0 30 -;");
	u.address = "big@example.org";
	u.rate_minute = (uint64_t)INT64_MAX + 1;
	CHECK(store_user_add(st, &u, err, sizeof err) == -1);
	store_close(&st);
}

static void test_migration_adds_rate_to_existing_users(void)
{
	/* A database of schema 2 with a user: made by undoing migration 3. */
	struct store *st = fresh();
	CHECK(store_domain_add(st, "example.org", err, sizeof err) == 0);
	CHECK(add_user(st, "bob@example.org") == 0);
	store_close(&st);
	sqlite3 *h;
	CHECK(sqlite3_open(db, &h) == SQLITE_OK);
	CHECK(sqlite3_exec(h,
			   "DROP TABLE events; DROP TABLE stats_hourly; DROP TABLE messages;"
			   "DROP TABLE suppressions; DROP TABLE webhooks;"
			   "ALTER TABLE users DROP COLUMN rate_minute;"
			   "UPDATE schema_version SET version = 2",
			   NULL, NULL, NULL) == SQLITE_OK);
	sqlite3_close(h);
	st = store_open(db, err, sizeof err);
	CHECK(st != NULL);
	if (!st)
		return;
	CHECK(raw_int("SELECT version FROM schema_version") == 3);
	CHECK(raw_int("SELECT count(*) FROM webhooks") == 0);
	struct collect c = { .text = "" };
	CHECK(store_user_each(st, collect_limits, &c, err, sizeof err) == 0);
	CHECK_STR(c.text, "bob@example.org 0 0 0 -;");
	store_close(&st);
}

static void test_user_set_limits(void)
{
	struct store *st = fresh();
	CHECK(store_domain_add(st, "example.org", err, sizeof err) == 0);
	struct store_user u = { .address = "bob@example.org", .password_hash = HASH,
				.quota_day = 100, .quota_month = 2000, .source_ip = "192.0.2.7" };
	CHECK(store_user_add(st, &u, err, sizeof err) == 0);
	int64_t v = version(st);
	struct store_user lim = { .rate_minute = 12, .quota_day = 1 };
	/* Only the fields named change. */
	CHECK(store_user_set_limits(st, "Bob@Example.org", &lim, STORE_LIMIT_RATE_MINUTE, err,
				    sizeof err) == 0);
	CHECK(version(st) == ++v);
	struct collect c = { .text = "" };
	CHECK(store_user_each(st, collect_limits, &c, err, sizeof err) == 0);
	CHECK_STR(c.text, "bob@example.org 100 2000 12 192.0.2.7;");
	lim = (struct store_user){ .quota_day = 7, .quota_month = 70, .source_ip = "2001:DB8::9" };
	CHECK(store_user_set_limits(st, "bob@example.org", &lim,
				    STORE_LIMIT_QUOTA_DAY | STORE_LIMIT_QUOTA_MONTH |
					    STORE_LIMIT_SOURCE_IP,
				    err, sizeof err) == 0);
	c = (struct collect){ .text = "" };
	CHECK(store_user_each(st, collect_limits, &c, err, sizeof err) == 0);
	CHECK_STR(c.text, "bob@example.org 7 70 12 2001:db8::9;");
	/* A NULL source_ip with its bit removes it; 0 is unlimited. */
	lim = (struct store_user){ 0 };
	CHECK(store_user_set_limits(st, "bob@example.org", &lim,
				    STORE_LIMIT_SOURCE_IP | STORE_LIMIT_QUOTA_DAY, err,
				    sizeof err) == 0);
	c = (struct collect){ .text = "" };
	CHECK(store_user_each(st, collect_limits, &c, err, sizeof err) == 0);
	CHECK_STR(c.text, "bob@example.org 0 70 12 -;");
	v = version(st);
	/* Refused changes change nothing, the version included. */
	CHECK(store_user_set_limits(st, "carol@example.org", &lim, STORE_LIMIT_QUOTA_DAY, err,
				    sizeof err) == -1);
	CHECK_STR(err, "no such user carol@example.org");
	lim.source_ip = "not-an-ip";
	CHECK(store_user_set_limits(st, "bob@example.org", &lim, STORE_LIMIT_SOURCE_IP, err,
				    sizeof err) == -1);
	CHECK_STR(err, "invalid source IP address: not-an-ip");
	lim = (struct store_user){ .rate_minute = (uint64_t)INT64_MAX + 1 };
	CHECK(store_user_set_limits(st, "bob@example.org", &lim, STORE_LIMIT_RATE_MINUTE, err,
				    sizeof err) == -1);
	CHECK(store_user_set_limits(st, "bob", &lim, STORE_LIMIT_QUOTA_DAY, err, sizeof err) ==
	      -1);
	CHECK(version(st) == v);
	c = (struct collect){ .text = "" };
	CHECK(store_user_each(st, collect_limits, &c, err, sizeof err) == 0);
	CHECK_STR(c.text, "bob@example.org 0 70 12 -;");
	store_close(&st);
}

int main(void)
{
	snprintf(dir, sizeof dir, "/tmp/test_store.XXXXXX");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	RUN(test_open_creates_schema_in_wal_mode);
	RUN(test_reopen_keeps_data_and_schema);
	RUN(test_newer_schema_refused);
	RUN(test_open_bad_path_fails);
	RUN(test_domains);
	RUN(test_domain_with_accounts_not_deleted);
	RUN(test_users);
	RUN(test_user_input_checked);
	RUN(test_aliases);
	RUN(test_user_and_alias_cannot_share_an_address);
	RUN(test_version_bumps_on_every_change_only);
	RUN(test_second_connection_sees_writes);
	RUN(test_foreign_keys_enforced);
	RUN(test_user_rate_minute_stored);
	RUN(test_migration_adds_rate_to_existing_users);
	RUN(test_user_set_limits);
	nftw(dir, remove_one, 8, FTW_DEPTH | FTW_PHYS);
	return check_summary();
}
