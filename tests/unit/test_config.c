/* test_config.c - the configuration file: defaults, every directive good
 * and bad, errors that name the line, relay_from matching, size and
 * duration parsing, and docs/configuration.md kept in step with the table. */
#include <arpa/inet.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "core/config.h"

static char err[512];

/* parse - TEXT as the file "t.conf"; returns config_parse_buffer's result. */
static int parse(struct config *cfg, const char *text)
{
	err[0] = '\0';
	return config_parse_buffer(cfg, "t.conf", text, strlen(text), err, sizeof err);
}

/* parse_fails - TEXT is refused with an error starting with PREFIX (the
 * file and line) and containing WANT (the directive and the value). */
static int parse_fails(const char *text, const char *prefix, const char *want)
{
	struct config cfg;
	int ok = parse(&cfg, text) == -1 && strncmp(err, prefix, strlen(prefix)) == 0 &&
		 strstr(err, want) != NULL && cfg.hostname == NULL && cfg.listens == NULL;
	if (!ok) {
		fprintf(stderr, "  input: %.60s\n  error: %s\n  wanted: %s...%s\n", text, err,
			prefix, want);
		config_free(&cfg);
	}
	return ok;
}

static struct sockaddr_storage sa4(const char *ip)
{
	struct sockaddr_storage ss = {0};
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	sin->sin_family = AF_INET;
	inet_pton(AF_INET, ip, &sin->sin_addr);
	return ss;
}

static struct sockaddr_storage sa6(const char *ip)
{
	struct sockaddr_storage ss = {0};
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	sin6->sin6_family = AF_INET6;
	inet_pton(AF_INET6, ip, &sin6->sin6_addr);
	return ss;
}

static unsigned port_of(const struct listen_spec *ls)
{
	if (ls->addr.ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)&ls->addr)->sin_port);
	return ntohs(((const struct sockaddr_in6 *)&ls->addr)->sin6_port);
}

static void test_defaults_without_a_file(void)
{
	struct config cfg;
	char host[256] = "";
	CHECK(config_defaults(&cfg) == 0);
	gethostname(host, sizeof host);
	CHECK_STR(cfg.hostname, host[0] ? host : "localhost");
	CHECK(cfg.path == NULL);
	CHECK_STR(cfg.data_dir, "./tern-data");
	CHECK_STR(cfg.user, "tern");
	CHECK(cfg.nlistens == 4);
	const char *kinds[] = {"smtp", "submission", "smtps", "http"};
	const char *addrs[] = {"127.0.0.1:2525", "127.0.0.1:2587", "127.0.0.1:2465",
			       "127.0.0.1:8025"};
	const unsigned ports[] = {2525, 2587, 2465, 8025};
	for (size_t i = 0; i < 4 && i < cfg.nlistens; i++) {
		CHECK_STR(listen_kind_name(cfg.listens[i].kind), kinds[i]);
		CHECK_STR(cfg.listens[i].text, addrs[i]);
		CHECK(cfg.listens[i].addr.ss_family == AF_INET);
		CHECK(cfg.listens[i].addrlen == sizeof(struct sockaddr_in));
		CHECK(port_of(&cfg.listens[i]) == ports[i]);
	}
	CHECK(cfg.tls_cert == NULL && cfg.tls_key == NULL);
	CHECK(cfg.ndns_servers == 0 && cfg.dns_servers == NULL);
	CHECK(cfg.remote_port == 25);
	CHECK(cfg.source_ip == NULL && cfg.relay_host == NULL);
	CHECK(cfg.relay_auth_user == NULL && cfg.relay_auth_password == NULL);
	CHECK(cfg.nrelay_from == 0);
	CHECK(cfg.max_message_size == 35u * 1024 * 1024);
	CHECK(cfg.max_recipients == 1000);
	const unsigned retry[] = {60, 300, 900, 1800, 3600, 7200, 14400};
	CHECK(cfg.nretry_intervals == 7);
	for (size_t i = 0; i < 7 && i < cfg.nretry_intervals; i++)
		CHECK(cfg.retry_intervals[i] == retry[i]);
	CHECK(cfg.queue_lifetime == 5 * 86400);
	CHECK(cfg.delay_warning == 4 * 3600);
	CHECK(cfg.webhook_allow_private == 0);
	CHECK(cfg.webhook_max_failures == 10);
	CHECK_STR(cfg.store, "sqlite:./tern-data/tern.db");
	CHECK_STR(config_db_path(&cfg), "./tern-data/tern.db");
	CHECK(cfg.max_connections == 1000);
	CHECK(cfg.max_connections_per_ip == 50);
	CHECK(cfg.max_errors == 10);
	CHECK(cfg.timeout_greeting_wait == 300);
	CHECK(cfg.timeout_command == 300);
	CHECK(cfg.timeout_data == 600);
	CHECK(cfg.workers == 4);
	CHECK_STR(cfg.log_level, "info");
	config_free(&cfg);
	CHECK(cfg.hostname == NULL && cfg.listens == NULL);
	config_free(&cfg); /* twice is harmless */
}

