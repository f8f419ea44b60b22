/* test_records.c - what the daemon records beside the accounts
 * (store/records.h): event batches and their hourly counters, queries of
 * events and messages, statistics, usage for quotas, suppression lists
 * and webhooks. */
#include <errno.h>
#include <ftw.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "store/records.h"
#include "store/stats_cli.h"

/* 2026-03-15T00:00:00Z: a day boundary in the middle of a month. */
#define DAY0 ((int64_t)1773532800)
#define HOUR 3600
#define DAY 86400

static char dir[64], db[128];
static char err[256];

/* fresh - a new empty database for each test. */
static struct records *fresh(void)
{
	static int n;
	snprintf(db, sizeof db, "%s/r%d.db", dir, ++n);
	struct records *r = records_open(db, err, sizeof err);
	if (!r)
		fprintf(stderr, "records_open: %s\n", err);
	return r;
}

static int remove_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(path);
}

/* raw_int - one integer from the database, read without records.h. */
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

/* A batch being built: events and summaries. */
struct batch {
	struct event_record ev[64];
	size_t n;
	struct message_meta msg[8];
	size_t nmsgs;
};

static void ev_add(struct batch *b, int64_t id, int64_t secs, enum event_type t,
		   const char *msg, const char *user, const char *rcpt)
{
	CHECK(event_record_set(&b->ev[b->n++], id, secs * 1000 + 123, t, msg, user, rcpt,
			       "250 ok") == 0);
}

static void msg_add(struct batch *b, const char *id, const char *user, const char *subject)
{
	struct message_meta *m = &b->msg[b->nmsgs++];
	snprintf(m->id, sizeof m->id, "%s", id);
	m->user = strdup(user);
	m->sender = strdup(user);
	m->subject = strdup(subject);
	m->tags = strdup("[\"t\"]");
	m->created_ms = DAY0 * 1000;
}

static void batch_clear(struct batch *b)
{
	for (size_t i = 0; i < b->n; i++)
		event_record_clear(&b->ev[i]);
	for (size_t i = 0; i < b->nmsgs; i++)
		message_meta_clear(&b->msg[i]);
	b->n = b->nmsgs = 0;
}

static int write_batch(struct records *r, struct batch *b)
{
	int rc = records_write_batch(r, b->ev, b->n, b->msg, b->nmsgs, err, sizeof err);
	if (rc < 0)
		fprintf(stderr, "records_write_batch: %s\n", err);
	return rc;
}

static int64_t last_id(struct records *r)
{
	int64_t id = -1;
	CHECK(records_last_event_id(r, &id, err, sizeof err) == 0);
	return id;
}

static void test_open_migrates_and_starts_empty(void)
{
	struct records *r = fresh();
	CHECK(r != NULL);
	if (!r)
		return;
	CHECK(raw_int("SELECT version FROM schema_version") == 3);
	CHECK(raw_int("SELECT count(*) FROM events") == 0);
	CHECK(raw_int("SELECT count(*) FROM users WHERE rate_minute = 0") == 0);
	CHECK(last_id(r) == 0);
	records_close(&r);
	CHECK(r == NULL);
	records_close(&r); /* harmless twice */
	CHECK(records_open("/nonexistent-dir/x/tern.db", err, sizeof err) == NULL);
	CHECK(err[0] != '\0');
}

static void test_batch_writes_events_messages_and_counters(void)
{
	struct records *r = fresh();
	struct batch b = { 0 };
	msg_add(&b, "M1", "bob@example.org", "Hello");
	ev_add(&b, 1, DAY0 + 10, EVENT_ACCEPTED, "M1", "bob@example.org", "a@x.org");
	ev_add(&b, 2, DAY0 + 10, EVENT_ACCEPTED, "M1", "bob@example.org", "b@x.org");
	ev_add(&b, 3, DAY0 + 20, EVENT_DELIVERED, "M1", "bob@example.org", "a@x.org");
	ev_add(&b, 4, DAY0 + 30, EVENT_ACCEPTED, "M2", "", "carol@example.org");
	CHECK(write_batch(r, &b) == 0);
	CHECK(last_id(r) == 4);
	CHECK(raw_int("SELECT count(*) FROM events") == 4);
	CHECK(raw_int("SELECT count(*) FROM messages") == 1);
	char sql[256];
	snprintf(sql, sizeof sql,
		 "SELECT accepted * 10 + delivered FROM stats_hourly "
		 "WHERE user = 'bob@example.org' AND hour = %lld",
		 (long long)DAY0);
	CHECK(raw_int(sql) == 21);
	/* Mail of no user is counted under "" so admin totals include it. */
	CHECK(raw_int("SELECT accepted FROM stats_hourly WHERE user = ''") == 1);
	batch_clear(&b);
	records_close(&r);
}

