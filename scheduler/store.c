/*
 * store.c -- the durable queue on SQLite.
 *
 * NAME
 *	store - contents, units, counters and engine state in one SQLite file
 *
 * SYNOPSIS
 *	#include "scheduler/store.h"
 *
 *	store_open(&s, "/var/lib/warmup/queue.db", err, sizeof err);
 *	store_begin(s);
 *	store_add_content(s, msgid, body, len, now, &cid);
 *	store_add_unit(s, cid, json, jlen, isp, domain, now, &uid);   (per recipient)
 *	store_commit(s);                                              (one fsync)
 *	n = store_ready(s, isp, now, units, 1000);
 *	store_mark_inflight(s, units[i].id, route); ... store_mark_sent(...);
 *
 * DESCRIPTION
 *	The database runs in WAL mode with synchronous=FULL, so every commit is
 *	durable before it returns; callers batch many requests into one
 *	transaction to pay for one fsync.  The schema is created and migrated
 *	step by step with PRAGMA user_version (migrations[] below: append a
 *	step, never edit an old one).  Every statement is prepared once at open
 *	and reset after each use.
 *
 *	Partial indexes keep the hot queries proportional to what they return,
 *	not to the size of the queue: units_ready (QUEUED only) serves the
 *	dispatcher, units_inflight serves recovery, units_done serves pruning.
 *
 *	A store is one SQLite connection and is used from one thread.  One
 *	process at a time: store_open() takes an exclusive flock(2) on
 *	PATH.lock (holding the owner's pid) before it reads anything, so a
 *	second daemon on the same store is refused before its recovery could
 *	requeue the first one's units in flight.  The lock goes with the
 *	process, kill -9 included.  The database file is created mode 0600;
 *	SQLite gives its -wal and -shm files the database file's mode.
 *
 * DIAGNOSTICS
 *	Functions return -1 on failure and keep the reason, with SQLite's own
 *	message, in a sticky error string (store_errmsg()) that stays until the
 *	next failure.
 */
#include "scheduler/store.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

/* How long a writer waits for another connection's lock before giving up. */
#define STORE_BUSY_MS 5000

/*
 * Schema migrations: migrations[i] brings user_version i to i + 1.  Version
 * 2 is added as a new element; released steps are never edited.
 */
static const char *const migrations[] = {
    /* 1: contents, units, counters, engine */
    "CREATE TABLE contents ("
    " id INTEGER PRIMARY KEY,"
    " msgid TEXT,"
    " created_at INTEGER NOT NULL,"
    " body BLOB NOT NULL);"
    /* Small, hot columns first; the personalization JSON last, so that
     * reading state and times never has to walk past it. */
    "CREATE TABLE units ("
    " id INTEGER PRIMARY KEY,"
    " content_id INTEGER NOT NULL REFERENCES contents(id),"
    " state INTEGER NOT NULL,"
    " isp INTEGER NOT NULL,"
    " route INTEGER,"
    " attempts INTEGER NOT NULL DEFAULT 0,"
    " next_at INTEGER NOT NULL,"
    " created_at INTEGER NOT NULL,"
    " finished_at INTEGER,"
    " domain TEXT,"
    " provider_id TEXT,"
    " error TEXT,"
    " personalization TEXT NOT NULL);"
    /* The dispatcher's index: only QUEUED rows, in the order they go out
     * (the rowid, i.e. id, is implied after next_at).  state is a column
     * too, or SQLite (3.40) would not treat the partial index as covering
     * for counts and would read every table row. */
    "CREATE INDEX units_ready ON units(state, isp, next_at) WHERE state = 0;"
    /* Small: only what a crash could leave behind. */
    "CREATE INDEX units_inflight ON units(state) WHERE state = 1;"
    "CREATE INDEX units_done ON units(state, finished_at) WHERE state >= 2;"
    /* The foreign key and pruning look units up by content. */
    "CREATE INDEX units_content ON units(content_id);"
    "CREATE TABLE counters ("
    " date INTEGER NOT NULL,"
    " route INTEGER NOT NULL,"
    " isp INTEGER NOT NULL,"
    " result INTEGER NOT NULL,"
    " n INTEGER NOT NULL,"
    " PRIMARY KEY (date, route, isp, result)) WITHOUT ROWID;"
    "CREATE TABLE engine ("
    " id INTEGER PRIMARY KEY CHECK (id = 1),"
    " state TEXT NOT NULL);",
    /* 2: suppressions and events */
    /* The address is the key: the intake's check per recipient is one
     * probe of the primary key, and WITHOUT ROWID keeps it one b-tree. */
    "CREATE TABLE suppressions ("
    " address TEXT PRIMARY KEY,"
    " reason TEXT NOT NULL,"
    " created INTEGER NOT NULL,"
    " detail TEXT) WITHOUT ROWID;"
    "CREATE INDEX suppressions_reason ON suppressions(reason, address);"
    "CREATE TABLE events ("
    " id INTEGER PRIMARY KEY,"
    " at INTEGER NOT NULL,"
    " kind TEXT NOT NULL,"
    " route TEXT,"
    " text TEXT NOT NULL);",
    /* 3: webhook events */
    /* The sg_event_id of every Event Webhook event applied, so a batch
     * SendGrid posts again (it retries on anything but 2xx) counts once;
     * rows older than a few days are pruned by seen_at. */
    "CREATE TABLE webhook_seen ("
    " id TEXT PRIMARY KEY,"
    " seen_at INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE INDEX webhook_seen_at ON webhook_seen(seen_at);"
    /* Events name their message by the X-Message-Id the provider gave the
     * send: one probe per event instead of a scan of the units. */
    "CREATE INDEX units_provider ON units(provider_id) WHERE provider_id IS NOT NULL;",
    /* 4: mail taken over SMTP: the message as received, byte for byte, and
     * its envelope sender; body holds its v3 form for the API route. */
    "ALTER TABLE contents ADD COLUMN raw BLOB;"
    "ALTER TABLE contents ADD COLUMN mail_from TEXT;",
    /* 5: group unsubscribes (asm.group_id): an address is suppressed for
     * the groups it left, and only for them.  Apart from suppressions,
     * whose key is the address alone. */
    "CREATE TABLE group_suppressions ("
    " address TEXT NOT NULL,"
    " group_id INTEGER NOT NULL,"
    " created INTEGER NOT NULL,"
    " detail TEXT,"
    " PRIMARY KEY (address, group_id)) WITHOUT ROWID;",
    /* 6: units only the v3 API route can send (template_id: SendGrid
     * renders them); the partial index answers "how many wait, since
     * when" without a scan. */
    "ALTER TABLE units ADD COLUMN v3only INTEGER NOT NULL DEFAULT 0;"
    "CREATE INDEX units_v3only ON units(state, created_at) WHERE state = 0 AND v3only = 1;",
    /* 7: engaged recipients first.  The application's mark on a unit
     * (engaged_at: the last engagement it gave, -1 for "not engaged", 0 for
     * none) and the unit's first address; what open and click events
     * taught, one row per address (its last engagement), probed by the
     * primary key when the unit's turn comes. */
    "ALTER TABLE units ADD COLUMN engaged_at INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE units ADD COLUMN email TEXT;"
    "CREATE TABLE engagement ("
    " email TEXT PRIMARY KEY,"
    " at INTEGER NOT NULL) WITHOUT ROWID;",
    /* 8: engagements older than [warmup] engaged_age count for nothing and
     * are pruned, oldest first. */
    "CREATE INDEX engagement_at ON engagement(at);",
};

#define SCHEMA_VERSION ((int)(sizeof migrations / sizeof migrations[0]))

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

/* Every query states "state = 0" (or 1, or >= 2) as a literal so that SQLite
 * can pick the matching partial index. */
