/*
 * test_calendar.c -- local days: midnights in Asia/Tokyo (no DST) and across
 * DST changes, sending windows, the day index, and the civil-date arithmetic.
 */
#include "tests/unit/cal_zone.h"
#include "test_util.h"

#include "calendar.h"

#define S(x) (INT64_C(x) * WU_USEC)

static void test_civil_known(void **state)
{
	(void)state;
	assert_int_equal(wu_days_from_civil(1970, 1, 1), 0);
	assert_int_equal(wu_days_from_civil(1969, 12, 31), -1);
	assert_int_equal(wu_days_from_civil(2000, 2, 29), 11016);
	assert_int_equal(wu_days_from_civil(1900, 3, 1), -25508);
	assert_int_equal(wu_days_from_civil(2026, 12, 1), D_20261201);
	assert_int_equal(wu_days_from_civil(2026, 3, 8), 20520);
	assert_int_equal(wu_days_from_civil(2026, 11, 1), 20758);
}

static void test_civil_round_trip(void **state)
{
	(void)state;
	int prev_y = 0, prev_m = 0, prev_d = 0;

	/* 1600-01-01 .. 2400-12-31 and back, every day. */
	int from = wu_days_from_civil(1600, 1, 1), to = wu_days_from_civil(2400, 12, 31);
	for (int days = from; days <= to; days++) {
		int y, m, d;
		wu_civil_from_days(days, &y, &m, &d);
		assert_in_range(m, 1, 12);
		assert_in_range(d, 1, 31);
		assert_int_equal(wu_days_from_civil(y, m, d), days);
		if (days > from) {
			/* consecutive days are consecutive dates */
			if (d != 1) {
				assert_int_equal(y, prev_y);
				assert_int_equal(m, prev_m);
				assert_int_equal(d, prev_d + 1);
			}
		}
		prev_y = y;
		prev_m = m;
		prev_d = d;
	}
}

static void test_date_format(void **state)
{
	(void)state;
	char buf[11];

	wu_date_format(D_20261201, buf, sizeof buf);
	assert_string_equal(buf, "2026-12-01");
	wu_date_format(0, buf, sizeof buf);
	assert_string_equal(buf, "1970-01-01");
	wu_date_format(11016, buf, sizeof buf);
	assert_string_equal(buf, "2000-02-29");
}

static void test_tokyo_day(void **state)
{
	(void)state;
	struct wu_calendar c;
	struct wu_day d;
	char err[WU_ERR_MAX] = "";

	assert_int_equal(cal_init(&c, "Asia/Tokyo", 2026, 12, 1, 0, 1440, err, sizeof err),
	                 0);
	assert_int_equal(c.start, D_20261201);

	/* Local midnight 2026-12-01 is 2026-11-30T15:00Z. */
	wu_calendar_day(&c, T_TOKYO_20261201, &d);
	assert_int_equal(d.date, D_20261201);
	assert_int_equal(d.index, 1);
	assert_i64_eq(d.start, T_TOKYO_20261201);
	assert_i64_eq(d.end, T_TOKYO_20261201 + WU_DAY);
	assert_i64_eq(d.open, d.start);
	assert_i64_eq(d.close, d.end);

	/* One microsecond earlier is the day before: index 0, not started. */
	wu_calendar_day(&c, T_TOKYO_20261201 - 1, &d);
	assert_int_equal(d.date, D_20261201 - 1);
	assert_int_equal(d.index, 0);
	assert_i64_eq(d.end, T_TOKYO_20261201);
	assert_i64_eq(d.start, T_TOKYO_20261201 - WU_DAY);

	/* Last microsecond of day 1, and the end instant belongs to day 2. */
	wu_calendar_day(&c, T_TOKYO_20261201 + WU_DAY - 1, &d);
	assert_int_equal(d.index, 1);
	wu_calendar_day(&c, T_TOKYO_20261201 + WU_DAY, &d);
	assert_int_equal(d.index, 2);
	assert_i64_eq(d.start, T_TOKYO_20261201 + WU_DAY);

	/* Noon UTC on 2026-12-01 is 21:00 JST: still day 1. 15:00Z is day 2. */
	wu_calendar_day(&c, S(1796126400) /* 2026-12-01T12:00Z */, &d);
	assert_int_equal(d.index, 1);
	wu_calendar_day(&c, S(1796137200) /* 2026-12-01T15:00Z */, &d);
	assert_int_equal(d.index, 2);

	/* Ten days on, every day 24 hours, index relative to the start. */
	for (int i = 0; i < 10; i++) {
		wu_calendar_day(&c, T_TOKYO_20261201 + i * WU_DAY + 7 * WU_HOUR, &d);
		assert_int_equal(d.index, i + 1);
		assert_int_equal(d.date, D_20261201 + i);
		assert_i64_eq(d.start, T_TOKYO_20261201 + i * WU_DAY);
		assert_i64_eq(d.end - d.start, WU_DAY);
	}

	/* wu_calendar_date gives the same day as wu_calendar_day. */
	struct wu_day d2;
	wu_calendar_date(&c, D_20261201 + 9, &d2);
	assert_int_equal(d2.index, 10);
	assert_i64_eq(d2.start, T_TOKYO_20261201 + 9 * WU_DAY);
	wu_calendar_date(&c, D_20261201 - 3, &d2);
	assert_int_equal(d2.index, -2);
}

