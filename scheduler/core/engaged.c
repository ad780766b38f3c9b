/*
 * engaged.c -- engaged recipients first: the policy's days and the reserve.
 */
#include "engaged.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"

void wu_engaged_conf_default(struct wu_engaged_conf *c)
{
	c->first = WU_ENGAGED_FIRST_UNTIL_CAP;
	c->days = 0;
	c->age = 90 * WU_DAY;
}

int wu_engaged_first_parse(const char *s, struct wu_engaged_conf *c, char *err, size_t errlen)
{
	char *end;
	long v;

	if (strcmp(s, "until_cap_exceeds_traffic") == 0) {
		c->first = WU_ENGAGED_FIRST_UNTIL_CAP;
		return 0;
	}
	if (strcmp(s, "off") == 0 || strcmp(s, "0") == 0) {
		c->first = WU_ENGAGED_FIRST_OFF;
		return 0;
	}
	errno = 0;
	v = strtol(s, &end, 10);
	if (end != s && *end == '\0' && !errno && v >= 1 && v <= 100000) {
		c->first = WU_ENGAGED_FIRST_DAYS;
		c->days = (int)v;
		return 0;
	}
	if (err && errlen)
		snprintf(err, errlen,
		         "expected until_cap_exceeds_traffic, off or a number of schedule days "
		         "(1..100000), got '%s'",
		         s);
	return -1;
}

const char *wu_engaged_first_name(enum wu_engaged_first f)
{
	return f == WU_ENGAGED_FIRST_OFF         ? "off"
	       : f == WU_ENGAGED_FIRST_UNTIL_CAP ? "until_cap_exceeds_traffic"
	                                         : "days";
}

int wu_engaged_is(const struct wu_engaged_conf *c, wu_time_t last, wu_time_t now)
{
	return last > 0 && (last >= now || now - last <= c->age);
}

int wu_engaged_applies(const struct wu_engaged_conf *c, int step, int64_t cap, int known,
                       int64_t prev_traffic, int prev_turned)
{
	if (step < 1 || cap == WU_UNLIMITED)
		return 0;
	switch (c->first) {
	case WU_ENGAGED_FIRST_DAYS:
		return step <= c->days;
	case WU_ENGAGED_FIRST_UNTIL_CAP:
		/* Without a day before to judge by, the cap is taken to be
		 * scarce: the first days of a warmup are when it is. */
		return !known || prev_turned || cap < prev_traffic;
	default:
		return 0;
	}
}

double wu_engaged_reserve(double burst, double rate, double left)
{
	double hour = rate * (double)(WU_HOUR / WU_USEC), r = burst;

	if (rate > 0 && hour < r)
		r = hour;
	if (rate > 0 && left >= 0 && rate * left < r)
		r = rate * left;
	return r < 1 ? 1 : r;
}