static const char *const stmt_sql[S_COUNT_STMTS] = {
    [S_BEGIN] = "BEGIN IMMEDIATE",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
    [S_SP_BEGIN] = "SAVEPOINT store",
    [S_SP_RELEASE] = "RELEASE store",
    [S_SP_ROLLBACK] = "ROLLBACK TO store",
    [S_ADD_CONTENT] = "INSERT INTO contents(msgid, created_at, body) VALUES (?1, ?2, ?3)",
    [S_ADD_UNIT] = "INSERT INTO units(content_id, state, isp, attempts, next_at, created_at,"
                   " domain, personalization, engaged_at, email)"
                   " VALUES (?1, 0, ?2, 0, ?3, ?3, ?4, ?5, ?6, ?7)",
    [S_RECOVER] = "UPDATE units SET state = 0 WHERE state = 1",
    [S_READY] = "SELECT u.id, u.content_id, u.isp, u.attempts, u.next_at, u.personalization,"
                " u.v3only, u.domain, u.engaged_at, coalesce(g.at, 0) FROM units u"
                " LEFT JOIN engagement g ON g.email = u.email"
                " WHERE u.state = 0 AND u.isp = ?1 AND u.next_at <= ?2"
                " ORDER BY u.next_at, u.id LIMIT ?3",
    [S_HAS_READY] = "SELECT EXISTS (SELECT 1 FROM units"
                    " WHERE state = 0 AND isp = ?1 AND next_at <= ?2)",
    [S_COUNT_READY] = "SELECT count(*) FROM units WHERE state = 0 AND isp = ?1 AND next_at <= ?2",
    [S_EARLIEST] = "SELECT next_at FROM units WHERE state = 0 AND isp = ?1 AND next_at > ?2"
                   " ORDER BY next_at LIMIT 1",
    [S_INFLIGHT] = "UPDATE units SET state = 1, route = ?2, attempts = attempts + 1"
                   " WHERE id = ?1 AND state = 0",
    [S_SENT] = "UPDATE units SET state = 2, provider_id = ?2, finished_at = ?3, error = NULL"
               " WHERE id = ?1 AND state <= 1",
    [S_REQUEUE] = "UPDATE units SET state = 0, next_at = ?2, error = ?3"
                  " WHERE id = ?1 AND state <= 1",
    [S_FAILED] = "UPDATE units SET state = 3, error = ?2, finished_at = ?3"
                 " WHERE id = ?1 AND state <= 1",
    [S_CONTENT] = "SELECT msgid, body FROM contents WHERE id = ?1",
    [S_CONTENT_RAW] = "SELECT raw, mail_from FROM contents WHERE id = ?1",
    [S_ADD_RAW_CONTENT] = "INSERT INTO contents(msgid, created_at, body, raw, mail_from)"
                          " VALUES (?1, ?2, ?3, ?4, ?5)",
    [S_COUNT] = "INSERT INTO counters(date, route, isp, result, n) VALUES (?1, ?2, ?3, ?4, ?5)"
                " ON CONFLICT (date, route, isp, result) DO UPDATE SET n = n + excluded.n",
    [S_COUNTERS] = "SELECT route, isp, result, n FROM counters WHERE date = ?1"
                   " ORDER BY route, isp, result",
    [S_DEPTH_QUEUED] = "SELECT count(*) FROM units WHERE state = 0",
    [S_DEPTH_INFLIGHT] = "SELECT count(*) FROM units WHERE state = 1",
    [S_DEPTH_DONE] = "SELECT count(*) FROM units WHERE state >= 2 AND state = ?1",
    /* "state >= 2" lets the partial index units_done answer: one range of
     * today's finished units, not a scan of the table. */
    [S_SENT_HOURS] = "SELECT route, (finished_at - ?1) / ?2, count(*) FROM units"
                     " WHERE state >= 2 AND state = 2 AND finished_at >= ?1 AND finished_at < ?3"
                     " GROUP BY 1, 2",
    [S_DEPTH_ISP] = "SELECT count(*) FROM units WHERE state = 0 AND isp = ?1",
    [S_ENGINE_SAVE] = "INSERT INTO engine(id, state) VALUES (1, ?1)"
                      " ON CONFLICT (id) DO UPDATE SET state = excluded.state",
    [S_ENGINE_LOAD] = "SELECT state FROM engine WHERE id = 1",
    [S_ENGINE_DELETE] = "DELETE FROM engine",
    [S_PRUNE_UNITS] = "DELETE FROM units WHERE id IN (SELECT id FROM units"
                      " WHERE state >= 2 AND finished_at < ?1 LIMIT ?2)"
                      " RETURNING content_id",
    [S_PRUNE_EVENTS] = "DELETE FROM events WHERE id IN (SELECT id FROM events"
                       " WHERE at < ?1 ORDER BY id LIMIT ?2)",
    [S_PRUNE_CONTENT] = "DELETE FROM contents WHERE id = ?1"
                        " AND NOT EXISTS (SELECT 1 FROM units WHERE content_id = ?1)",
    [S_UNIT_GET] = "SELECT id, content_id, isp, attempts, next_at, personalization,"
                   " state, provider_id, error FROM units WHERE id = ?1",
    [S_SUPP_ADD] = "INSERT INTO suppressions(address, reason, created, detail)"
                   " VALUES (?1, ?2, ?3, ?4) ON CONFLICT (address) DO NOTHING",
    [S_SUPP_REMOVE] = "DELETE FROM suppressions WHERE address = ?1",
    [S_SUPP_CHECK] = "SELECT reason FROM suppressions WHERE address = ?1",
    [S_SUPP_LIST] = "SELECT address, reason, created, detail FROM suppressions"
                    " WHERE address > ?1 ORDER BY address LIMIT ?2",
    [S_SUPP_LIST_REASON] = "SELECT address, reason, created, detail FROM suppressions"
                           " WHERE reason = ?3 AND address > ?1 ORDER BY address LIMIT ?2",
    [S_SUPP_COUNT] = "SELECT count(*) FROM suppressions",
    [S_SUPP_COUNT_REASON] = "SELECT count(*) FROM suppressions WHERE reason = ?1",
    [S_EVENT_ADD] = "INSERT INTO events(at, kind, route, text) VALUES (?1, ?2, ?3, ?4)",
    [S_EVENTS_RECENT] = "SELECT id, at, kind, route, text FROM events ORDER BY id DESC LIMIT ?1",
    [S_SET_V3ONLY] = "UPDATE units SET v3only = 1 WHERE id = ?1 AND state = 0",
    [S_V3ONLY_WAITING] = "SELECT count(*), coalesce(min(created_at), 0) FROM units"
                         " WHERE state = 0 AND v3only = 1",
    [S_GROUP_ADD] = "INSERT INTO group_suppressions(address, group_id, created, detail)"
                    " VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
    [S_GROUP_CHECK] = "SELECT 1 FROM group_suppressions WHERE address = ?1 AND group_id = ?2",
    [S_WEBHOOK_SEEN] = "INSERT INTO webhook_seen(id, seen_at) VALUES (?1, ?2)"
                       " ON CONFLICT (id) DO NOTHING",
    [S_WEBHOOK_PRUNE] = "DELETE FROM webhook_seen WHERE seen_at < ?1",
    /* The unit whose recipient domain is the event's first: a request of
     * many personalizations shares one X-Message-Id. */
    [S_UNIT_BY_PROVIDER] = "SELECT route, isp FROM units WHERE provider_id = ?1"
                           " ORDER BY domain = ?2 DESC, id LIMIT 1",
    [S_SET_ISP] = "UPDATE units SET isp = ?2 WHERE id = ?1 AND state = 0",
    [S_ENGAGED_NOTE] = "INSERT INTO engagement(email, at) VALUES (?1, ?2)"
                       " ON CONFLICT (email) DO UPDATE SET at = max(at, excluded.at)",
    [S_ENGAGED_GET] = "SELECT at FROM engagement WHERE email = ?1",
    [S_ENGAGED_PRUNE] = "DELETE FROM engagement WHERE email IN"
                        " (SELECT email FROM engagement WHERE at < ?1 ORDER BY at LIMIT ?2)",
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
	char err[512];
};

