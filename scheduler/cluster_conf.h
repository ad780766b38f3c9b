/*
 * cluster_conf.h -- the [cluster] section: several warmupd nodes sharing
 * one migration's limits through Redis (cluster.c).
 *
 * The Redis address is a URL: redis://[user@]host[:port][/db].  Its
 * password comes from password_file or password_env, never from the URL
 * (the file is read after the whole configuration checked out, and the
 * value is never logged).  rediss:// (TLS) is refused: Debian's hiredis
 * (0.14) is built without its SSL adapter; reach a remote Redis through a
 * TLS tunnel such as stunnel or spiped on loopback instead.
 */
#ifndef WU_CLUSTER_CONF_H
#define WU_CLUSTER_CONF_H

#include <stddef.h>

#include "core/wu.h"

struct wu_cluster_conf {
	int enabled;       /* the section is there */
	char host[256];    /* redis = URL, parsed */
	int port;          /* default 6379 */
	int db;            /* default 0 */
	char user[128];    /* ACL user; "" = the default user */
	char where[300];   /* redis://host:port/db, for logs and status */
	char name[64];     /* the migration's name in Redis keys; default "warmup" */
	char node[64];     /* this node's name; default the host name */
	char *password;    /* AUTH; never logged */
	wu_time_t timeout; /* a Redis answer longer than this: unreachable; 2s */
	int64_t lease_max; /* most units one lease takes; 4000 */
	int tls;           /* rediss://: TLS to the server (cluster_tls.h) */
	char tls_ca_file[1024];   /* the server certificate's issuers; "" = the system's */
	char tls_cert_file[1024]; /* this node's certificate, for a server that asks */
	char tls_key_file[1024];
	int tls_line;             /* of the first tls_* key; 0 = none */
};

/* Parses a redis:// URL into c (host, port, db, user, where).  Returns 0,
 * or -1 with the reason in why. */
int wu_cluster_url_parse(struct wu_cluster_conf *c, const char *url, char *why, size_t n);

/* 1 when s is a usable name for the cluster or a node: 1..63 of letters,
 * digits, '.', '-' and '_'. */
int wu_cluster_name_ok(const char *s);

#endif
