/*
 * cal_zone.h -- a calendar and the process's zone, for tests: the zone is
 * the program's to set (scheduler/zone.h), wu_calendar_init() only records
 * it.
 */
#ifndef WU_TEST_CAL_ZONE_H
#define WU_TEST_CAL_ZONE_H

#include <stdlib.h>
#include <time.h>

#include "scheduler/core/calendar.h"

static inline int cal_init(struct wu_calendar *c, const char *tz, int y, int m, int d,
                           int open_min, int close_min, char *err, size_t errlen)
{
	setenv("TZ", tz, 1);
	tzset();
	return wu_calendar_init(c, tz, y, m, d, open_min, close_min, err, errlen);
}

#endif
