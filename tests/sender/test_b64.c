/*
 * test_b64.c -- the one base64 codec: what it takes, what it refuses.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "sender/b64.h"

/* Decodes text with flags; the byte count, the bytes in out. */
static long dec(const char *text, int flags, char *out)
{
	unsigned char *b;
	long n = b64_decode_alloc(text, strlen(text), &b, flags);

	if (n >= 0) {
		memcpy(out, b, (size_t)n);
		out[n] = '\0';
	}
	free(b);
	return n;
}

static void test_encode(void **state)
{
	char out[B64_ENCODED_LEN(5)];

	(void)state;
	assert_int_equal(b64_encode((const unsigned char *)"hello", 5, out), 8);
	assert_string_equal(out, "aGVsbG8=");
	assert_int_equal(b64_encode((const unsigned char *)"hell", 4, out), 8);
	assert_string_equal(out, "aGVsbA==");
	assert_int_equal(b64_encode((const unsigned char *)"", 0, out), 0);
	assert_string_equal(out, "");
}

static void test_decode_rules(void **state)
{
	char out[64];

	(void)state;
	assert_int_equal(dec("aGVsbG8=", 0, out), 5);
	assert_string_equal(out, "hello");
	assert_int_equal(dec("aGVs\r\nbG8=\r\n", B64_BREAKS_ONLY, out), 5);
	assert_string_equal(out, "hello");
	assert_int_equal(dec("aGVs bG8=", 0, out), 5);
	/* blanks only where allowed */
	assert_int_equal(dec("aGVs bG8=", B64_BREAKS_ONLY, out), -1);
	assert_int_equal(dec("aGVs\tbG8=", B64_BREAKS_ONLY, out), -1);
	/* padding: required unless optional */
	assert_int_equal(dec("aGVsbG8", 0, out), -1);
	assert_int_equal(dec("aGVsbG8", B64_PAD_OPTIONAL, out), 5);
	assert_string_equal(out, "hello");
	assert_int_equal(dec("aGVsbA", B64_PAD_OPTIONAL, out), 4);
	assert_string_equal(out, "hell");
	/* a single character cannot make a byte */
	assert_int_equal(dec("aGVsb", B64_PAD_OPTIONAL, out), -1);
	/* '=' ends the text: never inside it */
	assert_int_equal(dec("aG=s", 0, out), -1);
	assert_int_equal(dec("aGVsbG8=aGVs", 0, out), -1);
	assert_int_equal(dec("aGVs====", 0, out), -1);
	assert_int_equal(dec("====", 0, out), -1);
	/* outside the alphabet */
	assert_int_equal(dec("aGVs!", 0, out), -1);
	assert_int_equal(dec("aGV-", 0, out), -1);
	assert_int_equal(dec("", 0, out), 0);
}

static void test_decode_room_and_nul(void **state)
{
	unsigned char small[8];
	const char text[] = "aGVs\0bG8=";

	(void)state;
	assert_int_equal(b64_decode("aGVsbG8=", 8, small, sizeof small, 0), -1);
	{
		unsigned char big[B64_DECODED_MAX(sizeof text - 1)];
		assert_int_equal(b64_decode(text, sizeof text - 1, big, sizeof big, 0), -1);
	}
}

static void test_round_trip(void **state)
{
	unsigned char in[300], back[B64_DECODED_MAX(B64_ENCODED_LEN(300))];
	char text[B64_ENCODED_LEN(300)];

	(void)state;
	for (size_t i = 0; i < sizeof in; i++)
		in[i] = (unsigned char)(i * 131 + 7);
	for (size_t n = 0; n <= sizeof in; n++) {
		size_t k = b64_encode(in, n, text);

		assert_int_equal(k, (n + 2) / 3 * 4);
		assert_int_equal(b64_decode(text, k, back, sizeof back, B64_BREAKS_ONLY), (long)n);
		assert_memory_equal(back, in, n);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_encode),
	    cmocka_unit_test(test_decode_rules),
	    cmocka_unit_test(test_decode_room_and_nul),
	    cmocka_unit_test(test_round_trip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
