/*
 * test_parse.c -- the value syntax: rates, percentages, shares, durations,
 * counts, booleans, dates and sending windows, and the errors for bad ones.
 */
#include "test_util.h"

#include "parse.h"

static void test_rate_units(void **state)
{
	(void)state;
	char err[WU_ERR_MAX];
	double r = -1;

	assert_int_equal(wu_parse_rate("10/s", &r, err, sizeof err), 0);
	assert_near(r, 10.0, 1e-9);
	assert_int_equal(wu_parse_rate("600/min", &r, err, sizeof err), 0);
	assert_near(r, 10.0, 1e-9);
	assert_int_equal(wu_parse_rate("5000/h", &r, err, sizeof err), 0);
	assert_near(r, 5000.0 / 3600.0, 1e-9);
	assert_int_equal(wu_parse_rate("20000/day", &r, err, sizeof err), 0);
	assert_near(r, 20000.0 / 86400.0, 1e-9);
	assert_int_equal(wu_parse_rate("1/s", &r, err, sizeof err), 0);
	assert_near(r, 1.0, 1e-9);
	r = -1;
	assert_int_equal(wu_parse_rate("unlimited", &r, err, sizeof err), 0);
	assert_near(r, 0.0, 0.0);
}

static void expect_rate_error(const char *s)
{
	char err[WU_ERR_MAX] = "";
	double r = 12345;

	if (wu_parse_rate(s, &r, err, sizeof err) != -1) {
		print_error("rate \"%s\" was accepted (%g)\n", s, r);
		fail();
	}
	if (err[0] == '\0') {
		print_error("rate \"%s\": no error message\n", s);
		fail();
	}
}

static void test_rate_errors(void **state)
{
	(void)state;
	expect_rate_error("10/fortnight");
	expect_rate_error("abc");
	expect_rate_error("-5/s");
	expect_rate_error("");
	expect_rate_error("10");
	expect_rate_error("/s");
	expect_rate_error("10/s junk");
	expect_rate_error("ten/s");

	/* The message says what was expected. */
	char err[WU_ERR_MAX] = "";
	double r;
	assert_int_equal(wu_parse_rate("10/fortnight", &r, err, sizeof err), -1);
	assert_err_has(err, "/s");
}

static void test_error_truncated(void **state)
{
	(void)state;
	/* A tiny buffer gets a terminated prefix and nothing past it. */
	char buf[16];
	double r;
	memset(buf, 'X', sizeof buf);
	assert_int_equal(wu_parse_rate("10/fortnight", &r, buf, 8), -1);
	assert_true(memchr(buf, '\0', 8) != NULL);
	for (size_t i = 8; i < sizeof buf; i++)
		assert_int_equal(buf[i], 'X');
}

static void test_percent(void **state)
{
	(void)state;
	char err[WU_ERR_MAX] = "";
	double f = -1;

	assert_int_equal(wu_parse_percent("3%", &f, err, sizeof err), 0);
	assert_near(f, 0.03, 1e-12);
	assert_int_equal(wu_parse_percent("0.1%", &f, err, sizeof err), 0);
	assert_near(f, 0.001, 1e-12);
	assert_int_equal(wu_parse_percent("100%", &f, err, sizeof err), 0);
	assert_near(f, 1.0, 1e-12);
	assert_int_equal(wu_parse_percent("0%", &f, err, sizeof err), 0);
	assert_near(f, 0.0, 1e-12);

	err[0] = '\0';
	assert_int_equal(wu_parse_percent("3", &f, err, sizeof err), -1);
	assert_true(err[0] != '\0');
	assert_int_equal(wu_parse_percent("101%", &f, err, sizeof err), -1);
	assert_int_equal(wu_parse_percent("-1%", &f, err, sizeof err), -1);
	assert_int_equal(wu_parse_percent("%", &f, err, sizeof err), -1);
	assert_int_equal(wu_parse_percent("", &f, err, sizeof err), -1);
	assert_int_equal(wu_parse_percent("abc%", &f, err, sizeof err), -1);
}

static void test_share(void **state)
{
	(void)state;
	char err[WU_ERR_MAX] = "";
	double f = 0;
	int64_t n = 0;

	assert_int_equal(wu_parse_share("40%", &f, &n, err, sizeof err), 0);
	assert_near(f, 0.40, 1e-12);
	assert_i64_eq(n, -1);
	assert_int_equal(wu_parse_share("500", &f, &n, err, sizeof err), 0);
	assert_i64_eq(n, 500);
	assert_near(f, -1.0, 0.0);

	assert_int_equal(wu_parse_share("lots", &f, &n, err, sizeof err), -1);
	assert_true(err[0] != '\0');
	assert_int_equal(wu_parse_share("-3", &f, &n, err, sizeof err), -1);
	assert_int_equal(wu_parse_share("120%", &f, &n, err, sizeof err), -1);
}

