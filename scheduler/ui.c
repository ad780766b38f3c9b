/*
 * NAME
 *	ui.c -- the status page: HTML and SVG rendered by the daemon.
 *
 * SYNOPSIS
 *	ui_open(&ui, daemon, err, errlen);
 *	if (ui_match(url)) return ui_handle(ui, connection, url);
 *	if (!ui_may_view(ui, connection)) ... 401
 *
 * DESCRIPTION
 *	The page is rendered from the text of GET /v1/status (status_json),
 *	parsed back with cJSON: the page and the JSON can never show two
 *	different figures, and ui.js fills the same elements from the same
 *	fields when it polls.  Every string from the daemon's state (ISP and
 *	rule names, route URLs, event texts) is HTML-escaped; ui.js sets
 *	only textContent.  The charts are svg.c's, inline in the page and at
 *	/ui/plan.svg and /ui/hours.svg for the refresh.
 *
 *	Basic auth against [status] viewers_file costs a crypt(3) hash per
 *	request, and a browser sends its credentials with every poll; the
 *	SHA-256 of the last few Authorization values that passed is kept for
 *	a few minutes so a poll costs a digest, not a yescrypt.
 *
 * DIAGNOSTICS
 *	ui_open fails on a viewers file that cannot be read or holds a clear
 *	password, naming the file and line.  A page that cannot be rendered
 *	(memory) is a 500.
 */
#include "ui.h"

#include <cJSON.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cidr.h"
#include "config.h"
#include "core/engine.h"
#include "daemon.h"
#include "dispatcher.h"
#include "smtpd_auth.h"
#include "status.h"
#include "store.h"
#include "svg.h"
#include "ui_assets.h" /* generated from ui/ui.js and ui/ui.css */

#define CSP           "default-src 'self'"
#define REALM         "warmupd status"
#define CACHE_N       4
#define CACHE_TTL     ((wu_time_t)300 * WU_USEC)
#define PLAN_DAYS_MAX 400 /* days the plan chart shows at most */

struct ui {
	struct wu_daemon *d;
	struct smtpd_users *viewers; /* NULL: no viewers file */
	struct {
		unsigned char digest[32];
		wu_time_t until;
	} cache[CACHE_N];
	int next;
};

int ui_open(struct ui **up, struct wu_daemon *d, char *err, size_t errlen)
{
	struct ui *u = calloc(1, sizeof(*u));
	char why[1200];

	*up = NULL;
	if (!u) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	u->d = d;
	if (d->conf.status.viewers_file[0] &&
	    smtpd_users_load(&u->viewers, d->conf.status.viewers_file, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "[status] viewers_file: %s", why);
		free(u);
		return -1;
	}
	*up = u;
	return 0;
}

void ui_close(struct ui *u)
{
	if (!u)
		return;
	smtpd_users_free(u->viewers);
	OPENSSL_cleanse(u->cache, sizeof(u->cache));
	free(u);
}

int ui_match(const char *url)
{
	return strcmp(url, "/") == 0 || strcmp(url, "/ui") == 0 || strncmp(url, "/ui/", 4) == 0;
}

/* SHA-256 of s into out. */
static void digest(const char *s, unsigned char out[32])
{
	unsigned int n = 32;

	if (!EVP_Digest(s, strlen(s), out, &n, EVP_sha256(), NULL))
		memset(out, 0, 32);
}

/* 1 when given equals the intake token; the time does not depend on where
 * they differ or on their lengths (both are hashed first). */
static int token_ok(const char *token, const char *given)
{
	unsigned char a[32], b[32];

	if (!token || !token[0] || !given)
		return 0;
	digest(token, a);
	digest(given, b);
	return CRYPTO_memcmp(a, b, 32) == 0;
}

/* HTTP basic auth: a viewers file line, or any name with the token. */
static int basic_ok(struct ui *u, struct MHD_Connection *c, const char *header)
{
	unsigned char h[32];
	wu_time_t now = daemon_now(u->d);
	char *pass = NULL, *user;
	int ok;

	digest(header, h);
	for (int i = 0; i < CACHE_N; i++)
		if (u->cache[i].until > now && CRYPTO_memcmp(u->cache[i].digest, h, 32) == 0)
			return 1;
	if (!(user = MHD_basic_auth_get_username_password(c, &pass)))
		return 0;
	ok = pass && ((u->viewers && smtpd_users_check(u->viewers, user, pass)) ||
	              token_ok(u->d->conf.token, pass));
	if (pass) {
		OPENSSL_cleanse(pass, strlen(pass));
		MHD_free(pass);
	}
	MHD_free(user);
	if (ok) {
		memcpy(u->cache[u->next].digest, h, 32);
		u->cache[u->next].until = now + CACHE_TTL;
		u->next = (u->next + 1) % CACHE_N;
	}
	return ok;
}

