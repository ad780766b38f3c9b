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

#include "profile.h"
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

/* How the cap is released over the window: along the arrivals of the recent
 * days (the default), or evenly. */
enum wu_pace_mode { WU_PACE_ARRIVALS, WU_PACE_EVEN };

/* Parses "arrivals" or "even". */
int wu_pace_parse(const char *s, enum wu_pace_mode *m, char *err, size_t errlen);

/* An even spread of this many arrivals is mixed into a learned profile, so
 * that an hour the recent days had no mail in still gets a little of the
 * cap, and a profile learned from a handful of messages stays close to even. */
#define WU_PACE_PRIOR 6.0

/*
 * Today's release.  Even: tokens drip at rate into a bucket of burst, all
 * day.  Along the arrivals: the share of the cap the profile expects in each
 * hour of the day is released in the hour before it (the burst's length
 * ahead), and the bucket holds at most the larger of the current hour's and
 * the coming one's expected share over the burst's length: what was meant
 * for an hour that brought less mail lapses an hour later, as the even drip's
 * tokens do.  With an even profile the two are the same; with a blast at
 * 09:00 the cap is in the bucket at 09:00.  An hourly cap of the schedule is
 * a ceiling on every hour's share (what it cuts goes to the other hours).
 */
struct wu_pace {
	int shaped;                    /* 0: rate and burst all day */
	double rate, burst;            /* the even drip (also the day's mean rate) */
	wu_time_t start, open, close;  /* the local day's start and the window */
	wu_time_t ahead;               /* the burst's length */
	double dens[WU_PROFILE_HOURS]; /* shaped: share of the cap per second, by hour */
};

/* Plans a day: cap and hourly_cap of the schedule, the day's start and
 * window, the burst setting, and the recent days' arrivals by hour of the
 * day (wu_profile_recent; total 0 = nothing learned, even). */
void wu_pace_plan(struct wu_pace *p, enum wu_pace_mode mode, int64_t cap, int64_t hourly_cap,
                  wu_time_t start, wu_time_t open, wu_time_t close, wu_time_t burst,
                  const int64_t arrivals[WU_PROFILE_HOURS], int64_t total);

/* The rate (tokens per second, > 0 when paced) and burst in force at t, and
 * when they change next (WU_TIME_NEVER: not before the window closes). */
void wu_pace_at(const struct wu_pace *p, wu_time_t t, double *rate, double *burst, wu_time_t *next);

/* The lower of the rates of the hour t is in and of the hour its tokens are
 * meant for (the even rate when not shaped): what the engaged reserve is
 * sized by, so that a release that grows hour by hour does not keep the
 * bucket short of it. */
double wu_pace_low_rate(const struct wu_pace *p, wu_time_t t);

/* The share of the cap released in each hour of the day (all 0 when not
 * shaped).  Returns 1 when shaped. */
int wu_pace_shares(const struct wu_pace *p, double share[WU_PROFILE_HOURS]);

#endif
