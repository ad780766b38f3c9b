/*
 * mx.c -- c-ares on the libuv loop, filling the MX cache.
 *
 * The glue is curl's multi-uv shape: c-ares's socket-state callback starts
 * and stops one uv_poll per socket, one uv_timer follows ares_timeout(),
 * and every poll or timer event is an ares_process_fd().  A query's answer
 * lands in core/mxcache.c; classification reads only the cache, so the
 * intake and the dispatcher never wait on DNS.
 *
 * The primary exchanger decides: the lowest preference, and among equal
 * ones the first that some group claims.  A backup MX at Google behind a
 * filtering service does not make the domain Google's; the filter is who
 * receives the mail.
 *
 * Names with an "example" label and the special-use TLDs (.test, .example,
 * .invalid, .localhost; RFC 2606, RFC 6761) are never asked: they have no
 * MX, and tests use them.
 */
#include "mx.h"

#include <ares.h>
#include <arpa/nameser.h>
#include <stdlib.h>
#include <string.h>

#include "core/isp.h"
#include "core/mxcache.h"
#include "log.h"

struct mx_poll {
	uv_poll_t h;
	struct mx *m;
	ares_socket_t fd;
	struct mx_poll *next;
};

struct mx_query {
	struct mx *m;
	char domain[256];
};

struct mx {
	struct wu_daemon *d;
	const struct wu_isp_table *isps;
	struct wu_mxcache *cache;
	wu_time_t wait;
	ares_channel ch; /* NULL: by name only */
	int lib;         /* ares_library_init done */
	uv_timer_t timer;
	struct mx_poll *polls;
	int open_handles; /* timer and polls not yet closed */
	int closing;
	void (*on_answer)(void *);
	void *on_answer_arg;
};

/* Frees m once nothing of it is open on the loop. */
static void maybe_free(struct mx *m)
{
	if (!m->closing || m->open_handles > 0)
		return;
	wu_mxcache_free(m->cache);
	if (m->lib)
		ares_library_cleanup();
	free(m);
}

static void on_poll_closed(uv_handle_t *h)
{
	struct mx_poll *p = h->data;
	struct mx *m = p->m;

	free(p);
	m->open_handles--;
	maybe_free(m);
}

static void on_timer_closed(uv_handle_t *h)
{
	struct mx *m = h->data;

	m->open_handles--;
	maybe_free(m);
}

static void on_timer(uv_timer_t *t);

/* Arms the timer for c-ares's next timeout. */
static void arm(struct mx *m)
{
	struct timeval tv, *t;

	if (!m->ch || m->closing)
		return;
	if (!(t = ares_timeout(m->ch, NULL, &tv))) {
		uv_timer_stop(&m->timer);
		return;
	}
	uv_timer_start(&m->timer, on_timer,
	               (uint64_t)t->tv_sec * 1000 + ((uint64_t)t->tv_usec + 999) / 1000, 0);
}

static void on_timer(uv_timer_t *t)
{
	struct mx *m = t->data;

	ares_process_fd(m->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	arm(m);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
	struct mx_poll *p = h->data;
	struct mx *m = p->m;
	ares_socket_t fd = p->fd;

	/* A poll error: let c-ares read and write, and find the error itself. */
	ares_process_fd(m->ch, status < 0 || (events & UV_READABLE) ? fd : ARES_SOCKET_BAD,
	                status < 0 || (events & UV_WRITABLE) ? fd : ARES_SOCKET_BAD);
	arm(m);
}

/* c-ares opened, changed or closed a socket. */
static void on_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
	struct mx *m = data;
	struct mx_poll **pp, *p;

	for (pp = &m->polls; (p = *pp) && p->fd != fd; pp = &p->next)
		;
	if (!readable && !writable) {
		if (p) {
			*pp = p->next;
			uv_poll_stop(&p->h);
			uv_close((uv_handle_t *)&p->h, on_poll_closed);
		}
		return;
	}
	if (!p) {
		if (!(p = calloc(1, sizeof(*p))))
			return; /* the query times out: "other" */
		p->m = m;
		p->fd = fd;
		p->h.data = p;
		if (uv_poll_init_socket(m->d->loop, &p->h, fd) < 0) {
			free(p);
			return;
		}
		m->open_handles++;
		p->next = m->polls;
		m->polls = p;
	}
	uv_poll_start(&p->h, (readable ? UV_READABLE : 0) | (writable ? UV_WRITABLE : 0), on_poll);
}

