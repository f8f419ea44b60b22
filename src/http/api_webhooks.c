/* api_webhooks.c - the webhooks (http/webhooks.h) over HTTP:
 *
 *   GET    /v1/webhooks[?user=U]          -> {webhooks[{id, url, events[], state,
 *                                              failures, last_error, created, user}]}
 *   POST   /v1/webhooks {url, events[][, user]}
 *                                          -> 201 {id, secret, url, events[]}
 *   DELETE /v1/webhooks/ID                 -> 204, or 404
 *
 * A user key sees and changes its user's webhooks.  An admin key sees
 * every webhook (or user=U's), deletes any, and creates either a webhook
 * for every user's events (no "user") or one for the user it names.
 * events [] or absent means every type.  The secret is shown once, in the
 * 201.  A URL refused by its form is a 400, one whose host has a private
 * address (webhook_allow_private no) a 422 forbidden_address.
 *
 * Bodies are strict: one JSON object, no name twice, no unknown field. */
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "http/http_private.h"
#include "http/webhooks.h"
#include "store/event.h"

/* A creation or a deletion waiting for its answer. */
struct wh_request {
	struct http_pending pending; /* first: detach gets this pointer */
	struct http_server *srv;     /* NULL once detached */
	struct evhttp_request *req;
	struct webhooks *wh;
	char url[WEBHOOK_URL_MAX + 1];
	unsigned events;
};

/* request_end - the answer is sent or not needed: stop watching the
 * connection, unregister, free. */
static void request_end(struct wh_request *q)
{
	struct evhttp_connection *c = q->req ? evhttp_request_get_connection(q->req) : NULL;
	if (c)
		evhttp_connection_set_closecb(c, NULL, NULL);
	http_pending_remove(q->srv, &q->pending);
	free(q);
}

/* request_detach - the server is going away: no answer will be sent. */
static void request_detach(struct http_pending *p)
{
	struct wh_request *q = (struct wh_request *)p;
	struct evhttp_connection *c = evhttp_request_get_connection(q->req);
	if (c)
		evhttp_connection_set_closecb(c, NULL, NULL);
	webhooks_cancel(q->wh, q);
	free(q);
}

/* request_closed - the client went away first.  A request evhttp has let
 * go of (no connection) is ours to free. */
static void request_closed(struct evhttp_connection *c, void *arg)
{
	struct wh_request *q = arg;
	evhttp_connection_set_closecb(c, NULL, NULL);
	if (!evhttp_request_get_connection(q->req))
		evhttp_request_free(q->req);
	q->req = NULL;
	webhooks_cancel(q->wh, q);
	request_end(q);
}

/* request_new - a pending answer for R, watched; NULL after a 500. */
static struct wh_request *request_new(struct api_request *r)
{
	struct wh_request *q = calloc(1, sizeof *q);
	if (!q) {
		http_reply_error(r->req, 500, "internal", "out of memory");
		return NULL;
	}
	q->srv = r->srv;
	q->req = r->req;
	q->wh = r->srv->ctx->webhooks;
	q->pending.detach = request_detach;
	http_pending_add(r->srv, &q->pending);
	struct evhttp_connection *c = evhttp_request_get_connection(r->req);
	if (c)
		evhttp_connection_set_closecb(c, request_closed, q);
	return q;
}

/* events_json - the names of the types in MASK. */
static json_t *events_json(unsigned mask)
{
	json_t *a = json_array();
	for (int t = 0; a && t < EVENT_NTYPES; t++)
		if ((mask & EVENT_MASK(t)) &&
		    json_array_append_new(a, json_string(event_type_name(t))) < 0) {
			json_decref(a);
			return NULL;
		}
	return a;
}

/* webhooks_of - the daemon's webhooks, or NULL after a 503. */
static struct webhooks *webhooks_of(struct api_request *r)
{
	struct webhooks *w = r->srv->ctx->webhooks;
	if (!w)
		http_reply_error(r->req, 503, "unavailable", "webhooks are not running");
	return w;
}

/* ---- GET ---- */

void api_webhooks_list(struct api_request *r)
{
	static const char *const names[] = {"user"};
	struct webhooks *w = webhooks_of(r);
	struct evkeyvalq q;
	char err[160];
	const char *user = NULL;
	if (!w)
		return;
	if (api_query_parse(r->req, names, 1, &q, err, sizeof err) < 0) {
		http_reply_error(r->req, 400, "invalid_request", "%s", err);
		return;
	}
	if (api_scope(r, evhttp_find_header(&q, "user"), &user) == 0) {
		json_t *arr = webhooks_list_json(w, user);
		if (arr)
			http_reply_json(r->req, 200, json_pack("{s:o}", "webhooks", arr));
		else
			http_reply_error(r->req, 500, "internal", "out of memory");
	}
	evhttp_clear_headers(&q);
}

