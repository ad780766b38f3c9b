/*
 * fuzz_rawmail.c -- whatever rawmail_to_v3() converts, SendGrid's rules accept.
 *
 * The input is a message as the SMTP intake receives it.  When
 * rawmail_to_v3() converts it, the JSON must parse, must have no
 * "personalizations", and with one personalization added must pass
 * v3mail_validate(): a message the intake accepted with 250 that the v3
 * route then cannot send is a lost message, so the target aborts.  A
 * refusal must come with a reason (the SMTP intake quotes it in its 554).
 *
 * Built and run by tools/fuzz (tools/fuzz rawmail).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sender/rawmail.h"
#include "sender/v3mail.h"

/* Prints why and aborts, so libFuzzer keeps the input. */
static void die(const char *what, const char *detail)
{
	fprintf(stderr, "fuzz_rawmail: %s: %s\n", what, detail);
	abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *json = NULL, err[256];
	struct v3mail_errors errs;
	cJSON *body, *pers;

	if (rawmail_to_v3((const char *)data, size, &json, err, sizeof err) < 0) {
		if (json)
			die("refused", "json set on failure");
		if (!err[0])
			die("refused", "no reason");
		return 0;
	}
	if (!(body = cJSON_Parse(json)))
		die("not JSON", json);
	if (cJSON_GetObjectItemCaseSensitive(body, "personalizations"))
		die("has personalizations", json);
	pers = cJSON_AddArrayToObject(body, "personalizations");
	cJSON_AddItemToArray(pers, cJSON_Parse("{\"to\":[{\"email\":\"x@example.com\"}]}"));
	if (v3mail_validate(body, &errs) < 0) {
		fprintf(stderr, "fuzz_rawmail: %s: %s\n", errs.e[0].field, errs.e[0].message);
		die("v3mail_validate refused", json);
	}
	cJSON_Delete(body);
	free(json);
	return 0;
}
