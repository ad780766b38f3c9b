/*
 * gap.c -- quiet days in a row step the schedule back.
 */
#include "gap.h"

void wu_gap_conf_default(struct wu_gap_conf *c)
{
	c->days = 0;
	c->fill = 0.1;
	c->back = 2;
}

int wu_gap_close(struct wu_gap *g, const struct wu_gap_conf *c, int step, int64_t cap, int64_t used,
                 int missed)
{
	int target;

	if (c->days < 1 || step < 1 || cap <= 0 || cap == WU_UNLIMITED) {
		/* Before the start, after the warmup or on a closed date there is
		 * no ramp to forget. */
		g->quiet = 0;
		return 0;
	}
	if ((double)used >= c->fill * (double)cap) {
		g->quiet = 0;
		g->last_step = step;
	} else {
		g->quiet++;
	}
	if (missed > 0)
		g->quiet += missed > c->days ? c->days : missed;
	if (g->quiet < c->days)
		return 0;
	target = (g->last_step ? g->last_step : step) - c->back;
	if (target < 1)
		target = 1;
	g->quiet = 0;
	g->last_step = target;
	return target;
}
