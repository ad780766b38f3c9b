/*
 * ledger.h -- where the new route's units of today's cap come from.
 *
 * The engine counts what it sent (wu_day_stats.used) and checks it against
 * today's cap; before it turns a decision into NEW it asks a ledger for the
 * unit.  A single node uses the local ledger, which grants whatever the
 * cap has left: the engine alone then owns the count, exactly as without a
 * ledger.  Several nodes that share one migration use a shared ledger
 * (scheduler/cluster.c) that grants units from a lease it took from the
 * cluster's common count; the engine never learns where the units came
 * from, and the ledger never blocks: it answers from what it holds now.
 *
 * A ledger answers take() with the units it grants (0..n) and, when it
 * grants fewer than asked, whether more may come soon (a lease is on its
 * way: the unit should wait a moment) or not (the cap is used up in sum,
 * or the shared count cannot be reached: the overflow policy applies).
 *
 * The engine names the ISP the unit is for, with the ISP's new-route
 * limits in force (its rate with the backoff's factor applied, its burst,
 * today's share of the cap): a shared ledger also hands out the ISP's
 * units from a bucket and a share counted over every node.  The local
 * ledger ignores them (the engine's own throttle and share count are the
 * whole story on one node).
 */
#ifndef WU_LEDGER_H
#define WU_LEDGER_H

#include "wu.h"

enum wu_ledger_short {
	WU_LEDGER_DONE,    /* no more units today (the cap is used up) */
	WU_LEDGER_PENDING, /* more units are on their way: ask again shortly */
	WU_LEDGER_DOWN,    /* the shared count cannot be reached: none for now */
	WU_LEDGER_PACED,   /* the cap has units, the shared pacing no token now */
	WU_LEDGER_ISP,     /* the ISP's shared rate has no token now */
	WU_LEDGER_SHARE    /* the ISP's share of today's cap is used up in sum */
};

/* The ISP a unit is for and its new-route limits at this moment. */
struct wu_ledger_isp {
	int isp;       /* index in the ISP table */
	double rate;   /* tokens per second in force (factor applied); 0: no limit */
	double burst;  /* the most its bucket holds */
	int64_t share; /* today's share of the cap; WU_UNLIMITED: none */
};

struct wu_ledger;

struct wu_ledger_ops {
	/* Grants up to n units of date's cap, for the ISP isp (NULL: no ISP
	 * limit), to a node that has counted used of them already; cap is the
	 * cap as the engine sees it.  When it grants fewer than n, *why says
	 * why. */
	int64_t (*take)(struct wu_ledger *l, int date, int64_t cap, int64_t used, int64_t n,
	                const struct wu_ledger_isp *isp, enum wu_ledger_short *why);
	/* n units of date taken for the ISP isp but not sent (a refused
	 * send) come back, with the ISP's tokens. */
	void (*give_back)(struct wu_ledger *l, int date, int64_t n, int isp);
};

struct wu_ledger {
	const struct wu_ledger_ops *ops;
	void *ctx; /* the implementation's own state */
};

/* The single-node ledger: grants what cap - used leaves, keeps nothing. */
extern struct wu_ledger wu_ledger_local;

/* The calls, through ops. */
int64_t wu_ledger_take(struct wu_ledger *l, int date, int64_t cap, int64_t used, int64_t n,
                       const struct wu_ledger_isp *isp, enum wu_ledger_short *why);
void wu_ledger_give_back(struct wu_ledger *l, int date, int64_t n, int isp);

#endif
