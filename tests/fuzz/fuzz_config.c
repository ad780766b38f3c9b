/*
 * fuzz_config.c -- the INI configuration loader (libinih and config.c).
 *
 * The input is written as warmupd.conf into a private directory that also
 * holds schedule.csv, so a config that names it gets past the schedule.
 * A config that loads must be consistent the way warmupd relies on it; a
 * refused one must say why, naming the file.
 */
#include "fuzz.h"

#include <unistd.h>

#include "config.h"

static char dir[64], path[128];

static void dir_once(void)
{
	static const char sched[] = "# fuzz\nday,cap\n1,63\n2,83\n3,73\n";
	char p[128];
	FILE *f;

	if (dir[0])
		return;
	snprintf(dir, sizeof(dir), "/tmp/wu-fuzz-config-XXXXXX");
	if (!mkdtemp(dir))
		abort();
	snprintf(p, sizeof(p), "%s/schedule.csv", dir);
	snprintf(path, sizeof(path), "%s/warmupd.conf", dir);
	if (!(f = fopen(p, "w")) || fwrite(sched, 1, sizeof(sched) - 1, f) != sizeof(sched) - 1 ||
	    fclose(f) != 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct wu_conf c;
	char err[1024] = "";
	FILE *f;

	dir_once();
	if (!(f = fopen(path, "w")) || fwrite(data, 1, size, f) != size || fclose(f) != 0)
		abort();
	memset(&c, 0, sizeof(c));
	if (wu_conf_load(&c, path, WU_CONF_NO_SECRETS, err, sizeof(err)) < 0) {
		fuzz_check(strstr(err, "warmupd.conf") || strstr(err, "schedule"),
		           "a refusal that names no file: '%s'", err);
		return 0;
	}
	/* Without secrets (the simulator's load) a schedule is optional. */
	fuzz_check(c.core.schedule.ndays >= 0, "%d schedule days", c.core.schedule.ndays);
	fuzz_check(c.core.calendar.open_min >= 0 &&
	               c.core.calendar.open_min < c.core.calendar.close_min &&
	               c.core.calendar.close_min <= 1440,
	           "window %d-%d", c.core.calendar.open_min, c.core.calendar.close_min);
	fuzz_check(c.core.isps.n >= 1 && c.core.isps.n <= WU_ISP_MAX, "%d ISPs", c.core.isps.n);
	fuzz_check(c.core.min_fill >= 0 && c.core.min_fill <= 1, "min_fill %g", c.core.min_fill);
	fuzz_check(c.core.gate.bounce_warn <= c.core.gate.bounce_halt + 1e-12 &&
	               c.core.gate.complaint_warn <= c.core.gate.complaint_halt + 1e-12,
	           "a warning above its halt");
	wu_conf_free(&c);
	return 0;
}
