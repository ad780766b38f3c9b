/*
 * mxcache.h -- what DNS said of recipient domains' mail exchangers.
 *
 * A bounded table: domain -> the ISP group of its MX, when that answer
 * stops being fresh, and whether a query for it is running.  Nothing here
 * asks DNS: the daemon's resolver (scheduler/mx.c) records its queries and
 * answers, and the simulator fills it from a map file.  Time is passed in.
 * When full, the entry put in longest ago makes room.
 */
#ifndef WU_MXCACHE_H
#define WU_MXCACHE_H

#include "isp.h"
#include "wu.h"

/* How long answers are kept: the record's TTL within [MIN, MAX]; a
 * domain with no MX (NXDOMAIN, or no MX records) for NEGATIVE; a failed
 * query (timeout, refused, SERVFAIL) for FAILED, so a dead server is not
 * asked again for every message.  A query not answered in QUERY_MAX
 * counts as lost. */
#define WU_MX_TTL_MIN   (60 * WU_USEC)
#define WU_MX_TTL_MAX   WU_DAY
#define WU_MX_NEGATIVE  (5 * WU_MINUTE)
#define WU_MX_FAILED    WU_MINUTE
#define WU_MX_QUERY_MAX (30 * WU_USEC)

/* wu_mxcache_get's answer, a set of bits. */
#define WU_MX_KNOWN 1 /* *isp is an answer (fresh or expired) */
#define WU_MX_ASK   2 /* nothing fresh and no query running: the caller should ask */

struct wu_mxcache;

/* A cache of at most max domains (at least 1).  Returns 0 or -1 (no memory). */
int wu_mxcache_create(struct wu_mxcache **cp, int max);
void wu_mxcache_free(struct wu_mxcache *c);

/* What is known of domain (any case, a trailing dot ignored) at now: a set
 * of WU_MX_ bits; *isp the answer's group (WU_ISP_OTHER when unknown), and
 * *asked when the running query started (0: none). */
int wu_mxcache_get(const struct wu_mxcache *c, const char *domain, wu_time_t now, int *isp,
                   wu_time_t *asked);

/* Records that a query for domain started at now.  Returns 0 or -1. */
int wu_mxcache_asked(struct wu_mxcache *c, const char *domain, wu_time_t now);

/* Records an answer: domain's group, fresh until expires; the query ends.
 * Returns 0 or -1 (no memory, or a name longer than 253). */
int wu_mxcache_put(struct wu_mxcache *c, const char *domain, int isp, wu_time_t expires);

/* Records a failed query (timeout, refused, SERVFAIL): an answer known
 * before is kept, else the domain is other; asked again after
 * WU_MX_FAILED.  Returns 0 or -1. */
int wu_mxcache_failed(struct wu_mxcache *c, const char *domain, wu_time_t now);

/* A record's TTL in seconds as an expiry time, clamped as above. */
wu_time_t wu_mxcache_expiry(wu_time_t now, int64_t ttl_seconds);

/* The group of a recipient domain (or address): by its name in t, else by
 * the cached MX answer (fresh or expired), else other.  *bits gets
 * wu_mxcache_get's bits (0 when the name decided) and *asked its query
 * start.  The name's verdict is remembered with the domain (a domain a
 * group claims by name takes a slot too).  The daemon and the simulator
 * both classify through this. */
int wu_mxcache_group(struct wu_mxcache *c, const struct wu_isp_table *t, const char *domain,
                     wu_time_t now, int *bits, wu_time_t *asked);

/* Domains held. */
int wu_mxcache_size(const struct wu_mxcache *c);

#endif