/* Records a failure of `what`, with SQLite's message when rc is an SQLite
 * error, and returns -1 so callers can `return fail(...)`. */
static int fail(struct store *s, int rc, const char *fmt, ...)
{
	char what[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	if (rc != SQLITE_OK && s->db)
		snprintf(s->err, sizeof s->err, "%s: %s (%s)", what, sqlite3_errmsg(s->db),
		         s->path);
	else
		snprintf(s->err, sizeof s->err, "%s", what);
	return -1;
}

/* Steps a statement that returns no rows and resets it. */
static int run(struct store *s, enum stmt k, const char *what)
{
	sqlite3_stmt *st = s->stmt[k];
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		return fail(s, rc, "%s", what);
	return 0;
}

/* Steps a statement returning one integer (count(*), EXISTS) into *v. */
static int run_int(struct store *s, enum stmt k, const char *what, int64_t *v)
{
	sqlite3_stmt *st = s->stmt[k];
	int rc = sqlite3_step(st);

	if (rc == SQLITE_ROW)
		*v = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc != SQLITE_ROW)
		return fail(s, rc, "%s", what);
	return 0;
}

/* Binds a string that may be NULL. */
static int bind_text(sqlite3_stmt *st, int i, const char *text)
{
	if (!text)
		return sqlite3_bind_null(st, i);
	return sqlite3_bind_text(st, i, text, -1, SQLITE_TRANSIENT);
}

/*
 * A savepoint lets a multi-statement function be atomic (or read one
 * snapshot) both on its own and inside the caller's store_begin(): it nests
 * instead of opening a second transaction.
 */
static int sp_begin(struct store *s, const char *what)
{
	return run(s, S_SP_BEGIN, what);
}

/* Ends the savepoint, keeping its work. */
static int sp_release(struct store *s, const char *what)
{
	return run(s, S_SP_RELEASE, what);
}

/* Ends the savepoint, undoing its work; the error string already says why. */
static void sp_abort(struct store *s)
{
	char keep[sizeof s->err];

	memcpy(keep, s->err, sizeof keep);
	/* Some errors (I/O, full disk) already rolled the whole transaction
	 * back; then there is no savepoint left to undo. */
	if (!sqlite3_get_autocommit(s->db)) {
		run(s, S_SP_ROLLBACK, "rollback to savepoint");
		run(s, S_SP_RELEASE, "release savepoint");
	}
	memcpy(s->err, keep, sizeof keep);
}

/* Runs a PRAGMA or other one-off statement at open time. */
static int exec(struct store *s, const char *sql)
{
	int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);

	if (rc != SQLITE_OK)
		return fail(s, rc, "store_open: %s", sql);
	return 0;
}

/* Reads PRAGMA user_version. */
static int schema_version(struct store *s, int *v)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL);

	if (rc != SQLITE_OK)
		return fail(s, rc, "store_open: reading user_version");
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW)
		return fail(s, rc, "store_open: reading user_version");
	return 0;
}

/* Brings the schema up to SCHEMA_VERSION, one committed step at a time. */
static int migrate(struct store *s)
{
	int v;

	if (schema_version(s, &v) < 0)
		return -1;
	while (v < SCHEMA_VERSION) {
		char sql[64];

		if (exec(s, "BEGIN IMMEDIATE") < 0)
			return -1;
		/* Another process may have migrated while we waited for the lock. */
		if (schema_version(s, &v) < 0)
			goto rollback;
		if (v >= SCHEMA_VERSION) {
			exec(s, "COMMIT");
			break;
		}
		if (v < 0) {
			fail(s, SQLITE_OK, "store_open: %s: bad schema version %d", s->path, v);
			goto rollback;
		}
		snprintf(sql, sizeof sql, "PRAGMA user_version = %d", v + 1);
		if (exec(s, migrations[v]) < 0 || exec(s, sql) < 0 || exec(s, "COMMIT") < 0)
			goto rollback;
		v++;
	}
	if (v > SCHEMA_VERSION)
		return fail(s, SQLITE_OK,
		            "store_open: %s: schema version %d is newer than this program's %d",
		            s->path, v, SCHEMA_VERSION);
	return 0;
rollback:
	if (!sqlite3_get_autocommit(s->db))
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	return -1;
}

/* Takes the store's lock file, or says which process has it. */
static int store_lock(struct store *s, const char *path)
{
	char lp[4096], owner[32] = "";
	ssize_t n;
	int fd;

	if ((size_t)snprintf(lp, sizeof lp, "%s.lock", path) >= sizeof lp)
		return fail(s, SQLITE_OK, "store_open: %s: path too long", path);
	fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return fail(s, SQLITE_OK, "store_open: %s: unable to open the lock file %s: %s",
		            path, lp, strerror(errno));
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int e = errno;

		n = pread(fd, owner, sizeof owner - 1, 0);
		owner[n > 0 ? n : 0] = '\0';
		owner[strcspn(owner, "\n")] = '\0';
		close(fd);
		if (e == EWOULDBLOCK)
			return fail(s, SQLITE_OK,
			            "store_open: %s is in use by another process (pid %s, lock %s); "
			            "two daemons on one store would send twice the cap",
			            path, owner[0] ? owner : "unknown", lp);
		return fail(s, SQLITE_OK, "store_open: %s: cannot lock %s: %s", path, lp,
		            strerror(e));
	}
	n = snprintf(owner, sizeof owner, "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) < 0 || pwrite(fd, owner, (size_t)n, 0) != n) {
		/* The lock holds without the pid; only the message is poorer. */
	}
	s->lockfd = fd;
	return 0;
}

/* Opens (creating and migrating as needed) the store at path. */
int store_open(struct store **sp, const char *path, char *err, size_t errlen)
{
	struct store *s;
	int rc, fd;

	*sp = NULL;
	s = calloc(1, sizeof *s);
	if (!s || !(s->path = strdup(path))) {
		free(s);
		if (err && errlen)
			snprintf(err, errlen, "store_open: %s: %s", path, strerror(ENOMEM));
		return -1;
	}
	s->lockfd = -1;
	s->wal_fd = -1;
	if (store_lock(s, path) < 0)
		goto fail;
	/* Queued mail is private: the file is created 0600 whatever the umask,
	 * and SQLite creates -wal and -shm with the database file's mode. */
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		fail(s, SQLITE_OK, "store_open: %s: unable to open database file: %s", path,
		     strerror(errno));
		goto fail;
	}
	close(fd);
	/* One thread uses a store: SQLite's own locking would only cost time. */
	rc = sqlite3_open_v2(
	    path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		fail(s, SQLITE_OK, "store_open: %s: %s", path,
		     s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
		goto fail;
	}
	sqlite3_extended_result_codes(s->db, 1);
	sqlite3_busy_timeout(s->db, STORE_BUSY_MS);
	/* A new store gives pages freed by pruning back to the file system
	 * (store_vacuum_step); on an existing one without it this does
	 * nothing, and freed pages are only reused. */
	if (exec(s, "PRAGMA auto_vacuum = INCREMENTAL") < 0)
		goto fail;
	/* journal_mode answers with the mode it got; anything but "wal" (e.g.
	 * a file system without shared memory) must not pass silently. */
	{
		sqlite3_stmt *st;
		bool wal = false;

		rc = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode = WAL", -1, &st, NULL);
		if (rc != SQLITE_OK) {
			fail(s, rc, "store_open: %s: journal_mode", path);
			goto fail;
		}
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW)
			wal = sqlite3_stricmp((const char *)sqlite3_column_text(st, 0), "wal") == 0;
		sqlite3_finalize(st);
		if (rc != SQLITE_ROW) {
			fail(s, rc, "store_open: %s: journal_mode", path);
			goto fail;
		}
		if (!wal) {
			fail(s, SQLITE_OK, "store_open: %s: cannot switch to WAL mode", path);
			goto fail;
		}
	}
	/* FULL: the WAL is fsynced on every commit, which is what makes a 202
	 * mean "on disk".  Never lower it; batch commits instead. */
	if (exec(s, "PRAGMA synchronous = FULL") < 0 || exec(s, "PRAGMA foreign_keys = ON") < 0 ||
	    exec(s, "PRAGMA temp_store = MEMORY") < 0 ||
	    /* Keeps the WAL file from staying huge after a burst. */
	    exec(s, "PRAGMA journal_size_limit = 67108864") < 0 ||
	    /* 16 MB keeps the ready index hot with a million queued units. */
	    exec(s, "PRAGMA cache_size = -16384") < 0)
		goto fail;
	if (migrate(s) < 0)
		goto fail;
	for (int k = 0; k < S_COUNT_STMTS; k++) {
		rc = sqlite3_prepare_v3(s->db, stmt_sql[k], -1, SQLITE_PREPARE_PERSISTENT,
		                        &s->stmt[k], NULL);
		if (rc != SQLITE_OK) {
			fail(s, rc, "store_open: preparing \"%s\"", stmt_sql[k]);
			goto fail;
		}
	}
	*sp = s;
	return 0;
