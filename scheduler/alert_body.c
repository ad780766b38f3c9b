/*
 * NAME
 *	alert_body.c -- what one alert says: its kind, severity, dedup key and
 *	fields, as the JSON body the webhook gets.
 *
 * DESCRIPTION
 *	Each kind has a firing or resolved state, a severity and a dedup group
 *	(the firing kind it resolves, so isp_recovered closes isp_cut).  The
 *	body has a Slack-compatible "text" line, the fields a PagerDuty or
 *	Alertmanager style receiver reads (kind, severity, summary, source,
 *	timestamp, dedup_key, fingerprint, status, count, details) and the
 *	flat fields of the first alerts (event, route, date, day, cap,
 *	bounce_rate, complaint_rate, backlog, host).  A summary of held alerts
 *	is the latest of them with its count and "(and N more in the last
 *	10 min)".
 */
#include "alert_body.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/alertkind.h"
#include "daemon.h"

unsigned alert_kind_state(const char *kind)
{
	const struct wu_alert_kind *ki = wu_alert_kind_find(kind);

	return ki ? ki->state : WU_REPEAT_FIRING;
}

/* Queued units now, or -1 when the store cannot tell. */
static int64_t backlog_now(struct wu_daemon *d)
{
	int64_t depth[4];

	if (store_depth(d->store, depth) < 0)
		return -1;
	return depth[STORE_QUEUED];
}

/* t as RFC 3339 in UTC: 2026-12-01T09:30:00Z. */
static void rfc3339(wu_time_t t, char *buf, size_t len)
{
	time_t s = (time_t)(t / WU_USEC);
	struct tm tm;

	if (!gmtime_r(&s, &tm) || !strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(buf, len, "1970-01-01T00:00:00Z");
}

/* A window's length for people: "10 min", "2 h", "30 s". */
static void span(wu_time_t t, char *buf, size_t len)
{
	if (t >= WU_HOUR && t % WU_HOUR == 0)
		snprintf(buf, len, "%lld h", (long long)(t / WU_HOUR));
	else if (t >= WU_MINUTE && t % WU_MINUTE == 0)
		snprintf(buf, len, "%lld min", (long long)(t / WU_MINUTE));
	else
		snprintf(buf, len, "%lld s", (long long)((t + WU_USEC / 2) / WU_USEC));
}

/* Adds a number, or null for "none". */
static void add_num_or_null(cJSON *o, const char *k, int64_t v, int none)
{
	if (none)
		cJSON_AddNullToObject(o, k);
	else
		cJSON_AddNumberToObject(o, k, (double)v);
}

cJSON *alert_body(struct wu_daemon *d, const char *source, const char *host,
                  const struct alert_msg *m, const char *event)
{
	const struct wu_alert_kind *ki = wu_alert_kind_find(m->kind);
	const struct wu_day_stats *day = wu_engine_today(d->engine);
	const char *group = m->group ? m->group : ki ? ki->group : m->kind;
	const char *severity = m->severity ? m->severity : ki ? ki->severity : "warning";
	unsigned state = ki ? ki->state : WU_REPEAT_FIRING;
	const char *route = m->route >= 0 ? wu_route_name((enum wu_route)m->route) : NULL;
	struct wu_gate_verdict v;
	char text[1400], datebuf[16], ts[32], dedup[400];
	int64_t backlog = backlog_now(d);
	cJSON *o = cJSON_CreateObject(), *det = m->details;

	if (!o) {
		cJSON_Delete(det);
		return NULL;
	}
	if (!det)
		det = cJSON_CreateObject();
	wu_engine_gate(d->engine, &v);
	wu_date_format(day->date, datebuf, sizeof(datebuf));
	rfc3339(m->at ? m->at : daemon_now(d), ts, sizeof(ts));
	if (m->key && m->key[0])
		snprintf(dedup, sizeof(dedup), "warmupd/%s/%s/%s", source, group, m->key);
	else
		snprintf(dedup, sizeof(dedup), "warmupd/%s/%s", source, group);
	if (day->cap == WU_UNLIMITED)
		snprintf(text, sizeof(text), "warmupd on %s: %s (%s, day %d, no cap)", source,
		         m->what, datebuf, day->step);
	else
		snprintf(text, sizeof(text), "warmupd on %s: %s (%s, day %d, cap %lld)", source,
		         m->what, datebuf, day->step, (long long)day->cap);
	cJSON_AddStringToObject(o, "text", text);
	cJSON_AddStringToObject(o, "kind", m->kind);
	cJSON_AddStringToObject(o, "severity", severity);
	cJSON_AddStringToObject(o, "summary", m->what);
	cJSON_AddStringToObject(o, "source", source);
	cJSON_AddStringToObject(o, "timestamp", ts);
	cJSON_AddStringToObject(o, "dedup_key", dedup);
	cJSON_AddStringToObject(o, "fingerprint", dedup);
	cJSON_AddStringToObject(o, "status", state == WU_REPEAT_RESOLVED ? "resolved" : "firing");
	cJSON_AddNumberToObject(o, "count", 1);
	if (det) {
		if (route && !cJSON_GetObjectItemCaseSensitive(det, "route"))
			cJSON_AddStringToObject(det, "route", route);
		cJSON_AddStringToObject(det, "date", datebuf);
		cJSON_AddNumberToObject(det, "day", day->step);
		add_num_or_null(det, "cap", day->cap, day->cap == WU_UNLIMITED);
		add_num_or_null(det, "backlog", backlog, backlog < 0);
		cJSON_AddItemToObject(o, "details", det);
	}
	/* The flat fields of the first alerts, for receivers that read them. */
	cJSON_AddStringToObject(o, "event", event ? event : m->kind);
	if (route)
		cJSON_AddStringToObject(o, "route", route);
	else
		cJSON_AddNullToObject(o, "route");
	cJSON_AddStringToObject(o, "date", datebuf);
	cJSON_AddNumberToObject(o, "day", day->step);
	add_num_or_null(o, "cap", day->cap, day->cap == WU_UNLIMITED);
	cJSON_AddNumberToObject(o, "bounce_rate", v.bounce_rate);
	cJSON_AddNumberToObject(o, "complaint_rate", v.complaint_rate);
	add_num_or_null(o, "backlog", backlog, backlog < 0);
	cJSON_AddStringToObject(o, "host", host);
	return o;
}

/* Replaces the string k of o by its value with suffix. */
static void append(cJSON *o, const char *k, const char *suffix)
{
	cJSON *it = cJSON_GetObjectItemCaseSensitive(o, k);
	char buf[1500];

	if (!cJSON_IsString(it))
		return;
	snprintf(buf, sizeof(buf), "%s%s", it->valuestring, suffix);
	cJSON_ReplaceItemInObjectCaseSensitive(o, k, cJSON_CreateString(buf));
}

void alert_body_summary(cJSON *o, int64_t held, wu_time_t window)
{
	char suffix[96], win[32];

	if (held > 1) {
		span(window, win, sizeof(win));
		snprintf(suffix, sizeof(suffix), " (and %lld more in the last %s)",
		         (long long)(held - 1), win);
		append(o, "text", suffix);
		append(o, "summary", suffix);
	}
	cJSON_ReplaceItemInObjectCaseSensitive(o, "count", cJSON_CreateNumber((double)held));
}
