/* envelope.c - a message's envelope in memory and in the spool's text form.
 *
 * The text form (docs/design/spool.md) is one "key value" line per field
 * after a version line.  Every value is escaped: '%', the C0 controls and
 * DEL become %XX, so an address, ENVID or reply text received from the
 * network can never add a line, end the envelope early or hide a NUL.
 * Bytes >= 0x80 (RFC 6531 UTF-8 addresses) are kept as they are.  The
 * values themselves come from RFC 5321 (MAIL/RCPT paths) and RFC 3461
 * (ENVID, ORCPT, NOTIFY, RET). */
#include "spool/envelope.h"

#include <errno.h>
#include <limits.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/hex.h"

#define SPOOL_VERSION_LINE "tern-spool 1"

void envelope_init(struct envelope *env)
{
	memset(env, 0, sizeof *env);
}

/* dup_or_null - strdup that keeps NULL; *FAILED set when allocation fails. */
static char *dup_or_null(const char *s, int *failed)
{
	if (!s)
		return NULL;
	char *d = strdup(s);
	if (!d)
		*failed = 1;
	return d;
}

/* grow_rcpts - room for one more recipient.  The array is exactly nrcpts
 * long (no hidden capacity), so an envelope built by hand stays valid;
 * realloc usually grows in place and recipients are at most thousands. */
static int grow_rcpts(struct envelope *env)
{
	if (env->nrcpts >= SIZE_MAX / sizeof *env->rcpts - 1) {
		errno = ENOMEM;
		return -1;
	}
	struct envelope_rcpt *r = realloc(env->rcpts, (env->nrcpts + 1) * sizeof *r);
	if (!r)
		return -1;
	env->rcpts = r;
	return 0;
}

int envelope_add_rcpt(struct envelope *env, const char *address, const char *orcpt, unsigned notify)
{
	if (grow_rcpts(env) < 0)
		return -1;
	int failed = 0;
	struct envelope_rcpt r = {0};
	r.address = dup_or_null(address ? address : "", &failed);
	r.orcpt = dup_or_null(orcpt, &failed);
	r.notify = notify;
	r.state = RCPT_QUEUED;
	if (failed) {
		free(r.address);
		free(r.orcpt);
		errno = ENOMEM;
		return -1;
	}
	env->rcpts[env->nrcpts++] = r;
	return 0;
}

static void rcpt_free(struct envelope_rcpt *r)
{
	free(r->address);
	free(r->orcpt);
	free(r->last_reply);
	free(r->remote_mta);
}

void envelope_free(struct envelope *env)
{
	for (size_t i = 0; i < env->nrcpts; i++)
		rcpt_free(&env->rcpts[i]);
	free(env->rcpts);
	free(env->sender);
	free(env->envid);
	free(env->auth_user);
	free(env->client_addr);
	free(env->helo);
	envelope_init(env);
}

int envelope_set_reply(struct envelope_rcpt *rcpt, const char *reply)
{
	int failed = 0;
	char *d = dup_or_null(reply, &failed);
	if (failed) {
		errno = ENOMEM;
		return -1;
	}
	free(rcpt->last_reply);
	rcpt->last_reply = d;
	return 0;
}

int envelope_set_mta(struct envelope_rcpt *rcpt, const char *mta)
{
	int failed = 0;
	char *d = dup_or_null(mta, &failed);
	if (failed) {
		errno = ENOMEM;
		return -1;
	}
	free(rcpt->remote_mta);
	rcpt->remote_mta = d;
	return 0;
}

int envelope_copy(struct envelope *dst, const struct envelope *src)
{
	int failed = 0;
	envelope_init(dst);
	memcpy(dst->id, src->id, sizeof dst->id);
	dst->id[sizeof dst->id - 1] = '\0';
	dst->sender = dup_or_null(src->sender, &failed);
	dst->envid = dup_or_null(src->envid, &failed);
	dst->ret = src->ret;
	dst->body_8bit = src->body_8bit;
	dst->smtputf8 = src->smtputf8;
	dst->auth_user = dup_or_null(src->auth_user, &failed);
	dst->client_addr = dup_or_null(src->client_addr, &failed);
	dst->helo = dup_or_null(src->helo, &failed);
	dst->received = src->received;
	dst->size = src->size;
	dst->held = src->held;
	dst->delay_warned = src->delay_warned;
	dst->passes = src->passes;
	memcpy(dst->dsn_of, src->dsn_of, sizeof dst->dsn_of);
	dst->dsn_pass = src->dsn_pass;
	for (size_t i = 0; i < src->nrcpts && !failed; i++) {
		const struct envelope_rcpt *s = &src->rcpts[i];
		if (envelope_add_rcpt(dst, s->address, s->orcpt, s->notify) < 0) {
			failed = 1;
			break;
		}
		struct envelope_rcpt *d = &dst->rcpts[dst->nrcpts - 1];
		d->state = s->state;
		d->attempts = s->attempts;
		d->next_attempt = s->next_attempt;
		d->last_attempt = s->last_attempt;
		if (envelope_set_reply(d, s->last_reply) < 0 ||
		    envelope_set_mta(d, s->remote_mta) < 0)
			failed = 1;
	}
	if (failed) {
		envelope_free(dst);
		errno = ENOMEM;
		return -1;
	}
	return 0;
}

