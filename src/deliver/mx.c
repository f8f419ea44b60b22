/* mx.c - asynchronous MX routing with c-ares on a libevent loop (see mx.h;
 * RFC 5321 5.1, RFC 7505, RFC 5321 4.1.3). */
#include "deliver/mx.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <ares.h>
#include <ctype.h>
#include <event2/event.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define CACHE_WAYS	4  /* slots per hash set; the soonest to expire is replaced */
#define MX_CANDIDATES	64 /* MX records looked at in one answer */
#define SERVER_TEXT_MAX 64 /* one "ADDR:PORT" entry */

/* A c-ares socket and the libevent event that watches it. */
struct mx_sock {
	ares_socket_t fd;
	struct event *ev;
	struct mx_sock *next;
};

struct mx_cache_slot {
	char key[MX_NAME_MAX + 1]; /* lower case, no trailing dot */
	struct mx_result *res;	   /* NULL: empty */
	uint64_t expires;	   /* monotonic milliseconds */
};

struct mx_lookup;

/* One c-ares query of a lookup: the MX query (host -1) or a host's A/AAAA. */
struct mx_query {
	struct mx_lookup *lk;
	int host;
	int type;
};

struct mx_lookup {
	struct mx_resolver *r;
	struct mx_lookup *prev, *next;
	mx_cb cb;
	void *arg;
	struct mx_result *res;
	char key[MX_NAME_MAX + 1];
	int outstanding; /* queries not answered yet */
	int finished;
	int host_only; /* mx_resolve_host: addresses of one name, not cached */
	uint32_t ttl; /* smallest TTL seen */
	int tempfail[MX_HOSTS_MAX];
	struct event *done; /* hands the result over outside c-ares */
	struct mx_query q[1 + 2 * MX_HOSTS_MAX];
};

struct mx_resolver {
	struct event_base *base;
	ares_channel channel;
	struct event *timer;
	struct mx_sock *socks;
	struct mx_lookup *lookups;
	struct mx_cache_slot cache[MX_CACHE_SLOTS];
};

static void start_addr_queries(struct mx_lookup *lk);

const char *mx_status_name(enum mx_status st)
{
	switch (st) {
	case MX_OK:
		return "ok";
	case MX_NULL:
		return "null-mx";
	case MX_NXDOMAIN:
		return "nxdomain";
	case MX_TEMPFAIL:
		return "tempfail";
	case MX_NOHOSTS:
		return "no-hosts";
	}
	return "?";
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* rearm_timer - c-ares's next timeout becomes the loop's timer. */
static void rearm_timer(struct mx_resolver *r)
{
	struct timeval tv, *tvp = ares_timeout(r->channel, NULL, &tv);
	if (tvp)
		evtimer_add(r->timer, tvp);
	else
		evtimer_del(r->timer);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct mx_resolver *r = arg;
	ares_process_fd(r->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	rearm_timer(r);
}

static void on_sock(evutil_socket_t fd, short what, void *arg)
{
	struct mx_resolver *r = arg;
	ares_process_fd(r->channel, (what & EV_READ) ? fd : ARES_SOCKET_BAD,
			(what & EV_WRITE) ? fd : ARES_SOCKET_BAD);
	rearm_timer(r);
}

/* sock_state - c-ares opens, closes or changes interest in a socket. */
static void sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
	struct mx_resolver *r = data;
	struct mx_sock **pp = &r->socks, *s;
	while ((s = *pp) && s->fd != fd)
		pp = &s->next;
	if (!readable && !writable) {
		if (s) {
			*pp = s->next;
			event_free(s->ev);
			free(s);
		}
		return;
	}
	short what = (short)(EV_PERSIST | (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0));
	if (!s) {
		s = calloc(1, sizeof *s);
		if (!s)
			return; /* the query times out through the timer */
		s->fd = fd;
		s->ev = event_new(r->base, fd, what, on_sock, r);
		if (!s->ev) {
			free(s);
			return;
		}
		s->next = r->socks;
		r->socks = s;
	} else {
		event_del(s->ev);
		event_assign(s->ev, r->base, fd, what, on_sock, r);
	}
	event_add(s->ev, NULL);
}

/* set_servers - "ADDR", "ADDR:PORT", "[V6]:PORT" entries joined for
 * ares_set_servers_ports_csv, which does the parsing. */
static int set_servers(struct mx_resolver *r, const struct mx_config *cfg, char *err, size_t errlen)
{
	size_t cap = cfg->nservers * (SERVER_TEXT_MAX + 1) + 1, len = 0;
	char *csv = malloc(cap);
	if (!csv) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < cfg->nservers; i++) {
		const char *s = cfg->servers[i];
		size_t n = s ? strlen(s) : 0;
		if (n == 0 || n > SERVER_TEXT_MAX || strpbrk(s, ", \t")) {
			snprintf(err, errlen, "bad dns server \"%.*s\"", SERVER_TEXT_MAX,
				 s ? s : "");
			free(csv);
			return -1;
		}
		len += (size_t)snprintf(csv + len, cap - len, "%s%s", i ? "," : "", s);
	}
	int st = ares_set_servers_ports_csv(r->channel, csv);
	free(csv);
	if (st != ARES_SUCCESS) {
		snprintf(err, errlen, "bad dns server list: %s", ares_strerror(st));
		return -1;
	}
	return 0;
}

