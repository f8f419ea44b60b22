/* api_messages.c - POST /v1/messages: a JSON request becomes a MIME
 * message (http/mime.h) in the spool, under the rules of SMTP submission.
 *
 *   {from, to[], cc[], bcc[], reply_to, subject, text, html, headers{},
 *    attachments[{filename, content_type, content}], tags[]}
 *   -> 202 {id, message_id, recipients[]}
 *
 * The rules, in the order they are checked:
 *   400  the body is not one JSON object (RFC 8259, duplicate names
 *        refused), a field is unknown or of the wrong type, an address is
 *        not an RFC 5321 mailbox, a header field would inject a line
 *        (CR/LF) or set what the composer owns, no recipient or content;
 *   403  a user key's `from` is not an address its user owns (SMTP's 553
 *        5.7.1); an admin key may send as any address;
 *   422  a recipient in a hosted domain does not exist (SMTP's 550 5.1.1)
 *        or its aliases loop;
 *   413  the composed message exceeds max_message_size (552 5.3.4);
 *   202  only once the spool says the message is on disk (the promise
 *        of a 250 after DATA); 503 when it could not be stored.
 * to, cc and bcc together are the envelope recipients, each once; Bcc
 * never appears in the message.  Tags travel in an X-Tern-Tags field
 * (the envelope has no place for them yet).
 *
 * Parsing and composing run on the loop: CPU work bounded by the body
 * limit, as an SMTP session's DATA is; the disk is the spool's, on the
 * worker pool. */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/address.h"
#include "core/config.h"
#include "core/log.h"
#include "http/http_private.h"
#include "http/mime.h"
#include "queue/queue.h"
#include "smtp/server.h"
#include "spool/envelope.h"
#include "spool/spool.h"
#include "store/directory.h"

#define MAX_REPLY_TO 10
#define MAX_FIELDS 50
#define MAX_ATTACHMENTS 100
#define MAX_TAGS 10
#define TAG_MAX 64
#define TAGS_TEXT_MAX (MAX_TAGS * (TAG_MAX + 2))

/* What a refusal says. */
struct api_error {
	int status;
	const char *code;
	char message[320];
};

__attribute__((format(printf, 4, 5))) static int bad(struct api_error *e, int status,
						     const char *code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e->message, sizeof e->message, fmt, ap);
	va_end(ap);
	e->status = status;
	e->code = code;
	return -1;
}

/* One mailbox of the request: display name and checked address. */
struct mbox {
	char name[MIME_NAME_MAX + 1];
	char addr[ADDR_PATH_MAX + 8];
};

/* An address field: its mailboxes and the composer's view of them. */
struct mbox_list {
	struct mbox *boxes;
	struct mime_mailbox *views;
	size_t n;
};

/* The request, checked, as the composer and the envelope need it.  Strings
 * point into ROOT; the arrays and attachment bytes are owned here. */
struct draft {
	json_t *root;
	struct mbox from;
	struct mbox_list reply_to, to, cc, bcc;
	const char *subject, *text, *html;
	struct mime_field *fields; /* room for one more: X-Tern-Tags */
	size_t nfields;
	struct mime_attachment *atts;
	size_t natts;
	char tags[TAGS_TEXT_MAX];
	const char **rcpts; /* envelope recipients, unique, into the mboxes */
	size_t nrcpts;
};

static void draft_free(struct draft *d)
{
	for (size_t i = 0; i < d->natts; i++)
		free((void *)d->atts[i].data);
	free(d->atts);
	free(d->fields);
	struct mbox_list *lists[] = { &d->reply_to, &d->to, &d->cc, &d->bcc };
	for (size_t i = 0; i < 4; i++) {
		free(lists[i]->boxes);
		free(lists[i]->views);
	}
	free(d->rcpts);
	json_decref(d->root);
}

/* ---- fields ---- */

