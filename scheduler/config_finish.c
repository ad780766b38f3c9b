/*
 * config_finish.c -- the loader's checks once the last line is in: what
 * needs the whole file (one section against another, the defaults of what
 * was not written), the secrets (read only now, never logged), the routes,
 * the webhook's key and the cluster.  Every problem is one more message
 * naming the file, the line and the key (config.c, DIAGNOSTICS).
 */
#include "config_priv.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/parse.h"
#include "zone.h"


/* Reads a secret from the environment or a file into *out (malloc'ed). */
static int secret_read(struct load *ld, const struct secret_ref *r, const char *section,
                       const char *what, char **out, char *source, size_t source_len)
{
	char buf[SECRET_MAX + 2];
	const char *v;
	size_t len = 0;
	int fd;

	if (r->env[0]) {
		snprintf(source, source_len, "env %.150s", r->env);
		if (!(v = getenv(r->env))) {
			cf_lfail(ld, r->line, "[%s] %s_env: environment variable %s is not set",
			      section, what, r->env);
			return -1;
		}
		len = strlen(v);
		if (len > SECRET_MAX) {
			cf_lfail(ld, r->line, "[%s] %s_env: %s holds more than %d bytes", section,
			      what, r->env, SECRET_MAX);
			return -1;
		}
		memcpy(buf, v, len);
	} else {
		struct stat st;
		ssize_t got;

		snprintf(source, source_len, "file %.150s", r->file);
		if ((fd = open(r->file, O_RDONLY | O_CLOEXEC)) < 0) {
			cf_lfail(ld, r->line, "[%s] %s_file: cannot read %s: %s", section, what,
			      r->file, strerror(errno));
			return -1;
		}
		if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
			close(fd);
			cf_lfail(ld, r->line, "[%s] %s_file: %s is not a regular file", section, what,
			      r->file);
			return -1;
		}
		if (st.st_mode & S_IROTH) {
			close(fd);
			cf_lfail(ld, r->line,
			      "[%s] %s_file: %s is readable by every user; refusing to use it "
			      "(chmod o-r %s)",
			      section, what, r->file, r->file);
			return -1;
		}
		while (len < sizeof(buf) - 1 &&
		       (got = read(fd, buf + len, sizeof(buf) - 1 - len)) != 0) {
			if (got < 0) {
				if (errno == EINTR)
					continue;
				explicit_bzero(buf, sizeof(buf));
				close(fd);
				cf_lfail(ld, r->line, "[%s] %s_file: cannot read %s: %s", section,
				      what, r->file, strerror(errno));
				return -1;
			}
			len += (size_t)got;
		}
		close(fd);
		/* Editors end files with a newline; the secret does not include it. */
		if (len && buf[len - 1] == '\n')
			len--;
		if (len && buf[len - 1] == '\r')
			len--;
		if (len > SECRET_MAX) {
			explicit_bzero(buf, sizeof(buf));
			cf_lfail(ld, r->line, "[%s] %s_file: %s holds more than %d bytes", section,
			      what, r->file, SECRET_MAX);
			return -1;
		}
	}
	buf[len] = '\0';
	if (len == 0 || cf_has_control(buf) || strlen(buf) != len) {
		explicit_bzero(buf, sizeof(buf));
		cf_lfail(ld, r->line, "[%s] %s_%s: the secret from %s is %s", section, what,
		      r->env[0] ? "env" : "file", source,
		      len == 0 ? "empty" : "more than one line or holds control characters");
		return -1;
	}
	*out = strdup(buf);
	explicit_bzero(buf, sizeof(buf));
	if (!*out) {
		cf_lfail(ld, r->line, "out of memory");
		return -1;
	}
	return 0;
}

