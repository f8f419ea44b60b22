/* test_command.c - SMTP command line parsing (smtp/command.c): verbs,
 * MAIL and RCPT with their ESMTP parameters, BDAT, HELO, xtext. */
#include <string.h>

#include "check.h"
#include "smtp/command.h"

static struct address addr;
static struct smtp_mail_params mp;
static struct smtp_rcpt_params rp;
static struct smtp_reply err;

static int mail(const char *args, unsigned flags)
{
	err = SMTP_REPLY(0, NULL, NULL);
	return smtp_parse_mail(args, strlen(args), flags, &addr, &mp, &err);
}

static int rcpt(const char *args, unsigned flags, int smtputf8)
{
	err = SMTP_REPLY(0, NULL, NULL);
	return smtp_parse_rcpt(args, strlen(args), flags, smtputf8, &addr, &rp, &err);
}

/* refused - the last call replied CODE ENHANCED, with some text. */
static int refused(int code, const char *enhanced)
{
	if (err.code != code || !err.enhanced || strcmp(err.enhanced, enhanced) || !err.text ||
	    !err.text[0]) {
		fprintf(stderr, "  got %d %s %s, want %d %s\n", err.code,
			err.enhanced ? err.enhanced : "-", err.text ? err.text : "-", code,
			enhanced);
		return 0;
	}
	return 1;
}

static int mail_refused(const char *args, unsigned flags, int code, const char *enhanced)
{
	return mail(args, flags) == -1 && refused(code, enhanced);
}

static int rcpt_refused(const char *args, int smtputf8, int code, const char *enhanced)
{
	return rcpt(args, 0, smtputf8) == -1 && refused(code, enhanced);
}

static int split(const char *line, size_t len, struct smtp_command *c)
{
	err = SMTP_REPLY(0, NULL, NULL);
	return smtp_command_split(line, len, c, &err);
}

static void test_verbs_case_insensitive(void)
{
	struct smtp_command c;

	CHECK(split("MAIL FROM:<a@b>", 15, &c) == 0);
	CHECK(c.verb == SMTP_CMD_MAIL);
	CHECK(c.argslen == 10 && memcmp(c.args, "FROM:<a@b>", 10) == 0);
	CHECK(split("mail FROM:<a@b>", 15, &c) == 0 && c.verb == SMTP_CMD_MAIL);
	CHECK(split("StartTLS", 8, &c) == 0 && c.verb == SMTP_CMD_STARTTLS && c.argslen == 0);
	CHECK(split("DATA", 4, &c) == 0 && c.verb == SMTP_CMD_DATA && c.argslen == 0);
	CHECK(split("NOOP ", 5, &c) == 0 && c.verb == SMTP_CMD_NOOP && c.argslen == 0);
	CHECK(split("ehlo x", 6, &c) == 0 && c.verb == SMTP_CMD_EHLO && c.argslen == 1);
	CHECK(split("HELO x", 6, &c) == 0 && c.verb == SMTP_CMD_HELO);
	CHECK(split("rcpt TO:<a@b>", 13, &c) == 0 && c.verb == SMTP_CMD_RCPT);
	CHECK(split("BDAT 10 LAST", 12, &c) == 0 && c.verb == SMTP_CMD_BDAT);
	CHECK(split("RSET", 4, &c) == 0 && c.verb == SMTP_CMD_RSET);
	CHECK(split("QUIT", 4, &c) == 0 && c.verb == SMTP_CMD_QUIT);
	CHECK(split("VRFY x", 6, &c) == 0 && c.verb == SMTP_CMD_VRFY);
	CHECK(split("EXPN x", 6, &c) == 0 && c.verb == SMTP_CMD_EXPN);
	CHECK(split("HELP", 4, &c) == 0 && c.verb == SMTP_CMD_HELP);
	CHECK(split("AUTH PLAIN", 10, &c) == 0 && c.verb == SMTP_CMD_AUTH);
	/* only one SP belongs to the verb */
	CHECK(split("HELO  x", 7, &c) == 0 && c.verb == SMTP_CMD_HELO);
	CHECK(c.argslen == 2 && c.args[0] == ' ');
}