fail:
	if (err && errlen)
		snprintf(err, errlen, "%s", s->err);
	store_close(s);
	return -1;
}

/* Finalizes the statements and closes the database; accepts NULL. */
void store_close(struct store *s)
{
	if (!s)
		return;
	for (int k = 0; k < S_COUNT_STMTS; k++)
		sqlite3_finalize(s->stmt[k]);
	/* close_v2 never fails with BUSY; a transaction left open is rolled
	 * back, which is what an unfinished transaction deserves. */
	sqlite3_close_v2(s->db);
	if (s->lockfd >= 0)
		close(s->lockfd); /* releases the lock; the file stays, on purpose */
	if (s->wal_fd >= 0)
		close(s->wal_fd);
	free(s->wal_path);
	free(s->path);
	free(s);
}

/* From here on a commit writes the WAL but does not wait for the disk
 * (synchronous = NORMAL, which still syncs around every checkpoint); the
 * caller makes its commits durable with store_sync() before it acts on
 * them.  Commits stay atomic and ordered: a crash before the sync loses
 * the transactions not yet synced, whole, and nothing else. */
int store_defer_sync(struct store *s)
{
	size_t n = strlen(s->path) + sizeof "-wal";

	if (s->wal_path == NULL) {
		if ((s->wal_path = malloc(n)) == NULL)
			return fail(s, SQLITE_OK, "store_defer_sync: out of memory");
		snprintf(s->wal_path, n, "%s-wal", s->path);
	}
	return exec(s, "PRAGMA synchronous = NORMAL");
}

/* fsync(2) of the directory holding path. */
static int sync_dir(const char *path)
{
	const char *slash = strrchr(path, '/');
	char dir[PATH_MAX];
	int fd, rc;

	if (slash == NULL)
		snprintf(dir, sizeof dir, ".");
	else if (slash == path)
		snprintf(dir, sizeof dir, "/");
	else
		snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

/* fdatasync of the WAL through *fdp, opened (again) when SQLite has made a
 * new one (its inode changed); without a WAL, of the database file. */
static int sync_wal(const struct store *s, int *fdp)
{
	struct stat a, b;

	if (*fdp >= 0 && (stat(s->wal_path, &a) < 0 || fstat(*fdp, &b) < 0 ||
	                  a.st_ino != b.st_ino || a.st_dev != b.st_dev)) {
		close(*fdp);
		*fdp = -1;
	}
	if (*fdp < 0) {
		if ((*fdp = open(s->wal_path, O_RDONLY | O_CLOEXEC)) < 0) {
			int fd, rc;

			/* No WAL (yet): whatever was committed is in the file. */
			if (errno != ENOENT || (fd = open(s->path, O_RDONLY | O_CLOEXEC)) < 0)
				return -1;
			rc = fdatasync(fd);
			close(fd);
			return rc;
		}
		/* A WAL first seen: its name in the directory must last too. */
		if (sync_dir(s->path) < 0)
			return -1;
	}
	return fdatasync(*fdp);
}

/* Every commit made so far reaches the disk: one fdatasync of the WAL, the
 * file all of them were appended to.  Touches no SQLite state, so it may
 * run on a worker thread while the store's own thread goes on committing
 * (one store_sync at a time).  Returns 0, or -1 with errno set. */
int store_sync(struct store *s)
{
	if (s->wal_path == NULL) {
		errno = EINVAL;
		return -1;
	}
	return sync_wal(s, &s->wal_fd);
}

/* The same through a file descriptor of its own: safe beside a
 * store_sync() running on another thread. */
int store_sync_now(struct store *s)
{
	int fd = -1, rc;

	if (s->wal_path == NULL) {
		errno = EINVAL;
		return -1;
	}
	rc = sync_wal(s, &fd);
	if (fd >= 0) {
		int e = errno;
		close(fd);
		errno = e;
	}
	return rc;
}

/* The last failure's message, for people. */
const char *store_errmsg(const struct store *s)
{
	if (!s)
		return "no store";
	return s->err[0] ? s->err : "no error";
}

/* Starts a write transaction, taking the write lock now rather than at the
 * first write (which could fail with BUSY halfway through a batch). */
int store_begin(struct store *s)
{
	return run(s, S_BEGIN, "store_begin");
}

/* Commits: one fsync of the WAL.  On failure the transaction may still be
 * open; call store_rollback(). */
int store_commit(struct store *s)
{
	return run(s, S_COMMIT, "store_commit");
}

/* Discards the open transaction; harmless when SQLite already rolled back. */
int store_rollback(struct store *s)
{
	if (sqlite3_get_autocommit(s->db))
		return 0;
	return run(s, S_ROLLBACK, "store_rollback");
}

/* Stores one request's shared body. */
int store_add_content(struct store *s, const char *msgid, const char *body, size_t len, int64_t now,
                      int64_t *content_id)
{
	sqlite3_stmt *st = s->stmt[S_ADD_CONTENT];

	if (len > INT32_MAX)
		return fail(s, SQLITE_OK, "store_add_content: body of %zu bytes is too large", len);
	bind_text(st, 1, msgid);
	sqlite3_bind_int64(st, 2, now);
	/* STATIC: the statement is reset before we return. */
	sqlite3_bind_blob(st, 3, body ? body : "", body ? (int)len : 0, SQLITE_STATIC);
	if (run(s, S_ADD_CONTENT, "store_add_content") < 0)
		return -1;
	if (content_id)
		*content_id = sqlite3_last_insert_rowid(s->db);
	return 0;
}

/* A content taken over SMTP: its v3 form, the raw message and the envelope
 * sender ("" for the null sender <>). */
int store_add_raw_content(struct store *s, const char *msgid, const char *body, size_t len,
                          const char *raw, size_t raw_len, const char *mail_from, int64_t now,
                          int64_t *content_id)
{
	sqlite3_stmt *st = s->stmt[S_ADD_RAW_CONTENT];

	if (len > INT32_MAX || raw_len > INT32_MAX)
		return fail(s, SQLITE_OK, "store_add_raw_content: message too large");
	bind_text(st, 1, msgid);
	sqlite3_bind_int64(st, 2, now);
	sqlite3_bind_blob(st, 3, body ? body : "", body ? (int)len : 0, SQLITE_STATIC);
	sqlite3_bind_blob(st, 4, raw ? raw : "", raw ? (int)raw_len : 0, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, mail_from ? mail_from : "", -1, SQLITE_STATIC);
	if (run(s, S_ADD_RAW_CONTENT, "store_add_raw_content") < 0)
		return -1;
	if (content_id)
		*content_id = sqlite3_last_insert_rowid(s->db);
	return 0;
}

/* The raw message of a content taken over SMTP: *raw (NUL-terminated, may
 * hold NULs before raw_len) and *mail_from malloc'd, or both NULL for a
 * content that came as JSON. */
int store_content_raw(struct store *s, int64_t content_id, char **raw, size_t *raw_len,
                      char **mail_from)
{
	sqlite3_stmt *st = s->stmt[S_CONTENT_RAW];
	int rc, n;

	*raw = *mail_from = NULL;
	*raw_len = 0;
	sqlite3_bind_int64(st, 1, content_id);
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		sqlite3_reset(st);
		if (rc == SQLITE_DONE)
			return fail(s, SQLITE_OK, "store_content_raw: content %lld not found",
			            (long long)content_id);
		return fail(s, rc, "store_content_raw");
	}
	if (sqlite3_column_type(st, 0) == SQLITE_NULL) {
		sqlite3_reset(st);
		return 0;
	}
	n = sqlite3_column_bytes(st, 0);
	*raw = malloc((size_t)n + 1);
	*mail_from = strdup(sqlite3_column_text(st, 1) ? (const char *)sqlite3_column_text(st, 1)
	                                                 : "");
	if (!*raw || !*mail_from) {
		free(*raw);
		free(*mail_from);
		*raw = *mail_from = NULL;
		sqlite3_reset(st);
		return fail(s, SQLITE_OK, "store_content_raw: %s", strerror(ENOMEM));
	}
	if (n)
		memcpy(*raw, sqlite3_column_blob(st, 0), (size_t)n);
	(*raw)[n] = '\0';
	*raw_len = (size_t)n;
	sqlite3_reset(st);
	return 0;
}

