/*
 * NAME
 *	control.c -- the operator's HTTP endpoints: the suppression list,
 *	pausing and resuming a route by hand, and reloading the configuration.
 *
 * SYNOPSIS
 *	if (control_match(url)) ...
 *	control_handle(d, conn, method, url, body, len, &reply);
 *
 * DESCRIPTION
 *	The intake routes these paths here after checking the bearer token and
 *	collecting the body; see control.h for the paths.  Adding suppressions
 *	takes up to CONTROL_MAX_EMAILS addresses per request: invalid ones are
 *	skipped and reported with their index in the request, so a client
 *	sending a file in chunks can name the line of each.  A pause or resume
 *	records who asked ("operator alice") in the engine's event, which the
 *	daemon logs, stores and pushes as an alert.  A reload runs after the
 *	turn's commit (reload.c) and is answered with its outcome.
 *
 * DIAGNOSTICS
 *	400 with SendGrid's error body for bad JSON, an unknown reason or
 *	route; 404 for an address not on the list; 405 for a wrong method;
 *	500 when the store fails (the turn is rolled back).
 */
#include "control.h"

#include <cJSON.h>

#include <ctype.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "log.h"
#include "reload.h"
#include "sender/json_strict.h"
#include "sender/v3mail.h"
#include "suppress.h"

#define CONTROL_MAX_EMAILS 10000
#define LIST_DEFAULT       100
#define LIST_MAX           10000
#define SUPP_PATH          "/v1/suppressions"

int control_match(const char *url)
{
	size_t n = strlen(SUPP_PATH);

	return strcmp(url, "/v1/pause") == 0 || strcmp(url, "/v1/resume") == 0 ||
	       strcmp(url, "/v1/reload") == 0 ||
	       (strncmp(url, SUPP_PATH, n) == 0 && (url[n] == '\0' || url[n] == '/'));
}

/* A reload's link to the answer it fills: whichever of the two ends
 * first cuts it, so neither writes into the other once it is gone. */
struct control_wait {
	struct control_reply *out;
};

void control_reply_free(struct control_reply *r)
{
	free(r->body);
	r->body = NULL;
	if (r->wait) {
		r->wait->out = NULL;
		r->wait = NULL;
	}
}

/* An error answer in SendGrid's format. */
static void refuse(struct control_reply *out, unsigned status, const char *field, const char *fmt,
                   ...) __attribute__((format(printf, 4, 5)));
static void refuse(struct control_reply *out, unsigned status, const char *field, const char *fmt,
                   ...)
{
	struct v3mail_errors errs = {0};
	char msg[300];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	v3mail_error(&errs, field ? field : "", "%s", msg);
	out->status = status;
	out->body = v3mail_errors_json(&errs);
	out->after_commit = 0;
}

/* A JSON answer; takes o. */
static void answer(struct control_reply *out, unsigned status, cJSON *o, int after_commit)
{
	out->body = o ? cJSON_PrintUnformatted(o) : NULL;
	cJSON_Delete(o);
	if (!out->body) {
		refuse(out, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "out of memory");
		return;
	}
	out->status = status;
	out->after_commit = after_commit;
}

/* The body as a JSON object, or NULL with a 400 answered. */
static cJSON *parse(const char *body, size_t len, struct control_reply *out)
{
	struct json_strict_error err;
	cJSON *o;

	if (json_strict_parse(body, len, &o, &err) < 0) {
		refuse(out, MHD_HTTP_BAD_REQUEST, err.field, "%s", err.message);
		return NULL;
	}
	if (!cJSON_IsObject(o)) {
		cJSON_Delete(o);
		refuse(out, MHD_HTTP_BAD_REQUEST, NULL, "The request body is not a JSON object.");
		return NULL;
	}
	return o;
}

/* ---- suppressions -------------------------------------------------------- */

/* Appends one entry of a listing. */
static void list_row(void *arg, const struct store_suppression *e)
{
	cJSON *o = cJSON_CreateObject();

	if (!o)
		return;
	cJSON_AddStringToObject(o, "email", e->email ? e->email : "");
	cJSON_AddStringToObject(o, "reason", e->reason ? e->reason : "");
	/* Seconds, as SendGrid's suppression API gives "created". */
	cJSON_AddNumberToObject(o, "created", (double)(e->created / WU_USEC));
	if (e->detail)
		cJSON_AddStringToObject(o, "detail", e->detail);
	else
		cJSON_AddNullToObject(o, "detail");
	cJSON_AddItemToArray(arg, o);
}

