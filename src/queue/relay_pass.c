/* relay_pass.c - the remote half of a pass and its end: relay requests per
 * domain, each recipient's result, bounces and reports, and the durable
 * record of it all (the steps are listed in queue_private.h).
 *
 * RFC 5321 4.5.4.1 and 6.1 (retry, give up after the lifetime, then tell
 * the sender), RFC 3461 4.1 (which reports a sender asked for; "relayed"
 * when a server without DSN took the message, RFC 3461 5.2.3), RFC 3464
 * (one report per message listing every recipient it is about), RFC 3463
 * 4.4.7 (expired).  The order is what makes a crash harmless: a report is
 * committed to the spool (and queued) before the original's envelope says
 * its recipients are final, so a crash between the two repeats work but
 * never loses a bounce. */
#include <errno.h>
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/log.h"
#include "queue/queue_private.h"
#include "smtp/command.h"
#include "spool/spool.h"
#include "store/directory.h"

#define REPLY_MAX (SMTP_CLIENT_TEXT_MAX + 32)
#define WHY_MAX	  (REPLY_MAX + 64)

/* ---- grouping ---- */

/* domain_of - the part after the last '@', or "" */
static const char *domain_of(const char *address)
{
	const char *at = strrchr(address, '@');
	return at ? at + 1 : "";
}

/* part_for - the part for DOMAIN with room for one more recipient. */
static struct rpart *part_for(struct qmsg *m, const char *domain)
{
	for (size_t k = 0; k < m->nparts; k++)
		if (!strcasecmp(m->parts[k].domain, domain) &&
		    m->parts[k].n < SMTP_CLIENT_RCPTS_MAX)
			return &m->parts[k];
	struct rpart *p = &m->parts[m->nparts++];
	memset(p, 0, sizeof *p);
	p->m = m;
	snprintf(p->domain, sizeof p->domain, "%s", domain);
	return p;
}

int pass_group(struct qmsg *m, const size_t *remote, size_t n)
{
	if (!n)
		return 0;
	if (!(m->parts = calloc(n, sizeof *m->parts)))
		return -1;
	for (size_t k = 0; k < n; k++) {
		struct envelope_rcpt *r = &m->env.rcpts[remote[k]];
		const char *dom = domain_of(r->address);
		if (!*dom || strlen(dom) > MX_NAME_MAX) {
			r->state = RCPT_BOUNCED;
			envelope_set_reply(r, "550 5.1.3 Bad recipient address syntax");
			m->rp[remote[k]].mark = PM_BOUNCED;
			m->dirty = 1;
			continue;
		}
		struct rpart *p = part_for(m, dom);
		size_t *idx = realloc(p->idx, (p->n + 1) * sizeof *idx);
		if (!idx)
			return -1;
		p->idx = idx;
		p->idx[p->n++] = remote[k];
	}
	return 0;
}

/* ---- results ---- */

/* expire - recipient I ran out of time (RFC 3463 4.4.7). */
static void expire(struct qmsg *m, size_t i)
{
	m->env.rcpts[i].state = RCPT_BOUNCED;
	m->rp[i].mark = PM_BOUNCED;
	snprintf(m->rp[i].status, sizeof m->rp[i].status, "%s", RETRY_EXPIRED_STATUS);
	m->rp[i].reason = RETRY_EXPIRED_TEXT;
}

/* defer - a temporary failure of recipient I: when to try again, or give
 * up when the message is too old. */
static void defer(struct qmsg *m, size_t i, const struct relay_outcome *out, time_t now)
{
	const struct queue *q = m->q;
	struct envelope_rcpt *r = &m->env.rcpts[i];
	time_t next = now + 1;
	if (retry_expired(&q->policy, m->env.received, now) ||
	    (out->attempted && retry_after_failure(&q->policy, m->env.received, r->attempts, now,
						   &next) == RETRY_GIVE_UP)) {
		expire(m, i);
		return;
	}
	if (next < out->not_before)
		next = out->not_before; /* the whole destination is held */
	r->next_attempt = next;
	m->rp[i].mark = PM_DEFERRED;
}

