/*
 * tlsmem.c -- TLS on OpenSSL memory BIOs, server and client side.
 *
 * Memory BIOs rather than SSL_set_fd(): the socket stays libuv's, reads and
 * writes stay on the loop, and a slow client never blocks a TLS call.
 */
#include "tlsmem.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tlsmem_ctx {
	SSL_CTX *ctx;
};

struct tlsmem {
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

/* This side's certificate chain and key, checked against each other; on a
 * failure what names the key and file. */
static int use_pair(SSL_CTX *ctx, const char *cert_file, const char *key_file, const char *section,
                    char *what, size_t len)
{
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
		snprintf(what, len, "%s tls_cert_file: %s", section, cert_file);
		return -1;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
		snprintf(what, len, "%s tls_key_file: %s", section, key_file);
		return -1;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		snprintf(what, len, "%s tls_key_file: %s does not match %s", section, key_file,
		         cert_file);
		return -1;
	}
	return 0;
}

int tlsmem_ctx_new(struct tlsmem_ctx **cp, const char *cert_file, const char *key_file, char *err,
                   size_t errlen)
{
	struct tlsmem_ctx *c = calloc(1, sizeof(*c));
	char what[1200];

	*cp = NULL;
	if (!c || !(c->ctx = SSL_CTX_new(TLS_server_method()))) {
		snprintf(err, errlen, "[smtp] TLS: cannot create a context");
		free(c);
		return -1;
	}
	SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(c->ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	if (use_pair(c->ctx, cert_file, key_file, "[smtp]", what, sizeof(what)) < 0)
		goto fail;
	*cp = c;
	return 0;
fail:
	ssl_reason(err, errlen, what);
	SSL_CTX_free(c->ctx);
	free(c);
	return -1;
}

int tlsmem_client_ctx_new(struct tlsmem_ctx **cp, const char *ca_file, const char *cert_file,
                          const char *key_file, const char *section, char *err, size_t errlen)
{
	struct tlsmem_ctx *c = calloc(1, sizeof(*c));
	char what[1200];

	*cp = NULL;
	if (!c || !(c->ctx = SSL_CTX_new(TLS_client_method()))) {
		snprintf(err, errlen, "%s TLS: cannot create a context", section);
		free(c);
		return -1;
	}
	SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
	if (ca_file && ca_file[0]) {
		if (SSL_CTX_load_verify_locations(c->ctx, ca_file, NULL) != 1) {
			snprintf(what, sizeof(what), "%s tls_ca_file: %s", section, ca_file);
			goto fail;
		}
	} else if (SSL_CTX_set_default_verify_paths(c->ctx) != 1) {
		snprintf(what, sizeof(what), "%s TLS: the system's trusted certificates", section);
		goto fail;
	}
	if (cert_file && cert_file[0] &&
	    use_pair(c->ctx, cert_file, key_file, section, what, sizeof(what)) < 0)
		goto fail;
	*cp = c;
	return 0;
fail:
	ssl_reason(err, errlen, what);
	SSL_CTX_free(c->ctx);
	free(c);
	return -1;
}

void tlsmem_ctx_free(struct tlsmem_ctx *c)
{
	if (c) {
		SSL_CTX_free(c->ctx);
		free(c);
	}
}

struct tlsmem *tlsmem_new(struct tlsmem_ctx *c)
{
	struct tlsmem *t = calloc(1, sizeof(*t));

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

struct tlsmem *tlsmem_client_new(struct tlsmem_ctx *c, const char *host)
{
	struct tlsmem *t = tlsmem_new(c);
	unsigned char addr[16];
	int ip = inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1, r;

	if (!t)
		return NULL;
	SSL_set_connect_state(t->ssl);
	/* The name (or address) the certificate must carry; SNI for a name. */
	if ((ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), host)
	        : SSL_set1_host(t->ssl, host)) != 1 ||
	    (!ip && SSL_set_tlsext_host_name(t->ssl, host) != 1)) {
		tlsmem_free(t);
		return NULL;
	}
	/* The hello goes into the write BIO now. */
	if ((r = SSL_do_handshake(t->ssl)) != 1) {
		int e = SSL_get_error(t->ssl, r);
		if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
			ERR_clear_error();
			tlsmem_free(t);
			return NULL;
		}
	}
	return t;
}

int tlsmem_ready(struct tlsmem *t)
{
	return SSL_is_init_finished(t->ssl);
}

void tlsmem_free(struct tlsmem *t)
{
	if (t) {
		SSL_free(t->ssl); /* frees both BIOs */
		free(t);
	}
}

int tlsmem_feed(struct tlsmem *t, const char *in, size_t n, struct strbuf *out, char *err,
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

int tlsmem_write(struct tlsmem *t, const char *buf, size_t n)
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

size_t tlsmem_pending(struct tlsmem *t, char **buf)
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

const char *tlsmem_describe(struct tlsmem *t, char *buf, size_t len)
{
	snprintf(buf, len, "%s %s", SSL_get_version(t->ssl), SSL_get_cipher_name(t->ssl));
	return buf;
}
