/* api_limits.c - the sending service's rules on the API (auth/policy.h),
 * the same as on SMTP submission: the rate limit (429), the suppression
 * list (422) and the daily and monthly quotas (429), with Retry-After
 * (RFC 9110 10.2.3) telling the client when trying again can succeed.
 * Refusals are `rejected` events and a committed message's recipients
 * `accepted` ones (store/event_log.h). */
#include <event2/http.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "auth/policy.h"
#include "http/http_private.h"
#include "spool/envelope.h"
#include "store/directory.h"
#include "store/event_log.h"

/* record_rejection - a `rejected` event for RCPT (NULL: the message). */
void api_record_rejection(struct api_request *r, const char *rcpt, int status,
			     const char *why)
{
	struct event_log *log = r->srv->ctx->events;
	if (!log)
		return;
	char detail[256];
	snprintf(detail, sizeof detail, "HTTP %d %s", status, why);
	struct event_note n = {
		.type = EVENT_REJECTED,
		.user = r->who.admin ? NULL : r->who.user,
		.recipient = rcpt,
		.detail = detail,
	};
	event_log_emit(log, &n);
}

/* refuse - fill OUT with a 429 and its Retry-After. */
static int refuse(struct api_request *r, struct api_refusal *out, enum policy_verdict v,
		  unsigned retry_after, const char *rcpt)
{
	out->status = v == POLICY_SUPPRESSED ? 422 : 429;
	out->code = v == POLICY_SUPPRESSED ? "suppressed_recipient" :
		    v == POLICY_RATE	  ? "rate_limited" :
					    "quota_exceeded";
	out->retry_after = v == POLICY_SUPPRESSED ? 0 : (retry_after ? retry_after : 1);
	if (v == POLICY_SUPPRESSED)
		snprintf(out->message, sizeof out->message,
			 "%s is on the suppression list of %s", rcpt, r->who.user);
	else
		snprintf(out->message, sizeof out->message, "%s; retry after %u s",
			 policy_verdict_text(v), out->retry_after);
	return -1;
}

int api_send_limits(struct api_request *r, const char *const *rcpts, size_t n,
		    struct api_refusal *out)
{
	struct policy *p = r->srv->ctx->policy;
	const struct dir_user *u = r->who.admin ? NULL : directory_user(r->srv->dir, r->who.user);
	if (!p || !u)
		return 0;
	time_t now = time(NULL);
	unsigned retry_after = 0;
	enum policy_verdict v = policy_check_rate(p, u, now, &retry_after);
	if (v != POLICY_OK) {
		api_record_rejection(r, NULL, 429, policy_verdict_text(v));
		return refuse(r, out, v, retry_after, NULL);
	}
	/* Every suppressed recipient is recorded, not only the first. */
	size_t first = n;
	for (size_t i = 0; i < n; i++) {
		if (policy_suppressed(p, r->who.user, rcpts[i])) {
			api_record_rejection(r, rcpts[i], 422, policy_verdict_text(POLICY_SUPPRESSED));
			if (first == n)
				first = i;
		}
	}
	if (first < n)
		return refuse(r, out, POLICY_SUPPRESSED, 0, rcpts[first]);
	for (size_t i = 0; i < n; i++) {
		v = policy_check_rcpt(p, u, rcpts[i], i, now, &retry_after);
		if (v != POLICY_OK) {
			for (size_t j = 0; j < n; j++)
				api_record_rejection(r, rcpts[j], 429, policy_verdict_text(v));
			return refuse(r, out, v, retry_after, rcpts[i]);
		}
	}
	return 0;
}

void api_refusal_reply(struct evhttp_request *req, const struct api_refusal *a)
{
	if (a->retry_after) {
		char secs[16];
		snprintf(secs, sizeof secs, "%u", a->retry_after);
		evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", secs);
	}
	http_reply_error(req, a->status, a->code, "%s", a->message);
}

void api_record_accepted(struct http_server *srv, const struct envelope *env,
			 const char *subject, const char *tags_json)
{
	if (srv->ctx->policy)
		policy_charge(srv->ctx->policy, env->auth_user, env->nrcpts, env->received);
	if (srv->ctx->events)
		event_log_accepted(srv->ctx->events, env, subject, tags_json, "HTTP API");
}
