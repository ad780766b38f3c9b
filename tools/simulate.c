/*
 * simulate.c -- `warmup simulate`: rehearse a migration on a virtual clock.
 *
 * NAME
 *	warmup simulate - run a warmup schedule against simulated traffic
 *
 * SYNOPSIS
 *	warmup simulate --schedule FILE (--daily-volume N | --traffic FILE)
 *	                [--config FILE] [--mx-map FILE] [OPTIONS]
 *	warmup simulate --schedule FILE --from-store PATH [--config FILE] [OPTIONS]
 *
 * DESCRIPTION
 *	Every simulated message goes through wu_engine_route(), the router
 *	warmupd's dispatcher asks, and its outcome goes back through
 *	wu_engine_outcome(); the day's numbers are read back from the engine at
 *	each local midnight.  Nothing here decides where a message goes: this
 *	file only makes traffic (arrival times from a profile, an ISP drawn
 *	from a mix, bounces and complaints drawn from an outcome model) and
 *	keeps the per-ISP FIFO backlog the daemon keeps in its store.
 *
 *	A --mix entry may be a domain: each of its messages is grouped by
 *	wu_mxcache_group(), the daemon's classification, with the --mx-map
 *	file standing in for DNS (its answers never expire).
 *
 *	Units are alike except for their ISP, so a backlog is a count per ISP
 *	and a wake-up time per ISP: the time the engine said to ask again.  The
 *	event loop takes the earlier of the next arrival and the earliest
 *	wake-up; ties go to the wake-up, so older mail goes first.
 *
 *	Randomness comes from two xoshiro256** streams seeded by splitmix64
 *	from --seed: one draws ISPs, the other outcomes, so changing a bounce
 *	rate does not move which ISP a message belongs to.  Outcomes are
 *	"even" by default: each day's bounces and complaints come at exactly
 *	the asked rate from a seeded phase, so whether the gate trips depends
 *	on the rate and not on luck; --outcomes random draws each message.
 *	The same arguments give the same bytes on stdout and in the SVG file.
 *
 *	--from-store replays a daemon's store instead (sim_replay.c): each
 *	arrival at its recorded time for its recorded ISP, the outcome rates
 *	per day and ISP from the daemon's counters.
 *
 * DIAGNOSTICS
 *	Bad options, config, schedule and traffic files: one line on stderr
 *	naming the option, or the file, line and key; exit status 2.  Run-time
 *	failures (memory, writing the chart): exit status 1.  Unless --quiet,
 *	a last line on stderr gives the speed of the run.
 */
#include "simulate.h"
#include "sim_replay.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "scheduler/core/engine.h"
#include "scheduler/core/mxcache.h"
#include "scheduler/core/pacing.h"
#include "scheduler/core/parse.h"
#include "scheduler/core/rng.h"
#include "scheduler/config.h"
#include "scheduler/svg.h"
#include "scheduler/zone.h"

#define PROG         "warmup simulate"
#define MAX_DAYS     3660
#define MAX_VOLUME   INT64_C(1000000000)
#define MIX_MAX      (WU_ISP_MAX + 32) /* groups and up to 32 domains in --mix */
#define DEFAULT_TZ   "Asia/Tokyo"
#define DEFAULT_DATE "2026-12-01"
#define DEFAULT_MIX                                                                                \
	"google=40%,yahoo=15%,microsoft=10%,apple=8%,docomo=8%,au=6%,softbank=5%,other=8%"
#define DEFAULT_BOUNCE    "1%"
#define DEFAULT_COMPLAINT "0.01%"
#define EXIT_BAD          2
#define ONE53             (UINT64_C(1) << 53)

enum format { FMT_TABLE, FMT_CSV, FMT_JSON };
enum profile { PROF_EVEN, PROF_BUSINESS, PROF_BLAST };

/* The business profile: share of a day's arrivals in each local hour, in
 * percent (72% between 09:00 and 18:00).  README.md shows it. */
static const int business_weights[24] = {1, 1, 1, 1, 1, 1, 1, 2, 4, 8, 8, 8,
                                         8, 8, 8, 8, 8, 8, 4, 3, 3, 2, 2, 1};

/* The command line, as given. */
struct options {
	const char *schedule, *config, *traffic, *daily, *days, *start, *tz, *mix;
	const char *profile, *overflow, *burst, *pace, *after, *advance, *bounce, *complaint, *seed,
	    *seeds;
	const char *deferral;
	const char *outcomes;
	const char *mx_map;
	const char *engaged;
	const char *from_store;
	const char *format, *svg;
	int svg_scale; /* enum wu_svg_scale */
	int quiet, help;
};

/* One simulated day, as the engine reported it at midnight. */
struct day {
	int date, step, held, stepped_back;
	int64_t engaged_new; /* --engaged: engaged units the new route took */
	enum wu_gate_state gate;
	int64_t cap, offered, new_route, old_route, backlog;
	int64_t delivered, bounces, complaints, deferred;
	int64_t isp_new[WU_ISP_MAX], isp_old[WU_ISP_MAX], isp_deferred[WU_ISP_MAX];
};

/* One day over many seeds (--seeds): how often the gate acted. */
struct oc_day {
	int64_t halt;      /* runs whose day ended halted */
	int64_t warn;      /* runs whose worst verdict of the day was a warning */
	int64_t first;     /* runs whose first halt was on this day */
	int64_t halted_by; /* runs halted on this day or before */
	int64_t new_route; /* new-route sends, summed over the runs */
};

/* An engine event worth showing (gate verdicts, pauses, resumes). */
struct event {
	int day, date;
	enum wu_event_kind kind;
	double bounce_rate, complaint_rate;
	char text[160];
};

struct sim {
	struct wu_engine *e;
	int nisp;
	const struct wu_isp_table *isps;
	/* traffic and outcome model, per simulated day */
	int ndays;
	int64_t *offered;
	int64_t (*hourly)[24]; /* --traffic with an hour column: offered per local hour */
	uint64_t *bounce_thr, *complaint_thr; /* probability scaled to 2^53 */
	struct sim_replay *rp;                /* --from-store: arrivals and rates from a store */
	double *bounce, *complaint;
	enum profile profile;
	int blast_min; /* PROF_BLAST: the minute after local midnight it all arrives */
	/* ISP mix: cumulative thresholds out of 2^64; an entry is a group, or
	 * a domain (mix_dom) classified per message by name or --mx-map */
	int nmix;
	int mix_isp[MIX_MAX];
	const char *mix_dom[MIX_MAX];
	uint64_t mix_thr[MIX_MAX];
	double mix_share[MIX_MAX];
	struct wu_mxcache *mx; /* --mx-map: domain -> its MX's group */
	char mix_names[MIX_MAX - WU_ISP_MAX][256];
	uint64_t seed;
	struct wu_rng rng_isp, rng_out;
	/* deferrals per ISP (--deferral-rate) and the rules that answer them */
	uint64_t d_thr[WU_ISP_MAX], d_acc[WU_ISP_MAX];
	/* the loop */
	int random_outcomes;                           /* --outcomes random: a draw per message */
	uint64_t b_thr[WU_ISP_MAX], c_thr[WU_ISP_MAX]; /* today's outcome rates, out of 2^53 */
	uint64_t b_acc, c_acc; /* --outcomes even: error accumulators, out of 2^53 */
	int64_t backlog[WU_ISP_MAX];
	int64_t eng_backlog[WU_ISP_MAX]; /* the engaged part of backlog */
	uint64_t eng_thr, eng_acc;       /* --engaged: share out of 2^53, accumulator */
	int eng_on;                      /* --engaged was given: show its columns */
	wu_time_t wake[WU_ISP_MAX];
	uint32_t waiting; /* ISPs with a backlog, waiting for wake[] */
	int64_t routed;   /* messages that got NEW or OLD */
	int64_t calls;    /* route() calls, WAIT answers included */
	/* results */
	struct day *days;
	struct event *events;
	int nevents, cap_events;
};

