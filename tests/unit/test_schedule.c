/*
 * test_schedule.c -- warmup tables: the CSV syntax, its errors (always
 * "FILE:LINE: message"), and the after-policy past the last row.
 */
#include "test_util.h"

#include <stdio.h>
#include <stdlib.h>

#include "schedule.h"

static const int64_t seed_caps[] = {63, 83, 73, 106, 127, 363, 2027, 1255, 8454, 20800};

/* Reads a fixture from tests/unit/data (the test runs in tests/unit). */
static char *read_fixture(const char *name, size_t *len)
{
	char path[256];
	snprintf(path, sizeof path, "data/%s", name);
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	static char buf[4096];
	*len = fread(buf, 1, sizeof buf - 1, f);
	buf[*len] = '\0';
	fclose(f);
	return buf;
}

static int parse_str(struct wu_schedule *s, const char *text, const char *file, char *err)
{
	memset(s, 0, sizeof *s);
	err[0] = '\0';
	return wu_schedule_parse(s, text, strlen(text), file, err, WU_ERR_MAX);
}

static void test_seed_file(void **state)
{
	(void)state;
	struct wu_schedule s;
	char err[WU_ERR_MAX] = "";
	size_t len;
	const char *text = read_fixture("seed.csv", &len);

	memset(&s, 0, sizeof s);
	assert_int_equal(wu_schedule_parse(&s, text, len, "seed.csv", err, sizeof err), 0);
	assert_int_equal(s.ndays, 10);
	for (int i = 0; i < 10; i++) {
		assert_i64_eq(s.days[i].cap, seed_caps[i]);
		assert_i64_eq(s.days[i].hourly_cap, 0);
		struct wu_schedule_day d = wu_schedule_get(&s, i + 1);
		assert_i64_eq(d.cap, seed_caps[i]);
	}
	wu_schedule_free(&s);
}

static void test_comments_blank_no_newline(void **state)
{
	(void)state;
	struct wu_schedule s;
	char err[WU_ERR_MAX];

	/* Comment before the header, blank lines, no newline at the end. */
	assert_int_equal(
	    parse_str(&s, "# source: somewhere\n\nday,cap\n\n1,50\n# mid\n2,60", "a.csv", err), 0);
	assert_int_equal(s.ndays, 2);
	assert_i64_eq(s.days[0].cap, 50);
	assert_i64_eq(s.days[1].cap, 60);
	wu_schedule_free(&s);
}

static void test_len_is_respected(void **state)
{
	(void)state;
	struct wu_schedule s;
	char err[WU_ERR_MAX] = "";
	const char *text = "day,cap\n1,63\n2,83\nthis is not csv at all";
	size_t len = strlen("day,cap\n1,63\n2,83\n");

	memset(&s, 0, sizeof s);
	assert_int_equal(wu_schedule_parse(&s, text, len, "cut.csv", err, sizeof err), 0);
	assert_int_equal(s.ndays, 2);
	assert_i64_eq(s.days[1].cap, 83);
	wu_schedule_free(&s);

	/* Not NUL-terminated at len: the last row ends at len, not after it. */
	const char *text2 = "day,cap\n1,63\n2,8399";
	len = strlen("day,cap\n1,63\n2,83");
	memset(&s, 0, sizeof s);
	assert_int_equal(wu_schedule_parse(&s, text2, len, "cut.csv", err, sizeof err), 0);
	assert_int_equal(s.ndays, 2);
	assert_i64_eq(s.days[1].cap, 83);
	wu_schedule_free(&s);
}

static void test_crlf(void **state)
{
	(void)state;
	struct wu_schedule s;
	char err[WU_ERR_MAX];

	/* A file saved with CRLF either parses to the same values or is refused
	 * with a located error; it never yields wrong caps. */
	int rc = parse_str(&s, "day,cap\r\n1,63\r\n2,83\r\n", "dos.csv", err);
	if (rc == 0) {
		assert_int_equal(s.ndays, 2);
		assert_i64_eq(s.days[0].cap, 63);
		assert_i64_eq(s.days[1].cap, 83);
		wu_schedule_free(&s);
	} else {
		assert_err_has(err, "dos.csv:");
	}
}

static void test_hourly_only(void **state)
{
	(void)state;
	struct wu_schedule s;
	char err[WU_ERR_MAX];

	assert_int_equal(parse_str(&s, "day,hourly_cap\n1,20\n2,40\n3,80\n", "h.csv", err), 0);
	assert_int_equal(s.ndays, 3);
	assert_i64_eq(s.days[0].cap, 0);
	assert_i64_eq(s.days[0].hourly_cap, 20);
	assert_i64_eq(s.days[2].hourly_cap, 80);
	wu_schedule_free(&s);
}

