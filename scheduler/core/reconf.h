/*
 * reconf.h -- a running engine taking a new configuration: what may
 * change under it, how today carries over, and what changed, in words.
 *
 * The daemon's reload builds a new engine from the new configuration and
 * moves the old one's state into it through the same text a restart reads
 * (wu_engine_save / wu_engine_load): today's counters, the cap used, the
 * held days, pauses, the gate and the throttles' live factors survive,
 * and today's cap is recomputed from the new schedule.  A cap lowered
 * below what today already used leaves nothing more for the new route
 * today; it can never be exceeded.
 *
 * ISP groups are numbers in the saved state and in the daemon's store, so
 * a new configuration must keep every group at its number: groups may be
 * added after the last one, never removed, renamed or moved.
 */
#ifndef WU_RECONF_H
#define WU_RECONF_H

#include "engine.h"

/* 0 when the groups of old are the first ones of nw, in order; else -1
 * with a message naming the first group removed or moved. */
int wu_reconf_check_isps(const struct wu_isp_table *old, const struct wu_isp_table *nw, char *err,
                         size_t errlen);

/* A new engine from nc at now, holding the state of old (which is left
 * alone).  Events old has not handed out yet are not carried: poll them
 * first.  Returns 0 with *out, or -1 with a message (*out NULL). */
int wu_reconf_engine(const struct wu_engine *old, const struct wu_core_conf *nc, wu_time_t now,
                     struct wu_engine **out, char *err, size_t errlen);

/* What differs between a and b, section by section, as one line ("schedule
 * 10 days -> 12 days, throttles of google, gate"); "" when nothing does.
 * Returns the length the whole text needs, as snprintf. */
size_t wu_reconf_describe(const struct wu_core_conf *a, const struct wu_core_conf *b, char *buf,
                          size_t len);

#endif