/* Prints "warmup simulate: message" on stderr; returns EXIT_BAD. */
static int bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int bad(const char *fmt, ...)
{
	va_list ap;

	fputs(PROG ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return EXIT_BAD;
}

void wu_simulate_usage(FILE *f)
{
	fputs("usage: warmup simulate --schedule FILE (--daily-volume N | --traffic FILE |\n"
	      "                        --from-store PATH) [OPTIONS]\n"
	      "\n"
	      "Rehearses a migration on a virtual clock with the router warmupd uses.\n"
	      "\n"
	      "Traffic:\n"
	      "  --schedule FILE        warmup table, CSV day,cap (or day,hourly_cap)\n"
	      "  --config FILE          the daemon's INI file (ISP rules, throttles, gate, ...)\n"
	      "  --daily-volume N       N messages offered every day\n"
	      "  --traffic FILE         CSV day,offered: the volume of each day; with an hour\n"
	      "                         column (day,hour,offered), of each local hour\n"
	      "  --from-store PATH      replay a daemon's store (read-only, a running daemon's\n"
	      "                         too): each arrival at its time for its ISP, and the\n"
	      "                         bounce, complaint and deferral rates per day and ISP;\n"
	      "                         give the daemon's --config (its ISP groups)\n"
	      "  --days N               days to simulate (default: the schedule's length, the\n"
	      "                         traffic file's rows, or the store's days)\n"
	      "  --start YYYY-MM-DD     day 1 (default: the store's first day, the config's,\n"
	      "                         or " DEFAULT_DATE ")\n"
	      "  --timezone ZONE        IANA zone (default: the config's, or " DEFAULT_TZ ")\n"
	      "  --mix LIST             ISP shares, e.g. google=45%,yahoo=20%; the rest goes\n"
	      "                         to other (default: google 40%, yahoo 15%, microsoft\n"
	      "                         10%, apple 8%, docomo 8%, au 6%, softbank 5%, other 8%);\n"
	      "                         a DOMAIN=SHARE entry is grouped per message by name or\n"
	      "                         --mx-map\n"
	      "  --mx-map FILE          CSV domain,mx: the MX DNS would give each domain\n"
	      "  --profile even|business|blast@HH:MM\n"
	      "                         arrival times over the day (default even; blast: all\n"
	      "                         of a day's mail at one local time)\n"
	      "  --engaged SHARE        share of recipients that are engaged, e.g. 30%: they\n"
	      "                         go first on the new route while engaged_first\n"
	      "                         applies; adds the engaged and other columns\n"
	      "Policy (override the config):\n"
	      "  --overflow old|defer   what the new route cannot take now\n"
	      "  --burst 1h|30min|day   pacing burst\n"
	      "  --pace arrivals|even   release the cap along the recent days' arrivals\n"
	      "                         (default) or evenly over the window\n"
	      "  --after unlimited|hold|double  past the schedule's last day\n"
	      "  --advance calendar|gated\n"
	      "Outcomes:\n"
	      "  --bounce-rate R[,dayN=R...]     hard bounces, e.g. 2%,day6=8% "
	      "(default " DEFAULT_BOUNCE ")\n"
	      "  --complaint-rate R[,dayN=R...]  spam reports (default " DEFAULT_COMPLAINT ")\n"
	      "  --deferral-rate LIST   deferrals per ISP, e.g. google=5%,yahoo=2%: each one\n"
	      "                         goes through the ISP's deferral rule ([defer_rule]\n"
	      "                         or the built-in ones), which cuts its new-route rate\n"
	      "  --outcomes even|random  even: outcomes at exactly the rates, spread over\n"
	      "                         the day; random: a draw per message (default even)\n"
	      "  --seed N               random seed (default 1)\n"
	      "  --seeds N              run N seeds (--seed, --seed + 1, ...) and print per\n"
	      "                         day how many runs the gate halted and warned;\n"
	      "                         outcomes are random unless --outcomes says even\n"
	      "Output:\n"
	      "  --format table|csv|json  stdout format (default table)\n"
	      "  --svg FILE             write a chart; --svg-log / --svg-linear force the scale\n"
	      "                         (default: log when values span more than 100x)\n"
	      "  --quiet                no speed line on stderr\n"
	      "  --help                 this text\n",
	      f);
}

/*
 * Options.
 */

struct optdef {
	const char *name;
	size_t off; /* of the const char * in struct options; (size_t)-1 for flags */
};

#define OPT(n, f)                                                                                  \
	{                                                                                          \
		n, offsetof(struct options, f)                                                     \
	}
static const struct optdef optdefs[] = {
    OPT("schedule", schedule),
    OPT("config", config),
    OPT("traffic", traffic),
    OPT("daily-volume", daily),
    OPT("days", days),
    OPT("start", start),
    OPT("timezone", tz),
    OPT("mix", mix),
    OPT("profile", profile),
    OPT("overflow", overflow),
    OPT("burst", burst),
    OPT("pace", pace),
    OPT("after", after),
    OPT("advance", advance),
    OPT("bounce-rate", bounce),
    OPT("complaint-rate", complaint),
    OPT("deferral-rate", deferral),
    OPT("outcomes", outcomes),
    OPT("mx-map", mx_map),
    OPT("engaged", engaged),
    OPT("from-store", from_store),
    OPT("seed", seed),
    OPT("seeds", seeds),
    OPT("format", format),
    OPT("svg", svg),
};

/* Reads argv into o.  Returns 0, or EXIT_BAD after a message. */
static int parse_args(struct options *o, int argc, char **argv)
{
	memset(o, 0, sizeof(*o));
	o->svg_scale = WU_SVG_AUTO;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *eq, *val;
		size_t n;
		int found = 0;

		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			o->help = 1;
			continue;
		}
		if (strcmp(a, "--quiet") == 0 || strcmp(a, "-q") == 0) {
			o->quiet = 1;
			continue;
		}
		if (strcmp(a, "--svg-log") == 0 || strcmp(a, "--svg-linear") == 0) {
			o->svg_scale = strcmp(a, "--svg-log") == 0 ? WU_SVG_LOG : WU_SVG_LINEAR;
			continue;
		}
		if (strncmp(a, "--", 2) != 0)
			return bad("unexpected argument '%s' (see warmup simulate --help)", a);
		eq = strchr(a, '=');
		n = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
		for (size_t k = 0; k < sizeof(optdefs) / sizeof(optdefs[0]); k++) {
			if (strlen(optdefs[k].name) != n || strncmp(optdefs[k].name, a + 2, n) != 0)
				continue;
			if (eq)
				val = eq + 1;
			else if (i + 1 < argc)
				val = argv[++i];
			else
				return bad("--%s needs a value", optdefs[k].name);
			*(const char **)((char *)o + optdefs[k].off) = val;
			found = 1;
			break;
		}
		if (!found)
			return bad("unknown option '%.*s' (see warmup simulate --help)",
			           (int)(n + 2), a);
	}
	return 0;
}

