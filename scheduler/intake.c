/*
 * intake.c -- SendGrid-compatible mail intake over libmicrohttpd on libuv.
 *
 * A request is read into memory up to the body limit, checked (token,
 * content type, size, JSON, SendGrid's rules), split into one unit per
 * personalization with the shared body stored once, written into the loop
 * turn's transaction, and its connection suspended.  After the commit the
 * connection is resumed and answered: 202 with X-Message-Id, or 500 if the
 * commit failed (nothing of it is kept, the client may retry).
 */
#include "intake.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "control.h"
#include "core/calendar.h"
#include "core/parse.h"
#include "dispatcher.h"
#include "log.h"
#include "msgid.h"
#include "mx.h"
#include "sender/json_strict.h"
#include "sender/strbuf.h"
#include "sender/v3mail.h"
#include "suppress.h"
#include "ui.h"
#include "webhook.h"

/* One client connection, from libmicrohttpd's connection notifications: when
 * its current request's headers must have arrived by. */
struct client {
	struct client *prev, *next;
	MHD_socket fd;
	uint64_t deadline; /* loop ms; 0 while a request is being handled */
};

struct intake {
	struct wu_daemon *d;
	struct MHD_Daemon *mhd;
	uv_poll_t poll;
	uv_timer_t timer;
	uv_timer_t sweep; /* cuts connections whose headers are late */
	struct client *clients;
	struct ui *ui; /* the status page and who may look */
	int closed_one; /* a connection closed during the last MHD_run */
	int port;
	int closing;
	int nclosed;
};

enum req_kind { REQ_MAIL, REQ_STATUS, REQ_METRICS, REQ_CONTROL, REQ_WEBHOOK, REQ_UI, REQ_OTHER };

struct req {
	struct intake *in;
	struct MHD_Connection *conn;
	enum req_kind kind;
	struct strbuf body; /* the request body as received */
	int too_big;
	int answered;  /* a response was queued early */
	int suspended; /* waiting for the commit */
	int committed; /* the commit result is known */
	int ok;        /* the commit succeeded */
	char msgid[32];
	struct control_reply ctl; /* REQ_CONTROL: the answer, maybe after the commit */
	struct webhook_reply wh;  /* REQ_WEBHOOK: the same */
};

static void intake_pump(struct intake *in);

/* Queues a response with a body (copied). */
static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *type,
                             const char *body, const char *hname, const char *hval)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(
	    body ? strlen(body) : 0, (void *)(body ? body : ""), MHD_RESPMEM_MUST_COPY);
	enum MHD_Result ret;

	if (!r)
		return MHD_NO;
	if (type)
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	if (hname)
		MHD_add_response_header(r, hname, hval);
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

/* Queues SendGrid's error body with one message. */
static enum MHD_Result reply_error(struct MHD_Connection *c, unsigned status, const char *field,
                                   const char *message)
{
	struct v3mail_errors errs = {0};
	enum MHD_Result ret;
	char *json;

	v3mail_error(&errs, field ? field : "", "%s", message);
	json = v3mail_errors_json(&errs);
	ret = reply(c, status, "application/json", json ? json : "{}", NULL, NULL);
	free(json);
	return ret;
}

/* Queues SendGrid's error body and closes the connection after it: for a
 * request whose framing cannot be trusted, nothing after it on the
 * connection is read. */
static enum MHD_Result reply_error_close(struct MHD_Connection *c, unsigned status,
                                         const char *message)
{
	struct v3mail_errors errs = {0};
	struct MHD_Response *r;
	enum MHD_Result ret;
	char *body;

	v3mail_error(&errs, "", "%s", message);
	if (!(body = v3mail_errors_json(&errs)))
		return MHD_NO;
	r = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

/* What the header check counts and finds. */
struct header_scan {
	int content_length, transfer_encoding, authorization, host;
	const char *te;   /* the Transfer-Encoding value */
	int bad_name;     /* a field name that is not an RFC 9110 token */
};

/* An RFC 9110 tchar. */
static int is_tchar(unsigned char ch)
{
	return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	       (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

static enum MHD_Result scan_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
	struct header_scan *hs = cls;

	(void)kind;
	if (!key[0])
		hs->bad_name = 1;
	for (const char *p = key; *p; p++)
		if (!is_tchar((unsigned char)*p))
			hs->bad_name = 1;
	if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0)
		hs->content_length++;
	else if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0) {
		hs->transfer_encoding++;
		hs->te = value;
	} else if (strcasecmp(key, MHD_HTTP_HEADER_AUTHORIZATION) == 0)
		hs->authorization++;
	else if (strcasecmp(key, MHD_HTTP_HEADER_HOST) == 0)
		hs->host++;
	return MHD_YES;
}

