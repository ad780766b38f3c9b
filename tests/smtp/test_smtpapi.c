/*
 * test_smtpapi.c -- the X-SMTPAPI splice of a raw message, byte for byte.
 *
 * DESCRIPTION
 *	Every case compares the whole output with the exact bytes expected:
 *	the field added to a message without one, an existing folded field
 *	merged (the application's category, unique_args and other filters
 *	kept, the route's tracking and warmup args put in), several fields
 *	made one, removal when the route has x_smtpapi off (first, middle
 *	and last field of the block, continuation lines included), a body
 *	that says "X-SMTPAPI:" left alone, CRLF kept everywhere, and the
 *	refusals: not JSON, not an object, a "to" list, a member of the
 *	wrong type.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sender/smtpapi.h"

/* The route of most cases: x_smtpapi on, click tracking on, the rest off. */
static const struct mime_opts on = {
    .x_smtpapi = 1, .click = 1, .warmup_day = 3, .route_name = "new", .ip_pool = ""};
static const struct mime_opts off = {.x_smtpapi = 0, .warmup_day = 3, .route_name = "old"};

/* The field every message without one gets from route "on". */
#define ROUTE_FIELD                                                                                \
	"X-SMTPAPI: "                                                                              \
	"{\"filters\":{\"clicktrack\":{\"settings\":{\"enable\":1}},\"opentrack\":{\r\n"           \
	" \"settings\":{\"enable\":0}},\"subscriptiontrack\":{\"settings\":{\"enable\":0}}},\r\n"  \
	" \"unique_args\":{\"warmup_day\":\"3\",\"warmup_route\":\"new\"}}\r\n"

/* Splices msg and checks the result against want, byte for byte. */
static void check(const char *msg, const struct mime_opts *o, const char *want)
{
	char *out = NULL, err[256];
	size_t n = 0;

	assert_int_equal(smtpapi_splice(msg, strlen(msg), o, &out, &n, err, sizeof(err)), 0);
	assert_non_null(out);
	assert_string_equal(out, want);
	assert_int_equal(n, strlen(want));
	free(out);
}

/* Splices msg and expects a refusal whose reason contains why. */
static void refused(const char *msg, const struct mime_opts *o, const char *why)
{
	char *out = (char *)1, err[256];
	size_t n = 1;

	assert_int_equal(smtpapi_splice(msg, strlen(msg), o, &out, &n, err, sizeof(err)), -1);
	assert_null(out);
	assert_int_equal(n, 0);
	if (strstr(err, why) == NULL)
		fail_msg("error '%s' does not say '%s'", err, why);
}

static void test_added_when_absent(void **state)
{
	(void)state;
	check("From: a@example.com\r\nSubject: hi\r\n\r\nbody\r\n", &on,
	      ROUTE_FIELD "From: a@example.com\r\nSubject: hi\r\n\r\nbody\r\n");
	/* No header at all, and no body. */
	check("\r\nbody\r\n", &on, ROUTE_FIELD "\r\nbody\r\n");
	check("", &on, ROUTE_FIELD);
}

/* Folded with a space, a tab and two spaces; 8-bit category text; the
 * app's opentrack on and ganalytics. */
#define APP_FOLDED                                                                                 \
	"From: a@example.com\r\n"                                                                  \
	"X-SMTPAPI: {\"category\": [\"news\", \"日本\"],\r\n"                                    \
	" \"unique_args\": {\"campaign\": \"c1\", \"warmup_day\": \"99\"},\r\n"                    \
	"\t\"filters\": {\"opentrack\": {\"settings\": {\"enable\": 1}},\r\n"                      \
	"  \"ganalytics\": {\"settings\": {\"enable\": 1}}}}\r\n"                                  \
	"Subject: hi\r\n"                                                                          \
	"\r\n"                                                                                     \
	"body\r\n"

