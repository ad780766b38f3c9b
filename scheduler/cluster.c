/*
 * NAME
 *	cluster.c -- the shared ledger: today's cap of several nodes counted
 *	in Redis, taken in leases on the loop.
 *
 * SYNOPSIS
 *	cluster_start(&d->cluster, d, err, sizeof(err));   (after the engine)
 *	cluster_stop(d->cluster);                          (after the dispatcher)
 *
 * DESCRIPTION
 *	The engine asks the ledger (core/ledger.h) for each new-route unit; the
 *	ledger answers from the lease it holds, never waiting.  When the lease
 *	falls to a quarter of its size the next one is asked for (EVALSHA of
 *	CLUSTER_LUA_LEASE), so a node that sends steadily never waits for one;
 *	a node whose lease is empty and whose next one is on its way makes the
 *	unit wait (WU_WHY_LEASE) and is kicked when it comes.  The lease's size
 *	follows the node's rate: ten seconds of what it sent in the last
 *	minute, doubled while leases go in under ten seconds, from LEASE_MIN
 *	to [cluster] lease_max; the script gives at most half of what is left,
 *	so the last units of a day spread over the nodes still sending.
 *
 *	Once a second (every 8 s while nothing moves) the node runs
 *	CLUSTER_LUA_SYNC: it states its claim (used today + lease held),
 *	publishes its numbers for the cluster view, and reads the shared pause
 *	and every node's numbers back (what it does with them is in
 *	cluster_view.c; the webhook's dedup in cluster_dedup.c, the shared
 *	suppressions and cuts in cluster_bus.c).  A lease unused for
 *	IDLE_RETURN, a lease of a day that ended, and the lease at a stop go
 *	back (CLUSTER_LUA_RETURN).
 *
 *	Redis unreachable (a refused connection, a closed one, an answer
 *	later than [cluster] timeout): the units already leased go on, then
 *	the ledger answers WU_LEDGER_DOWN (the overflow policy applies); an
 *	alert goes out once per outage; reconnects back off from 250 ms to
 *	5 s.  There is no private cap to fall back on.
 *
 * DIAGNOSTICS
 *	Connection losses and recoveries are alerts (alert_notice) and rows of
 *	the events table; script errors are logged at error level.  The
 *	password is never logged.
 */
#include "cluster.h"

#include <hiredis/adapters/libuv.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alert.h"
#include "cluster_lua.h"
#include "cluster_priv.h"
#include "core/ledger.h"
#include "daemon.h"
#include "dispatcher.h"
#include "log.h"

#define LEASE_MIN      8
#define SYNC_EVERY_MS  1000
#define SYNC_IDLE_MAX  8     /* an idle node syncs every 8 s at most (ticks of SYNC_EVERY_MS) */
#define NODE_TTL_S     30    /* a node silent this long leaves the view */
#define HOLD_S         3     /* grace after Redis lost a day: every live node re-claims */
#define IDLE_RETURN_MS 30000 /* an unused lease goes back after this */
#define BACKOFF_MIN_MS 250
#define BACKOFF_MAX_MS 5000
#define COUNT_MAX      9007199254740992LL /* 2^53: Lua's exact integers */

static const char *const scripts[SC_COUNT] = {CLUSTER_LUA_LEASE, CLUSTER_LUA_RETURN,
                                              CLUSTER_LUA_SYNC, CLUSTER_LUA_PAUSE};

static void connect_now(struct cluster *c);
static void sync_soon(struct cluster *c);
static void on_tick(uv_timer_t *t);
static void lease_ask(struct cluster *c);
static void lost(struct cluster *c, const char *why);

static uint64_t mono_ms(struct cluster *c)
{
	return uv_now(c->d->loop);
}

/* Units that wait for a lease (or for Redis) are asked about again now. */
void cluster_kick(struct cluster *c)
{
	if (c->d->disp) {
		dispatcher_forget_waits(c->d->disp);
		dispatcher_kick(c->d->disp);
	}
}

static void day_key(struct cluster *c, int date, char *buf, size_t len)
{
	snprintf(buf, len, "%s%d", c->k_day_prefix, date);
}

/* Counts a command sent; its answer calls cluster_answered(). */
void cluster_sent(struct cluster *c)
{
	c->round_trips++;
	if (c->rn < RING)
		c->sent_ms[(c->rhead + c->rn++) % RING] = mono_ms(c);
}

