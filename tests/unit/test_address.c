/* test_address.c - RFC 5321 path and mailbox parsing (core/address.c). */
#include <string.h>

#include "check.h"
#include "core/address.h"

/* path - parse S as a whole path string; returns what address_parse_path
 * returned and leaves the result in *A, *USED and *WHY. */
static int path(const char *s, unsigned flags, struct address *a, size_t *used, const char **why)
{
	*used = 0;
	*why = NULL;
	return address_parse_path(s, strlen(s), flags, a, used, why);
}

/* ok_path - S parses with FLAGS, consuming all of it, into LOCAL@DOMAIN. */
static int ok_path(const char *s, unsigned flags, const char *local, const char *domain)
{
	struct address a;
	size_t used;
	const char *why;

	if (path(s, flags, &a, &used, &why) != 0) {
		fprintf(stderr, "  unexpected failure for %s: %s\n", s, why);
		return 0;
	}
	if (used != strlen(s) || strcmp(a.local, local) || strcmp(a.domain, domain)) {
		fprintf(stderr, "  %s -> [%s] [%s] used %zu\n", s, a.local, a.domain, used);
		return 0;
	}
	return 1;
}

/* bad_path - S is refused with FLAGS, with a reason and a cleared result. */
static int bad_path(const char *s, unsigned flags)
{
	struct address a;
	size_t used;
	const char *why;

	memset(&a, 'x', sizeof a);
	if (path(s, flags, &a, &used, &why) == 0) {
		fprintf(stderr, "  unexpected success for %s\n", s);
		return 0;
	}
	return why != NULL && why[0] != '\0' && a.local[0] == '\0' && a.domain[0] == '\0';
}

/* repeat - a string of N copies of C. */
static char *repeat(char *buf, char c, size_t n)
{
	memset(buf, c, n);
	buf[n] = '\0';
	return buf;
}

/* domain_of - a domain of exactly N octets: labels "aaa..." of 63 joined
 * by dots, the last one shortened. */
static char *domain_of(char *buf, size_t n)
{
	size_t i = 0;

	while (i < n) {
		size_t label = n - i < 63 ? n - i : 63;
		if (n - i - label == 1)
			label--; /* never leave a lone trailing dot */
		memset(buf + i, 'a', label);
		i += label;
		if (i < n)
			buf[i++] = '.';
	}
	buf[n] = '\0';
	return buf;
}

static void test_plain_path(void)
{
	struct address a;
	size_t used;
	const char *why;

	CHECK(path("<John.Doe@Example.COM>", 0, &a, &used, &why) == 0);
	CHECK_STR(a.local, "John.Doe");
	CHECK_STR(a.domain, "Example.COM");
	CHECK(used == 22);
	CHECK(!a.is_null && !a.utf8);
	/* parsing stops after '>' */
	CHECK(path("<a@b.example> SIZE=10", 0, &a, &used, &why) == 0);
	CHECK(used == 13);
	CHECK(ok_path("<a+b!#$%&'*/=?^_`{|}~-c@x.example>", 0, "a+b!#$%&'*/=?^_`{|}~-c",
		      "x.example"));
	CHECK(ok_path("<user@localhost>", 0, "user", "localhost"));
	CHECK(ok_path("<u@a--b.example>", 0, "u", "a--b.example"));
	CHECK(ok_path("<u@123.example>", 0, "u", "123.example"));
}

static void test_null_path_only_when_allowed(void)
{
	struct address a;
	size_t used;
	const char *why;

	CHECK(path("<>", ADDR_ALLOW_NULL, &a, &used, &why) == 0);
	CHECK(a.is_null);
	CHECK(used == 2);
	CHECK(path("<> BODY=8BITMIME", ADDR_ALLOW_NULL, &a, &used, &why) == 0);
	CHECK(used == 2);
	CHECK(bad_path("<>", 0));
	CHECK(bad_path("<>", ADDR_ALLOW_NOBRACKETS | ADDR_ALLOW_UTF8));
	CHECK(bad_path("< >", ADDR_ALLOW_NULL));
	CHECK(bad_path("", ADDR_ALLOW_NULL));
	CHECK(bad_path("<", ADDR_ALLOW_NULL));
}

