/*
 * test_engine.c -- the router in virtual time: the exact daily cap, overflow
 * old or deferred, pacing, sending windows, ISP shares and rates, backoff and
 * suspension, the health gate and held days, gated advance, restarts through
 * save/load, give-backs, pauses, and days across a DST change.
 */
#include "tests/unit/cal_zone.h"
#include "test_util.h"

#include <stdio.h>
#include <stdlib.h>

#include "engine.h"
#include "pacing.h"

#define T0 T_TOKYO_20261201

static const char *SEED = "# seed migration\nday,cap\n1,63\n2,83\n3,73\n4,106\n5,127\n"
                          "6,363\n7,2027\n8,1255\n9,8454\n10,20800\n";
static const int64_t seed_caps[] = {63, 83, 73, 106, 127, 363, 2027, 1255, 8454, 20800};

static struct wu_core_conf conf;
static struct wu_engine *eng;
static int google, yahoo;

/* Configuration: schedule from text, Asia/Tokyo from 2026-12-01, the given
 * window, burst and overflow; hold after the last row. */
static void conf_make(const char *sched, int open_min, int close_min, wu_time_t burst,
                      enum wu_overflow ov)
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
	if (cal_init(&conf.calendar, "Asia/Tokyo", 2026, 12, 1, open_min, close_min, err,
	                     sizeof err) != 0) {
		print_error("calendar: %s\n", err);
		fail();
	}
	conf.burst = burst;
	conf.overflow = ov;
}

static void engine_make(wu_time_t now)
{
	char err[WU_ERR_MAX] = "";
	if (wu_engine_create(&eng, &conf, now, err, sizeof err) != 0) {
		print_error("create: %s\n", err);
		fail();
	}
	assert_non_null(eng);
}

