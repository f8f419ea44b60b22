/* queue.h - what happens to a message after its 250.
 *
 * The queue takes committed messages (and, at start, every message found in
 * the spool) and delivers each recipient: local recipients are resolved
 * through the current directory snapshot (aliases, +tags) and written to
 * their Maildirs on the worker pool, with Return-Path and Delivered-To
 * prepended.  When every recipient is final the spool file is removed; a
 * crash before that repeats the delivery (at-least-once, never lost).
 * Remote recipients go to the relay (relay.h), grouped by domain: one
 * transaction per message and domain.  Their results are kept per
 * recipient in the spool: delivered, bounced, or deferred with the next
 * attempt after retry_intervals (retry.h) until queue_lifetime, when they
 * bounce (4.4.7).  Failed recipients get one bounce per message and pass
 * (RFC 3464 DSN, dsn.h), committed to the spool as a message of its own
 * before the original records them as bounced; success reports
 * (NOTIFY=SUCCESS) and one delay warning (delay_warning) go the same way.
 *
 * Recipients are resolved on the loop: an unknown user (deleted after the
 * 250) or an alias loop bounces the recipient; an alias with several or
 * remote targets is expanded into new recipients of the same message (the
 * original one marked done, ORCPT kept), so each recipient names exactly
 * one destination and a retry never repeats a delivery that succeeded.
 * One worker job per message opens the spool body once, delivers every
 * local recipient, then rewrites the envelope (or removes the message when
 * every recipient is final).  A failed delivery (disk full...) keeps the
 * recipient queued and retries after 30 s, 60 s, ... at most 10 min (see
 * queue_config).  At most QUEUE_MAX_JOBS messages are in their local step
 * (a worker job) at once; the relay has its own limits.
 * Operators list, show, flush, delete, hold and release messages through
 * queue_control (the "queue" command of the control socket).
 *
 * Everything here runs on the loop thread; blocking work goes to the pool.
 * Ownership: the queue keeps a reference to the directory it was given and
 * copies every envelope it is handed. */
#ifndef TERN_QUEUE_QUEUE_H
#define TERN_QUEUE_QUEUE_H

#include <stddef.h>
#include <time.h>

#include "spool/envelope.h"

#define QUEUE_MAX_JOBS 8 /* local delivery jobs running at once */

struct control_request;
struct directory;
struct event_base;
struct event_log;
struct policy;
struct queue;
struct relay;
struct retry_policy;
struct spool;
struct workers;

struct queue_config {
	const char *data_dir; /* Maildirs live in DATA_DIR/mailboxes */
	const char *hostname;
	/* The loop that runs retry timers.  Without it (NULL) a deferred
	 * delivery waits for the next start. */
	struct event_base *base;
	/* Backoff after a failed local delivery: RETRY_FIRST seconds, doubled
	 * each time up to RETRY_MAX (0: 30 s and 600 s). */
	unsigned retry_first, retry_max;
	/* Remote delivery: NULL keeps remote recipients waiting (parked).
	 * Lent: must outlive the queue's use of it (free the relay first;
	 * the queue then no longer calls it). */
	struct relay *relay;
	/* retry_intervals, queue_lifetime, delay_warning for remote
	 * recipients; copied.  NULL: RETRY_DEFAULT_INTERVAL, 5 days, 4 h. */
	const struct retry_policy *policy;
	/* Lent, may be NULL: deliveries, deferrals and bounces are recorded
	 * in EVENTS; a hard bounce (5xx) of a user's message adds the
	 * recipient to that user's suppression list in SENDING. */
	struct event_log *events;
	struct policy *sending;
};

struct queue *queue_new(const struct queue_config *cfg, struct spool *sp,
			struct workers *pool);
/* queue_free - forget queued work (the spool keeps it for next start).
 * Free the relay first: requests still in it are not cancelled here. */
void queue_free(struct queue **q);

/* queue_set_policy - retry_intervals, queue_lifetime and delay_warning
 * from now on (a configuration reload); copied. */
void queue_set_policy(struct queue *q, const struct retry_policy *p);

/* queue_set_directory - use D (a reference is taken) from now on. */
void queue_set_directory(struct queue *q, struct directory *d);

/* queue_recover - enqueue every message in the spool.  Blocking scan of the
 * spool directory: call once at start, before the loop serves clients.
 * Returns the number of messages found, -1 on error. */
long queue_recover(struct queue *q);

/* queue_add - a message just committed (ENV is copied). */
void queue_add(struct queue *q, const struct envelope *env);

/* queue_idle - 1 when no delivery is running or waiting (for shutdown and
 * tests).  Parked and held messages do not count. */
int queue_idle(const struct queue *q);

/* queue_parked - messages kept with nothing to do (remote recipients and
 * no relay, or no retry timer). */
size_t queue_parked(const struct queue *q);

/* queue_stats - messages in the queue (held and parked included) and when
 * the oldest was received (0 when empty). */
void queue_stats(const struct queue *q, size_t *messages, time_t *oldest);

/* queue_control - the control socket's "queue" command (control.h; CTX is
 * the queue).  ARGS is one of:
 *   list            one line per message: id, sender, recipients with their
 *                   states, next attempt, last reply (docs/relay.md)
 *   show ID         the envelope fields, then the message's header lines
 *   flush [ID]      every queued recipient (of ID) due now, holds on
 *                   destinations lifted
 *   delete ID       removed from the spool, no bounce
 *   hold ID         not attempted until released (kept in the spool)
 *   release ID      attempted again at once */
void queue_control(void *ctx, struct control_request *req, const char *args);

#endif
