/* test_client.c - the outgoing SMTP client against Postfix's smtp-sink:
 * one transaction for two recipients with the body intact, connection
 * reuse, source address binding, refused recipients, a 4xx greeting,
 * SMTPUTF8 refused locally.  What smtp-sink cannot do (per-recipient
 * refusal, SIZE, STARTTLS, AUTH, hostile servers) is in test_client_peer.c. */
#include <dirent.h>
#include <signal.h>
#include <sys/wait.h>

#include "client_harness.h"

/* What smtp-sink writes: LF line ends, dots unstuffed, the missing line end
 * added, then its own empty line. */
static const char BODY_DUMPED[] = "Subject: test\n\nline one\n.leading dot\n..two dots\n"
				  "caf\xc3\xa9\n.\nlast line without CRLF\n\n";

static const char *sink_binary(void)
{
	static const char *paths[] = {"/usr/sbin/smtp-sink", "/usr/lib/postfix/sbin/smtp-sink"};
	for (size_t i = 0; i < 2; i++)
		if (access(paths[i], X_OK) == 0)
			return paths[i];
	return NULL;
}

struct sink {
	pid_t pid;
	int port;
	char dir[128];
};

/* sink_start - smtp-sink on 127.0.0.1 dumping every transaction into its
 * own file under a fresh directory; EXTRA are more options. */
static int sink_start(struct sink *s, const char *const *extra)
{
	static int n;
	const char *bin = sink_binary();
	char dump[200], listen[64];
	char *argv[32];
	int argc = 0;
	memset(s, 0, sizeof *s);
	s->port = free_port();
	snprintf(s->dir, sizeof s->dir, "%s/sink%d", tmpdir, n++);
	if (!bin || s->port < 0 || mkdir(s->dir, 0777) < 0)
		return -1;
	chmod(s->dir, 0777);
	snprintf(dump, sizeof dump, "%s/%%M.", s->dir);
	snprintf(listen, sizeof listen, "127.0.0.1:%d", s->port);
	argv[argc++] = "smtp-sink";
	if (geteuid() == 0) {
		argv[argc++] = "-u";
		argv[argc++] = "root";
	}
	argv[argc++] = "-d";
	argv[argc++] = dump;
	for (; extra && *extra && argc < 26; extra++)
		argv[argc++] = (char *)*extra;
	argv[argc++] = listen;
	argv[argc++] = "10";
	argv[argc] = NULL;
	s->pid = fork();
	if (s->pid < 0)
		return -1;
	if (s->pid == 0) {
		int null = open("/dev/null", O_WRONLY);
		if (null >= 0 && !getenv("TERN_TEST_VERBOSE")) {
			dup2(null, 1);
			dup2(null, 2);
		}
		execv(bin, argv);
		_exit(127);
	}
	for (int i = 0; i < 100; i++) {
		if (tcp_ready(s->port))
			return 0;
		sleep_ms(50);
	}
	return -1;
}

static void sink_stop(struct sink *s)
{
	if (s->pid > 0) {
		kill(s->pid, SIGTERM);
		waitpid(s->pid, NULL, 0);
		s->pid = 0;
	}
}

/* sink_dumps - the number of transactions smtp-sink captured (it leaves an
 * empty file behind for one cut short: not counted); the first in BUF. */
static int sink_dumps(const struct sink *s, char *buf, size_t len)
{
	DIR *d = opendir(s->dir);
	struct dirent *e;
	int files = 0;
	buf[0] = '\0';
	while (d && (e = readdir(d))) {
		char path[512];
		struct stat st;
		snprintf(path, sizeof path, "%s/%s", s->dir, e->d_name);
		if (e->d_name[0] == '.' || stat(path, &st) < 0 || st.st_size == 0)
			continue;
		if (files++ == 0) {
			int fd = open(path, O_RDONLY);
			ssize_t n = fd >= 0 ? read(fd, buf, len - 1) : -1;
			buf[n > 0 ? n : 0] = '\0';
			if (fd >= 0)
				close(fd);
		}
	}
	if (d)
		closedir(d);
	return files;
}

/* dump_body - the message part of an smtp-sink dump. */
static const char *dump_body(const char *dump)
{
	const char *p = strstr(dump, "\nReceived: ");
	for (int i = 0; p && i < 3; i++) {
		p = strchr(p + 1, '\n');
	}
	return p ? p + 1 : "";
}

