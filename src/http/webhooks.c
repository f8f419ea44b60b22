/* webhooks.c - the set of webhooks and each one's delivery (see
 * webhooks.h).
 *
 * Each webhook is a small state machine on the loop:
 *
 *   IDLE --new event--> SYNC (event_log_sync) --> FETCH (records_events on
 *   a worker, at most WEBHOOK_BATCH events after the cursor) --> for each
 *   event: RESOLVE (c-ares, addresses checked) --> POST --2xx--> next
 *   event; after the batch, FETCH again or IDLE.
 *   POST --failure--> WAIT (1 s, 2 s, 4 s ... WEBHOOK_BACKOFF_MAX) -->
 *   RESOLVE the same event again; after max_failures in a row: DISABLED.
 *
 * The store is reached through one connection and one job at a time (a
 * FIFO of jobs), so writes land in the order they were made: a webhook's
 * progress (cursor, failures, last error) is written after each batch and
 * each failure, never per event; a crash repeats at most a batch (at
 * least once, as promised).  The API's adds and deletes (webhook_ops.c)
 * use the same queue.  Deleting a webhook takes it out of the set at once,
 * so no job for it is queued after its delete. */
#include <arpa/inet.h>
#include <event2/event.h>
#include <jansson.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "core/workers.h"
#include "deliver/mx.h"
#include "http/webhook_set.h"
#include "store/event_log.h"

/* ---- the store queue ---- */

/* job_work - on a worker: the job's own work on the set's connection. */
static void job_work(void *arg)
{
	struct wh_job *j = arg;
	j->rc = j->work(j, j->rec);
}

static void job_pump(struct webhooks *w);

/* job_done - on the loop: answer the job, start the next.  A job whose set
 * went away meanwhile owns the connection and closes it. */
static void job_done(void *arg)
{
	struct wh_job *j = arg;
	struct webhooks *w = j->set;
	if (!w) {
		records_close(&j->rec);
		j->release(j);
		return;
	}
	w->running = NULL;
	j->done(j);
	job_pump(w);
}

/* job_pump - hand the oldest queued job to the pool when none runs. */
static void job_pump(struct webhooks *w)
{
	while (!w->running && w->queue) {
		struct wh_job *j = w->queue;
		w->queue = j->next;
		if (!w->queue)
			w->queue_tail = NULL;
		j->next = NULL;
		j->rec = w->rec;
		w->running = j;
		if (workers_submit(w->pool, job_work, job_done, j) == 0)
			return;
		/* The pool is stopping: the job fails here and now. */
		w->running = NULL;
		j->rc = -1;
		snprintf(j->err, sizeof j->err, "the worker pool is stopping");
		j->done(j);
	}
}

/* wh_job_submit - queue J behind the jobs already waiting. */
void wh_job_submit(struct webhooks *w, struct wh_job *j)
{
	j->set = w;
	j->next = NULL;
	j->err[0] = '\0';
	if (w->queue_tail)
		w->queue_tail->next = j;
	else
		w->queue = j;
	w->queue_tail = j;
	job_pump(w);
}

/* ---- progress ---- */

struct progress_job {
	struct wh_job job; /* first */
	int64_t id, cursor;
	unsigned failures;
	int disabled;
	char last_error[WEBHOOK_ERROR_MAX];
};

/* progress_work - on a worker: write one webhook's progress. */
static int progress_work(struct wh_job *j, struct records *rec)
{
	struct progress_job *p = (struct progress_job *)j;
	return records_webhook_progress(rec, p->id, p->cursor, p->failures, p->disabled,
					p->last_error, j->err, sizeof j->err) < 0
		       ? -1
		       : 0;
}

/* progress_release - free a progress job. */
static void progress_release(struct wh_job *j)
{
	free(j);
}

/* progress_done - a failed write is logged; memory stays right. */
static void progress_done(struct wh_job *j)
{
	struct progress_job *p = (struct progress_job *)j;
	if (j->rc < 0)
		log_error("webhook %lld: progress not stored (it is kept in memory): %s",
			  (long long)p->id, j->err);
	free(p);
}