/* Refuses a request whose framing or identity two parsers could read two
 * ways (RFC 9112 6.1, 6.3; RFC 9110 5.3): the status to answer, or 0.
 * libmicrohttpd 0.9.75 takes the first of repeated fields and lets
 * Transfer-Encoding win over Content-Length; a front proxy that does the
 * opposite would see a different request than this server. */
static unsigned framing_check(struct MHD_Connection *c, const char *version, const char **why)
{
	struct header_scan hs = {0};

	MHD_get_connection_values(c, MHD_HEADER_KIND, scan_header, &hs);
	if (hs.bad_name)
		return *why = "A header field name is not a token (spaces or control characters).",
		       MHD_HTTP_BAD_REQUEST;
	if (hs.content_length && hs.transfer_encoding)
		return *why = "Content-Length and Transfer-Encoding must not both be sent.",
		       MHD_HTTP_BAD_REQUEST;
	if (hs.content_length > 1)
		return *why = "Content-Length is sent more than once.", MHD_HTTP_BAD_REQUEST;
	if (hs.transfer_encoding > 1 || (hs.te && strcasecmp(hs.te, "chunked") != 0))
		return *why = "Only Transfer-Encoding: chunked is implemented.",
		       MHD_HTTP_NOT_IMPLEMENTED;
	if (hs.authorization > 1)
		return *why = "Authorization is sent more than once.", MHD_HTTP_BAD_REQUEST;
	if (hs.host > 1 || (!hs.host && strcmp(version, MHD_HTTP_VERSION_1_1) == 0))
		return *why = "An HTTP/1.1 request needs exactly one Host header.",
		       MHD_HTTP_BAD_REQUEST;
	return 0;
}

/* Compares the bearer token in constant time. */
static int authorized(struct intake *in, struct MHD_Connection *c)
{
	const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
	const char *tok = in->d->conf.token;
	size_t n, m;
	unsigned char diff = 0;

	if (in->d->conf.auth_none)
		return 1;
	if (!h || !tok || strncasecmp(h, "Bearer ", 7) != 0)
		return 0;
	h += 7;
	n = strlen(h);
	m = strlen(tok);
	for (size_t i = 0; i < m; i++)
		diff |= (unsigned char)(tok[i] ^ (i < n ? h[i] : 0));
	return diff == 0 && n == m;
}

/* After the commit: wake the connection so its answer goes out. */
static void mail_committed(void *arg, int ok)
{
	struct req *r = arg;

	r->committed = 1;
	r->ok = ok;
	if (r->suspended) {
		r->suspended = 0;
		MHD_resume_connection(r->conn);
		intake_kick(r->in);
	}
	if (ok)
		dispatcher_kick(r->in->d->disp);
}

/* Answers 400 with SendGrid's error body for errs. */
static enum MHD_Result reply_errors(struct MHD_Connection *c, const struct v3mail_errors *errs)
{
	char *json = v3mail_errors_json(errs);
	enum MHD_Result ret =
	    reply(c, MHD_HTTP_BAD_REQUEST, "application/json", json ? json : "{}", NULL, NULL);

	free(json);
	return ret;
}

/* Refuses a send_at further ahead than SendGrid schedules, globally or in
 * any personalization.  Returns 0, or -1 with the error in *errs. */
