/*
 * test_gate.c -- the health gate: bounce and complaint thresholds, the pool
 * of recent days that a small day is judged with, the pool's minimum sample,
 * and the optional exact lower bound.  Counts in, verdicts out.
 */
#include <math.h>

#include "test_util.h"

#include "gate.h"

static struct wu_gate_conf gc;

static int setup(void **state)
{
	(void)state;
	wu_gate_conf_default(&gc);
	return 0;
}

static enum wu_gate_state judge(int64_t delivered, int64_t bounces, int64_t complaints,
                                struct wu_gate_verdict *v)
{
	struct wu_gate_counts n = {delivered, bounces, complaints};
	memset(v, 0x5a, sizeof *v);
	wu_gate_eval(&gc, &n, NULL, v);
	return v->state;
}

/* The verdict on today's counts pooled with past (newest first). */
static enum wu_gate_state judge_pool(int64_t delivered, int64_t bounces, int64_t complaints,
                                     const struct wu_gate_past *past, struct wu_gate_verdict *v)
{
	struct wu_gate_counts n = {delivered, bounces, complaints};
	memset(v, 0x5a, sizeof *v);
	wu_gate_eval(&gc, &n, past, v);
	return v->state;
}

/* A past of n days, newest first: delivered and bounces of each. */
static struct wu_gate_past past_of(int n, const int64_t (*d)[2])
{
	struct wu_gate_past p;

	wu_gate_past_clear(&p);
	for (int i = n - 1; i >= 0; i--) {
		struct wu_gate_counts k = {d[i][0], d[i][1], 0};
		wu_gate_past_push(&p, &k, 1);
	}
	return p;
}

static void test_defaults(void **state)
{
	(void)state;
	assert_near(gc.bounce_warn, 0.03, 1e-12);
	assert_near(gc.bounce_halt, 0.05, 1e-12);
	assert_near(gc.complaint_warn, 0.001, 1e-12);
	assert_near(gc.complaint_halt, 0.003, 1e-12);
	assert_true(gc.min_sample == 120);
	assert_true(gc.pool_sample == 300);
	assert_true(gc.complaint_min_sample == 2000);
	assert_true(gc.complaint_pool_sample == 5000);
	assert_near(gc.z, 0, 0);
}

static void test_wilson(void **state)
{
	(void)state;
	assert_near(wu_gate_wilson_low(10, 100, 1.96), 0.0552285, 1e-5);
	assert_near(wu_gate_wilson_low(6, 100, 1.96), 0.0277857, 1e-5);
	assert_near(wu_gate_wilson_low(100, 1000, 1.96), 0.0829092, 1e-5);
	assert_near(wu_gate_wilson_low(3, 63, 1.96), 0.0163259, 1e-5);
	assert_near(wu_gate_wilson_low(50, 1000, 1.96), 0.0381301, 1e-5);
	assert_near(wu_gate_wilson_low(0, 50, 1.96), 0.0, 1e-12);
	/* z = 0 is the plain rate; no data is 0, not NaN. */
	assert_near(wu_gate_wilson_low(10, 100, 0), 0.1, 1e-12);
	assert_near(wu_gate_wilson_low(0, 0, 1.96), 0.0, 0.0);
	/* Always below the observed rate, and within [0, 1]. */
	for (int64_t k = 0; k <= 200; k += 7) {
		double w = wu_gate_wilson_low(k, 200, 1.96);
		assert_true(w >= 0.0 && w <= (double)k / 200 + 1e-12);
	}
	double all = wu_gate_wilson_low(200, 200, 1.96);
	assert_true(all > 0.9 && all <= 1.0);
}

