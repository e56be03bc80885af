/*
 * aead.h — AES-256-GCM sealing of small secrets at rest (OpenSSL EVP), in
 * a self-describing text form that names the key, so a key can rotate:
 *
 *     v1:<key id>:<nonce>:<ciphertext and tag>
 *
 * <key id> is 8 lower-case hex digits derived from the key (HMAC-SHA-256
 * of a fixed label under the key, so it reveals nothing about the key),
 * <nonce> the 12-byte random IV and <ciphertext and tag> the ciphertext
 * followed by the 16-byte GCM tag, both base64url without padding
 * (RFC 4648 §5). Associated data (e.g. the owner's id) is authenticated
 * but not stored: a sealed value moved to another owner does not open.
 *
 * The format of TOTP and webhook secrets written before migration 0017:
 * new values are crypto/envelope.h's "enc:v1:" (docs/encryption.md), and
 * this one is only opened (and re-sealed in the new form). crypto_aead_gcm
 * is the AES-256-GCM pass both formats use.
 */
#ifndef BZ_AEAD_H
#define BZ_AEAD_H

#include <stddef.h>
#include <stdint.h>

#define CRYPTO_AEAD_KEY_LEN 32	   /* AES-256 */
#define CRYPTO_AEAD_KEY_ID_LEN 8   /* hex digits, without the NUL */
#define CRYPTO_AEAD_MAX_PLAIN 4096 /* bytes a sealed value may hold */
#define CRYPTO_AEAD_NONCE_LEN 12   /* 96-bit GCM IV (NIST SP 800-38D §8.2) */
#define CRYPTO_AEAD_TAG_LEN 16	   /* 128-bit GCM tag */

/* A key and its id. Wipe with crypto_aead_key_wipe() when done. */
struct crypto_aead_key {
	uint8_t key[CRYPTO_AEAD_KEY_LEN];
	char id[CRYPTO_AEAD_KEY_ID_LEN + 1];
};

/* Reads KEY_HEX (exactly 64 hex digits, either case) into OUT and derives
 * its id. Returns 0, BZ_ERR_INVALID (not 64 hex digits) or BZ_ERR_CRYPTO. */
int crypto_aead_key_from_hex(const char *key_hex, struct crypto_aead_key *out);

/* Zeroes K. */
void crypto_aead_key_wipe(struct crypto_aead_key *k);

/*
 * One AES-256-GCM pass with OpenSSL EVP: encrypts (ENC 1) or decrypts
 * (ENC 0) IN (INLEN bytes) into OUT (INLEN bytes) under the 32-byte KEY with
 * the CRYPTO_AEAD_NONCE_LEN-byte NONCE and AAD (AADLEN bytes, may be NULL
 * when 0), writing or checking the CRYPTO_AEAD_TAG_LEN-byte TAG. Shared by
 * this format and crypto/envelope.h. Returns 0, BZ_ERR_UNAUTHORIZED (tag
 * mismatch on decryption; OUT must then be discarded) or BZ_ERR_CRYPTO.
 */
int crypto_aead_gcm(int enc, const uint8_t *key, const uint8_t *nonce, const void *aad,
		    size_t aadlen, const uint8_t *in, size_t inlen, uint8_t *out, uint8_t *tag);

/*
 * Seals PLAIN (PLAINLEN bytes, at most CRYPTO_AEAD_MAX_PLAIN) under KEY with
 * associated data AAD (AADLEN bytes; may be NULL when 0) and a fresh random
 * 96-bit nonce (NIST SP 800-38D §8.2.2). Returns the "v1:…" string,
 * malloc'd (caller frees), or NULL (bad length, allocation or OpenSSL
 * failure).
 */
char *crypto_aead_seal(const struct crypto_aead_key *key, const void *plain, size_t plainlen,
		       const void *aad, size_t aadlen);

/*
 * Opens SEALED (from crypto_aead_seal()) with whichever of KEYS (NKEYS
 * entries; typically the current key first, then the previous one) its key
 * id names, checking the tag over the ciphertext and AAD. On success
 * *PLAIN is a malloc'd buffer of *PLAINLEN bytes (caller wipes and frees;
 * one spare NUL byte follows it) and *USED (when non-NULL) the index in
 * KEYS of the key that opened it, so a caller can re-seal under KEYS[0]
 * when it is not 0. Returns 0, BZ_ERR_INVALID (not this format, or no key
 * of that id), BZ_ERR_UNAUTHORIZED (the tag does not verify: wrong AAD,
 * tampered bytes or a different key with a colliding id), BZ_ERR_NOMEM or
 * BZ_ERR_CRYPTO.
 */
int crypto_aead_open(const struct crypto_aead_key *keys, size_t nkeys, const char *sealed,
		     const void *aad, size_t aadlen, uint8_t **plain, size_t *plainlen,
		     size_t *used);

#endif