static const char *const known_fields[] = {
	"from", "to", "cc", "bcc", "reply_to", "subject", "text", "html", "headers", "attachments",
	"tags",
};

static int check_known(json_t *obj, const char *const *names, size_t n, const char *where,
		       struct api_error *e)
{
	const char *key;
	json_t *v;
	json_object_foreach(obj, key, v) {
		size_t i = 0;
		while (i < n && strcmp(key, names[i]) != 0)
			i++;
		if (i == n) {
			char safe[64];
			return bad(e, 400, "invalid_request", "unknown field %s%s",
				   log_sanitize(safe, sizeof safe, key, strlen(key)), where);
		}
	}
	return 0;
}

/* get_text - the string field NAME of OBJ into *OUT (NULL when absent). */
static int get_text(json_t *obj, const char *name, const char **out, struct api_error *e)
{
	json_t *v = json_object_get(obj, name);
	*out = NULL;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v))
		return bad(e, 400, "invalid_request", "%s must be a string", name);
	*out = json_string_value(v);
	return 0;
}

/* parse_mbox - one "Name <addr>" or "addr" into M: an RFC 5321 mailbox
 * with a domain, ASCII (an internationalised address needs SMTPUTF8 all
 * the way, which this API does not offer yet), kept as written. */
static int parse_mbox(const char *text, const char *where, struct mbox *m, struct api_error *e)
{
	char safe[80];
	struct address a;
	const char *why = "not a mailbox";
	log_sanitize(safe, sizeof safe, text, strlen(text));
	if (mime_split_mailbox(text, m->name, sizeof m->name, m->addr, sizeof m->addr) < 0)
		return bad(e, 400, "invalid_address",
			   "%s: \"%s\" is not an address or \"Name <address>\"", where, safe);
	if (!m->addr[0] ||
	    address_parse_mailbox(m->addr, strlen(m->addr), 0, &a, &why) < 0 || !a.domain[0])
		return bad(e, 400, "invalid_address", "%s: \"%s\": %s", where, safe,
			   m->addr[0] ? why : "no address");
	if (address_format(&a, m->addr, sizeof m->addr) < 0)
		return bad(e, 400, "invalid_address", "%s: \"%s\": too long", where, safe);
	return 0;
}

/* parse_mboxes - field NAME: a string or an array of strings, at most MAX
 * (0: no limit here), into OUT. */
static int parse_mboxes(json_t *root, const char *name, size_t max, struct mbox_list *out,
			struct api_error *e)
{
	json_t *v = json_object_get(root, name);
	if (!v || json_is_null(v))
		return 0;
	size_t count = json_is_string(v) ? 1 : json_is_array(v) ? json_array_size(v) : 0;
	if (!json_is_string(v) && !json_is_array(v))
		return bad(e, 400, "invalid_request", "%s must be an address or an array of them",
			   name);
	if (max && count > max)
		return bad(e, 400, "invalid_request", "%s: at most %zu addresses", name, max);
	if (count == 0)
		return 0;
	if (!(out->boxes = calloc(count, sizeof *out->boxes)) ||
	    !(out->views = calloc(count, sizeof *out->views)))
		return bad(e, 500, "internal", "out of memory");
	for (size_t i = 0; i < count; i++) {
		json_t *item = json_is_string(v) ? v : json_array_get(v, i);
		char where[48];
		snprintf(where, sizeof where, json_is_string(v) ? "%s" : "%s[%zu]", name, i);
		if (!json_is_string(item))
			return bad(e, 400, "invalid_request", "%s must be a string", where);
		struct mbox *m = &out->boxes[i];
		if (parse_mbox(json_string_value(item), where, m, e) < 0)
			return -1;
		out->views[i] = (struct mime_mailbox){ m->name, m->addr };
		out->n = i + 1;
	}
	return 0;
}

/* parse_fields - headers{}: each a field name of RFC 5322 3.6.8 that the
 * composer does not own, each value one line of header text. */
