/* spool_wal.h - the spool's write-ahead log (private to src/spool; the
 * reasoning is in docs/design/spool.md, "The write-ahead log").
 *
 * DIR/wal/log is one preallocated file: two 4 KiB head slots (the last
 * checkpoint), then SIZE bytes of log space used as a ring.  A position in
 * the log (its LSN) only grows; byte LSN lives at file offset
 * 8192 + LSN % SIZE, and every record carries its own LSN, so a record left
 * from an earlier lap of the ring never passes for a new one.
 *
 * The spool's flush appends one batch of message records with one
 * fdatasync: the file's blocks are all allocated and written once at
 * creation, so that flush carries data only, no metadata.  A checkpoint
 * (syncfs of the spool's file system, then a head slot) makes every msg/
 * file named by a record before it durable, after which that space may be
 * written again.  At start, wal_recover hands every record after the last
 * checkpoint back to the spool to make sure its msg/ file is there and
 * whole, unless wal/removed.0 or .1 says the message was removed since.
 *
 * Threads: wal_room and wal_append are called by the one flush running at a
 * time; wal_forget from any thread; the checkpointer is a thread of its own.
 * Everything they share is under the wal's lock. */
#ifndef TERN_SPOOL_SPOOL_WAL_H
#define TERN_SPOOL_SPOOL_WAL_H

#include <stddef.h>
#include <stdint.h>

struct evbuffer;
struct wal;

/* Sizes of the log, chosen when the spool opens. */
struct wal_limits {
	uint64_t size;	   /* log bytes when the file is created; 0: no log */
	size_t record_max; /* larger messages take the file-and-fsync path */
	int checkpoint_ms; /* most time between checkpoints; < 0: never (tests) */
};

/* One message of a batch.  The log only reads it; BODY is not drained. */
struct wal_item {
	const char *id;
	const char *head; /* envelope text with its blank line */
	size_t headlen;
	struct evbuffer *body; /* may be NULL */
	size_t bodylen;
};

/* What recovery calls back for each record after the last checkpoint. */
struct wal_replay {
	/* the message ID must exist as msg/ID with this body; 0, or -1 with
	 * errno (recovery then fails: an acknowledged message is at stake) */
	int (*restore)(void *arg, const char *id, const char *head, size_t headlen,
		       const char *body, size_t bodylen);
	/* ID was removed after its record was written: unlink msg/ID */
	void (*forget)(void *arg, const char *id);
	/* make the restores and unlinks durable (fsync msg/): 0 or -1 */
	int (*sync)(void *arg);
	void *arg;
};

/* Counters (for tests and metrics). */
struct wal_counters {
	unsigned long batches;	   /* appends, each one fdatasync */
	unsigned long records;	   /* message records appended */
	unsigned long removals;	   /* removal entries written */
	unsigned long checkpoints; /* completed checkpoints */
};

/* wal_open - open DIRFD/wal/log, or create and preallocate it (LIM->size
 * bytes, less when the file system has little room).  MSGFD (borrowed) is
 * the directory whose files checkpoints make durable.  Returns 0 with *OUT
 * set, or with *OUT NULL when the spool must do without (no room, or
 * LIM->size 0: logged); -1 with ERR set when an existing log cannot be read,
 * since messages may depend on it.  Blocking. */
int wal_open(int dirfd, int msgfd, const struct wal_limits *lim, struct wal **out, char *err,
	     size_t errlen);

/* wal_recover - replay every record after the last checkpoint through CB,
 * then start a fresh lap and the checkpointer.  Blocking, before any
 * append.  0, or -1 with ERR set. */
int wal_recover(struct wal *w, const struct wal_replay *cb, char *err, size_t errlen);

/* wal_record_len - bytes a message record of these sizes takes in the log,
 * or 0 when it is above record_max (it takes the file path). */
size_t wal_record_len(const struct wal *w, size_t headlen, size_t bodylen);

/* wal_room - how many record bytes the next wal_append may hold (0 when the
 * log is full, off after an error, or closing).  Flush thread only. */
size_t wal_room(struct wal *w);

/* wal_append - write the N items (whose record lengths add up to at most
 * what wal_room said) at the end of the log, then one fdatasync.  0: every item is durable.  -1
 * with errno: none may be counted on, and the log stays off until a checkpoint passes the damaged
 * place.  Flush thread only. */
int wal_append(struct wal *w, const struct wal_item *items, size_t n);

/* wal_published - the files of every append so far are renamed into
 * msg/: a checkpoint may now pass their records.  Flush thread only. */
void wal_published(struct wal *w);

/* wal_forget - ID was removed from msg/: note it in a removal file (page
 * cache only), so a recovery does not bring it back.  Any thread; best
 * effort: after a power cut before the next checkpoint, or past the
 * bound on entries, it may be delivered again (at-least-once). */
void wal_forget(struct wal *w, const char *id);

/* wal_checkpoint - make every msg/ file named by a record so far durable
 * and move the checkpoint to the end of the log.  Blocking.  0 or -1. */
int wal_checkpoint(struct wal *w);

/* wal_counters - a snapshot of the counters. */
void wal_counters(struct wal *w, struct wal_counters *out);

/* wal_close - stop the checkpointer; when CHECKPOINT, take a last one so
 * the next start replays nothing.  Frees *W and clears it. */
void wal_close(struct wal **w, int checkpoint);

#endif
