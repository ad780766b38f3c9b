/*
 * NAME
 *	warmup_reload.c -- `warmup reload`: have a running warmupd read its
 *	configuration file again.
 *
 * SYNOPSIS
 *	warmup reload [--url URL] [--config FILE]
 *	              [--token-env NAME | --token-file FILE]
 *
 * DESCRIPTION
 *	POSTs to /v1/reload under the bearer token, as SIGHUP would ask, and
 *	waits for the outcome: warmupd answers once the new file was judged
 *	and swapped in, or refused.  Prints what changed, or every problem
 *	that kept the running configuration (file:line, section and key).
 *
 * DIAGNOSTICS
 *	Exit status 0 when the configuration was reloaded, 1 when warmupd
 *	refused it or could not be reached, 2 for a usage error.
 */
#include <cJSON.h>
#include <curl/curl.h>

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_http.h"

static const char reload_usage[] =
    "usage: warmup reload [--url URL] [--config FILE]\n"
    "                     [--token-env NAME | --token-file FILE]\n"
    "\n"
    "Has warmupd read its configuration file again (as SIGHUP does) and prints\n"
    "what changed, or why the running configuration was kept.\n"
    "\n"
    "  --url URL          warmupd's address (default: [listen] of --config,\n"
    "                     else http://127.0.0.1:8025)\n"
    "  --config FILE      the warmupd configuration, for its [listen] address\n"
    "  --token-env NAME   read the bearer token from variable NAME\n"
    "                     (default: WARMUP_TOKEN, when set)\n"
    "  --token-file FILE  read the bearer token from FILE\n"
    "  -h, --help         show this help\n";

/* Prints each line of a refusal's message. */
static void print_problems(const char *msg)
{
	const char *p = msg, *nl;

	for (; *p; p = *nl ? nl + 1 : nl) {
		nl = p + strcspn(p, "\n");
		fprintf(stderr, "warmup reload: %.*s\n", (int)(nl - p), p);
	}
}

int cmd_reload(int argc, char **argv)
{
	static const struct option longopts[] = {
	    CLI_HTTP_LONGOPTS,
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct cli_http_opts o = {0};
	struct cli_http_resp r;
	const char *source, *msg;
	char base[1200], *token = NULL;
	cJSON *ans;
	int opt, ret = 1;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		if (cli_http_opt(&o, opt, optarg))
			continue;
		if (opt == 'h') {
			fputs(reload_usage, stdout);
			return 0;
		}
		fputs(reload_usage, stderr);
		return 2;
	}
	if (optind < argc) {
		fprintf(stderr, "warmup reload: unexpected argument '%s'\n%s", argv[optind],
		        reload_usage);
		return 2;
	}
	if (cli_http_setup(&o, "reload", base, sizeof(base), &token, &source))
		return 2;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (cli_http_call("reload", NULL, base, "/v1/reload", token, "{}", 2, 60, &r) == 0) {
		ans = cJSON_Parse(r.body);
		msg = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ans, "message"));
		if (r.status == 200 && msg) {
			printf("reloaded: %s\n", msg);
			ret = 0;
		} else if (r.status == 422 && msg) {
			print_problems(msg);
			fprintf(stderr, "warmup reload: refused; warmupd keeps its running "
			                "configuration\n");
		} else {
			cli_http_print_refusal("reload", NULL, &r);
		}
		cJSON_Delete(ans);
		cli_http_resp_free(&r);
	}
	curl_global_cleanup();
	cli_http_token_free(token);
	return ret;
}
