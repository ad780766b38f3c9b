/*
 * smtpd.h -- the SMTP intake: warmupd as the next hop of a Postfix relay
 * (relayhost) or of an application's SMTP mailer.
 *
 * ESMTP (RFC 5321) on the daemon's libuv loop, one session per connection,
 * STARTTLS through OpenSSL memory BIOs, AUTH PLAIN and LOGIN against a users
 * file.  A message is stored once, byte for byte as received after
 * dot-unstuffing, with one unit per envelope recipient; 250 after DATA goes
 * out only once the loop turn's commit has made it durable, like 202 on the
 * HTTP intake.
 */
#ifndef WU_SMTPD_H
#define WU_SMTPD_H

#include <stddef.h>

struct wu_daemon;
struct smtpd;

/* Listens on [smtp] address.  Returns 0, or -1 with a message. */
int smtpd_start(struct smtpd **s, struct wu_daemon *d, char *err, size_t errlen);

/* The port it listens on (useful with port 0). */
int smtpd_port(const struct smtpd *s);

/* Stops accepting; sessions get 421 (after the answer they wait for) and
 * are closed.  Frees s once every handle is closed. */
void smtpd_stop(struct smtpd *s);

#endif
