/* ternd.c - the tern daemon: configuration, privileges, the loop.
 *
 *   ternd [-c FILE]        run in the foreground, log to stderr
 *   ternd -t [-c FILE]     check the configuration and exit 0 or 1
 *
 * Start-up order matters for security and durability: bind the ports (may
 * need root), drop to the configured user, then open the spool, recover
 * every message in it, and only then accept connections. */
#include <errno.h>
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "auth/tls.h"
#include "core/config.h"
#include "core/control.h"
#include "core/log.h"
#include "core/privdrop.h"
#include "core/workers.h"
#include "http/http_server.h"
#include "queue/queue.h"
#include "queue/relay.h"
#include "auth/policy.h"
#include "http/webhooks.h"
#include "smtp/server.h"
#include "store/event_log.h"
#include "spool/spool.h"
#include "store/directory.h"
#include "store/store.h"

struct daemon {
	const char *config_path;
	struct event_base *base;
	struct settings *settings;
	struct workers *pool;
	struct spool *spool;
	struct queue *queue;
	struct relay *relay;
	SSL_CTX *client_tls; /* outgoing STARTTLS */
	struct smtp_context smtp_ctx;
	struct smtp_server *smtp;
	struct http_context http_ctx;
	struct http_server *http;
	struct event_log *events;
	struct policy *sending;
	struct webhooks *webhooks;
	struct control *control;
	struct directory *dir;
	struct event *sig_term, *sig_int, *sig_hup;
	uid_t uid;
	gid_t gid;
};

static void usage(void)
{
	fprintf(stderr, "usage: ternd [-t] [-c FILE]\n");
	exit(2);
}

static enum log_level level_of(const char *name)
{
	if (strcmp(name, "debug") == 0)
		return LOG_DEBUG;
	if (strcmp(name, "warn") == 0)
		return LOG_WARN;
	if (strcmp(name, "error") == 0)
		return LOG_ERROR;
	return LOG_INFO;
}

/* load_settings - the configuration file, or the defaults without one. */
static struct settings *load_settings(const char *path, char *err, size_t errlen)
{
	struct settings *s = calloc(1, sizeof *s);
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	int rc = path ? config_load(&s->cfg, path, err, errlen) : config_defaults(&s->cfg);
	if (rc < 0) {
		if (!path)
			snprintf(err, errlen, "out of memory");
		free(s);
		return NULL;
	}
	s->refs = 1;
	return s;
}

/* A directory reload: built on a worker, swapped in on the loop. */
struct reload_job {
	struct daemon *d;
	char *db_path;
	struct directory *dir;
	char err[256];
	struct control_request *req; /* or NULL (SIGHUP) */
};

static void reload_work(void *arg)
{
	struct reload_job *j = arg;
	j->dir = directory_load(j->db_path, j->err, sizeof j->err);
}

static void use_directory(struct daemon *d, struct directory *dir)
{
	directory_unref(&d->dir);
	d->dir = dir;
	smtp_server_set_directory(d->smtp, dir);
	http_server_set_directory(d->http, dir);
	queue_set_directory(d->queue, dir);
}

static void reload_done(void *arg)
{
	struct reload_job *j = arg;
	if (j->dir) {
		log_info("accounts reloaded (version %lld)", (long long)directory_version(j->dir));
		use_directory(j->d, j->dir);
	} else {
		log_error("accounts reload failed: %s", j->err);
	}
	if (j->req)
		control_finish(j->req, j->dir ? NULL : j->err);
	free(j->db_path);
	free(j);
}

static void reload_directory(struct daemon *d, struct control_request *req)
{
	struct reload_job *j = calloc(1, sizeof *j);
	const char *db = config_db_path(&d->settings->cfg);
	if (!j || !db || !(j->db_path = strdup(db)) ||
	    (j->d = d, j->req = req, workers_submit(d->pool, reload_work, reload_done, j) < 0)) {
		if (j)
			free(j->db_path);
		free(j);
		if (req)
			control_finish(req, "cannot reload accounts now");
	}
}

