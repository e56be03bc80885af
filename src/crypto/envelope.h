/*
 * envelope.h — AES-256-GCM values at rest under a named key of a keyring
 * (OpenSSL EVP through crypto_aead_gcm()), in the text form
 *
 *     enc:v1:<key id>:<base64url(nonce ‖ ciphertext ‖ tag)>
 *
 * <key id> names the key that sealed the value ([A-Za-z0-9_-]{1,32}, given
 * by the operator: APP_ENCRYPTION_KEY_ID and APP_ENCRYPTION_KEYRING), the
 * nonce is 12 random bytes (RAND_bytes; NIST SP 800-38D §8.2.2), the tag 16
 * bytes, base64url without padding (RFC 4648 §5; OpenSSL's EVP_EncodeBlock
 * with the url alphabet swapped in, crypto.h). The associated data, by
 * convention "<table>.<column>:<row id>", is authenticated but not stored,
 * so a value copied to another row or column does not open.
 * docs/encryption.md describes the format, the keys and rotation.
 */
#ifndef BZ_ENVELOPE_H
#define BZ_ENVELOPE_H

#include <stddef.h>
#include <stdint.h>

#include "crypto/aead.h"

#define CRYPTO_ENV_PREFIX "enc:v1:"
#define CRYPTO_ENV_KEY_ID_MAX 32	 /* bytes of a key id, without the NUL */
#define CRYPTO_ENV_MAX_KEYS 8		 /* the active key and up to 7 previous ones */
#define CRYPTO_ENV_MAX_PLAIN (64 * 1024) /* bytes a sealed value may hold */

/* One named key. */
struct crypto_env_key {
	char id[CRYPTO_ENV_KEY_ID_MAX + 1];
	uint8_t key[CRYPTO_AEAD_KEY_LEN];
	/* crypto_aead's id of the key (8 hex digits), to open "v1:" values */
	char fingerprint[CRYPTO_AEAD_KEY_ID_LEN + 1];
};

/* The keys a process knows: k[0] is the active key (seals and opens), the
 * others open only. Wipe with crypto_keyring_wipe(). */
struct crypto_keyring {
	size_t n;
	struct crypto_env_key k[CRYPTO_ENV_MAX_KEYS];
};

/* 1 if ID is a valid key id: 1..CRYPTO_ENV_KEY_ID_MAX bytes of
 * [A-Za-z0-9_-], else 0. */
int crypto_env_key_id_valid(const char *id);

/*
 * Builds KR from the active key ACTIVE_HEX (64 hex digits) named ACTIVE_ID
 * (NULL or "": the key's fingerprint, the 8 hex digits crypto_aead derives)
 * and RING (NULL or "": none), the previous keys for decryption only, as a
 * comma-separated list of "id:hex" (or bare "hex", named by fingerprint)
 * entries. Rules: every id valid (crypto_env_key_id_valid), no id twice, no
 * key twice (the active key included), at most CRYPTO_ENV_MAX_KEYS keys.
 * Returns 0, or BZ_ERR_INVALID with *WHY (when non-NULL) a static sentence
 * naming the rule broken (never a key), or BZ_ERR_CRYPTO. KR is wiped on
 * failure.
 */
int crypto_keyring_load(struct crypto_keyring *kr, const char *active_hex, const char *active_id,
			const char *ring, const char **why);

/* Zeroes KR. */
void crypto_keyring_wipe(struct crypto_keyring *kr);

/* The index in KR of the key named ID, or -1. */
int crypto_keyring_find(const struct crypto_keyring *kr, const char *id);

/*
 * Seals PLAIN (PLAINLEN bytes, at most CRYPTO_ENV_MAX_PLAIN) under KR's
 * active key with associated data AAD (a NUL-terminated string) and a fresh
 * random 96-bit nonce. Returns the "enc:v1:…" string, malloc'd (caller
 * frees), or NULL (empty keyring, bad length, allocation or OpenSSL
 * failure).
 */
char *crypto_env_seal(const struct crypto_keyring *kr, const void *plain, size_t plainlen,
		      const char *aad);

/* Copies the key id of SEALED into ID (CRYPTO_ENV_KEY_ID_MAX + 1 bytes).
 * Returns 0 or BZ_ERR_INVALID (not "enc:v1:<valid id>:…"). */
int crypto_env_key_id(const char *sealed, char id[CRYPTO_ENV_KEY_ID_MAX + 1]);

/*
 * Opens SEALED (from crypto_env_seal()) with the key of KR its id names,
 * checking the tag over ciphertext and AAD. On success *PLAIN is a malloc'd
 * buffer of *PLAINLEN bytes followed by one NUL (caller wipes and frees) and
 * *USED (when non-NULL) the index of the key in KR. Returns 0,
 * BZ_ERR_INVALID (not this format, or truncated: too short for nonce and
 * tag), BZ_ERR_NOT_FOUND (no key of that id in KR), BZ_ERR_UNAUTHORIZED
 * (the tag does not verify: other AAD, tampered bytes or another key under
 * the same id), BZ_ERR_NOMEM or BZ_ERR_CRYPTO. Never returns unverified
 * bytes.
 */
int crypto_env_open(const struct crypto_keyring *kr, const char *sealed, const char *aad,
		    uint8_t **plain, size_t *plainlen, size_t *used);

/* A short static name of an error of crypto_env_open() for logs and
 * reports: "malformed", "unknown_key", "tag_mismatch", "error". */
const char *crypto_env_error_name(int err);

#endif