/* The least TTL of the answer section's MX records, or -1. */
static int64_t answer_ttl(const unsigned char *abuf, int alen)
{
	const unsigned char *p = abuf + NS_HFIXEDSZ, *end = abuf + alen;
	int qd, an;
	int64_t ttl = -1;

	if (alen < NS_HFIXEDSZ)
		return -1;
	qd = abuf[4] << 8 | abuf[5];
	an = abuf[6] << 8 | abuf[7];
	for (int i = 0; i < qd + an; i++) {
		char *name;
		long len;
		int type;
		uint32_t t;
		unsigned rdlen;

		if (ares_expand_name(p, abuf, alen, &name, &len) != ARES_SUCCESS)
			return ttl;
		ares_free_string(name);
		p += len;
		if (i < qd) {
			p += NS_QFIXEDSZ;
			continue;
		}
		if (end - p < NS_RRFIXEDSZ)
			return ttl;
		type = p[0] << 8 | p[1];
		t = (uint32_t)p[4] << 24 | (uint32_t)p[5] << 16 | (uint32_t)p[6] << 8 | p[7];
		rdlen = (unsigned)(p[8] << 8 | p[9]);
		p += NS_RRFIXEDSZ + rdlen;
		if (p > end)
			return ttl;
		if (type == ns_t_mx && (ttl < 0 || t < ttl))
			ttl = t;
	}
	return ttl;
}

/* The group of the primary exchangers in an MX answer, and its host. */
static int primary_group(const struct mx *m, struct ares_mx_reply *list, const char **host)
{
	int best = -1, isp = WU_ISP_OTHER;

	*host = "";
	for (struct ares_mx_reply *r = list; r; r = r->next)
		if (best < 0 || r->priority < best)
			best = r->priority;
	for (struct ares_mx_reply *r = list; r; r = r->next) {
		if (r->priority != best)
			continue;
		if (!**host)
			*host = r->host;
		if ((isp = wu_isp_classify_mx(m->isps, r->host)) != WU_ISP_OTHER) {
			*host = r->host;
			break;
		}
	}
	return isp;
}

static void on_answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct mx_query *q = arg;
	struct mx *m = q->m;
	wu_time_t now;
	struct ares_mx_reply *list = NULL;

	(void)timeouts;
	if (status == ARES_EDESTRUCTION || m->closing) {
		free(q);
		return;
	}
	now = daemon_now(m->d);
	if (status == ARES_SUCCESS)
		status = ares_parse_mx_reply(abuf, alen, &list);
	if (status == ARES_SUCCESS) {
		const char *host;
		int isp = primary_group(m, list, &host);
		int64_t ttl = answer_ttl(abuf, alen);

		wu_mxcache_put(m->cache, q->domain, isp, wu_mxcache_expiry(now, ttl));
		wu_debug("mx: %s -> %s (%s), ttl %lld s", q->domain, host, m->isps->names[isp],
		         (long long)ttl);
		m->d->extra.dns_found++;
	} else if (status == ARES_ENOTFOUND || status == ARES_ENODATA) {
		/* NXDOMAIN, or no MX: mail goes to the domain's own address. */
		wu_mxcache_put(m->cache, q->domain, WU_ISP_OTHER, now + WU_MX_NEGATIVE);
		wu_debug("mx: %s: %s, other", q->domain, ares_strerror(status));
		m->d->extra.dns_negative++;
	} else {
		wu_mxcache_failed(m->cache, q->domain, now);
		wu_debug("mx: %s: %s; grouped by name, asked again in %d s", q->domain,
		         ares_strerror(status), (int)(WU_MX_FAILED / WU_USEC));
		m->d->extra.dns_failed++;
	}
	if (list)
		ares_free_data(list);
	free(q);
	if (m->on_answer)
		m->on_answer(m->on_answer_arg);
}

/* Names that have no MX by definition: never asked. */
static int reserved(const char *d)
{
	static const char *const tld[] = {"test", "example", "invalid", "localhost"};
	const char *last = strrchr(d, '.');
	size_t n = strlen(d);

	if (n && d[n - 1] == '.')
		n--;
	last = last ? last + 1 : d;
	for (size_t i = 0; i < sizeof(tld) / sizeof(tld[0]); i++)
		if (strcasecmp(last, tld[i]) == 0)
			return 1;
	for (const char *s = d; s && *s; s = strchr(s, '.') ? strchr(s, '.') + 1 : NULL)
		if (strncasecmp(s, "example.", 8) == 0)
			return 1;
	return 0;
}

