/*
 * NAME
 *	status.c -- the daemon's state for people (JSON) and for Prometheus.
 *
 * SYNOPSIS
 *	char *body = status_json(engine, store, conf, &extra, now);
 *	char *text = status_metrics(engine, store, conf, &extra, now);
 *	...
 *	free(body);
 *	free(text);
 *
 * DESCRIPTION
 *	Both views are read from the same snapshot: today's counters from the
 *	engine (which are what the cap and the gate act on, and which survive a
 *	restart through wu_engine_save), the queue depth from the store, and the
 *	counters the daemon keeps in memory.  Nothing here changes the engine
 *	or the store, so a status request can never move the day or a unit.
 *
 *	A route is shown by its type and its URL with any user name, password,
 *	query and fragment cut off; the intake token and route secrets are
 *	never read at all.
 *
 * DIAGNOSTICS
 *	NULL when memory runs out.  A store that cannot be read is not an
 *	error: the queue figures are null in the JSON ("store_error" says why)
 *	and absent from the metrics, so a monitoring scrape still sees the rest.
 */
#include "status.h"

#include <cJSON.h>

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "core/engine.h"
#include "sender/strbuf.h"
#include "store.h"
#include "suppress.h"
#include "webhook.h"

/* Everything both views show, read once. */
struct snap {
	const struct wu_engine *e;
	const struct wu_day_stats *t;
	const struct wu_core_conf *core;
	const struct wu_conf *conf;
	const struct status_extra *x;
	struct wu_gate_verdict gate;
	int nisp;
	int paused[WU_ROUTE_COUNT];
	int have_depth;             /* store_depth and store_depth_isps answered */
	int64_t depth[4];           /* by enum store_state */
	int64_t queued[WU_ISP_MAX]; /* QUEUED units per ISP */
	int64_t v3only, v3only_oldest; /* queued units waiting for the v3 route, oldest created */
	const char *store_error;
	int64_t unsub[WU_ROUTE_COUNT][WU_ISP_MAX]; /* today's unsubscribes (store counters) */
	int nhours;                                    /* of today: 23, 24 or 25 */
	int have_hours;                                /* store_sent_hours answered */
	int64_t hours[WU_ROUTE_COUNT][STATUS_HOURS_MAX]; /* today's sent units by hour */
};

static const char *const state_names[4] = {"queued", "inflight", "sent", "failed"};

/* store_counters callback: picks today's unsubscribes out of the counters;
 * they are no engine outcome, so only the store has them. */
static void unsub_row(void *arg, int route, int isp, int result, int64_t v)
{
	struct snap *n = arg;

	if (result == WU_COUNT_UNSUBSCRIBE && route >= 0 && route < WU_ROUTE_COUNT &&
	    isp >= 0 && isp < WU_ISP_MAX)
		n->unsub[route][isp] += v;
}

/* Reads the engine, the store and the extras into one snapshot. */
static void snap_take(struct snap *n, const struct wu_engine *e, struct store *s,
                      const struct wu_conf *c, const struct status_extra *x)
{
	memset(n, 0, sizeof(*n));
	n->e = e;
	n->t = wu_engine_today(e);
	n->core = wu_engine_conf(e);
	n->conf = c;
	n->x = x;
	wu_engine_gate(e, &n->gate);
	n->nisp = n->core->isps.n < WU_ISP_MAX ? n->core->isps.n : WU_ISP_MAX;
	for (int r = 0; r < WU_ROUTE_COUNT; r++)
		n->paused[r] = wu_engine_paused(e, (enum wu_route)r);
	if (!s) {
		n->store_error = "no store";
		return;
	}
	if (store_depth(s, n->depth) < 0 || store_depth_isps(s, n->nisp, n->queued) < 0 ||
	    store_v3only_waiting(s, &n->v3only, &n->v3only_oldest) < 0) {
		n->store_error = store_errmsg(s);
		if (!n->store_error)
			n->store_error = "store unreadable";
		return;
	}
	n->have_depth = 1;
	if (store_counters(s, n->t->date, unsub_row, n) < 0)
		memset(n->unsub, 0, sizeof(n->unsub));
	n->have_hours = status_hours(e, s, n->hours, &n->nhours) == 0;
}