int intake_send_at_check(const cJSON *body, wu_time_t now, struct v3mail_errors *errs)
{
	const cJSON *ps = cJSON_GetObjectItemCaseSensitive(body, "personalizations"), *p;
	long long t, limit = now / WU_USEC + V3MAIL_SEND_AT_MAX;
	int i = 0;

	cJSON_ArrayForEach(p, ps)
	{
		if (v3mail_send_at(body, p, &t) && t > limit) {
			char f[64];

			if (cJSON_GetObjectItemCaseSensitive(p, "send_at"))
				snprintf(f, sizeof f, "personalizations.%d.send_at", i);
			else
				snprintf(f, sizeof f, "send_at");
			v3mail_error(errs, f,
			             "The send_at parameter can only be up to 72 hours in the "
			             "future.");
			return -1;
		}
		i++;
	}
	return 0;
}

wu_time_t intake_engaged_at(const char *mark, wu_time_t now)
{
	int y, m, day;

	if (!mark)
		return 0;
	if (strcasecmp(mark, "true") == 0 || strcasecmp(mark, "yes") == 0 || strcmp(mark, "1") == 0)
		return now;
	if (strcasecmp(mark, "false") == 0 || strcasecmp(mark, "no") == 0 || strcmp(mark, "0") == 0)
		return -1;
	/* A last-engaged date counts from its start (UTC): a day early at
	 * most, against an age of weeks. */
	if (strlen(mark) == 10 && wu_parse_date(mark, &y, &m, &day, NULL, 0) == 0)
		return (wu_time_t)wu_days_from_civil(y, m, day) * WU_DAY;
	return 0;
}

int intake_add_units(struct wu_daemon *d, const cJSON *body, const cJSON *ps, int64_t content_id,
                     int v3only, wu_time_t now)
{
	const cJSON *p;
	int n = 0;

	cJSON_ArrayForEach(p, ps)
	{
		char domain[256], email[320], *json;
		int64_t unit;
		wu_time_t engaged, due;
		int isp;

		if (v3mail_first_domain(p, domain, sizeof(domain)) < 0)
			domain[0] = '\0';
		if (v3mail_first_email(p, email, sizeof(email)) < 0)
			email[0] = '\0';
		engaged = intake_engaged_at(v3mail_engaged_mark(body, p), now);
		isp = mx_classify(d->mx, domain, now, NULL);
		json = cJSON_PrintUnformatted(p);
		if (!json ||
		    store_add_unit_marked(d->store, content_id, json, strlen(json), isp, domain,
		                          engaged, email, now, &unit) < 0 ||
		    intake_hold(d, body, p, unit, now, &due) < 0 ||
		    (v3only && store_set_v3only(d->store, unit) < 0)) {
			free(json);
			return -1;
		}
		free(json);
		/* The hour it can go in (its send_at, when ahead) shapes the
		 * pacing of the days after. */
		wu_engine_arrive(d->engine, due, 1);
		n++;
	}
	return n;
}

/* A unit whose send_at is ahead waits in the queue until then: it is
 * routed, and counted against a cap, on the day it goes out. */
int intake_hold(struct wu_daemon *d, const cJSON *body, const cJSON *p, int64_t unit, wu_time_t now,
                wu_time_t *due)
{
	long long t;

	*due = now;
	if (!v3mail_send_at(body, p, &t) || (wu_time_t)t * WU_USEC <= now)
		return 0;
	*due = (wu_time_t)t * WU_USEC;
	return store_requeue(d->store, unit, *due, NULL);
}

/* Checks and stores one mail/send body.  Returns the status to answer now,
 * or 0 when the request waits for the commit. */
static enum MHD_Result handle_mail(struct req *r)
{
	struct intake *in = r->in;
	struct wu_daemon *d = in->d;
	struct v3mail_errors errs = {0};
	struct json_strict_error jerr;
	cJSON *body, *ps;
	char *content = NULL;
	int64_t content_id;
	wu_time_t now = daemon_now(d);
	struct suppress_result sr;
	struct suppress_scope scope;
	char why[400];
	int n = 0, v3only;

