/*
 * NAME
 *	cli_http.c -- the common options, warmupd's address, the bearer token,
 *	one HTTP request and the report of a refusal, for the commands that
 *	talk to warmupd (send, status, pause, resume, suppress).
 *
 * SYNOPSIS
 *	struct cli_http_opts o = {.url = NULL, .config = "warmupd.conf"};
 *	struct cli_http_resp r;
 *	char base[600], err[512], *token;
 *	const char *source;
 *
 *	cli_http_base(&o, base, sizeof(base), err, sizeof(err));
 *	cli_http_token(&o, &token, &source, err, sizeof(err));
 *	cli_http_request(url, token, NULL, 0, 30, &r, err, sizeof(err));
 *
 *	(or, in a command: cli_http_opt() for each option, cli_http_setup()
 *	after them, cli_http_call() and cli_http_print_refusal())
 *
 * DESCRIPTION
 *	The configuration is read without its secrets (the CLI needs only the
 *	[listen] address, and an operator may not be allowed to read the API
 *	key files).  Requests use libcurl's easy interface: a CLI does one
 *	thing at a time.  Redirects are not followed, so the token goes only
 *	where it was sent, and loopback addresses bypass any proxy set in the
 *	environment, so a local token never crosses a proxy.
 *
 * DIAGNOSTICS
 *	Messages name the option, the variable or the file at fault, and
 *	never contain the token.
 */
#include "cli_http.h"

#include <cJSON.h>
#include <curl/curl.h>

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "scheduler/config.h"
#include "sender/strbuf.h"

#define TOKEN_MAX 4096

/* Strips trailing slashes so that paths can be appended with one '/'. */
static void trim_slashes(char *s)
{
	size_t n = strlen(s);

	while (n > 0 && s[n - 1] == '/')
		s[--n] = '\0';
}

/* The common options into o. */
int cli_http_opt(struct cli_http_opts *o, int opt, const char *arg)
{
	switch (opt) {
	case 'u':
		o->url = arg;
		return 1;
	case 'c':
		o->config = arg;
		return 1;
	case 'e':
		o->token_env = arg;
		return 1;
	case 'f':
		o->token_file = arg;
		return 1;
	default:
		return 0;
	}
}

/* One source of the token, not two. */
int cli_http_check_opts(const struct cli_http_opts *o, const char *cmd)
{
	if (o->token_env && o->token_file) {
		fprintf(stderr, "warmup %s: use --token-env or --token-file, not both\n", cmd);
		return 2;
	}
	return 0;
}

/* The options checked, the base URL and the token found. */
int cli_http_setup(const struct cli_http_opts *o, const char *cmd, char *base, size_t len,
                   char **token, const char **source)
{
	char err[512];

	if (cli_http_check_opts(o, cmd))
		return 2;
	if (cli_http_base(o, base, len, err, sizeof(err)) < 0 ||
	    cli_http_token(o, token, source, err, sizeof(err)) < 0) {
		fprintf(stderr, "warmup %s: %s\n", cmd, err);
		return 2;
	}
	return 0;
}

/* warmupd's base URL: --url, --config's [listen], or the default. */
int cli_http_base(const struct cli_http_opts *o, char *out, size_t len, char *err, size_t errlen)
{
	struct wu_conf c;
	char why[WU_ERR_MAX];
	int n;

	if (o->url) {
		if (strncasecmp(o->url, "http://", 7) != 0 &&
		    strncasecmp(o->url, "https://", 8) != 0) {
			snprintf(err, errlen, "--url: expected http://HOST:PORT, got '%s'", o->url);
			return -1;
		}
		if ((size_t)snprintf(out, len, "%s", o->url) >= len) {
			snprintf(err, errlen, "--url: too long");
			return -1;
		}
		trim_slashes(out);
		return 0;
	}
	if (!o->config) {
		snprintf(out, len, "http://127.0.0.1:8025");
		return 0;
	}
	if (wu_conf_load(&c, o->config, WU_CONF_NO_SECRETS, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "%s", why);
		return -1;
	}
	/* An IPv6 literal needs brackets in a URL. */
	n = snprintf(out, len, strchr(c.listen_host, ':') ? "http://[%s]:%d" : "http://%s:%d",
	             c.listen_host, c.listen_port);
	wu_conf_free(&c);
	if (n < 0 || (size_t)n >= len) {
		snprintf(err, errlen, "%s: [listen] address too long", o->config);
		return -1;
	}
	return 0;
}

