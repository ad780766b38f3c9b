/*
 * smtp_send.c -- sends personalizations through one SMTP route, for tests.
 *
 * SYNOPSIS
 *	smtp_send --url URL --content FILE --pers FILE [--pers FILE ...]
 *	    [--tls required|optional|none] [--user NAME] [--ca FILE]
 *	    [--x-smtpapi] [--click] [--open] [--sub] [--ip-pool NAME]
 *	    [--max-conn N] [--timeout-ms N] [--day N] [--route new|old]
 *	    [--msgid ID] [--repeat N] [--tick-ms N] [--stop-after-ms N]
 *	    [--free-on-first]
 *
 * DESCRIPTION
 *	Reads the stored content (a v3 body without personalizations) and
 *	each personalization from files, makes one batch per personalization
 *	(repeated --repeat times) and sends them through snd_route_send() on
 *	a real libuv loop, starting a new one whenever the route has room.
 *	Prints one JSON object per unit, in unit order:
 *	{"unit":N,"status":"accepted","code":250,"provider_id":"..","error":".."}.
 *	The password comes from $SMTP_PASSWORD, never from argv.
 *
 *	--tick-ms N runs a uv timer every N ms on the same loop while the
 *	units are under way, to show whether anything blocks the loop.
 *	--stop-after-ms N frees the route N ms after the first send, with
 *	messages still under way.  Either prints one more line, on stderr:
 *	stats {"elapsed_ms":..,"ticks":..,"max_gap_ms":..,"free_ms":..}
 *	where elapsed_ms runs from the first send to the last result and
 *	max_gap_ms is the longest time between two ticks (or from the first
 *	send to the first tick).  --free-on-first frees the route from inside
 *	the first result's callback, with the other messages under way.
 *
 * DIAGNOSTICS
 *	Exit 0 when every unit got a result, 1 on usage or setup errors, 2
 *	when the watchdog (timeout + 10 s) fired first.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sender/sender.h"

#define MAX_UNITS 256

struct run {
	struct snd_route *r;
	struct snd_batch b[MAX_UNITS];
	struct snd_item it[MAX_UNITS];
	struct snd_result res[MAX_UNITS];
	int got[MAX_UNITS];
	int n, next, ndone;
	uv_timer_t watchdog;
	int expired;
	uv_timer_t tick, stopper;
	uint64_t tick_ms, start_ns, end_ns, last_tick_ns, max_gap_ns, free_ns;
	long ticks;
	int free_on_first;
};

/* The whole of a file, or NULL. */
static char *slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *p = NULL;
	long n;

	if (f == NULL || fseek(f, 0, SEEK_END) < 0 || (n = ftell(f)) < 0 ||
	    fseek(f, 0, SEEK_SET) < 0 || (p = malloc((size_t)n + 1)) == NULL ||
	    fread(p, 1, (size_t)n, f) != (size_t)n) {
		free(p);
		p = NULL;
	} else
		p[n] = '\0';
	if (f != NULL)
		fclose(f);
	return p;
}

static void on_done(struct snd_batch *b, const struct snd_result *res, void *arg);

/* Gives the units never handed to the route a result of their own. */
static void mark_unsent(struct run *run)
{
	while (run->next < run->n) {
		run->res[run->next].status = SND_TEMPFAIL;
		snprintf(run->res[run->next].error, sizeof(run->res[0].error), "never sent");
		run->got[run->next++] = 1;
		run->ndone++;
	}
}

/* Starts batches while the route has room. */
static void pump(struct run *run)
{
	while (run->r && run->next < run->n &&
	       snd_route_inflight(run->r) < snd_route_capacity(run->r)) {
		if (snd_route_send(run->r, &run->b[run->next], on_done, run) < 0) {
			fprintf(stderr, "smtp_send: route refused unit %d\n", run->next);
			run->res[run->next].status = SND_TEMPFAIL;
			snprintf(run->res[run->next].error, sizeof(run->res[0].error),
			         "refused by snd_route_send");
			run->got[run->next] = 1;
			run->ndone++;
		}
		run->next++;
	}
	if (run->ndone == run->n) {
		uv_timer_stop(&run->watchdog);
		uv_timer_stop(&run->tick);
		uv_timer_stop(&run->stopper);
		if (run->end_ns == 0)
			run->end_ns = uv_hrtime();
	}
}

