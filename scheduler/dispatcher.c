/*
 * dispatcher.c -- the round: ready units -> engine -> batches -> routes.
 *
 * Waits the engine gives per ISP are remembered, so an ISP whose cap or
 * window is closed costs nothing until the engine said to look again; units
 * stay in the store meanwhile, whatever their number.
 *
 * A round decides (and so counts against the cap) only what the routes'
 * free connections can take the moment the commit is done: a batch per
 * free request, no queue behind busy ones.  A crash after the commit can
 * only waste what was about to go on the wire.  (Deciding for every
 * connection's worth of batches ahead burnt 196 of a cap of 300 in two
 * kills, with 104 sent.)
 *
 * Results whose commit failed (a full disk) are kept in memory and written
 * again by the next rounds until a commit takes them: their units never
 * stay "in flight" on disk while the daemon runs.
 */
#include "dispatcher.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "core/rng.h"
#include "log.h"
#include "mx.h"
#include "suppress.h"

#define ROUND_UNITS  4000 /* most units one round routes */
#define OPEN_BATCHES 64   /* batches a round fills at once */
#define MAX_SLEEP    (60 * WU_USEC)
/* Longest a v3-only unit waits before it is looked at again (a paused or
 * missing v3 route gives no time to wait for). */
#define V3ONLY_RECHECK (60 * WU_USEC)

struct batch {
	struct snd_batch sb;
	struct dispatcher *disp;
	enum wu_route route; /* the engine's route it goes by */
	int date;            /* the day its units were counted on */
	int *attempts;       /* per item */
	char msgid[64];
	struct batch *next;
};

/* The store's side of one answer: what to write for each unit and which
 * counters to add, kept until a commit has taken them. */
struct settled {
	int64_t unit_id;
	enum snd_status status;
	wu_time_t next_at; /* SND_TEMPFAIL, SND_TIMEOUT, SND_AUTHFAIL */
	char provider_id[sizeof(((struct snd_result *)0)->provider_id)];
	char error[sizeof(((struct snd_result *)0)->error)];
};

struct result_set {
	struct dispatcher *dp;
	wu_time_t now;
	int count_date;
	enum wu_route route;
	int n;
	struct settled *u;
	int64_t count[WU_ISP_MAX][WU_RESULT_COUNT];
	struct result_set *next;
};

struct dispatcher {
	struct wu_daemon *d;
	uv_timer_t timer;
	wu_time_t wait[WU_ISP_MAX];
	struct batch *staged;                /* this round's, until round_stage() */
	struct batch *queue[WU_ROUTE_COUNT]; /* committed, waiting for a free request */
	struct batch *queue_tail[WU_ROUTE_COUNT];
	int64_t waiting[WU_ROUTE_COUNT]; /* units in staged and queued batches */
	int pending[WU_ROUTE_COUNT];     /* staged and queued batches */
	int64_t inflight;                /* units handed to routes */
	struct result_set *unsaved;      /* results a failed commit did not take */
	int draining; /* stopping: nothing new is decided or handed over */
	int stopping;
	struct wu_rng rng; /* retry jitter; seeded from the kernel at start */
};

static void round_run(struct dispatcher *dp);

static void on_timer(uv_timer_t *t)
{
	round_run(t->data);
}

void dispatcher_kick(struct dispatcher *dp)
{
	if (dp && !dp->stopping)
		uv_timer_start(&dp->timer, on_timer, 0, 0);
}

void dispatcher_forget_waits(struct dispatcher *dp)
{
	for (int i = 0; i < WU_ISP_MAX; i++)
		dp->wait[i] = 0;
}

int dispatcher_inflight(const struct dispatcher *dp)
{
	return (int)dp->inflight;
}

/* Frees a batch and what it owns. */
static void batch_free(struct batch *b)
{
	if (!b)
		return;
	for (int i = 0; i < b->sb.nitems; i++)
		free((char *)b->sb.items[i].personalization);
	free(b->sb.items);
	free(b->attempts);
	free((char *)b->sb.content);
	free((char *)b->sb.raw);
	free((char *)b->sb.mail_from);
	free(b);
}

