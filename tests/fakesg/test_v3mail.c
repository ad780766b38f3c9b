/*
 * NAME
 *	test_v3mail.c -- unit tests of SendGrid's v3 body rules
 *
 * DESCRIPTION
 *	Feeds v3mail_validate() bodies that SendGrid accepts and bodies it
 *	refuses, and checks that each refusal names the field SendGrid
 *	would name, since callers fix their requests by that field.  Also
 *	json_strict_parse(), which every request body goes through first.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sender/json_strict.h"
#include "sender/v3mail.h"

/* A body SendGrid accepts; cases below change one thing in it. */
#define VALID                                                                                      \
	"{\"personalizations\":[{\"to\":[{\"email\":\"a@gmail.com\",\"name\":\"A\"}]}],"           \
	"\"from\":{\"email\":\"news@example.com\"},\"subject\":\"Hi\","                            \
	"\"content\":[{\"type\":\"text/plain\",\"value\":\"x\"},"                                  \
	"{\"type\":\"text/html\",\"value\":\"<p>x</p>\"}]}"

/* Validates text; returns v3mail_validate's result and fills errs. */
static int check(const char *text, struct v3mail_errors *errs)
{
	cJSON *body = cJSON_Parse(text);
	int rc;

	assert_non_null(body);
	rc = v3mail_validate(body, errs);
	cJSON_Delete(body);
	return rc;
}

/* True when some error names field. */
static int has_field(const struct v3mail_errors *errs, const char *field)
{
	for (int i = 0; i < errs->n; i++)
		if (strcmp(errs->e[i].field, field) == 0)
			return 1;
	return 0;
}

/* Builds VALID with one top-level member replaced or added: key, raw JSON value. */
static char *with(const char *key, const char *value)
{
	cJSON *b = cJSON_Parse(VALID);
	cJSON *v = value ? cJSON_Parse(value) : NULL;
	char *text;

	assert_non_null(b);
	cJSON_DeleteItemFromObjectCaseSensitive(b, key);
	if (value) {
		assert_non_null(v);
		cJSON_AddItemToObject(b, key, v);
	}
	text = cJSON_PrintUnformatted(b);
	cJSON_Delete(b);
	return text;
}

/* Builds VALID with personalizations[0].key set to value (NULL removes it). */
static char *with_p0(const char *key, const char *value)
{
	cJSON *b = cJSON_Parse(VALID);
	cJSON *p = cJSON_GetArrayItem(cJSON_GetObjectItem(b, "personalizations"), 0);
	char *text;

	cJSON_DeleteItemFromObjectCaseSensitive(p, key);
	if (value) {
		cJSON *v = cJSON_Parse(value);

		assert_non_null(v);
		cJSON_AddItemToObject(p, key, v);
	}
	text = cJSON_PrintUnformatted(b);
	cJSON_Delete(b);
	return text;
}

/* Expects text refused with an error on field. */
static void expect_field(char *text, const char *field)
{
	struct v3mail_errors errs;

	if (check(text, &errs) != -1 || !has_field(&errs, field)) {
		print_error("body %s\nwanted field \"%s\", got %d errors:\n", text, field, errs.n);
		for (int i = 0; i < errs.n; i++)
			print_error("  %s: %s\n", errs.e[i].field, errs.e[i].message);
		free(text);
		fail();
	}
	free(text);
}

/* Expects text accepted. */
static void expect_ok(char *text)
{
	struct v3mail_errors errs;

	if (check(text, &errs) != 0) {
		print_error("body %s\nunexpected: %s: %s\n", text, errs.e[0].field,
		            errs.e[0].message);
		free(text);
		fail();
	}
	free(text);
}

static void test_valid(void **state)
{
	(void)state;
	expect_ok(strdup(VALID));
	expect_ok(with("content", "[{\"type\":\"text/html\",\"value\":\"h\"}]"));
	expect_ok(with("content", "[{\"type\":\"text/plain\",\"value\":\"p\"},"
	                          "{\"type\":\"text/calendar\",\"value\":\"c\"}]"));
	expect_ok(with("headers", "{\"X-Campaign\":\"spring\",\"List-Unsubscribe\":\"<u>\"}"));
	expect_ok(
	    with("categories", "[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\",\"i\",\"j\"]"));
	expect_ok(with("custom_args", "{\"uid\":\"42\"}"));
	expect_ok(with("send_at", "1700000000"));
	expect_ok(with("attachments", "[{\"content\":\"aGVsbG8=\",\"filename\":\"a.txt\","
	                              "\"type\":\"text/plain\",\"disposition\":\"attachment\"}]"));
	expect_ok(with("asm", "{\"group_id\":12,\"groups_to_display\":[12,13]}"));
	expect_ok(with("mail_settings", "{\"sandbox_mode\":{\"enable\":true}}"));
	expect_ok(with("tracking_settings", "{\"click_tracking\":{\"enable\":false,"
	                                    "\"enable_text\":false}}"));
	expect_ok(with("reply_to", "{\"email\":\"r@example.com\"}"));
	expect_ok(
	    with("reply_to_list", "[{\"email\":\"r@example.com\"},{\"email\":\"s@ex.org\"}]"));
	expect_ok(with("unknown_future_field", "[1,{\"x\":null}]"));
	expect_ok(with_p0("cc", "[{\"email\":\"c@yahoo.co.jp\"}]"));
	expect_ok(with_p0("dynamic_template_data", "{\"name\":{\"first\":\"A\"}}"));
	expect_ok(with_p0("substitutions", "{\"-name-\":\"A\"}"));
	expect_ok(with_p0("send_at", "1700000000"));
	expect_ok(with_p0("custom_args", "{\"k\":\"v\"}"));
}

