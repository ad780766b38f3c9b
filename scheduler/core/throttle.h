/*
 * throttle.h -- one route's limit toward one ISP, and how it reacts when the
 * ISP pushes back.
 *
 * A rate with a burst, and on the new route an optional share of today's cap.
 * Backoff is additive-increase, multiplicative-decrease, like Postfix's qmgr
 * destination window: a tempfail cuts the rate (halve, with a floor), several
 * in a row suspend the pair for a while, and each success restores a small
 * step of the configured rate -- never all of it at once.  A deferral rule can
 * also cut the rate and hold it down for a fixed time.
 *
 * A pair with no rate of its own has a base instead (the engine gives the new
 * route's pairs today's pacing rate): while it backs off, it is held to its
 * factor of that base, and back at factor 1 it is unlimited again.
 */
#ifndef WU_THROTTLE_H
#define WU_THROTTLE_H

#include "bucket.h"

struct wu_throttle_conf {
	double rate;         /* messages per second; 0 = no limit */
	double burst;        /* messages; 0 = one second of rate, at least 1 */
	double share;        /* new route: fraction of today's cap, < 0 = none */
	int64_t share_count; /* new route: messages per day, < 0 = none */
};

struct wu_backoff_conf {
	double cut;          /* factor applied on a tempfail (0.5 = halve) */
	double floor;        /* lowest factor (1/32 of the configured rate) */
	double step;         /* factor regained per success */
	int suspend_after;   /* consecutive tempfails that suspend the pair; 0 = never */
	wu_time_t suspend;   /* how long a suspension lasts */
	wu_time_t retry_min; /* first retry delay of a unit */
	wu_time_t retry_max; /* longest retry delay of a unit */
};

struct wu_throttle {
	struct wu_bucket bucket;
	double factor;             /* 1 = the configured rate */
	int fails;                 /* consecutive tempfails */
	wu_time_t suspended_until; /* 0 = not suspended */
	wu_time_t hold_until;      /* successes do not restore before this */
	double base;               /* what the factor scales when no rate is configured */
};

void wu_throttle_conf_default(struct wu_throttle_conf *c);
void wu_backoff_conf_default(struct wu_backoff_conf *c);

void wu_throttle_init(struct wu_throttle *t, const struct wu_throttle_conf *c, wu_time_t now);

/* Sets the rate a factor scales when the configuration gives none (0: none). */
void wu_throttle_set_base(struct wu_throttle *t, const struct wu_throttle_conf *c, double base,
                          wu_time_t now);

/* Brings the bucket's rate in line with the factor (after a restore). */
void wu_throttle_apply(struct wu_throttle *t, const struct wu_throttle_conf *c, wu_time_t now);

/* 1 when a message may go at now (not suspended and a token is there). */
int wu_throttle_ready(struct wu_throttle *t, const struct wu_throttle_conf *c, wu_time_t now);
void wu_throttle_take(struct wu_throttle *t);
void wu_throttle_give(struct wu_throttle *t);

/* The earliest time wu_throttle_ready() can say 1. */
wu_time_t wu_throttle_next(const struct wu_throttle *t, wu_time_t now);

/* Feedback from the ISP. */
void wu_throttle_tempfail(struct wu_throttle *t, const struct wu_throttle_conf *c,
                          const struct wu_backoff_conf *b, wu_time_t now);
void wu_throttle_success(struct wu_throttle *t, const struct wu_throttle_conf *c,
                         const struct wu_backoff_conf *b, wu_time_t now);

/* Sets the factor to at most factor and keeps it there until now + hold. */
void wu_throttle_cut(struct wu_throttle *t, const struct wu_throttle_conf *c,
                     const struct wu_backoff_conf *b, double factor, wu_time_t hold, wu_time_t now);

/* The most messages the share allows today for a day's cap; WU_UNLIMITED
 * when no share is set. */
int64_t wu_throttle_share_limit(const struct wu_throttle_conf *c, int64_t cap);

/* Delay before retry number attempts (1 = first retry) of one unit:
 * exponential from retry_min, capped at retry_max, with jitter in [0,1)
 * spreading it over +-25%. */
wu_time_t wu_backoff_retry(const struct wu_backoff_conf *b, int attempts, double jitter);

#endif
