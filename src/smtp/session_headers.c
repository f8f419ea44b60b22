/* session_headers.c - what the server reads and adds in a message's header
 * block before it is committed: the hop count (RFC 5321 6.3: a message
 * that has passed too many relays is looping) and, for submission, the
 * Date and Message-ID a client left out (RFC 6409 8.2, 8.3).
 *
 * Only the first HEADER_WINDOW bytes are examined: a header block longer
 * than that is not completed, and its Received lines beyond the window are
 * not counted. */
#include <event2/buffer.h>
#include <sodium.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "smtp/session.h"

#define HEADER_WINDOW (256 * 1024)
#define MAX_HOPS 100 /* Postfix uses 50; some legitimate paths are long */

/* header_block - the client's header block (after our Received) within
 * the window: its start and length including the final CRLF, or NULL. */
static const char *header_block(struct session *s, struct evbuffer *body, size_t *len)
{
	size_t total = evbuffer_get_length(body);
	size_t window = total < HEADER_WINDOW ? total : HEADER_WINDOW;
	const char *p = (const char *)evbuffer_pullup(body, (ssize_t)window);
	if (!p || s->received_len > window)
		return NULL;
	const char *start = p + s->received_len;
	size_t rest = window - s->received_len;
	if (rest >= 2 && start[0] == '\r' && start[1] == '\n') {
		*len = 0; /* no headers at all */
		return start;
	}
	const char *end = memmem(start, rest, "\r\n\r\n", 4);
	if (!end) {
		/* No end within the window: count what is there. */
		*len = rest;
		return start;
	}
	*len = (size_t)(end - start) + 2;
	return start;
}

/* header_count - how many fields NAME (with its colon) HDR holds. */
static unsigned header_count(const char *hdr, size_t len, const char *name)
{
	size_t nlen = strlen(name);
	unsigned n = 0;
	for (size_t i = 0; i + nlen <= len;) {
		if (strncasecmp(hdr + i, name, nlen) == 0)
			n++;
		const char *nl = memchr(hdr + i, '\n', len - i);
		if (!nl)
			break;
		i = (size_t)(nl - hdr) + 1;
	}
	return n;
}

/* header_value - the first field NAME (with its colon) of HDR, unfolded
 * (RFC 5322 2.2.3), leading blanks dropped, into OUT ("" when absent). */
static void header_value(const char *hdr, size_t len, const char *name, char *out,
			 size_t outlen)
{
	size_t nlen = strlen(name), o = 0;
	const char *end = hdr + len, *line = hdr;
	while (line < end && !(end - line >= (ptrdiff_t)nlen && !strncasecmp(line, name, nlen))) {
		const char *nl = memchr(line, '\n', (size_t)(end - line));
		line = nl ? nl + 1 : end;
	}
	/* The field, then its continuation lines (those starting with a blank). */
	for (const char *c = line + nlen; line < end && c < end && o + 1 < outlen; c++) {
		if (*c == '\r' || *c == '\n') {
			const char *next = memchr(c, '\n', (size_t)(end - c));
			if (!next || next + 1 >= end || (next[1] != ' ' && next[1] != '\t'))
				break;
			c = next;
			continue;
		}
		if (o > 0 || (*c != ' ' && *c != '\t'))
			out[o++] = *c == '\t' ? ' ' : *c;
	}
	out[o] = '\0';
}

char *session_subject(struct session *s, struct evbuffer *body)
{
	char subject[998 + 1]; /* one header line (RFC 5322 2.1.1) */
	size_t len;
	const char *hdr = header_block(s, body, &len);
	subject[0] = '\0';
	if (hdr)
		header_value(hdr, len, "subject:", subject, sizeof subject);
	return strdup(subject);
}

int session_hops_exceeded(struct session *s, struct evbuffer *body)
{
	size_t len;
	const char *hdr = header_block(s, body, &len);
	return hdr && header_count(hdr, len, "received:") + 1 > MAX_HOPS;
}

int session_complete_headers(struct session *s, struct evbuffer **body)
{
	size_t hlen;
	const char *start = header_block(s, *body, &hlen);
	if (!start || (hlen && memcmp(start + hlen - 2, "\r\n", 2) != 0))
		return 0;
	int need_date = !header_count(start, hlen, "date:");
	int need_id = !header_count(start, hlen, "message-id:");
	if (!need_date && !need_id)
		return 0;
	struct evbuffer *out = evbuffer_new();
	if (!out)
		return -1;
	evbuffer_remove_buffer(*body, out, s->received_len);
	if (need_date) {
		char date[64];
		time_t now = time(NULL);
		struct tm tm;
		localtime_r(&now, &tm);
		strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S %z", &tm);
		evbuffer_add_printf(out, "Date: %s\r\n", date);
	}
	if (need_id) {
		unsigned char rnd[8];
		char hex[17];
		randombytes_buf(rnd, sizeof rnd);
		sodium_bin2hex(hex, sizeof hex, rnd, sizeof rnd);
		evbuffer_add_printf(out, "Message-ID: <%s.%s@%s>\r\n", s->env.id, hex,
				    s->settings->cfg.hostname);
	}
	evbuffer_add_buffer(out, *body);
	evbuffer_free(*body);
	*body = out;
	return 0;
}
