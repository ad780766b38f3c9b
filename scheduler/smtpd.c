/*
 * smtpd.c -- the SMTP intake: sessions, commands and DATA on the libuv loop.
 *
 * NAME
 *	smtpd - warmupd as an SMTP next hop (Postfix relayhost, app mailers)
 *
 * DESCRIPTION
 *	One session per connection, an explicit state (what it waits for) and
 *	one table of commands.  Every reply goes through reply(), which counts
 *	the errors that end a session.  Input is read into a plain-text buffer
 *	(after TLS, when STARTTLS is on) and processed line by line; pipelined
 *	commands are answered in order, their replies written together.
 *
 *	A message is read up to [smtp] max_size after dot-unstuffing; past it
 *	the rest is read and thrown away and the reply is 552, the session
 *	kept.  At the end of DATA the message is converted to its v3 form
 *	(rawmail.c; a message that cannot be is refused with 554, since the v3
 *	route could not send it), stored with one unit per recipient in the
 *	loop turn's transaction, and the session waits: 250 goes out only
 *	after the commit, 451 if it failed (nothing kept, the client retries).
 *	While it waits, the session reads nothing more.
 *
 *	Bare LF and NUL in commands are refused (500); in a message they make
 *	it refused at the end (554): a message whose line ends are ambiguous
 *	is how SMTP smuggling starts.
 *
 * SECURITY
 *	AUTH is offered inside TLS only, or in clear to loopback clients.
 *	Input pipelined after STARTTLS is thrown away (RFC 3207 6).  Passwords
 *	are never logged; AUTH lines are not either.
 */
#include "smtpd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <openssl/crypto.h>

#include "cidr.h"
#include "daemon.h"
#include "dispatcher.h"
#include "intake.h"
#include "log.h"
#include "msgid.h"
#include "mx.h"
#include "sender/rawmail.h"
#include "sender/strbuf.h"
#include "sender/v3mail.h"
#include "smtpd_auth.h"
#include "smtpd_parse.h"
#include "suppress.h"
#include "tlsmem.h"
#include "workq.h"

#define READ_MAX (256 * 1024) /* plain text buffered before a session stops reading */
#define SMTPD_RBUF 65536      /* one read */
#define DATA_RESERVE 8192     /* a message's buffer at DATA, unless SIZE= says more */
#define DATA_RESERVE_MAX (1024 * 1024) /* the most SIZE= makes reserved at once */

/* What a session waits for. */
enum state {
	ST_HELO,      /* a greeting was sent: EHLO or HELO */
	ST_READY,     /* MAIL */
	ST_RCPT,      /* RCPT, or DATA once there is a recipient */
	ST_DATA,      /* message lines, up to "." */
	ST_CONVERT,   /* the message's conversion on a worker thread */
	ST_COMMIT,    /* the turn's commit, for the reply to DATA */
	ST_AUTH,      /* an AUTH response line */
	ST_CLOSING    /* nothing: the socket is being closed */
};

enum auth_step { AUTH_PLAIN, AUTH_LOGIN_USER, AUTH_LOGIN_PASS };

struct session {
	struct smtpd *srv;
	uv_tcp_t tcp;
	uv_timer_t timer;
	uv_shutdown_t shut;
	struct session *prev, *next;
	int nclosed;
	char peer[64];
	int trusted;  /* in [smtp] networks */
	int loopback;
	enum state st;
	int esmtp;
	int errors;
	/* input, plain text */
	struct strbuf in;
	int discarding; /* a command line over the limit: skip to its end */
	int midline;    /* DATA: the last piece taken did not end a line */
	int restart;    /* STARTTLS threw the buffered input away */
	int reading;
	int gone; /* lost while waiting: 1 ended after it, 2 closed after it */
	/* TLS */
	struct tlsmem *tls;
	/* AUTH */
	enum auth_step auth_step;
	char auth_user[256];
	char user[256]; /* authenticated as, "" when not */
	/* the transaction */
	char from[SMTPD_PATH_MAX];
	char **rcpt;
	int nrcpt, ndropped;
	struct strbuf msg; /* DATA as received, up to max_size */
	size_t size_hint;  /* MAIL's SIZE=, 0 when not given */
	int too_big, bad_lf, bad_nul;
	char msgid[32];
	struct workq_job job; /* ST_CONVERT: convert_msg() on a worker thread */
	wu_time_t conv_now;   /* the daemon's time when DATA ended, for it */
	struct rawmail *rm;   /* its result: the v3 form, with personalizations */
	cJSON *ps;            /* (those, in rm's body) */
	char *v3;             /* the body to store: no personalizations or parts */
	int conv_fail;        /* or 554 (cerr says why) or 451 (out of memory) */
	char cerr[256];
	/* output, plain text, sent at the end of the processing of a read */
	struct strbuf out;
};

struct smtpd {
	struct wu_daemon *d;
	const struct wu_smtpd_conf *conf;
	uv_tcp_t listener;
	int port;
	int nsessions;
	struct session *sessions;
	struct tlsmem_ctx *tls;
	struct smtpd_users *users;
	struct workq *wq; /* the conversions' threads */
	char *rbuf;       /* every session's reads land here, then are copied */
	int stopping;
	int listener_closed;
};

static void session_process(struct session *s);
static void session_close(struct session *s);
static void session_end(struct session *s);
static void session_finish(struct session *s, int shut);

/* Waiting for a worker thread or the commit: input is read but not
 * processed (up to READ_MAX), the session is not closed under the
 * callback that will answer. */
