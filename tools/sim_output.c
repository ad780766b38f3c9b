/*
 * sim_output.c -- what `warmup simulate` prints: the day table, CSV, JSON,
 * the operating characteristics of many seeds, and the SVG chart.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim_priv.h"

/* A count with thousands separators. */
static void fmt_count(int64_t v, char *buf, size_t len)
{
	char raw[32];
	int n, j = 0, lead, neg = v < 0;

	snprintf(raw, sizeof(raw), "%" PRId64, neg ? -v : v);
	n = (int)strlen(raw);
	lead = n % 3 ? n % 3 : 3;
	if (neg)
		buf[j++] = '-';
	for (int i = 0; i < n && (size_t)j + 2 < len; i++) {
		if (i && i >= lead && (i - lead) % 3 == 0)
			buf[j++] = ',';
		buf[j++] = raw[i];
	}
	buf[j] = '\0';
}

/* hits / n as a percentage, 0 when n is 0. */
static double pct(int64_t hits, int64_t n)
{
	return n > 0 ? 100.0 * (double)hits / (double)n : 0;
}

#define COLS 14

/* Prints rows of cells, numbers right-aligned and text left-aligned. */
static void print_table(char (*cells)[COLS][32], int nrows, const int *right, int ncols)
{
	int width[COLS] = {0};

	for (int r = 0; r < nrows; r++)
		for (int c = 0; c < ncols; c++) {
			int w = (int)strlen(cells[r][c]);
			if (w > width[c])
				width[c] = w;
		}
	for (int r = 0; r < nrows; r++) {
		char line[COLS * 40];
		int off = 0;
		for (int c = 0; c < ncols; c++)
			off +=
			    snprintf(line + off, sizeof(line) - (size_t)off, "%s%*s", c ? "  " : "",
			             right[c] ? width[c] : -width[c], cells[r][c]);
		while (off > 0 && line[off - 1] == ' ')
			line[--off] = '\0';
		puts(line);
	}
}

/* The human table, a totals line and the engine's events. */
void sim_output_table(const struct sim *s)
{
	static const char *head[COLS] = {"day",  "date", "step",    "cap",    "offered",
	                                 "new",  "old",  "backlog", "bounce", "complaint",
	                                 "gate", "note", "engaged", "other"};
	static const int right[COLS] = {1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1};
	char(*cells)[COLS][32] = calloc((size_t)s->ndays + 2, sizeof(*cells));
	int64_t off = 0, nw = 0, old = 0, del = 0, bo = 0, co = 0, en = 0;
	int ncols = s->eng_on ? COLS : COLS - 2;

	if (!cells)
		return;
	for (int c = 0; c < COLS; c++)
		snprintf(cells[0][c], 32, "%s", head[c]);
	for (int d = 0; d < s->ndays; d++) {
		const struct day *r = &s->days[d];
		char(*row)[32] = cells[d + 1];
		snprintf(row[0], 32, "%d", d + 1);
		wu_date_format(r->date, row[1], 32);
		snprintf(row[2], 32, "%d", r->step);
		if (r->cap == WU_UNLIMITED)
			snprintf(row[3], 32, "unlimited");
		else
			fmt_count(r->cap, row[3], 32);
		fmt_count(r->offered, row[4], 32);
		fmt_count(r->new_route, row[5], 32);
		fmt_count(r->old_route, row[6], 32);
		fmt_count(r->backlog, row[7], 32);
		snprintf(row[8], 32, "%.2f%%", pct(r->bounces, r->delivered + r->bounces));
		snprintf(row[9], 32, "%.3f%%", pct(r->complaints, r->delivered));
		snprintf(row[10], 32, "%s", wu_gate_state_name(r->gate));
		{
			const char *st = r->stepped_back ? "stepped back" : r->held ? "held" : "";
			if (r->deferred)
				snprintf(row[11], 32, "%s%sdeferred %" PRId64, st, *st ? ", " : "",
				         r->deferred);
			else
				snprintf(row[11], 32, "%s", st);
		}
		fmt_count(r->engaged_new, row[12], 32);
		fmt_count(r->new_route - r->engaged_new, row[13], 32);
		en += r->engaged_new;
		off += r->offered;
		nw += r->new_route;
		old += r->old_route;
		del += r->delivered;
		bo += r->bounces;
		co += r->complaints;
	}
	{
		char(*row)[32] = cells[s->ndays + 1];
		snprintf(row[0], 32, "total");
		fmt_count(off, row[4], 32);
		fmt_count(nw, row[5], 32);
		fmt_count(old, row[6], 32);
		fmt_count(s->ndays ? s->days[s->ndays - 1].backlog : 0, row[7], 32);
		snprintf(row[8], 32, "%.2f%%", pct(bo, del + bo));
		snprintf(row[9], 32, "%.3f%%", pct(co, del));
		fmt_count(en, row[12], 32);
		fmt_count(nw - en, row[13], 32);
	}
	print_table(cells, s->ndays + 2, right, ncols);
	free(cells);
	if (s->nevents)
		putchar('\n');
	for (int i = 0; i < s->nevents; i++)
		printf("day %d: %s\n", s->events[i].day, s->events[i].text);
}

