/* test_event_log.c - the event log on a real loop, worker pool and SQLite
 * file: numbering, listeners, batching, syncs, the pending bound, a store
 * that refuses writes, and numbering that continues after a restart. */
#include <event2/event.h>
#include <ftw.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "core/workers.h"
#include "store/event_log.h"
#include "store/records.h"

static char dir[64], db[128];
static char err[256];

struct fixture {
	struct event_base *base;
	struct workers *pool;
	struct event_log *log;
};

/* open_log - a loop, a pool and a log on DB (a new file unless KEEP). */
static void open_log(struct fixture *f, int keep)
{
	static int n;
	if (!keep)
		snprintf(db, sizeof db, "%s/e%d.db", dir, ++n);
	f->base = event_base_new();
	f->pool = workers_new(f->base, 2);
	f->log = event_log_new(f->base, f->pool, db, err, sizeof err);
	if (!f->log)
		fprintf(stderr, "event_log_new: %s\n", err);
	CHECK(f->base && f->pool && f->log);
}

/* close_log - in ternd's order: the pool, then the log, then the loop. */
static void close_log(struct fixture *f)
{
	workers_free(&f->pool);
	event_log_free(&f->log);
	CHECK(f->log == NULL);
	event_base_free(f->base);
}

/* A condition the loop runs until; a guard ends a hung test instead of
 * hanging the suite (it asserts nothing about time). */
struct wait {
	struct event_base *base;
	int (*cond)(void *);
	void *arg;
	int met;
};

static void on_poll(evutil_socket_t fd, short what, void *arg)
{
	struct wait *w = arg;
	if (w->cond(w->arg)) {
		w->met = 1;
		event_base_loopbreak(w->base);
	}
}

static void run_until(struct fixture *f, int (*cond)(void *), void *arg)
{
	struct wait w = {f->base, cond, arg, 0};
	struct event *poll = event_new(f->base, -1, EV_PERSIST, on_poll, &w);
	struct timeval tick = {0, 2000};
	event_add(poll, &tick);
	time_t give_up = time(NULL) + 60;
	while (!cond(arg) && time(NULL) < give_up && !w.met)
		event_base_loop(f->base, EVLOOP_ONCE);
	event_free(poll);
	CHECK(cond(arg));
}

static int flag_set(void *arg)
{
	return *(int *)arg != 0;
}

/* Sync completion: 1 ok, 2 failed. */
static void on_sync(void *arg, int ok)
{
	*(int *)arg = ok ? 1 : 2;
}

/* sync_wait - sync and run the loop until it completes; returns 1 or 2. */
static int sync_wait(struct fixture *f)
{
	int got = 0;
	CHECK(event_log_sync(f->log, on_sync, &got) != NULL);
	run_until(f, flag_set, &got);
	return got;
}

static void emit(struct fixture *f, enum event_type t, const char *msg, const char *rcpt)
{
	struct event_note n = {.type = t,
			       .message_id = msg,
			       .user = "bob@example.org",
			       .recipient = rcpt,
			       .detail = "250 ok"};
	event_log_emit(f->log, &n);
}

/* stored - the events in the store, read on a connection of our own. */
static size_t stored(struct event_record **evs)
{
	struct records *r = records_open(db, err, sizeof err);
	struct event_filter q = {.since = 0, .limit = 1000000};
	size_t n = 0;
	*evs = NULL;
	CHECK(r && records_events(r, &q, evs, &n, err, sizeof err) == 0);
	records_close(&r);
	return n;
}

static long long raw_int(const char *sql)
{
	sqlite3 *h;
	sqlite3_stmt *s;
	long long v = -1;
	if (sqlite3_open(db, &h) == SQLITE_OK && sqlite3_busy_timeout(h, 5000) == SQLITE_OK &&
	    sqlite3_prepare_v2(h, sql, -1, &s, NULL) == 0) {
		if (sqlite3_step(s) == SQLITE_ROW)
			v = sqlite3_column_int64(s, 0);
		sqlite3_finalize(s);
	}
	sqlite3_close(h);
	return v;
}

static int raw_exec(const char *sql)
{
	sqlite3 *h;
	int rc = sqlite3_open(db, &h);
	if (rc == SQLITE_OK)
		rc = sqlite3_busy_timeout(h, 5000);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(h, sql, NULL, NULL, NULL);
	sqlite3_close(h);
	return rc == SQLITE_OK ? 0 : -1;
}

