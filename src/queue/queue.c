/* queue.c - after the 250: resolve recipients, deliver local ones into
 * their Maildirs, keep the spool file in step (see queue.h).
 *
 * RFC 5321 6.1: a message the server accepted must be delivered or
 * bounced, never silently lost; so every state change is written to the
 * spool (or the file removed) by the same job that made it, and a failure
 * to write keeps the message in memory to try again.  Delivery prepends
 * Return-Path (RFC 5321 4.4) and Delivered-To (the final mailbox, as
 * Postfix and Dovecot write it).  Alias expansion keeps the original
 * recipient as ORCPT (RFC 3461 4.2, xtext). */
#include "queue/queue.h"

#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/workers.h"
#include "deliver/maildir.h"
#include "spool/spool.h"
#include "store/directory.h"

#define RETRY_FIRST	30   /* default seconds before the first retry */
#define RETRY_MAX	600  /* default: backoff doubles up to this */
#define TARGETS_MAX	256  /* destinations of one recipient */
#define QUEUE_RCPTS_MAX 4096 /* recipients of one message after expansion */
#define PREFIX_MAX	1024 /* Return-Path + Delivered-To */

/* One local delivery of a pass: recipient RCPT into TARGET's Maildir. */
struct delivery {
	size_t rcpt;
	char target[320];
	int err; /* set by the worker: 0 delivered, else errno */
};

enum msg_where { M_READY, M_RUNNING, M_TIMER, M_PARKED };

/* A message the queue holds; owned by the queue (linked in q->msgs). */
struct qmsg {
	struct queue *q;
	struct envelope env;	  /* the loop changes it only while no job runs */
	struct qmsg *prev, *next; /* q->msgs */
	struct qmsg *ready_next;  /* q->ready FIFO */
	enum msg_where where;
	struct event *timer;
	unsigned passes;
	/* The current pass. */
	struct delivery *dl;
	size_t ndl;
	int dirty;     /* envelope changed: the job must write or remove it */
	int store_err; /* the job could not write the spool (errno) */
	int gone;      /* the spool file vanished (deleted by an admin) */
	int removed;   /* every recipient final, spool file removed */
};

struct queue {
	char *data_dir, *hostname;
	struct spool *sp;
	struct workers *pool;
	struct event_base *base;
	struct directory *dir;
	struct qmsg *msgs;
	struct qmsg *ready_head, *ready_tail;
	unsigned running, nready, ntimers;
	size_t nparked;
	int closing;
	struct dir_target *targets; /* TARGETS_MAX, reused by every resolution */
	time_t retry_first, retry_max;
};

/* backoff - seconds to wait after the ATTEMPTS-th failure. */
static time_t backoff(const struct queue *q, unsigned attempts)
{
	time_t d = q->retry_first;
	for (unsigned i = 1; i < attempts && d < q->retry_max; i++)
		d *= 2;
	return d < q->retry_max ? d : q->retry_max;
}

/* safe - ADDR for a log line (network bytes never reach the log raw). */
static const char *safe(char *buf, size_t len, const char *addr)
{
	return log_sanitize(buf, len, addr ? addr : "", addr ? strlen(addr) : 0);
}

/* ---- messages ---- */

static void msg_free(struct qmsg *m)
{
	struct queue *q = m->q;
	if (m->prev)
		m->prev->next = m->next;
	else
		q->msgs = m->next;
	if (m->next)
		m->next->prev = m->prev;
	if (m->where == M_PARKED)
		q->nparked--;
	if (m->where == M_TIMER)
		q->ntimers--;
	if (m->timer)
		event_free(m->timer);
	envelope_free(&m->env);
	free(m->dl);
	free(m);
}

static void pump(struct queue *q);

/* ready_push - M waits for a job slot. */
static void ready_push(struct qmsg *m)
{
	struct queue *q = m->q;
	m->where = M_READY;
	m->ready_next = NULL;
	if (q->ready_tail)
		q->ready_tail->ready_next = m;
	else
		q->ready_head = m;
	q->ready_tail = m;
	q->nready++;
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct qmsg *m = arg;
	m->q->ntimers--;
	ready_push(m);
	pump(m->q);
}

/* schedule - run M's next pass after DELAY seconds (0: as soon as a job
 * slot is free).  Without a loop for timers, a delayed pass waits for the
 * next start: the message stays in the spool. */
