/*
 * test_profile.c -- the arrival profile and the pacing along it: what the
 * engine learns from the hours mail came in, and how the next day's cap is
 * released (profile.c, pacing.c, engine.c).
 */
#include "tests/unit/cal_zone.h"
#include "test_util.h"

#include <stdio.h>
#include <stdlib.h>

#include "bucket.h"
#include "engine.h"
#include "pacing.h"
#include "profile.h"

#define T0 T_TOKYO_20261201

static const char *SEED = "day,cap\n1,63\n2,83\n3,73\n4,106\n5,127\n";

static struct wu_core_conf conf;
static struct wu_engine *eng;

static int setup(void **state)
{
	char err[WU_ERR_MAX] = "";
	struct wu_schedule s;

	(void)state;
	memset(&conf, 0, sizeof conf);
	if (wu_core_conf_init(&conf) != 0)
		return -1;
	memset(&s, 0, sizeof s);
	if (wu_schedule_parse(&s, SEED, strlen(SEED), "test.csv", err, sizeof err) != 0)
		return -1;
	s.after = WU_AFTER_HOLD;
	wu_schedule_free(&conf.schedule);
	conf.schedule = s;
	if (cal_init(&conf.calendar, "Asia/Tokyo", 2026, 12, 1, 0, 1440, err, sizeof err) != 0)
		return -1;
	eng = NULL;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	wu_engine_free(eng);
	eng = NULL;
	wu_core_conf_free(&conf);
	return 0;
}

static void engine_make(wu_time_t now)
{
	char err[WU_ERR_MAX] = "";

	if (wu_engine_create(&eng, &conf, now, err, sizeof err) != 0) {
		print_error("create: %s\n", err);
		fail();
	}
}

/* n units at t, each routed at once: how many went new. */
static int blast(wu_time_t t, int n)
{
	int news = 0;

	wu_engine_arrive(eng, t, n);
	for (int i = 0; i < n; i++)
		news += wu_engine_route(eng, t, WU_ISP_OTHER).kind == WU_NEW;
	return news;
}

/* ---- the profile ---- */

static void test_profile_keeps_the_last_days(void **state)
{
	struct wu_profile p;
	int64_t h[WU_PROFILE_HOURS];

	(void)state;
	memset(&p, 0, sizeof p);
	for (int d = 0; d < 9; d++)
		wu_profile_add(&p, 1000 + d, 9, 10 + d);
	wu_profile_add(&p, 1008, 30, 1); /* clipped into the last hour */
	wu_profile_add(&p, 990, 9, 99);  /* older than every kept day: ignored */
	/* Day 1009 sees 1002..1008: the 7 days before it. */
	assert_i64_eq(wu_profile_recent(&p, 1009, h), 12 + 13 + 14 + 15 + 16 + 17 + 18 + 1);
	assert_i64_eq(h[9], 12 + 13 + 14 + 15 + 16 + 17 + 18);
	assert_i64_eq(h[WU_PROFILE_HOURS - 1], 1);
	/* Day 1005 sees only the kept days before it (1002..1004). */
	assert_i64_eq(wu_profile_recent(&p, 1005, h), 12 + 13 + 14);
	/* Nothing before the first kept day. */
	assert_i64_eq(wu_profile_recent(&p, 1002, h), 0);
}

/* ---- the release ---- */

static void test_even_arrivals_release_as_the_even_drip(void **state)
{
	int64_t a[WU_PROFILE_HOURS] = {0};
	struct wu_pace p;
	double rate, burst;
	wu_time_t next;

	(void)state;
	for (int h = 0; h < 24; h++)
		a[h] = 700;
	wu_pace_plan(&p, WU_PACE_ARRIVALS, 20800, 0, 0, 0, WU_DAY, WU_HOUR, a, 24 * 700);
	assert_true(p.shaped);
	for (wu_time_t t = 0; t < WU_DAY; t = next) {
		wu_pace_at(&p, t, &rate, &burst, &next);
		assert_near(rate, 20800.0 / 86400, 1e-9);
		assert_near(burst, 20800.0 / 24, 1e-6);
		assert_true(next > t);
	}
	/* Nothing learned, or pace = even: the even drip, unshaped. */
	wu_pace_plan(&p, WU_PACE_ARRIVALS, 20800, 0, 0, 0, WU_DAY, WU_HOUR, a, 0);
	assert_false(p.shaped);
	wu_pace_plan(&p, WU_PACE_EVEN, 20800, 0, 0, 0, WU_DAY, WU_HOUR, a, 24 * 700);
	assert_false(p.shaped);
	wu_pace_at(&p, 5 * WU_HOUR, &rate, &burst, &next);
	assert_near(rate, 20800.0 / 86400, 1e-12);
	assert_i64_eq(next, WU_TIME_NEVER);
	/* burst = day hands out the whole cap at once: nothing to shape. */
	wu_pace_plan(&p, WU_PACE_ARRIVALS, 20800, 0, 0, 0, WU_DAY, WU_BURST_DAY, a, 24 * 700);
	assert_false(p.shaped);
}