static int waiting(const struct session *s)
{
	return s->st == ST_CONVERT || s->st == ST_COMMIT;
}
static void flush(struct session *s);
static void start_reading(struct session *s);
static void smtpd_free_if_done(struct smtpd *srv);

/* ---- output -------------------------------------------------------------- */

static void on_written(uv_write_t *w, int status)
{
	(void)status;
	free(w->data);
	free(w);
}

/* Writes bytes to the socket, as they are; own, if not NULL, is p itself,
 * a malloc'd buffer, ours now.  A reply is small and the
 * socket's buffer almost always has room: it is written at once, from
 * where it lies; only what does not fit is kept (copied unless own holds
 * just that) for a uv_write, after anything queued before it (uv_try_write
 * refuses while the queue holds bytes, so the order is kept). */
static void wire(struct session *s, const char *p, size_t n, char *own)
{
	uv_write_t *w;
	uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
	int done = n ? uv_try_write((uv_stream_t *)&s->tcp, &b, 1) : 0;
	char *rest;

	if (done < 0 && done != UV_EAGAIN) {
		free(own); /* the connection is gone: its read sees the end */
		return;
	}
	if (done < 0)
		done = 0;
	if ((size_t)done == n) {
		free(own);
		return;
	}
	n -= (size_t)done;
	if (own && done == 0)
		rest = own;
	else {
		if ((rest = malloc(n)))
			memcpy(rest, p + done, n);
		free(own);
	}
	if (!rest || !(w = malloc(sizeof(*w)))) {
		free(rest);
		return;
	}
	w->data = rest;
	b = uv_buf_init(rest, (unsigned)n);
	if (uv_write(w, (uv_stream_t *)&s->tcp, &b, 1, on_written) < 0) {
		free(rest);
		free(w);
	}
}

/* Sends what OpenSSL has for the wire. */
static void tls_out(struct session *s)
{
	char *buf;
	size_t n;

	if (s->tls && (n = tlsmem_pending(s->tls, &buf)) > 0)
		wire(s, buf, n, buf);
}

/* Sends the queued replies, through TLS when it is on. */
static void flush(struct session *s)
{
	size_t n = s->out.len;

	if (!n)
		return;
	if (s->tls) {
		if (tlsmem_write(s->tls, s->out.p, n) < 0)
			wu_warn("smtp: %s: TLS write failed", s->peer);
		strbuf_reset(&s->out);
		tls_out(s);
		return;
	}
	wire(s, s->out.p, n, NULL); /* written, or copied to wait */
	strbuf_reset(&s->out);
}

/* Queues one reply line (or several, joined by \n in text).  A 5xx for a
 * bad command counts toward [smtp] max_errors. */
static void reply(struct session *s, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(line) - 3)
		n = (int)sizeof(line) - 3;
	line[n++] = '\r';
	line[n++] = '\n';
	if (strbuf_add(&s->out, line, (size_t)n) < 0) {
		/* Only this line is lost (the buffer keeps the replies before
		 * it); the next one may fit, so the failure is not kept. */
		s->out.failed = 0;
		return;
	}
	if (line[0] == '5' && strncmp(line, "554", 3) != 0 && strncmp(line, "552", 3) != 0 &&
	    strncmp(line, "550", 3) != 0 && strncmp(line, "535", 3) != 0)
		s->errors++;
	wu_debug("smtp: %s: > %.*s", s->peer, n - 2, line);
}

/* ---- the transaction ------------------------------------------------------ */

static void txn_reset(struct session *s)
{
	for (int i = 0; i < s->nrcpt; i++)
		free(s->rcpt[i]);
	free(s->rcpt);
	s->rcpt = NULL;
	s->nrcpt = s->ndropped = 0;
	s->from[0] = '\0';
	s->size_hint = 0;
	strbuf_free(&s->msg);
	s->too_big = s->bad_lf = s->bad_nul = 0;
	if (s->st != ST_HELO)
		s->st = ST_READY;
}

/* Appends message bytes, up to max_size; past it only counts. */
static void msg_add(struct session *s, const char *p, size_t n)
{
	size_t max = s->srv->conf->max_size;

	if (s->too_big || s->msg.len + n > max) {
		s->too_big = 1;
		return;
	}
	if (strbuf_add(&s->msg, p, n) < 0)
		s->too_big = 1; /* answered as too big: it cannot be kept */
}

/* After the commit: 250 or 451, and the session reads again. */
static void on_committed(void *arg, int ok)
{
	struct session *s = arg;
	struct wu_daemon *d = s->srv->d;

	if (ok) {
		reply(s, "250 2.0.0 Ok: queued as %s", s->msgid);
		d->extra.smtp_accepted++;
		dispatcher_kick(d->disp);
		wu_debug("smtp: %s: %s with %d recipient%s", s->peer, s->msgid, s->nrcpt,
		         s->nrcpt == 1 ? "" : "s");
	} else {
		reply(s, "451 4.3.0 The message could not be stored; try again later");
	}
	txn_reset(s);
	s->st = ST_READY;
	flush(s);
	if (s->srv->stopping) {
		reply(s, "421 4.3.2 %s Service shutting down", s->srv->conf->hostname);
		flush(s);
		session_close(s);
		return;
	}
	session_process(s);
}

static void convert_work(struct workq_job *j);
static void convert_done(struct workq_job *j);

/* The end of DATA: refuse at once, or convert on a worker thread (GMime
 * is the costly part of a message), then store and wait for the commit. */
