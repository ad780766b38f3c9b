/*
 * NAME
 *	alert_watch.c -- the periodic look for alerts no event raises.
 *
 * SYNOPSIS
 *	alert_watch_start(&a->watch, a);   (from alert_start)
 *	alert_watch_stop(a->watch);        (from alert_stop)
 *
 * DESCRIPTION
 *	Every [alert] backlog_check: the queued units against
 *	backlog_threshold (backlog, then backlog_ok), the oldest template
 *	unit's wait against template_wait (template_wait, then
 *	template_wait_ok), and the free space of the file system that holds
 *	the store against disk_min_free (disk_low, then disk_ok).  statvfs on
 *	the store's directory counts the blocks an unprivileged writer may
 *	still use: SQLite runs as the daemon's user, so root's reserve does
 *	not help it.  Whether a figure fires or resolves is the core's
 *	decision (core/level.h); this file measures and words the alert.
 *
 * DIAGNOSTICS
 *	Each alert is also a log line.  A store whose directory cannot be
 *	measured (it was moved away) is one disk_unknown alert and one log
 *	line, not one at every look.
 */
#include "alert_watch.h"

#include <cJSON.h>

#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "alert.h"
#include "core/level.h"
#include "daemon.h"
#include "log.h"

struct alert_watch {
	struct alert *a;
	uv_timer_t timer;
	struct wu_level backlog, v3_wait, disk;
	int disk_unknown; /* statvfs failed: said once */
	char dir[1024];   /* the store's directory */
};

/* Template mail waits for the v3 route whatever the overflow policy. */
static void check_v3_wait(struct alert_watch *w, struct wu_daemon *d)
{
	int64_t n, oldest;
	wu_time_t age;
	char what[200];
	struct alert_msg m = {.route = WU_ROUTE_NEW};

	if (store_v3only_waiting(d->store, &n, &oldest) < 0)
		return;
	age = n ? daemon_now(d) - oldest : 0;
	switch (wu_level_wait(&w->v3_wait, age, d->conf.alert_v3_wait)) {
	case WU_LEVEL_FIRE:
		snprintf(what, sizeof(what),
		         "%lld template unit%s waiting for the v3 route, the oldest for %lld min",
		         (long long)n, n == 1 ? "" : "s", (long long)(age / WU_MINUTE));
		m.kind = "template_wait";
		wu_warn("alert: %s", what);
		break;
	case WU_LEVEL_CLEAR:
		snprintf(what, sizeof(what),
		         "no template unit has waited longer than its limit any more");
		m.kind = "template_wait_ok";
		wu_info("alert: %s", what);
		break;
	default:
		return;
	}
	m.what = what;
	if ((m.details = cJSON_CreateObject())) {
		cJSON_AddNumberToObject(m.details, "waiting", (double)n);
		cJSON_AddNumberToObject(m.details, "oldest_wait_s", (double)(age / WU_USEC));
		cJSON_AddNumberToObject(m.details, "threshold_s",
		                        (double)(d->conf.alert_v3_wait / WU_USEC));
	}
	alert_raise(w->a, &m);
}

static void check_backlog(struct alert_watch *w, struct wu_daemon *d)
{
	int64_t depth[4], n, thr = d->conf.alert_backlog;
	char what[200];
	struct alert_msg m = {.route = -1};

	if (store_depth(d->store, depth) < 0)
		return;
	n = depth[STORE_QUEUED];
	switch (wu_level_backlog(&w->backlog, n, thr)) {
	case WU_LEVEL_FIRE:
		snprintf(what, sizeof(what), "backlog of %lld queued units is above %lld",
		         (long long)n, (long long)thr);
		m.kind = "backlog";
		wu_warn("alert: %s", what);
		break;
	case WU_LEVEL_CLEAR:
		snprintf(what, sizeof(what), "backlog of %lld queued units is below %lld again",
		         (long long)n, (long long)thr);
		m.kind = "backlog_ok";
		wu_info("alert: %s", what);
		break;
	default:
		return;
	}
	m.what = what;
	if ((m.details = cJSON_CreateObject())) {
		cJSON_AddNumberToObject(m.details, "queued", (double)n);
		cJSON_AddNumberToObject(m.details, "threshold", (double)thr);
	}
	alert_raise(w->a, &m);
}

