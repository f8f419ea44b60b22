/* test_maildir.c - local delivery writes complete, correctly named files
 * with LF line ends into new/, and nothing anywhere when it fails; the
 * queue takes committed messages there through the real spool, worker
 * pool, account store and directory, retries what failed and never
 * delivers a recipient twice. */
#include <dirent.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "core/workers.h"
#include "deliver/maildir.h"
#include "queue/queue.h"
#include "spool/spool.h"
#include "store/directory.h"
#include "store/store.h"

static char root[64];

static void rm_rf(const char *path)
{
	char cmd[256];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
	CHECK(system(cmd) == 0);
}

static void setup(void)
{
	snprintf(root, sizeof root, "/tmp/tern-maildir-XXXXXX");
	CHECK(mkdtemp(root) != NULL);
}

/* body_file - a spool-like file: JUNK bytes, then BODY. */
static int body_file(const char *junk, const char *body, size_t len)
{
	char path[128];
	snprintf(path, sizeof path, "%s/body-XXXXXX", root);
	int fd = mkstemp(path);
	CHECK(fd >= 0);
	unlink(path);
	CHECK(write(fd, junk, strlen(junk)) == (ssize_t)strlen(junk));
	CHECK(write(fd, body, len) == (ssize_t)len);
	return fd;
}

/* list_dir - names in DIR (not . and ..), up to MAX, into NAMES. */
static size_t list_dir(const char *dir, char names[][512], size_t max)
{
	DIR *d = opendir(dir);
	size_t n = 0;
	if (!d)
		return 0;
	struct dirent *de;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
			if (n < max)
				snprintf(names[n], 512, "%s", de->d_name);
			n++;
		}
	closedir(d);
	return n;
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	CHECK(f != NULL);
	if (!f)
		return NULL;
	static char buf[1 << 20];
	*len = fread(buf, 1, sizeof buf, f);
	fclose(f);
	return buf;
}

static void test_path_lower_cased(void)
{
	char out[256];
	CHECK(maildir_path("/data", "Bob.Smith", "Example.ORG", out, sizeof out) == 0);
	CHECK_STR(out, "/data/mailboxes/example.org/bob.smith/Maildir");
	CHECK(maildir_path("/data", "bob", "example.org", out, 20) == -1 && errno == ENAMETOOLONG);
}

static void test_bad_components_refused(void)
{
	char out[256];
	const char *bad[] = {"", ".", "..", "a/b", "/abs", ".hidden", "a\nb", "a\x7f", "..."};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		errno = 0;
		CHECK(maildir_path("/data", bad[i], "example.org", out, sizeof out) == -1);
		CHECK(errno == EINVAL);
		CHECK(maildir_path("/data", "bob", bad[i], out, sizeof out) == -1);
		CHECK(errno == EINVAL);
	}
	setup();
	int fd = body_file("", "x\r\n", 3);
	CHECK(maildir_deliver(root, "..", "example.org", "h", "", 0, fd, 0, 3) == -1);
	CHECK(errno == EINVAL);
	char mb[128];
	snprintf(mb, sizeof mb, "%s/mailboxes", root);
	CHECK(access(mb, F_OK) == -1); /* nothing created */
	close(fd);
	rm_rf(root);
}

/* parse_name - SECS.M<usec>P<pid>Q<n>.HOST,S=<s>,W=<w>; 0 when it fits. */
static int parse_name(const char *name, char *host, unsigned long long *s, unsigned long long *w)
{
	long long secs;
	long usec, pid;
	unsigned long q;
	int used = 0;
	if (sscanf(name, "%lld.M%ldP%ldQ%lu.%n", &secs, &usec, &pid, &q, &used) != 4 || !used)
		return -1;
	const char *comma = strstr(name + used, ",S=");
	if (!comma)
		return -1;
	snprintf(host, 256, "%.*s", (int)(comma - (name + used)), name + used);
	char end;
	if (sscanf(comma, ",S=%llu,W=%llu%c", s, w, &end) != 2)
		return -1;
	return pid == (long)getpid() && usec >= 0 && usec < 1000000 ? 0 : -1;
}

