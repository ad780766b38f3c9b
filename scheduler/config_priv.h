/*
 * config_priv.h -- what the two halves of the loader share: config.c reads
 * the file line by line (sections, keys, the key table), config_finish.c
 * runs the checks that need the whole file (across sections, the secrets,
 * the routes, the webhook, the cluster) once the last line is in.
 */
#ifndef WU_CONFIG_PRIV_H
#define WU_CONFIG_PRIV_H

#include <stddef.h>
#include <stdio.h>

#include "config.h"

#define MB               ((size_t)1024 * 1024)
#define MAX_BODY_LIMIT   (30 * MB)
#define SECRET_MAX       4096
#define SCHEDULE_MAX     (16 * MB)
#define DEFAULT_STORE    "/var/lib/warmup/warmup.db"
#define DEFAULT_SENDGRID "https://api.sendgrid.com"
#define LINE_MAX_CHARS   197 /* libinih's fixed 200-byte line buffer, less CR, LF, NUL */

enum sect {
	S_WARMUP,
	S_LISTEN,
	S_STORE,
	S_ROUTE,
	S_ISP,
	S_GATE,
	S_BACKOFF,
	S_LOG,
	S_SUPPRESS,
	S_ALERT,
	S_WEBHOOK,
	S_DEFER,
	S_SMTP,
	S_DNS,
	S_STATUS,
	S_CLUSTER
};

/* A section as written, resolved: "route old" is S_ROUTE with index 1. */
struct sect_ref {
	enum sect kind;
	int index;     /* route or ISP group */
	char name[64]; /* canonical: "route old", "isp google" */
};

/* Where a secret comes from; read only after the whole file checked out. */
struct secret_ref {
	char env[128];
	char file[1024];
	const char *key; /* the key that named it, for messages */
	int line;
};

/* One key seen in the file, for duplicates and for checks at the end. */
struct seen {
	char *section;
	char *key;
	int line;
};

struct load {
	struct wu_conf *c;
	int flags;
	FILE *f;
	int line;
	int failed;
	int bad_section; /* the current [section] header was reported: skip its keys */
	struct wu_conf_errors *errs;

	struct seen *seen;
	int nseen, capseen;

	int start_set, y, m, d;
	int open_min, close_min;
	char tz[64];
	struct secret_ref token;
	struct secret_ref route_secret[WU_ROUTE_COUNT];
	int route_line[WU_ROUTE_COUNT]; /* header line, 0 = section absent */
	int domains_after_add[WU_ISP_MAX];
	char url[WU_ROUTE_COUNT][512];
	int url_set[WU_ROUTE_COUNT];
	struct secret_ref alert_url;        /* [alert] webhook_url_env/_file */
	struct secret_ref webhook_password; /* [webhook] password_env/_file */
	struct secret_ref cluster_password; /* [cluster] password_env/_file */
	char webhook_key_file[1024];        /* [webhook] public_key_file, read last */
	int webhook_key_line, webhook_line;
};

enum vtype { V_RATE, V_PERCENT, V_DURATION, V_INT, V_INT64, V_BOOL, V_STR, V_PATH, V_SIZE, V_FN };

/* Route keys that belong to one type only. */
#define FOR_ANY      0
#define FOR_SENDGRID 1
#define FOR_SMTP     2

struct key;
typedef int (*key_fn)(struct load *ld, const struct key *k, const struct sect_ref *s, const char *v,
                      char *why, size_t n);

struct key {
	enum sect sect;
	const char *name;
	enum vtype type;
	size_t off;  /* in struct wu_conf, or struct snd_route_conf for S_ROUTE */
	size_t size; /* V_STR, V_PATH: room in the target */
	double min, max;
	key_fn fn;
	int only; /* S_ROUTE: FOR_SENDGRID or FOR_SMTP */
};

/* A message about line (0: the file) of the file being loaded. */
void cf_lfail(struct load *ld, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The line where [section] key was seen, 0 if not. */
int cf_seen_line(const struct load *ld, const char *section, const char *key);
/* Whether s holds a control character. */
int cf_has_control(const char *s);
/* Whether host is a loopback address or name. */
int cf_loopback(const char *host);
/* The key table's row for name in section s, or NULL. */
const struct key *cf_key_find(enum sect s, const char *name);
/* Decodes and keeps [webhook]'s public key (base64 DER), refusing a second
 * one.  Returns 0, or -1 with a reason in why. */
int cf_webhook_key_set(struct load *ld, const char *b64, char *why, size_t n);
/* The checks after the last line: across sections, secrets, routes,
 * webhook, cluster.  Returns 0, or -1 when something failed. */
int cf_finish(struct load *ld);

#endif
