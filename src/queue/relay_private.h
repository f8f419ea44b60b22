/* relay_private.h - the relay's insides, shared by relay.c (destinations,
 * requests, the public functions) and relay_conn.c (one connection's
 * life).  Not a contract: nothing else includes it. */
#ifndef TERN_QUEUE_RELAY_PRIVATE_H
#define TERN_QUEUE_RELAY_PRIVATE_H

#include <sys/socket.h>

#include "queue/relay.h"

enum conn_state {
	C_RESOLVING,  /* waiting for mx_resolve */
	C_CONNECTING, /* trying the routed addresses one by one */
	C_IDLE,	      /* ready, nothing to send (idle timer running) */
	C_BUSY,	      /* a transaction is running */
};

struct relay_req {
	struct relay_request req; /* lent by the caller */
	relay_done_cb cb;
	void *arg;
	struct rdest *dest;
	struct rconn *conn;	/* sending it, or NULL while waiting */
	struct relay_req *next; /* dest's waiting list */
	int requeued;		/* put back once after a dead reused connection */
};

struct rconn {
	struct relay *r;
	struct rdest *dest;
	struct rconn *next; /* dest->conns */
	enum conn_state state;
	struct smtp_client *c;
	struct mx_result *mx;
	size_t host, addr, tried;
	int plain; /* the current address once more, without TLS */
	struct relay_req *cur;
	struct event *idle;
	unsigned transactions;
	char mta[MX_NAME_MAX + 1];
	struct smtp_client_result last; /* why the last address failed */
};

/* A destination: a domain (or the smarthost) reached from one source. */
struct rdest {
	struct relay *r;
	char domain[MX_NAME_MAX + 1];
	char source[RELAY_SOURCE_MAX]; /* "" = the kernel's choice */
	struct retry_domain hold;
	struct smtp_client_result last_fail; /* why it is held */
	struct relay_req *wait_head, *wait_tail;
	size_t nwait;
	struct rconn *conns;
	unsigned nconns, nopening;
	struct rdest *next;
};

struct relay {
	struct event_base *base;
	struct mx_resolver *mx;
	SSL_CTX *ssl_ctx;
	char *hostname, *source_ip, *auth_user, *auth_password;
	unsigned port;
	char *smarthost; /* what mx_resolve is asked for relay_host, or NULL */
	unsigned smarthost_port;
	unsigned *intervals;
	struct retry_policy policy;
	unsigned per_dest_max, global_max, idle_keep_ms;
	struct smtp_client_timeouts timeouts;
	struct rdest *dests;
	unsigned nconns;
	struct event *kick;
};

/* relay.c */
void relay_kick(struct relay *r); /* run dispatch soon, from the loop */
void relay_result(struct smtp_client_result *res, int code, const char *enh, const char *fmt, ...)
	__attribute__((format(printf, 4, 5))); /* a result made up here */
const char *relay_safe(char *buf, size_t len, const char *s);
void relay_wait_push(struct rdest *d, struct relay_req *q, int front);
struct relay_req *relay_wait_pop(struct rdest *d);
void relay_finish(struct relay_req *q, const struct relay_outcome *out);
void relay_finish_all(struct relay_req *q, const struct smtp_client_result *res, int attempted,
		      time_t not_before);
void relay_fail_waiting(struct rdest *d, const struct smtp_client_result *res, int attempted,
			time_t not_before);
void relay_dest_failed(struct rdest *d, const struct smtp_client_result *why);

/* relay_conn.c */
void relay_dest_open(struct rdest *d);	/* a new connection to D */
void relay_conn_ready(struct rconn *k); /* K may carry the next request */
void relay_conn_close(struct rconn *k); /* K is not sending; no callback after */
int relay_source_addr(const char *text, struct sockaddr_storage *ss, socklen_t *len);

#endif