/* CSV with the fixed header the tests and spreadsheets rely on. */
void sim_output_csv(const struct sim *s)
{
	/* --engaged adds its columns at the end, so readers of the fixed
	 * columns are not moved. */
	puts(s->eng_on ? "day,date,cap,offered,new,old,backlog,bounce_rate,complaint_rate,gate,"
	                 "engaged_new,other_new"
	               : "day,date,cap,offered,new,old,backlog,bounce_rate,complaint_rate,gate");
	for (int d = 0; d < s->ndays; d++) {
		const struct day *r = &s->days[d];
		char date[16], cap[32];
		wu_date_format(r->date, date, sizeof(date));
		if (r->cap == WU_UNLIMITED)
			snprintf(cap, sizeof(cap), "unlimited");
		else
			snprintf(cap, sizeof(cap), "%" PRId64, r->cap);
		printf("%d,%s,%s,%" PRId64 ",%" PRId64 ",%" PRId64 ",%" PRId64 ",%.2f,%.2f,%s",
		       d + 1, date, cap, r->offered, r->new_route, r->old_route, r->backlog,
		       pct(r->bounces, r->delivered + r->bounces), pct(r->complaints, r->delivered),
		       wu_gate_state_name(r->gate));
		if (s->eng_on)
			printf(",%" PRId64 ",%" PRId64, r->engaged_new,
			       r->new_route - r->engaged_new);
		putchar('\n');
	}
}

/* A percentage rounded to 2 decimals, as in the CSV. */
static double pct2(int64_t hits, int64_t n)
{
	return round(pct(hits, n) * 100) / 100;
}

/* Sets the counts and rates shared by a day and the totals. */
static void json_counts(cJSON *o, int64_t offered, int64_t nw, int64_t old, int64_t backlog,
                        int64_t del, int64_t bo, int64_t co)
{
	cJSON_AddNumberToObject(o, "offered", (double)offered);
	cJSON_AddNumberToObject(o, "new", (double)nw);
	cJSON_AddNumberToObject(o, "old", (double)old);
	cJSON_AddNumberToObject(o, "backlog", (double)backlog);
	cJSON_AddNumberToObject(o, "delivered", (double)del);
	cJSON_AddNumberToObject(o, "bounces", (double)bo);
	cJSON_AddNumberToObject(o, "complaints", (double)co);
	cJSON_AddNumberToObject(o, "bounce_rate", pct2(bo, del + bo));
	cJSON_AddNumberToObject(o, "complaint_rate", pct2(co, del));
}

/* Prints a JSON document and deletes it.  Returns 0 or -1 (no memory). */
static int print_json(cJSON *root)
{
	char *text = cJSON_Print(root);

	cJSON_Delete(root);
	if (!text)
		return -1;
	puts(text);
	cJSON_free(text);
	return 0;
}

