/* config.h - ternd's configuration: the directive table, defaults, parsing.
 *
 * The file has one directive per line, "name value...", '#' starts a comment
 * (anywhere outside a value), blank lines are ignored.  Unknown directives,
 * missing or extra values and bad values are errors that name the line:
 * "FILE:LINE: reason".  docs/configuration.md documents every directive in
 * config_directives[]; a unit test keeps the two in step.
 *
 * Ownership: a struct config owns every string and array in it;
 * config_free() releases them.  config_load() fills a fresh struct (defaults
 * first, then the file), so a failed reload leaves the running one intact. */
#ifndef TERN_CORE_CONFIG_H
#define TERN_CORE_CONFIG_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

enum listen_kind {
	LISTEN_SMTP,
	LISTEN_SUBMISSION,
	LISTEN_SMTPS,
	LISTEN_HTTP,
	LISTEN_POP3,
	LISTEN_POP3S,
	LISTEN_IMAP,
	LISTEN_IMAPS,
};

struct listen_spec {
	enum listen_kind kind;
	struct sockaddr_storage addr; /* IPv4 or IPv6 with port */
	socklen_t addrlen;
	char text[64]; /* "127.0.0.1:2525" / "[::1]:25" as written, for logs */
};

/* A network in CIDR form: relay_from. */
struct cidr {
	int family; /* AF_INET or AF_INET6 */
	uint8_t addr[16];
	unsigned prefix;
};

struct config {
	char *path; /* the file read, or NULL for built-in defaults */

	char *hostname;
	char *data_dir;
	char *user;

	struct listen_spec *listens;
	size_t nlistens;

	char *tls_cert, *tls_key; /* NULL: generated in data_dir */

	char **dns_servers; /* "ADDR" or "ADDR:PORT" / "[V6]:PORT"; NULL-free array */
	size_t ndns_servers;

	unsigned remote_port;
	char *source_ip; /* NULL: kernel's choice */
	char *relay_host; /* "HOST:PORT" or NULL */
	char *relay_auth_user, *relay_auth_password;
	struct cidr *relay_from;
	size_t nrelay_from;
	/* The relay's SMTP client (seconds): TCP connect; the greeting and each
	 * reply before the data; the reply after the data. */
	unsigned relay_timeout_connect, relay_timeout_command, relay_timeout_data;
	/* Connections to one destination, and altogether. */
	unsigned relay_destination_concurrency, relay_concurrency;

	uint64_t max_message_size; /* bytes */
	unsigned max_recipients;
	unsigned *retry_intervals; /* seconds */
	size_t nretry_intervals;
	unsigned queue_lifetime; /* seconds */
	unsigned delay_warning; /* seconds */
	int webhook_allow_private;
	unsigned webhook_max_failures; /* consecutive failed posts before a webhook is disabled */
	char *store; /* "sqlite:/path" or "postgresql://..." */

	/* Limits and timeouts (seconds) of the SMTP server. */
	unsigned max_connections; /* all clients together */
	unsigned max_connections_per_ip;
	unsigned max_connection_rate; /* new connections per client IP per minute */
	unsigned max_errors; /* protocol errors before 421 and close */
	unsigned timeout_greeting_wait; /* idle before the first command */
	unsigned timeout_command; /* idle between commands */
	unsigned timeout_data; /* idle inside DATA/BDAT */
	unsigned workers; /* threads in the worker pool */

	/* AUTH abuse limits. */
	unsigned auth_max_failures; /* per connection, then 421 */
	unsigned auth_failure_delay; /* seconds before the first 535, doubling */
	unsigned auth_lockout_failures; /* per client address within the window */
	unsigned auth_lockout_time; /* seconds: the window and the lockout */
	char *log_level; /* "debug", "info", "warn", "error" */
};

/* One entry per directive, in the order docs/configuration.md lists them. */
struct config_directive {
	const char *name;
	const char *usage; /* e.g. "listen KIND ADDR:PORT" */
	const char *default_text; /* human readable default */
};
extern const struct config_directive config_directives[];
extern const size_t config_ndirectives;

/* config_defaults - fill CFG with the built-in defaults (no file).
 * Returns 0, or -1 on allocation failure. */
int config_defaults(struct config *cfg);

/* config_load - defaults, then the file PATH.  On error returns -1 with
 * "PATH:LINE: reason" in ERR (ERRLEN bytes) and CFG left freed. */
int config_load(struct config *cfg, const char *path, char *err, size_t errlen);

/* config_parse_buffer - as config_load for text already in memory; NAME is
 * used in error messages.  For tests and fuzzing. */
int config_parse_buffer(struct config *cfg, const char *name, const char *text,
			size_t len, char *err, size_t errlen);

/* config_db_path - the SQLite file named by cfg->store ("sqlite:PATH"), or
 * NULL when the store is not SQLite.  Points into CFG. */
const char *config_db_path(const struct config *cfg);

/* config_relay_allowed - is ADDR (AF_INET/AF_INET6 sockaddr) inside one of
 * the relay_from networks?  IPv4-mapped IPv6 addresses match IPv4 networks. */
int config_relay_allowed(const struct config *cfg, const struct sockaddr *addr);

/* parse_size "35M" -> bytes, parse_duration "5m" -> seconds; 0 or -1. */
int parse_size(const char *text, uint64_t *out);
int parse_duration(const char *text, unsigned *out);

const char *listen_kind_name(enum listen_kind kind);

void config_free(struct config *cfg);

#endif
