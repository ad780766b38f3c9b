/*
 * failrate.c -- a ring of the last sends' answers, and the rate of
 * permanent failures in it.
 */
#include "failrate.h"

#include <string.h>

void wu_failrate_conf_default(struct wu_failrate_conf *c)
{
	c->window = 100;
	c->rate = 0.10;
}

void wu_failrate_init(struct wu_failrate *f)
{
	memset(f, 0, sizeof(*f));
}

enum wu_level_move wu_failrate_hear(struct wu_failrate *f, const struct wu_failrate_conf *c,
                                    int64_t n, int failed, double *rate)
{
	int window = c->window;

	*rate = f->n ? (double)f->fails / f->n : 0;
	if (window <= 0 || c->rate <= 0) {
		f->level.firing = 0;
		return WU_LEVEL_SAME;
	}
	if (window > WU_FAILRATE_WINDOW_MAX)
		window = WU_FAILRATE_WINDOW_MAX;
	if (f->pos >= window || f->n > window) {
		/* The window shrank: start it again. */
		wu_failrate_init(f);
	}
	/* More answers than the window holds: only the last window count. */
	if (n > window)
		n = window;
	for (int64_t i = 0; i < n; i++) {
		unsigned char mask = (unsigned char)(1u << (f->pos % 8));
		unsigned char *b = &f->bit[f->pos / 8];

		if (f->n == window) {
			if (*b & mask)
				f->fails--;
		} else {
			f->n++;
		}
		if (failed) {
			*b |= mask;
			f->fails++;
		} else {
			*b &= (unsigned char)~mask;
		}
		f->pos = (f->pos + 1) % window;
	}
	*rate = f->n ? (double)f->fails / f->n : 0;
	if (f->level.firing) {
		if (*rate <= c->rate / 2) {
			f->level.firing = 0;
			return WU_LEVEL_CLEAR;
		}
		return WU_LEVEL_SAME;
	}
	if (f->n >= (window < WU_FAILRATE_MIN ? window : WU_FAILRATE_MIN) && *rate > c->rate) {
		f->level.firing = 1;
		return WU_LEVEL_FIRE;
	}
	return WU_LEVEL_SAME;
}