void cluster_answered(struct cluster *c)
{
	if (c->rn > 0) {
		c->rhead = (c->rhead + 1) % RING;
		c->rn--;
	}
}

/* A reply that is an error or missing: logs it, and says so. */
int cluster_bad_reply(struct cluster *c, const redisReply *r, const char *what)
{
	if (!r)
		return 1; /* the connection went: lost() says it */
	if (r->type == REDIS_REPLY_ERROR) {
		wu_error("cluster: %s: Redis answered: %.200s", what, r->str);
		if (strncmp(r->str, "NOSCRIPT", 8) == 0 && c->ac)
			lost(c, "the scripts are gone (Redis restarted under the connection)");
		return 1;
	}
	return 0;
}

int64_t cluster_int_at(const redisReply *r, size_t i)
{
	if (!r || r->type != REDIS_REPLY_ARRAY || i >= r->elements)
		return 0;
	if (r->element[i]->type == REDIS_REPLY_INTEGER)
		return r->element[i]->integer;
	if (r->element[i]->type == REDIS_REPLY_STRING)
		return strtoll(r->element[i]->str, NULL, 10);
	return 0;
}

const char *cluster_str_at(const redisReply *r, size_t i)
{
	if (!r || r->type != REDIS_REPLY_ARRAY || i >= r->elements ||
	    r->element[i]->type != REDIS_REPLY_STRING)
		return "";
	return r->element[i]->str;
}

/* ---- the outage ---------------------------------------------------------- */

/* Records a notice in the events table and as an alert. */
static void notice(struct cluster *c, const char *kind, const char *text)
{
	struct wu_daemon *d = c->d;

	wu_warn("%s: %s", kind, text);
	if (daemon_txn(d) == 0 && store_event_add(d->store, daemon_now(d), kind, "new", text) < 0)
		wu_warn("store: cannot record the event: %s", store_errmsg(d->store));
	alert_notice(d->alert, kind, "%s", text);
}

static void went_down(struct cluster *c, const char *why)
{
	char text[720];

	if (c->down)
		return;
	c->down = 1;
	snprintf(text, sizeof(text),
	         "Redis at %s cannot be reached (%s): no new leases; %" PRId64
	         " unit(s) still leased here, then the new route stops",
	         c->conf->where, why, c->lease);
	notice(c, "cluster_down", text);
}

static void on_retry(uv_timer_t *t)
{
	connect_now(t->data);
}

static void schedule_retry(struct cluster *c)
{
	if (c->stopping)
		return;
	c->backoff = c->backoff ? c->backoff * 2 : BACKOFF_MIN_MS;
	if (c->backoff > BACKOFF_MAX_MS)
		c->backoff = BACKOFF_MAX_MS;
	uv_timer_start(&c->retry, on_retry, c->backoff, 0);
}

static void on_timer_closed(uv_handle_t *h)
{
	struct cluster *c = h->data;

	if (++c->nclosed == 3 && !c->ac)
		free(c);
}

/* Once stopping and disconnected, the last timer closes and frees c. */
static void maybe_free(struct cluster *c)
{
	if (!c->stopping || c->ac || c->stop_closed)
		return;
	c->stop_closed = 1;
	uv_close((uv_handle_t *)&c->stop, on_timer_closed);
}

/* The connection is gone or unusable: forget it and reconnect later. */
static void lost(struct cluster *c, const char *why)
{
	redisAsyncContext *ac = c->ac;

	c->ac = NULL;
	c->ready = 0;
	c->asking = 0;
	c->syncing = 0;
	c->bus_reading = 0;
	c->rn = 0;
	c->disconnects++;
	if (ac)
		redisAsyncFree(ac); /* pending callbacks run with NULL replies */
	if (!c->stopping) {
		went_down(c, why);
		schedule_retry(c);
		cluster_kick(c); /* units waiting for a lease now take the overflow way */
	}
	maybe_free(c);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
	struct cluster *c = ac->data;

	(void)status;
	if (!c || ac != c->ac)
		return;
	c->ac = NULL; /* hiredis frees it */
	c->ready = 0;
	c->asking = 0;
	c->syncing = 0;
	c->bus_reading = 0;
	c->rn = 0;
	if (c->stopping) {
		maybe_free(c);
		return;
	}
	c->disconnects++;
	went_down(c, "the connection closed");
	schedule_retry(c);
	cluster_kick(c);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
	struct cluster *c = ac->data;

	if (!c || ac != c->ac)
		return;
	if (status == REDIS_OK)
		return; /* ready once the scripts are loaded */
	c->ac = NULL;   /* hiredis frees it after this callback */
	c->failures++;
	if (c->stopping) {
		maybe_free(c);
		return;
	}
	went_down(c, ac->errstr[0] ? ac->errstr : "cannot connect");
	schedule_retry(c);
	cluster_kick(c);
}

