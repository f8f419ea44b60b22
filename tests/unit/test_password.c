/* test_password.c - Argon2id hashes: what is stored verifies, nothing else does. */
#include <string.h>

#include "auth/password.h"
#include "check.h"

static void test_hash_verifies_its_password(void)
{
	char h[PASSWORD_HASH_MAX];
	CHECK(password_hash("correct horse", 13, h) == 0);
	CHECK(strncmp(h, "$argon2id$", 10) == 0);
	CHECK(strlen(h) < PASSWORD_HASH_MAX);
	CHECK(password_verify(h, "correct horse", 13) == 1);
}

static void test_wrong_password_fails(void)
{
	char h[PASSWORD_HASH_MAX];
	CHECK(password_hash("secret", 6, h) == 0);
	CHECK(password_verify(h, "Secret", 6) == 0);
	CHECK(password_verify(h, "secret ", 7) == 0);
	CHECK(password_verify(h, "secre", 5) == 0);
	CHECK(password_verify(h, "", 0) == 0);
}

static void test_length_is_the_password(void)
{
	/* The length given is what is hashed, not up to a NUL. */
	char h[PASSWORD_HASH_MAX];
	CHECK(password_hash("secretXYZ", 6, h) == 0);
	CHECK(password_verify(h, "secret", 6) == 1);
	CHECK(password_verify(h, "secretXYZ", 9) == 0);
	CHECK(password_hash("a\0b", 3, h) == 0);
	CHECK(password_verify(h, "a\0b", 3) == 1);
	CHECK(password_verify(h, "a", 1) == 0);
}

static void test_salt_differs_each_time(void)
{
	char a[PASSWORD_HASH_MAX], b[PASSWORD_HASH_MAX];
	CHECK(password_hash("same", 4, a) == 0);
	CHECK(password_hash("same", 4, b) == 0);
	CHECK(strcmp(a, b) != 0);
	CHECK(password_verify(a, "same", 4) == 1);
	CHECK(password_verify(b, "same", 4) == 1);
}

static void test_bad_hashes_never_match(void)
{
	char unterminated[PASSWORD_HASH_MAX];
	memset(unterminated, 'x', sizeof unterminated);
	CHECK(password_verify(unterminated, "x", 1) == 0);
	CHECK(password_verify("", "", 0) == 0);
	CHECK(password_verify("secret", "secret", 6) == 0); /* a plain text "hash" */
	CHECK(password_verify("$argon2id$v=19$m=65536,t=2,p=1$garbage", "x", 1) == 0);
	CHECK(password_verify(NULL, "x", 1) == 0);
}

static void test_empty_password_hashes(void)
{
	/* Refusing empty passwords is ternctl's policy; the hash works. */
	char h[PASSWORD_HASH_MAX];
	CHECK(password_hash("", 0, h) == 0);
	CHECK(password_verify(h, "", 0) == 1);
	CHECK(password_verify(h, "x", 1) == 0);
}

int main(void)
{
	RUN(test_hash_verifies_its_password);
	RUN(test_wrong_password_fails);
	RUN(test_length_is_the_password);
	RUN(test_salt_differs_each_time);
	RUN(test_bad_hashes_never_match);
	RUN(test_empty_password_hashes);
	return check_summary();
}
