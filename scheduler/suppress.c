/*
 * NAME
 *	suppress.c -- the suppression list at work: provider events add to it,
 *	the intake checks every recipient against it.
 *
 * SYNOPSIS
 *	suppress_event(d, "bob@example.com", "bounce", "550 5.1.1 no such user");
 *	switch (suppress_filter(d, personalizations, &res)) ...
 *
 * DESCRIPTION
 *	The list is a table of the store keyed by the lower-cased address, so
 *	the check of one recipient is one probe of a primary key, run inside
 *	the intake's transaction: the cost per request grows with its
 *	recipients, not with the size of the list.
 *
 *	In drop mode a suppressed recipient is removed from its
 *	personalization; a personalization left without a "to" is not stored
 *	at all (SendGrid would refuse it), and a request left with nothing is
 *	still answered 202, as SendGrid answers for suppressed recipients.  In
 *	reject mode the first suppressed address fails the request with a 400
 *	that names its field.
 *
 * DIAGNOSTICS
 *	Store failures return -1 and mark the turn's transaction failed; the
 *	caller answers 500.  Dropped recipients are logged at debug level and
 *	counted per reason in the status counters.
 */
#include "suppress.h"

#include <string.h>

#include "daemon.h"
#include "log.h"
#include "sender/v3mail.h"

_Static_assert(SUPP_REASON_COUNT <= STATUS_SUPP_REASONS, "status_extra.supp_dropped too small");

int suppress_reason_parse(const char *name)
{
	for (int r = 0; r < SUPP_REASON_COUNT; r++)
		if (name && strcmp(name, suppress_reason_name(r)) == 0)
			return r;
	return -1;
}

/* A plain shape check: what the list can hold and a provider can bounce.
 * The intake's full RFC checks live in v3mail.c; this only keeps rubbish
 * (a CSV header, a name, a blank) out of the list. */
int suppress_address_ok(const char *email, const char **why)
{
	const char *at, *dot;
	size_t n;

	if (!email || !*email)
		return *why = "empty address", 0;
	n = strlen(email);
	if (n > 254)
		return *why = "longer than 254 characters", 0;
	for (const char *p = email; *p; p++)
		if ((unsigned char)*p <= ' ' || *p == 0x7f || *p == '<' || *p == '>' || *p == ',' ||
		    *p == ';' || *p == '"')
			return *why = "holds a blank, a control character or one of <>,;\"", 0;
	at = strrchr(email, '@');
	if (!at || at == email)
		return *why = "not of the form local@domain", 0;
	if (at - email > 64)
		return *why = "local part longer than 64 characters", 0;
	dot = strrchr(at + 1, '.');
	if (strchr(email, '@') != at || !dot || dot == at + 1 || !dot[1] || at[1] == '.')
		return *why = "not of the form local@domain.tld", 0;
	return 1;
}

/* One address from a provider event onto the list: all mail (group < 0),
 * or one unsubscribe group's. */
static int event_add(struct wu_daemon *d, const char *email, const char *reason, int64_t group,
                     const char *detail)
{
	const char *why;
	int rc;

	if (suppress_reason_parse(reason) < 0 || !suppress_address_ok(email, &why)) {
		wu_warn("suppress: ignoring a %s event for an unusable address",
		        reason ? reason : "(no reason)");
		return 0;
	}
	if (daemon_txn(d) < 0)
		return -1;
	rc = group < 0 ? store_suppress_add(d->store, email, reason, detail, daemon_now(d))
	               : store_suppress_group_add(d->store, email, group, detail, daemon_now(d));
	if (rc < 0) {
		wu_error("suppress: %s", store_errmsg(d->store));
		daemon_txn_fail(d, "suppress");
		return -1;
	}
	if (rc > 0 && group < 0)
		wu_info("suppress: %s added (%s)", email, reason);
	else if (rc > 0)
		wu_info("suppress: %s added for group %lld", email, (long long)group);
	return rc;
}

int suppress_event(struct wu_daemon *d, const char *email, const char *reason, const char *detail)
{
	return event_add(d, email, reason, -1, detail);
}

int suppress_group_event(struct wu_daemon *d, const char *email, int64_t group,
                         const char *detail)
{
	/* Without a group (< 0) it holds for all mail. */
	return event_add(d, email, suppress_reason_name(SUPP_GROUP_UNSUBSCRIBE), group, detail);
}

