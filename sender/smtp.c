/*
 * smtp.c -- the SMTP route: the team's old relay, or SendGrid's SMTP relay.
 *
 * DESCRIPTION
 *	One unit is one message: the batch carries one personalization, and
 *	mime.c turns it and the stored content into headers, a curl_mime body
 *	and an envelope (MAIL FROM from.email, RCPT TO every to, cc and bcc).
 *
 *	RAW.  A content taken over SMTP (b->raw) is not rebuilt: its bytes
 *	go out as they were received, so the application's DKIM signature
 *	still verifies.  smtpapi.c makes the one change allowed, to the
 *	X-SMTPAPI header (merged with x_smtpapi = on, removed without);
 *	the envelope is MAIL FROM the stored sender (<> for the null one)
 *	and RCPT TO the personalization's addresses.  The worker uploads the
 *	bytes with a read callback (CURLOPT_UPLOAD), and curl 7.88 does the
 *	rest: it dot-stuffs every line that starts with "." (it looks for
 *	CRLF "."; stored messages have CRLF line ends, the intake's promise)
 *	and ends the data with CRLF "." CRLF, adding the CRLF only when the
 *	message lacks one; it converts no line ending (CURLOPT_CRLF is off).
 *	It adds SMTPUTF8 to MAIL FROM when the relay announces it and an
 *	envelope address is not ASCII, and SIZE= when the relay takes SIZE.
 *	It never sends BODY=8BITMIME (it has no option for it), so an 8-bit
 *	message goes as it is, whether or not the relay announced 8BITMIME:
 *	turning it into 7 bits would break the DKIM body hash; Postfix and
 *	SendGrid announce 8BITMIME and take 8-bit data without BODY=; a
 *	relay that refuses 8-bit data answers the end of the data, and that
 *	answer is classified like any other.  CURLOPT_MAIL_RCPT_ALLOWFAILS
 *	stays off: a refused recipient stops the message, as for JSON mail.
 *
 *	THREADS.  libcurl 7.88 waits for the relay's reply to the end of the
 *	message with a blocking poll() (smtp_done -> smtp_block_statemach),
 *	up to the route's timeout.  On the daemon's multi handle that froze
 *	the whole event loop; on a multi handle of its own it would still
 *	freeze every other transfer of that handle, so N connections would
 *	queue behind one slow verdict (measured: 8 connections to a relay
 *	answering after 50 ms gave 19 msg/s, the same as one).  So the route
 *	runs max_connections worker threads, each with one easy handle of its
 *	own doing one message at a time with curl_easy_perform(); the easy
 *	handle keeps its SMTP session open between messages, so the next
 *	message skips connect, EHLO, STARTTLS and AUTH.
 *
 *	The loop thread and the workers share only a mutex-protected job
 *	queue, a list of finished jobs and each worker's set of open sockets.
 *	snd_route_send() parses the stored JSON (cJSON_Parse writes a global,
 *	so parsing stays on the loop thread like every other parse in the
 *	daemon) and queues a job; a worker builds the MIME message on its own
 *	easy handle, sends it and classifies the outcome; the result goes
 *	back with uv_async_send() and the batch's callback runs on the loop
 *	thread, never from inside snd_route_send().  No libcurl handle a
 *	worker uses is touched by any other thread.  At most max_connections
 *	messages are in flight per route; a route at capacity refuses the
 *	batch and the dispatcher tries again later.
 *
 *	TLS: smtp:// upgrades with STARTTLS, smtps:// speaks TLS from the
 *	first byte.  tls = required (the default) never sends in clear,
 *	optional uses STARTTLS when offered, none never tries.  Certificates
 *	are always verified; ca_file names the CA bundle to verify with.
 *
 *	curl does not hand out the relay's reply text, so a debug callback
 *	watches the dialogue: the verb of each command we send (never its
 *	arguments, which for AUTH hold credentials) and each reply line.
 *	The reply that follows the message body is the relay's verdict; its
 *	"queued as ID" becomes provider_id.  Classification:
 *
 *	    2xx after the body          accepted, provider_id = queue id
 *	    4xx to any command          tempfail
 *	    5xx to MAIL, RCPT or DATA   permfail (this unit only)
 *	    454 or other 4xx to AUTH    tempfail: retried with backoff
 *	    535 or other AUTH refusal   authfail: pause the route
 *	    5xx to the greeting, EHLO   authfail as well: the relay refuses
 *	    or STARTTLS                 the session, no unit is at fault
 *	    no STARTTLS, tls required   tempfail, saying why
 *	    curl timeout                timeout
 *	    lost after the body, before timeout as well: the relay may
 *	    the verdict                 have taken it
 *	    refused, reset, TLS errors  tempfail
 *	    the route freed meanwhile   tempfail
 *
 *	A recipient refused with 4xx or 5xx stops the whole message before
 *	DATA, so a retry never delivers twice to the ones already accepted.
 *
 *	STOPPING.  snd_route_free() refuses new batches, shuts down the
 *	sockets of workers in the middle of a message (the blocking poll
 *	then returns at once), joins the threads, and calls back every job
 *	still held: finished ones with their real result, the others with a
 *	tempfail.  Idle sessions end with QUIT.
 *
 * SECURITY
 *	The password goes to curl once per worker; error texts are scrubbed
 *	of it, and the route's copy is wiped on free.
 */
