/*
 * zone.h -- the process's time zone, set once before any thread starts.
 */
#ifndef WU_ZONE_H
#define WU_ZONE_H

/* Makes tz (an IANA name, "Asia/Tokyo") the zone of the process's local
 * time.  Call before starting threads.  Returns 0 or -1 (errno set). */
int wu_zone_apply(const char *tz);

#endif