/* The JSON document: days, totals, events.  Returns 0 or -1 (no memory). */
int sim_output_json(const struct sim *s)
{
	cJSON *root = cJSON_CreateObject(), *days = cJSON_AddArrayToObject(root, "days");
	cJSON *tot = cJSON_AddObjectToObject(root, "totals");
	cJSON *evs = cJSON_AddArrayToObject(root, "events");
	int64_t off = 0, nw = 0, old = 0, del = 0, bo = 0, co = 0, held = 0;
	char date[16];

	if (!root || !days || !tot || !evs)
		goto nomem;
	for (int d = 0; d < s->ndays; d++) {
		const struct day *r = &s->days[d];
		cJSON *o = cJSON_CreateObject(), *isps;
		if (!o || !cJSON_AddItemToArray(days, o))
			goto nomem;
		wu_date_format(r->date, date, sizeof(date));
		cJSON_AddNumberToObject(o, "day", d + 1);
		cJSON_AddStringToObject(o, "date", date);
		cJSON_AddNumberToObject(o, "step", r->step);
		if (r->cap == WU_UNLIMITED)
			cJSON_AddNullToObject(o, "cap");
		else
			cJSON_AddNumberToObject(o, "cap", (double)r->cap);
		json_counts(o, r->offered, r->new_route, r->old_route, r->backlog, r->delivered,
		            r->bounces, r->complaints);
		cJSON_AddStringToObject(o, "gate", wu_gate_state_name(r->gate));
		cJSON_AddBoolToObject(o, "held", r->held);
		cJSON_AddBoolToObject(o, "stepped_back", r->stepped_back);
		if (s->eng_on) {
			cJSON_AddNumberToObject(o, "engaged_new", (double)r->engaged_new);
			cJSON_AddNumberToObject(o, "other_new",
			                        (double)(r->new_route - r->engaged_new));
		}
		isps = cJSON_AddObjectToObject(o, "isps");
		if (!isps)
			goto nomem;
		for (int i = 0; i < s->nisp; i++) {
			cJSON *x = cJSON_AddObjectToObject(isps, s->isps->names[i]);
			if (!x)
				goto nomem;
			cJSON_AddNumberToObject(x, "new", (double)r->isp_new[i]);
			cJSON_AddNumberToObject(x, "old", (double)r->isp_old[i]);
			cJSON_AddNumberToObject(x, "deferred", (double)r->isp_deferred[i]);
		}
		off += r->offered;
		nw += r->new_route;
		old += r->old_route;
		del += r->delivered;
		bo += r->bounces;
		co += r->complaints;
		held += r->held;
	}
	cJSON_AddNumberToObject(tot, "days", s->ndays);
	json_counts(tot, off, nw, old, s->ndays ? s->days[s->ndays - 1].backlog : 0, del, bo, co);
	cJSON_AddNumberToObject(tot, "held_days", (double)held);
	for (int i = 0; i < s->nevents; i++) {
		const struct event *ev = &s->events[i];
		cJSON *o = cJSON_CreateObject();
		if (!o || !cJSON_AddItemToArray(evs, o))
			goto nomem;
		wu_date_format(ev->date, date, sizeof(date));
		cJSON_AddNumberToObject(o, "day", ev->day);
		cJSON_AddStringToObject(o, "date", date);
		cJSON_AddStringToObject(o, "kind", wu_event_name(ev->kind));
		cJSON_AddNumberToObject(o, "bounce_rate", round(ev->bounce_rate * 10000) / 100);
		cJSON_AddNumberToObject(o, "complaint_rate",
		                        round(ev->complaint_rate * 10000) / 100);
		cJSON_AddStringToObject(o, "text", ev->text);
	}
	return print_json(root);
nomem:
	cJSON_Delete(root);
	return -1;
}

/* Adds the run just ended to the per-day tallies of --seeds. */
void sim_oc_tally(const struct sim *s, struct oc_day *oc)
{
	int halted = 0;

	for (int d = 0; d < s->ndays; d++) {
		const struct day *r = &s->days[d];
		oc[d].halt += r->gate == WU_GATE_HALT;
		oc[d].warn += r->gate == WU_GATE_WARN;
		oc[d].first += r->gate == WU_GATE_HALT && !halted;
		halted |= r->gate == WU_GATE_HALT;
		oc[d].halted_by += halted;
		oc[d].new_route += r->new_route;
	}
}

/* The --seeds report: per day, the runs that halted, warned, first halted
 * and had halted by then, and the mean new-route volume.  Returns 0 or -1
 * (no memory). */
int sim_output_oc(const struct sim *s, const struct oc_day *oc, int64_t runs, uint64_t first,
                  enum format fmt)
{
	const char *outcomes = s->random_outcomes ? "random" : "even";

