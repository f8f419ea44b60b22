/* test_mime.c - the message composer of the HTTP API: structure, the
 * encodings of RFC 2045/2047/2231, line limits, and the checks that keep
 * header injection out.  Composed messages are parsed back with Python's
 * email package (the reader a user would trust) and compared. */
#include <event2/buffer.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "core/address.h"
#include "http/mime.h"

/* Reads the message file named in argv[1] and prints a JSON summary:
 * decoded header fields, the tree of content types, and for each leaf
 * its decoded bytes (hex), charset, transfer encoding and file name. */
static const char py_summary[] =
	"import email, email.policy, json, sys\n"
	"raw = open(sys.argv[1], 'rb').read()\n"
	"m = email.message_from_bytes(raw, policy=email.policy.default)\n"
	"def tree(p):\n"
	"    if p.is_multipart():\n"
	"        return [p.get_content_type(), [tree(c) for c in p.iter_parts()]]\n"
	"    return p.get_content_type()\n"
	"leaves = []\n"
	"for p in m.walk():\n"
	"    if p.is_multipart(): continue\n"
	"    leaves.append({'type': p.get_content_type(), 'cte': p.get('Content-Transfer-Encoding'),\n"
	"        'charset': p.get_content_charset(), 'filename': p.get_filename(),\n"
	"        'disposition': p.get_content_disposition(),\n"
	"        'hex': (p.get_payload(decode=True) or b'').hex()})\n"
	"to = m['To']\n"
	"out = {'subject': str(m['Subject']) if m['Subject'] is not None else None,\n"
	"    'from_name': m['From'].addresses[0].display_name,\n"
	"    'from_addr': m['From'].addresses[0].addr_spec,\n"
	"    'to': [a.addr_spec for a in to.addresses] if to else [],\n"
	"    'to_names': [a.display_name for a in to.addresses] if to else [],\n"
	"    'cc': [a.addr_spec for a in m['Cc'].addresses] if m['Cc'] else [],\n"
	"    'reply_to': [a.addr_spec for a in m['Reply-To'].addresses] if m['Reply-To'] else [],\n"
	"    'bcc': m['Bcc'], 'message_id': m['Message-ID'], 'date': m['Date'].datetime.isoformat(),\n"
	"    'x_custom': str(m['X-Custom']) if m['X-Custom'] else None,\n"
	"    'defects': len(m.defects) + sum(len(p.defects) for p in m.walk()),\n"
	"    'tree': tree(m), 'leaves': leaves}\n"
	"print(json.dumps(out))\n";

static char tmpdir[64];

/* compose - M composed into a malloc'ed NUL-terminated string. */
static char *compose(const struct mime_message *m, size_t *len)
{
	struct evbuffer *b = evbuffer_new();
	CHECK(mime_compose(m, b) == 0);
	*len = evbuffer_get_length(b);
	char *s = malloc(*len + 1);
	evbuffer_remove(b, s, *len);
	s[*len] = '\0';
	evbuffer_free(b);
	return s;
}

/* summarize - RAW parsed by Python; NULL when it could not be run. */
static json_t *summarize(const char *raw, size_t len)
{
	char msg[128], script[128], cmd[512];
	snprintf(msg, sizeof msg, "%s/msg.eml", tmpdir);
	snprintf(script, sizeof script, "%s/summary.py", tmpdir);
	FILE *f = fopen(msg, "wb"), *g = fopen(script, "w");
	CHECK(f && g);
	if (!f || !g)
		return NULL;
	fwrite(raw, 1, len, f);
	fputs(py_summary, g);
	fclose(f);
	fclose(g);
	snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s %s", script, msg);
	FILE *p = popen(cmd, "r");
	CHECK(p != NULL);
	if (!p)
		return NULL;
	json_error_t jerr;
	json_t *j = json_loadf(p, 0, &jerr);
	CHECK(pclose(p) == 0);
	if (!j)
		fprintf(stderr, "summary not JSON: %s\n", jerr.text);
	CHECK(j != NULL);
	return j;
}