static void test_emitted_events_are_stored_after_sync(void)
{
	struct fixture f;
	open_log(&f, 0);
	struct message_meta m = {.id = "Q1",
				 .user = "bob@example.org",
				 .sender = "bob@example.org",
				 .subject = "hello",
				 .tags = NULL,
				 .created_ms = 1000};
	event_log_message(f.log, &m);
	emit(&f, EVENT_ACCEPTED, "Q1", "a@example.net");
	emit(&f, EVENT_DELIVERED, "Q1", "a@example.net");
	struct event_note bare = {.type = EVENT_REJECTED};
	event_log_emit(f.log, &bare);
	CHECK(event_log_totals(f.log)->pending == 3);
	CHECK(sync_wait(&f) == 1);
	CHECK(event_log_totals(f.log)->pending == 0);
	CHECK_STR(event_log_db_path(f.log), db);

	struct event_record *evs;
	size_t n = stored(&evs);
	CHECK(n == 3);
	if (n == 3) {
		for (size_t i = 0; i < 3; i++)
			CHECK(evs[i].id == (int64_t)i + 1);
		CHECK(evs[0].type == EVENT_ACCEPTED && evs[1].type == EVENT_DELIVERED);
		CHECK_STR(evs[0].recipient, "a@example.net");
		CHECK_STR(evs[1].detail, "250 ok");
		CHECK_STR(evs[2].message_id, "");
		CHECK_STR(evs[2].user, "");
		CHECK(evs[0].time_ms > 1600000000000LL && evs[2].time_ms >= evs[0].time_ms);
	}
	event_records_free(&evs, n);

	struct records *r = records_open(db, err, sizeof err);
	struct message_meta got = {0};
	struct event_record *mevs = NULL;
	size_t mn = 0;
	CHECK(r && records_message(r, "Q1", &got, &mevs, &mn, err, sizeof err) == 0);
	CHECK_STR(got.subject, "hello");
	CHECK_STR(got.tags, "[]");
	CHECK(mn == 2);
	message_meta_clear(&got);
	event_records_free(&mevs, mn);
	records_close(&r);

	const struct event_totals *t = event_log_totals(f.log);
	CHECK(t->count[EVENT_ACCEPTED] == 1 && t->count[EVENT_DELIVERED] == 1);
	CHECK(t->count[EVENT_REJECTED] == 1 && t->dropped == 0);
	close_log(&f);
}

static int nothing_pending(void *arg)
{
	struct fixture *f = arg;
	return event_log_totals(f->log)->pending == 0 && workers_pending(f->pool) == 0;
}

static void test_timer_flushes_without_sync(void)
{
	struct fixture f;
	open_log(&f, 0);
	emit(&f, EVENT_ACCEPTED, "Q2", "a@example.net");
	CHECK(workers_pending(f.pool) == 0); /* waits for the interval */
	run_until(&f, nothing_pending, &f);
	CHECK(raw_int("SELECT count(*) FROM events") == 1);
	close_log(&f);
}

static void test_full_batch_flushes_at_once(void)
{
	struct fixture f;
	open_log(&f, 0);
	for (int i = 0; i < EVENT_LOG_BATCH - 1; i++)
		emit(&f, EVENT_ACCEPTED, "Q3", "a@example.net");
	CHECK(workers_pending(f.pool) == 0);
	CHECK(event_log_totals(f.log)->pending == EVENT_LOG_BATCH - 1);
	emit(&f, EVENT_ACCEPTED, "Q3", "a@example.net");
	CHECK(workers_pending(f.pool) == 1);
	/* Emitted while that batch is written: they wait for the next. */
	emit(&f, EVENT_DEFERRED, "Q3", "a@example.net");
	CHECK(event_log_totals(f.log)->pending == EVENT_LOG_BATCH + 1);
	CHECK(workers_pending(f.pool) == 1);
	CHECK(sync_wait(&f) == 1);
	CHECK(raw_int("SELECT count(*) FROM events") == EVENT_LOG_BATCH + 1);
	CHECK(raw_int("SELECT max(id) FROM events") == EVENT_LOG_BATCH + 1);
	close_log(&f);
}

/* Listeners: who was called with what, and unlistening from inside. */
struct watcher {
	struct fixture *f;
	struct event_listener *self, **other;
	int64_t ids[8];
	int n;
	char last_rcpt[64];
	int unlisten_self_at, unlisten_other_at;
};

