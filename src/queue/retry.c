/* retry.c - the retry policy: intervals, expiry, delay warnings and the
 * per-domain backoff (see retry.h).
 *
 * RFC 5321 4.5.4.1 asks for a retry interval of at least 30 minutes and a
 * give-up time of at least 4-5 days; the defaults of the configuration try
 * sooner at first (most temporary failures are greylisting, which clears
 * in minutes) and give up after 5 days.  RFC 3463 3.5 gives the 4.4.7
 * status of an expired message. */
#include "queue/retry.h"

#include <limits.h>
#include <stdint.h>

/* The largest time_t (signed on every platform tern builds on). */
#define TIME_MAX ((time_t)(((uint64_t)1 << (sizeof(time_t) * 8 - 1)) - 1))

/* time_add - T + SECS, saturating instead of overflowing. */
static time_t time_add(time_t t, unsigned secs)
{
	if (t > TIME_MAX - (time_t)secs)
		return TIME_MAX;
	return t + (time_t)secs;
}

unsigned retry_interval(const struct retry_policy *p, unsigned attempts)
{
	if (attempts == 0)
		return 0;
	if (!p->intervals || p->nintervals == 0)
		return RETRY_DEFAULT_INTERVAL;
	size_t i = attempts - 1;
	if (i >= p->nintervals)
		i = p->nintervals - 1;
	return p->intervals[i] ? p->intervals[i] : 1;
}

time_t retry_expires_at(const struct retry_policy *p, time_t arrival)
{
	return time_add(arrival, p->queue_lifetime);
}

int retry_expired(const struct retry_policy *p, time_t arrival, time_t now)
{
	return now >= retry_expires_at(p, arrival);
}

enum retry_verdict retry_after_failure(const struct retry_policy *p, time_t arrival,
				       unsigned attempts, time_t now, time_t *next)
{
	time_t deadline = retry_expires_at(p, arrival);
	if (now >= deadline)
		return RETRY_GIVE_UP;
	/* A failure counts as an attempt even if the caller forgot to count it. */
	time_t t = time_add(now, retry_interval(p, attempts ? attempts : 1));
	*next = t < deadline ? t : deadline;
	return RETRY_LATER;
}

time_t retry_delay_warning_at(const struct retry_policy *p, time_t arrival)
{
	if (p->delay_warning == 0 || p->delay_warning >= p->queue_lifetime)
		return 0;
	return time_add(arrival, p->delay_warning);
}

int retry_delay_warning_due(const struct retry_policy *p, time_t arrival, time_t now, int sent)
{
	time_t at = retry_delay_warning_at(p, arrival);
	if (sent || at == 0)
		return 0;
	return now >= at && !retry_expired(p, arrival, now);
}

/* longest_interval - the cap of the domain backoff. */
static unsigned longest_interval(const struct retry_policy *p)
{
	if (!p->intervals || p->nintervals == 0)
		return RETRY_DEFAULT_INTERVAL;
	unsigned max = 1;
	for (size_t i = 0; i < p->nintervals; i++)
		if (p->intervals[i] > max)
			max = p->intervals[i];
	return max;
}

unsigned retry_domain_hold(const struct retry_policy *p, unsigned failures)
{
	if (failures == 0)
		return 0;
	unsigned cap = longest_interval(p);
	unsigned hold = retry_interval(p, 1);
	/* Double FAILURES-1 times; stop at the cap, which also keeps the
	 * shift from overflowing however many failures were counted. */
	for (unsigned i = 1; i < failures && hold < cap; i++)
		hold = hold > cap / 2 ? cap : hold * 2;
	return hold < cap ? hold : cap;
}

void retry_domain_failed(struct retry_domain *d, const struct retry_policy *p, time_t now)
{
	if (retry_domain_held(d, now))
		return;
	if (d->failures < UINT_MAX)
		d->failures++;
	d->hold_until = time_add(now, retry_domain_hold(p, d->failures));
}

void retry_domain_succeeded(struct retry_domain *d)
{
	d->failures = 0;
	d->hold_until = 0;
}

int retry_domain_held(const struct retry_domain *d, time_t now)
{
	return d->hold_until != 0 && now < d->hold_until;
}

time_t retry_domain_next(const struct retry_domain *d, time_t when)
{
	return when < d->hold_until ? d->hold_until : when;
}
