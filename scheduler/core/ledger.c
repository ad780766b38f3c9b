/*
 * ledger.c -- the single-node ledger, and the calls of any ledger.
 */
#include "ledger.h"

static int64_t local_take(struct wu_ledger *l, int date, int64_t cap, int64_t used, int64_t n,
                          const struct wu_ledger_isp *isp, enum wu_ledger_short *why)
{
	int64_t left;

	(void)l;
	(void)date;
	(void)isp; /* the engine's throttle and share count already judged it */
	if (cap == WU_UNLIMITED)
		return n;
	left = cap > used ? cap - used : 0;
	if (left >= n)
		return n;
	*why = WU_LEDGER_DONE;
	return left;
}

static void local_give_back(struct wu_ledger *l, int date, int64_t n, int isp)
{
	/* The engine's own count is the whole ledger: nothing kept here. */
	(void)l;
	(void)date;
	(void)n;
	(void)isp;
}

static const struct wu_ledger_ops local_ops = {local_take, local_give_back};

struct wu_ledger wu_ledger_local = {&local_ops, 0};

int64_t wu_ledger_take(struct wu_ledger *l, int date, int64_t cap, int64_t used, int64_t n,
                       const struct wu_ledger_isp *isp, enum wu_ledger_short *why)
{
	enum wu_ledger_short dummy = WU_LEDGER_DONE;

	return l->ops->take(l, date, cap, used, n, isp, why ? why : &dummy);
}

void wu_ledger_give_back(struct wu_ledger *l, int date, int64_t n, int isp)
{
	if (n > 0)
		l->ops->give_back(l, date, n, isp);
}