static void test_tokyo_window(void **state)
{
	(void)state;
	struct wu_calendar c;
	struct wu_day d;
	char err[WU_ERR_MAX] = "";

	assert_int_equal(
	    cal_init(&c, "Asia/Tokyo", 2026, 12, 1, 8 * 60, 22 * 60, err, sizeof err), 0);
	wu_calendar_day(&c, T_TOKYO_20261201 + 3 * WU_HOUR, &d);
	assert_i64_eq(d.open, T_TOKYO_20261201 + 8 * WU_HOUR);
	assert_i64_eq(d.close, T_TOKYO_20261201 + 22 * WU_HOUR);
	assert_i64_eq(d.start, T_TOKYO_20261201);
	assert_i64_eq(d.end, T_TOKYO_20261201 + WU_DAY);

	/* A window closing at 24:00 closes at the next midnight. */
	assert_int_equal(
	    cal_init(&c, "Asia/Tokyo", 2026, 12, 1, 9 * 60 + 30, 1440, err, sizeof err), 0);
	wu_calendar_day(&c, T_TOKYO_20261201 + 3 * WU_HOUR, &d);
	assert_i64_eq(d.open, T_TOKYO_20261201 + 9 * WU_HOUR + 30 * WU_MINUTE);
	assert_i64_eq(d.close, d.end);
}

static void test_init_errors(void **state)
{
	(void)state;
	struct wu_calendar c;
	char err[WU_ERR_MAX] = "";

	/* An empty or reversed window is refused with a message. */
	assert_int_equal(cal_init(&c, "Asia/Tokyo", 2026, 12, 1, 600, 600, err, sizeof err),
	                 -1);
	assert_true(err[0] != '\0');
	assert_int_equal(cal_init(&c, "Asia/Tokyo", 2026, 12, 1, 900, 300, err, sizeof err),
	                 -1);
	assert_int_equal(cal_init(&c, "Asia/Tokyo", 2026, 12, 1, 0, 1441, err, sizeof err),
	                 -1);
	assert_int_equal(cal_init(&c, "Asia/Tokyo", 2026, 12, 1, -1, 600, err, sizeof err),
	                 -1);
}

static void test_new_york_spring_forward(void **state)
{
	(void)state;
	struct wu_calendar c;
	struct wu_day d;
	char err[WU_ERR_MAX] = "";

	assert_int_equal(
	    cal_init(&c, "America/New_York", 2026, 3, 7, 0, 1440, err, sizeof err), 0);

	/* 2026-03-08: 05:00Z (EST midnight) to 04:00Z next day (EDT midnight). */
	wu_calendar_day(&c, S(1772946000) + 6 * WU_HOUR, &d);
	assert_int_equal(d.date, 20520);
	assert_int_equal(d.index, 2);
	assert_i64_eq(d.start, S(1772946000));
	assert_i64_eq(d.end, S(1773028800));
	assert_i64_eq(d.end - d.start, 23 * WU_HOUR);

	/* The day before and after are 24 hours long. */
	struct wu_day p, n;
	wu_calendar_date(&c, 20519, &p);
	assert_i64_eq(p.end, d.start);
	assert_i64_eq(p.end - p.start, WU_DAY);
	wu_calendar_date(&c, 20521, &n);
	assert_i64_eq(n.start, d.end);
	assert_i64_eq(n.end - n.start, WU_DAY);
	assert_int_equal(n.index, 3);

	/* The last microsecond before EDT midnight is still the short day. */
	wu_calendar_day(&c, S(1773028800) - 1, &d);
	assert_int_equal(d.date, 20520);
	wu_calendar_day(&c, S(1773028800), &d);
	assert_int_equal(d.date, 20521);
}

static void test_new_york_fall_back(void **state)
{
	(void)state;
	struct wu_calendar c;
	struct wu_day d;
	char err[WU_ERR_MAX] = "";

	assert_int_equal(
	    cal_init(&c, "America/New_York", 2026, 10, 30, 0, 1440, err, sizeof err), 0);

	/* 2026-11-01: 04:00Z (EDT midnight) to 05:00Z next day (EST). */
	wu_calendar_day(&c, S(1793505600), &d);
	assert_int_equal(d.date, 20758);
	assert_int_equal(d.index, 3);
	assert_i64_eq(d.start, S(1793505600));
	assert_i64_eq(d.end, S(1793595600));
	assert_i64_eq(d.end - d.start, 25 * WU_HOUR);

	/* Both passes through 01:30 local (05:30Z EDT, 06:30Z EST) are that day. */
	wu_calendar_day(&c, S(1793505600) + 90 * WU_MINUTE, &d);
	assert_int_equal(d.date, 20758);
	wu_calendar_day(&c, S(1793505600) + 150 * WU_MINUTE, &d);
	assert_int_equal(d.date, 20758);
	wu_calendar_day(&c, S(1793595600) - 1, &d);
	assert_int_equal(d.date, 20758);
}

