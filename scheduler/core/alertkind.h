/*
 * alertkind.h -- what each alert is: the firing kind it belongs to (its
 * dedup group: a resolution closes the firing of its group), its severity,
 * and whether it fires or resolves.  The daemon's alert bodies and the
 * repeat window (repeat.h) both go by it.
 */
#ifndef WU_ALERTKIND_H
#define WU_ALERTKIND_H

struct wu_alert_kind {
	const char *kind, *group, *severity; /* severity: info, warning or critical */
	unsigned state;                      /* WU_REPEAT_FIRING or WU_REPEAT_RESOLVED */
};

/* The kind's entry, or NULL for a kind not listed (which fires, as a
 * warning, in a group of its own). */
const struct wu_alert_kind *wu_alert_kind_find(const char *kind);

/* The severity of an alert of kind: the table's, but a route the provider
 * itself refused (its credentials or address: nothing goes until someone
 * fixes them) pauses as critical. */
const char *wu_alert_severity(const char *kind, int provider_refused);

#endif