static void test_delivery_converts_crlf_and_names_file(void)
{
	setup();
	/* CRLF split across the 64 KiB read boundary, a bare CR kept, and a
	 * CR as the very last byte. */
	size_t len = 200000;
	char *body = malloc(len);
	memset(body, 'a', len);
	memcpy(body, "Subject: hi\r\n\r\n", 15);
	body[65535] = '\r';
	body[65536] = '\n';
	body[100000] = '\r'; /* bare CR: data, kept */
	memcpy(body + 150000, "\r\n\r\n", 4);
	body[len - 1] = '\r';
	size_t crlfs = 5;
	int fd = body_file("tern-spool 1\n\n", body, len);
	const char *prefix = "Return-Path: <a@x>\r\nDelivered-To: bob@example.org\r\n";
	CHECK(maildir_deliver(root, "Bob", "Example.org", "mx/1:a.example", prefix, strlen(prefix),
			      fd, 14, len) == 0);
	close(fd);
	char dir[256], names[4][512];
	snprintf(dir, sizeof dir, "%s/mailboxes/example.org/bob/Maildir/new", root);
	CHECK(list_dir(dir, names, 4) == 1);
	char host[256];
	unsigned long long s = 0, w = 0;
	CHECK(parse_name(names[0], host, &s, &w) == 0);
	CHECK_STR(host, "mx\\0571\\072a.example");
	size_t plen = strlen(prefix);
	size_t want_size = plen - 2 + len - crlfs; /* every CRLF lost its CR */
	CHECK(s == want_size);
	CHECK(w == plen + len); /* the CRLF form: what arrived */
	char path[1024];
	snprintf(path, sizeof path, "%s/%s", dir, names[0]);
	size_t got_len = 0;
	char *got = slurp(path, &got_len);
	CHECK(got_len == want_size);
	CHECK(got && memcmp(got,
			    "Return-Path: <a@x>\nDelivered-To: bob@example.org\n"
			    "Subject: hi\n\n",
			    plen - 2 + 13) == 0);
	CHECK(got && memchr(got, '\r', got_len) != NULL); /* the bare CR */
	CHECK(got && got[got_len - 1] == '\r');
	struct stat st;
	CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600 && (size_t)st.st_size == s);
	CHECK(stat(dir, &st) == 0 && (st.st_mode & 0777) == 0700);
	snprintf(dir, sizeof dir, "%s/mailboxes/example.org/bob/Maildir/cur", root);
	CHECK(stat(dir, &st) == 0 && S_ISDIR(st.st_mode));
	snprintf(dir, sizeof dir, "%s/mailboxes/example.org/bob/Maildir/tmp", root);
	CHECK(list_dir(dir, names, 4) == 0);
	free(body);
	rm_rf(root);
}

static void test_names_unique(void)
{
	setup();
	int fd = body_file("", "Subject: x\r\n\r\nhello\r\n", 21);
	enum { N = 200 };
	for (int i = 0; i < N; i++)
		CHECK(maildir_deliver(root, "carol", "example.net", "mx", "", 0, fd, 0, 21) == 0);
	char dir[256];
	static char names[N + 1][512];
	snprintf(dir, sizeof dir, "%s/mailboxes/example.net/carol/Maildir/new", root);
	CHECK(list_dir(dir, names, N + 1) == N); /* a clash would have replaced one */
	for (int i = 0; i < N; i++) {
		char host[256];
		unsigned long long s, w;
		CHECK(parse_name(names[i], host, &s, &w) == 0);
		CHECK(s == 18 && w == 21);
	}
	/* A tmp/ someone removed is made again. */
	snprintf(dir, sizeof dir, "%s/mailboxes/example.net/carol/Maildir/tmp", root);
	CHECK(rmdir(dir) == 0);
	CHECK(maildir_deliver(root, "carol", "example.net", "mx", "", 0, fd, 0, 21) == 0);
	close(fd);
	rm_rf(root);
}

