/* api_suppressions.c - the suppression lists (auth/policy.h) over HTTP:
 *
 *   GET    /v1/suppressions[?user=U]      -> {suppressions[{address, reason, created, user}]}
 *   POST   /v1/suppressions {address, reason[, user]}   -> 201 {address, reason, created, user}
 *   DELETE /v1/suppressions/ADDRESS[?user=U]            -> 204, or 404
 *
 * A user key works on its user's list; an admin key reads every list (or
 * user=U's) and changes the list it names (user is then required).  An
 * address on its user's list is refused as a recipient (SMTP 550 5.7.1,
 * API 422); a hard bounce adds one.  Changes apply in memory at once and
 * are answered once the store has them (the policy's done callback), so a
 * 201 or 204 survives a restart; a failed write is a 500.
 *
 * Bodies are strict: one JSON object, no name twice, no unknown field,
 * an RFC 5321 mailbox with a domain. */
#include <ctype.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "auth/policy.h"
#include "core/address.h"
#include "core/log.h"
#include "http/http_private.h"
#include "store/event.h"

#define REASON_MAX 512

/* A change waiting for its store write. */
struct supp_change {
	struct http_pending pending; /* first: detach gets this pointer */
	struct http_server *srv;     /* NULL once detached */
	struct evhttp_request *req;
	int adding;
	char user[API_USER_MAX];
	char address[ADDR_PATH_MAX + 8];
	char reason[REASON_MAX + 1];
	int64_t created;
};

static void change_detach(struct http_pending *p)
{
	struct supp_change *c = (struct supp_change *)p;
	c->srv = NULL;
	c->req = NULL;
}

static json_t *entry_json(const char *user, const char *address, const char *reason,
			  int64_t created)
{
	char when[EVENT_TIME_MAX];
	api_format_time(created, when);
	return json_pack("{s:s,s:s,s:s,s:s}", "address", address, "reason", reason, "created", when,
			 "user", user);
}

/* change_done - the store has the change (OK) or not: answer now. */
static void change_done(void *arg, int ok)
{
	struct supp_change *c = arg;
	if (c->srv) {
		http_pending_remove(c->srv, &c->pending);
		if (!ok)
			http_reply_error(c->req, 500, "internal",
					 "the change could not be stored; "
					 "it applies until the daemon restarts");
		else if (c->adding)
			http_reply_json(c->req, 201,
					entry_json(c->user, c->address, c->reason, c->created));
		else
			http_reply_empty(c->req, 204);
	}
	free(c);
}

/* change_new - a change for R, registered as pending. */
static struct supp_change *change_new(struct api_request *r, const char *user, const char *address)
{
	struct supp_change *c = calloc(1, sizeof *c);
	if (!c) {
		http_reply_error(r->req, 500, "internal", "out of memory");
		return NULL;
	}
	c->srv = r->srv;
	c->req = r->req;
	c->pending.detach = change_detach;
	snprintf(c->user, sizeof c->user, "%s", user);
	snprintf(c->address, sizeof c->address, "%s", address);
	http_pending_add(r->srv, &c->pending);
	return c;
}

/* change_abandon - the policy refused before starting: no callback. */
static void change_abandon(struct supp_change *c)
{
	http_pending_remove(c->srv, &c->pending);
	free(c);
}

/* ---- GET ---- */

static int list_one(void *ctx, const char *user, const char *address, const char *reason,
		    int64_t created)
{
	return json_array_append_new(ctx, entry_json(user, address, reason, created)) < 0;
}

void api_suppressions_list(struct api_request *r)
{
	static const char *const names[] = {"user"};
	struct policy *p = r->srv->ctx->policy;
	struct evkeyvalq q;
	char err[160];
	const char *user = NULL;
	if (api_query_parse(r->req, names, 1, &q, err, sizeof err) < 0) {
		http_reply_error(r->req, 400, "invalid_request", "%s", err);
		return;
	}
	int rc = api_scope(r, evhttp_find_header(&q, "user"), &user);
	json_t *arr = rc == 0 && p ? json_array() : NULL;
	if (arr)
		policy_suppression_each(p, user, list_one, arr);
	evhttp_clear_headers(&q);
	if (rc < 0)
		return;
	if (!p)
		http_reply_error(r->req, 503, "unavailable", "the sending policy is not loaded");
	else if (!arr)
		http_reply_error(r->req, 500, "internal", "out of memory");
	else
		http_reply_json(r->req, 200, json_pack("{s:o}", "suppressions", arr));
}

/* ---- POST ---- */

/* mailbox - TEXT as a lower-case mailbox with a domain into OUT; NULL, or
 * the reason it is not one. */
