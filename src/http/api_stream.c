/* api_stream.c - GET /v1/events/stream: events as they happen, as
 * Server-Sent Events (HTML Living Standard, "Server-sent events" 9.2):
 *
 *   id: 42
 *   data: {"id":42,"time":"...","type":"delivered",...}
 *   (blank line)
 *
 * one block per event as event_log_emit hands it over, filtered by the
 * key (a user key sees its user's events, an admin key everyone's or
 * user=U's) and by type=T[,T...]; a ": keepalive" comment every
 * SSE_KEEPALIVE_S keeps proxies and clients from timing out.
 *
 * Resuming: with Last-Event-ID (what EventSource sends when it
 * reconnects) or since=ID, the events after that id are first read from
 * the store, a page at a time, each page written once the one before has
 * left; events emitted meanwhile are held (at most SSE_HELD_MAX) and sent
 * after, each id once, in order.
 *
 * Bounds: a listener whose unsent output passes SSE_BACKLOG_MAX is
 * dropped (its connection closed) rather than buffered without limit; at
 * most SSE_STREAMS_MAX streams are open at once; a client that reads
 * nothing while output waits is closed after timeout_command. */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/config.h"
#include "core/log.h"
#include "http/http_private.h"
#include "smtp/server.h"
#include "store/event_log.h"
#include "store/records.h"

#define SSE_KEEPALIVE_S 15
#define SSE_BACKLOG_MAX (1024 * 1024) /* unsent bytes before a listener is dropped */
#define SSE_STREAMS_MAX 256
#define SSE_HELD_MAX	10000 /* live events held while replaying */
#define SSE_PAGE	1000  /* events per replay read */
#define SSE_INPUT_MAX	4096  /* bytes a client may send on a stream unread */

struct sse_stream {
	struct http_pending pending; /* first: detach gets this pointer */
	struct http_server *srv;
	struct evhttp_request *req;
	struct evhttp_connection *conn;
	struct event_listener *listener;
	struct event *tick;	 /* keepalives; also runs a drop from a clean stack */
	unsigned types;		 /* EVENT_MASK set; 0: all */
	char user[API_USER_MAX]; /* "": every user's (admin) */
	int64_t last_id;	 /* the last event id written */
	int dropping;
	/* Replay: the read running, the events emitted meanwhile. */
	int replaying;
	struct api_read *reading;
	struct event_record *held;
	size_t nheld, held_cap;
};

static void stream_end(struct sse_stream *s);

/* stream_free - undo everything but the connection (whose owner decides). */
static void stream_free(struct sse_stream *s)
{
	struct event_log *log = s->srv->ctx->events;
	if (s->listener)
		event_log_unlisten(log, &s->listener);
	if (s->reading)
		api_read_cancel(s->reading);
	if (s->tick)
		event_free(s->tick);
	event_records_free(&s->held, s->nheld);
	http_pending_remove(s->srv, &s->pending);
	s->srv->streams--;
	free(s);
}

/* drop - close S soon: from the timer, not from inside whoever emitted. */
static void drop(struct sse_stream *s, const char *why)
{
	if (s->dropping)
		return;
	s->dropping = 1;
	log_info("http: event stream of %s dropped: %s", s->user[0] ? s->user : "an admin key",
		 why);
	if (s->listener)
		event_log_unlisten(s->srv->ctx->events, &s->listener);
	event_active(s->tick, EV_TIMEOUT, 1);
}

/* backlog - the bytes written to S's connection and not yet sent. */
static size_t backlog(struct sse_stream *s)
{
	struct bufferevent *bev = evhttp_connection_get_bufferevent(s->conn);
	return bev ? evbuffer_get_length(bufferevent_get_output(bev)) : 0;
}

/* add_event - EV as one SSE block to BUF; -1 when out of memory. */
static int add_event(struct evbuffer *buf, const struct event_record *ev)
{
	json_t *j = event_json(ev);
	char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	int rc = text ? evbuffer_add_printf(buf, "id: %lld\ndata: %s\n\n", (long long)ev->id, text)
		      : -1;
	free(text);
	return rc < 0 ? -1 : 0;
}

