/*
 * gate.h -- the health gate: stop the ramp when bounces or complaints cross
 * the line.
 *
 * bounce rate    = hard bounces / (delivered + hard bounces)
 * complaint rate = spam reports / delivered
 *
 * A threshold trips only when the sample is large enough (min_sample
 * outcomes) and, with z > 0, when the lower end of the exact (Clopper-Pearson)
 * confidence interval at that z is above it -- so a handful of bounces on a 63-message day
 * does not stop a migration, while a real problem does.
 */
#ifndef WU_GATE_H
#define WU_GATE_H

#include "wu.h"

enum wu_gate_state { WU_GATE_OK = 0, WU_GATE_WARN = 1, WU_GATE_HALT = 2 };

enum wu_gate_resume {
	WU_RESUME_NEXT_DAY, /* a halt holds the rest of the local day */
	WU_RESUME_MANUAL    /* a halt holds until someone resumes */
};

struct wu_gate_conf {
	double bounce_warn, bounce_halt;       /* fractions: 0.03, 0.05 */
	double complaint_warn, complaint_halt; /* 0.001, 0.003 */
	int64_t min_sample;                    /* outcomes before any verdict */
	double z;                              /* Wilson z; 0 = plain rate */
	enum wu_gate_resume resume;
};

struct wu_gate_counts {
	int64_t delivered;
	int64_t bounces;
	int64_t complaints;
};

struct wu_gate_verdict {
	enum wu_gate_state state;
	double bounce_rate; /* observed; 0 with no data */
	double complaint_rate;
	char reason[96]; /* "bounce rate 6.1% over 5.0% (n=412)", or "" */
};

void wu_gate_conf_default(struct wu_gate_conf *c);

/* Judges one day's counts. */
void wu_gate_eval(const struct wu_gate_conf *c, const struct wu_gate_counts *n,
                  struct wu_gate_verdict *v);

/* Lower bound of the Wilson score interval of hits/n at z. */
double wu_gate_wilson_low(int64_t hits, int64_t n, double z);

/* Lower bound of the exact (Clopper-Pearson) interval of hits/n, two-sided
 * at z: what the gate judges by (z <= 0: the plain rate). */
double wu_gate_lower_bound(int64_t hits, int64_t n, double z);

const char *wu_gate_state_name(enum wu_gate_state s);
int wu_gate_resume_parse(const char *s, enum wu_gate_resume *r, char *err, size_t errlen);

#endif
