/*
 * mime.h -- one SendGrid v3 personalization as an Internet message, built
 * with libcurl's MIME API for the SMTP route.
 *
 * mime_build() takes the stored content (the v3 body without
 * "personalizations") and one personalization, applies what SendGrid would
 * apply (the personalization's subject over the global one, its headers
 * over global headers of the same name, its substitutions in subject and
 * content), and fills a curl_mime for one easy handle together with the
 * header list, the envelope sender and the envelope recipients.  Nothing
 * here touches the network, so every piece can be tested on its own.
 *
 * Promises: CRLF line endings only, no line over 998 octets, non-ASCII
 * header text as RFC 2047 encoded-words, Bcc recipients only in the
 * envelope.
 */
#ifndef WU_MIME_H
#define WU_MIME_H

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define MIME_LINE_SOFT 78  /* where folding starts to look for a break */
#define MIME_LINE_HARD 998 /* RFC 5322: never longer, CRLF excluded */

/* What the route adds to every message. */
struct mime_opts {
	int64_t unit_id;
	const char *msgid;      /* intake's X-Message-Id: keeps Message-ID stable
	                         * across retries; NULL or "" = random */
	time_t now;             /* for the Date header */
	int x_smtpapi;          /* add an X-SMTPAPI header (SendGrid's relay) */
	int warmup_day;         /* unique_args.warmup_day */
	const char *route_name; /* unique_args.warmup_route: "new" or "old" */
	int click, open, sub;   /* the route's tracking settings, 0 or 1 */
	int force_tracking;     /* 1: they override the message's; 0: defaults */
	const char *ip_pool;    /* "" or NULL = none */
};

/* A built message.  Every member is owned here until mime_msg_free(). */
struct mime_msg {
	curl_mime *mime;            /* CURLOPT_MIMEPOST */
	struct curl_slist *headers; /* CURLOPT_HTTPHEADER: the message headers */
	struct curl_slist *rcpt;    /* CURLOPT_MAIL_RCPT: "<addr>" of to, cc, bcc */
	char *mail_from;            /* CURLOPT_MAIL_FROM: "<from.email>" */
	int nrcpt;
};

/* Builds the message for one personalization.  Returns 0; -1 when the
 * stored data cannot make a valid message (err says why: do not retry);
 * -2 when memory ran out.  On failure m holds nothing. */
int mime_build(struct mime_msg *m, CURL *easy, const char *content, const char *personalization,
               const struct mime_opts *o, char *err, size_t errlen);

/* The same from trees already parsed, which it only reads.  cJSON_Parse()
 * writes a global (its error position), so a thread other than the one
 * that parses JSON elsewhere builds from trees parsed for it. */
int mime_build_json(struct mime_msg *m, CURL *easy, const cJSON *content, const cJSON *pers,
                    const struct mime_opts *o, char *err, size_t errlen);

/* Frees what mime_build() made; accepts a zeroed struct. */
void mime_msg_free(struct mime_msg *m);

/*
 * The pieces, for the unit tests.  Every char * returned is malloc'd, and
 * NULL means out of memory unless said otherwise.
 */

/* text as RFC 2047 B encoded-words of UTF-8, each at most 75 characters,
 * separated by single spaces, never splitting a UTF-8 character. */
char *mime_encode_words(const char *text);

/* "Name: value" folded at the existing blanks of value (CRLF inserted
 * before a blank, so unfolding gives value back byte for byte), lines kept
 * under MIME_LINE_SOFT where a blank allows it.  NULL also when a line
 * would still pass MIME_LINE_HARD. */
char *mime_fold(const char *name, const char *value);

/* An unstructured header (Subject, custom headers): value as it is when it
 * is printable ASCII, else as encoded-words; then folded. */
char *mime_header_text(const char *name, const char *value);

/* One mailbox: "addr", "Name <addr>", "\"Na,me\" <addr>" or
 * "=?UTF-8?B?...?= <addr>". */
char *mime_mailbox(const char *name, const char *addr);

/* JSON text with every byte >= 0x80 written as \uXXXX (a surrogate pair
 * above U+FFFF; U+FFFD for bytes that are not UTF-8). */
char *mime_json_ascii(const char *json);

/* "Name: json" folded by inserting CRLF + space between JSON tokens, never
 * inside a string.  NULL also when a string is too long to fit a line. */
char *mime_fold_json(const char *name, const char *json);

/* text with each key of subs (an object of strings) replaced by its value,
 * left to right, the longest key winning, replacements not rescanned. */
char *mime_substitute(const char *text, const cJSON *subs);

/* Global headers merged with the personalization's: a new object in which a
 * personalization header replaces a global one of the same name, whatever
 * the case.  Either may be NULL. */
cJSON *mime_headers_merge(const cJSON *global, const cJSON *pers);

/* The X-SMTPAPI JSON (ASCII, unfolded) for SendGrid's SMTP relay. */
char *mime_smtpapi(const cJSON *content, const cJSON *pers, const struct mime_opts *o);

/* Puts the route's settings into an X-SMTPAPI object x, keeping the rest
 * of it: filters clicktrack, opentrack and subscriptiontrack get
 * settings.enable from o (other settings of theirs stay), unique_args gets
 * warmup_day and warmup_route (over the application's of the same name),
 * ip_pool is set when o has one.  Returns 0; -1 when one of those members
 * is there and is not an object (err names it); -2 when memory ran out. */
int mime_smtpapi_route(cJSON *x, const struct mime_opts *o, char *err, size_t errlen);

/* text with every line ending (CRLF, CR, LF) made CRLF. */
char *mime_crlf(const char *text);

#endif