#include "sender_backend.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "mime.h"
#include "smtpapi.h"

#define SM_REPLY_MAX 200
#define SM_WSOCKS    16 /* open sockets one worker remembers */

struct sm_route;

/* One message: filled on the loop thread, sent by a worker, called back on
 * the loop thread.  The worker never reads the caller's batch. */
struct sm_job {
	struct snd_batch *b;
	snd_done_cb done;
	void *arg;
	cJSON *content, *pers; /* parsed by snd_route_send(), freed by the worker */
	struct mime_opts o;
	/* A message taken over SMTP: its bytes with X-SMTPAPI spliced in or out,
	 * and its envelope, all made by snd_route_send(); raw is NULL else. */
	char *raw;
	size_t raw_len, raw_off; /* raw_off: how much curl has read */
	char *raw_from;          /* "<sender>", or "<>" */
	struct curl_slist *raw_rcpt;
	char msgid[128];
	struct snd_result res;
	struct sm_job *next;
};

/* What the relay has said during the current message. */
struct sm_dlg {
	char cmd[12];               /* verb of the last command sent */
	char reply[SM_REPLY_MAX];   /* last reply line */
	char reply_cmd[12];         /* the command that reply answered */
	int in_body;                /* 354 seen: the next reply is the verdict */
	char verdict[SM_REPLY_MAX]; /* the reply to the message body */
};

/* One worker thread and its easy handle.  socks, nsocks and busy are under
 * the route's mutex; the rest is the worker's alone. */
struct sm_worker {
	struct sm_route *r;
	pthread_t thread;
	int started;
	int busy; /* in the middle of a message */
	curl_socket_t socks[SM_WSOCKS];
	int nsocks;
	CURL *easy;
	struct sm_dlg dlg;
	char errbuf[CURL_ERROR_SIZE];
};

struct sm_route {
	/* Settings: written before the threads start, then only read. */
	char url[sizeof(((struct snd_route_conf *)0)->url)];
	char username[sizeof(((struct snd_route_conf *)0)->username)];
	char ca_file[sizeof(((struct snd_route_conf *)0)->ca_file)];
	char *secret;
	long use_ssl;
	long timeout_ms;
	int max_conn;
	int x_smtpapi;
	int click, open, sub, force;
	char ip_pool[128];

	/* Shared with the workers, under mu. */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct sm_job *jobs, *jobs_tail; /* waiting for a worker */
	struct sm_job *done, *done_tail; /* waiting for the loop thread */
	atomic_int stop;                 /* written under mu, read anywhere */

	/* The loop thread's alone. */
	uv_async_t *async; /* its own allocation: it outlives the route until closed */
	int inflight;      /* jobs queued and not yet called back */
	int freeing;       /* snd_route_free() has begun: refuse batches */
	int delivering;    /* depth of sm_on_async() */
	int freed;         /* freed from inside a callback: sm_on_async frees r */
	int nworkers;
	struct sm_worker *w;
};

/* Overwrites every copy of the password in s. */
static void sm_scrub(const struct sm_route *r, char *s)
{
	size_t n;
	char *p;

	if (r->secret == NULL || (n = strlen(r->secret)) == 0)
		return;
	while ((p = strstr(s, r->secret)) != NULL)
		memset(p, '*', n);
}

/* CURLOPT_OPENSOCKETFUNCTION: opens the socket and remembers it, so a
 * failed session can be shut down and snd_route_free() can cut a message
 * short.  Refuses once the route is stopping. */
static curl_socket_t sm_on_open(void *arg, curlsocktype purpose, struct curl_sockaddr *a)
{
	struct sm_worker *w = arg;
	struct sm_route *r = w->r;
	curl_socket_t fd;

	(void)purpose;
	pthread_mutex_lock(&r->mu);
	if (atomic_load(&r->stop)) {
		pthread_mutex_unlock(&r->mu);
		return CURL_SOCKET_BAD;
	}
	fd = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
	/* Past SM_WSOCKS (never seen: one session per worker) a socket is
	 * simply not remembered: it works, but is not shut down early. */
	if (fd != CURL_SOCKET_BAD && w->nsocks < SM_WSOCKS)
		w->socks[w->nsocks++] = fd;
	pthread_mutex_unlock(&r->mu);
	return fd;
}

/* CURLOPT_CLOSESOCKETFUNCTION: forgets the socket and closes it, under the
 * mutex, so sm_shut() never meets a number reused by another socket. */
static int sm_on_close(void *arg, curl_socket_t fd)
{
	struct sm_worker *w = arg;
	int i, rc;

	pthread_mutex_lock(&w->r->mu);
	for (i = 0; i < w->nsocks; i++)
		if (w->socks[i] == fd) {
			w->socks[i] = w->socks[--w->nsocks];
			break;
		}
	rc = close(fd);
	pthread_mutex_unlock(&w->r->mu);
	return rc;
}

