/*
 * gate.c -- bounce and complaint thresholds, with small samples handled.
 *
 * A rate trips a threshold only when at least min_sample outcomes back it and
 * the lower end of its confidence interval is over the line: "we are
 * confident the true rate is above 5%", not "3 of the first 40 bounced".
 * The interval is Wilson's with continuity correction: the plain Wilson
 * bound is too eager at small counts (one complaint in 50 deliveries would
 * put its bound over a 0.3% line), the corrected one stays close to the
 * exact Clopper-Pearson bound without its cost.
 */
#include "gate.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

void wu_gate_conf_default(struct wu_gate_conf *c)
{
	c->bounce_warn = 0.03;
	c->bounce_halt = 0.05;
	c->complaint_warn = 0.001;
	c->complaint_halt = 0.003;
	c->min_sample = 50;
	c->z = 1.96;
	c->resume = WU_RESUME_NEXT_DAY;
}

double wu_gate_wilson_low(int64_t hits, int64_t n, double z)
{
	double p, z2, centre, margin;

	if (n <= 0)
		return 0;
	p = (double)hits / (double)n;
	if (z <= 0)
		return p;
	z2 = z * z;
	centre = p + z2 / (2.0 * (double)n);
	margin = z * sqrt(p * (1 - p) / (double)n + z2 / (4.0 * (double)n * (double)n));
	return (centre - margin) / (1 + z2 / (double)n);
}

double wu_gate_lower_bound(int64_t hits, int64_t n, double z)
{
	double p, z2, root, low;

	if (n <= 0 || hits <= 0)
		return 0;
	p = (double)hits / (double)n;
	if (z <= 0)
		return p;
	/* Wilson's interval with continuity correction (Newcombe 1998, method 4). */
	z2 = z * z;
	root = z2 - 2 - 1.0 / (double)n + 4 * p * ((double)n * (1 - p) + 1);
	if (root < 0)
		root = 0;
	low = (2 * (double)n * p + z2 - 1 - z * sqrt(root)) / (2 * ((double)n + z2));
	return low < 0 ? 0 : low;
}

/* The state one rate earns: hits of n against warn and halt. */
static enum wu_gate_state judge(const struct wu_gate_conf *c, int64_t hits, int64_t n, double warn,
                                double halt)
{
	double low;

	if (n < c->min_sample || n <= 0)
		return WU_GATE_OK;
	low = wu_gate_lower_bound(hits, n, c->z);
	if (low > halt)
		return WU_GATE_HALT;
	if (low > warn)
		return WU_GATE_WARN;
	return WU_GATE_OK;
}

void wu_gate_eval(const struct wu_gate_conf *c, const struct wu_gate_counts *k,
                  struct wu_gate_verdict *v)
{
	int64_t nb = k->delivered + k->bounces;
	enum wu_gate_state b = judge(c, k->bounces, nb, c->bounce_warn, c->bounce_halt);
	enum wu_gate_state q =
	    judge(c, k->complaints, k->delivered, c->complaint_warn, c->complaint_halt);

	v->bounce_rate = nb ? (double)k->bounces / (double)nb : 0;
	v->complaint_rate = k->delivered ? (double)k->complaints / (double)k->delivered : 0;
	v->state = b > q ? b : q;
	v->reason[0] = '\0';
	if (b >= q && b != WU_GATE_OK)
		snprintf(v->reason, sizeof(v->reason), "bounce rate %.2f%% over %.2f%% (n=%lld)",
		         v->bounce_rate * 100,
		         (b == WU_GATE_HALT ? c->bounce_halt : c->bounce_warn) * 100,
		         (long long)nb);
	else if (q != WU_GATE_OK)
		snprintf(v->reason, sizeof(v->reason), "complaint rate %.3f%% over %.3f%% (n=%lld)",
		         v->complaint_rate * 100,
		         (q == WU_GATE_HALT ? c->complaint_halt : c->complaint_warn) * 100,
		         (long long)k->delivered);
}

const char *wu_gate_state_name(enum wu_gate_state s)
{
	return s == WU_GATE_HALT ? "halt" : s == WU_GATE_WARN ? "warn" : "ok";
}

int wu_gate_resume_parse(const char *s, enum wu_gate_resume *r, char *err, size_t errlen)
{
	if (strcmp(s, "next_day") == 0)
		return *r = WU_RESUME_NEXT_DAY, 0;
	if (strcmp(s, "manual") == 0)
		return *r = WU_RESUME_MANUAL, 0;
	if (err && errlen)
		snprintf(err, errlen, "expected next_day or manual, got '%s'", s);
	return -1;
}
