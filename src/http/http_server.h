/* http_server.h - the HTTP API server (DESIGN.md "HTTP API v1") on every
 * `listen http ADDR:PORT` listener.
 *
 * Built on libevent's evhttp: it runs on the daemon's one event loop next
 * to the SMTP sessions, so a request is answered by the same non-blocking
 * code paths (spool commit, worker pool) with no second loop, thread or
 * library to secure; HTTP/1.1 keep-alive, pipelining, chunked bodies, the
 * header and body size limits and the timeouts are evhttp's, and tern adds
 * the routes, JSON (jansson) and the API's rules.
 *
 * Requests carry `Authorization: Bearer KEY`.  Keys are checked against an
 * in-memory snapshot (store/apikeys.h) that is loaded on a worker and
 * swapped in on the loop, like the directory: no request waits for SQLite.
 * The snapshot names the accounts version it was read with; when a newer
 * directory arrives (a user deleted, perhaps added again) the keys are
 * read again, and requests with a key wait for that (milliseconds) rather
 * than let a deleted user's keys act for a new user of the same address.
 *
 * Limits: request headers HTTP_MAX_HEADERS bytes; a body at most
 * max_message_size * 4/3 + 64 KiB (base64 and JSON around the message),
 * refused with 413 before it is read into memory; connections idle or
 * stalled for timeout_command seconds are closed.
 *
 * Ownership: the server owns its listeners, connections and key snapshot.
 * It borrows the context from ternd, which outlives it (fields may be
 * filled in after http_server_new, before http_server_start), and holds a
 * reference to the current settings and directory.  Everything runs on
 * the loop thread. */
#ifndef TERN_HTTP_HTTP_SERVER_H
#define TERN_HTTP_HTTP_SERVER_H

#include <stddef.h>

struct control_request;
struct directory;
struct event_base;
struct event_log;
struct policy;
struct smtp_server;
struct webhooks;
struct http_server;
struct queue;
struct settings;
struct spool;
struct workers;

#define HTTP_MAX_HEADERS (64 * 1024) /* request line and header fields */

/* What the API needs from the daemon.  The store (API keys) is the one
 * the current settings name (config_db_path), read at each key reload. */
struct http_context {
	struct event_base *base;
	struct spool *spool;
	struct queue *queue;
	struct workers *pool;
	struct event_log *events; /* events, stats, the live stream */
	struct policy *policy; /* quotas, rate limits, suppression */
	struct webhooks *webhooks;
	struct smtp_server *smtp; /* connection counts for /metrics */
};

/* http_server_new - bind every http listener of S->cfg (blocking, before
 * privileges are dropped) without accepting yet.  NULL with ERR set on
 * failure.  With no http listener configured the server exists and does
 * nothing. */
struct http_server *http_server_new(const struct http_context *ctx, struct settings *s,
				    char *err, size_t errlen);

/* http_server_start - load the API keys (blocking: call before the loop
 * runs, after the store was opened and migrated) and begin accepting.
 * Returns 0, or -1 after logging why. */
int http_server_start(struct http_server *srv);

/* http_server_set_settings / _set_directory - requests from now on use
 * these (a reference is taken).  New limits apply to new connections; a
 * directory newer than the keys starts a key reload. */
void http_server_set_settings(struct http_server *srv, struct settings *s);
void http_server_set_directory(struct http_server *srv, struct directory *d);

/* http_server_reload_keys - load the API keys again on a worker and swap
 * them in (SIGHUP).  Reloads never overlap: one asked for while another
 * runs starts when that one ends, so the newest keys always win. */
void http_server_reload_keys(struct http_server *srv);

/* http_server_control_reload_keys - the control socket's "reload-keys"
 * command (a control_handler; CTX is the server): reloads as above and
 * answers REQ once keys read after the command arrived are in use, so
 * `ternctl apikey revoke` returns only when the key no longer works. */
void http_server_control_reload_keys(void *ctx, struct control_request *req, const char *args);

/* http_server_stop_accepting - close the listeners (shutdown). */
void http_server_stop_accepting(struct http_server *srv);

/* http_server_free - close every connection and listener; clears *SRV.
 * Call after workers_free: a submission still waiting for its spool
 * commit is then answered no more (the message is committed or not, as
 * the spool decided, and the client sees the connection close). */
void http_server_free(struct http_server **srv);

#endif
