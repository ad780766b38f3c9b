/*
 * test_status.c -- the status JSON and the Prometheus text of a real engine
 * and a real store: the numbers, the format, and that no secret leaks.
 *
 * Each test builds an engine in virtual time (Asia/Tokyo, day 1 on
 * 2026-12-01, so 2026-12-03 is day 3), routes messages through it, opens a
 * store in a fresh temporary directory, and reads both views.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cJSON.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/unit/cal_zone.h"
#include "scheduler/config.h"
#include "scheduler/core/pacing.h"
#include "scheduler/status.h"
#include "scheduler/store.h"

/* 2026-12-01T00:00 in Asia/Tokyo. */
#define T_20261201 (INT64_C(1796050800) * WU_USEC)
/* 2026-12-03T10:00 in Asia/Tokyo: day 3 of the schedule. */
#define T_NOW (T_20261201 + 2 * WU_DAY + 10 * WU_HOUR)

#define SCHEDULE "day,cap\n1,50\n2,60\n3,73\n"

struct fixture {
	char dir[64];
	char path[128];
	struct store *s;
	struct wu_conf conf;
	struct wu_engine *e;
	struct status_extra x;
	char *json, *metrics;
	cJSON *root;
};

/* Fills f->conf with the schedule, the calendar and routes that carry
 * secrets, with the ISP names of isps_hook applied before the engine
 * copies them. */
static void conf_make(struct fixture *f, void (*isps_hook)(struct wu_isp_table *))
{
	struct wu_core_conf *core = &f->conf.core;
	char err[WU_ERR_MAX];

	assert_int_equal(wu_conf_defaults(&f->conf), 0);
	if (wu_schedule_parse(&core->schedule, SCHEDULE, strlen(SCHEDULE), "test.csv", err,
	                      sizeof err) < 0)
		fail_msg("schedule: %s", err);
	if (cal_init(&core->calendar, "Asia/Tokyo", 2026, 12, 1, 0, 1440, err, sizeof err) <
	    0)
		fail_msg("calendar: %s", err);
	core->burst = WU_BURST_DAY; /* the whole cap at once: no pacing in the way */
	core->throttle[WU_ROUTE_NEW][wu_isp_find(&core->isps, "google")].share = 0.4;
	if (isps_hook)
		isps_hook(&core->isps);

	f->conf.token = strdup("tok-SECRET-aaaa");
	f->conf.route[WU_ROUTE_NEW].type = SND_TYPE_SENDGRID;
	snprintf(f->conf.route[WU_ROUTE_NEW].url, sizeof f->conf.route[WU_ROUTE_NEW].url,
	         "https://api.sendgrid.com");
	f->conf.route[WU_ROUTE_NEW].secret = strdup("SG.SECRET-bbbb");
	f->conf.route[WU_ROUTE_OLD].type = SND_TYPE_SMTP;
	snprintf(f->conf.route[WU_ROUTE_OLD].url, sizeof f->conf.route[WU_ROUTE_OLD].url,
	         "smtp://relay:pa55-SECRET-cccc@127.0.0.1:2525/?k=SECRET-dddd#SECRET-eeee");
	f->conf.route[WU_ROUTE_OLD].secret = strdup("SECRET-ffff");
	assert_non_null(f->conf.token);
	assert_non_null(f->conf.route[WU_ROUTE_NEW].secret);
	assert_non_null(f->conf.route[WU_ROUTE_OLD].secret);
}

/* Makes the engine and an empty store. */
static void fixture_open(struct fixture *f, wu_time_t now)
{
	char err[WU_ERR_MAX];

	if (wu_engine_create(&f->e, &f->conf.core, now, err, sizeof err) < 0)
		fail_msg("engine: %s", err);
	snprintf(f->dir, sizeof f->dir, "/tmp/wu-status-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof f->path, "%s/queue.db", f->dir);
	if (store_open(&f->s, f->path, err, sizeof err) < 0)
		fail_msg("store_open: %s", err);
}

/* A fixture with the standard configuration at 2026-12-03T10:00. */
static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);

	assert_non_null(f);
	conf_make(f, NULL);
	fixture_open(f, T_NOW);
	*state = f;
	return 0;
}

