/* directory.c - immutable snapshots of the accounts for the event loop
 * (see directory.h).
 *
 * Local parts are compared without regard to case: RFC 5321 2.4 leaves
 * their interpretation to the host that owns the domain, and mail users
 * expect Bob@ and bob@ to be one mailbox.  "user+tag" is the subaddress
 * convention (RFC 5233 names it): the tag is dropped when no account has
 * the whole local part.
 *
 * A snapshot is three sorted arrays (domains, users, aliases) searched
 * with bsearch; every key is lower case, so a lookup lower-cases the
 * query once and compares bytes.  Nothing in a snapshot changes after
 * directory_load returns, so any number of threads may read it; only the
 * reference count is shared state, and it is atomic.
 *
 * Resolution is a depth-first walk of the alias graph.  The aliases on the
 * current path form the loop guard; DIR_DEPTH_MAX bounds the path and
 * DIR_EXPANSIONS_MAX the whole walk, so a wide alias graph with shared
 * branches cannot make one RCPT cost more than a bounded amount of work. */
#include "store/directory.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <errno.h>
#include <unistd.h>
#include <string.h>

#include "store/store.h"

#define DIR_DEPTH_MAX 10 /* aliases on one expansion path */
#define DIR_EXPANSIONS_MAX 1000 /* aliases expanded by one resolution */
#define DIR_ADDR_MAX 320 /* an address and its NUL, as in struct dir_target */
_Static_assert(sizeof((struct dir_target *)0)->address == DIR_ADDR_MAX,
	       "DIR_ADDR_MAX must match struct dir_target");

struct dir_alias {
	char *address;
	char **targets; /* pointers into list */
	size_t ntargets;
	char *list; /* the targets, NUL-separated */
};

struct directory {
	atomic_int refs;
	int64_t version;
	char **domains;
	size_t ndomains;
	struct dir_user *users; /* the strings are owned here (malloc'ed) */
	size_t nusers;
	struct dir_alias *aliases;
	size_t naliases;
	/* While loading: capacities, and an allocation failure in a store
	 * callback (which only stops the store's walk). */
	size_t domains_cap, users_cap, aliases_cap;
	int oom;
};

