/*
 * fuzz_engine_state.c -- the saved engine state loader.
 *
 * Any text: wu_engine_load() refuses it with a message or loads it.  A
 * state that loads is then driven for a stretch of virtual time (routes,
 * every kind of outcome, cuts, the wakeup); UBSan turns any overflow into
 * a crash, and the new route must never pass the cap of a day it started
 * within the cap.
 */
#include "tests/unit/cal_zone.h"
#include "fuzz.h"

#include "engine.h"
#include "pacing.h"

/* 2026-12-02T00:00 Asia/Tokyo: day 2 of the test schedule. */
#define NOW (INT64_C(1796137200) * WU_USEC)

static struct wu_core_conf conf;

static void conf_once(void)
{
	static const char sched[] = "day,cap,hourly_cap\n1,63,10\n2,83,10\n3,73,5\n";
	char err[WU_ERR_MAX];

	if (conf.isps.n)
		return;
	if (wu_core_conf_init(&conf) < 0 ||
	    wu_schedule_parse(&conf.schedule, sched, sizeof(sched) - 1, "fuzz.csv", err,
	                      sizeof(err)) < 0 ||
	    cal_init(&conf.calendar, "Asia/Tokyo", 2026, 12, 1, 8 * 60, 20 * 60, err,
	                     sizeof(err)) < 0) {
		fprintf(stderr, "fuzz: %s\n", err);
		abort();
	}
	conf.schedule.after = WU_AFTER_DOUBLE;
	conf.throttle[WU_ROUTE_NEW][1].rate = 2;
	conf.throttle[WU_ROUTE_NEW][2].share = 0.5;
	conf.gate.min_sample = 10;
	conf.gap.days = 2; /* a gap may step back across the loaded dates */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct wu_engine *e = NULL;
	char err[WU_ERR_MAX] = "", *text = fuzz_text(data, size);
	wu_time_t now = NOW;

	conf_once();
	if (!text || wu_engine_create(&e, &conf, now, err, sizeof(err)) < 0)
		abort();
	if (wu_engine_load(e, text, now, err, sizeof(err)) < 0) {
		fuzz_check(strstr(err, "saved engine state"), "unhelpful message '%s'", err);
		/* A refused state leaves the engine usable. */
		fuzz_check(wu_engine_today(e)->used == 0, "a refused load changed the engine");
		goto out;
	}
	for (int i = 0; i < 400; i++) {
		const struct wu_day_stats *t = wu_engine_today(e);
		int64_t before = t->used;
		int date = t->date, isp = (int)(data[i % size] % 4);
		/* engaged or not: the reserve may keep the other units off */
		struct wu_decision d = wu_engine_route_for(e, now, isp, data[i % size] & 0x10);

		t = wu_engine_today(e);
		if (d.kind == WU_NEW && t->date == date)
			fuzz_check(t->used <= t->cap || t->used <= before,
			           "used %lld past cap %lld", (long long)t->used,
			           (long long)t->cap);
		{
			struct wu_report r = {
			    .route = d.kind == WU_OLD ? WU_ROUTE_OLD : WU_ROUTE_NEW,
			    .isp = isp,
			    .result = (enum wu_result)(data[(i + 1) % size] % WU_RESULT_COUNT),
			    .scope = (i & 1) ? WU_SCOPE_ISP : WU_SCOPE_API,
			    .n = 1 + data[(i + 2) % size] % 3,
			    .sent_date = d.date,
			    .attempts = 1 + data[(i + 3) % size] % 8,
			    .jitter = (double)(data[(i + 4) % size] % 100) / 100.0,
			    .auth = data[(i + 5) % size] == 0xff};
			struct wu_verdict v = wu_engine_report(e, now, &r);

			fuzz_check(v.action != WU_ACT_RETRY || v.retry_at >= now,
			           "a retry before now");
		}
		if (i % 50 == 7)
			wu_engine_cut(e, now, WU_ROUTE_NEW, isp, 0.5, WU_HOUR);
		now = wu_engine_next_wakeup(e, now);
		fuzz_check(now < WU_TIME_NEVER, "no wakeup");
	}
	/* What loads saves and loads again. */
	char *again = wu_engine_save_alloc(e);
	struct wu_engine *e2 = NULL;
	fuzz_check(again, "save failed");
	fuzz_check(wu_engine_create(&e2, &conf, now, err, sizeof(err)) == 0, "create");
	fuzz_check(wu_engine_load(e2, again, now, err, sizeof(err)) == 0,
	           "its own save refused: %s\n%s", err, again);
	wu_engine_free(e2);
	free(again);
out:
	wu_engine_free(e);
	free(text);
	return 0;
}