static void test_unknown_verbs(void)
{
	struct smtp_command c;

	CHECK(split("MAILX", 5, &c) == 0 && c.verb == SMTP_CMD_UNKNOWN);
	CHECK(split("MAIL:FROM", 9, &c) == 0 && c.verb == SMTP_CMD_UNKNOWN);
	CHECK(split("DATA\t", 5, &c) == 0 && c.verb == SMTP_CMD_UNKNOWN);
	CHECK(split("", 0, &c) == 0 && c.verb == SMTP_CMD_UNKNOWN && c.argslen == 0);
	CHECK(split(" DATA", 5, &c) == 0 && c.verb == SMTP_CMD_UNKNOWN);
	CHECK(split("GET / HTTP/1.0", 14, &c) == 0 && c.verb == SMTP_CMD_UNKNOWN);
	CHECK(split("STARTTLSX", 9, &c) == 0 && c.verb == SMTP_CMD_UNKNOWN);
	CHECK(split("DAT", 3, &c) == 0 && c.verb == SMTP_CMD_UNKNOWN);
}

static void test_nul_cr_lf_in_command_line_refused(void)
{
	struct smtp_command c;

	CHECK(split("NOOP\0x", 6, &c) == -1 && refused(500, "5.5.2"));
	CHECK(split("MAIL FROM:<a\0@b>", 16, &c) == -1 && refused(500, "5.5.2"));
	CHECK(split("\0", 1, &c) == -1 && refused(500, "5.5.2"));
	CHECK(split("NOOP\rx", 6, &c) == -1 && refused(500, "5.5.2"));
	CHECK(split("DATA\r", 5, &c) == -1 && refused(500, "5.5.2"));
	CHECK(split("NOOP\nRSET", 9, &c) == -1 && refused(500, "5.5.2"));
	CHECK(split("RCPT TO:<a@b>\r", 14, &c) == -1 && refused(500, "5.5.2"));
}

static void test_non_ascii_only_in_mail_and_rcpt(void)
{
	struct smtp_command c;

	CHECK(split("NOOP \xc3\xa9", 7, &c) == -1 && refused(500, "5.5.2"));
	CHECK(split("EHLO \xc3\xa9.example", 15, &c) == -1 && refused(500, "5.5.2"));
	CHECK(split("X\xc3\xa9", 3, &c) == -1 && refused(500, "5.5.2"));
	CHECK(split("MAIL FROM:<\xc3\xa9@b>", 16, &c) == 0 && c.verb == SMTP_CMD_MAIL);
	CHECK(split("rcpt TO:<\xc3\xa9@b>", 14, &c) == 0 && c.verb == SMTP_CMD_RCPT);
	/* the byte is still checked later, by the path parser */
	CHECK(mail_refused("FROM:<\xc3\xa9@b.example>", 0, 553, "5.6.7"));
}

static void test_mail_plain(void)
{
	CHECK(mail("FROM:<a@b.example>", 0) == 0);
	CHECK_STR(addr.local, "a");
	CHECK_STR(addr.domain, "b.example");
	CHECK(!mp.has_size && mp.body == SMTP_BODY_7BIT && !mp.smtputf8);
	CHECK(mp.ret == SMTP_RET_UNSET && mp.envid[0] == '\0');
	CHECK(mail("from:<a@b.example>", 0) == 0);
	CHECK(mail("FROM:<>", 0) == 0 && addr.is_null);
	CHECK(mail("FROM:<@r.example:a@b.example>", 0) == 0);
	CHECK_STR(addr.domain, "b.example");
	/* one SP after the colon is a client bug we tolerate; two are not */
	CHECK(mail("FROM: <a@b.example>", 0) == 0);
	CHECK(mail_refused("FROM:  <a@b.example>", 0, 501, "5.1.7"));
	/* no brackets: only when the caller is lenient */
	CHECK(mail_refused("FROM:a@b.example", 0, 501, "5.1.7"));
	CHECK(mail("FROM:a@b.example", ADDR_ALLOW_NOBRACKETS) == 0);
	CHECK_STR(addr.domain, "b.example");
	CHECK(mail("FROM:a@b.example SIZE=5", ADDR_ALLOW_NOBRACKETS) == 0 && mp.size == 5);
}

