/*
 * main.c -- warmupd: accept mail durably through a SendGrid-compatible API
 * and send today's share of it through the new provider.
 *
 * SYNOPSIS
 *	warmupd --config FILE [--port-file FILE]
 *	warmupd --check --config FILE
 *	warmupd --reset-state --config FILE
 *
 * --check reports every problem in one run, one line each naming the file,
 * the line and the key: the file, the schedule, the secrets (named, never
 * shown), the store's directory and the listen ports (check.c).  Exit 0
 * with one "ok" line, or 1 with all of them and a count.
 *
 * Runs in the foreground and logs to stderr.  SIGHUP (or POST /v1/reload,
 * `warmup reload`) reads the configuration file again and swaps it in
 * when it passes in full, or keeps the running one and says why
 * (reload.c).  SIGTERM or SIGINT stop intake,
 * let the sends under way finish (at most the route timeout), commit and
 * exit 0.  A bad config, an unreadable store or saved state that does not
 * fit the configuration exit 1 with a message naming the cause.
 *
 * --reset-state, with the daemon stopped, throws the saved engine state
 * away and saves a fresh one in which today's new-route cap counts as
 * used: what was sent today is unknown, and the cap must not be granted
 * twice.  Held days and pauses are forgotten; tomorrow starts afresh.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alert.h"
#include "cluster.h"
#include "check.h"
#include "prune.h"
#include "daemon.h"
#include "dispatcher.h"
#include "intake.h"
#include "smtpd.h"
#include "log.h"
#include "zone.h"
#include "mx.h"
#include "reload.h"
#include "webhook.h"

#define VERSION "0.1.0"

static void usage(FILE *f)
{
	fprintf(f, "usage: warmupd --config FILE [--port-file FILE] [--smtp-port-file FILE]\n"
	           "       warmupd --check --config FILE\n"
	           "       warmupd --reset-state --config FILE\n"
	           "\n"
	           "Accepts mail on a SendGrid-compatible HTTP API, stores it durably and\n"
	           "sends up to today's warmup cap through the new provider; the rest goes\n"
	           "to the old relay or waits (overflow = old | defer).\n"
	           "\n"
	           "  -c, --config FILE     the INI configuration (see README)\n"
	           "  -k, --check           check the configuration, the schedule, the secrets,\n"
	           "                        the store's directory and the ports; print every\n"
	           "                        problem and exit\n"
	           "      --reset-state     with warmupd stopped: throw the saved engine state\n"
	           "                        away (a state it refuses to load); today's cap on the\n"
	           "                        new route counts as used, held days and pauses are\n"
	           "                        forgotten, and the next local day starts afresh\n"
	           "  -p, --port-file FILE  write the bound intake port to FILE once listening\n"
	           "  -s, --smtp-port-file FILE\n"
	           "                        the same for the SMTP intake ([smtp] address)\n"
	           "  -h, --help            this help\n"
	           "  -V, --version         print the version\n"
	           "\n"
	           "SIGHUP (or `warmup reload`) reads the configuration file again.\n");
}

static void on_check(uv_check_t *h)
{
	daemon_commit(h->data);
}

static void on_closed(uv_handle_t *h)
{
	(void)h;
}

/* The last step of a stop: commit, close the loop's own handles. */
static void finish(struct wu_daemon *d)
{
	daemon_flush(d);
	cluster_stop(d->cluster);
	d->cluster = NULL;
	uv_check_stop(&d->commit);
	uv_close((uv_handle_t *)&d->commit, on_closed);
	uv_close((uv_handle_t *)&d->commit_soon, on_closed);
	uv_close((uv_handle_t *)&d->commit_later, on_closed);
	uv_close((uv_handle_t *)&d->sigterm, on_closed);
	uv_close((uv_handle_t *)&d->sigint, on_closed);
	uv_close((uv_handle_t *)&d->sighup, on_closed);
	alert_stop(d);
	prune_stop(d->prune);
	d->prune = NULL;
	mx_close(d->mx);
	d->mx = NULL;
	if (d->cu) {
		curluv_destroy(d->cu);
		d->cu = NULL;
	}
}

