/*
 * test_isp.c -- ISP groups: the built-in table, parent domains, "label.*"
 * country patterns, case and full addresses, and redefining groups.
 */
#include "test_util.h"

#include <stdio.h>

#include "isp.h"

static struct wu_isp_table T;

static int setup(void **state)
{
	(void)state;
	memset(&T, 0, sizeof T);
	return wu_isp_table_init(&T) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	wu_isp_table_free(&T);
	return 0;
}

/* classify(domain) is the group named want. */
static void expect_group(const struct wu_isp_table *t, const char *domain, const char *want)
{
	int id = wu_isp_classify(t, domain);
	if (id < 0 || id >= t->n || strcmp(t->names[id], want) != 0) {
		print_error("%s -> %d (%s), expected %s\n", domain, id,
		            id >= 0 && id < t->n ? t->names[id] : "?", want);
		fail();
	}
}

static void test_builtin_names(void **state)
{
	(void)state;
	static const char *names[] = {"other", "google", "yahoo", "microsoft",
	                              "apple", "docomo", "au",    "softbank"};

	assert_int_equal(T.n, 8);
	assert_int_equal(wu_isp_find(&T, "other"), WU_ISP_OTHER);
	assert_string_equal(T.names[WU_ISP_OTHER], "other");
	for (int i = 0; i < 8; i++) {
		int id = wu_isp_find(&T, names[i]);
		assert_in_range(id, 0, T.n - 1);
		assert_string_equal(T.names[id], names[i]);
	}
	assert_int_equal(wu_isp_find(&T, "nope"), -1);
	assert_int_equal(wu_isp_find(&T, ""), -1);
}

static void test_builtin_domains(void **state)
{
	(void)state;
	expect_group(&T, "gmail.com", "google");
	expect_group(&T, "googlemail.com", "google");
	expect_group(&T, "yahoo.co.jp", "yahoo");
	expect_group(&T, "yahoo.com", "yahoo");
	expect_group(&T, "aol.com", "yahoo");
	expect_group(&T, "hotmail.co.jp", "microsoft");
	expect_group(&T, "outlook.jp", "microsoft");
	expect_group(&T, "hotmail.fr", "microsoft");
	expect_group(&T, "hotmail.com", "microsoft");
	expect_group(&T, "outlook.com", "microsoft");
	expect_group(&T, "icloud.com", "apple");
	expect_group(&T, "docomo.ne.jp", "docomo");
	expect_group(&T, "ezweb.ne.jp", "au");
	expect_group(&T, "au.com", "au");
	expect_group(&T, "i.softbank.jp", "softbank");
	expect_group(&T, "softbank.ne.jp", "softbank");
	expect_group(&T, "example.com", "other");
	expect_group(&T, "example.co.jp", "other");
}

static void test_country_pattern(void **state)
{
	(void)state;
	expect_group(&T, "hotmail.com.br", "microsoft");
	expect_group(&T, "hotmail.co.uk", "microsoft");
	expect_group(&T, "hotmail.de", "microsoft");
	/* Not a country code or "com" at the end. */
	expect_group(&T, "hotmail.example", "other");
	expect_group(&T, "hotmail", "other");
	/* Three labels after the name is too many. */
	expect_group(&T, "hotmail.a.b.jp", "other");
}

static void test_parent_domains(void **state)
{
	(void)state;
	expect_group(&T, "mx.gmail.com", "google");
	expect_group(&T, "a.b.c.gmail.com", "google");
	expect_group(&T, "mail.docomo.ne.jp", "docomo");
	/* A suffix that is not a whole label does not match. */
	expect_group(&T, "notgmail.com", "other");
	expect_group(&T, "gmail.com.evil.example", "other");
	expect_group(&T, "xau.com", "other");
	/* The bare public suffix is nobody's. */
	expect_group(&T, "ne.jp", "other");
	expect_group(&T, "com", "other");
}

