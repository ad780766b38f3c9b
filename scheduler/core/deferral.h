/*
 * deferral.h -- deferral rules: what mailbox providers answer when a new IP
 * sends faster than they like, and how much to slow down when they do.
 *
 * A rule names an ISP group, texts to look for in the provider's answer
 * ("4.7.28", "TSS04"), which events it watches (deferrals, blocks), and a
 * cut: the ISP's rate on the new route is multiplied by `cut` and held there
 * for `hold`, then recovers step by step (wu_engine_cut, throttle.h).  The
 * daemon matches the texts of SendGrid's webhook events; the simulator,
 * which has no texts, applies the ISP's first rule to each deferral it draws.
 */
#ifndef WU_DEFERRAL_H
#define WU_DEFERRAL_H

#include "isp.h"

/* Most rules a configuration may have. */
#define WU_DEFER_RULES_MAX 32

/* What a rule watches (wu_defer_rule.events). */
#define WU_DEFER_ON_DEFERRED 1u /* deferred events, text in "response" */
#define WU_DEFER_ON_BLOCKED  2u /* bounce events of type blocked, text in "reason" */

struct wu_defer_rule {
	char name[48];
	int isp;         /* ISP group; -1 until set */
	char match[192]; /* '|'-separated alternatives, lower case */
	unsigned events; /* WU_DEFER_ON_* bits; default both */
	double cut;      /* the rate is multiplied by this: 0.5 halves it */
	wu_time_t hold;  /* how long the cut holds before recovery starts */
	int line;        /* of the config section, for messages; 0 = built in */
};

/* Fills out with the built-in rules for the groups that exist in isps
 * (google, yahoo, microsoft, docomo, au, softbank).  Returns how many. */
int wu_deferral_defaults(const struct wu_isp_table *isps, struct wu_defer_rule *out, int max);

/* 1 when one of the rule's texts is in text (which must be lower case). */
int wu_deferral_matches(const struct wu_defer_rule *r, const char *text);

/* The first rule for isp that watches `on` and matches text; with text NULL,
 * the first rule for isp that watches `on`.  NULL when none. */
const struct wu_defer_rule *wu_deferral_find(const struct wu_defer_rule *rules, int n, int isp,
                                             unsigned on, const char *text);

#endif
