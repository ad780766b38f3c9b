/*
 * NAME
 *	rawmail.c -- a message taken over SMTP as a SendGrid v3 body
 *
 * SYNOPSIS
 *	#include "sender/rawmail.h"
 *
 *	char *json, err[256];
 *	if (rawmail_to_v3(raw, len, &json, err, sizeof err) < 0)
 *		refuse(err);
 *
 * DESCRIPTION
 *	GMime parses the message; this file only decides where each piece
 *	goes in SendGrid's v3 body:
 *
 *	    From (first mailbox)        from {email, name}
 *	    Reply-To                    reply_to, or reply_to_list for several
 *	    Subject (RFC 2047 decoded)  subject (" " when missing or empty:
 *	                                SendGrid refuses "")
 *	    body text/plain, text/html  content[], plain first, UTF-8, LF
 *	    other parts                 attachments[] (base64 by OpenSSL)
 *	    related parts with an id    attachments[] inline with content_id
 *	    Message-ID, In-Reply-To,    headers (first of each name, unfolded
 *	    References, List-*, ...,    as written; names SendGrid reserves
 *	    X-* but X-SMTPAPI           never; 8-bit text as encoded-words)
 *	    X-SMTPAPI                   tracking_settings, mail_settings,
 *	                                categories, custom_args, asm,
 *	                                ip_pool_name, send_at
 *
 *	To and Cc are not recipients here (the envelope is) and cannot be
 *	kept: SendGrid reserves both header names and writes To from the
 *	personalization.
 *
 *	The body is found by walking the structure: in multipart/alternative
 *	the first inline text/plain and the first inline text/html without a
 *	file name are the content; in multipart/mixed the first part that
 *	holds such a text is the body, and later text parts are attachments
 *	(they follow the body, they are no alternative to it); in
 *	multipart/related the root (the "start" parameter, else the first
 *	part) is walked for the body and the other parts become inline
 *	attachments.  Everything else is an attachment.  Text is decoded from its transfer encoding,
 *	converted from its charset (Shift_JIS read as its Windows superset
 *	CP932, which is what Japanese mailers write; GB2312 as GB18030), and
 *	8-bit text without a charset is read as UTF-8, else CP932, else
 *	ISO-8859-1, whichever fits (GMime's fallback rule).
 *
 *	Refused, so that the intake answers with a permanent error instead
 *	of sending something else than what the application wrote: signed
 *	or encrypted MIME (multipart/signed, multipart/encrypted, S/MIME
 *	application/pkcs7-mime: the signature would break, or the content
 *	is unreadable), message/partial and message/external-body, a body
 *	without any text/plain or text/html part, structures nested deeper
 *	than RAWMAIL_MAX_DEPTH, and malformed X-SMTPAPI JSON.
 *
 * DIAGNOSTICS
 *	err names the header or part first: "From: missing",
 *	"X-SMTPAPI: malformed JSON near byte 40", "multipart/signed: ...".
 *	A body that v3mail_validate() would still refuse is refused here
 *	with its message ("From: Does not contain a valid address.").
 */
#include "sender/rawmail.h"
#include "sender/b64.h"

#include "sender/v3mail.h"

#include <gmime/gmime.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define RAWMAIL_MAX_DEPTH 32 /* MIME nesting; real mail stays under 8 */

/* Header names kept besides X-*: threading, unsubscribing, list and
 * feedback-loop headers that mailbox providers read. */
static const char *const kept_headers[] = {
    "Message-ID",   "In-Reply-To", "References",     "List-Unsubscribe", "List-Unsubscribe-Post",
    "List-Id",      "List-Help",   "List-Subscribe", "List-Post",        "List-Owner",
    "List-Archive", "Feedback-ID", "Auto-Submitted", "Precedence",
};

/* X-SMTPAPI filters with a v3 counterpart: filter, v3 settings object, v3 name. */
static const struct {
	const char *filter, *group, *setting;
} filter_map[] = {
    {"clicktrack", "tracking_settings", "click_tracking"},
    {"opentrack", "tracking_settings", "open_tracking"},
    {"subscriptiontrack", "tracking_settings", "subscription_tracking"},
    {"bypass_list_management", "mail_settings", "bypass_list_management"},
};

/* What a conversion carries along. */
struct rm_ctx {
	cJSON *root;
	char *plain, *html; /* the body, UTF-8, g_malloc'd */
	int texts;          /* body text parts taken (even empty ones) */
	cJSON *attachments;
	GPtrArray *b64; /* base64 texts the tree references, freed last */
	int nparts;     /* for the names of parts that have none */
	GPtrArray *smtpapi; /* the X-SMTPAPI headers' texts, unfolded, in order */
	char *err;
	size_t errlen;
	bool failed;
};

static GMimeParserOptions *rm_options;
static pthread_once_t rm_once = PTHREAD_ONCE_INIT;

/* GMime's tables, once per process; never shut down (the daemon keeps them). */
static void rm_init(void)
{
	static const char *fallback[] = {"utf-8", "cp932", "iso-8859-1", NULL};

	g_mime_init();
	rm_options = g_mime_parser_options_new();
	g_mime_parser_options_set_fallback_charsets(rm_options, fallback);
}

/* Records the first reason; later ones would only be consequences. */
static __attribute__((format(printf, 2, 3))) int fail(struct rm_ctx *c, const char *fmt, ...)
{
	va_list ap;

	if (c->failed)
		return -1;
	c->failed = true;
	va_start(ap, fmt);
	vsnprintf(c->err, c->errlen, fmt, ap);
	va_end(ap);
	return -1;
}

