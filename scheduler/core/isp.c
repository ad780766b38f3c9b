/*
 * isp.c -- recipient domain -> mailbox provider group.
 *
 * The table is small (dozens of entries), and classification happens once
 * per unit at intake, so a linear scan over the domain and its parents is
 * plenty.  "name.*" entries cover the country variants Microsoft and others
 * run (hotmail.co.jp, outlook.jp, live.fr).
 *
 * MX patterns sit in the same array, marked, so that a struct copy of the
 * table (the engine keeps one) still owns a single allocation.  The
 * built-in ones are the exchangers the providers publish for the domains
 * they host; the carriers' are guesses from their own domains' MX (see
 * README, "ISP groups by MX").
 */
#include "isp.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const struct {
	const char *name;
	const char *domains;
} builtin[] = {
    {"google", "gmail.com googlemail.com"},
    {"yahoo", "yahoo.com yahoo.co.jp ymail.com rocketmail.com aol.com yahoo.*"},
    {"microsoft", "outlook.com hotmail.com live.com msn.com hotmail.* outlook.* live.*"},
    {"apple", "icloud.com me.com mac.com"},
    {"docomo", "docomo.ne.jp"},
    {"au", "ezweb.ne.jp au.com"},
    {"softbank", "softbank.ne.jp i.softbank.jp"},
};

/* Google Workspace: aspmx.l.google.com, smtp.google.com; Microsoft 365:
 * acme-co-jp.mail.protection.outlook.com (Outlook.com's own domains:
 * outlook-com.olc.protection.outlook.com); Yahoo and AOL:
 * mta5.am0.yahoodns.net; iCloud Mail custom domains: mx01.mail.icloud.com. */
static const struct {
	const char *name;
	const char *mx;
} builtin_mx[] = {
    {"google", "*.google.com *.googlemail.com"},
    {"yahoo", "*.yahoodns.net *.mail.yahoo.co.jp"},
    {"microsoft", "*.mail.protection.outlook.com *.olc.protection.outlook.com"},
    {"apple", "*.mail.icloud.com"},
    {"docomo", "*.docomo.ne.jp"},
    {"au", "*.ezweb.ne.jp *.au.com"},
    {"softbank", "*.softbank.ne.jp *.softbank.jp"},
};

static int add_list(struct wu_isp_table *t, int isp, const char *list, int mx, char *err,
                    size_t errlen);

int wu_isp_table_init(struct wu_isp_table *t)
{
	memset(t, 0, sizeof(*t));
	strcpy(t->names[0], "other");
	t->n = 1;
	for (size_t i = 0; i < sizeof(builtin) / sizeof(builtin[0]); i++) {
		int id = wu_isp_define(t, builtin[i].name, NULL, 0);
		if (id < 0 || wu_isp_add_domains(t, id, builtin[i].domains, NULL, 0) < 0) {
			wu_isp_table_free(t);
			return -1;
		}
	}
	for (size_t i = 0; i < sizeof(builtin_mx) / sizeof(builtin_mx[0]); i++)
		if (add_list(t, wu_isp_find(t, builtin_mx[i].name), builtin_mx[i].mx, 1, NULL, 0) <
		    0) {
			wu_isp_table_free(t);
			return -1;
		}
	return 0;
}

int wu_isp_table_copy(struct wu_isp_table *dst, const struct wu_isp_table *src)
{
	*dst = *src;
	dst->domains = NULL;
	dst->ndomains = dst->cap_domains = 0;
	for (int i = 0; i < src->ndomains; i++)
		if (add_list(dst, src->domains[i].isp, src->domains[i].pattern, src->domains[i].mx,
		             NULL, 0) < 0) {
			wu_isp_table_free(dst);
			return -1;
		}
	return 0;
}

void wu_isp_table_free(struct wu_isp_table *t)
{
	for (int i = 0; i < t->ndomains; i++)
		free(t->domains[i].pattern);
	free(t->domains);
	t->domains = NULL;
	t->ndomains = t->cap_domains = 0;
}

int wu_isp_find(const struct wu_isp_table *t, const char *name)
{
	for (int i = 0; i < t->n; i++)
		if (strcmp(t->names[i], name) == 0)
			return i;
	return -1;
}

