/*
 * test_engaged.c -- engaged recipients first and the gap that steps the
 * ramp back, in virtual time: the policy's parsing and days, the reserve
 * engaged units keep in the pacing bucket (overflow old and defer), no
 * change without engaged demand, quiet days stepping the schedule back in
 * calendar and gated advance and across dates the engine never saw, and
 * both states through save and load with the loader's range checks.
 */
#include "test_util.h"

#include <stdio.h>
#include <stdlib.h>

#include "engine.h"
#include "pacing.h"
#include "reconf.h"
#include "tests/unit/cal_zone.h"

#define T0 T_TOKYO_20261201

static struct wu_core_conf conf;
static struct wu_engine *eng;
static int google;

/* A schedule from text, Asia/Tokyo from 2026-12-01, the whole day, the
 * given burst and overflow, hold after the last row. */
static void conf_make(const char *sched, wu_time_t burst, enum wu_overflow ov)
{
	char err[WU_ERR_MAX] = "";
	struct wu_schedule s;

	memset(&s, 0, sizeof s);
	if (wu_schedule_parse(&s, sched, strlen(sched), "test.csv", err, sizeof err) != 0) {
		print_error("schedule: %s\n", err);
		fail();
	}
	s.after = WU_AFTER_HOLD;
	wu_schedule_free(&conf.schedule);
	conf.schedule = s;
	assert_int_equal(
	    cal_init(&conf.calendar, "Asia/Tokyo", 2026, 12, 1, 0, 1440, err, sizeof err), 0);
	conf.burst = burst;
	conf.overflow = ov;
}

static void engine_make(wu_time_t now)
{
	char err[WU_ERR_MAX] = "";
	wu_engine_free(eng);
	assert_int_equal(wu_engine_create(&eng, &conf, now, err, sizeof err), 0);
}

static int setup(void **state)
{
	(void)state;
	memset(&conf, 0, sizeof conf);
	if (wu_core_conf_init(&conf) != 0)
		return -1;
	google = wu_isp_find(&conf.isps, "google");
	eng = NULL;
	return google > 0 ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	wu_engine_free(eng);
	eng = NULL;
	wu_core_conf_free(&conf);
	return 0;
}

/* Units of one kind offered at now until the first that does not go new
 * (at most most); *last gets that one's decision. */
static int take(wu_time_t now, int engaged, int most, struct wu_decision *last)
{
	int n = 0;
	while (n < most) {
		struct wu_decision d = wu_engine_route_for(eng, now, google, engaged);
		if (d.kind != WU_NEW) {
			if (last)
				*last = d;
			break;
		}
		n++;
	}
	return n;
}

static void test_parse(void **state)
{
	struct wu_engaged_conf c;
	char err[WU_ERR_MAX];

	(void)state;
	wu_engaged_conf_default(&c);
	assert_int_equal(c.first, WU_ENGAGED_FIRST_UNTIL_CAP);
	assert_i64_eq(c.age, 90 * WU_DAY);
	assert_int_equal(wu_engaged_first_parse("10", &c, err, sizeof err), 0);
	assert_int_equal(c.first, WU_ENGAGED_FIRST_DAYS);
	assert_int_equal(c.days, 10);
	assert_int_equal(wu_engaged_first_parse("off", &c, err, sizeof err), 0);
	assert_int_equal(c.first, WU_ENGAGED_FIRST_OFF);
	assert_int_equal(wu_engaged_first_parse("until_cap_exceeds_traffic", &c, err, sizeof err),
	                 0);
	assert_int_equal(c.first, WU_ENGAGED_FIRST_UNTIL_CAP);
	assert_int_equal(wu_engaged_first_parse("-3", &c, err, sizeof err), -1);
	assert_err_has(err, "until_cap_exceeds_traffic");
	assert_int_equal(wu_engaged_first_parse("always", &c, err, sizeof err), -1);
	assert_string_equal(wu_engaged_first_name(WU_ENGAGED_FIRST_DAYS), "days");
}