	if (json_strict_parse(r->body.p, r->body.len, &body, &jerr) < 0) {
		d->extra.intake_rejected++;
		return reply_error(r->conn, MHD_HTTP_BAD_REQUEST, jerr.field, jerr.message);
	}
	if (v3mail_validate(body, &errs) < 0) {
		cJSON_Delete(body);
		d->extra.intake_rejected++;
		return reply_errors(r->conn, &errs);
	}
	/* Sandbox mode validates and stops: SendGrid answers 200 (not 202),
	 * delivers nothing and counts nothing. */
	if (v3mail_setting(body, "mail_settings", "sandbox_mode") == 1) {
		cJSON_Delete(body);
		d->extra.intake_sandbox++;
		return reply(r->conn, MHD_HTTP_OK, NULL, NULL, NULL, NULL);
	}
	if (intake_send_at_check(body, now, &errs) < 0) {
		cJSON_Delete(body);
		d->extra.intake_rejected++;
		return reply_errors(r->conn, &errs);
	}
	suppress_scope_of(body, &scope);
	ps = cJSON_DetachItemFromObjectCaseSensitive(body, "personalizations");
	switch (suppress_filter(d, ps, &scope, &sr)) {
	case -1:
		goto fail;
	case 1:
		wu_debug("intake: refused: %s is suppressed (%s)", sr.email, sr.reason);
		cJSON_Delete(ps);
		cJSON_Delete(body);
		d->extra.intake_rejected++;
		snprintf(why, sizeof(why), "The address %s is on the suppression list (%s).",
		         sr.email, sr.reason);
		return reply_error(r->conn, MHD_HTTP_BAD_REQUEST, sr.field, why);
	}
	msgid_make(r->msgid);
	if (sr.dropped)
		wu_debug("intake: %s: %d suppressed recipient%s dropped, %d personalization%s left",
		         r->msgid, sr.dropped, sr.dropped == 1 ? "" : "s", cJSON_GetArraySize(ps),
		         cJSON_GetArraySize(ps) == 1 ? "" : "s");
	if (cJSON_GetArraySize(ps) == 0) {
		/* Every recipient is suppressed: SendGrid still answers 202. */
		cJSON_Delete(ps);
		cJSON_Delete(body);
		d->extra.intake_accepted++;
		return reply(r->conn, MHD_HTTP_ACCEPTED, NULL, NULL, "X-Message-Id", r->msgid);
	}
	/* Only SendGrid can render a template: such mail never takes an SMTP
	 * route, even with a fallback content. */
	v3only = cJSON_IsString(cJSON_GetObjectItemCaseSensitive(body, "template_id"));
	content = cJSON_PrintUnformatted(body);
	if (!content || daemon_txn(d) < 0 ||
	    store_add_content(d->store, r->msgid, content, strlen(content), now, &content_id) < 0)
		goto fail;
	if ((n = intake_add_units(d, body, ps, content_id, v3only, now)) < 0)
		goto fail;
	free(content);
	cJSON_Delete(ps);
	cJSON_Delete(body);
	if (daemon_after_commit(d, mail_committed, r) < 0) {
		daemon_txn_fail(d, "intake: out of memory");
		return reply_error(r->conn, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL,
		                   "The message could not be stored; try again.");
	}
	wu_debug("intake: %s with %d personalization%s", r->msgid, n, n == 1 ? "" : "s");
	r->suspended = 1;
	MHD_suspend_connection(r->conn);
	return MHD_YES;
fail:
	wu_error("intake: cannot store a message: %s", store_errmsg(d->store));
	daemon_txn_fail(d, "intake");
	free(content);
	cJSON_Delete(ps);
	cJSON_Delete(body);
	return reply_error(r->conn, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL,
	                   "The message could not be stored; try again.");
}

/* Serves GET /v1/status and /metrics. */
static enum MHD_Result handle_view(struct req *r)
{
	struct wu_daemon *d = r->in->d;
	wu_time_t now = daemon_now(d);
	char *text;
	enum MHD_Result ret;

	if (r->kind == REQ_STATUS)
		text = status_json(d->engine, d->store, &d->conf, &d->extra, now);
	else
		text = status_metrics(d->engine, d->store, &d->conf, &d->extra, now);
	if (!text)
		return reply_error(r->conn, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL,
		                   "status is not available");
	ret = reply(r->conn, MHD_HTTP_OK,
	            r->kind == REQ_STATUS ? "application/json"
	                                  : "text/plain; version=0.0.4; charset=utf-8",
	            text, NULL, NULL);
	free(text);
	return ret;
}

