/*
 * NAME
 *	test_config.c -- the warmup INI file: a full file, the defaults, every
 *	kind of error, secrets from the environment and from files, and
 *	relative paths.
 *
 * DESCRIPTION
 *	Each test writes its config (and a small schedule) into a fresh
 *	directory made with mkdtemp, loads it, and looks at the result or at
 *	the message.  Error messages must name the file, the line and the key,
 *	and must never hold a secret.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "scheduler/config.h"
#include "scheduler/core/pacing.h"

#define SECRET_KEY  "SG.topsecret-api-key.XYZ"
#define SECRET_PASS "topsecret-relay-password"
#define SECRET_TOK  "topsecret-bearer-token"

/* A scratch directory per test, with the schedule every config points at. */
struct fx {
	char dir[1024];
	char conf[PATH_MAX];
	char err[512];
	struct wu_conf c;
};

/* Writes name under the fixture directory with the given mode. */
static void put(struct fx *f, const char *name, const char *text, mode_t mode)
{
	char path[PATH_MAX + 64];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", f->dir, name);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs(text, fp);
	assert_int_equal(fclose(fp), 0);
	assert_int_equal(chmod(path, mode), 0);
}

static int setup(void **state)
{
	const char *tmp = getenv("TMPDIR");
	struct fx *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "%s/wuconf.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->conf, sizeof(f->conf), "%s/warmup.conf", f->dir);
	put(f, "sched.csv", "# test schedule\nday,cap\n1,50\n2,100\n3,200\n", 0644);
	setenv("WU_TEST_KEY", SECRET_KEY, 1);
	setenv("WU_TEST_TOKEN", SECRET_TOK, 1);
	unsetenv("WU_TEST_UNSET");
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[PATH_MAX + 16];

	wu_conf_free(&f->c);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	if (system(cmd) != 0)
		return -1;
	free(f);
	return 0;
}

/* Writes text as warmup.conf and loads it. */
static int load(struct fx *f, const char *text, int flags)
{
	put(f, "warmup.conf", text, 0644);
	f->err[0] = '\0';
	return wu_conf_load(&f->c, f->conf, flags, f->err, sizeof(f->err));
}

#define assert_err_has(f, needle)                                                                  \
	do {                                                                                       \
		if (!strstr((f)->err, (needle))) {                                                 \
			print_error("error \"%s\" does not contain \"%s\"\n", (f)->err, (needle)); \
			fail();                                                                    \
		}                                                                                  \
	} while (0)

#define assert_near(a, b) assert_true(fabs((double)(a) - (double)(b)) < 1e-9)

/* The smallest file the daemon accepts (9 lines); tests append to it. */
#define WARMUP   "[warmup]\nschedule = sched.csv\nstart = 2026-12-01\noverflow = defer\n"
#define NEWROUTE "[route new]\ntype = sendgrid\napi_key_env = WU_TEST_KEY\n"
#define NOAUTH   WARMUP NEWROUTE
#define BASE     WARMUP "[listen]\nauth = none\n" NEWROUTE

/* The product spec's example, pointed at files in the fixture directory. */
static const char full[] = "; the example of the product spec\n"
                           "[warmup]\n"
                           "schedule = sched.csv\n"
                           "start = 2026-12-01            ; day 1, local date\n"
                           "timezone = Asia/Tokyo\n"
                           "window = 08:00-22:00\n"
                           "burst = 30min                 ; 1h | 30min | day\n"
                           "overflow = old                ; old | defer\n"
                           "advance = gated               ; calendar | gated\n"
                           "after = double                ; unlimited | hold | double\n"
                           "min_fill = 70%\n"
                           "\n"
                           "[listen]\n"
                           "address = 127.0.0.1:0\n"
                           "token_env = WU_TEST_TOKEN\n"
                           "max_body = 20MB\n"
                           "max_connections = 64\n"
                           "idle_timeout = 45s\n"
                           "\n"
                           "[store]\n"
                           "path = state/warmup.db\n"
                           "\n"
                           "[route new]\n"
                           "type = sendgrid\n"
                           "url = https://api.sendgrid.com\n"
                           "api_key_env = WU_TEST_KEY\n"
                           "ip_pool = warmup\n"
                           "on_behalf_of = subuser\n"
                           "click_tracking = on\n"
                           "open_tracking = off\n"
                           "subscription_tracking = off\n"
                           "max_connections = 4\n"
                           "timeout = 20s\n"
                           "batch = 500\n"
                           "\n"
                           "[route old]                   ; optional\n"
                           "type = smtp\n"
                           "url = smtp://relay.example.net:587\n"
                           "tls = optional\n"
                           "username = relayuser\n"
                           "password_file = relay.pass\n"
                           "ca_file = ca.pem\n"
                           "x_smtpapi = off\n"
                           "\n"
                           "[isp google]\n"
                           "domains = gmail.com, googlemail.com\n"
                           "new_rate = 600/h\n"
                           "new_burst = 50\n"
                           "new_share = 45%\n"
                           "old_rate = 10/s\n"
                           "old_burst = 20\n"
                           "\n"
                           "[isp corp]\n"
                           "add_domains = example.co.jp\n"
                           "new_share = 500\n"
                           "\n"
                           "[gate]\n"
                           "bounce_warn = 2%\n"
                           "bounce_halt = 4%\n"
                           "complaint_warn = 0.05%\n"
                           "complaint_halt = 0.2%\n"
                           "min_sample = 100\n"
                           "confidence = 99%\n"
                           "resume = manual\n"
                           "\n"
                           "[backoff]\n"
                           "cut = 50%\n"
                           "floor = 3%\n"
                           "step = 2%\n"
                           "suspend_after = 7\n"
                           "suspend = 10min\n"
                           "retry_min = 2min\n"
                           "retry_max = 2h\n"
                           "\n"
                           "[log]\n"
                           "level = debug\n";

