/*
 * cidr.h -- client networks: "127.0.0.0/8, ::1/128" lists and matching.
 *
 * An IPv4 client seen through an IPv6 socket (::ffff:a.b.c.d) matches the
 * IPv4 networks.  A bare address means the host alone (/32 or /128).
 */
#ifndef WU_CIDR_H
#define WU_CIDR_H

#include <stddef.h>
#include <sys/socket.h>

#define WU_CIDR_MAX 32 /* networks in one list */

struct wu_cidr {
	int family;              /* AF_INET or AF_INET6 */
	unsigned char addr[16];  /* network address, host bits cleared */
	int bits;                /* prefix length */
};

/* Parses a comma- or blank-separated list into out (at most max).  Returns
 * the count, or -1 with why naming the bad entry. */
int wu_cidr_parse_list(const char *s, struct wu_cidr *out, int max, char *why, size_t n);

/* 1 when sa's address is in one of the n networks, else 0. */
int wu_cidr_match(const struct wu_cidr *list, int n, const struct sockaddr *sa);

/* 1 when sa is a loopback address (127.0.0.0/8, ::1, ::ffff:127.x). */
int wu_cidr_loopback(const struct sockaddr *sa);

#endif
