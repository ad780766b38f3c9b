/*
 * test_engine_load.c -- the saved engine state as untrusted input: every
 * field out of its range is refused with a message naming it, a refused
 * state leaves the engine as it was, a state of any size is saved whole,
 * and a state that had to be thrown away closes today's cap.
 *
 * Each crafted line below was accepted before the loader checked ranges,
 * and most then made the engine's arithmetic overflow (UBSan: signed
 * integer overflow in bucket.c, calendar.c or engine.c) or let the new
 * route send past the cap.
 */
#include "tests/unit/cal_zone.h"
#include "test_util.h"

#include <stdio.h>
#include <stdlib.h>

#include "engine.h"
#include "pacing.h"

#define T0 T_TOKYO_20261201

static const char *SEED = "day,cap\n1,63\n2,83\n3,73\n";

static struct wu_core_conf conf;
static struct wu_engine *eng;
static int google;

static int setup(void **state)
{
	char err[WU_ERR_MAX] = "";
	struct wu_schedule s;

	(void)state;
	memset(&conf, 0, sizeof conf);
	if (wu_core_conf_init(&conf) != 0)
		return -1;
	memset(&s, 0, sizeof s);
	if (wu_schedule_parse(&s, SEED, strlen(SEED), "seed.csv", err, sizeof err) != 0)
		return -1;
	s.after = WU_AFTER_HOLD;
	wu_schedule_free(&conf.schedule);
	conf.schedule = s;
	if (cal_init(&conf.calendar, "Asia/Tokyo", 2026, 12, 1, 0, 1440, err, sizeof err))
		return -1;
	conf.burst = WU_BURST_DAY;
	google = wu_isp_find(&conf.isps, "google");
	if (google <= 0)
		return -1;
	conf.throttle[WU_ROUTE_NEW][google].rate = 10;
	eng = NULL;
	return wu_engine_create(&eng, &conf, T0, err, sizeof err) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	wu_engine_free(eng);
	eng = NULL;
	wu_core_conf_free(&conf);
	return 0;
}

/* New-route decisions at now until the first refusal (at most most). */
static int take_new(wu_time_t now, int isp, int most)
{
	int n = 0;

	while (n < most && wu_engine_route(eng, now, isp).kind == WU_NEW)
		n++;
	return n;
}

/* A real saved state with some of everything in it, one line per fact. */
static char *real_state(void)
{
	wu_time_t now = T0 + WU_HOUR;
	char *text;

	assert_int_equal(take_new(now, google, 10), 10);
	wu_engine_outcome(eng, now, WU_ROUTE_NEW, google, WU_TEMPFAIL, wu_engine_today(eng)->date);
	wu_engine_outcome(eng, now, WU_ROUTE_NEW, google, WU_DELIVERED, -1);
	wu_engine_pause(eng, now, WU_ROUTE_OLD, "operator");
	text = wu_engine_save_alloc(eng);
	assert_non_null(text);
	return text;
}

/* text with the line that starts with key replaced by line. */
static char *replace_line(const char *text, const char *key, const char *line)
{
	size_t klen = strlen(key), n = strlen(text) + strlen(line) + 2;
	char *out = malloc(n);
	const char *p = text;

	assert_non_null(out);
	out[0] = '\0';
	int done = 0;
	while (*p) {
		size_t len = strcspn(p, "\n");
		if (!done && strncmp(p, key, klen) == 0 && (p[klen] == ' ' || p[klen] == '\n')) {
			strcat(out, line);
			done = 1;
		} else {
			strncat(out, p, len);
		}
		strcat(out, "\n");
		p += len + (p[len] == '\n');
	}
	if (!done) {
		print_error("no line '%s' in the saved state\n", key);
		fail();
	}
	return out;
}

/* Drives the engine through every kind of call, as a day would. */
static void exercise(wu_time_t now)
{
	for (int i = 0; i < 200; i++) {
		int isp = i % 3;
		struct wu_decision d = wu_engine_route(eng, now, isp);
		wu_engine_outcome(eng, now, d.kind == WU_OLD ? WU_ROUTE_OLD : WU_ROUTE_NEW, isp,
		                  (enum wu_result)(i % WU_RESULT_COUNT), d.date);
		now = wu_engine_next_wakeup(eng, now);
	}
}

