/* client_send.c - one transaction of the outgoing client: RSET, MAIL and
 * the RCPTs (pipelined when offered), DATA, the body dot-stuffed from a
 * file, per-recipient results (see client.h; RFC 5321 3.3, 4.1.1.4, 4.5.2,
 * 4.5.3.2; RFC 2920; RFC 1870; RFC 6152; RFC 6531; RFC 3461). */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "smtp/client_private.h"
#include "smtp/command.h"

#define PATH_MAX_LEN 512 /* an address we are willing to put in MAIL/RCPT */

enum cmd { CMD_RSET, CMD_MAIL, CMD_RCPT };

/* client_tx_finish - hand the outcome over.  The transaction is taken off the
 * client first: the callback may start the next one, or free the client. */
void client_tx_finish(struct smtp_client *c)
{
	struct client_tx t = c->tx;
	memset(&c->tx, 0, sizeof c->tx);
	c->in_tx = 0;
	if (c->state != ST_DEAD)
		c->state = ST_READY;
	evtimer_del(c->timer);
	if (c->bev)
		bufferevent_set_timeouts(c->bev, NULL, NULL);
	t.cb(c, &t.final, t.res, t.msg->nrcpts, t.arg);
	free(t.res);
	free(t.live);
}

/* client_tx_decide - RES for every recipient still open or accepted so far. */
void client_tx_decide(struct client_tx *t, const struct smtp_client_result *res)
{
	for (size_t i = 0; i < t->nlive; i++) {
		struct smtp_client_result *r = &t->res[t->live[i]];
		if (r->code == 0 || r->code / 100 == 2)
			*r = *res;
	}
	t->final = *res;
}

/* stuff - one chunk of the body into OUT (room for 2 * LEN + 2 bytes): bare
 * CR and bare LF become CRLF, a dot at the start of a line is doubled
 * (RFC 5321 4.5.2).  State carries over to the next chunk. */
static size_t stuff(struct client_tx *t, const char *in, size_t len, char *out)
{
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		char ch = in[i];
		if (t->pending_cr) {
			t->pending_cr = 0;
			out[o++] = '\r';
			out[o++] = '\n';
			t->at_bol = 1;
			if (ch == '\n')
				continue;
		}
		if (ch == '\r') {
			t->pending_cr = 1;
			continue;
		}
		if (ch == '\n') {
			out[o++] = '\r';
			out[o++] = '\n';
			t->at_bol = 1;
			continue;
		}
		if (t->at_bol && ch == '.')
			out[o++] = '.';
		out[o++] = ch;
		t->at_bol = 0;
	}
	return o;
}

/* end_body - close the last line if needed, then "." (RFC 5321 4.1.1.4). */
static void end_body(struct smtp_client *c)
{
	struct client_tx *t = &c->tx;
	char tail[8];
	size_t n = 0;
	if (t->pending_cr || !t->at_bol) {
		memcpy(tail, "\r\n", 2);
		n = 2;
	}
	memcpy(tail + n, ".\r\n", 3);
	evbuffer_add(bufferevent_get_output(c->bev), tail, n + 3);
	c->state = ST_DOT;
	client_set_deadline(c, c->to.data_final, "the reply to the end of data");
}

/* client_tx_pump_body - keep the output buffer fed, one bounded chunk at a time. */
void client_tx_pump_body(struct smtp_client *c)
{
	struct client_tx *t = &c->tx;
	struct evbuffer *out = bufferevent_get_output(c->bev);
	char enc[2 * SMTP_CLIENT_BODY_CHUNK + 2];
	while (c->state == ST_BODY && evbuffer_get_length(out) < SMTP_CLIENT_OUT_HIGH) {
		uint64_t left = t->msg->length - t->body_off;
		if (left == 0) {
			end_body(c);
			return;
		}
		size_t want = left < sizeof c->chunk ? (size_t)left : sizeof c->chunk;
		ssize_t n = pread(t->msg->fd, c->chunk, want, t->msg->offset + (off_t)t->body_off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			/* Half a body is out: only closing without "." is safe. */
			client_fail(c, 451, "4.3.0", "cannot read the message: %s",
				    n < 0 ? strerror(errno) : "file shorter than its length");
			return;
		}
		evbuffer_add(out, enc, stuff(t, c->chunk, (size_t)n, enc));
		t->body_off += (uint64_t)n;
	}
}

