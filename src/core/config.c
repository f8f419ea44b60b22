/* config.c - ternd's configuration file: directive table, defaults, parser.
 *
 * One directive per line, "name value...", values separated by blanks.  A
 * '#' that begins a word starts a comment, so a '#' inside a value (a
 * password, say) is kept.  Every value is checked here, once, so the stages
 * that use the configuration can trust it; every error names the file, the
 * line, the directive and the value ("FILE:LINE: reason").
 *
 * The timeout defaults follow RFC 5321 section 4.5.3.2: five minutes for a
 * command, ten for the data of a message, for the server and the relay's
 * client alike. */
#include "core/config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config_values.h"
#include "core/log.h"

#define LINE_MAX_BYTES	    4096 /* longest line accepted, without its end */
#define FILE_MAX_BYTES	    (1024 * 1024)
#define PATH_MAX_BYTES	    1024 /* data_dir and friends: room for what is appended */
#define MAX_WORDS	    8	 /* a directive and its values; none takes more than 2 */
#define MAX_LISTENS	    32
#define MAX_DNS_SERVERS	    8
#define MAX_RELAY_FROM	    1024
#define MAX_RETRY_INTERVALS 32
#define DAY		    (24u * 3600u)

enum { ONCE, REPEATABLE };

/* The directive table, in the order docs/configuration.md lists them.  Each
 * entry is X(name, usage, default text,
 *            handler, struct config field, values, ONCE|REPEATABLE, min, max);
 * the handler fills the field (offsetof keeps the generic handlers honest),
 * MIN and MAX bound numbers and durations. */
