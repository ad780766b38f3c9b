/*
 * simulate.c -- `warmup simulate`: rehearse a migration on a virtual clock.
 *
 * NAME
 *	warmup simulate - run a warmup schedule against simulated traffic
 *
 * SYNOPSIS
 *	warmup simulate --schedule FILE (--daily-volume N | --traffic FILE)
 *	                [--config FILE] [--mx-map FILE] [OPTIONS]
 *	warmup simulate --schedule FILE --from-store PATH [--config FILE] [OPTIONS]
 *
 * DESCRIPTION
 *	Every simulated message goes through wu_engine_route(), the router
 *	warmupd's dispatcher asks, and its outcome goes back through
 *	wu_engine_outcome(); the day's numbers are read back from the engine at
 *	each local midnight.  Nothing here decides where a message goes: this
 *	file only makes traffic (arrival times from a profile, an ISP drawn
 *	from a mix, bounces and complaints drawn from an outcome model) and
 *	keeps the per-ISP FIFO backlog the daemon keeps in its store.
 *
 *	A --mix entry may be a domain: each of its messages is grouped by
 *	wu_mxcache_group(), the daemon's classification, with the --mx-map
 *	file standing in for DNS (its answers never expire).
 *
 *	Units are alike except for their ISP, so a backlog is a count per ISP
 *	and a wake-up time per ISP: the time the engine said to ask again.  The
 *	event loop takes the earlier of the next arrival and the earliest
 *	wake-up; ties go to the wake-up, so older mail goes first.
 *
 *	Randomness comes from two xoshiro256** streams seeded by splitmix64
 *	from --seed: one draws ISPs, the other outcomes, so changing a bounce
 *	rate does not move which ISP a message belongs to.  Outcomes are
 *	"even" by default: each day's bounces and complaints come at exactly
 *	the asked rate from a seeded phase, so whether the gate trips depends
 *	on the rate and not on luck; --outcomes random draws each message.
 *	The same arguments give the same bytes on stdout and in the SVG file.
 *
 *	--from-store replays a daemon's store instead (sim_replay.c): each
 *	arrival at its recorded time for its recorded ISP, the outcome rates
 *	per day and ISP from the daemon's counters.
 *
 * DIAGNOSTICS
 *	Bad options, config, schedule and traffic files: one line on stderr
 *	naming the option, or the file, line and key; exit status 2.  Run-time
 *	failures (memory, writing the chart): exit status 1.  Unless --quiet,
 *	a last line on stderr gives the speed of the run.
 */
#include "simulate.h"
#include "sim_replay.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "scheduler/core/engine.h"
#include "scheduler/core/mxcache.h"
#include "scheduler/core/pacing.h"
#include "scheduler/core/parse.h"
#include "scheduler/core/rng.h"
#include "scheduler/config.h"
#include "scheduler/svg.h"
#include "scheduler/zone.h"

#include "sim_priv.h"

/* The business profile: share of a day's arrivals in each local hour, in
 * percent (72% between 09:00 and 18:00).  README.md shows it. */
static const int business_weights[24] = {1, 1, 1, 1, 1, 1, 1, 2, 4, 8, 8, 8,
                                         8, 8, 8, 8, 8, 8, 4, 3, 3, 2, 2, 1};