/* hook_save - queue a write of H's progress as it is now. */
static void hook_save(struct wh_hook *h)
{
	struct progress_job *p = calloc(1, sizeof *p);
	if (!p) {
		log_error("webhook %lld: out of memory storing its progress", (long long)h->id);
		return;
	}
	p->job.work = progress_work;
	p->job.done = progress_done;
	p->job.release = progress_release;
	p->id = h->id;
	p->cursor = h->cursor;
	p->failures = h->failures;
	p->disabled = h->disabled;
	snprintf(p->last_error, sizeof p->last_error, "%s", h->last_error);
	h->saved_cursor = h->cursor;
	wh_job_submit(h->set, &p->job);
}

/* ---- one webhook ---- */

static void hook_fetch(struct wh_hook *h);
static void hook_resolve(struct wh_hook *h);

/* hook_drop_batch - forget the events read. */
static void hook_drop_batch(struct wh_hook *h)
{
	event_records_free(&h->batch, h->nbatch);
	h->nbatch = h->pos = 0;
}

/* hook_wait - come back to H after SECS (a retry, or the store again). */
static void hook_wait(struct wh_hook *h, unsigned secs)
{
	struct timeval tv = {(time_t)secs, 0};
	h->state = WH_WAIT;
	evtimer_add(h->timer, &tv);
}

/* on_hook_timer - the wait is over: the same event, or the store again. */
static void on_hook_timer(evutil_socket_t fd, short what, void *arg)
{
	struct wh_hook *h = arg;
	if (h->state != WH_WAIT)
		return;
	if (h->pos < h->nbatch)
		hook_resolve(h); /* the same event again */
	else
		hook_fetch(h);
}

/* hook_failed - one failed attempt at H's current event. */
static void hook_failed(struct wh_hook *h, const char *why)
{
	struct webhooks *w = h->set;
	char safe[WEBHOOK_ERROR_MAX];
	snprintf(h->last_error, sizeof h->last_error, "%s", why);
	h->failures++;
	log_sanitize(safe, sizeof safe, why, strlen(why));
	if (h->failures >= w->max_failures) {
		h->disabled = 1;
		h->state = WH_DISABLED;
		hook_drop_batch(h);
		log_warn("webhook %lld disabled after %u failures in a row: %s", (long long)h->id,
			 h->failures, safe);
		hook_save(h);
		return;
	}
	unsigned wait = h->failures - 1 < 16 ? 1u << (h->failures - 1) : WEBHOOK_BACKOFF_MAX;
	if (wait > WEBHOOK_BACKOFF_MAX)
		wait = WEBHOOK_BACKOFF_MAX;
	log_warn("webhook %lld: attempt %u failed, next in %u s: %s", (long long)h->id, h->failures,
		 wait, safe);
	hook_save(h);
	hook_wait(h, wait);
}

/* hook_next - after an event was delivered: the next one, or the next
 * batch, or rest until new events come. */
static void hook_next(struct wh_hook *h)
{
	if (h->pos < h->nbatch) {
		hook_resolve(h);
		return;
	}
	int full = h->nbatch == WEBHOOK_BATCH;
	hook_drop_batch(h);
	if (h->cursor != h->saved_cursor)
		hook_save(h);
	if (full || h->more)
		hook_fetch(h);
	else
		h->state = WH_IDLE;
}

/* on_posted - a POST's outcome: move the cursor, or count a failure. */
static void on_posted(void *arg, int status, const char *error)
{
	struct wh_hook *h = arg;
	h->post = NULL;
	if (error) {
		hook_failed(h, error);
		return;
	}
	h->cursor = h->batch[h->pos].id;
	h->failures = 0;
	h->pos++;
	hook_next(h);
}

/* body_of - the one JSON form of EV, compact.  Text that is not UTF-8 (a
 * remote reply may hold anything) is made safe rather than let one event
 * stop the webhook. */