/* The documented defaults are the ones in force. */
static void test_default_text_matches_defaults(void)
{
	struct config cfg;
	CHECK(config_defaults(&cfg) == 0);
	for (size_t i = 0; i < config_ndirectives; i++) {
		const struct config_directive *d = &config_directives[i];
		unsigned secs;
		uint64_t size;
		if (strcmp(d->name, "max_message_size") == 0)
			CHECK(parse_size(d->default_text, &size) == 0 &&
			      size == cfg.max_message_size);
		else if (strcmp(d->name, "queue_lifetime") == 0)
			CHECK(parse_duration(d->default_text, &secs) == 0 &&
			      secs == cfg.queue_lifetime);
		else if (strcmp(d->name, "timeout_data") == 0)
			CHECK(parse_duration(d->default_text, &secs) == 0 &&
			      secs == cfg.timeout_data);
		else if (strcmp(d->name, "max_connections_per_ip") == 0)
			CHECK(strtoul(d->default_text, NULL, 10) == cfg.max_connections_per_ip);
		CHECK(strncmp(d->usage, d->name, strlen(d->name)) == 0);
	}
	config_free(&cfg);
}

static void test_comments_blank_lines_and_crlf(void)
{
	struct config cfg;
	CHECK(parse(&cfg, "") == 0);
	CHECK_STR(cfg.path, "t.conf");
	CHECK(cfg.nlistens == 4);
	config_free(&cfg);
	CHECK(parse(&cfg, "# only a comment\n\n   \t\n  # indented\r\nworkers 8 # eight\r\n"
			  "max_errors\t3") == 0);
	CHECK(cfg.workers == 8);
	CHECK(cfg.max_errors == 3);
	config_free(&cfg);
	/* a '#' inside a value is part of it; only one that begins a word is a comment */
	CHECK(parse(&cfg, "relay_host smtp.example.net:587\nrelay_auth bob pa#ss#word #x\n") == 0);
	CHECK_STR(cfg.relay_auth_user, "bob");
	CHECK_STR(cfg.relay_auth_password, "pa#ss#word");
	config_free(&cfg);
}

