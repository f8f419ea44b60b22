/* http_private.h - what the files of the HTTP API share: the server's
 * state, the route table's types, authentication and JSON replies.
 *
 * A route names a path (exact, or a prefix ending in '/'), the methods it
 * answers and whether it needs an API key; the server matches the path,
 * answers 404 or 405 itself, authenticates, then calls the handler.  A
 * handler answers exactly once, now or later (after a worker or the
 * spool); one that answers later registers its request with the server so
 * a shutdown can detach it (http_pending_add/remove).
 *
 * Error replies are {"error": {"code": "...", "message": "..."}}: the code
 * is a stable word for programs, the message a sentence for people. */
#ifndef TERN_HTTP_HTTP_PRIVATE_H
#define TERN_HTTP_HTTP_PRIVATE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "http/http_server.h"

struct evhttp;
struct evhttp_request;
struct apikey_set;

#define API_USER_MAX 320 /* an address and its NUL, as in struct dir_target */

/* Who is asking: the key's id and its user, or an admin key. */
struct api_principal {
	int64_t key_id;
	int admin;
	char user[API_USER_MAX]; /* "" for an admin key */
};

/* A request being handled. */
struct api_request {
	struct http_server *srv;
	struct evhttp_request *req;
	const char *path; /* points into REQ's URI */
	char peer[64]; /* the client's address, numeric */
	struct api_principal who; /* set when the route needs a key */
};

/* A request answered later: linked into the server so that shutdown can
 * tell its owner that the request is gone (DETACH). */
struct http_pending {
	struct http_pending *prev, *next;
	void (*detach)(struct http_pending *p);
};

struct key_waiter;
struct key_reload;
struct deferred;

struct http_server {
	const struct http_context *ctx;
	struct settings *settings;
	struct directory *dir;
	struct apikey_set *keys;
	struct evhttp *http;
	int *fds; /* bound listeners until start (-1 once evhttp owns them) */
	size_t nfds;
	struct evhttp_bound_socket **bound;
	/* Key reloads: the running one, whether another is due after it,
	 * how many have been started, and the control requests waiting. */
	struct key_reload *reload;
	int reload_again;
	unsigned long reloads_started;
	struct key_waiter *waiters;
	/* Requests held until the keys are as new as the directory. */
	struct deferred *deferred;
	struct http_pending *pending;
	struct read_pool *reads; /* store connections of the read endpoints */
	unsigned streams; /* open event streams (GET /v1/events/stream) */
};

typedef void (*api_handler)(struct api_request *r);

struct http_route {
	const char *path; /* exact, or a prefix when it ends in '/' */
	unsigned methods; /* EVHTTP_REQ_* */
	int needs_key;
	api_handler handler;
};

/* api_authenticate - check R's "Authorization: Bearer KEY" against the
 * key snapshot (and that a user key's user still exists) and fill R->who.
 * Returns 0, or -1 after answering 401. */
int api_authenticate(struct api_request *r);

/* Handlers (one file each once they grow). */
void api_messages_post(struct api_request *r);

/* api_limits.c: a refusal by the sending rules. */
struct api_refusal {
	int status; /* 422 or 429 */
	const char *code; /* "suppressed_recipient", "rate_limited", "quota_exceeded" */
	unsigned retry_after; /* seconds for Retry-After; 0: none */
	char message[512];
};
struct envelope;
/* api_send_limits - may R's user send to RCPTS now (rate limit, suppression
 * lists, quotas)?  0, or -1 with OUT filled and the refusals recorded as
 * `rejected` events.  Admin keys are not limited. */
int api_send_limits(struct api_request *r, const char *const *rcpts, size_t n,
		    struct api_refusal *out);
/* api_record_rejection - a `rejected` event of R for RCPT (NULL: the
 * whole message) with STATUS and WHY as its detail. */
void api_record_rejection(struct api_request *r, const char *rcpt, int status, const char *why);
/* api_refusal_reply - answer REQ with A (and its Retry-After). */
void api_refusal_reply(struct evhttp_request *req, const struct api_refusal *a);
/* api_record_accepted - ENV was committed: charge its user's quotas and
 * record its summary and accepted events. */
void api_record_accepted(struct http_server *srv, const struct envelope *env,
			 const char *subject, const char *tags_json);

/* ---- the read side: events, messages, stats, suppressions, metrics ---- */

void api_messages_get(struct api_request *r); /* GET /v1/messages/ID */
void api_events_list(struct api_request *r); /* GET /v1/events */
void api_events_stream(struct api_request *r); /* GET /v1/events/stream */
void api_stats_get(struct api_request *r); /* GET /v1/stats */
void api_suppressions_list(struct api_request *r); /* GET /v1/suppressions */
void api_suppressions_post(struct api_request *r); /* POST /v1/suppressions */
void api_suppressions_delete(struct api_request *r); /* DELETE /v1/suppressions/ADDRESS */
void api_metrics(struct api_request *r); /* GET /metrics */
/* api_webhooks.c */
void api_webhooks_list(struct api_request *r); /* GET /v1/webhooks */
void api_webhooks_post(struct api_request *r); /* POST /v1/webhooks */
void api_webhooks_delete(struct api_request *r); /* DELETE /v1/webhooks/ID */

