/*
 * test_sendgrid.c -- the SendGrid v3 route and the curl/libuv glue, against
 * real local servers.
 *
 * DESCRIPTION
 *	Starts tests/sender/script_server.py (path in $SCRIPT_SERVER, interpreter
 *	in $PYTHON) on a free loopback port, scripts its answers over its
 *	control URLs, sends batches through snd_route_send() on a real libuv
 *	loop, and checks both the results and the requests the scripted recorded.
 *	When $FAKE_SENDGRID names the fake SendGrid server, a last group runs
 *	against it too.  Every wait is the loop running until a callback has
 *	fired, bounded by a watchdog timer; nothing sleeps.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "scheduler/core/wu.h"
#include "sender/sender.h"
#include "sender/sendgrid.h"

#define KEY         "SG.test-key.0123456789abcdef"
#define WATCHDOG_MS 10000

extern char **environ;

/* A helper server running as a child process. */
struct server {
	pid_t pid;
	int port;
	char dir[256];
	char portfile[300];
	char record[300];
};

static struct server scripted, fake;

/* State of one test: a loop, the multi handle, a route, what came back. */
struct fx {
	uv_loop_t loop;
	uv_timer_t watchdog;
	int expired;
	struct curluv *cu;
	struct snd_route *r;
	struct snd_route_conf conf;
	int ndone;
	int nresults;
	struct snd_result res[8];
	int accepted; /* units accepted, for tests with several batches */
	int in_send;  /* set around snd_route_send: the callback must not see it */
	int cb_in_send;
};

/* Reads a port number from a file; 0 when it is not there (yet). */
static int read_port(const char *path)
{
	FILE *f = fopen(path, "r");
	int port = 0;

	if (f == NULL)
		return 0;
	if (fscanf(f, "%d", &port) != 1)
		port = 0;
	fclose(f);
	return port;
}

/* Starts argv, then waits on inotify for it to write its port file. */
static int server_start(struct server *s, char *const argv[])
{
	int in, wd, port = 0, status;
	time_t deadline = time(NULL) + 20;

	in = inotify_init1(IN_CLOEXEC);
	if (in < 0)
		return -1;
	wd = inotify_add_watch(in, s->dir, IN_CLOSE_WRITE | IN_MOVED_TO);
	if (wd < 0 || posix_spawnp(&s->pid, argv[0], NULL, NULL, argv, environ) != 0) {
		close(in);
		return -1;
	}
	while ((port = read_port(s->portfile)) == 0) {
		struct pollfd p = {.fd = in, .events = POLLIN};
		char buf[4096];

		/* Woken by the file appearing; the bound only notices a dead child. */
		if (poll(&p, 1, 500) > 0 && read(in, buf, sizeof(buf)) < 0 && errno != EAGAIN)
			break;
		if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
			s->pid = 0;
			break;
		}
		if (time(NULL) > deadline)
			break;
	}
	close(in);
	s->port = port;
	return port > 0 ? 0 : -1;
}

/* Makes a private directory for a server's files. */
static void server_dir(struct server *s, const char *name)
{
	const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";

	snprintf(s->dir, sizeof(s->dir), "%s/wu-%s-XXXXXX", tmp, name);
	assert_non_null(mkdtemp(s->dir));
	snprintf(s->portfile, sizeof(s->portfile), "%s/port", s->dir);
	snprintf(s->record, sizeof(s->record), "%s/record.jsonl", s->dir);
}

/* Stops a server and removes its files. */
static void server_stop(struct server *s)
{
	int status;

	if (s->pid > 0) {
		kill(s->pid, SIGTERM);
		waitpid(s->pid, &status, 0);
		s->pid = 0;
	}
	if (s->dir[0] != '\0') {
		unlink(s->portfile);
		unlink(s->record);
		rmdir(s->dir);
		s->dir[0] = '\0';
	}
}

/* Collects a control answer. */
struct buf {
	char *p;
	size_t n;
};

/* CURLOPT_WRITEFUNCTION of control requests: grows the buffer. */
static size_t buf_write(char *d, size_t size, size_t n, void *arg)
{
	struct buf *b = arg;
	char *p = realloc(b->p, b->n + size * n + 1);

	if (p == NULL)
		return 0;
	memcpy(p + b->n, d, size * n);
	b->n += size * n;
	p[b->n] = '\0';
	b->p = p;
	return size * n;
}

/* A blocking control request to a helper server; returns its body (free it). */
static char *control(const struct server *s, const char *method, const char *path, const char *body)
{
	CURL *e = curl_easy_init();
	struct buf b = {0};
	char url[256];
	long code = 0;
	struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");

	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", s->port, path);
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
	if (body != NULL)
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, buf_write);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 10000L);
	assert_int_equal(curl_easy_perform(e), CURLE_OK);
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
	assert_true(code >= 200 && code < 300);
	curl_slist_free_all(h);
	curl_easy_cleanup(e);
	return b.p ? b.p : strdup("");
}

/* Posts a control request and drops the answer. */
static void control_post(const struct server *s, const char *path, const char *body)
{
	free(control(s, "POST", path, body));
}

/* The requests the scripted recorded, parsed. */
static cJSON *scripted_requests(void)
{
	char *t = control(&scripted, "GET", "/script/requests", NULL);
	cJSON *j = cJSON_Parse(t);

	free(t);
	assert_true(cJSON_IsArray(j));
	return j;
}

/* The string at key of object o, or "" when missing. */
static const char *str(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	return cJSON_IsString(v) ? v->valuestring : "";
}

/* The watchdog: ends run_until() when nothing else would. */
static void watchdog_cb(uv_timer_t *t)
{
	struct fx *f = t->data;

	f->expired = 1;
	uv_stop(&f->loop);
}

