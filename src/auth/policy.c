/* policy.c - what each user has used: recipient quotas per UTC day and
 * month and the sliding-minute rate limit (see policy.h); the suppression
 * lists are in policy_lists.c.
 *
 * Use lives in a hash table keyed by user (ASCII case-insensitive), one
 * entry per user that sent; an entry whose month is over counts nothing
 * and is dropped when the table would otherwise grow.  Counts are reset
 * lazily when a day, month or minute has turned since they were made. */
#include "auth/policy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/policy_private.h"
#include "core/log.h"
#include "store/directory.h"
#include "store/records.h"

/* ---- the hash table ---- */

/* ptab_hash_ci - FNV-1a of S, ASCII case folded, continuing from H. */
uint32_t ptab_hash_ci(const char *s, uint32_t h)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c >= 'A' && c <= 'Z')
			c = (unsigned char)(c - 'A' + 'a');
		h = (h ^ c) * 16777619u;
	}
	return h;
}

/* ptab_casecmp - ASCII case-insensitive compare, whatever the locale. */
int ptab_casecmp(const char *a, const char *b)
{
	for (;; a++, b++) {
		int x = (unsigned char)*a, y = (unsigned char)*b;
		x = x >= 'A' && x <= 'Z' ? x - 'A' + 'a' : x;
		y = y >= 'A' && y <= 'Z' ? y - 'A' + 'a' : y;
		if (x != y || !x)
			return x - y;
	}
}

struct ptab_node *ptab_find(const struct ptab *t, uint32_t hash, ptab_eq_fn eq, const void *key)
{
	if (!t->nb)
		return NULL;
	for (struct ptab_node *n = t->b[hash & (t->nb - 1)]; n; n = n->next)
		if (n->hash == hash && eq(n, key))
			return n;
	return NULL;
}

int ptab_full(const struct ptab *t)
{
	return t->count >= t->nb;
}

/* ptab_grow - double the buckets and rehash; on ENOMEM the chains just get
 * longer (-1 only when there are no buckets at all). */
static int ptab_grow(struct ptab *t)
{
	size_t nb = t->nb ? t->nb * 2 : 64;
	struct ptab_node **b = calloc(nb, sizeof(struct ptab_node *));
	if (!b)
		return t->nb ? 0 : -1;
	for (size_t i = 0; i < t->nb; i++)
		while (t->b[i]) {
			struct ptab_node *n = t->b[i];
			t->b[i] = n->next;
			n->next = b[n->hash & (nb - 1)];
			b[n->hash & (nb - 1)] = n;
		}
	free(t->b);
	t->b = b;
	t->nb = nb;
	return 0;
}

int ptab_insert(struct ptab *t, struct ptab_node *n, uint32_t hash)
{
	if (ptab_full(t) && ptab_grow(t) < 0)
		return -1;
	n->hash = hash;
	n->next = t->b[hash & (t->nb - 1)];
	t->b[hash & (t->nb - 1)] = n;
	t->count++;
	return 0;
}

void ptab_remove(struct ptab *t, struct ptab_node *n)
{
	for (struct ptab_node **pp = &t->b[n->hash & (t->nb - 1)]; *pp; pp = &(*pp)->next)
		if (*pp == n) {
			*pp = n->next;
			t->count--;
			return;
		}
}

void ptab_sweep(struct ptab *t, int (*stale)(const struct ptab_node *, const void *),
		const void *arg, void (*free_fn)(struct ptab_node *))
{
	for (size_t i = 0; i < t->nb; i++)
		for (struct ptab_node **pp = &t->b[i]; *pp;) {
			struct ptab_node *n = *pp;
			if (stale && !stale(n, arg)) {
				pp = &n->next;
				continue;
			}
			*pp = n->next;
			t->count--;
			free_fn(n);
		}
}

/* What one user has used.  Counts belong to the day, month and minute
 * that start at the matching *_start; a stale one is reset when read. */
struct usage {
	struct ptab_node node;
	char *user;
	time_t day_start, month_start, minute_start;
	uint64_t day, month;
	uint64_t cur, prev; /* messages in minute_start's minute and the one before */
};

const char *policy_verdict_text(enum policy_verdict v)
{
	switch (v) {
	case POLICY_OK:
		return "ok";
	case POLICY_SUPPRESSED:
		return "suppressed recipient";
	case POLICY_QUOTA_DAY:
		return "daily quota exceeded";
	case POLICY_QUOTA_MONTH:
		return "monthly quota exceeded";
	case POLICY_RATE:
		return "rate limit exceeded";
	}
	return "refused";
}

