/*
 * wu.h -- types shared by every module of the warmup core.
 *
 * The core is pure: libc and libm only, no clock, no I/O.  Time always comes
 * in as an argument, in microseconds since the Unix epoch, so the daemon and
 * the simulator drive the very same code.
 */
#ifndef WU_H
#define WU_H

#include <stddef.h>
#include <stdint.h>

typedef int64_t wu_time_t; /* microseconds since 1970-01-01T00:00:00Z */

#define WU_USEC       INT64_C(1000000)
#define WU_MINUTE     (60 * WU_USEC)
#define WU_HOUR       (3600 * WU_USEC)
#define WU_DAY        (86400 * WU_USEC)
#define WU_TIME_NEVER INT64_MAX

/* A cap or count that has no limit. */
#define WU_UNLIMITED INT64_MAX

/* Most ISP groups a table can hold, built-in ones included. */
#define WU_ISP_MAX      32
#define WU_ISP_NAME_MAX 32

/* Room for one human-readable error message. */
#define WU_ERR_MAX 256

enum wu_route {
	WU_ROUTE_NEW = 0, /* the provider being warmed up */
	WU_ROUTE_OLD = 1, /* the relay the team is leaving */
	WU_ROUTE_COUNT
};

const char *wu_route_name(enum wu_route r);

#endif