static void test_is_and_applies(void **state)
{
	struct wu_engaged_conf c;

	(void)state;
	wu_engaged_conf_default(&c);
	assert_false(wu_engaged_is(&c, 0, T0));
	assert_false(wu_engaged_is(&c, -1, T0));
	assert_true(wu_engaged_is(&c, T0 - 90 * WU_DAY, T0));
	assert_false(wu_engaged_is(&c, T0 - 90 * WU_DAY - 1, T0));
	assert_true(wu_engaged_is(&c, T0 + WU_HOUR, T0)); /* a date ahead of the clock */
	/* until the cap exceeds the traffic */
	assert_true(wu_engaged_applies(&c, 1, 63, 0, 0, 0));             /* no day before */
	assert_true(wu_engaged_applies(&c, 2, 83, 1, 5000, 0));          /* cap below traffic */
	assert_true(wu_engaged_applies(&c, 2, 83, 1, 40, 1));            /* mail turned away */
	assert_false(wu_engaged_applies(&c, 2, 83, 1, 40, 0));           /* the cap sufficed */
	assert_false(wu_engaged_applies(&c, 0, 0, 0, 0, 0));             /* not started */
	assert_false(wu_engaged_applies(&c, 11, WU_UNLIMITED, 0, 0, 1)); /* warmup over */
	c.first = WU_ENGAGED_FIRST_DAYS;
	c.days = 3;
	assert_true(wu_engaged_applies(&c, 3, 100, 1, 0, 0));
	assert_false(wu_engaged_applies(&c, 4, 100, 1, 1000000, 1));
	c.first = WU_ENGAGED_FIRST_OFF;
	assert_false(wu_engaged_applies(&c, 1, 63, 0, 0, 1));
	/* the reserve: the burst, at most an hour's share, at least one */
	assert_near(wu_engaged_reserve(100, 2400.0 / 86400, 86400), 100, 1e-9);
	assert_near(wu_engaged_reserve(2400, 2400.0 / 86400, 86400), 100, 1e-9);
	assert_near(wu_engaged_reserve(1, 0.0001, 86400), 1, 1e-9);
	/* ten minutes before the close: what the rest of the window releases */
	assert_near(wu_engaged_reserve(100, 2400.0 / 86400, 600), 2400.0 / 144, 1e-9);
}

/* Without engaged demand nothing changes: 2,400 a day with a burst of an
 * hour lets 100 go at once, engaged-first or not. */
static void test_no_engaged_no_change(void **state)
{
	(void)state;
	conf_make("day,cap\n1,2400\n", WU_HOUR, WU_OVERFLOW_OLD);
	engine_make(T0);
	assert_true(wu_engine_today(eng)->engaged_first);
	assert_false(wu_engine_engaged_first(eng));
	assert_int_equal(take(T0, 0, 1000, NULL), 100);
}

/* Engaged units keep the reserve: once one has asked, a unit that is not
 * engaged goes new only when the bucket is full again. */
static void test_reserve_old(void **state)
{
	struct wu_decision d = {WU_WAIT, WU_WHY_NONE, 0, 0};

	(void)state;
	conf_make("day,cap\n1,2400\n", WU_HOUR, WU_OVERFLOW_OLD);
	engine_make(T0);
	assert_int_equal(take(T0, 1, 1, NULL), 1);
	assert_true(wu_engine_engaged_first(eng));
	assert_int_equal(take(T0, 0, 10, &d), 0);
	assert_int_equal(d.kind, WU_OLD);
	assert_int_equal(d.why, WU_WHY_ENGAGED);
	assert_int_equal(take(T0, 1, 1000, &d), 99);
	assert_int_equal(d.why, WU_WHY_PACING);
	/* one token a 36 s: engaged get each, the others none */
	assert_int_equal(take(T0 + 36 * WU_USEC, 0, 10, &d), 0);
	assert_int_equal(d.why, WU_WHY_ENGAGED);
	assert_int_equal(take(T0 + 36 * WU_USEC, 1, 10, NULL), 1);
	/* no engaged demand for an hour: the bucket fills, the others take
	 * what would overflow it, one at a time */
	assert_int_equal(take(T0 + 36 * WU_USEC + WU_HOUR, 0, 10, &d), 1);
	assert_int_equal(d.why, WU_WHY_ENGAGED);
	const struct wu_day_stats *t = wu_engine_today(eng);
	assert_i64_eq(t->engaged_new, 101);
	assert_i64_eq(t->used, 102);
	assert_i64_eq(t->sent[WU_ROUTE_OLD][google], 5);
}

