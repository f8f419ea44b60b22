/* ternctl.c - the admin command: hosted domains, users (with their
 * quotas, rate and source address) and aliases, and the running daemon's
 * queue; API keys and statistics live in store/apikey_cli.c and
 * store/stats_cli.c.
 *
 *   ternctl [-c FILE] COMMAND
 *
 * Commands and exit codes are the contract of DESIGN.md "ternctl": 0 on
 * success, 1 on failure with "ternctl: reason" on stderr, 2 on bad usage.
 * ternctl writes the store itself, then asks a running ternd to reload
 * its accounts over DATA_DIR/control.sock, so a change is in force when
 * the command returns.  The queue lives in the daemon: "queue ..." is sent
 * over the same socket and its answer printed (docs/relay.md).  Run as root
 * it first becomes the daemon's user, so every file it creates in data_dir
 * belongs to that user. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "auth/password.h"
#include "core/config.h"
#include "core/control.h"
#include "core/privdrop.h"
#include "store/apikey_cli.h"
#include "store/stats_cli.h"
#include "store/store.h"

#define PASSWORD_MAX 1024 /* bytes on the line, newline excluded */
#define CONTROL_TIMEOUT_MS 10000

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

static const char usage_text[] =
	"usage: ternctl [-c FILE] COMMAND\n"
	"  domain add DOMAIN\n"
	"  domain del DOMAIN\n"
	"  domain list\n"
	"  user add ADDRESS [--quota-day N] [--quota-month N] [--rate N] [--source-ip IP]\n"
	"                                   (password: one line on stdin)\n"
	"  user set ADDRESS [--quota-day N] [--quota-month N] [--rate N] [--source-ip IP|none]\n"
	"                                   (--rate: messages per minute; 0 = unlimited)\n"
	"  user del ADDRESS\n"
	"  user passwd ADDRESS              (password: one line on stdin)\n"
	"  user list\n"
	"  alias add ADDRESS TARGET[,TARGET...]\n"
	"  alias del ADDRESS\n"
	"  alias list\n"
	"  queue list\n"
	"  queue show ID\n"
	"  queue flush [ID]\n"
	"  queue delete ID | queue hold ID | queue release ID\n"
	"  apikey create ADDRESS|--admin    (prints the new key once)\n"
	"  apikey list\n"
	"  apikey revoke ID\n"
	"  stats [--user ADDRESS] [--days N] [--hourly]\n";

/* One run of the command: what was asked and what it works on. */
struct ctl {
	struct config cfg;
	struct store *st;
	char **args; /* the words after the command's verb */
	int nargs;
	struct store_user user; /* user add / set: its options; strings not owned */
	unsigned which; /* user set: the STORE_LIMIT_* options given */
	char hash[PASSWORD_HASH_MAX]; /* user add / passwd */
	char err[512];
};

/* A command: "GROUP VERB" with NARGS words after it.  CHANGES says that it
 * writes the store, so the daemon must reload; NEEDS_PASSWORD that it reads
 * one from stdin first. */
struct command {
	const char *group, *verb;
	int nargs;
	int changes, needs_password;
	int (*run)(struct ctl *c);
};

static int usage(const char *why)
{
	if (why)
		fprintf(stderr, "ternctl: %s\n", why);
	fputs(usage_text, stderr);
	return EXIT_USAGE;
}

/* Store-level commands: each returns 0 or -1 with c->err set. */

static int domain_add(struct ctl *c)
{
	return store_domain_add(c->st, c->args[0], c->err, sizeof c->err);
}

static int domain_del(struct ctl *c)
{
	return store_domain_del(c->st, c->args[0], c->err, sizeof c->err);
}

static int print_domain(void *ctx, const char *domain)
{
	printf("%s\n", domain);
	return 0;
}

static int domain_list(struct ctl *c)
{
	return store_domain_each(c->st, print_domain, NULL, c->err, sizeof c->err);
}

static int user_add(struct ctl *c)
{
	c->user.address = c->args[0];
	c->user.password_hash = c->hash;
	return store_user_add(c->st, &c->user, c->err, sizeof c->err);
}