static void test_failure_leaves_nothing(void)
{
	setup();
	/* A file size limit stands in for a full disk. */
	struct rlimit old, lim;
	getrlimit(RLIMIT_FSIZE, &old);
	signal(SIGXFSZ, SIG_IGN);
	size_t len = 300000;
	char *body = calloc(1, len);
	int fd = body_file("", body, len);
	lim = old;
	lim.rlim_cur = 100000;
	CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0);
	errno = 0;
	CHECK(maildir_deliver(root, "dave", "example.org", "mx", "", 0, fd, 0, len) == -1);
	CHECK(errno == EFBIG);
	CHECK(setrlimit(RLIMIT_FSIZE, &old) == 0);
	/* A body shorter than announced is an error, not a short message. */
	errno = 0;
	CHECK(maildir_deliver(root, "dave", "example.org", "mx", "", 0, fd, 10, len) == -1);
	CHECK(errno == EIO);
	close(fd);
	char dir[256], names[4][512];
	snprintf(dir, sizeof dir, "%s/mailboxes/example.org/dave/Maildir/new", root);
	CHECK(list_dir(dir, names, 4) == 0);
	snprintf(dir, sizeof dir, "%s/mailboxes/example.org/dave/Maildir/tmp", root);
	CHECK(list_dir(dir, names, 4) == 0);
	free(body);
	rm_rf(root);
}

/* A delivery repeated with its key (as after a crash before the caller
 * recorded it) is stored once; another key is another message; a crashed
 * attempt's leftover in tmp/ does not stop it; a bad key is refused. */
static void test_deliver_once_stores_a_repeat_once(void)
{
	setup();
	int fd = body_file("", "Subject: x\r\n\r\nhello\r\n", 21);
	char dir[256], tmp[512];
	static char names[8][512];
	snprintf(dir, sizeof dir, "%s/mailboxes/example.net/erin/Maildir", root);
	for (int i = 0; i < 3; i++)
		CHECK(maildir_deliver_once(root, "erin", "example.net", "mx", 1700000000, "Q1A-0",
					   "", 0, fd, 0, 21) == 0);
	snprintf(tmp, sizeof tmp, "%s/new", dir);
	CHECK(list_dir(tmp, names, 8) == 1);
	CHECK_STR(names[0], "1700000000.KQ1A-0.mx,S=18,W=21");
	/* A leftover of a crashed attempt of the next delivery. */
	snprintf(tmp, sizeof tmp, "%s/tmp/1700000000.KQ1A-1.mx", dir);
	int left = open(tmp, O_WRONLY | O_CREAT, 0600);
	CHECK(left >= 0 && write(left, "torn", 4) == 4);
	close(left);
	CHECK(maildir_deliver_once(root, "erin", "example.net", "mx", 1700000000, "Q1A-1", "", 0,
				   fd, 0, 21) == 0);
	snprintf(tmp, sizeof tmp, "%s/new", dir);
	CHECK(list_dir(tmp, names, 8) == 2);
	snprintf(tmp, sizeof tmp, "%s/tmp", dir);
	CHECK(list_dir(tmp, names, 8) == 0);
	const char *bad[] = {"", "a/b", "a.b", "../x", "a b",
			     "0123456789012345678901234567890123456789012345678901234567890123456789"};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		errno = 0;
		CHECK(maildir_deliver_once(root, "erin", "example.net", "mx", 1, bad[i], "", 0, fd,
					   0, 21) == -1 &&
		      errno == EINVAL);
	}
	close(fd);
	rm_rf(root);
}

/* ---- the queue: spool -> directory -> Maildir ---- */

struct qenv {
	char spooldir[128], db[128];
	struct event_base *base;
	struct workers *pool;
	struct spool *sp;
	struct queue *q;
	struct directory *dir;
	unsigned retry_first;
};

/* make_accounts - example.org with bob and carol, an alias team@ to both
 * and to a remote address, and an alias loop. */
