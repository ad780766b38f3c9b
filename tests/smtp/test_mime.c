/*
 * test_mime.c -- the SMTP route's message pieces, without a network.
 *
 * DESCRIPTION
 *	Encoded-words (Japanese split on character boundaries, each word
 *	decoding alone), header folding (unfolding gives the value back; a
 *	word too long for any line is refused), mailboxes, X-SMTPAPI escaping
 *	and folding, substitutions, header merging, line endings, and
 *	mime_build() on a real easy handle: header list, envelope, errors;
 *	and the promise between the intake and the SMTP route: every edge
 *	body the intake's checks accept builds, with lines under 998 octets,
 *	and bodies the builder cannot write are refused at the intake.
 *	The rendered message itself is checked by test_smtp.py, which sends
 *	it to loopback servers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sender/json_strict.h"
#include "sender/mime.h"
#include "sender/v3mail.h"

/* Decodes base64 into out; returns the length. */
static size_t unb64(const char *s, size_t n, char *out)
{
	static const char *t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	unsigned acc = 0;
	int bits = 0;
	size_t k = 0, i;

	for (i = 0; i < n && s[i] != '='; i++) {
		acc = (acc << 6) | (unsigned)(strchr(t, s[i]) - t);
		if ((bits += 6) >= 8) {
			bits -= 8;
			out[k++] = (char)(acc >> bits);
		}
	}
	out[k] = '\0';
	return k;
}

/* 1 when s[0..n) is whole UTF-8 characters. */
static int whole_utf8(const char *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		unsigned char c = (unsigned char)s[i];
		size_t k = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : 4;

		if (i + k > n)
			return 0;
		i += k;
	}
	return 1;
}

/* Decodes a run of "=?UTF-8?B?...?=" words separated by blanks/folds,
 * checking each word's length and that it decodes to whole characters. */
static char *decode_words(const char *s)
{
	char *out = calloc(1, strlen(s) + 1), *o = out;

	while (*s) {
		const char *end;
		size_t k;

		if (*s == ' ' || *s == '\r' || *s == '\n' || *s == '\t') {
			s++;
			continue;
		}
		assert_int_equal(strncmp(s, "=?UTF-8?B?", 10), 0);
		end = strstr(s + 10, "?=");
		assert_non_null(end);
		assert_true(end + 2 - s <= 75);
		k = unb64(s + 10, (size_t)(end - s - 10), o);
		assert_true(whole_utf8(o, k));
		o += k;
		s = end + 2;
	}
	return out;
}

/* Removes every CRLF (RFC 5322 unfolding). */
static char *unfold(const char *s)
{
	char *out = malloc(strlen(s) + 1), *o = out;

	for (; *s; s++)
		if (!(s[0] == '\r' && s[1] == '\n') && !(*s == '\n' && s[-1] == '\r'))
			*o++ = *s;
	*o = '\0';
	return out;
}

/* The longest line of s, CRLF excluded. */
static size_t longest(const char *s)
{
	size_t max = 0, cur = 0;

	for (; *s; s++) {
		if (*s == '\r' && s[1] == '\n') {
			cur = 0;
			s++;
		} else if (++cur > max)
			max = cur;
	}
	return max;
}

static void test_encode_words_japanese(void **state)
{
	const char *subj = "件名：テスト配信 — とても長い日本語の件名が複数の単語に分かれること";
	char *w = mime_encode_words(subj), *back;

	(void)state;
	assert_non_null(w);
	back = decode_words(w);
	assert_string_equal(back, subj);
	free(back);
	free(w);
}

static void test_header_text(void **state)
{
	char *h, *u, *back;

	(void)state;
	h = mime_header_text("Subject", "plain words");
	assert_string_equal(h, "Subject: plain words");
	free(h);

	h = mime_header_text("Subject", "件名：テスト配信");
	assert_non_null(strstr(h, "Subject: =?UTF-8?B?"));
	assert_true(longest(h) < 78);
	back = decode_words(h + strlen("Subject: "));
	assert_string_equal(back, "件名：テスト配信");
	free(back);
	free(h);

	/* "=?" in plain text would read as an encoded-word: encode it. */
	h = mime_header_text("Subject", "a =?x?= b");
	u = decode_words(h + 9);
	assert_string_equal(u, "a =?x?= b");
	free(u);
	free(h);
}

