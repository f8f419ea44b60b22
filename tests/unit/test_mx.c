/* test_mx.c - MX routing against a private dnsmasq on a free loopback port
 * (never the machine's own resolver). */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "deliver/mx.h"

static struct event_base *base;
static pid_t dnsmasq_pid;
static int dns_port, dead_port, blackhole_port, blackhole_fd = -1;
static char dns_server[64], dns_server6[64], dead_server[64], blackhole_server[64];

static int have_ipv6; /* ::1 exists here (not in every container) */

/* ipv6_loopback - can a socket be bound to ::1? */
static int ipv6_loopback(void)
{
	struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
	int fd = socket(AF_INET6, SOCK_DGRAM, 0);
	int ok = fd >= 0 && bind(fd, (struct sockaddr *)&sin6, sizeof sin6) == 0;
	if (fd >= 0)
		close(fd);
	return ok;
}

/* free_port - a port free for UDP and TCP on 127.0.0.1 (and ::1) right now. */
static int free_port(void)
{
	for (int attempt = 0; attempt < 50; attempt++) {
		int u = socket(AF_INET, SOCK_DGRAM, 0);
		struct sockaddr_in sin = {.sin_family = AF_INET};
		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		socklen_t len = sizeof sin;
		if (u < 0 || bind(u, (struct sockaddr *)&sin, sizeof sin) < 0 ||
		    getsockname(u, (struct sockaddr *)&sin, &len) < 0) {
			if (u >= 0)
				close(u);
			continue;
		}
		int t = socket(AF_INET, SOCK_STREAM, 0);
		int t6 = socket(AF_INET6, SOCK_STREAM, 0);
		struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6, .sin6_port = sin.sin_port};
		sin6.sin6_addr = in6addr_loopback;
		int ok = t >= 0 && bind(t, (struct sockaddr *)&sin, sizeof sin) == 0 &&
			 (!have_ipv6 ||
			  (t6 >= 0 && bind(t6, (struct sockaddr *)&sin6, sizeof sin6) == 0));
		close(u);
		if (t >= 0)
			close(t);
		if (t6 >= 0)
			close(t6);
		if (ok)
			return ntohs(sin.sin_port);
	}
	return -1;
}

static int tcp_ready(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int ok = fd >= 0 && connect(fd, (struct sockaddr *)&sin, sizeof sin) == 0;
	if (fd >= 0)
		close(fd);
	return ok;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
	nanosleep(&ts, NULL);
}

/* start_dnsmasq - the test domains, all under .test, answered locally.
 * Names without records are NXDOMAIN (--local); tf.test is forwarded to a
 * port where nothing listens, so its names time out. */
static int start_dnsmasq(void)
{
	char port[32], listen[64], tf[64];
	dns_port = free_port();
	dead_port = free_port();
	if (dns_port < 0 || dead_port < 0)
		return -1;
	snprintf(port, sizeof port, "--port=%d", dns_port);
	snprintf(listen, sizeof listen, "--listen-address=127.0.0.1%s", have_ipv6 ? ",::1" : "");
	snprintf(tf, sizeof tf, "--server=/tf.test/127.0.0.1#%d", dead_port);
	char *argv[] = {"dnsmasq",
			"--no-daemon",
			"--no-resolv",
			"--no-hosts",
			"--conf-file=/dev/null",
			port,
			listen,
			"--bind-interfaces",
			"--local=/test/",
			tf,
			"--local-ttl=3",
			"--mx-host=multi.test,mx1.multi.test,10",
			"--mx-host=multi.test,mx2.multi.test,20",
			"--mx-host=multi.test,mx3.multi.test,20",
			"--host-record=mx1.multi.test,127.0.0.11,::11",
			"--host-record=mx2.multi.test,127.0.0.12",
			"--host-record=mx3.multi.test,127.0.0.13",
			"--host-record=implicit.test,127.0.0.20,::20",
			"--mx-host=nullmx.test,.,0",
			"--mx-host=partial.test,gone.partial.test,5",
			"--mx-host=partial.test,mx.partial.test,10",
			"--host-record=mx.partial.test,127.0.0.30",
			"--mx-host=nohosts.test,gone1.nohosts.test,10",
			"--mx-host=nohosts.test,gone2.nohosts.test,20",
			"--mx-host=slow.test,mx.tf.test,10",
			"--mx-host=mixed.test,mx.tf.test,10",
			"--mx-host=mixed.test,mx.mixed.test,20",
			"--host-record=mx.mixed.test,127.0.0.40",
			"--mx-host=cache.test,mx.cache.test,10",
			"--host-record=mx.cache.test,127.0.0.50,1",
			"--mx-host=mxttl.test,mx.mxttl.test,10",
			"--host-record=mx.mxttl.test,127.0.0.60,30",
			NULL};
	dnsmasq_pid = fork();
	if (dnsmasq_pid < 0)
		return -1;
	if (dnsmasq_pid == 0) {
		int null = open("/dev/null", O_WRONLY);
		if (!getenv("TERN_TEST_VERBOSE") && null >= 0) {
			dup2(null, 1);
			dup2(null, 2);
		}
		execv("/usr/sbin/dnsmasq", argv);
		_exit(127);
	}
	for (int i = 0; i < 100; i++) {
		if (tcp_ready(dns_port))
			return 0;
		int status;
		if (waitpid(dnsmasq_pid, &status, WNOHANG) == dnsmasq_pid) {
			dnsmasq_pid = 0;
			return -1;
		}
		sleep_ms(50);
	}
	return -1;
}

