/*
 * test_store.c -- the durable queue against a real SQLite file, one fresh
 * temporary directory per test, including a child that dies without closing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "scheduler/store.h"
#include "store_fixture.h"

/* Makes a fresh directory and opens a store in it. */
static int setup(void **state)
{
	return fixture_setup(state, "/tmp/wu-store-XXXXXX");
}

/* Closes and reopens the fixture's store. */
static void reopen(struct fixture *f)
{
	store_close(f->s);
	f->s = NULL;
	fixture_open(f);
}

/* Adds one content with n units of isp, all ready at `at`; ids into uid. */
static int64_t add(struct store *s, int n, int isp, int64_t at, int64_t *uid)
{
	const char body[] = "{\"from\":{\"email\":\"a@example.com\"},\"subject\":\"hi\"}";
	int64_t cid;

	assert_int_equal(store_add_content(s, "msg-1", body, strlen(body), at, &cid), 0);
	for (int i = 0; i < n; i++) {
		char p[128];
		int64_t id;

		snprintf(p, sizeof p, "{\"to\":[{\"email\":\"u%d@example.com\"}]}", i);
		assert_int_equal(store_add_unit(s, cid, p, strlen(p), isp, "example.com", at, &id),
		                 0);
		if (uid)
			uid[i] = id;
	}
	return cid;
}

/* The state of one unit, or -1 when it is gone. */
static int state_of(struct store *s, int64_t id)
{
	int st = -1;
	int rc = store_unit_get(s, id, NULL, &st, NULL, NULL);

	assert_true(rc >= 0);
	return rc == 1 ? st : -1;
}

/* Reads PRAGMA user_version straight from the file header (offset 60),
 * so the test does not need SQLite itself. */
static int file_user_version(const char *path)
{
	unsigned char h[64];
	FILE *fp = fopen(path, "rb");

	assert_non_null(fp);
	assert_int_equal(fread(h, 1, sizeof h, fp), sizeof h);
	fclose(fp);
	return (h[60] << 24) | (h[61] << 16) | (h[62] << 8) | h[63];
}

static void test_open_creates_schema(void **state)
{
	struct fixture *f = *state;
	int64_t depth[4] = {-1, -1, -1, -1};
	struct stat st;

	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(store_depth(f->s, depth), 0);
	for (int i = 0; i < 4; i++)
		assert_int_equal(depth[i], 0);
	/* The header is only written at the first checkpoint; close to get one. */
	store_close(f->s);
	f->s = NULL;
	/* The latest step, whichever it is; reopening changes nothing. */
	int v = file_user_version(f->path);
	assert_true(v >= 2);
	reopen(f);
	assert_int_equal(file_user_version(f->path), v);
}

static void test_reopen_keeps_data(void **state)
{
	struct fixture *f = *state;
	struct store_unit u[4];
	int64_t ids[3];
	char *body = NULL;
	char msgid[32];
	size_t len;
	int64_t cid;

	cid = add(f->s, 3, 2, 100, ids);
	reopen(f);
	assert_int_equal(store_ready(f->s, 2, 100, u, 4), 3);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(u[i].id, ids[i]);
		assert_int_equal(u[i].content_id, cid);
		store_unit_clear(&u[i]);
	}
	assert_int_equal(store_content(f->s, cid, &body, &len, msgid, sizeof msgid), 0);
	assert_string_equal(msgid, "msg-1");
	assert_int_equal(len, strlen(body));
	assert_non_null(strstr(body, "\"subject\":\"hi\""));
	free(body);
}

