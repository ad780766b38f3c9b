/*
 * smtpd_auth.h -- who may send to the SMTP intake with AUTH (RFC 4954).
 *
 * The users file holds one "name:hash" per line, the hash in crypt(3)
 * format as `mkpasswd -m yescrypt` or `openssl passwd -6` write it ($y$,
 * $6$, $5$...).  Blank lines and lines starting with '#' are ignored.  A
 * clear-text password is refused when the file is loaded, naming the line.
 */
#ifndef WU_SMTPD_AUTH_H
#define WU_SMTPD_AUTH_H

#include <stddef.h>

struct smtpd_users;

/* Loads path.  Returns 0, or -1 with "PATH:LINE: why" in err. */
int smtpd_users_load(struct smtpd_users **u, const char *path, char *err, size_t errlen);
void smtpd_users_free(struct smtpd_users *u);

/* 1 when name and password match a line of the file, else 0.  The time it
 * takes does not tell whether the name exists. */
int smtpd_users_check(const struct smtpd_users *u, const char *name, const char *password);

/* Decodes base64 text (RFC 4648, padding required) into out (at most
 * outlen - 1 bytes, NUL added).  Returns the length, or -1. */
int smtpd_b64_decode(const char *in, unsigned char *out, size_t outlen);

/* Encodes len bytes as base64 into out (NUL-terminated); out needs
 * 4 * ((len + 2) / 3) + 1 bytes. */
void smtpd_b64_encode(const unsigned char *in, size_t len, char *out);

/* AUTH PLAIN's response decoded: "authzid NUL authcid NUL passwd".  Returns
 * 0 with name and password (each NUL-terminated, within the caller's
 * buffer), or -1 when it is not that shape. */
int smtpd_plain_split(unsigned char *buf, int len, const char **name, const char **password);

#endif
