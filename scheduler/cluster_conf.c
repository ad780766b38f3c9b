/*
 * cluster_conf.c -- the [cluster] section's Redis URL and names.
 */
#include "cluster_conf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int say(char *why, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int say(char *why, size_t n, const char *fmt, ...)
{
	va_list ap;

	if (why && n) {
		va_start(ap, fmt);
		vsnprintf(why, n, fmt, ap);
		va_end(ap);
	}
	return -1;
}

int wu_cluster_name_ok(const char *s)
{
	size_t len = strlen(s);

	return len >= 1 && len <= 63 &&
	       strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_") ==
	           len;
}

/* A decimal number in [lo, hi] spanning exactly [s, end). */
static int number(const char *s, const char *end, long lo, long hi, int *out)
{
	long v = 0;

	if (s == end || end - s > 9)
		return -1;
	for (const char *p = s; p < end; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		v = v * 10 + (*p - '0');
	}
	if (v < lo || v > hi)
		return -1;
	*out = (int)v;
	return 0;
}

int wu_cluster_url_parse(struct wu_cluster_conf *c, const char *url, char *why, size_t n)
{
	const char *p, *at, *hend, *colon, *slash;

	c->tls = strncmp(url, "rediss://", 9) == 0;
	if (!c->tls && strncmp(url, "redis://", 8) != 0)
		return say(why, n,
		           "expected a URL such as redis://127.0.0.1:6379/0 (or rediss:// for TLS), "
		           "got '%.200s'",
		           url);
	p = url + (c->tls ? 9 : 8);
	slash = p + strcspn(p, "/?#");
	at = memchr(p, '@', (size_t)(slash - p));
	c->user[0] = '\0';
	if (at) {
		if (memchr(p, ':', (size_t)(at - p)))
			return say(why, n,
			           "a password in the URL would be kept in clear: give it with "
			           "password_file or password_env (the URL shown here is cut)");
		if ((size_t)(at - p) >= sizeof(c->user) || at == p)
			return say(why, n, "the user name in the URL is empty or too long");
		memcpy(c->user, p, (size_t)(at - p));
		c->user[at - p] = '\0';
		p = at + 1;
	}
	if (*p == '[') {
		hend = strchr(p, ']');
		if (!hend || hend > slash)
			return say(why, n, "an IPv6 address in the URL needs its closing ]");
		if ((size_t)(hend - p - 1) >= sizeof(c->host) || hend == p + 1)
			return say(why, n, "the host in the URL is empty or too long");
		memcpy(c->host, p + 1, (size_t)(hend - p - 1));
		c->host[hend - p - 1] = '\0';
		colon = hend + 1 < slash && hend[1] == ':' ? hend + 1 : NULL;
		if (!colon && hend + 1 != slash)
			return say(why, n, "unexpected text after the IPv6 address in the URL");
	} else {
		colon = memchr(p, ':', (size_t)(slash - p));
		hend = colon ? colon : slash;
		if (hend == p || (size_t)(hend - p) >= sizeof(c->host))
			return say(why, n, "the host in the URL is empty or too long");
		memcpy(c->host, p, (size_t)(hend - p));
		c->host[hend - p] = '\0';
	}
	c->port = 6379;
	if (colon && number(colon + 1, slash, 1, 65535, &c->port) < 0)
		return say(why, n, "the port in the URL must be a number from 1 to 65535");
	c->db = 0;
	if (*slash == '/' && slash[1]) {
		const char *dend = slash + 1 + strcspn(slash + 1, "?#");

		if (*dend || number(slash + 1, dend, 0, 100000, &c->db) < 0)
			return say(why, n,
			           "the path of the URL must be a database number such as /0");
	} else if (*slash && !(*slash == '/' && !slash[1])) {
		return say(why, n, "the URL must not have a query or fragment");
	}
	snprintf(c->where, sizeof(c->where), "%s://%s%s%s:%d/%d", c->tls ? "rediss" : "redis",
	         strchr(c->host, ':') ? "[" : "", c->host, strchr(c->host, ':') ? "]" : "", c->port,
	         c->db);
	return 0;
}
