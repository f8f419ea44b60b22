/* api_stats.c - GET /v1/stats?from=T&to=T&interval=hour|day&user=U
 *   -> {interval, from, to, buckets[{start, accepted, delivered, deferred,
 *       bounced, rejected}]}
 *
 * Counts per event type in buckets of an hour or a day, read from the
 * store's hourly counters (records_stats), so a year of statistics costs
 * no more than a day of events.  T is unix seconds or ISO 8601 UTC
 * ("2026-11-29", "2026-11-29T08:00:00Z"); FROM is rounded down and TO up to
 * the interval, and every bucket in [FROM, TO) is listed, zeros included.
 * By default: the last 24 hours by hour, or the last 7 days by day, up to
 * and including the current bucket.  A user key counts its user's
 * events; an admin key everyone's summed, or user=U's. */
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http/http_private.h"
#include "store/records.h"

#define HOUR 3600
#define DAY  86400

struct stats_job {
	struct api_read base; /* first */
	char user[API_USER_MAX];
	int all; /* every user summed (admin without user=) */
	int64_t from, to, interval;
	struct stats_bucket *buckets;
	size_t n;
};

static int stats_work(struct api_read *j, struct records *r, char *err, size_t errlen)
{
	struct stats_job *s = (struct stats_job *)j;
	return records_stats(r, s->all ? NULL : s->user, s->from, s->to, s->interval, &s->buckets,
			     &s->n, err, errlen);
}

/* bucket_json - one bucket: its start and a count per event type. */
static json_t *bucket_json(const struct stats_bucket *b)
{
	char start[EVENT_TIME_MAX];
	api_format_time(b->start, start);
	json_t *o = json_pack("{s:s}", "start", start);
	for (int t = 0; o && t < EVENT_NTYPES; t++)
		if (json_object_set_new(o, event_type_name(t),
					json_integer((json_int_t)b->count[t])) < 0) {
			json_decref(o);
			o = NULL;
		}
	return o;
}

static void stats_answer(struct api_read *j)
{
	struct stats_job *s = (struct stats_job *)j;
	char from[EVENT_TIME_MAX], to[EVENT_TIME_MAX];
	api_format_time(s->from, from);
	api_format_time(s->to, to);
	json_t *arr = json_array();
	for (size_t i = 0; arr && i < s->n; i++)
		if (json_array_append_new(arr, bucket_json(&s->buckets[i])) < 0) {
			json_decref(arr);
			arr = NULL;
		}
	json_t *body = arr ? json_pack("{s:s,s:s,s:s,s:o}", "interval",
				       s->interval == DAY ? "day" : "hour", "from", from, "to", to,
				       "buckets", arr)
			   : NULL;
	if (!body)
		http_reply_error(j->req, 500, "internal", "out of memory");
	else
		http_reply_json(j->req, 200, body);
}

static void stats_release(struct api_read *j)
{
	struct stats_job *s = (struct stats_job *)j;
	free(s->buckets);
	free(s);
}

static const struct api_read_ops stats_ops = {stats_work, stats_answer, stats_release};

/* floor_to - T rounded down to a multiple of STEP. */
static int64_t floor_to(int64_t t, int64_t step)
{
	return t / step * step;
}

/* stats_range - interval, from and to of the query into S; -1 with ERR. */
static int stats_range(struct evkeyvalq *q, struct stats_job *s, char *err, size_t errlen)
{
	const char *iv = evhttp_find_header(q, "interval");
	const char *from = evhttp_find_header(q, "from"), *to = evhttp_find_header(q, "to");
	if (iv && strcmp(iv, "hour") != 0 && strcmp(iv, "day") != 0)
		return snprintf(err, errlen, "interval must be hour or day"), -1;
	s->interval = iv && strcmp(iv, "day") == 0 ? DAY : HOUR;
	int64_t span = s->interval == DAY ? 7 * DAY : 24 * HOUR;
	const char *bad = from && api_parse_time(from, &s->from) < 0 ? "from"
			  : to && api_parse_time(to, &s->to) < 0     ? "to"
								     : NULL;
	if (bad)
		return snprintf(err, errlen,
				"%s must be unix seconds or an ISO 8601 UTC time "
				"(2026-11-29 or 2026-11-29T08:00:00Z)",
				bad),
		       -1;
	/* The current bucket is the last by default: its start plus one. */
	if (!to)
		s->to = floor_to((int64_t)time(NULL), s->interval) + s->interval;
	else
		s->to = floor_to(s->to + s->interval - 1, s->interval);
	s->from = from ? floor_to(s->from, s->interval) : s->to - span;
	if (s->from >= s->to)
		return snprintf(err, errlen, "from must be before to"), -1;
	if ((s->to - s->from) / s->interval > RECORDS_STATS_MAX)
		return snprintf(err, errlen,
				"at most %d buckets: narrow the range or use "
				"interval=day",
				RECORDS_STATS_MAX),
		       -1;
	return 0;
}

void api_stats_get(struct api_request *r)
{
	static const char *const names[] = {"from", "to", "interval", "user"};
	struct evkeyvalq q;
	char err[200];
	if (api_query_parse(r->req, names, 4, &q, err, sizeof err) < 0) {
		http_reply_error(r->req, 400, "invalid_request", "%s", err);
		return;
	}
	struct stats_job *s = calloc(1, sizeof *s);
	const char *user = NULL;
	int rc = -1;
	if (!s)
		http_reply_error(r->req, 500, "internal", "out of memory");
	else if (stats_range(&q, s, err, sizeof err) < 0)
		http_reply_error(r->req, 400, "invalid_request", "%s", err);
	else if (api_scope(r, evhttp_find_header(&q, "user"), &user) == 0)
		rc = 0;
	if (rc == 0) {
		s->all = user == NULL;
		snprintf(s->user, sizeof s->user, "%s", user ? user : "");
	}
	evhttp_clear_headers(&q); /* USER may point into it */
	if (rc < 0) {
		free(s);
		return;
	}
	api_read_start(r->srv, r->req, &s->base, &stats_ops);
}
