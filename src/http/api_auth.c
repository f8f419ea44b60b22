/* api_auth.c - "Authorization: Bearer KEY" (RFC 6750 2.1) checked against
 * the server's API key snapshot.
 *
 *   credentials = "Bearer" 1*SP b64token
 *
 * The scheme is case-insensitive (RFC 9110 11.1).  A refusal is a 401 with
 * WWW-Authenticate (RFC 6750 3) and never says whether a key exists; the
 * log names the client and the key's visible prefix, never the key. */
#include <event2/http.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "http/http_private.h"
#include "store/apikeys.h"
#include "store/directory.h"

#define AUTH_HEADER_MAX 512 /* far more than "Bearer " and a key */

static int refuse(struct api_request *r, const char *error, const char *why)
{
	char challenge[96];
	snprintf(challenge, sizeof challenge, "Bearer realm=\"tern\"%s%s%s",
		 error ? ", error=\"" : "", error ? error : "", error ? "\"" : "");
	evhttp_add_header(evhttp_request_get_output_headers(r->req), "WWW-Authenticate", challenge);
	http_reply_error(r->req, 401, "unauthorized", "%s", why);
	return -1;
}

/* bearer_token - the token of "Bearer TOKEN" in VALUE, its length in *LEN;
 * NULL when VALUE is not a Bearer credential. */
static const char *bearer_token(const char *value, size_t *len)
{
	if (strlen(value) > AUTH_HEADER_MAX || strncasecmp(value, "Bearer ", 7) != 0)
		return NULL;
	const char *t = value + 7;
	while (*t == ' ')
		t++;
	size_t n = strcspn(t, " \t");
	if (n == 0 || t[n + strspn(t + n, " \t")] != '\0')
		return NULL;
	*len = n;
	return t;
}

int api_authenticate(struct api_request *r)
{
	const char *value =
		evhttp_find_header(evhttp_request_get_input_headers(r->req), "Authorization");
	if (!value)
		return refuse(r, NULL, "an API key is required: Authorization: Bearer KEY");
	size_t len = 0;
	const char *token = bearer_token(value, &len);
	if (!token)
		return refuse(r, "invalid_request",
			      "the Authorization header must be \"Bearer KEY\"");
	const struct apikey_entry *e = apikey_set_find(r->srv->keys, token, len);
	/* A user deleted since the keys were loaded: its keys went with it. */
	if (e && e->user && !directory_user(r->srv->dir, e->user))
		e = NULL;
	if (!e) {
		char shown[APIKEY_SHOWN + 1];
		log_sanitize(shown, sizeof shown, token, len < APIKEY_SHOWN ? len : APIKEY_SHOWN);
		log_info("http %s: refused API key %s...", r->peer, shown);
		return refuse(r, "invalid_token", "the API key is not valid (unknown or revoked)");
	}
	r->who.key_id = e->id;
	r->who.admin = e->user == NULL;
	snprintf(r->who.user, sizeof r->who.user, "%s", e->user ? e->user : "");
	return 0;
}
