/*
 * engine_report.c -- what happened, heard by the engine: every send
 * attempt's answer and every provider event comes in through
 * wu_engine_report(), which counts it, feeds the gate, applies the deferral
 * rules and the per-ISP backoff and recovery, watches the permanent
 * failures, and returns the verdict (when to retry, whether to pause).
 */
#include "engine_priv.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

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
		eng_emit(e, WU_EV_GATE_HALT, now, WU_ROUTE_NEW, "gate halt: %s; new route paused",
		         v.reason);
	} else {
		eng_emit(e, WU_EV_GATE_WARN, now, WU_ROUTE_NEW, "gate warning: %s", v.reason);
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
			wu_ledger_give_back(e->ledger, e->today.date, 1, isp);
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
		wu_throttle_cut(&e->th[WU_ROUTE_NEW][r->isp],
		                &e->conf.throttle[WU_ROUTE_NEW][r->isp], &e->conf.backoff,
		                rule->cut, rule->hold, now);
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
	ev =
	    eng_emit(e, WU_EV_ISP_CUT, now, WU_ROUTE_NEW, "%s cut to %.0f%% of its rate by rule %s",
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
	ev = eng_emit(e, WU_EV_ISP_RECOVERED, now, WU_ROUTE_NEW,
	              "%s back to its full rate after rule %s", e->conf.isps.names[isp],
	              e->cut[isp].rule);
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
		ev = eng_emit(
		    e, WU_EV_PERMFAIL_RATE, now, route,
		    "%s route: %.1f%% of the last %d sends refused for good (above %.1f%%)",
		    wu_route_name(route), rate * 100, e->permfail[route].n, c->rate * 100);
		ev->value = rate;
		break;
	case WU_LEVEL_CLEAR:
		ev = eng_emit(
		    e, WU_EV_PERMFAIL_OK, now, route,
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
	struct wu_verdict v = {.action = WU_ACT_NONE};
	struct wu_report rep = *r;
	const struct wu_throttle_conf *tc;
	struct wu_throttle *th;
	int isp_scope = r->scope == WU_SCOPE_ISP ||
	                (r->scope == WU_SCOPE_ROUTE && (unsigned)r->route < WU_ROUTE_COUNT &&
	                 e->conf.answers_for_isp[r->route]);
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
	v.count_date = e->today.date;
	v.count = (int)rep.result;
	v.count_n = rep.n;
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