static void msg_done(struct session *s)
{
	struct smtpd *srv = s->srv;
	struct wu_daemon *d = srv->d;

	s->st = ST_READY;
	if (s->too_big) {
		reply(s, "552 5.3.4 Message size exceeds the limit of %zu bytes",
		      srv->conf->max_size);
		goto refused;
	}
	if (s->bad_lf || s->bad_nul) {
		reply(s, "554 5.6.0 Message refused: %s",
		      s->bad_nul ? "it contains NUL bytes" : "a line ends in a bare LF or CR");
		goto refused;
	}
	if (s->nrcpt == s->ndropped) {
		/* Every recipient was suppressed and dropped: taken, nothing kept. */
		msgid_make(s->msgid);
		reply(s, "250 2.0.0 Ok: queued as %s (every recipient suppressed)", s->msgid);
		d->extra.smtp_accepted++;
		txn_reset(s);
		return;
	}
	s->job.data = s;
	s->job.work = convert_work;
	s->job.done = convert_done;
	s->conv_now = daemon_now(d);
	workq_push(srv->wq, &s->job);
	s->st = ST_CONVERT;
	return;
refused:
	d->extra.smtp_rejected++;
	txn_reset(s);
}

/* {"to":[{"email":addr}]}, or NULL without the memory. */
static cJSON *one_recipient(const char *addr)
{
	cJSON *p = cJSON_CreateObject(), *to, *a;

	if (!p || !(to = cJSON_AddArrayToObject(p, "to")) || !(a = cJSON_CreateObject()) ||
	    !cJSON_AddItemToArray(to, a) || !cJSON_AddStringToObject(a, "email", addr)) {
		cJSON_Delete(p);
		return NULL;
	}
	return p;
}

/* Frees what a conversion made. */
static void conv_free(struct session *s)
{
	rawmail_free(s->rm);
	s->rm = NULL;
	s->ps = NULL;
	free(s->v3);
	s->v3 = NULL;
}

/* The message as the v3 route would send it, judged as the v3 API would,
 * with one personalization per recipient taken (the proof that the API
 * route can send it), and the body to store.  0, or the reply's code. */
static int convert_msg(struct session *s)
{
	struct v3mail_errors errs = {0};
	cJSON *body, *p, *parts[2];

	s->rm = rawmail_parse(s->msg.p ? s->msg.p : "", s->msg.len, s->cerr, sizeof(s->cerr));
	if (!s->rm)
		return 554;
	body = rawmail_body(s->rm);
	if (!(s->ps = cJSON_AddArrayToObject(body, "personalizations")))
		return 451;
	for (int i = 0; i < s->nrcpt; i++) {
		if (!s->rcpt[i])
			continue; /* dropped: suppressed */
		if (!(p = one_recipient(s->rcpt[i])) || !cJSON_AddItemToArray(s->ps, p)) {
			cJSON_Delete(p);
			return 451;
		}
	}
	if (rawmail_finish(s->rm, s->cerr, sizeof(s->cerr)) < 0)
		return 554;
	if (intake_send_at_check(body, s->conv_now, &errs) < 0) {
		snprintf(s->cerr, sizeof(s->cerr), "X-SMTPAPI send_at: %.200s", errs.e[0].message);
		return 554;
	}
	/* The stored body has no personalizations: each unit carries its own.
	 * Nor content or attachments: the message is stored once, as it came,
	 * and the API route makes them from it again (sendgrid.c). */
	cJSON_DetachItemViaPointer(body, s->ps);
	parts[0] = cJSON_DetachItemFromObjectCaseSensitive(body, "content");
	parts[1] = cJSON_DetachItemFromObjectCaseSensitive(body, "attachments");
	s->v3 = cJSON_PrintUnformatted(body);
	cJSON_AddItemToObject(body, "personalizations", s->ps);
	cJSON_Delete(parts[0]);
	cJSON_Delete(parts[1]);
	return s->v3 ? 0 : 451;
}

/* On a worker thread: the session is the job's alone until it is done
 * (the loop neither reads from its client nor closes it meanwhile). */
static void convert_work(struct workq_job *j)
{
	struct session *s = j->data;

	s->conv_fail = convert_msg(s);
}

/* Back on the loop: store, and wait for the commit. */
static void store_msg(struct session *s)
{
	struct smtpd *srv = s->srv;
	struct wu_daemon *d = srv->d;
	int64_t cid;
	wu_time_t now = daemon_now(d);

	if (s->conv_fail == 554) {
		reply(s, "554 5.6.0 Message refused: %s", s->cerr);
		goto refused;
	}
	if (s->conv_fail)
		goto fail;
	msgid_make(s->msgid);
	if (daemon_txn(d) < 0 ||
	    store_add_raw_content(d->store, s->msgid, s->v3, strlen(s->v3),
	                          s->msg.p ? s->msg.p : "", s->msg.len, s->from, now, &cid) < 0)
		goto fail;
	if (intake_add_units(d, rawmail_body(s->rm), s->ps, cid, 0, now) < 0)
		goto fail;
	if (daemon_after_commit(d, on_committed, s) < 0)
		goto fail;
	conv_free(s);
	s->st = ST_COMMIT;
	return;
fail:
	wu_error("smtp: %s: cannot store a message: %s", s->peer,
	         s->conv_fail ? "out of memory" : store_errmsg(d->store));
	if (!s->conv_fail)
		daemon_txn_fail(d, "smtp intake");
	reply(s, "451 4.3.0 The message could not be stored; try again later");
refused:
	d->extra.smtp_rejected++;
	conv_free(s);
	txn_reset(s);
}