static void test_new_york_window_on_dst_days(void **state)
{
	(void)state;
	struct wu_calendar c;
	struct wu_day d;
	char err[WU_ERR_MAX] = "";

	/* Window edges are wall-clock times: 08:00 and 22:00 local. */
	assert_int_equal(
	    cal_init(&c, "America/New_York", 2026, 3, 1, 480, 1320, err, sizeof err), 0);
	wu_calendar_date(&c, 20520, &d);
	assert_i64_eq(d.open, S(1772971200));  /* 2026-03-08T12:00Z = 08:00 EDT */
	assert_i64_eq(d.close, S(1773021600)); /* 2026-03-09T02:00Z = 22:00 EDT */

	wu_calendar_date(&c, 20758, &d);
	assert_i64_eq(d.open, S(1793538000));  /* 2026-11-01T13:00Z = 08:00 EST */
	assert_i64_eq(d.close, S(1793588400)); /* 2026-11-02T03:00Z = 22:00 EST */
}

static void test_santiago_midnight_transitions(void **state)
{
	(void)state;
	struct wu_calendar c;
	struct wu_day d;
	char err[WU_ERR_MAX] = "";

	/* Chile changes its clocks at midnight: on 2026-09-06 local 00:00 does
	 * not exist (the day starts at 01:00 -03, 04:00Z) and is 23 hours long;
	 * 2026-04-04 ends at the second 24:00 and is 25 hours long. */
	assert_int_equal(
	    cal_init(&c, "America/Santiago", 2026, 4, 1, 0, 1440, err, sizeof err), 0);
	int sep6 = wu_days_from_civil(2026, 9, 6), apr4 = wu_days_from_civil(2026, 4, 4);

	wu_calendar_date(&c, sep6, &d);
	assert_i64_eq(d.start, S(1788667200));
	assert_i64_eq(d.end - d.start, 23 * WU_HOUR);
	wu_calendar_day(&c, S(1788667200), &d);
	assert_int_equal(d.date, sep6);
	wu_calendar_day(&c, S(1788667200) - 1, &d);
	assert_int_equal(d.date, sep6 - 1);
	assert_i64_eq(d.end, S(1788667200));

	wu_calendar_date(&c, apr4, &d);
	assert_i64_eq(d.start, S(1775271600));
	assert_i64_eq(d.end, S(1775361600));
	assert_i64_eq(d.end - d.start, 25 * WU_HOUR);
}

static void test_days_tile_the_timeline(void **state)
{
	(void)state;
	struct wu_calendar c;
	char err[WU_ERR_MAX] = "";

	/* A year in New York: each day ends where the next starts, and every
	 * instant tested lies inside the day that wu_calendar_day returns. */
	assert_int_equal(
	    cal_init(&c, "America/New_York", 2026, 1, 1, 0, 1440, err, sizeof err), 0);
	int first = wu_days_from_civil(2026, 1, 1);
	int n23 = 0, n25 = 0;
	for (int date = first; date < first + 365; date++) {
		struct wu_day d, n, x;
		wu_calendar_date(&c, date, &d);
		wu_calendar_date(&c, date + 1, &n);
		assert_i64_eq(d.end, n.start);
		assert_int_equal(d.index, date - first + 1);
		if (d.end - d.start == 23 * WU_HOUR)
			n23++;
		else if (d.end - d.start == 25 * WU_HOUR)
			n25++;
		else
			assert_i64_eq(d.end - d.start, WU_DAY);
		wu_calendar_day(&c, d.start, &x);
		assert_int_equal(x.date, date);
		wu_calendar_day(&c, d.end - 1, &x);
		assert_int_equal(x.date, date);
	}
	assert_int_equal(n23, 1);
	assert_int_equal(n25, 1);
}

/* The calendar records its zone and leaves the process's alone: TZ is
 * the program's to set, once, before threads (scheduler/zone.h). */
static void test_init_leaves_tz(void **state)
{
	struct wu_calendar c;
	char err[128];

	(void)state;
	setenv("TZ", "UTC", 1);
	tzset();
	assert_int_equal(wu_calendar_init(&c, "Asia/Tokyo", 2026, 12, 1, 0, 1440, err, sizeof err),
	                 0);
	assert_string_equal(c.tz, "Asia/Tokyo");
	assert_string_equal(getenv("TZ"), "UTC");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_civil_known),
	    cmocka_unit_test(test_init_leaves_tz),
	    cmocka_unit_test(test_civil_round_trip),
	    cmocka_unit_test(test_date_format),
	    cmocka_unit_test(test_tokyo_day),
	    cmocka_unit_test(test_tokyo_window),
	    cmocka_unit_test(test_init_errors),
	    cmocka_unit_test(test_new_york_spring_forward),
	    cmocka_unit_test(test_new_york_fall_back),
	    cmocka_unit_test(test_new_york_window_on_dst_days),
	    cmocka_unit_test(test_santiago_midnight_transitions),
	    cmocka_unit_test(test_days_tile_the_timeline),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
