/* fuzz_dns.c - libFuzzer target for DNS answers as c-ares hands them to
 * MX routing (deliver/mx.c; RFC 1035 4.1, RFC 5321 5.1, RFC 7505,
 * RFC 5321 4.1.3).
 *
 * A DNS answer is network input: whoever can spoof or run the resolver
 * chooses every byte.  mx.c gets the raw answer in its c-ares callbacks,
 * parses it with ares_parse_mx_reply / ares_parse_a_reply /
 * ares_parse_aaaa_reply and walks it itself for the MX TTLs
 * (answer_min_ttl).  Those callbacks are static, so this file includes
 * mx.c, with ares_query renamed to fuzz_ares_query: the queries mx.c asks
 * are queued instead of sent, and answered from the input, later, as the
 * network would.  Everything else is the real code: mx_resolve, the c-ares
 * parsers, the host list, the cache, the hand-over on the event loop.
 *
 * Input: DOMAIN NUL ANSWER...  DOMAIN goes to mx_resolve (a name or an
 * address literal, as it comes from a RCPT address).  Each ANSWER answers
 * the oldest query still open (the MX query first, then A and AAAA per MX
 * host): one byte whose value % 4 selects success, ENODATA, ENOTFOUND or
 * SERVFAIL (0xF0 and above: SERVFAIL at once, inside the query call);
 * for success two bytes of length (big-endian) and that many
 * bytes of DNS message.  Queries left when the input ends time out.  The
 * domain is resolved twice, so the second lookup may come from the cache.
 *
 * The result reaches the callback through the event loop, exactly once,
 * and is checked: status and error agree, hosts are bounded, sorted by
 * preference, hold addresses of the right family and length, IPv4 first.
 * The cache is emptied after every input, so a crash reproduces from its
 * input alone. */
#define ares_query fuzz_ares_query
#include "deliver/mx.c"
#undef ares_query

#define FUZZ_INPUT_MAX	 65536
#define FUZZ_QUEUE_SLOTS 64 /* > 1 + 2 * MX_HOSTS_MAX queries of one lookup */

#define check(cond)                                                                                \
	do {                                                                                       \
		if (!(cond))                                                                       \
			abort();                                                                   \
	} while (0)

/* A query mx.c asked, waiting for its answer. */
struct fuzz_query {
	ares_callback cb;
	void *arg;
	int type;
};

static struct event_base *fuzz_base;
static struct mx_resolver *fuzz_resolver;
static struct fuzz_query fuzz_queue[FUZZ_QUEUE_SLOTS];
static size_t fuzz_head, fuzz_tail;
static int fuzz_results; /* callbacks seen for the current lookup */
static const uint8_t *fuzz_in;
static size_t fuzz_len, fuzz_pos;

/* fuzz_ares_query - stands in for ares_query inside mx.c: check what is
 * asked, queue it.  When the next input byte is 0xF0 or above, fail at
 * once instead, from inside the call, as c-ares does on some errors. */
void fuzz_ares_query(ares_channel channel, const char *name, int dnsclass, int type,
		     ares_callback callback, void *arg)
{
	check(channel == fuzz_resolver->channel && dnsclass == ns_c_in);
	check(name && name[0] && strlen(name) <= MX_NAME_MAX);
	check(type == ns_t_mx || type == ns_t_a || type == ns_t_aaaa);
	if (fuzz_pos < fuzz_len && fuzz_in[fuzz_pos] >= 0xf0) {
		fuzz_pos++;
		callback(arg, ARES_ESERVFAIL, 0, NULL, 0);
		return;
	}
	check(fuzz_tail - fuzz_head < FUZZ_QUEUE_SLOTS);
	fuzz_queue[fuzz_tail++ % FUZZ_QUEUE_SLOTS] =
		(struct fuzz_query){.cb = callback, .arg = arg, .type = type};
}

/* answer_next - the oldest open query gets the next answer of the input,
 * or a timeout when the input is used up. */
