/* api_events.c - what happened to messages, read from the store:
 *
 *   GET /v1/events?since=CURSOR&limit=N&type=T[,T...]&message=ID&user=U
 *       -> {events[{id, time, type, message_id, recipient, user, detail}], next}
 *   GET /v1/messages/ID
 *       -> {id, from, subject, created, tags[],
 *           recipients[{address, state, attempts, last_reply}]}
 *
 * Event ids increase, so an id is a cursor: a client pages with
 * since=next until an answer comes back empty, and polls the same way.  A
 * user key reads only its user's events and messages (another user's
 * message is 404, as if it did not exist); an admin key reads everyone's,
 * or one user's with user=.  Reads go through api_read.c: after the event
 * log has written what it holds, on a worker. */
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http/http_private.h"
#include "store/event.h"
#include "store/records.h"

#define EVENTS_LIMIT_DEFAULT 100
#define EVENTS_LIMIT_MAX     1000

/* ---- GET /v1/events ---- */

struct events_job {
	struct api_read base; /* first */
	struct event_filter f;
	char message_id[32];
	char user[API_USER_MAX];
	struct event_record *evs;
	size_t n;
};

static int events_work(struct api_read *j, struct records *r, char *err, size_t errlen)
{
	struct events_job *e = (struct events_job *)j;
	return records_events(r, &e->f, &e->evs, &e->n, err, errlen);
}

static void events_answer(struct api_read *j)
{
	struct events_job *e = (struct events_job *)j;
	json_t *arr = json_array();
	int64_t next = e->f.since;
	for (size_t i = 0; arr && i < e->n; i++) {
		if (json_array_append_new(arr, event_json(&e->evs[i])) < 0) {
			json_decref(arr);
			arr = NULL;
		}
		next = e->evs[i].id;
	}
	json_t *body = arr ? json_pack("{s:o,s:I}", "events", arr, "next", (json_int_t)next) : NULL;
	if (!body) {
		http_reply_error(j->req, 500, "internal", "out of memory");
		return;
	}
	http_reply_json(j->req, 200, body);
}

static void events_release(struct api_read *j)
{
	struct events_job *e = (struct events_job *)j;
	event_records_free(&e->evs, e->n);
	free(e);
}

static const struct api_read_ops events_ops = {events_work, events_answer, events_release};

/* events_filter - the query of R into E's filter; -1 after answering 400
 * (or 403 for another user's events). */
static int events_filter(struct api_request *r, struct events_job *e)
{
	static const char *const names[] = {"since", "limit", "type", "message", "user"};
	struct evkeyvalq q;
	char err[160];
	if (api_query_parse(r->req, names, 5, &q, err, sizeof err) < 0) {
		http_reply_error(r->req, 400, "invalid_request", "%s", err);
		return -1;
	}
	const char *since = evhttp_find_header(&q, "since"),
		   *limit = evhttp_find_header(&q, "limit");
	const char *type = evhttp_find_header(&q, "type"), *msg = evhttp_find_header(&q, "message");
	const char *user = NULL;
	int64_t v = EVENTS_LIMIT_DEFAULT;
	int rc = -1;
	e->f.since = 0;
	if (since && api_parse_int(since, 0, INT64_MAX / 2, &e->f.since) < 0)
		http_reply_error(r->req, 400, "invalid_request",
				 "since must be an event id (0 or more)");
	else if (limit && api_parse_int(limit, 1, EVENTS_LIMIT_MAX, &v) < 0)
		http_reply_error(r->req, 400, "invalid_request",
				 "limit must be a number from 1 to %d", EVENTS_LIMIT_MAX);
	else if (type && api_parse_types(type, &e->f.types) < 0)
		http_reply_error(r->req, 400, "invalid_request",
				 "type must be accepted, delivered, deferred, bounced or rejected "
				 "(several joined by commas)");
	else if (msg && !api_queue_id_ok(msg))
		http_reply_error(r->req, 400, "invalid_request",
				 "message must be a queue id (letters and digits)");
	else if (api_scope(r, evhttp_find_header(&q, "user"), &user) == 0)
		rc = 0;
	if (rc == 0) {
		e->f.limit = (size_t)v;
		if (msg) {
			snprintf(e->message_id, sizeof e->message_id, "%s", msg);
			e->f.message_id = e->message_id;
		}
		if (user) {
			snprintf(e->user, sizeof e->user, "%s", user);
			e->f.user = e->user;
		}
	}
	evhttp_clear_headers(&q);
	return rc;
}

void api_events_list(struct api_request *r)
{
	struct events_job *e = calloc(1, sizeof *e);
	if (!e) {
		http_reply_error(r->req, 500, "internal", "out of memory");
		return;
	}
	if (events_filter(r, e) < 0) {
		free(e);
		return;
	}
	api_read_start(r->srv, r->req, &e->base, &events_ops);
}

/* ---- GET /v1/messages/ID ---- */

