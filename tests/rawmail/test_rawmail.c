/*
 * NAME
 *	test_rawmail.c -- messages taken over SMTP as SendGrid v3 bodies
 *
 * DESCRIPTION
 *	Converts the fixture messages in data/ (CRLF, as received over SMTP)
 *	and checks the decoded strings byte for byte: Japanese subjects,
 *	names and bodies (ISO-2022-JP, Shift_JIS with CP932's characters),
 *	ISO-8859-1 quoted-printable, base64, the body found in alternative,
 *	mixed and related structures, attachments decoded back to the
 *	original files, RFC 2231 and RFC 2047 file names, the headers kept
 *	and dropped, and X-SMTPAPI translated.  Every body that converts
 *	must pass v3mail_validate() with one personalization added, and the
 *	SMTP route's MIME builder must build it.  The refusals (signed,
 *	encrypted, fragments, no text part, malformed X-SMTPAPI) are checked
 *	by their reason.  A 30 MB message converts in time linear in its size.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sender/mime.h"
#include "sender/rawmail.h"
#include "sender/v3mail.h"

#ifndef RAWMAIL_DATA
#error RAWMAIL_DATA must name the fixture directory
#endif

/* The bytes of a fixture file (NUL-terminated; *len without it). */
static char *slurp(const char *name, size_t *len)
{
	char path[512];
	FILE *f;
	char *buf;
	long n;

	snprintf(path, sizeof path, "%s/%s", RAWMAIL_DATA, name);
	f = fopen(path, "rb");
	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	rewind(f);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	*len = (size_t)n;
	return buf;
}

/* Asserts the body passes SendGrid's rules with one personalization, and
 * that the SMTP route's builder can make a message of it. */
static void assert_sendable(const char *json)
{
	cJSON *body = cJSON_Parse(json), *pers;
	struct v3mail_errors errs;
	struct mime_opts o = {.now = 1764547200};
	struct mime_msg m = {0};
	char err[256] = "";
	CURL *easy;

	assert_non_null(body);
	assert_null(cJSON_GetObjectItemCaseSensitive(body, "personalizations"));
	pers = cJSON_Parse("{\"to\":[{\"email\":\"x@example.com\"}]}");
	cJSON_AddItemToObject(body, "personalizations", cJSON_CreateArray());
	cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(body, "personalizations"),
	                     cJSON_Duplicate(pers, 1));
	if (v3mail_validate(body, &errs) < 0)
		fail_msg("v3mail_validate: %s: %s", errs.e[0].field, errs.e[0].message);
	cJSON_DeleteItemFromObjectCaseSensitive(body, "personalizations");

	easy = curl_easy_init();
	assert_non_null(easy);
	if (mime_build_json(&m, easy, body, pers, &o, err, sizeof err) != 0)
		fail_msg("mime_build_json: %s", err);
	mime_msg_free(&m);
	curl_easy_cleanup(easy);
	cJSON_Delete(pers);
	cJSON_Delete(body);
}

/* Converts text, asserting success and sendability; returns the tree. */
static cJSON *convert_text(const char *raw, size_t len)
{
	char *json = NULL, err[256];
	cJSON *body;

	if (rawmail_to_v3(raw, len, &json, err, sizeof err) != 0)
		fail_msg("rawmail_to_v3: %s", err);
	assert_sendable(json);
	body = cJSON_Parse(json);
	assert_non_null(body);
	free(json);
	return body;
}

/* Converts a fixture file. */
static cJSON *convert_file(const char *name)
{
	size_t len;
	char *raw = slurp(name, &len);
	cJSON *body = convert_text(raw, len);

	free(raw);
	return body;
}

/* Converts a message expected to be refused; returns the reason. */
static const char *refused_text(const char *raw, size_t len)
{
	static char err[256];
	char *json = (char *)1;

	assert_int_equal(rawmail_to_v3(raw, len, &json, err, sizeof err), -1);
	assert_null(json);
	assert_true(err[0] != '\0');
	return err;
}

/* The same for a message given as C text. */
static const char *refused(const char *raw)
{
	return refused_text(raw, strlen(raw));
}

