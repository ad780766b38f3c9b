/*
 * bucket.h -- a token bucket: tokens drip in at a rate up to a burst size,
 * each message takes one.  Pacing and the per-ISP throttles are both built
 * on it.
 */
#ifndef WU_BUCKET_H
#define WU_BUCKET_H

#include "wu.h"

struct wu_bucket {
	double rate;   /* tokens per second; 0 = unlimited (always ready) */
	double burst;  /* most tokens the bucket holds, >= 1 */
	double tokens; /* tokens at time last */
	wu_time_t last;
};

/* A full bucket at now. */
void wu_bucket_init(struct wu_bucket *b, double rate, double burst, wu_time_t now);

/* Changes rate and burst from now on; tokens already earned are kept
 * (clipped to the new burst). */
void wu_bucket_set(struct wu_bucket *b, double rate, double burst, wu_time_t now);

/* 1 when a token is there at now (tokens are added up to now first). */
int wu_bucket_ready(struct wu_bucket *b, wu_time_t now);

/* Takes one token; call only after wu_bucket_ready() said 1. */
void wu_bucket_take(struct wu_bucket *b);

/* Gives a token back (a send that was refused and did not happen). */
void wu_bucket_give(struct wu_bucket *b);

/* The earliest time a token is there: now when ready, later otherwise. */
wu_time_t wu_bucket_next(const struct wu_bucket *b, wu_time_t now);

#endif