static const char *mailbox(const char *text, char *out, size_t outlen)
{
	struct address a;
	const char *why = "not a mailbox";
	if (address_parse_mailbox(text, strlen(text), 0, &a, &why) < 0)
		return why;
	if (!a.domain[0])
		return "no domain";
	if (address_format(&a, out, outlen) < 0)
		return "too long";
	for (char *s = out; *s; s++)
		*s = (char)tolower((unsigned char)*s);
	return NULL;
}

/* text_ok - one line of printable text (UTF-8 allowed). */
static int text_ok(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 0;
	return 1;
}

/* The POST body's fields. */
static const struct api_field post_fields[] = {
	{ "address", API_FIELD_STRING, 0 },
	{ "reason", API_FIELD_STRING, 1 },
	{ "user", API_FIELD_STRING, 1 },
	{ NULL, API_FIELD_STRING, 0 },
};

/* post_target - whose list: a user key's own, or the admin's "user". */
static int post_target(struct api_request *r, const char *given, const char **user)
{
	if (r->who.admin && !given) {
		http_reply_error(r->req, 400, "invalid_request",
				 "user is required with an admin key: whose list to add to");
		return -1;
	}
	return api_scope_user(r, given, user);
}

void api_suppressions_post(struct api_request *r)
{
	struct policy *p = r->srv->ctx->policy;
	json_t *root = p ? api_json_body(r, post_fields) : NULL;
	if (!p) {
		http_reply_error(r->req, 503, "unavailable", "the sending policy is not loaded");
		return;
	}
	if (!root)
		return;
	const char *address = json_string_value(json_object_get(root, "address"));
	const char *reason = json_string_value(json_object_get(root, "reason"));
	const char *user = NULL, *why;
	char addr[ADDR_PATH_MAX + 8];
	if (!address)
		http_reply_error(r->req, 400, "invalid_request", "address is required");
	else if ((why = mailbox(address, addr, sizeof addr)))
		http_reply_error(r->req, 400, "invalid_address", "address: %s", why);
	else if (reason && (strlen(reason) > REASON_MAX || !text_ok(reason)))
		http_reply_error(r->req, 400, "invalid_request",
				 "reason must be one line of at "
				 "most %d bytes",
				 REASON_MAX);
	else if (post_target(r, json_string_value(json_object_get(root, "user")), &user) == 0) {
		struct supp_change *c = change_new(r, user, addr);
		if (c) {
			c->adding = 1;
			c->created = (int64_t)time(NULL);
			snprintf(c->reason, sizeof c->reason, "%s",
				 reason && *reason ? reason : "added through the API");
			if (policy_suppress(p, c->user, c->address, c->reason, change_done, c) <
			    0) {
				change_abandon(c);
				http_reply_error(r->req, 400, "invalid_address",
						 "address is not accepted");
			}
		}
	}
	json_decref(root);
}

/* ---- DELETE ---- */

void api_suppressions_delete(struct api_request *r)
{
	static const char *const names[] = {"user"};
	struct policy *p = r->srv->ctx->policy;
	struct evkeyvalq q;
	char err[160], addr[ADDR_PATH_MAX + 8];
	const char *user = NULL, *why;
	if (!p) {
		http_reply_error(r->req, 503, "unavailable", "the sending policy is not loaded");
		return;
	}
	if (api_query_parse(r->req, names, 1, &q, err, sizeof err) < 0) {
		http_reply_error(r->req, 400, "invalid_request", "%s", err);
		return;
	}
	size_t len = 0;
	char *raw = evhttp_uridecode(r->path + strlen("/v1/suppressions/"), 0, &len);
	const char *given = evhttp_find_header(&q, "user");
	if (!raw)
		http_reply_error(r->req, 500, "internal", "out of memory");
	else if ((why = strlen(raw) != len ? "a NUL byte" : mailbox(raw, addr, sizeof addr)))
		http_reply_error(r->req, 400, "invalid_address",
				 "the path does not end in an address (%s)", why);
	else if (r->who.admin && !given)
		http_reply_error(r->req, 400, "invalid_request",
				 "user is required with an admin key: whose list to remove from");
	else if (api_scope(r, given, &user) == 0) {
		struct supp_change *c = change_new(r, user, addr);
		int rc = c ? policy_unsuppress(p, c->user, c->address, change_done, c) : 0;
		if (c && rc != 0) {
			change_abandon(c);
			if (rc > 0)
				http_reply_error(r->req, 404, "not_found",
						 "%s is not on the "
						 "suppression list of %s",
						 addr, user);
			else
				http_reply_error(r->req, 500, "internal", "out of memory");
		}
	}
	free(raw);
	evhttp_clear_headers(&q);
}