static void schedule(struct qmsg *m, time_t delay)
{
	struct queue *q = m->q;
	if (delay <= 0) {
		ready_push(m);
		pump(q);
		return;
	}
	if (!q->base || (!m->timer && !(m->timer = evtimer_new(q->base, on_timer, m)))) {
		log_warn("%s: no retry timer; the delivery is retried at the next start",
			 m->env.id);
		m->where = M_PARKED;
		q->nparked++;
		return;
	}
	struct timeval tv = {delay, 0};
	evtimer_add(m->timer, &tv);
	m->where = M_TIMER;
	q->ntimers++;
}

/* first_due - seconds until the earliest queued recipient is due. */
static time_t first_due(const struct queue *q, const struct envelope *env)
{
	time_t now = time(NULL), due = 0;
	int any = 0;
	for (size_t i = 0; i < env->nrcpts; i++) {
		const struct envelope_rcpt *r = &env->rcpts[i];
		if (r->state != RCPT_QUEUED)
			continue;
		time_t d = r->next_attempt > now ? r->next_attempt - now : 0;
		if (!any || d < due)
			due = d;
		any = 1;
	}
	return due > q->retry_max ? q->retry_max : due;
}

/* msg_take - a new queue entry owning ENV's contents (ENV is emptied). */
static struct qmsg *msg_take(struct queue *q, struct envelope *env)
{
	struct qmsg *m = calloc(1, sizeof *m);
	if (!m)
		return NULL;
	m->q = q;
	m->env = *env;
	envelope_init(env);
	m->next = q->msgs;
	if (q->msgs)
		q->msgs->prev = m;
	q->msgs = m;
	return m;
}

/* ---- resolution (loop) ---- */

/* bounce - recipient I is final with a 5xx.  The DSN to the sender comes
 * with the relay stage; until then the log line is the record. */
static void bounce(struct qmsg *m, size_t i, const char *reply)
{
	struct envelope_rcpt *r = &m->env.rcpts[i];
	char a[128];
	r->state = RCPT_BOUNCED;
	r->attempts++;
	envelope_set_reply(r, reply);
	m->dirty = 1;
	log_warn("%s: to=<%s> bounced: %s (no bounce message is sent yet)", m->env.id,
		 safe(a, sizeof a, r->address), reply);
}

static int add_delivery(struct qmsg *m, size_t i, const char *target)
{
	struct delivery *d = realloc(m->dl, (m->ndl + 1) * sizeof *d);
	if (!d)
		return -1;
	m->dl = d;
	d = &m->dl[m->ndl++];
	d->rcpt = i;
	snprintf(d->target, sizeof d->target, "%s", target);
	d->err = 0;
	return 0;
}

/* xtext_orcpt - "rfc822;" ADDR in RFC 3461 xtext ('+', '=', and bytes
 * outside 33..126 as +XX) into OUT; -1 when it does not fit. */
static int xtext_orcpt(char *out, size_t outlen, const char *addr)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = (size_t)snprintf(out, outlen, "rfc822;");
	for (const unsigned char *p = (const unsigned char *)addr; *p; p++) {
		if (o + 4 >= outlen)
			return -1;
		if (*p < 33 || *p > 126 || *p == '+' || *p == '=') {
			out[o++] = '+';
			out[o++] = hex[*p >> 4];
			out[o++] = hex[*p & 15];
		} else {
			out[o++] = (char)*p;
		}
	}
	out[o] = '\0';
	return 0;
}

static int has_rcpt(const struct envelope *env, const char *addr)
{
	for (size_t i = 0; i < env->nrcpts; i++)
		if (!strcasecmp(env->rcpts[i].address, addr))
			return 1;
	return 0;
}

/* expand - recipient I resolved to N targets: each becomes a recipient of
 * its own (unless already one), and I is done.  Its NOTIFY and ORCPT pass
 * on, so a later DSN names the address the sender used. */
static void expand(struct qmsg *m, size_t i, const struct dir_target *t, size_t n)
{
	char orcpt[512], a[128];
	size_t fresh = 0;
	for (size_t k = 0; k < n; k++)
		fresh += !has_rcpt(&m->env, t[k].address);
	if (m->env.nrcpts + fresh > QUEUE_RCPTS_MAX) {
		bounce(m, i, "550 5.3.0 Too many recipients after alias expansion");
		return;
	}
	const struct envelope_rcpt *r = &m->env.rcpts[i];
	const char *o = r->orcpt;
	if (!o)
		o = xtext_orcpt(orcpt, sizeof orcpt, r->address) == 0 ? orcpt : NULL;
	for (size_t k = 0; k < n; k++) {
		if (has_rcpt(&m->env, t[k].address))
			continue;
		/* May move the array: R is looked up again below. */
		if (envelope_add_rcpt(&m->env, t[k].address, o, m->env.rcpts[i].notify) < 0) {
			log_error("%s: out of memory expanding an alias", m->env.id);
			return; /* I stays queued: the next pass expands again */
		}
	}
	struct envelope_rcpt *ri = &m->env.rcpts[i];
	char reply[96];
	snprintf(reply, sizeof reply, "250 2.1.5 Alias expanded to %zu address(es)", n);
	ri->state = RCPT_DELIVERED;
	envelope_set_reply(ri, reply);
	m->dirty = 1;
	log_info("%s: to=<%s> expanded to %zu address(es)", m->env.id,
		 safe(a, sizeof a, ri->address), n);
}