struct crafted {
	const char *key;   /* the line replaced */
	const char *line;  /* by this */
	const char *field; /* the message must name it */
};

static const struct crafted crafted[] = {
    /* calendar.c: date + 1 and the civil-date arithmetic overflow */
    {"date", "date 2147483647", "date"},
    {"date", "date -2147483648", "date"},
    /* the saved day is years ahead: no new-route send until then */
    {"date", "date 2932896", "after today"},
    /* engine.c: day index - held days overflows */
    {"held", "held -2147483648 0", "held: days held"},
    {"held", "held 0 7", "held: today held"},
    {"step", "step -1", "step"},
    {"halted", "halted 2", "halted"},
    /* a negative count lets the new route send past the cap */
    {"used", "used -9223372036854775808", "used"},
    {"used", "used 9223372036854775807", "used"},
    {"used", "used 12abc", "used"},
    {"used", "used", "used: expected 1 value"},
    /* engine.c: gate counters overflow on the next delivery */
    {"gate", "gate 0 0 9223372036854775807 0 0", "gate: delivered"},
    {"gate", "gate 0 0 0 -1 0", "gate: bounces"},
    {"gate", "gate 9 0 0 0 0", "gate: today's worst state"},
    {"gate", "gate 0 2 0 0 0", "worse than today's worst"},
    /* bucket.c: now - last overflows in the refill */
    {"pacing", "pacing 0 -9223372036854775808", "pacing: last"},
    {"pacing", "pacing 1e400 0", "pacing: tokens"},
    {"pacing", "pacing nan 0", "pacing: tokens"},
    {"pacing", "pacing 0 0 0.5", "pacing: burst"},
    /* engine.c: the old route's counter overflows on the next decision */
    {"sent", "sent 1 0 9223372036854775807", "sent old other"},
    {"sent", "sent 0 99 1", "isp 99"},
    {"sent", "sent 2 0 1", "route"},
    {"result", "result 0 1 0 9223372036854775807", "result new google accepted"},
    {"result", "result 0 1 10 1", "result: kind"},
    /* throttle.c: fails++ overflows; a factor 0 lifts the ISP's rate */
    {"throttle", "throttle 0 1 0.5 2147483647 0 0 1 0", "fails"},
    {"throttle", "throttle 0 1 0 0 0 0 1 0", "throttle new google: factor"},
    {"throttle", "throttle 0 1 1.5 0 0 0 1 0", "factor"},
    {"throttle", "throttle 0 1 0.5 0 0 0 1 -9223372036854775808", "throttle new google: last"},
    {"throttle", "throttle 0 1 0.5 0 -5 0 1 0", "suspended until"},
    {"throttle", "throttle 0 1 0.5 0 0 0 inf 0", "tokens"},
    {"paused", "paused 1 oper\tator", "control character"},
    {"paused", "paused 7 operator", "paused: route"},
    {"end", "ends", "unknown line"},
};

static void test_crafted_states_refused(void **state)
{
	(void)state;
	char *text = real_state();
	char err[WU_ERR_MAX];

	/* The state as saved loads. */
	assert_int_equal(wu_engine_load(eng, text, T0 + WU_HOUR, err, sizeof err), 0);
	assert_i64_eq(wu_engine_today(eng)->used, 9);
	for (size_t c = 0; c < sizeof crafted / sizeof crafted[0]; c++) {
		char *bad = replace_line(text, crafted[c].key, crafted[c].line);
		err[0] = '\0';
		int rc = wu_engine_load(eng, bad, T0 + WU_HOUR, err, sizeof err);
		if (rc != -1 || !strstr(err, crafted[c].field) ||
		    !strstr(err, "saved engine state")) {
			print_error(
			    "'%s': load returned %d, message '%s', expected one naming '%s'\n",
			    crafted[c].line, rc, err, crafted[c].field);
			exercise(T0 + WU_HOUR);
			fail();
		}
		/* The engine is as it was: 9 used, pause kept. */
		assert_i64_eq(wu_engine_today(eng)->used, 9);
		assert_int_equal(wu_engine_paused(eng, WU_ROUTE_OLD), 1);
		free(bad);
	}
	free(text);
	/* And it still sends exactly to its cap. */
	assert_int_equal(take_new(T0 + 2 * WU_HOUR, WU_ISP_OTHER, 100), 63 - 9);
}