/* Under overflow = defer the others wait until the bucket holds the
 * reserve, and are told when. */
static void test_reserve_defer(void **state)
{
	struct wu_decision d = {WU_WAIT, WU_WHY_NONE, 0, 0};

	(void)state;
	conf_make("day,cap\n1,2400\n", WU_HOUR, WU_OVERFLOW_DEFER);
	engine_make(T0);
	assert_int_equal(take(T0, 1, 10, NULL), 10);
	assert_int_equal(take(T0 + WU_MINUTE, 0, 10, &d), 0);
	assert_int_equal(d.kind, WU_WAIT);
	assert_int_equal(d.why, WU_WHY_ENGAGED);
	/* 10 taken, 1.67 earned back in a minute: 8.33 tokens to full at one a 36 s */
	assert_i64_range(d.until, T0 + 360 * WU_USEC - WU_USEC, T0 + 360 * WU_USEC + WU_USEC);
	assert_int_equal(take(d.until, 0, 10, NULL), 1);
}

/* until_cap_exceeds_traffic: a day on which the cap or pacing turned mail
 * away keeps engaged-first on the next day; a day the cap sufficed ends it. */
static void test_until_cap(void **state)
{
	(void)state;
	conf_make("day,cap\n1,2400\n2,4800\n3,9600\n", WU_HOUR, WU_OVERFLOW_OLD);
	engine_make(T0);
	assert_int_equal(take(T0, 1, 1000, NULL), 100); /* then pacing turns one away */
	wu_engine_tick(eng, T0 + WU_DAY);
	assert_true(wu_engine_today(eng)->engaged_first);
	assert_true(wu_engine_engaged_first(eng)); /* engaged asked the day before */
	assert_int_equal(take(T0 + WU_DAY, 1, 10, NULL), 10);
	wu_engine_tick(eng, T0 + 2 * WU_DAY);
	assert_false(wu_engine_today(eng)->engaged_first);
	assert_int_equal(take(T0 + 2 * WU_DAY, 1, 1, NULL), 1);
	assert_int_equal(take(T0 + 2 * WU_DAY, 0, 1000, NULL), 399);
	/* a number of days: steps 1..1 only */
	conf.engaged.first = WU_ENGAGED_FIRST_DAYS;
	conf.engaged.days = 1;
	engine_make(T0 + WU_DAY);
	assert_false(wu_engine_today(eng)->engaged_first);
}

