/* api_body.c - the JSON body of a small API request (suppressions,
 * webhooks): application/json, one object (RFC 8259; duplicate names
 * refused), only the fields the endpoint knows, each of its kind. */
#include <event2/buffer.h>
#include <event2/http.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "http/http_private.h"

/* content_type_ok - no Content-Type, or application/json (parameters
 * allowed). */
static int content_type_ok(struct api_request *r)
{
	const char *ctype =
		evhttp_find_header(evhttp_request_get_input_headers(r->req), "Content-Type");
	return !ctype || (strncasecmp(ctype, "application/json", 16) == 0 &&
			  (!ctype[16] || ctype[16] == ';' || ctype[16] == ' '));
}

/* field_ok - V may be the value of F; else answer 400 and return 0. */
static int field_ok(struct api_request *r, const struct api_field *f, json_t *v)
{
	if (json_is_null(v) && f->nullable)
		return 1;
	if (f->kind == API_FIELD_ANY || json_is_string(v))
		return 1;
	http_reply_error(r->req, 400, "invalid_request", "%s must be a string", f->name);
	return 0;
}

json_t *api_json_body(struct api_request *r, const struct api_field *fields)
{
	if (!content_type_ok(r)) {
		http_reply_error(r->req, 415, "unsupported_media_type",
				 "the body must be application/json");
		return NULL;
	}
	struct evbuffer *body = evhttp_request_get_input_buffer(r->req);
	size_t len = evbuffer_get_length(body);
	const char *data = len ? (const char *)evbuffer_pullup(body, -1) : "";
	json_error_t jerr;
	json_t *root = data ? json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr) : NULL;
	if (!root) {
		http_reply_error(r->req, 400, "invalid_json", "the body is not valid JSON: %s",
				 data ? jerr.text : "out of memory");
		return NULL;
	}
	if (!json_is_object(root)) {
		http_reply_error(r->req, 400, "invalid_json", "the body must be a JSON object");
		json_decref(root);
		return NULL;
	}
	const char *key;
	json_t *v;
	json_object_foreach(root, key, v)
	{
		const struct api_field *f = fields;
		while (f->name && strcmp(f->name, key))
			f++;
		if (!f->name) {
			char safe[64];
			http_reply_error(r->req, 400, "invalid_request", "unknown field %s",
					 log_sanitize(safe, sizeof safe, key, strlen(key)));
			json_decref(root);
			return NULL;
		}
		if (!field_ok(r, f, v)) {
			json_decref(root);
			return NULL;
		}
	}
	return root;
}
