/*
 * NAME
 *	warmup_suppress.c -- `warmup suppress`: the suppression list of a
 *	running warmupd.
 *
 * SYNOPSIS
 *	warmup suppress list [--reason R] [--limit N] [--json]
 *	warmup suppress add [--reason R] [--detail TEXT] ADDRESS...
 *	warmup suppress remove ADDRESS...
 *	warmup suppress import [--reason R] [--chunk N] FILE.csv
 *	(each with [--url URL] [--config FILE] [--token-env NAME | --token-file FILE])
 *
 * DESCRIPTION
 *	Talks to warmupd's /v1/suppressions.  `import` reads a CSV file whose
 *	header names an `email` column (SendGrid's suppression exports do, with
 *	`created` and often `reason` beside it) and sends it in chunks of
 *	--chunk addresses (default 1000), printing a progress line per chunk
 *	and the totals at the end.  A `reason` column holding one of warmupd's
 *	reasons sets the entry's reason; any other text there (SendGrid's
 *	bounce exports put the bounce message in it) is kept as its detail,
 *	under --reason (default import).  Addresses warmupd finds invalid are
 *	reported as FILE:LINE and skipped.
 *
 * DIAGNOSTICS
 *	Exit status 0 when everything was done, 1 when warmupd refused or
 *	could not be reached, or an import skipped lines; 2 for a usage error.
 */
#include <cJSON.h>
#include <curl/curl.h>

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cli_http.h"

static const char suppress_usage[] =
    "usage: warmup suppress list [--reason R] [--limit N] [--json]\n"
    "       warmup suppress add [--reason R] [--detail TEXT] ADDRESS...\n"
    "       warmup suppress remove ADDRESS...\n"
    "       warmup suppress import [--reason R] [--chunk N] FILE.csv\n"
    "\n"
    "Shows and changes warmupd's suppression list: addresses it never sends to.\n"
    "\n"
    "  --reason R         bounce, spamreport, unsubscribe, group_unsubscribe, manual\n"
    "                     or import (add: manual; import: import; list: all)\n"
    "  --detail TEXT      add: a note kept with the addresses\n"
    "  --limit N          list: show at most N entries (default: all)\n"
    "  --json             list: one JSON object per entry\n"
    "  --chunk N          import: addresses per request (default 1000)\n"
    "  --url URL          warmupd's address (default: [listen] of --config,\n"
    "                     else http://127.0.0.1:8025)\n"
    "  --config FILE      the warmupd configuration, for its [listen] address\n"
    "  --token-env NAME   read the bearer token from variable NAME\n"
    "                     (default: WARMUP_TOKEN, when set)\n"
    "  --token-file FILE  read the bearer token from FILE\n"
    "  -h, --help         show this help\n";

struct ctx {
	char base[1200];
	char *token;
	const char *reason, *detail;
	long limit, chunk;
	int json;
};

/* One request; the parsed answer when it is 200, else NULL (reported). */
static cJSON *call(struct ctx *x, const char *method, const char *path, const char *body,
                   const char *what)
{
	struct cli_http_resp r;
	cJSON *o = NULL;

	if (cli_http_call("suppress", method, x->base, path, x->token, body,
	                  body ? strlen(body) : 0, 120, &r) < 0)
		return NULL;
	if (r.status != 200)
		cli_http_print_refusal("suppress", what, &r);
	else if (!(o = cJSON_Parse(r.body)))
		fprintf(stderr, "warmup suppress: %s: warmupd's answer is not JSON\n", what);
	cli_http_resp_free(&r);
	return o;
}

