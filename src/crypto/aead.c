/*
 * aead.c — AES-256-GCM sealing (aead.h) with OpenSSL EVP. Nothing here
 * implements a primitive: EVP_aes_256_gcm does the work, RAND_bytes makes
 * the nonce, HMAC-SHA-256 derives the key id.
 */
#include "crypto/aead.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "crypto/crypto.h"

#define NONCE_LEN CRYPTO_AEAD_NONCE_LEN
#define TAG_LEN CRYPTO_AEAD_TAG_LEN
#define PREFIX "v1:"
#define KEY_ID_LABEL "breeze aead key id v1"

int crypto_aead_key_from_hex(const char *hex, struct crypto_aead_key *out)
{
	char mac[BZ_SHA256_HEX_LEN + 1];

	memset(out, 0, sizeof(*out));
	if (hex == NULL || strlen(hex) != 2 * CRYPTO_AEAD_KEY_LEN ||
	    strspn(hex, "0123456789abcdefABCDEF") != 2 * CRYPTO_AEAD_KEY_LEN)
		return BZ_ERR_INVALID;
	for (size_t i = 0; i < CRYPTO_AEAD_KEY_LEN; i++) {
		unsigned v;
		if (sscanf(hex + 2 * i, "%2x", &v) != 1)
			return BZ_ERR_INVALID;
		out->key[i] = (uint8_t)v;
	}
	if (crypto_hmac_sha256_hex(out->key, sizeof(out->key), KEY_ID_LABEL, strlen(KEY_ID_LABEL),
				   mac) != 0) {
		crypto_aead_key_wipe(out);
		return BZ_ERR_CRYPTO;
	}
	memcpy(out->id, mac, CRYPTO_AEAD_KEY_ID_LEN);
	out->id[CRYPTO_AEAD_KEY_ID_LEN] = '\0';
	return 0;
}

void crypto_aead_key_wipe(struct crypto_aead_key *k)
{
	OPENSSL_cleanse(k, sizeof(*k));
}

/* One AES-256-GCM pass (aead.h). */
int crypto_aead_gcm(int enc, const uint8_t *key, const uint8_t *nonce, const void *aad,
		    size_t aadlen, const uint8_t *in, size_t inlen, uint8_t *out, uint8_t *tag)
{
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int len = 0, rc = BZ_ERR_CRYPTO;

	if (ctx == NULL || inlen > INT32_MAX || aadlen > INT32_MAX)
		goto out;
	if (EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL, enc) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) != 1 ||
	    EVP_CipherInit_ex(ctx, NULL, NULL, key, nonce, enc) != 1)
		goto out;
	if (aadlen > 0 && EVP_CipherUpdate(ctx, NULL, &len, aad, (int)aadlen) != 1)
		goto out;
	if (inlen > 0 && EVP_CipherUpdate(ctx, out, &len, in, (int)inlen) != 1)
		goto out;
	if (!enc && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_LEN, tag) != 1)
		goto out;
	if (EVP_CipherFinal_ex(ctx, out + len, &len) != 1) {
		rc = enc ? BZ_ERR_CRYPTO : BZ_ERR_UNAUTHORIZED;
		goto out;
	}
	if (enc && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_LEN, tag) != 1)
		goto out;
	rc = 0;
out:
	EVP_CIPHER_CTX_free(ctx);
	return rc;
}

