/* fuzz_command.c - libFuzzer target for one SMTP command line
 * (smtp/command.c, core/address.c; RFC 5321 4.1, RFC 1870, RFC 6152,
 * RFC 6531, RFC 3461, RFC 3030).
 *
 * The input is a command line without its CRLF, as the session hands it
 * over.  smtp_command_split recognises the verb; MAIL, RCPT, BDAT and
 * HELO/EHLO then go to their parsers.  Every parser is tried in each of
 * its modes (lenient brackets or not; RCPT with and without the SMTPUTF8
 * of the transaction), so a seed that is a real command line stays one.
 * Besides memory safety the target checks what the session relies on:
 * errors are well-formed replies, parsed values stay inside their limits,
 * and a parsed address written back parses to the same address. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/address.h"
#include "smtp/command.h"

#define FUZZ_LINE_MAX 4096 /* far beyond SMTP_CMD_LINE_MAX */

/* check - abort() makes libFuzzer report the input as a crash. */
#define check(cond)                                                                                \
	do {                                                                                       \
		if (!(cond))                                                                       \
			abort();                                                                   \
	} while (0)

/* check_reply - an error is a complete reply the session can send as is:
 * a 4xx/5xx code, an enhanced code of the same class, text without CR/LF. */
static void check_reply(const struct smtp_reply *err)
{
	check(err->code >= 400 && err->code <= 599);
	check(err->text && !strpbrk(err->text, "\r\n"));
	if (err->enhanced)
		check(err->enhanced[0] == '0' + err->code / 100 && err->enhanced[1] == '.');
}

/* check_address - a parsed address is bounded and survives being written
 * back ("local@domain") and parsed again unchanged. */
static void check_address(const struct address *a, int allow_empty_domain)
{
	char text[ADDR_PATH_MAX + 8];
	struct address again;
	const char *why = NULL;

	check(strlen(a->local) < sizeof a->local && strlen(a->domain) < sizeof a->domain);
	if (a->is_null) {
		check(!a->local[0] && !a->domain[0]);
		return;
	}
	if (!a->domain[0]) {
		check(allow_empty_domain); /* only RCPT's bare <postmaster> */
		return;
	}
	int n = address_format(a, text, sizeof text);
	check(n > 0 && (size_t)n == strlen(text));
	unsigned flags = a->utf8 ? ADDR_ALLOW_UTF8 : 0;
	check(address_parse_mailbox(text, (size_t)n, flags, &again, &why) == 0);
	check(!strcmp(again.local, a->local) && !strcmp(again.domain, a->domain));
	check(again.utf8 == a->utf8 && !again.is_null);
}

static void fuzz_mail(const char *args, size_t len)
{
	for (unsigned lenient = 0; lenient < 2; lenient++) {
		struct address from;
		struct smtp_mail_params p;
		struct smtp_reply err = {0};
		unsigned flags = lenient ? ADDR_ALLOW_NOBRACKETS : 0;

		if (smtp_parse_mail(args, len, flags, &from, &p, &err) < 0) {
			check_reply(&err);
			continue;
		}
		check(strlen(p.envid) <= SMTP_ENVID_MAX && xtext_valid(p.envid, strlen(p.envid)));
		check(!from.utf8 || p.smtputf8);
		check(p.has_size || p.size == 0);
		check_address(&from, 0);
	}
}

static void fuzz_rcpt(const char *args, size_t len)
{
	for (unsigned mode = 0; mode < 4; mode++) {
		struct address to;
		struct smtp_rcpt_params p;
		struct smtp_reply err = {0};
		unsigned flags = (mode & 1) ? ADDR_ALLOW_NOBRACKETS : 0;
		int smtputf8 = (mode & 2) != 0;

		if (smtp_parse_rcpt(args, len, flags, smtputf8, &to, &p, &err) < 0) {
			check_reply(&err);
			continue;
		}
		check(!to.is_null && (!to.utf8 || smtputf8));
		check(!(p.notify & SMTP_NOTIFY_NEVER) || p.notify == SMTP_NOTIFY_NEVER);
		check(p.notify < 16 && strlen(p.orcpt) <= SMTP_ORCPT_MAX);
		check_address(&to, 1);
	}
}

static void fuzz_bdat(const char *args, size_t len)
{
	uint64_t size = 0;
	int last = -1;
	struct smtp_reply err = {0};

	if (smtp_parse_bdat(args, len, &size, &last, &err) < 0)
		check_reply(&err);
	else
		check(last == 0 || last == 1);
}

static void fuzz_helo(const char *args, size_t len)
{
	struct smtp_reply err = {0};

	if (smtp_parse_helo_domain(args, len, &err) < 0)
		check_reply(&err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_command cmd;
	struct smtp_reply err = {0};
	char *line;

	if (size > FUZZ_LINE_MAX)
		return 0;
	/* An exact-size copy: ASan sees any read past the line's end. */
	line = malloc(size ? size : 1);
	if (!line)
		return 0;
	memcpy(line, data, size);
	if (smtp_command_split(line, size, &cmd, &err) < 0) {
		check_reply(&err);
		free(line);
		return 0;
	}
	check(cmd.args >= line && cmd.args + cmd.argslen <= line + size);
	(void)xtext_valid(cmd.args, cmd.argslen);
	switch (cmd.verb) {
	case SMTP_CMD_MAIL:
		fuzz_mail(cmd.args, cmd.argslen);
		break;
	case SMTP_CMD_RCPT:
		fuzz_rcpt(cmd.args, cmd.argslen);
		break;
	case SMTP_CMD_BDAT:
		fuzz_bdat(cmd.args, cmd.argslen);
		break;
	case SMTP_CMD_HELO:
	case SMTP_CMD_EHLO:
		fuzz_helo(cmd.args, cmd.argslen);
		break;
	default:
		break;
	}
	free(line);
	return 0;
}