/* Parses a count of at most max for an option. */
static int parse_count_opt(const char *opt, const char *s, int64_t min, int64_t max, int64_t *out)
{
	int64_t v;

	if (wu_parse_count(s, &v, NULL, 0) < 0 || v < min || v > max)
		return bad("--%s: expected a whole number from %" PRId64 " to %" PRId64
		           ", got '%s'",
		           opt, min, max, s);
	*out = v;
	return 0;
}

/* A rate with per-day overrides: "2%" or "2%,day6=8%,day7=3%".  Fills
 * rates[0..ndays-1]. */
static int parse_rates(const char *opt, const char *s, int ndays, double *rates)
{
	char buf[1024], err[WU_ERR_MAX], *save = NULL, *item;
	int have_default = 0;

	if (strlen(s) >= sizeof(buf))
		return bad("--%s: value too long", opt);
	strcpy(buf, s);
	/* The default first, wherever it is written, then the overrides. */
	for (item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		double r;
		item = wu_trim(item);
		if (strchr(item, '='))
			continue;
		if (have_default++)
			return bad("--%s: two default rates in '%s'", opt, s);
		if (wu_parse_percent(item, &r, err, sizeof(err)) < 0)
			return bad("--%s: %s", opt, err);
		for (int d = 0; d < ndays; d++)
			rates[d] = r;
	}
	strcpy(buf, s);
	for (item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(item, '='), *end;
		long day;
		double r;

		item = wu_trim(item);
		if (!eq)
			continue;
		*eq = '\0';
		if (strncmp(item, "day", 3) != 0 || item[3] < '0' || item[3] > '9')
			return bad("--%s: expected dayN=RATE such as day6=8%%, got '%s='", opt,
			           item);
		errno = 0;
		day = strtol(item + 3, &end, 10);
		if (errno || *wu_trim(end) || day < 1)
			return bad("--%s: expected dayN=RATE such as day6=8%%, got '%s='", opt,
			           item);
		if (day > ndays)
			return bad("--%s: day %ld is past the last simulated day (%d)", opt, day,
			           ndays);
		if (wu_parse_percent(wu_trim(eq + 1), &r, err, sizeof(err)) < 0)
			return bad("--%s: day%ld: %s", opt, day, err);
		rates[day - 1] = r;
	}
	return 0;
}

/* Parses "GROUP=PERCENT,..." given to --opt into fractions per ISP group
 * (out[], and their sum in *total).  Each group once; with is_default, a
 * group the config does not have counts as "other". */
static int parse_isp_percents(const struct sim *s, const char *opt, const char *example,
                              const char *value, int is_default, double *out, double *total)
{
	int given[WU_ISP_MAX] = {0};
	char buf[1024], err[WU_ERR_MAX], *save = NULL, *item;

	*total = 0;
	if (strlen(value) >= sizeof(buf))
		return bad("--%s: value too long", opt);
	strcpy(buf, value);
	for (item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(item, '=');
		double r;
		int isp;

		if (!eq)
			return bad("--%s: expected GROUP=%s, got '%s'", opt, example,
			           wu_trim(item));
		*eq = '\0';
		item = wu_trim(item);
		isp = wu_isp_find(s->isps, item);
		if (isp < 0 && is_default) /* a group the config removed: its share is other's */
			isp = WU_ISP_OTHER;
		if (isp < 0) {
			char names[WU_ISP_MAX * (WU_ISP_NAME_MAX + 2)] = "";
			for (int i = 0; i < s->isps->n; i++) {
				strcat(names, i ? ", " : "");
				strcat(names, s->isps->names[i]);
			}
			return bad("--%s: no ISP group '%s' (groups: %s)", opt, item, names);
		}
		if (given[isp]++ && !is_default)
			return bad("--%s: %s given twice", opt, item);
		if (wu_parse_percent(wu_trim(eq + 1), &r, err, sizeof(err)) < 0)
			return bad("--%s: %s: %s", opt, item, err);
		out[isp] += r;
		*total += r;
	}
	return 0;
}

/* Parses --deferral-rate "google=5%,yahoo=2%" into per-ISP thresholds. */
static int parse_deferrals(struct sim *s, const char *value)
{
	double rate[WU_ISP_MAX] = {0}, total;
	int rc;

	if ((rc = parse_isp_percents(s, "deferral-rate", "RATE such as google=5%", value, 0, rate,
	                             &total)))
		return rc;
	for (int i = 0; i < s->isps->n; i++)
		s->d_thr[i] = (uint64_t)llround(rate[i] * (double)ONE53);
	return 0;
}

/* Appends a mix entry (a group, or a domain) of this share, if any. */
static void mix_add(struct sim *s, int isp, const char *dom, double share, double *cum)
{
	double t;

	if (share <= 0)
		return;
	*cum += share;
	t = *cum * 18446744073709551616.0;
	s->mix_isp[s->nmix] = isp;
	s->mix_dom[s->nmix] = dom;
	s->mix_share[s->nmix] = share;
	s->mix_thr[s->nmix++] = t >= 18446744073709551615.0 ? UINT64_MAX : (uint64_t)t;
}

/* Parses "google=45%,yahoo=20%" against the ISP table; the rest of 100%
 * goes to "other". */
static int parse_mix(struct sim *s, const char *opt_value, int is_default)
{
	double share[WU_ISP_MAX] = {0}, dshare[MIX_MAX - WU_ISP_MAX] = {0}, total = 0, cum = 0;
	char groups[1024] = "", buf[1024], err[WU_ERR_MAX], *save = NULL, *item;
	int rc, ndom = 0;

	/* Entries with a dot are domains; the rest are groups. */
	if (strlen(opt_value) >= sizeof(buf))
		return bad("--mix: value too long");
	strcpy(buf, opt_value);
	for (item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(item, '='), *name;
		if (eq)
			*eq = '\0';
		name = wu_trim(item);
		if (!eq || !strchr(name, '.')) {
			if (eq)
				*eq = '=';
			strcat(strcat(groups, *groups ? "," : ""), item);
			continue;
		}
		if (ndom == MIX_MAX - WU_ISP_MAX)
			return bad("--mix: at most %d domains", MIX_MAX - WU_ISP_MAX);
		if (strlen(name) >= sizeof(s->mix_names[0]))
			return bad("--mix: domain too long: '%.40s...'", name);
		for (int i = 0; i < ndom; i++)
			if (strcasecmp(s->mix_names[i], name) == 0)
				return bad("--mix: %s given twice", name);
		strcpy(s->mix_names[ndom], name);
		if (wu_parse_percent(wu_trim(eq + 1), &dshare[ndom], err, sizeof(err)) < 0)
			return bad("--mix: %s: %s", name, err);
		total += dshare[ndom++];
	}
	/* Without --mx-map too: the cache keeps each domain's verdict by name. */
	if (ndom && !s->mx && wu_mxcache_create(&s->mx, MIX_MAX) < 0)
		return bad("out of memory");
	if (*groups && (rc = parse_isp_percents(s, "mix", "SHARE such as google=45%", groups,
	                                        is_default, share, &cum)))
		return rc;
	total += cum;
	cum = 0;
	if (total > 1 + 1e-9)
		return bad("--mix: shares add up to %.2f%%, more than 100%%", total * 100);
	share[WU_ISP_OTHER] += 1 - total > 0 ? 1 - total : 0;
	s->nmix = 0;
	for (int i = 0; i < s->isps->n; i++)
		mix_add(s, i, NULL, share[i], &cum);
	for (int i = 0; i < ndom; i++)
		mix_add(s, WU_ISP_OTHER, s->mix_names[i], dshare[i], &cum);
	if (s->nmix == 0)
		return bad("--mix: every share is 0%%");
	s->mix_thr[s->nmix - 1] = UINT64_MAX; /* rounding must not leave a gap at the top */
	return 0;
}

