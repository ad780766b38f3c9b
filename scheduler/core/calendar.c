/*
 * calendar.c -- local days in the configured zone.
 *
 * Midnights and window edges come from mktime() with tm_isdst = -1, so the
 * C library's zone rules place them, DST included.  Dates are counted as days
 * since 1970-01-01 with the civil-calendar arithmetic, which needs no zone.
 */
#include "calendar.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int wu_days_from_civil(int y, int m, int d)
{
	/* Howard Hinnant's days_from_civil: eras of 400 years. */
	y -= m <= 2;
	int era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (unsigned)((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1);
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int)doe - 719468;
}

void wu_civil_from_days(int z, int *y, int *m, int *d)
{
	z += 719468;
	int era = (z >= 0 ? z : z - 146096) / 146097;
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = (int)yoe + era * 400 + (*m <= 2);
}

void wu_date_format(int days, char *buf, size_t len)
{
	int y, m, d;

	wu_civil_from_days(days, &y, &m, &d);
	snprintf(buf, len, "%04d-%02d-%02d", y, m, d);
}

int wu_calendar_init(struct wu_calendar *c, const char *tz, int y, int m, int d, int open_min,
                     int close_min, char *err, size_t errlen)
{
	if (strlen(tz) >= sizeof(c->tz) || open_min < 0 || close_min > 1440 ||
	    open_min >= close_min) {
		if (err && errlen)
			snprintf(err, errlen, "bad calendar settings (zone '%s', window %d-%d)", tz,
			         open_min, close_min);
		return -1;
	}
	strcpy(c->tz, tz);
	c->start = wu_days_from_civil(y, m, d);
	c->open_min = open_min;
	c->close_min = close_min;
	return 0;
}

wu_time_t wu_calendar_local(int date, int minutes)
{
	struct tm tm;
	int y, m, d;

	wu_civil_from_days(date, &y, &m, &d);
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = m - 1;
	tm.tm_mday = d;
	tm.tm_hour = minutes / 60;
	tm.tm_min = minutes % 60;
	tm.tm_isdst = -1;
	return (wu_time_t)mktime(&tm) * WU_USEC;
}

void wu_calendar_date(const struct wu_calendar *c, int date, struct wu_day *out)
{
	out->date = date;
	out->index = date - c->start + 1;
	out->start = wu_calendar_local(date, 0);
	out->end = wu_calendar_local(date + 1, 0);
	out->open = c->open_min == 0 ? out->start : wu_calendar_local(date, c->open_min);
	out->close = c->close_min == 1440 ? out->end : wu_calendar_local(date, c->close_min);
}

void wu_calendar_day(const struct wu_calendar *c, wu_time_t now, struct wu_day *out)
{
	time_t t = (time_t)(now >= 0 ? now / WU_USEC : (now - WU_USEC + 1) / WU_USEC);
	struct tm tm;

	localtime_r(&t, &tm);
	wu_calendar_date(c, wu_days_from_civil(tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday), out);
}
