/*
 * NAME
 *	reconf.c -- a running engine taking a new configuration.
 *
 * SYNOPSIS
 *	if (wu_reconf_engine(old, &new_conf.core, now, &fresh, err, len) == 0)
 *		swap old for fresh;
 *	wu_reconf_describe(&old_conf, &new_conf, line, sizeof(line));
 *
 * DESCRIPTION
 *	The state moves through the saved text, the one path a restart takes,
 *	so a reload can never keep something a restart would drop, nor read it
 *	differently; what the text does not hold (yesterday's figures, the
 *	deferral cuts shown in status) is carried beside it.
 *
 * DIAGNOSTICS
 *	Messages name the ISP group or the saved line that does not fit.
 */
#include "reconf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int wu_reconf_check_isps(const struct wu_isp_table *old, const struct wu_isp_table *nw, char *err,
                         size_t errlen)
{
	for (int i = 0; i < old->n; i++) {
		if (i < nw->n && strcmp(old->names[i], nw->names[i]) == 0)
			continue;
		if (wu_isp_find(nw, old->names[i]) >= 0)
			snprintf(
			    err, errlen,
			    "[isp %s]: the ISP groups cannot be reordered on reload (queued mail "
			    "and today's counters know them by number); new groups go after "
			    "the last one",
			    old->names[i]);
		else
			snprintf(err, errlen,
			         "[isp %s]: an ISP group cannot be removed on reload (queued mail "
			         "and today's counters know it by number)",
			         old->names[i]);
		return -1;
	}
	return 0;
}

int wu_reconf_engine(const struct wu_engine *old, const struct wu_core_conf *nc, wu_time_t now,
                     struct wu_engine **out, char *err, size_t errlen)
{
	struct wu_engine *e = NULL;
	char *saved;

	*out = NULL;
	if (wu_reconf_check_isps(&wu_engine_conf(old)->isps, &nc->isps, err, errlen) < 0)
		return -1;
	if (!(saved = wu_engine_save_alloc(old))) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (wu_engine_create(&e, nc, now, err, errlen) < 0 ||
	    wu_engine_load(e, saved, now, err, errlen) < 0) {
		free(saved);
		wu_engine_free(e);
		return -1;
	}
	free(saved);
	wu_engine_carry(e, old);
	*out = e;
	return 0;
}

