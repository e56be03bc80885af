/*
 * fuzz_base64url.c — base64url (crypto_base64url_decode/encode in
 * src/crypto/crypto.c), the first thing a JWT's bytes go through.
 *
 * Properties: encode then decode gives the input back; what decodes
 * re-encodes to a string that decodes to the same bytes; decoded output is
 * never longer than 3/4 of the input.
 */
#include "crypto/crypto.h"
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t n = 0, n2 = 0;
	uint8_t *dec = crypto_base64url_decode((const char *)data, size, &n), *dec2;
	char *enc;

	if (dec != NULL) {
		FUZZ_ASSERT(n <= size / 4 * 3 + 2);
		enc = crypto_base64url_encode(dec, n);
		FUZZ_ASSERT(enc != NULL);
		dec2 = crypto_base64url_decode(enc, strlen(enc), &n2);
		FUZZ_ASSERT(dec2 != NULL && n2 == n && memcmp(dec, dec2, n) == 0);
		free(dec2);
		free(enc);
		free(dec);
	}
	/* The raw bytes as data to encode. */
	enc = crypto_base64url_encode(data, size);
	FUZZ_ASSERT(enc != NULL);
	FUZZ_ASSERT(strlen(enc) == (size * 4 + 2) / 3);
	dec = crypto_base64url_decode(enc, strlen(enc), &n);
	FUZZ_ASSERT(dec != NULL && n == size && memcmp(dec, data, size) == 0);
	free(dec);
	free(enc);
	return 0;
}
