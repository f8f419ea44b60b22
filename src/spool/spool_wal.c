/* spool_wal.c - the spool's write-ahead log: the file, appends and
 * checkpoints (see spool_wal.h and docs/design/spool.md; recovery is in
 * spool_wal_scan.c).
 *
 * Why a preallocated file: an fdatasync of a file whose blocks are all
 * allocated and written syncs data alone (mtime is not data), so it costs a
 * disk flush but no journal commit, where creating and fsyncing a file per
 * message costs a journal commit each.  The blocks are written with zeros
 * once at creation: fallocate alone would leave unwritten extents whose
 * first write is a metadata change again.  Every append fills whole 4 KiB
 * pages (a batch ends with a pad record up to the page end), so the kernel
 * never reads a page back from disk to merge a partial write. */
#include "spool/spool_wal_private.h"

#include <errno.h>
#include <event2/buffer.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "spool/crc32c.h"

/* The smallest log worth having (tests use small ones). */
#define WAL_MIN_SIZE (64u * 1024)
/* Zeros written per call while creating the log. */
#define CREATE_CHUNK (1u << 20)

static const char zeros[WAL_PAGE];

/* floor_page - N rounded down to whole pages. */
static uint64_t floor_page(uint64_t n)
{
	return n / WAL_PAGE * WAL_PAGE;
}

/* ---- the file ---- */

/* pwritev_all - every byte of the CNT iovecs at OFF, across short writes
 * and EINTR (IOV is consumed). */