/* The same for a fixture file. */
static const char *refused_file(const char *name)
{
	size_t len;
	char *raw = slurp(name, &len);
	static char err[256];

	snprintf(err, sizeof err, "%s", refused_text(raw, len));
	free(raw);
	return err;
}

/* body.path as a string ("content.0.value", "from.name"), or NULL. */
static const char *str_at(const cJSON *body, const char *path)
{
	char buf[128], *save, *tok;
	const cJSON *it = body;

	snprintf(buf, sizeof buf, "%s", path);
	for (tok = strtok_r(buf, ".", &save); tok && it; tok = strtok_r(NULL, ".", &save))
		it = cJSON_IsArray(it) ? cJSON_GetArrayItem(it, atoi(tok))
		                       : cJSON_GetObjectItemCaseSensitive(it, tok);
	return cJSON_IsString(it) ? it->valuestring : NULL;
}

/* Asserts body.path is the string want. */
#define assert_str_at(body, path, want) assert_string_equal(str_at(body, path) ?: "(none)", want)

/* Asserts attachment i decodes to the bytes of the fixture file. */
static void assert_attachment_is(const cJSON *body, int i, const char *file)
{
	char path[64];
	const char *b64;
	size_t len, n;
	char *want = slurp(file, &len);
	unsigned char *got;

	snprintf(path, sizeof path, "attachments.%d.content", i);
	b64 = str_at(body, path);
	assert_non_null(b64);
	n = strlen(b64);
	got = malloc(n / 4 * 3 + 1);
	assert_int_equal(EVP_DecodeBlock(got, (const unsigned char *)b64, (int)n),
	                 (int)((len + 2) / 3 * 3));
	assert_memory_equal(got, want, len);
	free(got);
	free(want);
}

/* Plain ASCII: from with its name, the subject, the body with LF line
 * ends, and the headers kept (unfolded) and dropped. */
static void test_plain(void **state)
{
	cJSON *b = convert_file("plain.eml");
	const cJSON *h = cJSON_GetObjectItemCaseSensitive(b, "headers");
	const char *dropped[] = {"To",           "Cc",           "Sender",
	                         "Received",     "Return-Path",  "Date",
	                         "MIME-Version", "Content-Type", "Content-Transfer-Encoding"};

	(void)state;
	assert_str_at(b, "from.email", "alice@example.com");
	assert_str_at(b, "from.name", "Alice Example");
	assert_str_at(b, "subject", "Your order has shipped");
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(b, "content")), 1);
	assert_str_at(b, "content.0.type", "text/plain");
	assert_str_at(b, "content.0.value", "Hello Bob,\n\nyour order 1234 has shipped.\n");
	assert_str_at(b, "headers.Message-ID", "<order-1234@example.com>");
	assert_str_at(b, "headers.In-Reply-To", "<question-77@example.net>");
	assert_str_at(b, "headers.References", "<thread-1@example.net> <question-77@example.net>");
	assert_str_at(b, "headers.List-Unsubscribe",
	              "<https://example.com/u/abc>, <mailto:unsub-abc@example.com>");
	assert_str_at(b, "headers.List-Unsubscribe-Post", "List-Unsubscribe=One-Click");
	assert_str_at(b, "headers.X-Mailer", "ShopApp 4.2");
	assert_str_at(b, "headers.X-Campaign-Id", "spring-2026");
	for (size_t i = 0; i < sizeof dropped / sizeof *dropped; i++)
		assert_null(cJSON_GetObjectItem(h, dropped[i]));
	assert_null(cJSON_GetObjectItemCaseSensitive(b, "reply_to"));
	assert_null(cJSON_GetObjectItemCaseSensitive(b, "attachments"));
	cJSON_Delete(b);
}

/* ISO-2022-JP: subject and display name as encoded-words, body 7bit. */
static void test_iso2022jp(void **state)
{
	cJSON *b = convert_file("iso2022jp.eml");

	(void)state;
	assert_str_at(b, "subject", "お知らせ：ご予約の確認");
	assert_str_at(b, "from.name", "株式会社サンプル");
	assert_str_at(b, "from.email", "shop@example.jp");
	assert_str_at(b, "content.0.value", "こんにちは。\nご予約ありがとうございます。\n");
	cJSON_Delete(b);
}

