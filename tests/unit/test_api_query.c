/* test_api_query.c - the parameters of the API's read endpoints: numbers,
 * times (unix seconds and ISO 8601 UTC), event type lists, queue ids,
 * whose data a key may read, and query strings with unknown or repeated
 * names. */
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "http/http_private.h"
#include "store/event.h"

static void test_int_accepts_digits_in_range_only(void)
{
	int64_t v = -1;
	CHECK(api_parse_int("0", 0, 10, &v) == 0 && v == 0);
	CHECK(api_parse_int("1000", 1, 1000, &v) == 0 && v == 1000);
	CHECK(api_parse_int("1001", 1, 1000, &v) < 0);
	CHECK(api_parse_int("0", 1, 1000, &v) < 0);
	const char *bad[] = {
		"", "-1", "+1", " 1", "1 ", "1e3", "0x10", "12a", "9999999999999999999"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		CHECK(api_parse_int(bad[i], 0, INT64_MAX, &v) < 0);
}

static void test_time_reads_unix_seconds_and_iso_dates(void)
{
	int64_t t = -1;
	CHECK(api_parse_time("0", &t) == 0 && t == 0);
	CHECK(api_parse_time("1795939200", &t) == 0 && t == 1795939200);
	CHECK(api_parse_time("2026-11-29", &t) == 0 && t == 1795910400);
	CHECK(api_parse_time("2026-11-29T08:00:00Z", &t) == 0 && t == 1795910400 + 8 * 3600);
	CHECK(api_parse_time("2026-11-29T08:30:00.123Z", &t) == 0 &&
	      t == 1795910400 + 8 * 3600 + 1800);
	CHECK(api_parse_time("2024-02-29", &t) == 0 && t == 1709164800);
	CHECK(api_parse_time("1970-01-01T00:00:00Z", &t) == 0 && t == 0);
	const char *bad[] = {
		"",
		"yesterday",
		"2026-02-30",
		"2025-02-29",
		"2026-13-01",
		"2026-00-10",
		"2026-11-29T24:00:00Z",
		"2026-11-29T08:60:00Z",
		"2026-11-29T08:00:00",
		"2026-11-29T08:00Z",
		"2026-11-29 08:00:00Z",
		"2026-11-29T08:00:00+01:00",
		"2026-11-29T08:00:00.Z",
		"1969-12-31",
		"26-11-29",
		"2026-1-29",
		"-5",
		"2026-11-29T08:00:00Zx",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		if (api_parse_time(bad[i], &t) == 0)
			fprintf(stderr, "accepted: %s\n", bad[i]);
		CHECK(api_parse_time(bad[i], &t) < 0);
	}
}

static void test_time_formats_as_event_times(void)
{
	char out[EVENT_TIME_MAX];
	api_format_time(1795910400 + 8 * 3600, out);
	CHECK_STR(out, "2026-11-29T08:00:00.000Z");
}

static void test_types_are_a_comma_list_of_known_names(void)
{
	unsigned m = 0;
	CHECK(api_parse_types("delivered", &m) == 0 && m == EVENT_MASK(EVENT_DELIVERED));
	CHECK(api_parse_types("accepted,bounced", &m) == 0 &&
	      m == (EVENT_MASK(EVENT_ACCEPTED) | EVENT_MASK(EVENT_BOUNCED)));
	CHECK(api_parse_types("accepted,delivered,deferred,bounced,rejected", &m) == 0 &&
	      m == EVENT_MASK_ALL);
	const char *bad[] = {"",
			     ",",
			     "opened",
			     "delivered,",
			     ",delivered",
			     "delivered,,bounced",
			     "Delivered",
			     "delivered bounced",
			     "averyveryverylongtypename"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		CHECK(api_parse_types(bad[i], &m) < 0);
}

static void test_queue_ids_are_letters_and_digits(void)
{
	CHECK(api_queue_id_ok("08DyPnccITSjKoSB"));
	CHECK(!api_queue_id_ok(""));
	CHECK(!api_queue_id_ok("a/b"));
	CHECK(!api_queue_id_ok("../x"));
	CHECK(!api_queue_id_ok("a b"));
	CHECK(!api_queue_id_ok("0123456789012345678901234567890123"));
}

static void test_scope_keeps_user_keys_to_their_user(void)
{
	struct api_principal admin = {.key_id = 1, .admin = 1};
	struct api_principal bob = {.key_id = 2, .user = "bob@example.org"};
	const char *user = "unset";
	CHECK(api_scope_of(&admin, NULL, &user) == 0 && user == NULL);
	CHECK(api_scope_of(&admin, "carol@example.org", &user) == 0);
	CHECK_STR(user, "carol@example.org");
	CHECK(api_scope_of(&bob, NULL, &user) == 0);
	CHECK_STR(user, "bob@example.org");
	CHECK(api_scope_of(&bob, "Bob@Example.org", &user) == 0);
	CHECK_STR(user, "bob@example.org");
	CHECK(api_scope_of(&bob, "carol@example.org", &user) == 403);
	CHECK(api_scope_of(&admin, "", &user) == 400);
	char longer[API_USER_MAX + 8];
	memset(longer, 'a', sizeof longer - 1);
	longer[sizeof longer - 1] = '\0';
	CHECK(api_scope_of(&bob, longer, &user) == 400);
}

/* query - api_query_parse_string of URI's query (with NAMES). */
static int query(const char *uri, const char *const *names, size_t n, struct evkeyvalq *out)
{
	char err[160] = "";
	struct evhttp_uri *u = evhttp_uri_parse(uri);
	int rc = u ? api_query_parse_string(evhttp_uri_get_query(u), names, n, out, err, sizeof err)
		   : -2;
	if (rc == -1)
		CHECK(err[0] != '\0');
	if (u)
		evhttp_uri_free(u);
	return rc;
}

static void test_query_refuses_unknown_and_repeated_names(void)
{
	static const char *const names[] = {"since", "limit"};
	struct evkeyvalq q;
	CHECK(query("/v1/events", names, 2, &q) == 0);
	CHECK(query("/v1/events?since=5&limit=10", names, 2, &q) == 0);
	CHECK_STR(evhttp_find_header(&q, "since"), "5");
	CHECK_STR(evhttp_find_header(&q, "limit"), "10");
	evhttp_clear_headers(&q);
	CHECK(query("/v1/events?user%3D=1", names, 2, &q) == -1);
	CHECK(query("/v1/events?sinse=5", names, 2, &q) == -1);
	CHECK(query("/v1/events?since=5&since=6", names, 2, &q) == -1);
	CHECK(query("/v1/events?since=5", NULL, 0, &q) == -1);
	CHECK(query("/v1/events?since=a%20b", names, 2, &q) == 0);
	CHECK_STR(evhttp_find_header(&q, "since"), "a b");
	evhttp_clear_headers(&q);
}

int main(void)
{
	RUN(test_int_accepts_digits_in_range_only);
	RUN(test_time_reads_unix_seconds_and_iso_dates);
	RUN(test_time_formats_as_event_times);
	RUN(test_types_are_a_comma_list_of_known_names);
	RUN(test_queue_ids_are_letters_and_digits);
	RUN(test_scope_keeps_user_keys_to_their_user);
	RUN(test_query_refuses_unknown_and_repeated_names);
	return check_summary();
}
