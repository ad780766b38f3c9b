/*
 * config_route.c -- [route new] and [route old]: their keys, defaults and
 * the checks once a route's whole section is known (its type decides which
 * keys apply; a SendGrid URL must be https, or http to loopback only).
 */
#include "config_priv.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

static int k_route_type(struct load *ld, const struct key *k, const struct sect_ref *s,
                        const char *v, char *why, size_t n)
{
	(void)k;
	if (strcmp(v, "sendgrid") == 0)
		ld->c->route[s->index].type = SND_TYPE_SENDGRID;
	else if (strcmp(v, "smtp") == 0)
		ld->c->route[s->index].type = SND_TYPE_SMTP;
	else
		return cf_say(why, n, "expected sendgrid or smtp, got '%s'", v);
	/* An SMTP relay passes on what the recipient's ISP said; SendGrid's
	 * API answers only for itself (engine.h, wu_scope). */
	ld->c->core.answers_for_isp[s->index] = ld->c->route[s->index].type == SND_TYPE_SMTP;
	return 0;
}

/* The URL is checked at the end, once the route's type is known. */
static int k_url(struct load *ld, const struct key *k, const struct sect_ref *s, const char *v,
                 char *why, size_t n)
{
	(void)k;
	if (!*v || cf_has_control(v) || strchr(v, ' ') ||
	    cf_copy(ld->url[s->index], sizeof(ld->url[s->index]), v) < 0)
		return cf_say(why, n, "expected a URL such as https://api.sendgrid.com, got '%s'",
		              v);
	ld->url_set[s->index] = ld->line;
	return 0;
}

static int k_tls(struct load *ld, const struct key *k, const struct sect_ref *s, const char *v,
                 char *why, size_t n)
{
	enum snd_tls *t = &ld->c->route[s->index].tls;

	(void)k;
	if (strcmp(v, "required") == 0)
		*t = SND_TLS_REQUIRED;
	else if (strcmp(v, "optional") == 0)
		*t = SND_TLS_OPTIONAL;
	else if (strcmp(v, "none") == 0)
		*t = SND_TLS_NONE;
	else
		return cf_say(why, n, "expected required, optional or none, got '%s'", v);
	return 0;
}

/* A route's keys; a route without a section keeps type none and is not used. */
const struct key cf_route_keys[] = {
    RFN("type", k_route_type, FOR_ANY),
    RFN("url", k_url, FOR_ANY),
    RFN("api_key_env", cf_key_secret, FOR_SENDGRID),
    RFN("api_key_file", cf_key_secret, FOR_SENDGRID),
    {S_ROUTE, "ip_pool", V_STR, R(ip_pool), SZ(snd_route_conf, ip_pool), 0, 0, NULL, FOR_ANY, 0,
     NULL},
    {S_ROUTE, "on_behalf_of", V_STR, R(on_behalf_of), SZ(snd_route_conf, on_behalf_of), 0, 0, NULL,
     FOR_SENDGRID, 0, NULL},
    {S_ROUTE, "click_tracking", V_BOOL, R(click_tracking), 0, 0, 0, NULL, FOR_ANY, 0, NULL},
    {S_ROUTE, "open_tracking", V_BOOL, R(open_tracking), 0, 0, 0, NULL, FOR_ANY, 0, NULL},
    {S_ROUTE, "subscription_tracking", V_BOOL, R(subscription_tracking), 0, 0, 0, NULL, FOR_ANY, 0,
     NULL},
    {S_ROUTE, "force_tracking", V_BOOL, R(force_tracking), 0, 0, 0, NULL, FOR_ANY, 0, NULL},
    {S_ROUTE, "max_connections", V_INT, R(max_connections), 0, 1, 1000, NULL, FOR_ANY, 8, NULL},
    {S_ROUTE, "timeout", V_DURATION, R(timeout), 0, 0, 0, NULL, FOR_ANY, 30 * WU_USEC, NULL},
    {S_ROUTE, "batch", V_INT, R(batch), 0, 1, 1000, NULL, FOR_SENDGRID, 1000, NULL},
    RFND("tls", k_tls, FOR_SMTP, "required"),
    {S_ROUTE, "username", V_STR, R(username), SZ(snd_route_conf, username), 0, 0, NULL, FOR_SMTP, 0,
     NULL},
    RFN("password_env", cf_key_secret, FOR_SMTP),
    RFN("password_file", cf_key_secret, FOR_SMTP),
    {S_ROUTE, "ca_file", V_PATH, R(ca_file), SZ(snd_route_conf, ca_file), 0, 0, NULL, FOR_SMTP, 0,
     NULL},
    {S_ROUTE, "x_smtpapi", V_BOOL, R(x_smtpapi), 0, 0, 0, NULL, FOR_SMTP, 0, NULL},
};
const size_t cf_route_nkeys = sizeof(cf_route_keys) / sizeof(cf_route_keys[0]);

int cf_route_check(struct load *ld, int r)
{
	struct snd_route_conf *rc = &ld->c->route[r];
	const char *name = r == WU_ROUTE_NEW ? "route new" : "route old";
	const struct secret_ref *sec = &ld->route_secret[r];
	int have_secret = sec->env[0] || sec->file[0];
	const char *url;

	if (rc->type == SND_TYPE_NONE) {
		if (!cf_seen_line(ld, name, "type"))
			cf_lfail(ld, ld->route_line[r], "[%s] type: required: sendgrid or smtp",
			         name);
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
				cf_lfail(
				    ld, ld->url_set[r],
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
		    !cf_seen_line(ld, name, "api_key_env") &&
		    !cf_seen_line(ld, name, "api_key_file")) {
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
			cf_lfail(
			    ld, ld->url_set[r],
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
			cf_lfail(
			    ld, cf_seen_line(ld, name, "username"),
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
