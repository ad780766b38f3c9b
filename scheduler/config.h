/*
 * config.h -- the warmup INI file, read with libinih.  The daemon and
 * `warmup simulate` read the same file.
 *
 * Sections: [warmup] [listen] [store] [route new] [route old] [isp NAME]
 * [gate] [backoff] [log] [suppress] [alert] [webhook] [defer_rule NAME]
 * [smtp] [dns] [cluster].
 * Every key is documented in README.md ("Configuration file").  Unknown sections and keys,
 * and bad values, are errors that name the file, the line and the key:
 * "warmup.conf:12: [isp google] new_rate: expected a rate such as 10/s,
 * 600/min or 5000/h, got '10/fortnight'".
 *
 * Relative paths in the file (schedule, store path, *_file) are taken
 * relative to the directory of the config file.
 */
#ifndef WU_CONFIG_H
#define WU_CONFIG_H

#include "core/deferral.h"
#include "core/engine.h"
#include "cidr.h"
#include "cluster_conf.h"
#include "sender/route.h"

/* [defer_rule NAME] sections fill struct wu_defer_rule (core/deferral.h). */

/* [webhook]: the SendGrid Event Webhook endpoint, off without the section. */
struct wu_webhook_conf {
	int enabled;               /* the section is present */
	int auth_none;             /* "auth = none" written out */
	unsigned char *public_key; /* DER SubjectPublicKeyInfo; NULL = no signature */
	size_t public_key_len;
	char username[128]; /* HTTP basic auth; "" = none */
	char *password;     /* never logged */
	size_t max_body;    /* default 1 MB */
	wu_time_t max_skew; /* signature timestamp window, default 10 min */
	int default_rules;  /* built-in deferral rules when none are given; default on */
	int nrules;
	struct wu_defer_rule rules[WU_DEFER_RULES_MAX];
};

enum wu_smtpd_tls { WU_SMTPD_TLS_OFF, WU_SMTPD_TLS_OPTIONAL, WU_SMTPD_TLS_REQUIRED };

/* [smtp] */
struct wu_smtpd_conf {
	int enabled;                          /* the section is there */
	char host[64];                        /* address = 127.0.0.1:2525 */
	int port;
	size_t max_size;                      /* SIZE, default 30 MB */
	int max_recipients;                   /* RCPT TO per message, default 1000 */
	int max_connections;                  /* default 100 */
	int max_errors;                       /* bad commands before 421, default 10 */
	wu_time_t timeout;                    /* idle wait for a command or data, 300s */
	struct wu_cidr networks[WU_CIDR_MAX]; /* may send without AUTH; default loopback */
	int nnetworks;
	char users_file[1024];                /* AUTH users: "name:crypt(3) hash" lines */
	char tls_cert_file[1024], tls_key_file[1024];
	enum wu_smtpd_tls tls;                /* default optional with a certificate, else off */
	int tls_set;                          /* tls written in the file */
	char hostname[256];                   /* in the greeting and EHLO reply */
	int address_line;                     /* of address in the file; 0 = not there */
	int users_line, tls_cert_line;        /* of users_file and tls_cert_file; 0 = none */
};

/* [dns] (scheduler/mx.c) */
struct wu_dns_conf {
	int mx;            /* mx = on | off; default on */
	char servers[512]; /* "127.0.0.1:5353,[::1]:53"; "" = the system's resolv.conf */
	wu_time_t wait;    /* the most a unit of a domain not yet resolved waits; 2s */
	wu_time_t timeout; /* per DNS try (two tries); 1s */
	int cache;         /* domains kept, 100..10000000; 100000 */
};

/* [status]: who may look at the status page and GET /v1/status */
struct wu_status_conf {
	struct wu_cidr open_to[WU_CIDR_MAX]; /* no credentials needed; default loopback */
	int nopen_to;
	char viewers_file[1024]; /* HTTP basic auth: "name:crypt(3) hash" lines; "" = none */
	int viewers_line;        /* of viewers_file in the file; 0 = not there */
};

struct wu_conf {
	char path[1024]; /* the file read */
	char dir[1024];  /* its directory, for relative paths */

	/* [warmup] and the core sections */
	char schedule_path[1024];
	struct wu_core_conf core;

