/*
 * cluster.h -- several warmupd nodes, one migration: today's cap shared
 * through Redis ([cluster] section).
 *
 * Each node keeps its own store and sends what it accepted; what the nodes
 * share is the new route's cap.  A node takes units in leases from the
 * cluster's common count (an atomic Lua script, cluster_lua.h) and hands
 * them to its engine through the ledger interface (core/ledger.h); a lease
 * runs low, the next one is asked for on the loop while the last units
 * still go.  The cap is never exceeded in sum: a lease is counted in Redis
 * before a unit of it is used, a lease left at the end of a day or at a
 * stop goes back, a node that crashes loses its lease (waste, never
 * excess).  When Redis cannot be reached, no lease is taken: the units
 * already leased go on, then the new route stops (the overflow policy
 * applies), an alert goes out, and the node reconnects with a backoff.
 *
 * Shared besides the cap: the pacing bucket and each ISP's new-route
 * limits (its rate as one bucket, its share counted in sum,
 * cluster_isp.c), both as tokens that come with the sync; a pause or
 * resume by an operator and a halt of the health gate on any node reach
 * every node (the pause hash); the Event Webhook's dedup by sg_event_id
 * (cluster_dedup.c), and the suppressions and deferral cuts it made
 * (cluster_bus.c).  The
 * status JSON gets a "cluster" object (every node's lease and sends, the
 * sum against the cap), /metrics the node's own figures.
 */
#ifndef WU_CLUSTER_H
#define WU_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

#include "core/wu.h"

struct wu_daemon;
struct cluster;

/* Connects to Redis (on the loop: the first lease waits for it) and puts
 * the shared ledger under the engine.  *cp is NULL without [cluster].
 * Returns 0, or -1 with a message. */
int cluster_start(struct cluster **cp, struct wu_daemon *d, char *err, size_t errlen);

/* Which of n Event Webhook ids (sg_event_id) no node has seen: fresh[i]
 * is set to 1 for an id this call marked first (SET NX with a TTL of three
 * days, SendGrid's retry window), 0 for one another node or an earlier
 * batch marked.  One round trip on a connection of its own, waiting at most
 * [cluster] timeout (250 ms at most); returns 0, or -1 when Redis cannot
 * answer now (then the caller's own dedup is all there is).  c may be NULL:
 * -1. */
int cluster_dedup(struct cluster *c, const char *const *ids, int n, unsigned char *fresh);

/* Shares what the Event Webhook of this node did with every node
 * (cluster_bus.c): a suppression it added (group >= 0: for that
 * unsubscribe group), a deferral cut of an ISP on the new route, to factor
 * until that time.  c may be NULL: nothing to share. */
void cluster_share_suppress(struct cluster *c, const char *email, const char *reason, int64_t group,
                            const char *detail);
void cluster_share_cut(struct cluster *c, const char *isp, double factor, wu_time_t until);

/* Gives the lease back and disconnects; the engine is left with a ledger
 * that grants nothing.  Memory goes once Redis answered (or the timeout). */
void cluster_stop(struct cluster *c);

#endif
