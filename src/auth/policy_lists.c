/* policy_lists.c - per-user suppression lists (see policy.h).
 *
 * Entries live in a hash table keyed by (user, address); users compare
 * ASCII case-insensitively, addresses are kept in the one lower-case form
 * address_format gives, so the key and the store agree.
 *
 * Changes are written by a worker on the policy's one store connection.
 * Jobs are serialised: the changes made while one job runs go together in
 * the next, so the store sees them in the order they were made (an add
 * then a delete of one address ends deleted) and the connection is only
 * ever used by one thread at a time. */
#include "auth/policy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/policy_private.h"
#include "core/address.h"
#include "core/log.h"
#include "core/workers.h"
#include "store/records.h"

/* A reason is for a person to read; longer ones are cut. */
#define REASON_MAX 1024
/* The lists are data, not a cache, but still bounded: beyond this many
 * entries an addition is refused as if memory ran out. */
#define SUPPRESSION_MAX 5000000
/* Room for any mailbox address_format writes. */
#define NORM_MAX (ADDR_LOCAL_MAX + 3 + 1 + ADDR_DOMAIN_MAX + 1)

struct supp {
	struct ptab_node node;
	char *user, *address, *reason;
	int64_t created;
	int dead;	    /* removed during a walk, which skips it */
	struct supp *grave; /* next in the graveyard */
};

/* One change to write; the strings are owned copies. */
struct sup_op {
	struct sup_op *next;
	int del;
	struct suppression s;
	policy_done_cb done;
	void *arg;
	int rc;
	char err[256];
};

/* ---- entries ---- */

/* norm_address - ADDRESS in its canonical lower-case form into OUT.
 * Returns 0, or -1 when it is not a mailbox (OUT then holds ADDRESS
 * lower-cased as it is, for looking up entries loaded as they were). */
static int norm_address(const char *address, char *out, size_t outlen)
{
	struct address a;
	const char *why;
	size_t len = strlen(address);
	int rc = -1;
	if (len <= ADDR_PATH_MAX &&
	    address_parse_mailbox(address, len, ADDR_ALLOW_UTF8, &a, &why) == 0 &&
	    address_format(&a, out, outlen) >= 0)
		rc = 0;
	else if (len < outlen)
		memcpy(out, address, len + 1);
	else
		out[0] = '\0'; /* too long to be on any list */
	for (char *c = out; *c; c++)
		if (*c >= 'A' && *c <= 'Z')
			*c = (char)(*c - 'A' + 'a');
	return rc;
}

struct supp_key {
	const char *user, *address;
};

/* supp_hash - the table's hash of (USER, ADDRESS), case folded. */
static uint32_t supp_hash(const char *user, const char *address)
{
	return ptab_hash_ci(address, ptab_hash_ci(user, 0x811c9dc5u) ^ 0xff);
}

/* supp_eq - is N the entry of KEY (a struct supp_key)? */
static int supp_eq(const struct ptab_node *n, const void *key)
{
	const struct supp *s = (const struct supp *)n;
	const struct supp_key *k = key;
	return strcmp(s->address, k->address) == 0 && ptab_casecmp(s->user, k->user) == 0;
}

/* supp_find - the entry of USER and the normalised address, or NULL. */
static struct supp *supp_find(struct policy *p, const char *user, const char *norm)
{
	struct supp_key k = {user, norm};
	return (struct supp *)ptab_find(&p->supp, supp_hash(user, norm), supp_eq, &k);
}

/* supp_free - an entry out of the table (or the graveyard). */
static void supp_free(struct supp *s)
{
	free(s->user);
	free(s->address);
	free(s->reason);
	free(s);
}

/* supp_set - add or replace (USER, NORM) in memory.  0 or -1 (ENOMEM). */
static int supp_set(struct policy *p, const char *user, const char *norm, const char *reason,
		    int64_t created)
{
	char *r = strndup(reason ? reason : "", REASON_MAX);
	if (!r)
		return -1;
	struct supp *s = supp_find(p, user, norm);
	if (s) {
		free(s->reason);
		s->reason = r;
		s->created = created;
		return 0;
	}
	if (p->supp.count >= SUPPRESSION_MAX || !(s = calloc(1, sizeof *s)) ||
	    !(s->user = strdup(user)) || !(s->address = strdup(norm)) ||
	    ptab_insert(&p->supp, &s->node, supp_hash(user, norm)) < 0) {
		if (s) {
			free(s->user);
			free(s->address);
		}
		free(s);
		free(r);
		return -1;
	}
	s->reason = r;
	s->created = created;
	return 0;
}