static void test_template_and_subjects(void **state)
{
	char *t;
	cJSON *b;

	(void)state;
	/* a template stands in for content and subject */
	b = cJSON_Parse(VALID);
	cJSON_DeleteItemFromObject(b, "content");
	cJSON_DeleteItemFromObject(b, "subject");
	cJSON_AddStringToObject(b, "template_id", "d-0123");
	t = cJSON_PrintUnformatted(b);
	cJSON_Delete(b);
	expect_ok(t);

	/* no global subject: every personalization needs one */
	b = cJSON_Parse(
	    "{\"personalizations\":[{\"to\":[{\"email\":\"a@x.org\"}],\"subject\":\"1\"},"
	    "{\"to\":[{\"email\":\"b@x.org\"}],\"subject\":\"2\"}],"
	    "\"from\":{\"email\":\"f@x.org\"},"
	    "\"content\":[{\"type\":\"text/plain\",\"value\":\"x\"}]}");
	t = cJSON_PrintUnformatted(b);
	expect_ok(t);
	cJSON_DeleteItemFromObject(
	    cJSON_GetArrayItem(cJSON_GetObjectItem(b, "personalizations"), 1), "subject");
	t = cJSON_PrintUnformatted(b);
	cJSON_Delete(b);
	expect_field(t, "subject");

	expect_field(with("subject", NULL), "subject");
	expect_field(with("subject", "\"\""), "subject");
	expect_field(with("subject", "42"), "subject");
	expect_field(with("subject", "\"a\\r\\nBcc: x@y.org\""), "subject");
	expect_field(with_p0("subject", "\"a\\nb\""), "personalizations.0.subject");
	expect_field(with("template_id", "7"), "template_id");
}

static void test_personalizations(void **state)
{
	char big[64 * 1024], *p = big;
	size_t left = sizeof big;
	int n;

	(void)state;
	expect_field(with("personalizations", NULL), "personalizations");
	expect_field(with("personalizations", "{}"), "personalizations");
	expect_field(with("personalizations", "[]"), "personalizations");
	expect_field(with("personalizations", "[1]"), "personalizations.0");
	expect_field(with_p0("to", NULL), "personalizations.0.to");
	expect_field(with_p0("to", "[]"), "personalizations.0.to");
	expect_field(with_p0("to", "{\"email\":\"a@x.org\"}"), "personalizations.0.to");
	expect_field(with_p0("to", "[\"a@x.org\"]"), "personalizations.0.to.0");
	expect_field(with_p0("cc", "[]"), "personalizations.0.cc");
	expect_field(with_p0("bcc", "[{\"email\":\"bad\"}]"), "personalizations.0.bcc.0.email");
	expect_field(with_p0("send_at", "\"soon\""), "personalizations.0.send_at");
	expect_field(with_p0("substitutions", "{\"a\":1}"), "personalizations.0.substitutions");
	expect_field(with_p0("dynamic_template_data", "[]"),
	             "personalizations.0.dynamic_template_data");
	expect_field(with_p0("from", "{\"email\":\"nope\"}"), "personalizations.0.from.email");

	/* 1001 personalizations */
	n = snprintf(p, left, "[");
	p += n, left -= (size_t)n;
	for (int i = 0; i < 1001; i++) {
		n = snprintf(p, left, "%s{\"to\":[{\"email\":\"u%d@x.org\"}]}", i ? "," : "", i);
		p += n, left -= (size_t)n;
	}
	snprintf(p, left, "]");
	expect_field(with("personalizations", big), "personalizations");

	/* 1000 personalizations are fine */
	p = strrchr(big, ',');
	strcpy(p, "]");
	expect_ok(with("personalizations", big));

	/* 1001 recipients over two personalizations */
	p = big, left = sizeof big;
	n = snprintf(p, left, "[{\"to\":[");
	p += n, left -= (size_t)n;
	for (int i = 0; i < 1001; i++) {
		n = snprintf(p, left, "%s{\"email\":\"r%d@x.org\"}%s",
		             i == 500 ? "]},{\"to\":[" : "", i, i == 499 || i == 1000 ? "" : ",");
		p += n, left -= (size_t)n;
	}
	snprintf(p, left, "]}]");
	expect_field(with("personalizations", big), "personalizations");
}