/* Shuts down every socket a worker has open (the caller holds the mutex).
 * A session that failed midway (a timeout while waiting for the verdict,
 * above all) can stay in curl's cache with a reply still to come: the next
 * message would read that late reply as the answer to its MAIL FROM, and
 * closing it would block on QUIT.  curl's liveness check sees a shut
 * socket as dead and drops the session without a word. */
static void sm_shut(struct sm_worker *w)
{
	int i;

	for (i = 0; i < w->nsocks; i++)
		shutdown(w->socks[i], SHUT_RDWR);
}

/* CURLOPT_XFERINFOFUNCTION: ends a message when the route is stopping and
 * no socket was there to shut down (a name still resolving). */
static int sm_on_progress(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	struct sm_worker *w = arg;

	(void)dt;
	(void)dn;
	(void)ut;
	(void)un;
	return atomic_load(&w->r->stop) ? 1 : 0;
}

/* Copies one line without its line ending and control characters. */
static void sm_line(char *out, size_t outlen, const char *s, size_t n)
{
	size_t i, k = 0;

	while (n > 0 && (s[n - 1] == '\r' || s[n - 1] == '\n'))
		n--;
	for (i = 0; i < n && k < outlen - 1; i++)
		out[k++] = ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? '?' : s[i];
	out[k] = '\0';
}

/* Commands whose verb may be kept: anything else we send (the base64 of
 * AUTH LOGIN's username and password) is not a verb and is never read. */
static const char *const sm_verbs[] = {"EHLO", "HELO", "STARTTLS", "AUTH", "MAIL", "RCPT",
                                       "DATA", "RSET", "QUIT",     "NOOP", NULL};

/* CURLOPT_DEBUGFUNCTION: follows the dialogue, see the manual above. */
static int sm_on_debug(CURL *e, curl_infotype type, char *data, size_t size, void *arg)
{
	struct sm_dlg *q = arg;
	size_t i, n;

	(void)e;
	if (type == CURLINFO_HEADER_OUT) {
		for (n = 0; n < size && n < sizeof(q->cmd) - 1 && isalpha((unsigned char)data[n]);
		     n++)
			;
		for (i = 0; sm_verbs[i]; i++)
			if (strlen(sm_verbs[i]) == n && strncasecmp(data, sm_verbs[i], n) == 0) {
				snprintf(q->cmd, sizeof(q->cmd), "%s", sm_verbs[i]);
				q->in_body = 0;
				break;
			}
	} else if (type == CURLINFO_HEADER_IN && strcmp(q->cmd, "QUIT") != 0) {
		/* The reply to the QUIT curl sends after a refusal says nothing;
		 * the refusal before it is what counts.  One call may carry
		 * several lines: the last one is the reply. */
		const char *s = data, *end = data + size, *line = data;

		while (s < end) {
			const char *nl = memchr(s, '\n', (size_t)(end - s));

			if (nl == NULL)
				nl = end - 1;
			if (nl + 1 - s > 3)
				line = s;
			s = nl + 1;
		}
		sm_line(q->reply, sizeof(q->reply), line, (size_t)(end - line));
		snprintf(q->reply_cmd, sizeof(q->reply_cmd), "%s", q->cmd);
		if (strcmp(q->cmd, "DATA") == 0) {
			if (q->in_body && q->reply[0] != '\0' && q->reply[3] != '-')
				snprintf(q->verdict, sizeof(q->verdict), "%s", q->reply);
			else if (strncmp(q->reply, "354", 3) == 0)
				q->in_body = 1;
		}
	}
	return 0;
}

/* The relay's queue id from "250 2.0.0 Ok: queued as 4Xyz" and the like. */
static void sm_queue_id(const char *verdict, char *out, size_t outlen)
{
	const char *p = strcasestr(verdict, "queued as ");
	size_t n;

	if (p != NULL) {
		p += 10;
	} else {
		/* No "queued as": keep the text after the code and the
		 * enhanced status, which is what relays put an id in. */
		p = verdict;
		while (*p && !isspace((unsigned char)*p))
			p++;
		while (isspace((unsigned char)*p))
			p++;
		if (isdigit((unsigned char)p[0]) && p[1] == '.') {
			while (*p && !isspace((unsigned char)*p))
				p++;
			while (isspace((unsigned char)*p))
				p++;
		}
	}
	for (n = 0; p[n] && !isspace((unsigned char)p[n]) && n < outlen - 1; n++)
		out[n] = p[n];
	out[n] = '\0';
}

/* Turns curl's result and the relay's replies into one snd_result. */
static void sm_classify(const struct sm_route *r, struct sm_worker *w, CURLcode result,
                        struct snd_result *res)
{
	struct sm_dlg *q = &w->dlg;
	long code = 0;
	const char *when = q->reply_cmd[0] ? q->reply_cmd : "the greeting";
	int session =
	    strcmp(when, "MAIL") != 0 && strcmp(when, "RCPT") != 0 && strcmp(when, "DATA") != 0;

