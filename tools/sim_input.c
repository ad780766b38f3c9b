/*
 * sim_input.c -- what `warmup simulate` is given besides the schedule:
 * volumes and rates per day, the ISP mix, the deferral rates, the MX map
 * and the traffic file.  Each error is one line naming the option, or the
 * file, line and column (EXIT_BAD).
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "scheduler/config.h"
#include "scheduler/core/parse.h"
#include "scheduler/zone.h"
#include "sender/strbuf.h"
#include "sim_priv.h"
#include "sim_replay.h"

/* Parses a count of at most max for an option. */
int sim_parse_count_opt(const char *opt, const char *s, int64_t min, int64_t max, int64_t *out)
{
	int64_t v;

	if (wu_parse_count(s, &v, NULL, 0) < 0 || v < min || v > max)
		return sim_bad("--%s: expected a whole number from %" PRId64 " to %" PRId64
		               ", got '%s'",
		               opt, min, max, s);
	*out = v;
	return 0;
}

/* A rate with per-day overrides: "2%" or "2%,day6=8%,day7=3%".  Fills
 * rates[0..ndays-1]. */
int sim_parse_rates(const char *opt, const char *s, int ndays, double *rates)
{
	char buf[1024], err[WU_ERR_MAX], *save = NULL, *item;
	int have_default = 0;

	if (strlen(s) >= sizeof(buf))
		return sim_bad("--%s: value too long", opt);
	strcpy(buf, s);
	/* The default first, wherever it is written, then the overrides. */
	for (item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		double r;
		item = wu_trim(item);
		if (strchr(item, '='))
			continue;
		if (have_default++)
			return sim_bad("--%s: two default rates in '%s'", opt, s);
		if (wu_parse_percent(item, &r, err, sizeof(err)) < 0)
			return sim_bad("--%s: %s", opt, err);
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
			return sim_bad("--%s: expected dayN=RATE such as day6=8%%, got '%s='", opt,
			               item);
		errno = 0;
		day = strtol(item + 3, &end, 10);
		if (errno || *wu_trim(end) || day < 1)
			return sim_bad("--%s: expected dayN=RATE such as day6=8%%, got '%s='", opt,
			               item);
		if (day > ndays)
			return sim_bad("--%s: day %ld is past the last simulated day (%d)", opt,
			               day, ndays);
		if (wu_parse_percent(wu_trim(eq + 1), &r, err, sizeof(err)) < 0)
			return sim_bad("--%s: day%ld: %s", opt, day, err);
		rates[day - 1] = r;
	}
	return 0;
}

/* Parses "GROUP=PERCENT,..." given to --opt into fractions per ISP group
 * (out[], and their sum in *total).  Each group once; with is_default, a
 * group the config does not have counts as "other". */
int sim_parse_isp_percents(const struct sim *s, const char *opt, const char *example,
                           const char *value, int is_default, double *out, double *total)
{
	int given[WU_ISP_MAX] = {0};
	char buf[1024], err[WU_ERR_MAX], *save = NULL, *item;

	*total = 0;
	if (strlen(value) >= sizeof(buf))
		return sim_bad("--%s: value too long", opt);
	strcpy(buf, value);
	for (item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(item, '=');
		double r;
		int isp;

		if (!eq)
			return sim_bad("--%s: expected GROUP=%s, got '%s'", opt, example,
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
			return sim_bad("--%s: no ISP group '%s' (groups: %s)", opt, item, names);
		}
		if (given[isp]++ && !is_default)
			return sim_bad("--%s: %s given twice", opt, item);
		if (wu_parse_percent(wu_trim(eq + 1), &r, err, sizeof(err)) < 0)
			return sim_bad("--%s: %s: %s", opt, item, err);
		out[isp] += r;
		*total += r;
	}
	return 0;
}