static const char *jstr(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* hex - LEN bytes of DATA as lower-case hex, malloc'ed. */
static char *hex(const void *data, size_t len)
{
	char *out = malloc(2 * len + 1);
	for (size_t i = 0; i < len; i++)
		sprintf(out + 2 * i, "%02x", ((const unsigned char *)data)[i]);
	out[2 * len] = '\0';
	return out;
}

/* check_lines - CRLF only, 7-bit only, and every line within LIMIT (no
 * line at all beyond 998). */
static void check_lines(const char *s, size_t len, size_t limit)
{
	size_t col = 0, longest = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		CHECK(c < 0x80 && c != 0);
		if (c == '\n') {
			CHECK(i > 0 && s[i - 1] == '\r');
			col = 0;
		} else if (c != '\r' && ++col > longest) {
			longest = col;
		}
	}
	CHECK(longest <= limit);
	CHECK(len >= 2 && memcmp(s + len - 2, "\r\n", 2) == 0);
}

/* header_of - the unparsed header block of RAW (up to the blank line). */
static char *header_of(const char *raw)
{
	const char *end = strstr(raw, "\r\n\r\n");
	size_t n = end ? (size_t)(end - raw) + 2 : strlen(raw);
	char *h = malloc(n + 1);
	memcpy(h, raw, n);
	h[n] = '\0';
	return h;
}

static void test_text_only_is_7bit_single_part(void)
{
	struct mime_mailbox to = { NULL, "bob@tern.test" };
	struct mime_message m = {
		.date = 1700000000,
		.from = { "Alice", "alice@tern.test" },
		.to = &to,
		.nto = 1,
		.subject = "Hello",
		.message_id = "<1.abc@mx.tern.test>",
		.text = "Line one\nLine two\r\n",
	};
	size_t len;
	char *raw = compose(&m, &len);
	check_lines(raw, len, 78);
	CHECK(strstr(raw, "Content-Transfer-Encoding: 7bit\r\n") != NULL);
	CHECK(strstr(raw, "\r\n\r\nLine one\r\nLine two\r\n") != NULL);
	CHECK(strstr(raw, "MIME-Version: 1.0\r\n") != NULL);
	json_t *j = summarize(raw, len);
	if (j) {
		CHECK_STR(jstr(j, "subject"), "Hello");
		CHECK_STR(jstr(j, "from_name"), "Alice");
		CHECK_STR(jstr(j, "from_addr"), "alice@tern.test");
		CHECK_STR(jstr(j, "message_id"), "<1.abc@mx.tern.test>");
		CHECK(json_integer_value(json_object_get(j, "defects")) == 0);
		CHECK_STR(json_string_value(json_object_get(j, "tree")), "text/plain");
		json_t *leaf = json_array_get(json_object_get(j, "leaves"), 0);
		CHECK_STR(jstr(leaf, "charset"), "utf-8");
		char *want = hex("Line one\r\nLine two\r\n", 20);
		CHECK_STR(jstr(leaf, "hex"), want);
		free(want);
		json_decref(j);
	}
	free(raw);
}