/* Runs a bucket along the plan from the window's opening to t. */
static double tokens_at(const struct wu_pace *p, wu_time_t t)
{
	struct wu_bucket b;
	double rate, burst;
	wu_time_t next, at = p->open;

	wu_pace_at(p, at, &rate, &burst, &next);
	wu_bucket_init(&b, rate, burst, at);
	while (next <= t) {
		at = next;
		wu_pace_at(p, at, &rate, &burst, &next);
		wu_bucket_set(&b, rate, burst, at);
	}
	wu_bucket_ready(&b, t);
	return b.tokens;
}

static void test_a_blast_finds_the_cap_ready(void **state)
{
	int64_t a[WU_PROFILE_HOURS] = {0};
	struct wu_pace p;

	(void)state;
	a[9] = 300;
	wu_pace_plan(&p, WU_PACE_ARRIVALS, 63, 0, 0, 0, WU_DAY, WU_HOUR, a, 300);
	assert_true(p.shaped);
	/* Before 08:00 the bucket holds only what the even prior gives. */
	assert_true(tokens_at(&p, 8 * WU_HOUR) < 2);
	/* At 09:00 it holds 09:00's share: all but the prior's bit. */
	assert_true(tokens_at(&p, 9 * WU_HOUR) >= 0.95 * 63);
	assert_true(tokens_at(&p, 9 * WU_HOUR) <= 63);
	/* What the hour did not take lapses by 10:00. */
	assert_true(tokens_at(&p, 10 * WU_HOUR + WU_MINUTE) < 2);
}

static void test_the_hourly_cap_is_a_ceiling(void **state)
{
	int64_t a[WU_PROFILE_HOURS] = {0};
	struct wu_pace p;
	double total = 0;

	(void)state;
	a[9] = 300;
	a[10] = 100;
	wu_pace_plan(&p, WU_PACE_ARRIVALS, 120, 10, 0, 0, WU_DAY, WU_HOUR, a, 400);
	assert_true(p.shaped);
	for (int h = 0; h < 24; h++) {
		double in_hour = p.dens[h] * 3600;
		assert_true(in_hour <= 10 + 1e-9);
		total += in_hour;
	}
	/* What the ceiling cut from 09:00 and 10:00 went to the other hours. */
	assert_near(total, 120, 1e-6);
	assert_near(p.dens[9] * 3600, 10, 1e-9);
}

/* ---- the engine ---- */

static void test_engine_learns_a_daily_blast(void **state)
{
	wu_time_t nine = 9 * WU_HOUR, day = WU_DAY;
	double share[WU_PROFILE_HOURS];

	(void)state;
	engine_make(T0);
	/* Day 1: nothing learned, the even drip leaves an hour's burst
	 * (63 / 24 = 2.6 tokens). */
	assert_int_equal(blast(T0 + nine, 300), 2);
	assert_false(wu_engine_pace_profile(eng, share));
	/* Day 2 (cap 83): the cap is ready at 09:00, all but the even prior's
	 * share of the other hours (83 * 300.25 / 306 = 81.4). */
	assert_int_equal(blast(T0 + day + nine, 300), 81);
	assert_true(wu_engine_pace_profile(eng, share));
	assert_true(share[9] > 0.95);
	/* Day 3 (cap 73), after a restart: the profile is in the saved state. */
	{
		char *text = wu_engine_save_alloc(eng);
		char err[WU_ERR_MAX] = "";
		assert_non_null(strstr(text, "arrivals "));
		wu_engine_free(eng);
		engine_make(T0 + day + 10 * WU_HOUR);
		assert_int_equal(
		    wu_engine_load(eng, text, T0 + day + 10 * WU_HOUR, err, sizeof err), 0);
		free(text);
	}
	assert_int_equal(blast(T0 + 2 * day + nine, 300), 72);
}

static void test_pace_even_keeps_the_drip(void **state)
{
	(void)state;
	conf.pace = WU_PACE_EVEN;
	engine_make(T0);
	assert_int_equal(blast(T0 + 9 * WU_HOUR, 300), 2);
	assert_int_equal(blast(T0 + WU_DAY + 9 * WU_HOUR, 300), 3); /* 83 / 24 */
}

static void test_a_send_at_counts_on_its_own_hour(void **state)
{
	(void)state;
	engine_make(T0);
	/* Taken at 02:00 to go at 09:00, and one for tomorrow: the engine's
	 * clock stays on today. */
	wu_engine_arrive(eng, T0 + 9 * WU_HOUR, 200);
	wu_engine_arrive(eng, T0 + WU_DAY + 9 * WU_HOUR, 5);
	assert_int_equal(wu_engine_today(eng)->date, D_20261201);
	/* Day 2 paces along day 1's 200 at 09:00 (83 * 200.25 / 206 = 80.7);
	 * tomorrow's 5 do not count for it. */
	assert_int_equal(blast(T0 + WU_DAY + 9 * WU_HOUR, 300), 80);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_profile_keeps_the_last_days),
	    cmocka_unit_test(test_even_arrivals_release_as_the_even_drip),
	    cmocka_unit_test(test_a_blast_finds_the_cap_ready),
	    cmocka_unit_test(test_the_hourly_cap_is_a_ceiling),
	    cmocka_unit_test_setup_teardown(test_engine_learns_a_daily_blast, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_pace_even_keeps_the_drip, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_a_send_at_counts_on_its_own_hour, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
