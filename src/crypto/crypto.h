/*
 * crypto.h — thin wrappers over OpenSSL libcrypto 3 for the primitives the
 * project needs: CSPRNG, SHA-256, HMAC-SHA-256, constant-time compare,
 * hex and base64url. Nothing here implements a primitive itself.
 */
#ifndef BZ_CRYPTO_H
#define BZ_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#define BZ_SHA256_LEN 32
#define BZ_SHA256_HEX_LEN 64 /* without the NUL */

/* Fills BUF with LEN bytes from OpenSSL's CSPRNG (RAND_bytes).
 * Returns 0, or BZ_ERR_CRYPTO if the generator failed. */
int crypto_random_bytes(void *buf, size_t len);

/* Writes NBYTES random bytes as lower-case hex into OUT, which must hold
 * 2*NBYTES+1 bytes (NUL-terminated). Returns 0 or BZ_ERR_CRYPTO. */
int crypto_random_hex(size_t nbytes, char *out);

/* Writes a random RFC 4122 version-4 UUID (36 chars + NUL) into OUT[37].
 * Returns 0 or BZ_ERR_CRYPTO. */
int crypto_random_uuid(char out[37]);

/* Lower-case hex of LEN bytes of IN into OUT (2*LEN+1 bytes). */
void crypto_hex(const uint8_t *in, size_t len, char *out);

/* SHA-256 (FIPS 180-4) of DATA as lower-case hex into OUT[65].
 * Returns 0 or BZ_ERR_CRYPTO. */
int crypto_sha256_hex(const void *data, size_t len, char out[BZ_SHA256_HEX_LEN + 1]);

/* HMAC-SHA-256 (RFC 2104) of DATA with KEY as lower-case hex into OUT[65].
 * Returns 0 or BZ_ERR_CRYPTO. */
int crypto_hmac_sha256_hex(const void *key, size_t keylen, const void *data, size_t len,
			   char out[BZ_SHA256_HEX_LEN + 1]);

/* Constant-time equality of two byte strings (CRYPTO_memcmp). Strings of
 * different lengths compare unequal; the length itself is not secret. */
int crypto_ct_equal(const void *a, size_t alen, const void *b, size_t blen);

/* Constant-time equality of two NUL-terminated strings; NULL never equals. */
int crypto_ct_streq(const char *a, const char *b);

/* base64url without padding (RFC 4648 §5) of IN into a malloc'd string
 * (caller frees), or NULL on allocation failure. Built on EVP_EncodeBlock. */
char *crypto_base64url_encode(const uint8_t *in, size_t len);

/* Decodes unpadded base64url IN (INLEN chars) into a malloc'd buffer (caller
 * frees) and its length in *OUTLEN. Returns NULL on invalid input. Built on
 * EVP_DecodeBlock. */
uint8_t *crypto_base64url_decode(const char *in, size_t inlen, size_t *outlen);

/* Zeroes LEN bytes at P in a way the compiler cannot elide. */
void crypto_wipe(void *p, size_t len);

#endif
