/* session_commands.c - the ESMTP command table and the handlers (RFC 5321 4.1).
 *
 * Each command names the states it is legal in; the sequence check is done
 * once, in session_command, before a handler runs (RFC 5321 4.1.4: a
 * command out of order gets 503).  Handlers for the transaction (MAIL,
 * RCPT, DATA, BDAT) apply the recipient policy: hosted domains, users and
 * aliases from the directory snapshot; relaying only for authenticated
 * users or relay_from networks. */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "auth/tls.h"
#include "core/log.h"
#include "queue/queue.h"
#include "smtp/session.h"
#include "spool/spool.h"
#include "store/directory.h"

enum {
	ST_INIT = 1 << SS_INIT,
	ST_READY = 1 << SS_READY,
	ST_MAIL = 1 << SS_MAIL,
	ST_RCPT = 1 << SS_RCPT,
	ST_ANY = ST_INIT | ST_READY | ST_MAIL | ST_RCPT,
	ST_GREETED = ST_READY | ST_MAIL | ST_RCPT,
};

struct command_def {
	enum smtp_verb verb;
	unsigned states; /* where it is legal */
	void (*handler)(struct session *s, const char *args, size_t len);
};

static void cmd_helo(struct session *s, const char *args, size_t len);
static void cmd_ehlo(struct session *s, const char *args, size_t len);
static void cmd_mail(struct session *s, const char *args, size_t len);
static void cmd_rcpt(struct session *s, const char *args, size_t len);
static void cmd_data(struct session *s, const char *args, size_t len);
static void cmd_bdat(struct session *s, const char *args, size_t len);
static void cmd_rset(struct session *s, const char *args, size_t len);
static void cmd_noop(struct session *s, const char *args, size_t len);
static void cmd_quit(struct session *s, const char *args, size_t len);
static void cmd_vrfy(struct session *s, const char *args, size_t len);
static void cmd_expn(struct session *s, const char *args, size_t len);
static void cmd_help(struct session *s, const char *args, size_t len);
static void cmd_starttls(struct session *s, const char *args, size_t len);

static const struct command_def commands[] = {
	{ SMTP_CMD_HELO, ST_ANY, cmd_helo },
	{ SMTP_CMD_EHLO, ST_ANY, cmd_ehlo },
	{ SMTP_CMD_MAIL, ST_READY, cmd_mail },
	{ SMTP_CMD_RCPT, ST_MAIL | ST_RCPT, cmd_rcpt },
	{ SMTP_CMD_DATA, ST_RCPT, cmd_data },
	{ SMTP_CMD_BDAT, ST_ANY, cmd_bdat }, /* sequence checked in the handler */
	{ SMTP_CMD_RSET, ST_ANY, cmd_rset },
	{ SMTP_CMD_NOOP, ST_ANY, cmd_noop },
	{ SMTP_CMD_QUIT, ST_ANY, cmd_quit },
	{ SMTP_CMD_VRFY, ST_ANY, cmd_vrfy },
	{ SMTP_CMD_EXPN, ST_ANY, cmd_expn },
	{ SMTP_CMD_HELP, ST_ANY, cmd_help },
	{ SMTP_CMD_STARTTLS, ST_GREETED, cmd_starttls },
	{ SMTP_CMD_AUTH, ST_READY, session_cmd_auth },
};

void session_command(struct session *s, const char *line, size_t len)
{
	struct smtp_command cmd;
	struct smtp_reply err;
	if (smtp_command_split(line, len, &cmd, &err) < 0) {
		session_error(s, err);
		return;
	}
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
		if (commands[i].verb != cmd.verb)
			continue;
		if (!(commands[i].states & (1u << s->state))) {
			session_error(s, SMTP_REPLY(503, "5.5.1", s->state == SS_INIT ?
				"Send HELO/EHLO first" : "Bad sequence of commands"));
			return;
		}
		commands[i].handler(s, cmd.args, cmd.argslen);
		return;
	}
	session_error(s, SMTP_REPLY(500, "5.5.1", "Command unrecognized"));
}

/* no_args - commands that take no argument refuse one (501). */
static int no_args(struct session *s, size_t len)
{
	if (len == 0)
		return 1;
	session_error(s, SMTP_REPLY(501, "5.5.4", "Syntax error: no parameters allowed"));
	return 0;
}

