/*
 * NAME
 *	warmup_status.c -- `warmup status`: what warmupd has done today, in a
 *	form people read.
 *
 * SYNOPSIS
 *	warmup status [--url URL] [--json] [--token-env NAME | --token-file FILE]
 *	              [--config FILE]
 *
 * DESCRIPTION
 *	GETs URL/v1/status and prints the day, the schedule step, the cap and
 *	what is left of it, the health gate, a table of what each route sent
 *	today and one of where each ISP's mail went, and the queue.  --json
 *	prints warmupd's answer as it came, for scripts (jq).  Fields the
 *	daemon could not fill (null) are shown as "-".
 *
 * DIAGNOSTICS
 *	"cannot reach warmupd at URL: REASON" when nothing answers; warmupd's
 *	own error message for any answer other than 200.  Exit status 0 on
 *	success, 1 on any failure, 2 for a usage error.
 */
#include <cJSON.h>
#include <curl/curl.h>

#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_http.h"

static const char status_usage[] =
    "usage: warmup status [--url URL] [--json] [--token-env NAME | --token-file FILE]\n"
    "                     [--config FILE]\n"
    "\n"
    "Shows what warmupd did today: schedule step, cap, gate, routes, ISPs, queue.\n"
    "\n"
    "  --url URL          warmupd's address (default: [listen] of --config,\n"
    "                     else http://127.0.0.1:8025)\n"
    "  --config FILE      the warmupd configuration, for its [listen] address\n"
    "  --json             print the raw /v1/status JSON\n"
    "  --token-env NAME   read the bearer token from variable NAME\n"
    "                     (default: WARMUP_TOKEN, when set)\n"
    "  --token-file FILE  read the bearer token from FILE\n"
    "  -h, --help         show this help\n";

/* The item at a dotted path, or NULL. */
static const cJSON *get(const cJSON *o, const char *path)
{
	char buf[128], *save = NULL;

	snprintf(buf, sizeof(buf), "%s", path);
	for (char *k = strtok_r(buf, ".", &save); k && o; k = strtok_r(NULL, ".", &save))
		o = cJSON_GetObjectItemCaseSensitive(o, k);
	return o;
}

/* A whole number at path as text: "-" when missing or null, else unlimited
 * text when asked. */
static const char *num(const cJSON *o, const char *path, const char *if_null, char *buf, size_t len)
{
	const cJSON *v = get(o, path);

	if (cJSON_IsNumber(v))
		snprintf(buf, len, "%.0f", v->valuedouble);
	else
		snprintf(buf, len, "%s", if_null);
	return buf;
}

/* The string at path, or if_missing. */
static const char *str(const cJSON *o, const char *path, const char *if_missing)
{
	const cJSON *v = get(o, path);

	return cJSON_IsString(v) ? v->valuestring : if_missing;
}

/* A rate at path as a percentage. */
static const char *pct(const cJSON *o, const char *path, char *buf, size_t len)
{
	const cJSON *v = get(o, path);

	if (cJSON_IsNumber(v) && isfinite(v->valuedouble))
		snprintf(buf, len, "%.2f%%", v->valuedouble * 100);
	else
		snprintf(buf, len, "-");
	return buf;
}

/* "3h25m" from seconds. */
static void duration(double s, char *buf, size_t len)
{
	int64_t t = (int64_t)s;

	if (t >= 86400)
		snprintf(buf, len, "%" PRId64 "d%02" PRId64 "h", t / 86400, t % 86400 / 3600);
	else if (t >= 3600)
		snprintf(buf, len, "%" PRId64 "h%02" PRId64 "m", t / 3600, t % 3600 / 60);
	else
		snprintf(buf, len, "%" PRId64 "m%02" PRId64 "s", t / 60, t % 60);
}