static void stop_dnsmasq(void)
{
	if (dnsmasq_pid > 0) {
		kill(dnsmasq_pid, SIGCONT);
		kill(dnsmasq_pid, SIGTERM);
		waitpid(dnsmasq_pid, NULL, 0);
		dnsmasq_pid = 0;
	}
}

struct outcome {
	struct mx_result *res;
	int calls;
};

static void on_result(struct mx_result *res, void *arg)
{
	struct outcome *o = arg;
	o->calls++;
	if (o->res)
		mx_result_free(&o->res);
	o->res = res;
}

static int timed_out;

static void on_watchdog(evutil_socket_t fd, short what, void *arg)
{
	timed_out = 1;
}

/* run_until - run the loop until *FLAG or SECONDS pass. */
static void run_until(const int *flag, int seconds)
{
	struct timeval tv = {seconds, 0};
	struct event *dog = evtimer_new(base, on_watchdog, NULL);
	timed_out = 0;
	evtimer_add(dog, &tv);
	while (!*flag && !timed_out)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(dog);
}

/* resolve - one synchronous lookup for the tests; the caller frees. */
static struct mx_result *resolve(struct mx_resolver *r, const char *domain)
{
	struct outcome o = {0};
	CHECK(mx_resolve(r, domain, on_result, &o) == 0);
	CHECK(o.calls == 0); /* never from inside mx_resolve */
	run_until(&o.calls, 10);
	CHECK(o.calls == 1);
	return o.res;
}

static struct mx_resolver *resolver_for(const char *server, unsigned timeout_ms)
{
	const char *servers[] = {server};
	struct mx_config cfg = {servers, 1, timeout_ms, 1};
	char err[200] = "";
	struct mx_resolver *r = mx_resolver_new(base, &cfg, err, sizeof err);
	if (!r)
		fprintf(stderr, "mx_resolver_new: %s\n", err);
	CHECK(r != NULL);
	return r;
}

static const char *addr_text(const struct mx_addr *a, char *buf, size_t len)
{
	const void *p = a->u.sa.sa_family == AF_INET ? (const void *)&a->u.sin.sin_addr
						     : (const void *)&a->u.sin6.sin6_addr;
	return inet_ntop(a->u.sa.sa_family, p, buf, (socklen_t)len);
}

static void test_mx_hosts_in_preference_order_with_a_before_aaaa(void)
{
	struct mx_resolver *r = resolver_for(dns_server, 1000);
	struct mx_result *res = resolve(r, "multi.test");
	char buf[64];
	CHECK(res && res->status == MX_OK);
	if (res && res->status == MX_OK) {
		CHECK(!res->implicit && !res->literal);
		CHECK(res->nhosts == 3);
		CHECK_STR(res->hosts[0].name, "mx1.multi.test");
		CHECK(res->hosts[0].preference == 10);
		CHECK(res->hosts[1].preference == 20 && res->hosts[2].preference == 20);
		CHECK(res->hosts[0].naddrs == 2);
		CHECK_STR(addr_text(&res->hosts[0].addrs[0], buf, sizeof buf), "127.0.0.11");
		CHECK_STR(addr_text(&res->hosts[0].addrs[1], buf, sizeof buf), "::11");
		CHECK(res->hosts[0].addrs[0].u.sin.sin_port == 0);
		CHECK(res->hosts[0].addrs[0].len == sizeof(struct sockaddr_in));
		CHECK(res->hosts[0].addrs[1].len == sizeof(struct sockaddr_in6));
		CHECK(res->error == NULL);
	}
	mx_result_free(&res);
	CHECK(res == NULL);
	mx_resolver_free(&r);
	CHECK(r == NULL);
}

