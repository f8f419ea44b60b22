/* webhook_check.c - the pure parts of webhooks: a URL's form (RFC 3986 3,
 * parsed by libevent's evhttp_uri), which addresses may be posted to
 * (RFC 6890 special-purpose registries, RFC 1918, RFC 6598, RFC 4193,
 * RFC 4291 2.5.5 and 2.5.6, RFC 6052, RFC 3056), the signature (RFC 2104
 * HMAC with SHA-256, OpenSSL) and new secrets (libsodium). */
#include <arpa/inet.h>
#include <ctype.h>
#include <event2/http.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "http/webhook_private.h"

/* hex_encode - LEN bytes as lower-case hex into OUT (2 * LEN + 1). */
static void hex_encode(const unsigned char *in, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * len] = '\0';
}

/* webhook_sign - see webhook_private.h (RFC 2104 with SHA-256). */
int webhook_sign(const char *secret, const void *body, size_t len, char *out)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned maclen = 0;
	static const unsigned char empty;
	if (!HMAC(EVP_sha256(), secret, (int)strlen(secret), len ? body : &empty, len, mac,
		  &maclen) ||
	    maclen != 32)
		return -1;
	memcpy(out, "sha256=", 7);
	hex_encode(mac, maclen, out + 7);
	return 0;
}

/* webhook_secret_new - a new secret from libsodium's CSPRNG. */
int webhook_secret_new(char *out)
{
	unsigned char raw[WEBHOOK_SECRET_BYTES];
	if (sodium_init() < 0)
		return -1;
	randombytes_buf(raw, sizeof raw);
	hex_encode(raw, sizeof raw, out);
	sodium_memzero(raw, sizeof raw);
	return 0;
}

/* ---- addresses ---- */

/* v4_forbidden - the class of the IPv4 address A (network order bytes)
 * that webhooks may not reach, or NULL. */
static const char *v4_forbidden(const unsigned char *a)
{
	static const struct {
		unsigned char net[4];
		unsigned prefix;
		const char *why;
	} nets[] = {
		{{0, 0, 0, 0}, 8, "unspecified (this network)"},
		{{10, 0, 0, 0}, 8, "private"},
		{{100, 64, 0, 0}, 10, "shared (CGNAT)"},
		{{127, 0, 0, 0}, 8, "loopback"},
		{{169, 254, 0, 0}, 16, "link-local"},
		{{172, 16, 0, 0}, 12, "private"},
		{{192, 0, 0, 0}, 24, "reserved (IETF protocol assignments)"},
		{{192, 0, 2, 0}, 24, "reserved (documentation)"},
		{{192, 88, 99, 0}, 24, "reserved (6to4 relay anycast)"},
		{{192, 168, 0, 0}, 16, "private"},
		{{198, 18, 0, 0}, 15, "reserved (benchmarking)"},
		{{198, 51, 100, 0}, 24, "reserved (documentation)"},
		{{203, 0, 113, 0}, 24, "reserved (documentation)"},
		{{224, 0, 0, 0}, 4, "multicast"},
		{{240, 0, 0, 0}, 4, "reserved (and broadcast)"},
	};
	uint32_t x = (uint32_t)a[0] << 24 | (uint32_t)a[1] << 16 | (uint32_t)a[2] << 8 | a[3];
	for (size_t i = 0; i < sizeof nets / sizeof nets[0]; i++) {
		const unsigned char *n = nets[i].net;
		uint32_t net =
			(uint32_t)n[0] << 24 | (uint32_t)n[1] << 16 | (uint32_t)n[2] << 8 | n[3];
		uint32_t mask = nets[i].prefix ? ~0u << (32 - nets[i].prefix) : 0;
		if ((x & mask) == net)
			return nets[i].why;
	}
	return NULL;
}

/* v6_prefix - do the first BITS bits of A equal those of P? */
static int v6_prefix(const unsigned char *a, const unsigned char *p, unsigned bits)
{
	size_t whole = bits / 8;
	if (memcmp(a, p, whole) != 0)
		return 0;
	unsigned rest = bits % 8;
	if (!rest)
		return 1;
	unsigned char mask = (unsigned char)(0xff << (8 - rest));
	return (a[whole] & mask) == (p[whole] & mask);
}

