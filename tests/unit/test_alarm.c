/*
 * test_alarm.c -- what the core decides about alerts, in virtual time: the
 * repeat window (one alert, then a summary with a count), watched levels
 * (backlog, disk, template wait), the rate of permanent failures among the
 * last sends, and the engine's events for an ISP cut by a deferral rule and
 * its recovery, a permanent-failure rate and a pause by the provider.
 */
#include "test_util.h"

#include <stdio.h>
#include <stdlib.h>

#include "engine.h"
#include "failrate.h"
#include "level.h"
#include "reconf.h"
#include "pacing.h"
#include "repeat.h"

#define T0 T_TOKYO_20261201

static struct wu_core_conf conf;
static struct wu_engine *eng;
static int google, yahoo;

static int setup(void **state)
{
	char err[WU_ERR_MAX] = "";
	const char *sched = "day,cap\n1,1000\n2,1000\n";

	(void)state;
	memset(&conf, 0, sizeof conf);
	if (wu_core_conf_init(&conf) != 0)
		return -1;
	google = wu_isp_find(&conf.isps, "google");
	yahoo = wu_isp_find(&conf.isps, "yahoo");
	if (wu_schedule_parse(&conf.schedule, sched, strlen(sched), "t.csv", err, sizeof err) != 0)
		return -1;
	conf.schedule.after = WU_AFTER_HOLD;
	if (wu_calendar_init(&conf.calendar, "Asia/Tokyo", 2026, 12, 1, 0, 1440, err, sizeof err))
		return -1;
	conf.burst = WU_BURST_DAY;
	/* One rule: google's 4.7.28 halves its rate for a minute. */
	memset(&conf.rules[0], 0, sizeof(conf.rules[0]));
	snprintf(conf.rules[0].name, sizeof(conf.rules[0].name), "gmail-rate");
	conf.rules[0].isp = google;
	snprintf(conf.rules[0].match, sizeof(conf.rules[0].match), "4.7.28");
	conf.rules[0].events = WU_DEFER_ON_DEFERRED | WU_DEFER_ON_BLOCKED;
	conf.rules[0].cut = 0.5;
	conf.rules[0].hold = WU_MINUTE;
	conf.nrules = 1;
	eng = NULL;
	return google > 0 && yahoo > 0 ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	wu_engine_free(eng);
	eng = NULL;
	wu_core_conf_free(&conf);
	return 0;
}

static void engine_make(void)
{
	char err[WU_ERR_MAX] = "";

	assert_int_equal(wu_engine_create(&eng, &conf, T0, err, sizeof err), 0);
}

/* Drains events; returns how many were of kind, the last of them in *last. */
static int events(enum wu_event_kind kind, struct wu_event *last)
{
	struct wu_event ev = {0};
	int n = 0;

	while (wu_engine_poll_event(eng, &ev)) {
		assert_in_range(ev.kind, WU_EV_DAY, WU_EV_COUNT - 1);
		if (ev.kind == kind) {
			n++;
			if (last)
				*last = ev;
		}
	}
	return n;
}

static struct wu_verdict report(wu_time_t at, enum wu_route route, int isp, enum wu_result res,
                                int64_t n, const char *text)
{
	struct wu_report r = {.route = route,
	                      .isp = isp,
	                      .result = res,
	                      .scope = WU_SCOPE_ISP,
	                      .n = n,
	                      .sent_date = -1, /* nothing given back to the cap */
	                      .attempts = 1,
	                      .text = text};

	return wu_engine_report(eng, at, &r);
}

/* ---- the repeat window ---- */

static void test_repeat_storm(void **state)
{
	struct wu_repeat r;
	int64_t held = 0;

	(void)state;
	wu_repeat_init(&r, 10 * WU_MINUTE);
	/* The first goes out at once, the next 37 of the window are held. */
	assert_int_equal(wu_repeat_hear(&r, "isp_cut/google", WU_REPEAT_FIRING, T0), -1);
	for (int i = 1; i <= 37; i++)
		assert_true(
		    wu_repeat_hear(&r, "isp_cut/google", WU_REPEAT_FIRING, T0 + i * WU_USEC) >= 0);
	assert_i64_eq(wu_repeat_next(&r), T0 + 10 * WU_MINUTE);
	assert_int_equal(wu_repeat_due(&r, T0 + 10 * WU_MINUTE - 1, &held), -1);
	assert_true(wu_repeat_due(&r, T0 + 10 * WU_MINUTE, &held) >= 0);
	assert_i64_eq(held, 37);
	assert_int_equal(wu_repeat_due(&r, T0 + 10 * WU_MINUTE, &held), -1);
	assert_i64_eq(wu_repeat_next(&r), WU_TIME_NEVER);
	/* The storm goes on: the next window holds everything, even the
	 * first of it. */
	assert_true(wu_repeat_hear(&r, "isp_cut/google", WU_REPEAT_FIRING, T0 + 11 * WU_MINUTE) >=
	            0);
	assert_true(wu_repeat_due(&r, T0 + 20 * WU_MINUTE, &held) >= 0);
	assert_i64_eq(held, 1);
	/* A whole window quiet: the next one goes out at once again. */
	assert_int_equal(wu_repeat_due(&r, T0 + 31 * WU_MINUTE, &held), -1);
	assert_int_equal(
	    wu_repeat_hear(&r, "isp_cut/google", WU_REPEAT_FIRING, T0 + 31 * WU_MINUTE), -1);
}

