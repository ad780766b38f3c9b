/*
 * store.h -- the durable queue: SQLite in WAL mode, the only module that
 * includes sqlite3.h.
 *
 * contents    one row per accepted request: the v3 body without its
 *             personalizations, stored once however many recipients share it
 * units       one row per personalization: its JSON, ISP, state, route,
 *             attempts, next_at, provider message id, last error
 * counters    day x route x ISP x result totals, for status and history
 * engine      the core engine's saved state (one row)
 * suppressions addresses never to send to (lower-cased), with why and when
 * events      what the engine reported (pauses, gate, days), for people
 *
 * The schema is versioned with PRAGMA user_version.  Statements are prepared
 * once and cached.  Callers group work into short transactions with
 * store_begin()/store_commit(); one commit is one fsync (synchronous=FULL),
 * which is how intake gets group commit: many requests, one transaction.
 * The daemon pipelines further (store_defer_sync): it commits every loop
 * turn and syncs on a worker thread, so the turns committed while one sync
 * runs share the next.
 *
 * Every function returns 0 (or a count) on success and -1 on failure, with
 * the reason in store_errmsg().  The message is sticky: it stays until the
 * next failure.  A store is one SQLite connection, used from one thread.
 *
 * Outside store_begin() each call is its own transaction; inside, nothing
 * opens a transaction of its own (multi-statement calls use a savepoint).
 * When a call fails inside a transaction, call store_rollback(): SQLite may
 * already have rolled back (I/O error, full disk), and rollback is harmless
 * then.
 */
#ifndef WU_STORE_H
#define WU_STORE_H

#include <stddef.h>
#include <stdint.h>

struct store;

enum store_state {
	STORE_QUEUED = 0,   /* waiting for a route */
	STORE_INFLIGHT = 1, /* handed to a sender; back to QUEUED after a crash */
	STORE_SENT = 2,     /* a route accepted it */
	STORE_FAILED = 3    /* permanent failure */
};

struct store_unit {
	int64_t id;
	int64_t content_id;
	int isp;
	int attempts;
	int64_t next_at;
	int v3only;            /* store_ready: only the v3 API route may send it */
	char *personalization; /* JSON text, owned by the unit */
	char domain[256];      /* the recipient's (store_ready only) */
	int64_t engaged_at;    /* store_ready: the application's mark (the last
	                        * engagement it gave; -1 not engaged; 0 none) */
	int64_t learned_at;    /* store_ready: the last open or click of the
	                        * unit's first address the webhook reported; 0 none */
};

int store_open(struct store **s, const char *path, char *err, size_t errlen);
void store_close(struct store *s); /* accepts NULL */
const char *store_errmsg(const struct store *s);

int store_begin(struct store *s);
int store_commit(struct store *s);
int store_rollback(struct store *s);

/* Deferred durability, for a caller that pipelines its commits: after
 * store_defer_sync() a commit no longer waits for the disk, and
 * store_sync() makes every commit made so far durable with one fdatasync
 * of the WAL.  store_sync() touches no SQLite state: it may run on a worker
 * thread while the store's thread goes on committing, one call at a time.
 * Both return 0, or -1 (store_sync with errno set). */
int store_defer_sync(struct store *s);
int store_sync(struct store *s);
/* The same, safe beside a store_sync() running on another thread. */
int store_sync_now(struct store *s);
/* Deferred checkpoints: after store_defer_sync() a commit no longer copies
 * the WAL back into the database when the WAL is long (SQLite's automatic
 * checkpoint, with an fsync of each file, on the committing thread).
 * store_checkpoint_due() says, after a commit, whether one is due:
 *	STORE_CKPT_ASIDE (1000 pages or more): store_checkpoint() does it
 *	    through a connection of its own, without stopping the commits: it
 *	    may run on a worker thread beside the store's own, one call at a
 *	    time.  It returns 0, or -1 with store_checkpoint_err() saying why
 *	    (what is not copied stays in the WAL, as safe, for the next).
 *	STORE_CKPT_HERE (4000 pages or more: commits came faster than the
 *	    checkpoints aside could catch up, and the WAL only starts over
 *	    once a checkpoint has copied all of it): store_checkpoint_here()
 *	    does it on the store's thread, between commits, as SQLite would;
 *	    0, or -1 with store_errmsg().  Call it when no store_checkpoint()
 *	    runs (it would find the WAL taken and do nothing).
 * So the WAL stays under about 16 MB (4000 pages of 4 kB) however fast
 * the commits come. */
enum { STORE_CKPT_NONE, STORE_CKPT_ASIDE, STORE_CKPT_HERE };
int store_checkpoint_due(const struct store *s);
int store_checkpoint(struct store *s);
const char *store_checkpoint_err(const struct store *s);
int store_checkpoint_here(struct store *s);