/* A fresh batch for a content, with room for max items. */
static struct batch *batch_new(struct dispatcher *dp, enum wu_route route, int64_t content_id,
                               int max, int date, int step)
{
	struct wu_daemon *d = dp->d;
	struct batch *b = calloc(1, sizeof(*b));
	char *body = NULL, *raw, *from;
	size_t len, rlen;

	if (!b)
		return NULL;
	b->sb.items = calloc((size_t)max, sizeof(*b->sb.items));
	b->attempts = calloc((size_t)max, sizeof(*b->attempts));
	if (!b->sb.items || !b->attempts ||
	    store_content(d->store, content_id, &body, &len, b->msgid, sizeof(b->msgid)) < 0) {
		if (b->sb.items)
			free(b->sb.items);
		free(b->attempts);
		free(b);
		return NULL;
	}
	/* SMTP routes send a message taken over SMTP as it came; the API
	 * route sends its v3 form, whose parts it makes from the message. */
	if (store_content_raw(d->store, content_id, &raw, &rlen, &from) < 0) {
		free(body);
		free(b->sb.items);
		free(b->attempts);
		free(b);
		return NULL;
	}
	b->sb.raw = raw;
	b->sb.raw_len = rlen;
	b->sb.mail_from = from;
	b->disp = dp;
	b->date = date;
	b->route = route;
	b->sb.role = route == WU_ROUTE_OLD ? SND_ROLE_OLD : SND_ROLE_NEW;
	b->sb.content_id = content_id;
	b->sb.content = body;
	b->sb.msgid = b->msgid;
	b->sb.warmup_day = step;
	b->sb.user = b;
	dp->pending[route]++;
	return b;
}

static void on_sent(struct snd_batch *sb, const struct snd_result *res, void *arg);
static void give_back_queued(struct dispatcher *dp);
static void results_reapply(struct dispatcher *dp);

/* Hands queued batches to a route while it has free requests. */
static void flush(struct dispatcher *dp, enum wu_route route)
{
	struct snd_route *r = dp->d->route[route];

	while (!dp->draining && dp->queue[route] && r &&
	       snd_route_inflight(r) < snd_route_capacity(r)) {
		struct batch *b = dp->queue[route];
		if (snd_route_send(r, &b->sb, on_sent, b) < 0)
			break;
		dp->queue[route] = b->next;
		if (!dp->queue[route])
			dp->queue_tail[route] = NULL;
		b->next = NULL;
		dp->waiting[route] -= b->sb.nitems;
		dp->pending[route]--;
		dp->inflight += b->sb.nitems;
		dp->d->extra.inflight[route] += b->sb.nitems;
	}
}

/* One round's batches, waiting for the durability of the turn that
 * counted them.  Turns are committed in order but made durable later (the
 * daemon syncs on a worker thread), so each round keeps its own list:
 * nothing staged in a later turn rides an earlier turn's sync. */
struct round {
	struct dispatcher *dp;
	struct batch *staged;
};

/* Drops a round's batches: their units are still queued on disk. */
static void staged_drop(struct dispatcher *dp, struct batch *list)
{
	struct batch *b, *next;

	for (b = list; b; b = next) {
		next = b->next;
		dp->waiting[b->route] -= b->sb.nitems;
		dp->pending[b->route]--;
		batch_free(b);
	}
}

/* After the round's commit: send what was decided, or drop it if the commit
 * failed. */
static void round_committed(void *arg, int ok)
{
	struct round *rd = arg;
	struct dispatcher *dp = rd->dp;
	struct batch *b, *next;

	if (!ok)
		staged_drop(dp, rd->staged);
	for (b = ok ? rd->staged : NULL; b; b = next) {
		enum wu_route route = b->route;
		next = b->next;
		b->next = NULL;
		if (dp->queue_tail[route])
			dp->queue_tail[route]->next = b;
		else
			dp->queue[route] = b;
		dp->queue_tail[route] = b;
	}
	free(rd);
	for (int r = 0; r < WU_ROUTE_COUNT; r++)
		flush(dp, (enum wu_route)r);
	if (dp->draining)
		give_back_queued(dp);
}

/* Hands this round's batches to the turn's commit. */
static int round_stage(struct dispatcher *dp)
{
	struct round *rd;

	if (!dp->staged)
		return 0;
	rd = malloc(sizeof *rd);
	if (rd) {
		rd->dp = dp;
		rd->staged = dp->staged;
		if (daemon_after_commit(dp->d, round_committed, rd) == 0) {
			dp->staged = NULL;
			return 0;
		}
		free(rd);
	}
	staged_drop(dp, dp->staged);
	dp->staged = NULL;
	return -1;
}