/* The first call of a request: route it and refuse early what can be. */
static enum MHD_Result begin(struct req *r, const char *url, const char *method,
                             const char *version)
{
	struct MHD_Connection *c = r->conn;
	const char *ctype, *clen, *why;
	int is_post = strcmp(method, "POST") == 0, is_get = strcmp(method, "GET") == 0;
	unsigned bad = framing_check(c, version, &why);

	if (bad) {
		r->answered = 1;
		r->in->d->extra.intake_rejected++;
		return reply_error_close(c, bad, why);
	}
	if (strcmp(url, WEBHOOK_PATH) == 0) {
		/* SendGrid's Event Webhook: its own authentication and body limit,
		 * never the intake token. */
		r->kind = REQ_WEBHOOK;
		if (!webhook_begin(r->in->d->webhook, c, method, &r->wh))
			return MHD_YES;
		r->answered = 1;
		return reply(c, r->wh.status, "application/json", r->wh.body, NULL, NULL);
	}
	if (strcmp(url, "/v3/mail/send") == 0)
		r->kind = is_post ? REQ_MAIL : REQ_OTHER;
	else if (strcmp(url, "/v1/status") == 0 && is_get)
		r->kind = REQ_STATUS;
	else if (strcmp(url, "/metrics") == 0 && is_get)
		r->kind = REQ_METRICS;
	else if (ui_match(url) && is_get)
		r->kind = REQ_UI;
	else if (control_match(url))
		r->kind = REQ_CONTROL;
	else
		r->kind = REQ_OTHER;
	if (r->kind == REQ_OTHER) {
		r->answered = 1;
		if (strcmp(url, "/v3/mail/send") == 0)
			return reply_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, NULL,
			                   "Use POST for /v3/mail/send.");
		return reply_error(c, MHD_HTTP_NOT_FOUND, NULL, "Not found.");
	}
	if (r->kind == REQ_UI) {
		/* The page asks for basic auth itself (ui.c). */
		r->answered = 1;
		return ui_handle(r->in->ui, c, url);
	}
	/* GET /v1/status is the page's data: the same viewers may read it. */
	if (r->kind == REQ_STATUS ? !ui_may_view(r->in->ui, c) : !authorized(r->in, c)) {
		r->answered = 1;
		r->in->d->extra.intake_rejected++;
		return reply_error(c, MHD_HTTP_UNAUTHORIZED, NULL,
		                   "The provided authorization grant is invalid, expired, or "
		                   "revoked");
	}
	if (r->kind != REQ_MAIL)
		return MHD_YES;
	ctype = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
	if (!ctype || strncasecmp(ctype, "application/json", 16) != 0 ||
	    (ctype[16] && ctype[16] != ';' && ctype[16] != ' ')) {
		r->answered = 1;
		r->in->d->extra.intake_rejected++;
		return reply_error(c, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, NULL,
		                   "Content-Type should be application/json.");
	}
	clen = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (clen && strtoull(clen, NULL, 10) > r->in->d->conf.max_body) {
		/* Read and drop the body, then answer 413: a client that writes
		 * the whole body before reading (most do) would otherwise meet a
		 * reset instead of the answer.  Beyond twice the limit it is not
		 * worth reading: answer at once and close. */
		r->too_big = 1;
		if (strtoull(clen, NULL, 10) / 2 > r->in->d->conf.max_body) {
			r->answered = 1;
			r->in->d->extra.intake_rejected++;
			return reply_error(c, MHD_HTTP_CONTENT_TOO_LARGE, NULL,
			                   "The request body is larger than this server accepts.");
		}
	}
	return MHD_YES;
}

