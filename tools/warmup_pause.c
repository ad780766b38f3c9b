/*
 * NAME
 *	warmup_pause.c -- `warmup pause` and `warmup resume`: stop and restart
 *	a route of a running warmupd by hand.
 *
 * SYNOPSIS
 *	warmup pause [--route new|old] [--who NAME] [--url URL] [--config FILE]
 *	             [--token-env NAME | --token-file FILE]
 *	warmup resume [same options]
 *
 * DESCRIPTION
 *	POSTs {"route", "who"} to /v1/pause or /v1/resume.  The route defaults
 *	to new (the one being warmed up); who defaults to the user running the
 *	command, and is recorded as "operator NAME" in warmupd's log, its
 *	event list (`warmup status`) and its push alerts.  Resuming the new
 *	route also lifts a halt of the health gate, which then judges afresh.
 *
 * DIAGNOSTICS
 *	Exit status 0 on success, 1 when warmupd refused or could not be
 *	reached, 2 for a usage error.
 */
#include <cJSON.h>
#include <curl/curl.h>

#include <getopt.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_http.h"

static const char pause_usage[] =
    "usage: warmup pause  [--route new|old] [--who NAME] [--url URL] [--config FILE]\n"
    "                     [--token-env NAME | --token-file FILE]\n"
    "       warmup resume [same options]\n"
    "\n"
    "Stops (pause) or restarts (resume) a route of warmupd; resuming the new route\n"
    "also lifts a halt of the health gate.\n"
    "\n"
    "  --route new|old    the route (default: new)\n"
    "  --who NAME         who is asking, for the record (default: your user name)\n"
    "  --url URL          warmupd's address (default: [listen] of --config,\n"
    "                     else http://127.0.0.1:8025)\n"
    "  --config FILE      the warmupd configuration, for its [listen] address\n"
    "  --token-env NAME   read the bearer token from variable NAME\n"
    "                     (default: WARMUP_TOKEN, when set)\n"
    "  --token-file FILE  read the bearer token from FILE\n"
    "  -h, --help         show this help\n";

/* The user running the command, for "who". */
static const char *user_name(void)
{
	const struct passwd *pw = getpwuid(getuid());
	const char *u = getenv("USER");

	if (u && *u)
		return u;
	return pw && pw->pw_name ? pw->pw_name : "unknown";
}

/* `warmup pause` and `warmup resume`: argv[0] says which. */
int cmd_pause(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"route", required_argument, NULL, 'r'},
	    {"who", required_argument, NULL, 'w'},
	    CLI_HTTP_LONGOPTS,
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int resume = strcmp(argv[0], "resume") == 0;
	const char *cmd = resume ? "resume" : "pause", *route = "new", *who = NULL, *source;
	struct cli_http_opts o = {0};
	struct cli_http_resp r;
	char base[1200], *token = NULL, *body;
	cJSON *req, *ans;
	int opt, ret = 1;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		if (cli_http_opt(&o, opt, optarg))
			continue;
		switch (opt) {
		case 'r':
			if (strcmp(optarg, "new") != 0 && strcmp(optarg, "old") != 0) {
				fprintf(stderr, "warmup %s: --route: expected new or old\n", cmd);
				return 2;
			}
			route = optarg;
			break;
		case 'w':
			who = optarg;
			break;
		case 'h':
			fputs(pause_usage, stdout);
			return 0;
		default:
			fputs(pause_usage, stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "warmup %s: unexpected argument '%s'\n%s", cmd, argv[optind],
		        pause_usage);
		return 2;
	}
	if (cli_http_setup(&o, cmd, base, sizeof(base), &token, &source))
		return 2;
	req = cJSON_CreateObject();
	cJSON_AddStringToObject(req, "route", route);
	cJSON_AddStringToObject(req, "who", who ? who : user_name());
	body = cJSON_PrintUnformatted(req);
	cJSON_Delete(req);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (!body) {
		fprintf(stderr, "warmup %s: out of memory\n", cmd);
	} else if (cli_http_call(cmd, NULL, base, resume ? "/v1/resume" : "/v1/pause", token, body,
	                         strlen(body), 30, &r) == 0) {
		ans = cJSON_Parse(r.body);
		if (r.status == 200 && ans) {
			const char *by = cJSON_GetStringValue(cJSON_GetObjectItem(ans, "by"));
			printf("%s route %s (by %s)\n", route,
			       cJSON_IsTrue(cJSON_GetObjectItem(ans, "paused")) ? "paused"
			                                                        : "running",
			       by ? by : "?");
			ret = 0;
		} else {
			cli_http_print_refusal(cmd, NULL, &r);
		}
		cJSON_Delete(ans);
		cli_http_resp_free(&r);
	}
	free(body);
	curl_global_cleanup();
	cli_http_token_free(token);
	return ret;
}
