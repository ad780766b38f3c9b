/*
 * test_pacing.c -- the token bucket and how pacing turns today's cap into a
 * bucket: rate and burst math, "burst = day", next() times, and a whole day of
 * releases in virtual time.
 */
#include "test_util.h"

#include "bucket.h"
#include "pacing.h"

#define T0 T_TOKYO_20261201

/* Takes tokens while ready at now; returns how many. */
static int drain(struct wu_bucket *b, wu_time_t now, int most)
{
	int n = 0;
	while (n < most && wu_bucket_ready(b, now)) {
		wu_bucket_take(b);
		n++;
	}
	return n;
}

static void test_bucket_burst_then_rate(void **state)
{
	(void)state;
	struct wu_bucket b;

	wu_bucket_init(&b, 1.0, 5.0, T0);
	assert_int_equal(drain(&b, T0, 100), 5);
	assert_false(wu_bucket_ready(&b, T0));
	assert_false(wu_bucket_ready(&b, T0 + WU_USEC / 2));

	/* One token per second from here. */
	wu_time_t next = wu_bucket_next(&b, T0);
	assert_i64_range(next, T0 + WU_USEC - 2, T0 + WU_USEC + 2);
	assert_true(wu_bucket_ready(&b, next));
	assert_int_equal(drain(&b, T0 + WU_USEC, 100), 1);
	assert_int_equal(drain(&b, T0 + 4 * WU_USEC, 100), 3);

	/* Idle for an hour: never more than the burst. */
	assert_int_equal(drain(&b, T0 + WU_HOUR, 100), 5);
}

/* The clock steps back a day: nothing is earned for it, and the bucket
 * earns again from the new time instead of stalling until the old one. */
static void test_bucket_clock_back(void **state)
{
	(void)state;
	struct wu_bucket b;

	wu_bucket_init(&b, 1.0, 2.0, T0);
	assert_int_equal(drain(&b, T0, 10), 2);
	assert_false(wu_bucket_ready(&b, T0 - 86400 * WU_USEC));
	assert_false(wu_bucket_ready(&b, T0 - 86400 * WU_USEC + WU_USEC / 2));
	assert_true(wu_bucket_ready(&b, T0 - 86400 * WU_USEC + WU_USEC));
	assert_int_equal(drain(&b, T0 - 86400 * WU_USEC + WU_USEC, 10), 1);
}

static void test_bucket_next_is_ready(void **state)
{
	(void)state;
	struct wu_bucket b;
	wu_time_t now = T0;
	int n = 0;

	/* A rate that does not divide a microsecond evenly (7 per 3 s): sleeping
	 * until next() always finds a token, and next() is never in the past. */
	wu_bucket_init(&b, 7.0 / 3.0, 1.0, now);
	while (now < T0 + 30 * WU_USEC) {
		wu_time_t next = wu_bucket_next(&b, now);
		assert_true(next >= now);
		now = next;
		assert_true(wu_bucket_ready(&b, now));
		wu_bucket_take(&b);
		n++;
	}
	/* 1 at once plus 7/3 per second over 30 s. */
	assert_in_range(n, 70, 72);
}

static void test_bucket_next_when_ready(void **state)
{
	(void)state;
	struct wu_bucket b;

	wu_bucket_init(&b, 2.0, 3.0, T0);
	assert_i64_eq(wu_bucket_next(&b, T0 + 5), T0 + 5);
	drain(&b, T0, 3);
	/* Half a token after a quarter second: ready at half a second. */
	assert_i64_range(wu_bucket_next(&b, T0 + WU_USEC / 4), T0 + WU_USEC / 2 - 2,
	                 T0 + WU_USEC / 2 + 2);
}

static void test_bucket_unlimited(void **state)
{
	(void)state;
	struct wu_bucket b;

	wu_bucket_init(&b, 0.0, 1.0, T0);
	assert_int_equal(drain(&b, T0, 10000), 10000);
	assert_i64_eq(wu_bucket_next(&b, T0), T0);
}

static void test_bucket_give(void **state)
{
	(void)state;
	struct wu_bucket b;

	wu_bucket_init(&b, 1.0, 2.0, T0);
	assert_int_equal(drain(&b, T0, 10), 2);
	wu_bucket_give(&b);
	assert_true(wu_bucket_ready(&b, T0));
	wu_bucket_take(&b);
	assert_false(wu_bucket_ready(&b, T0));
}

