/*
 * cli_http.h -- what `warmup send` and `warmup status` share: where warmupd
 * listens, the bearer token, and one HTTP request with libcurl's easy
 * interface.
 *
 * The token is read from an environment variable or a file, never from the
 * command line (where ps would show it), and is never printed.
 */
#ifndef WU_CLI_HTTP_H
#define WU_CLI_HTTP_H

#include <stddef.h>

/* Where to find warmupd and how to prove who we are, from the options. */
struct cli_http_opts {
	const char *url;        /* --url, or NULL */
	const char *config;     /* --config, or NULL */
	const char *token_env;  /* --token-env, or NULL for WARMUP_TOKEN */
	const char *token_file; /* --token-file, or NULL */
};

struct cli_http_resp {
	long status; /* HTTP status, 0 when no answer came */
	char *body;  /* malloc'd, NUL-terminated */
	size_t len;
	char message_id[128]; /* X-Message-Id, or "" */
};

/* The base URL of warmupd without a trailing slash: --url, else
 * http://HOST:PORT from --config's [listen], else http://127.0.0.1:8025.
 * Returns 0, or -1 with a message. */
int cli_http_base(const struct cli_http_opts *o, char *out, size_t len, char *err, size_t errlen);

/* The bearer token: from --token-file, --token-env, or $WARMUP_TOKEN.  *token
 * is malloc'd, or NULL when no token was asked for and WARMUP_TOKEN is
 * unset.  *source names where it came from, for messages.  Returns 0, or -1
 * with a message (which never holds the token). */
int cli_http_token(const struct cli_http_opts *o, char **token, const char **source, char *err,
                   size_t errlen);

/* Frees a token after wiping it. */
void cli_http_token_free(char *token);

/* One request: GET when body is NULL, else POST of a JSON body.  Returns 0
 * when an answer came (whatever its status), -1 with curl's reason when
 * none did. */
int cli_http_request(const char *url, const char *token, const char *body, size_t len,
                     long timeout_s, struct cli_http_resp *r, char *err, size_t errlen);

/* The same with a method of one's own ("DELETE"): body, when not NULL, is
 * sent as JSON whatever the method. */
int cli_http_request_method(const char *method, const char *url, const char *token,
                            const char *body, size_t len, long timeout_s, struct cli_http_resp *r,
                            char *err, size_t errlen);

void cli_http_resp_free(struct cli_http_resp *r);

/* The reason phrase of a status code ("Bad Request"), or "". */
const char *cli_http_reason(long status);

#endif
