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
 * Shared besides the cap: a pause or resume by an operator and a halt of
 * the health gate on any node reach every node (the pause hash).  The
 * status JSON gets a "cluster" object (every node's lease and sends, the
 * sum against the cap), /metrics the node's own figures.
 */
#ifndef WU_CLUSTER_H
#define WU_CLUSTER_H

#include <stddef.h>

struct wu_daemon;
struct cluster;

/* Connects to Redis (on the loop: the first lease waits for it) and puts
 * the shared ledger under the engine.  *cp is NULL without [cluster].
 * Returns 0, or -1 with a message. */
int cluster_start(struct cluster **cp, struct wu_daemon *d, char *err, size_t errlen);

/* Gives the lease back and disconnects; the engine is left with a ledger
 * that grants nothing.  Memory goes once Redis answered (or the timeout). */
void cluster_stop(struct cluster *c);

#endif