/* Runs the loop until *flag is set or the watchdog expires; returns *flag. */
static int run_until(struct fx *f, const int *flag)
{
	f->expired = 0;
	uv_timer_start(&f->watchdog, watchdog_cb, WATCHDOG_MS, 0);
	while (!*flag && !f->expired)
		uv_run(&f->loop, UV_RUN_ONCE);
	uv_timer_stop(&f->watchdog);
	return *flag;
}

/* The route's callback: keeps the results of the first batch reported. */
static void on_done(struct snd_batch *b, const struct snd_result *results, void *arg)
{
	struct fx *f = arg;
	int i;

	if (f->in_send)
		f->cb_in_send = 1;
	/* A callback run from the timer phase must not leave uv_run blocking. */
	uv_stop(&f->loop);
	if (f->ndone++ == 0) {
		f->nresults = b->nitems;
		for (i = 0; i < b->nitems && i < 8; i++)
			f->res[i] = results[i];
	}
}

/* A route conf for the scripted, as the config module would fill it. */
static void conf_for(struct snd_route_conf *c, int port)
{
	memset(c, 0, sizeof(*c));
	c->type = SND_TYPE_SENDGRID;
	snprintf(c->url, sizeof(c->url), "http://127.0.0.1:%d/", port);
	c->secret = KEY;
	snprintf(c->secret_source, sizeof(c->secret_source), "env SENDGRID_API_KEY");
	c->max_connections = 4;
	c->timeout = 5 * WU_USEC;
}

/* Each test: a fresh loop and multi handle, a reset scripted. */
static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_int_equal(uv_loop_init(&f->loop), 0);
	assert_int_equal(uv_timer_init(&f->loop, &f->watchdog), 0);
	f->watchdog.data = f;
	assert_int_equal(curluv_create(&f->cu, &f->loop), 0);
	conf_for(&f->conf, scripted.port);
	if (scripted.pid > 0)
		control_post(&scripted, "/script/reset", NULL);
	*state = f;
	return 0;
}

/* Frees the route and the multi handle; every uv handle must be closed. */
static int teardown(void **state)
{
	struct fx *f = *state;

	snd_route_free(f->r);
	curluv_destroy(f->cu);
	uv_close((uv_handle_t *)&f->watchdog, NULL);
	/* Again after a uv_stop() that no uv_run() has consumed yet. */
	while (uv_run(&f->loop, UV_RUN_DEFAULT) != 0)
		;
	assert_int_equal(uv_loop_close(&f->loop), 0);
	free(f);
	return 0;
}

/* Creates the route from f->conf. */
static void route(struct fx *f)
{
	char err[256] = "";

	assert_int_equal(snd_route_create(&f->r, &f->conf, f->cu, err, sizeof(err)), 0);
}

/* A stored body as the intake keeps it: everything but personalizations. */
static const char *content =
    "{\"from\":{\"email\":\"news@example.com\"},\"subject\":\"Hello\","
    "\"content\":[{\"type\":\"text/plain\",\"value\":\"hi\"}],"
    "\"categories\":[\"weekly\"],\"custom_args\":{\"campaign\":\"spring\"}}";

/* Three units of that content, for three ISPs. */
static struct snd_item items3[] = {
    {1, 0, "{\"to\":[{\"email\":\"a@gmail.com\"}]}"},
    {2, 1, "{\"to\":[{\"email\":\"b@yahoo.co.jp\"}]}"},
    {3, 0, "{\"to\":[{\"email\":\"c@example.org\"}],\"custom_args\":{\"n\":\"3\"}}"},
};

/* A batch of the three items above on route new, day 7. */
static struct snd_batch batch3(void)
{
	struct snd_batch b = {
	    .role = SND_ROLE_NEW,
	    .content_id = 42,
	    .content = content,
	    .msgid = "intake-1",
	    .warmup_day = 7,
	    .nitems = 3,
	    .items = items3,
	};
	return b;
}

/* Sends b and runs the loop until its callback fired. */
static void send_and_wait(struct fx *f, struct snd_batch *b)
{
	f->in_send = 1;
	assert_int_equal(snd_route_send(f->r, b, on_done, f), 0);
	f->in_send = 0;
	assert_true(run_until(f, &f->ndone));
	assert_int_equal(f->ndone, 1);
	assert_int_equal(f->cb_in_send, 0);
	assert_int_equal(snd_route_inflight(f->r), 0);
}

