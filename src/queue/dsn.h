/* dsn.h - delivery status notifications: bounces, delay warnings and
 * success reports.
 *
 * dsn_compose() writes one complete RFC 5322 message (CRLF line ends, no
 * line over 998 octets) of type multipart/report; report-type=
 * delivery-status (RFC 6522, RFC 3464) addressed to the original sender:
 *   1. text/plain, the explanation for people, one paragraph per recipient;
 *   2. message/delivery-status, the per-message fields (RFC 3464 2.2) and
 *      one block of per-recipient fields (RFC 3464 2.3) per recipient;
 *   3. the original: its header section as text/rfc822-headers (RET=HDRS
 *      or no RET, and every delay or success report, RFC 3461 4.3), or the
 *      whole message as message/rfc822 (a failure report with RET=FULL)
 *      when it is at most full_max octets and well formed (no NUL, CRLF
 *      only, lines of at most 998 octets), its headers otherwise.
 * It is marked Auto-Submitted: auto-replied (RFC 3834 5) and must be sent
 * with the null reverse path (RFC 5321 4.5.5, RFC 3461 6.2): the caller
 * queues it with sender "" and one recipient, the original sender, and no
 * NOTIFY (so no DSN about a DSN).
 *
 * Internationalised mail (RFC 6533).  The message/delivery-status part is
 * always 7-bit: an address with non-ASCII octets is written with address
 * type "utf-8" in utf-8-addr-xtext form (RFC 6533 3: "\x{E9}" for é), an
 * ASCII address with type "rfc822".  The headers of the original are
 * message/global-headers (and the whole message message/global) when they
 * hold 8-bit octets (RFC 6533 6.3, RFC 6532 3.7).  The DSN's own headers
 * are ASCII except To: when the original sender's address is UTF-8; the
 * report says what transport the result needs (struct dsn_info).
 *
 * Which recipients are reported at all is dsn_wants() (RFC 3461 4.1).
 * ORCPT and ENVID are kept xtext-encoded as received and decoded here
 * (RFC 3461 4.2, 4.4). */
#ifndef TERN_QUEUE_DSN_H
#define TERN_QUEUE_DSN_H

#include <stddef.h>
#include <time.h>

#include "spool/envelope.h"

struct evbuffer;

#define DSN_STATUS_MAX	12	     /* "5.123.123" and NUL (RFC 3463 2) */
#define DSN_FULL_MAX	(10u << 20)  /* largest original returned whole */
#define DSN_HEADERS_MAX (256u << 10) /* most of the original's headers read */

enum dsn_kind {
	DSN_FAILURE, /* "Undelivered Mail Returned to Sender" */
	DSN_DELAY,   /* "Delayed Mail (still being retried)" */
	DSN_SUCCESS, /* "Successful Mail Delivery Report" */
};

/* RFC 3464 2.3.3 Action.  DEFAULT follows the report's kind: failed,
 * delayed or delivered. */
enum dsn_action {
	DSN_ACTION_DEFAULT = 0,
	DSN_ACTION_FAILED,
	DSN_ACTION_DELAYED,
	DSN_ACTION_DELIVERED,
	DSN_ACTION_RELAYED,  /* handed to a server that does not do DSN */
	DSN_ACTION_EXPANDED, /* delivered to an alias's several targets */
};

/* One recipient to report.  Nothing is owned; every string is lent for the
 * duration of dsn_compose() and may be NULL unless said otherwise.  From
 * an envelope_rcpt R: .address = R->address, .orcpt = R->orcpt, .reply =
 * R->last_reply. */
struct dsn_rcpt {
	const char *address; /* the final recipient, "local@domain"; required */
	const char *orcpt;   /* RFC 3461 ORCPT as received: "rfc822;" xtext */
	enum dsn_action action;
	/* RFC 3463 status "x.y.z"; NULL (or not a status): taken from REPLY
	 * by dsn_status_from_reply(), else x.0.0 for the action. */
	const char *status;
	/* The SMTP reply that decided, "550 5.1.1 No such user" (lines may be
	 * separated by LF or CRLF).  Becomes "Diagnostic-Code: smtp; ..." and
	 * the reason in the text part. */
	const char *reply;
	/* Why, for people, when there is no SMTP reply (or in addition to it):
	 * "Host or domain name not found", RETRY_EXPIRED_TEXT, ... */
	const char *reason;
	const char *remote_mta; /* host name of the server that replied */
	time_t last_attempt;	/* Last-Attempt-Date; 0 = none */
	time_t retry_until;	/* Will-Retry-Until (delayed only); 0 = none */
};

