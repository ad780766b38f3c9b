/*
 * mime.c -- a v3 personalization as an Internet message (RFC 5322, MIME).
 *
 * DESCRIPTION
 *	The message has this shape:
 *
 *	    multipart/mixed                  (curl's top level)
 *	      multipart/alternative          text/plain, text/html, ... in
 *	                                     the order of "content"
 *	      attachment ...                 base64, filename, Content-ID
 *
 *	with a single content part in place of the alternative when there is
 *	only one.  Text parts are made CRLF first; they go as 7bit when they
 *	are ASCII with no line over 998 octets, else as quoted-printable, so
 *	no relay needs to rewrite them and DKIM body hashes survive.  curl
 *	writes the MIME structure with CRLF and does the SMTP dot-stuffing.
 *
 *	Headers are written here, not by curl: Date, Message-ID, From, To,
 *	Cc, Reply-To, Subject, the merged custom headers and X-SMTPAPI; curl
 *	adds Content-Type and Mime-Version.  Header text that is not
 *	printable ASCII becomes RFC 2047 encoded-words, and every header is
 *	folded so lines stay under 78 octets where a blank allows and never
 *	pass 998.  A Bcc never appears in a header, only in the envelope.  An
 *	application's own Date or Message-ID header is kept in place of ours.
 *
 *	The Message-ID is <msgid.uUNIT@domain-of-from> when the intake gave
 *	the request an id, so a retry carries the same id and receivers can
 *	drop a duplicate; otherwise the left part is random.
 *
 * DIAGNOSTICS
 *	mime_build() writes what is wrong with the stored data into err,
 *	naming the field: "attachments.0.content: not base64".
 */
#include "mime.h"
#include "b64.h"
#include "strbuf.h"
#include "v3mail.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

/* Appends n bytes of s in base64, no line breaks. */
static void mb_base64(struct strbuf *b, const unsigned char *s, size_t n)
{
	/* Encoded in place; b64_encode writes the NUL. */
	if (strbuf_reserve(b, B64_ENCODED_LEN(n)) == 0)
		b->len += b64_encode(s, n, b->p + b->len);
}

/* Length of the UTF-8 sequence starting at s (1 for a byte that starts none). */
static size_t u8_len(const unsigned char *s, size_t avail, unsigned *cp)
{
	size_t n, i;
	unsigned c = s[0];

	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if ((c & 0xe0) == 0xc0)
		n = 2, c &= 0x1f;
	else if ((c & 0xf0) == 0xe0)
		n = 3, c &= 0x0f;
	else if ((c & 0xf8) == 0xf0)
		n = 4, c &= 0x07;
	else
		goto bad;
	if (n > avail)
		goto bad;
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			goto bad;
		c = (c << 6) | (s[i] & 0x3f);
	}
	/* Overlong forms, surrogates and values past Unicode are not characters. */
	if ((n == 2 && c < 0x80) || (n == 3 && c < 0x800) || (n == 4 && c < 0x10000) ||
	    c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		goto bad;
	*cp = c;
	return n;
bad:
	*cp = 0xfffd;
	return 1;
}

/* 1 when s is printable ASCII (blanks allowed) and holds no "=?", which a
 * reader would take for the start of an encoded-word. */
static int plain_ascii(const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if ((c < 0x20 && c != '\t') || c >= 0x7f)
			return 0;
		if (c == '=' && s[1] == '?')
			return 0;
	}
	return 1;
}

/* 36 bytes of UTF-8 make 48 base64 characters: "=?UTF-8?B?" + 48 + "?=" is
 * 60, which leaves room for a header name on the first line. */
#define EW_BYTES 36

char *mime_encode_words(const char *text)
{
	const unsigned char *s = (const unsigned char *)text;
	size_t n = strlen(text), i = 0;
	struct strbuf b = {0};

	while (i < n) {
		size_t j = i, k;
		unsigned cp;

		/* Whole characters only: each encoded-word must decode alone. */
		while (j < n && (k = u8_len(s + j, n - j, &cp), j + k - i <= EW_BYTES))
			j += k;
		if (j == i)
			j = i + 1;
		if (b.len)
			strbuf_str(&b, " ");
		strbuf_str(&b, "=?UTF-8?B?");
		mb_base64(&b, s + i, j - i);
		strbuf_str(&b, "?=");
		i = j;
	}
	return strbuf_take(&b);
}

/* Appends one output line segment and checks the hard limit. */
static int fold_emit(struct strbuf *b, const char *s, size_t n, int first)
{
	if (!first)
		strbuf_str(b, "\r\n");
	strbuf_add(b, s, n);
	return n <= MIME_LINE_HARD ? 0 : -1;
}

/* Folds "name: value" into *res.  Returns 0, -1 when a word is too long
 * for any line, or -2 when memory ran out. */
