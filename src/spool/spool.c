/* spool.c - the durable message store (see spool.h, docs/design/spool.md).
 *
 * RFC 5321 6.1: once a server has answered 250 to the end of the data it
 * has taken responsibility for the message and must not lose it.  Here
 * that means: the file is written in tmp/, its data fsynced, renamed into
 * msg/, and msg/ fsynced, all before the commit callback reports success.
 *
 * Group commit: the loop collects commit requests in a waiting list.  When
 * no flush is running, the whole list becomes one batch handed to one
 * worker job; requests arriving meanwhile wait for the next batch.  The
 * batch shares the directory fsync (and, since all its files are written
 * before the first fdatasync, mostly the journal commits too). */
#include "spool/spool.h"

#include <dirent.h>
#include <errno.h>
#include <event2/buffer.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <unistd.h>

#include "core/log.h"
#include "core/workers.h"

/* Files a flush keeps open at once: it writes this many, then syncs them. */
#define FLUSH_OPEN_MAX 64
/* iovecs handed to one writev. */
#define IOV_BATCH 64
/* Read size while looking for the end of the envelope. */
#define HEAD_CHUNK 16384

struct commit_req {
	struct commit_req *next;
	char id[32];
	char *head; /* envelope text with its blank line (owned) */
	size_t headlen;
	struct evbuffer *body; /* owned; read only by the flush job */
	spool_commit_cb cb;
	void *arg;
	int fd;	     /* tmp/ID while the flush writes it, else -1 */
	int renamed; /* msg/ID exists */
	int errnum;  /* 0 while all is well */
};

struct spool {
	char *dir;
	int dirfd, msgfd, tmpfd;
	struct workers *pool;
	/* Loop-only state: the requests waiting for the next flush, and the
	 * batch a running flush owns (the loop does not touch it then). */
	struct commit_req *wait_head, *wait_tail;
	struct commit_req *batch;
	int flushing;
	int closing;
	unsigned long flushes;
	/* Queue ids may be asked for from any thread. */
	pthread_mutex_t id_lock;
	uint64_t last_stamp;
};

/* valid_id - [0-9A-Za-z]{1,31}: the only names the spool opens. */
static int valid_id(const char *id)
{
	size_t n = strnlen(id, 32);
	if (n == 0 || n > 31)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = id[i];
		if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')))
			return 0;
	}
	return 1;
}

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

static void spool_destroy(struct spool *sp)
{
	if (sp->dirfd >= 0)
		close(sp->dirfd); /* releases the flock */
	if (sp->msgfd >= 0)
		close(sp->msgfd);
	if (sp->tmpfd >= 0)
		close(sp->tmpfd);
	pthread_mutex_destroy(&sp->id_lock);
	free(sp->dir);
	free(sp);
}