/* apply - RES is the word on recipient I. */
static void apply(struct qmsg *m, size_t i, const struct smtp_client_result *res,
		  const struct relay_outcome *out, time_t now)
{
	struct envelope_rcpt *r = &m->env.rcpts[i];
	char reply[REPLY_MAX], a[128], t[256], mta[128];
	snprintf(reply, sizeof reply, "%d%s%s %s", res->code, res->enhanced[0] ? " " : "",
		 res->enhanced, res->text);
	envelope_set_reply(r, reply);
	envelope_set_mta(r, !res->local && out->remote_mta[0] ? out->remote_mta : NULL);
	if (out->attempted) {
		r->attempts++;
		r->last_attempt = now;
	}
	m->rp[i].local = (unsigned char)res->local;
	m->dirty = 1;
	const char *what;
	if (res->code >= 200 && res->code < 300) {
		r->state = RCPT_DELIVERED;
		r->next_attempt = 0;
		m->rp[i].mark = PM_DELIVERED;
		m->rp[i].relayed = !out->dsn_offered;
		what = "delivered";
	} else if (res->code >= 500 && res->code < 600) {
		r->state = RCPT_BOUNCED;
		m->rp[i].mark = PM_BOUNCED;
		what = "bounced";
	} else {
		defer(m, i, out, now);
		what = r->state == RCPT_BOUNCED ? "expired" : "deferred";
	}
	log_info("%s: to=<%s> relay=%s %s: %s", m->env.id, queue_safe(a, sizeof a, r->address),
		 out->remote_mta[0] ? queue_safe(mta, sizeof mta, out->remote_mta) : "none", what,
		 queue_safe(t, sizeof t, reply));
}

static void part_done(void *arg, const struct relay_outcome *out)
{
	struct rpart *p = arg;
	struct qmsg *m = p->m;
	time_t now = time(NULL);
	p->req = NULL;
	for (size_t k = 0; k < p->n; k++)
		apply(m, p->idx[k], &out->rcpts[out->nrcpts == p->n ? k : 0], out, now);
	if (--m->parts_left == 0)
		pass_decide(m);
}

/* source_of - the sending user's own source address into M->source. */
static void source_of(struct qmsg *m)
{
	const struct queue *q = m->q;
	const char *who = m->env.auth_user ? m->env.auth_user : m->env.sender;
	const struct dir_user *u = q->dir && who && *who ? directory_user(q->dir, who) : NULL;
	snprintf(m->source, sizeof m->source, "%s", u && u->source_ip ? u->source_ip : "");
}

/* submit - P to the relay; 0, or -1 when it refused (no callback). */
static int submit(struct qmsg *m, struct rpart *p)
{
	if (m->fd < 0 || !(p->rc = calloc(p->n, sizeof *p->rc)))
		return -1;
	for (size_t k = 0; k < p->n; k++) {
		const struct envelope_rcpt *r = &m->env.rcpts[p->idx[k]];
		p->rc[k] = (struct smtp_client_rcpt){r->address, r->notify, r->orcpt};
	}
	struct relay_request req = {
		.domain = p->domain,
		.source_ip = m->source[0] ? m->source : NULL,
		.msg = {.sender = m->env.sender,
			.rcpts = p->rc,
			.nrcpts = p->n,
			.envid = m->env.envid,
			.ret = m->env.ret,
			.body_8bit = m->env.body_8bit,
			.smtputf8 = m->env.smtputf8,
			.fd = m->fd,
			.offset = m->off,
			.length = m->size},
	};
	p->req = relay_submit(m->q->relay, &req, part_done, p);
	return p->req ? 0 : -1;
}