struct mx_resolver *mx_resolver_new(struct event_base *base, const struct mx_config *cfg, char *err,
				    size_t errlen)
{
	struct mx_resolver *r = calloc(1, sizeof *r);
	if (!r) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	r->base = base;
	struct ares_options o;
	memset(&o, 0, sizeof o);
	o.sock_state_cb = sock_state;
	o.sock_state_cb_data = r;
	o.timeout = cfg->timeout_ms ? (int)cfg->timeout_ms : 5000;
	o.tries = cfg->tries ? (int)cfg->tries : 2;
	int st = ares_library_init(ARES_LIB_INIT_ALL);
	if (st == ARES_SUCCESS)
		st = ares_init_options(&r->channel, &o,
				       ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS |
					       ARES_OPT_TRIES);
	if (st != ARES_SUCCESS) {
		snprintf(err, errlen, "c-ares: %s", ares_strerror(st));
		free(r);
		return NULL;
	}
	r->timer = evtimer_new(base, on_timer, r);
	if (!r->timer || (cfg->nservers && set_servers(r, cfg, err, errlen) < 0)) {
		if (!r->timer)
			snprintf(err, errlen, "out of memory");
		mx_resolver_free(&r);
		return NULL;
	}
	return r;
}

static void lookup_free(struct mx_lookup *lk)
{
	if (lk->done)
		event_free(lk->done);
	free(lk->res);
	free(lk);
}

void mx_resolver_free(struct mx_resolver **rp)
{
	struct mx_resolver *r = *rp;
	if (!r)
		return;
	*rp = NULL;
	/* Query callbacks see ARES_EDESTRUCTION and leave their lookup alone;
	 * sock_state drops every socket's event. */
	if (r->channel) {
		ares_destroy(r->channel);
		ares_library_cleanup();
	}
	while (r->lookups) {
		struct mx_lookup *lk = r->lookups;
		r->lookups = lk->next;
		lookup_free(lk);
	}
	while (r->socks) {
		struct mx_sock *s = r->socks;
		r->socks = s->next;
		event_free(s->ev);
		free(s);
	}
	for (size_t i = 0; i < MX_CACHE_SLOTS; i++)
		free(r->cache[i].res);
	if (r->timer)
		event_free(r->timer);
	free(r);
}

void mx_result_free(struct mx_result **res)
{
	free(*res);
	*res = NULL;
}

