/*
 * profile.c -- arrivals by hour of the local day, for the last few dates.
 */
#include "profile.h"

#include <string.h>

void wu_profile_add(struct wu_profile *p, int date, int hour, int64_t n)
{
	int slot = -1, oldest = 0;

	if (hour < 0)
		hour = 0;
	if (hour >= WU_PROFILE_HOURS)
		hour = WU_PROFILE_HOURS - 1;
	if ((unsigned)p->last < WU_PROFILE_DAYS && p->date[p->last] == date && date) {
		p->n[p->last][hour] += n;
		return;
	}
	for (int i = 0; i < WU_PROFILE_DAYS; i++) {
		if (p->date[i] == date) {
			slot = i;
			break;
		}
		if (p->date[i] < p->date[oldest])
			oldest = i;
	}
	if (slot < 0) {
		if (p->date[oldest] > date)
			return; /* older than all the kept days */
		slot = oldest;
		p->date[slot] = date;
		memset(p->n[slot], 0, sizeof(p->n[slot]));
	}
	p->n[slot][hour] += n;
	p->last = slot;
}

int64_t wu_profile_recent(const struct wu_profile *p, int date, int64_t out[WU_PROFILE_HOURS])
{
	int64_t total = 0;

	memset(out, 0, sizeof(int64_t) * WU_PROFILE_HOURS);
	for (int i = 0; i < WU_PROFILE_DAYS; i++) {
		if (p->date[i] == 0 || p->date[i] >= date || p->date[i] < date - WU_PROFILE_DAYS)
			continue;
		for (int h = 0; h < WU_PROFILE_HOURS; h++) {
			out[h] += p->n[i][h];
			total += p->n[i][h];
		}
	}
	return total;
}