/* Starts a query for domain. */
static void ask(struct mx *m, const char *domain, wu_time_t now)
{
	struct mx_query *q;

	if (!m->ch || m->closing || reserved(domain) || !(q = malloc(sizeof(*q))))
		return;
	q->m = m;
	if (strlen(domain) >= sizeof(q->domain) || wu_mxcache_asked(m->cache, domain, now) < 0) {
		free(q);
		return;
	}
	strcpy(q->domain, domain);
	m->d->extra.dns_queries++;
	ares_query(m->ch, domain, ns_c_in, ns_t_mx, on_answer, q);
	arm(m);
}

int mx_classify(struct mx *m, const char *domain, wu_time_t now, wu_time_t *hold)
{
	const char *at = strrchr(domain, '@');
	wu_time_t asked;
	int bits,
	    isp = wu_mxcache_group(m->ch ? m->cache : NULL, m->isps, domain, now, &bits, &asked);

	if (hold)
		*hold = 0;
	if (bits & WU_MX_ASK) {
		ask(m, at ? at + 1 : domain, now);
		if (!(bits & WU_MX_KNOWN))
			wu_mxcache_get(m->cache, at ? at + 1 : domain, now, &isp, &asked);
	}
	if (hold && !(bits & WU_MX_KNOWN) && asked && asked + m->wait > now)
		*hold = asked + m->wait;
	return isp;
}

void mx_on_answer(struct mx *m, void (*fn)(void *arg), void *arg)
{
	m->on_answer = fn;
	m->on_answer_arg = arg;
}

/* Sets up the c-ares channel; -1 with a message when it cannot. */
static int channel_open(struct mx *m, const struct wu_dns_conf *c, char *err, size_t errlen)
{
	struct ares_options o;
	int rc;

	memset(&o, 0, sizeof(o));
	if ((rc = ares_library_init(ARES_LIB_INIT_ALL)) != ARES_SUCCESS)
		goto fail;
	m->lib = 1;
	o.sock_state_cb = on_sock_state;
	o.sock_state_cb_data = m;
	o.timeout = (int)(c->timeout / 1000);
	o.tries = 2;
	if ((rc = ares_init_options(
	         &m->ch, &o, ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES)) !=
	    ARES_SUCCESS) {
		m->ch = NULL;
		goto fail;
	}
	if (c->servers[0] && (rc = ares_set_servers_ports_csv(m->ch, c->servers)) != ARES_SUCCESS) {
		ares_destroy(m->ch);
		m->ch = NULL;
		goto fail;
	}
	return 0;
fail:
	snprintf(err, errlen, "%s", ares_strerror(rc));
	return -1;
}

int mx_create(struct mx **mp, struct wu_daemon *d)
{
	struct mx *m = calloc(1, sizeof(*m));
	const struct wu_dns_conf *c = &d->conf.dns;
	char err[128];

	*mp = NULL;
	if (!m || wu_mxcache_create(&m->cache, c->cache) < 0) {
		free(m);
		return -1;
	}
	m->d = d;
	m->isps = &wu_engine_conf(d->engine)->isps;
	m->wait = c->wait;
	uv_timer_init(d->loop, &m->timer);
	m->timer.data = m;
	m->open_handles = 1;
	if (c->mx && channel_open(m, c, err, sizeof(err)) < 0)
		wu_warn("[dns]: the resolver cannot start (%s); ISP groups by domain name only",
		        err);
	else if (c->mx)
		wu_info("MX lookups for ISP groups via %s",
		        c->servers[0] ? c->servers : "resolv.conf");
	*mp = m;
	return 0;
}

void mx_close(struct mx *m)
{
	if (!m || m->closing)
		return;
	m->closing = 1;
	if (m->ch) {
		ares_destroy(m->ch); /* each query's callback runs with ARES_EDESTRUCTION */
		m->ch = NULL;
	}
	while (m->polls) {
		struct mx_poll *p = m->polls;
		m->polls = p->next;
		uv_poll_stop(&p->h);
		uv_close((uv_handle_t *)&p->h, on_poll_closed);
	}
	uv_close((uv_handle_t *)&m->timer, on_timer_closed);
}

void mx_set_isps(struct mx *m, const struct wu_isp_table *isps)
{
	if (m)
		m->isps = isps;
}