int ui_may_view(struct ui *u, struct MHD_Connection *c)
{
	const struct wu_conf *conf = &u->d->conf;
	const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
	const union MHD_ConnectionInfo *ci;

	if (conf->auth_none)
		return 1;
	if (h) {
		if (strncasecmp(h, "Bearer ", 7) == 0)
			return token_ok(conf->token, h + 7);
		if (strncasecmp(h, "Basic ", 6) == 0)
			return basic_ok(u, c, h);
		return 0;
	}
	ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	return ci && ci->client_addr &&
	       wu_cidr_match(conf->status.open_to, conf->status.nopen_to, ci->client_addr);
}

/* ---- HTML ---------------------------------------------------------------- */

/* A member of o as text the way ui.js writes it: numbers with thousands
 * separators, null as `none_text`, strings as they are. */
static void val(FILE *f, const cJSON *o, const char *key, const char *none_text)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	char raw[32], out[48];
	int n, j = 0, lead, neg;

	if (cJSON_IsString(v)) {
		wu_svg_escape(f, v->valuestring);
		return;
	}
	if (cJSON_IsBool(v)) {
		fputs(cJSON_IsTrue(v) ? "yes" : "no", f);
		return;
	}
	if (!cJSON_IsNumber(v)) {
		wu_svg_escape(f, none_text);
		return;
	}
	snprintf(raw, sizeof(raw), "%.0f", v->valuedouble);
	neg = raw[0] == '-';
	n = (int)strlen(raw + neg);
	lead = n % 3 ? n % 3 : 3;
	if (neg)
		out[j++] = '-';
	for (int i = 0; i < n; i++) {
		if (i && i >= lead && (i - lead) % 3 == 0)
			out[j++] = ',';
		out[j++] = raw[neg + i];
	}
	out[j] = '\0';
	fputs(out, f);
}

/* A rate as a percentage with two decimals, as ui.js writes it. */
static void pct(FILE *f, const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	fprintf(f, "%.2f%%", cJSON_IsNumber(v) ? 100 * v->valuedouble : 0.0);
}

/* <span id="ID">value</span> */
static void span(FILE *f, const char *id, const cJSON *o, const char *key, const char *none)
{
	fprintf(f, "<span id=\"%s\">", id);
	val(f, o, key, none);
	fputs("</span>", f);
}

/* A card of the top row: a big figure and its name. */
static void card(FILE *f, const char *id, const cJSON *s, const char *name, const char *none)
{
	fprintf(f, "<div class=\"card\"><div class=\"v\" id=\"%s\">", id);
	val(f, s, id, none);
	fprintf(f, "</div><div class=\"k\">%s</div></div>\n", name);
}

static const char *const route_cols[] = {"type",     "url",       "paused",   "sent",
                                         "accepted", "tempfail",  "permfail", "delivered",
                                         "bounce",   "complaint", "inflight"};

/* The routes table's body. */
static void routes_rows(FILE *f, const cJSON *routes)
{
	const cJSON *r;

	cJSON_ArrayForEach(r, routes)
	{
		fputs("<tr><td>", f);
		wu_svg_escape(f, r->string);
		fputs("</td>", f);
		for (size_t k = 0; k < sizeof(route_cols) / sizeof(route_cols[0]); k++) {
			fputs(k < 2 ? "<td class=\"t\">" : "<td>", f);
			val(f, r, route_cols[k], "");
			fputs("</td>", f);
		}
		fputs("</tr>\n", f);
	}
}

/* The ISPs table's columns: a member of the ISP's "new" or "old" object
 * (or of the ISP itself), and what stands for null. */
static const struct {
	const char *route, *key, *none;
} isp_cols[] = {
    {"new", "sent", ""},       {"old", "sent", ""},       {"new", "accepted", ""},
    {"new", "tempfail", ""},   {"new", "permfail", ""},   {"new", "share_limit", "none"},
    {NULL, "queued", "?"},
};

