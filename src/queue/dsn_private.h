/* dsn_private.h - the DSN's field encoders, shared by dsn.c (the report's
 * parts) and dsn_encode.c (statuses, xtext, texts and addresses as they
 * are written into a report).  Not a contract: nothing else includes it.
 *
 * Every encoder writes into the caller's buffer, bounded by its length,
 * always NUL-terminated; none allocates. */
#ifndef TERN_QUEUE_DSN_PRIVATE_H
#define TERN_QUEUE_DSN_PRIVATE_H

#include <stddef.h>

#include "queue/dsn.h"

#define DSN_TEXT_MAX 4096 /* a reply, reason or address as written */

/* dsn_encode.c */
/* dsn_status_len - length of the RFC 3463 status at S, 0 if none. */
size_t dsn_status_len(const char *s);
/* dsn_clean_text - S as one line of text (ASCII only with ASCII); 1 when
 * the result holds non-ASCII. */
int dsn_clean_text(const char *s, int ascii, char *out, size_t outlen);
/* dsn_addr_value - "rfc822; ADDR" or "utf-8; " utf-8-addr-xtext; 1 when
 * ADDR was not ASCII. */
int dsn_addr_value(const char *addr, size_t len, char *out, size_t outlen);
/* dsn_orcpt_value - the Original-Recipient value of an ORCPT as received;
 * 0, or -1 when it has no type or no address. */
int dsn_orcpt_value(const char *orcpt, char *out, size_t outlen);

#endif
