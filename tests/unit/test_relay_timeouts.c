/* test_relay_timeouts.c - the relay client's timeouts: the relay_timeout_*
 * directives (defaults, bounds, documented defaults) and how relay_timeouts
 * spreads them over the stages of RFC 5321 4.5.3.2. */
#include <string.h>

#include "check.h"
#include "core/config.h"
#include "queue/relay.h"

static char err[256];

static int parse(struct config *cfg, const char *text)
{
	err[0] = '\0';
	return config_parse_buffer(cfg, "t.conf", text, strlen(text), err, sizeof err);
}

static void test_defaults_are_the_rfc_values(void)
{
	struct config cfg;
	CHECK(config_defaults(&cfg) == 0);
	CHECK(cfg.relay_timeout_connect == 30);
	CHECK(cfg.relay_timeout_command == 300);
	CHECK(cfg.relay_timeout_data == 600);
	/* The table's default text says the same. */
	for (size_t i = 0; i < config_ndirectives; i++) {
		const struct config_directive *d = &config_directives[i];
		unsigned secs = 0;
		if (strcmp(d->name, "relay_timeout_connect") == 0)
			CHECK(parse_duration(d->default_text, &secs) == 0 && secs == 30);
		else if (strcmp(d->name, "relay_timeout_command") == 0)
			CHECK(parse_duration(d->default_text, &secs) == 0 && secs == 300);
		else if (strcmp(d->name, "relay_timeout_data") == 0)
			CHECK(parse_duration(d->default_text, &secs) == 0 && secs == 600);
	}
	config_free(&cfg);
}

static void test_directives_set_and_bounded(void)
{
	struct config cfg;
	CHECK(parse(&cfg, "relay_timeout_connect 5s\n"
			  "relay_timeout_command 2\n"
			  "relay_timeout_data 1h\n") == 0);
	CHECK_STR(err, "");
	CHECK(cfg.relay_timeout_connect == 5);
	CHECK(cfg.relay_timeout_command == 2);
	CHECK(cfg.relay_timeout_data == 3600);
	config_free(&cfg);

	const char *bad[] = {"relay_timeout_connect 0\n", "relay_timeout_connect 2h\n",
			     "relay_timeout_command 0s\n", "relay_timeout_command 2d\n",
			     "relay_timeout_data 25h\n",   "relay_timeout_data soon\n",
			     "relay_timeout_data\n",	   "relay_timeout_command 1m 2m\n"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		CHECK(parse(&cfg, bad[i]) == -1);
		CHECK(strncmp(err, "t.conf:1: ", 10) == 0);
		CHECK(strstr(err, "relay_timeout_") != NULL);
	}
	CHECK(parse(&cfg, "relay_timeout_data 1m\nrelay_timeout_data 2m\n") == -1);
	CHECK(strncmp(err, "t.conf:2: ", 10) == 0);
}

/* The defaults give the client exactly RFC 5321 4.5.3.2's waits. */
static void test_defaults_map_to_each_stage(void)
{
	struct smtp_client_timeouts t = relay_timeouts(30, 300, 600);
	CHECK(t.connect == 30000);
	CHECK(t.greeting == 300000 && t.helo == 300000);
	CHECK(t.mail == 300000 && t.rcpt == 300000);
	CHECK(t.data_init == 120000);
	CHECK(t.data_block == 180000);
	CHECK(t.data_final == 600000);
	CHECK(t.quit == 10000);
}

/* Short values shorten every wait of their group, so a silent server is
 * given up on within them. */
static void test_short_values_shorten_every_wait(void)
{
	struct smtp_client_timeouts t = relay_timeouts(1, 2, 3);
	CHECK(t.connect == 1000);
	CHECK(t.greeting == 2000 && t.helo == 2000 && t.mail == 2000 && t.rcpt == 2000);
	CHECK(t.data_init == 2000 && t.quit == 2000);
	CHECK(t.data_block == 3000 && t.data_final == 3000);
}

/* Long values lengthen the command and final waits; DATA's 354, QUIT and
 * write progress keep their own. */
static void test_long_values(void)
{
	struct smtp_client_timeouts t = relay_timeouts(3600, 86400, 86400);
	CHECK(t.connect == 3600000);
	CHECK(t.greeting == 86400000u && t.rcpt == 86400000u);
	CHECK(t.data_init == 120000 && t.quit == 10000 && t.data_block == 180000);
	CHECK(t.data_final == 86400000u);
}

/* 0 leaves the client's defaults (it reads 0 as "the RFC's value"). */
static void test_zero_keeps_client_defaults(void)
{
	struct smtp_client_timeouts t = relay_timeouts(0, 0, 0);
	CHECK(t.connect == 0 && t.greeting == 0 && t.helo == 0 && t.mail == 0 && t.rcpt == 0);
	CHECK(t.data_final == 0);
	CHECK(t.data_init == 120000 && t.quit == 10000 && t.data_block == 180000);
}

int main(void)
{
	RUN(test_defaults_are_the_rfc_values);
	RUN(test_directives_set_and_bounded);
	RUN(test_defaults_map_to_each_stage);
	RUN(test_short_values_shorten_every_wait);
	RUN(test_long_values);
	RUN(test_zero_keeps_client_defaults);
	return check_summary();
}