static void on_event(void *arg, const struct event_record *ev)
{
	struct watcher *w = arg;
	if (w->n < 8)
		w->ids[w->n] = ev->id;
	w->n++;
	snprintf(w->last_rcpt, sizeof w->last_rcpt, "%s", ev->recipient);
	if (w->n == w->unlisten_self_at)
		event_log_unlisten(w->f->log, &w->self);
	if (w->n == w->unlisten_other_at)
		event_log_unlisten(w->f->log, w->other);
}

static void test_listeners_see_events_and_may_unlisten(void)
{
	struct fixture f;
	open_log(&f, 0);
	emit(&f, EVENT_ACCEPTED, "Q4", "before@example.net");
	struct watcher a = {.f = &f, .unlisten_self_at = 2};
	struct watcher b = {.f = &f};
	struct watcher c = {.f = &f};
	b.other = &c.self;
	b.unlisten_other_at = 1;
	a.self = event_log_listen(f.log, on_event, &a);
	b.self = event_log_listen(f.log, on_event, &b);
	c.self = event_log_listen(f.log, on_event, &c);
	CHECK(a.self && b.self && c.self);

	emit(&f, EVENT_ACCEPTED, "Q4", "one@example.net");
	/* A ran, B ran and removed C before C's turn. */
	CHECK(a.n == 1 && b.n == 1 && c.n == 0);
	CHECK(c.self == NULL);
	CHECK(a.ids[0] == 2);
	CHECK_STR(a.last_rcpt, "one@example.net");

	emit(&f, EVENT_DELIVERED, "Q4", "two@example.net");
	CHECK(a.n == 2 && a.self == NULL); /* removed itself on its second */
	CHECK(b.n == 2 && b.ids[1] == 3);

	emit(&f, EVENT_DELIVERED, "Q4", "three@example.net");
	CHECK(a.n == 2 && b.n == 3 && c.n == 0);
	event_log_unlisten(f.log, &b.self);
	CHECK(b.self == NULL);
	emit(&f, EVENT_DELIVERED, "Q4", "four@example.net");
	CHECK(b.n == 3);
	close_log(&f);
}

static void test_sync_with_nothing_pending_completes_on_next_turn(void)
{
	struct fixture f;
	open_log(&f, 0);
	int got = 0;
	CHECK(event_log_sync(f.log, on_sync, &got) != NULL);
	CHECK(got == 0); /* never from inside event_log_sync */
	run_until(&f, flag_set, &got);
	CHECK(got == 1);
	close_log(&f);
}

static void test_cancelled_sync_is_not_called(void)
{
	struct fixture f;
	open_log(&f, 0);
	emit(&f, EVENT_ACCEPTED, "Q5", "a@example.net");
	int first = 0, second = 0, idle = 0;
	struct event_sync *s1 = event_log_sync(f.log, on_sync, &first);
	struct event_sync *s2 = event_log_sync(f.log, on_sync, &second);
	event_log_sync_cancel(f.log, &s1);
	CHECK(s1 == NULL && s2 != NULL);
	run_until(&f, flag_set, &second);
	CHECK(first == 0 && second == 1);
	/* One with nothing to wait for, cancelled before the loop turns. */
	struct event_sync *s3 = event_log_sync(f.log, on_sync, &idle);
	event_log_sync_cancel(f.log, &s3);
	int later = 0;
	CHECK(event_log_sync(f.log, on_sync, &later) != NULL);
	run_until(&f, flag_set, &later);
	CHECK(idle == 0);
	close_log(&f);
}

static void test_pending_bound_drops_oldest(void)
{
	struct fixture f;
	open_log(&f, 0);
	enum { EXTRA = 10 };
	/* The loop does not turn, so the first full batch stays in flight
	 * and everything after it waits in memory. */
	for (int i = 0; i < EVENT_LOG_PENDING_MAX + EXTRA; i++)
		emit(&f, EVENT_ACCEPTED, "Q6", "a@example.net");
	const struct event_totals *t = event_log_totals(f.log);
	CHECK(t->pending == EVENT_LOG_PENDING_MAX);
	CHECK(t->dropped == EXTRA);
	CHECK(t->count[EVENT_ACCEPTED] == EVENT_LOG_PENDING_MAX + EXTRA);
	CHECK(sync_wait(&f) == 1);
	CHECK(raw_int("SELECT count(*) FROM events") == EVENT_LOG_PENDING_MAX);
	/* The batch in flight was kept; the oldest waiting after it went. */
	CHECK(raw_int("SELECT count(*) FROM events WHERE id = "
		      "512") == 1);
	CHECK(raw_int("SELECT count(*) FROM events WHERE id BETWEEN 513 AND 522") == 0);
	CHECK(raw_int("SELECT count(*) FROM events WHERE id = 523") == 1);
	CHECK(t->pending == 0);
	close_log(&f);
}

