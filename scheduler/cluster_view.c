/*
 * cluster_view.c -- what the nodes of a cluster see of each other: the
 * shared pause (an operator's pause or resume, a gate halt on any node
 * reaches every node through the pause hash), and the cluster view in the
 * status JSON and /metrics.
 *
 * A node publishes a pause, a resume or a halt its own engine raised
 * (CLUSTER_LUA_PAUSE bumps a sequence number); every node reads the hash
 * back with its sync once a second and pauses or resumes its engine to
 * match.  What this module did itself is recorded "by cluster (...)" and
 * never published again, so nodes do not echo each other.
 */
#include <cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster_priv.h"
#include "daemon.h"
#include "log.h"

static void pause_publish(struct cluster *c, int paused, const char *kind, const char *by);

static void on_pause_done(redisAsyncContext *ac, void *reply, void *priv)
{
	struct cluster *c = priv;
	redisReply *r = reply;

	(void)ac;
	cluster_answered(c);
	if (cluster_bad_reply(c, r, "sharing a pause"))
		return;
	if (r->type == REDIS_REPLY_INTEGER && r->integer > c->pause_seq)
		c->pause_seq = r->integer;
}

static void pause_publish(struct cluster *c, int paused, const char *kind, const char *by)
{
	if (!c->ready || !c->ac) {
		wu_warn("cluster: Redis cannot be reached: the %s is not shared with the other "
		        "nodes",
		        kind);
		return;
	}
	redisAsyncCommand(c->ac, on_pause_done, c, "EVALSHA %s 1 %s %d %s %d %s", c->sha[SC_PAUSE],
	                  c->k_pause, paused, kind, wu_engine_today(c->d->engine)->date, by);
	cluster_sent(c);
	c->pause_effective = paused;
	c->sync_every = 1;
}

/* The engine events a node shares: an operator's pause or resume, a gate
 * halt.  Events this module caused itself ("by cluster") are not echoed. */
void cluster_on_event(void *arg, const struct wu_event *ev)
{
	struct cluster *c = arg;
	char by[240];

	if (ev->route != WU_ROUTE_NEW || strstr(ev->text, "by cluster"))
		return;
	snprintf(by, sizeof(by), "%s: %.160s", c->conf->node, ev->text);
	if (ev->kind == WU_EV_GATE_HALT)
		pause_publish(c, 1, "halt", by);
	else if (ev->kind == WU_EV_PAUSE && strstr(ev->text, "by operator"))
		pause_publish(c, 1, "pause", by);
	else if (ev->kind == WU_EV_RESUME)
		pause_publish(c, 0, "resume", by);
}

/* The shared pause as the last sync read it. */
void cluster_pause_apply(struct cluster *c, int64_t seq, int paused, const char *kind, int date,
                         const char *by)
{
	struct wu_daemon *d = c->d;
	const struct wu_core_conf *core = wu_engine_conf(d->engine);
	int today = wu_engine_today(d->engine)->date;
	int effective = paused;
	char who[240];

	/* A gate halt that lifts at the next day lifts everywhere then. */
	if (paused && strcmp(kind, "halt") == 0 && core->gate.resume == WU_RESUME_NEXT_DAY &&
	    date < today)
		effective = 0;
	if (seq <= c->pause_seq && effective == c->pause_effective)
		return;
	c->pause_seq = seq > c->pause_seq ? seq : c->pause_seq;
	c->pause_effective = effective;
	if (daemon_txn(d) < 0)
		return;
	snprintf(who, sizeof(who), "cluster (%.200s)", by[0] ? by : "another node");
	if (effective && !wu_engine_paused(d->engine, WU_ROUTE_NEW))
		wu_engine_pause(d->engine, daemon_now(d), WU_ROUTE_NEW, who);
	else if (!effective && wu_engine_paused(d->engine, WU_ROUTE_NEW))
		wu_engine_resume(d->engine, daemon_now(d), WU_ROUTE_NEW, who);
	daemon_drain_events(d);
	cluster_kick(c);
}

/* ---- status ---------------------------------------------------------------- */