static int fold(const char *name, const char *value, char **res)
{
	struct strbuf line = {0}, out = {0};
	size_t start = 0, last = 0, i, min;
	int first = 1, toolong = 0;

	strbuf_str(&line, name);
	strbuf_str(&line, ": ");
	strbuf_str(&line, value);
	*res = NULL;
	if (line.failed)
		return -2;
	/* Never fold between the name and the first word of the value. */
	min = strlen(name) + 2;
	for (i = min; i <= line.len; i++) {
		int blank = i < line.len && (line.p[i] == ' ' || line.p[i] == '\t');

		if (!blank && i < line.len)
			continue;
		/* i is a place to break before (or the end): does the line
		 * from start reach past the soft limit? */
		while (i - start > MIME_LINE_SOFT && (last > start || (blank && i > start))) {
			size_t bp = last > start ? last : i;

			toolong |= fold_emit(&out, line.p + start, bp - start, first);
			first = 0;
			start = bp;
			if (bp == i)
				break;
		}
		if (blank && i > min)
			last = i;
	}
	toolong |= fold_emit(&out, line.p + start, line.len - start, first);
	free(line.p);
	if (toolong || out.failed) {
		free(out.p);
		return out.failed ? -2 : -1;
	}
	*res = out.p;
	return 0;
}

char *mime_fold(const char *name, const char *value)
{
	char *res;

	fold(name, value, &res);
	return res;
}

char *mime_header_text(const char *name, const char *value)
{
	char *words, *h = NULL;

	/* A word too long for any line goes as encoded-words too: they fold. */
	if (plain_ascii(value) && fold(name, value, &h) != -1)
		return h;
	if ((words = mime_encode_words(value)) == NULL)
		return NULL;
	h = mime_fold(name, words);
	free(words);
	return h;
}

/* 1 when a display name can stand as RFC 5322 atoms, unquoted. */
static int phrase_atoms(const char *s)
{
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && strchr(" !#$%&'*+-/=?^_`{|}~", *s) == NULL)
			return 0;
	return 1;
}

/* The longest run of s without a blank: what folding cannot break. */
static size_t longest_word(const char *s)
{
	size_t best = 0, n;

	for (; *s; s += n ? n : 1)
		if ((n = strcspn(s, " \t")) > best)
			best = n;
	return best;
}

/* A display-name word longer than this goes as encoded-words: it must fit
 * one line after "Reply-To: ". */
#define PHRASE_WORD_MAX (MIME_LINE_HARD - 16)

char *mime_mailbox(const char *name, const char *addr)
{
	struct strbuf b = {0};
	const char *s;

	if (name == NULL || name[0] == '\0') {
		strbuf_str(&b, addr);
		return strbuf_take(&b);
	}
	if (plain_ascii(name) && phrase_atoms(name) && name[0] != ' ' &&
	    strstr(name, "  ") == NULL) {
		strbuf_str(&b, name);
	} else if (plain_ascii(name)) {
		strbuf_str(&b, "\"");
		for (s = name; *s; s++) {
			if (*s == '"' || *s == '\\')
				strbuf_str(&b, "\\");
			strbuf_add(&b, s, 1);
		}
		strbuf_str(&b, "\"");
	}
	if (b.failed) {
		free(b.p);
		return NULL;
	}
	if (b.len == 0 || longest_word(b.p) > PHRASE_WORD_MAX) {
		char *w = mime_encode_words(name);

		if (w == NULL) {
			free(b.p);
			return NULL;
		}
		b.len = 0;
		strbuf_str(&b, w);
		free(w);
	}
	strbuf_str(&b, " <");
	strbuf_str(&b, addr);
	strbuf_str(&b, ">");
	return strbuf_take(&b);
}

char *mime_json_ascii(const char *json)
{
	const unsigned char *s = (const unsigned char *)json;
	size_t n = strlen(json), i = 0;
	struct strbuf b = {0};
	char u[16];

	while (i < n) {
		unsigned cp;
		size_t k;

		if (s[i] < 0x80) {
			strbuf_add(&b, (const char *)s + i, 1);
			i++;
			continue;
		}
		k = u8_len(s + i, n - i, &cp);
		if (cp >= 0x10000) {
			cp -= 0x10000;
			snprintf(u, sizeof(u), "\\u%04x\\u%04x", 0xd800 + (cp >> 10),
			         0xdc00 + (cp & 0x3ff));
		} else
			snprintf(u, sizeof(u), "\\u%04x", cp);
		strbuf_str(&b, u);
		i += k;
	}
	return strbuf_take(&b);
}