/* Prints "warmup simulate: message" on stderr; returns EXIT_BAD. */
int sim_bad(const char *fmt, ...)
{
	va_list ap;

	fputs(PROG ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return EXIT_BAD;
}

void wu_simulate_usage(FILE *f)
{
	fputs("usage: warmup simulate --schedule FILE (--daily-volume N | --traffic FILE |\n"
	      "                        --from-store PATH) [OPTIONS]\n"
	      "\n"
	      "Rehearses a migration on a virtual clock with the router warmupd uses.\n"
	      "\n"
	      "Traffic:\n"
	      "  --schedule FILE        warmup table, CSV day,cap (or day,hourly_cap)\n"
	      "  --config FILE          the daemon's INI file (ISP rules, throttles, gate, ...)\n"
	      "  --daily-volume N       N messages offered every day\n"
	      "  --traffic FILE         CSV day,offered: the volume of each day; with an hour\n"
	      "                         column (day,hour,offered), of each local hour\n"
	      "  --from-store PATH      replay a daemon's store (read-only, a running daemon's\n"
	      "                         too): each arrival at its time for its ISP, and the\n"
	      "                         bounce, complaint and deferral rates per day and ISP;\n"
	      "                         give the daemon's --config (its ISP groups)\n"
	      "  --days N               days to simulate (default: the schedule's length, the\n"
	      "                         traffic file's rows, or the store's days)\n"
	      "  --start YYYY-MM-DD     day 1 (default: the store's first day, the config's,\n"
	      "                         or " DEFAULT_DATE ")\n"
	      "  --timezone ZONE        IANA zone (default: the config's, or " DEFAULT_TZ ")\n"
	      "  --mix LIST             ISP shares, e.g. google=45%,yahoo=20%; the rest goes\n"
	      "                         to other (default: google 40%, yahoo 15%, microsoft\n"
	      "                         10%, apple 8%, docomo 8%, au 6%, softbank 5%, other 8%);\n"
	      "                         a DOMAIN=SHARE entry is grouped per message by name or\n"
	      "                         --mx-map\n"
	      "  --mx-map FILE          CSV domain,mx: the MX DNS would give each domain\n"
	      "  --profile even|business|blast@HH:MM\n"
	      "                         arrival times over the day (default even; blast: all\n"
	      "                         of a day's mail at one local time)\n"
	      "  --engaged SHARE        share of recipients that are engaged, e.g. 30%: they\n"
	      "                         go first on the new route while engaged_first\n"
	      "                         applies; adds the engaged and other columns\n"
	      "Policy (override the config):\n"
	      "  --overflow old|defer   what the new route cannot take now\n"
	      "  --burst 1h|30min|day   pacing burst\n"
	      "  --pace arrivals|even   release the cap along the recent days' arrivals\n"
	      "                         (default) or evenly over the window\n"
	      "  --after unlimited|hold|double  past the schedule's last day\n"
	      "  --advance calendar|gated\n"
	      "Outcomes:\n"
	      "  --bounce-rate R[,dayN=R...]     hard bounces, e.g. 2%,day6=8% "
	      "(default " DEFAULT_BOUNCE ")\n"
	      "  --complaint-rate R[,dayN=R...]  spam reports (default " DEFAULT_COMPLAINT ")\n"
	      "  --deferral-rate LIST   deferrals per ISP, e.g. google=5%,yahoo=2%: each one\n"
	      "                         goes through the ISP's deferral rule ([defer_rule]\n"
	      "                         or the built-in ones), which cuts its new-route rate\n"
	      "  --outcomes even|random  even: outcomes at exactly the rates, spread over\n"
	      "                         the day; random: a draw per message (default even)\n"
	      "  --seed N               random seed (default 1)\n"
	      "  --seeds N              run N seeds (--seed, --seed + 1, ...) and print per\n"
	      "                         day how many runs the gate halted and warned;\n"
	      "                         outcomes are random unless --outcomes says even\n"
	      "Output:\n"
	      "  --format table|csv|json  stdout format (default table)\n"
	      "  --svg FILE             write a chart; --svg-log / --svg-linear force the scale\n"
	      "                         (default: log when values span more than 100x)\n"
	      "  --quiet                no speed line on stderr\n"
	      "  --help                 this text\n",
	      f);
}

/*
 * Options.
 */

struct optdef {
	const char *name;
	size_t off; /* of the const char * in struct options; (size_t)-1 for flags */
};

#define OPT(n, f)                                                                                  \
	{                                                                                          \
		n, offsetof(struct options, f)                                                     \
	}
static const struct optdef optdefs[] = {
    OPT("schedule", schedule),
    OPT("config", config),
    OPT("traffic", traffic),
    OPT("daily-volume", daily),
    OPT("days", days),
    OPT("start", start),
    OPT("timezone", tz),
    OPT("mix", mix),
    OPT("profile", profile),
    OPT("overflow", overflow),
    OPT("burst", burst),
    OPT("pace", pace),
    OPT("after", after),
    OPT("advance", advance),
    OPT("bounce-rate", bounce),
    OPT("complaint-rate", complaint),
    OPT("deferral-rate", deferral),
    OPT("outcomes", outcomes),
    OPT("mx-map", mx_map),
    OPT("engaged", engaged),
    OPT("from-store", from_store),
    OPT("seed", seed),
    OPT("seeds", seeds),
    OPT("format", format),
    OPT("svg", svg),
};

/* Reads argv into o.  Returns 0, or EXIT_BAD after a message. */
static int parse_args(struct options *o, int argc, char **argv)
{
	memset(o, 0, sizeof(*o));
	o->svg_scale = WU_SVG_AUTO;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *eq, *val;
		size_t n;
		int found = 0;

		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			o->help = 1;
			continue;
		}
		if (strcmp(a, "--quiet") == 0 || strcmp(a, "-q") == 0) {
			o->quiet = 1;
			continue;
		}
		if (strcmp(a, "--svg-log") == 0 || strcmp(a, "--svg-linear") == 0) {
			o->svg_scale = strcmp(a, "--svg-log") == 0 ? WU_SVG_LOG : WU_SVG_LINEAR;
			continue;
		}
		if (strncmp(a, "--", 2) != 0)
			return sim_bad("unexpected argument '%s' (see warmup simulate --help)", a);
		eq = strchr(a, '=');
		n = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
		for (size_t k = 0; k < sizeof(optdefs) / sizeof(optdefs[0]); k++) {
			if (strlen(optdefs[k].name) != n || strncmp(optdefs[k].name, a + 2, n) != 0)
				continue;
			if (eq)
				val = eq + 1;
			else if (i + 1 < argc)
				val = argv[++i];
			else
				return sim_bad("--%s needs a value", optdefs[k].name);
			*(const char **)((char *)o + optdefs[k].off) = val;
			found = 1;
			break;
		}
		if (!found)
			return sim_bad("unknown option '%.*s' (see warmup simulate --help)",
			               (int)(n + 2), a);
	}
	return 0;
}

