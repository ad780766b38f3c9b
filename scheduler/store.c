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
#include "scheduler/store_priv.h"

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

/* The schema version this program writes (readers refuse newer ones). */
int st_schema_latest(void)
{
	return SCHEMA_VERSION;
}


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


/* Records a failure of `what`, with SQLite's message when rc is an SQLite
 * error, and returns -1 so callers can `return st_fail(...)`. */
int st_fail(struct store *s, int rc, const char *fmt, ...)
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
int st_run(struct store *s, enum stmt k, const char *what)
{
	sqlite3_stmt *st = s->stmt[k];
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		return st_fail(s, rc, "%s", what);
	return 0;
}

/* Steps a statement returning one integer (count(*), EXISTS) into *v. */
int st_run_int(struct store *s, enum stmt k, const char *what, int64_t *v)
{
	sqlite3_stmt *st = s->stmt[k];
	int rc = sqlite3_step(st);

	if (rc == SQLITE_ROW)
		*v = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc != SQLITE_ROW)
		return st_fail(s, rc, "%s", what);
	return 0;
}

/* Binds a string that may be NULL. */
int st_bind_text(sqlite3_stmt *st, int i, const char *text)
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
int st_sp_begin(struct store *s, const char *what)
{
	return st_run(s, S_SP_BEGIN, what);
}

/* Ends the savepoint, keeping its work. */
int st_sp_release(struct store *s, const char *what)
{
	return st_run(s, S_SP_RELEASE, what);
}

/* Ends the savepoint, undoing its work; the error string already says why. */
void st_sp_abort(struct store *s)
{
	char keep[sizeof s->err];

	memcpy(keep, s->err, sizeof keep);
	/* Some errors (I/O, full disk) already rolled the whole transaction
	 * back; then there is no savepoint left to undo. */
	if (!sqlite3_get_autocommit(s->db)) {
		st_run(s, S_SP_ROLLBACK, "rollback to savepoint");
		st_run(s, S_SP_RELEASE, "release savepoint");
	}
	memcpy(s->err, keep, sizeof keep);
}

/* Runs a PRAGMA or other one-off statement at open time. */
int st_exec(struct store *s, const char *sql)
{
	int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);

	if (rc != SQLITE_OK)
		return st_fail(s, rc, "store_open: %s", sql);
	return 0;
}