static uv_timer_t drain_timer;

/* Waits for the sends under way, then finishes. */
static void on_drain(uv_timer_t *t)
{
	struct wu_daemon *d = t->data;
	static int ticks;

	if (dispatcher_inflight(d->disp) > 0 && ++ticks < 400) {
		uv_timer_start(t, on_drain, 100, 0);
		return;
	}
	if (dispatcher_inflight(d->disp) > 0)
		wu_warn("stopping with %d unit(s) still in flight; they return to the queue at the "
		        "next start",
		        dispatcher_inflight(d->disp));
	/* Results of aborted sends requeue their units in this last commit. */
	for (int r = 0; r < WU_ROUTE_COUNT; r++)
		if (d->route[r]) {
			snd_route_free(d->route[r]);
			d->route[r] = NULL;
		}
	dispatcher_stop(d->disp);
	uv_close((uv_handle_t *)t, on_closed);
	finish(d);
}

/* An MX answer may move queued units to their ISP: look again. */
static void on_mx_answer(void *arg)
{
	struct wu_daemon *d = arg;

	dispatcher_kick(d->disp);
}

static void on_engine_event(void *arg, const struct wu_event *ev)
{
	alert_engine_event(arg, ev);
}

/* SIGHUP: the configuration file is read again (reload.c). */
static void on_hup(uv_signal_t *s, int signum)
{
	struct wu_daemon *d = s->data;

	(void)signum;
	wu_info("SIGHUP: reloading the configuration");
	if (reload_soon(d, NULL, NULL) < 0)
		wu_error("SIGHUP: the reload cannot start (stopping, or the store failed)");
}

static void on_signal(uv_signal_t *s, int signum)
{
	struct wu_daemon *d = s->data;

	if (d->stopping)
		return;
	d->stopping = 1;
	wu_info("%s: stopping", strsignal(signum));
	/* No new send from here on: what is on the wire finishes (bounded by
	 * on_drain), nothing else starts. */
	dispatcher_drain(d->disp);
	/* Requests waiting for this turn's commit get their answer first: the
	 * HTTP server cannot stop with connections suspended. */
	daemon_flush(d);
	intake_stop(d->intake);
	d->intake = NULL;
	smtpd_stop(d->smtpd);
	d->smtpd = NULL;
	uv_timer_init(d->loop, &drain_timer);
	drain_timer.data = d;
	uv_timer_start(&drain_timer, on_drain, 0, 0);
}

/* Writes the port to path through a rename, so a reader never sees half. */
static int write_port(const char *path, int port)
{
	char tmp[1100];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if (!(f = fopen(tmp, "w")))
		return -1;
	fprintf(f, "%d\n", port);
	if (fclose(f) != 0 || rename(tmp, path) != 0)
		return -1;
	return 0;
}