static void test_every_directive_accepted(void)
{
	struct config cfg;
	const char *text = "hostname mx1.example.com\n"
			   "data_dir /var/lib/tern/\n"
			   "user _tern-mail\n"
			   "listen smtp 0.0.0.0:25\n"
			   "listen submission [::]:587\n"
			   "listen smtps [2001:db8::1]:465\n"
			   "listen http 127.0.0.1:8080\n"
			   "listen pop3 127.0.0.1:110\n"
			   "listen pop3s 127.0.0.1:995\n"
			   "listen imap 127.0.0.1:143\n"
			   "listen imaps 127.0.0.1:993\n"
			   "tls_cert /etc/tern/cert.pem\n"
			   "tls_key /etc/tern/key.pem\n"
			   "dns_server 127.0.0.1\n"
			   "dns_server 127.0.0.1:5353\n"
			   "dns_server [::1]:53\n"
			   "dns_server 2001:db8::53\n"
			   "remote_port 2525\n"
			   "source_ip 2001:db8::25\n"
			   "relay_host [2001:db8::2]:587\n"
			   "relay_auth user@example.com s3cret\n"
			   "relay_from 10.0.0.0/8\n"
			   "relay_from 2001:db8::/32\n"
			   "relay_from 192.0.2.7\n"
			   "max_message_size 10M\n"
			   "max_recipients 50\n"
			   "retry_intervals 30s,2m,1h\n"
			   "queue_lifetime 2d\n"
			   "delay_warning 0\n"
			   "webhook_allow_private yes\n"
			   "webhook_max_failures 3\n"
			   "store postgresql://tern@db/tern\n"
			   "max_connections 500\n"
			   "max_connections_per_ip 5\n"
			   "max_errors 3\n"
			   "timeout_greeting_wait 30s\n"
			   "timeout_command 2m\n"
			   "timeout_data 1h\n"
			   "workers 16\n"
			   "log_level debug\n";
	CHECK(parse(&cfg, text) == 0);
	CHECK_STR(err, "");
	CHECK_STR(cfg.hostname, "mx1.example.com");
	CHECK_STR(cfg.data_dir, "/var/lib/tern");
	CHECK_STR(cfg.user, "_tern-mail");
	CHECK(cfg.nlistens == 8);
	if (cfg.nlistens == 8) {
		CHECK(cfg.listens[0].kind == LISTEN_SMTP && port_of(&cfg.listens[0]) == 25);
		CHECK(cfg.listens[1].kind == LISTEN_SUBMISSION);
		CHECK(cfg.listens[1].addr.ss_family == AF_INET6);
		CHECK(cfg.listens[1].addrlen == sizeof(struct sockaddr_in6));
		CHECK(port_of(&cfg.listens[1]) == 587);
		CHECK_STR(cfg.listens[2].text, "[2001:db8::1]:465");
		CHECK(cfg.listens[7].kind == LISTEN_IMAPS && port_of(&cfg.listens[7]) == 993);
		CHECK_STR(listen_kind_name(cfg.listens[4].kind), "pop3");
	}
	CHECK_STR(cfg.tls_cert, "/etc/tern/cert.pem");
	CHECK_STR(cfg.tls_key, "/etc/tern/key.pem");
	CHECK(cfg.ndns_servers == 4);
	if (cfg.ndns_servers == 4) {
		CHECK_STR(cfg.dns_servers[1], "127.0.0.1:5353");
		CHECK_STR(cfg.dns_servers[2], "[::1]:53");
		CHECK_STR(cfg.dns_servers[3], "2001:db8::53");
	}
	CHECK(cfg.remote_port == 2525);
	CHECK_STR(cfg.source_ip, "2001:db8::25");
	CHECK_STR(cfg.relay_host, "[2001:db8::2]:587");
	CHECK_STR(cfg.relay_auth_user, "user@example.com");
	CHECK_STR(cfg.relay_auth_password, "s3cret");
	CHECK(cfg.nrelay_from == 3);
	CHECK(cfg.max_message_size == 10u * 1024 * 1024);
	CHECK(cfg.max_recipients == 50);
	CHECK(cfg.nretry_intervals == 3);
	if (cfg.nretry_intervals == 3)
		CHECK(cfg.retry_intervals[0] == 30 && cfg.retry_intervals[1] == 120 &&
		      cfg.retry_intervals[2] == 3600);
	CHECK(cfg.queue_lifetime == 2 * 86400);
	CHECK(cfg.delay_warning == 0);
	CHECK(cfg.webhook_allow_private == 1);
	CHECK(cfg.webhook_max_failures == 3);
	CHECK_STR(cfg.store, "postgresql://tern@db/tern");
	CHECK(config_db_path(&cfg) == NULL);
	CHECK(cfg.max_connections == 500);
	CHECK(cfg.max_connections_per_ip == 5);
	CHECK(cfg.max_errors == 3);
	CHECK(cfg.timeout_greeting_wait == 30);
	CHECK(cfg.timeout_command == 120);
	CHECK(cfg.timeout_data == 3600);
	CHECK(cfg.workers == 16);
	CHECK_STR(cfg.log_level, "debug");
	config_free(&cfg);

	CHECK(parse(&cfg, "webhook_allow_private no\nrelay_host smtp.example.net:25\n"
			  "relay_from ::ffff:10.1.0.0/112\n") == 0);
	CHECK(cfg.webhook_allow_private == 0);
	CHECK_STR(cfg.relay_host, "smtp.example.net:25");
	config_free(&cfg);
}

/* Each bad value is refused on its own line (line 2 here), and the error
 * names the directive and the value. */
