/*
 * reload.h -- warmupd taking a changed configuration file without a
 * restart (SIGHUP, or POST /v1/reload from `warmup reload`).
 *
 * The whole file is read again and judged as `warmupd --check` judges it
 * (every problem, file:line and key), then compared with the running one
 * for what only a restart can change (reload_fixed.h).  Only a file that
 * passes all of it is swapped in, as a whole, between two loop turns'
 * transactions: the schedule and calendar, the overflow policy, ISP groups
 * and throttles, backoff, the gate, deferral rules, [alert], [log] level,
 * [suppress] mode and the Event Webhook's limits.  Today's counters, the
 * cap used, the held days and pauses carry over (core/reconf.h).  A file
 * that fails keeps the running configuration; the reason goes to the log,
 * to the status ("reload") and to the push alerts (kind reload_refused).
 */
#ifndef WU_RELOAD_H
#define WU_RELOAD_H

#include <stddef.h>

struct wu_daemon;

/* What became of a reload: ok 1 when applied; message says what changed,
 * or why it was refused. */
typedef void (*reload_cb)(void *arg, int ok, const char *message);

/* Reloads once this loop turn's transaction is committed.  fn (may be
 * NULL) hears the outcome.  Returns 0, or -1 when the reload cannot be
 * set up (no memory, the store cannot begin a transaction, stopping). */
int reload_soon(struct wu_daemon *d, reload_cb fn, void *arg);

/* Reloads now; call it between transactions.  Returns 0 when applied, -1
 * when refused, with the message in msg either way. */
int reload_run(struct wu_daemon *d, char *msg, size_t len);

#endif
