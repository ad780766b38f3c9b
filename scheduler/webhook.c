/*
 * NAME
 *	webhook.c -- SendGrid's Event Webhook: verify, parse, deduplicate,
 *	attribute and apply batches of delivery events.
 *
 * SYNOPSIS
 *	webhook_create(&d->webhook, d, err, sizeof(err));
 *	webhook_begin(w, conn, method, &rep);        (headers: method, basic auth)
 *	webhook_post(w, conn, body, len, 0, &rep);   (the whole body)
 *	webhook_committed(w, ok, &rep);              (after the turn's commit)
 *
 * DESCRIPTION
 *	A batch is a JSON array of events.  Signed webhooks carry an ECDSA
 *	P-256 signature (base64 DER, X-Twilio-Email-Event-Webhook-Signature)
 *	over the timestamp header's value followed by the raw body, hashed with
 *	SHA-256; the timestamp must be within [webhook] max_skew of now, so a
 *	captured batch cannot be replayed later.  Basic auth compares
 *	"user:password" in constant time.
 *
 *	Each event is checked for its shape, attributed to a route and an ISP
 *	(the unit whose provider id is the part of sg_message_id before the
 *	first '.', else the warmup_route custom argument and the ISP of the
 *	address), then recorded by sg_event_id so a batch SendGrid posts again
 *	counts once, and applied: an engine outcome (the gate reads these) and
 *	a store counter on the day the event arrives: each event is one
 *	report to the engine (wu_engine_report), which also matches deferred
 *	and blocked events of the new route against the deferral rules.
 *
 *	Events about mail warmupd did not send (no unit, no warmup_route) are
 *	"unattributed" and move nothing: another application sharing the
 *	SendGrid account must not move this warmup's gate.  Their bounces,
 *	spam reports and unsubscribes still suppress the address.
 *
 * DIAGNOSTICS
 *	A refused batch is logged at warn level without its body; the cuts of
 *	an ISP are logged at info level at most once an hour, with the number
 *	of rule matches since.  Nothing here is fatal to the daemon.
 */
#include "webhook.h"

#include <cJSON.h>
#include <microhttpd.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cluster.h"
#include "daemon.h"
#include "log.h"
#include "suppress.h"
#include "webhook_event.h"
#include "sender/b64.h"

#define SIG_HEADER  "X-Twilio-Email-Event-Webhook-Signature"
#define TS_HEADER   "X-Twilio-Email-Event-Webhook-Timestamp"
#define SEEN_KEEP   (3 * WU_DAY) /* SendGrid retries a batch for up to 24 hours */
#define PRUNE_EVERY WU_HOUR
#define LOG_EVERY   WU_HOUR
#define TEXT_MAX    512

struct webhook {
	struct wu_daemon *d;
	const struct wu_webhook_conf *conf;
	EVP_PKEY *key; /* NULL: no signature check */
	char *basic;   /* "user:password", NULL: no basic auth */
	wu_time_t logged[WU_ISP_MAX]; /* when the cuts of each ISP were last logged */
	int64_t unlogged[WU_ISP_MAX]; /* rule matches since */
	wu_time_t pruned;
};

/* Standard base64 into out; the length, or -1. */
static int b64_text(const char *in, unsigned char *out, size_t outlen)
{
	size_t n = strlen(in);

	if (n == 0 || B64_DECODED_MAX(n) > outlen)
		return -1;
	return (int)b64_decode(in, n, out, outlen, 0);
}

/* Equal strings, in time that depends only on the length of want. */
static int same(const char *got, const char *want)
{
	size_t n = strlen(got), m = strlen(want);
	unsigned char diff = (unsigned char)(n != m);

	for (size_t i = 0; i < m; i++)
		diff |= (unsigned char)(want[i] ^ (i < n ? got[i] : 0));
	return diff == 0;
}