/* The readable summary of a /v1/status answer. */
static void print_summary(const cJSON *st, const char *base)
{
	const cJSON *routes = get(st, "routes"), *isps = get(st, "isps"), *it;
	const cJSON *up = get(st, "uptime_s"), *reason;
	char a[32], b[32], c[32], d[32], e[32], f[32], g[32];

	printf("warmupd at %s", base);
	if (cJSON_IsNumber(up)) {
		duration(up->valuedouble, a, sizeof(a));
		printf(", up %s", a);
	}
	printf("\n\n");
	printf("date       %s (day %s of the schedule, %s held)\n", str(st, "date", "-"),
	       num(st, "day", "-", a, sizeof(a)), num(st, "held_days", "-", b, sizeof(b)));
	printf("cap        %s, used %s, remaining %s\n", num(st, "cap", "unlimited", a, sizeof(a)),
	       num(st, "used", "-", b, sizeof(b)), num(st, "remaining", "unlimited", c, sizeof(c)));
	printf("window     %s .. %s\n", str(st, "window.open", "-"), str(st, "window.close", "-"));
	printf("gate       %s (bounces %s, complaints %s)", str(st, "gate.state", "-"),
	       pct(st, "gate.bounce_rate", a, sizeof(a)),
	       pct(st, "gate.complaint_rate", b, sizeof(b)));
	reason = get(st, "gate.reason");
	if (cJSON_IsString(reason) && *reason->valuestring)
		printf(": %s", reason->valuestring);
	putchar('\n');
	printf("intake     %s accepted, %s rejected\n",
	       num(st, "intake.accepted", "-", a, sizeof(a)),
	       num(st, "intake.rejected", "-", b, sizeof(b)));
	printf("events     new route: %s delivered, %s bounced, %s blocked, %s deferred, %s "
	       "dropped,\n           %s spam reports, %s unsubscribes\n",
	       num(st, "routes.new.delivered", "-", a, sizeof(a)),
	       num(st, "routes.new.bounce", "-", b, sizeof(b)),
	       num(st, "routes.new.blocked", "-", c, sizeof(c)),
	       num(st, "routes.new.deferred", "-", d, sizeof(d)),
	       num(st, "routes.new.dropped", "-", e, sizeof(e)),
	       num(st, "routes.new.complaint", "-", f, sizeof(f)),
	       num(st, "routes.new.unsubscribe", "-", g, sizeof(g)));
	if (cJSON_IsObject(get(st, "webhook"))) {
		printf("webhook    %s events: %s applied, %s duplicate, %s unattributed, %s "
		       "malformed; %s batches refused\n",
		       num(st, "webhook.received", "-", a, sizeof(a)),
		       num(st, "webhook.applied", "-", b, sizeof(b)),
		       num(st, "webhook.duplicate", "-", c, sizeof(c)),
		       num(st, "webhook.unattributed", "-", d, sizeof(d)),
		       num(st, "webhook.malformed", "-", e, sizeof(e)),
		       num(st, "webhook.refused_batches", "-", f, sizeof(f)));
		cJSON_ArrayForEach(it, get(st, "webhook.cuts"))
		{
			const cJSON *fa = get(it, "factor");

			if (!cJSON_IsTrue(get(it, "active")) && cJSON_IsTrue(get(it, "effective")))
				continue;
			printf("cut        %s: rate kept %.0f%% until %s by rule %s%s\n",
			       it->string, cJSON_IsNumber(fa) ? fa->valuedouble * 100 : 0,
			       str(it, "until", "-"), str(it, "rule", "-"),
			       cJSON_IsTrue(get(it, "effective")) ? ""
			                                          : " (no new_rate: nothing cut)");
		}
	}
	printf("queue      %s queued, %s in flight, %s sent, %s failed\n",
	       num(st, "queue.queued", "-", a, sizeof(a)),
	       num(st, "queue.inflight", "-", b, sizeof(b)),
	       num(st, "queue.sent", "-", c, sizeof(c)),
	       num(st, "queue.failed", "-", d, sizeof(d)));

	printf("\n%-6s %-8s %-9s %8s %9s %9s %9s %9s  %s\n", "ROUTE", "STATE", "TYPE", "SENT",
	       "ACCEPTED", "TEMPFAIL", "PERMFAIL", "INFLIGHT", "URL");
	cJSON_ArrayForEach(it, (cJSON_IsObject(routes) ? routes : NULL))
	{
		const char *type = str(it, "type", "-");
		/* A route the config does not have is shown as such, not "running". */
		const char *state = strcmp(type, "none") == 0         ? "-"
		                    : cJSON_IsTrue(get(it, "paused")) ? "paused"
		                                                      : "running";
		printf("%-6s %-8s %-9s %8s %9s %9s %9s %9s  %s\n", it->string, state,
		       strcmp(type, "none") == 0 ? "(none)" : type,
		       num(it, "sent", "-", a, sizeof(a)), num(it, "accepted", "-", b, sizeof(b)),
		       num(it, "tempfail", "-", c, sizeof(c)),
		       num(it, "permfail", "-", d, sizeof(d)),
		       num(it, "inflight", "-", e, sizeof(e)), str(it, "url", "-"));
	}

	printf("\n%-12s %8s %8s %8s %8s %8s %8s\n", "ISP", "NEW", "NEW-OK", "SHARE", "OLD",
	       "OLD-OK", "QUEUED");
	if (!cJSON_IsObject(isps) || !isps->child)
		printf("(no mail today and none queued)\n");
	cJSON_ArrayForEach(it, (cJSON_IsObject(isps) ? isps : NULL))
	{
		printf("%-12.31s %8s %8s %8s %8s %8s %8s\n", it->string,
		       num(it, "new.sent", "-", a, sizeof(a)),
		       num(it, "new.accepted", "-", b, sizeof(b)),
		       num(it, "new.share_limit", "-", c, sizeof(c)),
		       num(it, "old.sent", "-", d, sizeof(d)),
		       num(it, "old.accepted", "-", f, sizeof(f)),
		       num(it, "queued", "-", g, sizeof(g)));
	}

	if (cJSON_IsObject(get(st, "cluster"))) {
		const cJSON *cl = get(st, "cluster");

		printf("\ncluster    %s on %s, node %s: %s; sum %s sent + %s leased of cap %s, %s "
		       "left\n",
		       str(cl, "name", "-"), str(cl, "redis", "-"), str(cl, "node", "-"),
		       cJSON_IsTrue(get(cl, "connected")) ? "connected" : "REDIS UNREACHABLE",
		       num(cl, "sent", "-", a, sizeof(a)), num(cl, "leased", "-", b, sizeof(b)),
		       num(cl, "cap", "-", c, sizeof(c)), num(cl, "left", "-", d, sizeof(d)));
		printf("%-12s %8s %8s  %s\n", "NODE", "LEASE", "SENT", "TODAY");
		cJSON_ArrayForEach(it, get(cl, "nodes"))
		    printf("%-12.63s %8s %8s  %s\n", str(it, "node", "-"),
		           num(it, "lease", "-", a, sizeof(a)), num(it, "sent", "-", b, sizeof(b)),
		           cJSON_IsTrue(get(it, "today")) ? "yes" : "no");
	}
	if (cJSON_IsObject(get(st, "suppressions")))
		printf("\nsuppressed %s on the list; intake dropped %s recipient(s), refused %s "
		       "request(s)\n",
		       num(st, "suppressions.entries", "-", a, sizeof(a)),
		       num(st, "suppressions.dropped", "-", b, sizeof(b)),
		       num(st, "suppressions.rejected", "-", c, sizeof(c)));
	it = get(st, "recent_events");
	if (cJSON_IsArray(it) && it->child) {
		printf("\nrecent events (newest first):\n");
		for (const cJSON *ev = it->child; ev; ev = ev->next)
			printf("  %s  %-9s %s\n", str(ev, "time", "-"), str(ev, "kind", "-"),
			       str(ev, "text", ""));
	}
}