/* cache_set - first slot of KEY's set (FNV-1a). */
static size_t cache_set(const char *key)
{
	uint32_t h = 2166136261u;
	for (; *key; key++)
		h = (h ^ (unsigned char)*key) * 16777619u;
	return (h % (MX_CACHE_SLOTS / CACHE_WAYS)) * CACHE_WAYS;
}

/* cache_get - the fresh cached result for KEY, or NULL. */
static const struct mx_result *cache_get(struct mx_resolver *r, const char *key)
{
	size_t set = cache_set(key);
	uint64_t now = now_ms();
	for (size_t i = set; i < set + CACHE_WAYS; i++) {
		struct mx_cache_slot *s = &r->cache[i];
		if (!s->res || strcmp(s->key, key))
			continue;
		if (s->expires > now)
			return s->res;
		free(s->res);
		s->res = NULL;
	}
	return NULL;
}

/* cache_put - keep a copy of RES for TTL seconds, in KEY's slot, an empty
 * one, or the one closest to expiry. */
static void cache_put(struct mx_resolver *r, const char *key, const struct mx_result *res,
		      uint32_t ttl)
{
	if (ttl == 0)
		return;
	if (ttl > MX_CACHE_TTL_MAX)
		ttl = MX_CACHE_TTL_MAX;
	size_t set = cache_set(key);
	struct mx_cache_slot *victim = NULL;
	for (size_t i = set; i < set + CACHE_WAYS; i++) {
		struct mx_cache_slot *s = &r->cache[i];
		if (s->res && !strcmp(s->key, key)) {
			victim = s;
			break;
		}
		if (!victim || (victim->res && (!s->res || s->expires < victim->expires)))
			victim = s;
	}
	struct mx_result *copy = victim ? malloc(sizeof *copy) : NULL;
	if (!copy)
		return;
	*copy = *res;
	free(victim->res);
	victim->res = copy;
	snprintf(victim->key, sizeof victim->key, "%s", key);
	victim->expires = now_ms() + (uint64_t)ttl * 1000;
}

/* skip_name - past one (possibly compressed) DNS name, or NULL. */
static const unsigned char *skip_name(const unsigned char *p, const unsigned char *end)
{
	while (p < end) {
		if (*p == 0)
			return p + 1;
		if ((*p & 0xc0) == 0xc0)
			return p + 2 <= end ? p + 2 : NULL;
		if (*p & 0xc0)
			return NULL;
		p += 1 + *p;
	}
	return NULL;
}

/* answer_min_ttl - the smallest TTL of the answer records of TYPE; 0 (do not
 * cache) when the message is malformed.  ares_parse_mx_reply drops TTLs. */
static uint32_t answer_min_ttl(const unsigned char *abuf, int alen, int type)
{
	const unsigned char *p = abuf + 12, *end = abuf + alen;
	if (alen < 12)
		return 0;
	unsigned qd = (unsigned)(abuf[4] << 8 | abuf[5]), an = (unsigned)(abuf[6] << 8 | abuf[7]);
	uint32_t min = UINT32_MAX;
	for (unsigned i = 0; i < qd; i++) {
		p = skip_name(p, end);
		if (!p || end - p < 4)
			return 0;
		p += 4;
	}
	for (unsigned i = 0; i < an; i++) {
		p = skip_name(p, end);
		if (!p || end - p < 10)
			return 0;
		int rtype = p[0] << 8 | p[1];
		uint32_t ttl =
			(uint32_t)p[4] << 24 | (uint32_t)p[5] << 16 | (uint32_t)p[6] << 8 | p[7];
		size_t rdlen = (size_t)(p[8] << 8 | p[9]);
		p += 10;
		if ((size_t)(end - p) < rdlen)
			return 0;
		p += rdlen;
		if (rtype == type && ttl < min)
			min = ttl;
	}
	return min == UINT32_MAX ? 0 : min;
}