int webhook_create(struct webhook **wp, struct wu_daemon *d, char *err, size_t errlen)
{
	const struct wu_webhook_conf *c = &d->conf.webhook;
	struct webhook *w;

	*wp = NULL;
	if (!c->enabled)
		return 0;
	if (!(w = calloc(1, sizeof(*w))))
		goto nomem;
	w->d = d;
	w->conf = c;
	if (c->public_key) {
		const unsigned char *p = c->public_key;

		w->key = d2i_PUBKEY(NULL, &p, (long)c->public_key_len);
		if (!w->key || p != c->public_key + c->public_key_len ||
		    EVP_PKEY_get_base_id(w->key) != EVP_PKEY_EC) {
			snprintf(err, errlen,
			         "[webhook] public_key: not an EC public key (DER "
			         "SubjectPublicKeyInfo, base64) as SendGrid shows it");
			webhook_free(w);
			return -1;
		}
	}
	if (c->username[0] && c->password) {
		size_t n = strlen(c->username) + strlen(c->password) + 2;

		if (!(w->basic = malloc(n)))
			goto nomem;
		snprintf(w->basic, n, "%s:%s", c->username, c->password);
	}
	*wp = w;
	return 0;
nomem:
	webhook_free(w);
	snprintf(err, errlen, "out of memory");
	return -1;
}

void webhook_free(struct webhook *w)
{
	if (!w)
		return;
	EVP_PKEY_free(w->key);
	if (w->basic) {
		explicit_bzero(w->basic, strlen(w->basic));
		free(w->basic);
	}
	free(w);
}

const char *webhook_auth_name(const struct webhook *w)
{
	if (!w)
		return "off";
	if (w->key && w->basic)
		return "signature and basic auth";
	return w->key ? "signature" : w->basic ? "basic auth" : "no authentication";
}

size_t webhook_max_body(const struct webhook *w)
{
	return w ? w->conf->max_body : 0;
}

/* Sets a plain answer: {"error": message} or a body given whole. */
static void answer(struct webhook_reply *rep, unsigned status, const char *message)
{
	cJSON *o = cJSON_CreateObject();
	char *text = NULL;

	rep->status = status;
	rep->after_commit = 0;
	if (o && cJSON_AddStringToObject(o, "error", message))
		text = cJSON_PrintUnformatted(o);
	snprintf(rep->body, sizeof(rep->body), "%s", text ? text : "{}");
	free(text);
	cJSON_Delete(o);
}

/* Counts and logs a batch refused for its authentication. */
static void refuse(struct webhook *w, struct webhook_reply *rep, unsigned status, const char *why)
{
	w->d->extra.wh_refused++;
	wu_warn("webhook: batch refused: %s", why);
	answer(rep, status, why);
}

/* Checks "Authorization: Basic ..." against user:password. */
static int basic_ok(struct webhook *w, struct MHD_Connection *c)
{
	const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
	unsigned char buf[768];
	int n;

	if (!h || strncasecmp(h, "Basic ", 6) != 0)
		return 0;
	h += 6;
	while (*h == ' ')
		h++;
	if ((n = b64_text(h, buf, sizeof(buf) - 1)) < 0)
		return 0;
	buf[n] = '\0';
	if (memchr(buf, '\0', (size_t)n))
		return 0;
	return same((const char *)buf, w->basic);
}

int webhook_begin(struct webhook *w, struct MHD_Connection *c, const char *method,
                  struct webhook_reply *rep)
{
	const char *clen;

	memset(rep, 0, sizeof(*rep));
	if (!w) {
		answer(rep, MHD_HTTP_NOT_FOUND,
		       "The event webhook is off: add a [webhook] section to the configuration.");
		return 1;
	}
	if (strcmp(method, "POST") != 0) {
		answer(rep, MHD_HTTP_METHOD_NOT_ALLOWED, "Use POST for " WEBHOOK_PATH ".");
		return 1;
	}
	if (w->basic && !basic_ok(w, c)) {
		refuse(w, rep, MHD_HTTP_UNAUTHORIZED, "wrong or missing basic auth credentials");
		return 1;
	}
	clen = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (clen && strtoull(clen, NULL, 10) > w->conf->max_body) {
		w->d->extra.wh_bad_batches++;
		answer(rep, MHD_HTTP_CONTENT_TOO_LARGE,
		       "The batch is larger than [webhook] max_body.");
		return 1;
	}
	return 0;
}