/* Checks a route once its whole section is known. */
static int route_check(struct load *ld, int r)
{
	struct snd_route_conf *rc = &ld->c->route[r];
	const char *name = r == WU_ROUTE_NEW ? "route new" : "route old";
	const struct secret_ref *sec = &ld->route_secret[r];
	int have_secret = sec->env[0] || sec->file[0];
	const char *url;

	if (rc->type == SND_TYPE_NONE) {
		if (!cf_seen_line(ld, name, "type"))
			cf_lfail(ld, ld->route_line[r], "[%s] type: required: sendgrid or smtp", name);
		return -1;
	}
	/* Keys of the other type would be ignored: better to say so. */
	for (int i = 0; i < ld->nseen; i++) {
		const struct key *k;

		if (strcmp(ld->seen[i].section, name) != 0)
			continue;
		k = cf_key_find(S_ROUTE, ld->seen[i].key);
		if (k && k->only &&
		    k->only != (rc->type == SND_TYPE_SENDGRID ? FOR_SENDGRID : FOR_SMTP)) {
			cf_lfail(ld, ld->seen[i].line,
			      "[%s] %s: only for type = %s (this route is %s)", name, k->name,
			      k->only == FOR_SENDGRID ? "sendgrid" : "smtp",
			      rc->type == SND_TYPE_SENDGRID ? "sendgrid" : "smtp");
			return -1;
		}
	}
	if (rc->type == SND_TYPE_SENDGRID && !ld->url_set[r])
		strcpy(ld->url[r], DEFAULT_SENDGRID);
	url = ld->url[r];
	if (rc->type == SND_TYPE_SENDGRID) {
		char host[256];
		const char *h = url + 7, *e;
		size_t hl;

		if (strncmp(url, "https://", 8) == 0 && url[8]) {
			/* fine */
		} else if (strncmp(url, "http://", 7) == 0) {
			/* Plain HTTP would carry the API key in the clear: loopback only
			 * (the fake SendGrid server of the tests and demos). */
			if (*h == '[') {
				h++;
				e = strchr(h, ']');
			} else {
				e = h + strcspn(h, ":/");
			}
			hl = e ? (size_t)(e - h) : 0;
			if (hl == 0 || hl >= sizeof(host)) {
				cf_lfail(ld, ld->url_set[r],
				      "[%s] url: expected https://HOST, got '%s'", name, url);
				return -1;
			}
			memcpy(host, h, hl);
			host[hl] = '\0';
			if (!cf_loopback(host)) {
				cf_lfail(ld, ld->url_set[r],
				      "[%s] url: http:// would send the API key unencrypted; use "
				      "https:// (plain http only to a loopback address), got '%s'",
				      name, url);
				return -1;
			}
		} else {
			cf_lfail(
			    ld, ld->url_set[r],
			    "[%s] url: expected https://HOST such as https://api.sendgrid.com, got "
			    "'%s'",
			    name, url);
			return -1;
		}
		if (!have_secret && !(ld->flags & WU_CONF_NO_SECRETS) &&
		    !cf_seen_line(ld, name, "api_key_env") && !cf_seen_line(ld, name, "api_key_file")) {
			cf_lfail(ld, ld->route_line[r],
			      "[%s] api_key_env: required: the SendGrid API key, from "
			      "api_key_env = VARIABLE or api_key_file = PATH",
			      name);
			return -1;
		}
	} else {
		int smtps = strncmp(url, "smtps://", 8) == 0;

		if (!ld->url_set[r]) {
			cf_lfail(ld, ld->route_line[r],
			      "[%s] url: required for smtp: smtp://HOST:PORT (STARTTLS) or "
			      "smtps://HOST:PORT",
			      name);
			return -1;
		}
		if ((!smtps && strncmp(url, "smtp://", 7) != 0) || !url[smtps ? 8 : 7]) {
			cf_lfail(ld, ld->url_set[r],
			      "[%s] url: expected smtp://HOST:PORT or smtps://HOST:PORT, got '%s'",
			      name, url);
			return -1;
		}
		if (smtps && rc->tls == SND_TLS_NONE) {
			cf_lfail(
			    ld, cf_seen_line(ld, name, "tls"),
			    "[%s] tls: none contradicts the smtps:// URL (TLS from the first byte)",
			    name);
			return -1;
		}
		if (rc->username[0] && !have_secret) {
			cf_lfail(ld, cf_seen_line(ld, name, "username"),
			      "[%s] username: needs a password from password_env or password_file",
			      name);
			return -1;
		}
		if (have_secret && !rc->username[0]) {
			cf_lfail(ld, sec->line, "[%s] %s: a password needs a username", name,
			      sec->key);
			return -1;
		}
		/* On SMTP these travel in the X-SMTPAPI header, or nowhere. */
		if (!rc->x_smtpapi) {
			static const char *const hdr[] = {"ip_pool", "click_tracking",
			                                  "open_tracking", "subscription_tracking"};
			for (size_t i = 0; i < sizeof(hdr) / sizeof(hdr[0]); i++) {
				int line = cf_seen_line(ld, name, hdr[i]);
				if (line && (i == 0 ? rc->ip_pool[0] != '\0'
				                    : (i == 1   ? rc->click_tracking
				                       : i == 2 ? rc->open_tracking
				                                : rc->subscription_tracking))) {
					cf_lfail(ld, line,
					      "[%s] %s: on an smtp route this is sent in the "
					      "X-SMTPAPI "
					      "header; set x_smtpapi = on",
					      name, hdr[i]);
					return -1;
				}
			}
		}
		if (rc->ca_file[0] && !(ld->flags & WU_CONF_NO_SECRETS) &&
		    access(rc->ca_file, R_OK) < 0) {
			cf_lfail(ld, cf_seen_line(ld, name, "ca_file"),
			      "[%s] ca_file: cannot read %s: %s", name, rc->ca_file,
			      strerror(errno));
			return -1;
		}
	}
	strcpy(rc->url, url);
	return 0;
}

