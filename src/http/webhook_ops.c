/* webhook_ops.c - the API's view of the webhooks (see webhooks.h):
 * creating one (URL form, then its host's addresses, then the store),
 * deleting one, listing them.
 *
 * A creation checks the addresses the URL's host has now, with the same
 * rule as every delivery: an API user learns at once that a URL on a
 * private network is refused, rather than from a webhook that never
 * works.  Its cursor is the last event in the store after the event log
 * was synced, so it receives exactly the events emitted after the 201.
 *
 * An op answers through a zero-delay event, never from inside the call
 * that started it; webhooks_cancel silences its callback (the work goes
 * on: a webhook being created is still created). */
#include <event2/event.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/log.h"
#include "deliver/mx.h"
#include "http/webhook_set.h"
#include "store/event_log.h"

struct wh_op {
	struct wh_op *prev, *next;
	struct webhooks *set;
	webhooks_add_cb add_done; /* NULL once cancelled, or for a delete */
	webhooks_del_cb del_done;
	void *arg;
	struct event *answer_ev;
	int dns_pending;
	struct event_sync *sync;
	/* A creation. */
	char user[WH_USER_MAX];
	char url_text[WEBHOOK_URL_MAX + 1];
	unsigned events;
	struct webhook_url url;
	/* The answer. */
	int status;
	int64_t id;
	char secret[WEBHOOK_SECRET_HEX];
	char message[WEBHOOK_ERROR_MAX];
};

/* op_unlink - take OP out of the set's list. */
static void op_unlink(struct wh_op *op)
{
	struct webhooks *w = op->set;
	if (op->prev)
		op->prev->next = op->next;
	else if (w->ops == op)
		w->ops = op->next;
	if (op->next)
		op->next->prev = op->prev;
	op->prev = op->next = NULL;
}

/* op_free - free an unlinked OP (its sync, if any, cancelled). */
static void op_free(struct wh_op *op)
{
	if (op->answer_ev)
		event_free(op->answer_ev);
	event_log_sync_cancel(op->set->log, &op->sync);
	free(op);
}

/* on_answer - the zero-delay event: call back (unless cancelled), free. */
static void on_answer(evutil_socket_t fd, short what, void *arg)
{
	struct wh_op *op = arg;
	op_unlink(op);
	if (op->add_done)
		op->add_done(op->arg, op->status, op->id, op->status == 201 ? op->secret : NULL,
			     op->message);
	else if (op->del_done)
		op->del_done(op->arg, op->status);
	op_free(op);
}

/* op_answer - answer with STATUS (and a message) from the loop. */
static void op_answer(struct wh_op *op, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void op_answer(struct wh_op *op, int status, const char *fmt, ...)
{
	op->status = status;
	if (fmt) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(op->message, sizeof op->message, fmt, ap);
		va_end(ap);
	}
	event_active(op->answer_ev, 0, 0);
}

/* op_new - an op of W for ARG, linked in; NULL when out of memory. */
static struct wh_op *op_new(struct webhooks *w, void *arg)
{
	struct wh_op *op = calloc(1, sizeof *op);
	if (!op)
		return NULL;
	op->set = w;
	op->arg = arg;
	op->answer_ev = event_new(w->base, -1, 0, on_answer, op);
	if (!op->answer_ev) {
		free(op);
		return NULL;
	}
	op->next = w->ops;
	if (w->ops)
		w->ops->prev = op;
	w->ops = op;
	return op;
}

/* ---- creating ---- */

struct add_job {
	struct wh_job job; /* first */
	struct wh_op *op;
	struct webhook_row row;
};

/* add_work - on a worker: insert the row (cursor: the last event). */
static int add_work(struct wh_job *j, struct records *rec)
{
	struct add_job *a = (struct add_job *)j;
	return records_webhook_add(rec, &a->row, j->err, sizeof j->err);
}

/* add_release - free an add job and its row. */
static void add_release(struct wh_job *j)
{
	struct add_job *a = (struct add_job *)j;
	webhook_row_clear(&a->row);
	free(a);
}