static void on_auth(redisAsyncContext *ac, void *reply, void *priv)
{
	struct cluster *c = priv;

	(void)ac;
	cluster_answered(c);
	if (reply && ((redisReply *)reply)->type == REDIS_REPLY_ERROR)
		wu_error("cluster: Redis at %s refused the %s: %.200s", c->conf->where,
		         c->conf->password ? "password" : "database", ((redisReply *)reply)->str);
}

static void on_script(redisAsyncContext *ac, void *reply, void *priv)
{
	struct script_slot *s = priv;
	struct cluster *c = s->c;
	redisReply *r = reply;

	(void)ac;
	cluster_answered(c);
	if (!r || c->stopping)
		return;
	if (r->type != REDIS_REPLY_STRING || r->len != 40) {
		cluster_bad_reply(c, r, "loading a script");
		/* an AUTH or SELECT that failed fails these too: start again */
		if (c->ac)
			lost(c, "the server refused the connection's set-up");
		return;
	}
	memcpy(c->sha[s->i], r->str, 40);
	c->sha[s->i][40] = '\0';
	if (++c->loaded < SC_COUNT)
		return;
	c->ready = 1;
	c->failures = 0;
	c->backoff = 0;
	if (c->down) {
		char text[360];

		c->down = 0;
		snprintf(text, sizeof(text), "Redis at %s is back: leases resume", c->conf->where);
		notice(c, "cluster_up", text);
	} else if (!c->ever_up) {
		wu_info("cluster: node %s of %s on %s", c->conf->node, c->conf->name,
		        c->conf->where);
	}
	c->ever_up = 1;
	c->exhausted = 0;
	cluster_kick(c);
}

static void connect_now(struct cluster *c)
{
	redisAsyncContext *ac;

	if (c->stopping || c->ac)
		return;
	ac = redisAsyncConnect(c->conf->host, c->conf->port);
	if (!ac || ac->err) {
		c->failures++;
		went_down(c, ac ? ac->errstr : "out of memory");
		if (ac)
			redisAsyncFree(ac);
		schedule_retry(c);
		return;
	}
	if (redisLibuvAttach(ac, c->d->loop) != REDIS_OK) {
		redisAsyncFree(ac);
		c->failures++;
		went_down(c, "cannot watch the socket");
		schedule_retry(c);
		return;
	}
	ac->data = c;
	c->ac = ac;
	c->loaded = 0;
	c->rn = 0;
	redisAsyncSetConnectCallback(ac, on_connect);
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
	/* Queued now, sent in one write once the connection is up. */
	if (c->conf->password) {
		if (c->conf->user[0])
			redisAsyncCommand(ac, on_auth, c, "AUTH %s %s", c->conf->user,
			                  c->conf->password);
		else
			redisAsyncCommand(ac, on_auth, c, "AUTH %s", c->conf->password);
		cluster_sent(c);
	}
	if (c->conf->db) {
		redisAsyncCommand(ac, on_auth, c, "SELECT %d", c->conf->db);
		cluster_sent(c);
	}
	for (int i = 0; i < SC_COUNT; i++) {
		redisAsyncCommand(ac, on_script, &c->slot[i], "SCRIPT LOAD %s", scripts[i]);
		cluster_sent(c);
	}
}

/* ---- leases -------------------------------------------------------------- */

/* Units taken in the last minute (six bins of ten seconds). */
static int64_t last_minute(struct cluster *c)
{
	uint64_t epoch = mono_ms(c) / 10000;
	int64_t n = 0;

	for (int i = 0; i < 6; i++)
		if (c->bin_epoch[i] + 6 > epoch)
			n += c->bins[i];
	return n;
}

static void note_taken(struct cluster *c, int64_t n)
{
	uint64_t epoch = mono_ms(c) / 10000;
	int i = (int)(epoch % 6);

	if (c->bin_epoch[i] != epoch) {
		c->bin_epoch[i] = epoch;
		c->bins[i] = 0;
	}
	c->bins[i] += n;
	c->take_ms = mono_ms(c);
}

