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

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pacing.h"

#define EVENTS_MAX 64
#define WHO_MAX    64

struct wu_engine {
	struct wu_core_conf conf;
	struct wu_day day;
	struct wu_day_stats today, yesterday;
	int held;   /* days the schedule did not advance */
	int halted; /* the gate stopped the new route */
	int paused[WU_ROUTE_COUNT];
	char paused_by[WU_ROUTE_COUNT][WHO_MAX];
	struct wu_gate_counts gate;    /* new-route outcomes since the day began or a resume */
	enum wu_gate_state gate_state; /* verdict on gate */
	struct wu_bucket pacing;
	int64_t share[WU_ISP_MAX]; /* today's new-route limit per ISP */
	struct wu_throttle th[WU_ROUTE_COUNT][WU_ISP_MAX];
	struct wu_event events[EVENTS_MAX];
	int ev_head, ev_count;
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
	return wu_isp_table_init(&c->isps);
}

void wu_core_conf_free(struct wu_core_conf *c)
{
	wu_schedule_free(&c->schedule);
	wu_isp_table_free(&c->isps);
}

/* Queues an event, dropping the oldest when the queue is full. */
static void emit(struct wu_engine *e, enum wu_event_kind kind, wu_time_t at, enum wu_route route,
                 const char *fmt, ...)
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

int wu_engine_tick(struct wu_engine *e, wu_time_t now)
{
	struct wu_day nd;
	int step, before;

	if (now < e->day.end)
		return 0;
	wu_calendar_day(&e->conf.calendar, now, &nd);
	before = e->today.step;
	step = next_step(e, &nd);
	e->yesterday = e->today;
	if (e->halted && e->conf.gate.resume == WU_RESUME_NEXT_DAY)
		e->halted = 0;
	e->day = nd;
	setup_day(e, step, now);
	e->today.held = step >= 1 && step == before;
	emit(e, WU_EV_DAY, now, WU_ROUTE_NEW, "day %d of the schedule, cap %" PRId64 "%s", step,
	     e->today.cap,
	     e->halted       ? " (halted)"
	     : e->today.held ? " (held)"
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

void wu_engine_free(struct wu_engine *e)
{
	if (!e)
		return;
	wu_core_conf_free(&e->conf);
	free(e);
}

/* Why the new route cannot take a message for isp at now (WU_WHY_NONE when
 * it can), and when to ask again. */
static enum wu_why new_blocked(struct wu_engine *e, wu_time_t now, int isp, wu_time_t *until)
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
	return WU_WHY_NONE;
}

struct wu_decision wu_engine_route(struct wu_engine *e, wu_time_t now, int isp)
{
	struct wu_decision d = {WU_WAIT, WU_WHY_NONE, 0, 0};
	struct wu_throttle *old;
	wu_time_t until;

	wu_engine_tick(e, now);
	if (isp < 0 || isp >= e->conf.isps.n)
		isp = WU_ISP_OTHER;
	d.date = e->today.date;
	d.why = new_blocked(e, now, isp, &until);
	if (d.why == WU_WHY_NONE) {
		wu_bucket_take(&e->pacing);
		wu_throttle_take(&e->th[WU_ROUTE_NEW][isp]);
		e->today.used++;
		e->today.sent[WU_ROUTE_NEW][isp]++;
		d.kind = WU_NEW;
		return d;
	}
	if (until < now)
		until = now;
	d.until = until;
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

/* Re-judges today's new-route health and acts on a change. */
static void judge(struct wu_engine *e, wu_time_t now)
{
	struct wu_gate_verdict v;

	wu_gate_eval(&e->conf.gate, &e->gate, &v);
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
		}
	}
	*sent = *sent > n ? *sent - n : 0;
}

void wu_engine_outcome(struct wu_engine *e, wu_time_t now, enum wu_route route, int isp,
                       enum wu_result result, int sent_date)
{
	wu_engine_outcomes(e, now, route, isp, result, sent_date, 1, 1);
}