static int setup(void **state)
{
	(void)state;
	memset(&conf, 0, sizeof conf);
	if (wu_core_conf_init(&conf) != 0)
		return -1;
	google = wu_isp_find(&conf.isps, "google");
	yahoo = wu_isp_find(&conf.isps, "yahoo");
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

struct tally {
	int n[3]; /* by wu_kind */
	int why[WU_WHY_COUNT];
	wu_time_t until_min, until_max;
};

/* Offers n messages for isp at now; counts decisions. */
static void offer(wu_time_t now, int isp, int n, struct tally *t)
{
	memset(t, 0, sizeof *t);
	t->until_min = WU_TIME_NEVER;
	for (int i = 0; i < n; i++) {
		struct wu_decision d = wu_engine_route(eng, now, isp);
		assert_in_range(d.kind, WU_NEW, WU_WAIT);
		t->n[d.kind]++;
		if (d.kind == WU_NEW) {
			assert_int_equal(d.why, WU_WHY_NONE);
		} else {
			assert_in_range(d.why, WU_WHY_NOT_STARTED, WU_WHY_COUNT - 1);
			t->why[d.why]++;
		}
		if (d.kind == WU_WAIT) {
			if (d.until < t->until_min)
				t->until_min = d.until;
			if (d.until > t->until_max)
				t->until_max = d.until;
		}
	}
}

/* News offered at now until the first refusal (at most most). */
static int take_new(wu_time_t now, int isp, int most)
{
	int n = 0;
	while (n < most) {
		struct wu_decision d = wu_engine_route(eng, now, isp);
		if (d.kind != WU_NEW)
			break;
		n++;
	}
	return n;
}

/* An outcome for a message sent today (as of now). */
static void outcome(wu_time_t now, enum wu_route route, int isp, enum wu_result result)
{
	wu_engine_tick(eng, now);
	wu_engine_outcome(eng, now, route, isp, result, wu_engine_today(eng)->date);
}

/* One answer covering n units, as the dispatcher reports it. */
static struct wu_verdict answer(wu_time_t at, enum wu_route route, int isp, enum wu_result res,
                                int date, int64_t n, enum wu_scope scope)
{
	struct wu_report r = {.route = route, .isp = isp, .result = res, .scope = scope,
	                      .n = n, .sent_date = date, .attempts = 1};

	return wu_engine_report(eng, at, &r);
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

/* ---- the daily cap ---- */

static void test_exact_cap_overflow_old(void **state)
{
	(void)state;
	struct tally t;

	conf_make(SEED, 0, 1440, WU_BURST_DAY, WU_OVERFLOW_OLD);
	engine_make(T0);
	offer(T0 + WU_MINUTE, WU_ISP_OTHER, 100, &t);
	assert_int_equal(t.n[WU_NEW], 63);
	assert_int_equal(t.n[WU_OLD], 37);
	assert_int_equal(t.n[WU_WAIT], 0);
	assert_int_equal(t.why[WU_WHY_CAP], 37);

	const struct wu_day_stats *d = wu_engine_today(eng);
	assert_int_equal(d->date, D_20261201);
	assert_int_equal(d->step, 1);
	assert_i64_eq(d->cap, 63);
	assert_i64_eq(d->used, 63);
	assert_i64_eq(d->sent[WU_ROUTE_NEW][WU_ISP_OTHER], 63);
	assert_i64_eq(d->sent[WU_ROUTE_OLD][WU_ISP_OTHER], 37);

	/* Still nothing more later that day. */
	offer(T0 + 23 * WU_HOUR, google, 10, &t);
	assert_int_equal(t.n[WU_NEW], 0);
	assert_int_equal(t.why[WU_WHY_CAP], 10);
}

/* route_new: a message only the new route can carry takes the cap while
 * it lasts, then waits -- never OLD, never counted on the old route --
 * even with overflow = old. */
static void test_route_new_never_old(void **state)
{
	(void)state;
	struct wu_decision dec;

	conf_make(SEED, 0, 1440, WU_BURST_DAY, WU_OVERFLOW_OLD);
	engine_make(T0);
	for (int i = 0; i < 63; i++)
		assert_int_equal(wu_engine_route_new(eng, T0 + WU_MINUTE, google).kind, WU_NEW);
	dec = wu_engine_route_new(eng, T0 + WU_MINUTE, google);
	assert_int_equal(dec.kind, WU_WAIT);
	assert_int_equal(dec.why, WU_WHY_CAP);
	assert_true(dec.until >= T0 + WU_MINUTE);
	assert_i64_eq(wu_engine_today(eng)->used, 63);
	assert_i64_eq(wu_engine_today(eng)->sent[WU_ROUTE_OLD][google], 0);
	/* The plain route() still overflows. */
	assert_int_equal(wu_engine_route(eng, T0 + WU_MINUTE, google).kind, WU_OLD);
}

static void test_exact_cap_overflow_defer(void **state)
{
	(void)state;
	struct tally t;

	conf_make(SEED, 0, 1440, WU_BURST_DAY, WU_OVERFLOW_DEFER);
	engine_make(T0);
	offer(T0 + WU_MINUTE, WU_ISP_OTHER, 100, &t);
	assert_int_equal(t.n[WU_NEW], 63);
	assert_int_equal(t.n[WU_WAIT], 37);
	assert_int_equal(t.n[WU_OLD], 0);
	assert_int_equal(t.why[WU_WHY_CAP], 37);
	assert_i64_eq(t.until_min, T0 + WU_DAY);
	assert_i64_eq(t.until_max, T0 + WU_DAY);
	assert_i64_eq(wu_engine_today(eng)->sent[WU_ROUTE_OLD][WU_ISP_OTHER], 0);
	/* Nothing can change before midnight. */
	assert_i64_eq(wu_engine_next_wakeup(eng, T0 + WU_MINUTE), T0 + WU_DAY);
}

static void test_cap_spread_over_day(void **state)
{
	(void)state;
	int news = 0, last_new = -1;

	conf_make(SEED, 0, 1440, WU_BURST_DAY, WU_OVERFLOW_OLD);
	engine_make(T0);
	/* 1000 messages, one every 86.4 s, across all ISPs. */
	for (int i = 0; i < 1000; i++) {
		wu_time_t now = T0 + (wu_time_t)i * 86400000;
		struct wu_decision d = wu_engine_route(eng, now, i % 4 == 0 ? google : i % 4);
		if (d.kind == WU_NEW) {
			news++;
			last_new = i;
		} else {
			assert_int_equal(d.kind, WU_OLD);
			assert_int_equal(d.why, WU_WHY_CAP);
		}
	}
	assert_int_equal(news, 63);
	assert_int_equal(last_new, 62);
	assert_i64_eq(wu_engine_today(eng)->used, 63);
}

static void test_next_day_and_backlog(void **state)
{
	(void)state;
	struct tally t;
	struct wu_event ev = {0};

	conf_make(SEED, 0, 1440, WU_BURST_DAY, WU_OVERFLOW_DEFER);
	engine_make(T0);
	offer(T0 + WU_HOUR, WU_ISP_OTHER, 100, &t);
	assert_int_equal(t.n[WU_NEW], 63);
	events(WU_EV_DAY, NULL);

	assert_int_equal(wu_engine_tick(eng, T0 + WU_DAY - 1), 0);
	assert_int_equal(events(WU_EV_DAY, NULL), 0);
	assert_int_equal(wu_engine_tick(eng, T0 + WU_DAY), 1);
	assert_int_equal(events(WU_EV_DAY, &ev), 1);
	assert_int_equal(ev.date, D_20261201 + 1);
	assert_int_equal(ev.step, 2);
	assert_i64_eq(ev.cap, 83);
	assert_int_equal(wu_engine_tick(eng, T0 + WU_DAY), 0);

	const struct wu_day_stats *y = wu_engine_yesterday(eng);
	assert_int_equal(y->date, D_20261201);
	assert_int_equal(y->step, 1);
	assert_i64_eq(y->used, 63);
	const struct wu_day_stats *d = wu_engine_today(eng);
	assert_int_equal(d->step, 2);
	assert_i64_eq(d->cap, 83);
	assert_i64_eq(d->used, 0);

	/* The 37 deferred come back with 100 new ones: 83 go. */
	offer(T0 + WU_DAY, WU_ISP_OTHER, 137, &t);
	assert_int_equal(t.n[WU_NEW], 83);
	assert_int_equal(t.n[WU_WAIT], 54);
	assert_i64_eq(t.until_min, T0 + 2 * WU_DAY);
}

static void test_seed_ten_days_then_hold(void **state)
{
	(void)state;
	conf_make(SEED, 0, 1440, WU_BURST_DAY, WU_OVERFLOW_OLD);
	engine_make(T0);
	for (int day = 0; day < 13; day++) {
		wu_time_t now = T0 + day * WU_DAY + 5 * WU_HOUR;
		int64_t want = seed_caps[day < 10 ? day : 9];
		assert_int_equal(take_new(now, day % 3, 30000), (int)want);
		assert_int_equal(wu_engine_today(eng)->step, day + 1);
		assert_i64_eq(wu_engine_today(eng)->cap, want);
	}
	assert_int_equal(wu_engine_held(eng), 0);
}

static void test_after_unlimited(void **state)
{
	(void)state;
	conf_make("day,cap\n1,10\n2,20\n", 0, 1440, WU_HOUR, WU_OVERFLOW_OLD);
	conf.schedule.after = WU_AFTER_UNLIMITED;
	engine_make(T0);
	assert_int_equal(take_new(T0 + 2 * WU_DAY, WU_ISP_OTHER, 50000), 50000);
	assert_i64_eq(wu_engine_today(eng)->cap, WU_UNLIMITED);
	assert_int_equal(wu_engine_today(eng)->step, 3);
}

static void test_several_midnights_at_once(void **state)
{
	(void)state;
	conf_make(SEED, 0, 1440, WU_BURST_DAY, WU_OVERFLOW_OLD);
	engine_make(T0 + WU_HOUR);
	assert_int_equal(wu_engine_tick(eng, T0 + 3 * WU_DAY + WU_HOUR), 1);
	assert_int_equal(wu_engine_today(eng)->step, 4);
	assert_i64_eq(wu_engine_today(eng)->cap, 106);
	assert_int_equal(take_new(T0 + 3 * WU_DAY + WU_HOUR, WU_ISP_OTHER, 1000), 106);
}

static void test_not_started(void **state)
{
	(void)state;
	struct tally t;

	conf_make(SEED, 0, 1440, WU_BURST_DAY, WU_OVERFLOW_OLD);
	engine_make(T0 - 2 * WU_DAY);
	offer(T0 - WU_DAY, WU_ISP_OTHER, 5, &t);
	assert_int_equal(t.n[WU_OLD], 5);
	assert_int_equal(t.why[WU_WHY_NOT_STARTED], 5);
	assert_int_equal(wu_engine_today(eng)->step, 0);
	assert_i64_eq(wu_engine_today(eng)->cap, 0);
	/* Day 1 starts at local midnight. */
	assert_int_equal(take_new(T0, WU_ISP_OTHER, 100), 63);
	assert_int_equal(wu_engine_today(eng)->step, 1);
	/* Days before the start are not held days. */
	assert_int_equal(wu_engine_held(eng), 0);
}

static void test_hourly_cap_schedule(void **state)
{
	(void)state;
	conf_make("day,hourly_cap\n1,10\n2,20\n", 0, 1440, WU_HOUR, WU_OVERFLOW_DEFER);
	engine_make(T0);
	assert_int_equal(take_new(T0, WU_ISP_OTHER, 1000), 10);
	const struct wu_day_stats *d = wu_engine_today(eng);
	assert_i64_eq(d->cap, 240);
	assert_i64_eq(d->hourly_cap, 10);
	/* Ten more in the next hour, not more. */
	int n = 0;
	for (wu_time_t now = T0 + WU_MINUTE; now <= T0 + WU_HOUR; now += WU_MINUTE)
		n += take_new(now, WU_ISP_OTHER, 1000);
	assert_in_range(n, 9, 11);
}

/* ---- pacing ---- */

static void test_pacing_default_burst(void **state)
{
	(void)state;
	struct tally t;
	int total, by_noon = 0, wakeups = 0;

	conf_make("day,cap\n1,2400\n2,2400\n", 0, 1440, WU_HOUR, WU_OVERFLOW_DEFER);
	engine_make(T0);
	/* One hour's share at once, the rest waits for the drip. */
	offer(T0, WU_ISP_OTHER, 500, &t);
	assert_int_equal(t.n[WU_NEW], 100);
	assert_int_equal(t.why[WU_WHY_PACING], 400);
	assert_true(t.until_min > T0);
	assert_true(t.until_max <= T0 + 36 * WU_USEC + 1);
	total = t.n[WU_NEW];

	/* Wake when the engine says, take what is offered, all day long. */
	wu_time_t now = T0;
	while (1) {
		wu_time_t next = wu_engine_next_wakeup(eng, now);
		assert_true(next > now);
		now = next;
		if (now >= T0 + WU_DAY)
			break;
		int n = take_new(now, WU_ISP_OTHER, 10000);
		assert_true(n <= 2);
		total += n;
		if (now < T0 + 12 * WU_HOUR)
			by_noon = total;
		assert_true(++wakeups < 20000);
	}
	assert_int_equal(total, 2400);
	assert_in_range(by_noon, 1298, 1302);
	assert_i64_eq(wu_engine_today(eng)->used, 2400);
}

static void test_pacing_overflow_old(void **state)
{
	(void)state;
	struct tally t;

	conf_make(SEED, 0, 1440, WU_HOUR, WU_OVERFLOW_OLD);
	engine_make(T0);
	/* 63 a day: about 2.6 at once. */
	offer(T0, WU_ISP_OTHER, 100, &t);
	assert_in_range(t.n[WU_NEW], 2, 3);
	assert_int_equal(t.n[WU_OLD], 100 - t.n[WU_NEW]);
	assert_int_equal(t.why[WU_WHY_PACING], 100 - t.n[WU_NEW]);

	/* Offered once a minute all day: the cap is reached, never passed. */
	int total = t.n[WU_NEW];
	int hour_max = 0, in_hour = 0;
	for (int m = 1; m < 1440; m++) {
		offer(T0 + m * WU_MINUTE, WU_ISP_OTHER, 5, &t);
		total += t.n[WU_NEW];
		in_hour += t.n[WU_NEW];
		if (m % 60 == 59) {
			if (in_hour > hour_max)
				hour_max = in_hour;
			in_hour = 0;
		}
	}
	assert_int_equal(total, 63);
	assert_in_range(hour_max, 2, 6);
}

static void test_window(void **state)
{
	(void)state;
	struct tally t;

	conf_make(SEED, 8 * 60, 22 * 60, WU_BURST_DAY, WU_OVERFLOW_DEFER);
	engine_make(T0);
	offer(T0 + WU_HOUR, WU_ISP_OTHER, 3, &t);
	assert_int_equal(t.n[WU_WAIT], 3);
	assert_int_equal(t.why[WU_WHY_WINDOW], 3);
	assert_i64_eq(t.until_min, T0 + 8 * WU_HOUR);
	assert_i64_eq(wu_engine_next_wakeup(eng, T0 + WU_HOUR), T0 + 8 * WU_HOUR);

	assert_int_equal(take_new(T0 + 8 * WU_HOUR, WU_ISP_OTHER, 10), 10);
	offer(T0 + 22 * WU_HOUR, WU_ISP_OTHER, 3, &t);
	assert_int_equal(t.why[WU_WHY_WINDOW], 3);
	assert_true(t.until_min > T0 + 22 * WU_HOUR);
	assert_true(t.until_max <= T0 + WU_DAY + 8 * WU_HOUR);
	assert_i64_eq(wu_engine_today(eng)->used, 10);
}

static void test_window_overflow_old(void **state)
{
	(void)state;
	struct tally t;

	conf_make(SEED, 8 * 60, 22 * 60, WU_BURST_DAY, WU_OVERFLOW_OLD);
	engine_make(T0);
	offer(T0 + 7 * WU_HOUR + 59 * WU_MINUTE, google, 4, &t);
	assert_int_equal(t.n[WU_OLD], 4);
	assert_int_equal(t.why[WU_WHY_WINDOW], 4);
	assert_i64_eq(wu_engine_today(eng)->used, 0);
}

static void test_window_pacing(void **state)
{
	(void)state;
	/* 1400 over a 14-hour window: 100 at the open, then 100 an hour. */
	conf_make("day,cap\n1,1400\n", 8 * 60, 22 * 60, WU_HOUR, WU_OVERFLOW_DEFER);
	engine_make(T0);
	assert_int_equal(take_new(T0 + 8 * WU_HOUR, WU_ISP_OTHER, 5000), 100);
	int n = 0;
	for (wu_time_t now = T0 + 8 * WU_HOUR; now < T0 + 22 * WU_HOUR; now += WU_MINUTE)
		n += take_new(now, WU_ISP_OTHER, 5000);
	assert_in_range(n, 1290, 1300);
	assert_int_equal(take_new(T0 + 23 * WU_HOUR, WU_ISP_OTHER, 5000), 0);
}

/* ---- ISPs ---- */

static void test_isp_share(void **state)
{
	(void)state;
	struct tally t;

	conf_make(SEED, 0, 1440, WU_BURST_DAY, WU_OVERFLOW_OLD);
	conf.throttle[WU_ROUTE_NEW][google].share = 0.45;
	engine_make(T0);
	offer(T0 + WU_MINUTE, google, 100, &t);
	assert_int_equal(t.n[WU_NEW], 28);
	assert_int_equal(t.why[WU_WHY_SHARE], 72);
	/* Other ISPs get the rest of the cap. */
	offer(T0 + WU_MINUTE, yahoo, 100, &t);
	assert_int_equal(t.n[WU_NEW], 35);
	assert_int_equal(t.why[WU_WHY_CAP], 65);
	const struct wu_day_stats *d = wu_engine_today(eng);
	assert_i64_eq(d->sent[WU_ROUTE_NEW][google], 28);
	assert_i64_eq(d->sent[WU_ROUTE_NEW][yahoo], 35);

	/* The share is of each day's cap: 45% of 83 is 37. */
	assert_int_equal(take_new(T0 + WU_DAY, google, 100), 37);
}

static void test_isp_share_count(void **state)
{
	(void)state;
	conf_make(SEED, 0, 1440, WU_BURST_DAY, WU_OVERFLOW_OLD);
	conf.throttle[WU_ROUTE_NEW][yahoo].share_count = 10;
	engine_make(T0);
	assert_int_equal(take_new(T0, yahoo, 100), 10);
	assert_int_equal(take_new(T0, google, 100), 53);
}

static void test_isp_rate(void **state)
{
	(void)state;
	struct tally t;

	conf_make("day,cap\n1,100000\n", 0, 1440, WU_BURST_DAY, WU_OVERFLOW_DEFER);
	conf.throttle[WU_ROUTE_NEW][google].rate = 1;
	conf.throttle[WU_ROUTE_NEW][google].burst = 1;
	engine_make(T0);
	offer(T0 + WU_HOUR, google, 5, &t);
	assert_int_equal(t.n[WU_NEW], 1);
	assert_int_equal(t.why[WU_WHY_ISP_RATE], 4);
	assert_true(t.until_min > T0 + WU_HOUR);
	assert_true(t.until_max <= T0 + WU_HOUR + WU_USEC + 2);
	/* Another ISP is not slowed. */
	assert_int_equal(take_new(T0 + WU_HOUR, yahoo, 50), 50);
	/* One a second: 60 in a minute, not more. */
	int n = 0;
	for (wu_time_t now = T0 + WU_HOUR + WU_USEC; now <= T0 + WU_HOUR + WU_MINUTE;
	     now += WU_USEC / 10)
		n += take_new(now, google, 100);
	assert_in_range(n, 59, 61);
}

static void test_next_wakeup_isp_token(void **state)
{
	(void)state;
	/* A message waits for the ISP's next token: the wakeup is no later. */
	conf_make("day,cap\n1,100000\n", 0, 1440, WU_BURST_DAY, WU_OVERFLOW_DEFER);
	conf.throttle[WU_ROUTE_NEW][google].rate = 1;
	conf.throttle[WU_ROUTE_NEW][google].burst = 1;
	engine_make(T0);
	assert_int_equal(take_new(T0 + WU_HOUR, google, 5), 1);
	struct wu_decision d = wu_engine_route(eng, T0 + WU_HOUR, google);
	assert_int_equal(d.kind, WU_WAIT);
	wu_time_t w = wu_engine_next_wakeup(eng, T0 + WU_HOUR);
	if (w > d.until) {
		print_error("next_wakeup %+" PRId64 " us after the ISP token at %+" PRId64 " us\n",
		            w - T0, d.until - T0);
		fail();
	}
}

static void test_isp_rate_cut(void **state)
{
	(void)state;
	conf_make("day,cap\n1,100000\n", 0, 1440, WU_BURST_DAY, WU_OVERFLOW_DEFER);
	conf.throttle[WU_ROUTE_NEW][google].rate = 10;
	conf.throttle[WU_ROUTE_NEW][google].burst = 1;
	engine_make(T0);
	wu_time_t at = T0 + WU_HOUR;
	take_new(at, google, 100);
	wu_engine_cut(eng, at, WU_ROUTE_NEW, google, 0.1, WU_HOUR);
	/* 1/s for the hold, whatever succeeds meanwhile. */
	int n = 0;
	for (wu_time_t now = at + 1; now <= at + 20 * WU_USEC; now += WU_USEC / 10) {
		int k = take_new(now, google, 100);
		for (int i = 0; i < k; i++)
			outcome(now, WU_ROUTE_NEW, google, WU_ACCEPTED);
		n += k;
	}
	assert_in_range(n, 19, 21);
	/* Yahoo, and google on the old route, are unaffected. */
	assert_int_equal(take_new(at + WU_MINUTE, yahoo, 100), 100);
}

static void test_cut_without_rate_scales_pacing(void **state)
{
	(void)state;
	/* 86,400 a day over the whole day: pacing releases 1/s.  Google has no
	 * rate of its own; a cut to 10% holds it to 0.1/s of that release. */
	conf_make("day,cap\n1,86400\n", 0, 1440, WU_BURST_DAY, WU_OVERFLOW_DEFER);
	engine_make(T0);
	wu_time_t at = T0 + WU_HOUR;
	assert_int_equal(take_new(at, google, 50), 50);
	wu_engine_cut(eng, at, WU_ROUTE_NEW, google, 0.1, WU_HOUR);
	int n = 0;
	for (wu_time_t now = at + 1; now <= at + 100 * WU_USEC; now += WU_USEC / 2)
		n += take_new(now, google, 100);
	assert_in_range(n, 9, 12);
	/* Yahoo takes what the pacing bucket has. */
	assert_int_equal(take_new(at + 101 * WU_USEC, yahoo, 100), 100);
	/* After the hold, successes open google up again step by step, and at
	 * factor 1 it is unlimited once more. */
	wu_time_t later = at + 2 * WU_HOUR;
	for (int i = 0; i < 60; i++)
		outcome(later, WU_ROUTE_NEW, google, WU_ACCEPTED);
	assert_int_equal(take_new(later, google, 500), 500);
}

/* The factor of google's new-route throttle, from the saved state (1 when
 * the throttle is untouched and not saved). */
static double google_factor(void)
{
	char buf[8192], key[32];
	const char *p;
	double f = 1;

	assert_true(wu_engine_save(eng, buf, sizeof buf) > 0);
	snprintf(key, sizeof key, "throttle 0 %d ", google);
	if ((p = strstr(buf, key)))
		sscanf(p + strlen(key), "%lf", &f);
	return f;
}

static void test_outcomes_of_one_answer(void **state)
{
	(void)state;
	conf_make("day,cap\n1,100000\n", 0, 1440, WU_BURST_DAY, WU_OVERFLOW_DEFER);
	conf.throttle[WU_ROUTE_NEW][google].rate = 100;
	engine_make(T0);
	wu_time_t at = T0 + WU_HOUR;
	int date = wu_engine_today(eng)->date;
	assert_int_equal(take_new(at, google, 40), 40);
	/* A 429 on a request of 40 from an API: counted and given back, the
	 * throttle untouched. */
	answer(at, WU_ROUTE_NEW, google, WU_TEMPFAIL, date, 40, WU_SCOPE_API);
	assert_i64_eq(wu_engine_today(eng)->used, 0);
	assert_i64_eq(wu_engine_today(eng)->result[WU_ROUTE_NEW][google][WU_TEMPFAIL], 40);
	assert_near(google_factor(), 1, 1e-12);
	/* The same answer as ISP feedback halves the rate once, not 40 times. */
	assert_int_equal(take_new(at, google, 40), 40);
	answer(at, WU_ROUTE_NEW, google, WU_TEMPFAIL, date, 40, WU_SCOPE_ISP);
	assert_i64_eq(wu_engine_today(eng)->used, 0);
	assert_near(google_factor(), 0.5, 1e-12);
}

static void test_suspension(void **state)
{
	(void)state;
	struct tally t;
	wu_time_t at = T0 + WU_HOUR;

	conf_make("day,cap\n1,100000\n", 0, 1440, WU_BURST_DAY, WU_OVERFLOW_DEFER);
	conf.backoff.suspend_after = 3;
	conf.backoff.suspend = 10 * WU_MINUTE;
	engine_make(T0);
	assert_int_equal(take_new(at, google, 3), 3);
	for (int i = 0; i < 3; i++)
		outcome(at, WU_ROUTE_NEW, google, WU_TEMPFAIL);
	offer(at + WU_USEC, google, 2, &t);
	assert_int_equal(t.n[WU_WAIT], 2);
	assert_int_equal(t.why[WU_WHY_SUSPENDED], 2);
	assert_i64_eq(t.until_min, at + 10 * WU_MINUTE);
	assert_true(wu_engine_next_wakeup(eng, at + WU_USEC) <= at + 10 * WU_MINUTE);
	/* Yahoo is still fine. */
	assert_int_equal(take_new(at + WU_USEC, yahoo, 5), 5);
	/* The suspension ends on time. */
	assert_int_equal(take_new(at + 10 * WU_MINUTE - 1, google, 1), 0);
	assert_int_equal(take_new(at + 10 * WU_MINUTE, google, 1), 1);
}

static void test_outcome_counts(void **state)
{
	(void)state;
	conf_make(SEED, 0, 1440, WU_BURST_DAY, WU_OVERFLOW_OLD);
	engine_make(T0);
	take_new(T0, google, 5);
	outcome(T0, WU_ROUTE_NEW, google, WU_ACCEPTED);
	outcome(T0, WU_ROUTE_NEW, google, WU_DELIVERED);
	outcome(T0, WU_ROUTE_NEW, google, WU_DELIVERED);
	outcome(T0, WU_ROUTE_OLD, yahoo, WU_BOUNCE);
	const struct wu_day_stats *d = wu_engine_today(eng);
	assert_i64_eq(d->result[WU_ROUTE_NEW][google][WU_ACCEPTED], 1);
	assert_i64_eq(d->result[WU_ROUTE_NEW][google][WU_DELIVERED], 2);
	assert_i64_eq(d->result[WU_ROUTE_OLD][yahoo][WU_BOUNCE], 1);
	assert_i64_eq(d->result[WU_ROUTE_NEW][yahoo][WU_BOUNCE], 0);
	/* Out-of-range ISP ids are ignored or clamped, never a crash. */
	outcome(T0, WU_ROUTE_NEW, WU_ISP_MAX + 5, WU_DELIVERED);
	outcome(T0, WU_ROUTE_NEW, -1, WU_DELIVERED);
	struct wu_decision dd = wu_engine_route(eng, T0, -3);
	assert_in_range(dd.kind, WU_NEW, WU_WAIT);
}

/* ---- give-backs ---- */

static void test_tempfail_gives_back(void **state)
{
	(void)state;
	struct tally t;

	conf_make(SEED, 0, 1440, WU_BURST_DAY, WU_OVERFLOW_OLD);
	engine_make(T0);
	assert_int_equal(take_new(T0 + WU_MINUTE, google, 100), 63);
	offer(T0 + WU_MINUTE, google, 1, &t);
	assert_int_equal(t.why[WU_WHY_CAP], 1);

	/* Refused for now: the unit comes back. */
	outcome(T0 + 2 * WU_MINUTE, WU_ROUTE_NEW, google, WU_TEMPFAIL);
	assert_i64_eq(wu_engine_today(eng)->used, 62);
	assert_i64_eq(wu_engine_today(eng)->sent[WU_ROUTE_NEW][google], 62);
	assert_int_equal(take_new(T0 + 3 * WU_MINUTE, google, 100), 1);

	/* Refused for good: the unit comes back too. */
	outcome(T0 + 4 * WU_MINUTE, WU_ROUTE_NEW, yahoo, WU_PERMFAIL);
	assert_int_equal(take_new(T0 + 5 * WU_MINUTE, yahoo, 100), 1);

	/* No answer: the provider may have it; the unit stays spent. */
	outcome(T0 + 6 * WU_MINUTE, WU_ROUTE_NEW, google, WU_TIMEOUT);
	assert_int_equal(take_new(T0 + 7 * WU_MINUTE, google, 100), 0);
	/* Nor does an acceptance or a later report give anything back. */
	outcome(T0 + 8 * WU_MINUTE, WU_ROUTE_NEW, google, WU_ACCEPTED);
	outcome(T0 + 8 * WU_MINUTE, WU_ROUTE_NEW, google, WU_BOUNCE);
	outcome(T0 + 8 * WU_MINUTE, WU_ROUTE_NEW, google, WU_DEFERRED);
	assert_int_equal(take_new(T0 + 9 * WU_MINUTE, google, 100), 0);
	assert_i64_eq(wu_engine_today(eng)->used, 63);
}

static void test_clock_jumps_back(void **state)
{
	(void)state;
	conf_make(SEED, 0, 1440, WU_BURST_DAY, WU_OVERFLOW_OLD);
	engine_make(T0);
	assert_int_equal(take_new(T0 + 2 * WU_HOUR, google, 100), 63);
	/* The clock steps back an hour: the same date, its count stands. */
	assert_int_equal(take_new(T0 + WU_HOUR, google, 100), 0);
	/* Back into yesterday, a date the engine was never on and before one
	 * it granted: no cap there, nothing goes. */
	assert_int_equal(wu_engine_tick(eng, T0 - WU_HOUR), 1);
	assert_int_equal(take_new(T0 - WU_HOUR, google, 100), 0);
	assert_int_equal(wu_engine_today(eng)->date, D_20261201 - 1);
	assert_i64_eq(wu_engine_today(eng)->cap, 0);
	/* Forward again: today as it was left, then the next day as usual. */
	assert_int_equal(take_new(T0 + 3 * WU_HOUR, google, 100), 0);
	assert_i64_eq(wu_engine_today(eng)->used, 63);
	assert_int_equal(take_new(T0 + WU_DAY, google, 100), 83);
}

/* The day follows the wall clock, a date's cap is granted once: a jump
 * forward into tomorrow grants tomorrow's cap; back on today, today is as
 * it was left (what it had not used is still there); forward again,
 * tomorrow is as it was left; and so through a save and a load. */
static void test_clock_jumps_forward_then_back(void **state)
{
	(void)state;
	char *buf, err[WU_ERR_MAX] = "";

	conf_make(SEED, 0, 1440, WU_BURST_DAY, WU_OVERFLOW_DEFER);
	engine_make(T0);
	assert_int_equal(take_new(T0 + 2 * WU_HOUR, google, 10), 10);
	assert_int_equal(take_new(T0 + WU_DAY + 2 * WU_HOUR, google, 50), 50);
	assert_int_equal(wu_engine_today(eng)->date, D_20261201 + 1);
	/* back to the right time: today again, 10 of 63 used */
	assert_int_equal(wu_engine_tick(eng, T0 + 3 * WU_HOUR), 1);
	assert_int_equal(wu_engine_today(eng)->date, D_20261201);
	assert_i64_eq(wu_engine_today(eng)->used, 10);
	assert_int_equal(take_new(T0 + 3 * WU_HOUR, google, 100), 53);
	/* a restart keeps both dates as they were */
	assert_non_null(buf = wu_engine_save_alloc(eng));
	wu_engine_free(eng);
	engine_make(T0 + 3 * WU_HOUR);
	assert_int_equal(wu_engine_load(eng, buf, T0 + 3 * WU_HOUR, err, sizeof err), 0);
	free(buf);
	assert_int_equal(wu_engine_today(eng)->date, D_20261201);
	assert_i64_eq(wu_engine_today(eng)->used, 63);
	assert_int_equal(take_new(T0 + 4 * WU_HOUR, google, 100), 0);
	/* tomorrow, at last: what is left of its cap, granted once */
	assert_int_equal(take_new(T0 + WU_DAY + 3 * WU_HOUR, google, 100), 83 - 50);
	/* and the day after is new */
	assert_int_equal(take_new(T0 + 2 * WU_DAY + WU_HOUR, google, 1000), 73);
}

static void test_share_give_back(void **state)
{
	(void)state;
	conf_make(SEED, 0, 1440, WU_BURST_DAY, WU_OVERFLOW_OLD);
	conf.throttle[WU_ROUTE_NEW][google].share = 0.45;
	engine_make(T0);
	assert_int_equal(take_new(T0, google, 100), 28);
	outcome(T0 + 1, WU_ROUTE_NEW, google, WU_TEMPFAIL);
	assert_int_equal(take_new(T0 + 2, google, 100), 1);
	outcome(T0 + 3, WU_ROUTE_NEW, google, WU_TIMEOUT);
	assert_int_equal(take_new(T0 + 4, google, 100), 0);
}

static void test_give_back_only_same_day(void **state)
{
	(void)state;
	conf_make(SEED, 0, 1440, WU_BURST_DAY, WU_OVERFLOW_OLD);
	engine_make(T0);
	struct wu_decision d = wu_engine_route(eng, T0 + WU_DAY - WU_MINUTE, google);
	assert_int_equal(d.kind, WU_NEW);
	assert_int_equal(d.date, D_20261201);
	assert_int_equal(take_new(T0 + WU_DAY - WU_MINUTE, google, 100), 62);

	/* Day 2: use the whole cap, then yesterday's send is refused. */
	assert_int_equal(take_new(T0 + WU_DAY, google, 100), 83);
	d = wu_engine_route(eng, T0 + WU_DAY, google);
	assert_int_equal(d.kind, WU_OLD);
	assert_int_equal(d.date, D_20261201 + 1);
	wu_engine_outcome(eng, T0 + WU_DAY + 1, WU_ROUTE_NEW, google, WU_TEMPFAIL, D_20261201);
	wu_engine_outcome(eng, T0 + WU_DAY + 1, WU_ROUTE_NEW, google, WU_PERMFAIL, D_20261201);
	assert_int_equal(take_new(T0 + WU_DAY + 2, google, 100), 0);
	assert_i64_eq(wu_engine_today(eng)->used, 83);
	/* A refusal of today's send still gives back. */
	wu_engine_outcome(eng, T0 + WU_DAY + 3, WU_ROUTE_NEW, google, WU_TEMPFAIL, D_20261201 + 1);
	assert_int_equal(take_new(T0 + WU_DAY + 4, google, 100), 1);
	/* Provider reports count on the day they arrive. */
	wu_engine_outcome(eng, T0 + WU_DAY + 5, WU_ROUTE_NEW, google, WU_DELIVERED, D_20261201);
	assert_i64_eq(wu_engine_today(eng)->result[WU_ROUTE_NEW][google][WU_DELIVERED], 1);
}

static void test_tempfail_old_route_no_cap_change(void **state)
{
	(void)state;
	conf_make(SEED, 0, 1440, WU_BURST_DAY, WU_OVERFLOW_OLD);
	engine_make(T0);
	assert_int_equal(take_new(T0, google, 100), 63);
	struct tally t;
	offer(T0, google, 10, &t);
	assert_int_equal(t.n[WU_OLD], 10);
	/* An old-route refusal does not free a new-route unit. */
	outcome(T0, WU_ROUTE_OLD, google, WU_TEMPFAIL);
	assert_int_equal(take_new(T0, google, 100), 0);
	assert_i64_eq(wu_engine_today(eng)->used, 63);
}

/* ---- the health gate ---- */

static const char *BIG = "day,cap\n1,5000\n2,6000\n3,7000\n4,8000\n";

/* n new-route outcomes at now: one in every k a bounce, the rest delivered. */
static void report(wu_time_t now, int isp, int n, int k)
{
	for (int i = 0; i < n; i++)
		outcome(now, WU_ROUTE_NEW, isp, i % k == k - 1 ? WU_BOUNCE : WU_DELIVERED);
}

/* A cluster's other nodes: their own counts join this node's in the gate.
 * 60 reports here and 60 from the others, one in five a bounce: neither
 * half alone reaches the gate's minimum sample of 120, the two together
 * halt the ramp; another date's counts count for nothing. */
static void test_gate_peers(void **state)
{
	(void)state;
	struct wu_gate_counts own, peer = {.delivered = 48, .bounces = 12};
	struct wu_gate_past own_past, none = {0};
	struct wu_gate_verdict v;
	int date;

	conf_make(BIG, 0, 1440, WU_BURST_DAY, WU_OVERFLOW_OLD);
	engine_make(T0);
	assert_int_equal(take_new(T0 + WU_HOUR, WU_ISP_OTHER, 60), 60);
	events(WU_EV_DAY, NULL);
	report(T0 + 2 * WU_HOUR, WU_ISP_OTHER, 60, 5);
	wu_engine_gate(eng, &v);
	assert_int_equal(v.state, WU_GATE_OK);
	date = wu_engine_today(eng)->date;
	wu_engine_gate_peers(eng, T0 + 2 * WU_HOUR, date - 1, &peer, &none);
	wu_engine_gate(eng, &v);
	assert_int_equal(v.state, WU_GATE_OK);
	assert_int_equal(events(WU_EV_GATE_HALT, NULL), 0);
	wu_engine_gate_peers(eng, T0 + 2 * WU_HOUR, date, &peer, &none);
	assert_int_equal(events(WU_EV_GATE_HALT, NULL), 1);
	wu_engine_gate(eng, &v);
	assert_int_equal(v.state, WU_GATE_HALT);
	assert_int_equal(v.bounce_n, 120);
	/* what a node publishes stays its own */
	wu_engine_gate_own(eng, &own, &own_past);
	assert_i64_eq(own.delivered + own.bounces, 60);
	assert_i64_eq(own.bounces, 12);
}

static void test_gate_halt_holds_day(void **state)
{
	(void)state;
	struct tally t;
	struct wu_event ev = {0};
	struct wu_gate_verdict v;

	conf_make(BIG, 0, 1440, WU_BURST_DAY, WU_OVERFLOW_OLD);
	conf.gate.resume = WU_RESUME_NEXT_DAY;
	engine_make(T0);
	assert_int_equal(take_new(T0 + WU_HOUR, WU_ISP_OTHER, 2000), 2000);
	events(WU_EV_DAY, NULL);
	report(T0 + 2 * WU_HOUR, WU_ISP_OTHER, 2000, 10);

	assert_int_equal(events(WU_EV_GATE_HALT, &ev), 1);
	assert_int_equal(ev.route, WU_ROUTE_NEW);
	assert_true(ev.bounce_rate > 0.05 && ev.bounce_rate < 0.2);
	assert_true(ev.text[0] != '\0');
	wu_engine_gate(eng, &v);
	assert_int_equal(v.state, WU_GATE_HALT);
	assert_near(v.bounce_rate, 0.1, 0.001);
	assert_int_equal(wu_engine_today(eng)->gate, WU_GATE_HALT);

	/* The new route stops for the rest of the day. */
	offer(T0 + 3 * WU_HOUR, google, 10, &t);
	assert_int_equal(t.n[WU_OLD], 10);
	assert_int_equal(t.why[WU_WHY_HALTED], 10);
	offer(T0 + WU_DAY - 1, google, 10, &t);
	assert_int_equal(t.why[WU_WHY_HALTED], 10);

	/* Next day: running again, but day 1 was held, so step 1 again; day 2
	 * is the day that does not advance the schedule. */
	assert_int_equal(wu_engine_tick(eng, T0 + WU_DAY), 1);
	assert_int_equal(wu_engine_yesterday(eng)->gate, WU_GATE_HALT);
	assert_int_equal(wu_engine_today(eng)->held, 1);
	assert_int_equal(wu_engine_held(eng), 1);
	assert_int_equal(wu_engine_today(eng)->step, 1);
	assert_i64_eq(wu_engine_today(eng)->cap, 5000);
	assert_int_equal(wu_engine_today(eng)->gate, WU_GATE_OK);
	assert_int_equal(take_new(T0 + WU_DAY + WU_HOUR, WU_ISP_OTHER, 10), 10);

	/* A healthy day advances again: day 3 is step 2. */
	report(T0 + WU_DAY + 2 * WU_HOUR, WU_ISP_OTHER, 10, 1000);
	wu_engine_tick(eng, T0 + 2 * WU_DAY);
	assert_int_equal(wu_engine_today(eng)->held, 0);
	assert_int_equal(wu_engine_today(eng)->step, 2);
	assert_i64_eq(wu_engine_today(eng)->cap, 6000);
	assert_int_equal(wu_engine_held(eng), 1);
}

static void test_gate_pool_after_halt(void **state)
{
	(void)state;
	struct wu_gate_verdict v;

	conf_make(BIG, 0, 1440, WU_BURST_DAY, WU_OVERFLOW_OLD);
	conf.gate.resume = WU_RESUME_NEXT_DAY;
	engine_make(T0);
	/* Day 1: 100 outcomes, 4 bounces; too few to judge alone. */
	take_new(T0 + WU_HOUR, WU_ISP_OTHER, 1000);
	report(T0 + WU_HOUR, WU_ISP_OTHER, 100, 25);
	wu_engine_gate(eng, &v);
	assert_int_equal(v.state, WU_GATE_OK);
	/* Day 2 pools day 1 until it has 120 itself: 20 more with 3 bounces
	 * make 7 of 120, and the gate halts on the two days. */
	wu_engine_tick(eng, T0 + WU_DAY);
	take_new(T0 + WU_DAY + WU_HOUR, WU_ISP_OTHER, 1000);
	report(T0 + WU_DAY + WU_HOUR, WU_ISP_OTHER, 20, 6);
	assert_int_equal(events(WU_EV_GATE_HALT, NULL), 1);
	wu_engine_gate(eng, &v);
	assert_int_equal(v.bounce_days, 2);
	/* After the halt the gate starts afresh: day 3's first 10 outcomes,
	 * all bounces, are not judged with the halted days. */
	wu_engine_tick(eng, T0 + 2 * WU_DAY);
	take_new(T0 + 2 * WU_DAY + WU_HOUR, WU_ISP_OTHER, 10);
	report(T0 + 2 * WU_DAY + WU_HOUR, WU_ISP_OTHER, 10, 1);
	wu_engine_gate(eng, &v);
	assert_int_equal(v.state, WU_GATE_OK);
	assert_int_equal(v.bounce_days, 1);
	assert_int_equal(events(WU_EV_GATE_HALT, NULL), 0);
}

static void test_gate_defer_halted_waits(void **state)
{
	(void)state;
	struct tally t;

	conf_make(BIG, 0, 1440, WU_BURST_DAY, WU_OVERFLOW_DEFER);
	conf.gate.resume = WU_RESUME_NEXT_DAY;
	engine_make(T0);
	take_new(T0 + WU_HOUR, WU_ISP_OTHER, 1000);
	report(T0 + WU_HOUR, WU_ISP_OTHER, 1000, 5); /* 20% */
	offer(T0 + 2 * WU_HOUR, WU_ISP_OTHER, 3, &t);
	assert_int_equal(t.n[WU_WAIT], 3);
	assert_int_equal(t.why[WU_WHY_HALTED], 3);
	assert_i64_eq(t.until_min, T0 + WU_DAY);
}

static void test_gate_manual_resume(void **state)
{
	(void)state;
	struct tally t;
	struct wu_event ev = {0};

	conf_make(BIG, 0, 1440, WU_BURST_DAY, WU_OVERFLOW_OLD);
	conf.gate.resume = WU_RESUME_MANUAL;
	engine_make(T0);
	take_new(T0 + WU_HOUR, WU_ISP_OTHER, 2000);
	report(T0 + WU_HOUR, WU_ISP_OTHER, 2000, 10);
	assert_int_equal(events(WU_EV_GATE_HALT, NULL), 1);

	/* Still halted the next day, and the step does not move. */
	wu_engine_tick(eng, T0 + WU_DAY + WU_HOUR);
	offer(T0 + WU_DAY + WU_HOUR, WU_ISP_OTHER, 5, &t);
	assert_int_equal(t.why[WU_WHY_HALTED], 5);
	assert_int_equal(wu_engine_today(eng)->step, 1);
	events(WU_EV_DAY, NULL);

	wu_engine_resume(eng, T0 + WU_DAY + 2 * WU_HOUR, WU_ROUTE_NEW, "operator");
	assert_int_equal(events(WU_EV_RESUME, &ev), 1);
	assert_int_equal(ev.route, WU_ROUTE_NEW);
	assert_int_equal(take_new(T0 + WU_DAY + 2 * WU_HOUR, WU_ISP_OTHER, 10), 10);
}

static void test_gate_small_sample(void **state)
{
	(void)state;
	/* Day 1 of the seed with 3 bounces of 63: no halt, the ramp goes on. */
	conf_make(SEED, 0, 1440, WU_BURST_DAY, WU_OVERFLOW_OLD);
	engine_make(T0);
	assert_int_equal(take_new(T0 + WU_HOUR, google, 100), 63);
	report(T0 + 2 * WU_HOUR, google, 63, 21);
	assert_int_equal(wu_engine_today(eng)->result[WU_ROUTE_NEW][google][WU_BOUNCE], 3);
	assert_int_equal(events(WU_EV_GATE_HALT, NULL), 0);
	struct wu_gate_verdict v;
	wu_engine_gate(eng, &v);
	assert_true(v.state != WU_GATE_HALT);
	wu_engine_tick(eng, T0 + WU_DAY);
	assert_int_equal(wu_engine_today(eng)->step, 2);
	assert_int_equal(wu_engine_held(eng), 0);
}

static void test_gate_warn_event(void **state)
{
	(void)state;
	struct wu_event ev = {0};

	conf_make(BIG, 0, 1440, WU_BURST_DAY, WU_OVERFLOW_OLD);
	conf.gate.z = 0;
	conf.gate.min_sample = 100;
	engine_make(T0);
	take_new(T0 + WU_HOUR, WU_ISP_OTHER, 3000);
	report(T0 + WU_HOUR, WU_ISP_OTHER, 2500, 25); /* 4% */
	assert_int_equal(events(WU_EV_GATE_WARN, &ev), 1);
	assert_int_equal(ev.route, WU_ROUTE_NEW);
	assert_near(ev.bounce_rate, 0.04, 0.01);
	assert_int_equal(events(WU_EV_GATE_HALT, NULL), 0);
	assert_int_equal(wu_engine_today(eng)->gate, WU_GATE_WARN);
	/* A warning does not stop the route. */
	assert_int_equal(take_new(T0 + 2 * WU_HOUR, WU_ISP_OTHER, 10), 10);
	/* Complaints over the line halt. */
	for (int i = 0; i < 10; i++)
		outcome(T0 + 3 * WU_HOUR, WU_ROUTE_NEW, google, WU_COMPLAINT);
	assert_true(events(WU_EV_GATE_HALT, &ev) >= 1);
	assert_true(ev.complaint_rate > 0.003);
}

static void test_old_route_bounces_do_not_halt(void **state)
{
	(void)state;
	conf_make(BIG, 0, 1440, WU_BURST_DAY, WU_OVERFLOW_OLD);
	engine_make(T0);
	for (int i = 0; i < 2000; i++)
		outcome(T0 + WU_HOUR, WU_ROUTE_OLD, WU_ISP_OTHER, i % 2 ? WU_BOUNCE : WU_DELIVERED);
	assert_int_equal(events(WU_EV_GATE_HALT, NULL), 0);
	assert_int_equal(take_new(T0 + WU_HOUR, WU_ISP_OTHER, 10), 10);
}

/* ---- gated advance ---- */

static void test_gated_advance(void **state)
{
	(void)state;
	conf_make(SEED, 0, 1440, WU_BURST_DAY, WU_OVERFLOW_OLD);
	conf.advance = WU_ADVANCE_GATED;
	conf.min_fill = 0.8;
	engine_make(T0);

	/* Day 1 uses 40 of 63 (63%): not enough, day 2 repeats step 1. */
	assert_int_equal(take_new(T0 + WU_HOUR, WU_ISP_OTHER, 40), 40);
	wu_engine_tick(eng, T0 + WU_DAY);
	assert_int_equal(wu_engine_today(eng)->step, 1);
	assert_i64_eq(wu_engine_today(eng)->cap, 63);

	/* Day 2 fills it: day 3 is step 2. */
	assert_int_equal(take_new(T0 + WU_DAY + WU_HOUR, WU_ISP_OTHER, 100), 63);
	wu_engine_tick(eng, T0 + 2 * WU_DAY);
	assert_int_equal(wu_engine_today(eng)->step, 2);
	assert_i64_eq(wu_engine_today(eng)->cap, 83);

	/* 67 of 83 is 80.7%: enough. */
	assert_int_equal(take_new(T0 + 2 * WU_DAY + WU_HOUR, WU_ISP_OTHER, 67), 67);
	wu_engine_tick(eng, T0 + 3 * WU_DAY);
	assert_int_equal(wu_engine_today(eng)->step, 3);

	/* An idle day does not advance, even several of them. */
	wu_engine_tick(eng, T0 + 6 * WU_DAY);
	assert_int_equal(wu_engine_today(eng)->step, 3);
	assert_i64_eq(wu_engine_today(eng)->cap, 73);
}

static void test_gated_advance_needs_health(void **state)
{
	(void)state;
	conf_make(BIG, 0, 1440, WU_BURST_DAY, WU_OVERFLOW_OLD);
	conf.advance = WU_ADVANCE_GATED;
	conf.min_fill = 0.5;
	engine_make(T0);
	assert_int_equal(take_new(T0 + WU_HOUR, WU_ISP_OTHER, 4000), 4000);
	report(T0 + 2 * WU_HOUR, WU_ISP_OTHER, 4000, 10);
	wu_engine_tick(eng, T0 + WU_DAY);
	assert_int_equal(wu_engine_today(eng)->step, 1);
}

/* ---- restarts ---- */

static char savebuf[1 << 16];

/* Saves, frees the engine and makes a fresh one that loads the state at now. */
static void restart(wu_time_t now)
{
	char err[WU_ERR_MAX] = "";
	int n = wu_engine_save(eng, savebuf, sizeof savebuf);
	assert_true(n > 0);
	assert_int_equal((size_t)n, strlen(savebuf));
	wu_engine_free(eng);
	eng = NULL;
	engine_make(now);
	if (wu_engine_load(eng, savebuf, now, err, sizeof err) != 0) {
		print_error("load: %s\n", err);
		fail();
	}
}

static void test_restart_mid_day(void **state)
{
	(void)state;
	conf_make(SEED, 0, 1440, WU_BURST_DAY, WU_OVERFLOW_OLD);
	engine_make(T0);
	assert_int_equal(take_new(T0 + WU_HOUR, google, 30), 30);
	restart(T0 + 2 * WU_HOUR);
	assert_i64_eq(wu_engine_today(eng)->used, 30);
	assert_i64_eq(wu_engine_today(eng)->sent[WU_ROUTE_NEW][google], 30);
	assert_int_equal(take_new(T0 + 2 * WU_HOUR, google, 100), 33);
	assert_i64_eq(wu_engine_today(eng)->used, 63);

	/* And again, with the cap used up: still nothing. */
	restart(T0 + 3 * WU_HOUR);
	assert_int_equal(take_new(T0 + 3 * WU_HOUR, google, 100), 0);
}

static void test_restart_keeps_share(void **state)
{
	(void)state;
	conf_make(SEED, 0, 1440, WU_BURST_DAY, WU_OVERFLOW_OLD);
	conf.throttle[WU_ROUTE_NEW][google].share = 0.45;
	engine_make(T0);
	assert_int_equal(take_new(T0 + WU_HOUR, google, 20), 20);
	restart(T0 + WU_HOUR + 1);
	assert_int_equal(take_new(T0 + WU_HOUR + 1, google, 100), 8);
}

static void test_restart_keeps_pacing(void **state)
{
	(void)state;
	conf_make("day,cap\n1,2400\n2,2400\n", 0, 1440, WU_HOUR, WU_OVERFLOW_DEFER);
	engine_make(T0);
	assert_int_equal(take_new(T0, WU_ISP_OTHER, 500), 100);
	/* A restart is not a fresh burst. */
	restart(T0 + WU_USEC);
	assert_int_equal(take_new(T0 + WU_USEC, WU_ISP_OTHER, 500), 0);
	int total = 100;
	for (wu_time_t now = T0 + WU_MINUTE; now < T0 + WU_DAY; now += WU_MINUTE)
		total += take_new(now, WU_ISP_OTHER, 500);
	assert_int_equal(total, 2400);
}

static void test_restart_across_midnight(void **state)
{
	(void)state;
	conf_make(SEED, 0, 1440, WU_BURST_DAY, WU_OVERFLOW_OLD);
	engine_make(T0);
	assert_int_equal(take_new(T0 + WU_HOUR, google, 100), 63);
	/* Down over midnight: day 2 starts on load, step 2, fresh cap. */
	restart(T0 + WU_DAY + WU_HOUR);
	assert_int_equal(wu_engine_today(eng)->step, 2);
	assert_i64_eq(wu_engine_today(eng)->used, 0);
	assert_int_equal(take_new(T0 + WU_DAY + WU_HOUR, google, 100), 83);
}

static void test_restart_keeps_halt_and_held(void **state)
{
	(void)state;
	struct tally t;

	conf_make(BIG, 0, 1440, WU_BURST_DAY, WU_OVERFLOW_OLD);
	conf.gate.resume = WU_RESUME_NEXT_DAY;
	engine_make(T0);
	take_new(T0 + WU_HOUR, WU_ISP_OTHER, 2000);
	report(T0 + WU_HOUR, WU_ISP_OTHER, 2000, 10);
	restart(T0 + 2 * WU_HOUR);
	offer(T0 + 2 * WU_HOUR, WU_ISP_OTHER, 5, &t);
	assert_int_equal(t.why[WU_WHY_HALTED], 5);
	restart(T0 + WU_DAY + WU_HOUR);
	assert_int_equal(wu_engine_held(eng), 1);
	assert_int_equal(wu_engine_today(eng)->step, 1);
	restart(T0 + 2 * WU_DAY + WU_HOUR);
	assert_int_equal(wu_engine_held(eng), 1);
	assert_int_equal(wu_engine_today(eng)->step, 2);
}

static void test_restart_keeps_pause(void **state)
{
	(void)state;
	conf_make(SEED, 0, 1440, WU_BURST_DAY, WU_OVERFLOW_OLD);
	engine_make(T0);
	wu_engine_pause(eng, T0 + WU_HOUR, WU_ROUTE_NEW, "auth 401");
	restart(T0 + 2 * WU_HOUR);
	assert_int_equal(wu_engine_paused(eng, WU_ROUTE_NEW), 1);
	assert_int_equal(take_new(T0 + 2 * WU_HOUR, google, 1), 0);
}

static void test_save_small_buffer_and_bad_load(void **state)
{
	(void)state;
	char err[WU_ERR_MAX] = "";
	char tiny[8];

	conf_make(SEED, 0, 1440, WU_BURST_DAY, WU_OVERFLOW_OLD);
	engine_make(T0);
	take_new(T0, google, 10);
	assert_int_equal(wu_engine_save(eng, tiny, sizeof tiny), -1);
	assert_int_equal(wu_engine_save(eng, tiny, 0), -1);

	assert_int_equal(wu_engine_load(eng, "this is not a saved state", T0, err, sizeof err), -1);
	assert_true(err[0] != '\0');
	/* A failed load leaves a usable engine. */
	assert_int_equal(take_new(T0, google, 100), 53);

	/* Truncated saves of every length: refused or accepted, never a crash,
	 * and never more than the cap afterwards. */
	int n = wu_engine_save(eng, savebuf, sizeof savebuf);
	assert_true(n > 0);
	for (int cut = 0; cut < n; cut += 1 + n / 200) {
		char *part = malloc((size_t)cut + 1);
		assert_non_null(part);
		memcpy(part, savebuf, (size_t)cut);
		part[cut] = '\0';
		struct wu_engine *fresh = NULL;
		assert_int_equal(wu_engine_create(&fresh, &conf, T0, err, sizeof err), 0);
		struct wu_engine *keep = eng;
		eng = fresh;
		int rc = wu_engine_load(eng, part, T0, err, sizeof err);
		if (rc == 0) {
			int got = take_new(T0, google, 100);
			assert_true(got + wu_engine_today(eng)->used <= 63 + got);
			assert_true(wu_engine_today(eng)->used <= 63);
		}
		wu_engine_free(fresh);
		eng = keep;
		free(part);
	}
}

/* ---- pause and resume ---- */

static void test_pause_resume(void **state)
{
	(void)state;
	struct tally t;
	struct wu_event ev = {0};

	conf_make(SEED, 0, 1440, WU_BURST_DAY, WU_OVERFLOW_OLD);
	engine_make(T0);
	events(WU_EV_DAY, NULL);
	assert_int_equal(wu_engine_paused(eng, WU_ROUTE_NEW), 0);
	wu_engine_pause(eng, T0 + WU_HOUR, WU_ROUTE_NEW, "operator");
	assert_int_equal(wu_engine_paused(eng, WU_ROUTE_NEW), 1);
	assert_int_equal(wu_engine_paused(eng, WU_ROUTE_OLD), 0);
	assert_int_equal(events(WU_EV_PAUSE, &ev), 1);
	assert_int_equal(ev.route, WU_ROUTE_NEW);
	assert_i64_eq(ev.at, T0 + WU_HOUR);
	assert_err_has(ev.text, "operator");

	offer(T0 + WU_HOUR, google, 5, &t);
	assert_int_equal(t.n[WU_OLD], 5);
	assert_int_equal(t.why[WU_WHY_PAUSED], 5);
	assert_i64_eq(wu_engine_today(eng)->used, 0);

	/* A pause lasts across midnight. */
	wu_engine_tick(eng, T0 + WU_DAY);
	assert_int_equal(wu_engine_paused(eng, WU_ROUTE_NEW), 1);

	wu_engine_resume(eng, T0 + WU_DAY + WU_HOUR, WU_ROUTE_NEW, "operator");
	assert_int_equal(wu_engine_paused(eng, WU_ROUTE_NEW), 0);
	assert_int_equal(events(WU_EV_RESUME, &ev), 1);
	assert_int_equal(ev.route, WU_ROUTE_NEW);
	assert_int_equal(take_new(T0 + WU_DAY + WU_HOUR, google, 100), 83);
}

static void test_pause_old_route(void **state)
{
	(void)state;
	struct tally t;

	conf_make(SEED, 0, 1440, WU_BURST_DAY, WU_OVERFLOW_OLD);
	engine_make(T0);
	wu_engine_pause(eng, T0, WU_ROUTE_OLD, "operator");
	assert_int_equal(wu_engine_paused(eng, WU_ROUTE_OLD), 1);
	assert_int_equal(take_new(T0, google, 100), 63);
	/* Neither route can take it now: it waits. */
	offer(T0, google, 3, &t);
	assert_int_equal(t.n[WU_WAIT], 3);
	assert_int_equal(t.n[WU_OLD], 0);
	wu_engine_resume(eng, T0 + WU_MINUTE, WU_ROUTE_OLD, "operator");
	offer(T0 + WU_MINUTE, google, 3, &t);
	assert_int_equal(t.n[WU_OLD], 3);
}

/* ---- DST ---- */

static void test_new_york_dst_days(void **state)
{
	(void)state;
	char err[WU_ERR_MAX] = "";
	struct tally t;
	/* 2026-03-08 (day 2) runs 05:00Z to 04:00Z: 23 hours. */
	const wu_time_t d2 = INT64_C(1772946000) * WU_USEC, d3 = INT64_C(1773028800) * WU_USEC;

	conf_make(SEED, 0, 1440, WU_BURST_DAY, WU_OVERFLOW_DEFER);
	assert_int_equal(cal_init(&conf.calendar, "America/New_York", 2026, 3, 7, 0, 1440,
	                                  err, sizeof err),
	                 0);
	engine_make(d2 - WU_HOUR);
	assert_int_equal(wu_engine_today(eng)->step, 1);
	assert_int_equal(wu_engine_tick(eng, d2), 1);
	assert_int_equal(wu_engine_today(eng)->step, 2);
	offer(d2 + WU_MINUTE, WU_ISP_OTHER, 100, &t);
	assert_int_equal(t.n[WU_NEW], 83);
	assert_i64_eq(t.until_min, d3);
	assert_i64_eq(wu_engine_next_wakeup(eng, d2 + WU_MINUTE), d3);
	assert_int_equal(wu_engine_tick(eng, d3 - 1), 0);
	assert_int_equal(wu_engine_tick(eng, d3), 1);
	assert_int_equal(wu_engine_today(eng)->step, 3);
	assert_int_equal(take_new(d3, WU_ISP_OTHER, 100), 73);
}

static void test_new_york_dst_pacing(void **state)
{
	(void)state;
	char err[WU_ERR_MAX] = "";
	const wu_time_t d2 = INT64_C(1772946000) * WU_USEC, d3 = INT64_C(1773028800) * WU_USEC;

	/* 2300 over a 23-hour day: all of it, 100 an hour, by the end. */
	conf_make("day,cap\n1,2300\n2,2300\n3,2300\n", 0, 1440, WU_HOUR, WU_OVERFLOW_DEFER);
	assert_int_equal(cal_init(&conf.calendar, "America/New_York", 2026, 3, 7, 0, 1440,
	                                  err, sizeof err),
	                 0);
	engine_make(d2);
	int total = 0;
	for (wu_time_t now = d2; now < d3; now += WU_MINUTE)
		total += take_new(now, WU_ISP_OTHER, 10000);
	assert_int_equal(total, 2300);
	assert_i64_eq(wu_engine_today(eng)->used, 2300);
}

/* ---- configuration and names ---- */

static void test_conf_defaults_and_copy(void **state)
{
	(void)state;
	struct wu_core_conf c;

	assert_int_equal(wu_core_conf_init(&c), 0);
	assert_i64_eq(c.burst, WU_HOUR);
	assert_int_equal(c.overflow, WU_OVERFLOW_OLD);
	assert_int_equal(c.advance, WU_ADVANCE_CALENDAR);
	assert_near(c.min_fill, 0.8, 1e-12);
	assert_string_equal(c.calendar.tz, "Asia/Tokyo");
	assert_int_equal(c.calendar.open_min, 0);
	assert_int_equal(c.calendar.close_min, 1440);
	assert_int_equal(c.isps.n, 8);
	assert_near(c.throttle[WU_ROUTE_NEW][google].rate, 0.0, 0.0);
	assert_true(c.throttle[WU_ROUTE_NEW][google].share < 0);
	wu_core_conf_free(&c);

	/* The engine keeps its own copy of the configuration. */
	conf_make(SEED, 0, 1440, WU_BURST_DAY, WU_OVERFLOW_OLD);
	engine_make(T0);
	wu_core_conf_free(&conf);
	memset(&conf, 0, sizeof conf);
	assert_int_equal(wu_engine_conf(eng)->schedule.ndays, 10);
	assert_int_equal(take_new(T0 + WU_DAY, google, 100), 83);
	assert_int_equal(wu_core_conf_init(&conf), 0);
}

static void test_names(void **state)
{
	(void)state;
	char err[WU_ERR_MAX] = "";
	enum wu_overflow o;
	enum wu_advance a;

	assert_string_not_equal(wu_kind_name(WU_NEW), wu_kind_name(WU_OLD));
	assert_string_not_equal(wu_kind_name(WU_OLD), wu_kind_name(WU_WAIT));
	for (int w = 0; w < WU_WHY_COUNT; w++) {
		assert_non_null(wu_why_name((enum wu_why)w));
		for (int x = 0; x < w; x++)
			assert_string_not_equal(wu_why_name((enum wu_why)w),
			                        wu_why_name((enum wu_why)x));
	}
	for (int r = 0; r < WU_RESULT_COUNT; r++)
		assert_non_null(wu_result_name((enum wu_result)r));
	for (int k = 0; k < WU_EV_COUNT; k++)
		assert_non_null(wu_event_name((enum wu_event_kind)k));
	assert_non_null(wu_route_name(WU_ROUTE_NEW));
	assert_string_not_equal(wu_route_name(WU_ROUTE_NEW), wu_route_name(WU_ROUTE_OLD));

	assert_int_equal(wu_overflow_parse("old", &o, err, sizeof err), 0);
	assert_int_equal(o, WU_OVERFLOW_OLD);
	assert_int_equal(wu_overflow_parse("defer", &o, err, sizeof err), 0);
	assert_int_equal(o, WU_OVERFLOW_DEFER);
	assert_int_equal(wu_overflow_parse("drop", &o, err, sizeof err), -1);
	assert_true(err[0] != '\0');
	assert_int_equal(wu_advance_parse("calendar", &a, err, sizeof err), 0);
	assert_int_equal(a, WU_ADVANCE_CALENDAR);
	assert_int_equal(wu_advance_parse("gated", &a, err, sizeof err), 0);
	assert_int_equal(a, WU_ADVANCE_GATED);
	assert_int_equal(wu_advance_parse("sometimes", &a, err, sizeof err), -1);
}

#define T_(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T_(test_exact_cap_overflow_old),
	    T_(test_route_new_never_old),
	    T_(test_exact_cap_overflow_defer),
	    T_(test_cap_spread_over_day),
	    T_(test_next_day_and_backlog),
	    T_(test_seed_ten_days_then_hold),
	    T_(test_after_unlimited),
	    T_(test_several_midnights_at_once),
	    T_(test_not_started),
	    T_(test_hourly_cap_schedule),
	    T_(test_pacing_default_burst),
	    T_(test_pacing_overflow_old),
	    T_(test_window),
	    T_(test_window_overflow_old),
	    T_(test_window_pacing),
	    T_(test_isp_share),
	    T_(test_isp_share_count),
	    T_(test_isp_rate),
	    T_(test_next_wakeup_isp_token),
	    T_(test_isp_rate_cut),
	    T_(test_cut_without_rate_scales_pacing),
	    T_(test_outcomes_of_one_answer),
	    T_(test_suspension),
	    T_(test_outcome_counts),
	    T_(test_tempfail_gives_back),
	    T_(test_give_back_only_same_day),
	    T_(test_clock_jumps_back),
	    T_(test_clock_jumps_forward_then_back),
	    T_(test_share_give_back),
	    T_(test_tempfail_old_route_no_cap_change),
	    T_(test_gate_halt_holds_day),
	    T_(test_gate_pool_after_halt),
	    T_(test_gate_defer_halted_waits),
	    T_(test_gate_manual_resume),
	    T_(test_gate_small_sample),
	    T_(test_gate_peers),
	    T_(test_gate_warn_event),
	    T_(test_old_route_bounces_do_not_halt),
	    T_(test_gated_advance),
	    T_(test_gated_advance_needs_health),
	    T_(test_restart_mid_day),
	    T_(test_restart_keeps_share),
	    T_(test_restart_keeps_pacing),
	    T_(test_restart_across_midnight),
	    T_(test_restart_keeps_halt_and_held),
	    T_(test_restart_keeps_pause),
	    T_(test_save_small_buffer_and_bad_load),
	    T_(test_pause_resume),
	    T_(test_pause_old_route),
	    T_(test_new_york_dst_days),
	    T_(test_new_york_dst_pacing),
	    T_(test_conf_defaults_and_copy),
	    T_(test_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
