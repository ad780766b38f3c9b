/*
 * store_events.c -- what happened, for people and for dedup: the events
 * log, the webhook's seen sg_event_ids, and each address's last engagement.
 */
#include "scheduler/store_priv.h"


/* Removes old events, at most limit. */
int store_events_prune(struct store *s, int64_t before, int limit)
{
	sqlite3_bind_int64(s->stmt[S_PRUNE_EVENTS], 1, before);
	sqlite3_bind_int(s->stmt[S_PRUNE_EVENTS], 2, limit);
	if (st_run(s, S_PRUNE_EVENTS, "store_events_prune") < 0)
		return -1;
	return sqlite3_changes(s->db);
}

/* ---- events ------------------------------------------------------------- */

/* Appends one event. */
int store_event_add(struct store *s, int64_t at, const char *kind, const char *route,
                    const char *text)
{
	sqlite3_stmt *st = s->stmt[S_EVENT_ADD];

	sqlite3_bind_int64(st, 1, at);
	st_bind_text(st, 2, kind ? kind : "");
	st_bind_text(st, 3, route);
	st_bind_text(st, 4, text ? text : "");
	return st_run(s, S_EVENT_ADD, "store_event_add");
}

/* Reports the last n events, newest first. */
int store_events_recent(struct store *s, int n, void (*fn)(void *arg, const struct store_event *e),
                        void *arg)
{
	sqlite3_stmt *st = s->stmt[S_EVENTS_RECENT];
	int count = 0, rc;

	sqlite3_bind_int(st, 1, n);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_event e = {
		    .id = sqlite3_column_int64(st, 0),
		    .at = sqlite3_column_int64(st, 1),
		    .kind = (const char *)sqlite3_column_text(st, 2),
		    .route = (const char *)sqlite3_column_text(st, 3),
		    .text = (const char *)sqlite3_column_text(st, 4),
		};
		fn(arg, &e);
		count++;
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc != SQLITE_DONE)
		return st_fail(s, rc, "store_events_recent");
	return count;
}

/* Records an Event Webhook event id; 1 when new, 0 when already seen. */
int store_webhook_seen(struct store *s, const char *event_id, int64_t now)
{
	sqlite3_stmt *st = s->stmt[S_WEBHOOK_SEEN];

	st_bind_text(st, 1, event_id);
	sqlite3_bind_int64(st, 2, now);
	if (st_run(s, S_WEBHOOK_SEEN, "store_webhook_seen") < 0)
		return -1;
	return sqlite3_changes(s->db) == 1;
}

/* Forgets event ids recorded before `before`; returns how many. */
int store_webhook_prune(struct store *s, int64_t before)
{
	sqlite3_bind_int64(s->stmt[S_WEBHOOK_PRUNE], 1, before);
	if (st_run(s, S_WEBHOOK_PRUNE, "store_webhook_prune") < 0)
		return -1;
	return sqlite3_changes(s->db);
}

/* Engagement the provider reported (an open or a click): the address's
 * last engagement moves up to at, never back. */
int store_engaged_note(struct store *s, const char *email, int64_t at)
{
	sqlite3_stmt *st = s->stmt[S_ENGAGED_NOTE];

	st_bind_text(st, 1, email);
	sqlite3_bind_int64(st, 2, at);
	return st_run(s, S_ENGAGED_NOTE, "store_engaged_note");
}

/* Forgets up to limit engagements older than before.  Returns how many. */
int store_engaged_prune(struct store *s, int64_t before, int limit)
{
	sqlite3_stmt *st = s->stmt[S_ENGAGED_PRUNE];

	sqlite3_bind_int64(st, 1, before);
	sqlite3_bind_int(st, 2, limit);
	if (st_run(s, S_ENGAGED_PRUNE, "store_engaged_prune") < 0)
		return -1;
	return sqlite3_changes(s->db);
}

int store_engaged_get(struct store *s, const char *email, int64_t *at)
{
	sqlite3_stmt *st = s->stmt[S_ENGAGED_GET];
	int rc;

	*at = 0;
	st_bind_text(st, 1, email);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*at = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : st_fail(s, rc, "store_engaged_get");
}