int status_hours(const struct wu_engine *e, struct store *s,
                 int64_t hours[WU_ROUTE_COUNT][STATUS_HOURS_MAX], int *nhours)
{
	const wu_time_t hour = (wu_time_t)3600 * WU_USEC;
	struct wu_day day;
	int64_t flat[WU_ROUTE_COUNT * STATUS_HOURS_MAX];
	int nh;

	wu_calendar_date(&wu_engine_conf(e)->calendar, wu_engine_today(e)->date, &day);
	nh = (int)((day.end - day.start + hour - 1) / hour);
	if (nh < 1 || nh > STATUS_HOURS_MAX)
		nh = 24;
	*nhours = nh;
	memset(hours, 0, sizeof(int64_t) * WU_ROUTE_COUNT * STATUS_HOURS_MAX);
	if (!s || store_sent_hours(s, day.start, day.end, hour, WU_ROUTE_COUNT, nh, flat) < 0)
		return -1;
	for (int r = 0; r < WU_ROUTE_COUNT; r++)
		for (int h = 0; h < nh; h++)
			hours[r][h] = flat[r * nh + h];
	return 0;
}

/* Sum of one result over every ISP of a route. */
static int64_t route_result(const struct snap *n, int r, enum wu_result res)
{
	int64_t sum = 0;

	for (int i = 0; i < n->nisp; i++)
		sum += n->t->result[r][i][res];
	return sum;
}

/* Messages a route sent today over every ISP. */
static int64_t route_sent(const struct snap *n, int r)
{
	int64_t sum = 0;

	for (int i = 0; i < n->nisp; i++)
		sum += n->t->sent[r][i];
	return sum;
}

/* 1 when an ISP has anything to show today: a send, an outcome or a queue. */
static int isp_active(const struct snap *n, int i)
{
	if (n->have_depth && n->queued[i] > 0)
		return 1;
	for (int r = 0; r < WU_ROUTE_COUNT; r++) {
		if (n->t->sent[r][i])
			return 1;
		for (int k = 0; k < WU_RESULT_COUNT; k++)
			if (n->t->result[r][i][k])
				return 1;
	}
	return 0;
}

/* A route URL fit to show: scheme, host, port and path, but no user
 * information (smtp://user:password@host), query or fragment, which is
 * where credentials hide when someone writes them into a URL. */
static void url_public(const char *in, char *out, size_t len)
{
	const char *p = strstr(in, "://"), *host, *end, *at;
	size_t n;

	if (!len)
		return;
	out[0] = '\0';
	if (!p) {
		/* Not a URL we understand: show nothing rather than guess. */
		return;
	}
	host = p + 3;
	end = host + strcspn(host, "/?#");
	at = NULL;
	for (const char *q = host; q < end; q++)
		if (*q == '@')
			at = q;
	n = (size_t)(host - in);
	snprintf(out, len, "%.*s", (int)n, in);
	if (at)
		host = at + 1;
	n = strcspn(host, "?#");
	snprintf(out + strlen(out), len - strlen(out), "%.*s", (int)n, host);
}

/* ISO 8601 local time with the zone offset: 2026-12-03T00:00:00+09:00. */
static void iso_local(wu_time_t t, char *buf, size_t len)
{
	time_t secs = (time_t)(t / WU_USEC);
	struct tm tm;
	char z[8];
	size_t n;

	if (t % WU_USEC < 0)
		secs--;
	if (!localtime_r(&secs, &tm) || !(n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm))) {
		snprintf(buf, len, "?");
		return;
	}
	/* strftime gives +0900; RFC 3339 wants +09:00. */
	if (strftime(z, sizeof(z), "%z", &tm) == 5)
		snprintf(buf + n, len - n, "%.3s:%.2s", z, z + 3);
}

/* The config's word for a route type. */
static const char *route_type_name(enum snd_type t)
{
	return t == SND_TYPE_SENDGRID ? "sendgrid" : t == SND_TYPE_SMTP ? "smtp" : "none";
}

/* ---- JSON --------------------------------------------------------------- */

/* cJSON builders that remember a failed allocation instead of checking each. */
struct jb {
	int bad;
};

/* A child object; j_num, j_str, j_bool, j_null and j_limit add members. */
static cJSON *j_obj(struct jb *b, cJSON *parent, const char *key)
{
	cJSON *o = cJSON_AddObjectToObject(parent, key);

	if (!o)
		b->bad = 1;
	return o;
}

/* A number member. */
static void j_num(struct jb *b, cJSON *o, const char *key, double v)
{
	if (!o || !cJSON_AddNumberToObject(o, key, v))
		b->bad = 1;
}

/* A count, or null when it has no limit. */
static void j_limit(struct jb *b, cJSON *o, const char *key, int64_t v)
{
	if (!o || !(v == WU_UNLIMITED ? cJSON_AddNullToObject(o, key)
	                              : cJSON_AddNumberToObject(o, key, (double)v)))
		b->bad = 1;
}

/* A string member. */
static void j_str(struct jb *b, cJSON *o, const char *key, const char *v)
{
	if (!o || !cJSON_AddStringToObject(o, key, v))
		b->bad = 1;
}

