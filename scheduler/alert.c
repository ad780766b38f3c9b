/*
 * NAME
 *	alert.c -- push alerts to a webhook, and the engine's event log.
 *
 * SYNOPSIS
 *	alert_start(d);                    (after curluv_create)
 *	alert_engine_event(d, &ev);        (from daemon_drain_events)
 *	alert_stop(d);                     (before curluv_destroy)
 *
 * DESCRIPTION
 *	Every engine event becomes a row of the store's events table, in the
 *	turn's transaction.  Gate warnings and halts, pauses and resumes also
 *	become an alert: a JSON object with a Slack-compatible "text" line and
 *	the structured fields (event, route, date, day, cap, bounce_rate,
 *	complaint_rate, backlog, host), queued in memory and POSTed to
 *	[alert] webhook_url through the daemon's libcurl multi handle.  A timer
 *	checks the queue's backlog every backlog_check and alerts once when it
 *	rises above backlog_threshold, and again only after it fell below.
 *	The same timer alerts once when template mail (which waits for the v3
 *	route, whatever the overflow policy) has waited longer than
 *	template_wait, and again only after none had.
 *
 *	One POST is under way at a time, so alerts arrive in order.  A failed
 *	POST (no answer, or not 2xx) is retried after 1s, 2s, 4s ... (at most
 *	5 minutes) up to `retries` times, then dropped.  The queue holds
 *	ALERT_QUEUE alerts; when full the oldest is dropped, with a log line.
 *
 * DIAGNOSTICS
 *	The webhook URL is a credential: logs name only its scheme and host.
 *	Every alert is also a log line (daemon_drain_events logs the events).
 */
#include "alert.h"

#include <cJSON.h>
#include <curl/curl.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon.h"
#include "log.h"
#include "sender/curluv.h"

#define ALERT_QUEUE    100
#define RETRY_FIRST_MS 1000
#define RETRY_MAX_MS   (5 * 60 * 1000)

struct alert {
	struct wu_daemon *d;
	char *q[ALERT_QUEUE]; /* JSON bodies, oldest at head */
	int head, n;
	CURL *easy; /* the POST under way, or NULL */
	struct curl_slist *headers;
	int attempt;        /* failed tries of the head alert */
	uv_timer_t retry;   /* waits before the next try */
	uv_timer_t backlog; /* the periodic backlog check */
	int above;          /* the backlog is above the threshold */
	int v3_late;        /* a v3-only unit has waited longer than template_wait */
	int nclosed;
	char host[256];
	char where[300]; /* scheme://host[:port] of the URL, for logs */
};

static void alert_pump(struct alert *a);

/* The URL with its path, query and user info cut off, for logs. */
static void url_safe(const char *url, char *out, size_t len)
{
	const char *p = strstr(url, "://"), *host, *end, *at;

	if (!p) {
		snprintf(out, len, "(webhook)");
		return;
	}
	host = p + 3;
	end = host + strcspn(host, "/?#");
	at = memchr(host, '@', (size_t)(end - host));
	if (at)
		host = at + 1;
	snprintf(out, len, "%.*s%.*s", (int)(p + 3 - url), url, (int)(end - host), host);
}

/* Queued units now, or -1 when the store cannot tell. */
static int64_t backlog_now(struct wu_daemon *d)
{
	int64_t depth[4];

	if (store_depth(d->store, depth) < 0)
		return -1;
	return depth[STORE_QUEUED];
}

/* Puts one alert body in the queue, dropping the oldest when full. */
static void enqueue(struct alert *a, char *body)
{
	if (a->n == ALERT_QUEUE) {
		/* Keep the one under way: its POST owns that buffer. */
		int skip = a->easy ? 1 : 0;

		wu_warn("alert: queue full (%d); dropping the oldest alert", ALERT_QUEUE);
		free(a->q[(a->head + skip) % ALERT_QUEUE]);
		for (int i = skip; i < a->n - 1; i++)
			a->q[(a->head + i) % ALERT_QUEUE] = a->q[(a->head + i + 1) % ALERT_QUEUE];
		if (!skip)
			a->attempt = 0;
		a->n--;
		a->d->extra.alerts_dropped++;
	}
	a->q[(a->head + a->n) % ALERT_QUEUE] = body;
	a->n++;
	alert_pump(a);
}

