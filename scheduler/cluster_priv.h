/*
 * cluster_priv.h -- the inside of the shared ledger: what cluster.c (the
 * connection), cluster_lease.c (the leases and the ledger), cluster_sync.c
 * (the periodic sync), cluster_view.c (the shared pause, status and
 * metrics), cluster_dedup.c (the webhook's dedup) and cluster_bus.c (the
 * shared events) share, and no other file.
 */
#ifndef WU_CLUSTER_PRIV_H
#define WU_CLUSTER_PRIV_H

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdint.h>
#include <uv.h>

#include "cluster_conf.h"
#include "core/engine.h"
#include "core/ledger.h"

#define VIEW_MAX 64  /* nodes the view keeps */
#define RING     256 /* requests timed for the timeout */

#define SYNC_EVERY_MS 1000
#define HOLD_S        3 /* grace after Redis lost a day: every live node re-claims */
#define COUNT_MAX     9007199254740992LL /* 2^53: Lua's exact integers */

enum { SC_LEASE, SC_RETURN, SC_SYNC, SC_PAUSE, SC_COUNT };

struct redisContext;

/* The webhook dedup's own blocking connection (cluster_dedup.c). */
struct cluster_dedup {
	struct redisContext *rc;
	char prefix[200]; /* warmup:{name}:ev: */
};

/* One ISP's shared limits as this node holds them (cluster_isp.c). */
struct cluster_isp {
	double rate, burst; /* the limits in force, as the engine last gave them */
	int64_t share;      /* today's share of the cap; WU_UNLIMITED: none */
	int64_t tok;        /* tokens held (each a unit of the share too) */
	int64_t demand;     /* tokens used and wanted since the last sync */
	int active;         /* the ISP has limits: its units need tokens */
	int empty;          /* the last sync found its bucket empty */
	int done;           /* the last sync found its share used up in sum */
	int in_sync;        /* named in the sync under way */
};

#define CLUSTER_ARG_MAX 96 /* one argument of a script, as text */

struct node_view {
	char node[64];
	int date;
	int64_t lease, sent, at;
};

struct script_slot {
	struct cluster *c;
	int i;
};

struct cluster {
	struct wu_daemon *d;
	const struct wu_cluster_conf *conf;
	struct wu_ledger ledger;
	redisAsyncContext *ac;
	struct cluster_tls *tls; /* rediss://: the TLS hop hiredis connects through */
	int ready;    /* connected, authenticated, scripts loaded */
	int ever_up;  /* ready once at least */
	int down;     /* an outage is under way (alerted) */
	int failures; /* connection attempts failed in a row */
	int stopping;
	int loaded; /* scripts loaded on this connection */
	char sha[SC_COUNT][41];
	struct script_slot slot[SC_COUNT];
	uv_timer_t tick, retry, stop;
	int nclosed, stop_closed;
	uint64_t backoff;

	/* the lease */
	int date;         /* the day the lease is of; 0 before any */
	int64_t cap;      /* that day's cap as the engine gave it */
	int64_t used;     /* what the engine had counted at its last take */
	int64_t lease;    /* units held, not yet used */
	int64_t last_n;   /* the last lease's size */
	uint64_t last_ms; /* when it came */
	uint64_t take_ms; /* the last unit taken */
	int asking;       /* a lease request is under way */
	int asked_date;
	int exhausted;   /* the cluster said none is left today */
	int held;        /* Redis lost the day: wait for every node's claim */
	int64_t left;    /* the cluster's remaining cap, at the last answer */
	int64_t bins[6]; /* units taken per 10 s, for the rate */
	uint64_t bin_epoch[6];

	/* requests under way, oldest first, for the timeout */
	uint64_t sent_ms[RING];
	int rhead, rn;

	/* the shared pause */
	int64_t pause_seq;
	int pause_effective;

	/* the last view */
	struct node_view view[VIEW_MAX];
	int nview;
	int64_t v_granted, v_cap;

	struct cluster_dedup dedup; /* the webhook's (cluster_dedup.c) */

	/* the sync's pace: every tick while anything moves, slower when idle */
	int sync_every, idle_ticks;
	uint64_t synced_ms;
	int syncing; /* a sync is under way */

	/* the shared pacing: tokens of the cluster's bucket, handed out with
	 * each sync (what a node did not use goes back with the next) */
	double prate, pburst; /* the engine's pacing today; prate 0 = none */
	int64_t ptok;         /* tokens held */
	int64_t pace_demand;  /* tokens used and wanted since the last sync */
	int pace_empty;       /* the last sync found the bucket empty */
	int sync_date;        /* the date the sync under way is of */