static void test_addresses(void **state)
{
	static const char *const bad[] = {
	    "",
	    "plain",
	    "@x.org",
	    "a@",
	    "a@b@c.org",
	    "a b@x.org",
	    "a@localhost",
	    "a@.x.org",
	    "a@x.org.",
	    "a@x..org",
	    "a\t@x.org",
	    "<a@x.org>",
	    "a@x.org\r\n",
	    "\"a\"@x,org.com",
	};
	char email[400], body[600];

	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		cJSON *s = cJSON_CreateString(bad[i]);
		char *q = cJSON_PrintUnformatted(s);

		snprintf(body, sizeof body, "[{\"email\":%s}]", q);
		free(q);
		cJSON_Delete(s);
		expect_field(with_p0("to", body), "personalizations.0.to.0.email");
	}
	/* 320 characters in all is the limit */
	memset(email, 'a', sizeof email);
	strcpy(email + 321 - 8, "@x.co.jp");
	snprintf(body, sizeof body, "[{\"email\":\"%s\"}]", email);
	expect_field(with_p0("to", body), "personalizations.0.to.0.email");
	strcpy(email + 320 - 8, "@x.co.jp");
	snprintf(body, sizeof body, "[{\"email\":\"%s\"}]", email);
	expect_ok(with_p0("to", body));

	expect_ok(with_p0("to", "[{\"email\":\"first.last+tag@sub.example.co.uk\"}]"));
	expect_field(with_p0("to", "[{\"email\":\"a@x.org\",\"name\":\"x\\r\\nBcc: b@x.org\"}]"),
	             "personalizations.0.to.0.name");
	expect_field(with_p0("to", "[{\"email\":\"a@x.org\",\"name\":5}]"),
	             "personalizations.0.to.0.name");
	expect_field(with("from", NULL), "from");
	expect_field(with("from", "\"f@x.org\""), "from");
	expect_field(with("from", "{\"name\":\"n\"}"), "from.email");
	expect_field(with("from", "{\"email\":\"f@x.org\",\"name\":\"a\\nb\"}"), "from.name");
	expect_field(with("reply_to", "{\"email\":\"bad\"}"), "reply_to.email");
	expect_field(with("reply_to_list", "[{\"email\":\"r@x.org\"},{\"email\":\"R@x.org\"}]"),
	             "reply_to_list.1");
}

static void test_duplicates(void **state)
{
	char *t;
	cJSON *b, *p;

	(void)state;
	expect_field(with_p0("to", "[{\"email\":\"a@x.org\"},{\"email\":\"A@X.org\"}]"),
	             "personalizations.0.to.1");
	b = cJSON_Parse(VALID);
	p = cJSON_GetArrayItem(cJSON_GetObjectItem(b, "personalizations"), 0);
	cJSON_AddItemToObject(p, "bcc", cJSON_Parse("[{\"email\":\"a@gmail.com\"}]"));
	t = cJSON_PrintUnformatted(b);
	cJSON_Delete(b);
	expect_field(t, "personalizations.0.bcc.0");
	/* the same address in two personalizations is two envelopes: fine */
	expect_ok(with("personalizations", "[{\"to\":[{\"email\":\"a@x.org\"}]},"
	                                   "{\"to\":[{\"email\":\"a@x.org\"}]}]"));
}

static void test_content(void **state)
{
	(void)state;
	expect_field(with("content", NULL), "content");
	expect_field(with("content", "[]"), "content");
	expect_field(with("content", "\"text\""), "content");
	expect_field(with("content", "[{\"type\":\"text/html\",\"value\":\"h\"},"
	                             "{\"type\":\"text/plain\",\"value\":\"p\"}]"),
	             "content");
	expect_field(with("content", "[{\"type\":\"text/plain\",\"value\":\"p\"},"
	                             "{\"type\":\"text/plain\",\"value\":\"q\"}]"),
	             "content");
	expect_field(with("content", "[{\"type\":\"text/html\",\"value\":\"h\"},"
	                             "{\"type\":\"text/html\",\"value\":\"q\"}]"),
	             "content");
	expect_field(with("content", "[{\"type\":\"text/calendar\",\"value\":\"c\"},"
	                             "{\"type\":\"text/plain\",\"value\":\"p\"}]"),
	             "content");
	expect_field(with("content", "[{\"value\":\"p\"}]"), "content.0.type");
	expect_field(with("content", "[{\"type\":\"\",\"value\":\"p\"}]"), "content.0.type");
	expect_field(with("content", "[{\"type\":\"text/plain; charset=utf-8\",\"value\":\"p\"}]"),
	             "content.0.type");
	expect_field(with("content", "[{\"type\":\"text/plain\"}]"), "content.0.value");
	expect_field(with("content", "[{\"type\":\"text/plain\",\"value\":\"\"}]"),
	             "content.0.value");
	expect_field(with("content", "[{\"type\":\"text/plain\",\"value\":[]}]"),
	             "content.0.value");
}

