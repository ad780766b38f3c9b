/*
 * store_suppress.c -- addresses never to send to: global suppressions
 * (lower-cased addresses, with why and when) and group unsubscribes.
 */
#include "scheduler/store_priv.h"

#include <stdio.h>
#include <string.h>

/* ---- suppressions ------------------------------------------------------- */

/* Longest address kept: RFC 5321's path limit. */
#define ADDRESS_MAX 254

/* Lower-cases an address into out (ASCII only: the domain is
 * case-insensitive, and mailbox providers treat local parts so too). */
static int address_key(struct store *s, const char *email, char *out, const char *what)
{
	size_t n = email ? strlen(email) : 0;

	if (n == 0 || n > ADDRESS_MAX)
		return st_fail(s, SQLITE_OK, "%s: address %s", what, n ? "too long" : "empty");
	for (size_t i = 0; i <= n; i++) {
		char c = email[i];
		out[i] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
	}
	return 0;
}

/* Adds one address; keeps the first reason of one already there. */
int store_suppress_add(struct store *s, const char *email, const char *reason, const char *detail,
                       int64_t now)
{
	sqlite3_stmt *st = s->stmt[S_SUPP_ADD];
	char key[ADDRESS_MAX + 1];

	if (address_key(s, email, key, "store_suppress_add") < 0)
		return -1;
	st_bind_text(st, 1, key);
	st_bind_text(st, 2, reason ? reason : "manual");
	sqlite3_bind_int64(st, 3, now);
	st_bind_text(st, 4, detail);
	if (st_run(s, S_SUPP_ADD, "store_suppress_add") < 0)
		return -1;
	return sqlite3_changes(s->db) > 0;
}

/* Adds many addresses in one savepoint: all or none. */
int store_suppress_add_bulk(struct store *s, const char *const *emails, int n, const char *reason,
                            const char *detail, int64_t now)
{
	int added = 0, rc;

	if (st_sp_begin(s, "store_suppress_add_bulk") < 0)
		return -1;
	for (int i = 0; i < n; i++) {
		if ((rc = store_suppress_add(s, emails[i], reason, detail, now)) < 0)
			goto fail;
		added += rc;
	}
	if (st_sp_release(s, "store_suppress_add_bulk") < 0)
		goto fail;
	return added;
fail:
	st_sp_abort(s);
	return -1;
}

/* Removes one address. */
int store_suppress_remove(struct store *s, const char *email)
{
	char key[ADDRESS_MAX + 1];

	if (address_key(s, email, key, "store_suppress_remove") < 0)
		return -1;
	st_bind_text(s->stmt[S_SUPP_REMOVE], 1, key);
	if (st_run(s, S_SUPP_REMOVE, "store_suppress_remove") < 0)
		return -1;
	return sqlite3_changes(s->db) > 0;
}

/* One primary-key probe: is this address suppressed, and why. */
int store_suppress_check(struct store *s, const char *email, char *reason, size_t reason_len)
{
	sqlite3_stmt *st = s->stmt[S_SUPP_CHECK];
	char key[ADDRESS_MAX + 1];
	int rc;

	/* Too long to have been stored: not suppressed, and not an error. */
	if (email && strlen(email) > ADDRESS_MAX)
		return 0;
	if (address_key(s, email, key, "store_suppress_check") < 0)
		return -1;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && reason && reason_len) {
		const char *r = (const char *)sqlite3_column_text(st, 0);
		snprintf(reason, reason_len, "%s", r ? r : "");
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc == SQLITE_ROW)
		return 1;
	if (rc != SQLITE_DONE)
		return st_fail(s, rc, "store_suppress_check");
	return 0;
}

/* Adds (address, group). */
int store_suppress_group_add(struct store *s, const char *email, int64_t group,
                             const char *detail, int64_t now)
{
	sqlite3_stmt *st = s->stmt[S_GROUP_ADD];
	char key[ADDRESS_MAX + 1];

	if (address_key(s, email, key, "store_suppress_group_add") < 0)
		return -1;
	st_bind_text(st, 1, key);
	sqlite3_bind_int64(st, 2, group);
	sqlite3_bind_int64(st, 3, now);
	st_bind_text(st, 4, detail);
	if (st_run(s, S_GROUP_ADD, "store_suppress_group_add") < 0)
		return -1;
	return sqlite3_changes(s->db) > 0;
}

/* One probe of (address, group). */
int store_suppress_group_check(struct store *s, const char *email, int64_t group)
{
	sqlite3_stmt *st = s->stmt[S_GROUP_CHECK];
	char key[ADDRESS_MAX + 1];
	int rc;

	if (email && strlen(email) > ADDRESS_MAX)
		return 0;
	if (address_key(s, email, key, "store_suppress_group_check") < 0)
		return -1;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, group);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc == SQLITE_ROW)
		return 1;
	if (rc != SQLITE_DONE)
		return st_fail(s, rc, "store_suppress_group_check");
	return 0;
}

/* Lists a page of entries in address order. */
int store_suppress_list(struct store *s, const char *reason, const char *after, int limit,
                        void (*fn)(void *arg, const struct store_suppression *e), void *arg)
{
	enum stmt k = reason ? S_SUPP_LIST_REASON : S_SUPP_LIST;
	sqlite3_stmt *st = s->stmt[k];
	int n = 0, rc;

	st_bind_text(st, 1, after ? after : "");
	sqlite3_bind_int(st, 2, limit);
	if (reason)
		st_bind_text(st, 3, reason);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_suppression e = {
		    .email = (const char *)sqlite3_column_text(st, 0),
		    .reason = (const char *)sqlite3_column_text(st, 1),
		    .created = sqlite3_column_int64(st, 2),
		    .detail = (const char *)sqlite3_column_text(st, 3),
		};
		fn(arg, &e);
		n++;
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc != SQLITE_DONE)
		return st_fail(s, rc, "store_suppress_list");
	return n;
}

/* Counts entries, of one reason or all. */
int store_suppress_count(struct store *s, const char *reason, int64_t *n)
{
	if (!reason)
		return st_run_int(s, S_SUPP_COUNT, "store_suppress_count", n);
	st_bind_text(s->stmt[S_SUPP_COUNT_REASON], 1, reason);
	return st_run_int(s, S_SUPP_COUNT_REASON, "store_suppress_count", n);
}
