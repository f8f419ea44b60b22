/* webhook_private.h - what the files of the webhooks share: the parsed
 * URL, the address rule, the signature, one POST.
 *
 * webhook_check.c holds the pure parts (no I/O, unit-tested):
 * webhook_url_parse, webhook_addr_forbidden, webhook_sign,
 * webhook_secret_new.  webhook_post.c sends one event to one checked
 * address.  webhooks.c runs the set.
 *
 * Ownership: a struct webhook_url is a value (no pointers).  A post
 * belongs to its starter until its callback runs (it is freed before the
 * callback) or webhook_post_cancel frees it. */
#ifndef TERN_HTTP_WEBHOOK_PRIVATE_H
#define TERN_HTTP_WEBHOOK_PRIVATE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "http/webhooks.h"

#define WEBHOOK_HOST_MAX      255 /* a DNS name in text form (RFC 1035 2.3.4) */
#define WEBHOOK_SECRET_BYTES  32
#define WEBHOOK_SECRET_HEX    (2 * WEBHOOK_SECRET_BYTES + 1)
#define WEBHOOK_SIGNATURE_MAX 80	  /* "sha256=" and 64 hex digits */
#define WEBHOOK_RESPONSE_MAX  (64 * 1024) /* response bytes read; the rest is not */
#define WEBHOOK_HEADERS_MAX   (16 * 1024) /* status line and header fields */
#define WEBHOOK_ERROR_MAX     256	  /* a failure's reason, as last_error */

/* A URL taken apart for one request (RFC 3986 3; RFC 9110 4.2). */
struct webhook_url {
	int tls;			       /* https */
	int literal;			       /* the host is an IP address */
	char host[WEBHOOK_HOST_MAX + 1];       /* lower case, IPv6 without brackets */
	unsigned port;			       /* given, or 80 / 443 */
	char authority[WEBHOOK_HOST_MAX + 16]; /* the Host header: "[::1]:8080" */
	char target[WEBHOOK_URL_MAX + 1];      /* path and query: "/hooks?a=1" */
};

/* webhook_url_parse - check URL (webhooks_url_check's rules: http or https,
 * a host that is a DNS name or an IP literal, an optional port, no user
 * information, no fragment, at most WEBHOOK_URL_MAX bytes of printable
 * ASCII) and fill OUT.  0, or -1 with the reason in ERR. */
int webhook_url_parse(const char *url, struct webhook_url *out, char *err, size_t errlen);

/* webhook_addr_forbidden - why SA may not be posted to unless
 * webhook_allow_private is set ("loopback", "private", "link-local",
 * "unique-local", "shared (CGNAT)", "multicast", "unspecified",
 * "reserved", ...), or NULL when it is a public address.  IPv4-mapped,
 * IPv4-compatible, NAT64 and 6to4 IPv6 addresses are judged by the IPv4
 * address inside them. */
const char *webhook_addr_forbidden(const struct sockaddr *sa);

/* webhook_sign - "sha256=HEX" (lower case), the HMAC-SHA256 of BODY keyed
 * with the bytes of SECRET as written (its hex text), into OUT
 * (WEBHOOK_SIGNATURE_MAX).  0, or -1 when OpenSSL fails. */
int webhook_sign(const char *secret, const void *body, size_t len, char *out);

/* webhook_secret_new - WEBHOOK_SECRET_BYTES random bytes (libsodium) as
 * lower-case hex into OUT (WEBHOOK_SECRET_HEX).  0, or -1. */
int webhook_secret_new(char *out);

/* ---- one POST ---- */

struct event_base;
struct webhook_post;
typedef struct ssl_ctx_st SSL_CTX;

/* webhook_post_cb - the outcome: STATUS the HTTP status (0 when there was
 * no answer), ERROR NULL on a 2xx, else the reason (valid during the
 * call).  The post is already freed. */
typedef void (*webhook_post_cb)(void *arg, int status, const char *error);

/* What to send, and where. */
struct webhook_request {
	const struct webhook_url *url;
	const struct sockaddr *addr; /* checked; its port is ignored */
	socklen_t addrlen;
	const char *event_type; /* X-Tern-Event */
	const char *signature;	/* X-Tern-Signature */
	const char *body;	/* the event's JSON */
	size_t len;
};

/* webhook_post_start - connect to R->addr (TLS from TLS_CTX, verifying the
 * certificate for the URL's host, when the URL is https) and POST the
 * body, within WEBHOOK_TIMEOUT seconds in all.  CB runs once, from the
 * loop, never from inside this call.  The post copies what it needs from
 * R.  NULL with ERR set when it cannot start (no callback). */
struct webhook_post *webhook_post_start(struct event_base *base, SSL_CTX *tls_ctx,
					const struct webhook_request *r, webhook_post_cb cb,
					void *arg, char *err, size_t errlen);

/* webhook_post_cancel - abandon a post: its connection is closed and its
 * callback never runs.  Clears *P. */
void webhook_post_cancel(struct webhook_post **p);

#endif