static void test_retried_batch_changes_nothing(void)
{
	struct records *r = fresh();
	struct batch b = { 0 };
	msg_add(&b, "M1", "bob@example.org", "first");
	ev_add(&b, 1, DAY0, EVENT_ACCEPTED, "M1", "bob@example.org", "a@x.org");
	ev_add(&b, 2, DAY0, EVENT_ACCEPTED, "M1", "bob@example.org", "b@x.org");
	CHECK(write_batch(r, &b) == 0);
	CHECK(write_batch(r, &b) == 0); /* the same batch again */
	free(b.msg[0].subject);
	b.msg[0].subject = strdup("second");
	ev_add(&b, 3, DAY0, EVENT_DELIVERED, "M1", "bob@example.org", "a@x.org");
	CHECK(write_batch(r, &b) == 0); /* again, with one new event */
	CHECK(raw_int("SELECT count(*) FROM events") == 3);
	CHECK(raw_int("SELECT accepted FROM stats_hourly") == 2);
	CHECK(raw_int("SELECT delivered FROM stats_hourly") == 1);
	struct message_meta meta;
	struct event_record *evs;
	size_t n;
	CHECK(records_message(r, "M1", &meta, &evs, &n, err, sizeof err) == 0);
	CHECK_STR(meta.subject, "first"); /* a summary already there is kept */
	message_meta_clear(&meta);
	event_records_free(&evs, n);
	batch_clear(&b);
	records_close(&r);
}

static void test_failed_batch_writes_nothing(void)
{
	struct records *r = fresh();
	struct batch b = { 0 };
	msg_add(&b, "M1", "bob@example.org", "s");
	ev_add(&b, 1, DAY0, EVENT_ACCEPTED, "M1", "bob@example.org", "a@x.org");
	ev_add(&b, 2, DAY0, EVENT_ACCEPTED, "M1", "bob@example.org", "b@x.org");
	b.ev[1].type = (enum event_type)EVENT_NTYPES; /* not a type */
	CHECK(records_write_batch(r, b.ev, b.n, b.msg, b.nmsgs, err, sizeof err) == -1);
	CHECK(err[0] != '\0');
	CHECK(raw_int("SELECT count(*) FROM events") == 0);
	CHECK(raw_int("SELECT count(*) FROM messages") == 0);
	CHECK(raw_int("SELECT count(*) FROM stats_hourly") == 0);
	CHECK(last_id(r) == 0);
	/* The connection is still usable: a good batch goes through. */
	b.ev[1].type = EVENT_DEFERRED;
	CHECK(write_batch(r, &b) == 0);
	CHECK(raw_int("SELECT deferred FROM stats_hourly") == 1);
	batch_clear(&b);
	records_close(&r);
}

/* stats_fixture - events over two days, two users and no user. */
static void stats_fixture(struct records *r)
{
	struct batch b = { 0 };
	ev_add(&b, 1, DAY0 + 5, EVENT_ACCEPTED, "M1", "bob@example.org", "a@x");
	ev_add(&b, 2, DAY0 + 6, EVENT_DELIVERED, "M1", "bob@example.org", "a@x");
	ev_add(&b, 3, DAY0 + 2 * HOUR + 1, EVENT_ACCEPTED, "M2", "bob@example.org", "b@x");
	ev_add(&b, 4, DAY0 + 2 * HOUR + 2, EVENT_DEFERRED, "M2", "bob@example.org", "b@x");
	ev_add(&b, 5, DAY0 + 2 * HOUR + 3, EVENT_ACCEPTED, "M3", "amy@example.org", "c@x");
	ev_add(&b, 6, DAY0 + DAY + 1, EVENT_BOUNCED, "M2", "bob@example.org", "b@x");
	ev_add(&b, 7, DAY0 + DAY + 2, EVENT_REJECTED, "", "", "d@example.org");
	ev_add(&b, 8, DAY0 + DAY + 3, EVENT_ACCEPTED, "M4", "", "e@example.org");
	CHECK(write_batch(r, &b) == 0);
	batch_clear(&b);
}