static void note_ttl(struct mx_lookup *lk, uint32_t ttl)
{
	if (ttl < lk->ttl)
		lk->ttl = ttl;
}

/* shuffle_equal - RFC 5321 5.1: random order among equal preferences. */
static void shuffle_equal(struct mx_result *res)
{
	size_t i = 0;
	while (i < res->nhosts) {
		size_t j = i + 1;
		while (j < res->nhosts && res->hosts[j].preference == res->hosts[i].preference)
			j++;
		for (size_t k = j - 1; k > i; k--) {
			size_t m = i + arc4random_uniform((uint32_t)(k - i + 1));
			struct mx_host t = res->hosts[k];
			res->hosts[k] = res->hosts[m];
			res->hosts[m] = t;
		}
		i = j;
	}
}

static void on_done(evutil_socket_t fd, short what, void *arg)
{
	struct mx_lookup *lk = arg;
	struct mx_resolver *r = lk->r;
	if (lk->prev)
		lk->prev->next = lk->next;
	else
		r->lookups = lk->next;
	if (lk->next)
		lk->next->prev = lk->prev;
	mx_cb cb = lk->cb;
	void *cbarg = lk->arg;
	struct mx_result *res = lk->res;
	lk->res = NULL;
	lookup_free(lk);
	cb(res, cbarg); /* last: the callee may free the resolver */
}

/* finish - the result is complete: cache it and hand it over from the loop
 * (never from inside c-ares or mx_resolve). */
static void finish(struct mx_lookup *lk, enum mx_status st, const char *error)
{
	struct mx_result *res = lk->res;
	if (lk->finished)
		return;
	lk->finished = 1;
	res->status = st;
	res->error = st == MX_OK ? NULL : error;
	if (st != MX_OK)
		res->nhosts = 0;
	/* The cache holds mail routes; a host lookup is not one. */
	if ((st == MX_OK || st == MX_NULL) && !res->literal && !res->cached && !lk->host_only)
		cache_put(lk->r, lk->key, res, lk->ttl);
	shuffle_equal(res);
	static const struct timeval now = {0, 0};
	evtimer_add(lk->done, &now);
}

/* finish_hosts - every address query is answered: keep the hosts that have
 * addresses, IPv4 first within each host. */
static void finish_hosts(struct mx_lookup *lk)
{
	struct mx_result *res = lk->res;
	size_t kept = 0;
	int tempfail = 0;
	for (size_t i = 0; i < res->nhosts; i++) {
		struct mx_host *h = &res->hosts[i];
		if (h->naddrs == 0) {
			tempfail |= lk->tempfail[i];
			continue;
		}
		/* Stable partition: A answers may have come after AAAA. */
		struct mx_addr sorted[2 * MX_ADDRS_PER_FAMILY];
		size_t n = 0;
		for (int pass = 0; pass < 2; pass++)
			for (size_t a = 0; a < h->naddrs; a++)
				if ((h->addrs[a].u.sa.sa_family == AF_INET) == (pass == 0))
					sorted[n++] = h->addrs[a];
		memcpy(h->addrs, sorted, n * sizeof sorted[0]);
		if (lk->tempfail[i])
			lk->ttl = 0; /* a partial answer is not worth remembering */
		if (kept != i)
			res->hosts[kept] = *h;
		kept++;
	}
	res->nhosts = kept;
	if (kept)
		finish(lk, MX_OK, NULL);
	else if (tempfail)
		finish(lk, MX_TEMPFAIL,
		       lk->host_only ? "the address lookup failed temporarily"
				     : "address lookup of every MX host failed temporarily");
	else
		finish(lk, MX_NOHOSTS,
		       lk->host_only ? "the name has no address" : "no MX host has an address");
}

