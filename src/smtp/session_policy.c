/* session_policy.c - a sending service's rules on SMTP, and the record of
 * what the session decided.
 *
 * An authenticated user's messages pass the rate limit at MAIL and the
 * suppression list and quotas at RCPT (auth/policy.h): DESIGN.md's
 * "quota or rate exceeded 4xx 4.7.x" and "suppressed recipient 550
 * 5.7.1".  Every refused recipient or sender is a `rejected` event and
 * every recipient of a committed message an `accepted` one
 * (store/event_log.h), with the message's summary for GET /v1/messages. */
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "auth/policy.h"
#include "core/log.h"
#include "smtp/session.h"
#include "store/directory.h"
#include "store/event_log.h"

#define SUBJECT_MAX 998 /* one header line (RFC 5322 2.1.1) */
#define HEADER_SCAN_MAX (64 * 1024) /* how far to look for Subject */

/* user_of - the account S sends for, or NULL (not authenticated, or the
 * user was deleted since). */
static const struct dir_user *user_of(struct session *s)
{
	return s->auth_user ? directory_user(s->dir, s->auth_user) : NULL;
}

/* verdict_reply - the SMTP form of a policy refusal. */
static struct smtp_reply verdict_reply(enum policy_verdict v)
{
	switch (v) {
	case POLICY_SUPPRESSED:
		return SMTP_REPLY(550, "5.7.1", "Recipient is on the sender's suppression list");
	case POLICY_QUOTA_DAY:
		return SMTP_REPLY(451, "4.7.1", "Daily sending quota exceeded, try again tomorrow");
	case POLICY_QUOTA_MONTH:
		return SMTP_REPLY(451, "4.7.1", "Monthly sending quota exceeded");
	case POLICY_RATE:
		return SMTP_REPLY(451, "4.7.1", "Sending rate limit exceeded, try again later");
	case POLICY_OK:
		break;
	}
	return SMTP_REPLY(0, NULL, NULL);
}

struct smtp_reply session_rate_check(struct session *s)
{
	const struct dir_user *u = user_of(s);
	if (!u || !s->ctx->policy)
		return SMTP_REPLY(0, NULL, NULL);
	unsigned retry_after = 0;
	return verdict_reply(policy_check_rate(s->ctx->policy, u, time(NULL), &retry_after));
}

struct smtp_reply session_rcpt_limits(struct session *s, const char *rcpt)
{
	const struct dir_user *u = user_of(s);
	if (!u || !s->ctx->policy)
		return SMTP_REPLY(0, NULL, NULL);
	unsigned retry_after = 0;
	return verdict_reply(policy_check_rcpt(s->ctx->policy, u, rcpt, s->env.nrcpts,
					       time(NULL), &retry_after));
}

void session_record_rejection(struct session *s, const char *rcpt, struct smtp_reply r)
{
	if (!s->ctx->events)
		return;
	char detail[256];
	snprintf(detail, sizeof detail, "%d %s %s", r.code, r.enhanced ? r.enhanced : "",
		 r.text ? r.text : "");
	struct event_note n = {
		.type = EVENT_REJECTED,
		.user = s->auth_user,
		.recipient = rcpt,
		.detail = detail,
	};
	event_log_emit(s->ctx->events, &n);
}

/* header_subject - the Subject field of the header block at the start of
 * BODY, unfolded, into OUT ("" when there is none). */
static void header_subject(struct evbuffer *body, char *out, size_t outlen)
{
	out[0] = '\0';
	size_t len = evbuffer_get_length(body);
	if (len > HEADER_SCAN_MAX)
		len = HEADER_SCAN_MAX;
	const char *p = (const char *)evbuffer_pullup(body, (ssize_t)len);
	if (!p)
		return;
	const char *end = p + len;
	size_t o = 0;
	int in_subject = 0;
	for (const char *line = p; line < end;) {
		const char *eol = memchr(line, '\n', (size_t)(end - line));
		if (!eol)
			eol = end;
		size_t l = (size_t)(eol - line);
		if (l && line[l - 1] == '\r')
			l--;
		if (l == 0)
			break; /* the end of the header */
		int folded = line[0] == ' ' || line[0] == '\t';
		if (!folded && in_subject)
			break;
		const char *text = NULL;
		if (!folded && l >= 8 && strncasecmp(line, "Subject:", 8) == 0) {
			in_subject = 1;
			text = line + 8;
		} else if (folded && in_subject) {
			text = line;
		}
		for (const char *c = text; text && c < line + l && o + 1 < outlen; c++)
			if (!(o == 0 && (*c == ' ' || *c == '\t')))
				out[o++] = *c == '\t' ? ' ' : *c;
		line = eol + 1;
	}
	out[o] = '\0';
}

char *session_subject(struct evbuffer *body)
{
	char subject[SUBJECT_MAX + 1];
	header_subject(body, subject, sizeof subject);
	return strdup(subject);
}

void session_record_accepted(struct session *s)
{
	time_t now = s->env.received ? s->env.received : time(NULL);
	if (s->ctx->policy)
		policy_charge(s->ctx->policy, s->env.auth_user, s->env.nrcpts, now);
	if (!s->ctx->events)
		return;
	struct message_meta m = {
		.user = s->env.auth_user ? s->env.auth_user : "",
		.sender = s->env.sender,
		.subject = s->subject ? s->subject : "",
		.tags = "[]",
		.created_ms = (int64_t)now * 1000,
	};
	snprintf(m.id, sizeof m.id, "%s", s->env.id);
	event_log_message(s->ctx->events, &m);
	for (size_t i = 0; i < s->env.nrcpts; i++) {
		struct event_note n = {
			.type = EVENT_ACCEPTED,
			.message_id = s->env.id,
			.user = s->env.auth_user,
			.recipient = s->env.rcpts[i].address,
			.detail = s->peer_text,
			.received = now,
		};
		event_log_emit(s->ctx->events, &n);
	}
}