static void test_source_route_ignored(void)
{
	CHECK(ok_path("<@a.example,@b.example:user@d.example>", 0, "user", "d.example"));
	CHECK(ok_path("<@a.example:user@d.example>", 0, "user", "d.example"));
	CHECK(bad_path("<@a.example user@d.example>", 0));
	CHECK(bad_path("<@a.example,user@d.example>", 0));
	CHECK(bad_path("<@:user@d.example>", 0));
	CHECK(bad_path("<@a.example,:user@d.example>", 0));
	CHECK(bad_path("<@-a.example:user@d.example>", 0));
	CHECK(bad_path("<@a.example:>", 0));
}

static void test_quoted_local_part_minimal_form(void)
{
	/* needs its quotes */
	CHECK(ok_path("<\"a b\"@x.example>", 0, "\"a b\"", "x.example"));
	CHECK(ok_path("<\"a@b\"@x.example>", 0, "\"a@b\"", "x.example"));
	CHECK(ok_path("<\"a..b\"@x.example>", 0, "\"a..b\"", "x.example"));
	CHECK(ok_path("<\".a\"@x.example>", 0, "\".a\"", "x.example"));
	CHECK(ok_path("<\"\"@x.example>", 0, "\"\"", "x.example"));
	/* a valid dot-string loses them */
	CHECK(ok_path("<\"ab\"@x.example>", 0, "ab", "x.example"));
	CHECK(ok_path("<\"a.b\"@x.example>", 0, "a.b", "x.example"));
	/* needless escapes dropped, needed ones kept */
	CHECK(ok_path("<\"a\\b\"@x.example>", 0, "ab", "x.example"));
	CHECK(ok_path("<\"a\\ b\"@x.example>", 0, "\"a b\"", "x.example"));
	CHECK(ok_path("<\"a\\\"b\"@x.example>", 0, "\"a\\\"b\"", "x.example"));
	CHECK(ok_path("<\"a\\\\b\"@x.example>", 0, "\"a\\\\b\"", "x.example"));
	/* refused */
	CHECK(bad_path("<\"ab@x.example>", 0));
	CHECK(bad_path("<\"a\"b@x.example>", 0));
	CHECK(bad_path("<\"a\tb\"@x.example>", 0));
	CHECK(bad_path("<\"a\\\tb\"@x.example>", 0));
	CHECK(bad_path("<\"a\\", 0));
	CHECK(bad_path("<\"a\x7f\"@x.example>", 0));
}

static void test_dot_string_rules(void)
{
	CHECK(ok_path("<a.b.c@x.example>", 0, "a.b.c", "x.example"));
	CHECK(bad_path("<.a@x.example>", 0));
	CHECK(bad_path("<a.@x.example>", 0));
	CHECK(bad_path("<a..b@x.example>", 0));
	CHECK(bad_path("<.@x.example>", 0));
	CHECK(bad_path("<@x.example>", 0));
	CHECK(bad_path("<a(b)@x.example>", 0));
	CHECK(bad_path("<a,b@x.example>", 0));
	CHECK(bad_path("<ab>", 0));
	CHECK(bad_path("<a@b@x.example>", 0));
}

static void test_spaces_inside_brackets_refused(void)
{
	CHECK(bad_path("< a@x.example>", 0));
	CHECK(bad_path("<a@x.example >", 0));
	CHECK(bad_path("<a @x.example>", 0));
	CHECK(bad_path("<a@ x.example>", 0));
	CHECK(bad_path("<a b@x.example>", 0));
	CHECK(bad_path("<a@x.example", 0));
	CHECK(bad_path("a@x.example>", 0));
}

