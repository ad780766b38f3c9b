/*
 * test_smtpd_parse.c -- the SMTP intake's pure parts: command syntax,
 * client networks, the users file, AUTH's base64 and message ids.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <crypt.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "scheduler/cidr.h"
#include "scheduler/msgid.h"
#include "scheduler/smtpd_auth.h"
#include "scheduler/smtpd_parse.h"

static void test_verbs(void **state)
{
	const char *arg;

	(void)state;
	assert_int_equal(smtpd_verb("EHLO client.example", &arg), SMTPD_EHLO);
	assert_string_equal(arg, "client.example");
	assert_int_equal(smtpd_verb("mail FROM:<a@b.jp>", &arg), SMTPD_MAIL);
	assert_string_equal(arg, "FROM:<a@b.jp>");
	assert_int_equal(smtpd_verb("DATA", &arg), SMTPD_DATA);
	assert_string_equal(arg, "");
	assert_int_equal(smtpd_verb("STARTTLS", &arg), SMTPD_STARTTLS);
	assert_int_equal(smtpd_verb("DATAX", &arg), SMTPD_UNKNOWN);
	assert_int_equal(smtpd_verb("BDAT 10 LAST", &arg), SMTPD_UNKNOWN);
	assert_int_equal(smtpd_verb("", &arg), SMTPD_UNKNOWN);
}

static void test_paths(void **state)
{
	char addr[SMTPD_PATH_MAX], why[256], big[400];
	const char *params;

	(void)state;
	assert_int_equal(smtpd_parse_path("FROM:<a@b.example.jp> SIZE=10", "FROM:", addr,
	                                  sizeof addr, &params, why, sizeof why),
	                 0);
	assert_string_equal(addr, "a@b.example.jp");
	assert_string_equal(params, "SIZE=10");
	assert_int_equal(
	    smtpd_parse_path("FROM:<>", "FROM:", addr, sizeof addr, &params, why, sizeof why), 0);
	assert_string_equal(addr, "");
	/* the null path is a sender, never a recipient */
	assert_int_equal(smtpd_parse_path("TO:<>", "TO:", addr, sizeof addr, &params, why, sizeof why),
	                 -1);
	assert_int_equal(smtpd_parse_path("TO:<@relay.example:x@y.jp>", "TO:", addr, sizeof addr,
	                                  &params, why, sizeof why),
	                 0);
	assert_string_equal(addr, "x@y.jp");
	assert_int_equal(
	    smtpd_parse_path("FROM:a@b.jp", "FROM:", addr, sizeof addr, &params, why, sizeof why), -1);
	assert_non_null(strstr(why, "501 5.1.7"));
	assert_int_equal(smtpd_parse_path("TO:<a b@c.jp>", "TO:", addr, sizeof addr, &params, why,
	                                  sizeof why),
	                 -1);
	assert_non_null(strstr(why, "501 5.1.3"));
	assert_int_equal(
	    smtpd_parse_path("TO:<nodomain>", "TO:", addr, sizeof addr, &params, why, sizeof why), -1);
	assert_int_equal(
	    smtpd_parse_path("FROM <a@b.jp>", "FROM:", addr, sizeof addr, &params, why, sizeof why),
	    -1);
	assert_non_null(strstr(why, "501 5.5.4"));
	memset(big, 'a', sizeof big);
	memcpy(big, "TO:<", 4);
	strcpy(big + 300, "@x.jp>");
	assert_int_equal(smtpd_parse_path(big, "TO:", addr, sizeof addr, &params, why, sizeof why),
	                 -1);
	assert_int_equal(smtpd_parse_path("TO:<a@b.jp>junk", "TO:", addr, sizeof addr, &params, why,
	                                  sizeof why),
	                 -1);
}

static void test_params(void **state)
{
	struct smtpd_mail_params mp;
	char why[256];

	(void)state;
	assert_int_equal(smtpd_parse_mail_params("SIZE=12345 BODY=8BITMIME SMTPUTF8", &mp, why,
	                                         sizeof why),
	                 0);
	assert_true(mp.size == 12345);
	assert_int_equal(mp.body_8bit, 1);
	assert_int_equal(mp.smtputf8, 1);
	assert_int_equal(smtpd_parse_mail_params("", &mp, why, sizeof why), 0);
	assert_int_equal(smtpd_parse_mail_params("AUTH=<>", &mp, why, sizeof why), 0);
	assert_int_equal(smtpd_parse_mail_params("SIZE=12x", &mp, why, sizeof why), -1);
	assert_int_equal(smtpd_parse_mail_params("BODY=BINARYMIME", &mp, why, sizeof why), -1);
	assert_int_equal(smtpd_parse_mail_params("RET=FULL", &mp, why, sizeof why), -1);
	assert_non_null(strstr(why, "555 5.5.4"));
	assert_int_equal(smtpd_parse_rcpt_params("", why, sizeof why), 0);
	assert_int_equal(smtpd_parse_rcpt_params("NOTIFY=NEVER", why, sizeof why), -1);
}

static struct sockaddr_storage addr_of(const char *ip)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof ss);
	if (inet_pton(AF_INET, ip, &((struct sockaddr_in *)&ss)->sin_addr) == 1)
		ss.ss_family = AF_INET;
	else {
		assert_int_equal(inet_pton(AF_INET6, ip, &((struct sockaddr_in6 *)&ss)->sin6_addr), 1);
		ss.ss_family = AF_INET6;
	}
	return ss;
}

