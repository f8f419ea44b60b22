/* fuzz_api_json.c - libFuzzer target for the request parsing of POST
 * /v1/messages (http/api_messages.c; RFC 8259 JSON, RFC 5321 4.1.2
 * mailboxes, RFC 5322 3.6.8 optional fields, RFC 4648 4 base64).
 *
 * The body of an API request is whatever a key holder sends.  The parser
 * is static and takes the evhttp request, so this file includes
 * api_messages.c (as fuzz_dns.c includes mx.c) and calls its parse_body
 * with a real evhttp_request built without a connection: the input is the
 * body, its length picks the Content-Type (none, plain, with charset).
 * The functions of the server, the spool, the queue and the directory
 * that the rest of the file calls are never reached from parse_body; here
 * they abort.  Checked beyond memory safety and leaks (draft_free must
 * release everything, accepted or refused):
 *   - a refusal is 400, 415 or 500 with a code and a message;
 *   - an accepted draft has a checked sender, 1 to max_recipients
 *     envelope recipients, each once (case-insensitively) and each one of
 *     to/cc/bcc, custom fields the composer allows, a clean subject and
 *     something to send;
 *   - the draft composes into a message with CRLF line ends only, no bare
 *     CR or LF, no NUL, no line over 998 octets, 7-bit throughout, whose
 *     header has no Bcc field (check_message in fuzz_check.h). */
#include "../../src/http/api_messages.c"

#include <stdint.h>

#include "fuzz_check.h"

#define FUZZ_INPUT_MAX 65536
#define FUZZ_MAX_RCPTS 20

/* ---- never reached from parse_body ---- */

int directory_owns(const struct directory *dir, const char *user, const char *address)
{
	abort();
}

enum dir_result directory_resolve(const struct directory *dir, const char *address,
				  struct dir_target *out, size_t max, size_t *n)
{
	abort();
}

void http_pending_add(struct http_server *srv, struct http_pending *p)
{
	abort();
}

void http_pending_remove(struct http_server *srv, struct http_pending *p)
{
	abort();
}

void http_reply_json(struct evhttp_request *req, int status, json_t *body)
{
	abort();
}

void http_reply_error(struct evhttp_request *req, int status, const char *code, const char *fmt,
		      ...)
{
	abort();
}

void queue_add(struct queue *q, const struct envelope *env)
{
	abort();
}

void spool_new_id(struct spool *sp, char *out)
{
	abort();
}

void spool_commit(struct spool *sp, const struct envelope *env, struct evbuffer *body,
		  spool_commit_cb cb, void *arg)
{
	abort();
}

int api_send_limits(struct api_request *r, const char *const *rcpts, size_t n,
		    struct api_refusal *out)
{
	abort();
}

void api_refusal_reply(struct evhttp_request *req, const struct api_refusal *a)
{
	abort();
}

void api_record_rejection(struct api_request *r, const char *rcpt, int status, const char *why)
{
	abort();
}

void api_record_accepted(struct http_server *srv, const struct envelope *env,
			 const char *subject, const char *tags_json)
{
	abort();
}

/* ---- checks ---- */

static int in_list(const struct mbox_list *l, const char *addr)
{
	for (size_t i = 0; i < l->n; i++)
		if (l->views[i].address == l->boxes[i].addr && !strcmp(l->boxes[i].addr, addr))
			return 1;
	return 0;
}

/* check_mbox - M as parse_mbox leaves it: an address that re-parses to
 * itself, a display name of header text. */
static void check_mbox(const struct mbox *m)
{
	struct address a;
	const char *why;
	char again[sizeof m->addr];
	check(m->addr[0] && memchr(m->addr, '\0', sizeof m->addr));
	check(address_parse_mailbox(m->addr, strlen(m->addr), 0, &a, &why) == 0 && a.domain[0]);
	check(address_format(&a, again, sizeof again) >= 0 && !strcmp(again, m->addr));
	check(memchr(m->name, '\0', sizeof m->name));
	check(mime_header_text_ok(m->name, strlen(m->name)));
}

/* check_draft - what an accepted request promises the composer and the
 * envelope. */