	memset(res, 0, sizeof(*res));
	curl_easy_getinfo(w->easy, CURLINFO_RESPONSE_CODE, &code);
	res->code = code;
	if (result != CURLE_OK && (result == CURLE_ABORTED_BY_CALLBACK || atomic_load(&r->stop))) {
		/* snd_route_free() cut it short: whatever curl says, it is ours. */
		res->status = SND_TEMPFAIL;
		res->code = 0;
		snprintf(res->error, sizeof(res->error), "aborted before the relay answered");
	} else if (result == CURLE_OPERATION_TIMEDOUT) {
		res->status = SND_TIMEOUT;
		snprintf(res->error, sizeof(res->error),
		         "no answer from %.160s within %ld ms (last command %s)", r->url,
		         r->timeout_ms, q->cmd[0] ? q->cmd : "none");
	} else if (result == CURLE_USE_SSL_FAILED) {
		res->status = SND_TEMPFAIL;
		snprintf(res->error, sizeof(res->error),
		         "%.120s does not offer STARTTLS, and tls = required refuses to send "
		         "in clear; nothing was sent",
		         r->url);
	} else if (result == CURLE_PEER_FAILED_VERIFICATION) {
		/* curl's text speaks of "SSH remote keys"; say what to do instead. */
		res->status = SND_TEMPFAIL;
		res->code = 0;
		snprintf(res->error, sizeof(res->error),
		         "the TLS certificate of %.70s could not be verified (%.75s); a relay "
		         "with a private CA needs ca_file; nothing was sent",
		         r->url, w->errbuf[0] ? w->errbuf : curl_easy_strerror(result));
	} else if (result == CURLE_LOGIN_DENIED && code >= 400 && code < 500) {
		/* 454 and the like (RFC 4954 6): a temporary refusal, retried with
		 * backoff; only a refusal for good pauses the route. */
		res->status = SND_TEMPFAIL;
		snprintf(res->error, sizeof(res->error),
		         "AUTH as %.40s temporarily refused by %.60s: %.100s",
		         r->username[0] ? r->username : "(no username)", r->url,
		         q->reply[0] && strcmp(q->reply_cmd, "AUTH") == 0 ? q->reply : w->errbuf);
	} else if (result == CURLE_LOGIN_DENIED ||
	           (code >= 500 && (code == 530 || code == 534 || code == 535 || code == 538 ||
	                            strcmp(when, "AUTH") == 0))) {
		res->status = SND_AUTHFAIL;
		snprintf(res->error, sizeof(res->error), "AUTH as %.40s refused by %.60s: %.100s",
		         r->username[0] ? r->username : "(no username)", r->url,
		         q->reply[0] && strcmp(q->reply_cmd, "AUTH") == 0 ? q->reply : w->errbuf);
	} else if (q->in_body && !q->verdict[0] &&
	           (result == CURLE_RECV_ERROR || result == CURLE_GOT_NOTHING)) {
		/* The body and its final dot went out and the connection died
		 * waiting for the verdict: the relay may have taken it, so the
		 * unit stays counted, as after a timeout. */
		res->status = SND_TIMEOUT;
		snprintf(res->error, sizeof(res->error),
		         "connection to %.120s lost after the message was sent, before the "
		         "relay's verdict: it may have been taken",
		         r->url);
	} else if (result == CURLE_OK) {
		res->status = SND_ACCEPTED;
		sm_queue_id(q->verdict, res->provider_id, sizeof(res->provider_id));
	} else if (code >= 400 && code < 500) {
		res->status = SND_TEMPFAIL;
		snprintf(res->error, sizeof(res->error), "SMTP %ld after %.11s: %.180s", code, when,
		         q->reply);
	} else if (code >= 500 && code < 600 && !session) {
		res->status = SND_PERMFAIL;
		snprintf(res->error, sizeof(res->error), "SMTP %ld after %.11s: %.180s", code, when,
		         q->reply);
	} else if (code >= 500 && code < 600) {
		res->status = SND_AUTHFAIL;
		snprintf(res->error, sizeof(res->error),
		         "%.60s refuses the session (SMTP %ld after %.11s): %.100s", r->url, code,
		         when, q->reply);
	} else {
		res->status = SND_TEMPFAIL;
		snprintf(res->error, sizeof(res->error), "%.80s: %.160s",
		         curl_easy_strerror(result), w->errbuf[0] ? w->errbuf : r->url);
	}
	sm_scrub(r, res->error);
	sm_scrub(r, res->provider_id);
}

/* The worker's easy handle with everything that does not change from one
 * message to the next; NULL when curl has no memory. */
