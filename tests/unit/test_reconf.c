/*
 * test_reconf.c -- an engine taking a new configuration mid-day (the
 * daemon's reload): today's used cap, counters, held days and pauses carry
 * over; a cap lowered below what was used sends nothing more today, one
 * lowered above it only the difference; ISP groups keep their numbers.
 */
#include "tests/unit/cal_zone.h"
#include "test_util.h"

#include <stdio.h>
#include <stdlib.h>

#include "engine.h"
#include "pacing.h"
#include "reconf.h"

#define T0  T_TOKYO_20261201
#define NOW (T0 + 2 * WU_HOUR)

static struct wu_core_conf conf;
static struct wu_engine *eng;
static int google;

/* conf with a one-row schedule of cap per day (held after). */
static int make_conf(struct wu_core_conf *c, int64_t cap)
{
	char err[WU_ERR_MAX] = "", text[64];
	struct wu_schedule s;

	memset(c, 0, sizeof(*c));
	if (wu_core_conf_init(c) != 0)
		return -1;
	snprintf(text, sizeof(text), "day,cap\n1,%lld\n", (long long)cap);
	memset(&s, 0, sizeof s);
	if (wu_schedule_parse(&s, text, strlen(text), "test.csv", err, sizeof err) != 0)
		return -1;
	s.after = WU_AFTER_HOLD;
	wu_schedule_free(&c->schedule);
	c->schedule = s;
	if (cal_init(&c->calendar, "Asia/Tokyo", 2026, 12, 1, 0, 1440, err, sizeof err))
		return -1;
	c->burst = WU_BURST_DAY;
	return 0;
}

static int setup(void **state)
{
	char err[WU_ERR_MAX] = "";

	(void)state;
	if (make_conf(&conf, 100) < 0)
		return -1;
	google = wu_isp_find(&conf.isps, "google");
	eng = NULL;
	return google > 0 && wu_engine_create(&eng, &conf, T0, err, sizeof err) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	wu_engine_free(eng);
	eng = NULL;
	wu_core_conf_free(&conf);
	return 0;
}

/* New-route decisions of e at now until the first other one (at most most). */
static int take_new(struct wu_engine *e, wu_time_t now, int most)
{
	int n = 0;

	while (n < most && wu_engine_route(e, now, google).kind == WU_NEW)
		n++;
	return n;
}

/* The engine of conf with a cap of cap per day, holding eng's state. */
static struct wu_engine *reload_to(int64_t cap, struct wu_core_conf *nc)
{
	char err[WU_ERR_MAX] = "";
	struct wu_engine *e = NULL;

	assert_int_equal(make_conf(nc, cap), 0);
	if (wu_reconf_engine(eng, nc, NOW, &e, err, sizeof err) != 0)
		print_error("%s\n", err);
	assert_non_null(e);
	return e;
}

/* A cap lowered below what today used: nothing more goes new today, the
 * rest goes the old way, and used is not rewritten. */
static void test_lowered_below_used(void **state)
{
	struct wu_core_conf nc;
	struct wu_engine *e;
	struct wu_decision d;

	(void)state;
	assert_int_equal(take_new(eng, NOW, 60), 60);
	e = reload_to(40, &nc);
	assert_i64_eq(wu_engine_today(e)->cap, 40);
	assert_i64_eq(wu_engine_today(e)->used, 60);
	assert_i64_eq(wu_engine_today(e)->sent[WU_ROUTE_NEW][google], 60);
	for (int i = 0; i < 50; i++) {
		d = wu_engine_route(e, NOW + i * WU_MINUTE, google);
		assert_int_equal(d.kind, WU_OLD);
		assert_int_equal(d.why, WU_WHY_CAP);
	}
	assert_i64_eq(wu_engine_today(e)->used, 60);
	assert_i64_eq(wu_engine_today(e)->sent[WU_ROUTE_OLD][google], 50);
	/* The next day starts from the new schedule's cap, afresh. */
	assert_int_equal(take_new(e, T0 + WU_DAY + WU_HOUR, 1000), 40);
	wu_engine_free(e);
	wu_core_conf_free(&nc);
}