int policy_suppressed(struct policy *p, const char *user, const char *address)
{
	char norm[NORM_MAX];
	if (!user || !address)
		return 0;
	norm_address(address, norm, sizeof norm);
	return supp_find(p, user, norm) != NULL;
}

/* ---- writing suppression changes ---- */

/* ops_work - on a worker: the job's changes, in order. */
static void ops_work(void *arg)
{
	struct policy *p = arg;
	for (struct sup_op *o = p->in_flight; o; o = o->next) {
		o->err[0] = '\0';
		if (o->del)
			o->rc = records_suppression_del(p->rec, o->s.user, o->s.address, o->err,
							sizeof o->err);
		else
			o->rc = records_suppression_add(p->rec, &o->s, o->err, sizeof o->err);
	}
}

/* op_free - a change that was written, failed, or never left. */
static void op_free(struct sup_op *o)
{
	suppression_clear(&o->s);
	free(o);
}

static void ops_done(void *arg);

/* ops_start - hand every waiting change to a worker, unless one is busy. */
static void ops_start(struct policy *p)
{
	if (p->in_flight || !p->queue_head)
		return;
	p->in_flight = p->queue_head;
	p->queue_head = p->queue_tail = NULL;
	if (workers_submit(p->pool, ops_work, ops_done, p) < 0) {
		/* The pool is stopping: policy_free writes them. */
		p->queue_head = p->in_flight;
		for (p->queue_tail = p->queue_head; p->queue_tail->next;)
			p->queue_tail = p->queue_tail->next;
		p->in_flight = NULL;
	}
}

/* ops_done - on the loop: tell each caller, then start what queued meanwhile. */
static void ops_done(void *arg)
{
	struct policy *p = arg;
	struct sup_op *o = p->in_flight;
	p->in_flight = NULL;
	ops_start(p);
	while (o) {
		struct sup_op *next = o->next;
		if (o->rc < 0)
			log_error("policy: suppression of %s for %s not stored: %s", o->s.address,
				  o->s.user, o->err);
		if (o->done)
			o->done(o->arg, o->rc >= 0);
		op_free(o);
		o = next;
	}
}

/* ops_queue - a change to write after those already waiting.  -1 ENOMEM. */
static int ops_queue(struct policy *p, int del, const struct supp *s, policy_done_cb done,
		     void *arg)
{
	struct sup_op *o = calloc(1, sizeof *o);
	if (!o)
		return -1;
	o->del = del;
	o->done = done;
	o->arg = arg;
	o->s.user = strdup(s->user);
	o->s.address = strdup(s->address);
	o->s.reason = strdup(s->reason ? s->reason : "");
	o->s.created = s->created;
	if (!o->s.user || !o->s.address || !o->s.reason) {
		op_free(o);
		return -1;
	}
	if (p->queue_tail)
		p->queue_tail->next = o;
	else
		p->queue_head = o;
	p->queue_tail = o;
	ops_start(p);
	return 0;
}

int policy_suppress(struct policy *p, const char *user, const char *address, const char *reason,
		    policy_done_cb done, void *arg)
{
	char norm[NORM_MAX];
	if (!user || !address || norm_address(address, norm, sizeof norm) < 0)
		return -1;
	if (supp_set(p, user, norm, reason, (int64_t)time(NULL)) < 0) {
		log_error("policy: out of memory suppressing %s for %s", norm, user);
		return -1;
	}
	if (ops_queue(p, 0, supp_find(p, user, norm), done, arg) < 0) {
		log_error("policy: out of memory storing the suppression of %s for %s", norm, user);
		return -1; /* in memory only, until the next restart */
	}
	return 0;
}

/* supp_remove - out of the table; freed now, or after the walk in progress. */
static void supp_remove(struct policy *p, struct supp *s)
{
	ptab_remove(&p->supp, &s->node);
	if (p->walking) {
		s->dead = 1;
		s->grave = p->graveyard;
		p->graveyard = s;
	} else {
		supp_free(s);
	}
}

