/* records_events.c - events, message summaries and the hourly counters in
 * the SQLite store (see records.h; the tables are schema migration 3 in
 * sqlite.c).
 *
 * An event's row and its counter change are written in one transaction,
 * and an event already stored (a retried batch) changes neither, so the
 * counters always equal what a count of the events would give.  Counters
 * are keyed by (user, first second of the UTC hour); a day is 24 of
 * them, so statistics and quotas read at most a few hundred short rows
 * instead of scanning events. */
#include "store/records.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/records_private.h"
#include "store/store.h"

#define MESSAGE_EVENTS_MAX 10000 /* records_message's bound (records.h) */
/* Statistics ranges are checked against this before any arithmetic, so
 * aligning FROM and TO to an interval cannot overflow. */
#define TIME_LIMIT ((int64_t)1 << 50)

static const char ins_event_sql[] =
	"INSERT OR IGNORE INTO events (id, time_ms, type, message_id, user, recipient, detail) "
	"VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
/* One upsert adds a 1 in the event type's column and 0 in the others. */
static const char add_count_sql[] =
	"INSERT INTO stats_hourly (user, hour, accepted, delivered, deferred, bounced, rejected) "
	"VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (user, hour) DO UPDATE SET "
	"accepted = accepted + excluded.accepted, delivered = delivered + excluded.delivered, "
	"deferred = deferred + excluded.deferred, bounced = bounced + excluded.bounced, "
	"rejected = rejected + excluded.rejected";
static const char ins_message_sql[] =
	"INSERT OR IGNORE INTO messages (id, user, sender, subject, tags, created_ms) "
	"VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
#define EVENT_COLUMNS "id, time_ms, type, message_id, user, recipient, detail"

int rec_fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

int rec_db_fail(struct records *r, char *err, size_t errlen, const char *what)
{
	return rec_fail(err, errlen, "database: %s: %s", what, sqlite3_errmsg(r->db));
}

sqlite3_stmt *rec_prepare(struct records *r, const char *sql, char *err, size_t errlen)
{
	sqlite3_stmt *s = NULL;
	if (sqlite3_prepare_v2(r->db, sql, -1, &s, NULL) != SQLITE_OK) {
		rec_db_fail(r, err, errlen, "prepare");
		sqlite3_finalize(s);
		return NULL;
	}
	return s;
}

