/*
 * days.c -- the dates an engine has been on: a date's cap is granted once.
 */
#include "days.h"

void wu_days_keep(struct wu_days *h, const struct wu_day_stats *t)
{
	int slot = -1;

	for (int i = 0; i < h->n; i++)
		if (h->d[i].date == t->date)
			slot = i;
	if (slot < 0 && h->n < WU_DAYS_KEPT)
		slot = h->n++;
	if (slot < 0) {
		slot = 0;
		for (int i = 1; i < h->n; i++)
			if (h->d[i].date < h->d[slot].date)
				slot = i;
	}
	h->d[slot] = *t;
	if (t->date > h->latest)
		h->latest = t->date;
}

const struct wu_day_stats *wu_days_find(const struct wu_days *h, int date)
{
	for (int i = 0; i < h->n; i++)
		if (h->d[i].date == date)
			return &h->d[i];
	return NULL;
}
