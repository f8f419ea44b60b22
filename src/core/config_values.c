/* config_values.c - the value syntaxes of the configuration file: numbers
 * with units, host:port, addresses, CIDR networks.  Pure functions, no
 * allocation; config.c turns their failures into line-naming errors. */
#include "core/config_values.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DAY (24u * 3600u)

/* parse_decimal - all of TEXT (digits only: no sign, no blanks) as a
 * number no larger than MAX; END receives the first non-digit. */
int parse_decimal(const char *text, uint64_t max, uint64_t *out, const char **end)
{
	uint64_t v = 0;
	const char *s = text;
	if (!isdigit((unsigned char)*s))
		return -1;
	for (; isdigit((unsigned char)*s); s++) {
		unsigned d = (unsigned)(*s - '0');
		if (v > (max - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*out = v;
	*end = s;
	return 0;
}

/* A suffix and what it multiplies by. */
struct unit {
	char suffix;
	unsigned factor;
};
static const struct unit size_units[] = {
	{'K', 1u << 10}, {'k', 1u << 10}, {'M', 1u << 20}, {'m', 1u << 20},
	{'G', 1u << 30}, {'g', 1u << 30}, {0, 0},
};
/* Largest first: show_duration walks them in this order. */
static const struct unit duration_units[] = {
	{'d', DAY}, {'h', 3600}, {'m', 60}, {'s', 1}, {0, 0},
};

/* parse_scaled - digits and at most one suffix from UNITS, the product no
 * larger than MAX. */
static int parse_scaled(const char *text, const struct unit *units, uint64_t max, uint64_t *out)
{
	uint64_t v, factor = 1;
	const char *end;
	if (parse_decimal(text, UINT64_MAX, &v, &end) < 0)
		return -1;
	if (*end) {
		while (units->suffix && units->suffix != *end)
			units++;
		if (!units->suffix || end[1])
			return -1;
		factor = units->factor;
	}
	if (v > max / factor)
		return -1;
	*out = v * factor;
	return 0;
}

int parse_size(const char *text, uint64_t *out)
{
	return parse_scaled(text, size_units, UINT64_MAX, out);
}

int parse_duration(const char *text, unsigned *out)
{
	uint64_t v;
	if (parse_scaled(text, duration_units, UINT_MAX, &v) < 0)
		return -1;
	*out = (unsigned)v;
	return 0;
}

int parse_port(const char *text, unsigned *port)
{
	uint64_t v;
	const char *end;
	if (parse_decimal(text, 65535, &v, &end) < 0 || *end || v == 0)
		return -1;
	*port = (unsigned)v;
	return 0;
}

/* valid_hostname - a DNS name: labels of letters, digits and inner
 * hyphens, 1..63 bytes each, 253 in all (RFC 1035 2.3.1, RFC 1123 2.1). */
int valid_hostname(const char *s)
{
	size_t len = strlen(s), label = 0;
	if (len == 0 || len > 253)
		return 0;
	for (size_t i = 0; i <= len; i++) {
		if (s[i] == '.' || s[i] == '\0') {
			if (label == 0 || label > 63 || s[i - 1] == '-')
				return 0;
			label = 0;
		} else if (isalnum((unsigned char)s[i]) || (s[i] == '-' && label > 0)) {
			label++;
		} else {
			return 0;
		}
	}
	return 1;
}

/* split_host_port - "HOST:PORT", "[V6]:PORT", "[V6]", or (when the port is
 * optional) "HOST" or a bare IPv6 address.  HOST gets the host without
 * brackets, *PORT 0 when absent, *V6 whether the host must be IPv6. */
int split_host_port(const char *text, char *host, size_t hostlen, unsigned *port, int *v6,
		    int port_required)
{
	const char *h = text, *colon;
	size_t n;
	*port = 0;
	*v6 = 0;
	if (*text == '[') {
		const char *close = strchr(text, ']');
		if (!close)
			return -1;
		h = text + 1;
		n = (size_t)(close - h);
		colon = close[1] == ':' ? close + 1 : NULL;
		if (close[1] && !colon)
			return -1;
		*v6 = 1;
	} else {
		colon = strchr(text, ':');
		if (colon && strchr(colon + 1, ':')) {
			colon = NULL; /* a bare IPv6 address: no port */
			*v6 = 1;
		}
		n = colon ? (size_t)(colon - text) : strlen(text);
	}
	if (n == 0 || n >= hostlen)
		return -1;
	memcpy(host, h, n);
	host[n] = '\0';
	if (colon)
		return parse_port(colon + 1, port);
	return port_required ? -1 : 0;
}

/* fill_sockaddr - HOST (a literal address) and PORT into SS. */
int fill_sockaddr(const char *host, int v6, unsigned port, struct sockaddr_storage *ss,
		  socklen_t *len)
{
	memset(ss, 0, sizeof *ss);
	if (!v6) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;
		if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
			return -1;
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		*len = sizeof *sin;
		return 0;
	}
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
	if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
		return -1;
	sin6->sin6_family = AF_INET6;
	sin6->sin6_port = htons((uint16_t)port);
	*len = sizeof *sin6;
	return 0;
}

const char *const kind_names[LISTEN_KIND_COUNT] = {
	[LISTEN_SMTP] = "smtp",	  [LISTEN_SUBMISSION] = "submission",
	[LISTEN_SMTPS] = "smtps", [LISTEN_HTTP] = "http",
	[LISTEN_POP3] = "pop3",	  [LISTEN_POP3S] = "pop3s",
	[LISTEN_IMAP] = "imap",	  [LISTEN_IMAPS] = "imaps",
};

const char *listen_kind_name(enum listen_kind kind)
{
	if ((size_t)kind < sizeof kind_names / sizeof kind_names[0])
		return kind_names[kind];
	return "?";
}

/* listen_spec_parse - "ADDR:PORT" or "[V6]:PORT", a literal address. */
int listen_spec_parse(enum listen_kind kind, const char *text, struct listen_spec *ls)
{
	char host[INET6_ADDRSTRLEN + 1];
	unsigned port;
	int v6;
	memset(ls, 0, sizeof *ls);
	if (strlen(text) >= sizeof ls->text ||
	    split_host_port(text, host, sizeof host, &port, &v6, 1) < 0 ||
	    fill_sockaddr(host, v6, port, &ls->addr, &ls->addrlen) < 0)
		return -1;
	ls->kind = kind;
	snprintf(ls->text, sizeof ls->text, "%s", text);
	return 0;
}

/* valid_address - a literal IPv4 or (V6 set) IPv6 address. */
int valid_address(const char *host, int v6)
{
	unsigned char buf[sizeof(struct in6_addr)];
	return inet_pton(v6 ? AF_INET6 : AF_INET, host, buf) == 1;
}

/* parse_cidr - "ADDR/PREFIX", or a bare address for that one host. */
int parse_cidr(const char *text, struct cidr *c)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *slash = strchr(text, '/');
	size_t n = slash ? (size_t)(slash - text) : strlen(text);
	unsigned bits;
	memset(c, 0, sizeof *c);
	if (n == 0 || n >= sizeof host)
		return -1;
	memcpy(host, text, n);
	host[n] = '\0';
	if (inet_pton(AF_INET, host, c->addr) == 1) {
		c->family = AF_INET;
		bits = 32;
	} else if (inet_pton(AF_INET6, host, c->addr) == 1) {
		c->family = AF_INET6;
		bits = 128;
	} else {
		return -1;
	}
	c->prefix = bits;
	if (slash) {
		uint64_t v;
		const char *end;
		if (parse_decimal(slash + 1, bits, &v, &end) < 0 || *end)
			return -1;
		c->prefix = (unsigned)v;
	}
	return 0;
}

/* prefix_match - do the first PREFIX bits of A and B agree? */
int prefix_match(const uint8_t *a, const uint8_t *b, unsigned prefix)
{
	unsigned full = prefix / 8, rest = prefix % 8;
	if (memcmp(a, b, full) != 0)
		return 0;
	if (rest == 0)
		return 1;
	uint8_t mask = (uint8_t)(0xff << (8 - rest));
	return ((a[full] ^ b[full]) & mask) == 0;
}

const uint8_t v4mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

int config_relay_allowed(const struct config *cfg, const struct sockaddr *addr)
{
	uint8_t a[16];
	int family;
	if (!addr)
		return 0;
	if (addr->sa_family == AF_INET) {
		struct sockaddr_in sin;
		memcpy(&sin, addr, sizeof sin); /* the caller's storage may be unaligned */
		memcpy(a, &sin.sin_addr, 4);
		family = AF_INET;
	} else if (addr->sa_family == AF_INET6) {
		struct sockaddr_in6 sin6;
		memcpy(&sin6, addr, sizeof sin6);
		family = prefix_match(sin6.sin6_addr.s6_addr, v4mapped_prefix, 96) ? AF_INET
										   : AF_INET6;
		/* a dual-stack socket shows IPv4 clients as ::ffff:a.b.c.d */
		if (family == AF_INET)
			memcpy(a, sin6.sin6_addr.s6_addr + 12, 4);
		else
			memcpy(a, sin6.sin6_addr.s6_addr, 16);
	} else {
		return 0;
	}
	for (size_t i = 0; i < cfg->nrelay_from; i++)
		if (cfg->relay_from[i].family == family &&
		    prefix_match(a, cfg->relay_from[i].addr, cfg->relay_from[i].prefix))
			return 1;
	return 0;
}

/* show_duration - SECS in the largest unit that divides it: "30d". */
const char *show_duration(char *buf, size_t len, unsigned secs)
{
	const struct unit *u = duration_units;
	while (u->factor > 1 && (secs == 0 || secs % u->factor))
		u++;
	snprintf(buf, len, "%u%c", secs / u->factor, u->suffix);
	return buf;
}