static int64_t lease_want(struct cluster *c)
{
	int64_t want = last_minute(c) / 6;

	if (c->last_n > 0 && mono_ms(c) - c->last_ms < 10000 && want < c->last_n * 2)
		want = c->last_n * 2;
	if (want < LEASE_MIN)
		want = LEASE_MIN;
	if (want > c->conf->lease_max)
		want = c->conf->lease_max;
	return want;
}

static long long claim_of(struct cluster *c)
{
	int64_t claim = c->used + c->lease;

	return claim > COUNT_MAX ? COUNT_MAX : claim;
}

static long long cap_arg(int64_t cap)
{
	return cap > COUNT_MAX ? COUNT_MAX : cap;
}

/* Gives n units of date back to the cluster. */
static void give_to_cluster(struct cluster *c, int date, int64_t n)
{
	char key[256];

	if (n <= 0 || !c->ready || !c->ac)
		return; /* unreachable: the units are lost (waste, never excess) */
	day_key(c, date, key, sizeof(key));
	redisAsyncCommand(c->ac, NULL, NULL, "EVALSHA %s 1 %s %s %lld", c->sha[SC_RETURN], key,
	                  c->conf->node, (long long)n);
	c->round_trips++; /* no answer awaited: not in the timeout ring */
	c->returned += n;
}

/* A new day: what is left of the old lease goes back. */
static void day_switch(struct cluster *c, int date)
{
	if (c->date && c->lease > 0)
		give_to_cluster(c, c->date, c->lease);
	c->date = date;
	c->lease = 0;
	c->used = 0;
	c->exhausted = 0;
	c->held = 0;
	c->last_n = 0;
}

static void on_lease(redisAsyncContext *ac, void *reply, void *priv)
{
	struct cluster *c = priv;
	redisReply *r = reply;
	int64_t n;

	(void)ac;
	cluster_answered(c);
	c->asking = 0;
	if (cluster_bad_reply(c, r, "taking a lease") || r->type != REDIS_REPLY_ARRAY ||
	    r->elements < 3)
		return;
	n = cluster_int_at(r, 0);
	c->left = cluster_int_at(r, 1);
	c->held = cluster_int_at(r, 2) != 0;
	if (c->stopping || c->asked_date != c->date) {
		give_to_cluster(c, c->asked_date, n);
		return;
	}
	wu_debug("cluster: lease of %lld for %d (%lld left in the cluster%s)", (long long)n,
	         c->asked_date, (long long)c->left, c->held ? ", held" : "");
	if (n > 0) {
		c->lease += n;
		c->leases++;
		c->lease_units += n;
		c->last_n = n;
		c->last_ms = c->take_ms = mono_ms(c);
	} else if (!c->held) {
		c->exhausted = 1;
	}
	cluster_kick(c);
}

static void lease_ask(struct cluster *c)
{
	char key[256];
	long long want;

	if (!c->ready || !c->ac || c->asking || c->exhausted || c->held || c->stopping)
		return;
	want = lease_want(c);
	day_key(c, c->date, key, sizeof(key));
	redisAsyncCommand(c->ac, on_lease, c, "EVALSHA %s 1 %s %lld %s %lld %d %lld",
	                  c->sha[SC_LEASE], key, cap_arg(c->cap), c->conf->node, claim_of(c),
	                  HOLD_S, want);
	cluster_sent(c);
	c->asking = 1;
	c->asked_date = c->date;
}

static int64_t shared_take(struct wu_ledger *l, int date, int64_t cap, int64_t used, int64_t n,
                           enum wu_ledger_short *why)
{
	struct cluster *c = l->ctx;
	int64_t g;

