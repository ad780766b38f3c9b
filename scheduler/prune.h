/*
 * prune.h -- keeps the store bounded: finished units, the bodies no unit
 * needs any more and old events go after [store] keep.
 */
#ifndef WU_PRUNE_H
#define WU_PRUNE_H

struct wu_daemon;
struct prune;

/* Starts the pruning timer (nothing when keep is 0).  Returns 0, or -1 when
 * memory ran out. */
int prune_start(struct prune **pp, struct wu_daemon *d);
/* Stops it; the memory goes in the close callback.  Accepts NULL. */
void prune_stop(struct prune *p);

#endif
