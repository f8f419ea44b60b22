/* queue.c - after the 250: the messages, their schedule, recipient
 * resolution and local delivery into Maildirs (see queue.h; the remote
 * half of a pass is relay_pass.c, the steps are in queue_private.h).
 *
 * RFC 5321 6.1: a message the server accepted must be delivered or
 * bounced, never silently lost; so every state change is written to the
 * spool (or the file removed) by the pass that made it, and a failure to
 * write keeps the message in memory to try again.  Delivery prepends
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
#include "queue/queue_private.h"
#include "spool/spool.h"
#include "store/directory.h"

#define RETRY_FIRST	30   /* default seconds before the first local retry */
#define RETRY_MAX	600  /* default: backoff doubles up to this */
#define TARGETS_MAX	256  /* destinations of one recipient */
#define QUEUE_RCPTS_MAX 4096 /* recipients of one message after expansion */
#define PREFIX_MAX	1024 /* Return-Path + Delivered-To */
#define DEFAULT_LIFETIME (5 * 86400u)
#define DEFAULT_DELAY_WARNING (4 * 3600u)

/* backoff - seconds to wait after the ATTEMPTS-th failed local delivery. */
static time_t backoff(const struct queue *q, unsigned attempts)
{
	time_t d = q->retry_first;
	for (unsigned i = 1; i < attempts && d < q->retry_max; i++)
		d *= 2;
	return d < q->retry_max ? d : q->retry_max;
}

const char *queue_safe(char *buf, size_t len, const char *s)
{
	return log_sanitize(buf, len, s ? s : "", s ? strlen(s) : 0);
}

int queue_sender_is_local(const struct queue *q, const char *sender)
{
	return q->dir && sender && *sender && directory_user(q->dir, sender) != NULL;
}

int qmsg_all_final(const struct envelope *env)
{
	for (size_t i = 0; i < env->nrcpts; i++)
		if (env->rcpts[i].state == RCPT_QUEUED)
			return 0;
	return 1;
}

/* ---- messages and their schedule ---- */

void qmsg_set_where(struct qmsg *m, enum msg_where w)
{
	m->q->count[m->where]--;
	m->q->count[w]++;
	m->where = w;
}

void qmsg_free(struct qmsg *m)
{
	struct queue *q = m->q;
	qmsg_unschedule(m);
	q->count[m->where]--;
	if (m->prev)
		m->prev->next = m->next;
	else
		q->msgs = m->next;
	if (m->next)
		m->next->prev = m->prev;
	if (m->timer)
		event_free(m->timer);
	admin_abandon(m);
	pass_release(m);
	envelope_free(&m->env);
	free(m);
}

/* ready_push - M waits for a pass slot. */
static void ready_push(struct qmsg *m)
{
	struct queue *q = m->q;
	qmsg_set_where(m, M_READY);
	m->ready_next = NULL;
	if (q->ready_tail)
		q->ready_tail->ready_next = m;
	else
		q->ready_head = m;
	q->ready_tail = m;
}

void qmsg_unschedule(struct qmsg *m)
{
	struct queue *q = m->q;
	if (m->where == M_READY) {
		struct qmsg *prev = NULL;
		for (struct qmsg *x = q->ready_head; x; prev = x, x = x->ready_next) {
			if (x != m)
				continue;
			if (prev)
				prev->ready_next = m->ready_next;
			else
				q->ready_head = m->ready_next;
			if (q->ready_tail == m)
				q->ready_tail = prev;
			break;
		}
	} else if (m->where == M_TIMER) {
		evtimer_del(m->timer);
	} else if (m->where == M_RUNNING) {
		return; /* the pass decides what comes next */
	}
	qmsg_set_where(m, M_PARKED);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct qmsg *m = arg;
	qmsg_set_where(m, M_PARKED);
	qmsg_schedule(m, 0);
}

/* qmsg_schedule - run M's next pass after DELAY seconds (0: as soon as a
 * slot is free).  Without a loop for timers, a delayed pass waits for the
 * next start: the message stays in the spool. */
