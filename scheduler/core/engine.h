/*
 * engine.h -- the router: every decision about every message, in one place.
 *
 * The engine combines the schedule, the calendar, pacing, the per-ISP
 * throttles and the health gate.  It answers route(now, isp) with "new route
 * now", "old route now" or "wait until T"; it takes outcomes back; it tells
 * the caller when to wake up; and it saves and loads its state so that a
 * restarted daemon resumes mid-day with the same counters.  The daemon and
 * `warmup simulate` drive this same code: the daemon with the real clock, the
 * simulator with a virtual one.
 *
 * A NEW decision has already counted the message against today's cap; the
 * caller persists the engine state (wu_engine_save) before handing the
 * message to the network.  A send that was definitely refused (a tempfail or
 * permfail answer) gives its unit back; a timeout does not, since the
 * provider may have taken it.
 */
#ifndef WU_ENGINE_H
#define WU_ENGINE_H

#include "calendar.h"
#include "deferral.h"
#include "engaged.h"
#include "gap.h"
#include "failrate.h"
#include "gate.h"
#include "isp.h"
#include "pacing.h"
#include "schedule.h"
#include "throttle.h"

enum wu_overflow {
	WU_OVERFLOW_OLD,  /* what the new route cannot take now goes the old way */
	WU_OVERFLOW_DEFER /* it waits for the new route (a plain volume cap) */
};

enum wu_advance {
	WU_ADVANCE_CALENDAR, /* step = days since start + 1, less held days */
	WU_ADVANCE_GATED     /* next step only after a healthy day that used min_fill */
};

/* Everything the engine decides with.  Filled by wu_core_conf_init() with
 * defaults, then by the config file or the command line. */
struct wu_core_conf {
	struct wu_schedule schedule;
	struct wu_calendar calendar;
	wu_time_t burst; /* pacing burst as a share of the window, or WU_BURST_DAY */
	enum wu_pace_mode pace; /* release along the recent arrivals, or even */
	/* whether a route's answer to a send speaks for the recipient's ISP
	 * (an SMTP relay passes on what the ISP said) or only for the
	 * provider's API (SendGrid's v3); by default the new route is v3 and
	 * the old one a relay */
	int answers_for_isp[WU_ROUTE_COUNT];
	enum wu_overflow overflow;
	enum wu_advance advance;
	double min_fill; /* gated advance: share of the cap a day must use */
	struct wu_isp_table isps;
	struct wu_throttle_conf throttle[WU_ROUTE_COUNT][WU_ISP_MAX];
	struct wu_backoff_conf backoff;
	struct wu_gate_conf gate;
	struct wu_engaged_conf engaged; /* engaged recipients first (engaged.h) */
	struct wu_gap_conf gap;         /* a gap steps the ramp back (gap.h) */
	/* deferral rules in force: [defer_rule NAME] sections, else the
	 * built-in ones (deferral.h); the daemon and the simulator alike */
	struct wu_defer_rule rules[WU_DEFER_RULES_MAX];
	int nrules;
	/* permanent failures among a route's last sends that raise
	 * WU_EV_PERMFAIL_RATE ([alert] permfail_window, permfail_rate) */
	struct wu_failrate_conf permfail;
};

/* Defaults (calendar Asia/Tokyo starting 1970-01-01 until set, whole-day
 * window, burst 1h, overflow old, calendar advance, min_fill 80%, built-in
 * ISPs, no throttles, default backoff and gate).  Returns 0 or -1. */
int wu_core_conf_init(struct wu_core_conf *c);
void wu_core_conf_free(struct wu_core_conf *c);

enum wu_kind { WU_NEW, WU_OLD, WU_WAIT };

