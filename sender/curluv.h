/*
 * curluv.h -- one libcurl multi handle driven by a libuv loop.
 *
 * The pattern of curl's docs/examples/multi-uv.c: a socket callback starts
 * and stops uv_poll handles, a timer callback arms one uv_timer, poll errors
 * are passed to curl as CURL_CSELECT_ERR, and finished transfers are drained
 * with curl_multi_info_read() after every action, the timer's included.
 * The SendGrid v3 route and the alerts share this one multi handle, so their
 * connections are cached and reused across requests.  The SMTP route sends
 * from threads of its own (smtp.c says why).
 */
#ifndef WU_CURLUV_H
#define WU_CURLUV_H

#include <curl/curl.h>
#include <uv.h>

struct curluv;

/* Called once per transfer when it ends, with curl's result code.  The easy
 * handle has been removed from the multi handle; the callback owns it. */
typedef void (*curluv_done_cb)(CURL *easy, CURLcode result, void *arg);

int curluv_create(struct curluv **cu, uv_loop_t *loop);

/* Starts a transfer.  Returns 0 or -1.  curluv keeps its own record in the
 * handle's CURLOPT_PRIVATE; callers pass their state through arg. */
int curluv_add(struct curluv *cu, CURL *easy, curluv_done_cb done, void *arg);

/* Transfers under way. */
int curluv_running(const struct curluv *cu);

/* Stops one transfer started with curluv_add: its callback runs at once
 * with CURLE_ABORTED_BY_CALLBACK.  Returns 0, or -1 when easy is not ours. */
int curluv_cancel(struct curluv *cu, CURL *easy);

/* The loop cu runs on, for callers that need a handle of their own. */
uv_loop_t *curluv_loop(const struct curluv *cu);

/* Sets CURLMOPT_MAX_HOST_CONNECTIONS (0 = no limit). */
void curluv_max_host_connections(struct curluv *cu, long n);

/* Aborts every transfer (their callbacks run with CURLE_ABORTED_BY_CALLBACK),
 * closes the uv handles and frees cu once they are closed.  The loop must
 * run for the close callbacks to fire. */
void curluv_destroy(struct curluv *cu);

#endif