/* 1 when the next outcome of a rate thr (out of 2^53) is a hit.  Random:
 * an independent draw.  Even: an accumulator that hits exactly when the
 * running total passes a whole number, so a day with n sends has
 * floor(n * rate + phase) hits and every prefix of the day is within one hit
 * of the rate -- the gate sees the rate that was asked for, not noise. */
static inline int hit(struct sim *s, uint64_t thr, uint64_t *acc)
{
	if (s->random_outcomes)
		return (wu_rng_next(&s->rng_out) >> 11) < thr;
	*acc += thr;
	if (*acc < ONE53)
		return 0;
	*acc -= ONE53;
	return 1;
}

/* One report to the engine, as the daemon makes it from what it saw. */
static inline void report(struct sim *s, wu_time_t t, enum wu_route route, int isp,
                          enum wu_result res, enum wu_scope scope, int date)
{
	struct wu_report r = {.route = route,
	                      .isp = isp,
	                      .result = res,
	                      .scope = scope,
	                      .n = 1,
	                      .sent_date = date,
	                      .attempts = 1};

	wu_engine_report(s->e, t, &r);
}

/* Feeds a new-route send's outcomes as the daemon would see them: the
 * route's answer (from SendGrid's API on a v3 route, from the relay on an
 * SMTP route), then the webhook's events: possibly deferred first (the
 * engine's deferral rules answer it), then delivered or bounced, and for a
 * delivered one possibly a complaint. */
static inline void feed_new(struct sim *s, wu_time_t t, int isp, int date)
{
	report(s, t, WU_ROUTE_NEW, isp, WU_ACCEPTED, WU_SCOPE_ROUTE, date);
	if (s->d_thr[isp] && hit(s, s->d_thr[isp], &s->d_acc[isp]))
		report(s, t, WU_ROUTE_NEW, isp, WU_DEFERRED, WU_SCOPE_ISP, -1);
	if (hit(s, s->b_thr[isp], &s->b_acc)) {
		report(s, t, WU_ROUTE_NEW, isp, WU_BOUNCE, WU_SCOPE_ISP, date);
		return;
	}
	report(s, t, WU_ROUTE_NEW, isp, WU_DELIVERED, WU_SCOPE_ISP, date);
	if (s->c_thr[isp] && hit(s, s->c_thr[isp], &s->c_acc))
		report(s, t, WU_ROUTE_NEW, isp, WU_COMPLAINT, WU_SCOPE_ISP, date);
}

