/* dsn.c - bounces, delay warnings and success reports as RFC 3464 delivery
 * status notifications (see dsn.h for the message's shape).
 *
 * RFC 3461 4.1 (NOTIFY), 4.2 (ORCPT), 4.3 (RET), 4.4 (ENVID), 6.2 (the
 * null reverse path); RFC 3464 2.1-2.3 (the report's fields); RFC 6522
 * (multipart/report); RFC 3463 (status codes); RFC 3834 5 (Auto-Submitted);
 * RFC 6533 3 and 6 (utf-8 addresses, message/global-headers); RFC 5322 2.1.1
 * and 2.2.3 (998-octet lines, folding); RFC 2046 5.1.1 (boundaries).
 *
 * Everything written is built from bounded pieces: reply texts are cut at
 * DSN_TEXT_MAX, every line is folded below 998 octets, the original is
 * read at most DSN_FULL_MAX (whole) or DSN_HEADERS_MAX (headers) octets.
 * The values written into the fields (statuses, decoded xtext, cleaned
 * text, addresses) come from the encoders of dsn_encode.c. */
#include "queue/dsn.h"

#include <errno.h>
#include <event2/buffer.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <unistd.h>

#include "queue/dsn_private.h"
#include "smtp/command.h"

#define SOFT_WIDTH	78   /* RFC 5322 2.1.1 SHOULD */
#define HARD_WIDTH	980  /* break here when no space allows better (< 998) */
#define LINE_MAX_OCTETS 998  /* RFC 5322 2.1.1 MUST, CRLF excluded */

/* ---------------------------------------------------------------- policy */

int dsn_wants(const char *sender, unsigned notify, enum dsn_kind kind, int sender_is_local)
{
	if (!sender || !*sender || (notify & SMTP_NOTIFY_NEVER))
		return 0;
	switch (kind) {
	case DSN_FAILURE:
		return notify == SMTP_NOTIFY_UNSET || (notify & SMTP_NOTIFY_FAILURE) != 0;
	case DSN_DELAY:
		if (notify == SMTP_NOTIFY_UNSET)
			return sender_is_local != 0;
		return (notify & SMTP_NOTIFY_DELAY) != 0;
	case DSN_SUCCESS:
		return (notify & SMTP_NOTIFY_SUCCESS) != 0;
	}
	return 0;
}

/* -------------------------------------------------------------- writing */

/* Output with a sticky failure flag: allocation failure is checked once,
 * at the end, instead of after every line. */
struct out {
	struct evbuffer *b;
	int failed;
};

static void put(struct out *o, const void *p, size_t n)
{
	if (!o->failed && n && evbuffer_add(o->b, p, n) < 0)
		o->failed = 1;
}

static void puts_crlf(struct out *o, const char *s)
{
	put(o, s, strlen(s));
	put(o, "\r\n", 2);
}

__attribute__((format(printf, 2, 3))) static void putf(struct out *o, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (!o->failed && evbuffer_add_vprintf(o->b, fmt, ap) < 0)
		o->failed = 1;
	va_end(ap);
}

/* put_folded - PREFIX and TEXT (one line) as lines of at most SOFT_WIDTH
 * octets where a space allows, never more than HARD_WIDTH.  With INDENT
 * NULL (a header field) a break goes before a space, which begins the next
 * line (RFC 5322 2.2.3 folding, undone by unfolding); where no space
 * allows, CRLF and a space are inserted.  With an INDENT (body text) the
 * space is dropped and the next line starts with INDENT. */
