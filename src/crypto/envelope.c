/*
 * envelope.c — "enc:v1:" values under a keyring (envelope.h). AES-256-GCM
 * is OpenSSL's (crypto_aead_gcm), the nonce RAND_bytes', base64url
 * OpenSSL's EVP_EncodeBlock with the url alphabet (crypto.h).
 */
#include "crypto/envelope.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "crypto/crypto.h"

#define NONCE_LEN CRYPTO_AEAD_NONCE_LEN
#define TAG_LEN CRYPTO_AEAD_TAG_LEN
#define ID_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"

int crypto_env_key_id_valid(const char *id)
{
	size_t n = id == NULL ? 0 : strlen(id);

	return n >= 1 && n <= CRYPTO_ENV_KEY_ID_MAX && strspn(id, ID_CHARS) == n;
}

void crypto_keyring_wipe(struct crypto_keyring *kr)
{
	OPENSSL_cleanse(kr, sizeof(*kr));
}

int crypto_keyring_find(const struct crypto_keyring *kr, const char *id)
{
	for (size_t i = 0; i < kr->n; i++)
		if (strcmp(kr->k[i].id, id) == 0)
			return (int)i;
	return -1;
}

/* Appends the key HEX named ID (NULL: its fingerprint) to KR after the
 * rules of crypto_keyring_load(). */
static int add_key(struct crypto_keyring *kr, const char *hex, const char *id, const char **why)
{
	struct crypto_aead_key ak;
	int rc;

	if (kr->n == CRYPTO_ENV_MAX_KEYS) {
		*why = "too many keys (at most 8, the active one included)";
		return BZ_ERR_INVALID;
	}
	if ((rc = crypto_aead_key_from_hex(hex, &ak)) != 0) {
		*why = "a key is not 64 hex digits (32 bytes)";
		return rc;
	}
	if (id == NULL)
		id = ak.id;
	if (!crypto_env_key_id_valid(id)) {
		crypto_aead_key_wipe(&ak);
		*why = "a key id is not 1 to 32 characters of A-Z, a-z, 0-9, '_' and '-'";
		return BZ_ERR_INVALID;
	}
	for (size_t i = 0; i < kr->n; i++) {
		if (strcmp(kr->k[i].id, id) == 0 ||
		    crypto_ct_equal(kr->k[i].key, CRYPTO_AEAD_KEY_LEN, ak.key,
				    CRYPTO_AEAD_KEY_LEN)) {
			crypto_aead_key_wipe(&ak);
			*why = strcmp(kr->k[i].id, id) == 0 ? "two keys have the same id"
							    : "the same key is listed twice";
			return BZ_ERR_INVALID;
		}
	}
	struct crypto_env_key *k = &kr->k[kr->n++];
	memcpy(k->key, ak.key, sizeof(k->key));
	memcpy(k->fingerprint, ak.id, sizeof(k->fingerprint));
	snprintf(k->id, sizeof(k->id), "%s", id);
	crypto_aead_key_wipe(&ak);
	return 0;
}

/* Adds one RING entry ("id:hex" or "hex", LEN bytes at E) to KR. */
static int add_entry(struct crypto_keyring *kr, const char *e, size_t len, const char **why)
{
	char buf[CRYPTO_ENV_KEY_ID_MAX + 2 * CRYPTO_AEAD_KEY_LEN + 2];
	char *colon;
	int rc;

	if (len == 0 || len >= sizeof(buf)) {
		*why = "an entry is not id:hex (an id of 1 to 32 characters, a 64-digit hex key)";
		return BZ_ERR_INVALID;
	}
	memcpy(buf, e, len);
	buf[len] = '\0';
	colon = strchr(buf, ':');
	if (colon != NULL)
		*colon = '\0';
	rc = add_key(kr, colon != NULL ? colon + 1 : buf, colon != NULL ? buf : NULL, why);
	OPENSSL_cleanse(buf, sizeof(buf));
	return rc;
}

int crypto_keyring_load(struct crypto_keyring *kr, const char *active_hex, const char *active_id,
			const char *ring, const char **why)
{
	const char *dummy;
	int rc;

	if (why == NULL)
		why = &dummy;
	*why = NULL;
	memset(kr, 0, sizeof(*kr));
	if (active_id != NULL && active_id[0] == '\0')
		active_id = NULL;
	rc = add_key(kr, active_hex, active_id, why);
	while (rc == 0 && ring != NULL && *ring != '\0') {
		size_t len = strcspn(ring, ",");
		rc = add_entry(kr, ring, len, why);
		ring += len;
		if (rc == 0 && *ring == ',' && *++ring == '\0') {
			*why = "an entry of the list is empty";
			rc = BZ_ERR_INVALID;
		}
	}
	if (rc != 0)
		crypto_keyring_wipe(kr);
	return rc;
}