static void waiting_for_relay(struct qmsg *m, size_t i)
{
	char a[128];
	if (m->passes == 0)
		log_info("%s: to=<%s> waiting for relay", m->env.id,
			 safe(a, sizeof a, m->env.rcpts[i].address));
}

/* resolve - decide what this pass does for queued recipient I. */
static void resolve(struct qmsg *m, size_t i)
{
	struct queue *q = m->q;
	size_t n = 0;
	const char *addr = m->env.rcpts[i].address;
	char reply[512], a[128];
	switch (directory_resolve(q->dir, addr, q->targets, TARGETS_MAX, &n)) {
	case DIR_NOT_LOCAL:
		waiting_for_relay(m, i);
		return;
	case DIR_UNKNOWN:
		snprintf(reply, sizeof reply, "550 5.1.1 <%s>: no such user here",
			 safe(a, sizeof a, addr));
		bounce(m, i, reply);
		return;
	case DIR_LOOP:
		snprintf(reply, sizeof reply, "550 5.4.6 <%s>: alias loop or too deep",
			 safe(a, sizeof a, addr));
		bounce(m, i, reply);
		return;
	case DIR_OK:
		break;
	}
	if (n == 0) {
		bounce(m, i, "550 5.1.1 Alias has no destination");
	} else if (n == 1 && q->targets[0].local) {
		if (add_delivery(m, i, q->targets[0].address) < 0)
			log_error("%s: out of memory", m->env.id); /* next pass */
	} else if (n == 1 && !strcasecmp(q->targets[0].address, addr)) {
		waiting_for_relay(m, i);
	} else {
		if (n == TARGETS_MAX)
			log_warn("%s: alias of %zu or more targets cut", m->env.id, n);
		expand(m, i, q->targets, n);
	}
}

static int all_final(const struct envelope *env)
{
	for (size_t i = 0; i < env->nrcpts; i++)
		if (env->rcpts[i].state == RCPT_QUEUED)
			return 0;
	return 1;
}

/* ---- the delivery job (worker thread) ---- */

/* header_value - S with control bytes replaced, so a header we write is
 * one line whatever the envelope holds. */
static void header_value(char *out, size_t outlen, const char *s)
{
	size_t o = 0;
	for (; s && *s && o + 1 < outlen; s++)
		out[o++] = ((unsigned char)*s < 0x20 || *s == 0x7f) ? '?' : *s;
	out[o] = '\0';
}

/* deliver_one - D's Maildir gets the prefix and the body; 0 or an errno. */
static int deliver_one(const struct queue *q, const struct qmsg *m, const struct delivery *d,
		       int fd, long off, size_t size)
{
	char prefix[PREFIX_MAX], sender[400], target[400], local[320];
	header_value(sender, sizeof sender, m->env.sender);
	header_value(target, sizeof target, d->target);
	int n = snprintf(prefix, sizeof prefix, "Return-Path: <%s>\r\nDelivered-To: %s\r\n", sender,
			 target);
	if (n < 0 || (size_t)n >= sizeof prefix)
		return ENAMETOOLONG;
	const char *at = strrchr(d->target, '@');
	if (!at || at == d->target)
		return EINVAL;
	snprintf(local, sizeof local, "%.*s", (int)(at - d->target), d->target);
	errno = 0;
	if (maildir_deliver(q->data_dir, local, at + 1, q->hostname, prefix, (size_t)n, fd, off,
			    size) < 0)
		return errno ? errno : EIO;
	return 0;
}

/* record_results - the pass's outcome into the envelope (still on the
 * worker: the loop leaves the message alone while its job runs). */
static void record_results(struct qmsg *m)
{
	time_t now = time(NULL);
	for (size_t k = 0; k < m->ndl; k++) {
		struct envelope_rcpt *r = &m->env.rcpts[m->dl[k].rcpt];
		int err = m->dl[k].err;
		r->attempts++;
		if (!err) {
			r->state = RCPT_DELIVERED;
			r->next_attempt = 0;
			envelope_set_reply(r, "250 2.0.0 Delivered to maildir");
		} else {
			char reply[256], buf[128];
			snprintf(reply, sizeof reply, "451 4.3.0 Maildir delivery failed: %s",
				 strerror_r(err, buf, sizeof buf));
			r->next_attempt = now + backoff(m->q, r->attempts);
			envelope_set_reply(r, reply);
		}
		m->dirty = 1;
	}
}