static void test_stats_hourly_buckets_are_zero_filled(void)
{
	struct records *r = fresh();
	stats_fixture(r);
	struct stats_bucket *s;
	size_t n;
	CHECK(records_stats(r, "bob@example.org", DAY0, DAY0 + 4 * HOUR, HOUR, &s, &n, err,
			    sizeof err) == 0);
	CHECK(n == 4);
	if (n == 4) {
		CHECK(s[0].start == DAY0 && s[3].start == DAY0 + 3 * HOUR);
		CHECK(s[0].count[EVENT_ACCEPTED] == 1 && s[0].count[EVENT_DELIVERED] == 1);
		CHECK(s[1].count[EVENT_ACCEPTED] == 0 && s[1].count[EVENT_DELIVERED] == 0);
		CHECK(s[2].count[EVENT_ACCEPTED] == 1 && s[2].count[EVENT_DEFERRED] == 1);
		CHECK(s[3].count[EVENT_ACCEPTED] == 0);
	}
	free(s);
	/* Everyone: amy's acceptance joins bob's in hour 2. */
	CHECK(records_stats(r, NULL, DAY0, DAY0 + 4 * HOUR, HOUR, &s, &n, err, sizeof err) == 0);
	CHECK(n == 4 && s[2].count[EVENT_ACCEPTED] == 2);
	free(s);
	/* An unaligned range covers the hours it touches. */
	CHECK(records_stats(r, NULL, DAY0 + 1800, DAY0 + HOUR + 1, HOUR, &s, &n, err,
			    sizeof err) == 0);
	CHECK(n == 2 && s[0].start == DAY0 && s[0].count[EVENT_ACCEPTED] == 1);
	free(s);
	records_close(&r);
}

static void test_stats_daily_buckets_sum_users(void)
{
	struct records *r = fresh();
	stats_fixture(r);
	struct stats_bucket *s;
	size_t n;
	CHECK(records_stats(r, NULL, DAY0 - DAY, DAY0 + 2 * DAY, DAY, &s, &n, err,
			    sizeof err) == 0);
	CHECK(n == 3);
	if (n == 3) {
		CHECK(s[0].start == DAY0 - DAY);
		for (int t = 0; t < EVENT_NTYPES; t++)
			CHECK(s[0].count[t] == 0);
		CHECK(s[1].count[EVENT_ACCEPTED] == 3 && s[1].count[EVENT_DELIVERED] == 1 &&
		      s[1].count[EVENT_DEFERRED] == 1 && s[1].count[EVENT_BOUNCED] == 0);
		/* Day two: bob's bounce, and the mail of no user. */
		CHECK(s[2].count[EVENT_BOUNCED] == 1 && s[2].count[EVENT_REJECTED] == 1 &&
		      s[2].count[EVENT_ACCEPTED] == 1);
	}
	free(s);
	CHECK(records_stats(r, "", DAY0, DAY0 + 2 * DAY, DAY, &s, &n, err, sizeof err) == 0);
	CHECK(n == 2 && s[0].count[EVENT_ACCEPTED] == 0 && s[1].count[EVENT_ACCEPTED] == 1 &&
	      s[1].count[EVENT_REJECTED] == 1);
	free(s);
	CHECK(records_stats(r, "nobody@example.org", DAY0, DAY0 + DAY, DAY, &s, &n, err,
			    sizeof err) == 0);
	CHECK(n == 1 && s[0].count[EVENT_ACCEPTED] == 0);
	free(s);
	records_close(&r);
}