static void test_plain_thresholds(void **state)
{
	(void)state;
	struct wu_gate_verdict v;

	gc.z = 0;
	gc.min_sample = 100;
	assert_int_equal(judge(980, 20, 0, &v), WU_GATE_OK);
	assert_near(v.bounce_rate, 0.02, 1e-12);
	assert_string_equal(v.reason, "");
	assert_int_equal(judge(960, 40, 0, &v), WU_GATE_WARN);
	assert_near(v.bounce_rate, 0.04, 1e-12);
	assert_true(v.reason[0] != '\0');
	assert_int_equal(judge(940, 60, 0, &v), WU_GATE_HALT);
	assert_near(v.bounce_rate, 0.06, 1e-12);
	assert_err_has(v.reason, "bounce");

	/* Complaints are counted against deliveries. */
	assert_int_equal(judge(10000, 0, 5, &v), WU_GATE_OK);
	assert_near(v.complaint_rate, 0.0005, 1e-12);
	assert_int_equal(judge(10000, 0, 20, &v), WU_GATE_WARN);
	assert_near(v.complaint_rate, 0.002, 1e-12);
	assert_int_equal(judge(10000, 0, 40, &v), WU_GATE_HALT);
	assert_err_has(v.reason, "complaint");

	/* The worse of the two decides. */
	assert_int_equal(judge(9600, 400, 5, &v), WU_GATE_WARN);
	assert_int_equal(judge(9600, 400, 40, &v), WU_GATE_HALT);
}

static void test_no_data(void **state)
{
	(void)state;
	struct wu_gate_verdict v;

	assert_int_equal(judge(0, 0, 0, &v), WU_GATE_OK);
	assert_near(v.bounce_rate, 0.0, 0.0);
	assert_near(v.complaint_rate, 0.0, 0.0);
	assert_string_equal(v.reason, "");
	/* Only bounces, nothing delivered: a rate of 1, and no division by 0. */
	gc.z = 0;
	gc.min_sample = 10;
	assert_int_equal(judge(0, 50, 0, &v), WU_GATE_HALT);
	assert_near(v.bounce_rate, 1.0, 1e-12);
	assert_near(v.complaint_rate, 0.0, 0.0);
}

static void test_small_sample_defaults(void **state)
{
	(void)state;
	struct wu_gate_verdict v;

	/* Day 1 of the seed alone is under the 120 of a pool: 3 bounces of 63
	 * (4.8%), 8 of 63 (12.7%) and one complaint give no verdict. */
	assert_int_equal(judge(60, 3, 0, &v), WU_GATE_OK);
	assert_near(v.bounce_rate, 3.0 / 63, 1e-9);
	assert_int_equal(judge(55, 8, 0, &v), WU_GATE_OK);
	assert_int_equal(judge(63, 0, 1, &v), WU_GATE_OK);

	/* A real problem on a real sample does halt: 10% of 2000, 6% of 5000;
	 * 4% warns; 3% does not (over is over: 3.0% is not). */
	assert_int_equal(judge(1800, 200, 0, &v), WU_GATE_HALT);
	assert_int_equal(judge(4700, 300, 0, &v), WU_GATE_HALT);
	assert_int_equal(judge(4800, 200, 0, &v), WU_GATE_WARN);
	assert_int_equal(judge(4850, 150, 0, &v), WU_GATE_OK);
	/* At the pool's size: 6 of 120 is 5.0%, a warning; 7 of 120 halts. */
	assert_int_equal(judge(114, 6, 0, &v), WU_GATE_WARN);
	assert_int_equal(judge(113, 7, 0, &v), WU_GATE_HALT);
	assert_string_equal(v.reason, "bounce rate 5.83% over 5.00% (n=120, 1 day)");
}

static void test_min_sample(void **state)
{
	(void)state;
	struct wu_gate_verdict v;

	gc.z = 0;
	gc.min_sample = 100;
	/* 20% bounces but only 50 outcomes: no verdict yet, rate still shown. */
	assert_int_equal(judge(40, 10, 0, &v), WU_GATE_OK);
	assert_near(v.bounce_rate, 0.2, 1e-12);
	assert_int_equal(judge(80, 20, 0, &v), WU_GATE_HALT);
	assert_int_equal(judge(79, 20, 0, &v), WU_GATE_OK);
}

