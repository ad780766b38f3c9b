/*
 * smtpd_parse.c -- the SMTP intake's command syntax (RFC 5321 4.1), pure.
 */
#include "smtpd_parse.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const verbs[SMTPD_VERB_COUNT] = {
    [SMTPD_EHLO] = "EHLO", [SMTPD_HELO] = "HELO", [SMTPD_MAIL] = "MAIL",
    [SMTPD_RCPT] = "RCPT", [SMTPD_DATA] = "DATA", [SMTPD_RSET] = "RSET",
    [SMTPD_NOOP] = "NOOP", [SMTPD_QUIT] = "QUIT", [SMTPD_VRFY] = "VRFY",
    [SMTPD_EXPN] = "EXPN", [SMTPD_HELP] = "HELP", [SMTPD_STARTTLS] = "STARTTLS",
    [SMTPD_AUTH] = "AUTH",
};

enum smtpd_verb smtpd_verb(const char *line, const char **arg)
{
	size_t n = strcspn(line, " ");

	*arg = line[n] ? line + n + 1 : line + n;
	for (int v = 1; v < SMTPD_VERB_COUNT; v++)
		if (strlen(verbs[v]) == n && strncasecmp(line, verbs[v], n) == 0)
			return (enum smtpd_verb)v;
	return SMTPD_UNKNOWN;
}

int smtpd_mailbox_ok(const char *addr)
{
	const char *at = strrchr(addr, '@'), *dom;
	size_t len = strlen(addr);

	if (!at || at == addr || len > SMTPD_PATH_MAX - 2)
		return 0;
	for (const unsigned char *p = (const unsigned char *)addr; *p; p++)
		if (*p <= ' ' || *p == 0x7f || *p == '<' || *p == '>' || *p == '(' || *p == ')' ||
		    *p == ',' || *p == ';' || *p == '\\')
			return 0;
	dom = at + 1;
	if (dom[0] == '[')
		return dom[strlen(dom) - 1] == ']' && strlen(dom) > 2;
	if (!*dom || dom[0] == '.' || dom[strlen(dom) - 1] == '.' || strstr(dom, "..") ||
	    !strchr(dom, '.'))
		return 0;
	for (const unsigned char *p = (const unsigned char *)dom; *p; p++)
		if (!(isalnum(*p) || *p == '-' || *p == '.' || *p >= 0x80))
			return 0;
	return 1;
}

int smtpd_parse_path(const char *arg, const char *keyword, char *addr, size_t addrlen,
                     const char **params, char *why, size_t whylen)
{
	size_t kl = strlen(keyword);
	const char *p, *close;
	int from = strcasecmp(keyword, "FROM:") == 0;
	const char *code = from ? "501 5.1.7" : "501 5.1.3";

	if (strncasecmp(arg, keyword, kl) != 0) {
		snprintf(why, whylen, "501 5.5.4 Syntax: %s %s<address>", from ? "MAIL" : "RCPT",
		         keyword);
		return -1;
	}
	p = arg + kl;
	while (*p == ' ') /* tolerated, as most servers do */
		p++;
	if (*p != '<' || !(close = strchr(p, '>'))) {
		snprintf(why, whylen, "%s Bad %s address syntax: the path needs <brackets>", code,
		         from ? "sender" : "recipient");
		return -1;
	}
	if ((size_t)(close - p + 1) > SMTPD_PATH_MAX || (size_t)(close - p - 1) >= addrlen) {
		snprintf(why, whylen, "%s Bad %s address syntax: longer than %d octets", code,
		         from ? "sender" : "recipient", SMTPD_PATH_MAX);
		return -1;
	}
	memcpy(addr, p + 1, (size_t)(close - p - 1));
	addr[close - p - 1] = '\0';
	/* A source route (<@a,@b:user@c>) is obsolete: keep the mailbox. */
	if (addr[0] == '@' && strchr(addr, ':'))
		memmove(addr, strchr(addr, ':') + 1, strlen(strchr(addr, ':') + 1) + 1);
	if (close[1] && close[1] != ' ') {
		snprintf(why, whylen, "%s Bad %s address syntax: text after the path", code,
		         from ? "sender" : "recipient");
		return -1;
	}
	*params = close[1] ? close + 2 : close + 1;
	if (!addr[0] && from)
		return 0; /* the null sender <> */
	if (!smtpd_mailbox_ok(addr)) {
		snprintf(why, whylen, "%s Bad %s address syntax", code, from ? "sender" : "recipient");
		return -1;
	}
	return 0;
}

/* Walks "KEY[=VALUE] KEY[=VALUE]..." calling fn for each. */
static int each_param(const char *params, int (*fn)(const char *key, size_t kl, const char *val,
                                                    size_t vl, void *arg, char *why, size_t wl),
                      void *arg, char *why, size_t whylen)
{
	const char *p = params;

	while (*p) {
		size_t n, kl;
		const char *eq;

		while (*p == ' ')
			p++;
		if (!*p)
			break;
		n = strcspn(p, " ");
		eq = memchr(p, '=', n);
		kl = eq ? (size_t)(eq - p) : n;
		if (fn(p, kl, eq ? eq + 1 : NULL, eq ? n - kl - 1 : 0, arg, why, whylen) < 0)
			return -1;
		p += n;
	}
	return 0;
}

static int mail_param(const char *key, size_t kl, const char *val, size_t vl, void *arg,
                      char *why, size_t whylen)
{
	struct smtpd_mail_params *mp = arg;

	if (kl == 4 && strncasecmp(key, "SIZE", 4) == 0 && val) {
		char num[24], *end;

		if (vl == 0 || vl >= sizeof(num))
			goto bad;
		memcpy(num, val, vl);
		num[vl] = '\0';
		for (size_t i = 0; i < vl; i++)
			if (!isdigit((unsigned char)num[i]))
				goto bad;
		mp->size = strtoull(num, &end, 10);
		return 0;
	}
	if (kl == 4 && strncasecmp(key, "BODY", 4) == 0 && val) {
		if (vl == 4 && strncasecmp(val, "7BIT", 4) == 0)
			return mp->body_8bit = 0, 0;
		if (vl == 8 && strncasecmp(val, "8BITMIME", 8) == 0)
			return mp->body_8bit = 1, 0;
		goto bad;
	}
	if (kl == 8 && strncasecmp(key, "SMTPUTF8", 8) == 0 && !val)
		return mp->smtputf8 = 1, 0;
	if (kl == 4 && strncasecmp(key, "AUTH", 4) == 0 && val)
		return 0; /* RFC 4954 5: accepted, not used */
bad:
	snprintf(why, whylen, "555 5.5.4 Unsupported MAIL parameter %.*s", (int)(kl < 40 ? kl : 40),
	         key);
	return -1;
}

int smtpd_parse_mail_params(const char *params, struct smtpd_mail_params *p, char *why,
                            size_t whylen)
{
	memset(p, 0, sizeof(*p));
	return each_param(params, mail_param, p, why, whylen);
}

static int rcpt_param(const char *key, size_t kl, const char *val, size_t vl, void *arg,
                      char *why, size_t whylen)
{
	(void)val, (void)vl, (void)arg;
	snprintf(why, whylen, "555 5.5.4 Unsupported RCPT parameter %.*s", (int)(kl < 40 ? kl : 40),
	         key);
	return -1;
}

int smtpd_parse_rcpt_params(const char *params, char *why, size_t whylen)
{
	return each_param(params, rcpt_param, NULL, why, whylen);
}
