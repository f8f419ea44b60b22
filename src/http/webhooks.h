/* webhooks.h - delivering events to users' HTTP endpoints (DESIGN.md:
 * a POST of one event's JSON with X-Tern-Signature: sha256=HEX, the
 * HMAC-SHA256 of the body keyed with the webhook's secret).
 *
 * Each webhook follows the event log by its cursor (store/records.h,
 * webhook_row.cursor): it reads the next events of its user and types
 * from the store (after event_log_sync, on a worker), posts them one at a
 * time in id order, and moves its cursor past each one answered with a
 * 2xx, so delivery is in order, at least once, and survives restarts.
 * A failure (connect error, timeout, non-2xx) retries the same event
 * after 1 s, 2 s, 4 s ... at most WEBHOOK_BACKOFF_MAX; after
 * webhook_max_failures (default WEBHOOK_MAX_FAILURES) consecutive failures
 * the webhook is disabled (shown by GET /v1/webhooks) and no longer tried.
 *
 * Before each connection the URL's host is resolved through the daemon's
 * DNS servers (c-ares) and every address checked: loopback, private,
 * link-local, unique-local, CGNAT, multicast and unspecified addresses
 * are refused unless webhook_allow_private is set, and the connection
 * goes to the address that was checked, so a name cannot change between
 * the check and the connect.  http:// and https:// (certificate and name
 * verified) URLs are accepted.
 *
 * Ownership: the set belongs to ternd; it borrows the loop, pool and event
 * log, which outlive it.  Everything runs on the loop thread. */
#ifndef TERN_HTTP_WEBHOOKS_H
#define TERN_HTTP_WEBHOOKS_H

#include <stddef.h>
#include <stdint.h>

#define WEBHOOK_MAX_FAILURES 10
#define WEBHOOK_BACKOFF_MAX 300 /* seconds */
#define WEBHOOK_TIMEOUT 10 /* seconds per POST */
#define WEBHOOK_URL_MAX 2048

struct event_base;
struct event_log;
struct webhooks;
struct workers;

struct webhooks_config {
	const char *const *dns_servers; /* as mx_config; copied */
	size_t ndns_servers;
	int allow_private; /* webhook_allow_private */
	unsigned max_failures; /* webhook_max_failures; 0: WEBHOOK_MAX_FAILURES */
};

/* webhooks_new - load the webhooks from the store (blocking: start-up)
 * and begin delivering.  NULL with ERR set. */
struct webhooks *webhooks_new(struct event_base *base, struct workers *pool,
			      struct event_log *log, const struct webhooks_config *cfg, char *err,
			      size_t errlen);
/* webhooks_free - abandon posts in flight (their events are delivered
 * again after the next start).  Clears *W. */
void webhooks_free(struct webhooks **w);

/* webhooks_set_config - a reload: new DNS servers, allow_private and
 * max_failures. */
int webhooks_set_config(struct webhooks *w, const struct webhooks_config *cfg, char *err,
			size_t errlen);

/* webhooks_url_check - is URL acceptable in form (scheme http or https, a
 * host, an optional port, at most WEBHOOK_URL_MAX)?  0, or -1 with a
 * reason in ERR.  The address check happens at delivery time, and when
 * the webhook is created (webhooks_add). */
int webhooks_url_check(const char *url, char *err, size_t errlen);

/* The API's view of the webhooks (the handlers live in api_webhooks.c).
 * webhooks_add resolves the URL's host and checks its addresses first,
 * then stores the webhook and answers DONE(ARG, status, id, secret,
 * message): status 201 with the id and the new secret (hex), or 400/422
 * with a message (500 when the store fails).  USER "" is an admin's
 * webhook (every user's events).  webhooks_del answers 204 or 404 (500
 * when the store fails).  Callbacks run on the loop, never
 * from inside the call; webhooks_cancel stops a pending callback for ARG
 * (the request went away). */
typedef void (*webhooks_add_cb)(void *arg, int status, int64_t id, const char *secret,
				const char *message);
typedef void (*webhooks_del_cb)(void *arg, int status);
void webhooks_add(struct webhooks *w, const char *user, const char *url, unsigned events,
		  webhooks_add_cb done, void *arg);
void webhooks_del(struct webhooks *w, const char *user, int64_t id, webhooks_del_cb done,
		  void *arg);
void webhooks_cancel(struct webhooks *w, void *arg);

/* webhooks_list_json - USER's webhooks (NULL: all) as a JSON array of
 * {id, url, events[], state ("active"|"disabled"), failures, last_error,
 * created, user ("" for an admin's webhook of every user)}; the secret
 * is never shown again.  New reference. */
struct json_t;
struct json_t *webhooks_list_json(struct webhooks *w, const char *user);

#endif