static char *body_of(const struct event_record *ev)
{
	json_t *j = event_json(ev);
	if (!j) {
		char mid[64], user[320], rcpt[512], detail[1024];
		struct event_record safe = *ev;
		safe.message_id =
			log_sanitize(mid, sizeof mid, ev->message_id, strlen(ev->message_id));
		safe.user = log_sanitize(user, sizeof user, ev->user, strlen(ev->user));
		safe.recipient =
			log_sanitize(rcpt, sizeof rcpt, ev->recipient, strlen(ev->recipient));
		safe.detail = log_sanitize(detail, sizeof detail, ev->detail, strlen(ev->detail));
		j = event_json(&safe);
	}
	char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	return text;
}

/* hook_post - send the current event to ADDR. */
static void hook_post(struct wh_hook *h, const struct mx_addr *addr)
{
	struct webhooks *w = h->set;
	const struct event_record *ev = &h->batch[h->pos];
	char sig[WEBHOOK_SIGNATURE_MAX], err[WEBHOOK_ERROR_MAX];
	char *body = body_of(ev);
	if (!body || webhook_sign(h->secret, body, strlen(body), sig) < 0) {
		free(body);
		hook_failed(h, "out of memory composing the request");
		return;
	}
	struct webhook_request r = {
		.url = &h->url,
		.addr = &addr->u.sa,
		.addrlen = addr->len,
		.event_type = event_type_name(ev->type),
		.signature = sig,
		.body = body,
		.len = strlen(body),
	};
	h->state = WH_POST;
	h->post = webhook_post_start(w->base, w->tls, &r, on_posted, h, err, sizeof err);
	free(body);
	if (!h->post)
		hook_failed(h, err);
}

/* wh_check_addrs - may RES's addresses be posted to?  NULL, or why not
 * (into WHY).  Every address is checked, not only the one used, so a name
 * cannot hide a private address behind a public one. */
const char *wh_check_addrs(const struct webhooks *w, const struct mx_result *res, char *why,
			   size_t whylen)
{
	const struct mx_host *host = &res->hosts[0];
	for (size_t i = 0; !w->allow_private && i < host->naddrs; i++) {
		const struct sockaddr *sa = &host->addrs[i].u.sa;
		const char *kind = webhook_addr_forbidden(sa);
		if (!kind)
			continue;
		char text[INET6_ADDRSTRLEN] = "?";
		const void *a = sa->sa_family == AF_INET6
					? (const void *)&host->addrs[i].u.sin6.sin6_addr
					: (const void *)&host->addrs[i].u.sin.sin_addr;
		inet_ntop(sa->sa_family, a, text, sizeof text);
		snprintf(why, whylen, "%s is a %s address, refused (webhook_allow_private is no)",
			 text, kind);
		return why;
	}
	return NULL;
}

/* on_hook_resolved - the host's addresses: check them, then post. */
static void on_hook_resolved(struct mx_result *res, void *arg)
{
	struct wh_hook *h = arg;
	h->dns_pending = 0;
	if (h->gone) {
		/* Deleted while the lookup ran. */
		mx_result_free(&res);
		wh_hook_free(h);
		return;
	}
	char why[WEBHOOK_ERROR_MAX];
	if (res->status != MX_OK || res->nhosts == 0 || res->hosts[0].naddrs == 0) {
		snprintf(why, sizeof why, "cannot resolve %.160s: %s", h->url.host,
			 res->error ? res->error : "no address");
		hook_failed(h, why);
	} else if (wh_check_addrs(h->set, res, why, sizeof why)) {
		hook_failed(h, why);
	} else {
		hook_post(h, &res->hosts[0].addrs[0]);
	}
	mx_result_free(&res);
}

/* hook_resolve - look the host up again before each connection. */
static void hook_resolve(struct wh_hook *h)
{
	h->state = WH_RESOLVE;
	h->dns_pending = 1;
	if (mx_resolve_host(h->set->dns, h->url.host, on_hook_resolved, h) < 0) {
		h->dns_pending = 0;
		hook_failed(h, "out of memory resolving the host");
	}
}