static void test_bound_margin(void **state)
{
	(void)state;
	struct wu_gate_verdict v;

	gc.z = 1.96;
	gc.min_sample = 1;
	/* 6 of 100 observed (over 5%) but the interval reaches 2.8%: OK. */
	assert_int_equal(judge(94, 6, 0, &v), WU_GATE_OK);
	assert_near(v.bounce_rate, 0.06, 1e-12);
	/* 10 of 100: exact low end 4.9%: warn only; 12 of 100: 6.4%: halt. */
	assert_int_equal(judge(90, 10, 0, &v), WU_GATE_WARN);
	assert_int_equal(judge(88, 12, 0, &v), WU_GATE_HALT);
	/* 50 of 1000: low end 3.7%: warn. */
	assert_int_equal(judge(950, 50, 0, &v), WU_GATE_WARN);
}

static void test_exact_bound(void **state)
{
	struct wu_gate_verdict v;
	(void)state;
	gc.z = 1.96;
	gc.min_sample = 50;
	gc.complaint_min_sample = 50;
	/* One complaint in 50 deliveries: the Wilson bound (0.35%) would be over
	 * the 0.3% halt line; the exact bound, 1 - 0.975^(1/50) = 0.0506%, is not
	 * even over the 0.1% warn line. */
	assert_true(wu_gate_wilson_low(1, 50, 1.96) > 0.003);
	assert_near(wu_gate_lower_bound(1, 50, 1.96), 1 - pow(0.975, 1.0 / 50), 1e-6);
	assert_int_equal(judge(50, 0, 1, &v), WU_GATE_OK);
	/* Under one half the exact bound is never above Wilson's (the gate skips
	 * the exact one when Wilson's is under the line), and is 0 with no hits. */
	static const int64_t ns[] = {50, 63, 100, 363, 1000, 20800};
	for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++)
		for (int64_t h = 1; 2 * h < ns[k]; h += 1 + ns[k] / 200)
			assert_true(wu_gate_lower_bound(h, ns[k], 1.96) <=
			            wu_gate_wilson_low(h, ns[k], 1.96) + 1e-12);
	assert_near(wu_gate_lower_bound(0, 500, 1.96), 0, 1e-12);
	/* All hits: the bound is (alpha/2)^(1/n), alpha/2 the normal tail at z. */
	assert_near(wu_gate_lower_bound(20, 20, 1.96), pow(0.5 * erfc(1.96 / sqrt(2.0)), 1.0 / 20),
	            1e-6);
	/* A real problem still trips: 10 bounces of 63 (15.9%). */
	assert_int_equal(judge(53, 10, 0, &v), WU_GATE_HALT);
}

static void test_pool_small_days(void **state)
{
	(void)state;
	struct wu_gate_verdict v;
	const int64_t d1[][2] = {{60, 3}};
	struct wu_gate_past p = past_of(1, d1);

	/* Day 2 of the seed after a day 1 with 3 of 63: the pool is both days
	 * once day 2 has 57 outcomes.  56: no verdict yet. */
	assert_int_equal(judge_pool(53, 3, 0, &p, &v), WU_GATE_OK);
	assert_int_equal(v.bounce_n, 119);
	assert_int_equal(v.bounce_days, 2);
	/* 57 with 4 bounces: 7 of 120 (5.8%) halts, on evidence of two days. */
	assert_int_equal(judge_pool(53, 4, 0, &p, &v), WU_GATE_HALT);
	assert_int_equal(v.bounce_n, 120);
	assert_near(v.bounce_pool_rate, 7.0 / 120, 1e-12);
	assert_near(v.bounce_rate, 4.0 / 57, 1e-12); /* today's own rate */
	assert_string_equal(v.reason, "bounce rate 5.83% over 5.00% (n=120, 2 days)");
	/* 2 bounces of 57 today: 5 of 120, 4.2%: a warning. */
	assert_int_equal(judge_pool(55, 2, 0, &p, &v), WU_GATE_WARN);
	/* Without the past, today alone is too small. */
	assert_int_equal(judge_pool(53, 4, 0, NULL, &v), WU_GATE_OK);
	assert_int_equal(v.bounce_days, 1);
}