/* deliver_work - deliver, then make the new state durable: remove the
 * spool file when every recipient is final, else rewrite its envelope. */
static void deliver_work(void *arg)
{
	struct qmsg *m = arg;
	const struct queue *q = m->q;
	long off = 0;
	size_t size = 0;
	int fd = -1, open_err = 0;
	if (m->ndl && (fd = spool_open_body(q->sp, m->env.id, &off, &size)) < 0) {
		open_err = errno;
		if (open_err == ENOENT) {
			m->gone = 1;
			return;
		}
	}
	for (size_t k = 0; k < m->ndl; k++)
		m->dl[k].err = fd < 0 ? open_err : deliver_one(q, m, &m->dl[k], fd, off, size);
	if (fd >= 0)
		close(fd);
	record_results(m);
	if (!m->dirty)
		return;
	int rc = all_final(&m->env) ? spool_remove(q->sp, m->env.id)
				    : spool_update_envelope(q->sp, &m->env);
	if (rc < 0 && errno == ENOENT)
		m->gone = 1;
	else if (rc < 0)
		m->store_err = errno;
	else
		m->removed = all_final(&m->env);
}

/* ---- after the job (loop) ---- */

static void log_results(const struct qmsg *m)
{
	char a[128], t[128], buf[128];
	for (size_t k = 0; k < m->ndl; k++) {
		const struct delivery *d = &m->dl[k];
		const char *addr = m->env.rcpts[d->rcpt].address;
		safe(a, sizeof a, addr);
		if (d->err) {
			log_warn("%s: to=<%s> deferred: %s", m->env.id, a,
				 strerror_r(d->err, buf, sizeof buf));
		} else if (strcasecmp(addr, d->target)) {
			log_info("%s: to=<%s> delivered to maildir (mailbox %s)", m->env.id, a,
				 safe(t, sizeof t, d->target));
		} else {
			log_info("%s: to=<%s> delivered to maildir", m->env.id, a);
		}
	}
}

/* retry_delay - seconds until the earliest recipient that failed in this
 * pass is due (recipients waiting for relay do not count). */
static time_t retry_delay(const struct qmsg *m)
{
	time_t now = time(NULL), delay = 0;
	for (size_t k = 0; k < m->ndl; k++) {
		if (!m->dl[k].err)
			continue;
		time_t next = m->env.rcpts[m->dl[k].rcpt].next_attempt;
		time_t d = next > now ? next - now : 1;
		if (!delay || d < delay)
			delay = d;
	}
	return delay;
}

static void queue_destroy(struct queue *q)
{
	if (q->dir)
		directory_unref(&q->dir);
	free(q->targets);
	free(q->data_dir);
	free(q->hostname);
	free(q);
}

/* end_pass - what M waits for now: a retry, the relay stage, or nothing. */
static void end_pass(struct qmsg *m)
{
	time_t delay = retry_delay(m);
	if (m->store_err) {
		char buf[128];
		log_error("%s: cannot update the spool: %s; retrying", m->env.id,
			  strerror_r(m->store_err, buf, sizeof buf));
		if (!delay || delay > m->q->retry_first)
			delay = m->q->retry_first; /* m->dirty stays set: written next pass */
	} else {
		m->dirty = 0;
	}
	free(m->dl);
	m->dl = NULL;
	m->ndl = 0;
	if (delay) {
		schedule(m, delay);
	} else if (!all_final(&m->env)) {
		m->where = M_PARKED; /* recipients waiting for relay */
		m->q->nparked++;
	} else {
		msg_free(m);
	}
}

static void deliver_done(void *arg)
{
	struct qmsg *m = arg;
	struct queue *q = m->q;
	q->running--;
	m->passes++;
	if (q->closing) {
		msg_free(m);
		if (!q->running)
			queue_destroy(q);
		return;
	}
	log_results(m);
	if (m->gone) {
		log_warn("%s: no longer in the spool; dropped from the queue", m->env.id);
		msg_free(m);
	} else if (m->removed) {
		log_info("%s: removed (every recipient done)", m->env.id);
		msg_free(m);
	} else {
		end_pass(m);
	}
	pump(q);
}

/* start_pass - resolve M's queued recipients and start its job, or park it
 * when nothing is left to do here. */