char *crypto_aead_seal(const struct crypto_aead_key *key, const void *plain, size_t plainlen,
		       const void *aad, size_t aadlen)
{
	uint8_t nonce[NONCE_LEN], *ct = NULL;
	char *n64 = NULL, *c64 = NULL, *out = NULL;

	if (plainlen > CRYPTO_AEAD_MAX_PLAIN || crypto_random_bytes(nonce, sizeof(nonce)) != 0)
		return NULL;
	if ((ct = malloc(plainlen + TAG_LEN)) == NULL)
		return NULL;
	if (crypto_aead_gcm(1, key->key, nonce, aad, aadlen, plain, plainlen, ct, ct + plainlen) !=
	    0)
		goto out;
	n64 = crypto_base64url_encode(nonce, sizeof(nonce));
	c64 = crypto_base64url_encode(ct, plainlen + TAG_LEN);
	if (n64 == NULL || c64 == NULL)
		goto out;
	size_t cap = strlen(PREFIX) + CRYPTO_AEAD_KEY_ID_LEN + strlen(n64) + strlen(c64) + 3;
	if ((out = malloc(cap)) != NULL)
		snprintf(out, cap, PREFIX "%s:%s:%s", key->id, n64, c64);
out:
	OPENSSL_cleanse(ct, plainlen + TAG_LEN);
	free(ct);
	free(n64);
	free(c64);
	return out;
}

/* Splits SEALED into its key id, nonce and ciphertext+tag. Returns 0 or
 * BZ_ERR_INVALID; *NONCE and *CT are malloc'd on success. */
static int parse(const char *sealed, char id[CRYPTO_AEAD_KEY_ID_LEN + 1], uint8_t **nonce,
		 uint8_t **ct, size_t *ctlen)
{
	const char *p, *n, *c;
	size_t nlen = 0;

	*nonce = *ct = NULL;
	if (sealed == NULL || strncmp(sealed, PREFIX, strlen(PREFIX)) != 0)
		return BZ_ERR_INVALID;
	p = sealed + strlen(PREFIX);
	if (strspn(p, "0123456789abcdef") != CRYPTO_AEAD_KEY_ID_LEN ||
	    p[CRYPTO_AEAD_KEY_ID_LEN] != ':')
		return BZ_ERR_INVALID;
	memcpy(id, p, CRYPTO_AEAD_KEY_ID_LEN);
	id[CRYPTO_AEAD_KEY_ID_LEN] = '\0';
	n = p + CRYPTO_AEAD_KEY_ID_LEN + 1;
	if ((c = strchr(n, ':')) == NULL)
		return BZ_ERR_INVALID;
	*nonce = crypto_base64url_decode(n, (size_t)(c - n), &nlen);
	c++;
	*ct = crypto_base64url_decode(c, strlen(c), ctlen);
	if (*nonce == NULL || nlen != NONCE_LEN || *ct == NULL || *ctlen < TAG_LEN ||
	    *ctlen > CRYPTO_AEAD_MAX_PLAIN + TAG_LEN) {
		free(*nonce);
		free(*ct);
		*nonce = *ct = NULL;
		return BZ_ERR_INVALID;
	}
	return 0;
}

int crypto_aead_open(const struct crypto_aead_key *keys, size_t nkeys, const char *sealed,
		     const void *aad, size_t aadlen, uint8_t **plain, size_t *plainlen,
		     size_t *used)
{
	char id[CRYPTO_AEAD_KEY_ID_LEN + 1];
	uint8_t *nonce, *ct, *pt;
	size_t ctlen, k;
	int rc;

	*plain = NULL;
	*plainlen = 0;
	if ((rc = parse(sealed, id, &nonce, &ct, &ctlen)) != 0)
		return rc;
	for (k = 0; k < nkeys && strcmp(keys[k].id, id) != 0; k++)
		;
	rc = BZ_ERR_INVALID;
	if (k == nkeys)
		goto out;
	rc = BZ_ERR_NOMEM;
	if ((pt = malloc(ctlen - TAG_LEN + 1)) == NULL)
		goto out;
	rc = crypto_aead_gcm(0, keys[k].key, nonce, aad, aadlen, ct, ctlen - TAG_LEN, pt,
			     ct + ctlen - TAG_LEN);
	if (rc != 0) {
		OPENSSL_cleanse(pt, ctlen - TAG_LEN + 1);
		free(pt);
		goto out;
	}
	pt[ctlen - TAG_LEN] = '\0';
	*plain = pt;
	*plainlen = ctlen - TAG_LEN;
	if (used != NULL)
		*used = k;
out:
	free(nonce);
	free(ct);
	return rc;
}