/* Three units become one request with three personalizations, in order. */
static void test_batch_one_request(void **state)
{
	struct fx *f = *state;
	struct snd_batch b = batch3();
	cJSON *reqs, *rq, *h, *body, *ps, *ca, *ts;
	int i;

	snprintf(f->conf.ip_pool, sizeof(f->conf.ip_pool), "warmup-pool");
	snprintf(f->conf.on_behalf_of, sizeof(f->conf.on_behalf_of), "subuser1");
	control_post(&scripted, "/script/script",
	             "[{\"status\":202,\"headers\":{\"X-Message-Id\":\"sg-abc123\"}}]");
	route(f);
	send_and_wait(f, &b);

	assert_int_equal(f->nresults, 3);
	for (i = 0; i < 3; i++) {
		assert_int_equal(f->res[i].status, SND_ACCEPTED);
		assert_int_equal(f->res[i].code, 202);
		assert_string_equal(f->res[i].provider_id, "sg-abc123");
	}

	reqs = scripted_requests();
	assert_int_equal(cJSON_GetArraySize(reqs), 1);
	rq = cJSON_GetArrayItem(reqs, 0);
	assert_string_equal(str(rq, "method"), "POST");
	assert_string_equal(str(rq, "path"), "/v3/mail/send");
	h = cJSON_GetObjectItem(rq, "headers");
	assert_string_equal(str(h, "authorization"), "Bearer " KEY);
	assert_string_equal(str(h, "content-type"), "application/json");
	assert_string_equal(str(h, "user-agent"), "warmup/0.1");
	assert_string_equal(str(h, "on-behalf-of"), "subuser1");

	body = cJSON_Parse(str(rq, "body"));
	assert_non_null(body);
	ps = cJSON_GetObjectItem(body, "personalizations");
	assert_int_equal(cJSON_GetArraySize(ps), 3);
	assert_string_equal(
	    str(cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetArrayItem(ps, 0), "to"), 0),
	        "email"),
	    "a@gmail.com");
	assert_string_equal(
	    str(cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetArrayItem(ps, 1), "to"), 0),
	        "email"),
	    "b@yahoo.co.jp");
	assert_string_equal(
	    str(cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetArrayItem(ps, 2), "to"), 0),
	        "email"),
	    "c@example.org");
	assert_string_equal(str(cJSON_GetObjectItem(cJSON_GetArrayItem(ps, 2), "custom_args"), "n"),
	                    "3");

	ca = cJSON_GetObjectItem(body, "custom_args");
	assert_string_equal(str(ca, "warmup_day"), "7");
	assert_string_equal(str(ca, "warmup_route"), "new");
	assert_string_equal(str(ca, "campaign"), "spring");

	ts = cJSON_GetObjectItem(body, "tracking_settings");
	assert_true(cJSON_IsFalse(
	    cJSON_GetObjectItem(cJSON_GetObjectItem(ts, "click_tracking"), "enable")));
	assert_true(
	    cJSON_IsFalse(cJSON_GetObjectItem(cJSON_GetObjectItem(ts, "open_tracking"), "enable")));
	assert_true(cJSON_IsFalse(
	    cJSON_GetObjectItem(cJSON_GetObjectItem(ts, "subscription_tracking"), "enable")));
	assert_string_equal(str(body, "ip_pool_name"), "warmup-pool");
	assert_string_equal(
	    cJSON_GetArrayItem(cJSON_GetObjectItem(body, "categories"), 0)->valuestring, "weekly");
	assert_string_equal(str(body, "subject"), "Hello");

	cJSON_Delete(body);
	cJSON_Delete(reqs);
}

/* The application's tracking enable wins over the route's default; with
 * force_tracking the route's wins.  Settings it did not give get the
 * route's. */
static void test_tracking_app_wins_unless_forced(void **state)
{
	static const char app[] =
	    "{\"from\":{\"email\":\"a@example.com\"},\"subject\":\"s\","
	    "\"content\":[{\"type\":\"text/plain\",\"value\":\"x\"}],"
	    "\"tracking_settings\":{\"click_tracking\":{\"enable\":true,"
	    "\"enable_text\":false},\"ganalytics\":{\"enable\":true}}}";
	struct snd_item it = {.unit_id = 1, .personalization = "{\"to\":[{\"email\":\"b@x.org\"}]}"};
	struct snd_batch b = {.role = SND_ROLE_NEW, .content = app, .nitems = 1, .items = &it};
	unsigned char skip[1] = {0};
	char err[128];

	(void)state;
	for (int force = 0; force <= 1; force++) {
		const struct sendgrid_opts o = {0, 1, 0, force, NULL};
		char *out = NULL;
		cJSON *body, *ts;

		assert_int_equal(sendgrid_body(&b, &o, skip, &out, err, sizeof(err)), 0);
		body = cJSON_Parse(out);
		ts = cJSON_GetObjectItem(body, "tracking_settings");
		assert_int_equal(cJSON_IsTrue(cJSON_GetObjectItem(
		                     cJSON_GetObjectItem(ts, "click_tracking"), "enable")),
		                 !force);
		assert_true(cJSON_IsFalse(
		    cJSON_GetObjectItem(cJSON_GetObjectItem(ts, "click_tracking"), "enable_text")));
		assert_true(cJSON_IsTrue(
		    cJSON_GetObjectItem(cJSON_GetObjectItem(ts, "open_tracking"), "enable")));
		assert_true(cJSON_IsFalse(
		    cJSON_GetObjectItem(cJSON_GetObjectItem(ts, "subscription_tracking"), "enable")));
		assert_true(cJSON_IsTrue(
		    cJSON_GetObjectItem(cJSON_GetObjectItem(ts, "ganalytics"), "enable")));
		cJSON_Delete(body);
		free(out);
	}
}

/* A message taken over SMTP is stored once: its stored v3 body has no
 * content or attachments, and the request gets them from the raw message
 * (an attachment's base64 too); a body that has its own keeps it.  A raw
 * message that no longer converts fails the batch with the reason. */
