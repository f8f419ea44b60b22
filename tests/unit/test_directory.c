/* test_directory.c - the in-memory accounts snapshot: what RCPT, AUTH and
 * the sender check see.  Each test writes accounts through the store, then
 * loads a snapshot of them. */
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "store/directory.h"
#include "store/store.h"

#define HASH "$argon2id$v=19$m=65536,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g"

static char dir[64], db[128];
static char err[256];
static struct store *st;

/* fresh - a new empty database for the next test, hosting example.org. */
static void fresh(void)
{
	static int n;
	store_close(&st);
	snprintf(db, sizeof db, "%s/t%d.db", dir, ++n);
	st = store_open(db, err, sizeof err);
	if (!st || store_domain_add(st, "example.org", err, sizeof err) < 0) {
		fprintf(stderr, "setup: %s\n", err);
		exit(1);
	}
}

static void user(const char *address)
{
	struct store_user u = { .address = (char *)address, .password_hash = HASH };
	if (store_user_add(st, &u, err, sizeof err) < 0)
		fprintf(stderr, "user %s: %s\n", address, err);
}

static void alias(const char *address, const char *targets)
{
	if (store_alias_set(st, address, targets, err, sizeof err) < 0)
		fprintf(stderr, "alias %s: %s\n", address, err);
}

static struct directory *load(void)
{
	struct directory *d = directory_load(db, err, sizeof err);
	if (!d)
		fprintf(stderr, "directory_load: %s\n", err);
	return d;
}

/* resolved - ADDRESS's result, and its targets as "a@x(L) b@y(R)". */
static enum dir_result resolved(const struct directory *d, const char *address, char *text,
				size_t textlen, size_t max)
{
	struct dir_target t[32];
	size_t n = 99;
	enum dir_result r = directory_resolve(d, address, t, max, &n);
	text[0] = '\0';
	for (size_t i = 0; i < n && i < 32; i++) {
		size_t used = strlen(text);
		snprintf(text + used, textlen - used, "%s%s(%c)", i ? " " : "", t[i].address,
			 t[i].local ? 'L' : 'R');
	}
	if (r != DIR_OK && n != 0)
		snprintf(text, textlen, "n=%zu on failure", n);
	return r;
}

static void test_local_domains(void)
{
	fresh();
	CHECK(store_domain_add(st, "b.example", err, sizeof err) == 0);
	struct directory *d = load();
	CHECK(directory_is_local_domain(d, "example.org"));
	CHECK(directory_is_local_domain(d, "EXAMPLE.Org"));
	CHECK(directory_is_local_domain(d, "b.example"));
	CHECK(!directory_is_local_domain(d, "c.example"));
	CHECK(!directory_is_local_domain(d, "example.org.evil"));
	CHECK(!directory_is_local_domain(d, ""));
	directory_unref(&d);
	CHECK(d == NULL);
}

static void test_users_resolve_case_insensitively(void)
{
	fresh();
	user("bob@example.org");
	struct directory *d = load();
	char t[512];
	CHECK(resolved(d, "bob@example.org", t, sizeof t, 32) == DIR_OK);
	CHECK_STR(t, "bob@example.org(L)");
	CHECK(resolved(d, "BoB@EXAMPLE.org", t, sizeof t, 32) == DIR_OK);
	CHECK_STR(t, "bob@example.org(L)");
	CHECK(resolved(d, "alice@example.org", t, sizeof t, 32) == DIR_UNKNOWN);
	CHECK_STR(t, "");
	CHECK(resolved(d, "bob@elsewhere.example", t, sizeof t, 32) == DIR_NOT_LOCAL);
	CHECK_STR(t, "");
	CHECK(resolved(d, "bob", t, sizeof t, 32) == DIR_UNKNOWN);
	directory_unref(&d);
}

