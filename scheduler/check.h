/*
 * check.h -- the checks of `warmupd --check` beyond the file: the store's
 * directory exists and is writable (or can be made), the listen ports bind.
 * Each adds its problems to the list wu_conf_load_all filled and returns 0,
 * or -1 when it added one.
 */
#ifndef WU_CHECK_H
#define WU_CHECK_H

#include "config.h"

/* The directory of [store] path: writable, or missing with a writable
 * parent.  create = 1 (the daemon's start) makes the missing directory. */
int check_store(const struct wu_conf *c, struct wu_conf_errors *e, int create);

/* [listen] address and [smtp] address bind (and are closed again). */
int check_ports(const struct wu_conf *c, struct wu_conf_errors *e);

/* The files a start reads beyond the configuration: [smtp] users_file,
 * its certificate and key, [status] viewers_file.  Each one that would
 * stop a start is a message naming its key.  Returns 0 or -1. */
int check_files(const struct wu_conf *c, struct wu_conf_errors *e);

#endif