static void test_mail_syntax_errors(void)
{
	CHECK(mail_refused("", 0, 501, "5.5.2"));
	CHECK(mail_refused("FROM", 0, 501, "5.5.2"));
	CHECK(mail_refused("FROM<a@b.example>", 0, 501, "5.5.2"));
	CHECK(mail_refused("TO:<a@b.example>", 0, 501, "5.5.2"));
	CHECK(mail_refused("FROM:", 0, 501, "5.1.7"));
	CHECK(mail_refused("FROM:<a..b@b.example>", 0, 501, "5.1.7"));
	CHECK(mail_refused("FROM:<a@b.example>x", 0, 501, "5.1.7"));
	CHECK(mail_refused("FROM:<a@b.example>SIZE=1", 0, 501, "5.1.7"));
	CHECK(mail_refused("FROM:< a@b.example>", 0, 501, "5.1.7"));
	CHECK(mail_refused("FROM:<a@b.example >", 0, 501, "5.1.7"));
	/* <postmaster> without a domain is a RCPT-only form */
	CHECK(mail_refused("FROM:<postmaster>", 0, 501, "5.1.7"));
}

static void test_mail_size(void)
{
	CHECK(mail("FROM:<a@b.example> SIZE=1000", 0) == 0);
	CHECK(mp.has_size && mp.size == 1000);
	CHECK(mail("FROM:<a@b.example> size=0", 0) == 0 && mp.has_size && mp.size == 0);
	CHECK(mail("FROM:<a@b.example> SIZE=18446744073709551614", 0) == 0);
	CHECK(mp.size == UINT64_MAX - 1);
	CHECK(mail("FROM:<a@b.example> SIZE=18446744073709551615", 0) == 0);
	CHECK(mp.size == UINT64_MAX);
	/* twenty digits are valid syntax even past 2^64: kept as the maximum */
	CHECK(mail("FROM:<a@b.example> SIZE=18446744073709551616", 0) == 0);
	CHECK(mp.size == UINT64_MAX);
	CHECK(mail("FROM:<a@b.example> SIZE=99999999999999999999", 0) == 0);
	CHECK(mp.size == UINT64_MAX);
	CHECK(mail("FROM:<a@b.example> SIZE=00000000000000000042", 0) == 0 && mp.size == 42);
	CHECK(mail_refused("FROM:<a@b.example> SIZE=100000000000000000000", 0, 501, "5.5.4"));
	CHECK(mail_refused("FROM:<a@b.example> SIZE=", 0, 501, "5.5.4"));
	CHECK(mail_refused("FROM:<a@b.example> SIZE", 0, 501, "5.5.4"));
	CHECK(mail_refused("FROM:<a@b.example> SIZE=12a", 0, 501, "5.5.4"));
	CHECK(mail_refused("FROM:<a@b.example> SIZE=-1", 0, 501, "5.5.4"));
	CHECK(mail_refused("FROM:<a@b.example> SIZE=+1", 0, 501, "5.5.4"));
	CHECK(mail_refused("FROM:<a@b.example> SIZE==1", 0, 501, "5.5.4"));
	CHECK(mail_refused("FROM:<a@b.example> SIZE=1 SIZE=2", 0, 555, "5.5.4"));
}