static void test_bad_values_name_line_directive_and_value(void)
{
	static const struct {
		const char *line, *want;
	} bad[] = {
		{"hostname -bad.example", "hostname '-bad.example'"},
		{"hostname a..b", "hostname 'a..b'"},
		{"hostname ex_ample.com", "hostname 'ex_ample.com'"},
		{"user -root", "user '-root'"},
		{"user a/b", "user 'a/b'"},
		{"listen ftp 127.0.0.1:21", "listen kind 'ftp'"},
		{"listen smtp 127.0.0.1", "listen address '127.0.0.1'"},
		{"listen smtp 127.0.0.1:0", "listen address '127.0.0.1:0'"},
		{"listen smtp 127.0.0.1:65536", "listen address '127.0.0.1:65536'"},
		{"listen smtp 127.0.0.1:25x", "listen address '127.0.0.1:25x'"},
		{"listen smtp 127.0.0.256:25", "listen address '127.0.0.256:25'"},
		{"listen smtp localhost:25", "listen address 'localhost:25'"},
		{"listen smtp ::1:25", "listen address '::1:25'"},
		{"listen smtp [::1]", "listen address '[::1]'"},
		{"listen smtp [::1]25", "listen address '[::1]25'"},
		{"listen smtp [127.0.0.1]:25", "listen address '[127.0.0.1]:25'"},
		{"listen smtp [::g]:25", "listen address '[::g]:25'"},
		{"dns_server 1.2.3", "dns_server '1.2.3'"},
		{"dns_server 1.2.3.4:0", "dns_server '1.2.3.4:0'"},
		{"dns_server ns.example.com", "dns_server 'ns.example.com'"},
		{"dns_server [::1]:x", "dns_server '[::1]:x'"},
		{"remote_port 0", "remote_port '0'"},
		{"remote_port 65536", "remote_port '65536'"},
		{"remote_port -25", "remote_port '-25'"},
		{"remote_port 25s", "remote_port '25s'"},
		{"source_ip 10.0.0", "source_ip '10.0.0'"},
		{"source_ip [::1]", "source_ip '[::1]'"},
		{"relay_host smtp.example.net", "relay_host 'smtp.example.net'"},
		{"relay_host :25", "relay_host ':25'"},
		{"relay_host bad_host:25", "relay_host 'bad_host:25'"},
		{"relay_host [::1:25", "relay_host '[::1:25'"},
		{"relay_from 10.0.0.0/33", "relay_from '10.0.0.0/33'"},
		{"relay_from ::/129", "relay_from '::/129'"},
		{"relay_from 10.0.0.0/", "relay_from '10.0.0.0/'"},
		{"relay_from 10.0.0.0/-1", "relay_from '10.0.0.0/-1'"},
		{"relay_from example.com/8", "relay_from 'example.com/8'"},
		{"relay_from 10.0.0.1/8", "relay_from '10.0.0.1/8' has address bits set"},
		{"relay_from 2001:db8::1/64", "relay_from '2001:db8::1/64'"},
		{"max_message_size 0", "max_message_size '0'"},
		{"max_message_size 10T", "max_message_size '10T'"},
		{"max_message_size 5G", "max_message_size '5G'"},
		{"max_message_size 1.5M", "max_message_size '1.5M'"},
		{"max_recipients 0", "max_recipients '0'"},
		{"max_recipients 99999999999999999999999", "max_recipients '9999"},
		{"retry_intervals 1m,,5m", "retry_intervals: empty interval"},
		{"retry_intervals 1m,", "retry_intervals: empty interval"},
		{"retry_intervals ,1m", "retry_intervals: empty interval"},
		{"retry_intervals 1m,5x", "retry_intervals '5x'"},
		{"retry_intervals 0s", "retry_intervals '0s'"},
		{"queue_lifetime 0", "queue_lifetime '0'"},
		{"queue_lifetime 5w", "queue_lifetime '5w'"},
		{"queue_lifetime 366d", "queue_lifetime '366d' is not a duration from 1s to 365d"},
		{"delay_warning 1y", "delay_warning '1y'"},
		{"webhook_allow_private true", "webhook_allow_private 'true'"},
		{"webhook_allow_private YES", "webhook_allow_private 'YES'"},
		{"store mysql://db", "store 'mysql://db'"},
		{"store sqlite:", "store 'sqlite:'"},
		{"store postgresql://", "store 'postgresql://'"},
		{"max_connections 0", "max_connections '0'"},
		{"max_connections_per_ip x", "max_connections_per_ip 'x'"},
		{"max_errors 1001", "max_errors '1001'"},
		{"timeout_greeting_wait 0s", "timeout_greeting_wait '0s'"},
		{"timeout_command 2d", "timeout_command '2d'"},
		{"timeout_data 25h", "timeout_data '25h' is not a duration from 1s to 1d"},
		{"workers 0", "workers '0'"},
		{"workers 257", "workers '257'"},
		{"log_level verbose", "log_level 'verbose'"},
		{"hostname", "hostname: missing value (usage: hostname NAME)"},
		{"relay_auth bob", "relay_auth: missing value"},
		{"listen smtp", "listen: missing value (usage: listen KIND ADDR:PORT)"},
		{"workers 4 5", "workers: unexpected value '5'"},
		{"relay_auth a b c d e f g h i", "relay_auth: unexpected value 'c'"},
		{"hostnam example.com", "unknown directive 'hostnam'"},
		{"Hostname example.com", "unknown directive 'Hostname'"},
		{"user a\x01"
		 "b",
		 "control character 0x01"},
		{"user a\rb", "control character 0x0d"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char text[256];
		snprintf(text, sizeof text, "# line one\n%s\nworkers 2\n", bad[i].line);
		CHECK(parse_fails(text, "t.conf:2: ", bad[i].want));
	}
	/* a value in a message cannot carry control bytes or run on */
	char text[400] = "hostname ";
	memset(text + 9, 'x', 300);
	text[309] = '\0';
	CHECK(parse_fails(text, "t.conf:1: hostname 'xxx", "...'"));
	CHECK(strlen(err) < 200);
	/* a NUL byte inside the text */
	struct config cfg;
	CHECK(config_parse_buffer(&cfg, "t.conf", "workers 4\nuser a\0b\n", 19, err, sizeof err) ==
	      -1);
	CHECK_STR(err, "t.conf:2: control character 0x00 in the line");
}

static void test_directives_given_twice(void)
{
	CHECK(parse_fails("hostname a.example\n\nhostname b.example\n",
			  "t.conf:3: ", "hostname given twice (first on line 1)"));
	CHECK(parse_fails("workers 2\n# x\nmax_errors 4\nworkers 2\n",
			  "t.conf:4: ", "workers given twice (first on line 1)"));
	CHECK(parse_fails("relay_host a.example:25\nrelay_auth a b\nrelay_auth a b\n",
			  "t.conf:3: ", "relay_auth given twice (first on line 2)"));
	/* the repeatable ones */
	struct config cfg;
	CHECK(parse(&cfg, "dns_server 10.0.0.1\ndns_server 10.0.0.2\nrelay_from 10.0.0.0/8\n"
			  "relay_from 192.168.0.0/16\nlisten smtp 127.0.0.1:25\n"
			  "listen smtp [::1]:25\n") == 0);
	CHECK(cfg.ndns_servers == 2 && cfg.nrelay_from == 2 && cfg.nlistens == 2);
	config_free(&cfg);
	/* the same address twice cannot be bound twice */
	CHECK(parse_fails(
		"listen smtp 127.0.0.1:25\nlisten submission 127.0.0.1:25\n",
		"t.conf:2: ", "listen address '127.0.0.1:25' is already used by 'listen smtp"));
}

static void test_listen_lines_replace_all_defaults(void)
{
	struct config cfg;
	CHECK(parse(&cfg, "workers 2\nlisten smtp [::1]:25\n") == 0);
	CHECK(cfg.nlistens == 1);
	if (cfg.nlistens == 1) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&cfg.listens[0].addr;
		struct in6_addr lo = IN6ADDR_LOOPBACK_INIT;
		CHECK(cfg.listens[0].kind == LISTEN_SMTP);
		CHECK(sin6->sin6_family == AF_INET6);
		CHECK(memcmp(&sin6->sin6_addr, &lo, sizeof lo) == 0);
		CHECK(ntohs(sin6->sin6_port) == 25);
		CHECK_STR(cfg.listens[0].text, "[::1]:25");
	}
	config_free(&cfg);
	/* a default address may be named again once the defaults are gone */
	CHECK(parse(&cfg, "listen http 127.0.0.1:2525\nlisten smtp 127.0.0.1:8025\n") == 0);
	CHECK(cfg.nlistens == 2);
	config_free(&cfg);
	/* without a listen line the defaults stay */
	CHECK(parse(&cfg, "workers 2\n") == 0);
	CHECK(cfg.nlistens == 4);
	config_free(&cfg);
}