/* The message the API test sends, in small: every feature at once. */
static void test_full_message_parses_back_intact(void)
{
	unsigned char pdf[3000], png[1];
	for (size_t i = 0; i < sizeof pdf; i++)
		pdf[i] = (unsigned char)(i * 7 + 3);
	png[0] = 0xff;
	const char *long_name = "Jahresübersicht 2024 – Überweisungen und Rechnungen für das "
				"zweite Halbjahr (final, geprüft).pdf";
	struct mime_attachment att[] = {
		{ long_name, "application/pdf", pdf, sizeof pdf },
		{ "pixel \"1\".png", "image/png", png, sizeof png },
	};
	struct mime_mailbox to[] = { { "Bob Example", "bob@tern.test" },
				     { "Zoë Ünicode-Name", "zoe@example.org" } };
	struct mime_mailbox cc = { NULL, "carol@example.org" };
	struct mime_mailbox reply = { "Help", "help@tern.test" };
	struct mime_field fields[] = { { "X-Custom", "wert mit ümlaut" },
				       { "List-Unsubscribe", "<mailto:u@tern.test>" } };
	const char *subject = "Grüße aus Köln — ein ziemlich langer Betreff, der über mehrere "
			      "encoded-words gefaltet werden muss ✓✓✓";
	struct mime_message m = {
		.trace = "Received: from [127.0.0.1] by mx.tern.test with HTTP id X1;\r\n"
			 " Mon, 01 Jan 2024 12:00:00 +0000\r\n",
		.date = 1700000000,
		.from = { "Jürgen Groß", "alice@tern.test" },
		.reply_to = &reply,
		.nreply_to = 1,
		.to = to,
		.nto = 2,
		.cc = &cc,
		.ncc = 1,
		.subject = subject,
		.message_id = "<X1.0011@mx.tern.test>",
		.fields = fields,
		.nfields = 2,
		.text = "Hallo Bob,\nanbei die Unterlagen.\n",
		.html = "<p>Hallo <b>Bob</b>,</p>\n<p>anbei die Unterlagen. €</p>\n",
		.attachments = att,
		.nattachments = 2,
	};
	size_t len;
	char *raw = compose(&m, &len);
	check_lines(raw, len, 78);
	CHECK(strncmp(raw, "Received: from [127.0.0.1]", 26) == 0);
	json_t *j = summarize(raw, len);
	if (!j) {
		free(raw);
		return;
	}
	CHECK_STR(jstr(j, "subject"), subject);
	CHECK_STR(jstr(j, "from_name"), "Jürgen Groß");
	CHECK_STR(jstr(j, "x_custom"), "wert mit ümlaut");
	CHECK(json_is_null(json_object_get(j, "bcc")));
	CHECK(json_integer_value(json_object_get(j, "defects")) == 0);
	json_t *names = json_object_get(j, "to_names"), *tos = json_object_get(j, "to");
	CHECK_STR(json_string_value(json_array_get(names, 1)), "Zoë Ünicode-Name");
	CHECK_STR(json_string_value(json_array_get(tos, 0)), "bob@tern.test");
	CHECK_STR(json_string_value(json_array_get(tos, 1)), "zoe@example.org");
	CHECK_STR(json_string_value(json_array_get(json_object_get(j, "cc"), 0)),
		  "carol@example.org");
	CHECK_STR(json_string_value(json_array_get(json_object_get(j, "reply_to"), 0)),
		  "help@tern.test");
	char *tree = json_dumps(json_object_get(j, "tree"), JSON_COMPACT);
	CHECK_STR(tree, "[\"multipart/mixed\",[[\"multipart/alternative\",[\"text/plain\","
			"\"text/html\"]],\"application/pdf\",\"image/png\"]]");
	free(tree);
	json_t *leaves = json_object_get(j, "leaves");
	CHECK(json_array_size(leaves) == 4);
	char *text = hex("Hallo Bob,\r\nanbei die Unterlagen.\r\n", 35);
	CHECK_STR(jstr(json_array_get(leaves, 0), "hex"), text);
	free(text);
	const char *html = "<p>Hallo <b>Bob</b>,</p>\r\n<p>anbei die Unterlagen. €</p>\r\n";
	char *hhex = hex(html, strlen(html));
	CHECK_STR(jstr(json_array_get(leaves, 1), "hex"), hhex);
	CHECK_STR(jstr(json_array_get(leaves, 1), "cte"), "quoted-printable");
	free(hhex);
	for (size_t i = 0; i < 2; i++) {
		json_t *leaf = json_array_get(leaves, 2 + i);
		char *want = hex(att[i].data, att[i].len);
		CHECK_STR(jstr(leaf, "hex"), want);
		CHECK_STR(jstr(leaf, "filename"), att[i].filename);
		CHECK_STR(jstr(leaf, "disposition"), "attachment");
		CHECK_STR(jstr(leaf, "cte"), "base64");
		free(want);
	}
	/* RFC 2231 continuations carry the long name. */
	CHECK(strstr(raw, "filename*0*=utf-8''") != NULL);
	CHECK(strstr(raw, "filename*1*=") != NULL);
	CHECK(strstr(raw, "filename*=utf-8''pixel%20%221%22.png") != NULL);
	json_decref(j);
	free(raw);
}

/* Every base64 line of an attachment is 76 characters, the last shorter. */
static void test_base64_lines_are_76(void)
{
	unsigned char data[1000];
	memset(data, 0xa5, sizeof data);
	struct mime_attachment att = { "a.bin", "application/octet-stream", data, sizeof data };
	struct mime_mailbox to = { NULL, "bob@tern.test" };
	struct mime_message m = { .date = 0, .from = { NULL, "a@tern.test" }, .to = &to, .nto = 1,
				  .message_id = "<x@y>", .attachments = &att, .nattachments = 1 };
	size_t len;
	char *raw = compose(&m, &len);
	const char *p = strstr(raw, "Content-Transfer-Encoding: base64\r\n");
	CHECK(p != NULL);
	p = p ? strstr(p, "\r\n\r\n") : NULL;
	int full = 0, last = 0;
	for (const char *q = p ? p + 4 : raw; p && strncmp(q, "--", 2) != 0;) {
		const char *e = strstr(q, "\r\n");
		size_t n = (size_t)(e - q);
		if (n == 76)
			full++;
		else
			last = (int)n;
		q = e + 2;
	}
	CHECK(full == 1000 / 57);
	CHECK(last == 4 * ((1000 % 57 + 2) / 3));
	free(raw);
}