/* One unit's result: keep it and start the next. */
static void on_done(struct snd_batch *b, const struct snd_result *res, void *arg)
{
	struct run *run = arg;
	int i = (int)(b - run->b);

	run->res[i] = res[0];
	run->got[i] = 1;
	run->ndone++;
	if (run->free_on_first && run->r != NULL) {
		struct snd_route *r = run->r;
		uint64_t t0 = uv_hrtime();

		/* Forgotten first: the results the free delivers come back here. */
		run->r = NULL;
		snd_route_free(r);
		run->free_ns = uv_hrtime() - t0;
		mark_unsent(run);
	}
	pump(run);
}

/* One tick of the loop-liveness timer: counts it and keeps the longest gap. */
static void on_tick(uv_timer_t *t)
{
	struct run *run = t->data;
	uint64_t now = uv_hrtime();

	if (now - run->last_tick_ns > run->max_gap_ns)
		run->max_gap_ns = now - run->last_tick_ns;
	run->last_tick_ns = now;
	run->ticks++;
}

/* Frees the route with messages under way: each must still get a result,
 * and the units never sent are marked as refused. */
static void on_stop(uv_timer_t *t)
{
	struct run *run = t->data;
	struct snd_route *r = run->r;
	uint64_t t0 = uv_hrtime();

	snd_route_free(r);
	run->free_ns = uv_hrtime() - t0;
	run->r = NULL;
	mark_unsent(run);
	pump(run);
}

/* The watchdog: stops the loop when a result never comes. */
static void on_watchdog(uv_timer_t *t)
{
	struct run *run = t->data;

	run->expired = 1;
	uv_stop(t->loop);
}

