/*
 * webhook.h -- SendGrid's Event Webhook: POST /v1/events/sendgrid.
 *
 * SendGrid posts batches of delivery events (delivered, deferred, bounce,
 * blocked, dropped, spam reports, unsubscribes, ...) as a JSON array.  The
 * webhook checks the batch's authentication (an ECDSA signature, HTTP basic
 * auth, or `auth = none` written out), drops events it has applied before
 * (by sg_event_id), finds the unit each event is about (by sg_message_id,
 * or the warmup_route custom argument) and feeds the outcome to the engine
 * and the day's counters -- so the health gate judges live data -- and
 * matches deferral and block texts against [defer_rule] sections, which cut
 * one ISP's rate on the new route for a while.
 *
 * Everything of a batch joins the loop turn's transaction; the answer (200)
 * goes out after the commit, so SendGrid retries whatever did not reach the
 * disk.  Malformed or unknown events are counted and skipped, never fatal.
 *
 * The endpoint is off (404) without a [webhook] section.
 */
#ifndef WU_WEBHOOK_H
#define WU_WEBHOOK_H

#include <stddef.h>

#include "core/engine.h"

struct wu_daemon;
struct MHD_Connection;
struct webhook;

#define WEBHOOK_PATH "/v1/events/sendgrid"

/* One request's answer: the HTTP status and a small JSON body. */
struct webhook_reply {
	unsigned status;
	int after_commit; /* the batch joined the transaction: answer after it */
	char body[256];
	/* the batch's events, by what became of them */
	int received, applied, duplicate, unattributed, malformed, ignored;
};

/* Sets up the endpoint from d->conf.webhook: the public key, the deferral
 * rules (the built-in ones unless the file gives some).  Returns 0, or -1
 * with a message.  *w is NULL (endpoint off) without a [webhook] section. */
int webhook_create(struct webhook **w, struct wu_daemon *d, char *err, size_t errlen);
void webhook_free(struct webhook *w); /* accepts NULL */

/* "signature", "basic auth", "signature and basic auth" or "no authentication". */
const char *webhook_auth_name(const struct webhook *w);

/* The body limit of the endpoint ([webhook] max_body). */
size_t webhook_max_body(const struct webhook *w);

/* The first call of a request: method, basic auth, Content-Length.  Returns
 * 0 to read the body, 1 when *rep holds the answer now.  w may be NULL. */
int webhook_begin(struct webhook *w, struct MHD_Connection *c, const char *method,
                  struct webhook_reply *rep);

/* The whole body has arrived (too_big: it went over the limit).  Checks the
 * signature, parses and applies the batch.  *rep holds the answer; when
 * rep->after_commit is set it is final only after webhook_committed(). */
void webhook_post(struct webhook *w, struct MHD_Connection *c, const char *body, size_t len,
                  int too_big, struct webhook_reply *rep);

/* The turn's commit is done (ok = 0: rolled back): sets the answer and
 * counts the batch. */
void webhook_committed(struct webhook *w, int ok, struct webhook_reply *rep);

#endif