/* `list`: pages through the list with the "next" cursor. */
static int do_list(struct ctx *x)
{
	char path[600], *after = NULL, *enc;
	long shown = 0;
	double total = -1;

	for (;;) {
		long page = x->limit > 0 && x->limit - shown < 1000 ? x->limit - shown : 1000;
		int n = snprintf(path, sizeof(path), "/v1/suppressions?limit=%ld", page);
		cJSON *o, *e;
		const cJSON *next;

		if (x->reason)
			n += snprintf(path + n, sizeof(path) - (size_t)n, "&reason=%s", x->reason);
		if (after) {
			enc = curl_easy_escape(NULL, after, 0);
			snprintf(path + n, sizeof(path) - (size_t)n, "&after=%s", enc ? enc : "");
			curl_free(enc);
		}
		if (!(o = call(x, NULL, path, NULL, "list"))) {
			free(after);
			return 1;
		}
		total = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(o, "total"));
		cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(o, "suppressions"))
		{
			const char *email = cJSON_GetStringValue(cJSON_GetObjectItem(e, "email"));
			const char *reason = cJSON_GetStringValue(cJSON_GetObjectItem(e, "reason"));
			const char *detail = cJSON_GetStringValue(cJSON_GetObjectItem(e, "detail"));
			time_t t = (time_t)cJSON_GetNumberValue(cJSON_GetObjectItem(e, "created"));
			char when[32];

			if (x->json) {
				char *line = cJSON_PrintUnformatted(e);
				printf("%s\n", line ? line : "{}");
				free(line);
			} else {
				strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
				printf("%-40s %-17s %s%s%s\n", email ? email : "-",
				       reason ? reason : "-", when, detail ? "  " : "",
				       detail ? detail : "");
			}
			shown++;
		}
		next = cJSON_GetObjectItemCaseSensitive(o, "next");
		free(after);
		after = cJSON_IsString(next) ? strdup(next->valuestring) : NULL;
		cJSON_Delete(o);
		if (!after || (x->limit > 0 && shown >= x->limit))
			break;
	}
	free(after);
	if (!x->json)
		fprintf(stderr, "%ld shown of %.0f%s%s\n", shown, total, x->reason ? " " : "",
		        x->reason ? x->reason : "");
	return 0;
}

/* `add`: the addresses of the command line, in one request. */
static int do_add(struct ctx *x, int argc, char **argv)
{
	cJSON *req = cJSON_CreateObject(), *a, *o;
	const cJSON *bad;
	char *body;
	int ret = 1;

	a = cJSON_AddArrayToObject(req, "emails");
	for (int i = 0; i < argc; i++)
		cJSON_AddItemToArray(a, cJSON_CreateString(argv[i]));
	cJSON_AddStringToObject(req, "reason", x->reason ? x->reason : "manual");
	if (x->detail)
		cJSON_AddStringToObject(req, "detail", x->detail);
	body = cJSON_PrintUnformatted(req);
	cJSON_Delete(req);
	if (!body || !(o = call(x, "POST", "/v1/suppressions", body, "add"))) {
		free(body);
		return 1;
	}
	free(body);
	cJSON_ArrayForEach(bad, cJSON_GetObjectItemCaseSensitive(o, "invalid"))
	{
		int i = (int)cJSON_GetNumberValue(cJSON_GetObjectItem(bad, "index"));
		fprintf(stderr, "warmup suppress: %s: %s\n", i >= 0 && i < argc ? argv[i] : "?",
		        cJSON_GetStringValue(cJSON_GetObjectItem(bad, "message")));
	}
	printf("%.0f added, %.0f already on the list, %d invalid\n",
	       cJSON_GetNumberValue(cJSON_GetObjectItem(o, "added")),
	       cJSON_GetNumberValue(cJSON_GetObjectItem(o, "existing")),
	       cJSON_GetArraySize(cJSON_GetObjectItem(o, "invalid")));
	ret = cJSON_GetArraySize(cJSON_GetObjectItem(o, "invalid")) ? 1 : 0;
	cJSON_Delete(o);
	return ret;
}

/* `remove`: one DELETE per address. */
static int do_remove(struct ctx *x, int argc, char **argv)
{
	int ret = 0;

	for (int i = 0; i < argc; i++) {
		char path[1200], *enc = curl_easy_escape(NULL, argv[i], 0);
		cJSON *o;

		snprintf(path, sizeof(path), "/v1/suppressions/%s", enc ? enc : "");
		curl_free(enc);
		if ((o = call(x, "DELETE", path, NULL, argv[i]))) {
			printf("%s removed\n", argv[i]);
			cJSON_Delete(o);
		} else {
			ret = 1;
		}
	}
	return ret;
}

/* Splits one CSV line into fields in place (RFC 4180 quotes, "" inside). */
static int csv_split(char *line, char **f, int max)
{
	int n = 0;
	char *p = line, *w;

	line[strcspn(line, "\r\n")] = '\0';
	while (n < max) {
		f[n++] = w = p;
		if (*p == '"') {
			p++;
			for (;;) {
				if (*p == '"' && p[1] == '"')
					*w++ = '"', p += 2;
				else if (*p == '"' || !*p) {
					p += *p == '"';
					break;
				} else
					*w++ = *p++;
			}
			while (*p && *p != ',')
				p++;
		} else {
			while (*p && *p != ',')
				*w++ = *p++;
		}
		if (*p != ',') {
			*w = '\0';
			break;
		}
		*w = '\0';
		p++;
	}
	for (int i = 0; i < n; i++) {
		char *s = f[i], *e;
		while (isspace((unsigned char)*s))
			s++;
		e = s + strlen(s);
		while (e > s && isspace((unsigned char)e[-1]))
			*--e = '\0';
		f[i] = s;
	}
	return n;
}