static void test_full_file(void **state)
{
	struct fx *f = *state;
	struct wu_conf *c = &f->c;
	char want[PATH_MAX + 64];
	int google, corp;

	put(f, "relay.pass", SECRET_PASS "\n", 0600);
	put(f, "ca.pem", "-----BEGIN CERTIFICATE-----\n", 0644);
	if (load(f, full, 0) < 0)
		fail_msg("%s", f->err);

	assert_string_equal(c->core.calendar.tz, "Asia/Tokyo");
	assert_int_equal(c->core.calendar.start, wu_days_from_civil(2026, 12, 1));
	assert_int_equal(c->core.calendar.open_min, 8 * 60);
	assert_int_equal(c->core.calendar.close_min, 22 * 60);
	assert_true(c->core.burst == 30 * WU_MINUTE);
	assert_int_equal(c->core.overflow, WU_OVERFLOW_OLD);
	assert_int_equal(c->core.advance, WU_ADVANCE_GATED);
	assert_int_equal(c->core.schedule.after, WU_AFTER_DOUBLE);
	assert_near(c->core.min_fill, 0.70);
	assert_int_equal(c->core.schedule.ndays, 3);
	assert_true(c->core.schedule.days[2].cap == 200);

	assert_string_equal(c->listen_host, "127.0.0.1");
	assert_int_equal(c->listen_port, 0);
	assert_int_equal(c->auth_none, 0);
	assert_string_equal(c->token, SECRET_TOK);
	assert_true(c->max_body == 20 * 1024 * 1024);
	assert_int_equal(c->max_connections, 64);
	assert_true(c->idle_timeout == 45 * WU_USEC);

	snprintf(want, sizeof(want), "%s/state/warmup.db", c->dir);
	assert_string_equal(c->store_path, want);

	struct snd_route_conf *n = &c->route[WU_ROUTE_NEW], *o = &c->route[WU_ROUTE_OLD];
	assert_int_equal(n->type, SND_TYPE_SENDGRID);
	assert_string_equal(n->url, "https://api.sendgrid.com");
	assert_string_equal(n->secret, SECRET_KEY);
	assert_string_equal(n->secret_source, "env WU_TEST_KEY");
	assert_string_equal(n->ip_pool, "warmup");
	assert_string_equal(n->on_behalf_of, "subuser");
	assert_int_equal(n->click_tracking, 1);
	assert_int_equal(n->open_tracking, 0);
	assert_int_equal(n->max_connections, 4);
	assert_true(n->timeout == 20 * WU_USEC);
	assert_int_equal(n->batch, 500);

	assert_int_equal(o->type, SND_TYPE_SMTP);
	assert_string_equal(o->url, "smtp://relay.example.net:587");
	assert_int_equal(o->tls, SND_TLS_OPTIONAL);
	assert_string_equal(o->username, "relayuser");
	assert_string_equal(o->secret, SECRET_PASS);
	snprintf(want, sizeof(want), "file %s/relay.pass", c->dir);
	assert_string_equal(o->secret_source, want);
	snprintf(want, sizeof(want), "%s/ca.pem", c->dir);
	assert_string_equal(o->ca_file, want);
	assert_int_equal(o->x_smtpapi, 0);

	google = wu_isp_find(&c->core.isps, "google");
	corp = wu_isp_find(&c->core.isps, "corp");
	assert_true(google > 0 && corp > 0);
	assert_int_equal(wu_isp_classify(&c->core.isps, "googlemail.com"), google);
	assert_int_equal(wu_isp_classify(&c->core.isps, "user@example.co.jp"), corp);
	assert_near(c->core.throttle[WU_ROUTE_NEW][google].rate, 600.0 / 3600);
	assert_near(c->core.throttle[WU_ROUTE_NEW][google].burst, 50);
	assert_near(c->core.throttle[WU_ROUTE_NEW][google].share, 0.45);
	assert_near(c->core.throttle[WU_ROUTE_OLD][google].rate, 10);
	assert_near(c->core.throttle[WU_ROUTE_OLD][google].burst, 20);
	assert_true(c->core.throttle[WU_ROUTE_NEW][corp].share_count == 500);

	assert_near(c->core.gate.bounce_warn, 0.02);
	assert_near(c->core.gate.bounce_halt, 0.04);
	assert_near(c->core.gate.complaint_warn, 0.0005);
	assert_near(c->core.gate.complaint_halt, 0.002);
	assert_true(c->core.gate.min_sample == 100);
	assert_near(c->core.gate.z, 2.576);
	assert_int_equal(c->core.gate.resume, WU_RESUME_MANUAL);

	assert_near(c->core.backoff.cut, 0.5);
	assert_near(c->core.backoff.floor, 0.03);
	assert_near(c->core.backoff.step, 0.02);
	assert_int_equal(c->core.backoff.suspend_after, 7);
	assert_true(c->core.backoff.suspend == 10 * WU_MINUTE);
	assert_true(c->core.backoff.retry_min == 2 * WU_MINUTE);
	assert_true(c->core.backoff.retry_max == 2 * WU_HOUR);
	assert_int_equal(c->log_level, LOG_DEBUG);
}

static void test_defaults(void **state)
{
	struct fx *f = *state;
	struct wu_conf *c = &f->c;

	if (load(f, BASE, 0) < 0)
		fail_msg("%s", f->err);
	assert_string_equal(c->core.calendar.tz, "Asia/Tokyo");
	assert_int_equal(c->core.calendar.open_min, 0);
	assert_int_equal(c->core.calendar.close_min, 1440);
	assert_true(c->core.burst == WU_HOUR);
	assert_int_equal(c->core.advance, WU_ADVANCE_CALENDAR);
	assert_int_equal(c->core.schedule.after, WU_AFTER_UNLIMITED);
	assert_near(c->core.min_fill, 0.8);
	assert_string_equal(c->listen_host, "127.0.0.1");
	assert_int_equal(c->listen_port, 8025);
	assert_int_equal(c->auth_none, 1);
	assert_null(c->token);
	assert_true(c->max_body == 10 * 1024 * 1024);
	assert_int_equal(c->max_connections, 256);
	assert_true(c->idle_timeout == 30 * WU_USEC);
	assert_string_equal(c->store_path, "/var/lib/warmup/warmup.db");
	assert_string_equal(c->route[WU_ROUTE_NEW].url, "https://api.sendgrid.com");
	assert_int_equal(c->route[WU_ROUTE_NEW].max_connections, 8);
	assert_true(c->route[WU_ROUTE_NEW].timeout == 30 * WU_USEC);
	assert_int_equal(c->route[WU_ROUTE_NEW].batch, 1000);
	assert_int_equal(c->route[WU_ROUTE_NEW].click_tracking, 0);
	assert_string_equal(c->route[WU_ROUTE_NEW].ip_pool, "");
	assert_int_equal(c->route[WU_ROUTE_OLD].type, SND_TYPE_NONE);
	assert_int_equal(c->route[WU_ROUTE_OLD].tls, SND_TLS_REQUIRED);
	assert_near(c->core.gate.bounce_halt, 0.05);
	assert_near(c->core.gate.z, 0);
	assert_true(c->core.gate.min_sample == 120);
	assert_true(c->core.gate.pool_sample == 300);
	assert_true(c->core.gate.complaint_min_sample == 2000);
	assert_true(c->core.gate.complaint_pool_sample == 5000);
	assert_int_equal(c->core.gate.resume, WU_RESUME_NEXT_DAY);
	assert_near(c->core.backoff.cut, 0.5);
	assert_int_equal(c->core.backoff.suspend_after, 5);
	assert_int_equal(c->log_level, LOG_INFO);
	assert_int_equal(wu_isp_classify(&c->core.isps, "gmail.com"),
	                 wu_isp_find(&c->core.isps, "google"));
}