int wu_isp_define(struct wu_isp_table *t, const char *name, char *err, size_t errlen)
{
	size_t len = strlen(name);
	int id = wu_isp_find(t, name);

	if (id >= 0)
		return id;
	if (len == 0 || len >= WU_ISP_NAME_MAX ||
	    strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_-") != len) {
		if (err && errlen)
			snprintf(
			    err, errlen,
			    "an ISP group name is 1-31 characters of a-z, 0-9, _ and -, got '%s'",
			    name);
		return -1;
	}
	if (t->n >= WU_ISP_MAX) {
		if (err && errlen)
			snprintf(err, errlen, "too many ISP groups (at most %d)", WU_ISP_MAX);
		return -1;
	}
	strcpy(t->names[t->n], name);
	return t->n++;
}

/* Drops the patterns of one kind of group isp. */
static void clear_kind(struct wu_isp_table *t, int isp, int mx)
{
	int j = 0;

	for (int i = 0; i < t->ndomains; i++) {
		if (t->domains[i].isp == isp && t->domains[i].mx == mx)
			free(t->domains[i].pattern);
		else
			t->domains[j++] = t->domains[i];
	}
	t->ndomains = j;
}

void wu_isp_clear(struct wu_isp_table *t, int isp)
{
	clear_kind(t, isp, 0);
}

void wu_isp_clear_mx(struct wu_isp_table *t, int isp)
{
	clear_kind(t, isp, 1);
}

/* Is s a plausible domain or "label.*" pattern (mx: host or "*.suffix")? */
static int valid_pattern(const char *s, int mx)
{
	size_t n = strlen(s);

	if (mx && n > 2 && s[0] == '*' && s[1] == '.')
		s += 2, n -= 2;
	if (n == 0 || n > 253 || s[0] == '.' || s[n - 1] == '.' || strstr(s, ".."))
		return 0;
	if (!mx && n > 2 && strcmp(s + n - 2, ".*") == 0)
		n -= 2;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '.')
			return 0;
	return 1;
}

/* Adds one lower-cased pattern, moving it if another group had it. */
static int add_one(struct wu_isp_table *t, int isp, const char *pat, int mx)
{
	for (int i = 0; i < t->ndomains; i++)
		if (t->domains[i].mx == mx && strcmp(t->domains[i].pattern, pat) == 0) {
			t->domains[i].isp = isp;
			return 0;
		}
	if (t->ndomains == t->cap_domains) {
		int nc = t->cap_domains ? t->cap_domains * 2 : 64;
		void *d = realloc(t->domains, (size_t)nc * sizeof(*t->domains));
		if (!d)
			return -1;
		t->domains = d;
		t->cap_domains = nc;
	}
	if (!(t->domains[t->ndomains].pattern = strdup(pat)))
		return -1;
	t->domains[t->ndomains].mx = mx;
	t->domains[t->ndomains].len = (int)strlen(pat);
	t->domains[t->ndomains++].isp = isp;
	return 0;
}

int wu_isp_add_domains(struct wu_isp_table *t, int isp, const char *list, char *err, size_t errlen)
{
	return add_list(t, isp, list, 0, err, errlen);
}

int wu_isp_add_mx(struct wu_isp_table *t, int isp, const char *list, char *err, size_t errlen)
{
	return add_list(t, isp, list, 1, err, errlen);
}

/* Adds the patterns of a list, domains or (mx) MX hosts. */
static int add_list(struct wu_isp_table *t, int isp, const char *list, int mx, char *err,
                    size_t errlen)
{
	char word[256];
	const char *p = list;

	while (*p) {
		size_t n = strcspn(p, ", \t");
		if (n == 0) {
			p++;
			continue;
		}
		if (n >= sizeof(word)) {
			if (err && errlen)
				snprintf(err, errlen, "domain too long: '%.40s...'", p);
			return -1;
		}
		for (size_t i = 0; i < n; i++)
			word[i] = (char)tolower((unsigned char)p[i]);
		word[n] = '\0';
		if (!valid_pattern(word, mx)) {
			if (err && errlen)
				snprintf(err, errlen,
				         mx ? "expected an MX host such as *.google.com or "
				              "aspmx.l.google.com, got '%s'"
				            : "expected a domain such as gmail.com or hotmail.*, "
				              "got '%s'",
				         word);
			return -1;
		}
		if (add_one(t, isp, word, mx) < 0) {
			if (err && errlen)
				snprintf(err, errlen, "out of memory");
			return -1;
		}
		p += n;
	}
	return 0;
}