/* Requests a route can start now, beyond the batches already decided. */
static int free_requests(const struct dispatcher *dp, enum wu_route route)
{
	struct snd_route *r = dp->d->route[route];

	if (!r)
		return 0;
	return snd_route_capacity(r) - snd_route_inflight(r) - dp->pending[route];
}

/* Is there room to decide more for a route: a free request, or room in one
 * of this round's open batches? */
static int room(struct dispatcher *dp, enum wu_route route)
{
	struct snd_route *r = dp->d->route[route];

	if (!r)
		return 0;
	return free_requests(dp, route) > 0 ||
	       (dp->pending[route] > 0 && dp->waiting[route] < (int64_t)dp->pending[route] *
	                                                            snd_route_batch_max(r));
}

/* Units the routes can still take this round: a round reads no more rows
 * than it can stage, or an SMTP route with 8 connections would have 1000
 * rows read to use 8.  A unit goes ahead only when every route the engine
 * may answer with can take it (route_isp), so the room is the smallest of
 * theirs: with overflow = old, the old route's too, the new one paused or
 * not. */
static int64_t free_room(struct dispatcher *dp)
{
	int64_t n = -1;

	for (int r = 0; r < WU_ROUTE_COUNT; r++) {
		struct snd_route *sr = dp->d->route[r];
		int64_t cap, room;

		if (!sr || (r == WU_ROUTE_OLD && dp->d->conf.core.overflow != WU_OVERFLOW_OLD))
			continue;
		cap = (int64_t)(free_requests(dp, (enum wu_route)r) + dp->pending[r]) *
		      snd_route_batch_max(sr);
		room = cap > dp->waiting[r] ? cap - dp->waiting[r] : 0;
		if (n < 0 || room < n)
			n = room;
	}
	return n < 0 ? 0 : n;
}

/* Can a unit of this content be added for route without opening more
 * batches than the route has free requests? */
static int can_take(struct dispatcher *dp, enum wu_route route, int64_t content_id,
                    struct batch **open, int nopen)
{
	struct snd_route *r = dp->d->route[route];

	if (!r)
		return 1; /* the route is missing: route_isp says so */
	for (int i = nopen - 1; i >= 0; i--)
		if (open[i]->route == route && open[i]->sb.content_id == content_id &&
		    open[i]->sb.nitems < snd_route_batch_max(r))
			return 1;
	return free_requests(dp, route) > 0;
}

/* Finds or opens the batch of this round for (route, content). */
static struct batch *batch_for(struct dispatcher *dp, struct batch **open, int *nopen,
                               enum wu_route route, int64_t content_id, int date, int step)
{
	struct snd_route *r = dp->d->route[route];
	int max = snd_route_batch_max(r);

	for (int i = *nopen - 1; i >= 0; i--)
		if (open[i]->route == route && open[i]->sb.content_id == content_id &&
		    open[i]->sb.nitems < max)
			return open[i];
	struct batch *b = batch_new(dp, route, content_id, max, date, step);
	if (!b)
		return NULL;
	b->next = dp->staged;
	dp->staged = b;
	if (*nopen == OPEN_BATCHES) {
		memmove(open, open + 1, (OPEN_BATCHES - 1) * sizeof(*open));
		(*nopen)--;
	}
	open[(*nopen)++] = b;
	return b;
}

/* The suppression scope of the content of the units being routed: units of
 * one content come together, so one entry saves a read of its body per
 * unit. */
struct scope_cache {
	int64_t content_id; /* 0: none yet */
	struct suppress_scope sc;
};

/* Mail queued before its address was suppressed (a backlog can wait days
 * under overflow = defer) is checked again when its turn comes, with the
 * scope its content asks for.  Suppressed recipients are taken out of the
 * personalization; one left without a "to" is failed with the reason and
 * not routed.  Returns 1 to route the unit, 0 when it was dropped, -1 on a
 * store failure. */
