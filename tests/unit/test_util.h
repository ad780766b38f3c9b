/*
 * test_util.h -- small helpers shared by the unit tests of the core:
 * cmocka includes, double and int64 comparisons that print both values,
 * and the fixed instants the tests use as virtual time.
 */
#ifndef WU_TEST_UTIL_H
#define WU_TEST_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <math.h>
#include <string.h>

#include "wu.h"

/* 2026-12-01T00:00 in Asia/Tokyo, i.e. 2026-11-30T15:00Z. */
#define T_TOKYO_20261201 (INT64_C(1796050800) * WU_USEC)
/* 2026-12-01 as days since 1970-01-01. */
#define D_20261201 20788

/* |a - b| <= eps, printing both values on failure. */
#define assert_near(a, b, eps)                                                                     \
	do {                                                                                       \
		double a_ = (double)(a), b_ = (double)(b), e_ = (double)(eps);                     \
		if (!(fabs(a_ - b_) <= e_)) {                                                      \
			print_error("%s = %.12g, expected %.12g +- %g\n", #a, a_, b_, e_);         \
			fail();                                                                    \
		}                                                                                  \
	} while (0)

/* Signed 64-bit equality and range, printing decimal values. */
#define assert_i64_eq(a, b)                                                                        \
	do {                                                                                       \
		int64_t a_ = (int64_t)(a), b_ = (int64_t)(b);                                      \
		if (a_ != b_) {                                                                    \
			print_error("%s = %" PRId64 ", expected %" PRId64 "\n", #a, a_, b_);       \
			fail();                                                                    \
		}                                                                                  \
	} while (0)

#define assert_i64_range(a, lo, hi)                                                                \
	do {                                                                                       \
		int64_t a_ = (int64_t)(a), l_ = (int64_t)(lo), h_ = (int64_t)(hi);                 \
		if (a_ < l_ || a_ > h_) {                                                          \
			print_error("%s = %" PRId64 ", expected in [%" PRId64 ", %" PRId64 "]\n",  \
			            #a, a_, l_, h_);                                               \
			fail();                                                                    \
		}                                                                                  \
	} while (0)

/* err holds a message that contains needle. */
#define assert_err_has(err, needle)                                                                \
	do {                                                                                       \
		if (strstr((err), (needle)) == NULL) {                                             \
			print_error("error \"%s\" does not contain \"%s\"\n", (err), (needle));    \
			fail();                                                                    \
		}                                                                                  \
	} while (0)

#endif
