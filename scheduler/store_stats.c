/*
 * store_stats.c -- the numbers: day x route x ISP x result counters, queue
 * depths, sends per hour, and the engine's saved state.
 */
#include "scheduler/store_priv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct counter_row {
	int route, isp, result;
	int64_t n;
};

/* Adds n to one counter, creating it at n. */
int store_count(struct store *s, int date, int route, int isp, int result, int64_t n)
{
	sqlite3_stmt *st = s->stmt[S_COUNT];

	sqlite3_bind_int(st, 1, date);
	sqlite3_bind_int(st, 2, route);
	sqlite3_bind_int(st, 3, isp);
	sqlite3_bind_int(st, 4, result);
	sqlite3_bind_int64(st, 5, n);
	return st_run(s, S_COUNT, "store_count");
}

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
				return st_fail(s, SQLITE_OK, "store_counters: %s", strerror(ENOMEM));
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
		return st_fail(s, rc, "store_counters");
	}
	for (size_t i = 0; i < nrows; i++)
		fn(arg, rows[i].route, rows[i].isp, rows[i].result, rows[i].n);
	free(rows);
	return 0;
}

/* Counts units by state, in one snapshot. */
int store_depth(struct store *s, int64_t depth[4])
{
	if (st_sp_begin(s, "store_depth") < 0)
		return -1;
	if (st_run_int(s, S_DEPTH_QUEUED, "store_depth", &depth[STORE_QUEUED]) < 0 ||
	    st_run_int(s, S_DEPTH_INFLIGHT, "store_depth", &depth[STORE_INFLIGHT]) < 0)
		goto fail;
	for (int state = STORE_SENT; state <= STORE_FAILED; state++) {
		sqlite3_bind_int(s->stmt[S_DEPTH_DONE], 1, state);
		if (st_run_int(s, S_DEPTH_DONE, "store_depth", &depth[state]) < 0)
			goto fail;
	}
	if (st_sp_release(s, "store_depth") < 0)
		goto fail;
	return 0;
fail:
	st_sp_abort(s);
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
	return rc == SQLITE_DONE ? 0 : st_fail(s, rc, "store_sent_hours");
}

/* Counts QUEUED units per ISP, in one snapshot. */
int store_depth_isps(struct store *s, int nisp, int64_t *depth)
{
	if (st_sp_begin(s, "store_depth_isps") < 0)
		return -1;
	for (int isp = 0; isp < nisp; isp++) {
		sqlite3_bind_int(s->stmt[S_DEPTH_ISP], 1, isp);
		if (st_run_int(s, S_DEPTH_ISP, "store_depth_isps", &depth[isp]) < 0)
			goto fail;
	}
	if (st_sp_release(s, "store_depth_isps") < 0)
		goto fail;
	return 0;
fail:
	st_sp_abort(s);
	return -1;
}

/* Replaces the engine's saved state; NULL forgets it. */
int store_engine_save(struct store *s, const char *text)
{
	if (!text)
		return st_run(s, S_ENGINE_DELETE, "store_engine_save");
	sqlite3_bind_text(s->stmt[S_ENGINE_SAVE], 1, text, -1, SQLITE_STATIC);
	return st_run(s, S_ENGINE_SAVE, "store_engine_save");
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
			return st_fail(s, SQLITE_OK, "store_engine_load: %s", strerror(ENOMEM));
		return 0;
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return st_fail(s, rc, "store_engine_load");
	return 0;
}
