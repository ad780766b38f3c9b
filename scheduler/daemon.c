/*
 * daemon.c -- the loop turn's clock and group commit.
 */
#include "daemon.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <unistd.h>

#include "log.h"

/* A wall clock step larger than this against the monotonic clock is logged
 * and counted: NTP slews far less, a suspend or a hand-set clock more. */
#define CLOCK_JUMP (5 * 60 * WU_USEC)

/* Compares the wall clock's advance with the monotonic clock's since the
 * last reading.  Nothing is corrected: the day follows the wall clock, and
 * the engine grants a date's cap once (it never goes back to an earlier
 * date, and its pacing earns nothing for time that ran backwards).  The
 * engine moves to the wall clock's day at once: the loop's timers run on
 * the monotonic clock, so a wake-up planned for midnight before a jump
 * would come late, and the day's change (a WU_EV_DAY to the listeners,
 * which replan) would wait for it. */
static void clock_check(struct wu_daemon *d, wu_time_t wall, uint64_t mono)
{
	wu_time_t expected, jump;

	if (d->clock_now == 0)
		return;
	expected = d->clock_now + (wu_time_t)((mono - d->clock_mono) / 1000);
	jump = wall - expected;
	if (jump < CLOCK_JUMP && jump > -CLOCK_JUMP)
		return;
	if (d->engine)
		wu_engine_tick(d->engine, wall);
	d->extra.clock_jumps++;
	d->extra.clock_last_jump = jump;
	wu_warn("clock: the wall clock jumped %s by %" PRId64 " s; the day follows the wall "
	        "clock, and a date's cap is granted only once",
	        jump > 0 ? "forward" : "back", (jump > 0 ? jump : -jump) / WU_USEC);
}

wu_time_t daemon_now(struct wu_daemon *d)
{
	uint64_t turn = uv_now(d->loop);

	if (turn != d->clock_turn || d->clock_now == 0) {
		struct timespec ts;
		uint64_t mono = uv_hrtime();
		wu_time_t wall;

		clock_gettime(CLOCK_REALTIME, &ts);
		wall = (wu_time_t)ts.tv_sec * WU_USEC + ts.tv_nsec / 1000;
		clock_check(d, wall, mono);
		d->clock_turn = turn;
		d->clock_now = wall;
		d->clock_mono = mono;
		d->extra.mono_now = (wu_time_t)(mono / 1000);
	}
	return d->clock_now;
}

static void on_idle(uv_idle_t *h)
{
	(void)h;
}

int daemon_txn(struct wu_daemon *d)
{
	if (d->in_txn)
		return 0;
	if (store_begin(d->store) < 0) {
		wu_error("store: cannot begin a transaction: %s", store_errmsg(d->store));
		return -1;
	}
	d->in_txn = 1;
	d->txn_failed = 0;
	/* The commit runs in the check phase, after the poll for I/O.  Work done
	 * in the timer phase must not wait for the poll to time out: an active
	 * idle handle makes that poll return at once. */
	uv_idle_start(&d->commit_soon, on_idle);
	return 0;
}

void daemon_txn_fail(struct wu_daemon *d, const char *what)
{
	if (d->in_txn && !d->txn_failed)
		wu_warn("%s: this turn's changes will be rolled back", what);
	d->txn_failed = 1;
}

int daemon_after_commit(struct wu_daemon *d, daemon_after_cb fn, void *arg)
{
	if (d->nafter == d->cap_after) {
		int nc = d->cap_after ? d->cap_after * 2 : 64;
		struct daemon_after *a = realloc(d->after, (size_t)nc * sizeof(*a));
		if (!a)
			return -1;
		d->after = a;
		d->cap_after = nc;
	}
	d->after[d->nafter].fn = fn;
	d->after[d->nafter].arg = arg;
	d->nafter++;
	return 0;
}

/* Appends n callbacks to the list of turns waiting for a sync. */
static int waiting_add(struct wu_daemon *d, const struct daemon_after *a, int n)
{
	if (n == 0)
		return 0;
	if (d->nwaiting + n > d->cap_waiting) {
		int nc = d->cap_waiting ? d->cap_waiting : 64;
		while (nc < d->nwaiting + n)
			nc *= 2;
		struct daemon_after *w = realloc(d->waiting, (size_t)nc * sizeof(*w));
		if (!w)
			return -1;
		d->waiting = w;
		d->cap_waiting = nc;
	}
	memcpy(d->waiting + d->nwaiting, a, (size_t)n * sizeof(*a));
	d->nwaiting += n;
	return 0;
}

