/*
 * NAME
 *	json_strict.c -- a JSON request body, parsed strictly
 *
 * SYNOPSIS
 *	#include "sender/json_strict.h"
 *
 *	struct json_strict_error err;
 *	cJSON *body;
 *	if (json_strict_parse(text, len, &body, &err) < 0)
 *		refuse(err.field, err.message);
 *
 * DESCRIPTION
 *	cJSON does the parsing (with require_null_terminated, so nothing may
 *	follow the value); libunistring's u8_check() checks the UTF-8.  What
 *	is left to do here is what neither does: one pass over the raw text
 *	finds control bytes (raw inside a string, or anything below 0x20
 *	but JSON's four white-space characters outside one) and the escape
 *	\u0000, and a walk of the tree finds duplicate keys.
 *
 *	A problem inside a string is reported with the field the string is
 *	in: the pass counts string tokens (keys and values) up to the
 *	problem, and cJSON keeps every key and value in document order, so
 *	the same count along the tree lands on the same string.
 *
 * DIAGNOSTICS
 *	The message gives the byte offset of the problem in the body; the
 *	field is "" when it is not inside a string or a key.
 */
#include "sender/json_strict.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistr.h>

#define PATH_LEN sizeof(((struct json_strict_error *)0)->field)

enum raw_problem { RAW_OK, RAW_UTF8, RAW_CTL_IN_STRING, RAW_NUL_ESCAPE, RAW_CTL_OUTSIDE };

/* The first problem in the raw text. */
struct raw_find {
	enum raw_problem what;
	size_t at;          /* byte offset */
	unsigned char byte; /* the byte there */
	long string;        /* the string token it is in (0 = the first), or -1 */
};

/* Finds the first byte of text that JSON or a C string cannot carry. */
static void raw_scan(const unsigned char *s, size_t len, struct raw_find *f)
{
	const uint8_t *bad = u8_check(s, len);
	size_t stop = bad ? (size_t)(bad - s) : len, i;
	long string = -1;
	int in = 0, esc = 0;

	*f = (struct raw_find){.what = RAW_OK, .string = -1};
	for (i = 0; i < len && f->what == RAW_OK; i++) {
		unsigned char c = s[i];

		if (i == stop)
			f->what = RAW_UTF8;
		else if (in) {
			if (c < 0x20)
				f->what = RAW_CTL_IN_STRING;
			else if (esc) {
				esc = 0;
				if (c == 'u' && len - i > 4 && memcmp(s + i + 1, "0000", 4) == 0)
					f->what = RAW_NUL_ESCAPE;
			} else if (c == '\\')
				esc = 1;
			else if (c == '"')
				in = 0;
		} else if (c == '"') {
			in = 1;
			string++;
		} else if (c < 0x20 && c != ' ' && c != '\t' && c != '\n' && c != '\r')
			f->what = RAW_CTL_OUTSIDE;
		if (f->what != RAW_OK) {
			f->at = i;
			f->byte = c;
			f->string = in ? string : -1;
		}
	}
}

/* Appends child's place (".key", or ".index" in an array) to path[0..plen);
 * returns the new length. */
static size_t path_push(char *path, size_t plen, const cJSON *parent, const cJSON *child, int index)
{
	int n;

	if (cJSON_IsObject(parent))
		n = snprintf(path + plen, PATH_LEN - plen, "%s%s", plen ? "." : "",
		             child->string ? child->string : "");
	else
		n = snprintf(path + plen, PATH_LEN - plen, "%s%d", plen ? "." : "", index);
	if (n < 0)
		return plen;
	return plen + (size_t)n < PATH_LEN ? plen + (size_t)n : PATH_LEN - 1;
}

/* Walks node in document order counting string tokens (keys, then their
 * values); when token number *k is reached, leaves its field in path and
 * returns 1. */
static int locate(const cJSON *node, long *k, char *path, size_t plen)
{
	const cJSON *c;
	int i = 0;

	for (c = node->child; c != NULL; c = c->next, i++) {
		size_t n = path_push(path, plen, node, c, i);

		if (cJSON_IsObject(node) && (*k)-- == 0)
			return 1;
		if (cJSON_IsString(c) && (*k)-- == 0)
			return 1;
		if ((cJSON_IsObject(c) || cJSON_IsArray(c)) && locate(c, k, path, n))
			return 1;
		path[plen] = '\0';
	}
	return 0;
}