static int recheck(struct dispatcher *dp, struct store_unit *u, struct scope_cache *cache)
{
	struct wu_daemon *d = dp->d;
	struct suppress_result res;
	char why[sizeof(res.email) + sizeof(res.reason) + 48];
	cJSON *ps, *p;
	int rc;

	if (cache->content_id != u->content_id) {
		char *body = NULL, msgid[64];
		size_t len;
		cJSON *root;

		if (store_content(d->store, u->content_id, &body, &len, msgid, sizeof(msgid)) < 0)
			return -1;
		root = cJSON_Parse(body);
		suppress_scope_of(root, &cache->sc);
		cache->sc.drop = 1;
		cache->content_id = u->content_id;
		cJSON_Delete(root);
		free(body);
	}
	if (!(p = cJSON_Parse(u->personalization)) || !(ps = cJSON_CreateArray())) {
		cJSON_Delete(p);
		return 1; /* not ours to judge: the route says what is wrong */
	}
	cJSON_AddItemToArray(ps, p);
	rc = suppress_filter(d, ps, &cache->sc, &res);
	if (rc == 0 && res.dropped_pers) {
		snprintf(why, sizeof(why), "suppressed when its turn came: %s (%s)", res.email,
		         res.reason);
		wu_info("dispatcher: unit %lld dropped, %s", (long long)u->id, why);
		rc = store_mark_failed(d->store, u->id, why, daemon_now(d)) < 0 ? -1 : 0;
	} else if (rc == 0 && res.dropped) {
		char *json = cJSON_PrintUnformatted(ps->child);

		if (json) {
			free(u->personalization);
			u->personalization = json;
		}
		rc = 1;
	} else if (rc == 0)
		rc = 1;
	cJSON_Delete(ps);
	return rc;
}

/* A unit only the v3 API route can send (template_id: SendGrid renders
 * it, an SMTP route cannot) never overflows: the new route takes it now,
 * counted at once (1, *dec filled), or it is put back in the queue until
 * the engine's time (0), where it neither blocks the units behind it nor
 * is read again each round.  -1 on a store failure. */
static int route_v3only(struct dispatcher *dp, const struct store_unit *u, int isp, int engaged,
                        wu_time_t now, struct wu_decision *dec)
{
	struct wu_daemon *d = dp->d;
	wu_time_t until = now + V3ONLY_RECHECK;

	if (d->conf.route[WU_ROUTE_NEW].type == SND_TYPE_SENDGRID && d->route[WU_ROUTE_NEW]) {
		*dec = wu_engine_route_new_for(d->engine, now, isp, engaged);
		if (dec->kind == WU_NEW)
			return 1;
		if (dec->until > now && dec->until < until)
			until = dec->until;
	}
	if (until < now + WU_USEC)
		until = now + WU_USEC;
	return store_requeue(d->store, u->id, until, "waiting for the v3 API route (template_id)");
}

/* Routes the ready units of one ISP; returns how many were routed, or -1 on
 * a store failure.  *wake gets the engine's wait when it said to wait. */