static void test_both_columns(void **state)
{
	(void)state;
	struct wu_schedule s;
	char err[WU_ERR_MAX];

	assert_int_equal(parse_str(&s, "day,cap,hourly_cap\n1,1000,50\n2,2000,100\n", "b.csv", err),
	                 0);
	assert_int_equal(s.ndays, 2);
	assert_i64_eq(s.days[0].cap, 1000);
	assert_i64_eq(s.days[0].hourly_cap, 50);
	assert_i64_eq(s.days[1].cap, 2000);
	assert_i64_eq(s.days[1].hourly_cap, 100);
	wu_schedule_free(&s);
}

/* Parsing fails, err starts with want (e.g. "bad.csv:4:"), s is left empty. */
static void expect_error(const char *text, const char *want)
{
	struct wu_schedule s;
	char err[WU_ERR_MAX];

	if (parse_str(&s, text, "bad.csv", err) != -1) {
		print_error("accepted: \"%s\"\n", text);
		fail();
	}
	if (strncmp(err, want, strlen(want)) != 0) {
		print_error("error \"%s\" does not start with \"%s\"\n", err, want);
		fail();
	}
	/* Something after the location. */
	assert_true(strlen(err) > strlen(want) + 1);
	assert_int_equal(s.ndays, 0);
	wu_schedule_free(&s);
}

static void test_errors_name_file_and_line(void **state)
{
	(void)state;
	/* gap: day 3 missing */
	expect_error("day,cap\n1,63\n2,83\n4,106\n", "bad.csv:4:");
	/* gap counted with comments and blank lines in between */
	expect_error("# c\nday,cap\n\n1,63\n# skip\n3,73\n", "bad.csv:6:");
	/* days must start at 1 */
	expect_error("day,cap\n0,63\n", "bad.csv:2:");
	expect_error("day,cap\n2,63\n", "bad.csv:2:");
	/* repeated day */
	expect_error("day,cap\n1,63\n1,83\n", "bad.csv:3:");
	/* zero and negative caps */
	expect_error("day,cap\n1,63\n2,0\n", "bad.csv:3:");
	expect_error("day,cap\n1,-5\n", "bad.csv:2:");
	expect_error("day,hourly_cap\n1,0\n", "bad.csv:2:");
	/* no header */
	expect_error("1,63\n2,83\n", "bad.csv:1:");
	/* header without a cap column, unknown column */
	expect_error("day\n1\n", "bad.csv:1:");
	expect_error("day,volume\n1,63\n", "bad.csv:1:");
	/* junk */
	expect_error("day,cap\n1,63\n2,abc\n", "bad.csv:3:");
	expect_error("day,cap\n1,63\n2,83\nhello world\n", "bad.csv:4:");
	expect_error("day,cap\n1,63x\n", "bad.csv:2:");
	expect_error("day,cap\n1\n", "bad.csv:2:");
	expect_error("day,cap\n1,63,7\n", "bad.csv:2:");
	expect_error("day,cap\nx,63\n", "bad.csv:2:");
	/* a header and nothing else */
	expect_error("day,cap\n", "bad.csv:");
	/* nothing at all */
	expect_error("", "bad.csv:");
}

static void test_binary_junk_no_crash(void **state)
{
	(void)state;
	struct wu_schedule s;
	char err[WU_ERR_MAX] = "";
	const char junk[] = "day,cap\n1,\x01\xff\xfe\n\0\0,,,,\n";

	memset(&s, 0, sizeof s);
	assert_int_equal(wu_schedule_parse(&s, junk, sizeof junk - 1, "junk.csv", err, sizeof err),
	                 -1);
	assert_err_has(err, "junk.csv:2:");
	wu_schedule_free(&s);
}

static void test_after_policies(void **state)
{
	(void)state;
	struct wu_schedule s;
	char err[WU_ERR_MAX];
	struct wu_schedule_day d;

	assert_int_equal(parse_str(&s, "day,cap\n1,63\n2,83\n3,100\n", "p.csv", err), 0);

	s.after = WU_AFTER_HOLD;
	d = wu_schedule_get(&s, 3);
	assert_i64_eq(d.cap, 100);
	d = wu_schedule_get(&s, 4);
	assert_i64_eq(d.cap, 100);
	d = wu_schedule_get(&s, 400);
	assert_i64_eq(d.cap, 100);

	s.after = WU_AFTER_UNLIMITED;
	d = wu_schedule_get(&s, 3);
	assert_i64_eq(d.cap, 100);
	d = wu_schedule_get(&s, 4);
	assert_i64_eq(d.cap, WU_UNLIMITED);
	d = wu_schedule_get(&s, 50);
	assert_i64_eq(d.cap, WU_UNLIMITED);

	s.after = WU_AFTER_DOUBLE;
	d = wu_schedule_get(&s, 3);
	assert_i64_eq(d.cap, 100);
	d = wu_schedule_get(&s, 4);
	assert_i64_eq(d.cap, 200);
	d = wu_schedule_get(&s, 5);
	assert_i64_eq(d.cap, 400);
	d = wu_schedule_get(&s, 13);
	assert_i64_eq(d.cap, 100 * 1024);
	/* 100 * 2^60 overflows int64: saturates, never wraps. */
	d = wu_schedule_get(&s, 63);
	assert_i64_eq(d.cap, WU_UNLIMITED);
	d = wu_schedule_get(&s, 1000000);
	assert_i64_eq(d.cap, WU_UNLIMITED);
	/* Monotone all the way. */
	int64_t prev = 0;
	for (int step = 1; step < 200; step++) {
		d = wu_schedule_get(&s, step);
		assert_true(d.cap > 0);
		if (step > 3)
			assert_true(d.cap >= prev);
		prev = d.cap;
	}

	/* Before day 1: nothing, whatever the policy. */
	d = wu_schedule_get(&s, 0);
	assert_i64_eq(d.cap, 0);
	assert_i64_eq(d.hourly_cap, 0);
	d = wu_schedule_get(&s, -5);
	assert_i64_eq(d.cap, 0);
	assert_i64_eq(d.hourly_cap, 0);
	wu_schedule_free(&s);
}