static int user_set(struct ctl *c)
{
	return store_user_set_limits(c->st, c->args[0], &c->user, c->which, c->err,
				     sizeof c->err);
}

static int user_del(struct ctl *c)
{
	return store_user_del(c->st, c->args[0], c->err, sizeof c->err);
}

static int user_passwd(struct ctl *c)
{
	return store_user_set_password(c->st, c->args[0], c->hash, c->err, sizeof c->err);
}

/* quota_text - N as text, 0 being "unlimited". */
static const char *quota_text(uint64_t n, char *buf, size_t len)
{
	if (n == 0)
		return "unlimited";
	snprintf(buf, len, "%" PRIu64, n);
	return buf;
}

static int print_user(void *ctx, const struct store_user *u)
{
	char day[24], month[24], rate[24];
	printf("%s quota_day=%s quota_month=%s rate_minute=%s source_ip=%s\n", u->address,
	       quota_text(u->quota_day, day, sizeof day),
	       quota_text(u->quota_month, month, sizeof month),
	       quota_text(u->rate_minute, rate, sizeof rate), u->source_ip ? u->source_ip : "none");
	return 0;
}

static int user_list(struct ctl *c)
{
	return store_user_each(c->st, print_user, NULL, c->err, sizeof c->err);
}

static int alias_add(struct ctl *c)
{
	return store_alias_set(c->st, c->args[0], c->args[1], c->err, sizeof c->err);
}

static int alias_del(struct ctl *c)
{
	return store_alias_del(c->st, c->args[0], c->err, sizeof c->err);
}

static int print_alias(void *ctx, const char *address, const char *targets)
{
	printf("%s %s\n", address, targets);
	return 0;
}

static int alias_list(struct ctl *c)
{
	return store_alias_each(c->st, print_alias, NULL, c->err, sizeof c->err);
}

static const struct command commands[] = {
	{ "domain", "add", 1, 1, 0, domain_add },
	{ "domain", "del", 1, 1, 0, domain_del },
	{ "domain", "list", 0, 0, 0, domain_list },
	{ "user", "add", 1, 1, 1, user_add },
	{ "user", "set", 1, 1, 0, user_set },
	{ "user", "del", 1, 1, 0, user_del },
	{ "user", "passwd", 1, 1, 1, user_passwd },
	{ "user", "list", 0, 0, 0, user_list },
	{ "alias", "add", 2, 1, 0, alias_add },
	{ "alias", "del", 1, 1, 0, alias_del },
	{ "alias", "list", 0, 0, 0, alias_list },
};

/* parse_count - a decimal quota; 0 or -1. */
static int parse_count(const char *s, uint64_t *out)
{
	char *end;
	if (!s || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end || v > INT64_MAX)
		return -1;
	*out = v;
	return 0;
}

/* limit_option - the --NAME (NLEN bytes) VALUE of "user add|set" into
 * C->user and C->which.  Returns 0, or EXIT_USAGE. */
static int limit_option(struct ctl *c, const char *name, size_t nlen, const char *value)
{
	static const struct {
		const char *name;
		unsigned bit;
	} opts[] = { { "--quota-day", STORE_LIMIT_QUOTA_DAY },
		     { "--quota-month", STORE_LIMIT_QUOTA_MONTH },
		     { "--rate", STORE_LIMIT_RATE_MINUTE },
		     { "--source-ip", STORE_LIMIT_SOURCE_IP } };
	uint64_t *counts[] = { &c->user.quota_day, &c->user.quota_month, &c->user.rate_minute };
	char why[160];
	for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++) {
		if (strlen(opts[i].name) != nlen || strncmp(name, opts[i].name, nlen))
			continue;
		c->which |= opts[i].bit;
		if (opts[i].bit == STORE_LIMIT_SOURCE_IP) {
			/* "none" takes a user's own address away */
			c->user.source_ip = strcmp(value, "none") ? (char *)value : NULL;
		} else if (parse_count(value, counts[i]) < 0) {
			snprintf(why, sizeof why, "%.*s: not a number: %s", (int)nlen, name, value);
			return usage(why);
		}
		return 0;
	}
	snprintf(why, sizeof why, "unknown option %.*s", (int)nlen, name);
	return usage(why);
}