static int route_isp(struct dispatcher *dp, int isp, wu_time_t now, int max, struct batch **open,
                     int *nopen, wu_time_t *wake)
{
	struct wu_daemon *d = dp->d;
	struct store_unit *u = calloc((size_t)max, sizeof(*u));
	int *order = calloc((size_t)max, sizeof(*order));
	unsigned char *engaged = calloc((size_t)max, 1);
	struct scope_cache cache = {0};
	int n, done = 0, i, k, ne = 0;

	if (!u || !order || !engaged) {
		free(u);
		free(order);
		free(engaged);
		return -1;
	}
	n = store_ready(d->store, isp, now, u, max);
	if (n < 0) {
		free(u);
		free(order);
		free(engaged);
		return -1;
	}
	/* Engaged units first, each kind in queue order: while engaged-first
	 * holds the reserve, the others take only what the engaged ones of
	 * this round leave (engaged.h). */
	for (i = 0; i < n; i++) {
		const struct store_unit *x = &u[i];
		engaged[i] = (unsigned char)wu_engaged_is(
		    &d->conf.core.engaged, x->engaged_at ? x->engaged_at : x->learned_at, now);
		if (engaged[i])
			order[ne++] = i;
	}
	for (i = 0, k = ne; i < n; i++)
		if (!engaged[i])
			order[k++] = i;
	for (k = 0; k < n; k++) {
		struct wu_decision dec = {WU_WAIT, WU_WHY_NONE, 0, 0};
		enum wu_route route;
		struct batch *b;
		wu_time_t hold;
		int g;

		i = order[k];
		/* A unit of "other" whose domain's MX names a group moves there
		 * (the next round routes it); one whose first answer is due
		 * waits for it, up to [dns] wait. */
		if (isp == WU_ISP_OTHER && u[i].domain[0] &&
		    (g = mx_classify(d->mx, u[i].domain, now, &hold)) != WU_ISP_OTHER) {
			if (store_set_isp(d->store, u[i].id, g) < 0) {
				done = -1;
				break;
			}
			d->extra.dns_moved++;
			*wake = now;
			continue;
		}
		if (isp == WU_ISP_OTHER && u[i].domain[0] && hold > now) {
			if (hold < *wake)
				*wake = hold;
			continue;
		}
		/* Either route may be the engine's answer: both must be able to
		 * take the unit now, or it waits for the next round. */
		if (!can_take(dp, WU_ROUTE_NEW, u[i].content_id, open, *nopen) ||
		    (d->conf.core.overflow == WU_OVERFLOW_OLD &&
		     !can_take(dp, WU_ROUTE_OLD, u[i].content_id, open, *nopen)))
			break;
		switch (recheck(dp, &u[i], &cache)) {
		case -1:
			done = -1;
			goto out;
		case 0:
			continue;
		}
		if (u[i].v3only) {
			int rc = route_v3only(dp, &u[i], isp, engaged[i], now, &dec);

			if (rc < 0) {
				done = -1;
				break;
			}
			if (rc == 0)
				continue; /* it waits; the units behind it may go */
		} else
			dec = wu_engine_route_for(d->engine, now, isp, engaged[i]);
		if (dec.kind == WU_WAIT) {
			dp->wait[isp] = dec.until;
			if (dec.until < *wake)
				*wake = dec.until;
			break;
		}
		route = dec.kind == WU_NEW ? WU_ROUTE_NEW : WU_ROUTE_OLD;
		if (!d->route[route]) {
			/* Overflow old without an old route is refused by the config. */
			wu_engine_undo(d->engine, now, route, isp, dec.date);
			break;
		}
		b = batch_for(dp, open, nopen, route, u[i].content_id, dec.date,
		              wu_engine_today(d->engine)->step);
		if (!b || store_mark_inflight(d->store, u[i].id, route) < 0 ||
		    store_count(d->store, dec.date, route, isp, WU_COUNT_ROUTED, 1) < 0) {
			wu_engine_undo(d->engine, now, route, isp, dec.date);
			done = -1;
			break;
		}
		struct snd_item *it = &b->sb.items[b->sb.nitems];
		it->unit_id = u[i].id;
		it->isp = isp;
		it->personalization = u[i].personalization;
		u[i].personalization = NULL;
		b->attempts[b->sb.nitems] = u[i].attempts;
		b->sb.nitems++;
		dp->waiting[route]++;
		done++;
	}
out:
	for (int j = 0; j < n; j++)
		store_unit_clear(&u[j]);
	free(u);
	free(order);
	free(engaged);
	return done;
}

/* Arms the timer for the next round. */
static void sleep_until(struct dispatcher *dp, wu_time_t wake, wu_time_t now)
{
	wu_time_t delay = wake - now;

	if (delay > MAX_SLEEP)
		delay = MAX_SLEEP;
	if (delay < 0)
		delay = 0;
	uv_timer_start(&dp->timer, on_timer, (uint64_t)((delay + 999) / 1000), 0);
}

