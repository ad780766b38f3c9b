/*
 * svg.c -- the bar charts of `warmup simulate --svg` and of warmupd's status page.
 *
 * NAME
 *	wu_svg_write - draw a simulated migration as an SVG bar chart
 *
 * DESCRIPTION
 *	Caps of a warmup span several orders of magnitude (63 to 20,800 in the
 *	seed migration, 50 to 4,000,000 in SendGrid's generic table), so on a
 *	linear axis the first week is invisible.  WU_SVG_AUTO therefore picks a
 *	log axis when the largest value is more than 100 times the smallest
 *	non-zero one, and says so under the title.  On a log axis the bars are
 *	stacked on the bottom of the axis (the lowest power of ten shown).
 *
 *	Coordinates are printed with one decimal in the C locale, so the bytes
 *	depend on the data alone.
 *
 * DIAGNOSTICS
 *	-1 when a write to the stream failed.
 */
#include "svg.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define W      960.0
#define H      540.0
#define LEFT   96.0
#define RIGHT  24.0
#define TOP    78.0
#define BOTTOM 64.0

#define COLOR_NEW     "#2e7d32"
#define COLOR_OLD     "#b0bec5"
#define COLOR_CAP     "#c62828"
#define COLOR_BACKLOG "#1565c0"
#define COLOR_WARN    "#ef6c00"
#define COLOR_HALT    "#b71c1c"

/* The y axis: linear from 0 to max, or log from lo to hi (powers of ten). */
struct axis {
	int log;
	double max;    /* linear */
	double step;   /* linear tick step */
	double lo, hi; /* log: log10 of the ends */
};

/* Writes s with the five XML special characters escaped. */
static void put_text(FILE *f, const char *s)
{
	for (; s && *s; s++) {
		switch (*s) {
		case '&':
			fputs("&amp;", f);
			break;
		case '<':
			fputs("&lt;", f);
			break;
		case '>':
			fputs("&gt;", f);
			break;
		case '"':
			fputs("&quot;", f);
			break;
		case '\'':
			fputs("&apos;", f);
			break;
		default:
			/* Control characters are not allowed in XML 1.0 text. */
			fputc((unsigned char)*s < 0x20 ? ' ' : *s, f);
		}
	}
}

/* Formats v with thousands separators ("4,000,000"). */
static void thousands(double v, char *buf, size_t len)
{
	char raw[32];
	int n, j = 0, lead;

	snprintf(raw, sizeof(raw), "%.0f", v);
	n = (int)strlen(raw);
	lead = n % 3 ? n % 3 : 3;
	for (int i = 0; i < n && (size_t)j + 2 < len; i++) {
		if (i && i >= lead && (i - lead) % 3 == 0)
			buf[j++] = ',';
		buf[j++] = raw[i];
	}
	buf[j] = '\0';
}

/* A tick step of 1, 2 or 5 times a power of ten, at least raw. */
static double nice_step(double raw)
{
	double p = pow(10, floor(log10(raw))), m = raw / p;

	return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}

/* Chooses the axis from the largest and smallest non-zero value. */
static void pick_axis(struct axis *a, const struct wu_svg_chart *c)
{
	double max = 0, min = 0;

	for (int i = 0; i < c->ndays; i++) {
		const struct wu_svg_day *d = &c->days[i];
		double v[4] = {(double)d->new_route, (double)(d->new_route + d->old_route),
		               (double)d->cap, (double)d->backlog};
		for (int k = 0; k < 4; k++) {
			if (v[k] <= 0)
				continue;
			if (v[k] > max)
				max = v[k];
			if (min == 0 || v[k] < min)
				min = v[k];
		}
	}
	if (max <= 0)
		max = min = 1;
	a->log = c->scale == WU_SVG_LOG || (c->scale == WU_SVG_AUTO && max / min > 100);
	if (a->log) {
		a->lo = floor(log10(min));
		a->hi = ceil(log10(max));
		if (a->hi <= a->lo)
			a->hi = a->lo + 1;
		return;
	}
	a->step = nice_step(max / 5);
	a->max = ceil(max / a->step) * a->step;
}

/* The y coordinate of value v. */
static double ypos(const struct axis *a, double v)
{
	double ph = H - TOP - BOTTOM, frac;

	if (a->log)
		frac = v <= 0 ? 0 : (log10(v) - a->lo) / (a->hi - a->lo);
	else
		frac = v / a->max;
	if (frac < 0)
		frac = 0;
	return H - BOTTOM - frac * ph;
}