/* Busy days 1-4, quiet 5-7: day 8 is back on step 2 (4 - 2), calendar. */
static void test_gap_calendar(void **state)
{
	struct wu_event ev;
	int back = 0;

	(void)state;
	conf_make("day,cap\n1,100\n2,200\n3,300\n4,400\n5,500\n6,600\n7,700\n8,800\n9,900\n"
	          "10,1000\n",
	          WU_BURST_DAY, WU_OVERFLOW_OLD);
	conf.gap.days = 3;
	engine_make(T0);
	for (int d = 0; d < 4; d++)
		assert_int_equal(take(T0 + d * WU_DAY, 0, 10000, NULL), (d + 1) * 100);
	for (int d = 4; d < 7; d++) {
		wu_engine_tick(eng, T0 + d * WU_DAY);
		assert_int_equal(wu_engine_today(eng)->step, d + 1);
		assert_int_equal(take(T0 + d * WU_DAY, 0, 5, NULL), 5); /* under 10% */
	}
	assert_int_equal(wu_engine_quiet(eng), 2);
	wu_engine_tick(eng, T0 + 7 * WU_DAY);
	assert_int_equal(wu_engine_today(eng)->step, 2);
	assert_i64_eq(wu_engine_today(eng)->cap, 200);
	assert_true(wu_engine_today(eng)->stepped_back);
	assert_int_equal(wu_engine_quiet(eng), 0);
	while (wu_engine_poll_event(eng, &ev))
		if (ev.kind == WU_EV_STEP_BACK) {
			back++;
			assert_non_null(strstr(ev.text, "from day 8 to day 2"));
		}
	assert_int_equal(back, 1);
	assert_string_equal(wu_event_name(WU_EV_STEP_BACK), "step_back");
	/* the calendar goes on from there */
	assert_int_equal(take(T0 + 7 * WU_DAY, 0, 10000, NULL), 200);
	wu_engine_tick(eng, T0 + 8 * WU_DAY);
	assert_int_equal(wu_engine_today(eng)->step, 3);
	assert_false(wu_engine_today(eng)->stepped_back);
}

/* Dates never seen (the daemon was down) are quiet days too; gated
 * advance steps back from the last busy step. */
static void test_gap_missed_gated(void **state)
{
	(void)state;
	conf_make("day,cap\n1,100\n2,200\n3,300\n4,400\n5,500\n6,600\n", WU_BURST_DAY,
	          WU_OVERFLOW_OLD);
	conf.gap.days = 3;
	conf.advance = WU_ADVANCE_GATED;
	engine_make(T0);
	for (int d = 0; d < 4; d++) {
		wu_engine_tick(eng, T0 + d * WU_DAY);
		assert_int_equal(wu_engine_today(eng)->step, d + 1);
		take(T0 + d * WU_DAY, 0, 10000, NULL);
	}
	/* day 5 (step 5) quiet, then 6 and 7 never seen: day 8 steps back to 2 */
	wu_engine_tick(eng, T0 + 4 * WU_DAY);
	assert_int_equal(wu_engine_today(eng)->step, 5);
	wu_engine_tick(eng, T0 + 7 * WU_DAY);
	assert_int_equal(wu_engine_today(eng)->step, 2);
	assert_true(wu_engine_today(eng)->stepped_back);
	/* off: nothing steps back */
	conf.gap.days = 0;
	engine_make(T0);
	for (int d = 0; d < 2; d++) {
		wu_engine_tick(eng, T0 + d * WU_DAY);
		take(T0 + d * WU_DAY, 0, 10000, NULL);
	}
	wu_engine_tick(eng, T0 + 9 * WU_DAY);
	assert_int_equal(wu_engine_today(eng)->step, 3);
}

/* Quiet days and the engaged counts survive a restart; the loader checks
 * their ranges. */