/* Builds and queues one alert. */
static void alert_push(struct alert *a, const char *event, int route, int date, int step,
                       int64_t cap, double bounce, double complaint, const char *what)
{
	struct wu_daemon *d = a->d;
	char text[512], datebuf[16];
	int64_t backlog = backlog_now(d);
	cJSON *o = cJSON_CreateObject();
	char *body;

	if (!o)
		return;
	wu_date_format(date, datebuf, sizeof(datebuf));
	if (cap == WU_UNLIMITED)
		snprintf(text, sizeof(text), "warmupd on %s: %s (%s, day %d, no cap)", a->host,
		         what, datebuf, step);
	else
		snprintf(text, sizeof(text), "warmupd on %s: %s (%s, day %d, cap %lld)", a->host,
		         what, datebuf, step, (long long)cap);
	cJSON_AddStringToObject(o, "text", text);
	cJSON_AddStringToObject(o, "event", event);
	if (route >= 0)
		cJSON_AddStringToObject(o, "route", wu_route_name((enum wu_route)route));
	else
		cJSON_AddNullToObject(o, "route");
	cJSON_AddStringToObject(o, "date", datebuf);
	cJSON_AddNumberToObject(o, "day", step);
	if (cap == WU_UNLIMITED)
		cJSON_AddNullToObject(o, "cap");
	else
		cJSON_AddNumberToObject(o, "cap", (double)cap);
	cJSON_AddNumberToObject(o, "bounce_rate", bounce);
	cJSON_AddNumberToObject(o, "complaint_rate", complaint);
	if (backlog >= 0)
		cJSON_AddNumberToObject(o, "backlog", (double)backlog);
	else
		cJSON_AddNullToObject(o, "backlog");
	cJSON_AddStringToObject(o, "host", a->host);
	body = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (body)
		enqueue(a, body);
}

static void on_retry(uv_timer_t *t)
{
	alert_pump(t->data);
}

/* A POST ended: next alert, or a later try of this one. */
static void on_done(CURL *easy, CURLcode result, void *arg)
{
	struct alert *a = arg;
	long status = 0;

	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(easy);
	a->easy = NULL;
	if (result == CURLE_ABORTED_BY_CALLBACK)
		return; /* alert_stop */
	if (result == CURLE_OK && status >= 200 && status < 300) {
		a->d->extra.alerts_sent++;
		free(a->q[a->head]);
		a->head = (a->head + 1) % ALERT_QUEUE;
		a->n--;
		a->attempt = 0;
		alert_pump(a);
		return;
	}
	a->attempt++;
	/* curl_easy_strerror, not the error buffer: that may quote the URL. */
	if (a->attempt > a->d->conf.alert_retries) {
		wu_error("alert: %s: %s%s%ld; giving up after %d tries", a->where,
		         result == CURLE_OK ? "" : curl_easy_strerror(result),
		         result == CURLE_OK ? "answered " : ", status ", status, a->attempt);
		a->d->extra.alerts_failed++;
		free(a->q[a->head]);
		a->head = (a->head + 1) % ALERT_QUEUE;
		a->n--;
		a->attempt = 0;
		alert_pump(a);
		return;
	}
	uint64_t ms = RETRY_FIRST_MS;
	for (int i = 1; i < a->attempt && ms < RETRY_MAX_MS; i++)
		ms *= 2;
	if (ms > RETRY_MAX_MS)
		ms = RETRY_MAX_MS;
	wu_warn("alert: %s: %s%s%ld; retry %d of %d in %llums", a->where,
	        result == CURLE_OK ? "" : curl_easy_strerror(result),
	        result == CURLE_OK ? "answered " : ", status ", status, a->attempt,
	        a->d->conf.alert_retries, (unsigned long long)ms);
	uv_timer_start(&a->retry, on_retry, ms, 0);
}

/* Discards the webhook's answer. */
static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
	(void)p, (void)arg;
	return size * n;
}

/* Starts the POST of the oldest alert, unless one is under way or waiting. */
static void alert_pump(struct alert *a)
{
	struct wu_daemon *d = a->d;
	CURL *c;

	if (a->easy || a->n == 0 || uv_is_active((uv_handle_t *)&a->retry) || !d->cu)
		return;
	if (!(c = curl_easy_init()))
		return;
	curl_easy_setopt(c, CURLOPT_URL, d->conf.alert_url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, a->headers);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, a->q[a->head]);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "warmupd");
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(d->conf.alert_timeout / 1000));
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	if (curluv_add(d->cu, c, on_done, a) < 0) {
		curl_easy_cleanup(c);
		uv_timer_start(&a->retry, on_retry, RETRY_FIRST_MS, 0);
		return;
	}
	a->easy = c;
}

/* The periodic look at the queue's depth. */
/* Template mail waits for the v3 route whatever the overflow policy: one
 * alert when the oldest of it has waited longer than template_wait, and
 * again only after none had. */
static void check_v3_wait(struct alert *a)
{
	struct wu_daemon *d = a->d;
	int64_t n, oldest;
	wu_time_t age;
	char what[160];

	if (d->conf.alert_v3_wait <= 0 || store_v3only_waiting(d->store, &n, &oldest) < 0)
		return;
	age = n ? daemon_now(d) - oldest : 0;
	if (age > d->conf.alert_v3_wait && !a->v3_late) {
		const struct wu_day_stats *day = wu_engine_today(d->engine);
		struct wu_gate_verdict v;

		a->v3_late = 1;
		wu_engine_gate(d->engine, &v);
		snprintf(what, sizeof(what),
		         "%lld template unit%s waiting for the v3 route, the oldest for %lld min",
		         (long long)n, n == 1 ? "" : "s", (long long)(age / WU_MINUTE));
		wu_warn("alert: %s", what);
		alert_push(a, "template_wait", WU_ROUTE_NEW, day->date, day->step, day->cap,
		           v.bounce_rate, v.complaint_rate, what);
	} else if (age <= d->conf.alert_v3_wait && a->v3_late) {
		a->v3_late = 0;
		wu_info("alert: no template unit has waited longer than its limit any more");
	}
}