void pass_remote(struct qmsg *m)
{
	if (m->gone || !m->nparts || m->op == ADMIN_DELETE) {
		pass_decide(m);
		return;
	}
	source_of(m);
	m->parts_left = m->nparts;
	for (size_t k = 0; k < m->nparts; k++) {
		struct rpart *p = &m->parts[k];
		if (submit(m, p) == 0)
			continue;
		struct smtp_client_result res = {.code = 451, .enhanced = "4.3.0", .local = 1};
		snprintf(res.text, sizeof res.text, "%s",
			 m->fd < 0 ? "Local error: cannot read the message"
				   : "Local error: out of memory");
		struct relay_outcome out = {
			.rcpts = &res, .nrcpts = 1, .remote_mta = "", .attempted = 1};
		part_done(p, &out); /* the last one decides */
	}
}

void pass_cut(struct qmsg *m)
{
	for (size_t k = 0; k < m->nparts; k++) {
		struct rpart *p = &m->parts[k];
		if (!p->req)
			continue;
		relay_cancel(m->q->relay, p->req);
		p->req = NULL;
		struct smtp_client_result res = {.code = 451, .enhanced = "4.3.0", .local = 1};
		snprintf(res.text, sizeof res.text, "Not sent: stopped by an operator");
		struct relay_outcome out = {.rcpts = &res, .nrcpts = 1, .remote_mta = ""};
		part_done(p, &out);
	}
}

/* ---- reports ---- */

/* in_report - is recipient I part of this pass's report of KIND? */
static int in_report(const struct qmsg *m, size_t i, enum dsn_kind kind, int sender_local)
{
	const struct envelope_rcpt *r = &m->env.rcpts[i];
	const struct rcpt_pass *rp = &m->rp[i];
	switch (kind) {
	case DSN_FAILURE:
		if (rp->mark != PM_BOUNCED)
			return 0;
		break;
	case DSN_SUCCESS:
		if (rp->mark != PM_DELIVERED || !(rp->relayed || rp->local_mbox))
			return 0;
		break;
	case DSN_DELAY:
		if (r->state != RCPT_QUEUED || !r->attempts)
			return 0;
		break;
	}
	return dsn_wants(m->env.sender, r->notify, kind, sender_local);
}

/* dsn_add - a report of KIND when any recipient is in it. */
static void dsn_add(struct qmsg *m, enum dsn_kind kind, int sender_local)
{
	size_t n = 0;
	for (size_t i = 0; i < m->env.nrcpts; i++)
		n += in_report(m, i, kind, sender_local);
	if (!n)
		return;
	struct pass_dsn *d = &m->dsn[m->ndsn];
	memset(d, 0, sizeof *d);
	d->kind = kind;
	d->sender_local = sender_local;
	envelope_init(&d->env);
	spool_new_id(m->q->sp, d->env.id);
	if (!(d->env.sender = strdup("")) ||
	    envelope_add_rcpt(&d->env, m->env.sender, NULL, 0) < 0) {
		envelope_free(&d->env);
		log_error("%s: out of memory for a delivery report", m->env.id);
		return;
	}
	memcpy(d->env.dsn_of, m->env.id, sizeof d->env.dsn_of);
	d->env.dsn_pass = m->env.passes + 1;
	d->m = m;
	m->ndsn++;
}

/* report_rcpt - the DSN's view of recipient I; WHY is its storage. */
static void report_rcpt(const struct qmsg *m, size_t i, enum dsn_kind kind, struct dsn_rcpt *d,
			char *why, char *status)
{
	const struct envelope_rcpt *r = &m->env.rcpts[i];
	const struct rcpt_pass *rp = &m->rp[i];
	int remote = r->remote_mta != NULL;
	memset(d, 0, sizeof *d);
	d->address = r->address;
	d->orcpt = r->orcpt;
	d->remote_mta = r->remote_mta;
	d->last_attempt = r->last_attempt;
	d->reply = remote ? r->last_reply : NULL;
	if (kind == DSN_SUCCESS)
		d->action = rp->local_mbox ? DSN_ACTION_DELIVERED : DSN_ACTION_RELAYED;
	if (kind == DSN_DELAY)
		d->retry_until = retry_expires_at(&m->q->policy, m->env.received);
	if (rp->status[0]) {
		d->status = rp->status;
	} else if (!remote) {
		dsn_status_from_reply(r->last_reply, status);
		d->status = status;
	}
	if (rp->reason && r->last_reply)
		snprintf(why, WHY_MAX, "%s (last result: %s)", rp->reason, r->last_reply);
	else if (rp->reason || !remote)
		snprintf(why, WHY_MAX, "%s",
			 rp->reason	 ? rp->reason
			 : r->last_reply ? r->last_reply
					 : "");
	d->reason = why[0] ? why : NULL;
}

