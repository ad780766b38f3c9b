/*
 * sender.h -- one interface, one implementation per route type.
 *
 * A route takes a batch of units that share one content and sends them: the
 * SendGrid v3 route as one request of up to 1000 personalizations, the SMTP
 * route as one message per personalization.  When the batch is done the
 * callback receives one result per unit.  The sender never touches the store;
 * the dispatcher turns results into state changes and engine outcomes.
 */
#ifndef WU_SENDER_H
#define WU_SENDER_H

#include <stdint.h>

#include "curluv.h"
#include "route.h"

struct snd_item {
	int64_t unit_id;
	int isp;
	const char *personalization; /* JSON object text, as stored */
};

struct snd_batch {
	enum snd_role role;    /* mail for the new route, or overflow for the old */
	int64_t content_id;
	const char *content;   /* v3 body JSON without "personalizations"; with raw,
	                        * "content" and "attachments" may be left out: the
	                        * API route makes them from raw (rawmail_parse) */
	const char *raw;       /* the message as taken over SMTP, byte for byte, or NULL */
	size_t raw_len;
	const char *mail_from; /* its envelope sender ("" for <>); NULL with raw */
	const char *msgid;     /* the X-Message-Id intake gave the request */
	int warmup_day;        /* schedule step, sent as custom arg warmup_day */
	int nitems;
	struct snd_item *items;
	void *user;            /* the caller's, untouched */
};

enum snd_status {
	SND_ACCEPTED, /* 2xx: the provider took it */
	SND_TEMPFAIL, /* 429, 5xx, 4xx SMTP reply, refused connection: retry */
	SND_TIMEOUT,  /* no answer in time: retry, it may have been taken */
	SND_PERMFAIL, /* 400, 413, 5xx SMTP reply: do not retry */
	SND_AUTHFAIL  /* 401, 403, failed AUTH: pause the route, keep the unit */
};

struct snd_result {
	enum snd_status status;
	long code;             /* HTTP status or SMTP reply code; 0 = none */
	int64_t retry_after;   /* microseconds to wait before retrying, 0 = unknown */
	char provider_id[128]; /* X-Message-Id, or the SMTP queue id */
	char error[256];       /* the reason, without secrets */
};

struct snd_route;

/* results[i] belongs to b->items[i]. The batch stays the caller's. */
typedef void (*snd_done_cb)(struct snd_batch *b, const struct snd_result *results, void *arg);

/* Creates a route of conf->type.  Returns 0, or -1 with a message. */
int snd_route_create(struct snd_route **r, const struct snd_route_conf *conf, struct curluv *cu,
		     char *err, size_t errlen);

/* Starts sending a batch. Returns 0, or -1 when the route cannot take it now
 * (the callback is then not called). */
int snd_route_send(struct snd_route *r, struct snd_batch *b, snd_done_cb done, void *arg);

/* Requests under way, and the most the route allows at once. */
int snd_route_inflight(const struct snd_route *r);
int snd_route_capacity(const struct snd_route *r);

/* Most units one batch may carry (1000 for v3, 1 for SMTP). */
int snd_route_batch_max(const struct snd_route *r);

/* Frees the route; transfers still running are aborted first.  Each aborted
 * batch still gets its callback, from inside this call, with SND_TEMPFAIL
 * for every unit (accepts NULL). */
void snd_route_free(struct snd_route *r);

const char *snd_status_name(enum snd_status s);

#endif
