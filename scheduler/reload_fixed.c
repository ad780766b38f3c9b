/*
 * NAME
 *	reload_fixed.c -- the keys a reload cannot change, and the check that
 *	a new configuration leaves them alone.
 *
 * SYNOPSIS
 *	if (reload_fixed_diff(&d->conf, &new_conf, &errs) > 0)
 *		refuse the reload with errs;
 *
 * DESCRIPTION
 *	Each of these was used once at the start: a socket bound, the store
 *	opened, a route's libcurl setup or secret taken, the SMTP intake's
 *	TLS context and users read, the resolver's channel opened, the time
 *	zone set for the process, the cluster's Redis connection.  Changing
 *	one takes a restart, and a reload that tries is refused as a whole
 *	with every such key named, so the running configuration never becomes
 *	half old and half new.
 *
 * DIAGNOSTICS
 *	Addresses and paths are shown old -> new; secrets and route URLs
 *	(which may carry credentials) only by their key.
 */
#include "reload_fixed.h"

#include <stdio.h>
#include <string.h>

#define RESTART "; restart warmupd"

struct cmp {
	const struct wu_conf *nw;
	struct wu_conf_errors *e;
	int n;
};

/* One key that differs, with its old and new values when they may be shown. */
static void differs(struct cmp *c, int line, const char *sect, const char *key, const char *from,
                    const char *to)
{
	c->n++;
	if (from && to)
		wu_conf_errors_add(c->e, c->nw->path, line,
		                   "[%s] %s: cannot change on reload (%s -> %s)" RESTART, sect, key,
		                   from, to);
	else
		wu_conf_errors_add(c->e, c->nw->path, line,
		                   "[%s] %s: cannot change on reload" RESTART, sect, key);
}

static int str_differ(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "") != 0;
}

#define SAME_NUM(c, sect, key, a, b)                                                               \
	do {                                                                                       \
		if ((a) != (b))                                                                    \
			differs((c), 0, (sect), (key), NULL, NULL);                                \
	} while (0)
#define SAME_STR(c, sect, key, a, b)                                                               \
	do {                                                                                       \
		if (str_differ((a), (b)))                                                          \
			differs((c), 0, (sect), (key), NULL, NULL);                                \
	} while (0)

static void cmp_listen(struct cmp *c, const struct wu_conf *a, const struct wu_conf *b)
{
	char from[96], to[96];

	if (str_differ(a->listen_host, b->listen_host) || a->listen_port != b->listen_port) {
		snprintf(from, sizeof(from), "%s:%d", a->listen_host, a->listen_port);
		snprintf(to, sizeof(to), "%s:%d", b->listen_host, b->listen_port);
		differs(c, b->listen_line, "listen", "address", from, to);
	}
	SAME_NUM(c, "listen", "auth", a->auth_none, b->auth_none);
	SAME_STR(c, "listen", "token (token_env or token_file)", a->token, b->token);
	SAME_NUM(c, "listen", "max_body", a->max_body, b->max_body);
	SAME_NUM(c, "listen", "max_connections", a->max_connections, b->max_connections);
	SAME_NUM(c, "listen", "idle_timeout", a->idle_timeout, b->idle_timeout);
	SAME_NUM(c, "listen", "max_connections_per_ip", a->max_connections_per_ip,
	         b->max_connections_per_ip);
	SAME_NUM(c, "listen", "header_timeout", a->header_timeout, b->header_timeout);
}

static void cmp_store(struct cmp *c, const struct wu_conf *a, const struct wu_conf *b)
{
	if (str_differ(a->store_path, b->store_path))
		differs(c, b->store_line, "store", "path", a->store_path, b->store_path);
	SAME_NUM(c, "store", "keep", a->store_keep, b->store_keep);
	SAME_NUM(c, "store", "prune_every", a->store_prune_every, b->store_prune_every);
	SAME_NUM(c, "store", "commit_every", a->store_commit_every, b->store_commit_every);
}

static void cmp_route(struct cmp *c, int r, const struct snd_route_conf *a,
                      const struct snd_route_conf *b)
{
	char sect[16];

	snprintf(sect, sizeof(sect), "route %s", wu_route_name((enum wu_route)r));
	if (a->type != b->type) {
		differs(c, 0, sect, a->type && b->type ? "type" : "(the section)", NULL, NULL);
		return;
	}
	if (a->type == SND_TYPE_NONE)
		return;
	SAME_STR(c, sect, "url", a->url, b->url);
	SAME_STR(c, sect, a->type == SND_TYPE_SENDGRID ? "api key" : "password", a->secret,
	         b->secret);
	SAME_STR(c, sect, "ip_pool", a->ip_pool, b->ip_pool);
	SAME_STR(c, sect, "on_behalf_of", a->on_behalf_of, b->on_behalf_of);
	SAME_NUM(c, sect, "click_tracking", a->click_tracking, b->click_tracking);
	SAME_NUM(c, sect, "open_tracking", a->open_tracking, b->open_tracking);
	SAME_NUM(c, sect, "subscription_tracking", a->subscription_tracking,
	         b->subscription_tracking);
	SAME_NUM(c, sect, "force_tracking", a->force_tracking, b->force_tracking);
	SAME_NUM(c, sect, "max_connections", a->max_connections, b->max_connections);
	SAME_NUM(c, sect, "timeout", a->timeout, b->timeout);
	SAME_NUM(c, sect, "batch", a->batch, b->batch);
	SAME_NUM(c, sect, "tls", a->tls, b->tls);
	SAME_STR(c, sect, "username", a->username, b->username);
	SAME_STR(c, sect, "ca_file", a->ca_file, b->ca_file);
	SAME_NUM(c, sect, "x_smtpapi", a->x_smtpapi, b->x_smtpapi);
}