static CURL *sm_easy(struct sm_worker *w)
{
	struct sm_route *r = w->r;
	CURL *e = curl_easy_init();

	if (e == NULL)
		return NULL;
	curl_easy_setopt(e, CURLOPT_URL, r->url);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
	curl_easy_setopt(e, CURLOPT_USE_SSL, r->use_ssl);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
	if (r->ca_file[0] != '\0')
		curl_easy_setopt(e, CURLOPT_CAINFO, r->ca_file);
	if (r->username[0] != '\0') {
		curl_easy_setopt(e, CURLOPT_USERNAME, r->username);
		curl_easy_setopt(e, CURLOPT_PASSWORD, r->secret ? r->secret : "");
	}
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, r->timeout_ms);
	/* The route's timeout covers the connection and the greeting too:
	 * curl's own connect limit (300 s) would cut a longer one short. */
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, r->timeout_ms);
	/* Bounds the wait for the reply to QUIT when the worker ends, which
	 * CURLOPT_TIMEOUT does not cover (curl's default is 120 s). */
	curl_easy_setopt(e, CURLOPT_SERVER_RESPONSE_TIMEOUT, (r->timeout_ms + 999) / 1000);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, w->errbuf);
	curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, sm_on_open);
	curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, w);
	curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, sm_on_close);
	curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, w);
	curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, sm_on_progress);
	curl_easy_setopt(e, CURLOPT_XFERINFODATA, w);
	curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
	/* The debug callback is how the relay's reply text reaches us; it
	 * replaces curl's printing, so VERBOSE writes nothing to stderr. */
	curl_easy_setopt(e, CURLOPT_DEBUGFUNCTION, sm_on_debug);
	curl_easy_setopt(e, CURLOPT_DEBUGDATA, &w->dlg);
	curl_easy_setopt(e, CURLOPT_VERBOSE, 1L);
	return e;
}

/* CURLOPT_READFUNCTION: hands curl the next piece of a raw message; curl
 * dot-stuffs it and ends it with CRLF . CRLF. */
static size_t sm_on_read(char *buf, size_t size, size_t nitems, void *arg)
{
	struct sm_job *j = arg;
	size_t n = size * nitems;

	if (n > j->raw_len - j->raw_off)
		n = j->raw_len - j->raw_off;
	memcpy(buf, j->raw + j->raw_off, n);
	j->raw_off += n;
	return n;
}

/* Builds and sends one message on the worker's easy handle; the outcome
 * goes to j->res.  A raw message is uploaded as it is, through the read
 * callback; any other is built with curl's MIME API. */