static void test_two_recipients_in_one_transaction_body_intact(void)
{
	struct sink s;
	CHECK(sink_start(&s, NULL) == 0);
	int fd = body_file(BODY, sizeof BODY - 1);
	struct smtp_client_config cfg = test_config();
	struct outcome o = {0};
	struct smtp_client *c = connect_to(&cfg, s.port, &o);
	CHECK(o.conn.code == 220 && !o.conn.local);
	CHECK(c && smtp_client_ready(c));
	CHECK(c && (smtp_client_ehlo(c)->ext & SMTP_EXT_PIPELINING));
	CHECK(c && smtp_client_tls(c) == NULL);
	struct smtp_client_msg m = test_msg(fd, TWO_RCPTS, 2);
	if (c)
		send_and_wait(c, &m, &o);
	CHECK(o.final.code == 250 && !o.final.local);
	CHECK_STR(o.final.enhanced, "2.0.0");
	CHECK(o.nrcpts == 2);
	CHECK(o.rcpts[0].code == 250 && o.rcpts[1].code == 250);
	static char dump[65536];
	CHECK(sink_dumps(&s, dump, sizeof dump) == 1);
	CHECK(strstr(dump, "X-Mail-Args: <a@sender.test> BODY=8BITMIME RET=FULL ENVID=ENV123\n"));
	CHECK(strstr(dump, "X-Rcpt-Args: <x@dest.test> NOTIFY=SUCCESS,FAILURE "
			   "ORCPT=rfc822;x@dest.test\nX-Rcpt-Args: <y@dest.test>\n"));
	CHECK(strstr(dump, "X-Helo-Args: client.test\n"));
	CHECK_STR(dump_body(dump), BODY_DUMPED);

	/* The same connection carries the next message. */
	CHECK(c && smtp_client_ready(c));
	if (c)
		send_and_wait(c, &m, &o);
	CHECK(o.final.code == 250 && o.rcpts[0].code == 250);
	CHECK(sink_dumps(&s, dump, sizeof dump) == 2);
	smtp_client_quit(&c);
	CHECK(c == NULL);
	run_for(300);
	close(fd);
	sink_stop(&s);
}

static void test_source_address_is_bound(void)
{
	struct sink s;
	CHECK(sink_start(&s, NULL) == 0);
	int fd = body_file(BODY, sizeof BODY - 1);
	struct sockaddr_in src = {.sin_family = AF_INET};
	inet_pton(AF_INET, "127.0.0.2", &src.sin_addr);
	struct smtp_client_config cfg = test_config();
	cfg.source = (struct sockaddr *)&src;
	cfg.source_len = sizeof src;
	struct outcome o = {0};
	struct smtp_client *c = connect_to(&cfg, s.port, &o);
	struct smtp_client_msg m = test_msg(fd, TWO_RCPTS, 1);
	if (c && o.conn.code == 220)
		send_and_wait(c, &m, &o);
	CHECK(o.final.code == 250);
	static char dump[65536];
	CHECK(sink_dumps(&s, dump, sizeof dump) == 1);
	CHECK(strstr(dump, "X-Client-Addr: 127.0.0.2\n"));
	smtp_client_free(&c);

	/* An IPv4 source cannot reach an IPv6 destination: said, not guessed. */
	struct sockaddr_in6 dst6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
	char err[200];
	c = smtp_client_new(base, &cfg, err, sizeof err);
	memset(&o, 0, sizeof o);
	CHECK(c && smtp_client_connect(c, (struct sockaddr *)&dst6, sizeof dst6, (uint16_t)s.port,
				       NULL, on_connected, &o) == 0);
	run_until(&o.connected, 5);
	CHECK(o.conn.code == 421 && o.conn.local && strstr(o.conn.text, "source address"));
	CHECK_STR(o.conn.enhanced, "4.4.1");
	/* Only IPv4 and IPv6 socket addresses of their exact size are taken. */
	smtp_client_free(&c);
	c = smtp_client_new(base, &cfg, err, sizeof err);
	CHECK(c && smtp_client_connect(c, (struct sockaddr *)&dst6, sizeof(struct sockaddr_in), 25,
				       NULL, on_connected, &o) == -1);
	smtp_client_free(&c);
	close(fd);
	sink_stop(&s);
}

