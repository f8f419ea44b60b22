/* server.h - the SMTP server: listeners, connection limits, sessions.
 *
 * One server serves every smtp, submission and smtps listener of the
 * configuration.  Each accepted connection becomes a session (session.h)
 * that runs the ESMTP state machine on the loop thread.
 *
 * Ownership: the server owns its listeners and sessions.  It borrows the
 * context (spool, queue, pool) from ternd, which outlives it, and holds a
 * reference to the current settings and directory. */
#ifndef TERN_SMTP_SERVER_H
#define TERN_SMTP_SERVER_H

#include <stddef.h>

#include "core/config.h"

struct directory;
struct event_log;
struct policy;
struct event_base;
struct queue;
struct smtp_server;
struct spool;
struct workers;

/* What every session needs from the daemon. */
struct smtp_context {
	struct event_base *base;
	struct spool *spool;
	struct queue *queue;
	struct workers *pool;
	struct ssl_ctx_st *tls; /* current TLS context (replaced on SIGHUP), or NULL */
	struct event_log *events; /* record of accepts and rejections, or NULL */
	struct policy *policy; /* quotas, rate limits, suppression, or NULL */
};

/* settings - the configuration as sessions see it, shared by reference so
 * a reload never pulls it from under a running session. */
struct settings {
	int refs;
	struct config cfg;
};
struct settings *settings_ref(struct settings *s);
void settings_unref(struct settings **s);

/* smtp_server_new - bind every smtp/submission/smtps listener of
 * S->cfg (blocking, before privileges are dropped) without accepting yet.
 * NULL with ERR set on failure. */
struct smtp_server *smtp_server_new(const struct smtp_context *ctx, struct settings *s,
				    char *err, size_t errlen);

/* smtp_server_start - begin accepting connections. */
int smtp_server_start(struct smtp_server *srv);

/* smtp_server_set_settings / _set_directory - new sessions use these (a
 * reference is taken); running sessions keep theirs. */
void smtp_server_set_settings(struct smtp_server *srv, struct settings *s);
void smtp_server_set_directory(struct smtp_server *srv, struct directory *d);

/* smtp_server_stop_accepting - close the listeners (shutdown). */
void smtp_server_stop_accepting(struct smtp_server *srv);

/* smtp_server_sessions - how many sessions are open. */
unsigned smtp_server_sessions(const struct smtp_server *srv);

/* smtp_server_connections_total - connections accepted since start. */
unsigned long smtp_server_connections_total(const struct smtp_server *srv);

/* smtp_server_free - close every session and listener. */
void smtp_server_free(struct smtp_server **srv);

#endif