static void test_headers(void **state)
{
	static const char *const reserved[] = {
	    "To",
	    "from",
	    "SUBJECT",
	    "reply-to",
	    "cc",
	    "Bcc",
	    "content-type",
	    "Content-Transfer-Encoding",
	    "dkim-signature",
	    "Received",
	    "X-SG-ID",
	    "x-sg-eid",
	};
	char h[128];

	(void)state;
	for (size_t i = 0; i < sizeof reserved / sizeof *reserved; i++) {
		snprintf(h, sizeof h, "{\"%s\":\"v\"}", reserved[i]);
		expect_field(with("headers", h), "headers");
		expect_field(with_p0("headers", h), "personalizations.0.headers");
	}
	expect_field(with("headers", "{\"X-A\":\"1\\r\\nBcc: x@y.org\"}"), "headers");
	expect_field(with("headers", "{\"X-A\":\"1\\nx\"}"), "headers");
	expect_field(with_p0("headers", "{\"X-A\":\"a\\rb\"}"), "personalizations.0.headers");
	expect_field(with("headers", "{\"X-A\":1}"), "headers");
	expect_field(with("headers", "[]"), "headers");
	expect_field(with("headers", "{\"X A\":\"1\"}"), "headers");
	expect_field(with("headers", "{\"X-\\u00e9\":\"1\"}"), "headers");
	expect_field(with("headers", "{\"X-A\":\"1\",\"x-a\":\"2\"}"), "headers");
}

/* An object of string members "<prefix>NN" that serializes in exactly
 * total bytes, no value longer than 700 (each must fit X-SMTPAPI). */
static void args_of(char *out, size_t cap, const char *prefix, size_t total)
{
	size_t len = 1, over, room, v;
	int k = 0;

	strcpy(out, "{");
	do {
		over = (k ? 1 : 0) + strlen(prefix) + 2 + 5 + 1; /* ,"pNN":"" and } */
		room = total - len - over;
		v = room > 800 ? 700 : room;
		len += (size_t)snprintf(out + len, cap - len, "%s\"%s%02d\":\"%0*d\"", k ? "," : "",
		                        prefix, k, (int)v, 0);
		k++;
	} while (v != room);
	strcat(out, "}");
	assert_int_equal(strlen(out), total);
}

static void test_categories_and_args(void **state)
{
	char big[12000];

	(void)state;
	expect_field(with("categories", "[\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\",\"9\","
	                                "\"10\",\"11\"]"),
	             "categories");
	expect_field(with("categories", "\"news\""), "categories");
	expect_field(with("categories", "[1]"), "categories");
	expect_field(with("categories", "[\"a\",\"a\"]"), "categories");
	expect_field(with("categories", "[\"caf\\u00e9\"]"), "categories");
	memset(big, 'c', 300);
	big[0] = '[', big[1] = '"';
	strcpy(big + 2 + 256, "\"]");
	expect_field(with("categories", big), "categories");
	strcpy(big + 2 + 255, "\"]");
	expect_ok(with("categories", big));

	expect_field(with("custom_args", "[]"), "custom_args");
	expect_field(with("custom_args", "{\"a\":1}"), "custom_args");
	expect_field(with_p0("custom_args", "{\"a\":true}"), "personalizations.0.custom_args");
	args_of(big, sizeof big, "k", 10000);
	expect_ok(with("custom_args", big));
	args_of(big, sizeof big, "k", 10001);
	expect_field(with("custom_args", big), "custom_args");

	/* One key or value must fit a line of X-SMTPAPI: 900 as ASCII JSON,
	 * quotes included, a non-ASCII character as \uXXXX. */
	snprintf(big, sizeof big, "{\"k\":\"%0*d\"}", 898, 0);
	expect_ok(with("custom_args", big));
	snprintf(big, sizeof big, "{\"k\":\"%0*d\"}", 899, 0);
	expect_field(with("custom_args", big), "custom_args");
	snprintf(big, sizeof big, "{\"%0*d\":\"v\"}", 899, 0);
	expect_field(with_p0("custom_args", big), "personalizations.0.custom_args");
	snprintf(big, sizeof big, "{\"k\":\"\u00e9%0*d\"}", 893, 0);
	expect_field(with("custom_args", big), "custom_args");
	snprintf(big, sizeof big, "{\"k\":\"\u00e9%0*d\"}", 892, 0);
	expect_ok(with("custom_args", big));
}

