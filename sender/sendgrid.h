/*
 * sendgrid.h -- the body of a SendGrid v3 /mail/send request, as the
 * SendGrid route builds it from stored units.
 *
 * Apart from the route (sendgrid.c) so that it can be checked without a
 * network: a fuzz target builds it for whatever the intake accepts.
 */
#ifndef WU_SENDGRID_H
#define WU_SENDGRID_H

#include "sender.h"

/* What the route's configuration adds to every request. */
struct sendgrid_opts {
	int click, open, sub; /* tracking settings, 0 or 1 */
	int force;            /* 1: they override the application's; 0: defaults */
	const char *ip_pool;  /* "" or NULL = none */
};

/* The stored content of b with "personalizations" made from its items in
 * order, the custom args warmup_day and warmup_route, the tracking settings
 * and the IP pool set.  skip has b->nitems bytes: an item whose stored
 * personalization is not a JSON object gets 1 and is left out.  Returns 0
 * with *out malloc'd; -1 for bad stored data (err says why); -2 when
 * memory ran out. */
int sendgrid_body(const struct snd_batch *b, const struct sendgrid_opts *o, unsigned char *skip,
                  char **out, char *err, size_t errlen);

#endif