/* Shift_JIS 8bit body, read as CP932: ① and ～ (FULLWIDTH TILDE) are
 * CP932's, which Japanese mailers write under the Shift_JIS label. */
static void test_shift_jis(void **state)
{
	cJSON *b = convert_file("sjis.eml");

	(void)state;
	assert_str_at(b, "subject", "携帯メール");
	assert_str_at(b, "content.0.value", "テスト①～です。\n携帯からのお知らせ\n");
	cJSON_Delete(b);
}

/* ISO-8859-1 quoted-printable, soft line break joined; Q encoded-words. */
static void test_latin1_qp(void **state)
{
	cJSON *b = convert_file("latin1.eml");

	(void)state;
	assert_str_at(b, "from.name", "José García");
	assert_str_at(b, "subject", "Résumé du mois");
	assert_str_at(b, "content.0.value",
	              "Café crème brûlée, une ligne assez longue pour être coupée.\n");
	cJSON_Delete(b);
}

/* multipart/alternative with html first: content is plain then html
 * (SendGrid's order), base64 and quoted-printable decoded. */
static void test_alternative(void **state)
{
	cJSON *b = convert_file("alternative.eml");

	(void)state;
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(b, "content")), 2);
	assert_str_at(b, "content.0.type", "text/plain");
	assert_str_at(b, "content.0.value", "Hello in plain text — with a dash.\n");
	assert_str_at(b, "content.1.type", "text/html");
	assert_str_at(b, "content.1.value", "<p>Hello in <b>HTML</b> — with a dash.</p>");
	cJSON_Delete(b);
}

/* multipart/mixed: the nested alternative is the body, the PDF an
 * attachment whose base64 decodes to the original file. */
static void test_mixed_attachment(void **state)
{
	cJSON *b = convert_file("mixed.eml");

	(void)state;
	assert_str_at(b, "content.0.value", "Report attached.\n");
	assert_str_at(b, "content.1.value", "<p>Report attached.</p>\n");
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(b, "attachments")), 1);
	assert_str_at(b, "attachments.0.type", "application/pdf");
	assert_str_at(b, "attachments.0.filename", "report.pdf");
	assert_str_at(b, "attachments.0.disposition", "attachment");
	assert_null(str_at(b, "attachments.0.content_id"));
	assert_attachment_is(b, 0, "report.pdf");
	cJSON_Delete(b);
}

/* multipart/related inside alternative: the root named by "start" is the
 * html body, the image an inline attachment with its content_id. */
static void test_related_inline(void **state)
{
	cJSON *b = convert_file("related.eml");

	(void)state;
	assert_str_at(b, "content.0.value", "See our logo.\n");
	assert_str_at(b, "content.1.type", "text/html");
	assert_str_at(b, "content.1.value", "<p>See our <img src=\"cid:logo@example.com\"></p>\n");
	assert_str_at(b, "attachments.0.type", "image/png");
	assert_str_at(b, "attachments.0.disposition", "inline");
	assert_str_at(b, "attachments.0.content_id", "logo@example.com");
	assert_str_at(b, "attachments.0.filename", "part-1.png");
	assert_attachment_is(b, 0, "logo.png");
	cJSON_Delete(b);
}

/* File names: RFC 2231 UTF-8, RFC 2047 in a parameter, RFC 2231
 * continuations; a text/plain attachment stays an attachment. */
static void test_filenames(void **state)
{
	cJSON *b = convert_file("rfc2231.eml");

	(void)state;
	assert_str_at(b, "subject", "見積書と請求書");
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(b, "content")), 1);
	assert_str_at(b, "attachments.0.filename", "見積書.pdf");
	assert_attachment_is(b, 0, "report.pdf");
	assert_str_at(b, "attachments.1.filename", "請求書.xls");
	assert_str_at(b, "attachments.1.type", "application/vnd.ms-excel");
	assert_str_at(b, "attachments.2.filename", "very long name.txt");
	assert_str_at(b, "attachments.2.type", "text/plain");
	assert_str_at(b, "attachments.2.content", "bm90ZXM="); /* "notes" */
	cJSON_Delete(b);
}