static void test_case_and_addresses(void **state)
{
	(void)state;
	expect_group(&T, "GMAIL.COM", "google");
	expect_group(&T, "Gmail.Com", "google");
	expect_group(&T, "User@GMAIL.com", "google");
	expect_group(&T, "first.last+tag@Docomo.NE.JP", "docomo");
	/* The part after the last '@'. */
	expect_group(&T, "\"a@b\"@i.softbank.jp", "softbank");
	expect_group(&T, "user@gmail.com@example.com", "other");
	expect_group(&T, "user@example.com", "other");
}

static void test_odd_inputs(void **state)
{
	(void)state;
	expect_group(&T, "", "other");
	expect_group(&T, "@", "other");
	expect_group(&T, "user@", "other");
	expect_group(&T, ".", "other");
	expect_group(&T, "..gmail..com", "other");
	expect_group(&T, "localhost", "other");
	/* The longest valid name (253 characters) still classifies. */
	char name[254];
	size_t at = 0;
	while (at + 64 <= 243) {
		memset(name + at, 'a', 63);
		name[at + 63] = '.';
		at += 64;
	}
	memset(name + at, 'b', 243 - at);
	memcpy(name + 243, ".gmail.com", 11);
	assert_int_equal(strlen(name), 253);
	expect_group(&T, name, "google");
	/* Longer than any domain name: any group but no crash. */
	char longname[4000];
	memset(longname, 'a', sizeof longname - 1);
	longname[sizeof longname - 1] = '\0';
	memcpy(longname + sizeof longname - 11, ".gmail.com", 10);
	int id = wu_isp_classify(&T, longname);
	assert_in_range(id, 0, T.n - 1);
}

static void test_override_builtin(void **state)
{
	(void)state;
	char err[WU_ERR_MAX] = "";
	int g = wu_isp_find(&T, "google");

	wu_isp_clear(&T, g);
	expect_group(&T, "gmail.com", "other");
	assert_int_equal(wu_isp_add_domains(&T, g, "gmail.com, example.org", err, sizeof err), 0);
	expect_group(&T, "gmail.com", "google");
	expect_group(&T, "example.org", "google");
	expect_group(&T, "x.example.org", "google");
	expect_group(&T, "googlemail.com", "other");
	/* Other groups untouched. */
	expect_group(&T, "yahoo.co.jp", "yahoo");
	assert_int_equal(T.n, 8);
}

static void test_new_group(void **state)
{
	(void)state;
	char err[WU_ERR_MAX] = "";
	int n0 = T.n;

	int corp = wu_isp_define(&T, "corp", err, sizeof err);
	assert_int_equal(corp, n0);
	assert_int_equal(T.n, n0 + 1);
	assert_string_equal(T.names[corp], "corp");
	assert_int_equal(wu_isp_find(&T, "corp"), corp);
	/* Defining it again gives the same id. */
	assert_int_equal(wu_isp_define(&T, "corp", err, sizeof err), corp);
	assert_int_equal(T.n, n0 + 1);
	/* An existing built-in name gives the built-in id. */
	assert_int_equal(wu_isp_define(&T, "google", err, sizeof err), wu_isp_find(&T, "google"));

	assert_int_equal(wu_isp_add_domains(&T, corp, "corp.example biz.example\tthird.example",
	                                    err, sizeof err),
	                 0);
	expect_group(&T, "corp.example", "corp");
	expect_group(&T, "mail.corp.example", "corp");
	expect_group(&T, "biz.example", "corp");
	expect_group(&T, "THIRD.example", "corp");

	/* A domain already in another group moves. */
	assert_int_equal(wu_isp_add_domains(&T, corp, "googlemail.com", err, sizeof err), 0);
	expect_group(&T, "googlemail.com", "corp");
	expect_group(&T, "gmail.com", "google");

	/* The most specific entry wins over its parent. */
	int sub = wu_isp_define(&T, "sub_group-2", err, sizeof err);
	assert_true(sub > corp);
	assert_int_equal(wu_isp_add_domains(&T, sub, "deep.corp.example", err, sizeof err), 0);
	expect_group(&T, "x.deep.corp.example", "sub_group-2");
	expect_group(&T, "deep.corp.example", "sub_group-2");
	expect_group(&T, "shallow.corp.example", "corp");
}

