/*
 * NAME
 *	alert.c -- push alerts to a webhook, and the engine's event log.
 *
 * SYNOPSIS
 *	alert_start(d);                    (after curluv_create)
 *	alert_engine_event(d, &ev);        (a listener of engine events)
 *	alert_notice(d->alert, "reload_refused", "%s: ...", path);
 *	alert_raise(a, &msg);              (alert_watch.c)
 *	alert_stop(d);                     (before curluv_destroy)
 *
 * DESCRIPTION
 *	Every engine event becomes a row of the store's events table, in the
 *	turn's transaction.  Every event but a new day, and what the watch
 *	timer (alert_watch.c) or another part raises, also becomes an alert:
 *	one JSON object (alert_body.c) queued in memory and POSTed to [alert]
 *	webhook_url through the daemon's libcurl multi handle.
 *
 *	A kind that resolves another (isp_recovered resolves isp_cut) shares
 *	its dedup_key, so a receiver closes the incident it opened.  Alerts
 *	of one dedup_key are rate-limited (core/repeat.h): in each
 *	repeat_window the first firing and the first resolution go out at
 *	once, the rest are held and counted, and when the window ends the
 *	latest of them goes out with the count ("... (and 37 more in the
 *	last 10 min)").
 *
 *	One POST is under way at a time, so alerts arrive in order.  A failed
 *	POST (no answer, or not 2xx) is retried after 1s, 2s, 4s ... (at most
 *	5 minutes) up to `retries` times, then dropped.  The queue holds
 *	ALERT_QUEUE alerts; when full the oldest is dropped, with a log line.
 *
 * DIAGNOSTICS
 *	The webhook URL is a credential: logs name only its scheme and host.
 *	Every alert is also a log line (daemon_drain_events logs the events,
 *	alert_watch.c and the callers of alert_notice their own).
 */
#include "alert.h"

#include <cJSON.h>
#include <curl/curl.h>

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alert_body.h"
#include "alert_watch.h"
#include "core/alertkind.h"
#include "core/repeat.h"
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
	int attempt;       /* failed tries of the head alert */
	uv_timer_t retry;  /* waits before the next try */
	uv_timer_t repeat; /* the next summary of held alerts */
	struct wu_repeat rep;
	cJSON *held[WU_REPEAT_SLOTS]; /* the latest held alert of each slot */
	struct alert_watch *watch;
	int nclosed;
	char host[256];
	char source[256]; /* [alert] source, or the host name */
	char where[300];  /* scheme://host[:port] of the URL, for logs */
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

/* Prints o and queues it; o stays the caller's. */
static void send_now(struct alert *a, cJSON *o)
{
	char *body = cJSON_PrintUnformatted(o);

	if (body)
		enqueue(a, body);
}

static void on_repeat(uv_timer_t *t);

/* Arms the summary timer for the next window that ends with held alerts. */
static void repeat_arm(struct alert *a)
{
	wu_time_t next = wu_repeat_next(&a->rep), now = daemon_now(a->d);
	uint64_t ms;

	if (next == WU_TIME_NEVER) {
		uv_timer_stop(&a->repeat);
		return;
	}
	ms = next > now ? (uint64_t)((next - now + 999) / 1000) : 0;
	uv_timer_start(&a->repeat, on_repeat, ms, 0);
}

/* Windows that ended with held alerts: the latest of each, with the count. */
static void on_repeat(uv_timer_t *t)
{
	struct alert *a = t->data;
	wu_time_t now = daemon_now(a->d);
	int64_t held;
	int slot;

	while ((slot = wu_repeat_due(&a->rep, now, &held)) >= 0) {
		cJSON *o = a->held[slot];

		a->held[slot] = NULL;
		if (!o)
			continue;
		alert_body_summary(o, held, a->rep.window);
		wu_info("alert: %lld held alert%s of %s", (long long)held, held == 1 ? "" : "s",
		        cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "dedup_key")));
		send_now(a, o);
		cJSON_Delete(o);
	}
	repeat_arm(a);
}

/* Sends o now, or holds it as the latest of its dedup key's window. */
static void raise_body(struct alert *a, cJSON *o, unsigned state)
{
	const char *key = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "dedup_key"));
	int slot;

	/* Read every time: a reload may change the window. */
	a->rep.window = a->d->conf.alert_repeat > 0 ? a->d->conf.alert_repeat : 0;
	slot = wu_repeat_hear(&a->rep, key, state, daemon_now(a->d));
	if (slot < 0) {
		send_now(a, o);
		cJSON_Delete(o);
		return;
	}
	cJSON_Delete(a->held[slot]);
	a->held[slot] = o;
	repeat_arm(a);
}

/* alert_raise with the engine event's name as the flat "event" field. */
static void raise_as(struct alert *a, const struct alert_msg *m, const char *event)
{
	cJSON *o;

	if (!a) {
		cJSON_Delete(m->details);
		return;
	}
	if (!(o = alert_body(a->d, a->source, a->host, m, event)))
		return;
	raise_body(a, o, alert_kind_state(m->kind));
}

void alert_raise(struct alert *a, const struct alert_msg *m)
{
	raise_as(a, m, NULL);
}

void alert_notice(struct alert *a, const char *kind, const char *fmt, ...)
{
	struct alert_msg m = {.kind = kind, .route = -1};
	char what[1024];
	va_list ap;

	if (!a || !kind || !fmt)
		return;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	m.what = what;
	wu_info("alert: %s: %s", kind, what);
	alert_raise(a, &m);
}