static void test_stats_range_checked(void)
{
	struct records *r = fresh();
	struct stats_bucket *s = (void *)1;
	size_t n = 99;
	errno = 0;
	CHECK(records_stats(r, NULL, DAY0, DAY0 + HOUR, 60, &s, &n, err, sizeof err) == -1);
	CHECK(errno == EINVAL);
	errno = 0;
	CHECK(records_stats(r, NULL, DAY0, DAY0 + (RECORDS_STATS_MAX + 1) * (int64_t)HOUR, HOUR,
			    &s, &n, err, sizeof err) == -1);
	CHECK(errno == ERANGE);
	CHECK(records_stats(r, NULL, DAY0, DAY0 + RECORDS_STATS_MAX * (int64_t)HOUR, HOUR, &s,
			    &n, err, sizeof err) == 0);
	CHECK(n == RECORDS_STATS_MAX);
	free(s);
	CHECK(records_stats(r, NULL, INT64_MIN, INT64_MAX, DAY, &s, &n, err, sizeof err) == -1);
	CHECK(records_stats(r, NULL, DAY0, DAY0, DAY, &s, &n, err, sizeof err) == 0);
	CHECK(n == 0);
	free(s);
	records_close(&r);
}

/* query - records_events with F; the ids found as "1,2,3". */
static const char *query(struct records *r, const struct event_filter *f, char *out,
			 size_t outlen)
{
	struct event_record *evs;
	size_t n;
	out[0] = '\0';
	if (records_events(r, f, &evs, &n, err, sizeof err) < 0)
		return "error";
	for (size_t i = 0; i < n; i++) {
		size_t used = strlen(out);
		snprintf(out + used, outlen - used, "%s%lld", i ? "," : "", (long long)evs[i].id);
	}
	event_records_free(&evs, n);
	CHECK(evs == NULL);
	return out;
}

static void test_events_filters(void)
{
	struct records *r = fresh();
	stats_fixture(r);
	char ids[128];
	struct event_filter f = { .limit = 100 };
	CHECK_STR(query(r, &f, ids, sizeof ids), "1,2,3,4,5,6,7,8");
	f.since = 5;
	CHECK_STR(query(r, &f, ids, sizeof ids), "6,7,8");
	f.since = 0;
	f.limit = 3;
	CHECK_STR(query(r, &f, ids, sizeof ids), "1,2,3");
	f.limit = 0;
	CHECK_STR(query(r, &f, ids, sizeof ids), "");
	f.limit = 100;
	f.types = EVENT_MASK(EVENT_ACCEPTED);
	CHECK_STR(query(r, &f, ids, sizeof ids), "1,3,5,8");
	f.types = EVENT_MASK(EVENT_BOUNCED) | EVENT_MASK(EVENT_DEFERRED);
	CHECK_STR(query(r, &f, ids, sizeof ids), "4,6");
	f.types = 0;
	f.user = "bob@example.org";
	CHECK_STR(query(r, &f, ids, sizeof ids), "1,2,3,4,6");
	f.user = "";
	CHECK_STR(query(r, &f, ids, sizeof ids), "7,8");
	f.user = "bob@example.org";
	f.message_id = "M2";
	CHECK_STR(query(r, &f, ids, sizeof ids), "3,4,6");
	f.types = EVENT_MASK(EVENT_BOUNCED);
	CHECK_STR(query(r, &f, ids, sizeof ids), "6");
	f.user = "amy@example.org";
	CHECK_STR(query(r, &f, ids, sizeof ids), "");
	/* The record's strings come back as written. */
	struct event_record *evs;
	size_t n;
	struct event_filter one = { .since = 6, .limit = 1 };
	CHECK(records_events(r, &one, &evs, &n, err, sizeof err) == 0);
	CHECK(n == 1);
	if (n == 1) {
		CHECK(evs[0].type == EVENT_REJECTED);
		CHECK(evs[0].time_ms == (DAY0 + DAY + 2) * 1000 + 123);
		CHECK_STR(evs[0].message_id, "");
		CHECK_STR(evs[0].recipient, "d@example.org");
		CHECK_STR(evs[0].detail, "250 ok");
	}
	event_records_free(&evs, n);
	records_close(&r);
}