static void round_run(struct dispatcher *dp)
{
	struct wu_daemon *d = dp->d;
	wu_time_t now = daemon_now(d), wake, earliest;
	int64_t ready[WU_ISP_MAX];
	struct batch *open[OPEN_BATCHES];
	int nopen = 0, budget = ROUND_UNITS, nisp = wu_engine_conf(d->engine)->isps.n;
	int more = 0;

	if (dp->stopping)
		return;
	if (dp->unsaved && daemon_txn(d) == 0)
		results_reapply(dp);
	if (dp->draining)
		return;
	if (wu_engine_tick(d->engine, now))
		dispatcher_forget_waits(dp);
	daemon_drain_events(d);
	wake = wu_engine_next_wakeup(d->engine, now);
	if (!room(dp, WU_ROUTE_NEW) && !room(dp, WU_ROUTE_OLD))
		return; /* completions will kick the next round */
	if (daemon_txn(d) < 0)
		goto retry;
	if (store_ready_isps(d->store, now, nisp, ready, 0, &earliest) < 0)
		goto fail;
	if (earliest < wake)
		wake = earliest;
	for (int isp = 0; isp < nisp && budget > 0; isp++) {
		int n;
		if (!ready[isp])
			continue;
		if (dp->wait[isp] > now) {
			if (dp->wait[isp] < wake)
				wake = dp->wait[isp];
			continue;
		}
		int64_t max = free_room(dp);
		if (max > budget)
			max = budget;
		if (max > 1000)
			max = 1000;
		if (max <= 0)
			break;
		n = route_isp(dp, isp, now, (int)max, open, &nopen, &wake);
		if (n < 0)
			goto fail;
		budget -= n;
		if (n == max || budget <= 0)
			more = 1;
	}
	if (round_stage(dp) < 0)
		goto fail;
	if (more)
		wake = now;
	sleep_until(dp, wake, now);
	return;
fail:
	wu_error("dispatcher: %s", store_errmsg(d->store));
	daemon_txn_fail(d, "dispatcher");
	/* The turn rolls back: what this round marked is queued again. */
	staged_drop(dp, dp->staged);
	dp->staged = NULL;
retry:
	sleep_until(dp, now + WU_USEC, now);
}

/* The engine's name for a route's answer. */
static enum wu_result result_of(enum snd_status st)
{
	switch (st) {
	case SND_ACCEPTED:
		return WU_ACCEPTED;
	case SND_TIMEOUT:
		return WU_TIMEOUT;
	case SND_TEMPFAIL:
		return WU_TEMPFAIL;
	case SND_PERMFAIL:
	case SND_AUTHFAIL: /* the key is wrong, not the message: kept, route paused */
	default:
		return WU_PERMFAIL;
	}
}

static void results_free(struct result_set *rs)
{
	if (rs) {
		free(rs->u);
		free(rs);
	}
}

static void results_committed(void *arg, int ok);

/* Writes a result set into the turn's transaction; its after-commit
 * callback frees it, or keeps it for the next round if the commit fails. */
static void results_apply(struct dispatcher *dp, struct result_set *rs)
{
	struct wu_daemon *d = dp->d;
	int rc = 0;

	for (int i = 0; i < rs->n && rc == 0; i++) {
		const struct settled *u = &rs->u[i];

		switch (u->status) {
		case SND_ACCEPTED:
			rc = store_mark_sent(d->store, u->unit_id, u->provider_id, rs->now);
			break;
		case SND_PERMFAIL:
			rc = store_mark_failed(d->store, u->unit_id, u->error, rs->now);
			break;
		default:
			rc = store_requeue(d->store, u->unit_id, u->next_at, u->error);
			break;
		}
	}
	for (int isp = 0; isp < WU_ISP_MAX && rc == 0; isp++)
		for (int r = 0; r < WU_RESULT_COUNT && rc == 0; r++)
			if (rs->count[isp][r])
				rc = store_count(d->store, rs->count_date, rs->route, isp, r,
				                 rs->count[isp][r]);
	if (rc < 0)
		daemon_txn_fail(d, "dispatcher: recording results");
	if (daemon_after_commit(d, results_committed, rs) < 0) {
		daemon_txn_fail(d, "dispatcher: out of memory");
		rs->next = dp->unsaved;
		dp->unsaved = rs;
	}
}

/* After the commit of a result set: done, or kept for the next round. */
static void results_committed(void *arg, int ok)
{
	struct result_set *rs = arg;
	struct dispatcher *dp = rs->dp;

	if (ok) {
		results_free(rs);
		return;
	}
	wu_warn("dispatcher: the results of %d unit%s could not be committed; written again "
	        "by the next round",
	        rs->n, rs->n == 1 ? "" : "s");
	rs->next = dp->unsaved;
	dp->unsaved = rs;
	if (!dp->stopping)
		uv_timer_start(&dp->timer, on_timer, 1000, 0);
}

/* Writes again what failed commits did not take. */
static void results_reapply(struct dispatcher *dp)
{
	struct result_set *rs = dp->unsaved, *next;

	dp->unsaved = NULL;
	for (; rs; rs = next) {
		next = rs->next;
		rs->next = NULL;
		results_apply(dp, rs);
	}
}

