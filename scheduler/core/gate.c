/*
 * gate.c -- bounce and complaint thresholds, judged on a pool of recent days.
 *
 * The seed schedule sends 63 messages on day 1 and 83 on day 2: no rule can
 * tell 2% from 8% bounces on one such day (2% of 63 is 1.3 bounces, 8% is
 * 5).  Judging each day alone, with a confidence bound strict enough to
 * spare a healthy sender on those days, did not halt a true 6% until day 7.
 * So a small day is judged together with the days before it: the pool is
 * today's outcomes, then whole earlier days, newest first, until it holds
 * pool_sample (300) outcomes, and its observed rate is compared with the
 * lines as soon as it holds min_sample (120).  Once today alone holds 300,
 * only today counts, so a bad day 9 after eight clean days halts on day 9.
 *
 * Why two sizes: each check of a fresh small pool is a new chance for a
 * false alarm.  With a pool of 120, a true 2% halted a quarter of 1,000
 * simulated ramps within ten days (about 2% per day); pooling to 300 lets
 * the checks of days 2 to 5 share their evidence and cut that to under 4%,
 * while judging from 120 still halts a true 8% on day 2 (63 + 83 messages).
 * The operating characteristics, measured with `warmup simulate --seeds`,
 * are in README.md (Health gate).
 *
 * Complaints pool the same way on deliveries, to 5,000 and from 2,000: at
 * the 0.3% line 2,000 deliveries hold 6 expected reports, as 120 outcomes
 * hold 6 bounces at the 5% line.
 *
 * With z > 0 the lower end of the exact (Clopper-Pearson) interval is
 * compared instead of the observed rate: fewer false alarms, later halts.
 * Wilson's score bound is not used for that: at small counts it is too
 * eager (one complaint in 50 deliveries puts it over a 0.3% line, where the
 * exact bound is 0.05%); it only screens out the cases far under the line
 * before the bisection.
 */
#include "gate.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/*
 * Inverse of the standard normal distribution (P. J. Acklam's rational
 * approximation, relative error below 1.2e-9): any confidence level maps to
 * its two-sided z, and the usual ones give their textbook values.
 */