static void test_transaction_and_ready_order(void **state)
{
	struct fixture *f = *state;
	struct store_unit u[10];
	int64_t a[2], b[2], c[2], d[1];

	assert_int_equal(store_begin(f->s), 0);
	add(f->s, 2, 0, 300, a);
	add(f->s, 2, 0, 100, b);
	add(f->s, 2, 1, 50, c);  /* another ISP */
	add(f->s, 1, 0, 900, d); /* not due yet */
	assert_int_equal(store_commit(f->s), 0);

	assert_int_equal(store_ready(f->s, 0, 500, u, 10), 4);
	/* Oldest due first: b (100) before a (300); ties in insertion order. */
	assert_int_equal(u[0].id, b[0]);
	assert_int_equal(u[1].id, b[1]);
	assert_int_equal(u[2].id, a[0]);
	assert_int_equal(u[3].id, a[1]);
	assert_int_equal(u[0].next_at, 100);
	assert_int_equal(u[0].isp, 0);
	assert_int_equal(u[0].attempts, 0);
	assert_string_equal(u[0].personalization, "{\"to\":[{\"email\":\"u0@example.com\"}]}");
	for (int i = 0; i < 4; i++)
		store_unit_clear(&u[i]);

	/* LIMIT */
	assert_int_equal(store_ready(f->s, 0, 500, u, 1), 1);
	assert_int_equal(u[0].id, b[0]);
	store_unit_clear(&u[0]);

	assert_int_equal(store_ready(f->s, 1, 500, u, 10), 2);
	assert_int_equal(u[0].id, c[0]);
	store_unit_clear(&u[0]);
	store_unit_clear(&u[1]);
	assert_int_equal(store_ready(f->s, 3, 500, u, 10), 0);
	assert_int_equal(store_ready(f->s, 0, 99, u, 10), 0);
	assert_int_equal(store_ready(f->s, 0, 1000, u, 10), 5);
	for (int i = 0; i < 5; i++)
		store_unit_clear(&u[i]);

	int64_t ready[3], earliest;

	assert_int_equal(store_ready_isps(f->s, 500, 3, ready, 1, &earliest), 0);
	assert_int_equal(ready[0], 4);
	assert_int_equal(ready[1], 2);
	assert_int_equal(ready[2], 0);
	assert_int_equal(earliest, 900);
	assert_int_equal(store_ready_isps(f->s, 500, 3, ready, 0, &earliest), 0);
	assert_int_equal(ready[0], 1);
	assert_int_equal(ready[1], 1);
	assert_int_equal(ready[2], 0);
	assert_int_equal(store_ready_isps(f->s, 1000, 3, ready, 1, &earliest), 0);
	assert_int_equal(ready[0], 5);
	assert_int_equal(earliest, INT64_MAX);
}

static void test_inflight_recover(void **state)
{
	struct fixture *f = *state;
	struct store_unit u[4];
	int64_t ids[3], depth[4];

	add(f->s, 3, 0, 10, ids);
	assert_int_equal(store_mark_inflight(f->s, ids[0], 0), 0);
	assert_int_equal(store_mark_inflight(f->s, ids[1], 1), 0);
	/* A unit cannot be handed out twice. */
	assert_int_equal(store_mark_inflight(f->s, ids[0], 0), -1);
	assert_non_null(strstr(store_errmsg(f->s), "not found or not queued"));
	assert_int_equal(store_ready(f->s, 0, 10, u, 4), 1);
	assert_int_equal(u[0].id, ids[2]);
	store_unit_clear(&u[0]);
	assert_int_equal(store_depth(f->s, depth), 0);
	assert_int_equal(depth[STORE_QUEUED], 1);
	assert_int_equal(depth[STORE_INFLIGHT], 2);

	reopen(f); /* as after a crash */
	assert_int_equal(store_recover(f->s), 2);
	assert_int_equal(store_recover(f->s), 0);
	assert_int_equal(store_ready(f->s, 0, 10, u, 4), 3);
	/* The attempt was counted. */
	assert_int_equal(u[0].id, ids[0]);
	assert_int_equal(u[0].attempts, 1);
	assert_int_equal(u[2].attempts, 0);
	for (int i = 0; i < 3; i++)
		store_unit_clear(&u[i]);
}