static void test_merged_custom_args(void **state)
{
	char g[7000], l[7000];
	cJSON *b, *p;
	char *t;

	(void)state;
	args_of(g, sizeof g, "a", 6000);
	args_of(l, sizeof l, "b", 6000);
	b = cJSON_Parse(VALID);
	cJSON_AddItemToObject(b, "custom_args", cJSON_Parse(g));
	p = cJSON_GetArrayItem(cJSON_GetObjectItem(b, "personalizations"), 0);
	cJSON_AddItemToObject(p, "custom_args", cJSON_Parse(l));
	t = cJSON_PrintUnformatted(b);
	expect_field(t, "personalizations.0.custom_args");
	/* the personalization's "a" overrides the global one: no growth */
	cJSON_DeleteItemFromObject(p, "custom_args");
	args_of(l, sizeof l, "a", 5990);
	cJSON_AddItemToObject(p, "custom_args", cJSON_Parse(l));
	t = cJSON_PrintUnformatted(b);
	cJSON_Delete(b);
	expect_ok(t);
}

static void test_types(void **state)
{
	(void)state;
	expect_field(with("send_at", "\"1700000000\""), "send_at");
	expect_field(with("send_at", "1.5"), "send_at");
	expect_field(with("send_at", "-1"), "send_at");
	expect_field(with("batch_id", "5"), "batch_id");
	expect_field(with("ip_pool_name", "\"x\""), "ip_pool_name");
	expect_field(with("sections", "{\"a\":1}"), "sections");
	expect_field(with("asm", "{\"group_id\":\"1\"}"), "asm.group_id");
	expect_field(with("asm", "{}"), "asm.group_id");
	expect_field(with("asm", "{\"group_id\":1,\"groups_to_display\":[\"a\"]}"),
	             "asm.groups_to_display");
	expect_field(with("mail_settings", "{\"sandbox_mode\":{\"enable\":\"yes\"}}"),
	             "mail_settings.sandbox_mode.enable");
	expect_field(with("tracking_settings", "[]"), "tracking_settings");
	expect_field(with("attachments", "{}"), "attachments");
	expect_field(with("attachments", "[{\"content\":\"aGVsbG8=\"}]"), "attachments.0.filename");
	expect_field(with("attachments", "[{\"filename\":\"a.txt\"}]"), "attachments.0.content");
	expect_field(with("attachments", "[{\"content\":\"a b!\",\"filename\":\"a.txt\"}]"),
	             "attachments.0.content");
	expect_field(with("attachments", "[{\"content\":\"aGVsbG8\",\"filename\":\"a.txt\"}]"),
	             "attachments.0.content");
	expect_field(with("attachments", "[{\"content\":\"aGVsbG8=\",\"filename\":\"a\\r\\n\"}]"),
	             "attachments.0.filename");
	expect_field(with("attachments", "[{\"content\":\"aGVsbG8=\",\"filename\":\"a\","
	                                 "\"disposition\":\"weird\"}]"),
	             "attachments.0.disposition");
	expect_field(with("attachments", "[{\"content\":\"aGVsbG8=\",\"filename\":\"a\","
	                                 "\"type\":\"text/plain; x\"}]"),
	             "attachments.0.type");
	expect_ok(with("attachments", "[{\"content\":\"aGVs\\r\\nbG8=\",\"filename\":\"a\"}]"));
}

static void test_not_object(void **state)
{
	struct v3mail_errors errs;

	(void)state;
	assert_int_equal(check("[]", &errs), -1);
	assert_int_equal(errs.n, 1);
	assert_string_equal(errs.e[0].field, "");
	assert_int_equal(check("\"x\"", &errs), -1);
	assert_int_equal(check("null", &errs), -1);
	assert_int_equal(check("{}", &errs), -1);
	assert_true(has_field(&errs, "personalizations"));
	assert_true(has_field(&errs, "from"));
	assert_true(has_field(&errs, "content"));
}

static void test_error_cap_and_dedupe(void **state)
{
	struct v3mail_errors errs = {0};
	char many[8192], *p = many;

	(void)state;
	for (int i = 0; i < 3 * V3MAIL_MAX_ERRORS; i++)
		v3mail_error(&errs, "f", "error %d", i);
	assert_int_equal(errs.n, V3MAIL_MAX_ERRORS);
	errs.n = 0;
	v3mail_error(&errs, "f", "same");
	v3mail_error(&errs, "f", "same");
	v3mail_error(&errs, "g", "same");
	assert_int_equal(errs.n, 2);

	/* many personalizations without a subject: one error, not one each */
	p += sprintf(p, "{\"from\":{\"email\":\"f@x.org\"},\"content\":[{\"type\":\"text/plain\","
	                "\"value\":\"x\"}],\"personalizations\":[");
	for (int i = 0; i < 50; i++)
		p += sprintf(p, "%s{\"to\":[{\"email\":\"u%d@x.org\"}]}", i ? "," : "", i);
	strcpy(p, "]}");
	assert_int_equal(check(many, &errs), -1);
	assert_int_equal(errs.n, 1);
	assert_string_equal(errs.e[0].field, "subject");
}

