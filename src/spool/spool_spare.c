/* spool_spare.c - spare files: the inodes of removed messages, emptied and
 * kept in DIR/free/ for the next commits (see docs/design/spool.md).
 *
 * With the write-ahead log, a message's own file costs no disk flush; what
 * is left is metadata work, and creating an inode is most of it: ext4
 * without a journal walks past every inode freed in the last minute before
 * it hands one out, which at thousands of messages a second costs more than
 * everything else a commit does.  A removal therefore renames msg/ID into
 * free/ and empties it; a commit renames a spare into tmp/ID and writes it.
 * Renames are cheap everywhere, and a crash can only leave a spare in
 * free/ (cleared at start) or a name the log's recovery already checks. */
#include "spool/spool_private.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Spares kept at most: enough to absorb the gap between removals and
 * commits of a busy second; beyond it, removals unlink. */
#define SPARE_MAX 1024

int spool_spare_open(struct spool *sp)
{
	sp->spare = calloc(SPARE_MAX, sizeof *sp->spare);
	if (!sp->spare)
		return -1;
	if (mkdirat(sp->dirfd, "free", 0700) < 0 && errno != EEXIST)
		return -1;
	sp->freefd = openat(sp->dirfd, "free", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return sp->freefd < 0 ? -1 : 0;
}

void spool_spare_close(struct spool *sp)
{
	if (sp->freefd >= 0)
		close(sp->freefd);
	free(sp->spare);
}

/* spool_spare_take - an empty file renamed to tmp/ID, open for writing; -1
 * when there is none (the caller creates one). */
int spool_spare_take(struct spool *sp, const char *id)
{
	char name[32];
	pthread_mutex_lock(&sp->spare_lock);
	int have = sp->nspare > 0;
	if (have)
		memcpy(name, sp->spare[--sp->nspare], sizeof name);
	pthread_mutex_unlock(&sp->spare_lock);
	if (!have)
		return -1;
	/* NOREPLACE: tmp/ID never exists (ids are unique); make it checked. */
	if (renameat2(sp->freefd, name, sp->tmpfd, id, RENAME_NOREPLACE) < 0) {
		unlinkat(sp->freefd, name, 0);
		return -1;
	}
	int fd = openat(sp->tmpfd, id, O_WRONLY | O_CLOEXEC);
	struct stat st;
	if (fd >= 0 && fstat(fd, &st) == 0 && st.st_size == 0 && (st.st_mode & 07777) == 0600)
		return fd;
	/* Not one of ours as we left it: do without. */
	if (fd >= 0)
		close(fd);
	unlinkat(sp->tmpfd, id, 0);
	return -1;
}

/* empty_spare - free/NAME truncated to nothing (so it holds no message and
 * its blocks go back now).  0 or -1. */
static int empty_spare(struct spool *sp, const char *name)
{
	int fd = openat(sp->freefd, name, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int rc = ftruncate(fd, 0);
	if (close(fd) < 0 && errno != EINTR)
		rc = -1;
	return rc;
}

/* spool_spare_keep - msg/ID becomes a spare instead of being unlinked.  0
 * when msg/ID is gone (kept or, failing that, unlinked); -1 when the pool
 * is full or the rename failed: msg/ID is as it was. */
int spool_spare_keep(struct spool *sp, const char *id)
{
	pthread_mutex_lock(&sp->spare_lock);
	int room = sp->nspare + sp->spare_busy < SPARE_MAX;
	if (room)
		sp->spare_busy++;
	pthread_mutex_unlock(&sp->spare_lock);
	if (!room)
		return -1;
	/* Rename first, then truncate: a crash in between leaves a whole
	 * message under its name or a spare, never an empty msg/ID. */
	int rc = renameat(sp->msgfd, id, sp->freefd, id);
	int kept = rc == 0 && empty_spare(sp, id) == 0;
	if (rc == 0 && !kept)
		unlinkat(sp->freefd, id, 0);
	pthread_mutex_lock(&sp->spare_lock);
	sp->spare_busy--;
	if (kept)
		snprintf(sp->spare[sp->nspare++], sizeof sp->spare[0], "%s", id);
	pthread_mutex_unlock(&sp->spare_lock);
	return rc;
}