static void test_bad_group_names(void **state)
{
	(void)state;
	char err[WU_ERR_MAX];
	static const char *bad[] = {"", "Google", "has space", "dot.ted", "semi;colon", "é"};
	int n0 = T.n;

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		err[0] = '\0';
		if (wu_isp_define(&T, bad[i], err, sizeof err) != -1) {
			print_error("group name \"%s\" accepted\n", bad[i]);
			fail();
		}
		assert_true(err[0] != '\0');
	}
	char name[40];
	memset(name, 'a', 32);
	name[32] = '\0';
	assert_int_equal(wu_isp_define(&T, name, err, sizeof err), -1);
	name[31] = '\0';
	assert_int_equal(wu_isp_define(&T, name, err, sizeof err), n0);
	assert_int_equal(T.n, n0 + 1);
}

static void test_table_full(void **state)
{
	(void)state;
	char err[WU_ERR_MAX] = "";
	char name[16];
	int i = 0;

	while (T.n < WU_ISP_MAX) {
		snprintf(name, sizeof name, "g%d", i++);
		int id = wu_isp_define(&T, name, err, sizeof err);
		assert_int_equal(id, T.n - 1);
	}
	err[0] = '\0';
	assert_int_equal(wu_isp_define(&T, "onemore", err, sizeof err), -1);
	assert_true(err[0] != '\0');
	assert_int_equal(T.n, WU_ISP_MAX);
	/* Existing names still resolve. */
	assert_int_equal(wu_isp_define(&T, "g0", err, sizeof err), wu_isp_find(&T, "g0"));
}

static void test_bad_domains(void **state)
{
	(void)state;
	char err[WU_ERR_MAX] = "";
	int g = wu_isp_find(&T, "google");

	assert_int_equal(wu_isp_add_domains(&T, g, "ok.example, bad!dom.ain", err, sizeof err), -1);
	assert_err_has(err, "bad!dom.ain");
	err[0] = '\0';
	assert_int_equal(wu_isp_add_domains(&T, g, "user@x.example", err, sizeof err), -1);
	assert_true(err[0] != '\0');
}

static void test_many_domains_and_copy(void **state)
{
	(void)state;
	char err[WU_ERR_MAX] = "";
	char list[64];
	int g = wu_isp_define(&T, "bulk", err, sizeof err);

	/* Enough domains to make the table grow several times. */
	for (int i = 0; i < 500; i++) {
		snprintf(list, sizeof list, "d%d.example", i);
		assert_int_equal(wu_isp_add_domains(&T, g, list, err, sizeof err), 0);
	}
	expect_group(&T, "d0.example", "bulk");
	expect_group(&T, "d499.example", "bulk");

	struct wu_isp_table c;
	memset(&c, 0, sizeof c);
	assert_int_equal(wu_isp_table_copy(&c, &T), 0);
	assert_int_equal(c.n, T.n);
	expect_group(&c, "d250.example", "bulk");
	/* The copy is independent of the original. */
	wu_isp_clear(&T, g);
	expect_group(&T, "d250.example", "other");
	expect_group(&c, "d250.example", "bulk");
	expect_group(&c, "gmail.com", "google");
	wu_isp_table_free(&c);

	struct wu_isp_table z;
	memset(&z, 0, sizeof z);
	wu_isp_table_free(&z);
}

static void expect_mx(const struct wu_isp_table *t, const char *host, const char *want)
{
	int id = wu_isp_classify_mx(t, host);

	assert_true(id >= 0 && id < t->n);
	if (strcmp(t->names[id], want) != 0)
		fail_msg("MX %s: expected %s, got %s", host, want, t->names[id]);
}