/* ---- POST ---- */

static void on_added(void *arg, int status, int64_t id, const char *secret, const char *message)
{
	struct wh_request *q = arg;
	struct evhttp_request *req = q->req;
	if (status == 201) {
		json_t *events = events_json(q->events);
		json_t *body = events ? json_pack("{sI ss ss so}", "id", (json_int_t)id, "secret",
						  secret, "url", q->url, "events", events)
				      : NULL;
		if (body)
			http_reply_json(req, 201, body);
		else
			http_reply_error(req, 500, "internal",
					 "out of memory (the webhook was "
					 "created: delete it and try again)");
	} else if (status == 422) {
		http_reply_error(req, 422, "forbidden_address", "%s", message);
	} else if (status == 400) {
		http_reply_error(req, 400, "invalid_url", "%s", message);
	} else {
		http_reply_error(req, status >= 400 && status < 600 ? status : 500, "internal",
				 "%s", message);
	}
	request_end(q);
}

/* parse_events - the "events" member V (absent or null: all) into *MASK;
 * 0, or -1 after answering 400. */
static int parse_events(struct api_request *r, json_t *v, unsigned *mask)
{
	size_t i;
	json_t *e;
	*mask = 0;
	if (!v || json_is_null(v)) {
		*mask = EVENT_MASK_ALL;
		return 0;
	}
	if (!json_is_array(v)) {
		http_reply_error(r->req, 400, "invalid_request",
				 "events must be an array of "
				 "event types");
		return -1;
	}
	json_array_foreach(v, i, e)
	{
		const char *name = json_string_value(e);
		int t = name ? event_type_parse(name) : -1;
		if (t < 0) {
			char safe[64];
			http_reply_error(r->req, 400, "invalid_request",
					 "unknown event type %s (accepted, delivered, deferred, "
					 "bounced, rejected)",
					 name ? log_sanitize(safe, sizeof safe, name, strlen(name))
					      : "(not a string)");
			return -1;
		}
		*mask |= EVENT_MASK(t);
	}
	if (*mask == 0)
		*mask = EVENT_MASK_ALL;
	return 0;
}

/* The POST body's fields. */
static const struct api_field post_fields[] = {
	{ "url", API_FIELD_STRING, 0 },
	{ "events", API_FIELD_ANY, 0 },
	{ "user", API_FIELD_STRING, 1 },
	{ NULL, API_FIELD_STRING, 0 },
};

/* post_owner - whose events the new webhook follows: a user key's own
 * user; for an admin key the user named, or "" (every user). */
static int post_owner(struct api_request *r, const char *given, const char **user)
{
	if (r->who.admin && !given) {
		*user = "";
		return 0;
	}
	return api_scope_user(r, given, user);
}

/* api_webhooks_post - POST /v1/webhooks: checks here, the rest in webhooks_add. */
void api_webhooks_post(struct api_request *r)
{
	struct webhooks *w = webhooks_of(r);
	json_t *root = w ? api_json_body(r, post_fields) : NULL;
	if (!root)
		return;
	const char *url = json_string_value(json_object_get(root, "url"));
	const char *user = NULL;
	unsigned mask;
	char err[256];
	if (!url)
		http_reply_error(r->req, 400, "invalid_request", "url is required");
	else if (webhooks_url_check(url, err, sizeof err) < 0)
		http_reply_error(r->req, 400, "invalid_url", "%s", err);
	else if (parse_events(r, json_object_get(root, "events"), &mask) == 0 &&
		 post_owner(r, json_string_value(json_object_get(root, "user")), &user) == 0) {
		struct wh_request *q = request_new(r);
		if (q) {
			snprintf(q->url, sizeof q->url, "%s", url);
			q->events = mask;
			webhooks_add(w, user, url, mask, on_added, q);
		}
	}
	json_decref(root);
}

/* ---- DELETE ---- */

static void on_deleted(void *arg, int status)
{
	struct wh_request *q = arg;
	if (status == 204)
		http_reply_empty(q->req, 204);
	else if (status == 404)
		http_reply_error(q->req, 404, "not_found", "no such webhook");
	else
		http_reply_error(q->req, 500, "internal", "the webhook could not be deleted");
	request_end(q);
}

/* api_webhooks_delete - DELETE /v1/webhooks/ID. */
void api_webhooks_delete(struct api_request *r)
{
	struct webhooks *w = webhooks_of(r);
	int64_t id;
	if (!w)
		return;
	const char *param = r->path + strlen("/v1/webhooks/");
	if (api_parse_int(param, 1, INT64_MAX, &id) < 0) {
		http_reply_error(r->req, 404, "not_found", "no such webhook");
		return;
	}
	struct wh_request *q = request_new(r);
	if (q)
		webhooks_del(w, r->who.admin ? NULL : r->who.user, id, on_deleted, q);
}
