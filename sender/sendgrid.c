/*
 * sendgrid.c -- the SendGrid Web API v3 route.
 *
 * DESCRIPTION
 *	A batch is units that share one content.  It becomes ONE POST to
 *	<url>/v3/mail/send: the stored body with "personalizations" built from
 *	each unit's stored personalization in item order, the custom args
 *	warmup_day and warmup_route merged in (SendGrid wants string values),
 *	tracking_settings and ip_pool_name set from the route's config.  The
 *	request runs on the shared curl multi handle (curluv.c), and its answer
 *	is classified into one snd_status shared by every unit of the batch:
 *
 *	    2xx                    accepted, provider_id = X-Message-Id
 *	    429                    tempfail, retry_after from X-RateLimit-Reset
 *	                           (a Unix time) or Retry-After
 *	    408, 5xx               tempfail (Retry-After honoured when sent)
 *	    curl timeout           timeout: it may have been taken
 *	    other transport error  timeout as well once the whole request was
 *	                           sent (a reset before the answer: SendGrid
 *	                           may have taken it); tempfail before that
 *	    2xx status line, then  accepted: the answer arrived, only its end
 *	    a transport error      did not
 *	    400, 413               permfail, with SendGrid's first error message
 *	    401, 403               authfail: the daemon pauses the route
 *	    any other status       authfail as well: the route is misconfigured
 *	                           (wrong url), so pause rather than drop mail
 *
 *	A unit whose stored personalization is not a JSON object is left out of
 *	the request and fails permanently on its own; a content that is not a
 *	JSON object fails the whole batch.  Those results are still delivered
 *	from the loop, never from inside snd_route_send().
 *
 * SECURITY
 *	The API key goes into one Authorization header built at creation.  It
 *	is wiped on free, and every error text is scrubbed of it before it
 *	leaves this file, whatever the server echoed back.
 */
#include "sendgrid.h"
#include "rawmail.h"
#include "sender_backend.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define SG_USEC        1000000LL /* microseconds in a second */
#define SG_BATCH_MAX   1000
#define SG_BODY_MAX    8192 /* enough for SendGrid's error bodies; the rest is dropped */
#define SG_USER_AGENT  "warmup/0.1"
#define SG_PATH        "/v3/mail/send"
#define SG_RETRY_LIMIT (86400 * SG_USEC) /* a wilder hint than a day is a broken header */

struct sg_route;

/* One request: a batch on its way, and what its answer said so far. */
struct sg_req {
	struct sg_route *r;
	struct snd_batch *b;
	snd_done_cb done;
	void *arg;
	CURL *easy;
	char *body;
	size_t body_len, body_off; /* the read callback's progress: bytes handed to curl */
	unsigned char *skip; /* items left out: their personalization is not an object */
	char err[256];       /* why nothing could be sent, when deferred */
	int deferred;        /* failed before curl: reported from a 0 ms timer */
	uv_timer_t defer;
	char msgid[128];
	char reset[32];
	char retry_after[64];
	char errbuf[CURL_ERROR_SIZE];
	size_t resplen;
	char resp[SG_BODY_MAX + 1];
	struct sg_req *prev, *next;
};

struct sg_route {
	struct curluv *cu;
	char url[sizeof(((struct snd_route_conf *)0)->url) + sizeof(SG_PATH)];
	char *secret; /* kept only to scrub error texts */
	struct curl_slist *headers;
	long timeout_ms;
	int max_conn;
	int batch;
	int click, open, sub, force;
	char ip_pool[128];
	int inflight;
	struct sg_req *reqs;
};

/* Overwrites every copy of the key in s, whatever put it there. */
static void sg_scrub(const struct sg_route *r, char *s)
{
	size_t n;
	char *p;

	if (r->secret == NULL || (n = strlen(r->secret)) == 0)
		return;
	while ((p = strstr(s, r->secret)) != NULL)
		memset(p, '*', n);
}

/* Frees a request and everything it holds. */
static void sg_req_free(struct sg_req *q)
{
	free(q->body);
	free(q->skip);
	free(q);
}