static void test_store_follows_data_dir(void)
{
	struct config cfg;
	CHECK(parse(&cfg, "data_dir /srv/tern\n") == 0);
	CHECK_STR(cfg.store, "sqlite:/srv/tern/tern.db");
	CHECK_STR(config_db_path(&cfg), "/srv/tern/tern.db");
	config_free(&cfg);
	/* the order of the lines does not matter */
	CHECK(parse(&cfg, "store sqlite:/db/t.db\ndata_dir /srv/tern\n") == 0);
	CHECK_STR(cfg.store, "sqlite:/db/t.db");
	CHECK_STR(config_db_path(&cfg), "/db/t.db");
	config_free(&cfg);
	CHECK(parse(&cfg, "data_dir /\n") == 0);
	CHECK_STR(cfg.data_dir, "/");
	config_free(&cfg);
}

static void test_settings_that_need_each_other(void)
{
	CHECK(parse_fails("workers 2\ntls_cert /c.pem\n", "t.conf:2: ", "tls_key is missing"));
	CHECK(parse_fails("tls_key /k.pem\n", "t.conf:1: ", "tls_cert is missing"));
	CHECK(parse_fails("\n\nrelay_auth u p\n", "t.conf:3: ", "relay_auth needs a relay_host"));
}

static void test_line_length_is_bounded(void)
{
	struct config cfg;
	char *text = malloc(5000);
	/* exactly 4096 bytes: accepted (a long comment) */
	memset(text, ' ', 4096);
	text[0] = '#';
	memcpy(text + 4096, "\r\nworkers 3\n", 13);
	CHECK(parse(&cfg, text) == 0);
	CHECK(cfg.workers == 3);
	config_free(&cfg);
	/* one more: refused, even as a comment */
	memset(text, ' ', 4097);
	text[0] = '#';
	memcpy(text + 4097, "\nworkers 3\n", 12);
	CHECK(parse_fails(text, "t.conf:1: ", "line is longer than 4096 bytes"));
	/* a long path is refused by its own limit */
	memcpy(text, "data_dir /", 10);
	memset(text + 10, 'd', 1100);
	text[1110] = '\0';
	CHECK(parse_fails(text, "t.conf:1: ", "is longer than 1024 bytes"));
	free(text);
}

