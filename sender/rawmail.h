/*
 * rawmail.h -- a message taken over SMTP as the body of a SendGrid v3 mail
 * send, for the API route.
 *
 * Pure conversion: no I/O, no event loop, no store.  The MIME parsing, the
 * transfer decodings and the charset conversions are GMime's (and iconv's).
 *
 * Promises: the JSON has no "personalizations" (the SMTP envelope decides
 * the recipients; the caller adds one per RCPT TO), and once one
 * personalization is added it passes v3mail_validate().  Every string in it
 * is UTF-8.  A message the v3 API cannot carry faithfully is refused, never
 * sent half: see the README, "Mail taken over SMTP on the v3 route".
 */
#ifndef WU_RAWMAIL_H
#define WU_RAWMAIL_H

#include <stddef.h>

#include <cjson/cJSON.h>

/* Converts a message as received over SMTP (RFC 5322, CRLF, after
 * dot-unstuffing) into the body of a SendGrid v3 mail send, without
 * "personalizations".  Returns 0 and a malloc'd JSON text in *json, or -1
 * with a reason for people in err ("From: missing", "no text/plain or
 * text/html part", "X-SMTPAPI: malformed JSON near byte 12", ...): the
 * message cannot go through the v3 API as it is, and retrying will not
 * change that.  GMime is set up on the first call, once per process.
 * It is rawmail_parse() and rawmail_finish() in one. */
int rawmail_to_v3(const char *raw, size_t len, char **json, char *err, size_t errlen);

/* The same in two steps, so that the costly one can run on a worker thread.
 *
 * rawmail_parse() parses with GMime and builds the body but for what the
 * X-SMTPAPI headers add; it writes no global state and may run on any
 * thread.  NULL with a reason in err when the message cannot be sent.
 *
 * rawmail_finish() applies the X-SMTPAPI headers and validates, with the
 * "personalizations" the caller has added to the body (else with one made
 * up).  It parses JSON with cJSON, which writes a global error position:
 * call it from the thread that parses JSON.  0, or -1 with a reason in err.
 *
 * rawmail_body() is the body, still rm's (adding to it is fine); it lives
 * until rawmail_free(). */
struct rawmail;
struct rawmail *rawmail_parse(const char *raw, size_t len, char *err, size_t errlen);
int rawmail_finish(struct rawmail *rm, char *err, size_t errlen);
cJSON *rawmail_body(struct rawmail *rm);
void rawmail_free(struct rawmail *rm); /* accepts NULL */

#endif