	if (fmt == FMT_CSV) {
		puts("day,runs,halt,warn,first_halt,halted_by,new_mean");
		for (int d = 0; d < s->ndays; d++)
			printf("%d,%" PRId64 ",%" PRId64 ",%" PRId64 ",%" PRId64 ",%" PRId64
			       ",%.1f\n",
			       d + 1, runs, oc[d].halt, oc[d].warn, oc[d].first, oc[d].halted_by,
			       (double)oc[d].new_route / (double)runs);
		return 0;
	}
	if (fmt == FMT_JSON) {
		cJSON *root = cJSON_CreateObject(), *days = cJSON_AddArrayToObject(root, "days");
		if (!root || !days)
			goto nomem;
		cJSON_AddNumberToObject(root, "runs", (double)runs);
		cJSON_AddNumberToObject(root, "first_seed", (double)first);
		cJSON_AddStringToObject(root, "outcomes", outcomes);
		for (int d = 0; d < s->ndays; d++) {
			cJSON *o = cJSON_CreateObject();
			if (!o || !cJSON_AddItemToArray(days, o))
				goto nomem;
			cJSON_AddNumberToObject(o, "day", d + 1);
			cJSON_AddNumberToObject(o, "halt", (double)oc[d].halt);
			cJSON_AddNumberToObject(o, "warn", (double)oc[d].warn);
			cJSON_AddNumberToObject(o, "first_halt", (double)oc[d].first);
			cJSON_AddNumberToObject(o, "halted_by", (double)oc[d].halted_by);
			cJSON_AddNumberToObject(
			    o, "new_mean", round(10 * (double)oc[d].new_route / (double)runs) / 10);
		}
		return print_json(root);
	nomem:
		cJSON_Delete(root);
		return -1;
	}
	printf("%" PRId64 " runs, seeds %" PRIu64 "..%" PRIu64 ", outcomes %s\n\n", runs, first,
	       first + (uint64_t)runs - 1, outcomes);
	printf("%3s  %6s  %6s  %10s  %9s  %10s\n", "day", "halted", "warned", "first halt",
	       "halted by", "new (mean)");
	for (int d = 0; d < s->ndays; d++) {
		char mean[32];
		fmt_count(llround((double)oc[d].new_route / (double)runs), mean, sizeof(mean));
		printf("%3d  %6" PRId64 "  %6" PRId64 "  %10" PRId64 "  %8.1f%%  %10s\n", d + 1,
		       oc[d].halt, oc[d].warn, oc[d].first, pct(oc[d].halted_by, runs), mean);
	}
	return 0;
}

/* Writes the chart.  Returns 0, or 1 after a message. */
int sim_output_svg(const struct sim *s, const char *path, const char *schedule,
                   const struct wu_calendar *cal, enum wu_svg_scale scale)
{
	struct wu_svg_day *v = calloc((size_t)s->ndays + 1, sizeof(*v));
	struct wu_svg_chart c = {0};
	char title[1100], sub[256], xlabel[96], date[16];
	const char *base = schedule ? strrchr(schedule, '/') : NULL;
	FILE *f;
	int rc;

	if (!v)
		return sim_bad("out of memory"), 1;
	for (int d = 0; d < s->ndays; d++) {
		v[d].new_route = s->days[d].new_route;
		v[d].old_route = s->days[d].old_route;
		v[d].backlog = s->days[d].backlog;
		v[d].cap = s->days[d].cap == WU_UNLIMITED ? -1 : s->days[d].cap;
		v[d].gate = (int)s->days[d].gate;
		v[d].held = s->days[d].held;
	}
	wu_date_format(cal->start, date, sizeof(date));
	snprintf(title, sizeof(title), "warmup simulate: %s", base ? base + 1 : schedule);
	snprintf(sub, sizeof(sub), "%d days from %s (%s); bars: messages per day by route",
	         s->ndays, date, cal->tz);
	snprintf(xlabel, sizeof(xlabel), "day (1 = %s)", date);
	c.title = title;
	c.subtitle = sub;
	c.xlabel = xlabel;
	c.ndays = s->ndays;
	c.days = v;
	c.scale = scale;
	f = fopen(path, "w");
	if (!f) {
		free(v);
		return sim_bad("--svg: %s: %s", path, strerror(errno)), 1;
	}
	rc = wu_svg_write(f, &c);
	if (fclose(f) != 0)
		rc = -1;
	free(v);
	if (rc < 0)
		return sim_bad("--svg: %s: write failed", path), 1;
	return 0;
}

/*
 * Setup.
 */