static void test_relay_from_matching(void)
{
	struct config cfg;
	CHECK(parse(&cfg, "relay_from 10.0.0.0/8\nrelay_from 192.168.1.128/25\n"
			  "relay_from 2001:db8:1::/48\nrelay_from ::1\n"
			  "relay_from ::ffff:172.16.0.0/108\n") == 0);
	struct sockaddr_storage ss;
	const struct {
		const char *ip;
		int v6, allowed;
	} cases[] = {
		{"10.0.0.1", 0, 1},
		{"10.255.255.255", 0, 1},
		{"11.0.0.1", 0, 0},
		{"9.255.255.255", 0, 0},
		{"192.168.1.128", 0, 1},
		{"192.168.1.255", 0, 1},
		{"192.168.1.127", 0, 0},
		{"172.16.0.1", 0, 1}, /* from the mapped network */
		{"172.31.255.255", 0, 1},
		{"172.32.0.0", 0, 0},
		{"2001:db8:1::25", 1, 1},
		{"2001:db8:1:ffff::1", 1, 1},
		{"2001:db8:2::25", 1, 0},
		{"::1", 1, 1},
		{"::2", 1, 0},
		{"::ffff:10.1.2.3", 1, 1}, /* IPv4-mapped matches IPv4 networks */
		{"::ffff:11.1.2.3", 1, 0},
		{"::ffff:192.168.1.200", 1, 1},
		{"::ffff:172.20.0.1", 1, 1},
		{"::10.1.2.3", 1, 0}, /* IPv4-compatible is not mapped */
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		ss = cases[i].v6 ? sa6(cases[i].ip) : sa4(cases[i].ip);
		int got = config_relay_allowed(&cfg, (struct sockaddr *)&ss);
		if (got != cases[i].allowed)
			fprintf(stderr, "  relay_allowed(%s) = %d\n", cases[i].ip, got);
		CHECK(got == cases[i].allowed);
	}
	config_free(&cfg);

	/* no relay_from: nobody; /0: everybody of that family */
	CHECK(parse(&cfg, "") == 0);
	ss = sa4("127.0.0.1");
	CHECK(config_relay_allowed(&cfg, (struct sockaddr *)&ss) == 0);
	config_free(&cfg);
	CHECK(parse(&cfg, "relay_from 0.0.0.0/0\n") == 0);
	ss = sa4("203.0.113.9");
	CHECK(config_relay_allowed(&cfg, (struct sockaddr *)&ss) == 1);
	ss = sa6("::ffff:203.0.113.9");
	CHECK(config_relay_allowed(&cfg, (struct sockaddr *)&ss) == 1);
	ss = sa6("2001:db8::9");
	CHECK(config_relay_allowed(&cfg, (struct sockaddr *)&ss) == 0);
	config_free(&cfg);
	CHECK(parse(&cfg, "relay_from 192.0.2.7\n") == 0);
	ss = sa4("192.0.2.7");
	CHECK(config_relay_allowed(&cfg, (struct sockaddr *)&ss) == 1);
	ss = sa4("192.0.2.6");
	CHECK(config_relay_allowed(&cfg, (struct sockaddr *)&ss) == 0);
	config_free(&cfg);
}

