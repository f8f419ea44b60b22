/* test_apikeys.c - API keys: created once and stored only as a hash, user
 * and admin keys, revocation, the daemon's snapshot, a user's keys going
 * with the user, and `ternctl apikey` with its exit codes. */
#include <ftw.h>
#include <pwd.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "core/config.h"
#include "store/apikey_cli.h"
#include "store/apikeys.h"
#include "store/store.h"

#define HASH "$argon2id$v=19$m=65536,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g"

static char dir[64], db[128];
static char err[256];

/* fresh - a new database with example.org, bob@ and carol@. */
static void fresh(void)
{
	static int n;
	snprintf(db, sizeof db, "%s/t%d.db", dir, ++n);
	struct store *st = store_open(db, err, sizeof err);
	CHECK(st != NULL);
	if (!st)
		return;
	CHECK(store_domain_add(st, "example.org", err, sizeof err) == 0);
	struct store_user u = { .address = "bob@example.org", .password_hash = HASH };
	CHECK(store_user_add(st, &u, err, sizeof err) == 0);
	u.address = "carol@example.org";
	CHECK(store_user_add(st, &u, err, sizeof err) == 0);
	store_close(&st);
}

/* raw_count - the first column of SQL's first row (?1 = ARG). */
static long long raw_count(const char *sql, const char *arg)
{
	sqlite3 *h;
	sqlite3_stmt *s;
	long long v = -1;
	if (sqlite3_open(db, &h) == SQLITE_OK && sqlite3_prepare_v2(h, sql, -1, &s, NULL) == 0) {
		if (arg)
			sqlite3_bind_text(s, 1, arg, -1, SQLITE_STATIC);
		if (sqlite3_step(s) == SQLITE_ROW)
			v = sqlite3_column_int64(s, 0);
		sqlite3_finalize(s);
	}
	sqlite3_close(h);
	return v;
}

struct listing {
	char text[2048];
	int n;
};

static int collect(void *ctx, const struct apikey_info *k)
{
	struct listing *l = ctx;
	size_t used = strlen(l->text);
	snprintf(l->text + used, sizeof l->text - used, "%lld:%s:%s:%s\n", (long long)k->id,
		 k->user ? k->user : "admin", k->shown, k->revoked ? "revoked" : "active");
	l->n++;
	return 0;
}