void suppress_scope_of(const cJSON *body, struct suppress_scope *sc)
{
	static const struct {
		const char *setting;
		unsigned reasons;
	} bypass[] = {
	    {"bypass_list_management", ~0u},
	    {"bypass_bounce_management", 1u << SUPP_BOUNCE},
	    {"bypass_spam_management", 1u << SUPP_SPAMREPORT},
	    {"bypass_unsubscribe_management",
	     1u << SUPP_UNSUBSCRIBE | 1u << SUPP_GROUP_UNSUBSCRIBE},
	};
	const cJSON *g = cJSON_GetObjectItemCaseSensitive(
	    cJSON_GetObjectItemCaseSensitive(body, "asm"), "group_id");

	sc->bypass = 0;
	sc->drop = 0;
	for (size_t i = 0; i < sizeof(bypass) / sizeof(bypass[0]); i++)
		if (v3mail_setting(body, "mail_settings", bypass[i].setting) == 1)
			sc->bypass |= bypass[i].reasons;
	sc->group = cJSON_IsNumber(g) && g->valuedouble >= 0 ? (int64_t)g->valuedouble : -1;
}

int suppress_check(struct wu_daemon *d, const char *email, const struct suppress_scope *sc,
                   char *reason, size_t len)
{
	unsigned bypass = sc ? sc->bypass : 0;
	int rc, r;

	if (bypass == ~0u)
		return 0;
	rc = store_suppress_check(d->store, email, reason, len);
	if (rc > 0) {
		r = suppress_reason_parse(reason);
		/* manual and import entries are warmupd's own: only the whole
		 * list's bypass passes them. */
		if (r >= 0 && (bypass & (1u << r)))
			rc = 0;
	}
	if (rc == 0 && sc && sc->group >= 0 && !(bypass & (1u << SUPP_GROUP_UNSUBSCRIBE))) {
		rc = store_suppress_group_check(d->store, email, sc->group);
		if (rc > 0)
			snprintf(reason, len, "%s", suppress_reason_name(SUPP_GROUP_UNSUBSCRIBE));
	}
	if (rc < 0) {
		wu_error("suppress: %s", store_errmsg(d->store));
		daemon_txn_fail(d, "suppress");
	}
	return rc;
}

/* Looks one address up; 1 = suppressed (reason filled), 0, -1. */
static int lookup(struct wu_daemon *d, const cJSON *addr, const struct suppress_scope *sc,
                  char *reason, size_t len)
{
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(addr, "email");

	if (!cJSON_IsString(e))
		return 0;
	return suppress_check(d, e->valuestring, sc, reason, len);
}

int suppress_filter(struct wu_daemon *d, cJSON *ps, const struct suppress_scope *sc,
                    struct suppress_result *res)
{
	static const char *const kinds[] = {"to", "cc", "bcc"};
	char reason[32];
	cJSON *p, *next;
	int pi = 0;

	memset(res, 0, sizeof(*res));
	if (daemon_txn(d) < 0)
		return -1;
	for (p = ps ? ps->child : NULL; p; p = next, pi++) {
		next = p->next;
		for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
			cJSON *list = cJSON_GetObjectItemCaseSensitive(p, kinds[k]), *a, *an;
			int ai = 0;

			if (!cJSON_IsArray(list))
				continue;
			for (a = list->child; a; a = an, ai++) {
				int rc = lookup(d, a, sc, reason, sizeof(reason));

				an = a->next;
				if (rc < 0)
					return -1;
				if (rc == 0)
					continue;
				if (d->conf.suppress_reject && !(sc && sc->drop)) {
					const cJSON *e =
					    cJSON_GetObjectItemCaseSensitive(a, "email");

					snprintf(res->field, sizeof(res->field),
					         "personalizations.%d.%s.%d.email", pi, kinds[k],
					         ai);
					snprintf(res->email, sizeof(res->email), "%s",
					         e->valuestring);
					snprintf(res->reason, sizeof(res->reason), "%s", reason);
					d->extra.supp_rejected++;
					return 1;
				}
				wu_debug("suppress: %s dropped (%s)",
				         cJSON_GetObjectItemCaseSensitive(a, "email")->valuestring,
				         reason);
				int r = suppress_reason_parse(reason);
				d->extra.supp_dropped[r < 0 ? SUPP_MANUAL : r]++;
				if (res->dropped++ == 0) {
					snprintf(res->email, sizeof(res->email), "%s",
					         cJSON_GetObjectItemCaseSensitive(a, "email")
					             ->valuestring);
					snprintf(res->reason, sizeof(res->reason), "%s", reason);
				}
				cJSON_Delete(cJSON_DetachItemViaPointer(list, a));
			}
			/* SendGrid refuses empty cc and bcc arrays. */
			if (k > 0 && !list->child)
				cJSON_DeleteItemFromObjectCaseSensitive(p, kinds[k]);
		}
		const cJSON *to = cJSON_GetObjectItemCaseSensitive(p, "to");
		if (!cJSON_IsArray(to) || !to->child) {
			res->dropped_pers++;
			d->extra.supp_dropped_pers++;
			cJSON_Delete(cJSON_DetachItemViaPointer(ps, p));
		}
	}
	return 0;
}