/* Verifies the signature over timestamp + body.  NULL when good, else why. */
static const char *signature_check(struct webhook *w, struct MHD_Connection *c, const char *body,
                                   size_t len, wu_time_t now)
{
	const char *sig = MHD_lookup_connection_value(c, MHD_HEADER_KIND, SIG_HEADER);
	const char *ts = MHD_lookup_connection_value(c, MHD_HEADER_KIND, TS_HEADER);
	unsigned char der[256];
	EVP_MD_CTX *md;
	long long t;
	char *end;
	int n, ok;

	if (!sig || !ts)
		return "missing signature or timestamp header";
	if (!isdigit((unsigned char)ts[0]) || (t = strtoll(ts, &end, 10), *end) || strlen(ts) > 12)
		return "bad timestamp header";
	if (llabs(t - (long long)(now / WU_USEC)) > (long long)(w->conf->max_skew / WU_USEC))
		return "timestamp outside [webhook] max_skew of now (replayed or clock skew)";
	if ((n = b64_text(sig, der, sizeof(der))) <= 0)
		return "signature is not base64";
	if (!(md = EVP_MD_CTX_new()))
		return "out of memory";
	ok = EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, w->key) == 1 &&
	     EVP_DigestVerifyUpdate(md, ts, strlen(ts)) == 1 &&
	     EVP_DigestVerifyUpdate(md, body, len) == 1 &&
	     EVP_DigestVerifyFinal(md, der, (size_t)n) == 1;
	EVP_MD_CTX_free(md);
	return ok ? NULL : "bad signature";
}

/* Finds the route and ISP of an event.  1 when found, 0 when the event is
 * not about mail warmupd sent, -1 on a store failure. */
static int attribute(struct webhook *w, const struct webhook_event *e, int *route, int *isp)
{
	struct wu_daemon *d = w->d;

	*route = -1;
	*isp = wu_isp_classify(&wu_engine_conf(d->engine)->isps, e->domain ? e->domain : e->email);
	if (e->msgid[0] &&
	    store_unit_by_provider(d->store, e->msgid, e->domain ? e->domain : "", route, isp) < 0)
		return -1;
	if (*route < 0)
		*route = e->route;
	return *route >= 0 && *route < WU_ROUTE_COUNT;
}

/* Logs what the deferral rules did to an ISP, at most once an hour each:
 * the engine cut it (its cut state says how), or it had nothing to cut. */
static void cut_log(struct webhook *w, int isp, int cuts, enum wu_result res, wu_time_t now)
{
	struct wu_daemon *d = w->d;
	struct wu_cut cs, *c = &cs;
	const char *isp_name = wu_engine_conf(d->engine)->isps.names[isp];

	if (!cuts || !wu_engine_cut_state(d->engine, isp, &cs))
		return;
	w->unlogged[isp] += cuts;
	if (now - w->logged[isp] < LOG_EVERY)
		return;
	if (c->effective)
		wu_info("webhook: [defer_rule %s]: %" PRId64 " %s match%s for %s: new route rate "
		        "cut to %.0f%% until %" PRId64 " min from now",
		        c->rule, w->unlogged[isp], res == WU_DEFERRED ? "deferred" : "blocked",
		        w->unlogged[isp] == 1 ? "" : "es", isp_name, c->cut * 100,
		        (c->until - now) / WU_MINUTE);
	else
		wu_warn("webhook: [defer_rule %s]: %" PRId64 " match%s for %s, but [isp %s] has no "
		        "new_rate and today's cap is unlimited: nothing to cut",
		        c->rule, w->unlogged[isp], w->unlogged[isp] == 1 ? "" : "es", isp_name,
		        isp_name);
	w->logged[isp] = now;
	w->unlogged[isp] = 0;
}

/* Hard bounces, spam reports and unsubscribes keep the address off later
 * sends; a group unsubscribe off that group's mail only.  Returns 0, or -1
 * when the store failed. */
static int event_suppress(struct wu_daemon *d, const struct webhook_event *e)
{
	const char *reason;
	int rc;

	if (e->act == WEBHOOK_UNSUBSCRIBE && strcmp(e->event, "group_unsubscribe") == 0 &&
	    e->group >= 0) {
		if ((rc = suppress_group_event(d, e->email, e->group, e->detail)) > 0)
			cluster_share_suppress(d->cluster, e->email, NULL, e->group, e->detail);
		return rc < 0 ? -1 : 0;
	}
	if (e->act == WEBHOOK_UNSUBSCRIBE)
		reason = e->event; /* a group_unsubscribe without its group: all mail */
	else if (e->act == WEBHOOK_OUTCOME && e->res == WU_BOUNCE)
		reason = "bounce";
	else if (e->act == WEBHOOK_OUTCOME && e->res == WU_COMPLAINT)
		reason = "spamreport";
	else
		return 0;
	/* A new entry goes to every node of a cluster (cluster_bus.c). */
	if ((rc = suppress_event(d, e->email, reason, e->detail)) > 0)
		cluster_share_suppress(d->cluster, e->email, reason, -1, e->detail);
	return rc < 0 ? -1 : 0;
}

