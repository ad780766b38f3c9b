/*
 * NAME
 *	fake-sendgrid -- a local stand-in for SendGrid's Web API v3 mail send
 *
 * SYNOPSIS
 *	fake-sendgrid --key-env SENDGRID_API_KEY [--listen 127.0.0.1:PORT]
 *		[--record FILE] [--port-file FILE] [--seed N]
 *		[--rate-429 P] [--rate-500 P] [--rate-400 P] [--drop-rate P]
 *		[--accept-drop-rate P]
 *		[--slow-rate P --slow-ms N] [--allow-nonlocal]
 *		[--events-url URL | --events-port-file FILE]
 *		[--events-key-file PEM] [--events-batch N]
 *		 [--bounce-rate P] [--spam-rate P] [--defer-rate P]
 *		 [--defer-response TEXT]]
 *
 * DESCRIPTION
 *	Answers POST /v3/mail/send the way SendGrid does: bearer key, JSON
 *	content type, the 30 MB body limit and the body rules of v3mail.c,
 *	then 202 with an X-Message-Id.  Every accepted request is appended
 *	to the record file as one JSON line, so tests can read what would
 *	have gone out.
 *
 *	Faults (429, 500, slow answers, dropped connections) are drawn from
 *	one seeded generator, so a run with --seed is repeatable request by
 *	request.  An accept-then-drop fault (--accept-drop-rate) takes a
 *	valid request -- records and counts it as accepted -- and then closes
 *	the connection instead of answering 202: the client cannot know
 *	the mail went out.  Its draws come from a generator of their own, so
 *	turning it on leaves the other faults' draws unchanged.  Every record
 *	line carries "started", when the request's headers arrived, next to
 *	"time", when it was recorded (a slow answer is recorded late).
 *	POST /fake/faults changes them at run time and GET
 *	/fake/stats counts what happened; /fake/ needs no key, which is why
 *	only loopback addresses are allowed unless --allow-nonlocal says so.
 *
 *	One thread per connection: a slow answer delays only its own
 *	connection, as it would on the real service.
 *
 *	With --events-url, every accepted recipient also gets the events
 *	SendGrid's Event Webhook would report (processed, then delivered,
 *	bounce, deferred and delivered, or delivered and spamreport, drawn
 *	with the given rates), posted in batches from a worker thread with
 *	libcurl; --events-key-file signs them as SendGrid does.
 *
 * DIAGNOSTICS
 *	One line per request on stderr: method, path, status and the
 *	number of personalizations.  The key is never printed.  Exit status
 *	is 0 after SIGTERM or SIGINT, 1 on a startup error, 2 on bad usage.
 */
#include "scheduler/core/rng.h"
#include "sender/json_strict.h"
#include "sender/strbuf.h"
#include "sender/v3mail.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <microhttpd.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* SendGrid: "The total size of your email, including attachments, must be
 * less than 30MB."  A body of MAX_BODY bytes or more is refused. */
#define MAX_BODY         (30u * 1024u * 1024u)
#define MAX_CONTROL_BODY (64u * 1024u)
/* Past this much unread upload we stop listening and close. */
#define MAX_DISCARD    (2u * MAX_BODY)
#define MESSAGE_ID_LEN 22
#define RATE_LIMIT     600

struct faults {
	double rate_429;
	double rate_500;
	double slow_rate;
	double drop_rate;
	double accept_drop_rate; /* record and count as accepted, then close */
	double rate_400;         /* a valid request refused for good, 400 */
	long slow_ms;
};

struct stats {
	unsigned long requests;
	unsigned long accepted;
	unsigned long personalizations;
	unsigned long rejected_400;
	unsigned long rejected_401;
	unsigned long rejected_413;
	unsigned long rejected_415;
	unsigned long throttled_429;
	unsigned long failed_500;
	unsigned long dropped;
	unsigned long slowed;
	unsigned long accept_dropped; /* in accepted too: recorded, then closed */
};

struct server {
	pthread_mutex_t lock; /* guards faults, stats, rng and record */
	struct faults faults;
	struct stats stats;
	struct wu_rng rng;
	struct wu_rng rng_accept_drop; /* its own stream: the others stay repeatable */
	struct wu_rng rng_400;         /* likewise */
	char *key;
	size_t key_len;
	FILE *record;
};

enum route { ROUTE_OTHER, ROUTE_MAIL, ROUTE_FAULTS, ROUTE_STATS };

/* Per-connection request state, freed by request_done(). */
struct req {
	enum route route;
	struct strbuf body; /* the upload, below limit */
	size_t seen;    /* upload bytes received, kept or not */
	size_t limit;   /* bodies of this size or more are refused */
	int status;     /* decided from the headers alone, or 0 */
	double started; /* wall-clock time the headers arrived */
};

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Parses a probability: "0.25" or "25%". */
static int parse_rate(const char *s, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s)
		return -1;
	if (*end == '%') {
		v /= 100.0;
		end++;
	}
	if (*end || !(v >= 0.0 && v <= 1.0))
		return -1;
	*out = v;
	return 0;
}

/* Parses a non-negative whole number of milliseconds (at most a minute:
 * a longer delay only makes the caller's own timeout the thing tested). */
static int parse_ms(const char *s, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < 0 || v > 60000)
		return -1;
	*out = v;
	return 0;
}

