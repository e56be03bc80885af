/* Unit tests for src/crypto/crypto.c: SHA-256 and HMAC-SHA-256 known-answer
 * vectors (FIPS 180-4, RFC 4231), base64url (RFC 4648 §5) round trips and
 * rejections, constant-time compares, and the CSPRNG helpers' formats. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/err.h"
#include "crypto/crypto.h"

struct digest_case {
	const char *name;
	const char *data;
	const char *hex;
};

/* FIPS 180-4 examples (via the NIST CSRC example values). */
static const struct digest_case sha256_cases[] = {
	{"abc", "abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
	{"empty", "", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
	{"448-bit", "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
	 "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
};

static void test_sha256_vectors(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(sha256_cases) / sizeof(*sha256_cases); i++) {
		const struct digest_case *c = &sha256_cases[i];
		char out[BZ_SHA256_HEX_LEN + 1];

		memset(out, 'x', sizeof(out));
		assert_int_equal(crypto_sha256_hex(c->data, strlen(c->data), out), 0);
		assert_int_equal(strlen(out), BZ_SHA256_HEX_LEN);
		if (strcmp(out, c->hex) != 0)
			fail_msg("sha256 case %s: got %s want %s", c->name, out, c->hex);
	}
}

static void test_hmac_sha256_rfc4231(void **state)
{
	uint8_t key1[20], key6[131];
	char out[BZ_SHA256_HEX_LEN + 1];

	(void)state;
	/* Test case 1: key = 0x0b * 20, data = "Hi There". */
	memset(key1, 0x0b, sizeof(key1));
	assert_int_equal(crypto_hmac_sha256_hex(key1, sizeof(key1), "Hi There", 8, out), 0);
	assert_string_equal(out,
			    "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");

	/* Test case 2: a key shorter than the output. */
	const char *data2 = "what do ya want for nothing?";
	assert_int_equal(crypto_hmac_sha256_hex("Jefe", 4, data2, strlen(data2), out), 0);
	assert_string_equal(out,
			    "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");

	/* Test case 6: a key longer than the block size is hashed first. */
	const char *data6 = "Test Using Larger Than Block-Size Key - Hash Key First";
	memset(key6, 0xaa, sizeof(key6));
	assert_int_equal(crypto_hmac_sha256_hex(key6, sizeof(key6), data6, strlen(data6), out), 0);
	assert_string_equal(out,
			    "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

static void test_hex(void **state)
{
	const uint8_t in[] = {0x00, 0x01, 0x7f, 0x80, 0xab, 0xff};
	char out[2 * sizeof(in) + 1];

	(void)state;
	crypto_hex(in, sizeof(in), out);
	assert_string_equal(out, "00017f80abff");
	crypto_hex(in, 0, out);
	assert_string_equal(out, "");
}

/* RFC 4648 §10 vectors (unpadded), plus bytes that exercise '-' and '_'. */
static const struct {
	const char *in;
	size_t len;
	const char *out;
} b64_cases[] = {
	{"", 0, ""},
	{"f", 1, "Zg"},
	{"fo", 2, "Zm8"},
	{"foo", 3, "Zm9v"},
	{"foob", 4, "Zm9vYg"},
	{"fooba", 5, "Zm9vYmE"},
	{"foobar", 6, "Zm9vYmFy"},
	{"\xfb\xff", 2, "-_8"},
	{"\xff\xff\xfe", 3, "___-"},
};

static void test_base64url_vectors(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(b64_cases) / sizeof(*b64_cases); i++) {
		char *enc =
			crypto_base64url_encode((const uint8_t *)b64_cases[i].in, b64_cases[i].len);
		size_t n = 99;

		assert_non_null(enc);
		assert_string_equal(enc, b64_cases[i].out);
		uint8_t *dec = crypto_base64url_decode(enc, strlen(enc), &n);
		assert_non_null(dec);
		assert_int_equal(n, b64_cases[i].len);
		assert_memory_equal(dec, b64_cases[i].in, n);
		free(dec);
		free(enc);
	}
}

static void test_base64url_round_trip(void **state)
{
	uint8_t buf[64];

	(void)state;
	/* Lengths 0..10 cover every remainder mod 3 several times; a few
	 * longer ones make sure nothing depends on short inputs. */
	for (size_t len = 0; len <= 64; len = len < 10 ? len + 1 : len * 2) {
		for (int rep = 0; rep < 8; rep++) {
			size_t n = 12345;

			assert_int_equal(crypto_random_bytes(buf, len), 0);
			char *enc = crypto_base64url_encode(buf, len);
			assert_non_null(enc);
			assert_int_equal(strlen(enc), (len * 4 + 2) / 3);
			assert_null(strpbrk(enc, "+/="));
			uint8_t *dec = crypto_base64url_decode(enc, strlen(enc), &n);
			assert_non_null(dec);
			assert_int_equal(n, len);
			if (len > 0)
				assert_memory_equal(dec, buf, len);
			free(dec);
			free(enc);
		}
	}
}

/* Inputs that are not unpadded base64url; each must decode to NULL. */
static const char *b64_bad[] = {
	"Zm9+",		     /* standard-alphabet '+' */
	"Zm9/",		     /* standard-alphabet '/' */
	"Zg==",		     /* padding */
	"Zm8=",		     /* padding */
	"Z",		     /* length 1 mod 4 can encode no bytes */
	"Zm9vY",	     /* length 5 */
	"Zm9vYmFyZ", "Zm*v", /* outside the alphabet */
	"Zm9v\n",	     /* trailing newline */
	"Zm 9v",	     /* inner space */
	"    Zm9v",	     /* leading spaces: not in the alphabet either */
	"Zm9v    ",	     /* trailing spaces */
};

static void test_base64url_rejects(void **state)
{
	unsigned failures = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(b64_bad) / sizeof(*b64_bad); i++) {
		size_t n = 0;
		uint8_t *dec = crypto_base64url_decode(b64_bad[i], strlen(b64_bad[i]), &n);

		if (dec != NULL) {
			free(dec);
			print_error("base64url_decode accepted invalid input [%s] (%zu bytes)\n",
				    b64_bad[i], n);
			failures++;
		}
	}
	/* An embedded NUL is not part of the alphabet. */
	size_t n = 0;
	assert_null(crypto_base64url_decode("Zm\0v", 4, &n));
	assert_int_equal(failures, 0);
}

static void test_ct_equal(void **state)
{
	(void)state;
	assert_int_equal(crypto_ct_equal("abc", 3, "abc", 3), 1);
	assert_int_equal(crypto_ct_equal("abc", 3, "abd", 3), 0);
	assert_int_equal(crypto_ct_equal("abc", 3, "abcd", 4), 0);
	assert_int_equal(crypto_ct_equal("abcd", 3, "abcX", 3), 1); /* only LEN bytes count */
	assert_int_equal(crypto_ct_equal("", 0, "", 0), 1);
	assert_int_equal(crypto_ct_equal("\0a", 2, "\0b", 2), 0);

	assert_int_equal(crypto_ct_streq("token", "token"), 1);
	assert_int_equal(crypto_ct_streq("token", "tokem"), 0);
	assert_int_equal(crypto_ct_streq("token", "token2"), 0);
	assert_int_equal(crypto_ct_streq("", ""), 1);
	assert_int_equal(crypto_ct_streq(NULL, "x"), 0);
	assert_int_equal(crypto_ct_streq("x", NULL), 0);
	assert_int_equal(crypto_ct_streq(NULL, NULL), 0);
}

static void test_random_uuid(void **state)
{
	char prev[37] = "";

	(void)state;
	for (int i = 0; i < 200; i++) {
		char u[37];

		memset(u, 'x', sizeof(u));
		assert_int_equal(crypto_random_uuid(u), 0);
		assert_int_equal(strlen(u), 36);
		for (int j = 0; j < 36; j++) {
			if (j == 8 || j == 13 || j == 18 || j == 23)
				assert_int_equal(u[j], '-');
			else
				assert_non_null(strchr("0123456789abcdef", u[j]));
		}
		assert_int_equal(u[14], '4');		/* version 4 */
		assert_non_null(strchr("89ab", u[19])); /* RFC 4122 variant */
		assert_string_not_equal(u, prev);
		memcpy(prev, u, sizeof(prev));
	}
}

static void test_random_hex(void **state)
{
	static const size_t sizes[] = {0, 1, 16, 32, 256};
	char a[2 * 256 + 1], b[2 * 256 + 1];

	(void)state;
	for (size_t i = 0; i < sizeof(sizes) / sizeof(*sizes); i++) {
		size_t n = sizes[i];

		assert_int_equal(crypto_random_hex(n, a), 0);
		assert_int_equal(strlen(a), 2 * n);
		assert_int_equal(strspn(a, "0123456789abcdef"), 2 * n);
		if (n >= 16) {
			assert_int_equal(crypto_random_hex(n, b), 0);
			assert_string_not_equal(a, b);
		}
	}
	/* More than the internal buffer is refused rather than overrun. */
	assert_int_equal(crypto_random_hex(257, a), BZ_ERR_CRYPTO);
}

static void test_wipe(void **state)
{
	uint8_t buf[32], zero[32] = {0};

	(void)state;
	memset(buf, 0xa5, sizeof(buf));
	crypto_wipe(buf, sizeof(buf));
	assert_memory_equal(buf, zero, sizeof(buf));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sha256_vectors),
		cmocka_unit_test(test_hmac_sha256_rfc4231),
		cmocka_unit_test(test_hex),
		cmocka_unit_test(test_base64url_vectors),
		cmocka_unit_test(test_base64url_round_trip),
		cmocka_unit_test(test_base64url_rejects),
		cmocka_unit_test(test_ct_equal),
		cmocka_unit_test(test_random_uuid),
		cmocka_unit_test(test_random_hex),
		cmocka_unit_test(test_wipe),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