static void test_whole_text_refused(void **state)
{
	(void)state;
	char err[WU_ERR_MAX];
	char *text = real_state(), *cut;

	assert_int_equal(wu_engine_load(eng, "", T0, err, sizeof err), -1);
	assert_non_null(strstr(err, "line 1"));
	assert_int_equal(wu_engine_load(eng, "warmup-engine 2\nend\n", T0, err, sizeof err), -1);
	assert_non_null(strstr(err, "warmup-engine 1"));
	assert_int_equal(wu_engine_load(eng, "warmup-engine 1\nend\n", T0, err, sizeof err), -1);
	assert_non_null(strstr(err, "no 'date' line"));
	/* Cut short before the end line. */
	cut = strdup(text);
	assert_non_null(cut);
	*strstr(cut, "end\n") = '\0';
	assert_int_equal(wu_engine_load(eng, cut, T0, err, sizeof err), -1);
	assert_non_null(strstr(err, "no 'end' line"));
	free(cut);
	free(text);
}

static void test_edges_accepted(void **state)
{
	(void)state;
	char err[WU_ERR_MAX] = "";
	char *text = real_state(), *a, *b;

	/* One token taken from an empty bucket, a floor factor, a counter at
	 * its largest: all states the engine can reach. */
	a = replace_line(text, "pacing", "pacing -1 1796054400000000 63");
	b = replace_line(a, "result", "result 0 1 0 9007199254740992");
	if (wu_engine_load(eng, b, T0 + WU_HOUR, err, sizeof err) != 0) {
		print_error("load: %s\n", err);
		fail();
	}
	assert_i64_eq(wu_engine_today(eng)->result[WU_ROUTE_NEW][google][WU_ACCEPTED],
	              INT64_C(9007199254740992));
	exercise(T0 + WU_HOUR);
	free(a);
	free(b);
	free(text);
}

static void test_save_any_size(void **state)
{
	(void)state;
	char err[WU_ERR_MAX] = "", name[16];
	static char fixed[16384];
	wu_time_t now = T0 + WU_HOUR;
	struct wu_engine *big = NULL;
	char *text;

	/* Every ISP the table holds, every result on both routes, counts of
	 * 15 digits: more than the 16 KB the daemon once saved into. */
	for (int i = conf.isps.n; i < WU_ISP_MAX; i++) {
		snprintf(name, sizeof name, "isp%d", i);
		assert_true(wu_isp_define(&conf.isps, name, err, sizeof err) >= 0);
	}
	assert_int_equal(conf.isps.n, WU_ISP_MAX);
	assert_int_equal(wu_engine_create(&big, &conf, now, err, sizeof err), 0);
	for (int r = 0; r < WU_ROUTE_COUNT; r++)
		for (int i = 0; i < WU_ISP_MAX; i++)
			for (int k = 0; k < WU_RESULT_COUNT; k++)
				wu_engine_report(big, now,
				                 &(struct wu_report){.route = (enum wu_route)r,
				                                     .isp = i,
				                                     .result = (enum wu_result)k,
				                                     .scope = WU_SCOPE_API,
				                                     .n = INT64_C(100000000000000),
				                                     .sent_date = -1});
	assert_int_equal(wu_engine_save(big, fixed, sizeof fixed), -1);
	text = wu_engine_save_alloc(big);
	assert_non_null(text);
	assert_true(strlen(text) > sizeof fixed);
	assert_non_null(strstr(text, "\nend\n"));

	/* It loads back whole. */
	wu_engine_free(eng);
	assert_int_equal(wu_engine_create(&eng, &conf, now, err, sizeof err), 0);
	if (wu_engine_load(eng, text, now, err, sizeof err) != 0) {
		print_error("load: %s\n", err);
		fail();
	}
	assert_i64_eq(wu_engine_today(eng)->result[WU_ROUTE_OLD][WU_ISP_MAX - 1][WU_COMPLAINT],
	              INT64_C(100000000000000));
	free(text);
	wu_engine_free(big);
}