/* stream_send - BUF to the client, and drop S when the client is too far behind. */
static void stream_send(struct sse_stream *s, struct evbuffer *buf)
{
	evhttp_send_reply_chunk(s->req, buf);
	if (backlog(s) > SSE_BACKLOG_MAX)
		drop(s, "the client does not read fast enough");
}

/* wanted - does EV pass S's filters? */
static int wanted(const struct sse_stream *s, const struct event_record *ev)
{
	if (s->types && !(s->types & EVENT_MASK(ev->type)))
		return 0;
	return !s->user[0] || strcasecmp(ev->user, s->user) == 0;
}

/* hold - keep EV until the replay has caught up. */
static void hold(struct sse_stream *s, const struct event_record *ev)
{
	if (s->nheld >= SSE_HELD_MAX) {
		drop(s, "too far behind");
		return;
	}
	if (s->nheld == s->held_cap) {
		size_t cap = s->held_cap ? s->held_cap * 2 : 64;
		struct event_record *more = realloc(s->held, cap * sizeof *s->held);
		if (!more) {
			drop(s, "out of memory");
			return;
		}
		s->held = more;
		s->held_cap = cap;
	}
	memset(&s->held[s->nheld], 0, sizeof *s->held);
	if (event_record_set(&s->held[s->nheld], ev->id, ev->time_ms, ev->type, ev->message_id,
			     ev->user, ev->recipient, ev->detail) < 0) {
		drop(s, "out of memory");
		return;
	}
	s->nheld++;
}

/* on_event - the event log's listener. */
static void on_event(void *arg, const struct event_record *ev)
{
	struct sse_stream *s = arg;
	if (s->dropping || !wanted(s, ev))
		return;
	if (s->replaying) {
		hold(s, ev);
		return;
	}
	struct evbuffer *buf = evbuffer_new();
	if (!buf || add_event(buf, ev) < 0) {
		drop(s, "out of memory");
	} else {
		s->last_id = ev->id;
		stream_send(s, buf);
	}
	if (buf)
		evbuffer_free(buf);
}

/* on_tick - a keepalive, or the end of a dropped stream. */
static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct sse_stream *s = arg;
	if (s->dropping) {
		stream_end(s);
		return;
	}
	if (s->replaying)
		return; /* replay pages are on their way; a write would steal their callback */
	struct evbuffer *buf = evbuffer_new();
	if (buf && evbuffer_add(buf, ": keepalive\n\n", 13) == 0)
		stream_send(s, buf);
	if (buf)
		evbuffer_free(buf);
}

/* stream_end - we close the connection (a dropped listener). */
static void stream_end(struct sse_stream *s)
{
	struct evhttp_connection *c = s->conn;
	evhttp_connection_set_closecb(c, NULL, NULL);
	stream_free(s);
	evhttp_connection_free(c); /* and the request with it */
}

/* on_close - the client went away.  evhttp has let go of the request
 * (it has no connection): it is ours to free. */
static void on_close(struct evhttp_connection *c, void *arg)
{
	struct sse_stream *s = arg;
	struct evhttp_request *req = s->req;
	evhttp_connection_set_closecb(c, NULL, NULL);
	stream_free(s);
	if (!evhttp_request_get_connection(req))
		evhttp_request_free(req);
}

/* on_shutdown - http_pending's detach: evhttp_free closes the connection
 * and frees the request next. */
static void on_shutdown(struct http_pending *p)
{
	struct sse_stream *s = (struct sse_stream *)p;
	evhttp_connection_set_closecb(s->conn, NULL, NULL);
	stream_free(s);
}

/* ---- replay ---- */

struct replay_job {
	struct api_read base; /* first */
	struct sse_stream *s;
	struct event_filter f;
	char user[API_USER_MAX];
	struct event_record *evs;
	size_t n;
};

