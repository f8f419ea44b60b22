/* spool_private.h - what the spool's files share (spool.c: ids, opening,
 * group commit; spool_files.c: the per-message files), and the knobs and
 * counters the unit tests use.  Not for the rest of tern: spool.h is the
 * contract. */
#ifndef TERN_SPOOL_SPOOL_PRIVATE_H
#define TERN_SPOOL_SPOOL_PRIVATE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "spool/spool.h"
#include "spool/spool_wal.h"

/* Defaults: 32 MiB of log (a second of a busy server's small messages, and
 * checkpoints start at half), messages up to 1 MiB through the log, a
 * checkpoint at least every second while the log holds records. */
#define SPOOL_WAL_SIZE	     (32u << 20)
#define SPOOL_WAL_RECORD_MAX (1u << 20)
#define SPOOL_CHECKPOINT_MS  1000

struct spool_tuning {
	uint64_t wal_size;     /* 0: no log, every commit fsyncs its file */
	size_t wal_record_max; /* larger messages take the file path */
	int checkpoint_ms;     /* < 0: never, not even at close (tests) */
};

struct commit_req {
	struct commit_req *next;
	char id[32];
	char *head; /* envelope text with its blank line (owned) */
	size_t headlen;
	struct evbuffer *body; /* owned; read only by the flush job */
	size_t bodylen;
	spool_commit_cb cb;
	void *arg;
	int fd;	     /* tmp/ID while the flush writes it, else -1 */
	int in_wal;  /* durable through the log, not through its own fsync */
	int renamed; /* msg/ID exists */
	int errnum;  /* 0 while all is well */
};

struct spool {
	char *dir;
	int dirfd, msgfd, tmpfd, freefd;
	struct workers *pool;
	struct wal *wal; /* NULL: no log */
	/* Loop-only state: the requests waiting for the next flush, and the
	 * batch a running flush owns (the loop does not touch it then). */
	struct commit_req *wait_head, *wait_tail;
	struct commit_req *batch;
	int flushing;
	int closing;
	int final_checkpoint;
	unsigned long flushes;
	/* Written by flushes, read anywhere. */
	atomic_ulong file_syncs, dir_syncs, file_commits;
	/* Queue ids may be asked for from any thread. */
	pthread_mutex_t id_lock;
	uint64_t last_stamp;
	/* Spare files in free/ (spool_spare.c); removals run on any worker. */
	pthread_mutex_t spare_lock;
	char (*spare)[32]; /* names of the spares, SPARE_MAX of room */
	size_t nspare;
	size_t spare_busy; /* removals between taking room and adding */
};

/* What the unit tests count. */
struct spool_counters {
	unsigned long flushes;	    /* group-commit flushes */
	unsigned long wal_batches;  /* log appends: one fdatasync each */
	unsigned long wal_records;  /* messages made durable by the log */
	unsigned long removals;	    /* removals noted in the removal files */
	unsigned long checkpoints;  /* completed checkpoints */
	unsigned long file_syncs;   /* fdatasyncs of message files */
	unsigned long dir_syncs;    /* fsyncs of msg/ and tmp/ by commits */
	unsigned long file_commits; /* messages made durable by their own fsync */
	int wal;		    /* the log is in use */
};

/* spool_open_tuned - spool_open with T instead of the defaults. */
struct spool *spool_open_tuned(const char *dir, struct workers *pool, const struct spool_tuning *t,
			       char *err, size_t errlen);
void spool_get_counters(struct spool *sp, struct spool_counters *c);
/* spool_checkpoint - a checkpoint now (blocking): 0, or -1. */
int spool_checkpoint(struct spool *sp);

/* ---- spool_files.c ---- */

int spool_valid_id(const char *id);
/* spool_write_tmp - create tmp/ID and write R's envelope and body; leaves
 * R->fd open, or sets R->errnum. */
void spool_write_tmp(struct spool *sp, struct commit_req *r);
/* spool_req_fail - R failed with ERRNUM: close and remove its tmp file. */
void spool_req_fail(struct spool *sp, struct commit_req *r, int errnum);
/* spool_rename_noreplace - tmp/ID to msg/ID, never over an existing one. */
int spool_rename_noreplace(struct spool *sp, const char *id);
/* spool_replay - the callbacks recovery gives the write-ahead log. */
void spool_replay_callbacks(struct spool *sp, struct wal_replay *cb);

/* ---- spool_spare.c ---- */

/* spool_spare_open - DIR/free/ (created if missing) and the pool's
 * memory: 0, -1.  spare_lock is the spool's to set up. */
int spool_spare_open(struct spool *sp);
void spool_spare_close(struct spool *sp);
/* spool_spare_take - a spare renamed to tmp/ID, open for writing, or -1. */
int spool_spare_take(struct spool *sp, const char *id);
/* spool_spare_keep - msg/ID made a spare: 0 when msg/ID is gone, -1 when
 * it was left alone (pool full, or the rename failed: errno). */
int spool_spare_keep(struct spool *sp, const char *id);

#endif
