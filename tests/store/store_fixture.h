/*
 * store_fixture.h -- the cmocka fixture the store tests share: a store in a
 * fresh temporary directory, closed and removed with its files after each
 * test.
 */
#ifndef WU_TEST_STORE_FIXTURE_H
#define WU_TEST_STORE_FIXTURE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "scheduler/store.h"

struct fixture {
	char dir[64];
	char path[128];
	struct store *s;
};

/* Opens the store at f->path into f->s, or fails the test. */
static inline void fixture_open(struct fixture *f)
{
	char err[256];

	if (store_open(&f->s, f->path, err, sizeof err) < 0)
		fail_msg("store_open: %s", err);
}

/* Makes a fresh directory from tmpl (ending in XXXXXX, as mkdtemp wants)
 * and opens a store in it: the body of a cmocka setup. */
static inline int fixture_setup(void **state, const char *tmpl)
{
	struct fixture *f = calloc(1, sizeof *f);

	assert_non_null(f);
	snprintf(f->dir, sizeof f->dir, "%s", tmpl);
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof f->path, "%s/queue.db", f->dir);
	fixture_open(f);
	*state = f;
	return 0;
}

/* cmocka teardown: closes the store and removes its files. */
static inline int fixture_teardown(void **state)
{
	struct fixture *f = *state;
	const char *suffix[] = {"", "-wal", "-shm", "-journal", ".lock"};
	char p[160];

	store_close(f->s);
	for (size_t i = 0; i < sizeof suffix / sizeof suffix[0]; i++) {
		snprintf(p, sizeof p, "%s%s", f->path, suffix[i]);
		unlink(p);
	}
	rmdir(f->dir);
	free(f);
	return 0;
}

#endif
