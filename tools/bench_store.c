/*
 * bench_store.c -- how fast the durable queue is on this machine, with
 * fsync on: group-commit intake, the dispatch cycle, and a million queued
 * units.
 *
 * usage: bench_store [-d dir] [-n queued] [-s seconds]
 *	-d  where the database files go (default: a new directory in /tmp);
 *	    put it on the disk the daemon will use
 *	-n  units for the large-queue part (default 1000000)
 *	-s  seconds per intake measurement (default 3)
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "scheduler/store.h"

#define NISP  8
#define BATCH 1000

static char dir[256];

/* Seconds on the monotonic clock. */
static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A kB figure (VmRSS, VmHWM) from /proc/self/status. */
static long proc_kb(const char *key)
{
	FILE *fp = fopen("/proc/self/status", "r");
	char line[256];
	long kb = -1;
	size_t n = strlen(key);

	if (!fp)
		return -1;
	while (fgets(line, sizeof line, fp))
		if (strncmp(line, key, n) == 0 && line[n] == ':')
			kb = strtol(line + n + 1, NULL, 10);
	fclose(fp);
	return kb;
}

/* Size of a file in MB, 0 when absent. */
static double file_mb(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? (double)st.st_size / 1048576.0 : 0.0;
}

/* Exits with the store's message. */
static void die(struct store *s, const char *what)
{
	fprintf(stderr, "bench_store: %s: %s\n", what, store_errmsg(s));
	exit(1);
}

/* Opens a fresh database named name in dir, removing an old one. */
static struct store *fresh(const char *name, char *path, size_t len)
{
	const char *suffix[] = {"", "-wal", "-shm"};
	struct store *s;
	char err[512], p[600];

	snprintf(path, len, "%s/%s", dir, name);
	for (int i = 0; i < 3; i++) {
		snprintf(p, sizeof p, "%s%s", path, suffix[i]);
		unlink(p);
	}
	if (store_open(&s, path, err, sizeof err) < 0) {
		fprintf(stderr, "bench_store: %s\n", err);
		exit(1);
	}
	return s;
}

/* Removes a database and its WAL files. */
static void remove_db(const char *path)
{
	const char *suffix[] = {"", "-wal", "-shm"};
	char p[600];

	for (int i = 0; i < 3; i++) {
		snprintf(p, sizeof p, "%s%s", path, suffix[i]);
		unlink(p);
	}
}

static char body[1024];

/* A plausible v3 body without personalizations, about 1 kB. */
static void make_body(void)
{
	int n = snprintf(body, sizeof body,
	                 "{\"from\":{\"email\":\"news@shop.example\"},\"subject\":\"Weekly\","
	                 "\"content\":[{\"type\":\"text/html\",\"value\":\"");
	while (n < (int)sizeof body - 8)
		body[n++] = 'x';
	memcpy(body + n, "\"}]}", 5);
}

/* Adds one content with k units; i numbers the recipients. */
static void add(struct store *s, int64_t i, int k, int64_t at)
{
	int64_t cid;
	char p[160];

	if (store_add_content(s, "bench", body, strlen(body), at, &cid) < 0)
		die(s, "add_content");
	for (int j = 0; j < k; j++, i++) {
		int n = snprintf(p, sizeof p,
		                 "{\"to\":[{\"email\":\"user%" PRId64 "@isp%d.example\"}],"
		                 "\"substitutions\":{\"-name-\":\"User %" PRId64 "\"}}",
		                 i, (int)(i % NISP), i);
		if (store_add_unit(s, cid, p, (size_t)n, (int)(i % NISP), "isp.example", at, NULL) <
		    0)
			die(s, "add_unit");
	}
}

