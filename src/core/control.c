/* control.c - the control socket (see control.h). */
#include "core/control.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"

#define CONTROL_LINE_MAX 4096
#define CONTROL_MAX_COMMANDS 32

struct command {
	char name[32];
	control_handler fn;
	void *ctx;
};

struct control_request {
	struct control *ctl;
	struct bufferevent *bev;
	int answered; /* handler called; the next line is not read */
	int finished; /* control_finish called: free once written */
	struct control_request *prev, *next;
};

struct control {
	struct evconnlistener *listener;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct command commands[CONTROL_MAX_COMMANDS];
	size_t ncommands;
	struct control_request *requests;
};

static void request_free(struct control_request *r)
{
	struct control *c = r->ctl;
	if (r->prev)
		r->prev->next = r->next;
	else
		c->requests = r->next;
	if (r->next)
		r->next->prev = r->prev;
	bufferevent_free(r->bev);
	free(r);
}

static void dispatch(struct control_request *r, char *line)
{
	char *args = line + strcspn(line, " ");
	if (*args)
		*args++ = '\0';
	r->answered = 1;
	bufferevent_disable(r->bev, EV_READ);
	for (size_t i = 0; i < r->ctl->ncommands; i++) {
		struct command *cmd = &r->ctl->commands[i];
		if (strcmp(cmd->name, line) == 0) {
			cmd->fn(cmd->ctx, r, args);
			return;
		}
	}
	control_finish(r, "unknown command");
}

static void on_read(struct bufferevent *bev, void *arg)
{
	struct control_request *r = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	if (r->answered)
		return;
	size_t len;
	char *line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF);
	if (!line) {
		if (evbuffer_get_length(in) > CONTROL_LINE_MAX)
			control_finish(r, "line too long");
		return;
	}
	dispatch(r, line);
	free(line);
}

static void on_write(struct bufferevent *bev, void *arg)
{
	struct control_request *r = arg;
	if (r->finished)
		request_free(r);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	struct control_request *r = arg;
	if (!r->answered || r->finished) {
		request_free(r);
		return;
	}
	/* The client left while a handler works: the handler still owns
	 * the request and finishes it; only stop using the socket. */
	bufferevent_disable(bev, EV_READ | EV_WRITE);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
		      int salen, void *arg)
{
	struct control *c = arg;
	struct control_request *r = calloc(1, sizeof *r);
	struct event_base *base = evconnlistener_get_base(l);
	if (!r || !(r->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE))) {
		free(r);
		close(fd);
		return;
	}
	r->ctl = c;
	r->next = c->requests;
	if (c->requests)
		c->requests->prev = r;
	c->requests = r;
	struct timeval tv = { .tv_sec = 30, .tv_usec = 0 };
	bufferevent_set_timeouts(r->bev, &tv, &tv);
	bufferevent_setwatermark(r->bev, EV_READ, 0, CONTROL_LINE_MAX + 2);
	bufferevent_setcb(r->bev, on_read, on_write, on_event, r);
	bufferevent_enable(r->bev, EV_READ | EV_WRITE);
}

struct control *control_new(struct event_base *base, const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof sun.sun_path) {
		snprintf(err, errlen, "control socket path too long: %s", path);
		return NULL;
	}
	struct control *c = calloc(1, sizeof *c);
	if (!c) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path);
	snprintf(c->path, sizeof c->path, "%s", path);
	unlink(path);
	/* Not umask: it is process-wide and worker threads create files.
	 * The socket lives in data_dir (0700, the daemon's own), so nobody
	 * else can reach it in the moment before the chmod. */
	c->listener = evconnlistener_new_bind(base, on_accept, c, LEV_OPT_CLOSE_ON_FREE, 16,
					      (struct sockaddr *)&sun, sizeof sun);
	if (c->listener && chmod(path, 0600) < 0) {
		evconnlistener_free(c->listener);
		c->listener = NULL;
	}
	if (!c->listener) {
		snprintf(err, errlen, "control socket %s: %s", path, strerror(errno));
		free(c);
		return NULL;
	}
	return c;
}

int control_register(struct control *c, const char *name, control_handler fn, void *ctx)
{
	if (c->ncommands >= CONTROL_MAX_COMMANDS || strlen(name) >= sizeof c->commands[0].name)
		return -1;
	struct command *cmd = &c->commands[c->ncommands++];
	snprintf(cmd->name, sizeof cmd->name, "%s", name);
	cmd->fn = fn;
	cmd->ctx = ctx;
	return 0;
}

void control_printf(struct control_request *r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	evbuffer_add_vprintf(bufferevent_get_output(r->bev), fmt, ap);
	va_end(ap);
	evbuffer_add(bufferevent_get_output(r->bev), "\n", 1);
}

void control_finish(struct control_request *r, const char *error)
{
	if (error)
		control_printf(r, "error %s", error);
	else
		control_printf(r, "ok");
	r->finished = 1;
	if (!(bufferevent_get_enabled(r->bev) & EV_WRITE))
		request_free(r); /* the client is gone */
}

void control_free(struct control **pc)
{
	struct control *c = *pc;
	if (!c)
		return;
	*pc = NULL;
	struct control_request *r = c->requests;
	c->requests = NULL;
	while (r) {
		struct control_request *next = r->next;
		bufferevent_free(r->bev);
		free(r);
		r = next;
	}
	evconnlistener_free(c->listener);
	unlink(c->path);
	free(c);
}

/* remaining_ms - time left until DEADLINE (CLOCK_MONOTONIC ms). */
static int remaining_ms(long long deadline)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	long long now = ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
	return deadline > now ? (int)(deadline - now) : 0;
}

int control_call(const char *path, const char *line, FILE *out, int timeout_ms, char *err,
		 size_t errlen)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof sun) < 0) {
		snprintf(err, errlen, "ternd is not running (%s: %s)", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	long long deadline = ts.tv_sec * 1000LL + ts.tv_nsec / 1000000 + timeout_ms;
	size_t len = strlen(line);
	if (send(fd, line, len, MSG_NOSIGNAL) != (ssize_t)len || send(fd, "\n", 1, MSG_NOSIGNAL) != 1) {
		snprintf(err, errlen, "control socket: %s", strerror(errno));
		close(fd);
		return -1;
	}
	char buf[CONTROL_LINE_MAX];
	size_t have = 0;
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int wait = remaining_ms(deadline);
		if (wait == 0 || poll(&p, 1, wait) <= 0) {
			snprintf(err, errlen, "ternd did not answer in time");
			close(fd);
			return -2;
		}
		ssize_t n = read(fd, buf + have, sizeof buf - 1 - have);
		if (n <= 0) {
			snprintf(err, errlen, "ternd closed the control connection");
			close(fd);
			return -1;
		}
		have += (size_t)n;
		buf[have] = '\0';
		char *nl;
		while ((nl = memchr(buf, '\n', have))) {
			*nl = '\0';
			if (strcmp(buf, "ok") == 0) {
				close(fd);
				return 0;
			}
			if (strncmp(buf, "error ", 6) == 0) {
				snprintf(err, errlen, "%s", buf + 6);
				close(fd);
				return 1;
			}
			if (out)
				fprintf(out, "%s\n", buf);
			size_t used = (size_t)(nl - buf) + 1;
			memmove(buf, nl + 1, have - used);
			have -= used;
		}
		if (have == sizeof buf - 1)
			have = 0; /* an over-long line: drop it */
	}
}
