/*
 * cidr.c -- client networks: parsing "ADDR[/BITS]" lists, matching a peer.
 */
#include "cidr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parses one "ADDR[/BITS]" entry. */
static int parse_one(const char *tok, struct wu_cidr *c)
{
	char buf[64], *slash, *end;
	long bits;
	int max;

	if (strlen(tok) >= sizeof(buf))
		return -1;
	strcpy(buf, tok);
	slash = strchr(buf, '/');
	if (slash)
		*slash++ = '\0';
	memset(c, 0, sizeof(*c));
	if (inet_pton(AF_INET, buf, c->addr) == 1) {
		c->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, buf, c->addr) == 1) {
		c->family = AF_INET6;
		max = 128;
	} else
		return -1;
	bits = max;
	if (slash) {
		if (!*slash)
			return -1;
		bits = strtol(slash, &end, 10);
		if (*end || bits < 0 || bits > max)
			return -1;
	}
	c->bits = (int)bits;
	/* clear the host bits, so that 10.1.2.3/8 means 10.0.0.0/8 */
	for (int i = 0; i < 16; i++) {
		int keep = c->bits - i * 8;
		c->addr[i] &= keep >= 8 ? 0xff : keep <= 0 ? 0 : (unsigned char)(0xff << (8 - keep));
	}
	return 0;
}

int wu_cidr_parse_list(const char *s, struct wu_cidr *out, int max, char *why, size_t n)
{
	int count = 0;

	while (*s) {
		char tok[80];
		size_t len;

		s += strspn(s, ", \t");
		len = strcspn(s, ", \t");
		if (!len)
			break;
		if (len >= sizeof(tok) || count == max) {
			snprintf(why, n, len >= sizeof(tok) ? "network entry too long"
			                                    : "at most %d networks", max);
			return -1;
		}
		memcpy(tok, s, len);
		tok[len] = '\0';
		if (parse_one(tok, &out[count]) < 0) {
			snprintf(why, n, "'%s' is not a network such as 127.0.0.0/8 or ::1/128", tok);
			return -1;
		}
		count++;
		s += len;
	}
	return count;
}

/* The peer's address as (family, bytes), IPv4-mapped IPv6 made IPv4. */
static int peer_bytes(const struct sockaddr *sa, unsigned char out[16])
{
	static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

	if (sa->sa_family == AF_INET) {
		memcpy(out, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		return AF_INET;
	}
	if (sa->sa_family == AF_INET6) {
		const unsigned char *a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
		if (memcmp(a, mapped, 12) == 0) {
			memcpy(out, a + 12, 4);
			return AF_INET;
		}
		memcpy(out, a, 16);
		return AF_INET6;
	}
	return -1;
}

int wu_cidr_match(const struct wu_cidr *list, int n, const struct sockaddr *sa)
{
	unsigned char a[16] = {0};
	int fam = peer_bytes(sa, a);

	for (int i = 0; i < n; i++) {
		const struct wu_cidr *c = &list[i];
		int full = c->bits / 8, rest = c->bits % 8;

		if (c->family != fam || memcmp(a, c->addr, (size_t)full) != 0)
			continue;
		if (rest && (a[full] & (unsigned char)(0xff << (8 - rest))) != c->addr[full])
			continue;
		return 1;
	}
	return 0;
}

int wu_cidr_loopback(const struct sockaddr *sa)
{
	unsigned char a[16] = {0};
	static const unsigned char one[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
	int fam = peer_bytes(sa, a);

	return (fam == AF_INET && a[0] == 127) || (fam == AF_INET6 && memcmp(a, one, 16) == 0);
}