/* Close callback of a deferred request's timer: only now may q go. */
static void sg_defer_closed(uv_handle_t *h)
{
	sg_req_free(h->data);
}

/* Hands the results to the caller: the shared one, or permfail for skipped units. */
static void sg_complete(struct sg_req *q, const struct snd_result *shared)
{
	struct sg_route *r = q->r;
	struct snd_batch *b = q->b;
	struct snd_result *res;
	int i;

	/* Out of the route first: the callback may send again or free it. */
	if (q->prev)
		q->prev->next = q->next;
	else
		r->reqs = q->next;
	if (q->next)
		q->next->prev = q->prev;
	r->inflight--;

	res = calloc((size_t)b->nitems, sizeof(*res));
	if (res != NULL) {
		for (i = 0; i < b->nitems; i++) {
			if (q->skip[i]) {
				res[i].status = SND_PERMFAIL;
				snprintf(res[i].error, sizeof(res[i].error),
				         "personalization of unit %lld is not a JSON object",
				         (long long)b->items[i].unit_id);
			} else
				res[i] = *shared;
		}
		q->done(b, res, q->arg);
		free(res);
	} else {
		/* No memory for the array: report the shared result to every unit
		 * one call at a time rather than lose the batch. */
		for (i = 0; i < b->nitems; i++) {
			struct snd_batch one = *b;

			one.nitems = 1;
			one.items = &b->items[i];
			q->done(&one, shared, q->arg);
		}
	}
	if (q->deferred)
		uv_close((uv_handle_t *)&q->defer, sg_defer_closed);
	else
		sg_req_free(q);
}

/* The 0 ms timer of a batch that could not be sent at all. */
static void sg_on_defer(uv_timer_t *t)
{
	struct sg_req *q = t->data;
	struct snd_result res = {.status = SND_PERMFAIL};

	snprintf(res.error, sizeof(res.error), "%s", q->err);
	sg_complete(q, &res);
}

/* Copies the value of header `name` from one header line, when it is that one. */
static void sg_header_value(const char *buf, size_t len, const char *name, char *out, size_t outlen)
{
	size_t nl = strlen(name), vl;
	const char *v, *end = buf + len;

	if (len <= nl || buf[nl] != ':' || strncasecmp(buf, name, nl) != 0)
		return;
	for (v = buf + nl + 1; v < end && (*v == ' ' || *v == '\t'); v++)
		;
	while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
		end--;
	vl = (size_t)(end - v);
	if (vl >= outlen)
		vl = outlen - 1;
	memcpy(out, v, vl);
	out[vl] = '\0';
}

/* CURLOPT_HEADERFUNCTION: keeps the three headers the classification reads. */
static size_t sg_on_header(char *buf, size_t size, size_t n, void *arg)
{
	struct sg_req *q = arg;
	size_t len = size * n;

	/* A new status line (after a 100 Continue, say) starts a new header set. */
	if (len >= 5 && memcmp(buf, "HTTP/", 5) == 0) {
		q->msgid[0] = q->reset[0] = q->retry_after[0] = '\0';
		return len;
	}
	sg_header_value(buf, len, "X-Message-Id", q->msgid, sizeof(q->msgid));
	sg_header_value(buf, len, "X-RateLimit-Reset", q->reset, sizeof(q->reset));
	sg_header_value(buf, len, "Retry-After", q->retry_after, sizeof(q->retry_after));
	return len;
}

/* CURLOPT_WRITEFUNCTION: keeps the start of the body, drops the rest. */
static size_t sg_on_body(char *buf, size_t size, size_t n, void *arg)
{
	struct sg_req *q = arg;
	size_t len = size * n, room = SG_BODY_MAX - q->resplen;

	if (room > 0) {
		size_t k = len < room ? len : room;

		memcpy(q->resp + q->resplen, buf, k);
		q->resplen += k;
		q->resp[q->resplen] = '\0';
	}
	return len; /* a long body is no reason to fail the transfer */
}

/* Parses a whole decimal number of seconds.  Returns 0, or -1. */
static int sg_number(const char *v, long long *out)
{
	char *end;

	errno = 0;
	*out = strtoll(v, &end, 10);
	return (end != v && *end == '\0' && errno == 0) ? 0 : -1;
}