static int is_reason(const char *s)
{
	static const char *const r[] = {"bounce", "spamreport", "unsubscribe", "group_unsubscribe",
	                                "manual", "import"};
	for (size_t i = 0; i < sizeof(r) / sizeof(r[0]); i++)
		if (strcmp(s, r[i]) == 0)
			return 1;
	return 0;
}

struct import_totals {
	long lines, sent, added, existing, invalid;
};

/* Sends one chunk; lines[i] is the file line of entry i.  Returns 0 or -1. */
static int import_flush(struct ctx *x, const char *file, cJSON *req, const int *lines,
                        struct import_totals *t)
{
	cJSON *o, *bad;
	char *body = cJSON_PrintUnformatted(req);
	int n = cJSON_GetArraySize(cJSON_GetObjectItem(req, "emails"));

	if (!body)
		return -1;
	o = call(x, "POST", "/v1/suppressions", body, file);
	free(body);
	if (!o)
		return -1;
	cJSON_ArrayForEach(bad, cJSON_GetObjectItemCaseSensitive(o, "invalid"))
	{
		int i = (int)cJSON_GetNumberValue(cJSON_GetObjectItem(bad, "index"));
		const char *email = cJSON_GetStringValue(cJSON_GetObjectItem(bad, "email"));

		fprintf(stderr, "%s:%d: %s: %s; skipped\n", file, i >= 0 && i < n ? lines[i] : 0,
		        email ? email : "?",
		        cJSON_GetStringValue(cJSON_GetObjectItem(bad, "message")));
		t->invalid++;
	}
	t->sent += n;
	t->added += (long)cJSON_GetNumberValue(cJSON_GetObjectItem(o, "added"));
	t->existing += (long)cJSON_GetNumberValue(cJSON_GetObjectItem(o, "existing"));
	cJSON_Delete(o);
	fprintf(stderr,
	        "import: %ld lines read, %ld sent, %ld added, %ld already listed, %ld invalid\n",
	        t->lines, t->sent, t->added, t->existing, t->invalid);
	return 0;
}

/* `import`: a CSV file with an email column, in chunks. */
static int do_import(struct ctx *x, const char *file)
{
	FILE *f = strcmp(file, "-") == 0 ? stdin : fopen(file, "r");
	char *line = NULL, *fields[64];
	size_t cap = 0;
	int lineno = 0, col_email = -1, col_reason = -1, n, *lines, ret = 1;
	const char *deflt = x->reason ? x->reason : "import";
	struct import_totals t = {0};
	cJSON *req = NULL, *emails = NULL;

	if (!f) {
		fprintf(stderr, "warmup suppress: %s: %s\n", file, strerror(errno));
		return 1;
	}
	if (!(lines = calloc((size_t)x->chunk, sizeof(*lines))))
		goto out;
	while (getline(&line, &cap, f) > 0) {
		lineno++;
		if (lineno == 1 && strncmp(line, "\xEF\xBB\xBF", 3) == 0)
			memmove(line, line + 3, strlen(line + 3) + 1);
		n = csv_split(line, fields, 64);
		if (col_email < 0) {
			if (n == 1 && !fields[0][0])
				continue;
			for (int i = 0; i < n; i++) {
				if (strcasecmp(fields[i], "email") == 0)
					col_email = i;
				else if (strcasecmp(fields[i], "reason") == 0)
					col_reason = i;
			}
			if (col_email < 0) {
				fprintf(stderr,
				        "%s:%d: the header names no 'email' column (expected e.g. "
				        "email,created)\n",
				        file, lineno);
				goto out;
			}
			continue;
		}
		if (n == 1 && !fields[0][0])
			continue; /* a blank line */
		t.lines++;
		if (col_email >= n || !fields[col_email][0]) {
			fprintf(stderr, "%s:%d: no address in the email column; skipped\n", file,
			        lineno);
			t.invalid++;
			continue;
		}
		if (!req) {
			req = cJSON_CreateObject();
			emails = cJSON_AddArrayToObject(req, "emails");
			cJSON_AddStringToObject(req, "reason", deflt);
			if (x->detail)
				cJSON_AddStringToObject(req, "detail", x->detail);
		}
		if (col_reason >= 0 && col_reason < n && fields[col_reason][0]) {
			cJSON *e = cJSON_CreateObject();
			cJSON_AddStringToObject(e, "email", fields[col_email]);
			if (is_reason(fields[col_reason]))
				cJSON_AddStringToObject(e, "reason", fields[col_reason]);
			else
				cJSON_AddStringToObject(e, "detail", fields[col_reason]);
			cJSON_AddItemToArray(emails, e);
		} else {
			cJSON_AddItemToArray(emails, cJSON_CreateString(fields[col_email]));
		}
		lines[cJSON_GetArraySize(emails) - 1] = lineno;
		if (cJSON_GetArraySize(emails) >= x->chunk) {
			if (import_flush(x, file, req, lines, &t) < 0)
				goto out;
			cJSON_Delete(req);
			req = NULL;
		}
	}
	if (ferror(f)) {
		fprintf(stderr, "warmup suppress: %s: %s\n", file, strerror(errno));
		goto out;
	}
	if (col_email < 0) {
		fprintf(stderr, "%s: empty file: expected a header with an 'email' column\n", file);
		goto out;
	}
	if (req && import_flush(x, file, req, lines, &t) < 0)
		goto out;
	printf("%s: %ld lines, %ld added, %ld already on the list, %ld invalid (skipped)\n", file,
	       t.lines, t.added, t.existing, t.invalid);
	ret = t.invalid ? 1 : 0;
out:
	cJSON_Delete(req);
	free(lines);
	free(line);
	if (f != stdin)
		fclose(f);
	return ret;
}