/* ---- text form: writing ---- */

/* A growable byte string; on allocation failure it remembers the failure
 * and ignores further appends, so callers check once at the end. */
struct text {
	char *buf;
	size_t len, cap;
	int failed;
};

static void text_reserve(struct text *t, size_t more)
{
	if (t->failed)
		return;
	if (more > SIZE_MAX / 2 - t->len) {
		t->failed = 1;
		return;
	}
	if (t->len + more <= t->cap)
		return;
	size_t ncap = t->cap ? t->cap : 256;
	while (ncap < t->len + more)
		ncap *= 2;
	char *n = realloc(t->buf, ncap);
	if (!n) {
		t->failed = 1;
		return;
	}
	t->buf = n;
	t->cap = ncap;
}

static void text_add(struct text *t, const char *s, size_t n)
{
	text_reserve(t, n);
	if (t->failed)
		return;
	memcpy(t->buf + t->len, s, n);
	t->len += n;
}

/* text_num - "KEY N\n" */
static void text_num(struct text *t, const char *key, long long v)
{
	char line[96];
	int n = snprintf(line, sizeof line, "%s %lld\n", key, v);
	text_add(t, line, (size_t)n);
}

/* needs_escape - the bytes that could break a line-based format. */
static int needs_escape(unsigned char c)
{
	return c < 0x20 || c == 0x7f || c == '%';
}

/* text_str - "KEY VALUE\n" with VALUE escaped; nothing when VALUE is NULL
 * (absent and empty are different: the null reverse path is ""). */
static void text_str(struct text *t, const char *key, const char *value)
{
	static const char hex[] = "0123456789ABCDEF";
	if (!value)
		return;
	text_add(t, key, strlen(key));
	text_add(t, " ", 1);
	for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
		if (needs_escape(*p)) {
			char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};
			text_add(t, e, 3);
		} else {
			text_add(t, (const char *)p, 1);
		}
	}
	text_add(t, "\n", 1);
}

static const char *state_name(enum rcpt_state s)
{
	switch (s) {
	case RCPT_QUEUED:
		return "queued";
	case RCPT_DELIVERED:
		return "delivered";
	case RCPT_BOUNCED:
		return "bounced";
	}
	return "queued";
}

int envelope_format(const struct envelope *env, char **out, size_t *len)
{
	struct text t = {0};
	text_add(&t, SPOOL_VERSION_LINE "\n", sizeof SPOOL_VERSION_LINE);
	text_str(&t, "id", env->id);
	text_num(&t, "received", (long long)env->received);
	text_num(&t, "size", (long long)env->size);
	text_str(&t, "sender", env->sender ? env->sender : "");
	text_str(&t, "envid", env->envid);
	text_num(&t, "ret", env->ret);
	text_num(&t, "body-8bit", env->body_8bit);
	text_num(&t, "smtputf8", env->smtputf8);
	text_str(&t, "auth-user", env->auth_user);
	text_str(&t, "client-addr", env->client_addr);
	text_str(&t, "helo", env->helo);
	/* Written only when set, so the files of a message never held or
	 * warned read the same as before these fields existed. */
	if (env->held)
		text_num(&t, "held", env->held);
	if (env->delay_warned)
		text_num(&t, "delay-warned", env->delay_warned);
	if (env->passes)
		text_num(&t, "passes", env->passes);
	if (env->dsn_of[0])
		text_str(&t, "dsn-of", env->dsn_of);
	if (env->dsn_pass)
		text_num(&t, "dsn-pass", env->dsn_pass);
	for (size_t i = 0; i < env->nrcpts; i++) {
		const struct envelope_rcpt *r = &env->rcpts[i];
		/* "rcpt" opens a recipient; the "rcpt-" lines after it are its
		 * fields. */
		text_str(&t, "rcpt", r->address ? r->address : "");
		text_str(&t, "rcpt-orcpt", r->orcpt);
		text_num(&t, "rcpt-notify", r->notify);
		text_str(&t, "rcpt-state", state_name(r->state));
		text_num(&t, "rcpt-attempts", r->attempts);
		text_num(&t, "rcpt-next-attempt", (long long)r->next_attempt);
		text_str(&t, "rcpt-last-reply", r->last_reply);
		text_str(&t, "rcpt-remote-mta", r->remote_mta);
		if (r->last_attempt)
			text_num(&t, "rcpt-last-attempt", (long long)r->last_attempt);
	}
	text_add(&t, "\n", 1);
	if (t.failed) {
		free(t.buf);
		errno = ENOMEM;
		return -1;
	}
	*out = t.buf;
	*len = t.len;
	return 0;
}

