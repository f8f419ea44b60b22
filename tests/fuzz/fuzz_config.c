/* fuzz_config.c - libFuzzer target for the configuration parser
 * (core/config.c, core/config_values.c; the file format of config.h and
 * docs/configuration.md).
 *
 * The input is a whole configuration file.  config_parse_buffer reads it
 * (defaults first, then the file), config_free releases it; LeakSanitizer
 * checks that nothing is left behind on either path.  Checked beyond
 * memory safety: a refusal is "NAME:LINE: reason" and leaves the struct
 * freed; an accepted file gives a complete configuration whose numbers are
 * inside the directive table's bounds.  The value parsers parse_size and
 * parse_duration also see the input as one word. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"

#define FUZZ_INPUT_MAX (64 * 1024)
#define FUZZ_NAME      "fuzz.conf"

#define check(cond)                                                                                \
	do {                                                                                       \
		if (!(cond))                                                                       \
			abort();                                                                   \
	} while (0)

/* check_accepted - what ternd relies on after a successful load. */
static void check_accepted(const struct config *cfg)
{
	check(cfg->path && !strcmp(cfg->path, FUZZ_NAME));
	check(cfg->hostname && cfg->data_dir && cfg->user && cfg->store && cfg->log_level);
	check(cfg->nlistens >= 1 && cfg->listens);
	for (size_t i = 0; i < cfg->nlistens; i++) {
		const struct listen_spec *l = &cfg->listens[i];
		check(l->addr.ss_family == AF_INET || l->addr.ss_family == AF_INET6);
		check(strnlen(l->text, sizeof l->text) < sizeof l->text);
		check(listen_kind_name(l->kind) != NULL);
	}
	check(cfg->nretry_intervals >= 1 && cfg->retry_intervals);
	for (size_t i = 0; i < cfg->nretry_intervals; i++)
		check(cfg->retry_intervals[i] >= 1 && cfg->retry_intervals[i] <= 30 * 24 * 3600);
	for (size_t i = 0; i < cfg->ndns_servers; i++)
		check(cfg->dns_servers[i] != NULL);
	for (size_t i = 0; i < cfg->nrelay_from; i++) {
		const struct cidr *c = &cfg->relay_from[i];
		check((c->family == AF_INET && c->prefix <= 32) ||
		      (c->family == AF_INET6 && c->prefix <= 128));
	}
	check(cfg->remote_port >= 1 && cfg->remote_port <= 65535);
	check(cfg->max_recipients >= 1 && cfg->queue_lifetime >= 1 && cfg->workers >= 1);
	check(!cfg->tls_cert == !cfg->tls_key);
	check(!cfg->relay_auth_user || cfg->relay_host);
	check(!cfg->relay_auth_user == !cfg->relay_auth_password);
	(void)config_db_path(cfg);

	/* the relay check on the configuration just read */
	struct sockaddr_in v4 = {.sin_family = AF_INET};
	struct sockaddr_in6 v6 = {.sin6_family = AF_INET6};
	inet_pton(AF_INET, "192.0.2.7", &v4.sin_addr);
	inet_pton(AF_INET6, "::ffff:192.0.2.7", &v6.sin6_addr);
	check(config_relay_allowed(cfg, (struct sockaddr *)&v4) ==
	      config_relay_allowed(cfg, (struct sockaddr *)&v6));
	inet_pton(AF_INET6, "2001:db8::1", &v6.sin6_addr);
	(void)config_relay_allowed(cfg, (struct sockaddr *)&v6);
}

/* parse - one parse of TEXT with an error buffer of ERRLEN bytes. */
static int parse(const char *text, size_t len, size_t errlen)
{
	struct config cfg;
	char *err = malloc(errlen); /* exact size: ASan sees any overrun */

	check(err != NULL);
	memset(&cfg, 0xa5, sizeof cfg); /* config_parse_buffer must not read it */
	int rc = config_parse_buffer(&cfg, FUZZ_NAME, text, len, err, errlen);
	if (rc == 0) {
		check(err[0] == '\0');
		check_accepted(&cfg);
		config_free(&cfg);
		check(cfg.hostname == NULL); /* config_free clears what it freed */
	} else {
		check(rc == -1);
		check(strnlen(err, errlen) < errlen);
		if (errlen > 64)
			check(!strncmp(err, FUZZ_NAME ":", sizeof FUZZ_NAME));
		check(cfg.hostname == NULL && cfg.listens == NULL && cfg.path == NULL);
		config_free(&cfg); /* harmless on a freed struct */
	}
	free(err);
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > FUZZ_INPUT_MAX)
		return 0;
	/* Exact-size copy, no terminator: the parser gets a length. */
	char *text = malloc(size ? size : 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	int rc = parse(text, size, 256);
	/* a tight error buffer gives the same verdict */
	check(parse(text, size, 1 + (size ? data[0] % 24 : 0)) == rc);
	free(text);

	/* the input as one value word */
	char *word = malloc(size + 1);
	if (!word)
		return 0;
	memcpy(word, data, size);
	word[size] = '\0';
	uint64_t bytes;
	unsigned secs;
	(void)parse_size(word, &bytes);
	(void)parse_duration(word, &secs);
	free(word);
	return 0;
}