void qmsg_schedule(struct qmsg *m, time_t delay)
{
	struct queue *q = m->q;
	qmsg_unschedule(m);
	if (m->env.held) {
		qmsg_set_where(m, M_HELD);
		return;
	}
	if (delay <= 0) {
		ready_push(m);
		queue_pump(q);
		return;
	}
	if (!q->base || (!m->timer && !(m->timer = evtimer_new(q->base, on_timer, m)))) {
		log_warn("%s: no retry timer; the delivery is retried at the next start",
			 m->env.id);
		return; /* parked */
	}
	struct timeval tv = {delay, 0};
	evtimer_add(m->timer, &tv);
	qmsg_set_where(m, M_TIMER);
}

void qmsg_job_begin(struct qmsg *m)
{
	m->jobs++;
	m->q->jobs++;
}

static void queue_destroy(struct queue *q);

int qmsg_job_end(struct qmsg *m)
{
	struct queue *q = m->q;
	m->jobs--;
	q->jobs--;
	if (!q->closing)
		return 0;
	if (!m->jobs)
		qmsg_free(m);
	if (!q->jobs)
		queue_destroy(q);
	return 1;
}

int qmsg_submit(struct qmsg *m, void (*work)(void *), void (*done)(void *))
{
	qmsg_job_begin(m);
	if (workers_submit(m->q->pool, work, done, m) == 0)
		return 0;
	m->jobs--;
	m->q->jobs--;
	return -1;
}

/* next_due - seconds until M needs its next pass: the earliest queued
 * recipient, or the delay warning; -1 when nothing is queued.  Without a
 * relay, remote recipients (due, never acted on) do not count: the message
 * is parked until a restart. */
static time_t next_due(const struct qmsg *m)
{
	const struct queue *q = m->q;
	time_t now = time(NULL), due = -1;
	for (size_t i = 0; i < m->env.nrcpts; i++) {
		const struct envelope_rcpt *r = &m->env.rcpts[i];
		if (r->state != RCPT_QUEUED || (!q->relay && m->passes && r->next_attempt <= now))
			continue;
		time_t d = r->next_attempt > now ? r->next_attempt - now : 0;
		if (due < 0 || d < due)
			due = d;
	}
	if (due > 0 && !m->env.delay_warned && q->relay) {
		time_t warn = retry_delay_warning_at(&q->policy, m->env.received);
		if (warn && warn - now < due)
			due = warn > now ? warn - now : 0;
	}
	return due;
}

/* msg_take - a new queue entry owning ENV's contents (ENV is emptied). */
static struct qmsg *msg_take(struct queue *q, struct envelope *env)
{
	struct qmsg *m = calloc(1, sizeof *m);
	if (!m)
		return NULL;
	m->q = q;
	m->env = *env;
	m->fd = -1;
	m->where = M_PARKED;
	q->count[M_PARKED]++;
	envelope_init(env);
	m->next = q->msgs;
	if (q->msgs)
		q->msgs->prev = m;
	q->msgs = m;
	return m;
}

/* ---- resolution (loop) ---- */

/* grow_rp - M's pass record covers every recipient (expansion adds some).
 * 0, or -1 when out of memory. */
static int grow_rp(struct qmsg *m)
{
	if (m->nrp >= m->env.nrcpts && m->rp)
		return 0;
	size_t n = m->env.nrcpts ? m->env.nrcpts : 1;
	struct rcpt_pass *rp = realloc(m->rp, n * sizeof *rp);
	if (!rp)
		return -1;
	memset(rp + m->nrp, 0, (n - m->nrp) * sizeof *rp);
	m->rp = rp;
	m->nrp = n;
	return 0;
}