/* Non-ASCII and long lines go quoted-printable; the soft breaks and the
 * blank before a line end follow RFC 2045 6.7; decoding gives it back. */
static void test_quoted_printable_round_trip(void)
{
	char text[3000];
	size_t n = 0;
	n += (size_t)sprintf(text + n, "trailing blank \nsum = 1 =_ \tx\n");
	for (int i = 0; i < 1200; i++)
		text[n++] = (char)('a' + i % 26);
	n += (size_t)sprintf(text + n, "\nüber\n");
	text[n] = '\0';
	struct mime_mailbox to = { NULL, "bob@tern.test" };
	struct mime_message m = { .date = 0, .from = { NULL, "a@tern.test" }, .to = &to, .nto = 1,
				  .message_id = "<x@y>", .text = text };
	size_t len;
	char *raw = compose(&m, &len);
	check_lines(raw, len, 78);
	CHECK(strstr(raw, "Content-Transfer-Encoding: quoted-printable") != NULL);
	CHECK(strstr(raw, "trailing blank=20\r\n") != NULL);
	CHECK(strstr(raw, "sum =3D 1 =3D_ \tx\r\n") != NULL);
	json_t *j = summarize(raw, len);
	if (j) {
		/* The decoded bytes are the text with CRLF line ends. */
		char crlf[3200];
		size_t k = 0;
		for (size_t i = 0; i < n; i++) {
			if (text[i] == '\n')
				crlf[k++] = '\r';
			crlf[k++] = text[i];
		}
		char *want = hex(crlf, k);
		CHECK_STR(jstr(json_array_get(json_object_get(j, "leaves"), 0), "hex"), want);
		free(want);
		json_decref(j);
	}
	free(raw);
}

/* Each encoded-word is at most 75 characters and decodes to complete
 * UTF-8 by itself (RFC 2047 2 and 6.3). */
static void test_encoded_words_are_short_and_whole(void)
{
	char subject[600];
	size_t n = 0;
	for (int i = 0; i < 100; i++)
		n += (size_t)sprintf(subject + n, "ä€");
	struct mime_mailbox to = { NULL, "bob@tern.test" };
	struct mime_message m = { .date = 0, .from = { NULL, "a@tern.test" }, .to = &to, .nto = 1,
				  .message_id = "<x@y>", .subject = subject, .text = "x" };
	size_t len;
	char *raw = compose(&m, &len);
	char *h = header_of(raw);
	int words = 0;
	for (char *p = strstr(h, "=?utf-8?B?"); p; p = strstr(p + 1, "=?utf-8?B?")) {
		char *e = strstr(p + 10, "?=");
		CHECK(e != NULL);
		if (!e)
			break;
		CHECK(e + 2 - p <= 75);
		unsigned char bin[64];
		size_t binlen = 0;
		CHECK(sodium_base642bin(bin, sizeof bin, p + 10, (size_t)(e - p - 10), NULL, &binlen,
					NULL, sodium_base64_VARIANT_ORIGINAL) == 0);
		CHECK(utf8_valid((const char *)bin, binlen));
		words++;
	}
	CHECK(words >= 500 / 45 + 1); /* 100 x 5 bytes */
	json_t *j = summarize(raw, len);
	if (j) {
		CHECK_STR(jstr(j, "subject"), subject);
		json_decref(j);
	}
	free(h);
	free(raw);
}

/* ASCII text that looks like an encoded-word is encoded itself, so the
 * reader sees the characters that were sent; plain ASCII folds at spaces
 * and unfolds to the same text. */