static double inverse_normal(double p)
{
	static const double a[] = {-3.969683028665376e+01, 2.209460984245205e+02,
	                           -2.759285104469687e+02, 1.383577518672690e+02,
	                           -3.066479806614716e+01, 2.506628277459239e+00};
	static const double b[] = {-5.447609879822406e+01, 1.615858368580409e+02,
	                           -1.556989798598866e+02, 6.680131188771972e+01,
	                           -1.328068155288572e+01};
	static const double c[] = {-7.784894002430293e-03, -3.223964580411365e-01,
	                           -2.400758277161838e+00, -2.549732539343734e+00,
	                           4.374664141464968e+00,  2.938163982698783e+00};
	static const double d[] = {7.784695709041462e-03, 3.224671290700398e-01,
	                           2.445134137142996e+00, 3.754408661907416e+00};
	double q, r;

	if (p < 0.02425) {
		q = sqrt(-2 * log(p));
		return (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
		       ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
	}
	if (p > 1 - 0.02425) {
		q = sqrt(-2 * log(1 - p));
		return -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
		       ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
	}
	q = p - 0.5;
	r = q * q;
	return (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
	       (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
}

/* A confidence level (0.5 <= p < 1) as the gate's two-sided z. */
int wu_gate_confidence(struct wu_gate_conf *c, double p)
{
	static const struct {
		double p, z;
	} usual[] = {{0.90, 1.645}, {0.95, 1.96}, {0.99, 2.576}};

	if (!(p >= 0.5 && p < 1))
		return -1;
	for (size_t i = 0; i < sizeof(usual) / sizeof(usual[0]); i++)
		if (fabs(p - usual[i].p) < 1e-9) {
			c->z = usual[i].z;
			return 0;
		}
	c->z = inverse_normal(1 - (1 - p) / 2);
	return 0;
}

void wu_gate_conf_default(struct wu_gate_conf *c)
{
	c->bounce_warn = 0.03;
	c->bounce_halt = 0.05;
	c->complaint_warn = 0.001;
	c->complaint_halt = 0.003;
	c->min_sample = 120;
	c->pool_sample = 300;
	c->complaint_min_sample = 2000;
	c->complaint_pool_sample = 5000;
	c->z = 0;
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

/* The sample a rate is measured on: deliveries and bounces for the
 * bounce rate, deliveries for the complaint rate. */
static int64_t sample(const struct wu_gate_counts *k, int complaints)
{
	return complaints ? k->delivered : k->delivered + k->bounces;
}

/* How far a pool reaches: its size, and never short of its least size. */
static int64_t reach(int64_t min, int64_t size)
{
	return size > min ? size : min;
}

/* Pools today with whole past days, newest first, until the sample holds
 * size; returns the days pooled, today included. */
static int pool(const struct wu_gate_counts *today, const struct wu_gate_past *past, int64_t size,
                int complaints, struct wu_gate_counts *out)
{
	int days = 1;

	*out = *today;
	for (int j = 0; past && j < past->n && sample(out, complaints) < size; j++, days++) {
		out->delivered += past->day[j].delivered;
		out->bounces += past->day[j].bounces;
		out->complaints += past->day[j].complaints;
	}
	return days;
}

/* The state hits of n earn against warn and halt (n below min: none yet). */
static enum wu_gate_state judge(const struct wu_gate_conf *c, int64_t hits, int64_t n, int64_t min,
                                double warn, double halt)
{
	double low, p;

	if (n < min || n <= 0)
		return WU_GATE_OK;
	p = (double)hits / (double)n;
	if (c->z <= 0)
		return p > halt ? WU_GATE_HALT : p > warn ? WU_GATE_WARN : WU_GATE_OK;
	/* The exact bound is below the plain rate, and for rates under one half
	 * below Wilson's bound too: when one of them is under the lower line the
	 * pool is fine, and the bisection (tens of microseconds) is not needed. */
	if (p <= warn || (p < 0.5 && wu_gate_wilson_low(hits, n, c->z) <= warn))
		return WU_GATE_OK;
	low = wu_gate_lower_bound(hits, n, c->z);
	return low > halt ? WU_GATE_HALT : low > warn ? WU_GATE_WARN : WU_GATE_OK;
}

/* hits / n, 0 when n is 0. */
static double rate(int64_t hits, int64_t n)
{
	return n > 0 ? (double)hits / (double)n : 0;
}

void wu_gate_eval(const struct wu_gate_conf *c, const struct wu_gate_counts *today,
                  const struct wu_gate_past *past, struct wu_gate_verdict *v)
{
	struct wu_gate_counts pb, pc;
	enum wu_gate_state b, q;

	v->bounce_days = pool(today, past, reach(c->min_sample, c->pool_sample), 0, &pb);
	v->complaint_days =
	    pool(today, past, reach(c->complaint_min_sample, c->complaint_pool_sample), 1, &pc);
	v->bounce_n = sample(&pb, 0);
	v->complaint_n = sample(&pc, 1);
	b = judge(c, pb.bounces, v->bounce_n, c->min_sample, c->bounce_warn, c->bounce_halt);
	q = judge(c, pc.complaints, v->complaint_n, c->complaint_min_sample, c->complaint_warn,
	          c->complaint_halt);
	v->bounce_rate = rate(today->bounces, sample(today, 0));
	v->complaint_rate = rate(today->complaints, sample(today, 1));
	v->bounce_pool_rate = rate(pb.bounces, v->bounce_n);
	v->complaint_pool_rate = rate(pc.complaints, v->complaint_n);
	v->state = b > q ? b : q;
	v->reason[0] = '\0';
	if (b >= q && b != WU_GATE_OK)
		snprintf(v->reason, sizeof(v->reason),
		         "bounce rate %.2f%% over %.2f%% (n=%lld, %d day%s)",
		         v->bounce_pool_rate * 100,
		         (b == WU_GATE_HALT ? c->bounce_halt : c->bounce_warn) * 100,
		         (long long)v->bounce_n, v->bounce_days, v->bounce_days == 1 ? "" : "s");
	else if (q != WU_GATE_OK)
		snprintf(v->reason, sizeof(v->reason),
		         "complaint rate %.3f%% over %.3f%% (n=%lld, %d day%s)",
		         v->complaint_pool_rate * 100,
		         (q == WU_GATE_HALT ? c->complaint_halt : c->complaint_warn) * 100,
		         (long long)v->complaint_n, v->complaint_days,
		         v->complaint_days == 1 ? "" : "s");
}

/* 1 when today's sample going from `from` to `to` passes a size at which
 * the pool changes: the pool size less the samples of the newest j past
 * days (the oldest of them leaves), or the least size less all of them
 * (the first verdict). */
static int crosses(const struct wu_gate_past *past, int64_t min, int64_t size, int complaints,
                   int64_t from, int64_t to)
{
	int64_t left = reach(min, size), all = 0;

	if (from >= left) /* today alone is the pool already: the common case */
		return 0;
	for (int j = 0; past && j < past->n; j++)
		all += sample(&past->day[j], complaints);
	if (from < min - all && to >= min - all)
		return 1;
	for (int j = 0; left > from; j++) {
		if (to >= left)
			return 1;
		if (!past || j == past->n)
			return 0;
		left -= sample(&past->day[j], complaints);
	}
	return 0;
}

int wu_gate_due(const struct wu_gate_conf *c, const struct wu_gate_past *past,
                const struct wu_gate_counts *before, const struct wu_gate_counts *after)
{
	return crosses(past, c->min_sample, c->pool_sample, 0, sample(before, 0),
	               sample(after, 0)) ||
	       crosses(past, c->complaint_min_sample, c->complaint_pool_sample, 1,
	               sample(before, 1), sample(after, 1));
}

/* Puts k in front of the past days, the oldest falling out. */
static void push(struct wu_gate_past *p, const struct wu_gate_counts *k)
{
	memmove(&p->day[1], &p->day[0], (WU_GATE_DAYS - 1) * sizeof(p->day[0]));
	p->day[0] = *k;
	if (p->n < WU_GATE_DAYS)
		p->n++;
}

void wu_gate_past_push(struct wu_gate_past *p, const struct wu_gate_counts *day, int dates)
{
	static const struct wu_gate_counts none;

	push(p, day);
	for (int k = 1; k < dates && k <= WU_GATE_DAYS; k++)
		push(p, &none);
}

void wu_gate_past_clear(struct wu_gate_past *p)
{
	memset(p, 0, sizeof(*p));
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