/* 1 when the n bytes at s are all 7-bit (so valid UTF-8): eight at a time. */
static bool ascii_only(const char *s, size_t n)
{
	uint64_t w, any = 0;
	size_t i = 0;

	for (; i + 8 <= n; i += 8) {
		memcpy(&w, s + i, 8);
		any |= w;
	}
	for (; i < n; i++)
		any |= (unsigned char)s[i];
	return (any & UINT64_C(0x8080808080808080)) == 0;
}

/* s made fit for a JSON value: NULs dropped, valid UTF-8 (8-bit text
 * decoded by GMime's fallback rule), controls but TAB as spaces when oneline.
 * Takes s (g_malloc'd); returns g_malloc'd text. */
static char *utf8_clean(char *s, size_t len, bool oneline)
{
	size_t j = len;
	char *t;

	if (memchr(s, '\0', len)) {
		j = 0;
		for (size_t i = 0; i < len; i++)
			if (s[i])
				s[j++] = s[i];
	}
	s[j] = '\0';
	if (!ascii_only(s, j) && !g_utf8_validate(s, (gssize)j, NULL)) {
		t = g_mime_utils_decode_8bit(rm_options, s, j);
		g_free(s);
		s = t;
		if (!g_utf8_validate(s, -1, NULL)) {
			t = g_utf8_make_valid(s, -1);
			g_free(s);
			s = t;
		}
	}
	/* A header value holds no line break and no control but TAB. */
	if (oneline)
		for (t = s; *t; t++)
			if ((unsigned char)*t < 0x20 && *t != '\t')
				*t = ' ';
	return s;
}

/* A copy of s made clean (see utf8_clean). */
static char *clean_dup(const char *s, bool oneline)
{
	return utf8_clean(g_strdup(s ? s : ""), s ? strlen(s) : 0, oneline);
}

/* The iconv name to read a declared charset with: supersets where
 * mailers write the superset under the old name. */
static const char *charset_for(const char *cs)
{
	static const char *const sjis[] = {"shift_jis", "shift-jis",  "sjis",       "x-sjis",
	                                   "ms_kanji",  "csshiftjis", "windows-31j"};

	for (size_t i = 0; i < G_N_ELEMENTS(sjis); i++)
		if (g_ascii_strcasecmp(cs, sjis[i]) == 0)
			return "CP932";
	if (g_ascii_strcasecmp(cs, "gb2312") == 0 || g_ascii_strcasecmp(cs, "gbk") == 0)
		return "GB18030";
	return cs;
}

/* The part's content, transfer-decoded, through the given filters (NULL
 * ends the list).  Returns a GByteArray the caller frees. */
static GByteArray *part_bytes(GMimePart *p, GMimeFilter *f1, GMimeFilter *f2)
{
	GMimeDataWrapper *w = g_mime_part_get_content(p);
	GMimeStream *mem = g_mime_stream_mem_new();
	GMimeStream *out = mem;
	GByteArray *bytes;

	g_mime_stream_mem_set_owner(GMIME_STREAM_MEM(mem), FALSE);
	if (f1 || f2) {
		out = g_mime_stream_filter_new(mem);
		if (f1)
			g_mime_stream_filter_add(GMIME_STREAM_FILTER(out), f1);
		if (f2)
			g_mime_stream_filter_add(GMIME_STREAM_FILTER(out), f2);
	}
	if (w)
		g_mime_data_wrapper_write_to_stream(w, out);
	g_mime_stream_flush(out);
	bytes = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem));
	if (out != mem)
		g_object_unref(out);
	g_object_unref(mem);
	return bytes;
}

/* A part's text as it lies in the message, when it has no transfer
 * encoding to undo (7bit, 8bit, binary or none said): CRLF made LF, as
 * GMime's dos2unix filter does, without a filter.  NULL otherwise. */
static GByteArray *part_bytes_plain(GMimePart *p)
{
	GMimeContentEncoding enc = g_mime_part_get_content_encoding(p);
	GMimeDataWrapper *w = g_mime_part_get_content(p);
	GMimeStream *st = w ? g_mime_data_wrapper_get_stream(w) : NULL;
	GByteArray *bytes;
	guint8 buf[4096];
	ssize_t n;
	size_t j = 0;

	if (!st || (enc != GMIME_CONTENT_ENCODING_DEFAULT && enc != GMIME_CONTENT_ENCODING_7BIT &&
	            enc != GMIME_CONTENT_ENCODING_8BIT && enc != GMIME_CONTENT_ENCODING_BINARY) ||
	    g_mime_data_wrapper_get_encoding(w) != enc)
		return NULL;
	bytes = g_byte_array_new();
	if (g_mime_stream_reset(st) < 0) {
		g_byte_array_free(bytes, TRUE);
		return NULL;
	}
	while ((n = g_mime_stream_read(st, (char *)buf, sizeof buf)) > 0)
		g_byte_array_append(bytes, buf, (guint)n);
	g_mime_stream_reset(st);
	if (n < 0) {
		g_byte_array_free(bytes, TRUE);
		return NULL;
	}
	/* Each CR before an LF dropped: the spans between moved down whole. */
	for (size_t i = 0, len = bytes->len; i < len;) {
		guint8 *cr = memchr(bytes->data + i, '\r', len - i);
		size_t end = cr ? (size_t)(cr - bytes->data) : len;

		memmove(bytes->data + j, bytes->data + i, end - i);
		j += end - i;
		i = end;
		if (cr) {
			if (i + 1 >= len || bytes->data[i + 1] != '\n')
				bytes->data[j++] = '\r';
			i++;
		}
	}
	g_byte_array_set_size(bytes, (guint)j);
	return bytes;
}