static void put_folded(struct out *o, const char *prefix, const char *text, const char *indent)
{
	size_t col = strlen(prefix), len = strlen(text);
	const char *p = text;
	put(o, prefix, col);
	while (len > 0) {
		size_t soft = col + 1 < SOFT_WIDTH ? SOFT_WIDTH - col : 1;
		size_t hard = HARD_WIDTH - col, cut = 0;
		if (len <= soft)
			break;
		for (size_t i = soft < len ? soft : len - 1; i >= 1 && !cut; i--)
			if (p[i] == ' ')
				cut = i;
		for (size_t i = soft + 1; i < len && i <= hard && !cut; i++)
			if (p[i] == ' ')
				cut = i;
		int forced = !cut;
		if (forced) {
			if (len <= hard)
				break;
			cut = hard; /* never inside a UTF-8 sequence */
			while (cut > 1 && ((unsigned char)p[cut] & 0xC0) == 0x80)
				cut--;
		}
		put(o, p, cut);
		put(o, "\r\n", 2);
		p += cut, len -= cut, col = 0;
		if (indent) {
			while (len && *p == ' ')
				p++, len--;
			col = strlen(indent);
			put(o, indent, col);
		} else if (forced) {
			put(o, " ", 1);
			col = 1;
		}
	}
	put(o, p, len);
	put(o, "\r\n", 2);
}