/* The merged field, with opentrack's enable as OPEN. */
#define MERGED(OPEN)                                                                               \
	"From: a@example.com\r\n"                                                                  \
	"X-SMTPAPI: {\"category\":[\"news\",\"\\u65e5\\u672c\"],\"unique_args\":{\"campaign\":"    \
	"\"c1\",\r\n"                                                                              \
	" \"warmup_day\":\"3\",\"warmup_route\":\"new\"},\"filters\":{\"opentrack\":{"             \
	"\"settings\":{\r\n"                                                                       \
	" \"enable\":" OPEN "}},\"ganalytics\":{\"settings\":{\"enable\":1}},\"clicktrack\":{"     \
	"\"settings\":\r\n"                                                                        \
	" {\"enable\":0}},\"subscriptiontrack\":{\"settings\":{\"enable\":0}}},\"ip_pool\":\r\n"   \
	" \"warm\"}\r\n"                                                                           \
	"Subject: hi\r\n"                                                                          \
	"\r\n"                                                                                     \
	"body\r\n"

static void test_folded_merged(void **state)
{
	struct mime_opts pool = on;

	(void)state;
	pool.click = 0;
	pool.ip_pool = "warm";
	/* The app's warmup_day is the route's to set; the app's opentrack on
	 * stays (the route's tracking is a default); ganalytics stays. */
	check(APP_FOLDED, &pool, MERGED("1"));
	/* force_tracking: the app's opentrack on is the route's to turn off. */
	pool.force_tracking = 1;
	check(APP_FOLDED, &pool, MERGED("0"));
}

static void test_last_of_block(void **state)
{
	(void)state;
	/* Lower case, a blank before the colon; the body's X-SMTPAPI line
	 * is text. */
	check(
	    "From: a@example.com\r\n"
	    "x-smtpapi : {\"asm_group_id\": 7}\r\n"
	    "\r\n"
	    "X-SMTPAPI: {\"body\": 1}\r\n",
	    &on,
	    "From: a@example.com\r\n"
	    "X-SMTPAPI: {\"asm_group_id\":7,\"filters\":{\"clicktrack\":{\"settings\":{"
	    "\"enable\":\r\n"
	    " 1}},\"opentrack\":{\"settings\":{\"enable\":0}},\"subscriptiontrack\":{"
	    "\"settings\":{\r\n"
	    " \"enable\":0}}},\"unique_args\":{\"warmup_day\":\"3\",\"warmup_route\":\"new\"}}\r\n"
	    "\r\n"
	    "X-SMTPAPI: {\"body\": 1}\r\n");
}

static void test_fields_made_one(void **state)
{
	(void)state;
	/* The later field's members win; objects merge; send_at stays. */
	check("X-SMTPAPI: {\"category\": \"a\", \"unique_args\": {\"x\": \"1\", \"y\": \"2\"}}\r\n"
	      "From: a@example.com\r\n"
	      "X-SMTPAPI: {\"unique_args\": {\"y\": \"3\"}, \"send_at\": 1700000000}\r\n"
	      "\r\n"
	      "b\r\n",
	      &on,
	      "X-SMTPAPI: {\"category\":\"a\",\"unique_args\":{\"x\":\"1\",\"y\":\"3\","
	      "\"warmup_day\":\"3\",\r\n"
	      " \"warmup_route\":\"new\"},\"send_at\":1700000000,\"filters\":{\"clicktrack\":{\r\n"
	      " \"settings\":{\"enable\":1}},\"opentrack\":{\"settings\":{\"enable\":0}},\r\n"
	      " \"subscriptiontrack\":{\"settings\":{\"enable\":0}}}}\r\n"
	      "From: a@example.com\r\n"
	      "\r\n"
	      "b\r\n");
}