char *crypto_env_seal(const struct crypto_keyring *kr, const void *plain, size_t plainlen,
		      const char *aad)
{
	size_t blen = NONCE_LEN + plainlen + TAG_LEN;
	uint8_t *buf;
	char *b64 = NULL, *out = NULL;

	if (kr->n == 0 || plainlen > CRYPTO_ENV_MAX_PLAIN || (buf = malloc(blen)) == NULL)
		return NULL;
	if (crypto_random_bytes(buf, NONCE_LEN) != 0 ||
	    crypto_aead_gcm(1, kr->k[0].key, buf, aad, strlen(aad), plain, plainlen,
			    buf + NONCE_LEN, buf + NONCE_LEN + plainlen) != 0)
		goto out;
	if ((b64 = crypto_base64url_encode(buf, blen)) == NULL)
		goto out;
	size_t cap = strlen(CRYPTO_ENV_PREFIX) + strlen(kr->k[0].id) + 1 + strlen(b64) + 1;
	if ((out = malloc(cap)) != NULL)
		snprintf(out, cap, CRYPTO_ENV_PREFIX "%s:%s", kr->k[0].id, b64);
out:
	OPENSSL_cleanse(buf, blen);
	free(buf);
	free(b64);
	return out;
}

int crypto_env_key_id(const char *sealed, char id[CRYPTO_ENV_KEY_ID_MAX + 1])
{
	size_t plen = strlen(CRYPTO_ENV_PREFIX), n;

	id[0] = '\0';
	if (sealed == NULL || strncmp(sealed, CRYPTO_ENV_PREFIX, plen) != 0)
		return BZ_ERR_INVALID;
	n = strspn(sealed + plen, ID_CHARS);
	if (n == 0 || n > CRYPTO_ENV_KEY_ID_MAX || sealed[plen + n] != ':')
		return BZ_ERR_INVALID;
	memcpy(id, sealed + plen, n);
	id[n] = '\0';
	return 0;
}

int crypto_env_open(const struct crypto_keyring *kr, const char *sealed, const char *aad,
		    uint8_t **plain, size_t *plainlen, size_t *used)
{
	char id[CRYPTO_ENV_KEY_ID_MAX + 1];
	uint8_t *raw = NULL, *pt = NULL;
	size_t rawlen = 0, ptlen;
	int k, rc;

	*plain = NULL;
	*plainlen = 0;
	if ((rc = crypto_env_key_id(sealed, id)) != 0)
		return rc;
	const char *b64 = sealed + strlen(CRYPTO_ENV_PREFIX) + strlen(id) + 1;
	raw = crypto_base64url_decode(b64, strlen(b64), &rawlen);
	if (raw == NULL || rawlen < NONCE_LEN + TAG_LEN ||
	    rawlen > NONCE_LEN + CRYPTO_ENV_MAX_PLAIN + TAG_LEN) {
		rc = BZ_ERR_INVALID;
		goto out;
	}
	if ((k = crypto_keyring_find(kr, id)) < 0) {
		rc = BZ_ERR_NOT_FOUND;
		goto out;
	}
	ptlen = rawlen - NONCE_LEN - TAG_LEN;
	if ((pt = malloc(ptlen + 1)) == NULL) {
		rc = BZ_ERR_NOMEM;
		goto out;
	}
	rc = crypto_aead_gcm(0, kr->k[k].key, raw, aad, strlen(aad), raw + NONCE_LEN, ptlen, pt,
			     raw + NONCE_LEN + ptlen);
	if (rc != 0) {
		OPENSSL_cleanse(pt, ptlen + 1);
		free(pt);
		goto out;
	}
	pt[ptlen] = '\0';
	*plain = pt;
	*plainlen = ptlen;
	if (used != NULL)
		*used = (size_t)k;
out:
	if (raw != NULL)
		OPENSSL_cleanse(raw, rawlen);
	free(raw);
	return rc;
}

const char *crypto_env_error_name(int err)
{
	switch (err) {
	case BZ_ERR_INVALID:
		return "malformed";
	case BZ_ERR_NOT_FOUND:
		return "unknown_key";
	case BZ_ERR_UNAUTHORIZED:
		return "tag_mismatch";
	default:
		return "error";
	}
}
