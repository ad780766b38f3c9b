/*
 * alert.h -- push alerts: what an operator must act on, POSTed as JSON to a
 * webhook (Slack's incoming webhooks, a PagerDuty or Alertmanager style
 * receiver, or any URL), and the event log in the store that `warmup
 * status` shows.
 *
 * Alerts go out for a gate warning or halt, a route paused (by hand, by the
 * gate or by the provider's answers) or resumed, an ISP cut by a deferral
 * rule and its recovery, permanent failures above [alert] permfail_rate, a
 * backlog above backlog_threshold, template mail waiting too long, the
 * store's disk nearly full, and whatever another part raises with
 * alert_notice (a refused reload).  Each has a stable kind; repeats of one
 * key are held and summed up once per repeat_window (core/repeat.h).  They
 * ride the daemon's shared libcurl multi handle, one at a time from a
 * bounded in-memory queue, and are retried with exponential backoff: an
 * unreachable webhook never holds up sending.
 */
#ifndef WU_ALERT_H
#define WU_ALERT_H

#include "core/engine.h"

struct wu_daemon;
struct alert;
struct cJSON;

/* Sets up the queue and the watch timer (when a URL is configured).
 * Returns 0 or -1. */
int alert_start(struct wu_daemon *d);

/* Drops what is queued or held, cancels the POST under way, closes the
 * timers. */
void alert_stop(struct wu_daemon *d);

/* One engine event: a row in the store's events table (joining the turn's
 * transaction) and, for every kind but a new day, an alert. */
void alert_engine_event(struct wu_daemon *d, const struct wu_event *ev);

/* Raises an alert of kind (a stable name such as "reload_refused") with a
 * printf-formatted text, at the loop turn's time.  A NULL a (no webhook
 * configured) does nothing. */
void alert_notice(struct alert *a, const char *kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* What one alert says, for the parts of the daemon that raise their own
 * (alert_watch.c).  Only kind and what are required. */
struct alert_msg {
	const char *kind;      /* stable: "disk_low" */
	const char *what;      /* the sentence: "store disk 97% full" */
	const char *key;       /* the ISP, route or path it is about; NULL = none */
	int route;             /* the route it is about, -1 = none */
	const char *severity;  /* NULL: the kind's own (see alert.c) */
	const char *group;     /* the firing kind this one resolves; NULL: the kind's own */
	wu_time_t at;          /* 0: now */
	struct cJSON *details; /* kind-specific fields, taken over; NULL = none */
};

/* Raises m (rate-limited per kind and key).  A NULL a does nothing (and
 * frees m->details). */
void alert_raise(struct alert *a, const struct alert_msg *m);

/* The daemon an alert object belongs to. */
struct wu_daemon *alert_daemon(struct alert *a);

#endif