static void test_defaults_without_file(void **state)
{
	struct fx *f = *state;

	assert_int_equal(wu_conf_defaults(&f->c), 0);
	assert_int_equal(f->c.listen_port, 8025);
	assert_int_equal(f->c.route[WU_ROUTE_NEW].batch, 1000);
	assert_int_equal(f->c.log_level, LOG_INFO);
	assert_int_equal(f->c.core.overflow, WU_OVERFLOW_OLD);
}

/* Every default the key tables give, value for value: what a file that
 * leaves a key out gets. */
static void test_defaults_every_key(void **state)
{
	struct fx *f = *state;
	struct wu_conf *c = &f->c;

	assert_int_equal(wu_conf_defaults(c), 0);
	assert_string_equal(c->listen_host, "127.0.0.1");
	assert_int_equal(c->listen_port, 8025);
	assert_true(c->max_body == (size_t)10 * 1024 * 1024);
	assert_int_equal(c->max_connections, 256);
	assert_true(c->idle_timeout == 30 * WU_USEC);
	assert_int_equal(c->max_connections_per_ip, -1);
	assert_true(c->header_timeout == 10 * WU_USEC);
	assert_true(c->smtpd.max_size == (size_t)30 * 1024 * 1024);
	assert_int_equal(c->smtpd.max_recipients, 1000);
	assert_int_equal(c->smtpd.max_connections, 100);
	assert_int_equal(c->smtpd.max_errors, 10);
	assert_true(c->smtpd.timeout == 300 * WU_USEC);
	assert_string_equal(c->store_path, "/var/lib/warmup/warmup.db");
	assert_true(c->store_keep == 7 * 24 * WU_HOUR);
	assert_true(c->store_prune_every == WU_MINUTE);
	assert_true(c->store_commit_every == 1000);
	for (int r = 0; r < WU_ROUTE_COUNT; r++) {
		assert_int_equal(c->route[r].type, SND_TYPE_NONE);
		assert_int_equal(c->route[r].max_connections, 8);
		assert_true(c->route[r].timeout == 30 * WU_USEC);
		assert_int_equal(c->route[r].batch, 1000);
		assert_int_equal(c->route[r].tls, SND_TLS_REQUIRED);
	}
	assert_int_equal(c->log_level, LOG_INFO);
	assert_true(c->webhook.max_body == (size_t)1024 * 1024);
	assert_true(c->webhook.max_skew == 10 * WU_MINUTE);
	assert_int_equal(c->webhook.default_rules, 1);
	assert_true(c->core.nrules > 0);
	assert_true(c->alert_backlog == 10000);
	assert_true(c->alert_backlog_every == 60 * WU_USEC);
	assert_true(c->alert_v3_wait == WU_HOUR);
	assert_true(c->alert_timeout == 10 * WU_USEC);
	assert_int_equal(c->alert_retries, 5);
	assert_true(c->alert_repeat == 10 * WU_MINUTE);
	assert_true(c->alert_disk_free == 0.05);
	assert_int_equal(c->dns.mx, 1);
	assert_true(c->dns.wait == 2 * WU_USEC);
	assert_true(c->dns.timeout == WU_USEC);
	assert_int_equal(c->dns.cache, 100000);
	assert_string_equal(c->cluster.name, "warmup");
	assert_true(c->cluster.timeout == 2 * WU_USEC);
	assert_true(c->cluster.lease_max == 4000);
	/* The engine's own: the core's defaults. */
	assert_int_equal(c->core.overflow, WU_OVERFLOW_OLD);
	assert_true(c->core.burst == WU_HOUR);
	assert_near(c->core.min_fill, 0.8);
}

/* A [defer_rule] that names only its ISP and texts gets the table's
 * defaults for the rest. */
static void test_defer_rule_defaults(void **state)
{
	struct fx *f = *state;
	const struct wu_defer_rule *r;

	if (load(f, BASE "[defer_rule slow]\nisp = google\nmatch = 4.7.28\n", 0) < 0)
		fail_msg("%s", f->err);
	assert_int_equal(f->c.webhook.nrules, 1);
	r = &f->c.webhook.rules[0];
	assert_string_equal(r->name, "slow");
	assert_int_equal(r->isp, wu_isp_find(&f->c.core.isps, "google"));
	assert_int_equal(r->events, WU_DEFER_ON_DEFERRED | WU_DEFER_ON_BLOCKED);
	assert_true(r->cut == 0.5);
	assert_true(r->hold == WU_HOUR);
	assert_int_equal(r->line, 10);
	wu_conf_free(&f->c);
}

/* The simulator: no secrets read, no routes or token required. */
static void test_simulator(void **state)
{
	struct fx *f = *state;

	if (load(f, "[warmup]\nschedule = sched.csv\nstart = 2026-12-01\n", WU_CONF_NO_SECRETS) < 0)
		fail_msg("%s", f->err);
	assert_int_equal(f->c.core.schedule.ndays, 3);
	assert_int_equal(f->c.core.overflow, WU_OVERFLOW_OLD);
	wu_conf_free(&f->c);

	if (load(f,
	         BASE "[route old]\ntype = smtp\nurl = smtp://r:25\nusername = u\n"
	              "password_env = WU_TEST_UNSET\n",
	         WU_CONF_NO_SECRETS) < 0)
		fail_msg("%s", f->err);
	assert_null(f->c.route[WU_ROUTE_NEW].secret);
	assert_null(f->c.route[WU_ROUTE_OLD].secret);
	wu_conf_free(&f->c);

	/* The same file is an error for the daemon: the variable is not set. */
	assert_int_equal(load(f,
	                      BASE "[route old]\ntype = smtp\nurl = smtp://r:25\nusername = u\n"
	                           "password_env = WU_TEST_UNSET\n",
	                      0),
	                 -1);
	assert_err_has(f, "warmup.conf:14: [route old] password_env: environment variable "
	                  "WU_TEST_UNSET is not set");
}