void wu_engine_outcomes(struct wu_engine *e, wu_time_t now, enum wu_route route, int isp,
                        enum wu_result result, int sent_date, int64_t n, int feedback)
{
	const struct wu_throttle_conf *tc;
	struct wu_throttle *th;
	int64_t sample;

	wu_engine_tick(e, now);
	if (isp < 0 || isp >= e->conf.isps.n)
		isp = WU_ISP_OTHER;
	if ((unsigned)route >= WU_ROUTE_COUNT || (unsigned)result >= WU_RESULT_COUNT || n <= 0)
		return;
	th = &e->th[route][isp];
	tc = &e->conf.throttle[route][isp];
	e->today.result[route][isp][result] += n;
	/* The ISP's throttle hears one answer, however many units it covered. */
	switch (result) {
	case WU_ACCEPTED:
		if (feedback)
			wu_throttle_success(th, tc, &e->conf.backoff, now);
		break;
	case WU_TEMPFAIL:
		if (feedback)
			wu_throttle_tempfail(th, tc, &e->conf.backoff, now);
		if (sent_date == e->today.date)
			give_back(e, route, isp, n);
		break;
	case WU_PERMFAIL: /* refused for good, but not taken either */
		if (sent_date == e->today.date)
			give_back(e, route, isp, n);
		break;
	case WU_TIMEOUT:
	case WU_BLOCKED:
		if (feedback)
			wu_throttle_tempfail(th, tc, &e->conf.backoff, now);
		break;
	case WU_DELIVERED:
	case WU_BOUNCE:
	case WU_COMPLAINT:
		if (route != WU_ROUTE_NEW)
			break;
		sample = e->gate.delivered + e->gate.bounces;
		e->gate.delivered += result == WU_DELIVERED ? n : 0;
		e->gate.bounces += result == WU_BOUNCE ? n : 0;
		e->gate.complaints += result == WU_COMPLAINT ? n : 0;
		/* A delivery only lowers the rates, so it can change the verdict
		 * only by completing the minimum sample. */
		if (result != WU_DELIVERED ||
		    (sample < e->conf.gate.min_sample && sample + n >= e->conf.gate.min_sample) ||
		    (e->gate.delivered - n < e->conf.gate.min_sample &&
		     e->gate.delivered >= e->conf.gate.min_sample))
			judge(e, now);
		break;
	default:
		break;
	}
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
	if ((unsigned)route >= WU_ROUTE_COUNT || e->paused[route])
		return;
	e->paused[route] = 1;
	snprintf(e->paused_by[route], WHO_MAX, "%s", who ? who : "unknown");
	emit(e, WU_EV_PAUSE, now, route, "%s route paused by %s", wu_route_name(route),
	     e->paused_by[route]);
}

void wu_engine_resume(struct wu_engine *e, wu_time_t now, enum wu_route route, const char *who)
{
	if ((unsigned)route >= WU_ROUTE_COUNT)
		return;
	if (!e->paused[route] && !(route == WU_ROUTE_NEW && e->halted))
		return;
	e->paused[route] = 0;
	e->paused_by[route][0] = '\0';
	if (route == WU_ROUTE_NEW) {
		/* The gate judges afresh from here; the day's totals stay. */
		e->halted = 0;
		memset(&e->gate, 0, sizeof(e->gate));
		e->gate_state = WU_GATE_OK;
	}
	emit(e, WU_EV_RESUME, now, route, "%s route resumed by %s", wu_route_name(route),
	     who ? who : "unknown");
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
	wu_gate_eval(&e->conf.gate, &e->gate, v);
}

