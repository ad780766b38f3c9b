/*
 * msgid.c -- message ids: 22 random characters of base64url, as SendGrid's
 * X-Message-Id looks.
 */
#include "msgid.h"

#include <stdlib.h>
#include <sys/random.h>

void msgid_make(char *out)
{
	static const char alpha[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	unsigned char rnd[22];

	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		for (size_t i = 0; i < sizeof(rnd); i++)
			rnd[i] = (unsigned char)rand();
	for (size_t i = 0; i < sizeof(rnd); i++)
		out[i] = alpha[rnd[i] & 63];
	out[22] = '\0';
}
