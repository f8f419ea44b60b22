/* session.h - one SMTP connection on the server side (RFC 5321).
 *
 * The session reads commands from a bufferevent, runs them through the
 * command table (session_commands.c) and writes replies in order, which makes
 * pipelining (RFC 2920) natural: while a command waits for the worker pool
 * (the spool's fsync) the session stops reading, so later commands are
 * answered after it.
 *
 * Memory: an idle session holds this struct, its bufferevent and nothing
 * else; the message body buffer exists only inside a transaction.
 * Ownership: the server creates sessions and frees them through
 * session_close; a session holds references to its settings and directory. */
#ifndef TERN_SMTP_SESSION_H
#define TERN_SMTP_SESSION_H

#include <netinet/in.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/address.h"
#include "core/config.h"
#include "smtp/command.h"
#include "smtp/data_stream.h"
#include "smtp/reply.h"
#include "smtp/server.h"
#include "spool/envelope.h"

struct bufferevent;
struct event;
struct evbuffer;

enum session_state {
	SS_INIT, /* greeted, no HELO/EHLO yet */
	SS_READY, /* HELO/EHLO done, no transaction */
	SS_MAIL, /* MAIL accepted */
	SS_RCPT, /* at least one RCPT accepted */
	SS_DATA, /* reading the DATA body */
	SS_BDAT, /* reading a BDAT chunk */
	SS_BUSY, /* waiting for the spool commit */
	SS_CLOSING, /* last reply queued, closing once it is written */
};

struct session {
	struct smtp_server *server;
	const struct smtp_context *ctx;
	struct settings *settings; /* reference */
	struct directory *dir; /* reference */
	enum listen_kind kind;
	struct bufferevent *bev;
	struct sockaddr_storage peer;
	char peer_text[INET6_ADDRSTRLEN];
	unsigned long serial; /* for log lines */

	enum session_state state;
	int esmtp; /* EHLO (not HELO) was used */
	char *helo; /* malloc'ed HELO/EHLO argument */
	unsigned errors;
	int skipping_long_line; /* discarding the rest of an over-long line */
	int tls; /* TLS is active on this connection */
	char *auth_user; /* authenticated user or NULL */
	int auth_step; /* waiting for an AUTH continuation line (session_auth.c) */
	unsigned auth_failures; /* on this connection */
	char *auth_login_user; /* LOGIN: the user name until the password comes */
	struct event *auth_delay; /* the slowed reply to a failed AUTH */
	struct event *close_timer; /* waits for the last TLS bytes to leave */
	unsigned close_checks;
	int dead; /* the peer went away while a commit was in flight */

	/* The current transaction. */
	struct envelope env;
	struct smtp_mail_params mail;
	struct evbuffer *body; /* created at DATA/BDAT, handed to the spool */
	size_t received_len; /* our Received header at the start of body */
	struct data_stream ds;
	uint64_t bdat_remaining; /* bytes of the current chunk still to read */
	int bdat_last; /* the current chunk is the LAST one */
	int bdat_failed; /* this chunk was refused at the command: discard it */
	struct smtp_reply bdat_error; /* the reply for a refused chunk */
	enum session_state bdat_prev_state; /* where a refused chunk returns */
	char *subject; /* the committed message's Subject, for its record */
};

/* session_new - take over FD accepted from PEER on a KIND listener. */
struct session *session_new(struct smtp_server *srv, const struct smtp_context *ctx,
			    struct settings *s, struct directory *d, enum listen_kind kind,
			    int fd, const struct sockaddr *peer, socklen_t peerlen);

/* session_reply - queue "CODE ENH TEXT\r\n". */
void session_reply(struct session *s, struct smtp_reply r);
/* session_replyf - the same with printf-style text. */
void session_replyf(struct session *s, int code, const char *enh, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* session_error - a reply that counts as a client error; at max_errors the
 * session answers 421 and closes. */
void session_error(struct session *s, struct smtp_reply r);
/* session_close_after_reply - queue R, then close once it is written. */
void session_close_after_reply(struct session *s, struct smtp_reply r);
/* session_reset_transaction - forget MAIL, RCPTs and body (RSET). */
void session_reset_transaction(struct session *s);
/* session_resume - go on reading after an asynchronous step finished. */
void session_resume(struct session *s);
/* session_start_tls - answer 220 and begin the TLS handshake (STARTTLS). */
int session_start_tls(struct session *s);
/* session_free - release everything; called by the server. */
void session_free(struct session *s);

/* session_commands.c: run one complete command line (CRLF removed). */
void session_command(struct session *s, const char *line, size_t len);
/* session_commands.c: the body of a DATA or BDAT transaction is complete. */
void session_commit_message(struct session *s);
/* session_commands.c: the DATA end or final BDAT chunk with errors: reply. */
struct smtp_reply data_error_reply(enum data_error e);

/* session_auth.c: AUTH, its continuation lines, and the sender rules. */
void session_cmd_auth(struct session *s, const char *args, size_t len);
void session_auth_response(struct session *s, const char *line, size_t len, int step);
struct smtp_reply session_sender_allowed(struct session *s, const char *sender);

/* session_policy.c: the rate limit at MAIL (code 0: go on). */
struct smtp_reply session_rate_check(struct session *s);
/* session_policy.c: the suppression list and quotas for one more RCPT. */
struct smtp_reply session_rcpt_limits(struct session *s, const char *rcpt);
/* session_policy.c: record a refused recipient (or sender: RCPT NULL). */
void session_record_rejection(struct session *s, const char *rcpt, struct smtp_reply r);
/* session_headers.c: the Subject of the client's header block in BODY,
 * unfolded (malloc'ed, caller frees; "" when none; NULL out of memory). */
char *session_subject(struct session *s, struct evbuffer *body);
/* session_policy.c: the message is committed: charge the user's quotas
 * and record its accepted events and summary (with s->subject). */
void session_record_accepted(struct session *s);

/* session_headers.c: 1 when BODY has passed too many hops (a mail loop). */
int session_hops_exceeded(struct session *s, struct evbuffer *body);
/* session_headers.c: add a missing Date / Message-ID (submission);
 * *BODY may be replaced.  Returns 0, or -1 out of memory. */
int session_complete_headers(struct session *s, struct evbuffer **body);

/* server.c: a session ended. */
void smtp_server_session_closed(struct smtp_server *srv, struct session *s);
/* server.c: failed AUTH per client address, shared by all sessions. */
struct throttle *smtp_server_throttle(struct smtp_server *srv);

#endif