static void test_fold(void **state)
{
	char value[600], *h, *u;
	size_t i;

	(void)state;
	for (i = 0; i + 10 < sizeof(value); i += 10)
		memcpy(value + i, "word word ", 10);
	value[i] = '\0';
	h = mime_fold("X-Long", value);
	assert_non_null(h);
	assert_true(longest(h) <= 78);
	u = unfold(h);
	assert_string_equal(u + strlen("X-Long: "), value);
	free(u);
	free(h);

	/* A 900-octet word goes on a line of its own, still legal. */
	memset(value, 'a', 590);
	value[590] = '\0';
	h = mime_fold("X-Word", value);
	assert_non_null(h);
	free(h);

	/* 1200 octets without a blank cannot be folded under 998. */
	{
		char *big = malloc(1201);

		memset(big, 'b', 1200);
		big[1200] = '\0';
		assert_null(mime_fold("X-Big", big));
		free(big);
	}
}

static void test_mailbox(void **state)
{
	char *m, *back;

	(void)state;
	m = mime_mailbox(NULL, "a@example.com");
	assert_string_equal(m, "a@example.com");
	free(m);
	m = mime_mailbox("Taro Yamada", "t@example.com");
	assert_string_equal(m, "Taro Yamada <t@example.com>");
	free(m);
	m = mime_mailbox("Support, \"Team\"", "s@example.com");
	assert_string_equal(m, "\"Support, \\\"Team\\\"\" <s@example.com>");
	free(m);
	m = mime_mailbox("山田 太郎", "y@example.jp");
	assert_non_null(strstr(m, " <y@example.jp>"));
	*strstr(m, " <y@") = '\0';
	back = decode_words(m);
	assert_string_equal(back, "山田 太郎");
	free(back);
	free(m);
}

static void test_json_ascii(void **state)
{
	char *s;

	(void)state;
	s = mime_json_ascii("{\"k\":\"é日😀\"}");
	assert_string_equal(s, "{\"k\":\"\\u00e9\\u65e5\\ud83d\\ude00\"}");
	free(s);
	s = mime_json_ascii("\"\xff\"");
	assert_string_equal(s, "\"\\ufffd\"");
	free(s);
}

static void test_fold_json(void **state)
{
	char json[2000], *h, *u;
	cJSON *a, *b;
	size_t n = 0;
	int i;

	(void)state;
	n += (size_t)snprintf(json + n, sizeof(json) - n, "{\"category\":[");
	for (i = 0; i < 40; i++)
		n += (size_t)snprintf(json + n, sizeof(json) - n, "%s\"cat, %d:x\"", i ? "," : "",
		                      i);
	snprintf(json + n, sizeof(json) - n, "],\"unique_args\":{\"a\":\"b\"}}");
	h = mime_fold_json("X-SMTPAPI", json);
	assert_non_null(h);
	assert_true(longest(h) <= 78);
	/* Never inside a string: every fold follows a , : { or [. */
	for (u = strstr(h, "\r\n"); u != NULL; u = strstr(u + 2, "\r\n"))
		assert_non_null(strchr(",:{[", u[-1]));
	u = unfold(h);
	a = cJSON_Parse(json);
	b = cJSON_Parse(u + strlen("X-SMTPAPI: "));
	assert_non_null(b);
	assert_true(cJSON_Compare(a, b, 1));
	cJSON_Delete(a);
	cJSON_Delete(b);
	free(u);
	free(h);
}

static void test_substitute(void **state)
{
	cJSON *subs = cJSON_Parse("{\"-name-\":\"Hanako\",\"-name-full-\":\"Tanaka Hanako\","
	                          "\"-x-\":\"-name-\",\"%日%\":\"値\"}");
	char *s;

	(void)state;
	s = mime_substitute("Hi -name-, -name-full-! -x- %日% -nam", subs);
	/* The longest key wins; a replacement is not substituted again. */
	assert_string_equal(s, "Hi Hanako, Tanaka Hanako! -name- 値 -nam");
	free(s);
	s = mime_substitute("no keys", NULL);
	assert_string_equal(s, "no keys");
	free(s);
	cJSON_Delete(subs);
}