/* Opens the store and brings the engine back to where it stopped. */
static int restore(struct wu_daemon *d, wu_time_t now)
{
	char err[WU_ERR_MAX], *saved = NULL;
	struct wu_conf_errors errs = {0};
	int n;

	/* The same rule as --check: the last directory is made when missing. */
	if (check_store(&d->conf, &errs, 1) < 0) {
		fprintf(stderr, "warmupd: %s\n", errs.e[0].text);
		wu_conf_errors_free(&errs);
		return -1;
	}
	if (store_open(&d->store, d->conf.store_path, err, sizeof(err)) < 0) {
		fprintf(stderr, "warmupd: %s\n", err);
		return -1;
	}
	/* Commits are made durable by a worker thread (daemon_commit). */
	if (daemon_sync_init(d) < 0) {
		fprintf(stderr, "warmupd: %s\n", store_errmsg(d->store));
		return -1;
	}
	if ((n = store_recover(d->store)) < 0) {
		fprintf(stderr, "warmupd: %s\n", store_errmsg(d->store));
		return -1;
	}
	if (n > 0)
		wu_info("store: %d unit(s) left in flight by the last run are queued again", n);
	if (wu_engine_create(&d->engine, &d->conf.core, now, err, sizeof(err)) < 0) {
		fprintf(stderr, "warmupd: %s\n", err);
		return -1;
	}
	if (store_engine_load(d->store, &saved) < 0) {
		fprintf(stderr, "warmupd: %s\n", store_errmsg(d->store));
		return -1;
	}
	if (saved && wu_engine_load(d->engine, saved, now, err, sizeof(err)) < 0) {
		fprintf(stderr,
		        "warmupd: %s: %s\n"
		        "warmupd: to start without it: warmupd --reset-state --config FILE "
		        "(today's new-route cap then counts as used)\n",
		        d->conf.store_path, err);
		free(saved);
		return -1;
	}
	free(saved);
	const struct wu_day_stats *t = wu_engine_today(d->engine);
	char date[16];
	wu_date_format(t->date, date, sizeof(date));
	if (t->cap == WU_UNLIMITED)
		wu_info("%s: day %d of the schedule, warmup over (no cap), %lld sent today", date,
		        t->step, (long long)t->used);
	else
		wu_info("%s: day %d of the schedule, cap %lld, %lld used", date, t->step,
		        (long long)t->cap, (long long)t->used);
	return 0;
}

/* --reset-state: replaces the saved engine state by a fresh one whose
 * today is closed on the new route.  Returns the exit status. */
static int reset_state(struct wu_daemon *d, wu_time_t now)
{
	char err[WU_ERR_MAX] = "", *saved = NULL, *text = NULL;
	int rc = 1, was_bad = 0;

	if (store_open(&d->store, d->conf.store_path, err, sizeof(err)) < 0) {
		fprintf(stderr, "warmupd: %s\n", err);
		return 1;
	}
	if (wu_engine_create(&d->engine, &d->conf.core, now, err, sizeof(err)) < 0) {
		fprintf(stderr, "warmupd: %s\n", err);
		return 1;
	}
	if (store_engine_load(d->store, &saved) < 0) {
		fprintf(stderr, "warmupd: %s\n", store_errmsg(d->store));
		return 1;
	}
	if (saved) {
		struct wu_engine *probe = NULL;
		if (wu_engine_create(&probe, &d->conf.core, now, err, sizeof(err)) == 0)
			was_bad = wu_engine_load(probe, saved, now, err, sizeof(err)) < 0;
		wu_engine_free(probe);
	}
	wu_engine_close_today(d->engine, now);
	if (!(text = wu_engine_save_alloc(d->engine))) {
		fprintf(stderr, "warmupd: out of memory\n");
		goto out;
	}
	if (store_engine_save(d->store, text) < 0) {
		fprintf(stderr, "warmupd: %s\n", store_errmsg(d->store));
		goto out;
	}
	const struct wu_day_stats *t = wu_engine_today(d->engine);
	char date[16];
	wu_date_format(t->date, date, sizeof(date));
	printf("%s: engine state reset (%s); %s: day %d of the schedule, new route closed until "
	       "the next local day\n",
	       d->conf.store_path,
	       !saved    ? "there was none"
	       : was_bad ? err
	                 : "the old one was readable",
	       date, t->step);
	rc = 0;
out:
	free(saved);
	free(text);
	return rc;
}

/*
 * --check: the file with every error in it, then what a start needs beyond
 * it (the store's directory, the ports).  Returns the exit status.
 */
