/*
 * NAME
 *	reload.c -- the configuration file read again, judged in full, and
 *	swapped in between two transactions, or refused as a whole.
 *
 * SYNOPSIS
 *	reload_soon(d, done, arg);        (SIGHUP, POST /v1/reload)
 *
 * DESCRIPTION
 *	reload_soon joins the turn's transaction and asks to run once it is
 *	committed: no decision of a dispatcher round, no request and no
 *	result is half way through then.  reload_run reads the file with the
 *	loader of the start (wu_conf_load_all, every problem at once), looks
 *	at the store's directory as --check does, and compares what only a
 *	restart can change (reload_fixed.c).  Then a new engine is built from
 *	the new core configuration and given the running one's state
 *	(core/reconf.c); only when that worked is anything swapped.
 *
 *	Everything that reads the configuration reads it through d->conf or
 *	d->engine at each use, so the swap is two assignments; the MX lookups
 *	keep a pointer to the engine's ISP table and are given the new one,
 *	the dispatcher forgets the waits the old engine gave it, and the push
 *	alerts start afresh when their URL, timer or source changed.
 *
 * DIAGNOSTICS
 *	An applied reload logs one line of what changed ("reload: schedule 10
 *	days -> 12 days, today's cap 63 -> 83 (20 used)").  A refused one logs
 *	every problem (file:line, section and key), then the refusal; the
 *	status shows the last reload (time, ok, message), the events table
 *	gets a "reload" or "reload_refused" row, and a refusal is pushed as an
 *	alert of kind reload_refused.
 */
#include "reload.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alert.h"
#include "check.h"
#include "core/reconf.h"
#include "daemon.h"
#include "dispatcher.h"
#include "log.h"
#include "mx.h"
#include "reload_fixed.h"

struct pending {
	struct wu_daemon *d;
	reload_cb fn;
	void *arg;
};

static void on_committed(void *arg, int ok)
{
	struct pending *p = arg;
	char msg[1024];
	int rc;

	(void)ok; /* the reload does not depend on what the turn did */
	rc = reload_run(p->d, msg, sizeof(msg));
	if (p->fn)
		p->fn(p->arg, rc == 0, msg);
	free(p);
}

int reload_soon(struct wu_daemon *d, reload_cb fn, void *arg)
{
	struct pending *p;

	if (d->stopping || !(p = malloc(sizeof(*p))))
		return -1;
	p->d = d;
	p->fn = fn;
	p->arg = arg;
	/* An open transaction makes this turn commit, and run what waits for it. */
	if (daemon_txn(d) < 0 || daemon_after_commit(d, on_committed, p) < 0) {
		free(p);
		return -1;
	}
	return 0;
}

/* The outcome for the status, the events table and (refused) the alerts. */
static void record(struct wu_daemon *d, wu_time_t now, int ok, const char *msg)
{
	struct status_extra *x = &d->extra;

	x->reload_at = now;
	x->reload_ok = ok;
	snprintf(x->reload_message, sizeof(x->reload_message), "%s", msg);
	if (ok)
		x->reloads++;
	else
		x->reloads_refused++;
	if (daemon_txn(d) < 0 ||
	    store_event_add(d->store, now, ok ? "reload" : "reload_refused", NULL, msg) < 0)
		wu_warn("store: cannot record the reload: %s", store_errmsg(d->store));
	if (!ok)
		alert_notice(d->alert, "reload_refused", "configuration reload refused: %s", msg);
}

/* Appends sep and text (text alone first) to msg, cutting what does not fit. */
static void join(char *msg, size_t len, const char *sep, const char *text)
{
	size_t n = strlen(msg);

	if (n + 1 < len)
		snprintf(msg + n, len - n, "%s%s", n ? sep : "", text);
}

/* Refuses with every problem in errs. */
static int refuse_errs(struct wu_daemon *d, wu_time_t now, const struct wu_conf_errors *errs,
                       char *msg, size_t len)
{
	msg[0] = '\0';
	for (int i = 0; i < errs->n; i++) {
		wu_error("reload: %s", errs->e[i].text);
		join(msg, len, "\n", errs->e[i].text);
	}
	if (errs->lost)
		join(msg, len, "\n", "(more problems: out of memory)");
	wu_error("reload: %s: refused (%d problem%s); the running configuration stays",
	         d->conf.path, errs->n + errs->lost, errs->n + errs->lost == 1 ? "" : "s");
	record(d, now, 0, msg);
	return -1;
}

static int str_differ(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "") != 0;
}

/* What changed outside the core, after the core's own description. */
static void describe(const struct wu_conf *a, const struct wu_conf *b, const struct wu_engine *olde,
                     const struct wu_engine *newe, char *out, size_t len)
{
	const struct wu_day_stats *ot = wu_engine_today(olde), *nt = wu_engine_today(newe);
	char part[700];

	out[0] = '\0';
	if (wu_reconf_describe(&a->core, &b->core, part, sizeof(part)) > 0)
		join(out, len, ", ", part);
	if (ot->cap != nt->cap) {
		if (nt->cap == WU_UNLIMITED)
			snprintf(part, sizeof(part), "today's cap %lld -> none (%lld used)",
			         (long long)ot->cap, (long long)nt->used);
		else if (ot->cap == WU_UNLIMITED)
			snprintf(part, sizeof(part), "today's cap none -> %lld (%lld used)",
			         (long long)nt->cap, (long long)nt->used);
		else
			snprintf(part, sizeof(part), "today's cap %lld -> %lld (%lld used%s)",
			         (long long)ot->cap, (long long)nt->cap, (long long)nt->used,
			         nt->used >= nt->cap ? ": no more new today" : "");
		join(out, len, ", ", part);
	}
	if (str_differ(a->alert_url, b->alert_url) || a->alert_backlog != b->alert_backlog ||
	    a->alert_backlog_every != b->alert_backlog_every ||
	    a->alert_v3_wait != b->alert_v3_wait || a->alert_timeout != b->alert_timeout ||
	    a->alert_retries != b->alert_retries || a->alert_repeat != b->alert_repeat ||
	    a->alert_disk_free != b->alert_disk_free ||
	    strcmp(a->alert_source, b->alert_source) != 0 ||
	    a->core.permfail.window != b->core.permfail.window ||
	    a->core.permfail.rate != b->core.permfail.rate)
		join(out, len, ", ", "[alert]");
	if (a->log_level != b->log_level)
		join(out, len, ", ", "[log] level");
	if (a->suppress_reject != b->suppress_reject)
		join(out, len, ", ",
		     b->suppress_reject ? "[suppress] mode drop -> reject"
		                        : "[suppress] mode reject -> drop");
	if (a->webhook.max_body != b->webhook.max_body ||
	    a->webhook.max_skew != b->webhook.max_skew)
		join(out, len, ", ", "[webhook] limits");
	if (!out[0])
		snprintf(out, len, "nothing changed");
}

