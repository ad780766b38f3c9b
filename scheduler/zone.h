/*
 * zone.h -- the process's time zone, set once before any thread starts.
 */
#ifndef WU_ZONE_H
#define WU_ZONE_H

#include <stddef.h>

/* Checks that tz names a zone of the system's database ($TZDIR, else
 * /usr/share/zoneinfo): 0, or -1 with a reason in why. */
int wu_zone_check(const char *tz, char *why, size_t n);

/* Makes tz (an IANA name, "Asia/Tokyo") the zone of the process's local
 * time.  Call before starting threads.  Returns 0 or -1 (errno set). */
int wu_zone_apply(const char *tz);

#endif