	/* [listen] */
	char listen_host[64];
	int listen_port;        /* default 8025 */
	int auth_none;          /* "auth = none" written out */
	char *token;            /* bearer token; never logged */
	size_t max_body;        /* default 10 MB, at most 30 MB */
	int max_connections;    /* default 256 */
	wu_time_t idle_timeout; /* default 30s */
	int max_connections_per_ip; /* default max_connections / 2; 0 = no limit */
	wu_time_t header_timeout;   /* default 10s: a request's headers must arrive by then */

	/* [store] */
	char store_path[1024];
	wu_time_t store_keep;        /* keep: finished units and events; 0 = forever; 7d */
	wu_time_t store_prune_every; /* prune_every: the pruning timer; default 1 minute */
	wu_time_t store_commit_every; /* commit_every: least time between commits; 1ms; 0 = none */

	int listen_line, store_line; /* of [listen] address and [store] path; 0 = default */

	/* [route new], [route old] */
	struct snd_route_conf route[WU_ROUTE_COUNT];

	/* [log] level = error | warn | info | debug */
	int log_level;

	/* [suppress] mode = drop | reject */
	int suppress_reject; /* 0: drop suppressed recipients (default); 1: answer 400 */

	/* [alert]: push alerts to a webhook (Slack-compatible) */
	char *alert_url;               /* webhook_url(_env|_file); a secret: never logged whole */
	int64_t alert_backlog;         /* backlog_threshold in queued units; 0 = off; 10000 */
	wu_time_t alert_backlog_every; /* backlog_check: how often; default 1 minute */
	wu_time_t alert_v3_wait; /* template_wait: oldest v3-only unit's wait; 0 = off; 1h */
	wu_time_t alert_timeout;       /* per POST, default 10s */
	int alert_retries;             /* retries after a failed POST, default 5 */
	wu_time_t alert_repeat;        /* repeat_window: one alert per key in it; 10 min */
	double alert_disk_free;        /* disk_min_free: share of the store's file system; 5% */
	char alert_source[256];        /* source: the node's name in alerts; "" = host name */

	/* [webhook] and [defer_rule NAME] */
	struct wu_webhook_conf webhook;

	/* [cluster]: nodes sharing one migration through Redis (cluster_conf.h) */
	struct wu_cluster_conf cluster;

	/* [smtp]: the SMTP intake, off without the section */
	struct wu_smtpd_conf smtpd;

	/* [dns]: MX lookups that group business domains by their mail host */
	struct wu_dns_conf dns;

	/* [status]: the status page's viewers */
	struct wu_status_conf status;
};

/* What to skip while loading. */
#define WU_CONF_NO_SECRETS 1 /* the simulator: do not read token/key files or env */
#define WU_CONF_KEEP       2 /* on error keep what was read, for a check; free it */

/* Every problem one load (or check) found, in the order found: text is
 * "FILE:LINE: [section] key: what" (no LINE for a key left out).  At most
 * one per line of the file.  lost counts messages that found no memory. */
struct wu_conf_error {
	int line;
	char *text;
};
struct wu_conf_errors {
	int n, cap, lost;
	struct wu_conf_error *e;
};

/* Reads and validates path.  Returns 0, or -1 with a message naming file,
 * line and key in err: the first problem found.  On error c is freed and
 * zeroed. */
int wu_conf_load(struct wu_conf *c, const char *path, int flags, char *err, size_t errlen);

/* The same, reading on after errors: every problem is appended to errs (a
 * zeroed struct, or one that already holds some).  With WU_CONF_KEEP, c
 * stays filled on error and the caller frees it. */
int wu_conf_load_all(struct wu_conf *c, const char *path, int flags, struct wu_conf_errors *errs);

/* Appends "PATH:LINE: ..." (LINE left out when 0; no prefix for a NULL
 * path); returns -1.  For the checks beyond the file (scheduler/check.c). */
int wu_conf_errors_add(struct wu_conf_errors *e, const char *path, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Whether a message about that line of the file was recorded. */
int wu_conf_errors_on(const struct wu_conf_errors *e, int line);

void wu_conf_errors_free(struct wu_conf_errors *e);

/* Defaults only, without a file (the simulator without --config). */
int wu_conf_defaults(struct wu_conf *c);

/* Reads a schedule file into c->core.schedule (keeping the after-policy).
 * Used by wu_conf_load and by `warmup simulate --schedule`. */
int wu_conf_read_schedule(struct wu_conf *c, const char *path, char *err, size_t errlen);

/* Frees c (wiping secrets first); accepts a zeroed struct. */
void wu_conf_free(struct wu_conf *c);

#endif
