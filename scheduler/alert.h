/*
 * alert.h -- push alerts: what an operator must hear about at once, POSTed
 * as JSON to a webhook (Slack's incoming webhooks, or any URL), and the
 * event log in the store that `warmup status` shows.
 *
 * Alerts go out for a gate warning or halt, a route paused (by hand or by
 * an authentication failure) or resumed, and a backlog crossing
 * [alert] backlog_threshold.  They ride the daemon's shared libcurl multi
 * handle, one at a time from a bounded in-memory queue, and are retried
 * with exponential backoff: an unreachable webhook never holds up sending.
 */
#ifndef WU_ALERT_H
#define WU_ALERT_H

#include "core/engine.h"

struct wu_daemon;
struct alert;

/* Sets up the queue and the backlog timer (when a URL is configured).
 * Returns 0 or -1. */
int alert_start(struct wu_daemon *d);

/* Drops what is queued, cancels the POST under way, closes the timers. */
void alert_stop(struct wu_daemon *d);

/* One engine event: a row in the store's events table (joining the turn's
 * transaction) and, for gate, pause and resume events, an alert. */
void alert_engine_event(struct wu_daemon *d, const struct wu_event *ev);

/* A notice of kind (a stable name, "reload_refused") with a formatted
 * text, queued as {"text", "kind", "host"}.  a may be NULL (no [alert]
 * webhook_url): nothing is sent. */
void alert_notice(struct alert *a, const char *kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
