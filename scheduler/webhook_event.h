/*
 * webhook_event.h -- one batch of SendGrid's Event Webhook, read: the JSON
 * array, and each event's shape and meaning, without the store or the
 * engine.
 *
 * webhook.c authenticates a batch, then attributes and applies what this
 * reads.  Kept apart so that the parse can be fuzzed on its own.
 */
#ifndef WU_WEBHOOK_EVENT_H
#define WU_WEBHOOK_EVENT_H

#include <cJSON.h>
#include <stddef.h>

#include "core/engine.h"

/* What an event does. */
enum webhook_act {
	WEBHOOK_MALFORMED,  /* not an object, or event, sg_event_id, email or timestamp missing */
	WEBHOOK_IGNORE,     /* processed, group_resubscribe, a machine open, unknown */
	WEBHOOK_ENGAGED,    /* open (not a machine's) or click: the address engages */
	WEBHOOK_OUTCOME,    /* an engine outcome: res */
	WEBHOOK_UNSUBSCRIBE /* unsubscribe or group_unsubscribe */
};

/* One event, read.  The strings point into the cJSON tree. */
struct webhook_event {
	enum webhook_act act;
	enum wu_result res; /* for WEBHOOK_OUTCOME */
	const char *event;  /* "delivered", "bounce", ... */
	const char *id;     /* sg_event_id: 1..255 bytes */
	const char *email;
	const char *domain; /* after the last '@' of email; NULL without one */
	char msgid[128];    /* sg_message_id before its first '.'; "" when none fits */
	int route;          /* the warmup_route custom arg: WU_ROUTE_NEW or OLD; -1 none */
	const char *detail; /* reason, else response: kept with a suppression */
	long long group;    /* asm_group_id (group_unsubscribe), or -1 */
	double timestamp;   /* seconds since the epoch, as the event says */
};

/* The batch as a JSON array (body[len] must be '\0').  NULL when it is not
 * one, with why saying so for the 400 answer. */
cJSON *webhook_batch_parse(const char *body, size_t len, char *why, size_t whylen);

/* Reads one element of the batch. */
void webhook_event_parse(const cJSON *ev, struct webhook_event *out);

/* The text deferral rules match: response, reason and status, lower case,
 * each followed by a blank, cut to len - 1 bytes.  Returns its length. */
size_t webhook_event_text(const cJSON *ev, char *text, size_t len);

#endif