/* exec - SQL without parameters or rows. */
static int exec(struct records *r, const char *sql, char *err, size_t errlen)
{
	char *msg = NULL;
	if (sqlite3_exec(r->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		rec_fail(err, errlen, "database: %s", msg ? msg : sqlite3_errmsg(r->db));
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

int rec_begin(struct records *r, char *err, size_t errlen)
{
	return exec(r, "BEGIN IMMEDIATE", err, errlen);
}

int rec_finish(struct records *r, int rc, char *err, size_t errlen)
{
	if (rc == 0 && exec(r, "COMMIT", err, errlen) < 0)
		rc = -1;
	if (rc < 0 && !sqlite3_get_autocommit(r->db))
		sqlite3_exec(r->db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

char *rec_col_dup(sqlite3_stmt *s, int col)
{
	const unsigned char *t = sqlite3_column_text(s, col);
	return strdup(t ? (const char *)t : "");
}

int rec_bind_text(sqlite3_stmt *s, int i, const char *t)
{
	return sqlite3_bind_text(s, i, t ? t : "", -1, SQLITE_STATIC);
}

/* text - column COL as a C string that lives until the next step. */
static const char *text(sqlite3_stmt *s, int col)
{
	const unsigned char *t = sqlite3_column_text(s, col);
	return t ? (const char *)t : "";
}

/* floor_div - A / B rounded towards minus infinity (B > 0). */
static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;
	return a % b < 0 ? q - 1 : q;
}

struct records *records_open(const char *path, char *err, size_t errlen)
{
	/* store_open creates and migrates the schema; then our own handle. */
	struct store *st = store_open(path, err, errlen);
	if (!st)
		return NULL;
	store_close(&st);
	struct records *r = calloc(1, sizeof *r);
	if (!r) {
		rec_fail(err, errlen, "out of memory");
		return NULL;
	}
	int rc = sqlite3_open_v2(path, &r->db, SQLITE_OPEN_READWRITE, NULL);
	if (rc != SQLITE_OK) {
		rec_fail(err, errlen, "cannot open %s: %s", path,
			 r->db ? sqlite3_errmsg(r->db) : sqlite3_errstr(rc));
		records_close(&r);
		return NULL;
	}
	sqlite3_busy_timeout(r->db, 5000);
	sqlite3_extended_result_codes(r->db, 1);
	const unsigned keep = SQLITE_PREPARE_PERSISTENT;
	if (exec(r, "PRAGMA journal_mode = WAL", err, errlen) < 0) {
		records_close(&r);
		return NULL;
	}
	if (sqlite3_prepare_v3(r->db, ins_event_sql, -1, keep, &r->ins_event, NULL) ||
	    sqlite3_prepare_v3(r->db, add_count_sql, -1, keep, &r->add_count, NULL) ||
	    sqlite3_prepare_v3(r->db, ins_message_sql, -1, keep, &r->ins_message, NULL)) {
		rec_db_fail(r, err, errlen, "prepare");
		records_close(&r);
		return NULL;
	}
	return r;
}

void records_close(struct records **pr)
{
	struct records *r = *pr;
	if (!r)
		return;
	*pr = NULL;
	sqlite3_finalize(r->ins_event);
	sqlite3_finalize(r->add_count);
	sqlite3_finalize(r->ins_message);
	sqlite3_close(r->db);
	free(r);
}

void message_meta_clear(struct message_meta *m)
{
	free(m->user);
	free(m->sender);
	free(m->subject);
	free(m->tags);
	memset(m, 0, sizeof *m);
}

/* step_done - run a cached write once and reset it for the next use. */
static int step_done(struct records *r, sqlite3_stmt *s, char *err, size_t errlen)
{
	int rc = sqlite3_step(s);
	if (rc != SQLITE_DONE)
		rec_db_fail(r, err, errlen, "write");
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* write_message - one summary; an id already there keeps its row. */
static int write_message(struct records *r, const struct message_meta *m, char *err,
			 size_t errlen)
{
	sqlite3_stmt *s = r->ins_message;
	if (rec_bind_text(s, 1, m->id) || rec_bind_text(s, 2, m->user) ||
	    rec_bind_text(s, 3, m->sender) || rec_bind_text(s, 4, m->subject) ||
	    rec_bind_text(s, 5, m->tags && m->tags[0] ? m->tags : "[]") ||
	    sqlite3_bind_int64(s, 6, m->created_ms)) {
		sqlite3_reset(s);
		return rec_db_fail(r, err, errlen, "bind");
	}
	return step_done(r, s, err, errlen);
}

/* write_event - one event and, when it was not there yet, its count. */
static int write_event(struct records *r, const struct event_record *ev, char *err,
		       size_t errlen)
{
	if ((unsigned)ev->type >= EVENT_NTYPES || ev->id <= 0)
		return rec_fail(err, errlen, "event %" PRId64 ": bad id or type", ev->id);
	sqlite3_stmt *s = r->ins_event;
	if (sqlite3_bind_int64(s, 1, ev->id) || sqlite3_bind_int64(s, 2, ev->time_ms) ||
	    sqlite3_bind_int(s, 3, (int)ev->type) || rec_bind_text(s, 4, ev->message_id) ||
	    rec_bind_text(s, 5, ev->user) || rec_bind_text(s, 6, ev->recipient) ||
	    rec_bind_text(s, 7, ev->detail)) {
		sqlite3_reset(s);
		return rec_db_fail(r, err, errlen, "bind");
	}
	if (step_done(r, s, err, errlen) < 0)
		return -1;
	if (sqlite3_changes(r->db) == 0)
		return 0; /* stored by an earlier try of this batch */
	s = r->add_count;
	int64_t hour = floor_div(floor_div(ev->time_ms, 1000), 3600) * 3600;
	int rc = rec_bind_text(s, 1, ev->user) || sqlite3_bind_int64(s, 2, hour);
	for (int t = 0; t < EVENT_NTYPES && !rc; t++)
		rc = sqlite3_bind_int(s, 3 + t, t == (int)ev->type);
	if (rc) {
		sqlite3_reset(s);
		return rec_db_fail(r, err, errlen, "bind");
	}
	return step_done(r, s, err, errlen);
}

int records_write_batch(struct records *r, const struct event_record *ev, size_t n,
			const struct message_meta *msgs, size_t nmsgs, char *err, size_t errlen)
{
	if (rec_begin(r, err, errlen) < 0)
		return -1;
	int rc = 0;
	for (size_t i = 0; i < nmsgs && rc == 0; i++)
		rc = write_message(r, &msgs[i], err, errlen);
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = write_event(r, &ev[i], err, errlen);
	return rec_finish(r, rc, err, errlen);
}

int records_last_event_id(struct records *r, int64_t *id, char *err, size_t errlen)
{
	sqlite3_stmt *s = rec_prepare(r, "SELECT coalesce(max(id), 0) FROM events", err, errlen);
	if (!s)
		return -1;
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*id = sqlite3_column_int64(s, 0);
	else
		rec_db_fail(r, err, errlen, "read");
	sqlite3_finalize(s);
	return rc == SQLITE_ROW ? 0 : -1;
}

/* collect_events - the rows of S (EVENT_COLUMNS), at most MAX, into a
 * malloc'ed array.  S is finalized. */
static int collect_events(struct records *r, sqlite3_stmt *s, size_t max,
			  struct event_record **out, size_t *n, char *err, size_t errlen)
{
	struct event_record *evs = NULL;
	size_t used = 0, cap = 0;
	int rc = 0, step;
	while (used < max && (step = sqlite3_step(s)) == SQLITE_ROW) {
		if (used == cap) {
			size_t ncap = cap ? cap * 2 : 64;
			ncap = ncap > max ? max : ncap;
			struct event_record *p = realloc(evs, ncap * sizeof *p);
			if (!p) {
				rc = rec_fail(err, errlen, "out of memory");
				break;
			}
			memset(p + cap, 0, (ncap - cap) * sizeof *p);
			evs = p;
			cap = ncap;
		}
		int type = sqlite3_column_int(s, 2);
		if (type < 0 || type >= EVENT_NTYPES) {
			rc = rec_fail(err, errlen, "database: event %lld has unknown type %d",
				      (long long)sqlite3_column_int64(s, 0), type);
			break;
		}
		if (event_record_set(&evs[used], sqlite3_column_int64(s, 0),
				     sqlite3_column_int64(s, 1), (enum event_type)type, text(s, 3),
				     text(s, 4), text(s, 5), text(s, 6)) < 0) {
			rc = rec_fail(err, errlen, "out of memory");
			break;
		}
		used++;
	}
	if (rc == 0 && used < max && step != SQLITE_DONE)
		rc = rec_db_fail(r, err, errlen, "read");
	sqlite3_finalize(s);
	if (rc < 0) {
		event_records_free(&evs, used);
		return -1;
	}
	*out = evs;
	*n = used;
	return 0;
}

int records_events(struct records *r, const struct event_filter *f, struct event_record **out,
		   size_t *n, char *err, size_t errlen)
{
	*out = NULL;
	*n = 0;
	if (f->limit == 0)
		return 0;
	/* Only constant fragments go into the text; the values are bound.
	 * A clause is present only when used, so the planner can pick the
	 * (user, id) or message_id index. */
	char sql[512];
	snprintf(sql, sizeof sql,
		 "SELECT " EVENT_COLUMNS " FROM events WHERE id > ?1%s%s%s ORDER BY id LIMIT ?5",
		 f->user ? " AND user = ?2" : "", f->message_id ? " AND message_id = ?3" : "",
		 f->types ? " AND ((1 << type) & ?4) != 0" : "");
	sqlite3_stmt *s = rec_prepare(r, sql, err, errlen);
	if (!s)
		return -1;
	int64_t limit = f->limit > INT64_MAX ? INT64_MAX : (int64_t)f->limit;
	if (sqlite3_bind_int64(s, 1, f->since) ||
	    (f->user && rec_bind_text(s, 2, f->user)) ||
	    (f->message_id && rec_bind_text(s, 3, f->message_id)) ||
	    (f->types && sqlite3_bind_int64(s, 4, f->types)) || sqlite3_bind_int64(s, 5, limit)) {
		rec_db_fail(r, err, errlen, "bind");
		sqlite3_finalize(s);
		return -1;
	}
	return collect_events(r, s, f->limit, out, n, err, errlen);
}

/* read_meta - the summary row of ID into META: 1 found, 0 not, -1 error. */
static int read_meta(struct records *r, const char *id, struct message_meta *meta, char *err,
		     size_t errlen)
{
	sqlite3_stmt *s = rec_prepare(r,
				      "SELECT user, sender, subject, tags, created_ms FROM messages "
				      "WHERE id = ?1",
				      err, errlen);
	if (!s)
		return -1;
	rec_bind_text(s, 1, id);
	int rc = sqlite3_step(s), found = 0;
	if (rc == SQLITE_ROW) {
		meta->user = rec_col_dup(s, 0);
		meta->sender = rec_col_dup(s, 1);
		meta->subject = rec_col_dup(s, 2);
		meta->tags = rec_col_dup(s, 3);
		meta->created_ms = sqlite3_column_int64(s, 4);
		found = meta->user && meta->sender && meta->subject && meta->tags ?
				1 :
				rec_fail(err, errlen, "out of memory");
	} else if (rc != SQLITE_DONE) {
		found = rec_db_fail(r, err, errlen, "read");
	}
	sqlite3_finalize(s);
	return found;
}

/* meta_from_events - a summary for a message recorded only by its events
 * (one refused or written before summaries existed): its first event's
 * user and time, nothing else known. */
static int meta_from_events(struct message_meta *meta, const struct event_record *first,
			    char *err, size_t errlen)
{
	meta->user = strdup(first->user);
	meta->sender = strdup("");
	meta->subject = strdup("");
	meta->tags = strdup("[]");
	meta->created_ms = first->time_ms;
	if (!meta->user || !meta->sender || !meta->subject || !meta->tags)
		return rec_fail(err, errlen, "out of memory");
	return 0;
}

/* message_events - the events of message ID, oldest first, bounded. */
static int message_events(struct records *r, const char *id, struct event_record **events,
			  size_t *n, char *err, size_t errlen)
{
	sqlite3_stmt *s = rec_prepare(r,
				      "SELECT " EVENT_COLUMNS " FROM events WHERE message_id = ?1 "
				      "ORDER BY id LIMIT 10000",
				      err, errlen);
	if (!s)
		return -1;
	rec_bind_text(s, 1, id);
	return collect_events(r, s, MESSAGE_EVENTS_MAX, events, n, err, errlen);
}

int records_message(struct records *r, const char *id, struct message_meta *meta,
		    struct event_record **events, size_t *n, char *err, size_t errlen)
{
	memset(meta, 0, sizeof *meta);
	*events = NULL;
	*n = 0;
	size_t len = strlen(id);
	if (len == 0 || len >= sizeof meta->id)
		return 1; /* no queue id looks like that */
	int found = read_meta(r, id, meta, err, errlen);
	if (found >= 0 && message_events(r, id, events, n, err, errlen) < 0)
		found = -1;
	if (found == 0 && *n > 0)
		found = meta_from_events(meta, &(*events)[0], err, errlen) < 0 ? -1 : 1;
	if (found < 0) {
		message_meta_clear(meta);
		event_records_free(events, *n);
		*n = 0;
		return -1;
	}
	if (found == 0)
		return 1;
	memcpy(meta->id, id, len + 1);
	return 0;
}

/* bucket_range - the aligned bucket range of [FROM, TO): *START and the
 * bucket count *N.  0, or -1 with errno and ERR set. */
static int bucket_range(int64_t from, int64_t to, int64_t interval, int64_t *start,
			size_t *n, char *err, size_t errlen)
{
	if (interval != 3600 && interval != 86400) {
		errno = EINVAL;
		return rec_fail(err, errlen, "interval must be an hour or a day");
	}
	if (from < -TIME_LIMIT || from > TIME_LIMIT || to < -TIME_LIMIT || to > TIME_LIMIT) {
		errno = ERANGE;
		return rec_fail(err, errlen, "time out of range");
	}
	*start = floor_div(from, interval) * interval;
	int64_t end = to > from ? -floor_div(-to, interval) * interval : *start;
	if ((end - *start) / interval > RECORDS_STATS_MAX) {
		errno = ERANGE;
		return rec_fail(err, errlen, "more than %d intervals", RECORDS_STATS_MAX);
	}
	*n = (size_t)((end - *start) / interval);
	return 0;
}

int records_stats(struct records *r, const char *user, int64_t from, int64_t to,
		  int64_t interval, struct stats_bucket **out, size_t *n, char *err,
		  size_t errlen)
{
	int64_t start = 0;
	size_t count = 0;
	*out = NULL;
	*n = 0;
	if (bucket_range(from, to, interval, &start, &count, err, errlen) < 0)
		return -1;
	struct stats_bucket *b = calloc(count ? count : 1, sizeof *b);
	if (!b)
		return rec_fail(err, errlen, "out of memory");
	for (size_t i = 0; i < count; i++)
		b[i].start = start + (int64_t)i * interval;
	sqlite3_stmt *s = rec_prepare(
		r,
		user ? "SELECT hour, accepted, delivered, deferred, bounced, rejected "
		       "FROM stats_hourly WHERE user = ?3 AND hour >= ?1 AND hour < ?2" :
		       "SELECT hour, sum(accepted), sum(delivered), sum(deferred), sum(bounced), "
		       "sum(rejected) FROM stats_hourly WHERE hour >= ?1 AND hour < ?2 GROUP BY hour",
		err, errlen);
	int rc = s ? 0 : -1, step = SQLITE_DONE;
	if (s && (sqlite3_bind_int64(s, 1, start) ||
		  sqlite3_bind_int64(s, 2, start + (int64_t)count * interval) ||
		  (user && rec_bind_text(s, 3, user))))
		rc = rec_db_fail(r, err, errlen, "bind");
	while (rc == 0 && (step = sqlite3_step(s)) == SQLITE_ROW) {
		int64_t i = floor_div(sqlite3_column_int64(s, 0) - start, interval);
		for (int t = 0; i >= 0 && i < (int64_t)count && t < EVENT_NTYPES; t++)
			b[i].count[t] += (uint64_t)sqlite3_column_int64(s, 1 + t);
	}
	if (rc == 0 && step != SQLITE_DONE)
		rc = rec_db_fail(r, err, errlen, "read");
	sqlite3_finalize(s);
	if (rc < 0) {
		free(b);
		return -1;
	}
	*out = b;
	*n = count;
	return 0;
}

/* usage_merge - walk the two per-user lists (both by user) side by side:
 * A gives day and month, B the minute.  Returns 0 or -1 with ERR. */
static int usage_merge(struct records *r, sqlite3_stmt *a, sqlite3_stmt *b, records_usage_cb cb,
		       void *ctx, char *err, size_t errlen)
{
	int ra = sqlite3_step(a), rb = sqlite3_step(b);
	while (ra == SQLITE_ROW || rb == SQLITE_ROW) {
		const char *ua = ra == SQLITE_ROW ? text(a, 0) : NULL;
		const char *ub = rb == SQLITE_ROW ? text(b, 0) : NULL;
		/* BINARY collation orders as strcmp does. */
		int c = !ua ? 1 : !ub ? -1 : strcmp(ua, ub);
		struct usage_row u = { .user = c <= 0 ? ua : ub };
		if (c <= 0) {
			u.day = (uint64_t)sqlite3_column_int64(a, 1);
			u.month = (uint64_t)sqlite3_column_int64(a, 2);
		}
		if (c >= 0)
			u.minute = (uint64_t)sqlite3_column_int64(b, 1);
		if (cb(ctx, &u))
			return 0;
		if (c <= 0)
			ra = sqlite3_step(a);
		if (c >= 0)
			rb = sqlite3_step(b);
	}
	if (ra != SQLITE_DONE || rb != SQLITE_DONE)
		return rec_db_fail(r, err, errlen, "read");
	return 0;
}

int records_usage_each(struct records *r, int64_t day_start, int64_t month_start,
		       int64_t minute_start, records_usage_cb cb, void *ctx, char *err,
		       size_t errlen)
{
	sqlite3_stmt *a = NULL, *b = NULL;
	/* One read transaction: both lists come from the same snapshot. */
	if (exec(r, "BEGIN", err, errlen) < 0)
		return -1;
	a = rec_prepare(r,
			"SELECT user, sum(CASE WHEN hour >= ?1 THEN accepted ELSE 0 END), "
			"sum(accepted) FROM stats_hourly WHERE hour >= ?2 GROUP BY user "
			"HAVING sum(accepted) > 0 ORDER BY user",
			err, errlen);
	if (a)
		b = rec_prepare(r,
				"SELECT user, count(DISTINCT message_id) FROM events "
				"WHERE time_ms >= ?1 AND type = 0 GROUP BY user ORDER BY user",
				err, errlen);
	int rc = a && b ? 0 : -1;
	int64_t minute_ms = minute_start > INT64_MAX / 1000 ? INT64_MAX :
			    minute_start < INT64_MIN / 1000 ? INT64_MIN : minute_start * 1000;
	if (rc == 0 && (sqlite3_bind_int64(a, 1, day_start) ||
			sqlite3_bind_int64(a, 2, month_start) ||
			sqlite3_bind_int64(b, 1, minute_ms)))
		rc = rec_db_fail(r, err, errlen, "bind");
	if (rc == 0)
		rc = usage_merge(r, a, b, cb, ctx, err, errlen);
	sqlite3_finalize(a);
	sqlite3_finalize(b);
	/* Nothing was written: a failed COMMIT only ends the read. */
	if (rc < 0 || exec(r, "COMMIT", err, errlen) < 0)
		sqlite3_exec(r->db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}