static void test_headers_merge(void **state)
{
	cJSON *g = cJSON_Parse("{\"X-A\":\"global\",\"X-B\":\"keep\"}");
	cJSON *p = cJSON_Parse("{\"x-a\":\"pers\",\"X-C\":\"new\"}");
	cJSON *m = mime_headers_merge(g, p);
	char *s = cJSON_PrintUnformatted(m);

	(void)state;
	assert_string_equal(s, "{\"X-B\":\"keep\",\"x-a\":\"pers\",\"X-C\":\"new\"}");
	free(s);
	cJSON_Delete(m);
	m = mime_headers_merge(NULL, NULL);
	assert_int_equal(cJSON_GetArraySize(m), 0);
	cJSON_Delete(m);
	cJSON_Delete(g);
	cJSON_Delete(p);
}

static void test_smtpapi(void **state)
{
	cJSON *c = cJSON_Parse("{\"categories\":[\"a\",\"日本\"],\"custom_args\":{\"k\":\"g\","
	                       "\"warmup_day\":\"99\"},\"asm\":{\"group_id\":42}}");
	cJSON *p = cJSON_Parse("{\"custom_args\":{\"k\":\"p\",\"u\":\"1\"}}");
	struct mime_opts o = {.warmup_day = 3, .route_name = "old", .open = 1, .ip_pool = "pool"};
	char *x = mime_smtpapi(c, p, &o);
	cJSON *j;
	const unsigned char *s;

	(void)state;
	for (s = (const unsigned char *)x; *s; s++)
		assert_true(*s < 0x80);
	assert_non_null(strstr(x, "\\u65e5\\u672c"));
	j = cJSON_Parse(x);
	assert_int_equal(
	    cJSON_GetObjectItem(
	        cJSON_GetObjectItem(
	            cJSON_GetObjectItem(cJSON_GetObjectItem(j, "filters"), "opentrack"),
	            "settings"),
	        "enable")
	        ->valueint,
	    1);
	assert_int_equal(
	    cJSON_GetObjectItem(
	        cJSON_GetObjectItem(
	            cJSON_GetObjectItem(cJSON_GetObjectItem(j, "filters"), "clicktrack"),
	            "settings"),
	        "enable")
	        ->valueint,
	    0);
	assert_string_equal(cJSON_GetObjectItem(j, "ip_pool")->valuestring, "pool");
	assert_int_equal(cJSON_GetObjectItem(j, "asm_group_id")->valueint, 42);
	assert_string_equal(
	    cJSON_GetObjectItem(cJSON_GetObjectItem(j, "unique_args"), "k")->valuestring, "p");
	assert_string_equal(
	    cJSON_GetObjectItem(cJSON_GetObjectItem(j, "unique_args"), "warmup_day")->valuestring,
	    "3");
	assert_string_equal(
	    cJSON_GetObjectItem(cJSON_GetObjectItem(j, "unique_args"), "warmup_route")->valuestring,
	    "old");
	cJSON_Delete(j);
	free(x);
	cJSON_Delete(c);
	cJSON_Delete(p);
}

/* The message's tracking_settings become filters; the route's tracking
 * fills in only what they do not say, unless the route forces it. */
static int filter_enable(const cJSON *j, const char *name)
{
	const cJSON *e = cJSON_GetObjectItem(
	    cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "filters"), name),
	                        "settings"),
	    "enable");

	return cJSON_IsNumber(e) ? e->valueint : -1;
}

