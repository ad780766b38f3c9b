/*
 * NAME
 *	v3mail.c -- SendGrid's v3 /mail/send body rules
 *
 * SYNOPSIS
 *	#include "sender/v3mail.h"
 *
 *	struct v3mail_errors errs;
 *	if (v3mail_validate(body, &errs) < 0)
 *		text = v3mail_errors_json(&errs);
 *
 * DESCRIPTION
 *	Checks a parsed /v3/mail/send body the way SendGrid does, so that
 *	the daemon's intake rejects at the door what SendGrid would reject
 *	later (when the message is no longer the caller's to fix), and so
 *	that the fake SendGrid server is as strict as the real one.  The
 *	messages and field names follow SendGrid's own error table
 *	("personalizations.0.to.1.email", "content.0.value", ...).
 *
 *	Unknown fields are accepted, as SendGrid does; known fields must
 *	have the right JSON type.
 *
 * DIAGNOSTICS
 *	v3mail_validate() returns -1 and fills at most V3MAIL_MAX_ERRORS
 *	errors; like SendGrid it reports as many problems as it finds
 *	instead of stopping at the first one.
 */
#include "sender/v3mail.h"
#include "sender/b64.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_PERSONALIZATIONS 1000
#define MAX_RECIPIENTS       1000
#define MAX_EMAIL_LEN        320
#define MAX_CATEGORIES       10
#define MAX_CATEGORY_LEN     255
#define MAX_CUSTOM_ARGS      10000
#define MAX_REPLY_TO_LIST    1000
#define MAX_ASM_GROUPS       25
#define MAX_FILENAME_LEN     255
#define MAX_CONTENT_ID_LEN   255
/* One custom_args key or value as ASCII JSON: the X-SMTPAPI header of
 * SendGrid's SMTP relay folds only between JSON tokens, and a line may
 * not pass 998 octets. */
#define MAX_SMTPAPI_STRING 900

/* Header names SendGrid sets itself; letting a caller set them would let
 * one personalization's headers leak into another's envelope. */
static const char *const reserved_headers[] = {
    "To",
    "From",
    "Subject",
    "Reply-To",
    "Cc",
    "Bcc",
    "Content-Type",
    "Content-Transfer-Encoding",
    "DKIM-Signature",
    "Received",
    "x-sg-id",
    "x-sg-eid",
};

/* True when SendGrid refuses name in "headers" (any case). */
int v3mail_reserved_header(const char *name)
{
	for (size_t i = 0; i < sizeof reserved_headers / sizeof *reserved_headers; i++)
		if (strcasecmp(name, reserved_headers[i]) == 0)
			return 1;
	return 0;
}

/* Adds one error (kept when there is room). */
void v3mail_error(struct v3mail_errors *errs, const char *field, const char *fmt, ...)
{
	va_list ap;

	if (errs->n >= V3MAIL_MAX_ERRORS)
		return;
	snprintf(errs->e[errs->n].field, sizeof errs->e[errs->n].field, "%s", field ? field : "");
	va_start(ap, fmt);
	vsnprintf(errs->e[errs->n].message, sizeof errs->e[errs->n].message, fmt, ap);
	va_end(ap);
	/* The same problem in 1000 personalizations is one problem, not 1000. */
	for (int i = 0; i < errs->n; i++)
		if (strcmp(errs->e[i].field, errs->e[errs->n].field) == 0 &&
		    strcmp(errs->e[i].message, errs->e[errs->n].message) == 0)
			return;
	errs->n++;
}

/* True when s holds a control character (U+0000-U+001F but tab, U+007F):
 * CR and LF would forge headers, the others no relay takes in a header. */
static bool has_ctl(const char *s)
{
	for (; *s; s++)
		if (((unsigned char)*s < 0x20 && *s != '\t') || *s == 0x7f)
			return true;
	return false;
}

/* True when every byte is printable ASCII (space excluded when !space_ok). */
static bool is_ascii_printable(const char *s, bool space_ok)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c > 0x7e || c < 0x20 || (c == ' ' && !space_ok))
			return false;
	}
	return true;
}

int v3mail_header_name_ok(const char *s)
{
	return s[0] && strlen(s) <= V3MAIL_MAX_HEADER_NAME && is_ascii_printable(s, false) &&
	       !strchr(s, ':');
}

/* Length of a token of RFC 2045: printable ASCII but tspecials. */
static size_t mime_token_len(const char *s)
{
	size_t n = 0;

	while (s[n] > 0x20 && s[n] < 0x7f && !strchr("()<>@,;:\\\"/[]?=", s[n]))
		n++;
	return n;
}

int v3mail_mime_type_ok(const char *s)
{
	size_t t = mime_token_len(s), st;

	if (t == 0 || s[t] != '/' || strlen(s) > V3MAIL_MAX_MIME_TYPE)
		return 0;
	st = mime_token_len(s + t + 1);
	return st > 0 && s[t + 1 + st] == '\0';
}

/* Length of s as ASCII JSON: cJSON's escapes, and \uXXXX (two of them
 * above U+FFFF) for the rest, as the X-SMTPAPI header writes it. */
