/* apikey_cli.h - the `ternctl apikey` commands (DESIGN.md "ternctl"):
 *
 *   apikey create ADDRESS|--admin   prints the new key once, on stdout
 *   apikey list                     one line per key: ID OWNER KEY... created=T [revoked=T]
 *   apikey revoke ID
 *
 * Like every ternctl command it becomes the daemon's user first, writes
 * the store itself, and then asks a running ternd over its control socket
 * ("reload-keys") to load the keys again, so a new key works and a revoked
 * one stops working when the command returns.  Exit codes: 0 success, 1
 * failure (reason on stderr), 2 bad usage. */
#ifndef TERN_STORE_APIKEY_CLI_H
#define TERN_STORE_APIKEY_CLI_H

#include "core/config.h"

/* The usage lines of the apikey commands, for ternctl's help. */
extern const char apikey_usage[];

/* apikey_command - run ARGV (ARGV[0] is "apikey", ARGV[1] the verb) with
 * the configuration CFG (data_dir, store, user).  Returns the exit code.
 * Drops privileges when run as root, like ternctl's other commands. */
int apikey_command(const struct config *cfg, int argc, char **argv);

#endif