/* Why the new route did not take a message. */
enum wu_why {
	WU_WHY_NONE,        /* it did */
	WU_WHY_NOT_STARTED, /* before day 1 */
	WU_WHY_WINDOW,      /* outside the sending window */
	WU_WHY_CAP,         /* today's cap is used up */
	WU_WHY_PACING,      /* the cap is still being released */
	WU_WHY_SHARE,       /* the ISP's share of today's cap is used up */
	WU_WHY_ISP_RATE,    /* the ISP's rate on the new route */
	WU_WHY_SUSPENDED,   /* the ISP suspended the new route after tempfails */
	WU_WHY_HALTED,      /* the health gate halted the ramp */
	WU_WHY_PAUSED,      /* paused by hand or by an auth failure */
	WU_WHY_ENGAGED,     /* the reserve engaged recipients keep (engaged.h) */
	WU_WHY_LEASE,       /* the shared ledger's next lease is on its way: wait */
	WU_WHY_CLUSTER,     /* the shared ledger cannot be reached: no new units */
	WU_WHY_COUNT
};

struct wu_decision {
	enum wu_kind kind;
	enum wu_why why; /* for OLD and WAIT: what kept it off the new route */
	wu_time_t until; /* for WAIT: ask again at this time (a hint, not a promise) */
	int date;        /* for NEW and OLD: the local day it was counted on */
};

enum wu_result {
	/* answers to a send */
	WU_ACCEPTED, /* the route took it */
	WU_TEMPFAIL, /* refused for now (4xx, 429, 5xx): retried, unit given back */
	WU_TIMEOUT,  /* no answer: retried, unit stays counted */
	WU_PERMFAIL, /* refused for good: unit given back */
	/* what the provider reported later */
	WU_DELIVERED,
	WU_BOUNCE,
	WU_BLOCKED,
	WU_DEFERRED,
	WU_DROPPED,
	WU_COMPLAINT,
	WU_RESULT_COUNT
};

/* The counters of a day, route and ISP the daemon keeps for the days
 * after (the store's counts, which status, the UI and a replay read):
 * every wu_result, and beside them the routing decisions and the
 * unsubscribes, which are no outcome to the engine. */
enum wu_count {
	WU_COUNT_ROUTED = WU_RESULT_COUNT, /* a NEW or OLD decision, on its date */
	WU_COUNT_UNSUBSCRIBE,              /* a provider's unsubscribe event */
	WU_COUNT_KINDS
};

/* One local day's numbers. */
struct wu_day_stats {
	int date;    /* local days since 1970-01-01 */
	int step;    /* schedule day in force (0 = not started) */
	int64_t cap; /* today's cap on the new route (WU_UNLIMITED after warmup) */
	int64_t hourly_cap;
	int held;                                 /* 1 when this day did not advance the schedule */
	enum wu_gate_state gate;                  /* worst state reached today */
	int64_t sent[WU_ROUTE_COUNT][WU_ISP_MAX]; /* decisions net of give-backs */
	int64_t result[WU_ROUTE_COUNT][WU_ISP_MAX][WU_RESULT_COUNT];
	int64_t used; /* new-route sends counted against cap */
	int closed;   /* a date before one already granted, never granted itself: cap 0 */
	/* engaged recipients first (engaged.h) */
	int engaged_first;    /* the policy applies to this day */
	int64_t engaged_new;  /* engaged units the new route took (decisions) */
	int64_t engaged_asks; /* route calls for engaged units */
	int64_t turned;       /* route calls the cap or pacing kept off the new route */
	int stepped_back;     /* this day's step came from a gap (gap.h) */
};

enum wu_event_kind {
	WU_EV_DAY, /* a new local day began */
	WU_EV_GATE_WARN,
	WU_EV_GATE_HALT,
	WU_EV_RESUME,        /* the new route runs again after a halt or pause */
	WU_EV_PAUSE,         /* paused by hand or by an auth failure */
	WU_EV_ISP_CUT,       /* a deferral rule cut an ISP's rate that was not cut */
	WU_EV_ISP_RECOVERED, /* the cut ISP's rate is back to what it was */
	WU_EV_PERMFAIL_RATE, /* the route's permanent failures rose above the rate */
	WU_EV_PERMFAIL_OK,   /* they are at or below half of it again */
	WU_EV_STEP_BACK,     /* quiet days in a row stepped the schedule back (gap.h) */
	WU_EV_COUNT
};