static void convert_done(struct workq_job *j)
{
	struct session *s = j->data;

	s->st = ST_READY;
	if (s->srv->stopping) {
		/* Not taken: the client keeps its copy and tries again. */
		conv_free(s);
		txn_reset(s);
		reply(s, "421 4.3.2 %s Service shutting down", s->srv->conf->hostname);
		flush(s);
		session_close(s);
		return;
	}
	store_msg(s);
	if (s->st == ST_COMMIT)
		return; /* on_committed answers */
	flush(s);
	session_process(s);
}

/* One line of message text (CRLF removed, n octets). */
static void data_line(struct session *s, const char *line, size_t n)
{
	int cont = s->midline;

	s->midline = 0;
	if (!cont && n == 1 && line[0] == '.') {
		msg_done(s);
		return;
	}
	if (!cont && n && line[0] == '.') { /* dot-unstuffing (4.5.2) */
		line++;
		n--;
	}
	if (memchr(line, '\0', n))
		s->bad_nul = 1;
	if (memchr(line, '\r', n) || memchr(line, '\n', n))
		s->bad_lf = 1;
	msg_add(s, line, n);
	msg_add(s, "\r\n", 2);
}

/* ---- commands ----------------------------------------------------------- */

/* EHLO/HELO: the greeting, and what the intake offers. */
static void cmd_helo(struct session *s, const char *arg, int esmtp)
{
	const struct wu_smtpd_conf *c = s->srv->conf;

	if (!arg[0]) {
		reply(s, "501 5.5.4 Syntax: %s hostname", esmtp ? "EHLO" : "HELO");
		return;
	}
	txn_reset(s);
	s->st = ST_READY;
	s->esmtp = esmtp;
	if (!esmtp) {
		reply(s, "250 %s", c->hostname);
		return;
	}
	reply(s, "250-%s", c->hostname);
	reply(s, "250-PIPELINING");
	reply(s, "250-SIZE %zu", c->max_size);
	reply(s, "250-8BITMIME");
	reply(s, "250-SMTPUTF8");
	if (s->srv->tls && !s->tls)
		reply(s, "250-STARTTLS");
	if (s->srv->users && (s->tls || s->loopback))
		reply(s, "250-AUTH PLAIN LOGIN");
	reply(s, "250 ENHANCEDSTATUSCODES");
}

static void cmd_mail(struct session *s, const char *arg)
{
	const struct wu_smtpd_conf *c = s->srv->conf;
	struct smtpd_mail_params mp;
	const char *params;
	char why[256];

	if (s->st == ST_HELO) {
		reply(s, "503 5.5.1 Error: send HELO or EHLO first");
		return;
	}
	if (s->st != ST_READY) {
		reply(s, "503 5.5.1 Error: nested MAIL command");
		return;
	}
	if (c->tls == WU_SMTPD_TLS_REQUIRED && !s->tls) {
		reply(s, "530 5.7.0 Must issue a STARTTLS command first");
		return;
	}
	if (!s->trusted && !s->user[0]) {
		if (s->srv->users)
			reply(s, "530 5.7.0 Authentication required");
		else
			reply(s, "554 5.7.1 %s may not send through this server", s->peer);
		return;
	}
	if (smtpd_parse_path(arg, "FROM:", s->from, sizeof(s->from), &params, why, sizeof(why)) <
	        0 ||
	    smtpd_parse_mail_params(params, &mp, why, sizeof(why)) < 0) {
		s->from[0] = '\0';
		reply(s, "%s", why);
		return;
	}
	if (mp.size > c->max_size) {
		s->from[0] = '\0';
		reply(s, "552 5.3.4 Message size exceeds the limit of %zu bytes", c->max_size);
		return;
	}
	s->size_hint = (size_t)mp.size;
	s->st = ST_RCPT;
	reply(s, "250 2.1.0 Ok");
}

static void cmd_rcpt(struct session *s, const char *arg)
{
	struct wu_daemon *d = s->srv->d;
	const char *params;
	char addr[SMTPD_PATH_MAX], why[256];
	cJSON *ps = NULL;
	struct suppress_result sr;
	char **v;
	int rc;

	if (s->st != ST_RCPT) {
		reply(s, "503 5.5.1 Error: need MAIL command");
		return;
	}
	if (smtpd_parse_path(arg, "TO:", addr, sizeof(addr), &params, why, sizeof(why)) < 0 ||
	    smtpd_parse_rcpt_params(params, why, sizeof(why)) < 0) {
		reply(s, "%s", why);
		return;
	}
	if (!addr[0]) {
		reply(s, "501 5.1.3 Bad recipient address syntax");
		return;
	}
	if (s->nrcpt >= s->srv->conf->max_recipients) {
		reply(s, "452 4.5.3 Error: too many recipients (at most %d)",
		      s->srv->conf->max_recipients);
		return;
	}
	/* The suppression list, as the HTTP intake checks it ([suppress] mode). */
	ps = cJSON_CreateArray();
	cJSON_AddItemToArray(ps, one_recipient(addr));
	rc = daemon_txn(d) < 0 ? -1 : suppress_filter(d, ps, NULL, &sr);
	cJSON_Delete(ps);
	if (rc < 0) {
		reply(s, "451 4.3.0 Error: the suppression list cannot be read; try again later");
		return;
	}
	if (rc == 1) {
		reply(s, "550 5.1.1 <%s>: Recipient address rejected: on the suppression list (%s)",
		      addr, sr.reason);
		return;
	}
	if (!(v = realloc(s->rcpt, (size_t)(s->nrcpt + 1) * sizeof(*v)))) {
		reply(s, "452 4.3.1 Error: out of memory");
		return;
	}
	s->rcpt = v;
	if (sr.dropped) {
		/* drop mode: taken and dropped, as the HTTP intake drops it */
		s->rcpt[s->nrcpt++] = NULL;
		s->ndropped++;
	} else if (!(s->rcpt[s->nrcpt] = strdup(addr))) {
		reply(s, "452 4.3.1 Error: out of memory");
		return;
	} else {
		s->nrcpt++;
	}
	reply(s, "250 2.1.5 Ok");
}

