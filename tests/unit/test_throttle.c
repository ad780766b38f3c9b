/*
 * test_throttle.c -- per route x ISP limits: rate and burst, AIMD backoff
 * (halve on tempfail, floor, suspension, slow additive recovery), deferral
 * cuts with a hold, share limits and retry delays.
 */
#include "test_util.h"

#include "throttle.h"

#define T0 T_TOKYO_20261201

static struct wu_throttle_conf tc;
static struct wu_backoff_conf bc;

static int setup(void **state)
{
	(void)state;
	wu_throttle_conf_default(&tc);
	wu_backoff_conf_default(&bc);
	tc.rate = 10;
	tc.burst = 10;
	bc.cut = 0.5;
	bc.floor = 1.0 / 32;
	bc.step = 0.05;
	bc.suspend_after = 0;
	bc.suspend = 10 * WU_MINUTE;
	bc.retry_min = WU_MINUTE;
	bc.retry_max = WU_HOUR;
	return 0;
}

/* Messages the throttle lets through between from and to, trying every
 * 10 ms of virtual time. */
static int count_between(struct wu_throttle *t, wu_time_t from, wu_time_t to)
{
	int n = 0;
	for (wu_time_t now = from; now < to; now += 10000) {
		while (wu_throttle_ready(t, &tc, now)) {
			wu_throttle_take(t);
			n++;
		}
	}
	return n;
}

static void test_defaults(void **state)
{
	(void)state;
	struct wu_throttle_conf c;
	struct wu_backoff_conf b;

	wu_throttle_conf_default(&c);
	assert_near(c.rate, 0.0, 0.0);
	assert_true(c.share < 0);
	assert_true(c.share_count < 0);
	wu_backoff_conf_default(&b);
	assert_near(b.cut, 0.5, 1e-12);
	assert_near(b.floor, 1.0 / 32, 1e-12);
	assert_true(b.step > 0 && b.step < 0.5);
	assert_true(b.suspend_after >= 0);
	assert_true(b.retry_min > 0);
	assert_true(b.retry_max >= b.retry_min);
}

static void test_rate_and_burst(void **state)
{
	(void)state;
	struct wu_throttle t;

	wu_throttle_init(&t, &tc, T0);
	assert_near(t.factor, 1.0, 0.0);
	/* burst 10 at once, then 10/s: 10 + 50 in five seconds. */
	assert_in_range(count_between(&t, T0, T0 + 5 * WU_USEC), 59, 61);
}

static void test_default_burst_one_second(void **state)
{
	(void)state;
	struct wu_throttle t;

	tc.burst = 0; /* one second of rate */
	tc.rate = 4;
	wu_throttle_init(&t, &tc, T0);
	assert_int_equal(count_between(&t, T0, T0 + 1), 4);
	tc.rate = 0.1; /* at least one */
	wu_throttle_init(&t, &tc, T0);
	assert_int_equal(count_between(&t, T0, T0 + 1), 1);
}

static void test_no_limit(void **state)
{
	(void)state;
	struct wu_throttle t;

	tc.rate = 0;
	tc.burst = 0;
	wu_throttle_init(&t, &tc, T0);
	for (int i = 0; i < 100000; i++) {
		assert_true(wu_throttle_ready(&t, &tc, T0));
		wu_throttle_take(&t);
	}
	assert_i64_eq(wu_throttle_next(&t, T0), T0);
}

static void test_tempfail_halves_to_floor(void **state)
{
	(void)state;
	struct wu_throttle t;
	double want = 1.0;

	wu_throttle_init(&t, &tc, T0);
	for (int i = 0; i < 12; i++) {
		wu_throttle_tempfail(&t, &tc, &bc, T0 + i);
		want = want * 0.5 < bc.floor ? bc.floor : want * 0.5;
		assert_near(t.factor, want, 1e-12);
		assert_int_equal(t.fails, i + 1);
		assert_int_equal(t.suspended_until, 0); /* suspend_after = 0: never */
	}
	assert_near(t.factor, 1.0 / 32, 1e-12);
}

static void test_tempfail_slows_rate(void **state)
{
	(void)state;
	struct wu_throttle t;

	wu_throttle_init(&t, &tc, T0);
	count_between(&t, T0, T0 + 1); /* empty the bucket */
	wu_throttle_tempfail(&t, &tc, &bc, T0);
	/* 5/s now: about 50 in ten seconds, not 100. */
	assert_in_range(count_between(&t, T0 + 1, T0 + 10 * WU_USEC), 48, 52);
	wu_throttle_tempfail(&t, &tc, &bc, T0 + 10 * WU_USEC);
	assert_in_range(count_between(&t, T0 + 10 * WU_USEC, T0 + 20 * WU_USEC), 23, 27);
}

