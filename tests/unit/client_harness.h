/* client_harness.h - what the outgoing client's tests share: a loop to run
 * until a callback fired, a message body in a file, callbacks that record
 * results, and a client connected to 127.0.0.1:PORT.  Included by
 * test_client.c (against smtp-sink) and test_client_peer.c (against a
 * scripted server); like check.h, one copy per test program. */
#ifndef TERN_TESTS_CLIENT_HARNESS_H
#define TERN_TESTS_CLIENT_HARNESS_H

#include <arpa/inet.h>
#include <event2/event.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "smtp/client.h"
#include "smtp/command.h"

static struct event_base *base;
static char tmpdir[64];

static inline int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sin = {.sin_family = AF_INET};
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t len = sizeof sin;
	int port = -1;
	if (fd >= 0 && bind(fd, (struct sockaddr *)&sin, sizeof sin) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sin, &len) == 0)
		port = ntohs(sin.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

static inline void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
	nanosleep(&ts, NULL);
}

static inline int tcp_ready(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int ok = fd >= 0 && connect(fd, (struct sockaddr *)&sin, sizeof sin) == 0;
	if (fd >= 0)
		close(fd);
	return ok;
}

/* body_file - a file holding junk, then BODY at offset 5. */
static inline int body_file(const char *body, size_t len)
{
	char path[128];
	snprintf(path, sizeof path, "%s/bodyXXXXXX", tmpdir);
	int fd = mkstemp(path);
	if (fd < 0)
		return -1;
	unlink(path);
	if (write(fd, "JUNK!", 5) != 5 || write(fd, body, len) != (ssize_t)len) {
		close(fd);
		return -1;
	}
	return fd;
}

static inline int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

/* ---- driving the loop ---- */

struct outcome {
	int connected, done;
	struct smtp_client_result conn, final, rcpts[8];
	size_t nrcpts;
	int free_in_done; /* free the client from inside the done callback */
	struct smtp_client **owner;
};

static inline void on_connected(struct smtp_client *c, const struct smtp_client_result *res,
				void *arg)
{
	struct outcome *o = arg;
	o->connected++;
	o->conn = *res;
}

static inline void on_done(struct smtp_client *c, const struct smtp_client_result *msg,
			   const struct smtp_client_result *rcpts, size_t n, void *arg)
{
	struct outcome *o = arg;
	o->done++;
	o->final = *msg;
	o->nrcpts = n;
	for (size_t i = 0; i < n && i < 8; i++)
		o->rcpts[i] = rcpts[i];
	if (o->free_in_done)
		smtp_client_free(o->owner);
}

static int timed_out;

static inline void on_watchdog(evutil_socket_t fd, short what, void *arg)
{
	timed_out = 1;
}

static inline void run_until(const int *flag, int seconds)
{
	struct timeval tv = {seconds, 0};
	struct event *dog = evtimer_new(base, on_watchdog, NULL);
	timed_out = 0;
	evtimer_add(dog, &tv);
	while (!*flag && !timed_out)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(dog);
}

/* run_for - let the loop run MS milliseconds (e.g. for a QUIT to finish). */
static inline void run_for(int ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
}

static inline struct smtp_client_config test_config(void)
{
	struct smtp_client_config cfg = {.helo_name = "client.test"};
	cfg.timeouts = (struct smtp_client_timeouts){.connect = 2000,
						     .greeting = 3000,
						     .helo = 3000,
						     .mail = 3000,
						     .rcpt = 3000,
						     .data_init = 3000,
						     .data_block = 3000,
						     .data_final = 3000,
						     .quit = 1000};
	return cfg;
}

/* connect_to - a client connected to 127.0.0.1:PORT (result in O). */
static inline struct smtp_client *connect_to(const struct smtp_client_config *cfg, int port,
					     struct outcome *o)
{
	char err[200] = "";
	struct smtp_client *c = smtp_client_new(base, cfg, err, sizeof err);
	CHECK(c != NULL);
	if (!c)
		return NULL;
	struct sockaddr_in sin = {.sin_family = AF_INET};
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CHECK(smtp_client_connect(c, (struct sockaddr *)&sin, sizeof sin, (uint16_t)port,
				  "mx.dest.test", on_connected, o) == 0);
	CHECK(o->connected == 0);
	run_until(&o->connected, 10);
	CHECK(o->connected == 1);
	return c;
}

static inline void send_and_wait(struct smtp_client *c, const struct smtp_client_msg *m,
				 struct outcome *o)
{
	o->done = 0;
	CHECK(smtp_client_send(c, m, on_done, o) == 0);
	CHECK(o->done == 0);
	run_until(&o->done, 10);
	CHECK(o->done == 1);
}

static const char BODY[] = "Subject: test\r\n\r\nline one\r\n.leading dot\r\n..two dots\r\n"
			   "caf\xc3\xa9\r\n.\r\nlast line without CRLF";

static const struct smtp_client_rcpt TWO_RCPTS[] = {
	{"x@dest.test", SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_FAILURE, "rfc822;x@dest.test"},
	{"y@dest.test", SMTP_NOTIFY_UNSET, NULL},
};

static inline struct smtp_client_msg test_msg(int fd, const struct smtp_client_rcpt *rcpts,
					      size_t n)
{
	return (struct smtp_client_msg){.sender = "a@sender.test",
					.rcpts = rcpts,
					.nrcpts = n,
					.envid = "ENV123",
					.ret = SMTP_RET_FULL,
					.body_8bit = 1,
					.fd = fd,
					.offset = 5,
					.length = sizeof BODY - 1};
}

/* harness_init - the loop and a private temporary directory. */
static inline int harness_init(void)
{
	snprintf(tmpdir, sizeof tmpdir, "/tmp/tern-test-client-XXXXXX");
	base = event_base_new();
	if (!base || !mkdtemp(tmpdir))
		return -1;
	chmod(tmpdir, 0755);
	return 0;
}

static inline void harness_done(void)
{
	nftw(tmpdir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
	event_base_free(base);
}

#endif
