/*
 * fuzz_schedule.c -- the schedule CSV and the value parsers of the config.
 *
 * An input whose first byte is below 0x80 is a schedule file, whole (so
 * the files of schedules/ are seeds as they are); otherwise that byte picks a
 * value parser and the rest is its input.  A schedule that
 * parses must give every step a cap the pacing can work with, copy
 * faithfully, and keep its caps to what the file said (or doubled and
 * saturated after the last row).  The value parsers must give values in
 * their documented ranges.
 */
#include "fuzz.h"

#include <math.h>

#include "pacing.h"
#include "parse.h"
#include "schedule.h"

static void schedule(const char *text, size_t len)
{
	struct wu_schedule s, c;
	char err[WU_ERR_MAX] = "";

	memset(&s, 0, sizeof(s));
	memset(&c, 0, sizeof(c));
	if (wu_schedule_parse(&s, text, len, "fuzz.csv", err, sizeof(err)) < 0) {
		fuzz_check(err[0], "refused without a message");
		wu_schedule_free(&s);
		return;
	}
	fuzz_check(s.ndays >= 1, "a schedule of %d days", s.ndays);
	fuzz_check(wu_schedule_copy(&c, &s) == 0 && c.ndays == s.ndays, "copy");
	for (enum wu_after a = WU_AFTER_UNLIMITED; a <= WU_AFTER_DOUBLE; a++) {
		s.after = a;
		for (int step = 0; step <= s.ndays + 70; step += step < s.ndays + 2 ? 1 : 7) {
			struct wu_schedule_day d = wu_schedule_get(&s, step);
			double rate, burst;
			int64_t daily;

			fuzz_check(d.cap >= 0 && d.hourly_cap >= 0, "step %d: negative cap", step);
			if (step >= 1 && step <= s.ndays)
				fuzz_check(d.cap == c.days[step - 1].cap, "step %d: copy differs",
				           step);
			for (wu_time_t w = WU_HOUR; w <= 25 * WU_HOUR; w += 12 * WU_HOUR) {
				daily = wu_pacing_daily_cap(d.cap, d.hourly_cap, w);
				fuzz_check(daily >= 0, "step %d: daily cap %lld", step,
				           (long long)daily);
				wu_pacing_params(daily, d.hourly_cap, w, WU_HOUR, &rate, &burst);
				fuzz_check(isfinite(rate) && rate >= 0 && isfinite(burst) &&
				               burst >= 1,
				           "step %d: rate %g burst %g", step, rate, burst);
			}
		}
	}
	wu_schedule_free(&c);
	wu_schedule_free(&s);
}

static void values(int which, char *s)
{
	char err[WU_ERR_MAX] = "", *f[8];
	double x;
	int64_t n;
	wu_time_t t;
	int a, b, c;

	switch (which % 9) {
	case 0:
		if (wu_parse_rate(s, &x, err, sizeof(err)) == 0)
			fuzz_check(isfinite(x) && x >= 0, "rate %g", x);
		break;
	case 1:
		if (wu_parse_percent(s, &x, err, sizeof(err)) == 0)
			fuzz_check(isfinite(x) && x >= 0 && x <= 1, "percent %g", x);
		break;
	case 2:
		if (wu_parse_share(s, &x, &n, err, sizeof(err)) == 0)
			fuzz_check((n == -1 && isfinite(x) && x >= 0 && x <= 1) ||
			               (x == -1 && n >= 0),
			           "share %g, count %lld", x, (long long)n);
		break;
	case 3:
		if (wu_parse_duration(s, &t, err, sizeof(err)) == 0)
			fuzz_check(t > 0, "duration %lld", (long long)t);
		break;
	case 4:
		if (wu_parse_count(s, &n, err, sizeof(err)) == 0)
			fuzz_check(n >= 0, "count %lld", (long long)n);
		break;
	case 5:
		if (wu_parse_bool(s, &a, err, sizeof(err)) == 0)
			fuzz_check(a == 0 || a == 1, "bool %d", a);
		break;
	case 6:
		if (wu_parse_date(s, &a, &b, &c, err, sizeof(err)) == 0)
			fuzz_check(a >= 1970 && a <= 9999 && b >= 1 && b <= 12 && c >= 1 && c <= 31,
			           "date %d-%d-%d", a, b, c);
		break;
	case 7:
		if (wu_parse_window(s, &a, &b, err, sizeof(err)) == 0)
			fuzz_check(a >= 0 && a < b && b <= 1440, "window %d-%d", a, b);
		break;
	default:
		a = wu_csv_split(wu_trim(s), f, 8);
		fuzz_check(a >= 1, "%d fields", a);
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text;

	if (size < 1)
		return 0;
	if (data[0] < 0x80) {
		schedule((const char *)data, size);
		return 0;
	}
	if (!(text = fuzz_text(data + 1, size - 1)))
		abort();
	values(data[0], text);
	free(text);
	return 0;
}
