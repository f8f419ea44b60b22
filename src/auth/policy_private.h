/* policy_private.h - what policy.c (use, quotas, the rate limit) and
 * policy_lists.c (suppression lists) share: the policy itself and the
 * small chained hash table both keep their entries in.  Loop thread only. */
#ifndef TERN_AUTH_POLICY_PRIVATE_H
#define TERN_AUTH_POLICY_PRIVATE_H

#include <stddef.h>
#include <stdint.h>

#include "auth/policy.h"

/* A node embedded at the start of each entry; the table owns no memory
 * but its buckets. */
struct ptab_node {
	struct ptab_node *next;
	uint32_t hash;
};

struct ptab {
	struct ptab_node **b;
	size_t nb, count; /* nb a power of two, 0 before the first insert */
};

typedef int (*ptab_eq_fn)(const struct ptab_node *n, const void *key);

/* ptab_hash_ci - FNV-1a of S, ASCII case folded, continuing from H. */
uint32_t ptab_hash_ci(const char *s, uint32_t h);
/* ptab_casecmp - ASCII case-insensitive strcmp, whatever the locale. */
int ptab_casecmp(const char *a, const char *b);
/* ptab_find - the node with HASH that EQ says matches KEY, or NULL. */
struct ptab_node *ptab_find(const struct ptab *t, uint32_t hash, ptab_eq_fn eq, const void *key);
/* ptab_full - would the next insert grow the table? */
int ptab_full(const struct ptab *t);
/* ptab_insert - add N (not already there); -1 only when no bucket could
 * be allocated at all. */
int ptab_insert(struct ptab *t, struct ptab_node *n, uint32_t hash);
/* ptab_remove - unlink N (the caller frees it). */
void ptab_remove(struct ptab *t, struct ptab_node *n);
/* ptab_sweep - unlink and FREE_FN every node STALE says is stale (every
 * node when STALE is NULL). */
void ptab_sweep(struct ptab *t, int (*stale)(const struct ptab_node *, const void *),
		const void *arg, void (*free_fn)(struct ptab_node *));

struct records;
struct supp;
struct sup_op;

struct policy {
	struct event_base *base;
	struct workers *pool;
	struct records *rec; /* used by the job in flight, or nobody */
	struct ptab usage, supp;
	int walking;				/* depth of policy_suppression_each */
	struct supp *graveyard;			/* removed during a walk: freed after it */
	struct sup_op *queue_head, *queue_tail; /* changes waiting for a job */
	struct sup_op *in_flight;		/* the job's changes, in order */
};

/* policy_lists_load - the suppression lists from the store (start-up). */
int policy_lists_load(struct policy *p, char *err, size_t errlen);
/* policy_lists_free - write the changes no job took (blocking: shutdown,
 * after workers_free) and free the lists. */
void policy_lists_free(struct policy *p);

#endif
