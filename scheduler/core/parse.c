/*
 * parse.c -- the value syntax of config files, schedules and the command line.
 *
 * Every parser is strict: the whole string must be used, numbers must be in
 * range, and the error says what would have been accepted.  Nothing here
 * knows about files or lines; callers add those.
 */
#include "parse.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Writes a message into err when there is room for one; returns -1. */
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

char *wu_trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

int wu_csv_split(char *line, char **f, int max)
{
	int n = 0;

	for (char *p = line;;) {
		char *c = strchr(p, ',');
		if (c)
			*c = '\0';
		if (n < max)
			f[n] = wu_trim(p);
		n++;
		if (!c)
			return n;
		p = c + 1;
	}
}

/* A finite, non-negative decimal number taking the whole of [s, end). */
static int number(const char *s, const char *end, double *out)
{
	char buf[64];
	char *stop;
	size_t n = (size_t)(end - s);

	if (n == 0 || n >= sizeof(buf))
		return -1;
	memcpy(buf, s, n);
	buf[n] = '\0';
	if (!isdigit((unsigned char)buf[0]) && buf[0] != '.')
		return -1;
	errno = 0;
	*out = strtod(buf, &stop);
	if (errno || *stop || !isfinite(*out) || *out < 0)
		return -1;
	return 0;
}

/* Seconds in a unit name, or 0 when unknown. */
static double unit_seconds(const char *u)
{
	static const struct {
		const char *name;
		double sec;
	} units[] = {
	    {"s", 1},       {"sec", 1},  {"second", 1},  {"m", 60},    {"min", 60},
	    {"minute", 60}, {"h", 3600}, {"hour", 3600}, {"d", 86400}, {"day", 86400},
	};

	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (strcasecmp(u, units[i].name) == 0)
			return units[i].sec;
	return 0;
}

int wu_parse_rate(const char *s, double *per_sec, char *err, size_t errlen)
{
	const char *slash = strchr(s, '/');
	double n, sec;

	if (strcasecmp(s, "unlimited") == 0) {
		*per_sec = 0;
		return 0;
	}
	if (!slash || number(s, slash, &n) < 0 || n <= 0 || (sec = unit_seconds(slash + 1)) == 0)
		return fail(err, errlen,
		            "expected a rate such as 10/s, 600/min, 5000/h or 20000/day, got '%s'",
		            s);
	*per_sec = n / sec;
	return 0;
}

int wu_parse_percent(const char *s, double *frac, char *err, size_t errlen)
{
	size_t n = strlen(s);
	double v;

	if (n < 2 || s[n - 1] != '%' || number(s, s + n - 1, &v) < 0 || v > 100)
		return fail(err, errlen,
		            "expected a percentage from 0%% to 100%% such as 3%%, got '%s'", s);
	*frac = v / 100;
	return 0;
}

int wu_parse_share(const char *s, double *frac, int64_t *count, char *err, size_t errlen)
{
	size_t n = strlen(s);

	if (n && s[n - 1] == '%') {
		if (wu_parse_percent(s, frac, err, errlen) < 0)
			return -1;
		*count = -1;
		return 0;
	}
	if (wu_parse_count(s, count, NULL, 0) < 0)
		return fail(
		    err, errlen,
		    "expected a share of the cap such as 40%% or a count such as 500, got '%s'", s);
	*frac = -1;
	return 0;
}

int wu_parse_duration(const char *s, wu_time_t *usec, char *err, size_t errlen)
{
	const char *u = s;
	double n, sec = 1;

	while (*u && (isdigit((unsigned char)*u) || *u == '.'))
		u++;
	/* Milliseconds, for durations only (a rate per millisecond is no rate
	 * a mail provider states). */
	if (strcasecmp(u, "ms") == 0)
		sec = 0.001;
	else if (*u)
		sec = unit_seconds(u);
	if (number(s, u, &n) < 0 || sec == 0 || n * sec <= 0 ||
	    n * sec > 366.0 * 86400 || llround(n * sec * 1e6) < 1)
		return fail(err, errlen,
		            "expected a duration such as 90s, 30min, 1h or 2d, got '%s'", s);
	*usec = (wu_time_t)llround(n * sec * 1e6);
	return 0;
}

int wu_parse_count(const char *s, int64_t *n, char *err, size_t errlen)
{
	char *end;
	long long v;

	if (!isdigit((unsigned char)s[0]))
		return fail(err, errlen, "expected a whole number, got '%s'", s);
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || *end)
		return fail(err, errlen, "expected a whole number, got '%s'", s);
	*n = v;
	return 0;
}

int wu_parse_bool(const char *s, int *b, char *err, size_t errlen)
{
	static const char *yes[] = {"on", "yes", "true", "1"}, *no[] = {"off", "no", "false", "0"};

	for (int i = 0; i < 4; i++) {
		if (strcasecmp(s, yes[i]) == 0)
			return *b = 1, 0;
		if (strcasecmp(s, no[i]) == 0)
			return *b = 0, 0;
	}
	return fail(err, errlen, "expected on or off, got '%s'", s);
}

int wu_parse_date(const char *s, int *y, int *m, int *d, char *err, size_t errlen)
{
	static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int n = 0, leap, max;

	if (sscanf(s, "%4d-%2d-%2d%n", y, m, d, &n) != 3 || n != 10 || s[n] || s[4] != '-' ||
	    s[7] != '-' || *y < 1970 || *y > 9999 || *m < 1 || *m > 12)
		return fail(err, errlen, "expected a date such as 2026-12-01, got '%s'", s);
	leap = (*y % 4 == 0 && *y % 100 != 0) || *y % 400 == 0;
	max = mdays[*m - 1] + (*m == 2 && leap);
	if (*d < 1 || *d > max)
		return fail(err, errlen, "no such date: '%s'", s);
	return 0;
}

/* "HH:MM" -> minutes; 24:00 allowed. */
static int clock_minutes(const char *s, int *min)
{
	int h, m, n = 0;

	if (sscanf(s, "%2d:%2d%n", &h, &m, &n) != 2 || n != 5 || s[n] || h < 0 || m < 0 || m > 59 ||
	    h > 24 || (h == 24 && m != 0))
		return -1;
	*min = h * 60 + m;
	return 0;
}

int wu_parse_window(const char *s, int *open_min, int *close_min, char *err, size_t errlen)
{
	char a[16], b[16];
	const char *dash = strchr(s, '-');

	if (!dash || dash - s >= (long)sizeof(a) || strlen(dash + 1) >= sizeof(b))
		goto bad;
	memcpy(a, s, (size_t)(dash - s));
	a[dash - s] = '\0';
	strcpy(b, dash + 1);
	if (clock_minutes(wu_trim(a), open_min) < 0 || clock_minutes(wu_trim(b), close_min) < 0)
		goto bad;
	if (*open_min >= *close_min)
		return fail(err, errlen,
		            "the window must open before it closes on the same day, got '%s'", s);
	return 0;
bad:
	return fail(err, errlen, "expected a local time window such as 08:00-22:00, got '%s'", s);
}
