/*
 * config_defer.c -- [defer_rule NAME]: a rule by which the webhook's
 * deferral and block texts cut an ISP's rate.  Its keys, their defaults
 * (set when the section opens) and the checks once the file is read.
 */
#include "config_priv.h"

#include <ctype.h>
#include <string.h>

#include "core/parse.h"

static int k_defer_isp(struct load *ld, const struct key *k, const struct sect_ref *s,
                       const char *v, char *why, size_t n)
{
	int isp = wu_isp_find(&ld->c->core.isps, v);

	(void)k;
	if (isp < 0)
		return cf_say(why, n, "expected the name of an ISP group such as google, got '%s'",
		              v);
	ld->c->webhook.rules[s->index].isp = isp;
	return 0;
}

static int k_defer_match(struct load *ld, const struct key *k, const struct sect_ref *s,
                         const char *v, char *why, size_t n)
{
	struct wu_defer_rule *r = &ld->c->webhook.rules[s->index];
	char buf[sizeof(r->match)], *p, *alt, *save = NULL;
	size_t len = 0;

	(void)k;
	if (cf_has_control(v) || cf_copy(buf, sizeof(buf), v) < 0)
		goto bad;
	/* Alternatives are trimmed and lowered once, so matching is plain. */
	for (alt = strtok_r(buf, "|", &save); alt; alt = strtok_r(NULL, "|", &save)) {
		p = wu_trim(alt);
		if (!*p)
			goto bad;
		len += (size_t)snprintf(r->match + len, sizeof(r->match) - len, "%s%s",
		                        len ? "|" : "", p);
	}
	if (len == 0)
		goto bad;
	for (p = r->match; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return 0;
bad:
	r->match[0] = '\0';
	return cf_say(why, n,
	              "expected texts to look for, separated by |, such as 4.7.28 | unusual rate, "
	              "got '%s'",
	              v);
}

static int k_defer_events(struct load *ld, const struct key *k, const struct sect_ref *s,
                          const char *v, char *why, size_t n)
{
	char buf[128], *w, *save = NULL;
	unsigned ev = 0;

	(void)k;
	if (cf_copy(buf, sizeof(buf), v) < 0)
		goto bad;
	for (w = strtok_r(buf, ", \t", &save); w; w = strtok_r(NULL, ", \t", &save)) {
		if (strcmp(w, "deferred") == 0)
			ev |= WU_DEFER_ON_DEFERRED;
		else if (strcmp(w, "blocked") == 0)
			ev |= WU_DEFER_ON_BLOCKED;
		else
			goto bad;
	}
	if (!ev)
		goto bad;
	ld->c->webhook.rules[s->index].events = ev;
	return 0;
bad:
	return cf_say(why, n, "expected deferred, blocked or both (deferred, blocked), got '%s'",
	              v);
}

static int k_defer_cut(struct load *ld, const struct key *k, const struct sect_ref *s,
                       const char *v, char *why, size_t n)
{
	double f;

	(void)k;
	if (wu_parse_percent(v, &f, NULL, 0) < 0 || f < 0.01 || f >= 1)
		return cf_say(
		    why, n,
		    "expected the share of the rate to keep, from 1%% to below 100%%, such as "
		    "50%%, got '%s'",
		    v);
	ld->c->webhook.rules[s->index].cut = f;
	return 0;
}

static int k_defer_hold(struct load *ld, const struct key *k, const struct sect_ref *s,
                        const char *v, char *why, size_t n)
{
	(void)k;
	return wu_parse_duration(v, &ld->c->webhook.rules[s->index].hold, why, n);
}

/* A rule's keys; isp and match have no default (cf_defer_check). */
const struct key cf_defer_keys[] = {
    FN(S_DEFER, "isp", k_defer_isp),
    FN(S_DEFER, "match", k_defer_match),
    FND(S_DEFER, "events", k_defer_events, "deferred, blocked"),
    FND(S_DEFER, "cut", k_defer_cut, "50%"),
    FND(S_DEFER, "hold", k_defer_hold, "1h"),
};
const size_t cf_defer_nkeys = sizeof(cf_defer_keys) / sizeof(cf_defer_keys[0]);

int cf_defer_open(struct load *ld, int i, const char *name, char *why, size_t n)
{
	struct wu_defer_rule *r = &ld->c->webhook.rules[i];
	struct sect_ref s = {.kind = S_DEFER, .index = i};

	memset(r, 0, sizeof(*r));
	strcpy(r->name, name);
	r->isp = -1; /* none yet: the rule must name one */
	r->line = ld->line;
	return cf_defaults_apply(ld, cf_defer_keys, cf_defer_nkeys, &s, r, why, n);
}

void cf_defer_check(struct load *ld)
{
	struct wu_webhook_conf *w = &ld->c->webhook;

	for (int i = 0; i < w->nrules; i++) {
		struct wu_defer_rule *r = &w->rules[i];

		if (r->isp < 0) {
			cf_lfail(ld, r->line,
			         "[defer_rule %s] isp: required: the ISP group it watches",
			         r->name);
		}
		if (!r->match[0]) {
			cf_lfail(ld, r->line,
			         "[defer_rule %s] match: required: the texts to look for, such as "
			         "4.7.28",
			         r->name);
		}
	}
}