static void test_sent_failed_requeue(void **state)
{
	struct fixture *f = *state;
	struct store_unit u[4];
	int64_t ids[3], ready[1], earliest, depth[4];
	char *pid = NULL, *err = NULL;

	add(f->s, 3, 0, 10, ids);
	for (int i = 0; i < 3; i++)
		assert_int_equal(store_mark_inflight(f->s, ids[i], 0), 0);
	assert_int_equal(store_mark_sent(f->s, ids[0], "sg-abc", 20), 0);
	assert_int_equal(store_mark_failed(f->s, ids[1], "550 no such user", 20), 0);
	assert_int_equal(store_requeue(f->s, ids[2], 5000, "421 try later"), 0);
	/* Finished units stay finished. */
	assert_int_equal(store_mark_sent(f->s, ids[1], "x", 30), -1);
	assert_int_equal(store_requeue(f->s, ids[0], 40, NULL), -1);
	assert_int_equal(store_mark_failed(f->s, 424242, "x", 30), -1);
	assert_non_null(strstr(store_errmsg(f->s), "424242"));

	assert_int_equal(state_of(f->s, ids[0]), STORE_SENT);
	assert_int_equal(state_of(f->s, ids[1]), STORE_FAILED);
	assert_int_equal(state_of(f->s, ids[2]), STORE_QUEUED);
	assert_int_equal(store_unit_get(f->s, ids[0], NULL, NULL, &pid, &err), 1);
	assert_string_equal(pid, "sg-abc");
	assert_null(err);
	free(pid);
	assert_int_equal(store_unit_get(f->s, ids[1], NULL, NULL, &pid, &err), 1);
	assert_null(pid);
	assert_string_equal(err, "550 no such user");
	free(err);
	assert_int_equal(store_unit_get(f->s, 999999, NULL, NULL, NULL, NULL), 0);

	/* Not ready before its time; the earliest time is reported. */
	assert_int_equal(store_ready(f->s, 0, 4999, u, 4), 0);
	assert_int_equal(store_ready_isps(f->s, 4999, 1, ready, 1, &earliest), 0);
	assert_int_equal(ready[0], 0);
	assert_int_equal(earliest, 5000);
	assert_int_equal(store_ready(f->s, 0, 5000, u, 4), 1);
	assert_int_equal(u[0].id, ids[2]);
	assert_int_equal(u[0].next_at, 5000);
	assert_int_equal(u[0].attempts, 1);
	store_unit_clear(&u[0]);

	assert_int_equal(store_depth(f->s, depth), 0);
	assert_int_equal(depth[STORE_QUEUED], 1);
	assert_int_equal(depth[STORE_INFLIGHT], 0);
	assert_int_equal(depth[STORE_SENT], 1);
	assert_int_equal(depth[STORE_FAILED], 1);
}

struct seen {
	int rows;
	int64_t total;
	int64_t n[2][3][2];
};

static void on_counter(void *arg, int route, int isp, int result, int64_t n)
{
	struct seen *s = arg;

	s->rows++;
	s->total += n;
	if (route >= 0 && route < 2 && isp >= 0 && isp < 3 && result >= 0 && result < 2)
		s->n[route][isp][result] = n;
}

static void test_counters(void **state)
{
	struct fixture *f = *state;
	struct seen a = {0}, b = {0}, c = {0};

	assert_int_equal(store_count(f->s, 20240501, 0, 1, 0, 5), 0);
	assert_int_equal(store_count(f->s, 20240501, 0, 1, 0, 7), 0);
	assert_int_equal(store_begin(f->s), 0);
	assert_int_equal(store_count(f->s, 20240501, 0, 1, 0, 1), 0);
	assert_int_equal(store_count(f->s, 20240501, 1, 2, 1, 3), 0);
	assert_int_equal(store_commit(f->s), 0);
	assert_int_equal(store_count(f->s, 20240502, 0, 1, 0, 100), 0);

	assert_int_equal(store_counters(f->s, 20240501, on_counter, &a), 0);
	assert_int_equal(a.rows, 2);
	assert_int_equal(a.n[0][1][0], 13);
	assert_int_equal(a.n[1][2][1], 3);
	assert_int_equal(a.total, 16);
	reopen(f);
	assert_int_equal(store_counters(f->s, 20240502, on_counter, &b), 0);
	assert_int_equal(b.rows, 1);
	assert_int_equal(b.n[0][1][0], 100);
	assert_int_equal(store_counters(f->s, 20240503, on_counter, &c), 0);
	assert_int_equal(c.rows, 0);
}

static void test_engine_state(void **state)
{
	struct fixture *f = *state;
	char *text = (char *)"sentinel";

	assert_int_equal(store_engine_load(f->s, &text), 0);
	assert_null(text);
	assert_int_equal(store_engine_save(f->s, "{\"day\":3,\"used\":[1,2]}"), 0);
	assert_int_equal(store_engine_save(f->s, "{\"day\":4,\"used\":[5]}"), 0);
	reopen(f);
	assert_int_equal(store_engine_load(f->s, &text), 0);
	assert_string_equal(text, "{\"day\":4,\"used\":[5]}");
	free(text);
	assert_int_equal(store_engine_save(f->s, NULL), 0);
	assert_int_equal(store_engine_load(f->s, &text), 0);
	assert_null(text);
}