static void test_address_literals(void)
{
	CHECK(ok_path("<u@[192.0.2.1]>", 0, "u", "[192.0.2.1]"));
	CHECK(ok_path("<u@[IPv6:2001:db8::1]>", 0, "u", "[IPv6:2001:db8::1]"));
	CHECK(ok_path("<u@[ipv6:::1]>", 0, "u", "[ipv6:::1]"));
	CHECK(ok_path("<u@[IPv6:::ffff:192.0.2.1]>", 0, "u", "[IPv6:::ffff:192.0.2.1]"));
	CHECK(ok_path("<u@[IPv6:2001:db8:0:0:0:0:0:1]>", 0, "u", "[IPv6:2001:db8:0:0:0:0:0:1]"));
	CHECK(bad_path("<u@[192.0.2.256]>", 0));
	CHECK(bad_path("<u@[192.0.2]>", 0));
	CHECK(bad_path("<u@[192.0.2.1.5]>", 0));
	CHECK(bad_path("<u@[2001:db8::1]>", 0)); /* IPv6 needs its tag */
	CHECK(bad_path("<u@[IPv6:2001:db8::g]>", 0));
	CHECK(bad_path("<u@[IPv6:1:2:3:4:5:6:7:8:9]>", 0));
	CHECK(bad_path("<u@[IPv6:]>", 0));
	CHECK(bad_path("<u@[x-tag:foo]>", 0));
	CHECK(bad_path("<u@[]>", 0));
	CHECK(bad_path("<u@[192.0.2.1>", 0));
	CHECK(bad_path("<u@[192.0.2.1]x>", 0));
	CHECK(bad_path("<u@[192.0.2.1 ]>", 0));
	CHECK(bad_path("<u@[1111111111111111111111111111111111111111111111111111111111111111]>",
		       0));
}

static void test_domain_labels(void)
{
	char buf[400], p[600];

	CHECK(bad_path("<u@-a.example>", 0));
	CHECK(bad_path("<u@a-.example>", 0));
	CHECK(bad_path("<u@a..example>", 0));
	CHECK(bad_path("<u@.a.example>", 0));
	CHECK(bad_path("<u@a.example.>", 0));
	CHECK(bad_path("<u@a_b.example>", 0));
	CHECK(bad_path("<u@>", 0));
	/* labels of 63 octets pass, 64 do not */
	snprintf(p, sizeof p, "<u@%s.example>", repeat(buf, 'b', 63));
	{
		struct address a;
		size_t used;
		const char *why;
		CHECK(path(p, 0, &a, &used, &why) == 0);
		CHECK(strlen(a.domain) == 71);
	}
	snprintf(p, sizeof p, "<u@%s.example>", repeat(buf, 'b', 64));
	CHECK(bad_path(p, 0));
	/* whole domains: 255 octets pass, 256 do not */
	CHECK(address_is_domain(domain_of(buf, 255), 255, 0));
	CHECK(!address_is_domain(domain_of(buf, 256), 256, 0));
	CHECK(address_is_domain("a.example", 9, 0));
	CHECK(address_is_domain("x", 1, 0));
	CHECK(!address_is_domain("a.example.", 10, 0));
	CHECK(!address_is_domain("", 0, 0));
	CHECK(!address_is_domain("a b", 3, 0));
	CHECK(!address_is_domain("[192.0.2.1]", 11, 0));
	CHECK(!address_is_domain("b\xc3\xbc"
				 "cher.example",
				 14, 0));
	CHECK(address_is_domain("b\xc3\xbc"
				"cher.example",
				14, 1));
	CHECK(!address_is_domain("b\xc3"
				 "cher.example",
				 13, 1));
}