static void check_disk(struct alert_watch *w, struct wu_daemon *d)
{
	struct statvfs st;
	int rc;
	double share, total, avail;
	char what[300];
	struct alert_msg m = {.route = -1, .key = "store"};

	if (d->conf.alert_disk_free <= 0)
		return;
	rc = statvfs(w->dir, &st);
	if (rc < 0 || st.f_blocks == 0) {
		const char *why = rc < 0 ? strerror(errno) : "a file system of no blocks";

		if (!w->disk_unknown) {
			wu_warn("alert: cannot measure the free space of %s: %s", w->dir, why);
			alert_notice(
			    w->a, "disk_unknown",
			    "cannot measure the free space of the store's disk (%.200s): %s",
			    w->dir, why);
		}
		w->disk_unknown = 1;
		/* Once it can be measured again, its state is said afresh. */
		w->disk.firing = 0;
		return;
	}
	w->disk_unknown = 0;
	total = (double)st.f_blocks * (double)st.f_frsize;
	avail = (double)st.f_bavail * (double)st.f_frsize;
	share = avail / total;
	switch (wu_level_disk(&w->disk, share, d->conf.alert_disk_free)) {
	case WU_LEVEL_FIRE:
		snprintf(what, sizeof(what),
		         "the store's disk (%.200s) has %.1f%% free (%.0f MiB), below %.1f%%",
		         w->dir, share * 100, avail / 1048576, d->conf.alert_disk_free * 100);
		m.kind = "disk_low";
		wu_warn("alert: %s", what);
		break;
	case WU_LEVEL_CLEAR:
		snprintf(what, sizeof(what), "the store's disk (%.200s) has %.1f%% free again",
		         w->dir, share * 100);
		m.kind = "disk_ok";
		wu_info("alert: %s", what);
		break;
	default:
		return;
	}
	m.what = what;
	if ((m.details = cJSON_CreateObject())) {
		cJSON_AddStringToObject(m.details, "path", w->dir);
		cJSON_AddNumberToObject(m.details, "free_share", share);
		cJSON_AddNumberToObject(m.details, "free_bytes", avail);
		cJSON_AddNumberToObject(m.details, "total_bytes", total);
		cJSON_AddNumberToObject(m.details, "threshold", d->conf.alert_disk_free);
	}
	alert_raise(w->a, &m);
}

static void on_timer(uv_timer_t *t)
{
	struct alert_watch *w = t->data;
	struct wu_daemon *d = alert_daemon(w->a);

	check_v3_wait(w, d);
	check_backlog(w, d);
	check_disk(w, d);
}

int alert_watch_start(struct alert_watch **wp, struct alert *a)
{
	struct wu_daemon *d = alert_daemon(a);
	struct alert_watch *w;
	char buf[sizeof(w->dir)];
	uint64_t every;

	*wp = NULL;
	if (d->conf.alert_backlog <= 0 && d->conf.alert_v3_wait <= 0 &&
	    d->conf.alert_disk_free <= 0)
		return 0;
	if (!(w = calloc(1, sizeof(*w))))
		return -1;
	w->a = a;
	/* dirname() works in place: copy in, then copy its answer out. */
	snprintf(buf, sizeof(buf), "%s", d->conf.store_path);
	snprintf(w->dir, sizeof(w->dir), "%s", dirname(buf));
	uv_timer_init(d->loop, &w->timer);
	w->timer.data = w;
	every = (uint64_t)(d->conf.alert_backlog_every / 1000);
	if (every == 0)
		every = 1000;
	uv_timer_start(&w->timer, on_timer, every, every);
	*wp = w;
	return 0;
}

static void on_closed(uv_handle_t *h)
{
	free(h->data);
}

void alert_watch_stop(struct alert_watch *w)
{
	if (!w)
		return;
	uv_close((uv_handle_t *)&w->timer, on_closed);
}
