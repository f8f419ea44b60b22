/* stats_cli.h - the `ternctl stats` command (DESIGN.md "ternctl"):
 *
 *   stats [--user ADDRESS] [--days N] [--hourly]
 *
 * prints a table of the counters the daemon keeps (store/records.h): one
 * row per UTC day of the last N days (7 by default, today included), or
 * with --hourly one row per hour of the last 24 hours (N days of hours
 * with --days), with the accepted, delivered, deferred, bounced and
 * rejected counts and a total line.  Without --user the counts are
 * everyone's, inbound mail included.  Read-only: the daemon is not asked
 * anything.  Exit codes: 0 success, 1 failure (reason on stderr), 2 bad
 * usage. */
#ifndef TERN_STORE_STATS_CLI_H
#define TERN_STORE_STATS_CLI_H

#include <stdint.h>

#include "core/config.h"

/* The usage line of the stats command, for ternctl's help. */
extern const char stats_usage[];

/* stats_command - run ARGV (ARGV[0] is "stats") with the configuration
 * CFG.  Returns the exit code.  Drops privileges when run as root. */
int stats_command(const struct config *cfg, int argc, char **argv);

/* stats_cli_range - the [*FROM, *TO) of DAYS days (HOURLY: DAYS * 24 hours)
 * ending with the interval that holds NOW; *INTERVAL 86400 or 3600. */
void stats_cli_range(int64_t now, unsigned days, int hourly, int64_t *from, int64_t *to,
		     int64_t *interval);

#endif
