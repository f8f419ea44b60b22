/* throttle.c - failed AUTH attempts per client address (see throttle.h).
 * A small table with linear search would do for tens of entries; brute
 * force comes from many addresses, so this is an open-addressing hash
 * keyed by the 16 address bytes (IPv4 as mapped IPv6), kept half empty. */
#include "auth/throttle.h"

#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct entry {
	uint8_t addr[16];
	int used;
	unsigned failures;
	time_t first; /* start of the current window */
	time_t locked_until;
	time_t touched;
};

struct throttle {
	struct entry *slots;
	size_t cap; /* power of two, twice the capacity */
	size_t count, limit;
	unsigned max, window, lockout;
};

static void key_of(const struct sockaddr *sa, uint8_t key[16])
{
	memset(key, 0, 16);
	if (sa->sa_family == AF_INET) {
		key[10] = key[11] = 0xff;
		memcpy(key + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
	} else if (sa->sa_family == AF_INET6) {
		memcpy(key, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
	}
}

static size_t hash(const uint8_t key[16])
{
	uint32_t h = 2166136261u;
	for (int i = 0; i < 16; i++)
		h = (h ^ key[i]) * 16777619u;
	return h;
}

static struct entry *find(struct throttle *t, const uint8_t key[16])
{
	for (size_t i = hash(key) & (t->cap - 1);; i = (i + 1) & (t->cap - 1))
		if (!t->slots[i].used || memcmp(t->slots[i].addr, key, 16) == 0)
			return &t->slots[i];
}

/* remove_at - free a slot and re-seat the probe run after it. */
static void remove_at(struct throttle *t, struct entry *e)
{
	size_t i = (size_t)(e - t->slots);
	e->used = 0;
	t->count--;
	for (size_t j = (i + 1) & (t->cap - 1); t->slots[j].used; j = (j + 1) & (t->cap - 1)) {
		struct entry moved = t->slots[j];
		t->slots[j].used = 0;
		*find(t, moved.addr) = moved;
	}
}

static void evict_oldest(struct throttle *t)
{
	struct entry *oldest = NULL;
	for (size_t i = 0; i < t->cap; i++)
		if (t->slots[i].used && (!oldest || t->slots[i].touched < oldest->touched))
			oldest = &t->slots[i];
	if (oldest)
		remove_at(t, oldest);
}

struct throttle *throttle_new(size_t capacity, unsigned max, unsigned window, unsigned lockout)
{
	struct throttle *t = calloc(1, sizeof *t);
	if (!t)
		return NULL;
	t->cap = 16;
	while (t->cap < capacity * 2)
		t->cap *= 2;
	t->slots = calloc(t->cap, sizeof *t->slots);
	if (!t->slots) {
		free(t);
		return NULL;
	}
	t->limit = capacity ? capacity : 1;
	t->max = max ? max : 1;
	t->window = window;
	t->lockout = lockout;
	return t;
}

void throttle_free(struct throttle **pt)
{
	if (!*pt)
		return;
	free((*pt)->slots);
	free(*pt);
	*pt = NULL;
}

unsigned throttle_locked(struct throttle *t, const struct sockaddr *addr, time_t now)
{
	uint8_t key[16];
	key_of(addr, key);
	struct entry *e = find(t, key);
	if (!e->used || e->locked_until <= now)
		return 0;
	return (unsigned)(e->locked_until - now);
}

unsigned throttle_failure(struct throttle *t, const struct sockaddr *addr, time_t now)
{
	uint8_t key[16];
	key_of(addr, key);
	struct entry *e = find(t, key);
	if (!e->used) {
		if (t->count >= t->limit) {
			evict_oldest(t); /* slots moved: look again */
			e = find(t, key);
		}
		memset(e, 0, sizeof *e);
		memcpy(e->addr, key, 16);
		e->used = 1;
		e->first = now;
		t->count++;
	}
	if (now - e->first > (time_t)t->window) {
		e->first = now;
		e->failures = 0;
	}
	e->failures++;
	e->touched = now;
	if (e->failures >= t->max)
		e->locked_until = now + t->lockout;
	return e->failures;
}
