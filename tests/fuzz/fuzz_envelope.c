/* fuzz_envelope.c - libFuzzer target for the spool's envelope text
 * (spool/envelope.c; the format of docs/design/spool.md).
 *
 * The input is the head of a spool file as a damaged or hostile disk could
 * hold it: the lines before the blank line.  envelope_parse reads it; when
 * it is accepted, envelope_format writes it back and envelope_parse must
 * read the same envelope again, and that second text must be byte for byte
 * the first (the spool rewrites envelopes on every delivery attempt; a
 * field that drifts on a round trip is a field that decays on disk).  A
 * refusal must set errno (EINVAL or ENOMEM) and leave nothing allocated
 * (LeakSanitizer). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "spool/envelope.h"

#define FUZZ_INPUT_MAX (256 * 1024)

#define check(cond)                                                                                \
	do {                                                                                       \
		if (!(cond))                                                                       \
			abort();                                                                   \
	} while (0)

/* same_str - both NULL, or both equal strings. */
static int same_str(const char *a, const char *b)
{
	return (!a && !b) || (a && b && !strcmp(a, b));
}

static void check_same(const struct envelope *a, const struct envelope *b)
{
	check(!strcmp(a->id, b->id) && same_str(a->sender, b->sender));
	check(same_str(a->envid, b->envid) && same_str(a->auth_user, b->auth_user));
	check(same_str(a->client_addr, b->client_addr) && same_str(a->helo, b->helo));
	check(a->ret == b->ret && a->body_8bit == b->body_8bit && a->smtputf8 == b->smtputf8);
	check(a->received == b->received && a->size == b->size);
	check(a->held == b->held && a->delay_warned == b->delay_warned);
	check(a->passes == b->passes && a->dsn_pass == b->dsn_pass && !strcmp(a->dsn_of, b->dsn_of));
	check(a->nrcpts == b->nrcpts);
	for (size_t i = 0; i < a->nrcpts; i++) {
		const struct envelope_rcpt *x = &a->rcpts[i], *y = &b->rcpts[i];
		check(same_str(x->address, y->address) && same_str(x->orcpt, y->orcpt));
		check(same_str(x->last_reply, y->last_reply));
		check(x->notify == y->notify && x->state == y->state);
		check(x->attempts == y->attempts && x->next_attempt == y->next_attempt);
	}
}

/* check_parsed - what the queue relies on in an envelope read back. */
static void check_parsed(const struct envelope *env)
{
	size_t idlen = strnlen(env->id, sizeof env->id);
	check(idlen > 0 && idlen < sizeof env->id && env->sender);
	for (size_t i = 0; i < idlen; i++) {
		char c = env->id[i];
		check((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'));
	}
	check(env->nrcpts == 0 || env->rcpts);
	for (size_t i = 0; i < env->nrcpts; i++) {
		enum rcpt_state s = env->rcpts[i].state;
		check(env->rcpts[i].address);
		check(s == RCPT_QUEUED || s == RCPT_DELIVERED || s == RCPT_BOUNCED);
	}
}

/* round_trip - format ENV, parse it back, compare; returns the text. */
static char *round_trip(const struct envelope *env, size_t *len)
{
	struct envelope again;
	char *text = NULL;

	check(envelope_format(env, &text, len) == 0 && text);
	/* the text ends with the blank line, which the parser does not get */
	check(*len >= 2 && text[*len - 1] == '\n' && text[*len - 2] == '\n');
	check(!memchr(text, '\0', *len) && !memchr(text, '\r', *len));
	check(envelope_parse(text, *len - 1, &again) == 0);
	check_same(env, &again);

	/* a deep copy is the same envelope too */
	struct envelope copy;
	check(envelope_copy(&copy, &again) == 0);
	check_same(&again, &copy);
	envelope_free(&copy);
	envelope_free(&again);
	return text;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct envelope env;

	if (size > FUZZ_INPUT_MAX)
		return 0;
	char *in = malloc(size ? size : 1); /* exact size: ASan sees reads past the end */
	if (!in)
		return 0;
	memcpy(in, data, size);
	errno = 0;
	memset(&env, 0x5a, sizeof env); /* envelope_parse takes it uninitialised */
	if (envelope_parse(in, size, &env) < 0) {
		check(errno == EINVAL || errno == ENOMEM);
		check(env.nrcpts == 0 && !env.rcpts && !env.sender); /* left empty */
		envelope_free(&env);
		free(in);
		return 0;
	}
	check_parsed(&env);
	size_t len1, len2;
	char *text1 = round_trip(&env, &len1);
	struct envelope second;
	check(envelope_parse(text1, len1 - 1, &second) == 0);
	char *text2 = round_trip(&second, &len2);
	check(len1 == len2 && !memcmp(text1, text2, len1));
	envelope_free(&second);
	envelope_free(&env);
	free(text1);
	free(text2);
	free(in);
	return 0;
}
