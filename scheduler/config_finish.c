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
int cf_secret_read(struct load *ld, const struct secret_ref *r, const char *section,
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
	/* TLS keys only with rediss://; a certificate needs its key. */
	for (int i = 0; i < 3; i++) {
		static const char *keys[] = {"tls_ca_file", "tls_cert_file", "tls_key_file"};
		int line = cf_seen_line(ld, "cluster", keys[i]);
		if (line && !c->tls_line)
			c->tls_line = line;
		if (line && !c->tls && c->host[0])
			cf_lfail(ld, line,
			      "[cluster] %s: only for a rediss:// server (TLS); redis = gives %s",
			      keys[i], c->where);
	}
	if (!c->tls_line)
		c->tls_line = cf_seen_line(ld, "cluster", "redis");
	if (!c->tls_cert_file[0] != !c->tls_key_file[0])
		cf_lfail(ld, cf_seen_line(ld, "cluster",
		                          c->tls_cert_file[0] ? "tls_cert_file" : "tls_key_file"),
		      "[cluster] %s: a client certificate needs both tls_cert_file and tls_key_file",
		      c->tls_cert_file[0] ? "tls_cert_file" : "tls_key_file");
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
			cf_route_check(ld, r);
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

	cf_webhook_finish(ld, daemon);
	cluster_finish(ld);
	if (!daemon)
		return ld->failed ? -1 : 0;
	/* Every secret is looked for, so that one run names all that are missing. */
	if (!c->auth_none && (ld->token.env[0] || ld->token.file[0]))
		cf_secret_read(ld, &ld->token, "listen", "token", &c->token, why, sizeof(why));
	for (int r = 0; r < WU_ROUTE_COUNT; r++) {
		struct snd_route_conf *rc = &c->route[r];
		const struct secret_ref *sec = &ld->route_secret[r];

		if (!ld->route_line[r] || (!sec->env[0] && !sec->file[0]))
			continue;
		cf_secret_read(ld, sec, r == WU_ROUTE_NEW ? "route new" : "route old",
		            rc->type == SND_TYPE_SENDGRID ? "api_key" : "password", &rc->secret,
		            rc->secret_source, sizeof(rc->secret_source));
	}
	if (c->cluster.enabled && ld->cluster_password.key) {
		char source[160];

		cf_secret_read(ld, &ld->cluster_password, "cluster", "password", &c->cluster.password,
		            source, sizeof(source));
	}
	if (ld->alert_url.key) {
		char source[160];

		if (cf_secret_read(ld, &ld->alert_url, "alert", "webhook_url", &c->alert_url, source,
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