/* A true/false member. */
static void j_bool(struct jb *b, cJSON *o, const char *key, int v)
{
	if (!o || !cJSON_AddBoolToObject(o, key, v))
		b->bad = 1;
}

/* A null member: a figure the daemon could not read. */
static void j_null(struct jb *b, cJSON *o, const char *key)
{
	if (!o || !cJSON_AddNullToObject(o, key))
		b->bad = 1;
}

/* "routes": what each route did today, how it is configured, whether it runs. */
static void json_routes(struct jb *b, cJSON *root, const struct snap *n)
{
	cJSON *routes = j_obj(b, root, "routes");
	char url[512];

	for (int r = 0; r < WU_ROUTE_COUNT && routes; r++) {
		cJSON *o = j_obj(b, routes, wu_route_name((enum wu_route)r));

		j_bool(b, o, "paused", n->paused[r]);
		if (n->conf) {
			const struct snd_route_conf *rc = &n->conf->route[r];

			url_public(rc->url, url, sizeof(url));
			j_str(b, o, "type", route_type_name(rc->type));
			j_str(b, o, "url", url);
		}
		j_num(b, o, "sent", (double)route_sent(n, r));
		for (int k = 0; k < WU_RESULT_COUNT; k++)
			j_num(b, o, wu_result_name((enum wu_result)k),
			      (double)route_result(n, r, (enum wu_result)k));
		{
			int64_t u = 0;

			for (int i = 0; i < n->nisp; i++)
				u += n->unsub[r][i];
			j_num(b, o, "unsubscribe", (double)u);
		}
		if (n->x)
			j_num(b, o, "inflight", (double)n->x->inflight[r]);
		else
			j_null(b, o, "inflight");
	}
}

/* "isps": where each active ISP's mail went today, and what waits for it. */
static void json_isps(struct jb *b, cJSON *root, const struct snap *n)
{
	cJSON *isps = j_obj(b, root, "isps");

	for (int i = 0; i < n->nisp && isps; i++) {
		cJSON *o;

		if (!isp_active(n, i))
			continue;
		o = j_obj(b, isps, n->core->isps.names[i]);
		for (int r = 0; r < WU_ROUTE_COUNT && o; r++) {
			cJSON *ro = j_obj(b, o, wu_route_name((enum wu_route)r));

			j_num(b, ro, "sent", (double)n->t->sent[r][i]);
			j_num(b, ro, "accepted", (double)n->t->result[r][i][WU_ACCEPTED]);
			j_num(b, ro, "tempfail", (double)n->t->result[r][i][WU_TEMPFAIL]);
			j_num(b, ro, "permfail", (double)n->t->result[r][i][WU_PERMFAIL]);
			/* Shares limit only the new route; the old one takes the rest. */
			j_limit(b, ro, "share_limit",
			        r == WU_ROUTE_NEW
			            ? wu_throttle_share_limit(&n->core->throttle[WU_ROUTE_NEW][i],
			                                      n->t->cap)
			            : WU_UNLIMITED);
		}
		if (n->have_depth)
			j_num(b, o, "queued", (double)n->queued[i]);
		else
			j_null(b, o, "queued");
	}
}

/* How many of the store's events "recent_events" shows. */
#define RECENT_EVENTS 10

/* One stored event as a JSON object of the "recent_events" array. */
static void event_row(void *arg, const struct store_event *e)
{
	cJSON *a = arg, *o = cJSON_CreateObject();
	char buf[64];

	if (!o)
		return;
	iso_local(e->at, buf, sizeof(buf));
	cJSON_AddStringToObject(o, "time", buf);
	cJSON_AddStringToObject(o, "kind", e->kind ? e->kind : "");
	if (e->route)
		cJSON_AddStringToObject(o, "route", e->route);
	else
		cJSON_AddNullToObject(o, "route");
	cJSON_AddStringToObject(o, "text", e->text ? e->text : "");
	cJSON_AddItemToArray(a, o);
}

/* "suppressions" (list size, what intake dropped or refused), "alerts" and
 * "recent_events": the operations side of the daemon. */