/* An open or a click: the address's last engagement, whoever sent the
 * mail it opened (an address that opens the team's mail engages).  At the
 * event's time, never ahead of the clock.  No sg_event_id is kept: noting
 * the same engagement twice changes nothing.  The batch's answer counts it
 * as ignored, as before: it moves no counter and no gate (status shows
 * engaged.noted). */
static int engaged_note(struct wu_daemon *d, const struct webhook_event *e, wu_time_t now,
                        struct webhook_reply *rep)
{
	char email[320];
	size_t n = strlen(e->email);
	wu_time_t at = now;

	if (n == 0 || n >= sizeof(email) || !strchr(e->email, '@')) {
		rep->malformed++;
		return 0;
	}
	for (size_t i = 0; i <= n; i++)
		email[i] = (char)tolower((unsigned char)e->email[i]);
	if (e->timestamp > 0 && e->timestamp * 1e6 < (double)now)
		at = (wu_time_t)(e->timestamp * 1e6);
	if (store_engaged_note(d->store, email, at) < 0)
		return -1;
	d->extra.engaged_noted++;
	rep->ignored++;
	return 0;
}

/* One event of a batch.  Returns 0, or -1 when the store failed. */
static int event_apply(struct webhook *w, const cJSON *ev, wu_time_t now, int fresh,
                       struct webhook_reply *rep)
{
	struct wu_daemon *d = w->d;
	struct webhook_event e;
	int route, isp, rc;

	webhook_event_parse(ev, &e);
	if (e.act == WEBHOOK_MALFORMED) {
		rep->malformed++;
		return 0;
	}
	if (e.act == WEBHOOK_IGNORE) {
		rep->ignored++;
		return 0;
	}
	if (e.act == WEBHOOK_ENGAGED)
		return engaged_note(d, &e, now, rep);
	if ((rc = attribute(w, &e, &route, &isp)) <= 0) {
		if (rc < 0)
			return rc;
		/* Mail warmupd did not send moves no gate, but an address that
		 * bounced or complained there must not get ours either. */
		rep->unattributed++;
		return event_suppress(d, &e);
	}
	if (!fresh) {
		rep->duplicate++; /* another node, or an earlier batch, has it */
		return 0;
	}
	if ((rc = store_webhook_seen(d->store, e.id, now)) <= 0) {
		if (rc == 0)
			rep->duplicate++;
		return rc;
	}
	if (e.act == WEBHOOK_OUTCOME) {
		/* A report from the recipient's ISP, on the day it arrives; the
		 * engine applies the deferral rules to its text. */
		char text[TEXT_MAX];
		struct wu_report r = {.route = (enum wu_route)route,
		                      .isp = isp,
		                      .result = e.res,
		                      .scope = WU_SCOPE_ISP,
		                      .n = 1,
		                      .sent_date = -1,
		                      .text = webhook_event_text(ev, text, sizeof(text)) ? text : ""};
		struct wu_verdict v = wu_engine_report(d->engine, now, &r);

		if (v.count_n > 0 &&
		    store_count(d->store, v.count_date, route, isp, v.count, v.count_n) < 0)
			return -1;
		cut_log(w, isp, v.cuts, e.res, now);
		if (v.cuts > 0 && d->cluster) {
			struct wu_cut cut;

			if (wu_engine_cut_state(d->engine, isp, &cut) && cut.effective)
				cluster_share_cut(d->cluster,
				                  wu_engine_conf(d->engine)->isps.names[isp],
				                  cut.factor, cut.until);
		}
	} else {
		wu_engine_tick(d->engine, now);
		if (store_count(d->store, wu_engine_today(d->engine)->date, route, isp,
		                WU_COUNT_UNSUBSCRIBE, 1) < 0)
			return -1;
	}
	if (event_suppress(d, &e) < 0)
		return -1;
	rep->applied++;
	return 0;
}

/* With [cluster]: which events of the batch no node has applied yet, one
 * flag per element (1 for an element without an id: the parse refuses it
 * later).  NULL: every event counts as fresh here (no cluster, or Redis
 * cannot answer now; the store's own dedup still applies). */
