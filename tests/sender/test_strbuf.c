/*
 * test_strbuf.c -- the one growable buffer: appends of every kind across
 * the points where it grows, the NUL after the bytes, consuming from the
 * front, handing the text over, and a failed allocation that stays failed.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sender/strbuf.h"

static void test_appends_grow(void **state)
{
	struct strbuf b = {0};
	char want[5001];

	(void)state;
	/* 1000 pieces of 5 bytes cross every doubling from 64 to 8192. */
	for (int i = 0; i < 1000; i++) {
		assert_int_equal(strbuf_printf(&b, "%04d,", i), 0);
		snprintf(want + 5 * i, sizeof(want) - 5 * (size_t)i, "%04d,", i);
	}
	assert_int_equal(b.len, 5000);
	assert_true(b.cap > b.len);
	assert_memory_equal(b.p, want, 5000);
	assert_int_equal(b.p[b.len], '\0');
	assert_int_equal(strbuf_str(&b, "end"), 0);
	assert_int_equal(strbuf_add(&b, "\0x", 2), 0); /* bytes, a NUL among them */
	assert_int_equal(b.len, 5005);
	assert_memory_equal(b.p + 5000, "end\0x", 5);
	assert_int_equal(b.p[b.len], '\0');
	strbuf_free(&b);
	assert_null(b.p);
	assert_int_equal(b.len, 0);
}

/* A printf that fills the room exactly, and one a byte over. */
static void test_printf_at_the_edge(void **state)
{
	struct strbuf b = {0};
	char big[200];

	(void)state;
	assert_int_equal(strbuf_reserve(&b, 10), 0);
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	big[b.cap - 1] = '\0'; /* exactly the room there is, the NUL included */
	assert_int_equal(strbuf_printf(&b, "%s", big), 0);
	assert_int_equal(b.len, strlen(big));
	big[b.len] = 'a';
	big[b.len + 1] = '\0';
	assert_int_equal(strbuf_printf(&b, "%s", big), 0); /* must grow */
	assert_int_equal(b.len, 2 * strlen(big) - 1);
	assert_int_equal(b.p[b.len], '\0');
	assert_int_equal(b.p[b.len - 1], 'a');
	strbuf_free(&b);
}

static void test_consume_and_reset(void **state)
{
	struct strbuf b = {0};

	(void)state;
	strbuf_consume(&b, 3); /* on an empty buffer: nothing */
	assert_int_equal(b.len, 0);
	assert_int_equal(strbuf_str(&b, "HELO a\r\nMAIL"), 0);
	strbuf_consume(&b, 8);
	assert_string_equal(b.p, "MAIL");
	assert_int_equal(b.len, 4);
	strbuf_consume(&b, 100);
	assert_int_equal(b.len, 0);
	assert_string_equal(b.p, "");
	assert_int_equal(strbuf_str(&b, "x"), 0);
	strbuf_reset(&b);
	assert_int_equal(b.len, 0);
	assert_string_equal(b.p, "");
	strbuf_free(&b);
}

static void test_take(void **state)
{
	struct strbuf b = {0};
	char *t;

	(void)state;
	t = strbuf_take(&b); /* nothing appended: "" */
	assert_non_null(t);
	assert_string_equal(t, "");
	free(t);
	assert_int_equal(strbuf_str(&b, "body"), 0);
	t = strbuf_take(&b);
	assert_string_equal(t, "body");
	assert_null(b.p);
	assert_int_equal(b.len, 0);
	free(t);
}

/* A room that cannot be had fails, and every append after it fails too,
 * keeping what was there; take gives NULL. */
static void test_failure_is_sticky(void **state)
{
	struct strbuf b = {0};

	(void)state;
	assert_int_equal(strbuf_str(&b, "kept"), 0);
	assert_int_equal(strbuf_reserve(&b, SIZE_MAX - 2), -ENOMEM);
	assert_true(b.failed);
	assert_string_equal(b.p, "kept");
	assert_int_equal(strbuf_str(&b, "more"), -ENOMEM);
	assert_int_equal(strbuf_printf(&b, "%d", 1), -ENOMEM);
	assert_int_equal(strbuf_add(&b, "x", 1), -ENOMEM);
	assert_string_equal(b.p, "kept");
	assert_null(strbuf_take(&b));
	assert_null(b.p); /* take freed it */
	assert_int_equal(b.failed, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_appends_grow),      cmocka_unit_test(test_printf_at_the_edge),
	    cmocka_unit_test(test_consume_and_reset), cmocka_unit_test(test_take),
	    cmocka_unit_test(test_failure_is_sticky),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
