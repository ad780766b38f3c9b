/*
 * b64.h -- standard base64 (RFC 4648, section 4), by OpenSSL's codec, for
 * every part of the product that reads or writes it: attachments, the
 * webhook's signature and key, SMTP AUTH.
 */
#ifndef WU_B64_H
#define WU_B64_H

#include <stddef.h>

/* Bytes b64_encode() writes for n bytes, its NUL included. */
#define B64_ENCODED_LEN(n) (4 * (((n) + 2) / 3) + 1)
/* Room b64_decode() needs for n characters of text. */
#define B64_DECODED_MAX(n) ((n) / 4 * 3 + 66)

enum {
	B64_PAD_OPTIONAL = 1, /* a last group without its '=' padding is taken */
	B64_BREAKS_ONLY = 2   /* CR and LF may break the text; spaces and tabs may not */
};

/* in (n bytes) as base64 text, without line breaks, into out (at least
 * B64_ENCODED_LEN(n) bytes), NUL-terminated.  Returns the text's length. */
size_t b64_encode(const unsigned char *in, size_t n, char *out);

/* Decodes n characters of base64 text into out (outlen bytes, at least
 * B64_DECODED_MAX(n)).  Blanks and line breaks are skipped (only line
 * breaks with B64_BREAKS_ONLY); '=' pads the last group only.  Returns the
 * byte count, or -1 when the text is not base64 (or out is too small). */
long b64_decode(const char *in, size_t n, unsigned char *out, size_t outlen, int flags);

/* The same into a malloc'd buffer (*out, NULL on failure); -2 when out of
 * memory. */
long b64_decode_alloc(const char *in, size_t n, unsigned char **out, int flags);

#endif
