/*
 * test_store_replay.c -- the read-only view of a store (store_replay.c):
 * arrivals placed in local days to the microsecond, the rates per day and
 * ISP with their fallbacks, a read beside an open store that changes
 * nothing, and the errors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../store/store_fixture.h"
#include "scheduler/core/engine.h"
#include "scheduler/store.h"
#include "scheduler/store_replay.h"

static struct wu_calendar cal;
static int date1;    /* 2026-12-01 in Asia/Tokyo */
static wu_time_t t0; /* its local midnight */

static int setup(void **state)
{
	return fixture_setup(state, "/tmp/wu-replay-XXXXXX");
}

/* One unit of isp accepted at `at`. */
static void unit(struct store *s, int isp, wu_time_t at)
{
	int64_t cid, uid;

	assert_int_equal(store_add_content(s, "m", "{}", 2, at, &cid), 0);
	assert_int_equal(store_add_unit(s, cid, "{}", 2, isp, "example.net", at, &uid), 0);
}

/* The whole file, for comparing before and after. */
static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	rewind(f);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return buf;
}

static int beside(const char *path, const char *suffix)
{
	char p[256];
	struct stat sb;

	snprintf(p, sizeof p, "%s%s", path, suffix);
	return stat(p, &sb) == 0;
}

/* Arrivals in time order and in their local days, exact to the
 * microsecond; the rates with the ISP's, the day's and the store's
 * figures; the old route and the routed counts left out. */
static void test_days_and_rates(void **state)
{
	struct fixture *f = *state;
	struct store *s = f->s;
	struct store_replay r;
	char err[512];

	/* Out of order on purpose: the reader orders them. */
	unit(s, 0, t0 + WU_DAY);
	unit(s, 1, t0 + 1);
	unit(s, 3, t0 + WU_DAY + 5 * WU_HOUR);
	unit(s, 2, t0 + 10 * WU_HOUR + 123457);
	unit(s, 1, t0 + WU_DAY - 1);
	assert_int_equal(store_count(s, date1, WU_ROUTE_NEW, 1, WU_ACCEPTED, 10), 0);
	assert_int_equal(store_count(s, date1, WU_ROUTE_NEW, 1, WU_BOUNCE, 2), 0);
	assert_int_equal(store_count(s, date1, WU_ROUTE_NEW, 1, WU_DELIVERED, 8), 0);
	assert_int_equal(store_count(s, date1, WU_ROUTE_NEW, 1, WU_COMPLAINT, 1), 0);
	assert_int_equal(store_count(s, date1, WU_ROUTE_NEW, 1, WU_DEFERRED, 3), 0);
	/* Only the failures reported: the sends are the denominator. */
	assert_int_equal(store_count(s, date1, WU_ROUTE_NEW, 2, WU_ACCEPTED, 4), 0);
	assert_int_equal(store_count(s, date1, WU_ROUTE_NEW, 2, WU_BOUNCE, 1), 0);
	/* Not the new route's outcomes. */
	assert_int_equal(store_count(s, date1, WU_ROUTE_OLD, 1, WU_BOUNCE, 100), 0);
	assert_int_equal(store_count(s, date1, WU_ROUTE_NEW, 1, WU_RESULT_COUNT, 50), 0);
	/* A bounce heard two days later, with no mail that day. */
	assert_int_equal(store_count(s, date1 + 2, WU_ROUTE_NEW, 1, WU_BOUNCE, 1), 0);

	assert_int_equal(store_replay_read(&r, f->path, &cal, err, sizeof err), 0);
	assert_int_equal(r.narrivals, 5);
	assert_int_equal(r.nisp, 4);
	assert_int_equal(r.ndays, 3);
	assert_int_equal(r.days[0].date, date1);
	assert_int_equal(r.days[2].date, date1 + 2);
	assert_int_equal(r.arrivals[0].at, t0 + 1);
	assert_int_equal(r.arrivals[1].at, t0 + 10 * WU_HOUR + 123457);
	assert_int_equal(r.arrivals[2].at, t0 + WU_DAY - 1);
	assert_int_equal(r.arrivals[3].at, t0 + WU_DAY);
	assert_int_equal(r.arrivals[4].at, t0 + WU_DAY + 5 * WU_HOUR);
	assert_int_equal(r.arrivals[2].isp, 1);
	assert_int_equal(r.arrivals[3].isp, 0);
	assert_int_equal(r.days[0].first, 0);
	assert_int_equal(r.days[0].n, 3);
	assert_int_equal(r.days[1].first, 3);
	assert_int_equal(r.days[1].n, 2);
	assert_int_equal(r.days[2].n, 0);
	assert_int_equal(r.days[0].offered[1], 2);
	assert_int_equal(r.days[0].offered[2], 1);
	assert_int_equal(r.days[1].offered[3], 1);

	/* The ISP's own figures. */
	assert_float_equal(r.days[0].bounce[1], 0.2, 1e-12);
	assert_float_equal(r.days[0].complaint[1], 0.125, 1e-12);
	assert_float_equal(r.days[0].deferral[1], 0.3, 1e-12);
	assert_float_equal(r.days[0].bounce[2], 0.25, 1e-12);
	assert_float_equal(r.days[0].complaint[2], 0, 1e-12);
	/* No figures for ISP 0 on day 1: the day's (14 sent, 3 bounced, 8
	 * delivered, 1 complaint, 3 deferred). */
	assert_float_equal(r.days[0].bounce[0], 3.0 / 14, 1e-12);
	assert_float_equal(r.days[0].complaint[0], 1.0 / 11, 1e-12);
	assert_float_equal(r.days[0].deferral[0], 3.0 / 14, 1e-12);
	/* None on day 2: the store's (one more bounce, on day 3). */
	assert_float_equal(r.days[1].bounce[3], 4.0 / 14, 1e-12);
	assert_float_equal(r.days[1].complaint[3], 1.0 / 10, 1e-12);
	assert_float_equal(r.days[1].deferral[3], 3.0 / 14, 1e-12);
	/* Day 3: a bounce but no send: a rate needs sends, the store's again. */
	assert_float_equal(r.days[2].bounce[1], 4.0 / 14, 1e-12);
	assert_int_equal(r.days[2].counts[1].bounces, 1);
	store_replay_free(&r);
}