/* Queues one personalization of a content, ready now. */
int store_add_unit(struct store *s, int64_t content_id, const char *personalization, size_t len,
                   int isp, const char *domain, int64_t now, int64_t *unit_id)
{
	return store_add_unit_marked(s, content_id, personalization, len, isp, domain, 0, NULL, now,
	                             unit_id);
}

int store_add_unit_marked(struct store *s, int64_t content_id, const char *personalization,
                          size_t len, int isp, const char *domain, int64_t engaged_at,
                          const char *email, int64_t now, int64_t *unit_id)
{
	sqlite3_stmt *st = s->stmt[S_ADD_UNIT];

	if (len > INT32_MAX)
		return fail(s, SQLITE_OK,
		            "store_add_unit: personalization of %zu bytes is too large", len);
	sqlite3_bind_int64(st, 1, content_id);
	sqlite3_bind_int(st, 2, isp);
	sqlite3_bind_int64(st, 3, now);
	bind_text(st, 4, domain);
	sqlite3_bind_text(st, 5, personalization ? personalization : "",
	                  personalization ? (int)len : 0, SQLITE_STATIC);
	sqlite3_bind_int64(st, 6, engaged_at);
	if (email && *email)
		bind_text(st, 7, email);
	else
		sqlite3_bind_null(st, 7);
	if (run(s, S_ADD_UNIT, "store_add_unit") < 0)
		return -1;
	if (unit_id)
		*unit_id = sqlite3_last_insert_rowid(s->db);
	return 0;
}

/* Returns units a crash left INFLIGHT to the queue. */
int store_recover(struct store *s)
{
	if (run(s, S_RECOVER, "store_recover") < 0)
		return -1;
	return sqlite3_changes(s->db);
}

/* Copies the unit columns shared by S_READY and S_UNIT_GET (0..5). */
static int unit_read(struct store *s, sqlite3_stmt *st, struct store_unit *u, const char *what)
{
	const void *p = sqlite3_column_text(st, 5);
	int n = sqlite3_column_bytes(st, 5);

	u->id = sqlite3_column_int64(st, 0);
	u->content_id = sqlite3_column_int64(st, 1);
	u->isp = sqlite3_column_int(st, 2);
	u->attempts = sqlite3_column_int(st, 3);
	u->next_at = sqlite3_column_int64(st, 4);
	u->personalization = malloc((size_t)n + 1);
	if (!u->personalization)
		return fail(s, SQLITE_OK, "%s: %s", what, strerror(ENOMEM));
	if (n)
		memcpy(u->personalization, p, (size_t)n);
	u->personalization[n] = '\0';
	return 0;
}

/* Fetches the next batch of one ISP's due units, oldest due first. */
int store_ready(struct store *s, int isp, int64_t now, struct store_unit *out, int max)
{
	sqlite3_stmt *st = s->stmt[S_READY];
	int n = 0, rc;

	if (max <= 0)
		return 0;
	sqlite3_bind_int(st, 1, isp);
	sqlite3_bind_int64(st, 2, now);
	sqlite3_bind_int(st, 3, max);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *d = (const char *)sqlite3_column_text(st, 7);
		if (unit_read(s, st, &out[n], "store_ready") < 0)
			goto fail;
		out[n].v3only = sqlite3_column_int(st, 6);
		snprintf(out[n].domain, sizeof(out[n].domain), "%s", d ? d : "");
		out[n].engaged_at = sqlite3_column_int64(st, 8);
		out[n].learned_at = sqlite3_column_int64(st, 9);
		n++;
	}
	if (rc != SQLITE_DONE) {
		fail(s, rc, "store_ready");
		goto fail;
	}
	sqlite3_reset(st);
	return n;
fail:
	sqlite3_reset(st);
	while (n > 0)
		store_unit_clear(&out[--n]);
	return -1;
}

/* Frees what store_ready() or store_unit_get() put in a unit; accepts NULL. */
void store_unit_clear(struct store_unit *u)
{
	if (!u)
		return;
	free(u->personalization);
	u->personalization = NULL;
}

/* The dispatcher's overview: which ISPs have due work, and when the next
 * deferred unit becomes due.  One index probe per ISP unless exact. */
int store_ready_isps(struct store *s, int64_t now, int nisp, int64_t *ready, int exact,
                     int64_t *earliest)
{
	int64_t first = INT64_MAX;

	if (sp_begin(s, "store_ready_isps") < 0)
		return -1;
	for (int isp = 0; isp < nisp; isp++) {
		enum stmt k = exact ? S_COUNT_READY : S_HAS_READY;
		sqlite3_stmt *st;
		int rc;

		sqlite3_bind_int(s->stmt[k], 1, isp);
		sqlite3_bind_int64(s->stmt[k], 2, now);
		if (run_int(s, k, "store_ready_isps", &ready[isp]) < 0)
			goto fail;
		st = s->stmt[S_EARLIEST];
		sqlite3_bind_int(st, 1, isp);
		sqlite3_bind_int64(st, 2, now);
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW && sqlite3_column_int64(st, 0) < first)
			first = sqlite3_column_int64(st, 0);
		sqlite3_reset(st);
		if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
			fail(s, rc, "store_ready_isps");
			goto fail;
		}
	}
	if (sp_release(s, "store_ready_isps") < 0)
		goto fail;
	if (earliest)
		*earliest = first;
	return 0;
fail:
	sp_abort(s);
	return -1;
}

/* Runs one of the single-unit state changes; no row changed means the unit
 * is unknown or not in a state that allows the change. */
static int change(struct store *s, enum stmt k, int64_t unit_id, const char *what, const char *need)
{
	if (run(s, k, what) < 0)
		return -1;
	if (sqlite3_changes(s->db) != 1)
		return fail(s, SQLITE_OK, "%s: unit %lld not found or not %s", what,
		            (long long)unit_id, need);
	return 0;
}

/* Hands a QUEUED unit to a route; counts the attempt. */
int store_mark_inflight(struct store *s, int64_t unit_id, int route)
{
	sqlite3_stmt *st = s->stmt[S_INFLIGHT];

	sqlite3_bind_int64(st, 1, unit_id);
	sqlite3_bind_int(st, 2, route);
	return change(s, S_INFLIGHT, unit_id, "store_mark_inflight", "queued");
}