static void test_errors_json(void **state)
{
	struct v3mail_errors errs = {0};
	cJSON *doc, *arr, *e;
	char *text;

	(void)state;
	v3mail_error(&errs, "personalizations",
	             "The personalizations field is required and must have at least one "
	             "personalization.");
	v3mail_error(&errs, "", "Bad \"quoted\" request");
	text = v3mail_errors_json(&errs);
	assert_non_null(text);
	doc = cJSON_Parse(text);
	free(text);
	assert_non_null(doc);
	assert_int_equal(cJSON_GetArraySize(doc), 1);
	arr = cJSON_GetObjectItemCaseSensitive(doc, "errors");
	assert_true(cJSON_IsArray(arr));
	assert_int_equal(cJSON_GetArraySize(arr), 2);
	e = cJSON_GetArrayItem(arr, 0);
	assert_string_equal(cJSON_GetObjectItem(e, "field")->valuestring, "personalizations");
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(e, "help")));
	e = cJSON_GetArrayItem(arr, 1);
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(e, "field")));
	assert_string_equal(cJSON_GetObjectItem(e, "message")->valuestring,
	                    "Bad \"quoted\" request");
	cJSON_Delete(doc);
}

static void test_first_domain(void **state)
{
	cJSON *p = cJSON_Parse("{\"to\":[{\"email\":\"Someone@Mail.GMAIL.com\"},"
	                       "{\"email\":\"x@yahoo.co.jp\"}]}");
	char buf[64];

	(void)state;
	assert_int_equal(v3mail_first_domain(p, buf, sizeof buf), 0);
	assert_string_equal(buf, "mail.gmail.com");
	assert_int_equal(v3mail_first_domain(p, buf, 8), -1); /* does not fit */
	cJSON_Delete(p);

	p = cJSON_Parse("{\"to\":[]}");
	assert_int_equal(v3mail_first_domain(p, buf, sizeof buf), -1);
	cJSON_Delete(p);
	p = cJSON_Parse("{\"to\":[{\"email\":\"no-at\"}]}");
	assert_int_equal(v3mail_first_domain(p, buf, sizeof buf), -1);
	cJSON_Delete(p);
	p = cJSON_Parse("{\"cc\":[{\"email\":\"a@b.org\"}]}");
	assert_int_equal(v3mail_first_domain(p, buf, sizeof buf), -1);
	cJSON_Delete(p);
	assert_int_equal(v3mail_first_domain(NULL, buf, sizeof buf), -1);
}

/* Parses n bytes of text (a NUL follows them, as in a request buffer);
 * expects a refusal naming field ("" for none). */
static void expect_strict_refused(const char *text, size_t n, const char *field)
{
	struct json_strict_error err;
	char *buf = malloc(n + 1);
	cJSON *o = (cJSON *)1;

	assert_non_null(buf);
	memcpy(buf, text, n);
	buf[n] = '\0';
	if (json_strict_parse(buf, n, &o, &err) != -1 || strcmp(err.field, field) != 0)
		fail_msg("text %.*s: wanted a refusal on \"%s\", got field \"%s\": %s", (int)n,
		         text, field, err.field, err.message);
	assert_null(o);
	assert_true(err.message[0] != '\0');
	free(buf);
}

/* Parses a C string strictly; expects it accepted. */
static cJSON *expect_strict_ok(const char *text)
{
	struct json_strict_error err;
	cJSON *o = NULL;

	if (json_strict_parse(text, strlen(text), &o, &err) != 0)
		fail_msg("text %s refused: %s (%s)", text, err.message, err.field);
	assert_non_null(o);
	return o;
}

#define REFUSED(lit, field) expect_strict_refused(lit, sizeof(lit) - 1, field)