/* A text part as UTF-8 with LF line ends (g_malloc'd). */
static char *part_text(GMimePart *p)
{
	const char *cs = g_mime_object_get_content_type_parameter(GMIME_OBJECT(p), "charset");
	GMimeFilter *conv = NULL, *eol;
	GByteArray *bytes;
	size_t len;

	/* UTF-8 and ASCII need no conversion, and 8-bit text that is not
	 * UTF-8 in spite of its label is better read by the fallback rule. */
	if (cs && g_ascii_strcasecmp(cs, "utf-8") != 0 && g_ascii_strcasecmp(cs, "us-ascii") != 0)
		conv = g_mime_filter_charset_new(charset_for(cs), "UTF-8");
	if (conv || !(bytes = part_bytes_plain(p))) {
		eol = g_mime_filter_dos2unix_new(FALSE);
		bytes = part_bytes(p, conv, eol);
		g_object_unref(eol);
	}
	if (conv)
		g_object_unref(conv);
	len = bytes->len;
	g_byte_array_append(bytes, (const guint8 *)"", 1);
	return utf8_clean((char *)g_byte_array_free(bytes, FALSE), len, false);
}

/* A file name for a part that has none: "part-N" and an extension. */
static char *made_filename(struct rm_ctx *c, GMimeContentType *ct)
{
	static const struct {
		const char *type, *ext;
	} ext[] = {
	    {"text/plain", ".txt"},     {"text/html", ".html"},      {"text/calendar", ".ics"},
	    {"image/png", ".png"},      {"image/jpeg", ".jpg"},      {"image/gif", ".gif"},
	    {"message/rfc822", ".eml"}, {"application/pdf", ".pdf"},
	};
	char *type = g_mime_content_type_get_mime_type(ct);
	const char *e = "";
	char *name;

	for (size_t i = 0; i < G_N_ELEMENTS(ext); i++)
		if (g_ascii_strcasecmp(type, ext[i].type) == 0)
			e = ext[i].ext;
	g_free(type);
	name = g_strdup_printf("part-%d%s", c->nparts, e);
	return name;
}

/* "type/subtype" in lower case, or application/octet-stream when GMime
 * could not make one SendGrid accepts. */
static char *attachment_type(GMimeContentType *ct)
{
	char *given = g_mime_content_type_get_mime_type(ct);
	char *type = g_ascii_strdown(given, -1);
	char *t = type;

	g_free(given);
	for (; *t; t++)
		if ((unsigned char)*t <= 0x20 || (unsigned char)*t >= 0x7f || *t == ';')
			break;
	if (*t || !strchr(type, '/')) {
		g_free(type);
		type = g_strdup("application/octet-stream");
	}
	return type;
}

/* Adds one attachment of bytes; an empty one is dropped (SendGrid
 * refuses empty content, and there is nothing in it to lose). */
static int add_attachment(struct rm_ctx *c, GMimeObject *o, const guint8 *data, size_t len,
                          const char *filename, bool inline_part)
{
	GMimeContentType *ct = g_mime_object_get_content_type(o);
	const char *cid = g_mime_object_get_content_id(o);
	const char *d;
	cJSON *a;
	char *b64, *name, *type;

	c->nparts++;
	if (len == 0)
		return 0;
	if (len > (size_t)INT_MAX / 4 * 3)
		return fail(c, "attachment %d: too large", c->nparts);
	if (!(b64 = malloc(B64_ENCODED_LEN(len))))
		return fail(c, "out of memory");
	b64_encode(data, len, b64);
	g_ptr_array_add(c->b64, b64);

	name = filename && *filename ? clean_dup(filename, true) : made_filename(c, ct);
	type = attachment_type(ct);
	a = cJSON_CreateObject();
	cJSON_AddItemToObject(a, "content", cJSON_CreateStringReference(b64));
	cJSON_AddStringToObject(a, "type", type);
	cJSON_AddStringToObject(a, "filename", name);
	/* Inline is what the part says, else what its place says (a related
	 * part); SendGrid wants a content_id with every inline attachment. */
	d = g_mime_object_get_disposition(o);
	if (d)
		inline_part = g_ascii_strcasecmp(d, GMIME_DISPOSITION_INLINE) == 0;
	if (inline_part && cid && *cid) {
		char *id = clean_dup(cid, true);

		cJSON_AddStringToObject(a, "disposition", "inline");
		cJSON_AddStringToObject(a, "content_id", id);
		g_free(id);
	} else {
		cJSON_AddStringToObject(a, "disposition", "attachment");
	}
	cJSON_AddItemToArray(c->attachments, a);
	g_free(name);
	g_free(type);
	return 0;
}