static void control_reload(void *ctx, struct control_request *req, const char *args)
{
	reload_directory(ctx, req);
}

/* retry_policy_of - the relay's schedule as the configuration says. */
static struct retry_policy retry_policy_of(const struct config *cfg)
{
	return (struct retry_policy){ .intervals = cfg->retry_intervals,
				      .nintervals = cfg->nretry_intervals,
				      .queue_lifetime = cfg->queue_lifetime,
				      .delay_warning = cfg->delay_warning };
}

/* start_relay - outgoing delivery: MX routing with the configured DNS
 * servers, opportunistic TLS, the smarthost when there is one.  Routing
 * and source settings take effect at the next start. */
static int start_relay(struct daemon *d, char *err, size_t errlen)
{
	const struct config *cfg = &d->settings->cfg;
	if (!(d->client_tls = smtp_client_tls_ctx_new(err, errlen)))
		return -1;
	struct relay_config rc = {
		.base = d->base,
		.dns = { .servers = (const char *const *)cfg->dns_servers,
			 .nservers = cfg->ndns_servers },
		.ssl_ctx = d->client_tls,
		.hostname = cfg->hostname,
		.remote_port = cfg->remote_port,
		.source_ip = cfg->source_ip,
		.relay_host = cfg->relay_host,
		.relay_auth_user = cfg->relay_auth_user,
		.relay_auth_password = cfg->relay_auth_password,
		.policy = retry_policy_of(cfg),
		.per_dest_max = cfg->relay_destination_concurrency,
		.global_max = cfg->relay_concurrency,
		.timeouts = relay_timeouts(cfg->relay_timeout_connect, cfg->relay_timeout_command,
					   cfg->relay_timeout_data),
	};
	d->relay = relay_new(&rc, err, errlen);
	return d->relay ? 0 : -1;
}

/* webhooks_config_of - what the webhooks take from the configuration. */
static struct webhooks_config webhooks_config_of(const struct config *cfg)
{
	return (struct webhooks_config){ .dns_servers = (const char *const *)cfg->dns_servers,
					 .ndns_servers = cfg->ndns_servers,
					 .allow_private = cfg->webhook_allow_private,
					 .max_failures = cfg->webhook_max_failures };
}

static void on_sighup(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;
	char err[512];
	struct settings *s = load_settings(d->config_path, err, sizeof err);
	if (!s) {
		log_error("reload refused, keeping the running configuration: %s", err);
		return;
	}
	if (strcmp(s->cfg.data_dir, d->settings->cfg.data_dir) != 0 ||
	    s->cfg.nlistens != d->settings->cfg.nlistens)
		log_warn("data_dir and listen changes take effect at the next start");
	log_set_level(level_of(s->cfg.log_level));
	SSL_CTX *tls = tls_server_new(s->cfg.tls_cert, s->cfg.tls_key, s->cfg.data_dir,
				      s->cfg.hostname, d->uid, d->gid, err, sizeof err);
	if (tls) {
		/* Running sessions keep their SSL objects (each holds a
		 * reference to its own context). */
		SSL_CTX_free(d->smtp_ctx.tls);
		d->smtp_ctx.tls = tls;
		log_info("TLS certificate reloaded");
	} else {
		log_error("TLS reload failed, keeping the old certificate: %s", err);
	}
	smtp_server_set_settings(d->smtp, s);
	http_server_set_settings(d->http, s);
	struct retry_policy policy = retry_policy_of(&s->cfg);
	queue_set_policy(d->queue, &policy);
	relay_set_policy(d->relay, &policy);
	struct webhooks_config wc = webhooks_config_of(&s->cfg);
	if (webhooks_set_config(d->webhooks, &wc, err, sizeof err) < 0)
		log_error("webhooks keep their old settings: %s", err);
	settings_unref(&d->settings);
	d->settings = s;
	log_info("configuration reloaded from %s", d->config_path ? d->config_path : "defaults");
	reload_directory(d, NULL);
	http_server_reload_keys(d->http);
}

static void on_stop(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;
	log_info("signal %d: stopping", (int)sig);
	event_base_loopexit(d->base, NULL);
}