/* clang-format off */
#define DIRECTIVES(X)                                                                              \
	X(hostname, "hostname NAME", "the machine's hostname",                                     \
	  set_hostname, hostname, 1, ONCE, 0, 0)                                                   \
	X(data_dir, "data_dir PATH", "./tern-data",                                                \
	  set_path, data_dir, 1, ONCE, 0, 0)                                                       \
	X(user, "user NAME", "tern, else nobody",                                                  \
	  set_user, user, 1, ONCE, 0, 0)                                                           \
	X(listen, "listen KIND ADDR:PORT",                                                         \
	  "smtp 127.0.0.1:2525, submission 127.0.0.1:2587, smtps 127.0.0.1:2465, "                 \
	  "http 127.0.0.1:8025",                                                                   \
	  add_listen, listens, 2, REPEATABLE, 0, 0)                                                \
	X(tls_cert, "tls_cert PATH", "a self-signed pair generated in data_dir",                   \
	  set_path, tls_cert, 1, ONCE, 0, 0)                                                       \
	X(tls_key, "tls_key PATH", "a self-signed pair generated in data_dir",                     \
	  set_path, tls_key, 1, ONCE, 0, 0)                                                        \
	X(dns_server, "dns_server ADDR[:PORT]", "the servers in /etc/resolv.conf",                 \
	  add_dns_server, dns_servers, 1, REPEATABLE, 0, 0)                                        \
	X(remote_port, "remote_port N", "25",                                                      \
	  set_number, remote_port, 1, ONCE, 1, 65535)                                              \
	X(source_ip, "source_ip ADDR", "none (the kernel's choice)",                               \
	  set_source_ip, source_ip, 1, ONCE, 0, 0)                                                 \
	X(relay_host, "relay_host HOST:PORT", "none (each domain's MX)",                           \
	  set_relay_host, relay_host, 1, ONCE, 0, 0)                                               \
	X(relay_auth, "relay_auth USER PASSWORD", "none",                                          \
	  set_relay_auth, relay_auth_user, 2, ONCE, 0, 0)                                          \
	X(relay_from, "relay_from CIDR", "none",                                                   \
	  add_relay_from, relay_from, 1, REPEATABLE, 0, 0)                                         \
	X(relay_timeout_connect, "relay_timeout_connect DURATION", "30s",                          \
	  set_duration, relay_timeout_connect, 1, ONCE, 1, 3600)                                   \
	X(relay_timeout_command, "relay_timeout_command DURATION", "5m",                           \
	  set_duration, relay_timeout_command, 1, ONCE, 1, DAY)                                    \
	X(relay_timeout_data, "relay_timeout_data DURATION", "10m",                                \
	  set_duration, relay_timeout_data, 1, ONCE, 1, DAY)                                       \
	X(relay_destination_concurrency, "relay_destination_concurrency N", "20",                  \
	  set_number, relay_destination_concurrency, 1, ONCE, 1, 1000)                             \
	X(relay_concurrency, "relay_concurrency N", "100",                                         \
	  set_number, relay_concurrency, 1, ONCE, 1, 10000)                                        \
	X(max_message_size, "max_message_size SIZE", "35M",                                        \
	  set_size, max_message_size, 1, ONCE, 0, 0)                                               \
	X(max_recipients, "max_recipients N", "1000",                                              \
	  set_number, max_recipients, 1, ONCE, 1, 1000000)                                         \
	X(retry_intervals, "retry_intervals LIST", "1m,5m,15m,30m,1h,2h,4h",                       \
	  set_retry_intervals, retry_intervals, 1, ONCE, 1, 30 * DAY)                              \
	X(queue_lifetime, "queue_lifetime DURATION", "5d",                                         \
	  set_duration, queue_lifetime, 1, ONCE, 1, 365 * DAY)                                     \
	X(delay_warning, "delay_warning DURATION", "4h",                                           \
	  set_duration, delay_warning, 1, ONCE, 0, 365 * DAY)                                      \
	X(webhook_allow_private, "webhook_allow_private yes|no", "no",                             \
	  set_bool, webhook_allow_private, 1, ONCE, 0, 0)                                          \
	X(webhook_max_failures, "webhook_max_failures N", "10",                                    \
	  set_number, webhook_max_failures, 1, ONCE, 1, 1000)                                      \
	X(store, "store URL", "sqlite:DATA_DIR/tern.db",                                           \
	  set_store, store, 1, ONCE, 0, 0)                                                         \
	X(max_connections, "max_connections N", "1000",                                            \
	  set_number, max_connections, 1, ONCE, 1, 1000000)                                        \
	X(max_connections_per_ip, "max_connections_per_ip N", "50",                                \
	  set_number, max_connections_per_ip, 1, ONCE, 1, 1000000)                                 \
	X(max_connection_rate, "max_connection_rate N", "1000",                                    \
	  set_number, max_connection_rate, 1, ONCE, 1, 1000000)                                    \
	X(max_errors, "max_errors N", "10",                                                        \
	  set_number, max_errors, 1, ONCE, 1, 1000)                                                \
	X(timeout_greeting_wait, "timeout_greeting_wait DURATION", "5m",                           \
	  set_duration, timeout_greeting_wait, 1, ONCE, 1, DAY)                                    \
	X(timeout_command, "timeout_command DURATION", "5m",                                       \
	  set_duration, timeout_command, 1, ONCE, 1, DAY)                                          \
	X(timeout_data, "timeout_data DURATION", "10m",                                            \
	  set_duration, timeout_data, 1, ONCE, 1, DAY)                                             \
	X(workers, "workers N", "4",                                                               \
	  set_number, workers, 1, ONCE, 1, 256)                                                    \
	X(log_level, "log_level LEVEL", "info",                                                    \
	  set_log_level, log_level, 1, ONCE, 0, 0)                                                 \
	X(auth_max_failures, "auth_max_failures N", "3",                                           \
	  set_number, auth_max_failures, 1, ONCE, 1, 1000)                                         \
	X(auth_failure_delay, "auth_failure_delay DURATION", "1s",                                 \
	  set_duration, auth_failure_delay, 1, ONCE, 0, 60)                                        \
	X(auth_lockout_failures, "auth_lockout_failures N", "10",                                  \
	  set_number, auth_lockout_failures, 1, ONCE, 1, 1000000)                                  \
	X(auth_lockout_time, "auth_lockout_time DURATION", "15m",                                  \
	  set_duration, auth_lockout_time, 1, ONCE, 1, DAY)