/* Reads a token file: one line, trailing blanks and newline dropped. */
static int token_read_file(const char *path, char **token, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	char *buf;
	size_t n;

	if (!f) {
		snprintf(err, errlen, "--token-file %s: %s", path, strerror(errno));
		return -1;
	}
	if (!(buf = malloc(TOKEN_MAX + 1))) {
		fclose(f);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	n = fread(buf, 1, TOKEN_MAX + 1, f);
	if (ferror(f) || n > TOKEN_MAX) {
		snprintf(err, errlen, "--token-file %s: %s", path,
		         ferror(f) ? strerror(errno) : "too long for a token");
		fclose(f);
		cli_http_token_free(buf);
		return -1;
	}
	fclose(f);
	buf[n] = '\0';
	*token = buf;
	return 0;
}

/* The bearer token from a file or a variable, checked for header safety. */
int cli_http_token(const struct cli_http_opts *o, char **token, const char **source, char *err,
                   size_t errlen)
{
	const char *name = o->token_env ? o->token_env : "WARMUP_TOKEN";
	const char *v;
	size_t n;

	*token = NULL;
	if (o->token_file) {
		*source = o->token_file;
		if (token_read_file(o->token_file, token, err, errlen) < 0)
			return -1;
	} else {
		*source = name;
		v = getenv(name);
		if (!v || !*v) {
			/* Only an explicit --token-env must be set; without one, no
			 * token at all suits a daemon run with auth = none. */
			if (!o->token_env)
				return 0;
			snprintf(err, errlen, "--token-env: environment variable %s is not set",
			         name);
			return -1;
		}
		if (!(*token = strdup(v))) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
	}
	n = strlen(*token);
	while (n > 0 && isspace((unsigned char)(*token)[n - 1]))
		(*token)[--n] = '\0';
	for (size_t i = 0; i < n; i++) {
		/* A CR or LF would end the header and start another one. */
		if (iscntrl((unsigned char)(*token)[i])) {
			snprintf(err, errlen, "the token in %s holds control characters", *source);
			cli_http_token_free(*token);
			*token = NULL;
			return -1;
		}
	}
	if (n == 0) {
		snprintf(err, errlen, "the token in %s is empty", *source);
		cli_http_token_free(*token);
		*token = NULL;
		return -1;
	}
	return 0;
}

/* Wipes the token first: freed memory can end up in a core dump. */
void cli_http_token_free(char *token)
{
	if (!token)
		return;
	explicit_bzero(token, strlen(token));
	free(token);
}

/* Collects the answer body (a short count makes curl fail the request). */
static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
	size_t n = size * nmemb;

	return strbuf_add(arg, data, n) < 0 ? 0 : n;
}