/* user_options - "user add|set"'s words: the address and its options, in
 * any order, "--name VALUE" or "--name=VALUE".  Returns 0, or EXIT_USAGE. */
static int user_options(struct ctl *c, const char *verb, char **argv, int argc)
{
	char why[160];
	c->nargs = 0;
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (strncmp(a, "--", 2) != 0) {
			snprintf(why, sizeof why, "user %s takes one ADDRESS", verb);
			if (c->nargs++)
				return usage(why);
			c->args = &argv[i];
			continue;
		}
		const char *eq = strchr(a, '='), *value = eq ? eq + 1 : NULL;
		size_t nlen = eq ? (size_t)(eq - a) : strlen(a);
		if (!value && i + 1 < argc)
			value = argv[++i];
		snprintf(why, sizeof why, "%.*s needs a value", (int)nlen, a);
		if (!value)
			return usage(why);
		if (limit_option(c, a, nlen, value))
			return EXIT_USAGE;
	}
	snprintf(why, sizeof why, "user %s needs an ADDRESS", verb);
	if (c->nargs != 1)
		return usage(why);
	if (!strcmp(verb, "set") && !c->which)
		return usage("user set needs something to change: --quota-day, --quota-month, "
			     "--rate or --source-ip");
	return 0;
}

/* find_command - the table entry for ARGV (GROUP VERB ARGS...), with the
 * words after the verb in C.  NULL after printing why (*EXIT set). */
static const struct command *find_command(struct ctl *c, char **argv, int argc, int *exit_code)
{
	*exit_code = EXIT_USAGE;
	if (argc < 1) {
		usage(NULL);
		return NULL;
	}
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
		const struct command *cmd = &commands[i];
		if (argc < 2 || strcmp(argv[0], cmd->group) || strcmp(argv[1], cmd->verb))
			continue;
		if (cmd->run == user_add || cmd->run == user_set) {
			if (user_options(c, cmd->verb, argv + 2, argc - 2))
				return NULL;
		} else if (argc - 2 != cmd->nargs) {
			usage(argc - 2 < cmd->nargs ? "missing argument" : "too many arguments");
			return NULL;
		} else {
			c->args = argv + 2;
			c->nargs = argc - 2;
		}
		return cmd;
	}
	char why[128];
	snprintf(why, sizeof why, "unknown command: %s%s%s", argv[0], argc > 1 ? " " : "",
		 argc > 1 ? argv[1] : "");
	usage(why);
	return NULL;
}

/* read_line - one line from stdin into OUT (PASSWORD_MAX + 1 bytes), the
 * newline (and a CR before it, as Windows tools write) removed. */
static int read_line(char *out, size_t *len, char *err, size_t errlen)
{
	size_t n = 0;
	int ch;
	while ((ch = getchar()) != EOF && ch != '\n') {
		if (ch == '\0' || n == PASSWORD_MAX) {
			snprintf(err, errlen, ch ? "password longer than %d bytes" :
						   "password contains a NUL byte",
				 PASSWORD_MAX);
			return -1;
		}
		out[n++] = (char)ch;
	}
	if (ferror(stdin)) {
		snprintf(err, errlen, "reading the password: %s", strerror(errno));
		return -1;
	}
	if (n && out[n - 1] == '\r')
		n--;
	out[n] = '\0';
	*len = n;
	return 0;
}

/* read_password - the new password from stdin, hashed into C->hash.  On a
 * terminal it is asked for without echo. */
static int read_password(struct ctl *c)
{
	char pw[PASSWORD_MAX + 1];
	size_t len = 0;
	struct termios saved, quiet;
	int tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved) == 0;
	if (tty) {
		quiet = saved;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
		fputs("Password: ", stderr);
	}
	int r = read_line(pw, &len, c->err, sizeof c->err);
	if (tty) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved);
		fputs("\n", stderr);
	}
	if (r == 0 && len == 0) {
		snprintf(c->err, sizeof c->err, "empty password (give it as one line on stdin)");
		r = -1;
	}
	if (r == 0 && password_hash(pw, len, c->hash) < 0) {
		snprintf(c->err, sizeof c->err, "cannot hash the password (out of memory?)");
		r = -1;
	}
	explicit_bzero(pw, sizeof pw);
	return r;
}

