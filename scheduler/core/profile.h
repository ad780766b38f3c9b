/*
 * profile.h -- when the day's mail arrives, learned from the recent days.
 *
 * The engine counts every unit as it arrives, by the hour of its local day
 * (hours from the local midnight: a day of a DST change has 23 or 25).  The
 * counts of the last WU_PROFILE_DAYS dates are the profile the pacing
 * releases the next day's cap along (pacing.h): a team whose mail comes in
 * one blast at 09:00 finds its cap ready at 09:00, a team whose mail comes
 * evenly gets the even drip.  The counts are the engine's state and are
 * saved with it, so a restarted daemon keeps what it learned.
 */
#ifndef WU_PROFILE_H
#define WU_PROFILE_H

#include "wu.h"

#define WU_PROFILE_DAYS  7
#define WU_PROFILE_HOURS 25

struct wu_profile {
	int date[WU_PROFILE_DAYS]; /* the date of each slot; 0 = unused */
	int64_t n[WU_PROFILE_DAYS][WU_PROFILE_HOURS];
	int last; /* the slot added to last: the usual one, found at once */
};

/* Counts n arrivals in the given hour of date (hour clipped to 0..24).  A
 * date older than every kept one is ignored; a new date takes the slot of
 * the oldest. */
void wu_profile_add(struct wu_profile *p, int date, int hour, int64_t n);

/* Sums the kept days from date - WU_PROFILE_DAYS to date - 1 into out, by
 * hour, and returns the total. */
int64_t wu_profile_recent(const struct wu_profile *p, int date, int64_t out[WU_PROFILE_HOURS]);

#endif