struct wu_event {
	enum wu_event_kind kind;
	wu_time_t at;
	enum wu_route route;
	int date;
	int step;
	int64_t cap;
	double bounce_rate, complaint_rate;
	int isp;         /* the ISP an ISP event is about, else -1 */
	double value;    /* ISP events: the rate's factor; permfail events: the rate */
	char rule[64];   /* ISP events: the deferral rule; WU_EV_RESUME: who had paused */
	char who[64];    /* WU_EV_PAUSE, WU_EV_RESUME: who did it */
	char text[160];
};

struct wu_engine;
struct wu_ledger;

/* How long a unit waiting for a lease sleeps at most (the ledger's owner
 * wakes the caller as soon as the lease is there). */
#define WU_LEASE_WAIT WU_USEC

/* Creates an engine at now from a configuration (copied). Returns 0, or -1
 * with a message. */
int wu_engine_create(struct wu_engine **e, const struct wu_core_conf *conf, wu_time_t now,
                     char *err, size_t errlen);
void wu_engine_free(struct wu_engine *e);

/* The ledger new-route units are taken from (ledger.h); NULL: the local
 * one, the default.  The ledger outlives the engine. */
void wu_engine_set_ledger(struct wu_engine *e, struct wu_ledger *l);
struct wu_ledger *wu_engine_ledger(const struct wu_engine *e);

/* Where a message for a recipient of this ISP goes at now.  NEW and OLD are
 * counted at once. */
struct wu_decision wu_engine_route(struct wu_engine *e, wu_time_t now, int isp);
/* The same for a message only the new route can carry (one SendGrid must
 * render): NEW, counted at once, or WAIT -- never OLD, whatever the
 * overflow policy. */
struct wu_decision wu_engine_route_new(struct wu_engine *e, wu_time_t now, int isp);
/* The same two for a unit known engaged (engaged 1) or not (0): while
 * engaged-first applies, a unit that is not engaged takes the new route
 * only above the reserve (engaged.h), else why is WU_WHY_ENGAGED.
 * wu_engine_route() and wu_engine_route_new() are these with engaged 0. */
struct wu_decision wu_engine_route_for(struct wu_engine *e, wu_time_t now, int isp, int engaged);
struct wu_decision wu_engine_route_new_for(struct wu_engine *e, wu_time_t now, int isp,
                                           int engaged);
/* 1 when engaged-first holds the reserve at this moment: the policy
 * applies today and an engaged unit asked today or the day before. */
int wu_engine_engaged_first(const struct wu_engine *e);
/* Quiet days in a row so far (gap.h). */
int wu_engine_quiet(const struct wu_engine *e);

/*
 * One door for what happened.  Everything that comes back -- a send's answer,
 * a provider's event -- reaches the engine as a report; the engine alone
 * decides what follows (the verdict): whether the units were sent, are
 * retried and when, or failed; whether the route is paused; which deferral
 * rules cut the ISP.  The dispatcher, the webhook and the simulator only
 * translate what they saw into reports, so they cannot decide differently.
 */

/* Whose answer a report is.  WU_SCOPE_ISP: the recipient's ISP spoke (an
 * SMTP reply to the message, a webhook event): its throttle hears it, a
 * success helping a cut ISP recover step by step, a deferral backing it off.
 * WU_SCOPE_API: only the provider's API spoke (SendGrid's 202, 429 or 500, a
 * timeout), or nobody did (a send not made): the throttles are left alone.
 * WU_SCOPE_ROUTE: a send attempt's answer, whose scope the route's kind
 * decides (wu_core_conf.answers_for_isp). */
enum wu_scope { WU_SCOPE_ISP, WU_SCOPE_API, WU_SCOPE_ROUTE };

struct wu_report {
	enum wu_route route;
	int isp;
	enum wu_result result;
	enum wu_scope scope;
	int64_t n;             /* units the answer covers (a v3 request: up to 1000); 0 = 1 */
	int sent_date;         /* a send's answer: its decision's date; an event: -1 */
	int attempts;          /* a send's answer: the attempt it answers (1 = the first) */
	wu_time_t retry_after; /* the provider's own wait (Retry-After, a rate-limit reset) */
	double jitter;         /* in [0, 1): the caller's random draw that spreads retries */
	int auth;              /* the route was refused as such (credentials, address):
	                        * pause it and keep the units */
	long code;             /* the provider's status (HTTP or SMTP), 0 = none */
	const char *text;      /* the answer's or event's text, for deferral rules;
	                        * NULL: none (then every rule of the ISP for the event) */
};