static void test_equal_preferences_come_in_random_order(void)
{
	struct mx_resolver *r = resolver_for(dns_server, 1000);
	int mx2_first = 0, mx3_first = 0;
	for (int i = 0; i < 40; i++) {
		struct mx_result *res = resolve(r, "MULTI.test.");
		if (res && res->nhosts == 3) {
			CHECK_STR(res->hosts[0].name, "mx1.multi.test");
			mx2_first += !strcmp(res->hosts[1].name, "mx2.multi.test");
			mx3_first += !strcmp(res->hosts[1].name, "mx3.multi.test");
			CHECK_STR(res->domain, "MULTI.test.");
		}
		mx_result_free(&res);
	}
	/* Both orders, also from the cache (a 2^-39 chance of a false alarm). */
	CHECK(mx2_first > 0 && mx3_first > 0);
	CHECK(mx2_first + mx3_first == 40);
	mx_resolver_free(&r);
}

static void test_no_mx_means_implicit_mx(void)
{
	struct mx_resolver *r = resolver_for(dns_server, 1000);
	struct mx_result *res = resolve(r, "implicit.test");
	char buf[64];
	CHECK(res && res->status == MX_OK && res->implicit && res->nhosts == 1);
	if (res && res->nhosts == 1) {
		CHECK_STR(res->hosts[0].name, "implicit.test");
		CHECK(res->hosts[0].preference == 0);
		CHECK(res->hosts[0].naddrs == 2);
		CHECK_STR(addr_text(&res->hosts[0].addrs[0], buf, sizeof buf), "127.0.0.20");
		CHECK_STR(addr_text(&res->hosts[0].addrs[1], buf, sizeof buf), "::20");
	}
	mx_result_free(&res);
	mx_resolver_free(&r);
}

static void test_null_mx_and_nxdomain_bounce(void)
{
	struct mx_resolver *r = resolver_for(dns_server, 1000);
	struct mx_result *res = resolve(r, "nullmx.test");
	CHECK(res && res->status == MX_NULL && res->nhosts == 0 && res->error);
	mx_result_free(&res);
	res = resolve(r, "nothere.test");
	CHECK(res && res->status == MX_NXDOMAIN && res->nhosts == 0);
	mx_result_free(&res);
	/* Not a DNS name at all: no query, a bounce. */
	res = resolve(r, "bad name.test");
	CHECK(res && res->status == MX_NXDOMAIN);
	mx_result_free(&res);
	res = resolve(r, "a..test");
	CHECK(res && res->status == MX_NXDOMAIN);
	mx_result_free(&res);
	CHECK_STR(mx_status_name(MX_NULL), "null-mx");
	mx_resolver_free(&r);
}

static void test_hosts_without_address_are_skipped(void)
{
	struct mx_resolver *r = resolver_for(dns_server, 300);
	struct mx_result *res = resolve(r, "partial.test");
	CHECK(res && res->status == MX_OK && res->nhosts == 1);
	if (res && res->nhosts == 1)
		CHECK_STR(res->hosts[0].name, "mx.partial.test");
	mx_result_free(&res);
	res = resolve(r, "nohosts.test");
	CHECK(res && res->status == MX_NOHOSTS && res->nhosts == 0);
	mx_result_free(&res);
	mx_resolver_free(&r);
}

static void test_address_lookup_timeouts(void)
{
	struct mx_resolver *r = resolver_for(dns_server, 300);
	/* The only MX host cannot be resolved now: defer, not bounce. */
	struct mx_result *res = resolve(r, "slow.test");
	CHECK(res && res->status == MX_TEMPFAIL && res->nhosts == 0);
	mx_result_free(&res);
	/* A worse host that resolves is still used. */
	res = resolve(r, "mixed.test");
	CHECK(res && res->status == MX_OK && res->nhosts == 1);
	if (res && res->nhosts == 1)
		CHECK_STR(res->hosts[0].name, "mx.mixed.test");
	mx_result_free(&res);
	mx_resolver_free(&r);
}