/* ---- text form: reading ---- */

/* unescape - a malloc'ed copy of V (N bytes) with %XX decoded.  A bare '%',
 * a bad hex digit, %00 or a raw control byte is corruption: NULL, EINVAL. */
static char *unescape(const char *v, size_t n)
{
	char *out = malloc(n + 1);
	if (!out)
		return NULL;
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)v[i];
		if (c == '%') {
			int hi = i + 2 < n ? hex_value((unsigned char)v[i + 1]) : -1;
			int lo = i + 2 < n ? hex_value((unsigned char)v[i + 2]) : -1;
			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
				free(out);
				errno = EINVAL;
				return NULL;
			}
			out[o++] = (char)(hi << 4 | lo);
			i += 2;
		} else if (c < 0x20 || c == 0x7f) {
			free(out);
			errno = EINVAL;
			return NULL;
		} else {
			out[o++] = (char)c;
		}
	}
	out[o] = '\0';
	return out;
}

/* parse_num - V (N bytes) as a decimal integer in [MIN, MAX]. */
static int parse_num(const char *v, size_t n, long long min, long long max, long long *out)
{
	char buf[32];
	if (n == 0 || n >= sizeof buf) {
		errno = EINVAL;
		return -1;
	}
	memcpy(buf, v, n);
	buf[n] = '\0';
	for (size_t i = 0; i < n; i++)
		if (!(buf[i] >= '0' && buf[i] <= '9') && !(i == 0 && buf[i] == '-' && n > 1)) {
			errno = EINVAL;
			return -1;
		}
	errno = 0;
	char *end;
	long long x = strtoll(buf, &end, 10);
	if (errno || *end || x < min || x > max) {
		errno = EINVAL;
		return -1;
	}
	*out = x;
	return 0;
}

/* parse_flag - a small non-negative int field (RET, BODY, SMTPUTF8). */
static int parse_flag(const char *v, size_t n, int *out)
{
	long long x;
	if (parse_num(v, n, 0, INT32_MAX, &x) < 0)
		return -1;
	*out = (int)x;
	return 0;
}

/* set_str - *DST becomes the unescaped V (a repeated key: the last wins). */
static int set_str(char **dst, const char *v, size_t n)
{
	char *s = unescape(v, n);
	if (!s)
		return -1;
	free(*dst);
	*dst = s;
	return 0;
}

static int key_is(const char *key, size_t klen, const char *name)
{
	return strlen(name) == klen && memcmp(key, name, klen) == 0;
}

/* valid_id - the queue id alphabet, [0-9A-Za-z]{1,31}: safe as a file name. */
static int valid_id(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n >= sizeof((struct envelope *)0)->id)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')))
			return 0;
	}
	return 1;
}

/* parse_rcpt_field - a "rcpt-" line for recipient R.  1 if KEY is not a
 * recipient key, 0 done, -1 error. */
static int parse_rcpt_field(struct envelope_rcpt *r, const char *key, size_t klen, const char *v,
			    size_t n)
{
	long long x;
	if (key_is(key, klen, "rcpt-orcpt"))
		return set_str(&r->orcpt, v, n);
	if (key_is(key, klen, "rcpt-last-reply"))
		return set_str(&r->last_reply, v, n);
	if (key_is(key, klen, "rcpt-remote-mta"))
		return set_str(&r->remote_mta, v, n);
	if (key_is(key, klen, "rcpt-notify")) {
		if (parse_num(v, n, 0, UINT32_MAX, &x) < 0)
			return -1;
		r->notify = (unsigned)x;
	} else if (key_is(key, klen, "rcpt-attempts")) {
		if (parse_num(v, n, 0, UINT32_MAX, &x) < 0)
			return -1;
		r->attempts = (unsigned)x;
	} else if (key_is(key, klen, "rcpt-next-attempt")) {
		if (parse_num(v, n, INT64_MIN, INT64_MAX, &x) < 0)
			return -1;
		r->next_attempt = (time_t)x;
	} else if (key_is(key, klen, "rcpt-last-attempt")) {
		if (parse_num(v, n, 0, INT64_MAX, &x) < 0)
			return -1;
		r->last_attempt = (time_t)x;
	} else if (key_is(key, klen, "rcpt-state")) {
		if (key_is(v, n, "queued"))
			r->state = RCPT_QUEUED;
		else if (key_is(v, n, "delivered"))
			r->state = RCPT_DELIVERED;
		else if (key_is(v, n, "bounced"))
			r->state = RCPT_BOUNCED;
		else
			return errno = EINVAL, -1;
	} else {
		return 1;
	}
	return 0;
}