static void start_pass(struct qmsg *m)
{
	struct queue *q = m->q;
	if (!q->dir) {
		log_warn("%s: no account directory yet; retrying", m->env.id);
		schedule(m, q->retry_first);
		return;
	}
	m->store_err = 0;
	m->gone = m->removed = 0;
	/* Expansion appends recipients: they are resolved in this pass too. */
	for (size_t i = 0; i < m->env.nrcpts; i++)
		if (m->env.rcpts[i].state == RCPT_QUEUED)
			resolve(m, i);
	if (all_final(&m->env))
		m->dirty = 1; /* e.g. recovered after a crash before removal */
	if (!m->ndl && !m->dirty) {
		m->where = M_PARKED;
		q->nparked++;
		m->passes++;
		return;
	}
	m->where = M_RUNNING;
	q->running++;
	if (workers_submit(q->pool, deliver_work, deliver_done, m) < 0) {
		q->running--;
		free(m->dl);
		m->dl = NULL;
		m->ndl = 0;
		schedule(m, q->retry_first);
	}
}

static void pump(struct queue *q)
{
	while (q->running < QUEUE_MAX_JOBS && q->ready_head && !q->closing) {
		struct qmsg *m = q->ready_head;
		q->ready_head = m->ready_next;
		if (!q->ready_head)
			q->ready_tail = NULL;
		q->nready--;
		start_pass(m);
	}
}

/* ---- public ---- */

struct queue *queue_new(const struct queue_config *cfg, struct spool *sp, struct workers *pool)
{
	struct queue *q = calloc(1, sizeof *q);
	if (!q)
		return NULL;
	q->data_dir = strdup(cfg->data_dir ? cfg->data_dir : ".");
	q->hostname = strdup(cfg->hostname ? cfg->hostname : "localhost");
	q->targets = calloc(TARGETS_MAX, sizeof *q->targets);
	if (!q->data_dir || !q->hostname || !q->targets) {
		queue_destroy(q);
		return NULL;
	}
	q->sp = sp;
	q->pool = pool;
	q->base = cfg->base;
	q->retry_first = cfg->retry_first ? cfg->retry_first : RETRY_FIRST;
	q->retry_max = cfg->retry_max ? cfg->retry_max : RETRY_MAX;
	if (q->retry_max < q->retry_first)
		q->retry_max = q->retry_first;
	if (!q->base)
		log_warn("queue: no event loop given; deferred deliveries wait for a restart");
	return q;
}

void queue_free(struct queue **pq)
{
	struct queue *q = *pq;
	if (!q)
		return;
	*pq = NULL;
	q->closing = 1;
	struct qmsg *next;
	for (struct qmsg *m = q->msgs; m; m = next) {
		next = m->next;
		if (m->where != M_RUNNING)
			msg_free(m); /* still in the spool for the next start */
	}
	q->ready_head = q->ready_tail = NULL;
	if (!q->running)
		queue_destroy(q); /* else the last deliver_done does */
}

void queue_set_directory(struct queue *q, struct directory *d)
{
	if (q->dir)
		directory_unref(&q->dir);
	q->dir = d ? directory_ref(d) : NULL;
}

long queue_recover(struct queue *q)
{
	size_t n = 0;
	char **ids = spool_list(q->sp, &n);
	if (!ids && errno)
		return -1;
	long found = 0;
	for (size_t i = 0; i < n; i++) {
		struct envelope env;
		char buf[128];
		if (spool_read_envelope(q->sp, ids[i], &env) < 0) {
			log_error("%s: unreadable envelope (%s); left in the spool", ids[i],
				  strerror_r(errno, buf, sizeof buf));
		} else {
			struct qmsg *m = msg_take(q, &env);
			if (!m) {
				envelope_free(&env);
				log_error("%s: out of memory; recovered at next start", ids[i]);
			} else {
				found++;
				schedule(m, first_due(q, &m->env));
			}
		}
		free(ids[i]);
	}
	free(ids);
	return found;
}

void queue_add(struct queue *q, const struct envelope *env)
{
	struct envelope copy;
	if (envelope_copy(&copy, env) < 0) {
		log_error("%s: out of memory; delivered after the next start", env->id);
		return;
	}
	struct qmsg *m = msg_take(q, &copy);
	if (!m) {
		envelope_free(&copy);
		log_error("%s: out of memory; delivered after the next start", env->id);
		return;
	}
	schedule(m, first_due(q, &m->env));
}

int queue_idle(const struct queue *q)
{
	return q->running == 0 && q->nready == 0 && q->ntimers == 0;
}

size_t queue_parked(const struct queue *q)
{
	return q->nparked;
}