static void test_unreachable_or_silent_server_is_tempfail(void)
{
	struct mx_resolver *r = resolver_for(dead_server, 300);
	struct mx_result *res = resolve(r, "multi.test");
	CHECK(res && res->status == MX_TEMPFAIL && res->error);
	mx_result_free(&res);
	mx_resolver_free(&r);
	r = resolver_for(blackhole_server, 200);
	time_t t0 = time(NULL);
	res = resolve(r, "multi.test");
	CHECK(res && res->status == MX_TEMPFAIL);
	CHECK(time(NULL) - t0 < 5);
	mx_result_free(&res);
	mx_resolver_free(&r);
}

static void test_ipv6_server_syntax(void)
{
	if (!have_ipv6) {
		fprintf(stderr, "test_mx: no ::1 here, [V6]:PORT server not tried\n");
		return;
	}
	struct mx_resolver *r = resolver_for(dns_server6, 1000);
	struct mx_result *res = resolve(r, "implicit.test");
	CHECK(res && res->status == MX_OK);
	mx_result_free(&res);
	mx_resolver_free(&r);
}

static void test_bad_server_list_is_refused(void)
{
	static const char *bad[] = {"127.0.0.1:53,127.0.0.2", "bogus", "", "1.2.3.4 5"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		const char *servers[] = {bad[i]};
		struct mx_config cfg = {servers, 1, 0, 0};
		char err[200] = "";
		struct mx_resolver *r = mx_resolver_new(base, &cfg, err, sizeof err);
		CHECK(r == NULL);
		CHECK(err[0] != '\0');
		mx_resolver_free(&r);
	}
}

static void test_address_literals_route_directly(void)
{
	/* The dead server proves no DNS is asked. */
	struct mx_resolver *r = resolver_for(dead_server, 300);
	char buf[64];
	struct mx_result *res = resolve(r, "[127.0.0.9]");
	CHECK(res && res->status == MX_OK && res->literal && res->nhosts == 1);
	if (res && res->nhosts == 1) {
		CHECK_STR(res->hosts[0].name, "[127.0.0.9]");
		CHECK(res->hosts[0].naddrs == 1);
		CHECK_STR(addr_text(&res->hosts[0].addrs[0], buf, sizeof buf), "127.0.0.9");
	}
	mx_result_free(&res);
	res = resolve(r, "[IPv6:::1]");
	CHECK(res && res->status == MX_OK && res->nhosts == 1);
	if (res && res->nhosts == 1)
		CHECK(res->hosts[0].addrs[0].u.sa.sa_family == AF_INET6);
	mx_result_free(&res);
	res = resolve(r, "[300.1.1.1]");
	CHECK(res && res->status == MX_NXDOMAIN);
	mx_result_free(&res);
	res = resolve(r, "[tag:foo]");
	CHECK(res && res->status == MX_NXDOMAIN);
	mx_result_free(&res);
	mx_resolver_free(&r);
}

/* The cache keeps an answer for the smallest TTL involved: cache.test has an
 * MX TTL of 3 s and an A TTL of 1 s; mxttl.test the other way round. */
static void test_cache_honours_smallest_ttl(void)
{
	struct mx_resolver *r = resolver_for(dns_server, 300);
	struct mx_result *res = resolve(r, "cache.test");
	CHECK(res && res->status == MX_OK && !res->cached);
	mx_result_free(&res);
	res = resolve(r, "cache.test");
	CHECK(res && res->status == MX_OK && res->cached);
	mx_result_free(&res);
	sleep_ms(1300);
	res = resolve(r, "cache.test");
	CHECK(res && res->status == MX_OK && !res->cached);
	mx_result_free(&res);
	/* With the server stopped, the fresh entry still answers ... */
	kill(dnsmasq_pid, SIGSTOP);
	res = resolve(r, "cache.test");
	CHECK(res && res->status == MX_OK && res->cached);
	mx_result_free(&res);
	sleep_ms(1300);
	/* ... until it expires; then the silent server means tempfail. */
	res = resolve(r, "cache.test");
	CHECK(res && res->status == MX_TEMPFAIL && !res->cached);
	mx_result_free(&res);
	kill(dnsmasq_pid, SIGCONT);

	res = resolve(r, "mxttl.test");
	CHECK(res && res->status == MX_OK && !res->cached);
	mx_result_free(&res);
	sleep_ms(1500);
	res = resolve(r, "mxttl.test");
	CHECK(res && res->status == MX_OK && res->cached);
	mx_result_free(&res);
	sleep_ms(1800);
	res = resolve(r, "mxttl.test");
	CHECK(res && res->status == MX_OK && !res->cached);
	mx_result_free(&res);
	mx_resolver_free(&r);
}