static size_t json_ascii_len(const char *s)
{
	size_t n = 2;

	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p >= 0xf0)
			n += 12;
		else if (*p >= 0xc0)
			n += 6;
		else if (*p >= 0x80)
			continue; /* counted with its lead byte */
		else if (*p == '"' || *p == '\\' || strchr("\b\f\n\r\t", *p))
			n += 2;
		else
			n += *p < 0x20 ? 6 : 1;
	}
	return n;
}

/* A syntax check only: one @, non-empty local part, a dotted domain, no
 * spaces or control bytes.  Deliverability is the receiving MTA's call. */
static bool email_ok(const char *s)
{
	const char *at = strchr(s, '@');
	const char *dom;
	size_t len = strlen(s);

	if (len == 0 || len > MAX_EMAIL_LEN || !at || at == s || strchr(at + 1, '@'))
		return false;
	for (const char *p = s; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if (c <= 0x20 || c == 0x7f || strchr("<>,;\"", c))
			return false;
	}
	dom = at + 1;
	if (!*dom || !strchr(dom, '.') || dom[0] == '.' || s[len - 1] == '.' || strstr(dom, ".."))
		return false;
	return true;
}

/* Checks one {"email","name"} object; kind names it in messages ("To", "CC"). */
static void check_address(const cJSON *a, const char *field, const char *kind,
                          struct v3mail_errors *errs)
{
	char f[128];
	const cJSON *email, *name;

	if (!cJSON_IsObject(a)) {
		v3mail_error(
		    errs, field,
		    "Each %s object must at least have an email address and may also contain a "
		    "name. e.g. {\"email\": \"example@example.com\"}",
		    kind);
		return;
	}
	snprintf(f, sizeof f, "%s.email", field);
	email = cJSON_GetObjectItemCaseSensitive(a, "email");
	if (!cJSON_IsString(email) || !email->valuestring[0]) {
		v3mail_error(
		    errs, f,
		    "Each %s object must at least have an email address and may also contain a "
		    "name. e.g. {\"email\": \"example@example.com\"}",
		    kind);
	} else if (strlen(email->valuestring) > MAX_EMAIL_LEN) {
		v3mail_error(errs, f,
		             "The %s email exceeds the maximum total length of 320 characters",
		             kind);
	} else if (!email_ok(email->valuestring)) {
		v3mail_error(errs, f, "Does not contain a valid address.");
	}
	name = cJSON_GetObjectItemCaseSensitive(a, "name");
	if (name) {
		snprintf(f, sizeof f, "%s.name", field);
		if (!cJSON_IsString(name))
			v3mail_error(errs, f, "The %s name must be a string.", kind);
		else if (has_ctl(name->valuestring))
			v3mail_error(errs, f,
			             "The %s name cannot contain CRLF or other control characters.",
			             kind);
	}
}

/* Checks a headers object: string values, no reserved or duplicate names,
 * ASCII names without spaces, no CR/LF in values. */
static void check_headers(const cJSON *h, const char *field, struct v3mail_errors *errs)
{
	const cJSON *it, *prev;

	if (!cJSON_IsObject(h)) {
		v3mail_error(errs, field, "The headers must be an object of key/value pairs.");
		return;
	}
	cJSON_ArrayForEach(it, h)
	{
		const char *k = it->string ? it->string : "";

		if (!cJSON_IsString(it)) {
			v3mail_error(errs, field, "The header values must be strings.");
			continue;
		}
		if (!v3mail_header_name_ok(k)) {
			v3mail_error(errs, field,
			             "Header keys cannot contain non-ASCII characters and empty "
			             "spaces, and are at most %d characters long.",
			             V3MAIL_MAX_HEADER_NAME);
			continue;
		}
		if (v3mail_reserved_header(k)) {
			v3mail_error(
			    errs, field,
			    "Header can not be one of the reserved keys. You provided %.64s.", k);
			continue;
		}
		if (has_ctl(it->valuestring)) {
			v3mail_error(errs, field,
			             "The header %.64s cannot contain CRLF or other control "
			             "characters.",
			             k);
			continue;
		}
		/* cJSON keeps duplicate keys; SendGrid refuses them. */
		for (prev = h->child; prev != it; prev = prev->next)
			if (prev->string && strcasecmp(prev->string, k) == 0) {
				v3mail_error(errs, field,
				             "The headers cannot contain duplicate keys.");
				break;
			}
	}
}

/* Checks that every value of an object is a string (substitutions,
 * sections, custom_args). */
static bool all_strings(const cJSON *o)
{
	const cJSON *it;

	cJSON_ArrayForEach(it, o)
	{
		if (!cJSON_IsString(it))
			return false;
	}
	return true;
}

/* True for a JSON number that is a whole, non-negative Unix time. */
static bool is_unix_time(const cJSON *n)
{
	double v;

	if (!cJSON_IsNumber(n))
		return false;
	v = n->valuedouble;
	return v >= 0 && v < 1e13 && v == (double)(long long)v;
}

/* Checks a subject value (global or per personalization). */
static void check_subject(const cJSON *s, const char *field, struct v3mail_errors *errs)
{
	if (!cJSON_IsString(s) || !s->valuestring[0])
		v3mail_error(errs, field,
		             "The subject of your email must be a string at least one character in "
		             "length.");
	else if (has_ctl(s->valuestring))
		v3mail_error(errs, field,
		             "The subject cannot contain CRLF or other control characters.");
}