static void test_message_summary_and_history(void)
{
	struct records *r = fresh();
	struct batch b = { 0 };
	msg_add(&b, "M1", "bob@example.org", "Hello");
	ev_add(&b, 1, DAY0, EVENT_ACCEPTED, "M1", "bob@example.org", "a@x");
	ev_add(&b, 2, DAY0, EVENT_ACCEPTED, "M9", "amy@example.org", "z@x");
	ev_add(&b, 3, DAY0 + 60, EVENT_DELIVERED, "M1", "bob@example.org", "a@x");
	CHECK(write_batch(r, &b) == 0);
	batch_clear(&b);
	struct message_meta meta;
	struct event_record *evs;
	size_t n;
	CHECK(records_message(r, "M1", &meta, &evs, &n, err, sizeof err) == 0);
	CHECK_STR(meta.id, "M1");
	CHECK_STR(meta.user, "bob@example.org");
	CHECK_STR(meta.subject, "Hello");
	CHECK_STR(meta.tags, "[\"t\"]");
	CHECK(meta.created_ms == DAY0 * 1000);
	CHECK(n == 2 && evs[0].id == 1 && evs[1].id == 3 && evs[1].type == EVENT_DELIVERED);
	message_meta_clear(&meta);
	event_records_free(&evs, n);
	/* Known only by its events: a summary made from the first. */
	CHECK(records_message(r, "M9", &meta, &evs, &n, err, sizeof err) == 0);
	CHECK_STR(meta.user, "amy@example.org");
	CHECK_STR(meta.tags, "[]");
	CHECK(n == 1);
	message_meta_clear(&meta);
	event_records_free(&evs, n);
	CHECK(records_message(r, "NOPE", &meta, &evs, &n, err, sizeof err) == 1);
	CHECK(evs == NULL && n == 0);
	CHECK(records_message(r, "", &meta, &evs, &n, err, sizeof err) == 1);
	records_close(&r);
}

struct usage_seen {
	char text[512];
	int calls, stop_after;
};

static int collect_usage(void *ctx, const struct usage_row *u)
{
	struct usage_seen *s = ctx;
	size_t used = strlen(s->text);
	snprintf(s->text + used, sizeof s->text - used, "%s=%llu/%llu/%llu;", u->user,
		 (unsigned long long)u->day, (unsigned long long)u->month,
		 (unsigned long long)u->minute);
	return ++s->calls == s->stop_after;
}

static void test_usage_per_day_month_minute(void)
{
	struct records *r = fresh();
	int64_t month = DAY0 - 14 * DAY, now = DAY0 + 10 * HOUR;
	struct batch b = { 0 };
	/* Last month: not counted at all. */
	ev_add(&b, 1, month - HOUR, EVENT_ACCEPTED, "M0", "bob@example.org", "a@x");
	/* Earlier this month: month only. */
	ev_add(&b, 2, month + DAY, EVENT_ACCEPTED, "M1", "bob@example.org", "a@x");
	ev_add(&b, 3, month + DAY, EVENT_ACCEPTED, "M1", "bob@example.org", "b@x");
	/* Today, before the last minute. */
	ev_add(&b, 4, now - 3600, EVENT_ACCEPTED, "M2", "bob@example.org", "a@x");
	/* The last minute: two messages, three recipients; delivered
	 * events and another user's mail are not bob's use. */
	ev_add(&b, 5, now - 30, EVENT_ACCEPTED, "M3", "bob@example.org", "a@x");
	ev_add(&b, 6, now - 30, EVENT_ACCEPTED, "M3", "bob@example.org", "b@x");
	ev_add(&b, 7, now - 10, EVENT_ACCEPTED, "M4", "bob@example.org", "c@x");
	ev_add(&b, 8, now - 5, EVENT_DELIVERED, "M3", "bob@example.org", "a@x");
	ev_add(&b, 9, now - 5, EVENT_ACCEPTED, "M5", "amy@example.org", "a@x");
	ev_add(&b, 10, month + 2 * DAY, EVENT_ACCEPTED, "M6", "", "in@example.org");
	ev_add(&b, 11, month + 3 * DAY, EVENT_REJECTED, "", "zed@example.org", "a@x");
	CHECK(write_batch(r, &b) == 0);
	batch_clear(&b);
	struct usage_seen seen = { .text = "" };
	CHECK(records_usage_each(r, DAY0, month, now - 60, collect_usage, &seen, err,
				 sizeof err) == 0);
	CHECK_STR(seen.text, "=0/1/0;amy@example.org=1/1/1;bob@example.org=4/6/2;");
	struct usage_seen first = { .text = "", .stop_after = 1 };
	CHECK(records_usage_each(r, DAY0, month, now - 60, collect_usage, &first, err,
				 sizeof err) == 0);
	CHECK(first.calls == 1);
	/* A minute window reaching before the month still lists its users. */
	struct usage_seen later = { .text = "" };
	CHECK(records_usage_each(r, DAY0 + DAY, DAY0 + DAY, now - 60, collect_usage, &later, err,
				 sizeof err) == 0);
	CHECK_STR(later.text, "amy@example.org=0/0/1;bob@example.org=0/0/2;");
	records_close(&r);
}

