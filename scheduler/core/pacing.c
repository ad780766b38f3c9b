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

int wu_pace_parse(const char *s, enum wu_pace_mode *m, char *err, size_t errlen)
{
	if (strcmp(s, "arrivals") == 0)
		*m = WU_PACE_ARRIVALS;
	else if (strcmp(s, "even") == 0)
		*m = WU_PACE_EVEN;
	else {
		if (err && errlen)
			snprintf(err, errlen, "expected arrivals or even, got '%s'", s);
		return -1;
	}
	return 0;
}

/* The part of [a, b) inside [lo, hi). */
static wu_time_t overlap(wu_time_t a, wu_time_t b, wu_time_t lo, wu_time_t hi)
{
	wu_time_t x = a > lo ? a : lo, y = b < hi ? b : hi;

	return y > x ? y - x : 0;
}

/* Caps each hour's messages at its ceiling and hands what was cut to the
 * hours under theirs, in proportion, until nothing is cut or every hour is
 * at its ceiling. */
static void fill_under(double msgs[], const double ceil_[], int n)
{
	int full[WU_PROFILE_HOURS] = {0};

	for (int round = 0; round <= n; round++) {
		double cut = 0, room = 0;
		for (int h = 0; h < n; h++)
			if (!full[h] && msgs[h] > ceil_[h]) {
				cut += msgs[h] - ceil_[h];
				msgs[h] = ceil_[h];
				full[h] = 1;
			}
		for (int h = 0; h < n; h++)
			if (!full[h])
				room += msgs[h];
		if (cut <= 0 || room <= 0)
			return;
		for (int h = 0; h < n; h++)
			if (!full[h])
				msgs[h] += cut * msgs[h] / room;
	}
}

void wu_pace_plan(struct wu_pace *p, enum wu_pace_mode mode, int64_t cap, int64_t hourly_cap,
                  wu_time_t start, wu_time_t open, wu_time_t close, wu_time_t burst,
                  const int64_t arrivals[WU_PROFILE_HOURS], int64_t total)
{
	wu_time_t window = close - open, ov[WU_PROFILE_HOURS];
	double count[WU_PROFILE_HOURS] = {0}, msgs[WU_PROFILE_HOURS], ceil_[WU_PROFILE_HOURS];
	double n = 0;
	int first = -1;
	int64_t daily = wu_pacing_daily_cap(cap, hourly_cap, window);

	memset(p, 0, sizeof(*p));
	wu_pacing_params(cap, hourly_cap, window, burst, &p->rate, &p->burst);
	p->start = start;
	p->open = open;
	p->close = close;
	p->ahead = burst;
	if (mode != WU_PACE_ARRIVALS || total <= 0 || p->rate <= 0 || burst == WU_BURST_DAY ||
	    burst <= 0 || burst >= window)
		return;
	/* The arrivals the window can serve: those before it opens wait for it,
	 * those after it closes do not count, an hour cut by the close counts
	 * for the part inside. */
	for (int h = 0; h < WU_PROFILE_HOURS; h++) {
		wu_time_t a = start + h * WU_HOUR, b = a + WU_HOUR;
		ov[h] = overlap(a, b, open, close);
		if (ov[h] > 0 && first < 0)
			first = h;
	}
	if (first < 0)
		return;
	for (int h = 0; h < WU_PROFILE_HOURS; h++) {
		wu_time_t a = start + h * WU_HOUR;
		if (a + WU_HOUR <= open)
			count[first] += (double)arrivals[h];
		else if (ov[h] > 0)
			count[h] += (double)arrivals[h] * (double)ov[h] / (double)WU_HOUR;
	}
	for (int h = 0; h < WU_PROFILE_HOURS; h++)
		n += count[h];
	if (n <= 0)
		return;
	for (int h = 0; h < WU_PROFILE_HOURS; h++) {
		double prior = WU_PACE_PRIOR * (double)ov[h] / (double)window;
		msgs[h] = (double)daily * (count[h] + prior) / (n + WU_PACE_PRIOR);
		ceil_[h] = hourly_cap > 0 && hourly_cap != WU_UNLIMITED
		               ? (double)hourly_cap * (double)ov[h] / (double)WU_HOUR
		               : (double)daily;
	}
	fill_under(msgs, ceil_, WU_PROFILE_HOURS);
	for (int h = 0; h < WU_PROFILE_HOURS; h++)
		p->dens[h] = ov[h] > 0 ? msgs[h] * 1e6 / (double)ov[h] : 0;
	p->shaped = 1;
}

/* The hour of the day t is in. */
static int hour_of(const struct wu_pace *p, wu_time_t t)
{
	wu_time_t h = (t - p->start) / WU_HOUR;

	return h < 0 ? 0 : h >= WU_PROFILE_HOURS ? WU_PROFILE_HOURS - 1 : (int)h;
}

/* The hour t is in (*ht) and the hour its tokens are meant for, the
 * burst's length ahead, no later than the window's last instant (*hu);
 * returns 1 when that limit was hit. */
static int hours_at(const struct wu_pace *p, wu_time_t t, int *ht, int *hu)
{
	wu_time_t u = t + p->ahead;
	int clipped = u >= p->close;

	if (clipped)
		u = p->close - 1;
	*ht = hour_of(p, t);
	*hu = hour_of(p, u);
	return clipped;
}

void wu_pace_at(const struct wu_pace *p, wu_time_t t, double *rate, double *burst, wu_time_t *next)
{
	wu_time_t n1, n2 = WU_TIME_NEVER;
	int ht, hu, clipped;
	double d;

	*next = WU_TIME_NEVER;
	if (!p->shaped) {
		*rate = p->rate;
		*burst = p->burst;
		return;
	}
	clipped = hours_at(p, t, &ht, &hu);
	/* Never 0: a bucket of rate 0 would be one without a limit. */
	*rate = p->dens[hu] > 1e-12 ? p->dens[hu] : 1e-12;
	d = p->dens[ht] > p->dens[hu] ? p->dens[ht] : p->dens[hu];
	*burst = d * (double)p->ahead / 1e6;
	if (*burst < 1)
		*burst = 1;
	n1 = p->start + (wu_time_t)(ht + 1) * WU_HOUR;
	if (!clipped && hu < WU_PROFILE_HOURS - 1)
		n2 = p->start + (wu_time_t)(hu + 1) * WU_HOUR - p->ahead;
	if (ht >= WU_PROFILE_HOURS - 1)
		n1 = WU_TIME_NEVER;
	*next = n1 < n2 ? n1 : n2;
	if (*next >= p->close)
		*next = WU_TIME_NEVER;
	if (*next <= t)
		*next = t + 1;
}

double wu_pace_low_rate(const struct wu_pace *p, wu_time_t t)
{
	int ht, hu;
	double a;

	if (!p->shaped)
		return p->rate;
	hours_at(p, t, &ht, &hu);
	a = p->dens[ht] < p->dens[hu] ? p->dens[ht] : p->dens[hu];
	return a > 1e-12 ? a : 1e-12;
}

int wu_pace_shares(const struct wu_pace *p, double share[WU_PROFILE_HOURS])
{
	double total = 0;

	for (int h = 0; h < WU_PROFILE_HOURS; h++) {
		wu_time_t a = p->start + h * WU_HOUR;
		share[h] = p->shaped ? p->dens[h] *
		                           (double)overlap(a, a + WU_HOUR, p->open, p->close) / 1e6
		                     : 0;
		total += share[h];
	}
	for (int h = 0; h < WU_PROFILE_HOURS && total > 0; h++)
		share[h] /= total;
	return p->shaped;
}