int wu_engine_held(const struct wu_engine *e)
{
	return e->held;
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

/* Appends to buf; returns -1 once it no longer fits. */
static int put(char *buf, size_t len, size_t *off, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int put(char *buf, size_t len, size_t *off, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (*off >= len)
		return -1;
	va_start(ap, fmt);
	n = vsnprintf(buf + *off, len - *off, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= len - *off)
		return -1;
	*off += (size_t)n;
	return 0;
}

int wu_engine_save(const struct wu_engine *e, char *buf, size_t len)
{
	const struct wu_day_stats *t = &e->today;
	size_t off = 0;
	int bad = 0;

	bad |= put(buf, len, &off,
	           "warmup-engine 1\ndate %d\nstep %d\nheld %d %d\nhalted %d\nused %" PRId64
	           "\ngate %d %d %" PRId64 " %" PRId64 " %" PRId64 "\npacing %.17g %" PRId64
	           " %.17g\n",
	           t->date, t->step, e->held, t->held, e->halted, t->used, (int)t->gate,
	           (int)e->gate_state, e->gate.delivered, e->gate.bounces, e->gate.complaints,
	           e->pacing.tokens, e->pacing.last, e->pacing.burst);
	for (int r = 0; r < WU_ROUTE_COUNT; r++) {
		if (e->paused[r])
			bad |= put(buf, len, &off, "paused %d %s\n", r, e->paused_by[r]);
		for (int i = 0; i < e->conf.isps.n; i++) {
			const struct wu_throttle *th = &e->th[r][i];
			if (t->sent[r][i])
				bad |= put(buf, len, &off, "sent %d %d %" PRId64 "\n", r, i,
				           t->sent[r][i]);
			for (int k = 0; k < WU_RESULT_COUNT; k++)
				if (t->result[r][i][k])
					bad |= put(buf, len, &off, "result %d %d %d %" PRId64 "\n",
					           r, i, k, t->result[r][i][k]);
			if (th->factor != 1 || th->fails || th->suspended_until || th->hold_until ||
			    th->bucket.tokens < th->bucket.burst)
				bad |= put(buf, len, &off,
				           "throttle %d %d %.17g %d %" PRId64 " %" PRId64
				           " %.17g %" PRId64 "\n",
				           r, i, th->factor, th->fails, th->suspended_until,
				           th->hold_until, th->bucket.tokens, th->bucket.last);
		}
	}
	bad |= put(buf, len, &off, "end\n");
	return bad ? -1 : (int)off;
}

int wu_engine_load(struct wu_engine *e, const char *buf, wu_time_t now, char *err, size_t errlen)
{
	int version = 0, date = 0, step = 0, held = 0, tday_held = 0, halted = 0, lineno = 0;
	int tgate = 0, gstate = 0, ended = 0;
	int64_t used = 0;
	struct wu_gate_counts gc = {0, 0, 0};
	double tokens = 0, burst = -1;
	int64_t last = 0;
	const char *p = buf;
	char line[256];
	struct wu_engine tmp;

	/* Parse into a copy so that a bad text leaves e as it was. */
	tmp = *e;
	memset(tmp.paused, 0, sizeof(tmp.paused));
	if (sscanf(p, "warmup-engine %d", &version) != 1 || version != 1)
		goto bad;
	memset(&tmp.today, 0, sizeof(tmp.today));
	while (*p) {
		size_t n = strcspn(p, "\n");
		int r, i, k, f, nf = 0;
		int64_t v, a, b, c;
		double x, y;

		lineno++;
		if (n >= sizeof(line))
			goto bad;
		memcpy(line, p, n);
		line[n] = '\0';
		p += n + (p[n] == '\n');
		if (lineno == 1)
			continue;
		if (sscanf(line, "date %d", &date) == 1 || sscanf(line, "step %d", &step) == 1 ||
		    sscanf(line, "held %d %d", &held, &tday_held) == 2 ||
		    sscanf(line, "halted %d", &halted) == 1 ||
		    sscanf(line, "used %" SCNd64, &used) == 1)
			continue;
		if (sscanf(line, "gate %d %d %" SCNd64 " %" SCNd64 " %" SCNd64, &tgate, &gstate,
		           &gc.delivered, &gc.bounces, &gc.complaints) == 5)
			continue;
		if (sscanf(line, "pacing %lf %" SCNd64 " %lf", &tokens, &last, &burst) >= 2)
			continue;
		if (sscanf(line, "paused %d %n", &r, &nf) == 1 && nf > 0 &&
		    (unsigned)r < WU_ROUTE_COUNT) {
			tmp.paused[r] = 1;
			snprintf(tmp.paused_by[r], WHO_MAX, "%s", line + nf);
			continue;
		}
		if (sscanf(line, "sent %d %d %" SCNd64, &r, &i, &v) == 3 &&
		    (unsigned)r < WU_ROUTE_COUNT && i >= 0 && i < tmp.conf.isps.n) {
			tmp.today.sent[r][i] = v;
			continue;
		}
		if (sscanf(line, "result %d %d %d %" SCNd64, &r, &i, &k, &v) == 4 &&
		    (unsigned)r < WU_ROUTE_COUNT && i >= 0 && i < tmp.conf.isps.n &&
		    (unsigned)k < WU_RESULT_COUNT) {
			tmp.today.result[r][i][k] = v;
			continue;
		}
		if (sscanf(line, "throttle %d %d %lf %d %" SCNd64 " %" SCNd64 " %lf %" SCNd64, &r,
		           &i, &x, &f, &a, &b, &y, &c) == 8 &&
		    (unsigned)r < WU_ROUTE_COUNT && i >= 0 && i < tmp.conf.isps.n) {
			struct wu_throttle *th = &tmp.th[r][i];
			th->factor = x;
			th->fails = f;
			th->suspended_until = a;
			th->hold_until = b;
			wu_throttle_apply(th, &tmp.conf.throttle[r][i], c);
			th->bucket.tokens = y < th->bucket.burst ? y : th->bucket.burst;
			th->bucket.last = c;
			continue;
		}
		if (strcmp(line, "end") == 0) {
			ended = 1;
			break;
		}
		if (line[0])
			goto bad;
	}
	if (!ended || date == 0)
		goto bad;

	/* Rebuild the saved day from the configuration, then lay the counters on it. */
	struct wu_day_stats saved = tmp.today;
	wu_calendar_date(&tmp.conf.calendar, date, &tmp.day);
	tmp.halted = halted;
	tmp.held = held;
	/* In calendar mode the step follows from the date, so a start date
	 * changed in the configuration takes effect on the saved day too. */
	if (tmp.conf.advance == WU_ADVANCE_CALENDAR)
		step = tmp.day.index < 1 ? 0 : tmp.day.index - held > 0 ? tmp.day.index - held : 1;
	setup_day(&tmp, step, now);
	memcpy(tmp.today.sent, saved.sent, sizeof(saved.sent));
	memcpy(tmp.today.result, saved.result, sizeof(saved.result));
	tmp.today.used = used;
	tmp.today.held = tday_held;
	tmp.today.gate = (enum wu_gate_state)tgate;
	tmp.gate = gc;
	tmp.gate_state = (enum wu_gate_state)gstate;
	/* A cap changed in the configuration moves the burst: what was left of
	 * the old one carries over, the difference is added (or taken). */
	if (burst >= 0)
		tokens += tmp.pacing.burst - burst;
	tmp.pacing.tokens = tokens < 0 ? 0 : tokens < tmp.pacing.burst ? tokens : tmp.pacing.burst;
	tmp.pacing.last = last;
	tmp.ev_count = tmp.ev_head = 0;
	*e = tmp;
	wu_engine_tick(e, now);
	return 0;
bad:
	if (err && errlen)
		snprintf(err, errlen, "saved engine state is not readable (line %d)", lineno + 1);
	return -1;
}

const char *wu_kind_name(enum wu_kind k)
{
	return k == WU_NEW ? "new" : k == WU_OLD ? "old" : "wait";
}

const char *wu_why_name(enum wu_why w)
{
	static const char *names[WU_WHY_COUNT] = {
	    "none",  "not_started", "window",    "cap",    "pacing",
	    "share", "isp_rate",    "suspended", "halted", "paused",
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
	static const char *names[WU_EV_COUNT] = {"day", "gate_warn", "gate_halt", "resume",
	                                         "pause"};
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