/* (a) Intake: transactions of `per` requests, each one content + one unit. */
static void bench_intake(double secs)
{
	static const int sizes[] = {1, 16, 64, 256};
	char path[512];

	printf("\n(a) intake, one content + one unit per request, fsync per commit\n");
	printf("%-14s %12s %12s %14s\n", "units/commit", "commits/s", "units/s", "ms/commit");
	for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
		struct store *s = fresh("intake.db", path, sizeof path);
		int per = sizes[k];
		int64_t units = 0, commits = 0;
		double t0 = now_s(), t;

		do {
			if (store_begin(s) < 0)
				die(s, "begin");
			for (int j = 0; j < per; j++)
				add(s, units + j, 1, 1);
			if (store_commit(s) < 0)
				die(s, "commit");
			units += per;
			commits++;
		} while ((t = now_s() - t0) < secs);
		printf("%-14d %12.0f %12.0f %14.2f\n", per, (double)commits / t, (double)units / t,
		       1000.0 * t / (double)commits);
		store_close(s);
		remove_db(path);
	}
}

/* One dispatch batch per ISP in turn: ready, inflight, sent, one commit.
 * Returns units handled. */
static int64_t dispatch(struct store *s, int64_t now, double *t_ready)
{
	static struct store_unit u[BATCH];
	int64_t done = 0;

	for (int isp = 0; isp < NISP; isp++) {
		double t0;
		int n;

		if (store_begin(s) < 0)
			die(s, "begin");
		t0 = now_s();
		n = store_ready(s, isp, now, u, BATCH);
		if (t_ready)
			*t_ready += now_s() - t0;
		if (n < 0)
			die(s, "ready");
		for (int i = 0; i < n; i++)
			if (store_mark_inflight(s, u[i].id, 0) < 0)
				die(s, "inflight");
		for (int i = 0; i < n; i++) {
			if (store_mark_sent(s, u[i].id, "sg-0123456789abcdef", now) < 0)
				die(s, "sent");
			store_unit_clear(&u[i]);
		}
		if (store_commit(s) < 0)
			die(s, "commit");
		done += n;
	}
	return done;
}

/* Fills s with n queued units, 10 per content, in 1000-unit commits. */
static double fill(struct store *s, int64_t n)
{
	double t0 = now_s();

	for (int64_t i = 0; i < n;) {
		if (store_begin(s) < 0)
			die(s, "begin");
		for (int j = 0; j < BATCH && i < n; j += 10, i += 10)
			add(s, i, n - i < 10 ? (int)(n - i) : 10, 1 + i / 1000);
		if (store_commit(s) < 0)
			die(s, "commit");
	}
	return now_s() - t0;
}

/* (b) The dispatch cycle on 100k queued units, batches of 1000. */
static void bench_dispatch(void)
{
	char path[512];
	struct store *s = fresh("dispatch.db", path, sizeof path);
	int64_t total = 0, n;
	double t0;

	fill(s, 100000);
	t0 = now_s();
	while ((n = dispatch(s, INT64_MAX - 1, NULL)) > 0)
		total += n;
	t0 = now_s() - t0;
	printf("\n(b) dispatch: store_ready(1000) + mark_inflight + mark_sent, "
	       "one commit per batch\n");
	printf("%" PRId64 " units in %.2f s: %.0f units/s\n", total, t0, (double)total / t0);
	store_close(s);
	remove_db(path);
}

/* Mean milliseconds per repetition since t0. */
static double ms_since(double t0, int reps)
{
	return 1000.0 * (now_s() - t0) / reps;
}