static void test_parse_size(void)
{
	uint64_t v = 7;
	CHECK(parse_size("0", &v) == 0 && v == 0);
	CHECK(parse_size("1", &v) == 0 && v == 1);
	CHECK(parse_size("1K", &v) == 0 && v == 1024);
	CHECK(parse_size("1k", &v) == 0 && v == 1024);
	CHECK(parse_size("35M", &v) == 0 && v == 35u * 1024 * 1024);
	CHECK(parse_size("2G", &v) == 0 && v == 2ull * 1024 * 1024 * 1024);
	CHECK(parse_size("18446744073709551615", &v) == 0 && v == UINT64_MAX);
	CHECK(parse_size("00012", &v) == 0 && v == 12);
	v = 7;
	CHECK(parse_size("18446744073709551616", &v) == -1); /* 2^64 */
	CHECK(parse_size("99999999999999999999999999", &v) == -1);
	CHECK(parse_size("18014398509481984K", &v) == -1); /* 2^54 K = 2^64 */
	CHECK(parse_size("18014398509481983K", &v) == 0 && v == UINT64_MAX - 1023);
	CHECK(parse_size("17179869184G", &v) == -1); /* 2^34 G = 2^64 */
	CHECK(parse_size("", &v) == -1);
	CHECK(parse_size("K", &v) == -1);
	CHECK(parse_size("1KB", &v) == -1);
	CHECK(parse_size("1T", &v) == -1);
	CHECK(parse_size("-1", &v) == -1);
	CHECK(parse_size("+1", &v) == -1);
	CHECK(parse_size(" 1", &v) == -1);
	CHECK(parse_size("1 ", &v) == -1);
	CHECK(parse_size("1.5M", &v) == -1);
	CHECK(parse_size("0x10", &v) == -1);
	CHECK(v == 18014398509481983ull * 1024); /* failures leave *out alone */
}

static void test_parse_duration(void)
{
	unsigned v = 7;
	CHECK(parse_duration("0", &v) == 0 && v == 0);
	CHECK(parse_duration("45", &v) == 0 && v == 45);
	CHECK(parse_duration("45s", &v) == 0 && v == 45);
	CHECK(parse_duration("5m", &v) == 0 && v == 300);
	CHECK(parse_duration("4h", &v) == 0 && v == 14400);
	CHECK(parse_duration("5d", &v) == 0 && v == 432000);
	CHECK(parse_duration("4294967295", &v) == 0 && v == UINT_MAX);
	CHECK(parse_duration("49710d", &v) == 0 && v == 49710u * 86400);
	v = 7;
	CHECK(parse_duration("4294967296", &v) == -1);
	CHECK(parse_duration("49711d", &v) == -1); /* 4295030400 s */
	CHECK(parse_duration("71582789m", &v) == -1);
	CHECK(parse_duration("1193047h", &v) == -1);
	CHECK(parse_duration("99999999999999999999d", &v) == -1);
	CHECK(parse_duration("", &v) == -1);
	CHECK(parse_duration("m", &v) == -1);
	CHECK(parse_duration("5M", &v) == -1);
	CHECK(parse_duration("1w", &v) == -1);
	CHECK(parse_duration("1h30m", &v) == -1);
	CHECK(parse_duration("5 m", &v) == -1);
	CHECK(parse_duration("-5m", &v) == -1);
	CHECK(v == 7);
}

