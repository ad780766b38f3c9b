/*
 * smtpapi.c -- the X-SMTPAPI header of a message taken over SMTP: merged
 * with the route's settings, or removed; nothing else touched.
 *
 * DESCRIPTION
 *	The header block is the lines before the first empty one (CRLF
 *	alone), or the whole message when there is none.  A field starts
 *	on a line that does not begin with a blank and runs through the
 *	continuation lines that do (RFC 5322 2.2.3).  An X-SMTPAPI field is
 *	one whose name is "X-SMTPAPI" in any case, blanks allowed before the
 *	colon (RFC 5322 4.5.8 obsolete syntax, which Postfix still accepts).
 *
 *	Merging unfolds each field (its CR and LF bytes dropped: a line
 *	break inside a JSON string is not valid JSON anyway), parses it with
 *	cJSON, merges them in order (a later field's members replace an
 *	earlier one's, objects merged member by member), puts the route's
 *	settings in with mime_smtpapi_route() -- the same function, and the
 *	same rule, as for mail that came as v3 JSON -- and writes it as one
 *	field, ASCII-escaped and folded between JSON tokens, so no line passes
 *	998 octets.  The new field takes the first one's place; the others
 *	go.  A message without the field gets it as its first line, so no
 *	other line moves relative to its neighbours.
 *
 *	The copy is made on the loop thread (cJSON_Parse writes a global),
 *	one memcpy per piece, the body never scanned: measured 0.01-0.06 ms
 *	for a 50 KB message, 4-30 ms for a 30 MB one (the page faults of the
 *	fresh copy), the largest the SMTP intake takes by default.
 *
 * DIAGNOSTICS
 *	With x_smtpapi on, a field that is not a JSON object, holds a NUL,
 *	carries a "to" list, has a member the route sets with another type
 *	than object, or has a string too long to fold is refused: -1 and a
 *	reason in err, such as "X-SMTPAPI is not valid JSON (at 'oops}')".
 *	The SMTP intake should refuse such a header at DATA, while the
 *	client can still be told; one that gets here anyway fails for good
 *	rather than go out with the app's settings lost or its recipients
 *	multiplied.
 */
#include "smtpapi.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SA_NAME "X-SMTPAPI"

/* One X-SMTPAPI field: where it starts, where its value starts (after the
 * colon) and where it ends (after its last line's line ending). */
struct sa_span {
	size_t start, value, end;
};

/* The length of the line at p, its LF included (or up to the end). */
static size_t sa_line(const char *p, size_t left)
{
	const char *nl = memchr(p, '\n', left);

	return nl ? (size_t)(nl - p) + 1 : left;
}

/* Where the value of a field starting at p begins when it is X-SMTPAPI,
 * else 0. */
static size_t sa_name(const char *p, size_t n)
{
	size_t k = sizeof(SA_NAME) - 1;

	if (n <= k || strncasecmp(p, SA_NAME, k) != 0)
		return 0;
	while (k < n && (p[k] == ' ' || p[k] == '\t'))
		k++;
	return k < n && p[k] == ':' ? k + 1 : 0;
}

/* Every X-SMTPAPI field of the header block, in order, into *sp (malloc'd;
 * NULL when there is none).  Returns how many, or -1 on no memory. */
static long sa_find(const char *msg, size_t len, struct sa_span **sp)
{
	size_t pos = 0, cap = 0;
	long n = 0;
	int in = 0;

	*sp = NULL;
	while (pos < len) {
		size_t l = sa_line(msg + pos, len - pos), v;

		if ((l == 2 && msg[pos] == '\r' && msg[pos + 1] == '\n') ||
		    (l == 1 && msg[pos] == '\n'))
			break; /* the empty line: the body follows */
		if (msg[pos] == ' ' || msg[pos] == '\t') {
			if (in)
				(*sp)[n - 1].end = pos + l;
		} else if ((v = sa_name(msg + pos, l)) != 0) {
			if ((size_t)n == cap) {
				struct sa_span *p;

				cap = cap ? 2 * cap : 4;
				if ((p = realloc(*sp, cap * sizeof(*p))) == NULL) {
					free(*sp);
					*sp = NULL;
					return -1;
				}
				*sp = p;
			}
			(*sp)[n++] = (struct sa_span){pos, pos + v, pos + l};
			in = 1;
		} else
			in = 0;
		pos += l;
	}
	return n;
}

/* Merges src into dst, emptying src: its members replace dst's of the same
 * name, objects in both merged member by member.  Returns 0 or -2. */
