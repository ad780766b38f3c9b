/*
 * NAME
 *	config.c -- the warmup INI file, read with libinih and checked key by key.
 *
 * SYNOPSIS
 *	struct wu_conf c;
 *	char err[WU_ERR_MAX];
 *
 *	if (wu_conf_load(&c, "/etc/warmup/warmupd.conf", 0, err, sizeof(err)) < 0)
 *		fprintf(stderr, "%s\n", err);
 *
 * DESCRIPTION
 *	libinih splits the file into sections and "key = value" pairs; a
 *	table says, for every key of every section, what its value is, where
 *	it goes and what it is when the file leaves it out, and the core's
 *	parsers read the values.  The plain sections' table is below; the
 *	route, webhook and defer_rule tables sit in config_route.c,
 *	config_webhook.c and config_defer.c.  The engine's own settings keep
 *	the core's defaults (wu_core_conf_init).  Checks that
 *	need the whole file (a route for overflow = old, a token for the
 *	intake, the schedule and the calendar) run after the last line, and
 *	secrets are read last, from the sources the file names (each one is
 *	looked for even after other errors, so that --check names every
 *	missing one; a value read is wiped when the load fails).
 *
 *	libinih reads through our own line reader: the Debian build passes no
 *	line number to the handler, so the reader counts lines, and it also
 *	sees section headers, so that an unknown or empty section is reported
 *	even when it holds no key.
 *
 * DIAGNOSTICS
 *	"FILE:LINE: [section] key: what was expected, got 'VALUE'".  A load
 *	goes on after an error wherever the rest can still be judged: every
 *	bad line, every check across sections, every missing secret, one
 *	message each (wu_conf_load_all; wu_conf_load keeps the first).  Secret
 *	values are never part of a message, and the value of an unknown key is
 *	never repeated (it may be a password written in the wrong place).
 */
#include "config.h"
#include "zone.h"
#include "sender/strbuf.h"

#include <ini.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "core/pacing.h"
#include "core/parse.h"

#include "config_priv.h"


/* Formats a message into the caller's buffer; returns -1 for tail calls. */
int cf_say(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

/* Appends "FILE:LINE: message" to errs; one message per line of the file. */
static void errors_vadd(struct wu_conf_errors *e, const char *path, int line, const char *fmt,
                        va_list ap)
{
	char msg[WU_ERR_MAX + 1024];
	size_t n;
	int w;

	/* A second complaint about one line is a consequence of the first. */
	for (int i = 0; line > 0 && i < e->n; i++)
		if (e->e[i].line == line)
			return;
	w = !path      ? 0
	    : line > 0 ? snprintf(msg, sizeof(msg), "%s:%d: ", path, line)
	               : snprintf(msg, sizeof(msg), "%s: ", path);
	n = w < 0 ? 0 : (size_t)w;
	if (n < sizeof(msg))
		vsnprintf(msg + n, sizeof(msg) - n, fmt, ap);
	if (e->n == e->cap) {
		int nc = e->cap ? e->cap * 2 : 8;
		struct wu_conf_error *ne = realloc(e->e, (size_t)nc * sizeof(*ne));
		if (!ne) {
			e->lost++;
			return;
		}
		e->e = ne;
		e->cap = nc;
	}
	if (!(e->e[e->n].text = strdup(msg))) {
		e->lost++;
		return;
	}
	e->e[e->n++].line = line;
}

/* Records one error of a load and goes on: --check reports them all. */
void cf_lfail(struct load *ld, int line, const char *fmt, ...)
{
	va_list ap;

	ld->failed = 1;
	va_start(ap, fmt);
	errors_vadd(ld->errs, ld->c->path, line, fmt, ap);
	va_end(ap);
}

/* Copies s into a fixed buffer; -1 when it does not fit. */
int cf_copy(char *dst, size_t size, const char *s)
{
	size_t n = strlen(s);

	if (n >= size)
		return -1;
	memcpy(dst, s, n + 1);
	return 0;
}

/* Printable ASCII and UTF-8 only: values end up in HTTP headers and logs. */
int cf_has_control(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s == 0x7f)
			return 1;
	return 0;
}

/* Turns a relative path into one under the config file's directory. */
int cf_resolve(const struct wu_conf *c, const char *v, char *out, size_t size)
{
	int n;

	if (v[0] == '/')
		n = snprintf(out, size, "%s", v);
	else
		n = snprintf(out, size, "%s/%s", c->dir, v);
	return n < 0 || (size_t)n >= size ? -1 : 0;
}

int cf_loopback(const char *host)
{
	struct in_addr a4;
	struct in6_addr a6;

	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, host, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6);
	return strcmp(host, "localhost") == 0;
}

/* An environment variable's name: never a secret pasted in its place. */
static int env_name(const char *s)
{
	if (!(isalpha((unsigned char)*s) || *s == '_'))
		return 0;
	for (; *s; s++)
		if (!(isalnum((unsigned char)*s) || *s == '_'))
			return 0;
	return 1;
}

/* "10MB", "512KB", "1048576" -> bytes; units are powers of 1024. */
static int parse_size(const char *s, size_t *out, char *why, size_t n)
{
	static const struct {
		const char *unit;
		size_t mult;
	} units[] = {{"", 1},       {"b", 1},  {"k", 1024}, {"kb", 1024},
	             {"kib", 1024}, {"m", MB}, {"mb", MB},  {"mib", MB}};
	const char *u = s;
	double v;
	char *end;

	while (isdigit((unsigned char)*u) || *u == '.')
		u++;
	if (u == s)
		goto bad;
	errno = 0;
	v = strtod(s, &end);
	if (errno || end != u || !isfinite(v))
		goto bad;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcasecmp(u, units[i].unit) == 0) {
			v *= (double)units[i].mult;
			if (v >= (double)SIZE_MAX)
				goto bad;
			*out = (size_t)v;
			return 0;
		}
	}
bad:
	return cf_say(why, n, "expected a size such as 10MB, 512KB or 1048576, got '%s'", s);
}

/* ---- sections ---------------------------------------------------------- */