/* Keeps X-Message-Id from the answer headers. */
static size_t on_header(char *data, size_t size, size_t nmemb, void *arg)
{
	struct cli_http_resp *r = arg;
	size_t n = size * nmemb, k = sizeof("X-Message-Id:") - 1;

	if (n > k && strncasecmp(data, "X-Message-Id:", k) == 0) {
		const char *v = data + k;
		size_t vl = n - k;

		while (vl > 0 && (*v == ' ' || *v == '\t'))
			v++, vl--;
		while (vl > 0 && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
			vl--;
		snprintf(r->message_id, sizeof(r->message_id), "%.*s", (int)vl, v);
	}
	return n;
}

/* One GET or POST with the easy interface; the answer is collected in r. */
int cli_http_request(const char *url, const char *token, const char *body, size_t len,
                     long timeout_s, struct cli_http_resp *r, char *err, size_t errlen)
{
	return cli_http_request_method(NULL, url, token, body, len, timeout_s, r, err, errlen);
}

/* Any method: GET or POST by default, as cli_http_request chooses. */
int cli_http_request_method(const char *method, const char *url, const char *token,
                            const char *body, size_t len, long timeout_s, struct cli_http_resp *r,
                            char *err, size_t errlen)
{
	char ebuf[CURL_ERROR_SIZE] = "";
	struct curl_slist *h = NULL, *h2;
	struct strbuf got = {0}; /* the answer's body */
	char *auth = NULL;
	CURL *c;
	CURLcode rc;
	int ret = -1;

	memset(r, 0, sizeof(*r));
	if (!(c = curl_easy_init())) {
		snprintf(err, errlen, "cannot start libcurl");
		return -1;
	}
	if (token) {
		size_t n = strlen(token) + sizeof("Authorization: Bearer ");

		if (!(auth = malloc(n)))
			goto nomem;
		snprintf(auth, n, "Authorization: Bearer %s", token);
		if (!(h2 = curl_slist_append(h, auth)))
			goto nomem;
		h = h2;
	}
	if (body) {
		if (!(h2 = curl_slist_append(h, "Content-Type: application/json")))
			goto nomem;
		h = h2;
		curl_easy_setopt(c, CURLOPT_POST, 1L);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	}
	/* curl sends "Expect: 100-continue" for large bodies and waits for it. */
	if (!(h2 = curl_slist_append(h, "Expect:")))
		goto nomem;
	h = h2;
	if (method)
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "warmup-cli");
	curl_easy_setopt(c, CURLOPT_NOPROXY, "localhost,127.0.0.1,::1");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, timeout_s);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, ebuf);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &got);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
	rc = curl_easy_perform(c);
	if (rc != CURLE_OK) {
		snprintf(err, errlen, "%s", ebuf[0] ? ebuf : curl_easy_strerror(rc));
		cli_http_resp_free(r);
		goto out;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	r->len = got.len;
	if (!(r->body = strbuf_take(&got)))
		goto nomem;
	ret = 0;
	goto out;
nomem:
	snprintf(err, errlen, "out of memory");
out:
	strbuf_free(&got);
	curl_slist_free_all(h);
	if (auth) {
		explicit_bzero(auth, strlen(auth));
		free(auth);
	}
	curl_easy_cleanup(c);
	return ret;
}

/* A request to base + path; unreachable is reported here. */
int cli_http_call(const char *cmd, const char *method, const char *base, const char *path,
                  const char *token, const char *body, size_t len, long timeout_s,
                  struct cli_http_resp *r)
{
	char err[CURL_ERROR_SIZE + 128];
	size_t n = strlen(base) + strlen(path) + 1;
	char *url = malloc(n);
	int rc;

	if (!url) {
		fprintf(stderr, "warmup %s: out of memory\n", cmd);
		return -1;
	}
	snprintf(url, n, "%s%s", base, path);
	rc = cli_http_request_method(method, url, token, body, len, timeout_s, r, err, sizeof(err));
	free(url);
	if (rc < 0)
		fprintf(stderr, "warmup %s: cannot reach warmupd at %s: %s\n", cmd, base, err);
	return rc;
}

/* warmupd's first error message, after the status and its reason. */
void cli_http_print_refusal(const char *cmd, const char *what, const struct cli_http_resp *r)
{
	cJSON *root = cJSON_Parse(r->body ? r->body : "");
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(root, "errors");

	m = cJSON_IsArray(m) ? cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(m, 0), "message")
	                     : NULL;
	fprintf(stderr, "warmup %s: %s%swarmupd answered %ld %s", cmd, what ? what : "",
	        what ? ": " : "", r->status, cli_http_reason(r->status));
	if (cJSON_IsString(m))
		fprintf(stderr, ": %s", m->valuestring);
	fputc('\n', stderr);
	cJSON_Delete(root);
}

/* Frees the body of an answer. */
void cli_http_resp_free(struct cli_http_resp *r)
{
	free(r->body);
	r->body = NULL;
	r->len = 0;
}

/* Reason phrases for the statuses warmupd and SendGrid answer with. */
const char *cli_http_reason(long status)
{
	static const struct {
		long code;
		const char *text;
	} t[] = {
	    {200, "OK"},
	    {202, "Accepted"},
	    {400, "Bad Request"},
	    {401, "Unauthorized"},
	    {403, "Forbidden"},
	    {404, "Not Found"},
	    {405, "Method Not Allowed"},
	    {413, "Payload Too Large"},
	    {415, "Unsupported Media Type"},
	    {429, "Too Many Requests"},
	    {500, "Internal Server Error"},
	    {502, "Bad Gateway"},
	    {503, "Service Unavailable"},
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (t[i].code == status)
			return t[i].text;
	return "";
}
