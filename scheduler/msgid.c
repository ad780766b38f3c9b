/*
 * msgid.c -- message ids: 22 random characters of base64url, as SendGrid's
 * X-Message-Id looks.
 *
 * The bytes come from the kernel, not from the seedable generator of
 * core/rng.h: an id is handed to the client and names its message in
 * status and events, so the next one must not follow from the last ones.
 * They are fetched for 64 ids at a time into a buffer of the calling
 * thread's (as arc4random buffers its own), in getrandom(2) calls of 256
 * bytes: one call per 11 ids or so rather than one an id; each byte is
 * used once.  getrandom(2) of at most 256 bytes does not return short
 * once the pool is ready (it blocks until then) and is retried when a
 * signal interrupts it; any other failure means a kernel without it,
 * where no id is better than a guessable one.  The daemon does not fork,
 * so no two processes share a buffer.
 */
#include "msgid.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define ID_LEN   22
#define POOL_IDS 64

/* Fills buf with n bytes from the kernel, in calls of at most 256. */
static void kernel_bytes(unsigned char *buf, size_t n)
{
	size_t got = 0;

	while (got < n) {
		size_t want = n - got < 256 ? n - got : 256;
		ssize_t r = getrandom(buf + got, want, 0);

		if (r > 0) {
			got += (size_t)r;
		} else if (r < 0 && errno != EINTR && errno != EAGAIN) {
			fprintf(stderr, "warmupd: getrandom: %s: cannot make message ids\n",
			        strerror(errno));
			abort();
		}
	}
}

void msgid_make(char *out)
{
	static const char alpha[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	static __thread unsigned char pool[ID_LEN * POOL_IDS];
	static __thread size_t used = sizeof(pool);
	unsigned char *rnd;

	if (used == sizeof(pool)) {
		kernel_bytes(pool, sizeof(pool));
		used = 0;
	}
	rnd = pool + used;
	used += ID_LEN;
	for (size_t i = 0; i < ID_LEN; i++)
		out[i] = alpha[rnd[i] & 63];
	memset(rnd, 0, ID_LEN); /* used once: nothing of a given id is kept */
	out[ID_LEN] = '\0';
}
