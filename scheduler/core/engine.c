/*
 * engine.c -- the router: schedule, calendar, pacing, throttles and gate
 * combined into one answer per message.
 *
 * The engine keeps one local day at a time.  Crossing midnight closes the
 * day, decides the next step of the schedule (calendar or gated advance, less
 * held days) and sets up the new day's cap, pacing bucket and ISP shares.
 * route() checks everything that could keep a message off the new route
 * before it takes a single token, so a refusal never costs capacity.
 */
#include "engine.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "days.h"
#include "ledger.h"
#include "pacing.h"

#define EVENTS_MAX 64
#define WHO_MAX    64

struct wu_engine {
	struct wu_core_conf conf;
	struct wu_day day;
	struct wu_day_stats today, yesterday;
	struct wu_days days; /* the dates it has been on (days.h) */
	struct wu_cut cut[WU_ISP_MAX]; /* deferral cuts on the new route, for status */
	int cut_on[WU_ISP_MAX];        /* a cut raised WU_EV_ISP_CUT, not yet recovered */
	struct wu_failrate permfail[WU_ROUTE_COUNT];
	int held;   /* days the schedule did not advance */
	int halted; /* the gate stopped the new route */
	int paused[WU_ROUTE_COUNT];
	char paused_by[WU_ROUTE_COUNT][WHO_MAX];
	struct wu_gate_counts gate;    /* new-route outcomes since the day began or a resume */
	struct wu_gate_past gate_past; /* the days before, which the gate pools with today */
	/* the other nodes' own counts, of peer_date (wu_engine_gate_peers);
	 * the gate judges them with this node's */
	struct wu_gate_counts peer;
	struct wu_gate_past peer_past;
	int peer_date;
	enum wu_gate_state gate_state; /* verdict on gate */
	struct wu_bucket pacing;
	int64_t share[WU_ISP_MAX]; /* today's new-route limit per ISP */
	struct wu_throttle th[WU_ROUTE_COUNT][WU_ISP_MAX];
	struct wu_gap gap; /* quiet days in a row (gap.h) */
	int64_t prev_asks; /* engaged asks of the day before (engaged.h) */
	struct wu_event events[EVENTS_MAX];
	int ev_head, ev_count;
	struct wu_ledger *ledger; /* where new-route units come from (ledger.h) */
};

const char *wu_route_name(enum wu_route r)
{
	return r == WU_ROUTE_NEW ? "new" : r == WU_ROUTE_OLD ? "old" : "?";
}

int wu_core_conf_init(struct wu_core_conf *c)
{
	memset(c, 0, sizeof(*c));
	c->schedule.after = WU_AFTER_UNLIMITED;
	strcpy(c->calendar.tz, "Asia/Tokyo");
	c->calendar.open_min = 0;
	c->calendar.close_min = 1440;
	c->burst = WU_HOUR;
	c->overflow = WU_OVERFLOW_OLD;
	c->advance = WU_ADVANCE_CALENDAR;
	c->min_fill = 0.8;
	for (int r = 0; r < WU_ROUTE_COUNT; r++)
		for (int i = 0; i < WU_ISP_MAX; i++)
			wu_throttle_conf_default(&c->throttle[r][i]);
	wu_backoff_conf_default(&c->backoff);
	wu_gate_conf_default(&c->gate);
	wu_engaged_conf_default(&c->engaged);
	wu_gap_conf_default(&c->gap);
	wu_failrate_conf_default(&c->permfail);
	return wu_isp_table_init(&c->isps);
}

void wu_core_conf_free(struct wu_core_conf *c)
{
	wu_schedule_free(&c->schedule);
	wu_isp_table_free(&c->isps);
}

/* Queues an event, dropping the oldest when the queue is full.  Returns it,
 * for the fields only some kinds fill. */
static struct wu_event *emit(struct wu_engine *e, enum wu_event_kind kind, wu_time_t at,
                             enum wu_route route, const char *fmt, ...)
{
	struct wu_event *ev;
	va_list ap;

	if (e->ev_count == EVENTS_MAX) {
		e->ev_head = (e->ev_head + 1) % EVENTS_MAX;
		e->ev_count--;
	}
	ev = &e->events[(e->ev_head + e->ev_count++) % EVENTS_MAX];
	memset(ev, 0, sizeof(*ev));
	ev->kind = kind;
	ev->at = at;
	ev->route = route;
	ev->isp = -1;
	ev->date = e->today.date;
	ev->step = e->today.step;
	ev->cap = e->today.cap;
	ev->bounce_rate =
	    e->gate.delivered + e->gate.bounces
	        ? (double)e->gate.bounces / (double)(e->gate.delivered + e->gate.bounces)
	        : 0;
	ev->complaint_rate =
	    e->gate.delivered ? (double)e->gate.complaints / (double)e->gate.delivered : 0;
	va_start(ap, fmt);
	vsnprintf(ev->text, sizeof(ev->text), fmt, ap);
	va_end(ap);
	return ev;
}

/* Whether engaged-first applies to today, judged by yesterday when it is
 * the day just before. */
static void engaged_setup(struct wu_engine *e)
{
	const struct wu_day_stats *y = &e->yesterday;
	int known = y->date == e->today.date - 1 && y->step >= 1 && !y->closed;
	int64_t traffic = 0;

	for (int i = 0; i < e->conf.isps.n; i++)
		traffic += y->sent[WU_ROUTE_NEW][i] + y->sent[WU_ROUTE_OLD][i];
	e->today.engaged_first = wu_engaged_applies(&e->conf.engaged, e->today.step, e->today.cap,
	                                            known, traffic, y->turned > 0);
	e->prev_asks = known ? y->engaged_asks : 0;
}

/* Sets up caps, pacing and shares for e->day at the given step. */
static void setup_day(struct wu_engine *e, int step, wu_time_t now)
{
	struct wu_schedule_day sd = wu_schedule_get(&e->conf.schedule, step);
	wu_time_t window = e->day.close - e->day.open;
	double rate, burst;

	memset(&e->today, 0, sizeof(e->today));
	e->today.date = e->day.date;
	e->today.step = step;
	e->today.cap = step >= 1 ? wu_pacing_daily_cap(sd.cap, sd.hourly_cap, window) : 0;
	e->today.hourly_cap = sd.hourly_cap;
	wu_pacing_params(e->today.cap, sd.hourly_cap, window, e->conf.burst, &rate, &burst);
	wu_bucket_init(&e->pacing, rate, burst, e->day.open);
	/* An ISP without a rate of its own backs off from today's pacing rate. */
	for (int i = 0; i < e->conf.isps.n; i++)
		wu_throttle_set_base(&e->th[WU_ROUTE_NEW][i], &e->conf.throttle[WU_ROUTE_NEW][i],
		                     rate, now);
	for (int i = 0; i < e->conf.isps.n; i++)
		e->share[i] =
		    wu_throttle_share_limit(&e->conf.throttle[WU_ROUTE_NEW][i], e->today.cap);
	memset(&e->gate, 0, sizeof(e->gate));
	e->gate_state = WU_GATE_OK;
	engaged_setup(e);
}

/* The step the schedule is on for day nd, coming from the current day. */
static int next_step(struct wu_engine *e, const struct wu_day *nd)
{
	const struct wu_day_stats *t = &e->today;
	int days = nd->date - t->date, step;

	if (nd->index < 1)
		return 0;
	/* A halted day holds the schedule; a manual halt holds every day it lasts. */
	if (e->halted)
		e->held += e->conf.gate.resume == WU_RESUME_MANUAL ? days : 1;
	if (e->conf.advance == WU_ADVANCE_CALENDAR)
		return nd->index - e->held > 0 ? nd->index - e->held : 1;
	if (t->step < 1)
		return 1;
	step = t->step;
	if (!e->halted && t->cap != WU_UNLIMITED &&
	    (double)t->used >= e->conf.min_fill * (double)t->cap)
		step++;
	else if (!e->halted && t->cap == WU_UNLIMITED)
		step++;
	else if (!e->halted)
		e->held++;
	return step;
}

/* The clock went to a date the engine has been on, or to an earlier one it
 * never was on: the first comes back as it was left, the second gets no
 * cap.  Either way no cap is granted a second time (days.h). */
