/* policy.h - the sending rules of a service (DESIGN.md): per-user daily
 * and monthly recipient quotas, a per-user rate limit in messages per
 * minute, and per-user suppression lists, applied alike to SMTP
 * submission and the HTTP API.
 *
 * The limits come from the accounts (struct dir_user: quota_day,
 * quota_month, rate_minute; 0 = unlimited); what each user has used lives
 * here, in memory on the loop, so a check never waits for the store.  Use
 * is charged when a message is accepted (policy_charge, beside its
 * accepted events), and the store's counters and events are the durable
 * copy: policy_new reads them back at start, so counters survive a
 * restart.  Days and months are UTC.  The rate limit is a sliding window
 * of 60 s, estimated from this and the previous whole minute's counts.
 *
 * Suppression lists are loaded at start and kept here; additions (a hard
 * bounce, the API) and removals apply at once and are written to the
 * store by a worker.  Addresses compare case-insensitively.
 *
 * Ownership: the policy belongs to ternd and borrows the loop and pool.
 * Strings passed in are copied.  Everything but policy_new and
 * policy_free runs on the loop thread. */
#ifndef TERN_AUTH_POLICY_H
#define TERN_AUTH_POLICY_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct dir_user;
struct event_base;
struct policy;
struct workers;

/* policy_new - load usage and suppression lists from the store at
 * DB_PATH (blocking: start-up).  NULL with ERR set. */
struct policy *policy_new(struct event_base *base, struct workers *pool, const char *db_path,
			  char *err, size_t errlen);
/* policy_free - call after workers_free (writes in flight are done).
 * Clears *P. */
void policy_free(struct policy **p);

enum policy_verdict {
	POLICY_OK = 0,
	POLICY_SUPPRESSED, /* SMTP 550 5.7.1, API 422 */
	POLICY_QUOTA_DAY, /* SMTP 451 4.7.1, API 429 */
	POLICY_QUOTA_MONTH, /* SMTP 451 4.7.1, API 429 */
	POLICY_RATE, /* SMTP 451 4.7.1, API 429 */
};

/* policy_verdict_text - "daily quota exceeded", ... for replies and events. */
const char *policy_verdict_text(enum policy_verdict v);

/* policy_check_rate - may U start another message at NOW?  On
 * POLICY_RATE *RETRY_AFTER is the seconds until it may (>= 1). */
enum policy_verdict policy_check_rate(struct policy *p, const struct dir_user *u, time_t now,
				      unsigned *retry_after);

/* policy_check_rcpt - may U send to ADDRESS as one more recipient, with
 * PENDING recipients already accepted in the message being built (not
 * charged yet)?  Suppression is checked first, then the quotas; on a
 * quota *RETRY_AFTER is the seconds until the day (month) turns. */
enum policy_verdict policy_check_rcpt(struct policy *p, const struct dir_user *u,
				      const char *address, size_t pending, time_t now,
				      unsigned *retry_after);

/* policy_charge - USER's message with NRCPTS recipients was accepted at
 * NOW: count one message and NRCPTS recipients.  No-op for NULL or "". */
void policy_charge(struct policy *p, const char *user, size_t nrcpts, time_t now);

/* policy_usage - what USER has used at NOW (for the API and tests). */
struct policy_usage {
	uint64_t day, month; /* recipients */
	uint64_t minute; /* messages in the sliding minute (estimate) */
};
void policy_usage(struct policy *p, const char *user, time_t now, struct policy_usage *out);

/* policy_suppressed - is ADDRESS on USER's list? */
int policy_suppressed(struct policy *p, const char *user, const char *address);

/* Completion of a suppression change's write: OK 1 when it is in the
 * store, 0 when the write failed (the change stays in memory). */
typedef void (*policy_done_cb)(void *arg, int ok);

/* policy_suppress - add ADDRESS to USER's list with REASON (replacing an
 * entry that is there) now; DONE (may be NULL) once it is stored.
 * Returns 0, or -1 when the address is not valid or memory ran out (no
 * call to DONE). */
int policy_suppress(struct policy *p, const char *user, const char *address, const char *reason,
		    policy_done_cb done, void *arg);

/* policy_unsuppress - remove it now.  Returns 0 (DONE will be called), 1
 * when it was not on the list (no call), -1 out of memory. */
int policy_unsuppress(struct policy *p, const char *user, const char *address,
		      policy_done_cb done, void *arg);

/* policy_suppression_each - USER's entries (NULL: everyone's) by address;
 * a non-zero return from CB stops. */
typedef int (*policy_suppression_cb)(void *ctx, const char *user, const char *address,
				     const char *reason, int64_t created);
void policy_suppression_each(struct policy *p, const char *user, policy_suppression_cb cb,
			     void *ctx);

#endif