/* GET /v1/suppressions: one page in address order. */
static void supp_list(struct wu_daemon *d, struct MHD_Connection *c, struct control_reply *out)
{
	const char *reason = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "reason");
	const char *limit_s = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "limit");
	const char *after = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "after");
	cJSON *o = cJSON_CreateObject(), *a;
	long limit = LIST_DEFAULT;
	int64_t total = 0;
	int n;

	if (reason && !*reason)
		reason = NULL;
	if (reason && suppress_reason_parse(reason) < 0) {
		cJSON_Delete(o);
		refuse(
		    out, MHD_HTTP_BAD_REQUEST, "reason",
		    "unknown reason; expected bounce, spamreport, unsubscribe, group_unsubscribe, "
		    "manual or import");
		return;
	}
	if (limit_s) {
		char *end;
		limit = strtol(limit_s, &end, 10);
		if (*end || limit < 1 || limit > LIST_MAX) {
			cJSON_Delete(o);
			refuse(out, MHD_HTTP_BAD_REQUEST, "limit", "expected a number from 1 to %d",
			       LIST_MAX);
			return;
		}
	}
	if (!o || !(a = cJSON_AddArrayToObject(o, "suppressions"))) {
		cJSON_Delete(o);
		refuse(out, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "out of memory");
		return;
	}
	n = store_suppress_list(d->store, reason, after, (int)limit, list_row, a);
	if (n < 0 || store_suppress_count(d->store, reason, &total) < 0) {
		wu_error("control: %s", store_errmsg(d->store));
		cJSON_Delete(o);
		refuse(out, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "the store cannot be read");
		return;
	}
	cJSON_AddNumberToObject(o, "count", n);
	cJSON_AddNumberToObject(o, "total", (double)total);
	/* A full page may have more after it: the cursor for the next one. */
	if (n == limit && cJSON_GetArraySize(a) > 0) {
		const cJSON *last = cJSON_GetObjectItemCaseSensitive(
		    cJSON_GetArrayItem(a, cJSON_GetArraySize(a) - 1), "email");
		cJSON_AddStringToObject(o, "next", last->valuestring);
	} else {
		cJSON_AddNullToObject(o, "next");
	}
	answer(out, MHD_HTTP_OK, o, 0);
}

/* One entry of "emails": "a@b.c", or {"email", "reason", "detail"} (an
 * import carries each address's own reason and bounce text).  Returns the
 * address, or NULL with why. */
static const char *entry(const cJSON *e, const char **reason, const char **detail, const char **why)
{
	const cJSON *v;

	if (cJSON_IsString(e))
		return e->valuestring;
	if (!cJSON_IsObject(e))
		return *why = "expected an address or an object with \"email\"", NULL;
	v = cJSON_GetObjectItemCaseSensitive(e, "reason");
	if (cJSON_IsString(v)) {
		if (suppress_reason_parse(v->valuestring) < 0)
			return *why = "unknown reason", NULL;
		*reason = v->valuestring;
	}
	v = cJSON_GetObjectItemCaseSensitive(e, "detail");
	if (cJSON_IsString(v))
		*detail = v->valuestring;
	v = cJSON_GetObjectItemCaseSensitive(e, "email");
	if (!cJSON_IsString(v))
		return *why = "no \"email\" string", NULL;
	return v->valuestring;
}