static void cmd_data(struct session *s, const char *arg)
{
	size_t want;

	if (arg[0]) {
		reply(s, "501 5.5.4 Syntax: DATA");
		return;
	}
	if (s->st != ST_RCPT) {
		reply(s, "503 5.5.1 Error: need MAIL command");
		return;
	}
	if (!s->nrcpt) {
		reply(s, "554 5.5.1 Error: no valid recipients");
		return;
	}
	s->st = ST_DATA;
	/* Room for the message in one allocation, as a rule; it grows past
	 * it.  Without the memory, it grows from less (the failure is not
	 * kept: msg_add judges for itself). */
	want = DATA_RESERVE;
	if (s->size_hint > DATA_RESERVE)
		want = s->size_hint < DATA_RESERVE_MAX ? s->size_hint + 2 : DATA_RESERVE_MAX;
	if (strbuf_reserve(&s->msg, want) < 0)
		s->msg.failed = 0;
	reply(s, "354 End data with <CR><LF>.<CR><LF>");
}

static void cmd_starttls(struct session *s, const char *arg)
{
	if (!s->srv->tls) {
		reply(s, "502 5.5.1 Error: STARTTLS is not offered");
		return;
	}
	if (s->tls) {
		reply(s, "503 5.5.1 Error: TLS is already active");
		return;
	}
	if (arg[0]) {
		reply(s, "501 5.5.4 Syntax: STARTTLS");
		return;
	}
	if (!(s->tls = tlsmem_new(s->srv->tls))) {
		reply(s, "454 4.7.0 TLS not available now");
		return;
	}
	/* The reply goes out in clear; nothing the client pipelined after the
	 * command is read (RFC 3207 6), and the session starts over. */
	{
		struct tlsmem *t = s->tls;
		s->tls = NULL;
		reply(s, "220 2.0.0 Ready to start TLS");
		flush(s);
		s->tls = t;
	}
	strbuf_reset(&s->in);
	s->restart = 1;
	txn_reset(s);
	s->st = ST_HELO;
	s->user[0] = '\0';
}

/* A decoded AUTH response: checks the password and answers. */
static void auth_check(struct session *s, const char *name, const char *password)
{
	struct wu_daemon *d = s->srv->d;

	s->st = ST_READY;
	if (smtpd_users_check(s->srv->users, name, password)) {
		snprintf(s->user, sizeof(s->user), "%s", name);
		reply(s, "235 2.7.0 Authentication successful");
		wu_info("smtp: %s: authenticated as %s", s->peer, s->user);
		return;
	}
	d->extra.smtp_auth_failures++;
	wu_warn("smtp: %s: authentication failed for %.64s", s->peer, name);
	reply(s, "535 5.7.8 Error: authentication failed");
}

/* An AUTH response line (base64), or the initial response of AUTH. */
static void auth_step(struct session *s, const char *line)
{
	unsigned char buf[1024];
	const char *name, *password;
	int n;

	if (strcmp(line, "*") == 0) {
		s->st = ST_READY;
		reply(s, "501 5.0.0 Authentication cancelled");
		return;
	}
	n = smtpd_b64_decode(line, buf, sizeof(buf));
	if (n < 0) {
		s->st = ST_READY;
		reply(s, "501 5.5.2 Error: the response is not base64");
		return;
	}
	switch (s->auth_step) {
	case AUTH_PLAIN:
		if (smtpd_plain_split(buf, n, &name, &password) < 0) {
			s->st = ST_READY;
			reply(s, "501 5.5.2 Error: not a PLAIN response");
		} else {
			auth_check(s, name, password);
		}
		break;
	case AUTH_LOGIN_USER:
		if ((size_t)n >= sizeof(s->auth_user)) {
			s->st = ST_READY;
			reply(s, "501 5.5.2 Error: the user name is too long");
			break;
		}
		memcpy(s->auth_user, buf, (size_t)n + 1);
		s->auth_step = AUTH_LOGIN_PASS;
		reply(s, "334 UGFzc3dvcmQ6"); /* "Password:" */
		break;
	case AUTH_LOGIN_PASS:
		auth_check(s, s->auth_user, (const char *)buf);
		OPENSSL_cleanse(s->auth_user, sizeof(s->auth_user));
		break;
	}
	OPENSSL_cleanse(buf, sizeof(buf));
}

