/*
 * config_webhook.c -- [webhook]: the SendGrid Event Webhook endpoint's keys
 * and defaults, its public key (given inline or read from a file last, like
 * a secret), and the checks that need the whole file: authentication that
 * cannot be left out by accident, the defer rules the engine gets.
 */
#include "config_priv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/parse.h"
#include "sender/b64.h"

/* Keeps a decoded public key, refusing a second one. */
int cf_webhook_key_set(struct load *ld, const char *b64, char *why, size_t n)
{
	struct wu_webhook_conf *w = &ld->c->webhook;
	unsigned char *der;
	long len;

	if (w->public_key)
		return cf_say(why, n, "the public key is already given on line %d; give it once",
		              ld->webhook_key_line);
	/* A DER SubjectPublicKeyInfo starts with a SEQUENCE; anything else is
	 * not the key SendGrid shows.  OpenSSL checks the rest at start-up. */
	if ((len = b64_decode_alloc(b64, strlen(b64), &der, B64_PAD_OPTIONAL)) < 24 ||
	    der[0] != 0x30) {
		free(der);
		return cf_say(
		    why, n,
		    "expected the base64 public key SendGrid shows for the signed webhook "
		    "(MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE...)");
	}
	w->public_key = der;
	w->public_key_len = (size_t)len;
	return 0;
}

static int k_webhook_auth(struct load *ld, const struct key *k, const struct sect_ref *s,
                          const char *v, char *why, size_t n)
{
	(void)k, (void)s;
	if (strcmp(v, "none") == 0)
		ld->c->webhook.auth_none = 1;
	else if (strcmp(v, "required") == 0)
		ld->c->webhook.auth_none = 0;
	else
		return cf_say(why, n, "expected required or none, got '%s'", v);
	return 0;
}

/* public_key = BASE64 now; public_key_file = PATH after the last line. */
static int k_webhook_key(struct load *ld, const struct key *k, const struct sect_ref *s,
                         const char *v, char *why, size_t n)
{
	(void)s;
	if (strcmp(k->name, "public_key") == 0) {
		if (ld->webhook_key_file[0])
			return cf_say(why, n,
			              "the public key is already given by public_key_file "
			              "on line %d; give it once",
			              ld->webhook_key_line);
		if (cf_webhook_key_set(ld, v, why, n) < 0)
			return -1;
	} else {
		if (ld->c->webhook.public_key)
			return cf_say(why, n,
			              "the public key is already given on line %d; give it once",
			              ld->webhook_key_line);
		if (!*v || cf_has_control(v) ||
		    cf_resolve(ld->c, v, ld->webhook_key_file, sizeof(ld->webhook_key_file)) < 0) {
			ld->webhook_key_file[0] = '\0';
			return cf_say(
			    why, n, "expected the path of a file holding the public key, got '%s'",
			    v);
		}
	}
	ld->webhook_key_line = ld->line;
	return 0;
}

const struct key cf_webhook_keys[] = {
    FN(S_WEBHOOK, "auth", k_webhook_auth),
    FN(S_WEBHOOK, "public_key", k_webhook_key),
    FN(S_WEBHOOK, "public_key_file", k_webhook_key),
    {S_WEBHOOK, "username", V_STR, C(webhook.username), SZ(wu_conf, webhook.username), 0, 0, NULL,
     0, 0, NULL},
    FN(S_WEBHOOK, "password_env", cf_key_secret),
    FN(S_WEBHOOK, "password_file", cf_key_secret),
    {S_WEBHOOK, "max_body", V_SIZE, C(webhook.max_body), 0, 1, (double)MAX_BODY_LIMIT, NULL, 0, MB,
     NULL},
    {S_WEBHOOK, "max_skew", V_DURATION, C(webhook.max_skew), 0, 0, 0, NULL, 0, 10 * WU_MINUTE,
     NULL},
    {S_WEBHOOK, "default_rules", V_BOOL, C(webhook.default_rules), 0, 0, 0, NULL, 0, 1, NULL},
};
const size_t cf_webhook_nkeys = sizeof(cf_webhook_keys) / sizeof(cf_webhook_keys[0]);

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

int cf_webhook_finish(struct load *ld, int daemon)
{
	struct wu_webhook_conf *w = &ld->c->webhook;
	int basic = w->username[0] || ld->webhook_password.key;
	int line = cf_seen_line(ld, "webhook", "auth");
	char why[WU_ERR_MAX];

	cf_defer_check(ld);
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
		cf_secret_read(ld, &ld->webhook_password, "webhook", "password", &w->password, why,
		               sizeof(why));
	return 0;
}