static void test_parts_from_raw(void **state)
{
	static const char raw[] =
	    "From: a@example.com\r\nTo: b@x.org\r\nSubject: s\r\nMIME-Version: 1.0\r\n"
	    "Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n"
	    "--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nthe text\r\n"
	    "--b1\r\nContent-Type: application/octet-stream; name=\"f.bin\"\r\n"
	    "Content-Disposition: attachment; filename=\"f.bin\"\r\n"
	    "Content-Transfer-Encoding: base64\r\n\r\nAAECAw==\r\n--b1--\r\n";
	static const char bad[] = "no header block at all";
	struct snd_item it = {.unit_id = 1, .personalization = "{\"to\":[{\"email\":\"b@x.org\"}]}"};
	struct snd_batch b = {.role = SND_ROLE_NEW,
	                      .content = "{\"from\":{\"email\":\"a@example.com\"},\"subject\":\"s\"}",
	                      .raw = raw,
	                      .raw_len = sizeof(raw) - 1,
	                      .mail_from = "a@example.com",
	                      .nitems = 1,
	                      .items = &it};
	const struct sendgrid_opts o = {0, 0, 0, 0, NULL};
	unsigned char skip[1] = {0};
	char err[256], *out = NULL;
	cJSON *body, *c, *a;

	(void)state;
	assert_int_equal(sendgrid_body(&b, &o, skip, &out, err, sizeof(err)), 0);
	body = cJSON_Parse(out);
	c = cJSON_GetArrayItem(cJSON_GetObjectItem(body, "content"), 0);
	assert_string_equal(cJSON_GetObjectItem(c, "type")->valuestring, "text/plain");
	assert_string_equal(cJSON_GetObjectItem(c, "value")->valuestring, "the text");
	a = cJSON_GetArrayItem(cJSON_GetObjectItem(body, "attachments"), 0);
	assert_string_equal(cJSON_GetObjectItem(a, "filename")->valuestring, "f.bin");
	assert_string_equal(cJSON_GetObjectItem(a, "content")->valuestring, "AAECAw==");
	cJSON_Delete(body);
	free(out);

	/* Its own content wins: the raw message is not looked at. */
	b.content = "{\"from\":{\"email\":\"a@example.com\"},\"subject\":\"s\","
	            "\"content\":[{\"type\":\"text/plain\",\"value\":\"stored\"}]}";
	assert_int_equal(sendgrid_body(&b, &o, skip, &out, err, sizeof(err)), 0);
	body = cJSON_Parse(out);
	c = cJSON_GetArrayItem(cJSON_GetObjectItem(body, "content"), 0);
	assert_string_equal(cJSON_GetObjectItem(c, "value")->valuestring, "stored");
	assert_null(cJSON_GetObjectItem(body, "attachments"));
	cJSON_Delete(body);
	free(out);

	b.content = "{\"from\":{\"email\":\"a@example.com\"},\"subject\":\"s\"}";
	b.raw = bad;
	b.raw_len = sizeof(bad) - 1;
	out = NULL;
	assert_int_equal(sendgrid_body(&b, &o, skip, &out, err, sizeof(err)), -1);
	assert_null(out);
	assert_non_null(strstr(err, "no longer converts"));
}

/* Tracking on in the config, route old: the body says so. */
static void test_tracking_on_route_old(void **state)
{
	struct fx *f = *state;
	struct snd_batch b = batch3();
	cJSON *reqs, *body, *ts;

	f->conf.click_tracking = 1;
	f->conf.open_tracking = 1;
	b.role = SND_ROLE_OLD;
	b.warmup_day = 12;
	route(f);
	send_and_wait(f, &b);
	assert_int_equal(f->res[0].status, SND_ACCEPTED);
	assert_int_equal(strncmp(f->res[0].provider_id, "scripted-", 5), 0);

	reqs = scripted_requests();
	body = cJSON_Parse(str(cJSON_GetArrayItem(reqs, 0), "body"));
	assert_string_equal(str(cJSON_GetObjectItem(body, "custom_args"), "warmup_route"), "old");
	assert_string_equal(str(cJSON_GetObjectItem(body, "custom_args"), "warmup_day"), "12");
	ts = cJSON_GetObjectItem(body, "tracking_settings");
	assert_true(
	    cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(ts, "click_tracking"), "enable")));
	assert_true(
	    cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(ts, "open_tracking"), "enable")));
	assert_true(cJSON_IsFalse(
	    cJSON_GetObjectItem(cJSON_GetObjectItem(ts, "subscription_tracking"), "enable")));
	assert_null(cJSON_GetObjectItem(body, "ip_pool_name"));
	assert_null(cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetArrayItem(reqs, 0), "headers"),
	                                "on-behalf-of"));
	cJSON_Delete(body);
	cJSON_Delete(reqs);
}

/* 429 with X-RateLimit-Reset: tempfail, wait until the reset. */
static void test_429_ratelimit_reset(void **state)
{
	struct fx *f = *state;
	struct snd_batch b = batch3();
	char script[256];

	snprintf(script, sizeof(script),
	         "[{\"status\":429,\"headers\":{\"X-RateLimit-Reset\":\"%lld\"},"
	         "\"body\":\"{\\\"errors\\\":[{\\\"message\\\":\\\"too many requests\\\"}]}\"}]",
	         (long long)time(NULL) + 30);
	control_post(&scripted, "/script/script", script);
	route(f);
	send_and_wait(f, &b);
	assert_int_equal(f->res[0].status, SND_TEMPFAIL);
	assert_int_equal(f->res[2].status, SND_TEMPFAIL);
	assert_int_equal(f->res[0].code, 429);
	assert_true(f->res[0].retry_after >= 28 * WU_USEC);
	assert_true(f->res[0].retry_after <= 30 * WU_USEC);
	assert_non_null(strstr(f->res[0].error, "too many requests"));
}

/* 429 with Retry-After only; a reset in the past still waits a second. */
static void test_429_retry_after(void **state)
{
	struct fx *f = *state;
	struct snd_batch b = batch3();

	control_post(&scripted, "/script/script",
	             "[{\"status\":429,\"headers\":{\"Retry-After\":\"5\"}},"
	             "{\"status\":429,\"headers\":{\"X-RateLimit-Reset\":\"1000\"}}]");
	route(f);
	send_and_wait(f, &b);
	assert_int_equal(f->res[0].status, SND_TEMPFAIL);
	assert_int_equal(f->res[0].retry_after, 5 * WU_USEC);

	f->ndone = 0;
	send_and_wait(f, &b);
	assert_int_equal(f->res[0].status, SND_TEMPFAIL);
	assert_int_equal(f->res[0].retry_after, 1 * WU_USEC);
}

/* 5xx: tempfail; a rate-limit reset on a 500 is no retry hint. */
static void test_500_tempfail(void **state)
{
	struct fx *f = *state;
	struct snd_batch b = batch3();

	control_post(&scripted, "/script/script",
	             "[{\"status\":500,\"body\":\"oops\","
	             "\"headers\":{\"X-RateLimit-Reset\":\"9999999999\"}},"
	             "{\"status\":503,\"headers\":{\"Retry-After\":\"7\"}}]");
	route(f);
	send_and_wait(f, &b);
	assert_int_equal(f->res[1].status, SND_TEMPFAIL);
	assert_int_equal(f->res[1].code, 500);
	assert_int_equal(f->res[1].retry_after, 0);
	assert_string_equal(f->res[1].error, "HTTP 500: oops");

	/* 503 with Retry-After: wait that long. */
	f->ndone = 0;
	send_and_wait(f, &b);
	assert_int_equal(f->res[0].status, SND_TEMPFAIL);
	assert_int_equal(f->res[0].code, 503);
	assert_int_equal(f->res[0].retry_after, 7 * WU_USEC);
}