struct wu_daemon *alert_daemon(struct alert *a)
{
	return a->d;
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
	snprintf(a->source, sizeof(a->source), "%s",
	         d->conf.alert_source[0] ? d->conf.alert_source : a->host);
	url_safe(d->conf.alert_url, a->where, sizeof(a->where));
	a->headers = curl_slist_append(NULL, "Content-Type: application/json");
	if (!a->headers) {
		free(a);
		return -1;
	}
	wu_repeat_init(&a->rep, d->conf.alert_repeat);
	uv_timer_init(d->loop, &a->retry);
	uv_timer_init(d->loop, &a->repeat);
	a->retry.data = a->repeat.data = a;
	if (alert_watch_start(&a->watch, a) < 0) {
		/* The handles are the loop's now: free through their close. */
		uv_close((uv_handle_t *)&a->retry, NULL);
		uv_close((uv_handle_t *)&a->repeat, NULL);
		wu_error("alert: cannot start the watch timer");
		return -1;
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
	int held = 0;

	if (!a)
		return;
	d->alert = NULL;
	alert_watch_stop(a->watch);
	a->watch = NULL;
	if (a->easy && d->cu)
		curluv_cancel(d->cu, a->easy);
	for (int i = 0; i < WU_REPEAT_SLOTS; i++)
		if (a->held[i]) {
			cJSON_Delete(a->held[i]);
			a->held[i] = NULL;
			held++;
		}
	if (a->n > 0 || held > 0)
		wu_warn("alert: stopping with %d alert%s not delivered and %d summar%s not due",
		        a->n, a->n == 1 ? "" : "s", held, held == 1 ? "y" : "ies");
	while (a->n > 0) {
		free(a->q[a->head]);
		a->head = (a->head + 1) % ALERT_QUEUE;
		a->n--;
	}
	uv_close((uv_handle_t *)&a->retry, on_closed);
	uv_close((uv_handle_t *)&a->repeat, on_closed);
}

/* Who paused: the provider's answer, or someone. */
static int by_provider(const char *who)
{
	return strncmp(who, WU_PAUSED_BY_AUTH, strlen(WU_PAUSED_BY_AUTH)) == 0;
}

void alert_engine_event(struct wu_daemon *d, const struct wu_event *ev)
{
	const char *name = wu_event_name(ev->kind);
	const char *route = ev->kind == WU_EV_DAY ? NULL : wu_route_name(ev->route);
	const struct wu_core_conf *cc = wu_engine_conf(d->engine);
	struct alert_msg m = {.what = ev->text, .route = (int)ev->route, .at = ev->at};
	const char *isp = ev->isp >= 0 && ev->isp < cc->isps.n ? cc->isps.names[ev->isp] : NULL;
	cJSON *det;

	if (daemon_txn(d) < 0 || store_event_add(d->store, ev->at, name, route, ev->text) < 0) {
		/* Losing the row is no reason to lose the turn's real work. */
		wu_warn("store: cannot record the event: %s", store_errmsg(d->store));
	}
	if (!d->alert || ev->kind == WU_EV_DAY)
		return;
	if (!(det = cJSON_CreateObject()))
		return;
	m.details = det;
	m.key = route;
	cJSON_AddNumberToObject(det, "bounce_rate", ev->bounce_rate);
	cJSON_AddNumberToObject(det, "complaint_rate", ev->complaint_rate);
	switch (ev->kind) {
	case WU_EV_GATE_WARN:
		m.kind = "gate_warn";
		break;
	case WU_EV_GATE_HALT:
		m.kind = "gate_halt";
		break;
	case WU_EV_PAUSE:
		m.kind = "paused";
		cJSON_AddStringToObject(det, "who", ev->who);
		cJSON_AddStringToObject(det, "by", by_provider(ev->who) ? "provider" : "operator");
		m.severity = wu_alert_severity(m.kind, by_provider(ev->who));
		break;
	case WU_EV_RESUME:
		m.kind = "resumed";
		cJSON_AddStringToObject(det, "who", ev->who);
		cJSON_AddStringToObject(det, "paused_by", ev->rule);
		/* A resume after a halt resolves the halt. */
		if (strcmp(ev->rule, "gate") == 0)
			m.group = "gate_halt";
		break;
	case WU_EV_ISP_CUT:
	case WU_EV_ISP_RECOVERED:
		m.kind = ev->kind == WU_EV_ISP_CUT ? "isp_cut" : "isp_recovered";
		m.key = isp;
		if (isp)
			cJSON_AddStringToObject(det, "isp", isp);
		cJSON_AddStringToObject(det, "rule", ev->rule);
		cJSON_AddNumberToObject(det, "factor", ev->value);
		break;
	case WU_EV_PERMFAIL_RATE:
	case WU_EV_PERMFAIL_OK:
		m.kind = ev->kind == WU_EV_PERMFAIL_RATE ? "permfail_rate" : "permfail_ok";
		cJSON_AddNumberToObject(det, "rate", ev->value);
		cJSON_AddNumberToObject(det, "threshold", cc->permfail.rate);
		cJSON_AddNumberToObject(det, "window", cc->permfail.window);
		break;
	case WU_EV_STEP_BACK:
		m.kind = "step_back";
		break;
	default:
		m.kind = name;
		break;
	}
	raise_as(d->alert, &m, name);
}
