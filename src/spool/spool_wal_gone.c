/* spool_wal_gone.c - the removal files wal/removed.0 and wal/removed.1 (see
 * spool_wal.h and docs/design/spool.md).
 *
 * A message removed after delivery leaves its record in the log until the
 * next checkpoint; without a note of the removal, a crash in between would
 * bring its file back and deliver it again.  spool_remove writes that note
 * here at once: 64 bytes, no fsync.  That is enough to survive the daemon
 * being killed (the page cache keeps it), and after a power cut no worse
 * than the unlink itself, which is not fsynced either; the next checkpoint
 * (syncfs) makes both durable.
 *
 * Every removal is final and ids never repeat, so an old entry is always
 * true: recovery applies every valid entry of both files, however old.
 * Files are only written over to bound their size, two of them taking
 * turns: a checkpoint that starts switches to the other file, which it may
 * overwrite from its start when the checkpoint before succeeded, because
 * each entry there was written before that checkpoint began, so for a
 * message whose record is behind it. */
#include "spool/spool_wal_private.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "spool/crc32c.h"

static const char *const gone_names[2] = {"removed.0", "removed.1"};

int wal_gone_open(struct wal *w, int waldfd)
{
	for (int i = 0; i < 2; i++) {
		w->gone_fd[i] = openat(waldfd, gone_names[i], O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		if (w->gone_fd[i] < 0)
			return -1;
	}
	w->gone_cur = 0;
	w->gone_ok = 1;
	return 0;
}

/* gone_crc - the checksum of entry G (its crc field taken as 0). */
static uint32_t gone_crc(struct wal_gone g)
{
	g.crc = 0;
	return crc32c(0, &g, sizeof g);
}

void wal_forget(struct wal *w, const char *id)
{
	struct wal_gone g = {.magic = WAL_GONE_MAGIC};
	snprintf(g.id, sizeof g.id, "%s", id);
	g.crc = gone_crc(g);
	pthread_mutex_lock(&w->lock);
	/* With nothing after the checkpoint there is no record to hide.  The
	 * write goes to the page cache only: microseconds, under the lock so
	 * that it lands in the file a checkpoint's switch expects. */
	if (w->safe != w->ckpt && w->gone_off < (uint64_t)WAL_GONE_MAX * sizeof g) {
		ssize_t n = pwrite(w->gone_fd[w->gone_cur], &g, sizeof g, (off_t)w->gone_off);
		if (n == (ssize_t)sizeof g) {
			w->gone_off += sizeof g;
			w->counters.removals++;
		}
	}
	pthread_mutex_unlock(&w->lock);
}

void wal_gone_switch(struct wal *w)
{
	if (!w->gone_ok)
		return; /* the last checkpoint failed: both files still count */
	w->gone_cur ^= 1;
	w->gone_off = 0;
	w->gone_ok = 0; /* until this checkpoint succeeds */
}

/* read_file - the valid entries of FD appended to *IDS. */
static int read_file(int fd, char (**ids)[32], size_t *n)
{
	struct wal_gone g[64];
	off_t off = 0;
	for (size_t seen = 0; seen < WAL_GONE_MAX;) {
		ssize_t got = pread(fd, g, sizeof g, off);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			return -1;
		size_t k = (size_t)got / sizeof *g;
		if (!k)
			break;
		char(*more)[32] = realloc(*ids, (*n + k) * sizeof **ids);
		if (!more)
			return -1;
		*ids = more;
		for (size_t i = 0; i < k; i++)
			if (g[i].magic == WAL_GONE_MAGIC && g[i].crc == gone_crc(g[i]) &&
			    memchr(g[i].id, '\0', sizeof g[i].id))
				memcpy((*ids)[(*n)++], g[i].id, sizeof g[i].id);
		off += (off_t)(k * sizeof *g);
		seen += k;
	}
	return 0;
}

int wal_gone_read(struct wal *w, char (**ids)[32], size_t *n)
{
	*ids = NULL;
	*n = 0;
	for (int i = 0; i < 2; i++)
		if (read_file(w->gone_fd[i], ids, n) < 0) {
			int e = errno;
			free(*ids);
			*ids = NULL;
			*n = 0;
			return errno = e, -1;
		}
	return 0;
}

void wal_gone_reset(struct wal *w)
{
	/* If a crash forgets the truncation, the old entries are still true. */
	for (int i = 0; i < 2; i++)
		if (ftruncate(w->gone_fd[i], 0) < 0)
			continue;
	w->gone_cur = 0;
	w->gone_off = 0;
	w->gone_ok = 1;
}