static void test_plus_tag(void)
{
	fresh();
	user("bob@example.org");
	user("ann+special@example.org"); /* an exact user with a '+' wins */
	user("ann@example.org");
	alias("sales@example.org", "bob@example.org");
	struct directory *d = load();
	char t[512];
	CHECK(resolved(d, "bob+news@example.org", t, sizeof t, 32) == DIR_OK);
	CHECK_STR(t, "bob@example.org(L)");
	CHECK(resolved(d, "Bob+News+More@Example.org", t, sizeof t, 32) == DIR_OK);
	CHECK_STR(t, "bob@example.org(L)");
	CHECK(resolved(d, "ann+special@example.org", t, sizeof t, 32) == DIR_OK);
	CHECK_STR(t, "ann+special@example.org(L)");
	CHECK(resolved(d, "ann+other@example.org", t, sizeof t, 32) == DIR_OK);
	CHECK_STR(t, "ann@example.org(L)");
	CHECK(resolved(d, "sales+x@example.org", t, sizeof t, 32) == DIR_OK);
	CHECK_STR(t, "bob@example.org(L)");
	CHECK(resolved(d, "carol+x@example.org", t, sizeof t, 32) == DIR_UNKNOWN);
	CHECK(resolved(d, "+x@example.org", t, sizeof t, 32) == DIR_UNKNOWN);
	directory_unref(&d);
}

static void test_alias_expansion(void)
{
	fresh();
	user("bob@example.org");
	user("ann@example.org");
	alias("team@example.org", "bob@example.org,ann@example.org");
	alias("all@example.org", "team@example.org,Bob@example.org,friend@remote.example,"
				 "ann+x@example.org");
	alias("out@example.org", "friend@remote.example");
	alias("quoted@example.org", "\"John Doe\"@Remote.example, bob@example.org");
	struct directory *d = load();
	char t[512];
	CHECK(resolved(d, "quoted@example.org", t, sizeof t, 32) == DIR_OK);
	CHECK_STR(t, "\"john doe\"@remote.example(R) bob@example.org(L)");
	CHECK(resolved(d, "all@example.org", t, sizeof t, 32) == DIR_OK);
	CHECK_STR(t, "bob@example.org(L) ann@example.org(L) friend@remote.example(R)");
	CHECK(resolved(d, "out@example.org", t, sizeof t, 32) == DIR_OK);
	CHECK_STR(t, "friend@remote.example(R)");
	/* MAX bounds the output, not the result */
	CHECK(resolved(d, "all@example.org", t, sizeof t, 2) == DIR_OK);
	CHECK_STR(t, "bob@example.org(L) ann@example.org(L)");
	directory_unref(&d);
}

static void test_unknown_alias_targets(void)
{
	fresh();
	user("bob@example.org");
	alias("some@example.org", "gone@example.org,bob@example.org");
	alias("dead@example.org", "gone@example.org,gone2@example.org");
	alias("deeper@example.org", "dead@example.org");
	struct directory *d = load();
	char t[512];
	CHECK(resolved(d, "some@example.org", t, sizeof t, 32) == DIR_OK);
	CHECK_STR(t, "bob@example.org(L)");
	CHECK(resolved(d, "dead@example.org", t, sizeof t, 32) == DIR_UNKNOWN);
	CHECK_STR(t, "");
	CHECK(resolved(d, "deeper@example.org", t, sizeof t, 32) == DIR_UNKNOWN);
	directory_unref(&d);
}

static void test_loops(void)
{
	fresh();
	user("bob@example.org");
	alias("a@example.org", "b@example.org");
	alias("b@example.org", "bob@example.org,a@example.org");
	alias("self@example.org", "self+x@example.org"); /* a loop through the +tag */
	alias("in@example.org", "bob@example.org,a@example.org");
	/* two paths to one alias: not a loop */
	alias("d1@example.org", "d2@example.org,d3@example.org");
	alias("d2@example.org", "d4@example.org");
	alias("d3@example.org", "d4@example.org");
	alias("d4@example.org", "bob@example.org");
	struct directory *d = load();
	char t[512];
	CHECK(resolved(d, "a@example.org", t, sizeof t, 32) == DIR_LOOP);
	CHECK_STR(t, "");
	CHECK(resolved(d, "self@example.org", t, sizeof t, 32) == DIR_LOOP);
	CHECK(resolved(d, "in@example.org", t, sizeof t, 32) == DIR_LOOP);
	CHECK(resolved(d, "d1@example.org", t, sizeof t, 32) == DIR_OK);
	CHECK_STR(t, "bob@example.org(L)");
	directory_unref(&d);
}