/* Appends upload data, up to the body limit. */
static int take_data(struct req *r, const char *data, size_t n)
{
	size_t max =
	    r->kind == REQ_WEBHOOK ? webhook_max_body(r->in->d->webhook) : r->in->d->conf.max_body;

	if (r->too_big || r->body.len + n > max) {
		r->too_big = 1;
		return 0;
	}
	return strbuf_add(&r->body, data, n) < 0 ? -1 : 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
	struct intake *in = cls;
	struct req *r = *con_cls;

	if (!r) {
		const union MHD_ConnectionInfo *ci =
		    MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
		if (ci && ci->socket_context)
			((struct client *)ci->socket_context)->deadline = 0; /* headers are in */
		if (!(r = calloc(1, sizeof(*r))))
			return MHD_NO;
		r->in = in;
		r->conn = conn;
		*con_cls = r;
		return begin(r, url, method, version);
	}
	if (r->answered) {
		*upload_data_size = 0; /* discard the rest of a refused upload */
		return MHD_YES;
	}
	if (*upload_data_size) {
		if (take_data(r, upload_data, *upload_data_size) < 0)
			return MHD_NO;
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (r->suspended)
		return MHD_YES;
	if (in->closing && !r->committed) {
		/* Stopping: nothing new joins a transaction that will not be
		 * committed; the client retries against the next run. */
		r->answered = 1;
		return reply_error(conn, MHD_HTTP_SERVICE_UNAVAILABLE, NULL,
		                   "The server is shutting down; try again.");
	}
	if (r->kind == REQ_WEBHOOK) {
		struct webhook *w = in->d->webhook;

		if (r->committed) {
			webhook_committed(w, r->ok, &r->wh);
		} else {
			webhook_post(w, conn, r->body.p, r->body.len, r->too_big, &r->wh);
			if (r->wh.after_commit &&
			    daemon_after_commit(in->d, mail_committed, r) == 0) {
				r->suspended = 1;
				MHD_suspend_connection(conn);
				return MHD_YES;
			}
			if (r->wh.after_commit) {
				daemon_txn_fail(in->d, "webhook: out of memory");
				webhook_committed(w, 0, &r->wh);
			}
		}
		r->answered = 1;
		return reply(conn, r->wh.status, "application/json", r->wh.body, NULL, NULL);
	}
	if (r->committed && r->kind == REQ_CONTROL) {
		r->answered = 1;
		if (!r->ok)
			return reply_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL,
			                   "The change could not be stored; try again.");
		return reply(conn, r->ctl.status, "application/json", r->ctl.body, NULL, NULL);
	}
	if (r->committed) {
		r->answered = 1;
		if (!r->ok)
			return reply_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL,
			                   "The message could not be stored; try again.");
		in->d->extra.intake_accepted++;
		return reply(conn, MHD_HTTP_ACCEPTED, NULL, NULL, "X-Message-Id", r->msgid);
	}
	if (r->kind == REQ_MAIL) {
		if (r->too_big) {
			r->answered = 1;
			in->d->extra.intake_rejected++;
			return reply_error(conn, MHD_HTTP_CONTENT_TOO_LARGE, NULL,
			                   "The request body is larger than this server accepts.");
		}
		enum MHD_Result ret = handle_mail(r);
		if (!r->suspended)
			r->answered = 1;
		return ret;
	}
	if (r->kind == REQ_CONTROL && !r->too_big) {
		control_handle(in->d, conn, method, url, r->body.p, r->body.len, &r->ctl);
		if (r->ctl.after_commit && daemon_after_commit(in->d, mail_committed, r) == 0) {
			r->suspended = 1;
			MHD_suspend_connection(conn);
			return MHD_YES;
		}
		r->answered = 1;
		return reply(conn, r->ctl.status, "application/json", r->ctl.body, NULL, NULL);
	}
	r->answered = 1;
	if (r->kind == REQ_CONTROL)
		return reply_error(conn, MHD_HTTP_CONTENT_TOO_LARGE, NULL,
		                   "The request body is larger than this server accepts.");
	return handle_view(r);
}

