/*
 * totp.h — RFC 6238 TOTP codes and RFC 4648 base32, through liboath: the
 * one profile the server uses (HMAC-SHA-1, 6 digits, 30-second steps
 * counted from the Unix epoch, one step of tolerance either way).
 */
#ifndef BZ_TOTP_H
#define BZ_TOTP_H

#include <stddef.h>
#include <stdint.h>

#define CRYPTO_TOTP_SECRET_LEN 20 /* bytes: 160 bits (RFC 4226 §4 R6 recommends 160) */
#define CRYPTO_TOTP_DIGITS 6
#define CRYPTO_TOTP_STEP_S 30
#define CRYPTO_TOTP_WINDOW 1 /* steps accepted either side of now (RFC 6238 §5.2) */

/*
 * Checks the 6-digit CODE (NUL-terminated) against KEY (KEYLEN bytes) at
 * time NOW (epoch seconds): it must equal the code of step floor(NOW/30)
 * or of the step just before or after (RFC 6238 §4, §5.2), compared in
 * constant time, and that step must be greater than AFTER_STEP (the last
 * step already used; -1 for none), so a code is accepted at most once
 * (§5.2: "the verifier MUST NOT accept the second attempt of the same
 * OTP"). On success *STEP receives the matching step. Returns 0,
 * BZ_ERR_UNAUTHORIZED (wrong, malformed, out of window or already used)
 * or BZ_ERR_CRYPTO.
 */
int crypto_totp_check(const uint8_t *key, size_t keylen, int64_t now, int64_t after_step,
		      const char *code, int64_t *step);

/* The 6-digit code of KEY at time NOW into OUT[7]. Returns 0 or
 * BZ_ERR_CRYPTO. For tests and tools; the server only checks codes. */
int crypto_totp_code(const uint8_t *key, size_t keylen, int64_t now, char out[7]);

/* Base32 (RFC 4648 §6) of IN (INLEN bytes) without '=' padding into a
 * malloc'd string (caller frees), or NULL. */
char *crypto_base32_encode(const uint8_t *in, size_t inlen);

/* Decodes base32 IN (upper or lower case, padded or not, blanks ignored)
 * into a malloc'd buffer (caller wipes and frees) of *OUTLEN bytes, or
 * NULL when IN is not base32. */
uint8_t *crypto_base32_decode(const char *in, size_t *outlen);

#endif