static char *slurp(const char *path, size_t *len);

/* --mx-map FILE: "domain,mx" lines (a "domain,mx" header, blank lines and
 * #-comments skipped) put into the MX cache as answers that never expire,
 * each grouped by wu_isp_classify_mx() as the daemon groups DNS's. */
static int load_mx_map(struct sim *s, const char *path)
{
	size_t len;
	char *text = slurp(path, &len), *line, *save = NULL;
	int lineno = 0, rc = 0;

	if (!text)
		return bad("--mx-map: %s: %s", path, strerror(errno));
	if (wu_mxcache_create(&s->mx, 1000000) < 0) {
		free(text);
		return bad("out of memory");
	}
	for (line = text; line; line = save) {
		char *nl = strchr(line, '\n'), *comma, *dom, *host;
		save = nl ? nl + 1 : NULL;
		if (nl)
			*nl = '\0';
		lineno++;
		dom = wu_trim(line);
		if (!*dom || *dom == '#' || strcasecmp(dom, "domain,mx") == 0)
			continue;
		if (!(comma = strchr(dom, ',')) || strchr(comma + 1, ',')) {
			rc = bad("%s:%d: expected domain,mx such as acme.co.jp,aspmx.l.google.com",
			         path, lineno);
			break;
		}
		*comma = '\0';
		dom = wu_trim(dom);
		host = wu_trim(comma + 1);
		if (!*dom || !*host || strchr(dom, ' ') || strchr(host, ' ') ||
		    wu_mxcache_put(s->mx, dom, wu_isp_classify_mx(s->isps, host), INT64_MAX) < 0) {
			rc = bad("%s:%d: expected domain,mx such as acme.co.jp,aspmx.l.google.com",
			         path, lineno);
			break;
		}
	}
	free(text);
	return rc;
}

/* Reads a whole file; NULL with errno set on failure. */
static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t n = 0, cap = 0;

	if (!f)
		return NULL;
	for (;;) {
		if (n + 4096 + 1 > cap) {
			char *p = realloc(buf, cap = (cap ? cap * 2 : 8192));
			if (!p) {
				free(buf);
				fclose(f);
				errno = ENOMEM;
				return NULL;
			}
			buf = p;
		}
		size_t got = fread(buf + n, 1, cap - n - 1, f);
		n += got;
		if (got == 0)
			break;
	}
	if (ferror(f)) {
		free(buf);
		fclose(f);
		errno = EIO;
		return NULL;
	}
	fclose(f);
	buf[n] = '\0';
	*len = n;
	return buf;
}

/* Reads a traffic file: CSV with a header naming "day" and "offered", days
 * 1, 2, 3...; with an "hour" column too, one row per day and local hour
 * (0-23, each once; hours not given offer nothing).  Sets s->offered (and
 * s->hourly) and s->ndays.  Errors are FILE:LINE. */
static int read_traffic(struct sim *s, const char *path)
{
	size_t len;
	char *text = slurp(path, &len), *p, *next;
	int lineno = 0, col_day = -1, col_off = -1, col_hour = -1, ncols = 0, rc = EXIT_BAD;

	if (!text)
		return bad("--traffic: %s: %s", path, strerror(errno));
	s->offered = calloc(MAX_DAYS, sizeof(*s->offered));
	if (!s->offered) {
		free(text);
		return bad("out of memory");
	}
	s->ndays = 0;
	if ((p = memchr(text, '\0', len))) {
		for (char *q = text; q <= p; q++)
			lineno += q == text || q[-1] == '\n';
		bad("%s:%d: not a text file (a NUL byte)", path, lineno);
		goto out;
	}
	for (p = text; p && *p; p = next) {
		char *f[16];
		int nf;
		int64_t v, day;

		next = strchr(p, '\n');
		if (next)
			*next++ = '\0';
		lineno++;
		p[strcspn(p, "\r")] = '\0';
		p = wu_trim(p);
		if (!*p || *p == '#')
			continue;
		nf = wu_csv_split(p, f, 16);
		if (nf > 16) {
			bad("%s:%d: too many columns", path, lineno);
			goto out;
		}
		if (col_day < 0) {
			for (int i = 0; i < nf; i++) {
				if (strcmp(f[i], "day") == 0)
					col_day = i;
				else if (strcmp(f[i], "offered") == 0)
					col_off = i;
				else if (strcmp(f[i], "hour") == 0)
					col_hour = i;
			}
			if (col_day < 0 || col_off < 0) {
				bad("%s:%d: expected a header naming the columns day and offered, "
				    "got '%s'",
				    path, lineno, f[0]);
				col_day = -1;
				goto out;
			}
			ncols = nf;
			if (col_hour >= 0 &&
			    (s->hourly = calloc(MAX_DAYS, sizeof(*s->hourly))) == NULL) {
				bad("out of memory");
				goto out;
			}
			continue;
		}
		if (nf != ncols) {
			bad("%s:%d: expected %d fields like the header, got %d", path, lineno,
			    ncols, nf);
			goto out;
		}
		if (col_hour >= 0) {
			int64_t hour;

			/* Hour rows: the day goes on, or the next one begins. */
			if (wu_parse_count(f[col_day], &day, NULL, 0) < 0 ||
			    (day != s->ndays && day != s->ndays + 1) || day < 1) {
				bad("%s:%d: day: expected %d or %d, got '%s'", path, lineno,
				    s->ndays ? s->ndays : 1, s->ndays + 1, f[col_day]);
				goto out;
			}
			if (wu_parse_count(f[col_hour], &hour, NULL, 0) < 0 || hour > 23) {
				bad("%s:%d: hour: expected a local hour from 0 to 23, got '%s'", path,
				    lineno, f[col_hour]);
				goto out;
			}
			if (day == s->ndays + 1) {
				if (s->ndays >= MAX_DAYS) {
					bad("%s:%d: more than %d days", path, lineno, MAX_DAYS);
					goto out;
				}
				s->ndays++;
				for (int h = 0; h < 24; h++)
					s->hourly[s->ndays - 1][h] = -1;
			}
			if (s->hourly[s->ndays - 1][hour] >= 0) {
				bad("%s:%d: hour: day %" PRId64 " hour %" PRId64 " is given twice",
				    path, lineno, day, hour);
				goto out;
			}
			if (wu_parse_count(f[col_off], &v, NULL, 0) < 0 || v > MAX_VOLUME ||
			    s->offered[s->ndays - 1] + v > MAX_VOLUME) {
				bad("%s:%d: offered: expected a whole number from 0 to %" PRId64
				    " a day, got '%s'",
				    path, lineno, MAX_VOLUME, f[col_off]);
				goto out;
			}
			s->hourly[s->ndays - 1][hour] = v;
			s->offered[s->ndays - 1] += v;
			continue;
		}
		if (wu_parse_count(f[col_day], &day, NULL, 0) < 0 || day != s->ndays + 1) {
			bad("%s:%d: day: expected %d, got '%s'", path, lineno, s->ndays + 1,
			    f[col_day]);
			goto out;
		}
		if (s->ndays >= MAX_DAYS) {
			bad("%s:%d: more than %d days", path, lineno, MAX_DAYS);
			goto out;
		}
		if (wu_parse_count(f[col_off], &v, NULL, 0) < 0 || v > MAX_VOLUME) {
			bad("%s:%d: offered: expected a whole number from 0 to %" PRId64
			    ", got '%s'",
			    path, lineno, MAX_VOLUME, f[col_off]);
			goto out;
		}
		s->offered[s->ndays++] = v;
	}
	/* Hours not given offer nothing. */
	for (int d = 0; s->hourly && d < s->ndays; d++)
		for (int h = 0; h < 24; h++)
			if (s->hourly[d][h] < 0)
				s->hourly[d][h] = 0;
	if (col_day < 0)
		bad("%s:%d: no header (expected day,offered)", path, lineno ? lineno : 1);
	else if (s->ndays == 0)
		bad("%s:%d: no days", path, lineno);
	else
		rc = 0;
out:
	free(text);
	return rc;
}

