/*
 * intake.h -- the HTTP face of warmupd: SendGrid's POST /v3/mail/send, plus
 * GET /v1/status and GET /metrics.
 *
 * libmicrohttpd does the HTTP, in external-event mode: its epoll descriptor
 * is watched by the daemon's libuv loop, so requests are handled on the loop
 * thread with no locks.  An accepted request is written into the turn's
 * transaction and its connection suspended; the 202 goes out after the
 * commit, so a client never hears "accepted" for mail that is not on disk.
 */
#ifndef WU_INTAKE_H
#define WU_INTAKE_H

#include <cjson/cJSON.h>

#include "daemon.h"
#include "sender/v3mail.h"

/* Starts listening on the configured address. Returns 0, or -1 with a
 * message. */
int intake_start(struct intake **in, struct wu_daemon *d, char *err, size_t errlen);

/* The port actually bound (useful with port 0). */
int intake_port(const struct intake *in);

/* Asks for a turn of the HTTP server soon (after resuming connections). */
void intake_kick(struct intake *in);

/* Stops accepting; in-flight requests finish.  Frees in once its handles are
 * closed. */
void intake_stop(struct intake *in);

/* send_at, for both intakes: refused more than 72 hours ahead, as SendGrid
 * does (-1, the error in *errs), else 0.  intake_hold puts a stored unit of
 * personalization p back in the queue until its send_at, in the turn's
 * transaction (0, or -1 when the store failed); *due is when it may go (its
 * send_at, or now). */
int intake_send_at_check(const cJSON *body, wu_time_t now, struct v3mail_errors *errs);
int intake_hold(struct wu_daemon *d, const cJSON *body, const cJSON *p, int64_t unit,
                wu_time_t now, wu_time_t *due);

/* The application's engagement mark as a time: "true" (yes, 1) is now, a
 * date YYYY-MM-DD its start, "false" (no, 0) -1; none or anything else 0
 * (unknown: what the webhook learned decides). */
wu_time_t intake_engaged_at(const char *mark, wu_time_t now);

/* Both intakes: one unit per personalization of ps for the stored content,
 * classified by its first recipient's domain, held for its send_at, marked
 * for the v3 route alone with v3only; in the turn's transaction.  Returns
 * how many, or -1 when the store failed. */
int intake_add_units(struct wu_daemon *d, const cJSON *body, const cJSON *ps, int64_t content_id,
                     int v3only, wu_time_t now);

#endif