/* The ISPs table's body. */
static void isps_rows(FILE *f, const cJSON *isps)
{
	const cJSON *i;

	cJSON_ArrayForEach(i, isps)
	{
		fputs("<tr><td>", f);
		wu_svg_escape(f, i->string);
		fputs("</td>", f);
		for (size_t k = 0; k < sizeof(isp_cols) / sizeof(isp_cols[0]); k++) {
			const cJSON *o = isp_cols[k].route
			                     ? cJSON_GetObjectItemCaseSensitive(i, isp_cols[k].route)
			                     : i;
			fputs("<td>", f);
			val(f, o, isp_cols[k].key, isp_cols[k].none);
			fputs("</td>", f);
		}
		fputs("</tr>\n", f);
	}
}

/* The recent events' body: time, kind, route, text. */
static void events_rows(FILE *f, const cJSON *events)
{
	const cJSON *e;

	cJSON_ArrayForEach(e, events)
	{
		fputs("<tr><td>", f);
		val(f, e, "time", "");
		fputs("</td><td class=\"t\">", f);
		val(f, e, "kind", "");
		fputs("</td><td class=\"t\">", f);
		val(f, e, "route", "");
		fputs("</td><td class=\"t\">", f);
		val(f, e, "text", "");
		fputs("</td></tr>\n", f);
	}
}

/* ---- charts -------------------------------------------------------------- */

/* svg.c's day: -1 for no cap. */
static int64_t cap_of(int64_t cap)
{
	return cap == WU_UNLIMITED ? -1 : cap;
}

/* store_counters callback: what was handed to each route that day. */
static void routed_row(void *arg, int route, int isp, int result, int64_t n)
{
	struct wu_svg_day *d = arg;

	(void)isp;
	if (result != WU_COUNT_ROUTED)
		return;
	if (route == WU_ROUTE_NEW)
		d->new_route += n;
	else if (route == WU_ROUTE_OLD)
		d->old_route += n;
}

/* The plan (the schedule's cap per calendar day) against what each route
 * carried per day so far: the store's counters for past days, the engine's
 * for today. */
static char *chart_plan(struct ui *u)
{
	const struct wu_core_conf *core = wu_engine_conf(u->d->engine);
	const struct wu_day_stats *t = wu_engine_today(u->d->engine);
	int today = t->date - core->calendar.start + 1;
	int n = core->schedule.ndays > today ? core->schedule.ndays : today;
	struct wu_svg_chart c = {0};
	struct wu_svg_day *v;
	char start[16], sub[160], xlabel[64];
	char *out;

	if (n > PLAN_DAYS_MAX)
		n = PLAN_DAYS_MAX;
	if (n < 1)
		n = 1;
	if (!(v = calloc((size_t)n, sizeof(*v))))
		return NULL;
	for (int i = 0; i < n; i++) {
		int date = core->calendar.start + i;

		v[i].cap = cap_of(wu_schedule_get(&core->schedule, i + 1).cap);
		if (i + 1 < today && u->d->store)
			store_counters(u->d->store, date, routed_row, &v[i]);
		if (i + 1 == today) {
			for (int k = 0; k < WU_ISP_MAX; k++) {
				v[i].new_route += t->sent[WU_ROUTE_NEW][k];
				v[i].old_route += t->sent[WU_ROUTE_OLD][k];
			}
			v[i].gate = (int)t->gate;
			v[i].held = t->held;
		}
	}
	wu_date_format(core->calendar.start, start, sizeof(start));
	snprintf(sub, sizeof(sub),
	         "red: the schedule's cap; bars: messages per day by route; today is day %d",
	         today);
	snprintf(xlabel, sizeof(xlabel), "day (1 = %s)", start);
	c.title = "The plan and what was sent";
	c.subtitle = sub;
	c.xlabel = xlabel;
	c.ndays = n;
	c.days = v;
	c.fragment = 1;
	out = wu_svg_string(&c, NULL);
	free(v);
	return out;
}