	if (cap == WU_UNLIMITED)
		return n; /* the warmup is over: nothing left to share */
	if (date != c->date)
		day_switch(c, date);
	c->cap = cap;
	c->used = used;
	g = n < c->lease ? n : c->lease;
	/* With pacing, a unit needs a token of the cluster's bucket too. */
	if (c->prate > 0) {
		c->pace_demand += n;
		if (g > c->ptok) {
			g = c->ptok;
			if (g < n && c->lease > g) {
				/* Tokens, not units, are short: wait for the next sync
				 * unless the bucket is known to be empty, then the
				 * overflow policy decides as for local pacing. */
				c->ptok -= g;
				c->lease -= g;
				c->used = used + g;
				if (g > 0)
					note_taken(c, g);
				*why = c->pace_empty && !c->stopping ? WU_LEDGER_PACED
				       : c->stopping                 ? WU_LEDGER_DOWN
				                                     : WU_LEDGER_PENDING;
				if (!c->pace_empty)
					sync_soon(c);
				return g;
			}
		}
		c->ptok -= g;
	}
	c->lease -= g;
	c->used = used + g; /* the engine counts them now: the claim stays whole */
	if (g > 0)
		note_taken(c, g);
	if (c->lease <= c->last_n / 4)
		lease_ask(c);
	if (g < n) {
		if (c->stopping)
			*why = WU_LEDGER_DOWN;
		else if (c->exhausted)
			*why = WU_LEDGER_DONE;
		else if (c->asking || (!c->ever_up && c->ac && !c->failures))
			*why =
			    WU_LEDGER_PENDING; /* the lease, or the first connection, is coming */
		else
			*why = WU_LEDGER_DOWN;
	}
	return g;
}

static void shared_give_back(struct wu_ledger *l, int date, int64_t n)
{
	struct cluster *c = l->ctx;

	if (date == c->date) {
		c->lease += n;
		c->used = c->used > n ? c->used - n : 0;
		if (c->prate > 0)
			c->ptok += n;
	}
}

static const struct wu_ledger_ops shared_ops = {shared_take, shared_give_back};

/* What the engine has after a stop: nothing. */
static int64_t closed_take(struct wu_ledger *l, int date, int64_t cap, int64_t used, int64_t n,
                           enum wu_ledger_short *why)
{
	(void)l;
	(void)date;
	(void)used;
	if (cap == WU_UNLIMITED)
		return n;
	(void)n;
	*why = WU_LEDGER_DOWN;
	return 0;
}

static void closed_give_back(struct wu_ledger *l, int date, int64_t n)
{
	(void)l;
	(void)date;
	(void)n;
}

static const struct wu_ledger_ops closed_ops = {closed_take, closed_give_back};
static struct wu_ledger closed_ledger = {&closed_ops, NULL};

/* ---- the periodic sync --------------------------------------------------- */

/* Today's pacing from the engine.  A bucket that holds the whole cap
 * (burst = day) limits nothing the cap does not: no tokens then. */
static void pace_params(struct cluster *c)
{
	const struct wu_day_stats *today = wu_engine_today(c->d->engine);

	wu_engine_pacing(c->d->engine, &c->prate, &c->pburst);
	if (today->cap == WU_UNLIMITED || c->pburst >= (double)today->cap)
		c->prate = 0;
}

/* A sync as soon as may be (a unit waits for a pacing token), at most one
 * under way and one every 50 ms. */
static void sync_soon(struct cluster *c)
{
	uint64_t since = mono_ms(c) - c->synced_ms;

	if (c->syncing || !c->ready || !c->ac || c->stopping)
		return;
	c->sync_every = 1;
	c->idle_ticks = 0;
	uv_timer_start(&c->tick, on_tick, since >= 50 ? 0 : 50 - since, SYNC_EVERY_MS);
}