static int parse_fields(struct draft *d, struct api_error *e)
{
	json_t *obj = json_object_get(d->root, "headers");
	if (obj && !json_is_object(obj) && !json_is_null(obj))
		return bad(e, 400, "invalid_request", "headers must be an object");
	size_t n = json_is_object(obj) ? json_object_size(obj) : 0;
	if (n > MAX_FIELDS)
		return bad(e, 400, "invalid_request", "headers: at most %d fields", MAX_FIELDS);
	if (!(d->fields = calloc(n + 1, sizeof *d->fields)))
		return bad(e, 500, "internal", "out of memory");
	const char *name;
	json_t *v;
	char safe[MIME_FIELD_NAME_MAX + 4];
	json_object_foreach(obj, name, v) {
		log_sanitize(safe, sizeof safe, name, strlen(name));
		if (!mime_field_name_ok(name))
			return bad(e, 400, "invalid_header", "header name \"%s\" is not a field name "
				   "(1-%d printable ASCII characters without ':')", safe,
				   MIME_FIELD_NAME_MAX);
		if (mime_field_reserved(name))
			return bad(e, 400, "invalid_header", "header %s cannot be set through "
				   "headers (it is set from the request's own fields)", safe);
		if (!json_is_string(v))
			return bad(e, 400, "invalid_request", "header %s must be a string", safe);
		const char *value = json_string_value(v);
		size_t len = json_string_length(v);
		if (len > MIME_FIELD_VALUE_MAX)
			return bad(e, 400, "invalid_header", "header %s is longer than %d bytes",
				   safe, MIME_FIELD_VALUE_MAX);
		if (!mime_header_text_ok(value, len))
			return bad(e, 400, "invalid_header", "header %s contains a line break or "
				   "another control character", safe);
		d->fields[d->nfields].name = name;
		d->fields[d->nfields++].value = value;
	}
	return 0;
}

/* decode_attachment - one attachments[] entry into A. */
static int decode_attachment(json_t *item, size_t i, struct mime_attachment *a,
			     struct api_error *e)
{
	static const char *const keys[] = { "filename", "content_type", "content" };
	char where[48];
	snprintf(where, sizeof where, " in attachments[%zu]", i);
	if (!json_is_object(item))
		return bad(e, 400, "invalid_request", "attachments[%zu] must be an object", i);
	if (check_known(item, keys, 3, where, e) < 0)
		return -1;
	json_t *fn = json_object_get(item, "filename"), *ct = json_object_get(item, "content_type");
	json_t *content = json_object_get(item, "content");
	if (!json_is_string(fn) || !json_is_string(content) || (ct && !json_is_string(ct)))
		return bad(e, 400, "invalid_request", "attachments[%zu] needs filename and "
			   "content (base64) as strings, content_type a string", i);
	a->filename = json_string_value(fn);
	a->content_type = ct ? json_string_value(ct) : "application/octet-stream";
	if (!mime_filename_ok(a->filename))
		return bad(e, 400, "invalid_request", "attachments[%zu].filename must be 1-%d "
			   "bytes of text without control characters, '/' or '\\'", i,
			   MIME_FILENAME_MAX);
	if (!mime_content_type_ok(a->content_type))
		return bad(e, 400, "invalid_request", "attachments[%zu].content_type must be "
			   "\"type/subtype\"", i);
	const char *b64 = json_string_value(content);
	size_t len = json_string_length(content), got = 0;
	const char *end = NULL;
	unsigned char *bin = malloc(len / 4 * 3 + 3);
	if (!bin)
		return bad(e, 500, "internal", "out of memory");
	a->data = bin;
	if (sodium_base642bin(bin, len / 4 * 3 + 3, b64, len, " \t\r\n", &got, &end,
			      sodium_base64_VARIANT_ORIGINAL) != 0 || end != b64 + len)
		return bad(e, 400, "invalid_request", "attachments[%zu].content is not base64", i);
	a->len = got;
	return 0;
}

