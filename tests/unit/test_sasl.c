/* test_sasl.c - AUTH PLAIN/LOGIN decoding and the per-address throttle. */
#include <arpa/inet.h>
#include <netinet/in.h>

#include "auth/sasl.h"
#include "auth/throttle.h"
#include "check.h"

static void test_plain_with_and_without_authzid(void)
{
	struct sasl_credentials c;
	const char *why;
	/* "\0bob@x\0secret" */
	CHECK(sasl_plain("AGJvYkB4AHNlY3JldA==", 20, &c, &why) == 0);
	CHECK_STR(c.authcid, "bob@x");
	CHECK_STR(c.password, "secret");
	CHECK_STR(c.authzid, "");
	/* "bob@x\0bob@x\0secret": authzid equal to the user is fine */
	CHECK(sasl_plain("Ym9iQHgAYm9iQHgAc2VjcmV0", 24, &c, &why) == 0);
	/* "eve@x\0bob@x\0secret": acting for another user is refused */
	CHECK(sasl_plain("ZXZlQHgAYm9iQHgAc2VjcmV0", 24, &c, &why) == -1);
}

static void test_plain_refuses_malformed(void)
{
	struct sasl_credentials c;
	const char *why;
	CHECK(sasl_plain("not base64!", 11, &c, &why) == -1);
	CHECK(sasl_plain("Ym9i", 4, &c, &why) == -1); /* "bob": no NULs */
	CHECK(sasl_plain("AGJvYgA=", 8, &c, &why) == -1); /* empty password */
	CHECK(sasl_plain("=", 1, &c, &why) == -1);
	CHECK(sasl_plain("AGJvYkB4AHNlY3JldA", 18, &c, &why) == -1); /* no padding */
	char big[2000];
	memset(big, 'A', sizeof big);
	CHECK(sasl_plain(big, sizeof big, &c, &why) == -1);
}

static void test_login_fields(void)
{
	char out[SASL_FIELD_MAX + 1];
	const char *why;
	CHECK(sasl_login_field("Ym9iQHg=", 8, out, &why) == 0);
	CHECK_STR(out, "bob@x");
	CHECK(sasl_login_field("", 0, out, &why) == -1);
	CHECK(sasl_login_field("Ym9iDQpRVUlU", 12, out, &why) == -1); /* "bob\r\nQUIT" */
}

static void test_throttle_locks_out_and_expires(void)
{
	struct throttle *t = throttle_new(4, 3, 60, 60);
	struct sockaddr_in a = { .sin_family = AF_INET }, b = a;
	inet_pton(AF_INET, "192.0.2.1", &a.sin_addr);
	inet_pton(AF_INET, "192.0.2.2", &b.sin_addr);
	CHECK(throttle_locked(t, (struct sockaddr *)&a, 1000) == 0);
	throttle_failure(t, (struct sockaddr *)&a, 1000);
	throttle_failure(t, (struct sockaddr *)&a, 1001);
	CHECK(throttle_locked(t, (struct sockaddr *)&a, 1001) == 0);
	CHECK(throttle_failure(t, (struct sockaddr *)&a, 1002) == 3);
	CHECK(throttle_locked(t, (struct sockaddr *)&a, 1003) > 0);
	CHECK(throttle_locked(t, (struct sockaddr *)&b, 1003) == 0);
	CHECK(throttle_locked(t, (struct sockaddr *)&a, 1002 + 61) == 0);
	throttle_free(&t);
	CHECK(t == NULL);
}

static void test_throttle_table_is_bounded(void)
{
	struct throttle *t = throttle_new(8, 2, 60, 60);
	for (unsigned i = 0; i < 1000; i++) {
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(i) };
		throttle_failure(t, (struct sockaddr *)&a, 1000 + i);
	}
	/* The newest address is still counted after all the evictions. */
	struct sockaddr_in last = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(999) };
	CHECK(throttle_failure(t, (struct sockaddr *)&last, 2000) == 2);
	CHECK(throttle_locked(t, (struct sockaddr *)&last, 2000) > 0);
	throttle_free(&t);
}

int main(void)
{
	RUN(test_plain_with_and_without_authzid);
	RUN(test_plain_refuses_malformed);
	RUN(test_login_fields);
	RUN(test_throttle_locks_out_and_expires);
	RUN(test_throttle_table_is_bounded);
	return check_summary();
}