/*
 * The event loop.
 */

/* 1 when the next outcome of a rate thr (out of 2^53) is a hit.  Random:
 * an independent draw.  Even: an accumulator that hits exactly when the
 * running total passes a whole number, so a day with n sends has
 * floor(n * rate + phase) hits and every prefix of the day is within one hit
 * of the rate -- the gate sees the rate that was asked for, not noise. */
static inline int hit(struct sim *s, uint64_t thr, uint64_t *acc)
{
	if (s->random_outcomes)
		return (wu_rng_next(&s->rng_out) >> 11) < thr;
	*acc += thr;
	if (*acc < ONE53)
		return 0;
	*acc -= ONE53;
	return 1;
}

/* One report to the engine, as the daemon makes it from what it saw. */
static inline void report(struct sim *s, wu_time_t t, enum wu_route route, int isp,
                          enum wu_result res, enum wu_scope scope, int date)
{
	struct wu_report r = {.route = route,
	                      .isp = isp,
	                      .result = res,
	                      .scope = scope,
	                      .n = 1,
	                      .sent_date = date,
	                      .attempts = 1};

	wu_engine_report(s->e, t, &r);
}

/* Feeds a new-route send's outcomes as the daemon would see them: the
 * route's answer (from SendGrid's API on a v3 route, from the relay on an
 * SMTP route), then the webhook's events: possibly deferred first (the
 * engine's deferral rules answer it), then delivered or bounced, and for a
 * delivered one possibly a complaint. */
static inline void feed_new(struct sim *s, wu_time_t t, int isp, int date)
{
	report(s, t, WU_ROUTE_NEW, isp, WU_ACCEPTED, WU_SCOPE_ROUTE, date);
	if (s->d_thr[isp] && hit(s, s->d_thr[isp], &s->d_acc[isp]))
		report(s, t, WU_ROUTE_NEW, isp, WU_DEFERRED, WU_SCOPE_ISP, -1);
	if (hit(s, s->b_thr[isp], &s->b_acc)) {
		report(s, t, WU_ROUTE_NEW, isp, WU_BOUNCE, WU_SCOPE_ISP, date);
		return;
	}
	report(s, t, WU_ROUTE_NEW, isp, WU_DELIVERED, WU_SCOPE_ISP, date);
	if (s->c_thr[isp] && hit(s, s->c_thr[isp], &s->c_acc))
		report(s, t, WU_ROUTE_NEW, isp, WU_COMPLAINT, WU_SCOPE_ISP, date);
}

/* Routes isp's backlog at t until it is empty or the engine says wait. */
static void drain(struct sim *s, int isp, wu_time_t t)
{
	while (s->backlog[isp] > 0) {
		/* Engaged units first, as the daemon's dispatcher takes them. */
		int engaged = s->eng_backlog[isp] > 0;
		struct wu_decision d = wu_engine_route_for(s->e, t, isp, engaged);

		s->calls++;
		if (d.kind == WU_NEW) {
			s->backlog[isp]--;
			s->eng_backlog[isp] -= engaged;
			s->routed++;
			feed_new(s, t, isp, d.date);
		} else if (d.kind == WU_OLD) {
			s->backlog[isp]--;
			s->eng_backlog[isp] -= engaged;
			s->routed++;
			report(s, t, WU_ROUTE_OLD, isp, WU_ACCEPTED, WU_SCOPE_ROUTE, d.date);
		} else {
			/* A hint that does not move forward would spin forever. */
			s->wake[isp] = d.until > t ? d.until : t + 1;
			s->waiting |= UINT32_C(1) << isp;
			return;
		}
	}
	s->waiting &= ~(UINT32_C(1) << isp);
}

/* Drains every waiting ISP whose wake-up is at or before limit, earliest
 * first (the lower ISP id first on a tie). */
static void run_wakeups(struct sim *s, wu_time_t limit)
{
	while (s->waiting) {
		int best = -1;
		for (uint32_t m = s->waiting; m; m &= m - 1) {
			int i = __builtin_ctz(m);
			if (best < 0 || s->wake[i] < s->wake[best])
				best = i;
		}
		if (s->wake[best] > limit)
			return;
		drain(s, best, s->wake[best]);
	}
}

/* One arrival at t for isp joins the back of that ISP's queue (the
 * wake-ups due by t have run).  A queue that is already waiting keeps
 * waiting: a newer message never overtakes an older one of the same ISP. */
static inline void arrive_isp(struct sim *s, wu_time_t t, int isp)
{
	/* --engaged: exactly the share, spread evenly, drawing no random
	 * number (the ISPs stay what they were without it). */
	if (s->eng_thr && (s->eng_acc += s->eng_thr) >= ONE53) {
		s->eng_acc -= ONE53;
		s->eng_backlog[isp]++;
	}
	wu_engine_arrive(s->e, t, 1);
	if (s->backlog[isp]++ == 0)
		drain(s, isp, t);
}

/* One arrival at t: a message for an ISP drawn from the mix. */
static inline void arrive(struct sim *s, wu_time_t t)
{
	uint64_t r = wu_rng_next(&s->rng_isp);
	int k = 0, isp;

	run_wakeups(s, t);
	while (r >= s->mix_thr[k] && k < s->nmix - 1)
		k++;
	isp = s->mix_isp[k];
	if (s->mix_dom[k]) { /* the daemon's classification, with the map as DNS */
		int bits;
		wu_time_t asked;
		isp = wu_mxcache_group(s->mx, s->isps, s->mix_dom[k], t, &bits, &asked);
	}
	arrive_isp(s, t, isp);
}

/* --from-store: one arrival the daemon recorded, at its time, for its ISP. */
static void arrive_recorded(void *arg, wu_time_t t, int isp)
{
	struct sim *s = arg;

	run_wakeups(s, t);
	arrive_isp(s, t, isp);
}

/* n arrivals evenly spaced over [from, to): the first at from. */
static void arrive_evenly(struct sim *s, wu_time_t from, wu_time_t to, int64_t n)
{
	wu_time_t len = to - from, q, t = from;
	int64_t r, acc = 0;

	if (n <= 0)
		return;
	q = len / n;
	r = len % n;
	for (int64_t i = 0; i < n; i++) {
		arrive(s, t);
		t += q;
		acc += r;
		if (acc >= n) {
			acc -= n;
			t++;
		}
	}
}