/* clang-format on */

const struct config_directive config_directives[] = {
#define DOC(name, usage, def, ...) {#name, usage, def},
	DIRECTIVES(DOC)
#undef DOC
};
const size_t config_ndirectives = sizeof config_directives / sizeof config_directives[0];

/* D_hostname, D_data_dir, ...: a directive's index in both tables. */
/* clang-format off */
enum directive_index {
#define INDEX(name, ...) D_##name,
	DIRECTIVES(INDEX)
#undef INDEX
	NDIRECTIVES
};
/* clang-format on */

/* The state of one parse: where we are, what was seen where. */
struct parser {
	struct config *cfg;
	const char *name; /* file name for messages */
	unsigned line;
	unsigned seen[NDIRECTIVES]; /* line of each directive's first use, 0: not yet */
	int listens_from_file;	    /* the first listen line dropped the defaults */
	char shown[96];		    /* a value made safe for an error message */
	char *err;
	size_t errlen;
};

struct rule;
typedef int (*directive_fn)(struct parser *p, const struct rule *r, char **values);

struct rule {
	const char *name;
	directive_fn set;
	size_t offset; /* of the field in struct config */
	unsigned nvalues;
	int repeat;
	unsigned min, max;
};

/* fail - "NAME:LINE: reason" into the caller's buffer; returns -1. */
__attribute__((format(printf, 2, 3))) static int fail(struct parser *p, const char *fmt, ...)
{
	int n = snprintf(p->err, p->errlen, "%s:%u: ", p->name, p->line);
	if (n < 0 || (size_t)n >= p->errlen)
		return -1;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return -1;
}

/* shown - VALUE with control bytes replaced and its length bounded, for a
 * message; valid until the next call. */
static const char *shown(struct parser *p, const char *value)
{
	return log_sanitize(p->shown, sizeof p->shown, value, strlen(value));
}

static void *field(struct parser *p, const struct rule *r)
{
	return (char *)p->cfg + r->offset;
}

/* set_string - give *SLOT a copy of VALUE, freeing the old one. */
static int set_string(struct parser *p, char **slot, const char *value)
{
	char *copy = strdup(value);
	if (!copy)
		return fail(p, "out of memory");
	free(*slot);
	*slot = copy;
	return 0;
}

/* grow - ARR (N elements of SIZE bytes) with room for one more, at most
 * MAX in all; NULL after fail().  The caller stores the result, fills the
 * new element and counts it. */
static void *grow(struct parser *p, const struct rule *r, void *arr, size_t n, size_t size,
		  size_t max)
{
	if (n == max) {
		fail(p, "%s: more than %zu of them", r->name, max);
		return NULL;
	}
	void *grown = realloc(arr, (n + 1) * size);
	if (!grown)
		fail(p, "out of memory");
	return grown;
}

static int set_hostname(struct parser *p, const struct rule *r, char **v)
{
	if (!valid_hostname(v[0]))
		return fail(p, "hostname '%s' is not a valid host name", shown(p, v[0]));
	return set_string(p, field(p, r), v[0]);
}

/* set_path - data_dir, tls_cert, tls_key.  Trailing slashes go, so that
 * "DATA_DIR/tern.db" and friends read cleanly. */
static int set_path(struct parser *p, const struct rule *r, char **v)
{
	size_t len = strlen(v[0]);
	if (len > PATH_MAX_BYTES)
		return fail(p, "%s '%s' is longer than %d bytes", r->name, shown(p, v[0]),
			    PATH_MAX_BYTES);
	while (len > 1 && v[0][len - 1] == '/')
		v[0][--len] = '\0';
	return set_string(p, field(p, r), v[0]);
}