static void test_ascii_subjects(void)
{
	char subject[400];
	size_t n = 0;
	for (int i = 0; i < 40; i++)
		n += (size_t)sprintf(subject + n, "word%02d ", i);
	subject[n - 1] = '\0';
	const char *tricky = "=?utf-8?B?SGk=?= is not for decoding";
	for (int round = 0; round < 2; round++) {
		const char *s = round ? tricky : subject;
		struct mime_mailbox to = { NULL, "bob@tern.test" };
		struct mime_message m = { .date = 0, .from = { NULL, "a@tern.test" }, .to = &to,
					  .nto = 1, .message_id = "<x@y>", .subject = s,
					  .text = "x" };
		size_t len;
		char *raw = compose(&m, &len);
		check_lines(raw, len, 78);
		char *h = header_of(raw);
		if (round == 0)
			CHECK(strstr(h, "=?utf-8?") == NULL);
		else
			CHECK(strstr(h, "SGk=?= is") == NULL);
		json_t *j = summarize(raw, len);
		if (j) {
			CHECK_STR(jstr(j, "subject"), s);
			json_decref(j);
		}
		free(h);
		free(raw);
	}
}

static void test_date_format(void)
{
	char d[64];
	setenv("TZ", "UTC", 1);
	tzset();
	mime_format_date(1700000000, d, sizeof d);
	CHECK_STR(d, "Tue, 14 Nov 2023 22:13:20 +0000");
	setenv("TZ", "Asia/Kolkata", 1);
	tzset();
	mime_format_date(1700000000, d, sizeof d);
	if (strcmp(d, "Tue, 14 Nov 2023 22:13:20 +0000") != 0) /* zone data installed */
		CHECK_STR(d, "Wed, 15 Nov 2023 03:43:20 +0530");
	unsetenv("TZ");
	tzset();
}

static void test_header_text_check(void)
{
	CHECK(mime_header_text_ok("plain text\twith tab", 19));
	CHECK(mime_header_text_ok("Grüße", strlen("Grüße")));
	CHECK(!mime_header_text_ok("a\r\nBcc: x@y", 11));
	CHECK(!mime_header_text_ok("a\nb", 3));
	CHECK(!mime_header_text_ok("a\rb", 3));
	CHECK(!mime_header_text_ok("a\0b", 3));
	CHECK(!mime_header_text_ok("bell\a", 5));
	CHECK(!mime_header_text_ok("del\x7f", 4));
	CHECK(!mime_header_text_ok("\xc3(", 2)); /* broken UTF-8 */
	CHECK(!mime_header_text_ok("\xc0\xaf", 2)); /* overlong '/' */
}

static void test_field_names(void)
{
	CHECK(mime_field_name_ok("X-Campaign"));
	CHECK(mime_field_name_ok("List-Unsubscribe"));
	CHECK(!mime_field_name_ok(""));
	CHECK(!mime_field_name_ok("X Space"));
	CHECK(!mime_field_name_ok("X:Colon"));
	CHECK(!mime_field_name_ok("X-\r\nBcc"));
	CHECK(!mime_field_name_ok("X-Ü"));
	char longname[80];
	memset(longname, 'a', 77);
	longname[77] = '\0';
	CHECK(!mime_field_name_ok(longname));
	const char *reserved[] = { "From",	   "to",      "CC",	     "Bcc",	    "Date",
				   "message-id",   "Subject", "MIME-Version", "Content-Type",
				   "content-transfer-encoding", "Sender",   "Reply-To",
				   "Received",	   "Return-Path", "Resent-From", "X-Tern-Tags" };
	for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++)
		CHECK(mime_field_reserved(reserved[i]));
	CHECK(!mime_field_reserved("X-Campaign"));
	CHECK(!mime_field_reserved("List-Unsubscribe"));
	CHECK(!mime_field_reserved("Fromage"));
}

static void test_content_types_and_filenames(void)
{
	CHECK(mime_content_type_ok("application/pdf"));
	CHECK(mime_content_type_ok("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"));
	CHECK(!mime_content_type_ok("text/plain; charset=utf-8"));
	CHECK(!mime_content_type_ok("text"));
	CHECK(!mime_content_type_ok("/plain"));
	CHECK(!mime_content_type_ok("text/"));
	CHECK(!mime_content_type_ok("a/b/c"));
	CHECK(!mime_content_type_ok("text/plain\r\nBcc: x"));
	CHECK(mime_filename_ok("report.pdf"));
	CHECK(mime_filename_ok("Übersicht 2024.xlsx"));
	CHECK(!mime_filename_ok(""));
	CHECK(!mime_filename_ok("../etc/passwd"));
	CHECK(!mime_filename_ok("c:\\boot.ini"));
	CHECK(!mime_filename_ok("a\nb"));
}