/* The seed's Postfix header_checks line, folded over two lines: every
 * tracking off, and X-SMTPAPI itself never in headers. */
static void test_smtpapi_seed(void **state)
{
	cJSON *b = convert_file("smtpapi-seed.eml");
	char *ts = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(b, "tracking_settings"));

	(void)state;
	assert_string_equal(ts, "{\"click_tracking\":{\"enable\":false},"
	                        "\"open_tracking\":{\"enable\":false},"
	                        "\"subscription_tracking\":{\"enable\":false}}");
	assert_null(cJSON_GetObjectItemCaseSensitive(b, "headers"));
	free(ts);
	cJSON_Delete(b);
}

/* Postfix's line and the application's header together: the first one
 * (prepended last, by the relay) wins a setting both name; categories,
 * unique_args as strings, asm, ip_pool and send_at are translated. */
static void test_smtpapi_args(void **state)
{
	cJSON *b = convert_file("smtpapi-args.eml");
	char *cat = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(b, "categories"));
	char *args = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(b, "custom_args"));
	const cJSON *asm_ = cJSON_GetObjectItemCaseSensitive(b, "asm");

	(void)state;
	assert_string_equal(cat, "[\"newsletter\",\"jp\"]");
	assert_string_equal(args, "{\"user_id\":\"42\",\"campaign\":\"spring\",\"vip\":\"true\"}");
	assert_int_equal(cJSON_GetObjectItemCaseSensitive(asm_, "group_id")->valueint, 123);
	assert_str_at(b, "ip_pool_name", "warmup_pool");
	assert_int_equal(cJSON_GetObjectItemCaseSensitive(b, "send_at")->valuedouble, 1767225600);
	assert_true(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(
	    cJSON_GetObjectItemCaseSensitive(
	        cJSON_GetObjectItemCaseSensitive(b, "tracking_settings"), "click_tracking"),
	    "enable")));
	assert_null(cJSON_GetObjectItemCaseSensitive(b, "personalizations"));
	free(cat);
	free(args);
	cJSON_Delete(b);
}

#define MSG(hdr) "From: a@example.com\r\n" hdr "Subject: s\r\n\r\nbody\r\n"

/* X-SMTPAPI in its other shapes, and each way it can be wrong. */
static void test_smtpapi_shapes(void **state)
{
	static const char *const bad[][2] = {
	    {MSG("X-SMTPAPI: [1,2]\r\n"), "X-SMTPAPI: not a JSON object"},
	    {MSG("X-SMTPAPI: {\"category\":[\"a\",1]}\r\n"), "X-SMTPAPI: category must be"},
	    {MSG("X-SMTPAPI: {\"unique_args\":{\"a\":{\"b\":1}}}\r\n"),
	     "X-SMTPAPI: unique_args.a must be"},
	    {MSG("X-SMTPAPI: {\"filters\":{\"opentrack\":{\"settings\":{\"enable\":2}}}}\r\n"),
	     "X-SMTPAPI: filters.opentrack.settings.enable must be 0 or 1"},
	    {MSG("X-SMTPAPI: {\"filters\":{\"clicktrack\":1}}\r\n"),
	     "X-SMTPAPI: filters.clicktrack.settings must be an object"},
	    {MSG("X-SMTPAPI: {\"send_at\":\"tomorrow\"}\r\n"), "X-SMTPAPI: send_at must be"},
	    {MSG("X-SMTPAPI: {\"to\":[\"someone-else@example.org\"]}\r\n"),
	     "X-SMTPAPI: \"to\" is not taken"},
	    {MSG("X-SMTPAPI: {\"sub\":{\"-name-\":[\"A\"]}}\r\n"), "X-SMTPAPI: \"sub\" is not taken"},
	    {MSG("X-SMTPAPI: {\"send_each_at\":[1]}\r\n"), "X-SMTPAPI: \"send_each_at\" is not"},
	    {MSG("X-SMTPAPI: {\"asm_group_id\":1.5}\r\n"), "X-SMTPAPI: asm_group_id must be"},
	    {MSG("X-SMTPAPI: {\"ip_pool\":\"p\"}\r\n"), "X-SMTPAPI: The name of your IP pool"},
	    {MSG("X-SMTPAPI: {\"category\":[\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\","
	         "\"9\",\"10\",\"11\"]}\r\n"),
	     "X-SMTPAPI: There is a limit of 10 categories"},
	};
	const char *ok = MSG("X-SMTPAPI: {\"category\":\"one\",\"filters\":{\"clicktrack\":"
	                     "{\"settings\":{\"enable\":\"1\",\"enable_text\":true}}}}\r\n");
	cJSON *b;

	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		const char *why = refused(bad[i][0]);

		if (strncmp(why, bad[i][1], strlen(bad[i][1])) != 0)
			fail_msg("case %zu: got \"%s\", want \"%s...\"", i, why, bad[i][1]);
	}
	b = convert_text(ok, strlen(ok));
	assert_str_at(b, "categories.0", "one");
	assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(
	    cJSON_GetObjectItemCaseSensitive(
	        cJSON_GetObjectItemCaseSensitive(b, "tracking_settings"), "click_tracking"),
	    "enable_text")));
	cJSON_Delete(b);
}