/* Lowered above what was used: only the difference; raised: the new room. */
static void test_lowered_above_used_and_raised(void **state)
{
	struct wu_core_conf nc, rc;
	struct wu_engine *e;

	(void)state;
	assert_int_equal(take_new(eng, NOW, 60), 60);
	e = reload_to(80, &nc);
	assert_int_equal(take_new(e, NOW, 1000), 20);
	assert_i64_eq(wu_engine_today(e)->used, 80);
	wu_engine_free(eng);
	eng = e;
	e = reload_to(200, &rc);
	assert_int_equal(take_new(e, NOW, 1000), 120);
	assert_i64_eq(wu_engine_today(e)->used, 200);
	wu_engine_free(e);
	wu_core_conf_free(&nc);
	wu_core_conf_free(&rc);
}

/* A pause and the counters of results survive; the old engine is left as
 * it was. */
static void test_state_carried(void **state)
{
	struct wu_core_conf nc;
	struct wu_engine *e;
	(void)state;
	assert_int_equal(take_new(eng, NOW, 10), 10);
	wu_engine_outcome(eng, NOW, WU_ROUTE_NEW, google, WU_DELIVERED, -1);
	wu_engine_pause(eng, NOW, WU_ROUTE_NEW, "operator test");
	e = reload_to(100, &nc);
	assert_true(wu_engine_paused(e, WU_ROUTE_NEW));
	assert_i64_eq(wu_engine_today(e)->result[WU_ROUTE_NEW][google][WU_DELIVERED], 1);
	assert_i64_eq(wu_engine_today(e)->used, 10);
	assert_int_equal(wu_engine_route(e, NOW, google).why, WU_WHY_PAUSED);
	/* eng itself still decides as before */
	assert_i64_eq(wu_engine_today(eng)->used, 10);
	assert_i64_eq(wu_engine_today(eng)->cap, 100);
	wu_engine_free(e);
	wu_core_conf_free(&nc);
}

/* Groups keep their numbers: one added after the last is fine, one removed
 * or moved is refused with its name, and nothing is built. */
static void test_isp_numbers(void **state)
{
	struct wu_core_conf nc;
	struct wu_engine *e = NULL;
	char err[WU_ERR_MAX] = "";

	(void)state;
	assert_int_equal(make_conf(&nc, 100), 0);
	assert_true(wu_isp_define(&nc.isps, "acme", err, sizeof err) > 0);
	assert_int_equal(wu_reconf_engine(eng, &nc, NOW, &e, err, sizeof err), 0);
	assert_non_null(e);
	/* and back: acme is gone (the engine with acme is eng from here) */
	wu_engine_free(eng);
	eng = e;
	assert_int_equal(wu_reconf_engine(eng, &conf, NOW, &e, err, sizeof err), -1);
	assert_null(e);
	assert_err_has(err, "[isp acme]");
	assert_err_has(err, "removed");
	wu_core_conf_free(&nc);

	/* the same names in another order */
	assert_int_equal(make_conf(&nc, 100), 0);
	snprintf(nc.isps.names[1], WU_ISP_NAME_MAX, "%s", conf.isps.names[2]);
	snprintf(nc.isps.names[2], WU_ISP_NAME_MAX, "%s", conf.isps.names[1]);
	assert_int_equal(wu_reconf_check_isps(&conf.isps, &nc.isps, err, sizeof err), -1);
	assert_err_has(err, "reordered");
	wu_core_conf_free(&nc);
}

/* The summary names each section that changed, and nothing when none did. */
static void test_describe(void **state)
{
	struct wu_core_conf nc;
	char line[512];

	(void)state;
	assert_int_equal(make_conf(&nc, 100), 0);
	assert_int_equal((int)wu_reconf_describe(&conf, &nc, line, sizeof line), 0);
	assert_string_equal(line, "");
	wu_core_conf_free(&nc);

	assert_int_equal(make_conf(&nc, 40), 0);
	nc.throttle[WU_ROUTE_NEW][google].rate = 2;
	nc.gate.bounce_halt = 0.04;
	nc.overflow = WU_OVERFLOW_DEFER;
	wu_reconf_describe(&conf, &nc, line, sizeof line);
	assert_err_has(line, "schedule 1 days");
	assert_err_has(line, "throttles of google");
	assert_err_has(line, "gate");
	assert_err_has(line, "overflow old -> defer");
	/* a short buffer is cut, and the length needed still told */
	assert_true(wu_reconf_describe(&conf, &nc, line, 8) > 8);
	assert_int_equal((int)strlen(line), 7);
	wu_core_conf_free(&nc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_lowered_below_used, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_lowered_above_used_and_raised, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_state_carried, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_isp_numbers, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_describe, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