/* set_user - a POSIX portable user name (letters, digits, '.', '_', '-'). */
static int set_user(struct parser *p, const struct rule *r, char **v)
{
	const char *s = v[0];
	size_t len = strlen(s);
	int ok = len <= 32 && s[0] != '-';
	for (size_t i = 0; ok && i < len; i++)
		ok = isalnum((unsigned char)s[i]) || strchr("._-", s[i]);
	if (!ok)
		return fail(p, "user '%s' is not a valid user name", shown(p, s));
	return set_string(p, field(p, r), s);
}

/* add_listen - the first listen line of a file replaces all the default
 * listeners: a file that names its listeners gets exactly those. */
static int add_listen(struct parser *p, const struct rule *r, char **v)
{
	struct config *cfg = p->cfg;
	struct listen_spec ls;
	size_t k = 0;
	while (k < sizeof kind_names / sizeof kind_names[0] && strcmp(kind_names[k], v[0]))
		k++;
	if (k == sizeof kind_names / sizeof kind_names[0])
		return fail(p,
			    "listen kind '%s' is not one of smtp, submission, smtps, http, "
			    "pop3, pop3s, imap, imaps",
			    shown(p, v[0]));
	if (listen_spec_parse((enum listen_kind)k, v[1], &ls) < 0)
		return fail(p, "listen address '%s' is not IPV4:PORT or [IPV6]:PORT",
			    shown(p, v[1]));
	if (!p->listens_from_file) {
		cfg->nlistens = 0;
		p->listens_from_file = 1;
	}
	for (size_t i = 0; i < cfg->nlistens; i++)
		if (cfg->listens[i].addrlen == ls.addrlen &&
		    memcmp(&cfg->listens[i].addr, &ls.addr, ls.addrlen) == 0)
			return fail(p, "listen address '%s' is already used by 'listen %s %s'",
				    shown(p, v[1]), listen_kind_name(cfg->listens[i].kind),
				    cfg->listens[i].text);
	struct listen_spec *grown =
		grow(p, r, cfg->listens, cfg->nlistens, sizeof *grown, MAX_LISTENS);
	if (!grown)
		return -1;
	cfg->listens = grown;
	cfg->listens[cfg->nlistens++] = ls;
	return 0;
}

/* add_dns_server - kept as written: c-ares reads the same forms. */
static int add_dns_server(struct parser *p, const struct rule *r, char **v)
{
	struct config *cfg = p->cfg;
	char host[INET6_ADDRSTRLEN + 1];
	unsigned port;
	int v6;
	if (split_host_port(v[0], host, sizeof host, &port, &v6, 0) < 0 || !valid_address(host, v6))
		return fail(p, "dns_server '%s' is not ADDR, IPV4:PORT or [IPV6]:PORT",
			    shown(p, v[0]));
	char **grown =
		grow(p, r, cfg->dns_servers, cfg->ndns_servers, sizeof *grown, MAX_DNS_SERVERS);
	if (!grown)
		return -1;
	cfg->dns_servers = grown;
	grown[cfg->ndns_servers] = NULL;
	if (set_string(p, &grown[cfg->ndns_servers], v[0]) < 0)
		return -1;
	cfg->ndns_servers++;
	return 0;
}

static int set_source_ip(struct parser *p, const struct rule *r, char **v)
{
	if (!valid_address(v[0], 0) && !valid_address(v[0], 1))
		return fail(p, "source_ip '%s' is not an IPv4 or IPv6 address", shown(p, v[0]));
	return set_string(p, field(p, r), v[0]);
}

/* set_relay_host - a host name or a literal address, and a port. */
static int set_relay_host(struct parser *p, const struct rule *r, char **v)
{
	char host[256];
	unsigned port;
	int v6;
	if (split_host_port(v[0], host, sizeof host, &port, &v6, 1) < 0 ||
	    (v6 ? !valid_address(host, 1) : !valid_address(host, 0) && !valid_hostname(host)))
		return fail(p, "relay_host '%s' is not HOST:PORT or [IPV6]:PORT", shown(p, v[0]));
	return set_string(p, field(p, r), v[0]);
}

