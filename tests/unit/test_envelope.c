/* Unit tests for src/crypto/envelope.c and the pure parts of
 * src/server/settings/: the "enc:v1:<key id>:<base64url>" format, a 96-bit
 * nonce and 16-byte tag, associated data binding a value to its table,
 * column and row, the keyring rules (ids, duplicates), and refusal of a
 * wrong key, an unknown key id, a tampered tag and truncated values;
 * merge patch (RFC 7396) and redaction of secret members. */
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
#include "crypto/envelope.h"
#include "server/settings/settings.h"

#define K1 "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
#define K2 "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100"
#define K3 "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"

static const char *aad_a = "partners.settings_enc:6f1c1e0a-8f0e-4b7e-9a57-1c2d3e4f5a6b";
static const char *aad_b = "partners.settings_enc:0b9d5a7e-3c2f-4d1e-8b6a-2f3e4d5c6b7a";
static const char *aad_col = "sites.settings_enc:6f1c1e0a-8f0e-4b7e-9a57-1c2d3e4f5a6b";

static void ring(struct crypto_keyring *kr, const char *hex, const char *id, const char *prev)
{
	const char *why = NULL;
	assert_int_equal(crypto_keyring_load(kr, hex, id, prev, &why), 0);
}

/* Opens SEALED and returns the error; *OUT gets the plaintext (freed by
 * the caller) on success. */
static int open1(const struct crypto_keyring *kr, const char *sealed, const char *aad, char **out,
		 size_t *used)
{
	uint8_t *p = NULL;
	size_t len = 0;
	int rc = crypto_env_open(kr, sealed, aad, &p, &len, used);
	if (rc != 0)
		assert_null(p);
	else
		assert_int_equal(strlen((char *)p), len);
	*out = (char *)p;
	return rc;
}