static void test_repeat_keys_and_resolution(void **state)
{
	struct wu_repeat r;
	int64_t held = 0;
	int slot;

	(void)state;
	wu_repeat_init(&r, 10 * WU_MINUTE);
	/* Keys are apart: yahoo's cut is not held behind google's. */
	assert_int_equal(wu_repeat_hear(&r, "isp_cut/google", WU_REPEAT_FIRING, T0), -1);
	assert_int_equal(wu_repeat_hear(&r, "isp_cut/yahoo", WU_REPEAT_FIRING, T0), -1);
	/* The first resolution of the window goes out at once... */
	assert_int_equal(wu_repeat_hear(&r, "isp_cut/google", WU_REPEAT_RESOLVED, T0 + WU_MINUTE),
	                 -1);
	/* ...a second firing and resolution are held, in one slot. */
	slot = wu_repeat_hear(&r, "isp_cut/google", WU_REPEAT_FIRING, T0 + 2 * WU_MINUTE);
	assert_true(slot >= 0);
	assert_int_equal(
	    wu_repeat_hear(&r, "isp_cut/google", WU_REPEAT_RESOLVED, T0 + 3 * WU_MINUTE), slot);
	assert_int_equal(wu_repeat_due(&r, T0 + 10 * WU_MINUTE, &held), slot);
	assert_i64_eq(held, 2);
	/* Window 0: nothing is ever held. */
	wu_repeat_init(&r, 0);
	for (int i = 0; i < 5; i++)
		assert_int_equal(wu_repeat_hear(&r, "k", WU_REPEAT_FIRING, T0), -1);
	assert_i64_eq(wu_repeat_next(&r), WU_TIME_NEVER);
}

static void test_repeat_full_table(void **state)
{
	struct wu_repeat r;
	char key[32];

	(void)state;
	wu_repeat_init(&r, WU_HOUR);
	for (int i = 0; i < WU_REPEAT_SLOTS; i++) {
		snprintf(key, sizeof key, "k%d", i);
		assert_int_equal(wu_repeat_hear(&r, key, WU_REPEAT_FIRING, T0), -1);
		assert_true(wu_repeat_hear(&r, key, WU_REPEAT_FIRING, T0) >= 0);
	}
	/* No room for one more key: said at once rather than lost. */
	assert_int_equal(wu_repeat_hear(&r, "one-more", WU_REPEAT_FIRING, T0), -1);
	assert_int_equal(wu_repeat_hear(&r, "one-more", WU_REPEAT_FIRING, T0), -1);
}

/* ---- levels ---- */

static void test_level_backlog(void **state)
{
	struct wu_level l = {0};

	(void)state;
	assert_int_equal(wu_level_backlog(&l, 10, 10), WU_LEVEL_SAME);
	assert_int_equal(wu_level_backlog(&l, 11, 10), WU_LEVEL_FIRE);
	assert_int_equal(wu_level_backlog(&l, 50, 10), WU_LEVEL_SAME);
	assert_int_equal(wu_level_backlog(&l, 10, 10), WU_LEVEL_SAME);
	assert_int_equal(wu_level_backlog(&l, 9, 10), WU_LEVEL_CLEAR);
	assert_int_equal(wu_level_backlog(&l, 0, 10), WU_LEVEL_SAME);
	/* Off: a firing watch is cleared, nothing fires. */
	assert_int_equal(wu_level_backlog(&l, 11, 10), WU_LEVEL_FIRE);
	assert_int_equal(wu_level_backlog(&l, 1000, 0), WU_LEVEL_CLEAR);
	assert_int_equal(wu_level_backlog(&l, 1000, 0), WU_LEVEL_SAME);
}

