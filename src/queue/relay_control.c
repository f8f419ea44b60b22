/* relay_control.c - the operator's view of the queue: the "queue" command
 * of the control socket (queue.h queue_control; ternctl prints what it
 * answers, docs/relay.md describes the output).
 *
 * Changes that must survive a restart (hold, release, delete) are written
 * to the spool before the command answers "ok", by the message's own
 * single writer: a message in the middle of a pass gets the change when the
 * pass ends (a delete cuts the pass short).  flush changes only memory:
 * the next pass writes the new schedule anyway.  Every byte shown that came
 * from the network (addresses, replies, headers) goes through
 * log_sanitize, so a hostile reply cannot forge lines of the output. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/control.h"
#include "core/log.h"
#include "core/workers.h"
#include "queue/queue_private.h"
#include "spool/spool.h"

#define LINE_BUDGET   3800	  /* a reply line stays below control's 4 KiB */
#define HEADERS_SHOWN (64u << 10) /* of the message's header section */

static struct qmsg *find(struct queue *q, const char *id)
{
	for (struct qmsg *m = q->msgs; m; m = m->next)
		if (!strcmp(m->env.id, id))
			return m;
	return NULL;
}

/* utc - T as "2024-05-01T12:00:00Z". */
static const char *utc(char *buf, size_t len, time_t t)
{
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return buf;
}

static const char *state_of(const struct envelope_rcpt *r)
{
	switch (r->state) {
	case RCPT_DELIVERED:
		return "delivered";
	case RCPT_BOUNCED:
		return "bounced";
	case RCPT_QUEUED:
		break;
	}
	return r->attempts ? "deferred" : "queued";
}

/* quoted - S sanitized, with '"' and '\' escaped, into OUT. */
static const char *quoted(char *out, size_t len, const char *s)
{
	char clean[600];
	log_sanitize(clean, sizeof clean, s ? s : "", s ? strlen(s) : 0);
	size_t o = 0;
	for (const char *p = clean; *p && o + 3 < len; p++) {
		if (*p == '"' || *p == '\\')
			out[o++] = '\\';
		out[o++] = *p;
	}
	out[o] = '\0';
	return out;
}

/* list_line - one message on one line (docs/relay.md). */
static void list_line(struct control_request *req, const struct qmsg *m, time_t now)
{
	char line[LINE_BUDGET + 256], a[330], t[32], last[700];
	const struct envelope *env = &m->env;
	size_t o = (size_t)snprintf(line, sizeof line, "%s from=<%s>", env->id,
				    queue_safe(a, sizeof a, env->sender));
	time_t next = 0;
	const struct envelope_rcpt *lr = NULL;
	size_t shown = 0;
	for (size_t i = 0; i < env->nrcpts; i++) {
		const struct envelope_rcpt *r = &env->rcpts[i];
		if (r->state == RCPT_QUEUED && (!next || r->next_attempt < next))
			next = r->next_attempt ? r->next_attempt : 1;
		if (r->last_reply &&
		    (!lr || (r->state == RCPT_QUEUED && lr->state != RCPT_QUEUED) ||
		     (r->last_attempt > lr->last_attempt &&
		      (r->state == RCPT_QUEUED) == (lr->state == RCPT_QUEUED))))
			lr = r;
		if (o >= LINE_BUDGET)
			continue;
		o += (size_t)snprintf(line + o, sizeof line - o, "%s<%s>:%s",
				      shown++ ? "," : " to=", queue_safe(a, sizeof a, r->address),
				      state_of(r));
	}
	if (shown < env->nrcpts)
		o += (size_t)snprintf(line + o, sizeof line - o, ",+%zu more", env->nrcpts - shown);
	const char *when = !next ? "-" : next <= now ? "now" : utc(t, sizeof t, next);
	snprintf(line + o, sizeof line - o, " next=%s%s%s last=\"%s\"", env->held ? "held" : when,
		 m->where == M_RUNNING ? " active" : "", env->held ? " held" : "",
		 lr ? quoted(last, sizeof last, lr->last_reply) : "");
	control_printf(req, "%s", line);
}

static int by_id(const void *a, const void *b)
{
	return strcmp((*(const struct qmsg *const *)a)->env.id,
		      (*(const struct qmsg *const *)b)->env.id);
}

