/*
 * mxcache.c -- domain -> MX group answers, bounded, with their TTL.
 *
 * Chained hashing over a fixed array of entries used in order and then
 * reused in a ring: the slot after the newest is the oldest, so eviction
 * when full is O(1) and needs no list.  A refreshed entry keeps its slot
 * (and so its age): a busy domain may be evicted and asked again once per
 * `max` new domains, which costs one query.
 */
#include "mxcache.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "isp.h"

struct entry {
	char *domain; /* lower case, no trailing dot; NULL: unused */
	int isp;
	int known; /* an answer came, at least once */
	wu_time_t expires;
	wu_time_t asked; /* a query running since; 0: none */
	int named;       /* name_isp is the name's own verdict (wu_isp_classify) */
	int name_isp;
	int next; /* in the bucket's chain; -1 ends it */
};

struct wu_mxcache {
	int max, used, oldest; /* used grows to max, then oldest walks the ring */
	unsigned nbuckets;     /* a power of two, at least 2 * max */
	int *bucket;
	struct entry *e;
};

/* The lower-cased name without its trailing dot, or -1 when too long. */
static int norm(const char *domain, char *out)
{
	size_t n = strlen(domain);

	if (n && domain[n - 1] == '.')
		n--;
	if (n == 0 || n > 253)
		return -1;
	for (size_t i = 0; i < n; i++)
		out[i] = (char)tolower((unsigned char)domain[i]);
	out[n] = '\0';
	return 0;
}

/* FNV-1a. */
static unsigned hash(const char *s)
{
	unsigned h = 2166136261u;

	while (*s)
		h = (h ^ (unsigned char)*s++) * 16777619u;
	return h;
}

int wu_mxcache_create(struct wu_mxcache **cp, int max)
{
	struct wu_mxcache *c = calloc(1, sizeof(*c));

	*cp = NULL;
	if (!c)
		return -1;
	c->max = max < 1 ? 1 : max;
	c->nbuckets = 16;
	while (c->nbuckets < 2u * (unsigned)c->max)
		c->nbuckets *= 2;
	c->bucket = malloc(c->nbuckets * sizeof(*c->bucket));
	c->e = calloc((size_t)c->max, sizeof(*c->e));
	if (!c->bucket || !c->e) {
		wu_mxcache_free(c);
		return -1;
	}
	for (unsigned i = 0; i < c->nbuckets; i++)
		c->bucket[i] = -1;
	*cp = c;
	return 0;
}

void wu_mxcache_free(struct wu_mxcache *c)
{
	if (!c)
		return;
	for (int i = 0; c->e && i < c->used; i++)
		free(c->e[i].domain);
	free(c->e);
	free(c->bucket);
	free(c);
}

static struct entry *find(const struct wu_mxcache *c, const char *d)
{
	for (int i = c->bucket[hash(d) & (c->nbuckets - 1)]; i >= 0; i = c->e[i].next)
		if (strcmp(c->e[i].domain, d) == 0)
			return &c->e[i];
	return NULL;
}

/* The entry of d, made (evicting the oldest when full) if new. */
static struct entry *take(struct wu_mxcache *c, const char *d)
{
	struct entry *e = find(c, d);
	unsigned b = hash(d) & (c->nbuckets - 1);
	char *copy;
	int slot;

	if (e)
		return e;
	if (!(copy = strdup(d)))
		return NULL;
	if (c->used < c->max) {
		slot = c->used++;
	} else {
		slot = c->oldest;
		c->oldest = (c->oldest + 1) % c->max;
		e = &c->e[slot];
		for (int *p = &c->bucket[hash(e->domain) & (c->nbuckets - 1)]; *p >= 0;
		     p = &c->e[*p].next)
			if (*p == slot) {
				*p = e->next;
				break;
			}
		free(e->domain);
	}
	e = &c->e[slot];
	*e = (struct entry){.domain = copy, .isp = WU_ISP_OTHER, .next = c->bucket[b]};
	c->bucket[b] = slot;
	return e;
}

int wu_mxcache_get(const struct wu_mxcache *c, const char *domain, wu_time_t now, int *isp,
                   wu_time_t *asked)
{
	char d[256];
	const struct entry *e;
	int running, bits = 0;

	*isp = WU_ISP_OTHER;
	*asked = 0;
	if (norm(domain, d) < 0)
		return 0; /* no name: nothing to ask */
	if (!(e = find(c, d)))
		return WU_MX_ASK;
	running = e->asked && now - e->asked < WU_MX_QUERY_MAX;
	if (e->known) {
		bits |= WU_MX_KNOWN;
		*isp = e->isp;
	}
	if (running)
		*asked = e->asked;
	else if (!e->known || now >= e->expires)
		bits |= WU_MX_ASK;
	return bits;
}

int wu_mxcache_asked(struct wu_mxcache *c, const char *domain, wu_time_t now)
{
	char d[256];
	struct entry *e;

	if (norm(domain, d) < 0 || !(e = take(c, d)))
		return -1;
	e->asked = now;
	return 0;
}

int wu_mxcache_put(struct wu_mxcache *c, const char *domain, int isp, wu_time_t expires)
{
	char d[256];
	struct entry *e;

	if (norm(domain, d) < 0 || !(e = take(c, d)))
		return -1;
	e->isp = isp;
	e->known = 1;
	e->expires = expires;
	e->asked = 0;
	return 0;
}

int wu_mxcache_failed(struct wu_mxcache *c, const char *domain, wu_time_t now)
{
	char d[256];
	struct entry *e;

	if (norm(domain, d) < 0 || !(e = take(c, d)))
		return -1;
	e->known = 1; /* e->isp: the last answer, or other */
	e->expires = now + WU_MX_FAILED;
	e->asked = 0;
	return 0;
}

wu_time_t wu_mxcache_expiry(wu_time_t now, int64_t ttl_seconds)
{
	wu_time_t ttl = ttl_seconds < 0 ? 0 : ttl_seconds * WU_USEC;

	if (ttl_seconds > WU_MX_TTL_MAX / WU_USEC)
		ttl = WU_MX_TTL_MAX;
	if (ttl < WU_MX_TTL_MIN)
		ttl = WU_MX_TTL_MIN;
	return now + ttl;
}

int wu_mxcache_group(struct wu_mxcache *c, const struct wu_isp_table *t, const char *domain,
                     wu_time_t now, int *bits, wu_time_t *asked)
{
	const char *at = strrchr(domain, '@');
	struct entry *e;
	char d[256];
	int isp;

	*bits = 0;
	*asked = 0;
	if (at)
		domain = at + 1;
	if (!c || norm(domain, d) < 0)
		return wu_isp_classify(t, domain);
	/* The name's verdict is kept with the domain: the table is scanned
	 * once per domain, not per message (~900 instructions of the
	 * simulator's ~1,800 per message with every message classified). */
	if (!(e = find(c, d)) || !e->named) {
		isp = wu_isp_classify(t, d);
		if (!e)
			e = take(c, d);
		if (e) {
			e->named = 1;
			e->name_isp = isp;
		}
		if (isp != WU_ISP_OTHER)
			return isp;
	} else if (e->name_isp != WU_ISP_OTHER) {
		return e->name_isp;
	}
	*bits = wu_mxcache_get(c, d, now, &isp, asked);
	return isp;
}

int wu_mxcache_size(const struct wu_mxcache *c)
{
	return c->used;
}
