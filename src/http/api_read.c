/* api_read.c - reading the store for a request without blocking the loop.
 *
 * A read waits for the event log to have written everything emitted so
 * far (event_log_sync), so an answer includes every event the daemon has
 * seen; then it runs on the worker pool with a connection of its own and
 * is answered back on the loop.  Connections are kept in a small pool
 * (opening one runs the schema migrations), shared by the jobs of one
 * server and freed with its last user.
 *
 * A request whose client goes away (the connection's close callback) or
 * that is still waiting at shutdown (http_pending) is detached: a sync not
 * yet done is cancelled and the job freed; a worker already reading
 * finishes and its result is dropped. */
#include <event2/http.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/workers.h"
#include "http/http_private.h"
#include "store/directory.h"
#include "store/event_log.h"
#include "store/records.h"

#define POOL_IDLE_MAX 4 /* idle connections kept; more are closed */

struct read_pool {
	pthread_mutex_t lock;
	unsigned refs;
	char *db_path;
	struct records *idle[POOL_IDLE_MAX];
	size_t nidle;
};

/* pool_new - an empty pool for the store at DB_PATH, one reference. */
static struct read_pool *pool_new(const char *db_path)
{
	struct read_pool *p = calloc(1, sizeof *p);
	if (!p || !(p->db_path = strdup(db_path))) {
		free(p);
		return NULL;
	}
	pthread_mutex_init(&p->lock, NULL);
	p->refs = 1;
	return p;
}

static struct read_pool *pool_ref(struct read_pool *p)
{
	pthread_mutex_lock(&p->lock);
	p->refs++;
	pthread_mutex_unlock(&p->lock);
	return p;
}

void api_read_pool_unref(struct read_pool **pp)
{
	struct read_pool *p = *pp;
	if (!p)
		return;
	*pp = NULL;
	pthread_mutex_lock(&p->lock);
	unsigned left = --p->refs;
	pthread_mutex_unlock(&p->lock);
	if (left)
		return;
	for (size_t i = 0; i < p->nidle; i++)
		records_close(&p->idle[i]);
	pthread_mutex_destroy(&p->lock);
	free(p->db_path);
	free(p);
}

/* pool_take - an idle connection, or a new one (worker thread). */
static struct records *pool_take(struct read_pool *p, char *err, size_t errlen)
{
	struct records *r = NULL;
	pthread_mutex_lock(&p->lock);
	if (p->nidle)
		r = p->idle[--p->nidle];
	pthread_mutex_unlock(&p->lock);
	return r ? r : records_open(p->db_path, err, errlen);
}

/* pool_give - R back to the pool; after an error it is closed instead,
 * in case the connection itself is what failed. */
static void pool_give(struct read_pool *p, struct records *r, int healthy)
{
	pthread_mutex_lock(&p->lock);
	if (healthy && p->nidle < POOL_IDLE_MAX) {
		p->idle[p->nidle++] = r;
		r = NULL;
	}
	pthread_mutex_unlock(&p->lock);
	records_close(&r);
}

/* ---- jobs ---- */

/* job_free - the end of every job, answered or not. */
static void job_free(struct api_read *j)
{
	api_read_pool_unref(&j->pool);
	j->ops->release(j);
}

/* unwatch - forget the connection's close callback: the connection may
 * carry more requests after this one. */
static void unwatch(struct api_read *j)
{
	struct evhttp_connection *c = j->req ? evhttp_request_get_connection(j->req) : NULL;
	if (c)
		evhttp_connection_set_closecb(c, NULL, NULL);
}

/* detach - the request is gone or going: stop waiting for the sync (then
 * nothing will call back: free the job now), or let the worker finish. */
static void detach(struct api_read *j)
{
	struct event_log *log = j->srv->ctx->events;
	j->srv = NULL;
	j->req = NULL;
	if (j->sync) {
		event_log_sync_cancel(log, &j->sync);
		job_free(j);
	}
}

/* read_shutdown - http_pending's detach: the server is being freed. */
static void read_shutdown(struct http_pending *p)
{
	struct api_read *j = (struct api_read *)p;
	unwatch(j);
	detach(j);
}

