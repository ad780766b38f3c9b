/*
 * bucket.c -- token bucket.
 *
 * Tokens are a double: rates like 63 a day are a fraction of a token per
 * second.  The bucket only ever answers "is one there", so rounding cannot
 * let a cap slip; caps are counted in whole numbers elsewhere.
 */
#include "bucket.h"

#include <math.h>

void wu_bucket_init(struct wu_bucket *b, double rate, double burst, wu_time_t now)
{
	b->rate = rate;
	b->burst = burst < 1 ? 1 : burst;
	b->tokens = b->burst;
	b->last = now;
}

/* Adds the tokens earned since last. */
static void refill(struct wu_bucket *b, wu_time_t now)
{
	if (now < b->last) {
		/* The clock went back: nothing is earned for it, and earning
		 * starts again from now rather than from a time still ahead
		 * (which would stall the bucket for as long as the step). */
		b->last = now;
		return;
	}
	if (now == b->last)
		return;
	if (b->rate > 0) {
		b->tokens += (double)(now - b->last) * b->rate / 1e6;
		if (b->tokens > b->burst)
			b->tokens = b->burst;
	}
	b->last = now;
}

void wu_bucket_set(struct wu_bucket *b, double rate, double burst, wu_time_t now)
{
	refill(b, now);
	b->rate = rate;
	b->burst = burst < 1 ? 1 : burst;
	if (b->tokens > b->burst)
		b->tokens = b->burst;
}

int wu_bucket_ready(struct wu_bucket *b, wu_time_t now)
{
	if (b->rate <= 0)
		return 1;
	refill(b, now);
	/* A hair of tolerance so that a token due at exactly now is there. */
	return b->tokens >= 1 - 1e-9;
}

void wu_bucket_take(struct wu_bucket *b)
{
	if (b->rate > 0)
		b->tokens -= 1;
}

void wu_bucket_give(struct wu_bucket *b)
{
	if (b->rate > 0 && (b->tokens += 1) > b->burst)
		b->tokens = b->burst;
}

wu_time_t wu_bucket_next(const struct wu_bucket *b, wu_time_t now)
{
	double need, t;

	if (b->rate <= 0)
		return now;
	need = 1 - b->tokens;
	if (need <= 1e-9)
		return now > b->last ? now : b->last;
	t = (double)b->last + ceil(need * 1e6 / b->rate);
	if (t >= (double)WU_TIME_NEVER)
		return WU_TIME_NEVER;
	return (wu_time_t)t > now ? (wu_time_t)t : now;
}