static void cmd_auth(struct session *s, const char *arg)
{
	char mech[32];
	const char *ir;
	size_t n = strcspn(arg, " ");

	if (!s->srv->users) {
		reply(s, "502 5.5.1 Error: AUTH is not offered");
		return;
	}
	if (!s->tls && !s->loopback) {
		reply(s, "538 5.7.11 Encryption required for requested authentication mechanism");
		return;
	}
	if (s->st == ST_HELO || !s->esmtp) {
		reply(s, "503 5.5.1 Error: send EHLO first");
		return;
	}
	if (s->user[0] || s->st != ST_READY) {
		reply(s, "503 5.5.1 Error: %s", s->user[0] ? "already authenticated"
		                                            : "AUTH not allowed during a transaction");
		return;
	}
	if (n == 0 || n >= sizeof(mech)) {
		reply(s, "501 5.5.4 Syntax: AUTH mechanism");
		return;
	}
	memcpy(mech, arg, n);
	mech[n] = '\0';
	ir = arg[n] ? arg + n + 1 : NULL;
	if (strcasecmp(mech, "PLAIN") == 0) {
		s->auth_step = AUTH_PLAIN;
	} else if (strcasecmp(mech, "LOGIN") == 0) {
		s->auth_step = AUTH_LOGIN_USER;
	} else {
		reply(s, "504 5.5.4 Unrecognized authentication type");
		return;
	}
	s->st = ST_AUTH;
	if (ir && strcmp(ir, "=") == 0)
		ir = "";
	if (ir)
		auth_step(s, ir);
	else
		reply(s, "%s", s->auth_step == AUTH_PLAIN ? "334 " : "334 VXNlcm5hbWU6"); /* "Username:" */
}

/* One command line, CRLF removed. */
static void command(struct session *s, char *line)
{
	const char *arg;
	enum smtpd_verb v;

	if (s->st == ST_AUTH) {
		auth_step(s, line);
		return;
	}
	v = smtpd_verb(line, &arg);
	if (v != SMTPD_AUTH)
		wu_debug("smtp: %s: < %.200s", s->peer, line);
	switch (v) {
	case SMTPD_EHLO:
	case SMTPD_HELO:
		cmd_helo(s, arg, v == SMTPD_EHLO);
		break;
	case SMTPD_MAIL:
		cmd_mail(s, arg);
		break;
	case SMTPD_RCPT:
		cmd_rcpt(s, arg);
		break;
	case SMTPD_DATA:
		cmd_data(s, arg);
		break;
	case SMTPD_RSET:
		txn_reset(s);
		reply(s, "250 2.0.0 Ok");
		break;
	case SMTPD_NOOP:
		reply(s, "250 2.0.0 Ok");
		break;
	case SMTPD_QUIT:
		reply(s, "221 2.0.0 Bye");
		flush(s);
		session_end(s);
		break;
	case SMTPD_VRFY:
	case SMTPD_EXPN:
		reply(s, "502 5.5.1 Error: %s is disabled", v == SMTPD_VRFY ? "VRFY" : "EXPN");
		break;
	case SMTPD_HELP:
		reply(s, "214 2.0.0 See RFC 5321; commands: EHLO HELO MAIL RCPT DATA RSET NOOP "
		         "QUIT STARTTLS AUTH");
		break;
	case SMTPD_STARTTLS:
		cmd_starttls(s, arg);
		break;
	case SMTPD_AUTH:
		cmd_auth(s, arg);
		break;
	default:
		reply(s, "500 5.5.2 Error: command not recognized");
		break;
	}
}

/* ---- input --------------------------------------------------------------- */

/* Works through the buffered input while the session may. */
static void session_process(struct session *s)
{
	size_t pos = 0;

	while (!waiting(s) && s->st != ST_CLOSING && pos < s->in.len) {
		char *line = s->in.p + pos, *lf = memchr(line, '\n', s->in.len - pos);
		size_t n;

		if (!lf) {
			/* No end yet: a command line too long is skipped to its end;
			 * a message line is taken in pieces of any length. */
			if (s->st != ST_DATA && s->in.len - pos >= SMTPD_LINE_MAX) {
				s->discarding = 1;
				pos = s->in.len;
			}
			break;
		}
		n = (size_t)(lf - line);
		pos += n + 1;
		if (s->st == ST_DATA) {
			if (n == 0 || line[n - 1] != '\r') {
				s->bad_lf = 1;
				data_line(s, line, n);
			} else {
				data_line(s, line, n - 1);
			}
			continue;
		}
		if (s->discarding) {
			s->discarding = 0;
			reply(s, "500 5.5.2 Error: line too long (at most %d octets)",
			      SMTPD_LINE_MAX);
		} else if (n + 1 > SMTPD_LINE_MAX) {
			reply(s, "500 5.5.2 Error: line too long (at most %d octets)",
			      SMTPD_LINE_MAX);
		} else if (n == 0 || line[n - 1] != '\r') {
			reply(s, "500 5.5.2 Error: bare LF: lines end in CRLF");
		} else if (memchr(line, '\0', n - 1) || memchr(line, '\r', n - 1)) {
			reply(s, "500 5.5.2 Error: NUL or CR in a command");
		} else {
			line[n - 1] = '\0';
			command(s, line);
			if (s->restart) { /* STARTTLS threw the rest away */
				s->restart = 0;
				pos = 0;
				break;
			}
		}
		if (s->errors > s->srv->conf->max_errors && s->st != ST_CLOSING) {
			reply(s, "421 4.7.0 %s Error: too many errors", s->srv->conf->hostname);
			flush(s);
			session_close(s);
		}
	}
	if (s->st == ST_CLOSING)
		return;
	/* A message line longer than the buffer is kept whole only up to
	 * max_size; msg_add counts the rest. */
	if (s->st == ST_DATA && pos == 0 && s->in.len >= READ_MAX) {
		int cont = s->midline;
		if (!cont && s->in.p[0] == '.') { /* dot-unstuffing of a long line */
			msg_add(s, s->in.p + 1, s->in.len - 1);
		} else {
			msg_add(s, s->in.p, s->in.len);
		}
		s->midline = 1;
		pos = s->in.len;
	}
	if (pos)
		strbuf_consume(&s->in, pos);
	flush(s);
	if (s->gone && !waiting(s)) {
		/* Lost during the wait; what the client sent before is answered. */
		session_finish(s, s->gone == 2);
		return;
	}
	/* A wait goes on reading (a client that does not pipeline has sent
	 * nothing, and the poll is not changed twice a message for it) until
	 * the wait has READ_MAX in hand. */
	if (waiting(s) && s->reading && s->in.len >= READ_MAX) {
		uv_read_stop((uv_stream_t *)&s->tcp);
		s->reading = 0;
	} else if (!waiting(s) && s->st != ST_CLOSING && !s->reading) {
		start_reading(s);
	}
}