static void run_callbacks(struct daemon_after *a, int n, int ok)
{
	for (int i = 0; i < n; i++)
		a[i].fn(a[i].arg, ok);
	free(a);
}

/* A sync that failed leaves committed turns of unknown durability: what
 * they answered must not be answered.  Nothing was acknowledged yet, so
 * stopping here keeps every promise; the next start recovers from the
 * disk (the way a database server treats a failed fsync). */
static void sync_failed(int err)
{
	wu_error("store: fdatasync of the write-ahead log failed: %s; stopping without "
	         "answering what it covered (nothing of it was acknowledged)",
	         strerror(err));
	_exit(75); /* EX_TEMPFAIL: the service manager starts us again */
}

static void sync_work(uv_work_t *w)
{
	struct wu_daemon *d = w->data;

	d->sync_errno = store_sync(d->store) < 0 ? errno : 0;
}

static void sync_start(struct wu_daemon *d);
static void commit_turn(struct wu_daemon *d);
static void commit_and_sync(struct wu_daemon *d);

static void sync_done(uv_work_t *w, int status)
{
	struct wu_daemon *d = w->data;
	struct daemon_after *a = d->covered;
	int n = d->ncovered;

	(void)status; /* a queued work item cannot be cancelled here */
	d->sync_running = 0;
	if (d->sync_errno != 0)
		sync_failed(d->sync_errno);
	d->covered = NULL;
	d->ncovered = 0;
	/* What the turns did while the disk was busy is one transaction:
	 * commit it and start its sync (or hold it to commit_every) before
	 * releasing what this one covered, so that the two overlap. */
	commit_and_sync(d);
	run_callbacks(a, n, 1);
}

static void on_commit_later(uv_timer_t *t)
{
	struct wu_daemon *d = t->data;

	d->commit_held = 0;
	if (!d->sync_running)
		commit_and_sync(d);
}

/* Commits the open transaction and starts its sync, unless the last
 * commit is more recent than commit_every: then the turns until then join
 * it (under load, more messages share one commit and one fdatasync; a
 * lone message is committed at once). */
static void commit_and_sync(struct wu_daemon *d)
{
	uint64_t now = uv_now(d->loop);

	if (d->commit_held)
		return;
	if (d->in_txn && d->commit_every && now < d->last_commit + d->commit_every) {
		d->commit_held = 1;
		uv_idle_stop(&d->commit_soon);
		uv_timer_start(&d->commit_later, on_commit_later,
		               d->last_commit + d->commit_every - now, 0);
		return;
	}
	if (d->in_txn)
		d->last_commit = now;
	commit_turn(d);
	sync_start(d);
}

/* Starts a sync of everything committed so far, unless one runs. */
static void sync_start(struct wu_daemon *d)
{
	if (d->sync_running || d->nwaiting == 0)
		return;
	d->covered = d->waiting;
	d->ncovered = d->nwaiting;
	d->waiting = NULL;
	d->nwaiting = d->cap_waiting = 0;
	d->sync_running = 1;
	d->sync_work.data = d;
	if (uv_queue_work(d->loop, &d->sync_work, sync_work, sync_done) != 0) {
		/* No thread pool: sync here. */
		sync_work(&d->sync_work);
		sync_done(&d->sync_work, 0);
	}
}

int daemon_sync_init(struct wu_daemon *d)
{
	return store_defer_sync(d->store);
}

static void ckpt_work(uv_work_t *w)
{
	struct wu_daemon *d = w->data;

	d->ckpt_failed = store_checkpoint(d->store) < 0;
}

static void ckpt_done(uv_work_t *w, int status)
{
	struct wu_daemon *d = w->data;

	(void)status;
	d->ckpt_running = 0;
	/* What was not copied stays in the WAL, durable: the next one copies it. */
	if (d->ckpt_failed)
		wu_warn("store: %s", store_checkpoint_err(d->store));
}

/* After a commit: the WAL copied back into the database when it is long,
 * on a worker thread, so that neither the copy nor its fsyncs hold up the
 * loop (or the commits, which go on beside it); here, when the commits
 * outran those (see store_checkpoint_due).  Only a commit on the loop
 * starts one, and the loop does not end while it runs: the store, closed
 * after the loop, outlives it. */
static void checkpoint_maybe(struct wu_daemon *d)
{
	int due;

	if (d->ckpt_running || (due = store_checkpoint_due(d->store)) == STORE_CKPT_NONE)
		return;
	if (due == STORE_CKPT_HERE) {
		if (store_checkpoint_here(d->store) < 0)
			wu_warn("store: %s", store_errmsg(d->store));
		return;
	}
	d->ckpt_running = 1;
	d->ckpt_work.data = d;
	if (uv_queue_work(d->loop, &d->ckpt_work, ckpt_work, ckpt_done) != 0) {
		ckpt_work(&d->ckpt_work);
		ckpt_done(&d->ckpt_work, 0);
	}
}

