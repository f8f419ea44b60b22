/* mx.h - where mail for a domain goes: asynchronous MX routing.
 *
 * RFC 5321 5.1 (MX lookup, preference order, random order among equal
 * preferences, implicit MX: the domain's own A/AAAA when it has no MX),
 * RFC 7505 (null MX "0 ." means the domain accepts no mail), RFC 5321
 * 4.1.3 (address literals "[192.0.2.1]" and "[IPv6:2001:db8::1]" route to
 * that address without DNS).
 *
 * DNS goes through c-ares on the caller's libevent loop: c-ares's sockets
 * get libevent events, its timeouts a libevent timer; nothing blocks.
 * MX, A and AAAA are asked with plain queries (no search list, no
 * /etc/hosts).  Answers are cached per domain for the smallest TTL among
 * the MX, A and AAAA records used (MX TTLs are read from the raw answer),
 * at most MX_CACHE_TTL_MAX seconds and MX_CACHE_SLOTS domains; errors are
 * not cached.
 *
 * The resolver only reports; the caller decides: MX_NULL and MX_NXDOMAIN
 * bounce, MX_TEMPFAIL defers, MX_NOHOSTS (every host without an address)
 * bounces.  Dropping MX hosts that are this machine (RFC 5321 5.1, "the
 * SMTP client MUST ... delete all the records of equal or lower preference")
 * is the caller's job: only it knows its addresses.
 *
 * Ownership: the resolver belongs to its creator (mx_resolver_free).  A
 * result handed to the callback belongs to the callback, which frees it with
 * mx_result_free (it may keep it while it tries the hosts one by one). */
#ifndef TERN_DELIVER_MX_H
#define TERN_DELIVER_MX_H

#include <netinet/in.h>
#include <stddef.h>
#include <sys/socket.h>

struct event_base;
struct mx_resolver;

#define MX_HOSTS_MAX	    10	/* MX hosts kept, best preferences first */
#define MX_ADDRS_PER_FAMILY 4	/* addresses kept per host and family */
#define MX_NAME_MAX	    255 /* a DNS name in text form, RFC 1035 2.3.4 */
#define MX_CACHE_SLOTS	    512
#define MX_CACHE_TTL_MAX    3600

enum mx_status {
	MX_OK,	     /* hosts[] has at least one host with an address */
	MX_NULL,     /* RFC 7505 null MX: bounce at once (5.1.10) */
	MX_NXDOMAIN, /* the domain does not exist, or is not a DNS name: bounce */
	MX_TEMPFAIL, /* SERVFAIL, REFUSED, timeout, ...: defer */
	MX_NOHOSTS,  /* MX hosts (or the implicit host) have no address: bounce */
};

union mx_sockaddr {
	struct sockaddr sa;
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;
};

struct mx_addr {
	union mx_sockaddr u; /* port 0: the caller chooses the port */
	socklen_t len;
};

struct mx_host {
	char name[MX_NAME_MAX + 1]; /* as in the MX record; the literal for [..] */
	unsigned preference;
	size_t naddrs;
	/* IPv4 (A) addresses first, then IPv6 (AAAA). */
	struct mx_addr addrs[2 * MX_ADDRS_PER_FAMILY];
};

struct mx_result {
	enum mx_status status;
	char domain[MX_NAME_MAX + 1]; /* as asked */
	int implicit;		      /* 1: no MX records, the domain itself (RFC 5321 5.1) */
	int literal;		      /* 1: an address literal, no DNS asked */
	int cached;		      /* 1: answered from the cache */
	const char *error;	      /* static text for the log, NULL when MX_OK */
	size_t nhosts;
	struct mx_host hosts[MX_HOSTS_MAX]; /* by preference; equal ones shuffled */
};

struct mx_config {
	/* DNS servers: "ADDR", "ADDR:PORT" or "[IPV6]:PORT"; none (NULL or
	 * nservers 0) means /etc/resolv.conf.  Copied. */
	const char *const *servers;
	size_t nservers;
	unsigned timeout_ms; /* per try; 0 = 5000 */
	unsigned tries;	     /* per server; 0 = 2 */
};

/* mx_cb - the result of one mx_resolve.  RES belongs to the callee.  Never
 * called from inside mx_resolve, always from the loop. */
typedef void (*mx_cb)(struct mx_result *res, void *arg);

/* mx_resolver_new - a resolver on BASE.  NULL with ERR set when the server
 * list is malformed or c-ares cannot start. */
struct mx_resolver *mx_resolver_new(struct event_base *base, const struct mx_config *cfg, char *err,
				    size_t errlen);

/* mx_resolver_free - cancel every pending lookup (their callbacks are NOT
 * called) and free the cache.  May be called from inside an mx_cb.  Clears
 * *R. */
void mx_resolver_free(struct mx_resolver **r);

/* mx_resolve - route mail for DOMAIN ("example.org", trailing dot allowed,
 * or an address literal).  CB gets the result exactly once, unless the
 * resolver is freed first.  Returns 0, or -1 when out of memory (no
 * callback). */
int mx_resolve(struct mx_resolver *r, const char *domain, mx_cb cb, void *arg);

/* mx_resolve_host - the addresses of one host NAME (A and AAAA; an IPv4 or
 * IPv6 literal without brackets is answered without DNS), as a result
 * with one host (hosts[0].name the name asked, lower case) or none: MX_OK,
 * MX_NOHOSTS (no such name, or no address), MX_NXDOMAIN (not a host name),
 * MX_TEMPFAIL.  Not cached: each call asks the servers (the caller checks
 * what it connects to, and wants what the name says now).  CB as for
 * mx_resolve; returns 0, or -1 when out of memory (no callback). */
int mx_resolve_host(struct mx_resolver *r, const char *name, mx_cb cb, void *arg);

/* mx_result_free - free RES and clear *RES. */
void mx_result_free(struct mx_result **res);

/* mx_status_name - "ok", "null-mx", "nxdomain", "tempfail", "no-hosts". */
const char *mx_status_name(enum mx_status st);

#endif
