/*
 * daemon.h -- what the parts of warmupd share: the loop, the store, the
 * engine, the routes, and the group commit that ties them together.
 *
 * Everything runs on one libuv loop thread.  Work that changes the store
 * (accepted requests, routing decisions, send results) joins the transaction
 * of the current loop turn; a check handle commits it once at the end of the
 * turn, and a worker thread makes it durable -- one fdatasync for every turn
 * committed since the last one began -- and only then runs what had to wait
 * for durability: 202 answers to clients, and handing counted messages to
 * the network (the cap rule).
 */
#ifndef WU_DAEMON_H
#define WU_DAEMON_H

#include <uv.h>

#include "config.h"
#include "core/engine.h"
#include "sender/sender.h"
#include "status.h"
#include "store.h"

struct intake;
struct smtpd;
struct dispatcher;
struct alert;
struct prune;
struct mx;
struct cluster;

/* Runs after the turn's commit; ok is 0 when the commit failed and
 * everything of the turn was rolled back. */
typedef void (*daemon_after_cb)(void *arg, int ok);

struct daemon_after {
	daemon_after_cb fn;
	void *arg;
};

/* Hears every engine event (a new day, the gate, a pause or resume), in
 * the loop turn that raised it.  The parts that act on events register
 * themselves: the daemon knows none of them. */
typedef void (*daemon_event_cb)(void *arg, const struct wu_event *ev);

#define DAEMON_LISTENERS 8

struct daemon_listener {
	daemon_event_cb fn;
	void *arg;
};

struct wu_daemon {
	uv_loop_t *loop;
	struct wu_conf conf;
	struct store *store;
	struct wu_engine *engine;
	struct curluv *cu;
	struct snd_route *route[WU_ROUTE_COUNT];
	struct intake *intake;
	struct smtpd *smtpd;     /* NULL: no [smtp] section */
	struct dispatcher *disp;
	struct webhook *webhook; /* NULL: no [webhook] section */
	struct alert *alert; /* push alerts; NULL without [alert] webhook_url */
	struct prune *prune; /* the store's pruning timer; NULL with keep = 0 */
	struct mx *mx;       /* ISP groups by MX (scheduler/mx.c) */
	struct cluster *cluster; /* the shared ledger (cluster.c); NULL without [cluster] */
	struct status_extra extra;

	/* one clock: wall time read once per loop turn */
	uint64_t clock_turn;
	wu_time_t clock_now;
	uint64_t clock_mono; /* uv_hrtime() when clock_now was read, ns */

	/* group commit */
	uv_check_t commit;
	uv_idle_t commit_soon; /* active while a transaction is open: poll must not block */
	int in_txn;
	int txn_failed;
	struct daemon_after *after;
	int nafter, cap_after;

	/* durability: committed turns wait for one fdatasync on a worker
	 * thread; the turns committed while it runs share the next one */
	uv_work_t sync_work;
	uv_timer_t commit_later;      /* a commit held to [store] commit_every */
	int commit_held;
	uint64_t commit_every;        /* ms; 0 = no spacing */
	uint64_t last_commit;         /* uv_now() of the last commit */
	int sync_running;             /* a store_sync() is under way */
	int sync_errno;               /* its outcome */
	struct daemon_after *covered; /* callbacks of the turns it covers */
	int ncovered;
	struct daemon_after *waiting; /* of turns committed since it began */
	int nwaiting, cap_waiting;
	uv_work_t ckpt_work;          /* a WAL checkpoint on a worker thread */
	int ckpt_running, ckpt_failed;

	struct daemon_listener listeners[DAEMON_LISTENERS];
	int nlisteners;

	uv_signal_t sigterm, sigint, sighup;
	int stopping;
};

/* The wall clock of this loop turn, in microseconds. */
wu_time_t daemon_now(struct wu_daemon *d);

/* Joins the turn's transaction, opening it if needed. Returns 0 or -1. */
int daemon_txn(struct wu_daemon *d);

/* Marks the turn's transaction as failed: it will be rolled back. */
void daemon_txn_fail(struct wu_daemon *d, const char *what);

/* Runs fn(arg, ok) once the turn's commit is durable (ok = 1), or after
 * its rollback (ok = 0).  Callbacks of committed turns run in the order of
 * the turns, possibly a few turns later: the commit returns at once and
 * the fdatasync that makes it durable runs on a worker thread. */
int daemon_after_commit(struct wu_daemon *d, daemon_after_cb fn, void *arg);

/* Adds a listener of engine events.  Returns 0, or -1 when there are
 * DAEMON_LISTENERS already. */
int daemon_listen(struct wu_daemon *d, daemon_event_cb fn, void *arg);
/* Removes it (a part that stops). */
void daemon_unlisten(struct wu_daemon *d, daemon_event_cb fn, void *arg);

/* Hands the engine's pending events to the log and to every listener. */
void daemon_drain_events(struct wu_daemon *d);

/* Saves the engine and commits the turn's transaction; its after-commit
 * callbacks run when a sync has made it durable (at once after a
 * rollback).  Called by the loop's check handle. */
void daemon_commit(struct wu_daemon *d);

/* Commits, then syncs on the loop's thread and runs every callback still
 * waiting for durability: for a stop, which cannot wait for a later turn. */
void daemon_flush(struct wu_daemon *d);

/* Sets the store up for daemon_commit's pipelined syncs. Returns 0 or -1. */
int daemon_sync_init(struct wu_daemon *d);

#endif
