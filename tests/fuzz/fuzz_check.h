/* fuzz_check.h - checks shared by the fuzz targets of the message composer
 * (fuzz_mime.c, fuzz_api_json.c): what a composed message must look like to
 * a mail transport (RFC 5322 2.1, 2.1.1 and 2.2; RFC 5321 4.5.3.1.6), 7-bit
 * so that it needs no 8BITMIME.  A failed check aborts, which libFuzzer
 * reports with the input that caused it. */
#ifndef TERN_FUZZ_CHECK_H
#define TERN_FUZZ_CHECK_H

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define check(cond)                                                                                \
	do {                                                                                       \
		if (!(cond))                                                                       \
			abort();                                                                   \
	} while (0)

/* check_header_line - one unfolded header line at M (LEN octets, CRLF
 * excluded): a field ("name:", the name printable US-ASCII without space)
 * or a folded continuation (starts with SP or TAB), and not the field
 * ABSENT (NULL: any field may appear). */
static inline void check_header_line(const char *m, size_t len, const char *absent)
{
	if (m[0] == ' ' || m[0] == '\t')
		return;
	const char *colon = memchr(m, ':', len);
	check(colon && colon > m);
	for (const char *q = m; q < colon; q++)
		check(*q > ' ' && *q <= '~');
	if (absent) {
		size_t n = strlen(absent);
		check((size_t)(colon - m) != n || strncasecmp(m, absent, n) != 0);
	}
}

/* check_message - the composed message M (LEN octets) as a mail transport
 * will see it: no NUL, CRLF line ends only (no bare CR or LF), no line over
 * 998 octets, 7-bit throughout, a header of fields and continuations that
 * ends in an empty line, none of them the field ABSENT (may be NULL), and
 * a final CRLF. */
static inline void check_message(const char *m, size_t len, const char *absent)
{
	size_t line = 0, start = 0;
	int in_header = 1;

	check(len >= 2 && !memchr(m, '\0', len));
	for (size_t i = 0; i < len; i++) {
		check(m[i] != '\n'); /* a LF that no CR came before */
		check((unsigned char)m[i] < 0x80);
		if (m[i] != '\r') {
			check(++line <= 998);
			continue;
		}
		check(i + 1 < len && m[i + 1] == '\n');
		if (in_header && line == 0)
			in_header = 0; /* the empty line ends the header */
		else if (in_header)
			check_header_line(m + start, line, absent);
		i++;
		line = 0;
		start = i + 1;
	}
	check(!in_header);
	check(m[len - 2] == '\r' && m[len - 1] == '\n');
}

#endif
