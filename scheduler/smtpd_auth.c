/*
 * smtpd_auth.c -- the users file, password checks and AUTH's base64.
 *
 * Passwords are checked with crypt_rn(3) (libxcrypt): whatever scheme the
 * hash names.  base64 goes through OpenSSL's EVP_DecodeBlock and
 * EVP_EncodeBlock.
 */
#include "smtpd_auth.h"

#include <crypt.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sender/b64.h"

struct user {
	char *name, *hash;
};

struct smtpd_users {
	struct user *v;
	int n;
	char *dummy; /* a hash of the same kind, checked for unknown names */
};

void smtpd_users_free(struct smtpd_users *u)
{
	if (!u)
		return;
	for (int i = 0; i < u->n; i++) {
		free(u->v[i].name);
		OPENSSL_cleanse(u->v[i].hash, strlen(u->v[i].hash));
		free(u->v[i].hash);
	}
	free(u->v);
	free(u->dummy);
	free(u);
}

int smtpd_users_load(struct smtpd_users **up, const char *path, char *err, size_t errlen)
{
	struct smtpd_users *u = calloc(1, sizeof(*u));
	FILE *f;
	char line[1024];
	int lineno = 0, cap = 0;

	*up = NULL;
	if (!u) {
		snprintf(err, errlen, "%s: out of memory", path);
		return -1;
	}
	if (!(f = fopen(path, "r"))) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		free(u);
		return -1;
	}
	while (fgets(line, sizeof(line), f)) {
		char *colon, *hash;
		size_t n = strlen(line);

		lineno++;
		if (n && line[n - 1] != '\n' && !feof(f)) {
			snprintf(err, errlen, "%s:%d: line too long", path, lineno);
			goto fail;
		}
		line[strcspn(line, "\r\n")] = '\0';
		if (!line[0] || line[0] == '#')
			continue;
		if (!(colon = strchr(line, ':')) || colon == line) {
			snprintf(err, errlen, "%s:%d: expected name:hash", path, lineno);
			goto fail;
		}
		*colon = '\0';
		hash = colon + 1;
		if (hash[0] != '$' || strlen(hash) < 8) {
			snprintf(err, errlen,
			         "%s:%d: the password of %s is not a crypt(3) hash (write one with "
			         "mkpasswd -m yescrypt or openssl passwd -6)",
			         path, lineno, line);
			goto fail;
		}
		if (u->n == cap) {
			int nc = cap ? cap * 2 : 16;
			struct user *v = realloc(u->v, (size_t)nc * sizeof(*v));
			if (!v)
				goto nomem;
			u->v = v;
			cap = nc;
		}
		u->v[u->n].name = strdup(line);
		u->v[u->n].hash = strdup(hash);
		if (!u->v[u->n].name || !u->v[u->n].hash) {
			free(u->v[u->n].name);
			free(u->v[u->n].hash);
			goto nomem;
		}
		u->n++;
	}
	fclose(f);
	OPENSSL_cleanse(line, sizeof(line));
	if (u->n && !(u->dummy = strdup(u->v[0].hash))) {
		smtpd_users_free(u);
		snprintf(err, errlen, "%s: out of memory", path);
		return -1;
	}
	*up = u;
	return 0;
nomem:
	snprintf(err, errlen, "%s: out of memory", path);
fail:
	OPENSSL_cleanse(line, sizeof(line));
	fclose(f);
	smtpd_users_free(u);
	return -1;
}

int smtpd_users_check(const struct smtpd_users *u, const char *name, const char *password)
{
	const char *hash = u && u->dummy ? u->dummy : NULL;
	struct crypt_data *cd;
	int found = 0, ok = 0;
	const char *out;

	if (!hash)
		return 0;
	for (int i = 0; i < u->n; i++)
		if (strcmp(u->v[i].name, name) == 0) {
			hash = u->v[i].hash;
			found = 1;
			break;
		}
	if (!(cd = calloc(1, sizeof(*cd))))
		return 0;
	/* An unknown name is checked against a real hash too, so that it costs
	 * the same time as a known one.  crypt_rn, not crypt_r: the sanitizers
	 * of gcc 12 intercept crypt_r and call a NULL in its place. */
	out = crypt_rn(password, hash, cd, (int)sizeof(*cd));
	if (out && out[0] != '*' && strlen(out) == strlen(hash))
		ok = CRYPTO_memcmp(out, hash, strlen(hash)) == 0;
	OPENSSL_cleanse(cd, sizeof(*cd));
	free(cd);
	return found && ok;
}

int smtpd_b64_decode(const char *in, unsigned char *out, size_t outlen)
{
	size_t n = strlen(in);
	long len;

	if (n == 0) {
		out[0] = '\0';
		return 0;
	}
	/* RFC 4954: one unbroken base64 text, padded. */
	if (strpbrk(in, " \t\r\n") || B64_DECODED_MAX(n) + 1 > outlen ||
	    (len = b64_decode(in, n, out, outlen - 1, 0)) < 0)
		return -1;
	out[len] = '\0';
	return (int)len;
}

void smtpd_b64_encode(const unsigned char *in, size_t len, char *out)
{
	b64_encode(in, len, out);
}

int smtpd_plain_split(unsigned char *buf, int len, const char **name, const char **password)
{
	unsigned char *a, *b;

	if (len < 2 || !(a = memchr(buf, '\0', (size_t)len)))
		return -1;
	if (!(b = memchr(a + 1, '\0', (size_t)(len - (a + 1 - buf)))))
		return -1;
	if (memchr(b + 1, '\0', (size_t)(len - (b + 1 - buf))))
		return -1; /* a third NUL: not the shape */
	*name = (const char *)a + 1;
	*password = (const char *)b + 1;
	return **name ? 0 : -1;
}
