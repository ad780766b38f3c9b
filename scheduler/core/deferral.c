/*
 * deferral.c -- the built-in deferral rules and their matching.
 *
 * The texts are the ones the big providers use for "slow down": Gmail's
 * 4.7.28 "unusual rate", Yahoo's TSS04, Microsoft's S3150/S3140, and the
 * Japanese carriers' 421 "too many".  Plain "4.7.0" is left out on purpose:
 * Gmail uses it for TLS and authentication trouble too.
 */
#include "deferral.h"

#include <stdio.h>
#include <string.h>

static const struct {
	const char *name, *isp, *match;
	double cut;
	wu_time_t hold;
} builtin[] = {
    {"gmail-rate", "google", "4.7.28|unusual rate|rate limited|rate-limited", 0.5, WU_HOUR},
    {"yahoo-tss", "yahoo", "tss04|ts04", 0.25, 2 * WU_HOUR},
    {"microsoft-rate", "microsoft", "s3150|s3140|temporarily rate limited", 0.5, WU_HOUR},
    {"docomo-rate", "docomo", "421|too many", 0.5, WU_HOUR},
    {"au-rate", "au", "421|too many", 0.5, WU_HOUR},
    {"softbank-rate", "softbank", "421|too many", 0.5, WU_HOUR},
};

int wu_deferral_defaults(const struct wu_isp_table *isps, struct wu_defer_rule *out, int max)
{
	int n = 0;

	for (size_t i = 0; i < sizeof(builtin) / sizeof(builtin[0]) && n < max; i++) {
		struct wu_defer_rule *r = &out[n];
		int isp = wu_isp_find(isps, builtin[i].isp);

		if (isp < 0)
			continue;
		memset(r, 0, sizeof(*r));
		snprintf(r->name, sizeof(r->name), "%s", builtin[i].name);
		snprintf(r->match, sizeof(r->match), "%s", builtin[i].match);
		r->isp = isp;
		r->events = WU_DEFER_ON_DEFERRED | WU_DEFER_ON_BLOCKED;
		r->cut = builtin[i].cut;
		r->hold = builtin[i].hold;
		n++;
	}
	return n;
}

int wu_deferral_matches(const struct wu_defer_rule *r, const char *text)
{
	char alt[sizeof(r->match)];
	const char *p = r->match;

	while (*p) {
		size_t n = strcspn(p, "|");

		memcpy(alt, p, n);
		alt[n] = '\0';
		if (n && strstr(text, alt))
			return 1;
		p += n;
		if (*p == '|')
			p++;
	}
	return 0;
}

const struct wu_defer_rule *wu_deferral_find(const struct wu_defer_rule *rules, int n, int isp,
                                             unsigned on, const char *text)
{
	for (int i = 0; i < n; i++)
		if (rules[i].isp == isp && (rules[i].events & on) &&
		    (!text || wu_deferral_matches(&rules[i], text)))
			return &rules[i];
	return NULL;
}
