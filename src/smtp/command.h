/* command.h - SMTP command line parsing (RFC 5321 4.1, RFC 1870, RFC 6152,
 * RFC 6531, RFC 3461, RFC 3030, RFC 4954).
 *
 * Pure functions over one complete command line (CRLF already removed).
 * They never allocate and never do I/O; errors come back as an
 * smtp_reply the session sends as is. */
#ifndef TERN_SMTP_COMMAND_H
#define TERN_SMTP_COMMAND_H

#include <stddef.h>
#include <stdint.h>

#include "core/address.h"
#include "smtp/reply.h"

#define SMTP_CMD_LINE_MAX 512 /* RFC 5321 4.5.3.1.4, CRLF included */
#define SMTP_TEXT_LINE_MAX 1000 /* RFC 5321 4.5.3.1.6, CRLF included */
#define SMTP_ENVID_MAX 100 /* RFC 3461 4.4 */
#define SMTP_ORCPT_MAX 500 /* RFC 3461 4.2: xtext as received */

enum smtp_verb {
	SMTP_CMD_UNKNOWN,
	SMTP_CMD_HELO,
	SMTP_CMD_EHLO,
	SMTP_CMD_MAIL,
	SMTP_CMD_RCPT,
	SMTP_CMD_DATA,
	SMTP_CMD_BDAT,
	SMTP_CMD_RSET,
	SMTP_CMD_NOOP,
	SMTP_CMD_QUIT,
	SMTP_CMD_VRFY,
	SMTP_CMD_EXPN,
	SMTP_CMD_HELP,
	SMTP_CMD_STARTTLS,
	SMTP_CMD_AUTH,
};

struct smtp_command {
	enum smtp_verb verb;
	const char *args; /* after the verb and one space; points into line */
	size_t argslen;
};

/* smtp_command_split - recognise the verb (case-insensitive) of LINE.
 * A NUL byte or a non-ASCII byte in a command line (before SMTPUTF8 paths
 * are parsed by MAIL/RCPT) is a syntax error: returns -1 and sets *ERR to
 * 500 5.5.2.  Returns 0 otherwise (verb may be SMTP_CMD_UNKNOWN). */
int smtp_command_split(const char *line, size_t len, struct smtp_command *out,
		       struct smtp_reply *err);

enum smtp_body { SMTP_BODY_7BIT, SMTP_BODY_8BITMIME };
enum smtp_ret { SMTP_RET_UNSET, SMTP_RET_FULL, SMTP_RET_HDRS };

enum smtp_notify_flags {
	SMTP_NOTIFY_UNSET = 0,
	SMTP_NOTIFY_NEVER = 1,
	SMTP_NOTIFY_SUCCESS = 2,
	SMTP_NOTIFY_FAILURE = 4,
	SMTP_NOTIFY_DELAY = 8,
};

struct smtp_mail_params {
	int has_size;
	uint64_t size;
	enum smtp_body body;
	int smtputf8;
	enum smtp_ret ret;
	char envid[SMTP_ENVID_MAX + 1]; /* xtext as received, "" if none */
};

struct smtp_rcpt_params {
	unsigned notify; /* smtp_notify_flags; NEVER excludes the others */
	char orcpt[SMTP_ORCPT_MAX + 1]; /* "rfc822;xtext" as received, or "" */
};

/* smtp_parse_mail - ARGS of MAIL: "FROM:<path> [params]".  Unknown or
 * repeated parameters are 555 5.5.4; syntax errors 501 5.5.2 (path:
 * 553 5.1.7 / 501 5.1.7).  FLAGS: ADDR_ALLOW_NOBRACKETS may be set by the
 * caller; ADDR_ALLOW_UTF8 is derived from the SMTPUTF8 parameter. */
int smtp_parse_mail(const char *args, size_t len, unsigned flags,
		    struct address *from, struct smtp_mail_params *p,
		    struct smtp_reply *err);

/* smtp_parse_rcpt - ARGS of RCPT: "TO:<path> [params]".  SMTPUTF8 is the
 * transaction's MAIL SMTPUTF8 flag: UTF-8 addresses without it are
 * 553 5.6.7 (RFC 6531 3.5).  "<postmaster>" is accepted as postmaster with
 * an empty domain. */
int smtp_parse_rcpt(const char *args, size_t len, unsigned flags, int smtputf8,
		    struct address *to, struct smtp_rcpt_params *p,
		    struct smtp_reply *err);

/* smtp_parse_bdat - ARGS of BDAT: "SIZE [LAST]". */
int smtp_parse_bdat(const char *args, size_t len, uint64_t *size, int *last,
		    struct smtp_reply *err);

/* smtp_parse_helo_domain - HELO/EHLO argument: a domain or address literal. */
int smtp_parse_helo_domain(const char *args, size_t len, struct smtp_reply *err);

/* xtext_valid - RFC 3461 4 xtext ("+" HEXCHAR HEXCHAR escapes). */
int xtext_valid(const char *s, size_t len);

#endif
