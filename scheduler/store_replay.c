/*
 * store_replay.c -- a read-only view of what a daemon recorded in its store.
 *
 * NAME
 *	store_replay - arrivals and outcome rates per local day and ISP
 *
 * SYNOPSIS
 *	#include "scheduler/store_replay.h"
 *
 *	struct store_replay r = {0};
 *	if (store_replay_read(&r, "/var/lib/warmup/queue.db", &cal, err, sizeof err) < 0)
 *		... err names the file ...
 *	for (int d = 0; d < r.ndays; d++) ... r.days[d].bounce[isp] ...
 *	store_replay_free(&r);
 *
 * DESCRIPTION
 *	Its own connection, not struct store: store_open() takes the lock
 *	file a running daemon holds, creates and migrates, and sets the
 *	journal mode -- each of which a reader must not do.  This one is
 *	opened with SQLITE_OPEN_READONLY and reads the units and the counters
 *	inside one read transaction, so both come from the same snapshot of
 *	the WAL while the daemon goes on writing.  A store no process has open
 *	is read as immutable, so that SQLite leaves no -wal and -shm beside it
 *	(store_replay_read() says how a daemon starting meanwhile is caught).
 *
 *	The units are read in the order they were accepted (created_at, then
 *	id): the arrival times are the daemon's own, to the microsecond.
 *
 * DIAGNOSTICS
 *	One line naming the file: it is missing, it is not a warmup store, its
 *	schema is newer than this program's, or it holds no units.
 */
#include "scheduler/store_replay.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "scheduler/core/engine.h"
#include "scheduler/store_priv.h"

/* How long the read waits for a writer's lock (a checkpoint, a recovery). */
#define REPLAY_BUSY_MS 5000

struct reader {
	sqlite3 *db;
	const char *path;
	char *err;
	size_t errlen;
};

/* Formats "PATH: message" into err; returns -1. */
static int rp_fail(struct reader *rd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int rp_fail(struct reader *rd, const char *fmt, ...)
{
	char what[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	if (rd->err && rd->errlen)
		snprintf(rd->err, rd->errlen, "%s: %s", rd->path, what);
	return -1;
}

/* The same with SQLite's message for rc. */
static int rp_sqlfail(struct reader *rd, int rc, const char *what)
{
	if ((rc & 0xff) == SQLITE_NOTADB)
		return rp_fail(rd, "not a warmup store (not an SQLite database)");
	return rp_fail(rd, "%s: %s", what, rd->db ? sqlite3_errmsg(rd->db) : sqlite3_errstr(rc));
}

/* One integer from a one-row query into *v. */
static int rp_int(struct reader *rd, const char *sql, int64_t *v)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(rd->db, sql, -1, &st, NULL);

	if (rc != SQLITE_OK)
		return rp_sqlfail(rd, rc, "reading the schema");
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 0 : rp_sqlfail(rd, rc, "reading the schema");
}

/* Checks that the file is a warmup store this program can read. */
static int rp_check(struct reader *rd, struct store_replay *r)
{
	int64_t v, tables;

	if (rp_int(rd, "PRAGMA user_version", &v) < 0)
		return -1;
	if (v > st_schema_latest())
		return rp_fail(rd,
		               "schema version %lld is newer than this program's %d (a newer "
		               "warmup wrote it)",
		               (long long)v, st_schema_latest());
	if (rp_int(rd,
	           "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
	           " AND name IN ('units', 'counters')",
	           &tables) < 0)
		return -1;
	if (v < 1 || tables != 2)
		return rp_fail(rd, "not a warmup store (no units and counters tables)");
	r->schema = (int)v;
	return 0;
}

/* Reads every unit's arrival, oldest first. */
static int rp_arrivals(struct reader *rd, struct store_replay *r)
{
	sqlite3_stmt *st;
	size_t cap = 0;
	int rc = sqlite3_prepare_v2(rd->db,
	                            "SELECT created_at, isp, id FROM units"
	                            " ORDER BY created_at, id",
	                            -1, &st, NULL);

	if (rc != SQLITE_OK)
		return rp_sqlfail(rd, rc, "reading the units");
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t isp = sqlite3_column_int64(st, 1);

		if (isp < 0 || isp >= WU_ISP_MAX) {
			rp_fail(rd, "unit %lld has ISP group %lld (at most %d groups)",
			        (long long)sqlite3_column_int64(st, 2), (long long)isp, WU_ISP_MAX);
			sqlite3_finalize(st);
			return -1;
		}
		if (r->narrivals == cap) {
			size_t ncap = cap ? 2 * cap : 1024;
			struct store_replay_arrival *a = realloc(r->arrivals, ncap * sizeof *a);

			if (!a) {
				sqlite3_finalize(st);
				return rp_fail(rd, "%s", strerror(ENOMEM));
			}
			r->arrivals = a;
			cap = ncap;
		}
		r->arrivals[r->narrivals++] =
		    (struct store_replay_arrival){sqlite3_column_int64(st, 0), (int)isp};
		if ((int)isp >= r->nisp)
			r->nisp = (int)isp + 1;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return rp_sqlfail(rd, rc, "reading the units");
	if (r->narrivals == 0)
		return rp_fail(rd, "the store holds no mail (no units: none accepted, or all "
		                   "pruned by [store] keep)");
	return 0;
}

/* Places the arrivals in local days: days[] from the first arrival's date
 * to last_date (at least the last arrival's). */
static int rp_days(struct reader *rd, struct store_replay *r, const struct wu_calendar *cal,
                   int last_date)
{
	struct wu_day day;
	int first;

	wu_calendar_day(cal, r->arrivals[0].at, &day);
	first = day.date;
	wu_calendar_day(cal, r->arrivals[r->narrivals - 1].at, &day);
	if (day.date > last_date)
		last_date = day.date;
	r->ndays = last_date - first + 1;
	r->days = calloc((size_t)r->ndays, sizeof *r->days);
	if (!r->days)
		return rp_fail(rd, "%s", strerror(ENOMEM));
	for (int d = 0; d < r->ndays; d++)
		r->days[d].date = first + d;
	/* Arrivals come in time order, so each day is one run of them. */
	for (size_t i = 0; i < r->narrivals; i++) {
		struct store_replay_day *x;

		wu_calendar_day(cal, r->arrivals[i].at, &day);
		x = &r->days[day.date - first];
		if (x->n == 0)
			x->first = i;
		x->n++;
		x->offered[r->arrivals[i].isp]++;
	}
	return 0;
}

/* Adds one counter row to the figures it belongs to. */
static void rp_add(struct store_replay_counts *c, int result, int64_t n)
{
	switch (result) {
	case WU_ACCEPTED:
		c->accepted += n;
		break;
	case WU_DELIVERED:
		c->delivered += n;
		break;
	case WU_BOUNCE:
		c->bounces += n;
		break;
	case WU_DEFERRED:
		c->deferred += n;
		break;
	case WU_COMPLAINT:
		c->complaints += n;
		break;
	default:
		break;
	}
}

/* Reads the new route's counters into the days (and the whole store's
 * into *all); *last gets the latest date of any counter. */
static int rp_counters(struct reader *rd, struct store_replay *r, int first_date,
                       struct store_replay_counts *all, int *last)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(rd->db, "SELECT date, route, isp, result, n FROM counters", -1,
	                            &st, NULL);

	if (rc != SQLITE_OK)
		return rp_sqlfail(rd, rc, "reading the counters");
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int date = sqlite3_column_int(st, 0), route = sqlite3_column_int(st, 1);
		int isp = sqlite3_column_int(st, 2), result = sqlite3_column_int(st, 3);
		int64_t n = sqlite3_column_int64(st, 4);

		if (isp < 0 || isp >= WU_ISP_MAX || route != WU_ROUTE_NEW || n <= 0)
			continue;
		if (date > *last)
			*last = date;
		if (isp >= r->nisp)
			r->nisp = isp + 1;
		rp_add(all, result, n);
		if (date >= first_date && date - first_date < r->ndays)
			rp_add(&r->days[date - first_date].counts[isp], result, n);
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : rp_sqlfail(rd, rc, "reading the counters");
}

