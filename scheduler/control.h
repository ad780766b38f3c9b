/*
 * control.h -- warmupd's operator API, served by the intake under its
 * bearer token:
 *
 *	GET    /v1/suppressions[?reason=R&limit=N&after=ADDRESS]
 *	POST   /v1/suppressions      {"emails":[...], "reason":"manual", "detail":"..."}
 *	DELETE /v1/suppressions/ADDRESS
 *	POST   /v1/pause             {"route":"new", "who":"alice"}
 *	POST   /v1/resume            {"route":"new", "who":"alice"}
 *	POST   /v1/reload            (no body: the configuration file, read again)
 *
 * Answers are JSON; errors use SendGrid's error body, like the intake.
 * A reload answers {"ok", "message"} once it has run: 200 when applied,
 * 422 with every problem (also in "errors") when refused.
 * Changes join the loop turn's transaction and are answered only after it
 * commits, so "200" means "on disk".
 */
#ifndef WU_CONTROL_H
#define WU_CONTROL_H

#include <microhttpd.h>
#include <stddef.h>

struct wu_daemon;
struct control_wait;

/* What to answer. */
struct control_reply {
	unsigned status;
	char *body;       /* malloc'd JSON, or NULL */
	int after_commit; /* 1: answer once the turn's commit succeeded, else 500 */
	struct control_wait *wait; /* a reload that will fill this answer, or NULL */
};

/* 1 when url is one of the paths above (whatever the method). */
int control_match(const char *url);

/* Serves one complete request.  The caller answers with out (and frees
 * out->body with control_reply_free). */
void control_handle(struct wu_daemon *d, struct MHD_Connection *c, const char *method,
                    const char *url, const char *body, size_t len, struct control_reply *out);

void control_reply_free(struct control_reply *r);

#endif