/* Wall-clock time as a double, for record lines and rate-limit resets. */
static double now_real(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Sleeps ms milliseconds, resuming after signals. */
static void sleep_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* libcurl write callback: the webhook's answer body is not needed. */
static size_t discard(char *p, size_t size, size_t n, void *user)
{
	(void)p;
	(void)user;
	return size * n;
}

/* ---- events back to a webhook (--events-url) ------------------------------ */

/*
 * After a send is accepted, the events SendGrid would post about each
 * recipient are queued here, and one worker thread posts them in batches to
 * the --events-url the way SendGrid's Event Webhook does: a JSON array, the
 * custom arguments as top-level keys, and with --events-key-file an ECDSA
 * signature over the timestamp header followed by the body.
 */
struct events {
	pthread_mutex_t lock; /* guards everything below but the fixed settings */
	pthread_cond_t cond;
	char **q; /* event objects as JSON text, oldest first */
	size_t n, cap;
	bool stop;
	struct wu_rng rng;
	unsigned long seq;
	unsigned long queued, posted, failed;
	/* fixed after start */
	const char *url;
	const char *port_file; /* --events-port-file: the webhook's port, read when needed */
	char url_buf[128];
	EVP_PKEY *key;
	double bounce_rate, spam_rate, defer_rate;
	const char *defer_response;
	int batch;
	pthread_t thread;
	bool running;
};

static struct events ev = {.lock = PTHREAD_MUTEX_INITIALIZER,
                           .cond = PTHREAD_COND_INITIALIZER,
                           .defer_response = "421 4.7.28 Our system has detected an unusual "
                                             "rate of unsolicited mail; try again later",
                           .batch = 100};

/* Adds one event (taken) to the queue; ev.lock is held. */
static void events_push(cJSON *o)
{
	char *text = cJSON_PrintUnformatted(o);

	cJSON_Delete(o);
	if (!text)
		return;
	if (ev.n == ev.cap) {
		size_t cap = ev.cap ? ev.cap * 2 : 256;
		char **q = realloc(ev.q, cap * sizeof(*q));

		if (!q) {
			free(text);
			return;
		}
		ev.q = q;
		ev.cap = cap;
	}
	ev.q[ev.n++] = text;
	ev.queued++;
}

/* Copies string members of args to the top level of o, as SendGrid puts
 * custom arguments. */
static void events_args(cJSON *o, const cJSON *args)
{
	const cJSON *a;

	cJSON_ArrayForEach(a, args)
	{
		if (!cJSON_IsString(a) || cJSON_GetObjectItemCaseSensitive(o, a->string))
			continue;
		cJSON_AddStringToObject(o, a->string, a->valuestring);
	}
}

/* One event about one recipient; ev.lock is held. */
static cJSON *events_one(const char *kind, const char *email, const char *msgid, int pi,
                         const cJSON *gargs, const cJSON *pargs)
{
	cJSON *o = cJSON_CreateObject();
	char id[40], sgid[160];

	if (!o)
		return NULL;
	for (int i = 0; i < 22; i++)
		id[i] = b64url[wu_rng_next(&ev.rng) & 63];
	snprintf(id + 22, sizeof(id) - 22, "%lu", ++ev.seq);
	snprintf(sgid, sizeof(sgid), "%s.filterdrecv-fake-%d.%d.0", msgid, getpid() % 1000, pi);
	cJSON_AddStringToObject(o, "email", email);
	cJSON_AddNumberToObject(o, "timestamp", (double)(long long)now_real());
	cJSON_AddStringToObject(o, "event", kind);
	cJSON_AddStringToObject(o, "sg_event_id", id);
	cJSON_AddStringToObject(o, "sg_message_id", sgid);
	/* Per-personalization arguments win over the request's, as in SendGrid. */
	events_args(o, pargs);
	events_args(o, gargs);
	return o;
}

/* Queues processed and then delivered, bounce, deferred or spamreport for
 * every recipient of an accepted request. */
static void events_queue(const cJSON *body, const char *msgid)
{
	const cJSON *gargs = cJSON_GetObjectItemCaseSensitive(body, "custom_args"), *p;
	int pi = 0;

	pthread_mutex_lock(&ev.lock);
	cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(body, "personalizations"))
	{
		const cJSON *pargs = cJSON_GetObjectItemCaseSensitive(p, "custom_args"), *to;

		cJSON_ArrayForEach(to, cJSON_GetObjectItemCaseSensitive(p, "to"))
		{
			const cJSON *em = cJSON_GetObjectItemCaseSensitive(to, "email");
			double d = wu_rng_unit(&ev.rng);
			cJSON *o;

			if (!cJSON_IsString(em))
				continue;
			events_push(
			    events_one("processed", em->valuestring, msgid, pi, gargs, pargs));
			if (d < ev.bounce_rate) {
				if ((o = events_one("bounce", em->valuestring, msgid, pi, gargs,
				                    pargs))) {
					cJSON_AddStringToObject(o, "type", "bounce");
					cJSON_AddStringToObject(o, "status", "5.1.1");
					cJSON_AddStringToObject(
					    o, "reason",
					    "550 5.1.1 The email account that you tried "
					    "to reach does not exist.");
					events_push(o);
				}
				continue;
			}
			if (d < ev.bounce_rate + ev.defer_rate &&
			    (o = events_one("deferred", em->valuestring, msgid, pi, gargs,
			                    pargs))) {
				cJSON_AddStringToObject(o, "response", ev.defer_response);
				cJSON_AddNumberToObject(o, "attempt", 1);
				events_push(o);
			}
			if ((o = events_one("delivered", em->valuestring, msgid, pi, gargs,
			                    pargs))) {
				cJSON_AddStringToObject(o, "response", "250 2.0.0 OK");
				events_push(o);
			}
			if (d >= ev.bounce_rate + ev.defer_rate &&
			    d < ev.bounce_rate + ev.defer_rate + ev.spam_rate)
				events_push(events_one("spamreport", em->valuestring, msgid, pi,
				                       gargs, pargs));
		}
		pi++;
	}
	if ((int)ev.n >= ev.batch)
		pthread_cond_signal(&ev.cond);
	pthread_mutex_unlock(&ev.lock);
}

/* The signature header value over ts + body, base64 DER; NULL on failure. */
static char *events_sign(const char *ts, const char *body, size_t len)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char sig[256];
	size_t slen = sizeof(sig);
	char *out = NULL;

	if (md && EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, ev.key) == 1 &&
	    EVP_DigestSignUpdate(md, ts, strlen(ts)) == 1 &&
	    EVP_DigestSignUpdate(md, body, len) == 1 && EVP_DigestSignFinal(md, sig, &slen) == 1 &&
	    (out = malloc(4 * ((slen + 2) / 3) + 1)))
		EVP_EncodeBlock((unsigned char *)out, sig, (int)slen);
	EVP_MD_CTX_free(md);
	return out;
}

/* The webhook URL: --events-url, or built from the port in --events-port-file
 * once that file exists (warmupd writes it after it starts listening, so the
 * two servers can both take port 0).  NULL while it is not known yet. */
