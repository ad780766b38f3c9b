/*
 * alert_watch.h -- what no event reports and a look must find: the
 * backlog, template mail waiting too long, the store's disk filling up.
 *
 * One timer (every [alert] backlog_check) measures and hands the figures to
 * the core (core/level.h), which says when an alert fires and when it is
 * resolved; the alerts go through alert_raise.
 */
#ifndef WU_ALERT_WATCH_H
#define WU_ALERT_WATCH_H

struct alert;
struct alert_watch;

/* Starts the timer when something is watched (*w is NULL otherwise).
 * Returns 0 or -1. */
int alert_watch_start(struct alert_watch **w, struct alert *a);

/* Stops it; the memory goes with the timer's close.  NULL is fine. */
void alert_watch_stop(struct alert_watch *w);

#endif