static void json_ops(struct jb *b, cJSON *root, struct store *s, const struct status_extra *x)
{
	cJSON *o = j_obj(b, root, "suppressions"), *by;
	int64_t total = 0, entries;

	if (s && store_suppress_count(s, NULL, &entries) == 0)
		j_num(b, o, "entries", (double)entries);
	else
		j_null(b, o, "entries");
	by = j_obj(b, o, "dropped_by_reason");
	for (int r = 0; r < SUPP_REASON_COUNT; r++) {
		j_num(b, by, suppress_reason_name(r), (double)x->supp_dropped[r]);
		total += x->supp_dropped[r];
	}
	j_num(b, o, "dropped", (double)total);
	j_num(b, o, "dropped_personalizations", (double)x->supp_dropped_pers);
	j_num(b, o, "rejected", (double)x->supp_rejected);

	o = j_obj(b, root, "alerts");
	j_num(b, o, "sent", (double)x->alerts_sent);
	j_num(b, o, "failed", (double)x->alerts_failed);
	j_num(b, o, "dropped", (double)x->alerts_dropped);

	if (!(o = cJSON_AddArrayToObject(root, "recent_events"))) {
		b->bad = 1;
		return;
	}
	if (s)
		store_events_recent(s, RECENT_EVENTS, event_row, o);
}

/* "webhook": what became of Event Webhook events, and the deferral-rule
 * cuts per ISP (active ones, and past ones with their hit counts). */
static void json_webhook(struct jb *b, cJSON *root, const struct snap *n,
                         const struct status_extra *x, wu_time_t now)
{
	cJSON *o = j_obj(b, root, "webhook"), *cuts;
	char buf[64];

	j_num(b, o, "received", (double)x->webhook_events);
	j_num(b, o, "applied", (double)x->wh_applied);
	j_num(b, o, "duplicate", (double)x->wh_duplicate);
	j_num(b, o, "unattributed", (double)x->wh_unattributed);
	j_num(b, o, "malformed", (double)x->wh_malformed);
	j_num(b, o, "ignored", (double)x->wh_ignored);
	j_num(b, o, "refused_batches", (double)x->wh_refused);
	j_num(b, o, "bad_batches", (double)x->wh_bad_batches);
	cuts = j_obj(b, o, "cuts");
	for (int i = 0; i < n->nisp && cuts; i++) {
		struct wu_cut cs, *c = &cs;
		cJSON *co;

		if (!wu_engine_cut_state(n->e, i, &cs))
			continue;
		co = j_obj(b, cuts, n->core->isps.names[i]);
		j_bool(b, co, "active", c->effective && (c->until > now || c->factor < 1));
		j_num(b, co, "factor", c->factor);
		j_num(b, co, "cut", c->cut);
		iso_local(c->until, buf, sizeof(buf));
		j_str(b, co, "until", buf);
		j_str(b, co, "rule", c->rule);
		j_bool(b, co, "effective", c->effective);
		j_num(b, co, "hits", (double)c->hits);
	}
}

/* GET /v1/status: see status.h and README.md (Status, metrics). */
/* The last reload: null before the first; applied and refused counts. */
static void json_reload(struct jb *b, cJSON *root, const struct status_extra *x)
{
	char buf[64];
	cJSON *o;

	if (!x->reload_at) {
		j_null(b, root, "reload");
		return;
	}
	o = j_obj(b, root, "reload");
	iso_local(x->reload_at, buf, sizeof(buf));
	j_str(b, o, "time", buf);
	j_bool(b, o, "ok", x->reload_ok);
	j_str(b, o, "message", x->reload_message);
	j_num(b, o, "applied", (double)x->reloads);
	j_num(b, o, "refused", (double)x->reloads_refused);
}

