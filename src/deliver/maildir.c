/* maildir.c - local delivery into a Maildir (see maildir.h).
 *
 * The Maildir protocol (cr.yp.to/proto/maildir.html): write tmp/NAME,
 * make it durable, link it into new/NAME, then unlink tmp/NAME; a reader
 * only ever sees complete files in new/.  Names follow Dovecot's
 * "SECS.M<usec>P<pid>Q<n>.HOST" with ",S=<size>,W=<size with CRLF>" so
 * Dovecot (and tern's own POP3/IMAP) know sizes without reading the file.
 * Messages arrive in SMTP's CRLF form (RFC 5321 2.3.8) and are stored with
 * LF line ends, as Maildir readers expect. */
#include "deliver/maildir.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#define MAILDIR_PATH_MAX 4096
/* Bounded buffers of the CRLF -> LF copy. */
#define COPY_CHUNK 65536
#define HOST_MAX   255

/* Makes names unique within the process when the clock stands still. */
static atomic_ulong delivery_counter;

/* valid_component - a domain or local part that is safe as one path
 * component: not empty, no '/', no leading '.' (so not "." or ".." and no
 * hidden Maildir++ folder), no control bytes. */
static int valid_component(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 255 || s[0] == '.')
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '/' || c < 0x20 || c == 0x7f)
			return 0;
	}
	return 1;
}

/* lower_copy - ASCII lower case of S into OUT (at most OUTLEN bytes); the
 * bytes of UTF-8 sequences are kept. */
static int lower_copy(char *out, size_t outlen, const char *s)
{
	size_t n = strlen(s);
	if (n >= outlen)
		return -1;
	for (size_t i = 0; i <= n; i++)
		out[i] = (s[i] >= 'A' && s[i] <= 'Z') ? (char)(s[i] - 'A' + 'a') : s[i];
	return 0;
}

int maildir_path(const char *root, const char *local, const char *domain, char *out, size_t outlen)
{
	char l[256], d[256];
	if (!root || !local || !domain || !valid_component(local) || !valid_component(domain))
		return errno = EINVAL, -1;
	if (lower_copy(l, sizeof l, local) < 0 || lower_copy(d, sizeof d, domain) < 0)
		return errno = EINVAL, -1;
	int n = snprintf(out, outlen, "%s/mailboxes/%s/%s/Maildir", root, d, l);
	if (n < 0 || (size_t)n >= outlen)
		return errno = ENAMETOOLONG, -1;
	return 0;
}

/* make_dir - mkdir PATH (0700).  When it is new, fsync its parent so the
 * directory, and hence what we put in it, survives a crash. */
static int make_dir(const char *path)
{
	if (mkdir(path, 0700) < 0)
		return errno == EEXIST ? 0 : -1;
	char parent[MAILDIR_PATH_MAX];
	snprintf(parent, sizeof parent, "%s", path);
	char *slash = strrchr(parent, '/');
	if (!slash || slash == parent)
		return 0;
	*slash = '\0';
	int fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int rc = fsync(fd);
	int e = errno;
	close(fd);
	errno = e;
	return rc;
}

/* make_maildir - ROOT/mailboxes/DOMAIN/LOCAL/Maildir/{tmp,new,cur}, like
 * mkdir -p from ROOT/mailboxes down (ROOT itself must exist). */
static int make_maildir(const char *root, const char *base)
{
	char path[MAILDIR_PATH_MAX];
	size_t rootlen = strlen(root);
	/* Each '/' after ROOT ends one level: mailboxes, domain, local. */
	for (size_t i = rootlen + 1; base[i]; i++) {
		if (base[i] != '/')
			continue;
		snprintf(path, sizeof path, "%.*s", (int)i, base);
		if (make_dir(path) < 0)
			return -1;
	}
	static const char *const sub[] = {"", "/tmp", "/new", "/cur"};
	for (size_t i = 0; i < sizeof sub / sizeof *sub; i++) {
		snprintf(path, sizeof path, "%s%s", base, sub[i]);
		if (make_dir(path) < 0)
			return -1;
	}
	return 0;
}

/* open_maildir - fds of BASE and BASE/new, creating the folders first when
 * they are missing. */