static int set_helo(struct session *s, const char *args, size_t len)
{
	struct smtp_reply err;
	if (smtp_parse_helo_domain(args, len, &err) < 0) {
		session_error(s, err);
		return -1;
	}
	char *copy = strndup(args, len);
	if (!copy) {
		session_reply(s, SMTP_REPLY(451, "4.3.0", "Out of memory"));
		return -1;
	}
	free(s->helo);
	s->helo = copy;
	/* RFC 5321 4.1.4: HELO/EHLO implies RSET. */
	session_reset_transaction(s);
	s->state = SS_READY;
	return 0;
}

/* HELO SP Domain CRLF */
static void cmd_helo(struct session *s, const char *args, size_t len)
{
	if (set_helo(s, args, len) < 0)
		return;
	s->esmtp = 0;
	session_replyf(s, 250, NULL, "%s", s->settings->cfg.hostname);
}

/* EHLO SP ( Domain / address-literal ) CRLF - the extensions we serve. */
static void cmd_ehlo(struct session *s, const char *args, size_t len)
{
	if (set_helo(s, args, len) < 0)
		return;
	s->esmtp = 1;
	const struct config *cfg = &s->settings->cfg;
	struct evbuffer *out = bufferevent_get_output(s->bev);
	evbuffer_add_printf(out, "250-%s\r\n", cfg->hostname);
	evbuffer_add_printf(out, "250-PIPELINING\r\n");
	evbuffer_add_printf(out, "250-SIZE %llu\r\n", (unsigned long long)cfg->max_message_size);
	evbuffer_add_printf(out, "250-8BITMIME\r\n");
	evbuffer_add_printf(out, "250-SMTPUTF8\r\n");
	evbuffer_add_printf(out, "250-ENHANCEDSTATUSCODES\r\n");
	evbuffer_add_printf(out, "250-DSN\r\n");
	if (s->ctx->tls && !s->tls)
		evbuffer_add_printf(out, "250-STARTTLS\r\n");
	if (s->tls) /* RFC 4954 4 / our rule: AUTH only under TLS */
		evbuffer_add_printf(out, "250-AUTH PLAIN LOGIN\r\n");
	evbuffer_add_printf(out, "250 CHUNKING\r\n");
}

/* is_submission - the listener is for a site's own users (RFC 6409). */
static int is_submission(const struct session *s)
{
	return s->kind == LISTEN_SUBMISSION || s->kind == LISTEN_SMTPS;
}

/* MAIL FROM:<reverse-path> [SP Mail-parameters] CRLF */
static void cmd_mail(struct session *s, const char *args, size_t len)
{
	const struct config *cfg = &s->settings->cfg;
	if (is_submission(s) && !s->auth_user) {
		session_error(s, SMTP_REPLY(530, "5.7.0", "Authentication required"));
		return;
	}
	struct address from;
	struct smtp_mail_params p;
	struct smtp_reply err;
	if (smtp_parse_mail(args, len, 0, &from, &p, &err) < 0) {
		session_error(s, err);
		return;
	}
	if (p.smtputf8 && !s->esmtp) {
		session_error(s, SMTP_REPLY(555, "5.5.4", "SMTPUTF8 needs EHLO"));
		return;
	}
	if (p.has_size && p.size > cfg->max_message_size) {
		session_error(s, SMTP_REPLY(552, "5.3.4", "Message size exceeds fixed limit"));
		return;
	}
	char sender[ADDR_PATH_MAX + 8];
	if (address_format(&from, sender, sizeof sender) < 0) {
		session_error(s, SMTP_REPLY(501, "5.1.7", "Bad sender address syntax"));
		return;
	}
	struct smtp_reply refuse = session_sender_allowed(s, sender);
	if (refuse.code) {
		char safe[128];
		log_info("session %lu: refused sender %s for %s: %d %s", s->serial,
			 log_sanitize(safe, sizeof safe, sender, strlen(sender)), s->auth_user,
			 refuse.code, refuse.enhanced);
		session_record_rejection(s, NULL, refuse);
		session_error(s, refuse);
		return;
	}
	refuse = session_rate_check(s);
	if (refuse.code) {
		log_info("session %lu: %s over its rate limit", s->serial, s->auth_user);
		session_record_rejection(s, NULL, refuse);
		session_reply(s, refuse);
		return;
	}
	session_reset_transaction(s);
	s->env.sender = strdup(sender);
	s->env.envid = p.envid[0] ? strdup(p.envid) : NULL;
	if (!s->env.sender || (p.envid[0] && !s->env.envid)) {
		session_reset_transaction(s);
		session_reply(s, SMTP_REPLY(451, "4.3.0", "Out of memory"));
		return;
	}
	s->env.ret = p.ret;
	s->env.smtputf8 = p.smtputf8;
	s->env.body_8bit = p.body == SMTP_BODY_8BITMIME;
	s->mail = p;
	s->state = SS_MAIL;
	session_reply(s, SMTP_REPLY(250, "2.1.0", "Ok"));
}