char *status_json(const struct wu_engine *e, struct store *s, const struct wu_conf *c,
                  const struct status_extra *x, wu_time_t now)
{
	struct jb b = {0};
	struct snap n;
	struct wu_day day;
	cJSON *root, *o;
	char buf[64];
	char *out = NULL;

	if (!e)
		return NULL;
	snap_take(&n, e, s, c, x);
	if (!(root = cJSON_CreateObject()))
		return NULL;

	wu_date_format(n.t->date, buf, sizeof(buf));
	j_str(&b, root, "date", buf);
	iso_local(now, buf, sizeof(buf));
	j_str(&b, root, "time", buf);
	j_num(&b, root, "day", n.t->step);
	j_num(&b, root, "held_days", wu_engine_held(e));
	j_limit(&b, root, "cap", n.t->cap);
	j_limit(&b, root, "hourly_cap", n.t->hourly_cap > 0 ? n.t->hourly_cap : WU_UNLIMITED);
	j_num(&b, root, "used", (double)n.t->used);
	j_limit(&b, root, "remaining",
	        n.t->cap == WU_UNLIMITED ? WU_UNLIMITED
	                                 : (n.t->cap > n.t->used ? n.t->cap - n.t->used : 0));

	wu_calendar_date(&n.core->calendar, n.t->date, &day);
	o = j_obj(&b, root, "window");
	iso_local(day.open, buf, sizeof(buf));
	j_str(&b, o, "open", buf);
	iso_local(day.close, buf, sizeof(buf));
	j_str(&b, o, "close", buf);

	/* How the cap is released (pacing.h): along the recent arrivals or
	 * evenly, the bucket now, and the share each hour of the day gets. */
	{
		double rate, burst, share[WU_PROFILE_HOURS];
		int shaped = wu_engine_pace_profile(e, share);
		cJSON *hours;

		wu_engine_pacing(e, &rate, &burst);
		o = j_obj(&b, root, "pacing");
		j_str(&b, o, "pace", n.core->pace == WU_PACE_EVEN ? "even" : "arrivals");
		j_bool(&b, o, "shaped", shaped);
		j_num(&b, o, "rate_per_hour", rate * 3600);
		j_num(&b, o, "burst", burst);
		if (o && shaped) {
			if (!(hours = cJSON_AddArrayToObject(o, "hours")))
				b.bad = 1;
			for (int h = 0; hours && h < WU_PROFILE_HOURS; h++)
				if (!cJSON_AddItemToArray(hours, cJSON_CreateNumber(share[h])))
					b.bad = 1;
		}
	}

	/* Engaged recipients first (engaged.h): the policy, whether it
	 * applies today and holds the reserve now, and who went new today. */
	o = j_obj(&b, root, "engaged");
	j_str(&b, o, "first", wu_engaged_first_name(n.core->engaged.first));
	j_num(&b, o, "age_days", (double)(n.core->engaged.age / WU_DAY));
	j_bool(&b, o, "applies", n.t->engaged_first);
	j_bool(&b, o, "active", wu_engine_engaged_first(e));
	j_num(&b, o, "new", (double)n.t->engaged_new);
	j_num(&b, o, "other_new",
	      (double)(n.t->used > n.t->engaged_new ? n.t->used - n.t->engaged_new : 0));
	if (x)
		j_num(&b, o, "noted", (double)x->engaged_noted);
	/* A gap steps the ramp back (gap.h). */
	o = j_obj(&b, root, "gap");
	j_num(&b, o, "days", n.core->gap.days);
	j_num(&b, o, "fill", n.core->gap.fill);
	j_num(&b, o, "back", n.core->gap.back);
	j_num(&b, o, "quiet", wu_engine_quiet(e));
	j_bool(&b, o, "stepped_back", n.t->stepped_back);

	json_routes(&b, root, &n);
	json_isps(&b, root, &n);

	o = j_obj(&b, root, "queue");
	for (int k = 0; k < 4; k++) {
		if (n.have_depth)
			j_num(&b, o, state_names[k], (double)n.depth[k]);
		else
			j_null(&b, o, state_names[k]);
	}
	/* Template mail that only the v3 route can send, and how long the
	 * oldest of it has waited (seconds). */
	if (n.have_depth) {
		j_num(&b, o, "waiting_for_v3", (double)n.v3only);
		j_num(&b, o, "waiting_for_v3_age",
		      n.v3only ? (double)((now - n.v3only_oldest) / WU_USEC) : 0.0);
	}
	if (!n.have_depth)
		j_str(&b, root, "store_error", n.store_error);

	o = j_obj(&b, root, "gate");
	j_str(&b, o, "state", wu_gate_state_name(n.gate.state));
	j_str(&b, o, "worst_today", wu_gate_state_name(n.t->gate));
	j_num(&b, o, "bounce_rate", n.gate.bounce_rate);
	j_num(&b, o, "complaint_rate", n.gate.complaint_rate);
	j_str(&b, o, "reason", n.gate.reason);
	j_num(&b, o, "bounce_warn", n.core->gate.bounce_warn);
	j_num(&b, o, "bounce_halt", n.core->gate.bounce_halt);
	j_num(&b, o, "complaint_warn", n.core->gate.complaint_warn);
	j_num(&b, o, "complaint_halt", n.core->gate.complaint_halt);

	/* Today's sends by local hour (from midnight; 23 or 25 hours across a
	 * DST change), per route: units the route accepted, by answer time. */
	o = j_obj(&b, root, "hours");
	for (int r = 0; r < WU_ROUTE_COUNT && o; r++) {
		cJSON *a;

		if (!n.have_hours) {
			j_null(&b, o, wu_route_name((enum wu_route)r));
			continue;
		}
		if (!(a = cJSON_AddArrayToObject(o, wu_route_name((enum wu_route)r)))) {
			b.bad = 1;
			break;
		}
		for (int h = 0; h < n.nhours; h++) {
			cJSON *v = cJSON_CreateNumber((double)n.hours[r][h]);

			if (!v || !cJSON_AddItemToArray(a, v))
				b.bad = 1;
		}
	}

	o = j_obj(&b, root, "intake");
	if (x) {
		j_num(&b, o, "accepted", (double)x->intake_accepted);
		j_num(&b, o, "rejected", (double)x->intake_rejected);
		j_num(&b, o, "sandbox", (double)x->intake_sandbox);
		j_num(&b, o, "header_timeouts", (double)x->intake_header_timeouts);
		j_num(&b, o, "smtp_accepted", (double)x->smtp_accepted);
		j_num(&b, o, "smtp_rejected", (double)x->smtp_rejected);
		j_num(&b, o, "smtp_auth_failures", (double)x->smtp_auth_failures);
		j_num(&b, root, "webhook_events", (double)x->webhook_events);
		j_num(&b, root, "uptime_s", (double)((x->mono_now - x->started_mono) / WU_USEC));
		o = j_obj(&b, root, "clock");
		j_num(&b, o, "jumps", (double)x->clock_jumps);
		j_num(&b, o, "last_jump_s", (double)(x->clock_last_jump / WU_USEC));
		o = j_obj(&b, root, "dns");
		j_num(&b, o, "queries", (double)x->dns_queries);
		j_num(&b, o, "found", (double)x->dns_found);
		j_num(&b, o, "negative", (double)x->dns_negative);
		j_num(&b, o, "failed", (double)x->dns_failed);
		j_num(&b, o, "moved", (double)x->dns_moved);
		json_ops(&b, root, s, x);
		json_webhook(&b, root, &n, x, now);
		json_reload(&b, root, x);
	} else {
		j_null(&b, o, "accepted");
		j_null(&b, o, "rejected");
		j_null(&b, o, "header_timeouts");
		j_null(&b, o, "smtp_accepted");
		j_null(&b, o, "smtp_rejected");
		j_null(&b, o, "smtp_auth_failures");
		j_null(&b, root, "webhook_events");
		j_null(&b, root, "uptime_s");
	}

	if (x && x->cluster_json)
		x->cluster_json(x->cluster_arg, root);
	if (!b.bad)
		out = cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	return out;
}

