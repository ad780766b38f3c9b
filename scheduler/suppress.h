/*
 * suppress.h -- addresses warmupd never sends to: hard bounces, spam reports,
 * unsubscribes, and what an operator added or imported.
 *
 * The list lives in the store (store_suppress_*).  This module is what the
 * daemon does with it: the provider's events put addresses on it
 * (suppress_event, called by the webhook inside the turn's transaction),
 * and the intake checks every recipient of a request against it
 * (suppress_filter), dropping the suppressed ones or refusing the request
 * as [suppress] mode says.
 */
#ifndef WU_SUPPRESS_H
#define WU_SUPPRESS_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

struct wu_daemon;

/* Why an address is suppressed.  The names are what the store, the HTTP
 * API and the metrics say. */
enum suppress_reason {
	SUPP_BOUNCE,
	SUPP_SPAMREPORT,
	SUPP_UNSUBSCRIBE,
	SUPP_GROUP_UNSUBSCRIBE,
	SUPP_MANUAL,
	SUPP_IMPORT,
	SUPP_REASON_COUNT
};

/* The name of a reason ("bounce", ...), or "other". */
static inline const char *suppress_reason_name(int r)
{
	static const char *const names[SUPP_REASON_COUNT] = {
	    "bounce", "spamreport", "unsubscribe", "group_unsubscribe", "manual", "import"};

	return r >= 0 && r < SUPP_REASON_COUNT ? names[r] : "other";
}

/* The reason called name, or -1. */
int suppress_reason_parse(const char *name);

/* 1 when email looks like an address worth keeping (local@domain.tld, no
 * blanks or control characters, at most 254 bytes), else 0 with why. */
int suppress_address_ok(const char *email, const char **why);

/*
 * A provider event put an address on the list: a hard bounce ("bounce"), a
 * spam report ("spamreport"), an unsubscribe ("unsubscribe",
 * "group_unsubscribe").  Joins the loop turn's transaction; the address is
 * kept when the turn commits.  detail is free text (e.g. the bounce reason)
 * or NULL.  Returns 1 when the address is new on the list, 0 when it was
 * already there, -1 on failure (the turn is then rolled back).
 */
int suppress_event(struct wu_daemon *d, const char *email, const char *reason, const char *detail);

/* A group unsubscribe: email is suppressed for mail of unsubscribe group
 * `group` (asm.group_id) only.  Joins the turn's transaction like
 * suppress_event().  Returns 1 when new, 0 when it was there, -1 on failure. */
int suppress_group_event(struct wu_daemon *d, const char *email, int64_t group,
                         const char *detail);

/* Which of the list a message is checked against: SendGrid's
 * mail_settings bypasses, and its unsubscribe group. */
struct suppress_scope {
	unsigned bypass; /* 1 << enum suppress_reason: entries of these reasons do not count */
	int64_t group;   /* asm.group_id, or -1: group unsubscribes of it count */
	int drop;        /* drop suppressed recipients even in reject mode (dispatch) */
};

/* The scope a v3 body asks for: bypass_list_management bypasses every
 * reason; bypass_bounce_management bounces, bypass_spam_management spam
 * reports, bypass_unsubscribe_management unsubscribes and group
 * unsubscribes (as SendGrid's own lists are bypassed). */
void suppress_scope_of(const cJSON *body, struct suppress_scope *sc);

/* Is one address suppressed for mail of scope sc (NULL = every reason, no
 * group)?  1 with its reason ("group_unsubscribe" for a group entry), 0,
 * or -1 when the store failed (the turn is then failed). */
int suppress_check(struct wu_daemon *d, const char *email, const struct suppress_scope *sc,
                   char *reason, size_t len);

/* What suppress_filter() found in one request. */
struct suppress_result {
	int dropped;      /* recipients removed (drop mode) */
	int dropped_pers; /* personalizations removed: no "to" left */
	char field[128];  /* reject mode: "personalizations.0.to.1.email" */
	char email[256];  /* the (first) suppressed address */
	char reason[32];  /* its reason */
};

/*
 * Checks every to/cc/bcc address of the personalizations array ps (one
 * or two index probes each; inside the caller's transaction) for mail of
 * scope sc (NULL: the whole list).  Drop mode removes
 * suppressed recipients, and personalizations left without a "to", and
 * counts them per reason in the daemon's status counters.  Reject mode
 * stops at the first suppressed address.  Returns 0 (nothing suppressed,
 * or dropped as told), 1 when the request must be refused (reject mode;
 * res says which field), -1 when the store failed.
 */
int suppress_filter(struct wu_daemon *d, cJSON *ps, const struct suppress_scope *sc,
                    struct suppress_result *res);

#endif
