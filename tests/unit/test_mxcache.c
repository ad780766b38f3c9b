/*
 * test_mxcache.c -- the MX answers' cache: asking once, the record's TTL,
 * serving an expired answer while it is asked again, negative and failed
 * answers, lost queries, and the bound on its size.  Time is passed in.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "isp.h"
#include "mxcache.h"

#define T0 ((wu_time_t)1764547200 * WU_USEC) /* 2025-12-01T00:00:00Z */
#define S  WU_USEC

static struct wu_mxcache *C;

static int setup(void **state)
{
	(void)state;
	return wu_mxcache_create(&C, 3);
}

static int teardown(void **state)
{
	(void)state;
	wu_mxcache_free(C);
	C = NULL;
	return 0;
}

/* The bits of get, with its group and query start. */
static int get(const char *d, wu_time_t now, int *isp, wu_time_t *asked)
{
	int i;
	wu_time_t a;

	return wu_mxcache_get(C, d, now, isp ? isp : &i, asked ? asked : &a);
}

static void test_ask_once_then_answer(void **state)
{
	int isp;
	wu_time_t asked;

	(void)state;
	assert_int_equal(get("acme.co.jp", T0, &isp, &asked), WU_MX_ASK);
	assert_int_equal(isp, WU_ISP_OTHER);
	assert_int_equal(wu_mxcache_asked(C, "acme.co.jp", T0), 0);
	/* Running: nobody asks again, nothing known yet. */
	assert_int_equal(get("ACME.co.jp.", T0 + S, &isp, &asked), 0);
	assert_true(asked == T0);
	/* The record's TTL (300 s) sets the expiry. */
	assert_int_equal(wu_mxcache_put(C, "acme.co.jp", 1, wu_mxcache_expiry(T0 + S, 300)), 0);
	assert_int_equal(get("acme.co.jp", T0 + 2 * S, &isp, &asked), WU_MX_KNOWN);
	assert_int_equal(isp, 1);
	assert_true(asked == 0);
	assert_int_equal(get("acme.co.jp", T0 + 300 * S, &isp, NULL), WU_MX_KNOWN);
	/* Expired: the answer still serves while it is asked again. */
	assert_int_equal(get("acme.co.jp", T0 + 301 * S, &isp, NULL), WU_MX_KNOWN | WU_MX_ASK);
	assert_int_equal(isp, 1);
	assert_int_equal(wu_mxcache_asked(C, "acme.co.jp", T0 + 301 * S), 0);
	assert_int_equal(get("acme.co.jp", T0 + 302 * S, &isp, &asked), WU_MX_KNOWN);
	assert_true(asked == T0 + 301 * S);
	assert_int_equal(wu_mxcache_size(C), 1);
}

static void test_ttl_bounds(void **state)
{
	(void)state;
	assert_true(wu_mxcache_expiry(T0, 300) == T0 + 300 * S);
	assert_true(wu_mxcache_expiry(T0, 0) == T0 + WU_MX_TTL_MIN);
	assert_true(wu_mxcache_expiry(T0, 5) == T0 + WU_MX_TTL_MIN);
	assert_true(wu_mxcache_expiry(T0, -1) == T0 + WU_MX_TTL_MIN);
	assert_true(wu_mxcache_expiry(T0, 86400) == T0 + WU_DAY);
	assert_true(wu_mxcache_expiry(T0, INT64_C(1) << 40) == T0 + WU_MX_TTL_MAX);
}

/* NXDOMAIN is an answer (other, for WU_MX_NEGATIVE); a failed query keeps
 * what was known and is asked again after WU_MX_FAILED. */
static void test_negative_and_failed(void **state)
{
	int isp;

	(void)state;
	assert_int_equal(wu_mxcache_asked(C, "gone.example", T0), 0);
	assert_int_equal(wu_mxcache_put(C, "gone.example", WU_ISP_OTHER, T0 + WU_MX_NEGATIVE), 0);
	assert_int_equal(get("gone.example", T0 + WU_MX_NEGATIVE - 1, &isp, NULL), WU_MX_KNOWN);
	assert_int_equal(isp, WU_ISP_OTHER);
	assert_int_equal(get("gone.example", T0 + WU_MX_NEGATIVE, NULL, NULL),
	                 WU_MX_KNOWN | WU_MX_ASK);

	/* A dead server: other, not asked again for a minute. */
	assert_int_equal(wu_mxcache_asked(C, "dead.example", T0), 0);
	assert_int_equal(wu_mxcache_failed(C, "dead.example", T0 + 3 * S), 0);
	assert_int_equal(get("dead.example", T0 + 4 * S, &isp, NULL), WU_MX_KNOWN);
	assert_int_equal(isp, WU_ISP_OTHER);
	assert_int_equal(get("dead.example", T0 + 3 * S + WU_MX_FAILED, NULL, NULL),
	                 WU_MX_KNOWN | WU_MX_ASK);

	/* A refresh that fails keeps google. */
	assert_int_equal(wu_mxcache_put(C, "acme.co.jp", 1, wu_mxcache_expiry(T0, 60)), 0);
	assert_int_equal(wu_mxcache_asked(C, "acme.co.jp", T0 + 61 * S), 0);
	assert_int_equal(wu_mxcache_failed(C, "acme.co.jp", T0 + 62 * S), 0);
	assert_int_equal(get("acme.co.jp", T0 + 63 * S, &isp, NULL), WU_MX_KNOWN);
	assert_int_equal(isp, 1);
}