static void lower(char *s)
{
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

/* grow - ARR (N elements of SIZE bytes, room for *CAP) with room for one
 * more: ARR itself or its reallocation, NULL when out of memory (ARR is
 * then left as it was). */
static void *grow(void *arr, size_t *cap, size_t n, size_t size)
{
	if (n < *cap)
		return arr;
	size_t ncap = *cap ? *cap * 2 : 16;
	void *q = realloc(arr, ncap * size);
	if (q)
		*cap = ncap;
	return q;
}

/* dup_lower - a malloc'ed lower-case copy of S (NULL stays NULL). */
static char *dup_lower(const char *s)
{
	char *d = strdup(s);
	if (d)
		lower(d);
	return d;
}

static void free_contents(struct directory *d)
{
	for (size_t i = 0; i < d->ndomains; i++)
		free(d->domains[i]);
	for (size_t i = 0; i < d->nusers; i++) {
		free((char *)d->users[i].address);
		free((char *)d->users[i].password_hash);
		free((char *)d->users[i].source_ip);
	}
	for (size_t i = 0; i < d->naliases; i++) {
		free(d->aliases[i].address);
		free(d->aliases[i].targets);
		free(d->aliases[i].list);
	}
	free(d->domains);
	free(d->users);
	free(d->aliases);
	d->domains = NULL;
	d->users = NULL;
	d->aliases = NULL;
	d->ndomains = d->nusers = d->naliases = 0;
	d->domains_cap = d->users_cap = d->aliases_cap = 0;
	d->oom = 0;
}

static int add_domain(void *ctx, const char *domain)
{
	struct directory *d = ctx;
	char **arr = grow(d->domains, &d->domains_cap, d->ndomains, sizeof *d->domains);
	char *s = arr ? dup_lower(domain) : NULL;
	if (arr)
		d->domains = arr;
	if (!s)
		return d->oom = -1;
	d->domains[d->ndomains++] = s;
	return 0;
}

static int add_user(void *ctx, const struct store_user *su)
{
	struct directory *d = ctx;
	struct dir_user *arr = grow(d->users, &d->users_cap, d->nusers, sizeof *d->users);
	if (!arr)
		return d->oom = -1;
	d->users = arr;
	struct dir_user u = {
		.address = dup_lower(su->address),
		.password_hash = strdup(su->password_hash ? su->password_hash : ""),
		.quota_day = su->quota_day,
		.quota_month = su->quota_month,
		.source_ip = su->source_ip ? strdup(su->source_ip) : NULL,
		.rate_minute = su->rate_minute,
	};
	if (!u.address || !u.password_hash || (su->source_ip && !u.source_ip)) {
		free((char *)u.address);
		free((char *)u.password_hash);
		free((char *)u.source_ip);
		return d->oom = -1;
	}
	d->users[d->nusers++] = u;
	return 0;
}

/* split_targets - A's list ("a@x,b@y") cut at the commas into targets[].
 * Only commas: a quoted local part ("john doe"@x) may hold a space. */
static int split_targets(struct dir_alias *a)
{
	size_t n = 1;
	for (const char *p = a->list; *p; p++)
		n += *p == ',';
	if (!(a->targets = calloc(n, sizeof *a->targets)))
		return -1;
	char *save = NULL;
	for (char *t = strtok_r(a->list, ",", &save); t; t = strtok_r(NULL, ",", &save))
		a->targets[a->ntargets++] = t;
	return 0;
}

static int add_alias(void *ctx, const char *address, const char *targets)
{
	struct directory *d = ctx;
	struct dir_alias *arr = grow(d->aliases, &d->aliases_cap, d->naliases, sizeof *d->aliases);
	if (!arr)
		return d->oom = -1;
	d->aliases = arr;
	struct dir_alias a = { .address = dup_lower(address), .list = dup_lower(targets) };
	if (!a.address || !a.list || split_targets(&a) < 0) {
		free(a.address);
		free(a.list);
		free(a.targets);
		return d->oom = -1;
	}
	d->aliases[d->naliases++] = a;
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmp_user(const void *a, const void *b)
{
	return strcmp(((const struct dir_user *)a)->address, ((const struct dir_user *)b)->address);
}

static int cmp_alias(const void *a, const void *b)
{
	return strcmp(((const struct dir_alias *)a)->address,
		      ((const struct dir_alias *)b)->address);
}

/* read_all - one pass over the store into D.  The store walks each table
 * in its own read, so the version is read before and after: equal numbers
 * mean no write committed in between and the three tables agree. */
static int read_all(struct store *st, struct directory *d, int *stable, char *err,
		    size_t errlen)
{
	int64_t after;
	if (store_version(st, &d->version, err, errlen) < 0)
		return -1;
	if (store_domain_each(st, add_domain, d, err, errlen) < 0 ||
	    store_user_each(st, add_user, d, err, errlen) < 0 ||
	    store_alias_each(st, add_alias, d, err, errlen) < 0 ||
	    store_version(st, &after, err, errlen) < 0)
		return -1;
	if (d->oom) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	*stable = after == d->version;
	return 0;
}

struct directory *directory_load(const char *db_path, char *err, size_t errlen)
{
	struct directory *d = directory_empty();
	if (!d) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	/* A reload never creates the database (store_open would): with the
	 * file gone the reload fails and the snapshot in use is kept. */
	if (access(db_path, F_OK) < 0) {
		snprintf(err, errlen, "%s: %s", db_path, strerror(errno));
		directory_unref(&d);
		return NULL;
	}
	struct store *st = store_open(db_path, err, errlen);
	int stable = 0;
	for (int tries = 0; st && !stable && tries < 5; tries++) {
		free_contents(d);
		err[0] = '\0';
		if (read_all(st, d, &stable, err, errlen) < 0)
			break;
	}
	store_close(&st);
	if (!stable) {
		if (!err[0])
			snprintf(err, errlen, "accounts kept changing while being read");
		directory_unref(&d);
		return NULL;
	}
	/* qsort's array may not be NULL, even when empty. */
	if (d->ndomains)
		qsort(d->domains, d->ndomains, sizeof *d->domains, cmp_str);
	if (d->nusers)
		qsort(d->users, d->nusers, sizeof *d->users, cmp_user);
	if (d->naliases)
		qsort(d->aliases, d->naliases, sizeof *d->aliases, cmp_alias);
	return d;
}

struct directory *directory_empty(void)
{
	struct directory *d = calloc(1, sizeof *d);
	if (d)
		atomic_init(&d->refs, 1);
	return d;
}

struct directory *directory_ref(struct directory *d)
{
	if (d)
		atomic_fetch_add_explicit(&d->refs, 1, memory_order_relaxed);
	return d;
}

void directory_unref(struct directory **pd)
{
	struct directory *d = *pd;
	if (!d)
		return;
	*pd = NULL;
	/* acq_rel: the last owner must see every other owner's reads done
	 * before it frees. */
	if (atomic_fetch_sub_explicit(&d->refs, 1, memory_order_acq_rel) != 1)
		return;
	free_contents(d);
	free(d);
}

int64_t directory_version(const struct directory *d)
{
	return d ? d->version : 0;
}

static int has_domain(const struct directory *d, const char *domain)
{
	return d->ndomains &&
	       bsearch(&domain, d->domains, d->ndomains, sizeof *d->domains, cmp_str) != NULL;
}

static const struct dir_user *find_user(const struct directory *d, const char *address)
{
	struct dir_user key = { .address = address };
	if (!d->nusers)
		return NULL;
	return bsearch(&key, d->users, d->nusers, sizeof *d->users, cmp_user);
}

static const struct dir_alias *find_alias(const struct directory *d, const char *address)
{
	struct dir_alias key = { .address = (char *)address };
	if (!d->naliases)
		return NULL;
	return bsearch(&key, d->aliases, d->naliases, sizeof *d->aliases, cmp_alias);
}

/* copy_lower - S lower-cased into OUT (DIR_ADDR_MAX); 0, or -1 if too long. */
static int copy_lower(const char *s, char *out)
{
	size_t len = strlen(s);
	if (len >= DIR_ADDR_MAX)
		return -1;
	memcpy(out, s, len + 1);
	lower(out);
	return 0;
}

int directory_is_local_domain(const struct directory *d, const char *domain)
{
	char key[DIR_ADDR_MAX];
	if (!d || !domain || copy_lower(domain, key) < 0)
		return 0;
	return has_domain(d, key);
}

/* find - the user or alias named by ADDR (lower case): the exact address,
 * else the address with its +tag removed.  Returns 0 when neither exists. */
static int find(const struct directory *d, const char *addr, const struct dir_user **u,
		const struct dir_alias **a)
{
	*u = find_user(d, addr);
	*a = *u ? NULL : find_alias(d, addr);
	if (*u || *a)
		return 1;
	const char *at = strrchr(addr, '@'), *plus = strchr(addr, '+');
	if (!at || !plus || plus > at)
		return 0;
	char base[DIR_ADDR_MAX];
	size_t keep = (size_t)(plus - addr);
	memcpy(base, addr, keep);
	memcpy(base + keep, at, strlen(at) + 1);
	*u = find_user(d, base);
	*a = *u ? NULL : find_alias(d, base);
	return *u || *a;
}

/* One resolution's state: where the targets go and the loop guard. */
struct walk {
	const struct directory *d;
	struct dir_target *out;
	size_t max, n;
	size_t delivered; /* destinations found, counting those beyond MAX */
	const struct dir_alias *path[DIR_DEPTH_MAX];
	size_t depth;
	unsigned expansions;
	int loop;
	const char *want; /* directory_owns: the user sought, or NULL */
	int wanted; /* ... and it was found */
};

/* emit - one destination, unless it is already in the output. */
static void emit(struct walk *w, const char *addr, int local)
{
	w->delivered++;
	if (w->want && local && strcmp(addr, w->want) == 0)
		w->wanted = 1;
	for (size_t i = 0; i < w->n; i++)
		if (w->out[i].local == local && strcmp(w->out[i].address, addr) == 0)
			return;
	if (w->n < w->max) {
		snprintf(w->out[w->n].address, sizeof w->out[w->n].address, "%s", addr);
		w->out[w->n].local = local;
		w->n++;
	}
}

/* expand - the destinations of ADDR (lower case).  A remote address is
 * one destination; a local one is a user, an alias to walk into, or
 * nothing (an unknown local target is skipped: the caller decides by
 * whether anything at all was delivered). */
static void expand(struct walk *w, const char *addr)
{
	const char *at = strrchr(addr, '@');
	if (w->loop)
		return;
	if (!at || !has_domain(w->d, at + 1)) {
		emit(w, addr, 0);
		return;
	}
	const struct dir_user *u;
	const struct dir_alias *a;
	if (!find(w->d, addr, &u, &a))
		return;
	if (u) {
		emit(w, u->address, 1);
		return;
	}
	for (size_t i = 0; i < w->depth; i++)
		if (w->path[i] == a) {
			w->loop = 1;
			return;
		}
	if (w->depth == DIR_DEPTH_MAX || ++w->expansions > DIR_EXPANSIONS_MAX) {
		w->loop = 1;
		return;
	}
	w->path[w->depth++] = a;
	for (size_t i = 0; i < a->ntargets && !w->loop; i++)
		expand(w, a->targets[i]);
	w->depth--;
}

/* walk_top - resolve ADDRESS as directory_resolve does, into W. */
static enum dir_result walk_top(struct walk *w, const char *address)
{
	char addr[DIR_ADDR_MAX];
	if (!w->d || !address || copy_lower(address, addr) < 0)
		return DIR_UNKNOWN;
	const char *at = strrchr(addr, '@');
	if (!at)
		return DIR_UNKNOWN;
	if (!has_domain(w->d, at + 1))
		return DIR_NOT_LOCAL;
	expand(w, addr);
	if (w->loop)
		return DIR_LOOP;
	return w->delivered ? DIR_OK : DIR_UNKNOWN;
}

enum dir_result directory_resolve(const struct directory *d, const char *address,
				  struct dir_target *out, size_t max, size_t *n)
{
	struct walk w = { .d = d, .out = out, .max = max };
	enum dir_result r = walk_top(&w, address);
	*n = r == DIR_OK ? w.n : 0;
	return r;
}

const struct dir_user *directory_user(const struct directory *d, const char *address)
{
	char addr[DIR_ADDR_MAX];
	const struct dir_user *u;
	const struct dir_alias *a;
	if (!d || !address || copy_lower(address, addr) < 0 || !find(d, addr, &u, &a))
		return NULL;
	return u;
}

int directory_owns(const struct directory *d, const char *user, const char *address)
{
	char want[DIR_ADDR_MAX];
	if (!d || !user || !address || copy_lower(user, want) < 0 || !find_user(d, want))
		return 0;
	/* Its own address, a +tag of it, or an alias reaching it: all are
	 * exactly the addresses whose resolution delivers to USER. */
	struct walk w = { .d = d, .want = want };
	return walk_top(&w, address) == DIR_OK && w.wanted;
}