/* Routes isp's backlog at t until it is empty or the engine says wait. */
static void drain(struct sim *s, int isp, wu_time_t t)
{
	while (s->backlog[isp] > 0) {
		/* Engaged units first, as the daemon's dispatcher takes them. */
		int engaged = s->eng_backlog[isp] > 0;
		struct wu_decision d = wu_engine_route_for(s->e, t, isp, engaged);

		s->calls++;
		if (d.kind == WU_NEW) {
			s->backlog[isp]--;
			s->eng_backlog[isp] -= engaged;
			s->routed++;
			feed_new(s, t, isp, d.date);
		} else if (d.kind == WU_OLD) {
			s->backlog[isp]--;
			s->eng_backlog[isp] -= engaged;
			s->routed++;
			report(s, t, WU_ROUTE_OLD, isp, WU_ACCEPTED, WU_SCOPE_ROUTE, d.date);
		} else {
			/* A hint that does not move forward would spin forever. */
			s->wake[isp] = d.until > t ? d.until : t + 1;
			s->waiting |= UINT32_C(1) << isp;
			return;
		}
	}
	s->waiting &= ~(UINT32_C(1) << isp);
}

/* Drains every waiting ISP whose wake-up is at or before limit, earliest
 * first (the lower ISP id first on a tie). */
static void run_wakeups(struct sim *s, wu_time_t limit)
{
	while (s->waiting) {
		int best = -1;
		for (uint32_t m = s->waiting; m; m &= m - 1) {
			int i = __builtin_ctz(m);
			if (best < 0 || s->wake[i] < s->wake[best])
				best = i;
		}
		if (s->wake[best] > limit)
			return;
		drain(s, best, s->wake[best]);
	}
}

/* One arrival at t for isp joins the back of that ISP's queue (the
 * wake-ups due by t have run).  A queue that is already waiting keeps
 * waiting: a newer message never overtakes an older one of the same ISP. */
/* Hands the counted arrivals to the engine (its profile of the day). */
static void arrivals_flush(struct sim *s)
{
	if (s->arr_n)
		wu_engine_arrive(s->e, s->arr_at, s->arr_n);
	s->arr_n = 0;
	s->arr_end = 0;
}

/* Counts an arrival at t for the engine's profile; a new quarter hour
 * hands the last one's over first, before the engine hears of any time in
 * it. */
static inline void arrival_count(struct sim *s, wu_time_t t)
{
	if (t >= s->arr_end || t < s->arr_at) {
		arrivals_flush(s);
		s->arr_at = t;
		s->arr_end = t - t % (15 * WU_MINUTE) + 15 * WU_MINUTE;
	}
	s->arr_n++;
}

static inline void arrive_isp(struct sim *s, wu_time_t t, int isp)
{
	/* --engaged: exactly the share, spread evenly, drawing no random
	 * number (the ISPs stay what they were without it). */
	if (s->eng_thr && (s->eng_acc += s->eng_thr) >= ONE53) {
		s->eng_acc -= ONE53;
		s->eng_backlog[isp]++;
	}
	if (s->backlog[isp]++ == 0)
		drain(s, isp, t);
}

/* One arrival at t: a message for an ISP drawn from the mix. */
static inline void arrive(struct sim *s, wu_time_t t)
{
	uint64_t r = wu_rng_next(&s->rng_isp);
	int k = 0, isp;

	arrival_count(s, t);
	run_wakeups(s, t);
	while (r >= s->mix_thr[k] && k < s->nmix - 1)
		k++;
	isp = s->mix_isp[k];
	if (s->mix_dom[k]) { /* the daemon's classification, with the map as DNS */
		int bits;
		wu_time_t asked;
		isp = wu_mxcache_group(s->mx, s->isps, s->mix_dom[k], t, &bits, &asked);
	}
	arrive_isp(s, t, isp);
}

/* --from-store: one arrival the daemon recorded, at its time, for its ISP. */
static void arrive_recorded(void *arg, wu_time_t t, int isp)
{
	struct sim *s = arg;

	arrival_count(s, t);
	run_wakeups(s, t);
	arrive_isp(s, t, isp);
}