/* Reads public_key_file: SendGrid's base64 line, or a PEM public key. */
static int webhook_key_read(struct load *ld)
{
	char text[8192], b64[8192], why[WU_ERR_MAX], *line, *save = NULL;
	size_t len, blen = 0;
	FILE *f = fopen(ld->webhook_key_file, "r");

	if (!f) {
		cf_lfail(ld, ld->webhook_key_line, "[webhook] public_key_file: cannot read %s: %s",
		      ld->webhook_key_file, strerror(errno));
		return -1;
	}
	len = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[len] = '\0';
	b64[0] = '\0';
	for (line = strtok_r(text, "\r\n", &save); line; line = strtok_r(NULL, "\r\n", &save)) {
		if (strncmp(line, "-----", 5) == 0)
			continue; /* PEM armour */
		blen += (size_t)snprintf(b64 + blen, sizeof(b64) - blen, "%s", wu_trim(line));
		if (blen >= sizeof(b64))
			break;
	}
	if (cf_webhook_key_set(ld, b64, why, sizeof(why)) < 0) {
		cf_lfail(ld, ld->webhook_key_line, "[webhook] public_key_file: %s: %s",
		      ld->webhook_key_file, why);
		return -1;
	}
	return 0;
}

/* The [cluster] checks that need the whole section: an address, a node name. */
static void cluster_finish(struct load *ld)
{
	struct wu_cluster_conf *c = &ld->c->cluster;
	char host[256] = "";

	if (!c->enabled)
		return;
	if (!c->host[0])
		cf_lfail(ld, 0,
		      "[cluster] redis: required: the Redis server, such as "
		      "redis://127.0.0.1:6379/0");
	if (!c->node[0]) {
		if (gethostname(host, sizeof(host) - 1) == 0 && wu_cluster_name_ok(host))
			strcpy(c->node, host);
		else
			cf_lfail(ld, 0,
			      "[cluster] node: required: the host name '%.60s' cannot name "
			      "this node in Redis keys; give node = NAME",
			      host);
	}
	if (c->timeout < 100 * 1000 || c->timeout > 60 * WU_USEC)
		cf_lfail(ld, cf_seen_line(ld, "cluster", "timeout"),
		      "[cluster] timeout: expected 100ms to 60s");
}

