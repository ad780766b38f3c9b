/*
 * NAME
 *	cluster_tls.c -- TLS to Redis for rediss://, as a hop on the loop.
 *
 * SYNOPSIS
 *	cluster_tls_start(&t, loop, conf, err, sizeof(err));
 *	redisAsyncConnectUnix(cluster_tls_path(t));
 *	cluster_tls_stop(t);
 *
 * DESCRIPTION
 *	A link joins one connection on the private Unix socket (hiredis) to
 *	one TCP connection to the Redis server, with TLS on the TCP side:
 *	plain text from hiredis is written into the TLS session (kept back
 *	until the handshake is done), records from the server are fed to it
 *	and what they decrypt to goes to hiredis.  Either side closing, or a
 *	TLS error (a certificate that does not verify, a handshake refused),
 *	closes both; the error is logged once.  Nothing here retries: the
 *	cluster reconnects as it does for a plain link.
 */
#include "cluster_tls.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "sender/strbuf.h"
#include "tlsmem.h"

struct link;

struct cluster_tls {
	uv_loop_t *loop;
	const struct wu_cluster_conf *conf;
	struct tlsmem_ctx *ctx;
	uv_pipe_t listener;
	char dir[200], path[220];
	struct link *links;
	int stopping, listener_open;
};

struct link {
	struct cluster_tls *t;
	struct link *next;
	uv_pipe_t local; /* hiredis */
	uv_tcp_t remote; /* the Redis server */
	uv_getaddrinfo_t gai;
	uv_connect_t creq;
	struct tlsmem *tls;
	struct strbuf early; /* hiredis' text before the handshake is done */
	int remote_init, connected, closing, open_handles, resolving;
};

struct wreq {
	uv_write_t req;
	char data[];
};

static void link_close(struct link *l, const char *why);
static void link_free_if_done(struct link *l);

/* Writes a copy of n bytes to s. */
static int send_copy(uv_stream_t *s, const char *p, size_t n);

static void on_written(uv_write_t *req, int status)
{
	(void)status;
	free(req);
}

static int send_copy(uv_stream_t *s, const char *p, size_t n)
{
	struct wreq *w;
	uv_buf_t b;

	if (!n)
		return 0;
	if (!(w = malloc(sizeof(*w) + n)))
		return -1;
	memcpy(w->data, p, n);
	b = uv_buf_init(w->data, (unsigned)n);
	if (uv_write(&w->req, s, &b, 1, on_written) != 0) {
		free(w);
		return -1;
	}
	return 0;
}

/* Hands what TLS has for the wire to the server. */
static int flush_tls(struct link *l)
{
	char *buf;
	size_t n = tlsmem_pending(l->tls, &buf);
	int rc = send_copy((uv_stream_t *)&l->remote, buf, n);

	free(buf);
	return rc;
}

/* Plain text from hiredis, once the handshake is done. */
static int send_plain(struct link *l, const char *p, size_t n)
{
	if (tlsmem_write(l->tls, p, n) < 0)
		return -1;
	return flush_tls(l);
}

static void on_alloc(uv_handle_t *h, size_t want, uv_buf_t *buf)
{
	(void)h;
	buf->base = malloc(want);
	buf->len = buf->base ? want : 0;
}

static void on_local_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct link *l = s->data;

	if (n > 0) {
		int rc = l->connected && tlsmem_ready(l->tls)
		             ? send_plain(l, buf->base, (size_t)n)
		             : strbuf_add(&l->early, buf->base, (size_t)n);
		if (rc < 0)
			link_close(l, "out of memory");
	} else if (n < 0) {
		link_close(l, NULL); /* hiredis let go */
	}
	free(buf->base);
}

static void on_remote_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct link *l = s->data;
	struct strbuf out = {0};
	char err[300];
	int rc;

	if (n < 0) {
		free(buf->base);
		link_close(l,
		           n == UV_EOF ? "the server closed the connection" : uv_strerror((int)n));
		return;
	}
	rc = tlsmem_feed(l->tls, buf->base, (size_t)n, &out, err, sizeof(err));
	free(buf->base);
	if (rc < 0 || flush_tls(l) < 0) {
		strbuf_free(&out);
		link_close(l, rc < 0 ? err : "out of memory");
		return;
	}
	if (out.len && send_copy((uv_stream_t *)&l->local, out.p, out.len) < 0) {
		strbuf_free(&out);
		link_close(l, "out of memory");
		return;
	}
	strbuf_free(&out);
	if (rc == 1) {
		link_close(l, "the server ended TLS");
		return;
	}
	if (tlsmem_ready(l->tls) && l->early.len) {
		if (send_plain(l, l->early.p, l->early.len) < 0) {
			link_close(l, "out of memory");
			return;
		}
		strbuf_free(&l->early);
	}
}

static void on_connected(uv_connect_t *req, int status)
{
	struct link *l = req->data;

	if (l->closing)
		return;
	if (status < 0) {
		link_close(l, uv_strerror(status));
		return;
	}
	l->connected = 1;
	if (!(l->tls = tlsmem_client_new(l->t->ctx, l->t->conf->host)) || flush_tls(l) < 0 ||
	    uv_read_start((uv_stream_t *)&l->remote, on_alloc, on_remote_read) != 0)
		link_close(l, "cannot start TLS");
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *ai)
{
	struct link *l = req->data;

	l->resolving = 0;
	if (l->closing || status < 0) {
		uv_freeaddrinfo(ai);
		if (!l->closing)
			link_close(l, uv_strerror(status));
		link_free_if_done(l);
		return;
	}
	l->creq.data = l;
	if (uv_tcp_connect(&l->creq, &l->remote, ai->ai_addr, on_connected) != 0)
		link_close(l, "cannot connect");
	uv_freeaddrinfo(ai);
}