/* Frees everything and removes the store's files. */
static int teardown(void **state)
{
	struct fixture *f = *state;
	const char *suffix[] = {"", "-wal", "-shm", "-journal"};
	char p[160];

	cJSON_Delete(f->root);
	free(f->json);
	free(f->metrics);
	store_close(f->s);
	for (size_t i = 0; i < sizeof suffix / sizeof suffix[0]; i++) {
		snprintf(p, sizeof p, "%s%s", f->path, suffix[i]);
		unlink(p);
	}
	if (f->dir[0])
		rmdir(f->dir);
	wu_engine_free(f->e);
	wu_conf_free(&f->conf);
	free(f);
	return 0;
}

/* The id of a built-in ISP group. */
static int isp(struct fixture *f, const char *name)
{
	int id = wu_isp_find(&f->conf.core.isps, name);

	assert_true(id >= 0);
	return id;
}

/* Routes n messages for an ISP and checks where they went. */
static void route_n(struct fixture *f, const char *name, int n, enum wu_kind want)
{
	for (int i = 0; i < n; i++) {
		struct wu_decision d = wu_engine_route(f->e, T_NOW, isp(f, name));

		assert_int_equal(d.kind, want);
	}
}

/* Reports n outcomes of today's sends. */
static void outcome_n(struct fixture *f, enum wu_route r, const char *name, enum wu_result res,
                      int n)
{
	const struct wu_day_stats *t = wu_engine_today(f->e);

	for (int i = 0; i < n; i++)
		wu_engine_outcome(f->e, T_NOW, r, isp(f, name), res, t->date);
}

/* Adds one content and a unit for each ISP named. */
static void units_add(struct fixture *f, const char *const *isps, int n, int64_t *ids)
{
	const char body[] = "{\"from\":{\"email\":\"a@example.com\"},\"subject\":\"hi\"}";
	const char pers[] = "{\"to\":[{\"email\":\"b@example.com\"}]}";
	int64_t cid;

	assert_int_equal(store_add_content(f->s, "m1", body, strlen(body), T_NOW, &cid), 0);
	for (int i = 0; i < n; i++)
		assert_int_equal(store_add_unit(f->s, cid, pers, strlen(pers), isp(f, isps[i]),
		                                "example.com", T_NOW, &ids[i]),
		                 0);
}

/* The day's traffic every test below reads:
 *   google   10 new: 7 accepted, 2 tempfail, 1 permfail -> 7 sent; 5 delivered, 1 bounce
 *   yahoo     3 new: 3 accepted
 *   microsoft 4 old (new route paused): 4 accepted
 *   store: google queued 1 + inflight 1, apple queued 1, docomo sent 1 + failed 1 */
static void traffic(struct fixture *f)
{
	static const char *const names[] = {"google", "google", "apple", "docomo", "docomo"};
	int64_t ids[5];

	route_n(f, "google", 10, WU_NEW);
	outcome_n(f, WU_ROUTE_NEW, "google", WU_ACCEPTED, 7);
	outcome_n(f, WU_ROUTE_NEW, "google", WU_TEMPFAIL, 2);
	outcome_n(f, WU_ROUTE_NEW, "google", WU_PERMFAIL, 1);
	outcome_n(f, WU_ROUTE_NEW, "google", WU_DELIVERED, 5);
	outcome_n(f, WU_ROUTE_NEW, "google", WU_BOUNCE, 1);
	route_n(f, "yahoo", 3, WU_NEW);
	outcome_n(f, WU_ROUTE_NEW, "yahoo", WU_ACCEPTED, 3);
	wu_engine_pause(f->e, T_NOW, WU_ROUTE_NEW, "operator");
	route_n(f, "microsoft", 4, WU_OLD);
	outcome_n(f, WU_ROUTE_OLD, "microsoft", WU_ACCEPTED, 4);

	units_add(f, names, 5, ids);
	assert_int_equal(store_mark_inflight(f->s, ids[1], WU_ROUTE_NEW), 0);
	assert_int_equal(store_mark_inflight(f->s, ids[3], WU_ROUTE_NEW), 0);
	assert_int_equal(store_mark_sent(f->s, ids[3], "pid-1", T_NOW), 0);
	assert_int_equal(store_mark_inflight(f->s, ids[4], WU_ROUTE_NEW), 0);
	assert_int_equal(store_mark_failed(f->s, ids[4], "550 no such user", T_NOW), 0);

	f->x.intake_accepted = 12;
	f->x.intake_rejected = 3;
	f->x.webhook_events = 6;
	f->x.inflight[WU_ROUTE_NEW] = 2;
	f->x.inflight[WU_ROUTE_OLD] = 1;
	f->x.started = T_NOW - 3600 * WU_USEC;
	f->x.started_mono = 1000 * WU_USEC; /* uptime comes from the monotonic clock */
	f->x.mono_now = f->x.started_mono + 3600 * WU_USEC;
}