static struct directory *make_accounts(const char *db)
{
	char err[256] = "";
	struct store *st = store_open(db, err, sizeof err);
	CHECK(st != NULL);
	if (!st) {
		fprintf(stderr, "store_open: %s\n", err);
		return NULL;
	}
	CHECK(store_domain_add(st, "example.org", err, sizeof err) == 0);
	struct store_user u = {.address = "bob@example.org",
			       .password_hash = "$argon2id$v=19$m=65536,t=2,p=1$c2FsdA$aGFzaA"};
	CHECK(store_user_add(st, &u, err, sizeof err) == 0);
	u.address = "carol@example.org";
	CHECK(store_user_add(st, &u, err, sizeof err) == 0);
	CHECK(store_alias_set(st, "team@example.org",
			      "bob@example.org,carol@example.org,x@remote.example", err,
			      sizeof err) == 0);
	CHECK(store_alias_set(st, "loop@example.org", "loop2@example.org", err, sizeof err) == 0);
	CHECK(store_alias_set(st, "loop2@example.org", "loop@example.org", err, sizeof err) == 0);
	store_close(&st);
	struct directory *d = directory_load(db, err, sizeof err);
	if (!d)
		fprintf(stderr, "directory_load: %s\n", err);
	CHECK(d != NULL);
	return d;
}

static void queue_start(struct qenv *e)
{
	struct queue_config qc = {.data_dir = root,
				  .hostname = "mx.example.org",
				  .base = e->base,
				  .retry_first = e->retry_first};
	e->q = queue_new(&qc, e->sp, e->pool);
	CHECK(e->q != NULL);
	queue_set_directory(e->q, e->dir);
}

static void qsetup(struct qenv *e)
{
	memset(e, 0, sizeof *e);
	setup();
	snprintf(e->spooldir, sizeof e->spooldir, "%s/spool", root);
	snprintf(e->db, sizeof e->db, "%s/tern.db", root);
	e->base = event_base_new();
	e->pool = workers_new(e->base, 4);
	char err[256];
	e->sp = spool_open(e->spooldir, e->pool, err, sizeof err);
	CHECK(e->sp != NULL);
	e->dir = make_accounts(e->db);
	queue_start(e);
}

static void qteardown(struct qenv *e)
{
	workers_free(&e->pool);
	queue_free(&e->q);
	CHECK(e->q == NULL);
	spool_close(&e->sp);
	directory_unref(&e->dir);
	event_base_free(e->base);
	rm_rf(root);
}

static void committed(void *arg, int ok, int errnum)
{
	*(int *)arg = ok ? 1 : -1;
}

/* Polls PRED every 10 ms until it holds or 20 s pass. */
struct waiter {
	struct qenv *e;
	int (*pred)(struct qenv *);
	int ticks;
	struct event *ev;
};

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct waiter *w = arg;
	if (w->pred(w->e) || ++w->ticks > 2000)
		event_base_loopbreak(w->e->base);
}

static void run_until(struct qenv *e, int (*pred)(struct qenv *))
{
	struct waiter w = {.e = e, .pred = pred};
	w.ev = event_new(e->base, -1, EV_PERSIST, on_tick, &w);
	struct timeval tv = {0, 10000};
	event_add(w.ev, &tv);
	if (!pred(e))
		event_base_dispatch(e->base);
	event_free(w.ev);
	CHECK(pred(e));
}

static int committed_all(struct qenv *e)
{
	return workers_pending(e->pool) == 0;
}

static int queue_is_idle(struct qenv *e)
{
	return queue_idle(e->q) && workers_pending(e->pool) == 0;
}

/* commit - spool a message from alice to RCPTS (NULL-terminated); its id
 * into ID.  With ADD, also hand it to the queue as the session does. */
static void commit(struct qenv *e, const char *const *rcpts, int add, char *id)
{
	struct envelope env;
	envelope_init(&env);
	spool_new_id(e->sp, env.id);
	env.sender = strdup("alice@example.com");
	for (size_t i = 0; rcpts[i]; i++)
		CHECK(envelope_add_rcpt(&env, rcpts[i], NULL, 0) == 0);
	struct evbuffer *b = evbuffer_new();
	evbuffer_add_printf(b, "Subject: test\r\n\r\nHello\r\n");
	env.size = evbuffer_get_length(b);
	int ok = 0;
	spool_commit(e->sp, &env, b, committed, &ok);
	run_until(e, committed_all);
	CHECK(ok == 1);
	if (add)
		queue_add(e->q, &env);
	snprintf(id, 32, "%s", env.id);
	envelope_free(&env);
}