static void test_length_limits(void)
{
	char local[100], dom[300], p[600];

	/* local part: 64 octets */
	snprintf(p, sizeof p, "<%s@x.example>", repeat(local, 'l', 64));
	CHECK(ok_path(p, 0, local, "x.example"));
	snprintf(p, sizeof p, "<%s@x.example>", repeat(local, 'l', 65));
	CHECK(bad_path(p, 0));
	/* a quoted local part counts its quotes: "+62+" is 64 */
	snprintf(p, sizeof p, "<\"%s\"@x.example>", repeat(local, 'q', 62));
	CHECK(ok_path(p, 0, local, "x.example"));
	snprintf(p, sizeof p, "<\"%s\"@x.example>", repeat(local, 'q', 63));
	CHECK(bad_path(p, 0));
	snprintf(p, sizeof p, "<\"%s \"@x.example>", repeat(local, 'q', 61));
	{
		struct address a;
		size_t used;
		const char *why;
		CHECK(path(p, 0, &a, &used, &why) == 0);
		CHECK(strlen(a.local) == 64);
	}
	/* domain: 255 octets, but the path (256 with <>) comes first here */
	snprintf(p, sizeof p, "<u@%s>", domain_of(dom, 252));
	CHECK(ok_path(p, 0, "u", dom));
	snprintf(p, sizeof p, "<u@%s>", domain_of(dom, 253));
	CHECK(bad_path(p, 0));
	snprintf(p, sizeof p, "<u@%s>", domain_of(dom, 256));
	CHECK(bad_path(p, 0));
	/* path: 256 octets including the brackets */
	snprintf(p, sizeof p, "<%s@%s>", repeat(local, 'l', 64), domain_of(dom, 189));
	CHECK(strlen(p) == 256);
	CHECK(ok_path(p, 0, local, dom));
	snprintf(p, sizeof p, "<%s@%s>", repeat(local, 'l', 64), domain_of(dom, 190));
	CHECK(bad_path(p, 0));
	/* a source route counts toward the path */
	snprintf(p, sizeof p, "<@%s:%s@x.example>", domain_of(dom, 200), repeat(local, 'l', 50));
	CHECK(bad_path(p, 0));
}

static void test_no_brackets_only_when_lenient(void)
{
	struct address a;
	size_t used;
	const char *why;

	CHECK(bad_path("user@x.example", 0));
	CHECK(ok_path("user@x.example", ADDR_ALLOW_NOBRACKETS, "user", "x.example"));
	CHECK(path("user@x.example SIZE=1", ADDR_ALLOW_NOBRACKETS, &a, &used, &why) == 0);
	CHECK(used == 14);
	CHECK(bad_path("user@x.example>", ADDR_ALLOW_NOBRACKETS));
	CHECK(bad_path("user", ADDR_ALLOW_NOBRACKETS));
	CHECK(bad_path("", ADDR_ALLOW_NOBRACKETS));
	/* brackets still work in lenient mode */
	CHECK(ok_path("<user@x.example>", ADDR_ALLOW_NOBRACKETS, "user", "x.example"));
}

static void test_utf8_only_with_smtputf8(void)
{
	const char *cn =
		"<\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.\xe5\xb9\xbf\xe5\x91\x8a>";
	struct address a;
	size_t used;
	const char *why;

	CHECK(path(cn, 0, &a, &used, &why) == -1);
	CHECK(why && strstr(why, "SMTPUTF8"));
	CHECK(path(cn, ADDR_ALLOW_UTF8, &a, &used, &why) == 0);
	CHECK(a.utf8);
	CHECK_STR(a.local, "\xe7\x94\xa8\xe6\x88\xb7");
	CHECK(used == strlen(cn));
	/* only the domain is UTF-8 */
	CHECK(path("<u@b\xc3\xbc"
		   "cher.example>",
		   0, &a, &used, &why) == -1);
	CHECK(ok_path("<u@b\xc3\xbc"
		      "cher.example>",
		      ADDR_ALLOW_UTF8, "u",
		      "b\xc3\xbc"
		      "cher.example"));
	/* a quoted UTF-8 local part keeps its quotes when it has a space */
	CHECK(ok_path("<\"\xc3\xa9 x\"@d.example>", ADDR_ALLOW_UTF8, "\"\xc3\xa9 x\"",
		      "d.example"));
	CHECK(ok_path("<\"\xc3\xa9x\"@d.example>", ADDR_ALLOW_UTF8, "\xc3\xa9x", "d.example"));
	/* ASCII address with the flag: not marked */
	CHECK(path("<u@x.example>", ADDR_ALLOW_UTF8, &a, &used, &why) == 0);
	CHECK(!a.utf8);
}

