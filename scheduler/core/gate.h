/*
 * gate.h -- the health gate: stop the ramp when bounces or complaints cross
 * the line.
 *
 * bounce rate    = hard bounces / (delivered + hard bounces)
 * complaint rate = spam reports / delivered
 *
 * Each rate is judged on a pool: today's outcomes, then whole earlier days,
 * newest first, until the pool holds pool_sample outcomes (300), and only
 * once it holds min_sample (120).  Complaints pool deliveries the same way,
 * to complaint_pool_sample (5,000) and complaint_min_sample (2,000).  A rate
 * over the warn line warns, over the halt line halts; with z > 0 the lower
 * end of the exact (Clopper-Pearson) interval at z is compared instead of
 * the observed rate.  Only recent days are pooled, so a bad day late in the
 * ramp is judged on itself and not drowned in a long clean history; a small
 * early day is judged together with the days before it, so 3 bounces of 63
 * do not stop a migration, while 8% bounces over days 1 and 2 do.
 */
#ifndef WU_GATE_H
#define WU_GATE_H

#include "wu.h"

/* Past days a pool may reach back: a week, counting dates without mail. */
#define WU_GATE_DAYS 7

enum wu_gate_state { WU_GATE_OK = 0, WU_GATE_WARN = 1, WU_GATE_HALT = 2 };

enum wu_gate_resume {
	WU_RESUME_NEXT_DAY, /* a halt holds the rest of the local day */
	WU_RESUME_MANUAL    /* a halt holds until someone resumes */
};

struct wu_gate_conf {
	double bounce_warn, bounce_halt;       /* fractions: 0.03, 0.05 */
	double complaint_warn, complaint_halt; /* 0.001, 0.003 */
	int64_t min_sample, pool_sample;       /* bounce pool (delivered + bounces): 120, 300 */
	int64_t complaint_min_sample;          /* complaint pool (delivered): 2000 */
	int64_t complaint_pool_sample;         /* 5000 */
	double z;                              /* 0 = observed rate (default); > 0: exact bound */
	enum wu_gate_resume resume;
};

/* Sets c->z for a confidence level p (0.95 = 95%): the usual levels give
 * their textbook values, any other its two-sided z.  Returns 0, or -1 for
 * p outside [0.5, 1). */
int wu_gate_confidence(struct wu_gate_conf *c, double p);

struct wu_gate_counts {
	int64_t delivered;
	int64_t bounces;
	int64_t complaints;
};

/* The new route's outcomes of the dates before today, newest first, since
 * the gate last started afresh (a halt or a resume). */
struct wu_gate_past {
	int n;
	struct wu_gate_counts day[WU_GATE_DAYS];
};

struct wu_gate_verdict {
	enum wu_gate_state state;
	double bounce_rate; /* today's observed rate; 0 with no data */
	double complaint_rate;
	/* the pools judged: rate, size (delivered + bounces, or delivered)
	 * and days in them, today included */
	double bounce_pool_rate, complaint_pool_rate;
	int64_t bounce_n, complaint_n;
	int bounce_days, complaint_days;
	char reason[112]; /* "bounce rate 6.12% over 5.00% (n=412, 2 days)", or "" */
};

void wu_gate_conf_default(struct wu_gate_conf *c);

/* Judges today's counts pooled with the past days (past may be NULL). */
void wu_gate_eval(const struct wu_gate_conf *c, const struct wu_gate_counts *today,
                  const struct wu_gate_past *past, struct wu_gate_verdict *v);

/* 1 when deliveries that took today's counts from *before to *after can
 * change the verdict: they completed a pool, or made today big enough that
 * an older day leaves it.  Otherwise a delivery only lowers the rates. */
int wu_gate_due(const struct wu_gate_conf *c, const struct wu_gate_past *past,
                const struct wu_gate_counts *before, const struct wu_gate_counts *after);

/* A day closed with counts day, and `dates` dates passed (more than 1 when
 * the daemon was down: the dates between had no outcomes). */
void wu_gate_past_push(struct wu_gate_past *p, const struct wu_gate_counts *day, int dates);

/* Forgets the past: the gate judges afresh (after a halt or a resume). */
void wu_gate_past_clear(struct wu_gate_past *p);

/* Lower bound of the Wilson score interval of hits/n at z. */
double wu_gate_wilson_low(int64_t hits, int64_t n, double z);

/* Lower bound of the exact (Clopper-Pearson) interval of hits/n, two-sided
 * at z (z <= 0: the plain rate). */
double wu_gate_lower_bound(int64_t hits, int64_t n, double z);

const char *wu_gate_state_name(enum wu_gate_state s);
int wu_gate_resume_parse(const char *s, enum wu_gate_resume *r, char *err, size_t errlen);

#endif