static void revisit(struct wu_engine *e, const struct wu_day *nd, wu_time_t now)
{
	const struct wu_day_stats *past = wu_days_find(&e->days, nd->date);
	struct wu_day_stats kept;

	e->day = *nd;
	if (past) {
		kept = *past;
		setup_day(e, kept.step, now);
		memcpy(e->today.sent, kept.sent, sizeof(kept.sent));
		memcpy(e->today.result, kept.result, sizeof(kept.result));
		e->today.used = kept.used;
		e->today.held = kept.held;
		e->today.gate = kept.gate;
		e->today.engaged_first = kept.engaged_first;
		e->today.engaged_new = kept.engaged_new;
		e->today.engaged_asks = kept.engaged_asks;
		e->today.turned = kept.turned;
		e->today.stepped_back = kept.stepped_back;
		if (kept.closed) {
			e->today.cap = 0;
			e->today.closed = 1;
		}
		emit(e, WU_EV_DAY, now, WU_ROUTE_NEW,
		     "the clock is on this date again: day %d of the schedule as it was left, cap "
		     "%" PRId64 ", %" PRId64 " used",
		     e->today.step, e->today.cap, e->today.used);
		return;
	}
	setup_day(e, e->today.step, now);
	e->today.cap = 0;
	e->today.closed = 1;
	emit(e, WU_EV_DAY, now, WU_ROUTE_NEW,
	     "the clock is behind the latest date the engine was on: no cap until it gets "
	     "there");
}

int wu_engine_tick(struct wu_engine *e, wu_time_t now)
{
	struct wu_day nd;
	const struct wu_day_stats *latest;
	int step, before, back, from = 0;

	if (now < e->day.end && now >= e->day.start)
		return 0;
	wu_calendar_day(&e->conf.calendar, now, &nd);
	if (nd.date == e->today.date) {
		e->day = nd;
		return 0;
	}
	wu_days_keep(&e->days, &e->today);
	if (nd.date <= e->days.latest) {
		revisit(e, &nd, now);
		return 1;
	}
	/* A new date: the schedule goes on from the latest one. */
	if ((latest = wu_days_find(&e->days, e->days.latest)) && latest->date != e->today.date)
		e->today = *latest;
	before = e->today.step;
	/* The gate pools recent days, but starts afresh after a halt. */
	if (e->halted)
		wu_gate_past_clear(&e->gate_past);
	else
		wu_gate_past_push(&e->gate_past, &e->gate, nd.date - e->today.date);
	step = next_step(e, &nd);
	back =
	    wu_gap_close(&e->gap, &e->conf.gap, e->today.step, e->today.closed ? 0 : e->today.cap,
	                 e->today.used, e->today.step >= 1 ? nd.date - e->today.date - 1 : 0);
	if (back && nd.index >= 1 && back < step) {
		from = step;
		if (e->conf.advance == WU_ADVANCE_CALENDAR)
			e->held = nd.index - back;
		step = back;
	}
	e->yesterday = e->today;
	if (e->halted && e->conf.gate.resume == WU_RESUME_NEXT_DAY)
		e->halted = 0;
	e->day = nd;
	setup_day(e, step, now);
	e->today.held = step >= 1 && step == before;
	e->today.stepped_back = from > 0;
	if (from)
		emit(e, WU_EV_STEP_BACK, now, WU_ROUTE_NEW,
		     "gap: %d quiet days in a row (the new route sent under %g%% of its cap); the "
		     "schedule steps back from day %d to day %d, cap %" PRId64,
		     e->conf.gap.days, e->conf.gap.fill * 100, from, step, e->today.cap);
	emit(e, WU_EV_DAY, now, WU_ROUTE_NEW, "day %d of the schedule, cap %" PRId64 "%s", step,
	     e->today.cap,
	     e->halted               ? " (halted)"
	     : e->today.stepped_back ? " (stepped back)"
	     : e->today.held         ? " (held)"
	                             : "");
	return 1;
}

int wu_engine_create(struct wu_engine **ep, const struct wu_core_conf *conf, wu_time_t now,
                     char *err, size_t errlen)
{
	struct wu_engine *e = calloc(1, sizeof(*e));

	*ep = NULL;
	if (!e)
		goto nomem;
	e->conf = *conf;
	e->conf.schedule.days = NULL;
	e->conf.isps.domains = NULL;
	if (wu_schedule_copy(&e->conf.schedule, &conf->schedule) < 0 ||
	    wu_isp_table_copy(&e->conf.isps, &conf->isps) < 0)
		goto nomem;
	for (int r = 0; r < WU_ROUTE_COUNT; r++)
		for (int i = 0; i < WU_ISP_MAX; i++)
			wu_throttle_init(&e->th[r][i], &e->conf.throttle[r][i], now);
	e->ledger = &wu_ledger_local;
	wu_calendar_day(&e->conf.calendar, now, &e->day);
	setup_day(e,
	          e->day.index < 1                         ? 0
	          : e->conf.advance == WU_ADVANCE_CALENDAR ? e->day.index
	                                                   : 1,
	          now);
	*ep = e;
	return 0;
nomem:
	if (e)
		wu_engine_free(e);
	if (err && errlen)
		snprintf(err, errlen, "out of memory");
	return -1;
}

void wu_engine_set_ledger(struct wu_engine *e, struct wu_ledger *l)
{
	e->ledger = l ? l : &wu_ledger_local;
}

struct wu_ledger *wu_engine_ledger(const struct wu_engine *e)
{
	return e->ledger;
}

void wu_engine_free(struct wu_engine *e)
{
	if (!e)
		return;
	wu_core_conf_free(&e->conf);
	free(e);
}

int wu_engine_engaged_first(const struct wu_engine *e)
{
	return e->today.engaged_first && (e->today.engaged_asks > 0 || e->prev_asks > 0);
}

/* 1 when the pacing bucket (just refilled) holds the engaged reserve and
 * the rest of today's cap exceeds it; else 0 and *until = when both will.
 * The cap counts too: the bucket starts the day full, so late in the day
 * the cap, not pacing, may be what runs out first. */
static int reserve_left(struct wu_engine *e, wu_time_t now, wu_time_t *until)
{
	const struct wu_bucket *b = &e->pacing;
	double left = (double)(e->day.close - now) / 1e6, r, need, t = (double)now, rest;

	if (b->rate <= 0)
		return 1;
	r = wu_engaged_reserve(b->burst, b->rate, left);
	need = r - b->tokens;
	rest = (double)(e->today.cap - e->today.used);
	if (need <= 1e-9 && rest > r)
		return 1;
	if (need > 1e-9)
		t = (double)b->last + ceil(need * 1e6 / b->rate);
	/* The reserve shrinks with the window's rest: it is below the cap's
	 * rest once the rest of the window releases less. */
	if (rest <= r) {
		double tc = (double)e->day.close - ceil(rest * 1e6 / b->rate) + 1;
		if (tc > t)
			t = tc;
	}
	if (t <= (double)now)
		t = (double)now + 1;
	*until = t >= (double)e->day.close ? e->day.end : (wu_time_t)t;
	return 0;
}

/* Why the new route cannot take a message for isp at now (WU_WHY_NONE when
 * it can), and when to ask again. */
static enum wu_why new_blocked(struct wu_engine *e, wu_time_t now, int isp, int engaged,
                               wu_time_t *until)
{
	struct wu_throttle *th = &e->th[WU_ROUTE_NEW][isp];

	if (e->paused[WU_ROUTE_NEW])
		return *until = WU_TIME_NEVER, WU_WHY_PAUSED;
	if (e->halted)
		return *until =
		           e->conf.gate.resume == WU_RESUME_NEXT_DAY ? e->day.end : WU_TIME_NEVER,
		       WU_WHY_HALTED;
	if (e->today.step < 1)
		return *until = e->day.end, WU_WHY_NOT_STARTED;
	if (now < e->day.open)
		return *until = e->day.open, WU_WHY_WINDOW;
	if (now >= e->day.close)
		return *until = e->day.end, WU_WHY_WINDOW;
	if (e->today.used >= e->today.cap)
		return *until = e->day.end, WU_WHY_CAP;
	if (e->today.sent[WU_ROUTE_NEW][isp] >= e->share[isp])
		return *until = e->day.end, WU_WHY_SHARE;
	if (!wu_bucket_ready(&e->pacing, now)) {
		*until = wu_bucket_next(&e->pacing, now);
		if (*until > e->day.close)
			*until = e->day.end;
		return WU_WHY_PACING;
	}
	if (th->suspended_until > now)
		return *until = th->suspended_until, WU_WHY_SUSPENDED;
	if (!wu_throttle_ready(th, &e->conf.throttle[WU_ROUTE_NEW][isp], now))
		return *until = wu_throttle_next(th, now), WU_WHY_ISP_RATE;
	if (!engaged && wu_engine_engaged_first(e) && !reserve_left(e, now, until))
		return WU_WHY_ENGAGED;
	return WU_WHY_NONE;
}