/* add_done - stored: run the new webhook and answer 201. */
static void add_done(struct wh_job *j)
{
	struct add_job *a = (struct add_job *)j;
	struct wh_op *op = a->op;
	struct wh_hook *h = NULL;
	if (j->rc < 0) {
		log_error("webhooks: cannot store a new webhook: %s", j->err);
		op_answer(op, 500, "the webhook could not be stored");
	} else if (!(h = wh_hook_new(j->set, &a->row))) {
		log_error("webhook %lld: stored, but out of memory to run it until the next start",
			  (long long)a->row.id);
		op_answer(op, 500, "out of memory");
	} else {
		char safe[128];
		log_info("webhook %lld created for %s: %s", (long long)h->id,
			 h->user[0] ? h->user : "every user",
			 log_sanitize(safe, sizeof safe, h->url_text, strlen(h->url_text)));
		op->id = h->id;
		memcpy(op->secret, a->row.secret, sizeof op->secret);
		op_answer(op, 201, NULL);
		wh_hook_start(h);
	}
	add_release(j);
}

/* on_add_synced - every event so far is stored: the new webhook's cursor
 * starts after them. */
static void on_add_synced(void *arg, int ok)
{
	struct wh_op *op = arg;
	op->sync = NULL;
	struct add_job *a = ok ? calloc(1, sizeof *a) : NULL;
	char secret[WEBHOOK_SECRET_HEX];
	if (!a || webhook_secret_new(secret) < 0) {
		free(a);
		op_answer(op, 500, ok ? "out of memory" : "the event log cannot be written");
		return;
	}
	a->job.work = add_work;
	a->job.done = add_done;
	a->job.release = add_release;
	a->op = op;
	a->row.user = strdup(op->user);
	a->row.url = strdup(op->url_text);
	a->row.secret = strdup(secret);
	a->row.last_error = strdup("");
	a->row.events = op->events;
	a->row.created = (int64_t)time(NULL);
	if (!a->row.user || !a->row.url || !a->row.secret || !a->row.last_error) {
		add_release(&a->job);
		op_answer(op, 500, "out of memory");
		return;
	}
	wh_job_submit(op->set, &a->job);
}

/* on_add_resolved - the URL's host has answered: check every address. */
static void on_add_resolved(struct mx_result *res, void *arg)
{
	struct wh_op *op = arg;
	char why[WEBHOOK_ERROR_MAX];
	op->dns_pending = 0;
	if (res->status != MX_OK || res->nhosts == 0 || res->hosts[0].naddrs == 0)
		op_answer(op, 400, "the URL's host %s cannot be resolved: %s", op->url.host,
			  res->error ? res->error : "no address");
	else if (wh_check_addrs(op->set, res, why, sizeof why))
		op_answer(op, 422, "%s", why);
	else if (!(op->sync = event_log_sync(op->set->log, on_add_synced, op)))
		op_answer(op, 500, "out of memory");
	mx_result_free(&res);
}

/* user_count - how many webhooks USER has. */
static size_t user_count(struct webhooks *w, const char *user)
{
	size_t n = 0;
	for (struct wh_hook *h = w->hooks; h; h = h->next)
		n += strcasecmp(h->user, user) == 0;
	return n;
}

/* webhooks_add - the form first (no DNS for a bad URL), then the host. */
void webhooks_add(struct webhooks *w, const char *user, const char *url, unsigned events,
		  webhooks_add_cb done, void *arg)
{
	struct wh_op *op = op_new(w, arg);
	char err[WEBHOOK_ERROR_MAX];
	if (!op) {
		log_error("webhooks: out of memory creating one");
		return; /* no answer possible; the request times out */
	}
	op->add_done = done;
	op->events = events & EVENT_MASK_ALL ? events & EVENT_MASK_ALL : EVENT_MASK_ALL;
	snprintf(op->user, sizeof op->user, "%s", user);
	if (strlen(user) >= sizeof op->user || strlen(url) >= sizeof op->url_text) {
		op_answer(op, 400, "the user or the URL is too long");
		return;
	}
	snprintf(op->url_text, sizeof op->url_text, "%s", url);
	if (webhook_url_parse(url, &op->url, err, sizeof err) < 0) {
		op_answer(op, 400, "%s", err);
		return;
	}
	if (user_count(w, user) >= WEBHOOKS_PER_USER_MAX) {
		op_answer(op, 400, "at most %d webhooks per user", WEBHOOKS_PER_USER_MAX);
		return;
	}
	op->dns_pending = 1;
	if (mx_resolve_host(w->dns, op->url.host, on_add_resolved, op) < 0) {
		op->dns_pending = 0;
		op_answer(op, 500, "out of memory");
	}
}

