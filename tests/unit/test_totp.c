/* Unit tests for src/crypto/totp.c, the function the server checks codes
 * with: RFC 6238 Appendix B (SHA-1) vectors, the ±1 step window, each step
 * once, malformed codes, and base32 in every form a secret is written. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/err.h"
#include "crypto/totp.h"

/* RFC 6238 Appendix B: the SHA-1 seed is the ASCII "12345678901234567890".
 * The table lists 8-digit codes; a 6-digit code is the same value mod
 * 10^6 (RFC 4226 §5.3), i.e. the last six digits. */
static const uint8_t seed[] = "12345678901234567890";
static const struct {
	int64_t t;
	const char *totp8;
} vectors[] = {
	{59, "94287082"},	  {1111111109, "07081804"}, {1111111111, "14050471"},
	{1234567890, "89005924"}, {2000000000, "69279037"}, {20000000000, "65353130"},
};

static void test_rfc6238_vectors(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(vectors) / sizeof(*vectors); i++) {
		const char *code6 = vectors[i].totp8 + 2;
		int64_t step = -1;
		char out[7];

		assert_int_equal(crypto_totp_code(seed, 20, vectors[i].t, out), 0);
		assert_string_equal(out, code6);
		assert_int_equal(crypto_totp_check(seed, 20, vectors[i].t, -1, code6, &step), 0);
		assert_int_equal(step, vectors[i].t / 30);
	}
}

static void test_window_and_replay(void **state)
{
	int64_t t = 1234567890, step = 0, s0 = t / 30;
	char prev[7], cur[7], next[7], far[7], past[7];

	(void)state;
	assert_int_equal(crypto_totp_code(seed, 20, t - 30, prev), 0);
	assert_int_equal(crypto_totp_code(seed, 20, t, cur), 0);
	assert_int_equal(crypto_totp_code(seed, 20, t + 30, next), 0);
	assert_int_equal(crypto_totp_code(seed, 20, t + 60, far), 0);
	assert_int_equal(crypto_totp_code(seed, 20, t - 60, past), 0);
	/* ±1 step accepted, and the step found is reported. */
	assert_int_equal(crypto_totp_check(seed, 20, t, -1, prev, &step), 0);
	assert_int_equal(step, s0 - 1);
	assert_int_equal(crypto_totp_check(seed, 20, t, -1, next, &step), 0);
	assert_int_equal(step, s0 + 1);
	/* Two steps away: refused either way. */
	assert_int_equal(crypto_totp_check(seed, 20, t, -1, far, &step), BZ_ERR_UNAUTHORIZED);
	assert_int_equal(crypto_totp_check(seed, 20, t, -1, past, &step), BZ_ERR_UNAUTHORIZED);
	/* A step already used, or one before it, is refused. */
	assert_int_equal(crypto_totp_check(seed, 20, t, s0, cur, &step), BZ_ERR_UNAUTHORIZED);
	assert_int_equal(crypto_totp_check(seed, 20, t, s0, prev, &step), BZ_ERR_UNAUTHORIZED);
	assert_int_equal(crypto_totp_check(seed, 20, t, s0, next, &step), 0);
	assert_int_equal(step, s0 + 1);
	/* Another key's code is wrong. */
	assert_int_equal(crypto_totp_check((const uint8_t *)"abcdefghijabcdefghij", 20, t, -1, cur,
					   &step),
			 BZ_ERR_UNAUTHORIZED);
}

static void test_malformed_codes(void **state)
{
	const char *bad[] = {"",	"12345",   "1234567", "12345a",
			     " 123456", "123456 ", "+12345",  "94287082"};
	int64_t step;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
		assert_int_equal(crypto_totp_check(seed, 20, 59, -1, bad[i], &step),
				 BZ_ERR_UNAUTHORIZED);
	assert_int_equal(crypto_totp_check(seed, 20, 59, -1, NULL, &step), BZ_ERR_UNAUTHORIZED);
}

static void test_base32_forms(void **state)
{
	/* RFC 4648 §10 and the RFC 6238 seed in its usual base32 form. */
	const char *forms[] = {"GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ",
			       "gezdgnbvgy3tqojqgezdgnbvgy3tqojq",
			       "GEZD GNBV GY3T QOJQ GEZD GNBV GY3T QOJQ"};
	size_t n;
	uint8_t *b;
	char *e;

	(void)state;
	for (size_t i = 0; i < sizeof(forms) / sizeof(*forms); i++) {
		b = crypto_base32_decode(forms[i], &n);
		assert_non_null(b);
		assert_int_equal(n, 20);
		assert_memory_equal(b, seed, 20);
		free(b);
	}
	/* Unpadded and padded, lower and upper case: "foob" is MZXW6YQ=. */
	const char *foob[] = {"MZXW6YQ=", "MZXW6YQ", "mzxw6yq", "mzxw6yq="};
	for (size_t i = 0; i < sizeof(foob) / sizeof(*foob); i++) {
		b = crypto_base32_decode(foob[i], &n);
		assert_non_null(b);
		assert_int_equal(n, 4);
		assert_memory_equal(b, "foob", 4);
		free(b);
	}
	assert_null(crypto_base32_decode("MZ1W6YQ", &n)); /* 1 is not base32 */
	/* Encoding never pads (otpauth URIs) and round-trips. */
	e = crypto_base32_encode((const uint8_t *)"foob", 4);
	assert_string_equal(e, "MZXW6YQ");
	free(e);
	e = crypto_base32_encode(seed, 20);
	assert_string_equal(e, "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
	free(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc6238_vectors),
		cmocka_unit_test(test_window_and_replay),
		cmocka_unit_test(test_malformed_codes),
		cmocka_unit_test(test_base32_forms),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