enum daemon_answer {
	DAEMON_OK, /* "ok" */
	DAEMON_ERROR, /* "error REASON": the reason is in ERR */
	DAEMON_ABSENT, /* no ternd listening */
	DAEMON_FAILED, /* no answer in time, or the connection broke */
};

/* daemon_call - send LINE to the running ternd and wait (bounded) for its
 * answer; reply lines before the final one are copied to OUT (or dropped
 * when OUT is NULL). */
static enum daemon_answer daemon_call(const struct config *cfg, const char *line, FILE *out,
				      char *err, size_t errlen)
{
	char path[4096];
	struct stat sb;
	snprintf(path, sizeof path, "%s/control.sock", cfg->data_dir);
	if (stat(path, &sb) < 0 && errno == ENOENT) {
		snprintf(err, errlen, "ternd is not running");
		return DAEMON_ABSENT;
	}
	/* control_call leaves connect(2)'s errno: a refused connection is
	 * the stale socket of a ternd that did not stop cleanly. */
	errno = 0;
	switch (control_call(path, line, out, CONTROL_TIMEOUT_MS, err, errlen)) {
	case 0:
		return DAEMON_OK;
	case 1:
		return DAEMON_ERROR;
	case -1:
		if (errno == ECONNREFUSED || errno == ENOENT)
			return DAEMON_ABSENT;
		return DAEMON_FAILED;
	default:
		return DAEMON_FAILED;
	}
}

/* notify_reload - make a running ternd load the accounts just changed.
 * Returns EXIT_OK, or EXIT_FAIL after a warning: the change is stored but
 * the daemon did not confirm that it uses it. */
static int notify_reload(const struct config *cfg)
{
	char err[512];
	switch (daemon_call(cfg, "reload", NULL, err, sizeof err)) {
	case DAEMON_OK:
	case DAEMON_ABSENT:
		return EXIT_OK;
	case DAEMON_ERROR:
		fprintf(stderr, "ternctl: warning: saved, but ternd could not reload: %s\n", err);
		return EXIT_FAIL;
	case DAEMON_FAILED:
		break;
	}
	fprintf(stderr, "ternctl: warning: saved, but ternd did not confirm the reload: %s\n",
		err);
	return EXIT_FAIL;
}

/* queue_command - "queue VERB [ID]" asked of the running ternd; its
 * answer on stdout.  ARGV holds the words after "queue". */
static int queue_command(const char *config_path, char **argv, int argc)
{
	static const struct {
		const char *verb;
		int min, max; /* how many IDs */
	} verbs[] = { { "list", 0, 0 },	  { "show", 1, 1 }, { "flush", 0, 1 },
		      { "delete", 1, 1 }, { "hold", 1, 1 }, { "release", 1, 1 } };
	int known = -1;
	for (size_t i = 0; argc >= 1 && i < sizeof verbs / sizeof verbs[0]; i++)
		if (!strcmp(argv[0], verbs[i].verb))
			known = (int)i;
	if (known < 0)
		return usage(argc ? "unknown queue command" : "queue needs a command");
	if (argc - 1 < verbs[known].min || argc - 1 > verbs[known].max)
		return usage(argc - 1 < verbs[known].min ? "missing message ID" :
							   "too many arguments");
	/* An id is [0-9A-Za-z]: nothing else can reach the one-line protocol. */
	if (argc == 2 && (!argv[1][0] || strspn(argv[1], "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
							"abcdefghijklmnopqrstuvwxyz") !=
						 strlen(argv[1]) || strlen(argv[1]) > 31))
		return usage("a message ID is letters and digits");
	struct config cfg;
	char err[512], line[64];
	uid_t uid;
	gid_t gid;
	if (config_path ? config_load(&cfg, config_path, err, sizeof err) < 0 :
			  config_defaults(&cfg) < 0) {
		fprintf(stderr, "ternctl: %s\n", config_path ? err : "out of memory");
		return EXIT_FAIL;
	}
	int code = EXIT_FAIL;
	snprintf(line, sizeof line, "queue %s%s%s", argv[0], argc == 2 ? " " : "",
		 argc == 2 ? argv[1] : "");
	if (privdrop_lookup(cfg.user, &uid, &gid, err, sizeof err) < 0 ||
	    privdrop_become(uid, gid, err, sizeof err) < 0) {
		fprintf(stderr, "ternctl: %s\n", err);
	} else {
		switch (daemon_call(&cfg, line, stdout, err, sizeof err)) {
		case DAEMON_OK:
			code = fflush(stdout) == 0 ? EXIT_OK : EXIT_FAIL;
			break;
		case DAEMON_ABSENT:
			fprintf(stderr, "ternctl: ternd is not running (the queue lives in it)\n");
			break;
		case DAEMON_ERROR:
		case DAEMON_FAILED:
			fprintf(stderr, "ternctl: %s\n", err);
			break;
		}
	}
	config_free(&cfg);
	return code;
}