static const char *events_url(void)
{
	FILE *f;
	int port = 0;

	if (ev.url || !ev.port_file)
		return ev.url;
	if (!(f = fopen(ev.port_file, "r")))
		return NULL;
	if (fscanf(f, "%d", &port) == 1 && port > 0 && port < 65536) {
		snprintf(ev.url_buf, sizeof(ev.url_buf), "http://127.0.0.1:%d/v1/events/sendgrid",
		         port);
		ev.url = ev.url_buf;
	}
	fclose(f);
	return ev.url;
}

/* POSTs one batch; a few tries with growing pauses, as SendGrid retries.
 * Returns 0 when the webhook answered 2xx. */
static int events_post(CURL *curl, const char *body, size_t len)
{
	for (int attempt = 0; attempt < 5; attempt++) {
		struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
		char ts[32], line[600];
		char *sig = NULL;
		long code = 0;
		CURLcode rc;

		if (ev.key) {
			snprintf(ts, sizeof(ts), "%lld", (long long)now_real());
			if (!(sig = events_sign(ts, body, len))) {
				curl_slist_free_all(h);
				return -1;
			}
			snprintf(line, sizeof(line), "X-Twilio-Email-Event-Webhook-Timestamp: %s",
			         ts);
			h = curl_slist_append(h, line);
			snprintf(line, sizeof(line), "X-Twilio-Email-Event-Webhook-Signature: %s",
			         sig);
			h = curl_slist_append(h, line);
			free(sig);
		}
		if (!events_url()) {
			curl_slist_free_all(h);
			fprintf(stderr, "fake-sendgrid: events: no port in %s yet (attempt %d)\n",
			        ev.port_file, attempt + 1);
			sleep_ms(200L << attempt);
			continue;
		}
		curl_easy_reset(curl);
		curl_easy_setopt(curl, CURLOPT_URL, ev.url);
		curl_easy_setopt(curl, CURLOPT_HTTPHEADER, h);
		curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
		curl_easy_setopt(curl, CURLOPT_TIMEOUT, 30L);
		curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);
		rc = curl_easy_perform(curl);
		curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
		curl_slist_free_all(h);
		if (rc == CURLE_OK && code >= 200 && code < 300)
			return 0;
		fprintf(stderr, "fake-sendgrid: events: POST %s: %s (attempt %d)\n", ev.url,
		        rc != CURLE_OK ? curl_easy_strerror(rc) : "non-2xx answer", attempt + 1);
		if (code >= 400 && code < 500)
			return -1; /* refused: the same batch would be refused again */
		sleep_ms(200L << attempt);
	}
	return -1;
}

/* The worker: waits for a full batch, or for a pause in sending, then posts. */
static void *events_main(void *arg)
{
	CURL *curl = curl_easy_init();

	(void)arg;
	pthread_mutex_lock(&ev.lock);
	for (;;) {
		struct timespec until;
		size_t take, len = 2;
		char *body, *p;

		while (!ev.stop && (int)ev.n < ev.batch) {
			size_t before = ev.n;

			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_nsec += 200000000L;
			if (until.tv_nsec >= 1000000000L) {
				until.tv_sec++;
				until.tv_nsec -= 1000000000L;
			}
			/* A quiet 200 ms flushes a part batch. */
			if (pthread_cond_timedwait(&ev.cond, &ev.lock, &until) == ETIMEDOUT &&
			    ev.n && ev.n == before)
				break;
		}
		if (ev.n == 0 && ev.stop)
			break;
		if (ev.n == 0)
			continue;
		take = ev.n < (size_t)ev.batch ? ev.n : (size_t)ev.batch;
		for (size_t i = 0; i < take; i++)
			len += strlen(ev.q[i]) + 1;
		if ((body = malloc(len + 1))) {
			p = body;
			*p++ = '[';
			for (size_t i = 0; i < take; i++) {
				size_t l = strlen(ev.q[i]);

				if (i)
					*p++ = ',';
				memcpy(p, ev.q[i], l);
				p += l;
			}
			*p++ = ']';
			*p = '\0';
		}
		for (size_t i = 0; i < take; i++)
			free(ev.q[i]);
		memmove(ev.q, ev.q + take, (ev.n - take) * sizeof(*ev.q));
		ev.n -= take;
		pthread_mutex_unlock(&ev.lock);
		int ok = body && curl && events_post(curl, body, strlen(body)) == 0;
		free(body);
		pthread_mutex_lock(&ev.lock);
		if (ok)
			ev.posted += take;
		else
			ev.failed += take;
	}
	pthread_mutex_unlock(&ev.lock);
	curl_easy_cleanup(curl);
	return NULL;
}

/* Reads the signing key (PEM, EC private key). */
static int events_key_read(const char *path)
{
	FILE *f = fopen(path, "r");

	if (!f)
		return -1;
	ev.key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	return ev.key && EVP_PKEY_get_base_id(ev.key) == EVP_PKEY_EC ? 0 : -1;
}

/* Compares the key without an early exit, so timing says nothing of it. */
static bool key_matches(const struct server *s, const char *given)
{
	size_t n = strlen(given);
	unsigned char diff = (unsigned char)(n != s->key_len);

	for (size_t i = 0; i < n; i++)
		diff |= (unsigned char)given[i] ^ (unsigned char)s->key[i % s->key_len];
	return diff == 0;
}

/* SendGrid's error body with one message and a null field. */
static char *error_body(const char *message)
{
	struct v3mail_errors errs = {0};

	v3mail_error(&errs, "", "%s", message);
	return v3mail_errors_json(&errs);
}