static void test_smtpapi_tracking(void **state)
{
	cJSON *c = cJSON_Parse("{\"tracking_settings\":{\"click_tracking\":{\"enable\":true},"
	                       "\"open_tracking\":{\"enable\":false}}}");
	struct mime_opts o = {.warmup_day = 1, .route_name = "new", .open = 1};

	(void)state;
	for (int force = 0; force <= 1; force++) {
		char *x;
		cJSON *j;

		o.force_tracking = force;
		x = mime_smtpapi(c, NULL, &o);
		j = cJSON_Parse(x);
		assert_int_equal(filter_enable(j, "clicktrack"), force ? 0 : 1);
		assert_int_equal(filter_enable(j, "opentrack"), force ? 1 : 0);
		assert_int_equal(filter_enable(j, "subscriptiontrack"), 0);
		cJSON_Delete(j);
		free(x);
	}
	cJSON_Delete(c);
}

static void test_crlf(void **state)
{
	char *s = mime_crlf("a\nb\r\nc\rd\n\n");

	(void)state;
	assert_string_equal(s, "a\r\nb\r\nc\r\nd\r\n\r\n");
	free(s);
}

/* The header of name in the list, or NULL. */
static const char *find_header(const struct curl_slist *l, const char *name)
{
	size_t n = strlen(name);

	for (; l != NULL; l = l->next)
		if (strncasecmp(l->data, name, n) == 0 && l->data[n] == ':')
			return l->data;
	return NULL;
}

static void test_build(void **state)
{
	const char *content =
	    "{\"from\":{\"email\":\"news@example.com\",\"name\":\"山田 太郎\"},"
	    "\"subject\":\"global\",\"content\":[{\"type\":\"text/plain\",\"value\":\"hi -n-\"},"
	    "{\"type\":\"text/html\",\"value\":\"<p>hi -n-</p>\"}],"
	    "\"attachments\":[{\"content\":\"AAEC\",\"filename\":\"a.bin\"}],"
	    "\"headers\":{\"List-Unsubscribe\":\"<mailto:u@example.com>\","
	    "\"List-Unsubscribe-Post\":\"List-Unsubscribe=One-Click\"}}";
	const char *pers =
	    "{\"to\":[{\"email\":\"a@example.jp\",\"name\":\"花子\"}],"
	    "\"cc\":[{\"email\":\"c@example.jp\"}],\"bcc\":[{\"email\":\"b@example.jp\"}],"
	    "\"subject\":\"件名 -n-\",\"substitutions\":{\"-n-\":\"X\"}}";
	struct mime_opts o = {.unit_id = 9, .msgid = "MSG1", .now = 1700000000, .x_smtpapi = 1};
	struct mime_msg m;
	struct curl_slist *l;
	char err[256], *dec;
	const char *h;
	CURL *e = curl_easy_init();
	int n = 0;

	(void)state;
	assert_int_equal(mime_build(&m, e, content, pers, &o, err, sizeof(err)), 0);
	assert_string_equal(m.mail_from, "<news@example.com>");
	for (l = m.rcpt; l; l = l->next)
		n++;
	assert_int_equal(n, 3);
	assert_string_equal(m.rcpt->next->next->data, "<b@example.jp>");
	assert_null(find_header(m.headers, "Bcc"));
	for (l = m.headers; l; l = l->next)
		assert_null(strstr(l->data, "b@example.jp"));
	assert_string_equal(find_header(m.headers, "Message-ID"),
	                    "Message-ID: <MSG1.u9@example.com>");
	assert_non_null(find_header(m.headers, "Date"));
	assert_non_null(find_header(m.headers, "X-SMTPAPI"));
	assert_non_null(find_header(m.headers, "List-Unsubscribe-Post"));
	h = find_header(m.headers, "Subject");
	dec = decode_words(h + 9);
	assert_string_equal(dec, "件名 X");
	free(dec);
	mime_msg_free(&m);

	/* Bad stored data: a reason naming the field, nothing left allocated. */
	assert_int_equal(mime_build(&m, e, "{\"content\":[]}", pers, &o, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "from"));
	assert_int_equal(mime_build(&m, e,
	                            "{\"from\":{\"email\":\"a@b.c\"},\"content\":[{\"type\":"
	                            "\"text/plain\",\"value\":\"x\"}],\"attachments\":[{"
	                            "\"content\":\"!!\",\"filename\":\"f\"}]}",
	                            pers, &o, err, sizeof(err)),
	                 -1);
	assert_string_equal(err, "attachments.0.content: not base64");
	assert_int_equal(mime_build(&m, e,
	                            "{\"from\":{\"email\":\"a@b.c\"},\"template_id\":\"d-1\"}",
	                            pers, &o, err, sizeof(err)),
	                 -1);
	assert_non_null(strstr(err, "template_id"));
	assert_int_equal(mime_build(&m, e, content, "{\"to\":[]}", &o, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "no recipient"));
	assert_int_equal(mime_build(&m, e, content, "[1]", &o, err, sizeof(err)), -1);
	assert_null(m.mime);
	curl_easy_cleanup(e);
}