/* Closes whatever handle is still open, for the final loop run. */
static void close_walk(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

int main(int argc, char **argv)
{
	static struct run run;
	struct snd_route_conf conf = {.type = SND_TYPE_SMTP, .tls = SND_TLS_REQUIRED};
	const char *content_path = NULL, *pers_path[MAX_UNITS], *msgid = "";
	char *content, *pers[MAX_UNITS], err[256];
	int npers = 0, repeat = 1, day = 1, old = 0, i, rc = 0;
	long timeout_ms = 10000, tick_ms = 0, stop_ms = -1;
	struct curluv *cu;
	uv_loop_t loop;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(a, "--x-smtpapi") == 0)
			conf.x_smtpapi = 1;
		else if (strcmp(a, "--free-on-first") == 0)
			run.free_on_first = 1;
		else if (strcmp(a, "--click") == 0)
			conf.click_tracking = 1;
		else if (strcmp(a, "--open") == 0)
			conf.open_tracking = 1;
		else if (strcmp(a, "--sub") == 0)
			conf.subscription_tracking = 1;
		else if (v == NULL)
			goto usage;
		else if (i++, strcmp(a, "--url") == 0)
			snprintf(conf.url, sizeof(conf.url), "%s", v);
		else if (strcmp(a, "--content") == 0)
			content_path = v;
		else if (strcmp(a, "--pers") == 0 && npers < MAX_UNITS)
			pers_path[npers++] = v;
		else if (strcmp(a, "--tls") == 0)
			conf.tls = strcmp(v, "none") == 0       ? SND_TLS_NONE
			           : strcmp(v, "optional") == 0 ? SND_TLS_OPTIONAL
			                                        : SND_TLS_REQUIRED;
		else if (strcmp(a, "--user") == 0)
			snprintf(conf.username, sizeof(conf.username), "%s", v);
		else if (strcmp(a, "--ca") == 0)
			snprintf(conf.ca_file, sizeof(conf.ca_file), "%s", v);
		else if (strcmp(a, "--ip-pool") == 0)
			snprintf(conf.ip_pool, sizeof(conf.ip_pool), "%s", v);
		else if (strcmp(a, "--max-conn") == 0)
			conf.max_connections = atoi(v);
		else if (strcmp(a, "--timeout-ms") == 0)
			timeout_ms = atol(v);
		else if (strcmp(a, "--day") == 0)
			day = atoi(v);
		else if (strcmp(a, "--route") == 0)
			old = strcmp(v, "old") == 0;
		else if (strcmp(a, "--msgid") == 0)
			msgid = v;
		else if (strcmp(a, "--repeat") == 0)
			repeat = atoi(v);
		else if (strcmp(a, "--tick-ms") == 0)
			tick_ms = atol(v);
		else if (strcmp(a, "--stop-after-ms") == 0)
			stop_ms = atol(v);
		else
			goto usage;
	}
	if (conf.url[0] == '\0' || content_path == NULL || npers == 0 || repeat < 1 ||
	    npers * repeat > MAX_UNITS)
		goto usage;
	conf.secret = getenv("SMTP_PASSWORD");
	conf.timeout = (int64_t)timeout_ms * 1000;
	if ((content = slurp(content_path)) == NULL) {
		fprintf(stderr, "smtp_send: cannot read %s\n", content_path);
		return 1;
	}
	for (i = 0; i < npers; i++)
		if ((pers[i] = slurp(pers_path[i])) == NULL) {
			fprintf(stderr, "smtp_send: cannot read %s\n", pers_path[i]);
			return 1;
		}

	uv_loop_init(&loop);
	if (curluv_create(&cu, &loop) < 0 ||
	    snd_route_create(&run.r, &conf, cu, err, sizeof(err)) < 0) {
		fprintf(stderr, "smtp_send: %s\n", err);
		return 1;
	}
	run.n = npers * repeat;
	for (i = 0; i < run.n; i++) {
		run.it[i].unit_id = i + 1;
		run.it[i].personalization = pers[i % npers];
		run.b[i].role = old ? SND_ROLE_OLD : SND_ROLE_NEW;
		run.b[i].content_id = 1;
		run.b[i].content = content;
		run.b[i].msgid = msgid;
		run.b[i].warmup_day = day;
		run.b[i].nitems = 1;
		run.b[i].items = &run.it[i];
	}
	uv_timer_init(&loop, &run.watchdog);
	run.watchdog.data = &run;
	uv_timer_start(&run.watchdog, on_watchdog, (uint64_t)timeout_ms + 10000, 0);
	uv_timer_init(&loop, &run.tick);
	uv_timer_init(&loop, &run.stopper);
	run.tick.data = run.stopper.data = &run;
	run.start_ns = run.last_tick_ns = uv_hrtime();
	if (tick_ms > 0)
		uv_timer_start(&run.tick, on_tick, (uint64_t)tick_ms, (uint64_t)tick_ms);
	if (stop_ms >= 0)
		uv_timer_start(&run.stopper, on_stop, (uint64_t)stop_ms, 0);
	pump(&run);
	uv_run(&loop, UV_RUN_DEFAULT);
	if (tick_ms > 0 || stop_ms >= 0 || run.free_on_first)
		fprintf(stderr,
		        "stats {\"elapsed_ms\":%.1f,\"ticks\":%ld,\"max_gap_ms\":%.1f,"
		        "\"free_ms\":%.1f}\n",
		        (double)((run.end_ns ? run.end_ns : uv_hrtime()) - run.start_ns) / 1e6,
		        run.ticks, (double)run.max_gap_ns / 1e6, (double)run.free_ns / 1e6);

	for (i = 0; i < run.n; i++) {
		cJSON *o = cJSON_CreateObject();
		char *s;

		cJSON_AddNumberToObject(o, "unit", i);
		cJSON_AddStringToObject(o, "status",
		                        run.got[i] ? snd_status_name(run.res[i].status) : "none");
		cJSON_AddNumberToObject(o, "code", (double)run.res[i].code);
		cJSON_AddStringToObject(o, "provider_id", run.res[i].provider_id);
		cJSON_AddStringToObject(o, "error", run.res[i].error);
		s = cJSON_PrintUnformatted(o);
		printf("%s\n", s);
		free(s);
		cJSON_Delete(o);
	}
	fflush(stdout);
	if (run.expired)
		rc = 2;
	snd_route_free(run.r);
	curluv_destroy(cu);
	uv_walk(&loop, close_walk, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	for (i = 0; i < npers; i++)
		free(pers[i]);
	free(content);
	return rc;
usage:
	fprintf(stderr, "usage: smtp_send --url URL --content FILE --pers FILE [options]\n");
	return 1;
}
