/* retry.h - when to try a deferred delivery again, when to give up, when to
 * warn the sender, and how long to leave a failing destination alone.
 *
 * The policy comes from the configuration (retry_intervals, queue_lifetime,
 * delay_warning; docs/configuration.md).  A message that is still
 * undeliverable queue_lifetime after its arrival bounces with status 4.4.7
 * (RFC 3463 3.5 "Delivery time expired"); a delay DSN (RFC 3464 2.3.3
 * Action: delayed) may be sent once, delay_warning after arrival.
 *
 * A destination domain that keeps failing as a whole (no MX reachable, 421
 * greetings) is held back rather than hammered once per message: each
 * consecutive failure doubles the hold, starting at the first retry
 * interval and capped at the longest one; one success ends it.
 *
 * Pure functions of their arguments: `now` is always passed in, nothing
 * here reads the clock, allocates or does I/O.  Times are seconds since
 * the epoch; sums saturate instead of overflowing. */
#ifndef TERN_QUEUE_RETRY_H
#define TERN_QUEUE_RETRY_H

#include <stddef.h>
#include <time.h>

/* The enhanced status and reply text of a recipient that ran out of time
 * (RFC 3463 3.5: X.4.7 delivery time expired; a permanent failure of a
 * transient condition, so the class stays 4 in the DSN's Status field
 * while its Action is "failed"). */
#define RETRY_EXPIRED_STATUS "4.4.7"
#define RETRY_EXPIRED_TEXT   "Message expired: delivery time limit reached"

/* Used when the policy has no interval at all. */
#define RETRY_DEFAULT_INTERVAL 300u

/* The policy.  Nothing is owned: INTERVALS points at the configuration's
 * array, which must outlive every call that is given this struct. */
struct retry_policy {
	const unsigned *intervals; /* seconds between attempts; the last repeats */
	size_t nintervals;
	unsigned queue_lifetime; /* seconds after arrival; 0: the first temporary
				  * failure already bounces */
	unsigned delay_warning;	 /* seconds after arrival; 0: never warn */
};

/* retry_interval - the wait after the ATTEMPTS-th failed attempt:
 * intervals[ATTEMPTS-1], the last interval for every attempt beyond the
 * list, 0 for ATTEMPTS == 0 (never tried: go now).  Never less than 1 s
 * once an attempt was made, so a zero in the list cannot spin the queue. */
unsigned retry_interval(const struct retry_policy *p, unsigned attempts);

/* retry_expires_at - the moment a message that arrived at ARRIVAL stops
 * being retried (the DSN's Will-Retry-Until). */
time_t retry_expires_at(const struct retry_policy *p, time_t arrival);

/* retry_expired - is NOW at or past retry_expires_at()? */
int retry_expired(const struct retry_policy *p, time_t arrival, time_t now);

enum retry_verdict {
	RETRY_LATER,   /* deferred: try again at *NEXT */
	RETRY_GIVE_UP, /* expired: bounce with RETRY_EXPIRED_STATUS */
};

/* retry_after_failure - a temporary failure at NOW, ATTEMPTS attempts made
 * so far (this one included), of a message that arrived at ARRIVAL.
 * Expired → RETRY_GIVE_UP (*NEXT untouched).  Otherwise RETRY_LATER with
 * *NEXT = NOW + retry_interval(ATTEMPTS), moved earlier to the expiry time
 * when it would fall after it: the last attempt happens right at the
 * deadline, and if it fails too the message bounces then, not up to one
 * interval late. */
enum retry_verdict retry_after_failure(const struct retry_policy *p, time_t arrival,
				       unsigned attempts, time_t now, time_t *next);

/* retry_delay_warning_at - when a delay warning for a message that arrived
 * at ARRIVAL becomes due; 0 when there is none (delay_warning is 0, or not
 * before the expiry, when the bounce says it all). */
time_t retry_delay_warning_at(const struct retry_policy *p, time_t arrival);

/* retry_delay_warning_due - should the delay warning go out at NOW?  Once:
 * SENT says whether it already went (the caller keeps that flag with the
 * message so a restart does not warn twice).  Not after expiry. */
int retry_delay_warning_due(const struct retry_policy *p, time_t arrival, time_t now, int sent);

/* Backoff state of one destination domain, kept by the caller (zeroed =
 * healthy).  The scheduler owns one per domain it delivers to. */
struct retry_domain {
	unsigned failures; /* consecutive failures of the whole domain */
	time_t hold_until; /* no new connection before this; 0 = none */
};

/* retry_domain_hold - the hold after FAILURES consecutive failures:
 * first interval * 2^(FAILURES-1), at most the longest interval; 0 for
 * FAILURES == 0. */
unsigned retry_domain_hold(const struct retry_policy *p, unsigned failures);

/* retry_domain_failed - the domain failed at NOW (every MX unreachable or
 * refusing).  A failure reported while the domain is already held (a
 * connection that was started before the hold began) extends nothing: one
 * outage seen by several connections counts once. */
void retry_domain_failed(struct retry_domain *d, const struct retry_policy *p, time_t now);

/* retry_domain_succeeded - a delivery to the domain worked: back to healthy. */
void retry_domain_succeeded(struct retry_domain *d);

/* retry_domain_held - may no connection to the domain be opened at NOW? */
int retry_domain_held(const struct retry_domain *d, time_t now);

/* retry_domain_next - the earliest moment at or after WHEN that the
 * domain's hold allows (a recipient's next attempt, moved past the hold). */
time_t retry_domain_next(const struct retry_domain *d, time_t when);

#endif