/* A leaf part: the body when it can be, else an attachment. */
static int walk_part(struct rm_ctx *c, GMimePart *p, bool body_ok, bool related)
{
	GMimeObject *o = GMIME_OBJECT(p);
	GMimeContentType *ct = g_mime_object_get_content_type(o);
	const char *filename = g_mime_part_get_filename(p);
	GByteArray *bytes;
	int rc;

	if (g_mime_content_type_is_type(ct, "application", "pkcs7-mime") ||
	    g_mime_content_type_is_type(ct, "application", "x-pkcs7-mime"))
		return fail(c, "application/pkcs7-mime: S/MIME signed or encrypted content cannot "
		               "be re-sent through the v3 API; send it through an SMTP route");
	if (g_mime_content_type_is_type(ct, "message", "external-body"))
		return fail(c, "message/external-body: the content is elsewhere, nothing to send");
	if (body_ok && !g_mime_part_is_attachment(p) && !(filename && *filename)) {
		char **slot = g_mime_content_type_is_type(ct, "text", "plain")  ? &c->plain
		              : g_mime_content_type_is_type(ct, "text", "html") ? &c->html
		                                                                : NULL;
		if (slot && !*slot) {
			c->texts++;
			*slot = part_text(p);
			return 0;
		}
	}
	bytes = part_bytes(p, NULL, NULL);
	rc = add_attachment(c, o, bytes->data, bytes->len, filename, related);
	g_byte_array_free(bytes, TRUE);
	return rc;
}

/* An attached message: sent as the message/rfc822 file it is. */
static int walk_message_part(struct rm_ctx *c, GMimeMessagePart *mp, bool related)
{
	GMimeObject *o = GMIME_OBJECT(mp);
	GMimeContentType *ct = g_mime_object_get_content_type(o);
	GMimeMessage *m = g_mime_message_part_get_message(mp);
	const char *filename = g_mime_object_get_content_disposition_parameter(o, "filename");
	GMimeStream *mem;
	GByteArray *bytes;
	int rc;

	if (g_mime_content_type_is_type(ct, "message", "partial"))
		return fail(c, "message/partial: a fragment of a message cannot be sent alone");
	if (!m)
		return 0;
	mem = g_mime_stream_mem_new();
	g_mime_object_write_to_stream(GMIME_OBJECT(m), NULL, mem);
	bytes = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem));
	if (!filename)
		filename = g_mime_object_get_content_type_parameter(o, "name");
	rc = add_attachment(c, o, bytes->data, bytes->len, filename, related);
	g_object_unref(mem);
	return rc;
}

static int walk(struct rm_ctx *c, GMimeObject *o, bool body_ok, bool related, int depth);

/* A multipart: alternative offers every child for the body, mixed (and
 * any other) its children until one held it, related only its root, the
 * rest attached inline. */
static int walk_multipart(struct rm_ctx *c, GMimeMultipart *mp, bool body_ok, int depth)
{
	GMimeObject *o = GMIME_OBJECT(mp);
	GMimeContentType *ct = g_mime_object_get_content_type(o);
	int n = g_mime_multipart_get_count(mp), root = -1;
	bool alternative = g_mime_content_type_is_type(ct, "multipart", "alternative");

	if (GMIME_IS_MULTIPART_SIGNED(mp))
		return fail(c, "multipart/signed: a signed message cannot be re-sent through the "
		               "v3 API (the signature would break); send it through an SMTP route");
	if (GMIME_IS_MULTIPART_ENCRYPTED(mp) ||
	    g_mime_content_type_is_type(ct, "multipart", "encrypted"))
		return fail(c, "multipart/encrypted: encrypted content cannot be re-sent through "
		               "the v3 API; send it through an SMTP route");
	if (g_mime_content_type_is_type(ct, "multipart", "related")) {
		const char *start = g_mime_content_type_get_parameter(ct, "start");

		root = 0;
		if (start) {
			char *want = g_mime_utils_decode_message_id(start);

			for (int i = 0; want && i < n; i++) {
				const char *id =
				    g_mime_object_get_content_id(g_mime_multipart_get_part(mp, i));
				if (id && strcmp(id, want) == 0) {
					root = i;
					break;
				}
			}
			g_free(want);
		}
	}
	for (int i = 0; i < n; i++) {
		GMimeObject *child = g_mime_multipart_get_part(mp, i);
		bool rel = root >= 0 && i != root;

		int texts = c->texts;

		if (walk(c, child, body_ok && !rel, rel, depth + 1) < 0)
			return -1;
		/* Parts of mixed mail follow each other: once one held the
		 * body, a later text part is not an alternative to it. */
		if (!alternative && c->texts > texts)
			body_ok = false;
	}
	return 0;
}

/* Any MIME object. */
static int walk(struct rm_ctx *c, GMimeObject *o, bool body_ok, bool related, int depth)
{
	if (depth > RAWMAIL_MAX_DEPTH)
		return fail(c, "MIME structure nested deeper than %d levels", RAWMAIL_MAX_DEPTH);
	if (GMIME_IS_MULTIPART(o))
		return walk_multipart(c, GMIME_MULTIPART(o), body_ok, depth);
	if (GMIME_IS_MESSAGE_PARTIAL(o))
		return fail(c, "message/partial: a fragment of a message cannot be sent alone");
	if (GMIME_IS_MESSAGE_PART(o))
		return walk_message_part(c, GMIME_MESSAGE_PART(o), related);
	if (GMIME_IS_PART(o))
		return walk_part(c, GMIME_PART(o), body_ok, related);
	return 0;
}

/* The first mailbox of a list, groups looked into. */
static InternetAddressMailbox *first_mailbox(InternetAddressList *l)
{
	int n = l ? internet_address_list_length(l) : 0;

	for (int i = 0; i < n; i++) {
		InternetAddress *a = internet_address_list_get_address(l, i);
		InternetAddressMailbox *m;

		if (INTERNET_ADDRESS_IS_MAILBOX(a))
			return INTERNET_ADDRESS_MAILBOX(a);
		if (INTERNET_ADDRESS_IS_GROUP(a) &&
		    (m = first_mailbox(
		         internet_address_group_get_members(INTERNET_ADDRESS_GROUP(a)))))
			return m;
	}
	return NULL;
}

