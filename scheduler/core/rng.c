/*
 * rng.c -- xoshiro256** seeded by splitmix64: see rng.h.
 */
#include "rng.h"

/* One splitmix64 step: spreads a seed over 64 bits. */
static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += UINT64_C(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

void wu_rng_seed(struct wu_rng *r, uint64_t seed, uint64_t stream)
{
	uint64_t x = seed ^ (stream * UINT64_C(0xd1b54a32d192ed03));

	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix64(&x);
}

double wu_rng_unit(struct wu_rng *r)
{
	return (double)(wu_rng_next(r) >> 11) * 0x1.0p-53;
}