/* One answer for a batch, translated into reports for the engine -- one
 * per ISP and status, however many units it covered (a 429 on a request of
 * 1000 is one 429) -- and the engine's verdicts into the units' new states
 * in the store (through a result set that survives a failed commit).
 * scope: whose answer it is: the route's (the engine knows whether its
 * replies speak for the ISP), or nobody's (a send not made). */
static void batch_settle(struct dispatcher *dp, struct batch *b, const struct snd_result *res,
                         wu_time_t now, enum wu_scope scope)
{
	struct wu_daemon *d = dp->d;
	struct result_set *rs = calloc(1, sizeof(*rs));
	int first_of[WU_ISP_MAX][SND_AUTHFAIL + 1]; /* the first unit of each ISP and status */
	double jitter;
	int attempts = 0;

	if (rs)
		rs->u = calloc((size_t)b->sb.nitems, sizeof(*rs->u));
	if (!rs || !rs->u) {
		/* The units stay in flight on disk and return to the queue at the
		 * next start; nothing is lost, at worst sent twice. */
		wu_error("dispatcher: out of memory recording %d result(s)", b->sb.nitems);
		results_free(rs);
		return;
	}
	rs->dp = dp;
	rs->now = now;
	rs->route = b->route;
	rs->n = b->sb.nitems;
	/* One retry time for the whole batch, so that its units come back
	 * together and go out again as one request. */
	for (int i = 0; i < b->sb.nitems; i++)
		if (b->attempts[i] > attempts)
			attempts = b->attempts[i];
	jitter = wu_rng_unit(&dp->rng);
	memset(first_of, -1, sizeof(first_of));
	for (int i = 0; i < b->sb.nitems; i++) {
		struct settled *u = &rs->u[i];
		int isp = b->sb.items[i].isp, first;
		enum snd_status st = res[i].status;
		struct wu_report rep;
		struct wu_verdict v;

		u->unit_id = b->sb.items[i].unit_id;
		snprintf(u->provider_id, sizeof(u->provider_id), "%s", res[i].provider_id);
		snprintf(u->error, sizeof(u->error), "%s", res[i].error);
		first = first_of[isp][st];
		if (first < 0)
			first_of[isp][st] = i;
		if (first >= 0) { /* one verdict per ISP and status: the first unit's */
			u->status = rs->u[first].status;
			u->next_at = rs->u[first].next_at;
			continue;
		}
		memset(&rep, 0, sizeof(rep));
		rep.route = b->route;
		rep.isp = isp;
		rep.result = result_of(st);
		rep.scope = scope;
		rep.sent_date = b->date;
		rep.attempts = attempts + 1;
		rep.jitter = jitter;
		rep.auth = st == SND_AUTHFAIL;
		rep.code = res[i].code;
		rep.text = res[i].error;
		for (int j = i; j < b->sb.nitems; j++)
			if (b->sb.items[j].isp == isp && res[j].status == st) {
				rep.n++;
				if (res[j].retry_after > rep.retry_after)
					rep.retry_after = res[j].retry_after;
			}
		v = wu_engine_report(d->engine, now, &rep);
		/* The store keeps what the engine counted, where it counted it. */
		if (v.count_n > 0 && v.count < WU_RESULT_COUNT) {
			rs->count[isp][v.count] += v.count_n;
			rs->count_date = v.count_date;
		}
		u->status = v.action == WU_ACT_SENT   ? SND_ACCEPTED
		            : v.action == WU_ACT_FAIL ? SND_PERMFAIL
		                                      : SND_TEMPFAIL; /* queued again */
		u->next_at = v.retry_at;
	}
	if (!rs->count_date)
		rs->count_date = wu_engine_today(d->engine)->date;
	if (daemon_txn(d) < 0) {
		rs->next = dp->unsaved;
		dp->unsaved = rs;
		uv_timer_start(&dp->timer, on_timer, 1000, 0);
		return;
	}
	results_apply(dp, rs);
}

/* Stopping: batches decided but not handed to a route go back to the queue
 * and give their units back to the cap; nothing of them was sent. */
