/*
 * alert_body.h -- the JSON body of one alert, and what its kind is.
 */
#ifndef WU_ALERT_BODY_H
#define WU_ALERT_BODY_H

#include <cJSON.h>

#include "alert.h"
#include "core/repeat.h"

struct wu_daemon;

/* WU_REPEAT_FIRING or WU_REPEAT_RESOLVED: what an alert of kind says of
 * its key.  A kind not known (one from alert_notice) fires. */
unsigned alert_kind_state(const char *kind);

/* The whole body of m, count 1, from source (the node's name) on host;
 * event is the flat "event" field (NULL: the kind).  Takes m->details.
 * NULL when memory ran out. */
cJSON *alert_body(struct wu_daemon *d, const char *source, const char *host,
                  const struct alert_msg *m, const char *event);

/* Makes o, the latest of held alerts of one key, their summary over a
 * window: count, and "(and N more in the last 10 min)" on its text. */
void alert_body_summary(cJSON *o, int64_t held, wu_time_t window);

#endif