static void test_suspension(void **state)
{
	(void)state;
	struct wu_throttle t;
	wu_time_t at = T0 + WU_MINUTE;

	bc.suspend_after = 3;
	wu_throttle_init(&t, &tc, T0);
	wu_throttle_tempfail(&t, &tc, &bc, at - 2);
	wu_throttle_tempfail(&t, &tc, &bc, at - 1);
	assert_int_equal(t.suspended_until, 0);
	assert_true(wu_throttle_ready(&t, &tc, at - 1));
	wu_throttle_tempfail(&t, &tc, &bc, at);
	assert_i64_eq(t.suspended_until, at + 10 * WU_MINUTE);

	/* Suspended: nothing goes, even with tokens; next() is the end. */
	assert_false(wu_throttle_ready(&t, &tc, at));
	assert_false(wu_throttle_ready(&t, &tc, at + 10 * WU_MINUTE - 1));
	assert_i64_eq(wu_throttle_next(&t, at), at + 10 * WU_MINUTE);
	assert_i64_eq(wu_throttle_next(&t, at + 5 * WU_MINUTE), at + 10 * WU_MINUTE);
	assert_true(wu_throttle_ready(&t, &tc, at + 10 * WU_MINUTE));
}

static void test_success_resets_fail_streak(void **state)
{
	(void)state;
	struct wu_throttle t;

	bc.suspend_after = 3;
	wu_throttle_init(&t, &tc, T0);
	wu_throttle_tempfail(&t, &tc, &bc, T0);
	wu_throttle_tempfail(&t, &tc, &bc, T0);
	wu_throttle_success(&t, &tc, &bc, T0);
	assert_int_equal(t.fails, 0);
	wu_throttle_tempfail(&t, &tc, &bc, T0);
	wu_throttle_tempfail(&t, &tc, &bc, T0);
	/* Two in a row again, not four: not suspended. */
	assert_int_equal(t.suspended_until, 0);
	assert_true(wu_throttle_ready(&t, &tc, T0));
}

static void test_slow_recovery(void **state)
{
	(void)state;
	struct wu_throttle t;

	wu_throttle_init(&t, &tc, T0);
	for (int i = 0; i < 5; i++)
		wu_throttle_tempfail(&t, &tc, &bc, T0);
	assert_near(t.factor, 1.0 / 32, 1e-12);

	/* Each success gives back at most one step; never one jump to 1. */
	int n = 0;
	double prev = t.factor;
	while (t.factor < 1.0) {
		wu_throttle_success(&t, &tc, &bc, T0 + n);
		assert_true(t.factor > prev);
		assert_true(t.factor <= prev + bc.step + 1e-12);
		assert_true(t.factor <= 1.0);
		prev = t.factor;
		n++;
		assert_true(n <= 1000);
	}
	/* (1 - 1/32) / 0.05 = 19.4 steps. */
	assert_in_range(n, 19, 21);
	wu_throttle_success(&t, &tc, &bc, T0 + n);
	assert_near(t.factor, 1.0, 0.0);

	/* And the rate follows the factor back up to 10/s. */
	count_between(&t, T0 + WU_HOUR, T0 + WU_HOUR + 1);
	assert_in_range(count_between(&t, T0 + WU_HOUR + 1, T0 + WU_HOUR + 5 * WU_USEC), 48, 52);
}

static void test_cut_with_hold(void **state)
{
	(void)state;
	struct wu_throttle t;
	wu_time_t at = T0 + WU_MINUTE;

	wu_throttle_init(&t, &tc, T0);
	wu_throttle_cut(&t, &tc, &bc, 0.2, WU_HOUR, at);
	assert_near(t.factor, 0.2, 1e-12);
	assert_i64_eq(t.hold_until, at + WU_HOUR);
	for (int i = 0; i < 50; i++)
		wu_throttle_success(&t, &tc, &bc, at + i * WU_MINUTE / 2);
	assert_near(t.factor, 0.2, 1e-12);

	/* Held rate is 2/s. */
	count_between(&t, at, at + 1);
	assert_in_range(count_between(&t, at + 1, at + 10 * WU_USEC), 18, 22);

	/* After the hold, successes restore step by step. */
	wu_throttle_success(&t, &tc, &bc, at + WU_HOUR);
	assert_near(t.factor, 0.25, 1e-9);

	/* A cut never raises a lower factor. */
	wu_throttle_init(&t, &tc, T0);
	wu_throttle_tempfail(&t, &tc, &bc, T0);
	wu_throttle_tempfail(&t, &tc, &bc, T0);
	wu_throttle_tempfail(&t, &tc, &bc, T0); /* 0.125 */
	wu_throttle_cut(&t, &tc, &bc, 0.5, 10 * WU_MINUTE, T0);
	assert_near(t.factor, 0.125, 1e-12);
	wu_throttle_success(&t, &tc, &bc, T0 + WU_MINUTE);
	assert_near(t.factor, 0.125, 1e-12);

	/* Nor below the floor. */
	wu_throttle_init(&t, &tc, T0);
	wu_throttle_cut(&t, &tc, &bc, 0.001, WU_MINUTE, T0);
	assert_true(t.factor >= bc.floor - 1e-12);
	assert_true(t.factor <= 0.001 + 1e-12 || t.factor == bc.floor);
}