static void give_back_queued(struct dispatcher *dp)
{
	wu_time_t now = daemon_now(dp->d);

	for (int route = 0; route < WU_ROUTE_COUNT; route++)
		while (dp->queue[route]) {
			struct batch *b = dp->queue[route];
			struct snd_result *res = calloc((size_t)b->sb.nitems, sizeof(*res));

			dp->queue[route] = b->next;
			if (!dp->queue[route])
				dp->queue_tail[route] = NULL;
			dp->waiting[route] -= b->sb.nitems;
			dp->pending[route]--;
			if (res) {
				for (int i = 0; i < b->sb.nitems; i++) {
					res[i].status = SND_TEMPFAIL;
					snprintf(res[i].error, sizeof(res[i].error),
					         "not sent: warmupd was stopping");
				}
				batch_settle(dp, b, res, now, WU_SCOPE_API);
				free(res);
			}
			batch_free(b);
		}
}

static void on_sent(struct snd_batch *sb, const struct snd_result *res, void *arg)
{
	struct batch *b = arg;
	struct dispatcher *dp = b->disp;
	struct wu_daemon *d = dp->d;
	wu_time_t now = daemon_now(d);
	enum wu_route route;
	int gave_back = 0;

	(void)sb;
	for (int i = 0; i < b->sb.nitems; i++)
		gave_back |= res[i].status != SND_ACCEPTED;
	dp->inflight -= b->sb.nitems;
	d->extra.inflight[b->route] -= b->sb.nitems;
	batch_settle(dp, b, res, now, WU_SCOPE_ROUTE);
	if (res[0].status != SND_ACCEPTED && res[0].status != SND_AUTHFAIL)
		wu_warn("%s route: %s: %s (%d unit%s)", wu_route_name(b->route),
		        snd_status_name(res[0].status), res[0].error, b->sb.nitems,
		        b->sb.nitems == 1 ? "" : "s");
	daemon_drain_events(d);
	if (gave_back)
		dispatcher_forget_waits(dp);
	route = b->route;
	batch_free(b);
	if (!dp->stopping && !dp->draining) {
		flush(dp, route);
		dispatcher_kick(dp);
	}
}

/* Engine events: a new day or a resumed route changes what may be sent. */
static void on_event(void *arg, const struct wu_event *ev)
{
	struct dispatcher *dp = arg;

	if (ev->kind == WU_EV_DAY || ev->kind == WU_EV_RESUME) {
		dispatcher_forget_waits(dp);
		dispatcher_kick(dp);
	}
}

int dispatcher_start(struct dispatcher **dpp, struct wu_daemon *d)
{
	struct dispatcher *dp = calloc(1, sizeof(*dp));
	uint64_t seed;

	if (!dp || daemon_listen(d, on_event, dp) < 0) {
		free(dp);
		return -1;
	}
	dp->d = d;
	/* The jitter only spreads retries apart (between restarts and nodes
	 * too); it needs no secrecy, so without the kernel's bytes the clock
	 * and the pid do. */
	if (getrandom(&seed, sizeof(seed), 0) != (ssize_t)sizeof(seed))
		seed = uv_hrtime() ^ ((uint64_t)getpid() << 32);
	wu_rng_seed(&dp->rng, seed, 0);
	uv_timer_init(d->loop, &dp->timer);
	dp->timer.data = dp;
	*dpp = dp;
	dispatcher_kick(dp);
	return 0;
}

void dispatcher_drain(struct dispatcher *dp)
{
	if (!dp || dp->draining)
		return;
	dp->draining = 1;
	give_back_queued(dp);
}

static void on_closed(uv_handle_t *h)
{
	struct dispatcher *dp = h->data;

	while (dp->unsaved) {
		struct result_set *rs = dp->unsaved;
		dp->unsaved = rs->next;
		results_free(rs);
	}
	for (int r = 0; r < WU_ROUTE_COUNT; r++)
		while (dp->queue[r]) {
			struct batch *b = dp->queue[r];
			dp->queue[r] = b->next;
			batch_free(b);
		}
	free(dp);
}

void dispatcher_stop(struct dispatcher *dp)
{
	if (!dp || dp->stopping)
		return;
	dp->stopping = 1;
	daemon_unlisten(dp->d, on_event, dp);
	uv_timer_stop(&dp->timer);
	uv_close((uv_handle_t *)&dp->timer, on_closed);
}
