/* envelope.h - what the spool keeps beside a message's bytes.
 *
 * Ownership: an envelope owns all its strings and its recipient array;
 * envelope_free() releases them.  Serialised as text lines (see spool.c)
 * so a spool file can be read with `less`. */
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
};

void envelope_init(struct envelope *env);
/* envelope_add_rcpt - append a copy of ADDRESS (and ORCPT, may be NULL).
 * Returns 0 or -1 on allocation failure. */
int envelope_add_rcpt(struct envelope *env, const char *address,
		      const char *orcpt, unsigned notify);
void envelope_free(struct envelope *env);

#endif
