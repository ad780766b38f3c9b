/*
 * NAME
 *	cluster_lease.c -- the shared ledger's leases: units of today's cap
 *	taken from the cluster's count in Redis, handed to the engine.
 *
 * DESCRIPTION
 *	The engine asks the ledger (core/ledger.h) for each new-route unit; the
 *	ledger answers from the lease it holds, never waiting.  When the lease
 *	falls to a quarter of its size the next one is asked for (EVALSHA of
 *	CLUSTER_LUA_LEASE), so a node that sends steadily never waits for one;
 *	a node whose lease is empty and whose next one is on its way makes the
 *	unit wait (WU_WHY_LEASE) and is kicked when it comes.  The lease's size
 *	follows the node's rate: ten seconds of what it sent in the last
 *	minute, doubled while leases go in under ten seconds, from 1% of the
 *	day's cap (at least LEASE_MIN) to [cluster] lease_max; the script
 *	gives at most half of what is left,
 *	so the last units of a day spread over the nodes still sending.
 *
 *	A unit needs a token of the shared pacing bucket too when the day is
 *	paced, and one of its ISP's shared bucket and share when the ISP has
 *	limits of its own (cluster_isp.c); the tokens come with the sync
 *	(cluster_sync.c).  A lease of a day that ended and the lease at a stop
 *	go back (CLUSTER_LUA_RETURN).
 */
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <string.h>

#include "cluster_priv.h"
#include "log.h"

#define LEASE_MIN   8
#define LEASE_FIRST 100 /* the smallest lease is this share of the cap */

static void lease_ask(struct cluster *c);

/* Units taken in the last minute (six bins of ten seconds). */
static int64_t last_minute(struct cluster *c)
{
	uint64_t epoch = cluster_ms(c) / 10000;
	int64_t n = 0;

	for (int i = 0; i < 6; i++)
		if (c->bin_epoch[i] + 6 > epoch)
			n += c->bins[i];
	return n;
}

static void note_taken(struct cluster *c, int64_t n)
{
	uint64_t epoch = cluster_ms(c) / 10000;
	int i = (int)(epoch % 6);

	if (c->bin_epoch[i] != epoch) {
		c->bin_epoch[i] = epoch;
		c->bins[i] = 0;
	}
	c->bins[i] += n;
	c->take_ms = cluster_ms(c);
}

static int64_t lease_want(struct cluster *c)
{
	int64_t want = last_minute(c) / 6;

	if (c->last_n > 0 && cluster_ms(c) - c->last_ms < 10000 && want < c->last_n * 2)
		want = c->last_n * 2;
	/* The first lease of a burst: a hundredth of the day's cap, so that a
	 * node starting flat out reaches lease_max in a few doublings, not
	 * ten (each a round trip the units wait for). */
	if (want < c->cap / LEASE_FIRST && c->cap != WU_UNLIMITED)
		want = c->cap / LEASE_FIRST;
	if (want < LEASE_MIN)
		want = LEASE_MIN;
	if (want > c->conf->lease_max)
		want = c->conf->lease_max;
	return want;
}

long long cluster_claim(struct cluster *c)
{
	int64_t claim = c->used + c->lease;

	return claim > COUNT_MAX ? COUNT_MAX : claim;
}

long long cluster_cap_arg(int64_t cap)
{
	return cap > COUNT_MAX ? COUNT_MAX : cap;
}

/* Gives n units of date back to the cluster. */
void cluster_give_to(struct cluster *c, int date, int64_t n)
{
	char key[256];

	if (n <= 0 || !c->ready || !c->ac)
		return; /* unreachable: the units are lost (waste, never excess) */
	cluster_day_key(c, date, key, sizeof(key));
	redisAsyncCommand(c->ac, NULL, NULL, "EVALSHA %s 1 %s %s %lld", c->sha[SC_RETURN], key,
	                  c->conf->node, (long long)n);
	c->round_trips++; /* no answer awaited: not in the timeout ring */
	c->returned += n;
}

/* A new day: what is left of the old lease goes back. */
void cluster_day_switch(struct cluster *c, int date)
{
	if (c->date && c->lease > 0)
		cluster_give_to(c, c->date, c->lease);
	c->date = date;
	c->lease = 0;
	c->used = 0;
	c->exhausted = 0;
	c->held = 0;
	c->last_n = 0;
	cluster_isp_day(c);
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
		cluster_give_to(c, c->asked_date, n);
		return;
	}
	wu_debug("cluster: lease of %lld for %d (%lld left in the cluster%s)", (long long)n,
	         c->asked_date, (long long)c->left, c->held ? ", held" : "");
	if (n > 0) {
		c->lease += n;
		c->leases++;
		c->lease_units += n;
		c->last_n = n;
		c->last_ms = c->take_ms = cluster_ms(c);
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
	cluster_day_key(c, c->date, key, sizeof(key));
	redisAsyncCommand(c->ac, on_lease, c, "EVALSHA %s 1 %s %lld %s %lld %d %lld",
	                  c->sha[SC_LEASE], key, cluster_cap_arg(c->cap), c->conf->node,
	                  cluster_claim(c), HOLD_S, want);
	cluster_sent(c);
	c->asking = 1;
	c->asked_date = c->date;
}