/* num / den, or -1 when den is 0 (no figures: take a wider pool's). */
static double rp_ratio(int64_t num, int64_t den)
{
	double v;

	if (den <= 0)
		return -1;
	v = (double)num / (double)den;
	return v > 1 ? 1 : v;
}

/* The three rates of c; -1 for all when the new route sent nothing (the
 * events of a day without sends belong to an earlier day's mail). */
static void rp_rates(const struct store_replay_counts *c, double *b, double *co, double *d)
{
	int64_t sent_b = c->delivered + c->bounces, sent_c = c->accepted - c->bounces;

	if (c->accepted <= 0) {
		*b = *co = *d = -1;
		return;
	}
	*b = rp_ratio(c->bounces, c->accepted > sent_b ? c->accepted : sent_b);
	*co = rp_ratio(c->complaints, c->delivered > sent_c ? c->delivered : sent_c);
	*d = rp_ratio(c->deferred, c->accepted);
}

/* The first of v, then day, then all, that has figures (0 when none). */
static double rp_pick(double v, double day, double all)
{
	return v >= 0 ? v : day >= 0 ? day : all >= 0 ? all : 0;
}

/* Fills each day's rates per ISP from its counts. */
static void rp_fill_rates(struct store_replay *r, const struct store_replay_counts *all)
{
	double ab, ac, ad;

	rp_rates(all, &ab, &ac, &ad);
	for (int d = 0; d < r->ndays; d++) {
		struct store_replay_day *x = &r->days[d];
		struct store_replay_counts sum = {0};
		double db, dc, dd;

		for (int i = 0; i < WU_ISP_MAX; i++) {
			sum.accepted += x->counts[i].accepted;
			sum.delivered += x->counts[i].delivered;
			sum.bounces += x->counts[i].bounces;
			sum.deferred += x->counts[i].deferred;
			sum.complaints += x->counts[i].complaints;
		}
		rp_rates(&sum, &db, &dc, &dd);
		for (int i = 0; i < WU_ISP_MAX; i++) {
			double b, c, f;

			rp_rates(&x->counts[i], &b, &c, &f);
			x->bounce[i] = rp_pick(b, db, ab);
			x->complaint[i] = rp_pick(c, dc, ac);
			x->deferral[i] = rp_pick(f, dd, ad);
		}
	}
}