/* Queues a response; text (malloc'd, may be NULL for an empty body) is taken. */
static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, char *text,
                             const char *const *headers)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	r = MHD_create_response_from_buffer(text ? strlen(text) : 0, text ? text : (char *)"",
	                                    text ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
	if (!r) {
		free(text);
		return MHD_NO;
	}
	if (text)
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	for (; headers && headers[0]; headers += 2)
		MHD_add_response_header(r, headers[0], headers[1]);
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

/* Logs one request; never the key, never the body. */
static void log_request(const char *method, const char *url, int status, int personalizations,
                        const char *note)
{
	char st[8] = "---"; /* a dropped connection has no status */

	if (status)
		snprintf(st, sizeof st, "%d", status);
	fprintf(stderr, "fake-sendgrid: %s %s %s personalizations=%d%s%s\n", method, url, st,
	        personalizations, note ? " " : "", note ? note : "");
}

/* MHD's own diagnostics, prefixed so they can be told from ours. */
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	(void)cls;
	fputs("fake-sendgrid: http: ", stderr);
	vfprintf(stderr, fmt, ap);
}

/* The status the headers alone decide: wrong key, wrong type, too big. */
static int precheck(struct server *s, struct MHD_Connection *c)
{
	const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
	const char *type = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
	const char *len = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");

	if (!auth || strncasecmp(auth, "Bearer ", 7) != 0 || !key_matches(s, auth + 7))
		return MHD_HTTP_UNAUTHORIZED;
	if (!type || strncasecmp(type, "application/json", 16) != 0 ||
	    (type[16] && type[16] != ';' && type[16] != ' '))
		return MHD_HTTP_UNSUPPORTED_MEDIA_TYPE;
	if (len && strtoull(len, NULL, 10) >= MAX_BODY)
		return MHD_HTTP_CONTENT_TOO_LARGE;
	return 0;
}

/* Answers an early-decided status, counting it. */
static enum MHD_Result reply_early(struct server *s, struct MHD_Connection *c, int status)
{
	const char *msg = "Bad Request";

	pthread_mutex_lock(&s->lock);
	switch (status) {
	case MHD_HTTP_UNAUTHORIZED:
		s->stats.rejected_401++;
		msg = "The provided authorization grant is invalid, expired, or revoked";
		break;
	case MHD_HTTP_UNSUPPORTED_MEDIA_TYPE:
		s->stats.rejected_415++;
		msg = "Content-Type should be application/json.";
		break;
	case MHD_HTTP_CONTENT_TOO_LARGE:
		s->stats.rejected_413++;
		msg = "The JSON payload you have included in your request is too large.";
		break;
	}
	pthread_mutex_unlock(&s->lock);
	log_request("POST", "/v3/mail/send", status, 0, NULL);
	return reply(c, (unsigned)status, error_body(msg), NULL);
}

/* Appends one accepted request to the record file, flushed so a reader
 * sees whole lines as soon as the 202 is out. */
static void record(struct server *s, const char *id, double started, cJSON *body)
{
	cJSON *line = cJSON_CreateObject();
	char *text;

	if (!line)
		return;
	cJSON_AddNumberToObject(line, "time", now_real());
	cJSON_AddNumberToObject(line, "started", started);
	cJSON_AddStringToObject(line, "message_id", id);
	cJSON_AddItemReferenceToObject(line, "body", body);
	text = cJSON_PrintUnformatted(line);
	cJSON_Delete(line);
	if (!text)
		return;
	pthread_mutex_lock(&s->lock);
	fputs(text, s->record);
	fputc('\n', s->record);
	fflush(s->record);
	pthread_mutex_unlock(&s->lock);
	free(text);
}

/* The end of POST /v3/mail/send: faults first (they happen before the
 * real service looks at the body), then the body rules, then 202. */
static enum MHD_Result finish_mail(struct server *s, struct MHD_Connection *c, struct req *r)
{
	struct v3mail_errors errs = {0};
	struct json_strict_error jerr;
	char id[MESSAGE_ID_LEN + 1];
	double d_drop, d_500, d_429, d_slow, d_adrop, d_400;
	uint64_t bits[2];
	struct faults f;
	long slow = 0;
	cJSON *body;
	int np;

	pthread_mutex_lock(&s->lock);
	s->stats.requests++;
	/* Always the same draws per request, whatever the rates, so that a
	 * seeded run stays repeatable when faults change mid-run. */
	d_drop = wu_rng_unit(&s->rng);
	d_500 = wu_rng_unit(&s->rng);
	d_429 = wu_rng_unit(&s->rng);
	d_slow = wu_rng_unit(&s->rng);
	bits[0] = wu_rng_next(&s->rng);
	bits[1] = wu_rng_next(&s->rng);
	d_adrop = wu_rng_unit(&s->rng_accept_drop);
	d_400 = wu_rng_unit(&s->rng_400);
	f = s->faults;
	if (!r->status && d_slow < f.slow_rate && f.slow_ms > 0) {
		slow = f.slow_ms;
		s->stats.slowed++;
	}
	pthread_mutex_unlock(&s->lock);

	if (r->status)
		return reply_early(s, c, r->status);
	if (d_drop < f.drop_rate) {
		pthread_mutex_lock(&s->lock);
		s->stats.dropped++;
		pthread_mutex_unlock(&s->lock);
		log_request("POST", "/v3/mail/send", 0, 0, "dropped");
		return MHD_NO; /* MHD closes the connection without an answer */
	}
	if (slow)
		sleep_ms(slow);
	if (d_500 < f.rate_500) {
		pthread_mutex_lock(&s->lock);
		s->stats.failed_500++;
		pthread_mutex_unlock(&s->lock);
		log_request("POST", "/v3/mail/send", 500, 0, slow ? "slow" : NULL);
		return reply(c, MHD_HTTP_INTERNAL_SERVER_ERROR, error_body("internal server error"),
		             NULL);
	}
	if (d_429 < f.rate_429) {
		char limit[16], reset[32];
		const char *const hdrs[] = {"X-RateLimit-Limit",
		                            limit,
		                            "X-RateLimit-Remaining",
		                            "0",
		                            "X-RateLimit-Reset",
		                            reset,
		                            NULL};

		snprintf(limit, sizeof limit, "%d", RATE_LIMIT);
		snprintf(reset, sizeof reset, "%lld", (long long)now_real() + 1);
		pthread_mutex_lock(&s->lock);
		s->stats.throttled_429++;
		pthread_mutex_unlock(&s->lock);
		log_request("POST", "/v3/mail/send", 429, 0, slow ? "slow" : NULL);
		return reply(c, MHD_HTTP_TOO_MANY_REQUESTS, error_body("too many requests"), hdrs);
	}