/* The local hours of a day: edge[h] to edge[h + 1]; an hour that does not
 * exist (the gap of a DST change) is empty. */
static void hour_edges(const struct wu_day *day, wu_time_t edge[25])
{
	edge[0] = day->start;
	edge[24] = day->end;
	for (int h = 1; h < 24; h++) {
		edge[h] = wu_calendar_local(day->date, h * 60);
		if (edge[h] < edge[h - 1])
			edge[h] = edge[h - 1];
		if (edge[h] > day->end)
			edge[h] = day->end;
	}
}

/* A traffic file's hours: each hour's arrivals even within it (an hour a
 * DST change skips gives its mail to the next that exists). */
static void arrive_hours(struct sim *s, const struct wu_day *day, const int64_t count[24])
{
	wu_time_t edge[25];
	int64_t carry = 0;

	hour_edges(day, edge);
	for (int h = 0; h < 24; h++) {
		carry += count[h];
		if (edge[h + 1] > edge[h]) {
			arrive_evenly(s, edge[h], edge[h + 1], carry);
			carry = 0;
		}
	}
}

/* A daily blast: all of a day's n arrivals at one local time (the first
 * instant after it, when a DST gap skips it). */
static void arrive_blast(struct sim *s, const struct wu_day *day, int64_t n)
{
	wu_time_t t = wu_calendar_local(day->date, s->blast_min);

	if (t < day->start)
		t = day->start;
	if (t >= day->end)
		t = day->end - 1;
	for (int64_t i = 0; i < n; i++)
		arrive(s, t);
}

/* A day's n arrivals by the business profile: apportioned to local hours by
 * largest remainder, even within each hour.  An hour that does not exist
 * (the gap of a DST change) gets none. */
static void arrive_business(struct sim *s, const struct wu_day *day, int64_t n)
{
	wu_time_t edge[25];
	int64_t count[24], rem[24], wsum = 0, given = 0;

	hour_edges(day, edge);
	for (int h = 0; h < 24; h++)
		wsum += edge[h + 1] > edge[h] ? business_weights[h] : 0;
	for (int h = 0; h < 24; h++) {
		int64_t w = edge[h + 1] > edge[h] ? business_weights[h] : 0;
		count[h] = n * w / wsum;
		rem[h] = n * w % wsum;
		given += count[h];
	}
	while (given < n) {
		int best = 0;
		for (int h = 1; h < 24; h++)
			if (rem[h] > rem[best])
				best = h;
		count[best]++;
		rem[best] = -1;
		given++;
	}
	for (int h = 0; h < 24; h++)
		arrive_evenly(s, edge[h], edge[h + 1], count[h]);
}

/* Copies the day the engine just closed into rec. */
static void record_day(struct sim *s, struct day *rec, int64_t offered)
{
	const struct wu_day_stats *y = wu_engine_yesterday(s->e);

	memset(rec, 0, sizeof(*rec));
	rec->date = y->date;
	rec->step = y->step;
	rec->held = y->held;
	rec->stepped_back = y->stepped_back;
	rec->engaged_new = y->engaged_new;
	rec->gate = y->gate;
	rec->cap = y->cap;
	rec->offered = offered;
	for (int i = 0; i < s->nisp; i++) {
		rec->isp_new[i] = y->sent[WU_ROUTE_NEW][i];
		rec->isp_old[i] = y->sent[WU_ROUTE_OLD][i];
		rec->new_route += rec->isp_new[i];
		rec->old_route += rec->isp_old[i];
		rec->delivered += y->result[WU_ROUTE_NEW][i][WU_DELIVERED];
		rec->bounces += y->result[WU_ROUTE_NEW][i][WU_BOUNCE];
		rec->complaints += y->result[WU_ROUTE_NEW][i][WU_COMPLAINT];
		rec->isp_deferred[i] = y->result[WU_ROUTE_NEW][i][WU_DEFERRED];
		rec->deferred += rec->isp_deferred[i];
		rec->backlog += s->backlog[i];
	}
}

/* Moves the engine's gate, pause and resume events into s->events. */
static int take_events(struct sim *s, int start_date)
{
	struct wu_event ev;

	while (wu_engine_poll_event(s->e, &ev)) {
		struct event *out;
		/* The event list keeps to the gate, pauses, resumes and step
		 * backs: a run's drawn deferrals would fill it with cuts and
		 * recoveries, which the day's deferral counts already show. */
		if (ev.kind != WU_EV_GATE_WARN && ev.kind != WU_EV_GATE_HALT &&
		    ev.kind != WU_EV_PAUSE && ev.kind != WU_EV_RESUME && ev.kind != WU_EV_STEP_BACK)
			continue;
		if (s->nevents == s->cap_events) {
			int cap = s->cap_events ? s->cap_events * 2 : 16;
			struct event *p = realloc(s->events, (size_t)cap * sizeof(*p));
			if (!p)
				return -1;
			s->events = p;
			s->cap_events = cap;
		}
		out = &s->events[s->nevents++];
		out->day = ev.date - start_date + 1;
		out->date = ev.date;
		out->kind = ev.kind;
		out->bounce_rate = ev.bounce_rate;
		out->complaint_rate = ev.complaint_rate;
		snprintf(out->text, sizeof(out->text), "%s", ev.text);
	}
	return 0;
}

/* Runs every day.  Returns 0 or -1 (no memory). */
static int run(struct sim *s, const struct wu_calendar *cal)
{
	wu_rng_seed(&s->rng_isp, s->seed, 1);
	wu_rng_seed(&s->rng_out, s->seed, 2);
	for (int d = 0; d < s->ndays; d++) {
		struct wu_day day;

		wu_calendar_date(cal, cal->start + d, &day);
		for (int i = 0; i < s->nisp; i++) {
			s->b_thr[i] = s->bounce_thr[d];
			s->c_thr[i] = s->complaint_thr[d];
		}
		if (s->rp)
			sim_replay_rates(s->rp, day.date, s->nisp, s->b_thr, s->c_thr, s->d_thr);
		/* Each day starts the even model at a seeded phase in [0, 1). */
		s->b_acc = wu_rng_next(&s->rng_out) >> 11;
		s->c_acc = wu_rng_next(&s->rng_out) >> 11;
		if (s->rp)
			sim_replay_arrivals(s->rp, day.date, arrive_recorded, s);
		else if (s->hourly)
			arrive_hours(s, &day, s->hourly[d]);
		else if (s->profile == PROF_BUSINESS)
			arrive_business(s, &day, s->offered[d]);
		else if (s->profile == PROF_BLAST)
			arrive_blast(s, &day, s->offered[d]);
		else
			arrive_evenly(s, day.start, day.end, s->offered[d]);
		run_wakeups(s, day.end - 1);
		wu_engine_tick(s->e, day.end);
		record_day(s, &s->days[d], s->offered[d]);
		if (take_events(s, cal->start) < 0)
			return -1;
	}
	return 0;
}