struct wu_decision wu_engine_route_new_for(struct wu_engine *e, wu_time_t now, int isp, int engaged)
{
	struct wu_decision d = {WU_WAIT, WU_WHY_NONE, 0, 0};
	enum wu_ledger_short short_why = WU_LEDGER_DONE;
	struct wu_ledger_isp lim;
	wu_time_t until;

	wu_engine_tick(e, now);
	if (isp < 0 || isp >= e->conf.isps.n)
		isp = WU_ISP_OTHER;
	d.date = e->today.date;
	e->today.engaged_asks += engaged != 0;
	d.why = new_blocked(e, now, isp, engaged, &until);
	/* The ledger hears the ISP's limits in force: a shared one counts
	 * them over every node. */
	lim.isp = isp;
	lim.rate = e->th[WU_ROUTE_NEW][isp].bucket.rate;
	lim.burst = e->th[WU_ROUTE_NEW][isp].bucket.burst;
	lim.share = e->share[isp];
	if (d.why == WU_WHY_NONE && wu_ledger_take(e->ledger, e->today.date, e->today.cap,
	                                           e->today.used, 1, &lim, &short_why) < 1) {
		/* Everything else would let it go: only the ledger holds it back. */
		d.why = short_why == WU_LEDGER_PENDING ? WU_WHY_LEASE
		        : short_why == WU_LEDGER_DOWN  ? WU_WHY_CLUSTER
		        : short_why == WU_LEDGER_PACED ? WU_WHY_PACING
		        : short_why == WU_LEDGER_ISP   ? WU_WHY_ISP_RATE
		        : short_why == WU_LEDGER_SHARE ? WU_WHY_SHARE
		                                       : WU_WHY_CAP;
		until = short_why == WU_LEDGER_DONE || short_why == WU_LEDGER_SHARE ? e->day.end
		        : short_why == WU_LEDGER_PACED || short_why == WU_LEDGER_ISP
		            ? now + WU_USEC
		            : now + WU_LEASE_WAIT;
	}
	if (d.why == WU_WHY_NONE) {
		wu_bucket_take(&e->pacing);
		wu_throttle_take(&e->th[WU_ROUTE_NEW][isp]);
		e->today.used++;
		e->today.sent[WU_ROUTE_NEW][isp]++;
		e->today.engaged_new += engaged != 0;
		d.kind = WU_NEW;
		return d;
	}
	e->today.turned += d.why == WU_WHY_CAP || d.why == WU_WHY_PACING;
	d.until = until < now ? now : until;
	return d;
}

struct wu_decision wu_engine_route_new(struct wu_engine *e, wu_time_t now, int isp)
{
	return wu_engine_route_new_for(e, now, isp, 0);
}

struct wu_decision wu_engine_route(struct wu_engine *e, wu_time_t now, int isp)
{
	return wu_engine_route_for(e, now, isp, 0);
}

struct wu_decision wu_engine_route_for(struct wu_engine *e, wu_time_t now, int isp, int engaged)
{
	struct wu_decision d = wu_engine_route_new_for(e, now, isp, engaged);
	struct wu_throttle *old;
	wu_time_t until;

	/* A lease on its way is a moment's wait, not a reason to overflow. */
	if (d.kind == WU_NEW || d.why == WU_WHY_LEASE)
		return d;
	if (isp < 0 || isp >= e->conf.isps.n)
		isp = WU_ISP_OTHER;
	if (e->conf.overflow != WU_OVERFLOW_OLD || e->paused[WU_ROUTE_OLD])
		return d;
	old = &e->th[WU_ROUTE_OLD][isp];
	if (wu_throttle_ready(old, &e->conf.throttle[WU_ROUTE_OLD][isp], now)) {
		wu_throttle_take(old);
		e->today.sent[WU_ROUTE_OLD][isp]++;
		d.kind = WU_OLD;
		d.until = 0;
		return d;
	}
	until = wu_throttle_next(old, now);
	if (until < d.until)
		d.until = until;
	return d;
}

/* What the gate judges: this node's counts, and the other nodes' of today
 * when a cluster shares them (day by day: the n-th day before today of
 * each node is summed). */
static void gate_view(const struct wu_engine *e, struct wu_gate_counts *today,
                      struct wu_gate_past *past)
{
	*today = e->gate;
	*past = e->gate_past;
	if (e->peer_date == 0 || e->peer_date != e->today.date)
		return;
	today->delivered += e->peer.delivered;
	today->bounces += e->peer.bounces;
	today->complaints += e->peer.complaints;
	for (int i = 0; i < e->peer_past.n; i++) {
		if (i >= past->n)
			past->day[past->n++] = (struct wu_gate_counts){0, 0, 0};
		past->day[i].delivered += e->peer_past.day[i].delivered;
		past->day[i].bounces += e->peer_past.day[i].bounces;
		past->day[i].complaints += e->peer_past.day[i].complaints;
	}
}

/* Re-judges today's new-route health and acts on a change. */
static void judge(struct wu_engine *e, wu_time_t now)
{
	struct wu_gate_verdict v;
	struct wu_gate_counts today;
	struct wu_gate_past past;

	gate_view(e, &today, &past);
	wu_gate_eval(&e->conf.gate, &today, &past, &v);
	if (v.state <= e->gate_state)
		return;
	e->gate_state = v.state;
	if (v.state > e->today.gate)
		e->today.gate = v.state;
	if (v.state == WU_GATE_HALT) {
		e->halted = 1;
		emit(e, WU_EV_GATE_HALT, now, WU_ROUTE_NEW, "gate halt: %s; new route paused",
		     v.reason);
	} else {
		emit(e, WU_EV_GATE_WARN, now, WU_ROUTE_NEW, "gate warning: %s", v.reason);
	}
}

/* A refused send of today returns its share of today's limits. */
static void give_back(struct wu_engine *e, enum wu_route route, int isp, int64_t n)
{
	int64_t *sent = &e->today.sent[route][isp];

	for (int64_t k = 0; k < n; k++) {
		wu_throttle_give(&e->th[route][isp]);
		if (route == WU_ROUTE_NEW && e->today.used > 0) {
			e->today.used--;
			wu_bucket_give(&e->pacing);
			wu_ledger_give_back(e->ledger, e->today.date, 1);
		}
	}
	*sent = *sent > n ? *sent - n : 0;
}

/* The gate hears a provider's report about the new route. */
static void gate_hear(struct wu_engine *e, wu_time_t now, enum wu_result result, int64_t n)
{
	struct wu_gate_counts before = e->gate;

	e->gate.delivered += result == WU_DELIVERED ? n : 0;
	e->gate.bounces += result == WU_BOUNCE ? n : 0;
	e->gate.complaints += result == WU_COMPLAINT ? n : 0;
	/* A delivery only lowers the rates, so it changes the verdict only
	 * where it changes the pool (gate.c, wu_gate_due); with other nodes'
	 * counts in the pool, every report is judged. */
	if (result != WU_DELIVERED || e->peer_date == e->today.date ||
	    wu_gate_due(&e->conf.gate, &e->gate_past, &before, &e->gate))
		judge(e, now);
}

/* Deferral rules: a deferred or blocked report of the new route cuts its
 * ISP's rate by every rule of the ISP that watches the event and matches
 * its text (a report without text: every such rule).  Returns how many. */
