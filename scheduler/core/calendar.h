/*
 * calendar.h -- local days: where today starts and ends in the configured
 * time zone, where its sending window lies, and which day of the warmup
 * calendar it is.
 *
 * Day boundaries are local midnight, found with the C library's zone rules,
 * so a day is 23 or 25 hours long across a DST change.  The zone is the
 * process's (TZ): one process runs one zone, which the program sets once,
 * before it starts threads (scheduler/zone.h); wu_calendar_init() only
 * records its name and never touches the environment.
 */
#ifndef WU_CALENDAR_H
#define WU_CALENDAR_H

#include "wu.h"

struct wu_calendar {
	int start;     /* day 1 as local days since 1970-01-01 */
	int open_min;  /* sending window, minutes after local midnight */
	int close_min; /* 1440 = end of the day */
	char tz[64];
};

struct wu_day {
	int date;        /* local days since 1970-01-01 */
	int index;       /* date - start + 1: 1 on the start date, <= 0 before */
	wu_time_t start; /* local midnight opening the day */
	wu_time_t end;   /* the next local midnight */
	wu_time_t open;  /* sending window of the day */
	wu_time_t close;
};

/* Sets up the calendar.  tz is an IANA name ("Asia/Tokyo"), which must be
 * the process's zone when the calendar is used; the caller checks that
 * the zone exists.  Returns 0 or -1. */
int wu_calendar_init(struct wu_calendar *c, const char *tz, int y, int m, int d, int open_min,
                     int close_min, char *err, size_t errlen);

/* Fills *out with the local day that contains now. */
void wu_calendar_day(const struct wu_calendar *c, wu_time_t now, struct wu_day *out);

/* Fills *out with the local day numbered date (local days since 1970-01-01). */
void wu_calendar_date(const struct wu_calendar *c, int date, struct wu_day *out);

/* The instant of local time `minutes` after midnight of date, placed by the
 * zone's rules. */
wu_time_t wu_calendar_local(int date, int minutes);

/* Civil date <-> days since 1970-01-01 (proleptic Gregorian). */
int wu_days_from_civil(int y, int m, int d);
void wu_civil_from_days(int days, int *y, int *m, int *d);

/* Writes "YYYY-MM-DD" for a day number into buf (at least 11 bytes). */
void wu_date_format(int days, char *buf, size_t len);

#endif
