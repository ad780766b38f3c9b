/*
 * cluster_priv.h -- what cluster.c shares with cluster_dedup.c, and no
 * other file.
 */
#ifndef WU_CLUSTER_PRIV_H
#define WU_CLUSTER_PRIV_H

#include "cluster_conf.h"

struct cluster;
struct redisContext;

/* The webhook dedup's own blocking connection (cluster_dedup.c). */
struct cluster_dedup {
	struct redisContext *rc;
	char prefix[200]; /* warmup:{name}:ev: */
};

/* 1 while the shared connection is up (no wait is tried otherwise). */
int cluster_reachable(const struct cluster *c);
const struct wu_cluster_conf *cluster_conf(const struct cluster *c);
struct cluster_dedup *cluster_dedup_state(struct cluster *c);
void cluster_count_round_trip(struct cluster *c);

/* Closes the dedup's connection (at a stop). */
void cluster_dedup_close(struct cluster_dedup *dd);

#endif
