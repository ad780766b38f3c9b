/*
 * NAME
 *	cluster_sync.c -- the shared ledger's periodic call: the claim, the
 *	node's numbers, the tokens of the shared buckets, the others' view.
 *
 * DESCRIPTION
 *	Once a second (every 8 s while nothing moves) the node runs
 *	CLUSTER_LUA_SYNC: it states its claim (used today + lease held),
 *	publishes its numbers for the cluster view, gives back the tokens it
 *	did not use and takes new ones (the shared pacing bucket, and each
 *	limited ISP's bucket and share, cluster_isp.c), and reads the shared
 *	pause and every node's numbers back (what it does with them is in
 *	cluster_view.c; the shared suppressions and cuts in cluster_bus.c).  A
 *	lease unused for IDLE_RETURN_MS and a lease of a day that ended go
 *	back.  An answer later than [cluster] timeout counts as the server
 *	gone.
 */
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <string.h>

#include "cluster_priv.h"
#include "daemon.h"
#include "log.h"

#define SYNC_IDLE_MAX  8     /* an idle node syncs every 8 s at most (ticks of SYNC_EVERY_MS) */
#define NODE_TTL_S     30    /* a node silent this long leaves the view */
#define IDLE_RETURN_MS 30000 /* an unused lease goes back after this */

/* Today's pacing from the engine.  A bucket that holds the whole cap
 * (burst = day) limits nothing the cap does not: no tokens then. */
void cluster_pace_params(struct cluster *c)
{
	const struct wu_day_stats *today = wu_engine_today(c->d->engine);

	wu_engine_pacing(c->d->engine, &c->prate, &c->pburst);
	if (today->cap == WU_UNLIMITED || c->pburst >= (double)today->cap)
		c->prate = 0;
}

/* A sync as soon as may be (a unit waits for a pacing token), at most one
 * under way and one every 50 ms. */
void cluster_sync_soon(struct cluster *c)
{
	uint64_t since = cluster_ms(c) - c->synced_ms;

	if (c->syncing || !c->ready || !c->ac || c->stopping)
		return;
	c->sync_every = 1;
	c->idle_ticks = 0;
	uv_timer_start(&c->tick, cluster_on_tick, since >= 50 ? 0 : 50 - since, SYNC_EVERY_MS);
}

static void on_sync(redisAsyncContext *ac, void *reply, void *priv)
{
	struct cluster *c = priv;
	redisReply *r = reply;
	int was_held = c->held, was_exhausted = c->exhausted, isp_came = 0;
	struct wu_gate_counts peer = {0, 0, 0};
	struct wu_gate_past peer_past = {0};

	(void)ac;
	cluster_answered(c);
	c->syncing = 0;
	if (cluster_bad_reply(c, r, "syncing") || r->type != REDIS_REPLY_ARRAY ||
	    r->elements < 12 || c->stopping) {
		cluster_isp_answer(c, NULL);
		return;
	}
	/* the tokens handed out (the ones sent back were returned first); a
	 * day's tokens are of no use on the next */
	if (c->sync_date == c->date) {
		c->ptok += cluster_int_at(r, 9);
		isp_came = cluster_isp_answer(c, r->element[11]);
	} else {
		cluster_isp_answer(c, NULL);
	}
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
	for (size_t i = 12; i + 5 < r->elements && c->nview < VIEW_MAX; i += 6) {
		struct node_view *v = &c->view[c->nview++];

		snprintf(v->node, sizeof(v->node), "%s", cluster_str_at(r, i));
		v->date = (int)cluster_int_at(r, i + 1);
		v->lease = cluster_int_at(r, i + 2);
		v->sent = cluster_int_at(r, i + 3);
		v->at = cluster_int_at(r, i + 4);
		/* the others' gate counts of today join this node's */
		if (v->date == c->date && strcmp(v->node, c->conf->node) != 0 &&
		    cluster_gate_add(cluster_str_at(r, i + 5), &peer, &peer_past) < 0)
			wu_warn("cluster: node %s published gate counts that do not parse",
			        v->node);
	}
	wu_engine_gate_peers(c->d->engine, daemon_now(c->d), c->date, &peer, &peer_past);
	daemon_drain_events(c->d);
	cluster_pause_apply(c, cluster_int_at(r, 4), (int)cluster_int_at(r, 5),
	                    cluster_str_at(r, 6), (int)cluster_int_at(r, 7), cluster_str_at(r, 8));
	if ((was_held && !c->held) || (was_exhausted && !c->exhausted) || c->ptok > 0 || isp_came)
		cluster_kick(c);
}