/* One bad file and what its message must say. */
struct bad {
	const char *text;
	const char *want[3];
};

static const struct bad bad_files[] = {
    {"[warmup]\nstart = 2026-12-01\nfoo = 1\n", {"warmup.conf:3: [warmup] foo: unknown key"}},
    {"[warmup]\n[bogus]\nx = 1\n", {"warmup.conf:2: unknown section '[bogus]'"}},
    {"[warmup]\nstart = 2026-12-01\n[route middle]\n",
     {"warmup.conf:3: expected [route new] or [route old]"}},
    {"[isp Google]\n", {"warmup.conf:1: [isp Google]: an ISP group name is"}},
    {"start = 2026-12-01\n", {"warmup.conf:1: start: every key belongs to a section"}},
    {"[warmup]\n\n[isp google]\nnew_rate = 10/fortnight\n",
     {"warmup.conf:4: [isp google] new_rate: expected a rate such as 10/s", "got '10/fortnight'"}},
    {"[warmup]\ntimezone = Mars/Olympus_Mons\n",
     {"warmup.conf:2: [warmup] timezone: expected a time zone name", "got 'Mars/Olympus_Mons'"}},
    {"[warmup]\ntimezone = ../../etc/passwd\n",
     {"warmup.conf:2: [warmup] timezone: expected a time zone name"}},
    {"[warmup]\ntimezone = Asia\n", {"warmup.conf:2: [warmup] timezone:"}},
    {"[warmup]\nstart = 2026-02-30\n", {"warmup.conf:2: [warmup] start: no such date"}},
    {"[warmup]\nwindow = 22:00-08:00\n", {"warmup.conf:2: [warmup] window:"}},
    {"[warmup]\nburst = 2 hours\n", {"warmup.conf:2: [warmup] burst:", "got '2 hours'"}},
    {"[warmup]\noverflow = maybe\n", {"[warmup] overflow: expected old or defer"}},
    {"[warmup]\nadvance = fast\n", {"[warmup] advance: expected calendar or gated"}},
    {"[warmup]\nafter = triple\n", {"[warmup] after: expected unlimited, hold or double"}},
    {"[warmup]\nmin_fill = 80\n", {"[warmup] min_fill: expected a percentage"}},
    {"[warmup]\nstart = 2026-12-01\nstart = 2026-12-02\n",
     {"warmup.conf:3: [warmup] start: already set on line 2"}},
    {"[warmup]\nschedule\n", {"warmup.conf:2: expected [section], key = value"}},
    /* no continuation lines: an indented line is a key of its own */
    {"[warmup]\nstart = 2026-12-01\n   foo = 1\n", {"warmup.conf:3: [warmup] foo: unknown key"}},
    {"[listen]\naddress = 8025\n", {"warmup.conf:2: [listen] address: expected an IP address"}},
    {"[listen]\naddress = example.com:8025\n", {"[listen] address: expected an IP address"}},
    {"[listen]\naddress = 127.0.0.1:70000\n", {"[listen] address:"}},
    {"[listen]\nmax_body = 31MB\n", {"[listen] max_body: expected a size from 1 byte to 30MB"}},
    {"[listen]\nmax_body = lots\n", {"[listen] max_body: expected a size such as 10MB"}},
    {"[listen]\nidle_timeout = forever\n", {"[listen] idle_timeout: expected a duration"}},
    {"[listen]\nauth = maybe\n", {"[listen] auth: expected token or none"}},
    {NOAUTH "[listen]\nauth = none\ntoken_env = WU_TEST_TOKEN\n",
     {"warmup.conf:9: [listen] auth: none contradicts"}},
    {NOAUTH "[listen]\naddress = 0.0.0.0:8025\nauth = none\n",
     {"warmup.conf:10: [listen] auth: none is only allowed on a loopback address"}},
    {"[listen]\ntoken_env = WU_TEST_TOKEN\ntoken_file = tok\n",
     {"warmup.conf:3: [listen] token_file: the secret is already given by token_env on line 2"}},
    {BASE "password_file = p\n",
     {"warmup.conf:10: [route new] password_file: the secret is already given by api_key_env on "
      "line 9"}},
    /* overflow = old (the default) needs somewhere to overflow to */
    {"[warmup]\nschedule = sched.csv\nstart = 2026-12-01\n[listen]\nauth = none\n"
     "[route new]\ntype = sendgrid\napi_key_env = WU_TEST_KEY\n",
     {"warmup.conf: [warmup] overflow: 'old' (the default)", "no [route old]", "overflow = defer"}},
    {"[warmup]\nschedule = sched.csv\nstart = 2026-12-01\noverflow = old\n[listen]\n"
     "auth = none\n[route new]\ntype = sendgrid\napi_key_env = WU_TEST_KEY\n",
     {"warmup.conf:4: [warmup] overflow: 'old' sends", "no [route old]"}},
    /* no token and no auth = none: the message explains both ways out */
    {NOAUTH,
     {"warmup.conf: [listen]: the intake needs a bearer token", "token_env", "auth = none"}},
    {"[warmup]\nschedule = sched.csv\noverflow = defer\n[listen]\nauth = none\n" NEWROUTE,
     {"warmup.conf: [warmup] start: required"}},
    {"[warmup]\nstart = 2026-12-01\noverflow = defer\n[listen]\nauth = none\n" NEWROUTE,
     {"warmup.conf: [warmup] schedule: required"}},
    {WARMUP "[listen]\nauth = none\n", {"warmup.conf: [route new]: required"}},
    {"[warmup]\nschedule = nowhere.csv\nstart = 2026-12-01\noverflow = defer\n[listen]\n"
     "auth = none\n" NEWROUTE,
     {"warmup.conf:2: [warmup] schedule: cannot read", "nowhere.csv"}},
    {"[warmup]\nschedule = bad.csv\nstart = 2026-12-01\noverflow = defer\n[listen]\n"
     "auth = none\n" NEWROUTE,
     {"warmup.conf:2: [warmup] schedule:", "bad.csv:3: day 3 out of order"}},
    {BASE "[route old]\n", {"warmup.conf:10: [route old] type: required"}},
    {BASE "[route old]\ntype = postfix\n",
     {"warmup.conf:11: [route old] type: expected "
      "sendgrid or smtp"}},
    {BASE "[route old]\ntype = smtp\n", {"warmup.conf:10: [route old] url: required"}},
    {BASE "[route old]\ntype = smtp\nurl = http://relay:25\n",
     {"warmup.conf:12: [route old] url: expected smtp://HOST:PORT"}},
    {BASE "[route old]\ntype = smtp\nurl = smtps://relay:465\ntls = none\n",
     {"warmup.conf:13: [route old] tls: none contradicts the smtps:// URL"}},
    {BASE "[route old]\ntype = smtp\nurl = smtp://relay:25\ntls = off\n",
     {"[route old] tls: expected required, optional or none"}},
    {BASE "[route old]\ntype = smtp\nurl = smtp://relay:25\nusername = u\n",
     {"warmup.conf:13: [route old] username: needs a password"}},
    {BASE "[route old]\ntype = smtp\nurl = smtp://relay:25\nbatch = 10\n",
     {"warmup.conf:13: [route old] batch: only for type = sendgrid (this route is smtp)"}},
    {BASE "[route old]\ntype = smtp\nurl = smtp://relay:25\nip_pool = x\n",
     {"warmup.conf:13: [route old] ip_pool:", "x_smtpapi = on"}},
    {BASE "tls = none\n", {"warmup.conf:10: [route new] tls: only for type = smtp"}},
    {BASE "url = http://api.example.com\n",
     {"warmup.conf:10: [route new] url: http:// would send the API key unencrypted"}},
    {BASE "url = ftp://api.example.com\n", {"warmup.conf:10: [route new] url: expected https://"}},
    {BASE "batch = 1001\n", {"[route new] batch: expected a whole number from 1 to 1000"}},
    {BASE "click_tracking = sometimes\n", {"[route new] click_tracking: expected on or off"}},
    {WARMUP "[listen]\nauth = none\n[route new]\ntype = sendgrid\n",
     {"warmup.conf:7: [route new] api_key_env: required"}},
    {BASE "[isp google]\nnew_share = lots\n",
     {"warmup.conf:11: [isp google] new_share: expected a share"}},
    {BASE "[isp google]\nnew_burst = 0\n", {"[isp google] new_burst: expected a number"}},
    {BASE "[isp google]\ndomains = gmail..com\n", {"[isp google] domains: expected a domain"}},
    {BASE "[isp google]\nadd_domains = g.example\ndomains = gmail.com\n",
     {"warmup.conf:12: [isp google] domains: must come before add_domains"}},
    {BASE "[isp google]\nmx = google.*\n",
     {"warmup.conf:11: [isp google] mx: expected an MX host"}},
    {BASE "[isp google]\nadd_mx = \n", {"[isp google] add_mx: expected a list of MX hosts"}},
    {BASE "[dns]\nservers = dns.example:53\n",
     {"warmup.conf:11: [dns] servers: expected DNS server addresses"}},
    {BASE "[dns]\nservers = 127.0.0.1:0\n", {"[dns] servers: expected DNS server addresses"}},
    {BASE "[dns]\nservers = [::1\n", {"[dns] servers: expected DNS server addresses"}},
    {BASE "[dns]\nmx = maybe\n", {"[dns] mx: expected on or off"}},
    {BASE "[dns]\nwait = soon\n", {"[dns] wait: expected a duration"}},
    {BASE "[dns]\ncache = 10\n", {"[dns] cache: expected a whole number from 100"}},
    {BASE "[dns]\ncolour = blue\n", {"warmup.conf:11: [dns] colour: unknown key"}},
    {BASE "[gate]\nconfidence = 101%\n", {"[gate] confidence: expected a confidence level"}},
    {BASE "[gate]\nresume = later\n", {"[gate] resume: expected next_day or manual"}},
    {BASE "[gate]\nbounce_warn = 6%\n",
     {"warmup.conf:11: [gate] bounce_warn: must not be above "
      "bounce_halt"}},
    {BASE "[gate]\nmin_sample = -1\n", {"[gate] min_sample: expected a whole number"}},
    {BASE "[backoff]\ncut = 0%\n", {"[backoff] cut: expected a percentage from 1% to 100%"}},
    {BASE "[backoff]\nretry_min = 2h\n", {"[backoff] retry_min: must not be above retry_max"}},
    {BASE "[log]\nlevel = verbose\n",
     {"warmup.conf:11: [log] level: expected error, warn, info "
      "or debug, got 'verbose'"}},
};

