/* session_auth.c - SMTP AUTH (RFC 4954) and the submission rules that
 * depend on it (RFC 6409).
 *
 * AUTH is offered and accepted only under TLS (538 5.7.11 before).  The
 * password check (Argon2id) runs on the worker pool; an unknown user is
 * checked against a dummy hash so both failures cost the same time and get
 * the same 535 5.7.8.  Each failure on a connection waits longer before its
 * reply; too many on one connection end it with 421; the per-address
 * throttle locks out brute force spread over many connections. */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "auth/password.h"
#include "auth/sasl.h"
#include "auth/throttle.h"
#include "core/log.h"
#include "core/workers.h"
#include "smtp/session.h"
#include "store/directory.h"

enum { AUTH_NONE, AUTH_PLAIN_WAIT, AUTH_LOGIN_USER, AUTH_LOGIN_PASS };

struct auth_job {
	struct session *s;
	struct sasl_credentials creds;
	char hash[PASSWORD_HASH_MAX];
	char user[320]; /* the user's canonical address, "" when unknown */
	int ok;
};

static char dummy_hash[PASSWORD_HASH_MAX];
static pthread_once_t dummy_once = PTHREAD_ONCE_INIT;

/* make_dummy - a real hash of a random password, for unknown users. */
static void make_dummy(void)
{
	char pw[33];
	randombytes_buf(pw, 16);
	sodium_bin2hex(pw, sizeof pw, (unsigned char *)pw, 16);
	if (password_hash(pw, 32, dummy_hash) < 0)
		dummy_hash[0] = '\0';
}

static void auth_work(void *arg)
{
	struct auth_job *j = arg;
	pthread_once(&dummy_once, make_dummy);
	const char *hash = j->user[0] ? j->hash : dummy_hash;
	int match = hash[0] && password_verify(hash, j->creds.password, strlen(j->creds.password));
	j->ok = match && j->user[0];
	sodium_memzero(&j->creds.password, sizeof j->creds.password);
}

static void auth_reply_failure(struct session *s)
{
	unsigned max = s->settings->cfg.auth_max_failures;
	if (s->auth_failures >= max) {
		session_close_after_reply(s, SMTP_REPLY(421, "4.7.0", "Too many authentication failures"));
		return;
	}
	session_error(s, SMTP_REPLY(535, "5.7.8", "Authentication credentials invalid"));
}

static void on_delay_done(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;
	event_free(s->auth_delay);
	s->auth_delay = NULL;
	if (s->dead) {
		smtp_server_session_closed(s->server, s);
		return;
	}
	s->state = SS_READY;
	auth_reply_failure(s);
	session_resume(s);
}

static void auth_done(void *arg)
{
	struct auth_job *j = arg;
	struct session *s = j->s;
	char who[128];
	log_sanitize(who, sizeof who, j->creds.authcid, strlen(j->creds.authcid));
	if (j->ok) {
		log_info("session %lu: authenticated as %s from %s", s->serial, j->user, s->peer_text);
		s->auth_user = strdup(j->user);
	} else {
		s->auth_failures++;
		throttle_failure(smtp_server_throttle(s->server), (struct sockaddr *)&s->peer,
				 time(NULL));
		log_warn("session %lu: authentication failed for %s from %s (%u on this connection)",
			 s->serial, who, s->peer_text, s->auth_failures);
	}
	sodium_memzero(j, sizeof *j);
	free(j);
	if (s->dead) {
		smtp_server_session_closed(s->server, s);
		return;
	}
	if (s->auth_user) {
		s->state = SS_READY;
		session_reply(s, SMTP_REPLY(235, "2.7.0", "Authentication successful"));
		session_resume(s);
		return;
	}
	/* Slow each further guess: 1, 2, 4, ... times the base delay. */
	unsigned shift = s->auth_failures - 1 < 4 ? s->auth_failures - 1 : 4;
	struct timeval tv = { .tv_sec = (time_t)s->settings->cfg.auth_failure_delay << shift,
			      .tv_usec = 0 };
	s->auth_delay = evtimer_new(s->ctx->base, on_delay_done, s);
	if (!s->auth_delay || evtimer_add(s->auth_delay, &tv) < 0)
		on_delay_done(-1, 0, s);
}

/* auth_check - hand the credentials to the pool; the session waits. */
static void auth_check(struct session *s, struct sasl_credentials *creds)
{
	struct auth_job *j = calloc(1, sizeof *j);
	if (!j) {
		sodium_memzero(creds, sizeof *creds);
		session_reply(s, SMTP_REPLY(454, "4.7.0", "Temporary authentication failure"));
		return;
	}
	j->s = s;
	j->creds = *creds;
	sodium_memzero(creds, sizeof *creds);
	const struct dir_user *u = directory_user(s->dir, j->creds.authcid);
	if (u && u->password_hash && strlen(u->password_hash) < sizeof j->hash) {
		snprintf(j->user, sizeof j->user, "%s", u->address);
		snprintf(j->hash, sizeof j->hash, "%s", u->password_hash);
	}
	s->state = SS_BUSY;
	bufferevent_disable(s->bev, EV_READ);
	if (workers_submit(s->ctx->pool, auth_work, auth_done, j) < 0) {
		sodium_memzero(j, sizeof *j);
		free(j);
		s->state = SS_READY;
		session_reply(s, SMTP_REPLY(454, "4.7.0", "Temporary authentication failure"));
	}
}