/* raise_nofile - one descriptor per connection: use the hard limit. */
static void raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* open_records - the event log, the sending rules' counters and lists,
 * and the webhooks, all read from the store at start. */
static int open_records(struct daemon *d, char *err, size_t errlen)
{
	const struct config *cfg = &d->settings->cfg;
	const char *db = config_db_path(cfg);
	if (!(d->events = event_log_new(d->base, d->pool, db, err, errlen)) ||
	    !(d->sending = policy_new(d->base, d->pool, db, err, errlen)))
		return -1;
	struct webhooks_config wc = webhooks_config_of(cfg);
	if (!(d->webhooks = webhooks_new(d->base, d->pool, d->events, &wc, err, errlen)))
		return -1;
	d->smtp_ctx.events = d->http_ctx.events = d->events;
	d->smtp_ctx.policy = d->http_ctx.policy = d->sending;
	d->http_ctx.webhooks = d->webhooks;
	d->http_ctx.smtp = d->smtp;
	return 0;
}

/* open_accounts - migrate the store, then load the first snapshot. */
static int open_accounts(struct daemon *d, char *err, size_t errlen)
{
	const char *db = config_db_path(&d->settings->cfg);
	if (!db) {
		snprintf(err, errlen, "store %s: only sqlite: is supported by this build",
			 d->settings->cfg.store);
		return -1;
	}
	struct store *st = store_open(db, err, errlen);
	if (!st)
		return -1;
	store_close(&st);
	d->dir = directory_load(db, err, errlen);
	return d->dir ? 0 : -1;
}

static int start(struct daemon *d, char *err, size_t errlen)
{
	const struct config *cfg = &d->settings->cfg;
	uid_t uid;
	gid_t gid;
	if (privdrop_lookup(cfg->user, &uid, &gid, err, errlen) < 0 ||
	    data_dir_prepare(cfg->data_dir, uid, gid, err, errlen) < 0)
		return -1;
	d->uid = uid;
	d->gid = gid;
	/* Keys may be readable by root only: load them before dropping. */
	d->smtp_ctx.tls = tls_server_new(cfg->tls_cert, cfg->tls_key, cfg->data_dir, cfg->hostname,
					 uid, gid, err, errlen);
	if (!d->smtp_ctx.tls)
		return -1;
	d->smtp_ctx.base = d->base;
	d->smtp = smtp_server_new(&d->smtp_ctx, d->settings, err, errlen);
	if (!d->smtp)
		return -1;
	d->http_ctx.base = d->base;
	d->http = http_server_new(&d->http_ctx, d->settings, err, errlen);
	if (!d->http)
		return -1;
	if (privdrop_become(uid, gid, err, errlen) < 0)
		return -1;
	umask(077);
	if (!(d->pool = workers_new(d->base, (int)cfg->workers))) {
		snprintf(err, errlen, "worker pool: %s", strerror(errno));
		return -1;
	}
	char path[4096];
	snprintf(path, sizeof path, "%s/spool", cfg->data_dir);
	if (!(d->spool = spool_open(path, d->pool, err, errlen)))
		return -1;
	if (open_accounts(d, err, errlen) < 0 || open_records(d, err, errlen) < 0 ||
	    start_relay(d, err, errlen) < 0)
		return -1;
	struct retry_policy policy = retry_policy_of(cfg);
	struct queue_config qc = { .data_dir = cfg->data_dir, .hostname = cfg->hostname,
				   .base = d->base, .relay = d->relay, .policy = &policy,
				   .events = d->events, .sending = d->sending };
	if (!(d->queue = queue_new(&qc, d->spool, d->pool))) {
		snprintf(err, errlen, "queue: out of memory");
		return -1;
	}
	d->smtp_ctx.spool = d->spool;
	d->smtp_ctx.queue = d->queue;
	d->smtp_ctx.pool = d->pool;
	d->http_ctx.spool = d->spool;
	d->http_ctx.queue = d->queue;
	d->http_ctx.pool = d->pool;
	use_directory(d, directory_ref(d->dir));
	directory_unref(&d->dir); /* use_directory took its own */
	long n = queue_recover(d->queue);
	if (n < 0) {
		snprintf(err, errlen, "cannot read the spool in %.900s", path);
		return -1;
	}
	if (n > 0)
		log_info("recovered %ld message(s) from the spool", n);
	snprintf(path, sizeof path, "%s/control.sock", cfg->data_dir);
	if (!(d->control = control_new(d->base, path, err, errlen)))
		return -1;
	control_register(d->control, "reload", control_reload, d);
	control_register(d->control, "queue", queue_control, d->queue);
	control_register(d->control, "reload-keys", http_server_control_reload_keys, d->http);
	if (smtp_server_start(d->smtp) < 0) {
		snprintf(err, errlen, "cannot accept connections");
		return -1;
	}
	if (http_server_start(d->http) < 0) {
		snprintf(err, errlen, "cannot start the HTTP API");
		return -1;
	}
	return 0;
}