static void test_pool_recent_days_only(void **state)
{
	(void)state;
	struct wu_gate_verdict v;
	/* Eight clean days at 2% (newest first: days 8 .. 1 of the seed). */
	const int64_t clean[][2] = {{1230, 25}, {1986, 41}, {356, 7}, {124, 3},
	                            {104, 2},   {71, 2},    {81, 2},  {62, 1}};
	struct wu_gate_past p = past_of(8 > WU_GATE_DAYS ? WU_GATE_DAYS : 8, clean);

	assert_int_equal(p.n, WU_GATE_DAYS);
	/* Day 9 goes to 10%.  Under 300 outcomes today it is pooled with day 8
	 * alone (1,255 outcomes): 11 of 119 today still look like 2.6%, 30 of
	 * 299 like 3.5% (a warning). */
	assert_int_equal(judge_pool(108, 11, 0, &p, &v), WU_GATE_OK);
	assert_int_equal(v.bounce_days, 2);
	assert_int_equal(v.bounce_n, 1255 + 119);
	assert_int_equal(judge_pool(269, 30, 0, &p, &v), WU_GATE_WARN);
	/* From 300 on, today alone: 30 of 300 halts, the clean week does not
	 * water it down. */
	assert_int_equal(judge_pool(270, 30, 0, &p, &v), WU_GATE_HALT);
	assert_int_equal(v.bounce_days, 1);
	assert_int_equal(v.bounce_n, 300);
}

static void test_pool_complaints(void **state)
{
	(void)state;
	struct wu_gate_verdict v;
	struct wu_gate_past p;
	/* Days 1-6 of the seed: 815 deliveries, one complaint. */
	const struct wu_gate_counts d[] = {{63, 0, 1},  {83, 0, 0},  {73, 0, 0},
	                                   {106, 0, 0}, {127, 0, 0}, {363, 0, 0}};

	wu_gate_past_clear(&p);
	for (int i = 0; i < 6; i++)
		wu_gate_past_push(&p, &d[i], 1);
	/* Complaints pool on deliveries to 2,000: at day 7's 1,184th delivery
	 * the pool has 1,999, no verdict however many reports. */
	assert_int_equal(judge_pool(1184, 0, 9, &p, &v), WU_GATE_OK);
	assert_int_equal(v.complaint_n, 1999);
	assert_int_equal(v.complaint_days, 7);
	/* 1,185: 2,000, 7 reports (0.35%) halt, 3 (0.15%) warn, 2 (0.1%) not. */
	assert_int_equal(judge_pool(1185, 0, 6, &p, &v), WU_GATE_HALT);
	assert_err_has(v.reason, "complaint rate 0.350% over 0.300% (n=2000, 7 days)");
	assert_int_equal(judge_pool(1185, 0, 2, &p, &v), WU_GATE_WARN);
	assert_int_equal(judge_pool(1185, 0, 1, &p, &v), WU_GATE_OK);
	/* The bounce pool is separate: today alone, 1,185 outcomes, no bounce. */
	assert_int_equal(v.bounce_days, 1);
}