static int collect_suppression(void *ctx, const struct suppression *s)
{
	struct usage_seen *seen = ctx;
	size_t used = strlen(seen->text);
	snprintf(seen->text + used, sizeof seen->text - used, "%s|%s|%s|%lld;", s->user,
		 s->address, s->reason, (long long)s->created);
	return ++seen->calls == seen->stop_after;
}

static void test_suppressions(void)
{
	struct records *r = fresh();
	struct suppression s = { .user = "bob@example.org", .address = "X@Example.ORG",
				 .reason = "hard bounce: 550 5.1.1", .created = 100 };
	CHECK(records_suppression_add(r, &s, err, sizeof err) == 0);
	s.address = "a@example.org";
	s.reason = "api";
	CHECK(records_suppression_add(r, &s, err, sizeof err) == 0);
	s.user = "";
	s.address = "z@example.org";
	CHECK(records_suppression_add(r, &s, err, sizeof err) == 0);
	/* Adding again replaces the reason and time. */
	s.user = "bob@example.org";
	s.address = "x@example.org";
	s.reason = "again";
	s.created = 200;
	CHECK(records_suppression_add(r, &s, err, sizeof err) == 0);
	struct usage_seen seen = { .text = "" };
	CHECK(records_suppression_each(r, collect_suppression, &seen, err, sizeof err) == 0);
	CHECK_STR(seen.text, "|z@example.org|api|100;bob@example.org|a@example.org|api|100;"
			     "bob@example.org|x@example.org|again|200;");
	struct usage_seen one = { .text = "", .stop_after = 1 };
	CHECK(records_suppression_each(r, collect_suppression, &one, err, sizeof err) == 0);
	CHECK(one.calls == 1);
	CHECK(records_suppression_del(r, "bob@example.org", "X@EXAMPLE.org", err, sizeof err) ==
	      0);
	CHECK(records_suppression_del(r, "bob@example.org", "x@example.org", err, sizeof err) ==
	      1);
	CHECK(records_suppression_del(r, "amy@example.org", "a@example.org", err, sizeof err) ==
	      1);
	CHECK(raw_int("SELECT count(*) FROM suppressions") == 2);
	s.address = "";
	CHECK(records_suppression_add(r, &s, err, sizeof err) == -1);
	records_close(&r);
}

struct hooks_seen {
	struct webhook_row rows[8];
	int n;
};

static int collect_webhook(void *ctx, const struct webhook_row *w)
{
	struct hooks_seen *h = ctx;
	struct webhook_row *c = &h->rows[h->n++];
	*c = *w;
	c->user = strdup(w->user);
	c->url = strdup(w->url);
	c->secret = strdup(w->secret);
	c->last_error = strdup(w->last_error);
	return h->n == 8;
}

static void hooks_clear(struct hooks_seen *h)
{
	for (int i = 0; i < h->n; i++)
		webhook_row_clear(&h->rows[i]);
	h->n = 0;
}