/* Frees a request once libmicrohttpd is done with it. */
static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
	struct intake *in = cls;
	struct req *r = *con_cls;
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

	(void)toe;
	/* A kept-alive connection has its idle time, then the header time, for
	 * the next request. */
	if (ci && ci->socket_context)
		((struct client *)ci->socket_context)->deadline =
		    uv_now(in->d->loop) +
		    (uint64_t)((in->d->conf.idle_timeout + in->d->conf.header_timeout) / 1000);
	if (!r)
		return;
	strbuf_free(&r->body);
	control_reply_free(&r->ctl);
	free(r);
	*con_cls = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char buf[512];

	(void)cls;
	vsnprintf(buf, sizeof(buf), fmt, ap);
	buf[strcspn(buf, "\n")] = '\0';
	wu_warn("http: %s", buf);
}

static void on_timer(uv_timer_t *t)
{
	intake_pump(t->data);
}

/* Cuts the connections whose request headers are late: shutdown(2) makes
 * the next read see the end, and libmicrohttpd closes the connection as if
 * the client had.  This is what keeps a slow client (slowloris) from
 * holding a connection slot while staying just busy enough for the idle
 * timeout. */
static void on_sweep(uv_timer_t *t)
{
	struct intake *in = t->data;
	uint64_t now = uv_now(in->d->loop);
	int cut = 0;

	for (struct client *cl = in->clients; cl; cl = cl->next)
		if (cl->deadline && now >= cl->deadline && cl->fd != MHD_INVALID_SOCKET) {
			shutdown(cl->fd, SHUT_RDWR);
			cl->fd = MHD_INVALID_SOCKET; /* once */
			cut++;
		}
	if (cut) {
		in->d->extra.intake_header_timeouts += (uint64_t)cut;
		intake_pump(in);
	}
	if (!in->clients)
		uv_timer_stop(&in->sweep);
}

/* libmicrohttpd's connection notifications: keep the list of clients with
 * their header deadlines, and note a close (see intake_pump). */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
	struct intake *in = cls;
	struct client *cl = *socket_context;

	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *ci =
		    MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
		if (!(cl = calloc(1, sizeof(*cl))))
			return; /* this connection has only the idle timeout */
		cl->fd = ci ? ci->connect_fd : MHD_INVALID_SOCKET;
		cl->deadline = uv_now(in->d->loop) + (uint64_t)(in->d->conf.header_timeout / 1000);
		cl->next = in->clients;
		if (in->clients)
			in->clients->prev = cl;
		in->clients = cl;
		*socket_context = cl;
		if (in->d->conf.header_timeout > 0 && !uv_is_active((uv_handle_t *)&in->sweep))
			uv_timer_start(&in->sweep, on_sweep, 1000, 1000);
		return;
	}
	in->closed_one = 1;
	if (!cl)
		return;
	if (cl->prev)
		cl->prev->next = cl->next;
	else
		in->clients = cl->next;
	if (cl->next)
		cl->next->prev = cl->prev;
	free(cl);
	*socket_context = NULL;
}

/* Lets libmicrohttpd work, then re-arms its timer.
 *
 * libmicrohttpd takes its listening socket out of its epoll set when the
 * connection limit is reached, and puts it back only at the start of a later
 * MHD_run (daemon.c MHD_epoll, 0.9.75).  When the connections close inside a
 * run and none is left with a timeout, MHD_get_timeout has nothing to report
 * and the epoll descriptor has nothing to wake us for: the intake would never
 * accept again.  So a run that closed a connection is followed by another,
 * which re-adds the listening socket if there is room. */
static void intake_pump(struct intake *in)
{
	MHD_UNSIGNED_LONG_LONG ms;

	if (in->closing)
		return;
	in->closed_one = 0;
	MHD_run(in->mhd);
	if (in->closed_one)
		uv_timer_start(&in->timer, on_timer, 0, 0);
	else if (MHD_get_timeout(in->mhd, &ms) == MHD_YES)
		uv_timer_start(&in->timer, on_timer, ms, 0);
	else
		uv_timer_stop(&in->timer);
}

static void on_poll(uv_poll_t *p, int status, int events)
{
	(void)status;
	(void)events;
	intake_pump(p->data);
}