/* Resolves a section name as written ("route  old") into *out. */
static int section_parse(struct load *ld, const char *raw, struct sect_ref *out, char *why,
                         size_t n)
{
	static const struct {
		const char *name;
		enum sect kind;
	} plain[] = {{"warmup", S_WARMUP},     {"listen", S_LISTEN},   {"store", S_STORE},
	             {"gate", S_GATE},         {"backoff", S_BACKOFF}, {"log", S_LOG},
	             {"suppress", S_SUPPRESS}, {"alert", S_ALERT},     {"webhook", S_WEBHOOK},
	             {"smtp", S_SMTP},         {"dns", S_DNS},         {"status", S_STATUS},
	             {"cluster", S_CLUSTER}};
	char buf[256], *word, *arg;
	size_t len;

	if (cf_copy(buf, sizeof(buf), raw) < 0)
		return cf_say(why, n, "section name too long");
	word = wu_trim(buf);
	len = strcspn(word, " \t");
	arg = word + len;
	if (*arg) {
		*arg++ = '\0';
		arg = wu_trim(arg);
	}
	memset(out, 0, sizeof(*out));
	if (!*arg) {
		for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
			if (strcmp(word, plain[i].name) == 0) {
				out->kind = plain[i].kind;
				snprintf(out->name, sizeof(out->name), "%s", word);
				if (out->kind == S_SMTP)
					ld->c->smtpd.enabled = 1;
				if (out->kind == S_CLUSTER)
					ld->c->cluster.enabled = 1;
				if (out->kind == S_WEBHOOK && !ld->webhook_line) {
					ld->webhook_line = ld->line;
					ld->c->webhook.enabled = 1;
				}
				return 0;
			}
		}
	}
	if (strcmp(word, "route") == 0) {
		if (strcmp(arg, "new") != 0 && strcmp(arg, "old") != 0)
			return cf_say(why, n, "expected [route new] or [route old], got '[%s]'", raw);
		out->kind = S_ROUTE;
		out->index = strcmp(arg, "new") == 0 ? WU_ROUTE_NEW : WU_ROUTE_OLD;
		snprintf(out->name, sizeof(out->name), "route %s", arg);
		return 0;
	}
	if (strcmp(word, "isp") == 0) {
		char e[WU_ERR_MAX];
		int id;

		if (!*arg)
			return cf_say(why, n, "expected [isp NAME], such as [isp google], got '[%s]'",
			           raw);
		if ((id = wu_isp_define(&ld->c->core.isps, arg, e, sizeof(e))) < 0)
			return cf_say(why, n, "[isp %s]: %s", arg, e);
		out->kind = S_ISP;
		out->index = id;
		snprintf(out->name, sizeof(out->name), "isp %s", arg);
		return 0;
	}
	if (strcmp(word, "defer_rule") == 0) {
		struct wu_webhook_conf *w = &ld->c->webhook;
		int i;

		if (!*arg || strlen(arg) >= sizeof(w->rules[0].name) ||
		    strspn(arg,
		           "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") !=
		        strlen(arg))
			return cf_say(why, n,
			           "expected [defer_rule NAME] (letters, digits, - and _), such as "
			           "[defer_rule gmail-rate], got '[%s]'",
			           raw);
		for (i = 0; i < w->nrules && strcmp(w->rules[i].name, arg) != 0; i++)
			;
		if (i == w->nrules) {
			if (i == WU_DEFER_RULES_MAX)
				return cf_say(why, n, "more than %d [defer_rule] sections",
				           WU_DEFER_RULES_MAX);
			if (cf_defer_open(ld, i, arg, why, n) < 0)
				return -1;
			w->nrules++;
		}
		out->kind = S_DEFER;
		out->index = i;
		snprintf(out->name, sizeof(out->name), "defer_rule %s", arg);
		return 0;
	}
	return cf_say(why, n,
	           "unknown section '[%s]' (expected [warmup], [listen], [store], [route new], "
	           "[route old], [isp NAME], [gate], [backoff], [log], [suppress], [alert], "
	           "[webhook], [defer_rule NAME], [smtp], [dns], [status] or [cluster])",
	           raw);
}

/* ---- keys with more to them than one value parser ---------------------- */

static int k_start(struct load *ld, const struct key *k, const struct sect_ref *s, const char *v,
                   char *why, size_t n)
{
	(void)k, (void)s;
	if (wu_parse_date(v, &ld->y, &ld->m, &ld->d, why, n) < 0)
		return -1;
	ld->start_set = 1;
	return 0;
}

/* A zone name is a path under the zone directory: it must stay inside. */
static int k_timezone(struct load *ld, const struct key *k, const struct sect_ref *s, const char *v,
                      char *why, size_t n)
{
	(void)k, (void)s;
	if (wu_zone_check(v, why, n) < 0)
		return -1;
	strcpy(ld->tz, v);
	return 0;
}

static int k_window(struct load *ld, const struct key *k, const struct sect_ref *s, const char *v,
                    char *why, size_t n)
{
	(void)k, (void)s;
	return wu_parse_window(v, &ld->open_min, &ld->close_min, why, n);
}

static int k_burst(struct load *ld, const struct key *k, const struct sect_ref *s, const char *v,
                   char *why, size_t n)
{
	(void)k, (void)s;
	return wu_burst_parse(v, &ld->c->core.burst, why, n);
}

/* [listen] header_timeout: a duration, or 0 for none. */
static int k_header_timeout(struct load *ld, const struct key *k, const struct sect_ref *s,
                            const char *v, char *why, size_t n)
{
	(void)k, (void)s;
	if (strcmp(v, "0") == 0) {
		ld->c->header_timeout = 0;
		return 0;
	}
	if (wu_parse_duration(v, &ld->c->header_timeout, NULL, 0) < 0)
		return cf_say(why, n, "expected a duration such as 10s, or 0 for none, got '%s'", v);
	return 0;
}

/* [store] commit_every: a duration up to 1 s, or 0 for none. */
static int k_commit_every(struct load *ld, const struct key *k, const struct sect_ref *s,
                          const char *v, char *why, size_t n)
{
	wu_time_t t;

	(void)k, (void)s;
	if (strcmp(v, "0") == 0) {
		ld->c->store_commit_every = 0;
		return 0;
	}
	if (wu_parse_duration(v, &t, NULL, 0) < 0 || t > WU_USEC)
		return cf_say(why, n, "expected a duration from 1ms to 1s, or 0 for none, got '%s'", v);
	ld->c->store_commit_every = t;
	return 0;
}

static int k_pace(struct load *ld, const struct key *k, const struct sect_ref *s, const char *v,
                  char *why, size_t n)
{
	(void)k, (void)s;
	return wu_pace_parse(v, &ld->c->core.pace, why, n);
}

static int k_overflow(struct load *ld, const struct key *k, const struct sect_ref *s, const char *v,
                      char *why, size_t n)
{
	(void)k, (void)s;
	return wu_overflow_parse(v, &ld->c->core.overflow, why, n);
}

static int k_advance(struct load *ld, const struct key *k, const struct sect_ref *s, const char *v,
                     char *why, size_t n)
{
	(void)k, (void)s;
	return wu_advance_parse(v, &ld->c->core.advance, why, n);
}

static int k_engaged_first(struct load *ld, const struct key *k, const struct sect_ref *s,
                           const char *v, char *why, size_t n)
{
	(void)k, (void)s;
	return wu_engaged_first_parse(v, &ld->c->core.engaged, why, n);
}

static int k_engaged_age(struct load *ld, const struct key *k, const struct sect_ref *s,
                         const char *v, char *why, size_t n)
{
	wu_time_t age;

	(void)k, (void)s;
	if (wu_parse_duration(v, &age, why, n) < 0)
		return -1;
	if (age < WU_DAY || age > 3660 * WU_DAY)
		return cf_say(why, n, "expected from 1d to 3660d, such as 90d, got '%s'", v);
	ld->c->core.engaged.age = age;
	return 0;
}

/* gap: whole days, or off. */
static int k_gap(struct load *ld, const struct key *k, const struct sect_ref *s, const char *v,
                 char *why, size_t n)
{
	wu_time_t t;

	(void)k, (void)s;
	if (strcmp(v, "off") == 0 || strcmp(v, "0") == 0) {
		ld->c->core.gap.days = 0;
		return 0;
	}
	if (wu_parse_duration(v, &t, NULL, 0) < 0 || t < WU_DAY || t % WU_DAY || t > 365 * WU_DAY)
		return cf_say(why, n,
		           "expected off or whole days from 1d to 365d, such as 3d, got '%s'", v);
	ld->c->core.gap.days = (int)(t / WU_DAY);
	return 0;
}

static int k_after(struct load *ld, const struct key *k, const struct sect_ref *s, const char *v,
                   char *why, size_t n)
{
	(void)k, (void)s;
	return wu_after_parse(v, &ld->c->core.schedule.after, why, n);
}