/* ---- UTC calendar ---- */

/* day_start - 00:00 UTC of NOW's day. */
static time_t day_start(time_t now)
{
	time_t r = now % 86400;
	return now - (r < 0 ? r + 86400 : r);
}

/* month_start - 00:00 UTC on the 1st of NOW's month, plus ADD months. */
static time_t month_start(time_t now, int add)
{
	struct tm tm;
	gmtime_r(&now, &tm);
	tm.tm_mday = 1;
	tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
	tm.tm_mon += add; /* timegm carries into the year */
	return timegm(&tm);
}

/* minute_start - the start of NOW's whole minute. */
static time_t minute_start(time_t now)
{
	time_t r = now % 60;
	return now - (r < 0 ? r + 60 : r);
}

/* ---- usage ---- */

/* user_hash - the table's hash of USER, case folded. */
static uint32_t user_hash(const char *user)
{
	return ptab_hash_ci(user, 0x811c9dc5u);
}

/* usage_eq - is N the entry of user KEY? */
static int usage_eq(const struct ptab_node *n, const void *key)
{
	return ptab_casecmp(((const struct usage *)n)->user, key) == 0;
}

/* usage_find - USER's entry, or NULL when USER has not sent. */
static struct usage *usage_find(struct policy *p, const char *user)
{
	return (struct usage *)ptab_find(&p->usage, user_hash(user), usage_eq, user);
}

/* usage_roll - bring U's counts to NOW: a new day, month or minute
 * starts from zero; the minute before becomes the previous one.  A clock
 * that stepped back leaves the counts as they are. */
static void usage_roll(struct usage *u, time_t now)
{
	time_t d = day_start(now), m = month_start(now, 0), mi = minute_start(now);
	if (u->day_start < d) {
		u->day_start = d;
		u->day = 0;
	}
	if (u->month_start < m) {
		u->month_start = m;
		u->month = 0;
	}
	if (u->minute_start < mi) {
		u->prev = u->minute_start == mi - 60 ? u->cur : 0;
		u->cur = 0;
		u->minute_start = mi;
	}
}

/* usage_free - an entry out of the table. */
static void usage_free(struct ptab_node *n)
{
	struct usage *u = (struct usage *)n;
	free(u->user);
	free(u);
}

/* usage_stale - nothing of U counts any more at NOW: its month is over
 * (so are its day and minutes). */
static int usage_stale(const struct ptab_node *n, const void *now)
{
	const struct usage *u = (const struct usage *)n;
	time_t t = *(const time_t *)now;
	return u->month_start < month_start(t, 0) && u->minute_start < minute_start(t) - 60;
}

/* usage_get - U's entry, made when missing; NULL when out of memory. */
static struct usage *usage_get(struct policy *p, const char *user, time_t now)
{
	struct usage *u = usage_find(p, user);
	if (u)
		return u;
	/* Before the table grows, forget the users whose use has expired. */
	if (ptab_full(&p->usage))
		ptab_sweep(&p->usage, usage_stale, &now, usage_free);
	u = calloc(1, sizeof *u);
	if (!u || !(u->user = strdup(user)) ||
	    ptab_insert(&p->usage, &u->node, user_hash(user)) < 0) {
		if (u)
			free(u->user);
		free(u);
		log_error("policy: out of memory counting %s", user);
		return NULL;
	}
	u->day_start = day_start(now);
	u->month_start = month_start(now, 0);
	u->minute_start = minute_start(now);
	return u;
}

/* rate_x60 - sixty times the sliding-minute estimate at NOW:
 * prev * (60 - seconds into the minute) + cur * 60, in integers. */
static uint64_t rate_x60(const struct usage *u, time_t now)
{
	time_t mi = minute_start(now);
	uint64_t prev = u->prev, cur = u->cur;
	if (u->minute_start < mi) { /* as usage_roll would, without changing U */
		prev = u->minute_start == mi - 60 ? cur : 0;
		cur = 0;
	} else if (u->minute_start > mi) {
		mi = u->minute_start; /* the clock stepped back: the newest minute */
		now = mi;
	}
	return prev * (uint64_t)(60 - (now - mi)) + cur * 60;
}

enum policy_verdict policy_check_rate(struct policy *p, const struct dir_user *u, time_t now,
				      unsigned *retry_after)
{
	if (!u || !u->rate_minute)
		return POLICY_OK;
	struct usage *e = usage_find(p, u->address);
	if (!e)
		return POLICY_OK;
	usage_roll(e, now);
	uint64_t limit = u->rate_minute * 60;
	if (rate_x60(e, now) < limit)
		return POLICY_OK;
	/* The estimate only falls as time passes and is 0 two minutes on,
	 * so the first second it is under the limit is found by walking. */
	unsigned t = 1;
	while (t < 120 && rate_x60(e, now + t) >= limit)
		t++;
	if (retry_after)
		*retry_after = t;
	return POLICY_RATE;
}

