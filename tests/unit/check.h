/* check.h - the unit tests' few macros.  Each test file is one program whose
 * main() calls RUN(test_fn) for every test and returns check_summary(). */
#ifndef TERN_TESTS_CHECK_H
#define TERN_TESTS_CHECK_H

#include <stdio.h>
#include <string.h>

static int check_failures, check_tests_failed, check_tests_passed;

#define CHECK(cond)                                                          \
	do {                                                                 \
		if (!(cond)) {                                               \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, \
				__LINE__, #cond);                            \
			check_failures++;                                    \
		}                                                            \
	} while (0)

#define CHECK_STR(a, b)                                                      \
	do {                                                                 \
		const char *check_a_ = (a), *check_b_ = (b);                 \
		if (!check_a_ || !check_b_ || strcmp(check_a_, check_b_)) { \
			fprintf(stderr, "%s:%d: \"%s\" != \"%s\"\n", __FILE__, \
				__LINE__, check_a_ ? check_a_ : "(null)",    \
				check_b_ ? check_b_ : "(null)");             \
			check_failures++;                                    \
		}                                                            \
	} while (0)

#define RUN(fn)                                                              \
	do {                                                                 \
		int check_before_ = check_failures;                          \
		fn();                                                        \
		if (check_failures == check_before_)                         \
			check_tests_passed++;                                \
		else {                                                       \
			check_tests_failed++;                                \
			fprintf(stderr, "FAIL %s\n", #fn);                   \
		}                                                            \
	} while (0)

/* Prints "<file>: N passed, N failed" for tests/unit/run.sh to add up. */
#define check_summary()                                                      \
	(printf("%s: %d passed, %d failed\n", __FILE__, check_tests_passed,  \
		check_tests_failed),                                         \
	 check_tests_failed ? 1 : 0)

#endif