static void cmp_smtpd(struct cmp *c, const struct wu_smtpd_conf *a, const struct wu_smtpd_conf *b)
{
	char from[96], to[96];

	if (a->enabled != b->enabled) {
		differs(c, 0, "smtp", "(the section)", NULL, NULL);
		return;
	}
	if (!a->enabled)
		return;
	if (str_differ(a->host, b->host) || a->port != b->port) {
		snprintf(from, sizeof(from), "%s:%d", a->host, a->port);
		snprintf(to, sizeof(to), "%s:%d", b->host, b->port);
		differs(c, b->address_line, "smtp", "address", from, to);
	}
	SAME_NUM(c, "smtp", "max_size", a->max_size, b->max_size);
	SAME_NUM(c, "smtp", "max_recipients", a->max_recipients, b->max_recipients);
	SAME_NUM(c, "smtp", "max_connections", a->max_connections, b->max_connections);
	SAME_NUM(c, "smtp", "max_errors", a->max_errors, b->max_errors);
	SAME_NUM(c, "smtp", "timeout", a->timeout, b->timeout);
	if (a->nnetworks != b->nnetworks ||
	    memcmp(a->networks, b->networks, (size_t)a->nnetworks * sizeof(a->networks[0])) != 0)
		differs(c, 0, "smtp", "networks", NULL, NULL);
	SAME_STR(c, "smtp", "users_file", a->users_file, b->users_file);
	SAME_STR(c, "smtp", "tls_cert_file", a->tls_cert_file, b->tls_cert_file);
	SAME_STR(c, "smtp", "tls_key_file", a->tls_key_file, b->tls_key_file);
	SAME_NUM(c, "smtp", "tls", a->tls, b->tls);
	SAME_STR(c, "smtp", "hostname", a->hostname, b->hostname);
}

static void cmp_dns(struct cmp *c, const struct wu_dns_conf *a, const struct wu_dns_conf *b)
{
	SAME_NUM(c, "dns", "mx", a->mx, b->mx);
	SAME_STR(c, "dns", "servers", a->servers, b->servers);
	SAME_NUM(c, "dns", "wait", a->wait, b->wait);
	SAME_NUM(c, "dns", "timeout", a->timeout, b->timeout);
	SAME_NUM(c, "dns", "cache", a->cache, b->cache);
}

/* The Event Webhook's endpoint and credentials; its limits and deferral
 * rules may change. */
static void cmp_webhook(struct cmp *c, const struct wu_webhook_conf *a,
                        const struct wu_webhook_conf *b)
{
	if (a->enabled != b->enabled) {
		differs(c, 0, "webhook", "(the section)", NULL, NULL);
		return;
	}
	if (!a->enabled)
		return;
	SAME_NUM(c, "webhook", "auth", a->auth_none, b->auth_none);
	if (a->public_key_len != b->public_key_len ||
	    (a->public_key_len && memcmp(a->public_key, b->public_key, a->public_key_len) != 0))
		differs(c, 0, "webhook", "public_key", NULL, NULL);
	SAME_STR(c, "webhook", "username", a->username, b->username);
	SAME_STR(c, "webhook", "password", a->password, b->password);
}

/* Who may look at the status page: the viewers file is read at the start. */
static void cmp_status(struct cmp *c, const struct wu_status_conf *a,
                       const struct wu_status_conf *b)
{
	if (a->nopen_to != b->nopen_to ||
	    memcmp(a->open_to, b->open_to, (size_t)a->nopen_to * sizeof(a->open_to[0])) != 0)
		differs(c, 0, "status", "open_to", NULL, NULL);
	SAME_STR(c, "status", "viewers_file", a->viewers_file, b->viewers_file);
}

/* [cluster]: the Redis connection and the node's name were set up at the
 * start, and a cluster's name is where its counts live. */
static void cmp_cluster(struct cmp *c, const struct wu_cluster_conf *a,
                        const struct wu_cluster_conf *b)
{
	if (a->enabled != b->enabled) {
		differs(c, 0, "cluster", "(the section)", NULL, NULL);
		return;
	}
	if (!a->enabled)
		return;
	SAME_STR(c, "cluster", "redis", a->where, b->where);
	SAME_STR(c, "cluster", "redis", a->user, b->user);
	SAME_STR(c, "cluster", "name", a->name, b->name);
	SAME_STR(c, "cluster", "node", a->node, b->node);
	SAME_STR(c, "cluster", "password", a->password, b->password);
	SAME_NUM(c, "cluster", "timeout", a->timeout, b->timeout);
	SAME_NUM(c, "cluster", "lease_max", a->lease_max, b->lease_max);
}

int reload_fixed_diff(const struct wu_conf *old, const struct wu_conf *nw, struct wu_conf_errors *e)
{
	struct cmp c = {nw, e, 0};

	/* One process runs one zone (core/calendar.h). */
	if (str_differ(old->core.calendar.tz, nw->core.calendar.tz))
		differs(&c, 0, "warmup", "timezone", old->core.calendar.tz, nw->core.calendar.tz);
	cmp_listen(&c, old, nw);
	cmp_store(&c, old, nw);
	for (int r = 0; r < WU_ROUTE_COUNT; r++)
		cmp_route(&c, r, &old->route[r], &nw->route[r]);
	cmp_smtpd(&c, &old->smtpd, &nw->smtpd);
	cmp_dns(&c, &old->dns, &nw->dns);
	cmp_webhook(&c, &old->webhook, &nw->webhook);
	cmp_status(&c, &old->status, &nw->status);
	cmp_cluster(&c, &old->cluster, &nw->cluster);
	return c.n;
}