/* ---- quotas ---- */

enum policy_verdict policy_check_rcpt(struct policy *p, const struct dir_user *u,
				      const char *address, size_t pending, time_t now,
				      unsigned *retry_after)
{
	if (!u)
		return POLICY_OK;
	if (policy_suppressed(p, u->address, address))
		return POLICY_SUPPRESSED;
	if (!u->quota_day && !u->quota_month)
		return POLICY_OK;
	struct usage *e = usage_find(p, u->address);
	uint64_t day = pending, month = pending;
	if (e) {
		usage_roll(e, now);
		day += e->day;
		month += e->month;
	}
	enum policy_verdict v = POLICY_OK;
	time_t until = now;
	if (u->quota_day && day + 1 > u->quota_day) {
		v = POLICY_QUOTA_DAY;
		until = day_start(now) + 86400;
	} else if (u->quota_month && month + 1 > u->quota_month) {
		v = POLICY_QUOTA_MONTH;
		until = month_start(now, 1);
	}
	if (v != POLICY_OK && retry_after)
		*retry_after = until - now >= 1 ? (unsigned)(until - now) : 1;
	return v;
}

void policy_charge(struct policy *p, const char *user, size_t nrcpts, time_t now)
{
	if (!user || !user[0])
		return;
	struct usage *u = usage_get(p, user, now);
	if (!u)
		return;
	usage_roll(u, now);
	u->day += nrcpts;
	u->month += nrcpts;
	u->cur++;
}

void policy_usage(struct policy *p, const char *user, time_t now, struct policy_usage *out)
{
	memset(out, 0, sizeof *out);
	struct usage *u = user ? usage_find(p, user) : NULL;
	if (!u)
		return;
	usage_roll(u, now);
	out->day = u->day;
	out->month = u->month;
	/* Rounded down: under a limit exactly when the check lets it pass. */
	out->minute = rate_x60(u, now) / 60;
}

/* ---- start and end ---- */

struct load_ctx {
	struct policy *p;
	time_t now;
	int current; /* 0: the rows since the previous minute; 1: this minute */
	int failed;  /* out of memory: the walk stopped early */
};

/* load_usage - one user's use as the store counted it.  The first pass
 * gives the messages since the previous minute began, the second those
 * of this minute; the difference is the previous minute's. */
static int load_usage(void *arg, const struct usage_row *row)
{
	struct load_ctx *c = arg;
	struct usage *u = usage_get(c->p, row->user, c->now);
	if (!u) {
		c->failed = 1;
		return -1;
	}
	if (!c->current) {
		u->day = row->day;
		u->month = row->month;
		u->prev = row->minute;
	} else {
		u->cur = row->minute <= u->prev ? row->minute : u->prev;
		u->prev -= u->cur;
	}
	return 0;
}

/* load - use and suppression lists from the store (start-up). */
static int load(struct policy *p, char *err, size_t errlen)
{
	time_t now = time(NULL);
	struct load_ctx c = {p, now, 0, 0};
	time_t day = day_start(now), month = month_start(now, 0), minute = minute_start(now);
	if (records_usage_each(p->rec, day, month, minute - 60, load_usage, &c, err, errlen) < 0)
		return -1;
	c.current = 1;
	if (records_usage_each(p->rec, day, month, minute, load_usage, &c, err, errlen) < 0)
		return -1;
	if (c.failed) {
		snprintf(err, errlen, "out of memory loading usage");
		return -1;
	}
	return policy_lists_load(p, err, errlen);
}

struct policy *policy_new(struct event_base *base, struct workers *pool, const char *db_path,
			  char *err, size_t errlen)
{
	struct policy *p = calloc(1, sizeof *p);
	if (!p) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	p->base = base;
	p->pool = pool;
	if (!(p->rec = records_open(db_path, err, errlen)) || load(p, err, errlen) < 0) {
		policy_free(&p);
		return NULL;
	}
	return p;
}

void policy_free(struct policy **pp)
{
	struct policy *p = *pp;
	if (!p)
		return;
	*pp = NULL;
	policy_lists_free(p);
	ptab_sweep(&p->usage, NULL, NULL, usage_free);
	free(p->usage.b);
	records_close(&p->rec);
	free(p);
}
