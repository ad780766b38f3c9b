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

/* The next 64 random bits (inline: the simulator draws one per message). */
static inline uint64_t wu_rng_next(struct wu_rng *r)
{
	uint64_t *s = r->s, x = s[1] * 5;
	uint64_t out = ((x << 7) | (x >> 57)) * 9, t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = (s[3] << 45) | (s[3] >> 19);
	return out;
}

/* A uniform draw in [0, 1), 53 bits. */
double wu_rng_unit(struct wu_rng *r);

#endif