static void test_free_cancels_pending_lookups(void)
{
	struct mx_resolver *r = resolver_for(blackhole_server, 5000);
	struct outcome o = {0};
	CHECK(mx_resolve(r, "multi.test", on_result, &o) == 0);
	CHECK(mx_resolve(r, "[127.0.0.1]", on_result, &o) == 0);
	event_base_loop(base, EVLOOP_NONBLOCK);
	mx_resolver_free(&r);
	event_base_loop(base, EVLOOP_NONBLOCK);
	CHECK(o.calls <= 1); /* the literal may have been handed over already */
	CHECK(o.res == NULL || o.res->literal);
	if (o.res)
		mx_result_free(&o.res);
}

struct freeing {
	struct mx_resolver *r;
	int calls;
};

static void on_result_free_resolver(struct mx_result *res, void *arg)
{
	struct freeing *f = arg;
	f->calls++;
	mx_result_free(&res);
	mx_resolver_free(&f->r);
}

static void test_callback_may_free_the_resolver(void)
{
	struct freeing f = {resolver_for(blackhole_server, 5000), 0};
	CHECK(mx_resolve(f.r, "[127.0.0.1]", on_result_free_resolver, &f) == 0);
	CHECK(mx_resolve(f.r, "multi.test", on_result_free_resolver, &f) == 0);
	run_until(&f.calls, 3);
	CHECK(f.calls == 1);
	CHECK(f.r == NULL);
	event_base_loop(base, EVLOOP_NONBLOCK);
	CHECK(f.calls == 1);
}

/* resolve_host - one synchronous mx_resolve_host; the caller frees. */
static struct mx_result *resolve_host(struct mx_resolver *r, const char *name)
{
	struct outcome o = {0};
	CHECK(mx_resolve_host(r, name, on_result, &o) == 0);
	CHECK(o.calls == 0); /* never from inside mx_resolve_host */
	run_until(&o.calls, 10);
	CHECK(o.calls == 1);
	return o.res;
}

static void test_host_lookup_gives_a_then_aaaa(void)
{
	struct mx_resolver *r = resolver_for(dns_server, 1000);
	char buf[64];
	struct mx_result *res = resolve_host(r, "Implicit.TEST.");
	CHECK(res && res->status == MX_OK && res->nhosts == 1 && !res->literal);
	if (res && res->nhosts == 1) {
		CHECK_STR(res->hosts[0].name, "implicit.test");
		CHECK(res->hosts[0].naddrs == 2);
		CHECK_STR(addr_text(&res->hosts[0].addrs[0], buf, sizeof buf), "127.0.0.20");
		CHECK_STR(addr_text(&res->hosts[0].addrs[1], buf, sizeof buf), "::20");
	}
	mx_result_free(&res);
	/* An MX host's own name: its address, not the MX route. */
	res = resolve_host(r, "mx2.multi.test");
	CHECK(res && res->status == MX_OK && res->nhosts == 1);
	if (res && res->nhosts == 1) {
		CHECK(res->hosts[0].naddrs == 1);
		CHECK_STR(addr_text(&res->hosts[0].addrs[0], buf, sizeof buf), "127.0.0.12");
	}
	mx_result_free(&res);
	mx_resolver_free(&r);
}

static void test_host_lookup_failures(void)
{
	struct mx_resolver *r = resolver_for(dns_server, 300);
	struct mx_result *res = resolve_host(r, "nothere.test");
	CHECK(res && res->status == MX_NOHOSTS && res->nhosts == 0 && res->error);
	mx_result_free(&res);
	res = resolve_host(r, "multi.test"); /* MX records only, no address */
	CHECK(res && res->status == MX_NOHOSTS);
	mx_result_free(&res);
	res = resolve_host(r, "bad name.test");
	CHECK(res && res->status == MX_NXDOMAIN);
	mx_result_free(&res);
	res = resolve_host(r, "[127.0.0.1]"); /* brackets belong to URLs and SMTP */
	CHECK(res && res->status == MX_NXDOMAIN);
	mx_result_free(&res);
	res = resolve_host(r, "mx.tf.test");
	CHECK(res && res->status == MX_TEMPFAIL && res->nhosts == 0);
	mx_result_free(&res);
	mx_resolver_free(&r);
}