void cluster_status_json(void *arg, void *rootp)
{
	struct cluster *c = arg;
	cJSON *root = rootp, *o, *nodes;
	int today = wu_engine_today(c->d->engine)->date;
	int64_t sum_sent = 0, sum_lease = 0;

	if (!(o = cJSON_AddObjectToObject(root, "cluster")))
		return;
	cJSON_AddStringToObject(o, "redis", c->conf->where);
	cJSON_AddStringToObject(o, "name", c->conf->name);
	cJSON_AddStringToObject(o, "node", c->conf->node);
	cJSON_AddBoolToObject(o, "connected", c->ready);
	cJSON_AddNumberToObject(o, "lease", (double)c->lease);
	if (c->cap == WU_UNLIMITED || !c->v_cap)
		cJSON_AddNullToObject(o, "cap");
	else
		cJSON_AddNumberToObject(o, "cap", (double)c->v_cap);
	cJSON_AddNumberToObject(o, "granted", (double)c->v_granted);
	cJSON_AddNumberToObject(o, "left", (double)c->left);
	cJSON_AddBoolToObject(o, "held", c->held);
	cJSON_AddNumberToObject(o, "round_trips", (double)c->round_trips);
	cJSON_AddNumberToObject(o, "leases", (double)c->leases);
	nodes = cJSON_AddArrayToObject(o, "nodes");
	for (int i = 0; i < c->nview; i++) {
		cJSON *n = cJSON_CreateObject();

		if (!n)
			break;
		cJSON_AddStringToObject(n, "node", c->view[i].node);
		cJSON_AddNumberToObject(n, "lease", (double)c->view[i].lease);
		cJSON_AddNumberToObject(n, "sent", (double)c->view[i].sent);
		cJSON_AddNumberToObject(n, "seen_at", (double)c->view[i].at);
		cJSON_AddBoolToObject(n, "today", c->view[i].date == today);
		cJSON_AddItemToArray(nodes, n);
		if (c->view[i].date == today) {
			sum_sent += c->view[i].sent;
			sum_lease += c->view[i].lease;
		}
	}
	cJSON_AddNumberToObject(o, "sent", (double)sum_sent);
	cJSON_AddNumberToObject(o, "leased", (double)sum_lease);
}

char *cluster_metrics(void *arg)
{
	struct cluster *c = arg;
	char *out = NULL;

	if (asprintf(&out,
	             "# HELP warmup_cluster_connected 1 when this node reaches its Redis server.\n"
	             "# TYPE warmup_cluster_connected gauge\n"
	             "warmup_cluster_connected %d\n"
	             "# HELP warmup_cluster_lease New-route units this node holds, not yet used.\n"
	             "# TYPE warmup_cluster_lease gauge\n"
	             "warmup_cluster_lease %" PRId64 "\n"
	             "# HELP warmup_cluster_left The cluster's cap not yet leased, at the last "
	             "answer.\n"
	             "# TYPE warmup_cluster_left gauge\n"
	             "warmup_cluster_left %" PRId64 "\n"
	             "# HELP warmup_cluster_leases_total Leases this node took.\n"
	             "# TYPE warmup_cluster_leases_total counter\n"
	             "warmup_cluster_leases_total %" PRId64 "\n"
	             "# HELP warmup_cluster_lease_units_total Units in those leases.\n"
	             "# TYPE warmup_cluster_lease_units_total counter\n"
	             "warmup_cluster_lease_units_total %" PRId64 "\n"
	             "# HELP warmup_cluster_returned_total Leased units given back.\n"
	             "# TYPE warmup_cluster_returned_total counter\n"
	             "warmup_cluster_returned_total %" PRId64 "\n"
	             "# HELP warmup_cluster_round_trips_total Commands sent to Redis.\n"
	             "# TYPE warmup_cluster_round_trips_total counter\n"
	             "warmup_cluster_round_trips_total %" PRId64 "\n"
	             "# HELP warmup_cluster_disconnects_total Connections to Redis lost.\n"
	             "# TYPE warmup_cluster_disconnects_total counter\n"
	             "warmup_cluster_disconnects_total %" PRId64 "\n",
	             c->ready, c->lease, c->left, c->leases, c->lease_units, c->returned,
	             c->round_trips, c->disconnects) < 0)
		return NULL;
	return out;
}
