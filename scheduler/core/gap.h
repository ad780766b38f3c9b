/*
 * gap.h -- a gap steps the ramp back.
 *
 * Mailbox providers forget a quiet IP.  A day on the schedule on which the
 * new route sent less than gap_fill (10%) of its cap is quiet; dates the
 * engine never saw (the daemon was down) are quiet too.  After `days`
 * quiet days in a row the schedule steps back `back` steps from the last
 * step that was not quiet (never below step 1), and the count starts
 * again, so a long outage keeps stepping back.  A fixed number of steps,
 * not "the step whose cap matches the recent volume": the volume of a gap
 * is near zero by definition, which would restart every migration at step
 * 1 after one long weekend; a fixed step back is what the operator can
 * predict from the config.  Off (days 0) by default.
 */
#ifndef WU_GAP_H
#define WU_GAP_H

#include "wu.h"

struct wu_gap_conf {
	int days;    /* quiet days in a row that step back; 0 = never */
	double fill; /* a day that used less than this share of its cap is quiet */
	int back;    /* steps back */
};

/* Where a gap stands; saved with the engine's state. */
struct wu_gap {
	int quiet;     /* quiet days in a row so far */
	int last_step; /* the step of the last day that was not quiet (0: none) */
};

/* Defaults: off, fill 10%, back 2. */
void wu_gap_conf_default(struct wu_gap_conf *c);

/* Closes a day on step that used used of cap, followed by missed dates the
 * engine never saw.  Returns the step to go back to (>= 1) when the gap is
 * reached, else 0. */
int wu_gap_close(struct wu_gap *g, const struct wu_gap_conf *c, int step, int64_t cap, int64_t used,
                 int missed);

#endif