static void test_mail_body(void)
{
	CHECK(mail("FROM:<a@b.example> BODY=7BIT", 0) == 0 && mp.body == SMTP_BODY_7BIT);
	CHECK(mail("FROM:<a@b.example> BODY=8BITMIME", 0) == 0 && mp.body == SMTP_BODY_8BITMIME);
	CHECK(mail("FROM:<a@b.example> body=8bitmime", 0) == 0 && mp.body == SMTP_BODY_8BITMIME);
	CHECK(mail_refused("FROM:<a@b.example> BODY=BINARYMIME", 0, 555, "5.5.4"));
	CHECK(mail_refused("FROM:<a@b.example> BODY=9BIT", 0, 501, "5.5.4"));
	CHECK(mail_refused("FROM:<a@b.example> BODY", 0, 501, "5.5.4"));
	CHECK(mail_refused("FROM:<a@b.example> BODY=7BIT body=8BITMIME", 0, 555, "5.5.4"));
}

static void test_mail_smtputf8(void)
{
	CHECK(mail("FROM:<a@b.example> SMTPUTF8", 0) == 0 && mp.smtputf8);
	CHECK(mail("FROM:<\xc3\xa9@b.example> SMTPUTF8", 0) == 0 && addr.utf8 && mp.smtputf8);
	CHECK(mail("FROM:<a@b\xc3\xbc"
		   "cher.example> smtputf8 BODY=8BITMIME",
		   0) == 0);
	CHECK(addr.utf8);
	CHECK(mail_refused("FROM:<\xc3\xa9@b.example>", 0, 553, "5.6.7"));
	CHECK(mail_refused("FROM:<\xc3\xa9@b.example> BODY=8BITMIME", 0, 553, "5.6.7"));
	/* malformed UTF-8 is a syntax error, SMTPUTF8 or not */
	CHECK(mail_refused("FROM:<\xc0\xaf@b.example> SMTPUTF8", 0, 501, "5.1.7"));
	CHECK(mail_refused("FROM:<\xed\xa0\x80@b.example> SMTPUTF8", 0, 501, "5.1.7"));
	CHECK(mail_refused("FROM:<\xc0\xaf@b.example>", 0, 501, "5.1.7"));
	CHECK(mail_refused("FROM:<a@b.example> SMTPUTF8=yes", 0, 501, "5.5.4"));
	CHECK(mail_refused("FROM:<a@b.example> SMTPUTF8 SMTPUTF8", 0, 555, "5.5.4"));
	/* parameter values stay ASCII */
	CHECK(mail_refused("FROM:<a@b.example> SMTPUTF8 ENVID=\xc3\xa9", 0, 501, "5.5.4"));
}

static void test_mail_ret_envid_auth(void)
{
	char p[300], v[200];

	CHECK(mail("FROM:<a@b.example> RET=FULL", 0) == 0 && mp.ret == SMTP_RET_FULL);
	CHECK(mail("FROM:<a@b.example> ret=hdrs", 0) == 0 && mp.ret == SMTP_RET_HDRS);
	CHECK(mail_refused("FROM:<a@b.example> RET=BODY", 0, 501, "5.5.4"));
	CHECK(mail_refused("FROM:<a@b.example> RET", 0, 501, "5.5.4"));
	CHECK(mail_refused("FROM:<a@b.example> RET=FULL RET=HDRS", 0, 555, "5.5.4"));

	CHECK(mail("FROM:<a@b.example> ENVID=QQ314159", 0) == 0);
	CHECK_STR(mp.envid, "QQ314159");
	CHECK(mail("FROM:<a@b.example> ENVID=a+2Bb+20c", 0) == 0);
	CHECK_STR(mp.envid, "a+2Bb+20c");
	memset(v, 'e', 100);
	v[100] = '\0';
	snprintf(p, sizeof p, "FROM:<a@b.example> ENVID=%s", v);
	CHECK(mail(p, 0) == 0 && strlen(mp.envid) == 100);
	snprintf(p, sizeof p, "FROM:<a@b.example> ENVID=%se", v);
	CHECK(mail_refused(p, 0, 501, "5.5.4"));
	CHECK(mail_refused("FROM:<a@b.example> ENVID=a+2", 0, 501, "5.5.4"));
	CHECK(mail_refused("FROM:<a@b.example> ENVID=a+", 0, 501, "5.5.4"));
	CHECK(mail_refused("FROM:<a@b.example> ENVID=a+ZZ", 0, 501, "5.5.4"));
	/* decoded control characters could end up in a DSN header */
	CHECK(mail_refused("FROM:<a@b.example> ENVID=a+0D+0Ab", 0, 501, "5.5.4"));
	CHECK(mail_refused("FROM:<a@b.example> ENVID=a+00", 0, 501, "5.5.4"));
	CHECK(mail_refused("FROM:<a@b.example> ENVID=", 0, 501, "5.5.4"));
	CHECK(mail_refused("FROM:<a@b.example> ENVID=x ENVID=y", 0, 555, "5.5.4"));

	CHECK(mail("FROM:<a@b.example> AUTH=<>", 0) == 0);
	CHECK(mail("FROM:<a@b.example> AUTH=user+40example.com", 0) == 0);
	CHECK(mail_refused("FROM:<a@b.example> AUTH=a+", 0, 501, "5.5.4"));
	CHECK(mail_refused("FROM:<a@b.example> AUTH=<> AUTH=<>", 0, 555, "5.5.4"));
}