static int set_relay_auth(struct parser *p, const struct rule *r, char **v)
{
	if (strlen(v[0]) > 255 || strlen(v[1]) > 255)
		return fail(p, "relay_auth: user name and password are limited to 255 bytes");
	if (set_string(p, &p->cfg->relay_auth_user, v[0]) < 0)
		return -1;
	return set_string(p, &p->cfg->relay_auth_password, v[1]);
}

/* add_relay_from - host bits beyond the prefix are refused, as Postfix
 * does for mynetworks: "10.0.0.1/8" is more often a typo than a wish.  An
 * IPv4-mapped network (::ffff:10.0.0.0/104) is kept as the IPv4 network it
 * names, so it matches however the client's address arrives. */
static int add_relay_from(struct parser *p, const struct rule *r, char **v)
{
	struct config *cfg = p->cfg;
	struct cidr c;
	if (parse_cidr(v[0], &c) < 0)
		return fail(p, "relay_from '%s' is not ADDR/PREFIX (IPv4 /0-32, IPv6 /0-128)",
			    shown(p, v[0]));
	uint8_t masked[16];
	unsigned bytes = c.family == AF_INET ? 4 : 16;
	memcpy(masked, c.addr, sizeof masked);
	for (unsigned bit = c.prefix; bit < bytes * 8; bit++)
		masked[bit / 8] &= (uint8_t) ~(0x80 >> (bit % 8));
	if (memcmp(masked, c.addr, bytes) != 0)
		return fail(p, "relay_from '%s' has address bits set beyond the /%u prefix",
			    shown(p, v[0]), c.prefix);
	if (c.family == AF_INET6 && c.prefix >= 96 && prefix_match(c.addr, v4mapped_prefix, 96)) {
		memmove(c.addr, c.addr + 12, 4);
		memset(c.addr + 4, 0, 12);
		c.family = AF_INET;
		c.prefix -= 96;
	}
	struct cidr *grown =
		grow(p, r, cfg->relay_from, cfg->nrelay_from, sizeof *grown, MAX_RELAY_FROM);
	if (!grown)
		return -1;
	cfg->relay_from = grown;
	cfg->relay_from[cfg->nrelay_from++] = c;
	return 0;
}

static int set_size(struct parser *p, const struct rule *r, char **v)
{
	uint64_t size;
	if (parse_size(v[0], &size) < 0 || size == 0 || size > 4ull * 1024 * 1024 * 1024)
		return fail(p, "%s '%s' is not a size from 1 to 4G (a number with K, M or G)",
			    r->name, shown(p, v[0]));
	*(uint64_t *)field(p, r) = size;
	return 0;
}

static int set_number(struct parser *p, const struct rule *r, char **v)
{
	uint64_t n;
	const char *end;
	if (parse_decimal(v[0], r->max, &n, &end) < 0 || *end || n < r->min)
		return fail(p, "%s '%s' is not a number from %u to %u", r->name, shown(p, v[0]),
			    r->min, r->max);
	*(unsigned *)field(p, r) = (unsigned)n;
	return 0;
}

/* duration_error - one message for every duration out of range. */
static int duration_error(struct parser *p, const struct rule *r, const char *value)
{
	char lo[16], hi[16];
	return fail(p, "%s '%s' is not a duration from %s to %s (a number with s, m, h or d)",
		    r->name, shown(p, value), show_duration(lo, sizeof lo, r->min),
		    show_duration(hi, sizeof hi, r->max));
}

static int set_duration(struct parser *p, const struct rule *r, char **v)
{
	unsigned secs;
	if (parse_duration(v[0], &secs) < 0 || secs < r->min || secs > r->max)
		return duration_error(p, r, v[0]);
	*(unsigned *)field(p, r) = secs;
	return 0;
}

/* set_retry_intervals - "1m,5m,1h": durations separated by commas, no
 * empty element, at least one. */