/* What to report. */
struct dsn_report {
	enum dsn_kind kind;
	/* The original message's envelope: sender (the DSN's recipient), id,
	 * envid, ret, received (Arrival-Date), smtputf8.  Required. */
	const struct envelope *env;
	const struct dsn_rcpt *rcpts; /* at least one */
	size_t nrcpts;
	const char *hostname; /* Reporting-MTA, From, Message-ID; required */
	/* Left part of the DSN's Message-ID, e.g. the queue id the DSN will
	 * be spooled under ([0-9A-Za-z] and ".-_" kept, other octets dropped);
	 * NULL: made from the time, ENV's id and random bits. */
	const char *message_id;
	time_t now; /* Date */
	/* The original message in the spool file (spool_open_body): BODY_SIZE
	 * octets of CRLF text from BODY_OFFSET of BODY_FD, read with pread (the
	 * file offset is not moved, the fd not closed).  BODY_FD < 0: no
	 * third part. */
	int body_fd;
	long body_offset;
	size_t body_size;
	size_t full_max; /* RET=FULL limit; 0 = DSN_FULL_MAX */
};

/* What the composed DSN needs from the transport that carries it. */
struct dsn_info {
	int eight_bit;	  /* 8-bit octets present: send with BODY=8BITMIME */
	int smtputf8;	  /* UTF-8 in its headers: send with SMTPUTF8 */
	int headers_only; /* RET=FULL was asked but only headers are included */
};

/* dsn_wants - should a DSN of KIND about a recipient with NOTIFY
 * (smtp_notify_flags) go to SENDER?  RFC 3461 4.1: never to the null
 * sender ("" or NULL) and never with NEVER; a failure unless NOTIFY was
 * given without FAILURE; a success only with SUCCESS; a delay with DELAY,
 * or, when NOTIFY was not given at all, when SENDER_IS_LOCAL (the sender
 * is a user of this server: the MTA's choice that RFC 3461 4.1 allows).
 * Returns 1 or 0. */
int dsn_wants(const char *sender, unsigned notify, enum dsn_kind kind, int sender_is_local);

/* dsn_status_from_reply - the RFC 3463 status of an SMTP REPLY into OUT
 * (DSN_STATUS_MAX bytes): the enhanced code after the basic one when it
 * is there and of the same class ("550 5.1.1 ..." → "5.1.1", "550-5.1.1"
 * too), otherwise derived from the basic code ("421 busy" → "4.0.0").
 * Returns the class (2, 4 or 5), or 0 with OUT "" when REPLY does not
 * start with a final reply code (NULL, "", "354 go", "hello"). */
int dsn_status_from_reply(const char *reply, char *out);

/* dsn_xtext_decode - RFC 3461 4 xtext ("+" two hex digits for an octet)
 * of IN (LEN octets) into OUT (OUTLEN bytes, NUL-terminated).  Returns
 * the decoded length, or -1 when IN is not xtext (a lone '+', a bad hex
 * digit, an octet outside '!'..'~', '=', an encoded NUL) or OUT is too
 * small.  Lower-case hex digits are accepted, as senders emit them. */
int dsn_xtext_decode(const char *in, size_t len, char *out, size_t outlen);

/* dsn_compose - append the DSN that R describes to OUT (the caller's
 * buffer; on failure nothing is appended).  Everything appended belongs to
 * OUT: the original's bytes are added as a reference to a malloc'ed block
 * that OUT frees when drained or freed, so OUT may be handed on as is
 * (e.g. to spool_commit).  Nothing of R is kept.  INFO (may be NULL) is
 * filled on success.  Blocking when R has a body (pread): run it on the worker
 * pool.  Returns 0, or -1 with errno: EINVAL (null sender, no recipient,
 * no hostname, a recipient without address), EIO (the body file is
 * shorter than BODY_SIZE) or the error of pread or of an allocation. */
int dsn_compose(const struct dsn_report *r, struct evbuffer *out, struct dsn_info *info);

#endif