/* {"email","name"} of a mailbox. */
static cJSON *address_json(InternetAddressMailbox *m)
{
	cJSON *a = cJSON_CreateObject();
	char *email = clean_dup(internet_address_mailbox_get_addr(m), true);
	const char *name = internet_address_get_name(INTERNET_ADDRESS(m));

	cJSON_AddStringToObject(a, "email", email);
	if (name && *name) {
		char *n = clean_dup(name, true);

		cJSON_AddStringToObject(a, "name", g_strstrip(n));
		g_free(n);
	}
	g_free(email);
	return a;
}

/* Every mailbox of l into arr (groups flattened), each address once. */
static void add_mailboxes(cJSON *arr, InternetAddressList *l)
{
	int n = l ? internet_address_list_length(l) : 0;

	for (int i = 0; i < n; i++) {
		InternetAddress *a = internet_address_list_get_address(l, i);
		const cJSON *it;
		const char *addr;
		bool dup = false;

		if (INTERNET_ADDRESS_IS_GROUP(a)) {
			add_mailboxes(
			    arr, internet_address_group_get_members(INTERNET_ADDRESS_GROUP(a)));
			continue;
		}
		if (!INTERNET_ADDRESS_IS_MAILBOX(a))
			continue;
		addr = internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(a));
		cJSON_ArrayForEach(it, arr)
		{
			const cJSON *e = cJSON_GetObjectItemCaseSensitive(it, "email");

			dup |= cJSON_IsString(e) && addr &&
			       g_ascii_strcasecmp(e->valuestring, addr) == 0;
		}
		if (!dup)
			cJSON_AddItemToArray(arr, address_json(INTERNET_ADDRESS_MAILBOX(a)));
	}
}

/* from, reply_to / reply_to_list, subject. */
static int add_envelope_headers(struct rm_ctx *c, GMimeMessage *msg)
{
	InternetAddressList *from = g_mime_message_get_from(msg);
	InternetAddressMailbox *m = first_mailbox(from);
	cJSON *replies = cJSON_CreateArray();
	const char *subject = g_mime_message_get_subject(msg);
	char *s;

	if (!g_mime_object_get_header(GMIME_OBJECT(msg), "From")) {
		cJSON_Delete(replies);
		return fail(c, "From: missing");
	}
	if (!m) {
		cJSON_Delete(replies);
		return fail(c, "From: no address");
	}
	cJSON_AddItemToObject(c->root, "from", address_json(m));

	add_mailboxes(replies, g_mime_message_get_reply_to(msg));
	if (cJSON_GetArraySize(replies) == 1)
		cJSON_AddItemToObject(c->root, "reply_to", cJSON_DetachItemFromArray(replies, 0));
	if (cJSON_GetArraySize(replies) > 1)
		cJSON_AddItemToObject(c->root, "reply_to_list", replies);
	else
		cJSON_Delete(replies);

	s = g_strstrip(clean_dup(subject, true));
	cJSON_AddStringToObject(c->root, "subject", *s ? s : " ");
	g_free(s);
	return 0;
}

/* True for a header name to carry into "headers". */
static bool header_kept(const char *name)
{
	if (v3mail_reserved_header(name))
		return false;
	if (g_ascii_strncasecmp(name, "X-", 2) == 0)
		return g_ascii_strcasecmp(name, "X-SMTPAPI") != 0;
	for (size_t i = 0; i < G_N_ELEMENTS(kept_headers); i++)
		if (g_ascii_strcasecmp(name, kept_headers[i]) == 0)
			return true;
	return false;
}

/* True when SendGrid takes name as a header key: printable ASCII, no
 * blank, no colon. */
static bool header_name_ok(const char *name)
{
	if (!*name)
		return false;
	for (const char *p = name; *p; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f || *p == ':')
			return false;
	return true;
}

/* True when s is all ASCII. */
static bool is_ascii(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s >= 0x80)
			return false;
	return true;
}

/* The headers object: kept headers unfolded as written, first of each name. */
static void add_headers(struct rm_ctx *c, GMimeHeaderList *hl)
{
	cJSON *h = cJSON_CreateObject();
	int n = g_mime_header_list_get_count(hl);

	for (int i = 0; i < n; i++) {
		GMimeHeader *hd = g_mime_header_list_get_header_at(hl, i);
		const char *name = g_mime_header_get_name(hd);
		const char *raw = g_mime_header_get_raw_value(hd);
		const cJSON *it;
		char *v;
		bool dup = false;

		if (!name || !header_name_ok(name) || !header_kept(name))
			continue;
		cJSON_ArrayForEach(it, h)
		{
			dup |= g_ascii_strcasecmp(it->string, name) == 0;
		}
		if (dup)
			continue;
		v = g_mime_utils_header_unfold(raw ? raw : "");
		v = utf8_clean(v, strlen(v), true);
		/* SendGrid wants header values encoded: 8-bit text as the
		 * encoded-words it should have been written as. */
		if (!is_ascii(v)) {
			char *enc = g_mime_utils_header_encode_text(NULL, v, "utf-8");

			g_free(v);
			v = utf8_clean(enc, strlen(enc), true);
		}
		cJSON_AddStringToObject(h, name, v);
		g_free(v);
	}
	if (cJSON_GetArraySize(h) > 0)
		cJSON_AddItemToObject(c->root, "headers", h);
	else
		cJSON_Delete(h);
}