/* ---- Prometheus ---------------------------------------------------------- */

/* A label value as the exposition format wants it: \\, \" and \n escaped.
 * ISP names are [a-z0-9_-] today, but the format must not depend on that. */
static void bput_label(struct strbuf *b, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\')
			strbuf_printf(b, "\\\\");
		else if (*v == '"')
			strbuf_printf(b, "\\\"");
		else if (*v == '\n')
			strbuf_printf(b, "\\n");
		else
			strbuf_printf(b, "%c", *v);
	}
}

/* The # HELP and # TYPE lines of one metric family. */
static void family(struct strbuf *b, const char *name, const char *type, const char *help)
{
	strbuf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A sample without labels. */
static void sample_i(struct strbuf *b, const char *name, int64_t v)
{
	strbuf_printf(b, "%s %" PRId64 "\n", name, v);
}

/* A family of one sample without labels. */
static void metric_i(struct strbuf *b, const char *name, const char *type, const char *help, int64_t v)
{
	family(b, name, type, help);
	sample_i(b, name, v);
}

/* A sample of a rate: nine digits are plenty and stay readable. */
static void sample_f(struct strbuf *b, const char *name, double v)
{
	strbuf_printf(b, "%s %.9g\n", name, v);
}

/* Opens a sample with its first label: name{label="value". */
static void labels_open(struct strbuf *b, const char *name, const char *label, const char *value)
{
	strbuf_printf(b, "%s{%s=\"", name, label);
	bput_label(b, value);
	strbuf_printf(b, "\"");
}

/* Adds another label to an open sample. */
static void label_add(struct strbuf *b, const char *label, const char *value)
{
	strbuf_printf(b, ",%s=\"", label);
	bput_label(b, value);
	strbuf_printf(b, "\"");
}

/* Closes the labels and writes the value. */
static void labels_close_i(struct strbuf *b, int64_t v)
{
	strbuf_printf(b, "} %" PRId64 "\n", v);
}

/* GET /metrics: see status.h and README.md (Status, metrics). */
char *status_metrics(const struct wu_engine *e, struct store *s, const struct wu_conf *c,
                     const struct status_extra *x, wu_time_t now)
{
	struct strbuf b = {0};
	struct snap n;

	if (!e)
		return NULL;
	snap_take(&n, e, s, c, x);
	if (strbuf_reserve(&b, 8192) < 0)
		return NULL;

	family(&b, "warmup_cap", "gauge",
	       "Today's cap on the new route (+Inf once the warmup is over).");
	if (n.t->cap == WU_UNLIMITED)
		strbuf_printf(&b, "warmup_cap +Inf\n");
	else
		sample_i(&b, "warmup_cap", n.t->cap);
	family(&b, "warmup_used", "gauge", "New-route sends counted against today's cap.");
	sample_i(&b, "warmup_used", n.t->used);
	family(&b, "warmup_step", "gauge", "Schedule day in force (0 before the warmup starts).");
	sample_i(&b, "warmup_step", n.t->step);
	family(&b, "warmup_held_days", "gauge", "Days the schedule did not advance.");
	sample_i(&b, "warmup_held_days", wu_engine_held(e));
	family(&b, "warmup_engaged_new", "gauge",
	       "Engaged recipients the new route took today (engaged first).");
	sample_i(&b, "warmup_engaged_new", n.t->engaged_new);
	family(&b, "warmup_gap_quiet_days", "gauge",
	       "Days in a row the new route sent under gap_fill of its cap.");
	sample_i(&b, "warmup_gap_quiet_days", wu_engine_quiet(e));
	family(&b, "warmup_gate_state", "gauge", "Health gate: 0 ok, 1 warn, 2 halt.");
	sample_i(&b, "warmup_gate_state", (int64_t)n.gate.state);
	family(&b, "warmup_bounce_rate", "gauge",
	       "Hard bounces / (delivered + hard bounces) on the new route today.");
	sample_f(&b, "warmup_bounce_rate", n.gate.bounce_rate);
	family(&b, "warmup_complaint_rate", "gauge",
	       "Spam reports / delivered on the new route today.");
	sample_f(&b, "warmup_complaint_rate", n.gate.complaint_rate);

	/* Today's counters: they restart at local midnight, which rate() reads
	 * as a counter reset. */
	family(&b, "warmup_sent_total", "counter",
	       "Messages sent today by route and ISP, net of refused sends.");
	for (int r = 0; r < WU_ROUTE_COUNT; r++)
		for (int i = 0; i < n.nisp; i++) {
			labels_open(&b, "warmup_sent_total", "route",
			            wu_route_name((enum wu_route)r));
			label_add(&b, "isp", n.core->isps.names[i]);
			labels_close_i(&b, n.t->sent[r][i]);
		}
	family(&b, "warmup_results_total", "counter",
	       "Outcomes today by route, ISP and result (send answers and provider events).");
	for (int r = 0; r < WU_ROUTE_COUNT; r++)
		for (int i = 0; i < n.nisp; i++)
			for (int k = 0; k < WU_RESULT_COUNT; k++) {
				labels_open(&b, "warmup_results_total", "route",
				            wu_route_name((enum wu_route)r));
				label_add(&b, "isp", n.core->isps.names[i]);
				label_add(&b, "result", wu_result_name((enum wu_result)k));
				labels_close_i(&b, n.t->result[r][i][k]);
			}
	/* Unsubscribes come from the store's counters, not the engine. */
	for (int r = 0; r < WU_ROUTE_COUNT; r++)
		for (int i = 0; i < n.nisp; i++) {
			labels_open(&b, "warmup_results_total", "route",
			            wu_route_name((enum wu_route)r));
			label_add(&b, "isp", n.core->isps.names[i]);
			label_add(&b, "result", "unsubscribe");
			labels_close_i(&b, n.unsub[r][i]);
		}

	if (n.have_depth) {
		family(&b, "warmup_queue", "gauge", "Units in the store by state.");
		for (int k = 0; k < 4; k++) {
			labels_open(&b, "warmup_queue", "state", state_names[k]);
			labels_close_i(&b, n.depth[k]);
		}
		metric_i(&b, "warmup_queued_waiting_for_v3", "gauge",
		         "Queued units only the v3 API route can send (template_id).", n.v3only);
		metric_i(&b, "warmup_queued_waiting_for_v3_age_seconds", "gauge",
		         "How long the oldest of them has waited.",
		         n.v3only ? (now - n.v3only_oldest) / WU_USEC : 0);
		family(&b, "warmup_queued", "gauge", "Queued units by ISP.");
		for (int i = 0; i < n.nisp; i++) {
			labels_open(&b, "warmup_queued", "isp", n.core->isps.names[i]);
			labels_close_i(&b, n.queued[i]);
		}
	}

	family(&b, "warmup_route_paused", "gauge", "1 when a route is paused.");
	for (int r = 0; r < WU_ROUTE_COUNT; r++) {
		labels_open(&b, "warmup_route_paused", "route", wu_route_name((enum wu_route)r));
		labels_close_i(&b, n.paused[r]);
	}
	if (x) {
		family(&b, "warmup_inflight", "gauge", "Units handed to a sender, by route.");
		for (int r = 0; r < WU_ROUTE_COUNT; r++) {
			labels_open(&b, "warmup_inflight", "route",
			            wu_route_name((enum wu_route)r));
			labels_close_i(&b, x->inflight[r]);
		}
		metric_i(&b, "warmup_intake_accepted_total", "counter",
		         "Intake requests accepted since the daemon started.", x->intake_accepted);
		metric_i(&b, "warmup_intake_rejected_total", "counter",
		         "Intake requests rejected since the daemon started.", x->intake_rejected);
		metric_i(&b, "warmup_intake_sandbox_total", "counter",
		         "Sandbox-mode requests answered (nothing queued) since the daemon started.",
		         x->intake_sandbox);
		metric_i(&b, "warmup_webhook_events_total", "counter",
		         "Event Webhook events received since the daemon started.",
		         x->webhook_events);
		metric_i(&b, "warmup_mx_moved_total", "counter",
		         "Queued units moved from other to their MX's ISP group since the start.",
		         x->dns_moved);
		metric_i(&b, "warmup_start_time_seconds", "gauge",
		         "When the daemon started, in seconds since the Unix epoch.",
		         x->started / WU_USEC);
		family(&b, "warmup_suppressed_total", "counter",
		       "Recipients the intake dropped as suppressed, by reason.");
		for (int r = 0; r < SUPP_REASON_COUNT; r++) {
			labels_open(&b, "warmup_suppressed_total", "reason",
			            suppress_reason_name(r));
			labels_close_i(&b, x->supp_dropped[r]);
		}
		metric_i(&b, "warmup_suppress_rejected_total", "counter",
		         "Intake requests refused for a suppressed recipient (mode = reject).",
		         x->supp_rejected);
		family(&b, "warmup_alerts_total", "counter", "Push alerts by outcome.");
		labels_open(&b, "warmup_alerts_total", "outcome", "sent");
		labels_close_i(&b, x->alerts_sent);
		labels_open(&b, "warmup_alerts_total", "outcome", "failed");
		labels_close_i(&b, x->alerts_failed);
		labels_open(&b, "warmup_alerts_total", "outcome", "dropped");
		labels_close_i(&b, x->alerts_dropped);
		family(&b, "warmup_reloads_total", "counter",
		       "Configuration reloads (SIGHUP, POST /v1/reload) by outcome.");
		labels_open(&b, "warmup_reloads_total", "outcome", "applied");
		labels_close_i(&b, x->reloads);
		labels_open(&b, "warmup_reloads_total", "outcome", "refused");
		labels_close_i(&b, x->reloads_refused);
		metric_i(&b, "warmup_reload_ok", "gauge",
		         "1 when the last reload was applied (or none was asked), 0 when refused.",
		         x->reload_at && !x->reload_ok ? 0 : 1);
		family(&b, "warmup_webhook_outcomes_total", "counter",
		       "Event Webhook events by what became of them.");
		{
			static const char *const names[] = {"applied", "duplicate", "unattributed",
			                                    "malformed", "ignored"};
			const int64_t v[] = {x->wh_applied, x->wh_duplicate, x->wh_unattributed,
			                     x->wh_malformed, x->wh_ignored};

			for (size_t k = 0; k < sizeof(v) / sizeof(v[0]); k++) {
				labels_open(&b, "warmup_webhook_outcomes_total", "outcome",
				            names[k]);
				labels_close_i(&b, v[k]);
			}
		}
		metric_i(&b, "warmup_webhook_refused_total", "counter",
		         "Event Webhook batches refused: authentication, signature or timestamp.",
		         x->wh_refused);
		metric_i(&b, "warmup_webhook_bad_batches_total", "counter",
		         "Event Webhook batches that were not a JSON array, or too large.",
		         x->wh_bad_batches);
		family(&b, "warmup_isp_cut", "gauge",
		       "Share of an ISP's new-route rate a deferral rule keeps now (1 = no cut).");
		for (int i = 0; i < n.nisp; i++) {
			struct wu_cut c;
			int active = wu_engine_cut_state(e, i, &c) && c.effective &&
			             (c.until > now || c.factor < 1);

			labels_open(&b, "warmup_isp_cut", "isp", n.core->isps.names[i]);
			strbuf_printf(&b, "} %.9g\n", active ? c.factor : 1.0);
		}
	}

	if (x && x->cluster_metrics) {
		char *more = x->cluster_metrics(x->cluster_arg);

		if (more)
			strbuf_printf(&b, "%s", more);
		free(more);
	}
	return strbuf_take(&b); /* NULL when an append failed */
}