/* How long SendGrid asked us to wait, in microseconds; 0 when it did not say.
 * X-RateLimit-Reset counts only for a 429: SendGrid sends it on other
 * answers too, where it says nothing about when to retry. */
static int64_t sg_retry_after(const struct sg_req *q, int use_reset)
{
	long long now = (long long)time(NULL), s, t;

	/* X-RateLimit-Reset is a Unix time; Retry-After is seconds or an HTTP date. */
	if (use_reset && q->reset[0] != '\0' && sg_number(q->reset, &t) == 0)
		s = t - now;
	else if (q->retry_after[0] != '\0' && sg_number(q->retry_after, &t) == 0)
		s = t;
	else if (q->retry_after[0] != '\0' &&
	         (t = (long long)curl_getdate(q->retry_after, NULL)) != -1)
		s = t - now;
	else
		return 0;
	/* A reset already past still meant "not now": wait the least sensible time. */
	if (s < 1)
		s = 1;
	if (s > SG_RETRY_LIMIT / SG_USEC)
		return SG_RETRY_LIMIT;
	return (int64_t)s * SG_USEC;
}

/* Writes "HTTP <code>: <SendGrid's first error message>" into res->error. */
static void sg_reason(const struct sg_req *q, long code, struct snd_result *res)
{
	cJSON *j = cJSON_Parse(q->resp), *e, *msg, *field;
	size_t n = sizeof(res->error);

	e = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "errors"), 0);
	msg = cJSON_GetObjectItemCaseSensitive(e, "message");
	field = cJSON_GetObjectItemCaseSensitive(e, "field");
	if (cJSON_IsString(msg) && cJSON_IsString(field) && field->valuestring[0] != '\0')
		snprintf(res->error, n, "HTTP %ld: %s (field %s)", code, msg->valuestring,
		         field->valuestring);
	else if (cJSON_IsString(msg))
		snprintf(res->error, n, "HTTP %ld: %s", code, msg->valuestring);
	else {
		/* Not SendGrid's format: show the start of the body, one line. */
		char line[120];
		size_t i;

		for (i = 0; i < sizeof(line) - 1 && i < q->resplen; i++) {
			unsigned char c = (unsigned char)q->resp[i];

			if (c == '\r' || c == '\n')
				break;
			line[i] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
		}
		line[i] = '\0';
		snprintf(res->error, n, i ? "HTTP %ld: %s" : "HTTP %ld%s", code, line);
	}
	cJSON_Delete(j);
}

/* CURLOPT_READFUNCTION: the request body, in order, once. */
static size_t sg_read_body(char *buf, size_t size, size_t nitems, void *arg)
{
	struct sg_req *q = arg;
	size_t n = size * nitems, left = q->body_len - q->body_off;

	if (n > left)
		n = left;
	memcpy(buf, q->body + q->body_off, n);
	q->body_off += n;
	return n;
}

/* Turns curl's result and the HTTP answer into one snd_result. */
static void sg_classify(const struct sg_route *r, struct sg_req *q, CURL *easy, CURLcode result,
                        struct snd_result *res)
{
	long code = 0;
	int all_sent;