char *mime_fold_json(const char *name, const char *json)
{
	struct strbuf out = {0};
	size_t n = strlen(json), i, start = 0, last = 0, col;
	int instr = 0, esc = 0;

	strbuf_str(&out, name);
	strbuf_str(&out, ": ");
	col = out.len;
	/* col counts the current output line; last is a place in json after
	 * which a CRLF + space may go (after , : { [ outside strings). */
	for (i = 0; i < n; i++) {
		char c = json[i];

		if (instr) {
			if (esc)
				esc = 0;
			else if (c == '\\')
				esc = 1;
			else if (c == '"')
				instr = 0;
		} else if (c == '"')
			instr = 1;
		if (col + (i + 1 - start) > MIME_LINE_SOFT && last > start) {
			strbuf_add(&out, json + start, last - start);
			strbuf_str(&out, "\r\n ");
			col = 1;
			start = last;
		}
		if (!instr && (c == ',' || c == ':' || c == '{' || c == '['))
			last = i + 1;
	}
	strbuf_add(&out, json + start, n - start);
	if (out.failed) {
		free(out.p);
		return NULL;
	}
	/* A string longer than a line cannot be folded. */
	for (i = 0, col = 0; i < out.len; i++) {
		col = out.p[i] == '\n' ? 0 : col + 1;
		if (col > MIME_LINE_HARD + 1) {
			free(out.p);
			return NULL;
		}
	}
	return out.p;
}

char *mime_substitute(const char *text, const cJSON *subs)
{
	struct strbuf b = {0};
	const char *s = text;

	if (!cJSON_IsObject(subs) || subs->child == NULL)
		return strdup(text);
	while (*s) {
		const cJSON *e, *best = NULL;
		size_t bestlen = 0;

		for (e = subs->child; e != NULL; e = e->next) {
			size_t kl = e->string ? strlen(e->string) : 0;

			if (kl > bestlen && cJSON_IsString(e) && e->string[0] == *s &&
			    strncmp(s, e->string, kl) == 0) {
				best = e;
				bestlen = kl;
			}
		}
		if (best != NULL) {
			strbuf_str(&b, best->valuestring);
			s += bestlen;
		} else {
			strbuf_add(&b, s, 1);
			s++;
		}
	}
	return strbuf_take(&b);
}

cJSON *mime_headers_merge(const cJSON *global, const cJSON *pers)
{
	cJSON *m = cJSON_CreateObject();
	const cJSON *e;

	if (m == NULL)
		return NULL;
	if (cJSON_IsObject(global))
		for (e = global->child; e != NULL; e = e->next) {
			const cJSON *p;
			int over = 0;

			if (cJSON_IsObject(pers))
				for (p = pers->child; p != NULL && !over; p = p->next)
					over = strcasecmp(p->string, e->string) == 0;
			if (!over && !cJSON_AddItemToObject(m, e->string, cJSON_Duplicate(e, 1)))
				goto nomem;
		}
	if (cJSON_IsObject(pers))
		for (e = pers->child; e != NULL; e = e->next)
			if (!cJSON_AddItemToObject(m, e->string, cJSON_Duplicate(e, 1)))
				goto nomem;
	return m;
nomem:
	cJSON_Delete(m);
	return NULL;
}

/* obj[key] = v, replacing any member of that name; v is consumed. */
static int smtpapi_set(cJSON *obj, const char *key, cJSON *v)
{
	if (v == NULL)
		return -1;
	cJSON_DeleteItemFromObjectCaseSensitive(obj, key);
	if (!cJSON_AddItemToObject(obj, key, v)) {
		cJSON_Delete(v);
		return -1;
	}
	return 0;
}

/* obj[key] as an object, created when absent; NULL when it is there with
 * another type (*bad = key) or memory ran out. */
static cJSON *smtpapi_object(cJSON *obj, const char *key, const char **bad)
{
	cJSON *o = cJSON_GetObjectItemCaseSensitive(obj, key);

	if (o == NULL)
		return cJSON_AddObjectToObject(obj, key);
	if (!cJSON_IsObject(o)) {
		*bad = key;
		return NULL;
	}
	return o;
}

/* Copies the string members of args into ua (SendGrid wants strings). */
static int smtpapi_args(cJSON *ua, const cJSON *args)
{
	const cJSON *e;

	if (!cJSON_IsObject(args))
		return 0;
	for (e = args->child; e != NULL; e = e->next)
		if (cJSON_IsString(e) &&
		    smtpapi_set(ua, e->string, cJSON_CreateString(e->valuestring)) < 0)
			return -1;
	return 0;
}

/* The message's own tracking_settings as X-SMTPAPI filters, so that the
 * route's defaults apply only to what it does not say. */
static int smtpapi_tracking(cJSON *filters, const cJSON *content)
{
	static const char *const v3[] = {"click_tracking", "open_tracking",
	                                 "subscription_tracking"};
	static const char *const filter[] = {"clicktrack", "opentrack", "subscriptiontrack"};
	const char *bad = NULL;

	if (filters == NULL)
		return -1;
	for (int i = 0; i < 3; i++) {
		int on = v3mail_setting(content, "tracking_settings", v3[i]);
		cJSON *t, *s;

		if (on < 0)
			continue;
		if ((t = smtpapi_object(filters, filter[i], &bad)) == NULL ||
		    (s = smtpapi_object(t, "settings", &bad)) == NULL ||
		    smtpapi_set(s, "enable", cJSON_CreateNumber(on)) < 0)
			return -1;
	}
	return 0;
}

