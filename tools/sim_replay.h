/*
 * sim_replay.h -- `warmup simulate --from-store`: a daemon's store as the
 * simulator's traffic and outcome model.  Each arrival at the time, and for
 * the ISP group, the daemon recorded; each day's bounce, complaint and
 * deferral rates per ISP from the daemon's counters (scheduler/store_replay.h).
 */
#ifndef WU_SIM_REPLAY_H
#define WU_SIM_REPLAY_H

#include <stddef.h>
#include <stdint.h>

#include "scheduler/core/calendar.h"
#include "scheduler/core/isp.h"

struct sim_replay;

/* Reads the store at path (read-only): local days by cal, whose zone is
 * the process's; every ISP group of the store must be one of isps (the
 * daemon's configuration).  Returns 0, or -1 with one line in err naming
 * the file. */
int sim_replay_load(struct sim_replay **out, const char *path, const struct wu_calendar *cal,
                    const struct wu_isp_table *isps, char *err, size_t errlen);
void sim_replay_free(struct sim_replay *rp); /* accepts NULL */

/* The local date of the store's first arrival. */
int sim_replay_first_date(const struct sim_replay *rp);

/* The arrivals of each day from start to the store's last day: a malloc'd
 * array of *ndays counts.  NULL with *ndays 0 when start is after the last
 * day; NULL with *ndays -1 when memory ran out. */
int64_t *sim_replay_offered(const struct sim_replay *rp, int start, int *ndays);

/* The outcome model of one local date for ISP groups 0..nisp-1: the
 * probability of a bounce, of a complaint and of a deferral per new-route
 * send, scaled to 2^53 (as simulate's thresholds are). */
void sim_replay_rates(const struct sim_replay *rp, int date, int nisp, uint64_t *bounce,
                      uint64_t *complaint, uint64_t *deferral);

/* Calls fn with each arrival of one local date, in the order the daemon
 * accepted them. */
void sim_replay_arrivals(const struct sim_replay *rp, int date,
                         void (*fn)(void *arg, wu_time_t at, int isp), void *arg);

#endif