static void test_double_hourly(void **state)
{
	(void)state;
	struct wu_schedule s;
	char err[WU_ERR_MAX];
	struct wu_schedule_day d;

	assert_int_equal(parse_str(&s, "day,cap,hourly_cap\n1,1000,50\n", "h.csv", err), 0);
	s.after = WU_AFTER_DOUBLE;
	d = wu_schedule_get(&s, 2);
	assert_i64_eq(d.cap, 2000);
	assert_i64_eq(d.hourly_cap, 100);
	d = wu_schedule_get(&s, 100);
	assert_i64_eq(d.cap, WU_UNLIMITED);
	assert_i64_eq(d.hourly_cap, WU_UNLIMITED);
	s.after = WU_AFTER_HOLD;
	d = wu_schedule_get(&s, 9);
	assert_i64_eq(d.hourly_cap, 50);
	wu_schedule_free(&s);

	/* Only hourly caps: doubling leaves the absent daily cap absent. */
	assert_int_equal(parse_str(&s, "day,hourly_cap\n1,10\n", "h.csv", err), 0);
	s.after = WU_AFTER_DOUBLE;
	d = wu_schedule_get(&s, 3);
	assert_i64_eq(d.hourly_cap, 40);
	assert_i64_eq(d.cap, 0);
	wu_schedule_free(&s);
}

static void test_copy_and_free(void **state)
{
	(void)state;
	struct wu_schedule s, c;
	char err[WU_ERR_MAX];

	assert_int_equal(parse_str(&s, "day,cap\n1,63\n2,83\n", "c.csv", err), 0);
	s.after = WU_AFTER_DOUBLE;
	memset(&c, 0, sizeof c);
	assert_int_equal(wu_schedule_copy(&c, &s), 0);
	assert_int_equal(c.ndays, 2);
	assert_int_equal(c.after, WU_AFTER_DOUBLE);
	assert_ptr_not_equal(c.days, s.days);
	s.days[0].cap = 1;
	assert_i64_eq(c.days[0].cap, 63);
	wu_schedule_free(&s);
	assert_i64_eq(wu_schedule_get(&c, 3).cap, 166);
	wu_schedule_free(&c);

	/* A zeroed schedule is fine to free, twice. */
	struct wu_schedule z;
	memset(&z, 0, sizeof z);
	wu_schedule_free(&z);
	wu_schedule_free(&z);
}

static void test_after_names(void **state)
{
	(void)state;
	char err[WU_ERR_MAX] = "";
	enum wu_after a;
	static const char *names[] = {"unlimited", "hold", "double"};
	static const enum wu_after vals[] = {WU_AFTER_UNLIMITED, WU_AFTER_HOLD, WU_AFTER_DOUBLE};

	for (int i = 0; i < 3; i++) {
		assert_int_equal(wu_after_parse(names[i], &a, err, sizeof err), 0);
		assert_int_equal(a, vals[i]);
		assert_string_equal(wu_after_name(vals[i]), names[i]);
	}
	assert_int_equal(wu_after_parse("triple", &a, err, sizeof err), -1);
	assert_true(err[0] != '\0');
	assert_int_equal(wu_after_parse("", &a, err, sizeof err), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_seed_file),
	    cmocka_unit_test(test_comments_blank_no_newline),
	    cmocka_unit_test(test_len_is_respected),
	    cmocka_unit_test(test_crlf),
	    cmocka_unit_test(test_hourly_only),
	    cmocka_unit_test(test_both_columns),
	    cmocka_unit_test(test_errors_name_file_and_line),
	    cmocka_unit_test(test_binary_junk_no_crash),
	    cmocka_unit_test(test_after_policies),
	    cmocka_unit_test(test_double_hourly),
	    cmocka_unit_test(test_copy_and_free),
	    cmocka_unit_test(test_after_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