/* wh_ops_reresolve - lookups lost with the old resolver, asked again. */
void wh_ops_reresolve(struct webhooks *w)
{
	for (struct wh_op *op = w->ops; op; op = op->next)
		if (op->dns_pending &&
		    mx_resolve_host(w->dns, op->url.host, on_add_resolved, op) < 0) {
			op->dns_pending = 0;
			op_answer(op, 500, "out of memory");
		}
}

/* ---- deleting ---- */

struct del_job {
	struct wh_job job; /* first */
	struct wh_op *op;
	int64_t id;
};

/* del_work - on a worker: remove the row. */
static int del_work(struct wh_job *j, struct records *rec)
{
	struct del_job *d = (struct del_job *)j;
	return records_webhook_del(rec, d->id, NULL, j->err, sizeof j->err) < 0 ? -1 : 0;
}

/* del_release - free a delete job. */
static void del_release(struct wh_job *j)
{
	free(j);
}

/* del_done - answer the delete once the store has it. */
static void del_done(struct wh_job *j)
{
	struct del_job *d = (struct del_job *)j;
	if (j->rc < 0) {
		log_error("webhook %lld: stopped, but not removed from the store (it runs again "
			  "after a restart): %s",
			  (long long)d->id, j->err);
		op_answer(d->op, 500, "the webhook is stopped but could not be removed");
	} else {
		log_info("webhook %lld deleted", (long long)d->id);
		op_answer(d->op, 204, NULL);
	}
	free(d);
}

/* webhooks_del - stop the webhook now, then remove it from the store. */
void webhooks_del(struct webhooks *w, const char *user, int64_t id, webhooks_del_cb done, void *arg)
{
	struct wh_op *op = op_new(w, arg);
	if (!op) {
		log_error("webhooks: out of memory deleting one");
		return;
	}
	op->del_done = done;
	struct wh_hook *h = wh_hook_find(w, id);
	if (!h || (user && strcasecmp(h->user, user) != 0)) {
		op_answer(op, 404, "no such webhook");
		return;
	}
	struct del_job *d = calloc(1, sizeof *d);
	if (!d) {
		op_answer(op, 500, "out of memory");
		return;
	}
	/* Stopped now: nothing of it is queued after its delete. */
	wh_hook_remove(w, h);
	d->job.work = del_work;
	d->job.done = del_done;
	d->job.release = del_release;
	d->op = op;
	d->id = id;
	wh_job_submit(w, &d->job);
}

/* webhooks_cancel - silence the ops of ARG; their work goes on. */
void webhooks_cancel(struct webhooks *w, void *arg)
{
	for (struct wh_op *op = w->ops; op; op = op->next)
		if (op->arg == arg) {
			op->add_done = NULL;
			op->del_done = NULL;
		}
}

/* wh_ops_free - the set is going: free every op unanswered. */
void wh_ops_free(struct webhooks *w)
{
	while (w->ops) {
		struct wh_op *op = w->ops;
		w->ops = op->next;
		op_free(op);
	}
}

/* ---- listing ---- */

static const char *state_name(const struct wh_hook *h)
{
	return h->disabled ? "disabled" : "active";
}

/* hook_json - H as the API shows it; never its secret. */
static json_t *hook_json(const struct wh_hook *h)
{
	char when[EVENT_TIME_MAX];
	json_t *events = json_array();
	for (int t = 0; events && t < EVENT_NTYPES; t++)
		if ((h->events & EVENT_MASK(t)) &&
		    json_array_append_new(events, json_string(event_type_name(t))) < 0) {
			json_decref(events);
			return NULL;
		}
	event_time_format(h->created * 1000, when);
	json_t *err = json_string(h->last_error);
	if (!err) {
		char safe[WEBHOOK_ERROR_MAX];
		err = json_string(
			log_sanitize(safe, sizeof safe, h->last_error, strlen(h->last_error)));
	}
	return json_pack("{sI ss so ss sI so ss ss}", "id", (json_int_t)h->id, "url", h->url_text,
			 "events", events, "state", state_name(h), "failures",
			 (json_int_t)h->failures, "last_error", err, "created", when, "user",
			 h->user);
}

/* webhooks_list_json - the webhooks of USER (NULL: all), by id. */
json_t *webhooks_list_json(struct webhooks *w, const char *user)
{
	json_t *arr = json_array();
	for (struct wh_hook *h = w->hooks; arr && h; h = h->next) {
		if (user && strcasecmp(h->user, user) != 0)
			continue;
		json_t *one = hook_json(h);
		if (!one || json_array_append_new(arr, one) < 0) {
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}