static void add_addr(struct mx_host *h, int family, const void *addr)
{
	size_t same = 0;
	for (size_t i = 0; i < h->naddrs; i++)
		same += h->addrs[i].u.sa.sa_family == family;
	if (same >= MX_ADDRS_PER_FAMILY || h->naddrs >= 2 * MX_ADDRS_PER_FAMILY)
		return;
	struct mx_addr *a = &h->addrs[h->naddrs++];
	memset(a, 0, sizeof *a);
	if (family == AF_INET) {
		a->u.sin.sin_family = AF_INET;
		memcpy(&a->u.sin.sin_addr, addr, sizeof a->u.sin.sin_addr);
		a->len = sizeof a->u.sin;
	} else {
		a->u.sin6.sin6_family = AF_INET6;
		memcpy(&a->u.sin6.sin6_addr, addr, sizeof a->u.sin6.sin6_addr);
		a->len = sizeof a->u.sin6;
	}
}

/* parse_addrs - A or AAAA answer for host H.  Returns an ares status. */
static int parse_addrs(struct mx_lookup *lk, struct mx_host *h, int type, const unsigned char *abuf,
		       int alen)
{
	int n = MX_ADDRS_PER_FAMILY, st;
	if (type == ns_t_a) {
		struct ares_addrttl t[MX_ADDRS_PER_FAMILY];
		st = ares_parse_a_reply(abuf, alen, NULL, t, &n);
		for (int i = 0; st == ARES_SUCCESS && i < n; i++) {
			add_addr(h, AF_INET, &t[i].ipaddr);
			note_ttl(lk, t[i].ttl > 0 ? (uint32_t)t[i].ttl : 0);
		}
	} else {
		struct ares_addr6ttl t[MX_ADDRS_PER_FAMILY];
		st = ares_parse_aaaa_reply(abuf, alen, NULL, t, &n);
		for (int i = 0; st == ARES_SUCCESS && i < n; i++) {
			add_addr(h, AF_INET6, &t[i].ip6addr);
			note_ttl(lk, t[i].ttl > 0 ? (uint32_t)t[i].ttl : 0);
		}
	}
	return st;
}

static void on_addr(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct mx_query *q = arg;
	struct mx_lookup *lk = q->lk;
	if (status == ARES_EDESTRUCTION || status == ARES_ECANCELLED)
		return;
	if (status == ARES_SUCCESS)
		status = parse_addrs(lk, &lk->res->hosts[q->host], q->type, abuf, alen);
	/* NXDOMAIN or no record: this family has no address, for good. */
	if (status != ARES_SUCCESS && status != ARES_ENODATA && status != ARES_ENOTFOUND)
		lk->tempfail[q->host] = 1;
	if (--lk->outstanding == 0)
		finish_hosts(lk);
}

/* add_mx - insert (PREF, NAME) into the sorted, bounded host list. */
static void add_mx(struct mx_result *res, unsigned pref, const char *name)
{
	size_t n = res->nhosts, pos = n;
	while (pos > 0 && res->hosts[pos - 1].preference > pref)
		pos--;
	if (pos >= MX_HOSTS_MAX)
		return;
	if (n == MX_HOSTS_MAX)
		n--; /* the worst one falls off */
	memmove(&res->hosts[pos + 1], &res->hosts[pos], (n - pos) * sizeof res->hosts[0]);
	struct mx_host *h = &res->hosts[pos];
	memset(h, 0, sizeof *h);
	snprintf(h->name, sizeof h->name, "%s", name);
	h->preference = pref;
	res->nhosts = n + 1;
}