static void test_save_load(void **state)
{
	char err[WU_ERR_MAX] = "", *text;
	static const char *bad[] = {
	    "warmup-engine 1\ndate 20790\nstep 3\ngap -1 0 0\nend\n",
	    "warmup-engine 1\ndate 20790\nstep 3\ngap 1 2 3\nend\n",
	    "warmup-engine 1\ndate 20790\nstep 3\ngap 1 2\nend\n",
	    "warmup-engine 1\ndate 20790\nstep 3\nengaged 2 0 0 0 0\nend\n",
	    "warmup-engine 1\ndate 20790\nstep 3\nengaged 1 -5 0 0 0\nend\n",
	    "warmup-engine 1\ndate 20790\nstep 3\nengaged 1 0 0 0 99999999999999999\nend\n",
	};

	(void)state;
	conf_make("day,cap\n1,100\n2,200\n3,300\n4,400\n5,500\n6,600\n", WU_BURST_DAY,
	          WU_OVERFLOW_OLD);
	conf.gap.days = 3;
	engine_make(T0);
	take(T0, 1, 1000, NULL);              /* day 1 busy */
	wu_engine_tick(eng, T0 + WU_DAY);     /* day 2 quiet */
	wu_engine_tick(eng, T0 + 2 * WU_DAY); /* day 3 quiet */
	wu_engine_route_for(eng, T0 + 2 * WU_DAY, google, 1);
	wu_engine_tick(eng, T0 + 3 * WU_DAY); /* day 4 */
	wu_engine_route_for(eng, T0 + 3 * WU_DAY, google, 1);
	assert_int_equal(wu_engine_quiet(eng), 2);
	text = wu_engine_save_alloc(eng);
	assert_non_null(text);
	assert_non_null(strstr(text, "\ngap 2 1 0\n"));
	assert_non_null(strstr(text, "\nengaged 0 1 1 0 1\n"));
	engine_make(T0 + 3 * WU_DAY);
	assert_int_equal(wu_engine_load(eng, text, T0 + 3 * WU_DAY + WU_HOUR, err, sizeof err), 0);
	free(text);
	assert_int_equal(wu_engine_quiet(eng), 2);
	assert_i64_eq(wu_engine_today(eng)->engaged_new, 1);
	assert_false(wu_engine_engaged_first(eng)); /* day 3 had no traffic to speak of */
	wu_engine_tick(eng, T0 + 4 * WU_DAY);       /* day 4 quiet: the third */
	assert_int_equal(wu_engine_today(eng)->step, 1);
	assert_true(wu_engine_today(eng)->stepped_back);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		err[0] = '\0';
		assert_int_equal(wu_engine_load(eng, bad[i], T0 + 4 * WU_DAY, err, sizeof err), -1);
		assert_true(strstr(err, "gap") || strstr(err, "engaged"));
		assert_err_has(err, "line 4");
	}
	/* a refused load left the engine as it was */
	assert_int_equal(wu_engine_today(eng)->step, 1);
}

/* A reload carries the quiet days and the engaged counts through the saved
 * text; a policy changed to off takes effect today, and the change is
 * named. */
static void test_reload(void **state)
{
	struct wu_core_conf nc;
	struct wu_engine *fresh = NULL;
	char err[WU_ERR_MAX] = "", line[512];

	(void)state;
	conf_make("day,cap\n1,100\n2,200\n3,300\n4,400\n", WU_HOUR, WU_OVERFLOW_OLD);
	conf.gap.days = 3;
	engine_make(T0);
	take(T0, 1, 1000, NULL);          /* a burst of 4 of 100: quiet */
	take(T0 + WU_DAY, 1, 1000, NULL); /* 8 of 200, then pacing turns one away */
	wu_engine_tick(eng, T0 + 2 * WU_DAY);
	assert_int_equal(take(T0 + 2 * WU_DAY, 1, 5, NULL), 5);
	assert_int_equal(wu_engine_quiet(eng), 2);
	assert_true(wu_engine_today(eng)->engaged_first);
	nc = conf;
	nc.engaged.first = WU_ENGAGED_FIRST_OFF;
	nc.gap.back = 1;
	assert_int_equal(
	    wu_reconf_engine(eng, &nc, T0 + 2 * WU_DAY + WU_HOUR, &fresh, err, sizeof err), 0);
	assert_int_equal(wu_engine_quiet(fresh), 2);
	assert_false(wu_engine_today(fresh)->engaged_first);
	assert_i64_eq(wu_engine_today(fresh)->engaged_new, 5);
	wu_reconf_describe(&conf, &nc, line, sizeof line);
	assert_non_null(strstr(line, "engaged_first"));
	assert_non_null(strstr(line, "gap"));
	wu_engine_free(fresh);
}

#define T_(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T_(test_parse),        T_(test_is_and_applies),   T_(test_no_engaged_no_change),
	    T_(test_reserve_old),  T_(test_reserve_defer),    T_(test_until_cap),
	    T_(test_gap_calendar), T_(test_gap_missed_gated), T_(test_save_load),
	    T_(test_reload),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