int mime_smtpapi_route(cJSON *x, const struct mime_opts *o, char *err, size_t errlen)
{
	static const char *const filters[] = {"clicktrack", "opentrack", "subscriptiontrack"};
	const int on[] = {o->click, o->open, o->sub};
	cJSON *f, *ua;
	const char *bad = NULL;
	char day[24];
	int i;

	if ((f = smtpapi_object(x, "filters", &bad)) == NULL)
		goto fail;
	/* {"settings":{"enable":0|1}}: like the v3 route's tracking_settings,
	 * the route's enable is the default for a message that does not say,
	 * and overrides it only when the route forces it; other settings stay
	 * as they came. */
	for (i = 0; i < 3; i++) {
		cJSON *t = smtpapi_object(f, filters[i], &bad), *s;

		if (t == NULL || (s = smtpapi_object(t, "settings", &bad)) == NULL)
			goto fail;
		if ((o->force_tracking || !cJSON_GetObjectItemCaseSensitive(s, "enable")) &&
		    smtpapi_set(s, "enable", cJSON_CreateNumber(on[i] ? 1 : 0)) < 0)
			goto fail;
	}
	/* The route's two args win over the application's of the same name. */
	snprintf(day, sizeof(day), "%d", o->warmup_day);
	if ((ua = smtpapi_object(x, "unique_args", &bad)) == NULL ||
	    smtpapi_set(ua, "warmup_day", cJSON_CreateString(day)) < 0 ||
	    smtpapi_set(ua, "warmup_route",
	                cJSON_CreateString(o->route_name ? o->route_name : "new")) < 0)
		goto fail;
	if (o->ip_pool != NULL && o->ip_pool[0] != '\0' &&
	    smtpapi_set(x, "ip_pool", cJSON_CreateString(o->ip_pool)) < 0)
		goto fail;
	return 0;
fail:
	if (bad == NULL)
		return -2;
	snprintf(err, errlen, "X-SMTPAPI: \"%s\" is not a JSON object", bad);
	return -1;
}

char *mime_smtpapi(const cJSON *content, const cJSON *pers, const struct mime_opts *o)
{
	cJSON *x = cJSON_CreateObject(), *ua, *cats, *asm_;
	const cJSON *e;
	char *raw, *out = NULL, err[80];

	/* Members in the order SendGrid's examples give them: filters first. */
	if (x == NULL || smtpapi_tracking(cJSON_AddObjectToObject(x, "filters"), content) < 0)
		goto done;
	cats = cJSON_GetObjectItemCaseSensitive(content, "categories");
	if (cJSON_IsArray(cats) && cats->child != NULL) {
		cJSON *c = cJSON_AddArrayToObject(x, "category");

		if (c == NULL)
			goto done;
		cJSON_ArrayForEach(e, cats)
		{
			if (cJSON_IsString(e))
				cJSON_AddItemToArray(c, cJSON_CreateString(e->valuestring));
		}
	}
	if ((ua = cJSON_AddObjectToObject(x, "unique_args")) == NULL ||
	    smtpapi_args(ua, cJSON_GetObjectItemCaseSensitive(content, "custom_args")) < 0 ||
	    smtpapi_args(ua, cJSON_GetObjectItemCaseSensitive(pers, "custom_args")) < 0 ||
	    mime_smtpapi_route(x, o, err, sizeof(err)) < 0)
		goto done;
	asm_ = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(content, "asm"),
	                                        "group_id");
	if (cJSON_IsNumber(asm_) &&
	    cJSON_AddNumberToObject(x, "asm_group_id", asm_->valuedouble) == NULL)
		goto done;
	if ((raw = cJSON_PrintUnformatted(x)) != NULL) {
		out = mime_json_ascii(raw);
		free(raw);
	}
done:
	cJSON_Delete(x);
	return out;
}

char *mime_crlf(const char *text)
{
	struct strbuf b = {0};
	const char *s;

	for (s = text; *s; s++) {
		if (*s == '\r') {
			strbuf_str(&b, "\r\n");
			if (s[1] == '\n')
				s++;
		} else if (*s == '\n')
			strbuf_str(&b, "\r\n");
		else
			strbuf_add(&b, s, 1);
	}
	return strbuf_take(&b);
}

/* --- building one message --- */

/* What one build holds while it runs. */
struct mb_ctx {
	struct mime_msg *m;
	CURL *easy;
	const struct mime_opts *o;
	const cJSON *content, *pers, *subs;
	char *err;
	size_t errlen;
	int rc; /* 0, -1 bad data, -2 no memory */
};

