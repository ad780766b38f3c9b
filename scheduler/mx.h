/*
 * mx.h -- recipient domains grouped by their mail exchangers, on the loop.
 *
 * A domain no ISP group claims by name (acme.co.jp) is grouped by the
 * host its MX record names (aspmx.l.google.com: google).  The answers come
 * from c-ares on the daemon's libuv loop and are kept in a bounded cache
 * with the record's TTL (core/mxcache.h).  Nothing here ever waits: a
 * domain not yet known is "other" for now and asked in the background;
 * the dispatcher may hold its units up to [dns] wait for the answer.
 * DNS failures only ever mean "other".
 */
#ifndef WU_MX_H
#define WU_MX_H

#include "daemon.h"

struct mx;

/* Starts the resolver of d->conf.dns on d->loop for the engine's ISP table.
 * When c-ares cannot start (or mx = off) domains are grouped by name only,
 * with a warning: never an error.  Returns 0 or -1 (no memory). */
int mx_create(struct mx **mp, struct wu_daemon *d);

/* fn(arg) runs after an answer changed what the cache knows. */
void mx_on_answer(struct mx *m, void (*fn)(void *arg), void *arg);

/* The group of a recipient domain (or address) at now: by name, else by
 * its cached MX answer (an expired one too, while it is asked again);
 * other while unknown.  A domain not known, or expired, is asked.  hold,
 * when not NULL, gets the time until which a unit of this domain should
 * wait for the first answer (0: it need not wait). */
int mx_classify(struct mx *m, const char *domain, wu_time_t now, wu_time_t *hold);

/* The ISP table to classify with from now on (the engine's, after a
 * reload gave it a new one). */
void mx_set_isps(struct mx *m, const struct wu_isp_table *isps);

/* Cancels queries and closes the loop handles; m is freed once they are
 * closed.  NULL is fine. */
void mx_close(struct mx *m);

#endif
