/*
 * reload_fixed.h -- what a reload cannot change: the keys bound at the
 * start (listen sockets, the store, the routes' endpoints and secrets, the
 * SMTP intake, the resolver, the Event Webhook's credentials, the status
 * page's viewers, the time zone), compared between the running configuration and a new one.
 */
#ifndef WU_RELOAD_FIXED_H
#define WU_RELOAD_FIXED_H

#include "config.h"

/* Adds one message per key that differs to e, each naming the new file,
 * the line when known and the key: "warmupd.conf:4: [listen] address:
 * cannot change on reload (127.0.0.1:8025 -> 127.0.0.1:8026); restart
 * warmupd".  Secrets are named, never shown.  Returns how many differ. */
int reload_fixed_diff(const struct wu_conf *old, const struct wu_conf *nw,
                      struct wu_conf_errors *e);

#endif