/* The object member name of root, created when missing. */
static cJSON *object_member(cJSON *root, const char *name)
{
	cJSON *o = cJSON_GetObjectItemCaseSensitive(root, name);

	return o ? o : cJSON_AddObjectToObject(root, name);
}

/* A 0/1 flag as SendGrid's SMTP API writes it: 0, 1, "0", "1", or a boolean.
 * Returns 0 or 1, or -1 when v is something else. */
static int smtpapi_flag(const cJSON *v)
{
	if (cJSON_IsBool(v))
		return cJSON_IsTrue(v);
	if (cJSON_IsNumber(v) && (v->valuedouble == 0 || v->valuedouble == 1))
		return (int)v->valuedouble;
	if (cJSON_IsString(v) && (!strcmp(v->valuestring, "0") || !strcmp(v->valuestring, "1")))
		return v->valuestring[0] == '1';
	return -1;
}

/* filters -> tracking_settings / mail_settings; a filter set by an earlier
 * X-SMTPAPI header is left as it is. */
static int smtpapi_filters(struct rm_ctx *c, const cJSON *filters)
{
	if (!cJSON_IsObject(filters))
		return fail(c, "X-SMTPAPI: filters must be an object");
	for (size_t i = 0; i < G_N_ELEMENTS(filter_map); i++) {
		const cJSON *f = cJSON_GetObjectItemCaseSensitive(filters, filter_map[i].filter);
		const cJSON *settings = cJSON_GetObjectItemCaseSensitive(f, "settings");
		cJSON *group, *out;
		int en, text = -1;

		if (!f)
			continue;
		if (!cJSON_IsObject(settings))
			return fail(c, "X-SMTPAPI: filters.%s.settings must be an object",
			            filter_map[i].filter);
		en = smtpapi_flag(cJSON_GetObjectItemCaseSensitive(settings, "enable"));
		if (en < 0)
			return fail(c, "X-SMTPAPI: filters.%s.settings.enable must be 0 or 1",
			            filter_map[i].filter);
		if (cJSON_GetObjectItemCaseSensitive(settings, "enable_text") &&
		    (text = smtpapi_flag(
		         cJSON_GetObjectItemCaseSensitive(settings, "enable_text"))) < 0)
			return fail(c, "X-SMTPAPI: filters.%s.settings.enable_text must be 0 or 1",
			            filter_map[i].filter);
		group = object_member(c->root, filter_map[i].group);
		if (cJSON_GetObjectItemCaseSensitive(group, filter_map[i].setting))
			continue;
		out = cJSON_AddObjectToObject(group, filter_map[i].setting);
		cJSON_AddBoolToObject(out, "enable", en);
		if (text >= 0 && strcmp(filter_map[i].filter, "clicktrack") == 0)
			cJSON_AddBoolToObject(out, "enable_text", text);
	}
	return 0;
}

/* category (a string or an array of strings) -> categories, each once. */
static int smtpapi_categories(struct rm_ctx *c, const cJSON *cat)
{
	cJSON *out = cJSON_GetObjectItemCaseSensitive(c->root, "categories");
	const cJSON *it;

	if (!cJSON_IsString(cat) && !cJSON_IsArray(cat))
		return fail(c, "X-SMTPAPI: category must be a string or an array of strings");
	if (!out)
		out = cJSON_AddArrayToObject(c->root, "categories");
	for (it = cJSON_IsString(cat) ? cat : cat->child; it;
	     it = cJSON_IsString(cat) ? NULL : it->next) {
		const cJSON *prev;
		bool dup = false;

		if (!cJSON_IsString(it))
			return fail(c,
			            "X-SMTPAPI: category must be a string or an array of strings");
		cJSON_ArrayForEach(prev, out)
		{
			dup |= strcmp(prev->valuestring, it->valuestring) == 0;
		}
		if (!dup)
			cJSON_AddItemToArray(out, cJSON_CreateString(it->valuestring));
	}
	return 0;
}

/* unique_args -> custom_args, values as strings; an earlier header's
 * value of the same name stays. */
static int smtpapi_unique_args(struct rm_ctx *c, const cJSON *args)
{
	cJSON *out;
	const cJSON *it;

	if (!cJSON_IsObject(args))
		return fail(c, "X-SMTPAPI: unique_args must be an object");
	out = object_member(c->root, "custom_args");
	cJSON_ArrayForEach(it, args)
	{
		char num[64];
		const char *v;

		if (!it->string || cJSON_GetObjectItemCaseSensitive(out, it->string) ||
		    cJSON_IsNull(it))
			continue;
		if (cJSON_IsString(it)) {
			v = it->valuestring;
		} else if (cJSON_IsNumber(it)) {
			if (it->valuedouble == (double)(long long)it->valuedouble)
				snprintf(num, sizeof num, "%lld", (long long)it->valuedouble);
			else
				snprintf(num, sizeof num, "%.17g", it->valuedouble);
			v = num;
		} else if (cJSON_IsBool(it)) {
			v = cJSON_IsTrue(it) ? "true" : "false";
		} else {
			return fail(c, "X-SMTPAPI: unique_args.%.64s must be a string or a number",
			            it->string);
		}
		cJSON_AddStringToObject(out, it->string, v);
	}
	return 0;
}

/* True for a JSON integer SendGrid takes as a Unix time or an id. */
static bool is_integer(const cJSON *v)
{
	return cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble < 1e13 &&
	       v->valuedouble == (double)(long long)v->valuedouble;
}