/* parse_mx - fill the host list from an MX answer. */
static void parse_mx(struct mx_lookup *lk, const unsigned char *abuf, int alen)
{
	struct ares_mx_reply *mx = NULL;
	int st = ares_parse_mx_reply(abuf, alen, &mx);
	if (st == ARES_ENODATA) {
		/* e.g. only a CNAME to a name without MX: implicit MX */
		lk->res->implicit = 1;
		add_mx(lk->res, 0, lk->res->domain);
		start_addr_queries(lk);
		return;
	}
	if (st != ARES_SUCCESS) {
		finish(lk, MX_TEMPFAIL, "malformed MX answer");
		return;
	}
	int nulls = 0, seen = 0;
	for (struct ares_mx_reply *m = mx; m && seen < MX_CANDIDATES; m = m->next, seen++) {
		/* RFC 7505 3: "." is no host; with other records it is ignored. */
		if (!m->host[0] || !strcmp(m->host, ".")) {
			nulls++;
			continue;
		}
		if (strlen(m->host) <= MX_NAME_MAX)
			add_mx(lk->res, m->priority, m->host);
	}
	ares_free_data(mx);
	note_ttl(lk, answer_min_ttl(abuf, alen, ns_t_mx));
	if (lk->res->nhosts == 0 && nulls)
		finish(lk, MX_NULL, "null MX: the domain accepts no mail (RFC 7505)");
	else if (lk->res->nhosts == 0)
		finish(lk, MX_NOHOSTS, "no usable MX host");
	else
		start_addr_queries(lk);
}

static void on_mx(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct mx_query *q = arg;
	struct mx_lookup *lk = q->lk;
	if (status == ARES_EDESTRUCTION || status == ARES_ECANCELLED)
		return;
	lk->outstanding--;
	if (status == ARES_SUCCESS) {
		parse_mx(lk, abuf, alen);
	} else if (status == ARES_ENODATA) {
		lk->res->implicit = 1;
		add_mx(lk->res, 0, lk->res->domain);
		start_addr_queries(lk);
	} else if (status == ARES_ENOTFOUND) {
		finish(lk, MX_NXDOMAIN, "domain does not exist");
	} else {
		finish(lk, MX_TEMPFAIL, ares_strerror(status));
	}
}

/* start_addr_queries - ask A and AAAA for every host.  A query may answer
 * before ares_query returns (c-ares calls back at once on some errors), so
 * an extra count keeps the lookup open until every query is started. */
static void start_addr_queries(struct mx_lookup *lk)
{
	lk->outstanding++;
	for (size_t i = 0; i < lk->res->nhosts; i++) {
		for (int f = 0; f < 2; f++) {
			struct mx_query *q = &lk->q[1 + 2 * i + (size_t)f];
			q->lk = lk;
			q->host = (int)i;
			q->type = f == 0 ? ns_t_a : ns_t_aaaa;
			lk->outstanding++;
			ares_query(lk->r->channel, lk->res->hosts[i].name, ns_c_in, q->type,
				   on_addr, q);
		}
	}
	if (--lk->outstanding == 0)
		finish_hosts(lk);
}

/* parse_literal - "[192.0.2.1]" or "[IPv6:2001:db8::1]" (RFC 5321 4.1.3). */
static int parse_literal(const char *domain, struct mx_host *h)
{
	size_t len = strlen(domain);
	char inner[64];
	if (len < 3 || domain[len - 1] != ']' || len - 2 >= sizeof inner)
		return -1;
	memcpy(inner, domain + 1, len - 2);
	inner[len - 2] = '\0';
	unsigned char addr[16];
	if (!strncasecmp(inner, "IPv6:", 5) && inet_pton(AF_INET6, inner + 5, addr) == 1)
		add_addr(h, AF_INET6, addr);
	else if (inet_pton(AF_INET, inner, addr) == 1)
		add_addr(h, AF_INET, addr);
	else
		return -1;
	snprintf(h->name, sizeof h->name, "%s", domain);
	return 0;
}

/* domain_key - lower-case DOMAIN without a trailing dot into KEY; -1 when it
 * cannot be a DNS host name (RFC 1035 2.3.4 lengths; letters, digits, '-'
 * and '_' only: no IDNA here, a UTF-8 domain is not a DNS name). */