/* Today's sends per local hour by route, with the hourly cap if any. */
static char *chart_hours(struct ui *u)
{
	const struct wu_core_conf *core = wu_engine_conf(u->d->engine);
	const struct wu_day_stats *t = wu_engine_today(u->d->engine);
	int64_t h[WU_ROUTE_COUNT][STATUS_HOURS_MAX];
	struct wu_svg_day v[STATUS_HOURS_MAX];
	struct wu_svg_chart c = {0};
	char sub[160], date[16], xlabel[96];
	int nh;

	status_hours(u->d->engine, u->d->store, h, &nh);
	memset(v, 0, sizeof(v));
	for (int i = 0; i < nh; i++) {
		v[i].new_route = h[WU_ROUTE_NEW][i];
		v[i].old_route = h[WU_ROUTE_OLD][i];
		v[i].cap = t->hourly_cap > 0 ? cap_of(t->hourly_cap) : -1;
	}
	wu_date_format(t->date, date, sizeof(date));
	snprintf(sub, sizeof(sub), "%s: messages each route accepted, by the hour of the answer",
	         date);
	snprintf(xlabel, sizeof(xlabel), "hour (%s)", core->calendar.tz);
	c.title = "Today, hour by hour";
	c.subtitle = sub;
	c.xlabel = xlabel;
	c.ylabel = "messages per hour";
	c.from_zero = 1;
	c.ndays = nh;
	c.days = v;
	c.scale = WU_SVG_LINEAR;
	c.fragment = 1;
	return wu_svg_string(&c, NULL);
}

/* The whole page, from the status JSON. */
static char *page(struct ui *u)
{
	struct wu_daemon *d = u->d;
	char *text = status_json(d->engine, d->store, &d->conf, &d->extra, daemon_now(d));
	cJSON *s = text ? cJSON_Parse(text) : NULL;
	const cJSON *g, *q;
	char *plan = NULL, *hours = NULL, *buf = NULL;
	size_t len = 0;
	FILE *f;

	free(text);
	if (!s)
		return NULL;
	plan = chart_plan(u);
	hours = chart_hours(u);
	if (!(f = open_memstream(&buf, &len))) {
		cJSON_Delete(s);
		free(plan);
		free(hours);
		return NULL;
	}
	g = cJSON_GetObjectItemCaseSensitive(s, "gate");
	q = cJSON_GetObjectItemCaseSensitive(s, "queue");
	fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
	      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
	      "<title>warmupd status</title>\n"
	      "<link rel=\"stylesheet\" href=\"/ui/ui.css\">\n"
	      "<script src=\"/ui/ui.js\" defer></script>\n</head>\n<body>\n"
	      "<h1>warmupd: day ",
	      f);
	span(f, "day", s, "day", "");
	fputs(" of the warmup, ", f);
	span(f, "date", s, "date", "");
	fputs("</h1>\n<p class=\"sub\">as of ", f);
	span(f, "time", s, "time", "");
	fputs(" <span id=\"error\"></span></p>\n<div class=\"cards\">\n", f);
	card(f, "cap", s, "today's cap", "unlimited");
	card(f, "used", s, "used", "");
	card(f, "remaining", s, "remaining", "unlimited");
	card(f, "hourly_cap", s, "hourly cap", "none");
	fputs("</div>\n<h2>Health gate</h2>\n<p>state <b id=\"gate-state\" class=\"", f);
	val(f, g, "state", "");
	fputs("\">", f);
	val(f, g, "state", "");
	fputs("</b>, worst today ", f);
	span(f, "gate-worst", g, "worst_today", "");
	fputs("; reason: <span id=\"gate-reason\">", f);
	{
		const cJSON *r = cJSON_GetObjectItemCaseSensitive(g, "reason");
		wu_svg_escape(f, cJSON_IsString(r) && r->valuestring[0] ? r->valuestring : "none");
	}
	fputs("</span></p>\n<table><tr><th>rate</th><th>today</th><th>warn at</th><th>halt at</th>"
	      "</tr>\n<tr><td>bounces</td><td id=\"bounce-rate\">",
	      f);
	pct(f, g, "bounce_rate");
	fputs("</td><td id=\"bounce-warn\">", f);
	pct(f, g, "bounce_warn");
	fputs("</td><td id=\"bounce-halt\">", f);
	pct(f, g, "bounce_halt");
	fputs("</td></tr>\n<tr><td>complaints</td><td id=\"complaint-rate\">", f);
	pct(f, g, "complaint_rate");
	fputs("</td><td id=\"complaint-warn\">", f);
	pct(f, g, "complaint_warn");
	fputs("</td><td id=\"complaint-halt\">", f);
	pct(f, g, "complaint_halt");
	fputs("</td></tr>\n</table>\n<h2>Routes today</h2>\n<table><thead><tr><th>route</th>", f);
	for (size_t k = 0; k < sizeof(route_cols) / sizeof(route_cols[0]); k++)
		fprintf(f, "<th>%s</th>", route_cols[k]);
	fputs("</tr></thead>\n<tbody id=\"routes\">\n", f);
	routes_rows(f, cJSON_GetObjectItemCaseSensitive(s, "routes"));
	fputs("</tbody></table>\n<h2>ISPs today</h2>\n<table><thead><tr><th>ISP</th>"
	      "<th>new sent</th><th>old sent</th><th>new accepted</th><th>new tempfail</th>"
	      "<th>new permfail</th><th>new share limit</th><th>queued</th></tr></thead>\n"
	      "<tbody id=\"isps\">\n",
	      f);
	isps_rows(f, cJSON_GetObjectItemCaseSensitive(s, "isps"));
	fputs("</tbody></table>\n<p>Queue: ", f);
	span(f, "q-queued", q, "queued", "?");
	fputs(" queued, ", f);
	span(f, "q-inflight", q, "inflight", "?");
	fputs(" in flight, ", f);
	span(f, "q-sent", q, "sent", "?");
	fputs(" sent, ", f);
	span(f, "q-failed", q, "failed", "?");
	fputs(" failed (kept until pruned).</p>\n<h2>The plan</h2>\n<div id=\"plan\">", f);
	fputs(plan ? plan : "chart not available", f);
	fputs("</div>\n<h2>Today by the hour</h2>\n<div id=\"hours\">", f);
	fputs(hours ? hours : "chart not available", f);
	fputs("</div>\n<h2>Recent alerts and events</h2>\n<table><thead><tr><th>time</th>"
	      "<th>kind</th><th>route</th><th>text</th></tr></thead>\n<tbody id=\"events\">\n",
	      f);
	events_rows(f, cJSON_GetObjectItemCaseSensitive(s, "recent_events"));
	fputs("</tbody></table>\n<footer>Refreshed from <a href=\"/v1/status\">/v1/status</a> "
	      "every 5 seconds; last: <span id=\"updated\">not yet</span>.</footer>\n"
	      "</body></html>\n",
	      f);
	cJSON_Delete(s);
	free(plan);
	free(hours);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

