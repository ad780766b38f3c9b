/*
 * pacing.c -- today's cap released over the sending window.
 *
 * Rule 3 of the design: pacing, not bursts.  The cap drips in at cap/window
 * with a burst of one hour's share by default; an hourly cap from the
 * schedule sets the drip to that many per hour; "burst = day" hands out the
 * whole cap at once for teams that only want a daily ceiling.
 */
#include "pacing.h"

#include <stdio.h>
#include <string.h>

#include "parse.h"

int wu_burst_parse(const char *s, wu_time_t *burst, char *err, size_t errlen)
{
	if (strcmp(s, "day") == 0) {
		*burst = WU_BURST_DAY;
		return 0;
	}
	if (wu_parse_duration(s, burst, NULL, 0) < 0) {
		if (err && errlen)
			snprintf(
			    err, errlen,
			    "expected a share of the window such as 1h or 30min, or day, got '%s'",
			    s);
		return -1;
	}
	return 0;
}

int64_t wu_pacing_daily_cap(int64_t cap, int64_t hourly_cap, wu_time_t window)
{
	if (cap > 0)
		return cap;
	/* An hourly cap doubled day after day (after = double) would overflow
	 * the product: a day of more than 2^63 messages has no limit. */
	if (hourly_cap == WU_UNLIMITED ||
	    (window > 0 && hourly_cap > (WU_UNLIMITED - WU_HOUR) / window))
		return WU_UNLIMITED;
	if (hourly_cap > 0)
		return (hourly_cap * window + WU_HOUR - 1) / WU_HOUR;
	return 0;
}

void wu_pacing_params(int64_t cap, int64_t hourly_cap, wu_time_t window, wu_time_t burst,
                      double *rate, double *burst_msgs)
{
	int64_t daily = wu_pacing_daily_cap(cap, hourly_cap, window);

	if (daily == WU_UNLIMITED || daily <= 0 || window <= 0) {
		/* Nothing to pace: no cap (warmup over) or nothing allowed at all. */
		*rate = 0;
		*burst_msgs = 1;
		return;
	}
	if (hourly_cap > 0 && hourly_cap != WU_UNLIMITED)
		*rate = (double)hourly_cap / 3600.0;
	else
		*rate = (double)daily * 1e6 / (double)window;
	if (burst == WU_BURST_DAY)
		*burst_msgs = (double)daily;
	else
		*burst_msgs = *rate * (double)burst / 1e6;
	if (*burst_msgs < 1)
		*burst_msgs = 1;
}
