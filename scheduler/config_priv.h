/*
 * config_priv.h -- what the parts of the loader share: config.c reads the
 * file line by line (sections, keys, the key table of the plain sections,
 * the defaults); config_route.c, config_webhook.c and config_defer.c hold
 * the keys, defaults and checks of [route NAME], [webhook] and
 * [defer_rule NAME]; config_finish.c runs the checks across sections and
 * reads the secrets once the last line is in.
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

/*
 * One row of a key table: the key, its value's kind and target, and its
 * default.  A default is either a number in the target's own unit (def:
 * microseconds, bytes, a fraction; 0 means none, the target stays zero or
 * keeps the core's own default) or the text a file would hold (def_text,
 * for strings, paths and keys with a parser of their own, which reads it
 * as it reads the file's).
 */
struct key {
	enum sect sect;
	const char *name;
	enum vtype type;
	size_t off;  /* in struct wu_conf, or struct snd_route_conf for S_ROUTE */
	size_t size; /* V_STR, V_PATH: room in the target */
	double min, max;
	key_fn fn;
	int only; /* S_ROUTE: FOR_SENDGRID or FOR_SMTP */
	double def;
	const char *def_text;
};

/* Rows: C and R name the target in struct wu_conf and struct
 * snd_route_conf; FN and RFN are keys with a parser of their own, FND and
 * RFND the same with a default. */
#define C(f)     offsetof(struct wu_conf, f)
#define R(f)     offsetof(struct snd_route_conf, f)
#define SZ(t, f) sizeof(((struct t *)0)->f)
#define FND(sect, name, fn, def)                                                                   \
	{                                                                                          \
		sect, name, V_FN, 0, 0, 0, 0, fn, FOR_ANY, 0, def                                  \
	}
#define RFND(name, fn, only, def)                                                                  \
	{                                                                                          \
		S_ROUTE, name, V_FN, 0, 0, 0, 0, fn, only, 0, def                                  \
	}
#define FN(sect, name, fn)        FND(sect, name, fn, NULL)
#define RFN(name, fn, only)       RFND(name, fn, only, NULL)

/* The key tables of config_route.c, config_webhook.c and config_defer.c. */
extern const struct key cf_route_keys[];
extern const size_t cf_route_nkeys;
extern const struct key cf_webhook_keys[];
extern const size_t cf_webhook_nkeys;
extern const struct key cf_defer_keys[];
extern const size_t cf_defer_nkeys;

/* Formats a message into err; returns -1, for tail calls. */
int cf_say(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Copies s into a fixed buffer; -1 when it does not fit. */
int cf_copy(char *dst, size_t size, const char *s);
/* A path as written, made absolute under the config file's directory;
 * -1 when it does not fit. */
int cf_resolve(const struct wu_conf *c, const char *v, char *out, size_t size);
/* token_env/_file, api_key_env/_file, password_env/_file: where a
 * section's secret is (the key parser of every such row). */
int cf_key_secret(struct load *ld, const struct key *k, const struct sect_ref *s, const char *v,
                  char *why, size_t n);
/* Sets the defaults of the n rows of tab that belong to section s (base:
 * the struct its offsets are in).  Returns 0, or -1 with a reason in why
 * when a default does not parse. */
int cf_defaults_apply(struct load *ld, const struct key *tab, size_t n, const struct sect_ref *s,
                      void *base, char *why, size_t whylen);
/* Reads a secret from the environment or a file into *out (malloc'ed);
 * source says which, for status. */
int cf_secret_read(struct load *ld, const struct secret_ref *r, const char *section,
                   const char *what, char **out, char *source, size_t source_len);
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
/* Checks route r once its whole section is known; -1 at its first problem. */
int cf_route_check(struct load *ld, int r);
/* The [webhook] checks that need the whole file (the defer rules' first),
 * the rules the engine gets, then the webhook's secrets. */
int cf_webhook_finish(struct load *ld, int daemon);
/* Opens rule i of [defer_rule NAME] with the defaults of its key table;
 * -1 with a reason in why when they do not parse. */
int cf_defer_open(struct load *ld, int i, const char *name, char *why, size_t n);
/* The [defer_rule] checks that need the whole section: an ISP, a match. */
void cf_defer_check(struct load *ld);
/* The checks after the last line: across sections, secrets, routes,
 * webhook, cluster.  Returns 0, or -1 when something failed. */
int cf_finish(struct load *ld);

#endif