/* rcpt_policy - may this session send to TO?  Returns the refusal, or a
 * reply with code 0 when the recipient is accepted. */
static struct smtp_reply rcpt_policy(struct session *s, const char *to, const char *domain)
{
	struct dir_target targets[16];
	size_t n = 0;
	switch (directory_resolve(s->dir, to, targets, 16, &n)) {
	case DIR_OK:
		return SMTP_REPLY(0, NULL, NULL);
	case DIR_UNKNOWN:
		return SMTP_REPLY(550, "5.1.1", "No such user here");
	case DIR_LOOP:
		return SMTP_REPLY(550, "5.4.6", "Alias loop detected");
	case DIR_NOT_LOCAL:
		break;
	}
	if (s->auth_user || config_relay_allowed(&s->settings->cfg, (struct sockaddr *)&s->peer))
		return SMTP_REPLY(0, NULL, NULL);
	(void)domain;
	return SMTP_REPLY(554, "5.7.1", "Relay access denied");
}

/* RCPT TO:<forward-path> [SP Rcpt-parameters] CRLF */
static void cmd_rcpt(struct session *s, const char *args, size_t len)
{
	const struct config *cfg = &s->settings->cfg;
	struct address to;
	struct smtp_rcpt_params p;
	struct smtp_reply err;
	if (smtp_parse_rcpt(args, len, 0, s->mail.smtputf8, &to, &p, &err) < 0) {
		session_error(s, err);
		return;
	}
	if (s->env.nrcpts >= cfg->max_recipients) {
		/* RFC 5321 4.5.3.1.10: 452, and the client sends the rest later. */
		session_reply(s, SMTP_REPLY(452, "4.5.3", "Too many recipients"));
		return;
	}
	if (!to.domain[0]) /* <postmaster>: ours, at our own name */
		snprintf(to.domain, sizeof to.domain, "%s", cfg->hostname);
	char rcpt[ADDR_PATH_MAX + 8];
	if (address_format(&to, rcpt, sizeof rcpt) < 0) {
		session_error(s, SMTP_REPLY(501, "5.1.3", "Bad recipient address syntax"));
		return;
	}
	struct smtp_reply refuse = rcpt_policy(s, rcpt, to.domain);
	if (refuse.code) {
		char safe[128];
		log_info("session %lu: refused rcpt %s from %s: %d %s", s->serial,
			 log_sanitize(safe, sizeof safe, rcpt, strlen(rcpt)), s->peer_text,
			 refuse.code, refuse.enhanced);
		session_record_rejection(s, rcpt, refuse);
		session_error(s, refuse);
		return;
	}
	refuse = session_rcpt_limits(s, rcpt);
	if (refuse.code) {
		char safe[128];
		log_info("session %lu: refused rcpt %s for %s: %d %s", s->serial,
			 log_sanitize(safe, sizeof safe, rcpt, strlen(rcpt)), s->auth_user,
			 refuse.code, refuse.enhanced);
		session_record_rejection(s, rcpt, refuse);
		if (refuse.code >= 500)
			session_error(s, refuse);
		else
			session_reply(s, refuse);
		return;
	}
	if (envelope_add_rcpt(&s->env, rcpt, p.orcpt[0] ? p.orcpt : NULL, p.notify) < 0) {
		session_reply(s, SMTP_REPLY(452, "4.3.0", "Out of memory"));
		return;
	}
	s->state = SS_RCPT;
	session_reply(s, SMTP_REPLY(250, "2.1.5", "Ok"));
}

/* start_body - the message body begins with our Received header
 * (RFC 5321 4.4; "with" keywords from RFC 3848). */
