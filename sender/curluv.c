/*
 * curluv.c -- one libcurl multi handle driven by a libuv loop.
 *
 * DESCRIPTION
 *	curl tells us which sockets to watch (CURLMOPT_SOCKETFUNCTION) and when
 *	to wake it up (CURLMOPT_TIMERFUNCTION).  Each watched socket gets one
 *	struct cu_sock holding a uv_poll_t; the whole multi handle shares one
 *	uv_timer_t.  Whenever the loop reports activity we call
 *	curl_multi_socket_action() and then drain curl_multi_info_read(), the
 *	timer's action included, so a transfer that ends on a timeout is
 *	reported as promptly as one that ends on a read.
 *
 *	Memory of a uv handle is freed only in its close callback, and the
 *	struct curluv itself only once its last handle has closed: callbacks
 *	already queued by the loop therefore never touch freed memory.
 *
 * DIAGNOSTICS
 *	curluv_create() and curluv_add() return -1 when curl or libuv refuse;
 *	the outcome of each transfer goes to its done callback.
 */
#include "curluv.h"

#include <stdlib.h>

/* One transfer under way: the caller's callback and the list links. */
struct cu_xfer {
	CURL *easy;
	curluv_done_cb done;
	void *arg;
	struct cu_xfer *prev, *next;
};

/* One socket curl asked us to watch. */
struct cu_sock {
	struct curluv *cu;
	uv_poll_t poll;
	curl_socket_t fd;
	struct cu_sock *prev, *next;
};

struct curluv {
	uv_loop_t *loop;
	CURLM *multi;
	uv_timer_t timer;
	struct cu_xfer *xfers; /* transfers added and not yet reported */
	int nxfers;
	struct cu_sock *socks; /* sockets being polled */
	int open_handles;      /* uv handles not yet closed, the timer included */
	int closing;           /* curluv_destroy() has begun */
};

/* Frees cu once destroy has begun and the last uv handle has closed. */
static void cu_handle_closed(struct curluv *cu)
{
	if (--cu->open_handles == 0 && cu->closing) {
		free(cu);
		curl_global_cleanup();
	}
}

/* The uv close callback of a socket context: the only place it is freed. */
static void cu_sock_closed(uv_handle_t *h)
{
	struct cu_sock *s = h->data;
	struct curluv *cu = s->cu;

	free(s);
	cu_handle_closed(cu);
}

/* Stops watching a socket; the context is freed when libuv is done with it. */
static void cu_sock_close(struct cu_sock *s)
{
	struct curluv *cu = s->cu;

	uv_poll_stop(&s->poll);
	if (s->prev)
		s->prev->next = s->next;
	else
		cu->socks = s->next;
	if (s->next)
		s->next->prev = s->prev;
	uv_close((uv_handle_t *)&s->poll, cu_sock_closed);
}

/* Reports one finished transfer: out of the multi handle, then the callback. */
static void cu_xfer_finish(struct curluv *cu, struct cu_xfer *x, CURLcode result)
{
	CURL *easy = x->easy;
	curluv_done_cb done = x->done;
	void *arg = x->arg;

	curl_multi_remove_handle(cu->multi, easy);
	curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
	if (x->prev)
		x->prev->next = x->next;
	else
		cu->xfers = x->next;
	if (x->next)
		x->next->prev = x->prev;
	cu->nxfers--;
	free(x);
	/* Last, so the callback may add, cancel or destroy freely. */
	done(easy, result, arg);
}

/* Hands every finished transfer to its owner; runs after every action. */
static void cu_drain(struct curluv *cu)
{
	CURLMsg *msg;
	int pending;

	/* A callback may destroy cu: stop then, the multi handle is gone. */
	while (!cu->closing && (msg = curl_multi_info_read(cu->multi, &pending)) != NULL) {
		struct cu_xfer *x = NULL;
		CURLcode result;

		if (msg->msg != CURLMSG_DONE)
			continue;
		result = msg->data.result;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
		if (x == NULL) {
			/* Not added through us; never expected, but never leak it. */
			curl_multi_remove_handle(cu->multi, msg->easy_handle);
			continue;
		}
		cu_xfer_finish(cu, x, result);
	}
}

/* The loop saw activity, or an error, on a socket curl watches. */
static void cu_on_poll(uv_poll_t *h, int status, int events)
{
	struct cu_sock *s = h->data;
	struct curluv *cu = s->cu;
	int flags = 0, running;

	/* An error on the socket is curl's to handle: it fails the transfer. */
	if (status < 0)
		flags = CURL_CSELECT_ERR;
	else {
		if (events & UV_READABLE)
			flags |= CURL_CSELECT_IN;
		if (events & UV_WRITABLE)
			flags |= CURL_CSELECT_OUT;
	}
	curl_multi_socket_action(cu->multi, s->fd, flags, &running);
	cu_drain(cu);
}

/* curl's timeout expired: let it run timers, then report what ended. */
static void cu_on_timer(uv_timer_t *t)
{
	struct curluv *cu = t->data;
	int running;

	curl_multi_socket_action(cu->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	cu_drain(cu);
}

/* CURLMOPT_TIMERFUNCTION: arms or stops the one timer, never acts itself. */
static int cu_timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	struct curluv *cu = userp;

	(void)multi;
	/* Calling socket_action from here would recurse into curl: a 0 ms timer
	 * does it on the next loop turn instead. */
	if (timeout_ms < 0)
		uv_timer_stop(&cu->timer);
	else if (uv_timer_start(&cu->timer, cu_on_timer, (uint64_t)timeout_ms, 0) < 0)
		return -1;
	return 0;
}

