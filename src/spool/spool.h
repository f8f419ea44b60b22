/* spool.h - the durable message store.
 *
 * Promise: when the commit callback reports success, the message bytes, its
 * envelope and the directory entry naming them are on stable storage (file
 * and directory fsynced).  Only then may the session answer 250.
 *
 * Group commit: commits that arrive while a flush is running wait and are
 * flushed together by the next one, so concurrent acceptances share disk
 * flushes.  All flushing runs on the worker pool; every function here is
 * called on the loop thread unless it says otherwise.
 *
 * Layout under DATA_DIR/spool: "msg/ID" is one file per message (envelope
 * text, a blank line, then the message bytes with CRLF line ends);
 * "tmp/" holds files being written, removed at start.  Queue ids are unique
 * across restarts: time, a counter and random bits.  The format and the
 * commit protocol are described in docs/design/spool.md.
 *
 * Ids given to the functions below must be queue ids ([0-9A-Za-z]{1,31});
 * anything else is refused with EINVAL, so an id never walks the file
 * system.  The functions marked Blocking are thread-safe. */
#ifndef TERN_SPOOL_SPOOL_H
#define TERN_SPOOL_SPOOL_H

#include <stddef.h>

#include "spool/envelope.h"

struct evbuffer;
struct spool;
struct workers;

/* spool_open - create DIR/{msg,tmp} if needed, remove leftovers in tmp.
 * Takes an exclusive lock on DIR (flock) so two daemons never share one
 * spool.  Blocking: call before the loop runs.  NULL with ERR set on
 * failure. */
struct spool *spool_open(const char *dir, struct workers *pool, char *err,
			 size_t errlen);
/* spool_close - release the spool; clears *SP.  A flush still running
 * finishes first (its callbacks and those of commits still waiting run
 * as usual), then the spool is freed. */
void spool_close(struct spool **sp);

/* spool_new_id - a fresh unique queue id into OUT (at least 32 bytes). */
void spool_new_id(struct spool *sp, char *out);

/* Called on the loop when the commit is durable (ok=1) or failed (ok=0,
 * errno-style reason in ERRNUM, e.g. ENOSPC -> 452 4.3.1). */
typedef void (*spool_commit_cb)(void *arg, int ok, int errnum);

/* spool_commit - store ENV (env->id already set) and BODY.  Takes ownership
 * of BODY (freed by the spool) and copies ENV.  CB runs exactly once, later,
 * on the loop.  The caller must not free ARG before CB ran. */
void spool_commit(struct spool *sp, const struct envelope *env,
		  struct evbuffer *body, spool_commit_cb cb, void *arg);

/* spool_list - ids of every committed message (recovery at start).
 * Blocking.  Returns a malloc'ed array of malloc'ed strings (caller frees
 * both) and sets *N, sorted (oldest first); NULL with *N=0 on error
 * (errno set) or when empty (errno 0). */
char **spool_list(struct spool *sp, size_t *n);

/* spool_read_envelope - parse the envelope of ID into ENV.  Blocking (worker
 * or start-up).  Returns 0, or -1 with errno set. */
int spool_read_envelope(struct spool *sp, const char *id, struct envelope *env);

/* spool_open_body - an fd of ID's file, the offset of its first message
 * byte in *OFFSET and the body length in *SIZE.  Blocking.  Caller closes.
 * -1 on error. */
int spool_open_body(struct spool *sp, const char *id, long *offset,
		    size_t *size);

/* spool_update_envelope - rewrite ID's envelope (recipient states) durably:
 * written to tmp, fsynced, renamed over, directory fsynced.  Blocking
 * (worker).  Returns 0 or -1 with errno. */
int spool_update_envelope(struct spool *sp, const struct envelope *env);

/* spool_remove - unlink ID once every recipient is final.  Blocking
 * (worker).  Returns 0 or -1 with errno. */
int spool_remove(struct spool *sp, const char *id);

/* spool_dir - the spool's directory (for tests and logs). */
const char *spool_dir(const struct spool *sp);

/* spool_flushes - how many group-commit flushes have completed (each one
 * fsyncs msg/ once for its whole batch).  For tests and metrics: N commits
 * sharing flushes show as fewer than N here. */
unsigned long spool_flushes(const struct spool *sp);

#endif