static int parse_attachments(struct draft *d, struct api_error *e)
{
	json_t *arr = json_object_get(d->root, "attachments");
	if (!arr || json_is_null(arr))
		return 0;
	if (!json_is_array(arr))
		return bad(e, 400, "invalid_request", "attachments must be an array");
	size_t n = json_array_size(arr);
	if (n > MAX_ATTACHMENTS)
		return bad(e, 400, "invalid_request", "at most %d attachments", MAX_ATTACHMENTS);
	if (n && !(d->atts = calloc(n, sizeof *d->atts)))
		return bad(e, 500, "internal", "out of memory");
	for (size_t i = 0; i < n; i++) {
		d->natts = i + 1; /* its data is freed with the draft even when bad */
		if (decode_attachment(json_array_get(arr, i), i, &d->atts[i], e) < 0)
			return -1;
	}
	return 0;
}

/* parse_tags - tags[]: up to MAX_TAGS words of letters, digits and
 * "-_.:", joined by ", " for the X-Tern-Tags field. */
static int parse_tags(struct draft *d, struct api_error *e)
{
	json_t *arr = json_object_get(d->root, "tags");
	if (!arr || json_is_null(arr))
		return 0;
	if (!json_is_array(arr) || json_array_size(arr) > MAX_TAGS)
		return bad(e, 400, "invalid_request", "tags must be an array of at most %d strings",
			   MAX_TAGS);
	size_t used = 0;
	for (size_t i = 0; i < json_array_size(arr); i++) {
		const char *t = json_string_value(json_array_get(arr, i));
		size_t n = t ? strlen(t) : 0;
		if (!t || n == 0 || n > TAG_MAX ||
		    strspn(t, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:") !=
			    n)
			return bad(e, 400, "invalid_request", "tags[%zu] must be 1-%d letters, "
				   "digits or - _ . :", i, TAG_MAX);
		used += (size_t)snprintf(d->tags + used, sizeof d->tags - used, "%s%s",
					 used ? ", " : "", t);
	}
	if (used) {
		d->fields[d->nfields].name = "X-Tern-Tags";
		d->fields[d->nfields++].value = d->tags;
	}
	return 0;
}

/* add_rcpts - the addresses of L into the envelope list, each once
 * (compared without regard to case, as the directory does). */
static void add_rcpts(struct draft *d, const struct mbox_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		size_t j = 0;
		while (j < d->nrcpts && strcasecmp(d->rcpts[j], l->boxes[i].addr) != 0)
			j++;
		if (j == d->nrcpts)
			d->rcpts[d->nrcpts++] = l->boxes[i].addr;
	}
}

/* parse_addresses - from, reply_to, to, cc, bcc and the envelope list. */
static int parse_addresses(struct draft *d, unsigned max_rcpts, struct api_error *e)
{
	const char *from;
	if (get_text(d->root, "from", &from, e) < 0)
		return -1;
	if (!from)
		return bad(e, 400, "invalid_request", "from is required");
	if (parse_mbox(from, "from", &d->from, e) < 0)
		return -1;
	size_t total = 0;
	static const char *const lists[] = { "to", "cc", "bcc" };
	for (size_t i = 0; i < 3; i++) {
		json_t *v = json_object_get(d->root, lists[i]);
		total += json_is_array(v) ? json_array_size(v) : json_is_string(v) ? 1 : 0;
	}
	if (total > max_rcpts)
		return bad(e, 400, "too_many_recipients", "at most %u recipients (to, cc and bcc "
			   "together)", max_rcpts);
	if (parse_mboxes(d->root, "reply_to", MAX_REPLY_TO, &d->reply_to, e) < 0 ||
	    parse_mboxes(d->root, "to", 0, &d->to, e) < 0 ||
	    parse_mboxes(d->root, "cc", 0, &d->cc, e) < 0 ||
	    parse_mboxes(d->root, "bcc", 0, &d->bcc, e) < 0)
		return -1;
	size_t n = d->to.n + d->cc.n + d->bcc.n;
	if (n == 0)
		return bad(e, 400, "invalid_request", "no recipient: give to, cc or bcc");
	if (!(d->rcpts = calloc(n, sizeof *d->rcpts)))
		return bad(e, 500, "internal", "out of memory");
	d->nrcpts = 0;
	add_rcpts(d, &d->to);
	add_rcpts(d, &d->cc);
	add_rcpts(d, &d->bcc);
	return 0;
}