/* Axis lines, grid, tick labels and axis titles. */
static void draw_axes(FILE *f, const struct axis *a, const struct wu_svg_chart *c)
{
	char num[32];
	double pw = W - LEFT - RIGHT, slot = pw / c->ndays;
	int every = c->ndays <= 31 ? 1 : (c->ndays + 29) / 30;

	fputs("<g font-family=\"sans-serif\" font-size=\"11\" fill=\"#333\">\n", f);
	if (a->log) {
		for (double e = a->lo; e <= a->hi + 1e-9; e++) {
			double y = ypos(a, pow(10, e));
			thousands(pow(10, e), num, sizeof(num));
			fprintf(f,
			        "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
			        "stroke=\"#e0e0e0\"/>\n",
			        LEFT, y, W - RIGHT, y);
			fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n",
			        LEFT - 6, y + 4, num);
		}
	} else {
		for (double v = 0; v <= a->max + a->step / 2; v += a->step) {
			double y = ypos(a, v);
			thousands(v, num, sizeof(num));
			fprintf(f,
			        "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
			        "stroke=\"#e0e0e0\"/>\n",
			        LEFT, y, W - RIGHT, y);
			fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n",
			        LEFT - 6, y + 4, num);
		}
	}
	for (int i = 0; i < c->ndays; i++) {
		if ((i + 1) % every && i)
			continue;
		fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%d</text>\n",
		        LEFT + slot * (i + 0.5), H - BOTTOM + 16, i + !c->from_zero);
	}
	fprintf(f,
	        "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>\n"
	        "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>\n",
	        LEFT, TOP, LEFT, H - BOTTOM, LEFT, H - BOTTOM, W - RIGHT, H - BOTTOM);
	fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"12\">",
	        LEFT + pw / 2, H - 18);
	put_text(f, c->xlabel ? c->xlabel : "day");
	fprintf(f,
	        "</text>\n<text transform=\"translate(16 %.1f) rotate(-90)\" "
	        "text-anchor=\"middle\" font-size=\"12\">",
	        TOP + (H - TOP - BOTTOM) / 2);
	put_text(f, c->ylabel ? c->ylabel : "messages per day");
	fprintf(f, "%s</text>\n</g>\n", a->log ? " (log scale)" : "");
}

/* The stacked bars and the gate marks above them. */
static void draw_bars(FILE *f, const struct axis *a, const struct wu_svg_chart *c)
{
	double pw = W - LEFT - RIGHT, slot = pw / c->ndays, bw = slot * 0.7;
	double base = H - BOTTOM;

	fputs("<g>\n", f);
	for (int i = 0; i < c->ndays; i++) {
		const struct wu_svg_day *d = &c->days[i];
		double x = LEFT + slot * i + (slot - bw) / 2;
		double ynew = d->new_route > 0 ? ypos(a, (double)d->new_route) : base;
		double ytot = ypos(a, (double)(d->new_route + d->old_route));

		if (d->new_route + d->old_route <= 0)
			ytot = base;
		if (ynew < base)
			fprintf(f,
			        "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
			        "fill=\"" COLOR_NEW "\"/>\n",
			        x, ynew, bw, base - ynew);
		if (d->old_route > 0 && ytot < ynew)
			fprintf(f,
			        "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
			        "fill=\"" COLOR_OLD "\"/>\n",
			        x, ytot, bw, ynew - ytot);
		if (d->gate || d->held)
			fprintf(
			    f,
			    "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" "
			    "font-family=\"sans-serif\" font-size=\"10\" fill=\"%s\">%s</text>\n",
			    x + bw / 2, ytot - 4, d->gate == 2 ? COLOR_HALT : COLOR_WARN,
			    d->gate == 2   ? "halt"
			    : d->gate == 1 ? "warn"
			                   : "held");
	}
	fputs("</g>\n", f);
}

/* A line through one point per day, broken where the value is missing
 * (value < 0), as a step: flat across each day's slot. */
