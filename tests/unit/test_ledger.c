/*
 * test_ledger.c -- the engine asks a ledger for new-route units: a ledger
 * that grants fewer than the cap holds the new route there, a lease on its
 * way makes units wait (never overflow), a ledger that cannot be reached
 * sends them the overflow way, give-backs reach the ledger, the ledger
 * hears each unit's ISP with its limits in force and may hold it back by
 * them.
 */
#include "test_util.h"
#include "tests/unit/cal_zone.h"

#include <stdio.h>
#include <stdlib.h>

#include "engine.h"
#include "ledger.h"
#include "pacing.h"

#define T0 T_TOKYO_20261201

/* A ledger with a lease of `left` units and a fixed answer when it is out. */
struct fake {
	int64_t left, taken, given;
	int given_isp; /* the ISP of the last give-back */
	enum wu_ledger_short out;
	int date;
	struct wu_ledger_isp lim; /* the last take's ISP */
	int asks;
};

static int64_t fake_take(struct wu_ledger *l, int date, int64_t cap, int64_t used, int64_t n,
                         const struct wu_ledger_isp *isp, enum wu_ledger_short *why)
{
	struct fake *f = l->ctx;
	int64_t g = n < f->left ? n : f->left;

	(void)cap;
	(void)used;
	assert_non_null(isp);
	f->lim = *isp;
	f->asks++;
	f->date = date;
	f->left -= g;
	f->taken += g;
	if (g < n)
		*why = f->out;
	return g;
}

static void fake_give_back(struct wu_ledger *l, int date, int64_t n, int isp)
{
	struct fake *f = l->ctx;

	(void)date;
	f->given += n;
	f->left += n;
	f->given_isp = isp;
}

static const struct wu_ledger_ops fake_ops = {fake_take, fake_give_back};

static struct wu_core_conf conf;

static struct wu_engine *make(enum wu_overflow ov)
{
	static const char *sched = "day,cap\n1,100\n";
	char err[WU_ERR_MAX] = "";
	struct wu_engine *e = NULL;

	memset(&conf, 0, sizeof conf);
	assert_int_equal(wu_core_conf_init(&conf), 0);
	wu_schedule_free(&conf.schedule);
	assert_int_equal(
	    wu_schedule_parse(&conf.schedule, sched, strlen(sched), "t.csv", err, sizeof err), 0);
	conf.schedule.after = WU_AFTER_HOLD;
	assert_int_equal(
	    cal_init(&conf.calendar, "Asia/Tokyo", 2026, 12, 1, 0, 1440, err, sizeof err), 0);
	conf.burst = WU_BURST_DAY;
	conf.overflow = ov;
	assert_int_equal(wu_engine_create(&e, &conf, T0 + WU_HOUR, err, sizeof err), 0);
	return e;
}

static void test_lease_bounds_new(void **state)
{
	struct fake f = {.left = 30, .out = WU_LEDGER_DONE};
	struct wu_ledger l = {&fake_ops, &f};
	struct wu_engine *e = make(WU_OVERFLOW_OLD);
	int news = 0, olds = 0;

	(void)state;
	wu_engine_set_ledger(e, &l);
	for (int i = 0; i < 200; i++) {
		struct wu_decision d = wu_engine_route(e, T0 + WU_HOUR + i, WU_ISP_OTHER);
		news += d.kind == WU_NEW;
		olds += d.kind == WU_OLD;
		if (d.kind == WU_OLD)
			assert_int_equal(d.why, WU_WHY_CAP);
	}
	assert_int_equal(news, 30);
	assert_int_equal(olds, 170);
	assert_int_equal(f.taken, 30);
	assert_int_equal(wu_engine_today(e)->used, 30);
	assert_int_equal(f.date, wu_engine_today(e)->date);
	wu_engine_free(e);
	wu_core_conf_free(&conf);
}

static void test_pending_waits(void **state)
{
	struct fake f = {.left = 0, .out = WU_LEDGER_PENDING};
	struct wu_ledger l = {&fake_ops, &f};
	struct wu_engine *e = make(WU_OVERFLOW_OLD);
	wu_time_t now = T0 + WU_HOUR;
	struct wu_decision d;

	(void)state;
	wu_engine_set_ledger(e, &l);
	d = wu_engine_route(e, now, WU_ISP_OTHER);
	assert_int_equal(d.kind, WU_WAIT);
	assert_int_equal(d.why, WU_WHY_LEASE);
	assert_true(d.until > now && d.until <= now + WU_LEASE_WAIT);
	f.left = 1;
	d = wu_engine_route(e, now, WU_ISP_OTHER);
	assert_int_equal(d.kind, WU_NEW);
	wu_engine_free(e);
	wu_core_conf_free(&conf);
}

static void test_down_overflows(void **state)
{
	struct fake f = {.left = 0, .out = WU_LEDGER_DOWN};
	struct wu_ledger l = {&fake_ops, &f};
	struct wu_engine *e = make(WU_OVERFLOW_OLD);
	struct wu_decision d;

	(void)state;
	wu_engine_set_ledger(e, &l);
	d = wu_engine_route(e, T0 + WU_HOUR, WU_ISP_OTHER);
	assert_int_equal(d.kind, WU_OLD);
	assert_int_equal(d.why, WU_WHY_CLUSTER);
	/* deferred overflow: the unit waits instead, and no private cap is used */
	wu_engine_free(e);
	wu_core_conf_free(&conf);
	e = make(WU_OVERFLOW_DEFER);
	wu_engine_set_ledger(e, &l);
	d = wu_engine_route(e, T0 + WU_HOUR, WU_ISP_OTHER);
	assert_int_equal(d.kind, WU_WAIT);
	assert_int_equal(d.why, WU_WHY_CLUSTER);
	assert_int_equal(wu_engine_today(e)->used, 0);
	wu_engine_free(e);
	wu_core_conf_free(&conf);
}