/* parse_content - subject, text, html; something must be sent. */
static int parse_content(struct draft *d, struct api_error *e)
{
	if (get_text(d->root, "subject", &d->subject, e) < 0 ||
	    get_text(d->root, "text", &d->text, e) < 0 || get_text(d->root, "html", &d->html, e) < 0)
		return -1;
	if (d->subject) {
		size_t len = strlen(d->subject);
		if (len > MIME_FIELD_VALUE_MAX)
			return bad(e, 400, "invalid_header", "subject is longer than %d bytes",
				   MIME_FIELD_VALUE_MAX);
		if (!mime_header_text_ok(d->subject, len))
			return bad(e, 400, "invalid_header", "subject contains a line break or "
				   "another control character");
	}
	if (!d->text && !d->html && d->natts == 0)
		return bad(e, 400, "invalid_request", "nothing to send: give text, html or "
			   "attachments");
	return 0;
}

/* parse_body - the request body into D. */
static int parse_body(struct api_request *r, struct draft *d, struct api_error *e)
{
	struct evkeyvalq *in = evhttp_request_get_input_headers(r->req);
	const char *ctype = evhttp_find_header(in, "Content-Type");
	if (ctype && (strncasecmp(ctype, "application/json", 16) != 0 ||
		      (ctype[16] && ctype[16] != ';' && ctype[16] != ' ')))
		return bad(e, 415, "unsupported_media_type", "the body must be application/json");
	struct evbuffer *body = evhttp_request_get_input_buffer(r->req);
	size_t len = evbuffer_get_length(body);
	const char *data = len ? (const char *)evbuffer_pullup(body, -1) : "";
	json_error_t jerr;
	if (len && !data)
		return bad(e, 500, "internal", "out of memory");
	d->root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!d->root)
		return bad(e, 400, "invalid_json", "the body is not valid JSON: %s (line %d, "
			   "column %d)", jerr.text, jerr.line, jerr.column);
	if (!json_is_object(d->root))
		return bad(e, 400, "invalid_json", "the body must be a JSON object");
	const struct config *cfg = &r->srv->settings->cfg;
	if (check_known(d->root, known_fields, sizeof known_fields / sizeof known_fields[0], "",
			e) < 0 ||
	    parse_addresses(d, cfg->max_recipients, e) < 0 || parse_fields(d, e) < 0 ||
	    parse_attachments(d, e) < 0 || parse_tags(d, e) < 0 || parse_content(d, e) < 0)
		return -1;
	return 0;
}

/* check_policy - the sending rules of SMTP submission: the key's user owns
 * the sender; recipients in hosted domains exist. */
static int check_policy(struct api_request *r, struct draft *d, struct api_error *e)
{
	const struct directory *dir = r->srv->dir;
	if (!r->who.admin && !directory_owns(dir, r->who.user, d->from.addr))
		return bad(e, 403, "forbidden_sender", "%s may not send as %s", r->who.user,
			   d->from.addr);
	for (size_t i = 0; i < d->nrcpts; i++) {
		struct dir_target targets[16];
		size_t n = 0;
		switch (directory_resolve(dir, d->rcpts[i], targets, 16, &n)) {
		case DIR_UNKNOWN:
			return bad(e, 422, "unknown_recipient", "no such user here: %s",
				   d->rcpts[i]);
		case DIR_LOOP:
			return bad(e, 422, "recipient_loop", "the aliases of %s loop", d->rcpts[i]);
		case DIR_OK:
		case DIR_NOT_LOCAL:
			break;
		}
	}
	return 0;
}