static void test_invalid_utf8_refused(void)
{
	unsigned f = ADDR_ALLOW_UTF8;

	CHECK(bad_path("<\xc0\xaf@x.example>", f));	    /* overlong '/' */
	CHECK(bad_path("<\xe0\x80\xaf@x.example>", f));	    /* overlong, 3 bytes */
	CHECK(bad_path("<\xf0\x80\x80\xaf@x.example>", f)); /* overlong, 4 bytes */
	CHECK(bad_path("<\xed\xa0\x80@x.example>", f));	    /* surrogate U+D800 */
	CHECK(bad_path("<\xed\xbf\xbf@x.example>", f));	    /* surrogate U+DFFF */
	CHECK(bad_path("<\xf4\x90\x80\x80@x.example>", f)); /* above U+10FFFF */
	CHECK(bad_path("<\xe4\xbd@x.example>", f));	    /* truncated */
	CHECK(bad_path("<\x80@x.example>", f));		    /* lone continuation */
	CHECK(bad_path("<\xff@x.example>", f));
	CHECK(bad_path("<\xc2\x85@x.example>", f)); /* C1 control NEL */
	CHECK(bad_path("<u@\xc0\xae.example>", f));
	CHECK(bad_path("<\"\xed\xa0\x80\"@x.example>", f));
	CHECK(bad_path("<u@-\xc3\xbc.example>", f));
}

static void test_utf8_valid(void)
{
	CHECK(utf8_valid("", 0));
	CHECK(utf8_valid("plain ascii", 11));
	CHECK(utf8_valid("\xc3\xa9", 2));
	CHECK(utf8_valid("\xc2\x80", 2)); /* U+0080: well-formed (C1 is a policy matter) */
	CHECK(utf8_valid("\xef\xbf\xbf", 3));
	CHECK(utf8_valid("\xf0\x9f\x98\x80", 4));
	CHECK(utf8_valid("\xf4\x8f\xbf\xbf", 4)); /* U+10FFFF */
	CHECK(!utf8_valid("\xc0\x80", 2));
	CHECK(!utf8_valid("\xc1\xbf", 2));
	CHECK(!utf8_valid("\xe0\x9f\xbf", 3));
	CHECK(!utf8_valid("\xf0\x8f\xbf\xbf", 4));
	CHECK(!utf8_valid("\xed\xa0\x80", 3));
	CHECK(!utf8_valid("\xed\xbf\xbf", 3));
	CHECK(utf8_valid("\xed\x9f\xbf", 3)); /* U+D7FF */
	CHECK(!utf8_valid("\xf4\x90\x80\x80", 4));
	CHECK(!utf8_valid("\xf5\x80\x80\x80", 4));
	CHECK(!utf8_valid("\xf8\x88\x80\x80\x80", 5));
	CHECK(!utf8_valid("\x80", 1));
	CHECK(!utf8_valid("\xc3", 1));
	CHECK(!utf8_valid("\xe2\x82", 2));
	CHECK(!utf8_valid("a\xc3(", 3));
}