static void test_rollback_discards(void **state)
{
	struct fixture *f = *state;
	struct store_unit u[4];
	int64_t keep[1], gone[2], depth[4];
	char *text = NULL;

	add(f->s, 1, 0, 10, keep);
	assert_int_equal(store_begin(f->s), 0);
	add(f->s, 2, 0, 10, gone);
	assert_int_equal(store_mark_inflight(f->s, keep[0], 0), 0);
	assert_int_equal(store_count(f->s, 1, 0, 0, 0, 9), 0);
	assert_int_equal(store_engine_save(f->s, "x"), 0);
	assert_int_equal(store_rollback(f->s), 0);
	/* Rolling back with nothing open is harmless. */
	assert_int_equal(store_rollback(f->s), 0);

	assert_int_equal(store_ready(f->s, 0, 10, u, 4), 1);
	assert_int_equal(u[0].id, keep[0]);
	store_unit_clear(&u[0]);
	assert_int_equal(state_of(f->s, gone[0]), -1);
	assert_int_equal(store_depth(f->s, depth), 0);
	assert_int_equal(depth[STORE_QUEUED], 1);
	assert_int_equal(depth[STORE_INFLIGHT], 0);
	assert_int_equal(store_engine_load(f->s, &text), 0);
	assert_null(text);

	/* A failure inside a transaction, then rollback: the batch is gone. */
	assert_int_equal(store_begin(f->s), 0);
	add(f->s, 1, 0, 10, gone);
	assert_int_equal(store_add_unit(f->s, 987654, "{}", 2, 0, "x", 10, NULL), -1);
	assert_non_null(strstr(store_errmsg(f->s), "FOREIGN KEY"));
	assert_int_equal(store_rollback(f->s), 0);
	assert_int_equal(state_of(f->s, gone[0]), -1);
}

static void test_depth(void **state)
{
	struct fixture *f = *state;
	int64_t ids[4], depth[4], per[4];

	assert_int_equal(store_begin(f->s), 0);
	add(f->s, 4, 0, 10, ids);
	add(f->s, 3, 1, 10, NULL);
	add(f->s, 2, 3, 99999, NULL); /* deferred units still count as queued */
	assert_int_equal(store_commit(f->s), 0);
	assert_int_equal(store_mark_inflight(f->s, ids[0], 0), 0);
	assert_int_equal(store_mark_inflight(f->s, ids[1], 0), 0);
	assert_int_equal(store_mark_sent(f->s, ids[1], NULL, 11), 0);
	assert_int_equal(store_mark_failed(f->s, ids[2], "bad", 11), 0);

	assert_int_equal(store_depth(f->s, depth), 0);
	assert_int_equal(depth[STORE_QUEUED], 6);
	assert_int_equal(depth[STORE_INFLIGHT], 1);
	assert_int_equal(depth[STORE_SENT], 1);
	assert_int_equal(depth[STORE_FAILED], 1);
	assert_int_equal(store_depth_isps(f->s, 4, per), 0);
	assert_int_equal(per[0], 1);
	assert_int_equal(per[1], 3);
	assert_int_equal(per[2], 0);
	assert_int_equal(per[3], 2);
}

static void test_prune(void **state)
{
	struct fixture *f = *state;
	int64_t a[2], b[2], depth[4];
	int64_t ca, cb;
	char *body = NULL;

	ca = add(f->s, 2, 0, 10, a); /* both finish early */
	cb = add(f->s, 2, 0, 10, b); /* one finishes early, one stays queued */
	assert_int_equal(store_mark_sent(f->s, a[0], "p", 100), 0);
	assert_int_equal(store_mark_failed(f->s, a[1], "e", 100), 0);
	assert_int_equal(store_mark_sent(f->s, b[0], "p", 100), 0);

	/* Nothing finished before 100. */
	assert_int_equal(store_prune(f->s, 100), 0);
	assert_int_equal(store_prune(f->s, 101), 3);
	assert_int_equal(store_depth(f->s, depth), 0);
	assert_int_equal(depth[STORE_QUEUED], 1);
	assert_int_equal(depth[STORE_SENT], 0);
	assert_int_equal(depth[STORE_FAILED], 0);
	assert_int_equal(state_of(f->s, b[1]), STORE_QUEUED);
	/* a's content is orphaned and gone; b's is still needed. */
	assert_int_equal(store_content(f->s, ca, &body, NULL, NULL, 0), -1);
	assert_null(body);
	assert_non_null(strstr(store_errmsg(f->s), "not found"));
	assert_int_equal(store_content(f->s, cb, &body, NULL, NULL, 0), 0);
	free(body);

	/* Inside a transaction prune uses a savepoint, not a transaction. */
	assert_int_equal(store_mark_sent(f->s, b[1], "p", 200), 0);
	assert_int_equal(store_begin(f->s), 0);
	assert_int_equal(store_prune(f->s, 201), 1);
	assert_int_equal(store_rollback(f->s), 0);
	assert_int_equal(state_of(f->s, b[1]), STORE_SENT);
	assert_int_equal(store_prune(f->s, 201), 1);
	assert_int_equal(store_content(f->s, cb, &body, NULL, NULL, 0), -1);
}

