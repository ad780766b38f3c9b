/*
 * zone.c -- the process's time zone.
 *
 * The engine finds local midnights with the C library (mktime, localtime_r),
 * which reads the zone from TZ.  Changing TZ while other threads read it is
 * not safe, so a program sets it once, from its configuration, before it
 * starts any thread: warmupd after loading its file, `warmup simulate` after
 * its options.  A reload never changes the zone (restart for that).
 */
#include "zone.h"

#include <stdlib.h>
#include <time.h>

int wu_zone_apply(const char *tz)
{
	if (setenv("TZ", tz, 1) < 0)
		return -1;
	tzset();
	return 0;
}