/* ---- answers ------------------------------------------------------------- */

/* Queues body (taken over, freed by libmicrohttpd) with the page's headers. */
static enum MHD_Result send_owned(struct MHD_Connection *c, unsigned status, const char *type,
                                  char *body)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	if (!body)
		body = strdup("The status page is not available.\n"), status = 500,
		type = "text/plain; charset=utf-8";
	if (!body)
		return MHD_NO;
	if (!(r = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE))) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	MHD_add_response_header(r, "Content-Security-Policy", CSP);
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(r, "Cache-Control", "no-store");
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

enum MHD_Result ui_handle(struct ui *u, struct MHD_Connection *c, const char *url)
{
	if (!ui_may_view(u, c)) {
		static const char body[] = "Log in with a viewer's name and password ([status] "
		                           "viewers_file), or any name and the intake token.\n";
		struct MHD_Response *r = MHD_create_response_from_buffer(
		    sizeof(body) - 1, (void *)body, MHD_RESPMEM_PERSISTENT);
		enum MHD_Result ret;

		if (!r)
			return MHD_NO;
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
		                        "text/plain; charset=utf-8");
		ret = MHD_queue_basic_auth_fail_response(c, REALM, r);
		MHD_destroy_response(r);
		return ret;
	}
	if (strcmp(url, "/") == 0 || strcmp(url, "/ui") == 0 || strcmp(url, "/ui/") == 0)
		return send_owned(c, MHD_HTTP_OK, "text/html; charset=utf-8", page(u));
	if (strcmp(url, "/ui/ui.js") == 0)
		return send_owned(c, MHD_HTTP_OK, "text/javascript; charset=utf-8", strdup(ui_js));
	if (strcmp(url, "/ui/ui.css") == 0)
		return send_owned(c, MHD_HTTP_OK, "text/css; charset=utf-8", strdup(ui_css));
	if (strcmp(url, "/ui/plan.svg") == 0)
		return send_owned(c, MHD_HTTP_OK, "image/svg+xml", chart_plan(u));
	if (strcmp(url, "/ui/hours.svg") == 0)
		return send_owned(c, MHD_HTTP_OK, "image/svg+xml", chart_hours(u));
	return send_owned(c, MHD_HTTP_NOT_FOUND, "text/plain; charset=utf-8",
	                  strdup("Not found.\n"));
}