/* n copies of the UTF-8 text unit, in a static buffer of its own (one
 * of 8, in turn). */
static const char *rep_of(const char *unit, int n)
{
	static char bufs[8][8192];
	static int next;
	char *b = bufs[next++ % 8];

	b[0] = '\0';
	for (int i = 0; i < n; i++)
		strcat(b, unit);
	return b;
}

/* Sets each member of the JSON object text "{members}" in o, in place of
 * one of the same name. */
static void set_members(cJSON *o, const char *members)
{
	size_t n = strlen(members) + 3;
	char *t = malloc(n);
	cJSON *m, *it;

	assert_non_null(t);
	snprintf(t, n, "{%s}", members);
	m = cJSON_Parse(t);
	assert_non_null(m);
	while ((it = m->child) != NULL) {
		cJSON_DetachItemViaPointer(m, it);
		cJSON_DeleteItemFromObjectCaseSensitive(o, it->string);
		cJSON_AddItemToObject(o, it->string, it);
	}
	cJSON_Delete(m);
	free(t);
}

/* A v3 body: a plain one with members of the body (top) and of
 * personalizations[0] (p0) set from raw JSON. */
static char *body_of(const char *top, const char *p0)
{
	cJSON *b = cJSON_Parse(
	    "{\"personalizations\":[{\"to\":[{\"email\":\"a@example.jp\",\"name\":\"A\"}]}],"
	    "\"from\":{\"email\":\"news@example.com\"},\"subject\":\"Hi\","
	    "\"content\":[{\"type\":\"text/plain\",\"value\":\"x\"}]}");
	char *text;

	assert_non_null(b);
	set_members(b, top);
	set_members(cJSON_GetArrayItem(cJSON_GetObjectItem(b, "personalizations"), 0), p0);
	text = cJSON_PrintUnformatted(b);
	cJSON_Delete(b);
	return text;
}

/* Checks every line of a header list: CRLF only, at most 998 octets. */
static void assert_lines_ok(const struct curl_slist *l)
{
	for (; l != NULL; l = l->next) {
		const char *s = l->data, *e;

		while ((e = strstr(s, "\r\n")) != NULL) {
			assert_true(e - s <= MIME_LINE_HARD);
			s = e + 2;
		}
		assert_true(strlen(s) <= MIME_LINE_HARD);
		assert_null(strchr(s, '\n'));
	}
}

/* Builds every personalization of an accepted body, as the intake stores
 * it (content without personalizations) and as both SMTP routes send it
 * (with and without X-SMTPAPI).  Takes text. */
static void assert_builds(char *text)
{
	struct json_strict_error jerr;
	struct v3mail_errors errs;
	struct mime_opts o = {.unit_id = 1, .msgid = "M", .now = 1700000000};
	cJSON *body, *ps, *p;
	CURL *e = curl_easy_init();

	if (json_strict_parse(text, strlen(text), &body, &jerr) < 0)
		fail_msg("strict parse refused %.200s: %s (%s)", text, jerr.message, jerr.field);
	if (v3mail_validate(body, &errs) < 0)
		fail_msg("validator refused %.200s: %s: %s", text, errs.e[0].field,
		         errs.e[0].message);
	ps = cJSON_DetachItemFromObjectCaseSensitive(body, "personalizations");
	cJSON_ArrayForEach(p, ps)
	{
		for (o.x_smtpapi = 0; o.x_smtpapi <= 1; o.x_smtpapi++) {
			struct mime_msg m;
			char err[256];
			int rc = mime_build_json(&m, e, body, p, &o, err, sizeof(err));

			if (rc != 0)
				fail_msg(
				    "accepted, then the builder refused (%d, x_smtpapi %d): %s\n"
				    "body %.300s",
				    rc, o.x_smtpapi, err, text);
			assert_lines_ok(m.headers);
			mime_msg_free(&m);
		}
	}
	cJSON_Delete(ps);
	cJSON_Delete(body);
	curl_easy_cleanup(e);
	free(text);
}