static void test_errors(void **state)
{
	struct fx *f = *state;
	static const char zero[sizeof(struct wu_conf)];

	put(f, "bad.csv", "day,cap\n1,10\n3,30\n", 0644);
	for (size_t i = 0; i < sizeof(bad_files) / sizeof(bad_files[0]); i++) {
		const struct bad *b = &bad_files[i];

		if (load(f, b->text, 0) == 0) {
			print_error("case %zu loaded:\n%s\n", i, b->text);
			fail();
		}
		for (int j = 0; j < 3 && b->want[j]; j++) {
			if (!strstr(f->err, b->want[j])) {
				print_error("case %zu: \"%s\" lacks \"%s\"\n", i, f->err,
				            b->want[j]);
				fail();
			}
		}
		/* Messages start with the file's name, as given. */
		assert_memory_equal(f->err, f->conf, strlen(f->conf));
		/* On error the struct is freed and zeroed. */
		assert_memory_equal(&f->c, zero, sizeof(zero));
	}
}

static void test_long_line(void **state)
{
	struct fx *f = *state;
	char text[600];

	snprintf(text, sizeof(text), "[warmup]\n[isp google]\ndomains = %0300d.com\n", 0);
	assert_int_equal(load(f, text, 0), -1);
	assert_err_has(f, "warmup.conf:3: line longer than");
}

static void test_missing_file(void **state)
{
	struct fx *f = *state;
	char path[PATH_MAX + 16];

	snprintf(path, sizeof(path), "%s/absent.conf", f->dir);
	assert_int_equal(wu_conf_load(&f->c, path, 0, f->err, sizeof(f->err)), -1);
	assert_err_has(f, "absent.conf: cannot read");
}

