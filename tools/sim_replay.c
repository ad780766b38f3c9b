/*
 * sim_replay.c -- a daemon's store turned into `warmup simulate`'s traffic
 * and outcome model.
 *
 * NAME
 *	sim_replay - replay what a daemon saw, under another schedule
 *
 * SYNOPSIS
 *	#include "sim_replay.h"
 *
 *	sim_replay_load(&rp, "queue.db", &conf.core.calendar, &conf.core.isps, err, n);
 *	offered = sim_replay_offered(rp, start, &ndays);
 *	sim_replay_rates(rp, date, nisp, bounce_thr, complaint_thr, deferral_thr);
 *	sim_replay_arrivals(rp, date, arrive_cb, sim);
 *
 * DESCRIPTION
 *	The store's reader (scheduler/store_replay.c) gives the arrivals and
 *	the rates per local day; this file lines them up with the simulated
 *	calendar and puts the rates in the form simulate's outcome model takes
 *	(probabilities out of 2^53).  The arrivals keep the daemon's own times
 *	and ISP groups: no profile, no mix, no random draw for either.
 *
 * DIAGNOSTICS
 *	sim_replay_load() fails with one line naming the file: what the reader
 *	said, or an ISP group the configuration does not have.
 */
#include "sim_replay.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scheduler/store_replay.h"

#define ONE53 ((double)(UINT64_C(1) << 53))

struct sim_replay {
	struct store_replay r;
};

int sim_replay_load(struct sim_replay **out, const char *path, const struct wu_calendar *cal,
                    const struct wu_isp_table *isps, char *err, size_t errlen)
{
	struct sim_replay *rp = calloc(1, sizeof *rp);

	*out = NULL;
	if (!rp) {
		snprintf(err, errlen, "%s: %s", path, strerror(ENOMEM));
		return -1;
	}
	if (store_replay_read(&rp->r, path, cal, err, errlen) < 0) {
		free(rp);
		return -1;
	}
	/* The store keeps group numbers, not names: they mean something only
	 * with the daemon's own [isp] table. */
	if (rp->r.nisp > isps->n) {
		snprintf(err, errlen,
		         "%s: the store has ISP groups 0..%d, the configuration %d (%s..%s): give "
		         "the daemon's configuration with --config",
		         path, rp->r.nisp - 1, isps->n, isps->names[0], isps->names[isps->n - 1]);
		sim_replay_free(rp);
		return -1;
	}
	*out = rp;
	return 0;
}

void sim_replay_free(struct sim_replay *rp)
{
	if (!rp)
		return;
	store_replay_free(&rp->r);
	free(rp);
}

int sim_replay_first_date(const struct sim_replay *rp)
{
	return rp->r.days[0].date;
}

/* The store's day of a local date, or NULL. */
static const struct store_replay_day *day_of(const struct sim_replay *rp, int date)
{
	int d = date - rp->r.days[0].date;

	return d >= 0 && d < rp->r.ndays ? &rp->r.days[d] : NULL;
}

int64_t *sim_replay_offered(const struct sim_replay *rp, int start, int *ndays)
{
	int last = rp->r.days[rp->r.ndays - 1].date;
	int64_t *v;

	*ndays = 0;
	if (start > last)
		return NULL;
	v = calloc((size_t)(last - start + 1), sizeof *v);
	if (!v) {
		*ndays = -1;
		return NULL;
	}
	*ndays = last - start + 1;
	for (int d = 0; d < *ndays; d++) {
		const struct store_replay_day *x = day_of(rp, start + d);
		v[d] = x ? (int64_t)x->n : 0;
	}
	return v;
}

/* A probability as a threshold out of 2^53. */
static uint64_t thr(double p)
{
	return (uint64_t)llround(p * ONE53);
}

void sim_replay_rates(const struct sim_replay *rp, int date, int nisp, uint64_t *bounce,
                      uint64_t *complaint, uint64_t *deferral)
{
	const struct store_replay_day *x = day_of(rp, date);

	for (int i = 0; i < nisp; i++) {
		bounce[i] = x ? thr(x->bounce[i]) : 0;
		complaint[i] = x ? thr(x->complaint[i]) : 0;
		deferral[i] = x ? thr(x->deferral[i]) : 0;
	}
}

void sim_replay_arrivals(const struct sim_replay *rp, int date,
                         void (*fn)(void *arg, wu_time_t at, int isp), void *arg)
{
	const struct store_replay_day *x = day_of(rp, date);

	for (size_t i = 0; x && i < x->n; i++)
		fn(arg, rp->r.arrivals[x->first + i].at, rp->r.arrivals[x->first + i].isp);
}