/* `warmup suppress`: see the manual at the top of this file. */
int cmd_suppress(int argc, char **argv)
{
	static const struct option longopts[] = {
	    CLI_HTTP_LONGOPTS,
	    {"reason", required_argument, NULL, 'r'},
	    {"detail", required_argument, NULL, 'd'},
	    {"limit", required_argument, NULL, 'l'},
	    {"chunk", required_argument, NULL, 'k'},
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct cli_http_opts o = {0};
	struct ctx x = {.chunk = 1000};
	char *end;
	const char *source, *sub;
	int opt, ret = 2;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		if (cli_http_opt(&o, opt, optarg))
			continue;
		switch (opt) {
		case 'r':
			if (!is_reason(optarg)) {
				fprintf(stderr, "warmup suppress: --reason: unknown reason '%s'\n",
				        optarg);
				return 2;
			}
			x.reason = optarg;
			break;
		case 'd':
			x.detail = optarg;
			break;
		case 'l':
		case 'k':
			errno = 0;
			if ((opt == 'l' ? (x.limit = strtol(optarg, &end, 10))
			                : (x.chunk = strtol(optarg, &end, 10))) < 1 ||
			    *end || errno || (opt == 'k' && x.chunk > 10000)) {
				fprintf(stderr, "warmup suppress: --%s: expected a number%s\n",
				        opt == 'l' ? "limit" : "chunk",
				        opt == 'k' ? " from 1 to 10000" : " above 0");
				return 2;
			}
			break;
		case 'j':
			x.json = 1;
			break;
		case 'h':
			fputs(suppress_usage, stdout);
			return 0;
		default:
			fputs(suppress_usage, stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "warmup suppress: which? list, add, remove or import\n%s",
		        suppress_usage);
		return 2;
	}
	sub = argv[optind++];
	if (strcmp(sub, "list") != 0 && strcmp(sub, "add") != 0 && strcmp(sub, "remove") != 0 &&
	    strcmp(sub, "import") != 0) {
		fprintf(stderr, "warmup suppress: unknown subcommand '%s'\n%s", sub,
		        suppress_usage);
		return 2;
	}
	if ((strcmp(sub, "list") == 0 && optind != argc) ||
	    (strcmp(sub, "import") == 0 && optind + 1 != argc) ||
	    ((strcmp(sub, "add") == 0 || strcmp(sub, "remove") == 0) && optind == argc)) {
		fprintf(stderr, "warmup suppress %s: wrong number of arguments\n%s", sub,
		        suppress_usage);
		return 2;
	}
	if (cli_http_setup(&o, "suppress", x.base, sizeof(x.base), &x.token, &source))
		return 2;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (strcmp(sub, "list") == 0)
		ret = do_list(&x);
	else if (strcmp(sub, "add") == 0)
		ret = do_add(&x, argc - optind, argv + optind);
	else if (strcmp(sub, "remove") == 0)
		ret = do_remove(&x, argc - optind, argv + optind);
	else
		ret = do_import(&x, argv[optind]);
	curl_global_cleanup();
	cli_http_token_free(x.token);
	return ret;
}