static void test_secret_from_env(void **state)
{
	struct fx *f = *state;

	if (load(f, BASE, 0) < 0)
		fail_msg("%s", f->err);
	assert_string_equal(f->c.route[WU_ROUTE_NEW].secret, SECRET_KEY);
	assert_string_equal(f->c.route[WU_ROUTE_NEW].secret_source, "env WU_TEST_KEY");
	wu_conf_free(&f->c);

	setenv("WU_TEST_EMPTY", "", 1);
	assert_int_equal(load(f,
	                      "[warmup]\nschedule = sched.csv\nstart = 2026-12-01\n"
	                      "overflow = defer\n[listen]\ntoken_env = WU_TEST_EMPTY\n"
	                      "[route new]\ntype = sendgrid\napi_key_env = WU_TEST_KEY\n",
	                      0),
	                 -1);
	assert_err_has(f, "warmup.conf:6: [listen] token_env: the secret from env WU_TEST_EMPTY is "
	                  "empty");
	unsetenv("WU_TEST_EMPTY");
}

static void test_secret_from_file(void **state)
{
	struct fx *f = *state;
	const char *conf = "[warmup]\nschedule = sched.csv\nstart = 2026-12-01\n"
	                   "overflow = defer\n[listen]\ntoken_file = secrets/token\n"
	                   "[route new]\ntype = sendgrid\napi_key_file = %s/key\n";
	char text[PATH_MAX + 256], path[PATH_MAX + 16];

	snprintf(path, sizeof(path), "%s/secrets", f->dir);
	assert_int_equal(mkdir(path, 0700), 0);
	put(f, "secrets/token", SECRET_TOK "\n", 0600); /* one newline is stripped */
	put(f, "key", SECRET_KEY, 0640);                /* group-readable is allowed */
	snprintf(text, sizeof(text), conf, f->dir);
	if (load(f, text, 0) < 0)
		fail_msg("%s", f->err);
	assert_string_equal(f->c.token, SECRET_TOK);
	assert_string_equal(f->c.route[WU_ROUTE_NEW].secret, SECRET_KEY);
	snprintf(path, sizeof(path), "file %s/key", f->dir);
	assert_string_equal(f->c.route[WU_ROUTE_NEW].secret_source, path);
	wu_conf_free(&f->c);

	/* CRLF from a Windows editor is one newline too. */
	put(f, "key", SECRET_KEY "\r\n", 0600);
	if (load(f, text, 0) < 0)
		fail_msg("%s", f->err);
	assert_string_equal(f->c.route[WU_ROUTE_NEW].secret, SECRET_KEY);
	wu_conf_free(&f->c);

	/* Readable by every user: refused, and the message says why. */
	put(f, "key", SECRET_KEY "\n", 0644);
	assert_int_equal(load(f, text, 0), -1);
	assert_err_has(f, "warmup.conf:9: [route new] api_key_file:");
	assert_err_has(f, "readable by every user");
	assert_null(strstr(f->err, SECRET_KEY));

	put(f, "key", "\n", 0600);
	assert_int_equal(load(f, text, 0), -1);
	assert_err_has(f, "[route new] api_key_file: the secret from file");
	assert_err_has(f, "is empty");

	put(f, "key", SECRET_KEY "\n\n", 0600);
	assert_int_equal(load(f, text, 0), -1);
	assert_err_has(f, "more than one line");
	assert_null(strstr(f->err, SECRET_KEY));

	snprintf(path, sizeof(path), "%s/key", f->dir);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(load(f, text, 0), -1);
	assert_err_has(f, "[route new] api_key_file: cannot read");
	assert_err_has(f, "No such file");
}

/* Secrets, or things that look like them, never reach a message. */
static void test_secret_never_in_errors(void **state)
{
	struct fx *f = *state;
	static const char *const files[] = {
	    BASE "password = " SECRET_PASS "\n",
	    BASE "api_key = " SECRET_KEY "\n",
	    BASE "api_key_env = " SECRET_KEY "\n",
	    "[route new]\ntype = sendgrid\napi_key_env = " SECRET_KEY "\n",
	    "[listen]\ntoken = " SECRET_TOK "\n",
	    "[listen]\ntoken_env = " SECRET_KEY "\n",
	    BASE "[route old]\ntype = smtp\nurl = smtp://r:25\nusername = u\n"
	         "secret = " SECRET_PASS "\n",
	    BASE "[route old]\ntype = smtp\nurl = smtp://r:25\nusername = u\n"
	         "password_file = pass\n",
	    BASE "[route old]\ntype = smtp\nurl = smtp://r:25\nusername = u\n"
	         "password_file = pass2\n",
	};

	put(f, "pass", SECRET_PASS "\n", 0604);          /* world-readable */
	put(f, "pass2", SECRET_PASS "\n\nmore\n", 0600); /* several lines */
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		assert_int_equal(load(f, files[i], 0), -1);
		if (strstr(f->err, "topsecret")) {
			print_error("case %zu leaks a secret: %s\n", i, f->err);
			fail();
		}
		assert_true(strlen(f->err) > strlen(f->conf) + 2);
	}
	/* The unknown key is named, with a hint where secrets go. */
	assert_int_equal(load(f, files[0], 0), -1);
	assert_err_has(f, "warmup.conf:10: [route new] password: unknown key (secrets go in");
}