/* ---- commit ---- */

/* A message on its way to the spool, answered when the commit is done. */
struct api_send {
	struct http_pending pending; /* first: detach gets this pointer */
	struct http_server *srv; /* NULL once detached */
	struct evhttp_request *req;
	struct envelope env;
	char message_id[128];
	char peer[64];
	int64_t key_id;
	char *subject; /* for the message's record */
	char *tags; /* JSON array text */
};

static void send_detach(struct http_pending *p)
{
	struct api_send *s = (struct api_send *)p;
	s->srv = NULL;
	s->req = NULL;
}

/* commit_done - the spool answered: now, and only now, say 202. */
static void commit_done(void *arg, int ok, int errnum)
{
	struct api_send *s = arg;
	if (ok)
		log_info("%s: accepted from=<%s> rcpts=%zu size=%llu client=%s api key=%lld",
			 s->env.id, s->env.sender, s->env.nrcpts, (unsigned long long)s->env.size,
			 s->peer, (long long)s->key_id);
	else
		log_error("%s: spool commit failed: %s", s->env.id, strerror(errnum));
	if (s->srv) {
		http_pending_remove(s->srv, &s->pending);
		if (ok) {
			queue_add(s->srv->ctx->queue, &s->env);
			api_record_accepted(s->srv, &s->env, s->subject, s->tags);
		}
		json_t *rcpts = json_array();
		for (size_t i = 0; rcpts && i < s->env.nrcpts; i++)
			json_array_append_new(rcpts, json_string(s->env.rcpts[i].address));
		if (ok) {
			http_reply_json(s->req, 202,
					json_pack("{s:s,s:s,s:o}", "id", s->env.id, "message_id",
						  s->message_id, "recipients", rcpts));
		} else {
			json_decref(rcpts);
			http_reply_error(s->req, 503, "unavailable",
					 "the message could not be stored (%s); try again later",
					 strerror(errnum));
		}
	}
	envelope_free(&s->env);
	free(s->subject);
	free(s->tags);
	free(s);
}

/* trace_field - our Received field (RFC 5321 4.4), naming the client and
 * the key, "with HTTP" (the IANA mail transmission type for HTTP). */
static void trace_field(struct api_request *r, const char *id, char *out, size_t outlen)
{
	const struct config *cfg = &r->srv->settings->cfg;
	char date[64], who[API_USER_MAX + 64];
	mime_format_date(time(NULL), date, sizeof date);
	if (r->who.admin)
		snprintf(who, sizeof who, "admin key %lld", (long long)r->who.key_id);
	else
		snprintf(who, sizeof who, "key %lld of %s", (long long)r->who.key_id, r->who.user);
	snprintf(out, outlen, "Received: from [%s%s]\r\n\t(authenticated by %s)\r\n"
		 "\tby %s (tern) with HTTP id %s;\r\n\t%s\r\n",
		 strchr(r->peer, ':') ? "IPv6:" : "", r->peer, who, cfg->hostname, id, date);
}

/* build_send - compose the message of D and its envelope into a new
 * api_send; the body into *BODY.  NULL after setting E. */