static int k_address(struct load *ld, const struct key *k, const struct sect_ref *s, const char *v,
                     char *why, size_t n)
{
	char host[128];
	const char *colon, *port;
	size_t hl;
	int64_t p;
	struct in_addr a4;
	struct in6_addr a6;

	(void)k, (void)s;
	if (v[0] == '[') {
		const char *close = strchr(v, ']');
		if (!close || close[1] != ':')
			goto bad;
		hl = (size_t)(close - v - 1);
		if (hl >= sizeof(host))
			goto bad;
		memcpy(host, v + 1, hl);
		host[hl] = '\0';
		port = close + 2;
		if (inet_pton(AF_INET6, host, &a6) != 1)
			goto bad;
	} else {
		if (!(colon = strrchr(v, ':')))
			goto bad;
		hl = (size_t)(colon - v);
		if (hl == 0 || hl >= sizeof(host))
			goto bad;
		memcpy(host, v, hl);
		host[hl] = '\0';
		port = colon + 1;
		if (strcmp(host, "localhost") == 0)
			strcpy(host, "127.0.0.1");
		else if (inet_pton(AF_INET, host, &a4) != 1)
			goto bad;
	}
	if (wu_parse_count(port, &p, NULL, 0) < 0 || p > 65535)
		goto bad;
	if (s->kind == S_SMTP) {
		if (cf_copy(ld->c->smtpd.host, sizeof(ld->c->smtpd.host), host) < 0)
			goto bad;
		ld->c->smtpd.port = (int)p;
		return 0;
	}
	if (cf_copy(ld->c->listen_host, sizeof(ld->c->listen_host), host) < 0)
		goto bad;
	ld->c->listen_port = (int)p;
	return 0;
bad:
	return cf_say(why, n,
	           "expected an IP address and port such as %s or [::1]:%d "
	           "(port 0 picks a free one), got '%s'",
	           s->kind == S_SMTP ? "127.0.0.1:2525" : "127.0.0.1:8025",
	           s->kind == S_SMTP ? 2525 : 8025, v);
}

/* [cluster] redis: the Redis server's URL (cluster_conf.c). */
static int k_cluster_redis(struct load *ld, const struct key *k, const struct sect_ref *s,
                           const char *v, char *why, size_t n)
{
	(void)k;
	(void)s;
	return wu_cluster_url_parse(&ld->c->cluster, v, why, n);
}

/* [cluster] name and node: names that go into Redis keys. */
static int k_cluster_name(struct load *ld, const struct key *k, const struct sect_ref *s,
                          const char *v, char *why, size_t n)
{
	struct wu_cluster_conf *c = &ld->c->cluster;

	(void)s;
	if (!wu_cluster_name_ok(v))
		return cf_say(why, n,
		           "expected 1 to 63 letters, digits, '.', '-' or '_', got '%.100s'", v);
	strcpy(strcmp(k->name, "name") == 0 ? c->name : c->node, v);
	return 0;
}

/* [dns] servers: "IP[:port]" or "[IPv6]:port", comma-separated, kept as
 * c-ares's CSV form. */
static int k_dns_servers(struct load *ld, const struct key *k, const struct sect_ref *s,
                         const char *v, char *why, size_t n)
{
	char *out = ld->c->dns.servers, word[128], host[64];
	size_t len = 0;
	const char *p = v;

	(void)k, (void)s;
	out[0] = '\0';
	while (*p) {
		size_t wl = strcspn(p, ", \t"), hl;
		const char *port = NULL, *colon;
		unsigned char a[16];
		int64_t pn = 53;
		int ok;

		if (wl == 0) {
			p++;
			continue;
		}
		if (wl >= sizeof(word))
			goto bad;
		memcpy(word, p, wl);
		word[wl] = '\0';
		p += wl;
		if (word[0] == '[') { /* [::1]:5353 */
			const char *close = strchr(word, ']');
			if (!close || (close[1] && close[1] != ':'))
				goto bad;
			hl = (size_t)(close - word - 1);
			port = close[1] ? close + 2 : NULL;
			if (hl >= sizeof(host))
				goto bad;
			memcpy(host, word + 1, hl);
			host[hl] = '\0';
			ok = inet_pton(AF_INET6, host, a) == 1;
		} else if ((colon = strchr(word, ':')) && !strchr(colon + 1, ':')) {
			hl = (size_t)(colon - word); /* 127.0.0.1:5353 */
			port = colon + 1;
			if (hl >= sizeof(host))
				goto bad;
			memcpy(host, word, hl);
			host[hl] = '\0';
			ok = inet_pton(AF_INET, host, a) == 1;
		} else { /* a bare address, port 53 */
			ok = inet_pton(colon ? AF_INET6 : AF_INET, word, a) == 1;
		}
		if (!ok ||
		    (port && (wu_parse_count(port, &pn, NULL, 0) < 0 || pn < 1 || pn > 65535)))
			goto bad;
		if (len + wl + 4 >= sizeof(ld->c->dns.servers))
			return cf_say(why, n, "too many servers");
		/* c-ares wants a bare IPv6 address in brackets only with a port. */
		len += (size_t)snprintf(out + len, sizeof(ld->c->dns.servers) - len, "%s%s",
		                        len ? "," : "", word);
	}
	if (!len)
		goto bad;
	return 0;
bad:
	out[0] = '\0';
	return cf_say(why, n,
	           "expected DNS server addresses such as 127.0.0.1:5353, 192.0.2.53 or "
	           "[::1]:53, got '%s'",
	           v);
}

/* [dns] wait: a duration, or 0 (off) for units never to wait for DNS. */
static int k_dns_wait(struct load *ld, const struct key *k, const struct sect_ref *s, const char *v,
                      char *why, size_t n)
{
	(void)k, (void)s;
	if (strcmp(v, "0") == 0 || strcmp(v, "off") == 0) {
		ld->c->dns.wait = 0;
		return 0;
	}
	return wu_parse_duration(v, &ld->c->dns.wait, why, n);
}

/* [smtp] networks: the client networks that may send without AUTH. */
static int k_networks(struct load *ld, const struct key *k, const struct sect_ref *s,
                      const char *v, char *why, size_t n)
{
	int count;

	(void)k, (void)s;
	count = wu_cidr_parse_list(v, ld->c->smtpd.networks, WU_CIDR_MAX, why, n);
	if (count < 0)
		return -1;
	ld->c->smtpd.nnetworks = count;
	return 0;
}

/* [status] open_to: the client networks that see the status page and
 * GET /v1/status without credentials; "none" for nobody. */
static int k_open_to(struct load *ld, const struct key *k, const struct sect_ref *s,
                     const char *v, char *why, size_t n)
{
	int count = 0;

	(void)k, (void)s;
	if (strcmp(v, "none") != 0 &&
	    (count = wu_cidr_parse_list(v, ld->c->status.open_to, WU_CIDR_MAX, why, n)) < 0)
		return -1;
	ld->c->status.nopen_to = count;
	return 0;
}

/* [smtp] tls = off | optional | required */
static int k_smtp_tls(struct load *ld, const struct key *k, const struct sect_ref *s,
                      const char *v, char *why, size_t n)
{
	(void)k, (void)s;
	if (strcmp(v, "off") == 0)
		ld->c->smtpd.tls = WU_SMTPD_TLS_OFF;
	else if (strcmp(v, "optional") == 0)
		ld->c->smtpd.tls = WU_SMTPD_TLS_OPTIONAL;
	else if (strcmp(v, "required") == 0)
		ld->c->smtpd.tls = WU_SMTPD_TLS_REQUIRED;
	else
		return cf_say(why, n, "expected off, optional or required, got '%s'", v);
	ld->c->smtpd.tls_set = 1;
	return 0;
}

static int k_auth(struct load *ld, const struct key *k, const struct sect_ref *s, const char *v,
                  char *why, size_t n)
{
	(void)k, (void)s;
	if (strcmp(v, "none") == 0)
		ld->c->auth_none = 1;
	else if (strcmp(v, "token") == 0)
		ld->c->auth_none = 0;
	else
		return cf_say(why, n, "expected token or none, got '%s'", v);
	return 0;
}

/*
 * token_env/_file, api_key_env/_file, password_env/_file: remembers where the
 * secret is.  One slot per section, so a secret can be named only once.
 */