static void test_relative_paths(void **state)
{
	struct fx *f = *state;
	char cwd[PATH_MAX], want[PATH_MAX + 64], sub[PATH_MAX + 16], rel[PATH_MAX + 16];

	snprintf(sub, sizeof(sub), "%s/etc", f->dir);
	assert_int_equal(mkdir(sub, 0755), 0);
	put(f, "etc/warmup.conf",
	    "[warmup]\nschedule = ../sched.csv\nstart = 2026-12-01\noverflow = defer\n"
	    "[listen]\nauth = none\n[store]\npath = data/warmup.db\n"
	    "[route new]\ntype = sendgrid\napi_key_file = key\n"
	    "[route old]\ntype = smtp\nurl = smtp://relay:25\nca_file = /dev/null\n",
	    0644);
	put(f, "etc/key", SECRET_KEY "\n", 0600);

	/* Load by a relative path: the directory still comes out absolute. */
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir(f->dir), 0);
	snprintf(rel, sizeof(rel), "etc/warmup.conf");
	if (wu_conf_load(&f->c, rel, 0, f->err, sizeof(f->err)) < 0) {
		assert_int_equal(chdir(cwd), 0);
		fail_msg("%s", f->err);
	}
	assert_int_equal(chdir(cwd), 0);

	assert_string_equal(f->c.path, "etc/warmup.conf");
	assert_true(f->c.dir[0] == '/');
	assert_non_null(realpath(sub, want));
	assert_string_equal(f->c.dir, want);
	snprintf(want, sizeof(want), "%s/../sched.csv", f->c.dir);
	assert_string_equal(f->c.schedule_path, want);
	snprintf(want, sizeof(want), "%s/data/warmup.db", f->c.dir);
	assert_string_equal(f->c.store_path, want);
	snprintf(want, sizeof(want), "file %s/key", f->c.dir);
	assert_string_equal(f->c.route[WU_ROUTE_NEW].secret_source, want);
	assert_string_equal(f->c.route[WU_ROUTE_NEW].secret, SECRET_KEY);
	/* Absolute paths stay as written. */
	assert_string_equal(f->c.route[WU_ROUTE_OLD].ca_file, "/dev/null");
}

static void test_values(void **state)
{
	struct fx *f = *state;

	if (load(f, BASE "[gate]\nconfidence = 90%\n", 0) < 0)
		fail_msg("%s", f->err);
	assert_near(f->c.core.gate.z, 1.645);
	wu_conf_free(&f->c);

	/* Any level goes through the inverse normal: 80% -> 1.2816. */
	if (load(f, BASE "[gate]\nconfidence = 80%\n", 0) < 0)
		fail_msg("%s", f->err);
	assert_true(fabs(f->c.core.gate.z - 1.2815516) < 1e-6);
	wu_conf_free(&f->c);

	if (load(f, BASE "[gate]\nconfidence = none\n[warmup]\nburst = day\n", 0) < 0)
		fail_msg("%s", f->err);
	assert_near(f->c.core.gate.z, 0);
	assert_true(f->c.core.burst == WU_BURST_DAY);
	wu_conf_free(&f->c);

	if (load(f, BASE "[listen]\naddress = [::1]:9000\n[log]\nlevel = warn\n", 0) < 0)
		fail_msg("%s", f->err);
	assert_string_equal(f->c.listen_host, "::1");
	assert_int_equal(f->c.listen_port, 9000);
	assert_int_equal(f->c.log_level, LOG_WARNING);
	wu_conf_free(&f->c);

	/* header_timeout = 0 turns it off; a duration is above 0. */
	if (load(f, BASE "[listen]\nheader_timeout = 0\n", 0) < 0)
		fail_msg("%s", f->err);
	assert_true(f->c.header_timeout == 0);
	wu_conf_free(&f->c);
	assert_int_equal(load(f, BASE "[listen]\nheader_timeout = 0s\n", 0), -1);
	assert_non_null(strstr(f->err, "[listen] header_timeout: expected a duration such as 10s, "
	                                "or 0 for none"));
	/* commit_every: 0 or 1 ms to 1 s. */
	if (load(f, BASE "[store]\ncommit_every = 0\n", 0) < 0)
		fail_msg("%s", f->err);
	assert_true(f->c.store_commit_every == 0);
	wu_conf_free(&f->c);
	if (load(f, BASE "[store]\ncommit_every = 2.5ms\n", 0) < 0)
		fail_msg("%s", f->err);
	assert_true(f->c.store_commit_every == 2500);
	wu_conf_free(&f->c);
	assert_int_equal(load(f, BASE "[store]\ncommit_every = 2s\n", 0), -1);
	assert_non_null(strstr(f->err, "[store] commit_every: expected a duration from 1ms to 1s, "
	                                "or 0 for none, got '2s'"));
	if (load(f, BASE "[warmup]\npace = even\n", 0) < 0)
		fail_msg("%s", f->err);
	assert_int_equal(f->c.core.pace, WU_PACE_EVEN);
	wu_conf_free(&f->c);
	assert_int_equal(load(f, BASE "[warmup]\npace = hourly\n", 0), -1);
	assert_non_null(strstr(f->err, "[warmup] pace: expected arrivals or even"));

	if (load(f, BASE "[listen]\naddress = localhost:8026\nmax_body = 512KB\n", 0) < 0)
		fail_msg("%s", f->err);
	assert_string_equal(f->c.listen_host, "127.0.0.1");
	assert_true(f->c.max_body == 512 * 1024);
	wu_conf_free(&f->c);

	/* The fake SendGrid server of the tests speaks plain HTTP on loopback;
	 * an explicit plaintext relay says tls = none. */
	if (load(f,
	         BASE "url = http://127.0.0.1:3030\n[route old]\ntype = smtp\n"
	              "url = smtp://127.0.0.1:2525\ntls = none\nx_smtpapi = on\nip_pool = p\n",
	         0) < 0)
		fail_msg("%s", f->err);
	assert_string_equal(f->c.route[WU_ROUTE_NEW].url, "http://127.0.0.1:3030");
	assert_int_equal(f->c.route[WU_ROUTE_OLD].tls, SND_TLS_NONE);
	assert_int_equal(f->c.route[WU_ROUTE_OLD].x_smtpapi, 1);
	wu_conf_free(&f->c);

	/* domains replaces a built-in group; add_domains extends it. */
	if (load(f,
	         BASE "[isp google]\ndomains = gmail.com\nadd_domains = example.org\n"
	              "add_domains = example.net\n",
	         0) < 0)
		fail_msg("%s", f->err);
	int g = wu_isp_find(&f->c.core.isps, "google");
	assert_int_equal(wu_isp_classify(&f->c.core.isps, "googlemail.com"), WU_ISP_OTHER);
	assert_int_equal(wu_isp_classify(&f->c.core.isps, "example.net"), g);
	assert_int_equal(wu_isp_classify(&f->c.core.isps, "example.org"), g);
	wu_conf_free(&f->c);

	/* [dns] and [isp NAME] mx: the defaults, then each key. */
	if (load(f, BASE, 0) < 0)
		fail_msg("%s", f->err);
	assert_int_equal(f->c.dns.mx, 1);
	assert_string_equal(f->c.dns.servers, "");
	assert_true(f->c.dns.wait == 2 * WU_USEC && f->c.dns.timeout == WU_USEC);
	assert_int_equal(f->c.dns.cache, 100000);
	wu_conf_free(&f->c);
	if (load(f,
	         BASE "[dns]\nmx = off\nservers = 127.0.0.1:5353, 192.0.2.1 [::1]:53,::1\n"
	              "wait = 0\ntimeout = 3s\ncache = 500\n"
	              "[isp corp]\nmx = mx.corp.example\nadd_mx = *.corp-mail.example\n"
	              "[isp google]\nmx = *.google.com\n",
	         0) < 0)
		fail_msg("%s", f->err);
	assert_int_equal(f->c.dns.mx, 0);
	assert_string_equal(f->c.dns.servers, "127.0.0.1:5353,192.0.2.1,[::1]:53,::1");
	assert_true(f->c.dns.wait == 0 && f->c.dns.timeout == 3 * WU_USEC);
	assert_int_equal(f->c.dns.cache, 500);
	g = wu_isp_find(&f->c.core.isps, "google");
	int corp = wu_isp_find(&f->c.core.isps, "corp");
	assert_int_equal(wu_isp_classify_mx(&f->c.core.isps, "mx.corp.example"), corp);
	assert_int_equal(wu_isp_classify_mx(&f->c.core.isps, "a.corp-mail.example"), corp);
	assert_int_equal(wu_isp_classify_mx(&f->c.core.isps, "aspmx.l.google.com"), g);
	/* mx replaced google's list: *.googlemail.com is gone. */
	assert_int_equal(wu_isp_classify_mx(&f->c.core.isps, "aspmx2.googlemail.com"),
	                 WU_ISP_OTHER);
}