static void start_body(struct smtp_client *c)
{
	struct timeval block = {c->to.data_block / 1000, (long)(c->to.data_block % 1000) * 1000};
	c->state = ST_BODY;
	c->tx.at_bol = 1;
	evtimer_del(c->timer);
	bufferevent_set_timeouts(c->bev, NULL, &block);
	bufferevent_setwatermark(c->bev, EV_WRITE, SMTP_CLIENT_OUT_HIGH / 2, 0);
	client_tx_pump_body(c);
}

static enum cmd cmd_at(const struct client_tx *t, size_t i, size_t *rcpt)
{
	if (i < (size_t)t->rset)
		return CMD_RSET;
	if (i == (size_t)t->rset)
		return CMD_MAIL;
	*rcpt = t->live[i - (size_t)t->rset - 1];
	return CMD_RCPT;
}

/* xtext_ok - a DSN value we can pass on as it came (RFC 3461 4). */
static int xtext_ok(const char *s, size_t max)
{
	size_t n = 0;
	for (; s && s[n]; n++)
		if (s[n] < 0x21 || s[n] > 0x7e || s[n] == '=')
			return 0;
	return s && n > 0 && n <= max;
}

/* write_mail - MAIL FROM with the parameters the peer announced. */
static void write_mail(struct smtp_client *c)
{
	const struct smtp_client_msg *m = c->tx.msg;
	unsigned ext = c->ehlo.ext;
	char params[256] = "";
	size_t n = 0;
	if (ext & SMTP_EXT_SIZE)
		n += (size_t)snprintf(params + n, sizeof params - n, " SIZE=%" PRIu64, m->length);
	if ((m->body_8bit || m->smtputf8) && (ext & SMTP_EXT_8BITMIME))
		n += (size_t)snprintf(params + n, sizeof params - n, " BODY=8BITMIME");
	if (m->smtputf8)
		n += (size_t)snprintf(params + n, sizeof params - n, " SMTPUTF8");
	if ((ext & SMTP_EXT_DSN) && m->ret != SMTP_RET_UNSET)
		n += (size_t)snprintf(params + n, sizeof params - n, " RET=%s",
				      m->ret == SMTP_RET_FULL ? "FULL" : "HDRS");
	if ((ext & SMTP_EXT_DSN) && xtext_ok(m->envid, SMTP_ENVID_MAX))
		snprintf(params + n, sizeof params - n, " ENVID=%s", m->envid);
	client_send_line(c, "MAIL FROM:<%s>%s", m->sender, params);
}

static void write_rcpt(struct smtp_client *c, const struct smtp_client_rcpt *r)
{
	char params[SMTP_ORCPT_MAX + 64] = "";
	size_t n = 0;
	if ((c->ehlo.ext & SMTP_EXT_DSN) && r->notify != SMTP_NOTIFY_UNSET) {
		if (r->notify & SMTP_NOTIFY_NEVER) {
			n += (size_t)snprintf(params, sizeof params, " NOTIFY=NEVER");
		} else {
			const char *sep = " NOTIFY=";
			static const struct {
				unsigned bit;
				const char *name;
			} kw[] = {{SMTP_NOTIFY_SUCCESS, "SUCCESS"},
				  {SMTP_NOTIFY_FAILURE, "FAILURE"},
				  {SMTP_NOTIFY_DELAY, "DELAY"}};
			for (size_t i = 0; i < 3; i++) {
				if (!(r->notify & kw[i].bit))
					continue;
				n += (size_t)snprintf(params + n, sizeof params - n, "%s%s", sep,
						      kw[i].name);
				sep = ",";
			}
		}
	}
	if ((c->ehlo.ext & SMTP_EXT_DSN) && xtext_ok(r->orcpt, SMTP_ORCPT_MAX))
		snprintf(params + n, sizeof params - n, " ORCPT=%s", r->orcpt);
	client_send_line(c, "RCPT TO:<%s>%s", r->address, params);
}