static void test_duration(void **state)
{
	(void)state;
	char err[WU_ERR_MAX] = "";
	wu_time_t t = 0;

	assert_int_equal(wu_parse_duration("90s", &t, err, sizeof err), 0);
	assert_i64_eq(t, 90 * WU_USEC);
	assert_int_equal(wu_parse_duration("30min", &t, err, sizeof err), 0);
	assert_i64_eq(t, 30 * WU_MINUTE);
	assert_int_equal(wu_parse_duration("1h", &t, err, sizeof err), 0);
	assert_i64_eq(t, WU_HOUR);
	assert_int_equal(wu_parse_duration("2d", &t, err, sizeof err), 0);
	assert_i64_eq(t, 2 * WU_DAY);
	assert_int_equal(wu_parse_duration("45", &t, err, sizeof err), 0);
	assert_i64_eq(t, 45 * WU_USEC);

	assert_int_equal(wu_parse_duration("0", &t, err, sizeof err), -1);
	assert_true(err[0] != '\0');
	assert_int_equal(wu_parse_duration("0s", &t, err, sizeof err), -1);
	/* Found by tests/fuzz/fuzz_schedule: more than 0 s, but 0 us once
	 * rounded, was accepted as a duration of 0. */
	assert_int_equal(wu_parse_duration(".0000001", &t, err, sizeof err), -1);
	assert_int_equal(wu_parse_duration("0.0000004s", &t, err, sizeof err), -1);
	assert_int_equal(wu_parse_duration("0.000001s", &t, err, sizeof err), 0);
	assert_i64_eq(t, 1);
	assert_int_equal(wu_parse_duration("-5s", &t, err, sizeof err), -1);
	assert_int_equal(wu_parse_duration("5 fortnights", &t, err, sizeof err), -1);
	assert_int_equal(wu_parse_duration("abc", &t, err, sizeof err), -1);
	assert_int_equal(wu_parse_duration("", &t, err, sizeof err), -1);
	assert_int_equal(wu_parse_duration("h", &t, err, sizeof err), -1);
	/* Milliseconds are a duration's unit, not a rate's. */
	assert_int_equal(wu_parse_duration("1ms", &t, err, sizeof err), 0);
	assert_i64_eq(t, 1000);
	assert_int_equal(wu_parse_duration("2.5ms", &t, err, sizeof err), 0);
	assert_i64_eq(t, 2500);
	assert_int_equal(wu_parse_duration("ms", &t, err, sizeof err), -1);
	assert_int_equal(wu_parse_duration("0ms", &t, err, sizeof err), -1);
	double r;
	assert_int_equal(wu_parse_rate("10/ms", &r, err, sizeof err), -1);
}

static void test_count(void **state)
{
	(void)state;
	char err[WU_ERR_MAX] = "";
	int64_t n = -1;

	assert_int_equal(wu_parse_count("20800", &n, err, sizeof err), 0);
	assert_i64_eq(n, 20800);
	assert_int_equal(wu_parse_count("0", &n, err, sizeof err), 0);
	assert_i64_eq(n, 0);

	assert_int_equal(wu_parse_count("-1", &n, err, sizeof err), -1);
	assert_true(err[0] != '\0');
	assert_int_equal(wu_parse_count("+1", &n, err, sizeof err), -1);
	assert_int_equal(wu_parse_count("12x", &n, err, sizeof err), -1);
	assert_int_equal(wu_parse_count("", &n, err, sizeof err), -1);
	assert_int_equal(wu_parse_count("1.5", &n, err, sizeof err), -1);
	/* Larger than int64: an error, not a wrapped value. */
	assert_int_equal(wu_parse_count("99999999999999999999999", &n, err, sizeof err), -1);
}

static void test_bool(void **state)
{
	(void)state;
	char err[WU_ERR_MAX] = "";
	static const char *yes[] = {"on", "yes", "true", "1"};
	static const char *no[] = {"off", "no", "false", "0"};
	int b;

	for (size_t i = 0; i < 4; i++) {
		b = -1;
		assert_int_equal(wu_parse_bool(yes[i], &b, err, sizeof err), 0);
		assert_int_equal(b, 1);
		b = -1;
		assert_int_equal(wu_parse_bool(no[i], &b, err, sizeof err), 0);
		assert_int_equal(b, 0);
	}
	assert_int_equal(wu_parse_bool("maybe", &b, err, sizeof err), -1);
	assert_true(err[0] != '\0');
	assert_int_equal(wu_parse_bool("", &b, err, sizeof err), -1);
}