/* bounce - recipient I is final with a 5xx decided here. */
static void bounce(struct qmsg *m, size_t i, const char *reply)
{
	struct envelope_rcpt *r = &m->env.rcpts[i];
	char a[128];
	r->state = RCPT_BOUNCED;
	r->attempts++;
	r->last_attempt = m->now;
	envelope_set_reply(r, reply);
	envelope_set_mta(r, NULL);
	m->rp[i].mark = PM_BOUNCED; /* in this pass's report */
	m->dirty = 1;
	log_warn("%s: to=<%s> bounced: %s", m->env.id, queue_safe(a, sizeof a, r->address), reply);
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
		if (envelope_add_rcpt(&m->env, t[k].address, o, m->env.rcpts[i].notify) < 0 ||
		    grow_rp(m) < 0) {
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
		 queue_safe(a, sizeof a, ri->address), n);
}

/* resolve - decide what this pass does for queued recipient I: a local
 * delivery, a bounce, an expansion, or (returns 1) the relay. */
static int resolve(struct qmsg *m, size_t i)
{
	struct queue *q = m->q;
	size_t n = 0;
	const char *addr = m->env.rcpts[i].address;
	char reply[512], a[128];
	switch (directory_resolve(q->dir, addr, q->targets, TARGETS_MAX, &n)) {
	case DIR_NOT_LOCAL:
		return 1;
	case DIR_UNKNOWN:
		snprintf(reply, sizeof reply, "550 5.1.1 <%s>: no such user here",
			 queue_safe(a, sizeof a, addr));
		bounce(m, i, reply);
		return 0;
	case DIR_LOOP:
		snprintf(reply, sizeof reply, "550 5.4.6 <%s>: alias loop or too deep",
			 queue_safe(a, sizeof a, addr));
		bounce(m, i, reply);
		return 0;
	case DIR_OK:
		break;
	}
	if (n == 0) {
		bounce(m, i, "550 5.1.1 Alias has no destination");
	} else if (n == 1 && q->targets[0].local) {
		if (add_delivery(m, i, q->targets[0].address) < 0)
			log_error("%s: out of memory", m->env.id); /* next pass */
	} else if (n == 1 && !strcasecmp(q->targets[0].address, addr)) {
		return 1;
	} else {
		if (n == TARGETS_MAX)
			log_warn("%s: alias of %zu or more targets cut", m->env.id, n);
		expand(m, i, q->targets, n);
	}
	return 0;
}

/* ---- the local step (worker thread) ---- */

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
static int deliver_one(const struct queue *q, const struct qmsg *m, const struct delivery *d)
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
	/* The spool id and the recipient's index name this delivery: a pass
	 * repeated after a crash finds it in new/ instead of storing it twice. */
	char key[MAILDIR_KEY_MAX + 1];
	snprintf(key, sizeof key, "%s-%zu", m->env.id, d->rcpt);
	errno = 0;
	if (maildir_deliver_once(q->data_dir, local, at + 1, q->hostname,
				 (long long)m->env.received, key, prefix, (size_t)n, m->fd, m->off,
				 m->size) < 0)
		return errno ? errno : EIO;
	return 0;
}

/* local_work - open the body once for the whole pass (local deliveries,
 * the relay, the reports), then deliver the local recipients. */
static void local_work(void *arg)
{
	struct qmsg *m = arg;
	int open_err = 0;
	if ((m->ndl || m->nparts) && m->fd < 0 &&
	    (m->fd = spool_open_body(m->q->sp, m->env.id, &m->off, &m->size)) < 0) {
		open_err = errno ? errno : EIO;
		if (open_err == ENOENT) {
			m->gone = 1;
			return;
		}
	}
	for (size_t k = 0; m->dl && k < m->ndl; k++)
		m->dl[k].err = m->fd < 0 ? open_err : deliver_one(m->q, m, &m->dl[k]);
}

/* ---- after the local step (loop) ---- */

