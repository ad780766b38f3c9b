/*
 * level.c -- when a watched figure fires an alert, and when it resolves.
 */
#include "level.h"

/* Moves l to firing or not; says what changed. */
static enum wu_level_move move(struct wu_level *l, int fire, int clear)
{
	if (fire && !l->firing) {
		l->firing = 1;
		return WU_LEVEL_FIRE;
	}
	if (clear && l->firing) {
		l->firing = 0;
		return WU_LEVEL_CLEAR;
	}
	return WU_LEVEL_SAME;
}

enum wu_level_move wu_level_backlog(struct wu_level *l, int64_t queued, int64_t threshold)
{
	if (threshold <= 0)
		return move(l, 0, 1);
	return move(l, queued > threshold, queued < threshold);
}

enum wu_level_move wu_level_disk(struct wu_level *l, double free_share, double min_free)
{
	if (min_free <= 0)
		return move(l, 0, 1);
	return move(l, free_share < min_free, free_share >= min_free + 0.01);
}

enum wu_level_move wu_level_wait(struct wu_level *l, wu_time_t age, wu_time_t limit)
{
	if (limit <= 0)
		return move(l, 0, 1);
	return move(l, age > limit, age <= limit);
}