/* CURLMOPT_SOCKETFUNCTION: starts, changes or stops polling one socket. */
static int cu_socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	struct curluv *cu = userp;
	struct cu_sock *s = socketp;
	int events = 0;

	(void)easy;
	if (what == CURL_POLL_REMOVE) {
		if (s != NULL) {
			curl_multi_assign(cu->multi, fd, NULL);
			cu_sock_close(s);
		}
		return 0;
	}
	if (s == NULL) {
		s = calloc(1, sizeof(*s));
		if (s == NULL)
			return -1;
		if (uv_poll_init_socket(cu->loop, &s->poll, fd) < 0) {
			free(s); /* never initialised: no close needed */
			return -1;
		}
		s->cu = cu;
		s->fd = fd;
		s->poll.data = s;
		s->next = cu->socks;
		if (cu->socks)
			cu->socks->prev = s;
		cu->socks = s;
		cu->open_handles++;
		curl_multi_assign(cu->multi, fd, s);
	}
	if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
		events |= UV_READABLE;
	if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
		events |= UV_WRITABLE;
	if (uv_poll_start(&s->poll, events, cu_on_poll) < 0)
		return -1;
	return 0;
}

/* Creates the multi handle and its timer on loop. */
int curluv_create(struct curluv **cup, uv_loop_t *loop)
{
	struct curluv *cu;

	*cup = NULL;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return -1;
	cu = calloc(1, sizeof(*cu));
	if (cu == NULL || (cu->multi = curl_multi_init()) == NULL ||
	    uv_timer_init(loop, &cu->timer) < 0) {
		if (cu != NULL && cu->multi != NULL)
			curl_multi_cleanup(cu->multi);
		free(cu);
		curl_global_cleanup();
		return -1;
	}
	cu->loop = loop;
	cu->timer.data = cu;
	cu->open_handles = 1;
	curl_multi_setopt(cu->multi, CURLMOPT_SOCKETFUNCTION, cu_socket_cb);
	curl_multi_setopt(cu->multi, CURLMOPT_SOCKETDATA, cu);
	curl_multi_setopt(cu->multi, CURLMOPT_TIMERFUNCTION, cu_timer_cb);
	curl_multi_setopt(cu->multi, CURLMOPT_TIMERDATA, cu);
	*cup = cu;
	return 0;
}

/* Starts a transfer; done runs exactly once when it ends or is aborted. */
int curluv_add(struct curluv *cu, CURL *easy, curluv_done_cb done, void *arg)
{
	struct cu_xfer *x;

	if (cu == NULL || cu->closing || easy == NULL || done == NULL)
		return -1;
	x = calloc(1, sizeof(*x));
	if (x == NULL)
		return -1;
	x->easy = easy;
	x->done = done;
	x->arg = arg;
	curl_easy_setopt(easy, CURLOPT_PRIVATE, (void *)x);
	if (curl_multi_add_handle(cu->multi, easy) != CURLM_OK) {
		curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
		free(x);
		return -1;
	}
	x->next = cu->xfers;
	if (cu->xfers)
		cu->xfers->prev = x;
	cu->xfers = x;
	cu->nxfers++;
	return 0;
}

/* Aborts one of our transfers, reporting it to its owner right away. */
int curluv_cancel(struct curluv *cu, CURL *easy)
{
	struct cu_xfer *x;

	if (cu == NULL || easy == NULL)
		return -1;
	/* Walk our list rather than trust CURLOPT_PRIVATE of a foreign handle. */
	for (x = cu->xfers; x != NULL; x = x->next)
		if (x->easy == easy)
			break;
	if (x == NULL)
		return -1;
	cu_xfer_finish(cu, x, CURLE_ABORTED_BY_CALLBACK);
	return 0;
}

/* Transfers added and not yet reported. */
int curluv_running(const struct curluv *cu)
{
	return cu ? cu->nxfers : 0;
}

/* The loop the multi handle runs on. */
uv_loop_t *curluv_loop(const struct curluv *cu)
{
	return cu->loop;
}

/* Caps connections per host across every transfer of the multi handle. */
void curluv_max_host_connections(struct curluv *cu, long n)
{
	curl_multi_setopt(cu->multi, CURLMOPT_MAX_HOST_CONNECTIONS, n);
}

/* The timer's close callback: the last handle to close frees cu. */
static void cu_timer_closed(uv_handle_t *h)
{
	cu_handle_closed(h->data);
}

/* Aborts everything, then closes the handles; cu goes with the last one. */
void curluv_destroy(struct curluv *cu)
{
	if (cu == NULL || cu->closing)
		return;
	cu->closing = 1;
	/* One at a time from the head: a callback may cancel another one. */
	while (cu->xfers != NULL)
		cu_xfer_finish(cu, cu->xfers, CURLE_ABORTED_BY_CALLBACK);
	/* Cleanup closes cached connections, which may call both callbacks;
	 * the timer and the socket contexts are still valid for them. */
	curl_multi_cleanup(cu->multi);
	cu->multi = NULL;
	while (cu->socks != NULL)
		cu_sock_close(cu->socks);
	uv_timer_stop(&cu->timer);
	uv_close((uv_handle_t *)&cu->timer, cu_timer_closed);
}