/* local_results - the local deliveries' outcome into the envelope. */
static void local_results(struct qmsg *m)
{
	char a[128], t[128], buf[128], reply[256];
	for (size_t k = 0; k < m->ndl; k++) {
		const struct delivery *d = &m->dl[k];
		struct envelope_rcpt *r = &m->env.rcpts[d->rcpt];
		queue_safe(a, sizeof a, r->address);
		r->attempts++;
		r->last_attempt = m->now;
		envelope_set_mta(r, NULL);
		m->dirty = 1;
		if (d->err) {
			/* GNU strerror_r may return a static string instead of
			 * filling BUF: use what it returns. */
			const char *why = strerror_r(d->err, buf, sizeof buf);
			snprintf(reply, sizeof reply, "451 4.3.0 Maildir delivery failed: %s", why);
			r->next_attempt = m->now + backoff(m->q, r->attempts);
			envelope_set_reply(r, reply);
			m->rp[d->rcpt].mark = PM_DEFERRED;
			log_warn("%s: to=<%s> deferred: %s", m->env.id, a, why);
			continue;
		}
		r->state = RCPT_DELIVERED;
		r->next_attempt = 0;
		envelope_set_reply(r, "250 2.0.0 Delivered to maildir");
		m->rp[d->rcpt].mark = PM_DELIVERED;
		m->rp[d->rcpt].local_mbox = 1;
		if (strcasecmp(r->address, d->target))
			log_info("%s: to=<%s> delivered to maildir (mailbox %s)", m->env.id, a,
				 queue_safe(t, sizeof t, d->target));
		else
			log_info("%s: to=<%s> delivered to maildir", m->env.id, a);
	}
}

static void queue_destroy(struct queue *q)
{
	if (q->dir)
		directory_unref(&q->dir);
	free(q->targets);
	free(q->intervals);
	free(q->data_dir);
	free(q->hostname);
	free(q);
}

static void local_done(void *arg)
{
	struct qmsg *m = arg;
	struct queue *q = m->q;
	if (qmsg_job_end(m))
		return;
	q->busy--; /* the rest of the pass waits for the network, not the pool */
	if (m->gone) {
		qmsg_end_pass(m);
	} else {
		local_results(m);
		pass_remote(m);
	}
	queue_pump(q);
}

/* qmsg_end_pass - the pass's results are durable (or could not be
 * written): wait for the next due recipient, or for nothing. */
void qmsg_end_pass(struct qmsg *m)
{
	struct queue *q = m->q;
	int store_err = m->store_err;
	m->passes++;
	if (!m->gone)
		queue_record_pass(m);
	pass_release(m);
	qmsg_set_where(m, M_PARKED);
	if (m->gone) {
		log_warn("%s: no longer in the spool; dropped from the queue", m->env.id);
		qmsg_free(m);
	} else if (m->removed) {
		log_info("%s: removed (every recipient done)", m->env.id);
		qmsg_free(m);
	} else if (m->op != ADMIN_NONE) {
		admin_run(m);
	} else {
		time_t delay = next_due(m);
		if (store_err) {
			char buf[128];
			log_error("%s: cannot update the spool: %s; retrying", m->env.id,
				  strerror_r(store_err, buf, sizeof buf));
			if (delay < 0 || delay > q->retry_first)
				delay = q->retry_first; /* m->dirty stays set */
		}
		/* A recipient still due now was not acted on (no memory, no
		 * pool): a second's pause keeps that from spinning. */
		if (m->flush)
			delay = 0;
		else if (delay == 0)
			delay = 1;
		m->flush = 0;
		if (delay >= 0)
			qmsg_schedule(m, delay);
	}
	queue_pump(q);
}