static void test_level_disk(void **state)
{
	struct wu_level l = {0};

	(void)state;
	assert_int_equal(wu_level_disk(&l, 0.20, 0.05), WU_LEVEL_SAME);
	assert_int_equal(wu_level_disk(&l, 0.049, 0.05), WU_LEVEL_FIRE);
	assert_int_equal(wu_level_disk(&l, 0.01, 0.05), WU_LEVEL_SAME);
	/* At the line plus less than a point it stays firing: no flapping. */
	assert_int_equal(wu_level_disk(&l, 0.055, 0.05), WU_LEVEL_SAME);
	assert_int_equal(wu_level_disk(&l, 0.061, 0.05), WU_LEVEL_CLEAR);
	/* 100% required: any real disk is low. */
	assert_int_equal(wu_level_disk(&l, 0.999, 1.0), WU_LEVEL_FIRE);
}

static void test_level_wait(void **state)
{
	struct wu_level l = {0};

	(void)state;
	assert_int_equal(wu_level_wait(&l, WU_HOUR, WU_HOUR), WU_LEVEL_SAME);
	assert_int_equal(wu_level_wait(&l, WU_HOUR + 1, WU_HOUR), WU_LEVEL_FIRE);
	assert_int_equal(wu_level_wait(&l, 2 * WU_HOUR, WU_HOUR), WU_LEVEL_SAME);
	assert_int_equal(wu_level_wait(&l, 0, WU_HOUR), WU_LEVEL_CLEAR);
}

/* ---- the rate of permanent failures ---- */

static void test_failrate_window(void **state)
{
	struct wu_failrate f;
	struct wu_failrate_conf c = {.window = 100, .rate = 0.10};
	double rate = -1;

	(void)state;
	wu_failrate_init(&f);
	/* Too few sends to be a rate. */
	assert_int_equal(wu_failrate_hear(&f, &c, 5, 1, &rate), WU_LEVEL_SAME);
	assert_near(rate, 1.0, 1e-12);
	/* 5 failures of 49: above 10%. */
	assert_int_equal(wu_failrate_hear(&f, &c, 44, 0, &rate), WU_LEVEL_FIRE);
	assert_near(rate, 5.0 / 49, 1e-12);
	/* 5 of 50 is not above 10%. */
	wu_failrate_init(&f);
	assert_int_equal(wu_failrate_hear(&f, &c, 5, 1, &rate), WU_LEVEL_SAME);
	assert_int_equal(wu_failrate_hear(&f, &c, 45, 0, &rate), WU_LEVEL_SAME);
	wu_failrate_init(&f);
	assert_int_equal(wu_failrate_hear(&f, &c, 89, 0, &rate), WU_LEVEL_SAME);
	assert_int_equal(wu_failrate_hear(&f, &c, 11, 1, &rate), WU_LEVEL_FIRE);
	assert_near(rate, 0.11, 1e-12);
	/* Successes push the oldest sends out of the window: first the
	 * successes, then the failures; the alert resolves at half the rate,
	 * not before. */
	assert_int_equal(wu_failrate_hear(&f, &c, 89, 0, &rate), WU_LEVEL_SAME);
	assert_near(rate, 0.11, 1e-12);
	assert_int_equal(wu_failrate_hear(&f, &c, 5, 0, &rate), WU_LEVEL_SAME);
	assert_near(rate, 0.06, 1e-12);
	assert_int_equal(wu_failrate_hear(&f, &c, 1, 0, &rate), WU_LEVEL_CLEAR);
	assert_near(rate, 0.05, 1e-12);
	/* One answer larger than the window: only its last window counts. */
	assert_int_equal(wu_failrate_hear(&f, &c, 1000, 1, &rate), WU_LEVEL_FIRE);
	assert_int_equal(f.n, 100);
	assert_int_equal(f.fails, 100);
	/* Off. */
	c.rate = 0;
	assert_int_equal(wu_failrate_hear(&f, &c, 1000, 1, &rate), WU_LEVEL_SAME);
}

static void test_failrate_small_window(void **state)
{
	struct wu_failrate f;
	struct wu_failrate_conf c = {.window = 4, .rate = 0.5};
	double rate;

	(void)state;
	wu_failrate_init(&f);
	/* A window smaller than the minimum sample is judged when full. */
	assert_int_equal(wu_failrate_hear(&f, &c, 3, 1, &rate), WU_LEVEL_SAME);
	assert_int_equal(wu_failrate_hear(&f, &c, 1, 0, &rate), WU_LEVEL_FIRE);
	assert_near(rate, 0.75, 1e-12);
}

