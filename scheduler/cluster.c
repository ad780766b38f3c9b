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
 *	The connection to Redis on the loop and the node's life around it:
 *	connecting (AUTH, SELECT and the scripts of cluster_lua.h queued in
 *	one write), noticing an outage, reconnecting, starting and stopping.
 *	What goes over the connection is elsewhere: the leases and the ledger
 *	the engine asks in cluster_lease.c, the periodic sync in
 *	cluster_sync.c, each ISP's shared limits in cluster_isp.c, the shared
 *	pause and the view in cluster_view.c, the webhook's dedup in
 *	cluster_dedup.c, the shared suppressions and cuts in cluster_bus.c.
 *	At a stop the lease still held goes back before the connection closes.
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
#include "cluster_tls.h"
#include "daemon.h"
#include "dispatcher.h"
#include "log.h"

#define BACKOFF_MIN_MS 250
#define BACKOFF_MAX_MS 5000

static const char *const scripts[SC_COUNT] = {CLUSTER_LUA_LEASE, CLUSTER_LUA_RETURN,
                                              CLUSTER_LUA_SYNC, CLUSTER_LUA_PAUSE};

static void connect_now(struct cluster *c);

uint64_t cluster_ms(struct cluster *c)
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

void cluster_day_key(struct cluster *c, int date, char *buf, size_t len)
{
	snprintf(buf, len, "%s%d", c->k_day_prefix, date);
}

/* Counts a command sent; its answer calls cluster_answered(). */
void cluster_sent(struct cluster *c)
{
	c->round_trips++;
	if (c->rn < RING)
		c->sent_ms[(c->rhead + c->rn++) % RING] = cluster_ms(c);
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
		return 1; /* the connection went: cluster_lost() says it */
	if (r->type == REDIS_REPLY_ERROR) {
		wu_error("cluster: %s: Redis answered: %.200s", what, r->str);
		if (strncmp(r->str, "NOSCRIPT", 8) == 0 && c->ac)
			cluster_lost(c,
			             "the scripts are gone (Redis restarted under the connection)");
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
	/* The connection is over (the lease given back first): the TLS hop
	 * may go. */
	cluster_tls_stop(c->tls);
	c->tls = NULL;
	uv_close((uv_handle_t *)&c->stop, on_timer_closed);
}

/* The connection is gone or unusable: forget it and reconnect later. */
void cluster_lost(struct cluster *c, const char *why)
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
			cluster_lost(c, "the server refused the connection's set-up");
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
	/* rediss://: hiredis talks to the TLS hop's private socket. */
	ac = c->tls ? redisAsyncConnectUnix(cluster_tls_path(c->tls))
	            : redisAsyncConnect(c->conf->host, c->conf->port);
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
	if (conf->tls && cluster_tls_start(&c->tls, d->loop, conf, err, errlen) < 0) {
		free(c);
		return -1;
	}
	cluster_lease_init(c);
	n = conf->name;
	snprintf(c->k_day_prefix, sizeof(c->k_day_prefix), "warmup:{%s}:day:", n);
	snprintf(c->k_pace_prefix, sizeof(c->k_pace_prefix), "warmup:{%s}:pace:", n);
	snprintf(c->k_isp_prefix, sizeof(c->k_isp_prefix), "warmup:{%s}:isp:", n);
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
		cluster_tls_stop(c->tls);
		free(c);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	uv_timer_init(d->loop, &c->tick);
	uv_timer_init(d->loop, &c->retry);
	uv_timer_init(d->loop, &c->stop);
	c->tick.data = c->retry.data = c->stop.data = c;
	c->sync_every = 1;
	uv_timer_start(&c->tick, cluster_on_tick, SYNC_EVERY_MS, SYNC_EVERY_MS);
	wu_engine_set_ledger(d->engine, &c->ledger);
	cluster_pace_params(c); /* no unit goes before the first tokens come */
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
	wu_engine_set_ledger(d->engine, cluster_closed_ledger());
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
			cluster_give_to(c, c->date, c->lease);
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
