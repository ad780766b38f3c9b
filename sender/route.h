/*
 * route.h -- what a route is, as the sender sees it: which backend, where
 * it sends, with which credentials and limits.  The daemon's config fills
 * one per [route NAME] section; tests and tools fill it by hand.  Nothing
 * here knows of the scheduler.
 */
#ifndef WU_SENDER_ROUTE_H
#define WU_SENDER_ROUTE_H

#include <stdint.h>

enum snd_type { SND_TYPE_NONE = 0, SND_TYPE_SENDGRID, SND_TYPE_SMTP };
enum snd_tls { SND_TLS_REQUIRED = 0, SND_TLS_OPTIONAL, SND_TLS_NONE };

/* The role a batch plays: mail for the provider being warmed up, or the
 * overflow for the relay being left. */
enum snd_role { SND_ROLE_NEW = 0, SND_ROLE_OLD = 1 };

struct snd_route_conf {
	enum snd_type type;      /* NONE when the route is absent */
	char url[512];           /* sendgrid: base URL; smtp: smtp:// or smtps:// URL */
	char *secret;            /* API key or SMTP password; never logged */
	char secret_source[160]; /* "env SENDGRID_API_KEY" or "file /etc/..": for messages */
	char ip_pool[128];       /* ip_pool_name; "" = none */
	char on_behalf_of[128];  /* subuser; "" = none */
	int click_tracking, open_tracking, subscription_tracking; /* 0/1, default 0 */
	/* 1: the three above override the application's own tracking_settings;
	 * 0 (default): they apply only to mail that does not say */
	int force_tracking;
	int max_connections; /* default 8 */
	int64_t timeout;     /* per request, microseconds; default 30 s */
	int batch;           /* sendgrid: personalizations per request, 1..1000, default 1000 */
	/* smtp */
	enum snd_tls tls;
	char username[128];
	char ca_file[512];
	int x_smtpapi;
};

#endif
