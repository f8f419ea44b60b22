/* test_policy.c - quotas per UTC day and month, the sliding-minute rate
 * limit and its Retry-After, suppression lists and their storage, and
 * use that survives a restart, on a real loop, pool and SQLite file. */
#include <event2/event.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auth/policy.h"
#include "check.h"
#include "core/workers.h"
#include "store/directory.h"
#include "store/event.h"
#include "store/records.h"

static char dir[64], db[128];
static char err[256];

struct fixture {
	struct event_base *base;
	struct workers *pool;
	struct policy *p;
};

static void open_policy(struct fixture *f, int keep)
{
	static int n;
	if (!keep)
		snprintf(db, sizeof db, "%s/p%d.db", dir, ++n);
	f->base = event_base_new();
	f->pool = workers_new(f->base, 2);
	f->p = policy_new(f->base, f->pool, db, err, sizeof err);
	if (!f->p)
		fprintf(stderr, "policy_new: %s\n", err);
	CHECK(f->base && f->pool && f->p);
}

static void close_policy(struct fixture *f)
{
	workers_free(&f->pool);
	policy_free(&f->p);
	CHECK(f->p == NULL);
	event_base_free(f->base);
}

/* utc - seconds of a UTC calendar time. */
static time_t utc(int y, int mo, int d, int h, int mi, int s)
{
	struct tm tm = {.tm_year = y - 1900,
			.tm_mon = mo - 1,
			.tm_mday = d,
			.tm_hour = h,
			.tm_min = mi,
			.tm_sec = s};
	return timegm(&tm);
}

static void test_daily_quota_counts_pending_and_charged(void)
{
	struct fixture f;
	open_policy(&f, 0);
	struct dir_user u = {.address = "bob@example.org", .quota_day = 3};
	time_t now = utc(2026, 3, 15, 12, 0, 0);
	unsigned ra = 0;
	for (size_t pending = 0; pending < 3; pending++)
		CHECK(policy_check_rcpt(f.p, &u, "x@example.net", pending, now, &ra) == POLICY_OK);
	CHECK(policy_check_rcpt(f.p, &u, "x@example.net", 3, now, &ra) == POLICY_QUOTA_DAY);
	CHECK(ra == 12 * 3600); /* until midnight UTC */

	policy_charge(f.p, "bob@example.org", 2, now);
	CHECK(policy_check_rcpt(f.p, &u, "x@example.net", 0, now + 10, &ra) == POLICY_OK);
	ra = 0;
	CHECK(policy_check_rcpt(f.p, &u, "x@example.net", 1, now + 10, &ra) == POLICY_QUOTA_DAY);
	CHECK(ra == 12 * 3600 - 10);
	/* Another user is not affected; a user without quota never is. */
	struct dir_user other = {.address = "eve@example.org", .quota_day = 3};
	CHECK(policy_check_rcpt(f.p, &other, "x@example.net", 0, now, &ra) == POLICY_OK);
	struct dir_user free_user = {.address = "bob@example.org"};
	CHECK(policy_check_rcpt(f.p, &free_user, "x@example.net", 100, now, &ra) == POLICY_OK);
	/* The next UTC day starts from zero. */
	time_t tomorrow = utc(2026, 3, 16, 0, 0, 0);
	CHECK(policy_check_rcpt(f.p, &u, "x@example.net", 2, tomorrow, &ra) == POLICY_OK);
	struct policy_usage use;
	policy_usage(f.p, "bob@example.org", tomorrow, &use);
	CHECK(use.day == 0 && use.month == 2);
	close_policy(&f);
}

static void test_monthly_quota_until_the_first(void)
{
	struct fixture f;
	open_policy(&f, 0);
	struct dir_user u = {.address = "bob@example.org", .quota_day = 100, .quota_month = 5};
	time_t day1 = utc(2026, 3, 15, 12, 0, 0), day2 = utc(2026, 3, 30, 18, 0, 0);
	policy_charge(f.p, "bob@example.org", 3, day1);
	policy_charge(f.p, "bob@example.org", 2, day2);
	unsigned ra = 0;
	CHECK(policy_check_rcpt(f.p, &u, "x@example.net", 0, day2, &ra) == POLICY_QUOTA_MONTH);
	CHECK(ra == (unsigned)(utc(2026, 4, 1, 0, 0, 0) - day2));
	struct policy_usage use;
	policy_usage(f.p, "bob@example.org", day2, &use);
	CHECK(use.day == 2 && use.month == 5);
	/* December turns into January. */
	time_t dec = utc(2026, 12, 31, 23, 0, 0);
	policy_charge(f.p, "bob@example.org", 5, dec);
	CHECK(policy_check_rcpt(f.p, &u, "x@example.net", 0, dec, &ra) == POLICY_QUOTA_MONTH);
	CHECK(ra == 3600);
	CHECK(policy_check_rcpt(f.p, &u, "x@example.net", 4, utc(2027, 1, 1, 0, 0, 0), &ra) ==
	      POLICY_OK);
	close_policy(&f);
}

