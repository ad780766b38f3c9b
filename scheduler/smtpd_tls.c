/*
 * smtpd_tls.c -- STARTTLS for the SMTP intake on OpenSSL memory BIOs.
 *
 * Memory BIOs rather than SSL_set_fd(): the socket stays libuv's, reads and
 * writes stay on the loop, and a slow client never blocks a TLS call.
 */
#include "smtpd_tls.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct smtpd_tls_ctx {
	SSL_CTX *ctx;
};

struct smtpd_tls {
	SSL *ssl;
	BIO *rbio, *wbio; /* owned by ssl */
};

/* OpenSSL's first queued error, as text. */
static void ssl_reason(char *err, size_t errlen, const char *what)
{
	unsigned long e = ERR_get_error();
	char buf[256];

	ERR_error_string_n(e, buf, sizeof(buf));
	snprintf(err, errlen, "%s: %s", what, e ? buf : "unknown TLS error");
	ERR_clear_error();
}

int smtpd_tls_ctx_new(struct smtpd_tls_ctx **cp, const char *cert_file, const char *key_file,
                      char *err, size_t errlen)
{
	struct smtpd_tls_ctx *c = calloc(1, sizeof(*c));
	char what[1200];

	*cp = NULL;
	if (!c || !(c->ctx = SSL_CTX_new(TLS_server_method()))) {
		snprintf(err, errlen, "[smtp] TLS: cannot create a context");
		free(c);
		return -1;
	}
	SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(c->ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	if (SSL_CTX_use_certificate_chain_file(c->ctx, cert_file) != 1) {
		snprintf(what, sizeof(what), "[smtp] tls_cert_file: %s", cert_file);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(c->ctx, key_file, SSL_FILETYPE_PEM) != 1) {
		snprintf(what, sizeof(what), "[smtp] tls_key_file: %s", key_file);
		goto fail;
	}
	if (SSL_CTX_check_private_key(c->ctx) != 1) {
		snprintf(what, sizeof(what), "[smtp] tls_key_file: %s does not match %s", key_file,
		         cert_file);
		goto fail;
	}
	*cp = c;
	return 0;
fail:
	ssl_reason(err, errlen, what);
	SSL_CTX_free(c->ctx);
	free(c);
	return -1;
}

void smtpd_tls_ctx_free(struct smtpd_tls_ctx *c)
{
	if (c) {
		SSL_CTX_free(c->ctx);
		free(c);
	}
}

struct smtpd_tls *smtpd_tls_new(struct smtpd_tls_ctx *c)
{
	struct smtpd_tls *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->ssl = SSL_new(c->ctx);
	t->rbio = BIO_new(BIO_s_mem());
	t->wbio = BIO_new(BIO_s_mem());
	if (!t->ssl || !t->rbio || !t->wbio) {
		SSL_free(t->ssl);
		BIO_free(t->rbio);
		BIO_free(t->wbio);
		free(t);
		return NULL;
	}
	SSL_set_bio(t->ssl, t->rbio, t->wbio);
	SSL_set_accept_state(t->ssl);
	return t;
}

void smtpd_tls_free(struct smtpd_tls *t)
{
	if (t) {
		SSL_free(t->ssl); /* frees both BIOs */
		free(t);
	}
}

int smtpd_tls_feed(struct smtpd_tls *t, const char *in, size_t n, struct strbuf *out, char *err,
                   size_t errlen)
{
	if (n && BIO_write(t->rbio, in, (int)n) != (int)n) {
		snprintf(err, errlen, "TLS: out of memory");
		return -1;
	}
	for (;;) {
		int r, e;

		/* SSL_read writes in place; a record is at most 16 KB. */
		if (strbuf_reserve(out, 16384) < 0) {
			snprintf(err, errlen, "TLS: out of memory");
			return -1;
		}
		r = SSL_read(t->ssl, out->p + out->len, (int)(out->cap - out->len - 1));
		if (r > 0) {
			out->len += (size_t)r;
			out->p[out->len] = '\0';
			continue;
		}
		e = SSL_get_error(t->ssl, r);
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
			return 0;
		if (e == SSL_ERROR_ZERO_RETURN)
			return 1;
		ssl_reason(err, errlen, "TLS");
		return -1;
	}
}

int smtpd_tls_write(struct smtpd_tls *t, const char *buf, size_t n)
{
	while (n) {
		int r = SSL_write(t->ssl, buf, (int)(n > 65536 ? 65536 : n));
		if (r <= 0) {
			ERR_clear_error();
			return -1;
		}
		buf += r;
		n -= (size_t)r;
	}
	return 0;
}

size_t smtpd_tls_pending(struct smtpd_tls *t, char **buf)
{
	size_t n = (size_t)BIO_ctrl_pending(t->wbio);

	*buf = NULL;
	if (!n || !(*buf = malloc(n)))
		return 0;
	if (BIO_read(t->wbio, *buf, (int)n) != (int)n) {
		free(*buf);
		*buf = NULL;
		return 0;
	}
	return n;
}

const char *smtpd_tls_describe(struct smtpd_tls *t, char *buf, size_t len)
{
	snprintf(buf, len, "%s %s", SSL_get_version(t->ssl), SSL_get_cipher_name(t->ssl));
	return buf;
}
