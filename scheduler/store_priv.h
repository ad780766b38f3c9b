/*
 * store_priv.h -- what the files of the store share: the connection, its
 * cached statements and the helpers that run them.  Only scheduler/store*.c
 * include it (and, with it, sqlite3.h).
 *
 *	store.c           opening, migrations, transactions, contents and units
 *	store_sync.c      the deferred fdatasync of the WAL
 *	store_stats.c     counters, depths, per-hour sends, the engine's state
 *	store_suppress.c  suppressions and group unsubscribes
 *	store_events.c    the events log, webhook dedup, engagements
 *	store_replay.c    a read-only view of what a daemon recorded (simulate)
 */
#ifndef WU_STORE_PRIV_H
#define WU_STORE_PRIV_H

#include <stdint.h>

#include <sqlite3.h>

#include "scheduler/store.h"

/* The cached statements, prepared once by store_open(). */
enum stmt {
	S_BEGIN,
	S_COMMIT,
	S_ROLLBACK,
	S_SP_BEGIN,
	S_SP_RELEASE,
	S_SP_ROLLBACK,
	S_ADD_CONTENT,
	S_ADD_UNIT,
	S_RECOVER,
	S_READY,
	S_HAS_READY,
	S_COUNT_READY,
	S_EARLIEST,
	S_INFLIGHT,
	S_SENT,
	S_REQUEUE,
	S_FAILED,
	S_CONTENT,
	S_CONTENT_RAW,
	S_ADD_RAW_CONTENT,
	S_COUNT,
	S_COUNTERS,
	S_DEPTH_QUEUED,
	S_DEPTH_INFLIGHT,
	S_DEPTH_DONE,
	S_SENT_HOURS,
	S_DEPTH_ISP,
	S_ENGINE_SAVE,
	S_ENGINE_LOAD,
	S_ENGINE_DELETE,
	S_PRUNE_UNITS,
	S_PRUNE_CONTENT,
	S_PRUNE_EVENTS,
	S_UNIT_GET,
	S_SUPP_ADD,
	S_SUPP_REMOVE,
	S_SUPP_CHECK,
	S_SUPP_LIST,
	S_SUPP_LIST_REASON,
	S_SUPP_COUNT,
	S_SUPP_COUNT_REASON,
	S_EVENT_ADD,
	S_EVENTS_RECENT,
	S_WEBHOOK_SEEN,
	S_WEBHOOK_PRUNE,
	S_UNIT_BY_PROVIDER,
	S_GROUP_ADD,
	S_GROUP_CHECK,
	S_SET_V3ONLY,
	S_V3ONLY_WAITING,
	S_SET_ISP,
	S_ENGAGED_NOTE,
	S_ENGAGED_GET,
	S_ENGAGED_PRUNE,
	S_COUNT_STMTS
};

struct store {
	sqlite3 *db;
	sqlite3_stmt *stmt[S_COUNT_STMTS];
	char *path;
	int lockfd; /* PATH.lock, flock()ed for as long as the store is open */
	/* store_defer_sync(): commits leave the WAL's fsync to store_sync(),
	 * which only ever touches these two (and may run on another thread) */
	char *wal_path;
	int wal_fd;
	/* ...and checkpoints to store_checkpoint(), through a connection of
	 * its own (ckpt_err its failure); wal_frames is the WAL's length after
	 * the last commit, as SQLite's WAL hook tells it */
	sqlite3 *ckpt_db;
	int wal_frames;
	char ckpt_err[256];
	char err[512];
};

/* The schema version store_open() migrates to. */
int st_schema_latest(void);
/* Records a failure of the formatted `what` (with SQLite's message when rc
 * is an SQLite error) and returns -1. */
int st_fail(struct store *s, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Steps statement k once and resets it; 0 or -1. */
int st_run(struct store *s, enum stmt k, const char *what);
/* Steps statement k returning one integer into *v; 0 or -1. */
int st_run_int(struct store *s, enum stmt k, const char *what, int64_t *v);
/* Runs a PRAGMA or other one-off statement; 0 or -1. */
int st_exec(struct store *s, const char *sql);
/* Binds text (NULL as SQL NULL) to parameter i. */
int st_bind_text(sqlite3_stmt *st, int i, const char *text);
/* A savepoint around a multi-statement call, inside a caller's
 * transaction or not. */
int st_sp_begin(struct store *s, const char *what);
int st_sp_release(struct store *s, const char *what);
void st_sp_abort(struct store *s);

#endif
