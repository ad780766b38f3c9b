/*
 * smtp.c -- the SMTP route: the team's old relay, or SendGrid's SMTP relay.
 *
 * DESCRIPTION
 *	One unit is one message: the batch carries one personalization, and
 *	mime.c turns it and the stored content into headers, a curl_mime body
 *	and an envelope (MAIL FROM from.email, RCPT TO every to, cc and bcc).
 *	The transfer runs on the shared curl multi handle (curluv.c), whose
 *	connection cache keeps the SMTP session open after a message, so the
 *	next message to the same relay skips connect, EHLO, STARTTLS and AUTH.
 *	At most max_connections messages are in flight per route; a route at
 *	capacity refuses the batch and the dispatcher tries again later.
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
 *	    535 or other AUTH refusal   authfail: pause the route
 *	    5xx to the greeting, EHLO   authfail as well: the relay refuses
 *	    or STARTTLS                 the session, no unit is at fault
 *	    no STARTTLS, tls required   tempfail, saying why
 *	    curl timeout                timeout
 *	    refused, reset, TLS errors  tempfail
 *
 *	A recipient refused with 4xx or 5xx stops the whole message before
 *	DATA, so a retry never delivers twice to the ones already accepted.
 *
 * SECURITY
 *	The password goes to curl once per transfer; error texts are scrubbed
 *	of it, and the route's copy is wiped on free.
 */
#include "sender_backend.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "mime.h"

#define SM_REPLY_MAX 200
#define SM_SOCKS     256 /* sockets remembered for sm_drop_conn() */

/*
 * Sockets curl opened for SMTP transfers, newest last.  A transfer that
 * failed midway (a timeout while waiting for the reply to the message body,
 * above all) can leave its connection in curl's cache with a reply still to
 * come: the next message on it would read that late reply as the answer to
 * its MAIL FROM, and closing it would block on QUIT.  sm_drop_conn() finds
 * such a connection here by its addresses and shuts the socket down, which
 * curl's liveness check then sees.  Static, not per route: connections
 * outlive the route that opened them, in the shared multi handle's cache.
 */
static curl_socket_t sm_socks[SM_SOCKS];
static unsigned sm_nsocks;

struct sm_route;

/* One message on its way, and what the relay has said so far. */
struct sm_req {
	struct sm_route *r;
	struct snd_batch *b;
	snd_done_cb done;
	void *arg;
	CURL *easy;
	struct mime_msg msg;
	int deferred; /* failed before curl: reported from a 0 ms timer */
	uv_timer_t defer;
	char err[256];
	char errbuf[CURL_ERROR_SIZE];
	char cmd[12];               /* verb of the last command sent */
	char reply[SM_REPLY_MAX];   /* last reply line */
	char reply_cmd[12];         /* the command that reply answered */
	int in_body;                /* 354 seen: the next reply is the verdict */
	char verdict[SM_REPLY_MAX]; /* the reply to the message body */
	struct sm_req *prev, *next;
};

struct sm_route {
	struct curluv *cu;
	char url[sizeof(((struct wu_route_conf *)0)->url)];
	char username[sizeof(((struct wu_route_conf *)0)->username)];
	char ca_file[sizeof(((struct wu_route_conf *)0)->ca_file)];
	char *secret;
	long use_ssl;
	long timeout_ms;
	int max_conn;
	int x_smtpapi;
	int click, open, sub;
	char ip_pool[128];
	int inflight;
	struct sm_req *reqs;
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

/* CURLOPT_SOCKOPTFUNCTION: remembers every socket curl opens for us. */
static int sm_on_sockopt(void *arg, curl_socket_t fd, curlsocktype purpose)
{
	(void)arg;
	(void)purpose;
	sm_socks[sm_nsocks++ % SM_SOCKS] = fd;
	return CURL_SOCKOPT_OK;
}

/* The port of a socket address, or -1. */
static int sm_port(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)ss)->sin_port);
	if (ss->ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
	return -1;
}

/* Shuts down the connection a failed transfer used, if it is still open:
 * the socket whose local and peer ports are the transfer's.  A number
 * reused by some other socket has other ports and is left alone. */
static void sm_drop_conn(CURL *easy)
{
	long lport = 0, pport = 0;
	unsigned i, n = sm_nsocks < SM_SOCKS ? sm_nsocks : SM_SOCKS;

	if (curl_easy_getinfo(easy, CURLINFO_LOCAL_PORT, &lport) != CURLE_OK ||
	    curl_easy_getinfo(easy, CURLINFO_PRIMARY_PORT, &pport) != CURLE_OK || lport <= 0)
		return;
	for (i = 0; i < n; i++) {
		struct sockaddr_storage me, peer;
		socklen_t ml = sizeof(me), pl = sizeof(peer);
		curl_socket_t fd = sm_socks[i];

		if (fd == CURL_SOCKET_BAD || getsockname(fd, (struct sockaddr *)&me, &ml) < 0 ||
		    getpeername(fd, (struct sockaddr *)&peer, &pl) < 0)
			continue;
		if (sm_port(&me) == lport && sm_port(&peer) == pport) {
			shutdown(fd, SHUT_RDWR);
			sm_socks[i] = CURL_SOCKET_BAD;
		}
	}
}

