/*
 * schedule.h -- warmup tables: how much the new route may carry on each
 * sending day, and what happens after the table runs out.
 *
 * A schedule file is CSV with a header row naming its columns: "day" and at
 * least one of "cap" (messages per day) and "hourly_cap" (messages per hour,
 * as SendGrid's automated warmup states its limits).  Lines starting with '#'
 * and blank lines are comments.  Days run 1..N with no gaps; caps are
 * positive whole numbers.
 */
#ifndef WU_SCHEDULE_H
#define WU_SCHEDULE_H

#include "wu.h"

enum wu_after {
	WU_AFTER_UNLIMITED, /* warmup over: the new route takes everything */
	WU_AFTER_HOLD,      /* keep the last day's caps */
	WU_AFTER_DOUBLE     /* double the last caps every day (SendGrid's advice) */
};

struct wu_schedule_day {
	int64_t cap;        /* messages per day, WU_UNLIMITED, or 0 when not given */
	int64_t hourly_cap; /* messages per hour, WU_UNLIMITED, or 0 when not given */
};

struct wu_schedule {
	int ndays;
	struct wu_schedule_day *days; /* days[0] is day 1 */
	enum wu_after after;
};

/* Parses a schedule from text (the caller reads the file).  On error returns
 * -1 with "FILE:LINE: message" in err; s is left empty. */
int wu_schedule_parse(struct wu_schedule *s, const char *text, size_t len, const char *filename,
                      char *err, size_t errlen);

/* Copies src into dst (dst owns its own table). Returns 0 or -1 (no memory). */
int wu_schedule_copy(struct wu_schedule *dst, const struct wu_schedule *src);

/* Frees the table; accepts a zeroed schedule. */
void wu_schedule_free(struct wu_schedule *s);

/* The caps of sending day step (1-based), with the after-policy applied past
 * the last row; step < 1 gives zero caps (the warmup has not started).
 * Doubling saturates at WU_UNLIMITED. */
struct wu_schedule_day wu_schedule_get(const struct wu_schedule *s, int step);

/* "unlimited" | "hold" | "double" */
int wu_after_parse(const char *s, enum wu_after *a, char *err, size_t errlen);
const char *wu_after_name(enum wu_after a);

#endif