/* open_store - configuration, privileges, then the database.  Returns 0,
 * or -1 with C->err set. */
static int open_store(struct ctl *c, const char *config_path)
{
	uid_t uid;
	gid_t gid;
	char *err = c->err;
	size_t errlen = sizeof c->err;
	if (config_path ? config_load(&c->cfg, config_path, err, errlen) < 0 :
			  config_defaults(&c->cfg) < 0) {
		if (!config_path)
			snprintf(err, errlen, "out of memory");
		memset(&c->cfg, 0, sizeof c->cfg);
		return -1;
	}
	const char *db = config_db_path(&c->cfg);
	if (!db) {
		snprintf(err, errlen, "store %s is not supported by this build", c->cfg.store);
		return -1;
	}
	if (privdrop_lookup(c->cfg.user, &uid, &gid, err, errlen) < 0 ||
	    data_dir_prepare(c->cfg.data_dir, uid, gid, err, errlen) < 0 ||
	    privdrop_become(uid, gid, err, errlen) < 0)
		return -1;
	umask(077); /* the database holds password hashes */
	c->st = store_open(db, err, errlen);
	return c->st ? 0 : -1;
}

int main(int argc, char **argv)
{
	static struct ctl c; /* zero-initialised: no options, no store yet */
	const char *config_path = NULL;
	int opt, code;
	opterr = 0; /* the message below says it in ternctl's words */
	while ((opt = getopt(argc, argv, "+c:h")) != -1) {
		switch (opt) {
		case 'c':
			config_path = optarg;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return EXIT_OK;
		default: {
			char why[64];
			snprintf(why, sizeof why, optopt == 'c' ? "-c needs a FILE" :
				 "unknown option -%c", optopt);
			return usage(why);
		}
		}
	}
	if (optind < argc && !strcmp(argv[optind], "queue"))
		return queue_command(config_path, argv + optind + 1, argc - optind - 1);
	if (optind < argc && (!strcmp(argv[optind], "apikey") || !strcmp(argv[optind], "stats"))) {
		if (config_path ? config_load(&c.cfg, config_path, c.err, sizeof c.err) < 0 :
				  config_defaults(&c.cfg) < 0) {
			fprintf(stderr, "ternctl: %s\n", config_path ? c.err : "out of memory");
			return EXIT_FAIL;
		}
		code = argv[optind][0] == 'a' ? apikey_command(&c.cfg, argc - optind, argv + optind) :
						stats_command(&c.cfg, argc - optind, argv + optind);
		config_free(&c.cfg);
		return code;
	}
	const struct command *cmd = find_command(&c, argv + optind, argc - optind, &code);
	if (!cmd)
		return code;
	code = EXIT_FAIL;
	if ((cmd->needs_password && read_password(&c) < 0) || open_store(&c, config_path) < 0 ||
	    cmd->run(&c) < 0) {
		fprintf(stderr, "ternctl: %s\n", c.err);
	} else if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "ternctl: writing the output: %s\n", strerror(errno));
	} else {
		code = cmd->changes ? notify_reload(&c.cfg) : EXIT_OK;
	}
	store_close(&c.st);
	explicit_bzero(c.hash, sizeof c.hash);
	config_free(&c.cfg);
	return code;
}