/* Frees a request and its message. */
static void sm_req_free(struct sm_req *q)
{
	mime_msg_free(&q->msg);
	free(q);
}

/* Close callback of a deferred request's timer. */
static void sm_defer_closed(uv_handle_t *h)
{
	sm_req_free(h->data);
}

/* Takes q out of the route and hands its one result to the caller. */
static void sm_complete(struct sm_req *q, const struct snd_result *res)
{
	struct sm_route *r = q->r;

	/* Out of the route first: the callback may send again or free it. */
	if (q->prev)
		q->prev->next = q->next;
	else
		r->reqs = q->next;
	if (q->next)
		q->next->prev = q->prev;
	r->inflight--;
	q->done(q->b, res, q->arg);
	if (q->deferred)
		uv_close((uv_handle_t *)&q->defer, sm_defer_closed);
	else
		sm_req_free(q);
}

/* The 0 ms timer of a unit whose stored data makes no message. */
static void sm_on_defer(uv_timer_t *t)
{
	struct sm_req *q = t->data;
	struct snd_result res = {.status = SND_PERMFAIL};

	snprintf(res.error, sizeof(res.error), "%s", q->err);
	sm_complete(q, &res);
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
	struct sm_req *q = arg;
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
static void sm_classify(const struct sm_route *r, struct sm_req *q, CURL *easy, CURLcode result,
                        struct snd_result *res)
{
	long code = 0;
	const char *when = q->reply_cmd[0] ? q->reply_cmd : "the greeting";
	int session =
	    strcmp(when, "MAIL") != 0 && strcmp(when, "RCPT") != 0 && strcmp(when, "DATA") != 0;

	memset(res, 0, sizeof(*res));
	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
	res->code = code;
	if (result == CURLE_ABORTED_BY_CALLBACK) {
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
	} else if (result == CURLE_LOGIN_DENIED ||
	           (code >= 500 && (code == 530 || code == 534 || code == 535 || code == 538 ||
	                            strcmp(when, "AUTH") == 0))) {
		res->status = SND_AUTHFAIL;
		snprintf(res->error, sizeof(res->error), "AUTH as %.40s refused by %.60s: %.100s",
		         r->username[0] ? r->username : "(no username)", r->url,
		         q->reply[0] ? q->reply : q->errbuf);
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
		         curl_easy_strerror(result), q->errbuf[0] ? q->errbuf : r->url);
	}
	sm_scrub(r, res->error);
	sm_scrub(r, res->provider_id);
}

/* curluv's callback: the message went, or did not. */
static void sm_on_done(CURL *easy, CURLcode result, void *arg)
{
	struct sm_req *q = arg;
	struct snd_result res;

	sm_classify(q->r, q, easy, result, &res);
	if (result != CURLE_OK)
		sm_drop_conn(easy);
	curl_easy_cleanup(easy);
	q->easy = NULL;
	sm_complete(q, &res);
}

/* Links a request into the route's list of requests under way. */
static void sm_link(struct sm_route *r, struct sm_req *q)
{
	q->next = r->reqs;
	if (r->reqs)
		r->reqs->prev = q;
	r->reqs = q;
	r->inflight++;
}

