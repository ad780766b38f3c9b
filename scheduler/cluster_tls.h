/*
 * cluster_tls.h -- the cluster's rediss:// link: TLS to Redis through a
 * private hop on the loop.
 *
 * Debian's hiredis (0.14) speaks only plain sockets, so the daemon carries
 * the TLS itself: hiredis connects to a Unix socket in a directory only
 * the daemon's user can enter (mode 0700), and each connection made there
 * is joined to a TLS connection to the Redis server (OpenSSL on memory
 * BIOs, tlsmem.h).  The server's certificate is checked against
 * [cluster] tls_ca_file (or the system's trusted certificates) and must
 * name the URL's host; a client certificate is sent when tls_cert_file is
 * given (Redis asks for one unless tls-auth-clients is off).  A failed
 * handshake or a dropped link closes the hiredis side, and the cluster's
 * own reconnection takes over.
 */
#ifndef WU_CLUSTER_TLS_H
#define WU_CLUSTER_TLS_H

#include <stddef.h>
#include <uv.h>

#include "cluster_conf.h"

struct cluster_tls;

/* Sets up the hop: the TLS context (the files are read now) and the Unix
 * socket.  Returns 0, or -1 with a message naming the key and file. */
int cluster_tls_start(struct cluster_tls **tp, uv_loop_t *loop, const struct wu_cluster_conf *conf,
                      char *err, size_t errlen);

/* The Unix socket hiredis connects to. */
const char *cluster_tls_path(const struct cluster_tls *t);

/* Closes the socket and every link, removes the directory; the rest is
 * freed once the loop has closed the handles. */
void cluster_tls_stop(struct cluster_tls *t);

/* Checks the TLS files of conf (for --check): 0, or -1 with a message. */
int cluster_tls_check(const struct wu_cluster_conf *conf, char *err, size_t errlen);

#endif