static int replay_work(struct api_read *j, struct records *r, char *err, size_t errlen)
{
	struct replay_job *rj = (struct replay_job *)j;
	return records_events(r, &rj->f, &rj->evs, &rj->n, err, errlen);
}

static void replay_release(struct api_read *j)
{
	struct replay_job *rj = (struct replay_job *)j;
	event_records_free(&rj->evs, rj->n);
	free(rj);
}

static void replay_answer(struct api_read *j);
static const struct api_read_ops replay_ops = {replay_work, replay_answer, replay_release};

/* replay_next - read the next page after S->last_id. */
static void replay_next(struct sse_stream *s)
{
	struct replay_job *rj = calloc(1, sizeof *rj);
	if (!rj) {
		drop(s, "out of memory");
		return;
	}
	rj->base.owned = 1;
	rj->s = s;
	snprintf(rj->user, sizeof rj->user, "%s", s->user);
	rj->f = (struct event_filter){.since = s->last_id,
				      .limit = SSE_PAGE,
				      .types = s->types,
				      .user = s->user[0] ? rj->user : NULL};
	s->reading = &rj->base;
	if (api_read_start(s->srv, s->req, &rj->base, &replay_ops) < 0) {
		s->reading = NULL;
		drop(s, "the event store cannot be read");
	}
}

/* caught_up - the store has nothing more: send what was held, go live. */
static void caught_up(struct sse_stream *s)
{
	struct evbuffer *buf = evbuffer_new();
	for (size_t i = 0; buf && i < s->nheld; i++) {
		if (s->held[i].id <= s->last_id)
			continue; /* read from the store already */
		if (add_event(buf, &s->held[i]) < 0)
			break;
		s->last_id = s->held[i].id;
	}
	event_records_free(&s->held, s->nheld);
	s->nheld = s->held_cap = 0;
	s->replaying = 0;
	if (!buf)
		drop(s, "out of memory");
	else
		stream_send(s, buf);
	if (buf)
		evbuffer_free(buf);
}

/* page_sent - a replayed page has left: the next one, or go live. */
static void page_sent(struct evhttp_connection *c, void *arg)
{
	struct sse_stream *s = arg;
	if (s->dropping || s->reading || !s->replaying)
		return;
	replay_next(s);
}

static void replay_answer(struct api_read *j)
{
	struct replay_job *rj = (struct replay_job *)j;
	struct sse_stream *s = rj->s;
	s->reading = NULL;
	if (j->failed) {
		drop(s, "the event store cannot be read");
		return;
	}
	if (rj->n < SSE_PAGE) {
		/* The last page: it and the held events go out together. */
		struct evbuffer *buf = evbuffer_new();
		for (size_t i = 0; buf && i < rj->n; i++)
			if (add_event(buf, &rj->evs[i]) == 0)
				s->last_id = rj->evs[i].id;
		if (buf)
			evhttp_send_reply_chunk(s->req, buf);
		if (buf)
			evbuffer_free(buf);
		caught_up(s);
		return;
	}
	struct evbuffer *buf = evbuffer_new();
	for (size_t i = 0; buf && i < rj->n; i++)
		if (add_event(buf, &rj->evs[i]) == 0)
			s->last_id = rj->evs[i].id;
	if (!buf) {
		drop(s, "out of memory");
		return;
	}
	/* The next page is read once this one has been sent: the client's
	 * pace, not the store's, sets the speed. */
	evhttp_send_reply_chunk_with_cb(s->req, buf, page_sent, s);
	evbuffer_free(buf);
}

/* ---- the request ---- */

/* stream_params - filters and the resume point from R into S; -1 after
 * answering 400 or 403. */
