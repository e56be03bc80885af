/* Unit tests for src/crypto/aead.c: AES-256-GCM sealing round trip, the
 * format and key id, and refusal of wrong associated data, tampered bytes,
 * a wrong key and malformed input; a previous key still opens (rotation). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/err.h"
#include "crypto/aead.h"
#include "crypto/crypto.h"

static const char *uid_a = "6f1c1e0a-8f0e-4b7e-9a57-1c2d3e4f5a6b";
static const char *uid_b = "0b9d5a7e-3c2f-4d1e-8b6a-2f3e4d5c6b7a";

static void new_key(struct crypto_aead_key *k)
{
	char hex[65];

	assert_int_equal(crypto_random_hex(32, hex), 0);
	assert_int_equal(crypto_aead_key_from_hex(hex, k), 0);
}

static char *seal(const struct crypto_aead_key *k, const char *plain, const char *aad)
{
	char *s = crypto_aead_seal(k, plain, strlen(plain), aad, strlen(aad));
	assert_non_null(s);
	return s;
}

static int open1(const struct crypto_aead_key *keys, size_t n, const char *sealed, const char *aad,
		 char **plain, size_t *used)
{
	uint8_t *p = NULL;
	size_t len = 0;
	int rc = crypto_aead_open(keys, n, sealed, aad, strlen(aad), &p, &len, used);
	*plain = (char *)p;
	if (rc == 0)
		assert_int_equal(strlen(*plain), len);
	else
		assert_null(p);
	return rc;
}

static void test_round_trip_and_format(void **state)
{
	struct crypto_aead_key k;
	char *s, *s2, *plain;
	size_t used = 99;

	(void)state;
	new_key(&k);
	s = seal(&k, "12345678901234567890", uid_a);
	/* v1:<8 hex key id>:<16 chars nonce>:<ct+tag> */
	assert_int_equal(strncmp(s, "v1:", 3), 0);
	assert_memory_equal(s + 3, k.id, CRYPTO_AEAD_KEY_ID_LEN);
	assert_int_equal(s[11], ':');
	assert_int_equal(strchr(s + 12, ':') - (s + 12), 16);
	assert_null(strstr(s, "1234567890"));
	assert_int_equal(open1(&k, 1, s, uid_a, &plain, &used), 0);
	assert_string_equal(plain, "12345678901234567890");
	assert_int_equal(used, 0);
	free(plain);
	/* A fresh nonce every time. */
	s2 = seal(&k, "12345678901234567890", uid_a);
	assert_string_not_equal(s, s2);
	free(s);
	free(s2);
	/* Empty plaintext works too. */
	s = seal(&k, "", uid_a);
	assert_int_equal(open1(&k, 1, s, uid_a, &plain, NULL), 0);
	assert_string_equal(plain, "");
	free(plain);
	free(s);
	crypto_aead_key_wipe(&k);
}

static void test_wrong_aad_refused(void **state)
{
	struct crypto_aead_key k;
	char *s, *plain;

	(void)state;
	new_key(&k);
	s = seal(&k, "secret", uid_a);
	/* The sealed secret of user A moved to user B's row does not open. */
	assert_int_equal(open1(&k, 1, s, uid_b, &plain, NULL), BZ_ERR_UNAUTHORIZED);
	assert_int_equal(open1(&k, 1, s, "", &plain, NULL), BZ_ERR_UNAUTHORIZED);
	free(s);
}

static void test_tampered_byte_refused(void **state)
{
	struct crypto_aead_key k;
	char *s, *plain;

	(void)state;
	new_key(&k);
	s = seal(&k, "secret value", uid_a);
	/* Flip one character of the nonce, of the ciphertext and of the tag
	 * (never the last one: with 28 bytes it carries padding bits that a
	 * base64 decoder ignores, so it may not change a byte). */
	const char *ct = strrchr(s, ':') + 1;
	size_t positions[] = {12, (size_t)(ct - s) + 2, strlen(s) - 5};
	for (size_t i = 0; i < sizeof(positions) / sizeof(*positions); i++) {
		char *t = strdup(s);
		size_t at = positions[i];
		t[at] = t[at] == 'A' ? 'B' : 'A';
		assert_int_equal(open1(&k, 1, t, uid_a, &plain, NULL), BZ_ERR_UNAUTHORIZED);
		free(t);
	}
	free(s);
}

static void test_wrong_key_refused(void **state)
{
	struct crypto_aead_key k, other, forged;
	char *s, *plain;

	(void)state;
	new_key(&k);
	new_key(&other);
	s = seal(&k, "secret", uid_a);
	/* Another key: its id does not match. */
	assert_int_equal(open1(&other, 1, s, uid_a, &plain, NULL), BZ_ERR_INVALID);
	/* Another key carrying the same id (a colliding id): the tag fails. */
	forged = other;
	memcpy(forged.id, k.id, sizeof(k.id));
	assert_int_equal(open1(&forged, 1, s, uid_a, &plain, NULL), BZ_ERR_UNAUTHORIZED);
	free(s);
}

static void test_previous_key_opens(void **state)
{
	struct crypto_aead_key old, cur, ring[2];
	char *s, *plain;
	size_t used = 99;

	(void)state;
	new_key(&old);
	new_key(&cur);
	s = seal(&old, "rotated", uid_a);
	ring[0] = cur;
	ring[1] = old;
	assert_int_equal(open1(ring, 2, s, uid_a, &plain, &used), 0);
	assert_string_equal(plain, "rotated");
	assert_int_equal(used, 1); /* the caller re-seals under ring[0] */
	free(plain);
	assert_int_equal(open1(ring, 1, s, uid_a, &plain, NULL), BZ_ERR_INVALID);
	free(s);
}

static void test_malformed_refused(void **state)
{
	struct crypto_aead_key k;
	char *plain;
	const char *bad[] = {"",
			     "v2:00000000:AAAAAAAAAAAAAAAA:AAAAAAAAAAAAAAAAAAAAAA",
			     "v1:",
			     "v1:zzzzzzzz:AAAAAAAAAAAAAAAA:AAAAAAAAAAAAAAAAAAAAAA",
			     "v1:00000000",
			     "v1:00000000:AAAA:AAAAAAAAAAAAAAAAAAAAAA",
			     "v1:00000000:AAAAAAAAAAAAAAAA:AAAA",
			     "v1:00000000:AAAAAAAAAAAAAAAA:*"};

	(void)state;
	new_key(&k);
	memcpy(k.id, "00000000", 9);
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
		assert_int_equal(open1(&k, 1, bad[i], uid_a, &plain, NULL), BZ_ERR_INVALID);
	assert_int_equal(crypto_aead_key_from_hex("abc", &k), BZ_ERR_INVALID);
	assert_int_equal(crypto_aead_key_from_hex(
				 "g3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
				 &k),
			 BZ_ERR_INVALID);
	/* The id depends on the key only (same key, either case: same id). */
	struct crypto_aead_key a, b;
	assert_int_equal(crypto_aead_key_from_hex(
				 "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
				 &a),
			 0);
	assert_int_equal(crypto_aead_key_from_hex(
				 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
				 &b),
			 0);
	assert_string_equal(a.id, b.id);
	assert_int_equal(strlen(a.id), CRYPTO_AEAD_KEY_ID_LEN);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip_and_format),
		cmocka_unit_test(test_wrong_aad_refused),
		cmocka_unit_test(test_tampered_byte_refused),
		cmocka_unit_test(test_wrong_key_refused),
		cmocka_unit_test(test_previous_key_opens),
		cmocka_unit_test(test_malformed_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
