/*
 * ui.h -- the status page: GET / (or /ui) on the intake's HTTP listener.
 *
 * A small HTML page rendered from the same JSON as GET /v1/status, with two
 * SVG charts (the plan against what was sent per day; today's sends per
 * hour by route), a style sheet and a few lines of JavaScript that poll
 * /v1/status and the charts.  No external assets; every answer carries
 * Content-Security-Policy: default-src 'self'.
 *
 * Who may look (the page and GET /v1/status alike): a client whose address
 * is in [status] open_to (loopback by default) without credentials; anyone
 * with the intake's bearer token, or with HTTP basic auth naming a line of
 * [status] viewers_file or giving the token as password; everyone when
 * [listen] auth = none.  Credentials that are sent and wrong are refused
 * even from an open address.
 */
#ifndef WU_UI_H
#define WU_UI_H

#include <microhttpd.h>
#include <stddef.h>

struct ui;
struct wu_daemon;

/* Loads the viewers file, if any.  Returns 0, or -1 with "PATH:LINE: why"
 * in err. */
int ui_open(struct ui **u, struct wu_daemon *d, char *err, size_t errlen);
void ui_close(struct ui *u); /* accepts NULL */

/* 1 when url is one of the page's (/, /ui, /ui/...). */
int ui_match(const char *url);

/* 1 when the request may read the status views (see above), else 0. */
int ui_may_view(struct ui *u, struct MHD_Connection *c);

/* Answers a GET of one of the page's URLs: 200, 404, or 401 with a basic
 * auth challenge when ui_may_view refuses. */
enum MHD_Result ui_handle(struct ui *u, struct MHD_Connection *c, const char *url);

#endif
