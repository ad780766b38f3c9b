/*
 * svg.h -- the chart of a simulated migration: one stacked bar per day (new
 * route below, old route above), today's cap as a line, the backlog as a
 * dashed line when there is one, and the gate's verdict over the bar.
 *
 * The output is a plain SVG 1.1 document with no scripts and no external
 * references; the same input always gives the same bytes.  `warmup
 * simulate --svg` draws a simulated migration with it, and warmupd's status
 * page (ui.c) the plan against what was sent and today's hours.
 */
#ifndef WU_SVG_H
#define WU_SVG_H

#include <stdint.h>
#include <stdio.h>

enum wu_svg_scale { WU_SVG_AUTO, WU_SVG_LINEAR, WU_SVG_LOG };

struct wu_svg_day {
	int64_t new_route, old_route, backlog;
	int64_t cap; /* < 0 = no cap (drawn as a gap in the line) */
	int gate;    /* 0 ok, 1 warn, 2 halt */
	int held;    /* the schedule did not advance */
};

struct wu_svg_chart {
	const char *title;
	const char *subtitle;
	const char *xlabel;
	const char *ylabel; /* NULL = "messages per day" */
	int from_zero;      /* number the bars 0, 1, ... (hours) instead of 1, 2, ... */
	int fragment;       /* no XML declaration: for inline use in HTML */
	int ndays;
	const struct wu_svg_day *days;
	enum wu_svg_scale scale;
};

/* Writes the chart to f.  Returns 0, or -1 when writing failed. */
int wu_svg_write(FILE *f, const struct wu_svg_chart *c);

/* The chart as a malloc'd string (*len bytes, NUL-terminated); NULL when
 * memory runs out. */
char *wu_svg_string(const struct wu_svg_chart *c, size_t *len);

#endif