static void test_webhooks(void)
{
	struct records *r = fresh();
	stats_fixture(r); /* events 1..8 */
	struct webhook_row w = { .user = "bob@example.org", .url = "https://h.example/a",
				 .events = EVENT_MASK(EVENT_BOUNCED), .secret = "00ff",
				 .last_error = "" };
	CHECK(records_webhook_add(r, &w, err, sizeof err) == 0);
	CHECK(w.id > 0 && w.cursor == 8 && w.created > 0);
	int64_t bob = w.id;
	struct webhook_row admin = { .user = "", .url = "https://h.example/all",
				     .events = EVENT_MASK_ALL, .secret = "abcd" };
	CHECK(records_webhook_add(r, &admin, err, sizeof err) == 0);
	CHECK(admin.id > bob && admin.cursor == 8);
	struct hooks_seen h = { .n = 0 };
	CHECK(records_webhook_each(r, collect_webhook, &h, err, sizeof err) == 0);
	CHECK(h.n == 2);
	if (h.n == 2) {
		CHECK(h.rows[0].id == bob && h.rows[1].id == admin.id);
		CHECK_STR(h.rows[0].url, "https://h.example/a");
		CHECK_STR(h.rows[0].secret, "00ff");
		CHECK(h.rows[0].events == EVENT_MASK(EVENT_BOUNCED));
		CHECK(h.rows[0].cursor == 8 && h.rows[0].failures == 0 && !h.rows[0].disabled);
		CHECK_STR(h.rows[1].user, "");
		CHECK_STR(h.rows[1].last_error, "");
	}
	hooks_clear(&h);
	CHECK(records_webhook_progress(r, bob, 12, 3, 1, "503 busy", err, sizeof err) == 0);
	CHECK(records_webhook_each(r, collect_webhook, &h, err, sizeof err) == 0);
	CHECK(h.n == 2 && h.rows[0].cursor == 12 && h.rows[0].failures == 3 &&
	      h.rows[0].disabled == 1);
	if (h.n == 2)
		CHECK_STR(h.rows[0].last_error, "503 busy");
	hooks_clear(&h);
	/* Another user may not delete bob's webhook; bob and an admin may. */
	CHECK(records_webhook_del(r, bob, "amy@example.org", err, sizeof err) == 1);
	CHECK(records_webhook_del(r, bob, "bob@example.org", err, sizeof err) == 0);
	CHECK(records_webhook_del(r, bob, NULL, err, sizeof err) == 1);
	CHECK(records_webhook_del(r, admin.id, NULL, err, sizeof err) == 0);
	CHECK(records_webhook_progress(r, bob, 13, 0, 0, "", err, sizeof err) == 1);
	CHECK(records_webhook_each(r, collect_webhook, &h, err, sizeof err) == 0);
	CHECK(h.n == 0);
	records_close(&r);
}

static void test_two_connections_share_the_record(void)
{
	struct records *a = fresh(), *b = records_open(db, err, sizeof err);
	CHECK(a && b);
	if (!a || !b)
		return;
	struct batch bt = { 0 };
	ev_add(&bt, 1, DAY0, EVENT_ACCEPTED, "M1", "bob@example.org", "a@x");
	CHECK(write_batch(a, &bt) == 0);
	CHECK(last_id(b) == 1);
	/* b writes the same event again: still one. */
	CHECK(write_batch(b, &bt) == 0);
	CHECK(raw_int("SELECT accepted FROM stats_hourly") == 1);
	batch_clear(&bt);
	records_close(&a);
	records_close(&b);
}

static void test_stats_cli_range_ends_with_now(void)
{
	int64_t from, to, interval;
	stats_cli_range(DAY0 + 10 * HOUR + 5, 7, 0, &from, &to, &interval);
	CHECK(interval == DAY && to == DAY0 + DAY && from == DAY0 - 6 * DAY);
	stats_cli_range(DAY0 + 10 * HOUR + 5, 1, 1, &from, &to, &interval);
	CHECK(interval == HOUR && to == DAY0 + 11 * HOUR && from == to - 24 * HOUR);
	stats_cli_range(DAY0, 2, 1, &from, &to, &interval);
	CHECK(to == DAY0 + HOUR && from == to - 48 * HOUR);
}

int main(void)
{
	snprintf(dir, sizeof dir, "/tmp/tern-records-XXXXXX");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	RUN(test_open_migrates_and_starts_empty);
	RUN(test_batch_writes_events_messages_and_counters);
	RUN(test_retried_batch_changes_nothing);
	RUN(test_failed_batch_writes_nothing);
	RUN(test_stats_hourly_buckets_are_zero_filled);
	RUN(test_stats_daily_buckets_sum_users);
	RUN(test_stats_range_checked);
	RUN(test_events_filters);
	RUN(test_message_summary_and_history);
	RUN(test_usage_per_day_month_minute);
	RUN(test_suppressions);
	RUN(test_webhooks);
	RUN(test_two_connections_share_the_record);
	RUN(test_stats_cli_range_ends_with_now);
	nftw(dir, remove_one, 8, FTW_DEPTH | FTW_PHYS);
	return check_summary();
}
