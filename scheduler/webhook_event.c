/*
 * NAME
 *	webhook_event.c -- read a batch of Event Webhook events.
 *
 * SYNOPSIS
 *	cJSON *root = webhook_batch_parse(body, len, why, sizeof why);
 *	cJSON_ArrayForEach(ev, root) { webhook_event_parse(ev, &e); ... }
 *
 * DESCRIPTION
 *	A batch is a JSON array, parsed strictly (json_strict.c: no NUL or
 *	raw control bytes in strings, valid UTF-8, no duplicate keys, nothing
 *	after the value); body[len] must be '\0'.
 *	Each event needs a non-empty event name, an sg_event_id of 1..255
 *	bytes, an email and a numeric timestamp, or it is malformed.  A bounce
 *	of type "blocked" is a block, not a bounce.  The provider id is the
 *	part of sg_message_id before the first '.'.
 *
 * DIAGNOSTICS
 *	None: what cannot be read is WEBHOOK_MALFORMED, and the caller counts it.
 */
#include "webhook_event.h"

#include "sender/json_strict.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

cJSON *webhook_batch_parse(const char *body, size_t len, char *why, size_t whylen)
{
	struct json_strict_error jerr;
	cJSON *root = NULL;

	if (json_strict_parse(body, len, &root, &jerr) < 0) {
		/* Short: the answer's JSON must fit the webhook's reply buffer. */
		snprintf(why, whylen, "The body is not JSON the webhook takes: %.160s", jerr.message);
		return NULL;
	}
	if (cJSON_IsArray(root))
		return root;
	snprintf(why, whylen, "The body is JSON but not an array: the Event Webhook posts a JSON "
	                      "array of event objects.");
	cJSON_Delete(root);
	return NULL;
}

/* A string member, or NULL. */
static const char *str_of(const cJSON *o, const char *key)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);

	return cJSON_IsString(it) ? it->valuestring : NULL;
}

/* What an event name does, and its outcome. */
static enum webhook_act classify(const char *event, const cJSON *ev, enum wu_result *res)
{
	const char *type;

	if (strcmp(event, "delivered") == 0)
		*res = WU_DELIVERED;
	else if (strcmp(event, "deferred") == 0)
		*res = WU_DEFERRED;
	else if (strcmp(event, "bounce") == 0) {
		type = str_of(ev, "type");
		*res = type && strcmp(type, "blocked") == 0 ? WU_BLOCKED : WU_BOUNCE;
	} else if (strcmp(event, "dropped") == 0)
		*res = WU_DROPPED;
	else if (strcmp(event, "spamreport") == 0)
		*res = WU_COMPLAINT;
	else if (strcmp(event, "unsubscribe") == 0 || strcmp(event, "group_unsubscribe") == 0)
		return WEBHOOK_UNSUBSCRIBE;
	else if (strcmp(event, "click") == 0)
		return WEBHOOK_ENGAGED;
	else if (strcmp(event, "open") == 0)
		/* Apple's Mail Privacy Protection opens everything; SendGrid
		 * marks those opens, and they say nothing of the person. */
		return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(ev, "sg_machine_open"))
		           ? WEBHOOK_IGNORE
		           : WEBHOOK_ENGAGED;
	else
		return WEBHOOK_IGNORE;
	return WEBHOOK_OUTCOME;
}

void webhook_event_parse(const cJSON *ev, struct webhook_event *out)
{
	const cJSON *ts = cJSON_GetObjectItemCaseSensitive(ev, "timestamp");
	const char *sgid, *wr, *at;
	size_t n;

	memset(out, 0, sizeof(*out));
	out->act = WEBHOOK_MALFORMED;
	out->res = WU_DELIVERED;
	out->route = -1;
	out->group = -1;
	if (!cJSON_IsObject(ev))
		return;
	out->event = str_of(ev, "event");
	out->id = str_of(ev, "sg_event_id");
	out->email = str_of(ev, "email");
	if (!out->event || !*out->event || !out->id || !*out->id || strlen(out->id) > 255 ||
	    !out->email || !cJSON_IsNumber(ts))
		return;
	out->act = classify(out->event, ev, &out->res);
	out->timestamp = ts->valuedouble;
	at = strrchr(out->email, '@');
	out->domain = at ? at + 1 : NULL;
	sgid = str_of(ev, "sg_message_id");
	if (sgid && (n = strcspn(sgid, ".")) > 0 && n < sizeof(out->msgid)) {
		memcpy(out->msgid, sgid, n);
		out->msgid[n] = '\0';
	}
	if ((wr = str_of(ev, "warmup_route")))
		out->route = strcmp(wr, "new") == 0   ? WU_ROUTE_NEW
		             : strcmp(wr, "old") == 0 ? WU_ROUTE_OLD
		                                      : -1;
	ts = cJSON_GetObjectItemCaseSensitive(ev, "asm_group_id");
	if (cJSON_IsNumber(ts) && ts->valuedouble >= 0 && ts->valuedouble < 9e15)
		out->group = (long long)ts->valuedouble;
	out->detail = str_of(ev, "reason");
	if (!out->detail)
		out->detail = str_of(ev, "response");
}

size_t webhook_event_text(const cJSON *ev, char *text, size_t len)
{
	const char *parts[3] = {str_of(ev, "response"), str_of(ev, "reason"), str_of(ev, "status")};
	size_t n = 0;

	if (!len)
		return 0;
	text[0] = '\0';
	for (int i = 0; i < 3; i++)
		if (parts[i] && n < len - 1) {
			int k = snprintf(text + n, len - n, "%s ", parts[i]);
			n = k < 0 ? n : n + (size_t)k < len ? n + (size_t)k : len - 1;
		}
	for (char *p = text; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return n;
}