/* Intake: one content, then its units (inside one transaction). */
int store_add_content(struct store *s, const char *msgid, const char *body, size_t len, int64_t now,
                      int64_t *content_id);
int store_add_unit(struct store *s, int64_t content_id, const char *personalization, size_t len,
                   int isp, const char *domain, int64_t now, int64_t *unit_id);
/* The same with the application's engagement mark (engaged_at as in
 * struct store_unit) and the first address (lowercase), which the
 * dispatcher looks up in what the webhook learned. */
int store_add_unit_marked(struct store *s, int64_t content_id, const char *personalization,
                          size_t len, int isp, const char *domain, int64_t engaged_at,
                          const char *email, int64_t now, int64_t *unit_id);
/* What open and click events teach: email's last engagement (moves up
 * only), and read back.  One small row per address that ever engaged. */
int store_engaged_note(struct store *s, const char *email, int64_t at);
int store_engaged_get(struct store *s, const char *email, int64_t *at);
/* Forgets up to limit engagements older than before (the pruning timer, with
 * before = now - [warmup] engaged_age).  Returns how many, or -1. */
int store_engaged_prune(struct store *s, int64_t before, int limit);
/* SMTP intake: the message's v3 form (body, for the API route), the message
 * byte for byte as received (for SMTP routes) and its envelope sender. */
int store_add_raw_content(struct store *s, const char *msgid, const char *body, size_t len,
                          const char *raw, size_t raw_len, const char *mail_from, int64_t now,
                          int64_t *content_id);

/* Start-up: units left INFLIGHT by a crash return to QUEUED.  Returns how many. */
int store_recover(struct store *s);

/* Up to max QUEUED units of this ISP with next_at <= now, oldest first.
 * Returns the count; free each with store_unit_clear(). */
int store_ready(struct store *s, int isp, int64_t now, struct store_unit *out, int max);
void store_unit_clear(struct store_unit *u);

/* Moves a QUEUED unit to ISP group isp (its domain's MX answer came). */
int store_set_isp(struct store *s, int64_t unit_id, int isp);

/* For each ISP 0..nisp-1: ready[isp] = QUEUED units with next_at <= now
 * (capped at 1, "has some", when exact is 0), and *earliest = the smallest
 * next_at > now among QUEUED units of those ISPs (INT64_MAX when none).
 * Cost: one index probe per ISP when exact is 0; exact counts walk the due
 * units. */
int store_ready_isps(struct store *s, int64_t now, int nisp, int64_t *ready, int exact,
                     int64_t *earliest);

/* State changes of one unit.  mark_inflight needs a QUEUED unit (so one unit
 * cannot be handed out twice) and counts an attempt; the others need a QUEUED
 * or INFLIGHT unit.  An unknown unit or a wrong state is a failure (-1). */
int store_mark_inflight(struct store *s, int64_t unit_id, int route);
int store_mark_sent(struct store *s, int64_t unit_id, const char *provider_id, int64_t now);
int store_requeue(struct store *s, int64_t unit_id, int64_t next_at, const char *error);
int store_mark_failed(struct store *s, int64_t unit_id, const char *error, int64_t now);

/* The body of a content; *body is malloc'd and NUL-terminated. */
int store_content(struct store *s, int64_t content_id, char **body, size_t *len, char *msgid,
                  size_t msgid_len);
/* The raw message and envelope sender of a content taken over SMTP, both
 * malloc'd; both NULL (and 0 returned) for a content that came as JSON. */
int store_content_raw(struct store *s, int64_t content_id, char **raw, size_t *raw_len,
                      char **mail_from);

/* Counters: add n to (date, route, isp, result). */
int store_count(struct store *s, int date, int route, int isp, int result, int64_t n);
/* Calls fn for every counter row of date. */
int store_counters(struct store *s, int date,
                   void (*fn)(void *arg, int route, int isp, int result, int64_t n), void *arg);

/* Units by state, all ISPs: depth[STORE_QUEUED..STORE_FAILED]. */
int store_depth(struct store *s, int64_t depth[4]);
/* QUEUED units per ISP (depth[0..nisp-1]). */
int store_depth_isps(struct store *s, int nisp, int64_t *depth);

/* Units SENT in [from, to) by route and hour: counts[route * nhours + h]
 * for finished_at in [from + h * hour, from + (h + 1) * hour); the last
 * hour takes what lies past it.  Units without a route are left out. */
int store_sent_hours(struct store *s, int64_t from, int64_t to, int64_t hour, int nroutes,
                     int nhours, int64_t *counts);

/* The engine's saved state. *text is malloc'd; NULL when none was saved.
 * Saving NULL forgets the saved state. */
int store_engine_save(struct store *s, const char *text);
int store_engine_load(struct store *s, char **text);

/* Removes SENT and FAILED units finished before `before`, and contents no
 * unit refers to any more.  Returns the number of units removed. */