/* What holds a unit back when the ledger grants fewer than asked. */
enum shortage { SHORT_NONE, SHORT_LEASE, SHORT_PACE, SHORT_ISP };

static int64_t shared_take(struct wu_ledger *l, int date, int64_t cap, int64_t used, int64_t n,
                           const struct wu_ledger_isp *lim, enum wu_ledger_short *why)
{
	struct cluster *c = l->ctx;
	struct cluster_isp *is;
	enum shortage s = SHORT_NONE;
	int64_t g = n;

	if (cap == WU_UNLIMITED)
		return n; /* the warmup is over: nothing left to share */
	if (date != c->date)
		cluster_day_switch(c, date);
	c->cap = cap;
	c->used = used;
	if (c->lease < g) {
		g = c->lease;
		s = SHORT_LEASE;
	}
	/* With pacing, a unit needs a token of the cluster's bucket too; for
	 * an ISP with limits of its own, one of the ISP's as well. */
	if (c->prate > 0) {
		c->pace_demand += n;
		if (c->ptok < g) {
			g = c->ptok;
			s = SHORT_PACE;
		}
	}
	if ((is = cluster_isp_of(c, lim))) {
		is->demand += n;
		if (is->tok < g) {
			g = is->tok;
			s = SHORT_ISP;
		}
		is->tok -= g;
	}
	if (c->prate > 0)
		c->ptok -= g;
	c->lease -= g;
	c->used = used + g; /* the engine counts them now: the claim stays whole */
	if (g > 0)
		note_taken(c, g);
	if (c->lease <= c->last_n / 4)
		lease_ask(c);
	if (g >= n)
		return g;
	if (c->stopping) {
		*why = WU_LEDGER_DOWN;
	} else if (s == SHORT_PACE) {
		/* Tokens, not units, are short: wait for the next sync unless
		 * the bucket is known to be empty, then the overflow policy
		 * decides as for local pacing. */
		*why = c->pace_empty ? WU_LEDGER_PACED : WU_LEDGER_PENDING;
		if (!c->pace_empty)
			cluster_sync_soon(c);
	} else if (s == SHORT_ISP) {
		*why = cluster_isp_short(c, is);
	} else if (c->exhausted) {
		*why = WU_LEDGER_DONE;
	} else if (c->asking || (!c->ever_up && c->ac && !c->failures)) {
		*why = WU_LEDGER_PENDING; /* the lease, or the first connection, is coming */
	} else {
		*why = WU_LEDGER_DOWN;
	}
	return g;
}

static void shared_give_back(struct wu_ledger *l, int date, int64_t n, int isp)
{
	struct cluster *c = l->ctx;

	if (date == c->date) {
		c->lease += n;
		c->used = c->used > n ? c->used - n : 0;
		if (c->prate > 0)
			c->ptok += n;
		/* The ISP's token comes back too: with the engine's count of the
		 * ISP one lower, the node's claim on its share stays whole. */
		if (isp >= 0 && isp < WU_ISP_MAX && c->isp[isp].active)
			c->isp[isp].tok += n;
	}
}

static const struct wu_ledger_ops shared_ops = {shared_take, shared_give_back};

void cluster_lease_init(struct cluster *c)
{
	c->ledger.ops = &shared_ops;
	c->ledger.ctx = c;
}

/* What the engine has after a stop: nothing. */
static int64_t closed_take(struct wu_ledger *l, int date, int64_t cap, int64_t used, int64_t n,
                           const struct wu_ledger_isp *isp, enum wu_ledger_short *why)
{
	(void)l;
	(void)isp;
	(void)date;
	(void)used;
	if (cap == WU_UNLIMITED)
		return n;
	(void)n;
	*why = WU_LEDGER_DOWN;
	return 0;
}

static void closed_give_back(struct wu_ledger *l, int date, int64_t n, int isp)
{
	(void)l;
	(void)date;
	(void)n;
	(void)isp;
}

static const struct wu_ledger_ops closed_ops = {closed_take, closed_give_back};
static struct wu_ledger closed_ledger = {&closed_ops, NULL};

struct wu_ledger *cluster_closed_ledger(void)
{
	return &closed_ledger;
}