static void stop(struct daemon *d)
{
	if (d->smtp)
		smtp_server_stop_accepting(d->smtp);
	if (d->http)
		http_server_stop_accepting(d->http);
	/* Finish what the pool holds (spool commits, deliveries) first, so
	 * no completion finds its session or queue entry gone. */
	workers_free(&d->pool);
	smtp_server_free(&d->smtp);
	http_server_free(&d->http);
	webhooks_free(&d->webhooks); /* it listens to the event log */
	relay_free(&d->relay); /* before the queue: its requests point into it */
	queue_free(&d->queue);
	policy_free(&d->sending);
	event_log_free(&d->events); /* writes the last events */
	spool_close(&d->spool);
	control_free(&d->control);
	directory_unref(&d->dir);
	settings_unref(&d->settings);
	SSL_CTX_free(d->smtp_ctx.tls);
	SSL_CTX_free(d->client_tls);
	event_free(d->sig_term);
	event_free(d->sig_int);
	event_free(d->sig_hup);
	event_base_free(d->base);
}

int main(int argc, char **argv)
{
	struct daemon d = { 0 };
	int check_only = 0, opt;
	while ((opt = getopt(argc, argv, "c:th")) != -1) {
		switch (opt) {
		case 'c':
			d.config_path = optarg;
			break;
		case 't':
			check_only = 1;
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();
	log_set_ident("ternd");
	char err[1024];
	d.settings = load_settings(d.config_path, err, sizeof err);
	if (!d.settings) {
		fprintf(stderr, "ternd: %s\n", err);
		return 1;
	}
	if (check_only) {
		printf("ternd: configuration %s is valid\n", d.config_path ? d.config_path : "(defaults)");
		settings_unref(&d.settings);
		return 0;
	}
	log_set_level(level_of(d.settings->cfg.log_level));
	signal(SIGPIPE, SIG_IGN);
	raise_nofile();
	d.base = event_base_new();
	d.sig_term = evsignal_new(d.base, SIGTERM, on_stop, &d);
	d.sig_int = evsignal_new(d.base, SIGINT, on_stop, &d);
	d.sig_hup = evsignal_new(d.base, SIGHUP, on_sighup, &d);
	if (!d.base || !d.sig_term || !d.sig_int || !d.sig_hup || event_add(d.sig_term, NULL) < 0 ||
	    event_add(d.sig_int, NULL) < 0 || event_add(d.sig_hup, NULL) < 0) {
		fprintf(stderr, "ternd: cannot set up the event loop\n");
		return 1;
	}
	if (start(&d, err, sizeof err) < 0) {
		log_error("cannot start: %s", err);
		stop(&d);
		return 1;
	}
	const struct config *cfg = &d.settings->cfg;
	for (size_t i = 0; i < cfg->nlistens; i++)
		log_info("listening: %s %s", listen_kind_name(cfg->listens[i].kind),
			 cfg->listens[i].text);
	log_info("ternd started as %s, data in %s", cfg->hostname, cfg->data_dir);
	event_base_dispatch(d.base);
	stop(&d);
	log_info("stopped");
	return 0;
}
