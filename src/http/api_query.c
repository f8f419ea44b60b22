/* api_query.c - the query strings and path parameters of the read side of
 * the API: numbers, times, event types, queue ids, whose data a key may
 * read.
 *
 * Query strings are RFC 3986 3.4 `name=value` pairs joined by '&',
 * percent-decoded by evhttp.  A name the endpoint does not know, or one
 * given twice, is refused rather than ignored, so a misspelt filter is
 * noticed instead of silently widening the answer.
 *
 * Times are unix seconds or ISO 8601 in UTC (RFC 3339 5.6 profile):
 * "2026-11-29", "2026-11-29T08:00:00Z", with optional fractional seconds
 * as event times carry them ("2026-11-29T08:00:00.123Z"). */
#include <ctype.h>
#include <sys/queue.h> /* TAILQ_*, before evhttp's own definitions */
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/log.h"
#include "http/http_private.h"
#include "store/event.h"

#define QUERY_MAX	 4096		/* far more than any filter needs */
#define TIME_MAX_SECONDS 253402300799LL /* 9999-12-31T23:59:59Z */

int api_query_parse(struct evhttp_request *req, const char *const *names, size_t n,
		    struct evkeyvalq *out, char *err, size_t errlen)
{
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	return api_query_parse_string(uri ? evhttp_uri_get_query(uri) : NULL, names, n, out, err,
				      errlen);
}

int api_query_parse_string(const char *q, const char *const *names, size_t n, struct evkeyvalq *out,
			   char *err, size_t errlen)
{
	TAILQ_INIT(out);
	if (!q || !*q)
		return 0;
	if (strlen(q) > QUERY_MAX) {
		snprintf(err, errlen, "the query string is longer than %d bytes", QUERY_MAX);
		return -1;
	}
	if (evhttp_parse_query_str(q, out) < 0) {
		evhttp_clear_headers(out);
		snprintf(err, errlen, "the query string is not name=value pairs joined by &");
		return -1;
	}
	struct evkeyval *kv;
	TAILQ_FOREACH(kv, out, next)
	{
		char safe[64];
		size_t i = 0;
		while (i < n && strcmp(kv->key, names[i]) != 0)
			i++;
		log_sanitize(safe, sizeof safe, kv->key, strlen(kv->key));
		if (i == n) {
			snprintf(err, errlen, "unknown query parameter \"%s\"", safe);
			goto fail;
		}
		for (struct evkeyval *o = TAILQ_FIRST(out); o != kv; o = TAILQ_NEXT(o, next))
			if (strcmp(o->key, kv->key) == 0) {
				snprintf(err, errlen, "query parameter %s is given twice", safe);
				goto fail;
			}
	}
	return 0;
fail:
	evhttp_clear_headers(out);
	return -1;
}

int api_parse_int(const char *s, int64_t min, int64_t max, int64_t *out)
{
	size_t n = strlen(s);
	if (n == 0 || n > 18 || strspn(s, "0123456789") != n)
		return -1;
	int64_t v = 0;
	for (size_t i = 0; i < n; i++)
		v = v * 10 + (s[i] - '0');
	if (v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

/* digits - the N-digit decimal number at S, or -1. */
static int digits(const char *s, size_t n)
{
	int v = 0;
	for (size_t i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

/* parse_iso - "YYYY-MM-DD" or "YYYY-MM-DDTHH:MM:SS[.fff]Z" into *OUT;
 * a date that does not exist (February 30th) is refused. */
static int parse_iso(const char *s, int64_t *out)
{
	size_t n = strlen(s);
	if (n < 10 || s[4] != '-' || s[7] != '-')
		return -1;
	struct tm tm = {0};
	tm.tm_year = digits(s, 4) - 1900;
	tm.tm_mon = digits(s + 5, 2) - 1;
	tm.tm_mday = digits(s + 8, 2);
	if (n > 10) {
		if (n < 20 || (s[10] != 'T' && s[10] != 't') || s[13] != ':' || s[16] != ':')
			return -1;
		tm.tm_hour = digits(s + 11, 2);
		tm.tm_min = digits(s + 14, 2);
		tm.tm_sec = digits(s + 17, 2);
		const char *p = s + 19;
		if (*p == '.') {
			size_t f = strspn(p + 1, "0123456789");
			if (f == 0 || f > 9)
				return -1;
			p += 1 + f;
		}
		if ((*p != 'Z' && *p != 'z') || p[1])
			return -1;
	}
	if (tm.tm_year < 70 || tm.tm_year > 9999 - 1900 || tm.tm_mon < 0 || tm.tm_mon > 11 ||
	    tm.tm_mday < 1 || tm.tm_hour < 0 || tm.tm_hour > 23 || tm.tm_min < 0 ||
	    tm.tm_min > 59 || tm.tm_sec < 0 || tm.tm_sec > 59)
		return -1;
	struct tm want = tm;
	time_t t = timegm(&tm);
	/* timegm normalises: the 30th of February comes back as March. */
	if (t < 0 || tm.tm_mday != want.tm_mday || tm.tm_mon != want.tm_mon)
		return -1;
	*out = (int64_t)t;
	return 0;
}

int api_parse_time(const char *s, int64_t *out)
{
	if (strspn(s, "0123456789") == strlen(s))
		return api_parse_int(s, 0, TIME_MAX_SECONDS, out);
	return parse_iso(s, out);
}

void api_format_time(int64_t secs, char *out)
{
	event_time_format(secs * 1000, out);
}

int api_parse_types(const char *s, unsigned *mask)
{
	unsigned m = 0;
	char name[16];
	while (*s) {
		size_t n = strcspn(s, ",");
		if (n == 0 || n >= sizeof name)
			return -1;
		memcpy(name, s, n);
		name[n] = '\0';
		int t = event_type_parse(name);
		if (t < 0)
			return -1;
		m |= EVENT_MASK(t);
		s += n;
		if (*s == ',' && !*++s)
			return -1;
	}
	if (!m)
		return -1;
	*mask = m;
	return 0;
}

int api_queue_id_ok(const char *id)
{
	size_t n = strlen(id);
	return n > 0 && n < 32 &&
	       strspn(id, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") == n;
}

int api_scope_of(const struct api_principal *who, const char *given, const char **user)
{
	if (given && (!*given || strlen(given) >= API_USER_MAX))
		return 400;
	if (who->admin) {
		*user = given;
		return 0;
	}
	if (given && strcasecmp(given, who->user) != 0)
		return 403;
	*user = who->user;
	return 0;
}