/* Renders both views and parses the JSON. */
static void render(struct fixture *f, struct store *s, const struct status_extra *x)
{
	f->json = status_json(f->e, s, &f->conf, x, T_NOW);
	f->metrics = status_metrics(f->e, s, &f->conf, x, T_NOW);
	assert_non_null(f->json);
	assert_non_null(f->metrics);
	f->root = cJSON_Parse(f->json);
	if (!f->root)
		fail_msg("status_json is not JSON: %s", f->json);
}

/* The item at a dotted path ("routes.new.sent"); fails when absent. */
static const cJSON *at(const cJSON *root, const char *path)
{
	char buf[128], *save = NULL, *k;
	const cJSON *o = root;

	snprintf(buf, sizeof buf, "%s", path);
	for (k = strtok_r(buf, ".", &save); k; k = strtok_r(NULL, ".", &save)) {
		o = cJSON_GetObjectItemCaseSensitive(o, k);
		if (!o)
			fail_msg("no %s in status JSON (missing '%s')", path, k);
	}
	return o;
}

/* The number at a path, which must be a number. */
static double num(const cJSON *root, const char *path)
{
	const cJSON *o = at(root, path);

	if (!cJSON_IsNumber(o))
		fail_msg("%s is not a number", path);
	return o->valuedouble;
}

/* The string at a path, which must be a string. */
static const char *str(const cJSON *root, const char *path)
{
	const cJSON *o = at(root, path);

	if (!cJSON_IsString(o))
		fail_msg("%s is not a string", path);
	return o->valuestring;
}

/* Fails unless the metrics text holds this exact line. */
static void has_line(const char *text, const char *line)
{
	size_t n = strlen(line);

	for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		if (strncmp(p, line, n) == 0 && (p[n] == '\n' || p[n] == '\0'))
			return;
	fail_msg("metrics lack the line '%s'", line);
}

/* Checks every line against the 0.0.4 text format: comments are HELP or
 * TYPE, a sample's family was TYPEd before it, label values are quoted with
 * only \\, \" and \n escapes, and the value is a number. */
static void check_format(const char *text)
{
	char typed[64][64];
	int ntyped = 0;
	const char *p = text;

	assert_true(strlen(text) > 0 && text[strlen(text) - 1] == '\n');
	while (*p) {
		const char *eol = strchr(p, '\n');
		char name[64];
		size_t n = 0;
		int known = 0;

		assert_non_null(eol);
		if (*p == '#') {
			if (strncmp(p, "# TYPE ", 7) == 0) {
				const char *q = p + 7;

				while (q < eol && *q != ' ' && n < sizeof name - 1)
					name[n++] = *q++;
				name[n] = '\0';
				assert_true(ntyped < 64);
				snprintf(typed[ntyped++], sizeof typed[0], "%s", name);
			} else if (strncmp(p, "# HELP ", 7) != 0) {
				fail_msg("bad comment line: %.*s", (int)(eol - p), p);
			}
			p = eol + 1;
			continue;
		}
		while (p < eol && (isalnum((unsigned char)*p) || *p == '_' || *p == ':') &&
		       n < sizeof name - 1)
			name[n++] = *p++;
		name[n] = '\0';
		assert_true(n > 0);
		for (int i = 0; i < ntyped; i++)
			known |= strcmp(typed[i], name) == 0;
		if (!known)
			fail_msg("sample of %s before its # TYPE", name);
		if (*p == '{') {
			p++;
			while (*p != '}') {
				while (isalnum((unsigned char)*p) || *p == '_')
					p++;
				assert_int_equal(*p++, '=');
				assert_int_equal(*p++, '"');
				while (*p != '"') {
					assert_true(p < eol);
					if (*p == '\\') {
						p++;
						assert_non_null(strchr("\\\"n", *p));
					}
					p++;
				}
				p++;
				if (*p == ',')
					p++;
				else
					assert_int_equal(*p, '}');
			}
			p++;
		}
		assert_int_equal(*p++, ' ');
		if (strncmp(p, "+Inf\n", 5) != 0) {
			char *end;

			strtod(p, &end);
			assert_ptr_equal(end, eol);
		}
		p = eol + 1;
	}
}