static int start_body(struct session *s)
{
	const struct config *cfg = &s->settings->cfg;
	spool_new_id(s->ctx->spool, s->env.id);
	s->body = evbuffer_new();
	if (!s->body)
		return -1;
	char date[64];
	time_t now = time(NULL);
	struct tm tm;
	localtime_r(&now, &tm);
	strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S %z", &tm);
	char helo[128];
	log_sanitize(helo, sizeof helo, s->helo ? s->helo : "unknown",
		     s->helo ? strlen(s->helo) : 7);
	const char *with = s->env.smtputf8 ? "UTF8SMTP" : s->esmtp ? "ESMTP" : "SMTP";
	evbuffer_add_printf(s->body, "Received: from %s ([%s])\r\n", helo, s->peer_text);
	if (s->tls) {
		char desc[160];
		tls_describe(bufferevent_openssl_get_ssl(s->bev), desc, sizeof desc);
		evbuffer_add_printf(s->body, "\t(using %s)\r\n", desc);
	}
	if (s->auth_user && strlen(s->auth_user) < 200)
		evbuffer_add_printf(s->body, "\t(authenticated as %s)\r\n", s->auth_user);
	evbuffer_add_printf(s->body, "\tby %s (tern) with %s%s%s id %s", cfg->hostname, with,
			    s->tls ? "S" : "", s->auth_user ? "A" : "", s->env.id);
	if (s->env.nrcpts == 1 && strlen(s->env.rcpts[0].address) < 200)
		evbuffer_add_printf(s->body, "\r\n\tfor <%s>", s->env.rcpts[0].address);
	evbuffer_add_printf(s->body, ";\r\n\t%s\r\n", date);
	s->received_len = evbuffer_get_length(s->body);
	data_stream_init(&s->ds, cfg->max_message_size);
	return 0;
}

/* DATA CRLF */
static void cmd_data(struct session *s, const char *args, size_t len)
{
	if (!no_args(s, len))
		return;
	if (s->body) {
		/* RFC 3030 2: DATA within a BDAT transaction is refused. */
		session_error(s, SMTP_REPLY(503, "5.5.1", "DATA not allowed after BDAT"));
		return;
	}
	if (start_body(s) < 0) {
		session_reply(s, SMTP_REPLY(451, "4.3.0", "Out of memory"));
		return;
	}
	s->state = SS_DATA;
	session_reply(s, SMTP_REPLY(354, NULL, "End data with <CR><LF>.<CR><LF>"));
}

/* BDAT SP chunk-size [ SP end-marker ] CRLF (RFC 3030 2).  The chunk's
 * bytes follow the command at once, so even a refused BDAT must read them
 * to stay in sync. */
static void cmd_bdat(struct session *s, const char *args, size_t len)
{
	uint64_t size;
	int last;
	struct smtp_reply err;
	if (smtp_parse_bdat(args, len, &size, &last, &err) < 0) {
		/* The chunk length is unknown: there is no way to resync. */
		session_close_after_reply(s, err);
		return;
	}
	s->bdat_remaining = size;
	s->bdat_last = last;
	s->bdat_prev_state = s->state;
	if (s->state != SS_RCPT) {
		s->bdat_failed = 1;
		s->bdat_error = s->state == SS_INIT ?
			SMTP_REPLY(503, "5.5.1", "Send HELO/EHLO first") :
			SMTP_REPLY(503, "5.5.1", "Bad sequence of commands: need MAIL and RCPT");
	} else if (!s->body && start_body(s) < 0) {
		s->bdat_failed = 1;
		s->bdat_error = SMTP_REPLY(451, "4.3.0", "Out of memory");
	}
	s->state = SS_BDAT;
	/* The session's input loop reads the chunk and calls back. */
}

static void cmd_rset(struct session *s, const char *args, size_t len)
{
	if (!no_args(s, len))
		return;
	session_reset_transaction(s);
	if (s->state != SS_INIT)
		s->state = SS_READY;
	session_reply(s, SMTP_REPLY(250, "2.0.0", "Ok"));
}

static void cmd_noop(struct session *s, const char *args, size_t len)
{
	/* RFC 5321 4.1.1.9: a NOOP argument is ignored. */
	session_reply(s, SMTP_REPLY(250, "2.0.0", "Ok"));
}

static void cmd_quit(struct session *s, const char *args, size_t len)
{
	session_close_after_reply(s, SMTP_REPLY(221, "2.0.0", "Bye"));
}

/* VRFY never tells whether a user exists (no address harvesting). */
static void cmd_vrfy(struct session *s, const char *args, size_t len)
{
	if (len == 0) {
		session_error(s, SMTP_REPLY(501, "5.5.4", "Syntax: VRFY address"));
		return;
	}
	session_reply(s, SMTP_REPLY(252, "2.5.2", "Cannot VRFY user, but will accept message and attempt delivery"));
}