static void test_bucket_set(void **state)
{
	(void)state;
	struct wu_bucket b;

	/* Tokens earned are kept, clipped to a smaller burst. */
	wu_bucket_init(&b, 1.0, 10.0, T0);
	wu_bucket_set(&b, 1.0, 4.0, T0);
	assert_int_equal(drain(&b, T0, 100), 4);

	/* A faster rate applies from the change on, not retroactively. */
	wu_bucket_init(&b, 1.0, 100.0, T0);
	assert_int_equal(drain(&b, T0, 1000), 100);
	wu_bucket_set(&b, 10.0, 100.0, T0 + 10 * WU_USEC); /* 10 tokens earned at 1/s */
	assert_int_equal(drain(&b, T0 + 10 * WU_USEC, 1000), 10);
	assert_int_equal(drain(&b, T0 + 11 * WU_USEC, 1000), 10);
}

static void test_burst_parse(void **state)
{
	(void)state;
	char err[WU_ERR_MAX] = "";
	wu_time_t b = 0;

	assert_int_equal(wu_burst_parse("day", &b, err, sizeof err), 0);
	assert_i64_eq(b, WU_BURST_DAY);
	assert_int_equal(wu_burst_parse("1h", &b, err, sizeof err), 0);
	assert_i64_eq(b, WU_HOUR);
	assert_int_equal(wu_burst_parse("30min", &b, err, sizeof err), 0);
	assert_i64_eq(b, 30 * WU_MINUTE);
	assert_int_equal(wu_burst_parse("fortnight", &b, err, sizeof err), -1);
	assert_true(err[0] != '\0');
	assert_int_equal(wu_burst_parse("", &b, err, sizeof err), -1);
}

static void test_daily_cap(void **state)
{
	(void)state;
	assert_i64_eq(wu_pacing_daily_cap(63, 0, WU_DAY), 63);
	/* The schedule's cap wins when both are given. */
	assert_i64_eq(wu_pacing_daily_cap(1000, 50, WU_DAY), 1000);
	/* Hourly only: hours of the window times the hourly cap, rounded up. */
	assert_i64_eq(wu_pacing_daily_cap(0, 10, WU_DAY), 240);
	assert_i64_eq(wu_pacing_daily_cap(0, 10, 14 * WU_HOUR), 140);
	assert_i64_eq(wu_pacing_daily_cap(0, 10, 90 * WU_MINUTE), 15);
	assert_i64_eq(wu_pacing_daily_cap(0, 10, 100 * WU_MINUTE), 17);
	assert_i64_eq(wu_pacing_daily_cap(0, 10, 23 * WU_HOUR), 230);
	assert_i64_eq(wu_pacing_daily_cap(WU_UNLIMITED, 0, WU_DAY), WU_UNLIMITED);
	assert_i64_eq(wu_pacing_daily_cap(0, WU_UNLIMITED, WU_DAY), WU_UNLIMITED);
}

/* Found by tests/fuzz/fuzz_schedule: an hourly cap doubled after the last
 * row (after = double) reaches 2^60 in 60 days, and hours x window then
 * overflowed.  A day of more than 2^63 messages is no limit. */
static void test_daily_cap_saturates(void **state)
{
	(void)state;
	const int64_t huge = INT64_C(1) << 60;
	double rate, burst;

	assert_i64_eq(wu_pacing_daily_cap(0, huge, WU_DAY), WU_UNLIMITED);
	assert_i64_eq(wu_pacing_daily_cap(0, 175759800, 25 * WU_HOUR), WU_UNLIMITED);
	/* The largest that fits is still exact. */
	const int64_t fits = (WU_UNLIMITED - WU_HOUR) / WU_DAY;
	assert_i64_eq(wu_pacing_daily_cap(0, fits, WU_DAY), fits * 24);
	wu_pacing_params(0, huge, WU_DAY, WU_HOUR, &rate, &burst);
	assert_true(rate == 0 && burst == 1);
}

