/*
 * tlsmem.h -- TLS on OpenSSL memory BIOs: the server side of the SMTP
 * intake's STARTTLS, the client side of the cluster's rediss:// link.
 *
 * The session owns the socket (libuv); OpenSSL only ever sees bytes: what
 * arrived goes in with tlsmem_feed(), which hands back the plain text it
 * could decrypt; plain text to send goes in with tlsmem_write(); what
 * OpenSSL wants on the wire (records, handshake messages) is taken with
 * tlsmem_pending().  No socket is shared between libuv and OpenSSL.
 */
#ifndef WU_TLSMEM_H
#define WU_TLSMEM_H

#include <stddef.h>

#include "sender/strbuf.h"

struct tlsmem_ctx;
struct tlsmem;

/* A server context from a PEM certificate chain and key (TLS 1.2 or
 * later).  Returns 0, or -1 with a message naming the file. */
int tlsmem_ctx_new(struct tlsmem_ctx **ctx, const char *cert_file, const char *key_file, char *err,
                   size_t errlen);
void tlsmem_ctx_free(struct tlsmem_ctx *ctx);

/* A client context: the server's certificate is checked against ca_file
 * (the system's trusted certificates when ""), and cert_file with key_file,
 * when given, is this side's certificate for a server that asks for one.
 * section names the configuration section in messages ("[cluster]").
 * Returns 0, or -1 with a message naming the key and file. */
int tlsmem_client_ctx_new(struct tlsmem_ctx **ctx, const char *ca_file, const char *cert_file,
                          const char *key_file, const char *section, char *err, size_t errlen);

/* A server side session, waiting for the client's hello. */
struct tlsmem *tlsmem_new(struct tlsmem_ctx *ctx);

/* A client side session to host (a name: sent as SNI and checked against
 * the certificate; an IP address: checked against its addresses).  Its
 * hello is pending at once (tlsmem_pending).  NULL when out of memory. */
struct tlsmem *tlsmem_client_new(struct tlsmem_ctx *ctx, const char *host);

/* 1 once the handshake is done: plain text may be written. */
int tlsmem_ready(struct tlsmem *t);
void tlsmem_free(struct tlsmem *t);

/* Bytes from the wire.  The plain text they completed is appended to
 * out.  Returns 0, 1 when the peer closed TLS, or -1 on a TLS error or a
 * failed allocation (err says which). */
int tlsmem_feed(struct tlsmem *t, const char *in, size_t n, struct strbuf *out, char *err,
                size_t errlen);

/* Plain text to send.  Returns 0 or -1. */
int tlsmem_write(struct tlsmem *t, const char *buf, size_t n);

/* What OpenSSL has for the wire: a malloc'd buffer in *buf, its length
 * returned (0: nothing, *buf NULL). */
size_t tlsmem_pending(struct tlsmem *t, char **buf);

/* The negotiated protocol and cipher, for the log ("TLSv1.3 TLS_AES...").*/
const char *tlsmem_describe(struct tlsmem *t, char *buf, size_t len);

#endif
