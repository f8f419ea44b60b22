/* envelope.h - what the spool keeps beside a message's bytes.
 *
 * Ownership: an envelope owns all its strings and its recipient array;
 * envelope_free() releases them.  Serialised as text lines (envelope_format
 * below; the format is described in docs/design/spool.md) so a spool file
 * can be read with `less`. */
#ifndef TERN_SPOOL_ENVELOPE_H
#define TERN_SPOOL_ENVELOPE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

enum rcpt_state {
	RCPT_QUEUED = 0,
	RCPT_DELIVERED,
	RCPT_BOUNCED,
};

struct envelope_rcpt {
	char *address; /* "local@domain" as given in RCPT TO */
	char *orcpt; /* DSN ORCPT as received, or NULL */
	unsigned notify; /* smtp_notify_flags */
	enum rcpt_state state;
	unsigned attempts;
	time_t next_attempt; /* 0 = now */
	char *last_reply; /* last remote or local result, or NULL */
	char *remote_mta; /* host that gave last_reply, or NULL */
	time_t last_attempt; /* when it was last tried; 0 = never */
};

struct envelope {
	char id[32]; /* queue id, [0-9A-Za-z] */
	char *sender; /* "" for the null reverse path */
	struct envelope_rcpt *rcpts;
	size_t nrcpts;
	char *envid; /* DSN ENVID or NULL */
	int ret; /* smtp_ret */
	int body_8bit; /* BODY=8BITMIME or 8-bit content seen */
	int smtputf8;
	char *auth_user; /* authenticated user, or NULL */
	char *client_addr; /* "192.0.2.1" or NULL for local submissions */
	char *helo; /* HELO/EHLO name or NULL */
	time_t received; /* when the 250 was given */
	uint64_t size; /* message bytes (CRLF form) */
	int held; /* an operator put it on hold: not attempted */
	int delay_warned; /* the delay DSN went out (sent once) */
	unsigned passes; /* passes whose results were saved ("passes") */
	char dsn_of[32]; /* a report: the message it is about, or "" ("dsn-of") */
	unsigned dsn_pass; /* ... and the pass of it that made it ("dsn-pass") */
};

void envelope_init(struct envelope *env);
/* envelope_add_rcpt - append a copy of ADDRESS (and ORCPT, may be NULL).
 * Returns 0 or -1 on allocation failure. */
int envelope_add_rcpt(struct envelope *env, const char *address,
		      const char *orcpt, unsigned notify);
void envelope_free(struct envelope *env);

/* The longest envelope text the spool accepts when reading (a bound on
 * what a damaged or hostile file can make us allocate). */
#define ENVELOPE_TEXT_MAX (8u << 20)

/* envelope_copy - DST (uninitialised) becomes a deep copy of SRC.  Returns
 * 0, or -1 (ENOMEM) with DST left empty and initialised. */
int envelope_copy(struct envelope *dst, const struct envelope *src);

/* envelope_set_reply - replace RCPT's last_reply by a copy of REPLY (may be
 * NULL).  Returns 0 or -1 (ENOMEM, the old value kept). */
int envelope_set_reply(struct envelope_rcpt *rcpt, const char *reply);

/* envelope_set_mta - the same for RCPT's remote_mta. */
int envelope_set_mta(struct envelope_rcpt *rcpt, const char *mta);

/* envelope_format - the spool's text form of ENV: "tern-spool 1", one
 * "key value" line per field with values escaped (%XX for '%', controls
 * and DEL), ending with the blank line that separates it from the body.
 * *OUT is malloc'ed (caller frees), *LEN its length.  0 or -1 (ENOMEM). */
int envelope_format(const struct envelope *env, char **out, size_t *len);

/* envelope_parse - read TEXT (LEN bytes: the lines before the blank line,
 * the blank line itself not included) into ENV (uninitialised).  Unknown
 * keys are skipped; an unknown version, a raw CR or NUL, a bad escape (or
 * an escaped NUL), a bad number, or a missing id or sender is EINVAL.
 * Returns 0, or -1 with errno set and ENV left empty and initialised. */
int envelope_parse(const char *text, size_t len, struct envelope *env);

#endif
