/*
 * smtpd_tls.h -- TLS for the SMTP intake's STARTTLS, on OpenSSL memory BIOs.
 *
 * The session owns the socket (libuv); OpenSSL only ever sees bytes: what
 * arrived goes in with smtpd_tls_feed(), which hands back the plain text it
 * could decrypt; plain text to send goes in with smtpd_tls_write(); what
 * OpenSSL wants on the wire (records, handshake messages) is taken with
 * smtpd_tls_pending().  No socket is shared between libuv and OpenSSL.
 */
#ifndef WU_SMTPD_TLS_H
#define WU_SMTPD_TLS_H

#include <stddef.h>

#include "sender/strbuf.h"

struct smtpd_tls_ctx;
struct smtpd_tls;

/* A server context from a PEM certificate chain and key (TLS 1.2 or
 * later).  Returns 0, or -1 with a message naming the file. */
int smtpd_tls_ctx_new(struct smtpd_tls_ctx **ctx, const char *cert_file, const char *key_file,
                      char *err, size_t errlen);
void smtpd_tls_ctx_free(struct smtpd_tls_ctx *ctx);

/* A server side session, waiting for the client's hello. */
struct smtpd_tls *smtpd_tls_new(struct smtpd_tls_ctx *ctx);
void smtpd_tls_free(struct smtpd_tls *t);

/* Bytes from the wire.  The plain text they completed is appended to
 * out.  Returns 0, 1 when the peer closed TLS, or -1 on a TLS error or a
 * failed allocation (err says which). */
int smtpd_tls_feed(struct smtpd_tls *t, const char *in, size_t n, struct strbuf *out, char *err,
                   size_t errlen);

/* Plain text to send.  Returns 0 or -1. */
int smtpd_tls_write(struct smtpd_tls *t, const char *buf, size_t n);

/* What OpenSSL has for the wire: a malloc'd buffer in *buf, its length
 * returned (0: nothing, *buf NULL). */
size_t smtpd_tls_pending(struct smtpd_tls *t, char **buf);

/* The negotiated protocol and cipher, for the log ("TLSv1.3 TLS_AES...").*/
const char *smtpd_tls_describe(struct smtpd_tls *t, char *buf, size_t len);

#endif
