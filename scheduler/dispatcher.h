/*
 * dispatcher.h -- moves queued units to the routes, as the engine decides.
 *
 * One libuv timer.  Each round asks the store which ISPs have units ready,
 * asks the engine where each unit goes, marks the routed units in flight and
 * counts them inside the turn's transaction, and groups the new route's units
 * by content into batches of up to the route's batch size.  The batches go
 * to libcurl only after the commit, so a send is always on disk before it is
 * on the wire.  Results come back as store state changes and engine
 * outcomes, again inside a turn's transaction.
 */
#ifndef WU_DISPATCHER_H
#define WU_DISPATCHER_H

#include "daemon.h"

int dispatcher_start(struct dispatcher **disp, struct wu_daemon *d);

/* Runs a round soon (new units arrived, a route was resumed, ...). */
void dispatcher_kick(struct dispatcher *disp);

/* Forgets cached waits (a day began, a route resumed, capacity came back). */
void dispatcher_forget_waits(struct dispatcher *disp);

/* Units handed to a route and not yet answered. */
int dispatcher_inflight(const struct dispatcher *disp);

/* The first step of a stop: nothing new is decided or handed to a route;
 * batches decided and not yet handed over go back to the queue (and their
 * units back to the cap).  Sends under way finish and are recorded. */
void dispatcher_drain(struct dispatcher *disp);

/* Stops routing; sends under way finish.  Frees disp once its timer is
 * closed. */
void dispatcher_stop(struct dispatcher *disp);

#endif
