/*
 * days.h -- the dates an engine has been on, so that a date's cap is
 * granted once however the wall clock moves.
 *
 * The day follows the wall clock.  When the clock steps back to a date the
 * engine has already been on, that date comes back as it was left (its cap,
 * what it used); a date before the latest one that the engine was never on
 * gets no cap at all (a clock behind, not a new day).  The engine keeps the
 * last WU_DAYS_KEPT dates; older ones are far enough behind that no clock
 * step of a running daemon reaches them, and a date before the latest that
 * is not kept is treated as never granted: no cap.
 */
#ifndef WU_DAYS_H
#define WU_DAYS_H

#include "engine.h"

#define WU_DAYS_KEPT 8

struct wu_days {
	struct wu_day_stats d[WU_DAYS_KEPT];
	int n;
	int latest; /* the latest date the engine has been on; 0 before any */
};

/* Keeps t (replacing a kept day of the same date, else the oldest), and
 * moves latest up to its date. */
void wu_days_keep(struct wu_days *h, const struct wu_day_stats *t);

/* The kept day of date, or NULL. */
const struct wu_day_stats *wu_days_find(const struct wu_days *h, int date);

#endif