static void test_load_from_a_file(void)
{
	struct config cfg;
	char path[] = "/tmp/test_config_XXXXXX";
	int fd = mkstemp(path);
	CHECK(fd >= 0);
	const char *text = "hostname mail.example.org\nlisten smtp 127.0.0.1:10025\n";
	CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
	close(fd);
	CHECK(config_load(&cfg, path, err, sizeof err) == 0);
	CHECK_STR(cfg.path, path);
	CHECK_STR(cfg.hostname, "mail.example.org");
	CHECK(cfg.nlistens == 1);
	config_free(&cfg);

	FILE *f = fopen(path, "a");
	fputs("bogus 1\n", f);
	fclose(f);
	CHECK(config_load(&cfg, path, err, sizeof err) == -1);
	char want[128];
	snprintf(want, sizeof want, "%s:3: unknown directive 'bogus'", path);
	CHECK_STR(err, want);
	CHECK(cfg.hostname == NULL && cfg.path == NULL);
	unlink(path);

	CHECK(config_load(&cfg, path, err, sizeof err) == -1);
	snprintf(want, sizeof want, "%s: No such file or directory", path);
	CHECK_STR(err, want);
	CHECK(config_load(&cfg, "/tmp", err, sizeof err) == -1);
	CHECK(strncmp(err, "/tmp: ", 6) == 0);
	CHECK(cfg.hostname == NULL);
}

/* An error message is cut to the caller's buffer, never overrun. */
static void test_small_error_buffer(void)
{
	struct config cfg;
	char small[12];
	const char *text = "workers lots\n";
	CHECK(config_parse_buffer(&cfg, "t.conf", text, strlen(text), small, sizeof small) == -1);
	CHECK_STR(small, "t.conf:1: w");
}

/* docs/configuration.md has a "### name" heading for each directive, in
 * the table's order, and no heading that is not a directive. */
static void test_docs_cover_every_directive(void)
{
	FILE *f = fopen("docs/configuration.md", "r");
	CHECK(f != NULL);
	if (!f)
		return;
	char line[1024];
	size_t next = 0;
	int in_code = 0;
	while (fgets(line, sizeof line, f)) {
		if (strncmp(line, "```", 3) == 0)
			in_code = !in_code;
		if (in_code || strncmp(line, "### ", 4) != 0)
			continue;
		line[strcspn(line, "\r\n")] = '\0';
		const char *name = line + 4;
		size_t i = 0;
		while (i < config_ndirectives && strcmp(config_directives[i].name, name) != 0)
			i++;
		if (i == config_ndirectives)
			fprintf(stderr, "  docs heading '%s' is not a directive\n", name);
		else if (i != next)
			fprintf(stderr, "  docs heading '%s' is out of order\n", name);
		CHECK(i == next);
		if (i < config_ndirectives)
			next = i + 1;
	}
	fclose(f);
	if (next != config_ndirectives)
		fprintf(stderr, "  docs stop before '%s'\n", config_directives[next].name);
	CHECK(next == config_ndirectives);
}

/* The example file in the docs is accepted as it stands. */
static void test_docs_example_is_valid(void)
{
	FILE *f = fopen("docs/configuration.md", "r");
	CHECK(f != NULL);
	if (!f)
		return;
	static char example[16384];
	char line[1024];
	size_t len = 0;
	int state = 0; /* 0: before "## Example", 1: before its block, 2: in it, 3: after */
	while (state < 3 && fgets(line, sizeof line, f)) {
		if (state == 0 && strncmp(line, "## Example", 10) == 0)
			state = 1;
		else if (state > 0 && strncmp(line, "```", 3) == 0)
			state++;
		else if (state == 2 && len + strlen(line) < sizeof example)
			len += (size_t)snprintf(example + len, sizeof example - len, "%s", line);
	}
	fclose(f);
	CHECK(state == 3 && len > 0);
	struct config cfg;
	CHECK(parse(&cfg, example) == 0);
	CHECK_STR(err, "");
	CHECK_STR(cfg.hostname, "mail.example.com");
	CHECK(cfg.nlistens == 6);
	CHECK(cfg.nrelay_from == 2);
	config_free(&cfg);
}

int main(void)
{
	RUN(test_defaults_without_a_file);
	RUN(test_default_text_matches_defaults);
	RUN(test_comments_blank_lines_and_crlf);
	RUN(test_every_directive_accepted);
	RUN(test_bad_values_name_line_directive_and_value);
	RUN(test_directives_given_twice);
	RUN(test_listen_lines_replace_all_defaults);
	RUN(test_store_follows_data_dir);
	RUN(test_settings_that_need_each_other);
	RUN(test_line_length_is_bounded);
	RUN(test_relay_from_matching);
	RUN(test_parse_size);
	RUN(test_parse_duration);
	RUN(test_load_from_a_file);
	RUN(test_small_error_buffer);
	RUN(test_docs_cover_every_directive);
	RUN(test_docs_example_is_valid);
	return check_summary();
}
