/* spool_wal_scan.c - recovery from the write-ahead log at start (see
 * spool_wal.h and docs/design/spool.md).
 *
 * The scan starts at the last checkpoint and follows records while each
 * one is whole: the right magic, its own LSN, a length that stays inside
 * the lap, and a matching CRC-32C.  The first record that is not ends the
 * log: it belongs to a batch whose fdatasync never returned, so no client
 * was told 250 for it, and every batch that did return lies before it
 * (batches are written one after the other, each only after the previous
 * one's fdatasync).  Each message record that the removal files do not
 * name goes to the spool, which makes sure its file is there and whole. */
#include "spool/spool_wal_private.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "spool/crc32c.h"

typedef int (*scan_fn)(void *arg, const struct wal_rec *h, const char *payload);

struct replay {
	const struct wal_replay *cb;
	char (*gone)[32]; /* sorted */
	size_t ngone;
	unsigned long messages;
};

/* header_ok - H is a plausible record at LSN L. */
static int header_ok(const struct wal *w, const struct wal_rec *h, uint64_t l)
{
	if (h->magic != WAL_REC_MAGIC || h->lsn != l || h->len < WAL_REC_HDR ||
	    h->len % WAL_REC_ALIGN || l % w->size + h->len > w->size)
		return 0;
	if ((uint64_t)WAL_REC_HDR + h->headlen + h->bodylen > h->len)
		return 0;
	switch (h->type) {
	case WAL_MESSAGE:
		return h->headlen > 0 && memchr(h->id, '\0', sizeof h->id) && h->id[0];
	case WAL_PAD:
		return !h->headlen && !h->bodylen;
	}
	return 0;
}

/* scan - call FN for every whole record from the checkpoint on; *END is
 * the LSN after the last one.  -1 with errno only on a read error. */
static int scan(struct wal *w, scan_fn fn, void *arg, uint64_t *end)
{
	uint64_t l = w->ckpt;
	char *buf = NULL;
	size_t cap = 0;
	int rc = 0;
	while (l - w->ckpt < w->size) {
		struct wal_rec h;
		off_t off = (off_t)(WAL_HEAD_BYTES + l % w->size);
		if ((rc = wal_pread(w->fd, &h, sizeof h, off)) < 0)
			break;
		if (!header_ok(w, &h, l))
			break;
		size_t plen = (size_t)h.headlen + h.bodylen;
		if (plen > cap) {
			char *nb = realloc(buf, plen);
			if (!nb) {
				rc = -1;
				break;
			}
			buf = nb;
			cap = plen;
		}
		if (plen && (rc = wal_pread(w->fd, buf, plen, off + WAL_REC_HDR)) < 0)
			break;
		uint32_t want = h.crc;
		h.crc = 0;
		if (crc32c(crc32c(0, &h, sizeof h), buf, plen) != want)
			break; /* torn: the end of the log */
		h.crc = want;
		if ((rc = fn(arg, &h, buf)) < 0)
			break;
		l += h.len;
	}
	free(buf);
	*end = l;
	return rc;
}

/* cmp_id - ids in strcmp order, for qsort and bsearch. */
static int cmp_id(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* replay_one - a message not removed since gets its file back. */
static int replay_one(void *arg, const struct wal_rec *h, const char *payload)
{
	struct replay *r = arg;
	if (h->type != WAL_MESSAGE)
		return 0;
	if (r->ngone && bsearch(h->id, r->gone, r->ngone, sizeof *r->gone, cmp_id))
		return 0;
	r->messages++;
	return r->cb->restore(r->cb->arg, h->id, payload, h->headlen, payload + h->headlen,
			      h->bodylen);
}

/* replay - the scan, then the unlinks of removed messages, one sync. */
static int replay(struct wal *w, const struct wal_replay *cb, uint64_t *end, unsigned long *nmsg,
		  size_t *ngone)
{
	struct replay r = {.cb = cb};
	int rc = wal_gone_read(w, &r.gone, &r.ngone);
	if (rc == 0) {
		if (r.ngone)
			qsort(r.gone, r.ngone, sizeof *r.gone, cmp_id);
		rc = scan(w, replay_one, &r, end);
	}
	/* A removal the crash undid comes back as a file: remove it again. */
	for (size_t i = 0; rc == 0 && i < r.ngone; i++)
		cb->forget(cb->arg, r.gone[i]);
	if (rc == 0 && (r.messages || r.ngone))
		rc = cb->sync(cb->arg);
	*nmsg = r.messages;
	*ngone = r.ngone;
	free(r.gone);
	return rc;
}

int wal_recover(struct wal *w, const struct wal_replay *cb, char *err, size_t errlen)
{
	uint64_t end = w->ckpt;
	unsigned long nmsg = 0;
	size_t ngone = 0;
	if (replay(w, cb, &end, &nmsg, &ngone) < 0) {
		snprintf(err, errlen, "wal/log: replay: %s", strerror(errno));
		return -1;
	}
	if (nmsg)
		log_info("spool: write-ahead log: %lu message(s) checked", nmsg);
	/* Everything the log held is durable in msg/ now.  Start on a fresh
	 * lap: whatever lies after END (a torn batch) then has LSNs below any
	 * new record's and can never be read as part of the log. */
	uint64_t next = (end / w->size + 1) * w->size;
	if (wal_write_slot(w, next) < 0) {
		snprintf(err, errlen, "wal/log: checkpoint: %s", strerror(errno));
		return -1;
	}
	w->tail = w->safe = w->ckpt = next;
	wal_gone_reset(w);
	if (wal_start(w) < 0) {
		snprintf(err, errlen, "wal/log: checkpointer thread: %s", strerror(errno));
		return -1;
	}
	return 0;
}