int cf_key_secret(struct load *ld, const struct key *k, const struct sect_ref *s, const char *v,
                    char *why, size_t n)
{
	struct secret_ref *r = s->kind == S_LISTEN    ? &ld->token
	                       : s->kind == S_WEBHOOK ? &ld->webhook_password
	                       : s->kind == S_CLUSTER ? &ld->cluster_password
	                                              : &ld->route_secret[s->index];
	int env = strstr(k->name, "_env") != NULL;

	if (r->key)
		return cf_say(why, n, "the secret is already given by %s on line %d; give it once",
		           r->key, r->line);
	if (env) {
		/* Not echoed: a key pasted here instead of a name would end up in logs. */
		if (!env_name(v) || strlen(v) >= sizeof(r->env))
			return cf_say(
			    why, n,
			    "expected the name of an environment variable such as "
			    "SENDGRID_API_KEY (letters, digits and _; the value is not shown)");
		strcpy(r->env, v);
	} else if (!*v || cf_has_control(v) || cf_resolve(ld->c, v, r->file, sizeof(r->file)) < 0) {
		r->file[0] = '\0';
		return cf_say(why, n, "expected the path of a file holding the secret, got '%s'", v);
	}
	r->key = k->name;
	r->line = ld->line;
	return 0;
}

static int k_domains(struct load *ld, const struct key *k, const struct sect_ref *s, const char *v,
                     char *why, size_t n)
{
	struct wu_isp_table *t = &ld->c->core.isps;

	if (strcmp(k->name, "domains") == 0) {
		/* Replacing after adding would silently drop what was added. */
		if (ld->domains_after_add[s->index])
			return cf_say(why, n,
			           "must come before add_domains in the group, since it replaces "
			           "the group's domains");
		wu_isp_clear(t, s->index);
	} else {
		ld->domains_after_add[s->index] = 1;
	}
	if (!*v)
		return cf_say(why, n, "expected a list of domains such as gmail.com, googlemail.com");
	return wu_isp_add_domains(t, s->index, v, why, n);
}

static int k_mx(struct load *ld, const struct key *k, const struct sect_ref *s, const char *v,
                char *why, size_t n)
{
	struct wu_isp_table *t = &ld->c->core.isps;

	if (strcmp(k->name, "mx") == 0)
		wu_isp_clear_mx(t, s->index);
	if (!*v)
		return cf_say(why, n, "expected a list of MX hosts such as *.google.com, *.googlemail.com");
	return wu_isp_add_mx(t, s->index, v, why, n);
}

static int k_isp_rate(struct load *ld, const struct key *k, const struct sect_ref *s, const char *v,
                      char *why, size_t n)
{
	int r = k->name[0] == 'n' ? WU_ROUTE_NEW : WU_ROUTE_OLD;

	return wu_parse_rate(v, &ld->c->core.throttle[r][s->index].rate, why, n);
}

static int k_isp_burst(struct load *ld, const struct key *k, const struct sect_ref *s,
                       const char *v, char *why, size_t n)
{
	int r = k->name[0] == 'n' ? WU_ROUTE_NEW : WU_ROUTE_OLD;
	int64_t b;

	if (wu_parse_count(v, &b, NULL, 0) < 0 || b < 1 || b > 1000000)
		return cf_say(why, n, "expected a number of messages from 1 to 1000000, got '%s'", v);
	ld->c->core.throttle[r][s->index].burst = (double)b;
	return 0;
}

static int k_isp_share(struct load *ld, const struct key *k, const struct sect_ref *s,
                       const char *v, char *why, size_t n)
{
	struct wu_throttle_conf *t = &ld->c->core.throttle[WU_ROUTE_NEW][s->index];

	(void)k;
	return wu_parse_share(v, &t->share, &t->share_count, why, n);
}

static int k_confidence(struct load *ld, const struct key *k, const struct sect_ref *s,
                        const char *v, char *why, size_t n)
{
	double p;

	(void)k, (void)s;
	if (strcmp(v, "none") == 0) {
		ld->c->core.gate.z = 0;
		return 0;
	}
	if (wu_parse_percent(v, &p, NULL, 0) < 0 || wu_gate_confidence(&ld->c->core.gate, p) < 0)
		return cf_say(why, n,
		           "expected a confidence level from 50%% to below 100%% such as 95%%, or "
		           "none, got '%s'",
		           v);
	return 0;
}

static int k_resume(struct load *ld, const struct key *k, const struct sect_ref *s, const char *v,
                    char *why, size_t n)
{
	(void)k, (void)s;
	return wu_gate_resume_parse(v, &ld->c->core.gate.resume, why, n);
}

static int k_level(struct load *ld, const struct key *k, const struct sect_ref *s, const char *v,
                   char *why, size_t n)
{
	static const struct {
		const char *name;
		int level;
	} levels[] = {
	    {"error", LOG_ERR}, {"warn", LOG_WARNING}, {"info", LOG_INFO}, {"debug", LOG_DEBUG}};

	(void)k, (void)s;
	for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
		if (strcmp(v, levels[i].name) == 0) {
			ld->c->log_level = levels[i].level;
			return 0;
		}
	}
	return cf_say(why, n, "expected error, warn, info or debug, got '%s'", v);
}

static int k_suppress_mode(struct load *ld, const struct key *k, const struct sect_ref *s,
                           const char *v, char *why, size_t n)
{
	(void)k, (void)s;
	if (strcmp(v, "drop") == 0)
		ld->c->suppress_reject = 0;
	else if (strcmp(v, "reject") == 0)
		ld->c->suppress_reject = 1;
	else
		return cf_say(why, n, "expected drop or reject, got '%s'", v);
	return 0;
}

/* [alert] repeat_window: a duration, or 0 (every alert as it comes). */
static int k_alert_repeat(struct load *ld, const struct key *k, const struct sect_ref *s,
                          const char *v, char *why, size_t n)
{
	(void)k, (void)s;
	if (strcmp(v, "0") == 0) {
		ld->c->alert_repeat = 0;
		return 0;
	}
	return wu_parse_duration(v, &ld->c->alert_repeat, why, n);
}

/*
 * [alert] webhook_url, webhook_url_env, webhook_url_file: one of them.  A
 * Slack webhook URL is a credential (whoever has it can post), so the value
 * is never echoed in a message, and the _env/_file forms are read last like
 * every other secret.
 */
static int k_alert_url(struct load *ld, const struct key *k, const struct sect_ref *s,
                       const char *v, char *why, size_t n)
{
	struct secret_ref *r = &ld->alert_url;

	(void)s;
	if (r->key || ld->c->alert_url)
		return cf_say(why, n,
		           "the webhook URL is already given by %s on line %d; give it once",
		           r->key ? r->key : "webhook_url", r->line);
	if (strcmp(k->name, "webhook_url") == 0) {
		if ((strncmp(v, "https://", 8) != 0 && strncmp(v, "http://", 7) != 0) ||
		    cf_has_control(v) || strchr(v, ' '))
			return cf_say(why, n,
			           "expected an http:// or https:// URL (the value is not "
			           "shown)");
		if (!(ld->c->alert_url = strdup(v)))
			return cf_say(why, n, "out of memory");
		r->line = ld->line;
		return 0;
	}
	if (strcmp(k->name, "webhook_url_env") == 0) {
		if (!env_name(v) || strlen(v) >= sizeof(r->env))
			return cf_say(
			    why, n,
			    "expected the name of an environment variable such as "
			    "WARMUP_ALERT_URL (letters, digits and _; the value is not shown)");
		strcpy(r->env, v);
	} else if (!*v || cf_has_control(v) || cf_resolve(ld->c, v, r->file, sizeof(r->file)) < 0) {
		r->file[0] = '\0';
		return cf_say(why, n, "expected the path of a file holding the URL, got '%s'", v);
	}
	r->key = k->name;
	r->line = ld->line;
	return 0;
}









/* ---- the table --------------------------------------------------------- */