static unsigned char *cluster_fresh(struct wu_daemon *d, const cJSON *root)
{
	int n = cJSON_GetArraySize(root), k = 0, i = 0;
	const char **ids;
	unsigned char *fresh, *got;
	const cJSON *ev;

	if (!d->cluster || n <= 0)
		return NULL;
	ids = calloc((size_t)n, sizeof(*ids));
	fresh = calloc((size_t)n, 1);
	got = calloc((size_t)n, 1);
	if (!ids || !fresh || !got)
		goto none;
	cJSON_ArrayForEach(ev, root)
	{
		const cJSON *id = cJSON_GetObjectItemCaseSensitive(ev, "sg_event_id");

		if (cJSON_IsString(id) && id->valuestring[0] && strlen(id->valuestring) <= 255)
			ids[k++] = id->valuestring;
	}
	if (cluster_dedup(d->cluster, ids, k, got) < 0)
		goto none;
	k = 0;
	cJSON_ArrayForEach(ev, root)
	{
		const cJSON *id = cJSON_GetObjectItemCaseSensitive(ev, "sg_event_id");

		fresh[i++] =
		    cJSON_IsString(id) && id->valuestring[0] && strlen(id->valuestring) <= 255
		        ? got[k++]
		        : 1;
	}
	free(ids);
	free(got);
	return fresh;
none:
	free(ids);
	free(fresh);
	free(got);
	return NULL;
}

void webhook_post(struct webhook *w, struct MHD_Connection *c, const char *body, size_t len,
                  int too_big, struct webhook_reply *rep)
{
	struct wu_daemon *d = w->d;
	wu_time_t now = daemon_now(d);
	const char *why;
	char msg[224];
	cJSON *root, *ev;
	unsigned char *fresh;
	int i;

	if (too_big) {
		d->extra.wh_bad_batches++;
		answer(rep, MHD_HTTP_CONTENT_TOO_LARGE,
		       "The batch is larger than [webhook] max_body.");
		return;
	}
	if (w->key && (why = signature_check(w, c, body ? body : "", len, now))) {
		refuse(w, rep, MHD_HTTP_FORBIDDEN, why);
		return;
	}
	if (!(root = webhook_batch_parse(body ? body : "", len, msg, sizeof(msg)))) {
		d->extra.wh_bad_batches++;
		answer(rep, MHD_HTTP_BAD_REQUEST, msg);
		return;
	}
	if (daemon_txn(d) < 0) {
		cJSON_Delete(root);
		answer(rep, MHD_HTTP_INTERNAL_SERVER_ERROR,
		       "The store is not available; try again.");
		return;
	}
	fresh = cluster_fresh(d, root);
	i = 0;
	cJSON_ArrayForEach(ev, root)
	{
		rep->received++;
		if (event_apply(w, ev, now, fresh ? fresh[i++] : 1, rep) < 0) {
			wu_error("webhook: cannot record an event: %s", store_errmsg(d->store));
			daemon_txn_fail(d, "webhook");
			break;
		}
	}
	cJSON_Delete(root);
	free(fresh);
	if (now - w->pruned >= PRUNE_EVERY) {
		if (store_webhook_prune(d->store, now - SEEN_KEEP) < 0)
			daemon_txn_fail(d, "webhook: pruning event ids");
		w->pruned = now;
	}
	/* Gate verdicts and pauses the events caused go to the log now. */
	daemon_drain_events(d);
	rep->status = MHD_HTTP_OK;
	rep->after_commit = 1;
}

void webhook_committed(struct webhook *w, int ok, struct webhook_reply *rep)
{
	struct status_extra *x = &w->d->extra;

	rep->after_commit = 0;
	if (!ok) {
		answer(rep, MHD_HTTP_INTERNAL_SERVER_ERROR,
		       "The batch could not be stored; post it again.");
		return;
	}
	x->webhook_events += rep->received;
	x->wh_applied += rep->applied;
	x->wh_duplicate += rep->duplicate;
	x->wh_unattributed += rep->unattributed;
	x->wh_malformed += rep->malformed;
	x->wh_ignored += rep->ignored;
	if (rep->malformed || rep->unattributed)
		wu_debug("webhook: %d event(s): %d applied, %d duplicate, %d unattributed, %d "
		         "malformed, %d ignored",
		         rep->received, rep->applied, rep->duplicate, rep->unattributed,
		         rep->malformed, rep->ignored);
	snprintf(rep->body, sizeof(rep->body),
	         "{\"received\":%d,\"applied\":%d,\"duplicate\":%d,\"unattributed\":%d,"
	         "\"malformed\":%d,\"ignored\":%d}",
	         rep->received, rep->applied, rep->duplicate, rep->unattributed, rep->malformed,
	         rep->ignored);
	rep->status = MHD_HTTP_OK;
}