/* Malformed X-SMTPAPI JSON: refused, saying where. */
static void test_smtpapi_malformed(void **state)
{
	(void)state;
	assert_string_equal(refused_file("smtpapi-bad.eml"),
	                    "X-SMTPAPI: malformed JSON near byte 50");
}

/* Nothing to put in content: refused (SendGrid needs a text body). */
static void test_no_body_part(void **state)
{
	(void)state;
	assert_string_equal(refused_file("nobody.eml"), "no text/plain or text/html part");
	assert_string_equal(refused("From: a@example.com\r\nSubject: s\r\n"
	                            "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b--\r\n"),
	                    "no text/plain or text/html part");
	assert_string_equal(refused("From: a@example.com\r\nSubject: s\r\n"
	                            "Content-Type: image/gif\r\n\r\nGIF89a\r\n"),
	                    "no text/plain or text/html part");
}

/* An empty body and a missing subject: " " for each, since SendGrid
 * refuses empty strings. */
static void test_empty_text_and_subject(void **state)
{
	const char *m1 = "From: a@example.com\r\nTo: b@example.com\r\n\r\n";
	const char *m2 = "From: a@example.com\r\nSubject:   \r\n\r\nx\r\n";
	cJSON *b;

	(void)state;
	b = convert_text(m1, strlen(m1));
	assert_str_at(b, "subject", " ");
	assert_str_at(b, "content.0.type", "text/plain");
	assert_str_at(b, "content.0.value", " ");
	cJSON_Delete(b);
	b = convert_text(m2, strlen(m2));
	assert_str_at(b, "subject", " ");
	assert_str_at(b, "content.0.value", "x\n");
	cJSON_Delete(b);
}

/* Line ends in text: CRLF becomes LF and a lone CR stays, the same whether
 * the text is read as it lies (7bit, 8bit, no encoding said) or through
 * GMime's decoding (quoted-printable, base64); 8-bit UTF-8 and NULs too. */
static void test_line_ends(void **state)
{
	static const struct {
		const char *cte, *body;
	} forms[] = {
	    {NULL, "one\r\ntwo\rthree \xc3\xa9\r\n\r\nend\r\n"},
	    {"7bit", "one\r\ntwo\rthree \xc3\xa9\r\n\r\nend\r\n"},
	    {"8bit", "one\r\ntwo\rthree \xc3\xa9\r\n\r\nend\r\n"},
	    {"quoted-printable", "one\r\ntwo=0Dthree =C3=A9\r\n\r\nend\r\n"},
	    {"base64", "b25lDQp0d28NdGhyZWUgw6kNCg0KZW5kDQo=\r\n"},
	};
	char raw[512];
	cJSON *b;

	(void)state;
	for (size_t i = 0; i < sizeof forms / sizeof *forms; i++) {
		int n = snprintf(raw, sizeof raw,
		                 "From: a@example.com\r\nContent-Type: text/plain; charset=utf-8\r\n"
		                 "%s%s%s\r\n%s",
		                 forms[i].cte ? "Content-Transfer-Encoding: " : "",
		                 forms[i].cte ? forms[i].cte : "", forms[i].cte ? "\r\n" : "",
		                 forms[i].body);
		b = convert_text(raw, (size_t)n);
		assert_str_at(b, "content.0.value", "one\ntwo\rthree \xc3\xa9\n\nend\n");
		cJSON_Delete(b);
	}
	/* A NUL in the text is dropped, in a long ASCII run and out of one. */
	{
		const char m[] = "From: a@example.com\r\n\r\nabcdefghijklmnop\0qrstuvwxyz\r\n";

		b = convert_text(m, sizeof m - 1);
		assert_str_at(b, "content.0.value", "abcdefghijklmnopqrstuvwxyz\n");
		cJSON_Delete(b);
	}
}

