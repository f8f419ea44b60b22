/* spool.c - the durable message store: ids, opening, group commit (see
 * spool.h, docs/design/spool.md; the files are spool_files.c, the
 * write-ahead log spool_wal.c).
 *
 * RFC 5321 6.1: once a server has answered 250 to the end of the data it
 * has taken responsibility for the message and must not lose it.  Here
 * that means, before the commit callback reports success: the message is a
 * whole record in the write-ahead log, whose fdatasync returned, and its
 * file is in msg/ (made durable by the next checkpoint, and rebuilt from
 * the record by recovery if a crash comes first).  A message too big for
 * the log, or any message when the log is full or off, takes the older
 * path: its file fdatasynced, renamed into msg/, and msg/ fsynced.
 *
 * Group commit: the loop collects commit requests in a waiting list.  When
 * no flush is running, the whole list becomes one batch handed to one
 * worker job; requests arriving meanwhile wait for the next batch.  The
 * batch shares one fdatasync of the log (or, on the file path, the fsync
 * of msg/). */
#include "spool/spool_private.h"

#include <dirent.h>
#include <errno.h>
#include <event2/buffer.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/workers.h"

/* Files a flush keeps open at once: it writes this many, then syncs them. */
#define FLUSH_OPEN_MAX 64

static const struct spool_tuning default_tuning = {
	.wal_size = SPOOL_WAL_SIZE,
	.wal_record_max = SPOOL_WAL_RECORD_MAX,
	.checkpoint_ms = SPOOL_CHECKPOINT_MS,
};

/* ---- queue ids ---- */

static const char b62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/* put_base62 - V as exactly WIDTH base62 digits, most significant first,
 * so ids of one width sort in time order. */
static void put_base62(char *out, uint64_t v, int width)
{
	for (int i = width - 1; i >= 0; i--) {
		out[i] = b62[v % 62];
		v /= 62;
	}
}

/* spool_new_id - 16 characters: 10 for a microsecond stamp that strictly
 * increases within the process (62^10 > 2^59 us, beyond year 20000), 6 for
 * 35 random bits that keep ids apart across restarts and a clock that went
 * backwards.  Letters are case-sensitive: fine for Linux file systems. */
void spool_new_id(struct spool *sp, char *out)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	uint64_t stamp = (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;
	pthread_mutex_lock(&sp->id_lock);
	if (stamp <= sp->last_stamp)
		stamp = sp->last_stamp + 1;
	sp->last_stamp = stamp;
	pthread_mutex_unlock(&sp->id_lock);
	uint64_t rnd = 0;
	if (getrandom(&rnd, sizeof rnd, GRND_NONBLOCK) != (ssize_t)sizeof rnd)
		rnd = (uint64_t)getpid() * 2654435761u ^ stamp; /* still unique in-process */
	put_base62(out, stamp, 10);
	put_base62(out + 10, rnd % 56800235584ull /* 62^6 */, 6);
	out[16] = '\0';
}

/* ---- opening ---- */

/* mkdir_p - create PATH and its missing parents (mode 0700). */
static int mkdir_p(const char *path)
{
	char buf[4096];
	size_t n = strlen(path);
	if (n == 0 || n >= sizeof buf)
		return errno = ENAMETOOLONG, -1;
	memcpy(buf, path, n + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0700) < 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(buf, 0700) < 0 && errno != EEXIST)
		return -1;
	return 0;
}

/* open_subdir - DIRFD/NAME as a directory fd, created if missing. */
static int open_subdir(int dirfd, const char *name)
{
	if (mkdirat(dirfd, name, 0700) < 0 && errno != EEXIST)
		return -1;
	return openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

/* clear_dir - unlink every entry of the directory DIRFD (tmp/ at start:
 * files of commits that never completed, so never answered 250). */
static int clear_dir(int dirfd, unsigned *removed)
{
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -1;
	}
	struct dirent *de;
	int rc = 0;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (unlinkat(dirfd, de->d_name, 0) < 0 && errno != ENOENT)
			rc = -1;
		else
			(*removed)++;
	}
	closedir(d);
	return rc;
}

/* spool_destroy - close everything.  A spool that opened fully takes a
 * last checkpoint, so the next start has nothing to replay. */
