/* test_spool.c - the spool keeps what it acknowledged, byte for byte, and
 * nothing it did not.  Runs a real event loop and worker pool on a fresh
 * directory under /tmp. */
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
#include "spool/spool.h"
#include "spool/spool_private.h"

struct env {
	char dir[64];
	char spooldir[96];
	struct event_base *base;
	struct workers *pool;
	struct spool *sp;
};

struct outcome {
	int done, ok, errnum;
	int *remaining;
	struct event_base *base;
};

static void rm_rf(const char *path)
{
	char cmd[256];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
	CHECK(system(cmd) == 0);
}

/* setup_tuned - a fresh spool with T (NULL: the defaults). */
static void setup_tuned(struct env *e, const struct spool_tuning *t)
{
	snprintf(e->dir, sizeof e->dir, "/tmp/tern-spool-XXXXXX");
	CHECK(mkdtemp(e->dir) != NULL);
	snprintf(e->spooldir, sizeof e->spooldir, "%s/spool", e->dir);
	e->base = event_base_new();
	e->pool = workers_new(e->base, 4);
	char err[256] = "";
	e->sp = t ? spool_open_tuned(e->spooldir, e->pool, t, err, sizeof err)
		  : spool_open(e->spooldir, e->pool, err, sizeof err);
	if (!e->sp)
		fprintf(stderr, "spool_open: %s\n", err);
	CHECK(e->sp != NULL);
}

static void setup(struct env *e)
{
	setup_tuned(e, NULL);
}

static void teardown(struct env *e)
{
	workers_free(&e->pool);
	spool_close(&e->sp);
	event_base_free(e->base);
	rm_rf(e->dir);
}

static void on_commit(void *arg, int ok, int errnum)
{
	struct outcome *o = arg;
	o->done++;
	o->ok = ok;
	o->errnum = errnum;
	if (--*o->remaining == 0)
		event_base_loopbreak(o->base);
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
	fprintf(stderr, "timeout waiting for commits\n");
	event_base_loopbreak(arg);
}

/* run_until_done - dispatch until every commit reported (or 20 s). */
static void run_until_done(struct env *e, int *remaining)
{
	struct timeval tv = {20, 0};
	struct event *t = evtimer_new(e->base, on_timeout, e->base);
	evtimer_add(t, &tv);
	if (*remaining > 0)
		event_base_dispatch(e->base);
	event_free(t);
	CHECK(*remaining == 0);
}

static void make_envelope(struct envelope *env, struct spool *sp, const char *sender)
{
	envelope_init(env);
	spool_new_id(sp, env->id);
	env->sender = strdup(sender);
	env->received = 1700000000;
	env->client_addr = strdup("192.0.2.7");
	env->helo = strdup("client.example");
	CHECK(envelope_add_rcpt(env, "bob@example.org", "rfc822;Bob@example.org", 6) == 0);
	CHECK(envelope_add_rcpt(env, "carol@example.net", NULL, 0) == 0);
}

/* read_body - the body of ID through spool_open_body, malloc'ed. */
static char *read_body(struct spool *sp, const char *id, size_t *len)
{
	long off;
	size_t size;
	int fd = spool_open_body(sp, id, &off, &size);
	CHECK(fd >= 0);
	if (fd < 0)
		return NULL;
	char *buf = malloc(size + 1);
	ssize_t n = pread(fd, buf, size, off);
	CHECK(n == (ssize_t)size);
	close(fd);
	*len = size;
	return buf;
}

static size_t count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	size_t n = 0;
	if (!d)
		return (size_t)-1;
	struct dirent *de;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static void test_commit_reads_back_byte_for_byte(void)
{
	struct env e;
	setup(&e);
	struct envelope env;
	make_envelope(&env, e.sp, "alice@example.com");
	env.envid = strdup("QQ+2B314");
	env.ret = 2;
	env.body_8bit = 1;
	/* A body of many small chunks, more than one writev's worth, with
	 * every byte value in it. */
	struct evbuffer *body = evbuffer_new();
	size_t expect_len = 0;
	char *expect = malloc(300000);
	for (int i = 0; expect_len < 290000; i++) {
		char *chunk = expect + expect_len;
		for (size_t k = 0; k < 97; k++)
			chunk[k] = (char)(i * 31 + k);
		/* A reference is always a chunk of its own. */
		evbuffer_add_reference(body, chunk, 97, NULL, NULL);
		expect_len += 97;
	}
	env.size = expect_len;
	int remaining = 1;
	struct outcome o = {.remaining = &remaining, .base = e.base};
	spool_commit(e.sp, &env, body, on_commit, &o);
	CHECK(o.done == 0); /* never synchronous */
	run_until_done(&e, &remaining);
	CHECK(o.done == 1 && o.ok == 1 && o.errnum == 0);

	struct envelope got;
	CHECK(spool_read_envelope(e.sp, env.id, &got) == 0);
	CHECK_STR(got.id, env.id);
	CHECK_STR(got.sender, "alice@example.com");
	CHECK_STR(got.envid, "QQ+2B314");
	CHECK(got.ret == 2 && got.body_8bit == 1 && got.smtputf8 == 0);
	CHECK(got.received == 1700000000 && got.size == expect_len);
	CHECK_STR(got.client_addr, "192.0.2.7");
	CHECK_STR(got.helo, "client.example");
	CHECK(got.auth_user == NULL);
	CHECK(got.nrcpts == 2);
	if (got.nrcpts == 2) {
		CHECK_STR(got.rcpts[0].address, "bob@example.org");
		CHECK_STR(got.rcpts[0].orcpt, "rfc822;Bob@example.org");
		CHECK(got.rcpts[0].notify == 6 && got.rcpts[0].state == RCPT_QUEUED);
		CHECK_STR(got.rcpts[1].address, "carol@example.net");
		CHECK(got.rcpts[1].orcpt == NULL);
	}
	size_t len = 0;
	char *bytes = read_body(e.sp, env.id, &len);
	CHECK(len == expect_len && bytes && memcmp(bytes, expect, len) == 0);
	free(bytes);
	free(expect);
	envelope_free(&got);
	envelope_free(&env);
	char tmp[128];
	snprintf(tmp, sizeof tmp, "%s/tmp", e.spooldir);
	CHECK(count_entries(tmp) == 0);
	teardown(&e);
}