static unsigned cmd_timeout(const struct smtp_client *c, enum cmd k)
{
	return k == CMD_RSET ? c->to.helo : k == CMD_MAIL ? c->to.mail : c->to.rcpt;
}

/* tx_pump - write what may be written: everything up to the pipelining
 * window when PIPELINING was offered (RFC 2920 3.1), else one command. */
static void tx_pump(struct smtp_client *c)
{
	struct client_tx *t = &c->tx;
	size_t window = (c->ehlo.ext & SMTP_EXT_PIPELINING) ? SMTP_CLIENT_PIPELINE_MAX : 1;
	size_t rcpt = 0;
	while (t->sent < t->total && t->sent - t->answered < window) {
		switch (cmd_at(t, t->sent++, &rcpt)) {
		case CMD_RSET:
			client_send_line(c, "RSET");
			break;
		case CMD_MAIL:
			write_mail(c);
			break;
		case CMD_RCPT:
			write_rcpt(c, &t->msg->rcpts[rcpt]);
			break;
		}
	}
	if (t->answered < t->sent)
		client_set_deadline(c, cmd_timeout(c, cmd_at(t, t->answered, &rcpt)),
				    "a reply to MAIL, RCPT or RSET");
}

/* client_tx_reply - the reply to the oldest RSET, MAIL or RCPT sent. */
void client_tx_reply(struct smtp_client *c, const struct smtp_client_reply *r)
{
	struct client_tx *t = &c->tx;
	size_t rcpt = 0;
	enum cmd k = cmd_at(t, t->answered++, &rcpt);
	struct smtp_client_result res;
	client_result_reply(&res, r);
	if (k == CMD_RSET && r->code / 100 != 2) {
		client_fail(c, 421, "4.3.0", "RSET refused: %d %s", res.code, res.text);
		return;
	}
	if (k == CMD_RSET) {
		c->need_rset = 0;
	} else if (k == CMD_MAIL) {
		c->need_rset = 1;
		t->mail_ok = r->code / 100 == 2;
		if (!t->mail_ok) {
			client_tx_decide(t, &res);
			if (!(c->ehlo.ext & SMTP_EXT_PIPELINING))
				t->total = t->sent; /* no RCPT after a refused MAIL */
		}
	} else if (t->mail_ok) {
		t->res[rcpt] = res; /* RCPTs after a refused MAIL keep its reply */
		if (r->code / 100 == 2)
			t->accepted++;
		else if (t->accepted == 0)
			t->final = res;
	}
	if (t->answered < t->total) {
		tx_pump(c);
		return;
	}
	if (t->mail_ok && t->accepted) {
		client_send_line(c, "DATA");
		c->state = ST_DATA;
		client_set_deadline(c, c->to.data_init, "the reply to DATA");
	} else {
		client_tx_finish(c);
	}
}

/* client_tx_end_reply - the reply after "." (or one that came early and
 * ended the body: the server gave up, the connection cannot go on). */
void client_tx_end_reply(struct smtp_client *c, const struct smtp_client_reply *r)
{
	struct smtp_client_result res;
	client_result_reply(&res, r);
	client_tx_decide(&c->tx, &res);
	if (c->state == ST_BODY)
		client_close(c);
	else
		c->need_rset = 0; /* the transaction is over, whatever the code */
	client_tx_finish(c);
}

/* client_tx_data_reply - DATA's reply: 354 starts the body, anything else
 * is the word on every recipient accepted so far. */