static void test_rate_is_a_sliding_minute(void)
{
	struct fixture f;
	open_policy(&f, 0);
	struct dir_user u = {.address = "bob@example.org", .rate_minute = 10};
	time_t t = utc(2026, 3, 15, 12, 0, 0);
	unsigned ra = 0;
	for (int i = 0; i < 10; i++) {
		CHECK(policy_check_rate(f.p, &u, t + i, &ra) == POLICY_OK);
		policy_charge(f.p, "bob@example.org", 1, t + i);
	}
	CHECK(policy_check_rate(f.p, &u, t + 30, &ra) == POLICY_RATE);
	/* At t+60 the ten weigh in full as the previous minute; at t+61
	 * they weigh 59/60 of ten, under the limit. */
	CHECK(ra == 31);
	CHECK(policy_check_rate(f.p, &u, t + 60, &ra) == POLICY_RATE && ra == 1);
	CHECK(policy_check_rate(f.p, &u, t + 61, &ra) == POLICY_OK);
	struct policy_usage use;
	policy_usage(f.p, "bob@example.org", t + 90, &use);
	CHECK(use.minute == 5); /* half of the previous minute's ten */

	/* Eight more at t+90: 10 * 30/60 + 8 = 13; under 10 once the
	 * previous minute's ten weigh less than 2, 19 s later (11/60). */
	for (int i = 0; i < 8; i++)
		policy_charge(f.p, "bob@example.org", 1, t + 90);
	CHECK(policy_check_rate(f.p, &u, t + 90, &ra) == POLICY_RATE);
	CHECK(ra == 19);
	CHECK(policy_check_rate(f.p, &u, t + 108, &ra) == POLICY_RATE && ra == 1);
	CHECK(policy_check_rate(f.p, &u, t + 109, &ra) == POLICY_OK);
	/* Two minutes later nothing weighs. */
	policy_usage(f.p, "bob@example.org", t + 180, &use);
	CHECK(use.minute == 0);
	/* No limit, no user: always ok. */
	struct dir_user unlimited = {.address = "bob@example.org"};
	CHECK(policy_check_rate(f.p, &unlimited, t + 90, &ra) == POLICY_OK);
	CHECK(policy_check_rate(f.p, NULL, t + 90, &ra) == POLICY_OK);
	close_policy(&f);
}

/* Completion of a stored change: 1 ok, 2 failed. */
static void on_done(void *arg, int ok)
{
	*(int *)arg = ok ? 1 : 2;
}

static void run_until_set(struct fixture *f, const int *flag)
{
	time_t give_up = time(NULL) + 60; /* a hung test ends, nothing timed */
	while (!*flag && time(NULL) < give_up)
		event_base_loop(f->base, EVLOOP_ONCE);
	CHECK(*flag != 0);
}

/* A list collected by the each callbacks: "user:address:reason;..." */
struct collect {
	char text[1024];
	struct fixture *f;
	int unsuppress_first;
};

static int collect_one(void *arg, const char *user, const char *address, const char *reason,
		       int64_t created)
{
	struct collect *c = arg;
	size_t len = strlen(c->text);
	snprintf(c->text + len, sizeof c->text - len, "%s:%s:%s;", user, address, reason);
	if (c->unsuppress_first) {
		c->unsuppress_first = 0;
		CHECK(policy_unsuppress(c->f->p, user, address, NULL, NULL) == 0);
		CHECK(policy_unsuppress(c->f->p, "bob@example.org", "c@example.net", NULL, NULL) ==
		      0);
	}
	return 0;
}

static int collect_stored(void *arg, const struct suppression *s)
{
	struct collect *c = arg;
	size_t len = strlen(c->text);
	snprintf(c->text + len, sizeof c->text - len, "%s:%s;", s->user, s->address);
	return 0;
}

