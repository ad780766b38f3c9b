/*
 * repeat.h -- how often to say the same thing: one alert at once, then a
 * count.
 *
 * Alerts of one key (a kind, or a firing/resolved pair, with the ISP or
 * route it is about) are counted in a window: the first firing and the
 * first resolution of the window go out at once, so a pause and the resume
 * a minute later are both heard; the ones after them are held and counted.
 * When the window ends with held alerts, one summary goes out -- the latest
 * of them, so the key's state is right, with the count -- and a new window
 * starts in which everything is held, so a storm that goes on is one
 * message per window.  A key that stays quiet for a whole window starts
 * afresh.  Time comes in as an argument.
 */
#ifndef WU_REPEAT_H
#define WU_REPEAT_H

#include "wu.h"

/* Keys a table tracks at once; past that, alerts are not held. */
#define WU_REPEAT_SLOTS 64
#define WU_REPEAT_KEY   96

struct wu_repeat_slot {
	char key[WU_REPEAT_KEY]; /* "" = free */
	wu_time_t start;         /* the window began here */
	int64_t held;            /* alerts held since start */
	unsigned sent;           /* WU_REPEAT_* that went out at once in this window */
};

/* What an alert says of its key's state. */
#define WU_REPEAT_FIRING   1u
#define WU_REPEAT_RESOLVED 2u

struct wu_repeat {
	wu_time_t window; /* 0: nothing is held */
	struct wu_repeat_slot slot[WU_REPEAT_SLOTS];
};

void wu_repeat_init(struct wu_repeat *r, wu_time_t window);

/* An alert of key at now, firing or resolved (WU_REPEAT_*).  Returns -1
 * when it goes out now, or the slot (>= 0) in which it was held: the
 * caller keeps it as that slot's latest. */
int wu_repeat_hear(struct wu_repeat *r, const char *key, unsigned state, wu_time_t now);

/* A slot whose window has ended with held alerts: returns its index and
 * puts their count in *held, then starts the slot's next window at now;
 * -1 when none is due.  Slots quiet for a whole window are freed. */
int wu_repeat_due(struct wu_repeat *r, wu_time_t now, int64_t *held);

/* When wu_repeat_due next has something, WU_TIME_NEVER when nothing is
 * held. */
wu_time_t wu_repeat_next(const struct wu_repeat *r);

#endif