/* Serialized size of the custom_args a personalization ends up with:
 * its own merged over the global ones, as SendGrid merges them. */
static size_t custom_args_size(const cJSON *global, const cJSON *local)
{
	cJSON *merged = cJSON_CreateObject();
	const cJSON *it;
	char *text;
	size_t n = 0;

	if (!merged)
		return 0;
	if (cJSON_IsObject(global))
		cJSON_ArrayForEach(it, global)
		{
			if (!cJSON_IsObject(local) ||
			    !cJSON_GetObjectItemCaseSensitive(local, it->string))
				cJSON_AddItemReferenceToObject(merged, it->string, (cJSON *)it);
		}
	if (cJSON_IsObject(local))
		cJSON_ArrayForEach(it, local)
		{
			cJSON_AddItemReferenceToObject(merged, it->string, (cJSON *)it);
		}
	text = cJSON_PrintUnformatted(merged);
	if (text)
		n = strlen(text);
	free(text);
	cJSON_Delete(merged);
	return n;
}

/* Checks a custom_args object's shape (not its size: that depends on the merge). */
static bool check_custom_args(const cJSON *c, const char *field, struct v3mail_errors *errs)
{
	const cJSON *it;

	if (!cJSON_IsObject(c)) {
		v3mail_error(errs, field, "The custom_args must be an object of key/value pairs.");
		return false;
	}
	if (!all_strings(c)) {
		v3mail_error(errs, field, "All values of custom arguments object must be strings");
		return false;
	}
	cJSON_ArrayForEach(it, c)
	{
		if (json_ascii_len(it->string) > MAX_SMTPAPI_STRING ||
		    json_ascii_len(it->valuestring) > MAX_SMTPAPI_STRING) {
			v3mail_error(errs, field,
			             "Each custom_args key and value must fit one line of the "
			             "X-SMTPAPI header: at most %d characters as ASCII JSON.",
			             MAX_SMTPAPI_STRING);
			return false;
		}
	}
	return true;
}

/* Finds an address already used in one personalization; SendGrid refuses
 * to mail the same person twice from one envelope. */
static const char *first_duplicate(const cJSON *lists[3], const cJSON *email)
{
	for (int l = 0; l < 3; l++) {
		const cJSON *a;

		cJSON_ArrayForEach(a, lists[l])
		{
			const cJSON *e = cJSON_GetObjectItemCaseSensitive(a, "email");

			if (e == email)
				return NULL;
			if (cJSON_IsString(e) &&
			    strcasecmp(e->valuestring, email->valuestring) == 0)
				return email->valuestring;
		}
	}
	return NULL;
}

/* Checks one recipient list (to, cc or bcc) of personalization i. */
static int check_recipients(const cJSON *list, int i, const char *key, const char *kind,
                            const cJSON *lists[3], struct v3mail_errors *errs)
{
	char f[128];
	const cJSON *a;
	int j = 0, n = 0;

	snprintf(f, sizeof f, "personalizations.%d.%s", i, key);
	if (!cJSON_IsArray(list) || cJSON_GetArraySize(list) == 0) {
		if (strcmp(key, "to") == 0)
			v3mail_error(
			    errs, f,
			    "The to parameter is required for all personalization objects.");
		else
			v3mail_error(
			    errs, f,
			    "The %s array, when used, must at least have an email parameter "
			    "with a valid email address.",
			    key);
		return 0;
	}
	cJSON_ArrayForEach(a, list)
	{
		const cJSON *e;
		const char *dup;
		char af[128];

		snprintf(af, sizeof af, "personalizations.%d.%s.%d", i, key, j++);
		check_address(a, af, kind, errs);
		n++;
		e = cJSON_GetObjectItemCaseSensitive(a, "email");
		if (cJSON_IsString(e) && (dup = first_duplicate(lists, e)))
			v3mail_error(
			    errs, af,
			    "Each email address in the personalization block should be unique "
			    "between to, cc, and bcc. We found the first duplicate instance of "
			    "[%.64s] in the %s field.",
			    dup, f);
	}
	return n;
}

/* True when some string value of the object o contains text. */
static bool any_value_contains(const cJSON *o, const char *text)
{
	const cJSON *it;

	if (!cJSON_IsObject(o))
		return false;
	cJSON_ArrayForEach(it, o)
	{
		if (cJSON_IsString(it) && strstr(it->valuestring, text))
			return true;
	}
	return false;
}

/* Checks the substitutions of personalization i that land in a header
 * (the subject, a custom header value): they must not bring in a control
 * character the header itself could not hold. */
static void check_header_substitutions(const cJSON *body, const cJSON *p, const cJSON *subs, int i,
                                       struct v3mail_errors *errs)
{
	const cJSON *subject = cJSON_GetObjectItemCaseSensitive(p, "subject"), *s;

