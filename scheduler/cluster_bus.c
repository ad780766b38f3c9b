/*
 * cluster_bus.c -- what one node's Event Webhook learned, for every node:
 * suppressions it added and deferral cuts of an ISP.
 *
 * The webhook lands on any node; a bounce it turned into a suppression
 * must stop every node from sending to that address, and a deferral rule
 * that cut Gmail's rate must slow Gmail on every node.  The node that
 * heard it appends an entry to a Redis stream (warmup:{name}:bus, XADD,
 * trimmed to about BUS_KEEP entries); every node reads the stream from
 * where it left off with its sync once a second (XREAD, never blocking)
 * and applies the other nodes' entries: suppress_event() into its store,
 * wu_engine_cut() into its engine.  A node that starts reads the stream
 * from its beginning, so it learns the suppressions still in it (they are
 * idempotent); a cut whose hold is over by then is skipped.  When Redis
 * cannot be reached the entry is not shared (logged): the node that heard
 * it still applies it, as it always did.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster_priv.h"
#include "daemon.h"
#include "log.h"
#include "suppress.h"

#define BUS_KEEP  100000 /* entries the stream keeps (approximately) */
#define BUS_BATCH 1000   /* entries one read takes */

/* The field named name of an entry's field list, or "". */
static const char *field(const redisReply *kv, const char *name)
{
	for (size_t i = 0; kv && i + 1 < kv->elements; i += 2)
		if (kv->element[i]->type == REDIS_REPLY_STRING &&
		    strcmp(kv->element[i]->str, name) == 0 &&
		    kv->element[i + 1]->type == REDIS_REPLY_STRING)
			return kv->element[i + 1]->str;
	return "";
}

/* One entry of another node. */
static void apply(struct cluster *c, const redisReply *kv, wu_time_t now)
{
	struct wu_daemon *d = c->d;
	const char *kind = field(kv, "kind");

	if (strcmp(kind, "supp") == 0) {
		const char *email = field(kv, "email"), *detail = field(kv, "detail");
		long long group = strtoll(field(kv, "group"), NULL, 10);
		int rc;

		if (!email[0] || daemon_txn(d) < 0)
			return;
		rc = group >= 0
		         ? suppress_group_event(d, email, group, detail[0] ? detail : NULL)
		         : suppress_event(d, email, field(kv, "reason"), detail[0] ? detail : NULL);
		if (rc < 0)
			wu_warn("cluster: cannot add the suppression another node shared: %s",
			        store_errmsg(d->store));
	} else if (strcmp(kind, "cut") == 0) {
		int isp = wu_isp_find(&wu_engine_conf(d->engine)->isps, field(kv, "isp"));
		double factor = strtod(field(kv, "factor"), NULL);
		wu_time_t until = strtoll(field(kv, "until"), NULL, 10);

		if (isp < 0 || !(factor > 0 && factor <= 1) || until <= now)
			return;
		if (daemon_txn(d) < 0)
			return;
		wu_engine_cut(d->engine, now, WU_ROUTE_NEW, isp, factor, until - now);
		wu_info("cluster: %s cut to %.0f%% for %" PRId64 "s, shared by node %s",
		        field(kv, "isp"), factor * 100, (until - now) / WU_USEC, field(kv, "node"));
	}
}

static void on_read(redisAsyncContext *ac, void *reply, void *priv)
{
	struct cluster *c = priv;
	redisReply *r = reply, *entries;
	wu_time_t now;

	(void)ac;
	cluster_answered(c);
	c->bus_reading = 0;
	if (cluster_bad_reply(c, r, "reading the shared events") || c->stopping)
		return;
	/* [[key, [[id, [field, value, ...]], ...]]], or nil when nothing is new */
	if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
	    r->element[0]->type != REDIS_REPLY_ARRAY || r->element[0]->elements < 2)
		return;
	entries = r->element[0]->element[1];
	now = daemon_now(c->d);
	for (size_t i = 0; entries->type == REDIS_REPLY_ARRAY && i < entries->elements; i++) {
		const redisReply *e = entries->element[i];

		if (e->type != REDIS_REPLY_ARRAY || e->elements < 2 ||
		    e->element[0]->type != REDIS_REPLY_STRING)
			continue;
		snprintf(c->bus_last, sizeof(c->bus_last), "%s", e->element[0]->str);
		c->sync_every = 1;
		if (strcmp(field(e->element[1], "node"), c->conf->node) != 0)
			apply(c, e->element[1], now);
	}
	daemon_drain_events(c->d);
}

void cluster_bus_read(struct cluster *c)
{
	if (!c->ready || !c->ac || c->bus_reading)
		return;
	redisAsyncCommand(c->ac, on_read, c, "XREAD COUNT %d STREAMS %s %s", BUS_BATCH, c->k_bus,
	                  c->bus_last[0] ? c->bus_last : "0-0");
	cluster_sent(c);
	c->bus_reading = 1;
}

static int shareable(struct cluster *c, const char *what)
{
	if (c->ready && c->ac && !c->stopping)
		return 1;
	wu_warn("cluster: Redis cannot be reached: the %s is not shared with the other nodes",
	        what);
	return 0;
}

void cluster_share_suppress(struct cluster *c, const char *email, const char *reason, int64_t group,
                            const char *detail)
{
	if (!c || !shareable(c, "suppression"))
		return;
	redisAsyncCommand(c->ac, NULL, NULL,
	                  "XADD %s MAXLEN ~ %d * node %s kind supp email %s reason %s group %lld "
	                  "detail %s",
	                  c->k_bus, BUS_KEEP, c->conf->node, email, reason ? reason : "",
	                  (long long)group, detail ? detail : "");
	c->round_trips++; /* no answer awaited: not in the timeout ring */
}

void cluster_share_cut(struct cluster *c, const char *isp, double factor, wu_time_t until)
{
	char f[32];

	if (!c || !shareable(c, "deferral cut"))
		return;
	snprintf(f, sizeof(f), "%.6f", factor);
	redisAsyncCommand(c->ac, NULL, NULL,
	                  "XADD %s MAXLEN ~ %d * node %s kind cut isp %s factor %s until %lld",
	                  c->k_bus, BUS_KEEP, c->conf->node, isp, f, (long long)until);
	c->round_trips++;
}