/* Pruning in steps, with the clock moved forward: at most limit units a
 * step, old events too, and the file's free pages given back. */
static void test_prune_steps(void **state)
{
	struct fixture *f = *state;
	int64_t u[10], depth[4], cid, day = 86400LL * 1000000;
	char *body = NULL;

	cid = add(f->s, 10, 0, 10, u);
	for (int i = 0; i < 10; i++)
		assert_int_equal(store_mark_sent(f->s, u[i], "p", 100 + i), 0);
	for (int i = 0; i < 5; i++)
		assert_int_equal(store_event_add(f->s, i * day, "day", NULL, "new day"), 0);
	/* keep = 7 days at "now" = 7 days + 104: units finished before 104 go. */
	assert_int_equal(store_prune_some(f->s, 104, 3), 3);
	assert_int_equal(store_prune_some(f->s, 104, 3), 1);
	assert_int_equal(store_prune_some(f->s, 104, 3), 0);
	assert_int_equal(store_depth(f->s, depth), 0);
	assert_int_equal(depth[STORE_SENT], 6);
	/* Moved on: the rest go, then their content. */
	assert_int_equal(store_prune_some(f->s, 10 * day, 100), 6);
	assert_int_equal(store_content(f->s, cid, &body, NULL, NULL, 0), -1);
	assert_null(body);
	/* Events before day 3: three of five, two at a time. */
	assert_int_equal(store_events_prune(f->s, 3 * day, 2), 2);
	assert_int_equal(store_events_prune(f->s, 3 * day, 2), 1);
	assert_int_equal(store_events_prune(f->s, 3 * day, 2), 0);
	assert_int_equal(store_vacuum_step(f->s, 100), 0);
}

static void test_errors(void **state)
{
	struct fixture *f = *state;
	struct store *s = (struct store *)0x1;
	char err[256] = "";
	char small[4];
	char *body = NULL;
	int64_t cid;

	assert_int_equal(store_open(&s, "/nonexistent-wu-dir/sub/queue.db", err, sizeof err), -1);
	assert_null(s);
	assert_non_null(strstr(err, "/nonexistent-wu-dir/sub/queue.db"));
	assert_non_null(strstr(err, "unable to open"));
	store_close(NULL);
	store_unit_clear(NULL);

	/* A message id that does not fit is an error, not a cut id. */
	assert_int_equal(store_add_content(f->s, "a-long-message-id", "{}", 2, 1, &cid), 0);
	assert_int_equal(store_content(f->s, cid, &body, NULL, small, sizeof small), -1);
	assert_null(body);
	assert_non_null(strstr(store_errmsg(f->s), "too small"));
	/* The message is sticky: a success does not clear it. */
	assert_int_equal(store_content(f->s, cid, &body, NULL, NULL, 0), 0);
	free(body);
	assert_non_null(strstr(store_errmsg(f->s), "too small"));

	/* A file that is not a database is refused, naming the path. */
	char path[160];
	FILE *fp;

	snprintf(path, sizeof path, "%s/junk.db", f->dir);
	fp = fopen(path, "w");
	assert_non_null(fp);
	for (int i = 0; i < 64; i++)
		fputs("this is not a database but a text file. ", fp);
	fclose(fp);
	assert_int_equal(store_open(&s, path, err, sizeof err), -1);
	assert_null(s);
	assert_non_null(strstr(err, path));
	unlink(path);
}

/* One process at a time: a second open of the same store, even from this
 * process, is refused naming the store and the owner's pid, until the first
 * is closed.  Its files are private (0600) whatever the umask. */