static void test_parse_mailbox(void)
{
	struct address a;
	const char *why = NULL;
	char local[100], dom[300], m[600];

	CHECK(address_parse_mailbox("a@b.example", 11, 0, &a, &why) == 0);
	CHECK_STR(a.local, "a");
	CHECK_STR(a.domain, "b.example");
	CHECK(address_parse_mailbox("\"a b\"@b.example", 15, 0, &a, &why) == 0);
	CHECK_STR(a.local, "\"a b\"");
	CHECK(address_parse_mailbox("a@b.example>", 12, 0, &a, &why) == -1);
	CHECK(why != NULL);
	CHECK(address_parse_mailbox("<a@b.example>", 13, 0, &a, &why) == -1);
	CHECK(address_parse_mailbox("a@b.example ", 12, 0, &a, &why) == -1);
	CHECK(address_parse_mailbox("a", 1, 0, &a, &why) == -1);
	CHECK(address_parse_mailbox("\xc3\xa9@b.example", 12, 0, &a, &why) == -1);
	CHECK(address_parse_mailbox("\xc3\xa9@b.example", 12, ADDR_ALLOW_UTF8, &a, &why) == 0);
	CHECK(a.utf8);
	/* 254 octets is the most a path of 256 can hold */
	snprintf(m, sizeof m, "%s@%s", repeat(local, 'l', 64), domain_of(dom, 189));
	CHECK(address_parse_mailbox(m, strlen(m), 0, &a, &why) == 0);
	snprintf(m, sizeof m, "%s@%s", repeat(local, 'l', 64), domain_of(dom, 190));
	CHECK(address_parse_mailbox(m, strlen(m), 0, &a, &why) == -1);
}

static void test_format(void)
{
	struct address a;
	const char *why;
	char out[300];

	CHECK(address_parse_mailbox("\"a b\"@x.example", 15, 0, &a, &why) == 0);
	CHECK(address_format(&a, out, sizeof out) == 15);
	CHECK_STR(out, "\"a b\"@x.example");
	CHECK(address_format(&a, out, 16) == 15);
	CHECK(address_format(&a, out, 15) == -1);
	CHECK(address_format(&a, out, 0) == -1);
	memset(&a, 0, sizeof a);
	a.is_null = 1;
	CHECK(address_format(&a, out, sizeof out) == 0);
	CHECK_STR(out, "");
	memset(&a, 0, sizeof a);
	strcpy(a.local, "postmaster");
	CHECK(address_format(&a, out, sizeof out) == 10);
	CHECK_STR(out, "postmaster");
}

static void test_helo_name(void)
{
	size_t used = 0;

	CHECK(address_is_helo_name("mail.example", 12, &used) && used == 12);
	CHECK(address_is_helo_name("DESKTOP_1.lan", 13, &used) && used == 13);
	CHECK(address_is_helo_name("[192.0.2.1]", 11, &used) && used == 11);
	CHECK(address_is_helo_name("[IPv6:::1]", 10, &used) && used == 10);
	CHECK(address_is_helo_name("a.example extra", 15, &used) && used == 9);
	CHECK(!address_is_helo_name("", 0, &used));
	CHECK(!address_is_helo_name("-a.example", 10, &used));
	CHECK(!address_is_helo_name("[300.1.1.1]", 11, &used));
	CHECK(!address_is_helo_name("\xc3\xa9.example", 10, &used));
}

/* Found by fuzzing: UTF-8 in a source route, which is thrown away, must
 * not mark an ASCII mailbox as UTF-8. */
static void test_utf8_in_source_route_does_not_mark_address(void)
{
	struct address a;
	size_t used;
	const char *why;
	const char *p = "<@r\xc3\xa9.example:user@d.example>";
	CHECK(address_parse_path(p, strlen(p), ADDR_ALLOW_UTF8, &a, &used, &why) == 0);
	CHECK_STR(a.local, "user");
	CHECK(a.utf8 == 0);
}

int main(void)
{
	RUN(test_utf8_in_source_route_does_not_mark_address);
	RUN(test_plain_path);
	RUN(test_null_path_only_when_allowed);
	RUN(test_source_route_ignored);
	RUN(test_quoted_local_part_minimal_form);
	RUN(test_dot_string_rules);
	RUN(test_spaces_inside_brackets_refused);
	RUN(test_address_literals);
	RUN(test_domain_labels);
	RUN(test_length_limits);
	RUN(test_no_brackets_only_when_lenient);
	RUN(test_utf8_only_with_smtputf8);
	RUN(test_invalid_utf8_refused);
	RUN(test_utf8_valid);
	RUN(test_parse_mailbox);
	RUN(test_format);
	RUN(test_helo_name);
	return check_summary();
}