/*
 * Each row: section, key, kind, target, room (strings), min, max, parser,
 * route type, then the default: a number in the target's unit, or the text
 * a file would hold (config_priv.h).  The keys of [route NAME], [webhook]
 * and [defer_rule NAME] are in config_route.c, config_webhook.c and
 * config_defer.c.
 */
static const struct key keys[] = {
    {S_WARMUP, "schedule", V_PATH, C(schedule_path), SZ(wu_conf, schedule_path), 0, 0, NULL, 0, 0,
     NULL},
    FN(S_WARMUP, "start", k_start),
    FN(S_WARMUP, "timezone", k_timezone),
    FN(S_WARMUP, "window", k_window),
    FN(S_WARMUP, "burst", k_burst),
    FN(S_WARMUP, "pace", k_pace),
    FN(S_WARMUP, "overflow", k_overflow),
    FN(S_WARMUP, "advance", k_advance),
    FN(S_WARMUP, "after", k_after),
    {S_WARMUP, "min_fill", V_PERCENT, C(core.min_fill), 0, 0, 1, NULL, 0, 0, NULL},
    FN(S_WARMUP, "engaged_first", k_engaged_first),
    FN(S_WARMUP, "engaged_age", k_engaged_age),
    FN(S_WARMUP, "gap", k_gap),
    {S_WARMUP, "gap_fill", V_PERCENT, C(core.gap.fill), 0, 0.001, 1, NULL, 0, 0, NULL},
    {S_WARMUP, "gap_back", V_INT, C(core.gap.back), 0, 1, 1000, NULL, 0, 0, NULL},

    FND(S_LISTEN, "address", k_address, "127.0.0.1:8025"),
    FN(S_LISTEN, "auth", k_auth),
    FN(S_LISTEN, "token_env", cf_key_secret),
    FN(S_LISTEN, "token_file", cf_key_secret),
    {S_LISTEN, "max_body", V_SIZE, C(max_body), 0, 1, (double)MAX_BODY_LIMIT, NULL, 0, 10 * MB,
     NULL},
    {S_LISTEN, "max_connections", V_INT, C(max_connections), 0, 1, 100000, NULL, 0, 256, NULL},
    {S_LISTEN, "idle_timeout", V_DURATION, C(idle_timeout), 0, 0, 0, NULL, 0, 30 * WU_USEC, NULL},
    /* -1: half of max_connections, once the file has set that (config_finish.c) */
    {S_LISTEN, "max_connections_per_ip", V_INT, C(max_connections_per_ip), 0, 0, 100000, NULL, 0,
     -1, NULL},
    FND(S_LISTEN, "header_timeout", k_header_timeout, "10s"),

    {S_STORE, "path", V_PATH, C(store_path), SZ(wu_conf, store_path), 0, 0, NULL, 0, 0,
     DEFAULT_STORE},
    {S_STORE, "keep", V_DURATION, C(store_keep), 0, 0, 0, NULL, 0, 7 * WU_DAY, NULL},
    {S_STORE, "prune_every", V_DURATION, C(store_prune_every), 0, 0, 0, NULL, 0, WU_MINUTE, NULL},
    FND(S_STORE, "commit_every", k_commit_every, "1ms"),

    FN(S_SMTP, "address", k_address),
    {S_SMTP, "max_size", V_SIZE, C(smtpd.max_size), 0, 1, (double)MAX_BODY_LIMIT, NULL, 0, 30 * MB,
     NULL},
    {S_SMTP, "max_recipients", V_INT, C(smtpd.max_recipients), 0, 1, 100000, NULL, 0, 1000, NULL},
    {S_SMTP, "max_connections", V_INT, C(smtpd.max_connections), 0, 1, 100000, NULL, 0, 100, NULL},
    {S_SMTP, "max_errors", V_INT, C(smtpd.max_errors), 0, 1, 1000, NULL, 0, 10, NULL},
    {S_SMTP, "timeout", V_DURATION, C(smtpd.timeout), 0, 0, 0, NULL, 0, 300 * WU_USEC, NULL},
    FN(S_SMTP, "networks", k_networks),
    FN(S_STATUS, "open_to", k_open_to),
    {S_STATUS, "viewers_file", V_PATH, C(status.viewers_file), SZ(wu_conf, status.viewers_file), 0,
     0, NULL, 0, 0, NULL},
    {S_SMTP, "users_file", V_PATH, C(smtpd.users_file), SZ(wu_conf, smtpd.users_file), 0, 0, NULL,
     0, 0, NULL},
    {S_SMTP, "tls_cert_file", V_PATH, C(smtpd.tls_cert_file), SZ(wu_conf, smtpd.tls_cert_file), 0,
     0, NULL, 0, 0, NULL},
    {S_SMTP, "tls_key_file", V_PATH, C(smtpd.tls_key_file), SZ(wu_conf, smtpd.tls_key_file), 0, 0,
     NULL, 0, 0, NULL},
    FN(S_SMTP, "tls", k_smtp_tls),
    {S_SMTP, "hostname", V_STR, C(smtpd.hostname), SZ(wu_conf, smtpd.hostname), 0, 0, NULL, 0, 0,
     NULL},

    FN(S_ISP, "domains", k_domains),
    FN(S_ISP, "add_domains", k_domains),
    FN(S_ISP, "mx", k_mx),
    FN(S_ISP, "add_mx", k_mx),
    FN(S_ISP, "new_rate", k_isp_rate),
    FN(S_ISP, "new_burst", k_isp_burst),
    FN(S_ISP, "new_share", k_isp_share),
    FN(S_ISP, "old_rate", k_isp_rate),
    FN(S_ISP, "old_burst", k_isp_burst),

    {S_GATE, "bounce_warn", V_PERCENT, C(core.gate.bounce_warn), 0, 0, 1, NULL, 0, 0, NULL},
    {S_GATE, "bounce_halt", V_PERCENT, C(core.gate.bounce_halt), 0, 0, 1, NULL, 0, 0, NULL},
    {S_GATE, "complaint_warn", V_PERCENT, C(core.gate.complaint_warn), 0, 0, 1, NULL, 0, 0, NULL},
    {S_GATE, "complaint_halt", V_PERCENT, C(core.gate.complaint_halt), 0, 0, 1, NULL, 0, 0, NULL},
    {S_GATE, "min_sample", V_INT64, C(core.gate.min_sample), 0, 0, 1e12, NULL, 0, 0, NULL},
    {S_GATE, "pool_sample", V_INT64, C(core.gate.pool_sample), 0, 0, 1e12, NULL, 0, 0, NULL},
    {S_GATE, "complaint_min_sample", V_INT64, C(core.gate.complaint_min_sample), 0, 0, 1e12, NULL,
     0, 0, NULL},
    {S_GATE, "complaint_pool_sample", V_INT64, C(core.gate.complaint_pool_sample), 0, 0, 1e12, NULL,
     0, 0, NULL},
    FN(S_GATE, "confidence", k_confidence),
    FN(S_GATE, "resume", k_resume),

    /* A factor of 0 would stop a route for good: 1% is the least. */
    {S_BACKOFF, "cut", V_PERCENT, C(core.backoff.cut), 0, 0.01, 1, NULL, 0, 0, NULL},
    {S_BACKOFF, "floor", V_PERCENT, C(core.backoff.floor), 0, 0.01, 1, NULL, 0, 0, NULL},
    {S_BACKOFF, "step", V_PERCENT, C(core.backoff.step), 0, 0.001, 1, NULL, 0, 0, NULL},
    {S_BACKOFF, "suspend_after", V_INT, C(core.backoff.suspend_after), 0, 0, 1000, NULL, 0, 0,
     NULL},
    {S_BACKOFF, "suspend", V_DURATION, C(core.backoff.suspend), 0, 0, 0, NULL, 0, 0, NULL},
    {S_BACKOFF, "retry_min", V_DURATION, C(core.backoff.retry_min), 0, 0, 0, NULL, 0, 0, NULL},
    {S_BACKOFF, "retry_max", V_DURATION, C(core.backoff.retry_max), 0, 0, 0, NULL, 0, 0, NULL},

    FND(S_LOG, "level", k_level, "info"),

    {S_DNS, "mx", V_BOOL, C(dns.mx), 0, 0, 0, NULL, 0, 1, NULL},
    FN(S_DNS, "servers", k_dns_servers),
    FND(S_DNS, "wait", k_dns_wait, "2s"),
    {S_DNS, "timeout", V_DURATION, C(dns.timeout), 0, 0, 0, NULL, 0, WU_USEC, NULL},
    {S_DNS, "cache", V_INT, C(dns.cache), 0, 100, 10000000, NULL, 0, 100000, NULL},

    FN(S_SUPPRESS, "mode", k_suppress_mode),

    FN(S_CLUSTER, "redis", k_cluster_redis),
    FND(S_CLUSTER, "name", k_cluster_name, "warmup"),
    FN(S_CLUSTER, "node", k_cluster_name),
    FN(S_CLUSTER, "password_env", cf_key_secret),
    FN(S_CLUSTER, "password_file", cf_key_secret),
    {S_CLUSTER, "timeout", V_DURATION, C(cluster.timeout), 0, 0, 0, NULL, 0, 2 * WU_USEC, NULL},
    {S_CLUSTER, "lease_max", V_INT64, C(cluster.lease_max), 0, 1, 1e9, NULL, 0, 4000, NULL},
    {S_CLUSTER, "tls_ca_file", V_PATH, C(cluster.tls_ca_file), SZ(wu_conf, cluster.tls_ca_file), 0,
     0, NULL, 0, 0, NULL},
    {S_CLUSTER, "tls_cert_file", V_PATH, C(cluster.tls_cert_file),
     SZ(wu_conf, cluster.tls_cert_file), 0, 0, NULL, 0, 0, NULL},
    {S_CLUSTER, "tls_key_file", V_PATH, C(cluster.tls_key_file), SZ(wu_conf, cluster.tls_key_file),
     0, 0, NULL, 0, 0, NULL},

    FN(S_ALERT, "webhook_url", k_alert_url),
    FN(S_ALERT, "webhook_url_env", k_alert_url),
    FN(S_ALERT, "webhook_url_file", k_alert_url),
    {S_ALERT, "backlog_threshold", V_INT64, C(alert_backlog), 0, 0, 1e12, NULL, 0, 10000, NULL},
    {S_ALERT, "backlog_check", V_DURATION, C(alert_backlog_every), 0, 0, 0, NULL, 0, 60 * WU_USEC,
     NULL},
    {S_ALERT, "template_wait", V_DURATION, C(alert_v3_wait), 0, 0, 0, NULL, 0, WU_HOUR, NULL},
    {S_ALERT, "timeout", V_DURATION, C(alert_timeout), 0, 0, 0, NULL, 0, 10 * WU_USEC, NULL},
    {S_ALERT, "retries", V_INT, C(alert_retries), 0, 0, 100, NULL, 0, 5, NULL},
    FND(S_ALERT, "repeat_window", k_alert_repeat, "10min"),
    {S_ALERT, "permfail_window", V_INT, C(core.permfail.window), 0, 0, WU_FAILRATE_WINDOW_MAX, NULL,
     0, 0, NULL},
    {S_ALERT, "permfail_rate", V_PERCENT, C(core.permfail.rate), 0, 0, 1, NULL, 0, 0, NULL},
    {S_ALERT, "disk_min_free", V_PERCENT, C(alert_disk_free), 0, 0, 1, NULL, 0, 0.05, NULL},
    {S_ALERT, "source", V_STR, C(alert_source), SZ(wu_conf, alert_source), 0, 0, NULL, 0, 0, NULL},
};
static const size_t nkeys = sizeof(keys) / sizeof(keys[0]);