/* 400 with SendGrid's error body: permfail carrying its first message. */
static void test_400_permfail(void **state)
{
	struct fx *f = *state;
	struct snd_batch b = batch3();

	control_post(
	    &scripted, "/script/script",
	    "[{\"status\":400,\"body\":\"{\\\"errors\\\":[{\\\"message\\\":"
	    "\\\"The from address does not match a verified Sender Identity.\\\","
	    "\\\"field\\\":\\\"from\\\",\\\"help\\\":null},{\\\"message\\\":\\\"second\\\"}]}\"},"
	    "{\"status\":413,\"body\":\"\"}]");
	route(f);
	send_and_wait(f, &b);
	assert_int_equal(f->res[0].status, SND_PERMFAIL);
	assert_int_equal(f->res[0].code, 400);
	assert_string_equal(
	    f->res[0].error,
	    "HTTP 400: The from address does not match a verified Sender Identity. (field from)");

	f->ndone = 0;
	send_and_wait(f, &b);
	assert_int_equal(f->res[0].status, SND_PERMFAIL);
	assert_int_equal(f->res[0].code, 413);
	assert_string_equal(f->res[0].error, "HTTP 413");
}

/* 401 and 403: authfail, and the key never shows, even when echoed. */
static void test_401_403_authfail(void **state)
{
	struct fx *f = *state;
	struct snd_batch b = batch3();

	control_post(&scripted, "/script/script",
	             "[{\"status\":401,\"body\":\"{\\\"errors\\\":[{\\\"message\\\":"
	             "\\\"The provided authorization grant is invalid: " KEY "\\\"}]}\"},"
	             "{\"status\":403,\"body\":\"forbidden\"},{\"status\":404}]");
	route(f);
	send_and_wait(f, &b);
	assert_int_equal(f->res[0].status, SND_AUTHFAIL);
	assert_int_equal(f->res[0].code, 401);
	assert_non_null(strstr(f->res[0].error, "authorization grant is invalid"));
	assert_null(strstr(f->res[0].error, KEY));
	assert_null(strstr(f->res[0].error, "0123456789abcdef"));

	f->ndone = 0;
	send_and_wait(f, &b);
	assert_int_equal(f->res[0].status, SND_AUTHFAIL);
	assert_int_equal(f->res[0].code, 403);

	/* A wrong url pauses the route rather than dropping the mail. */
	f->ndone = 0;
	send_and_wait(f, &b);
	assert_int_equal(f->res[0].status, SND_AUTHFAIL);
	assert_int_equal(f->res[0].code, 404);
}

/* A server that never answers: timeout once conf.timeout has passed. */
static void test_stall_timeout(void **state)
{
	struct fx *f = *state;
	struct snd_batch b = batch3();

	f->conf.timeout = 300 * 1000; /* 300 ms, in microseconds */
	control_post(&scripted, "/script/script", "[{\"stall\":true}]");
	route(f);
	send_and_wait(f, &b);
	assert_int_equal(f->res[0].status, SND_TIMEOUT);
	assert_int_equal(f->res[0].code, 0);
	assert_non_null(strstr(f->res[0].error, "within 300 ms"));
}

/* A loopback TCP socket; listening or not.  Returns fd, port in *port. */
static int loopback_socket(int do_listen, int *port)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	if (do_listen)
		assert_int_equal(listen(fd, 8), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	*port = ntohs(a.sin_port);
	return fd;
}

/* The server reads the whole request, then resets the connection without an
 * answer: it may have taken the mail, so the result is a timeout (the units
 * stay counted), never a tempfail that would give them back to the cap. */
static void test_reset_after_request_is_unknown(void **state)
{
	struct fx *f = *state;
	struct snd_batch b = batch3();

	control_post(&scripted, "/script/script", "[{\"reset\":true}]");
	route(f);
	send_and_wait(f, &b);
	assert_int_equal(f->res[0].status, SND_TIMEOUT);
	assert_int_equal(f->res[0].code, 0);
	assert_non_null(strstr(f->res[0].error, "may have been taken"));
}

/* Freeing the route aborts a request the server has read whole and not
 * answered: it may have been taken, so a timeout, not a tempfail. */
static void test_abort_after_request_is_unknown(void **state)
{
	struct fx *f = *state;
	struct snd_batch b = batch3();
	int n = 0;

	control_post(&scripted, "/script/script", "[{\"stall\":true}]");
	route(f);
	assert_int_equal(snd_route_send(f->r, &b, on_done, f), 0);
	for (int i = 0; i < 2000 && n == 0; i++) {
		cJSON *j;

		uv_run(&f->loop, UV_RUN_NOWAIT);
		j = scripted_requests();
		n = cJSON_GetArraySize(j);
		cJSON_Delete(j);
	}
	assert_int_equal(n, 1);
	snd_route_free(f->r);
	f->r = NULL;
	assert_int_equal(f->ndone, 1);
	assert_int_equal(f->res[0].status, SND_TIMEOUT);
	assert_non_null(strstr(f->res[0].error, "aborted after the whole request"));
	control_post(&scripted, "/script/reset", NULL);
}

/* Nobody listens: a refused connection is a tempfail. */
static void test_refused_tempfail(void **state)
{
	struct fx *f = *state;
	struct snd_batch b = batch3();
	int port, fd = loopback_socket(0, &port); /* bound, so the port stays ours */

	conf_for(&f->conf, port);
	route(f);
	send_and_wait(f, &b);
	assert_int_equal(f->res[0].status, SND_TEMPFAIL);
	assert_int_equal(f->res[0].code, 0);
	assert_non_null(strstr(f->res[0].error, "onnect"));
	close(fd);
}

