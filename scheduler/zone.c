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

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define DEFAULT_ZONEINFO "/usr/share/zoneinfo"

int wu_zone_check(const char *tz, char *why, size_t n)
{
	const char *dir = getenv("TZDIR");
	char path[PATH_MAX];
	struct stat st;

	if (!dir || !*dir)
		dir = DEFAULT_ZONEINFO;
	if (!*tz || tz[0] == '/' || strstr(tz, "..") || strlen(tz) >= 64 ||
	    strspn(tz, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/_+-") !=
	        strlen(tz)) {
		snprintf(why, n, "expected a time zone name such as Asia/Tokyo, got '%s'", tz);
		return -1;
	}
	snprintf(path, sizeof(path), "%s/%s", dir, tz);
	if (stat(path, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(why, n, "expected a time zone name such as Asia/Tokyo (a file in %s), got '%s'",
		         dir, tz);
		return -1;
	}
	return 0;
}

int wu_zone_apply(const char *tz)
{
	if (setenv("TZ", tz, 1) < 0)
		return -1;
	tzset();
	return 0;
}