	if (!subject)
		subject = cJSON_GetObjectItemCaseSensitive(body, "subject");
	cJSON_ArrayForEach(s, subs)
	{
		char f[128];

		if (!s->string || !s->string[0] || !has_ctl(s->valuestring))
			continue;
		if ((cJSON_IsString(subject) && strstr(subject->valuestring, s->string)) ||
		    any_value_contains(cJSON_GetObjectItemCaseSensitive(body, "headers"),
		                       s->string) ||
		    any_value_contains(cJSON_GetObjectItemCaseSensitive(p, "headers"), s->string)) {
			snprintf(f, sizeof f, "personalizations.%d.substitutions.%s", i, s->string);
			v3mail_error(errs, f,
			             "The substitution %.64s is used in the subject or a header, "
			             "which cannot contain CRLF or other control characters.",
			             s->string);
		}
	}
}

/* Checks personalizations[i]; returns its recipient count. */
static int check_personalization(const cJSON *p, int i, const cJSON *body, bool need_subject,
                                 struct v3mail_errors *errs)
{
	const cJSON *to, *cc, *bcc, *it, *lists[3];
	char f[128];
	int n = 0;

	snprintf(f, sizeof f, "personalizations.%d", i);
	if (!cJSON_IsObject(p)) {
		v3mail_error(errs, f, "Each personalization must be an object.");
		return 0;
	}
	to = cJSON_GetObjectItemCaseSensitive(p, "to");
	cc = cJSON_GetObjectItemCaseSensitive(p, "cc");
	bcc = cJSON_GetObjectItemCaseSensitive(p, "bcc");
	lists[0] = cJSON_IsArray(to) ? to : NULL;
	lists[1] = cJSON_IsArray(cc) ? cc : NULL;
	lists[2] = cJSON_IsArray(bcc) ? bcc : NULL;
	n += check_recipients(to, i, "to", "To", lists, errs);
	if (cc)
		n += check_recipients(cc, i, "cc", "CC", lists, errs);
	if (bcc)
		n += check_recipients(bcc, i, "bcc", "BCC", lists, errs);

	if ((it = cJSON_GetObjectItemCaseSensitive(p, "from"))) {
		snprintf(f, sizeof f, "personalizations.%d.from", i);
		check_address(it, f, "From", errs);
	}
	snprintf(f, sizeof f, "personalizations.%d.subject", i);
	if ((it = cJSON_GetObjectItemCaseSensitive(p, "subject")))
		check_subject(it, f, errs);
	else if (need_subject)
		v3mail_error(
		    errs, "subject",
		    "The subject is required. You can get around this requirement if you use "
		    "a template with a subject defined or if every personalization has a "
		    "subject defined.");
	if ((it = cJSON_GetObjectItemCaseSensitive(p, "headers"))) {
		snprintf(f, sizeof f, "personalizations.%d.headers", i);
		check_headers(it, f, errs);
	}
	if ((it = cJSON_GetObjectItemCaseSensitive(p, "substitutions"))) {
		snprintf(f, sizeof f, "personalizations.%d.substitutions", i);
		if (!cJSON_IsObject(it) || !all_strings(it))
			v3mail_error(
			    errs, f,
			    "The substitution values must be an object of key/value pairs, "
			    "where the values are all strings.");
		else
			check_header_substitutions(body, p, it, i, errs);
	}
	if ((it = cJSON_GetObjectItemCaseSensitive(p, "dynamic_template_data")) &&
	    !cJSON_IsObject(it)) {
		snprintf(f, sizeof f, "personalizations.%d.dynamic_template_data", i);
		v3mail_error(errs, f, "The dynamic_template_data must be an object.");
	}
	it = cJSON_GetObjectItemCaseSensitive(p, "custom_args");
	snprintf(f, sizeof f, "personalizations.%d.custom_args", i);
	if (!it || check_custom_args(it, f, errs)) {
		const cJSON *g = cJSON_GetObjectItemCaseSensitive(body, "custom_args");

		if (custom_args_size(cJSON_IsObject(g) && all_strings(g) ? g : NULL, it) >
		    MAX_CUSTOM_ARGS)
			v3mail_error(errs, it ? f : "custom_args",
			             "The combined size of both global and personalization custom "
			             "arguments may not exceed 10,000 bytes per personalization.");
	}
	if ((it = cJSON_GetObjectItemCaseSensitive(p, "send_at")) && !is_unix_time(it)) {
		snprintf(f, sizeof f, "personalizations.%d.send_at", i);
		v3mail_error(errs, f,
		             "The send_at parameter is expecting a Unix timestamp as an integer.");
	}
	return n;
}

/* Checks the personalizations array and the recipient total. */
static void check_personalizations(const cJSON *body, bool need_subject, struct v3mail_errors *errs)
{
	const cJSON *ps = cJSON_GetObjectItemCaseSensitive(body, "personalizations");
	const cJSON *p;
	int n, i = 0, recipients = 0;

	if (!cJSON_IsArray(ps) || (n = cJSON_GetArraySize(ps)) == 0) {
		v3mail_error(errs, "personalizations",
		             "The personalizations field is required and must have at least one "
		             "personalization.");
		return;
	}
	if (n > MAX_PERSONALIZATIONS) {
		v3mail_error(
		    errs, "personalizations",
		    "The personalization block is limited to 1000 personalizations per API "
		    "request. You have provided %d personalizations. Please consider "
		    "splitting this into multiple requests and resending your request.",
		    n);
		return;
	}
	cJSON_ArrayForEach(p, ps)
	{
		recipients += check_personalization(p, i++, body, need_subject, errs);
	}
	if (recipients > MAX_RECIPIENTS)
		v3mail_error(
		    errs, "personalizations",
		    "There is a limit of 1000 total recipients (to + cc + bcc) per request.");
}

