/*
 * NAME
 *	warmup_send.c -- `warmup send`: hand SendGrid v3 mail/send bodies to
 *	warmupd, the way an application would.
 *
 * SYNOPSIS
 *	warmup send [--url URL] [--token-env NAME | --token-file FILE]
 *	            [--config FILE] FILE.json...
 *
 * DESCRIPTION
 *	Each FILE (or - for standard input) is POSTed as it is to
 *	URL/v3/mail/send with "Authorization: Bearer TOKEN".  warmupd checks
 *	it as SendGrid would, so this is also the quickest way to see whether
 *	a body your application builds would be accepted.  Files are sent one
 *	by one, in order; one refused file does not stop the others.
 *
 * DIAGNOSTICS
 *	"FILE: 202 accepted, X-Message-Id ID" for each accepted file;
 *	"FILE: 400 Bad Request" followed by SendGrid's error list for a
 *	refused one.  Exit status 0 when every file was accepted, 1 when any
 *	was refused or could not be read or sent, 2 for a usage error.
 */
#include <cJSON.h>
#include <curl/curl.h>

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_http.h"
#include "sender/strbuf.h"

#define BODY_MAX (32u * 1024 * 1024) /* above warmupd's largest max_body: it says no */

static const char send_usage[] =
    "usage: warmup send [--url URL] [--token-env NAME | --token-file FILE]\n"
    "                   [--config FILE] FILE.json...\n"
    "\n"
    "POSTs each SendGrid v3 mail/send body (- for standard input) to\n"
    "URL/v3/mail/send and prints warmupd's answer.\n"
    "\n"
    "  --url URL          warmupd's address (default: [listen] of --config,\n"
    "                     else http://127.0.0.1:8025)\n"
    "  --config FILE      the warmupd configuration, for its [listen] address\n"
    "  --token-env NAME   read the bearer token from variable NAME\n"
    "                     (default: WARMUP_TOKEN, when set)\n"
    "  --token-file FILE  read the bearer token from FILE\n"
    "  -h, --help         show this help\n"
    "\n"
    "Exit status: 0 all accepted, 1 any refused or failed, 2 usage error.\n";

/* Reads a whole file, or standard input for "-". */
static int read_all(const char *path, char **out, size_t *len, char *err, size_t errlen)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
	struct strbuf b = {0};
	size_t cap = 65536; /* read up to here, then twice as far */

	if (!f) {
		snprintf(err, errlen, "%s", strerror(errno));
		return -1;
	}
	for (;;) {
		if (strbuf_reserve(&b, cap - b.len) < 0) {
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
		b.len += fread(b.p + b.len, 1, cap - b.len, f);
		b.p[b.len] = '\0';
		if (ferror(f)) {
			snprintf(err, errlen, "%s", strerror(errno));
			goto fail;
		}
		if (b.len < cap)
			break;
		if (cap >= BODY_MAX) {
			snprintf(err, errlen, "larger than %u MB", BODY_MAX / (1024 * 1024));
			goto fail;
		}
		cap *= 2;
	}
	if (f != stdin)
		fclose(f);
	*len = b.len;
	*out = strbuf_take(&b);
	return 0;
fail:
	if (f != stdin)
		fclose(f);
	strbuf_free(&b);
	return -1;
}

/* Prints SendGrid's {"errors":[{"message","field","help"}]} one per line,
 * or the start of the body when it is not in that shape. */
static void print_errors(FILE *out, const char *body)
{
	cJSON *root = cJSON_Parse(body);
	const cJSON *errs = cJSON_GetObjectItemCaseSensitive(root, "errors"), *e;
	int printed = 0;

	cJSON_ArrayForEach(e, (cJSON_IsArray(errs) ? errs : NULL))
	{
		const cJSON *m = cJSON_GetObjectItemCaseSensitive(e, "message");
		const cJSON *f = cJSON_GetObjectItemCaseSensitive(e, "field");
		const cJSON *h = cJSON_GetObjectItemCaseSensitive(e, "help");

		fprintf(out, "  - %s", cJSON_IsString(m) ? m->valuestring : "(no message)");
		if (cJSON_IsString(f) && *f->valuestring)
			fprintf(out, " [field: %s]", f->valuestring);
		if (cJSON_IsString(h) && *h->valuestring)
			fprintf(out, "\n    see %s", h->valuestring);
		fputc('\n', out);
		printed = 1;
	}
	if (!printed && body && *body)
		fprintf(out, "  %.300s%s\n", body, strlen(body) > 300 ? "..." : "");
	cJSON_Delete(root);
}

/* Sends one file.  Returns 0 accepted, 1 refused or unreadable, -1 when
 * warmupd cannot be reached (no point trying the next files). */
static int send_one(const char *path, const char *base, const char *token, const char *token_source)
{
	struct cli_http_resp r;
	char err[CURL_ERROR_SIZE + 128];
	char *body;
	size_t len;
	const char *name = strcmp(path, "-") == 0 ? "(stdin)" : path;

	if (read_all(path, &body, &len, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s: cannot read: %s\n", name, err);
		return 1;
	}
	if (cli_http_call("send", NULL, base, "/v3/mail/send", token, body, len, 120, &r) < 0) {
		free(body);
		return -1;
	}
	free(body);
	if (r.status >= 200 && r.status < 300) {
		printf("%s: %ld accepted", name, r.status);
		if (r.message_id[0])
			printf(", X-Message-Id %s", r.message_id);
		putchar('\n');
		cli_http_resp_free(&r);
		return 0;
	}
	fprintf(stderr, "%s: %ld %s\n", name, r.status, cli_http_reason(r.status));
	print_errors(stderr, r.body);
	if (r.status == 401)
		fprintf(stderr, token ? "  (the token came from %s)\n" : CLI_HTTP_NO_TOKEN_HINT,
		        token_source);
	cli_http_resp_free(&r);
	return 1;
}

/* `warmup send`: see the manual at the top of this file. */
int cmd_send(int argc, char **argv)
{
	static const struct option longopts[] = {
	    CLI_HTTP_LONGOPTS,
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct cli_http_opts o = {0};
	char base[1200];
	char *token = NULL;
	const char *source = NULL;
	int opt, failed = 0, stdin_used = 0;

	/* 0, not 1: glibc then starts over even if the caller used getopt. */
	optind = 0;
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		if (cli_http_opt(&o, opt, optarg))
			continue;
		switch (opt) {
		case 'h':
			fputs(send_usage, stdout);
			return 0;
		default:
			fputs(send_usage, stderr);
			return 2;
		}
	}
	/* Before the file arguments, so that this usage error comes first
	 * (cli_http_setup checks it again). */
	if (cli_http_check_opts(&o, "send"))
		return 2;
	if (optind >= argc) {
		fprintf(stderr, "warmup send: no file to send (use - for standard input)\n%s",
		        send_usage);
		return 2;
	}
	for (int i = optind; i < argc; i++) {
		if (strcmp(argv[i], "-") == 0 && stdin_used++) {
			fprintf(stderr, "warmup send: - (standard input) can be given only once\n");
			return 2;
		}
	}
	if (cli_http_setup(&o, "send", base, sizeof(base), &token, &source))
		return 2;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	for (int i = optind; i < argc; i++) {
		int rc = send_one(argv[i], base, token, source);

		if (rc < 0) {
			failed = 1;
			break;
		}
		failed |= rc;
	}
	curl_global_cleanup();
	cli_http_token_free(token);
	return failed ? 1 : 0;
}