/* Every key table: this file's and those beside their modules. */
static const struct {
	const struct key *rows;
	const size_t *n;
} tables[] = {{keys, &nkeys},
              {cf_route_keys, &cf_route_nkeys},
              {cf_webhook_keys, &cf_webhook_nkeys},
              {cf_defer_keys, &cf_defer_nkeys}};

const struct key *cf_key_find(enum sect s, const char *name)
{
	for (size_t t = 0; t < sizeof(tables) / sizeof(tables[0]); t++)
		for (size_t i = 0; i < *tables[t].n; i++)
			if (tables[t].rows[i].sect == s && strcmp(tables[t].rows[i].name, name) == 0)
				return &tables[t].rows[i];
	return NULL;
}

/* Sets one plain value: the kinds every section shares. */
static int set_value(struct load *ld, const struct key *k, void *base, const char *v, char *why,
                     size_t n)
{
	void *p = (char *)base + k->off;
	int64_t i;

	switch (k->type) {
	case V_RATE:
		return wu_parse_rate(v, p, why, n);
	case V_DURATION:
		return wu_parse_duration(v, p, why, n);
	case V_BOOL:
		return wu_parse_bool(v, p, why, n);
	case V_PERCENT: {
		double f;
		if (wu_parse_percent(v, &f, why, n) < 0)
			return -1;
		if (f < k->min || f > k->max)
			return cf_say(why, n, "expected a percentage from %g%% to %g%%, got '%s'",
			           k->min * 100, k->max * 100, v);
		*(double *)p = f;
		return 0;
	}
	case V_INT:
	case V_INT64:
		if (wu_parse_count(v, &i, NULL, 0) < 0 || (double)i < k->min || (double)i > k->max)
			return cf_say(why, n, "expected a whole number from %.0f to %.0f, got '%s'",
			           k->min, k->max, v);
		if (k->type == V_INT)
			*(int *)p = (int)i;
		else
			*(int64_t *)p = i;
		return 0;
	case V_SIZE: {
		size_t sz = 0;
		if (parse_size(v, &sz, why, n) < 0)
			return -1;
		if ((double)sz < k->min || (double)sz > k->max)
			return cf_say(why, n, "expected a size from 1 byte to %.0fMB, got '%s'",
			           k->max / (double)MB, v);
		*(size_t *)p = sz;
		return 0;
	}
	case V_STR:
		if (cf_has_control(v) || cf_copy(p, k->size, v) < 0)
			return cf_say(why, n, "expected text of at most %zu characters, got '%s'",
			           k->size - 1, v);
		return 0;
	case V_PATH:
		if (!*v || cf_has_control(v) || cf_resolve(ld->c, v, p, k->size) < 0)
			return cf_say(why, n,
			           "expected a file path of at most %zu characters, got '%s'",
			           k->size - 1, v);
		return 0;
	case V_FN:
		break;
	}
	return cf_say(why, n, "internal error: no parser");
}

/* Sets a row's numeric default, in the target's own unit. */
static void default_set(const struct key *k, void *base)
{
	void *p = (char *)base + k->off;

	switch (k->type) {
	case V_RATE:
	case V_PERCENT:
		*(double *)p = k->def;
		break;
	case V_DURATION:
		*(wu_time_t *)p = (wu_time_t)k->def;
		break;
	case V_INT:
	case V_BOOL:
		*(int *)p = (int)k->def;
		break;
	case V_INT64:
		*(int64_t *)p = (int64_t)k->def;
		break;
	case V_SIZE:
		*(size_t *)p = (size_t)k->def;
		break;
	case V_STR:
	case V_PATH:
	case V_FN:
		break;
	}
}