/* The hop itself goes once it is stopped and nothing of it is open. */
static void tls_free_if_done(struct cluster_tls *t)
{
	if (t->stopping && !t->listener_open && !t->links) {
		tlsmem_ctx_free(t->ctx);
		free(t);
	}
}

static void link_free_if_done(struct link *l)
{
	struct cluster_tls *t = l->t;
	struct link **pp;

	if (!l->closing || l->open_handles > 0 || l->resolving)
		return;
	for (pp = &t->links; *pp; pp = &(*pp)->next)
		if (*pp == l) {
			*pp = l->next;
			break;
		}
	tlsmem_free(l->tls);
	strbuf_free(&l->early);
	free(l);
	tls_free_if_done(t);
}

static void on_link_handle_closed(uv_handle_t *h)
{
	struct link *l = h->data;

	l->open_handles--;
	link_free_if_done(l);
}

static void link_close(struct link *l, const char *why)
{
	if (l->closing)
		return;
	l->closing = 1;
	if (why && !l->t->stopping)
		wu_warn("cluster: TLS to %s:%d: %s", l->t->conf->host, l->t->conf->port, why);
	if (l->resolving)
		uv_cancel((uv_req_t *)&l->gai);
	uv_close((uv_handle_t *)&l->local, on_link_handle_closed);
	if (l->remote_init)
		uv_close((uv_handle_t *)&l->remote, on_link_handle_closed);
}

static void on_accept(uv_stream_t *server, int status)
{
	struct cluster_tls *t = server->data;
	struct link *l;
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
	char port[16];

	if (status < 0 || !(l = calloc(1, sizeof(*l))))
		return;
	l->t = t;
	uv_pipe_init(t->loop, &l->local, 0);
	l->local.data = l;
	l->open_handles = 1;
	l->next = t->links;
	t->links = l;
	if (uv_accept(server, (uv_stream_t *)&l->local) != 0) {
		link_close(l, "cannot accept hiredis' connection");
		return;
	}
	uv_tcp_init(t->loop, &l->remote);
	l->remote.data = l;
	l->remote_init = 1;
	l->open_handles++;
	if (uv_read_start((uv_stream_t *)&l->local, on_alloc, on_local_read) != 0) {
		link_close(l, "cannot read hiredis' connection");
		return;
	}
	snprintf(port, sizeof(port), "%d", t->conf->port);
	l->gai.data = l;
	l->resolving = 1;
	if (uv_getaddrinfo(t->loop, &l->gai, on_resolved, t->conf->host, port, &hints) != 0) {
		l->resolving = 0;
		link_close(l, "cannot look up the host");
	}
}

int cluster_tls_check(const struct wu_cluster_conf *conf, char *err, size_t errlen)
{
	struct tlsmem_ctx *ctx;

	if (!conf->tls)
		return 0;
	if (tlsmem_client_ctx_new(&ctx, conf->tls_ca_file, conf->tls_cert_file, conf->tls_key_file,
	                          "[cluster]", err, errlen) < 0)
		return -1;
	tlsmem_ctx_free(ctx);
	return 0;
}

int cluster_tls_start(struct cluster_tls **tp, uv_loop_t *loop, const struct wu_cluster_conf *conf,
                      char *err, size_t errlen)
{
	struct cluster_tls *t = calloc(1, sizeof(*t));
	const char *base = getenv("RUNTIME_DIRECTORY");
	int rc;

	*tp = NULL;
	if (!t) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	t->loop = loop;
	t->conf = conf;
	if (tlsmem_client_ctx_new(&t->ctx, conf->tls_ca_file, conf->tls_cert_file,
	                          conf->tls_key_file, "[cluster]", err, errlen) < 0) {
		free(t);
		return -1;
	}
	/* A directory of its own, mode 0700: only this user reaches the hop. */
	snprintf(t->dir, sizeof(t->dir), "%s/warmupd-redis-XXXXXX",
	         base && base[0] && strlen(base) < 150 ? base : "/tmp");
	if (!mkdtemp(t->dir)) {
		snprintf(err, errlen,
		         "[cluster] rediss: cannot make a private directory for the TLS "
		         "link (%s): %s",
		         t->dir, strerror(errno));
		tlsmem_ctx_free(t->ctx);
		free(t);
		return -1;
	}
	snprintf(t->path, sizeof(t->path), "%s/redis.sock", t->dir);
	uv_pipe_init(loop, &t->listener, 0);
	t->listener.data = t;
	t->listener_open = 1;
	if ((rc = uv_pipe_bind(&t->listener, t->path)) != 0 ||
	    (rc = uv_listen((uv_stream_t *)&t->listener, 8, on_accept)) != 0) {
		snprintf(err, errlen, "[cluster] rediss: cannot listen on %s: %s", t->path,
		         uv_strerror(rc));
		cluster_tls_stop(t);
		return -1;
	}
	*tp = t;
	return 0;
}

const char *cluster_tls_path(const struct cluster_tls *t)
{
	return t->path;
}

static void on_listener_closed(uv_handle_t *h)
{
	struct cluster_tls *t = h->data;

	t->listener_open = 0;
	tls_free_if_done(t);
}

void cluster_tls_stop(struct cluster_tls *t)
{
	if (!t)
		return;
	t->stopping = 1;
	unlink(t->path);
	rmdir(t->dir);
	for (struct link *l = t->links; l; l = l->next)
		link_close(l, NULL);
	/* Whichever closes last, a link or the listener, frees the hop. */
	uv_close((uv_handle_t *)&t->listener, on_listener_closed);
}