/* Moves a QUEUED unit to another ISP group (its MX answer came). */
int store_set_isp(struct store *s, int64_t unit_id, int isp)
{
	sqlite3_stmt *st = s->stmt[S_SET_ISP];

	sqlite3_bind_int64(st, 1, unit_id);
	sqlite3_bind_int(st, 2, isp);
	return change(s, S_SET_ISP, unit_id, "store_set_isp", "queued");
}

/* Records that a route accepted the unit. */
int store_mark_sent(struct store *s, int64_t unit_id, const char *provider_id, int64_t now)
{
	sqlite3_stmt *st = s->stmt[S_SENT];

	sqlite3_bind_int64(st, 1, unit_id);
	bind_text(st, 2, provider_id);
	sqlite3_bind_int64(st, 3, now);
	return change(s, S_SENT, unit_id, "store_mark_sent", "queued or in flight");
}

/* Puts the unit back in the queue, due at next_at. */
int store_requeue(struct store *s, int64_t unit_id, int64_t next_at, const char *error)
{
	sqlite3_stmt *st = s->stmt[S_REQUEUE];

	sqlite3_bind_int64(st, 1, unit_id);
	sqlite3_bind_int64(st, 2, next_at);
	bind_text(st, 3, error);
	return change(s, S_REQUEUE, unit_id, "store_requeue", "queued or in flight");
}

/* Records a permanent failure. */
int store_mark_failed(struct store *s, int64_t unit_id, const char *error, int64_t now)
{
	sqlite3_stmt *st = s->stmt[S_FAILED];

	sqlite3_bind_int64(st, 1, unit_id);
	bind_text(st, 2, error);
	sqlite3_bind_int64(st, 3, now);
	return change(s, S_FAILED, unit_id, "store_mark_failed", "queued or in flight");
}

/* Reads a content's body (malloc'd, NUL-terminated) and message id. */
int store_content(struct store *s, int64_t content_id, char **body, size_t *len, char *msgid,
                  size_t msgid_len)
{
	sqlite3_stmt *st = s->stmt[S_CONTENT];
	const char *id;
	int rc, n;

	*body = NULL;
	if (len)
		*len = 0;
	sqlite3_bind_int64(st, 1, content_id);
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		sqlite3_reset(st);
		if (rc == SQLITE_DONE)
			return fail(s, SQLITE_OK, "store_content: content %lld not found",
			            (long long)content_id);
		return fail(s, rc, "store_content");
	}
	id = (const char *)sqlite3_column_text(st, 0);
	if (msgid && msgid_len) {
		if (snprintf(msgid, msgid_len, "%s", id ? id : "") >= (int)msgid_len) {
			sqlite3_reset(st);
			/* A cut message id would silently name another message. */
			return fail(s, SQLITE_OK,
			            "store_content: content %lld: msgid buffer too small",
			            (long long)content_id);
		}
	}
	n = sqlite3_column_bytes(st, 1);
	*body = malloc((size_t)n + 1);
	if (!*body) {
		sqlite3_reset(st);
		return fail(s, SQLITE_OK, "store_content: %s", strerror(ENOMEM));
	}
	if (n)
		memcpy(*body, sqlite3_column_blob(st, 1), (size_t)n);
	(*body)[n] = '\0';
	if (len)
		*len = (size_t)n;
	sqlite3_reset(st);
	return 0;
}

/* Adds n to one counter, creating it at n. */
int store_count(struct store *s, int date, int route, int isp, int result, int64_t n)
{
	sqlite3_stmt *st = s->stmt[S_COUNT];

	sqlite3_bind_int(st, 1, date);
	sqlite3_bind_int(st, 2, route);
	sqlite3_bind_int(st, 3, isp);
	sqlite3_bind_int(st, 4, result);
	sqlite3_bind_int64(st, 5, n);
	return run(s, S_COUNT, "store_count");
}

struct counter_row {
	int route, isp, result;
	int64_t n;
};

/* Reports one date's counters.  The rows are read first and fn is called
 * after the statement is reset, so fn may use the store. */
int store_counters(struct store *s, int date,
                   void (*fn)(void *arg, int route, int isp, int result, int64_t n), void *arg)
{
	sqlite3_stmt *st = s->stmt[S_COUNTERS];
	struct counter_row *rows = NULL;
	size_t nrows = 0, cap = 0;
	int rc;

	sqlite3_bind_int(st, 1, date);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (nrows == cap) {
			size_t ncap = cap ? 2 * cap : 64;
			struct counter_row *r = realloc(rows, ncap * sizeof *r);

			if (!r) {
				sqlite3_reset(st);
				free(rows);
				return fail(s, SQLITE_OK, "store_counters: %s", strerror(ENOMEM));
			}
			rows = r;
			cap = ncap;
		}
		rows[nrows++] =
		    (struct counter_row){sqlite3_column_int(st, 0), sqlite3_column_int(st, 1),
		                         sqlite3_column_int(st, 2), sqlite3_column_int64(st, 3)};
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		free(rows);
		return fail(s, rc, "store_counters");
	}
	for (size_t i = 0; i < nrows; i++)
		fn(arg, rows[i].route, rows[i].isp, rows[i].result, rows[i].n);
	free(rows);
	return 0;
}

/* Counts units by state, in one snapshot. */
int store_depth(struct store *s, int64_t depth[4])
{
	if (sp_begin(s, "store_depth") < 0)
		return -1;
	if (run_int(s, S_DEPTH_QUEUED, "store_depth", &depth[STORE_QUEUED]) < 0 ||
	    run_int(s, S_DEPTH_INFLIGHT, "store_depth", &depth[STORE_INFLIGHT]) < 0)
		goto fail;
	for (int state = STORE_SENT; state <= STORE_FAILED; state++) {
		sqlite3_bind_int(s->stmt[S_DEPTH_DONE], 1, state);
		if (run_int(s, S_DEPTH_DONE, "store_depth", &depth[state]) < 0)
			goto fail;
	}
	if (sp_release(s, "store_depth") < 0)
		goto fail;
	return 0;
fail:
	sp_abort(s);
	return -1;
}

/* Sent units per route and hour of [from, to): finished_at, bucketed. */
int store_sent_hours(struct store *s, int64_t from, int64_t to, int64_t hour, int nroutes,
                     int nhours, int64_t *counts)
{
	sqlite3_stmt *st = s->stmt[S_SENT_HOURS];
	int rc;

	memset(counts, 0, (size_t)nroutes * (size_t)nhours * sizeof(*counts));
	sqlite3_bind_int64(st, 1, from);
	sqlite3_bind_int64(st, 2, hour);
	sqlite3_bind_int64(st, 3, to);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int r = sqlite3_column_type(st, 0) == SQLITE_NULL ? -1 : sqlite3_column_int(st, 0);
		int64_t h = sqlite3_column_int64(st, 1);

		if (r < 0 || r >= nroutes || h < 0)
			continue;
		counts[r * nhours + (h < nhours ? h : nhours - 1)] += sqlite3_column_int64(st, 2);
	}
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : fail(s, rc, "store_sent_hours");
}

/* Counts QUEUED units per ISP, in one snapshot. */
int store_depth_isps(struct store *s, int nisp, int64_t *depth)
{
	if (sp_begin(s, "store_depth_isps") < 0)
		return -1;
	for (int isp = 0; isp < nisp; isp++) {
		sqlite3_bind_int(s->stmt[S_DEPTH_ISP], 1, isp);
		if (run_int(s, S_DEPTH_ISP, "store_depth_isps", &depth[isp]) < 0)
			goto fail;
	}
	if (sp_release(s, "store_depth_isps") < 0)
		goto fail;
	return 0;
fail:
	sp_abort(s);
	return -1;
}

/* Replaces the engine's saved state; NULL forgets it. */
int store_engine_save(struct store *s, const char *text)
{
	if (!text)
		return run(s, S_ENGINE_DELETE, "store_engine_save");
	sqlite3_bind_text(s->stmt[S_ENGINE_SAVE], 1, text, -1, SQLITE_STATIC);
	return run(s, S_ENGINE_SAVE, "store_engine_save");
}