int cf_defaults_apply(struct load *ld, const struct key *tab, size_t n, const struct sect_ref *s,
                      void *base, char *why, size_t whylen)
{
	for (size_t i = 0; i < n; i++) {
		const struct key *k = &tab[i];
		int rc = 0;

		if (k->sect != s->kind)
			continue;
		if (k->def_text)
			rc = k->type == V_FN ? k->fn(ld, k, s, k->def_text, why, whylen)
			                     : set_value(ld, k, base, k->def_text, why, whylen);
		else if (k->def != 0)
			default_set(k, base);
		if (rc < 0)
			return -1;
	}
	return 0;
}

/* Remembers a key; -1 with its first line when it was already set. */
static int seen_add(struct load *ld, const char *section, const char *key, int *first)
{
	for (int i = 0; i < ld->nseen; i++) {
		if (strcmp(ld->seen[i].section, section) == 0 &&
		    strcmp(ld->seen[i].key, key) == 0) {
			*first = ld->seen[i].line;
			return -1;
		}
	}
	if (ld->nseen == ld->capseen) {
		int nc = ld->capseen ? ld->capseen * 2 : 32;
		struct seen *s = realloc(ld->seen, (size_t)nc * sizeof(*s));
		if (!s)
			return *first = 0, -1;
		ld->seen = s;
		ld->capseen = nc;
	}
	ld->seen[ld->nseen].section = strdup(section);
	ld->seen[ld->nseen].key = strdup(key);
	ld->seen[ld->nseen].line = ld->line;
	if (!ld->seen[ld->nseen].section || !ld->seen[ld->nseen].key) {
		free(ld->seen[ld->nseen].section);
		free(ld->seen[ld->nseen].key);
		return *first = 0, -1;
	}
	ld->nseen++;
	return 0;
}

/* The line a key was set on, or 0. */
int cf_seen_line(const struct load *ld, const char *section, const char *key)
{
	for (int i = 0; i < ld->nseen; i++)
		if (strcmp(ld->seen[i].section, section) == 0 && strcmp(ld->seen[i].key, key) == 0)
			return ld->seen[i].line;
	return 0;
}

/* libinih's callback: one "key = value" of a section. */
static int on_pair(void *user, const char *section, const char *name, const char *value)
{
	struct load *ld = user;
	char why[WU_ERR_MAX + 64];
	struct sect_ref s;
	const struct key *k;
	void *base;
	int first;

	/* Errors are recorded, not returned, so that libinih reads on. */
	if (ld->bad_section)
		return 1;
	if (!*section) {
		cf_lfail(ld, ld->line, "%s: every key belongs to a section such as [warmup]", name);
		return 1;
	}
	if (section_parse(ld, section, &s, why, sizeof(why)) < 0) {
		cf_lfail(ld, ld->line, "%s", why);
		return 1;
	}
	if (!(k = cf_key_find(s.kind, name))) {
		/* The value is left out on purpose: it may be a secret. */
		cf_lfail(ld, ld->line, "[%s] %s: unknown key%s", s.name, name,
		      s.kind == S_ROUTE && (strstr(name, "key") || strstr(name, "pass"))
		          ? " (secrets go in api_key_env, api_key_file, password_env or "
		            "password_file)"
		      : s.kind == S_LISTEN && strstr(name, "token")
		          ? " (the token goes in token_env or token_file)"
		          : "");
		return 1;
	}
	if (strcmp(name, "add_domains") != 0 && seen_add(ld, s.name, name, &first) < 0) {
		if (first)
			cf_lfail(ld, ld->line, "[%s] %s: already set on line %d", s.name, name, first);
		else
			cf_lfail(ld, ld->line, "out of memory");
		return 1;
	}
	if (strcmp(name, "add_domains") == 0 && !cf_seen_line(ld, s.name, name) &&
	    seen_add(ld, s.name, name, &first) < 0) {
		cf_lfail(ld, ld->line, "out of memory");
		return 1;
	}
	if (s.kind == S_ROUTE && !ld->route_line[s.index])
		ld->route_line[s.index] = ld->line;
	base = s.kind == S_ROUTE ? (void *)&ld->c->route[s.index] : (void *)ld->c;
	why[0] = '\0';
	if ((k->type == V_FN ? k->fn(ld, k, &s, value, why, sizeof(why))
	                     : set_value(ld, k, base, value, why, sizeof(why))) < 0) {
		cf_lfail(ld, ld->line, "[%s] %s: %s", s.name, name, why[0] ? why : "bad value");
		return 1;
	}
	return 1;
}

/*
 * libinih's line reader.  Counting here is what gives messages their line
 * numbers; headers are looked at here because libinih reports only pairs.
 */
static char *read_line(char *buf, int size, void *user)
{
	struct load *ld = user;
	char why[WU_ERR_MAX + 64], name[256];
	const char *p, *close;
	size_t len;

	if (!fgets(buf, size, ld->f))
		return NULL;
	ld->line++;
	len = strlen(buf);
	if (len && buf[len - 1] != '\n' && !feof(ld->f)) {
		int ch;

		cf_lfail(ld, ld->line, "line longer than %d characters", LINE_MAX_CHARS);
		while ((ch = fgetc(ld->f)) != EOF && ch != '\n')
			;
		return strcpy(buf, "\n"); /* the rest of the file is still read */
	}
	p = buf;
	if (ld->line == 1 && strncmp(p, "\xEF\xBB\xBF", 3) == 0)
		p += 3;
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p == '[' && (close = strchr(p, ']'))) {
		struct sect_ref s;

		len = (size_t)(close - p - 1);
		ld->bad_section = 1;
		if (len >= sizeof(name)) {
			cf_lfail(ld, ld->line, "section name too long");
			return buf;
		}
		memcpy(name, p + 1, len);
		name[len] = '\0';
		if (section_parse(ld, name, &s, why, sizeof(why)) < 0) {
			cf_lfail(ld, ld->line, "%s", why);
			return buf; /* libinih still opens it; on_pair skips its keys */
		}
		ld->bad_section = 0;
		if (s.kind == S_ROUTE && !ld->route_line[s.index])
			ld->route_line[s.index] = ld->line;
	} else if (*p && *p != ';' && *p != '#' && *p != '\r' && *p != '\n' &&
	           (*p == '[' || !strpbrk(p, "=:"))) {
		/* libinih would stop here; a blank line in its place lets it read on. */
		cf_lfail(ld, ld->line, "expected [section], key = value or a comment");
		return strcpy(buf, "\n");
	}
	return buf;
}

/* ---- public ------------------------------------------------------------ */

int wu_conf_defaults(struct wu_conf *c)
{
	static const enum sect plain[] = {S_WARMUP, S_LISTEN,   S_STORE, S_GATE, S_BACKOFF,
	                                  S_LOG,    S_SUPPRESS, S_ALERT, S_SMTP, S_DNS,
	                                  S_STATUS, S_CLUSTER};
	struct wu_conf_errors errs = {0};
	struct load ld = {.c = c, .errs = &errs};
	char why[WU_ERR_MAX + 64];
	struct sect_ref s = {0};

	memset(c, 0, sizeof(*c));
	/* The engine's own settings (schedule, pacing, throttles, gate,
	 * backoff) keep the core's defaults: the simulator and the unit tests
	 * run the core without a file. */
	if (wu_core_conf_init(&c->core) < 0)
		goto fail;
	for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
		s.kind = plain[i];
		if (cf_defaults_apply(&ld, keys, nkeys, &s, c, why, sizeof(why)) < 0)
			goto fail;
	}
	s.kind = S_WEBHOOK;
	if (cf_defaults_apply(&ld, cf_webhook_keys, cf_webhook_nkeys, &s, c, why, sizeof(why)) < 0)
		goto fail;
	/* Every route has its defaults; its type stays none until the file
	 * names one (a route without a section is not used). */
	s.kind = S_ROUTE;
	for (s.index = 0; s.index < WU_ROUTE_COUNT; s.index++)
		if (cf_defaults_apply(&ld, cf_route_keys, cf_route_nkeys, &s, &c->route[s.index], why,
		                      sizeof(why)) < 0)
			goto fail;
	c->core.nrules = wu_deferral_defaults(&c->core.isps, c->core.rules, WU_DEFER_RULES_MAX);
	return 0;
