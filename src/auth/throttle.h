/* throttle.h - counting failed AUTH attempts per client address.
 *
 * A client address that fails MAX times within WINDOW seconds is locked
 * out for LOCKOUT seconds across all its connections (brute force over
 * many connections).  A success does not wipe the count: one valid
 * account must not let its holder interleave guesses at others.  The table
 * is bounded: when full, the entry that was
 * updated least recently is forgotten.  Loop thread only. */
#ifndef TERN_AUTH_THROTTLE_H
#define TERN_AUTH_THROTTLE_H

#include <stddef.h>
#include <sys/socket.h>
#include <time.h>

struct throttle;

/* throttle_new - CAPACITY addresses at most.  NULL on allocation failure. */
struct throttle *throttle_new(size_t capacity, unsigned max, unsigned window, unsigned lockout);
void throttle_free(struct throttle **t);

/* throttle_locked - seconds until ADDR may try again, 0 when it may now. */
unsigned throttle_locked(struct throttle *t, const struct sockaddr *addr, time_t now);
/* throttle_failure - count a failure; returns the failures in the window. */
unsigned throttle_failure(struct throttle *t, const struct sockaddr *addr, time_t now);

#endif
