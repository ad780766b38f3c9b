/*
 * b64.c -- standard base64 through OpenSSL's EVP encoder and decoder.
 *
 * EVP_EncodeBlock writes one unbroken block.  Decoding goes through
 * EVP_DecodeUpdate, which skips blanks and line breaks and takes '=' only
 * as the end of the text (EVP_DecodeBlock would take it anywhere as zero
 * bits); what this file adds is the policy: optional padding, and text
 * that may break lines but not hold blanks.
 */
#include "sender/b64.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

size_t b64_encode(const unsigned char *in, size_t n, char *out)
{
	return (size_t)EVP_EncodeBlock((unsigned char *)out, in, (int)n);
}

long b64_decode(const char *in, size_t n, unsigned char *out, size_t outlen, int flags)
{
	static const char pad[] = "===";
	EVP_ENCODE_CTX *ctx;
	size_t chars = 0;
	int len = 0, more = 0, rc;

	if (outlen < B64_DECODED_MAX(n) || n > (size_t)(1 << 30))
		return -1;
	for (size_t i = 0; i < n; i++) {
		char c = in[i];

		if (c == '\r' || c == '\n')
			continue;
		if ((c == ' ' || c == '\t') && !(flags & B64_BREAKS_ONLY))
			continue;
		if (c == ' ' || c == '\t' || c == '\0')
			return -1;
		chars++;
	}
	if ((ctx = EVP_ENCODE_CTX_new()) == NULL)
		return -1;
	EVP_DecodeInit(ctx);
	rc = EVP_DecodeUpdate(ctx, out, &len, (const unsigned char *)in, (int)n);
	if (rc >= 0 && chars % 4 != 0) {
		/* A group short of its padding: supplied when allowed. */
		if (!(flags & B64_PAD_OPTIONAL) || chars % 4 == 1 || rc == 0)
			rc = -1;
		else
			rc = EVP_DecodeUpdate(ctx, out + len, &more, (const unsigned char *)pad,
			                      (int)(4 - chars % 4));
		len += more;
	}
	if (rc >= 0 && EVP_DecodeFinal(ctx, out + len, &more) >= 0)
		len += more;
	else
		len = -1;
	EVP_ENCODE_CTX_free(ctx);
	return len;
}

long b64_decode_alloc(const char *in, size_t n, unsigned char **out, int flags)
{
	long len;

	if ((*out = malloc(B64_DECODED_MAX(n))) == NULL)
		return -2;
	if ((len = b64_decode(in, n, *out, B64_DECODED_MAX(n), flags)) < 0) {
		free(*out);
		*out = NULL;
	}
	return len;
}