static void sm_run(struct sm_worker *w, struct sm_job *j)
{
	struct sm_route *r = w->r;
	struct mime_msg msg = {0};
	char err[256];
	CURLcode result;
	int rc;

	memset(&j->res, 0, sizeof(j->res));
	if (w->easy == NULL && (w->easy = sm_easy(w)) == NULL) {
		j->res.status = SND_TEMPFAIL;
		snprintf(j->res.error, sizeof(j->res.error), "out of memory");
		return;
	}
	if (j->raw == NULL) {
		j->o.now = time(NULL);
		rc = mime_build_json(&msg, w->easy, j->content, j->pers, &j->o, err, sizeof(err));
		if (rc == -1) {
			/* Bad stored data is this unit's fault: do not retry. */
			j->res.status = SND_PERMFAIL;
			snprintf(j->res.error, sizeof(j->res.error), "%s", err);
			return;
		}
		if (rc < 0) {
			j->res.status = SND_TEMPFAIL;
			snprintf(j->res.error, sizeof(j->res.error),
			         "out of memory building the message");
			return;
		}
		curl_easy_setopt(w->easy, CURLOPT_MAIL_FROM, msg.mail_from);
		curl_easy_setopt(w->easy, CURLOPT_MAIL_RCPT, msg.rcpt);
		curl_easy_setopt(w->easy, CURLOPT_HTTPHEADER, msg.headers);
		curl_easy_setopt(w->easy, CURLOPT_MIMEPOST, msg.mime);
	} else {
		/* INFILESIZE is the SIZE= of MAIL FROM when the relay takes
		 * SIZE (RFC 1870: before dot-stuffing, as here). */
		j->raw_off = 0;
		curl_easy_setopt(w->easy, CURLOPT_MAIL_FROM, j->raw_from);
		curl_easy_setopt(w->easy, CURLOPT_MAIL_RCPT, j->raw_rcpt);
		curl_easy_setopt(w->easy, CURLOPT_READFUNCTION, sm_on_read);
		curl_easy_setopt(w->easy, CURLOPT_READDATA, j);
		curl_easy_setopt(w->easy, CURLOPT_INFILESIZE_LARGE, (curl_off_t)j->raw_len);
		curl_easy_setopt(w->easy, CURLOPT_UPLOAD, 1L);
	}
	memset(&w->dlg, 0, sizeof(w->dlg));
	w->errbuf[0] = '\0';
	result = curl_easy_perform(w->easy);
	sm_classify(r, w, result, &j->res);
	if (result != CURLE_OK) {
		pthread_mutex_lock(&r->mu);
		sm_shut(w);
		pthread_mutex_unlock(&r->mu);
	}
	/* The handle lives on: it must not point at the message freed here. */
	curl_easy_setopt(w->easy, CURLOPT_MIMEPOST, NULL);
	curl_easy_setopt(w->easy, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(w->easy, CURLOPT_MAIL_RCPT, NULL);
	curl_easy_setopt(w->easy, CURLOPT_UPLOAD, 0L);
	curl_easy_setopt(w->easy, CURLOPT_READFUNCTION, NULL);
	curl_easy_setopt(w->easy, CURLOPT_READDATA, NULL);
	curl_easy_setopt(w->easy, CURLOPT_INFILESIZE_LARGE, (curl_off_t)-1);
	mime_msg_free(&msg);
}

/* Appends a finished job for the loop thread (the caller holds the mutex). */
static void sm_post(struct sm_route *r, struct sm_job *j)
{
	j->next = NULL;
	if (r->done_tail)
		r->done_tail->next = j;
	else
		r->done = j;
	r->done_tail = j;
	uv_async_send(r->async);
}

/* A worker: takes jobs until the route stops, one message at a time. */
static void *sm_worker_main(void *arg)
{
	struct sm_worker *w = arg;
	struct sm_route *r = w->r;

	pthread_mutex_lock(&r->mu);
	for (;;) {
		struct sm_job *j;

		while (!atomic_load(&r->stop) && r->jobs == NULL)
			pthread_cond_wait(&r->cv, &r->mu);
		if (atomic_load(&r->stop))
			break; /* jobs still queued are called back by sm_free() */
		j = r->jobs;
		if ((r->jobs = j->next) == NULL)
			r->jobs_tail = NULL;
		w->busy = 1;
		pthread_mutex_unlock(&r->mu);

		sm_run(w, j);
		cJSON_Delete(j->content);
		cJSON_Delete(j->pers);
		j->content = j->pers = NULL;

		pthread_mutex_lock(&r->mu);
		w->busy = 0;
		sm_post(r, j);
	}
	pthread_mutex_unlock(&r->mu);
	/* Ends an idle session with QUIT; a shut one closes at once. */
	curl_easy_cleanup(w->easy);
	w->easy = NULL;
	return NULL;
}

/* Calls back one job on the loop thread and frees it. */
static void sm_deliver(struct sm_route *r, struct sm_job *j)
{
	/* Out of the count first: the callback may send again. */
	if (--r->inflight == 0)
		uv_unref((uv_handle_t *)r->async);
	j->done(j->b, &j->res, j->arg);
	cJSON_Delete(j->content);
	cJSON_Delete(j->pers);
	free(j->raw);
	free(j->raw_from);
	curl_slist_free_all(j->raw_rcpt);
	free(j);
}

/* Takes the oldest finished job, or NULL. */
static struct sm_job *sm_pop_done(struct sm_route *r)
{
	struct sm_job *j;

	pthread_mutex_lock(&r->mu);
	if ((j = r->done) != NULL && (r->done = j->next) == NULL)
		r->done_tail = NULL;
	pthread_mutex_unlock(&r->mu);
	return j;
}

static void sm_release(struct sm_route *r);

/* uv_async callback: the workers finished some jobs. */
static void sm_on_async(uv_async_t *h)
{
	struct sm_route *r = h->data;
	struct sm_job *j;

	/* One at a time: a callback may free the route, which then calls
	 * back whatever is left itself. */
	r->delivering++;
	while (!r->freed && (j = sm_pop_done(r)) != NULL)
		sm_deliver(r, j);
	if (--r->delivering == 0 && r->freed)
		sm_release(r);
}

/* "<addr>" of an envelope address, or NULL (*why set) when it cannot go in
 * a MAIL or RCPT command: a line break there would be a command of its own. */
static char *sm_path(const char *addr, const char **why)
{
	const unsigned char *s;
	size_t n = strlen(addr) + 3;
	char *p;

	for (s = (const unsigned char *)addr; *s; s++)
		if (*s < 0x20 || *s == 0x7f || *s == '<' || *s == '>') {
			*why = "holds a control character or an angle bracket";
			return NULL;
		}
	if ((p = malloc(n)) == NULL) {
		*why = NULL;
		return NULL;
	}
	snprintf(p, n, "<%s>", addr);
	return p;
}

/* Readies a message taken over SMTP: the envelope (MAIL FROM the stored
 * sender, RCPT TO every to, cc and bcc address of the personalization --
 * the one RCPT TO address for a unit of the SMTP intake) and the bytes with
 * X-SMTPAPI spliced.  Returns 0, or -1 with j->res filled. */
static int sm_raw_job(struct sm_job *j, const struct snd_batch *b)
{
	static const char *const lists[] = {"to", "cc", "bcc"};
	const char *why = NULL;
	char err[256] = "";
	int i, rc, n = 0;

	j->res.status = SND_PERMFAIL;
	if (!cJSON_IsObject(j->pers)) {
		snprintf(j->res.error, sizeof(j->res.error),
		         "personalization is not a JSON object");
		return -1;
	}
	if ((j->raw_from = sm_path(b->mail_from ? b->mail_from : "", &why)) == NULL)
		goto bad_addr;
	for (i = 0; i < 3; i++) {
		const cJSON *a;

		cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(j->pers, lists[i]))
		{
			const cJSON *e = cJSON_GetObjectItemCaseSensitive(a, "email");
			struct curl_slist *l;
			char *p;

			if (!cJSON_IsString(e) || e->valuestring[0] == '\0') {
				why = "is empty";
				goto bad_addr;
			}
			if ((p = sm_path(e->valuestring, &why)) == NULL)
				goto bad_addr;
			l = curl_slist_append(j->raw_rcpt, p);
			free(p);
			if (l == NULL)
				goto nomem;
			j->raw_rcpt = l;
			n++;
		}
	}
	if (n == 0) {
		snprintf(j->res.error, sizeof(j->res.error),
		         "personalization: no recipient in to, cc or bcc");
		return -1;
	}
	rc = smtpapi_splice(b->raw, b->raw_len, &j->o, &j->raw, &j->raw_len, err, sizeof(err));
	if (rc == -2)
		goto nomem;
	if (rc < 0) {
		snprintf(j->res.error, sizeof(j->res.error), "%s", err);
		return -1;
	}
	memset(&j->res, 0, sizeof(j->res)); /* the worker's to set */
	return 0;
bad_addr:
	if (why == NULL)
		goto nomem;
	snprintf(j->res.error, sizeof(j->res.error), "an envelope address %s", why);
	return -1;
nomem:
	j->res.status = SND_TEMPFAIL;
	snprintf(j->res.error, sizeof(j->res.error), "out of memory readying the message");
	return -1;
}

