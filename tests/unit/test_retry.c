/* test_retry.c - the retry policy: intervals (the last repeating), expiry
 * with a last attempt at the deadline, the one delay warning, and the
 * per-domain backoff. */
#include <limits.h>
#include <stdint.h>

#include "check.h"
#include "queue/retry.h"

#define M 60
#define H 3600
#define D 86400

/* The configuration's defaults: 1m,5m,15m,30m,1h,2h,4h; 5d; 4h. */
static const unsigned defaults[] = {1 * M, 5 * M, 15 * M, 30 * M, 1 * H, 2 * H, 4 * H};
static const struct retry_policy policy = {
	.intervals = defaults,
	.nintervals = sizeof defaults / sizeof defaults[0],
	.queue_lifetime = 5 * D,
	.delay_warning = 4 * H,
};

static const time_t T0 = 1700000000; /* arrival */

static void test_intervals_follow_the_list(void)
{
	CHECK(retry_interval(&policy, 0) == 0);
	CHECK(retry_interval(&policy, 1) == 1 * M);
	CHECK(retry_interval(&policy, 2) == 5 * M);
	CHECK(retry_interval(&policy, 3) == 15 * M);
	CHECK(retry_interval(&policy, 7) == 4 * H);
}

static void test_last_interval_repeats(void)
{
	CHECK(retry_interval(&policy, 8) == 4 * H);
	CHECK(retry_interval(&policy, 100) == 4 * H);
	CHECK(retry_interval(&policy, UINT_MAX) == 4 * H);
	static const unsigned one[] = {10 * M};
	struct retry_policy p = {.intervals = one, .nintervals = 1, .queue_lifetime = D};
	CHECK(retry_interval(&p, 1) == 10 * M);
	CHECK(retry_interval(&p, 50) == 10 * M);
}

static void test_degenerate_lists(void)
{
	struct retry_policy none = {.queue_lifetime = D};
	CHECK(retry_interval(&none, 1) == RETRY_DEFAULT_INTERVAL);
	CHECK(retry_interval(&none, 9) == RETRY_DEFAULT_INTERVAL);
	static const unsigned zero[] = {0};
	struct retry_policy z = {.intervals = zero, .nintervals = 1, .queue_lifetime = D};
	CHECK(retry_interval(&z, 1) == 1); /* never a busy loop */
	time_t next = 0;
	CHECK(retry_after_failure(&z, T0, 1, T0, &next) == RETRY_LATER);
	CHECK(next == T0 + 1);
}

static void test_next_attempt_after_failures(void)
{
	time_t next = 0, now = T0 + 10;
	CHECK(retry_after_failure(&policy, T0, 1, now, &next) == RETRY_LATER);
	CHECK(next == now + 1 * M);
	CHECK(retry_after_failure(&policy, T0, 4, now, &next) == RETRY_LATER);
	CHECK(next == now + 30 * M);
	CHECK(retry_after_failure(&policy, T0, 30, T0 + 2 * D, &next) == RETRY_LATER);
	CHECK(next == T0 + 2 * D + 4 * H);
	/* attempts 0 (not counted yet) still waits the first interval */
	CHECK(retry_after_failure(&policy, T0, 0, now, &next) == RETRY_LATER);
	CHECK(next == now + 1 * M);
}

static void test_last_attempt_lands_on_the_deadline(void)
{
	time_t deadline = T0 + 5 * D, next = 0;
	CHECK(retry_expires_at(&policy, T0) == deadline);
	/* 1 h before the deadline, a 4 h wait is cut to the deadline */
	CHECK(retry_after_failure(&policy, T0, 20, deadline - H, &next) == RETRY_LATER);
	CHECK(next == deadline);
	/* that attempt fails too: give up, next untouched */
	next = 42;
	CHECK(retry_after_failure(&policy, T0, 21, deadline, &next) == RETRY_GIVE_UP);
	CHECK(next == 42);
	CHECK(retry_after_failure(&policy, T0, 21, deadline + D, &next) == RETRY_GIVE_UP);
}

static void test_expiry(void)
{
	CHECK(!retry_expired(&policy, T0, T0));
	CHECK(!retry_expired(&policy, T0, T0 + 5 * D - 1));
	CHECK(retry_expired(&policy, T0, T0 + 5 * D));
	CHECK(retry_expired(&policy, T0, T0 + 6 * D));
	/* lifetime 0: the first temporary failure bounces */
	struct retry_policy now_or_never = policy;
	now_or_never.queue_lifetime = 0;
	time_t next = 0;
	CHECK(retry_after_failure(&now_or_never, T0, 1, T0, &next) == RETRY_GIVE_UP);
	CHECK_STR(RETRY_EXPIRED_STATUS, "4.4.7");
}