static void test_mail_params_together(void)
{
	CHECK(mail("FROM:<a@b.example> SIZE=10  BODY=8BITMIME SMTPUTF8 RET=HDRS "
		   "ENVID=id1 AUTH=<> ",
		   0) == 0);
	CHECK(mp.has_size && mp.size == 10 && mp.body == SMTP_BODY_8BITMIME && mp.smtputf8);
	CHECK(mp.ret == SMTP_RET_HDRS);
	CHECK_STR(mp.envid, "id1");
	CHECK(mail("FROM:<> BODY=8BITMIME", 0) == 0 && addr.is_null);
}

static void test_mail_unknown_and_malformed_params(void)
{
	CHECK(mail_refused("FROM:<a@b.example> XFOO=1", 0, 555, "5.5.4"));
	CHECK(mail_refused("FROM:<a@b.example> XFOO", 0, 555, "5.5.4"));
	CHECK(mail_refused("FROM:<a@b.example> NOTIFY=NEVER", 0, 555, "5.5.4"));
	CHECK(mail_refused("FROM:<a@b.example> -X=1", 0, 501, "5.5.4"));
	CHECK(mail_refused("FROM:<a@b.example> A_B=1", 0, 501, "5.5.4"));
	CHECK(mail_refused("FROM:<a@b.example> =1", 0, 501, "5.5.4"));
	CHECK(mail_refused("FROM:<a@b.example> SIZE=1\t", 0, 501, "5.5.4"));
}

static void test_rcpt_plain(void)
{
	CHECK(rcpt("TO:<a@b.example>", 0, 0) == 0);
	CHECK_STR(addr.local, "a");
	CHECK_STR(addr.domain, "b.example");
	CHECK(rp.notify == SMTP_NOTIFY_UNSET && rp.orcpt[0] == '\0');
	CHECK(rcpt("to:<a@b.example>", 0, 0) == 0);
	CHECK(rcpt("TO: <a@b.example>", 0, 0) == 0);
	CHECK(rcpt("TO:<\"a b\"@b.example>", 0, 0) == 0);
	CHECK_STR(addr.local, "\"a b\"");
	CHECK(rcpt("TO:<@r1.example,@r2.example:a@b.example>", 0, 0) == 0);
	CHECK_STR(addr.domain, "b.example");
	CHECK(rcpt("TO:<a@[IPv6:2001:db8::1]>", 0, 0) == 0);
	CHECK(rcpt("TO:a@b.example", ADDR_ALLOW_NOBRACKETS, 0) == 0);
	CHECK(rcpt_refused("TO:a@b.example", 0, 501, "5.1.3"));
	CHECK(rcpt_refused("", 0, 501, "5.5.2"));
	CHECK(rcpt_refused("FROM:<a@b.example>", 0, 501, "5.5.2"));
	CHECK(rcpt_refused("TO:", 0, 501, "5.1.3"));
	CHECK(rcpt_refused("TO:  <a@b.example>", 0, 501, "5.1.3"));
	CHECK(rcpt_refused("TO:<a@b.example>x", 0, 501, "5.1.3"));
	CHECK(rcpt_refused("TO:<a.@b.example>", 0, 501, "5.1.3"));
	CHECK(rcpt_refused("TO:<a@-b.example>", 0, 501, "5.1.3"));
	/* the null path is never a recipient, whatever flags say */
	CHECK(rcpt_refused("TO:<>", 0, 501, "5.1.3"));
	CHECK(rcpt("TO:<>", ADDR_ALLOW_NULL, 0) == -1 && refused(501, "5.1.3"));
}