/* One buffer serves every read: libuv calls on_read before the next
 * allocation, and on_read copies what it keeps. */
static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct session *s = h->data;

	(void)hint;
	buf->base = s->srv->rbuf;
	buf->len = SMTPD_RBUF;
}

/* Appends plain text to the input buffer. */
static int in_add(struct session *s, const char *p, size_t n)
{
	return strbuf_add(&s->in, p, n) < 0 ? -1 : 0;
}

static void on_timeout(uv_timer_t *t)
{
	struct session *s = t->data;

	if (waiting(s))
		return; /* the conversion or the commit answers */
	reply(s, "421 4.4.2 %s Error: timeout exceeded", s->srv->conf->hostname);
	flush(s);
	session_close(s);
}

/* The connection cannot go on: closed now, or once the wait is over (a
 * worker thread or the commit still holds the session). */
static void session_lost(struct session *s, int shut)
{
	if (waiting(s)) {
		s->gone = shut ? 2 : 1;
		uv_read_stop((uv_stream_t *)&s->tcp);
		s->reading = 0;
		return;
	}
	session_finish(s, shut);
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
	struct session *s = st->data;
	char err[256];

	if (nread < 0) {
		/* The client is gone or done: nothing of it is left to read. */
		session_lost(s, 0);
		return;
	}
	if (nread == 0)
		return;
	uv_timer_again(&s->timer);
	if (s->tls) {
		int r = tlsmem_feed(s->tls, buf->base, (size_t)nread, &s->in, err, sizeof(err));
		tls_out(s);
		if (r != 0) {
			if (r < 0)
				wu_warn("smtp: %s: %s", s->peer, err);
			session_lost(s, 1);
			return;
		}
	} else if (in_add(s, buf->base, (size_t)nread) < 0) {
		session_lost(s, 1);
		return;
	}
	session_process(s);
}

/* ---- sessions ------------------------------------------------------------ */

static void on_session_closed(uv_handle_t *h)
{
	struct session *s = h->data;
	struct smtpd *srv = s->srv;

	if (++s->nclosed < 2)
		return;
	if (s->prev)
		s->prev->next = s->next;
	else
		srv->sessions = s->next;
	if (s->next)
		s->next->prev = s->prev;
	srv->nsessions--;
	txn_reset(s);
	tlsmem_free(s->tls);
	strbuf_free(&s->in);
	strbuf_free(&s->out);
	free(s);
	smtpd_free_if_done(srv);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
	struct session *s = req->data;

	(void)status;
	uv_close((uv_handle_t *)&s->tcp, on_session_closed);
	uv_close((uv_handle_t *)&s->timer, on_session_closed);
}

/* Stops a session's reading and timer, then closes it: once what it
 * wrote is out (a shutdown), or at once when shut is 0 and nothing waits
 * to be written. */
static void session_finish(struct session *s, int shut)
{
	if (s->st == ST_CLOSING)
		return;
	s->st = ST_CLOSING;
	uv_read_stop((uv_stream_t *)&s->tcp);
	s->reading = 0;
	uv_timer_stop(&s->timer);
	s->shut.data = s;
	if (!shut && s->tcp.write_queue_size == 0)
		on_shutdown(&s->shut, 0);
	else if (uv_shutdown(&s->shut, (uv_stream_t *)&s->tcp, on_shutdown) < 0)
		on_shutdown(&s->shut, 0);
}

/* Closes a session once what it wrote is out. */
static void session_close(struct session *s)
{
	session_finish(s, 1);
}

/* Closes a session whose client has nothing more to say (after QUIT, or
 * at its end of the stream): with everything written, close(2) alone ends
 * the connection, as a shutdown would, and costs no wait for writability. */
static void session_end(struct session *s)
{
	session_finish(s, 0);
}

static void start_reading(struct session *s)
{
	uv_read_start((uv_stream_t *)&s->tcp, on_alloc, on_read);
	s->reading = 1;
}