static void test_cidr(void **state)
{
	struct wu_cidr n[WU_CIDR_MAX];
	struct sockaddr_storage a;
	char why[128];

	(void)state;
	assert_int_equal(wu_cidr_parse_list("127.0.0.0/8, ::1 10.1.2.3/16", n, WU_CIDR_MAX, why,
	                                    sizeof why),
	                 3);
	a = addr_of("127.9.9.9");
	assert_int_equal(wu_cidr_match(n, 3, (struct sockaddr *)&a), 1);
	a = addr_of("::ffff:127.0.0.2");
	assert_int_equal(wu_cidr_match(n, 3, (struct sockaddr *)&a), 1);
	a = addr_of("10.1.200.1");
	assert_int_equal(wu_cidr_match(n, 3, (struct sockaddr *)&a), 1);
	a = addr_of("10.2.0.1");
	assert_int_equal(wu_cidr_match(n, 3, (struct sockaddr *)&a), 0);
	a = addr_of("::2");
	assert_int_equal(wu_cidr_match(n, 3, (struct sockaddr *)&a), 0);
	assert_int_equal(wu_cidr_loopback((struct sockaddr *)&a), 0);
	a = addr_of("::1");
	assert_int_equal(wu_cidr_loopback((struct sockaddr *)&a), 1);
	assert_int_equal(wu_cidr_parse_list("10.0.0.0/33", n, WU_CIDR_MAX, why, sizeof why), -1);
	assert_non_null(strstr(why, "10.0.0.0/33"));
	assert_int_equal(wu_cidr_parse_list("example.com", n, WU_CIDR_MAX, why, sizeof why), -1);
	assert_int_equal(wu_cidr_parse_list("", n, WU_CIDR_MAX, why, sizeof why), 0);
}

static void test_users(void **state)
{
	char path[] = "/tmp/wu-users-XXXXXX", err[512];
	struct smtpd_users *u;
	struct crypt_data cd;
	const char *hash;
	FILE *f;
	int fd;

	(void)state;
	memset(&cd, 0, sizeof cd);
	hash = crypt_rn("s3cret pass", crypt_gensalt_rn("$6$", 0, NULL, 0, (char[64]){0}, 64), &cd,
	                (int)sizeof cd);
	assert_non_null(hash);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	fprintf(f, "# users\n\napp:%s\n", hash);
	fclose(f);
	assert_int_equal(smtpd_users_load(&u, path, err, sizeof err), 0);
	assert_int_equal(smtpd_users_check(u, "app", "s3cret pass"), 1);
	assert_int_equal(smtpd_users_check(u, "app", "s3cret pas"), 0);
	assert_int_equal(smtpd_users_check(u, "nobody", "s3cret pass"), 0);
	smtpd_users_free(u);

	/* a clear-text password is refused, naming the file and line */
	f = fopen(path, "w");
	fprintf(f, "app:%s\nother:hunter2\n", hash);
	fclose(f);
	assert_int_equal(smtpd_users_load(&u, path, err, sizeof err), -1);
	assert_non_null(strstr(err, ":2:"));
	assert_non_null(strstr(err, "not a crypt(3) hash"));
	assert_null(strstr(err, "hunter2"));
	unlink(path);
	assert_int_equal(smtpd_users_load(&u, path, err, sizeof err), -1);
	assert_non_null(strstr(err, path));
}

static void test_base64_plain(void **state)
{
	unsigned char buf[128];
	const char *name, *pw;
	char enc[64];
	int n;

	(void)state;
	/* "\0app\0pw" */
	n = smtpd_b64_decode("AGFwcABwdw==", buf, sizeof buf);
	assert_int_equal(n, 7);
	assert_int_equal(smtpd_plain_split(buf, n, &name, &pw), 0);
	assert_string_equal(name, "app");
	assert_string_equal(pw, "pw");
	assert_int_equal(smtpd_b64_decode("AGFwcABwdw=", buf, sizeof buf), -1);
	assert_int_equal(smtpd_b64_decode("!!!!", buf, sizeof buf), -1);
	n = smtpd_b64_decode("YXBw", buf, sizeof buf); /* "app": no NULs */
	assert_int_equal(smtpd_plain_split(buf, n, &name, &pw), -1);
	assert_int_equal(smtpd_b64_decode("", buf, sizeof buf), 0);
	smtpd_b64_encode((const unsigned char *)"Username:", 9, enc);
	assert_string_equal(enc, "VXNlcm5hbWU6");
}

#define NIDS 300 /* past the 64 ids one fetch of random bytes makes, several times */

static void make_ids(char (*ids)[23], int n)
{
	for (int i = 0; i < n; i++)
		msgid_make(ids[i]);
}

static void *make_ids_thread(void *arg)
{
	make_ids(arg, NIDS);
	return NULL;
}

static int id_cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* 22 characters of base64url each; no two alike, within a thread, across
 * the refills of its buffer, or between two threads. */
static void test_msgid(void **state)
{
	static char ids[2 * NIDS][23];
	pthread_t t;

	(void)state;
	make_ids(ids, NIDS);
	assert_int_equal(pthread_create(&t, NULL, make_ids_thread, ids + NIDS), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	for (int i = 0; i < 2 * NIDS; i++) {
		assert_int_equal(strlen(ids[i]), 22);
		assert_int_equal(strspn(ids[i],
		                        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		                        "0123456789-_"),
		                 22);
	}
	qsort(ids, 2 * NIDS, sizeof(ids[0]), id_cmp);
	for (int i = 1; i < 2 * NIDS; i++)
		assert_string_not_equal(ids[i - 1], ids[i]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_verbs),  cmocka_unit_test(test_paths),
	    cmocka_unit_test(test_params), cmocka_unit_test(test_cidr),
	    cmocka_unit_test(test_users),  cmocka_unit_test(test_base64_plain),
	    cmocka_unit_test(test_msgid),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