/* ---- the engine's events ---- */

static void test_engine_isp_cut_and_recovery(void **state)
{
	struct wu_event ev;
	struct wu_cut cut;

	(void)state;
	engine_make();
	events(WU_EV_DAY, NULL);
	/* A deferral that matches no rule cuts nothing. */
	report(T0 + WU_MINUTE, WU_ROUTE_NEW, google, WU_DEFERRED, 1, "421 4.7.0 try later");
	assert_int_equal(events(WU_EV_ISP_CUT, NULL), 0);
	/* The rule matches: one event, with the ISP, the rule and the factor. */
	report(T0 + WU_MINUTE, WU_ROUTE_NEW, google, WU_DEFERRED, 1, "421 4.7.28 rate limited");
	assert_int_equal(events(WU_EV_ISP_CUT, &ev), 1);
	assert_int_equal(ev.isp, google);
	assert_string_equal(ev.rule, "gmail-rate");
	assert_near(ev.value, 0.5, 1e-9);
	assert_non_null(strstr(ev.text, "google cut to 50%"));
	/* More matches while cut: no new event. */
	report(T0 + 2 * WU_MINUTE, WU_ROUTE_NEW, google, WU_DEFERRED, 1, "4.7.28");
	assert_int_equal(events(WU_EV_ISP_CUT, NULL), 0);
	/* Successes during the hold do not restore the rate. */
	for (int i = 0; i < 30; i++)
		report(T0 + 2 * WU_MINUTE, WU_ROUTE_NEW, google, WU_DELIVERED, 1, NULL);
	assert_int_equal(events(WU_EV_ISP_RECOVERED, NULL), 0);
	/* After it, 25 steps of 2% bring it back to 1: one event. */
	for (int i = 0; i < 24; i++)
		report(T0 + 4 * WU_MINUTE, WU_ROUTE_NEW, google, WU_DELIVERED, 1, NULL);
	assert_int_equal(events(WU_EV_ISP_RECOVERED, NULL), 0);
	assert_int_equal(wu_engine_cut_state(eng, google, &cut), 1);
	assert_true(cut.factor < 1);
	report(T0 + 4 * WU_MINUTE, WU_ROUTE_NEW, google, WU_DELIVERED, 1, NULL);
	report(T0 + 4 * WU_MINUTE, WU_ROUTE_NEW, google, WU_DELIVERED, 1, NULL);
	assert_int_equal(events(WU_EV_ISP_RECOVERED, &ev), 1);
	assert_int_equal(ev.isp, google);
	assert_near(ev.value, 1, 1e-9);
	/* A later match is a new cut. */
	report(T0 + 5 * WU_MINUTE, WU_ROUTE_NEW, google, WU_BLOCKED, 1, "4.7.28");
	assert_int_equal(events(WU_EV_ISP_CUT, NULL), 1);
	/* Yahoo has no rule here: nothing. */
	report(T0 + 5 * WU_MINUTE, WU_ROUTE_NEW, yahoo, WU_DEFERRED, 1, "4.7.28");
	assert_int_equal(events(WU_EV_ISP_CUT, NULL), 0);
}

static void test_engine_permfail_rate(void **state)
{
	struct wu_event ev;
	struct wu_verdict v;

	(void)state;
	conf.permfail.window = 20;
	conf.permfail.rate = 0.25;
	engine_make();
	events(WU_EV_DAY, NULL);
	report(T0 + WU_MINUTE, WU_ROUTE_NEW, google, WU_ACCEPTED, 10, NULL);
	v = report(T0 + WU_MINUTE, WU_ROUTE_NEW, google, WU_PERMFAIL, 3, NULL);
	assert_int_equal(v.action, WU_ACT_FAIL);
	assert_int_equal(events(WU_EV_PERMFAIL_RATE, NULL), 0); /* 3 of 13 */
	report(T0 + WU_MINUTE, WU_ROUTE_NEW, google, WU_PERMFAIL, 2, NULL);
	assert_int_equal(events(WU_EV_PERMFAIL_RATE, &ev), 1); /* 5 of 15 */
	assert_int_equal(ev.route, WU_ROUTE_NEW);
	assert_near(ev.value, 5.0 / 15, 1e-9);
	assert_non_null(strstr(ev.text, "refused for good"));
	/* Tempfails and events are no sends' final answers. */
	report(T0 + WU_MINUTE, WU_ROUTE_NEW, google, WU_TEMPFAIL, 1, NULL);
	report(T0 + WU_MINUTE, WU_ROUTE_NEW, google, WU_BOUNCE, 100, NULL);
	assert_int_equal(events(WU_EV_PERMFAIL_OK, NULL), 0);
	/* 20 acceptances: 0 of 20. */
	report(T0 + 2 * WU_MINUTE, WU_ROUTE_NEW, google, WU_ACCEPTED, 20, NULL);
	assert_int_equal(events(WU_EV_PERMFAIL_OK, &ev), 1);
	assert_near(ev.value, 0, 1e-9);
	/* The old route has a window of its own. */
	report(T0 + 2 * WU_MINUTE, WU_ROUTE_OLD, google, WU_PERMFAIL, 20, NULL);
	assert_int_equal(events(WU_EV_PERMFAIL_RATE, &ev), 1);
	assert_int_equal(ev.route, WU_ROUTE_OLD);
}

