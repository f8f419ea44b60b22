/* api_metrics.c - GET /metrics: the daemon's counters in the Prometheus
 * text exposition format, version 0.0.4 (each family a # HELP and a
 * # TYPE line, then its samples; histogram buckets cumulative with
 * le="+Inf" equal to _count).  No key is needed, as scrapers expect; the
 * numbers say how much, never who.
 *
 * Everything here is read from memory on the loop: the event log's totals
 * since start, the queue, the SMTP server and the HTTP reply counters. */
#include <event2/buffer.h>
#include <event2/http.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include "core/log.h"
#include "http/http_private.h"
#include "queue/queue.h"
#include "smtp/server.h"
#include "store/event_log.h"

/* family - the HELP and TYPE lines of NAME. */
static void family(struct evbuffer *b, const char *name, const char *type, const char *help)
{
	evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* smtp_metrics - connections now and since start. */
static void smtp_metrics(struct evbuffer *b, const struct smtp_server *smtp)
{
	family(b, "tern_connections", "gauge", "SMTP sessions open now.");
	evbuffer_add_printf(b, "tern_connections %u\n", smtp_server_sessions(smtp));
	family(b, "tern_connections_total", "counter", "SMTP connections accepted since start.");
	evbuffer_add_printf(b, "tern_connections_total %lu\n", smtp_server_connections_total(smtp));
}

/* event_metrics - events by type, events lost, delivery latency. */
static void event_metrics(struct evbuffer *b, const struct event_totals *t)
{
	family(b, "tern_messages_total", "counter",
	       "Recipients by event since start: accepted, delivered, deferred, bounced, "
	       "rejected.");
	for (int i = 0; i < EVENT_NTYPES; i++)
		evbuffer_add_printf(b, "tern_messages_total{event=\"%s\"} %llu\n",
				    event_type_name(i), (unsigned long long)t->count[i]);
	family(b, "tern_events_dropped_total", "counter",
	       "Events not recorded because the store could not be written.");
	evbuffer_add_printf(b, "tern_events_dropped_total %llu\n", (unsigned long long)t->dropped);
	family(b, "tern_delivery_latency_seconds", "histogram",
	       "Time from acceptance to delivery, per delivered recipient.");
	unsigned long long sum = 0;
	for (int i = 0; i < EVENT_LATENCY_BUCKETS; i++) {
		sum += t->latency_count[i];
		evbuffer_add_printf(b, "tern_delivery_latency_seconds_bucket{le=\"%g\"} %llu\n",
				    event_latency_bounds[i], sum);
	}
	evbuffer_add_printf(b, "tern_delivery_latency_seconds_bucket{le=\"+Inf\"} %llu\n",
			    (unsigned long long)t->latency_n);
	evbuffer_add_printf(b, "tern_delivery_latency_seconds_sum %.6f\n", t->latency_sum);
	evbuffer_add_printf(b, "tern_delivery_latency_seconds_count %llu\n",
			    (unsigned long long)t->latency_n);
}

/* queue_metrics - what waits for delivery, and for how long. */
static void queue_metrics(struct evbuffer *b, const struct queue *q)
{
	size_t n = 0;
	time_t oldest = 0, now = time(NULL);
	queue_stats(q, &n, &oldest);
	family(b, "tern_queue_messages", "gauge", "Messages in the queue (held ones included).");
	evbuffer_add_printf(b, "tern_queue_messages %zu\n", n);
	family(b, "tern_queue_oldest_age_seconds", "gauge",
	       "Age of the oldest message in the queue; 0 when it is empty.");
	evbuffer_add_printf(b, "tern_queue_oldest_age_seconds %lld\n",
			    (long long)(oldest && now > oldest ? now - oldest : 0));
}

/* http_metrics - answers by status, counting this one's predecessors. */
static void http_metrics(struct evbuffer *b)
{
	const unsigned long *counts = http_reply_counts();
	family(b, "tern_http_requests_total", "counter", "HTTP API answers by status code.");
	for (int s = 100; s < HTTP_STATUS_MAX; s++)
		if (counts[s])
			evbuffer_add_printf(b, "tern_http_requests_total{code=\"%d\"} %lu\n", s,
					    counts[s]);
}

void api_metrics(struct api_request *r)
{
	const struct http_context *ctx = r->srv->ctx;
	struct evbuffer *b = evbuffer_new();
	if (!b) {
		http_reply_error(r->req, 500, "internal", "out of memory");
		return;
	}
	/* A part whose source is not there (a daemon still starting) is
	 * left out rather than shown as zeros. */
	if (ctx->smtp)
		smtp_metrics(b, ctx->smtp);
	if (ctx->events)
		event_metrics(b, event_log_totals(ctx->events));
	if (ctx->queue)
		queue_metrics(b, ctx->queue);
	http_metrics(b);
	struct evkeyvalq *h = evhttp_request_get_output_headers(r->req);
	evhttp_add_header(h, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
	evhttp_add_header(h, "Cache-Control", "no-store");
	http_count_reply(200);
	evhttp_send_reply(r->req, 200, "OK", b);
	evbuffer_free(b);
}
