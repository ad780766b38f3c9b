/*
 * engaged.h -- engaged recipients first on the new route while its cap is
 * scarce.
 *
 * A recipient is engaged when it opened or clicked within the engagement
 * age (90 days by default): the application says so (a last-engaged date,
 * or true), or the provider's open and click events taught the daemon.
 * Early in a warmup the new route's few messages should reach the people
 * most likely to open them.
 *
 * The rule is a reserve in the pacing bucket.  While engaged-first applies,
 * an engaged unit takes a token as soon as one is there; any other unit
 * only when the bucket holds the reserve (its burst, at most one hour's
 * share of the cap, and no more than the rest of the window releases) and
 * the rest of the cap exceeds it, that is, when the token would otherwise
 * be lost to a full bucket.  Engaged demand that keeps the bucket below the
 * reserve keeps every other unit off the new route (to the old one, or
 * waiting, as the overflow policy says); without engaged demand the others
 * still get the whole release rate, so the cap is not wasted.  The rule
 * needs no forecast and no order of arrival, so the daemon's dispatcher and
 * the simulator, which see units in different orders, decide alike.
 *
 * When it applies: on the days the policy names (the first N steps, or
 * until the cap exceeds the traffic: on a day whose cap is below the day
 * before's traffic, or after a day on which the cap or pacing turned mail
 * away, and on the first day), and only once an engaged unit has asked
 * today or the day before, so a team that marks no one sees no change.
 */
#ifndef WU_ENGAGED_H
#define WU_ENGAGED_H

#include "wu.h"

enum wu_engaged_first {
	WU_ENGAGED_FIRST_OFF,
	WU_ENGAGED_FIRST_UNTIL_CAP, /* until the cap exceeds the day's traffic */
	WU_ENGAGED_FIRST_DAYS       /* the first `days` steps of the schedule */
};

struct wu_engaged_conf {
	enum wu_engaged_first first;
	int days;      /* WU_ENGAGED_FIRST_DAYS: steps 1..days */
	wu_time_t age; /* an engagement this recent counts */
};

/* Defaults: until the cap exceeds the traffic, age 90 days. */
void wu_engaged_conf_default(struct wu_engaged_conf *c);

/* Parses engaged_first: "until_cap_exceeds_traffic", "off", or a number of
 * schedule days (1..100000).  Returns 0 or -1 with a message. */
int wu_engaged_first_parse(const char *s, struct wu_engaged_conf *c, char *err, size_t errlen);

/* The policy's words for status and docs. */
const char *wu_engaged_first_name(enum wu_engaged_first f);

/* 1 when an engagement at last (0 or less: none known) is recent at now. */
int wu_engaged_is(const struct wu_engaged_conf *c, wu_time_t last, wu_time_t now);

/* Whether the policy applies to a day on step with cap, given the day
 * before: known (0: none, or not the day just before), its traffic (units
 * routed on either route) and whether the cap or pacing turned any away. */
int wu_engaged_applies(const struct wu_engaged_conf *c, int step, int64_t cap, int known,
                       int64_t prev_traffic, int prev_turned);

/* The reserve a non-engaged unit must leave in a pacing bucket of this
 * burst and rate (tokens per second) with left seconds of the sending
 * window to go: the burst, at most one hour's share and at most what the
 * rest of the window releases (so what engaged units cannot use by the
 * close goes to the others), at least one token. */
double wu_engaged_reserve(double burst, double rate, double left);

#endif