static void spool_destroy(struct spool *sp)
{
	wal_close(&sp->wal, sp->final_checkpoint);
	if (sp->dirfd >= 0)
		close(sp->dirfd); /* releases the flock */
	if (sp->msgfd >= 0)
		close(sp->msgfd);
	if (sp->tmpfd >= 0)
		close(sp->tmpfd);
	spool_spare_close(sp);
	pthread_mutex_destroy(&sp->spare_lock);
	pthread_mutex_destroy(&sp->id_lock);
	free(sp->dir);
	free(sp);
}

/* open_dirs - DIR locked, its msg/, tmp/ and free/, the write-ahead log
 * opened (created if missing), everything fsynced, tmp/ and free/ emptied.
 * Returns what failed ("" when ERR says it), or NULL. */
static const char *open_dirs(struct spool *sp, const struct spool_tuning *t, char *err,
			     size_t errlen)
{
	if (mkdir_p(sp->dir) < 0)
		return "mkdir";
	if ((sp->dirfd = open(sp->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return "open";
	if (flock(sp->dirfd, LOCK_EX | LOCK_NB) < 0)
		return "lock (is another ternd using it?)";
	if ((sp->msgfd = open_subdir(sp->dirfd, "msg")) < 0)
		return "msg/";
	if ((sp->tmpfd = open_subdir(sp->dirfd, "tmp")) < 0)
		return "tmp/";
	if (spool_spare_open(sp) < 0)
		return "free/";
	struct wal_limits lim = {.size = t->wal_size,
				 .record_max = t->wal_record_max,
				 .checkpoint_ms = t->checkpoint_ms};
	if (wal_open(sp->dirfd, sp->msgfd, &lim, &sp->wal, err, errlen) < 0)
		return "";
	/* The subdirectories must survive a crash like the files in them. */
	if (fsync(sp->dirfd) < 0)
		return "fsync";
	unsigned removed = 0, spares = 0;
	if (clear_dir(sp->tmpfd, &removed) < 0)
		return "cleaning tmp/";
	if (removed)
		log_info("spool: removed %u unfinished file(s) from %s/tmp", removed, sp->dir);
	/* Spares are only worth their names in memory: start afresh. */
	if (clear_dir(sp->freefd, &spares) < 0)
		return "cleaning free/";
	return NULL;
}

struct spool *spool_open_tuned(const char *dir, struct workers *pool, const struct spool_tuning *t,
			       char *err, size_t errlen)
{
	struct spool *sp = calloc(1, sizeof *sp);
	if (!sp || !(sp->dir = strdup(dir))) {
		snprintf(err, errlen, "spool: out of memory");
		free(sp);
		return NULL;
	}
	sp->dirfd = sp->msgfd = sp->tmpfd = sp->freefd = -1;
	sp->pool = pool;
	pthread_mutex_init(&sp->id_lock, NULL);
	pthread_mutex_init(&sp->spare_lock, NULL);
	char werr[512] = "";
	const char *what = open_dirs(sp, t, werr, sizeof werr);
	if (!what && sp->wal) {
		/* Before the queue lists msg/: every message the log holds
		 * must be there, whole. */
		struct wal_replay cb;
		spool_replay_callbacks(sp, &cb);
		if (wal_recover(sp->wal, &cb, werr, sizeof werr) < 0)
			what = "";
	}
	if (what) {
		if (*what)
			snprintf(err, errlen, "spool %s: %s: %s", dir, what, strerror(errno));
		else
			snprintf(err, errlen, "spool %s: %s", dir, werr);
		spool_destroy(sp);
		return NULL;
	}
	sp->final_checkpoint = 1;
	return sp;
}

struct spool *spool_open(const char *dir, struct workers *pool, char *err, size_t errlen)
{
	return spool_open_tuned(dir, pool, &default_tuning, err, errlen);
}

const char *spool_dir(const struct spool *sp)
{
	return sp->dir;
}

unsigned long spool_flushes(const struct spool *sp)
{
	return sp->flushes;
}

void spool_get_counters(struct spool *sp, struct spool_counters *c)
{
	struct wal_counters w = {0};
	if (sp->wal)
		wal_counters(sp->wal, &w);
	*c = (struct spool_counters){
		.flushes = sp->flushes,
		.wal_batches = w.batches,
		.wal_records = w.records,
		.removals = w.removals,
		.checkpoints = w.checkpoints,
		.file_syncs = atomic_load(&sp->file_syncs),
		.dir_syncs = atomic_load(&sp->dir_syncs),
		.file_commits = atomic_load(&sp->file_commits),
		.wal = sp->wal != NULL,
	};
}

int spool_checkpoint(struct spool *sp)
{
	return sp->wal ? wal_checkpoint(sp->wal) : 0;
}

/* ---- the flush job (worker thread) ---- */

/* plan_log - which requests of the batch go through the log: those whose
 * record is small enough, while the log has room. */
static void plan_log(struct spool *sp)
{
	if (!sp->wal)
		return;
	size_t room = wal_room(sp->wal);
	for (struct commit_req *r = sp->batch; r && room; r = r->next) {
		size_t len = r->errnum ? 0 : wal_record_len(sp->wal, r->headlen, r->bodylen);
		if (len && len <= room) {
			r->in_wal = 1;
			room -= len;
		}
	}
}

/* sync_tmp - R's data on stable storage, its fd closed.  A request the
 * log will carry is only closed. */
static void sync_tmp(struct spool *sp, struct commit_req *r)
{
	if (r->fd < 0)
		return;
	if (!r->in_wal) {
		atomic_fetch_add(&sp->file_syncs, 1);
		if (fdatasync(r->fd) < 0) {
			spool_req_fail(sp, r, errno);
			return;
		}
	}
	int fd = r->fd;
	r->fd = -1;
	if (close(fd) < 0 && errno != EINTR)
		spool_req_fail(sp, r, errno);
}

/* write_files - tmp/ID for every request (the place an error such as
 * ENOSPC shows), FLUSH_OPEN_MAX at a time; those not in the log are
 * fdatasynced after the group is written, so the first sync's journal
 * commit carries the others' allocations. */
static void write_files(struct spool *sp)
{
	struct commit_req *r = sp->batch;
	while (r) {
		struct commit_req *first = r;
		for (int k = 0; r && k < FLUSH_OPEN_MAX; r = r->next, k++)
			if (!r->errnum)
				spool_write_tmp(sp, r);
		for (struct commit_req *q = first; q != r; q = q->next)
			sync_tmp(sp, q);
	}
}

/* sync_by_name - fdatasync tmp/ID after all: the log could not take R. */
static void sync_by_name(struct spool *sp, struct commit_req *r)
{
	r->in_wal = 0;
	r->fd = openat(sp->tmpfd, r->id, O_RDONLY | O_CLOEXEC);
	if (r->fd < 0) {
		spool_req_fail(sp, r, errno);
		return;
	}
	sync_tmp(sp, r);
}

/* log_batch - the log's records for the requests planned into it, with one
 * fdatasync.  If the log fails, their files are fdatasynced instead and
 * they go on the file path: the same outcome, the same errnos. */
static void log_batch(struct spool *sp)
{
	size_t n = 0;
	for (struct commit_req *r = sp->batch; r; r = r->next) {
		if (r->in_wal && r->errnum)
			r->in_wal = 0; /* its file could not be written */
		n += (size_t)r->in_wal;
	}
	if (!n)
		return;
	struct wal_item *items = calloc(n, sizeof *items);
	size_t i = 0;
	for (struct commit_req *r = sp->batch; items && r; r = r->next)
		if (r->in_wal)
			items[i++] =
				(struct wal_item){r->id, r->head, r->headlen, r->body, r->bodylen};
	if (!items || wal_append(sp->wal, items, n) < 0)
		for (struct commit_req *r = sp->batch; r; r = r->next)
			if (r->in_wal)
				sync_by_name(sp, r);
	free(items);
}

/* publish - rename every good file into msg/.  Only files on the file path
 * need msg/ fsynced now (one fsync for them all); the log's messages are
 * rebuilt by recovery if their names are lost. */
static void publish(struct spool *sp)
{
	int need_sync = 0;
	for (struct commit_req *r = sp->batch; r; r = r->next) {
		if (r->errnum)
			continue;
		if (spool_rename_noreplace(sp, r->id) < 0) {
			spool_req_fail(sp, r, errno);
			if (r->in_wal)
				wal_forget(sp->wal, r->id); /* its client gets a 4xx */
			continue;
		}
		r->renamed = 1;
		if (r->in_wal)
			continue;
		atomic_fetch_add(&sp->file_commits, 1);
		need_sync = 1;
	}
	if (!need_sync)
		return;
	atomic_fetch_add(&sp->dir_syncs, 1);
	if (fsync(sp->msgfd) < 0) {
		/* The names may not be durable: none of these may get a 250.
		 * The client retries; remove what we would otherwise deliver. */
		int e = errno;
		for (struct commit_req *r = sp->batch; r; r = r->next)
			if (r->renamed && !r->in_wal && !r->errnum) {
				unlinkat(sp->msgfd, r->id, 0);
				r->errnum = e;
			}
		return;
	}
	/* The tmp/ entries are gone; persisting that only spares a cleanup. */
	char buf[128];
	atomic_fetch_add(&sp->dir_syncs, 1);
	if (fsync(sp->tmpfd) < 0)
		log_warn("spool: fsync %s/tmp: %s", sp->dir, strerror_r(errno, buf, sizeof buf));
}

/* flush_work - the whole batch: plan who goes through the log, write
 * every file, make them durable (one log fdatasync, or per-file
 * fdatasyncs), then rename them into msg/. */
static void flush_work(void *arg)
{
	struct spool *sp = arg;
	plan_log(sp);
	write_files(sp);
	log_batch(sp);
	publish(sp);
	if (sp->wal)
		wal_published(sp->wal);
}

static void req_free(struct commit_req *r)
{
	if (r->body)
		evbuffer_free(r->body);
	free(r->head);
	free(r);
}

/* finish_batch - on the loop: report every request of the batch, in the
 * order they arrived.  Commits made from a callback join the waiting list
 * (flushing is still set), so they go in the next batch. */
static void finish_batch(struct spool *sp)
{
	struct commit_req *r = sp->batch;
	sp->batch = NULL;
	sp->flushes++;
	while (r) {
		struct commit_req *next = r->next;
		r->cb(r->arg, r->errnum == 0, r->errnum);
		req_free(r);
		r = next;
	}
	sp->flushing = 0;
}

static void flush_done(void *arg);

/* start_flush - when idle, hand the waiting list to a flush job.  If the
 * pool refuses (it is shutting down), flush here: blocking, but the only
 * way to keep the promise to those clients. */
static void start_flush(struct spool *sp)
{
	while (!sp->flushing && sp->wait_head) {
		sp->batch = sp->wait_head;
		sp->wait_head = sp->wait_tail = NULL;
		sp->flushing = 1;
		if (workers_submit(sp->pool, flush_work, flush_done, sp) == 0)
			return;
		flush_work(sp);
		finish_batch(sp);
	}
}

static void flush_done(void *arg)
{
	struct spool *sp = arg;
	finish_batch(sp);
	start_flush(sp);
	if (sp->closing && !sp->flushing)
		spool_destroy(sp);
}

void spool_commit(struct spool *sp, const struct envelope *env, struct evbuffer *body,
		  spool_commit_cb cb, void *arg)
{
	struct commit_req *r = calloc(1, sizeof *r);
	if (!r) {
		/* Not even room to remember the callback: answer now. */
		if (body)
			evbuffer_free(body);
		cb(arg, 0, ENOMEM);
		return;
	}
	r->body = body;
	r->bodylen = body ? evbuffer_get_length(body) : 0;
	r->cb = cb;
	r->arg = arg;
	r->fd = -1;
	memcpy(r->id, env->id, sizeof r->id);
	r->id[sizeof r->id - 1] = '\0';
	/* Failures found here still travel through the flush so the callback
	 * runs later, on the loop, like every other outcome. */
	if (!spool_valid_id(r->id))
		r->errnum = EINVAL;
	else if (envelope_format(env, &r->head, &r->headlen) < 0)
		r->errnum = ENOMEM;
	if (sp->wait_tail)
		sp->wait_tail->next = r;
	else
		sp->wait_head = r;
	sp->wait_tail = r;
	start_flush(sp);
}

void spool_close(struct spool **psp)
{
	struct spool *sp = *psp;
	if (!sp)
		return;
	*psp = NULL;
	if (sp->flushing)
		sp->closing = 1; /* flush_done finishes and frees */
	else
		spool_destroy(sp);
}
