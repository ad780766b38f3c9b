/*
 * alertkind.c -- the table of alert kinds.
 */
#include "alertkind.h"

#include <string.h>

#include "repeat.h"

static const struct wu_alert_kind kinds[] = {
    {"gate_warn", "gate_warn", "warning", WU_REPEAT_FIRING},
    {"gate_halt", "gate_halt", "critical", WU_REPEAT_FIRING},
    {"paused", "paused", "warning", WU_REPEAT_FIRING},
    {"resumed", "paused", "info", WU_REPEAT_RESOLVED},
    {"isp_cut", "isp_cut", "warning", WU_REPEAT_FIRING},
    {"isp_recovered", "isp_cut", "info", WU_REPEAT_RESOLVED},
    {"permfail_rate", "permfail_rate", "critical", WU_REPEAT_FIRING},
    {"permfail_ok", "permfail_rate", "info", WU_REPEAT_RESOLVED},
    {"backlog", "backlog", "warning", WU_REPEAT_FIRING},
    {"backlog_ok", "backlog", "info", WU_REPEAT_RESOLVED},
    {"template_wait", "template_wait", "warning", WU_REPEAT_FIRING},
    {"template_wait_ok", "template_wait", "info", WU_REPEAT_RESOLVED},
    {"disk_low", "disk_low", "critical", WU_REPEAT_FIRING},
    {"disk_ok", "disk_low", "info", WU_REPEAT_RESOLVED},
    {"disk_unknown", "disk_unknown", "warning", WU_REPEAT_FIRING},
    {"reload_refused", "reload_refused", "warning", WU_REPEAT_FIRING},
    {"step_back", "step_back", "warning", WU_REPEAT_FIRING},
    {"cluster_down", "cluster_down", "critical", WU_REPEAT_FIRING},
    {"cluster_up", "cluster_down", "info", WU_REPEAT_RESOLVED},
};

const struct wu_alert_kind *wu_alert_kind_find(const char *kind)
{
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (strcmp(kinds[i].kind, kind) == 0)
			return &kinds[i];
	return NULL;
}

const char *wu_alert_severity(const char *kind, int provider_refused)
{
	const struct wu_alert_kind *k = wu_alert_kind_find(kind);

	if (provider_refused && strcmp(kind, "paused") == 0)
		return "critical";
	return k ? k->severity : "warning";
}
