/* event_log.c - numbering, fan-out and batched writing of events (see
 * event_log.h).
 *
 * Emitted events and message summaries wait in two rings, oldest first.
 * A flush moves up to EVENT_LOG_JOB_MAX of each into the one batch, which a
 * worker writes with records_write_batch on the log's own connection; only
 * one batch is ever in flight, so the connection is used by one thread at
 * a time and events reach the store in id order.  A failed batch goes back
 * to the front of the rings and waits for the next tick: the ids it holds
 * are kept, and records_write_batch skips ids already stored, so a retry
 * never doubles an event or its counter.
 *
 * Syncs wait in a list in the order they were asked for; each waits for
 * the last id emitted before it, so the list's targets never decrease and
 * the waiters that are satisfied are always a prefix of it. */
#include "store/event_log.h"

#include <event2/event.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/workers.h"
#include "spool/envelope.h"

/* The most events (and summaries) one transaction writes: large enough
 * that a backlog drains in few transactions, small enough that a batch is
 * a bounded allocation made once. */
#define EVENT_LOG_JOB_MAX 4096
#define RING_MIN	  1024

const double event_latency_bounds[EVENT_LATENCY_BUCKETS] = {
	0.1, 0.5, 1, 2, 5, 10, 30, 60, 300, 1800, 3600, 86400,
};

/* A FIFO of fixed-size elements that grows by doubling (capacity a power
 * of two, so positions wrap with a mask). */
struct ring {
	char *buf;
	size_t size, head, count, cap;
};

struct event_listener {
	event_listener_cb cb; /* NULL once unlistened */
	void *arg;
	int64_t first_id; /* events before this one happened before it listened */
	struct event_listener *next;
};

struct event_sync {
	void (*done)(void *arg, int ok);
	void *arg;
	int64_t target;	     /* done when every id <= target is settled */
	uint64_t msg_target; /* ... and that many summaries */
	uint64_t seq;
	struct event_sync *prev, *next;
};

/* The one batch: owned by the worker while in flight, else empty. */
struct batch {
	struct event_record *ev;
	size_t n;
	struct message_meta *msgs;
	size_t nmsgs;
	int rc;
	char err[256];
};

struct event_log {
	struct event_base *base;
	struct workers *pool;
	struct records *rec; /* used by the job in flight, or nobody */
	char *db_path;
	int64_t last_id; /* the last id handed out */
	struct ring events, msgs;
	struct batch batch;
	int in_flight;
	int backoff;		/* a write failed: wait for the timer before the next */
	int failing, dropping;	/* log once per streak */
	struct event *flush_ev; /* armed while something waits and nothing is in flight */
	struct event *wake_ev;	/* completes syncs that had nothing to wait for */
	struct event_listener *listeners;
	int emitting; /* depth of listener calls: unlistened entries are swept after */
	struct event_sync *sync_head, *sync_tail;
	uint64_t sync_seq;
	uint64_t msgs_queued, msgs_settled; /* summaries ever queued, written or lost */
	struct event_totals totals;
};

/* ring_init - an empty ring of SIZE-byte elements. */
static void ring_init(struct ring *r, size_t size)
{
	memset(r, 0, sizeof *r);
	r->size = size;
}

static void *ring_at(const struct ring *r, size_t i)
{
	return r->buf + ((r->head + i) & (r->cap - 1)) * r->size;
}

/* ring_grow - double the capacity, unwrapping the contents.  -1 on ENOMEM. */
static int ring_grow(struct ring *r)
{
	size_t cap = r->cap ? r->cap * 2 : RING_MIN;
	char *buf = malloc(cap * r->size);
	if (!buf)
		return -1;
	for (size_t i = 0; i < r->count; i++)
		memcpy(buf + i * r->size, ring_at(r, i), r->size);
	free(r->buf);
	r->buf = buf;
	r->cap = cap;
	r->head = 0;
	return 0;
}

/* ring_push - copy ELEM in at the back (FRONT 0) or the front (FRONT 1). */
static int ring_push(struct ring *r, const void *elem, int front)
{
	if (r->count == r->cap && ring_grow(r) < 0)
		return -1;
	if (front) {
		r->head = (r->head + r->cap - 1) & (r->cap - 1);
		memcpy(ring_at(r, 0), elem, r->size);
	} else {
		memcpy(ring_at(r, r->count), elem, r->size);
	}
	r->count++;
	return 0;
}

