/* client.h - one outgoing SMTP connection on the loop: the relay stage's
 * way to hand a message to a remote MX or a smarthost.
 *
 * RFC 5321 (3.3 transactions, 4.5.3.2 timeouts, 4.5.2 dot-stuffing, 3.1
 * greeting), RFC 2920 (PIPELINING: MAIL and the RCPTs go in one write),
 * RFC 1870 (SIZE), RFC 6152 (8BITMIME), RFC 6531 (SMTPUTF8), RFC 3461 (DSN
 * parameters NOTIFY, ORCPT, RET, ENVID), RFC 3207 (STARTTLS), RFC 4954 and
 * RFC 4616 (AUTH PLAIN, only over TLS).
 *
 * Life of a client: smtp_client_new, smtp_client_connect (greeting, EHLO or
 * HELO, STARTTLS when offered and a TLS context was given, EHLO again, AUTH
 * when configured), then any number of smtp_client_send, one at a time, on
 * the same connection (RSET goes first when the previous transaction did not
 * end cleanly), then smtp_client_quit or smtp_client_free.
 *
 * TLS is opportunistic: nothing is verified, what was negotiated is logged
 * and available from smtp_client_tls.  A failed handshake fails the connect
 * (the connection is unusable afterwards); a caller that wants a plaintext
 * retry connects again with a client whose ssl_ctx is NULL.  require_tls
 * (smarthosts) fails the connect when TLS cannot be had.
 *
 * Every byte the peer sends goes through smtp/client_reply.h (bounded
 * lines, bounded replies); every timeout of RFC 5321 4.5.3.2 is a timer.
 * The only blocking call is pread(2) of the message body from a regular
 * file, in chunks of SMTP_CLIENT_BODY_CHUNK bytes, while the output buffer
 * is below SMTP_CLIENT_OUT_HIGH bytes: a page-cache read, accepted on the
 * loop.  The body goes out with bare CR and bare LF turned into CRLF (so no
 * other end-of-data than ours can be seen by the peer), dot-stuffed, a CRLF
 * added if the body does not end with one, then ".".
 *
 * Callbacks are never called from inside smtp_client_connect or
 * smtp_client_send, always from the loop.  A callback may call any function
 * here, smtp_client_free and smtp_client_send included.
 *
 * Ownership: the client belongs to its creator until smtp_client_quit,
 * which hands it to itself (it frees itself after QUIT's reply, the close,
 * or the quit timeout).  Config strings and the source address are copied;
 * a reference to ssl_ctx is taken.  The message given to smtp_client_send
 * (and everything it points to, the fd included) is lent until its done
 * callback returns.  Results passed to callbacks are lent for the call. */
#ifndef TERN_SMTP_CLIENT_H
#define TERN_SMTP_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "smtp/client_reply.h"

struct event_base;
struct smtp_client;
typedef struct ssl_ctx_st SSL_CTX;

#define SMTP_CLIENT_TEXT_MAX	 512  /* a result's text, one line */
#define SMTP_CLIENT_RCPTS_MAX	 1000 /* recipients in one smtp_client_send */
#define SMTP_CLIENT_PIPELINE_MAX 100  /* commands written before replies are read */
#define SMTP_CLIENT_BODY_CHUNK	 16384
#define SMTP_CLIENT_OUT_HIGH	 65536
#define SMTP_CLIENT_NAME_MAX	 255 /* helo name, auth user, auth password */

/* Milliseconds; 0 picks the default (RFC 5321 4.5.3.2 where it has one). */
struct smtp_client_timeouts {
	unsigned connect;    /* TCP connect: 30 s */
	unsigned greeting;   /* 220: 5 min */
	unsigned helo;	     /* EHLO/HELO, STARTTLS and the handshake, AUTH, RSET: 5 min */
	unsigned mail;	     /* 5 min */
	unsigned rcpt;	     /* 5 min */
	unsigned data_init;  /* DATA's 354: 2 min */
	unsigned data_block; /* no write progress while sending the body: 3 min */
	unsigned data_final; /* reply after ".": 10 min */
	unsigned quit;	     /* QUIT's 221 before closing anyway: 10 s */
};

struct smtp_client_config {
	const char *helo_name; /* EHLO/HELO argument (our hostname) */
	struct smtp_client_timeouts timeouts;
	/* Bound before connecting (port ignored; IP_BIND_ADDRESS_NO_PORT); NULL =
	 * the kernel's choice.  A destination of the other family fails the
	 * connect with 421 4.4.1: pick the MX address to match. */
	const struct sockaddr *source;
	socklen_t source_len;
	SSL_CTX *ssl_ctx;      /* client context for STARTTLS; NULL = never */
	int require_tls;       /* fail the connect unless TLS is established */
	const char *auth_user; /* AUTH PLAIN after TLS; NULL = no AUTH */
	const char *auth_password;
};

/* What the peer said, or what we decided in its place. */
struct smtp_client_result {
	int code;			  /* 250, 451, 550, ... */
	char enhanced[SMTP_ENHANCED_MAX]; /* "5.1.1" or "" */
	char text[SMTP_CLIENT_TEXT_MAX];  /* reply lines joined by spaces, or our reason */
	int local;			  /* 1: made up here (no such reply came from the peer) */
};

