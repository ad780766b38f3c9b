/*
 * daemon.c -- the loop turn's clock and group commit.
 */
#include "daemon.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

/* A wall clock step larger than this against the monotonic clock is logged
 * and counted: NTP slews far less, a suspend or a hand-set clock more. */
#define CLOCK_JUMP (5 * 60 * WU_USEC)

/* Compares the wall clock's advance with the monotonic clock's since the
 * last reading.  Nothing is corrected: the day follows the wall clock, and
 * the engine grants a date's cap once (it never goes back to an earlier
 * date, and its pacing earns nothing for time that ran backwards). */
static void clock_check(struct wu_daemon *d, wu_time_t wall, uint64_t mono)
{
	wu_time_t expected, jump;

	if (d->clock_now == 0)
		return;
	expected = d->clock_now + (wu_time_t)((mono - d->clock_mono) / 1000);
	jump = wall - expected;
	if (jump < CLOCK_JUMP && jump > -CLOCK_JUMP)
		return;
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

/* The end of a loop turn: save the engine, commit once, then release what
 * waited for the commit. */
void daemon_commit(struct wu_daemon *d)
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
	if (!d->txn_failed && store_commit(d->store) == 0)
		ok = 1;
	else {
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
	for (int i = 0; i < nafter; i++)
		after[i].fn(after[i].arg, ok);
	free(after);
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