static void test_depth_limit(void)
{
	fresh();
	user("bob@example.org");
	/* c1 -> c2 -> ... -> c11 -> bob: from cK there are 12-K aliases. */
	char a[64], b[64];
	for (int i = 1; i <= 11; i++) {
		snprintf(a, sizeof a, "c%d@example.org", i);
		snprintf(b, sizeof b, "c%d@example.org", i + 1);
		alias(a, i == 11 ? "bob@example.org" : b);
	}
	struct directory *d = load();
	char t[512];
	CHECK(resolved(d, "c2@example.org", t, sizeof t, 32) == DIR_OK); /* 10 aliases */
	CHECK_STR(t, "bob@example.org(L)");
	CHECK(resolved(d, "c1@example.org", t, sizeof t, 32) == DIR_LOOP); /* 11 */
	directory_unref(&d);
}

static void test_wide_alias_graph_is_bounded(void)
{
	/* Ten levels of aliases naming the next level twice: 2^10 paths.
	 * Each level is reached by two paths, so a walk without a bound
	 * would expand thousands of aliases; this one gives up. */
	fresh();
	user("bob@example.org");
	char a[64], b[160];
	for (int i = 1; i <= 10; i++) {
		snprintf(a, sizeof a, "w%d@example.org", i);
		if (i == 10)
			snprintf(b, sizeof b, "bob@example.org");
		else
			snprintf(b, sizeof b, "w%d@example.org,w%d+x@example.org", i + 1, i + 1);
		alias(a, b);
	}
	struct directory *d = load();
	char t[512];
	CHECK(resolved(d, "w1@example.org", t, sizeof t, 32) == DIR_LOOP);
	CHECK(resolved(d, "w4@example.org", t, sizeof t, 32) == DIR_OK); /* 2^7 paths */
	CHECK_STR(t, "bob@example.org(L)");
	directory_unref(&d);
}

static void test_directory_user(void)
{
	fresh();
	struct store_user u = { .address = "bob@example.org", .password_hash = HASH,
				.quota_day = 10, .quota_month = 300, .source_ip = "192.0.2.9" };
	CHECK(store_user_add(st, &u, err, sizeof err) == 0);
	user("ann@example.org");
	alias("sales@example.org", "bob@example.org");
	struct directory *d = load();
	const struct dir_user *du = directory_user(d, "Bob+x@Example.ORG");
	CHECK(du != NULL);
	if (du) {
		CHECK_STR(du->address, "bob@example.org");
		CHECK_STR(du->password_hash, HASH);
		CHECK(du->quota_day == 10 && du->quota_month == 300);
		CHECK_STR(du->source_ip, "192.0.2.9");
	}
	du = directory_user(d, "ann@example.org");
	CHECK(du != NULL && du->source_ip == NULL && du->quota_day == 0);
	CHECK(directory_user(d, "sales@example.org") == NULL);
	CHECK(directory_user(d, "nobody@example.org") == NULL);
	CHECK(directory_user(d, "bob@elsewhere.example") == NULL);
	directory_unref(&d);
}

static void test_owns(void)
{
	fresh();
	CHECK(store_domain_add(st, "b.example", err, sizeof err) == 0);
	user("bob@example.org");
	user("ann@example.org");
	user("bob+work@example.org");
	alias("sales@example.org", "ann@example.org,bob@example.org");
	alias("ops@example.org", "ann@example.org");
	alias("outer@b.example", "sales@example.org");
	struct directory *d = load();
	CHECK(directory_owns(d, "bob@example.org", "bob@example.org"));
	CHECK(directory_owns(d, "bob@example.org", "BOB@Example.org"));
	CHECK(directory_owns(d, "Bob@example.org", "bob+news@example.org"));
	CHECK(!directory_owns(d, "bob@example.org", "bob+work@example.org")); /* another user */
	CHECK(directory_owns(d, "bob@example.org", "sales@example.org"));
	CHECK(directory_owns(d, "bob@example.org", "sales+x@example.org"));
	CHECK(directory_owns(d, "bob@example.org", "outer@b.example"));
	CHECK(!directory_owns(d, "bob@example.org", "ops@example.org"));
	CHECK(!directory_owns(d, "bob@example.org", "ann@example.org"));
	CHECK(!directory_owns(d, "bob@example.org", "bob@elsewhere.example"));
	CHECK(!directory_owns(d, "bob@example.org", "nobody@example.org"));
	CHECK(!directory_owns(d, "nobody@example.org", "nobody@example.org"));
	CHECK(!directory_owns(d, "sales@example.org", "sales@example.org")); /* not a user */
	directory_unref(&d);
}