/*
 * Output.
 */

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
static void output_table(const struct sim *s)
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
static void output_csv(const struct sim *s)
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
static int output_json(const struct sim *s)
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
static void oc_tally(const struct sim *s, struct oc_day *oc)
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
static int output_oc(const struct sim *s, const struct oc_day *oc, int64_t runs, uint64_t first,
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
static int output_svg(const struct sim *s, const char *path, const char *schedule,
                      const struct wu_calendar *cal, enum wu_svg_scale scale)
{
	struct wu_svg_day *v = calloc((size_t)s->ndays + 1, sizeof(*v));
	struct wu_svg_chart c = {0};
	char title[1100], sub[256], xlabel[96], date[16];
	const char *base = schedule ? strrchr(schedule, '/') : NULL;
	FILE *f;
	int rc;

	if (!v)
		return bad("out of memory"), 1;
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
		return bad("--svg: %s: %s", path, strerror(errno)), 1;
	}
	rc = wu_svg_write(f, &c);
	if (fclose(f) != 0)
		rc = -1;
	free(v);
	if (rc < 0)
		return bad("--svg: %s: write failed", path), 1;
	return 0;
}

/*
 * Setup.
 */

/* Checks that an IANA zone name names a file under /usr/share/zoneinfo. */
/* Fills in the configuration from the config file, the schedule and the
 * policy options.  Returns 0 or EXIT_BAD after a message. */
static int setup_conf(struct wu_conf *conf, const struct options *o)
{
	struct wu_core_conf *c = &conf->core;
	char err[WU_ERR_MAX * 2], tz[sizeof(c->calendar.tz)];
	int y, m, d;

	if (o->config ? wu_conf_load(conf, o->config, WU_CONF_NO_SECRETS, err, sizeof(err))
	              : wu_conf_defaults(conf)) {
		if (o->config)
			return bad("%s", err);
		return bad("out of memory");
	}
	if (o->schedule && wu_conf_read_schedule(conf, o->schedule, err, sizeof(err)) < 0)
		return bad("%s", err);
	if (c->schedule.ndays <= 0)
		return bad("no schedule: give --schedule FILE (or schedule = in the config)");
	if (o->overflow && wu_overflow_parse(o->overflow, &c->overflow, err, sizeof(err)) < 0)
		return bad("--overflow: %s", err);
	if (o->burst && wu_burst_parse(o->burst, &c->burst, err, sizeof(err)) < 0)
		return bad("--burst: %s", err);
	if (o->pace && wu_pace_parse(o->pace, &c->pace, err, sizeof(err)) < 0)
		return bad("--pace: %s", err);
	if (o->after && wu_after_parse(o->after, &c->schedule.after, err, sizeof(err)) < 0)
		return bad("--after: %s", err);
	if (o->advance && wu_advance_parse(o->advance, &c->advance, err, sizeof(err)) < 0)
		return bad("--advance: %s", err);

	snprintf(tz, sizeof(tz), "%s",
	         o->tz               ? o->tz
	         : c->calendar.tz[0] ? c->calendar.tz
	                             : DEFAULT_TZ);
	if (o->tz && strlen(o->tz) >= sizeof(tz))
		return bad("--timezone: name too long: '%s'", o->tz);
	if (wu_zone_check(tz, err, sizeof(err)) < 0)
		return bad("%s: %s", o->tz ? "--timezone" : o->config, err);
	if (o->start) {
		if (wu_parse_date(o->start, &y, &m, &d, err, sizeof(err)) < 0)
			return bad("--start: %s", err);
	} else if (c->calendar.start != 0) {
		wu_civil_from_days(c->calendar.start, &y, &m, &d);
	} else {
		wu_parse_date(DEFAULT_DATE, &y, &m, &d, NULL, 0);
	}
	if (wu_calendar_init(&c->calendar, tz, y, m, d, c->calendar.open_min, c->calendar.close_min,
	                     err, sizeof(err)) < 0)
		return bad("%s", err);
	if (wu_zone_apply(tz) < 0)
		return bad("cannot set the time zone %s", tz);
	return 0;
}

/* --from-store gives the traffic and the outcomes: the options that would
 * give them too are refused.  Returns 0 or EXIT_BAD after a message. */
static int replay_excludes(const struct options *o)
{
	const char *given = o->daily       ? "--daily-volume"
	                    : o->traffic   ? "--traffic"
	                    : o->profile   ? "--profile"
	                    : o->mix       ? "--mix"
	                    : o->bounce    ? "--bounce-rate"
	                    : o->complaint ? "--complaint-rate"
	                    : o->deferral  ? "--deferral-rate"
	                                   : NULL;

	if (given)
		return bad("--from-store gives the arrivals, ISPs and outcome rates: drop %s",
		           given);
	return 0;
}

/* Sets up traffic, mix and outcome model from the options.  Returns 0 or
 * EXIT_BAD after a message. */
static int setup_sim(struct sim *s, const struct options *o, const struct wu_conf *conf)
{
	int64_t v = 0, daily = -1;
	int rc;

	s->isps = &conf->core.isps;
	s->nisp = conf->core.isps.n;
	if (o->daily && o->traffic)
		return bad("give --daily-volume or --traffic, not both");
	if (!o->daily && !o->traffic && !s->rp)
		return bad(
		    "no traffic: give --daily-volume N, --traffic FILE or --from-store PATH");
	if (s->rp &&
	    !(s->offered = sim_replay_offered(s->rp, conf->core.calendar.start, &s->ndays))) {
		if (s->ndays < 0)
			return bad("out of memory");
		return bad("--start: %s has no mail on or after that day", o->from_store);
	}
	if (o->daily && (rc = parse_count_opt("daily-volume", o->daily, 0, MAX_VOLUME, &daily)))
		return rc;
	if (o->traffic && (rc = read_traffic(s, o->traffic)))
		return rc;
	if (o->days) {
		if ((rc = parse_count_opt("days", o->days, 1, MAX_DAYS, &v)))
			return rc;
		if ((o->traffic || s->rp) && v > s->ndays)
			return bad("--days: %" PRId64 " is more than the %d days of %s", v,
			           s->ndays, o->traffic ? o->traffic : o->from_store);
		s->ndays = (int)v;
	} else if (!o->traffic && !s->rp) {
		s->ndays = conf->core.schedule.ndays;
	}
	if (daily >= 0) {
		s->offered = calloc((size_t)s->ndays, sizeof(*s->offered));
		if (!s->offered)
			return bad("out of memory");
		for (int d = 0; d < s->ndays; d++)
			s->offered[d] = daily;
	}
	s->bounce = calloc((size_t)s->ndays, sizeof(double));
	s->complaint = calloc((size_t)s->ndays, sizeof(double));
	s->bounce_thr = calloc((size_t)s->ndays, sizeof(uint64_t));
	s->complaint_thr = calloc((size_t)s->ndays, sizeof(uint64_t));
	s->days = calloc((size_t)s->ndays, sizeof(*s->days));
	if (!s->bounce || !s->complaint || !s->bounce_thr || !s->complaint_thr || !s->days)
		return bad("out of memory");
	if ((rc = parse_rates("bounce-rate", DEFAULT_BOUNCE, s->ndays, s->bounce)) ||
	    (o->bounce && (rc = parse_rates("bounce-rate", o->bounce, s->ndays, s->bounce))) ||
	    (rc = parse_rates("complaint-rate", DEFAULT_COMPLAINT, s->ndays, s->complaint)) ||
	    (o->complaint &&
	     (rc = parse_rates("complaint-rate", o->complaint, s->ndays, s->complaint))))
		return rc;
	for (int d = 0; d < s->ndays; d++) {
		s->bounce_thr[d] = (uint64_t)llround(s->bounce[d] * (double)ONE53);
		s->complaint_thr[d] = (uint64_t)llround(s->complaint[d] * (double)ONE53);
	}
	if (o->mx_map && (rc = load_mx_map(s, o->mx_map)))
		return rc;
	if ((rc = parse_mix(s, o->mix ? o->mix : DEFAULT_MIX, !o->mix)))
		return rc;
	if (o->deferral && (rc = parse_deferrals(s, o->deferral)))
		return rc;
	if (o->engaged) {
		double f;
		if (wu_parse_percent(o->engaged, &f, NULL, 0) < 0 || f < 0 || f > 1)
			return bad(
			    "--engaged: expected a share from 0%% to 100%%, such as 30%%, got "
			    "'%s'",
			    o->engaged);
		s->eng_thr = (uint64_t)llround(f * (double)ONE53);
		s->eng_on = 1;
	}
	/* Whose answer a new-route send gets, as in the daemon's dispatcher:
	 * an SMTP route's reply speaks for the ISP, SendGrid's API does not. */
	if (!o->profile || strcmp(o->profile, "even") == 0)
		s->profile = PROF_EVEN;
	else if (strcmp(o->profile, "business") == 0)
		s->profile = PROF_BUSINESS;
	else if (strncmp(o->profile, "blast@", 6) == 0) {
		int h, m;
		char end;

		if (sscanf(o->profile + 6, "%2d:%2d%c", &h, &m, &end) != 2 || h < 0 || h > 23 ||
		    m < 0 || m > 59 || strlen(o->profile + 6) != 5)
			return bad("--profile: blast@HH:MM needs a local time such as blast@09:00, "
			           "got '%s'",
			           o->profile);
		s->profile = PROF_BLAST;
		s->blast_min = h * 60 + m;
	} else
		return bad("--profile: expected even, business or blast@HH:MM, got '%s'",
		           o->profile);
	if (s->hourly && o->profile)
		return bad("--profile: the traffic file gives the hours already (its hour column)");
	if (!o->outcomes)
		s->random_outcomes = o->seeds != NULL; /* many seeds of even outcomes say little */
	else if (strcmp(o->outcomes, "even") == 0)
		s->random_outcomes = 0;
	else if (strcmp(o->outcomes, "random") == 0)
		s->random_outcomes = 1;
	else
		return bad("--outcomes: expected even or random, got '%s'", o->outcomes);
	v = 1;
	if (o->seed && (rc = parse_count_opt("seed", o->seed, 0, INT64_MAX, &v)))
		return rc;
	s->seed = (uint64_t)v;
	return 0;
}