static void test_give_back(void **state)
{
	(void)state;
	struct wu_throttle t;

	tc.rate = 1;
	tc.burst = 1;
	wu_throttle_init(&t, &tc, T0);
	assert_true(wu_throttle_ready(&t, &tc, T0));
	wu_throttle_take(&t);
	assert_false(wu_throttle_ready(&t, &tc, T0));
	wu_time_t next = wu_throttle_next(&t, T0);
	assert_i64_range(next, T0 + WU_USEC - 2, T0 + WU_USEC + 2);
	wu_throttle_give(&t);
	assert_true(wu_throttle_ready(&t, &tc, T0));
}

static void test_share_limit(void **state)
{
	(void)state;
	struct wu_throttle_conf c;

	wu_throttle_conf_default(&c);
	assert_i64_eq(wu_throttle_share_limit(&c, 63), WU_UNLIMITED);
	c.share = 0.45;
	assert_i64_eq(wu_throttle_share_limit(&c, 63), 28);
	assert_i64_eq(wu_throttle_share_limit(&c, 20800), 9360);
	/* A tiny share rounds to at least nothing or one message, never more. */
	assert_i64_range(wu_throttle_share_limit(&c, 0), 0, 1);
	assert_i64_range(wu_throttle_share_limit(&c, 2), 0, 1);
	/* A share of no limit is no limit, not an overflow. */
	assert_i64_eq(wu_throttle_share_limit(&c, WU_UNLIMITED), WU_UNLIMITED);
	c.share = -1;
	c.share_count = 20;
	assert_i64_eq(wu_throttle_share_limit(&c, 63), 20);
	assert_i64_eq(wu_throttle_share_limit(&c, WU_UNLIMITED), 20);
}

static void test_retry_delays(void **state)
{
	(void)state;
	/* jitter 0.5 is the middle of the spread: no change. */
	assert_i64_eq(wu_backoff_retry(&bc, 1, 0.5), WU_MINUTE);
	assert_i64_eq(wu_backoff_retry(&bc, 2, 0.5), 2 * WU_MINUTE);
	assert_i64_eq(wu_backoff_retry(&bc, 3, 0.5), 4 * WU_MINUTE);
	assert_i64_eq(wu_backoff_retry(&bc, 6, 0.5), 32 * WU_MINUTE);
	assert_i64_eq(wu_backoff_retry(&bc, 7, 0.5), WU_HOUR);
	assert_i64_eq(wu_backoff_retry(&bc, 100, 0.5), WU_HOUR);
	/* Huge attempt counts do not overflow. */
	assert_i64_eq(wu_backoff_retry(&bc, 1 << 30, 0.5), WU_HOUR);

	/* Jitter spreads over +-25%, monotone in jitter. */
	wu_time_t prev = 0;
	for (int i = 0; i < 100; i++) {
		double j = i / 100.0;
		wu_time_t d = wu_backoff_retry(&bc, 3, j);
		assert_i64_range(d, 3 * WU_MINUTE - 1, 5 * WU_MINUTE);
		assert_true(d >= prev);
		prev = d;
	}
	assert_i64_range(wu_backoff_retry(&bc, 3, 0.0), 3 * WU_MINUTE - 1, 3 * WU_MINUTE + 1);
	assert_i64_range(wu_backoff_retry(&bc, 3, 0.999999), 5 * WU_MINUTE - WU_USEC,
	                 5 * WU_MINUTE);
	/* Capped delays are jittered too, within +-25% of the cap. */
	for (int i = 0; i < 100; i++) {
		wu_time_t d = wu_backoff_retry(&bc, 50, i / 100.0);
		assert_i64_range(d, 45 * WU_MINUTE - 1, 75 * WU_MINUTE);
		assert_true(d > 0);
	}
}

#define T_(f) cmocka_unit_test_setup(f, setup)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T_(test_defaults),
	    T_(test_rate_and_burst),
	    T_(test_default_burst_one_second),
	    T_(test_no_limit),
	    T_(test_tempfail_halves_to_floor),
	    T_(test_tempfail_slows_rate),
	    T_(test_suspension),
	    T_(test_success_resets_fail_streak),
	    T_(test_slow_recovery),
	    T_(test_cut_with_hold),
	    T_(test_give_back),
	    T_(test_share_limit),
	    T_(test_retry_delays),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