static void test_strict_parse(void **state)
{
	cJSON *o;

	(void)state;
	/* A NUL cut the subject to "hel": escaped or raw, it is refused. */
	REFUSED("{\"subject\":\"hel\\u0000lo\"}", "subject");
	REFUSED("{\"subject\":\"hel\0lo\"}", "subject");
	REFUSED("{\"a\":1,\"p\":[{\"x\":\"ok\"},{\"y\":\"b\\u0000\"}]}", "p.1.y");
	/* raw control bytes in strings (tab and LF too: JSON wants escapes),
	 * and any below 0x20 between tokens but JSON's white space */
	REFUSED("{\"subject\":\"a\x01b\"}", "subject");
	REFUSED("{\"subject\":\"a\tb\"}", "subject");
	REFUSED("{\"from\":{\"name\":\"a\nb\"}}", "from.name");
	REFUSED("{\"k\x1f\":1}", "k\x1f");
	REFUSED("{\"a\":\x01 1}", "");
	REFUSED("{\"a\":1}\0", "");
	/* trailing data after the value */
	REFUSED("{\"subject\":\"a\"} x", "");
	REFUSED("{\"subject\":\"a\"}{\"subject\":\"b\"}", "");
	REFUSED("", "");
	/* duplicate keys, at the top or deep down */
	REFUSED("{\"subject\":\"a\",\"subject\":\"b\"}", "subject");
	REFUSED("{\"personalizations\":[{\"to\":[],\"cc\":[],\"to\":[]}]}",
	        "personalizations.0.to");
	REFUSED("{\"a\":{\"b\":{\"c\":1,\"d\":2,\"c\":3}}}", "a.b.c");
	/* invalid UTF-8: a stray byte, a broken sequence, overlong, a surrogate */
	REFUSED("{\"subject\":\"\xff\"}", "subject");
	REFUSED("{\"subject\":\"\xc3\x28\"}", "subject");
	REFUSED("{\"to\":[{\"name\":\"\xc0\xaf\"}]}", "to.0.name");
	REFUSED("{\"subject\":\"\xed\xa0\x80\"}", "subject");
	REFUSED("{\"a\":1} \xe3\x81", "");

	/* What is fine stays fine. */
	o = expect_strict_ok(
	    " {\"subject\":\"caf\u00e9 \\ud83d\\ude00 \xe6\x97\xa5\",\"a\":[1,2]}\r\n\t ");
	assert_string_equal(cJSON_GetObjectItem(o, "subject")->valuestring,
	                    "caf\u00e9 \U0001F600 \xe6\x97\xa5");
	cJSON_Delete(o);
	o = expect_strict_ok("{\"s\":\"\\\\u0000\",\"S\":\"\\u0001\"}");
	assert_string_equal(cJSON_GetObjectItem(o, "s")->valuestring, "\\u0000");
	cJSON_Delete(o);
	cJSON_Delete(expect_strict_ok("[{\"a\":1},{\"a\":1}]"));
}

static void test_control_characters(void **state)
{
	(void)state;
	/* U+0000-U+001F but tab, and U+007F: in the subject, names, header
	 * values, and substitutions that land in the subject or a header */
	expect_field(with("subject", "\"a\\u0001b\""), "subject");
	expect_field(with("subject", "\"a\\u007fb\""), "subject");
	expect_ok(with("subject", "\"a\\tb\""));
	expect_field(with_p0("subject", "\"\\u001b[31m\""), "personalizations.0.subject");
	expect_field(with_p0("to", "[{\"email\":\"a@gmail.com\",\"name\":\"A\\r\\nBcc: x@y.z\"}]"),
	             "personalizations.0.to.0.name");
	expect_field(with_p0("to", "[{\"email\":\"a@gmail.com\",\"name\":\"A\\u000bB\"}]"),
	             "personalizations.0.to.0.name");
	expect_field(with("from", "{\"email\":\"n@example.com\",\"name\":\"N\\u007f\"}"),
	             "from.name");
	expect_field(with("reply_to", "{\"email\":\"r@example.com\",\"name\":\"\\u0002\"}"),
	             "reply_to.name");
	expect_field(with("headers", "{\"X-A\":\"v\\u0001\"}"), "headers");
	expect_field(with_p0("headers", "{\"X-A\":\"v\\u001f\"}"), "personalizations.0.headers");
	expect_ok(with("headers", "{\"X-A\":\"v\\tw\"}"));
}

static void test_substitutions_in_headers(void **state)
{
	cJSON *b;
	char *t;

	(void)state;
	b = cJSON_Parse(VALID);
	cJSON_AddItemToObject(b, "headers", cJSON_Parse("{\"X-Tag\":\"tag -t-\"}"));
	cJSON_AddItemToObject(cJSON_GetArrayItem(cJSON_GetObjectItem(b, "personalizations"), 0),
	                      "substitutions", cJSON_Parse("{\"-t-\":\"a\\u0001b\"}"));
	t = cJSON_PrintUnformatted(b);
	expect_field(t, "personalizations.0.substitutions.-t-");
	/* the same value used only in the content is fine */
	cJSON_DeleteItemFromObject(b, "headers");
	t = cJSON_PrintUnformatted(b);
	expect_ok(t);
	/* in the subject, global or the personalization's */
	cJSON_ReplaceItemInObject(b, "subject", cJSON_CreateString("Hi -t-"));
	t = cJSON_PrintUnformatted(b);
	expect_field(t, "personalizations.0.substitutions.-t-");
	cJSON_ReplaceItemInObject(b, "subject", cJSON_CreateString("Hi"));
	cJSON_AddItemToObject(cJSON_GetArrayItem(cJSON_GetObjectItem(b, "personalizations"), 0),
	                      "headers", cJSON_Parse("{\"X-P\":\"-t-\"}"));
	t = cJSON_PrintUnformatted(b);
	cJSON_Delete(b);
	expect_field(t, "personalizations.0.substitutions.-t-");
}