static void on_backlog(uv_timer_t *t)
{
	struct alert *a = t->data;
	struct wu_daemon *d = a->d;
	int64_t n;
	char what[160];

	check_v3_wait(a);
	n = backlog_now(d);
	if (n < 0 || d->conf.alert_backlog <= 0)
		return;
	if (n > d->conf.alert_backlog && !a->above) {
		const struct wu_day_stats *day = wu_engine_today(d->engine);
		struct wu_gate_verdict v;

		a->above = 1;
		wu_engine_gate(d->engine, &v);
		snprintf(what, sizeof(what), "backlog of %lld queued units is above %lld",
		         (long long)n, (long long)d->conf.alert_backlog);
		wu_warn("alert: %s", what);
		alert_push(a, "backlog", -1, day->date, day->step, day->cap, v.bounce_rate,
		           v.complaint_rate, what);
	} else if (n < d->conf.alert_backlog && a->above) {
		a->above = 0;
		wu_info("alert: backlog of %lld queued units is below %lld again", (long long)n,
		        (long long)d->conf.alert_backlog);
	}
}

int alert_start(struct wu_daemon *d)
{
	struct alert *a;

	if (!d->conf.alert_url)
		return 0;
	if (!(a = calloc(1, sizeof(*a))))
		return -1;
	a->d = d;
	if (gethostname(a->host, sizeof(a->host) - 1) < 0)
		snprintf(a->host, sizeof(a->host), "localhost");
	url_safe(d->conf.alert_url, a->where, sizeof(a->where));
	a->headers = curl_slist_append(NULL, "Content-Type: application/json");
	if (!a->headers) {
		free(a);
		return -1;
	}
	uv_timer_init(d->loop, &a->retry);
	uv_timer_init(d->loop, &a->backlog);
	a->retry.data = a->backlog.data = a;
	if (d->conf.alert_backlog > 0 || d->conf.alert_v3_wait > 0) {
		uint64_t every = (uint64_t)(d->conf.alert_backlog_every / 1000);
		if (every == 0)
			every = 1000;
		uv_timer_start(&a->backlog, on_backlog, every, every);
	}
	d->alert = a;
	wu_info("alert: pushing alerts to %s", a->where);
	return 0;
}

static void on_closed(uv_handle_t *h)
{
	struct alert *a = h->data;

	if (++a->nclosed == 2) {
		curl_slist_free_all(a->headers);
		free(a);
	}
}

void alert_stop(struct wu_daemon *d)
{
	struct alert *a = d->alert;

	if (!a)
		return;
	d->alert = NULL;
	if (a->easy && d->cu)
		curluv_cancel(d->cu, a->easy);
	if (a->n > 0)
		wu_warn("alert: stopping with %d alert%s not delivered", a->n,
		        a->n == 1 ? "" : "s");
	while (a->n > 0) {
		free(a->q[a->head]);
		a->head = (a->head + 1) % ALERT_QUEUE;
		a->n--;
	}
	uv_close((uv_handle_t *)&a->retry, on_closed);
	uv_close((uv_handle_t *)&a->backlog, on_closed);
}

void alert_engine_event(struct wu_daemon *d, const struct wu_event *ev)
{
	const char *kind = wu_event_name(ev->kind);
	const char *route = ev->kind == WU_EV_DAY ? NULL : wu_route_name(ev->route);

	if (daemon_txn(d) < 0 || store_event_add(d->store, ev->at, kind, route, ev->text) < 0) {
		/* Losing the row is no reason to lose the turn's real work. */
		wu_warn("store: cannot record the event: %s", store_errmsg(d->store));
	}
	if (!d->alert || ev->kind == WU_EV_DAY)
		return;
	alert_push(d->alert, kind, (int)ev->route, ev->date, ev->step, ev->cap, ev->bounce_rate,
	           ev->complaint_rate, ev->text);
}

void alert_notice(struct alert *a, const char *kind, const char *fmt, ...)
{
	char what[1024], text[1400];
	va_list ap;
	cJSON *o;
	char *body;

	if (!a)
		return;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	snprintf(text, sizeof(text), "warmupd on %s: %s", a->host, what);
	if (!(o = cJSON_CreateObject()))
		return;
	cJSON_AddStringToObject(o, "text", text);
	cJSON_AddStringToObject(o, "kind", kind);
	cJSON_AddStringToObject(o, "event", kind);
	cJSON_AddStringToObject(o, "host", a->host);
	body = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (body)
		enqueue(a, body);
}
