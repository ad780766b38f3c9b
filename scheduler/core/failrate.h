/*
 * failrate.h -- permanent failures among a route's last sends.
 *
 * A route's answers to sends (accepted or refused for good, unit by unit)
 * fill a window of the last `window` sends.  The rate of permanent
 * failures in it fires an alert when it is above `rate` -- once the window
 * holds WU_FAILRATE_MIN sends, so one refusal on a quiet day is not a
 * rate -- and resolves when it is at or below half of `rate`.  Nothing of
 * this is saved: after a restart the window fills again.
 */
#ifndef WU_FAILRATE_H
#define WU_FAILRATE_H

#include "level.h"

#define WU_FAILRATE_WINDOW_MAX 10000
#define WU_FAILRATE_MIN        10

struct wu_failrate_conf {
	int window;  /* sends looked at; 0 = off */
	double rate; /* share of them refused for good that fires; 0 = off */
};

struct wu_failrate {
	unsigned char bit[WU_FAILRATE_WINDOW_MAX / 8]; /* 1 = a permanent failure */
	int n;                                         /* sends in the window, up to window */
	int pos;                                       /* where the next one goes */
	int fails;                                     /* of them, failures */
	struct wu_level level;
};

/* Defaults: the last 100 sends, above 10%. */
void wu_failrate_conf_default(struct wu_failrate_conf *c);

void wu_failrate_init(struct wu_failrate *f);

/* n answers, all accepted or all failed.  Returns whether the alert fires
 * or clears; *rate is the share now. */
enum wu_level_move wu_failrate_hear(struct wu_failrate *f, const struct wu_failrate_conf *c,
                                    int64_t n, int failed, double *rate);

#endif
