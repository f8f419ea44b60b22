/* webhook_set.h - the inside of struct webhooks, shared by webhooks.c
 * (delivery, the store queue, the set's life) and webhook_ops.c (the
 * API's adds, deletes and listing).
 *
 * Ownership: the set owns its webhooks, ops, jobs, resolver, TLS context
 * and store connection.  A webhook deleted while its DNS lookup runs is
 * parked on the zombie list until the lookup answers (the resolver cannot
 * cancel one lookup).  Everything runs on the loop thread but a job's
 * work function. */
#ifndef TERN_HTTP_WEBHOOK_SET_H
#define TERN_HTTP_WEBHOOK_SET_H

#include <stddef.h>
#include <stdint.h>

#include "http/webhook_private.h"
#include "store/records.h"

#define WEBHOOK_BATCH	      100 /* events read from the store at a time */
#define WH_STORE_RETRY	      5	  /* seconds before reading the store again after an error */
#define WH_USER_MAX	      320 /* an address and its NUL (API_USER_MAX) */
#define WEBHOOKS_PER_USER_MAX 100

struct event;
struct event_base;
struct event_listener;
struct event_log;
struct event_sync;
struct mx_resolver;
struct mx_result;
struct webhook_post;
struct workers;
struct wh_op;

enum wh_state {
	WH_IDLE,     /* caught up; woken by the next matching event */
	WH_SYNC,     /* waiting for the event log to reach the store */
	WH_FETCH,    /* reading events after the cursor */
	WH_RESOLVE,  /* looking up the URL's host */
	WH_POST,     /* one event on its way */
	WH_WAIT,     /* backing off after a failure (or a store error) */
	WH_DISABLED, /* too many failures: never tried again */
};

struct wh_hook {
	struct webhooks *set;
	struct wh_hook *next; /* in id order */
	int64_t id;
	char user[WH_USER_MAX]; /* "": an admin's, every user's events */
	char *url_text;
	char *secret;
	unsigned events; /* EVENT_MASK set */
	int64_t created;
	struct webhook_url url;
	/* Progress: in memory, and the cursor last queued for the store. */
	int64_t cursor, saved_cursor;
	unsigned failures;
	int disabled;
	char last_error[WEBHOOK_ERROR_MAX];
	/* Delivery. */
	enum wh_state state;
	int more; /* an event came while busy: read again after this batch */
	struct event_sync *sync;
	struct event_record *batch;
	size_t nbatch, pos; /* events read; the one being delivered */
	struct webhook_post *post;
	struct event *timer; /* WH_WAIT */
	int dns_pending;
	int gone; /* removed from the set (a zombie until its lookup answers) */
};

/* A store job: WORK runs on a worker with the set's connection and
 * returns 0 or -1 (ERR set); DONE runs on the loop and frees the job;
 * RELEASE frees it unanswered (the set is going away). */
struct wh_job {
	struct wh_job *next;
	struct webhooks *set; /* NULL once the set is gone */
	struct records *rec;
	int (*work)(struct wh_job *j, struct records *rec);
	void (*done)(struct wh_job *j);
	void (*release)(struct wh_job *j);
	int rc;
	char err[256];
};

struct webhooks {
	struct event_base *base;
	struct workers *pool;
	struct event_log *log;
	struct event_listener *listener;
	struct mx_resolver *dns;
	SSL_CTX *tls;
	int allow_private;
	unsigned max_failures;
	struct wh_hook *hooks; /* by id */
	struct wh_hook *zombies;
	struct wh_op *ops; /* the API's requests in progress */
	struct records *rec;
	struct wh_job *queue, *queue_tail; /* waiting, oldest first */
	struct wh_job *running;
};

/* webhooks.c */
void wh_job_submit(struct webhooks *w, struct wh_job *j);
struct wh_hook *wh_hook_new(struct webhooks *w, const struct webhook_row *row);
struct wh_hook *wh_hook_find(struct webhooks *w, int64_t id);
void wh_hook_start(struct wh_hook *h);
/* wh_hook_remove - take H out of the set and stop it; freed now, or as a
 * zombie when its lookup answers. */
void wh_hook_remove(struct webhooks *w, struct wh_hook *h);
void wh_hook_free(struct wh_hook *h);
void wh_hook_reresolve(struct wh_hook *h);
const char *wh_check_addrs(const struct webhooks *w, const struct mx_result *res, char *why,
			   size_t whylen);

/* webhook_ops.c */
void wh_ops_reresolve(struct webhooks *w); /* a new resolver: ask again */
void wh_ops_free(struct webhooks *w);

#endif
