/*
 * rng.h -- the one pseudo-random generator: xoshiro256** (Blackman and
 * Vigna), seeded by splitmix64.
 *
 * Deterministic and seedable, so that `warmup simulate --seed N` and the
 * fake SendGrid's --seed repeat a run draw for draw; streams of one seed
 * are independent, so adding draws to one part of a program leaves the
 * others' sequences as they were.  The daemon seeds it from getrandom(2)
 * (the dispatcher's retry jitter).  Not for secrets: the next outputs
 * follow from the state, so message ids take their bytes from the kernel
 * instead (scheduler/msgid.c).
 */
#ifndef WU_RNG_H
#define WU_RNG_H

#include <stdint.h>

struct wu_rng {
	uint64_t s[4];
};

/* Seeds r with stream `stream` of `seed`; any seed, 0 included, is good. */
void wu_rng_seed(struct wu_rng *r, uint64_t seed, uint64_t stream);

/* The next 64 random bits. */
uint64_t wu_rng_next(struct wu_rng *r);

/* A uniform draw in [0, 1), 53 bits. */
double wu_rng_unit(struct wu_rng *r);

#endif