/* One X-SMTPAPI header's JSON translated into the v3 body; fields an
 * earlier header set are kept.  "to", "sub", "section" and "send_each_at"
 * address SendGrid's own recipient list, which the envelope replaces: a
 * message that carries them is refused, since SendGrid's SMTP relay would
 * act on them (a "to" list would mail people the cap never counted) and
 * the v3 route could not.  Other names SendGrid's v3 API has no place for
 * are ignored. */
static int smtpapi_apply(struct rm_ctx *c, const char *text)
{
	const char *end = NULL;
	cJSON *api = cJSON_ParseWithLengthOpts(text, strlen(text), &end, 0);
	const cJSON *v;
	int rc = 0;

	if (!api)
		return fail(c, "X-SMTPAPI: malformed JSON near byte %zu",
		            end && end >= text ? (size_t)(end - text) : (size_t)0);
	if (!cJSON_IsObject(api)) {
		cJSON_Delete(api);
		return fail(c, "X-SMTPAPI: not a JSON object");
	}
	{
		static const char *const envelope[] = {"to", "sub", "section", "send_each_at"};

		for (size_t i = 0; i < sizeof(envelope) / sizeof(envelope[0]); i++)
			if (cJSON_GetObjectItemCaseSensitive(api, envelope[i])) {
				cJSON_Delete(api);
				return fail(c,
				            "X-SMTPAPI: \"%s\" is not taken: the SMTP envelope "
				            "decides the recipients (one RCPT TO each)",
				            envelope[i]);
			}
	}
	if ((v = cJSON_GetObjectItemCaseSensitive(api, "filters")))
		rc |= smtpapi_filters(c, v);
	if (!rc && (v = cJSON_GetObjectItemCaseSensitive(api, "category")))
		rc |= smtpapi_categories(c, v);
	if (!rc && (v = cJSON_GetObjectItemCaseSensitive(api, "unique_args")))
		rc |= smtpapi_unique_args(c, v);
	if (!rc && (v = cJSON_GetObjectItemCaseSensitive(api, "asm_group_id"))) {
		if (!is_integer(v))
			rc = fail(c, "X-SMTPAPI: asm_group_id must be an integer");
		else if (!cJSON_GetObjectItemCaseSensitive(c->root, "asm"))
			cJSON_AddNumberToObject(cJSON_AddObjectToObject(c->root, "asm"), "group_id",
			                        v->valuedouble);
	}
	if (!rc && (v = cJSON_GetObjectItemCaseSensitive(api, "ip_pool"))) {
		if (!cJSON_IsString(v))
			rc = fail(c, "X-SMTPAPI: ip_pool must be a string");
		else if (!cJSON_GetObjectItemCaseSensitive(c->root, "ip_pool_name"))
			cJSON_AddStringToObject(c->root, "ip_pool_name", v->valuestring);
	}
	if (!rc && (v = cJSON_GetObjectItemCaseSensitive(api, "send_at"))) {
		if (!is_integer(v))
			rc = fail(c, "X-SMTPAPI: send_at must be a Unix time (an integer)");
		else if (!cJSON_GetObjectItemCaseSensitive(c->root, "send_at"))
			cJSON_AddNumberToObject(c->root, "send_at", v->valuedouble);
	}
	cJSON_Delete(api);
	return rc ? -1 : 0;
}

/* Every X-SMTPAPI header, in order (Postfix's prepended one comes first),
 * kept for rawmail_finish: its JSON is parsed there. */
static void keep_smtpapi(struct rm_ctx *c, GMimeHeaderList *hl)
{
	int n = g_mime_header_list_get_count(hl);

	for (int i = 0; i < n; i++) {
		GMimeHeader *hd = g_mime_header_list_get_header_at(hl, i);
		const char *raw = g_mime_header_get_raw_value(hd);

		if (g_ascii_strcasecmp(g_mime_header_get_name(hd), "X-SMTPAPI") == 0)
			g_ptr_array_add(c->smtpapi, g_mime_utils_header_unfold(raw ? raw : ""));
	}
}

/* content[]: text/plain then text/html, as SendGrid orders them. */
static int add_content(struct rm_ctx *c)
{
	cJSON *content;

	if (!c->texts)
		return fail(c, "no text/plain or text/html part");
	content = cJSON_AddArrayToObject(c->root, "content");
	for (int i = 0; i < 2; i++) {
		const char *v = i ? c->html : c->plain;
		cJSON *item;

		if (!v || !*v)
			continue;
		item = cJSON_CreateObject();
		cJSON_AddStringToObject(item, "type", i ? "text/html" : "text/plain");
		cJSON_AddStringToObject(item, "value", v);
		cJSON_AddItemToArray(content, item);
	}
	/* Empty text is still the application's body; SendGrid needs a character. */
	if (cJSON_GetArraySize(content) == 0) {
		cJSON *item = cJSON_CreateObject();

		cJSON_AddStringToObject(item, "type", "text/plain");
		cJSON_AddStringToObject(item, "value", " ");
		cJSON_AddItemToArray(content, item);
	}
	return 0;
}

/* The header or part a v3 field comes from, for err. */
static const char *field_origin(const char *field)
{
	static const struct {
		const char *prefix, *origin;
	} map[] = {
	    {"from", "From"},    {"reply_to", "Reply-To"},      {"subject", "Subject"},
	    {"content", "body"}, {"attachments", "attachment"}, {"headers", "header"},
	    {"personalizations", "the recipients"},
	};

	for (size_t i = 0; i < G_N_ELEMENTS(map); i++)
		if (strncmp(field, map[i].prefix, strlen(map[i].prefix)) == 0)
			return map[i].origin;
	return "X-SMTPAPI";
}