/* api_query.c: query strings and parameters.
 * api_query_parse - REQ's query string into OUT (cleared by the caller
 * with evhttp_clear_headers once it returned 0), every name one of NAMES
 * and given once; -1 with a reason in ERR (OUT then empty). */
struct evkeyvalq;
int api_query_parse(struct evhttp_request *req, const char *const *names, size_t n,
		    struct evkeyvalq *out, char *err, size_t errlen);
/* api_query_parse_string - the same for the query string Q (NULL: none). */
int api_query_parse_string(const char *q, const char *const *names, size_t n,
			   struct evkeyvalq *out, char *err, size_t errlen);
/* api_parse_int - decimal digits only, MIN..MAX; 0 or -1. */
int api_parse_int(const char *s, int64_t min, int64_t max, int64_t *out);
/* api_parse_time - unix seconds or ISO 8601 UTC ("2026-11-29",
 * "2026-11-29T08:00:00Z", fractions allowed) into *OUT seconds; 0 or -1. */
int api_parse_time(const char *s, int64_t *out);
/* api_format_time - SECS as event times are written (EVENT_TIME_MAX). */
void api_format_time(int64_t secs, char *out);
/* api_parse_types - "delivered,bounced" into an EVENT_MASK set; 0 or -1. */
int api_parse_types(const char *s, unsigned *mask);
/* api_queue_id_ok - is ID a queue id (1-31 letters and digits)? */
int api_queue_id_ok(const char *id);
/* api_scope_of - whose data WHO may read given the user= parameter GIVEN
 * (NULL: absent): an admin key GIVEN (NULL: everyone's), a user key its
 * own user (GIVEN must name it).  0, or the status to refuse with (400
 * for an empty or too long GIVEN, 403 for another user). */
int api_scope_of(const struct api_principal *who, const char *given, const char **user);
/* api_scope - api_scope_of for R; -1 after answering the refusal. */
int api_scope(struct api_request *r, const char *given, const char **user);
/* api_scope_user - api_scope for a write on behalf of a user: an admin's
 * GIVEN must also be an existing user (else 422 unknown_user).  -1 after
 * answering the refusal. */
int api_scope_user(struct api_request *r, const char *given, const char **user);

/* api_read.c: a read of the store for a request, after event_log_sync,
 * on a worker with a pooled connection, answered on the loop.  A job
 * type embeds struct api_read first and gives its operations. */
struct records;
struct read_pool;
struct event_sync;
struct api_read;
struct api_read_ops {
	/* on a worker: read into the job; 0, or -1 with ERR set */
	int (*work)(struct api_read *j, struct records *r, char *err, size_t errlen);
	/* on the loop while the request is there: answer it (an owned job
	 * is also told of a failure, with FAILED set) */
	void (*answer)(struct api_read *j);
	/* free the job (answered, failed or detached) */
	void (*release)(struct api_read *j);
};
struct api_read {
	struct http_pending pending; /* first */
	const struct api_read_ops *ops;
	struct http_server *srv; /* NULL once detached */
	struct evhttp_request *req;
	/* OWNED: the job belongs to another pending object (an event
	 * stream), which cancels it; it neither watches the connection nor
	 * answers errors itself. */
	int owned;
	struct event_sync *sync;
	struct read_pool *pool;
	int failed;
	char err[256];
};
/* api_read_start - run J (calloc'ed, set up by the caller) for REQ.  0, or
 * -1 when it could not start: J was released, and REQ answered unless J
 * is owned. */
int api_read_start(struct http_server *srv, struct evhttp_request *req, struct api_read *j,
		   const struct api_read_ops *ops);
/* api_read_cancel - an owned job's owner goes away: no answer will come
 * (J is freed now or when its worker finishes). */
void api_read_cancel(struct api_read *j);
/* api_read_pool_unref - drop the server's reference (http_server_free). */
void api_read_pool_unref(struct read_pool **p);

/* http_count_reply - count one answer with STATUS for /metrics (the
 * reply functions below do; a handler that answers otherwise calls it). */
void http_count_reply(int status);
/* http_reply_counts - answers sent since start by status: COUNTS[s] for
 * s in 100..HTTP_STATUS_MAX-1. */
#define HTTP_STATUS_MAX 600
const unsigned long *http_reply_counts(void);
/* http_reply_empty - answer REQ with STATUS and no body (204). */
void http_reply_empty(struct evhttp_request *req, int status);

/* api_body.c: the fields an endpoint's JSON body may have, ending with
 * a NULL name. */
enum api_field_kind { API_FIELD_STRING, API_FIELD_ANY };
struct api_field {
	const char *name;
	enum api_field_kind kind; /* ANY: the handler checks it */
	int nullable; /* null is also accepted */
};
/* api_json_body - R's body as a JSON object with only FIELDS, each of
 * its kind (a new reference), or NULL after answering 400 or 415. */
json_t *api_json_body(struct api_request *r, const struct api_field *fields);

/* http_reply_json - answer REQ with STATUS and BODY (a reference is
 * stolen; NULL answers an empty object). */
void http_reply_json(struct evhttp_request *req, int status, json_t *body);

/* http_reply_error - answer REQ with STATUS and the error object. */
void http_reply_error(struct evhttp_request *req, int status, const char *code, const char *fmt,
		      ...) __attribute__((format(printf, 4, 5)));

void http_pending_add(struct http_server *srv, struct http_pending *p);
void http_pending_remove(struct http_server *srv, struct http_pending *p);

#endif
