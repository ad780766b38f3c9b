/*
 * msgid.c -- message ids: 22 random characters of base64url, as SendGrid's
 * X-Message-Id looks.
 *
 * The bytes come from the kernel, not from the seedable generator of
 * core/rng.h: an id is handed to the client and names its message in
 * status and events, so the next one must not follow from the last ones.
 * getrandom(2) of at most 256 bytes does not return short once the pool is
 * ready (it blocks until then) and is retried when a signal interrupts it;
 * any other failure means a kernel without it, where no id is better than
 * a guessable one.
 */
#include "msgid.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

void msgid_make(char *out)
{
	static const char alpha[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	unsigned char rnd[22];
	size_t got = 0;

	while (got < sizeof(rnd)) {
		ssize_t n = getrandom(rnd + got, sizeof(rnd) - got, 0);

		if (n > 0) {
			got += (size_t)n;
		} else if (n < 0 && errno != EINTR && errno != EAGAIN) {
			fprintf(stderr, "warmupd: getrandom: %s: cannot make message ids\n",
			        strerror(errno));
			abort();
		}
	}
	for (size_t i = 0; i < sizeof(rnd); i++)
		out[i] = alpha[rnd[i] & 63];
	out[22] = '\0';
}
