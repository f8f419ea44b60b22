/* session_policy.c - a sending service's rules on SMTP, and the record of
 * what the session decided.
 *
 * An authenticated user's messages pass the rate limit at MAIL and the
 * suppression list and quotas at RCPT (auth/policy.h): DESIGN.md's
 * "quota or rate exceeded 4xx 4.7.x" and "suppressed recipient 550
 * 5.7.1".  Every refused recipient or sender is a `rejected` event and
 * every recipient of a committed message an `accepted` one
 * (store/event_log.h), with the message's summary for GET /v1/messages. */
#include <stdio.h>
#include <time.h>

#include "auth/policy.h"
#include "core/log.h"
#include "smtp/session.h"
#include "store/directory.h"
#include "store/event_log.h"

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

void session_record_accepted(struct session *s)
{
	time_t now = s->env.received ? s->env.received : time(NULL);
	if (s->ctx->policy)
		policy_charge(s->ctx->policy, s->env.auth_user, s->env.nrcpts, now);
	if (s->ctx->events)
		event_log_accepted(s->ctx->events, &s->env, s->subject, NULL, s->peer_text);
}