/* POST /v1/suppressions: adds the valid addresses, reports the others. */
static void supp_add(struct wu_daemon *d, const char *body, size_t len, struct control_reply *out)
{
	cJSON *in = parse(body, len, out), *emails, *e, *res, *invalid;
	const cJSON *reason_j, *detail_j;
	const char *reason = "manual", *detail = NULL;
	int i = 0, added = 0, existing = 0;
	wu_time_t now = daemon_now(d);

	if (!in)
		return;
	emails = cJSON_GetObjectItemCaseSensitive(in, "emails");
	reason_j = cJSON_GetObjectItemCaseSensitive(in, "reason");
	detail_j = cJSON_GetObjectItemCaseSensitive(in, "detail");
	if (!cJSON_IsArray(emails)) {
		refuse(out, MHD_HTTP_BAD_REQUEST, "emails", "expected an array of addresses");
		goto out;
	}
	if (cJSON_GetArraySize(emails) > CONTROL_MAX_EMAILS) {
		refuse(out, MHD_HTTP_BAD_REQUEST, "emails", "at most %d addresses per request",
		       CONTROL_MAX_EMAILS);
		goto out;
	}
	if (reason_j && !cJSON_IsNull(reason_j)) {
		if (!cJSON_IsString(reason_j) || suppress_reason_parse(reason_j->valuestring) < 0) {
			refuse(out, MHD_HTTP_BAD_REQUEST, "reason",
			       "unknown reason; expected bounce, spamreport, unsubscribe, "
			       "group_unsubscribe, manual or import");
			goto out;
		}
		reason = reason_j->valuestring;
	}
	if (cJSON_IsString(detail_j))
		detail = detail_j->valuestring;
	res = cJSON_CreateObject();
	invalid = res ? cJSON_AddArrayToObject(res, "invalid") : NULL;
	if (!invalid || daemon_txn(d) < 0) {
		cJSON_Delete(res);
		refuse(out, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "out of memory or store failure");
		goto out;
	}
	/* All of them join the turn's one transaction: one fsync per request. */
	cJSON_ArrayForEach(e, emails)
	{
		const char *r = reason, *det = detail, *why = NULL;
		const char *addr = entry(e, &r, &det, &why);
		int rc;

		if (addr && suppress_address_ok(addr, &why)) {
			if ((rc = store_suppress_add(d->store, addr, r, det, now)) < 0) {
				wu_error("control: cannot add suppressions: %s",
				         store_errmsg(d->store));
				daemon_txn_fail(d, "control");
				cJSON_Delete(res);
				refuse(out, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL,
				       "The suppressions could not be stored; try again.");
				goto out;
			}
			added += rc;
			existing += !rc;
		} else {
			cJSON *bad = cJSON_CreateObject();

			cJSON_AddNumberToObject(bad, "index", i);
			if (addr)
				cJSON_AddStringToObject(bad, "email", addr);
			cJSON_AddStringToObject(bad, "message", why);
			cJSON_AddItemToArray(invalid, bad);
		}
		i++;
	}
	if (added > 0)
		wu_info("suppress: %d address%s added through the API", added,
		        added == 1 ? "" : "es");
	cJSON_AddNumberToObject(res, "added", added);
	cJSON_AddNumberToObject(res, "existing", existing);
	answer(out, MHD_HTTP_OK, res, 1);
out:
	cJSON_Delete(in);
}

/* DELETE /v1/suppressions/ADDRESS (libmicrohttpd has decoded %40). */
static void supp_remove(struct wu_daemon *d, const char *addr, struct control_reply *out)
{
	cJSON *o;
	int rc;

	if (!*addr || strlen(addr) > 254) {
		refuse(out, MHD_HTTP_BAD_REQUEST, "email", "expected /v1/suppressions/ADDRESS");
		return;
	}
	if (daemon_txn(d) < 0 || (rc = store_suppress_remove(d->store, addr)) < 0) {
		wu_error("control: cannot remove a suppression: %s", store_errmsg(d->store));
		daemon_txn_fail(d, "control");
		refuse(out, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "the store failed; try again");
		return;
	}
	if (rc == 0) {
		refuse(out, MHD_HTTP_NOT_FOUND, "email", "%s is not on the suppression list", addr);
		return;
	}
	wu_info("suppress: %s removed by hand", addr);
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "email", addr);
	cJSON_AddNumberToObject(o, "removed", 1);
	answer(out, MHD_HTTP_OK, o, 1);
}

/* ---- pause and resume ---------------------------------------------------- */

/* Copies a name people gave, keeping it printable and short for logs. */
static void clean_name(const char *in, char *out, size_t len)
{
	size_t j = 0;

	for (; in && *in && j + 1 < len; in++)
		if (isalnum((unsigned char)*in) || strchr("@._-+ ", *in))
			out[j++] = *in;
	out[j] = '\0';
}

/* POST /v1/pause and /v1/resume. */
static void pause_resume(struct wu_daemon *d, int resume, const char *body, size_t len,
                         struct control_reply *out)
{
	cJSON *in = len ? parse(body, len, out) : cJSON_CreateObject(), *o;
	const cJSON *route_j, *who_j;
	enum wu_route route = WU_ROUTE_NEW;
	char name[64], who[96];