static void answer_next(void)
{
	struct fuzz_query q = fuzz_queue[fuzz_head++ % FUZZ_QUEUE_SLOTS];
	static const int failures[] = {ARES_ENODATA, ARES_ENOTFOUND, ARES_ESERVFAIL};
	int status = ARES_ETIMEOUT;
	unsigned char *abuf = NULL;
	size_t alen = 0;

	if (fuzz_pos < fuzz_len) {
		uint8_t how = fuzz_in[fuzz_pos++] % 4;
		if (how) {
			status = failures[how - 1];
		} else if (fuzz_len - fuzz_pos >= 2) {
			alen = (size_t)fuzz_in[fuzz_pos] << 8 | fuzz_in[fuzz_pos + 1];
			fuzz_pos += 2;
			if (alen > fuzz_len - fuzz_pos)
				alen = fuzz_len - fuzz_pos;
			/* exact size: ASan sees any read past the answer */
			abuf = malloc(alen ? alen : 1);
			check(abuf != NULL);
			memcpy(abuf, fuzz_in + fuzz_pos, alen);
			fuzz_pos += alen;
			status = ARES_SUCCESS;
			(void)answer_min_ttl(abuf, (int)alen, q.type);
		}
	}
	q.cb(q.arg, status, 0, abuf, (int)alen);
	free(abuf);
}

/* got_result - the caller's side: what remote delivery relies on. */
static void got_result(struct mx_result *res, void *arg)
{
	const char *domain = arg;

	fuzz_results++;
	check(res != NULL);
	/* as asked, cut to the field's size */
	check(!strncmp(res->domain, domain, MX_NAME_MAX) && !res->domain[MX_NAME_MAX]);
	check(res->status <= MX_NOHOSTS && mx_status_name(res->status) != NULL);
	check((res->status == MX_OK) == (res->error == NULL));
	check(res->nhosts <= MX_HOSTS_MAX);
	check(res->status == MX_OK ? res->nhosts >= 1 : res->nhosts == 0);
	check(!res->literal || domain[0] == '[');
	for (size_t i = 0; i < res->nhosts; i++) {
		const struct mx_host *h = &res->hosts[i];
		check(strnlen(h->name, sizeof h->name) < sizeof h->name && h->name[0]);
		check(i == 0 || res->hosts[i - 1].preference <= h->preference);
		check(h->naddrs >= 1 && h->naddrs <= 2 * MX_ADDRS_PER_FAMILY);
		size_t v4 = 0, v6 = 0;
		for (size_t a = 0; a < h->naddrs; a++) {
			const struct mx_addr *ad = &h->addrs[a];
			if (ad->u.sa.sa_family == AF_INET) {
				check(v6 == 0); /* IPv4 first */
				check(ad->len == sizeof ad->u.sin && ad->u.sin.sin_port == 0);
				v4++;
			} else {
				check(ad->u.sa.sa_family == AF_INET6);
				check(ad->len == sizeof ad->u.sin6 && ad->u.sin6.sin6_port == 0);
				v6++;
			}
		}
		check(v4 <= MX_ADDRS_PER_FAMILY && v6 <= MX_ADDRS_PER_FAMILY);
	}
	mx_result_free(&res);
	check(res == NULL);
}

/* resolve - one mx_resolve of DOMAIN, its queries answered from the
 * input, its result taken from the loop. */
static void resolve(const char *domain)
{
	fuzz_results = 0;
	check(mx_resolve(fuzz_resolver, domain, got_result, (void *)domain) == 0);
	while (fuzz_head != fuzz_tail) {
		check(fuzz_results == 0); /* not before every query is answered */
		answer_next();
	}
	check(fuzz_results == 0); /* never from inside mx_resolve or c-ares */
	for (int i = 0; i < 100 && fuzz_results == 0; i++)
		event_base_loop(fuzz_base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	check(fuzz_results == 1); /* exactly once */
	check(fuzz_resolver->lookups == NULL);
}

static void cache_clear(void)
{
	for (size_t i = 0; i < MX_CACHE_SLOTS; i++) {
		free(fuzz_resolver->cache[i].res);
		fuzz_resolver->cache[i].res = NULL;
	}
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct mx_config cfg = {.timeout_ms = 100, .tries = 1};
	char err[256];

	(void)argc;
	(void)argv;
	fuzz_base = event_base_new();
	check(fuzz_base != NULL);
	fuzz_resolver = mx_resolver_new(fuzz_base, &cfg, err, sizeof err);
	check(fuzz_resolver != NULL);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > FUZZ_INPUT_MAX)
		return 0;
	const uint8_t *nul = memchr(data, '\0', size);
	size_t dlen = nul ? (size_t)(nul - data) : size;
	char *domain = malloc(dlen + 1);
	check(domain != NULL);
	memcpy(domain, data, dlen);
	domain[dlen] = '\0';
	fuzz_in = data;
	fuzz_len = size;
	fuzz_pos = nul ? dlen + 1 : size;
	fuzz_head = fuzz_tail = 0;

	resolve(domain);
	resolve(domain); /* again: from the cache when the first was kept */
	cache_clear();
	free(domain);
	return 0;
}