static int set_retry_intervals(struct parser *p, const struct rule *r, char **v)
{
	unsigned list[MAX_RETRY_INTERVALS];
	size_t n = 0;
	char *item = v[0];
	for (;;) {
		char *comma = strchr(item, ',');
		if (comma)
			*comma = '\0';
		if (n == MAX_RETRY_INTERVALS)
			return fail(p, "retry_intervals: more than %d intervals",
				    MAX_RETRY_INTERVALS);
		if (!*item)
			return fail(p, "retry_intervals: empty interval in the list");
		if (parse_duration(item, &list[n]) < 0 || list[n] < r->min || list[n] > r->max)
			return duration_error(p, r, item);
		n++;
		if (!comma)
			break;
		item = comma + 1;
	}
	unsigned *copy = malloc(n * sizeof *copy);
	if (!copy)
		return fail(p, "out of memory");
	memcpy(copy, list, n * sizeof *copy);
	free(p->cfg->retry_intervals);
	p->cfg->retry_intervals = copy;
	p->cfg->nretry_intervals = n;
	return 0;
}

static int set_bool(struct parser *p, const struct rule *r, char **v)
{
	int *flag = field(p, r);
	if (strcmp(v[0], "yes") == 0)
		*flag = 1;
	else if (strcmp(v[0], "no") == 0)
		*flag = 0;
	else
		return fail(p, "%s '%s' is not yes or no", r->name, shown(p, v[0]));
	return 0;
}

static int set_store(struct parser *p, const struct rule *r, char **v)
{
	const char *s = v[0];
	int ok = (strncmp(s, "sqlite:", 7) == 0 && s[7] && strlen(s + 7) <= PATH_MAX_BYTES) ||
		 (strncmp(s, "postgresql://", 13) == 0 && s[13]);
	if (!ok)
		return fail(p, "store '%s' is not sqlite:PATH or postgresql://...", shown(p, s));
	return set_string(p, field(p, r), s);
}

static int set_log_level(struct parser *p, const struct rule *r, char **v)
{
	static const char *const levels[] = {"debug", "info", "warn", "error"};
	for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++)
		if (strcmp(v[0], levels[i]) == 0)
			return set_string(p, field(p, r), v[0]);
	return fail(p, "log_level '%s' is not one of debug, info, warn, error", shown(p, v[0]));
}