/* mailbox_files - messages in new/ of LOCAL@example.org; the first one's
 * content into FIRST (if not NULL). */
static size_t mailbox_files(const char *local, char *first, size_t firstlen)
{
	char dir[256];
	static char names[64][512];
	snprintf(dir, sizeof dir, "%s/mailboxes/example.org/%s/Maildir/new", root, local);
	size_t n = list_dir(dir, names, 64);
	if (n && first) {
		char path[1024];
		size_t len;
		snprintf(path, sizeof path, "%s/%s", dir, names[0]);
		char *c = slurp(path, &len);
		snprintf(first, firstlen, "%.*s", (int)len, c ? c : "");
	}
	return n;
}

static size_t spool_count(struct qenv *e)
{
	size_t n = 0;
	char **ids = spool_list(e->sp, &n);
	for (size_t i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
	return n;
}

static void test_queue_delivers_local_and_removes(void)
{
	struct qenv e;
	qsetup(&e);
	char id[32];
	const char *rcpts[] = {"bob@example.org", "Carol+news@Example.org", NULL};
	commit(&e, rcpts, 1, id);
	run_until(&e, queue_is_idle);
	char content[512];
	CHECK(mailbox_files("bob", content, sizeof content) == 1);
	CHECK_STR(content, "Return-Path: <alice@example.com>\nDelivered-To: bob@example.org\n"
			   "Subject: test\n\nHello\n");
	CHECK(mailbox_files("carol", content, sizeof content) == 1);
	CHECK(strstr(content, "Delivered-To: carol@example.org\n") != NULL);
	CHECK(spool_count(&e) == 0); /* every recipient final: removed */
	CHECK(queue_parked(e.q) == 0);
	qteardown(&e);
}

static void test_queue_bounces_unknown_and_parks_remote(void)
{
	struct qenv e;
	qsetup(&e);
	char id[32];
	const char *rcpts[] = {"gone@example.org", "x@remote.example", "bob@example.org",
			       "loop@example.org", NULL};
	commit(&e, rcpts, 1, id);
	run_until(&e, queue_is_idle);
	CHECK(mailbox_files("bob", NULL, 0) == 1);
	struct envelope env;
	CHECK(spool_read_envelope(e.sp, id, &env) == 0);
	CHECK(env.nrcpts == 4);
	if (env.nrcpts == 4) {
		CHECK(env.rcpts[0].state == RCPT_BOUNCED);
		CHECK(env.rcpts[0].last_reply && !strncmp(env.rcpts[0].last_reply, "550 5.1.1", 9));
		CHECK(env.rcpts[1].state == RCPT_QUEUED && env.rcpts[1].attempts == 0);
		CHECK(env.rcpts[2].state == RCPT_DELIVERED && env.rcpts[2].attempts == 1);
		CHECK(env.rcpts[3].state == RCPT_BOUNCED);
		CHECK(env.rcpts[3].last_reply && !strncmp(env.rcpts[3].last_reply, "550 5.4.6", 9));
	}
	envelope_free(&env);
	/* The message (its remote recipient) and the bounce for the two failed
	 * ones (to the remote sender) both wait: this queue has no relay. */
	CHECK(queue_parked(e.q) == 2);
	CHECK(spool_count(&e) == 2);
	qteardown(&e);
}

static void test_queue_alias_expanded_and_not_repeated(void)
{
	struct qenv e;
	qsetup(&e);
	char id[32];
	const char *rcpts[] = {"team@example.org", NULL};
	commit(&e, rcpts, 1, id);
	run_until(&e, queue_is_idle);
	CHECK(mailbox_files("bob", NULL, 0) == 1);
	CHECK(mailbox_files("carol", NULL, 0) == 1);
	struct envelope env;
	CHECK(spool_read_envelope(e.sp, id, &env) == 0);
	CHECK(env.nrcpts == 4);
	if (env.nrcpts == 4) {
		CHECK(env.rcpts[0].state == RCPT_DELIVERED); /* expanded */
		CHECK_STR(env.rcpts[3].address, "x@remote.example");
		CHECK(env.rcpts[3].state == RCPT_QUEUED);
		CHECK_STR(env.rcpts[3].orcpt, "rfc822;team@example.org");
	}
	envelope_free(&env);
	/* A restart recovers the message: the remote recipient still waits,
	 * the local ones are not delivered again. */
	workers_free(&e.pool);
	queue_free(&e.q);
	e.pool = workers_new(e.base, 2);
	spool_close(&e.sp);
	char err[256];
	e.sp = spool_open(e.spooldir, e.pool, err, sizeof err);
	queue_start(&e);
	CHECK(queue_recover(e.q) == 1);
	run_until(&e, queue_is_idle);
	CHECK(mailbox_files("bob", NULL, 0) == 1);
	CHECK(mailbox_files("carol", NULL, 0) == 1);
	CHECK(queue_parked(e.q) == 1);
	qteardown(&e);
}

static int deferred_once(struct qenv *e)
{
	size_t n = 0;
	char **ids = spool_list(e->sp, &n);
	int seen = 0;
	for (size_t i = 0; i < n; i++) {
		struct envelope env;
		if (spool_read_envelope(e->sp, ids[i], &env) == 0) {
			seen = env.nrcpts == 1 && env.rcpts[0].attempts == 1;
			envelope_free(&env);
		}
		free(ids[i]);
	}
	free(ids);
	return seen && workers_pending(e->pool) == 0;
}

static void test_queue_retries_failed_delivery(void)
{
	struct qenv e;
	qsetup(&e);
	/* Again with a one-second backoff so the retry comes quickly. */
	queue_free(&e.q);
	e.retry_first = 1;
	queue_start(&e);
	/* A file where bob's folder should be: delivery fails (ENOTDIR). */
	char path[256];
	snprintf(path, sizeof path, "%s/mailboxes", root);
	mkdir(path, 0700);
	snprintf(path, sizeof path, "%s/mailboxes/example.org", root);
	close(open(path, O_WRONLY | O_CREAT, 0600));
	char id[32];
	const char *rcpts[] = {"bob@example.org", NULL};
	commit(&e, rcpts, 1, id);
	run_until(&e, deferred_once);
	struct envelope env;
	CHECK(spool_read_envelope(e.sp, id, &env) == 0);
	if (env.nrcpts == 1) {
		CHECK(env.rcpts[0].state == RCPT_QUEUED);
		CHECK(env.rcpts[0].next_attempt > 0);
		CHECK(env.rcpts[0].last_reply && !strncmp(env.rcpts[0].last_reply, "451 4.3.0", 9));
	}
	envelope_free(&env);
	CHECK(!queue_idle(e.q)); /* a retry is armed */
	CHECK(unlink(path) == 0);
	run_until(&e, queue_is_idle);
	CHECK(mailbox_files("bob", NULL, 0) == 1);
	CHECK(spool_count(&e) == 0);
	qteardown(&e);
}

static void test_queue_recover_limits_concurrency(void)
{
	struct qenv e;
	qsetup(&e);
	enum { N = 20 };
	char id[32];
	const char *rcpts[] = {"bob@example.org", NULL};
	for (int i = 0; i < N; i++)
		commit(&e, rcpts, 0, id);
	CHECK(queue_recover(e.q) == N);
	/* No more than QUEUE_MAX_JOBS deliveries go to the pool at once. */
	CHECK(workers_pending(e.pool) == QUEUE_MAX_JOBS);
	run_until(&e, queue_is_idle);
	CHECK(mailbox_files("bob", NULL, 0) == N);
	CHECK(spool_count(&e) == 0);
	qteardown(&e);
}

int main(void)
{
	RUN(test_path_lower_cased);
	RUN(test_bad_components_refused);
	RUN(test_delivery_converts_crlf_and_names_file);
	RUN(test_names_unique);
	RUN(test_failure_leaves_nothing);
	RUN(test_deliver_once_stores_a_repeat_once);
	RUN(test_queue_delivers_local_and_removes);
	RUN(test_queue_bounces_unknown_and_parks_remote);
	RUN(test_queue_alias_expanded_and_not_repeated);
	RUN(test_queue_retries_failed_delivery);
	RUN(test_queue_recover_limits_concurrency);
	return check_summary();
}