static int open_maildir(const char *root, const char *base, int *newfd)
{
	for (int attempt = 0; attempt < 2; attempt++) {
		int fd = open(base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd >= 0) {
			*newfd = openat(fd, "new", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			if (*newfd >= 0)
				return fd;
			close(fd);
		}
		if (errno != ENOENT || attempt > 0 || make_maildir(root, base) < 0)
			return -1;
	}
	return -1;
}

/* host_escape - HOSTNAME with '/' and ':' as Dovecot writes them (\057,
 * \072): '/' cannot be in a file name, ':' starts the Maildir info. */
static void host_escape(char *out, size_t outlen, const char *hostname)
{
	size_t o = 0;
	if (!hostname || !*hostname)
		hostname = "localhost";
	for (const char *p = hostname; *p && o + 5 < outlen; p++) {
		if (*p == '/' || *p == ':') {
			memcpy(out + o, *p == '/' ? "\\057" : "\\072", 4);
			o += 4;
		} else {
			out[o++] = *p;
		}
	}
	out[o] = '\0';
}

/* ---- CRLF -> LF copy ---- */

struct lf_writer {
	int fd;
	int pending_cr; /* a CR ended the last input: is an LF next? */
	size_t olen;
	uint64_t written; /* bytes in the file: S= */
	uint64_t lfs;	  /* line ends in the file: W= adds one CR each */
	char out[COPY_CHUNK];
};

static int lf_flush(struct lf_writer *w)
{
	const char *p = w->out;
	size_t n = w->olen;
	for (const char *q = p; (q = memchr(q, '\n', n - (size_t)(q - p))); q++)
		w->lfs++;
	while (n) {
		ssize_t r = write(w->fd, p, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? -1 : (errno = EIO, -1);
		p += r;
		n -= (size_t)r;
		w->written += (uint64_t)r;
	}
	w->olen = 0;
	return 0;
}

static int lf_emit(struct lf_writer *w, const char *p, size_t n)
{
	while (n) {
		size_t room = sizeof w->out - w->olen;
		size_t k = n < room ? n : room;
		memcpy(w->out + w->olen, p, k);
		w->olen += k;
		p += k;
		n -= k;
		if (w->olen == sizeof w->out && lf_flush(w) < 0)
			return -1;
	}
	return 0;
}

/* lf_feed - N more input bytes: every CRLF becomes LF, a CR not followed
 * by LF is kept.  A CR at the end of one chunk waits for the next. */
static int lf_feed(struct lf_writer *w, const char *p, size_t n)
{
	while (n) {
		if (w->pending_cr) {
			w->pending_cr = 0;
			if (*p != '\n' && lf_emit(w, "\r", 1) < 0)
				return -1;
		}
		const char *cr = memchr(p, '\r', n);
		size_t span = cr ? (size_t)(cr - p) : n;
		if (lf_emit(w, p, span) < 0)
			return -1;
		p += span;
		n -= span;
		if (cr) {
			w->pending_cr = 1;
			p++;
			n--;
		}
	}
	return 0;
}

/* lf_finish - the input ended: a last lone CR is data. */
static int lf_finish(struct lf_writer *w)
{
	if (w->pending_cr && lf_emit(w, "\r", 1) < 0)
		return -1;
	w->pending_cr = 0;
	return lf_flush(w);
}

/* write_message - PREFIX then BODYLEN bytes of BODY_FD from BODY_OFF,
 * converted, into FD; sizes for the file name out. */
static int write_message(int fd, const char *prefix, size_t prefixlen, int body_fd, long body_off,
			 size_t bodylen, uint64_t *size, uint64_t *wsize)
{
	/* Both buffers on the worker's stack (128 KiB of its megabytes). */
	struct lf_writer w;
	char in[COPY_CHUNK];
	w.fd = fd;
	w.pending_cr = 0;
	w.olen = 0;
	w.written = w.lfs = 0;
	if (lf_feed(&w, prefix, prefixlen) < 0)
		return -1;
	off_t off = body_off;
	while (bodylen) {
		ssize_t r = pread(body_fd, in, bodylen < sizeof in ? bodylen : sizeof in, off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? -1 : (errno = EIO, -1); /* body shorter than said */
		if (lf_feed(&w, in, (size_t)r) < 0)
			return -1;
		off += r;
		bodylen -= (size_t)r;
	}
	if (lf_finish(&w) < 0)
		return -1;
	*size = w.written;
	*wsize = w.written + w.lfs;
	return 0;
}

/* ---- delivery ---- */

/* deliver_named - write tmp/NAME, link it to new/NAME,S=..,W=.. and make
 * that durable.  ONCE: NAME is the caller's stable name for this delivery,
 * so a leftover tmp/NAME is a crashed attempt of it (overwritten) and an
 * existing new/ entry means the message is there already (0). */
static int deliver_named(const char *root, const char *base, const char *name, int once,
			 const char *prefix, size_t prefixlen, int body_fd, long body_off,
			 size_t bodylen)
{
	char tmpname[600], newname[700];
	int newfd = -1, mdfd = open_maildir(root, base, &newfd);
	if (mdfd < 0)
		return -1;
	snprintf(tmpname, sizeof tmpname, "tmp/%s", name);
	int linked = 0, e;
	uint64_t size = 0, wsize = 0;
	int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (once ? O_TRUNC : O_EXCL);
	int fd = openat(mdfd, tmpname, flags, 0600);
	if (fd < 0 && errno == ENOENT && make_maildir(root, base) == 0) /* tmp/ was removed */
		fd = openat(mdfd, tmpname, flags, 0600);
	if (fd < 0)
		goto fail_nofile;
	if (write_message(fd, prefix, prefixlen, body_fd, body_off, bodylen, &size, &wsize) < 0 ||
	    fdatasync(fd) < 0)
		goto fail;
	e = close(fd);
	fd = -1;
	if (e < 0 && errno != EINTR)
		goto fail;
	snprintf(newname, sizeof newname, "new/%s,S=%llu,W=%llu", name, (unsigned long long)size,
		 (unsigned long long)wsize);
	/* link, not rename: it refuses to replace an existing message. */
	if (linkat(mdfd, tmpname, mdfd, newname, 0) < 0 && !(once && errno == EEXIST))
		goto fail;
	linked = 1;
	if (fsync(newfd) < 0)
		goto fail;
	unlinkat(mdfd, tmpname, 0);
	close(newfd);
	close(mdfd);
	return 0;
fail:
	e = errno;
	if (fd >= 0)
		close(fd);
	if (linked && !once)
		unlinkat(mdfd, newname, 0);
	unlinkat(mdfd, tmpname, 0);
	errno = e;
fail_nofile:
	e = errno;
	close(newfd);
	close(mdfd);
	errno = e;
	return -1;
}

int maildir_deliver(const char *root, const char *local, const char *domain, const char *hostname,
		    const char *prefix, size_t prefixlen, int body_fd, long body_off,
		    size_t bodylen)
{
	char base[MAILDIR_PATH_MAX], host[HOST_MAX + 1], name[512];
	if (maildir_path(root, local, domain, base, sizeof base) < 0)
		return -1;
	struct timeval tv;
	gettimeofday(&tv, NULL);
	host_escape(host, sizeof host, hostname);
	unsigned long q = atomic_fetch_add(&delivery_counter, 1) + 1;
	snprintf(name, sizeof name, "%lld.M%ldP%ldQ%lu.%s", (long long)tv.tv_sec, (long)tv.tv_usec,
		 (long)getpid(), q, host);
	return deliver_named(root, base, name, 0, prefix, prefixlen, body_fd, body_off, bodylen);
}

/* valid_key - a delivery key as maildir.h allows it. */
static int valid_key(const char *key)
{
	size_t n = key ? strlen(key) : 0;
	if (n == 0 || n > MAILDIR_KEY_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = key[i];
		if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		      c == '_' || c == '-'))
			return 0;
	}
	return 1;
}

int maildir_deliver_once(const char *root, const char *local, const char *domain,
			 const char *hostname, long long when, const char *key, const char *prefix,
			 size_t prefixlen, int body_fd, long body_off, size_t bodylen)
{
	char base[MAILDIR_PATH_MAX], host[HOST_MAX + 1], name[512];
	if (!valid_key(key) || when < 0)
		return errno = EINVAL, -1;
	if (maildir_path(root, local, domain, base, sizeof base) < 0)
		return -1;
	host_escape(host, sizeof host, hostname);
	/* "K" in place of Dovecot's "M<usec>P<pid>Q<n>": the key is unique on
	 * its own, and the same for every attempt of one delivery. */
	snprintf(name, sizeof name, "%lld.K%s.%s", when, key, host);
	return deliver_named(root, base, name, 1, prefix, prefixlen, body_fd, body_off, bodylen);
}