static int sa_merge(cJSON *dst, cJSON *src)
{
	cJSON *e;

	while ((e = src->child) != NULL) {
		cJSON *d = cJSON_GetObjectItemCaseSensitive(dst, e->string);

		cJSON_DetachItemViaPointer(src, e);
		if (cJSON_IsObject(d) && cJSON_IsObject(e)) {
			int rc = sa_merge(d, e);

			cJSON_Delete(e);
			if (rc < 0)
				return rc;
		} else if (d != NULL) {
			cJSON_ReplaceItemViaPointer(dst, d, e);
		} else if (!cJSON_AddItemToObject(dst, e->string, e)) {
			cJSON_Delete(e);
			return -2;
		}
	}
	return 0;
}

/* The merged field "X-SMTPAPI: ..." (folded, no final CRLF) into *field.
 * Returns 0, -1 (err says why) or -2. */
static int sa_field(const char *msg, const struct sa_span *sp, long n, const struct mime_opts *o,
                    char **field, char *err, size_t errlen)
{
	cJSON *x = NULL;
	char *json, *ascii;
	long i;
	int rc = 0;

	*field = NULL;
	for (i = 0; i < n && rc == 0; i++) {
		size_t vlen = sp[i].end - sp[i].value, k = 0, j;
		char *v = malloc(vlen + 1);
		const char *end = NULL;
		cJSON *one = NULL;

		if (v == NULL) {
			rc = -2;
			break;
		}
		for (j = 0; j < vlen; j++)
			if (msg[sp[i].value + j] != '\r' && msg[sp[i].value + j] != '\n')
				v[k++] = msg[sp[i].value + j];
		v[k] = '\0';
		if (memchr(v, '\0', k) != NULL) {
			snprintf(err, errlen, "X-SMTPAPI holds a NUL byte");
			rc = -1;
		} else if ((one = cJSON_ParseWithOpts(v, &end, 1)) == NULL) {
			snprintf(err, errlen, "X-SMTPAPI is not valid JSON (at '%.40s')",
			         end ? end : v);
			rc = -1;
		} else if (!cJSON_IsObject(one)) {
			snprintf(err, errlen, "X-SMTPAPI is JSON but not an object");
			rc = -1;
		} else if (x == NULL) {
			x = one;
			one = NULL;
		} else
			rc = sa_merge(x, one);
		cJSON_Delete(one);
		free(v);
	}
	if (rc == 0 && x == NULL && (x = cJSON_CreateObject()) == NULL)
		rc = -2;
	if (rc == 0 && cJSON_GetObjectItemCaseSensitive(x, "to") != NULL) {
		/* SendGrid would send one copy per address of "to" while the
		 * cap counted one: the envelope alone says who gets it. */
		snprintf(err, errlen,
		         "X-SMTPAPI has a \"to\" list: SendGrid would send to addresses "
		         "warmupd does not count; one message per RCPT TO only");
		rc = -1;
	}
	if (rc == 0)
		rc = mime_smtpapi_route(x, o, err, errlen);
	if (rc == 0) {
		if ((json = cJSON_PrintUnformatted(x)) == NULL)
			rc = -2;
		else {
			ascii = mime_json_ascii(json);
			free(json);
			if (ascii == NULL)
				rc = -2;
			else if ((*field = mime_fold_json(SA_NAME, ascii)) == NULL) {
				snprintf(err, errlen,
				         "X-SMTPAPI: a string too long to fold under 998 octets");
				rc = -1;
			}
			free(ascii);
		}
	}
	cJSON_Delete(x);
	return rc;
}

int smtpapi_splice(const char *msg, size_t len, const struct mime_opts *o, char **out,
                   size_t *outlen, char *err, size_t errlen)
{
	struct sa_span *sp;
	char *field = NULL, *p;
	size_t flen = 0, total = len, pos = 0, k = 0;
	long n, i;
	int rc;

	*out = NULL;
	*outlen = 0;
	err[0] = '\0';
	if ((n = sa_find(msg, len, &sp)) < 0)
		return -2;
	if (o->x_smtpapi) {
		if ((rc = sa_field(msg, sp, n, o, &field, err, errlen)) != 0) {
			free(sp);
			return rc;
		}
		flen = strlen(field);
		total += flen + 2;
	}
	for (i = 0; i < n; i++)
		total -= sp[i].end - sp[i].start;
	if ((p = malloc(total + 1)) == NULL) {
		free(sp);
		free(field);
		return -2;
	}
	/* The field goes where the first one stood, or first of all. */
	if (field != NULL && n == 0) {
		memcpy(p, field, flen);
		memcpy(p + flen, "\r\n", 2);
		k = flen + 2;
	}
	for (i = 0; i < n; i++) {
		memcpy(p + k, msg + pos, sp[i].start - pos);
		k += sp[i].start - pos;
		if (field != NULL && i == 0) {
			memcpy(p + k, field, flen);
			memcpy(p + k + flen, "\r\n", 2);
			k += flen + 2;
		}
		pos = sp[i].end;
	}
	memcpy(p + k, msg + pos, len - pos);
	k += len - pos;
	p[k] = '\0';
	free(sp);
	free(field);
	*out = p;
	*outlen = k;
	return 0;
}