/* ring_pop - move the front element out into OUT. */
static void ring_pop(struct ring *r, void *out)
{
	memcpy(out, ring_at(r, 0), r->size);
	r->head = (r->head + 1) & (r->cap - 1);
	r->count--;
}

/* ring_trim - give back the memory of a backlog once it is gone. */
static void ring_trim(struct ring *r)
{
	if (r->count || r->cap <= 4 * RING_MIN)
		return;
	free(r->buf);
	r->buf = NULL;
	r->cap = r->head = 0;
}

/* pending_count - events not yet in the store, the batch in flight included. */
static size_t pending_count(const struct event_log *log)
{
	return log->events.count + (log->in_flight ? log->batch.n : 0);
}

static void update_pending(struct event_log *log)
{
	log->totals.pending = pending_count(log);
}

/* settled_id - every id up to this one is in the store (or was dropped). */
static int64_t settled_id(const struct event_log *log)
{
	if (log->in_flight && log->batch.n)
		return log->batch.ev[0].id - 1;
	if (log->events.count)
		return ((const struct event_record *)ring_at(&log->events, 0))->id - 1;
	return log->last_id;
}

/* sync_ready - is everything S waits for in the store (or lost)? */
static int sync_ready(const struct event_log *log, const struct event_sync *s)
{
	return s->target <= settled_id(log) && s->msg_target <= log->msgs_settled;
}

static void flush_start(struct event_log *log);

/* schedule - after a change: flush now when a full batch or a reader is
 * waiting, else make sure the timer will. */
static void schedule(struct event_log *log)
{
	if (log->in_flight)
		return; /* its completion schedules again */
	int readers = log->sync_tail && !sync_ready(log, log->sync_tail);
	if (!log->backoff && (log->events.count >= EVENT_LOG_BATCH || readers)) {
		flush_start(log);
		return;
	}
	if ((log->events.count || log->msgs.count) && !evtimer_pending(log->flush_ev, NULL)) {
		struct timeval tv = {0, EVENT_LOG_FLUSH_MS * 1000};
		evtimer_add(log->flush_ev, &tv);
	}
}

/* complete_syncs - call the waiters that are satisfied (ok 1), then, when
 * FAIL_BEFORE is not 0, every waiter older than it with ok 0.  Each is
 * unlinked and freed before its call, so DONE may sync or cancel again. */
static void complete_syncs(struct event_log *log, uint64_t fail_before)
{
	struct event_sync *s;
	while ((s = log->sync_head) &&
	       (sync_ready(log, s) || (fail_before && s->seq < fail_before))) {
		int ok = sync_ready(log, s);
		log->sync_head = s->next;
		if (s->next)
			s->next->prev = NULL;
		else
			log->sync_tail = NULL;
		void (*done)(void *, int) = s->done;
		void *arg = s->arg;
		free(s);
		done(arg, ok);
	}
}

/* drop_oldest_event - make room when the store has been down too long. */
static void drop_oldest_event(struct event_log *log)
{
	struct event_record ev;
	ring_pop(&log->events, &ev);
	event_record_clear(&ev);
	log->totals.dropped++;
	if (!log->dropping) {
		log->dropping = 1;
		log_error("events: %d waiting, dropping the oldest until the store takes writes",
			  EVENT_LOG_PENDING_MAX);
	}
}

/* flush_work - on a worker: the one write of the batch. */
static void flush_work(void *arg)
{
	struct event_log *log = arg;
	struct batch *b = &log->batch;
	b->err[0] = '\0';
	b->rc = records_write_batch(log->rec, b->ev, b->n, b->msgs, b->nmsgs, b->err,
				    sizeof b->err);
}

/* batch_clear - free what a written batch held. */
static void batch_clear(struct batch *b)
{
	for (size_t i = 0; i < b->n; i++)
		event_record_clear(&b->ev[i]);
	for (size_t i = 0; i < b->nmsgs; i++)
		message_meta_clear(&b->msgs[i]);
	b->n = b->nmsgs = 0;
}

/* batch_return - put a batch that failed back at the front of the rings,
 * newest first so the order stays.  The rings had room for it when it
 * left; only if growing fails now is an entry lost. */
