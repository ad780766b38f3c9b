/*
 * throttle.c -- per route x ISP rate limits with additive-increase,
 * multiplicative-decrease backoff.
 *
 * The shape is Postfix qmgr's destination window: close fast on failure, open
 * slowly on success, suspend a destination that keeps failing.  Here the
 * window is a factor on the configured rate, or on the base the engine gives
 * a pair without one.
 */
#include "throttle.h"

#include <math.h>

void wu_throttle_conf_default(struct wu_throttle_conf *c)
{
	c->rate = 0;
	c->burst = 0;
	c->share = -1;
	c->share_count = -1;
}

void wu_backoff_conf_default(struct wu_backoff_conf *c)
{
	c->cut = 0.5;
	c->floor = 1.0 / 32;
	c->step = 1.0 / 50;
	c->suspend_after = 5;
	c->suspend = 5 * WU_MINUTE;
	c->retry_min = WU_MINUTE;
	c->retry_max = WU_HOUR;
}

/* The rate in force: the configured one scaled by the factor, or while
 * backing off without one, the base scaled by it; 0 = no limit. */
static double rate_of(const struct wu_throttle *t, const struct wu_throttle_conf *c)
{
	if (c->rate > 0)
		return c->rate * t->factor;
	if (t->factor < 1 && t->base > 0)
		return t->base * t->factor;
	return 0;
}

/* The burst: the configured one, or one second of the rate in force, at
 * least 1. */
static double burst_of(const struct wu_throttle *t, const struct wu_throttle_conf *c)
{
	double b = c->burst > 0 ? c->burst : c->rate > 0 ? c->rate : rate_of(t, c);
	return b < 1 ? 1 : b;
}

void wu_throttle_init(struct wu_throttle *t, const struct wu_throttle_conf *c, wu_time_t now)
{
	t->factor = 1;
	t->fails = 0;
	t->suspended_until = 0;
	t->hold_until = 0;
	t->base = 0;
	wu_bucket_init(&t->bucket, rate_of(t, c), burst_of(t, c), now);
}

void wu_throttle_apply(struct wu_throttle *t, const struct wu_throttle_conf *c, wu_time_t now)
{
	wu_bucket_set(&t->bucket, rate_of(t, c), burst_of(t, c), now);
}

/* Applies the factor to the bucket's rate. */
static void apply(struct wu_throttle *t, const struct wu_throttle_conf *c, wu_time_t now)
{
	wu_throttle_apply(t, c, now);
}

void wu_throttle_set_base(struct wu_throttle *t, const struct wu_throttle_conf *c, double base,
                          wu_time_t now)
{
	t->base = base;
	apply(t, c, now);
}

int wu_throttle_ready(struct wu_throttle *t, const struct wu_throttle_conf *c, wu_time_t now)
{
	(void)c;
	if (t->suspended_until > now)
		return 0;
	return wu_bucket_ready(&t->bucket, now);
}

void wu_throttle_take(struct wu_throttle *t)
{
	wu_bucket_take(&t->bucket);
}

void wu_throttle_give(struct wu_throttle *t)
{
	wu_bucket_give(&t->bucket);
}

wu_time_t wu_throttle_next(const struct wu_throttle *t, wu_time_t now)
{
	wu_time_t at = wu_bucket_next(&t->bucket, now);

	return t->suspended_until > at ? t->suspended_until : at;
}

void wu_throttle_tempfail(struct wu_throttle *t, const struct wu_throttle_conf *c,
                          const struct wu_backoff_conf *b, wu_time_t now)
{
	t->fails++;
	t->factor *= b->cut;
	if (t->factor < b->floor)
		t->factor = b->floor;
	apply(t, c, now);
	if (b->suspend_after > 0 && t->fails >= b->suspend_after) {
		t->suspended_until = now + b->suspend;
		t->fails = 0;
	}
}

void wu_throttle_success(struct wu_throttle *t, const struct wu_throttle_conf *c,
                         const struct wu_backoff_conf *b, wu_time_t now)
{
	t->fails = 0;
	if (t->factor >= 1 || now < t->hold_until)
		return;
	t->factor += b->step;
	if (t->factor > 1)
		t->factor = 1;
	apply(t, c, now);
}

void wu_throttle_cut(struct wu_throttle *t, const struct wu_throttle_conf *c,
                     const struct wu_backoff_conf *b, double factor, wu_time_t hold, wu_time_t now)
{
	if (factor < b->floor)
		factor = b->floor;
	if (factor < t->factor)
		t->factor = factor;
	if (now + hold > t->hold_until)
		t->hold_until = now + hold;
	apply(t, c, now);
}

int64_t wu_throttle_share_limit(const struct wu_throttle_conf *c, int64_t cap)
{
	int64_t n;

	if (c->share_count >= 0)
		return c->share_count;
	if (c->share < 0 || cap == WU_UNLIMITED)
		return WU_UNLIMITED;
	n = (int64_t)floor((double)cap * c->share + 1e-9);
	return n < 1 && c->share > 0 ? 1 : n;
}

wu_time_t wu_backoff_retry(const struct wu_backoff_conf *b, int attempts, double jitter)
{
	double d = (double)b->retry_min;

	for (int i = 1; i < attempts && d < (double)b->retry_max; i++)
		d *= 2;
	if (d > (double)b->retry_max)
		d = (double)b->retry_max;
	d *= 0.75 + 0.5 * jitter;
	return (wu_time_t)d;
}