static const char *stored(struct collect *c)
{
	struct records *r = records_open(db, err, sizeof err);
	c->text[0] = '\0';
	CHECK(r && records_suppression_each(r, collect_stored, c, err, sizeof err) == 0);
	records_close(&r);
	return c->text;
}

static void test_suppression_add_list_delete(void)
{
	struct fixture f;
	open_policy(&f, 0);
	int d1 = 0, d2 = 0, d3 = 0, d4 = 0;
	CHECK(policy_suppress(f.p, "bob@example.org", "B@Example.NET", "hard bounce: 550 5.1.1",
			      on_done, &d1) == 0);
	CHECK(policy_suppress(f.p, "bob@example.org", "a@example.net", "api", on_done, &d2) == 0);
	CHECK(policy_suppress(f.p, "eve@example.org", "b@example.net", "api", on_done, &d3) == 0);
	CHECK(policy_suppress(f.p, "bob@example.org", "c@example.net", "api", NULL, NULL) == 0);
	CHECK(policy_suppress(f.p, "bob@example.org", "not an address", "x", NULL, NULL) == -1);
	CHECK(policy_suppress(f.p, "bob@example.org", "a@", "x", NULL, NULL) == -1);
	/* In memory at once, before any write finished. */
	CHECK(d1 == 0 && policy_suppressed(f.p, "bob@example.org", "b@example.net"));
	CHECK(policy_suppressed(f.p, "bob@example.org", "B@EXAMPLE.net"));
	CHECK(!policy_suppressed(f.p, "alice@example.org", "b@example.net"));
	struct dir_user u = {.address = "bob@example.org", .quota_day = 1};
	unsigned ra = 0;
	CHECK(policy_check_rcpt(f.p, &u, "b@example.net", 5, time(NULL), &ra) == POLICY_SUPPRESSED);
	CHECK(policy_check_rcpt(f.p, &u, "d@example.net", 0, time(NULL), &ra) == POLICY_OK);

	run_until_set(&f, &d3);
	run_until_set(&f, &d1);
	CHECK(d1 == 1 && d2 == 1 && d3 == 1);
	struct collect c = {.f = &f};
	CHECK_STR(stored(&c), "bob@example.org:a@example.net;bob@example.org:b@example.net;"
			      "bob@example.org:c@example.net;eve@example.org:b@example.net;");

	c.text[0] = '\0';
	policy_suppression_each(f.p, "bob@example.org", collect_one, &c);
	CHECK_STR(c.text, "bob@example.org:a@example.net:api;"
			  "bob@example.org:b@example.net:hard bounce: 550 5.1.1;"
			  "bob@example.org:c@example.net:api;");
	/* Replacing keeps one entry with the new reason. */
	CHECK(policy_suppress(f.p, "bob@example.org", "a@example.net", "again", NULL, NULL) == 0);
	c.text[0] = '\0';
	policy_suppression_each(f.p, NULL, collect_one, &c);
	CHECK_STR(c.text, "bob@example.org:a@example.net:again;"
			  "bob@example.org:b@example.net:hard bounce: 550 5.1.1;"
			  "bob@example.org:c@example.net:api;eve@example.org:b@example.net:api;");

	CHECK(policy_unsuppress(f.p, "bob@example.org", "x@example.net", on_done, &d4) == 1);
	CHECK(policy_unsuppress(f.p, "bob@example.org", "B@example.net", on_done, &d4) == 0);
	CHECK(!policy_suppressed(f.p, "bob@example.org", "b@example.net"));
	run_until_set(&f, &d4);
	CHECK(d4 == 1);
	CHECK_STR(stored(&c), "bob@example.org:a@example.net;bob@example.org:c@example.net;"
			      "eve@example.org:b@example.net;");
	close_policy(&f);
}

static void test_unsuppress_from_inside_the_walk(void)
{
	struct fixture f;
	open_policy(&f, 0);
	CHECK(policy_suppress(f.p, "bob@example.org", "a@example.net", "r", NULL, NULL) == 0);
	CHECK(policy_suppress(f.p, "bob@example.org", "b@example.net", "r", NULL, NULL) == 0);
	CHECK(policy_suppress(f.p, "bob@example.org", "c@example.net", "r", NULL, NULL) == 0);
	struct collect c = {.f = &f, .unsuppress_first = 1};
	/* The first removes itself and c, which is then not visited. */
	policy_suppression_each(f.p, "bob@example.org", collect_one, &c);
	CHECK_STR(c.text, "bob@example.org:a@example.net:r;bob@example.org:b@example.net:r;");
	CHECK(!policy_suppressed(f.p, "bob@example.org", "a@example.net"));
	CHECK(policy_suppressed(f.p, "bob@example.org", "b@example.net"));
	close_policy(&f); /* the queued writes are made at free */
	struct collect s = {.f = &f};
	CHECK_STR(stored(&s), "bob@example.org:b@example.net;");
}