/* Reads PRAGMA user_version. */
static int schema_version(struct store *s, int *v)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL);

	if (rc != SQLITE_OK)
		return st_fail(s, rc, "store_open: reading user_version");
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW)
		return st_fail(s, rc, "store_open: reading user_version");
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

		if (st_exec(s, "BEGIN IMMEDIATE") < 0)
			return -1;
		/* Another process may have migrated while we waited for the lock. */
		if (schema_version(s, &v) < 0)
			goto rollback;
		if (v >= SCHEMA_VERSION) {
			st_exec(s, "COMMIT");
			break;
		}
		if (v < 0) {
			st_fail(s, SQLITE_OK, "store_open: %s: bad schema version %d", s->path, v);
			goto rollback;
		}
		snprintf(sql, sizeof sql, "PRAGMA user_version = %d", v + 1);
		if (st_exec(s, migrations[v]) < 0 || st_exec(s, sql) < 0 || st_exec(s, "COMMIT") < 0)
			goto rollback;
		v++;
	}
	if (v > SCHEMA_VERSION)
		return st_fail(s, SQLITE_OK,
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
		return st_fail(s, SQLITE_OK, "store_open: %s: path too long", path);
	fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return st_fail(s, SQLITE_OK, "store_open: %s: unable to open the lock file %s: %s",
		            path, lp, strerror(errno));
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int e = errno;

		n = pread(fd, owner, sizeof owner - 1, 0);
		owner[n > 0 ? n : 0] = '\0';
		owner[strcspn(owner, "\n")] = '\0';
		close(fd);
		if (e == EWOULDBLOCK)
			return st_fail(s, SQLITE_OK,
			            "store_open: %s is in use by another process (pid %s, lock %s); "
			            "two daemons on one store would send twice the cap",
			            path, owner[0] ? owner : "unknown", lp);
		return st_fail(s, SQLITE_OK, "store_open: %s: cannot lock %s: %s", path, lp,
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
		st_fail(s, SQLITE_OK, "store_open: %s: unable to open database file: %s", path,
		     strerror(errno));
		goto fail;
	}
	close(fd);
	/* One thread uses a store: SQLite's own locking would only cost time. */
	rc = sqlite3_open_v2(
	    path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		st_fail(s, SQLITE_OK, "store_open: %s: %s", path,
		     s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
		goto fail;
	}
	sqlite3_extended_result_codes(s->db, 1);
	sqlite3_busy_timeout(s->db, STORE_BUSY_MS);
	/* A new store gives pages freed by pruning back to the file system
	 * (store_vacuum_step); on an existing one without it this does
	 * nothing, and freed pages are only reused. */
	if (st_exec(s, "PRAGMA auto_vacuum = INCREMENTAL") < 0)
		goto fail;
	/* journal_mode answers with the mode it got; anything but "wal" (e.g.
	 * a file system without shared memory) must not pass silently. */
	{
		sqlite3_stmt *st;
		bool wal = false;

		rc = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode = WAL", -1, &st, NULL);
		if (rc != SQLITE_OK) {
			st_fail(s, rc, "store_open: %s: journal_mode", path);
			goto fail;
		}
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW)
			wal = sqlite3_stricmp((const char *)sqlite3_column_text(st, 0), "wal") == 0;
		sqlite3_finalize(st);
		if (rc != SQLITE_ROW) {
			st_fail(s, rc, "store_open: %s: journal_mode", path);
			goto fail;
		}
		if (!wal) {
			st_fail(s, SQLITE_OK, "store_open: %s: cannot switch to WAL mode", path);
			goto fail;
		}
	}
	/* FULL: the WAL is fsynced on every commit, which is what makes a 202
	 * mean "on disk".  Never lower it; batch commits instead. */
	if (st_exec(s, "PRAGMA synchronous = FULL") < 0 || st_exec(s, "PRAGMA foreign_keys = ON") < 0 ||
	    st_exec(s, "PRAGMA temp_store = MEMORY") < 0 ||
	    /* Keeps the WAL file from staying huge after a burst. */
	    st_exec(s, "PRAGMA journal_size_limit = 67108864") < 0 ||
	    /* 16 MB keeps the ready index hot with a million queued units. */
	    st_exec(s, "PRAGMA cache_size = -16384") < 0)
		goto fail;
	if (migrate(s) < 0)
		goto fail;
	for (int k = 0; k < S_COUNT_STMTS; k++) {
		rc = sqlite3_prepare_v3(s->db, stmt_sql[k], -1, SQLITE_PREPARE_PERSISTENT,
		                        &s->stmt[k], NULL);
		if (rc != SQLITE_OK) {
			st_fail(s, rc, "store_open: preparing \"%s\"", stmt_sql[k]);
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
	/* The checkpoints' connection first: the last one closed checkpoints
	 * what the WAL holds. */
	sqlite3_close_v2(s->ckpt_db);
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
	return st_run(s, S_BEGIN, "store_begin");
}

/* Commits: one fsync of the WAL.  On failure the transaction may still be
 * open; call store_rollback(). */
int store_commit(struct store *s)
{
	return st_run(s, S_COMMIT, "store_commit");
}

/* Discards the open transaction; harmless when SQLite already rolled back. */
int store_rollback(struct store *s)
{
	if (sqlite3_get_autocommit(s->db))
		return 0;
	return st_run(s, S_ROLLBACK, "store_rollback");
}

/* Stores one request's shared body. */
int store_add_content(struct store *s, const char *msgid, const char *body, size_t len, int64_t now,
                      int64_t *content_id)
{
	sqlite3_stmt *st = s->stmt[S_ADD_CONTENT];

	if (len > INT32_MAX)
		return st_fail(s, SQLITE_OK, "store_add_content: body of %zu bytes is too large", len);
	st_bind_text(st, 1, msgid);
	sqlite3_bind_int64(st, 2, now);
	/* STATIC: the statement is reset before we return. */
	sqlite3_bind_blob(st, 3, body ? body : "", body ? (int)len : 0, SQLITE_STATIC);
	if (st_run(s, S_ADD_CONTENT, "store_add_content") < 0)
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
		return st_fail(s, SQLITE_OK, "store_add_raw_content: message too large");
	st_bind_text(st, 1, msgid);
	sqlite3_bind_int64(st, 2, now);
	sqlite3_bind_blob(st, 3, body ? body : "", body ? (int)len : 0, SQLITE_STATIC);
	sqlite3_bind_blob(st, 4, raw ? raw : "", raw ? (int)raw_len : 0, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, mail_from ? mail_from : "", -1, SQLITE_STATIC);
	if (st_run(s, S_ADD_RAW_CONTENT, "store_add_raw_content") < 0)
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
			return st_fail(s, SQLITE_OK, "store_content_raw: content %lld not found",
			            (long long)content_id);
		return st_fail(s, rc, "store_content_raw");
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
		return st_fail(s, SQLITE_OK, "store_content_raw: %s", strerror(ENOMEM));
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
		return st_fail(s, SQLITE_OK,
		            "store_add_unit: personalization of %zu bytes is too large", len);
	sqlite3_bind_int64(st, 1, content_id);
	sqlite3_bind_int(st, 2, isp);
	sqlite3_bind_int64(st, 3, now);
	st_bind_text(st, 4, domain);
	sqlite3_bind_text(st, 5, personalization ? personalization : "",
	                  personalization ? (int)len : 0, SQLITE_STATIC);
	sqlite3_bind_int64(st, 6, engaged_at);
	if (email && *email)
		st_bind_text(st, 7, email);
	else
		sqlite3_bind_null(st, 7);
	if (st_run(s, S_ADD_UNIT, "store_add_unit") < 0)
		return -1;
	if (unit_id)
		*unit_id = sqlite3_last_insert_rowid(s->db);
	return 0;
}

/* Returns units a crash left INFLIGHT to the queue. */
int store_recover(struct store *s)
{
	if (st_run(s, S_RECOVER, "store_recover") < 0)
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
		return st_fail(s, SQLITE_OK, "%s: %s", what, strerror(ENOMEM));
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
		st_fail(s, rc, "store_ready");
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

	if (st_sp_begin(s, "store_ready_isps") < 0)
		return -1;
	for (int isp = 0; isp < nisp; isp++) {
		enum stmt k = exact ? S_COUNT_READY : S_HAS_READY;
		sqlite3_stmt *st;
		int rc;

		sqlite3_bind_int(s->stmt[k], 1, isp);
		sqlite3_bind_int64(s->stmt[k], 2, now);
		if (st_run_int(s, k, "store_ready_isps", &ready[isp]) < 0)
			goto fail;
		st = s->stmt[S_EARLIEST];
		sqlite3_bind_int(st, 1, isp);
		sqlite3_bind_int64(st, 2, now);
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW && sqlite3_column_int64(st, 0) < first)
			first = sqlite3_column_int64(st, 0);
		sqlite3_reset(st);
		if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
			st_fail(s, rc, "store_ready_isps");
			goto fail;
		}
	}
	if (st_sp_release(s, "store_ready_isps") < 0)
		goto fail;
	if (earliest)
		*earliest = first;
	return 0;
fail:
	st_sp_abort(s);
	return -1;
}