static void test_whole_schedule_until_expiry(void)
{
	/* Failing forever: count the attempts and check the bounce comes at
	 * the deadline, with the 4 h interval repeating in between. */
	time_t now = T0, next = 0, deadline = T0 + 5 * D;
	unsigned attempts = 0;
	for (;;) {
		attempts++;
		if (retry_after_failure(&policy, T0, attempts, now, &next) == RETRY_GIVE_UP)
			break;
		CHECK(next > now);
		CHECK(next <= deadline);
		now = next;
		if (attempts > 1000)
			break;
	}
	CHECK(now == deadline);
	/* attempts at 0, 1m, 6m, 21m, 51m, 1h51m, then every 4 h from 3h51m
	 * to 119h51m (30 of them), and the last one at the 120 h deadline */
	CHECK(attempts == 6 + 30 + 1);
}

static void test_saturating_times(void)
{
	struct retry_policy p = policy;
	p.queue_lifetime = UINT_MAX;
	time_t big = (time_t)INT64_MAX - 10;
	CHECK(retry_expires_at(&p, big) == (time_t)INT64_MAX);
	time_t next = 0;
	CHECK(retry_after_failure(&p, big, 7, big, &next) == RETRY_LATER);
	CHECK(next == (time_t)INT64_MAX);
}

static void test_delay_warning_once(void)
{
	CHECK(retry_delay_warning_at(&policy, T0) == T0 + 4 * H);
	CHECK(!retry_delay_warning_due(&policy, T0, T0 + 4 * H - 1, 0));
	CHECK(retry_delay_warning_due(&policy, T0, T0 + 4 * H, 0));
	CHECK(retry_delay_warning_due(&policy, T0, T0 + 2 * D, 0));
	CHECK(!retry_delay_warning_due(&policy, T0, T0 + 2 * D, 1)); /* already sent */
	CHECK(!retry_delay_warning_due(&policy, T0, T0 + 5 * D, 0)); /* expired: bounce */
}

static void test_delay_warning_disabled(void)
{
	struct retry_policy p = policy;
	p.delay_warning = 0;
	CHECK(retry_delay_warning_at(&p, T0) == 0);
	CHECK(!retry_delay_warning_due(&p, T0, T0 + D, 0));
	p.delay_warning = 6 * D; /* after the lifetime: the bounce comes first */
	CHECK(retry_delay_warning_at(&p, T0) == 0);
	CHECK(!retry_delay_warning_due(&p, T0, T0 + 5 * D - 1, 0));
}

static void test_domain_hold_doubles_to_the_cap(void)
{
	CHECK(retry_domain_hold(&policy, 0) == 0);
	CHECK(retry_domain_hold(&policy, 1) == 1 * M);
	CHECK(retry_domain_hold(&policy, 2) == 2 * M);
	CHECK(retry_domain_hold(&policy, 3) == 4 * M);
	CHECK(retry_domain_hold(&policy, 8) == 128 * M);
	CHECK(retry_domain_hold(&policy, 9) == 4 * H); /* 256 m capped */
	CHECK(retry_domain_hold(&policy, 64) == 4 * H);
	CHECK(retry_domain_hold(&policy, UINT_MAX) == 4 * H);
	/* the cap is the longest interval even when the list is not sorted */
	static const unsigned odd[] = {10 * M, 2 * H, 30 * M};
	struct retry_policy p = {.intervals = odd, .nintervals = 3, .queue_lifetime = D};
	CHECK(retry_domain_hold(&p, 4) == 80 * M);
	CHECK(retry_domain_hold(&p, 5) == 2 * H);
}

static void test_domain_backoff_and_reset(void)
{
	struct retry_domain d = {0};
	time_t now = T0;
	CHECK(!retry_domain_held(&d, now));
	CHECK(retry_domain_next(&d, now + 5) == now + 5);

	retry_domain_failed(&d, &policy, now);
	CHECK(d.failures == 1);
	CHECK(retry_domain_held(&d, now));
	CHECK(retry_domain_held(&d, now + M - 1));
	CHECK(!retry_domain_held(&d, now + M));
	CHECK(retry_domain_next(&d, now + 5) == now + M);
	CHECK(retry_domain_next(&d, now + 2 * M) == now + 2 * M);

	/* a connection begun before the hold fails during it: counts once */
	retry_domain_failed(&d, &policy, now + 10);
	CHECK(d.failures == 1);
	CHECK(d.hold_until == now + M);

	now += M;
	retry_domain_failed(&d, &policy, now);
	CHECK(d.failures == 2);
	CHECK(d.hold_until == now + 2 * M);
	now += 2 * M;
	retry_domain_failed(&d, &policy, now);
	CHECK(d.hold_until == now + 4 * M);

	retry_domain_succeeded(&d);
	CHECK(d.failures == 0);
	CHECK(!retry_domain_held(&d, now));
	retry_domain_failed(&d, &policy, now);
	CHECK(d.hold_until == now + M); /* starts over */
}

int main(void)
{
	RUN(test_intervals_follow_the_list);
	RUN(test_last_interval_repeats);
	RUN(test_degenerate_lists);
	RUN(test_next_attempt_after_failures);
	RUN(test_last_attempt_lands_on_the_deadline);
	RUN(test_expiry);
	RUN(test_whole_schedule_until_expiry);
	RUN(test_saturating_times);
	RUN(test_delay_warning_once);
	RUN(test_delay_warning_disabled);
	RUN(test_domain_hold_doubles_to_the_cap);
	RUN(test_domain_backoff_and_reset);
	return check_summary();
}