/* Queues one message for the workers, or refuses when the route is full. */
static int sm_send(void *impl, struct snd_batch *b, snd_done_cb done, void *arg)
{
	struct sm_route *r = impl;
	struct sm_job *j;
	int failed;

	if (r->freeing || r->inflight >= r->max_conn || b == NULL || done == NULL ||
	    b->nitems != 1 || b->items == NULL)
		return -1;
	if ((j = calloc(1, sizeof(*j))) == NULL)
		return -1;
	j->b = b;
	j->done = done;
	j->arg = arg;
	snprintf(j->msgid, sizeof(j->msgid), "%s", b->msgid ? b->msgid : "");
	j->o.unit_id = b->items[0].unit_id;
	j->o.msgid = j->msgid;
	j->o.x_smtpapi = r->x_smtpapi;
	j->o.warmup_day = b->warmup_day;
	j->o.route_name = b->role == SND_ROLE_OLD ? "old" : "new";
	j->o.click = r->click;
	j->o.open = r->open;
	j->o.sub = r->sub;
	j->o.force_tracking = r->force;
	j->o.ip_pool = r->ip_pool;
	j->pers = cJSON_Parse(b->items[0].personalization ? b->items[0].personalization : "");
	if (b->raw != NULL) {
		/* Taken over SMTP: its v3 form (content) is the API route's. */
		failed = sm_raw_job(j, b) < 0;
	} else {
		j->content = cJSON_Parse(b->content ? b->content : "");
		if ((failed = !cJSON_IsObject(j->content) || !cJSON_IsObject(j->pers))) {
			j->res.status = SND_PERMFAIL;
			snprintf(j->res.error, sizeof(j->res.error), "%s is not a JSON object",
			         cJSON_IsObject(j->content) ? "personalization" : "content");
		}
	}

	if (r->inflight++ == 0)
		uv_ref((uv_handle_t *)r->async);
	pthread_mutex_lock(&r->mu);
	if (failed) {
		/* A result, not a refusal; the callback comes from the loop. */
		sm_post(r, j);
	} else {
		if (r->jobs_tail)
			r->jobs_tail->next = j;
		else
			r->jobs = j;
		r->jobs_tail = j;
		pthread_cond_signal(&r->cv);
	}
	pthread_mutex_unlock(&r->mu);
	return 0;
}

/* Messages under way, failures not yet called back included. */
static int sm_inflight(const void *impl)
{
	return ((const struct sm_route *)impl)->inflight;
}

/* At most max_connections messages at once: one per worker. */
static int sm_capacity(const void *impl)
{
	return ((const struct sm_route *)impl)->max_conn;
}

/* One personalization is one message. */
static int sm_batch_max(const void *impl)
{
	(void)impl;
	return 1;
}

/* Close callback of the async handle. */
static void sm_async_closed(uv_handle_t *h)
{
	free(h);
}

/* Stops and joins the workers; what they hold stays on the lists. */
static void sm_stop_workers(struct sm_route *r)
{
	int i;

	pthread_mutex_lock(&r->mu);
	atomic_store(&r->stop, 1);
	for (i = 0; i < r->nworkers; i++)
		if (r->w[i].busy)
			sm_shut(&r->w[i]);
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
	for (i = 0; i < r->nworkers; i++)
		if (r->w[i].started)
			pthread_join(r->w[i].thread, NULL);
}

/* Frees the route's memory once nothing can reach it any more. */
static void sm_release(struct sm_route *r)
{
	pthread_cond_destroy(&r->cv);
	pthread_mutex_destroy(&r->mu);
	if (r->secret != NULL) {
		explicit_bzero(r->secret, strlen(r->secret));
		free(r->secret);
	}
	free(r->w);
	free(r);
	curl_global_cleanup();
}

/* Stops the workers, calls back every job still held, then frees. */
static void sm_free(void *impl)
{
	struct sm_route *r = impl;
	struct sm_job *j;

	if (r == NULL || r->freeing)
		return;
	r->freeing = 1;
	sm_stop_workers(r);
	/* Finished jobs keep their real outcome: an accepted message must not
	 * go back to the queue and be sent twice. */
	while ((j = sm_pop_done(r)) != NULL)
		sm_deliver(r, j);
	while ((j = r->jobs) != NULL) {
		if ((r->jobs = j->next) == NULL)
			r->jobs_tail = NULL;
		memset(&j->res, 0, sizeof(j->res));
		j->res.status = SND_TEMPFAIL;
		snprintf(j->res.error, sizeof(j->res.error), "not sent: the route was stopped");
		sm_deliver(r, j);
	}
	uv_close((uv_handle_t *)r->async, sm_async_closed);
	r->async = NULL;
	if (r->delivering > 0)
		r->freed = 1; /* sm_on_async() still reads r; it releases it */
	else
		sm_release(r);
}