/* wh_hook_reresolve - ask a new resolver what the old one lost. */
void wh_hook_reresolve(struct wh_hook *h)
{
	if (mx_resolve_host(h->set->dns, h->url.host, on_hook_resolved, h) < 0) {
		h->dns_pending = 0;
		if (h->gone)
			wh_hook_free(h);
		else
			hook_failed(h, "out of memory resolving the host");
	}
}

/* ---- reading the events ---- */

struct fetch_job {
	struct wh_job job; /* first */
	int64_t id;
	struct event_filter f;
	char user[WH_USER_MAX];
	struct event_record *evs;
	size_t n;
};

/* fetch_work - on a worker: the next events of the webhook's filter. */
static int fetch_work(struct wh_job *j, struct records *rec)
{
	struct fetch_job *f = (struct fetch_job *)j;
	return records_events(rec, &f->f, &f->evs, &f->n, j->err, sizeof j->err);
}

/* fetch_release - free a fetch job and what it read. */
static void fetch_release(struct wh_job *j)
{
	struct fetch_job *f = (struct fetch_job *)j;
	event_records_free(&f->evs, f->n);
	free(f);
}

/* fetch_done - hand the events read to their webhook, if still there. */
static void fetch_done(struct wh_job *j)
{
	struct fetch_job *f = (struct fetch_job *)j;
	struct wh_hook *h = wh_hook_find(j->set, f->id);
	if (!h || h->state != WH_FETCH) {
		fetch_release(j);
		return;
	}
	if (j->rc < 0) {
		log_error("webhook %lld: cannot read events, again in %d s: %s", (long long)h->id,
			  WH_STORE_RETRY, j->err);
		fetch_release(j);
		hook_wait(h, WH_STORE_RETRY);
		return;
	}
	h->batch = f->evs;
	h->nbatch = f->n;
	h->pos = 0;
	f->evs = NULL;
	f->n = 0;
	fetch_release(j);
	hook_next(h);
}

/* on_hook_synced - the log is in the store: read after the cursor. */
static void on_hook_synced(void *arg, int ok)
{
	struct wh_hook *h = arg;
	h->sync = NULL;
	struct fetch_job *f = ok ? calloc(1, sizeof *f) : NULL;
	if (!f) {
		log_error("webhook %lld: %s, again in %d s", (long long)h->id,
			  ok ? "out of memory" : "the event log cannot be written", WH_STORE_RETRY);
		hook_wait(h, WH_STORE_RETRY);
		return;
	}
	f->job.work = fetch_work;
	f->job.done = fetch_done;
	f->job.release = fetch_release;
	f->id = h->id;
	snprintf(f->user, sizeof f->user, "%s", h->user);
	f->f.since = h->cursor;
	f->f.limit = WEBHOOK_BATCH;
	f->f.types = h->events;
	f->f.user = f->user[0] ? f->user : NULL; /* "": an admin's, every user's */
	h->state = WH_FETCH;
	wh_job_submit(h->set, &f->job);
}

/* hook_fetch - read what came after the cursor, once the event log has
 * written everything emitted so far. */
static void hook_fetch(struct wh_hook *h)
{
	h->more = 0;
	h->state = WH_SYNC;
	h->sync = event_log_sync(h->set->log, on_hook_synced, h);
	if (!h->sync) {
		log_error("webhook %lld: out of memory, again in %d s", (long long)h->id,
			  WH_STORE_RETRY);
		hook_wait(h, WH_STORE_RETRY);
	}
}

/* wh_hook_start - a loaded or new webhook begins by reading the store. */
void wh_hook_start(struct wh_hook *h)
{
	if (h->disabled)
		h->state = WH_DISABLED;
	else
		hook_fetch(h);
}

/* on_event - the event log's live listener: wake the webhooks this event
 * is for.  A woken webhook reads the store, so this only decides whether
 * to look. */
static void on_event(void *arg, const struct event_record *ev)
{
	struct webhooks *w = arg;
	for (struct wh_hook *h = w->hooks; h; h = h->next) {
		if (h->state == WH_DISABLED || !(h->events & EVENT_MASK(ev->type)) ||
		    ev->id <= h->cursor || (h->user[0] && strcasecmp(h->user, ev->user) != 0))
			continue;
		if (h->state == WH_IDLE)
			hook_fetch(h);
		else
			h->more = 1;
	}
}

