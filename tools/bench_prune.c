/*
 * bench_prune.c -- how big the store gets over a simulated month when
 * [store] keep prunes it: a figure, not a speed.
 *
 * usage: bench_prune [-d dir] [-n per_day] [-D days] [-k keep_days]
 *	-d  where the database goes (default: a new directory in /tmp)
 *	-n  units a day (default 20800, the seed migration's last day)
 *	-D  days simulated (default 30)
 *	-k  keep, in days (default 7; 0 = never prune)
 *
 * Each simulated day takes n units in requests of 10 personalizations
 * sharing one 3 KB body, sends them all that day, records a few events,
 * then prunes what finished more than keep days before, the way the
 * daemon's timer does (steps of 2000 units, incremental vacuum after each).
 * One line a day gives the store's file size (database + WAL); the last
 * line compares the last day with the day keep first applied.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "scheduler/store.h"

#define DAY      (86400LL * 1000000)
#define PER_REQ  10
#define STEP     2000
#define VACUUM   2048

static void die(struct store *s, const char *what)
{
	fprintf(stderr, "bench_prune: %s: %s\n", what, s ? store_errmsg(s) : "");
	exit(1);
}

static long long file_size(const char *path)
{
	char p[1100];
	long long n = 0;
	struct stat st;

	if (stat(path, &st) == 0)
		n += st.st_size;
	snprintf(p, sizeof p, "%s-wal", path);
	if (stat(p, &st) == 0)
		n += st.st_size;
	return n;
}

int main(int argc, char **argv)
{
	char dirbuf[] = "/tmp/warmup-bench-prune.XXXXXX", path[1024], err[512], body[3200];
	const char *dir = NULL;
	int per_day = 20800, days = 30, keep = 7, opt;
	long long at_keep = 0, last = 0;
	struct store *s;
	int64_t *ids;

	while ((opt = getopt(argc, argv, "d:n:D:k:")) != -1) {
		switch (opt) {
		case 'd': dir = optarg; break;
		case 'n': per_day = atoi(optarg); break;
		case 'D': days = atoi(optarg); break;
		case 'k': keep = atoi(optarg); break;
		default:
			fprintf(stderr, "usage: bench_prune [-d dir] [-n per_day] [-D days] [-k keep]\n");
			return 2;
		}
	}
	if (!dir && !(dir = mkdtemp(dirbuf)))
		die(NULL, "mkdtemp");
	snprintf(path, sizeof path, "%s/month.db", dir);
	unlink(path);
	if (store_open(&s, path, err, sizeof err) < 0) {
		fprintf(stderr, "bench_prune: %s\n", err);
		return 1;
	}
	memset(body, 'x', sizeof body);
	memcpy(body, "{\"from\":{\"email\":\"news@example.org\"},\"subject\":\"s\",\"c\":\"", 56);
	memcpy(body + sizeof body - 3, "\"}", 3);
	if (!(ids = calloc((size_t)per_day, sizeof *ids)))
		die(NULL, "calloc");
	for (int day = 0; day < days; day++) {
		int64_t t0 = (int64_t)day * DAY + 1;
		int pruned = 0, n;

		for (int i = 0; i < per_day;) {
			int64_t cid;

			if (store_begin(s) < 0 ||
			    store_add_content(s, "bench-msgid", body, strlen(body), t0, &cid) < 0)
				die(s, "content");
			for (int k = 0; k < PER_REQ && i < per_day; k++, i++) {
				char p[128];
				int len = snprintf(p, sizeof p,
				                   "{\"to\":[{\"email\":\"u%d.%d@example.com\"}]}", day,
				                   i);

				if (store_add_unit(s, cid, p, (size_t)len, i % 5, "example.com", t0,
				                   &ids[i]) < 0)
					die(s, "unit");
			}
			if (store_commit(s) < 0)
				die(s, "commit");
		}
		for (int i = 0; i < per_day; i += 1000) {
			if (store_begin(s) < 0)
				die(s, "begin");
			for (int k = i; k < i + 1000 && k < per_day; k++)
				if (store_mark_inflight(s, ids[k], 0) < 0 ||
				    store_mark_sent(s, ids[k], "sg-provider-id", t0 + DAY / 2) < 0)
					die(s, "sent");
			if (store_commit(s) < 0)
				die(s, "commit");
		}
		for (int e = 0; e < 24; e++)
			if (store_event_add(s, t0 + e * (DAY / 24), "day", "new", "bench event") < 0)
				die(s, "event");
		if (keep > 0) {
			int64_t before = (int64_t)(day + 1) * DAY - (int64_t)keep * DAY;

			do {
				if (store_begin(s) < 0 ||
				    (n = store_prune_some(s, before, STEP)) < 0 ||
				    store_events_prune(s, before, STEP) < 0 || store_commit(s) < 0 ||
				    store_vacuum_step(s, VACUUM) < 0)
					die(s, "prune");
				pruned += n;
			} while (n == STEP);
		}
		last = file_size(path);
		if (day + 1 == keep + 1)
			at_keep = last;
		printf("store_month: day %2d: %d units sent, %d pruned, store %.1f MB\n", day + 1,
		       per_day, pruned, last / 1e6);
		fflush(stdout);
	}
	printf("store_month: %d units a day for %d days, keep %d d: %.1f MB after day %d, "
	       "%.1f MB after day %d\n",
	       per_day, days, keep, at_keep / 1e6, keep + 1, last / 1e6, days);
	store_close(s);
	free(ids);
	return 0;
}
