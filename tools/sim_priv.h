/*
 * sim_priv.h -- the simulator's state, shared by its files: simulate.c
 * (the options, the run on the virtual clock, main), sim_input.c (the
 * traffic, mix, rates and MX map it is given) and sim_output.c (the
 * table, CSV, JSON, the operating characteristics and the chart).
 */
#ifndef WU_SIM_PRIV_H
#define WU_SIM_PRIV_H

#include <stdint.h>
#include <stdio.h>

#include "scheduler/core/engine.h"
#include "scheduler/core/mxcache.h"
#include "scheduler/core/rng.h"
#include "scheduler/svg.h"

struct sim_replay;
struct wu_conf;

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
	/* arrivals told to the engine a quarter hour at a time (a local hour
	 * is made of whole quarters in every zone): arr_n since arr_at */
	wu_time_t arr_at, arr_end;
	int64_t arr_n;
	int64_t calls; /* route() calls, WAIT answers included */
	/* results */
	struct day *days;
	struct event *events;
	int nevents, cap_events;
};

/* Prints "warmup simulate: message" on stderr; returns EXIT_BAD. */
int sim_bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* sim_input.c */
/* Parses a count of at most max for an option. */
int sim_parse_count_opt(const char *opt, const char *s, int64_t min, int64_t max, int64_t *out);

/* A rate with per-day overrides: "2%" or "2%,day6=8%,day7=3%".  Fills
 * rates[0..ndays-1]. */
int sim_parse_rates(const char *opt, const char *s, int ndays, double *rates);

/* Parses "GROUP=PERCENT,..." given to --opt into fractions per ISP group
 * (out[], and their sum in *total).  Each group once; with is_default, a
 * group the config does not have counts as "other". */
int sim_parse_isp_percents(const struct sim *s, const char *opt, const char *example,
                           const char *value, int is_default, double *out, double *total);

/* Parses --deferral-rate "google=5%,yahoo=2%" into per-ISP thresholds. */
int sim_parse_deferrals(struct sim *s, const char *value);

/* Parses "google=45%,yahoo=20%" against the ISP table; the rest of 100%
 * goes to "other". */
int sim_parse_mix(struct sim *s, const char *opt_value, int is_default);

/* --mx-map FILE: "domain,mx" lines (a "domain,mx" header, blank lines and
 * #-comments skipped) put into the MX cache as answers that never expire,
 * each grouped by wu_isp_classify_mx() as the daemon groups DNS's. */
int sim_load_mx_map(struct sim *s, const char *path);

/* Reads a traffic file: CSV with a header naming "day" and "offered", days
 * 1, 2, 3...; with an "hour" column too, one row per day and local hour
 * (0-23, each once; hours not given offer nothing).  Sets s->offered (and
 * s->hourly) and s->ndays.  Errors are FILE:LINE. */
int sim_read_traffic(struct sim *s, const char *path);

/* The configuration from --config and the policy options over it. */
int sim_setup_conf(struct wu_conf *conf, const struct options *o);

/* Traffic, mix and outcome model from the options.  Returns 0 or
 * EXIT_BAD (the message printed). */
int sim_setup_sim(struct sim *s, const struct options *o, const struct wu_conf *conf);

/* --from-store gives the traffic and the outcomes: the options that would
 * give them too are refused.  Returns 0 or EXIT_BAD after a message. */
int sim_replay_excludes(const struct options *o);

/* sim_output.c */
/* The human table, a totals line and the engine's events. */
void sim_output_table(const struct sim *s);

/* CSV with the fixed header the tests and spreadsheets rely on. */
void sim_output_csv(const struct sim *s);

/* The JSON document: days, totals, events.  Returns 0 or -1 (no memory). */
int sim_output_json(const struct sim *s);

/* Adds the run just ended to the per-day tallies of --seeds. */
void sim_oc_tally(const struct sim *s, struct oc_day *oc);

/* The --seeds report: per day, the runs that halted, warned, first halted
 * and had halted by then, and the mean new-route volume.  Returns 0 or -1
 * (no memory). */
int sim_output_oc(const struct sim *s, const struct oc_day *oc, int64_t runs, uint64_t first,
                  enum format fmt);

/* Writes the chart.  Returns 0, or 1 after a message. */
int sim_output_svg(const struct sim *s, const char *path, const char *schedule,
                   const struct wu_calendar *cal, enum wu_svg_scale scale);

#endif