/* n arrivals evenly spaced over [from, to): the first at from. */
static void arrive_evenly(struct sim *s, wu_time_t from, wu_time_t to, int64_t n)
{
	wu_time_t len = to - from, q, t = from;
	int64_t r, acc = 0;

	if (n <= 0)
		return;
	q = len / n;
	r = len % n;
	for (int64_t i = 0; i < n; i++) {
		arrive(s, t);
		t += q;
		acc += r;
		if (acc >= n) {
			acc -= n;
			t++;
		}
	}
}

/* The local hours of a day: edge[h] to edge[h + 1]; an hour that does not
 * exist (the gap of a DST change) is empty. */
static void hour_edges(const struct wu_day *day, wu_time_t edge[25])
{
	edge[0] = day->start;
	edge[24] = day->end;
	for (int h = 1; h < 24; h++) {
		edge[h] = wu_calendar_local(day->date, h * 60);
		if (edge[h] < edge[h - 1])
			edge[h] = edge[h - 1];
		if (edge[h] > day->end)
			edge[h] = day->end;
	}
}

/* A traffic file's hours: each hour's arrivals even within it (an hour a
 * DST change skips gives its mail to the next that exists). */
static void arrive_hours(struct sim *s, const struct wu_day *day, const int64_t count[24])
{
	wu_time_t edge[25];
	int64_t carry = 0;

	hour_edges(day, edge);
	for (int h = 0; h < 24; h++) {
		carry += count[h];
		if (edge[h + 1] > edge[h]) {
			arrive_evenly(s, edge[h], edge[h + 1], carry);
			carry = 0;
		}
	}
}

/* A daily blast: all of a day's n arrivals at one local time (the first
 * instant after it, when a DST gap skips it). */
static void arrive_blast(struct sim *s, const struct wu_day *day, int64_t n)
{
	wu_time_t t = wu_calendar_local(day->date, s->blast_min);

	if (t < day->start)
		t = day->start;
	if (t >= day->end)
		t = day->end - 1;
	for (int64_t i = 0; i < n; i++)
		arrive(s, t);
}

/* A day's n arrivals by the business profile: apportioned to local hours by
 * largest remainder, even within each hour.  An hour that does not exist
 * (the gap of a DST change) gets none. */
static void arrive_business(struct sim *s, const struct wu_day *day, int64_t n)
{
	wu_time_t edge[25];
	int64_t count[24], rem[24], wsum = 0, given = 0;

	hour_edges(day, edge);
	for (int h = 0; h < 24; h++)
		wsum += edge[h + 1] > edge[h] ? business_weights[h] : 0;
	for (int h = 0; h < 24; h++) {
		int64_t w = edge[h + 1] > edge[h] ? business_weights[h] : 0;
		count[h] = n * w / wsum;
		rem[h] = n * w % wsum;
		given += count[h];
	}
	while (given < n) {
		int best = 0;
		for (int h = 1; h < 24; h++)
			if (rem[h] > rem[best])
				best = h;
		count[best]++;
		rem[best] = -1;
		given++;
	}
	for (int h = 0; h < 24; h++)
		arrive_evenly(s, edge[h], edge[h + 1], count[h]);
}

/* Copies the day the engine just closed into rec. */
static void record_day(struct sim *s, struct day *rec, int64_t offered)
{
	const struct wu_day_stats *y = wu_engine_yesterday(s->e);

	memset(rec, 0, sizeof(*rec));
	rec->date = y->date;
	rec->step = y->step;
	rec->held = y->held;
	rec->stepped_back = y->stepped_back;
	rec->engaged_new = y->engaged_new;
	rec->gate = y->gate;
	rec->cap = y->cap;
	rec->offered = offered;
	for (int i = 0; i < s->nisp; i++) {
		rec->isp_new[i] = y->sent[WU_ROUTE_NEW][i];
		rec->isp_old[i] = y->sent[WU_ROUTE_OLD][i];
		rec->new_route += rec->isp_new[i];
		rec->old_route += rec->isp_old[i];
		rec->delivered += y->result[WU_ROUTE_NEW][i][WU_DELIVERED];
		rec->bounces += y->result[WU_ROUTE_NEW][i][WU_BOUNCE];
		rec->complaints += y->result[WU_ROUTE_NEW][i][WU_COMPLAINT];
		rec->isp_deferred[i] = y->result[WU_ROUTE_NEW][i][WU_DEFERRED];
		rec->deferred += rec->isp_deferred[i];
		rec->backlog += s->backlog[i];
	}
}