static void test_date(void **state)
{
	(void)state;
	char err[WU_ERR_MAX] = "";
	int y = 0, m = 0, d = 0;

	assert_int_equal(wu_parse_date("2026-12-01", &y, &m, &d, err, sizeof err), 0);
	assert_int_equal(y, 2026);
	assert_int_equal(m, 12);
	assert_int_equal(d, 1);
	assert_int_equal(wu_parse_date("2024-02-29", &y, &m, &d, err, sizeof err), 0);
	assert_int_equal(d, 29);
	assert_int_equal(wu_parse_date("2000-02-29", &y, &m, &d, err, sizeof err), 0);

	assert_int_equal(wu_parse_date("2026-02-30", &y, &m, &d, err, sizeof err), -1);
	assert_true(err[0] != '\0');
	assert_int_equal(wu_parse_date("2025-02-29", &y, &m, &d, err, sizeof err), -1);
	assert_int_equal(wu_parse_date("1900-02-29", &y, &m, &d, err, sizeof err), -1);
	assert_int_equal(wu_parse_date("2026-13-01", &y, &m, &d, err, sizeof err), -1);
	assert_int_equal(wu_parse_date("2026-00-10", &y, &m, &d, err, sizeof err), -1);
	assert_int_equal(wu_parse_date("2026-04-31", &y, &m, &d, err, sizeof err), -1);
	assert_int_equal(wu_parse_date("2026-12-00", &y, &m, &d, err, sizeof err), -1);
	assert_int_equal(wu_parse_date("2026/12/01", &y, &m, &d, err, sizeof err), -1);
	assert_int_equal(wu_parse_date("2026-12-01x", &y, &m, &d, err, sizeof err), -1);
	assert_int_equal(wu_parse_date("tomorrow", &y, &m, &d, err, sizeof err), -1);
	assert_int_equal(wu_parse_date("", &y, &m, &d, err, sizeof err), -1);
}

static void test_window(void **state)
{
	(void)state;
	char err[WU_ERR_MAX] = "";
	int o = -1, c = -1;

	assert_int_equal(wu_parse_window("08:00-22:00", &o, &c, err, sizeof err), 0);
	assert_int_equal(o, 480);
	assert_int_equal(c, 1320);
	assert_int_equal(wu_parse_window("00:00-24:00", &o, &c, err, sizeof err), 0);
	assert_int_equal(o, 0);
	assert_int_equal(c, 1440);
	assert_int_equal(wu_parse_window("09:30-17:45", &o, &c, err, sizeof err), 0);
	assert_int_equal(o, 570);
	assert_int_equal(c, 1065);

	assert_int_equal(wu_parse_window("22:00-08:00", &o, &c, err, sizeof err), -1);
	assert_true(err[0] != '\0');
	assert_int_equal(wu_parse_window("08:00-08:00", &o, &c, err, sizeof err), -1);
	assert_int_equal(wu_parse_window("08:00-24:01", &o, &c, err, sizeof err), -1);
	assert_int_equal(wu_parse_window("25:00-26:00", &o, &c, err, sizeof err), -1);
	assert_int_equal(wu_parse_window("08:60-09:00", &o, &c, err, sizeof err), -1);
	assert_int_equal(wu_parse_window("24:00-24:00", &o, &c, err, sizeof err), -1);
	assert_int_equal(wu_parse_window("08:00", &o, &c, err, sizeof err), -1);
	assert_int_equal(wu_parse_window("", &o, &c, err, sizeof err), -1);
	assert_int_equal(wu_parse_window("8-22", &o, &c, err, sizeof err), -1);
}

static void test_trim(void **state)
{
	(void)state;
	char a[] = "  \t hello world \t\n";
	char b[] = "";
	char c[] = "   ";
	char d[] = "x";

	assert_string_equal(wu_trim(a), "hello world");
	assert_string_equal(wu_trim(b), "");
	assert_string_equal(wu_trim(c), "");
	assert_string_equal(wu_trim(d), "x");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rate_units),
	    cmocka_unit_test(test_rate_errors),
	    cmocka_unit_test(test_error_truncated),
	    cmocka_unit_test(test_percent),
	    cmocka_unit_test(test_share),
	    cmocka_unit_test(test_duration),
	    cmocka_unit_test(test_count),
	    cmocka_unit_test(test_bool),
	    cmocka_unit_test(test_date),
	    cmocka_unit_test(test_window),
	    cmocka_unit_test(test_trim),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