static int stream_params(struct api_request *r, struct sse_stream *s)
{
	static const char *const names[] = {"type", "user", "since"};
	struct evkeyvalq q;
	char err[160];
	if (api_query_parse(r->req, names, 3, &q, err, sizeof err) < 0) {
		http_reply_error(r->req, 400, "invalid_request", "%s", err);
		return -1;
	}
	const char *type = evhttp_find_header(&q, "type"), *since = evhttp_find_header(&q, "since");
	const char *last =
		evhttp_find_header(evhttp_request_get_input_headers(r->req), "Last-Event-ID");
	const char *user = NULL;
	int rc = -1;
	s->last_id = -1;
	if (last && *last)
		since = last; /* a reconnecting EventSource: it knows best */
	if (type && api_parse_types(type, &s->types) < 0)
		http_reply_error(r->req, 400, "invalid_request",
				 "type must be accepted, delivered, deferred, bounced or rejected "
				 "(several joined by commas)");
	else if (since && api_parse_int(since, 0, INT64_MAX / 2, &s->last_id) < 0)
		http_reply_error(r->req, 400, "invalid_request",
				 "since (or Last-Event-ID) must be an event id (0 or more)");
	else if (api_scope(r, evhttp_find_header(&q, "user"), &user) == 0)
		rc = 0;
	if (user)
		snprintf(s->user, sizeof s->user, "%s", user);
	evhttp_clear_headers(&q);
	return rc;
}

/* stream_begin - the 200 and the first comment; the connection tuned for
 * a long answer: no read timeout (the client has nothing more to say),
 * the write timeout kept, little room for input nobody reads. */
static void stream_begin(struct api_request *r, struct sse_stream *s)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(r->req);
	evhttp_add_header(h, "Content-Type", "text/event-stream; charset=utf-8");
	evhttp_add_header(h, "Cache-Control", "no-store");
	evhttp_add_header(h, "X-Accel-Buffering", "no");
	http_count_reply(200);
	evhttp_send_reply_start(r->req, 200, "OK");
	struct bufferevent *bev = evhttp_connection_get_bufferevent(s->conn);
	if (bev) {
		const struct config *cfg = &r->srv->settings->cfg;
		struct timeval tv = {(long)(cfg->timeout_command ? cfg->timeout_command : 60), 0};
		bufferevent_set_timeouts(bev, NULL, &tv);
		bufferevent_setwatermark(bev, EV_READ, 0, SSE_INPUT_MAX);
	}
	struct evbuffer *buf = evbuffer_new();
	if (buf && evbuffer_add(buf, ": tern event stream\n\n", 21) == 0)
		evhttp_send_reply_chunk(r->req, buf);
	if (buf)
		evbuffer_free(buf);
}

void api_events_stream(struct api_request *r)
{
	struct http_server *srv = r->srv;
	struct event_log *log = srv->ctx->events;
	if (!log) {
		http_reply_error(r->req, 503, "unavailable", "the event log is not open");
		return;
	}
	if (srv->streams >= SSE_STREAMS_MAX) {
		http_reply_error(r->req, 503, "unavailable", "too many event streams are open (%d)",
				 SSE_STREAMS_MAX);
		return;
	}
	struct sse_stream *s = calloc(1, sizeof *s);
	if (!s || stream_params(r, s) < 0) {
		if (!s)
			http_reply_error(r->req, 500, "internal", "out of memory");
		free(s);
		return;
	}
	s->srv = srv;
	s->req = r->req;
	s->conn = evhttp_request_get_connection(r->req);
	struct timeval every = {SSE_KEEPALIVE_S, 0};
	if (!s->conn || !(s->tick = event_new(srv->ctx->base, -1, EV_PERSIST, on_tick, s)) ||
	    event_add(s->tick, &every) < 0 || !(s->listener = event_log_listen(log, on_event, s))) {
		if (s->tick)
			event_free(s->tick);
		free(s);
		http_reply_error(r->req, 500, "internal", "out of memory");
		return;
	}
	srv->streams++;
	s->pending.detach = on_shutdown;
	http_pending_add(srv, &s->pending);
	evhttp_connection_set_closecb(s->conn, on_close, s);
	stream_begin(r, s);
	if (s->last_id >= 0) {
		s->replaying = 1;
		replay_next(s);
	} else {
		s->last_id = 0;
	}
}