/* Reads the engine's saved state; *text is NULL when none was saved. */
int store_engine_load(struct store *s, char **text)
{
	sqlite3_stmt *st = s->stmt[S_ENGINE_LOAD];
	int rc = sqlite3_step(st);

	*text = NULL;
	if (rc == SQLITE_ROW) {
		const char *t = (const char *)sqlite3_column_text(st, 0);

		*text = strdup(t ? t : "");
		sqlite3_reset(st);
		if (!*text)
			return fail(s, SQLITE_OK, "store_engine_load: %s", strerror(ENOMEM));
		return 0;
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return fail(s, rc, "store_engine_load");
	return 0;
}

/* qsort order for content ids. */
static int cmp_id(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/*
 * Removes finished units and then the contents they leave unreferenced.
 * Only the contents of removed units are checked, so the cost follows what
 * is pruned rather than the size of the store.
 */
int store_prune(struct store *s, int64_t before)
{
	return store_prune_some(s, before, -1);
}

/* Removes old events, at most limit. */
int store_events_prune(struct store *s, int64_t before, int limit)
{
	sqlite3_bind_int64(s->stmt[S_PRUNE_EVENTS], 1, before);
	sqlite3_bind_int(s->stmt[S_PRUNE_EVENTS], 2, limit);
	if (run(s, S_PRUNE_EVENTS, "store_events_prune") < 0)
		return -1;
	return sqlite3_changes(s->db);
}

/* Gives up to pages free pages back to the file system. */
int store_vacuum_step(struct store *s, int pages)
{
	char sql[64];

	/* A pragma takes no bound parameter. */
	snprintf(sql, sizeof(sql), "PRAGMA incremental_vacuum(%d)", pages > 0 ? pages : 1);
	return exec(s, sql);
}

/* Removes up to limit finished units, and the contents they leave unused. */
int store_prune_some(struct store *s, int64_t before, int limit)
{
	sqlite3_stmt *st = s->stmt[S_PRUNE_UNITS];
	int64_t *ids = NULL;
	size_t n = 0, cap = 0;
	int rc;

	if (sp_begin(s, "store_prune") < 0)
		return -1;
	sqlite3_bind_int64(st, 1, before);
	sqlite3_bind_int(st, 2, limit);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == cap) {
			size_t ncap = cap ? 2 * cap : 256;
			int64_t *p = realloc(ids, ncap * sizeof *p);

			if (!p) {
				sqlite3_reset(st);
				fail(s, SQLITE_OK, "store_prune: %s", strerror(ENOMEM));
				goto fail;
			}
			ids = p;
			cap = ncap;
		}
		ids[n++] = sqlite3_column_int64(st, 0);
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		fail(s, rc, "store_prune");
		goto fail;
	}
	if (n > 1)
		qsort(ids, n, sizeof *ids, cmp_id);
	for (size_t i = 0; i < n; i++) {
		if (i > 0 && ids[i] == ids[i - 1])
			continue;
		sqlite3_bind_int64(s->stmt[S_PRUNE_CONTENT], 1, ids[i]);
		if (run(s, S_PRUNE_CONTENT, "store_prune: contents") < 0)
			goto fail;
	}
	if (sp_release(s, "store_prune") < 0)
		goto fail;
	free(ids);
	return (int)(n > INT32_MAX ? INT32_MAX : n);
fail:
	free(ids);
	sp_abort(s);
	return -1;
}

/* Reads one unit whatever its state, for status lookups and tests. */
int store_unit_get(struct store *s, int64_t unit_id, struct store_unit *out, int *state,
                   char **provider_id, char **error)
{
	sqlite3_stmt *st = s->stmt[S_UNIT_GET];
	char *pid = NULL, *e = NULL;
	int rc;

	sqlite3_bind_int64(st, 1, unit_id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		sqlite3_reset(st);
		return 0;
	}
	if (rc != SQLITE_ROW) {
		sqlite3_reset(st);
		return fail(s, rc, "store_unit_get");
	}
	if (sqlite3_column_type(st, 7) != SQLITE_NULL && provider_id)
		pid = strdup((const char *)sqlite3_column_text(st, 7));
	if (sqlite3_column_type(st, 8) != SQLITE_NULL && error)
		e = strdup((const char *)sqlite3_column_text(st, 8));
	if ((provider_id && sqlite3_column_type(st, 7) != SQLITE_NULL && !pid) ||
	    (error && sqlite3_column_type(st, 8) != SQLITE_NULL && !e)) {
		free(pid);
		free(e);
		sqlite3_reset(st);
		return fail(s, SQLITE_OK, "store_unit_get: %s", strerror(ENOMEM));
	}
	if (out && unit_read(s, st, out, "store_unit_get") < 0) {
		free(pid);
		free(e);
		sqlite3_reset(st);
		return -1;
	}
	if (state)
		*state = sqlite3_column_int(st, 6);
	if (provider_id)
		*provider_id = pid;
	if (error)
		*error = e;
	sqlite3_reset(st);
	return 1;
}

/* ---- suppressions ------------------------------------------------------- */

/* Longest address kept: RFC 5321's path limit. */
#define ADDRESS_MAX 254

/* Lower-cases an address into out (ASCII only: the domain is
 * case-insensitive, and mailbox providers treat local parts so too). */
static int address_key(struct store *s, const char *email, char *out, const char *what)
{
	size_t n = email ? strlen(email) : 0;

	if (n == 0 || n > ADDRESS_MAX)
		return fail(s, SQLITE_OK, "%s: address %s", what, n ? "too long" : "empty");
	for (size_t i = 0; i <= n; i++) {
		char c = email[i];
		out[i] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
	}
	return 0;
}

/* Adds one address; keeps the first reason of one already there. */
int store_suppress_add(struct store *s, const char *email, const char *reason, const char *detail,
                       int64_t now)
{
	sqlite3_stmt *st = s->stmt[S_SUPP_ADD];
	char key[ADDRESS_MAX + 1];

	if (address_key(s, email, key, "store_suppress_add") < 0)
		return -1;
	bind_text(st, 1, key);
	bind_text(st, 2, reason ? reason : "manual");
	sqlite3_bind_int64(st, 3, now);
	bind_text(st, 4, detail);
	if (run(s, S_SUPP_ADD, "store_suppress_add") < 0)
		return -1;
	return sqlite3_changes(s->db) > 0;
}

/* Adds many addresses in one savepoint: all or none. */
int store_suppress_add_bulk(struct store *s, const char *const *emails, int n, const char *reason,
                            const char *detail, int64_t now)
{
	int added = 0, rc;

	if (sp_begin(s, "store_suppress_add_bulk") < 0)
		return -1;
	for (int i = 0; i < n; i++) {
		if ((rc = store_suppress_add(s, emails[i], reason, detail, now)) < 0)
			goto fail;
		added += rc;
	}
	if (sp_release(s, "store_suppress_add_bulk") < 0)
		goto fail;
	return added;
fail:
	sp_abort(s);
	return -1;
}

/* Removes one address. */
int store_suppress_remove(struct store *s, const char *email)
{
	char key[ADDRESS_MAX + 1];

	if (address_key(s, email, key, "store_suppress_remove") < 0)
		return -1;
	bind_text(s->stmt[S_SUPP_REMOVE], 1, key);
	if (run(s, S_SUPP_REMOVE, "store_suppress_remove") < 0)
		return -1;
	return sqlite3_changes(s->db) > 0;
}

/* One primary-key probe: is this address suppressed, and why. */
int store_suppress_check(struct store *s, const char *email, char *reason, size_t reason_len)
{
	sqlite3_stmt *st = s->stmt[S_SUPP_CHECK];
	char key[ADDRESS_MAX + 1];
	int rc;

	/* Too long to have been stored: not suppressed, and not an error. */
	if (email && strlen(email) > ADDRESS_MAX)
		return 0;
	if (address_key(s, email, key, "store_suppress_check") < 0)
		return -1;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && reason && reason_len) {
		const char *r = (const char *)sqlite3_column_text(st, 0);
		snprintf(reason, reason_len, "%s", r ? r : "");
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc == SQLITE_ROW)
		return 1;
	if (rc != SQLITE_DONE)
		return fail(s, rc, "store_suppress_check");
	return 0;
}