/* parse_field - one "KEY VALUE" line into ENV. */
static int parse_field(struct envelope *env, const char *key, size_t klen, const char *v, size_t n)
{
	long long x;
	if (key_is(key, klen, "rcpt")) {
		char *addr = unescape(v, n);
		if (!addr)
			return -1;
		int rc = envelope_add_rcpt(env, addr, NULL, 0);
		free(addr);
		return rc;
	}
	if (klen > 5 && memcmp(key, "rcpt-", 5) == 0) {
		if (!env->nrcpts)
			return errno = EINVAL, -1; /* a field of no recipient */
		int rc = parse_rcpt_field(&env->rcpts[env->nrcpts - 1], key, klen, v, n);
		return rc > 0 ? 0 : rc; /* unknown recipient key: skipped */
	}
	if (key_is(key, klen, "id") || key_is(key, klen, "dsn-of")) {
		/* Both are queue ids; "dsn-of" names the message a report is about. */
		char *id = unescape(v, n);
		if (!id)
			return -1;
		int ok = valid_id(id);
		if (ok)
			memcpy(key_is(key, klen, "id") ? env->id : env->dsn_of, id, strlen(id) + 1);
		free(id);
		return ok ? 0 : (errno = EINVAL, -1);
	}
	if (key_is(key, klen, "sender"))
		return set_str(&env->sender, v, n);
	if (key_is(key, klen, "envid"))
		return set_str(&env->envid, v, n);
	if (key_is(key, klen, "auth-user"))
		return set_str(&env->auth_user, v, n);
	if (key_is(key, klen, "client-addr"))
		return set_str(&env->client_addr, v, n);
	if (key_is(key, klen, "helo"))
		return set_str(&env->helo, v, n);
	if (key_is(key, klen, "received")) {
		if (parse_num(v, n, 0, INT64_MAX, &x) < 0)
			return -1;
		env->received = (time_t)x;
	} else if (key_is(key, klen, "size")) {
		if (parse_num(v, n, 0, INT64_MAX, &x) < 0)
			return -1;
		env->size = (uint64_t)x;
	} else if (key_is(key, klen, "ret")) {
		return parse_flag(v, n, &env->ret);
	} else if (key_is(key, klen, "body-8bit")) {
		return parse_flag(v, n, &env->body_8bit);
	} else if (key_is(key, klen, "smtputf8")) {
		return parse_flag(v, n, &env->smtputf8);
	} else if (key_is(key, klen, "held")) {
		return parse_flag(v, n, &env->held);
	} else if (key_is(key, klen, "delay-warned")) {
		return parse_flag(v, n, &env->delay_warned);
	} else if (key_is(key, klen, "passes") || key_is(key, klen, "dsn-pass")) {
		if (parse_num(v, n, 0, UINT_MAX, &x) < 0)
			return -1;
		*(key_is(key, klen, "passes") ? &env->passes : &env->dsn_pass) = (unsigned)x;
	}
	/* Unknown keys are skipped: a later writer may add optional fields
	 * without a new version line (a change old readers must not ignore
	 * gets one). */
	return 0;
}

int envelope_parse(const char *text, size_t len, struct envelope *env)
{
	envelope_init(env);
	const char *p = text, *end = text + len;
	size_t lineno = 0;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *eol = nl ? nl : end;
		size_t n = (size_t)(eol - p);
		if (memchr(p, '\0', n) || memchr(p, '\r', n))
			goto bad;
		if (lineno++ == 0) {
			if (n != strlen(SPOOL_VERSION_LINE) || memcmp(p, SPOOL_VERSION_LINE, n))
				goto bad;
		} else {
			const char *sp = memchr(p, ' ', n);
			if (!sp || sp == p)
				goto bad;
			size_t klen = (size_t)(sp - p);
			if (parse_field(env, p, klen, sp + 1, n - klen - 1) < 0)
				goto fail;
		}
		p = nl ? nl + 1 : end;
	}
	if (!env->id[0] || !env->sender)
		goto bad;
	return 0;
bad:
	errno = EINVAL;
fail:;
	int saved = errno;
	envelope_free(env);
	errno = saved;
	return -1;
}