/* Empties the loop for another run: no engine, no backlog, no events. */
static void sim_reset(struct sim *s)
{
	wu_engine_free(s->e);
	s->e = NULL;
	memset(s->backlog, 0, sizeof(s->backlog));
	memset(s->eng_backlog, 0, sizeof(s->eng_backlog));
	s->eng_acc = 0;
	memset(s->wake, 0, sizeof(s->wake));
	memset(s->d_acc, 0, sizeof(s->d_acc));
	s->waiting = 0;
	s->nevents = 0;
}

/* Frees what setup_sim() allocated. */
static void sim_free(struct sim *s)
{
	wu_engine_free(s->e);
	wu_mxcache_free(s->mx);
	sim_replay_free(s->rp);
	free(s->offered);
	free(s->hourly);
	free(s->bounce);
	free(s->complaint);
	free(s->bounce_thr);
	free(s->complaint_thr);
	free(s->days);
	free(s->events);
}

/* Seconds on the monotonic clock, for the speed line only. */
static double seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int wu_simulate_main(int argc, char **argv)
{
	struct options o;
	struct wu_conf conf;
	struct sim s;
	enum format fmt = FMT_TABLE;
	struct wu_day day1;
	struct oc_day *oc = NULL;
	char err[WU_ERR_MAX];
	double t0, t1;
	int64_t runs = 1;
	uint64_t first;
	int rc;

	memset(&conf, 0, sizeof(conf));
	memset(&s, 0, sizeof(s));
	if ((rc = parse_args(&o, argc, argv)))
		return rc;
	if (o.help) {
		wu_simulate_usage(stdout);
		return 0;
	}
	if (o.format) {
		if (strcmp(o.format, "table") == 0)
			fmt = FMT_TABLE;
		else if (strcmp(o.format, "csv") == 0)
			fmt = FMT_CSV;
		else if (strcmp(o.format, "json") == 0)
			fmt = FMT_JSON;
		else
			return bad("--format: expected table, csv or json, got '%s'", o.format);
	}
	if (o.seeds && o.svg)
		return bad("--svg draws one run; give --seed, not --seeds");
	if (o.seeds && (rc = parse_count_opt("seeds", o.seeds, 1, 1000000, &runs)))
		return rc;
	if ((rc = setup_conf(&conf, &o)))
		goto out;
	if (o.from_store) {
		char rerr[WU_ERR_MAX + 4096];

		if ((rc = replay_excludes(&o)))
			goto out;
		if (sim_replay_load(&s.rp, o.from_store, &conf.core.calendar, &conf.core.isps, rerr,
		                    sizeof(rerr)) < 0) {
			rc = bad("--from-store: %s", rerr);
			goto out;
		}
		if (!o.start) /* day 1 is the store's first day */
			conf.core.calendar.start = sim_replay_first_date(s.rp);
	}
	if ((rc = setup_sim(&s, &o, &conf)))
		goto out;
	if (o.seeds && !(oc = calloc((size_t)s.ndays, sizeof(*oc)))) {
		rc = bad("out of memory"), rc = 1;
		goto out;
	}

	wu_calendar_date(&conf.core.calendar, conf.core.calendar.start, &day1);
	first = s.seed;
	t0 = seconds();
	for (int64_t k = 0; k < runs; k++, s.seed++) {
		sim_reset(&s);
		if (wu_engine_create(&s.e, &conf.core, day1.start, err, sizeof(err)) < 0) {
			rc = bad("%s", err);
			goto out;
		}
		if (run(&s, &conf.core.calendar) < 0) {
			rc = bad("out of memory"), rc = 1;
			goto out;
		}
		if (oc)
			oc_tally(&s, oc);
	}
	t1 = seconds();

	if (oc) {
		if (output_oc(&s, oc, runs, first, fmt) < 0) {
			rc = bad("out of memory"), rc = 1;
			goto out;
		}
	} else if (fmt == FMT_CSV)
		output_csv(&s);
	else if (fmt == FMT_JSON && output_json(&s) < 0) {
		rc = bad("out of memory"), rc = 1;
		goto out;
	} else if (fmt == FMT_TABLE)
		output_table(&s);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		rc = bad("writing the output failed"), rc = 1;
		goto out;
	}
	if (o.svg && (rc = output_svg(&s, o.svg, o.schedule ? o.schedule : conf.schedule_path,
	                              &conf.core.calendar, (enum wu_svg_scale)o.svg_scale)))
		goto out;
	if (!o.quiet)
		fprintf(stderr,
		        "simulated %d days%s, %" PRId64
		        " messages routed in %.3f s (%.0f msgs/s)\n",
		        s.ndays, runs > 1 ? " per seed" : "", s.routed, t1 - t0,
		        t1 > t0 ? (double)s.routed / (t1 - t0) : 0.0);
	rc = 0;
out:
	free(oc);
	sim_free(&s);
	wu_conf_free(&conf);
	return rc;
}
