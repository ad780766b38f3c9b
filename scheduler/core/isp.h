/*
 * isp.h -- which mailbox provider a recipient domain belongs to.
 *
 * A table of groups, each with its domains.  A domain matches its own entry
 * or the entry of any parent ("mx.gmail.com" is google's).  An entry
 * "hotmail.*" stands for the name under any country suffix: hotmail.fr,
 * hotmail.co.jp, hotmail.com.br (the label, then one or two labels of which
 * the last is a two-letter country code, or "com").  Unmatched domains are
 * "other" (id 0).  Built-in groups can be replaced and new ones added.
 *
 * A group also has MX host patterns ("*.google.com", or one host name):
 * a domain no group claims by name is grouped by the mail exchanger DNS
 * names for it (acme.co.jp with MX aspmx.l.google.com is google's).  The
 * lookup is the caller's (scheduler/mx.c, the simulator's --mx-map); this
 * file only matches the host name.
 */
#ifndef WU_ISP_H
#define WU_ISP_H

#include "wu.h"

#define WU_ISP_OTHER 0

struct wu_isp_domain {
	char *pattern; /* lower case: "gmail.com", "hotmail.*", or for mx "*.google.com" */
	int isp;
	int mx;  /* 1: an MX host pattern, 0: a recipient domain */
	int len; /* strlen(pattern), so that most entries fail on a compare */
};

struct wu_isp_table {
	int n; /* groups, "other" included */
	char names[WU_ISP_MAX][WU_ISP_NAME_MAX];
	int ndomains; /* domain and MX patterns, in one array */
	int cap_domains;
	struct wu_isp_domain *domains;
};

/* Fills t with the built-in groups: other, google, yahoo, microsoft, apple,
 * docomo, au, softbank.  Returns 0 or -1 (no memory). */
int wu_isp_table_init(struct wu_isp_table *t);
int wu_isp_table_copy(struct wu_isp_table *dst, const struct wu_isp_table *src);
void wu_isp_table_free(struct wu_isp_table *t);

/* The id of the named group, or -1. */
int wu_isp_find(const struct wu_isp_table *t, const char *name);

/* The id of the named group, created empty when new; -1 with a message when
 * the name is not [a-z0-9_-]{1,31} or the table is full. */
int wu_isp_define(struct wu_isp_table *t, const char *name, char *err, size_t errlen);

/* Drops every domain of group isp (before giving it a new list). */
void wu_isp_clear(struct wu_isp_table *t, int isp);

/* Adds the domains of a comma- or blank-separated list to group isp; a domain
 * already in another group moves.  Returns 0 or -1 with a message naming the
 * bad entry. */
int wu_isp_add_domains(struct wu_isp_table *t, int isp, const char *list, char *err, size_t errlen);

/* The group of a recipient domain (any case; a full address is accepted and
 * its part after the last '@' used). */
int wu_isp_classify(const struct wu_isp_table *t, const char *domain);

/* Drops every MX pattern of group isp. */
void wu_isp_clear_mx(struct wu_isp_table *t, int isp);

/* Adds the MX patterns of a comma- or blank-separated list to group isp:
 * "*.google.com" (any name under google.com, not google.com itself) or one
 * host name.  A pattern already in another group moves.  Returns 0 or -1
 * with a message naming the bad entry. */
int wu_isp_add_mx(struct wu_isp_table *t, int isp, const char *list, char *err, size_t errlen);

/* The group of a mail exchanger's host name (any case, a trailing dot
 * ignored): the group of the longest pattern it matches, or WU_ISP_OTHER. */
int wu_isp_classify_mx(const struct wu_isp_table *t, const char *mx_host);

#endif
