/*
 * sender_backend.h -- what a route type provides to sender.c.
 *
 * One table of functions per route type, chosen by conf->type, in the way
 * OpenSMTPD's queue_backend.c picks a queue backend.  The functions mirror
 * sender.h one for one; impl is the type's own state.  Only sender.c and
 * the route types include this file.
 */
#ifndef WU_SENDER_BACKEND_H
#define WU_SENDER_BACKEND_H

#include "sender.h"

struct snd_backend {
	const char *name; /* as written in the config: "sendgrid", "smtp" */
	int (*create)(void **impl, const struct snd_route_conf *conf, struct curluv *cu, char *err,
	              size_t errlen);
	int (*send)(void *impl, struct snd_batch *b, snd_done_cb done, void *arg);
	int (*inflight)(const void *impl);
	int (*capacity)(const void *impl);
	int (*batch_max)(const void *impl);
	void (*free)(void *impl);
};

/* SendGrid Web API v3 (sendgrid.c). */
extern const struct snd_backend snd_sendgrid_backend;

/* SMTP relay: the old relay, or SendGrid's SMTP relay (smtp.c). */
extern const struct snd_backend snd_smtp_backend;

#endif