/* An application's DKIM signature cannot survive (the v3 route re-sends
 * the content, SendGrid signs for itself): the message converts, the
 * signature is dropped. */
static void test_dkim_signed(void **state)
{
	cJSON *b = convert_file("dkim.eml");
	const cJSON *h = cJSON_GetObjectItemCaseSensitive(b, "headers");

	(void)state;
	assert_null(cJSON_GetObjectItem(h, "DKIM-Signature"));
	assert_str_at(b, "headers.Message-ID", "<signed-1@example.com>");
	assert_str_at(b, "content.0.value",
	              "This message carries the application's DKIM signature.\n");
	cJSON_Delete(b);
}

/* Signed, encrypted and fragmentary mail is refused with the reason. */
static void test_refused_structures(void **state)
{
	(void)state;
	assert_true(strncmp(refused_file("smime-signed.eml"), "multipart/signed: ", 18) == 0);
	assert_true(
	    strncmp(refused("From: a@example.com\r\n"
	                    "Content-Type: application/pkcs7-mime; smime-type=enveloped-data\r\n"
	                    "Content-Transfer-Encoding: base64\r\n\r\nMIAGCSqGSIb3\r\n"),
	            "application/pkcs7-mime: ", 24) == 0);
	assert_true(strncmp(refused("From: a@example.com\r\nContent-Type: multipart/encrypted; "
	                            "protocol=\"application/pgp-encrypted\"; boundary=e\r\n\r\n"
	                            "--e\r\nContent-Type: application/pgp-encrypted\r\n\r\n"
	                            "Version: 1\r\n--e\r\nContent-Type: application/octet-stream"
	                            "\r\n\r\n-----BEGIN PGP MESSAGE-----\r\n--e--\r\n"),
	                    "multipart/encrypted: ", 21) == 0);
	assert_true(strncmp(refused("From: a@example.com\r\nContent-Type: message/partial; "
	                            "id=\"x@y\"; number=1; total=2\r\n\r\nFrom: a@example.com\r\n"
	                            "\r\npart\r\n"),
	                    "message/partial: ", 17) == 0);
}

/* From: missing, without a mailbox, invalid; Sender never replaces it. */
static void test_from(void **state)
{
	(void)state;
	assert_string_equal(refused("Sender: s@example.com\r\nSubject: s\r\n\r\nx\r\n"),
	                    "From: missing");
	assert_string_equal(refused("From: undisclosed:;\r\nSubject: s\r\n\r\nx\r\n"),
	                    "From: no address");
	assert_string_equal(refused("From: Someone <nobody>\r\nSubject: s\r\n\r\nx\r\n"),
	                    "From: Does not contain a valid address.");
}

/* Reply-To: one mailbox is reply_to, several reply_to_list (each once). */
static void test_reply_to(void **state)
{
	const char *one = "From: a@example.com\r\nReply-To: =?UTF-8?B?44K144Od44O844OI?= "
	                  "<help@example.com>\r\n\r\nx\r\n";
	const char *many = "From: a@example.com\r\nReply-To: r1@example.com, R2 <r2@example.com>,"
	                   " R1@example.com\r\n\r\nx\r\n";
	cJSON *b;

	(void)state;
	b = convert_text(one, strlen(one));
	assert_str_at(b, "reply_to.email", "help@example.com");
	assert_str_at(b, "reply_to.name", "サポート");
	assert_null(cJSON_GetObjectItemCaseSensitive(b, "reply_to_list"));
	cJSON_Delete(b);
	b = convert_text(many, strlen(many));
	assert_null(cJSON_GetObjectItemCaseSensitive(b, "reply_to"));
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(b, "reply_to_list")),
	                 2);
	assert_str_at(b, "reply_to_list.1.name", "R2");
	cJSON_Delete(b);
}

