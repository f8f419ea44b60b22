/* spool_wal_private.h - what spool_wal.c and spool_wal_scan.c share: the
 * on-disk records and the log's state.
 *
 * Records are in the host's byte order: the log never leaves the machine
 * that wrote it (and lives only until the next checkpoint). */
#ifndef TERN_SPOOL_SPOOL_WAL_PRIVATE_H
#define TERN_SPOOL_SPOOL_WAL_PRIVATE_H

#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>

#include "spool/spool_wal.h"

#define WAL_PAGE 4096u
/* Two head slots, then the ring. */
#define WAL_HEAD_BYTES (2u * WAL_PAGE)
#define WAL_REC_HDR    64u
/* Records start on this boundary, so any gap before a page end can hold
 * a pad record's header. */
#define WAL_REC_ALIGN  64u
#define WAL_REC_MAGIC  0x314c5754u /* "TWL1" */
#define WAL_SLOT_MAGIC 0x31485754u /* "TWH1" */
#define WAL_GONE_MAGIC 0x31525754u /* "TWR1" */
/* Removal entries per removal file (64 bytes each): past that, a crash
 * before the next checkpoint may deliver a removed message again. */
#define WAL_GONE_MAX (64u * 1024)

enum wal_rec_type {
	WAL_MESSAGE = 1, /* envelope text then body */
	WAL_PAD = 3,	 /* skip LEN bytes: end of a batch or of the ring */
};

/* A record's header.  CRC is CRC-32C over the header (with crc 0), the
 * envelope text and the body; LSN is where the record was written, so a
 * stale one from an earlier lap never matches its position. */
struct wal_rec {
	uint32_t magic;
	uint32_t type;
	uint64_t lsn;
	uint32_t len; /* whole record, a multiple of WAL_REC_ALIGN */
	uint32_t headlen;
	uint32_t bodylen;
	uint32_t crc;
	char id[32]; /* NUL-terminated */
};
_Static_assert(sizeof(struct wal_rec) == WAL_REC_HDR, "record header size");

/* A head slot: the checkpoint.  The newer valid slot of the two wins. */
struct wal_slot {
	uint32_t magic;
	uint32_t zero;
	uint64_t seq;
	uint64_t size; /* ring bytes: must match the file */
	uint64_t ckpt; /* records before this LSN are not replayed */
	uint32_t crc;
	uint32_t pad;
};

/* An entry of a removal file: the message ID was removed from msg/. */
struct wal_gone {
	uint32_t magic;
	uint32_t crc; /* CRC-32C of the entry with this field 0 */
	char id[32];  /* NUL-terminated */
	char pad[24];
};
_Static_assert(sizeof(struct wal_gone) == 64, "removal entry size");

struct wal_iovs {
	struct iovec *v;
	size_t n, cap;
};

struct wal {
	int fd;	   /* wal/log */
	int msgfd; /* borrowed from the spool */
	uint64_t size;
	size_t record_max;
	int checkpoint_ms;
	/* Checkpoints one at a time (the thread, wal_close, tests). */
	pthread_mutex_t ckpt_lock;
	uint64_t slot_seq; /* under ckpt_lock */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	/* Under lock. */
	uint64_t tail; /* end of the last append: page aligned */
	/* End of the appends whose files are in msg/ (wal_published): what a
	 * checkpoint may pass.  Between an append and the renames, syncfs
	 * would not yet cover the names. */
	uint64_t safe;
	uint64_t ckpt; /* the durable checkpoint */
	int off;       /* an append failed; until a checkpoint passes it */
	int dead;      /* a syncfs failed: no more checkpoints */
	int kick, stop;
	/* The removal files: entries go to gone_fd[gone_cur] at gone_off.
	 * A checkpoint switches files when the one before it succeeded
	 * (gone_ok), so a file is written over only once every entry in it
	 * names a record behind the checkpoint. */
	int gone_fd[2];
	int gone_cur, gone_ok;
	uint64_t gone_off;
	struct wal_counters counters;
	pthread_t thread;
	int thread_started;
};

int wal_pread(int fd, void *buf, size_t len, off_t off);
int wal_write_slot(struct wal *w, uint64_t ckpt);
int wal_start(struct wal *w);

/* ---- spool_wal_gone.c: the removal files ---- */

/* wal_gone_open - open (create) wal/removed.0 and .1.  0 or -1. */
int wal_gone_open(struct wal *w, int waldfd);
/* wal_gone_switch - a checkpoint begins (lock held). */
void wal_gone_switch(struct wal *w);
/* wal_gone_read - every valid entry of both files, as a malloc'ed array
 * of ids (*N of them; NULL when none).  0, or -1 on a read error. */
int wal_gone_read(struct wal *w, char (**ids)[32], size_t *n);
/* wal_gone_reset - empty both files (every entry is behind the
 * checkpoint). */
void wal_gone_reset(struct wal *w);

#endif