/* Moves the engine's gate, pause and resume events into s->events. */
static int take_events(struct sim *s, int start_date)
{
	struct wu_event ev;

	while (wu_engine_poll_event(s->e, &ev)) {
		struct event *out;
		/* The event list keeps to the gate, pauses, resumes and step
		 * backs: a run's drawn deferrals would fill it with cuts and
		 * recoveries, which the day's deferral counts already show. */
		if (ev.kind != WU_EV_GATE_WARN && ev.kind != WU_EV_GATE_HALT &&
		    ev.kind != WU_EV_PAUSE && ev.kind != WU_EV_RESUME && ev.kind != WU_EV_STEP_BACK)
			continue;
		if (s->nevents == s->cap_events) {
			int cap = s->cap_events ? s->cap_events * 2 : 16;
			struct event *p = realloc(s->events, (size_t)cap * sizeof(*p));
			if (!p)
				return -1;
			s->events = p;
			s->cap_events = cap;
		}
		out = &s->events[s->nevents++];
		out->day = ev.date - start_date + 1;
		out->date = ev.date;
		out->kind = ev.kind;
		out->bounce_rate = ev.bounce_rate;
		out->complaint_rate = ev.complaint_rate;
		snprintf(out->text, sizeof(out->text), "%s", ev.text);
	}
	return 0;
}

/* Runs every day.  Returns 0 or -1 (no memory). */
static int run(struct sim *s, const struct wu_calendar *cal)
{
	wu_rng_seed(&s->rng_isp, s->seed, 1);
	wu_rng_seed(&s->rng_out, s->seed, 2);
	for (int d = 0; d < s->ndays; d++) {
		struct wu_day day;

		wu_calendar_date(cal, cal->start + d, &day);
		for (int i = 0; i < s->nisp; i++) {
			s->b_thr[i] = s->bounce_thr[d];
			s->c_thr[i] = s->complaint_thr[d];
		}
		if (s->rp)
			sim_replay_rates(s->rp, day.date, s->nisp, s->b_thr, s->c_thr, s->d_thr);
		/* Each day starts the even model at a seeded phase in [0, 1). */
		s->b_acc = wu_rng_next(&s->rng_out) >> 11;
		s->c_acc = wu_rng_next(&s->rng_out) >> 11;
		if (s->rp)
			sim_replay_arrivals(s->rp, day.date, arrive_recorded, s);
		else if (s->hourly)
			arrive_hours(s, &day, s->hourly[d]);
		else if (s->profile == PROF_BUSINESS)
			arrive_business(s, &day, s->offered[d]);
		else if (s->profile == PROF_BLAST)
			arrive_blast(s, &day, s->offered[d]);
		else
			arrive_evenly(s, day.start, day.end, s->offered[d]);
		run_wakeups(s, day.end - 1);
		arrivals_flush(s); /* the day's profile is in before the next day's plan */
		wu_engine_tick(s->e, day.end);
		record_day(s, &s->days[d], s->offered[d]);
		if (take_events(s, cal->start) < 0)
			return -1;
	}
	return 0;
}

/*
 * Output.
 */

/* Empties the loop for another run: no engine, no backlog, no events. */
static void sim_reset(struct sim *s)
{
	wu_engine_free(s->e);
	s->e = NULL;
	memset(s->backlog, 0, sizeof(s->backlog));
	memset(s->eng_backlog, 0, sizeof(s->eng_backlog));
	s->eng_acc = 0;
	memset(s->wake, 0, sizeof(s->wake));
	memset(s->d_acc, 0, sizeof(s->d_acc));
	s->waiting = 0;
	s->nevents = 0;
}

/* Frees what sim_setup_sim() allocated. */
static void sim_free(struct sim *s)
{
	wu_engine_free(s->e);
	wu_mxcache_free(s->mx);
	sim_replay_free(s->rp);
	free(s->offered);
	free(s->hourly);
	free(s->bounce);
	free(s->complaint);
	free(s->bounce_thr);
	free(s->complaint_thr);
	free(s->days);
	free(s->events);
}