	if (!in)
		return;
	route_j = cJSON_GetObjectItemCaseSensitive(in, "route");
	who_j = cJSON_GetObjectItemCaseSensitive(in, "who");
	if (route_j && !cJSON_IsNull(route_j)) {
		if (cJSON_IsString(route_j) && strcmp(route_j->valuestring, "old") == 0)
			route = WU_ROUTE_OLD;
		else if (!cJSON_IsString(route_j) || strcmp(route_j->valuestring, "new") != 0) {
			cJSON_Delete(in);
			refuse(out, MHD_HTTP_BAD_REQUEST, "route", "expected \"new\" or \"old\"");
			return;
		}
	}
	clean_name(cJSON_IsString(who_j) ? who_j->valuestring : NULL, name, sizeof(name));
	snprintf(who, sizeof(who), "operator %s", name[0] ? name : "(unnamed)");
	cJSON_Delete(in);
	if (daemon_txn(d) < 0) {
		refuse(out, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "the store failed; try again");
		return;
	}
	if (resume)
		wu_engine_resume(d->engine, daemon_now(d), route, who);
	else
		wu_engine_pause(d->engine, daemon_now(d), route, who);
	/* Logged, stored and alerted in this turn, before the answer. */
	daemon_drain_events(d);
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "route", wu_route_name(route));
	cJSON_AddBoolToObject(o, "paused", wu_engine_paused(d->engine, route));
	cJSON_AddStringToObject(o, "by", who);
	answer(out, MHD_HTTP_OK, o, 1);
}

/* ---- reload --------------------------------------------------------------- */

/* The reload ran (after the commit, before the answer goes out). */
static void reload_done(void *arg, int ok, const char *message)
{
	struct control_wait *w = arg;
	struct control_reply *out = w->out;
	cJSON *o, *errs;
	const char *p = message, *nl;

	free(w);
	if (!out)
		return; /* the request is gone */
	out->wait = NULL;
	control_reply_free(out);
	if (!(o = cJSON_CreateObject())) {
		out->status = MHD_HTTP_INTERNAL_SERVER_ERROR;
		return;
	}
	cJSON_AddBoolToObject(o, "ok", ok);
	cJSON_AddStringToObject(o, "message", message);
	/* A refusal also in SendGrid's error form, one entry per problem. */
	if (!ok && (errs = cJSON_AddArrayToObject(o, "errors"))) {
		for (; *p; p = *nl ? nl + 1 : nl) {
			cJSON *e = cJSON_CreateObject();
			char *line;

			nl = p + strcspn(p, "\n");
			if (!e || !(line = strndup(p, (size_t)(nl - p)))) {
				cJSON_Delete(e);
				break;
			}
			cJSON_AddStringToObject(e, "message", line);
			cJSON_AddNullToObject(e, "field");
			cJSON_AddItemToArray(errs, e);
			free(line);
		}
	}
	out->body = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	out->status = !out->body ? MHD_HTTP_INTERNAL_SERVER_ERROR
	              : ok       ? MHD_HTTP_OK
	                         : MHD_HTTP_UNPROCESSABLE_CONTENT;
}

/* POST /v1/reload: answered once the reload ran. */
static void reload(struct wu_daemon *d, struct control_reply *out)
{
	struct control_wait *w = malloc(sizeof(*w));

	if (!w || reload_soon(d, reload_done, w) < 0) {
		free(w);
		refuse(out, MHD_HTTP_SERVICE_UNAVAILABLE, NULL,
		       "The reload cannot start now (stopping, or the store failed); try again.");
		return;
	}
	w->out = out;
	out->wait = w;
	/* reload_done fills the answer; until then a failed commit answers 500. */
	out->status = MHD_HTTP_INTERNAL_SERVER_ERROR;
	out->after_commit = 1;
}

void control_handle(struct wu_daemon *d, struct MHD_Connection *c, const char *method,
                    const char *url, const char *body, size_t len, struct control_reply *out)
{
	size_t n = strlen(SUPP_PATH);
	int is_get = strcmp(method, "GET") == 0, is_post = strcmp(method, "POST") == 0;

	memset(out, 0, sizeof(*out));
	if (strcmp(url, "/v1/reload") == 0) {
		if (is_post)
			reload(d, out);
		else
			refuse(out, MHD_HTTP_METHOD_NOT_ALLOWED, NULL, "Use POST for /v1/reload.");
	} else if (strcmp(url, "/v1/pause") == 0 || strcmp(url, "/v1/resume") == 0) {
		if (is_post)
			pause_resume(d, url[4] == 'r', body, len, out);
		else
			refuse(out, MHD_HTTP_METHOD_NOT_ALLOWED, NULL, "Use POST for %s.", url);
	} else if (url[n] == '/') {
		if (strcmp(method, "DELETE") == 0)
			supp_remove(d, url + n + 1, out);
		else
			refuse(out, MHD_HTTP_METHOD_NOT_ALLOWED, NULL,
			       "Use DELETE for /v1/suppressions/ADDRESS.");
	} else if (is_get) {
		supp_list(d, c, out);
	} else if (is_post) {
		supp_add(d, body, len, out);
	} else {
		refuse(out, MHD_HTTP_METHOD_NOT_ALLOWED, NULL,
		       "Use GET or POST for /v1/suppressions.");
	}
}