/* Orders members by key. */
static int key_cmp(const void *a, const void *b)
{
	return strcmp((*(const cJSON *const *)a)->string, (*(const cJSON *const *)b)->string);
}

/* Finds a key used twice in one object, anywhere below node: sorted, so
 * that an object of many keys costs n log n, not n squared.  Returns 0,
 * -1 with the field in path and the key in *dup, -2 when memory ran out. */
static int find_duplicate(const cJSON *node, char *path, size_t plen, const char **dup)
{
	const cJSON *c, **keys = NULL;
	int i = 0, n = 0, rc = 0;

	for (c = node->child; c != NULL; c = c->next)
		n++;
	if (cJSON_IsObject(node) && n > 1) {
		if ((keys = malloc((size_t)n * sizeof(*keys))) == NULL)
			return -2;
		for (c = node->child; c != NULL; c = c->next)
			keys[i++] = c;
		qsort(keys, (size_t)n, sizeof(*keys), key_cmp);
		for (i = 1; i < n; i++)
			if (strcmp(keys[i - 1]->string, keys[i]->string) == 0) {
				path_push(path, plen, node, keys[i], 0);
				*dup = keys[i]->string;
				free(keys);
				return -1;
			}
		free(keys);
	}
	for (c = node->child, i = 0; c != NULL && rc == 0; c = c->next, i++)
		if (cJSON_IsObject(c) || cJSON_IsArray(c)) {
			rc = find_duplicate(c, path, path_push(path, plen, node, c, i), dup);
			if (rc == 0)
				path[plen] = '\0';
		}
	return rc;
}

/* The message for a problem the raw pass found. */
static void raw_message(const struct raw_find *f, struct json_strict_error *err)
{
	char *m = err->message;
	size_t n = sizeof(err->message);

	switch (f->what) {
	case RAW_UTF8:
		snprintf(m, n, "The request body is not valid UTF-8 (at byte %zu).", f->at);
		break;
	case RAW_CTL_IN_STRING:
		if (f->byte == 0)
			snprintf(m, n, "A string holds a NUL byte (at byte %zu).", f->at);
		else
			snprintf(m, n,
			         "A string holds the raw control character 0x%02x (at byte %zu); "
			         "JSON wants it escaped.",
			         f->byte, f->at);
		break;
	case RAW_NUL_ESCAPE:
		snprintf(m, n, "A string holds \\u0000 (at byte %zu), which would cut it short.",
		         f->at - 1);
		break;
	default:
		snprintf(
		    m, n,
		    "The request body holds the control character 0x%02x (at byte %zu) outside "
		    "any string.",
		    f->byte, f->at);
		break;
	}
}

int json_strict_parse(const char *text, size_t len, cJSON **out, struct json_strict_error *err)
{
	struct raw_find f;
	const char *end = NULL;
	char path[PATH_LEN] = "";
	const char *dup = "";
	cJSON *root;
	int rc;

	*out = NULL;
	err->message[0] = err->field[0] = '\0';
	if (text == NULL) {
		text = "";
		len = 0;
	}
	raw_scan((const unsigned char *)text, len, &f);
	root = cJSON_ParseWithLengthOpts(text, len + 1, &end, 1);
	if (f.what != RAW_OK) {
		long k = f.string;

		if (root != NULL && k >= 0 && locate(root, &k, path, 0))
			snprintf(err->field, sizeof(err->field), "%s", path);
		cJSON_Delete(root);
		raw_message(&f, err);
		return -1;
	}
	if (root == NULL) {
		size_t at = end != NULL && end >= text ? (size_t)(end - text) : 0;
		cJSON *first = cJSON_ParseWithLengthOpts(text, len + 1, NULL, 0);

		snprintf(err->message, sizeof(err->message),
		         first ? "The request body has data after its JSON value (at byte %zu)."
		               : "The request body is not valid JSON (at byte %zu).",
		         at);
		cJSON_Delete(first);
		return -1;
	}
	if ((rc = find_duplicate(root, path, 0, &dup)) < 0) {
		if (rc == -2)
			snprintf(err->message, sizeof(err->message), "out of memory");
		else
			snprintf(err->message, sizeof(err->message),
			         "The key \"%.64s\" appears more than once in one object.", dup);
		snprintf(err->field, sizeof(err->field), "%s", rc == -1 ? path : "");
		cJSON_Delete(root);
		return rc;
	}
	*out = root;
	return 0;
}