/* The [webhook] checks that need the whole file, then its secrets. */
static int webhook_finish(struct load *ld, int daemon)
{
	struct wu_webhook_conf *w = &ld->c->webhook;
	int basic = w->username[0] || ld->webhook_password.key;
	int line = cf_seen_line(ld, "webhook", "auth");
	char why[WU_ERR_MAX];

	for (int i = 0; i < w->nrules; i++) {
		struct wu_defer_rule *r = &w->rules[i];

		if (r->isp < 0) {
			cf_lfail(ld, r->line,
			      "[defer_rule %s] isp: required: the ISP group it watches", r->name);
		}
		if (!r->match[0]) {
			cf_lfail(ld, r->line,
			      "[defer_rule %s] match: required: the texts to look for, such as "
			      "4.7.28",
			      r->name);
		}
	}
	/* The rules in force, for the engine: the daemon's and the simulator's
	 * alike (the webhook feeds them events, the simulator draws them). */
	if (w->nrules > 0) {
		memcpy(ld->c->core.rules, w->rules, sizeof(w->rules[0]) * (size_t)w->nrules);
		ld->c->core.nrules = w->nrules;
	} else {
		ld->c->core.nrules =
		    w->default_rules ? wu_deferral_defaults(&ld->c->core.isps, ld->c->core.rules,
		                                            WU_DEFER_RULES_MAX)
		                     : 0;
	}
	if (!w->enabled)
		return 0;
	if (w->auth_none && (basic || w->public_key || ld->webhook_key_file[0])) {
		cf_lfail(ld, line,
		      "[webhook] auth: none contradicts public_key and username/password; keep "
		      "one");
	}
	if (w->auth_none && !cf_loopback(ld->c->listen_host)) {
		cf_lfail(ld, line,
		      "[webhook] auth: none is only allowed on a loopback address (the daemon "
		      "listens on %s)",
		      ld->c->listen_host);
	}
	if (w->username[0] && !ld->webhook_password.key) {
		cf_lfail(ld, cf_seen_line(ld, "webhook", "username"),
		      "[webhook] username: needs a password from password_env or password_file");
	}
	if (ld->webhook_password.key && !w->username[0]) {
		cf_lfail(ld, ld->webhook_password.line, "[webhook] %s: a password needs a username",
		      ld->webhook_password.key);
	}
	/* A forged batch could halt the ramp or cut an ISP: no silent default. */
	if (daemon && !w->auth_none && !basic && !w->public_key && !ld->webhook_key_file[0]) {
		cf_lfail(ld, ld->webhook_line,
		      "[webhook]: the event webhook needs authentication: set public_key (or "
		      "public_key_file) for signed events, or username with password_env or "
		      "password_file, or write auth = none to accept unauthenticated events");
	}
	if (!daemon)
		return 0;
	if (ld->webhook_key_file[0])
		webhook_key_read(ld);
	if (ld->webhook_password.key)
		secret_read(ld, &ld->webhook_password, "webhook", "password", &w->password, why,
		            sizeof(why));
	return 0;
}