static void batch_return(struct event_log *log)
{
	struct batch *b = &log->batch;
	while (b->n) {
		struct event_record *ev = &b->ev[--b->n];
		if (ring_push(&log->events, ev, 1) < 0) {
			event_record_clear(ev);
			log->totals.dropped++;
		}
	}
	while (b->nmsgs) {
		struct message_meta *m = &b->msgs[--b->nmsgs];
		if (ring_push(&log->msgs, m, 1) < 0) {
			message_meta_clear(m);
			log->msgs_settled++;
		}
	}
	while (log->events.count > EVENT_LOG_PENDING_MAX)
		drop_oldest_event(log);
}

/* flush_done - on the loop: the batch is written, or goes back to wait. */
static void flush_done(void *arg)
{
	struct event_log *log = arg;
	struct batch *b = &log->batch;
	uint64_t fail_before = 0;
	if (b->rc == 0) {
		log->msgs_settled += b->nmsgs;
		batch_clear(b);
		ring_trim(&log->events);
		ring_trim(&log->msgs);
		log->in_flight = 0;
		if (log->failing)
			log_info("events: the store takes writes again");
		log->failing = log->dropping = 0;
	} else {
		if (!log->failing)
			log_error("events: cannot write %zu events, will retry: %s", b->n, b->err);
		log->failing = 1;
		log->in_flight = 0;
		batch_return(log);
		/* Readers waiting now are told, rather than kept waiting
		 * for an outage to end. */
		fail_before = log->sync_seq + 1;
		log->backoff = 1;
	}
	update_pending(log);
	schedule(log);
	complete_syncs(log, fail_before);
}

/* flush_start - hand the oldest waiting events and summaries to a worker. */
static void flush_start(struct event_log *log)
{
	struct batch *b = &log->batch;
	if (log->in_flight || (!log->events.count && !log->msgs.count))
		return;
	evtimer_del(log->flush_ev);
	while (b->n < EVENT_LOG_JOB_MAX && log->events.count)
		ring_pop(&log->events, &b->ev[b->n++]);
	while (b->nmsgs < EVENT_LOG_JOB_MAX && log->msgs.count)
		ring_pop(&log->msgs, &b->msgs[b->nmsgs++]);
	log->in_flight = 1;
	if (workers_submit(log->pool, flush_work, flush_done, log) < 0) {
		/* The pool is stopping: event_log_free writes what is left. */
		log->in_flight = 0;
		batch_return(log);
	}
	update_pending(log);
}

/* on_flush_timer - the interval is up (or the retry wait is over). */
static void on_flush_timer(evutil_socket_t fd, short what, void *arg)
{
	struct event_log *log = arg;
	log->backoff = 0;
	flush_start(log);
}

/* on_wake - complete the syncs that found nothing to wait for. */
static void on_wake(evutil_socket_t fd, short what, void *arg)
{
	complete_syncs(arg, 0);
}

struct event_log *event_log_new(struct event_base *base, struct workers *pool, const char *db_path,
				char *err, size_t errlen)
{
	struct event_log *log = calloc(1, sizeof *log);
	if (!log) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	log->base = base;
	log->pool = pool;
	ring_init(&log->events, sizeof(struct event_record));
	ring_init(&log->msgs, sizeof(struct message_meta));
	if (!(log->rec = records_open(db_path, err, errlen)) ||
	    records_last_event_id(log->rec, &log->last_id, err, errlen) < 0)
		goto fail;
	log->db_path = strdup(db_path);
	log->batch.ev = calloc(EVENT_LOG_JOB_MAX, sizeof *log->batch.ev);
	log->batch.msgs = calloc(EVENT_LOG_JOB_MAX, sizeof *log->batch.msgs);
	log->flush_ev = evtimer_new(base, on_flush_timer, log);
	log->wake_ev = event_new(base, -1, 0, on_wake, log);
	if (!log->db_path || !log->batch.ev || !log->batch.msgs || !log->flush_ev ||
	    !log->wake_ev) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	return log;
fail:
	event_log_free(&log);
	return NULL;
}

/* write_rest - at shutdown, on the calling thread: everything still
 * waiting, batch by batch; on a failure the rest is lost and said so. */