static void test_give_back_reaches_ledger(void **state)
{
	struct fake f = {.left = 5, .out = WU_LEDGER_DONE};
	struct wu_ledger l = {&fake_ops, &f};
	struct wu_engine *e = make(WU_OVERFLOW_OLD);
	wu_time_t now = T0 + WU_HOUR;
	struct wu_decision d;

	(void)state;
	wu_engine_set_ledger(e, &l);
	d = wu_engine_route(e, now, WU_ISP_OTHER);
	assert_int_equal(d.kind, WU_NEW);
	wu_engine_outcome(e, now, WU_ROUTE_NEW, WU_ISP_OTHER, WU_TEMPFAIL, d.date);
	assert_int_equal(f.given, 1);
	assert_int_equal(f.left, 5);

	/* a timeout keeps its unit: nothing goes back */
	d = wu_engine_route(e, now, WU_ISP_OTHER);
	wu_engine_outcome(e, now, WU_ROUTE_NEW, WU_ISP_OTHER, WU_TIMEOUT, d.date);
	assert_int_equal(f.given, 1);
	/* a refusal gives the unit back with its ISP (the ISP's token too) */
	f.given_isp = -1;
	d = wu_engine_route(e, now, 2);
	assert_int_equal(d.kind, WU_NEW);
	wu_engine_outcome(e, now, WU_ROUTE_NEW, 2, WU_PERMFAIL, d.date);
	assert_int_equal(f.given, 2);
	assert_int_equal(f.given_isp, 2);
	wu_engine_free(e);
	wu_core_conf_free(&conf);
}

/* The local ledger is exactly the cap: the engine's behaviour without one. */
static void test_local_is_cap(void **state)
{
	enum wu_ledger_short why = WU_LEDGER_PENDING;
	struct wu_ledger_isp lim = {1, 0.5, 1, 0}; /* the engine judged the ISP already */

	(void)state;
	assert_int_equal(wu_ledger_take(&wu_ledger_local, 1, 100, 99, 1, NULL, &why), 1);
	assert_int_equal(wu_ledger_take(&wu_ledger_local, 1, 100, 100, 1, NULL, &why), 0);
	assert_int_equal(why, WU_LEDGER_DONE);
	assert_int_equal(wu_ledger_take(&wu_ledger_local, 1, WU_UNLIMITED, 5, 3, NULL, &why), 3);
	assert_int_equal(wu_ledger_take(&wu_ledger_local, 1, 100, 10, 2, &lim, &why), 2);
}

/* Each take names the unit's ISP with its rate in force (a cut's factor
 * applied), its burst and today's share of the cap; the ledger's answer
 * by them holds the unit as the engine's own limits would. */
static void test_isp_limits_reach_ledger(void **state)
{
	struct fake f = {.left = 100, .out = WU_LEDGER_ISP};
	struct wu_ledger l = {&fake_ops, &f};
	struct wu_engine *e;
	wu_time_t now = T0 + WU_HOUR;
	struct wu_decision d;
	char err[WU_ERR_MAX] = "";
	int google;

	(void)state;
	e = make(WU_OVERFLOW_OLD);
	wu_engine_free(e);
	google = wu_isp_find(&conf.isps, "google");
	assert_true(google > 0);
	conf.throttle[WU_ROUTE_NEW][google].rate = 4;
	conf.throttle[WU_ROUTE_NEW][google].burst = 6;
	conf.throttle[WU_ROUTE_NEW][google].share = 0.2;
	assert_int_equal(wu_engine_create(&e, &conf, now, err, sizeof err), 0);
	wu_engine_set_ledger(e, &l);
	d = wu_engine_route(e, now, google);
	assert_int_equal(d.kind, WU_NEW);
	assert_int_equal(f.lim.isp, google);
	assert_true(f.lim.rate == 4);
	assert_true(f.lim.burst == 6);
	assert_int_equal(f.lim.share, 20); /* 20% of 100 */
	/* an ISP without limits: no rate, no share */
	d = wu_engine_route(e, now, WU_ISP_OTHER);
	assert_int_equal(f.lim.isp, WU_ISP_OTHER);
	assert_true(f.lim.rate == 0);
	assert_int_equal(f.lim.share, WU_UNLIMITED);
	/* a deferral cut to a quarter: the ledger hears the rate in force */
	wu_engine_cut(e, now, WU_ROUTE_NEW, google, 0.25, WU_HOUR);
	d = wu_engine_route(e, now + WU_MINUTE, google);
	assert_true(f.lim.rate == 1);
	/* the ledger's answers by the ISP's limits */
	f.left = 0;
	d = wu_engine_route(e, now + 2 * WU_MINUTE, google);
	assert_int_equal(d.kind, WU_OLD);
	assert_int_equal(d.why, WU_WHY_ISP_RATE);
	f.out = WU_LEDGER_SHARE;
	d = wu_engine_route_new(e, now + 3 * WU_MINUTE, google);
	assert_int_equal(d.kind, WU_WAIT);
	assert_int_equal(d.why, WU_WHY_SHARE);
	wu_engine_free(e);
	wu_core_conf_free(&conf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_lease_bounds_new),
	    cmocka_unit_test(test_pending_waits),
	    cmocka_unit_test(test_down_overflows),
	    cmocka_unit_test(test_give_back_reaches_ledger),
	    cmocka_unit_test(test_local_is_cap),
	    cmocka_unit_test(test_isp_limits_reach_ledger),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