struct spool *spool_open(const char *dir, struct workers *pool, char *err, size_t errlen)
{
	struct spool *sp = calloc(1, sizeof *sp);
	if (!sp || !(sp->dir = strdup(dir))) {
		snprintf(err, errlen, "spool: out of memory");
		free(sp);
		return NULL;
	}
	sp->dirfd = sp->msgfd = sp->tmpfd = -1;
	sp->pool = pool;
	pthread_mutex_init(&sp->id_lock, NULL);
	const char *what = "mkdir";
	if (mkdir_p(dir) < 0)
		goto fail;
	what = "open";
	if ((sp->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		goto fail;
	what = "lock (is another ternd using it?)";
	if (flock(sp->dirfd, LOCK_EX | LOCK_NB) < 0)
		goto fail;
	what = "msg/";
	if ((sp->msgfd = open_subdir(sp->dirfd, "msg")) < 0)
		goto fail;
	what = "tmp/";
	if ((sp->tmpfd = open_subdir(sp->dirfd, "tmp")) < 0)
		goto fail;
	/* The subdirectories must survive a crash like the files in them. */
	what = "fsync";
	if (fsync(sp->dirfd) < 0)
		goto fail;
	unsigned removed = 0;
	what = "cleaning tmp/";
	if (clear_dir(sp->tmpfd, &removed) < 0)
		goto fail;
	if (removed)
		log_info("spool: removed %u unfinished file(s) from %s/tmp", removed, dir);
	return sp;
fail:
	snprintf(err, errlen, "spool %s: %s: %s", dir, what, strerror(errno));
	spool_destroy(sp);
	return NULL;
}

const char *spool_dir(const struct spool *sp)
{
	return sp->dir;
}

unsigned long spool_flushes(const struct spool *sp)
{
	return sp->flushes;
}

/* ---- the flush job (worker thread) ---- */

/* write_full - all N bytes of BUF, across short writes and EINTR. */
static int write_full(int fd, const void *buf, size_t n)
{
	const char *p = buf;
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? -1 : (errno = EIO, -1);
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* write_message - HEAD then every byte of BODY (may be NULL) with writev
 * over the evbuffer's own chunks: no copy, and BODY is not drained. */
static int write_message(int fd, const char *head, size_t headlen, struct evbuffer *body)
{
	size_t hdone = 0, left = body ? evbuffer_get_length(body) : 0;
	struct evbuffer_ptr pos;
	if (left && evbuffer_ptr_set(body, &pos, 0, EVBUFFER_PTR_SET) < 0)
		return errno = EIO, -1;
	while (hdone < headlen || left) {
		struct evbuffer_iovec ev[IOV_BATCH];
		struct iovec iov[IOV_BATCH + 1];
		int k = 0, n = 0;
		if (hdone < headlen)
			iov[k++] = (struct iovec){(char *)head + hdone, headlen - hdone};
		if (left && (n = evbuffer_peek(body, (ev_ssize_t)left, &pos, ev, IOV_BATCH)) <= 0)
			return errno = EIO, -1;
		size_t total = 0;
		for (int i = 0; i < n && i < IOV_BATCH && total < left; i++) {
			size_t len = ev[i].iov_len;
			if (len > left - total)
				len = left - total; /* the last chunk may run past LEFT */
			iov[k++] = (struct iovec){ev[i].iov_base, len};
			total += len;
		}
		ssize_t w = writev(fd, iov, k);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? -1 : (errno = EIO, -1);
		size_t used = (size_t)w;
		if (hdone < headlen) {
			size_t h = used < headlen - hdone ? used : headlen - hdone;
			hdone += h;
			used -= h;
		}
		left -= used;
		if (used && left && evbuffer_ptr_set(body, &pos, used, EVBUFFER_PTR_ADD) < 0)
			return errno = EIO, -1;
	}
	return 0;
}

/* req_fail - R failed with ERRNUM: close and remove its tmp file. */
static void req_fail(struct spool *sp, struct commit_req *r, int errnum)
{
	if (!r->errnum)
		r->errnum = errnum ? errnum : EIO;
	if (r->fd >= 0) {
		close(r->fd);
		r->fd = -1;
	}
	unlinkat(sp->tmpfd, r->id, 0);
}

/* write_tmp - create tmp/ID and write the envelope and body into it. */
static void write_tmp(struct spool *sp, struct commit_req *r)
{
	r->fd = openat(sp->tmpfd, r->id, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (r->fd < 0) {
		r->errnum = errno;
		return; /* nothing of ours to remove: it may be someone else's */
	}
	if (write_message(r->fd, r->head, r->headlen, r->body) < 0)
		req_fail(sp, r, errno);
}

/* sync_tmp - R's data on stable storage, its fd closed. */
static void sync_tmp(struct spool *sp, struct commit_req *r)
{
	if (r->fd < 0)
		return;
	if (fdatasync(r->fd) < 0) {
		req_fail(sp, r, errno);
		return;
	}
	int fd = r->fd;
	r->fd = -1;
	if (close(fd) < 0 && errno != EINTR)
		req_fail(sp, r, errno);
}

/* rename_noreplace - tmp/ID to msg/ID, refusing to overwrite a message
 * already there (ids are unique; this makes it a checked promise). */
static int rename_noreplace(struct spool *sp, const char *id)
{
	if (renameat2(sp->tmpfd, id, sp->msgfd, id, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -1;
	/* A file system without RENAME_NOREPLACE: check, then rename. */
	struct stat st;
	if (fstatat(sp->msgfd, id, &st, AT_SYMLINK_NOFOLLOW) == 0)
		return errno = EEXIST, -1;
	return renameat(sp->tmpfd, id, sp->msgfd, id);
}

/* flush_work - the whole batch: write every file, fdatasync each (the
 * first sync's journal commit carries the others' allocations), rename the
 * good ones into msg/, then one fsync of msg/ makes every name durable. */
static void flush_work(void *arg)
{
	struct spool *sp = arg;
	struct commit_req *r = sp->batch;
	while (r) {
		struct commit_req *first = r;
		for (int k = 0; r && k < FLUSH_OPEN_MAX; r = r->next, k++)
			if (!r->errnum)
				write_tmp(sp, r);
		for (struct commit_req *q = first; q != r; q = q->next)
			sync_tmp(sp, q);
	}
	int renamed = 0;
	for (r = sp->batch; r; r = r->next) {
		if (r->errnum)
			continue;
		if (rename_noreplace(sp, r->id) < 0) {
			req_fail(sp, r, errno);
			continue;
		}
		r->renamed = 1;
		renamed++;
	}
	if (!renamed)
		return;
	if (fsync(sp->msgfd) < 0) {
		/* The names may not be durable: none of these may get a 250.
		 * The client retries; remove what we would otherwise deliver. */
		int e = errno;
		for (r = sp->batch; r; r = r->next)
			if (r->renamed && !r->errnum) {
				unlinkat(sp->msgfd, r->id, 0);
				r->errnum = e;
			}
		return;
	}
	/* The tmp/ entries are gone; persisting that only spares a cleanup. */
	char buf[128];
	if (fsync(sp->tmpfd) < 0)
		log_warn("spool: fsync %s/tmp: %s", sp->dir, strerror_r(errno, buf, sizeof buf));
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
	r->cb = cb;
	r->arg = arg;
	r->fd = -1;
	memcpy(r->id, env->id, sizeof r->id);
	r->id[sizeof r->id - 1] = '\0';
	/* Failures found here still travel through the flush so the callback
	 * runs later, on the loop, like every other outcome. */
	if (!valid_id(r->id))
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

/* ---- reading ---- */

/* read_head - open msg/ID and read its envelope text (without the blank
 * line) into a malloc'ed *TEXT of *LEN bytes; *BODY_OFF is where the body
 * starts.  Returns the open fd, or -1 with errno (EINVAL: no blank line
 * within ENVELOPE_TEXT_MAX). */
static int read_head(struct spool *sp, const char *id, char **text, size_t *len, long *body_off)
{
	if (!valid_id(id))
		return errno = EINVAL, -1;
	int fd = openat(sp->msgfd, id, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	char *buf = NULL;
	size_t have = 0, cap = 0;
	for (;;) {
		if (cap - have < HEAD_CHUNK) {
			if (cap >= ENVELOPE_TEXT_MAX + 2)
				goto bad;
			size_t ncap = cap ? cap * 2 : HEAD_CHUNK;
			char *n = realloc(buf, ncap);
			if (!n)
				goto fail;
			buf = n;
			cap = ncap;
		}
		ssize_t r = pread(fd, buf + have, cap - have, (off_t)have);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			goto fail;
		if (r == 0)
			goto bad; /* end of file before the blank line */
		/* Search only the new bytes (and the one before them). */
		size_t from = have ? have - 1 : 0;
		have += (size_t)r;
		char *end = memmem(buf + from, have - from, "\n\n", 2);
		if (end) {
			*len = (size_t)(end - buf) + 1; /* keep the last line's LF */
			*body_off = (long)(*len + 1);
			*text = buf;
			return fd;
		}
	}
bad:
	errno = EINVAL;
fail:;
	int e = errno;
	free(buf);
	close(fd);
	errno = e;
	return -1;
}

int spool_read_envelope(struct spool *sp, const char *id, struct envelope *env)
{
	char *text;
	size_t len;
	long off;
	envelope_init(env);
	int fd = read_head(sp, id, &text, &len, &off);
	if (fd < 0)
		return -1;
	close(fd);
	int rc = envelope_parse(text, len, env);
	int e = errno;
	free(text);
	if (rc == 0 && strcmp(env->id, id) != 0) {
		/* A file whose envelope names another message is damaged. */
		envelope_free(env);
		rc = -1;
		e = EINVAL;
	}
	errno = e;
	return rc;
}

int spool_open_body(struct spool *sp, const char *id, long *offset, size_t *size)
{
	char *text;
	size_t len;
	long off;
	int fd = read_head(sp, id, &text, &len, &off);
	if (fd < 0)
		return -1;
	free(text);
	struct stat st;
	int e = 0;
	if (fstat(fd, &st) < 0 || lseek(fd, off, SEEK_SET) < 0)
		e = errno;
	else if (st.st_size < off)
		e = EINVAL;
	if (e) {
		close(fd);
		return errno = e, -1;
	}
	*offset = off;
	*size = (size_t)(st.st_size - off);
	return fd;
}

/* ---- rewriting and removing ---- */

/* copy_range - LEN bytes of SRC from offset OFF to the end of DST: in the
 * kernel where it can (copy_file_range), else through a bounded buffer. */
static int copy_range(int src, off_t off, int dst, size_t len)
{
	while (len) {
		ssize_t n = copy_file_range(src, &off, dst, NULL, len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n > 0) {
			len -= (size_t)n;
			continue;
		}
		if (n == 0)
			return errno = EIO, -1; /* the file shrank under us */
		if (errno != ENOSYS && errno != EXDEV && errno != EINVAL && errno != EOPNOTSUPP)
			return -1;
		break;
	}
	char buf[65536];
	while (len) {
		ssize_t n = pread(src, buf, len < sizeof buf ? len : sizeof buf, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -1 : (errno = EIO, -1);
		if (write_full(dst, buf, (size_t)n) < 0)
			return -1;
		off += n;
		len -= (size_t)n;
	}
	return 0;
}

/* spool_update_envelope - tmp/ID.new gets the new envelope and the old
 * body; fdatasync; rename over msg/ID (atomic: a crash leaves the old or
 * the new file, never a mix); fsync msg/. */
int spool_update_envelope(struct spool *sp, const struct envelope *env)
{
	char *head = NULL, tmpname[48];
	size_t headlen;
	long off;
	size_t bodylen;
	int src = -1, dst = -1, e;
	if (!valid_id(env->id))
		return errno = EINVAL, -1;
	snprintf(tmpname, sizeof tmpname, "%s.new", env->id);
	if ((src = spool_open_body(sp, env->id, &off, &bodylen)) < 0)
		return -1;
	if (envelope_format(env, &head, &headlen) < 0)
		goto fail;
	/* A leftover of an update that failed before its unlink. */
	unlinkat(sp->tmpfd, tmpname, 0);
	dst = openat(sp->tmpfd, tmpname, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (dst < 0)
		goto fail;
	if (write_full(dst, head, headlen) < 0 || copy_range(src, off, dst, bodylen) < 0 ||
	    fdatasync(dst) < 0)
		goto fail_unlink;
	e = close(dst);
	dst = -1;
	if ((e < 0 && errno != EINTR) || renameat(sp->tmpfd, tmpname, sp->msgfd, env->id) < 0)
		goto fail_unlink;
	close(src);
	free(head);
	return fsync(sp->msgfd);
fail_unlink:
	e = errno;
	unlinkat(sp->tmpfd, tmpname, 0);
	errno = e;
fail:
	e = errno;
	if (dst >= 0)
		close(dst);
	close(src);
	free(head);
	errno = e;
	return -1;
}

/* spool_remove - unlink msg/ID.  The directory is not fsynced: if a crash
 * forgets the unlink the message is delivered again, which at-least-once
 * allows, and each delivery saves a disk flush. */
int spool_remove(struct spool *sp, const char *id)
{
	if (!valid_id(id))
		return errno = EINVAL, -1;
	return unlinkat(sp->msgfd, id, 0);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* spool_list - sorted, so recovery takes the oldest messages first (ids
 * begin with their time stamp). */
char **spool_list(struct spool *sp, size_t *n)
{
	*n = 0;
	int fd = openat(sp->msgfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd < 0 ? NULL : fdopendir(fd);
	if (!d) {
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	char **ids = NULL;
	size_t count = 0, cap = 0;
	struct dirent *de;
	for (;;) {
		errno = 0;
		if (!(de = readdir(d))) {
			if (errno)
				goto fail; /* a partial list would lose messages */
			break;
		}
		if (!valid_id(de->d_name))
			continue; /* ".", "..", and nothing we wrote */
		if (count == cap) {
			size_t ncap = cap ? cap * 2 : 64;
			char **nids = realloc(ids, ncap * sizeof *nids);
			if (!nids)
				goto fail;
			ids = nids;
			cap = ncap;
		}
		if (!(ids[count] = strdup(de->d_name)))
			goto fail;
		count++;
	}
	closedir(d);
	if (!count) {
		free(ids);
		errno = 0;
		return NULL;
	}
	qsort(ids, count, sizeof *ids, cmp_str);
	*n = count;
	return ids;
fail:;
	int e = errno ? errno : ENOMEM;
	closedir(d);
	for (size_t i = 0; i < count; i++)
		free(ids[i]);
	free(ids);
	errno = e;
	return NULL;
}