/* The JSON has today's numbers from the engine and the store. */
static void test_json_numbers(void **state)
{
	struct fixture *f = *state;

	traffic(f);
	render(f, f->s, &f->x);

	assert_string_equal(str(f->root, "date"), "2026-12-03");
	assert_int_equal(num(f->root, "day"), 3);
	assert_int_equal(num(f->root, "held_days"), 0);
	assert_int_equal(num(f->root, "cap"), 73);
	assert_int_equal(num(f->root, "used"), 10);
	assert_int_equal(num(f->root, "remaining"), 63);
	assert_string_equal(str(f->root, "window.open"), "2026-12-03T00:00:00+09:00");
	assert_string_equal(str(f->root, "window.close"), "2026-12-04T00:00:00+09:00");
	assert_string_equal(str(f->root, "time"), "2026-12-03T10:00:00+09:00");

	assert_true(cJSON_IsTrue(at(f->root, "routes.new.paused")));
	assert_true(cJSON_IsFalse(at(f->root, "routes.old.paused")));
	assert_string_equal(str(f->root, "routes.new.type"), "sendgrid");
	assert_string_equal(str(f->root, "routes.new.url"), "https://api.sendgrid.com");
	assert_string_equal(str(f->root, "routes.old.type"), "smtp");
	assert_string_equal(str(f->root, "routes.old.url"), "smtp://127.0.0.1:2525/");
	assert_int_equal(num(f->root, "routes.new.sent"), 10);
	assert_int_equal(num(f->root, "routes.new.accepted"), 10);
	assert_int_equal(num(f->root, "routes.new.tempfail"), 2);
	assert_int_equal(num(f->root, "routes.new.permfail"), 1);
	assert_int_equal(num(f->root, "routes.new.inflight"), 2);
	assert_int_equal(num(f->root, "routes.old.sent"), 4);
	assert_int_equal(num(f->root, "routes.old.accepted"), 4);
	assert_int_equal(num(f->root, "routes.old.tempfail"), 0);
	assert_int_equal(num(f->root, "routes.old.inflight"), 1);

	assert_int_equal(num(f->root, "isps.google.new.sent"), 7);
	assert_int_equal(num(f->root, "isps.google.new.accepted"), 7);
	assert_int_equal(num(f->root, "isps.google.new.share_limit"), 29); /* 40% of 73 */
	assert_true(cJSON_IsNull(at(f->root, "isps.google.old.share_limit")));
	assert_int_equal(num(f->root, "isps.google.old.sent"), 0);
	assert_int_equal(num(f->root, "isps.google.queued"), 1);
	assert_true(cJSON_IsNull(at(f->root, "isps.yahoo.new.share_limit")));
	assert_int_equal(num(f->root, "isps.yahoo.new.sent"), 3);
	assert_int_equal(num(f->root, "isps.yahoo.queued"), 0);
	assert_int_equal(num(f->root, "isps.microsoft.old.sent"), 4);
	assert_int_equal(num(f->root, "isps.microsoft.old.accepted"), 4);
	assert_int_equal(num(f->root, "isps.apple.queued"), 1);
	assert_int_equal(num(f->root, "isps.apple.new.sent"), 0);
	/* no activity and nothing queued: left out */
	assert_null(cJSON_GetObjectItem(at(f->root, "isps"), "docomo"));
	assert_null(cJSON_GetObjectItem(at(f->root, "isps"), "other"));
	assert_null(cJSON_GetObjectItem(at(f->root, "isps"), "softbank"));

	assert_int_equal(num(f->root, "queue.queued"), 2);
	assert_int_equal(num(f->root, "queue.inflight"), 1);
	assert_int_equal(num(f->root, "queue.sent"), 1);
	assert_int_equal(num(f->root, "queue.failed"), 1);
	assert_null(cJSON_GetObjectItem(f->root, "store_error"));

	assert_string_equal(str(f->root, "gate.state"), "ok");
	assert_true(num(f->root, "gate.bounce_rate") > 1.0 / 6 - 1e-9 &&
	            num(f->root, "gate.bounce_rate") < 1.0 / 6 + 1e-9);
	assert_true(num(f->root, "gate.complaint_rate") == 0);
	assert_non_null(str(f->root, "gate.reason"));

	assert_int_equal(num(f->root, "intake.accepted"), 12);
	assert_int_equal(num(f->root, "intake.rejected"), 3);
	assert_int_equal(num(f->root, "webhook_events"), 6);
	assert_int_equal(num(f->root, "uptime_s"), 3600);
}