struct smtp_client_rcpt {
	const char *address; /* "local@domain", no brackets */
	unsigned notify;     /* enum smtp_notify_flags (smtp/command.h) */
	const char *orcpt;   /* "rfc822;xtext" as received, or NULL */
};

struct smtp_client_msg {
	const char *sender; /* "" for the null reverse path */
	const struct smtp_client_rcpt *rcpts;
	size_t nrcpts;	   /* 1 .. SMTP_CLIENT_RCPTS_MAX */
	const char *envid; /* DSN ENVID (xtext) or NULL */
	int ret;	   /* enum smtp_ret (smtp/command.h) */
	int body_8bit;	   /* the body has 8-bit bytes */
	int smtputf8;	   /* the envelope or headers need SMTPUTF8 */
	int fd;		   /* the body: LENGTH bytes of CRLF text at OFFSET, read with pread */
	off_t offset;
	uint64_t length;
};

/* smtp_client_connect_cb - RES->code 2xx: the session is ready (RES holds
 * the greeting).  Anything else: the connection failed and is closed; the
 * caller frees the client and tries the next MX address or host (a 4xx or
 * 5xx greeting included, RFC 5321 3.1 / 5.1).  Local codes: 421 4.4.1 could
 * not connect, 421 4.4.2 lost or timed out, 421 4.7.0 TLS required or
 * failed, 454 4.7.0 AUTH impossible, 421 4.5.0 broken replies. */
typedef void (*smtp_client_connect_cb)(struct smtp_client *c, const struct smtp_client_result *res,
				       void *arg);

/* smtp_client_done_cb - one transaction's outcome.  RCPTS[i] is the final
 * word on msg->rcpts[i]: the RCPT reply when it was refused, else the MAIL,
 * DATA or final reply that decided it, or a local result: 553 5.6.7
 * SMTPUTF8 not offered, 552 5.3.4 larger than the peer's SIZE, 553 5.1.3 an
 * address that cannot be sent, 421 4.4.2 connection lost or timed out
 * (after "." too: the message may have arrived; at-least-once), 421 4.5.0
 * replies that break the protocol, 421 4.3.0 RSET refused, 451 4.3.0 the
 * body could not be read.  After a 421 the client is no longer ready.  MSG is what ended the
 * transaction: the reply to ".", or the first failing MAIL/DATA reply, or (no recipient accepted)
 * the last RCPT reply, or the local result. */
typedef void (*smtp_client_done_cb)(struct smtp_client *c, const struct smtp_client_result *msg,
				    const struct smtp_client_result *rcpts, size_t nrcpts,
				    void *arg);

/* smtp_client_tls_ctx_new - an opportunistic client context: no
 * verification, no compression, no renegotiation.  NULL with ERR set. */
SSL_CTX *smtp_client_tls_ctx_new(char *err, size_t errlen);

/* smtp_client_new - a client on BASE.  NULL with ERR set on a bad config
 * (helo name missing or not one word, names too long) or no memory. */
struct smtp_client *smtp_client_new(struct event_base *base, const struct smtp_client_config *cfg,
				    char *err, size_t errlen);

/* smtp_client_connect - connect to ADDR (IPv4 or IPv6; its port is replaced
 * by PORT).  PEER_NAME (the MX host name, may be NULL) is used for TLS SNI
 * and the log.  Returns 0 and CB is called exactly once later (unless the
 * client is freed first), or -1 when the client was already connected or
 * the address is unusable (no callback). */
int smtp_client_connect(struct smtp_client *c, const struct sockaddr *addr, socklen_t addrlen,
			uint16_t port, const char *peer_name, smtp_client_connect_cb cb, void *arg);

/* smtp_client_send - deliver MSG in one transaction.  Returns 0 and CB is
 * called exactly once later (unless the client is freed first), or -1 when
 * the client never connected, a transaction is running, or nrcpts is 0 or
 * above SMTP_CLIENT_RCPTS_MAX (no callback).  On a connection that has
 * died since, CB gets 421 4.4.2 for every recipient. */
int smtp_client_send(struct smtp_client *c, const struct smtp_client_msg *msg,
		     smtp_client_done_cb cb, void *arg);

/* smtp_client_ready - 1 when connected, idle, and the peer has not gone:
 * smtp_client_send may start a transaction that can succeed. */
int smtp_client_ready(const struct smtp_client *c);

/* smtp_client_ehlo - what the peer announced (all zero after HELO). */
const struct smtp_ehlo *smtp_client_ehlo(const struct smtp_client *c);

/* smtp_client_tls - "TLSv1.3 with cipher ... (256/256 bits)" or NULL. */
const char *smtp_client_tls(const struct smtp_client *c);

/* smtp_client_peer - "name[address]:port" for the log. */
const char *smtp_client_peer(const struct smtp_client *c);

/* smtp_client_quit - say QUIT politely when idle, else just close; the
 * client frees itself.  No callback is called any more.  Clears *C. */
void smtp_client_quit(struct smtp_client **c);

/* smtp_client_free - close at once; pending callbacks are not called.
 * Clears *C. */
void smtp_client_free(struct smtp_client **c);

#endif