static void on_connection(uv_stream_t *server, int status)
{
	struct smtpd *srv = server->data;
	const struct wu_smtpd_conf *c = srv->conf;
	struct session *s;
	struct sockaddr_storage ss;
	int len = sizeof(ss);
	char host[INET6_ADDRSTRLEN] = "?";

	if (status < 0 || !(s = calloc(1, sizeof(*s))))
		return;
	s->srv = srv;
	uv_tcp_init(srv->d->loop, &s->tcp);
	uv_timer_init(srv->d->loop, &s->timer);
	s->tcp.data = s->timer.data = s;
	s->next = srv->sessions;
	if (srv->sessions)
		srv->sessions->prev = s;
	srv->sessions = s;
	srv->nsessions++;
	if (uv_accept(server, (uv_stream_t *)&s->tcp) < 0) {
		s->st = ST_CLOSING;
		uv_close((uv_handle_t *)&s->tcp, on_session_closed);
		uv_close((uv_handle_t *)&s->timer, on_session_closed);
		return;
	}
	if (uv_tcp_getpeername(&s->tcp, (struct sockaddr *)&ss, &len) == 0) {
		if (ss.ss_family == AF_INET)
			uv_ip4_name((struct sockaddr_in *)&ss, host, sizeof(host));
		else
			uv_ip6_name((struct sockaddr_in6 *)&ss, host, sizeof(host));
		s->trusted = wu_cidr_match(c->networks, c->nnetworks, (struct sockaddr *)&ss);
		s->loopback = wu_cidr_loopback((struct sockaddr *)&ss);
	}
	snprintf(s->peer, sizeof(s->peer), "[%s]", host);
	uv_timer_start(&s->timer, on_timeout, (uint64_t)(c->timeout / 1000),
	               (uint64_t)(c->timeout / 1000));
	if (srv->nsessions > c->max_connections || srv->stopping) {
		reply(s, "421 4.7.0 %s Error: too many connections; try again later", c->hostname);
		flush(s);
		session_close(s);
		return;
	}
	reply(s, "220 %s ESMTP warmupd", c->hostname);
	flush(s);
	start_reading(s);
}

/* A listening socket for host:port, made before any libuv handle exists so
 * that a failure leaves nothing to close.  Returns the fd or -1. */
static int listen_socket(const char *host, int port, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, on = 1;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, host, &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
		ss.ss_family = AF_INET;
		((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)port);
		len = sizeof(struct sockaddr_in);
	} else if (inet_pton(AF_INET6, host, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1) {
		ss.ss_family = AF_INET6;
		((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)port);
		len = sizeof(struct sockaddr_in6);
	} else {
		snprintf(err, errlen, "[smtp] address: '%s' is not an IP address", host);
		return -1;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	/* TCP_NODELAY here: Linux hands it down to every accepted socket, so
	 * replies are not held back behind unacknowledged ones (TLS records
	 * and pipelined replies) with no call per connection. */
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) < 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on)) < 0 ||
	    bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 1024) < 0) {
		snprintf(err, errlen, "[smtp] address: cannot listen on %s:%d: %s", host, port,
		         strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

int smtpd_start(struct smtpd **sp, struct wu_daemon *d, char *err, size_t errlen)
{
	const struct wu_smtpd_conf *c = &d->conf.smtpd;
	struct smtpd *srv;
	struct sockaddr_storage ss;
	int len = sizeof(ss), fd = -1;

	*sp = NULL;
	if (!c->enabled)
		return 0;
	if (!(srv = calloc(1, sizeof(*srv)))) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	srv->d = d;
	srv->conf = c;
	if (c->tls_cert_file[0] &&
	    tlsmem_ctx_new(&srv->tls, c->tls_cert_file, c->tls_key_file, err, errlen) < 0)
		goto fail;
	if (c->users_file[0] && smtpd_users_load(&srv->users, c->users_file, err, errlen) < 0)
		goto fail;
	if (!(srv->wq = workq_new(d->loop, workq_threads(), err, errlen)))
		goto fail;
	if (!(srv->rbuf = malloc(SMTPD_RBUF))) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if ((fd = listen_socket(c->host, c->port, err, errlen)) < 0)
		goto fail;
	uv_tcp_init(d->loop, &srv->listener);
	srv->listener.data = srv;
	if (uv_tcp_open(&srv->listener, fd) < 0 ||
	    uv_listen((uv_stream_t *)&srv->listener, 1024, on_connection) < 0) {
		/* not expected once the socket listens; the handle dies with the loop */
		snprintf(err, errlen, "[smtp] address: cannot watch %s:%d", c->host, c->port);
		return -1;
	}
	if (uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&ss, &len) == 0)
		srv->port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
		                                          : ((struct sockaddr_in6 *)&ss)->sin6_port);
	*sp = srv;
	return 0;
fail:
	workq_free(srv->wq);
	tlsmem_ctx_free(srv->tls);
	smtpd_users_free(srv->users);
	free(srv->rbuf);
	free(srv);
	return -1;
}

int smtpd_port(const struct smtpd *s)
{
	return s ? s->port : 0;
}

/* Frees the server once its listener and every session are closed. */
static void smtpd_free_if_done(struct smtpd *srv)
{
	if (!srv->listener_closed || srv->nsessions > 0)
		return;
	workq_free(srv->wq); /* no session, so no conversion pending */
	tlsmem_ctx_free(srv->tls);
	smtpd_users_free(srv->users);
	free(srv->rbuf);
	free(srv);
}

static void on_listener_closed(uv_handle_t *h)
{
	struct smtpd *srv = h->data;

	srv->listener_closed = 1;
	smtpd_free_if_done(srv);
}

void smtpd_stop(struct smtpd *srv)
{
	if (!srv || srv->stopping)
		return;
	srv->stopping = 1;
	for (struct session *s = srv->sessions, *next; s; s = next) {
		next = s->next;
		if (s->st == ST_CLOSING)
			continue;
		if (waiting(s))
			continue; /* the conversion or commit callback answers, and closes */
		reply(s, "421 4.3.2 %s Service shutting down", srv->conf->hostname);
		flush(s);
		session_close(s);
	}
	uv_close((uv_handle_t *)&srv->listener, on_listener_closed);
}
