/*
 * json_strict.h -- one JSON request body, parsed strictly: what cJSON lets
 * through but a mail must not carry is refused at the door.
 *
 * cJSON is lenient: it stops at the end of the first value (trailing data
 * is ignored), keeps raw control bytes inside strings, cuts a string at a
 * NUL (raw or \u0000) so that "hel\u0000lo" silently becomes "hel", takes
 * any byte below 0x20 for white space, does not check UTF-8, and keeps
 * both members of a duplicate key (a caller that looks up the first one
 * checks one value and forwards two).  json_strict_parse() refuses all of
 * these, naming the field where the problem is inside a string or a key.
 */
#ifndef WU_JSON_STRICT_H
#define WU_JSON_STRICT_H

#include <cjson/cJSON.h>
#include <stddef.h>

/* Why a body was refused: a message for people and the field it is in
 * ("personalizations.0.subject"), or "" when it is not inside one. */
struct json_strict_error {
	char message[256];
	char field[128];
};

/* Parses text[0..len) as one JSON value.  text[len] must be '\0' (every
 * request buffer here keeps one there).  Returns 0 with the tree in *out
 * (the caller's, for cJSON_Delete), -1 with *err filled when the text is
 * refused, -2 when memory ran out. */
int json_strict_parse(const char *text, size_t len, cJSON **out, struct json_strict_error *err);

#endif
