/*
 * totp.c — TOTP and base32 (totp.h) on liboath. liboath computes the
 * codes and searches the window; this file only pins the profile, makes
 * the comparison constant-time and enforces "each step once".
 */
#include "crypto/totp.h"

#include <liboath/oath.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "crypto/crypto.h"

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_rc;

static void init(void)
{
	init_rc = oath_init();
}

static int ready(void)
{
	pthread_once(&init_once, init);
	return init_rc == OATH_OK ? 0 : BZ_ERR_CRYPTO;
}

/* liboath's comparison callback: 0 when equal, like strcmp. Constant
 * time over the code's length, which is public (6). */
static int ct_cmp(void *handle, const char *candidate)
{
	return crypto_ct_streq(handle, candidate) ? 0 : 1;
}

static int six_digits(const char *code)
{
	return code != NULL && strlen(code) == CRYPTO_TOTP_DIGITS &&
	       strspn(code, "0123456789") == CRYPTO_TOTP_DIGITS;
}

int crypto_totp_check(const uint8_t *key, size_t keylen, int64_t now, int64_t after_step,
		      const char *code, int64_t *step)
{
	uint64_t counter = 0;
	int pos = 0, rc;

	if (ready() != 0)
		return BZ_ERR_CRYPTO;
	if (!six_digits(code) || now < CRYPTO_TOTP_STEP_S)
		return BZ_ERR_UNAUTHORIZED;
	rc = oath_totp_validate3_callback((const char *)key, keylen, (time_t)now,
					  CRYPTO_TOTP_STEP_S, 0, CRYPTO_TOTP_DIGITS,
					  CRYPTO_TOTP_WINDOW, &pos, &counter, ct_cmp, (void *)code);
	if (rc < 0)
		return rc == OATH_INVALID_OTP ? BZ_ERR_UNAUTHORIZED : BZ_ERR_CRYPTO;
	if (counter > INT64_MAX || (int64_t)counter <= after_step)
		return BZ_ERR_UNAUTHORIZED;
	*step = (int64_t)counter;
	return 0;
}

int crypto_totp_code(const uint8_t *key, size_t keylen, int64_t now, char out[7])
{
	if (ready() != 0 || now < 0)
		return BZ_ERR_CRYPTO;
	if (oath_totp_generate((const char *)key, keylen, (time_t)now, CRYPTO_TOTP_STEP_S, 0,
			       CRYPTO_TOTP_DIGITS, out) != OATH_OK)
		return BZ_ERR_CRYPTO;
	return 0;
}

char *crypto_base32_encode(const uint8_t *in, size_t inlen)
{
	char *out = NULL;
	size_t outlen = 0;

	if (ready() != 0 || oath_base32_encode((const char *)in, inlen, &out, &outlen) != OATH_OK)
		return NULL;
	/* otpauth URIs carry the secret without padding (Key Uri Format). */
	while (outlen > 0 && out[outlen - 1] == '=')
		out[--outlen] = '\0';
	return out;
}

uint8_t *crypto_base32_decode(const char *in, size_t *outlen)
{
	char *out = NULL;

	*outlen = 0;
	if (in == NULL || ready() != 0)
		return NULL;
	if (oath_base32_decode(in, strlen(in), &out, outlen) != OATH_OK) {
		if (out != NULL) {
			OPENSSL_cleanse(out, *outlen);
			free(out);
		}
		*outlen = 0;
		return NULL;
	}
	return (uint8_t *)out;
}