/* Records bad stored data (the first reason wins). */
static int bad(struct mb_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int bad(struct mb_ctx *c, const char *fmt, ...)
{
	va_list ap;

	if (c->rc == 0) {
		va_start(ap, fmt);
		vsnprintf(c->err, c->errlen, fmt, ap);
		va_end(ap);
	}
	c->rc = -1;
	return -1;
}

/* Records running out of memory. */
static int oom(struct mb_ctx *c)
{
	if (c->rc == 0)
		snprintf(c->err, c->errlen, "out of memory");
	c->rc = -2;
	return -1;
}

/* A string member, or NULL. */
static const char *jstr(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* 1 when s carries a character no header may hold (CR, LF, NUL-less controls). */
static int has_ctl(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 && *s != '\t')
			return 1;
	return 0;
}

/* Adds a finished header line (owned) to the list. */
static int add_line(struct mb_ctx *c, struct curl_slist **l, char *line)
{
	struct curl_slist *n;

	if (line == NULL)
		return oom(c);
	n = curl_slist_append(*l, line);
	free(line);
	if (n == NULL)
		return oom(c);
	*l = n;
	return 0;
}

/* Adds "Name: value", folded; value already in header syntax. */
static int add_folded(struct mb_ctx *c, struct curl_slist **l, const char *name, const char *value)
{
	char *h;
	int rc = fold(name, value, &h);

	if (rc == -1)
		return bad(c, "header %.80s: a word too long to fold under 998 octets", name);
	return add_line(c, l, h);
}

/* An address object {"email","name"}: checked, then as a mailbox. */
static char *mailbox_of(struct mb_ctx *c, const cJSON *a, const char *field)
{
	const char *email = jstr(a, "email"), *name = jstr(a, "name");
	char *mb;

	if (email == NULL || email[0] == '\0' || strchr(email, '@') == NULL) {
		bad(c, "%s: no email address", field);
		return NULL;
	}
	if (has_ctl(email) || strpbrk(email, " <>,;\"") != NULL) {
		bad(c, "%s: email address '%.100s' cannot be written in a header", field, email);
		return NULL;
	}
	if (name != NULL && has_ctl(name)) {
		bad(c, "%s: name holds a line break or control character", field);
		return NULL;
	}
	if ((mb = mime_mailbox(name, email)) == NULL)
		oom(c);
	return mb;
}

/* Adds "<email>" to the envelope recipients. */
static int add_rcpt(struct mb_ctx *c, const char *email)
{
	size_t n = strlen(email) + 3;
	char *r = malloc(n);

	if (r == NULL)
		return oom(c);
	snprintf(r, n, "<%s>", email);
	if (add_line(c, &c->m->rcpt, r) == 0)
		c->m->nrcpt++;
	return c->rc ? -1 : 0;
}

/* An address list header (To, Cc, Reply-To) from an array; the addresses
 * also join the envelope when rcpt is set.  An empty list adds nothing. */
static int add_list(struct mb_ctx *c, const char *name, const cJSON *arr, const char *field,
                    int header, int rcpt)
{
	struct strbuf v = {0};
	const cJSON *a;
	char where[96];
	int i = 0;

	if (arr == NULL)
		return 0;
	if (!cJSON_IsArray(arr))
		return bad(c, "%s: not an array", field);
	cJSON_ArrayForEach(a, arr)
	{
		char *mb;

		snprintf(where, sizeof(where), "%s.%d", field, i++);
		if ((mb = mailbox_of(c, a, where)) == NULL)
			break;
		if (v.len)
			strbuf_str(&v, ", ");
		strbuf_str(&v, mb);
		free(mb);
		if (rcpt && add_rcpt(c, jstr(a, "email")) < 0)
			break;
	}
	if (c->rc == 0 && v.failed)
		oom(c);
	if (c->rc == 0 && header && v.len)
		add_folded(c, &c->m->headers, name, v.p);
	free(v.p);
	return c->rc ? -1 : 0;
}

/* RFC 5322 date of now in local time, names in English whatever the locale. */
static void rfc5322_date(time_t now, char *buf, size_t len)
{
	static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
	static const char *const mons[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
	                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	struct tm tm;
	long off;

	localtime_r(&now, &tm);
	off = tm.tm_gmtoff / 60;
	snprintf(buf, len, "%s, %02d %s %04d %02d:%02d:%02d %c%02ld%02ld", days[tm.tm_wday % 7],
	         tm.tm_mday, mons[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
	         tm.tm_sec, off < 0 ? '-' : '+', labs(off) / 60, labs(off) % 60);
}

/* The Message-ID, stable per unit when the intake gave the request an id. */
static void message_id(const struct mime_opts *o, const char *from, char *buf, size_t len)
{
	const char *dom = strrchr(from, '@');
	char left[80];
	size_t i, k = 0;

	if (o->msgid != NULL)
		for (i = 0; o->msgid[i] && k < sizeof(left) - 1; i++)
			if (isalnum((unsigned char)o->msgid[i]) || strchr("-_.", o->msgid[i]))
				left[k++] = o->msgid[i];
	left[k] = '\0';
	if (k == 0) {
		unsigned char r[12];

		if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
			memset(r, 0, sizeof(r)); /* unit id and time still tell them apart */
		for (i = 0; i < sizeof(r); i++)
			snprintf(left + 2 * i, 3, "%02x", r[i]);
		snprintf(left + 2 * sizeof(r), sizeof(left) - 2 * sizeof(r), ".%lld",
		         (long long)o->now);
	}
	snprintf(buf, len, "<%s.u%lld@%s>", left, (long long)o->unit_id,
	         dom && dom[1] ? dom + 1 : "localhost");
}

/* 1 when a custom header is one we write ourselves or must never write. */
static int reserved_header(const char *name, int x_smtpapi)
{
	static const char *const ours[] = {"From",
	                                   "To",
	                                   "Cc",
	                                   "Bcc",
	                                   "Subject",
	                                   "Reply-To",
	                                   "Content-Type",
	                                   "MIME-Version",
	                                   "Content-Transfer-Encoding",
	                                   NULL};
	int i;

	for (i = 0; ours[i]; i++)
		if (strcasecmp(name, ours[i]) == 0)
			return 1;
	return x_smtpapi && strcasecmp(name, "X-SMTPAPI") == 0;
}

/* Sets a part's data: CRLF line endings, 7bit when it can be, else QP. */
static int text_part(struct mb_ctx *c, curl_mimepart *part, const char *text, const char *type)
{
	char *crlf, *sub, ct[160];
	const unsigned char *s;
	size_t linelen = 0;
	int sevenbit = 1;

	if ((sub = mime_substitute(text, c->subs)) == NULL)
		return oom(c);
	crlf = mime_crlf(sub);
	free(sub);
	if (crlf == NULL)
		return oom(c);
	for (s = (const unsigned char *)crlf; *s && sevenbit; s++) {
		if (*s == '\n')
			linelen = 0;
		else if (++linelen > MIME_LINE_HARD || *s >= 0x7f ||
		         (*s < 0x20 && *s != '\t' && *s != '\r'))
			sevenbit = 0;
	}
	if (strncasecmp(type, "text/", 5) == 0 && strcasestr(type, "charset") == NULL)
		snprintf(ct, sizeof(ct), "%s; charset=UTF-8", type);
	else
		snprintf(ct, sizeof(ct), "%s", type);
	if (curl_mime_data(part, crlf, strlen(crlf)) != CURLE_OK ||
	    curl_mime_type(part, ct) != CURLE_OK ||
	    curl_mime_encoder(part, sevenbit ? "7bit" : "quoted-printable") != CURLE_OK) {
		free(crlf);
		return oom(c);
	}
	free(crlf);
	return 0;
}

/* The content parts, in order, as one alternative (or one part alone). */
static int add_content(struct mb_ctx *c)
{
	const cJSON *arr = cJSON_GetObjectItemCaseSensitive(c->content, "content"), *e;
	int n = cJSON_GetArraySize(arr), i = 0;
	curl_mime *alt = NULL;
	curl_mimepart *part;
	char where[64];

	if (!cJSON_IsArray(arr) || n == 0) {
		if (jstr(c->content, "template_id") != NULL)
			return bad(c, "content: a template_id needs the sendgrid route: an smtp "
			              "route sends only the content it is given");
		return bad(c, "content: no content to send");
	}
	if (n > 1) {
		if ((alt = curl_mime_init(c->easy)) == NULL)
			return oom(c);
		part = curl_mime_addpart(c->m->mime);
		if (part == NULL || curl_mime_subparts(part, alt) != CURLE_OK) {
			curl_mime_free(alt);
			return oom(c);
		}
		if (curl_mime_type(part, "multipart/alternative") != CURLE_OK)
			return oom(c);
	}
	cJSON_ArrayForEach(e, arr)
	{
		const char *type = jstr(e, "type"), *value = jstr(e, "value");

		snprintf(where, sizeof(where), "content.%d", i++);
		if (type == NULL || value == NULL)
			return bad(c, "%s: needs a type and a value", where);
		if (!v3mail_mime_type_ok(type))
			return bad(c, "%s.type: '%.100s' is not a MIME type", where, type);
		if ((part = curl_mime_addpart(alt ? alt : c->m->mime)) == NULL)
			return oom(c);
		if (text_part(c, part, value, type) < 0)
			return -1;
	}
	return 0;
}

/* 1 when s is printable ASCII without quote or backslash. */
static int quotable(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f || *s == '"' ||
		    *s == '\\')
			return 0;
	return 1;
}

/* Attachments: base64, with Content-Disposition and Content-ID of our own
 * (curl's would write a non-ASCII filename raw). */
static int add_attachments(struct mb_ctx *c)
{
	const cJSON *arr = cJSON_GetObjectItemCaseSensitive(c->content, "attachments"), *a;
	char where[64];
	int i = 0;

	if (arr == NULL)
		return 0;
	if (!cJSON_IsArray(arr))
		return bad(c, "attachments: not an array");
	cJSON_ArrayForEach(a, arr)
	{
		const char *data = jstr(a, "content"), *fn = jstr(a, "filename");
		const char *type = jstr(a, "type"), *disp = jstr(a, "disposition");
		const char *cid = jstr(a, "content_id");
		struct curl_slist *h = NULL;
		struct strbuf v = {0};
		unsigned char *bytes;
		curl_mimepart *part;
		long n;

		snprintf(where, sizeof(where), "attachments.%d", i++);
		if (data == NULL || fn == NULL || fn[0] == '\0')
			return bad(c, "%s: needs content and filename", where);
		if (has_ctl(fn) || (type && !v3mail_mime_type_ok(type)) ||
		    (cid && (has_ctl(cid) || strpbrk(cid, " <>") != NULL)) ||
		    (disp && strcmp(disp, "inline") != 0 && strcmp(disp, "attachment") != 0))
			return bad(c,
			           "%s: filename, type, disposition or content_id cannot be "
			           "written in a header",
			           where);
		if ((n = b64_decode_alloc(data, strlen(data), &bytes, B64_PAD_OPTIONAL)) == -2)
			return oom(c);
		if (n < 0)
			return bad(c, "%s.content: not base64", where);
		if ((part = curl_mime_addpart(c->m->mime)) == NULL ||
		    curl_mime_data(part, (const char *)bytes, (size_t)n) != CURLE_OK ||
		    curl_mime_type(part, type ? type : "application/octet-stream") != CURLE_OK ||
		    curl_mime_encoder(part, "base64") != CURLE_OK) {
			free(bytes);
			return oom(c);
		}
		free(bytes);
		/* An inline part is one the html refers to by its Content-ID. */
		strbuf_str(&v, disp ? disp : cid ? "inline" : "attachment");
		if (quotable(fn)) {
			strbuf_str(&v, "; filename=\"");
			strbuf_str(&v, fn);
			strbuf_str(&v, "\"");
		} else {
			/* RFC 2231: filename*=UTF-8''percent-encoded */
			const unsigned char *s;
			char pct[4];

			strbuf_str(&v, "; filename*=UTF-8''");
			for (s = (const unsigned char *)fn; *s; s++) {
				if (isalnum(*s) || strchr("!#$&+-.^_`|~", *s))
					strbuf_add(&v, (const char *)s, 1);
				else {
					snprintf(pct, sizeof(pct), "%%%02X", *s);
					strbuf_str(&v, pct);
				}
			}
		}
		if (v.failed) {
			free(v.p);
			return oom(c);
		}
		add_folded(c, &h, "Content-Disposition", v.p);
		free(v.p);
		if (c->rc == 0 && cid) {
			size_t l = strlen(cid) + 16;
			char *line = malloc(l);

			if (line != NULL)
				snprintf(line, l, "Content-ID: <%s>", cid);
			add_line(c, &h, line);
		}
		if (c->rc != 0 || curl_mime_headers(part, h, 1) != CURLE_OK) {
			curl_slist_free_all(h);
			return c->rc ? -1 : oom(c);
		}
	}
	return 0;
}

/* The custom headers: global merged with the personalization's. */
static int add_custom(struct mb_ctx *c, int *have_date, int *have_msgid)
{
	cJSON *h = mime_headers_merge(cJSON_GetObjectItemCaseSensitive(c->content, "headers"),
	                              cJSON_GetObjectItemCaseSensitive(c->pers, "headers"));
	const cJSON *e;

	if (h == NULL)
		return oom(c);
	for (e = h->child; e != NULL && c->rc == 0; e = e->next) {
		if (!cJSON_IsString(e))
			bad(c, "headers.%.80s: not a string", e->string);
		else if (!v3mail_header_name_ok(e->string))
			bad(c, "headers: '%.80s' is not a header name", e->string);
		else if (has_ctl(e->valuestring))
			bad(c, "headers.%.80s: holds a line break", e->string);
		else if (reserved_header(e->string, c->o->x_smtpapi))
			continue; /* ours to write; v3 refuses them at the intake anyway */
		else {
			*have_date |= strcasecmp(e->string, "Date") == 0;
			*have_msgid |= strcasecmp(e->string, "Message-ID") == 0;
			add_line(c, &c->m->headers, mime_header_text(e->string, e->valuestring));
		}
	}
	cJSON_Delete(h);
	return c->rc ? -1 : 0;
}

/* From, To, Cc, Reply-To, Subject, Date, Message-ID, X-SMTPAPI and the
 * custom headers, plus the envelope. */
static int add_headers(struct mb_ctx *c)
{
	const cJSON *from = cJSON_GetObjectItemCaseSensitive(c->content, "from");
	const cJSON *rt = cJSON_GetObjectItemCaseSensitive(c->content, "reply_to");
	const char *subject = jstr(c->pers, "subject"), *femail;
	int have_date = 0, have_msgid = 0;
	char *mb, buf[320];

	if ((mb = mailbox_of(c, from, "from")) == NULL)
		return -1;
	femail = jstr(from, "email");
	add_folded(c, &c->m->headers, "From", mb);
	free(mb);
	if (c->rc)
		return -1;
	snprintf(buf, sizeof(buf), "<%s>", femail);
	if ((c->m->mail_from = strdup(buf)) == NULL)
		return oom(c);

	if (add_list(c, "To", cJSON_GetObjectItemCaseSensitive(c->pers, "to"), "to", 1, 1) < 0 ||
	    add_list(c, "Cc", cJSON_GetObjectItemCaseSensitive(c->pers, "cc"), "cc", 1, 1) < 0 ||
	    add_list(c, "Bcc", cJSON_GetObjectItemCaseSensitive(c->pers, "bcc"), "bcc", 0, 1) < 0)
		return -1;
	if (c->m->nrcpt == 0)
		return bad(c, "personalization: no recipient in to, cc or bcc");

	/* reply_to_list is v3's newer form; either gives one Reply-To. */
	if (rt != NULL) {
		cJSON *one = cJSON_CreateArray();

		if (one == NULL || !cJSON_AddItemReferenceToArray(one, (cJSON *)rt)) {
			cJSON_Delete(one);
			return oom(c);
		}
		add_list(c, "Reply-To", one, "reply_to", 1, 0);
		cJSON_Delete(one);
	} else
		add_list(c, "Reply-To",
		         cJSON_GetObjectItemCaseSensitive(c->content, "reply_to_list"),
		         "reply_to_list", 1, 0);
	if (c->rc)
		return -1;

	if (subject == NULL)
		subject = jstr(c->content, "subject");
	if (subject != NULL) {
		char *s = mime_substitute(subject, c->subs);

		if (s == NULL)
			return oom(c);
		if (has_ctl(s)) {
			free(s);
			return bad(c, "subject: holds a line break");
		}
		add_line(c, &c->m->headers, mime_header_text("Subject", s));
		free(s);
		if (c->rc)
			return -1;
	}

	if (add_custom(c, &have_date, &have_msgid) < 0)
		return -1;
	if (!have_date) {
		char d[64];

		rfc5322_date(c->o->now, d, sizeof(d));
		add_folded(c, &c->m->headers, "Date", d);
	}
	if (!have_msgid && c->rc == 0) {
		message_id(c->o, femail, buf, sizeof(buf));
		add_folded(c, &c->m->headers, "Message-ID", buf);
	}
	if (c->o->x_smtpapi && c->rc == 0) {
		char *x = mime_smtpapi(c->content, c->pers, c->o), *h;

		if (x == NULL)
			return oom(c);
		h = mime_fold_json("X-SMTPAPI", x);
		free(x);
		if (h == NULL)
			return bad(c, "X-SMTPAPI: a value too long to fold under 998 octets");
		add_line(c, &c->m->headers, h);
	}
	return c->rc ? -1 : 0;
}

void mime_msg_free(struct mime_msg *m)
{
	if (m == NULL)
		return;
	curl_mime_free(m->mime);
	curl_slist_free_all(m->headers);
	curl_slist_free_all(m->rcpt);
	free(m->mail_from);
	memset(m, 0, sizeof(*m));
}

int mime_build_json(struct mime_msg *m, CURL *easy, const cJSON *content, const cJSON *pers,
                    const struct mime_opts *o, char *err, size_t errlen)
{
	struct mb_ctx c = {.m = m, .easy = easy, .o = o, .err = err, .errlen = errlen};

	memset(m, 0, sizeof(*m));
	err[0] = '\0';
	c.content = content;
	c.pers = pers;
	if (!cJSON_IsObject(c.content))
		bad(&c, "content is not a JSON object");
	else if (!cJSON_IsObject(c.pers))
		bad(&c, "personalization is not a JSON object");
	else {
		c.subs = cJSON_GetObjectItemCaseSensitive(c.pers, "substitutions");
		if ((m->mime = curl_mime_init(easy)) == NULL)
			oom(&c);
		else if (add_headers(&c) == 0 && add_content(&c) == 0)
			add_attachments(&c);
	}
	if (c.rc != 0)
		mime_msg_free(m);
	return c.rc;
}

int mime_build(struct mime_msg *m, CURL *easy, const char *content, const char *personalization,
               const struct mime_opts *o, char *err, size_t errlen)
{
	cJSON *cj = cJSON_Parse(content ? content : "");
	cJSON *pj = cJSON_Parse(personalization ? personalization : "");
	int rc = mime_build_json(m, easy, cj, pj, o, err, errlen);

	cJSON_Delete(cj);
	cJSON_Delete(pj);
	return rc;
}
