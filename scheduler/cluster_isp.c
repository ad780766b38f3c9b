/*
 * NAME
 *	cluster_isp.c -- each ISP's new-route limits shared by the nodes: its
 *	rate as one token bucket, its share of today's cap counted in sum.
 *
 * SYNOPSIS
 *	is = cluster_isp_of(c, lim);          (the ledger's take, per unit)
 *	n = cluster_isp_args(c, argv, ...);   (the sync's arguments)
 *	cluster_isp_answer(c, reply);         (the sync's answer)
 *
 * DESCRIPTION
 *	An ISP with a new_rate (or a rate a deferral cut or the backoff holds
 *	it to) or a new_share limits the new route of every node together:
 *	a unit for it needs a token of the ISP's bucket in Redis, which fills
 *	at the rate in force (the factor of a cut applied, as the engine gives
 *	it) up to the burst, and each token is a unit of the ISP's share of
 *	today's cap, counted over every node.  The scheme is the shared
 *	pacing's: the tokens come with the sync (CLUSTER_LUA_SYNC), as many as
 *	the node used and wanted since the last one, twice over; the ones it
 *	did not use go back with the next sync.  No round trip of its own.
 *
 *	The share is counted as the cap is: a node states its claim for the
 *	ISP (what it sent today plus the tokens it holds) and the count only
 *	grows to it, so a Redis that lost its data learns the units back.  A
 *	send the route refused gives its token back with its unit (the
 *	engine's count of the ISP is one lower, the tokens one higher: the
 *	claim stays whole); a timeout keeps it, as it keeps its unit.
 *	At a new day the tokens held go with the old date (they are of no use
 *	to the new one, whose bucket starts full).
 *
 *	Keys: one hash per date, warmup:{name}:isp:DATE, with fields ISP:tok,
 *	ISP:t and ISP:rate (the bucket), ISP:got (the share granted in sum) and
 *	ISP:n:NODE (this node's part of it).
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cluster_priv.h"
#include "daemon.h"

/* The ISP of lim when its units need the cluster's tokens, else NULL.
 * Records the limits in force for the next sync. */
struct cluster_isp *cluster_isp_of(struct cluster *c, const struct wu_ledger_isp *lim)
{
	struct cluster_isp *is;

	if (!lim || lim->isp < 0 || lim->isp >= WU_ISP_MAX)
		return NULL;
	is = &c->isp[lim->isp];
	is->rate = lim->rate > 0 ? lim->rate : 0;
	is->burst = lim->burst >= 1 ? lim->burst : 1;
	is->share = lim->share;
	is->active = is->rate > 0 || lim->share != WU_UNLIMITED;
	return is->active ? is : NULL;
}

/* Why a unit of is gets no token now, and a sync soon when one may come. */
enum wu_ledger_short cluster_isp_short(struct cluster *c, const struct cluster_isp *is)
{
	if (is->done)
		return WU_LEDGER_SHARE;
	if (is->empty)
		return WU_LEDGER_ISP;
	cluster_sync_soon(c);
	return WU_LEDGER_PENDING;
}

/* A new day: the tokens of the old one are of no use. */
void cluster_isp_day(struct cluster *c)
{
	for (int i = 0; i < WU_ISP_MAX; i++) {
		struct cluster_isp *is = &c->isp[i];

		is->tok = is->demand = 0;
		is->empty = is->done = is->in_sync = 0;
	}
}

/* 1 when anything of an ISP moves (the sync keeps its pace then). */
int cluster_isp_busy(const struct cluster *c)
{
	for (int i = 0; i < WU_ISP_MAX; i++)
		if (c->isp[i].demand > 0 || c->isp[i].tok > 0)
			return 1;
	return 0;
}

/* Appends the ISPs to a sync's arguments: their count, then per ISP its
 * name, rate, burst, share (-1: none), the tokens back, the tokens
 * wanted and its claim.  The tokens held are handed back with it.
 * Returns how many arguments were added (at most 1 + 7 * WU_ISP_MAX). */
int cluster_isp_args(struct cluster *c, char (*arg)[CLUSTER_ARG_MAX], const char **argv)
{
	const struct wu_core_conf *conf = wu_engine_conf(c->d->engine);
	const struct wu_day_stats *today = wu_engine_today(c->d->engine);
	int n = 1, m = 0;

	for (int i = 0; i < WU_ISP_MAX && i < conf->isps.n; i++) {
		struct cluster_isp *is = &c->isp[i];
		int64_t claim;

		is->in_sync = 0;
		if (is->demand <= 0 && is->tok <= 0)
			continue;
		claim = today->sent[WU_ROUTE_NEW][i] + is->tok;
		snprintf(arg[n], CLUSTER_ARG_MAX, "%s", conf->isps.names[i]);
		snprintf(arg[n + 1], CLUSTER_ARG_MAX, "%.9g", is->active ? is->rate : 0.0);
		snprintf(arg[n + 2], CLUSTER_ARG_MAX, "%.9g", is->burst);
		snprintf(arg[n + 3], CLUSTER_ARG_MAX, "%lld",
		         is->active && is->share != WU_UNLIMITED ? cluster_cap_arg(is->share)
		                                                 : -1LL);
		snprintf(arg[n + 4], CLUSTER_ARG_MAX, "%" PRId64, is->tok);
		snprintf(arg[n + 5], CLUSTER_ARG_MAX, "%" PRId64, is->active ? 2 * is->demand : 0);
		snprintf(arg[n + 6], CLUSTER_ARG_MAX, "%lld",
		         claim > COUNT_MAX ? COUNT_MAX : (long long)claim);
		is->tok = 0;
		is->demand = 0;
		is->in_sync = 1;
		n += 7;
		m++;
	}
	snprintf(arg[0], CLUSTER_ARG_MAX, "%d", m);
	for (int k = 0; k < n; k++)
		argv[k] = arg[k];
	return n;
}

/* The sync's answer for the ISPs it named, in the order they were named:
 * {tokens granted, tokens left in the bucket (-1: no bucket), share left
 * in sum (-1: no share)} each.  Returns 1 when tokens came. */
int cluster_isp_answer(struct cluster *c, const redisReply *r)
{
	size_t k = 0;
	int came = 0;

	for (int i = 0; i < WU_ISP_MAX; i++) {
		struct cluster_isp *is = &c->isp[i];
		const redisReply *e;
		int64_t got, tleft, sleft;

		if (!is->in_sync)
			continue;
		is->in_sync = 0;
		if (!r || r->type != REDIS_REPLY_ARRAY || k >= r->elements)
			continue;
		e = r->element[k++];
		got = cluster_int_at(e, 0);
		tleft = cluster_int_at(e, 1);
		sleft = cluster_int_at(e, 2);
		is->tok += got > 0 ? got : 0;
		is->empty = tleft == 0;
		is->done = sleft == 0;
		came |= got > 0;
	}
	return came;
}
