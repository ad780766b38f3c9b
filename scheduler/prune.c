/*
 * NAME
 *	prune.c -- keeps the store bounded.
 *
 * SYNOPSIS
 *	prune_start(&d->prune, d);     (after the store is open)
 *	prune_stop(d->prune);          (when stopping)
 *
 * DESCRIPTION
 *	Every [store] prune_every a timer removes what is older than
 *	[store] keep: sent and failed units, the contents (message bodies) no
 *	unit refers to any more, and old events.  Webhook dedup rows are pruned
 *	by the webhook itself (webhook.c, a few days).  Each step takes at
 *	most PRUNE_STEP units in the loop turn's transaction, so a backlog of
 *	millions never holds the loop: a full step runs again at the next
 *	turn, a short one waits for the next period.  After the step's commit
 *	the pages it freed go back to the file system (incremental vacuum).
 *
 * DIAGNOSTICS
 *	A failed step is logged and retried at the next period; nothing here is
 *	fatal.  What was pruned is logged at debug level.
 */
#include "prune.h"

#include <stdlib.h>

#include "daemon.h"
#include "log.h"

/* Units per step: about 5 ms of deletes on the bench machine, and one
 * step's freed pages are a few hundred. */
#define PRUNE_STEP   2000
#define VACUUM_PAGES 2048

struct prune {
	struct wu_daemon *d;
	uv_timer_t timer;
	int64_t total; /* units removed since the start */
};

static void on_timer(uv_timer_t *t);

/* After the step's commit: free pages back to the file system, and the
 * next step at once when this one was full. */
static void step_committed(void *arg, int ok)
{
	struct prune *p = arg;
	struct wu_daemon *d = p->d;

	if (ok && store_vacuum_step(d->store, VACUUM_PAGES) < 0)
		wu_warn("prune: incremental vacuum: %s", store_errmsg(d->store));
}

static void on_timer(uv_timer_t *t)
{
	struct prune *p = t->data;
	struct wu_daemon *d = p->d;
	wu_time_t before = daemon_now(d) - d->conf.store_keep;
	int n, ne, ng = 0;
	wu_time_t age = wu_engine_conf(d->engine)->engaged.age;

	if (d->stopping)
		return;
	if (daemon_txn(d) < 0)
		return;
	/* An engagement older than the engagement age counts for nothing. */
	if ((n = store_prune_some(d->store, before, PRUNE_STEP)) < 0 ||
	    (ne = store_events_prune(d->store, before, PRUNE_STEP)) < 0 ||
	    (age > 0 && (ng = store_engaged_prune(d->store, daemon_now(d) - age, PRUNE_STEP)) < 0)) {
		wu_warn("prune: %s", store_errmsg(d->store));
		daemon_txn_fail(d, "prune");
		return;
	}
	if (n == 0 && ne == 0 && ng == 0)
		return;
	p->total += n;
	wu_debug("prune: %d unit%s and %d event%s older than keep removed (%lld in all), %d "
	         "engagement%s older than engaged_age",
	         n, n == 1 ? "" : "s", ne, ne == 1 ? "" : "s", (long long)p->total, ng,
	         ng == 1 ? "" : "s");
	if (daemon_after_commit(d, step_committed, p) < 0)
		return;
	/* A full step: more is waiting; go on at the next loop turn. */
	if (n == PRUNE_STEP || ne == PRUNE_STEP || ng == PRUNE_STEP)
		uv_timer_start(&p->timer, on_timer, 0, (uint64_t)(d->conf.store_prune_every / 1000));
}

int prune_start(struct prune **pp, struct wu_daemon *d)
{
	struct prune *p;
	uint64_t every = (uint64_t)(d->conf.store_prune_every / 1000);

	*pp = NULL;
	if (d->conf.store_keep <= 0)
		return 0;
	if (!(p = calloc(1, sizeof(*p))))
		return -1;
	p->d = d;
	uv_timer_init(d->loop, &p->timer);
	p->timer.data = p;
	if (every == 0)
		every = 1000;
	uv_timer_start(&p->timer, on_timer, every, every);
	*pp = p;
	return 0;
}

static void on_closed(uv_handle_t *h)
{
	free(h->data);
}

void prune_stop(struct prune *p)
{
	if (!p)
		return;
	uv_timer_stop(&p->timer);
	uv_close((uv_handle_t *)&p->timer, on_closed);
}