/* The metrics are well formed and carry the same numbers. */
static void test_metrics(void **state)
{
	struct fixture *f = *state;

	traffic(f);
	render(f, f->s, &f->x);
	check_format(f->metrics);

	has_line(f->metrics, "# TYPE warmup_cap gauge");
	has_line(f->metrics, "warmup_cap 73");
	has_line(f->metrics, "warmup_used 10");
	has_line(f->metrics, "warmup_step 3");
	has_line(f->metrics, "warmup_held_days 0");
	has_line(f->metrics, "warmup_gate_state 0");
	has_line(f->metrics, "warmup_bounce_rate 0.166666667");
	has_line(f->metrics, "warmup_complaint_rate 0");
	has_line(f->metrics, "# TYPE warmup_sent_total counter");
	has_line(f->metrics, "warmup_sent_total{route=\"new\",isp=\"google\"} 7");
	has_line(f->metrics, "warmup_sent_total{route=\"new\",isp=\"yahoo\"} 3");
	has_line(f->metrics, "warmup_sent_total{route=\"old\",isp=\"microsoft\"} 4");
	has_line(f->metrics, "warmup_sent_total{route=\"old\",isp=\"google\"} 0");
	has_line(f->metrics, "# TYPE warmup_results_total counter");
	has_line(f->metrics,
	         "warmup_results_total{route=\"new\",isp=\"google\",result=\"accepted\"} 7");
	has_line(f->metrics,
	         "warmup_results_total{route=\"new\",isp=\"google\",result=\"tempfail\"} 2");
	has_line(f->metrics,
	         "warmup_results_total{route=\"new\",isp=\"google\",result=\"permfail\"} 1");
	has_line(f->metrics,
	         "warmup_results_total{route=\"new\",isp=\"google\",result=\"delivered\"} 5");
	has_line(f->metrics,
	         "warmup_results_total{route=\"new\",isp=\"google\",result=\"bounce\"} 1");
	has_line(f->metrics,
	         "warmup_results_total{route=\"old\",isp=\"microsoft\",result=\"accepted\"} 4");
	has_line(f->metrics, "# TYPE warmup_queue gauge");
	has_line(f->metrics, "warmup_queue{state=\"queued\"} 2");
	has_line(f->metrics, "warmup_queue{state=\"inflight\"} 1");
	has_line(f->metrics, "warmup_queue{state=\"sent\"} 1");
	has_line(f->metrics, "warmup_queue{state=\"failed\"} 1");
	has_line(f->metrics, "warmup_queued{isp=\"google\"} 1");
	has_line(f->metrics, "warmup_route_paused{route=\"new\"} 1");
	has_line(f->metrics, "warmup_route_paused{route=\"old\"} 0");
	has_line(f->metrics, "warmup_inflight{route=\"new\"} 2");
	has_line(f->metrics, "# TYPE warmup_intake_accepted_total counter");
	has_line(f->metrics, "warmup_intake_accepted_total 12");
	has_line(f->metrics, "warmup_intake_rejected_total 3");
	has_line(f->metrics, "warmup_webhook_events_total 6");
}