/* Appends ", " and a formatted part to buf as snprintf would. */
static void part(char *buf, size_t len, size_t *off, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void part(char *buf, size_t len, size_t *off, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (*off) {
		n = snprintf(*off < len ? buf + *off : NULL, *off < len ? len - *off : 0, ", ");
		*off += (size_t)(n > 0 ? n : 0);
	}
	va_start(ap, fmt);
	n = vsnprintf(*off < len ? buf + *off : NULL, *off < len ? len - *off : 0, fmt, ap);
	va_end(ap);
	*off += (size_t)(n > 0 ? n : 0);
}

static int schedule_same(const struct wu_schedule *a, const struct wu_schedule *b)
{
	if (a->ndays != b->ndays || a->after != b->after)
		return 0;
	for (int i = 0; i < a->ndays; i++)
		if (a->days[i].cap != b->days[i].cap ||
		    a->days[i].hourly_cap != b->days[i].hourly_cap)
			return 0;
	return 1;
}

static int throttle_same(const struct wu_throttle_conf *a, const struct wu_throttle_conf *b)
{
	return a->rate == b->rate && a->burst == b->burst && a->share == b->share &&
	       a->share_count == b->share_count;
}

/* The domain and MX patterns of group isp, compared as sets in order. */
static int domains_same(const struct wu_isp_table *a, const struct wu_isp_table *b, int isp)
{
	int ia = 0, ib = 0;

	for (;;) {
		while (ia < a->ndomains && a->domains[ia].isp != isp)
			ia++;
		while (ib < b->ndomains && b->domains[ib].isp != isp)
			ib++;
		if (ia == a->ndomains || ib == b->ndomains)
			return ia == a->ndomains && ib == b->ndomains;
		if (a->domains[ia].mx != b->domains[ib].mx ||
		    strcmp(a->domains[ia].pattern, b->domains[ib].pattern) != 0)
			return 0;
		ia++, ib++;
	}
}

static int rule_same(const struct wu_defer_rule *a, const struct wu_defer_rule *b)
{
	return strcmp(a->name, b->name) == 0 && a->isp == b->isp &&
	       strcmp(a->match, b->match) == 0 && a->events == b->events && a->cut == b->cut &&
	       a->hold == b->hold;
}

static int gate_same(const struct wu_gate_conf *a, const struct wu_gate_conf *b)
{
	return a->bounce_warn == b->bounce_warn && a->bounce_halt == b->bounce_halt &&
	       a->complaint_warn == b->complaint_warn && a->complaint_halt == b->complaint_halt &&
	       a->min_sample == b->min_sample && a->pool_sample == b->pool_sample &&
	       a->complaint_min_sample == b->complaint_min_sample &&
	       a->complaint_pool_sample == b->complaint_pool_sample && a->z == b->z &&
	       a->resume == b->resume;
}

static int backoff_same(const struct wu_backoff_conf *a, const struct wu_backoff_conf *b)
{
	return a->cut == b->cut && a->floor == b->floor && a->step == b->step &&
	       a->suspend_after == b->suspend_after && a->suspend == b->suspend &&
	       a->retry_min == b->retry_min && a->retry_max == b->retry_max;
}

size_t wu_reconf_describe(const struct wu_core_conf *a, const struct wu_core_conf *b, char *buf,
                          size_t len)
{
	size_t off = 0;
	char names[256];
	size_t noff;

	if (len)
		buf[0] = '\0';
	if (!schedule_same(&a->schedule, &b->schedule))
		part(buf, len, &off, "schedule %d days (after %s) -> %d days (after %s)",
		     a->schedule.ndays, wu_after_name(a->schedule.after), b->schedule.ndays,
		     wu_after_name(b->schedule.after));
	if (a->calendar.start != b->calendar.start) {
		char da[16], db[16];
		wu_date_format(a->calendar.start, da, sizeof(da));
		wu_date_format(b->calendar.start, db, sizeof(db));
		part(buf, len, &off, "start %s -> %s", da, db);
	}
	if (a->calendar.open_min != b->calendar.open_min ||
	    a->calendar.close_min != b->calendar.close_min)
		part(buf, len, &off, "window %02d:%02d-%02d:%02d -> %02d:%02d-%02d:%02d",
		     a->calendar.open_min / 60, a->calendar.open_min % 60,
		     a->calendar.close_min / 60, a->calendar.close_min % 60,
		     b->calendar.open_min / 60, b->calendar.open_min % 60,
		     b->calendar.close_min / 60, b->calendar.close_min % 60);
	if (a->burst != b->burst)
		part(buf, len, &off, "burst");
	if (a->overflow != b->overflow)
		part(buf, len, &off, "overflow %s -> %s",
		     a->overflow == WU_OVERFLOW_OLD ? "old" : "defer",
		     b->overflow == WU_OVERFLOW_OLD ? "old" : "defer");
	if (a->advance != b->advance || a->min_fill != b->min_fill)
		part(buf, len, &off, "advance");
	if (a->engaged.first != b->engaged.first || a->engaged.days != b->engaged.days ||
	    a->engaged.age != b->engaged.age)
		part(buf, len, &off, "engaged_first");
	if (a->gap.days != b->gap.days || a->gap.fill != b->gap.fill || a->gap.back != b->gap.back)
		part(buf, len, &off, "gap");
	/* ISP groups: added ones, then the ones whose domains or throttles moved. */
	if (b->isps.n > a->isps.n) {
		names[0] = '\0';
		noff = 0;
		for (int i = a->isps.n; i < b->isps.n; i++)
			noff +=
			    (size_t)snprintf(names + (noff < sizeof(names) ? noff : sizeof(names)),
			                     noff < sizeof(names) ? sizeof(names) - noff : 0,
			                     "%s%s", noff ? " " : "", b->isps.names[i]);
		part(buf, len, &off, "isp groups added: %s", names);
	}
	names[0] = '\0';
	noff = 0;
	for (int i = 0; i < a->isps.n && i < b->isps.n; i++)
		if (!domains_same(&a->isps, &b->isps, i))
			noff +=
			    (size_t)snprintf(names + (noff < sizeof(names) ? noff : sizeof(names)),
			                     noff < sizeof(names) ? sizeof(names) - noff : 0,
			                     "%s%s", noff ? " " : "", a->isps.names[i]);
	if (noff)
		part(buf, len, &off, "domains of %s", names);
	names[0] = '\0';
	noff = 0;
	for (int i = 0; i < a->isps.n && i < b->isps.n; i++)
		if (!throttle_same(&a->throttle[WU_ROUTE_NEW][i], &b->throttle[WU_ROUTE_NEW][i]) ||
		    !throttle_same(&a->throttle[WU_ROUTE_OLD][i], &b->throttle[WU_ROUTE_OLD][i]))
			noff +=
			    (size_t)snprintf(names + (noff < sizeof(names) ? noff : sizeof(names)),
			                     noff < sizeof(names) ? sizeof(names) - noff : 0,
			                     "%s%s", noff ? " " : "", a->isps.names[i]);
	if (noff)
		part(buf, len, &off, "throttles of %s", names);
	if (!backoff_same(&a->backoff, &b->backoff))
		part(buf, len, &off, "backoff");
	if (!gate_same(&a->gate, &b->gate))
		part(buf, len, &off, "gate");
	int rules = a->nrules != b->nrules;
	for (int i = 0; !rules && i < a->nrules; i++)
		rules = !rule_same(&a->rules[i], &b->rules[i]);
	if (rules)
		part(buf, len, &off, "deferral rules %d -> %d", a->nrules, b->nrules);
	return off;
}