/* Expects text refused by the intake's checks with an error on field,
 * and unbuildable: the builder refuses it too (so the intake must). */
static void assert_refused(char *text, const char *field)
{
	struct json_strict_error jerr;
	struct v3mail_errors errs;
	struct mime_opts o = {.unit_id = 1, .now = 1700000000, .x_smtpapi = 1};
	struct mime_msg m;
	cJSON *body, *ps;
	CURL *e = curl_easy_init();
	char err[256];
	int found = 0;

	if (json_strict_parse(text, strlen(text), &body, &jerr) < 0)
		fail_msg("strict parse refused %.200s: %s", text, jerr.message);
	assert_int_equal(v3mail_validate(body, &errs), -1);
	for (int i = 0; i < errs.n; i++)
		found |= strcmp(errs.e[i].field, field) == 0;
	if (!found)
		fail_msg("body %.300s: wanted field %s, got %s: %s", text, field, errs.e[0].field,
		         errs.e[0].message);
	ps = cJSON_DetachItemFromObjectCaseSensitive(body, "personalizations");
	if (mime_build_json(&m, e, body, cJSON_GetArrayItem(ps, 0), &o, err, sizeof(err)) == 0)
		fail_msg("the builder takes %.300s: the intake need not refuse it", text);
	cJSON_Delete(ps);
	cJSON_Delete(body);
	curl_easy_cleanup(e);
	free(text);
}

/* Edge bodies the intake accepts: each must build. */
static void test_accepted_bodies_build(void **state)
{
	char top[9000], p0[4000];
	const char *w1200 = rep_of("w", 1200);

	(void)state;
	assert_builds(body_of("", ""));
	/* a subject, a name, a header value: one word longer than any line */
	snprintf(top, sizeof top, "\"subject\":\"%s\"", w1200);
	assert_builds(body_of(top, ""));
	snprintf(top, sizeof top, "\"from\":{\"email\":\"n@example.com\",\"name\":\"%s\"}",
	         rep_of("n", 1500));
	assert_builds(body_of(top, ""));
	snprintf(top, sizeof top, "\"reply_to\":{\"email\":\"r@example.com\",\"name\":\"%s\"}",
	         rep_of("\\\"", 600));
	assert_builds(body_of(top, ""));
	snprintf(top, sizeof top, "\"headers\":{\"X-Long\":\"%s\",\"%s\":\"v\"}", w1200,
	         rep_of("H", V3MAIL_MAX_HEADER_NAME));
	assert_builds(body_of(top, ""));
	snprintf(p0, sizeof p0, "\"headers\":{\"X-Jp\":\"%s\"}", rep_of("日本語", 300));
	assert_builds(body_of("", p0));
	/* tabs are allowed; non-ASCII and substitutions in the subject */
	assert_builds(
	    body_of("", "\"subject\":\"a\\tb caf\u00e9 -x-\","
	                "\"substitutions\":{\"-x-\":\"c\\td\",\"-y-\":\"\\u0001 body only\"}"));
	snprintf(
	    p0, sizeof p0,
	    "\"to\":[{\"email\":\"t@example.jp\",\"name\":\"Ann \\\"The\\\" \\\\ O'Neil, %s\"}]",
	    rep_of("山", 400));
	assert_builds(body_of("", p0));
	/* MIME types of every token character */
	assert_builds(body_of("\"content\":[{\"type\":\"text/plain\",\"value\":\"p\"},"
	                      "{\"type\":\"text/html\",\"value\":\"h\"},"
	                      "{\"type\":\"application/vnd.example-v2+json\",\"value\":\"{}\"},"
	                      "{\"type\":\"x!#$%&'*+-.^_`{|}~/y\",\"value\":\"z\"}]",
	                      ""));
	/* attachments at the limits: 255-byte names, 255-character IDs */
	snprintf(top, sizeof top,
	         "\"attachments\":[{\"content\":\"AAEC\",\"filename\":\"%sa\",\"type\":"
	         "\"image/svg+xml\",\"disposition\":\"inline\",\"content_id\":\"%s\"},"
	         "{\"content\":\"AAEC\",\"filename\":\"%s\"}]",
	         rep_of("é", 127), rep_of("c", 255), rep_of("f f", 85));
	assert_builds(body_of(top, ""));
	/* X-SMTPAPI: the longest custom_args strings, ten long categories */
	snprintf(top, sizeof top, "\"custom_args\":{\"k\":\"%s\",\"%s\":\"v\"},\"categories\":[",
	         rep_of("v", 898), rep_of("é", 148));
	for (int i = 0; i < 10; i++)
		snprintf(top + strlen(top), sizeof top - strlen(top), "%s\"%d%s\"", i ? "," : "", i,
		         rep_of("\\\"", 254));
	strcat(top, "]");
	snprintf(p0, sizeof p0, "\"custom_args\":{\"p\":\"%s\"}", rep_of("\\\"", 448));
	assert_builds(body_of(top, p0));
}