/* The example shipped in tools/ must load, as the simulator reads it. */
static void test_example_file(void **state)
{
	struct fx *f = *state;
	const char *src = getenv("WU_SOURCE_ROOT");
	char path[PATH_MAX], sched[PATH_MAX + 64];

	if (!src)
		skip();
	snprintf(sched, sizeof(sched), "%s/schedules/seed-rollout.csv", src);
	if (access(sched, R_OK) < 0)
		skip(); /* the bundled schedule has not landed yet */
	snprintf(path, sizeof(path), "%s/tools/warmupd.conf", src);
	if (wu_conf_load(&f->c, path, WU_CONF_NO_SECRETS, f->err, sizeof(f->err)) < 0)
		fail_msg("%s", f->err);
	assert_true(f->c.core.schedule.ndays > 0);
	assert_int_equal(f->c.route[WU_ROUTE_NEW].type, SND_TYPE_SENDGRID);
	/* The example's [gate] is the method README.md describes and measures:
	 * the built-in pools and the observed rate. */
	struct wu_gate_conf g;
	wu_gate_conf_default(&g);
	assert_true(f->c.core.gate.min_sample == g.min_sample);
	assert_true(f->c.core.gate.pool_sample == g.pool_sample);
	assert_true(f->c.core.gate.complaint_min_sample == g.complaint_min_sample);
	assert_true(f->c.core.gate.complaint_pool_sample == g.complaint_pool_sample);
	assert_near(f->c.core.gate.z, g.z);
	assert_near(f->c.core.gate.bounce_halt, g.bounce_halt);
	assert_near(f->c.core.gate.complaint_halt, g.complaint_halt);
}

/* wu_conf_load_all reads on after an error: every bad line, every missing
 * secret, in the order found, and nothing said twice about one mistake. */
static void test_every_error(void **state)
{
	struct fx *f = *state;
	struct wu_conf_errors errs = {0};
	char text[1024];
	static const char *const want[] = {
	    "warmup.conf:2: [warmup] start: no such date",
	    "warmup.conf:3: expected [section], key = value or a comment",
	    "warmup.conf:4: line longer than",
	    "warmup.conf:5: unknown section '[bogus]'",
	    "warmup.conf:9: [listen] max_body: expected a size",
	    "warmup.conf:12: [route new] api_key_env: expected the name of an environment variable",
	    "warmup.conf:13: [route old] url: required for smtp",
	    "warmup.conf:16: [gate] bounce_warn: must not be above bounce_halt",
	    "warmup.conf:8: [listen] token_env: environment variable WU_TEST_UNSET is not set",
	};

	snprintf(text, sizeof(text),
	         "[warmup]\nstart = 2026-02-30\noops\n; %0300d\n[bogus]\nx = 1\n[listen]\n"
	         "token_env = WU_TEST_UNSET\nmax_body = lots\n[route new]\ntype = sendgrid\n"
	         "api_key_env = " SECRET_KEY "\n[route old]\ntype = smtp\n[gate]\n"
	         "bounce_warn = 9%%\n[warmup]\nschedule = sched.csv\n",
	         0);
	put(f, "warmup.conf", text, 0644);
	assert_int_equal(wu_conf_load_all(&f->c, f->conf, 0, &errs), -1);
	for (int i = 0; i < errs.n; i++)
		print_message("%s\n", errs.e[i].text);
	assert_int_equal(errs.n, (int)(sizeof(want) / sizeof(want[0])));
	for (int i = 0; i < errs.n; i++) {
		if (!strstr(errs.e[i].text, want[i]))
			fail_msg("error %d: \"%s\" lacks \"%s\"", i, errs.e[i].text, want[i]);
		assert_null(strstr(errs.e[i].text, SECRET_KEY));
	}
	/* Not "start: required" nor "schedule: required": those lines were bad. */
	wu_conf_errors_free(&errs);

	/* wu_conf_load keeps the first; WU_CONF_KEEP leaves what was read. */
	assert_int_equal(wu_conf_load(&f->c, f->conf, 0, f->err, sizeof(f->err)), -1);
	assert_err_has(f, want[0]);
	assert_int_equal(wu_conf_load_all(&f->c, f->conf, WU_CONF_KEEP, &errs), -1);
	assert_int_equal(f->c.route[WU_ROUTE_NEW].type, SND_TYPE_SENDGRID);
	assert_int_equal(f->c.listen_line, 0);
	wu_conf_free(&f->c);
	wu_conf_errors_free(&errs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_full_file, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_defaults_without_file, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_defaults_every_key, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_defer_rule_defaults, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_simulator, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_long_line, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_every_error, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_missing_file, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_secret_from_env, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_secret_from_file, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_secret_never_in_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_relative_paths, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_values, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_example_file, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