/* ---- the set ---- */

struct wh_hook *wh_hook_find(struct webhooks *w, int64_t id)
{
	for (struct wh_hook *h = w->hooks; h; h = h->next)
		if (h->id == id)
			return h;
	return NULL;
}

/* wh_hook_new - a webhook from its row, appended to the set. */
struct wh_hook *wh_hook_new(struct webhooks *w, const struct webhook_row *row)
{
	struct wh_hook *h = calloc(1, sizeof *h);
	char err[WEBHOOK_ERROR_MAX];
	if (!h)
		return NULL;
	h->set = w;
	h->id = row->id;
	h->events = row->events & EVENT_MASK_ALL ? row->events & EVENT_MASK_ALL : EVENT_MASK_ALL;
	h->created = row->created;
	h->cursor = h->saved_cursor = row->cursor;
	h->failures = row->failures;
	h->disabled = row->disabled;
	snprintf(h->user, sizeof h->user, "%s", row->user);
	snprintf(h->last_error, sizeof h->last_error, "%s", row->last_error);
	h->url_text = strdup(row->url);
	h->secret = strdup(row->secret);
	h->timer = evtimer_new(w->base, on_hook_timer, h);
	if (!h->url_text || !h->secret || !h->timer) {
		wh_hook_free(h);
		return NULL;
	}
	if (webhook_url_parse(row->url, &h->url, err, sizeof err) < 0 && !h->disabled) {
		/* Stored by an older rule: keep it visible, never try it. */
		h->disabled = 1;
		snprintf(h->last_error, sizeof h->last_error, "%s", err);
	}
	/* Appended: the list stays in id order. */
	struct wh_hook **tail = &w->hooks;
	while (*tail)
		tail = &(*tail)->next;
	*tail = h;
	return h;
}

/* wh_hook_free - free H (already out of the set). */
void wh_hook_free(struct wh_hook *h)
{
	webhook_post_cancel(&h->post);
	if (h->timer)
		event_free(h->timer);
	hook_drop_batch(h);
	free(h->url_text);
	free(h->secret);
	free(h);
}

/* wh_hook_remove - see webhook_set.h. */
void wh_hook_remove(struct webhooks *w, struct wh_hook *h)
{
	for (struct wh_hook **pp = &w->hooks; *pp; pp = &(*pp)->next)
		if (*pp == h) {
			*pp = h->next;
			break;
		}
	h->next = NULL;
	event_log_sync_cancel(w->log, &h->sync);
	webhook_post_cancel(&h->post);
	evtimer_del(h->timer);
	hook_drop_batch(h);
	h->gone = 1;
	if (h->dns_pending) {
		/* The resolver cannot forget a lookup: free it when it answers. */
		h->next = w->zombies;
		w->zombies = h;
		return;
	}
	wh_hook_free(h);
}

/* A walk over the stored webhooks at start-up. */
struct load_walk {
	struct webhooks *w;
	int failed; /* out of memory: the walk stopped */
};

/* load_one - one webhook row from the store. */
static int load_one(void *ctx, const struct webhook_row *row)
{
	struct load_walk *walk = ctx;
	walk->failed = wh_hook_new(walk->w, row) == NULL;
	return walk->failed;
}

/* tls_client_new - the context of https posts: the system's CA store,
 * TLS 1.2 at least, the peer verified. */
static SSL_CTX *tls_client_new(void)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx)
		return NULL;
	if (SSL_CTX_set_default_verify_paths(ctx) != 1 ||
	    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	return ctx;
}