static void test_create_returns_key_and_stores_only_its_hash(void)
{
	fresh();
	char key[APIKEY_LEN + 1];
	int64_t id = 0;
	CHECK(apikey_create(db, "Bob@Example.org", key, &id, err, sizeof err) == 0);
	CHECK(id > 0);
	CHECK(strlen(key) == APIKEY_LEN);
	CHECK(strncmp(key, "tern_", 5) == 0);
	for (const char *p = key + 5; *p; p++)
		CHECK((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		      (*p >= '0' && *p <= '9') || *p == '-' || *p == '_');
	/* The database holds the SHA-256, never the key. */
	unsigned char digest[32];
	char hex[65];
	crypto_hash_sha256(digest, (const unsigned char *)key, strlen(key));
	sodium_bin2hex(hex, sizeof hex, digest, sizeof digest);
	CHECK(raw_count("SELECT count(*) FROM api_keys WHERE hash = ?1", hex) == 1);
	CHECK(raw_count("SELECT count(*) FROM api_keys WHERE hash = ?1 OR prefix = ?1 OR "
			"instr(hash, ?1) OR instr(prefix, ?1)",
			key) == 0);
	CHECK(raw_count("SELECT count(*) FROM api_keys WHERE user = 'bob@example.org'", NULL) ==
	      1);
	struct listing l = { "", 0 };
	CHECK(apikey_each(db, collect, &l, err, sizeof err) == 0);
	char want[128];
	snprintf(want, sizeof want, "%lld:bob@example.org:%.12s:active\n", (long long)id, key);
	CHECK_STR(l.text, want);
	/* Two keys are never the same. */
	char key2[APIKEY_LEN + 1];
	int64_t id2;
	CHECK(apikey_create(db, "bob@example.org", key2, &id2, err, sizeof err) == 0);
	CHECK(id2 > id);
	CHECK(strcmp(key, key2) != 0);
}

static void test_create_refuses_unknown_or_invalid_users(void)
{
	fresh();
	char key[APIKEY_LEN + 1];
	int64_t id;
	CHECK(apikey_create(db, "nobody@example.org", key, &id, err, sizeof err) < 0);
	CHECK(strstr(err, "no such user nobody@example.org") != NULL);
	CHECK(apikey_create(db, "not an address", key, &id, err, sizeof err) < 0);
	CHECK(strstr(err, "invalid address") != NULL);
	CHECK(raw_count("SELECT count(*) FROM api_keys", NULL) == 0);
}

static void test_snapshot_finds_active_keys_only(void)
{
	fresh();
	char user_key[APIKEY_LEN + 1], admin_key[APIKEY_LEN + 1];
	int64_t uid, aid;
	CHECK(apikey_create(db, "carol@example.org", user_key, &uid, err, sizeof err) == 0);
	CHECK(apikey_create(db, NULL, admin_key, &aid, err, sizeof err) == 0);
	struct apikey_set *set = apikey_set_load(db, err, sizeof err);
	CHECK(set != NULL);
	CHECK(apikey_set_count(set) == 2);
	const struct apikey_entry *e = apikey_set_find(set, user_key, strlen(user_key));
	CHECK(e != NULL);
	if (e) {
		CHECK(e->id == uid);
		CHECK_STR(e->user, "carol@example.org");
	}
	e = apikey_set_find(set, admin_key, strlen(admin_key));
	CHECK(e != NULL && e->id == aid && e->user == NULL);
	/* One character off, too short, too long, empty: unknown. */
	char wrong[APIKEY_LEN + 2];
	memcpy(wrong, user_key, sizeof user_key);
	wrong[20] = wrong[20] == 'A' ? 'B' : 'A';
	CHECK(apikey_set_find(set, wrong, strlen(wrong)) == NULL);
	CHECK(apikey_set_find(set, user_key, APIKEY_LEN - 1) == NULL);
	memcpy(wrong, user_key, sizeof user_key);
	strcat(wrong, "x");
	CHECK(apikey_set_find(set, wrong, strlen(wrong)) == NULL);
	CHECK(apikey_set_find(set, "", 0) == NULL);
	apikey_set_free(&set);
	CHECK(set == NULL);

	/* Revoked: gone from the next snapshot, still listed. */
	CHECK(apikey_revoke(db, uid, err, sizeof err) == 0);
	set = apikey_set_load(db, err, sizeof err);
	CHECK(set && apikey_set_count(set) == 1);
	CHECK(apikey_set_find(set, user_key, strlen(user_key)) == NULL);
	CHECK(apikey_set_find(set, admin_key, strlen(admin_key)) != NULL);
	apikey_set_free(&set);
	struct listing l = { "", 0 };
	CHECK(apikey_each(db, collect, &l, err, sizeof err) == 0);
	CHECK(l.n == 2);
	CHECK(strstr(l.text, ":carol@example.org:") && strstr(l.text, ":revoked\n"));
	CHECK(strstr(l.text, ":admin:") != NULL);
}

static void test_revoke_errors(void)
{
	fresh();
	char key[APIKEY_LEN + 1];
	int64_t id;
	CHECK(apikey_create(db, NULL, key, &id, err, sizeof err) == 0);
	CHECK(apikey_revoke(db, id + 100, err, sizeof err) < 0);
	CHECK(strstr(err, "no such key") != NULL);
	CHECK(apikey_revoke(db, id, err, sizeof err) == 0);
	CHECK(apikey_revoke(db, id, err, sizeof err) < 0);
	CHECK(strstr(err, "already revoked") != NULL);
}

static void test_deleting_a_user_deletes_its_keys(void)
{
	fresh();
	char bob[APIKEY_LEN + 1], carol[APIKEY_LEN + 1];
	int64_t id;
	CHECK(apikey_create(db, "bob@example.org", bob, &id, err, sizeof err) == 0);
	CHECK(apikey_create(db, "carol@example.org", carol, &id, err, sizeof err) == 0);
	struct store *st = store_open(db, err, sizeof err);
	CHECK(st && store_user_del(st, "bob@example.org", err, sizeof err) == 0);
	store_close(&st);
	struct apikey_set *set = apikey_set_load(db, err, sizeof err);
	CHECK(set != NULL);
	CHECK(apikey_set_find(set, bob, strlen(bob)) == NULL);
	CHECK(apikey_set_find(set, carol, strlen(carol)) != NULL);
	apikey_set_free(&set);
	CHECK(raw_count("SELECT count(*) FROM api_keys", NULL) == 1);
}

/* A snapshot names the accounts version it was read with, so the daemon
 * can tell that a newer directory needs newer keys. */
static void test_snapshot_knows_its_accounts_version(void)
{
	fresh();
	struct store *st = store_open(db, err, sizeof err);
	int64_t v = -1;
	CHECK(st && store_version(st, &v, err, sizeof err) == 0);
	struct apikey_set *set = apikey_set_load(db, err, sizeof err);
	CHECK(set && apikey_set_accounts_version(set) == v);
	apikey_set_free(&set);
	struct store_user u = { .address = "dave@example.org", .password_hash = HASH };
	CHECK(store_user_add(st, &u, err, sizeof err) == 0);
	store_close(&st);
	set = apikey_set_load(db, err, sizeof err);
	CHECK(set && apikey_set_accounts_version(set) == v + 1);
	apikey_set_free(&set);
	/* Keys are not accounts: making one leaves the version alone. */
	char key[APIKEY_LEN + 1];
	int64_t id;
	CHECK(apikey_create(db, NULL, key, &id, err, sizeof err) == 0);
	set = apikey_set_load(db, err, sizeof err);
	CHECK(set && apikey_set_accounts_version(set) == v + 1);
	apikey_set_free(&set);
	CHECK(apikey_set_accounts_version(NULL) == -1);
}

static void test_empty_store_gives_empty_snapshot(void)
{
	fresh();
	struct apikey_set *set = apikey_set_load(db, err, sizeof err);
	CHECK(set != NULL && apikey_set_count(set) == 0);
	CHECK(apikey_set_find(set, "tern_", 5) == NULL);
	apikey_set_free(&set);
	set = apikey_set_load("/nonexistent/dir/x.db", err, sizeof err);
	CHECK(set == NULL);
	CHECK(err[0] != '\0');
}

static int remove_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(path);
}