static void test_concurrent_commits_share_flushes(void)
{
	struct env e;
	setup(&e);
	enum { N = 50 };
	struct outcome o[N];
	struct envelope env[N];
	int remaining = N;
	for (int i = 0; i < N; i++) {
		char sender[64];
		snprintf(sender, sizeof sender, "s%d@example.com", i);
		make_envelope(&env[i], e.sp, sender);
		struct evbuffer *b = evbuffer_new();
		evbuffer_add_printf(b, "Subject: %d\r\n\r\nbody %d\r\n", i, i);
		o[i] = (struct outcome){.remaining = &remaining, .base = e.base};
		spool_commit(e.sp, &env[i], b, on_commit, &o[i]);
	}
	run_until_done(&e, &remaining);
	/* The first commit starts a flush alone; the 49 that arrived while
	 * it ran are one batch. */
	CHECK(spool_flushes(e.sp) == 2);
	for (int i = 0; i < N; i++) {
		CHECK(o[i].done == 1 && o[i].ok == 1);
		size_t len;
		char *b = read_body(e.sp, env[i].id, &len);
		char want[64];
		snprintf(want, sizeof want, "Subject: %d\r\n\r\nbody %d\r\n", i, i);
		CHECK(b && len == strlen(want) && memcmp(b, want, len) == 0);
		free(b);
		envelope_free(&env[i]);
	}
	size_t n = 0;
	char **ids = spool_list(e.sp, &n);
	CHECK(n == N);
	for (size_t i = 1; i < n; i++)
		CHECK(strcmp(ids[i - 1], ids[i]) < 0); /* sorted */
	for (size_t i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
	teardown(&e);
}

static int cmp_id(const void *a, const void *b)
{
	return strcmp((const char *)a, (const char *)b);
}

static void test_ids_unique_and_safe(void)
{
	struct env e;
	setup(&e);
	enum { N = 100000 };
	char(*ids)[32] = malloc(sizeof *ids * (N + 1000));
	for (int i = 0; i < N; i++)
		spool_new_id(e.sp, ids[i]);
	/* A "restart": a second spool on the same directory continues
	 * without colliding with the first one's ids. */
	workers_free(&e.pool);
	spool_close(&e.sp);
	char err[256];
	e.pool = workers_new(e.base, 1);
	e.sp = spool_open(e.spooldir, e.pool, err, sizeof err);
	CHECK(e.sp != NULL);
	for (int i = N; i < N + 1000; i++)
		spool_new_id(e.sp, ids[i]);
	for (int i = 0; i < N + 1000; i++) {
		CHECK(strlen(ids[i]) == 16);
		CHECK(strspn(ids[i], "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				     "abcdefghijklmnopqrstuvwxyz") == 16);
	}
	/* Ids of one process sort in the order they were made. */
	CHECK(strcmp(ids[0], ids[N - 1]) < 0);
	qsort(ids, N + 1000, sizeof *ids, cmp_id);
	int dups = 0;
	for (int i = 1; i < N + 1000; i++)
		dups += strcmp(ids[i - 1], ids[i]) == 0;
	CHECK(dups == 0);
	free(ids);
	teardown(&e);
}

static void test_hostile_fields_round_trip(void)
{
	struct env e;
	setup(&e);
	struct envelope env;
	make_envelope(&env, e.sp, "evil\r\nrcpt x@y\r\n\r\n%41@example.com");
	free(env.helo);
	env.helo = strdup("a\nb\x01\x7f%00 c");
	CHECK(envelope_add_rcpt(&env, "\"line\nbreak\"@example.org", "rfc822;x\r\n", 2) == 0);
	CHECK(envelope_set_reply(&env.rcpts[2], "550 5.1.1 no\r\n\r\nsuch user") == 0);
	env.rcpts[2].state = RCPT_BOUNCED;
	env.rcpts[2].attempts = 3;
	env.rcpts[2].next_attempt = 1700000123;
	int remaining = 1;
	struct outcome o = {.remaining = &remaining, .base = e.base};
	struct evbuffer *b = evbuffer_new();
	evbuffer_add(b, "x\r\n", 3);
	spool_commit(e.sp, &env, b, on_commit, &o);
	run_until_done(&e, &remaining);
	CHECK(o.ok);
	struct envelope got;
	CHECK(spool_read_envelope(e.sp, env.id, &got) == 0);
	CHECK_STR(got.sender, env.sender);
	CHECK_STR(got.helo, env.helo);
	CHECK(got.nrcpts == 3);
	if (got.nrcpts == 3) {
		CHECK_STR(got.rcpts[2].address, "\"line\nbreak\"@example.org");
		CHECK_STR(got.rcpts[2].orcpt, "rfc822;x\r\n");
		CHECK_STR(got.rcpts[2].last_reply, "550 5.1.1 no\r\n\r\nsuch user");
		CHECK(got.rcpts[2].state == RCPT_BOUNCED && got.rcpts[2].attempts == 3);
		CHECK(got.rcpts[2].next_attempt == 1700000123);
	}
	size_t len;
	char *body = read_body(e.sp, env.id, &len);
	CHECK(body && len == 3 && memcmp(body, "x\r\n", 3) == 0);
	free(body);
	envelope_free(&got);
	envelope_free(&env);
	teardown(&e);
}

static void test_envelope_text_is_strict(void)
{
	struct envelope env;
	const char *good = "tern-spool 1\nid abc\nsender \nfuture-key whatever\n";
	CHECK(envelope_parse(good, strlen(good), &env) == 0);
	CHECK_STR(env.sender, ""); /* the null reverse path survives */
	envelope_free(&env);
	const char *bad[] = {
		"tern-spool 2\nid abc\nsender \n",		       /* unknown version */
		"tern-spool 1\nid abc\nsender a%00b\n",		       /* escaped NUL */
		"tern-spool 1\nid abc\nsender a%4\n",		       /* short escape */
		"tern-spool 1\nid abc\nsender a%zzb\n",		       /* bad hex */
		"tern-spool 1\nid abc\nsender a\rb\n",		       /* raw CR */
		"tern-spool 1\nid ../x\nsender a\n",		       /* id outside the alphabet */
		"tern-spool 1\nsender a\n",			       /* no id */
		"tern-spool 1\nid abc\n",			       /* no sender */
		"tern-spool 1\nid abc\nsender a\nrcpt-state queued\n", /* no rcpt */
		"tern-spool 1\nid abc\nsender a\nrcpt b\nrcpt-state lost\n",
		"tern-spool 1\nid abc\nsender a\nsize 12x\n",
		"tern-spool 1\nid abc\nsender a\nnospace\n",
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		errno = 0;
		int rc = envelope_parse(bad[i], strlen(bad[i]), &env);
		if (rc != -1 || errno != EINVAL)
			fprintf(stderr, "accepted bad envelope %zu\n", i);
		CHECK(rc == -1 && errno == EINVAL);
		CHECK(env.sender == NULL && env.nrcpts == 0);
	}
}

static void test_update_envelope_keeps_body(void)
{
	struct env e;
	setup(&e);
	struct envelope env;
	make_envelope(&env, e.sp, "alice@example.com");
	struct evbuffer *b = evbuffer_new();
	char big[200000];
	for (size_t i = 0; i < sizeof big; i++)
		big[i] = (char)(i % 251);
	evbuffer_add(b, big, sizeof big);
	int remaining = 1;
	struct outcome o = {.remaining = &remaining, .base = e.base};
	spool_commit(e.sp, &env, b, on_commit, &o);
	run_until_done(&e, &remaining);
	CHECK(o.ok);
	env.rcpts[0].state = RCPT_DELIVERED;
	CHECK(envelope_set_reply(&env.rcpts[0], "250 2.0.0 delivered to maildir") == 0);
	/* A much longer envelope: the body moves in the file. */
	for (int i = 0; i < 200; i++) {
		char a[64];
		snprintf(a, sizeof a, "extra%d@example.net", i);
		CHECK(envelope_add_rcpt(&env, a, NULL, 0) == 0);
	}
	CHECK(spool_update_envelope(e.sp, &env) == 0);
	struct envelope got;
	CHECK(spool_read_envelope(e.sp, env.id, &got) == 0);
	CHECK(got.nrcpts == 202);
	if (got.nrcpts == 202) {
		CHECK(got.rcpts[0].state == RCPT_DELIVERED);
		CHECK_STR(got.rcpts[0].last_reply, "250 2.0.0 delivered to maildir");
		CHECK(got.rcpts[1].state == RCPT_QUEUED);
		CHECK_STR(got.rcpts[201].address, "extra199@example.net");
	}
	envelope_free(&got);
	size_t len;
	char *body = read_body(e.sp, env.id, &len);
	CHECK(body && len == sizeof big && memcmp(body, big, len) == 0);
	free(body);
	char tmp[128];
	snprintf(tmp, sizeof tmp, "%s/tmp", e.spooldir);
	CHECK(count_entries(tmp) == 0);
	/* Removal, and the ids nobody may use as a path. */
	CHECK(spool_remove(e.sp, env.id) == 0);
	CHECK(spool_read_envelope(e.sp, env.id, &got) == -1 && errno == ENOENT);
	CHECK(spool_remove(e.sp, "../spool") == -1 && errno == EINVAL);
	CHECK(spool_read_envelope(e.sp, "..", &got) == -1 && errno == EINVAL);
	envelope_free(&env);
	teardown(&e);
}

static void test_open_removes_tmp_leftovers_and_locks(void)
{
	struct env e;
	setup(&e);
	char path[160];
	snprintf(path, sizeof path, "%s/tmp/0000half", e.spooldir);
	int fd = open(path, O_WRONLY | O_CREAT, 0600);
	CHECK(fd >= 0);
	CHECK(write(fd, "tern-spool 1\nid 0", 17) == 17);
	close(fd);
	/* A second daemon on the same spool is refused while the first runs. */
	char err[256] = "";
	CHECK(spool_open(e.spooldir, e.pool, err, sizeof err) == NULL);
	CHECK(strstr(err, "lock") != NULL);
	CHECK(access(path, F_OK) == 0);
	spool_close(&e.sp);
	CHECK(e.sp == NULL);
	e.sp = spool_open(e.spooldir, e.pool, err, sizeof err);
	CHECK(e.sp != NULL);
	CHECK(access(path, F_OK) == -1 && errno == ENOENT);
	/* A damaged file in msg/ (no blank line) is refused, not misread;
	 * names that are not ids are not listed. */
	snprintf(path, sizeof path, "%s/msg/0000damaged", e.spooldir);
	fd = open(path, O_WRONLY | O_CREAT, 0600);
	CHECK(write(fd, "tern-spool 1\nid 0000damaged\nsender a\n", 37) == 37);
	close(fd);
	snprintf(path, sizeof path, "%s/msg/.hidden", e.spooldir);
	close(open(path, O_WRONLY | O_CREAT, 0600));
	struct envelope env;
	CHECK(spool_read_envelope(e.sp, "0000damaged", &env) == -1 && errno == EINVAL);
	size_t n;
	char **ids = spool_list(e.sp, &n);
	CHECK(n == 1 && ids && strcmp(ids[0], "0000damaged") == 0);
	for (size_t i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
	teardown(&e);
}

static void test_failed_commit_leaves_nothing(void)
{
	struct env e;
	setup(&e);
	char tmp[160], msg[160];
	snprintf(tmp, sizeof tmp, "%s/tmp", e.spooldir);
	snprintf(msg, sizeof msg, "%s/msg", e.spooldir);
	/* tmp/ replaced by a file: creating the message file fails (root
	 * ignores permissions, so break the path itself). */
	CHECK(rmdir(tmp) == 0);
	int fd = open(tmp, O_WRONLY | O_CREAT, 0600);
	close(fd);
	struct envelope env;
	make_envelope(&env, e.sp, "a@example.com");
	struct evbuffer *b = evbuffer_new();
	evbuffer_add(b, "x\r\n", 3);
	int remaining = 1;
	struct outcome o = {.remaining = &remaining, .base = e.base};
	spool_commit(e.sp, &env, b, on_commit, &o);
	run_until_done(&e, &remaining);
	CHECK(o.done == 1 && o.ok == 0 && o.errnum != 0);
	CHECK(count_entries(msg) == 0);
	envelope_free(&env);
	teardown(&e);
}

static void test_write_error_fails_only_that_message(void)
{
	struct env e;
	setup(&e);
	/* RLIMIT_FSIZE makes the kernel refuse the big file's write (EFBIG),
	 * a stand-in for a full disk, while the small one in the same batch
	 * goes through. */
	struct rlimit old, lim;
	getrlimit(RLIMIT_FSIZE, &old);
	signal(SIGXFSZ, SIG_IGN);
	lim = old;
	lim.rlim_cur = 100000;
	CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0);
	struct envelope env[3];
	struct outcome o[3];
	int remaining = 3;
	for (int i = 0; i < 3; i++) {
		make_envelope(&env[i], e.sp, "a@example.com");
		struct evbuffer *b = evbuffer_new();
		size_t size = i == 1 ? 150000 : 100;
		char *fill = calloc(1, size);
		evbuffer_add(b, fill, size);
		free(fill);
		o[i] = (struct outcome){.remaining = &remaining, .base = e.base};
		spool_commit(e.sp, &env[i], b, on_commit, &o[i]);
	}
	run_until_done(&e, &remaining);
	CHECK(setrlimit(RLIMIT_FSIZE, &old) == 0);
	CHECK(o[0].ok == 1 && o[2].ok == 1);
	CHECK(o[1].ok == 0 && o[1].errnum == EFBIG);
	struct envelope got;
	CHECK(spool_read_envelope(e.sp, env[1].id, &got) == -1 && errno == ENOENT);
	CHECK(spool_read_envelope(e.sp, env[2].id, &got) == 0);
	envelope_free(&got);
	char tmp[160], msg[160];
	snprintf(tmp, sizeof tmp, "%s/tmp", e.spooldir);
	snprintf(msg, sizeof msg, "%s/msg", e.spooldir);
	CHECK(count_entries(tmp) == 0);
	CHECK(count_entries(msg) == 2);
	for (int i = 0; i < 3; i++)
		envelope_free(&env[i]);
	teardown(&e);
}

/* Commits still waiting when the pool shuts down are flushed anyway. */
static void test_commit_during_shutdown_still_durable(void)
{
	struct env e;
	setup(&e);
	struct envelope env[3];
	struct outcome o[3];
	int remaining = 3;
	for (int i = 0; i < 3; i++) {
		make_envelope(&env[i], e.sp, "a@example.com");
		struct evbuffer *b = evbuffer_new();
		evbuffer_add(b, "x\r\n", 3);
		o[i] = (struct outcome){.remaining = &remaining, .base = e.base};
		spool_commit(e.sp, &env[i], b, on_commit, &o[i]);
	}
	/* workers_free runs the first flush's completion, which can no
	 * longer submit: the second batch is flushed on this thread. */
	workers_free(&e.pool);
	CHECK(remaining == 0);
	for (int i = 0; i < 3; i++) {
		CHECK(o[i].done == 1 && o[i].ok == 1);
		struct envelope got;
		CHECK(spool_read_envelope(e.sp, env[i].id, &got) == 0);
		envelope_free(&got);
		envelope_free(&env[i]);
	}
	teardown(&e);
}

/* ---- the write-ahead log ---- */

/* A log that never checkpoints on its own, not even at close: closing
 * then leaves the log as a crash would. */
static const struct spool_tuning no_checkpoints = {
	.wal_size = SPOOL_WAL_SIZE,
	.wal_record_max = SPOOL_WAL_RECORD_MAX,
	.checkpoint_ms = -1,
};

/* commit_one - commit a message with BODY (LEN bytes) and wait for it;
 * its id into ID.  Returns the callback's ok. */
static int commit_one(struct env *e, const char *body, size_t len, char *id)
{
	struct envelope env;
	make_envelope(&env, e->sp, "alice@example.com");
	env.size = len;
	struct evbuffer *b = evbuffer_new();
	evbuffer_add(b, body, len);
	int remaining = 1;
	struct outcome o = {.remaining = &remaining, .base = e->base};
	spool_commit(e->sp, &env, b, on_commit, &o);
	run_until_done(e, &remaining);
	snprintf(id, 32, "%s", env.id);
	envelope_free(&env);
	return o.ok;
}

/* slurp - the whole file at DIR/NAME, malloc'ed, or NULL when absent. */
static char *slurp(const char *dir, const char *name, size_t *len)
{
	char path[256];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *buf = malloc((size_t)n + 1);
	*len = fread(buf, 1, (size_t)n, f);
	fclose(f);
	return buf;
}

/* msg_path - SPOOLDIR/msg/ID into OUT. */
static void msg_path(const struct env *e, const char *id, char *out, size_t outlen)
{
	int n = snprintf(out, outlen, "%s/msg/%s", e->spooldir, id);
	CHECK(n > 0 && (size_t)n < outlen);
}

/* stop_spool / start_spool - close and open the spool again; the tests
 * change its files in between.  With checkpoint_ms < 0, closing leaves
 * the log as a crash would (no last checkpoint). */
static void stop_spool(struct env *e)
{
	workers_free(&e->pool);
	spool_close(&e->sp);
}

static void start_spool(struct env *e, const struct spool_tuning *t)
{
	e->pool = workers_new(e->base, 4);
	char err[256] = "";
	e->sp = spool_open_tuned(e->spooldir, e->pool, t, err, sizeof err);
	if (!e->sp)
		fprintf(stderr, "spool_open: %s\n", err);
	CHECK(e->sp != NULL);
}

static void test_group_commit_one_log_sync_per_batch(void)
{
	struct env e;
	setup(&e);
	enum { N = 50 };
	struct outcome o[N];
	struct envelope env[N];
	int remaining = N;
	for (int i = 0; i < N; i++) {
		make_envelope(&env[i], e.sp, "a@example.com");
		struct evbuffer *b = evbuffer_new();
		evbuffer_add_printf(b, "Subject: %d\r\n\r\n%0900d\r\n", i, i); /* ~1 KB */
		o[i] = (struct outcome){.remaining = &remaining, .base = e.base};
		spool_commit(e.sp, &env[i], b, on_commit, &o[i]);
	}
	run_until_done(&e, &remaining);
	struct spool_counters c;
	spool_get_counters(e.sp, &c);
	CHECK(c.wal && c.flushes == 2);
	/* Every message went through the log: one fdatasync per batch, no
	 * file or directory sync at all. */
	CHECK(c.wal_records == N && c.wal_batches == 2);
	CHECK(c.file_syncs == 0 && c.dir_syncs == 0 && c.file_commits == 0);
	printf("log: %d commits, %lu flushes, %lu log fdatasyncs, %lu file fdatasyncs, "
	       "%lu directory fsyncs: %.3f disk syncs per message\n",
	       N, c.flushes, c.wal_batches, c.file_syncs, c.dir_syncs,
	       (double)(c.wal_batches + c.file_syncs + c.dir_syncs) / N);
	for (int i = 0; i < N; i++) {
		CHECK(o[i].ok == 1);
		struct envelope got;
		CHECK(spool_read_envelope(e.sp, env[i].id, &got) == 0);
		envelope_free(&got);
		envelope_free(&env[i]);
	}
	teardown(&e);

	/* The same without the log, for comparison. */
	struct spool_tuning nolog = {.wal_size = 0};
	setup_tuned(&e, &nolog);
	remaining = N;
	for (int i = 0; i < N; i++) {
		make_envelope(&env[i], e.sp, "a@example.com");
		struct evbuffer *b = evbuffer_new();
		evbuffer_add_printf(b, "Subject: %d\r\n\r\n%0900d\r\n", i, i);
		o[i] = (struct outcome){.remaining = &remaining, .base = e.base};
		spool_commit(e.sp, &env[i], b, on_commit, &o[i]);
	}
	run_until_done(&e, &remaining);
	spool_get_counters(e.sp, &c);
	CHECK(!c.wal && c.flushes == 2 && c.file_commits == N);
	CHECK(c.file_syncs == N && c.dir_syncs == 4);
	printf("files: %d commits, %lu flushes, %lu file fdatasyncs, %lu directory fsyncs: "
	       "%.3f disk syncs per message\n",
	       N, c.flushes, c.file_syncs, c.dir_syncs, (double)(c.file_syncs + c.dir_syncs) / N);
	for (int i = 0; i < N; i++) {
		CHECK(o[i].ok == 1);
		envelope_free(&env[i]);
	}
	teardown(&e);
}

static void test_crash_before_checkpoint_replays_identical_files(void)
{
	struct env e;
	setup_tuned(&e, &no_checkpoints);
	enum { N = 5 };
	char ids[N][32], *orig[N], path[256], msgdir[160];
	size_t olen[N];
	snprintf(msgdir, sizeof msgdir, "%s/msg", e.spooldir);
	static char big[300000];
	for (size_t i = 0; i < sizeof big; i++)
		big[i] = (char)(i * 7 + i / 251);
	for (int i = 0; i < N; i++) {
		size_t len = i == 2 ? sizeof big : (size_t)(100 + i * 1000);
		CHECK(commit_one(&e, big, len, ids[i]) == 1);
		orig[i] = slurp(msgdir, ids[i], &olen[i]);
		CHECK(orig[i] != NULL);
	}
	/* One message's envelope was updated (fsynced) after its commit: that
	 * newer state must survive the replay. */
	struct envelope upd;
	CHECK(spool_read_envelope(e.sp, ids[4], &upd) == 0);
	upd.rcpts[0].state = RCPT_DELIVERED;
	CHECK(spool_update_envelope(e.sp, &upd) == 0);
	envelope_free(&upd);
	size_t updlen;
	char *updated = slurp(msgdir, ids[4], &updlen);
	stop_spool(&e);
	/* What a crash may leave of files that were never fsynced: gone,
	 * empty, cut short, a damaged envelope. */
	msg_path(&e, ids[0], path, sizeof path);
	CHECK(unlink(path) == 0);
	msg_path(&e, ids[1], path, sizeof path);
	CHECK(truncate(path, 0) == 0);
	msg_path(&e, ids[2], path, sizeof path);
	CHECK(truncate(path, (off_t)olen[2] / 2) == 0);
	msg_path(&e, ids[3], path, sizeof path);
	int fd = open(path, O_WRONLY);
	CHECK(pwrite(fd, "\0\0\0", 3, 20) == 3);
	close(fd);
	start_spool(&e, &no_checkpoints);
	for (int i = 0; i < 4; i++) {
		size_t len = 0;
		char *now = slurp(msgdir, ids[i], &len);
		CHECK(now && len == olen[i] && memcmp(now, orig[i], len) == 0);
		free(now);
	}
	size_t len = 0;
	char *now = slurp(msgdir, ids[4], &len);
	CHECK(now && updated && len == updlen && memcmp(now, updated, len) == 0);
	free(now);
	free(updated);
	char tmp[160];
	snprintf(tmp, sizeof tmp, "%s/tmp", e.spooldir);
	CHECK(count_entries(tmp) == 0);
	for (int i = 0; i < N; i++)
		free(orig[i]);
	teardown(&e);
}

/* find_in_log - the offset of NEEDLE in wal/log, or -1. */
static long find_in_log(const struct env *e, const char *needle)
{
	char wal[160];
	snprintf(wal, sizeof wal, "%s/wal", e->spooldir);
	size_t len = 0;
	char *log = slurp(wal, "log", &len);
	char *at = log ? memmem(log, len, needle, strlen(needle)) : NULL;
	long off = at ? at - log : -1;
	free(log);
	return off;
}

static void test_torn_record_at_the_tail_is_ignored(void)
{
	struct env e;
	setup_tuned(&e, &no_checkpoints);
	char a[32], b[32], c[32], path[256];
	const char *body_a = "Subject: a\r\n\r\nfirst, whole\r\n";
	const char *body_b = "Subject: b\r\n\r\nsecond, torn by the crash\r\n";
	CHECK(commit_one(&e, body_a, strlen(body_a), a) == 1);
	CHECK(commit_one(&e, body_b, strlen(body_b), b) == 1);
	stop_spool(&e);
	/* One byte of B's record changed: its checksum no longer matches. */
	long off = find_in_log(&e, "torn by the crash");
	CHECK(off > 0);
	char wal[160];
	snprintf(wal, sizeof wal, "%s/wal/log", e.spooldir);
	int fd = open(wal, O_WRONLY);
	CHECK(pwrite(fd, "T", 1, off) == 1);
	close(fd);
	msg_path(&e, a, path, sizeof path);
	CHECK(unlink(path) == 0);
	msg_path(&e, b, path, sizeof path);
	CHECK(unlink(path) == 0);
	start_spool(&e, &no_checkpoints);
	msg_path(&e, a, path, sizeof path);
	CHECK(access(path, F_OK) == 0);
	msg_path(&e, b, path, sizeof path);
	CHECK(access(path, F_OK) == -1);
	/* The log goes on after the torn place: a new message is replayed
	 * after the next crash, the ones before the restart are not. */
	CHECK(commit_one(&e, body_a, strlen(body_a), c) == 1);
	stop_spool(&e);
	msg_path(&e, a, path, sizeof path);
	CHECK(unlink(path) == 0);
	msg_path(&e, c, path, sizeof path);
	CHECK(unlink(path) == 0);
	start_spool(&e, &no_checkpoints);
	CHECK(access(path, F_OK) == 0);
	msg_path(&e, a, path, sizeof path);
	CHECK(access(path, F_OK) == -1);
	teardown(&e);
}

/* start_commit - commit BODY (LEN bytes) without waiting; its id into ID. */
static void start_commit(struct env *e, const char *body, size_t len, char *id, struct outcome *o)
{
	struct envelope env;
	make_envelope(&env, e->sp, "alice@example.com");
	struct evbuffer *b = evbuffer_new();
	evbuffer_add(b, body, len);
	spool_commit(e->sp, &env, b, on_commit, o);
	snprintf(id, 32, "%s", env.id);
	envelope_free(&env);
}

static void test_records_after_a_torn_one_stay_dead(void)
{
	struct env e;
	setup_tuned(&e, &no_checkpoints);
	/* X's record fills exactly two pages, so the Y after it starts a
	 * page: the one place a later, shorter batch would not cover. */
	struct envelope probe;
	make_envelope(&probe, e.sp, "alice@example.com");
	char *text;
	size_t headlen;
	CHECK(envelope_format(&probe, &text, &headlen) == 0);
	free(text);
	envelope_free(&probe);
	size_t xlen = 2 * 4096 - 64 - headlen;
	char *xbody = malloc(xlen);
	memset(xbody, 'x', xlen);
	memcpy(xbody, "torn-x", 6);
	char z[32], x[32], y[32], c[32], path[256];
	struct outcome o[3];
	int remaining = 3;
	for (int i = 0; i < 3; i++)
		o[i] = (struct outcome){.remaining = &remaining, .base = e.base};
	/* Z flushes alone; X and Y wait and share the next batch. */
	start_commit(&e, "z\r\n", 3, z, &o[0]);
	start_commit(&e, xbody, xlen, x, &o[1]);
	start_commit(&e, "y\r\n", 3, y, &o[2]);
	run_until_done(&e, &remaining);
	CHECK(o[1].ok && o[2].ok);
	stop_spool(&e);
	/* The crash tore X; Y's pages made it (no 250 went out for either). */
	long off = find_in_log(&e, "torn-x");
	CHECK(off > 0);
	char wal[160];
	snprintf(wal, sizeof wal, "%s/wal/log", e.spooldir);
	int fd = open(wal, O_WRONLY);
	CHECK(pwrite(fd, "T", 1, off) == 1);
	close(fd);
	msg_path(&e, x, path, sizeof path);
	CHECK(unlink(path) == 0);
	msg_path(&e, y, path, sizeof path);
	CHECK(unlink(path) == 0);
	start_spool(&e, &no_checkpoints);
	CHECK(access(path, F_OK) == -1); /* Y: after the end of the log */
	/* A new record as long as X: Y's old header is still right after
	 * it, but from another lap, so it stays dead. */
	remaining = 1;
	start_commit(&e, xbody, xlen, c, &o[0]);
	run_until_done(&e, &remaining);
	CHECK(o[0].ok);
	stop_spool(&e);
	msg_path(&e, c, path, sizeof path);
	CHECK(unlink(path) == 0);
	start_spool(&e, &no_checkpoints);
	CHECK(access(path, F_OK) == 0);
	msg_path(&e, y, path, sizeof path);
	CHECK(access(path, F_OK) == -1);
	free(xbody);
	teardown(&e);
}

static void test_record_from_an_earlier_lap_is_not_replayed(void)
{
	struct env e;
	struct spool_tuning slow = no_checkpoints;
	slow.checkpoint_ms = 60000; /* only the one at close */
	setup_tuned(&e, &slow);
	char a[32], path[256];
	const char *body = "Subject: old\r\n\r\nfrom the first lap\r\n";
	CHECK(commit_one(&e, body, strlen(body), a) == 1);
	stop_spool(&e); /* a clean stop: checkpointed */
	start_spool(&e, &no_checkpoints);
	stop_spool(&e); /* a crash with nothing new in the log */
	/* The old record is still in the file, whole, where a scan of the
	 * new lap starts; only its LSN tells it is stale. */
	CHECK(find_in_log(&e, "from the first lap") > 0);
	msg_path(&e, a, path, sizeof path);
	CHECK(unlink(path) == 0); /* delivered and removed long ago */
	start_spool(&e, &no_checkpoints);
	CHECK(access(path, F_OK) == -1);
	teardown(&e);
}

static void test_checkpoint_lets_the_log_reuse_its_space(void)
{
	struct env e;
	const struct spool_tuning small = {
		.wal_size = 128 * 1024, .wal_record_max = 16 * 1024, .checkpoint_ms = -1};
	setup_tuned(&e, &small);
	enum { ROUND = 20 };
	char ids[3 * ROUND][32], path[256];
	char body[3000];
	memset(body, 'x', sizeof body);
	/* One 4 KiB page per commit: a round fills 80 of the 128 KiB. */
	for (int i = 0; i < ROUND; i++)
		CHECK(commit_one(&e, body, sizeof body, ids[i]) == 1);
	CHECK(spool_checkpoint(e.sp) == 0);
	for (int i = ROUND; i < 2 * ROUND; i++)
		CHECK(commit_one(&e, body, sizeof body, ids[i]) == 1);
	struct spool_counters c;
	spool_get_counters(e.sp, &c);
	CHECK(c.wal_records == 2 * ROUND && c.file_commits == 0 && c.checkpoints == 1);
	/* Without a checkpoint the log fills up: commits take the file path
	 * and still succeed. */
	for (int i = 2 * ROUND; i < 3 * ROUND; i++)
		CHECK(commit_one(&e, body, sizeof body, ids[i]) == 1);
	spool_get_counters(e.sp, &c);
	CHECK(c.file_commits > 0 && c.wal_records + c.file_commits == 3 * ROUND);
	unsigned long in_log = c.wal_records - 2 * ROUND;
	stop_spool(&e);
	for (int i = 0; i < 3 * ROUND; i++) {
		msg_path(&e, ids[i], path, sizeof path);
		CHECK(unlink(path) == 0);
	}
	start_spool(&e, &small);
	/* The second round (written across the end of the ring) and the
	 * third's logged ones come back; the first was checkpointed. */
	size_t back = 0;
	for (int i = 0; i < 3 * ROUND; i++) {
		msg_path(&e, ids[i], path, sizeof path);
		int there = access(path, F_OK) == 0;
		if (i < ROUND)
			CHECK(!there);
		else if (i < 2 * ROUND)
			CHECK(there);
		back += (size_t)there;
	}
	CHECK(back == ROUND + in_log);
	teardown(&e);
}

static void test_large_message_takes_the_file_path(void)
{
	struct env e;
	const struct spool_tuning t = {
		.wal_size = 1 << 20, .wal_record_max = 64 * 1024, .checkpoint_ms = -1};
	setup_tuned(&e, &t);
	static char big[100000];
	for (size_t i = 0; i < sizeof big; i++)
		big[i] = (char)(i % 253);
	char small_id[32], big_id[32];
	CHECK(commit_one(&e, "x\r\n", 3, small_id) == 1);
	CHECK(commit_one(&e, big, sizeof big, big_id) == 1);
	struct spool_counters c;
	spool_get_counters(e.sp, &c);
	CHECK(c.wal_records == 1 && c.file_commits == 1 && c.file_syncs == 1);
	size_t len = 0;
	char *got = read_body(e.sp, big_id, &len);
	CHECK(got && len == sizeof big && memcmp(got, big, len) == 0);
	free(got);
	teardown(&e);
}

/* put_back - write BYTES (LEN) as msg/ID again: an unlink a crash undid. */
static void put_back(const struct env *e, const char *id, const char *bytes, size_t len)
{
	char path[256];
	msg_path(e, id, path, sizeof path);
	FILE *f = fopen(path, "wb");
	CHECK(f && bytes && fwrite(bytes, 1, len, f) == len);
	if (f)
		fclose(f);
}

static void test_removed_message_is_not_brought_back(void)
{
	struct env e;
	setup_tuned(&e, &no_checkpoints);
	char ids[5][32], path[256], msgdir[160];
	char *copy[5];
	size_t len[5];
	snprintf(msgdir, sizeof msgdir, "%s/msg", e.spooldir);
	/* 0 and 1 removed before a checkpoint, 2 and 3 after it (their notes
	 * go to the other removal file), 4 stays. */
	for (int i = 0; i < 5; i++) {
		if (i == 2)
			CHECK(spool_checkpoint(e.sp) == 0);
		CHECK(commit_one(&e, "m\r\n", 3, ids[i]) == 1);
		copy[i] = slurp(msgdir, ids[i], &len[i]);
		if (i < 4)
			CHECK(spool_remove(e.sp, ids[i]) == 0);
	}
	struct spool_counters cnt;
	spool_get_counters(e.sp, &cnt);
	CHECK(cnt.removals == 4 && cnt.checkpoints == 1);
	stop_spool(&e);
	/* The crash undid the unlinks (never fsynced) and lost the file of
	 * the message still queued. */
	for (int i = 0; i < 4; i++)
		put_back(&e, ids[i], copy[i], len[i]);
	msg_path(&e, ids[4], path, sizeof path);
	CHECK(unlink(path) == 0);
	start_spool(&e, &no_checkpoints);
	CHECK(access(path, F_OK) == 0);
	for (int i = 0; i < 4; i++) {
		msg_path(&e, ids[i], path, sizeof path);
		CHECK(access(path, F_OK) == -1);
	}
	for (int i = 0; i < 5; i++)
		free(copy[i]);
	teardown(&e);
}

static void test_removed_file_is_reused_for_the_next_commit(void)
{
	struct env e;
	setup(&e);
	char a[32], b[32], path[256], freedir[160];
	snprintf(freedir, sizeof freedir, "%s/free", e.spooldir);
	CHECK(commit_one(&e, "first\r\n", 7, a) == 1);
	struct stat st;
	msg_path(&e, a, path, sizeof path);
	CHECK(stat(path, &st) == 0);
	ino_t ino = st.st_ino;
	CHECK(spool_remove(e.sp, a) == 0);
	CHECK(access(path, F_OK) == -1);
	/* Kept, emptied: no message bytes linger in it. */
	CHECK(count_entries(freedir) == 1);
	size_t len = 99;
	char *spare = slurp(freedir, a, &len);
	CHECK(spare && len == 0);
	free(spare);
	const char *body = "second, in the first one's inode\r\n";
	CHECK(commit_one(&e, body, strlen(body), b) == 1);
	msg_path(&e, b, path, sizeof path);
	CHECK(stat(path, &st) == 0 && st.st_ino == ino && (st.st_mode & 0777) == 0600);
	CHECK(count_entries(freedir) == 0);
	char *got = read_body(e.sp, b, &len);
	CHECK(got && len == strlen(body) && memcmp(got, body, len) == 0);
	free(got);
	struct envelope env;
	CHECK(spool_read_envelope(e.sp, b, &env) == 0);
	envelope_free(&env);
	/* Spares left at a stop are cleared at the next start. */
	CHECK(spool_remove(e.sp, b) == 0);
	CHECK(count_entries(freedir) == 1);
	stop_spool(&e);
	start_spool(&e, &no_checkpoints);
	CHECK(count_entries(freedir) == 0);
	teardown(&e);
}

static void test_damaged_log_head_refuses_to_start(void)
{
	struct env e;
	setup_tuned(&e, &no_checkpoints);
	char id[32];
	CHECK(commit_one(&e, "x\r\n", 3, id) == 1);
	stop_spool(&e);
	char wal[160];
	snprintf(wal, sizeof wal, "%s/wal/log", e.spooldir);
	int fd = open(wal, O_WRONLY);
	static const char junk[8192] = {1};
	CHECK(pwrite(fd, junk, sizeof junk, 0) == (ssize_t)sizeof junk);
	close(fd);
	/* Both checkpoint slots gone: the log may hold acknowledged messages,
	 * so the spool says so instead of starting without them. */
	e.pool = workers_new(e.base, 1);
	char err[256] = "";
	CHECK(spool_open_tuned(e.spooldir, e.pool, &no_checkpoints, err, sizeof err) == NULL);
	CHECK(strstr(err, "wal/log") != NULL);
	teardown(&e);
}

int main(void)
{
	RUN(test_commit_reads_back_byte_for_byte);
	RUN(test_concurrent_commits_share_flushes);
	RUN(test_ids_unique_and_safe);
	RUN(test_hostile_fields_round_trip);
	RUN(test_envelope_text_is_strict);
	RUN(test_update_envelope_keeps_body);
	RUN(test_open_removes_tmp_leftovers_and_locks);
	RUN(test_failed_commit_leaves_nothing);
	RUN(test_write_error_fails_only_that_message);
	RUN(test_commit_during_shutdown_still_durable);
	RUN(test_group_commit_one_log_sync_per_batch);
	RUN(test_crash_before_checkpoint_replays_identical_files);
	RUN(test_torn_record_at_the_tail_is_ignored);
	RUN(test_records_after_a_torn_one_stay_dead);
	RUN(test_record_from_an_earlier_lap_is_not_replayed);
	RUN(test_checkpoint_lets_the_log_reuse_its_space);
	RUN(test_large_message_takes_the_file_path);
	RUN(test_removed_message_is_not_brought_back);
	RUN(test_damaged_log_head_refuses_to_start);
	RUN(test_removed_file_is_reused_for_the_next_commit);
	return check_summary();
}