int policy_unsuppress(struct policy *p, const char *user, const char *address, policy_done_cb done,
		      void *arg)
{
	char norm[NORM_MAX];
	if (!user || !address)
		return 1;
	norm_address(address, norm, sizeof norm);
	struct supp *s = supp_find(p, user, norm);
	if (!s)
		return 1;
	/* The change is queued first: without memory, nothing changes. */
	if (ops_queue(p, 1, s, done, arg) < 0)
		return -1;
	supp_remove(p, s);
	return 0;
}

/* supp_order - by user, then address (the store's order). */
static int supp_order(const void *a, const void *b)
{
	const struct supp *x = *(struct supp *const *)a, *y = *(struct supp *const *)b;
	int c = strcmp(x->user, y->user);
	return c ? c : strcmp(x->address, y->address);
}

/* collect - USER's entries (NULL: all) into a sorted array; *N of them. */
static struct supp **collect(struct policy *p, const char *user, size_t *n)
{
	*n = 0;
	struct supp **v = malloc((p->supp.count ? p->supp.count : 1) * sizeof(struct supp *));
	if (!v)
		return NULL;
	for (size_t i = 0; i < p->supp.nb; i++)
		for (struct ptab_node *h = p->supp.b[i]; h; h = h->next) {
			struct supp *s = (struct supp *)h;
			if (!user || ptab_casecmp(s->user, user) == 0)
				v[(*n)++] = s;
		}
	qsort(v, *n, sizeof(struct supp *), supp_order);
	return v;
}

void policy_suppression_each(struct policy *p, const char *user, policy_suppression_cb cb,
			     void *ctx)
{
	size_t n;
	struct supp **v = collect(p, user, &n);
	if (!v) {
		log_error("policy: out of memory listing suppressions");
		return;
	}
	/* CB may add or remove entries: a removed one stays allocated
	 * (in the graveyard) until the walk ends, and is skipped. */
	p->walking++;
	for (size_t i = 0; i < n; i++)
		if (!v[i]->dead && cb(ctx, v[i]->user, v[i]->address, v[i]->reason, v[i]->created))
			break;
	if (--p->walking == 0)
		while (p->graveyard) {
			struct supp *g = p->graveyard;
			p->graveyard = g->grave;
			supp_free(g);
		}
	free(v);
}

/* ---- start and end ---- */

struct lists_load {
	struct policy *p;
	int failed; /* out of memory: the walk stopped early */
};

/* load_suppression - one stored entry into the table. */
static int load_suppression(void *arg, const struct suppression *s)
{
	struct lists_load *c = arg;
	char norm[NORM_MAX];
	norm_address(s->address, norm, sizeof norm);
	if (supp_set(c->p, s->user, norm, s->reason, s->created) == 0)
		return 0;
	c->failed = 1;
	return -1;
}

int policy_lists_load(struct policy *p, char *err, size_t errlen)
{
	struct lists_load c = {p, 0};
	if (records_suppression_each(p->rec, load_suppression, &c, err, errlen) < 0)
		return -1;
	if (c.failed) {
		snprintf(err, errlen, "out of memory loading suppression lists");
		return -1;
	}
	return 0;
}

/* supp_node_free - an entry out of the table. */
static void supp_node_free(struct ptab_node *n)
{
	supp_free((struct supp *)n);
}

/* write_rest - at shutdown: the changes no job took, written here. */
static void write_rest(struct policy *p)
{
	p->in_flight = p->queue_head;
	p->queue_head = p->queue_tail = NULL;
	if (p->rec && p->in_flight)
		ops_work(p);
	while (p->in_flight) {
		struct sup_op *o = p->in_flight;
		p->in_flight = o->next;
		if (o->rc < 0)
			log_error("policy: suppression of %s for %s not stored: %s", o->s.address,
				  o->s.user, o->err);
		op_free(o);
	}
}

void policy_lists_free(struct policy *p)
{
	write_rest(p);
	ptab_sweep(&p->supp, NULL, NULL, supp_node_free);
	free(p->supp.b);
}