static void test_rcpt_postmaster(void)
{
	CHECK(rcpt("TO:<postmaster>", 0, 0) == 0);
	CHECK_STR(addr.local, "postmaster");
	CHECK_STR(addr.domain, "");
	CHECK(!addr.is_null);
	CHECK(rcpt("TO:<PostMaster>", 0, 0) == 0);
	CHECK_STR(addr.local, "postmaster");
	CHECK(rcpt("TO:<Postmaster> NOTIFY=NEVER", 0, 0) == 0 && rp.notify == SMTP_NOTIFY_NEVER);
	CHECK(rcpt("TO:<Postmaster@b.example>", 0, 0) == 0);
	CHECK_STR(addr.local, "Postmaster");
	CHECK_STR(addr.domain, "b.example");
	CHECK(rcpt_refused("TO:<postmaster>x", 0, 501, "5.1.3"));
	CHECK(rcpt_refused("TO:<postmasterx>", 0, 501, "5.1.3"));
	CHECK(rcpt_refused("TO:<abuse>", 0, 501, "5.1.3"));
}

static void test_rcpt_utf8_needs_smtputf8(void)
{
	CHECK(rcpt_refused("TO:<\xc3\xa9@b.example>", 0, 553, "5.6.7"));
	CHECK(rcpt_refused("TO:<a@\xe4\xbe\x8b.example>", 0, 553, "5.6.7"));
	CHECK(rcpt("TO:<\xc3\xa9@b.example>", 0, 1) == 0 && addr.utf8);
	CHECK(rcpt_refused("TO:<\xc0\xaf@b.example>", 1, 501, "5.1.3"));
	CHECK(rcpt_refused("TO:<\xf4\x90\x80\x80@b.example>", 1, 501, "5.1.3"));
}

static void test_rcpt_notify(void)
{
	CHECK(rcpt("TO:<a@b.example> NOTIFY=NEVER", 0, 0) == 0);
	CHECK(rp.notify == SMTP_NOTIFY_NEVER);
	CHECK(rcpt("TO:<a@b.example> NOTIFY=SUCCESS,FAILURE,DELAY", 0, 0) == 0);
	CHECK(rp.notify == (SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_FAILURE | SMTP_NOTIFY_DELAY));
	CHECK(rcpt("TO:<a@b.example> notify=failure", 0, 0) == 0);
	CHECK(rp.notify == SMTP_NOTIFY_FAILURE);
	CHECK(rcpt("TO:<a@b.example> NOTIFY=Delay,Success", 0, 0) == 0);
	CHECK(rp.notify == (SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_DELAY));
	CHECK(rcpt_refused("TO:<a@b.example> NOTIFY=NEVER,SUCCESS", 0, 501, "5.5.4"));
	CHECK(rcpt_refused("TO:<a@b.example> NOTIFY=SUCCESS,NEVER", 0, 501, "5.5.4"));
	CHECK(rcpt_refused("TO:<a@b.example> NOTIFY=NEVER,NEVER", 0, 501, "5.5.4"));
	CHECK(rcpt_refused("TO:<a@b.example> NOTIFY=SUCCESS,SUCCESS", 0, 501, "5.5.4"));
	CHECK(rcpt_refused("TO:<a@b.example> NOTIFY=SUCCESS,", 0, 501, "5.5.4"));
	CHECK(rcpt_refused("TO:<a@b.example> NOTIFY=,SUCCESS", 0, 501, "5.5.4"));
	CHECK(rcpt_refused("TO:<a@b.example> NOTIFY=SUCCESS,,DELAY", 0, 501, "5.5.4"));
	CHECK(rcpt_refused("TO:<a@b.example> NOTIFY=SOMETIMES", 0, 501, "5.5.4"));
	CHECK(rcpt_refused("TO:<a@b.example> NOTIFY", 0, 501, "5.5.4"));
	CHECK(rcpt_refused("TO:<a@b.example> NOTIFY=NEVER NOTIFY=NEVER", 0, 555, "5.5.4"));
}