/* The checks that need the whole file, then the schedule and the secrets. */
int cf_finish(struct load *ld)
{
	struct wu_conf *c = ld->c;
	int daemon = !(ld->flags & WU_CONF_NO_SECRETS);
	int line, y, m, d;
	char why[WU_ERR_MAX];

	/* A route stops at its first problem: the next would follow from it. */
	for (int r = 0; r < WU_ROUTE_COUNT; r++)
		if (ld->route_line[r])
			route_check(ld, r);
	if (daemon && !ld->route_line[WU_ROUTE_NEW]) {
		cf_lfail(ld, 0,
		      "[route new]: required: the route being warmed up (type = sendgrid or "
		      "smtp)");
	}
	if (daemon && c->core.overflow == WU_OVERFLOW_OLD && !ld->route_line[WU_ROUTE_OLD]) {
		cf_lfail(ld, cf_seen_line(ld, "warmup", "overflow"),
		      "[warmup] overflow: 'old'%s sends what the new route cannot take to the old "
		      "relay, but there is no [route old]; add one, or set overflow = defer",
		      cf_seen_line(ld, "warmup", "overflow") ? "" : " (the default)");
	}

	line = cf_seen_line(ld, "listen", "auth");
	if (c->auth_none && (ld->token.env[0] || ld->token.file[0])) {
		cf_lfail(ld, line, "[listen] auth: none contradicts token_env/token_file; keep one");
	}
	if (c->auth_none && !cf_loopback(c->listen_host)) {
		cf_lfail(ld, line,
		      "[listen] auth: none is only allowed on a loopback address (the intake "
		      "listens on %s)",
		      c->listen_host);
	}
	if (daemon && !c->auth_none && !ld->token.env[0] && !ld->token.file[0] &&
	    !cf_seen_line(ld, "listen", "token_env") && !cf_seen_line(ld, "listen", "token_file")) {
		cf_lfail(ld, 0,
		      "[listen]: the intake needs a bearer token: set token_env = VARIABLE or "
		      "token_file = PATH, or write auth = none to run without one");
	}

	if (!cf_seen_line(ld, "status", "open_to")) {
		char why[128];
		c->status.nopen_to = wu_cidr_parse_list("127.0.0.0/8, ::1", c->status.open_to,
		                                        WU_CIDR_MAX, why, sizeof(why));
	}

	if (c->smtpd.enabled) {
		struct wu_smtpd_conf *sm = &c->smtpd;

		if (!cf_seen_line(ld, "smtp", "address")) {
			cf_lfail(ld, 0, "[smtp] address: required, such as 127.0.0.1:2525");
		}
		if (!cf_seen_line(ld, "smtp", "networks")) {
			char why[128];
			sm->nnetworks = wu_cidr_parse_list("127.0.0.0/8, ::1", sm->networks,
			                                   WU_CIDR_MAX, why, sizeof(why));
		}
		if (!sm->tls_cert_file[0] != !sm->tls_key_file[0]) {
			cf_lfail(ld, cf_seen_line(ld, "smtp", sm->tls_cert_file[0] ? "tls_cert_file"
			                                                    : "tls_key_file"),
			      "[smtp] %s: STARTTLS needs both tls_cert_file and tls_key_file",
			      sm->tls_cert_file[0] ? "tls_cert_file" : "tls_key_file");
		}
		if (!sm->tls_set)
			sm->tls = sm->tls_cert_file[0] ? WU_SMTPD_TLS_OPTIONAL : WU_SMTPD_TLS_OFF;
		if (sm->tls != WU_SMTPD_TLS_OFF && !sm->tls_cert_file[0]) {
			cf_lfail(ld, cf_seen_line(ld, "smtp", "tls"),
			      "[smtp] tls: %s needs tls_cert_file and tls_key_file",
			      sm->tls == WU_SMTPD_TLS_REQUIRED ? "required" : "optional");
		}
		if (!sm->nnetworks && !sm->users_file[0]) {
			cf_lfail(ld, cf_seen_line(ld, "smtp", "networks"),
			      "[smtp] networks: empty, and no users_file: no client could send");
		}
		if (!sm->hostname[0] && gethostname(sm->hostname, sizeof(sm->hostname) - 1) < 0)
			snprintf(sm->hostname, sizeof(sm->hostname), "warmupd");
	}

	if (c->max_connections_per_ip < 0)
		c->max_connections_per_ip = c->max_connections > 1 ? c->max_connections / 2 : 1;

	if (c->core.gate.bounce_warn > c->core.gate.bounce_halt) {
		cf_lfail(ld, cf_seen_line(ld, "gate", "bounce_warn"),
		      "[gate] bounce_warn: must not be above bounce_halt");
	}
	if (c->core.gate.complaint_warn > c->core.gate.complaint_halt) {
		cf_lfail(ld, cf_seen_line(ld, "gate", "complaint_warn"),
		      "[gate] complaint_warn: must not be above complaint_halt");
	}
	if (c->core.backoff.retry_min > c->core.backoff.retry_max) {
		cf_lfail(ld, cf_seen_line(ld, "backoff", "retry_min"),
		      "[backoff] retry_min: must not be above retry_max");
	}

	if (daemon && !ld->start_set && !cf_seen_line(ld, "warmup", "start")) {
		cf_lfail(ld, 0,
		      "[warmup] start: required: the local date of day 1, such as 2026-12-01");
	}
	if (ld->start_set) {
		y = ld->y, m = ld->m, d = ld->d;
	} else {
		wu_civil_from_days(c->core.calendar.start, &y, &m, &d);
	}
	if (!cf_seen_line(ld, "warmup", "timezone") && wu_zone_check(ld->tz, why, sizeof(why)) < 0) {
		cf_lfail(ld, 0, "[warmup] timezone: the default zone is missing: %s", why);
	}
	if (wu_calendar_init(&c->core.calendar, ld->tz, y, m, d, ld->open_min, ld->close_min, why,
	                     sizeof(why)) < 0) {
		cf_lfail(ld, cf_seen_line(ld, "warmup", "timezone"), "[warmup] timezone: %s", why);
	}

	if (c->schedule_path[0]) {
		char path[sizeof(c->schedule_path)];

		strcpy(path, c->schedule_path);
		if (wu_conf_read_schedule(c, path, why, sizeof(why)) < 0) {
			cf_lfail(ld, cf_seen_line(ld, "warmup", "schedule"), "[warmup] schedule: %s",
			      why);
		}
	} else if (daemon && !cf_seen_line(ld, "warmup", "schedule")) {
		cf_lfail(ld, 0, "[warmup] schedule: required: a CSV file of day,cap rows");
	}

	webhook_finish(ld, daemon);
	cluster_finish(ld);
	if (!daemon)
		return ld->failed ? -1 : 0;
	/* Every secret is looked for, so that one run names all that are missing. */
	if (!c->auth_none && (ld->token.env[0] || ld->token.file[0]))
		secret_read(ld, &ld->token, "listen", "token", &c->token, why, sizeof(why));
	for (int r = 0; r < WU_ROUTE_COUNT; r++) {
		struct snd_route_conf *rc = &c->route[r];
		const struct secret_ref *sec = &ld->route_secret[r];

		if (!ld->route_line[r] || (!sec->env[0] && !sec->file[0]))
			continue;
		secret_read(ld, sec, r == WU_ROUTE_NEW ? "route new" : "route old",
		            rc->type == SND_TYPE_SENDGRID ? "api_key" : "password", &rc->secret,
		            rc->secret_source, sizeof(rc->secret_source));
	}
	if (c->cluster.enabled && ld->cluster_password.key) {
		char source[160];

		secret_read(ld, &ld->cluster_password, "cluster", "password", &c->cluster.password,
		            source, sizeof(source));
	}
	if (ld->alert_url.key) {
		char source[160];

		if (secret_read(ld, &ld->alert_url, "alert", "webhook_url", &c->alert_url, source,
		                sizeof(source)) == 0 &&
		    strncmp(c->alert_url, "https://", 8) != 0 &&
		    strncmp(c->alert_url, "http://", 7) != 0) {
			cf_lfail(ld, ld->alert_url.line,
			      "[alert] %s: the URL from %s does not start with https:// or http://",
			      ld->alert_url.key, source);
		}
	}
	return ld->failed ? -1 : 0;
}

