/*
 * engine_priv.h -- the engine's state, shared by the files that make up
 * the engine (engine.c: the day and the routing; engine_state.c: saving
 * and loading it).  Nothing outside scheduler/core/engine*.c includes it.
 */
#ifndef WU_ENGINE_PRIV_H
#define WU_ENGINE_PRIV_H

#include "bucket.h"
#include "days.h"
#include "engine.h"
#include "ledger.h"
#include "pacing.h"
#include "profile.h"

#define EVENTS_MAX 64
#define WHO_MAX    64

struct wu_engine {
	struct wu_core_conf conf;
	struct wu_day day;
	struct wu_day_stats today, yesterday;
	struct wu_days days;           /* the dates it has been on (days.h) */
	struct wu_cut cut[WU_ISP_MAX]; /* deferral cuts on the new route, for status */
	int cut_on[WU_ISP_MAX];        /* a cut raised WU_EV_ISP_CUT, not yet recovered */
	struct wu_failrate permfail[WU_ROUTE_COUNT];
	int held;   /* days the schedule did not advance */
	int halted; /* the gate stopped the new route */
	int paused[WU_ROUTE_COUNT];
	char paused_by[WU_ROUTE_COUNT][WHO_MAX];
	struct wu_gate_counts gate;    /* new-route outcomes since the day began or a resume */
	struct wu_gate_past gate_past; /* the days before, which the gate pools with today */
	/* the other nodes' own counts, of peer_date (wu_engine_gate_peers);
	 * the gate judges them with this node's */
	struct wu_gate_counts peer;
	struct wu_gate_past peer_past;
	int peer_date;
	enum wu_gate_state gate_state; /* verdict on gate */
	struct wu_bucket pacing;
	struct wu_pace pace;        /* today's release of the cap (pacing.h) */
	wu_time_t pace_next;        /* when the release's rate or burst changes next */
	struct wu_profile arrivals; /* when the recent days' mail came (profile.h) */
	int64_t share[WU_ISP_MAX];  /* today's new-route limit per ISP */
	struct wu_throttle th[WU_ROUTE_COUNT][WU_ISP_MAX];
	struct wu_gap gap; /* quiet days in a row (gap.h) */
	int64_t prev_asks; /* engaged asks of the day before (engaged.h) */
	struct wu_event events[EVENTS_MAX];
	int ev_head, ev_count;
	struct wu_ledger *ledger; /* where new-route units come from (ledger.h) */
};
/* Queues an event, dropping the oldest when the queue is full.  Returns it,
 * for the fields only some kinds fill (engine.c). */
struct wu_event *eng_emit(struct wu_engine *e, enum wu_event_kind kind, wu_time_t at,
                          enum wu_route route, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Sets up caps, pacing and shares for e->day at the given step (engine.c). */
void eng_setup_day(struct wu_engine *e, int step, wu_time_t now);

#endif