static const struct rule rules[] = {
#define RULE(name, usage, def, fn, member, nvalues, repeat, lo, hi)                                \
	{#name, fn, offsetof(struct config, member), nvalues, repeat, lo, hi},
	DIRECTIVES(RULE)
#undef RULE
};

/* default_store - "sqlite:DATA_DIR/tern.db", allocated. */
static char *default_store(const char *data_dir)
{
	size_t len = strlen(data_dir) + sizeof "sqlite:/tern.db";
	char *s = malloc(len);
	if (s)
		snprintf(s, len, "sqlite:%s/tern.db", data_dir);
	return s;
}

int config_defaults(struct config *cfg)
{
	static const struct {
		enum listen_kind kind;
		const char *addr;
	} listens[] = {
		{LISTEN_SMTP, "127.0.0.1:2525"},
		{LISTEN_SUBMISSION, "127.0.0.1:2587"},
		{LISTEN_SMTPS, "127.0.0.1:2465"},
		{LISTEN_HTTP, "127.0.0.1:8025"},
	};
	static const unsigned retry[] = {60, 300, 900, 1800, 3600, 7200, 14400};
	char host[256];
	memset(cfg, 0, sizeof *cfg);
	if (gethostname(host, sizeof host) < 0 || host[0] == '\0')
		snprintf(host, sizeof host, "localhost");
	host[sizeof host - 1] = '\0';
	cfg->hostname = strdup(host);
	cfg->data_dir = strdup("./tern-data");
	cfg->user = strdup("tern");
	cfg->log_level = strdup("info");
	cfg->store = default_store("./tern-data");
	cfg->listens = calloc(sizeof listens / sizeof listens[0], sizeof *cfg->listens);
	cfg->retry_intervals = malloc(sizeof retry);
	if (!cfg->hostname || !cfg->data_dir || !cfg->user || !cfg->log_level || !cfg->store ||
	    !cfg->listens || !cfg->retry_intervals) {
		config_free(cfg);
		return -1;
	}
	for (size_t i = 0; i < sizeof listens / sizeof listens[0]; i++)
		if (listen_spec_parse(listens[i].kind, listens[i].addr, &cfg->listens[i]) == 0)
			cfg->nlistens++;
	memcpy(cfg->retry_intervals, retry, sizeof retry);
	cfg->nretry_intervals = sizeof retry / sizeof retry[0];
	cfg->remote_port = 25;
	cfg->relay_timeout_connect = 30;
	cfg->relay_timeout_command = 5 * 60;
	cfg->relay_timeout_data = 10 * 60;
	cfg->relay_destination_concurrency = 20;
	cfg->relay_concurrency = 100;
	cfg->max_message_size = 35 * 1024 * 1024;
	cfg->max_recipients = 1000;
	cfg->queue_lifetime = 5 * DAY;
	cfg->delay_warning = 4 * 3600;
	cfg->webhook_allow_private = 0;
	cfg->webhook_max_failures = 10;
	cfg->max_connections = 1000;
	cfg->max_connections_per_ip = 50;
	cfg->max_connection_rate = 1000;
	cfg->max_errors = 10;
	cfg->timeout_greeting_wait = 5 * 60;
	cfg->timeout_command = 5 * 60;
	cfg->timeout_data = 10 * 60;
	cfg->workers = 4;
	cfg->auth_max_failures = 3;
	cfg->auth_failure_delay = 1;
	cfg->auth_lockout_failures = 10;
	cfg->auth_lockout_time = 15 * 60;
	return 0;
}

/* split_words - cut LINE (writable) into at most MAX_WORDS words at
 * blanks, stopping at a '#' that begins a word.  Returns the count, or -1
 * when there are more. */
static int split_words(char *line, char **words)
{
	int n = 0;
	char *c = line;
	for (;;) {
		while (*c == ' ' || *c == '\t')
			c++;
		if (*c == '\0' || *c == '#')
			return n;
		if (n == MAX_WORDS)
			return -1;
		words[n++] = c;
		while (*c && *c != ' ' && *c != '\t')
			c++;
		if (*c)
			*c++ = '\0';
	}
}

/* parse_line - one line of LEN bytes (without its '\n'). */
static int parse_line(struct parser *p, const char *text, size_t len)
{
	char line[LINE_MAX_BYTES + 1], *words[MAX_WORDS];
	if (len > 0 && text[len - 1] == '\r')
		len--; /* a file written with CRLF line ends */
	if (len > LINE_MAX_BYTES)
		return fail(p, "line is longer than %d bytes", LINE_MAX_BYTES);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)text[i];
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return fail(p, "control character 0x%02x in the line", c);
	}
	memcpy(line, text, len);
	line[len] = '\0';
	int n = split_words(line, words);
	if (n == 0)
		return 0;
	size_t d = 0;
	while (d < NDIRECTIVES && strcmp(rules[d].name, words[0]) != 0)
		d++;
	if (d == NDIRECTIVES)
		return fail(p, "unknown directive '%s'", shown(p, words[0]));
	const struct rule *r = &rules[d];
	if (n < 0 || (unsigned)n - 1 > r->nvalues) /* n < 0: all MAX_WORDS are there */
		return fail(p, "%s: unexpected value '%s' (usage: %s)", r->name,
			    shown(p, words[r->nvalues + 1]), config_directives[d].usage);
	if ((unsigned)n - 1 < r->nvalues)
		return fail(p, "%s: missing value (usage: %s)", r->name,
			    config_directives[d].usage);
	if (p->seen[d] && r->repeat == ONCE)
		return fail(p, "%s given twice (first on line %u)", r->name, p->seen[d]);
	if (r->set(p, r, words + 1) < 0)
		return -1;
	if (!p->seen[d])
		p->seen[d] = p->line;
	return 0;
}

