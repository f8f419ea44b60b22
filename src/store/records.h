/* records.h - what the daemon records in the store beside the accounts:
 * events, hourly counters, message summaries, suppression lists, webhooks
 * (schema migration 3 in sqlite.c).
 *
 * Every function is blocking: call it from a worker thread, from start-up
 * or from ternctl, never from the event loop.  A struct records is one
 * SQLite connection (WAL, 5 s busy timeout) for one thread at a time; a
 * module that writes from several jobs at once opens one per job or
 * serialises its jobs.
 *
 * Counters: records_write_batch adds each event to the hourly counter of
 * its user and type in the same transaction as the event, so statistics
 * and quotas are read from counters, never by scanning events, and always
 * agree with the events.
 *
 * Ownership: a struct records belongs to its opener.  Arrays and strings
 * handed out belong to the caller (the matching *_free below). */
#ifndef TERN_STORE_RECORDS_H
#define TERN_STORE_RECORDS_H

#include <stddef.h>
#include <stdint.h>

#include "store/event.h"

struct records;

/* records_open - a connection to the database at PATH, migrated (it runs
 * the same migrations as store_open).  NULL with ERR set. */
struct records *records_open(const char *path, char *err, size_t errlen);
void records_close(struct records **r);

/* ---- events, messages, counters ---- */

/* A message's summary, written once when it is accepted. */
struct message_meta {
	char id[32]; /* queue id */
	char *user; /* sending user or "" */
	char *sender; /* MAIL FROM / API from; "" for the null sender */
	char *subject; /* decoded as composed, or "" */
	char *tags; /* JSON array text ("[]" when none) */
	int64_t created_ms;
};
void message_meta_clear(struct message_meta *m);

/* records_write_batch - in one transaction: insert N events (their ids as
 * given; an id already present is skipped, so a retried batch is
 * harmless), NMSGS message summaries (an id already present is kept), and
 * add each event to counter (user, hour of time_ms, type).  Returns 0, or
 * -1 with ERR set and nothing written. */
int records_write_batch(struct records *r, const struct event_record *ev, size_t n,
			const struct message_meta *msgs, size_t nmsgs, char *err, size_t errlen);

/* records_last_event_id - the largest event id stored (0 when none). */
int records_last_event_id(struct records *r, int64_t *id, char *err, size_t errlen);

/* A query of events, oldest first. */
struct event_filter {
	int64_t since; /* events with id > SINCE */
	size_t limit; /* at most this many (the caller bounds it) */
	unsigned types; /* EVENT_MASK set; 0 means every type */
	const char *message_id; /* or NULL */
	const char *user; /* only this user's events; NULL: everyone's (admin) */
};

/* records_events - the events matching F into *OUT (malloc'ed, *N of
 * them; free with event_records_free).  0 or -1 with ERR. */
int records_events(struct records *r, const struct event_filter *f, struct event_record **out,
		   size_t *n, char *err, size_t errlen);

/* records_message - the summary of message ID into META and its events
 * (oldest first, at most 10,000) into *EVENTS and *N.  Returns 0, 1 when no
 * such message is recorded, -1 with ERR. */
int records_message(struct records *r, const char *id, struct message_meta *meta,
		    struct event_record **events, size_t *n, char *err, size_t errlen);

/* One bucket of statistics: counts per event type from START (seconds,
 * UTC, a multiple of the interval) for one interval. */
struct stats_bucket {
	int64_t start;
	uint64_t count[EVENT_NTYPES];
};

/* records_stats - buckets of INTERVAL seconds (3600 or 86400) covering
 * [FROM, TO) from the hourly counters of USER (NULL: all users summed).
 * Every interval in the range is present, zeros included, at most
 * RECORDS_STATS_MAX of them (a longer range is ERANGE: -1 with ERR).
 * *OUT is malloc'ed (free), *N its length. */
#define RECORDS_STATS_MAX 10000
int records_stats(struct records *r, const char *user, int64_t from, int64_t to,
		  int64_t interval, struct stats_bucket **out, size_t *n, char *err,
		  size_t errlen);

/* What a user has used, for quotas and the rate limit at start-up. */
struct usage_row {
	const char *user;
	uint64_t day; /* recipients accepted since DAY_START */
	uint64_t month; /* recipients accepted since MONTH_START */
	uint64_t minute; /* messages (distinct ids) accepted since MINUTE_START */
};
typedef int (*records_usage_cb)(void *ctx, const struct usage_row *u);

/* records_usage_each - one row per user with any use since MONTH_START
 * (DAY_START and MONTH_START are UTC hour boundaries, from the counters;
 * MINUTE_START any time, from the events).  A non-zero return from CB
 * stops the walk. */
int records_usage_each(struct records *r, int64_t day_start, int64_t month_start,
		       int64_t minute_start, records_usage_cb cb, void *ctx, char *err,
		       size_t errlen);

/* ---- suppression lists ---- */

struct suppression {
	char *user; /* whose list */
	char *address; /* lower case */
	char *reason; /* "hard bounce: 550 5.1.1 ...", or the API's reason */
	int64_t created; /* seconds */
};
void suppression_clear(struct suppression *s);

/* records_suppression_add - add or replace (USER, ADDRESS). */
int records_suppression_add(struct records *r, const struct suppression *s, char *err,
			    size_t errlen);
/* records_suppression_del - 0 removed, 1 not there, -1 error. */
int records_suppression_del(struct records *r, const char *user, const char *address,
			    char *err, size_t errlen);
typedef int (*records_suppression_cb)(void *ctx, const struct suppression *s);
/* records_suppression_each - every entry, by user then address. */
int records_suppression_each(struct records *r, records_suppression_cb cb, void *ctx, char *err,
			     size_t errlen);

/* ---- webhooks ---- */

struct webhook_row {
	int64_t id;
	char *user; /* the owner; "" for an admin's webhook (every user's events) */
	char *url;
	unsigned events; /* EVENT_MASK set */
	char *secret; /* HMAC key, hex */
	int64_t cursor; /* the last event id delivered (or skipped: not its type) */
	unsigned failures; /* consecutive failed attempts */
	int disabled; /* 1 after too many failures */
	char *last_error; /* "" */
	int64_t created; /* seconds */
};
void webhook_row_clear(struct webhook_row *w);

/* records_webhook_add - insert W (id ignored), its cursor set to the
 * current last event id so it receives events from now on; W->id and
 * W->cursor are filled in. */
int records_webhook_add(struct records *r, struct webhook_row *w, char *err, size_t errlen);
/* records_webhook_del - remove ID when it belongs to USER (NULL: any).
 * 0 removed, 1 no such webhook, -1 error. */
int records_webhook_del(struct records *r, int64_t id, const char *user, char *err,
			size_t errlen);
typedef int (*records_webhook_cb)(void *ctx, const struct webhook_row *w);
/* records_webhook_each - every webhook, by id. */
int records_webhook_each(struct records *r, records_webhook_cb cb, void *ctx, char *err,
			 size_t errlen);
/* records_webhook_progress - store ID's cursor, failure count, disabled
 * flag and last error (0; 1 when the webhook is gone; -1 error). */
int records_webhook_progress(struct records *r, int64_t id, int64_t cursor, unsigned failures,
			     int disabled, const char *last_error, char *err, size_t errlen);

#endif