static void test_close_today(void **state)
{
	(void)state;

	assert_int_equal(take_new(T0 + WU_HOUR, google, 5), 5);
	assert_int_equal(wu_engine_close_today(eng, T0 + WU_HOUR), 1);
	assert_int_equal(wu_engine_close_today(eng, T0 + WU_HOUR), 0);
	assert_i64_eq(wu_engine_today(eng)->used, 63);
	assert_int_equal(take_new(T0 + 2 * WU_HOUR, WU_ISP_OTHER, 100), 0);
	/* The next day has its own cap. */
	assert_int_equal(take_new(T0 + WU_DAY, WU_ISP_OTHER, 100), 83);
}

/* n new-route outcomes on google at now, the first `bounces` of them bounces. */
static void outcomes(wu_time_t now, int n, int bounces)
{
	for (int i = 0; i < n; i++)
		wu_engine_outcome(eng, now, WU_ROUTE_NEW, google,
		                  i < bounces ? WU_BOUNCE : WU_DELIVERED, -1);
}

/* text with line inserted before its end line. */
static char *insert_line(const char *text, const char *line)
{
	const char *end = strstr(text, "\nend\n");
	char *out = malloc(strlen(text) + strlen(line) + 2);

	assert_non_null(end);
	assert_non_null(out);
	sprintf(out, "%.*s\n%s%s", (int)(end - text), text, line, end);
	return out;
}

static void test_gate_past_saved(void **state)
{
	(void)state;
	char err[WU_ERR_MAX] = "";
	char *text, *bad, *more;
	struct wu_gate_verdict v;
	wu_time_t day2 = T0 + WU_DAY + WU_HOUR;

	/* Day 1: 3 bounces of 63, no verdict on so few; day 2 pools them. */
	outcomes(T0 + WU_HOUR, 63, 3);
	wu_engine_tick(eng, T0 + WU_DAY);
	text = wu_engine_save_alloc(eng);
	assert_non_null(text);
	assert_non_null(strstr(text, "\ngate_past 60 3 0\n"));

	/* A restart keeps day 1 in the pool: 4 bounces in day 2's first 57
	 * make 7 of 120, over 5%. */
	wu_engine_free(eng);
	assert_int_equal(wu_engine_create(&eng, &conf, day2, err, sizeof err), 0);
	if (wu_engine_load(eng, text, day2, err, sizeof err) != 0) {
		print_error("load: %s\n", err);
		fail();
	}
	outcomes(day2, 56, 4);
	wu_engine_gate(eng, &v);
	assert_int_equal(v.state, WU_GATE_OK);
	assert_int_equal(v.bounce_n, 119);
	outcomes(day2, 1, 0);
	wu_engine_gate(eng, &v);
	assert_int_equal(v.state, WU_GATE_HALT);
	assert_int_equal(v.bounce_days, 2);
	assert_int_equal(wu_engine_paused(eng, WU_ROUTE_NEW), 1);

	/* Out of range or too many: refused, naming the field. */
	static const struct {
		const char *line, *field;
	} crafted[] = {
	    {"gate_past -1 0 0", "gate_past: delivered"},
	    {"gate_past 0 9223372036854775807 0", "gate_past: bounces"},
	    {"gate_past 0 0 x", "gate_past: complaints"},
	    {"gate_past 1 2", "gate_past: expected 3 values"},
	};
	for (size_t c = 0; c < sizeof crafted / sizeof crafted[0]; c++) {
		bad = insert_line(text, crafted[c].line);
		err[0] = '\0';
		assert_int_equal(wu_engine_load(eng, bad, day2, err, sizeof err), -1);
		if (!strstr(err, crafted[c].field)) {
			print_error("'%s': '%s'\n", crafted[c].line, err);
			fail();
		}
		free(bad);
	}
	bad = strdup(text);
	for (int i = 1; i < WU_GATE_DAYS; i++) {
		more = insert_line(bad, "gate_past 1 0 0");
		free(bad);
		bad = more;
	}
	assert_int_equal(wu_engine_load(eng, bad, day2, err, sizeof err), 0);
	more = insert_line(bad, "gate_past 1 0 0");
	assert_int_equal(wu_engine_load(eng, more, day2, err, sizeof err), -1);
	assert_non_null(strstr(err, "more than 7 days"));
	free(more);
	free(bad);
	free(text);
}

#define T_(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T_(test_crafted_states_refused), T_(test_whole_text_refused), T_(test_edges_accepted),
	    T_(test_save_any_size),          T_(test_close_today),        T_(test_gate_past_saved),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