static void test_one_owner_private_files(void **state)
{
	struct fixture *f = *state;
	struct store *s2 = (struct store *)0x1;
	char err[512] = "", pid[32], p[160];
	const char *suffix[] = {"", "-wal", "-shm", ".lock"};
	struct stat st;
	mode_t old;
	int64_t cid;

	assert_int_equal(store_open(&s2, f->path, err, sizeof err), -1);
	assert_null(s2);
	assert_non_null(strstr(err, f->path));
	assert_non_null(strstr(err, "in use by another process"));
	snprintf(pid, sizeof pid, "pid %ld", (long)getpid());
	assert_non_null(strstr(err, pid));

	/* created again under umask 022: still 0600, -wal and -shm as well */
	store_close(f->s);
	f->s = NULL;
	for (size_t i = 0; i < sizeof suffix / sizeof suffix[0]; i++) {
		snprintf(p, sizeof p, "%s%s", f->path, suffix[i]);
		unlink(p);
	}
	old = umask(022);
	fixture_open(f);
	assert_int_equal(store_begin(f->s), 0);
	assert_int_equal(store_add_content(f->s, "m", "{}", 2, 1, &cid), 0);
	assert_int_equal(store_commit(f->s), 0);
	umask(old);
	for (size_t i = 0; i < sizeof suffix / sizeof suffix[0]; i++) {
		snprintf(p, sizeof p, "%s%s", f->path, suffix[i]);
		assert_int_equal(stat(p, &st), 0);
		assert_int_equal(st.st_mode & 0777, 0600);
	}
}

/* A message taken over SMTP keeps its bytes, NULs and bare CRs included,
 * and its envelope sender; a JSON content has no raw form. */
static void test_raw_content(void **state)
{
	struct fixture *f = *state;
	static const char raw[] = "From: a@x.jp\r\nSubject: \x1b$B$3\x1b(B\r\n\r\nx\0y\rz\r\n";
	char *r, *from, *body;
	size_t rlen, blen;
	int64_t cid, jid;

	assert_int_equal(store_begin(f->s), 0);
	assert_int_equal(store_add_raw_content(f->s, "m1", "{\"subject\":\"s\"}", 15, raw,
	                                       sizeof raw - 1, "", 5, &cid),
	                 0);
	assert_int_equal(store_add_content(f->s, "m2", "{}", 2, 5, &jid), 0);
	assert_int_equal(store_commit(f->s), 0);
	assert_int_equal(store_content_raw(f->s, cid, &r, &rlen, &from), 0);
	assert_int_equal(rlen, sizeof raw - 1);
	assert_memory_equal(r, raw, rlen);
	assert_string_equal(from, "");
	free(r);
	free(from);
	assert_int_equal(store_content(f->s, cid, &body, &blen, NULL, 0), 0);
	assert_string_equal(body, "{\"subject\":\"s\"}");
	free(body);
	assert_int_equal(store_content_raw(f->s, jid, &r, &rlen, &from), 0);
	assert_null(r);
	assert_null(from);
	assert_int_equal(store_content_raw(f->s, 999, &r, &rlen, &from), -1);
}

static void test_newer_schema_refused(void **state)
{
	struct fixture *f = *state;
	unsigned char v99[4] = {0, 0, 0, 99};
	char err[256] = "";
	FILE *fp;

	/* Closing the last connection checkpoints, so the header is current. */
	store_close(f->s);
	f->s = NULL;
	fp = fopen(f->path, "r+b");
	assert_non_null(fp);
	assert_int_equal(fseek(fp, 60, SEEK_SET), 0);
	assert_int_equal(fwrite(v99, 1, 4, fp), 4);
	fclose(fp);
	assert_int_equal(store_open(&f->s, f->path, err, sizeof err), -1);
	assert_null(f->s);
	assert_non_null(strstr(err, "schema version 99 is newer"));
	assert_non_null(strstr(err, f->path));
}

/* The child: commit a batch, leave another transaction open, die. */
static void crash_child(const char *path, int how)
{
	struct store *s;
	char err[256];
	int64_t cid;

	if (store_open(&s, path, err, sizeof err) < 0)
		_exit(10);
	if (store_begin(s) < 0 || store_add_content(s, "c1", "{}", 2, 5, &cid) < 0)
		_exit(11);
	for (int i = 0; i < 100; i++)
		if (store_add_unit(s, cid, "{\"to\":[]}", 9, i % 3, "x.example", 5, NULL) < 0)
			_exit(12);
	if (store_commit(s) < 0)
		_exit(13);
	if (store_mark_inflight(s, 1, 0) < 0 || store_count(s, 7, 0, 0, 0, 1) < 0)
		_exit(14);
	/* Uncommitted: must vanish. */
	if (store_begin(s) < 0 || store_add_content(s, "c2", "{}", 2, 5, &cid) < 0)
		_exit(15);
	for (int i = 0; i < 50; i++)
		if (store_add_unit(s, cid, "{}", 2, 0, "y.example", 5, NULL) < 0)
			_exit(16);
	if (store_count(s, 7, 0, 0, 0, 1000) < 0)
		_exit(17);
	if (how == 0)
		_exit(0);
	kill(getpid(), SIGKILL);
	_exit(18);
}