/* v6_forbidden - as v4_forbidden for an IPv6 address; addresses that carry
 * an IPv4 address are judged by it, since a packet to them may end up
 * there (a dual-stack socket, a NAT64, a 6to4 relay). */
static const char *v6_forbidden(const unsigned char *a)
{
	static const unsigned char zero[16];
	static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	static const unsigned char nat64[12] = {0, 0x64, 0xff, 0x9b};
	static const struct {
		unsigned char net[16];
		unsigned prefix;
		const char *why;
	} nets[] = {
		{{0, 0x64, 0xff, 0x9b, 0, 1}, 48, "reserved (local NAT64)"},
		{{0x01}, 64, "reserved (discard-only)"},
		{{0x20, 0x01, 0, 0}, 32, "reserved (Teredo)"},
		{{0x20, 0x01, 0x0d, 0xb8}, 32, "reserved (documentation)"},
		{{0x20, 0x01, 0, 0x10}, 28, "reserved (ORCHID)"},
		{{0x20, 0x01, 0, 0x20}, 28, "reserved (ORCHIDv2)"},
		{{0xfc}, 7, "unique-local"},
		{{0xfe, 0x80}, 10, "link-local"},
		{{0xfe, 0xc0}, 10, "site-local"},
		{{0xff}, 8, "multicast"},
	};
	if (memcmp(a, zero, 15) == 0 && a[15] == 0)
		return "unspecified";
	if (memcmp(a, zero, 15) == 0 && a[15] == 1)
		return "loopback";
	if (memcmp(a, mapped, 12) == 0 || memcmp(a, nat64, 12) == 0)
		return v4_forbidden(a + 12);
	if (memcmp(a, zero, 12) == 0)
		return "reserved (IPv4-compatible)";
	if (a[0] == 0x20 && a[1] == 0x02)
		return v4_forbidden(a + 2); /* 6to4: 2002:V4ADDR::/48 */
	for (size_t i = 0; i < sizeof nets / sizeof nets[0]; i++)
		if (v6_prefix(a, nets[i].net, nets[i].prefix))
			return nets[i].why;
	if ((a[0] & 0xe0) != 0x20)
		return "reserved (not global unicast)"; /* outside 2000::/3 */
	return NULL;
}

/* webhook_addr_forbidden - dispatch on the family. */
const char *webhook_addr_forbidden(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return v4_forbidden(
			(const unsigned char *)&((const struct sockaddr_in *)sa)->sin_addr);
	if (sa->sa_family == AF_INET6)
		return v6_forbidden(
			(const unsigned char *)&((const struct sockaddr_in6 *)sa)->sin6_addr);
	return "not an IP address";
}

/* ---- URLs ---- */

/* dns_name_ok - letters, digits, '-' and '_' in dot-separated labels of
 * 1..63 bytes that neither begin nor end with '-', at most 253 in all, a
 * trailing dot allowed, and a last label that is not all digits (which
 * would read as an IPv4 address in other software: "http://2130706433/"). */
static int dns_name_ok(const char *s)
{
	size_t len = strlen(s), label = 0, digits = 0;
	if (len && s[len - 1] == '.')
		len--;
	if (len == 0 || len > 253 || s[0] == '-' || s[len - 1] == '-')
		return 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '.') {
			if (label == 0 || s[i - 1] == '-' || s[i + 1] == '-')
				return 0;
			label = digits = 0;
		} else if (isalnum(c) || c == '-' || c == '_') {
			digits += isdigit(c) != 0;
			if (++label > 63)
				return 0;
		} else {
			return 0;
		}
	}
	return label && digits < label;
}

/* url_host - the host part of U into OUT: an IPv6 literal without its
 * brackets, an IPv4 literal, or a DNS name in lower case.  0 or -1. */
