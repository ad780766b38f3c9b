/*
 * test_rng.c -- the one generator: xoshiro256** and splitmix64 give their
 * published sequences, a seed repeats, streams of one seed differ, and
 * wu_rng_unit stays in [0, 1).
 */
#include "test_util.h"

#include "rng.h"

/* The reference outputs of xoshiro256** from the state {1, 2, 3, 4}. */
static void test_xoshiro_reference(void **state)
{
	struct wu_rng r = {{1, 2, 3, 4}};

	(void)state;
	assert_true(wu_rng_next(&r) == UINT64_C(11520));
	assert_true(wu_rng_next(&r) == UINT64_C(0));
	assert_true(wu_rng_next(&r) == UINT64_C(1509978240));
	assert_true(wu_rng_next(&r) == UINT64_C(1215971899390074240));
}

/* Seed 0 of stream 0 is splitmix64's published sequence from 0. */
static void test_seed_is_splitmix64(void **state)
{
	struct wu_rng r;

	(void)state;
	wu_rng_seed(&r, 0, 0);
	assert_true(r.s[0] == UINT64_C(0xe220a8397b1dcdaf));
	assert_true(r.s[1] == UINT64_C(0x6e789e6aa1b965f4));
	assert_true(r.s[2] == UINT64_C(0x06c45d188009454f));
}

static void test_seed_repeats_streams_differ(void **state)
{
	struct wu_rng a, b, c;
	int same_ac = 0;

	(void)state;
	wu_rng_seed(&a, 42, 1);
	wu_rng_seed(&b, 42, 1);
	wu_rng_seed(&c, 42, 2);
	for (int i = 0; i < 1000; i++) {
		uint64_t x = wu_rng_next(&a);

		assert_true(x == wu_rng_next(&b));
		same_ac += x == wu_rng_next(&c);
	}
	assert_int_equal(same_ac, 0);
}

static void test_unit_range(void **state)
{
	struct wu_rng r;
	double sum = 0;
	int low = 0;

	(void)state;
	wu_rng_seed(&r, 7, 0);
	for (int i = 0; i < 100000; i++) {
		double u = wu_rng_unit(&r);

		assert_true(u >= 0.0 && u < 1.0);
		sum += u;
		low += u < 0.1;
	}
	assert_true(fabs(sum / 100000 - 0.5) < 0.01);
	assert_in_range(low, 9500, 10500);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_xoshiro_reference),
	    cmocka_unit_test(test_seed_is_splitmix64),
	    cmocka_unit_test(test_seed_repeats_streams_differ),
	    cmocka_unit_test(test_unit_range),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