int store_prune(struct store *s, int64_t before);
/* The same for at most limit units (-1: all), in one savepoint: the
 * daemon's timer prunes in small steps so that no transaction stalls its
 * loop.  Returns the number of units removed. */
int store_prune_some(struct store *s, int64_t before, int limit);
/* Removes at most limit events recorded before `before`; returns how many. */
int store_events_prune(struct store *s, int64_t before, int limit);
/* Returns up to pages free pages to the file system (PRAGMA
 * incremental_vacuum).  A no-op for a store created before auto_vacuum was
 * set (README: reclaiming space).  Outside a transaction it is one. */
int store_vacuum_step(struct store *s, int pages);

/* Added for status lookups and tests. */

/* One unit by id, whatever its state.  Returns 1 when found (out, if not
 * NULL, is filled: free with store_unit_clear()), 0 when there is no such
 * unit.  *state gets the enum store_state; *provider_id and *error, when
 * those pointers are not NULL, get malloc'd copies (NULL when unset). */
int store_unit_get(struct store *s, int64_t unit_id, struct store_unit *out, int *state,
                   char **provider_id, char **error);

/* Suppressions: addresses never to send to.  Addresses are stored and
 * looked up lower-cased (ASCII), so "Bob@Example.com" and "bob@example.com"
 * are one entry.  reason is a short word (bounce, spamreport, unsubscribe,
 * group_unsubscribe, manual, import); detail is free text or NULL. */

/* Adds one address; an address already there keeps its first reason and
 * date.  Returns 1 when added, 0 when it was there, -1 on failure. */
int store_suppress_add(struct store *s, const char *email, const char *reason, const char *detail,
                       int64_t now);
/* Adds n addresses atomically (a savepoint: one transaction on its own,
 * part of the caller's inside store_begin()).  Returns how many were new. */
int store_suppress_add_bulk(struct store *s, const char *const *emails, int n, const char *reason,
                            const char *detail, int64_t now);
/* Returns 1 when removed, 0 when the address was not there. */
int store_suppress_remove(struct store *s, const char *email);
/* One index probe.  Returns 1 when suppressed (reason, if not NULL, gets
 * its reason), 0 when not. */
int store_suppress_check(struct store *s, const char *email, char *reason, size_t reason_len);

/* Units only the v3 API route can send (mail with a template_id, which
 * SendGrid renders).  store_set_v3only marks a QUEUED unit; waiting gives
 * how many such units are QUEUED and the created time of the oldest (0
 * when none). */
int store_set_v3only(struct store *s, int64_t unit_id);
int store_v3only_waiting(struct store *s, int64_t *n, int64_t *oldest);

/* Group unsubscribes: an address suppressed for one unsubscribe group
 * (asm.group_id) only.  add returns 1 when added, 0 when it was there;
 * check returns 1 when (email, group) is there, 0 when not. */
int store_suppress_group_add(struct store *s, const char *email, int64_t group,
                             const char *detail, int64_t now);
int store_suppress_group_check(struct store *s, const char *email, int64_t group);

struct store_suppression {
	const char *email, *reason, *detail; /* valid during the callback only */
	int64_t created;
};

/* Calls fn for up to limit entries in address order, those after `after`
 * (NULL or "" = from the start), of one reason (NULL = all).  Returns the
 * count reported.  fn must not use the store. */
int store_suppress_list(struct store *s, const char *reason, const char *after, int limit,
                        void (*fn)(void *arg, const struct store_suppression *e), void *arg);
/* Entries of one reason (NULL = all) into *n. */
int store_suppress_count(struct store *s, const char *reason, int64_t *n);

/* Events: a short log of what the engine reported, newest kept. */
int store_event_add(struct store *s, int64_t at, const char *kind, const char *route,
                    const char *text);

struct store_event {
	int64_t id, at;
	const char *kind, *route, *text; /* valid during the callback only */
};

/* Calls fn for the last n events, newest first.  Returns the count.  fn
 * must not use the store. */
int store_events_recent(struct store *s, int n, void (*fn)(void *arg, const struct store_event *e),
                        void *arg);

/* Event Webhook.  store_webhook_seen records an sg_event_id: 1 when it is
 * new, 0 when it was seen before (a batch posted again).  store_webhook_prune
 * forgets ids recorded before `before` and returns how many.
 * store_unit_by_provider finds a sent unit by the provider's message id
 * (units.provider_id), preferring one whose recipient domain is `domain`:
 * 1 with *route (-1 if none was recorded) and *isp, 0 when there is none. */
int store_webhook_seen(struct store *s, const char *event_id, int64_t now);
int store_webhook_prune(struct store *s, int64_t before);
int store_unit_by_provider(struct store *s, const char *provider_id, const char *domain, int *route,
                           int *isp);

#endif