/* accepted - N accepted events of message MSG for USER at T (seconds). */
static void accepted(struct event_record *evs, size_t *n, int64_t *id, const char *msg, int rcpts,
		     time_t t)
{
	for (int i = 0; i < rcpts; i++) {
		char rcpt[64];
		snprintf(rcpt, sizeof rcpt, "r%d@example.net", i);
		CHECK(event_record_set(&evs[(*n)++], ++*id, (int64_t)t * 1000 + 500, EVENT_ACCEPTED,
				       msg, "bob@example.org", rcpt, "") == 0);
	}
}

/* write_history - bob's use as the store would have it after a run. */
static void write_history(time_t now)
{
	time_t minute = now - now % 60;
	struct tm tm;
	gmtime_r(&now, &tm);
	tm.tm_mday = 1;
	tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
	time_t month = timegm(&tm);
	struct event_record evs[16] = {0};
	size_t n = 0;
	int64_t id = 0;
	accepted(evs, &n, &id, "M1", 2, now);	       /* this minute */
	accepted(evs, &n, &id, "M2", 1, minute - 60);  /* the previous minute */
	accepted(evs, &n, &id, "M3", 3, month + 3600); /* earlier this month */
	accepted(evs, &n, &id, "M4", 4, month - 3600); /* last month */
	struct records *r = records_open(db, err, sizeof err);
	CHECK(r && records_write_batch(r, evs, n, NULL, 0, err, sizeof err) == 0);
	struct suppression s = {.user = "bob@example.org",
				.address = "gone@example.net",
				.reason = "hard bounce",
				.created = 1};
	CHECK(records_suppression_add(r, &s, err, sizeof err) == 0);
	records_close(&r);
	for (size_t i = 0; i < n; i++)
		event_record_clear(&evs[i]);
}

static void test_usage_survives_a_restart(void)
{
	struct fixture f;
	time_t t0;
	for (int tries = 0;; tries++) {
		open_policy(&f, 0); /* a fresh store, migrated */
		close_policy(&f);
		t0 = time(NULL);
		write_history(t0);
		open_policy(&f, 1);
		/* The load reads the clock itself: try again if a minute
		 * turned in between. */
		if (time(NULL) / 60 == t0 / 60 || tries == 3)
			break;
		close_policy(&f);
	}
	time_t minute = t0 - t0 % 60, day = t0 - t0 % 86400;
	struct tm tm;
	gmtime_r(&t0, &tm);
	tm.tm_mday = 1;
	tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
	time_t month = timegm(&tm);
	uint64_t want_day = 2 + (minute - 60 >= day ? 1 : 0) + (month + 3600 >= day ? 3 : 0);
	uint64_t want_month = 2 + (minute - 60 >= month ? 1 : 0) + 3;
	struct policy_usage use;
	policy_usage(f.p, "bob@example.org", minute, &use);
	CHECK(use.day == want_day);
	CHECK(use.month == want_month);
	/* At the minute's start the previous minute weighs in full: M1 + M2. */
	CHECK(use.minute == 2);
	struct dir_user u = {
		.address = "bob@example.org", .quota_month = want_month, .rate_minute = 2};
	unsigned ra = 0;
	CHECK(policy_check_rcpt(f.p, &u, "x@example.net", 0, t0, &ra) == POLICY_QUOTA_MONTH);
	CHECK(policy_check_rate(f.p, &u, minute, &ra) == POLICY_RATE);
	CHECK(policy_suppressed(f.p, "bob@example.org", "Gone@example.net"));
	close_policy(&f);
}

static int remove_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(path);
}

int main(void)
{
	snprintf(dir, sizeof dir, "/tmp/tern-policy-XXXXXX");
	if (!mkdtemp(dir))
		return 1;
	RUN(test_daily_quota_counts_pending_and_charged);
	RUN(test_monthly_quota_until_the_first);
	RUN(test_rate_is_a_sliding_minute);
	RUN(test_suppression_add_list_delete);
	RUN(test_unsuppress_from_inside_the_walk);
	RUN(test_usage_survives_a_restart);
	nftw(dir, remove_one, 8, FTW_DEPTH | FTW_PHYS);
	return check_summary();
}