/* "file:PATH?immutable=1", the path escaped as SQLite's URIs want
 * (https://sqlite.org/uri.html: '%', '?' and '#' as %HH). */
static int rp_uri(struct reader *rd, char *buf, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t j = 0;

	j += (size_t)snprintf(buf, len, "file:");
	for (const unsigned char *p = (const unsigned char *)rd->path; *p; p++) {
		if (j + 4 >= len)
			return rp_fail(rd, "path too long");
		if (*p == '%' || *p == '?' || *p == '#' || *p < 0x20) {
			buf[j++] = '%';
			buf[j++] = hex[*p >> 4];
			buf[j++] = hex[*p & 15];
		} else
			buf[j++] = (char)*p;
	}
	if (j + sizeof "?immutable=1" > len)
		return rp_fail(rd, "path too long");
	memcpy(buf + j, "?immutable=1", sizeof "?immutable=1");
	return 0;
}

/* One read of the store, read-only; immutable: as a file no one writes. */
static int rp_read(struct reader *rd, struct store_replay *r, const struct wu_calendar *cal,
                   int immutable)
{
	struct store_replay_counts all = {0}, none = {0};
	struct wu_day day;
	char uri[4200];
	int rc, last = 0, ret = -1;

	if (immutable && rp_uri(rd, uri, sizeof uri) < 0)
		return -1;
	rc = sqlite3_open_v2(
	    immutable ? uri : rd->path, &rd->db,
	    SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX | (immutable ? SQLITE_OPEN_URI : 0), NULL);
	if (rc != SQLITE_OK) {
		rp_sqlfail(rd, rc, "opening it read-only");
		sqlite3_close(rd->db);
		rd->db = NULL;
		return -1;
	}
	sqlite3_extended_result_codes(rd->db, 1);
	sqlite3_busy_timeout(rd->db, REPLAY_BUSY_MS);
	/* One snapshot for the units and the counters alike. */
	if ((rc = sqlite3_exec(rd->db, "BEGIN", NULL, NULL, NULL)) != SQLITE_OK) {
		rp_sqlfail(rd, rc, "starting the read");
		goto out;
	}
	if (rp_check(rd, r) < 0 || rp_arrivals(rd, r) < 0)
		goto out;
	/* Counters may reach past the last arrival (events of the day after):
	 * a first pass finds how far, the second fills the days. */
	wu_calendar_day(cal, r->arrivals[0].at, &day);
	if (rp_counters(rd, r, day.date, &none, &last) < 0 || rp_days(rd, r, cal, last) < 0 ||
	    rp_counters(rd, r, day.date, &all, &last) < 0)
		goto out;
	rp_fill_rates(r, &all);
	ret = 0;
out:
	sqlite3_exec(rd->db, "COMMIT", NULL, NULL, NULL);
	sqlite3_close(rd->db);
	rd->db = NULL;
	if (ret < 0)
		store_replay_free(r);
	return ret;
}

/* 1 when PATH-suffix exists. */
static int rp_beside(const char *path, const char *suffix)
{
	char p[4200];
	struct stat sb;

	snprintf(p, sizeof p, "%s%s", path, suffix);
	return stat(p, &sb) == 0;
}

/*
 * A read-only connection to a WAL database creates its -wal and -shm files
 * when they are not there, and leaves them behind: the store of a stopped
 * daemon would gain two files.  Without them no connection has the store
 * open and everything is in the database file, so it is read as immutable
 * (no locks, no -shm); if the file or the -wal changed meanwhile (a daemon
 * started), that read is thrown away and the store read again the ordinary
 * way, beside the daemon.
 */
int store_replay_read(struct store_replay *r, const char *path, const struct wu_calendar *cal,
                      char *err, size_t errlen)
{
	struct reader rd = {.path = path, .err = err, .errlen = errlen};
	struct stat sb, after;

	memset(r, 0, sizeof *r);
	if (stat(path, &sb) < 0)
		return rp_fail(&rd, "%s", strerror(errno));
	if (!S_ISREG(sb.st_mode))
		return rp_fail(&rd, "not a warmup store (not a regular file)");
	if (!rp_beside(path, "-wal") && !rp_beside(path, "-shm")) {
		int rc = rp_read(&rd, r, cal, 1);

		if (stat(path, &after) == 0 && after.st_ino == sb.st_ino &&
		    after.st_size == sb.st_size && after.st_mtim.tv_sec == sb.st_mtim.tv_sec &&
		    after.st_mtim.tv_nsec == sb.st_mtim.tv_nsec && !rp_beside(path, "-wal"))
			return rc;
		store_replay_free(r);
	}
	return rp_read(&rd, r, cal, 0);
}
void store_replay_free(struct store_replay *r)
{
	free(r->days);
	free(r->arrivals);
	memset(r, 0, sizeof *r);
}