/* ---- ternctl apikey ---- */

static char cli_err[1024]; /* the last run's stderr */

/* cli - apikey_command in a child (it may drop privileges) with ARGS;
 * its stdout into OUT, its stderr into cli_err.  Returns the exit status. */
static int cli(char *out, size_t outlen, int argc, char **argv)
{
	int fds[2];
	char errpath[128];
	snprintf(errpath, sizeof errpath, "%s/stderr", dir);
	FILE *ef = fopen(errpath, "w+");
	if (!ef || pipe(fds) < 0)
		return -1;
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		close(fds[0]);
		dup2(fds[1], 1);
		dup2(fileno(ef), 2);
		struct config cfg;
		if (config_defaults(&cfg) < 0)
			_exit(99);
		char store[160];
		snprintf(store, sizeof store, "sqlite:%s", db);
		free(cfg.data_dir);
		free(cfg.store);
		free(cfg.user);
		cfg.data_dir = strdup(dir);
		cfg.store = strdup(store);
		cfg.user = strdup(getpwuid(geteuid())->pw_name);
		int rc = apikey_command(&cfg, argc, argv);
		config_free(&cfg);
		fflush(stdout);
		_exit(rc);
	}
	close(fds[1]);
	size_t n = 0;
	ssize_t r;
	while (n + 1 < outlen && (r = read(fds[0], out + n, outlen - 1 - n)) > 0)
		n += (size_t)r;
	out[n] = '\0';
	close(fds[0]);
	int status;
	waitpid(pid, &status, 0);
	rewind(ef);
	size_t e = fread(cli_err, 1, sizeof cli_err - 1, ef);
	cli_err[e] = '\0';
	fclose(ef);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