/* fmt_date - RFC 5322 3.3 date-time of T in UTC (no locale involved). */
static void fmt_date(time_t t, char *out, size_t outlen)
{
	static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
	static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
					   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	struct tm tm;
	if (!gmtime_r(&t, &tm) || tm.tm_year < 0 || tm.tm_year > 8099) {
		time_t zero = 0;
		gmtime_r(&zero, &tm);
	}
	snprintf(out, outlen, "%s, %d %s %d %02d:%02d:%02d +0000", days[tm.tm_wday % 7], tm.tm_mday,
		 months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* put_date - "NAME: date-time" of T. */
static void put_date(struct out *o, const char *name, time_t t)
{
	char date[64];
	fmt_date(t, date, sizeof date);
	putf(o, "%s: %s\r\n", name, date);
}

/* random_hex - 16 hex digits of randomness for Message-ID and boundary;
 * falls back to the clock, pid and a counter if getrandom fails. */
static void random_hex(char out[17])
{
	static _Atomic unsigned counter; /* workers compose concurrently */
	uint64_t v = 0;
	if (getrandom(&v, sizeof v, GRND_NONBLOCK) != (ssize_t)sizeof v)
		v = ((uint64_t)time(NULL) << 24) ^ ((uint64_t)getpid() << 8) ^ ++counter;
	snprintf(out, 17, "%016llx", (unsigned long long)v);
}

/* keep_id_chars - S reduced to [0-9A-Za-z._-], at most OUTLEN-1 of them. */
static void keep_id_chars(const char *s, char *out, size_t outlen)
{
	size_t o = 0;
	for (; s && *s && o + 1 < outlen; s++)
		if ((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'z') ||
		    (*s >= 'A' && *s <= 'Z') || *s == '.' || *s == '-' || *s == '_')
			out[o++] = *s;
	out[o] = '\0';
}

/* ------------------------------------------------------------ original */

struct original {
	char *data; /* malloc'ed; handed to the output buffer */
	size_t len;
	int full;      /* the whole message, else its header section */
	int eight_bit; /* an octet >= 0x80 in DATA */
	int global;    /* ... and in its header section (RFC 6533 6.3) */
};

/* read_at - exactly LEN octets at OFF of FD into BUF; EIO when short. */
static int read_at(int fd, long off, char *buf, size_t len)
{
	size_t got = 0;
	while (got < len) {
		ssize_t n = pread(fd, buf + got, len - got, (off_t)off + (off_t)got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0) {
			errno = EIO;
			return -1;
		}
		got += (size_t)n;
	}
	return 0;
}

/* well_formed - may D be sent whole as 8bit MIME content: no NUL, CR and
 * LF only as CRLF, no line over 998 octets (RFC 2045 2.8, RFC 5322 2.1.1)? */
static int well_formed(const char *d, size_t len)
{
	size_t line = 0;
	for (size_t i = 0; i < len; i++) {
		if (d[i] == '\0')
			return 0;
		if (d[i] == '\r') {
			if (i + 1 >= len || d[i + 1] != '\n')
				return 0;
			i++;
			line = 0;
		} else if (d[i] == '\n' || ++line > LINE_MAX_OCTETS) {
			return 0;
		}
	}
	return 1;
}

/* header_end - length of the header section at the start of D (LEN octets
 * read; COMPLETE when that is the whole message), its last CRLF included,
 * the blank line that ends it not. */
static size_t header_end(const char *d, size_t len, int complete)
{
	if (len >= 2 && d[0] == '\r' && d[1] == '\n')
		return 0;
	for (size_t i = 0; i + 3 < len; i++)
		if (!memcmp(d + i, "\r\n\r\n", 4))
			return i + 2;
	if (complete)
		return len;
	for (size_t i = len; i > 0; i--)
		if (d[i - 1] == '\n')
			return i;
	return len;
}

/* headers_copy - the first HLEN octets of D as clean header lines: every
 * line ends in CRLF, is cut at 998 octets, NUL and stray CR become '?'.
 * Returns a malloc'ed copy (length in *OUTLEN) or NULL (ENOMEM). */
static char *headers_copy(const char *d, size_t hlen, size_t *outlen)
{
	char *out = malloc(2 * hlen + 3); /* a bare LF grows to CRLF */
	size_t o = 0, line = 0;
	if (!out)
		return NULL;
	for (size_t i = 0; i < hlen; i++) {
		char c = d[i];
		if (c == '\n' || (c == '\r' && i + 1 < hlen && d[i + 1] == '\n')) {
			i += c == '\r';
			out[o++] = '\r', out[o++] = '\n', line = 0;
			continue;
		}
		if (line++ >= LINE_MAX_OCTETS)
			continue;
		out[o++] = c == '\0' || c == '\r' ? '?' : c;
	}
	if (line > 0)
		out[o++] = '\r', out[o++] = '\n';
	*outlen = o;
	return out;
}

/* read_original - the part of the original message that R asks for: the
 * whole of it with RET=FULL when it fits FULL_MAX and is well formed, its
 * header section otherwise (*HEADERS_ONLY set if FULL was asked). */
static int read_original(const struct dsn_report *r, struct original *o, int *headers_only)
{
	size_t full_max = r->full_max ? r->full_max : DSN_FULL_MAX;
	/* RFC 3461 4.3: RET=FULL asks for the message with failures only; a
	 * report of delays or successes returns the headers. */
	int want_full = r->env->ret == SMTP_RET_FULL && r->kind == DSN_FAILURE;
	int may_full = want_full && r->body_size <= full_max;
	size_t n = r->body_size;
	if (!may_full)
		n = n < DSN_HEADERS_MAX ? n : DSN_HEADERS_MAX;
	char *d = malloc(n ? n : 1);
	if (!d)
		return -1;
	if (read_at(r->body_fd, r->body_offset, d, n) < 0) {
		int e = errno;
		free(d);
		errno = e;
		return -1;
	}
	size_t hlen = n ? header_end(d, n, n == r->body_size) : 0;
	for (size_t i = 0; i < n; i++) {
		if ((unsigned char)d[i] >= 0x80) {
			o->eight_bit = 1;
			o->global |= i < hlen;
		}
	}
	if (may_full && well_formed(d, n)) {
		o->data = d, o->len = n, o->full = 1;
		return 0;
	}
	*headers_only = want_full;
	o->data = headers_copy(d, hlen, &o->len);
	free(d);
	if (!o->data)
		return -1;
	o->eight_bit = o->global; /* only the header section is left */
	return 0;
}

/* ------------------------------------------------------------- the parts */

/* action_of - RC's action, DEFAULT resolved from the report's kind. */
static enum dsn_action action_of(const struct dsn_report *r, const struct dsn_rcpt *rc)
{
	if (rc->action != DSN_ACTION_DEFAULT)
		return rc->action;
	if (r->kind == DSN_FAILURE)
		return DSN_ACTION_FAILED;
	return r->kind == DSN_DELAY ? DSN_ACTION_DELAYED : DSN_ACTION_DELIVERED;
}

/* action_name - RFC 3464 2.3.3 action-value. */
static const char *action_name(enum dsn_action a)
{
	static const char *const name[] = {"failed",	"failed",  "delayed",
					   "delivered", "relayed", "expanded"};
	return a <= DSN_ACTION_EXPANDED ? name[a] : "failed";
}

/* rcpt_status - RFC 3464 2.3.4 Status of RC: its own when it is one, else
 * its reply's when that agrees with the action (failed: class 5 or 4, as
 * an expired message keeps its last 4xx; delayed: 4; the others: 2), else
 * the class's x.0.0. */
static void rcpt_status(const struct dsn_rcpt *rc, enum dsn_action a, char *out)
{
	if (rc->status) {
		size_t n = dsn_status_len(rc->status);
		if (n && !rc->status[n] && n < DSN_STATUS_MAX) {
			memcpy(out, rc->status, n + 1);
			return;
		}
	}
	int want = a == DSN_ACTION_FAILED ? 5 : a == DSN_ACTION_DELAYED ? 4 : 2;
	int cls = dsn_status_from_reply(rc->reply, out);
	if (cls == want || (a == DSN_ACTION_FAILED && cls == 4))
		return;
	snprintf(out, DSN_STATUS_MAX, "%d.0.0", want);
}

/* append - S after the string in DST (CAP bytes), as much as fits. */
static void append(char *dst, size_t cap, const char *s)
{
	size_t l = strlen(dst), n = strlen(s);
	if (l + 1 >= cap)
		return;
	if (n > cap - l - 1)
		n = cap - l - 1;
	memcpy(dst + l, s, n);
	dst[l + n] = '\0';
}

/* rcpt_reason - the explanation of RC for people: its reason, what the
 * remote host said, and for a delay until when it is tried.  Returns 1
 * when OUT holds non-ASCII (a UTF-8 reply text). */
static int rcpt_reason(const struct dsn_rcpt *rc, enum dsn_action a, char *out, size_t cap)
{
	static const char *const plain[] = {
		[DSN_ACTION_FAILED] = "delivery failed",
		[DSN_ACTION_DELAYED] = "delivery temporarily failed; still trying",
		[DSN_ACTION_DELIVERED] = "delivered",
		[DSN_ACTION_RELAYED] = "relayed to a server that sends no delivery notifications",
		[DSN_ACTION_EXPANDED] = "delivered to the members of a list or alias",
	};
	char piece[DSN_TEXT_MAX], mta[300];
	int high = 0;
	memset(out, 0, cap);
	if (rc->reason && *rc->reason) {
		high |= dsn_clean_text(rc->reason, 0, piece, sizeof piece);
		append(out, cap, piece);
	}
	if (rc->reply && *rc->reply) {
		append(out, cap, out[0] ? "; " : "");
		if (rc->remote_mta && *rc->remote_mta) {
			dsn_clean_text(rc->remote_mta, 1, mta, sizeof mta);
			append(out, cap, "host ");
			append(out, cap, mta);
			append(out, cap, " said: ");
		}
		high |= dsn_clean_text(rc->reply, 0, piece, sizeof piece);
		append(out, cap, piece);
	}
	if (!out[0])
		append(out, cap, plain[a > DSN_ACTION_DEFAULT && a <= DSN_ACTION_EXPANDED ? a : 1]);
	if (a == DSN_ACTION_DELAYED && rc->retry_until) {
		char date[64];
		fmt_date(rc->retry_until, date, sizeof date);
		append(out, cap, " (trying until ");
		append(out, cap, date);
		append(out, cap, ")");
	}
	return high;
}

/* put_text_part - the human-readable explanation (RFC 3464 1.1 part 1):
 * what happened, then "<recipient>: reason" per recipient.  Returns 1 when
 * it holds non-ASCII (UTF-8 addresses or replies). */
static int put_text_part(struct out *o, const struct dsn_report *r, const struct original *orig,
			 int headers_only)
{
	char host[300];
	long long late = r->now > r->env->received ? (long long)(r->now - r->env->received) : 0;
	int high = 0;
	dsn_clean_text(r->hostname, 1, host, sizeof host);
	putf(o, "This is the mail system at host %s.\r\n\r\n", host);
	if (r->kind == DSN_FAILURE) {
		puts_crlf(o, "I'm sorry to have to inform you that your message could not be");
		puts_crlf(o, "delivered to one or more recipients.  The reasons are listed below.");
	} else if (r->kind == DSN_DELAY) {
		puts_crlf(o, "This is a warning only: you do not need to send your message again.");
		if (late >= 2 * 3600)
			putf(o, "Its delivery has been delayed for %lld hours", late / 3600);
		else
			putf(o, "Its delivery has been delayed for %lld minutes", late / 60);
		puts_crlf(o, "; the system keeps trying.");
	} else {
		puts_crlf(o, "Your message was delivered to the recipients listed below.");
	}
	if (orig->data)
		puts_crlf(o, orig->full ? "Your message is attached below."
					: "The headers of your message are attached below.");
	if (headers_only)
		puts_crlf(o, "(It was too large or not well formed to be returned whole.)");
	for (size_t i = 0; i < r->nrcpts; i++) {
		const struct dsn_rcpt *rc = &r->rcpts[i];
		char addr[300], first[300], prefix[700], reason[3 * DSN_TEXT_MAX];
		high |= dsn_clean_text(rc->address, 0, addr, sizeof addr);
		snprintf(prefix, sizeof prefix, "<%s>: ", addr);
		if (rc->orcpt && *rc->orcpt) {
			/* the address the sender used, when an alias changed it */
			const char *semi = strchr(rc->orcpt, ';');
			char dec[DSN_TEXT_MAX];
			if (semi &&
			    dsn_xtext_decode(semi + 1, strlen(semi + 1), dec, sizeof dec) > 0 &&
			    strcasecmp(dec, rc->address)) {
				high |= dsn_clean_text(dec, 0, first, sizeof first);
				snprintf(prefix, sizeof prefix, "<%s> (sent to <%s>): ", addr,
					 first);
			}
		}
		high |= rcpt_reason(rc, action_of(r, rc), reason, sizeof reason);
		put(o, "\r\n", 2);
		put_folded(o, prefix, reason, "    ");
	}
	return high;
}

/* put_rcpt_fields - one per-recipient block of RFC 3464 2.3. */
static void put_rcpt_fields(struct out *o, const struct dsn_report *r, const struct dsn_rcpt *rc)
{
	char v[DSN_TEXT_MAX + 16], t[DSN_TEXT_MAX], status[DSN_STATUS_MAX];
	enum dsn_action a = action_of(r, rc);
	if (rc->orcpt && *rc->orcpt && dsn_orcpt_value(rc->orcpt, v, sizeof v) == 0)
		put_folded(o, "Original-Recipient: ", v, NULL);
	dsn_addr_value(rc->address, strlen(rc->address), v, sizeof v);
	put_folded(o, "Final-Recipient: ", v, NULL);
	putf(o, "Action: %s\r\n", action_name(a));
	rcpt_status(rc, a, status);
	putf(o, "Status: %s\r\n", status);
	if (rc->remote_mta && *rc->remote_mta) {
		dsn_clean_text(rc->remote_mta, 1, t, 300);
		snprintf(v, sizeof v, "dns; %s", t);
		put_folded(o, "Remote-MTA: ", v, NULL);
	}
	if (dsn_status_from_reply(rc->reply, status) > 0) {
		dsn_clean_text(rc->reply, 1, t, sizeof t);
		snprintf(v, sizeof v, "smtp; %s", t);
		put_folded(o, "Diagnostic-Code: ", v, NULL);
	}
	if (rc->last_attempt)
		put_date(o, "Last-Attempt-Date", rc->last_attempt);
	if (a == DSN_ACTION_DELAYED && rc->retry_until)
		put_date(o, "Will-Retry-Until", rc->retry_until);
}

/* put_status_part - the message/delivery-status content: the per-message
 * fields (RFC 3464 2.2), then a blank line before each recipient's block. */
static void put_status_part(struct out *o, const struct dsn_report *r)
{
	const struct envelope *env = r->env;
	char v[DSN_TEXT_MAX + 16], t[DSN_TEXT_MAX];
	dsn_clean_text(r->hostname, 1, t, 300);
	snprintf(v, sizeof v, "dns; %s", t);
	put_folded(o, "Reporting-MTA: ", v, NULL);
	keep_id_chars(env->id, t, sizeof env->id);
	if (t[0])
		putf(o, "X-Tern-Queue-ID: %s\r\n", t);
	dsn_addr_value(env->sender, strlen(env->sender), v, sizeof v);
	put_folded(o, "X-Tern-Sender: ", v, NULL);
	if (env->envid && *env->envid) {
		char dec[DSN_TEXT_MAX];
		int n = dsn_xtext_decode(env->envid, strlen(env->envid), dec, sizeof dec);
		dsn_clean_text(n >= 0 ? dec : env->envid, 1, t, sizeof t);
		put_folded(o, "Original-Envelope-Id: ", t, NULL);
	}
	if (env->received)
		put_date(o, "Arrival-Date", env->received);
	for (size_t i = 0; i < r->nrcpts; i++) {
		put(o, "\r\n", 2);
		put_rcpt_fields(o, r, &r->rcpts[i]);
	}
}

/* put_top_headers - the DSN's own header section (RFC 5322 3.6, RFC 3834
 * 5, RFC 6522 3). */
static void put_top_headers(struct out *o, const struct dsn_report *r, const char *boundary,
			    int eight_bit)
{
	static const char *const subject[] = {
		[DSN_FAILURE] = "Undelivered Mail Returned to Sender",
		[DSN_DELAY] = "Delayed Mail (still being retried)",
		[DSN_SUCCESS] = "Successful Mail Delivery Report",
	};
	char host[300], to[DSN_TEXT_MAX + 2], t[DSN_TEXT_MAX], left[128];
	dsn_clean_text(r->hostname, 1, host, sizeof host);
	putf(o, "From: \"Mail Delivery System\" <MAILER-DAEMON@%s>\r\n", host);
	dsn_clean_text(r->env->sender, 0, t, sizeof t);
	snprintf(to, sizeof to, "<%s>", t);
	put_folded(o, "To: ", to, NULL);
	putf(o, "Subject: %s\r\n", subject[r->kind <= DSN_SUCCESS ? r->kind : DSN_FAILURE]);
	put_date(o, "Date", r->now);
	keep_id_chars(r->message_id, left, sizeof left);
	if (!left[0]) {
		char rnd[17], id[sizeof r->env->id];
		random_hex(rnd);
		keep_id_chars(r->env->id, id, sizeof id);
		snprintf(left, sizeof left, "%lld.%s.%s", (long long)r->now, id, rnd);
	}
	putf(o, "Message-ID: <%s@%s>\r\n", left, host);
	puts_crlf(o, "Auto-Submitted: auto-replied");
	puts_crlf(o, "MIME-Version: 1.0");
	puts_crlf(o, "Content-Type: multipart/report; report-type=delivery-status;");
	putf(o, "\tboundary=\"%s\"\r\n", boundary);
	putf(o, "Content-Transfer-Encoding: %s\r\n\r\n", eight_bit ? "8bit" : "7bit");
}

/* make_boundary - an RFC 2046 5.1.1 boundary (at most 70 characters) that
 * the original does not contain; "=_" can never start a line of quoted-
 * printable or base64 either. */
static void make_boundary(const struct dsn_report *r, const struct original *orig, char *out,
			  size_t outlen)
{
	char id[sizeof r->env->id], rnd[17];
	keep_id_chars(r->env->id, id, sizeof id);
	for (int tries = 0; tries < 8; tries++) {
		random_hex(rnd);
		snprintf(out, outlen, "=_tern_%s_%s", id, rnd);
		if (!orig->data || !memmem(orig->data, orig->len, out, strlen(out)))
			return;
	}
}

/* put_part_head - a body part's delimiter and header section. */
static void put_part_head(struct out *o, const char *boundary, const char *desc, const char *type,
			  int eight_bit)
{
	putf(o, "\r\n--%s\r\nContent-Description: %s\r\nContent-Type: %s\r\n", boundary, desc,
	     type);
	putf(o, "Content-Transfer-Encoding: %s\r\n\r\n", eight_bit ? "8bit" : "7bit");
}

static void free_original(const void *data, size_t len, void *arg)
{
	(void)len, (void)arg;
	free((void *)data);
}

/* put_original_part - the third part (RFC 3462 / RFC 6533 6.3 types); the
 * data is handed to the buffer, which frees it. */
static void put_original_part(struct out *o, struct original *orig, const char *boundary)
{
	const char *type =
		orig->full ? (orig->global ? "message/global" : "message/rfc822")
			   : (orig->global ? "message/global-headers" : "text/rfc822-headers");
	put_part_head(o, boundary, orig->full ? "Original message" : "Original message headers",
		      type, orig->eight_bit);
	if (o->failed || orig->len == 0)
		return;
	if (evbuffer_add_reference(o->b, orig->data, orig->len, free_original, NULL) < 0)
		o->failed = 1;
	else
		orig->data = NULL;
}

/* valid_report - the inputs dsn_compose() cannot do without. */
static int valid_report(const struct dsn_report *r)
{
	if (!r || !r->env || !r->hostname || !*r->hostname || !r->env->sender || !*r->env->sender ||
	    !r->rcpts || r->nrcpts == 0)
		return 0;
	for (size_t i = 0; i < r->nrcpts; i++)
		if (!r->rcpts[i].address)
			return 0;
	return 1;
}

int dsn_compose(const struct dsn_report *r, struct evbuffer *out, struct dsn_info *info)
{
	struct original orig = {0};
	struct dsn_info inf = {0};
	char boundary[80], sender[DSN_TEXT_MAX];
	int rc = -1;

	if (!out || !valid_report(r)) {
		errno = EINVAL;
		return -1;
	}
	if (r->body_fd >= 0 && read_original(r, &orig, &inf.headers_only) < 0)
		return -1;
	struct out text = {evbuffer_new(), 0}, msg = {evbuffer_new(), 0};
	if (!text.b || !msg.b)
		goto done;

	int text8 = put_text_part(&text, r, &orig, inf.headers_only);
	inf.eight_bit = text8 || orig.eight_bit;
	inf.smtputf8 = dsn_clean_text(r->env->sender, 0, sender, sizeof sender);
	make_boundary(r, &orig, boundary, sizeof boundary);
	put_top_headers(&msg, r, boundary, inf.eight_bit);
	puts_crlf(&msg, "This is a MIME-encapsulated message.");

	put_part_head(&msg, boundary, "Notification",
		      text8 ? "text/plain; charset=utf-8" : "text/plain; charset=us-ascii", text8);
	if (!text.failed && !msg.failed && evbuffer_add_buffer(msg.b, text.b) < 0)
		msg.failed = 1;

	put_part_head(&msg, boundary, "Delivery report", "message/delivery-status", 0);
	put_status_part(&msg, r);

	if (orig.data)
		put_original_part(&msg, &orig, boundary);
	putf(&msg, "\r\n--%s--\r\n", boundary);

	if (!msg.failed && !text.failed && evbuffer_add_buffer(out, msg.b) == 0)
		rc = 0;
done:
	free(orig.data);
	if (text.b)
		evbuffer_free(text.b);
	if (msg.b)
		evbuffer_free(msg.b);
	if (rc < 0)
		errno = ENOMEM;
	else if (info)
		*info = inf;
	return rc;
}