/* apply_config - CFG's DNS servers (a new resolver) and rules into W. */
static int apply_config(struct webhooks *w, const struct webhooks_config *cfg, char *err,
			size_t errlen)
{
	struct mx_config mc = {.servers = cfg->dns_servers, .nservers = cfg->ndns_servers};
	struct mx_resolver *dns = mx_resolver_new(w->base, &mc, err, errlen);
	if (!dns)
		return -1;
	/* Lookups on the old resolver are lost with it: ask again. */
	mx_resolver_free(&w->dns);
	w->dns = dns;
	w->allow_private = cfg->allow_private != 0;
	w->max_failures = cfg->max_failures ? cfg->max_failures : WEBHOOK_MAX_FAILURES;
	while (w->zombies) {
		struct wh_hook *z = w->zombies;
		w->zombies = z->next;
		wh_hook_free(z);
	}
	for (struct wh_hook *h = w->hooks, *next; h; h = next) {
		next = h->next;
		if (h->dns_pending)
			wh_hook_reresolve(h);
	}
	wh_ops_reresolve(w);
	return 0;
}

/* webhooks_new - the store connection, resolver, TLS context, the
 * webhooks from the store, the listener; then every webhook starts. */
struct webhooks *webhooks_new(struct event_base *base, struct workers *pool, struct event_log *log,
			      const struct webhooks_config *cfg, char *err, size_t errlen)
{
	struct webhooks *w = calloc(1, sizeof *w);
	if (!w) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	w->base = base;
	w->pool = pool;
	w->log = log;
	if (!(w->rec = records_open(event_log_db_path(log), err, errlen)) ||
	    apply_config(w, cfg, err, errlen) < 0)
		goto fail;
	struct load_walk walk = {w, 0};
	if (records_webhook_each(w->rec, load_one, &walk, err, errlen) < 0)
		goto fail;
	if (walk.failed) {
		snprintf(err, errlen, "webhooks: out of memory loading them");
		goto fail;
	}
	if (!(w->tls = tls_client_new()) || !(w->listener = event_log_listen(log, on_event, w))) {
		snprintf(err, errlen, "webhooks: out of memory, or no TLS client context");
		goto fail;
	}
	size_t n = 0;
	for (struct wh_hook *h = w->hooks; h; h = h->next, n++)
		wh_hook_start(h);
	if (n)
		log_info("webhooks: %zu loaded", n);
	return w;
fail:
	webhooks_free(&w);
	return NULL;
}

/* webhooks_set_config - a reload: the same as at start. */
int webhooks_set_config(struct webhooks *w, const struct webhooks_config *cfg, char *err,
			size_t errlen)
{
	return apply_config(w, cfg, err, errlen);
}

/* flush_progress - at shutdown, on this thread: the queued writes, then
 * every cursor that moved since its last write, so a restart repeats as
 * little as it can.  Only when no job is running: the connection is ours. */
static void flush_progress(struct webhooks *w)
{
	while (w->queue) {
		struct wh_job *j = w->queue;
		w->queue = j->next;
		if (!w->running && w->rec && j->work == progress_work)
			j->work(j, w->rec);
		j->release(j);
	}
	w->queue_tail = NULL;
	for (struct wh_hook *h = w->hooks; h; h = h->next) {
		char err[256];
		if (!w->running && w->rec && h->cursor != h->saved_cursor &&
		    records_webhook_progress(w->rec, h->id, h->cursor, h->failures, h->disabled,
					     h->last_error, err, sizeof err) < 0)
			log_error("webhook %lld: progress not stored at shutdown: %s",
				  (long long)h->id, err);
	}
}

/* webhooks_free - stop listening and resolving, write what can be
 * written, free everything (a running job finishes on its own). */
void webhooks_free(struct webhooks **pw)
{
	struct webhooks *w = *pw;
	if (!w)
		return;
	*pw = NULL;
	if (w->listener)
		event_log_unlisten(w->log, &w->listener);
	mx_resolver_free(&w->dns); /* no lookup calls back now */
	flush_progress(w);
	if (w->running) {
		/* Its completion closes the connection. */
		w->running->set = NULL;
		w->rec = NULL;
	}
	while (w->hooks) {
		struct wh_hook *h = w->hooks;
		h->dns_pending = 0;
		wh_hook_remove(w, h);
	}
	while (w->zombies) {
		struct wh_hook *z = w->zombies;
		w->zombies = z->next;
		wh_hook_free(z);
	}
	wh_ops_free(w);
	records_close(&w->rec);
	SSL_CTX_free(w->tls);
	free(w);
}
