/* control.h - the daemon's control socket, DATA_DIR/control.sock (0600).
 *
 * ternctl talks to the running ternd here: one command line in, reply lines
 * out, the last being "ok" or "error REASON".  Handlers may answer later
 * (after a worker job), so a request carries its own reply channel.
 * Runs on the loop; requests are bounded (one line, 4 KiB). */
#ifndef TERN_CORE_CONTROL_H
#define TERN_CORE_CONTROL_H

#include <stddef.h>
#include <stdio.h>

struct event_base;
struct control;
struct control_request;

/* A handler gets the request and the rest of the line after the command
 * word; it must eventually call control_finish exactly once. */
typedef void (*control_handler)(void *ctx, struct control_request *req, const char *args);

/* control_new - listen on PATH (an old socket file is replaced).  NULL with
 * ERR set on failure. */
struct control *control_new(struct event_base *base, const char *path, char *err,
			    size_t errlen);
/* control_register - NAME's handler; at most 32 commands. */
int control_register(struct control *c, const char *name, control_handler fn, void *ctx);
/* control_printf - one reply line (before control_finish). */
void control_printf(struct control_request *req, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* control_finish - the last line: "ok" when ERROR is NULL, else
 * "error ERROR"; the request is freed. */
void control_finish(struct control_request *req, const char *error);
/* control_free - close the socket and every open request, remove PATH. */
void control_free(struct control **c);

/* control_call - the client side (ternctl): send LINE to the socket at PATH
 * and copy the reply lines (the final "ok"/"error" line excluded) to OUT.
 * Returns 0 on "ok", 1 on "error" (reason in ERR), -1 when no daemon
 * answers (no socket, refused: ERR says why), -2 on timeout.  Blocking, with
 * TIMEOUT_MS as the bound. */
int control_call(const char *path, const char *line, FILE *out, int timeout_ms,
		 char *err, size_t errlen);

#endif