void client_tx_data_reply(struct smtp_client *c, const struct smtp_client_reply *r)
{
	struct smtp_client_result res;
	if (r->code == 354) {
		start_body(c);
		return;
	}
	client_result_reply(&res, r);
	client_tx_decide(&c->tx, &res);
	client_tx_finish(c);
}

/* path_ok - an address we can put between < and > safely. */
static int path_ok(const char *s, int allow_empty)
{
	size_t n = 0;
	for (; s && s[n]; n++)
		if ((unsigned char)s[n] < 0x20 || s[n] == 0x7f || s[n] == '<' || s[n] == '>')
			return 0;
	return s && (n > 0 || allow_empty) && n <= PATH_MAX_LEN;
}

static int tx_local(struct smtp_client *c, int code, const char *enh, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* tx_local - the transaction is decided without the peer. */
static int tx_local(struct smtp_client *c, int code, const char *enh, const char *fmt, ...)
{
	static const struct timeval now = {0, 0};
	struct smtp_client_result r;
	va_list ap;
	va_start(ap, fmt);
	client_vresult_local(&r, code, enh, fmt, ap);
	va_end(ap);
	for (size_t i = 0; i < c->tx.msg->nrcpts; i++)
		if (c->tx.res[i].code == 0)
			c->tx.res[i] = r;
	c->tx.final = r;
	c->tx.local_done = 1;
	evtimer_add(c->defer, &now);
	return 0;
}

int smtp_client_send(struct smtp_client *c, const struct smtp_client_msg *msg,
		     smtp_client_done_cb cb, void *arg)
{
	if (c->in_tx || !c->connected || !msg->nrcpts || msg->nrcpts > SMTP_CLIENT_RCPTS_MAX ||
	    (c->state != ST_READY && c->state != ST_DEAD))
		return -1;
	struct client_tx *t = &c->tx;
	memset(t, 0, sizeof *t);
	t->res = calloc(msg->nrcpts, sizeof *t->res);
	t->live = calloc(msg->nrcpts, sizeof *t->live);
	if (!t->res || !t->live) {
		free(t->res);
		free(t->live);
		memset(t, 0, sizeof *t);
		return -1;
	}
	t->msg = msg;
	t->cb = cb;
	t->arg = arg;
	c->in_tx = 1;
	unsigned ext = c->ehlo.ext;
	if (c->state == ST_DEAD)
		return tx_local(c, 421, "4.4.2", "the connection to %s is gone", c->peer);
	/* RFC 6531 3.4: never downgrade silently. */
	if (msg->smtputf8 && !(ext & SMTP_EXT_SMTPUTF8))
		return tx_local(c, 553, "5.6.7", "%s does not support SMTPUTF8", c->peer);
	if ((ext & SMTP_EXT_SIZE) && c->ehlo.size && msg->length > c->ehlo.size)
		return tx_local(c, 552, "5.3.4",
				"message size %" PRIu64 " exceeds the limit %" PRIu64 " of %s",
				msg->length, c->ehlo.size, c->peer);
	if (!path_ok(msg->sender, 1))
		return tx_local(c, 553, "5.1.7", "the sender address cannot be sent");
	for (size_t i = 0; i < msg->nrcpts; i++) {
		if (path_ok(msg->rcpts[i].address, 0))
			t->live[t->nlive++] = i;
		else
			client_result_local(&t->res[i], 553, "5.1.3", "the address cannot be sent");
	}
	if (t->nlive == 0)
		return tx_local(c, 553, "5.1.3", "no recipient address can be sent");
	if (msg->body_8bit && !(ext & SMTP_EXT_8BITMIME))
		log_info("smtp client %s: 8-bit message sent without 8BITMIME (RFC 6152 not "
			 "offered)",
			 c->peer);
	t->rset = c->need_rset;
	t->total = (size_t)t->rset + 1 + t->nlive;
	c->state = ST_TX;
	tx_pump(c);
	return 0;
}