/* compose_one - D's message into D->body (worker). */
static int compose_one(struct qmsg *m, struct pass_dsn *d)
{
	size_t n = m->env.nrcpts;
	struct dsn_rcpt *rc = calloc(n, sizeof *rc);
	char(*why)[WHY_MAX] = calloc(n, sizeof *why);
	char(*status)[DSN_STATUS_MAX] = calloc(n, sizeof *status);
	size_t k = 0;
	int rc_ok = -1;
	if (rc && why && status && (d->body = evbuffer_new())) {
		for (size_t i = 0; i < n; i++) {
			if (!in_report(m, i, d->kind, d->sender_local))
				continue;
			report_rcpt(m, i, d->kind, &rc[k], why[k], status[k]);
			k++;
		}
		struct dsn_report rep = {
			.kind = d->kind,
			.env = &m->env,
			.rcpts = rc,
			.nrcpts = k,
			.hostname = m->q->hostname,
			.message_id = d->env.id,
			.now = time(NULL),
			.body_fd = m->fd,
			.body_offset = m->off,
			.body_size = m->size,
		};
		struct dsn_info info = {0};
		rc_ok = dsn_compose(&rep, d->body, &info);
		d->env.body_8bit = info.eight_bit;
		d->env.smtputf8 = info.smtputf8;
		d->env.size = evbuffer_get_length(d->body);
		d->env.received = rep.now;
	}
	free(rc);
	free(why);
	free(status);
	return rc_ok;
}

static void compose_work(void *arg)
{
	struct qmsg *m = arg;
	if (m->fd < 0)
		m->fd = spool_open_body(m->q->sp, m->env.id, &m->off, &m->size);
	for (size_t k = 0; k < m->ndsn; k++)
		m->dsn[k].composed = compose_one(m, &m->dsn[k]) == 0;
}

/* ---- the end of a pass ---- */

static void save_work(void *arg)
{
	struct qmsg *m = arg;
	int final = qmsg_all_final(&m->env);
	int rc = final ? spool_remove(m->q->sp, m->env.id)
		       : spool_update_envelope(m->q->sp, &m->env);
	if (rc < 0 && errno == ENOENT)
		m->gone = 1;
	else if (rc < 0)
		m->store_err = errno;
	else
		m->removed = final;
}

/* queue_reports - the pass's committed reports go out: only now that the
 * original's record of the pass is durable (or could not be written), so
 * that a report is never delivered while a crash could still make the
 * original repeat the pass and make it again. */
static void queue_reports(struct qmsg *m)
{
	for (size_t k = 0; k < m->ndsn; k++)
		if (m->dsn[k].committed)
			queue_add(m->q, &m->dsn[k].env);
}

static void save_done(void *arg)
{
	struct qmsg *m = arg;
	if (qmsg_job_end(m))
		return;
	if (!m->store_err)
		m->dirty = 0;
	queue_reports(m);
	qmsg_end_pass(m);
}

/* save - make the pass's envelope durable, then end the pass. */
static void save(struct qmsg *m)
{
	if (!m->dirty || m->gone) {
		queue_reports(m);
		qmsg_end_pass(m);
		return;
	}
	if (qmsg_submit(m, save_work, save_done) < 0) {
		m->store_err = EAGAIN;
		queue_reports(m);
		qmsg_end_pass(m);
	}
}

/* unbounce - the failure report could not be stored: the recipients it
 * named go back to the queue (tried again, bounced again), since a bounce
 * nobody hears of is a lost message. */