static void test_host_literals_need_no_dns(void)
{
	struct mx_resolver *r = resolver_for(dead_server, 300);
	char buf[64];
	struct mx_result *res = resolve_host(r, "127.0.0.9");
	CHECK(res && res->status == MX_OK && res->literal && res->nhosts == 1);
	if (res && res->nhosts == 1 && res->hosts[0].naddrs == 1) {
		CHECK(res->hosts[0].addrs[0].u.sa.sa_family == AF_INET);
		CHECK_STR(addr_text(&res->hosts[0].addrs[0], buf, sizeof buf), "127.0.0.9");
	}
	mx_result_free(&res);
	res = resolve_host(r, "2001:db8::7");
	CHECK(res && res->status == MX_OK && res->literal && res->nhosts == 1);
	if (res && res->nhosts == 1 && res->hosts[0].naddrs == 1) {
		CHECK(res->hosts[0].addrs[0].u.sa.sa_family == AF_INET6);
		CHECK(res->hosts[0].addrs[0].len == sizeof(struct sockaddr_in6));
		CHECK_STR(addr_text(&res->hosts[0].addrs[0], buf, sizeof buf), "2001:db8::7");
	}
	mx_result_free(&res);
	mx_resolver_free(&r);
}

static void test_host_lookups_are_not_cached(void)
{
	struct mx_resolver *r = resolver_for(dns_server, 1000);
	struct mx_result *res = resolve_host(r, "cache.test");
	CHECK(res && res->status == MX_NOHOSTS); /* MX only */
	mx_result_free(&res);
	res = resolve_host(r, "implicit.test");
	CHECK(res && res->status == MX_OK && !res->cached);
	mx_result_free(&res);
	res = resolve_host(r, "implicit.test");
	CHECK(res && res->status == MX_OK && !res->cached);
	mx_result_free(&res);
	/* Nor does a host lookup stand in for the domain's mail route. */
	res = resolve(r, "implicit.test");
	CHECK(res && res->status == MX_OK && res->implicit && !res->cached);
	mx_result_free(&res);
	mx_resolver_free(&r);
}

/* open_blackhole - a UDP socket that receives queries and never answers. */
static int open_blackhole(void)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t len = sizeof sin;
	blackhole_fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (blackhole_fd < 0 || bind(blackhole_fd, (struct sockaddr *)&sin, sizeof sin) < 0 ||
	    getsockname(blackhole_fd, (struct sockaddr *)&sin, &len) < 0)
		return -1;
	blackhole_port = ntohs(sin.sin_port);
	return 0;
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	base = event_base_new();
	have_ipv6 = ipv6_loopback();
	if (!base || start_dnsmasq() < 0 || open_blackhole() < 0) {
		fprintf(stderr, "test_mx: cannot start /usr/sbin/dnsmasq on loopback\n");
		stop_dnsmasq();
		return 1;
	}
	snprintf(dns_server, sizeof dns_server, "127.0.0.1:%d", dns_port);
	snprintf(dns_server6, sizeof dns_server6, "[::1]:%d", dns_port);
	snprintf(dead_server, sizeof dead_server, "127.0.0.1:%d", dead_port);
	snprintf(blackhole_server, sizeof blackhole_server, "127.0.0.1:%d", blackhole_port);

	RUN(test_mx_hosts_in_preference_order_with_a_before_aaaa);
	RUN(test_equal_preferences_come_in_random_order);
	RUN(test_no_mx_means_implicit_mx);
	RUN(test_null_mx_and_nxdomain_bounce);
	RUN(test_hosts_without_address_are_skipped);
	RUN(test_address_lookup_timeouts);
	RUN(test_unreachable_or_silent_server_is_tempfail);
	RUN(test_ipv6_server_syntax);
	RUN(test_bad_server_list_is_refused);
	RUN(test_address_literals_route_directly);
	RUN(test_cache_honours_smallest_ttl);
	RUN(test_free_cancels_pending_lookups);
	RUN(test_callback_may_free_the_resolver);
	RUN(test_host_lookup_gives_a_then_aaaa);
	RUN(test_host_lookup_failures);
	RUN(test_host_literals_need_no_dns);
	RUN(test_host_lookups_are_not_cached);

	stop_dnsmasq();
	close(blackhole_fd);
	event_base_free(base);
	return check_summary();
}