static void cmd_expn(struct session *s, const char *args, size_t len)
{
	session_error(s, SMTP_REPLY(502, "5.5.1", "EXPN not available"));
}

static void cmd_help(struct session *s, const char *args, size_t len)
{
	session_reply(s, SMTP_REPLY(214, "2.0.0", "Commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP"));
}

/* STARTTLS CRLF (RFC 3207 4) */
static void cmd_starttls(struct session *s, const char *args, size_t len)
{
	if (!no_args(s, len))
		return;
	if (s->tls) {
		session_error(s, SMTP_REPLY(503, "5.5.1", "TLS already active"));
		return;
	}
	if (!s->ctx->tls) {
		session_error(s, SMTP_REPLY(454, "4.7.0", "TLS not available"));
		return;
	}
	if (session_start_tls(s) < 0)
		session_close_after_reply(s, SMTP_REPLY(454, "4.7.0", "TLS not available"));
}


struct smtp_reply data_error_reply(enum data_error e)
{
	switch (e) {
	case DATA_TOO_BIG:
		return SMTP_REPLY(552, "5.3.4", "Message size exceeds fixed limit");
	case DATA_LINE_TOO_LONG:
		return SMTP_REPLY(500, "5.5.2", "Message line too long (RFC 5321 4.5.3.1.6)");
	case DATA_BARE_CR:
	case DATA_BARE_LF:
		return SMTP_REPLY(550, "5.6.0", "Bare CR or LF in message data is not allowed (RFC 5321 2.3.8)");
	case DATA_NUL:
		return SMTP_REPLY(550, "5.6.0", "NUL byte in message data is not allowed");
	case DATA_OK:
		break;
	}
	return SMTP_REPLY(451, "4.3.0", "Internal error");
}

/* commit_done - the spool answered: now, and only now, say 250. */
static void commit_done(void *arg, int ok, int errnum)
{
	struct session *s = arg;
	if (ok) {
		log_info("%s: accepted from=<%s> rcpts=%zu size=%llu client=%s session=%lu",
			 s->env.id, s->env.sender, s->env.nrcpts,
			 (unsigned long long)s->env.size, s->peer_text, s->serial);
		queue_add(s->ctx->queue, &s->env);
		session_record_accepted(s);
	} else {
		log_error("%s: spool commit failed: %s", s->env.id, strerror(errnum));
	}
	if (s->dead) {
		smtp_server_session_closed(s->server, s);
		return;
	}
	if (ok)
		session_replyf(s, 250, "2.0.0", "Ok: queued as %s", s->env.id);
	else if (errnum == ENOSPC || errnum == EDQUOT)
		session_reply(s, SMTP_REPLY(452, "4.3.1", "Insufficient system storage"));
	else
		session_reply(s, SMTP_REPLY(451, "4.3.0", "Local error in processing"));
	session_reset_transaction(s);
	s->state = SS_READY;
	session_resume(s);
}

void session_commit_message(struct session *s)
{
	s->env.size = s->ds.size;
	s->env.body_8bit = s->env.body_8bit || s->ds.eight_bit;
	s->env.client_addr = strdup(s->peer_text);
	s->env.helo = s->helo ? strdup(s->helo) : NULL;
	s->env.auth_user = s->auth_user ? strdup(s->auth_user) : NULL;
	s->env.received = time(NULL);
	struct evbuffer *body = s->body;
	s->body = NULL;
	if (session_hops_exceeded(s, body)) {
		evbuffer_free(body);
		log_info("session %lu: message refused: too many Received headers (mail loop)",
			 s->serial);
		session_reset_transaction(s);
		s->state = SS_READY;
		session_error(s, SMTP_REPLY(554, "5.4.6", "Too many hops: mail loop detected"));
		return;
	}
	if ((s->auth_user || s->kind != LISTEN_SMTP) && session_complete_headers(s, &body) < 0) {
		evbuffer_free(body);
		session_reply(s, SMTP_REPLY(451, "4.3.0", "Out of memory"));
		session_reset_transaction(s);
		s->state = SS_READY;
		return;
	}
	free(s->subject);
	s->subject = s->ctx->events ? session_subject(s, body) : NULL;
	s->state = SS_BUSY;
	bufferevent_disable(s->bev, EV_READ);
	spool_commit(s->ctx->spool, &s->env, body, commit_done, s);
}
