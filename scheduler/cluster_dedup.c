/*
 * cluster_dedup.c -- the Event Webhook's dedup by sg_event_id across the
 * nodes of a cluster.
 *
 * SendGrid may post a batch to any node, and post it again when an answer
 * is late, so one node's own table of ids (store_webhook_seen) is not
 * enough.  Each id of a batch is marked with SET NX EX in Redis, all in one
 * pipelined round trip; only the node whose SET succeeded applies the
 * event.  The webhook is a request that must be answered, so this one call
 * waits for Redis on a blocking connection of its own, for at most the
 * [cluster] timeout (and never more than 250 ms): a batch a few hundred
 * microseconds on loopback, and when the shared connection already knows
 * Redis is away no wait at all (the node's own dedup still holds).  A batch
 * marked and then rolled back by the store is, on SendGrid's retry, a
 * duplicate: the events of that batch are lost, never counted twice.
 */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>

#include "cluster.h"
#include "cluster_priv.h"
#include "log.h"

#define DEDUP_TTL_S   259200 /* three days: SendGrid retries for 72 hours */
#define DEDUP_WAIT_MS 250

static void drop(struct cluster_dedup *dd)
{
	if (dd->rc)
		redisFree(dd->rc);
	dd->rc = NULL;
}

/* A blocking connection, set up (AUTH, SELECT) with the shared one's
 * settings; NULL when Redis cannot be reached. */
static redisContext *conn(struct cluster_dedup *dd, const struct wu_cluster_conf *conf)
{
	long ms = (long)(conf->timeout / 1000);
	struct timeval tv;
	redisReply *r;

	if (dd->rc)
		return dd->rc;
	if (ms > DEDUP_WAIT_MS)
		ms = DEDUP_WAIT_MS;
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	dd->rc = redisConnectWithTimeout(conf->host, conf->port, tv);
	if (!dd->rc || dd->rc->err || redisSetTimeout(dd->rc, tv) != REDIS_OK) {
		drop(dd);
		return NULL;
	}
	if (conf->password) {
		r = conf->user[0] ? redisCommand(dd->rc, "AUTH %s %s", conf->user, conf->password)
		                  : redisCommand(dd->rc, "AUTH %s", conf->password);
		if (!r || r->type == REDIS_REPLY_ERROR) {
			freeReplyObject(r);
			drop(dd);
			return NULL;
		}
		freeReplyObject(r);
	}
	if (conf->db) {
		r = redisCommand(dd->rc, "SELECT %d", conf->db);
		if (!r || r->type == REDIS_REPLY_ERROR) {
			freeReplyObject(r);
			drop(dd);
			return NULL;
		}
		freeReplyObject(r);
	}
	return dd->rc;
}

int cluster_dedup(struct cluster *c, const char *const *ids, int n, unsigned char *fresh)
{
	struct cluster_dedup *dd;
	redisContext *rc;
	int got = 0;

	if (!c || n <= 0 || !cluster_reachable(c))
		return -1;
	dd = cluster_dedup_state(c);
	if (!(rc = conn(dd, cluster_conf(c))))
		return -1;
	for (int i = 0; i < n; i++) {
		char key[400];

		snprintf(key, sizeof(key), "%s%s", dd->prefix, ids[i]);
		redisAppendCommand(rc, "SET %s %s NX EX %d", key, cluster_conf(c)->node,
		                   DEDUP_TTL_S);
	}
	cluster_count_round_trip(c);
	for (int i = 0; i < n; i++) {
		redisReply *r = NULL;

		if (redisGetReply(rc, (void **)&r) != REDIS_OK || !r) {
			wu_warn("cluster: webhook dedup: Redis did not answer (%s); this batch is "
			        "deduplicated by this node alone",
			        rc->errstr[0] ? rc->errstr : "no reply");
			drop(dd);
			return -1;
		}
		fresh[i] = r->type == REDIS_REPLY_STATUS; /* "OK"; nil when it was there */
		got += r->type == REDIS_REPLY_ERROR;
		freeReplyObject(r);
	}
	if (got) {
		/* an error answer (a read-only replica, a wrong type) marks nothing */
		wu_warn("cluster: webhook dedup: Redis refused %d SET(s); those events count here "
		        "only",
		        got);
	}
	return 0;
}

void cluster_dedup_close(struct cluster_dedup *dd)
{
	drop(dd);
}