/* A query that never called back stops holding anyone after QUERY_MAX. */
static void test_lost_query(void **state)
{
	wu_time_t asked;

	(void)state;
	assert_int_equal(wu_mxcache_asked(C, "slow.example", T0), 0);
	assert_int_equal(get("slow.example", T0 + WU_MX_QUERY_MAX - 1, NULL, &asked), 0);
	assert_int_equal(get("slow.example", T0 + WU_MX_QUERY_MAX, NULL, &asked), WU_MX_ASK);
	assert_true(asked == 0);
}

/* At most 3 domains: the one put in longest ago goes, a refresh keeps its
 * slot's age. */
static void test_bounded(void **state)
{
	int isp;

	(void)state;
	assert_int_equal(wu_mxcache_put(C, "a.example", 1, T0 + WU_DAY), 0);
	assert_int_equal(wu_mxcache_put(C, "b.example", 2, T0 + WU_DAY), 0);
	assert_int_equal(wu_mxcache_put(C, "c.example", 3, T0 + WU_DAY), 0);
	assert_int_equal(wu_mxcache_put(C, "d.example", 4, T0 + WU_DAY), 0);
	assert_int_equal(wu_mxcache_size(C), 3);
	assert_int_equal(get("a.example", T0, &isp, NULL), WU_MX_ASK);
	assert_int_equal(get("b.example", T0, &isp, NULL), WU_MX_KNOWN);
	assert_int_equal(isp, 2);
	assert_int_equal(wu_mxcache_put(C, "b.example", 5, T0 + WU_DAY), 0);
	assert_int_equal(wu_mxcache_put(C, "e.example", 6, T0 + WU_DAY), 0);
	assert_int_equal(get("b.example", T0, NULL, NULL), WU_MX_ASK);
	for (int i = 0; i < 1000; i++) {
		char d[32];
		snprintf(d, sizeof d, "n%d.example", i);
		assert_int_equal(wu_mxcache_put(C, d, i % 7, T0 + WU_DAY), 0);
		assert_int_equal(get(d, T0, &isp, NULL), WU_MX_KNOWN);
		assert_int_equal(isp, i % 7);
	}
	assert_int_equal(wu_mxcache_size(C), 3);
	assert_int_equal(get("n997.example", T0, &isp, NULL), WU_MX_KNOWN);
	assert_int_equal(isp, 997 % 7);
}

static void test_odd_names(void **state)
{
	char longname[300];

	(void)state;
	memset(longname, 'a', 260);
	longname[260] = '\0';
	assert_int_equal(get("", T0, NULL, NULL), 0);
	assert_int_equal(get(".", T0, NULL, NULL), 0);
	assert_int_equal(get(longname, T0, NULL, NULL), 0);
	assert_int_equal(wu_mxcache_asked(C, longname, T0), -1);
	assert_int_equal(wu_mxcache_put(C, "", 1, T0), -1);
	wu_mxcache_free(NULL);
}

/* The name decides first; then the cache; then other.  No cache: by name. */
static void test_group(void **state)
{
	struct wu_isp_table t;
	int bits;
	wu_time_t asked;

	(void)state;
	assert_int_equal(wu_isp_table_init(&t), 0);
	int g = wu_isp_find(&t, "google"), ms = wu_isp_find(&t, "microsoft");
	assert_int_equal(wu_mxcache_put(C, "acme.co.jp", g, T0 + WU_DAY), 0);
	assert_int_equal(wu_mxcache_put(C, "gmail.com", ms, T0 + WU_DAY), 0); /* never read */
	assert_int_equal(wu_mxcache_group(C, &t, "u@ACME.co.jp", T0, &bits, &asked), g);
	assert_int_equal(bits, WU_MX_KNOWN);
	assert_int_equal(wu_mxcache_group(C, &t, "gmail.com", T0, &bits, &asked), g);
	assert_int_equal(bits, 0);
	assert_int_equal(wu_mxcache_group(C, &t, "new.co.jp", T0, &bits, &asked), WU_ISP_OTHER);
	assert_int_equal(bits, WU_MX_ASK);
	assert_int_equal(wu_mxcache_group(NULL, &t, "acme.co.jp", T0, &bits, &asked), WU_ISP_OTHER);
	assert_int_equal(bits, 0);
	wu_isp_table_free(&t);
}

#define T_(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T_(test_ask_once_then_answer),
	    T_(test_ttl_bounds),
	    T_(test_negative_and_failed),
	    T_(test_lost_query),
	    T_(test_bounded),
	    T_(test_odd_names),
	    T_(test_group),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