/* Is rest (after "name.") a country suffix: "fr", "co.jp", "com.br", "com"? */
static int country_suffix(const char *rest)
{
	const char *dot = strchr(rest, '.');
	const char *last = dot ? dot + 1 : rest;

	if (dot && strchr(last, '.'))
		return 0; /* more than two labels */
	if (!dot && strcmp(rest, "com") == 0)
		return 1;
	return strlen(last) == 2 && isalpha((unsigned char)last[0]) &&
	       isalpha((unsigned char)last[1]) && (!dot || dot - rest <= 3);
}

/* Does domain d (lower case, dn long) match entry e exactly?  The lengths
 * settle most entries: classifying a domain of three labels against the
 * built-in table took ~4,500 instructions with a strlen and strcmp each. */
static int match(const struct wu_isp_domain *e, const char *d, size_t dn)
{
	const char *p = e->pattern;
	size_t n = (size_t)e->len;

	if (n > 2 && p[n - 1] == '*' && p[n - 2] == '.')
		return dn > n - 1 && memcmp(p, d, n - 1) == 0 && country_suffix(d + n - 1);
	return n == dn && memcmp(p, d, n) == 0;
}

int wu_isp_classify(const struct wu_isp_table *t, const char *domain)
{
	char d[256];
	const char *at = strrchr(domain, '@');
	size_t n;

	if (at)
		domain = at + 1;
	n = strlen(domain);
	if (n == 0 || n >= sizeof(d))
		return WU_ISP_OTHER;
	size_t label[128]; /* where each label starts: the domain, then its parents */
	int nlabels = 1;

	label[0] = 0;
	for (size_t i = 0; i <= n; i++) {
		char c = domain[i];
		d[i] = c >= 'A' && c <= 'Z' ? (char)(c + 'a' - 'A') : c;
		if (c == '.' && i + 1 < n && nlabels < 128)
			label[nlabels++] = i + 1;
	}
	if (n && d[n - 1] == '.')
		d[--n] = '\0';
	/* The most specific entry wins: the domain itself, then each parent
	 * (mx.gmail.com, gmail.com, com), the first entry on a tie.  One pass
	 * over the table keeping the longest suffix matched: the simulator
	 * classifies every message, and a pass per parent cost ~1,300
	 * instructions for a domain of three labels, now ~400. */
	size_t best = 0;
	int isp = WU_ISP_OTHER;

	for (int i = 0; i < t->ndomains; i++) {
		const struct wu_isp_domain *e = &t->domains[i];
		size_t len = (size_t)e->len;

		if (e->mx || len <= best)
			continue;
		if (len > 2 && e->pattern[len - 1] == '*' && e->pattern[len - 2] == '.') {
			for (int k = 0; k < nlabels && n - label[k] > best; k++)
				if (d[label[k]] == e->pattern[0] &&
				    match(e, d + label[k], n - label[k])) {
					best = n - label[k];
					isp = e->isp;
					break;
				}
			continue;
		}
		if (len > n || d[n - 1] != e->pattern[len - 1] ||
		    (len < n && d[n - len - 1] != '.') || memcmp(d + n - len, e->pattern, len) != 0)
			continue;
		best = len;
		isp = e->isp;
	}
	return isp;
}

int wu_isp_classify_mx(const struct wu_isp_table *t, const char *mx_host)
{
	size_t n = strlen(mx_host), best = 0;
	int isp = WU_ISP_OTHER;

	if (n && mx_host[n - 1] == '.')
		n--;
	if (n == 0 || n > 253)
		return WU_ISP_OTHER;
	for (int i = 0; i < t->ndomains; i++) {
		const char *p = t->domains[i].pattern;
		size_t len = strlen(p), m = len;
		int wild = p[0] == '*';

		if (!t->domains[i].mx || len <= best)
			continue;
		if (wild) /* "*.google.com": a longer name ending in ".google.com" */
			m--, p++;
		if (wild ? m >= n : m != n)
			continue;
		if (strncasecmp(mx_host + n - m, p, m) != 0)
			continue;
		best = len;
		isp = t->domains[i].isp;
	}
	return isp;
}
