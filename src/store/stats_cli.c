/* stats_cli.c - `ternctl stats` (see stats_cli.h). */
#include "store/stats_cli.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "core/privdrop.h"
#include "store/records.h"

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

#define DEFAULT_DAYS 7
#define ADDRESS_MAX 320

const char stats_usage[] = "  stats [--user ADDRESS] [--days N] [--hourly]\n";

/* What was asked. */
struct stats_args {
	char user[ADDRESS_MAX + 1]; /* lower case; "" for everyone */
	int has_user;
	unsigned days;
	int hourly;
};

static int usage(const char *why)
{
	fprintf(stderr, "ternctl: %s\nusage: ternctl [-c FILE] COMMAND\n%s", why, stats_usage);
	return EXIT_USAGE;
}

void stats_cli_range(int64_t now, unsigned days, int hourly, int64_t *from, int64_t *to,
		     int64_t *interval)
{
	*interval = hourly ? 3600 : 86400;
	int64_t n = hourly ? (int64_t)days * 24 : (int64_t)days;
	*to = (now / *interval + 1) * *interval;
	*from = *to - n * *interval;
}

/* parse_days - N for --days: 1 up to what fits in one stats query. */
static int parse_days(const char *s, int hourly, unsigned *out)
{
	char *end;
	if (!s || *s < '1' || *s > '9')
		return -1;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	unsigned long max = hourly ? RECORDS_STATS_MAX / 24 : RECORDS_STATS_MAX;
	if (errno || *end || v > max)
		return -1;
	*out = (unsigned)v;
	return 0;
}

/* parse_args - the words after "stats", "--name VALUE" or
 * "--name=VALUE".  Returns 0, or EXIT_USAGE after saying why. */
static int parse_args(struct stats_args *a, char **argv, int argc)
{
	const char *days = NULL;
	char why[160];
	for (int i = 0; i < argc; i++) {
		const char *w = argv[i], *eq = strchr(w, '='), *value = eq ? eq + 1 : NULL;
		size_t nlen = eq ? (size_t)(eq - w) : strlen(w);
		if (!strcmp(w, "--hourly")) {
			a->hourly = 1;
			continue;
		}
		int is_user = nlen == 6 && !strncmp(w, "--user", nlen);
		int is_days = nlen == 6 && !strncmp(w, "--days", nlen);
		if (!is_user && !is_days) {
			snprintf(why, sizeof why, "stats: unknown argument %.64s", w);
			return usage(why);
		}
		if (!value && i + 1 < argc)
			value = argv[++i];
		if (!value || !value[0]) {
			snprintf(why, sizeof why, "%.*s needs a value", (int)nlen, w);
			return usage(why);
		}
		if (is_days) {
			days = value;
		} else if (strlen(value) > ADDRESS_MAX || !strchr(value, '@')) {
			return usage("--user needs an ADDRESS");
		} else {
			a->has_user = 1;
			for (size_t k = 0; value[k]; k++) /* as the store keeps users */
				a->user[k] = (char)(value[k] >= 'A' && value[k] <= 'Z' ?
							    value[k] - 'A' + 'a' :
							    value[k]);
		}
	}
	a->days = a->hourly ? 1 : DEFAULT_DAYS;
	if (days && parse_days(days, a->hourly, &a->days) < 0) {
		snprintf(why, sizeof why, "--days: a number from 1 to %d%s", RECORDS_STATS_MAX /
			 (a->hourly ? 24 : 1), a->hourly ? " with --hourly" : "");
		return usage(why);
	}
	return 0;
}

/* print_row - one line of the table: LABEL then the five counts. */
static void print_row(const char *label, const uint64_t count[EVENT_NTYPES])
{
	printf("%-17s", label);
	for (int t = 0; t < EVENT_NTYPES; t++)
		printf(" %10" PRIu64, count[t]);
	printf("\n");
}

/* print_table - the header, a row per bucket and the total line. */
static void print_table(const struct stats_bucket *b, size_t n, int hourly)
{
	uint64_t total[EVENT_NTYPES] = { 0 };
	printf("%-17s", hourly ? "hour (UTC)" : "day (UTC)");
	for (int t = 0; t < EVENT_NTYPES; t++)
		printf(" %10s", event_type_name((enum event_type)t));
	printf("\n");
	for (size_t i = 0; i < n; i++) {
		char label[32];
		time_t start = (time_t)b[i].start;
		struct tm tm;
		gmtime_r(&start, &tm);
		strftime(label, sizeof label, hourly ? "%Y-%m-%d %H:00" : "%Y-%m-%d", &tm);
		print_row(label, b[i].count);
		for (int t = 0; t < EVENT_NTYPES; t++)
			total[t] += b[i].count[t];
	}
	print_row("total", total);
}

/* show - read the counters and print them. */
static int show(const struct config *cfg, const struct stats_args *a)
{
	char err[512];
	uid_t uid;
	gid_t gid;
	const char *db = config_db_path(cfg);
	if (!db) {
		fprintf(stderr, "ternctl: store %s is not supported by this build\n", cfg->store);
		return EXIT_FAIL;
	}
	/* As the daemon's user, so a database or WAL file made here is its. */
	if (privdrop_lookup(cfg->user, &uid, &gid, err, sizeof err) < 0 ||
	    data_dir_prepare(cfg->data_dir, uid, gid, err, sizeof err) < 0 ||
	    privdrop_become(uid, gid, err, sizeof err) < 0) {
		fprintf(stderr, "ternctl: %s\n", err);
		return EXIT_FAIL;
	}
	umask(077);
	struct records *r = records_open(db, err, sizeof err);
	if (!r) {
		fprintf(stderr, "ternctl: %s\n", err);
		return EXIT_FAIL;
	}
	int64_t from, to, interval;
	stats_cli_range((int64_t)time(NULL), a->days, a->hourly, &from, &to, &interval);
	struct stats_bucket *b = NULL;
	size_t n = 0;
	int rc = records_stats(r, a->has_user ? a->user : NULL, from, to, interval, &b, &n, err,
			       sizeof err);
	records_close(&r);
	if (rc < 0) {
		fprintf(stderr, "ternctl: %s\n", err);
		return EXIT_FAIL;
	}
	print_table(b, n, a->hourly);
	free(b);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "ternctl: writing the output: %s\n", strerror(errno));
		return EXIT_FAIL;
	}
	return EXIT_OK;
}

int stats_command(const struct config *cfg, int argc, char **argv)
{
	struct stats_args a;
	memset(&a, 0, sizeof a);
	int rc = parse_args(&a, argv + 1, argc - 1);
	return rc ? rc : show(cfg, &a);
}
