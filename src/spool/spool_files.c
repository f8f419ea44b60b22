/* spool_files.c - the spool's per-message files: writing one, reading
 * its envelope and body, rewriting its envelope, removing and listing them,
 * and putting them back from the write-ahead log at start (see spool.h,
 * docs/design/spool.md). */
#include "spool/spool_private.h"

#include <dirent.h>
#include <errno.h>
#include <event2/buffer.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "core/log.h"

/* iovecs handed to one writev. */
#define IOV_BATCH 64
/* Read size while looking for the end of the envelope. */
#define HEAD_CHUNK 16384
/* Buffer for comparing a file with a log record. */
#define CMP_CHUNK 65536

/* spool_valid_id - [0-9A-Za-z]{1,31}: the only names the spool opens. */
int spool_valid_id(const char *id)
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

/* spool_req_fail - R failed with ERRNUM: close and remove its tmp file. */
void spool_req_fail(struct spool *sp, struct commit_req *r, int errnum)
{
	if (!r->errnum)
		r->errnum = errnum ? errnum : EIO;
	if (r->fd >= 0) {
		close(r->fd);
		r->fd = -1;
	}
	unlinkat(sp->tmpfd, r->id, 0);
}

/* spool_write_tmp - tmp/ID (a spare renamed, or a new file) with the
 * envelope and body written into it. */
void spool_write_tmp(struct spool *sp, struct commit_req *r)
{
	r->fd = spool_spare_take(sp, r->id);
	if (r->fd < 0)
		r->fd = openat(sp->tmpfd, r->id, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (r->fd < 0) {
		r->errnum = errno;
		return; /* nothing of ours to remove: it may be someone else's */
	}
	if (write_message(r->fd, r->head, r->headlen, r->body) < 0)
		spool_req_fail(sp, r, errno);
}

/* spool_rename_noreplace - tmp/ID to msg/ID, refusing to overwrite a message
 * already there (ids are unique; this makes it a checked promise). */
int spool_rename_noreplace(struct spool *sp, const char *id)
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

/* ---- reading ---- */

/* read_head - open msg/ID and read its envelope text (without the blank
 * line) into a malloc'ed *TEXT of *LEN bytes; *BODY_OFF is where the body
 * starts.  Returns the open fd, or -1 with errno (EINVAL: no blank line
 * within ENVELOPE_TEXT_MAX). */
static int read_head(struct spool *sp, const char *id, char **text, size_t *len, long *body_off)
{
	if (!spool_valid_id(id))
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
	if (!spool_valid_id(env->id))
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

/* spool_remove - msg/ID becomes a spare file, or is unlinked.  The
 * directory is not fsynced: if a crash forgets the removal the message is
 * delivered again, which at-least-once allows, and each delivery saves a
 * disk flush.  The write-ahead log is told, so its record of the message
 * does not bring the file back. */
int spool_remove(struct spool *sp, const char *id)
{
	if (!spool_valid_id(id))
		return errno = EINVAL, -1;
	if (spool_spare_keep(sp, id) < 0 && unlinkat(sp->msgfd, id, 0) < 0)
		return -1;
	if (sp->wal)
		wal_forget(sp->wal, id);
	return 0;
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
		if (!spool_valid_id(de->d_name))
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

/* ---- recovery from the write-ahead log ---- */

/* body_equals - the LEN bytes of FD from OFF are BODY. */
static int body_equals(int fd, long off, const char *body, size_t len)
{
	char *buf = malloc(CMP_CHUNK);
	size_t done = 0;
	while (buf && done < len) {
		size_t want = len - done < CMP_CHUNK ? len - done : CMP_CHUNK;
		ssize_t n = pread(fd, buf, want, off + (off_t)done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || memcmp(buf, body + done, (size_t)n) != 0)
			break;
		done += (size_t)n;
	}
	free(buf);
	return done == len;
}

/* file_is_whole - msg/ID reads as a message with this body.  Its envelope
 * may differ from the record's: an update (fsynced) may have rewritten it
 * since, and that newer state is what must survive.  A file the crash cut
 * short, emptied or left with a damaged envelope is not whole. */
static int file_is_whole(struct spool *sp, const char *id, const char *body, size_t bodylen)
{
	char *text;
	size_t len;
	long off;
	int fd = read_head(sp, id, &text, &len, &off);
	if (fd < 0)
		return 0;
	struct envelope env;
	int ok = envelope_parse(text, len, &env) == 0;
	if (ok) {
		ok = strcmp(env.id, id) == 0;
		envelope_free(&env);
	}
	free(text);
	struct stat st;
	ok = ok && fstat(fd, &st) == 0 && (uint64_t)st.st_size == (uint64_t)off + bodylen &&
	     body_equals(fd, off, body, bodylen);
	close(fd);
	return ok;
}

/* restore - make msg/ID whole from its log record: kept when it already
 * is, else written in tmp/, fdatasynced and renamed over (replay_sync then
 * fsyncs msg/ once for all). */
static int restore(void *arg, const char *id, const char *head, size_t headlen, const char *body,
		   size_t bodylen)
{
	struct spool *sp = arg;
	if (!spool_valid_id(id)) {
		log_warn("spool: write-ahead log: record with a bad id skipped");
		return 0;
	}
	if (file_is_whole(sp, id, body, bodylen))
		return 0;
	int fd = openat(sp->tmpfd, id, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	int rc = 0;
	if (write_full(fd, head, headlen) < 0 || write_full(fd, body, bodylen) < 0 ||
	    fdatasync(fd) < 0)
		rc = -1;
	int e = errno;
	close(fd);
	if (rc == 0 && renameat(sp->tmpfd, id, sp->msgfd, id) == 0) {
		log_info("%s: restored from the write-ahead log", id);
		return 0;
	}
	e = rc < 0 ? e : errno;
	unlinkat(sp->tmpfd, id, 0);
	errno = e;
	return -1;
}

/* forget - a removed message whose unlink the crash may have undone. */
static void forget(void *arg, const char *id)
{
	struct spool *sp = arg;
	if (spool_valid_id(id))
		unlinkat(sp->msgfd, id, 0);
}

/* replay_sync - the restores and unlinks of recovery made durable. */
static int replay_sync(void *arg)
{
	struct spool *sp = arg;
	return fsync(sp->msgfd);
}

void spool_replay_callbacks(struct spool *sp, struct wal_replay *cb)
{
	*cb = (struct wal_replay){
		.restore = restore, .forget = forget, .sync = replay_sync, .arg = sp};
}
