/*
 * fuzz_envelope.c — "enc:v1:" values and keyring lists (src/crypto/
 * envelope.c): what a tampered database row or a bad APP_ENCRYPTION_KEYRING
 * reaches.
 *
 * Properties: opening any string never crashes and never succeeds unless
 * the tag verifies (for fuzz input: only the corpus's real value); a
 * keyring list is accepted or refused, never half-loaded (a refusal leaves
 * the ring empty); the input sealed under the ring opens to itself with the
 * same associated data and to nothing with another.
 */
#include "common/err.h"
#include "crypto/envelope.h"
#include "fuzz.h"

#define K1 "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
#define K2 "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100"
#define AAD "sites.settings_enc:6f1c1e0a-8f0e-4b7e-9a57-1c2d3e4f5a6b"

static struct crypto_keyring ring;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	return crypto_keyring_load(&ring, K1, "k1", "k2:" K2, NULL) == 0 ? 0 : 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct crypto_keyring kr;
	uint8_t *plain = NULL;
	size_t len = 0, used = 0;
	char *s = fuzz_cstr(data, size);

	if (s != NULL) {
		int rc = crypto_env_open(&ring, s, AAD, &plain, &len, &used);
		FUZZ_ASSERT(rc == 0 || plain == NULL);
		FUZZ_ASSERT(rc != 0 || (len <= CRYPTO_ENV_MAX_PLAIN && used < ring.n));
		free(plain);
		rc = crypto_keyring_load(&kr, K1, NULL, s, NULL);
		FUZZ_ASSERT(rc == 0 ? kr.n >= 1 && kr.n <= CRYPTO_ENV_MAX_KEYS : kr.n == 0);
		crypto_keyring_wipe(&kr);
		free(s);
	}
	if (size <= CRYPTO_ENV_MAX_PLAIN) {
		char *sealed = crypto_env_seal(&ring, data, size, AAD);
		FUZZ_ASSERT(sealed != NULL);
		FUZZ_ASSERT(crypto_env_open(&ring, sealed, AAD, &plain, &len, &used) == 0);
		FUZZ_ASSERT(len == size && used == 0 && memcmp(plain, data, size) == 0);
		free(plain);
		FUZZ_ASSERT(crypto_env_open(&ring, sealed, AAD "x", &plain, &len, NULL) ==
			    BZ_ERR_UNAUTHORIZED);
		free(sealed);
	}
	return 0;
}