static void test_params_default_burst(void **state)
{
	(void)state;
	double rate = -1, burst = -1;

	/* 2400 a day over 24 h: 100 an hour, a burst of one hour's share. */
	wu_pacing_params(2400, 0, WU_DAY, WU_HOUR, &rate, &burst);
	assert_near(rate, 2400.0 / 86400.0, 1e-9);
	assert_near(burst, 100.0, 1e-6);

	/* 14 h window: the share is of the window, not of 24 h. */
	wu_pacing_params(1400, 0, 14 * WU_HOUR, WU_HOUR, &rate, &burst);
	assert_near(rate, 1400.0 / (14 * 3600.0), 1e-9);
	assert_near(burst, 100.0, 1e-6);

	/* 30 min burst. */
	wu_pacing_params(2400, 0, WU_DAY, 30 * WU_MINUTE, &rate, &burst);
	assert_near(burst, 50.0, 1e-6);

	/* A tiny cap still lets one message through at once. */
	wu_pacing_params(10, 0, WU_DAY, WU_HOUR, &rate, &burst);
	assert_true(burst >= 1.0);
	assert_true(burst < 2.0);
	assert_near(rate, 10.0 / 86400.0, 1e-12);

	/* Day 1 of the seed: 63 a day -> about 2.6 at once. */
	wu_pacing_params(63, 0, WU_DAY, WU_HOUR, &rate, &burst);
	assert_near(burst, 63.0 / 24.0, 0.5);
}

static void test_params_hourly(void **state)
{
	(void)state;
	double rate = -1, burst = -1;

	/* Hourly caps set the drip directly. */
	wu_pacing_params(0, 36, WU_DAY, WU_HOUR, &rate, &burst);
	assert_near(rate, 36.0 / 3600.0, 1e-9);
	assert_near(burst, 36.0, 1e-6);
	wu_pacing_params(0, 36, 10 * WU_HOUR, WU_HOUR, &rate, &burst);
	assert_near(rate, 36.0 / 3600.0, 1e-9);
}

static void test_params_unlimited(void **state)
{
	(void)state;
	double rate = -1, burst = -1;

	/* After warmup there is nothing to pace. */
	wu_pacing_params(WU_UNLIMITED, 0, WU_DAY, WU_HOUR, &rate, &burst);
	assert_near(rate, 0.0, 0.0);
	assert_true(burst >= 1.0);
}

static void test_burst_day_whole_cap_at_open(void **state)
{
	(void)state;
	double rate = -1, burst = -1;
	struct wu_bucket b;

	wu_pacing_params(63, 0, WU_DAY, WU_BURST_DAY, &rate, &burst);
	assert_true(burst >= 1.0);
	wu_bucket_init(&b, rate, burst, T0);
	assert_int_equal(drain(&b, T0, 63), 63);

	wu_pacing_params(20800, 0, 14 * WU_HOUR, WU_BURST_DAY, &rate, &burst);
	wu_bucket_init(&b, rate, burst, T0);
	assert_int_equal(drain(&b, T0, 20800), 20800);
}

static void test_default_burst_day_of_releases(void **state)
{
	(void)state;
	double rate, burst;
	struct wu_bucket b;
	const int64_t cap = 2400;
	int64_t sent = 0, first = 0, by_noon = 0;
	wu_time_t now = T0, reached = 0;

	/* The whole window in virtual time, waking at next() each time and
	 * stopping at the cap, which pacing does not count itself. */
	wu_pacing_params(cap, 0, WU_DAY, WU_HOUR, &rate, &burst);
	wu_bucket_init(&b, rate, burst, T0);
	first = drain(&b, T0, (int)cap);
	sent = first;
	while (sent < cap) {
		now = wu_bucket_next(&b, now);
		assert_true(now < T0 + WU_DAY);
		int n = drain(&b, now, (int)(cap - sent));
		assert_true(n >= 1);
		sent += n;
		if (now < T0 + 12 * WU_HOUR)
			by_noon = sent;
	}
	reached = now;
	/* About cap/24 at once, half the rest by noon, the cap at 23:00. */
	assert_i64_eq(first, 100);
	assert_i64_range(by_noon, 1299, 1301);
	assert_i64_range(reached, T0 + 23 * WU_HOUR - 40 * WU_USEC, T0 + 23 * WU_HOUR + WU_USEC);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_bucket_burst_then_rate),
	    cmocka_unit_test(test_bucket_clock_back),
	    cmocka_unit_test(test_bucket_next_is_ready),
	    cmocka_unit_test(test_bucket_next_when_ready),
	    cmocka_unit_test(test_bucket_unlimited),
	    cmocka_unit_test(test_bucket_give),
	    cmocka_unit_test(test_bucket_set),
	    cmocka_unit_test(test_burst_parse),
	    cmocka_unit_test(test_daily_cap),
	    cmocka_unit_test(test_daily_cap_saturates),
	    cmocka_unit_test(test_params_default_burst),
	    cmocka_unit_test(test_params_hourly),
	    cmocka_unit_test(test_params_unlimited),
	    cmocka_unit_test(test_burst_day_whole_cap_at_open),
	    cmocka_unit_test(test_default_burst_day_of_releases),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