	memset(res, 0, sizeof(*res));
	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
	/* Once the last byte of the body is out, SendGrid may take the request
	 * whatever becomes of the answer: giving its units back to the cap
	 * would let them be counted twice (a provider that reset 30% of its
	 * connections after taking the request got 159 messages on a cap of
	 * 100).  CURLE_SEND_FAIL_REWIND is curl declining to send the body
	 * again on a fresh connection (see sg_send): it was sent once. */
	all_sent = (q->body && q->body_off >= q->body_len) || result == CURLE_SEND_FAIL_REWIND;
	res->code = code;
	if (result != CURLE_OK && code >= 200 && code < 300) {
		res->status = SND_ACCEPTED;
		snprintf(res->provider_id, sizeof(res->provider_id), "%s", q->msgid);
	} else if (result != CURLE_OK && result != CURLE_OPERATION_TIMEDOUT && all_sent &&
	           code == 0) {
		res->status = SND_TIMEOUT;
		snprintf(res->error, sizeof(res->error),
		         "%.60s after the whole request was sent to %.100s: it may have been "
		         "taken",
		         result == CURLE_ABORTED_BY_CALLBACK ? "aborted"
		                                             : curl_easy_strerror(result),
		         r->url);
	} else if (result == CURLE_ABORTED_BY_CALLBACK) {
		res->status = SND_TEMPFAIL;
		res->code = 0;
		snprintf(res->error, sizeof(res->error), "aborted before SendGrid answered");
	} else if (result == CURLE_OPERATION_TIMEDOUT) {
		res->status = SND_TIMEOUT;
		snprintf(res->error, sizeof(res->error), "no answer from %.160s within %ld ms",
		         r->url, r->timeout_ms);
	} else if (result != CURLE_OK) {
		res->status = SND_TEMPFAIL;
		snprintf(res->error, sizeof(res->error), "%.80s: %.160s",
		         curl_easy_strerror(result), q->errbuf[0] ? q->errbuf : r->url);
	} else if (code >= 200 && code < 300) {
		res->status = SND_ACCEPTED;
		snprintf(res->provider_id, sizeof(res->provider_id), "%s", q->msgid);
	} else if (code == 429 || code == 408 || code >= 500 || code < 200) {
		res->status = SND_TEMPFAIL;
		res->retry_after = sg_retry_after(q, code == 429);
		sg_reason(q, code, res);
	} else if (code == 400 || code == 413) {
		res->status = SND_PERMFAIL;
		sg_reason(q, code, res);
	} else if (code == 401 || code == 403) {
		res->status = SND_AUTHFAIL;
		sg_reason(q, code, res);
	} else {
		/* 404, 405, a redirect...: the url is wrong, not the mail. */
		res->status = SND_AUTHFAIL;
		snprintf(res->error, sizeof(res->error),
		         "HTTP %ld from %.160s: unexpected answer, check the route's url", code,
		         r->url);
	}
	sg_scrub(r, res->error);
	sg_scrub(r, res->provider_id);
}

/* curluv's callback: the request ended, or was aborted. */
static void sg_on_done(CURL *easy, CURLcode result, void *arg)
{
	struct sg_req *q = arg;
	struct snd_result res;

	sg_classify(q->r, q, easy, result, &res);
	curl_easy_cleanup(easy);
	q->easy = NULL;
	sg_complete(q, &res);
}

/* Sets o[key] to item, replacing what was there.  Returns item or NULL. */
static cJSON *sg_set(cJSON *o, const char *key, cJSON *item)
{
	if (item == NULL)
		return NULL;
	cJSON_DeleteItemFromObjectCaseSensitive(o, key);
	if (!cJSON_AddItemToObject(o, key, item)) {
		cJSON_Delete(item);
		return NULL;
	}
	return item;
}

/* o[key] as an object, made one when it is missing or of another type. */
static cJSON *sg_object(cJSON *o, const char *key)
{
	cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	return cJSON_IsObject(v) ? v : sg_set(o, key, cJSON_CreateObject());
}

/* A message taken over SMTP is stored once, as it came, beside the small
 * part of its v3 form (addresses, subject, headers, X-SMTPAPI's settings):
 * its "content" and "attachments" are made again from the raw message,
 * by the same conversion the intake proved it passes.  They may point into
 * *rm (the attachments' base64), which the caller frees after printing.
 * Returns 0, -1 (err says why), or -2 when memory ran out. */
static int sg_parts_from_raw(const struct snd_batch *b, cJSON *body, struct rawmail **rm,
                             char *err, size_t errlen)
{
	char why[256];
	cJSON *full, *part;

	if (!(*rm = rawmail_parse(b->raw, b->raw_len, why, sizeof(why)))) {
		snprintf(err, errlen, "content %lld: its message no longer converts: %s",
		         (long long)b->content_id, why);
		return -1;
	}
	full = rawmail_body(*rm);
	for (int i = 0; i < 2; i++) {
		const char *key = i ? "attachments" : "content";

		if ((part = cJSON_DetachItemFromObjectCaseSensitive(full, key)) &&
		    !cJSON_AddItemToObject(body, key, part)) {
			cJSON_Delete(part);
			return -2;
		}
	}
	return 0;
}

