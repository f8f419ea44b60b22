/* apikey_cli.c - `ternctl apikey create|list|revoke` (see apikey_cli.h). */
#include "store/apikey_cli.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "core/control.h"
#include "core/privdrop.h"
#include "store/apikeys.h"

#define CONTROL_TIMEOUT_MS 10000

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

const char apikey_usage[] = "  apikey create ADDRESS|--admin   (prints the new key once)\n"
			    "  apikey list\n"
			    "  apikey revoke ID\n";

static int usage(const char *why)
{
	fprintf(stderr, "ternctl: %s\nusage: ternctl [-c FILE] COMMAND\n%s", why, apikey_usage);
	return EXIT_USAGE;
}

/* parse_id - a key id: a positive decimal number. */
static int parse_id(const char *s, int64_t *out)
{
	char *end;
	if (!s || *s < '1' || *s > '9')
		return -1;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || *end)
		return -1;
	*out = v;
	return 0;
}

/* become_daemon_user - what ternctl does before it touches data_dir, so
 * the files it creates belong to the daemon's user. */
static int become_daemon_user(const struct config *cfg, char *err, size_t errlen)
{
	uid_t uid;
	gid_t gid;
	if (privdrop_lookup(cfg->user, &uid, &gid, err, errlen) < 0 ||
	    data_dir_prepare(cfg->data_dir, uid, gid, err, errlen) < 0 ||
	    privdrop_become(uid, gid, err, errlen) < 0)
		return -1;
	umask(077);
	return 0;
}

/* notify_daemon - make a running ternd load the keys again.  Returns
 * EXIT_OK (also when no ternd runs: it reads the keys when it starts), or
 * EXIT_FAIL after a warning: the change is stored but not confirmed. */
static int notify_daemon(const struct config *cfg)
{
	char path[4096], err[512] = "";
	struct stat sb;
	snprintf(path, sizeof path, "%s/control.sock", cfg->data_dir);
	if (stat(path, &sb) < 0 && errno == ENOENT)
		return EXIT_OK;
	errno = 0;
	int r = control_call(path, "reload-keys", NULL, CONTROL_TIMEOUT_MS, err, sizeof err);
	if (r == 0 || (r == -1 && (errno == ECONNREFUSED || errno == ENOENT)))
		return EXIT_OK; /* confirmed, or the stale socket of a stopped ternd */
	fprintf(stderr, "ternctl: warning: saved, but ternd %s: %s\n",
		r == 1 ? "could not reload its keys" : "did not confirm the reload", err);
	return EXIT_FAIL;
}

static void iso_time(int64_t t, char *out, size_t outlen)
{
	time_t tt = (time_t)t;
	struct tm tm;
	gmtime_r(&tt, &tm);
	strftime(out, outlen, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int print_key(void *ctx, const struct apikey_info *k)
{
	char created[32], revoked[48] = "";
	iso_time(k->created, created, sizeof created);
	if (k->revoked) {
		memcpy(revoked, " revoked=", 10);
		iso_time(k->revoked, revoked + 9, sizeof revoked - 9);
	}
	printf("%" PRId64 " %s %s... created=%s%s\n", k->id, k->user ? k->user : "admin", k->shown,
	       created, revoked);
	return 0;
}

/* run - the verb, once the arguments are known to be right. */
static int run(const struct config *cfg, const char *verb, const char *arg, int64_t id)
{
	char err[512];
	const char *db = config_db_path(cfg);
	if (!db) {
		fprintf(stderr, "ternctl: store %s is not supported by this build\n", cfg->store);
		return EXIT_FAIL;
	}
	if (become_daemon_user(cfg, err, sizeof err) < 0) {
		fprintf(stderr, "ternctl: %s\n", err);
		return EXIT_FAIL;
	}
	if (strcmp(verb, "list") == 0) {
		if (apikey_each(db, print_key, NULL, err, sizeof err) < 0) {
			fprintf(stderr, "ternctl: %s\n", err);
			return EXIT_FAIL;
		}
		return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAIL;
	}
	if (strcmp(verb, "create") == 0) {
		char key[APIKEY_LEN + 1];
		if (!arg)
			return EXIT_FAIL;
		const char *user = strcmp(arg, "--admin") == 0 ? NULL : arg;
		if (apikey_create(db, user, key, &id, err, sizeof err) < 0) {
			fprintf(stderr, "ternctl: %s\n", err);
			return EXIT_FAIL;
		}
		printf("%s\n", key);
		memset(key, 0, sizeof key);
		if (fflush(stdout) != 0) {
			fprintf(stderr, "ternctl: writing the key: %s\n", strerror(errno));
			return EXIT_FAIL;
		}
	} else if (apikey_revoke(db, id, err, sizeof err) < 0) {
		fprintf(stderr, "ternctl: %s\n", err);
		return EXIT_FAIL;
	}
	return notify_daemon(cfg);
}

int apikey_command(const struct config *cfg, int argc, char **argv)
{
	if (argc < 2)
		return usage("apikey needs create, list or revoke");
	const char *verb = argv[1];
	int nargs = argc - 2;
	int64_t id = 0;
	if (strcmp(verb, "list") == 0) {
		if (nargs != 0)
			return usage("too many arguments");
	} else if (strcmp(verb, "create") == 0) {
		if (nargs != 1)
			return usage(nargs ? "too many arguments" : "missing argument: ADDRESS or --admin");
		if (argv[2][0] == '-' && strcmp(argv[2], "--admin") != 0)
			return usage("apikey create takes an ADDRESS or --admin");
	} else if (strcmp(verb, "revoke") == 0) {
		if (nargs != 1)
			return usage(nargs ? "too many arguments" : "missing argument: ID");
		if (parse_id(argv[2], &id) < 0)
			return usage("apikey revoke: ID must be a key number (see apikey list)");
	} else {
		char why[128];
		snprintf(why, sizeof why, "unknown command: apikey %.64s", verb);
		return usage(why);
	}
	return run(cfg, verb, nargs ? argv[2] : NULL, id);
}