static void test_removed_when_off(void **state)
{
	(void)state;
	/* Middle, folded. */
	check("From: a@example.com\r\n"
	      "X-SMTPAPI: {\"category\": \"a\",\r\n"
	      "\t\"unique_args\": {}}\r\n"
	      "Subject: hi\r\n"
	      "\r\n"
	      "body\r\n",
	      &off, "From: a@example.com\r\nSubject: hi\r\n\r\nbody\r\n");
	/* First and last of the block, the last folded; not JSON does not
	 * matter to a route that only removes. */
	check("X-SMTPAPI: not json\r\n"
	      "From: a@example.com\r\n"
	      "Subject: hi\r\n"
	      "X-Smtpapi: {\r\n"
	      " }\r\n"
	      "\r\n"
	      "X-SMTPAPI: {\"in the body\": 1}\r\n",
	      &off,
	      "From: a@example.com\r\nSubject: hi\r\n\r\nX-SMTPAPI: {\"in the body\": 1}\r\n");
	/* A message of headers only, the field last and without a line end. */
	check("From: a@example.com\r\nX-SMTPAPI: {}", &off, "From: a@example.com\r\n");
}

/* A message with no X-SMTPAPI field, names alike, and one in its body. */
#define UNTOUCHED                                                                                  \
	"DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=s1;\r\n"                              \
	"\th=from:to:subject; bh=abc=; b=def=\r\n"                                                 \
	"From: a@example.com\r\n"                                                                  \
	"X-SMTPAPI-Note: not the field\r\n"                                                        \
	"X-SMTPAPIx: nor this\r\n"                                                                 \
	"Subject: =?UTF-8?B?5pel5pys?=\r\n"                                                        \
	"\r\n"                                                                                     \
	"X-SMTPAPI: {\"category\": \"body text\"}\r\n"                                             \
	".a dot line\r\n"                                                                          \
	"日本語\r\n"

static void test_untouched(void **state)
{
	(void)state;
	/* Off: nothing to remove, every byte the same. */
	check(UNTOUCHED, &off, UNTOUCHED);
	/* On: the field added first, the rest the same. */
	check(UNTOUCHED, &on, ROUTE_FIELD UNTOUCHED);
}

static void test_refused(void **state)
{
	(void)state;
	refused("X-SMTPAPI: {\"category\": \"a\",\r\n \r\n\r\nb\r\n", &on, "not valid JSON");
	refused("X-SMTPAPI: {} trailing\r\n\r\nb\r\n", &on, "not valid JSON");
	refused("X-SMTPAPI: [1, 2]\r\n\r\nb\r\n", &on, "not an object");
	refused("X-SMTPAPI: {\"to\": [\"x@example.com\", \"y@example.com\"]}\r\n\r\nb\r\n", &on,
	        "\"to\" list");
	refused("X-SMTPAPI: {\"filters\": []}\r\n\r\nb\r\n", &on,
	        "\"filters\" is not a JSON object");
	refused("X-SMTPAPI: {\"unique_args\": \"x\"}\r\n\r\nb\r\n", &on,
	        "\"unique_args\" is not a JSON object");
	refused("X-SMTPAPI: {\"filters\": {\"opentrack\": {\"settings\": 1}}}\r\n\r\nb\r\n", &on,
	        "\"settings\" is not a JSON object");
}

/* A NUL inside the header is refused, one in the body is only data. */
static void test_nul(void **state)
{
	static const char hdr[] = "X-SMTPAPI: {\"a\": \0 1}\r\n\r\nb\r\n";
	static const char body[] = "From: a@example.com\r\n\r\nb\0c\r\n";
	char *out, err[256];
	size_t n;

	(void)state;
	assert_int_equal(smtpapi_splice(hdr, sizeof(hdr) - 1, &on, &out, &n, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "NUL"));
	assert_int_equal(smtpapi_splice(body, sizeof(body) - 1, &off, &out, &n, err, sizeof(err)),
	                 0);
	assert_int_equal(n, sizeof(body) - 1);
	assert_memory_equal(out, body, n);
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_added_when_absent), cmocka_unit_test(test_folded_merged),
	    cmocka_unit_test(test_last_of_block),     cmocka_unit_test(test_fields_made_one),
	    cmocka_unit_test(test_removed_when_off),  cmocka_unit_test(test_untouched),
	    cmocka_unit_test(test_refused),           cmocka_unit_test(test_nul),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