static void write_rest(struct event_log *log)
{
	struct batch *b = &log->batch;
	if (!log->rec || !b->ev || !b->msgs)
		return;
	while (log->events.count || log->msgs.count) {
		while (b->n < EVENT_LOG_JOB_MAX && log->events.count)
			ring_pop(&log->events, &b->ev[b->n++]);
		while (b->nmsgs < EVENT_LOG_JOB_MAX && log->msgs.count)
			ring_pop(&log->msgs, &b->msgs[b->nmsgs++]);
		int rc = records_write_batch(log->rec, b->ev, b->n, b->msgs, b->nmsgs, b->err,
					     sizeof b->err);
		if (rc < 0)
			log_error("events: %zu events not written at shutdown: %s",
				  b->n + log->events.count, b->err);
		batch_clear(b);
		if (rc < 0)
			return;
	}
}

void event_log_free(struct event_log **plog)
{
	struct event_log *log = *plog;
	if (!log)
		return;
	*plog = NULL;
	/* The pool is gone (workers_free ran the last completion), so the
	 * batch is not in flight and the connection is ours. */
	write_rest(log);
	struct event_record ev;
	while (log->events.count) {
		ring_pop(&log->events, &ev);
		event_record_clear(&ev);
	}
	struct message_meta m;
	while (log->msgs.count) {
		ring_pop(&log->msgs, &m);
		message_meta_clear(&m);
	}
	free(log->events.buf);
	free(log->msgs.buf);
	if (log->batch.ev)
		batch_clear(&log->batch);
	free(log->batch.ev);
	free(log->batch.msgs);
	while (log->listeners) {
		struct event_listener *l = log->listeners;
		log->listeners = l->next;
		free(l);
	}
	while (log->sync_head) {
		struct event_sync *s = log->sync_head;
		log->sync_head = s->next;
		free(s);
	}
	if (log->flush_ev)
		event_free(log->flush_ev);
	if (log->wake_ev)
		event_free(log->wake_ev);
	records_close(&log->rec);
	free(log->db_path);
	free(log);
}

/* now_ms - the wall clock, for the record. */
static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* count_latency - a delivery RECEIVED seconds after acceptance. */
static void count_latency(struct event_totals *t, int64_t time_ms, time_t received)
{
	double secs = (double)time_ms / 1000.0 - (double)received;
	if (secs < 0)
		secs = 0; /* the clock stepped back */
	size_t i = 0;
	while (i < EVENT_LATENCY_BUCKETS && secs > event_latency_bounds[i])
		i++;
	t->latency_count[i]++;
	t->latency_sum += secs;
	t->latency_n++;
}

/* sweep_listeners - free the entries unlistened during a callback. */
static void sweep_listeners(struct event_log *log)
{
	struct event_listener **pp = &log->listeners;
	while (*pp) {
		struct event_listener *l = *pp;
		if (l->cb) {
			pp = &l->next;
		} else {
			*pp = l->next;
			free(l);
		}
	}
}

/* notify - hand EV to every listener that was there before it.  EV is a
 * shallow copy: its strings stay valid while callbacks run, because only
 * a flush's completion, which runs from the loop and not from inside a
 * callback, frees them. */
static void notify(struct event_log *log, const struct event_record *ev)
{
	log->emitting++;
	for (struct event_listener *l = log->listeners; l; l = l->next)
		if (l->cb && l->first_id <= ev->id)
			l->cb(l->arg, ev);
	if (--log->emitting == 0)
		sweep_listeners(log);
}

void event_log_emit(struct event_log *log, const struct event_note *n)
{
	if ((unsigned)n->type >= EVENT_NTYPES)
		return;
	struct event_record ev = {0};
	int64_t id = ++log->last_id;
	if (event_record_set(&ev, id, now_ms(), n->type, n->message_id, n->user, n->recipient,
			     n->detail) < 0) {
		log->totals.dropped++;
		log_error("events: out of memory, event %" PRId64 " lost", id);
		return;
	}
	log->totals.count[n->type]++;
	if (n->type == EVENT_DELIVERED && n->received)
		count_latency(&log->totals, ev.time_ms, n->received);
	if (pending_count(log) >= EVENT_LOG_PENDING_MAX && log->events.count)
		drop_oldest_event(log);
	struct event_record copy = ev;
	if (ring_push(&log->events, &ev, 0) < 0) {
		event_record_clear(&ev);
		log->totals.dropped++;
		log_error("events: out of memory, event %" PRId64 " lost", id);
		return;
	}
	update_pending(log);
	schedule(log);
	notify(log, &copy);
}

