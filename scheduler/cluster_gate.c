/*
 * cluster_gate.c -- the gate's counts shared between nodes.
 *
 * The Event Webhook lands on any node, so each node hears only part of the
 * new route's bounces and complaints.  Every node publishes its own counts
 * in its node hash with each sync ("D B C" for today since the gate last
 * started afresh, then ";D B C" for each day before, newest first), reads
 * everyone's back, and hands the sum of the others' of today to the engine
 * (wu_engine_gate_peers), whose gate judges them with its own.  A halt is
 * then shared like any other (cluster_view.c).
 */
#include "cluster_priv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#define COUNT_MAX 9007199254740992LL /* 2^53: what Lua keeps exactly */

void cluster_gate_text(const struct wu_engine *e, char *buf, size_t len)
{
	struct wu_gate_counts today;
	struct wu_gate_past past;
	size_t off;

	wu_engine_gate_own(e, &today, &past);
	off = (size_t)snprintf(buf, len, "%lld %lld %lld", (long long)today.delivered,
	                       (long long)today.bounces, (long long)today.complaints);
	for (int i = 0; i < past.n && off < len; i++)
		off += (size_t)snprintf(buf + off, len - off, ";%lld %lld %lld",
		                        (long long)past.day[i].delivered,
		                        (long long)past.day[i].bounces,
		                        (long long)past.day[i].complaints);
}

/* Three counts "D B C" at *p, each 0..2^53; moves *p past them. */
static int triple(const char **p, struct wu_gate_counts *k)
{
	long long v[3];

	for (int i = 0; i < 3; i++) {
		char *end;

		errno = 0;
		v[i] = strtoll(*p, &end, 10);
		if (end == *p || errno || v[i] < 0 || v[i] > COUNT_MAX || (i < 2 && *end != ' '))
			return -1;
		*p = end + (i < 2);
	}
	k->delivered = v[0];
	k->bounces = v[1];
	k->complaints = v[2];
	return 0;
}

static void add(struct wu_gate_counts *to, const struct wu_gate_counts *k)
{
	to->delivered += k->delivered;
	to->bounces += k->bounces;
	to->complaints += k->complaints;
}

int cluster_gate_add(const char *text, struct wu_gate_counts *today, struct wu_gate_past *past)
{
	struct wu_gate_counts t, d[WU_GATE_DAYS];
	const char *p = text;
	int n = 0;

	if (triple(&p, &t) < 0)
		return -1;
	while (*p == ';' && n < WU_GATE_DAYS) {
		p++;
		if (triple(&p, &d[n]) < 0)
			return -1;
		n++;
	}
	if (*p != '\0')
		return -1;
	add(today, &t);
	for (int i = 0; i < n; i++) {
		if (i >= past->n)
			past->day[past->n++] = (struct wu_gate_counts){0, 0, 0};
		add(&past->day[i], &d[i]);
	}
	return 0;
}