static void test_split_mailbox(void)
{
	char name[MIME_NAME_MAX + 1], addr[ADDR_PATH_MAX + 1];
	CHECK(mime_split_mailbox("alice@tern.test", name, sizeof name, addr, sizeof addr) == 0);
	CHECK_STR(name, "");
	CHECK_STR(addr, "alice@tern.test");
	CHECK(mime_split_mailbox("Alice Example <alice@tern.test>", name, sizeof name, addr,
				 sizeof addr) == 0);
	CHECK_STR(name, "Alice Example");
	CHECK_STR(addr, "alice@tern.test");
	CHECK(mime_split_mailbox("\"Smith, \\\"Al\\\" <x>\" <al@tern.test>", name, sizeof name,
				 addr, sizeof addr) == 0);
	CHECK_STR(name, "Smith, \"Al\" <x>");
	CHECK_STR(addr, "al@tern.test");
	CHECK(mime_split_mailbox("<bob@tern.test>", name, sizeof name, addr, sizeof addr) == 0);
	CHECK_STR(name, "");
	CHECK_STR(addr, "bob@tern.test");
	CHECK(mime_split_mailbox("Jürgen <j@tern.test>", name, sizeof name, addr, sizeof addr) ==
	      0);
	CHECK_STR(name, "Jürgen");
	CHECK(mime_split_mailbox("Evil\r\nBcc: x@y <a@b>", name, sizeof name, addr, sizeof addr) <
	      0);
	CHECK(mime_split_mailbox("a <b> <c@d>", name, sizeof name, addr, sizeof addr) < 0);
	CHECK(mime_split_mailbox("a <c@d", name, sizeof name, addr, sizeof addr) < 0);
	CHECK(mime_split_mailbox("c@d>", name, sizeof name, addr, sizeof addr) < 0);
	CHECK(mime_split_mailbox("\"open <c@d>", name, sizeof name, addr, sizeof addr) < 0);
	char tiny[4];
	CHECK(mime_split_mailbox("Alice <a@b>", tiny, sizeof tiny, addr, sizeof addr) < 0);
}

/* A text with "=_" in it is quoted-printable, so no 7bit part can hold a
 * line that starts one of our boundaries. */
static void test_boundary_cannot_occur_in_parts(void)
{
	struct mime_mailbox to = { NULL, "bob@tern.test" };
	struct mime_message m = { .date = 0, .from = { NULL, "a@tern.test" }, .to = &to, .nto = 1,
				  .message_id = "<x@y>", .text = "--=_tern_0000\n",
				  .html = "<p>x</p>" };
	size_t len;
	char *raw = compose(&m, &len);
	CHECK(strstr(raw, "\r\n--=3D_tern_0000\r\n") != NULL);
	json_t *j = summarize(raw, len);
	if (j) {
		CHECK(json_array_size(json_object_get(j, "leaves")) == 2);
		char *want = hex("--=_tern_0000\r\n", 15);
		CHECK_STR(jstr(json_array_get(json_object_get(j, "leaves"), 0), "hex"), want);
		free(want);
		json_decref(j);
	}
	free(raw);
}

int main(void)
{
	snprintf(tmpdir, sizeof tmpdir, "/tmp/test_mime.XXXXXX");
	if (!mkdtemp(tmpdir))
		return 1;
	RUN(test_text_only_is_7bit_single_part);
	RUN(test_full_message_parses_back_intact);
	RUN(test_base64_lines_are_76);
	RUN(test_quoted_printable_round_trip);
	RUN(test_encoded_words_are_short_and_whole);
	RUN(test_ascii_subjects);
	RUN(test_date_format);
	RUN(test_header_text_check);
	RUN(test_field_names);
	RUN(test_content_types_and_filenames);
	RUN(test_split_mailbox);
	RUN(test_boundary_cannot_occur_in_parts);
	char path[128];
	snprintf(path, sizeof path, "%s/msg.eml", tmpdir);
	unlink(path);
	snprintf(path, sizeof path, "%s/summary.py", tmpdir);
	unlink(path);
	rmdir(tmpdir);
	return check_summary();
}
