/* queue.h - what happens to a message after its 250.
 *
 * The queue takes committed messages (and, at start, every message found in
 * the spool) and delivers each recipient: local recipients are resolved
 * through the current directory snapshot (aliases, +tags) and written to
 * their Maildirs on the worker pool, with Return-Path and Delivered-To
 * prepended.  When every recipient is final the spool file is removed; a
 * crash before that repeats the delivery (at-least-once, never lost).
 * Remote recipients wait in the queue for the relay stage (RCPT_QUEUED).
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
 * queue_config).  At most QUEUE_MAX_JOBS messages are delivered at once.
 *
 * Everything here runs on the loop thread; blocking work goes to the pool.
 * Ownership: the queue keeps a reference to the directory it was given and
 * copies every envelope it is handed. */
#ifndef TERN_QUEUE_QUEUE_H
#define TERN_QUEUE_QUEUE_H

#include <stddef.h>

#include "spool/envelope.h"

#define QUEUE_MAX_JOBS 8 /* delivery jobs running at once */

struct directory;
struct event_base;
struct queue;
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
};

struct queue *queue_new(const struct queue_config *cfg, struct spool *sp,
			struct workers *pool);
/* queue_free - forget queued work (the spool keeps it for next start). */
void queue_free(struct queue **q);

/* queue_set_directory - use D (a reference is taken) from now on. */
void queue_set_directory(struct queue *q, struct directory *d);

/* queue_recover - enqueue every message in the spool.  Blocking scan of the
 * spool directory: call once at start, before the loop serves clients.
 * Returns the number of messages found, -1 on error. */
long queue_recover(struct queue *q);

/* queue_add - a message just committed (ENV is copied). */
void queue_add(struct queue *q, const struct envelope *env);

/* queue_idle - 1 when no delivery is running or waiting (for shutdown and
 * tests).  Messages parked for the relay stage do not count. */
int queue_idle(const struct queue *q);

/* queue_parked - messages kept only because recipients wait for relay. */
size_t queue_parked(const struct queue *q);

#endif