	/* each ISP's shared limits (cluster_isp.c) */
	struct cluster_isp isp[WU_ISP_MAX];

	/* the shared events (cluster_bus.c) */
	char k_bus[200];
	char bus_last[64]; /* the last entry read; "" before any */
	int bus_reading;

	/* figures for /metrics */
	int64_t round_trips, leases, lease_units, returned, disconnects;

	char k_day_prefix[200], k_pace_prefix[200], k_isp_prefix[200], k_node[200], k_nodes[200],
	    k_pause[200], k_node_prefix[200];
};
/* 1 while the shared connection is up
 (no wait is tried otherwise). */
int cluster_reachable(const struct cluster *c);
const struct wu_cluster_conf *cluster_conf(const struct cluster *c);
struct cluster_dedup *cluster_dedup_state(struct cluster *c);
void cluster_count_round_trip(struct cluster *c);

/* cluster.c: the loop's clock in ms; the dispatcher looks again now; the
 * connection is gone or unusable (reconnect later); a day's key; a
 * command sent and its answer (for the timeout); a reply that is an error
 * or missing (logged); an array reply's element as a number or a string
 * ("" when not one). */
uint64_t cluster_ms(struct cluster *c);
void cluster_kick(struct cluster *c);
void cluster_lost(struct cluster *c, const char *why);
void cluster_day_key(struct cluster *c, int date, char *buf, size_t len);
void cluster_sent(struct cluster *c);
void cluster_answered(struct cluster *c);
int cluster_bad_reply(struct cluster *c, const redisReply *r, const char *what);
/* cluster_lease.c: the ledger the engine asks (set into c->ledger), the
 * one it has after a stop; n units of date back to the cluster; a new
 * day (the old lease goes back); the claim the scripts are told; a cap
 * as a Lua number. */
void cluster_lease_init(struct cluster *c);
struct wu_ledger *cluster_closed_ledger(void);
void cluster_give_to(struct cluster *c, int date, int64_t n);
void cluster_day_switch(struct cluster *c, int date);
long long cluster_claim(struct cluster *c);
long long cluster_cap_arg(int64_t cap);

/* cluster_sync.c: today's pacing from the engine; a sync as soon as may
 * be; the tick timer's callback. */
void cluster_pace_params(struct cluster *c);
void cluster_sync_soon(struct cluster *c);
void cluster_on_tick(uv_timer_t *t);

/* cluster_isp.c: the ISP of a unit when its units need the cluster's
 * tokens (else NULL); why one gets none now; a new day; whether anything
 * of an ISP moves; the ISPs' part of a sync, its arguments (the count
 * first) and its answer (1 when tokens came). */
struct cluster_isp *cluster_isp_of(struct cluster *c, const struct wu_ledger_isp *lim);
enum wu_ledger_short cluster_isp_short(struct cluster *c, const struct cluster_isp *is);
void cluster_isp_day(struct cluster *c);
int cluster_isp_busy(const struct cluster *c);
int cluster_isp_args(struct cluster *c, char (*arg)[CLUSTER_ARG_MAX], const char **argv);
int cluster_isp_answer(struct cluster *c, const redisReply *r);

/* cluster_gate.c: this node's gate counts as its node hash keeps them, and
 * the sum of the others' (a text that does not parse is -1 and adds
 * nothing). */
#define GATE_TEXT_MAX 512
void cluster_gate_text(const struct wu_engine *e, char *buf, size_t len);
int cluster_gate_add(const char *text, struct wu_gate_counts *today, struct wu_gate_past *past);

int64_t cluster_int_at(const redisReply *r, size_t i);
const char *cluster_str_at(const redisReply *r, size_t i);

/* cluster_view.c: a listener of engine events that shares an operator's
 * pause or resume and a gate halt; the shared pause as a sync read it;
 * the "cluster" object of the status JSON and the /metrics lines. */
void cluster_on_event(void *arg, const struct wu_event *ev);
void cluster_pause_apply(struct cluster *c, int64_t seq, int paused, const char *kind, int date,
                         const char *by);
void cluster_status_json(void *arg, void *root);
char *cluster_metrics(void *arg);

/* cluster_bus.c: reads the other nodes' shared events (with the sync). */
void cluster_bus_read(struct cluster *c);

/* Closes the dedup's connection (at a stop). */
void cluster_dedup_close(struct cluster_dedup *dd);

#endif