static void on_total(void *arg, int route, int isp, int result, int64_t n)
{
	(void)route;
	(void)isp;
	(void)result;
	*(int64_t *)arg += n;
}

static void crash_and_check(struct fixture *f, int how)
{
	int64_t depth[4], total = 0;
	int status;
	pid_t pid;

	store_close(f->s);
	f->s = NULL;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		crash_child(f->path, how);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (how == 0) {
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	} else {
		assert_true(WIFSIGNALED(status));
		assert_int_equal(WTERMSIG(status), SIGKILL);
	}
	reopen(f);
	assert_int_equal(store_depth(f->s, depth), 0);
	assert_int_equal(depth[STORE_QUEUED], 99);
	assert_int_equal(depth[STORE_INFLIGHT], 1);
	assert_int_equal(store_recover(f->s), 1);
	assert_int_equal(store_depth(f->s, depth), 0);
	assert_int_equal(depth[STORE_QUEUED], 100);
	assert_int_equal(store_counters(f->s, 7, on_total, &total), 0);
	assert_int_equal(total, 1);
}

static void test_crash_exit(void **state)
{
	crash_and_check(*state, 0);
}

static void test_crash_kill9(void **state)
{
	crash_and_check(*state, 1);
}

/* A worker thread syncing over and over while the test commits. */
/* Calls fn on the store from another thread until told to stop. */
struct syncer {
	struct store *s;
	int (*fn)(struct store *);
	atomic_int stop;
	int calls, failures;
};

static void *sync_loop(void *arg)
{
	struct syncer *y = arg;

	while (!y->stop) {
		if (y->fn(y->s) < 0)
			y->failures++;
		y->calls++;
	}
	return NULL;
}

/* Deferred durability: commits go on while another thread syncs, every
 * commit is there after a reopen, and a store not set up for it refuses
 * store_sync rather than pretend. */