/* Builds and starts one message, or refuses when the route is full. */
static int sm_send(void *impl, struct snd_batch *b, snd_done_cb done, void *arg)
{
	struct sm_route *r = impl;
	struct mime_opts o = {0};
	struct sm_req *q;
	CURL *e;
	int rc;

	if (r->inflight >= r->max_conn || b == NULL || done == NULL || b->nitems != 1 ||
	    b->items == NULL)
		return -1;
	if ((q = calloc(1, sizeof(*q))) == NULL)
		return -1;
	q->r = r;
	q->b = b;
	q->done = done;
	q->arg = arg;
	if ((e = curl_easy_init()) == NULL) {
		sm_req_free(q);
		return -1;
	}
	o.unit_id = b->items[0].unit_id;
	o.msgid = b->msgid;
	o.now = time(NULL);
	o.x_smtpapi = r->x_smtpapi;
	o.warmup_day = b->warmup_day;
	o.route_name = b->route == WU_ROUTE_OLD ? "old" : "new";
	o.click = r->click;
	o.open = r->open;
	o.sub = r->sub;
	o.ip_pool = r->ip_pool;
	rc = mime_build(&q->msg, e, b->content, b->items[0].personalization, &o, q->err,
	                sizeof(q->err));
	if (rc == -2) {
		curl_easy_cleanup(e);
		sm_req_free(q);
		return -1;
	}
	if (rc == -1) {
		/* Bad stored data is a result, not a refusal; but the caller must
		 * never see its callback from inside this call. */
		curl_easy_cleanup(e);
		if (uv_timer_init(curluv_loop(r->cu), &q->defer) < 0) {
			sm_req_free(q);
			return -1;
		}
		q->defer.data = q;
		q->deferred = 1;
		uv_timer_start(&q->defer, sm_on_defer, 0, 0);
		sm_link(r, q);
		return 0;
	}

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
	curl_easy_setopt(e, CURLOPT_MAIL_FROM, q->msg.mail_from);
	curl_easy_setopt(e, CURLOPT_MAIL_RCPT, q->msg.rcpt);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, q->msg.headers);
	curl_easy_setopt(e, CURLOPT_MIMEPOST, q->msg.mime);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, r->timeout_ms);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, q->errbuf);
	curl_easy_setopt(e, CURLOPT_SOCKOPTFUNCTION, sm_on_sockopt);
	/* The debug callback is how the relay's reply text reaches us; it
	 * replaces curl's printing, so VERBOSE writes nothing to stderr. */
	curl_easy_setopt(e, CURLOPT_DEBUGFUNCTION, sm_on_debug);
	curl_easy_setopt(e, CURLOPT_DEBUGDATA, q);
	curl_easy_setopt(e, CURLOPT_VERBOSE, 1L);
	q->easy = e;
	if (curluv_add(r->cu, e, sm_on_done, q) < 0) {
		curl_easy_cleanup(e);
		sm_req_free(q);
		return -1;
	}
	sm_link(r, q);
	return 0;
}

/* Messages under way, deferred failures included. */
static int sm_inflight(const void *impl)
{
	return ((const struct sm_route *)impl)->inflight;
}

/* At most max_connections messages at once. */
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

/* Aborts what is still running (each batch gets its callback), then frees. */
static void sm_free(void *impl)
{
	struct sm_route *r = impl;

	if (r == NULL)
		return;
	while (r->reqs != NULL) {
		struct sm_req *q = r->reqs;

		if (q->deferred) {
			uv_timer_stop(&q->defer);
			sm_on_defer(&q->defer);
		} else if (curluv_cancel(r->cu, q->easy) < 0) {
			sm_on_done(q->easy, CURLE_ABORTED_BY_CALLBACK, q);
		}
	}
	if (r->secret != NULL) {
		explicit_bzero(r->secret, strlen(r->secret));
		free(r->secret);
	}
	free(r);
}

/* Checks the route's config and keeps what every message needs. */
static int sm_create(void **impl, const struct wu_route_conf *conf, struct curluv *cu, char *err,
                     size_t errlen)
{
	struct sm_route *r;
	int smtps = strncmp(conf->url, "smtps://", 8) == 0;

	*impl = NULL;
	if (cu == NULL) {
		snprintf(err, errlen, "route smtp: no curl multi handle");
		return -1;
	}
	if (!smtps && strncmp(conf->url, "smtp://", 7) != 0) {
		snprintf(err, errlen,
		         "route smtp: url must be smtp://HOST:PORT (STARTTLS) or "
		         "smtps://HOST:PORT, got '%.120s'",
		         conf->url);
		return -1;
	}
	if (smtps && conf->tls == WU_TLS_NONE) {
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
	if ((r = calloc(1, sizeof(*r))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (conf->secret != NULL && (r->secret = strdup(conf->secret)) == NULL) {
		free(r);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	r->cu = cu;
	snprintf(r->url, sizeof(r->url), "%s", conf->url);
	snprintf(r->username, sizeof(r->username), "%s", conf->username);
	snprintf(r->ca_file, sizeof(r->ca_file), "%s", conf->ca_file);
	r->use_ssl = conf->tls == WU_TLS_NONE       ? (long)CURLUSESSL_NONE
	             : conf->tls == WU_TLS_OPTIONAL ? (long)CURLUSESSL_TRY
	                                            : (long)CURLUSESSL_ALL;
	r->timeout_ms = conf->timeout > 0 ? (long)((conf->timeout + 999) / 1000) : 30000L;
	r->max_conn = conf->max_connections > 0 ? conf->max_connections : 8;
	r->x_smtpapi = conf->x_smtpapi != 0;
	r->click = conf->click_tracking != 0;
	r->open = conf->open_tracking != 0;
	r->sub = conf->subscription_tracking != 0;
	snprintf(r->ip_pool, sizeof(r->ip_pool), "%s", conf->ip_pool);
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