/* start_pass - resolve M's due recipients and start its local step. */
static void start_pass(struct qmsg *m)
{
	struct queue *q = m->q;
	if (!q->dir) {
		log_warn("%s: no account directory yet; retrying", m->env.id);
		qmsg_schedule(m, q->retry_first);
		return;
	}
	m->store_err = 0;
	m->gone = m->removed = 0;
	m->now = time(NULL);
	qmsg_set_where(m, M_RUNNING);
	if (grow_rp(m) < 0) {
		log_error("%s: out of memory; retrying", m->env.id);
		m->store_err = ENOMEM;
		qmsg_end_pass(m);
		return;
	}
	size_t *remote = NULL, nremote = 0;
	/* Expansion appends recipients: they are resolved in this pass too. */
	for (size_t i = 0; i < m->env.nrcpts; i++) {
		struct envelope_rcpt *r = &m->env.rcpts[i];
		if (r->state != RCPT_QUEUED || r->next_attempt > m->now || !resolve(m, i))
			continue;
		if (!q->relay)
			continue; /* nothing can send it: it waits (parked) */
		size_t *grown = realloc(remote, (nremote + 1) * sizeof *grown);
		if (!grown)
			continue; /* stays queued: the next pass */
		remote = grown;
		remote[nremote++] = i;
	}
	if (qmsg_all_final(&m->env))
		m->dirty = 1; /* e.g. recovered after a crash before removal */
	int grouped = pass_group(m, remote, nremote);
	free(remote);
	if (grouped < 0) {
		log_error("%s: out of memory; retrying", m->env.id);
		m->store_err = ENOMEM;
		qmsg_end_pass(m);
		return;
	}
	q->busy++;
	if ((m->ndl || m->nparts) && qmsg_submit(m, local_work, local_done) == 0)
		return;
	q->busy--;
	m->ndl = 0; /* no pool: nothing delivered, the recipients stay queued */
	pass_remote(m);
}

/* At most this many passes at once: each holds its message's body open
 * while it waits for the relay, so a backlog must not hold a descriptor
 * per message. */
#define QUEUE_MAX_PASSES 256

void queue_pump(struct queue *q)
{
	/* A pass may end at once and pump again: the outer loop goes on. */
	if (q->pumping)
		return;
	q->pumping = 1;
	while (q->busy < QUEUE_MAX_JOBS && q->count[M_RUNNING] < QUEUE_MAX_PASSES &&
	       q->ready_head && !q->closing) {
		struct qmsg *m = q->ready_head;
		q->ready_head = m->ready_next;
		if (!q->ready_head)
			q->ready_tail = NULL;
		start_pass(m);
	}
	q->pumping = 0;
}

/* ---- public ---- */

/* set_policy - copy P (NULL: the defaults) into Q. */
static int set_policy(struct queue *q, const struct retry_policy *p)
{
	static const unsigned fallback = RETRY_DEFAULT_INTERVAL;
	struct retry_policy d = {&fallback, 1, DEFAULT_LIFETIME, DEFAULT_DELAY_WARNING};
	if (!p)
		p = &d;
	size_t n = p->nintervals ? p->nintervals : 1;
	unsigned *iv = calloc(n, sizeof *iv);
	if (!iv)
		return -1;
	if (p->nintervals)
		memcpy(iv, p->intervals, n * sizeof *iv);
	else
		iv[0] = RETRY_DEFAULT_INTERVAL;
	free(q->intervals);
	q->intervals = iv;
	q->policy = *p;
	q->policy.intervals = iv;
	q->policy.nintervals = n;
	return 0;
}

struct queue *queue_new(const struct queue_config *cfg, struct spool *sp, struct workers *pool)
{
	struct queue *q = calloc(1, sizeof *q);
	if (!q)
		return NULL;
	q->data_dir = strdup(cfg->data_dir ? cfg->data_dir : ".");
	q->hostname = strdup(cfg->hostname ? cfg->hostname : "localhost");
	q->targets = calloc(TARGETS_MAX, sizeof *q->targets);
	if (!q->data_dir || !q->hostname || !q->targets || set_policy(q, cfg->policy) < 0) {
		queue_destroy(q);
		return NULL;
	}
	q->sp = sp;
	q->pool = pool;
	q->base = cfg->base;
	q->relay = cfg->relay;
	q->events = cfg->events;
	q->sending = cfg->sending;
	q->retry_first = cfg->retry_first ? cfg->retry_first : RETRY_FIRST;
	q->retry_max = cfg->retry_max ? cfg->retry_max : RETRY_MAX;
	if (q->retry_max < q->retry_first)
		q->retry_max = q->retry_first;
	if (!q->base)
		log_warn("queue: no event loop given; deferred deliveries wait for a restart");
	return q;
}

