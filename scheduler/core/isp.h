/*
 * isp.h -- which mailbox provider a recipient domain belongs to.
 *
 * A table of groups, each with its domains.  A domain matches its own entry
 * or the entry of any parent ("mx.gmail.com" is google's).  An entry
 * "hotmail.*" stands for the name under any country suffix: hotmail.fr,
 * hotmail.co.jp, hotmail.com.br (the label, then one or two labels of which
 * the last is a two-letter country code, or "com").  Unmatched domains are
 * "other" (id 0).  Built-in groups can be replaced and new ones added.
 */
#ifndef WU_ISP_H
#define WU_ISP_H

#include "wu.h"

#define WU_ISP_OTHER 0

struct wu_isp_domain {
	char *pattern; /* lower case: "gmail.com" or "hotmail.*" */
	int isp;
};

struct wu_isp_table {
	int n; /* groups, "other" included */
	char names[WU_ISP_MAX][WU_ISP_NAME_MAX];
	int ndomains;
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

#endif