/* Header text that could forge headers or break JSON: an encoded CR LF
 * in the subject, raw 8-bit UTF-8 (encoded, as SendGrid wants header
 * values), a repeated name (the first kept),
 * controls (a decoded subject holds none, a header stays as written). */
static void test_header_text(void **state)
{
	const char *m = "From: a@example.com\r\n"
	                "Subject: =?UTF-8?B?b25lDQpCY2M6IGV2aWxAZXhhbXBsZS5jb20=?=\r\n"
	                "X-Tag: first\r\nX-TAG: second\r\n"
	                "X-Raw: \xe6\x97\xa5\xe6\x9c\xac\r\n"
	                "X-Ctl: =?UTF-8?B?YQFiG2M=?=\td\r\n\r\nx\r\n";
	const char *ctl = "From: a@example.com\r\nSubject: =?UTF-8?B?YQFiG2M=?=\r\n\r\nx\r\n";
	cJSON *b;

	(void)state;
	b = convert_text(m, strlen(m));
	assert_str_at(b, "subject", "one  Bcc: evil@example.com");
	assert_str_at(b, "headers.X-Tag", "first");
	assert_null(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItem(b, "headers"), "X-TAG"));
	assert_str_at(b, "headers.X-Raw", "=?UTF-8?b?5pel5pys?=");    /* 日本, encoded */
	assert_str_at(b, "headers.X-Ctl", "=?UTF-8?B?YQFiG2M=?=\td"); /* as written */
	cJSON_Delete(b);
	b = convert_text(ctl, strlen(ctl));
	assert_str_at(b, "subject", "a b c");
	cJSON_Delete(b);
}

/* A forwarded message is attached as the message/rfc822 file it is; in
 * mixed mail a text part after the body (a second text/plain, a text/plain
 * after text/html) is an attachment, not an alternative. */
static void test_attached_message(void **state)
{
	const char *m = "From: a@example.com\r\nSubject: fwd\r\n"
	                "Content-Type: multipart/mixed; boundary=m\r\n\r\n"
	                "--m\r\nContent-Type: text/plain\r\n\r\nsee below\r\n"
	                "--m\r\nContent-Type: text/plain\r\n\r\nfooter\r\n"
	                "--m\r\nContent-Type: message/rfc822\r\n\r\n"
	                "From: old@example.com\r\nSubject: old\r\n\r\nold body\r\n"
	                "--m--\r\n";
	const char *seq = "From: a@example.com\r\nContent-Type: multipart/mixed; boundary=s\r\n\r\n"
	                  "--s\r\nContent-Type: text/html\r\n\r\n<p>body</p>\r\n"
	                  "--s\r\nContent-Type: text/plain\r\n\r\nsignature\r\n--s--\r\n";
	cJSON *b;

	(void)state;
	b = convert_text(m, strlen(m));
	assert_str_at(b, "content.0.value", "see below");
	assert_str_at(b, "attachments.0.filename", "part-1.txt");
	assert_str_at(b, "attachments.0.content", "Zm9vdGVy"); /* "footer" */
	assert_str_at(b, "attachments.1.type", "message/rfc822");
	assert_str_at(b, "attachments.1.filename", "part-2.eml");
	cJSON_Delete(b);
	b = convert_text(seq, strlen(seq));
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(b, "content")), 1);
	assert_str_at(b, "content.0.type", "text/html");
	assert_str_at(b, "attachments.0.type", "text/plain");
	assert_str_at(b, "attachments.0.content", "c2lnbmF0dXJl"); /* "signature" */
	cJSON_Delete(b);
}