/* Parses --deferral-rate "google=5%,yahoo=2%" into per-ISP thresholds. */
int sim_parse_deferrals(struct sim *s, const char *value)
{
	double rate[WU_ISP_MAX] = {0}, total;
	int rc;

	if ((rc = sim_parse_isp_percents(s, "deferral-rate", "RATE such as google=5%", value, 0,
	                                 rate, &total)))
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
int sim_parse_mix(struct sim *s, const char *opt_value, int is_default)
{
	double share[WU_ISP_MAX] = {0}, dshare[MIX_MAX - WU_ISP_MAX] = {0}, total = 0, cum = 0;
	char groups[1024] = "", buf[1024], err[WU_ERR_MAX], *save = NULL, *item;
	int rc, ndom = 0;

	/* Entries with a dot are domains; the rest are groups. */
	if (strlen(opt_value) >= sizeof(buf))
		return sim_bad("--mix: value too long");
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
			return sim_bad("--mix: at most %d domains", MIX_MAX - WU_ISP_MAX);
		if (strlen(name) >= sizeof(s->mix_names[0]))
			return sim_bad("--mix: domain too long: '%.40s...'", name);
		for (int i = 0; i < ndom; i++)
			if (strcasecmp(s->mix_names[i], name) == 0)
				return sim_bad("--mix: %s given twice", name);
		strcpy(s->mix_names[ndom], name);
		if (wu_parse_percent(wu_trim(eq + 1), &dshare[ndom], err, sizeof(err)) < 0)
			return sim_bad("--mix: %s: %s", name, err);
		total += dshare[ndom++];
	}
	/* Without --mx-map too: the cache keeps each domain's verdict by name. */
	if (ndom && !s->mx && wu_mxcache_create(&s->mx, MIX_MAX) < 0)
		return sim_bad("out of memory");
	if (*groups && (rc = sim_parse_isp_percents(s, "mix", "SHARE such as google=45%", groups,
	                                            is_default, share, &cum)))
		return rc;
	total += cum;
	cum = 0;
	if (total > 1 + 1e-9)
		return sim_bad("--mix: shares add up to %.2f%%, more than 100%%", total * 100);
	share[WU_ISP_OTHER] += 1 - total > 0 ? 1 - total : 0;
	s->nmix = 0;
	for (int i = 0; i < s->isps->n; i++)
		mix_add(s, i, NULL, share[i], &cum);
	for (int i = 0; i < ndom; i++)
		mix_add(s, WU_ISP_OTHER, s->mix_names[i], dshare[i], &cum);
	if (s->nmix == 0)
		return sim_bad("--mix: every share is 0%%");
	s->mix_thr[s->nmix - 1] = UINT64_MAX; /* rounding must not leave a gap at the top */
	return 0;
}

static char *slurp(const char *path, size_t *len);

/* --mx-map FILE: "domain,mx" lines (a "domain,mx" header, blank lines and
 * #-comments skipped) put into the MX cache as answers that never expire,
 * each grouped by wu_isp_classify_mx() as the daemon groups DNS's. */