static void on_sync(redisAsyncContext *ac, void *reply, void *priv)
{
	struct cluster *c = priv;
	redisReply *r = reply;
	int was_held = c->held, was_exhausted = c->exhausted;
	struct wu_gate_counts peer = {0, 0, 0};
	struct wu_gate_past peer_past = {0};

	(void)ac;
	cluster_answered(c);
	c->syncing = 0;
	if (cluster_bad_reply(c, r, "syncing") || r->type != REDIS_REPLY_ARRAY || r->elements < 11 ||
	    c->stopping)
		return;
	/* the tokens handed out (the ones sent back were returned first) */
	c->ptok += cluster_int_at(r, 9);
	c->pace_empty = c->prate > 0 && cluster_int_at(r, 10) < 1;
	if (cluster_int_at(r, 0) != c->left || cluster_int_at(r, 1) != c->v_granted ||
	    cluster_int_at(r, 4) != c->pause_seq)
		c->sync_every = 1; /* the others are busy: keep up with them */
	c->left = cluster_int_at(r, 0);
	c->v_granted = cluster_int_at(r, 1);
	c->v_cap = cluster_int_at(r, 2);
	c->held = cluster_int_at(r, 3) != 0;
	if (c->left > 0)
		c->exhausted = 0;
	c->nview = 0;
	for (size_t i = 11; i + 5 < r->elements && c->nview < VIEW_MAX; i += 6) {
		struct node_view *v = &c->view[c->nview++];

		snprintf(v->node, sizeof(v->node), "%s", cluster_str_at(r, i));
		v->date = (int)cluster_int_at(r, i + 1);
		v->lease = cluster_int_at(r, i + 2);
		v->sent = cluster_int_at(r, i + 3);
		v->at = cluster_int_at(r, i + 4);
		/* the others' gate counts of today join this node's */
		if (v->date == c->date && strcmp(v->node, c->conf->node) != 0 &&
		    cluster_gate_add(cluster_str_at(r, i + 5), &peer, &peer_past) < 0)
			wu_warn("cluster: node %s published gate counts that do not parse", v->node);
	}
	wu_engine_gate_peers(c->d->engine, daemon_now(c->d), c->date, &peer, &peer_past);
	daemon_drain_events(c->d);
	cluster_pause_apply(c, cluster_int_at(r, 4), (int)cluster_int_at(r, 5),
	                    cluster_str_at(r, 6), (int)cluster_int_at(r, 7), cluster_str_at(r, 8));
	if ((was_held && !c->held) || (was_exhausted && !c->exhausted) || c->ptok > 0)
		cluster_kick(c);
}

static void on_tick(uv_timer_t *t)
{
	struct cluster *c = t->data;
	const struct wu_day_stats *today = wu_engine_today(c->d->engine);
	char key[256], gate[GATE_TEXT_MAX], pkey[256];
	int64_t back, want;

	/* an answer later than the timeout: the server is as good as gone */
	if (c->ac && c->rn > 0 &&
	    mono_ms(c) - c->sent_ms[c->rhead] > (uint64_t)(c->conf->timeout / 1000)) {
		lost(c, "no answer within [cluster] timeout");
		return;
	}
	if (!c->ready || !c->ac)
		return;
	/* A node that routed nothing and heard nothing new since the last sync
	 * syncs less often, down to every SYNC_IDLE_MAX ticks: an idle day then
	 * costs about 11,000 round trips instead of 86,400. */
	if (c->take_ms > c->synced_ms || c->held || c->exhausted || c->lease > 0 ||
	    c->pace_demand > 0)
		c->sync_every = 1;
	if (c->syncing)
		return; /* the one under way answers first */
	if (++c->idle_ticks < c->sync_every)
		return;
	c->idle_ticks = 0;
	if (c->sync_every < SYNC_IDLE_MAX)
		c->sync_every *= 2;
	c->synced_ms = mono_ms(c);
	if (today->date != c->date) {
		day_switch(c, today->date);
		c->cap = today->cap;
		c->used = today->used;
	} else {
		c->used = today->used;
	}
	if (c->lease > 0 && mono_ms(c) - c->take_ms > IDLE_RETURN_MS) {
		give_to_cluster(c, c->date, c->lease);
		c->lease = 0;
	}
	day_key(c, c->date, key, sizeof(key));
	snprintf(pkey, sizeof(pkey), "%s%d", c->k_pace_prefix, c->date);
	cluster_gate_text(c->d->engine, gate, sizeof(gate));
	pace_params(c);
	/* Tokens held go back; as many come as were used and wanted since
	 * the last sync, twice over while they are asked for. */
	back = c->ptok;
	want = c->prate > 0 ? 2 * c->pace_demand : 0;
	c->ptok = 0;
	c->pace_demand = 0;
	redisAsyncCommand(c->ac, on_sync, c,
	                  "EVALSHA %s 6 %s %s %s %s %s %s %lld %s %lld %d %d %lld %lld %d %s %.9g %.9g "
	                  "%lld %lld",
	                  c->sha[SC_SYNC], key, c->k_node, c->k_nodes, c->k_pause, c->k_node_prefix,
	                  pkey, cap_arg(c->cap), c->conf->node, claim_of(c), HOLD_S, c->date,
	                  (long long)c->lease, (long long)today->used, NODE_TTL_S, gate, c->prate,
	                  c->pburst, (long long)back, (long long)want);
	c->syncing = 1;
	cluster_sent(c);
	cluster_bus_read(c);
}

/* ---- for cluster_dedup.c ------------------------------------------------- */