/* Neither view shows the token, a route secret, or credentials in a URL. */
static void test_no_secrets(void **state)
{
	struct fixture *f = *state;

	traffic(f);
	render(f, f->s, &f->x);
	assert_null(strstr(f->json, "SECRET"));
	assert_null(strstr(f->metrics, "SECRET"));
	assert_null(strstr(f->json, "relay:"));
	/* and the secrets are still where the daemon needs them */
	assert_string_equal(f->conf.token, "tok-SECRET-aaaa");
	assert_string_equal(f->conf.route[WU_ROUTE_NEW].secret, "SG.SECRET-bbbb");
}

/* Without a store or extras both views still render, with nulls. */
static void test_no_store(void **state)
{
	struct fixture *f = *state;

	route_n(f, "google", 2, WU_NEW);
	render(f, NULL, NULL);
	check_format(f->metrics);
	assert_true(cJSON_IsNull(at(f->root, "queue.queued")));
	assert_non_null(str(f->root, "store_error"));
	assert_true(cJSON_IsNull(at(f->root, "isps.google.queued")));
	assert_true(cJSON_IsNull(at(f->root, "intake.accepted")));
	assert_true(cJSON_IsNull(at(f->root, "uptime_s")));
	assert_int_equal(num(f->root, "used"), 2);
	assert_null(strstr(f->metrics, "warmup_queue{"));
	assert_null(strstr(f->metrics, "warmup_intake_accepted_total"));
	has_line(f->metrics, "warmup_used 2");
}

/* After the table runs out (after = unlimited) the cap is null and +Inf. */
static void test_unlimited(void **state)
{
	struct fixture *f = *state;
	char err[WU_ERR_MAX];

	wu_engine_free(f->e);
	if (wu_engine_create(&f->e, &f->conf.core, T_NOW + 5 * WU_DAY, err, sizeof err) < 0)
		fail_msg("engine: %s", err);
	f->json = status_json(f->e, f->s, &f->conf, &f->x, T_NOW + 5 * WU_DAY);
	f->metrics = status_metrics(f->e, f->s, &f->conf, &f->x, T_NOW + 5 * WU_DAY);
	assert_non_null(f->json);
	assert_non_null(f->metrics);
	f->root = cJSON_Parse(f->json);
	assert_non_null(f->root);
	assert_string_equal(str(f->root, "date"), "2026-12-08");
	assert_int_equal(num(f->root, "day"), 8);
	assert_true(cJSON_IsNull(at(f->root, "cap")));
	assert_true(cJSON_IsNull(at(f->root, "remaining")));
	check_format(f->metrics);
	has_line(f->metrics, "warmup_cap +Inf");
	has_line(f->metrics, "warmup_step 8");
}

/* Gives the softbank group a name that needs every escape of the format. */
static void odd_name(struct wu_isp_table *t)
{
	int id = wu_isp_find(t, "softbank");

	assert_true(id >= 0);
	snprintf(t->names[id], sizeof t->names[id], "so\"ft\\b\nk");
}

/* A fixture whose softbank group has the odd name. */
static int setup_odd(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);

	assert_non_null(f);
	conf_make(f, odd_name);
	fixture_open(f, T_NOW);
	*state = f;
	return 0;
}

/* Label values are escaped; the JSON key survives a round trip. */
static void test_label_escape(void **state)
{
	struct fixture *f = *state;
	int id = wu_isp_find(&wu_engine_conf(f->e)->isps, "so\"ft\\b\nk");

	assert_true(id >= 0);
	for (int i = 0; i < 2; i++)
		assert_int_equal(wu_engine_route(f->e, T_NOW, id).kind, WU_NEW);
	render(f, f->s, &f->x);
	check_format(f->metrics);
	has_line(f->metrics, "warmup_sent_total{route=\"new\",isp=\"so\\\"ft\\\\b\\nk\"} 2");
	assert_int_equal(
	    num(cJSON_GetObjectItemCaseSensitive(at(f->root, "isps"), "so\"ft\\b\nk"), "new.sent"),
	    2);
}

/* Each test gets a fresh engine and store. */
int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_json_numbers, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_metrics, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_no_secrets, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_no_store, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_unlimited, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_label_escape, setup_odd, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