/* The body as the v3 API will judge it: with the caller's
 * personalizations when it has added them, else with one made up. */
static int validate(struct rm_ctx *c)
{
	struct v3mail_errors errs;
	cJSON *p, *one, *to, *addr;
	int rc;

	if (cJSON_HasObjectItem(c->root, "personalizations")) {
		if (v3mail_validate(c->root, &errs) < 0)
			return fail(c, "%s: %s", field_origin(errs.e[0].field), errs.e[0].message);
		return 0;
	}
	p = cJSON_CreateArray();
	one = cJSON_CreateObject();
	to = cJSON_CreateArray();
	addr = cJSON_CreateObject();
	cJSON_AddStringToObject(addr, "email", "x@example.com");
	cJSON_AddItemToArray(to, addr);
	cJSON_AddItemToObject(one, "to", to);
	cJSON_AddItemToArray(p, one);
	cJSON_AddItemToObject(c->root, "personalizations", p);
	rc = v3mail_validate(c->root, &errs);
	cJSON_DeleteItemFromObjectCaseSensitive(c->root, "personalizations");
	if (rc < 0)
		return fail(c, "%s: %s", field_origin(errs.e[0].field), errs.e[0].message);
	return 0;
}

/* The conversion of a parsed message into c->root, but for X-SMTPAPI. */
static int convert(struct rm_ctx *c, GMimeMessage *msg)
{
	GMimeHeaderList *hl = g_mime_object_get_header_list(GMIME_OBJECT(msg));
	GMimeObject *body = g_mime_message_get_mime_part(msg);

	if (add_envelope_headers(c, msg) < 0)
		return -1;
	if (!body)
		return fail(c, "no text/plain or text/html part");
	if (walk(c, body, true, false, 0) < 0 || add_content(c) < 0)
		return -1;
	if (cJSON_GetArraySize(c->attachments) > 0)
		cJSON_AddItemToObject(c->root, "attachments", c->attachments);
	else
		cJSON_Delete(c->attachments);
	c->attachments = NULL;
	add_headers(c, hl);
	keep_smtpapi(c, hl);
	return 0;
}

struct rawmail {
	struct rm_ctx c;
};

void rawmail_free(struct rawmail *rm)
{
	if (!rm)
		return;
	cJSON_Delete(rm->c.root);
	cJSON_Delete(rm->c.attachments);
	if (rm->c.b64)
		g_ptr_array_free(rm->c.b64, TRUE);
	if (rm->c.smtpapi)
		g_ptr_array_free(rm->c.smtpapi, TRUE);
	g_free(rm->c.plain);
	g_free(rm->c.html);
	free(rm);
}

/* Step one: GMime parses the message and the v3 body is built, all but
 * what the X-SMTPAPI headers add. */
struct rawmail *rawmail_parse(const char *raw, size_t len, char *err, size_t errlen)
{
	struct rawmail *rm;
	GMimeStream *stream;
	GMimeParser *parser;
	GMimeMessage *msg;
	int rc;

	if (errlen)
		err[0] = '\0';
	pthread_once(&rm_once, rm_init);
	if (!raw || len == 0) {
		snprintf(err, errlen, "empty message");
		return NULL;
	}
	if ((rm = calloc(1, sizeof(*rm))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	rm->c.err = err;
	rm->c.errlen = errlen;
	stream = g_mime_stream_mem_new_with_buffer(raw, len);
	parser = g_mime_parser_new_with_stream(stream);
	g_mime_parser_set_format(parser, GMIME_FORMAT_MESSAGE);
	msg = g_mime_parser_construct_message(parser, rm_options);
	g_object_unref(parser);
	g_object_unref(stream);
	if (!msg) {
		fail(&rm->c, "not an Internet message (no header block)");
		rawmail_free(rm);
		return NULL;
	}
	rm->c.root = cJSON_CreateObject();
	rm->c.attachments = cJSON_CreateArray();
	rm->c.b64 = g_ptr_array_new_with_free_func(free);
	rm->c.smtpapi = g_ptr_array_new_with_free_func(g_free);
	rc = rm->c.root && rm->c.attachments ? convert(&rm->c, msg)
	                                     : fail(&rm->c, "out of memory");
	g_object_unref(msg);
	if (rc < 0) {
		rawmail_free(rm);
		return NULL;
	}
	rm->c.err = NULL;
	rm->c.errlen = 0;
	return rm;
}

/* Step two: X-SMTPAPI applied, and the body judged as the v3 API will. */
int rawmail_finish(struct rawmail *rm, char *err, size_t errlen)
{
	if (errlen)
		err[0] = '\0';
	rm->c.err = err;
	rm->c.errlen = errlen;
	for (guint i = 0; i < rm->c.smtpapi->len; i++)
		if (smtpapi_apply(&rm->c, g_ptr_array_index(rm->c.smtpapi, i)) < 0)
			return -1;
	return validate(&rm->c);
}

cJSON *rawmail_body(struct rawmail *rm)
{
	return rm->c.root;
}

/* Both steps, and the body as JSON text. */
int rawmail_to_v3(const char *raw, size_t len, char **json, char *err, size_t errlen)
{
	struct rawmail *rm = rawmail_parse(raw, len, err, errlen);
	int rc = -1;

	*json = NULL;
	if (!rm)
		return -1;
	if (rawmail_finish(rm, err, errlen) == 0) {
		if ((*json = cJSON_PrintUnformatted(rm->c.root)))
			rc = 0;
		else
			snprintf(err, errlen, "out of memory");
	}
	rawmail_free(rm);
	return rc;
}
