/*
 * pacing.h -- how today's cap is released over the sending window.
 *
 * The cap drips in evenly over the window with a burst of about one hour's
 * share (at least one message), the way SendGrid's automated warmup states
 * hourly limits; a schedule with hourly caps sets the drip directly.  A burst
 * of "day" releases the whole cap at the start of the window: a plain daily
 * cap.  The cap itself is counted separately and is never passed.
 */
#ifndef WU_PACING_H
#define WU_PACING_H

#include "wu.h"

/* burst setting: a duration of the window's share, or the whole day */
#define WU_BURST_DAY ((wu_time_t)-1)

/* Parses "1h", "30min", ... or "day". */
int wu_burst_parse(const char *s, wu_time_t *burst, char *err, size_t errlen);

/* The daily cap in force: the schedule's cap, or the hourly cap times the
 * window's hours when only that is given (rounded up). */
int64_t wu_pacing_daily_cap(int64_t cap, int64_t hourly_cap, wu_time_t window);

/* Bucket parameters that release cap over a window of the given length:
 * *rate in messages per second (0 = no pacing) and *burst in messages. */
void wu_pacing_params(int64_t cap, int64_t hourly_cap, wu_time_t window, wu_time_t burst,
                      double *rate, double *burst_msgs);

#endif