enum wu_action {
	WU_ACT_NONE,  /* a provider event: nothing to do with a unit */
	WU_ACT_SENT,  /* the route took the units */
	WU_ACT_RETRY, /* queue them again, not before retry_at */
	WU_ACT_FAIL   /* refused for good */
};

struct wu_verdict {
	enum wu_action action;
	wu_time_t retry_at;
	int paused; /* this report paused its route */
	int cuts;   /* deferral rules that cut the ISP's rate */
	/* the counter the report adds to, for the caller to keep: count_n of
	 * count on count_date (the engine's day it was heard on); 0 = none */
	int count_date, count;
	int64_t count_n;
};

/* The verdict on a report.  A send that was refused (tempfail, permfail,
 * auth) gives its units back only when they were counted today, so a
 * failure just after midnight can never add to the new day's cap; a timeout
 * keeps them counted (the provider may have taken them).  Provider events
 * count on the day they arrive.  Retries wait the backoff for the attempt,
 * or the provider's own wait when that is longer. */
struct wu_verdict wu_engine_report(struct wu_engine *e, wu_time_t now, const struct wu_report *r);

/* A report of one unit from the recipient's ISP: a shorthand for tests and
 * simple callers. */
void wu_engine_outcome(struct wu_engine *e, wu_time_t now, enum wu_route route, int isp,
                       enum wu_result result, int sent_date);

/* A decision that was not carried out (its batch could not be made): its
 * unit goes back to the cap, no result is counted. */
void wu_engine_undo(struct wu_engine *e, wu_time_t now, enum wu_route route, int isp, int date);

/* A deferral cut on the new route, as status shows it. */
struct wu_cut {
	double cut;       /* share of the rate the strongest rule in force keeps */
	double factor;    /* share kept now: cut during the hold, then back up step
	                   * by step with the ISP's successes (deliveries) */
	wu_time_t until;  /* when the hold ends (recovery starts) */
	char rule[48];    /* the rule that set cut */
	int64_t hits;     /* matches since the start */
	int effective;    /* 0: the ISP has no rate to cut (no new_rate, nothing paced) */
};

/* The cut of isp into *out; 0 when no rule has matched it (then *out is
 * left alone), 1 when one has. */
int wu_engine_cut_state(const struct wu_engine *e, int isp, struct wu_cut *out);

/* Cuts the ISP's rate on route to factor for hold, by hand or by a rule. */
void wu_engine_cut(struct wu_engine *e, wu_time_t now, enum wu_route route, int isp, double factor,
                   wu_time_t hold);

/* Moves the engine to now: starts a new day when now has crossed midnight
 * (one or several).  Returns 1 when the day changed.  Every other call does
 * this first; the simulator calls it at each midnight to read the day. */
int wu_engine_tick(struct wu_engine *e, wu_time_t now);

/* The earliest time after now at which a decision may change by time alone:
 * the next midnight, window edge, token or end of a suspension. */
wu_time_t wu_engine_next_wakeup(struct wu_engine *e, wu_time_t now);

/* Who paused a route that the provider refused as such (followed by its
 * status: "authentication failure (401)"). */
#define WU_PAUSED_BY_AUTH "authentication failure"

/* Stops and restarts the new or old route by hand (or for an auth failure).
 * who is recorded in the event ("operator", "gate", "auth 401"). */
void wu_engine_pause(struct wu_engine *e, wu_time_t now, enum wu_route route, const char *who);
void wu_engine_resume(struct wu_engine *e, wu_time_t now, enum wu_route route, const char *who);
int wu_engine_paused(const struct wu_engine *e, enum wu_route route);

