/*
 * fuzz_webhook.c -- the Event Webhook batch parser (webhook_event.c).
 *
 * A body is a batch or refused with a reason; each event of a batch reads
 * as malformed, ignored, an outcome or an unsubscribe, with the fields the
 * webhook then relies on: an id of 1..255 bytes, a provider id without a
 * '.', a route of new or old, a domain inside the address, and rule text
 * in lower case within its buffer.
 */
#include "fuzz.h"

#include <ctype.h>

#include "webhook_event.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char why[256] = "", text[512];
	char *body = malloc(size + 1);
	cJSON *root, *ev;

	if (!body)
		return 0;
	memcpy(body, data, size);
	body[size] = '\0';
	root = webhook_batch_parse(body, size, why, sizeof why);
	free(body);
	if (!root) {
		fuzz_check(why[0], "refused without a reason");
		return 0;
	}
	cJSON_ArrayForEach(ev, root)
	{
		struct webhook_event e;
		size_t n;

		webhook_event_parse(ev, &e);
		fuzz_check(e.route >= -1 && e.route < WU_ROUTE_COUNT, "route %d", e.route);
		fuzz_check(memchr(e.msgid, '\0', sizeof(e.msgid)) && !strchr(e.msgid, '.'),
		           "provider id '%s'", e.msgid);
		switch (e.act) {
		case WEBHOOK_MALFORMED:
			break;
		case WEBHOOK_OUTCOME:
			fuzz_check((unsigned)e.res < WU_RESULT_COUNT, "result %d", (int)e.res);
			/* fall through */
		case WEBHOOK_IGNORE:
		case WEBHOOK_ENGAGED:
		case WEBHOOK_UNSUBSCRIBE:
			fuzz_check(e.event && *e.event && e.email, "event without name or email");
			fuzz_check(e.id && *e.id && strlen(e.id) <= 255, "id");
			fuzz_check(!e.domain || (e.domain > e.email &&
			                         e.domain <= e.email + strlen(e.email) &&
			                         e.domain[-1] == '@'),
			           "domain outside the address");
			break;
		default:
			fuzz_check(0, "act %d", (int)e.act);
		}
		n = webhook_event_text(ev, text, sizeof(text));
		fuzz_check(n < sizeof(text) && strlen(text) == n, "text length %zu", n);
		for (size_t i = 0; i < n; i++)
			fuzz_check(!isupper((unsigned char)text[i]), "upper case in rule text");
	}
	cJSON_Delete(root);
	return 0;
}