#define CLI(out, ...)                                                                  \
	({                                                                             \
		char *argv_[] = { __VA_ARGS__ };                                       \
		cli(out, sizeof out, (int)(sizeof argv_ / sizeof argv_[0]), argv_);     \
	})

static void test_cli_exit_codes_and_output(void)
{
	fresh();
	char out[1024];
	CHECK(CLI(out, "apikey") == 2);
	CHECK(CLI(out, "apikey", "create") == 2);
	CHECK(CLI(out, "apikey", "create", "a@b", "c@d") == 2);
	CHECK(CLI(out, "apikey", "create", "--root") == 2);
	CHECK(strstr(cli_err, "ternctl: apikey create takes an ADDRESS or --admin\n"));
	CHECK(CLI(out, "apikey", "revoke", "abc") == 2);
	CHECK(CLI(out, "apikey", "revoke", "0") == 2);
	CHECK(CLI(out, "apikey", "list", "x") == 2);
	CHECK(CLI(out, "apikey", "frob") == 2);
	CHECK(CLI(out, "apikey", "create", "nobody@example.org") == 1);
	CHECK_STR(out, "");
	CHECK_STR(cli_err, "ternctl: no such user nobody@example.org\n");

	CHECK(CLI(out, "apikey", "create", "bob@example.org") == 0);
	CHECK(strlen(out) == APIKEY_LEN + 1 && out[APIKEY_LEN] == '\n');
	out[APIKEY_LEN] = '\0';
	char key[APIKEY_LEN + 1];
	memcpy(key, out, sizeof key);
	CHECK(CLI(out, "apikey", "create", "--admin") == 0);
	CHECK(strncmp(out, "tern_", 5) == 0);

	CHECK(CLI(out, "apikey", "list") == 0);
	char want[160];
	snprintf(want, sizeof want, "1 bob@example.org %.12s... created=", key);
	CHECK(strncmp(out, want, strlen(want)) == 0);
	CHECK(strstr(out, "\n2 admin tern_") != NULL);
	CHECK(strstr(out, "revoked=") == NULL);

	CHECK(CLI(out, "apikey", "revoke", "1") == 0);
	CHECK(CLI(out, "apikey", "revoke", "1") == 1);
	CHECK_STR(cli_err, "ternctl: key 1 is already revoked\n");
	CHECK(CLI(out, "apikey", "revoke", "99") == 1);
	CHECK(CLI(out, "apikey", "list") == 0);
	CHECK(strstr(out, "1 bob@example.org") && strstr(out, " revoked=20"));
	struct apikey_set *set = apikey_set_load(db, err, sizeof err);
	CHECK(set && apikey_set_count(set) == 1);
	CHECK(apikey_set_find(set, key, strlen(key)) == NULL);
	apikey_set_free(&set);
}

int main(void)
{
	snprintf(dir, sizeof dir, "/tmp/test_apikeys.XXXXXX");
	if (!mkdtemp(dir))
		return 1;
	RUN(test_create_returns_key_and_stores_only_its_hash);
	RUN(test_create_refuses_unknown_or_invalid_users);
	RUN(test_snapshot_finds_active_keys_only);
	RUN(test_revoke_errors);
	RUN(test_deleting_a_user_deletes_its_keys);
	RUN(test_snapshot_knows_its_accounts_version);
	RUN(test_empty_store_gives_empty_snapshot);
	RUN(test_cli_exit_codes_and_output);
	nftw(dir, remove_one, 8, FTW_DEPTH | FTW_PHYS);
	return check_summary();
}
