/*
 * gate.c -- bounce and complaint thresholds, with small samples handled.
 *
 * A rate trips a threshold only when at least min_sample outcomes back it and
 * the lower end of its confidence interval is over the line: "we are
 * confident the true rate is above 5%", not "3 of the first 40 bounced".
 * The bound is the exact (Clopper-Pearson) one: Wilson's score bound is too
 * eager at small counts -- one complaint in 50 deliveries would put it over a
 * 0.3% line, where the exact bound is 0.05%.  It is computed only when a
 * bounce or complaint arrives, so its cost does not matter.
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

/* Continued fraction of the incomplete beta function (Lentz's method). */
static double beta_cf(double a, double b, double x)
{
	const double tiny = 1e-300;
	double c = 1, d = 1 - (a + b) * x / (a + 1), h;

	if (fabs(d) < tiny)
		d = tiny;
	d = 1 / d;
	h = d;
	for (int m = 1; m <= 300; m++) {
		double m2 = 2.0 * m, num, del;
		num = m * (b - m) * x / ((a + m2 - 1) * (a + m2));
		d = 1 + num * d;
		c = 1 + num / c;
		d = fabs(d) < tiny ? 1 / tiny : 1 / d;
		c = fabs(c) < tiny ? tiny : c;
		h *= d * c;
		num = -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1));
		d = 1 + num * d;
		c = 1 + num / c;
		d = fabs(d) < tiny ? 1 / tiny : 1 / d;
		c = fabs(c) < tiny ? tiny : c;
		del = d * c;
		h *= del;
		if (fabs(del - 1) < 1e-12)
			break;
	}
	return h;
}

/* The regularized incomplete beta function I_x(a, b). */
static double beta_inc(double a, double b, double x)
{
	double front;

	if (x <= 0)
		return 0;
	if (x >= 1)
		return 1;
	front = exp(lgamma(a + b) - lgamma(a) - lgamma(b) + a * log(x) + b * log1p(-x));
	if (x < (a + 1) / (a + b + 2))
		return front * beta_cf(a, b, x) / a;
	return 1 - front * beta_cf(b, a, 1 - x) / b;
}

double wu_gate_lower_bound(int64_t hits, int64_t n, double z)
{
	double tail, lo = 0, hi;

	if (n <= 0 || hits <= 0)
		return 0;
	if (z <= 0)
		return (double)hits / (double)n;
	/* Clopper-Pearson: the p at which seeing hits or more has probability
	 * alpha/2, i.e. I_p(hits, n - hits + 1) = alpha/2.  The tail grows with
	 * p, so bisection finds it. */
	tail = 0.5 * erfc(z / sqrt(2.0));
	hi = (double)hits / (double)n;
	for (int i = 0; i < 60; i++) {
		double mid = (lo + hi) / 2;
		if (beta_inc((double)hits, (double)(n - hits + 1), mid) < tail)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

/* The state one rate earns: hits of n against warn and halt. */
static enum wu_gate_state judge(const struct wu_gate_conf *c, int64_t hits, int64_t n, double warn,
                                double halt)
{
	double low, p;

	if (n < c->min_sample || n <= 0)
		return WU_GATE_OK;
	/* The exact bound is below the plain rate, and for rates under one half
	 * below Wilson's bound too: when one of them is under the lower line the
	 * day is fine, and the bisection (tens of microseconds) is not needed. */
	p = (double)hits / (double)n;
	if (p <= warn || (c->z > 0 && p < 0.5 && wu_gate_wilson_low(hits, n, c->z) <= warn))
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