static int rules_apply(struct wu_engine *e, wu_time_t now, const struct wu_report *r)
{
	unsigned bit = r->result == WU_DEFERRED ? WU_DEFER_ON_DEFERRED : WU_DEFER_ON_BLOCKED;
	struct wu_cut *cut = &e->cut[r->isp];
	char text[512];
	int n = 0;

	if (r->text) {
		size_t i;
		for (i = 0; r->text[i] && i < sizeof(text) - 1; i++)
			text[i] = (char)tolower((unsigned char)r->text[i]);
		text[i] = '\0';
	}
	for (int i = 0; i < e->conf.nrules; i++) {
		const struct wu_defer_rule *rule = &e->conf.rules[i];

		if (rule->isp != r->isp || !(rule->events & bit) ||
		    (r->text && !wu_deferral_matches(rule, text)))
			continue;
		wu_throttle_cut(&e->th[WU_ROUTE_NEW][r->isp], &e->conf.throttle[WU_ROUTE_NEW][r->isp],
		                &e->conf.backoff, rule->cut, rule->hold, now);
		if (cut->until <= now || rule->cut < cut->cut) {
			cut->cut = rule->cut;
			snprintf(cut->rule, sizeof(cut->rule), "%s", rule->name);
		}
		if (now + rule->hold > cut->until)
			cut->until = now + rule->hold;
		/* A cut scales the ISP's new_rate, or without one today's pacing
		 * rate; once nothing is paced, an ISP without a rate has nothing
		 * to cut. */
		cut->effective = e->conf.throttle[WU_ROUTE_NEW][r->isp].rate > 0 ||
		                 (e->today.cap > 0 && e->today.cap != WU_UNLIMITED);
		cut->hits++;
		n++;
	}
	return n;
}

/* A rule cut isp: an event when its rate was not cut already. */
static void cut_begins(struct wu_engine *e, wu_time_t now, int isp)
{
	struct wu_event *ev;
	double factor = e->th[WU_ROUTE_NEW][isp].factor;

	if (e->cut_on[isp] || factor >= 1)
		return;
	e->cut_on[isp] = 1;
	ev = emit(e, WU_EV_ISP_CUT, now, WU_ROUTE_NEW, "%s cut to %.0f%% of its rate by rule %s",
	          e->conf.isps.names[isp], factor * 100, e->cut[isp].rule);
	ev->isp = isp;
	ev->value = factor;
	snprintf(ev->rule, sizeof(ev->rule), "%s", e->cut[isp].rule);
}

/* A success of isp on route: an event when it brought a cut rate back. */
static void cut_recovers(struct wu_engine *e, wu_time_t now, enum wu_route route, int isp)
{
	struct wu_event *ev;

	if (route != WU_ROUTE_NEW || !e->cut_on[isp] || e->th[WU_ROUTE_NEW][isp].factor < 1)
		return;
	e->cut_on[isp] = 0;
	ev = emit(e, WU_EV_ISP_RECOVERED, now, WU_ROUTE_NEW, "%s back to its full rate after rule %s",
	          e->conf.isps.names[isp], e->cut[isp].rule);
	ev->isp = isp;
	ev->value = 1;
	snprintf(ev->rule, sizeof(ev->rule), "%s", e->cut[isp].rule);
}

/* n answers to sends of route, refused for good or not: an event when the
 * rate of permanent failures crosses its line. */
static void permfail_hear(struct wu_engine *e, wu_time_t now, enum wu_route route, int64_t n,
                          int failed)
{
	const struct wu_failrate_conf *c = &e->conf.permfail;
	struct wu_event *ev;
	double rate;

	switch (wu_failrate_hear(&e->permfail[route], c, n, failed, &rate)) {
	case WU_LEVEL_FIRE:
		ev = emit(e, WU_EV_PERMFAIL_RATE, now, route,
		          "%s route: %.1f%% of the last %d sends refused for good (above %.1f%%)",
		          wu_route_name(route), rate * 100, e->permfail[route].n, c->rate * 100);
		ev->value = rate;
		break;
	case WU_LEVEL_CLEAR:
		ev = emit(e, WU_EV_PERMFAIL_OK, now, route,
		          "%s route: %.1f%% of the last %d sends refused for good (back at or below "
		          "%.1f%%)",
		          wu_route_name(route), rate * 100, e->permfail[route].n, c->rate * 50);
		ev->value = rate;
		break;
	default:
		break;
	}
}

struct wu_verdict wu_engine_report(struct wu_engine *e, wu_time_t now, const struct wu_report *r)
{
	struct wu_verdict v = {WU_ACT_NONE, 0, 0, 0};
	struct wu_report rep = *r;
	const struct wu_throttle_conf *tc;
	struct wu_throttle *th;
	int isp_scope = r->scope == WU_SCOPE_ISP;
	wu_time_t wait;

	wu_engine_tick(e, now);
	if (rep.isp < 0 || rep.isp >= e->conf.isps.n)
		rep.isp = WU_ISP_OTHER;
	if (rep.n <= 0)
		rep.n = 1;
	if ((unsigned)rep.route >= WU_ROUTE_COUNT || (unsigned)rep.result >= WU_RESULT_COUNT)
		return v;
	th = &e->th[rep.route][rep.isp];
	tc = &e->conf.throttle[rep.route][rep.isp];
	e->today.result[rep.route][rep.isp][rep.result] += rep.n;
	wait = wu_backoff_retry(&e->conf.backoff, rep.attempts > 0 ? rep.attempts : 1, rep.jitter);
	if (rep.retry_after > wait)
		wait = rep.retry_after;
	/* The ISP's throttle hears one answer, however many units it covered. */
	switch (rep.result) {
	case WU_ACCEPTED:
		v.action = WU_ACT_SENT;
		if (isp_scope) {
			wu_throttle_success(th, tc, &e->conf.backoff, now);
			cut_recovers(e, now, rep.route, rep.isp);
		}
		permfail_hear(e, now, rep.route, rep.n, 0);
		break;
	case WU_TEMPFAIL:
		v.action = WU_ACT_RETRY;
		v.retry_at = now + wait;
		if (isp_scope)
			wu_throttle_tempfail(th, tc, &e->conf.backoff, now);
		if (rep.sent_date == e->today.date)
			give_back(e, rep.route, rep.isp, rep.n);
		break;
	case WU_TIMEOUT: /* may have been taken: stays counted, retried */
		v.action = WU_ACT_RETRY;
		v.retry_at = now + wait;
		if (isp_scope)
			wu_throttle_tempfail(th, tc, &e->conf.backoff, now);
		break;
	case WU_PERMFAIL: /* refused for good, but not taken either */
		if (rep.sent_date == e->today.date)
			give_back(e, rep.route, rep.isp, rep.n);
		if (rep.auth) {
			/* The route was refused, not the mail: keep the units and
			 * stop the route until someone fixes it and resumes. */
			char who[96];
			v.action = WU_ACT_RETRY;
			v.retry_at = now;
			snprintf(who, sizeof(who), WU_PAUSED_BY_AUTH " (%ld)", rep.code);
			if (!e->paused[rep.route]) {
				wu_engine_pause(e, now, rep.route, who);
				v.paused = 1;
			}
		} else {
			v.action = WU_ACT_FAIL;
			permfail_hear(e, now, rep.route, rep.n, 1);
		}
		break;
	case WU_BLOCKED:
		if (isp_scope)
			wu_throttle_tempfail(th, tc, &e->conf.backoff, now);
		/* a block may match a deferral rule as well */
		__attribute__((fallthrough));
	case WU_DEFERRED:
		/* The provider retries a deferral itself; what it does to the ISP's
		 * rate here is the deferral rules' business alone. */
		if (rep.route == WU_ROUTE_NEW && (v.cuts = rules_apply(e, now, &rep)) > 0)
			cut_begins(e, now, rep.isp);
		break;
	case WU_DELIVERED:
		/* The ISP took it: the step back up after a cut, on either kind
		 * of route (a v3 route hears it only from the webhook). */
		if (isp_scope) {
			wu_throttle_success(th, tc, &e->conf.backoff, now);
			cut_recovers(e, now, rep.route, rep.isp);
		}
		if (rep.route == WU_ROUTE_NEW)
			gate_hear(e, now, rep.result, rep.n);
		break;
	case WU_BOUNCE:
	case WU_COMPLAINT:
		if (rep.route == WU_ROUTE_NEW)
			gate_hear(e, now, rep.result, rep.n);
		break;
	default:
		break;
	}
	return v;
}

void wu_engine_outcome(struct wu_engine *e, wu_time_t now, enum wu_route route, int isp,
                       enum wu_result result, int sent_date)
{
	struct wu_report r = {.route = route,
	                      .isp = isp,
	                      .result = result,
	                      .scope = WU_SCOPE_ISP,
	                      .n = 1,
	                      .sent_date = sent_date,
	                      .attempts = 1};

	wu_engine_report(e, now, &r);
}

void wu_engine_undo(struct wu_engine *e, wu_time_t now, enum wu_route route, int isp, int date)
{
	wu_engine_tick(e, now);
	if ((unsigned)route >= WU_ROUTE_COUNT || isp < 0 || isp >= e->conf.isps.n)
		return;
	if (date == e->today.date)
		give_back(e, route, isp, 1);
}