/* MIME nested past any real mailer's depth is refused, not recursed into. */
static void test_deep_nesting(void **state)
{
	char *m = calloc(1, 64 * 1024), *p = m;

	(void)state;
	p +=
	    sprintf(p, "From: a@example.com\r\nContent-Type: multipart/mixed; boundary=b0\r\n\r\n");
	for (int i = 1; i < 40; i++)
		p += sprintf(p, "--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n",
		             i - 1, i);
	p += sprintf(p, "--b39\r\nContent-Type: text/plain\r\n\r\ndeep\r\n");
	assert_string_equal(refused(m), "MIME structure nested deeper than 32 levels");
	free(m);
}

/* Appends s at p; returns the new end. */
static char *put(char *p, const char *s)
{
	size_t n = strlen(s);

	memcpy(p, s, n);
	return p + n;
}

/* Seconds to convert a message whose attachment and html body together
 * make about mb megabytes. */
static double convert_seconds(size_t mb)
{
	size_t attach = mb * 1024 * 1024 / 2, html = mb * 1024 * 1024 / 4,
	       cap = mb * 1024 * 1024 + 4096;
	char *m = malloc(cap), *p = m, *json, err[256];
	unsigned char *bin = malloc(attach);
	struct timespec t0, t1;
	size_t i;

	if (!m || !bin)
		abort(); /* out of memory: nothing to measure */
	for (i = 0; i < attach; i++)
		bin[i] = (unsigned char)(i * 7919 >> 3);
	p = put(p, "From: big@example.com\r\nSubject: big\r\n"
	           "Content-Type: multipart/mixed; boundary=B\r\n\r\n"
	           "--B\r\nContent-Type: text/html; charset=utf-8\r\n\r\n");
	for (i = 0; i < html / 64; i++)
		p += sprintf(p, "<p>line %08zu of a large html body, padded to 64 b</p>\r\n", i);
	p = put(p, "--B\r\nContent-Type: application/octet-stream\r\n"
	           "Content-Transfer-Encoding: base64\r\n\r\n");
	for (i = 0; i < attach; i += 57) {
		int n = EVP_EncodeBlock((unsigned char *)p, bin + i,
		                        (int)(attach - i < 57 ? attach - i : 57));
		p += n;
		*p++ = '\r';
		*p++ = '\n';
	}
	p = put(p, "--B--\r\n");
	assert_true((size_t)(p - m) < cap);

	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(rawmail_to_v3(m, (size_t)(p - m), &json, err, sizeof err), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_true(strlen(json) > attach * 4 / 3);
	free(json);
	free(bin);
	free(m);
	return (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
}

/* 30 MB converts, in about ten times what 3 MB takes (quadratic work
 * would take a hundred times). */
static void test_30mb_linear(void **state)
{
	double small, big;

	(void)state;
	small = convert_seconds(3);
	big = convert_seconds(30);
	print_message("3 MB: %.3f s, 30 MB: %.3f s\n", small, big);
	assert_true(big < 30 * small + 0.5);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_plain),          cmocka_unit_test(test_iso2022jp),
	    cmocka_unit_test(test_shift_jis),      cmocka_unit_test(test_latin1_qp),
	    cmocka_unit_test(test_alternative),    cmocka_unit_test(test_mixed_attachment),
	    cmocka_unit_test(test_related_inline), cmocka_unit_test(test_filenames),
	    cmocka_unit_test(test_smtpapi_seed),   cmocka_unit_test(test_smtpapi_args),
	    cmocka_unit_test(test_smtpapi_shapes), cmocka_unit_test(test_smtpapi_malformed),
	    cmocka_unit_test(test_no_body_part),   cmocka_unit_test(test_empty_text_and_subject),
	    cmocka_unit_test(test_dkim_signed),    cmocka_unit_test(test_refused_structures),
	    cmocka_unit_test(test_from),           cmocka_unit_test(test_reply_to),
	    cmocka_unit_test(test_header_text),    cmocka_unit_test(test_attached_message),
	    cmocka_unit_test(test_deep_nesting),   cmocka_unit_test(test_30mb_linear),
	    cmocka_unit_test(test_line_ends),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