/* Bodies the builder cannot write: refused at the intake, naming the field. */
static void test_unbuildable_bodies_refused(void **state)
{
	static const struct {
		const char *top, *p0, *field;
	} cases[] = {
	    {"\"content\":[{\"type\":\"foo\",\"value\":\"x\"}]", "", "content.0.type"},
	    {"\"attachments\":[{\"content\":\"AAEC\",\"filename\":\"a\",\"type\":"
	     "\"application/pdf\\u0001\"}]",
	     "", "attachments.0.type"},
	    {"\"attachments\":[{\"content\":\"AAEC\",\"filename\":\"a\\u0007\"}]", "",
	     "attachments.0.filename"},
	    {"\"attachments\":[{\"content\":\"AAEC\",\"filename\":\"a\",\"content_id\":\"a b\"}]",
	     "", "attachments.0.content_id"},
	    {"\"subject\":\"a\\u0001b\"", "", "subject"},
	    {"\"from\":{\"email\":\"n@example.com\",\"name\":\"a\\u000bb\"}", "", "from.name"},
	    {"", "\"to\":[{\"email\":\"\\\"q\\\"@example.jp\"}]", "personalizations.0.to.0.email"},
	    {"\"subject\":\"-s-\"", "\"substitutions\":{\"-s-\":\"a\\r\\nBcc: x@y.z\"}",
	     "personalizations.0.substitutions.-s-"},
	};
	char top[4000];

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
		assert_refused(body_of(cases[i].top, cases[i].p0), cases[i].field);
	snprintf(top, sizeof top, "\"headers\":{\"%s\":\"v\"}",
	         rep_of("H", V3MAIL_MAX_HEADER_NAME + 1));
	assert_refused(body_of(top, ""), "headers");
	snprintf(top, sizeof top, "\"custom_args\":{\"k\":\"%s\"}", rep_of("v", 2000));
	assert_refused(body_of(top, ""), "custom_args");
	snprintf(top, sizeof top, "\"attachments\":[{\"content\":\"AAEC\",\"filename\":\"%s\"}]",
	         rep_of("é", 200));
	assert_refused(body_of(top, ""), "attachments.0.filename");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_encode_words_japanese),
	    cmocka_unit_test(test_header_text),
	    cmocka_unit_test(test_fold),
	    cmocka_unit_test(test_mailbox),
	    cmocka_unit_test(test_json_ascii),
	    cmocka_unit_test(test_fold_json),
	    cmocka_unit_test(test_substitute),
	    cmocka_unit_test(test_headers_merge),
	    cmocka_unit_test(test_smtpapi),
	    cmocka_unit_test(test_smtpapi_tracking),
	    cmocka_unit_test(test_crlf),
	    cmocka_unit_test(test_build),
	    cmocka_unit_test(test_accepted_bodies_build),
	    cmocka_unit_test(test_unbuildable_bodies_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