int intake_start(struct intake **inp, struct wu_daemon *d, char *err, size_t errlen)
{
	struct intake *in = calloc(1, sizeof(*in));
	struct sockaddr_storage ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
	const union MHD_DaemonInfo *info;

	*inp = NULL;
	if (!in) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	in->d = d;
	if (ui_open(&in->ui, d, err, errlen) < 0) {
		free(in);
		return -1;
	}
	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, d->conf.listen_host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)d->conf.listen_port);
	} else if (inet_pton(AF_INET6, d->conf.listen_host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)d->conf.listen_port);
		flags |= MHD_USE_IPv6;
	} else {
		snprintf(err, errlen, "[listen] address: '%s' is not an IP address",
		         d->conf.listen_host);
		ui_close(in->ui);
		free(in);
		return -1;
	}
	in->mhd = MHD_start_daemon(
	    flags, 0, NULL, NULL, on_request, in, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, in,
	    MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss, MHD_OPTION_CONNECTION_LIMIT,
	    (unsigned)d->conf.max_connections, MHD_OPTION_CONNECTION_TIMEOUT,
	    (unsigned)(d->conf.idle_timeout / WU_USEC), MHD_OPTION_CONNECTION_MEMORY_LIMIT,
	    (size_t)64 * 1024, MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024U, MHD_OPTION_NOTIFY_COMPLETED,
	    on_completed, in, MHD_OPTION_NOTIFY_CONNECTION, on_connection, in,
	    MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)d->conf.max_connections_per_ip,
#if MHD_VERSION >= 0x01000000
	    /* bare LF, folded lines and the rest of RFC 9112's musts */
	    MHD_OPTION_CLIENT_DISCIPLINE_LVL, 2,
#endif
	    /* 0.9.75's strict mode (MHD_OPTION_STRICT_FOR_CLIENT 1) sends the
	     * headers of its own "Host required" answer twice; framing_check()
	     * refuses a missing Host instead. */
	    MHD_OPTION_END);
	if (!in->mhd) {
		snprintf(err, errlen, "cannot listen on %s:%d (address in use, or not allowed)",
		         d->conf.listen_host, d->conf.listen_port);
		ui_close(in->ui);
		free(in);
		return -1;
	}
	info = MHD_get_daemon_info(in->mhd, MHD_DAEMON_INFO_BIND_PORT);
	in->port = info ? info->port : d->conf.listen_port;
	info = MHD_get_daemon_info(in->mhd, MHD_DAEMON_INFO_EPOLL_FD);
	if (!info || uv_poll_init(d->loop, &in->poll, info->epoll_fd) < 0) {
		snprintf(err, errlen, "cannot watch the HTTP server's descriptor");
		MHD_stop_daemon(in->mhd);
		ui_close(in->ui);
		free(in);
		return -1;
	}
	uv_timer_init(d->loop, &in->timer);
	uv_timer_init(d->loop, &in->sweep);
	in->timer.data = in;
	in->sweep.data = in;
	in->poll.data = in;
	uv_poll_start(&in->poll, UV_READABLE, on_poll);
	*inp = in;
	intake_pump(in);
	return 0;
}

int intake_port(const struct intake *in)
{
	return in->port;
}

void intake_kick(struct intake *in)
{
	if (!in->closing)
		uv_timer_start(&in->timer, on_timer, 0, 0);
}

static void on_closed(uv_handle_t *h)
{
	struct intake *in = h->data;

	if (++in->nclosed == 3) {
		ui_close(in->ui);
		free(in);
	}
}

void intake_stop(struct intake *in)
{
	if (!in || in->closing)
		return;
	in->closing = 1;
	uv_poll_stop(&in->poll);
	uv_timer_stop(&in->timer);
	uv_timer_stop(&in->sweep);
	/* Connections resumed by the last commit get their answers queued and,
	 * as far as their sockets take them, sent before the server stops. */
	MHD_socket lfd = MHD_quiesce_daemon(in->mhd);
	if (lfd != MHD_INVALID_SOCKET)
		close(lfd); /* quiescing hands the listening socket to us */
	MHD_run(in->mhd);
	MHD_run(in->mhd);
	MHD_stop_daemon(in->mhd);
	uv_close((uv_handle_t *)&in->poll, on_closed);
	uv_close((uv_handle_t *)&in->timer, on_closed);
	uv_close((uv_handle_t *)&in->sweep, on_closed);
}
