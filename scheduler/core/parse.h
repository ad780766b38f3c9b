/*
 * parse.h -- the value syntax shared by the config file, the schedule files
 * and the command line: rates, percentages, shares, durations, dates and
 * sending windows.
 *
 * Each parser returns 0, or -1 with a short message in err that says what was
 * expected ("expected a rate such as 10/s, 600/min or 5000/h").  Callers add
 * the file, line and key.
 */
#ifndef WU_PARSE_H
#define WU_PARSE_H

#include "wu.h"

/* "10/s", "600/min", "5000/h", "20000/day" -> messages per second.
 * "unlimited" gives 0, which every user of a rate reads as "no limit". */
int wu_parse_rate(const char *s, double *per_sec, char *err, size_t errlen);

/* "3%", "0.1%" -> 0.03, 0.001.  The % sign is required; 0..100. */
int wu_parse_percent(const char *s, double *frac, char *err, size_t errlen);

/* A share of a cap: "40%" sets *frac (and *count = -1), "500" sets *count
 * (and *frac = -1). */
int wu_parse_share(const char *s, double *frac, int64_t *count, char *err, size_t errlen);

/* "90s", "30min", "1h", "2d", bare seconds "45" -> microseconds, > 0. */
int wu_parse_duration(const char *s, wu_time_t *usec, char *err, size_t errlen);

/* A non-negative whole number ("20800"); no sign, no junk after it. */
int wu_parse_count(const char *s, int64_t *n, char *err, size_t errlen);

/* "on"/"off", "yes"/"no", "true"/"false", "1"/"0". */
int wu_parse_bool(const char *s, int *b, char *err, size_t errlen);

/* "2026-12-01" -> year, month, day (validated, Gregorian). */
int wu_parse_date(const char *s, int *y, int *m, int *d, char *err, size_t errlen);

/* "08:00-22:00" -> minutes after local midnight, 0 <= open < close <= 1440
 * ("24:00" is the end of the day). */
int wu_parse_window(const char *s, int *open_min, int *close_min, char *err, size_t errlen);

/* Trims leading and trailing blanks in place and returns s. */
char *wu_trim(char *s);

/* Splits a CSV line on commas in place, trimming each field; fills up to max
 * of f and returns the number of fields the line has (which may be more). */
int wu_csv_split(char *line, char **f, int max);

#endif