/* dup_or - a copy of S, or of FALLBACK when S is NULL. */
static char *dup_or(const char *s, const char *fallback)
{
	return strdup(s ? s : fallback);
}

void event_log_message(struct event_log *log, const struct message_meta *m)
{
	struct message_meta c = {.created_ms = m->created_ms};
	memcpy(c.id, m->id, sizeof c.id);
	c.id[sizeof c.id - 1] = '\0';
	c.user = dup_or(m->user, "");
	c.sender = dup_or(m->sender, "");
	c.subject = dup_or(m->subject, "");
	c.tags = dup_or(m->tags, "[]");
	if (!c.user || !c.sender || !c.subject || !c.tags) {
		message_meta_clear(&c);
		log_error("events: out of memory, summary of %s lost", c.id);
		return;
	}
	if (log->msgs.count >= EVENT_LOG_PENDING_MAX) {
		struct message_meta old;
		ring_pop(&log->msgs, &old);
		message_meta_clear(&old);
		log->msgs_settled++;
	}
	if (ring_push(&log->msgs, &c, 0) < 0) {
		log_error("events: out of memory, summary of %s lost", c.id);
		message_meta_clear(&c);
		return;
	}
	log->msgs_queued++;
	schedule(log);
}

void event_log_accepted(struct event_log *log, const struct envelope *env, const char *subject,
			const char *tags, const char *detail)
{
	/* The record only reads these strings (message_meta also carries
	 * strings it owns, when read back). */
	struct message_meta m = {
		.user = env->auth_user ? env->auth_user : (char *)"",
		.sender = env->sender,
		.subject = (char *)(subject ? subject : ""),
		.tags = (char *)(tags ? tags : "[]"),
		.created_ms = (int64_t)env->received * 1000,
	};
	snprintf(m.id, sizeof m.id, "%s", env->id);
	event_log_message(log, &m);
	for (size_t i = 0; i < env->nrcpts; i++) {
		struct event_note n = {
			.type = EVENT_ACCEPTED,
			.message_id = env->id,
			.user = env->auth_user,
			.recipient = env->rcpts[i].address,
			.detail = detail,
			.received = env->received,
		};
		event_log_emit(log, &n);
	}
}

struct event_listener *event_log_listen(struct event_log *log, event_listener_cb cb, void *arg)
{
	struct event_listener *l = calloc(1, sizeof *l);
	if (!l)
		return NULL;
	l->cb = cb;
	l->arg = arg;
	l->first_id = log->last_id + 1;
	/* At the tail: registration order is call order. */
	struct event_listener **pp = &log->listeners;
	while (*pp)
		pp = &(*pp)->next;
	*pp = l;
	return l;
}

void event_log_unlisten(struct event_log *log, struct event_listener **pl)
{
	struct event_listener *l = *pl;
	if (!l)
		return;
	*pl = NULL;
	l->cb = NULL; /* a notify walking the list skips it */
	if (!log->emitting)
		sweep_listeners(log);
}

struct event_sync *event_log_sync(struct event_log *log, void (*done)(void *arg, int ok), void *arg)
{
	struct event_sync *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	s->done = done;
	s->arg = arg;
	s->target = log->last_id;
	s->msg_target = log->msgs_queued;
	s->seq = ++log->sync_seq;
	s->prev = log->sync_tail;
	if (log->sync_tail)
		log->sync_tail->next = s;
	else
		log->sync_head = s;
	log->sync_tail = s;
	if (sync_ready(log, s))
		event_active(log->wake_ev, 0, 0); /* the next loop turn, not from here */
	else
		schedule(log);
	return s;
}

void event_log_sync_cancel(struct event_log *log, struct event_sync **ps)
{
	struct event_sync *s = *ps;
	if (!s)
		return;
	*ps = NULL;
	if (s->prev)
		s->prev->next = s->next;
	else
		log->sync_head = s->next;
	if (s->next)
		s->next->prev = s->prev;
	else
		log->sync_tail = s->prev;
	free(s);
}

const char *event_log_db_path(const struct event_log *log)
{
	return log->db_path;
}

const struct event_totals *event_log_totals(const struct event_log *log)
{
	return &log->totals;
}
