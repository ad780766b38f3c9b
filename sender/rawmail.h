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

/* Converts a message as received over SMTP (RFC 5322, CRLF, after
 * dot-unstuffing) into the body of a SendGrid v3 mail send, without
 * "personalizations".  Returns 0 and a malloc'd JSON text in *json, or -1
 * with a reason for people in err ("From: missing", "no text/plain or
 * text/html part", "X-SMTPAPI: malformed JSON near byte 12", ...): the
 * message cannot go through the v3 API as it is, and retrying will not
 * change that.  GMime is set up on the first call, once per process.
 * Like cJSON_Parse(), which it uses for X-SMTPAPI, it writes cJSON's
 * global error position: call it from the thread that parses JSON. */
int rawmail_to_v3(const char *raw, size_t len, char **json, char *err, size_t errlen);

#endif