static void test_rcpt_orcpt(void)
{
	char p[700], v[600];

	CHECK(rcpt("TO:<a@b.example> ORCPT=rfc822;a@b.example", 0, 0) == 0);
	CHECK_STR(rp.orcpt, "rfc822;a@b.example");
	CHECK(rcpt("TO:<a@b.example> orcpt=RFC822;a+2Bb@x.example", 0, 0) == 0);
	CHECK_STR(rp.orcpt, "RFC822;a+2Bb@x.example");
	CHECK(rcpt("TO:<a@b.example> ORCPT=utf-8;a@x NOTIFY=FAILURE,DELAY", 0, 0) == 0);
	CHECK_STR(rp.orcpt, "utf-8;a@x");
	CHECK(rp.notify == (SMTP_NOTIFY_FAILURE | SMTP_NOTIFY_DELAY));
	CHECK(rcpt_refused("TO:<a@b.example> ORCPT=rfc822", 0, 501, "5.5.4"));
	CHECK(rcpt_refused("TO:<a@b.example> ORCPT=;a@b.example", 0, 501, "5.5.4"));
	CHECK(rcpt_refused("TO:<a@b.example> ORCPT=rfc822;", 0, 501, "5.5.4"));
	CHECK(rcpt_refused("TO:<a@b.example> ORCPT=rfc(822);a@b", 0, 501, "5.5.4"));
	CHECK(rcpt_refused("TO:<a@b.example> ORCPT=rfc822;a+2", 0, 501, "5.5.4"));
	CHECK(rcpt_refused("TO:<a@b.example> ORCPT=rfc822;a+0Ab", 0, 501, "5.5.4"));
	CHECK(rcpt_refused("TO:<a@b.example> ORCPT", 0, 501, "5.5.4"));
	CHECK(rcpt_refused("TO:<a@b.example> ORCPT=rfc822;a ORCPT=rfc822;b", 0, 555, "5.5.4"));
	/* 500 octets as received pass, 501 do not */
	memcpy(v, "rfc822;", 7);
	memset(v + 7, 'o', 493);
	v[500] = '\0';
	snprintf(p, sizeof p, "TO:<a@b.example> ORCPT=%s", v);
	CHECK(rcpt(p, 0, 0) == 0 && strlen(rp.orcpt) == 500);
	snprintf(p, sizeof p, "TO:<a@b.example> ORCPT=%so", v);
	CHECK(rcpt_refused(p, 0, 501, "5.5.4"));
}

static void test_rcpt_unknown_params(void)
{
	CHECK(rcpt_refused("TO:<a@b.example> SIZE=10", 0, 555, "5.5.4"));
	CHECK(rcpt_refused("TO:<a@b.example> XFOO", 0, 555, "5.5.4"));
	CHECK(rcpt_refused("TO:<a@b.example> X_Y=1", 0, 501, "5.5.4"));
}

