/*
 * test_gate.c -- the health gate: bounce and complaint thresholds, the
 * minimum sample, and the exact lower bound that keeps a handful of bounces
 * on a small day from stopping a migration.
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
	wu_gate_eval(&gc, &n, v);
	return v->state;
}

static void test_defaults(void **state)
{
	(void)state;
	assert_near(gc.bounce_warn, 0.03, 1e-12);
	assert_near(gc.bounce_halt, 0.05, 1e-12);
	assert_near(gc.complaint_warn, 0.001, 1e-12);
	assert_near(gc.complaint_halt, 0.003, 1e-12);
	assert_true(gc.min_sample > 0);
	assert_true(gc.z >= 0);
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

	/* Day 1 of the seed: 3 bounces of 63 (4.8%) must not halt. */
	assert_true(judge(60, 3, 0, &v) != WU_GATE_HALT);
	assert_near(v.bounce_rate, 3.0 / 63, 1e-9);
	/* Nor 4 of 63 (6.3%): too few to tell. */
	assert_true(judge(59, 4, 0, &v) != WU_GATE_HALT);
	/* One complaint of 63 (1.6%) either. */
	assert_true(judge(63, 0, 1, &v) != WU_GATE_HALT);

	/* A real problem on a real sample does halt: 10% of 2000. */
	assert_int_equal(judge(1800, 200, 0, &v), WU_GATE_HALT);
	/* 6% of 5000: Wilson low about 5.4%, over the line. */
	assert_int_equal(judge(4700, 300, 0, &v), WU_GATE_HALT);
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
	    T_(test_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
