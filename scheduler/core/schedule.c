/*
 * schedule.c -- warmup tables read from CSV, and the caps of any day.
 *
 * The header row names the columns, so a table can give daily caps, hourly
 * caps or both; rows must run 1, 2, 3... with positive caps.  Past the last
 * row the after-policy decides: unlimited, hold the last caps, or double them
 * every day.
 */
#include "schedule.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "parse.h"

#define MAX_DAYS 3660

/* "FILE:LINE: message" into err; returns -1. */
static int fail(char *err, size_t errlen, const char *file, int line, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!err || !errlen)
		return -1;
	n = snprintf(err, errlen, "%s:%d: ", file, line);
	if (n < 0 || (size_t)n >= errlen)
		return -1;
	va_start(ap, fmt);
	vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return -1;
}

/* Is the line a comment or blank? */
static int ignorable(const char *line)
{
	while (isspace((unsigned char)*line))
		line++;
	return *line == '\0' || *line == '#';
}

int wu_schedule_parse(struct wu_schedule *s, const char *text, size_t len, const char *filename,
                      char *err, size_t errlen)
{
	int col_day = -1, col_cap = -1, col_hourly = -1, ncols = 0, lineno = 0, cap_days = 0;
	enum wu_after after = s->after;
	const char *p = text, *end = text + len;
	char line[512], *f[8];

	memset(s, 0, sizeof(*s));
	s->after = after;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		int nf;

		lineno++;
		if (n >= sizeof(line)) {
			fail(err, errlen, filename, lineno, "line too long");
			goto bad;
		}
		memcpy(line, p, n);
		line[n] = '\0';
		if (n && line[n - 1] == '\r')
			line[n - 1] = '\0';
		p = nl ? nl + 1 : end;
		if (strlen(line) + 1 < n) {
			fail(err, errlen, filename, lineno, "NUL byte in the line");
			goto bad;
		}
		if (ignorable(line))
			continue;
		nf = wu_csv_split(line, f, 8);
		if (nf > 8) {
			fail(err, errlen, filename, lineno, "too many columns");
			goto bad;
		}
		if (col_day < 0) { /* the header row */
			for (int i = 0; i < nf; i++) {
				int *col = strcasecmp(f[i], "day") == 0          ? &col_day
				           : strcasecmp(f[i], "cap") == 0        ? &col_cap
				           : strcasecmp(f[i], "hourly_cap") == 0 ? &col_hourly
				                                                 : NULL;
				if (!col || *col >= 0) {
					fail(err, errlen, filename, lineno,
					     "%s column '%s' in the header (expected day, cap, "
					     "hourly_cap)",
					     col ? "repeated" : "unknown", f[i]);
					goto bad;
				}
				*col = i;
			}
			if (col_day < 0 || (col_cap < 0 && col_hourly < 0)) {
				fail(err, errlen, filename, lineno,
				     "expected a header row 'day,cap' (or day,hourly_cap or "
				     "day,cap,hourly_cap)");
				goto bad;
			}
			ncols = nf;
			continue;
		}
		if (nf != ncols) {
			fail(err, errlen, filename, lineno, "expected %d columns, found %d", ncols,
			     nf);
			goto bad;
		}
		int64_t day, cap = 0, hourly = 0;
		char why[WU_ERR_MAX];
		if (wu_parse_count(f[col_day], &day, why, sizeof(why)) < 0) {
			fail(err, errlen, filename, lineno, "day: %s", why);
			goto bad;
		}
		if (day != s->ndays + 1) {
			fail(err, errlen, filename, lineno,
			     "day %lld out of order (expected day %d)", (long long)day,
			     s->ndays + 1);
			goto bad;
		}
		if (day > MAX_DAYS) {
			fail(err, errlen, filename, lineno, "more than %d days", MAX_DAYS);
			goto bad;
		}
		if (col_cap >= 0 &&
		    (wu_parse_count(f[col_cap], &cap, why, sizeof(why)) < 0 || cap <= 0)) {
			fail(err, errlen, filename, lineno,
			     "cap: expected a positive whole number, got '%s'", f[col_cap]);
			goto bad;
		}
		if (col_hourly >= 0 &&
		    (wu_parse_count(f[col_hourly], &hourly, why, sizeof(why)) < 0 || hourly <= 0)) {
			fail(err, errlen, filename, lineno,
			     "hourly_cap: expected a positive whole number, got '%s'",
			     f[col_hourly]);
			goto bad;
		}
		if (s->ndays == cap_days) {
			int nc = cap_days ? cap_days * 2 : 32;
			void *d = realloc(s->days, (size_t)nc * sizeof(*s->days));
			if (!d) {
				fail(err, errlen, filename, lineno, "out of memory");
				goto bad;
			}
			s->days = d;
			cap_days = nc;
		}
		s->days[s->ndays].cap = cap;
		s->days[s->ndays].hourly_cap = hourly;
		s->ndays++;
	}
	if (col_day < 0) {
		fail(err, errlen, filename, lineno ? lineno : 1, "no header row 'day,cap'");
		goto bad;
	}
	if (s->ndays == 0) {
		fail(err, errlen, filename, lineno, "no days in the schedule");
		goto bad;
	}
	return 0;
bad:
	wu_schedule_free(s);
	s->after = after;
	return -1;
}

int wu_schedule_copy(struct wu_schedule *dst, const struct wu_schedule *src)
{
	*dst = *src;
	dst->days = NULL;
	if (src->ndays) {
		dst->days = malloc((size_t)src->ndays * sizeof(*src->days));
		if (!dst->days)
			return -1;
		memcpy(dst->days, src->days, (size_t)src->ndays * sizeof(*src->days));
	}
	return 0;
}

void wu_schedule_free(struct wu_schedule *s)
{
	free(s->days);
	s->days = NULL;
	s->ndays = 0;
}

/* v doubled n times, saturating at WU_UNLIMITED; 0 stays 0. */
static int64_t doubled(int64_t v, int n)
{
	while (v && n-- > 0) {
		if (v >= WU_UNLIMITED / 2)
			return WU_UNLIMITED;
		v *= 2;
	}
	return v;
}

struct wu_schedule_day wu_schedule_get(const struct wu_schedule *s, int step)
{
	struct wu_schedule_day d = {0, 0}, last;

	if (step < 1 || s->ndays == 0)
		return d;
	if (step <= s->ndays)
		return s->days[step - 1];
	last = s->days[s->ndays - 1];
	switch (s->after) {
	case WU_AFTER_HOLD:
		return last;
	case WU_AFTER_DOUBLE:
		d.cap = doubled(last.cap, step - s->ndays);
		d.hourly_cap = doubled(last.hourly_cap, step - s->ndays);
		return d;
	case WU_AFTER_UNLIMITED:
	default:
		d.cap = WU_UNLIMITED;
		d.hourly_cap = 0;
		return d;
	}
}

int wu_after_parse(const char *s, enum wu_after *a, char *err, size_t errlen)
{
	for (enum wu_after i = WU_AFTER_UNLIMITED; i <= WU_AFTER_DOUBLE; i++)
		if (strcmp(s, wu_after_name(i)) == 0)
			return *a = i, 0;
	if (err && errlen)
		snprintf(err, errlen, "expected unlimited, hold or double, got '%s'", s);
	return -1;
}

const char *wu_after_name(enum wu_after a)
{
	switch (a) {
	case WU_AFTER_HOLD:
		return "hold";
	case WU_AFTER_DOUBLE:
		return "double";
	default:
		return "unlimited";
	}
}