static void draw_line(FILE *f, const struct axis *a, const struct wu_svg_chart *c, int backlog)
{
	double pw = W - LEFT - RIGHT, slot = pw / c->ndays;
	int open = 0;

	for (int i = 0; i < c->ndays; i++) {
		int64_t v = backlog ? c->days[i].backlog : c->days[i].cap;
		double y;

		if (v < 0 || (a->log && v == 0)) {
			if (open)
				fputs("\"/>\n", f);
			open = 0;
			continue;
		}
		y = ypos(a, (double)v);
		if (!open)
			fprintf(f,
			        "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s "
			        "points=\"",
			        backlog ? COLOR_BACKLOG : COLOR_CAP,
			        backlog ? " stroke-dasharray=\"6 4\"" : "");
		fprintf(f, "%s%.1f,%.1f %.1f,%.1f", open ? " " : "", LEFT + slot * i, y,
		        LEFT + slot * (i + 1), y);
		open = 1;
	}
	if (open)
		fputs("\"/>\n", f);
}

/* The legend, top right: a swatch and a name per series shown. */
static void draw_legend(FILE *f, int with_cap, int with_backlog)
{
	static const struct {
		const char *name, *color;
		int line, dashed;
	} items[] = {
	    {"new route", COLOR_NEW, 0, 0},
	    {"old route", COLOR_OLD, 0, 0},
	    {"cap", COLOR_CAP, 1, 0},
	    {"backlog", COLOR_BACKLOG, 1, 1},
	};
	int n = (with_backlog ? 4 : 3) - !with_cap;
	double x = W - RIGHT - 100.0 * n, y = TOP - 22;

	fputs("<g font-family=\"sans-serif\" font-size=\"11\" fill=\"#333\">\n", f);
	for (int i = 0; i < 4; i++) {
		if ((i == 2 && !with_cap) || (i == 3 && !with_backlog))
			continue;
		if (items[i].line)
			fprintf(
			    f,
			    "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
			    "stroke-width=\"2\"%s/>\n",
			    x, y - 4, x + 18, y - 4, items[i].color,
			    items[i].dashed ? " stroke-dasharray=\"6 4\"" : "");
		else
			fprintf(f,
			        "<rect x=\"%.1f\" y=\"%.1f\" width=\"18\" height=\"10\" "
			        "fill=\"%s\"/>\n",
			        x, y - 9, items[i].color);
		fprintf(f, "<text x=\"%.1f\" y=\"%.1f\">%s</text>\n", x + 24, y, items[i].name);
		x += 100;
	}
	fputs("</g>\n", f);
}

int wu_svg_write(FILE *f, const struct wu_svg_chart *c)
{
	struct axis a;
	int with_backlog = 0, with_cap = 0;

	memset(&a, 0, sizeof(a));
	pick_axis(&a, c);
	for (int i = 0; i < c->ndays; i++) {
		with_backlog |= c->days[i].backlog > 0;
		with_cap |= c->days[i].cap >= 0;
	}
	if (!c->fragment)
		fputs("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n", f);
	fprintf(f,
	        "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"%.0f\" "
	        "height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\">\n"
	        "<rect width=\"100%%\" height=\"100%%\" fill=\"#ffffff\"/>\n"
	        "<text x=\"%.1f\" y=\"24\" font-family=\"sans-serif\" font-size=\"16\" "
	        "font-weight=\"bold\" fill=\"#222\">",
	        W, H, W, H, LEFT);
	put_text(f, c->title);
	fprintf(f,
	        "</text>\n<text x=\"%.1f\" y=\"42\" font-family=\"sans-serif\" "
	        "font-size=\"11\" fill=\"#555\">",
	        LEFT);
	put_text(f, c->subtitle);
	if (a.log)
		fputs(c->subtitle && *c->subtitle ? "; log scale" : "log scale", f);
	fputs("</text>\n", f);
	if (c->ndays > 0) {
		draw_axes(f, &a, c);
		draw_bars(f, &a, c);
		draw_line(f, &a, c, 0);
		if (with_backlog)
			draw_line(f, &a, c, 1);
	}
	draw_legend(f, with_cap || c->ndays == 0, with_backlog);
	fputs("</svg>\n", f);
	return ferror(f) ? -1 : 0;
}

char *wu_svg_string(const struct wu_svg_chart *c, size_t *len)
{
	char *buf = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&buf, &n);
	int rc;

	if (!f)
		return NULL;
	rc = wu_svg_write(f, c);
	if (fclose(f) != 0 || rc < 0) {
		free(buf);
		return NULL;
	}
	if (len)
		*len = n;
	return buf;
}