/* Runs one of the single-unit state changes; no row changed means the unit
 * is unknown or not in a state that allows the change. */
static int change(struct store *s, enum stmt k, int64_t unit_id, const char *what, const char *need)
{
	if (st_run(s, k, what) < 0)
		return -1;
	if (sqlite3_changes(s->db) != 1)
		return st_fail(s, SQLITE_OK, "%s: unit %lld not found or not %s", what,
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
	st_bind_text(st, 2, provider_id);
	sqlite3_bind_int64(st, 3, now);
	return change(s, S_SENT, unit_id, "store_mark_sent", "queued or in flight");
}

/* Puts the unit back in the queue, due at next_at. */
int store_requeue(struct store *s, int64_t unit_id, int64_t next_at, const char *error)
{
	sqlite3_stmt *st = s->stmt[S_REQUEUE];

	sqlite3_bind_int64(st, 1, unit_id);
	sqlite3_bind_int64(st, 2, next_at);
	st_bind_text(st, 3, error);
	return change(s, S_REQUEUE, unit_id, "store_requeue", "queued or in flight");
}

/* Records a permanent failure. */
int store_mark_failed(struct store *s, int64_t unit_id, const char *error, int64_t now)
{
	sqlite3_stmt *st = s->stmt[S_FAILED];

	sqlite3_bind_int64(st, 1, unit_id);
	st_bind_text(st, 2, error);
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
			return st_fail(s, SQLITE_OK, "store_content: content %lld not found",
			            (long long)content_id);
		return st_fail(s, rc, "store_content");
	}
	id = (const char *)sqlite3_column_text(st, 0);
	if (msgid && msgid_len) {
		if (snprintf(msgid, msgid_len, "%s", id ? id : "") >= (int)msgid_len) {
			sqlite3_reset(st);
			/* A cut message id would silently name another message. */
			return st_fail(s, SQLITE_OK,
			            "store_content: content %lld: msgid buffer too small",
			            (long long)content_id);
		}
	}
	n = sqlite3_column_bytes(st, 1);
	*body = malloc((size_t)n + 1);
	if (!*body) {
		sqlite3_reset(st);
		return st_fail(s, SQLITE_OK, "store_content: %s", strerror(ENOMEM));
	}
	if (n)
		memcpy(*body, sqlite3_column_blob(st, 1), (size_t)n);
	(*body)[n] = '\0';
	if (len)
		*len = (size_t)n;
	sqlite3_reset(st);
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

/* Gives up to pages free pages back to the file system. */
int store_vacuum_step(struct store *s, int pages)
{
	char sql[64];

	/* A pragma takes no bound parameter. */
	snprintf(sql, sizeof(sql), "PRAGMA incremental_vacuum(%d)", pages > 0 ? pages : 1);
	return st_exec(s, sql);
}

/* Removes up to limit finished units, and the contents they leave unused. */
int store_prune_some(struct store *s, int64_t before, int limit)
{
	sqlite3_stmt *st = s->stmt[S_PRUNE_UNITS];
	int64_t *ids = NULL;
	size_t n = 0, cap = 0;
	int rc;

	if (st_sp_begin(s, "store_prune") < 0)
		return -1;
	sqlite3_bind_int64(st, 1, before);
	sqlite3_bind_int(st, 2, limit);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == cap) {
			size_t ncap = cap ? 2 * cap : 256;
			int64_t *p = realloc(ids, ncap * sizeof *p);

			if (!p) {
				sqlite3_reset(st);
				st_fail(s, SQLITE_OK, "store_prune: %s", strerror(ENOMEM));
				goto fail;
			}
			ids = p;
			cap = ncap;
		}
		ids[n++] = sqlite3_column_int64(st, 0);
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		st_fail(s, rc, "store_prune");
		goto fail;
	}
	if (n > 1)
		qsort(ids, n, sizeof *ids, cmp_id);
	for (size_t i = 0; i < n; i++) {
		if (i > 0 && ids[i] == ids[i - 1])
			continue;
		sqlite3_bind_int64(s->stmt[S_PRUNE_CONTENT], 1, ids[i]);
		if (st_run(s, S_PRUNE_CONTENT, "store_prune: contents") < 0)
			goto fail;
	}
	if (st_sp_release(s, "store_prune") < 0)
		goto fail;
	free(ids);
	return (int)(n > INT32_MAX ? INT32_MAX : n);
fail:
	free(ids);
	st_sp_abort(s);
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
		return st_fail(s, rc, "store_unit_get");
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
		return st_fail(s, SQLITE_OK, "store_unit_get: %s", strerror(ENOMEM));
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
		return st_fail(s, rc, "store_v3only_waiting");
	return 0;
}

/* Finds the route and ISP of a sent unit by its provider message id. */
int store_unit_by_provider(struct store *s, const char *provider_id, const char *domain, int *route,
                           int *isp)
{
	sqlite3_stmt *st = s->stmt[S_UNIT_BY_PROVIDER];
	int rc;

	st_bind_text(st, 1, provider_id);
	st_bind_text(st, 2, domain ? domain : "");
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
	return st_fail(s, rc, "store_unit_by_provider");
}