struct message_job {
	struct api_read base; /* first */
	char id[32];
	char user[API_USER_MAX]; /* "" for an admin key */
	int missing;		 /* records_message said 1 */
	struct message_meta meta;
	struct event_record *evs;
	size_t n;
};

static int message_work(struct api_read *j, struct records *r, char *err, size_t errlen)
{
	struct message_job *m = (struct message_job *)j;
	int rc = records_message(r, m->id, &m->meta, &m->evs, &m->n, err, errlen);
	m->missing = rc == 1;
	return rc < 0 ? -1 : 0;
}

/* state_name - what a recipient's last event says about it. */
static const char *state_name(enum event_type t)
{
	switch (t) {
	case EVENT_ACCEPTED:
		return "queued";
	case EVENT_DEFERRED:
		return "deferred";
	case EVENT_DELIVERED:
		return "delivered";
	case EVENT_BOUNCED:
		return "bounced";
	case EVENT_REJECTED:
	default:
		return "rejected";
	}
}

/* recipient_json - the state of ADDR from the message's events (oldest
 * first): the last event's type, the delivery attempts, the last reply. */
static json_t *recipient_json(const struct message_job *m, const char *addr)
{
	const struct event_record *last = NULL, *reply = NULL;
	json_int_t attempts = 0;
	for (size_t i = 0; i < m->n; i++) {
		const struct event_record *ev = &m->evs[i];
		if (strcmp(ev->recipient, addr) != 0)
			continue;
		last = ev;
		if (ev->type == EVENT_DELIVERED || ev->type == EVENT_DEFERRED ||
		    ev->type == EVENT_BOUNCED)
			attempts++;
		if (ev->type != EVENT_ACCEPTED)
			reply = ev;
	}
	return json_pack("{s:s,s:s,s:I,s:o}", "address", addr, "state",
			 last ? state_name(last->type) : "queued", "attempts", attempts,
			 "last_reply", reply ? json_string(reply->detail) : json_null());
}

/* message_json - the summary and one entry per recipient, in the order
 * they first appear among the events. */
static json_t *message_json(const struct message_job *m)
{
	char created[EVENT_TIME_MAX];
	event_time_format(m->meta.created_ms, created);
	json_t *tags = json_loads(m->meta.tags ? m->meta.tags : "[]", 0, NULL);
	if (!json_is_array(tags)) {
		json_decref(tags);
		tags = json_array();
	}
	json_t *rcpts = json_array();
	for (size_t i = 0; rcpts && i < m->n; i++) {
		const char *addr = m->evs[i].recipient;
		size_t k = 0;
		while (k < i && strcmp(m->evs[k].recipient, addr) != 0)
			k++;
		if (!*addr || k < i)
			continue; /* about no one recipient, or seen already */
		if (json_array_append_new(rcpts, recipient_json(m, addr)) < 0) {
			json_decref(rcpts);
			rcpts = NULL;
		}
	}
	if (!tags || !rcpts) {
		json_decref(tags);
		json_decref(rcpts);
		return NULL;
	}
	return json_pack("{s:s,s:s,s:s,s:s,s:o,s:o}", "id", m->meta.id, "from",
			 m->meta.sender ? m->meta.sender : "", "subject",
			 m->meta.subject ? m->meta.subject : "", "created", created, "tags", tags,
			 "recipients", rcpts);
}

static void message_answer(struct api_read *j)
{
	struct message_job *m = (struct message_job *)j;
	/* Another user's message is as unknown to this key as a missing one. */
	if (m->missing || (m->user[0] && strcasecmp(m->meta.user ? m->meta.user : "", m->user))) {
		http_reply_error(j->req, 404, "not_found", "no such message: %s", m->id);
		return;
	}
	json_t *body = message_json(m);
	if (!body)
		http_reply_error(j->req, 500, "internal", "out of memory");
	else
		http_reply_json(j->req, 200, body);
}

static void message_release(struct api_read *j)
{
	struct message_job *m = (struct message_job *)j;
	event_records_free(&m->evs, m->n);
	message_meta_clear(&m->meta);
	free(m);
}

static const struct api_read_ops message_ops = {message_work, message_answer, message_release};

void api_messages_get(struct api_request *r)
{
	const char *id = r->path + strlen("/v1/messages/");
	struct evkeyvalq q;
	char err[160];
	if (api_query_parse(r->req, NULL, 0, &q, err, sizeof err) < 0) {
		http_reply_error(r->req, 400, "invalid_request", "%s", err);
		return;
	}
	if (!api_queue_id_ok(id)) {
		http_reply_error(r->req, 404, "not_found", "no such message (not a queue id)");
		return;
	}
	struct message_job *m = calloc(1, sizeof *m);
	if (!m) {
		http_reply_error(r->req, 500, "internal", "out of memory");
		return;
	}
	snprintf(m->id, sizeof m->id, "%s", id);
	snprintf(m->user, sizeof m->user, "%s", r->who.admin ? "" : r->who.user);
	api_read_start(r->srv, r->req, &m->base, &message_ops);
}