static int pwritev_all(int fd, struct iovec *iov, size_t cnt, off_t off)
{
	while (cnt) {
		int k = cnt > IOV_MAX ? IOV_MAX : (int)cnt;
		ssize_t n = pwritev(fd, iov, k, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -1 : (errno = EIO, -1);
		off += n;
		size_t left = (size_t)n;
		while (cnt && left >= iov->iov_len) {
			left -= iov->iov_len;
			iov++;
			cnt--;
		}
		if (cnt && left) { /* a partly written iovec */
			iov->iov_base = (char *)iov->iov_base + left;
			iov->iov_len -= left;
		}
	}
	return 0;
}

/* wal_pread - exactly LEN bytes at OFF (a short read is EIO: the file's
 * size never changes). */
int wal_pread(int fd, void *buf, size_t len, off_t off)
{
	char *p = buf;
	while (len) {
		ssize_t n = pread(fd, p, len, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -1 : (errno = EIO, -1);
		p += n;
		off += n;
		len -= (size_t)n;
	}
	return 0;
}

/* slot_crc - the checksum of a head slot (its crc field taken as 0). */
static uint32_t slot_crc(struct wal_slot s)
{
	s.crc = 0;
	return crc32c(0, &s, sizeof s);
}

/* read_slots - the valid head slot with the highest sequence number into
 * W's ckpt and seq; -1 (EINVAL) when neither slot is valid. */
static int read_slots(struct wal *w)
{
	int found = 0;
	for (int i = 0; i < 2; i++) {
		struct wal_slot s;
		if (wal_pread(w->fd, &s, sizeof s, (off_t)i * WAL_PAGE) < 0)
			return -1;
		if (s.magic != WAL_SLOT_MAGIC || s.size != w->size || slot_crc(s) != s.crc)
			continue; /* torn, or never written */
		if (!found || s.seq > w->slot_seq) {
			w->slot_seq = s.seq;
			w->ckpt = s.ckpt;
			found = 1;
		}
	}
	return found ? 0 : (errno = EINVAL, -1);
}

/* wal_write_slot - record CKPT in the older slot and fdatasync: a torn
 * write leaves the other slot, one checkpoint behind, which only means a
 * longer replay. */
int wal_write_slot(struct wal *w, uint64_t ckpt)
{
	unsigned char page[WAL_PAGE] = {0};
	struct wal_slot s = {
		.magic = WAL_SLOT_MAGIC, .seq = w->slot_seq + 1, .size = w->size, .ckpt = ckpt};
	s.crc = slot_crc(s);
	memcpy(page, &s, sizeof s);
	off_t off = (off_t)(s.seq % 2) * WAL_PAGE;
	for (;;) {
		ssize_t n = pwrite(w->fd, page, sizeof page, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n != (ssize_t)sizeof page)
			return n < 0 ? -1 : (errno = EIO, -1);
		break;
	}
	if (fdatasync(w->fd) < 0)
		return -1;
	w->slot_seq = s.seq;
	return 0;
}

/* fill_zeros - SIZE bytes of zeros from offset 0 of FD. */
static int fill_zeros(int fd, uint64_t size)
{
	for (uint64_t off = 0; off < size; off += CREATE_CHUNK) {
		struct iovec iov[CREATE_CHUNK / WAL_PAGE];
		size_t pages = 0;
		for (uint64_t o = off; o < size && pages < sizeof iov / sizeof *iov; o += WAL_PAGE)
			iov[pages++] = (struct iovec){(void *)zeros, WAL_PAGE};
		if (pwritev_all(fd, iov, pages, (off_t)off) < 0)
			return -1;
	}
	return 0;
}

/* create_log - wal/log.new written with zeros through, its first head
 * slot, fsynced, then renamed to wal/log and the directory fsynced: a log
 * that exists is always whole. */
static int create_log(struct wal *w, int waldfd)
{
	unlinkat(waldfd, "log.new", 0);
	w->fd = openat(waldfd, "log.new", O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (w->fd < 0)
		return -1;
	w->slot_seq = 0;
	if (fill_zeros(w->fd, WAL_HEAD_BYTES + w->size) < 0 || wal_write_slot(w, 0) < 0 ||
	    fsync(w->fd) < 0 || renameat(waldfd, "log.new", waldfd, "log") < 0 ||
	    fsync(waldfd) < 0) {
		int e = errno;
		close(w->fd);
		w->fd = -1;
		unlinkat(waldfd, "log.new", 0);
		errno = e;
		return -1;
	}
	return 0;
}

/* open_log - the existing wal/log: its size from the file, its checkpoint
 * from the head slots.  -1 with errno: 0 means "no log yet". */
static int open_log(struct wal *w, int waldfd)
{
	w->fd = openat(waldfd, "log", O_RDWR | O_CLOEXEC);
	if (w->fd < 0)
		return errno == ENOENT ? (errno = 0, -1) : -1;
	struct stat st;
	if (fstat(w->fd, &st) < 0)
		return -1;
	uint64_t fsize = (uint64_t)st.st_size;
	if (fsize < WAL_HEAD_BYTES + WAL_MIN_SIZE || fsize % WAL_PAGE)
		return errno = EINVAL, -1;
	w->size = fsize - WAL_HEAD_BYTES;
	return read_slots(w);
}

/* choose_size - LIM's size, unless the file system has less than four
 * times that free: then no log (0), so a small disk keeps its room for
 * messages and the file path still works. */
static uint64_t choose_size(int dirfd, const struct wal_limits *lim)
{
	uint64_t size = floor_page(lim->size);
	struct statvfs sv;
	if (size < WAL_MIN_SIZE)
		return 0;
	if (fstatvfs(dirfd, &sv) == 0 && (uint64_t)sv.f_bavail * sv.f_frsize / 4 < size) {
		log_info("spool: %llu KiB free, no write-ahead log: each commit fsyncs its file",
			 (unsigned long long)((uint64_t)sv.f_bavail * sv.f_frsize / 1024));
		return 0;
	}
	return size;
}

/* wal_alloc - an empty wal (no file yet), its locks ready. */
static struct wal *wal_alloc(int msgfd, const struct wal_limits *lim)
{
	struct wal *w = calloc(1, sizeof *w);
	if (!w)
		return NULL;
	w->fd = w->gone_fd[0] = w->gone_fd[1] = -1;
	w->msgfd = msgfd;
	w->checkpoint_ms = lim->checkpoint_ms;
	pthread_mutex_init(&w->lock, NULL);
	pthread_mutex_init(&w->ckpt_lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&w->cond, &ca);
	pthread_condattr_destroy(&ca);
	return w;
}

/* wal_free - close the files and free W (the thread is stopped). */
static void wal_free(struct wal *w)
{
	if (w->fd >= 0)
		close(w->fd);
	for (int i = 0; i < 2; i++)
		if (w->gone_fd[i] >= 0)
			close(w->gone_fd[i]);
	pthread_mutex_destroy(&w->lock);
	pthread_mutex_destroy(&w->ckpt_lock);
	pthread_cond_destroy(&w->cond);
	free(w);
}

int wal_open(int dirfd, int msgfd, const struct wal_limits *lim, struct wal **out, char *err,
	     size_t errlen)
{
	*out = NULL;
	if (mkdirat(dirfd, "wal", 0700) < 0 && errno != EEXIST)
		return snprintf(err, errlen, "wal/: %s", strerror(errno)), -1;
	int waldfd = openat(dirfd, "wal", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct wal *w = waldfd < 0 ? NULL : wal_alloc(msgfd, lim);
	if (!w) {
		snprintf(err, errlen, "wal/: %s", strerror(errno));
		if (waldfd >= 0)
			close(waldfd);
		return -1;
	}
	if (open_log(w, waldfd) < 0) {
		if (errno) {
			/* Acknowledged messages may be in there: refuse to
			 * start rather than forget them. */
			snprintf(err, errlen,
				 "wal/log: %s (unreadable checkpoint; moving the file away "
				 "starts without replaying it)",
				 strerror(errno));
			close(waldfd);
			wal_free(w);
			return -1;
		}
		w->size = choose_size(dirfd, lim);
		if (!w->size || create_log(w, waldfd) < 0) {
			if (w->size)
				log_warn("spool: cannot create the write-ahead log (%s): each "
					 "commit fsyncs its file",
					 strerror(errno));
			close(waldfd);
			wal_free(w);
			return 0;
		}
	}
	if (wal_gone_open(w, waldfd) < 0) {
		snprintf(err, errlen, "wal/removed: %s", strerror(errno));
		close(waldfd);
		wal_free(w);
		return -1;
	}
	close(waldfd);
	w->tail = w->safe = w->ckpt; /* until wal_recover moves on */
	/* One record must always fit with room to spare. */
	w->record_max = lim->record_max < w->size / 4 ? lim->record_max : w->size / 4;
	*out = w;
	return 0;
}

/* ---- appending ---- */

size_t wal_record_len(const struct wal *w, size_t headlen, size_t bodylen)
{
	size_t n = WAL_REC_HDR + headlen + bodylen;
	if (n > w->record_max || n < headlen || headlen > UINT32_MAX || bodylen > UINT32_MAX)
		return 0;
	return (n + WAL_REC_ALIGN - 1) / WAL_REC_ALIGN * WAL_REC_ALIGN;
}

/* kick - ask the checkpointer for a checkpoint now (lock held). */
static void kick(struct wal *w)
{
	w->kick = 1;
	pthread_cond_signal(&w->cond);
}

size_t wal_room(struct wal *w)
{
	pthread_mutex_lock(&w->lock);
	int usable = !w->off && !w->stop;
	uint64_t tail = w->tail, used = w->tail - w->ckpt;
	if (used >= w->size / 2)
		kick(w);
	pthread_mutex_unlock(&w->lock);
	if (!usable)
		return 0;
	/* The batch is page-rounded; it either fits before the end of the
	 * ring or starts a new lap after a pad to the end. */
	uint64_t free = w->size - used, rem = w->size - tail % w->size;
	uint64_t cap = floor_page(rem < free ? rem : free);
	if (free > rem) {
		uint64_t wrap = floor_page(free - rem);
		if (wrap > cap)
			cap = wrap;
	}
	return cap > SIZE_MAX ? SIZE_MAX : (size_t)cap;
}

/* iov_push - one more iovec in B (grown as needed); empty ones skipped. */
static int iov_push(struct wal_iovs *b, const void *p, size_t len)
{
	if (!len)
		return 0;
	if (b->n == b->cap) {
		size_t ncap = b->cap ? b->cap * 2 : 64;
		struct iovec *v = realloc(b->v, ncap * sizeof *v);
		if (!v)
			return -1;
		b->v = v;
		b->cap = ncap;
	}
	b->v[b->n++] = (struct iovec){(void *)p, len};
	return 0;
}

/* push_body - BODY's first LEN bytes as iovecs over its own chunks (no
 * copy), extending *CRC over them. */
static int push_body(struct wal_iovs *b, struct evbuffer *body, size_t len, uint32_t *crc)
{
	if (!len)
		return 0;
	int n = evbuffer_peek(body, (ev_ssize_t)len, NULL, NULL, 0);
	if (n <= 0)
		return errno = EIO, -1;
	struct evbuffer_iovec *ev = calloc((size_t)n, sizeof *ev);
	if (!ev)
		return -1;
	n = evbuffer_peek(body, (ev_ssize_t)len, NULL, ev, n);
	size_t total = 0;
	int rc = 0;
	for (int i = 0; i < n && total < len && rc == 0; i++) {
		size_t l = ev[i].iov_len < len - total ? ev[i].iov_len : len - total;
		*crc = crc32c(*crc, ev[i].iov_base, l);
		rc = iov_push(b, ev[i].iov_base, l);
		total += l;
	}
	free(ev);
	if (rc == 0 && total != len)
		return errno = EIO, -1;
	return rc;
}

/* push_record - the header H (filled but for its crc), HEAD, BODY and the
 * zeros up to H->len; computes H->crc. */
static int push_record(struct wal_iovs *b, struct wal_rec *h, const char *head,
		       struct evbuffer *body)
{
	h->crc = 0;
	uint32_t crc = crc32c(0, h, sizeof *h);
	if (iov_push(b, h, sizeof *h) < 0)
		return -1;
	if (h->headlen) {
		crc = crc32c(crc, head, h->headlen);
		if (iov_push(b, head, h->headlen) < 0)
			return -1;
	}
	if (push_body(b, body, h->bodylen, &crc) < 0)
		return -1;
	h->crc = crc;
	return iov_push(b, zeros, h->len - sizeof *h - h->headlen - h->bodylen);
}

/* build_batch - headers into HS and iovecs into B for the items and the
 * closing pad, from LSN START.  Returns the batch's length (page-rounded),
 * 0 on allocation failure. */
static uint64_t build_batch(struct wal *w, struct wal_iovs *b, struct wal_rec *hs, uint64_t start,
			    const struct wal_item *items, size_t n)
{
	uint64_t pos = start;
	struct wal_rec *h = hs;
	for (size_t i = 0; i < n; i++, h++) {
		*h = (struct wal_rec){.magic = WAL_REC_MAGIC,
				      .type = WAL_MESSAGE,
				      .lsn = pos,
				      .headlen = (uint32_t)items[i].headlen,
				      .bodylen = (uint32_t)items[i].bodylen};
		h->len = (uint32_t)wal_record_len(w, items[i].headlen, items[i].bodylen);
		snprintf(h->id, sizeof h->id, "%s", items[i].id);
		if (push_record(b, h, items[i].head, items[i].body) < 0)
			return 0;
		pos += h->len;
	}
	uint64_t gap = (WAL_PAGE - pos % WAL_PAGE) % WAL_PAGE;
	if (gap) {
		*h = (struct wal_rec){
			.magic = WAL_REC_MAGIC, .type = WAL_PAD, .lsn = pos, .len = (uint32_t)gap};
		if (push_record(b, h, NULL, NULL) < 0)
			return 0;
		pos += gap;
	}
	return pos - start;
}

/* write_wrap_pad - a pad record from LSN AT to the end of the ring's lap,
 * one whole page written. */
static int write_wrap_pad(struct wal *w, uint64_t at)
{
	unsigned char page[WAL_PAGE] = {0};
	struct wal_rec h = {.magic = WAL_REC_MAGIC,
			    .type = WAL_PAD,
			    .lsn = at,
			    .len = (uint32_t)(w->size - at % w->size)};
	h.crc = crc32c(0, &h, sizeof h);
	memcpy(page, &h, sizeof h);
	struct iovec iov = {page, sizeof page};
	return pwritev_all(w->fd, &iov, 1, (off_t)(WAL_HEAD_BYTES + at % w->size));
}

/* batch_len - bytes the batch of N items takes. */
static uint64_t batch_len(const struct wal *w, const struct wal_item *items, size_t n)
{
	uint64_t len = 0;
	for (size_t i = 0; i < n; i++)
		len += wal_record_len(w, items[i].headlen, items[i].bodylen);
	return (len + WAL_PAGE - 1) / WAL_PAGE * WAL_PAGE;
}

/* append_failed - the batch ending at END may be half written: nothing
 * after it could be found by a scan, so the log is off until a checkpoint
 * moves past it. */
static void append_failed(struct wal *w, uint64_t end, int e)
{
	char buf[128];
	log_error("spool: write-ahead log: %s; committing with fsync per file until the next "
		  "checkpoint",
		  strerror_r(e, buf, sizeof buf));
	pthread_mutex_lock(&w->lock);
	w->off = 1;
	/* Every earlier batch is published; this one's messages take the
	 * file path, so nothing in the hole is owed to anyone. */
	w->tail = w->safe = end;
	kick(w);
	pthread_mutex_unlock(&w->lock);
	errno = e;
}

int wal_append(struct wal *w, const struct wal_item *items, size_t n)
{
	struct wal_rec *hs = calloc(n + 1, sizeof *hs); /* and the pad's */
	struct wal_iovs b = {0};
	int rc = -1, e = ENOMEM;
	if (!hs)
		goto out;
	pthread_mutex_lock(&w->lock);
	uint64_t start = w->tail;
	pthread_mutex_unlock(&w->lock);
	uint64_t len = batch_len(w, items, n), bstart = start;
	if (start % w->size + len > w->size)
		bstart = start + (w->size - start % w->size); /* the next lap */
	if (build_batch(w, &b, hs, bstart, items, n) != len)
		goto out;
	if ((bstart != start && write_wrap_pad(w, start) < 0) ||
	    pwritev_all(w->fd, b.v, b.n, (off_t)(WAL_HEAD_BYTES + bstart % w->size)) < 0 ||
	    fdatasync(w->fd) < 0) {
		append_failed(w, bstart + len, errno);
		e = errno;
		goto out;
	}
	pthread_mutex_lock(&w->lock);
	w->tail = bstart + len;
	w->counters.batches++;
	w->counters.records += n;
	if (w->tail - w->ckpt >= w->size / 2)
		kick(w);
	pthread_mutex_unlock(&w->lock);
	rc = 0;
out:
	free(b.v);
	free(hs);
	if (rc < 0)
		errno = e;
	return rc;
}

void wal_published(struct wal *w)
{
	pthread_mutex_lock(&w->lock);
	w->safe = w->tail;
	pthread_mutex_unlock(&w->lock);
}

/* ---- checkpoints ---- */

int wal_checkpoint(struct wal *w)
{
	pthread_mutex_lock(&w->ckpt_lock);
	pthread_mutex_lock(&w->lock);
	uint64_t t = w->safe;
	int idle = t == w->ckpt && !w->off, dead = w->dead;
	/* Removals noted from now on go to the other file: they may be of
	 * messages whose records come after T. */
	if (!idle && !dead)
		wal_gone_switch(w);
	pthread_mutex_unlock(&w->lock);
	int rc = 0;
	char buf[128];
	if (dead || idle)
		goto out;
	/* Every msg/ file (data and name) written so far, with the unlinks
	 * and the renames of updates, goes to stable storage. */
	if (syncfs(w->msgfd) < 0) {
		/* Linux reports a writeback error to syncfs once: a later
		 * success would not mean the data arrived.  Stop moving the
		 * checkpoint; the next start replays from the last good one. */
		log_error("spool: syncfs: %s; write-ahead log kept until restart",
			  strerror_r(errno, buf, sizeof buf));
		pthread_mutex_lock(&w->lock);
		w->dead = 1;
		pthread_mutex_unlock(&w->lock);
		rc = -1;
		goto out;
	}
	if (wal_write_slot(w, t) < 0) {
		log_warn("spool: write-ahead log checkpoint: %s",
			 strerror_r(errno, buf, sizeof buf));
		rc = -1;
		goto out;
	}
	pthread_mutex_lock(&w->lock);
	w->ckpt = t;
	w->gone_ok = 1;
	if (w->off && w->tail == t)
		w->off = 0; /* the damaged place is behind the checkpoint now */
	w->counters.checkpoints++;
	pthread_mutex_unlock(&w->lock);
out:
	pthread_mutex_unlock(&w->ckpt_lock);
	return rc;
}

/* deadline - now + MS on the monotonic clock. */
static struct timespec deadline(int ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	return ts;
}

/* passed - the monotonic clock is at or after T. */
static int passed(const struct timespec *t)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec > t->tv_sec || (now.tv_sec == t->tv_sec && now.tv_nsec >= t->tv_nsec);
}

/* checkpointer - the thread: a checkpoint every checkpoint_ms while the
 * log holds records, at once when an append finds it half full. */
static void *checkpointer(void *arg)
{
	struct wal *w = arg;
	struct timespec next = deadline(w->checkpoint_ms);
	pthread_mutex_lock(&w->lock);
	while (!w->stop) {
		int work = (w->safe != w->ckpt || w->off) && !w->dead;
		if (!work || (!w->kick && !passed(&next))) {
			if (!work)
				next = deadline(w->checkpoint_ms);
			pthread_cond_timedwait(&w->cond, &w->lock, &next);
			continue;
		}
		w->kick = 0;
		pthread_mutex_unlock(&w->lock);
		wal_checkpoint(w);
		next = deadline(w->checkpoint_ms);
		pthread_mutex_lock(&w->lock);
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

/* wal_start - the checkpointer thread (none when checkpoints are off). */
int wal_start(struct wal *w)
{
	if (w->checkpoint_ms < 0)
		return 0;
	if (pthread_create(&w->thread, NULL, checkpointer, w) != 0)
		return errno = EAGAIN, -1;
	w->thread_started = 1;
	return 0;
}

void wal_counters(struct wal *w, struct wal_counters *out)
{
	pthread_mutex_lock(&w->lock);
	*out = w->counters;
	pthread_mutex_unlock(&w->lock);
}

void wal_close(struct wal **pw, int checkpoint)
{
	struct wal *w = *pw;
	if (!w)
		return;
	*pw = NULL;
	pthread_mutex_lock(&w->lock);
	w->stop = 1;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
	if (w->thread_started)
		pthread_join(w->thread, NULL);
	if (checkpoint && w->checkpoint_ms >= 0)
		wal_checkpoint(w);
	wal_free(w);
}