	if (json_strict_parse(r->body.p, r->body.len, &body, &jerr) < 0)
		v3mail_error(&errs, jerr.field, "%s", jerr.message);
	else
		v3mail_validate(body, &errs);
	if (errs.n) {
		cJSON_Delete(body);
		pthread_mutex_lock(&s->lock);
		s->stats.rejected_400++;
		pthread_mutex_unlock(&s->lock);
		log_request("POST", "/v3/mail/send", 400, 0, slow ? "slow" : NULL);
		return reply(c, MHD_HTTP_BAD_REQUEST, v3mail_errors_json(&errs), NULL);
	}
	if (d_400 < f.rate_400) {
		cJSON_Delete(body);
		pthread_mutex_lock(&s->lock);
		s->stats.rejected_400++;
		pthread_mutex_unlock(&s->lock);
		log_request("POST", "/v3/mail/send", 400, 0, "injected");
		return reply(c, MHD_HTTP_BAD_REQUEST, error_body("injected permanent failure"), NULL);
	}

	for (int i = 0; i < MESSAGE_ID_LEN; i++)
		id[i] = b64url[(bits[i / 11] >> (6 * (i % 11))) & 63];
	id[MESSAGE_ID_LEN] = '\0';
	np = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(body, "personalizations"));
	if (s->record)
		record(s, id, r->started, body);
	if (ev.url || ev.port_file)
		events_queue(body, id);
	cJSON_Delete(body);
	pthread_mutex_lock(&s->lock);
	s->stats.accepted++;
	s->stats.personalizations += (unsigned long)np;
	if (d_adrop < f.accept_drop_rate)
		s->stats.accept_dropped++;
	pthread_mutex_unlock(&s->lock);
	if (d_adrop < f.accept_drop_rate) {
		/* Taken, then the connection goes before the answer: what a
		 * client sees when a network path fails after the provider has
		 * the mail.  MHD shuts the socket down (the client reads EOF);
		 * SO_LINGER 0 makes the final close abrupt, dropping anything
		 * still queued. */
		const union MHD_ConnectionInfo *ci =
		    MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);

		if (ci) {
			struct linger lg = {.l_onoff = 1, .l_linger = 0};

			setsockopt(ci->connect_fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
		}
		log_request("POST", "/v3/mail/send", 0, np, "accepted-dropped");
		return MHD_NO;
	}
	log_request("POST", "/v3/mail/send", 202, np, slow ? "slow" : NULL);
	{
		const char *const hdrs[] = {"X-Message-Id", id, NULL};

		return reply(c, MHD_HTTP_ACCEPTED, NULL, hdrs);
	}
}

/* The current faults as JSON text. */
static char *faults_json(const struct faults *f)
{
	cJSON *o = cJSON_CreateObject();
	char *text;

	cJSON_AddNumberToObject(o, "rate_429", f->rate_429);
	cJSON_AddNumberToObject(o, "rate_500", f->rate_500);
	cJSON_AddNumberToObject(o, "slow_rate", f->slow_rate);
	cJSON_AddNumberToObject(o, "slow_ms", (double)f->slow_ms);
	cJSON_AddNumberToObject(o, "drop_rate", f->drop_rate);
	cJSON_AddNumberToObject(o, "accept_drop_rate", f->accept_drop_rate);
	cJSON_AddNumberToObject(o, "rate_400", f->rate_400);
	text = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return text;
}

/* Reads one rate from a /fake/faults member: a number or a "10%" string. */
static int json_rate(const cJSON *v, double *out)
{
	if (cJSON_IsNumber(v)) {
		if (!(v->valuedouble >= 0.0 && v->valuedouble <= 1.0))
			return -1;
		*out = v->valuedouble;
		return 0;
	}
	if (cJSON_IsString(v))
		return parse_rate(v->valuestring, out);
	return -1;
}

/* POST /fake/faults: all members valid, or nothing changes. */
static enum MHD_Result finish_faults(struct server *s, struct MHD_Connection *c, struct req *r)
{
	struct json_strict_error jerr;
	cJSON *o = NULL, *it;
	struct faults f;
	char msg[160];

	pthread_mutex_lock(&s->lock);
	f = s->faults;
	pthread_mutex_unlock(&s->lock);
	json_strict_parse(r->body.p, r->body.len, &o, &jerr);
	if (!cJSON_IsObject(o)) {
		cJSON_Delete(o);
		log_request("POST", "/fake/faults", 400, 0, NULL);
		return reply(c, MHD_HTTP_BAD_REQUEST, error_body("Expected a JSON object."), NULL);
	}
	cJSON_ArrayForEach(it, o)
	{
		const char *k = it->string;
		int bad;

		if (strcmp(k, "rate_429") == 0)
			bad = json_rate(it, &f.rate_429);
		else if (strcmp(k, "rate_500") == 0)
			bad = json_rate(it, &f.rate_500);
		else if (strcmp(k, "slow_rate") == 0)
			bad = json_rate(it, &f.slow_rate);
		else if (strcmp(k, "drop_rate") == 0)
			bad = json_rate(it, &f.drop_rate);
		else if (strcmp(k, "accept_drop_rate") == 0)
			bad = json_rate(it, &f.accept_drop_rate);
		else if (strcmp(k, "rate_400") == 0)
			bad = json_rate(it, &f.rate_400);
		else if (strcmp(k, "slow_ms") == 0)
			bad = !cJSON_IsNumber(it) || it->valuedouble < 0 ||
			      it->valuedouble > 60000 || (f.slow_ms = (long)it->valuedouble, 0);
		else
			bad = 1;
		if (bad) {
			snprintf(msg, sizeof msg, "Bad value for %.64s.", k);
			cJSON_Delete(o);
			log_request("POST", "/fake/faults", 400, 0, NULL);
			return reply(c, MHD_HTTP_BAD_REQUEST, error_body(msg), NULL);
		}
	}
	cJSON_Delete(o);
	pthread_mutex_lock(&s->lock);
	s->faults = f;
	pthread_mutex_unlock(&s->lock);
	log_request("POST", "/fake/faults", 200, 0, NULL);
	return reply(c, MHD_HTTP_OK, faults_json(&f), NULL);
}

