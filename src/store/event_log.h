/* event_log.h - the daemon's record of what happened to every message,
 * kept from the event loop without blocking it.
 *
 * event_log_emit numbers the event, hands it at once to the live
 * listeners (the SSE stream, webhooks, metrics) and queues it; queued
 * events are written to the store (records_write_batch) by one worker job
 * at a time, every EVENT_LOG_FLUSH_MS or as soon as EVENT_LOG_BATCH are
 * waiting.  A failed write keeps the batch and tries again on the next
 * tick; at most EVENT_LOG_PENDING_MAX events wait in memory, beyond which
 * the oldest are dropped, logged and counted (tern_events_dropped_total)
 * rather than let memory grow without bound while the store is down.
 *
 * Durability: events are a record, not mail.  A crash loses at most the
 * events of the last flush interval; the messages themselves are in the
 * spool, fsynced before their 250.
 *
 * Ownership: the log belongs to ternd.  It borrows the loop and the worker
 * pool, which outlive it.  Strings passed in are copied.  Everything but
 * event_log_new and event_log_free runs on the loop thread. */
#ifndef TERN_STORE_EVENT_LOG_H
#define TERN_STORE_EVENT_LOG_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "store/event.h"
#include "store/records.h"

#define EVENT_LOG_FLUSH_MS 100
#define EVENT_LOG_BATCH 512
#define EVENT_LOG_PENDING_MAX 200000

struct event_base;
struct event_log;
struct workers;

/* event_log_new - open the store at DB_PATH (blocking: start-up) and
 * continue numbering after its last event.  NULL with ERR set. */
struct event_log *event_log_new(struct event_base *base, struct workers *pool,
				const char *db_path, char *err, size_t errlen);

/* event_log_free - write what is still queued (blocking: call after the
 * loop stopped and after workers_free) and free the log; listeners are
 * not called again.  Clears *LOG. */
void event_log_free(struct event_log **log);

/* What happened: one event's facts.  Strings may be NULL ("" in the
 * record).  RECEIVED, when not 0, is when the message was accepted: a
 * delivered event with it feeds the delivery latency histogram. */
struct event_note {
	enum event_type type;
	const char *message_id;
	const char *user;
	const char *recipient;
	const char *detail;
	time_t received;
};

/* event_log_emit - record N now.  Listeners run before this returns. */
void event_log_emit(struct event_log *log, const struct event_note *n);

/* event_log_message - record M's summary (copied) with the next batch;
 * call it with the message's accepted events. */
void event_log_message(struct event_log *log, const struct message_meta *m);

/* event_log_accepted - ENV was committed at ENV->received: record its
 * summary (SUBJECT and TAGS, a JSON array text, may be NULL) and one
 * accepted event per recipient with DETAIL (where it came from). */
struct envelope;
void event_log_accepted(struct event_log *log, const struct envelope *env, const char *subject,
			const char *tags, const char *detail);

/* Live listeners.  CB gets each event as it is emitted; it must not
 * block, and may unlisten itself (or any listener) from inside CB. */
typedef void (*event_listener_cb)(void *arg, const struct event_record *ev);
struct event_listener;
struct event_listener *event_log_listen(struct event_log *log, event_listener_cb cb, void *arg);
void event_log_unlisten(struct event_log *log, struct event_listener **l);

/* event_log_sync - call DONE(ARG, ok) on the loop once every event emitted
 * before this call is in the store (ok 1), or the write failed (ok 0).
 * Readers of the store call it first, so what they read includes what was
 * emitted.  The returned handle lets a reader that goes away first cancel
 * (DONE is then not called).  NULL when out of memory (no call). */
struct event_sync;
struct event_sync *event_log_sync(struct event_log *log, void (*done)(void *arg, int ok),
				  void *arg);
void event_log_sync_cancel(struct event_log *log, struct event_sync **s);

/* event_log_db_path - the store's path (for readers' own connections). */
const char *event_log_db_path(const struct event_log *log);

/* Delivery latency histogram bounds, seconds (the +Inf bucket is extra). */
#define EVENT_LATENCY_BUCKETS 12
extern const double event_latency_bounds[EVENT_LATENCY_BUCKETS];

/* Totals since start, for /metrics. */
struct event_totals {
	uint64_t count[EVENT_NTYPES];
	uint64_t dropped; /* events lost because the store stayed down */
	uint64_t latency_count[EVENT_LATENCY_BUCKETS + 1]; /* per bucket, not cumulative */
	double latency_sum; /* seconds */
	uint64_t latency_n;
	size_t pending; /* waiting to be written */
};
const struct event_totals *event_log_totals(const struct event_log *log);

#endif