int sendgrid_body(const struct snd_batch *b, const struct sendgrid_opts *o, unsigned char *skip,
                  char **out, char *err, size_t errlen)
{
	cJSON *body, *ps, *ca, *ts, *t;
	struct rawmail *rm = NULL;
	char day[24];
	int i, nsent = 0;

	body = cJSON_Parse(b->content ? b->content : "");
	if (!cJSON_IsObject(body)) {
		cJSON_Delete(body);
		snprintf(err, errlen, "content %lld is not a JSON object",
		         (long long)b->content_id);
		return -1;
	}
	if (b->raw && !cJSON_HasObjectItem(body, "content") &&
	    (i = sg_parts_from_raw(b, body, &rm, err, errlen)) < 0) {
		cJSON_Delete(body);
		rawmail_free(rm);
		return i;
	}
	if ((ps = sg_set(body, "personalizations", cJSON_CreateArray())) == NULL)
		goto nomem;
	for (i = 0; i < b->nitems; i++) {
		const char *text = b->items[i].personalization;
		cJSON *p = cJSON_Parse(text ? text : "");

		if (!cJSON_IsObject(p)) {
			cJSON_Delete(p);
			skip[i] = 1;
			continue;
		}
		cJSON_AddItemToArray(ps, p);
		nsent++;
	}
	if (nsent == 0) {
		cJSON_Delete(body);
		rawmail_free(rm);
		snprintf(err, errlen, "no personalization of content %lld is a JSON object",
		         (long long)b->content_id);
		return -1;
	}

	/* SendGrid rejects custom_args values that are not strings. */
	snprintf(day, sizeof(day), "%d", b->warmup_day);
	if ((ca = sg_object(body, "custom_args")) == NULL ||
	    sg_set(ca, "warmup_day", cJSON_CreateString(day)) == NULL ||
	    sg_set(ca, "warmup_route",
	           cJSON_CreateString(b->role == SND_ROLE_OLD ? "old" : "new")) == NULL)
		goto nomem;

	/* The route's tracking is the default for mail that does not say;
	 * the application's own enable wins unless the route forces it.
	 * Other tracking settings stay as sent. */
	if ((ts = sg_object(body, "tracking_settings")) == NULL)
		goto nomem;
	for (i = 0; i < 3; i++) {
		static const char *const names[] = {"click_tracking", "open_tracking",
		                                    "subscription_tracking"};
		const int on[] = {o->click, o->open, o->sub};

		if ((t = sg_object(ts, names[i])) == NULL)
			goto nomem;
		if ((o->force || !cJSON_IsBool(cJSON_GetObjectItemCaseSensitive(t, "enable"))) &&
		    sg_set(t, "enable", cJSON_CreateBool(on[i])) == NULL)
			goto nomem;
	}

	if (o->ip_pool && o->ip_pool[0] != '\0' &&
	    sg_set(body, "ip_pool_name", cJSON_CreateString(o->ip_pool)) == NULL)
		goto nomem;

	*out = cJSON_PrintUnformatted(body);
	cJSON_Delete(body);
	rawmail_free(rm);
	return *out ? 0 : -2;
nomem:
	cJSON_Delete(body);
	rawmail_free(rm);
	return -2;
}

/* Builds the request body.  Returns 0, -1 for bad stored data (err says
 * why), or -2 when memory ran out. */
static int sg_build(const struct sg_route *r, struct sg_req *q)
{
	const struct sendgrid_opts o = {r->click, r->open, r->sub, r->force, r->ip_pool};

	return sendgrid_body(q->b, &o, q->skip, &q->body, q->err, sizeof(q->err));
}

/* Links a request into the route's list of requests under way. */
static void sg_link(struct sg_route *r, struct sg_req *q)
{
	q->next = r->reqs;
	if (r->reqs)
		r->reqs->prev = q;
	r->reqs = q;
	r->inflight++;
}