/* GET /fake/stats. */
static enum MHD_Result finish_stats(struct server *s, struct MHD_Connection *c)
{
	cJSON *o = cJSON_CreateObject();
	struct stats st;
	char *text;

	pthread_mutex_lock(&s->lock);
	st = s->stats;
	pthread_mutex_unlock(&s->lock);
	cJSON_AddNumberToObject(o, "requests", (double)st.requests);
	cJSON_AddNumberToObject(o, "accepted", (double)st.accepted);
	cJSON_AddNumberToObject(o, "personalizations", (double)st.personalizations);
	cJSON_AddNumberToObject(o, "rejected_400", (double)st.rejected_400);
	cJSON_AddNumberToObject(o, "rejected_401", (double)st.rejected_401);
	cJSON_AddNumberToObject(o, "rejected_413", (double)st.rejected_413);
	cJSON_AddNumberToObject(o, "rejected_415", (double)st.rejected_415);
	cJSON_AddNumberToObject(o, "throttled_429", (double)st.throttled_429);
	cJSON_AddNumberToObject(o, "failed_500", (double)st.failed_500);
	cJSON_AddNumberToObject(o, "dropped", (double)st.dropped);
	cJSON_AddNumberToObject(o, "slowed", (double)st.slowed);
	cJSON_AddNumberToObject(o, "accept_dropped", (double)st.accept_dropped);
	pthread_mutex_lock(&ev.lock);
	cJSON_AddNumberToObject(o, "events_queued", (double)ev.queued);
	cJSON_AddNumberToObject(o, "events_posted", (double)ev.posted);
	cJSON_AddNumberToObject(o, "events_failed", (double)ev.failed);
	pthread_mutex_unlock(&ev.lock);
	text = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return reply(c, MHD_HTTP_OK, text, NULL);
}

/* Which endpoint a request is for. */
static enum route route_of(const char *url, const char *method)
{
	if (strcmp(url, "/v3/mail/send") == 0 && strcmp(method, "POST") == 0)
		return ROUTE_MAIL;
	if (strcmp(url, "/fake/faults") == 0 &&
	    (strcmp(method, "POST") == 0 || strcmp(method, "GET") == 0))
		return ROUTE_FAULTS;
	if (strcmp(url, "/fake/stats") == 0 && strcmp(method, "GET") == 0)
		return ROUTE_STATS;
	return ROUTE_OTHER;
}

/* MHD's access handler: first call sets up, middle calls take the body
 * (bounded), the last call answers. */
static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **con_cls)
{
	struct server *s = cls;
	struct req *r = *con_cls;

	(void)version;
	if (!r) {
		if (!(r = calloc(1, sizeof *r)))
			return MHD_NO;
		*con_cls = r;
		r->route = route_of(url, method);
		r->started = now_real();
		r->limit = r->route == ROUTE_MAIL ? MAX_BODY : MAX_CONTROL_BODY;
		if (r->route == ROUTE_MAIL)
			r->status = precheck(s, c);
		return MHD_YES;
	}
	if (*upload_size) {
		size_t n = *upload_size;

		*upload_size = 0;
		r->seen += n;
		/* The body is read to its end even when refused: closing on
		 * unread data makes the kernel send RST, and the client would
		 * lose the answer. */
		if (r->seen > MAX_DISCARD)
			return MHD_NO;
		if (r->status || r->route == ROUTE_OTHER || r->route == ROUTE_STATS)
			return MHD_YES;
		if (r->body.len + n >= r->limit) {
			r->status = MHD_HTTP_CONTENT_TOO_LARGE;
			strbuf_free(&r->body);
			return MHD_YES;
		}
		if (strbuf_add(&r->body, upload, n) < 0)
			return MHD_NO;
		return MHD_YES;
	}

	switch (r->route) {
	case ROUTE_MAIL:
		return finish_mail(s, c, r);
	case ROUTE_FAULTS:
		if (strcmp(method, "GET") == 0) {
			struct faults f;

			pthread_mutex_lock(&s->lock);
			f = s->faults;
			pthread_mutex_unlock(&s->lock);
			return reply(c, MHD_HTTP_OK, faults_json(&f), NULL);
		}
		if (r->status)
			return reply(c, MHD_HTTP_CONTENT_TOO_LARGE, error_body("too large"), NULL);
		return finish_faults(s, c, r);
	case ROUTE_STATS:
		return finish_stats(s, c);
	case ROUTE_OTHER:
		break;
	}
	if (strcmp(url, "/v3/mail/send") == 0 || strncmp(url, "/fake/", 6) == 0) {
		log_request(method, url, 405, 0, NULL);
		return reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, error_body("method not allowed"),
		             NULL);
	}
	log_request(method, url, 404, 0, NULL);
	return reply(c, MHD_HTTP_NOT_FOUND, error_body("resource not found"), NULL);
}

/* Frees per-request state when MHD is done with it. */
static void request_done(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
	struct req *r = *con_cls;

	(void)cls;
	(void)c;
	(void)toe;
	if (r) {
		strbuf_free(&r->body);
		free(r);
		*con_cls = NULL;
	}
}

/* Reads the key from a file: first line, trailing whitespace dropped. */
static char *read_key_file(const char *path)
{
	char buf[4096];
	FILE *f = fopen(path, "r");
	size_t n;

	if (!f)
		return NULL;
	n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	n = strlen(buf);
	while (n && (buf[n - 1] == ' ' || buf[n - 1] == '\t'))
		buf[--n] = '\0';
	return strdup(buf);
}

/* Parses HOST:PORT ("[::1]:PORT" for IPv6) into a socket address. */
static int parse_listen(const char *spec, struct sockaddr_storage *ss, socklen_t *sslen)
{
	char host[256], *colon;
	const char *port;
	struct addrinfo hints = {0}, *res;

	if (snprintf(host, sizeof host, "%s", spec) >= (int)sizeof host)
		return -1;
	if (host[0] == '[') {
		char *close = strchr(host, ']');

		if (!close || close[1] != ':')
			return -1;
		*close = '\0';
		port = close + 2;
		memmove(host, host + 1, strlen(host + 1) + 1);
	} else {
		if (!(colon = strrchr(host, ':')))
			return -1;
		*colon = '\0';
		port = colon + 1;
	}
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV | AI_PASSIVE;
	if (getaddrinfo(host, port, &hints, &res) != 0)
		return -1;
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*sslen = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

/* True for 127.0.0.0/8 and ::1: the only places an unauthenticated
 * control endpoint may listen by default. */
static bool is_loopback(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)ss;

		return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
	}
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;

		return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
	}
	return false;
}