/* read_closed - the client closed its connection while the job ran.  A
 * request evhttp has let go of (no connection) is ours to free. */
static void read_closed(struct evhttp_connection *c, void *arg)
{
	struct api_read *j = arg;
	evhttp_connection_set_closecb(c, NULL, NULL);
	if (!evhttp_request_get_connection(j->req))
		evhttp_request_free(j->req);
	http_pending_remove(j->srv, &j->pending);
	detach(j);
}

/* finish - answer (when the request is still there) and free the job. */
static void finish(struct api_read *j)
{
	if (j->srv && j->owned) {
		j->ops->answer(j);
	} else if (j->srv) {
		unwatch(j);
		http_pending_remove(j->srv, &j->pending);
		if (j->failed) {
			char safe[256];
			log_error("http: reading the store: %s",
				  log_sanitize(safe, sizeof safe, j->err, strlen(j->err)));
			http_reply_error(j->req, 503, "unavailable",
					 "the event store cannot be read now; try again later");
		} else {
			j->ops->answer(j);
		}
	}
	job_free(j);
}

static void read_work(void *arg)
{
	struct api_read *j = arg;
	struct records *r = pool_take(j->pool, j->err, sizeof j->err);
	if (!r) {
		j->failed = 1;
		return;
	}
	int rc = j->ops->work(j, r, j->err, sizeof j->err);
	j->failed = rc < 0;
	pool_give(j->pool, r, rc == 0);
}

static void read_done(void *arg)
{
	finish(arg);
}

/* synced - every event emitted before the read began is in the store. */
static void synced(void *arg, int ok)
{
	struct api_read *j = arg;
	j->sync = NULL;
	if (!ok) {
		j->failed = 1;
		snprintf(j->err, sizeof j->err, "the event log could not write to the store");
		finish(j);
		return;
	}
	if (workers_submit(j->srv->ctx->pool, read_work, read_done, j) < 0) {
		j->failed = 1;
		snprintf(j->err, sizeof j->err, "the worker pool is shutting down");
		finish(j);
	}
}

/* start_failed - J could not start: say so (unless owned), free it. */
static int start_failed(struct evhttp_request *req, struct api_read *j, int status,
			const char *code, const char *why)
{
	if (!j->owned)
		http_reply_error(req, status, code, "%s", why);
	job_free(j);
	return -1;
}

int api_read_start(struct http_server *srv, struct evhttp_request *req, struct api_read *j,
		   const struct api_read_ops *ops)
{
	struct event_log *log = srv->ctx->events;
	j->ops = ops;
	if (!log || !srv->ctx->pool)
		return start_failed(req, j, 503, "unavailable", "the event store is not open");
	if (!srv->reads && !(srv->reads = pool_new(event_log_db_path(log))))
		return start_failed(req, j, 500, "internal", "out of memory");
	j->pool = pool_ref(srv->reads);
	/* The sync's callback comes later, from the loop, never from
	 * inside event_log_sync. */
	if (!(j->sync = event_log_sync(log, synced, j)))
		return start_failed(req, j, 500, "internal", "out of memory");
	j->srv = srv;
	j->req = req;
	if (j->owned)
		return 0;
	j->pending.detach = read_shutdown;
	http_pending_add(srv, &j->pending);
	struct evhttp_connection *c = evhttp_request_get_connection(req);
	if (c)
		evhttp_connection_set_closecb(c, read_closed, j);
	return 0;
}

void api_read_cancel(struct api_read *j)
{
	if (j->srv)
		detach(j);
}

int api_scope(struct api_request *r, const char *given, const char **user)
{
	int status = api_scope_of(&r->who, given, user);
	if (status == 400)
		http_reply_error(r->req, 400, "invalid_request", "user must be a user's address");
	else if (status == 403)
		http_reply_error(r->req, 403, "forbidden",
				 "a user's key reads only its own user's data");
	return status ? -1 : 0;
}

int api_scope_user(struct api_request *r, const char *given, const char **user)
{
	if (api_scope(r, given, user) < 0)
		return -1;
	if (r->who.admin && !directory_user(r->srv->dir, *user)) {
		http_reply_error(r->req, 422, "unknown_user", "no such user: %s", *user);
		return -1;
	}
	return 0;
}