int wu_engine_cut_state(const struct wu_engine *e, int isp, struct wu_cut *out)
{
	if (isp < 0 || isp >= e->conf.isps.n || !e->cut[isp].hits)
		return 0;
	*out = e->cut[isp];
	out->factor = e->th[WU_ROUTE_NEW][isp].factor;
	return 1;
}

void wu_engine_cut(struct wu_engine *e, wu_time_t now, enum wu_route route, int isp, double factor,
                   wu_time_t hold)
{
	wu_engine_tick(e, now);
	if ((unsigned)route >= WU_ROUTE_COUNT || isp < 0 || isp >= e->conf.isps.n)
		return;
	wu_throttle_cut(&e->th[route][isp], &e->conf.throttle[route][isp], &e->conf.backoff, factor,
	                hold, now);
}

/* Keeps the earlier of *t and c when c is after now. */
static void earliest(wu_time_t *t, wu_time_t c, wu_time_t now)
{
	if (c > now && c < *t)
		*t = c;
}

wu_time_t wu_engine_next_wakeup(struct wu_engine *e, wu_time_t now)
{
	wu_time_t t;

	wu_engine_tick(e, now);
	t = e->day.end;
	earliest(&t, e->day.open, now);
	earliest(&t, e->day.close, now);
	if (e->today.used < e->today.cap)
		earliest(&t, wu_bucket_next(&e->pacing, now), now);
	for (int r = 0; r < WU_ROUTE_COUNT; r++)
		for (int i = 0; i < e->conf.isps.n; i++) {
			earliest(&t, e->th[r][i].suspended_until, now);
			earliest(&t, e->th[r][i].hold_until, now);
			earliest(&t, wu_bucket_next(&e->th[r][i].bucket, now), now);
		}
	return t;
}

void wu_engine_pause(struct wu_engine *e, wu_time_t now, enum wu_route route, const char *who)
{
	struct wu_event *ev;

	if ((unsigned)route >= WU_ROUTE_COUNT || e->paused[route])
		return;

	e->paused[route] = 1;
	snprintf(e->paused_by[route], WHO_MAX, "%s", who ? who : "unknown");
	ev = emit(e, WU_EV_PAUSE, now, route, "%s route paused by %s", wu_route_name(route),
	          e->paused_by[route]);
	snprintf(ev->who, sizeof(ev->who), "%s", e->paused_by[route]);
}

void wu_engine_resume(struct wu_engine *e, wu_time_t now, enum wu_route route, const char *who)
{
	struct wu_event *ev;
	char was[WHO_MAX];

	if ((unsigned)route >= WU_ROUTE_COUNT)
		return;
	if (!e->paused[route] && !(route == WU_ROUTE_NEW && e->halted))
		return;
	snprintf(was, sizeof(was), "%s", e->paused_by[route]);
	e->paused[route] = 0;
	e->paused_by[route][0] = '\0';
	if (route == WU_ROUTE_NEW) {
		/* The gate judges afresh from here; the day's totals stay. */
		e->halted = 0;
		memset(&e->gate, 0, sizeof(e->gate));
		wu_gate_past_clear(&e->gate_past);
		e->gate_state = WU_GATE_OK;
	}
	ev = emit(e, WU_EV_RESUME, now, route, "%s route resumed by %s", wu_route_name(route),
	          who ? who : "unknown");
	snprintf(ev->who, sizeof(ev->who), "%s", who ? who : "unknown");
	/* What the resume ends: a pause by the provider's answer, by hand, or
	 * a halt of the gate. */
	snprintf(ev->rule, sizeof(ev->rule), "%s", was[0] ? was : "gate");
}

int wu_engine_paused(const struct wu_engine *e, enum wu_route route)
{
	return (unsigned)route < WU_ROUTE_COUNT &&
	       (e->paused[route] || (route == WU_ROUTE_NEW && e->halted));
}

const struct wu_day_stats *wu_engine_today(const struct wu_engine *e)
{
	return &e->today;
}

const struct wu_day_stats *wu_engine_yesterday(const struct wu_engine *e)
{
	return &e->yesterday;
}

void wu_engine_gate(const struct wu_engine *e, struct wu_gate_verdict *v)
{
	struct wu_gate_counts today;
	struct wu_gate_past past;

	gate_view(e, &today, &past);
	wu_gate_eval(&e->conf.gate, &today, &past, v);
}

void wu_engine_gate_own(const struct wu_engine *e, struct wu_gate_counts *today,
                        struct wu_gate_past *past)
{
	*today = e->gate;
	*past = e->gate_past;
}

void wu_engine_gate_peers(struct wu_engine *e, wu_time_t now, int date,
                          const struct wu_gate_counts *today, const struct wu_gate_past *past)
{
	e->peer_date = date;
	e->peer = *today;
	e->peer_past = *past;
	if (e->peer_past.n > WU_GATE_DAYS)
		e->peer_past.n = WU_GATE_DAYS;
	if (date == e->today.date)
		judge(e, now);
}

int wu_engine_held(const struct wu_engine *e)
{
	return e->held;
}

int wu_engine_quiet(const struct wu_engine *e)
{
	return e->gap.quiet;
}

void wu_engine_pacing(const struct wu_engine *e, double *rate, double *burst)
{
	*rate = e->pacing.rate;
	*burst = e->pacing.burst;
}

const struct wu_core_conf *wu_engine_conf(const struct wu_engine *e)
{
	return &e->conf;
}

int wu_engine_poll_event(struct wu_engine *e, struct wu_event *ev)
{
	if (e->ev_count == 0)
		return 0;
	*ev = e->events[e->ev_head];
	e->ev_head = (e->ev_head + 1) % EVENTS_MAX;
	e->ev_count--;
	return 1;
}

/*
 * Saved state is text, one fact per line, so that it can be read in the
 * store with the sqlite3 shell.  Only what cannot be rebuilt from the
 * configuration is written: the day, the step, counters and live limits.
 */

/* Appends to buf as snprintf would: off counts what the whole text needs,
 * even past len, so a first pass with len 0 measures it. */