static void cmd_list(struct queue *q, struct control_request *req)
{
	size_t n = 0, k = 0;
	for (struct qmsg *m = q->msgs; m; m = m->next)
		n++;
	/* An array of pointers: each element is a struct qmsg *. */
	struct qmsg **all = calloc(n ? n : 1, sizeof(struct qmsg *));
	if (!all) {
		control_finish(req, "out of memory");
		return;
	}
	for (struct qmsg *m = q->msgs; m; m = m->next)
		all[k++] = m;
	qsort(all, n, sizeof(struct qmsg *), by_id);
	time_t now = time(NULL);
	for (k = 0; k < n; k++)
		list_line(req, all[k], now);
	free(all);
	control_finish(req, NULL);
}

/* ---- show ---- */

struct show_job {
	struct spool *sp;
	char id[32];
	struct control_request *req;
	char *head; /* the header section, NUL-terminated */
	int err;
};

static void show_work(void *arg)
{
	struct show_job *j = arg;
	long off;
	size_t size;
	int fd = spool_open_body(j->sp, j->id, &off, &size);
	if (fd < 0) {
		j->err = errno ? errno : EIO;
		return;
	}
	size_t want = size < HEADERS_SHOWN ? size : HEADERS_SHOWN;
	j->head = malloc(want + 1);
	ssize_t got = j->head ? pread(fd, j->head, want, off) : -1;
	close(fd);
	if (got < 0) {
		j->err = j->head ? errno : ENOMEM;
		return;
	}
	j->head[got] = '\0';
	char *end = strstr(j->head, "\r\n\r\n");
	if (end)
		end[2] = '\0';
}

static void show_done(void *arg)
{
	struct show_job *j = arg;
	char line[1100], buf[128];
	if (j->err) {
		snprintf(line, sizeof line, "cannot read the message: %s",
			 strerror_r(j->err, buf, sizeof buf));
		control_finish(j->req, line);
	} else {
		control_printf(j->req, "headers:");
		for (char *p = j->head, *nl; *p; p = nl + 2) {
			nl = strstr(p, "\r\n");
			if (!nl)
				break;
			size_t n = (size_t)(nl - p);
			control_printf(j->req, "  %s", log_sanitize(line, sizeof line, p, n));
		}
		control_finish(j->req, NULL);
	}
	free(j->head);
	free(j);
}

static void cmd_show(struct queue *q, struct control_request *req, const struct qmsg *m)
{
	char *text = NULL, line[1100];
	size_t len = 0;
	if (envelope_format(&m->env, &text, &len) < 0) {
		control_finish(req, "out of memory");
		return;
	}
	/* The spool's own text form: one field per line, already escaped. */
	control_printf(req, "envelope:");
	for (char *p = text, *nl; (nl = memchr(p, '\n', len - (size_t)(p - text))); p = nl + 1)
		if (nl > p)
			control_printf(req, "  %s",
				       log_sanitize(line, sizeof line, p, (size_t)(nl - p)));
	free(text);
	struct show_job *j = calloc(1, sizeof *j);
	if (!j) {
		control_finish(req, "out of memory");
		return;
	}
	j->sp = q->sp;
	snprintf(j->id, sizeof j->id, "%s", m->env.id);
	j->req = req;
	if (workers_submit(q->pool, show_work, show_done, j) < 0) {
		free(j);
		control_finish(req, "shutting down");
	}
}

/* ---- changes ---- */

static void flush_one(struct qmsg *m)
{
	if (m->env.held)
		return;
	for (size_t i = 0; i < m->env.nrcpts; i++)
		if (m->env.rcpts[i].state == RCPT_QUEUED)
			m->env.rcpts[i].next_attempt = 0;
	if (m->where == M_RUNNING)
		m->flush = 1;
	else if (m->where != M_READY)
		qmsg_schedule(m, 0);
}

static void cmd_flush(struct queue *q, struct control_request *req, const char *id)
{
	size_t n = 0;
	if (q->relay)
		relay_flush(q->relay);
	for (struct qmsg *m = q->msgs, *next; m; m = next) {
		next = m->next; /* a pass may start (and end) at once */
		if (id && strcmp(m->env.id, id))
			continue;
		n++;
		flush_one(m);
	}
	if (id && !n) {
		control_finish(req, "no such message in the queue");
		return;
	}
	control_printf(req, "flushed %zu message(s)", n);
	control_finish(req, NULL);
}

static void admin_work(void *arg)
{
	struct qmsg *m = arg;
	int rc = m->op == ADMIN_DELETE ? spool_remove(m->q->sp, m->env.id)
				       : spool_update_envelope(m->q->sp, &m->env);
	m->store_err = rc < 0 ? (errno ? errno : EIO) : 0;
}