static void test_format_and_round_trip(void **state)
{
	struct crypto_keyring kr;
	char *s, *s2, *plain, id[CRYPTO_ENV_KEY_ID_MAX + 1];
	size_t used = 9, rawlen = 0;
	(void)state;

	ring(&kr, K1, "k-2026_01", NULL);
	s = crypto_env_seal(&kr, "{\"a\":1}", 7, aad_a);
	assert_non_null(s);
	assert_int_equal(strncmp(s, "enc:v1:k-2026_01:", 17), 0);
	assert_int_equal(crypto_env_key_id(s, id), 0);
	assert_string_equal(id, "k-2026_01");
	/* base64url without padding: nonce (12) ‖ ciphertext (7) ‖ tag (16). */
	const char *b64 = s + 17;
	assert_int_equal(strspn(b64,
				"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
			 strlen(b64));
	uint8_t *raw = crypto_base64url_decode(b64, strlen(b64), &rawlen);
	assert_non_null(raw);
	assert_int_equal(rawlen, 12 + 7 + 16);
	free(raw);
	assert_null(strstr(s, "\"a\""));
	assert_int_equal(open1(&kr, s, aad_a, &plain, &used), 0);
	assert_string_equal(plain, "{\"a\":1}");
	assert_int_equal(used, 0);
	free(plain);
	/* A fresh nonce each time. */
	s2 = crypto_env_seal(&kr, "{\"a\":1}", 7, aad_a);
	assert_string_not_equal(s, s2);
	free(s);
	free(s2);
	crypto_keyring_wipe(&kr);
}

static void test_aad_binds_row_and_column(void **state)
{
	struct crypto_keyring kr;
	char *s, *plain;
	(void)state;

	ring(&kr, K1, "k1", NULL);
	s = crypto_env_seal(&kr, "secret", 6, aad_a);
	assert_int_equal(open1(&kr, s, aad_b, &plain, NULL), BZ_ERR_UNAUTHORIZED);
	assert_int_equal(open1(&kr, s, aad_col, &plain, NULL), BZ_ERR_UNAUTHORIZED);
	assert_int_equal(open1(&kr, s, "", &plain, NULL), BZ_ERR_UNAUTHORIZED);
	free(s);
	crypto_keyring_wipe(&kr);
}

static void test_wrong_and_unknown_key(void **state)
{
	struct crypto_keyring a, b, c;
	char *s, *plain;
	(void)state;

	ring(&a, K1, "k1", NULL);
	ring(&b, K2, "k1", NULL); /* same id, other key */
	ring(&c, K2, "k2", NULL);
	s = crypto_env_seal(&a, "x", 1, aad_a);
	assert_int_equal(open1(&b, s, aad_a, &plain, NULL), BZ_ERR_UNAUTHORIZED);
	assert_int_equal(open1(&c, s, aad_a, &plain, NULL), BZ_ERR_NOT_FOUND);
	assert_string_equal(crypto_env_error_name(BZ_ERR_NOT_FOUND), "unknown_key");
	assert_string_equal(crypto_env_error_name(BZ_ERR_UNAUTHORIZED), "tag_mismatch");
	free(s);
	crypto_keyring_wipe(&a);
	crypto_keyring_wipe(&b);
	crypto_keyring_wipe(&c);
}

static void test_previous_key_opens_active_seals(void **state)
{
	struct crypto_keyring old, now;
	char *s, *s2, *plain;
	size_t used = 0;
	(void)state;

	ring(&old, K1, "k1", NULL);
	ring(&now, K2, "k2", "k1:" K1 "," K3);
	assert_int_equal(now.n, 3);
	assert_string_equal(now.k[0].id, "k2");
	assert_int_equal(strlen(now.k[2].id), 8); /* bare hex: named by fingerprint */
	s = crypto_env_seal(&old, "v", 1, aad_a);
	assert_int_equal(open1(&now, s, aad_a, &plain, &used), 0);
	assert_int_equal(used, 1);
	free(plain);
	s2 = crypto_env_seal(&now, "v", 1, aad_a);
	assert_int_equal(strncmp(s2, "enc:v1:k2:", 10), 0);
	free(s);
	free(s2);
	crypto_keyring_wipe(&old);
	crypto_keyring_wipe(&now);
}

static void test_tampered_and_truncated(void **state)
{
	struct crypto_keyring kr;
	char *s, *plain;
	(void)state;

	ring(&kr, K1, "k1", NULL);
	s = crypto_env_seal(&kr, "hello world", 11, aad_a);
	size_t n = strlen(s);
	/* Flip a character of the tag (the last one). */
	char *t = strdup(s);
	t[n - 2] = t[n - 2] == 'A' ? 'B' : 'A';
	assert_int_equal(open1(&kr, t, aad_a, &plain, NULL), BZ_ERR_UNAUTHORIZED);
	/* A flipped ciphertext byte. */
	memcpy(t, s, n + 1);
	t[10 + 17] = t[10 + 17] == 'A' ? 'B' : 'A';
	assert_int_equal(open1(&kr, t, aad_a, &plain, NULL), BZ_ERR_UNAUTHORIZED);
	/* Truncated: too short for nonce and tag, then a cut tag. */
	memcpy(t, s, n + 1);
	t[10 + 20] = '\0';
	assert_int_equal(open1(&kr, t, aad_a, &plain, NULL), BZ_ERR_INVALID);
	memcpy(t, s, n + 1);
	t[n - 4] = '\0';
	assert_true(open1(&kr, t, aad_a, &plain, NULL) != 0);
	/* Not the format. */
	const char *bad[] = {
		"",	      "enc:v1:",      "enc:v1:k1",	 "enc:v1:k1:",	   "enc:v2:k1:AAAA",
		"v1:k1:AAAA", "enc:v1::AAAA", "enc:v1:k 1:AAAA", "enc:v1:k1:!!!!", "plaintext"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
		assert_int_equal(open1(&kr, bad[i], aad_a, &plain, NULL), BZ_ERR_INVALID);
	free(t);
	free(s);
	crypto_keyring_wipe(&kr);
}

static void test_keyring_rules(void **state)
{
	struct crypto_keyring kr;
	const char *why;
	(void)state;

	assert_int_equal(crypto_keyring_load(&kr, K1, "bad id", NULL, &why), BZ_ERR_INVALID);
	assert_non_null(why);
	assert_int_equal(crypto_keyring_load(&kr, K1, "k1", "k1:" K2, &why), BZ_ERR_INVALID);
	assert_non_null(strstr(why, "same id"));
	assert_int_equal(crypto_keyring_load(&kr, K1, "k1", "k2:" K1, &why), BZ_ERR_INVALID);
	assert_non_null(strstr(why, "twice"));
	assert_int_equal(crypto_keyring_load(&kr, K1, "k1", "k2:abcd", &why), BZ_ERR_INVALID);
	assert_int_equal(crypto_keyring_load(&kr, K1, "k1", "k2:" K2 ",", &why), BZ_ERR_INVALID);
	assert_int_equal(crypto_keyring_load(&kr, "zz", "k1", NULL, &why), BZ_ERR_INVALID);
	assert_int_equal(crypto_keyring_load(&kr, K1, "012345678901234567890123456789012", NULL,
					     &why),
			 BZ_ERR_INVALID);
	assert_int_equal(crypto_keyring_load(&kr, K1, "01234567890123456789012345678901", NULL,
					     &why),
			 0);
	assert_int_equal(kr.n, 1);
	crypto_keyring_wipe(&kr);
	assert_true(crypto_env_key_id_valid("A-z_9"));
	assert_false(crypto_env_key_id_valid(""));
	assert_false(crypto_env_key_id_valid("a:b"));
}

static void test_merge_patch_rfc7396(void **state)
{
	/* RFC 7396 appendix A examples (a selection). */
	static const char *cases[][3] = {
		{"{\"a\":\"b\"}", "{\"a\":\"c\"}", "{\"a\":\"c\"}"},
		{"{\"a\":\"b\"}", "{\"b\":\"c\"}", "{\"a\":\"b\",\"b\":\"c\"}"},
		{"{\"a\":\"b\"}", "{\"a\":null}", "{}"},
		{"{\"a\":\"b\",\"b\":\"c\"}", "{\"a\":null}", "{\"b\":\"c\"}"},
		{"{\"a\":[\"b\"]}", "{\"a\":\"c\"}", "{\"a\":\"c\"}"},
		{"{\"a\":{\"b\":\"c\"}}", "{\"a\":{\"b\":\"d\",\"c\":null}}",
		 "{\"a\":{\"b\":\"d\"}}"},
		{"{\"a\":[{\"b\":\"c\"}]}", "{\"a\":[1]}", "{\"a\":[1]}"},
		{"{}", "{\"a\":{\"bb\":{\"ccc\":null}}}", "{\"a\":{\"bb\":{}}}"},
	};
	(void)state;

	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		json_t *t = json_loads(cases[i][0], 0, NULL), *p = json_loads(cases[i][1], 0, NULL);
		json_t *want = json_loads(cases[i][2], 0, NULL);
		json_t *got = settings_merge_patch(t, p);
		assert_true(json_equal(got, want));
		json_decref(t);
		json_decref(p);
		json_decref(want);
		json_decref(got);
	}
}

static void test_redaction(void **state)
{
	json_t *in = json_loads("{\"smtpPassword\":\"hunter2hunter2\",\"apiKey\":\"k\",\"Token\":7,"
				"\"nested\":{\"clientSecret\":{\"x\":1},\"host\":\"mail\"},"
				"\"list\":[{\"accessToken\":\"t\"}],\"gone_secret\":null,\"n\":1}",
				0, NULL);
	json_t *out = settings_redact(in);
	char *s = json_dumps(out, JSON_SORT_KEYS | JSON_COMPACT);
	(void)state;

	assert_string_equal(
		s, "{\"Token\":\"[REDACTED]\",\"apiKey\":\"[REDACTED]\","
		   "\"gone_secret\":null,\"list\":[{\"accessToken\":\"[REDACTED]\"}],"
		   "\"n\":1,\"nested\":{\"clientSecret\":\"[REDACTED]\",\"host\":\"mail\"},"
		   "\"smtpPassword\":\"[REDACTED]\"}");
	assert_true(settings_name_is_secret("MONKEY"));
	assert_false(settings_name_is_secret("hostname"));
	/* Word parts anywhere, any case (docs/encryption.md "Audit"). */
	static const char *const more[] = {"pass",	  "smtpPass", "PWD",	     "ftp_pwd",
					   "auth",	  "X-Auth",   "dsn",	     "databaseDsn",
					   "privateCert", "CERT_PEM", "credentials", "passphrase"};
	for (size_t i = 0; i < sizeof(more) / sizeof(*more); i++)
		assert_true(settings_name_is_secret(more[i]));
	assert_false(settings_name_is_secret("region"));
	assert_false(settings_name_is_secret("tz"));
	free(s);
	json_decref(in);
	json_decref(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_format_and_round_trip),
		cmocka_unit_test(test_aad_binds_row_and_column),
		cmocka_unit_test(test_wrong_and_unknown_key),
		cmocka_unit_test(test_previous_key_opens_active_seals),
		cmocka_unit_test(test_tampered_and_truncated),
		cmocka_unit_test(test_keyring_rules),
		cmocka_unit_test(test_merge_patch_rfc7396),
		cmocka_unit_test(test_redaction),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