/* Takes the reloadable parts of nc into d->conf (nc gets the old ones, for
 * wu_conf_free) and ne as the engine. */
static void swap_in(struct wu_daemon *d, struct wu_conf *nc, struct wu_engine *ne)
{
	struct wu_conf *c = &d->conf;
	struct wu_core_conf core = c->core;
	char *url = c->alert_url;
	int alerts_again =
	    str_differ(c->alert_url, nc->alert_url) ||
	    c->alert_backlog_every != nc->alert_backlog_every ||
	    strcmp(c->alert_source, nc->alert_source) != 0 ||
	    (c->alert_backlog > 0 || c->alert_v3_wait > 0 || c->alert_disk_free > 0) !=
	        (nc->alert_backlog > 0 || nc->alert_v3_wait > 0 || nc->alert_disk_free > 0);

	c->core = nc->core;
	nc->core = core;
	snprintf(c->schedule_path, sizeof(c->schedule_path), "%s", nc->schedule_path);
	c->log_level = nc->log_level;
	wu_log_set_level(wu_log_level_of(c->log_level));
	c->suppress_reject = nc->suppress_reject;
	c->alert_url = nc->alert_url;
	nc->alert_url = url;
	c->alert_backlog = nc->alert_backlog;
	c->alert_backlog_every = nc->alert_backlog_every;
	c->alert_v3_wait = nc->alert_v3_wait;
	c->alert_timeout = nc->alert_timeout;
	c->alert_retries = nc->alert_retries;
	c->alert_repeat = nc->alert_repeat;
	c->alert_disk_free = nc->alert_disk_free;
	snprintf(c->alert_source, sizeof(c->alert_source), "%s", nc->alert_source);
	c->webhook.max_body = nc->webhook.max_body;
	c->webhook.max_skew = nc->webhook.max_skew;
	c->webhook.default_rules = nc->webhook.default_rules;
	c->webhook.nrules = nc->webhook.nrules;
	memcpy(c->webhook.rules, nc->webhook.rules, sizeof(c->webhook.rules));

	/* The new engine takes its units where the old one did (the cluster's
	 * lease, or its own cap). */
	wu_engine_set_ledger(ne, wu_engine_ledger(d->engine));
	wu_engine_free(d->engine);
	d->engine = ne;
	mx_set_isps(d->mx, &wu_engine_conf(ne)->isps);
	if (alerts_again) {
		alert_stop(d);
		if (alert_start(d) < 0)
			wu_error("alert: out of memory: no push alerts until the next reload");
	}
	/* The old engine's waits ("cap used until midnight") may not hold now. */
	dispatcher_forget_waits(d->disp);
	dispatcher_kick(d->disp);
}

int reload_run(struct wu_daemon *d, char *msg, size_t len)
{
	struct wu_conf nc;
	struct wu_conf_errors errs = {0};
	struct wu_engine *ne = NULL;
	wu_time_t now = daemon_now(d);
	char err[WU_ERR_MAX + 64], what[1024];
	int rc;

	memset(&nc, 0, sizeof(nc));
	if (d->stopping) {
		snprintf(msg, len, "warmupd is stopping");
		return -1;
	}
	wu_log(WU_LOG_INFO, "reload: reading %s", d->conf.path);
	wu_conf_load_all(&nc, d->conf.path, WU_CONF_KEEP, &errs);
	/* The process's zone stays the one set at start (scheduler/zone.h):
	 * a changed [warmup] timezone is refused below. */
	if (!errs.n && !errs.lost) {
		check_store(&nc, &errs, 0);
		reload_fixed_diff(&d->conf, &nc, &errs);
	}
	if (errs.n || errs.lost) {
		rc = refuse_errs(d, now, &errs, msg, len);
		goto out;
	}
	/* Events of the old engine go out under it. */
	daemon_drain_events(d);
	if (wu_reconf_engine(d->engine, &nc.core, now, &ne, err, sizeof(err)) < 0) {
		char text[sizeof(err) + 1100];

		snprintf(text, sizeof(text), "%s: %s", nc.path, err);
		wu_conf_errors_add(&errs, NULL, 0, "%s", text);
		rc = refuse_errs(d, now, &errs, msg, len);
		goto out;
	}
	describe(&d->conf, &nc, d->engine, ne, what, sizeof(what));
	swap_in(d, &nc, ne);
	daemon_drain_events(d);
	wu_info("reload: %s: %s", d->conf.path, what);
	snprintf(msg, len, "%s", what);
	record(d, now, 1, what);
	rc = 0;
out:
	wu_conf_errors_free(&errs);
	wu_conf_free(&nc);
	return rc;
}