/* Checks content[]: items {type,value}, text/plain then text/html first,
 * each at most once, other types after them. */
static void check_content(const cJSON *body, bool have_template, struct v3mail_errors *errs)
{
	const cJSON *c = cJSON_GetObjectItemCaseSensitive(body, "content");
	const cJSON *it;
	int i = 0, plain = 0, html = 0;
	bool order_ok = true, other_seen = false;

	if (!c) {
		if (!have_template)
			v3mail_error(errs, "content",
			             "The content param is required unless you are using a "
			             "transactional template and have defined a template_id.");
		return;
	}
	if (!cJSON_IsArray(c) || cJSON_GetArraySize(c) == 0) {
		v3mail_error(
		    errs, "content",
		    "There must be at least one defined content block. We typically suggest "
		    "both text/plain and text/html blocks are included, but only one block is "
		    "required.");
		return;
	}
	cJSON_ArrayForEach(it, c)
	{
		const cJSON *t = cJSON_GetObjectItemCaseSensitive(it, "type");
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(it, "value");
		char f[128];

		snprintf(f, sizeof f, "content.%d.type", i);
		if (!cJSON_IsObject(it) || !t) {
			v3mail_error(errs, f,
			             "A content type is required, this tells email clients how to "
			             "display the email.");
		} else if (!cJSON_IsString(t) || !t->valuestring[0]) {
			v3mail_error(
			    errs, f,
			    "Your content type must be a string with length of at least one "
			    "character.");
		} else if (strchr(t->valuestring, ';') || has_ctl(t->valuestring)) {
			v3mail_error(errs, f, "Cannot contain ';', or CRLF characters.");
		} else if (!v3mail_mime_type_ok(t->valuestring)) {
			v3mail_error(errs, f,
			             "The content type must be a MIME type, type/subtype such as "
			             "text/plain, of at most %d characters.",
			             V3MAIL_MAX_MIME_TYPE);
		} else if (strcasecmp(t->valuestring, "text/plain") == 0) {
			if (plain++ || html || other_seen)
				order_ok = false;
		} else if (strcasecmp(t->valuestring, "text/html") == 0) {
			if (html++ || other_seen)
				order_ok = false;
		} else {
			other_seen = true;
		}
		snprintf(f, sizeof f, "content.%d.value", i);
		if (cJSON_IsObject(it) && !v)
			v3mail_error(
			    errs, f,
			    "A content value is required, this is the content of the email "
			    "you are sending.");
		else if (cJSON_IsObject(it) && (!cJSON_IsString(v) || !v->valuestring[0]))
			v3mail_error(errs, f,
			             "The content value must be a string at least one character in "
			             "length.");
		i++;
	}
	if (!order_ok)
		v3mail_error(
		    errs, "content",
		    "Following RFC 1341, section 7.2, if either text/html or text/plain are to "
		    "be sent in your email: text/plain needs to be first, followed by "
		    "text/html, followed by any other content.");
}

/* True for standard base64 text, padded (line breaks allowed, as MIME
 * writers add them; no blanks). */
static bool base64_ok(const char *s)
{
	unsigned char *bytes;
	long n = b64_decode_alloc(s, strlen(s), &bytes, B64_BREAKS_ONLY);

	free(bytes);
	return n > 0;
}

