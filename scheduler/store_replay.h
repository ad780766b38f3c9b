/*
 * store_replay.h -- what a daemon's store recorded, read back for
 * `warmup simulate --from-store`: each unit's arrival (when it was
 * accepted, its ISP group) and the new route's outcomes per local day and
 * ISP, from the counters.
 *
 * The store is opened read-only (SQLITE_OPEN_READONLY) and without the
 * daemon's lock file, so it may be read while a daemon has it open: the
 * read is one snapshot of the WAL, and nothing in the file is changed.
 *
 * Outcome rates per day and ISP, new route only, in [0, 1]:
 *
 *	bounce    = bounces / max(accepted, delivered + bounces)
 *	complaint = complaints / max(delivered, accepted - bounces)
 *	deferral  = deferred / accepted (at most 1)
 *
 * "accepted" are the sends the provider took on that day, the others are
 * the Event Webhook's events counted on the day they came.  The larger
 * denominator keeps a rate right both when the webhook reports every
 * delivery and when it reports only the failures.  An ISP to which the
 * new route sent nothing on a day takes the day's rates over all ISPs; a
 * day without new-route sends takes the whole store's (0 when it has none).
 */
#ifndef WU_STORE_REPLAY_H
#define WU_STORE_REPLAY_H

#include <stddef.h>
#include <stdint.h>

#include "scheduler/core/calendar.h"
#include "scheduler/core/wu.h"

struct store_replay_arrival {
	int64_t at; /* when the daemon accepted the unit (microseconds) */
	int isp;    /* its ISP group: an index into the daemon's ISP table */
};

/* A day's new-route figures of one ISP, as the counters hold them. */
struct store_replay_counts {
	int64_t accepted, delivered, bounces, deferred, complaints;
};

struct store_replay_day {
	int date;                    /* local days since 1970-01-01 */
	size_t first, n;             /* its arrivals: arrivals[first..first+n) */
	int64_t offered[WU_ISP_MAX]; /* its arrivals per ISP */
	struct store_replay_counts counts[WU_ISP_MAX];
	double bounce[WU_ISP_MAX], complaint[WU_ISP_MAX], deferral[WU_ISP_MAX];
};

struct store_replay {
	int schema; /* the store's schema version */
	int nisp;   /* 1 + the highest ISP group a unit or counter has */
	int ndays;  /* days[]: consecutive dates, the first with an arrival */
	struct store_replay_day *days;
	size_t narrivals;
	struct store_replay_arrival *arrivals; /* in the order they were accepted */
};

/* Reads the store at path.  Arrivals are placed in local days by cal (its
 * zone must be the process's, scheduler/zone.h); the days run from the
 * first arrival's to the last day with an arrival or a counter.  Returns 0,
 * or -1 with one line in err naming the file: missing, not a warmup store,
 * a schema newer than this program's, no units (units pruned by [store]
 * keep are gone). */
int store_replay_read(struct store_replay *r, const char *path, const struct wu_calendar *cal,
                      char *err, size_t errlen);
/* Frees what store_replay_read() filled in; accepts a zeroed struct. */
void store_replay_free(struct store_replay *r);

#endif