/* Starts the worker threads with every signal blocked: signals are the
 * loop's business (uv_signal), and a worker must not take them. */
static int sm_start_workers(struct sm_route *r, char *err, size_t errlen)
{
	sigset_t all, old;
	int i, rc = 0;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (i = 0; i < r->nworkers && rc == 0; i++) {
		r->w[i].r = r;
		if ((rc = pthread_create(&r->w[i].thread, NULL, sm_worker_main, &r->w[i])) == 0)
			r->w[i].started = 1;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0)
		snprintf(err, errlen, "route smtp: cannot start a worker thread: %s", strerror(rc));
	return rc == 0 ? 0 : -1;
}

/* Checks the route's config, keeps what every message needs and starts
 * one worker per connection. */
static int sm_create(void **impl, const struct snd_route_conf *conf, struct curluv *cu, char *err,
                     size_t errlen)
{
	struct sm_route *r;
	int smtps = strncmp(conf->url, "smtps://", 8) == 0;

	*impl = NULL;
	if (cu == NULL) {
		snprintf(err, errlen, "route smtp: no event loop");
		return -1;
	}
	if (!smtps && strncmp(conf->url, "smtp://", 7) != 0) {
		snprintf(err, errlen,
		         "route smtp: url must be smtp://HOST:PORT (STARTTLS) or "
		         "smtps://HOST:PORT, got '%.120s'",
		         conf->url);
		return -1;
	}
	if (smtps && conf->tls == SND_TLS_NONE) {
		snprintf(err, errlen,
		         "route smtp: tls = none contradicts the smtps:// url (TLS from the "
		         "first byte)");
		return -1;
	}
	if (conf->username[0] != '\0' && (conf->secret == NULL || conf->secret[0] == '\0')) {
		snprintf(err, errlen, "route smtp: username %.60s has no password", conf->username);
		return -1;
	}
	if (conf->secret != NULL && strpbrk(conf->secret, "\r\n") != NULL) {
		snprintf(err, errlen, "route smtp: the password contains a line break");
		return -1;
	}
	/* Threads call curl_easy_init(); the global init must come first, on
	 * this thread (it is counted, so this one is ours to undo). */
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		snprintf(err, errlen, "route smtp: libcurl cannot start");
		return -1;
	}
	if ((r = calloc(1, sizeof(*r))) == NULL ||
	    (conf->secret != NULL && (r->secret = strdup(conf->secret)) == NULL)) {
		free(r);
		curl_global_cleanup();
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	atomic_init(&r->stop, 0);
	snprintf(r->url, sizeof(r->url), "%s", conf->url);
	snprintf(r->username, sizeof(r->username), "%s", conf->username);
	snprintf(r->ca_file, sizeof(r->ca_file), "%s", conf->ca_file);
	r->use_ssl = conf->tls == SND_TLS_NONE       ? (long)CURLUSESSL_NONE
	             : conf->tls == SND_TLS_OPTIONAL ? (long)CURLUSESSL_TRY
	                                            : (long)CURLUSESSL_ALL;
	r->timeout_ms = conf->timeout > 0 ? (long)((conf->timeout + 999) / 1000) : 30000L;
	r->max_conn = conf->max_connections > 0 ? conf->max_connections : 8;
	r->x_smtpapi = conf->x_smtpapi != 0;
	r->click = conf->click_tracking != 0;
	r->open = conf->open_tracking != 0;
	r->sub = conf->subscription_tracking != 0;
	r->force = conf->force_tracking != 0;
	snprintf(r->ip_pool, sizeof(r->ip_pool), "%s", conf->ip_pool);
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cv, NULL);
	r->nworkers = r->max_conn;
	r->w = calloc((size_t)r->nworkers, sizeof(*r->w));
	r->async = malloc(sizeof(*r->async));
	if (r->w == NULL || r->async == NULL) {
		free(r->async);
		sm_release(r);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (uv_async_init(curluv_loop(cu), r->async, sm_on_async) < 0) {
		free(r->async);
		sm_release(r);
		snprintf(err, errlen, "route smtp: cannot set up the event loop wakeup");
		return -1;
	}
	r->async->data = r;
	/* Only work under way keeps the loop running. */
	uv_unref((uv_handle_t *)r->async);
	if (sm_start_workers(r, err, errlen) < 0) {
		r->freeing = 1;
		sm_stop_workers(r);
		uv_close((uv_handle_t *)r->async, sm_async_closed);
		sm_release(r);
		return -1;
	}
	*impl = r;
	return 0;
}

const struct snd_backend snd_smtp_backend = {
    .name = "smtp",
    .create = sm_create,
    .send = sm_send,
    .inflight = sm_inflight,
    .capacity = sm_capacity,
    .batch_max = sm_batch_max,
    .free = sm_free,
};