int cluster_reachable(const struct cluster *c)
{
	return c->ready && !c->stopping;
}

const struct wu_cluster_conf *cluster_conf(const struct cluster *c)
{
	return c->conf;
}

struct cluster_dedup *cluster_dedup_state(struct cluster *c)
{
	return &c->dedup;
}

void cluster_count_round_trip(struct cluster *c)
{
	c->round_trips++;
}

/* ---- start and stop ------------------------------------------------------ */

int cluster_start(struct cluster **cp, struct wu_daemon *d, char *err, size_t errlen)
{
	const struct wu_cluster_conf *conf = &d->conf.cluster;
	struct cluster *c;
	const char *n;

	*cp = NULL;
	if (!conf->enabled)
		return 0;
	if (!(c = calloc(1, sizeof(*c)))) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	c->d = d;
	c->conf = conf;
	c->ledger.ops = &shared_ops;
	c->ledger.ctx = c;
	n = conf->name;
	snprintf(c->k_day_prefix, sizeof(c->k_day_prefix), "warmup:{%s}:day:", n);
	snprintf(c->k_pace_prefix, sizeof(c->k_pace_prefix), "warmup:{%s}:pace:", n);
	snprintf(c->k_node, sizeof(c->k_node), "warmup:{%s}:node:%s", n, conf->node);
	snprintf(c->k_node_prefix, sizeof(c->k_node_prefix), "warmup:{%s}:node:", n);
	snprintf(c->k_nodes, sizeof(c->k_nodes), "warmup:{%s}:nodes", n);
	snprintf(c->k_pause, sizeof(c->k_pause), "warmup:{%s}:pause", n);
	snprintf(c->dedup.prefix, sizeof(c->dedup.prefix), "warmup:{%s}:ev:", n);
	snprintf(c->k_bus, sizeof(c->k_bus), "warmup:{%s}:bus", n);
	for (int i = 0; i < SC_COUNT; i++) {
		c->slot[i].c = c;
		c->slot[i].i = i;
	}
	if (daemon_listen(d, cluster_on_event, c) < 0) {
		free(c);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	uv_timer_init(d->loop, &c->tick);
	uv_timer_init(d->loop, &c->retry);
	uv_timer_init(d->loop, &c->stop);
	c->tick.data = c->retry.data = c->stop.data = c;
	c->sync_every = 1;
	uv_timer_start(&c->tick, on_tick, SYNC_EVERY_MS, SYNC_EVERY_MS);
	wu_engine_set_ledger(d->engine, &c->ledger);
	pace_params(c); /* no unit goes before the first tokens come */
	d->extra.cluster_json = cluster_status_json;
	d->extra.cluster_metrics = cluster_metrics;
	d->extra.cluster_arg = c;
	connect_now(c);
	*cp = c;
	return 0;
}

/* Redis did not answer the stop in time: drop the connection. */
static void on_stop_timeout(uv_timer_t *t)
{
	struct cluster *c = t->data;
	redisAsyncContext *ac = c->ac;

	if (ac) {
		c->ac = NULL;
		redisAsyncFree(ac);
	}
	maybe_free(c);
}

void cluster_stop(struct cluster *c)
{
	struct wu_daemon *d;

	if (!c)
		return;
	d = c->d;
	c->stopping = 1;
	cluster_dedup_close(&c->dedup);
	wu_engine_set_ledger(d->engine, &closed_ledger);
	daemon_unlisten(d, cluster_on_event, c);
	d->extra.cluster_json = NULL;
	d->extra.cluster_metrics = NULL;
	d->extra.cluster_arg = NULL;
	uv_close((uv_handle_t *)&c->tick, on_timer_closed);
	uv_timer_stop(&c->retry);
	uv_close((uv_handle_t *)&c->retry, on_timer_closed);
	if (c->ac && c->ready) {
		/* The lease goes back; the connection closes once Redis answered. */
		if (c->lease > 0)
			give_to_cluster(c, c->date, c->lease);
		c->lease = 0;
		redisAsyncDisconnect(c->ac);
		uv_timer_start(&c->stop, on_stop_timeout, (uint64_t)(c->conf->timeout / 1000), 0);
		return;
	}
	if (c->ac) {
		redisAsyncContext *ac = c->ac;

		c->ac = NULL;
		redisAsyncFree(ac);
	}
	maybe_free(c);
}