/* Checks attachments[]: content (base64) and filename required. */
static void check_attachments(const cJSON *a, struct v3mail_errors *errs)
{
	const cJSON *it;
	int i = 0;

	if (!cJSON_IsArray(a)) {
		v3mail_error(errs, "attachments", "The attachments must be an array of objects.");
		return;
	}
	cJSON_ArrayForEach(it, a)
	{
		const cJSON *v;
		char f[128];

		if (!cJSON_IsObject(it)) {
			snprintf(f, sizeof f, "attachments.%d", i++);
			v3mail_error(errs, f, "Each attachment must be an object.");
			continue;
		}
		snprintf(f, sizeof f, "attachments.%d.content", i);
		v = cJSON_GetObjectItemCaseSensitive(it, "content");
		if (!cJSON_IsString(v) || !v->valuestring[0])
			v3mail_error(
			    errs, f,
			    "The attachment content must be a string at least one character "
			    "in length.");
		else if (!base64_ok(v->valuestring))
			v3mail_error(errs, f, "The attachment content must be base64 encoded.");
		snprintf(f, sizeof f, "attachments.%d.filename", i);
		v = cJSON_GetObjectItemCaseSensitive(it, "filename");
		if (!v)
			v3mail_error(errs, f, "filename is required.");
		else if (!cJSON_IsString(v) || !v->valuestring[0])
			v3mail_error(errs, f, "The filename of your attachment must be a string.");
		else if (has_ctl(v->valuestring))
			v3mail_error(errs, f,
			             "The filename of your attachment cannot contain CRLF or other "
			             "control characters.");
		else if (strlen(v->valuestring) > MAX_FILENAME_LEN)
			v3mail_error(
			    errs, f,
			    "The filename of your attachment can be at most %d bytes long.",
			    MAX_FILENAME_LEN);
		snprintf(f, sizeof f, "attachments.%d.type", i);
		if ((v = cJSON_GetObjectItemCaseSensitive(it, "type"))) {
			if (!cJSON_IsString(v) || !v->valuestring[0])
				v3mail_error(
				    errs, f,
				    "The attachment type must be a string and at least one "
				    "character in length.");
			else if (strchr(v->valuestring, ';') || has_ctl(v->valuestring))
				v3mail_error(errs, f,
				             "The type cannot contain ';', or CRLF characters.");
			else if (!v3mail_mime_type_ok(v->valuestring))
				v3mail_error(
				    errs, f,
				    "The attachment type must be a MIME type, type/subtype "
				    "such as application/pdf, of at most %d characters.",
				    V3MAIL_MAX_MIME_TYPE);
		}
		snprintf(f, sizeof f, "attachments.%d.disposition", i);
		if ((v = cJSON_GetObjectItemCaseSensitive(it, "disposition")) &&
		    (!cJSON_IsString(v) || (strcmp(v->valuestring, "inline") != 0 &&
		                            strcmp(v->valuestring, "attachment") != 0)))
			v3mail_error(
			    errs, f,
			    "The disposition of your attachment can be either \"inline\" or "
			    "\"attachment\".");
		snprintf(f, sizeof f, "attachments.%d.content_id", i);
		if ((v = cJSON_GetObjectItemCaseSensitive(it, "content_id"))) {
			if (!cJSON_IsString(v))
				v3mail_error(errs, f,
				             "The content ID of your attachment must be a string.");
			else if (has_ctl(v->valuestring) || strpbrk(v->valuestring, " <>") ||
			         strlen(v->valuestring) > MAX_CONTENT_ID_LEN)
				v3mail_error(
				    errs, f,
				    "The content ID of your attachment cannot contain CRLF, "
				    "control characters, spaces, '<' or '>', and is at most "
				    "%d characters long.",
				    MAX_CONTENT_ID_LEN);
		}
		i++;
	}
}

/* Checks categories[]: at most 10 unique ASCII strings of at most 255 bytes. */
static void check_categories(const cJSON *c, struct v3mail_errors *errs)
{
	const cJSON *it, *prev;
	int n;

	if (!cJSON_IsArray(c)) {
		v3mail_error(errs, "categories", "Categories must be an array of strings.");
		return;
	}
	if ((n = cJSON_GetArraySize(c)) > MAX_CATEGORIES) {
		v3mail_error(errs, "categories",
		             "There is a limit of 10 categories for each email that is sent. You "
		             "provided %d categories.",
		             n);
		return;
	}
	cJSON_ArrayForEach(it, c)
	{
		if (!cJSON_IsString(it)) {
			v3mail_error(errs, "categories", "Categories must be an array of strings.");
			return;
		}
		if (strlen(it->valuestring) > MAX_CATEGORY_LEN) {
			v3mail_error(
			    errs, "categories",
			    "Each category must not be longer than 255 characters. %.32s... "
			    "exceeds this limit",
			    it->valuestring);
			continue;
		}
		if (!is_ascii_printable(it->valuestring, true)) {
			v3mail_error(errs, "categories",
			             "Categories can not contain non-ASCII characters.");
			continue;
		}
		for (prev = c->child; prev != it; prev = prev->next)
			if (cJSON_IsString(prev) &&
			    strcmp(prev->valuestring, it->valuestring) == 0) {
				v3mail_error(errs, "categories",
				             "The categories must be a unique list, and you have "
				             "included %.64s more than once.",
				             it->valuestring);
				break;
			}
	}
}

/* Checks reply_to and reply_to_list, which exclude each other. */
static void check_reply_to(const cJSON *body, struct v3mail_errors *errs)
{
	const cJSON *r = cJSON_GetObjectItemCaseSensitive(body, "reply_to");
	const cJSON *l = cJSON_GetObjectItemCaseSensitive(body, "reply_to_list");
	const cJSON *it, *prev;
	int i = 0;

	if (r)
		check_address(r, "reply_to", "Reply-To", errs);
	if (!l)
		return;
	if (r) {
		v3mail_error(errs, "reply_to_list",
		             "The reply_to and reply_to_list properties are mutually exclusive.");
		return;
	}
	if (!cJSON_IsArray(l) || cJSON_GetArraySize(l) == 0 ||
	    cJSON_GetArraySize(l) > MAX_REPLY_TO_LIST) {
		v3mail_error(errs, "reply_to_list",
		             "The reply_to_list must be an array of 1 to 1000 email objects.");
		return;
	}
	cJSON_ArrayForEach(it, l)
	{
		char f[128];
		const cJSON *e = cJSON_GetObjectItemCaseSensitive(it, "email");

		snprintf(f, sizeof f, "reply_to_list.%d", i++);
		check_address(it, f, "Reply-To", errs);
		if (!cJSON_IsString(e))
			continue;
		for (prev = l->child; prev != it; prev = prev->next) {
			const cJSON *pe = cJSON_GetObjectItemCaseSensitive(prev, "email");

			if (cJSON_IsString(pe) &&
			    strcasecmp(pe->valuestring, e->valuestring) == 0) {
				v3mail_error(
				    errs, f,
				    "Each email address in the reply_to_list should be unique.");
				break;
			}
		}
	}
}