/* Saves the engine and commits; the turn's callbacks join the waiting
 * list (or run at once with ok = 0 after a rollback). */
static void commit_turn(struct wu_daemon *d)
{
	char *state;
	int ok = 0;

	if (!d->in_txn)
		return;
	/* Sized to the state, which grows with the ISPs and results of the day. */
	state = wu_engine_save_alloc(d->engine);
	if (!state || store_engine_save(d->store, state) < 0)
		daemon_txn_fail(d, "store: saving the engine state");
	free(state);
	if (!d->txn_failed && store_commit(d->store) == 0) {
		ok = 1;
		checkpoint_maybe(d);
	} else {
		wu_error("store: commit failed: %s", store_errmsg(d->store));
		store_rollback(d->store);
	}
	d->in_txn = 0;
	d->txn_failed = 0;
	uv_idle_stop(&d->commit_soon);
	/* Callbacks may add work for the next turn; run the ones of this one. */
	int nafter = d->nafter;
	struct daemon_after *after = d->after;
	d->after = NULL;
	d->nafter = d->cap_after = 0;
	if (!ok) {
		run_callbacks(after, nafter, 0);
		return;
	}
	if (waiting_add(d, after, nafter) < 0) {
		/* Out of memory for the list: make this turn durable here. */
		if (store_sync_now(d->store) < 0)
			sync_failed(errno);
		run_callbacks(after, nafter, 1);
		return;
	}
	free(after);
}

/* The end of a loop turn: commit once, and release what waited for the
 * commit once a sync has made it durable.  While a sync runs, the
 * transaction stays open and the next turns join it: it is committed when
 * the sync ends (sync_done), so that a commit and its sync cover
 * everything that arrived while the disk was busy. */
void daemon_commit(struct wu_daemon *d)
{
	if (d->sync_running) {
		/* Nothing to do until the sync ends: let the poll block. */
		uv_idle_stop(&d->commit_soon);
		return;
	}
	commit_and_sync(d);
}

void daemon_flush(struct wu_daemon *d)
{
	if (d->commit_held) {
		uv_timer_stop(&d->commit_later);
		d->commit_held = 0;
	}
	for (;;) {
		struct daemon_after *a, *w;
		int n, nw;

		commit_turn(d);
		a = d->covered;
		n = d->ncovered;
		w = d->waiting;
		nw = d->nwaiting;
		if (n == 0 && nw == 0)
			return;
		if (store_sync_now(d->store) < 0)
			sync_failed(errno);
		/* Everything committed is durable now, what a running sync covers
		 * too: its completion finds nothing left to release. */
		d->covered = NULL;
		d->ncovered = 0;
		d->waiting = NULL;
		d->nwaiting = d->cap_waiting = 0;
		run_callbacks(a, n, 1);
		run_callbacks(w, nw, 1);
	}
}

int daemon_listen(struct wu_daemon *d, daemon_event_cb fn, void *arg)
{
	if (d->nlisteners == DAEMON_LISTENERS)
		return -1;
	d->listeners[d->nlisteners].fn = fn;
	d->listeners[d->nlisteners].arg = arg;
	d->nlisteners++;
	return 0;
}

void daemon_unlisten(struct wu_daemon *d, daemon_event_cb fn, void *arg)
{
	for (int i = 0; i < d->nlisteners; i++)
		if (d->listeners[i].fn == fn && d->listeners[i].arg == arg) {
			memmove(&d->listeners[i], &d->listeners[i + 1],
			        (size_t)(d->nlisteners - i - 1) * sizeof(d->listeners[0]));
			d->nlisteners--;
			return;
		}
}

void daemon_drain_events(struct wu_daemon *d)
{
	struct wu_event ev;
	char date[16];

	while (wu_engine_poll_event(d->engine, &ev)) {
		wu_date_format(ev.date, date, sizeof(date));
		switch (ev.kind) {
		case WU_EV_GATE_WARN:
		case WU_EV_STEP_BACK:
			wu_warn("%s: %s", date, ev.text);
			break;
		case WU_EV_GATE_HALT:
		case WU_EV_PAUSE:
			wu_error("%s: %s", date, ev.text);
			break;
		default:
			wu_info("%s: %s", date, ev.text);
			break;
		}
		for (int i = 0; i < d->nlisteners; i++)
			d->listeners[i].fn(d->listeners[i].arg, &ev);
	}
}