/* (c) A large queue: fill, then the dispatcher's queries. */
static void bench_large(int64_t n)
{
	char path[512], wal[600], err[512];
	struct store *s = fresh("large.db", path, sizeof path);
	static struct store_unit u[BATCH];
	int64_t ready[NISP], earliest, depth[4], per[NISP];
	long rss0 = proc_kb("VmRSS");
	double t_fill, t, t_ready = 0;
	int64_t handled = 0;
	int got = 0;

	t_fill = fill(s, n);
	snprintf(wal, sizeof wal, "%s-wal", path);
	printf("\n(c) %" PRId64 " queued units (%d ISPs, 10 units per content)\n", n, NISP);
	printf("%-44s %10.1f s (%.0f units/s)\n", "fill, 1000-unit commits", t_fill,
	       (double)n / t_fill);
	printf("%-44s %10.1f MB + WAL %.1f MB\n", "database file", file_mb(path), file_mb(wal));
	printf("%-44s %10ld MB (before: %ld MB)\n", "RSS after fill", proc_kb("VmRSS") / 1024,
	       rss0 / 1024);

	/* Ready queries read the head of each ISP's queue; now = middle of the
	 * queue so half the units are due. */
	int64_t mid = 1 + n / 2000;

	t = now_s();
	for (int r = 0; r < 100; r++) {
		got = store_ready(s, 3, mid, u, BATCH);
		for (int i = 0; i < got; i++)
			store_unit_clear(&u[i]);
	}
	printf("%-44s %10.2f ms (%d units)\n", "store_ready(1000), one ISP", ms_since(t, 100), got);
	t = now_s();
	for (int r = 0; r < 100; r++)
		store_ready_isps(s, mid, NISP, ready, 0, &earliest);
	printf("%-44s %10.3f ms\n", "store_ready_isps, 8 ISPs, has-some", ms_since(t, 100));
	t = now_s();
	for (int r = 0; r < 5; r++)
		store_ready_isps(s, mid, NISP, ready, 1, &earliest);
	printf("%-44s %10.1f ms (%" PRId64 " due on ISP 0)\n", "store_ready_isps, 8 ISPs, exact",
	       ms_since(t, 5), ready[0]);
	t = now_s();
	for (int r = 0; r < 5; r++)
		store_depth(s, depth);
	printf("%-44s %10.1f ms\n", "store_depth", ms_since(t, 5));
	t = now_s();
	for (int r = 0; r < 5; r++)
		store_depth_isps(s, NISP, per);
	printf("%-44s %10.1f ms\n", "store_depth_isps, 8 ISPs", ms_since(t, 5));

	/* Dispatch from the big queue: 20 rounds of 8 batches. */
	t = now_s();
	for (int r = 0; r < 20; r++)
		handled += dispatch(s, mid, &t_ready);
	t = now_s() - t;
	printf("%-44s %10.0f units/s (ready %.2f ms/batch)\n", "dispatch cycle on the big queue",
	       (double)handled / t, 1000.0 * t_ready / (20.0 * NISP));

	/* A restart: open, recover, first batch. */
	store_close(s);
	t = now_s();
	if (store_open(&s, path, err, sizeof err) < 0) {
		fprintf(stderr, "bench_store: %s\n", err);
		exit(1);
	}
	if (store_recover(s) < 0)
		die(s, "recover");
	got = store_ready(s, 0, mid, u, BATCH);
	for (int i = 0; i < got; i++)
		store_unit_clear(&u[i]);
	printf("%-44s %10.1f ms\n", "reopen + recover + first store_ready", 1000.0 * (now_s() - t));
	t = now_s();
	int pruned = store_prune(s, INT64_MAX);
	printf("%-44s %10.1f ms (%d units)\n", "store_prune of the sent units",
	       1000.0 * (now_s() - t), pruned);
	printf("%-44s %10ld MB (peak %ld MB)\n", "RSS at end", proc_kb("VmRSS") / 1024,
	       proc_kb("VmHWM") / 1024);
	store_close(s);
	remove_db(path);
}

int main(int argc, char **argv)
{
	int64_t queued = 1000000;
	double secs = 3;
	int c;

	dir[0] = '\0';
	while ((c = getopt(argc, argv, "d:n:s:")) != -1) {
		switch (c) {
		case 'd':
			snprintf(dir, sizeof dir, "%s", optarg);
			break;
		case 'n':
			queued = strtoll(optarg, NULL, 10);
			break;
		case 's':
			secs = strtod(optarg, NULL);
			break;
		default:
			fprintf(stderr, "usage: bench_store [-d dir] [-n queued] [-s seconds]\n");
			return 2;
		}
	}
	if (!dir[0]) {
		snprintf(dir, sizeof dir, "/tmp/bench-store-XXXXXX");
		if (!mkdtemp(dir)) {
			perror("bench_store: mkdtemp");
			return 1;
		}
	}
	make_body();
	printf("bench_store: %s (synchronous=FULL, WAL)\n", dir);
	bench_intake(secs);
	bench_dispatch();
	if (queued > 0)
		bench_large(queued);
	rmdir(dir);
	return 0;
}
