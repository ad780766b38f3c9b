/*
 * cli_http.h -- what the commands that talk to warmupd (`warmup send`,
 * `status`, `pause`, `resume`, `reload`, `suppress`) share: their common options,
 * where warmupd listens, the bearer token, one HTTP request with libcurl's
 * easy interface, and how a refusal is reported.
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

/* The long options every such command takes, for its struct option array
 * (which must include <getopt.h>): --url, --config, --token-env and
 * --token-file, as 'u', 'c', 'e' and 'f'. */
#define CLI_HTTP_LONGOPTS                                                                          \
	{"url", required_argument, NULL, 'u'}, {"config", required_argument, NULL, 'c'},           \
	    {"token-env", required_argument, NULL, 'e'},                                           \
	{                                                                                          \
		"token-file", required_argument, NULL, 'f'                                         \
	}

/* The hint after a 401 when no token was sent. */
#define CLI_HTTP_NO_TOKEN_HINT                                                                     \
	"  (no token sent: set WARMUP_TOKEN, or use --token-env or --token-file)\n"

struct cli_http_resp {
	long status; /* HTTP status, 0 when no answer came */
	char *body;  /* malloc'd, NUL-terminated */
	size_t len;
	char message_id[128]; /* X-Message-Id, or "" */
};

/* Takes an option of CLI_HTTP_LONGOPTS (opt, with its argument) into o.
 * Returns 1 when opt was one of them, else 0. */
int cli_http_opt(struct cli_http_opts *o, int opt, const char *arg);

/* Refuses --token-env together with --token-file.  Returns 0, or 2 (the
 * exit status of a usage error) after saying so as "warmup CMD: ...". */
int cli_http_check_opts(const struct cli_http_opts *o, const char *cmd);

/* What a command does once its arguments are checked: cli_http_check_opts,
 * then warmupd's base URL into base and the token into *token (see
 * cli_http_base and cli_http_token).  Returns 0, or 2 after saying why as
 * "warmup CMD: ...". */
int cli_http_setup(const struct cli_http_opts *o, const char *cmd, char *base, size_t len,
                   char **token, const char **source);

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

/* One request to base followed by path, as cli_http_request_method does
 * it.  Returns 0 when an answer came, or -1 after saying "warmup CMD:
 * cannot reach warmupd at BASE: REASON". */
int cli_http_call(const char *cmd, const char *method, const char *base, const char *path,
                  const char *token, const char *body, size_t len, long timeout_s,
                  struct cli_http_resp *r);

void cli_http_resp_free(struct cli_http_resp *r);

/* Says "warmup CMD: [WHAT: ]warmupd answered STATUS REASON[: MESSAGE]" with
 * the first message of the answer's error list. */
void cli_http_print_refusal(const char *cmd, const char *what, const struct cli_http_resp *r);

/* The reason phrase of a status code ("Bad Request"), or "". */
const char *cli_http_reason(long status);

#endif