static void test_all_recipients_refused_means_no_data(void)
{
	struct sink s;
	const char *opts[] = {"-f", "RCPT", NULL}; /* also turns PIPELINING off */
	CHECK(sink_start(&s, opts) == 0);
	int fd = body_file(BODY, sizeof BODY - 1);
	struct smtp_client_config cfg = test_config();
	struct outcome o = {0};
	struct smtp_client *c = connect_to(&cfg, s.port, &o);
	CHECK(c && !(smtp_client_ehlo(c)->ext & SMTP_EXT_PIPELINING));
	struct smtp_client_msg m = test_msg(fd, TWO_RCPTS, 2);
	for (int round = 0; round < 2 && c; round++) {
		send_and_wait(c, &m, &o);
		CHECK(o.rcpts[0].code == 500 && o.rcpts[1].code == 500);
		CHECK_STR(o.rcpts[0].enhanced, "5.3.0");
		CHECK(!o.rcpts[0].local);
		CHECK(o.final.code == 500);
	}
	static char dump[4096];
	CHECK(sink_dumps(&s, dump, sizeof dump) == 0);
	smtp_client_free(&c);
	close(fd);
	sink_stop(&s);
}

static void test_4xx_greeting_fails_the_connect(void)
{
	struct sink s;
	const char *opts[] = {"-r", "CONNECT", NULL};
	CHECK(sink_start(&s, opts) == 0);
	struct smtp_client_config cfg = test_config();
	struct outcome o = {0};
	struct smtp_client *c = connect_to(&cfg, s.port, &o);
	CHECK(o.conn.code == 450 && !o.conn.local);
	CHECK_STR(o.conn.enhanced, "4.3.0");
	CHECK(c && !smtp_client_ready(c));
	smtp_client_free(&c);
	sink_stop(&s);
}

static void test_smtputf8_needed_but_not_offered_is_refused_locally(void)
{
	struct sink s;
	CHECK(sink_start(&s, NULL) == 0);
	int fd = body_file(BODY, sizeof BODY - 1);
	struct smtp_client_config cfg = test_config();
	struct outcome o = {0};
	struct smtp_client *c = connect_to(&cfg, s.port, &o);
	struct smtp_client_msg m = test_msg(fd, TWO_RCPTS, 2);
	m.smtputf8 = 1;
	if (c)
		send_and_wait(c, &m, &o);
	CHECK(o.rcpts[0].code == 553 && o.rcpts[1].code == 553 && o.rcpts[0].local);
	CHECK_STR(o.rcpts[1].enhanced, "5.6.7");
	static char dump[65536];
	CHECK(sink_dumps(&s, dump, sizeof dump) == 0);
	/* Nothing was sent: the connection is as good as before. */
	m.smtputf8 = 0;
	CHECK(c && smtp_client_ready(c));
	if (c)
		send_and_wait(c, &m, &o);
	CHECK(o.final.code == 250);
	CHECK(sink_dumps(&s, dump, sizeof dump) == 1);
	smtp_client_free(&c);
	close(fd);
	sink_stop(&s);
}

static void test_connection_refused(void)
{
	struct smtp_client_config cfg = test_config();
	struct outcome o = {0};
	struct smtp_client *c = connect_to(&cfg, free_port(), &o);
	CHECK(o.conn.code == 421 && o.conn.local);
	CHECK_STR(o.conn.enhanced, "4.4.1");
	struct smtp_client_msg m = test_msg(-1, TWO_RCPTS, 1);
	CHECK(c && smtp_client_send(c, &m, on_done, &o) == -1); /* never connected */
	smtp_client_free(&c);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	if (harness_init() < 0 || !sink_binary()) {
		fprintf(stderr, "test_client: needs a temporary directory and Postfix's "
				"smtp-sink\n");
		return 1;
	}
	RUN(test_two_recipients_in_one_transaction_body_intact);
	RUN(test_source_address_is_bound);
	RUN(test_all_recipients_refused_means_no_data);
	RUN(test_4xx_greeting_fails_the_connect);
	RUN(test_smtputf8_needed_but_not_offered_is_refused_locally);
	RUN(test_connection_refused);
	harness_done();
	return check_summary();
}