static void auth_syntax_error(struct session *s, const char *why)
{
	s->auth_step = AUTH_NONE;
	free(s->auth_login_user);
	s->auth_login_user = NULL;
	char msg[128];
	snprintf(msg, sizeof msg, "Cannot decode response: %s", why);
	session_error(s, SMTP_REPLY(501, "5.5.2", "Cannot decode AUTH response"));
	(void)msg;
}

/* AUTH SP sasl-mech [SP initial-response] CRLF (RFC 4954 4) */
void session_cmd_auth(struct session *s, const char *args, size_t len)
{
	if (!s->tls) {
		session_error(s, SMTP_REPLY(538, "5.7.11", "Encryption required for requested authentication mechanism"));
		return;
	}
	if (s->auth_user) {
		session_error(s, SMTP_REPLY(503, "5.5.1", "Already authenticated"));
		return;
	}
	unsigned wait = throttle_locked(smtp_server_throttle(s->server),
					(struct sockaddr *)&s->peer, time(NULL));
	if (wait) {
		log_warn("session %lu: AUTH from %s refused: locked out for %u s", s->serial,
			 s->peer_text, wait);
		session_close_after_reply(s, SMTP_REPLY(421, "4.7.0", "Too many authentication failures, try again later"));
		return;
	}
	const char *sp = memchr(args, ' ', len);
	size_t mlen = sp ? (size_t)(sp - args) : len;
	const char *ir = sp ? sp + 1 : NULL;
	size_t irlen = sp ? len - mlen - 1 : 0;
	if (mlen == 5 && strncasecmp(args, "PLAIN", 5) == 0) {
		if (!ir) {
			s->auth_step = AUTH_PLAIN_WAIT;
			session_replyf(s, 334, NULL, " ");
			return;
		}
		session_auth_response(s, ir, irlen, AUTH_PLAIN_WAIT);
		return;
	}
	if (mlen == 5 && strncasecmp(args, "LOGIN", 5) == 0) {
		s->auth_step = AUTH_LOGIN_USER;
		if (ir) {
			session_auth_response(s, ir, irlen, AUTH_LOGIN_USER);
			return;
		}
		session_replyf(s, 334, NULL, "VXNlcm5hbWU6"); /* "Username:" */
		return;
	}
	session_error(s, SMTP_REPLY(504, "5.5.4", "Unrecognized authentication mechanism"));
}

void session_auth_response(struct session *s, const char *line, size_t len, int step)
{
	const char *why = NULL;
	if (len == 1 && line[0] == '*') { /* RFC 4954 4: the client cancels */
		s->auth_step = AUTH_NONE;
		free(s->auth_login_user);
		s->auth_login_user = NULL;
		session_error(s, SMTP_REPLY(501, "5.7.0", "Authentication cancelled"));
		return;
	}
	struct sasl_credentials creds;
	memset(&creds, 0, sizeof creds);
	switch (step) {
	case AUTH_PLAIN_WAIT:
		s->auth_step = AUTH_NONE;
		if (sasl_plain(line, len, &creds, &why) < 0) {
			auth_syntax_error(s, why);
			return;
		}
		auth_check(s, &creds);
		return;
	case AUTH_LOGIN_USER:
		if (sasl_login_field(line, len, creds.authcid, &why) < 0) {
			auth_syntax_error(s, why);
			return;
		}
		free(s->auth_login_user);
		s->auth_login_user = strdup(creds.authcid);
		s->auth_step = AUTH_LOGIN_PASS;
		session_replyf(s, 334, NULL, "UGFzc3dvcmQ6"); /* "Password:" */
		return;
	case AUTH_LOGIN_PASS:
		s->auth_step = AUTH_NONE;
		if (!s->auth_login_user || sasl_login_field(line, len, creds.password, &why) < 0) {
			auth_syntax_error(s, why ? why : "no user name");
			sodium_memzero(&creds, sizeof creds);
			return;
		}
		snprintf(creds.authcid, sizeof creds.authcid, "%s", s->auth_login_user);
		free(s->auth_login_user);
		s->auth_login_user = NULL;
		auth_check(s, &creds);
		return;
	}
}

/* session_sender_allowed - RFC 6409 and a sending service's rule: an
 * authenticated user sends only as an address it owns, and never with the
 * null sender on the submission ports.  Returns a refusal, or code 0. */
struct smtp_reply session_sender_allowed(struct session *s, const char *sender)
{
	int submission = s->kind == LISTEN_SUBMISSION || s->kind == LISTEN_SMTPS;
	if (!s->auth_user)
		return SMTP_REPLY(0, NULL, NULL);
	if (!sender[0])
		return submission ? SMTP_REPLY(553, "5.7.1", "The null sender is not allowed here") :
				    SMTP_REPLY(0, NULL, NULL);
	if (!directory_owns(s->dir, s->auth_user, sender))
		return SMTP_REPLY(553, "5.7.1", "Sender address not owned by the authenticated user");
	return SMTP_REPLY(0, NULL, NULL);
}