static void check_draft(const struct draft *d)
{
	check(json_is_object(d->root));
	check_mbox(&d->from);
	check(d->nrcpts >= 1 && d->nrcpts <= FUZZ_MAX_RCPTS);
	check(d->reply_to.n <= MAX_REPLY_TO);
	const struct mbox_list *lists[] = {&d->reply_to, &d->to, &d->cc, &d->bcc};
	for (size_t l = 0; l < 4; l++)
		for (size_t i = 0; i < lists[l]->n; i++)
			check_mbox(&lists[l]->boxes[i]);
	for (size_t i = 0; i < d->nrcpts; i++) {
		check(in_list(&d->to, d->rcpts[i]) || in_list(&d->cc, d->rcpts[i]) ||
		      in_list(&d->bcc, d->rcpts[i]));
		for (size_t j = 0; j < i; j++)
			check(strcasecmp(d->rcpts[i], d->rcpts[j]) != 0);
	}
	check(d->nfields <= MAX_FIELDS + 1);
	for (size_t i = 0; i < d->nfields; i++) {
		const struct mime_field *f = &d->fields[i];
		int tags = !strcmp(f->name, "X-Tern-Tags") && f->value == d->tags;
		check(mime_field_name_ok(f->name) && (tags || !mime_field_reserved(f->name)));
		check(strlen(f->value) <= MIME_FIELD_VALUE_MAX);
		check(mime_header_text_ok(f->value, strlen(f->value)));
	}
	if (d->subject)
		check(mime_header_text_ok(d->subject, strlen(d->subject)) &&
		      strlen(d->subject) <= MIME_FIELD_VALUE_MAX);
	check(d->text || d->html || d->natts);
	for (size_t i = 0; i < d->natts; i++) {
		check(mime_filename_ok(d->atts[i].filename));
		check(mime_content_type_ok(d->atts[i].content_type));
		check(d->atts[i].data != NULL);
	}
}

/* compose - the draft as build_send would compose it. */
static void compose(const struct draft *d)
{
	struct mime_message m = {
		.date = 1700000000,
		.from = {d->from.name, d->from.addr},
		.reply_to = d->reply_to.views,
		.nreply_to = d->reply_to.n,
		.to = d->to.views,
		.nto = d->to.n,
		.cc = d->cc.views,
		.ncc = d->cc.n,
		.subject = d->subject,
		.message_id = "<0123456789abcdef.fuzz@mx.example.org>",
		.fields = d->fields,
		.nfields = d->nfields,
		.text = d->text,
		.html = d->html,
		.attachments = d->atts,
		.nattachments = d->natts,
	};
	struct evbuffer *out = evbuffer_new();
	check(out != NULL);
	check(mime_compose(&m, out) == 0);
	size_t len = evbuffer_get_length(out);
	const char *msg = (const char *)evbuffer_pullup(out, -1);
	check(msg != NULL);
	check_message(msg, len, "Bcc");
	evbuffer_free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const ctypes[] = {NULL, "application/json",
					     "application/json; charset=utf-8"};
	if (size > FUZZ_INPUT_MAX)
		return 0;
	struct evhttp_request *req = evhttp_request_new(NULL, NULL);
	check(req != NULL);
	const char *ctype = ctypes[size % 3];
	if (ctype)
		check(evhttp_add_header(evhttp_request_get_input_headers(req), "Content-Type",
					ctype) == 0);
	check(evbuffer_add(evhttp_request_get_input_buffer(req), data, size) == 0);

	struct settings st = {.refs = 1};
	st.cfg.max_recipients = FUZZ_MAX_RCPTS;
	struct http_server srv = {.settings = &st};
	struct api_request r = {.srv = &srv, .req = req, .path = "/v1/messages"};
	snprintf(r.peer, sizeof r.peer, "192.0.2.1");
	struct draft d = {0};
	struct api_error e = {0};

	if (parse_body(&r, &d, &e) < 0) {
		check(e.status == 400 || e.status == 415 || e.status == 500);
		check(e.code != NULL && e.code[0] && e.message[0]);
		check(memchr(e.message, '\0', sizeof e.message));
	} else {
		check(e.status == 0);
		check_draft(&d);
		compose(&d);
	}
	draft_free(&d);
	evhttp_request_free(req);
	return 0;
}