int sim_load_mx_map(struct sim *s, const char *path)
{
	size_t len;
	char *text = slurp(path, &len), *line, *save = NULL;
	int lineno = 0, rc = 0;

	if (!text)
		return sim_bad("--mx-map: %s: %s", path, strerror(errno));
	if (wu_mxcache_create(&s->mx, 1000000) < 0) {
		free(text);
		return sim_bad("out of memory");
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
			rc = sim_bad(
			    "%s:%d: expected domain,mx such as acme.co.jp,aspmx.l.google.com", path,
			    lineno);
			break;
		}
		*comma = '\0';
		dom = wu_trim(dom);
		host = wu_trim(comma + 1);
		if (!*dom || !*host || strchr(dom, ' ') || strchr(host, ' ') ||
		    wu_mxcache_put(s->mx, dom, wu_isp_classify_mx(s->isps, host), INT64_MAX) < 0) {
			rc = sim_bad(
			    "%s:%d: expected domain,mx such as acme.co.jp,aspmx.l.google.com", path,
			    lineno);
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
	struct strbuf b = {0};
	char *text;

	if (!f)
		return NULL;
	for (;;) {
		size_t got;
		if (strbuf_reserve(&b, 8192) < 0) {
			strbuf_free(&b);
			fclose(f);
			errno = ENOMEM;
			return NULL;
		}
		got = fread(b.p + b.len, 1, b.cap - b.len - 1, f);
		b.len += got;
		b.p[b.len] = '\0'; /* the buffer's text stays terminated */
		if (got == 0)
			break;
	}
	if (ferror(f)) {
		strbuf_free(&b);
		fclose(f);
		errno = EIO;
		return NULL;
	}
	fclose(f);
	*len = b.len;
	if (!(text = strbuf_take(&b)))
		errno = ENOMEM;
	return text;
}

/* Reads a traffic file: CSV with a header naming "day" and "offered", days
 * 1, 2, 3...; with an "hour" column too, one row per day and local hour
 * (0-23, each once; hours not given offer nothing).  Sets s->offered (and
 * s->hourly) and s->ndays.  Errors are FILE:LINE. */
int sim_read_traffic(struct sim *s, const char *path)
{
	size_t len;
	char *text = slurp(path, &len), *p, *next;
	int lineno = 0, col_day = -1, col_off = -1, col_hour = -1, ncols = 0, rc = EXIT_BAD;

	if (!text)
		return sim_bad("--traffic: %s: %s", path, strerror(errno));
	s->offered = calloc(MAX_DAYS, sizeof(*s->offered));
	if (!s->offered) {
		free(text);
		return sim_bad("out of memory");
	}
	s->ndays = 0;
	if ((p = memchr(text, '\0', len))) {
		for (char *q = text; q <= p; q++)
			lineno += q == text || q[-1] == '\n';
		sim_bad("%s:%d: not a text file (a NUL byte)", path, lineno);
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
			sim_bad("%s:%d: too many columns", path, lineno);
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
				sim_bad(
				    "%s:%d: expected a header naming the columns day and offered, "
				    "got '%s'",
				    path, lineno, f[0]);
				col_day = -1;
				goto out;
			}
			ncols = nf;
			if (col_hour >= 0 &&
			    (s->hourly = calloc(MAX_DAYS, sizeof(*s->hourly))) == NULL) {
				sim_bad("out of memory");
				goto out;
			}
			continue;
		}
		if (nf != ncols) {
			sim_bad("%s:%d: expected %d fields like the header, got %d", path, lineno,
			        ncols, nf);
			goto out;
		}
		if (col_hour >= 0) {
			int64_t hour;

			/* Hour rows: the day goes on, or the next one begins. */
			if (wu_parse_count(f[col_day], &day, NULL, 0) < 0 ||
			    (day != s->ndays && day != s->ndays + 1) || day < 1) {
				sim_bad("%s:%d: day: expected %d or %d, got '%s'", path, lineno,
				        s->ndays ? s->ndays : 1, s->ndays + 1, f[col_day]);
				goto out;
			}
			if (wu_parse_count(f[col_hour], &hour, NULL, 0) < 0 || hour > 23) {
				sim_bad("%s:%d: hour: expected a local hour from 0 to 23, got '%s'",
				        path, lineno, f[col_hour]);
				goto out;
			}
			if (day == s->ndays + 1) {
				if (s->ndays >= MAX_DAYS) {
					sim_bad("%s:%d: more than %d days", path, lineno, MAX_DAYS);
					goto out;
				}
				s->ndays++;
				for (int h = 0; h < 24; h++)
					s->hourly[s->ndays - 1][h] = -1;
			}
			if (s->hourly[s->ndays - 1][hour] >= 0) {
				sim_bad("%s:%d: hour: day %" PRId64 " hour %" PRId64
				        " is given twice",
				        path, lineno, day, hour);
				goto out;
			}
			if (wu_parse_count(f[col_off], &v, NULL, 0) < 0 || v > MAX_VOLUME ||
			    s->offered[s->ndays - 1] + v > MAX_VOLUME) {
				sim_bad("%s:%d: offered: expected a whole number from 0 to %" PRId64
				        " a day, got '%s'",
				        path, lineno, MAX_VOLUME, f[col_off]);
				goto out;
			}
			s->hourly[s->ndays - 1][hour] = v;
			s->offered[s->ndays - 1] += v;
			continue;
		}
		if (wu_parse_count(f[col_day], &day, NULL, 0) < 0 || day != s->ndays + 1) {
			sim_bad("%s:%d: day: expected %d, got '%s'", path, lineno, s->ndays + 1,
			        f[col_day]);
			goto out;
		}
		if (s->ndays >= MAX_DAYS) {
			sim_bad("%s:%d: more than %d days", path, lineno, MAX_DAYS);
			goto out;
		}
		if (wu_parse_count(f[col_off], &v, NULL, 0) < 0 || v > MAX_VOLUME) {
			sim_bad("%s:%d: offered: expected a whole number from 0 to %" PRId64
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
		sim_bad("%s:%d: no header (expected day,offered)", path, lineno ? lineno : 1);
	else if (s->ndays == 0)
		sim_bad("%s:%d: no days", path, lineno);
	else
		rc = 0;
out:
	free(text);
	return rc;
}

/*
 * The event loop.
 */

/* Checks that an IANA zone name names a file under /usr/share/zoneinfo. */
/* Fills in the configuration from the config file, the schedule and the
 * policy options.  Returns 0 or EXIT_BAD after a message. */
int sim_setup_conf(struct wu_conf *conf, const struct options *o)
{
	struct wu_core_conf *c = &conf->core;
	char err[WU_ERR_MAX * 2], tz[sizeof(c->calendar.tz)];
	int y, m, d;

	if (o->config ? wu_conf_load(conf, o->config, WU_CONF_NO_SECRETS, err, sizeof(err))
	              : wu_conf_defaults(conf)) {
		if (o->config)
			return sim_bad("%s", err);
		return sim_bad("out of memory");
	}
	if (o->schedule && wu_conf_read_schedule(conf, o->schedule, err, sizeof(err)) < 0)
		return sim_bad("%s", err);
	if (c->schedule.ndays <= 0)
		return sim_bad("no schedule: give --schedule FILE (or schedule = in the config)");
	if (o->overflow && wu_overflow_parse(o->overflow, &c->overflow, err, sizeof(err)) < 0)
		return sim_bad("--overflow: %s", err);
	if (o->burst && wu_burst_parse(o->burst, &c->burst, err, sizeof(err)) < 0)
		return sim_bad("--burst: %s", err);
	if (o->pace && wu_pace_parse(o->pace, &c->pace, err, sizeof(err)) < 0)
		return sim_bad("--pace: %s", err);
	if (o->after && wu_after_parse(o->after, &c->schedule.after, err, sizeof(err)) < 0)
		return sim_bad("--after: %s", err);
	if (o->advance && wu_advance_parse(o->advance, &c->advance, err, sizeof(err)) < 0)
		return sim_bad("--advance: %s", err);

	snprintf(tz, sizeof(tz), "%s",
	         o->tz               ? o->tz
	         : c->calendar.tz[0] ? c->calendar.tz
	                             : DEFAULT_TZ);
	if (o->tz && strlen(o->tz) >= sizeof(tz))
		return sim_bad("--timezone: name too long: '%s'", o->tz);
	if (wu_zone_check(tz, err, sizeof(err)) < 0)
		return sim_bad("%s: %s", o->tz ? "--timezone" : o->config, err);
	if (o->start) {
		if (wu_parse_date(o->start, &y, &m, &d, err, sizeof(err)) < 0)
			return sim_bad("--start: %s", err);
	} else if (c->calendar.start != 0) {
		wu_civil_from_days(c->calendar.start, &y, &m, &d);
	} else {
		wu_parse_date(DEFAULT_DATE, &y, &m, &d, NULL, 0);
	}
	if (wu_calendar_init(&c->calendar, tz, y, m, d, c->calendar.open_min, c->calendar.close_min,
	                     err, sizeof(err)) < 0)
		return sim_bad("%s", err);
	if (wu_zone_apply(tz) < 0)
		return sim_bad("cannot set the time zone %s", tz);
	return 0;
}

/* --from-store gives the traffic and the outcomes: the options that would
 * give them too are refused.  Returns 0 or EXIT_BAD after a message. */
int sim_replay_excludes(const struct options *o)
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
		return sim_bad("--from-store gives the arrivals, ISPs and outcome rates: drop %s",
		               given);
	return 0;
}

/* Sets up traffic, mix and outcome model from the options.  Returns 0 or
 * EXIT_BAD after a message. */
int sim_setup_sim(struct sim *s, const struct options *o, const struct wu_conf *conf)
{
	int64_t v = 0, daily = -1;
	int rc;

	s->isps = &conf->core.isps;
	s->nisp = conf->core.isps.n;
	if (o->daily && o->traffic)
		return sim_bad("give --daily-volume or --traffic, not both");
	if (!o->daily && !o->traffic && !s->rp)
		return sim_bad(
		    "no traffic: give --daily-volume N, --traffic FILE or --from-store PATH");
	if (s->rp &&
	    !(s->offered = sim_replay_offered(s->rp, conf->core.calendar.start, &s->ndays))) {
		if (s->ndays < 0)
			return sim_bad("out of memory");
		return sim_bad("--start: %s has no mail on or after that day", o->from_store);
	}
	if (o->daily && (rc = sim_parse_count_opt("daily-volume", o->daily, 0, MAX_VOLUME, &daily)))
		return rc;
	if (o->traffic && (rc = sim_read_traffic(s, o->traffic)))
		return rc;
	if (o->days) {
		if ((rc = sim_parse_count_opt("days", o->days, 1, MAX_DAYS, &v)))
			return rc;
		if ((o->traffic || s->rp) && v > s->ndays)
			return sim_bad("--days: %" PRId64 " is more than the %d days of %s", v,
			               s->ndays, o->traffic ? o->traffic : o->from_store);
		s->ndays = (int)v;
	} else if (!o->traffic && !s->rp) {
		s->ndays = conf->core.schedule.ndays;
	}
	if (daily >= 0) {
		s->offered = calloc((size_t)s->ndays, sizeof(*s->offered));
		if (!s->offered)
			return sim_bad("out of memory");
		for (int d = 0; d < s->ndays; d++)
			s->offered[d] = daily;
	}
	s->bounce = calloc((size_t)s->ndays, sizeof(double));
	s->complaint = calloc((size_t)s->ndays, sizeof(double));
	s->bounce_thr = calloc((size_t)s->ndays, sizeof(uint64_t));
	s->complaint_thr = calloc((size_t)s->ndays, sizeof(uint64_t));
	s->days = calloc((size_t)s->ndays, sizeof(*s->days));
	if (!s->bounce || !s->complaint || !s->bounce_thr || !s->complaint_thr || !s->days)
		return sim_bad("out of memory");
	if ((rc = sim_parse_rates("bounce-rate", DEFAULT_BOUNCE, s->ndays, s->bounce)) ||
	    (o->bounce && (rc = sim_parse_rates("bounce-rate", o->bounce, s->ndays, s->bounce))) ||
	    (rc = sim_parse_rates("complaint-rate", DEFAULT_COMPLAINT, s->ndays, s->complaint)) ||
	    (o->complaint &&
	     (rc = sim_parse_rates("complaint-rate", o->complaint, s->ndays, s->complaint))))
		return rc;
	for (int d = 0; d < s->ndays; d++) {
		s->bounce_thr[d] = (uint64_t)llround(s->bounce[d] * (double)ONE53);
		s->complaint_thr[d] = (uint64_t)llround(s->complaint[d] * (double)ONE53);
	}
	if (o->mx_map && (rc = sim_load_mx_map(s, o->mx_map)))
		return rc;
	if ((rc = sim_parse_mix(s, o->mix ? o->mix : DEFAULT_MIX, !o->mix)))
		return rc;
	if (o->deferral && (rc = sim_parse_deferrals(s, o->deferral)))
		return rc;
	if (o->engaged) {
		double f;
		if (wu_parse_percent(o->engaged, &f, NULL, 0) < 0 || f < 0 || f > 1)
			return sim_bad(
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
			return sim_bad(
			    "--profile: blast@HH:MM needs a local time such as blast@09:00, "
			    "got '%s'",
			    o->profile);
		s->profile = PROF_BLAST;
		s->blast_min = h * 60 + m;
	} else
		return sim_bad("--profile: expected even, business or blast@HH:MM, got '%s'",
		               o->profile);
	if (s->hourly && o->profile)
		return sim_bad(
		    "--profile: the traffic file gives the hours already (its hour column)");
	if (!o->outcomes)
		s->random_outcomes = o->seeds != NULL; /* many seeds of even outcomes say little */
	else if (strcmp(o->outcomes, "even") == 0)
		s->random_outcomes = 0;
	else if (strcmp(o->outcomes, "random") == 0)
		s->random_outcomes = 1;
	else
		return sim_bad("--outcomes: expected even or random, got '%s'", o->outcomes);
	v = 1;
	if (o->seed && (rc = sim_parse_count_opt("seed", o->seed, 0, INT64_MAX, &v)))
		return rc;
	s->seed = (uint64_t)v;
	return 0;
}