static void test_failed_write_is_retried(void)
{
	struct fixture f;
	open_log(&f, 0);
	CHECK(raw_exec("CREATE TABLE block(x); INSERT INTO block VALUES (1);"
		       "CREATE TRIGGER refuse BEFORE INSERT ON events "
		       "WHEN (SELECT count(*) FROM block) > 0 "
		       "BEGIN SELECT RAISE(ABORT, 'blocked'); END;") == 0);
	emit(&f, EVENT_ACCEPTED, "Q7", "a@example.net");
	emit(&f, EVENT_BOUNCED, "Q7", "a@example.net");
	CHECK(sync_wait(&f) == 2);
	CHECK(event_log_totals(f.log)->pending == 2);
	CHECK(raw_int("SELECT count(*) FROM events") == 0);
	CHECK(raw_exec("DELETE FROM block") == 0);
	emit(&f, EVENT_DELIVERED, "Q7", "b@example.net");
	CHECK(sync_wait(&f) == 1);
	CHECK(raw_int("SELECT count(*) FROM events") == 3);
	CHECK(raw_int("SELECT min(id) FROM events") == 1);
	CHECK(event_log_totals(f.log)->pending == 0);
	close_log(&f);
}

static void test_free_writes_pending_and_reopen_continues_ids(void)
{
	struct fixture f;
	open_log(&f, 0);
	emit(&f, EVENT_ACCEPTED, "Q8", "a@example.net");
	CHECK(sync_wait(&f) == 1);
	emit(&f, EVENT_DELIVERED, "Q8", "a@example.net");
	emit(&f, EVENT_DELIVERED, "Q8", "b@example.net");
	close_log(&f); /* the last two were only queued */
	CHECK(raw_int("SELECT count(*) FROM events") == 3);

	open_log(&f, 1);
	struct watcher w = {.f = &f};
	w.self = event_log_listen(f.log, on_event, &w);
	emit(&f, EVENT_ACCEPTED, "Q9", "c@example.net");
	CHECK(w.n == 1 && w.ids[0] == 4);
	CHECK(sync_wait(&f) == 1);
	CHECK(raw_int("SELECT max(id) FROM events") == 4);
	close_log(&f);
}

static void test_delivery_latency_histogram(void)
{
	struct fixture f;
	open_log(&f, 0);
	struct event_note n = {.type = EVENT_DELIVERED,
			       .message_id = "QA",
			       .recipient = "a@example.net",
			       .received = time(NULL) - 100};
	event_log_emit(f.log, &n);
	n.received = 0; /* unknown: not counted */
	event_log_emit(f.log, &n);
	n.type = EVENT_BOUNCED;
	n.received = time(NULL) - 100;
	event_log_emit(f.log, &n);
	const struct event_totals *t = event_log_totals(f.log);
	CHECK(t->latency_n == 1);
	CHECK(t->latency_count[8] == 1); /* (60, 300] */
	CHECK(t->latency_sum >= 100 && t->latency_sum < 300);
	CHECK(event_latency_bounds[0] == 0.1 && event_latency_bounds[11] == 86400);
	close_log(&f);
}

static int remove_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(path);
}

int main(void)
{
	snprintf(dir, sizeof dir, "/tmp/tern-evlog-XXXXXX");
	if (!mkdtemp(dir))
		return 1;
	RUN(test_emitted_events_are_stored_after_sync);
	RUN(test_timer_flushes_without_sync);
	RUN(test_full_batch_flushes_at_once);
	RUN(test_listeners_see_events_and_may_unlisten);
	RUN(test_sync_with_nothing_pending_completes_on_next_turn);
	RUN(test_cancelled_sync_is_not_called);
	RUN(test_pending_bound_drops_oldest);
	RUN(test_failed_write_is_retried);
	RUN(test_free_writes_pending_and_reopen_continues_ids);
	RUN(test_delivery_latency_histogram);
	nftw(dir, remove_one, 8, FTW_DEPTH | FTW_PHYS);
	return check_summary();
}
