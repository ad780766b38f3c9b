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
#include "engine_priv.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
	c->pace = WU_PACE_ARRIVALS;
	c->answers_for_isp[WU_ROUTE_NEW] = 0;
	c->answers_for_isp[WU_ROUTE_OLD] = 1;
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

struct wu_event *eng_emit(struct wu_engine *e, enum wu_event_kind kind, wu_time_t at,
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

/* Moves the pacing bucket to the release in force at now: each change of
 * rate or burst since the last one is applied at its own time. */
static void pace_advance(struct wu_engine *e, wu_time_t now)
{
	while (e->pace_next <= now) {
		wu_time_t at = e->pace_next > e->pacing.last ? e->pace_next : e->pacing.last;
		double rate, burst;

		wu_pace_at(&e->pace, e->pace_next, &rate, &burst, &e->pace_next);
		wu_bucket_set(&e->pacing, rate, burst, at);
	}
}

void eng_setup_day(struct wu_engine *e, int step, wu_time_t now)
{
	struct wu_schedule_day sd = wu_schedule_get(&e->conf.schedule, step);
	wu_time_t window = e->day.close - e->day.open;
	int64_t recent[WU_PROFILE_HOURS], learned;
	double rate, burst;

	memset(&e->today, 0, sizeof(e->today));
	e->today.date = e->day.date;
	e->today.step = step;
	e->today.cap = step >= 1 ? wu_pacing_daily_cap(sd.cap, sd.hourly_cap, window) : 0;
	e->today.hourly_cap = sd.hourly_cap;
	learned = wu_profile_recent(&e->arrivals, e->day.date, recent);
	wu_pace_plan(&e->pace, e->conf.pace, e->today.cap, sd.hourly_cap, e->day.start, e->day.open,
	             e->day.close, e->conf.burst, recent, learned);
	wu_pace_at(&e->pace, e->day.open, &rate, &burst, &e->pace_next);
	wu_bucket_init(&e->pacing, rate, burst, e->day.open);
	rate = e->pace.rate;
	/* An ISP without a rate of its own backs off from today's mean pacing
	 * rate. */
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
		eng_setup_day(e, kept.step, now);
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
		eng_emit(
		    e, WU_EV_DAY, now, WU_ROUTE_NEW,
		    "the clock is on this date again: day %d of the schedule as it was left, cap "
		    "%" PRId64 ", %" PRId64 " used",
		    e->today.step, e->today.cap, e->today.used);
		return;
	}
	eng_setup_day(e, e->today.step, now);
	e->today.cap = 0;
	e->today.closed = 1;
	eng_emit(e, WU_EV_DAY, now, WU_ROUTE_NEW,
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
	eng_setup_day(e, step, now);
	e->today.held = step >= 1 && step == before;
	e->today.stepped_back = from > 0;
	if (from)
		eng_emit(
		    e, WU_EV_STEP_BACK, now, WU_ROUTE_NEW,
		    "gap: %d quiet days in a row (the new route sent under %g%% of its cap); the "
		    "schedule steps back from day %d to day %d, cap %" PRId64,
		    e->conf.gap.days, e->conf.gap.fill * 100, from, step, e->today.cap);
	eng_emit(e, WU_EV_DAY, now, WU_ROUTE_NEW, "day %d of the schedule, cap %" PRId64 "%s", step,
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
	eng_setup_day(e,
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
	r = wu_engaged_reserve(b->burst, wu_pace_low_rate(&e->pace, now), left);
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
	pace_advance(e, now);
	if (!wu_bucket_ready(&e->pacing, now)) {
		*until = wu_bucket_next(&e->pacing, now);
		if (*until > e->pace_next)
			*until = e->pace_next;
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
	if (e->today.used < e->today.cap) {
		pace_advance(e, now);
		earliest(&t, wu_bucket_next(&e->pacing, now), now);
		earliest(&t, e->pace_next, now);
	}
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
	ev = eng_emit(e, WU_EV_PAUSE, now, route, "%s route paused by %s", wu_route_name(route),
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
	ev = eng_emit(e, WU_EV_RESUME, now, route, "%s route resumed by %s", wu_route_name(route),
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

int wu_engine_held(const struct wu_engine *e)
{
	return e->held;
}

int wu_engine_quiet(const struct wu_engine *e)
{
	return e->gap.quiet;
}

void wu_engine_arrive(struct wu_engine *e, wu_time_t at, int64_t n)
{
	struct wu_day day = e->day;

	/* at may be ahead (a send_at) or behind the engine's day: it counts on
	 * its own date, and the engine's clock does not move. */
	if (n <= 0)
		return;
	if (at < day.start || at >= day.end)
		wu_calendar_day(&e->conf.calendar, at, &day);
	wu_profile_add(&e->arrivals, day.date, (int)((at - day.start) / WU_HOUR), n);
}

int wu_engine_pace_profile(const struct wu_engine *e, double share[WU_PROFILE_HOURS])
{
	return wu_pace_shares(&e->pace, share);
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
	    "day",     "gate_warn",     "gate_halt",     "resume",      "pause",
	    "isp_cut", "isp_recovered", "permfail_rate", "permfail_ok", "step_back"};
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