static void test_engine_auth_pause(void **state)
{
	struct wu_event ev;
	struct wu_report r = {.route = WU_ROUTE_NEW,
	                      .isp = google,
	                      .result = WU_PERMFAIL,
	                      .scope = WU_SCOPE_API,
	                      .n = 5,
	                      .sent_date = -1,
	                      .attempts = 1,
	                      .auth = 1,
	                      .code = 401};

	(void)state;
	engine_make();
	events(WU_EV_DAY, NULL);
	wu_engine_report(eng, T0 + WU_MINUTE, &r);
	assert_int_equal(events(WU_EV_PAUSE, &ev), 1);
	assert_string_equal(ev.who, WU_PAUSED_BY_AUTH " (401)");
	/* A refused route is no permanent failure of its mail. */
	assert_int_equal(events(WU_EV_PERMFAIL_RATE, NULL), 0);
	wu_engine_resume(eng, T0 + 2 * WU_MINUTE, WU_ROUTE_NEW, "operator alice");
	assert_int_equal(events(WU_EV_RESUME, &ev), 1);
	assert_string_equal(ev.who, "operator alice");
	assert_string_equal(ev.rule, WU_PAUSED_BY_AUTH " (401)");
	for (int k = 0; k < WU_EV_COUNT; k++)
		assert_non_null(wu_event_name((enum wu_event_kind)k));
	assert_string_equal(wu_event_name(WU_EV_ISP_CUT), "isp_cut");
	assert_string_equal(wu_event_name(WU_EV_PERMFAIL_OK), "permfail_ok");
}

/* A reload (a fresh engine from the saved state) still owes the
 * recovery of a cut it raised, and keeps the failures' window. */
static void test_engine_reload_carries(void **state)
{
	struct wu_engine *fresh = NULL;
	struct wu_event ev;
	char err[WU_ERR_MAX] = "";

	(void)state;
	conf.permfail.window = 10;
	conf.permfail.rate = 0.5;
	engine_make();
	events(WU_EV_DAY, NULL);
	report(T0 + WU_MINUTE, WU_ROUTE_NEW, google, WU_DEFERRED, 1, "4.7.28");
	assert_int_equal(events(WU_EV_ISP_CUT, NULL), 1);
	report(T0 + WU_MINUTE, WU_ROUTE_NEW, google, WU_PERMFAIL, 4, NULL);
	assert_int_equal(wu_reconf_engine(eng, &conf, T0 + WU_MINUTE, &fresh, err, sizeof err), 0);
	wu_engine_free(eng);
	eng = fresh;
	events(WU_EV_DAY, NULL);
	for (int i = 0; i < 30; i++)
		report(T0 + 3 * WU_MINUTE, WU_ROUTE_NEW, google, WU_DELIVERED, 1, NULL);
	assert_int_equal(events(WU_EV_ISP_RECOVERED, &ev), 1);
	assert_int_equal(ev.isp, google);
	/* 4 failures before the reload, 6 more after: 10 of 10. */
	report(T0 + 3 * WU_MINUTE, WU_ROUTE_NEW, google, WU_PERMFAIL, 6, NULL);
	assert_int_equal(events(WU_EV_PERMFAIL_RATE, &ev), 1);
	assert_near(ev.value, 1, 1e-9);
}

#define T_(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T_(test_repeat_storm),
	    T_(test_repeat_keys_and_resolution),
	    T_(test_repeat_full_table),
	    T_(test_level_backlog),
	    T_(test_level_disk),
	    T_(test_level_wait),
	    T_(test_failrate_window),
	    T_(test_failrate_small_window),
	    T_(test_engine_isp_cut_and_recovery),
	    T_(test_engine_permfail_rate),
	    T_(test_engine_auth_pause),
	    T_(test_engine_reload_carries),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