static int domain_key(const char *domain, char *key, size_t keylen)
{
	size_t len = strlen(domain), label = 0;
	if (len && domain[len - 1] == '.')
		len--;
	if (len == 0 || len > 253 || len >= keylen)
		return -1;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)domain[i];
		if (c == '.') {
			if (label == 0)
				return -1;
			label = 0;
		} else if (isalnum(c) || c == '-' || c == '_') {
			if (++label > 63)
				return -1;
		} else {
			return -1;
		}
		key[i] = (char)tolower(c);
	}
	key[len] = '\0';
	return label ? 0 : -1;
}

/* lookup_new - a lookup of NAME linked into R, its result empty; NULL
 * when out of memory. */
static struct mx_lookup *lookup_new(struct mx_resolver *r, const char *name, mx_cb cb, void *arg)
{
	struct mx_lookup *lk = calloc(1, sizeof *lk);
	if (!lk)
		return NULL;
	lk->res = calloc(1, sizeof *lk->res);
	lk->done = evtimer_new(r->base, on_done, lk);
	if (!lk->res || !lk->done) {
		lookup_free(lk);
		return NULL;
	}
	lk->r = r;
	lk->cb = cb;
	lk->arg = arg;
	lk->ttl = UINT32_MAX;
	lk->next = r->lookups;
	if (r->lookups)
		r->lookups->prev = lk;
	r->lookups = lk;
	snprintf(lk->res->domain, sizeof lk->res->domain, "%s", name);
	return lk;
}

int mx_resolve(struct mx_resolver *r, const char *domain, mx_cb cb, void *arg)
{
	struct mx_lookup *lk = lookup_new(r, domain, cb, arg);
	if (!lk)
		return -1;
	struct mx_result *res = lk->res;
	if (domain[0] == '[') {
		res->literal = 1;
		res->nhosts = 1;
		if (parse_literal(domain, &res->hosts[0]) < 0)
			finish(lk, MX_NXDOMAIN, "malformed address literal");
		else
			finish(lk, MX_OK, NULL);
		return 0;
	}
	if (domain_key(domain, lk->key, sizeof lk->key) < 0) {
		finish(lk, MX_NXDOMAIN, "not a DNS domain name");
		return 0;
	}
	const struct mx_result *hit = cache_get(r, lk->key);
	if (hit) {
		*res = *hit;
		snprintf(res->domain, sizeof res->domain, "%s", domain);
		res->cached = 1;
		finish(lk, hit->status, hit->error);
		return 0;
	}
	lk->q[0].lk = lk;
	lk->q[0].host = -1;
	lk->q[0].type = ns_t_mx;
	lk->outstanding = 1;
	ares_query(r->channel, lk->key, ns_c_in, ns_t_mx, on_mx, &lk->q[0]);
	rearm_timer(r);
	return 0;
}

/* mx_resolve_host - a lookup with one host: a literal at once, else A
 * and AAAA (see mx.h). */
int mx_resolve_host(struct mx_resolver *r, const char *name, mx_cb cb, void *arg)
{
	struct mx_lookup *lk = lookup_new(r, name, cb, arg);
	if (!lk)
		return -1;
	struct mx_result *res = lk->res;
	struct mx_host *h = &res->hosts[0];
	unsigned char addr[16];
	lk->host_only = 1;
	res->nhosts = 1;
	snprintf(h->name, sizeof h->name, "%s", name);
	if (inet_pton(AF_INET, name, addr) == 1 || inet_pton(AF_INET6, name, addr) == 1) {
		res->literal = 1;
		add_addr(h, strchr(name, ':') ? AF_INET6 : AF_INET, addr);
		finish(lk, MX_OK, NULL);
		return 0;
	}
	if (domain_key(name, lk->key, sizeof lk->key) < 0) {
		finish(lk, MX_NXDOMAIN, "not a DNS host name");
		return 0;
	}
	snprintf(h->name, sizeof h->name, "%s", lk->key);
	start_addr_queries(lk);
	rearm_timer(r);
	return 0;
}