/* The current day and the one before it (zeroed before the first change). */
const struct wu_day_stats *wu_engine_today(const struct wu_engine *e);
const struct wu_day_stats *wu_engine_yesterday(const struct wu_engine *e);

/* Current gate verdict of today's new-route outcomes. */
void wu_engine_gate(const struct wu_engine *e, struct wu_gate_verdict *v);

/* Today's pacing of the new route: tokens per second (0: none, the cap
 * alone limits) and the most the bucket holds.  A cluster paces the sum
 * of its nodes with these. */
void wu_engine_pacing(const struct wu_engine *e, double *rate, double *burst);

/* Counts n units that can go from at on (taken by an intake, at now or at
 * their send_at; offered by the simulator): the hour of the local day they
 * came in shapes the pacing of the days after (pacing.h, profile.h). */
void wu_engine_arrive(struct wu_engine *e, wu_time_t at, int64_t n);

/* The share of the cap the pacing releases in each hour of today (hours
 * from the local midnight), for status; all 0 when it is the even drip.
 * Returns 1 when shaped. */
int wu_engine_pace_profile(const struct wu_engine *e, double share[WU_PROFILE_HOURS]);

/* This node's own gate counts (today since the gate last started afresh,
 * and the days before): what a cluster publishes to the other nodes. */
void wu_engine_gate_own(const struct wu_engine *e, struct wu_gate_counts *today,
                        struct wu_gate_past *past);

/* The other nodes' own counts, summed, of local date `date`: the gate
 * judges them with this node's from now on (an earlier date's are
 * ignored), and judges at once.  A halt is an event as any other. */
void wu_engine_gate_peers(struct wu_engine *e, wu_time_t now, int date,
                          const struct wu_gate_counts *today, const struct wu_gate_past *past);

/* Held days so far (days the schedule did not advance). */
int wu_engine_held(const struct wu_engine *e);
const struct wu_core_conf *wu_engine_conf(const struct wu_engine *e);

/* Takes the oldest pending event; 1 when there was one. */
int wu_engine_poll_event(struct wu_engine *e, struct wu_event *ev);

/* State as text (a few hundred bytes per active ISP).  Returns the length
 * written, or -1 if len is too small. */
int wu_engine_save(const struct wu_engine *e, char *buf, size_t len);

/* The same into a buffer of the size it needs: malloc'd, NULL when memory
 * ran out. */
char *wu_engine_save_alloc(const struct wu_engine *e);

/* Restores state saved by wu_engine_save() into an engine made from the same
 * configuration, then ticks to now. Returns 0, or -1 with a message naming
 * the line and the field; e is then left as it was.  Every value is checked
 * against the range the engine produces (dates up to 9999-12-31 and not
 * after tomorrow, counters 0..2^53, times 0..9999-12-31, throttle factors
 * in (0, 1], gate states 0..2, route and ISP numbers of the configuration),
 * so a state that loads cannot make the engine's arithmetic overflow. */
int wu_engine_load(struct wu_engine *e, const char *buf, wu_time_t now, char *err, size_t errlen);

/* Counts the rest of today's cap as used, so the new route sends nothing
 * more until the next local day.  For a state that had to be thrown away:
 * what was sent today is unknown, and the cap must not be granted twice.
 * Returns 1 when it closed the day, 0 when it was closed or has no cap. */
int wu_engine_close_today(struct wu_engine *e, wu_time_t now);

/* Copies what the saved state does not hold from src into dst, an engine
 * just loaded with src's state (a reload): yesterday's figures, the
 * deferral cuts status shows and whether each raised WU_EV_ISP_CUT, for the
 * ISP groups both have, and the windows of permanent failures. */
void wu_engine_carry(struct wu_engine *dst, const struct wu_engine *src);

const char *wu_kind_name(enum wu_kind k);
const char *wu_why_name(enum wu_why w);
const char *wu_result_name(enum wu_result r);
const char *wu_event_name(enum wu_event_kind k);

int wu_overflow_parse(const char *s, enum wu_overflow *o, char *err, size_t errlen);
int wu_advance_parse(const char *s, enum wu_advance *a, char *err, size_t errlen);

#endif