/* Starts one request for the batch, or refuses it when the route is full. */
static int sg_send(void *impl, struct snd_batch *b, snd_done_cb done, void *arg)
{
	struct sg_route *r = impl;
	struct sg_req *q;
	CURL *e;
	int rc;

	if (r->inflight >= r->max_conn || b == NULL || done == NULL || b->nitems <= 0 ||
	    b->nitems > r->batch || b->items == NULL)
		return -1;
	q = calloc(1, sizeof(*q));
	if (q == NULL)
		return -1;
	q->r = r;
	q->b = b;
	q->done = done;
	q->arg = arg;
	if ((q->skip = calloc((size_t)b->nitems, 1)) == NULL) {
		sg_req_free(q);
		return -1;
	}
	rc = sg_build(r, q);
	if (rc == -2) {
		sg_req_free(q);
		return -1;
	}
	if (rc == -1) {
		/* Bad stored data is a result, not a refusal; but the caller must
		 * never see its callback from inside this call. */
		if (uv_timer_init(curluv_loop(r->cu), &q->defer) < 0) {
			sg_req_free(q);
			return -1;
		}
		q->defer.data = q;
		q->deferred = 1;
		uv_timer_start(&q->defer, sg_on_defer, 0, 0);
		sg_link(r, q);
		return 0;
	}

	if ((e = curl_easy_init()) == NULL) {
		sg_req_free(q);
		return -1;
	}
	curl_easy_setopt(e, CURLOPT_URL, r->url);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_POST, 1L);
	/* The body through a read callback with no seek callback: curl cannot
	 * rewind it, so it never sends a request a second time by itself (it
	 * does so, with a body given as POSTFIELDS, when a reused connection
	 * dies before any answer; SendGrid may have taken the first). */
	q->body_len = strlen(q->body);
	q->body_off = 0;
	curl_easy_setopt(e, CURLOPT_READFUNCTION, sg_read_body);
	curl_easy_setopt(e, CURLOPT_READDATA, q);
	curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)q->body_len);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
	curl_easy_setopt(e, CURLOPT_USERAGENT, SG_USER_AGENT);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, r->timeout_ms);
	/* The whole request, connection included: curl's own connect limit
	 * (300 s) would cut a longer timeout short. */
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, r->timeout_ms);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, sg_on_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, q);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, sg_on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, q);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, q->errbuf);
	q->easy = e;
	if (curluv_add(r->cu, e, sg_on_done, q) < 0) {
		curl_easy_cleanup(e);
		sg_req_free(q);
		return -1;
	}
	sg_link(r, q);
	return 0;
}

/* Requests under way, deferred failures included. */
static int sg_inflight(const void *impl)
{
	return ((const struct sg_route *)impl)->inflight;
}

/* At most max_connections requests at once. */
static int sg_capacity(const void *impl)
{
	return ((const struct sg_route *)impl)->max_conn;
}

/* Personalizations per request. */
static int sg_batch_max(const void *impl)
{
	return ((const struct sg_route *)impl)->batch;
}

/* Wipes and frees the headers: one of them carries the key. */
static void sg_free_headers(struct curl_slist *h)
{
	struct curl_slist *s;

	for (s = h; s != NULL; s = s->next)
		explicit_bzero(s->data, strlen(s->data));
	curl_slist_free_all(h);
}

/* Aborts what is still running (each batch gets its callback), then frees. */
static void sg_free(void *impl)
{
	struct sg_route *r = impl;

	if (r == NULL)
		return;
	while (r->reqs != NULL) {
		struct sg_req *q = r->reqs;

		if (q->deferred) {
			uv_timer_stop(&q->defer);
			sg_on_defer(&q->defer);
		} else if (curluv_cancel(r->cu, q->easy) < 0) {
			/* Not in the multi handle any more: report it ourselves. */
			sg_on_done(q->easy, CURLE_ABORTED_BY_CALLBACK, q);
		}
	}
	sg_free_headers(r->headers);
	if (r->secret != NULL) {
		explicit_bzero(r->secret, strlen(r->secret));
		free(r->secret);
	}
	free(r);
}