static void test_bdat(void)
{
	uint64_t size = 7;
	int last = 7;

	CHECK(smtp_parse_bdat("100", 3, &size, &last, &err) == 0 && size == 100 && !last);
	CHECK(smtp_parse_bdat("0 LAST", 6, &size, &last, &err) == 0 && size == 0 && last);
	CHECK(smtp_parse_bdat("5 last", 6, &size, &last, &err) == 0 && size == 5 && last);
	CHECK(smtp_parse_bdat("18446744073709551615", 20, &size, &last, &err) == 0);
	CHECK(size == UINT64_MAX);
	CHECK(smtp_parse_bdat("0000000000000000000000007", 25, &size, &last, &err) == 0);
	CHECK(size == 7);
	err = SMTP_REPLY(0, NULL, NULL);
	CHECK(smtp_parse_bdat("18446744073709551616", 20, &size, &last, &err) == -1);
	CHECK(refused(501, "5.5.4"));
	CHECK(smtp_parse_bdat("", 0, &size, &last, &err) == -1 && refused(501, "5.5.4"));
	CHECK(smtp_parse_bdat("abc", 3, &size, &last, &err) == -1);
	CHECK(smtp_parse_bdat("-1", 2, &size, &last, &err) == -1);
	CHECK(smtp_parse_bdat("10 ", 3, &size, &last, &err) == -1);
	CHECK(smtp_parse_bdat("10  LAST", 8, &size, &last, &err) == -1);
	CHECK(smtp_parse_bdat("10 LASTX", 8, &size, &last, &err) == -1);
	CHECK(smtp_parse_bdat("10 LAST ", 8, &size, &last, &err) == -1);
	CHECK(smtp_parse_bdat("10LAST", 6, &size, &last, &err) == -1);
	CHECK(smtp_parse_bdat(" 10", 3, &size, &last, &err) == -1);
}

static int helo(const char *s)
{
	err = SMTP_REPLY(0, NULL, NULL);
	return smtp_parse_helo_domain(s, strlen(s), &err);
}

static void test_helo_domain(void)
{
	CHECK(helo("mail.example") == 0);
	CHECK(helo("localhost") == 0);
	CHECK(helo("[192.0.2.1]") == 0);
	CHECK(helo("[IPv6:2001:db8::1]") == 0);
	CHECK(helo("DESKTOP_1A2B") == 0);
	CHECK(helo("mail.example some comment") == 0);
	CHECK(helo("") == -1 && refused(501, "5.5.4"));
	CHECK(helo("-bad.example") == -1 && refused(501, "5.5.4"));
	CHECK(helo("a..example") == -1);
	CHECK(helo("mail.example.") == -1);
	CHECK(helo("[192.0.2]") == -1);
	CHECK(helo(" mail.example") == -1);
	CHECK(helo("mail.example,x") == -1);
}

static void test_xtext(void)
{
	CHECK(xtext_valid("", 0));
	CHECK(xtext_valid("abc", 3));
	CHECK(xtext_valid("a+2B", 4));
	CHECK(xtext_valid("a+2b", 4));
	CHECK(xtext_valid("+00", 3));
	CHECK(xtext_valid("<>!~", 4));
	CHECK(!xtext_valid("a+", 2));
	CHECK(!xtext_valid("a+2", 3));
	CHECK(!xtext_valid("a+GG", 4));
	CHECK(!xtext_valid("a=b", 3));
	CHECK(!xtext_valid("a b", 3));
	CHECK(!xtext_valid("a\x7f", 2));
	CHECK(!xtext_valid("a\xc3\xa9", 3));
	CHECK(!xtext_valid("a\0", 2));
}

int main(void)
{
	RUN(test_verbs_case_insensitive);
	RUN(test_unknown_verbs);
	RUN(test_nul_cr_lf_in_command_line_refused);
	RUN(test_non_ascii_only_in_mail_and_rcpt);
	RUN(test_mail_plain);
	RUN(test_mail_syntax_errors);
	RUN(test_mail_size);
	RUN(test_mail_body);
	RUN(test_mail_smtputf8);
	RUN(test_mail_ret_envid_auth);
	RUN(test_mail_params_together);
	RUN(test_mail_unknown_and_malformed_params);
	RUN(test_rcpt_plain);
	RUN(test_rcpt_postmaster);
	RUN(test_rcpt_utf8_needs_smtputf8);
	RUN(test_rcpt_notify);
	RUN(test_rcpt_orcpt);
	RUN(test_rcpt_unknown_params);
	RUN(test_bdat);
	RUN(test_helo_domain);
	RUN(test_xtext);
	return check_summary();
}
