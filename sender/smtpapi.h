/*
 * smtpapi.h -- the one change an SMTP route makes to a message taken over
 * SMTP: its X-SMTPAPI header.
 *
 * smtpapi_splice() takes the message as stored (byte for byte as received,
 * CRLF line ends) and returns a copy in which only the X-SMTPAPI header
 * field differs:
 *
 *   x_smtpapi on    the fields the message carries (one or more, folded or
 *                   not) are unfolded, parsed and merged into one, the
 *                   route's settings are put in (mime_smtpapi_route()),
 *                   and it is written back, folded, where the first one
 *                   stood; a message without one gets it as its first line.
 *   x_smtpapi off   every X-SMTPAPI field is removed (SendGrid-only data).
 *
 * Every other byte, header or body, is copied unchanged: an application's
 * DKIM signature survives unless it signed X-SMTPAPI itself.  Only the
 * header block is looked at, up to its first empty line; "X-SMTPAPI:" in
 * the body is text.  Nothing here touches the network.
 */
#ifndef WU_SMTPAPI_H
#define WU_SMTPAPI_H

#include <stddef.h>

#include "mime.h"

/* Returns 0 with *out (malloc'd, NUL-terminated after *outlen bytes);
 * -1 when the message's X-SMTPAPI cannot be merged (not JSON, not an
 * object, a "to" list, a value too long to fold: err says why, and the
 * message must not be sent); -2 when memory ran out.  o->x_smtpapi picks
 * merge or strip; the rest of o is what the route merges. */
int smtpapi_splice(const char *msg, size_t len, const struct mime_opts *o, char **out,
                   size_t *outlen, char *err, size_t errlen);

#endif