/* finish - checks that span lines, then defaults that depend on others. */
static int finish(struct parser *p)
{
	struct config *cfg = p->cfg;
	if (!p->seen[D_tls_cert] != !p->seen[D_tls_key]) {
		p->line = p->seen[D_tls_cert] ? p->seen[D_tls_cert] : p->seen[D_tls_key];
		return fail(p, "tls_cert and tls_key go together: %s is missing",
			    p->seen[D_tls_cert] ? "tls_key" : "tls_cert");
	}
	if (p->seen[D_relay_auth] && !p->seen[D_relay_host]) {
		p->line = p->seen[D_relay_auth];
		return fail(p, "relay_auth needs a relay_host");
	}
	if (!p->seen[D_store]) {
		char *store = default_store(cfg->data_dir);
		if (!store)
			return fail(p, "out of memory");
		free(cfg->store);
		cfg->store = store;
	}
	return 0;
}

int config_parse_buffer(struct config *cfg, const char *name, const char *text, size_t len,
			char *err, size_t errlen)
{
	struct parser p = {
		.cfg = cfg, .name = name ? name : "(config)", .err = err, .errlen = errlen};
	if (errlen)
		err[0] = '\0';
	if (config_defaults(cfg) < 0 || !(cfg->path = strdup(p.name))) {
		config_free(cfg);
		snprintf(err, errlen, "%s: out of memory", p.name);
		return -1;
	}
	size_t pos = 0;
	while (pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - (text + pos)) : len - pos;
		p.line++;
		if (parse_line(&p, text + pos, n) < 0)
			goto bad;
		pos += n + 1;
	}
	if (finish(&p) < 0)
		goto bad;
	return 0;
bad:
	config_free(cfg);
	return -1;
}

int config_load(struct config *cfg, const char *path, char *err, size_t errlen)
{
	memset(cfg, 0, sizeof *cfg);
	FILE *f = fopen(path, "re");
	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	char *buf = malloc(FILE_MAX_BYTES + 1);
	size_t len = buf ? fread(buf, 1, FILE_MAX_BYTES + 1, f) : 0;
	int read_errno = ferror(f) ? errno : 0;
	fclose(f);
	int rc = -1;
	if (!buf)
		snprintf(err, errlen, "%s: out of memory", path);
	else if (read_errno)
		snprintf(err, errlen, "%s: %s", path, strerror(read_errno));
	else if (len > FILE_MAX_BYTES)
		snprintf(err, errlen, "%s: larger than %d bytes", path, FILE_MAX_BYTES);
	else
		rc = config_parse_buffer(cfg, path, buf, len, err, errlen);
	free(buf);
	return rc;
}

const char *config_db_path(const struct config *cfg)
{
	if (!cfg->store || strncmp(cfg->store, "sqlite:", 7) != 0)
		return NULL;
	return cfg->store + 7;
}

void config_free(struct config *cfg)
{
	if (!cfg)
		return;
	free(cfg->path);
	free(cfg->hostname);
	free(cfg->data_dir);
	free(cfg->user);
	free(cfg->listens);
	free(cfg->tls_cert);
	free(cfg->tls_key);
	for (size_t i = 0; i < cfg->ndns_servers; i++)
		free(cfg->dns_servers[i]);
	free(cfg->dns_servers);
	free(cfg->source_ip);
	free(cfg->relay_host);
	free(cfg->relay_auth_user);
	if (cfg->relay_auth_password) /* do not leave the secret in freed memory */
		explicit_bzero(cfg->relay_auth_password, strlen(cfg->relay_auth_password));
	free(cfg->relay_auth_password);
	free(cfg->relay_from);
	free(cfg->retry_intervals);
	free(cfg->store);
	free(cfg->log_level);
	memset(cfg, 0, sizeof *cfg);
}
