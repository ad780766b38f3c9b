/*
 * test_suppress.c -- the store's suppression list and event log against a
 * real SQLite file: case folding, first reason kept, bulk adds all or
 * nothing, paging by address, counts by reason, and the schema step that
 * adds them to a store made by the first version.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "scheduler/store.h"
#include "store_fixture.h"

/* A store in a fresh directory. */
static int setup(void **state)
{
	return fixture_setup(state, "/tmp/wu-supp-XXXXXX");
}

/* Collects a listing as "email reason detail;" text. */
struct listing {
	char text[2048];
	int64_t last_created;
};

static void collect(void *arg, const struct store_suppression *e)
{
	struct listing *l = arg;
	size_t n = strlen(l->text);

	snprintf(l->text + n, sizeof l->text - n, "%s %s %s;", e->email, e->reason,
	         e->detail ? e->detail : "-");
	l->last_created = e->created;
}

static void test_add_check_remove(void **state)
{
	struct fixture *f = *state;
	char reason[32];

	assert_int_equal(store_suppress_add(f->s, "Bob@Example.COM", "bounce", "550 no user", 7),
	                 1);
	/* Already there: the first reason and date stay. */
	assert_int_equal(store_suppress_add(f->s, "bob@example.com", "manual", NULL, 9), 0);
	assert_int_equal(store_suppress_check(f->s, "BOB@example.com", reason, sizeof reason), 1);
	assert_string_equal(reason, "bounce");
	assert_int_equal(store_suppress_check(f->s, "alice@example.com", reason, sizeof reason), 0);
	assert_int_equal(store_suppress_check(f->s, "bob@example.co", NULL, 0), 0);

	struct listing l = {0};
	assert_int_equal(store_suppress_list(f->s, NULL, NULL, 10, collect, &l), 1);
	assert_string_equal(l.text, "bob@example.com bounce 550 no user;");
	assert_int_equal(l.last_created, 7);

	assert_int_equal(store_suppress_remove(f->s, "BOB@EXAMPLE.COM"), 1);
	assert_int_equal(store_suppress_remove(f->s, "bob@example.com"), 0);
	assert_int_equal(store_suppress_check(f->s, "bob@example.com", NULL, 0), 0);

	/* Empty and absurd addresses are errors for add, "no" for check. */
	assert_int_equal(store_suppress_add(f->s, "", "manual", NULL, 1), -1);
	char big[400];
	memset(big, 'a', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	assert_int_equal(store_suppress_add(f->s, big, "manual", NULL, 1), -1);
	assert_int_equal(store_suppress_check(f->s, big, NULL, 0), 0);
}

static void test_bulk_list_count(void **state)
{
	struct fixture *f = *state;
	const char *a[] = {"c@x.org", "A@x.org", "b@x.org", "a@x.org"};
	const char *more[] = {"d@x.org", "e@x.org"};
	struct listing l = {0};
	int64_t n;

	assert_int_equal(store_suppress_add_bulk(f->s, a, 4, "import", NULL, 1), 3);
	assert_int_equal(store_suppress_add_bulk(f->s, more, 2, "spamreport", "fbl", 2), 2);
	assert_int_equal(store_suppress_count(f->s, NULL, &n), 0);
	assert_int_equal(n, 5);
	assert_int_equal(store_suppress_count(f->s, "import", &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(store_suppress_count(f->s, "bounce", &n), 0);
	assert_int_equal(n, 0);

	/* Pages in address order, with the last address as the cursor. */
	assert_int_equal(store_suppress_list(f->s, NULL, NULL, 2, collect, &l), 2);
	assert_string_equal(l.text, "a@x.org import -;b@x.org import -;");
	l.text[0] = '\0';
	assert_int_equal(store_suppress_list(f->s, NULL, "b@x.org", 2, collect, &l), 2);
	assert_string_equal(l.text, "c@x.org import -;d@x.org spamreport fbl;");
	l.text[0] = '\0';
	assert_int_equal(store_suppress_list(f->s, "spamreport", "", 10, collect, &l), 2);
	assert_string_equal(l.text, "d@x.org spamreport fbl;e@x.org spamreport fbl;");

	/* One bad address: nothing of the batch is kept. */
	const char *bad[] = {"f@x.org", ""};
	assert_int_equal(store_suppress_add_bulk(f->s, bad, 2, "import", NULL, 3), -1);
	assert_int_equal(store_suppress_check(f->s, "f@x.org", NULL, 0), 0);

	/* Inside a caller's transaction it joins it, and a rollback undoes it. */
	assert_int_equal(store_begin(f->s), 0);
	assert_int_equal(store_suppress_add_bulk(f->s, bad, 1, "import", NULL, 3), 1);
	assert_int_equal(store_rollback(f->s), 0);
	assert_int_equal(store_suppress_check(f->s, "f@x.org", NULL, 0), 0);
}

struct evs {
	char text[512];
	int n;
};

static void collect_event(void *arg, const struct store_event *e)
{
	struct evs *v = arg;
	size_t n = strlen(v->text);

	snprintf(v->text + n, sizeof v->text - n, "%lld %s %s %s;", (long long)e->at, e->kind,
	         e->route ? e->route : "-", e->text);
	v->n++;
}

static void test_events(void **state)
{
	struct fixture *f = *state;
	struct evs v = {0};

	assert_int_equal(store_event_add(f->s, 10, "day", NULL, "day 1"), 0);
	assert_int_equal(store_event_add(f->s, 20, "pause", "new", "new route paused by x"), 0);
	assert_int_equal(store_event_add(f->s, 30, "resume", "new", "new route resumed by y"), 0);
	assert_int_equal(store_events_recent(f->s, 2, collect_event, &v), 2);
	assert_string_equal(v.text, "30 resume new new route resumed by y;"
	                            "20 pause new new route paused by x;");
}

/* A store made before suppressions existed gains them on open. */
static void test_migrates_version_1(void **state)
{
	struct fixture *f = *state;
	sqlite3 *db;

	store_close(f->s);
	f->s = NULL;
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	/* Back to version 1: drop whatever later steps made, mine and others'. */
	for (;;) {
		sqlite3_stmt *st;
		char sql[300];
		int rc;

		assert_int_equal(
		    sqlite3_prepare_v2(
		        db,
		        "SELECT type, name FROM sqlite_master WHERE name NOT IN"
		        " ('contents', 'units', 'counters', 'engine', 'units_ready',"
		        " 'units_inflight', 'units_done', 'units_content')"
		        " AND name NOT LIKE 'sqlite_%' ORDER BY type = 'table' LIMIT 1",
		        -1, &st, NULL),
		    SQLITE_OK);
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW)
			snprintf(sql, sizeof sql, "DROP %s %s", sqlite3_column_text(st, 0),
			         sqlite3_column_text(st, 1));
		sqlite3_finalize(st);
		if (rc != SQLITE_ROW)
			break;
		assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	}
	/* ... and the columns later steps added to version 1's tables */
	assert_int_equal(sqlite3_exec(db,
	                              "ALTER TABLE contents DROP COLUMN raw;"
	                              "ALTER TABLE contents DROP COLUMN mail_from;"
	                              "ALTER TABLE units DROP COLUMN v3only;"
	                              "ALTER TABLE units DROP COLUMN engaged_at;"
	                              "ALTER TABLE units DROP COLUMN email;",
	                              NULL, NULL, NULL),
	                 SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 1", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	fixture_open(f);
	assert_int_equal(store_suppress_add(f->s, "z@x.org", "manual", NULL, 1), 1);
	assert_int_equal(store_event_add(f->s, 1, "pause", "old", "t"), 0);
}

/* Group unsubscribes: one address, one group; apart from the global list. */
static void test_groups(void **state)
{
	struct fixture *f = *state;
	char reason[32];

	assert_int_equal(store_suppress_group_add(f->s, "Gina@Example.com", 7, "unsub", 5), 1);
	assert_int_equal(store_suppress_group_add(f->s, "gina@example.com", 7, NULL, 6), 0);
	assert_int_equal(store_suppress_group_add(f->s, "gina@example.com", 8, NULL, 6), 1);
	assert_int_equal(store_suppress_group_check(f->s, "GINA@example.com", 7), 1);
	assert_int_equal(store_suppress_group_check(f->s, "gina@example.com", 8), 1);
	assert_int_equal(store_suppress_group_check(f->s, "gina@example.com", 9), 0);
	assert_int_equal(store_suppress_group_check(f->s, "other@example.com", 7), 0);
	/* Not on the global list. */
	assert_int_equal(store_suppress_check(f->s, "gina@example.com", reason, sizeof reason), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_add_check_remove, setup, fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_groups, setup, fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_bulk_list_count, setup, fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_events, setup, fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_migrates_version_1, setup, fixture_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
