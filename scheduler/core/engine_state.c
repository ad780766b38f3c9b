/*
 * engine_state.c -- the engine's state as text: wu_engine_save() writes it,
 * wu_engine_load() reads it back into an engine built from the
 * configuration.
 *
 * Saved state is text, one fact per line, so that it can be read in the
 * store with the sqlite3 shell.  Only what cannot be rebuilt from the
 * configuration is written: the day, the step, counters and live limits.
 */
#include "engine_priv.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Appends to buf as snprintf would: off counts what the whole text needs,
 * even past len, so a first pass with len 0 measures it. */
static void put(char *buf, size_t len, size_t *off, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void put(char *buf, size_t len, size_t *off, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(*off < len ? buf + *off : NULL, *off < len ? len - *off : 0, fmt, ap);
	va_end(ap);
	if (n > 0)
		*off += (size_t)n;
}

/* Writes the state into buf (at most len bytes, NUL included) and returns
 * the length the whole text needs. */
static size_t save_text(const struct wu_engine *e, char *buf, size_t len)
{
	const struct wu_day_stats *t = &e->today;
	size_t off = 0;

	if (len)
		buf[0] = '\0';
	put(buf, len, &off,
	    "warmup-engine 1\ndate %d\nstep %d\nheld %d %d\nhalted %d\nused %" PRId64
	    "\ngate %d %d %" PRId64 " %" PRId64 " %" PRId64 "\npacing %.17g %" PRId64 " %.17g\n",
	    t->date, t->step, e->held, t->held, e->halted, t->used, (int)t->gate,
	    (int)e->gate_state, e->gate.delivered, e->gate.bounces, e->gate.complaints,
	    e->pacing.tokens, e->pacing.last, e->pacing.burst);
	for (int i = 0; i < e->gate_past.n; i++)
		put(buf, len, &off, "gate_past %" PRId64 " %" PRId64 " %" PRId64 "\n",
		    e->gate_past.day[i].delivered, e->gate_past.day[i].bounces,
		    e->gate_past.day[i].complaints);
	if (t->closed)
		put(buf, len, &off, "closed 1\n");
	for (int i = 0; i < WU_PROFILE_DAYS; i++)
		for (int h = 0; h < WU_PROFILE_HOURS; h++)
			if (e->arrivals.date[i] && e->arrivals.n[i][h])
				put(buf, len, &off, "arrivals %d %d %" PRId64 "\n",
				    e->arrivals.date[i], h, e->arrivals.n[i][h]);
	put(buf, len, &off, "engaged %d %" PRId64 " %" PRId64 " %" PRId64 " %" PRId64 "\n",
	    t->engaged_first, t->engaged_new, t->engaged_asks, t->turned, e->prev_asks);
	if (e->gap.quiet || e->gap.last_step || t->stepped_back)
		put(buf, len, &off, "gap %d %d %d\n", e->gap.quiet, e->gap.last_step,
		    t->stepped_back);
	if (e->days.latest > t->date)
		put(buf, len, &off, "latest %d\n", e->days.latest);
	/* The other dates it has been on, for a clock that goes back to one:
	 * enough to keep their caps granted once (days.h). */
	for (int i = 0; i < e->days.n; i++) {
		const struct wu_day_stats *p = &e->days.d[i];
		if (p->date != t->date)
			put(buf, len, &off, "past %d %d %" PRId64 " %d %d %d\n", p->date, p->step,
			    p->used, p->held, (int)p->gate, p->closed);
	}
	for (int r = 0; r < WU_ROUTE_COUNT; r++) {
		if (e->paused[r])
			put(buf, len, &off, "paused %d %s\n", r, e->paused_by[r]);
		for (int i = 0; i < e->conf.isps.n; i++) {
			const struct wu_throttle *th = &e->th[r][i];
			if (t->sent[r][i])
				put(buf, len, &off, "sent %d %d %" PRId64 "\n", r, i,
				    t->sent[r][i]);
			for (int k = 0; k < WU_RESULT_COUNT; k++)
				if (t->result[r][i][k])
					put(buf, len, &off, "result %d %d %d %" PRId64 "\n", r, i,
					    k, t->result[r][i][k]);
			if (th->factor != 1 || th->fails || th->suspended_until || th->hold_until ||
			    th->bucket.tokens < th->bucket.burst)
				put(buf, len, &off,
				    "throttle %d %d %.17g %d %" PRId64 " %" PRId64 " %.17g %" PRId64
				    "\n",
				    r, i, th->factor, th->fails, th->suspended_until,
				    th->hold_until, th->bucket.tokens, th->bucket.last);
		}
	}
	put(buf, len, &off, "end\n");
	return off;
}

int wu_engine_save(const struct wu_engine *e, char *buf, size_t len)
{
	size_t n = save_text(e, buf, len);

	return n < len && n <= INT32_MAX ? (int)n : -1;
}

char *wu_engine_save_alloc(const struct wu_engine *e)
{
	size_t n = save_text(e, NULL, 0);
	char *buf = malloc(n + 1);

	if (buf && save_text(e, buf, n + 1) != n) {
		free(buf);
		return NULL;
	}
	return buf;
}

/*
 * Loading trusts nothing: the row may have been edited by hand, written by
 * another version or damaged on disk.  Every number is read with strtoll or
 * strtod and checked against the range the engine can produce, so a state
 * that loads can never overflow the day, bucket or counter arithmetic.
 */

/* Largest saved counter: more messages than any warmup sends, and exact as
 * a double, so rates and shares computed from it stay exact. */
#define COUNT_MAX (INT64_C(1) << 53)
/* Last date and time of the calendar (9999-12-31): [warmup] start ends in
 * 9999 too, so the day arithmetic has room on both sides. */
#define DATE_MAX 2932896
#define TIME_MAX (INT64_C(253402300800) * WU_USEC)
/* A bucket's tokens: at least -1 (one taken from an empty bucket), at most
 * a day's cap (burst = day), which doubling after the last row takes up to
 * 2^62. */
#define TOKENS_MAX 1e19
#define FAILS_MAX  (1 << 30)
#define TOK_MAX    12

struct loader {
	int lineno;
	char *tok[TOK_MAX];
	int ntok;
	char *err;
	size_t errlen;
	const struct wu_engine *e;
};

static int ld_fail(struct loader *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Writes "saved engine state, line N: ..." (no line for the whole text:
 * lineno 0) and returns -1. */
static int ld_fail(struct loader *l, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!l->err || !l->errlen)
		return -1;
	n = l->lineno ? snprintf(l->err, l->errlen, "saved engine state, line %d: ", l->lineno)
	              : snprintf(l->err, l->errlen, "saved engine state: ");
	if (n >= 0 && (size_t)n < l->errlen) {
		va_start(ap, fmt);
		vsnprintf(l->err + n, l->errlen - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return -1;
}

/* Splits line at blanks into l->tok; returns the count, or -1 when there
 * are more than TOK_MAX words. */
static int ld_split(struct loader *l, char *line)
{
	char *save = NULL, *w;

	l->ntok = 0;
	for (w = strtok_r(line, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
		if (l->ntok == TOK_MAX)
			return -1;
		l->tok[l->ntok++] = w;
	}
	return l->ntok;
}

/* Word i as an integer in lo..hi, or a message naming field. */
static int ld_int(struct loader *l, int i, const char *field, int64_t lo, int64_t hi, int64_t *out)
{
	const char *s = l->tok[i];
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (end == s || *end || errno || v < lo || v > hi)
		return ld_fail(l, "%s: '%s' is not a whole number in %" PRId64 "..%" PRId64, field,
		               s, lo, hi);
	*out = v;
	return 0;
}

/* ld_int for an int. */
static int ld_int32(struct loader *l, int i, const char *field, int lo, int hi, int *out)
{
	/* 0: GCC 12 at -O3 (the release build) cannot see that ld_fail always
	 * returns -1 and stops -Werror with maybe-uninitialized. */
	int64_t v = 0;

	if (ld_int(l, i, field, lo, hi, &v) < 0)
		return -1;
	*out = (int)v;
	return 0;
}

/* Word i as a finite number in [lo, hi] (lo excluded when open_lo). */
static int ld_real(struct loader *l, int i, const char *field, double lo, int open_lo, double hi,
                   double *out)
{
	const char *s = l->tok[i];
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (end == s || *end || errno == ERANGE || !isfinite(v) || v < lo || (open_lo && v == lo) ||
	    v > hi)
		return ld_fail(l, "%s: '%s' is not a number in %s%g..%g]", field, s,
		               open_lo ? "(" : "[", lo, hi);
	*out = v;
	return 0;
}

/* Words i and i+1 as a route and an ISP of the configuration; name gets
 * "new google" for the messages that follow. */
static int ld_pair(struct loader *l, int i, int *r, int *isp, char *name, size_t len)
{
	if (ld_int32(l, i, "route", 0, WU_ROUTE_COUNT - 1, r) < 0)
		return -1;
	if (ld_int32(l, i + 1, "isp", 0, l->e->conf.isps.n - 1, isp) < 0)
		return ld_fail(l,
		               "isp %s: the configuration has ISPs 0..%d only (an [isp] section "
		               "removed since the state was saved?)",
		               l->tok[i + 1], l->e->conf.isps.n - 1);
	snprintf(name, len, "%s %s", wu_route_name((enum wu_route) * r),
	         l->e->conf.isps.names[*isp]);
	return 0;
}

/* What one load has read so far. */
struct loaded {
	int date, step, held, tday_held, halted, tgate, gstate, ended, closed, latest;
	int engaged, efirst, stepped_back; /* engaged: an 'engaged' line was read */
	int64_t enew, easks, turned, prev_asks;
	int64_t used;
	struct wu_gate_counts gc;
	double tokens, burst;
	int64_t last;
};

/* Reads one line of the state into tmp and *v.  Returns 0 or -1. */
static int ld_line(struct loader *l, struct wu_engine *tmp, struct loaded *v, char *line)
{
	const char *key;
	char pair[WU_ISP_NAME_MAX + 8], field[WU_ISP_NAME_MAX + 40];
	int r, i, k, n;

	if (strncmp(line, "paused ", 7) == 0) {
		/* The word after the route is free text: who paused it. */
		char *who = line + 7 + strspn(line + 7, "0123456789");
		char route[16];

		snprintf(route, sizeof(route), "%.*s", (int)(who - line - 7), line + 7);
		if (*who != ' ' && *who != '\0')
			return ld_fail(l, "paused: expected a route number and who paused it");
		if (*who)
			*who++ = '\0';
		l->tok[0] = route;
		if (ld_int32(l, 0, "paused: route", 0, WU_ROUTE_COUNT - 1, &r) < 0)
			return -1;
		for (const char *c = who; *c; c++)
			if ((unsigned char)*c < 0x20 || *c == 0x7f)
				return ld_fail(l,
				               "paused: who paused it holds a control character");
		tmp->paused[r] = 1;
		snprintf(tmp->paused_by[r], WHO_MAX, "%s", who);
		return 0;
	}
	if ((n = ld_split(l, line)) < 0)
		return ld_fail(l, "too many words");
	if (n == 0)
		return 0;
	key = l->tok[0];
#define WANT(count)                                                                                \
	do {                                                                                       \
		if (n != (count) + 1)                                                              \
			return ld_fail(l, "%s: expected %d value%s, got %d", key, (count),         \
			               (count) == 1 ? "" : "s", n - 1);                            \
	} while (0)
	if (strcmp(key, "date") == 0) {
		WANT(1);
		return ld_int32(l, 1, "date", 1, DATE_MAX, &v->date);
	}
	if (strcmp(key, "step") == 0) {
		WANT(1);
		return ld_int32(l, 1, "step", 0, DATE_MAX, &v->step);
	}
	if (strcmp(key, "held") == 0) {
		WANT(2);
		return ld_int32(l, 1, "held: days held", 0, DATE_MAX, &v->held) < 0 ||
		               ld_int32(l, 2, "held: today held", 0, 1, &v->tday_held) < 0
		           ? -1
		           : 0;
	}
	if (strcmp(key, "halted") == 0) {
		WANT(1);
		return ld_int32(l, 1, "halted", 0, 1, &v->halted);
	}
	if (strcmp(key, "closed") == 0) {
		WANT(1);
		return ld_int32(l, 1, "closed", 0, 1, &v->closed);
	}
	if (strcmp(key, "engaged") == 0) {
		WANT(5);
		v->engaged = 1;
		return ld_int32(l, 1, "engaged: applies", 0, 1, &v->efirst) < 0 ||
		               ld_int(l, 2, "engaged: sent new", 0, COUNT_MAX, &v->enew) < 0 ||
		               ld_int(l, 3, "engaged: asks", 0, COUNT_MAX, &v->easks) < 0 ||
		               ld_int(l, 4, "engaged: turned away", 0, COUNT_MAX, &v->turned) < 0 ||
		               ld_int(l, 5, "engaged: asks the day before", 0, COUNT_MAX,
		                      &v->prev_asks) < 0
		           ? -1
		           : 0;
	}
	if (strcmp(key, "gap") == 0) {
		WANT(3);
		return ld_int32(l, 1, "gap: quiet days", 0, DATE_MAX, &tmp->gap.quiet) < 0 ||
		               ld_int32(l, 2, "gap: last step", 0, DATE_MAX, &tmp->gap.last_step) <
		                   0 ||
		               ld_int32(l, 3, "gap: stepped back", 0, 1, &v->stepped_back) < 0
		           ? -1
		           : 0;
	}
	if (strcmp(key, "latest") == 0) {
		WANT(1);
		return ld_int32(l, 1, "latest", 1, DATE_MAX, &v->latest);
	}
	if (strcmp(key, "past") == 0) {
		struct wu_day_stats p;
		int gate;

		WANT(6);
		memset(&p, 0, sizeof(p));
		if (tmp->days.n == WU_DAYS_KEPT)
			return ld_fail(l, "past: more than %d dates", WU_DAYS_KEPT);
		if (ld_int32(l, 1, "past: date", 1, DATE_MAX, &p.date) < 0 ||
		    ld_int32(l, 2, "past: step", 0, DATE_MAX, &p.step) < 0 ||
		    ld_int(l, 3, "past: used", 0, COUNT_MAX, &p.used) < 0 ||
		    ld_int32(l, 4, "past: held", 0, 1, &p.held) < 0 ||
		    ld_int32(l, 5, "past: gate", WU_GATE_OK, WU_GATE_HALT, &gate) < 0 ||
		    ld_int32(l, 6, "past: closed", 0, 1, &p.closed) < 0)
			return -1;
		if (wu_days_find(&tmp->days, p.date))
			return ld_fail(l, "past: date %d twice", p.date);
		p.gate = (enum wu_gate_state)gate;
		wu_days_keep(&tmp->days, &p);
		return 0;
	}
	if (strcmp(key, "used") == 0) {
		WANT(1);
		return ld_int(l, 1, "used", 0, COUNT_MAX, &v->used);
	}
	if (strcmp(key, "gate") == 0) {
		WANT(5);
		return ld_int32(l, 1, "gate: today's worst state", WU_GATE_OK, WU_GATE_HALT,
		                &v->tgate) < 0 ||
		               ld_int32(l, 2, "gate: state", WU_GATE_OK, WU_GATE_HALT, &v->gstate) <
		                   0 ||
		               ld_int(l, 3, "gate: delivered", 0, COUNT_MAX, &v->gc.delivered) <
		                   0 ||
		               ld_int(l, 4, "gate: bounces", 0, COUNT_MAX, &v->gc.bounces) < 0 ||
		               ld_int(l, 5, "gate: complaints", 0, COUNT_MAX, &v->gc.complaints) < 0
		           ? -1
		           : 0;
	}
	if (strcmp(key, "gate_past") == 0) {
		struct wu_gate_counts *d = &tmp->gate_past.day[tmp->gate_past.n];

		WANT(3);
		if (tmp->gate_past.n == WU_GATE_DAYS)
			return ld_fail(l, "gate_past: more than %d days", WU_GATE_DAYS);
		tmp->gate_past.n++;
		return ld_int(l, 1, "gate_past: delivered", 0, COUNT_MAX, &d->delivered) < 0 ||
		               ld_int(l, 2, "gate_past: bounces", 0, COUNT_MAX, &d->bounces) < 0 ||
		               ld_int(l, 3, "gate_past: complaints", 0, COUNT_MAX, &d->complaints) <
		                   0
		           ? -1
		           : 0;
	}
	if (strcmp(key, "pacing") == 0) {
		if (n != 3 && n != 4)
			return ld_fail(l, "pacing: expected 2 or 3 values, got %d", n - 1);
		v->burst = -1;
		return ld_real(l, 1, "pacing: tokens", -1, 0, TOKENS_MAX, &v->tokens) < 0 ||
		               ld_int(l, 2, "pacing: last", 0, TIME_MAX, &v->last) < 0 ||
		               (n == 4 &&
		                ld_real(l, 3, "pacing: burst", 1, 0, TOKENS_MAX, &v->burst) < 0)
		           ? -1
		           : 0;
	}
	if (strcmp(key, "arrivals") == 0) {
		int64_t date, hour, count;
		WANT(3);
		if (ld_int(l, 1, "arrivals: date", 1, DATE_MAX, &date) < 0 ||
		    ld_int(l, 2, "arrivals: hour", 0, WU_PROFILE_HOURS - 1, &hour) < 0 ||
		    ld_int(l, 3, "arrivals: count", 0, COUNT_MAX, &count) < 0)
			return -1;
		wu_profile_add(&tmp->arrivals, (int)date, (int)hour, count);
		return 0;
	}
	if (strcmp(key, "sent") == 0) {
		WANT(3);
		if (ld_pair(l, 1, &r, &i, pair, sizeof(pair)) < 0)
			return -1;
		snprintf(field, sizeof(field), "sent %s", pair);
		return ld_int(l, 3, field, 0, COUNT_MAX, &tmp->today.sent[r][i]);
	}
	if (strcmp(key, "result") == 0) {
		WANT(4);
		if (ld_pair(l, 1, &r, &i, pair, sizeof(pair)) < 0 ||
		    ld_int32(l, 3, "result: kind", 0, WU_RESULT_COUNT - 1, &k) < 0)
			return -1;
		snprintf(field, sizeof(field), "result %s %s", pair, wu_result_name(k));
		return ld_int(l, 4, field, 0, COUNT_MAX, &tmp->today.result[r][i][k]);
	}
	if (strcmp(key, "throttle") == 0) {
		struct wu_throttle th;
		double tokens;
		int64_t last;
		WANT(8);
		if (ld_pair(l, 1, &r, &i, pair, sizeof(pair)) < 0)
			return -1;
		th = tmp->th[r][i];
#define FIELD(what) (snprintf(field, sizeof(field), "throttle %s: %s", pair, what), field)
		if (ld_real(l, 3, FIELD("factor"), 0, 1, 1, &th.factor) < 0 ||
		    ld_int32(l, 4, FIELD("fails"), 0, FAILS_MAX, &th.fails) < 0 ||
		    ld_int(l, 5, FIELD("suspended until"), 0, TIME_MAX, &th.suspended_until) < 0 ||
		    ld_int(l, 6, FIELD("hold until"), 0, TIME_MAX, &th.hold_until) < 0 ||
		    ld_real(l, 7, FIELD("tokens"), -1, 0, TOKENS_MAX, &tokens) < 0 ||
		    ld_int(l, 8, FIELD("last"), 0, TIME_MAX, &last) < 0)
			return -1;
#undef FIELD
		wu_throttle_apply(&th, &tmp->conf.throttle[r][i], last);
		th.bucket.tokens = tokens < th.bucket.burst ? tokens : th.bucket.burst;
		th.bucket.last = last;
		tmp->th[r][i] = th;
		return 0;
	}
	if (strcmp(key, "end") == 0) {
		WANT(0);
		v->ended = 1;
		return 0;
	}
#undef WANT
	return ld_fail(l, "unknown line '%s'", key);
}

int wu_engine_load(struct wu_engine *e, const char *buf, wu_time_t now, char *err, size_t errlen)
{
	struct loader l = {.err = err, .errlen = errlen, .e = e};
	struct loaded v = {.burst = -1};
	struct wu_engine *tmp;
	struct wu_day nowday;
	const char *p = buf;
	char line[256];

	/* Parse into a copy so that a bad text leaves e as it was. */
	if (!(tmp = malloc(sizeof(*tmp))))
		return ld_fail(&l, "out of memory");
	*tmp = *e;
	memset(tmp->paused, 0, sizeof(tmp->paused));
	memset(tmp->paused_by, 0, sizeof(tmp->paused_by));
	memset(&tmp->today, 0, sizeof(tmp->today));
	memset(&tmp->days, 0, sizeof(tmp->days));
	memset(&tmp->gap, 0, sizeof(tmp->gap));
	wu_gate_past_clear(&tmp->gate_past);
	memset(&tmp->arrivals, 0, sizeof(tmp->arrivals));
	while (*p && !v.ended) {
		size_t n = strcspn(p, "\n");

		l.lineno++;
		if (n >= sizeof(line)) {
			ld_fail(&l, "longer than %zu bytes", sizeof(line) - 1);
			goto bad;
		}
		memcpy(line, p, n);
		line[n] = '\0';
		p += n + (p[n] == '\n');
		if (l.lineno == 1) {
			if (strcmp(line, "warmup-engine 1") != 0) {
				ld_fail(&l, "expected 'warmup-engine 1' (not a saved state of this "
				            "version)");
				goto bad;
			}
			continue;
		}
		if (ld_line(&l, tmp, &v, line) < 0)
			goto bad;
	}
	l.lineno++;
	if (!v.ended) {
		ld_fail(&l, l.lineno == 1 ? "empty" : "no 'end' line: the text is cut short");
		goto bad;
	}
	l.lineno = 0;
	if (v.date == 0) {
		ld_fail(&l, "no 'date' line");
		goto bad;
	}
	/* A saved day after tomorrow would stop the new route until the clock
	 * gets there (a clock set back, or a state from another machine). */
	wu_calendar_day(&tmp->conf.calendar, now, &nowday);
	if (v.date > nowday.date + 1) {
		char saved[16], today[16];
		wu_date_format(v.date, saved, sizeof(saved));
		wu_date_format(nowday.date, today, sizeof(today));
		ld_fail(&l, "date: %s is after today (%s)", saved, today);
		goto bad;
	}
	if (v.latest && v.latest < v.date) {
		ld_fail(&l, "latest: %d is before the saved date %d", v.latest, v.date);
		goto bad;
	}
	if (tmp->days.latest > (v.latest ? v.latest : v.date)) {
		ld_fail(&l, "past: a date after the latest one");
		goto bad;
	}
	if (wu_days_find(&tmp->days, v.date)) {
		ld_fail(&l, "past: the saved date %d again", v.date);
		goto bad;
	}
	if (v.gstate > v.tgate) {
		ld_fail(&l, "gate: state %d is worse than today's worst state %d", v.gstate,
		        v.tgate);
		goto bad;
	}

	/* Rebuild the saved day from the configuration, then lay the counters on it. */
	struct wu_day_stats saved = tmp->today;
	wu_calendar_date(&tmp->conf.calendar, v.date, &tmp->day);
	tmp->halted = v.halted;
	tmp->held = v.held;
	/* In calendar mode the step follows from the date, so a start date
	 * changed in the configuration takes effect on the saved day too. */
	if (tmp->conf.advance == WU_ADVANCE_CALENDAR)
		v.step = tmp->day.index < 1            ? 0
		         : tmp->day.index - v.held > 0 ? tmp->day.index - v.held
		                                       : 1;
	eng_setup_day(tmp, v.step, now);
	memcpy(tmp->today.sent, saved.sent, sizeof(saved.sent));
	memcpy(tmp->today.result, saved.result, sizeof(saved.result));
	tmp->today.used = v.used;
	tmp->today.held = v.tday_held;
	tmp->today.stepped_back = v.stepped_back;
	if (v.engaged) {
		/* The saved verdict stands for until_cap_exceeds_traffic (it was
		 * judged on a day before the text does not hold); a policy of a
		 * number of days, or off, is judged again, so a reload that
		 * changes it takes effect today. */
		tmp->today.engaged_first =
		    tmp->conf.engaged.first == WU_ENGAGED_FIRST_UNTIL_CAP
		        ? v.efirst
		        : wu_engaged_applies(&tmp->conf.engaged, tmp->today.step, tmp->today.cap, 1,
		                             0, 0);
		tmp->today.engaged_new = v.enew > v.used ? v.used : v.enew;
		tmp->today.engaged_asks = v.easks;
		tmp->today.turned = v.turned;
		tmp->prev_asks = v.prev_asks;
	}
	if (v.closed) {
		tmp->today.cap = 0;
		tmp->today.closed = 1;
	}
	if (v.latest > tmp->days.latest)
		tmp->days.latest = v.latest;
	tmp->today.gate = (enum wu_gate_state)v.tgate;
	tmp->gate = v.gc;
	tmp->gate_state = (enum wu_gate_state)v.gstate;
	/* The release in force when the bucket was last filled. */
	wu_pace_at(&tmp->pace, v.last > tmp->day.open ? v.last : tmp->day.open, &tmp->pacing.rate,
	           &tmp->pacing.burst, &tmp->pace_next);
	/* A cap changed in the configuration moves the burst: what was left of
	 * the old one carries over, the difference is added (or taken). */
	if (v.burst >= 0)
		v.tokens += tmp->pacing.burst - v.burst;
	tmp->pacing.tokens = v.tokens < 0                   ? 0
	                     : v.tokens < tmp->pacing.burst ? v.tokens
	                                                    : tmp->pacing.burst;
	tmp->pacing.last = v.last;
	tmp->ev_count = tmp->ev_head = 0;
	*e = *tmp;
	free(tmp);
	wu_engine_tick(e, now);
	return 0;
bad:
	free(tmp);
	return -1;
}