/* Capacity: max_connections requests at once, then -1 without a callback;
 * freeing the route aborts the one running, reported once. */
static void test_capacity_and_free(void **state)
{
	struct fx *f = *state;
	struct snd_batch b = batch3();
	char err[256];

	f->conf.max_connections = 1;
	f->conf.batch = 50;
	control_post(&scripted, "/script/script", "[{\"stall\":true}]");
	route(f);
	assert_int_equal(snd_route_capacity(f->r), 1);
	assert_int_equal(snd_route_batch_max(f->r), 50);
	assert_int_equal(snd_route_send(f->r, &b, on_done, f), 0);
	assert_int_equal(snd_route_inflight(f->r), 1);
	assert_int_equal(snd_route_send(f->r, &b, on_done, f), -1);
	assert_int_equal(curluv_running(f->cu), 1);

	snd_route_free(f->r); /* before the loop ran: nothing went out */
	f->r = NULL;
	assert_int_equal(f->ndone, 1);
	assert_int_equal(f->res[0].status, SND_TEMPFAIL);
	assert_non_null(strstr(f->res[0].error, "aborted"));
	assert_int_equal(curluv_running(f->cu), 0);

	/* Defaults: batch 1000, 8 connections. */
	f->conf.max_connections = 0;
	f->conf.batch = 0;
	assert_int_equal(snd_route_create(&f->r, &f->conf, f->cu, err, sizeof(err)), 0);
	assert_int_equal(snd_route_batch_max(f->r), 1000);
	assert_int_equal(snd_route_capacity(f->r), 8);
}

/* A transfer added to curluv directly, and the silent server it talks to. */
struct raw {
	int ndone;
	CURLcode result;
	struct fx *f;
	uv_poll_t poll;
};

/* done callback of a raw transfer. */
static void raw_done(CURL *easy, CURLcode result, void *arg)
{
	struct raw *w = arg;

	w->ndone++;
	w->result = result;
	uv_stop(&w->f->loop);
	curl_easy_cleanup(easy);
}

/* The silent server got its connection: destroy with the transfer running. */
static void raw_on_accept(uv_poll_t *p, int status, int events)
{
	struct raw *w = p->data;

	(void)status;
	(void)events;
	uv_poll_stop(p);
	assert_int_equal(curluv_running(w->f->cu), 1);
	curluv_destroy(w->f->cu);
	w->f->cu = NULL;
}

/* curluv_destroy with a transfer connected and waiting: done once, aborted. */
static void test_curluv_destroy_running(void **state)
{
	struct fx *f = *state;
	struct raw w = {.f = f};
	int port, fd = loopback_socket(1, &port);
	char url[64];
	CURL *e = curl_easy_init();

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", port);
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 60000L);
	assert_int_equal(uv_poll_init_socket(&f->loop, &w.poll, fd), 0);
	w.poll.data = &w;
	assert_int_equal(uv_poll_start(&w.poll, UV_READABLE, raw_on_accept), 0);
	assert_int_equal(curluv_add(f->cu, e, raw_done, &w), 0);

	assert_true(run_until(f, &w.ndone));
	assert_int_equal(w.ndone, 1);
	assert_int_equal(w.result, CURLE_ABORTED_BY_CALLBACK);

	uv_close((uv_handle_t *)&w.poll, NULL);
	/* Let the close callbacks free everything: nothing may fire again. */
	while (uv_run(&f->loop, UV_RUN_DEFAULT) != 0) /* the stopped watchdog does not count */
		;
	assert_int_equal(w.ndone, 1);
	close(fd);
}

/* The silent server got the route's connection: destroy the multi handle. */
static void route_on_accept(uv_poll_t *p, int status, int events)
{
	struct fx *f = p->data;

	(void)status;
	(void)events;
	uv_poll_stop(p);
	curluv_destroy(f->cu);
	f->cu = NULL;
}

/* A route's request running when the multi handle goes: one abort. */
static void test_route_destroy_running(void **state)
{
	struct fx *f = *state;
	struct snd_batch b = batch3();
	int port, fd = loopback_socket(1, &port);
	uv_poll_t p;

	conf_for(&f->conf, port);
	route(f);
	assert_int_equal(uv_poll_init_socket(&f->loop, &p, fd), 0);
	p.data = f;
	assert_int_equal(uv_poll_start(&p, UV_READABLE, route_on_accept), 0);
	assert_int_equal(snd_route_send(f->r, &b, on_done, f), 0);
	assert_true(run_until(f, &f->ndone));
	assert_int_equal(f->ndone, 1);
	assert_int_equal(f->nresults, 3);
	assert_int_equal(f->res[2].status, SND_TEMPFAIL);
	assert_non_null(strstr(f->res[2].error, "aborted"));
	assert_int_equal(snd_route_inflight(f->r), 0);
	uv_close((uv_handle_t *)&p, NULL);
	uv_run(&f->loop, UV_RUN_NOWAIT);
	assert_int_equal(f->ndone, 1);
	close(fd);
}

/* A unit whose personalization is not JSON fails alone; the rest are sent. */
static void test_bad_personalization(void **state)
{
	struct fx *f = *state;
	struct snd_item it[3] = {items3[0], {9, 0, "{not json"}, items3[2]};
	struct snd_batch b = batch3();
	cJSON *reqs, *body;

	b.items = it;
	route(f);
	send_and_wait(f, &b);
	assert_int_equal(f->res[0].status, SND_ACCEPTED);
	assert_int_equal(f->res[1].status, SND_PERMFAIL);
	assert_non_null(strstr(f->res[1].error, "unit 9"));
	assert_int_equal(f->res[2].status, SND_ACCEPTED);
	reqs = scripted_requests();
	body = cJSON_Parse(str(cJSON_GetArrayItem(reqs, 0), "body"));
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(body, "personalizations")), 2);
	cJSON_Delete(body);
	cJSON_Delete(reqs);
}

