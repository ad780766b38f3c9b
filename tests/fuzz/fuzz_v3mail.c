/*
 * fuzz_v3mail.c -- differential: whatever the intake accepts, both routes
 * can build.
 *
 * The input is a POST /v3/mail/send body.  It goes through what the intake
 * does with it (cJSON parse, v3mail_validate, one unit per personalization
 * printed as stored); when it is accepted, every unit must build as an
 * Internet message for the SMTP route (mime.c, plain and with SendGrid's
 * X-SMTPAPI header), and the batch must build as a v3 request for the
 * SendGrid route (sendgrid.c) that passes SendGrid's rules again.  A
 * message accepted with 202 that a route then refuses is a lost message:
 * the target aborts.
 *
 * One refusal is by design (README, "SMTP route"): a body with template_id
 * and no content has nothing an SMTP route could send, so only the SendGrid
 * route is asked to build it.
 *
 * Nothing else is skipped: whatever the intake accepts, both routes build
 * (content types that are no MIME type, control characters, header names
 * and custom_args too long for X-SMTPAPI are refused at the intake).
 */
#include "fuzz.h"

#include "sender/json_strict.h"
#include "sender/mime.h"
#include "sender/sendgrid.h"
#include "sender/v3mail.h"

static CURL *easy;

static void smtp_build(const char *content, const char *pers, int x_smtpapi)
{
	struct mime_opts o = {.unit_id = 1,
	                      .msgid = "fuzz.msgid",
	                      .now = 1796050800,
	                      .x_smtpapi = x_smtpapi,
	                      .warmup_day = 3,
	                      .route_name = x_smtpapi ? "new" : "old",
	                      .click = 1,
	                      .ip_pool = "pool"};
	struct mime_msg m;
	char err[256] = "";
	int rc;

	memset(&m, 0, sizeof(m));
	rc = mime_build(&m, easy, content, pers, &o, err, sizeof(err));
	fuzz_check(rc == 0,
	           "accepted, but the SMTP route (x_smtpapi %d) refuses: %s\ncontent %s\n"
	           "personalization %s",
	           x_smtpapi, err, content, pers);
	fuzz_check(m.nrcpt >= 1 && m.mail_from, "no envelope");
	mime_msg_free(&m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct v3mail_errors errs;
	cJSON *body, *ps, *p, *again;
	char *content, *req = NULL, err[256] = "";
	struct snd_item *items;
	unsigned char *skip;
	int n, i = 0, rc;

	if (!easy && !(easy = curl_easy_init()))
		abort();
	{
		/* the intake's parse: strict (UTF-8, no control bytes, no
		 * duplicate keys, nothing after the value) */
		struct json_strict_error jerr;
		char *text = fuzz_text(data, size);

		if (!text)
			return 0;
		if (json_strict_parse(text, size, &body, &jerr) != 0)
			body = NULL;
		free(text);
		if (!body)
			return 0;
	}
	memset(&errs, 0, sizeof(errs));
	if (!cJSON_IsObject(body) || v3mail_validate(body, &errs) < 0) {
		fuzz_check(cJSON_IsObject(body) || errs.n == 0, "errors for no object");
		fuzz_check(!cJSON_IsObject(body) || errs.n > 0, "refused without an error");
		cJSON_Delete(body);
		return 0;
	}
	ps = cJSON_DetachItemFromObjectCaseSensitive(body, "personalizations");
	n = cJSON_GetArraySize(ps);
	content = cJSON_PrintUnformatted(body);
	items = calloc((size_t)n, sizeof(*items));
	skip = calloc((size_t)n, 1);
	if (!content || !items || !skip)
		abort();
	const cJSON *parts = cJSON_GetObjectItemCaseSensitive(body, "content");
	int template_only = cJSON_IsString(cJSON_GetObjectItemCaseSensitive(body, "template_id")) &&
	                    cJSON_GetArraySize(parts) == 0;
	cJSON_ArrayForEach(p, ps)
	{
		char *json = cJSON_PrintUnformatted(p);

		if (!json)
			abort();
		items[i].unit_id = i + 1;
		items[i++].personalization = json;
		if (!template_only) {
			smtp_build(content, json, 0);
			smtp_build(content, json, 1);
		}
	}

	struct snd_batch b = {.role = SND_ROLE_NEW,
	                      .content_id = 1,
	                      .content = content,
	                      .msgid = "fuzz.msgid",
	                      .warmup_day = 3,
	                      .nitems = n,
	                      .items = items};
	struct sendgrid_opts o = {1, 0, 1, 0, "pool"};
	rc = sendgrid_body(&b, &o, skip, &req, err, sizeof(err));
	fuzz_check(rc == 0, "accepted, but the SendGrid route refuses: %s\ncontent %s", err,
	           content);
	for (i = 0; i < n; i++)
		fuzz_check(!skip[i], "personalization %d left out", i);
	again = cJSON_Parse(req);
	memset(&errs, 0, sizeof(errs));
	fuzz_check(again && v3mail_validate(again, &errs) == 0,
	           "the request the route sends breaks SendGrid's rules: %s (%s)\n%s",
	           errs.n ? errs.e[0].message : "not JSON", errs.n ? errs.e[0].field : "", req);
	fuzz_check(
	    cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(again, "personalizations")) == n,
	    "personalizations lost");
	cJSON_Delete(again);
	free(req);
	for (i = 0; i < n; i++)
		free((char *)items[i].personalization);
	free(items);
	free(skip);
	free(content);
	cJSON_Delete(ps);
	cJSON_Delete(body);
	return 0;
}
