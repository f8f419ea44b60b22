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

/* http_reply_json - answer REQ with STATUS and BODY (a reference is
 * stolen; NULL answers an empty object). */
void http_reply_json(struct evhttp_request *req, int status, json_t *body);

/* http_reply_error - answer REQ with STATUS and the error object. */
void http_reply_error(struct evhttp_request *req, int status, const char *code, const char *fmt,
		      ...) __attribute__((format(printf, 4, 5)));

void http_pending_add(struct http_server *srv, struct http_pending *p);
void http_pending_remove(struct http_server *srv, struct http_pending *p);

#endif