/* A content that is not JSON: permfail for all, from the loop, no request. */
static void test_bad_content(void **state)
{
	struct fx *f = *state;
	struct snd_batch b = batch3();
	cJSON *reqs;

	b.content = "[1,2";
	route(f);
	send_and_wait(f, &b);
	assert_int_equal(f->res[0].status, SND_PERMFAIL);
	assert_int_equal(f->res[2].status, SND_PERMFAIL);
	assert_non_null(strstr(f->res[0].error, "content 42"));
	reqs = scripted_requests();
	assert_int_equal(cJSON_GetArraySize(reqs), 0);
	cJSON_Delete(reqs);
}

/* Several batches at once share the multi handle and all come back. */
static void on_done_count(struct snd_batch *b, const struct snd_result *results, void *arg)
{
	struct fx *f = arg;
	int i;

	for (i = 0; i < b->nitems; i++)
		if (results[i].status == SND_ACCEPTED)
			f->accepted++;
	uv_stop(&f->loop);
}

static void test_concurrent_batches(void **state)
{
	struct fx *f = *state;
	struct snd_batch b[4];
	int i, want = 12;

	route(f);
	for (i = 0; i < 4; i++) {
		b[i] = batch3();
		assert_int_equal(snd_route_send(f->r, &b[i], on_done_count, f), 0);
	}
	assert_int_equal(snd_route_send(f->r, &b[0], on_done_count, f), -1);
	f->expired = 0;
	uv_timer_start(&f->watchdog, watchdog_cb, WATCHDOG_MS, 0);
	while (f->accepted < want && !f->expired)
		uv_run(&f->loop, UV_RUN_ONCE);
	uv_timer_stop(&f->watchdog);
	assert_int_equal(f->accepted, want);
	assert_int_equal(snd_route_inflight(f->r), 0);
}

/* Config errors and the status names. */
static void test_create_errors(void **state)
{
	struct fx *f = *state;
	struct snd_route_conf c;
	char err[256];

	c = f->conf;
	c.type = SND_TYPE_SMTP;
	/* An SMTP route refuses the v3 route's http:// url, saying what it wants. */
	assert_int_equal(snd_route_create(&f->r, &c, f->cu, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "smtp://HOST:PORT"));
	assert_null(f->r);

	c = f->conf;
	c.secret = NULL;
	assert_int_equal(snd_route_create(&f->r, &c, f->cu, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "env SENDGRID_API_KEY"));

	c = f->conf;
	c.secret = "SG.abc\r\nX-Evil: 1";
	assert_int_equal(snd_route_create(&f->r, &c, f->cu, err, sizeof(err)), -1);
	assert_null(strstr(err, "SG.abc"));

	c = f->conf;
	snprintf(c.url, sizeof(c.url), "ftp://127.0.0.1/");
	assert_int_equal(snd_route_create(&f->r, &c, f->cu, err, sizeof(err)), -1);

	assert_string_equal(snd_status_name(SND_ACCEPTED), "accepted");
	assert_string_equal(snd_status_name(SND_TEMPFAIL), "tempfail");
	assert_string_equal(snd_status_name(SND_TIMEOUT), "timeout");
	assert_string_equal(snd_status_name(SND_PERMFAIL), "permfail");
	assert_string_equal(snd_status_name(SND_AUTHFAIL), "authfail");
}

/* Starts the scripted once for the whole group. */
static int group_setup(void **state)
{
	const char *py = getenv("PYTHON") ? getenv("PYTHON") : "/usr/bin/python3";
	const char *script = getenv("SCRIPT_SERVER");
	char *argv[5];

	(void)state;
	if (script == NULL) {
		fprintf(stderr, "SCRIPT_SERVER is not set\n");
		return -1;
	}
	server_dir(&scripted, "scripted");
	argv[0] = (char *)py;
	argv[1] = (char *)script;
	argv[2] = "--port-file";
	argv[3] = scripted.portfile;
	argv[4] = NULL;
	if (server_start(&scripted, argv) < 0) {
		fprintf(stderr, "the scripted server did not start\n");
		server_stop(&scripted);
		return -1;
	}
	return 0;
}

/* Stops the scripted after the group. */
static int group_teardown(void **state)
{
	(void)state;
	server_stop(&scripted);
	return 0;
}

/* --- against tools/fake-sendgrid, when it is built --- */

/* fake-sendgrid takes the batch and says so in its record file. */
static void test_fake_accepts_and_records(void **state)
{
	struct fx *f = *state;
	struct snd_batch b = batch3();
	char line[65536];
	FILE *rec;
	int found = 0;

	if (fake.pid <= 0)
		skip();
	conf_for(&f->conf, fake.port);
	route(f);
	send_and_wait(f, &b);
	assert_int_equal(f->res[0].status, SND_ACCEPTED);
	assert_int_equal(f->res[0].code, 202);
	assert_true(f->res[0].provider_id[0] != '\0');
	assert_string_equal(f->res[1].provider_id, f->res[0].provider_id);

	rec = fopen(fake.record, "r");
	assert_non_null(rec);
	while (fgets(line, sizeof(line), rec) != NULL)
		if (strstr(line, "c@example.org") && strstr(line, "warmup_day"))
			found = 1;
	fclose(rec);
	assert_true(found);
}

/* A wrong key is an authfail at fake-sendgrid as at SendGrid. */
static void test_fake_wrong_key(void **state)
{
	struct fx *f = *state;
	struct snd_batch b = batch3();

	if (fake.pid <= 0)
		skip();
	conf_for(&f->conf, fake.port);
	f->conf.secret = "SG.not-the-key";
	route(f);
	send_and_wait(f, &b);
	assert_int_equal(f->res[0].status, SND_AUTHFAIL);
	assert_int_equal(f->res[0].code, 401);
	assert_null(strstr(f->res[0].error, "SG.not-the-key"));
}