void cluster_on_tick(uv_timer_t *t)
{
	struct cluster *c = t->data;
	const struct wu_day_stats *today = wu_engine_today(c->d->engine);
	/* the sync's arguments as text: the loop runs one tick at a time */
	static char num[11][CLUSTER_ARG_MAX], iarg[1 + 7 * WU_ISP_MAX][CLUSTER_ARG_MAX];
	static const char *argv[23 + 1 + 7 * WU_ISP_MAX];
	char key[256], gate[GATE_TEXT_MAX], pkey[256], ikey[256];
	int64_t back, want;

	/* an answer later than the timeout: the server is as good as gone */
	if (c->ac && c->rn > 0 &&
	    cluster_ms(c) - c->sent_ms[c->rhead] > (uint64_t)(c->conf->timeout / 1000)) {
		cluster_lost(c, "no answer within [cluster] timeout");
		return;
	}
	if (!c->ready || !c->ac)
		return;
	/* A node that routed nothing and heard nothing new since the last sync
	 * syncs less often, down to every SYNC_IDLE_MAX ticks: an idle day then
	 * costs about 11,000 round trips instead of 86,400. */
	if (c->take_ms > c->synced_ms || c->held || c->exhausted || c->lease > 0 ||
	    c->pace_demand > 0 || cluster_isp_busy(c))
		c->sync_every = 1;
	if (c->syncing)
		return; /* the one under way answers first */
	if (++c->idle_ticks < c->sync_every)
		return;
	c->idle_ticks = 0;
	if (c->sync_every < SYNC_IDLE_MAX)
		c->sync_every *= 2;
	c->synced_ms = cluster_ms(c);
	if (today->date != c->date) {
		cluster_day_switch(c, today->date);
		c->cap = today->cap;
		c->used = today->used;
	} else {
		c->used = today->used;
	}
	if (c->lease > 0 && cluster_ms(c) - c->take_ms > IDLE_RETURN_MS) {
		cluster_give_to(c, c->date, c->lease);
		c->lease = 0;
	}
	cluster_day_key(c, c->date, key, sizeof(key));
	snprintf(pkey, sizeof(pkey), "%s%d", c->k_pace_prefix, c->date);
	snprintf(ikey, sizeof(ikey), "%s%d", c->k_isp_prefix, c->date);
	cluster_gate_text(c->d->engine, gate, sizeof(gate));
	cluster_pace_params(c);
	/* Tokens held go back; as many come as were used and wanted since
	 * the last sync, twice over while they are asked for. */
	back = c->ptok;
	want = c->prate > 0 ? 2 * c->pace_demand : 0;
	c->ptok = 0;
	c->pace_demand = 0;
	snprintf(num[0], CLUSTER_ARG_MAX, "%lld", cluster_cap_arg(c->cap));
	snprintf(num[1], CLUSTER_ARG_MAX, "%lld", cluster_claim(c));
	snprintf(num[2], CLUSTER_ARG_MAX, "%d", HOLD_S);
	snprintf(num[3], CLUSTER_ARG_MAX, "%d", c->date);
	snprintf(num[4], CLUSTER_ARG_MAX, "%lld", (long long)c->lease);
	snprintf(num[5], CLUSTER_ARG_MAX, "%lld", (long long)today->used);
	snprintf(num[6], CLUSTER_ARG_MAX, "%d", NODE_TTL_S);
	snprintf(num[7], CLUSTER_ARG_MAX, "%.9g", c->prate);
	snprintf(num[8], CLUSTER_ARG_MAX, "%.9g", c->pburst);
	snprintf(num[9], CLUSTER_ARG_MAX, "%lld", (long long)back);
	snprintf(num[10], CLUSTER_ARG_MAX, "%lld", (long long)want);
	{
		const char *fixed[] = {
		    "EVALSHA",  c->sha[SC_SYNC],  "7",    key,    c->k_node, c->k_nodes,
		    c->k_pause, c->k_node_prefix, pkey,   ikey,   num[0],    c->conf->node,
		    num[1],     num[2],           num[3], num[4], num[5],    num[6],
		    gate,       num[7],           num[8], num[9], num[10]};
		int n = (int)(sizeof(fixed) / sizeof(fixed[0]));

		memcpy(argv, fixed, sizeof(fixed));
		n += cluster_isp_args(c, iarg, argv + n);
		redisAsyncCommandArgv(c->ac, on_sync, c, n, argv, NULL);
	}
	c->sync_date = c->date;
	c->syncing = 1;
	cluster_sent(c);
	cluster_bus_read(c);
}