void queue_set_policy(struct queue *q, const struct retry_policy *p)
{
	if (set_policy(q, p) < 0)
		log_error("queue: out of memory; keeping the old retry policy");
}

void queue_free(struct queue **pq)
{
	struct queue *q = *pq;
	if (!q)
		return;
	*pq = NULL;
	q->closing = 1;
	q->relay = NULL; /* freed before us: nothing to cancel there */
	struct qmsg *next;
	for (struct qmsg *m = q->msgs; m; m = next) {
		next = m->next;
		if (!m->jobs)
			qmsg_free(m); /* still in the spool for the next start */
	}
	q->ready_head = q->ready_tail = NULL;
	if (!q->jobs)
		queue_destroy(q); /* else the last job's callback does */
}

void queue_set_directory(struct queue *q, struct directory *d)
{
	if (q->dir)
		directory_unref(&q->dir);
	q->dir = d ? directory_ref(d) : NULL;
}

/* stale_report - ENVS[I] is a report whose original is still in the
 * spool without the pass that made it saved: a crash came between the
 * two, and the original will make the report again. */
static int stale_report(const struct envelope *envs, const int *ok, size_t n, size_t i)
{
	if (!envs[i].dsn_of[0])
		return 0;
	for (size_t k = 0; k < n; k++)
		if (k != i && ok[k] && !strcmp(envs[k].id, envs[i].dsn_of))
			return envs[k].passes < envs[i].dsn_pass;
	return 0;
}

/* read_all - every envelope of IDS into ENVS (OK[i] set for those read). */
static void read_all(struct queue *q, char **ids, size_t n, struct envelope *envs, int *ok)
{
	for (size_t i = 0; i < n; i++) {
		char buf[128];
		if (spool_read_envelope(q->sp, ids[i], &envs[i]) < 0)
			log_error("%s: unreadable envelope (%s); left in the spool", ids[i],
				  strerror_r(errno, buf, sizeof buf));
		else
			ok[i] = 1;
	}
}

long queue_recover(struct queue *q)
{
	size_t n = 0;
	char **ids = spool_list(q->sp, &n);
	if (!ids)
		return errno ? -1 : 0;
	struct envelope *envs = calloc(n, sizeof *envs);
	int *ok = calloc(n, sizeof *ok);
	long found = envs && ok ? 0 : -1;
	if (envs && ok)
		read_all(q, ids, n, envs, ok);
	for (size_t i = 0; found >= 0 && i < n; i++) {
		if (ok[i] && stale_report(envs, ok, n, i)) {
			log_warn("%s: report made by an unsaved pass of %s; removed", envs[i].id,
				 envs[i].dsn_of);
			if (spool_remove(q->sp, envs[i].id) == 0)
				ok[i] = 2; /* gone: not queued */
		}
	}
	for (size_t i = 0; found >= 0 && i < n; i++) {
		if (ok[i] == 1) {
			struct qmsg *m = msg_take(q, &envs[i]);
			if (m) {
				found++;
				/* The schedule is the envelope's: each recipient's
				 * next attempt survives the restart. */
				time_t due = next_due(m);
				qmsg_schedule(m, due < 0 ? 0 : due);
				continue;
			}
			log_error("%s: out of memory; recovered at next start", ids[i]);
		}
		if (ok[i])
			envelope_free(&envs[i]);
	}
	for (size_t i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
	free(envs);
	free(ok);
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
	qmsg_schedule(m, 0);
}

int queue_idle(const struct queue *q)
{
	return !q->count[M_RUNNING] && !q->count[M_READY] && !q->count[M_TIMER];
}

size_t queue_parked(const struct queue *q)
{
	return q->count[M_PARKED];
}

void queue_stats(const struct queue *q, size_t *messages, time_t *oldest)
{
	size_t n = 0;
	time_t first = 0;
	for (const struct qmsg *m = q->msgs; m; m = m->next) {
		n++;
		if (m->env.received && (!first || m->env.received < first))
			first = m->env.received;
	}
	*messages = n;
	*oldest = first;
}