/* Seconds on the monotonic clock, for the speed line only. */
static double seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int wu_simulate_main(int argc, char **argv)
{
	struct options o;
	struct wu_conf conf;
	struct sim s;
	enum format fmt = FMT_TABLE;
	struct wu_day day1;
	struct oc_day *oc = NULL;
	char err[WU_ERR_MAX];
	double t0, t1;
	int64_t runs = 1;
	uint64_t first;
	int rc;

	memset(&conf, 0, sizeof(conf));
	memset(&s, 0, sizeof(s));
	if ((rc = parse_args(&o, argc, argv)))
		return rc;
	if (o.help) {
		wu_simulate_usage(stdout);
		return 0;
	}
	if (o.format) {
		if (strcmp(o.format, "table") == 0)
			fmt = FMT_TABLE;
		else if (strcmp(o.format, "csv") == 0)
			fmt = FMT_CSV;
		else if (strcmp(o.format, "json") == 0)
			fmt = FMT_JSON;
		else
			return sim_bad("--format: expected table, csv or json, got '%s'", o.format);
	}
	if (o.seeds && o.svg)
		return sim_bad("--svg draws one run; give --seed, not --seeds");
	if (o.seeds && (rc = sim_parse_count_opt("seeds", o.seeds, 1, 1000000, &runs)))
		return rc;
	if ((rc = sim_setup_conf(&conf, &o)))
		goto out;
	if (o.from_store) {
		char rerr[WU_ERR_MAX + 4096];

		if ((rc = sim_replay_excludes(&o)))
			goto out;
		if (sim_replay_load(&s.rp, o.from_store, &conf.core.calendar, &conf.core.isps, rerr,
		                    sizeof(rerr)) < 0) {
			rc = sim_bad("--from-store: %s", rerr);
			goto out;
		}
		if (!o.start) /* day 1 is the store's first day */
			conf.core.calendar.start = sim_replay_first_date(s.rp);
	}
	if ((rc = sim_setup_sim(&s, &o, &conf)))
		goto out;
	if (o.seeds && !(oc = calloc((size_t)s.ndays, sizeof(*oc)))) {
		rc = sim_bad("out of memory"), rc = 1;
		goto out;
	}

	wu_calendar_date(&conf.core.calendar, conf.core.calendar.start, &day1);
	first = s.seed;
	t0 = seconds();
	for (int64_t k = 0; k < runs; k++, s.seed++) {
		sim_reset(&s);
		if (wu_engine_create(&s.e, &conf.core, day1.start, err, sizeof(err)) < 0) {
			rc = sim_bad("%s", err);
			goto out;
		}
		if (run(&s, &conf.core.calendar) < 0) {
			rc = sim_bad("out of memory"), rc = 1;
			goto out;
		}
		if (oc)
			sim_oc_tally(&s, oc);
	}
	t1 = seconds();

	if (oc) {
		if (sim_output_oc(&s, oc, runs, first, fmt) < 0) {
			rc = sim_bad("out of memory"), rc = 1;
			goto out;
		}
	} else if (fmt == FMT_CSV)
		sim_output_csv(&s);
	else if (fmt == FMT_JSON && sim_output_json(&s) < 0) {
		rc = sim_bad("out of memory"), rc = 1;
		goto out;
	} else if (fmt == FMT_TABLE)
		sim_output_table(&s);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		rc = sim_bad("writing the output failed"), rc = 1;
		goto out;
	}
	if (o.svg && (rc = sim_output_svg(&s, o.svg, o.schedule ? o.schedule : conf.schedule_path,
	                                  &conf.core.calendar, (enum wu_svg_scale)o.svg_scale)))
		goto out;
	if (!o.quiet)
		fprintf(stderr,
		        "simulated %d days%s, %" PRId64
		        " messages routed in %.3f s (%.0f msgs/s)\n",
		        s.ndays, runs > 1 ? " per seed" : "", s.routed, t1 - t0,
		        t1 > t0 ? (double)s.routed / (t1 - t0) : 0.0);
	rc = 0;
out:
	free(oc);
	sim_free(&s);
	wu_conf_free(&conf);
	return rc;
}