/* Appends one header line; the buffer is wiped because it may hold the key. */
static int sg_header(struct curl_slist **h, const char *fmt, const char *v)
{
	char line[1024];
	struct curl_slist *n;
	int len = snprintf(line, sizeof(line), fmt, v);

	if (len < 0 || (size_t)len >= sizeof(line)) {
		explicit_bzero(line, sizeof(line));
		return -1;
	}
	n = curl_slist_append(*h, line);
	explicit_bzero(line, sizeof(line));
	if (n == NULL)
		return -1;
	*h = n;
	return 0;
}

/* Checks the route's config and builds what every request shares. */
static int sg_create(void **impl, const struct snd_route_conf *conf, struct curluv *cu, char *err,
                     size_t errlen)
{
	struct sg_route *r;
	const char *src = conf->secret_source[0] ? conf->secret_source : "the config";
	size_t ul;

	*impl = NULL;
	if (cu == NULL) {
		snprintf(err, errlen, "route sendgrid: no curl multi handle");
		return -1;
	}
	if (strncmp(conf->url, "http://", 7) != 0 && strncmp(conf->url, "https://", 8) != 0) {
		snprintf(err, errlen,
		         "route sendgrid: url must start with https:// or http://, got '%.*s'", 120,
		         conf->url);
		return -1;
	}
	if (conf->secret == NULL || conf->secret[0] == '\0') {
		snprintf(err, errlen, "route sendgrid: no API key (from %s)", src);
		return -1;
	}
	if (strpbrk(conf->secret, "\r\n") != NULL) {
		snprintf(err, errlen, "route sendgrid: the API key from %s contains a line break",
		         src);
		return -1;
	}
	if (strpbrk(conf->on_behalf_of, "\r\n") != NULL) {
		snprintf(err, errlen, "route sendgrid: on_behalf_of contains a line break");
		return -1;
	}
	r = calloc(1, sizeof(*r));
	if (r == NULL || (r->secret = strdup(conf->secret)) == NULL) {
		free(r);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	r->cu = cu;
	/* "https://api.sendgrid.com/" and "https://api.sendgrid.com" alike. */
	ul = strnlen(conf->url, sizeof(conf->url));
	while (ul > 0 && conf->url[ul - 1] == '/')
		ul--;
	snprintf(r->url, sizeof(r->url), "%.*s%s", (int)ul, conf->url, SG_PATH);
	r->timeout_ms = conf->timeout > 0 ? (long)((conf->timeout + 999) / 1000) : 30000L;
	r->max_conn = conf->max_connections > 0 ? conf->max_connections : 8;
	r->batch = conf->batch > 0 && conf->batch < SG_BATCH_MAX ? conf->batch : SG_BATCH_MAX;
	r->click = conf->click_tracking != 0;
	r->open = conf->open_tracking != 0;
	r->sub = conf->subscription_tracking != 0;
	r->force = conf->force_tracking != 0;
	snprintf(r->ip_pool, sizeof(r->ip_pool), "%s", conf->ip_pool);
	/* "Expect:" turns off 100-continue: a big batch would wait for it. */
	if (sg_header(&r->headers, "Authorization: Bearer %s", conf->secret) < 0 ||
	    sg_header(&r->headers, "%s", "Content-Type: application/json") < 0 ||
	    sg_header(&r->headers, "%s", "Accept: application/json") < 0 ||
	    sg_header(&r->headers, "%s", "Expect:") < 0 ||
	    (conf->on_behalf_of[0] != '\0' &&
	     sg_header(&r->headers, "on-behalf-of: %s", conf->on_behalf_of) < 0)) {
		sg_free(r);
		snprintf(err, errlen, "route sendgrid: cannot build the request headers");
		return -1;
	}
	*impl = r;
	return 0;
}

/* The route type "sendgrid", as sender.c finds it. */
const struct snd_backend snd_sendgrid_backend = {
    .name = "sendgrid",
    .create = sg_create,
    .send = sg_send,
    .inflight = sg_inflight,
    .capacity = sg_capacity,
    .batch_max = sg_batch_max,
    .free = sg_free,
};
