/* relay.h - remote delivery: where a message for another domain goes, over
 * which connection, and how hard a failing destination is pushed.
 *
 * The queue (queue.h) decides what to send and keeps every recipient's
 * state; the relay carries one request at a time per connection: "these
 * recipients of this message, all at DOMAIN".  It routes the domain through
 * mx.h (RFC 5321 5.1: MX preference order, implicit MX, RFC 7505 null MX),
 * or through the configured smarthost, connects with smtp/client.h and
 * reports one result per recipient.
 *
 * Destinations.  Requests are grouped by destination: the domain (or the
 * smarthost) together with the source address the connection binds, since a
 * connection bound to one address cannot carry mail that must leave from
 * another.  Each destination has at most per_dest_max connections, all
 * destinations together at most global_max; requests beyond that wait in
 * the destination's FIFO.  A connection that finished a transaction takes
 * the next waiting request of its destination (connection reuse); with
 * nothing waiting it stays open idle_keep_ms, then says QUIT.
 *
 * Fallback (RFC 5321 5.1).  A connection tries the routed addresses in
 * order: MX hosts by preference, each host's IPv4 then IPv6 addresses, at
 * most RELAY_ADDRS_MAX of them; a refused or timed-out connection, or a
 * greeting or EHLO other than 2xx, moves to the next address.  A failed TLS
 * handshake is retried once in plaintext on the same address, except at a
 * smarthost (TLS required).  When every address failed, the destination has
 * failed as a whole: retry_domain_failed() holds it back (retry.h) and every
 * request waiting for it is deferred with not_before set to the end of the
 * hold; requests that arrive during the hold are deferred at once without
 * any connection.  One connection that gets through ends the hold.
 *
 * Results.  DNS: null MX is 556 5.1.10, NXDOMAIN 550 5.1.2, MX hosts without
 * any address 550 5.4.4, an MX list that names this host first 550 5.4.6
 * (all final); a temporary DNS failure is 451 4.4.3 (deferred, and a failure
 * of the destination).  Otherwise each recipient gets what the client
 * reported for it (smtp_client_done_cb).
 *
 * Everything runs on the loop thread.  Ownership: the relay belongs to its
 * creator (relay_free) and owns its MX resolver; config strings are copied,
 * the retry intervals too; the TLS context is lent (each client takes a
 * reference).  A request and everything it points to (the message's
 * strings, recipients and body fd) is lent until its callback has returned
 * or relay_cancel() was called.  A callback may call relay_submit, never
 * relay_cancel or relay_free. */
#ifndef TERN_QUEUE_RELAY_H
#define TERN_QUEUE_RELAY_H

#include <stddef.h>
#include <time.h>

#include "deliver/mx.h"
#include "queue/retry.h"
#include "smtp/client.h"

#define RELAY_PER_DEST_MAX 20	/* connections to one destination */
#define RELAY_GLOBAL_MAX   100	/* connections altogether */
#define RELAY_IDLE_KEEP_MS 5000 /* an idle connection waits this long for more */
#define RELAY_ADDRS_MAX	   10	/* addresses one connection tries */
#define RELAY_SOURCE_MAX   64	/* an IP address in text form */

struct event_base;
struct relay;
struct relay_req;

struct relay_config {
	struct event_base *base;
	struct mx_config dns;	/* the resolver the relay makes for itself */
	SSL_CTX *ssl_ctx;	/* lent: STARTTLS when offered; NULL = never */
	const char *hostname;	/* EHLO name, and "this host" in MX lists */
	unsigned remote_port;	/* port of MX hosts; 0 = 25 */
	const char *source_ip;	/* default source address; NULL = the kernel's */
	const char *relay_host; /* "HOST:PORT" smarthost, or NULL for MX routing */
	const char *relay_auth_user, *relay_auth_password; /* AUTH at the smarthost */
	struct retry_policy policy; /* for holding failing destinations; copied */
	unsigned per_dest_max, global_max, idle_keep_ms; /* 0 = the defaults above */
	struct smtp_client_timeouts timeouts;		 /* 0 = RFC 5321 4.5.3.2 values */
};

/* One transaction to ask for: MSG's recipients are all at DOMAIN. */
struct relay_request {
	const char *domain;    /* the recipients' domain */
	const char *source_ip; /* the sending user's address; NULL = the default */
	struct smtp_client_msg msg;
};

/* What became of a request: RCPTS[i] is the word on msg.rcpts[i]; when
 * NRCPTS is 1 for a request of several (no memory for copies), that one
 * result stands for all of them. */
struct relay_outcome {
	const struct smtp_client_result *rcpts;
	size_t nrcpts;
	const char *remote_mta; /* host that answered, "" when none */
	int attempted;		/* 1: a server was reached and asked */
	int dsn_offered;	/* 1: the server took the DSN parameters */
	time_t not_before;	/* destination held: no new attempt before this; 0 = none */
};

/* relay_done_cb - OUT is lent for the call.  Never called from inside
 * relay_submit, always from the loop. */
typedef void (*relay_done_cb)(void *arg, const struct relay_outcome *out);

/* relay_new - NULL with ERR set (a bad relay_host, source_ip or DNS server,
 * no memory). */
struct relay *relay_new(const struct relay_config *cfg, char *err, size_t errlen);

/* relay_free - close every connection at once, forget every request (their
 * callbacks are not called).  Clears *R. */
void relay_free(struct relay **r);

/* relay_submit - queue REQ (lent, see above).  CB is called exactly once
 * later, unless the request is cancelled or the relay freed first.
 * Returns a handle for relay_cancel, or NULL when out of memory or REQ is
 * unusable (no callback). */
struct relay_req *relay_submit(struct relay *r, const struct relay_request *req, relay_done_cb cb,
			       void *arg);

/* relay_cancel - forget REQ: its callback will not be called.  A request
 * already being sent has its connection closed. */
void relay_cancel(struct relay *r, struct relay_req *req);

/* relay_set_policy - the retry intervals that size destination holds from
 * now on (a configuration reload); copied.  0, or -1 when out of memory
 * (the old ones kept). */
int relay_set_policy(struct relay *r, const struct retry_policy *p);

/* relay_flush - end every destination's hold (an operator's "try now"). */
void relay_flush(struct relay *r);

/* relay_connections - connections open or opening (for tests and stats). */
unsigned relay_connections(const struct relay *r);

/* relay_timeouts - relay_config.timeouts from three settings in seconds
 * (the relay_timeout_* directives): CONNECT for the TCP connection; COMMAND
 * for the greeting and each reply before the data (EHLO or HELO, STARTTLS
 * and its handshake, AUTH, MAIL, RCPT, RSET), and for DATA's 354 and
 * QUIT's 221 when it is shorter than their own 2 min and 10 s; DATA for
 * the reply after the data, and for write progress during it when shorter
 * than its 3 min (RFC 5321 4.5.3.2).  0 leaves a group at the client's
 * defaults. */
struct smtp_client_timeouts relay_timeouts(unsigned connect, unsigned command, unsigned data);

#endif