fail:
	wu_core_conf_free(&c->core);
	memset(c, 0, sizeof(*c));
	return -1;
}

int wu_conf_read_schedule(struct wu_conf *c, const char *path, char *err, size_t errlen)
{
	struct wu_schedule s;
	struct strbuf text = {0};
	size_t cap = 0; /* read up to here, then twice as far */
	FILE *f;
	int rc;

	if (strlen(path) >= sizeof(c->schedule_path))
		return cf_say(err, errlen, "schedule path too long: %s", path);
	if (!(f = fopen(path, "r")))
		return cf_say(err, errlen, "cannot read %s: %s", path, strerror(errno));
	for (;;) {
		size_t got;

		if (text.len == cap) {
			if (cap >= SCHEDULE_MAX) {
				strbuf_free(&text);
				fclose(f);
				return cf_say(err, errlen, "%s: larger than %zu MB", path,
				              SCHEDULE_MAX / MB);
			}
			cap = cap ? cap * 2 : 4096;
			if (strbuf_reserve(&text, cap - text.len) < 0) {
				strbuf_free(&text);
				fclose(f);
				return cf_say(err, errlen, "out of memory");
			}
		}
		got = fread(text.p + text.len, 1, cap - text.len, f);
		text.len += got;
		text.p[text.len] = '\0';
		if (got == 0)
			break;
	}
	if (ferror(f)) {
		strbuf_free(&text);
		fclose(f);
		return cf_say(err, errlen, "cannot read %s", path);
	}
	fclose(f);
	/* Parse aside so that a bad file leaves the current schedule intact. */
	memset(&s, 0, sizeof(s));
	s.after = c->core.schedule.after;
	rc = wu_schedule_parse(&s, text.p ? text.p : "", text.len, path, err, errlen);
	strbuf_free(&text);
	if (rc < 0)
		return -1;
	wu_schedule_free(&c->core.schedule);
	c->core.schedule = s;
	if (c->schedule_path != path)
		strcpy(c->schedule_path, path);
	return 0;
}

int wu_conf_load_all(struct wu_conf *c, const char *path, int flags, struct wu_conf_errors *errs)
{
	struct load ld;
	char dir[PATH_MAX], real[PATH_MAX];
	int rc, first = errs->n;

	if (wu_conf_defaults(c) < 0) {
		wu_conf_errors_add(errs, path, 0, "out of memory");
		return -1;
	}
	memset(&ld, 0, sizeof(ld));
	ld.c = c;
	ld.flags = flags;
	ld.errs = errs;
	ld.open_min = c->core.calendar.open_min;
	ld.close_min = c->core.calendar.close_min;
	snprintf(ld.tz, sizeof(ld.tz), "%s",
	         c->core.calendar.tz[0] ? c->core.calendar.tz : "Asia/Tokyo");

	if (cf_copy(c->path, sizeof(c->path), path) < 0) {
		wu_conf_errors_add(errs, NULL, 0, "config path too long: %.64s...", path);
		goto fail;
	}
	if (!(ld.f = fopen(path, "r"))) {
		wu_conf_errors_add(errs, path, 0, "cannot read: %s", strerror(errno));
		goto fail;
	}
	/* Absolute, so that relative paths survive a later chdir("/"). */
	snprintf(dir, sizeof(dir), "%s", path);
	if (!realpath(dirname(dir), real) || cf_copy(c->dir, sizeof(c->dir), real) < 0) {
		wu_conf_errors_add(errs, path, 0, "cannot resolve its directory: %s",
		                   strerror(errno));
		goto fail;
	}

	/*
	 * These are libinih's process-wide switches.  Continuation lines would
	 * hand us the same key twice, and a value with no '=' is a typo here.
	 * Errors are recorded as they come and reading goes on, so that one
	 * run names every bad line.
	 */
	ini_allow_multiline = false;
	ini_allow_no_value = false;
	ini_allow_inline_comments = true;
	ini_stop_on_first_error = false;

	rc = ini_parse_stream(read_line, &ld, on_pair, &ld);
	if (ferror(ld.f))
		cf_lfail(&ld, 0, "read error");
	if (rc > 0)
		cf_lfail(&ld, rc, "expected [section], key = value or a comment");
	else if (rc < 0)
		cf_lfail(&ld, 0, "cannot parse (error %d)", rc);
	cf_finish(&ld);
	fclose(ld.f);
	ld.f = NULL;
	c->store_line = cf_seen_line(&ld, "store", "path");
	c->listen_line = cf_seen_line(&ld, "listen", "address");
	c->smtpd.address_line = cf_seen_line(&ld, "smtp", "address");
	c->smtpd.users_line = cf_seen_line(&ld, "smtp", "users_file");
	c->smtpd.tls_cert_line = cf_seen_line(&ld, "smtp", "tls_cert_file");
	c->status.viewers_line = cf_seen_line(&ld, "status", "viewers_file");
	for (int i = 0; i < ld.nseen; i++)
		free(ld.seen[i].section), free(ld.seen[i].key);
	free(ld.seen);
	ld.seen = NULL;
	ld.nseen = 0;
	if (errs->n > first || errs->lost)
		goto fail;
	return 0;
fail:
	if (ld.f)
		fclose(ld.f);
	for (int i = 0; i < ld.nseen; i++)
		free(ld.seen[i].section), free(ld.seen[i].key);
	free(ld.seen);
	if (!(flags & WU_CONF_KEEP))
		wu_conf_free(c);
	return -1;
}

int wu_conf_load(struct wu_conf *c, const char *path, int flags, char *err, size_t errlen)
{
	struct wu_conf_errors errs = {0};
	int rc = wu_conf_load_all(c, path, flags & ~WU_CONF_KEEP, &errs);

	if (rc < 0)
		cf_say(err, errlen, "%s", errs.n ? errs.e[0].text : "out of memory");
	wu_conf_errors_free(&errs);
	return rc;
}

int wu_conf_errors_add(struct wu_conf_errors *e, const char *path, int line, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	errors_vadd(e, path, line, fmt, ap);
	va_end(ap);
	return -1;
}

int wu_conf_errors_on(const struct wu_conf_errors *e, int line)
{
	for (int i = 0; line > 0 && i < e->n; i++)
		if (e->e[i].line == line)
			return 1;
	return 0;
}

void wu_conf_errors_free(struct wu_conf_errors *e)
{
	for (int i = 0; i < e->n; i++)
		free(e->e[i].text);
	free(e->e);
	memset(e, 0, sizeof(*e));
}

void wu_conf_free(struct wu_conf *c)
{
	if (c->cluster.password) {
		explicit_bzero(c->cluster.password, strlen(c->cluster.password));
		free(c->cluster.password);
		c->cluster.password = NULL;
	}
	if (c->token) {
		explicit_bzero(c->token, strlen(c->token));
		free(c->token);
	}
	for (int r = 0; r < WU_ROUTE_COUNT; r++) {
		if (c->route[r].secret) {
			explicit_bzero(c->route[r].secret, strlen(c->route[r].secret));
			free(c->route[r].secret);
		}
	}
	if (c->alert_url) {
		explicit_bzero(c->alert_url, strlen(c->alert_url));
		free(c->alert_url);
	}
	free(c->webhook.public_key);
	if (c->webhook.password) {
		explicit_bzero(c->webhook.password, strlen(c->webhook.password));
		free(c->webhook.password);
	}
	wu_core_conf_free(&c->core);
	explicit_bzero(c, sizeof(*c));
}