/* Marks a fresh unit as one only the v3 API route may send. */
int store_set_v3only(struct store *s, int64_t unit_id)
{
	sqlite3_stmt *st = s->stmt[S_SET_V3ONLY];

	sqlite3_bind_int64(st, 1, unit_id);
	return change(s, S_SET_V3ONLY, unit_id, "store_set_v3only", "queued");
}

/* Counts the queued v3-only units and finds the oldest one's creation. */
int store_v3only_waiting(struct store *s, int64_t *n, int64_t *oldest)
{
	sqlite3_stmt *st = s->stmt[S_V3ONLY_WAITING];
	int rc = sqlite3_step(st);

	if (rc == SQLITE_ROW) {
		*n = sqlite3_column_int64(st, 0);
		*oldest = sqlite3_column_int64(st, 1);
	}
	sqlite3_reset(st);
	if (rc != SQLITE_ROW)
		return fail(s, rc, "store_v3only_waiting");
	return 0;
}

/* Adds (address, group). */
int store_suppress_group_add(struct store *s, const char *email, int64_t group,
                             const char *detail, int64_t now)
{
	sqlite3_stmt *st = s->stmt[S_GROUP_ADD];
	char key[ADDRESS_MAX + 1];

	if (address_key(s, email, key, "store_suppress_group_add") < 0)
		return -1;
	bind_text(st, 1, key);
	sqlite3_bind_int64(st, 2, group);
	sqlite3_bind_int64(st, 3, now);
	bind_text(st, 4, detail);
	if (run(s, S_GROUP_ADD, "store_suppress_group_add") < 0)
		return -1;
	return sqlite3_changes(s->db) > 0;
}

/* One probe of (address, group). */
int store_suppress_group_check(struct store *s, const char *email, int64_t group)
{
	sqlite3_stmt *st = s->stmt[S_GROUP_CHECK];
	char key[ADDRESS_MAX + 1];
	int rc;

	if (email && strlen(email) > ADDRESS_MAX)
		return 0;
	if (address_key(s, email, key, "store_suppress_group_check") < 0)
		return -1;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, group);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc == SQLITE_ROW)
		return 1;
	if (rc != SQLITE_DONE)
		return fail(s, rc, "store_suppress_group_check");
	return 0;
}

/* Lists a page of entries in address order. */
int store_suppress_list(struct store *s, const char *reason, const char *after, int limit,
                        void (*fn)(void *arg, const struct store_suppression *e), void *arg)
{
	enum stmt k = reason ? S_SUPP_LIST_REASON : S_SUPP_LIST;
	sqlite3_stmt *st = s->stmt[k];
	int n = 0, rc;

	bind_text(st, 1, after ? after : "");
	sqlite3_bind_int(st, 2, limit);
	if (reason)
		bind_text(st, 3, reason);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_suppression e = {
		    .email = (const char *)sqlite3_column_text(st, 0),
		    .reason = (const char *)sqlite3_column_text(st, 1),
		    .created = sqlite3_column_int64(st, 2),
		    .detail = (const char *)sqlite3_column_text(st, 3),
		};
		fn(arg, &e);
		n++;
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc != SQLITE_DONE)
		return fail(s, rc, "store_suppress_list");
	return n;
}

/* Counts entries, of one reason or all. */
int store_suppress_count(struct store *s, const char *reason, int64_t *n)
{
	if (!reason)
		return run_int(s, S_SUPP_COUNT, "store_suppress_count", n);
	bind_text(s->stmt[S_SUPP_COUNT_REASON], 1, reason);
	return run_int(s, S_SUPP_COUNT_REASON, "store_suppress_count", n);
}

/* ---- events ------------------------------------------------------------- */

/* Appends one event. */
int store_event_add(struct store *s, int64_t at, const char *kind, const char *route,
                    const char *text)
{
	sqlite3_stmt *st = s->stmt[S_EVENT_ADD];

	sqlite3_bind_int64(st, 1, at);
	bind_text(st, 2, kind ? kind : "");
	bind_text(st, 3, route);
	bind_text(st, 4, text ? text : "");
	return run(s, S_EVENT_ADD, "store_event_add");
}

/* Reports the last n events, newest first. */
int store_events_recent(struct store *s, int n, void (*fn)(void *arg, const struct store_event *e),
                        void *arg)
{
	sqlite3_stmt *st = s->stmt[S_EVENTS_RECENT];
	int count = 0, rc;

	sqlite3_bind_int(st, 1, n);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_event e = {
		    .id = sqlite3_column_int64(st, 0),
		    .at = sqlite3_column_int64(st, 1),
		    .kind = (const char *)sqlite3_column_text(st, 2),
		    .route = (const char *)sqlite3_column_text(st, 3),
		    .text = (const char *)sqlite3_column_text(st, 4),
		};
		fn(arg, &e);
		count++;
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc != SQLITE_DONE)
		return fail(s, rc, "store_events_recent");
	return count;
}

/* Records an Event Webhook event id; 1 when new, 0 when already seen. */
int store_webhook_seen(struct store *s, const char *event_id, int64_t now)
{
	sqlite3_stmt *st = s->stmt[S_WEBHOOK_SEEN];

	bind_text(st, 1, event_id);
	sqlite3_bind_int64(st, 2, now);
	if (run(s, S_WEBHOOK_SEEN, "store_webhook_seen") < 0)
		return -1;
	return sqlite3_changes(s->db) == 1;
}

/* Forgets event ids recorded before `before`; returns how many. */
int store_webhook_prune(struct store *s, int64_t before)
{
	sqlite3_bind_int64(s->stmt[S_WEBHOOK_PRUNE], 1, before);
	if (run(s, S_WEBHOOK_PRUNE, "store_webhook_prune") < 0)
		return -1;
	return sqlite3_changes(s->db);
}

/* Finds the route and ISP of a sent unit by its provider message id. */
int store_unit_by_provider(struct store *s, const char *provider_id, const char *domain, int *route,
                           int *isp)
{
	sqlite3_stmt *st = s->stmt[S_UNIT_BY_PROVIDER];
	int rc;

	bind_text(st, 1, provider_id);
	bind_text(st, 2, domain ? domain : "");
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*route = sqlite3_column_type(st, 0) == SQLITE_NULL ? -1 : sqlite3_column_int(st, 0);
		*isp = sqlite3_column_int(st, 1);
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	return fail(s, rc, "store_unit_by_provider");
}

/* Engagement the provider reported (an open or a click): the address's
 * last engagement moves up to at, never back. */
int store_engaged_note(struct store *s, const char *email, int64_t at)
{
	sqlite3_stmt *st = s->stmt[S_ENGAGED_NOTE];

	bind_text(st, 1, email);
	sqlite3_bind_int64(st, 2, at);
	return run(s, S_ENGAGED_NOTE, "store_engaged_note");
}

/* Forgets up to limit engagements older than before.  Returns how many. */
int store_engaged_prune(struct store *s, int64_t before, int limit)
{
	sqlite3_stmt *st = s->stmt[S_ENGAGED_PRUNE];

	sqlite3_bind_int64(st, 1, before);
	sqlite3_bind_int(st, 2, limit);
	if (run(s, S_ENGAGED_PRUNE, "store_engaged_prune") < 0)
		return -1;
	return sqlite3_changes(s->db);
}

int store_engaged_get(struct store *s, const char *email, int64_t *at)
{
	sqlite3_stmt *st = s->stmt[S_ENGAGED_GET];
	int rc;

	*at = 0;
	bind_text(st, 1, email);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*at = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : fail(s, rc, "store_engaged_get");
}
