/*
 * status.h -- the daemon's state as JSON (GET /v1/status) and as Prometheus
 * text (GET /metrics).
 *
 * Pure formatting, called on the daemon's loop thread: the functions read the
 * engine, the store and the configuration, and never change any of them.
 * Secrets (the intake token, route API keys and passwords, credentials in a
 * route URL) never appear in either output.
 *
 * Either output is produced even when the store cannot be read: the queue
 * figures are then null in the JSON and absent from the metrics.  The store
 * and the extra counters may be NULL; the configuration may be NULL, which
 * leaves out route types and URLs.
 */
#ifndef WU_STATUS_H
#define WU_STATUS_H

#include <stdint.h>

#include "core/wu.h"

struct wu_engine;
struct store;
struct wu_conf;

/* Room for suppress.h's reasons in the counters below. */
#define STATUS_SUPP_REASONS 8


/* Counters the daemon keeps in memory. */
struct status_extra {
	int64_t intake_accepted, intake_rejected, webhook_events;
	int64_t intake_sandbox; /* sandbox-mode requests: answered 200, nothing kept */
	int64_t intake_header_timeouts; /* connections cut for late request headers */
	int64_t smtp_accepted, smtp_rejected, smtp_auth_failures; /* the SMTP intake */
	int64_t clock_jumps;            /* wall clock steps against the monotonic clock */
	wu_time_t clock_last_jump;      /* the last one's size, signed */
	int64_t inflight[WU_ROUTE_COUNT];
	wu_time_t started;
	/* the monotonic clock (µs) at the start and at this loop turn: uptime
	 * does not follow a wall clock that jumps */
	wu_time_t started_mono, mono_now;
	/* the Event Webhook (webhook.c): events by what became of them
	 * (webhook_events counts them all), batches refused for their
	 * authentication and batches that were not a JSON array */
	int64_t wh_applied, wh_duplicate, wh_unattributed, wh_malformed, wh_ignored;
	int64_t wh_refused, wh_bad_batches;
	/* suppressions at intake (suppress.c): recipients dropped by reason
	 * (enum suppress_reason), personalizations left empty and dropped,
	 * requests refused in reject mode */
	int64_t supp_dropped[STATUS_SUPP_REASONS];
	int64_t supp_dropped_pers, supp_rejected;
	/* push alerts (alert.c) */
	int64_t alerts_sent, alerts_failed, alerts_dropped;
	/* MX lookups (mx.c): queries started, answers naming hosts, NXDOMAIN
	 * or no MX, failures; units the dispatcher moved to their MX's group */
	int64_t dns_queries, dns_found, dns_negative, dns_failed, dns_moved;
	/* open and click events noted as an address's last engagement (webhook.c) */
	int64_t engaged_noted;
	/* the last reload (reload.c): when (0 = none yet), whether it was
	 * applied, what changed or why it was refused; reloads applied and
	 * refused since the start */
	wu_time_t reload_at;
	int reload_ok;
	char reload_message[1024];
	int64_t reloads, reloads_refused;
	/* [cluster] (cluster.c): adds a "cluster" object to the status JSON
	 * (root is a cJSON object) and appends its /metrics lines (malloc'd
	 * text, NULL for none); both NULL without the section */
	void (*cluster_json)(void *arg, void *root);
	char *(*cluster_metrics)(void *arg);
	void *cluster_arg;
};

/* Hours of a local day at most (25 across the end of DST). */
#define STATUS_HOURS_MAX 25

/* Today's units SENT by route and local hour since midnight, from the
 * store: hours[route][h] for h < *nhours (23, 24 or 25).  Returns 0, or -1
 * when the store could not be read (the counts are then 0). */
int status_hours(const struct wu_engine *e, struct store *s,
                 int64_t hours[WU_ROUTE_COUNT][STATUS_HOURS_MAX], int *nhours);

/* JSON for GET /v1/status; malloc'd; NULL on failure. */
char *status_json(const struct wu_engine *e, struct store *s, const struct wu_conf *c,
                  const struct status_extra *x, wu_time_t now);

/* Prometheus text exposition format 0.0.4 for GET /metrics; malloc'd. */
char *status_metrics(const struct wu_engine *e, struct store *s, const struct wu_conf *c,
                     const struct status_extra *x, wu_time_t now);

#endif