/* Checks asm: group_id integer required, groups_to_display up to 25 integers. */
static void check_asm(const cJSON *a, struct v3mail_errors *errs)
{
	const cJSON *g, *it;

	if (!cJSON_IsObject(a)) {
		v3mail_error(errs, "asm", "The asm must be an object.");
		return;
	}
	g = cJSON_GetObjectItemCaseSensitive(a, "group_id");
	if (!is_unix_time(g))
		v3mail_error(errs, "asm.group_id", "The ASM group ID must be an integer.");
	g = cJSON_GetObjectItemCaseSensitive(a, "groups_to_display");
	if (!g)
		return;
	if (!cJSON_IsArray(g)) {
		v3mail_error(errs, "asm.groups_to_display",
		             "The ASM Group IDs to display must be an array of integers.");
		return;
	}
	if (cJSON_GetArraySize(g) > MAX_ASM_GROUPS) {
		v3mail_error(errs, "asm.groups_to_display",
		             "There is a limit of 25 unsubscribe groups that can be displayed to a "
		             "user at a time.");
		return;
	}
	cJSON_ArrayForEach(it, g)
	{
		if (!is_unix_time(it)) {
			v3mail_error(errs, "asm.groups_to_display",
			             "The ASM Group IDs to display must be an array of integers.");
			return;
		}
	}
}

/* Checks mail_settings / tracking_settings: objects of objects whose
 * "enable" (and enable_text) members are booleans. */
static void check_settings(const cJSON *s, const char *name, struct v3mail_errors *errs)
{
	const cJSON *it;

	if (!cJSON_IsObject(s)) {
		v3mail_error(errs, name, "The %s must be an object.", name);
		return;
	}
	cJSON_ArrayForEach(it, s)
	{
		char f[128];
		const cJSON *e;

		snprintf(f, sizeof f, "%s.%s", name, it->string ? it->string : "");
		if (!cJSON_IsObject(it)) {
			v3mail_error(errs, f, "The %s setting must be an object.", f);
			continue;
		}
		if ((e = cJSON_GetObjectItemCaseSensitive(it, "enable")) && !cJSON_IsBool(e)) {
			snprintf(f, sizeof f, "%s.%s.enable", name, it->string ? it->string : "");
			v3mail_error(errs, f, "The %s param should be a boolean value.", f);
		}
		if ((e = cJSON_GetObjectItemCaseSensitive(it, "enable_text")) && !cJSON_IsBool(e)) {
			snprintf(f, sizeof f, "%s.%s.enable_text", name,
			         it->string ? it->string : "");
			v3mail_error(errs, f, "The %s param should be a boolean value.", f);
		}
	}
}

/* Checks the top-level fields that are plain strings. */
static void check_strings(const cJSON *body, bool *have_template, struct v3mail_errors *errs)
{
	const cJSON *t;

	*have_template = false;
	if ((t = cJSON_GetObjectItemCaseSensitive(body, "template_id"))) {
		if (!cJSON_IsString(t) || !t->valuestring[0])
			v3mail_error(errs, "template_id", "The template ID must be a string.");
		else
			*have_template = true;
	}
	if ((t = cJSON_GetObjectItemCaseSensitive(body, "batch_id")) && !cJSON_IsString(t))
		v3mail_error(errs, "batch_id", "The batch_id must be a string.");
	if ((t = cJSON_GetObjectItemCaseSensitive(body, "ip_pool_name")) &&
	    (!cJSON_IsString(t) || strlen(t->valuestring) < 2 || strlen(t->valuestring) > 64))
		v3mail_error(errs, "ip_pool_name",
		             "The name of your IP pool must be a string of 2 to 64 characters.");
}

/* Validates a parsed body. Returns 0, or -1 with the problems in *errs. */
int v3mail_validate(const cJSON *body, struct v3mail_errors *errs)
{
	const cJSON *it, *subject, *from;
	bool have_template, need_subject;

	errs->n = 0;
	if (!cJSON_IsObject(body)) {
		v3mail_error(errs, "", "The request body must be a JSON object.");
		return -1;
	}
	check_strings(body, &have_template, errs);

	from = cJSON_GetObjectItemCaseSensitive(body, "from");
	if (!from)
		v3mail_error(
		    errs, "from",
		    "The from object must be provided for every email send. It is an object "
		    "that requires the email parameter, but may also contain a name "
		    "parameter.");
	else
		check_address(from, "from", "From", errs);

	subject = cJSON_GetObjectItemCaseSensitive(body, "subject");
	if (subject)
		check_subject(subject, "subject", errs);
	need_subject = !subject && !have_template;
	check_personalizations(body, need_subject, errs);
	check_content(body, have_template, errs);
	check_reply_to(body, errs);

	if ((it = cJSON_GetObjectItemCaseSensitive(body, "headers")))
		check_headers(it, "headers", errs);
	if ((it = cJSON_GetObjectItemCaseSensitive(body, "attachments")))
		check_attachments(it, errs);
	if ((it = cJSON_GetObjectItemCaseSensitive(body, "categories")))
		check_categories(it, errs);
	if ((it = cJSON_GetObjectItemCaseSensitive(body, "custom_args")))
		check_custom_args(it, "custom_args", errs);
	if ((it = cJSON_GetObjectItemCaseSensitive(body, "sections")) &&
	    (!cJSON_IsObject(it) || !all_strings(it)))
		v3mail_error(errs, "sections", "The section values must be strings.");
	if ((it = cJSON_GetObjectItemCaseSensitive(body, "send_at")) && !is_unix_time(it))
		v3mail_error(errs, "send_at",
		             "The send_at parameter is expecting a Unix timestamp as an integer.");
	if ((it = cJSON_GetObjectItemCaseSensitive(body, "asm")))
		check_asm(it, errs);
	if ((it = cJSON_GetObjectItemCaseSensitive(body, "mail_settings")))
		check_settings(it, "mail_settings", errs);
	if ((it = cJSON_GetObjectItemCaseSensitive(body, "tracking_settings")))
		check_settings(it, "tracking_settings", errs);
	return errs->n ? -1 : 0;
}

