/* spool.h - the durable message store.
 *
 * Promise: when the commit callback reports success, the message bytes and
 * its envelope are on stable storage, and so is what names them: either a
 * record in the write-ahead log (fdatasynced; recovery at start rebuilds
 * msg/ID from it) or the file msg/ID itself with its directory (fsynced).
 * Only then may the session answer 250.  A kill -9 or a power cut after
 * that loses nothing: spool_open puts back every msg/ID the log holds
 * before anything lists the spool.
 *
 * Group commit: commits that arrive while a flush is running wait and are
 * flushed together by the next one, so concurrent acceptances share disk
 * flushes (one fdatasync of the log per batch).  All flushing runs on the
 * worker pool; every function here is called on the loop thread unless it
 * says otherwise.
 *
 * Layout under DATA_DIR/spool: "msg/ID" is one file per message (envelope
 * text, a blank line, then the message bytes with CRLF line ends);
 * "tmp/" holds files being written, removed at start; "free/" empty spare
 * files for reuse; "wal/" the write-ahead log (a preallocated file) and
 * the removal notes.  Queue ids
 * are unique across restarts: time, a counter and random bits.  The format
 * and the commit protocol are described in docs/design/spool.md.
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

/* spool_open - create DIR/{msg,tmp,free,wal} if needed (the log preallocated,
 * unless the file system is small), remove leftovers in tmp, and recover:
 * every message the log holds is made whole in msg/.  Takes an exclusive
 * lock on DIR (flock) so two daemons never share one spool.  Blocking: call
 * before the loop runs.  NULL with ERR set on failure (also when the log
 * cannot be read: it may hold acknowledged messages). */
struct spool *spool_open(const char *dir, struct workers *pool, char *err,
			 size_t errlen);
/* spool_close - release the spool; clears *SP.  A flush still running
 * finishes first (its callbacks and those of commits still waiting run
 * as usual), then a last checkpoint (blocking) leaves nothing to replay,
 * and the spool is freed. */
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

/* spool_remove - take ID away once every recipient is final: its file is
 * emptied and kept as a spare, or unlinked, and the removal noted for the
 * log so recovery does not bring it back.  Blocking (worker).
 * Returns 0 or -1 with errno. */
int spool_remove(struct spool *sp, const char *id);

/* spool_dir - the spool's directory (for tests and logs). */
const char *spool_dir(const struct spool *sp);

/* spool_flushes - how many group-commit flushes have completed (each one
 * fdatasyncs the log once for its whole batch).  For tests and metrics: N
 * commits sharing flushes show as fewer than N here. */
unsigned long spool_flushes(const struct spool *sp);

#endif
