/*
 * repeat.c -- a key's first firing and resolution of a window at once,
 * the rest as one summary with a count.
 */
#include "repeat.h"

#include <stdio.h>
#include <string.h>

void wu_repeat_init(struct wu_repeat *r, wu_time_t window)
{
	memset(r, 0, sizeof(*r));
	r->window = window > 0 ? window : 0;
}

/* The slot of key, or -1. */
static int find(const struct wu_repeat *r, const char *key)
{
	for (int i = 0; i < WU_REPEAT_SLOTS; i++)
		if (r->slot[i].key[0] && strcmp(r->slot[i].key, key) == 0)
			return i;
	return -1;
}

int wu_repeat_hear(struct wu_repeat *r, const char *key, unsigned state, wu_time_t now)
{
	struct wu_repeat_slot *s;
	int i;

	if (r->window <= 0 || !key || !key[0])
		return -1;
	if (state != WU_REPEAT_RESOLVED)
		state = WU_REPEAT_FIRING;
	i = find(r, key);
	if (i >= 0) {
		s = &r->slot[i];
		/* Held alerts wait for their summary (wu_repeat_due), even past
		 * the window's end: this one joins them. */
		if (s->held > 0 || (now < s->start + r->window && (s->sent & state))) {
			s->held++;
			return i;
		}
		if (now >= s->start + r->window) {
			/* Quiet for a whole window: start afresh. */
			s->start = now;
			s->sent = 0;
		}
		s->sent |= state;
		return -1;
	}
	/* A free slot, or one that has been quiet for a whole window. */
	for (i = 0; i < WU_REPEAT_SLOTS; i++) {
		s = &r->slot[i];
		if (!s->key[0] || (s->held == 0 && now >= s->start + r->window))
			break;
	}
	if (i == WU_REPEAT_SLOTS)
		return -1; /* no room: said at once rather than lost */
	s = &r->slot[i];
	snprintf(s->key, sizeof(s->key), "%s", key);
	s->start = now;
	s->held = 0;
	s->sent = state;
	return -1;
}

int wu_repeat_due(struct wu_repeat *r, wu_time_t now, int64_t *held)
{
	int best = -1;

	for (int i = 0; i < WU_REPEAT_SLOTS; i++) {
		struct wu_repeat_slot *s = &r->slot[i];

		if (!s->key[0] || now < s->start + r->window)
			continue;
		if (s->held == 0) {
			s->key[0] = '\0';
			continue;
		}
		/* The oldest window first, so summaries come in order. */
		if (best < 0 || s->start < r->slot[best].start)
			best = i;
	}
	if (best < 0)
		return -1;
	*held = r->slot[best].held;
	r->slot[best].held = 0;
	r->slot[best].start = now;
	/* A storm that goes on: everything of the next window is held. */
	r->slot[best].sent = WU_REPEAT_FIRING | WU_REPEAT_RESOLVED;
	return best;
}

wu_time_t wu_repeat_next(const struct wu_repeat *r)
{
	wu_time_t t = WU_TIME_NEVER;

	for (int i = 0; i < WU_REPEAT_SLOTS; i++) {
		const struct wu_repeat_slot *s = &r->slot[i];

		if (s->key[0] && s->held > 0 && s->start + r->window < t)
			t = s->start + r->window;
	}
	return t;
}