static void test_past_push(void **state)
{
	(void)state;
	struct wu_gate_past p;
	struct wu_gate_counts k = {100, 1, 0}, seen;

	wu_gate_past_clear(&p);
	assert_int_equal(p.n, 0);
	for (int i = 1; i <= 10; i++) {
		k.delivered = 100 * i;
		wu_gate_past_push(&p, &k, 1);
	}
	/* A week is kept, newest first. */
	assert_int_equal(p.n, WU_GATE_DAYS);
	assert_i64_eq(p.day[0].delivered, 1000);
	assert_i64_eq(p.day[WU_GATE_DAYS - 1].delivered, 1000 - 100 * (WU_GATE_DAYS - 1));
	/* Three dates passed (the daemon was down for two): two empty days
	 * between the day closed and today. */
	wu_gate_past_push(&p, &k, 3);
	assert_i64_eq(p.day[0].delivered, 0);
	assert_i64_eq(p.day[1].delivered, 0);
	assert_i64_eq(p.day[2].delivered, 1000);
	/* A gap of more than a week leaves nothing to pool. */
	wu_gate_past_push(&p, &k, 30);
	for (int i = 0; i < p.n; i++) {
		seen = p.day[i];
		assert_i64_eq(seen.delivered + seen.bounces + seen.complaints, 0);
	}
	wu_gate_past_clear(&p);
	assert_int_equal(p.n, 0);
}

static void test_due(void **state)
{
	(void)state;
	const int64_t d1[][2] = {{60, 3}};
	struct wu_gate_past p = past_of(1, d1);
	/* Today's deliveries going from `from` to `to`, after a day 1 of 63
	 * outcomes (60 delivered). */
	static const struct {
		int64_t from, to;
		int past, due;
	} steps[] = {
	    /* the pool holds 120 at today's 57th outcome */
	    {56, 57, 1, 1},
	    {57, 58, 1, 0},
	    /* at 237 the two days hold 300; at 300 day 1 leaves the pool, so
	     * a delivery can raise the rate */
	    {236, 237, 1, 1},
	    {237, 238, 1, 0},
	    {299, 300, 1, 1},
	    {300, 301, 1, 0},
	    /* one step over several sizes */
	    {10, 200, 1, 1},
	    /* complaints: 2,000 less day 1's 60 deliveries, then 5,000 */
	    {1939, 1940, 1, 1},
	    {1940, 1941, 1, 0},
	    {4939, 4940, 1, 1},
	    /* no past: only the pool's least size */
	    {119, 120, 0, 1},
	    {30, 31, 0, 0},
	};

	for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
		struct wu_gate_counts a = {steps[i].from, 0, 0}, b = {steps[i].to, 0, 0};
		if (wu_gate_due(&gc, steps[i].past ? &p : NULL, &a, &b) != steps[i].due) {
			print_error("%" PRId64 " -> %" PRId64 ": expected %d\n", steps[i].from,
			            steps[i].to, steps[i].due);
			fail();
		}
	}
}

static void test_names(void **state)
{
	(void)state;
	char err[WU_ERR_MAX] = "";
	enum wu_gate_resume r = WU_RESUME_NEXT_DAY;

	assert_non_null(wu_gate_state_name(WU_GATE_OK));
	assert_string_not_equal(wu_gate_state_name(WU_GATE_WARN), wu_gate_state_name(WU_GATE_HALT));
	assert_int_equal(wu_gate_resume_parse("manual", &r, err, sizeof err), 0);
	assert_int_equal(r, WU_RESUME_MANUAL);
	assert_int_equal(wu_gate_resume_parse("sometimes", &r, err, sizeof err), -1);
	assert_true(err[0] != '\0');
}

#define T_(f) cmocka_unit_test_setup(f, setup)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T_(test_defaults),
	    T_(test_wilson),
	    T_(test_plain_thresholds),
	    T_(test_no_data),
	    T_(test_small_sample_defaults),
	    T_(test_min_sample),
	    T_(test_bound_margin),
	    T_(test_exact_bound),
	    T_(test_pool_small_days),
	    T_(test_pool_recent_days_only),
	    T_(test_pool_complaints),
	    T_(test_past_push),
	    T_(test_due),
	    T_(test_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
