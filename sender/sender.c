/*
 * sender.c -- one interface in front of every route type.
 *
 * DESCRIPTION
 *	snd_route_create() looks conf->type up in a table of backends and keeps
 *	the backend's functions next to its state; every other call goes
 *	through them.  A type with no backend compiled in is refused with a
 *	message rather than a crash, so a config naming it fails at startup.
 *
 * DIAGNOSTICS
 *	snd_route_create() writes why it failed into err.
 */
#include "sender.h"

#include <stdio.h>
#include <stdlib.h>

#include "sender_backend.h"

struct snd_route {
	const struct snd_backend *be;
	void *impl;
};

/* Route types by conf->type. */
static const struct snd_backend *const snd_backends[] = {
    [SND_TYPE_NONE] = NULL,
    [SND_TYPE_SENDGRID] = &snd_sendgrid_backend,
    [SND_TYPE_SMTP] = &snd_smtp_backend,
};

#define SND_NTYPES (sizeof(snd_backends) / sizeof(snd_backends[0]))

/* Picks the backend for conf->type and lets it build its state. */
int snd_route_create(struct snd_route **rp, const struct snd_route_conf *conf, struct curluv *cu,
                     char *err, size_t errlen)
{
	const struct snd_backend *be;
	struct snd_route *r;
	unsigned t = (unsigned)conf->type;

	*rp = NULL;
	if (t >= SND_NTYPES || t == SND_TYPE_NONE) {
		snprintf(err, errlen, "route type %u is not a route type", t);
		return -1;
	}
	be = snd_backends[t];
	r = calloc(1, sizeof(*r));
	if (r == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	r->be = be;
	if (be->create(&r->impl, conf, cu, err, errlen) < 0) {
		free(r);
		return -1;
	}
	*rp = r;
	return 0;
}

/* Hands a batch to the route's backend. */
int snd_route_send(struct snd_route *r, struct snd_batch *b, snd_done_cb done, void *arg)
{
	return r->be->send(r->impl, b, done, arg);
}

/* Requests under way. */
int snd_route_inflight(const struct snd_route *r)
{
	return r->be->inflight(r->impl);
}

/* Requests the route allows at once. */
int snd_route_capacity(const struct snd_route *r)
{
	return r->be->capacity(r->impl);
}

/* Units one batch may carry. */
int snd_route_batch_max(const struct snd_route *r)
{
	return r->be->batch_max(r->impl);
}

/* Frees the route; the backend aborts what is still running. */
void snd_route_free(struct snd_route *r)
{
	if (r == NULL)
		return;
	r->be->free(r->impl);
	free(r);
}

/* Stable lower-case names, for logs, events and status output. */
const char *snd_status_name(enum snd_status s)
{
	switch (s) {
	case SND_ACCEPTED:
		return "accepted";
	case SND_TEMPFAIL:
		return "tempfail";
	case SND_TIMEOUT:
		return "timeout";
	case SND_PERMFAIL:
		return "permfail";
	case SND_AUTHFAIL:
		return "authfail";
	}
	return "unknown";
}
