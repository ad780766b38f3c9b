/*
 * level.h -- a figure watched against a line: when an alert fires, and when
 * it is resolved.
 *
 * Each watch remembers whether it is firing, so an alert goes out once when
 * the figure crosses its line and once more (resolved) when it is back,
 * never at every look.  The daemon measures (the queue's depth, the store's
 * free disk space); the decision is here.
 */
#ifndef WU_LEVEL_H
#define WU_LEVEL_H

#include "wu.h"

enum wu_level_move {
	WU_LEVEL_SAME, /* nothing to say */
	WU_LEVEL_FIRE, /* the figure crossed its line */
	WU_LEVEL_CLEAR /* it is back on the good side */
};

struct wu_level {
	int firing;
};

/* The backlog: fires when queued is above threshold, clears when it is
 * below it again.  threshold <= 0 turns the watch off (and clears it). */
enum wu_level_move wu_level_backlog(struct wu_level *l, int64_t queued, int64_t threshold);

/* Free disk space, as a share in [0, 1] of the file system: fires when it
 * is below min_free, clears when it is at least min_free plus one point
 * (0.01), so a store at the line does not flap.  min_free <= 0 turns the
 * watch off (and clears it). */
enum wu_level_move wu_level_disk(struct wu_level *l, double free_share, double min_free);

/* A template unit's wait: fires when the oldest has waited longer than
 * limit, clears when none has.  limit <= 0 turns the watch off. */
enum wu_level_move wu_level_wait(struct wu_level *l, wu_time_t age, wu_time_t limit);

#endif