static void test_mime_types(void **state)
{
	char big[400];

	(void)state;
	expect_field(with("content", "[{\"type\":\"foo\",\"value\":\"x\"}]"), "content.0.type");
	expect_field(with("content", "[{\"type\":\"text/\",\"value\":\"x\"}]"), "content.0.type");
	expect_field(with("content", "[{\"type\":\"/html\",\"value\":\"x\"}]"), "content.0.type");
	expect_field(with("content", "[{\"type\":\"text/plain/x\",\"value\":\"x\"}]"),
	             "content.0.type");
	expect_field(with("content", "[{\"type\":\"text/pl ain\",\"value\":\"x\"}]"),
	             "content.0.type");
	expect_field(with("content", "[{\"type\":\"text/pl\\u00e9\",\"value\":\"x\"}]"),
	             "content.0.type");
	expect_ok(with("content", "[{\"type\":\"application/vnd.a-b+json\",\"value\":\"x\"}]"));
	snprintf(big, sizeof big, "[{\"type\":\"x/%0*d\",\"value\":\"x\"}]",
	         V3MAIL_MAX_MIME_TYPE - 2, 0);
	expect_ok(with("content", big));
	snprintf(big, sizeof big, "[{\"type\":\"x/%0*d\",\"value\":\"x\"}]",
	         V3MAIL_MAX_MIME_TYPE - 1, 0);
	expect_field(with("content", big), "content.0.type");

	expect_field(with("attachments", "[{\"content\":\"AAEC\",\"filename\":\"a\",\"type\":"
	                                 "\"application/pdf\\u0001\"}]"),
	             "attachments.0.type");
	expect_field(with("attachments", "[{\"content\":\"AAEC\",\"filename\":\"a\",\"type\":"
	                                 "\"pdf\"}]"),
	             "attachments.0.type");
	expect_ok(with("attachments", "[{\"content\":\"AAEC\",\"filename\":\"a\",\"type\":"
	                              "\"image/svg+xml\"}]"));
	expect_field(with("attachments", "[{\"content\":\"AAEC\",\"filename\":\"a\\u0007\"}]"),
	             "attachments.0.filename");
	expect_field(with("attachments", "[{\"content\":\"AAEC\",\"filename\":\"a\",\"content_id\":"
	                                 "\"a b\"}]"),
	             "attachments.0.content_id");
	snprintf(big, sizeof big, "[{\"content\":\"AAEC\",\"filename\":\"%0*d\"}]", 255, 0);
	expect_ok(with("attachments", big));
	snprintf(big, sizeof big, "[{\"content\":\"AAEC\",\"filename\":\"%0*d\"}]", 256, 0);
	expect_field(with("attachments", big), "attachments.0.filename");
}

static void test_header_names_and_emails(void **state)
{
	char big[200];

	(void)state;
	snprintf(big, sizeof big, "{\"X%0*d\":\"v\"}", V3MAIL_MAX_HEADER_NAME - 1, 0);
	expect_ok(with("headers", big));
	snprintf(big, sizeof big, "{\"X%0*d\":\"v\"}", V3MAIL_MAX_HEADER_NAME, 0);
	expect_field(with("headers", big), "headers");
	expect_field(with_p0("to", "[{\"email\":\"\\\"q\\\"@gmail.com\"}]"),
	             "personalizations.0.to.0.email");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_valid),
	    cmocka_unit_test(test_template_and_subjects),
	    cmocka_unit_test(test_personalizations),
	    cmocka_unit_test(test_addresses),
	    cmocka_unit_test(test_duplicates),
	    cmocka_unit_test(test_content),
	    cmocka_unit_test(test_headers),
	    cmocka_unit_test(test_categories_and_args),
	    cmocka_unit_test(test_merged_custom_args),
	    cmocka_unit_test(test_types),
	    cmocka_unit_test(test_not_object),
	    cmocka_unit_test(test_error_cap_and_dedupe),
	    cmocka_unit_test(test_errors_json),
	    cmocka_unit_test(test_first_domain),
	    cmocka_unit_test(test_strict_parse),
	    cmocka_unit_test(test_control_characters),
	    cmocka_unit_test(test_substitutions_in_headers),
	    cmocka_unit_test(test_mime_types),
	    cmocka_unit_test(test_header_names_and_emails),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