static struct api_send *build_send(struct api_request *r, struct draft *d,
				   struct evbuffer **body, struct api_error *e)
{
	const struct config *cfg = &r->srv->settings->cfg;
	struct api_send *s = calloc(1, sizeof *s);
	struct evbuffer *b = evbuffer_new();
	char trace[API_USER_MAX + 512], rnd_hex[17];
	unsigned char rnd[8];
	if (!s || !b)
		goto oom;
	envelope_init(&s->env);
	spool_new_id(r->srv->ctx->spool, s->env.id);
	randombytes_buf(rnd, sizeof rnd);
	sodium_bin2hex(rnd_hex, sizeof rnd_hex, rnd, sizeof rnd);
	snprintf(s->message_id, sizeof s->message_id, "<%s.%s@%.80s>", s->env.id, rnd_hex,
		 cfg->hostname);
	trace_field(r, s->env.id, trace, sizeof trace);
	struct mime_message m = {
		.trace = trace, .date = time(NULL), .from = { d->from.name, d->from.addr },
		.reply_to = d->reply_to.views, .nreply_to = d->reply_to.n,
		.to = d->to.views, .nto = d->to.n, .cc = d->cc.views, .ncc = d->cc.n,
		.subject = d->subject, .message_id = s->message_id,
		.fields = d->fields, .nfields = d->nfields, .text = d->text, .html = d->html,
		.attachments = d->atts, .nattachments = d->natts,
	};
	if (mime_compose(&m, b) < 0)
		goto oom;
	if (evbuffer_get_length(b) > cfg->max_message_size) {
		bad(e, 413, "message_too_large", "the message would be %zu bytes; the limit is "
		    "%llu", evbuffer_get_length(b), (unsigned long long)cfg->max_message_size);
		goto fail;
	}
	s->env.sender = strdup(d->from.addr);
	s->env.auth_user = r->who.admin ? NULL : strdup(r->who.user);
	s->env.client_addr = strdup(r->peer);
	s->env.received = time(NULL);
	s->env.size = evbuffer_get_length(b);
	if (!s->env.sender || (!r->who.admin && !s->env.auth_user) || !s->env.client_addr)
		goto oom;
	for (size_t i = 0; i < d->nrcpts; i++)
		if (envelope_add_rcpt(&s->env, d->rcpts[i], NULL, 0) < 0)
			goto oom;
	*body = b;
	return s;
oom:
	bad(e, 500, "internal", "out of memory");
fail:
	if (s)
		envelope_free(&s->env);
	free(s);
	if (b)
		evbuffer_free(b);
	return NULL;
}

void api_messages_post(struct api_request *r)
{
	struct draft d = { 0 };
	struct api_error e = { 0 };
	struct evbuffer *body = NULL;
	struct api_send *s = NULL;
	if (!r->srv->ctx->spool || !r->srv->ctx->queue) {
		http_reply_error(r->req, 503, "unavailable", "not ready to accept mail");
		return;
	}
	struct api_refusal refusal;
	if (parse_body(r, &d, &e) == 0 && check_policy(r, &d, &e) == 0 &&
	    api_send_limits(r, d.rcpts, d.nrcpts, &refusal) < 0) {
		log_info("http %s: message refused: %d %s", r->peer, refusal.status, refusal.code);
		api_refusal_reply(r->req, &refusal);
		draft_free(&d);
		return;
	}
	if (e.status || !(s = build_send(r, &d, &body, &e))) {
		char safe[160];
		log_info("http %s: message refused: %d %s: %s", r->peer, e.status, e.code,
			 log_sanitize(safe, sizeof safe, e.message, strlen(e.message)));
		if (e.status == 403 || e.status == 422) /* the rules, not the syntax */
			api_record_rejection(r, NULL, e.status, e.message);
		http_reply_error(r->req, e.status, e.code, "%s", e.message);
		draft_free(&d);
		return;
	}
	s->subject = strdup(d.subject ? d.subject : "");
	json_t *tags = json_object_get(d.root, "tags");
	s->tags = json_is_array(tags) ? json_dumps(tags, JSON_COMPACT) : NULL;
	draft_free(&d);
	s->srv = r->srv;
	s->req = r->req;
	s->key_id = r->who.key_id;
	s->pending.detach = send_detach;
	snprintf(s->peer, sizeof s->peer, "%s", r->peer);
	http_pending_add(r->srv, &s->pending);
	spool_commit(r->srv->ctx->spool, &s->env, body, commit_done, s);
}