static void put(char *buf, size_t len, size_t *off, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void put(char *buf, size_t len, size_t *off, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(*off < len ? buf + *off : NULL, *off < len ? len - *off : 0, fmt, ap);
	va_end(ap);
	if (n > 0)
		*off += (size_t)n;
}

/* Writes the state into buf (at most len bytes, NUL included) and returns
 * the length the whole text needs. */
static size_t save_text(const struct wu_engine *e, char *buf, size_t len)
{
	const struct wu_day_stats *t = &e->today;
	size_t off = 0;

	if (len)
		buf[0] = '\0';
	put(buf, len, &off,
	    "warmup-engine 1\ndate %d\nstep %d\nheld %d %d\nhalted %d\nused %" PRId64
	    "\ngate %d %d %" PRId64 " %" PRId64 " %" PRId64 "\npacing %.17g %" PRId64 " %.17g\n",
	    t->date, t->step, e->held, t->held, e->halted, t->used, (int)t->gate,
	    (int)e->gate_state, e->gate.delivered, e->gate.bounces, e->gate.complaints,
	    e->pacing.tokens, e->pacing.last, e->pacing.burst);
	for (int i = 0; i < e->gate_past.n; i++)
		put(buf, len, &off, "gate_past %" PRId64 " %" PRId64 " %" PRId64 "\n",
		    e->gate_past.day[i].delivered, e->gate_past.day[i].bounces,
		    e->gate_past.day[i].complaints);
	if (t->closed)
		put(buf, len, &off, "closed 1\n");
	put(buf, len, &off, "engaged %d %" PRId64 " %" PRId64 " %" PRId64 " %" PRId64 "\n",
	    t->engaged_first, t->engaged_new, t->engaged_asks, t->turned, e->prev_asks);
	if (e->gap.quiet || e->gap.last_step || t->stepped_back)
		put(buf, len, &off, "gap %d %d %d\n", e->gap.quiet, e->gap.last_step,
		    t->stepped_back);
	if (e->days.latest > t->date)
		put(buf, len, &off, "latest %d\n", e->days.latest);
	/* The other dates it has been on, for a clock that goes back to one:
	 * enough to keep their caps granted once (days.h). */
	for (int i = 0; i < e->days.n; i++) {
		const struct wu_day_stats *p = &e->days.d[i];
		if (p->date != t->date)
			put(buf, len, &off, "past %d %d %" PRId64 " %d %d %d\n", p->date, p->step,
			    p->used, p->held, (int)p->gate, p->closed);
	}
	for (int r = 0; r < WU_ROUTE_COUNT; r++) {
		if (e->paused[r])
			put(buf, len, &off, "paused %d %s\n", r, e->paused_by[r]);
		for (int i = 0; i < e->conf.isps.n; i++) {
			const struct wu_throttle *th = &e->th[r][i];
			if (t->sent[r][i])
				put(buf, len, &off, "sent %d %d %" PRId64 "\n", r, i,
				    t->sent[r][i]);
			for (int k = 0; k < WU_RESULT_COUNT; k++)
				if (t->result[r][i][k])
					put(buf, len, &off, "result %d %d %d %" PRId64 "\n", r, i,
					    k, t->result[r][i][k]);
			if (th->factor != 1 || th->fails || th->suspended_until || th->hold_until ||
			    th->bucket.tokens < th->bucket.burst)
				put(buf, len, &off,
				    "throttle %d %d %.17g %d %" PRId64 " %" PRId64 " %.17g %" PRId64
				    "\n",
				    r, i, th->factor, th->fails, th->suspended_until,
				    th->hold_until, th->bucket.tokens, th->bucket.last);
		}
	}
	put(buf, len, &off, "end\n");
	return off;
}

int wu_engine_save(const struct wu_engine *e, char *buf, size_t len)
{
	size_t n = save_text(e, buf, len);

	return n < len && n <= INT32_MAX ? (int)n : -1;
}

char *wu_engine_save_alloc(const struct wu_engine *e)
{
	size_t n = save_text(e, NULL, 0);
	char *buf = malloc(n + 1);

	if (buf && save_text(e, buf, n + 1) != n) {
		free(buf);
		return NULL;
	}
	return buf;
}

/*
 * Loading trusts nothing: the row may have been edited by hand, written by
 * another version or damaged on disk.  Every number is read with strtoll or
 * strtod and checked against the range the engine can produce, so a state
 * that loads can never overflow the day, bucket or counter arithmetic.
 */

/* Largest saved counter: more messages than any warmup sends, and exact as
 * a double, so rates and shares computed from it stay exact. */
#define COUNT_MAX (INT64_C(1) << 53)
/* Last date and time of the calendar (9999-12-31): [warmup] start ends in
 * 9999 too, so the day arithmetic has room on both sides. */
#define DATE_MAX 2932896
#define TIME_MAX (INT64_C(253402300800) * WU_USEC)
/* A bucket's tokens: at least -1 (one taken from an empty bucket), at most
 * a day's cap (burst = day), which doubling after the last row takes up to
 * 2^62. */
#define TOKENS_MAX 1e19
#define FAILS_MAX  (1 << 30)
#define TOK_MAX    12

struct loader {
	int lineno;
	char *tok[TOK_MAX];
	int ntok;
	char *err;
	size_t errlen;
	const struct wu_engine *e;
};

static int ld_fail(struct loader *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Writes "saved engine state, line N: ..." (no line for the whole text:
 * lineno 0) and returns -1. */
static int ld_fail(struct loader *l, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!l->err || !l->errlen)
		return -1;
	n = l->lineno ? snprintf(l->err, l->errlen, "saved engine state, line %d: ", l->lineno)
	              : snprintf(l->err, l->errlen, "saved engine state: ");
	if (n >= 0 && (size_t)n < l->errlen) {
		va_start(ap, fmt);
		vsnprintf(l->err + n, l->errlen - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return -1;
}

/* Splits line at blanks into l->tok; returns the count, or -1 when there
 * are more than TOK_MAX words. */
static int ld_split(struct loader *l, char *line)
{
	char *save = NULL, *w;

	l->ntok = 0;
	for (w = strtok_r(line, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
		if (l->ntok == TOK_MAX)
			return -1;
		l->tok[l->ntok++] = w;
	}
	return l->ntok;
}

/* Word i as an integer in lo..hi, or a message naming field. */
static int ld_int(struct loader *l, int i, const char *field, int64_t lo, int64_t hi, int64_t *out)
{
	const char *s = l->tok[i];
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (end == s || *end || errno || v < lo || v > hi)
		return ld_fail(l, "%s: '%s' is not a whole number in %" PRId64 "..%" PRId64, field,
		               s, lo, hi);
	*out = v;
	return 0;
}

/* ld_int for an int. */
static int ld_int32(struct loader *l, int i, const char *field, int lo, int hi, int *out)
{
	/* 0: GCC 12 at -O3 (the release build) cannot see that ld_fail always
	 * returns -1 and stops -Werror with maybe-uninitialized. */
	int64_t v = 0;

	if (ld_int(l, i, field, lo, hi, &v) < 0)
		return -1;
	*out = (int)v;
	return 0;
}

/* Word i as a finite number in [lo, hi] (lo excluded when open_lo). */
static int ld_real(struct loader *l, int i, const char *field, double lo, int open_lo, double hi,
                   double *out)
{
	const char *s = l->tok[i];
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (end == s || *end || errno == ERANGE || !isfinite(v) || v < lo || (open_lo && v == lo) ||
	    v > hi)
		return ld_fail(l, "%s: '%s' is not a number in %s%g..%g]", field, s,
		               open_lo ? "(" : "[", lo, hi);
	*out = v;
	return 0;
}

/* Words i and i+1 as a route and an ISP of the configuration; name gets
 * "new google" for the messages that follow. */
static int ld_pair(struct loader *l, int i, int *r, int *isp, char *name, size_t len)
{
	if (ld_int32(l, i, "route", 0, WU_ROUTE_COUNT - 1, r) < 0)
		return -1;
	if (ld_int32(l, i + 1, "isp", 0, l->e->conf.isps.n - 1, isp) < 0)
		return ld_fail(l,
		               "isp %s: the configuration has ISPs 0..%d only (an [isp] section "
		               "removed since the state was saved?)",
		               l->tok[i + 1], l->e->conf.isps.n - 1);
	snprintf(name, len, "%s %s", wu_route_name((enum wu_route) * r),
	         l->e->conf.isps.names[*isp]);
	return 0;
}

/* What one load has read so far. */
struct loaded {
	int date, step, held, tday_held, halted, tgate, gstate, ended, closed, latest;
	int engaged, efirst, stepped_back; /* engaged: an 'engaged' line was read */
	int64_t enew, easks, turned, prev_asks;
	int64_t used;
	struct wu_gate_counts gc;
	double tokens, burst;
	int64_t last;
};

/* Reads one line of the state into tmp and *v.  Returns 0 or -1. */
static int ld_line(struct loader *l, struct wu_engine *tmp, struct loaded *v, char *line)
{
	const char *key;
	char pair[WU_ISP_NAME_MAX + 8], field[WU_ISP_NAME_MAX + 40];
	int r, i, k, n;

	if (strncmp(line, "paused ", 7) == 0) {
		/* The word after the route is free text: who paused it. */
		char *who = line + 7 + strspn(line + 7, "0123456789");
		char route[16];

		snprintf(route, sizeof(route), "%.*s", (int)(who - line - 7), line + 7);
		if (*who != ' ' && *who != '\0')
			return ld_fail(l, "paused: expected a route number and who paused it");
		if (*who)
			*who++ = '\0';
		l->tok[0] = route;
		if (ld_int32(l, 0, "paused: route", 0, WU_ROUTE_COUNT - 1, &r) < 0)
			return -1;
		for (const char *c = who; *c; c++)
			if ((unsigned char)*c < 0x20 || *c == 0x7f)
				return ld_fail(l,
				               "paused: who paused it holds a control character");
		tmp->paused[r] = 1;
		snprintf(tmp->paused_by[r], WHO_MAX, "%s", who);
		return 0;
	}
	if ((n = ld_split(l, line)) < 0)
		return ld_fail(l, "too many words");
	if (n == 0)
		return 0;
	key = l->tok[0];
#define WANT(count)                                                                                \
	do {                                                                                       \
		if (n != (count) + 1)                                                              \
			return ld_fail(l, "%s: expected %d value%s, got %d", key, (count),         \
			               (count) == 1 ? "" : "s", n - 1);                            \
	} while (0)
	if (strcmp(key, "date") == 0) {
		WANT(1);
		return ld_int32(l, 1, "date", 1, DATE_MAX, &v->date);
	}
	if (strcmp(key, "step") == 0) {
		WANT(1);
		return ld_int32(l, 1, "step", 0, DATE_MAX, &v->step);
	}
	if (strcmp(key, "held") == 0) {
		WANT(2);
		return ld_int32(l, 1, "held: days held", 0, DATE_MAX, &v->held) < 0 ||
		               ld_int32(l, 2, "held: today held", 0, 1, &v->tday_held) < 0
		           ? -1
		           : 0;
	}
	if (strcmp(key, "halted") == 0) {
		WANT(1);
		return ld_int32(l, 1, "halted", 0, 1, &v->halted);
	}
	if (strcmp(key, "closed") == 0) {
		WANT(1);
		return ld_int32(l, 1, "closed", 0, 1, &v->closed);
	}
	if (strcmp(key, "engaged") == 0) {
		WANT(5);
		v->engaged = 1;
		return ld_int32(l, 1, "engaged: applies", 0, 1, &v->efirst) < 0 ||
		               ld_int(l, 2, "engaged: sent new", 0, COUNT_MAX, &v->enew) < 0 ||
		               ld_int(l, 3, "engaged: asks", 0, COUNT_MAX, &v->easks) < 0 ||
		               ld_int(l, 4, "engaged: turned away", 0, COUNT_MAX, &v->turned) < 0 ||
		               ld_int(l, 5, "engaged: asks the day before", 0, COUNT_MAX,
		                      &v->prev_asks) < 0
		           ? -1
		           : 0;
	}
	if (strcmp(key, "gap") == 0) {
		WANT(3);
		return ld_int32(l, 1, "gap: quiet days", 0, DATE_MAX, &tmp->gap.quiet) < 0 ||
		               ld_int32(l, 2, "gap: last step", 0, DATE_MAX, &tmp->gap.last_step) <
		                   0 ||
		               ld_int32(l, 3, "gap: stepped back", 0, 1, &v->stepped_back) < 0
		           ? -1
		           : 0;
	}
	if (strcmp(key, "latest") == 0) {
		WANT(1);
		return ld_int32(l, 1, "latest", 1, DATE_MAX, &v->latest);
	}
	if (strcmp(key, "past") == 0) {
		struct wu_day_stats p;
		int gate;

		WANT(6);
		memset(&p, 0, sizeof(p));
		if (tmp->days.n == WU_DAYS_KEPT)
			return ld_fail(l, "past: more than %d dates", WU_DAYS_KEPT);
		if (ld_int32(l, 1, "past: date", 1, DATE_MAX, &p.date) < 0 ||
		    ld_int32(l, 2, "past: step", 0, DATE_MAX, &p.step) < 0 ||
		    ld_int(l, 3, "past: used", 0, COUNT_MAX, &p.used) < 0 ||
		    ld_int32(l, 4, "past: held", 0, 1, &p.held) < 0 ||
		    ld_int32(l, 5, "past: gate", WU_GATE_OK, WU_GATE_HALT, &gate) < 0 ||
		    ld_int32(l, 6, "past: closed", 0, 1, &p.closed) < 0)
			return -1;
		if (wu_days_find(&tmp->days, p.date))
			return ld_fail(l, "past: date %d twice", p.date);
		p.gate = (enum wu_gate_state)gate;
		wu_days_keep(&tmp->days, &p);
		return 0;
	}
	if (strcmp(key, "used") == 0) {
		WANT(1);
		return ld_int(l, 1, "used", 0, COUNT_MAX, &v->used);
	}
	if (strcmp(key, "gate") == 0) {
		WANT(5);
		return ld_int32(l, 1, "gate: today's worst state", WU_GATE_OK, WU_GATE_HALT,
		                &v->tgate) < 0 ||
		               ld_int32(l, 2, "gate: state", WU_GATE_OK, WU_GATE_HALT, &v->gstate) <
		                   0 ||
		               ld_int(l, 3, "gate: delivered", 0, COUNT_MAX, &v->gc.delivered) <
		                   0 ||
		               ld_int(l, 4, "gate: bounces", 0, COUNT_MAX, &v->gc.bounces) < 0 ||
		               ld_int(l, 5, "gate: complaints", 0, COUNT_MAX, &v->gc.complaints) < 0
		           ? -1
		           : 0;
	}
	if (strcmp(key, "gate_past") == 0) {
		struct wu_gate_counts *d = &tmp->gate_past.day[tmp->gate_past.n];

		WANT(3);
		if (tmp->gate_past.n == WU_GATE_DAYS)
			return ld_fail(l, "gate_past: more than %d days", WU_GATE_DAYS);
		tmp->gate_past.n++;
		return ld_int(l, 1, "gate_past: delivered", 0, COUNT_MAX, &d->delivered) < 0 ||
		               ld_int(l, 2, "gate_past: bounces", 0, COUNT_MAX, &d->bounces) < 0 ||
		               ld_int(l, 3, "gate_past: complaints", 0, COUNT_MAX, &d->complaints) <
		                   0
		           ? -1
		           : 0;
	}
	if (strcmp(key, "pacing") == 0) {
		if (n != 3 && n != 4)
			return ld_fail(l, "pacing: expected 2 or 3 values, got %d", n - 1);
		v->burst = -1;
		return ld_real(l, 1, "pacing: tokens", -1, 0, TOKENS_MAX, &v->tokens) < 0 ||
		               ld_int(l, 2, "pacing: last", 0, TIME_MAX, &v->last) < 0 ||
		               (n == 4 &&
		                ld_real(l, 3, "pacing: burst", 1, 0, TOKENS_MAX, &v->burst) < 0)
		           ? -1
		           : 0;
	}
	if (strcmp(key, "sent") == 0) {
		WANT(3);
		if (ld_pair(l, 1, &r, &i, pair, sizeof(pair)) < 0)
			return -1;
		snprintf(field, sizeof(field), "sent %s", pair);
		return ld_int(l, 3, field, 0, COUNT_MAX, &tmp->today.sent[r][i]);
	}
	if (strcmp(key, "result") == 0) {
		WANT(4);
		if (ld_pair(l, 1, &r, &i, pair, sizeof(pair)) < 0 ||
		    ld_int32(l, 3, "result: kind", 0, WU_RESULT_COUNT - 1, &k) < 0)
			return -1;
		snprintf(field, sizeof(field), "result %s %s", pair, wu_result_name(k));
		return ld_int(l, 4, field, 0, COUNT_MAX, &tmp->today.result[r][i][k]);
	}
	if (strcmp(key, "throttle") == 0) {
		struct wu_throttle th;
		double tokens;
		int64_t last;
		WANT(8);
		if (ld_pair(l, 1, &r, &i, pair, sizeof(pair)) < 0)
			return -1;
		th = tmp->th[r][i];
#define FIELD(what) (snprintf(field, sizeof(field), "throttle %s: %s", pair, what), field)
		if (ld_real(l, 3, FIELD("factor"), 0, 1, 1, &th.factor) < 0 ||
		    ld_int32(l, 4, FIELD("fails"), 0, FAILS_MAX, &th.fails) < 0 ||
		    ld_int(l, 5, FIELD("suspended until"), 0, TIME_MAX, &th.suspended_until) < 0 ||
		    ld_int(l, 6, FIELD("hold until"), 0, TIME_MAX, &th.hold_until) < 0 ||
		    ld_real(l, 7, FIELD("tokens"), -1, 0, TOKENS_MAX, &tokens) < 0 ||
		    ld_int(l, 8, FIELD("last"), 0, TIME_MAX, &last) < 0)
			return -1;
#undef FIELD
		wu_throttle_apply(&th, &tmp->conf.throttle[r][i], last);
		th.bucket.tokens = tokens < th.bucket.burst ? tokens : th.bucket.burst;
		th.bucket.last = last;
		tmp->th[r][i] = th;
		return 0;
	}
	if (strcmp(key, "end") == 0) {
		WANT(0);
		v->ended = 1;
		return 0;
	}
#undef WANT
	return ld_fail(l, "unknown line '%s'", key);
}

int wu_engine_load(struct wu_engine *e, const char *buf, wu_time_t now, char *err, size_t errlen)
{
	struct loader l = {.err = err, .errlen = errlen, .e = e};
	struct loaded v = {.burst = -1};
	struct wu_engine *tmp;
	struct wu_day nowday;
	const char *p = buf;
	char line[256];

	/* Parse into a copy so that a bad text leaves e as it was. */
	if (!(tmp = malloc(sizeof(*tmp))))
		return ld_fail(&l, "out of memory");
	*tmp = *e;
	memset(tmp->paused, 0, sizeof(tmp->paused));
	memset(tmp->paused_by, 0, sizeof(tmp->paused_by));
	memset(&tmp->today, 0, sizeof(tmp->today));
	memset(&tmp->days, 0, sizeof(tmp->days));
	memset(&tmp->gap, 0, sizeof(tmp->gap));
	wu_gate_past_clear(&tmp->gate_past);
	while (*p && !v.ended) {
		size_t n = strcspn(p, "\n");

		l.lineno++;
		if (n >= sizeof(line)) {
			ld_fail(&l, "longer than %zu bytes", sizeof(line) - 1);
			goto bad;
		}
		memcpy(line, p, n);
		line[n] = '\0';
		p += n + (p[n] == '\n');
		if (l.lineno == 1) {
			if (strcmp(line, "warmup-engine 1") != 0) {
				ld_fail(&l, "expected 'warmup-engine 1' (not a saved state of this "
				            "version)");
				goto bad;
			}
			continue;
		}
		if (ld_line(&l, tmp, &v, line) < 0)
			goto bad;
	}
	l.lineno++;
	if (!v.ended) {
		ld_fail(&l, l.lineno == 1 ? "empty" : "no 'end' line: the text is cut short");
		goto bad;
	}
	l.lineno = 0;
	if (v.date == 0) {
		ld_fail(&l, "no 'date' line");
		goto bad;
	}
	/* A saved day after tomorrow would stop the new route until the clock
	 * gets there (a clock set back, or a state from another machine). */
	wu_calendar_day(&tmp->conf.calendar, now, &nowday);
	if (v.date > nowday.date + 1) {
		char saved[16], today[16];
		wu_date_format(v.date, saved, sizeof(saved));
		wu_date_format(nowday.date, today, sizeof(today));
		ld_fail(&l, "date: %s is after today (%s)", saved, today);
		goto bad;
	}
	if (v.latest && v.latest < v.date) {
		ld_fail(&l, "latest: %d is before the saved date %d", v.latest, v.date);
		goto bad;
	}
	if (tmp->days.latest > (v.latest ? v.latest : v.date)) {
		ld_fail(&l, "past: a date after the latest one");
		goto bad;
	}
	if (wu_days_find(&tmp->days, v.date)) {
		ld_fail(&l, "past: the saved date %d again", v.date);
		goto bad;
	}
	if (v.gstate > v.tgate) {
		ld_fail(&l, "gate: state %d is worse than today's worst state %d", v.gstate,
		        v.tgate);
		goto bad;
	}

	/* Rebuild the saved day from the configuration, then lay the counters on it. */
	struct wu_day_stats saved = tmp->today;
	wu_calendar_date(&tmp->conf.calendar, v.date, &tmp->day);
	tmp->halted = v.halted;
	tmp->held = v.held;
	/* In calendar mode the step follows from the date, so a start date
	 * changed in the configuration takes effect on the saved day too. */
	if (tmp->conf.advance == WU_ADVANCE_CALENDAR)
		v.step = tmp->day.index < 1            ? 0
		         : tmp->day.index - v.held > 0 ? tmp->day.index - v.held
		                                       : 1;
	setup_day(tmp, v.step, now);
	memcpy(tmp->today.sent, saved.sent, sizeof(saved.sent));
	memcpy(tmp->today.result, saved.result, sizeof(saved.result));
	tmp->today.used = v.used;
	tmp->today.held = v.tday_held;
	tmp->today.stepped_back = v.stepped_back;
	if (v.engaged) {
		/* The saved verdict stands for until_cap_exceeds_traffic (it was
		 * judged on a day before the text does not hold); a policy of a
		 * number of days, or off, is judged again, so a reload that
		 * changes it takes effect today. */
		tmp->today.engaged_first =
		    tmp->conf.engaged.first == WU_ENGAGED_FIRST_UNTIL_CAP
		        ? v.efirst
		        : wu_engaged_applies(&tmp->conf.engaged, tmp->today.step, tmp->today.cap, 1,
		                             0, 0);
		tmp->today.engaged_new = v.enew > v.used ? v.used : v.enew;
		tmp->today.engaged_asks = v.easks;
		tmp->today.turned = v.turned;
		tmp->prev_asks = v.prev_asks;
	}
	if (v.closed) {
		tmp->today.cap = 0;
		tmp->today.closed = 1;
	}
	if (v.latest > tmp->days.latest)
		tmp->days.latest = v.latest;
	tmp->today.gate = (enum wu_gate_state)v.tgate;
	tmp->gate = v.gc;
	tmp->gate_state = (enum wu_gate_state)v.gstate;
	/* A cap changed in the configuration moves the burst: what was left of
	 * the old one carries over, the difference is added (or taken). */
	if (v.burst >= 0)
		v.tokens += tmp->pacing.burst - v.burst;
	tmp->pacing.tokens = v.tokens < 0                   ? 0
	                     : v.tokens < tmp->pacing.burst ? v.tokens
	                                                    : tmp->pacing.burst;
	tmp->pacing.last = v.last;
	tmp->ev_count = tmp->ev_head = 0;
	*e = *tmp;
	free(tmp);
	wu_engine_tick(e, now);
	return 0;
bad:
	free(tmp);
	return -1;
}

int wu_engine_close_today(struct wu_engine *e, wu_time_t now)
{
	wu_engine_tick(e, now);
	if (e->today.cap == WU_UNLIMITED || e->today.used >= e->today.cap)
		return 0;
	e->today.used = e->today.cap;
	return 1;
}

void wu_engine_carry(struct wu_engine *dst, const struct wu_engine *src)
{
	int n = dst->conf.isps.n < src->conf.isps.n ? dst->conf.isps.n : src->conf.isps.n;

	dst->yesterday = src->yesterday;
	memcpy(dst->cut, src->cut, (size_t)n * sizeof(dst->cut[0]));
	/* A cut that raised its event still owes the recovery's; the windows
	 * of permanent failures go on (a new size restarts them). */
	memcpy(dst->cut_on, src->cut_on, (size_t)n * sizeof(dst->cut_on[0]));
	memcpy(dst->permfail, src->permfail, sizeof(dst->permfail));
}

const char *wu_kind_name(enum wu_kind k)
{
	return k == WU_NEW ? "new" : k == WU_OLD ? "old" : "wait";
}

const char *wu_why_name(enum wu_why w)
{
	static const char *names[WU_WHY_COUNT] = {
	    "none",      "not_started", "window", "cap",           "pacing", "share",   "isp_rate",
	    "suspended", "halted",      "paused", "engaged_first", "lease",  "cluster",
	};
	return (unsigned)w < WU_WHY_COUNT ? names[w] : "?";
}

const char *wu_result_name(enum wu_result r)
{
	static const char *names[WU_RESULT_COUNT] = {
	    "accepted", "tempfail", "timeout",  "permfail", "delivered",
	    "bounce",   "blocked",  "deferred", "dropped",  "complaint",
	};
	return (unsigned)r < WU_RESULT_COUNT ? names[r] : "?";
}

const char *wu_event_name(enum wu_event_kind k)
{
	static const char *names[WU_EV_COUNT] = {
	    "day",           "gate_warn",     "gate_halt",   "resume",   "pause",
	    "isp_cut",       "isp_recovered", "permfail_rate", "permfail_ok", "step_back"};
	return (unsigned)k < WU_EV_COUNT ? names[k] : "?";
}

int wu_overflow_parse(const char *s, enum wu_overflow *o, char *err, size_t errlen)
{
	if (strcmp(s, "old") == 0)
		return *o = WU_OVERFLOW_OLD, 0;
	if (strcmp(s, "defer") == 0)
		return *o = WU_OVERFLOW_DEFER, 0;
	if (err && errlen)
		snprintf(err, errlen, "expected old or defer, got '%s'", s);
	return -1;
}

int wu_advance_parse(const char *s, enum wu_advance *a, char *err, size_t errlen)
{
	if (strcmp(s, "calendar") == 0)
		return *a = WU_ADVANCE_CALENDAR, 0;
	if (strcmp(s, "gated") == 0)
		return *a = WU_ADVANCE_GATED, 0;
	if (err && errlen)
		snprintf(err, errlen, "expected calendar or gated, got '%s'", s);
	return -1;
}