/* `warmup status`: see the manual at the top of this file. */
int cmd_status(int argc, char **argv)
{
	static const struct option longopts[] = {
	    CLI_HTTP_LONGOPTS,
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct cli_http_opts o = {0};
	struct cli_http_resp r;
	char base[1200];
	char *token = NULL;
	const char *source = NULL;
	int opt, json = 0, ret = 1;
	cJSON *st;

	/* 0, not 1: glibc then starts over even if the caller used getopt. */
	optind = 0;
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		if (cli_http_opt(&o, opt, optarg))
			continue;
		switch (opt) {
		case 'j':
			json = 1;
			break;
		case 'h':
			fputs(status_usage, stdout);
			return 0;
		default:
			fputs(status_usage, stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "warmup status: unexpected argument '%s'\n%s", argv[optind],
		        status_usage);
		return 2;
	}
	if (cli_http_setup(&o, "status", base, sizeof(base), &token, &source))
		return 2;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (cli_http_call("status", NULL, base, "/v1/status", token, NULL, 0, 30, &r) < 0)
		goto out;
	if (r.status != 200) {
		cli_http_print_refusal("status", NULL, &r);
		if (r.status == 401 && !token)
			fputs(CLI_HTTP_NO_TOKEN_HINT, stderr);
		goto out_resp;
	}
	if (!(st = cJSON_Parse(r.body)) || !cJSON_IsObject(st)) {
		fprintf(stderr, "warmup status: %s/v1/status did not answer with a status object\n",
		        base);
		cJSON_Delete(st);
		goto out_resp;
	}
	if (json)
		printf("%s%s", r.body, r.len && r.body[r.len - 1] == '\n' ? "" : "\n");
	else
		print_summary(st, base);
	cJSON_Delete(st);
	ret = fflush(stdout) == 0 ? 0 : 1;
out_resp:
	cli_http_resp_free(&r);
out:
	curl_global_cleanup();
	cli_http_token_free(token);
	return ret;
}
