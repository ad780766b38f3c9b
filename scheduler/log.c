/*
 * log.c -- one line per message on stderr, with a level.
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static int threshold = WU_LOG_INFO;

void wu_log_set_level(int level)
{
	threshold = level;
}

int wu_log_level_of(int syslog_level)
{
	return syslog_level <= 3   ? WU_LOG_ERROR
	       : syslog_level == 4 ? WU_LOG_WARN
	       : syslog_level <= 6 ? WU_LOG_INFO
	                           : WU_LOG_DEBUG;
}

int wu_log_enabled(int level)
{
	return level <= threshold;
}

void wu_log(int level, const char *fmt, ...)
{
	static const char *names[] = {"error", "warn", "info", "debug"};
	static const int prio[] = {3, 4, 6, 7};
	char line[1024];
	va_list ap;

	if (level > threshold || level < 0)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (getenv("JOURNAL_STREAM")) {
		fprintf(stderr, "<%d>%s\n", prio[level], line);
	} else {
		char stamp[32];
		struct timespec ts;
		struct tm tm;
		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
		fprintf(stderr, "%s.%03ldZ %s: %s\n", stamp, ts.tv_nsec / 1000000, names[level],
		        line);
	}
}