/* Read while the store is open (its lock held, its WAL in use), and after:
 * the file's bytes and mtime stay, and no -wal or -shm is left behind. */
static void test_read_changes_nothing(void **state)
{
	struct fixture *f = *state;
	struct store_replay r;
	struct stat a, b;
	char err[512], *before, *after;
	size_t n1, n2;

	for (int i = 0; i < 100; i++)
		unit(f->s, i % 3, t0 + i * WU_MINUTE);
	assert_int_equal(store_count(f->s, date1, WU_ROUTE_NEW, 0, WU_ACCEPTED, 30), 0);
	for (int pass = 0; pass < 2; pass++) {
		if (pass == 1) { /* the daemon stopped: its -wal and -shm went */
			store_close(f->s);
			f->s = NULL;
			assert_false(beside(f->path, "-wal"));
			assert_false(beside(f->path, "-shm"));
		}
		assert_int_equal(stat(f->path, &a), 0);
		before = slurp(f->path, &n1);
		assert_int_equal(store_replay_read(&r, f->path, &cal, err, sizeof err), 0);
		assert_int_equal(r.narrivals, 100);
		assert_int_equal(r.days[0].counts[0].accepted, 30);
		store_replay_free(&r);
		after = slurp(f->path, &n2);
		assert_int_equal(stat(f->path, &b), 0);
		assert_int_equal(n1, n2);
		assert_memory_equal(before, after, n1);
		assert_int_equal(a.st_mtim.tv_sec, b.st_mtim.tv_sec);
		assert_int_equal(a.st_mtim.tv_nsec, b.st_mtim.tv_nsec);
		free(before);
		free(after);
	}
	assert_false(beside(f->path, "-wal"));
	assert_false(beside(f->path, "-shm"));
}

/* One line naming the file for each way a store cannot be replayed. */
static void test_errors(void **state)
{
	struct fixture *f = *state;
	struct store_replay r;
	char err[512], path[160];
	sqlite3 *db;
	FILE *fp;

	/* Empty: a daemon's store that took no mail. */
	assert_int_equal(store_replay_read(&r, f->path, &cal, err, sizeof err), -1);
	assert_non_null(strstr(err, f->path));
	assert_non_null(strstr(err, "no mail"));
	assert_null(r.arrivals);

	snprintf(path, sizeof path, "%s/missing.db", f->dir);
	assert_int_equal(store_replay_read(&r, path, &cal, err, sizeof err), -1);
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, "No such file"));

	snprintf(path, sizeof path, "%s/notes.txt", f->dir);
	fp = fopen(path, "w");
	assert_non_null(fp);
	for (int i = 0; i < 200; i++)
		fputs("not a database\n", fp);
	fclose(fp);
	assert_int_equal(store_replay_read(&r, path, &cal, err, sizeof err), -1);
	assert_non_null(strstr(err, "not a warmup store"));
	unlink(path);

	/* A newer warmup's store. */
	unit(f->s, 0, t0);
	store_close(f->s);
	f->s = NULL;
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(store_replay_read(&r, f->path, &cal, err, sizeof err), -1);
	assert_non_null(strstr(err, f->path));
	assert_non_null(strstr(err, "schema version 99 is newer"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_days_and_rates, setup, fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_read_changes_nothing, setup, fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_errors, setup, fixture_teardown),
	};
	char err[WU_ERR_MAX];

	setenv("TZ", "Asia/Tokyo", 1);
	tzset();
	if (wu_calendar_init(&cal, "Asia/Tokyo", 2026, 12, 1, 0, 1440, err, sizeof err) < 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	date1 = wu_days_from_civil(2026, 12, 1);
	t0 = wu_calendar_local(date1, 0);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