static void test_deferred_sync(void **state)
{
	struct fixture *f = *state;
	struct syncer y = {.s = f->s, .fn = store_sync};
	int64_t depth[4];
	pthread_t t;

	errno = 0;
	assert_int_equal(store_sync(f->s), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(store_defer_sync(f->s), 0);
	assert_int_equal(store_sync(f->s), 0);
	assert_int_equal(pthread_create(&t, NULL, sync_loop, &y), 0);
	for (int i = 0; i < 200; i++) {
		assert_int_equal(store_begin(f->s), 0);
		add(f->s, 5, 1, 1000 + i, NULL);
		assert_int_equal(store_commit(f->s), 0);
		if (i % 50 == 0)
			assert_int_equal(store_sync_now(f->s), 0);
	}
	y.stop = 1;
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_true(y.calls > 0);
	assert_int_equal(y.failures, 0);
	assert_int_equal(store_sync(f->s), 0);
	reopen(f);
	assert_int_equal(store_depth(f->s, depth), 0);
	assert_int_equal(depth[STORE_QUEUED], 1000);
}

/* Commits one content of about 12 kB (three pages and more). */
static void add_big(struct store *s, int i)
{
	static char body[12288];
	int64_t cid, id;
	char msgid[32];

	memset(body, 'x', sizeof body - 1);
	snprintf(msgid, sizeof msgid, "big-%d", i);
	assert_int_equal(store_begin(s), 0);
	assert_int_equal(store_add_content(s, msgid, body, sizeof body - 1, 1000 + i, &cid), 0);
	assert_int_equal(store_add_unit(s, cid, "{}", 2, 1, "example.com", 1000 + i, &id), 0);
	assert_int_equal(store_commit(s), 0);
}

static off_t wal_size(const struct fixture *f)
{
	char p[160];
	struct stat st;

	snprintf(p, sizeof p, "%s-wal", f->path);
	return stat(p, &st) == 0 ? st.st_size : -1;
}

/* Deferred checkpoints: commits no longer checkpoint (the WAL grows past
 * SQLite's 1000 pages) until store_checkpoint_due says one is due, aside
 * and then here; checkpoints on another thread go beside the commits
 * without a failure; once one has copied everything the WAL starts over;
 * and every commit is there after a reopen. */
static void test_deferred_checkpoint(void **state)
{
	struct fixture *f = *state;
	struct syncer c = {.s = f->s, .fn = store_checkpoint};
	int64_t depth[4];
	pthread_t t;
	int i, n = 0;

	assert_int_equal(store_defer_sync(f->s), 0);
	for (i = 0; i < 2000 && store_checkpoint_due(f->s) == STORE_CKPT_NONE; i++)
		add_big(f->s, n++);
	assert_int_equal(store_checkpoint_due(f->s), STORE_CKPT_ASIDE);
	assert_true(wal_size(f) > 1000 * 4096); /* no checkpoint restarted it */
	for (i = 0; i < 2000 && store_checkpoint_due(f->s) == STORE_CKPT_ASIDE; i++)
		add_big(f->s, n++);
	assert_int_equal(store_checkpoint_due(f->s), STORE_CKPT_HERE);
	assert_true(wal_size(f) > 4000 * 4096);
	/* Here: everything copied, the next commit starts the WAL over. */
	assert_int_equal(store_checkpoint_here(f->s), 0);
	add_big(f->s, n++);
	assert_int_equal(store_checkpoint_due(f->s), STORE_CKPT_NONE);
	/* Aside, beside the commits. */
	assert_int_equal(pthread_create(&t, NULL, sync_loop, &c), 0);
	for (i = 0; i < 300; i++)
		add_big(f->s, n++);
	c.stop = 1;
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_true(c.calls > 0);
	assert_int_equal(c.failures, 0);
	/* Copied to the end: the next commits start the WAL over, short. */
	assert_int_equal(store_checkpoint(f->s), 0);
	for (i = 0; i < 5; i++) {
		add_big(f->s, n++);
		assert_int_equal(store_checkpoint_due(f->s), STORE_CKPT_NONE);
	}
	assert_int_equal(store_sync(f->s), 0);
	reopen(f);
	assert_int_equal(store_depth(f->s, depth), 0);
	assert_int_equal(depth[STORE_QUEUED], n);
}

/* Engagements older than the cut are forgotten, oldest first, a step at a
 * time; a newer note of the same address keeps it. */
static void test_engaged_prune(void **state)
{
	struct fixture *f = *state;
	int64_t at;

	assert_int_equal(store_engaged_note(f->s, "old@example.com", 100), 0);
	assert_int_equal(store_engaged_note(f->s, "older@example.com", 50), 0);
	assert_int_equal(store_engaged_note(f->s, "new@example.com", 1000), 0);
	assert_int_equal(store_engaged_note(f->s, "back@example.com", 10), 0);
	assert_int_equal(store_engaged_note(f->s, "back@example.com", 900), 0);
	assert_int_equal(store_engaged_prune(f->s, 500, 1), 1);
	assert_int_equal(store_engaged_get(f->s, "older@example.com", &at), 0);
	assert_int_equal(at, 0); /* the oldest went first */
	assert_int_equal(store_engaged_get(f->s, "old@example.com", &at), 0);
	assert_int_equal(at, 100);
	assert_int_equal(store_engaged_prune(f->s, 500, 10), 1);
	assert_int_equal(store_engaged_prune(f->s, 500, 10), 0);
	assert_int_equal(store_engaged_get(f->s, "old@example.com", &at), 0);
	assert_int_equal(at, 0);
	assert_int_equal(store_engaged_get(f->s, "back@example.com", &at), 0);
	assert_int_equal(at, 900);
	assert_int_equal(store_engaged_get(f->s, "new@example.com", &at), 0);
	assert_int_equal(at, 1000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_open_creates_schema, setup, fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_prune_steps, setup, fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_reopen_keeps_data, setup, fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_one_owner_private_files, setup, fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_raw_content, setup, fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_transaction_and_ready_order, setup,
	                                    fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_inflight_recover, setup, fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_sent_failed_requeue, setup, fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_counters, setup, fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_engine_state, setup, fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_rollback_discards, setup, fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_depth, setup, fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_prune, setup, fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_errors, setup, fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_newer_schema_refused, setup, fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_crash_exit, setup, fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_crash_kill9, setup, fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_deferred_sync, setup, fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_deferred_checkpoint, setup, fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_engaged_prune, setup, fixture_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
