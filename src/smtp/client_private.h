/* client_private.h - what the outgoing client's two halves share: client.c
 * (connection, greeting, EHLO, STARTTLS, AUTH, I/O, life cycle) and
 * client_send.c (one transaction: MAIL, RCPT, DATA and the body).  Only
 * those two files include it; the contract is client.h. */
#ifndef TERN_SMTP_CLIENT_PRIVATE_H
#define TERN_SMTP_CLIENT_PRIVATE_H

#include <stdarg.h>
#include <stdint.h>
#include <sys/socket.h>

#include "smtp/client.h"
#include "smtp/client_reply.h"

struct bufferevent;
struct event;

/* The order matters: everything up to ST_AUTH belongs to connecting, ST_TX
 * to ST_DOT to a transaction. */
enum client_state {
	ST_NEW,
	ST_CONNECTING,
	ST_GREETING,
	ST_EHLO,
	ST_HELO,
	ST_STARTTLS,
	ST_HANDSHAKE,
	ST_AUTH,
	ST_READY,
	ST_TX,	 /* RSET, MAIL and RCPT replies awaited */
	ST_DATA, /* DATA's 354 awaited */
	ST_BODY, /* the body is being written */
	ST_DOT,	 /* the reply to "." awaited */
	ST_QUIT,
	ST_DEAD,
};

struct client_tx {
	const struct smtp_client_msg *msg;
	smtp_client_done_cb cb;
	void *arg;
	struct smtp_client_result *res; /* one per msg->rcpts; code 0 = undecided */
	struct smtp_client_result final;
	size_t *live; /* the recipients sent as RCPT, in order */
	size_t nlive;
	int rset; /* 1: the command sequence starts with RSET */
	int mail_ok;
	size_t total, sent, answered, accepted; /* over RSET, MAIL, RCPT... */
	uint64_t body_off;
	int at_bol, pending_cr; /* dot-stuffing state across chunks */
	int local_done;		/* decided here; handed over from the loop */
};

struct smtp_client {
	struct event_base *base;
	struct smtp_client_timeouts to;
	char helo[SMTP_CLIENT_NAME_MAX + 1];
	char user[SMTP_CLIENT_NAME_MAX + 1];
	char pass[SMTP_CLIENT_NAME_MAX + 1];
	int require_tls;
	struct sockaddr_storage source;
	socklen_t source_len;
	SSL_CTX *ssl_ctx;
	struct bufferevent *bev;
	struct event *timer; /* deadline of what is awaited */
	struct event *defer; /* hands local outcomes over from the loop */
	enum client_state state;
	const char *waiting; /* what the timer waits for */
	struct smtp_ehlo ehlo;
	int tls_tried;
	char tls_desc[160];
	char peer[320];
	char sni[SMTP_CLIENT_NAME_MAX + 1];
	smtp_client_connect_cb connect_cb;
	void *connect_arg;
	struct smtp_client_result greeting; /* or why connecting failed */
	int connect_failed_pending, connected;
	int in_tx;
	struct client_tx tx;
	int need_rset;
	int depth, zombie; /* callbacks running; freed while they ran */
	struct smtp_client_reply_parser parser;
	char chunk[SMTP_CLIENT_BODY_CHUNK];
};

/* client.c */
void client_close(struct smtp_client *c);
void client_set_deadline(struct smtp_client *c, unsigned ms, const char *what);
void client_vresult_local(struct smtp_client_result *r, int code, const char *enh, const char *fmt,
			  va_list ap) __attribute__((format(printf, 4, 0)));
void client_result_local(struct smtp_client_result *r, int code, const char *enh, const char *fmt,
			 ...) __attribute__((format(printf, 4, 5)));
void client_result_reply(struct smtp_client_result *r, const struct smtp_client_reply *rep);
void client_send_line(struct smtp_client *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void client_fail(struct smtp_client *c, int code, const char *enh, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* client_send.c */
void client_tx_finish(struct smtp_client *c);
void client_tx_decide(struct client_tx *t, const struct smtp_client_result *res);
void client_tx_reply(struct smtp_client *c, const struct smtp_client_reply *r);
void client_tx_data_reply(struct smtp_client *c, const struct smtp_client_reply *r);
void client_tx_end_reply(struct smtp_client *c, const struct smtp_client_reply *r);
void client_tx_pump_body(struct smtp_client *c);

#endif
