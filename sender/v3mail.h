/*
 * v3mail.h -- SendGrid's v3 /mail/send body: the rules SendGrid applies to
 * it, in one place, for the daemon's intake and for the fake SendGrid server.
 *
 * Checked as SendGrid does: 1-1000 personalizations, at most 1000 recipients
 * (to + cc + bcc) in all, each personalization with at least one "to",
 * valid addresses, from.email required, a subject globally or in every
 * personalization unless template_id is set, content with text/plain first
 * and text/html after it, each at most once, at most 10 categories,
 * custom_args at most 10,000 bytes, no reserved header (To, From, Subject,
 * Reply-To, Cc, Bcc, Content-Type, Content-Transfer-Encoding, DKIM-Signature,
 * Received, x-sg-id, x-sg-eid), and the right JSON type for every known
 * field.
 *
 * Checked also so that both routes can send what the intake accepts (the
 * SMTP route builds the message itself, and refusing it then would be too
 * late): no control character (U+0000-U+001F but tab, U+007F) in a
 * subject, a name, a header value, a filename, a content ID or a type, nor
 * in a substitution used in the subject or a header value; content and
 * attachment types that are MIME types; header names of at most 76
 * characters; filenames and content IDs of at most 255; custom_args that
 * fit the X-SMTPAPI header.  json_strict.h checks the text before it is a
 * tree.
 */
#ifndef WU_V3MAIL_H
#define WU_V3MAIL_H

#include <cjson/cJSON.h>
#include <stddef.h>

#define V3MAIL_MAX_ERRORS 8

struct v3mail_errors {
	int n;
	struct {
		char message[256];
		char field[128]; /* "personalizations.0.to.1.email", or "" for none */
	} e[V3MAIL_MAX_ERRORS];
};

#define V3MAIL_MAX_HEADER_NAME 76 /* "Name: " still fits a 78-octet line */
#define V3MAIL_MAX_MIME_TYPE   100

/* True (1) for a header field name: 1 to V3MAIL_MAX_HEADER_NAME printable
 * ASCII characters, no space, no colon. */
int v3mail_header_name_ok(const char *s);

/* True (1) for a MIME type without parameters: type "/" subtype, each an
 * RFC 2045 token, at most V3MAIL_MAX_MIME_TYPE characters in all. */
int v3mail_mime_type_ok(const char *s);

/* Validates a parsed body. Returns 0, or -1 with the problems in *errs. */
int v3mail_validate(const cJSON *body, struct v3mail_errors *errs);

/* 1 when SendGrid refuses the header name (any case) in "headers", else 0. */
int v3mail_reserved_header(const char *name);

/* Adds one error (kept when there is room). */
void v3mail_error(struct v3mail_errors *errs, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* SendGrid's error body: {"errors":[{"message":..,"field":..,"help":null}]}.
 * A field of "" is written as null.  Returns malloc'd text. */
char *v3mail_errors_json(const struct v3mail_errors *errs);

/* The domain of the first "to" address of personalization p (lower case),
 * into buf.  Returns 0, or -1 when there is none. */
/* The first "to" address of personalization p, lowercase; 0 or -1. */
int v3mail_first_email(const cJSON *p, char *buf, size_t len);
/* The application's engagement mark of personalization p: its custom_args
 * warmup_engaged, else its header X-Warmup-Engaged, else the same of the
 * message; NULL when none. */
const char *v3mail_engaged_mark(const cJSON *body, const cJSON *p);
int v3mail_first_domain(const cJSON *p, char *buf, size_t len);

/* The enable member of body.<group>.<name> ("mail_settings",
 * "sandbox_mode"): 1 or 0 when the application set it, -1 when it did
 * not say. */
int v3mail_setting(const cJSON *body, const char *group, const char *name);

/* SendGrid schedules at most this far ahead (its "Scheduling Parameters"
 * page: up to 72 hours in advance). */
#define V3MAIL_SEND_AT_MAX (72LL * 3600)

/* When personalization p asks to be sent: its own send_at, else the
 * body's.  Returns 1 with *t in Unix seconds, 0 when neither says. */
int v3mail_send_at(const cJSON *body, const cJSON *p, long long *t);

#endif