static void test_snapshot_is_a_copy_with_version(void)
{
	fresh();
	user("bob@example.org");
	struct directory *d1 = load();
	int64_t v;
	CHECK(store_version(st, &v, err, sizeof err) == 0);
	CHECK(directory_version(d1) == v);
	CHECK(store_user_del(st, "bob@example.org", err, sizeof err) == 0);
	struct directory *d2 = load();
	CHECK(directory_version(d2) > directory_version(d1));
	char t[512];
	CHECK(resolved(d1, "bob@example.org", t, sizeof t, 32) == DIR_OK); /* unchanged */
	CHECK(resolved(d2, "bob@example.org", t, sizeof t, 32) == DIR_UNKNOWN);
	directory_unref(&d1);
	directory_unref(&d2);
}

static void test_empty_directory(void)
{
	struct directory *d = directory_empty();
	CHECK(d != NULL);
	char t[512];
	CHECK(directory_version(d) == 0);
	CHECK(!directory_is_local_domain(d, "example.org"));
	CHECK(resolved(d, "bob@example.org", t, sizeof t, 32) == DIR_NOT_LOCAL);
	CHECK(directory_user(d, "bob@example.org") == NULL);
	CHECK(!directory_owns(d, "bob@example.org", "bob@example.org"));
	directory_unref(&d);
	directory_unref(&d); /* NULL: nothing */
}

static void test_load_failure(void)
{
	err[0] = '\0';
	struct directory *d = directory_load("/nonexistent-dir/tern.db", err, sizeof err);
	CHECK(d == NULL);
	CHECK(err[0] != '\0');
}

struct reader_arg {
	struct directory *d;
	int ok;
};

static void *reader(void *p)
{
	struct reader_arg *a = p;
	for (int i = 0; i < 2000; i++) {
		struct directory *mine = directory_ref(a->d);
		struct dir_target t[4];
		size_t n;
		a->ok += directory_resolve(mine, "team@example.org", t, 4, &n) == DIR_OK && n == 2;
		directory_unref(&mine);
	}
	directory_unref(&a->d);
	return NULL;
}

static void test_shared_between_threads(void)
{
	fresh();
	user("bob@example.org");
	user("ann@example.org");
	alias("team@example.org", "bob@example.org,ann@example.org");
	struct directory *d = load();
	pthread_t th[4];
	struct reader_arg args[4];
	for (int i = 0; i < 4; i++) {
		args[i] = (struct reader_arg){ .d = directory_ref(d) };
		CHECK(pthread_create(&th[i], NULL, reader, &args[i]) == 0);
	}
	directory_unref(&d); /* the threads hold the last references */
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		CHECK(args[i].ok == 2000);
	}
}

static int remove_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(path);
}

int main(void)
{
	snprintf(dir, sizeof dir, "/tmp/test_directory.XXXXXX");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	RUN(test_local_domains);
	RUN(test_users_resolve_case_insensitively);
	RUN(test_plus_tag);
	RUN(test_alias_expansion);
	RUN(test_unknown_alias_targets);
	RUN(test_loops);
	RUN(test_depth_limit);
	RUN(test_wide_alias_graph_is_bounded);
	RUN(test_directory_user);
	RUN(test_owns);
	RUN(test_snapshot_is_a_copy_with_version);
	RUN(test_empty_directory);
	RUN(test_load_failure);
	RUN(test_shared_between_threads);
	store_close(&st);
	nftw(dir, remove_one, 8, FTW_DEPTH | FTW_PHYS);
	return check_summary();
}