/* Writes the bound port to path via a temporary file and rename, so a
 * waiting test never reads half a number. */
static int write_port_file(const char *path, unsigned port)
{
	char tmp[4096];
	FILE *f;

	if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
		return -1;
	if (!(f = fopen(tmp, "w")))
		return -1;
	fprintf(f, "%u\n", port);
	if (fclose(f) != 0 || rename(tmp, path) != 0) {
		unlink(tmp);
		return -1;
	}
	return 0;
}

static void usage(FILE *out)
{
	fputs("usage: fake-sendgrid (--key KEY | --key-file FILE | --key-env NAME) [options]\n"
	      "\n"
	      "A local fake of SendGrid's Web API v3 POST /v3/mail/send.\n"
	      "\n"
	      "  --listen HOST:PORT   address to listen on (default 127.0.0.1:0, a free port)\n"
	      "  --allow-nonlocal     permit a non-loopback listen address\n"
	      "  --key KEY            the accepted API key (visible in ps; prefer the next two)\n"
	      "  --key-file FILE      read the API key from the first line of FILE\n"
	      "  --key-env NAME       read the API key from environment variable NAME\n"
	      "  --record FILE        append each accepted request to FILE as one JSON line\n"
	      "  --port-file FILE     write the bound port to FILE once listening\n"
	      "  --seed N             seed the fault generator (repeatable runs)\n"
	      "  --rate-429 P         answer 429 with probability P (0..1 or 10%)\n"
	      "  --rate-500 P         answer 500 with probability P\n"
	      "  --rate-400 P         refuse a valid request for good (400) with probability P\n"
	      "  --drop-rate P        close the connection without answering, probability P\n"
	      "  --accept-drop-rate P take (record, count) a valid request, then close the\n"
	      "                       connection instead of answering, probability P\n"
	      "  --slow-rate P        delay the answer with probability P ...\n"
	      "  --slow-ms N          ... by N milliseconds (0..60000)\n"
	      "  --events-url URL     post Event Webhook batches about accepted mail to URL\n"
	      "  --events-port-file F ... or to http://127.0.0.1:PORT/v1/events/sendgrid, PORT\n"
	      "                       read from F when the first batch is due (warmupd's\n"
	      "                       --port-file), so both servers can listen on port 0\n"
	      "  --events-key-file F  sign them with the EC private key in PEM file F\n"
	      "  --events-batch N     events per batch (1..10000, default 100)\n"
	      "  --bounce-rate P      a recipient bounces with probability P\n"
	      "  --spam-rate P        ... is delivered and reports spam with probability P\n"
	      "  --defer-rate P       ... is deferred once, then delivered, probability P\n"
	      "  --defer-response T   the response text of deferred events\n"
	      "  --help               show this text\n"
	      "\n"
	      "Control: POST /fake/faults {\"rate_429\":0.1,...}, GET /fake/faults, GET "
	      "/fake/stats\n",
	      out);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"listen", required_argument, NULL, 'l'},
	    {"allow-nonlocal", no_argument, NULL, 'A'},
	    {"key", required_argument, NULL, 'k'},
	    {"key-file", required_argument, NULL, 'K'},
	    {"key-env", required_argument, NULL, 'E'},
	    {"record", required_argument, NULL, 'r'},
	    {"port-file", required_argument, NULL, 'p'},
	    {"seed", required_argument, NULL, 's'},
	    {"rate-429", required_argument, NULL, '4'},
	    {"rate-500", required_argument, NULL, '5'},
	    {"rate-400", required_argument, NULL, '0'},
	    {"drop-rate", required_argument, NULL, 'd'},
	    {"accept-drop-rate", required_argument, NULL, 'a'},
	    {"slow-rate", required_argument, NULL, 'S'},
	    {"slow-ms", required_argument, NULL, 'm'},
	    {"events-url", required_argument, NULL, 'U'},
	    {"events-port-file", required_argument, NULL, 'W'},
	    {"events-key-file", required_argument, NULL, 'P'},
	    {"events-batch", required_argument, NULL, 'N'},
	    {"bounce-rate", required_argument, NULL, 'B'},
	    {"spam-rate", required_argument, NULL, 'C'},
	    {"defer-rate", required_argument, NULL, 'D'},
	    {"defer-response", required_argument, NULL, 'R'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	static struct server srv;
	const char *listen_spec = "127.0.0.1:0", *record_path = NULL, *port_file = NULL;
	bool allow_nonlocal = false, seeded = false;
	int nkeys = 0, opt, sig;
	unsigned long long seed = 0;
	struct sockaddr_storage ss;
	socklen_t sslen;
	struct MHD_Daemon *d;
	const union MHD_DaemonInfo *info;
	sigset_t set;
	unsigned port;
	char *end;

	pthread_mutex_init(&srv.lock, NULL);
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'l':
			listen_spec = optarg;
			break;
		case 'A':
			allow_nonlocal = true;
			break;
		case 'k':
			free(srv.key);
			srv.key = strdup(optarg);
			nkeys++;
			break;
		case 'K':
			free(srv.key);
			if (!(srv.key = read_key_file(optarg))) {
				fprintf(stderr, "fake-sendgrid: cannot read key file %s: %s\n",
				        optarg, strerror(errno));
				return 1;
			}
			nkeys++;
			break;
		case 'E': {
			const char *v = getenv(optarg);

			if (!v) {
				fprintf(stderr,
				        "fake-sendgrid: environment variable %s is not set\n",
				        optarg);
				return 1;
			}
			free(srv.key);
			srv.key = strdup(v);
			nkeys++;
			break;
		}
		case 'r':
			record_path = optarg;
			break;
		case 'p':
			port_file = optarg;
			break;
		case 's':
			errno = 0;
			seed = strtoull(optarg, &end, 0);
			if (errno || end == optarg || *end) {
				fprintf(stderr, "fake-sendgrid: bad --seed: %s\n", optarg);
				return 2;
			}
			seeded = true;
			break;
		case '4':
		case '5':
		case '0':
		case 'd':
		case 'a':
		case 'S': {
			double *dst = opt == '4'   ? &srv.faults.rate_429
			              : opt == '5' ? &srv.faults.rate_500
			              : opt == '0' ? &srv.faults.rate_400
			              : opt == 'd' ? &srv.faults.drop_rate
			              : opt == 'a' ? &srv.faults.accept_drop_rate
			                           : &srv.faults.slow_rate;

			if (parse_rate(optarg, dst) < 0) {
				fprintf(stderr,
				        "fake-sendgrid: bad probability '%s' (want 0..1 or "
				        "0%%..100%%)\n",
				        optarg);
				return 2;
			}
			break;
		}
		case 'm':
			if (parse_ms(optarg, &srv.faults.slow_ms) < 0) {
				fprintf(stderr, "fake-sendgrid: bad --slow-ms '%s' (0..60000)\n",
				        optarg);
				return 2;
			}
			break;
		case 'U':
			ev.url = optarg;
			break;
		case 'W':
			ev.port_file = optarg;
			break;
		case 'P':
			if (events_key_read(optarg) < 0) {
				fprintf(
				    stderr,
				    "fake-sendgrid: cannot read an EC private key (PEM) from %s\n",
				    optarg);
				return 1;
			}
			break;
		case 'N':
			errno = 0;
			ev.batch = (int)strtol(optarg, &end, 10);
			if (errno || end == optarg || *end || ev.batch < 1 || ev.batch > 10000) {
				fprintf(stderr,
				        "fake-sendgrid: bad --events-batch '%s' (1..10000)\n",
				        optarg);
				return 2;
			}
			break;
		case 'B':
		case 'C':
		case 'D':
			if (parse_rate(optarg, opt == 'B'   ? &ev.bounce_rate
			                       : opt == 'C' ? &ev.spam_rate
			                                    : &ev.defer_rate) < 0) {
				fprintf(stderr,
				        "fake-sendgrid: bad probability '%s' (want 0..1 or "
				        "0%%..100%%)\n",
				        optarg);
				return 2;
			}
			break;
		case 'R':
			ev.defer_response = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	if (ev.bounce_rate + ev.spam_rate + ev.defer_rate > 1.0) {
		fprintf(stderr, "fake-sendgrid: --bounce-rate, --spam-rate and --defer-rate add up "
		                "to more than 1\n");
		return 2;
	}
	if (nkeys != 1 || !srv.key || !srv.key[0]) {
		fprintf(stderr, "fake-sendgrid: give exactly one non-empty key: --key, --key-file "
		                "or --key-env\n");
		return 2;
	}
	srv.key_len = strlen(srv.key);
	if (parse_listen(listen_spec, &ss, &sslen) < 0) {
		fprintf(stderr, "fake-sendgrid: bad --listen '%s' (want HOST:PORT)\n", listen_spec);
		return 2;
	}
	if (!is_loopback(&ss) && !allow_nonlocal) {
		fprintf(stderr,
		        "fake-sendgrid: %s is not a loopback address; /fake/ has no key, so say "
		        "--allow-nonlocal to listen there\n",
		        listen_spec);
		return 2;
	}
	if (!seeded && getrandom(&seed, sizeof seed, 0) != sizeof seed)
		seed = (unsigned long long)time(NULL) ^ ((unsigned long long)getpid() << 32);
	wu_rng_seed(&srv.rng, seed, 0);
	wu_rng_seed(&srv.rng_accept_drop, seed, 0x61636370746472ull); /* "acceptdr" */
	wu_rng_seed(&srv.rng_400, seed, 0x7065726d343030ull);         /* "perm400" */
	if (record_path && !(srv.record = fopen(record_path, "a"))) {
		fprintf(stderr, "fake-sendgrid: cannot open %s: %s\n", record_path,
		        strerror(errno));
		return 1;
	}

	/* Blocked before MHD starts its threads, so they inherit the mask and
	 * only sigwait() below sees these signals. */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (ev.url || ev.port_file) {
		wu_rng_seed(&ev.rng, seed, 0x6576656e7473ull); /* its own stream: "events" */
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK ||
		    pthread_create(&ev.thread, NULL, events_main, NULL) != 0) {
			fprintf(stderr, "fake-sendgrid: cannot start the events worker\n");
			return 1;
		}
		ev.running = true;
	}

	d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
	                         MHD_USE_ERROR_LOG | (ss.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0),
	                     0, NULL, NULL, handle, &srv, MHD_OPTION_SOCK_ADDR,
	                     (struct sockaddr *)&ss, MHD_OPTION_NOTIFY_COMPLETED, request_done,
	                     NULL, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)60,
	                     MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_END);
	if (!d) {
		fprintf(stderr, "fake-sendgrid: cannot listen on %s\n", listen_spec);
		return 1;
	}
	info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	port = info ? info->port : 0;
	if (port_file && write_port_file(port_file, port) < 0) {
		fprintf(stderr, "fake-sendgrid: cannot write %s: %s\n", port_file, strerror(errno));
		MHD_stop_daemon(d);
		return 1;
	}
	fprintf(stderr, "fake-sendgrid: listening on port %u\n", port);

	while (sigwait(&set, &sig) != 0)
		;
	fprintf(stderr, "fake-sendgrid: %s, stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
	MHD_stop_daemon(d);
	if (ev.running) {
		/* What is queued still goes out before the exit. */
		pthread_mutex_lock(&ev.lock);
		ev.stop = true;
		pthread_cond_signal(&ev.cond);
		pthread_mutex_unlock(&ev.lock);
		pthread_join(ev.thread, NULL);
		free(ev.q);
		curl_global_cleanup();
	}
	EVP_PKEY_free(ev.key);
	if (port_file)
		unlink(port_file);
	if (srv.record)
		fclose(srv.record);
	free(srv.key);
	pthread_mutex_destroy(&srv.lock);
	return 0;
}