/* Injected 429s and 500s come back as tempfails. */
static void test_fake_faults(void **state)
{
	struct fx *f = *state;
	struct snd_batch b = batch3();

	if (fake.pid <= 0)
		skip();
	conf_for(&f->conf, fake.port);
	route(f);
	control_post(&fake, "/fake/faults", "{\"rate_429\":1.0,\"rate_500\":0}");
	send_and_wait(f, &b);
	assert_int_equal(f->res[0].status, SND_TEMPFAIL);
	assert_int_equal(f->res[0].code, 429);
	assert_true(f->res[0].retry_after >= 1 * WU_USEC && f->res[0].retry_after <= 2 * WU_USEC);

	control_post(&fake, "/fake/faults", "{\"rate_429\":0,\"rate_500\":1.0}");
	f->ndone = 0;
	send_and_wait(f, &b);
	assert_int_equal(f->res[0].status, SND_TEMPFAIL);
	assert_true(f->res[0].code >= 500);

	control_post(&fake, "/fake/faults", "{\"rate_429\":0,\"rate_500\":0}");
	f->ndone = 0;
	send_and_wait(f, &b);
	assert_int_equal(f->res[0].status, SND_ACCEPTED);
}

/* A slow answer is a timeout; a dropped connection a tempfail. */
static void test_fake_slow_and_drop(void **state)
{
	struct fx *f = *state;
	struct snd_batch b = batch3();

	if (fake.pid <= 0)
		skip();
	conf_for(&f->conf, fake.port);
	f->conf.timeout = 300 * 1000;
	route(f);
	control_post(&fake, "/fake/faults", "{\"slow_rate\":1.0,\"slow_ms\":2000}");
	send_and_wait(f, &b);
	assert_int_equal(f->res[0].status, SND_TIMEOUT);

	/* The fake drops the connection once it has the whole request: the
	 * route cannot tell that from SendGrid taking it, so a timeout (the
	 * units stay counted), and curl does not send it a second time. */
	control_post(&fake, "/fake/faults", "{\"slow_rate\":0,\"drop_rate\":1.0}");
	f->ndone = 0;
	send_and_wait(f, &b);
	control_post(&fake, "/fake/faults", "{\"drop_rate\":0}");
	assert_int_equal(f->res[0].status, SND_TIMEOUT);
	assert_int_equal(f->res[0].code, 0);
}

/* A body SendGrid would refuse: permfail with the fake's reason. */
static void test_fake_invalid_body(void **state)
{
	struct fx *f = *state;
	struct snd_batch b = batch3();

	if (fake.pid <= 0)
		skip();
	b.content = "{\"subject\":\"no sender\",\"content\":[{\"type\":\"text/plain\","
	            "\"value\":\"hi\"}]}";
	conf_for(&f->conf, fake.port);
	route(f);
	send_and_wait(f, &b);
	assert_int_equal(f->res[0].status, SND_PERMFAIL);
	assert_int_equal(f->res[0].code, 400);
	assert_non_null(strstr(f->res[0].error, "HTTP 400: "));
}

/* Starts fake-sendgrid when it is built; otherwise its tests skip. */
static int fake_setup(void **state)
{
	const char *exe = getenv("FAKE_SENDGRID");
	char *argv[10];

	(void)state;
	if (exe == NULL || access(exe, X_OK) != 0)
		return 0; /* not built: the group's tests skip */
	server_dir(&fake, "fake");
	argv[0] = (char *)exe;
	argv[1] = "--listen";
	argv[2] = "127.0.0.1:0";
	argv[3] = "--port-file";
	argv[4] = fake.portfile;
	argv[5] = "--key";
	argv[6] = KEY;
	argv[7] = "--record";
	argv[8] = fake.record;
	argv[9] = NULL;
	if (server_start(&fake, argv) < 0) {
		fprintf(stderr, "fake-sendgrid did not start\n");
		server_stop(&fake);
		return -1;
	}
	return 0;
}

/* Stops fake-sendgrid. */
static int fake_teardown(void **state)
{
	(void)state;
	server_stop(&fake);
	return 0;
}

/* Two groups: the scripted scripted, then fake-sendgrid. */
int main(void)
{
	const struct CMUnitTest scripted_tests[] = {
	    cmocka_unit_test_setup_teardown(test_batch_one_request, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tracking_on_route_old, setup, teardown),
	    cmocka_unit_test(test_tracking_app_wins_unless_forced),
	    cmocka_unit_test_setup_teardown(test_429_ratelimit_reset, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_429_retry_after, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_500_tempfail, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_400_permfail, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_401_403_authfail, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_stall_timeout, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_refused_tempfail, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reset_after_request_is_unknown, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_abort_after_request_is_unknown, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_capacity_and_free, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_curluv_destroy_running, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_route_destroy_running, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_personalization, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_content, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_concurrent_batches, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_create_errors, setup, teardown),
	};
	const struct CMUnitTest fake_tests[] = {
	    cmocka_unit_test_setup_teardown(test_fake_accepts_and_records, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_fake_wrong_key, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_fake_faults, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_fake_slow_and_drop, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_fake_invalid_body, setup, teardown),
	    cmocka_unit_test(test_parts_from_raw),
	};
	int failed;

	signal(SIGPIPE, SIG_IGN);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	failed =
	    cmocka_run_group_tests_name("sendgrid-scripted", scripted_tests, group_setup, group_teardown);
	failed +=
	    cmocka_run_group_tests_name("sendgrid-fake", fake_tests, fake_setup, fake_teardown);
	curl_global_cleanup();
	return failed ? 1 : 0;
}