static int url_host(const char *host, struct webhook_url *out, char *err, size_t errlen)
{
	size_t len = host ? strlen(host) : 0;
	unsigned char addr[16];
	if (len == 0 || len > WEBHOOK_HOST_MAX) {
		snprintf(err, errlen, "the URL has no host, or one too long");
		return -1;
	}
	if (host[0] == '[') {
		snprintf(out->host, sizeof out->host, "%.*s", (int)(len - 2), host + 1);
		for (char *c = out->host; *c; c++)
			*c = (char)tolower((unsigned char)*c);
		if (host[len - 1] != ']' || inet_pton(AF_INET6, out->host, addr) != 1) {
			snprintf(err, errlen, "the URL's host is not an IPv6 address");
			return -1;
		}
		out->literal = 1;
		return 0;
	}
	snprintf(out->host, sizeof out->host, "%s", host);
	for (char *c = out->host; *c; c++)
		*c = (char)tolower((unsigned char)*c);
	if (inet_pton(AF_INET, out->host, addr) == 1) {
		out->literal = 1;
		return 0;
	}
	if (!dns_name_ok(out->host)) {
		snprintf(err, errlen, "the URL's host is neither a DNS name nor an IP address");
		return -1;
	}
	len = strlen(out->host);
	if (out->host[len - 1] == '.')
		out->host[len - 1] = '\0'; /* absolute form: the same name for DNS and TLS */
	return 0;
}

/* url_text_ok - printable ASCII without blanks: what a URL is made of. */
static int url_text_ok(const char *url, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)url[i] <= 0x20 || (unsigned char)url[i] >= 0x7f)
			return 0;
	return 1;
}

/* url_parts - scheme, user information, port and fragment of U. */
static int url_parts(const struct evhttp_uri *u, struct webhook_url *out, char *err, size_t errlen)
{
	const char *scheme = evhttp_uri_get_scheme(u);
	int port = evhttp_uri_get_port(u);
	if (!scheme || (strcasecmp(scheme, "http") && strcasecmp(scheme, "https"))) {
		snprintf(err, errlen, "the URL must begin with http:// or https://");
		return -1;
	}
	out->tls = strcasecmp(scheme, "https") == 0;
	if (evhttp_uri_get_userinfo(u)) {
		snprintf(err, errlen, "the URL may not hold a user name or password");
		return -1;
	}
	if (evhttp_uri_get_fragment(u)) {
		snprintf(err, errlen, "the URL may not have a #fragment");
		return -1;
	}
	if (port == 0 || port > 65535) {
		snprintf(err, errlen, "the URL's port must be 1 to 65535");
		return -1;
	}
	out->port = port > 0 ? (unsigned)port : out->tls ? 443u : 80u;
	return 0;
}

/* webhook_url_parse - the form, the parts, then Host and target. */
int webhook_url_parse(const char *url, struct webhook_url *out, char *err, size_t errlen)
{
	size_t len = strlen(url);
	memset(out, 0, sizeof *out);
	if (len == 0 || len > WEBHOOK_URL_MAX) {
		snprintf(err, errlen, "the URL must be 1 to %d bytes", WEBHOOK_URL_MAX);
		return -1;
	}
	if (!url_text_ok(url, len)) {
		snprintf(err, errlen, "the URL may hold only printable ASCII, no spaces");
		return -1;
	}
	struct evhttp_uri *u = evhttp_uri_parse_with_flags(url, 0);
	if (!u) {
		snprintf(err, errlen, "the URL is not well formed (RFC 3986)");
		return -1;
	}
	int rc = -1;
	if (url_parts(u, out, err, errlen) == 0 &&
	    url_host(evhttp_uri_get_host(u), out, err, errlen) == 0) {
		const char *path = evhttp_uri_get_path(u), *query = evhttp_uri_get_query(u);
		int v6 = strchr(out->host, ':') != NULL;
		unsigned dflt = out->tls ? 443 : 80;
		snprintf(out->target, sizeof out->target, "%s%s%s", path && *path ? path : "/",
			 query ? "?" : "", query ? query : "");
		if (out->port == dflt)
			snprintf(out->authority, sizeof out->authority, "%s%s%s", v6 ? "[" : "",
				 out->host, v6 ? "]" : "");
		else
			snprintf(out->authority, sizeof out->authority, "%s%s%s:%u", v6 ? "[" : "",
				 out->host, v6 ? "]" : "", out->port);
		rc = 0;
	}
	evhttp_uri_free(u);
	return rc;
}

/* webhooks_url_check - the API's check: the form alone. */
int webhooks_url_check(const char *url, char *err, size_t errlen)
{
	struct webhook_url u;
	return webhook_url_parse(url, &u, err, errlen);
}