static void unbounce(struct qmsg *m, const struct pass_dsn *d)
{
	time_t next = time(NULL) + m->q->retry_first;
	for (size_t i = 0; i < m->env.nrcpts; i++) {
		if (!in_report(m, i, DSN_FAILURE, d->sender_local))
			continue;
		m->env.rcpts[i].state = RCPT_QUEUED;
		m->env.rcpts[i].next_attempt = next;
		m->rp[i].mark = PM_DEFERRED;
	}
}

/* reports_stored - every report of the pass is committed or failed. */
static void reports_stored(struct qmsg *m)
{
	static const char *const kind[] = {"bounce", "delay warning", "success report"};
	for (size_t k = 0; k < m->ndsn; k++) {
		struct pass_dsn *d = &m->dsn[k];
		if (d->committed) {
			log_info("%s: %s to <%s> queued as %s", m->env.id, kind[d->kind],
				 d->env.rcpts[0].address, d->env.id);
			continue;
		}
		log_error("%s: cannot store the %s; %s", m->env.id, kind[d->kind],
			  d->kind == DSN_FAILURE ? "recipients kept queued" : "not sent");
		if (d->kind == DSN_FAILURE)
			unbounce(m, d);
		else if (d->kind == DSN_DELAY)
			m->env.delay_warned = 0;
	}
	save(m);
}

static void commit_done(void *arg, int ok, int errnum)
{
	struct pass_dsn *d = arg;
	struct qmsg *m = d->m;
	if (qmsg_job_end(m))
		return;
	d->committed = ok;
	if (--m->dsn_waiting == 0)
		reports_stored(m);
}

static void compose_done(void *arg)
{
	struct qmsg *m = arg;
	if (qmsg_job_end(m))
		return;
	for (size_t k = 0; k < m->ndsn; k++) {
		struct pass_dsn *d = &m->dsn[k];
		if (!d->composed)
			continue;
		struct evbuffer *body = d->body;
		d->body = NULL; /* the spool's now */
		m->dsn_waiting++;
		qmsg_job_begin(m);
		spool_commit(m->q->sp, &d->env, body, commit_done, d);
	}
	if (!m->dsn_waiting)
		reports_stored(m);
}

void pass_decide(struct qmsg *m)
{
	const struct queue *q = m->q;
	time_t now = time(NULL);
	int local = queue_sender_is_local(q, m->env.sender);
	if (!m->env.delay_warned && !qmsg_all_final(&m->env) &&
	    retry_delay_warning_due(&q->policy, m->env.received, now, 0)) {
		m->env.delay_warned = 1;
		m->dirty = 1;
		dsn_add(m, DSN_DELAY, local);
	}
	if (m->op != ADMIN_DELETE) {
		dsn_add(m, DSN_FAILURE, local);
		dsn_add(m, DSN_SUCCESS, local);
	} else {
		m->ndsn = 0; /* deleted: nobody is told */
	}
	if (!m->ndsn || m->gone) {
		save(m);
		return;
	}
	/* The reports name this pass; the original's saved record counts it. */
	m->env.passes++;
	m->dirty = 1;
	if (qmsg_submit(m, compose_work, compose_done) < 0) {
		for (size_t k = 0; k < m->ndsn; k++)
			m->dsn[k].composed = 0;
		reports_stored(m);
	}
}

void pass_release(struct qmsg *m)
{
	for (size_t k = 0; k < m->nparts; k++) {
		struct rpart *p = &m->parts[k];
		if (p->req && m->q->relay)
			relay_cancel(m->q->relay, p->req);
		free(p->idx);
		free(p->rc);
	}
	free(m->parts);
	m->parts = NULL;
	m->nparts = m->parts_left = 0;
	for (size_t k = 0; k < m->ndsn; k++) {
		if (m->dsn[k].body)
			evbuffer_free(m->dsn[k].body);
		envelope_free(&m->dsn[k].env);
	}
	m->ndsn = m->dsn_waiting = 0;
	free(m->dl);
	m->dl = NULL;
	m->ndl = 0;
	free(m->rp);
	m->rp = NULL;
	m->nrp = 0;
	if (m->fd >= 0)
		close(m->fd);
	m->fd = -1;
}