static void admin_done(void *arg)
{
	struct qmsg *m = arg;
	struct queue *q = m->q;
	if (qmsg_job_end(m))
		return;
	enum admin_op op = m->op;
	struct control_request *req = m->op_req;
	char why[160], buf[128];
	m->op = ADMIN_NONE;
	m->op_req = NULL;
	qmsg_set_where(m, M_PARKED);
	if (m->store_err && !(op == ADMIN_DELETE && m->store_err == ENOENT)) {
		snprintf(why, sizeof why, "cannot write the spool: %s",
			 strerror_r(m->store_err, buf, sizeof buf));
		if (op == ADMIN_HOLD)
			m->env.held = 0;
		if (op == ADMIN_RELEASE)
			m->env.held = 1;
		m->store_err = 0;
		qmsg_schedule(m, 1);
		control_finish(req, why);
		return;
	}
	static const char *const done[] = {"", "deleted", "held", "released"};
	log_info("%s: %s by an operator", m->env.id, done[op]);
	if (op == ADMIN_DELETE)
		qmsg_free(m);
	else
		qmsg_schedule(m, 0); /* held: stays put; released: goes now */
	control_finish(req, NULL);
	queue_pump(q);
}

void admin_run(struct qmsg *m)
{
	qmsg_unschedule(m);
	qmsg_set_where(m, M_RUNNING);
	if (m->op == ADMIN_HOLD)
		m->env.held = 1;
	if (m->op == ADMIN_RELEASE) {
		m->env.held = 0;
		for (size_t i = 0; i < m->env.nrcpts; i++)
			if (m->env.rcpts[i].state == RCPT_QUEUED)
				m->env.rcpts[i].next_attempt = 0;
	}
	m->store_err = 0;
	if (qmsg_submit(m, admin_work, admin_done) < 0) {
		m->store_err = EAGAIN;
		qmsg_job_begin(m); /* admin_done ends it */
		admin_done(m);
	}
}

void admin_abandon(struct qmsg *m)
{
	if (!m->op_req)
		return;
	control_finish(m->op_req, m->op == ADMIN_DELETE ? NULL : "the message has left the queue");
	m->op_req = NULL;
	m->op = ADMIN_NONE;
}

static void cmd_change(struct queue *q, struct control_request *req, struct qmsg *m,
		       enum admin_op op)
{
	if (m->op != ADMIN_NONE) {
		control_finish(req, "another change of this message is in progress");
		return;
	}
	if ((op == ADMIN_HOLD && m->env.held) || (op == ADMIN_RELEASE && !m->env.held)) {
		control_printf(req, "%s is %s", m->env.id,
			       m->env.held ? "held already" : "not held");
		control_finish(req, NULL);
		return;
	}
	m->op = op;
	m->op_req = req;
	if (m->where != M_RUNNING)
		admin_run(m);
	else if (op == ADMIN_DELETE)
		pass_cut(m); /* no point finishing the attempt */
}

void queue_control(void *ctx, struct control_request *req, const char *args)
{
	struct queue *q = ctx;
	char verb[16] = "", id[64] = "", extra[8] = "";
	int n = sscanf(args ? args : "", "%15s %63s %7s", verb, id, extra);
	int takes_id = strcmp(verb, "list") != 0;
	if (n < 1 || n > 2 || (n == 2 && !takes_id)) {
		control_finish(req,
			       "usage: queue list|show ID|flush [ID]|delete ID|hold ID|release ID");
		return;
	}
	if (!strcmp(verb, "list")) {
		cmd_list(q, req);
		return;
	}
	if (!strcmp(verb, "flush")) {
		cmd_flush(q, req, n == 2 ? id : NULL);
		return;
	}
	static const struct {
		const char *name;
		enum admin_op op;
	} changes[] = {
		{"delete", ADMIN_DELETE},
		{"hold", ADMIN_HOLD},
		{"release", ADMIN_RELEASE},
	};
	int known = !strcmp(verb, "show");
	for (size_t i = 0; i < sizeof changes / sizeof changes[0]; i++)
		known |= !strcmp(verb, changes[i].name);
	if (!known || n != 2) {
		control_finish(req, known ? "missing message ID" : "unknown queue command");
		return;
	}
	struct qmsg *m = find(q, id);
	if (!m) {
		control_finish(req, "no such message in the queue");
		return;
	}
	if (!strcmp(verb, "show")) {
		cmd_show(q, req, m);
		return;
	}
	for (size_t i = 0; i < sizeof changes / sizeof changes[0]; i++)
		if (!strcmp(verb, changes[i].name))
			cmd_change(q, req, m, changes[i].op);
}