static int check_config(const char *config)
{
	struct wu_conf c;
	struct wu_conf_errors errs = {0};
	int rc;

	wu_conf_load_all(&c, config, WU_CONF_KEEP, &errs);
	if (c.core.calendar.tz[0])
		wu_zone_apply(c.core.calendar.tz);
	if (c.dir[0]) { /* the file was read: its values are there to look at */
		check_store(&c, &errs, 0);
		check_files(&c, &errs);
		check_ports(&c, &errs);
	}
	for (int i = 0; i < errs.n; i++)
		fprintf(stderr, "warmupd: %s\n", errs.e[i].text);
	if (errs.lost)
		fprintf(stderr, "warmupd: %d more error(s): out of memory\n", errs.lost);
	if ((rc = errs.n || errs.lost)) {
		fprintf(stderr, "warmupd: %s: %d error%s\n", config, errs.n + errs.lost,
		        errs.n + errs.lost == 1 ? "" : "s");
	} else {
		printf("%s: ok: schedule %s (%d days, after %s), overflow %s, new route %s%s, "
		       "store %s, listening on %s:%d%s\n",
		       config, c.schedule_path, c.core.schedule.ndays,
		       wu_after_name(c.core.schedule.after),
		       c.core.overflow == WU_OVERFLOW_OLD ? "old" : "defer",
		       c.route[WU_ROUTE_NEW].type == SND_TYPE_SMTP ? "smtp" : "sendgrid",
		       c.route[WU_ROUTE_OLD].type ? ", old route smtp" : "", c.store_path,
		       c.listen_host, c.listen_port, c.smtpd.enabled ? " and SMTP" : "");
	}
	wu_conf_errors_free(&errs);
	wu_conf_free(&c);
	return rc;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"check", no_argument, NULL, 'k'},
	    {"port-file", required_argument, NULL, 'p'},
	    {"smtp-port-file", required_argument, NULL, 's'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {"reset-state", no_argument, NULL, 'R'},
	    {NULL, 0, NULL, 0},
	};
	const char *config = NULL, *port_file = NULL, *smtp_port_file = NULL;
	int check = 0, reset = 0, c, rc = 1;
	char err[1024];
	struct wu_daemon d;

	while ((c = getopt_long(argc, argv, "c:kp:s:hV", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			config = optarg;
			break;
		case 'k':
			check = 1;
			break;
		case 'R':
			reset = 1;
			break;
		case 'p':
			port_file = optarg;
			break;
		case 's':
			smtp_port_file = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("warmupd %s\n", VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!config || optind != argc || (check && reset)) {
		usage(stderr);
		return 2;
	}
	if (check)
		return check_config(config);
	memset(&d, 0, sizeof(d));
	if (wu_conf_load(&d.conf, config, 0, err, sizeof(err)) < 0) {
		fprintf(stderr, "warmupd: %s\n", err);
		return 1;
	}
	/* One zone for the process, set before any thread starts. */
	if (wu_zone_apply(d.conf.core.calendar.tz) < 0) {
		fprintf(stderr, "warmupd: cannot set the time zone %s\n", d.conf.core.calendar.tz);
		return 1;
	}
	if (reset) {
		d.loop = uv_default_loop();
		rc = reset_state(&d, daemon_now(&d));
		goto out;
	}
	wu_log_set_level(wu_log_level_of(d.conf.log_level));
	signal(SIGPIPE, SIG_IGN);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "warmupd: libcurl cannot start\n");
		goto out;
	}
	d.loop = uv_default_loop();
	d.extra.started = daemon_now(&d);
	d.extra.started_mono = d.extra.mono_now;
	if (restore(&d, daemon_now(&d)) < 0)
		goto out;
	if (curluv_create(&d.cu, d.loop) < 0) {
		fprintf(stderr, "warmupd: cannot set up libcurl on the event loop\n");
		goto out;
	}
	/* the events table and push alerts hear every engine event */
	if (daemon_listen(&d, on_engine_event, &d) < 0 || alert_start(&d) < 0) {
		fprintf(stderr, "warmupd: out of memory\n");
		goto out;
	}
	if (cluster_start(&d.cluster, &d, err, sizeof(err)) < 0) {
		fprintf(stderr, "warmupd: %s: [cluster]: %s\n", config, err);
		goto out;
	}
	if (mx_create(&d.mx, &d) < 0) {
		fprintf(stderr, "warmupd: out of memory\n");
		goto out;
	}
	mx_on_answer(d.mx, on_mx_answer, &d);
	if (webhook_create(&d.webhook, &d, err, sizeof(err)) < 0) {
		fprintf(stderr, "warmupd: %s: %s\n", config, err);
		goto out;
	}
	for (int r = 0; r < WU_ROUTE_COUNT; r++) {
		if (d.conf.route[r].type == SND_TYPE_NONE)
			continue;
		if (snd_route_create(&d.route[r], &d.conf.route[r], d.cu, err, sizeof(err)) < 0) {
			fprintf(stderr, "warmupd: %s: [route %s]: %s\n", config,
			        wu_route_name((enum wu_route)r), err);
			goto out;
		}
	}
	uv_check_init(d.loop, &d.commit);
	d.commit.data = &d;
	uv_check_start(&d.commit, on_check);
	uv_idle_init(d.loop, &d.commit_soon);
	uv_timer_init(d.loop, &d.commit_later);
	d.commit_later.data = &d;
	uv_unref((uv_handle_t *)&d.commit_later);
	/* The loop's timers count whole milliseconds. */
	d.commit_every = (uint64_t)((d.conf.store_commit_every + 999) / 1000);
	uv_signal_init(d.loop, &d.sigterm);
	uv_signal_init(d.loop, &d.sigint);
	uv_signal_init(d.loop, &d.sighup);
	d.sigterm.data = d.sigint.data = d.sighup.data = &d;
	uv_signal_start(&d.sighup, on_hup, SIGHUP);
	uv_signal_start(&d.sigterm, on_signal, SIGTERM);
	uv_signal_start(&d.sigint, on_signal, SIGINT);
	if (intake_start(&d.intake, &d, err, sizeof(err)) < 0) {
		fprintf(stderr, "warmupd: %s\n", err);
		goto out;
	}
	if (smtpd_start(&d.smtpd, &d, err, sizeof(err)) < 0) {
		fprintf(stderr, "warmupd: %s: %s\n", config, err);
		goto out;
	}
	if (prune_start(&d.prune, &d) < 0 || dispatcher_start(&d.disp, &d) < 0) {
		fprintf(stderr, "warmupd: out of memory\n");
		goto out;
	}
	wu_info("listening on %s:%d (%s), store %s", d.conf.listen_host, intake_port(d.intake),
	        d.conf.auth_none ? "no authentication" : "bearer token required",
	        d.conf.store_path);
	if (d.webhook)
		wu_info("event webhook on %s (%s)", WEBHOOK_PATH, webhook_auth_name(d.webhook));
	if (d.smtpd)
		wu_info("SMTP intake on %s:%d (%s%s)", d.conf.smtpd.host, smtpd_port(d.smtpd),
		        d.conf.smtpd.tls == WU_SMTPD_TLS_REQUIRED   ? "STARTTLS required"
		        : d.conf.smtpd.tls == WU_SMTPD_TLS_OPTIONAL ? "STARTTLS offered"
		                                                    : "no TLS",
		        d.conf.smtpd.users_file[0] ? ", AUTH" : "");
	if (port_file && write_port(port_file, intake_port(d.intake)) < 0) {
		fprintf(stderr, "warmupd: cannot write %s\n", port_file);
		goto out;
	}
	if (smtp_port_file && (!d.smtpd || write_port(smtp_port_file, smtpd_port(d.smtpd)) < 0)) {
		fprintf(stderr, "warmupd: cannot write %s%s\n", smtp_port_file,
		        d.smtpd ? "" : ": there is no [smtp] section");
		goto out;
	}
	uv_run(d.loop, UV_RUN_DEFAULT);
	wu_info("stopped");
	rc = 0;
out:
	for (int r = 0; r < WU_ROUTE_COUNT; r++)
		snd_route_free(d.route[r]);
	webhook_free(d.webhook);
	wu_engine_free(d.engine);
	store_close(d.store);
	free(d.after);
	free(d.waiting);
	free(d.covered);
	wu_conf_free(&d.conf);
	if (d.loop)
		uv_loop_close(d.loop);
	curl_global_cleanup();
	return rc;
}