/* SendGrid's error body; "" fields become null. */
char *v3mail_errors_json(const struct v3mail_errors *errs)
{
	cJSON *root = cJSON_CreateObject();
	cJSON *arr = cJSON_AddArrayToObject(root, "errors");
	char *text;

	if (!root || !arr) {
		cJSON_Delete(root);
		return NULL;
	}
	for (int i = 0; i < errs->n && i < V3MAIL_MAX_ERRORS; i++) {
		cJSON *e = cJSON_CreateObject();

		if (!e)
			break;
		cJSON_AddStringToObject(e, "message", errs->e[i].message);
		if (errs->e[i].field[0])
			cJSON_AddStringToObject(e, "field", errs->e[i].field);
		else
			cJSON_AddNullToObject(e, "field");
		cJSON_AddNullToObject(e, "help");
		cJSON_AddItemToArray(arr, e);
	}
	text = cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	return text;
}

/* The lower-cased domain of p.to[0].email; the ISP rules key on it. */
int v3mail_first_domain(const cJSON *p, char *buf, size_t len)
{
	const cJSON *to = cJSON_GetObjectItemCaseSensitive(p, "to");
	const cJSON *e;
	const char *at;
	size_t n;

	if (!buf || len == 0 || !cJSON_IsArray(to) || !to->child)
		return -1;
	e = cJSON_GetObjectItemCaseSensitive(to->child, "email");
	if (!cJSON_IsString(e) || !(at = strrchr(e->valuestring, '@')) || !at[1])
		return -1;
	n = strlen(at + 1);
	if (n >= len)
		return -1;
	for (size_t i = 0; i < n; i++)
		buf[i] = (char)tolower((unsigned char)at[1 + i]);
	buf[n] = '\0';
	return 0;
}

int v3mail_first_email(const cJSON *p, char *buf, size_t len)
{
	const cJSON *to = cJSON_GetObjectItemCaseSensitive(p, "to");
	const cJSON *e;
	size_t n;

	if (!buf || len == 0 || !cJSON_IsArray(to) || !to->child)
		return -1;
	e = cJSON_GetObjectItemCaseSensitive(to->child, "email");
	if (!cJSON_IsString(e) || (n = strlen(e->valuestring)) == 0 || n >= len)
		return -1;
	for (size_t i = 0; i < n; i++)
		buf[i] = (char)tolower((unsigned char)e->valuestring[i]);
	buf[n] = '\0';
	return 0;
}

/* The string value of key in the object o, NULL when none; with nocase
 * the key is compared without case (header names). */
static const char *string_of(const cJSON *o, const char *key, int nocase)
{
	const cJSON *it;

	if (!cJSON_IsObject(o))
		return NULL;
	cJSON_ArrayForEach(it, o)
	{
		if (it->string && cJSON_IsString(it) &&
		    (nocase ? strcasecmp(it->string, key) : strcmp(it->string, key)) == 0)
			return it->valuestring;
	}
	return NULL;
}

const char *v3mail_engaged_mark(const cJSON *body, const cJSON *p)
{
	const char *v;

	if ((v = string_of(cJSON_GetObjectItemCaseSensitive(p, "custom_args"), "warmup_engaged",
	                   0)))
		return v;
	if ((v = string_of(cJSON_GetObjectItemCaseSensitive(p, "headers"), "X-Warmup-Engaged", 1)))
		return v;
	if ((v = string_of(cJSON_GetObjectItemCaseSensitive(body, "custom_args"), "warmup_engaged",
	                   0)))
		return v;
	return string_of(cJSON_GetObjectItemCaseSensitive(body, "headers"), "X-Warmup-Engaged", 1);
}

int v3mail_setting(const cJSON *body, const char *group, const char *name)
{
	const cJSON *g = cJSON_GetObjectItemCaseSensitive(body, group);
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(
	    cJSON_GetObjectItemCaseSensitive(g, name), "enable");

	return cJSON_IsBool(e) ? cJSON_IsTrue(e) : -1;
}

int v3mail_send_at(const cJSON *body, const cJSON *p, long long *t)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(p, "send_at");

	if (!is_unix_time(it))
		it = cJSON_GetObjectItemCaseSensitive(body, "send_at");
	if (!is_unix_time(it))
		return 0;
	*t = (long long)it->valuedouble;
	return 1;
}