/* The providers' published exchangers, and names that only look like them. */
static void test_mx_builtin(void **state)
{
	(void)state;
	expect_mx(&T, "aspmx.l.google.com", "google");
	expect_mx(&T, "alt4.aspmx.l.google.com.", "google");
	expect_mx(&T, "SMTP.Google.COM", "google");
	expect_mx(&T, "aspmx2.googlemail.com", "google");
	expect_mx(&T, "acme-co-jp.mail.protection.outlook.com", "microsoft");
	expect_mx(&T, "hotmail-com.olc.protection.outlook.com", "microsoft");
	expect_mx(&T, "mta5.am0.yahoodns.net", "yahoo");
	expect_mx(&T, "mx-aol.mail.gm0.yahoodns.net", "yahoo");
	expect_mx(&T, "mx01.mail.icloud.com", "apple");
	expect_mx(&T, "mfsmax.docomo.ne.jp", "docomo");
	/* The apex is not "*.": google.com as an exchanger is no one's. */
	expect_mx(&T, "google.com", "other");
	expect_mx(&T, "notgoogle.com", "other");
	expect_mx(&T, "aspmx.l.google.com.evil.example", "other");
	expect_mx(&T, "mail.protection.outlook.com", "other");
	expect_mx(&T, "", "other");
	expect_mx(&T, ".", "other");
	/* MX patterns never classify a recipient domain, nor domains an MX. */
	expect_group(&T, "x.google.com", "other");
	expect_mx(&T, "gmail.com", "other");
	expect_mx(&T, "mx.gmail.com", "other");
}

/* [isp NAME] mx: exact hosts, the longest pattern wins, moves, clears, bad
 * entries, and the copy keeps them. */
static void test_mx_patterns(void **state)
{
	char err[200];
	int corp = wu_isp_define(&T, "corp", err, sizeof err), g = wu_isp_find(&T, "google");
	int ms = wu_isp_find(&T, "microsoft");

	(void)state;
	assert_int_equal(
	    wu_isp_add_mx(&T, corp, "mx1.corp.example, *.outlook.com", err, sizeof err), 0);
	expect_mx(&T, "mx1.corp.example", "corp");
	expect_mx(&T, "MX1.CORP.EXAMPLE.", "corp");
	expect_mx(&T, "mx2.corp.example", "other");
	expect_mx(&T, "x.mx1.corp.example", "other");
	/* *.mail.protection.outlook.com is longer than *.outlook.com. */
	expect_mx(&T, "acme.mail.protection.outlook.com", "microsoft");
	expect_mx(&T, "eur.outlook.com", "corp");
	/* A pattern listed again moves to the new group. */
	assert_int_equal(wu_isp_add_mx(&T, corp, "*.google.com", err, sizeof err), 0);
	expect_mx(&T, "aspmx.l.google.com", "corp");
	expect_mx(&T, "aspmx2.googlemail.com", "google");
	wu_isp_clear_mx(&T, g);
	expect_mx(&T, "aspmx2.googlemail.com", "other");
	expect_group(&T, "gmail.com", "google"); /* the domains stay */
	wu_isp_clear(&T, ms);
	expect_mx(&T, "acme.mail.protection.outlook.com", "microsoft"); /* the MX stay */

	struct wu_isp_table c;
	memset(&c, 0, sizeof c);
	assert_int_equal(wu_isp_table_copy(&c, &T), 0);
	expect_mx(&c, "mx1.corp.example", "corp");
	expect_group(&c, "mx1.corp.example", "other");
	wu_isp_table_free(&c);

	const char *bad[] = {"*",    "*.",          "*.*.google.com", "a*.google.com", "google.*",
	                     "x..y", ".google.com", "a_b.example",    "*google.com"};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		err[0] = '\0';
		if (wu_isp_add_mx(&T, corp, bad[i], err, sizeof err) == 0)
			fail_msg("MX pattern '%s' accepted", bad[i]);
		assert_non_null(strstr(err, "expected an MX host"));
	}
}

#define T_(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T_(test_builtin_names),    T_(test_builtin_domains),    T_(test_country_pattern),
	    T_(test_parent_domains),   T_(test_case_and_addresses), T_(test_odd_inputs),
	    T_(test_override_builtin), T_(test_new_group),          T_(test_bad_group_names),
	    T_(test_table_full),       T_(test_bad_domains),        T_(test_many_domains_and_copy),
	    T_(test_mx_builtin),       T_(test_mx_patterns),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
