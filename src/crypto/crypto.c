#include "crypto/crypto.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"

int crypto_random_bytes(void *buf, size_t len)
{
	if (len > INT32_MAX || RAND_bytes(buf, (int)len) != 1)
		return BZ_ERR_CRYPTO;
	return 0;
}

void crypto_hex(const uint8_t *in, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * len] = '\0';
}

int crypto_random_hex(size_t nbytes, char *out)
{
	uint8_t buf[256];

	if (nbytes > sizeof(buf) || crypto_random_bytes(buf, nbytes) != 0)
		return BZ_ERR_CRYPTO;
	crypto_hex(buf, nbytes, out);
	OPENSSL_cleanse(buf, nbytes);
	return 0;
}

int crypto_random_uuid(char out[37])
{
	uint8_t b[16];

	if (crypto_random_bytes(b, sizeof(b)) != 0)
		return BZ_ERR_CRYPTO;
	b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
	b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
		 b[13], b[14], b[15]);
	return 0;
}

int crypto_sha256_hex(const void *data, size_t len, char out[BZ_SHA256_HEX_LEN + 1])
{
	uint8_t md[BZ_SHA256_LEN];
	unsigned int mdlen = 0;

	if (EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != sizeof(md))
		return BZ_ERR_CRYPTO;
	crypto_hex(md, sizeof(md), out);
	return 0;
}

int crypto_hmac_sha256_hex(const void *key, size_t keylen, const void *data, size_t len,
			   char out[BZ_SHA256_HEX_LEN + 1])
{
	uint8_t md[BZ_SHA256_LEN];
	unsigned int mdlen = 0;

	if (keylen > INT32_MAX ||
	    HMAC(EVP_sha256(), key, (int)keylen, data, len, md, &mdlen) == NULL ||
	    mdlen != sizeof(md))
		return BZ_ERR_CRYPTO;
	crypto_hex(md, sizeof(md), out);
	return 0;
}

int crypto_ct_equal(const void *a, size_t alen, const void *b, size_t blen)
{
	if (alen != blen)
		return 0;
	return CRYPTO_memcmp(a, b, alen) == 0;
}

int crypto_ct_streq(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return 0;
	return crypto_ct_equal(a, strlen(a), b, strlen(b));
}

char *crypto_base64url_encode(const uint8_t *in, size_t len)
{
	size_t cap = 4 * ((len + 2) / 3) + 1;
	char *out = malloc(cap);

	if (out == NULL || len > INT32_MAX) {
		free(out);
		return NULL;
	}
	int n = EVP_EncodeBlock((unsigned char *)out, in, (int)len);
	while (n > 0 && out[n - 1] == '=')
		n--;
	out[n] = '\0';
	for (int i = 0; i < n; i++) {
		if (out[i] == '+')
			out[i] = '-';
		else if (out[i] == '/')
			out[i] = '_';
	}
	return out;
}

uint8_t *crypto_base64url_decode(const char *in, size_t inlen, size_t *outlen)
{
	if (inlen % 4 == 1 || inlen > (1u << 24))
		return NULL;
	size_t padded = (inlen + 3) / 4 * 4;
	char *tmp = malloc(padded + 1);
	uint8_t *out = malloc(padded / 4 * 3 + 1);

	if (tmp == NULL || out == NULL)
		goto fail;
	for (size_t i = 0; i < inlen; i++) {
		char c = in[i];
		if (c == '-')
			c = '+';
		else if (c == '_')
			c = '/';
		else if (!isalnum((unsigned char)c))
			goto fail; /* not in the base64url alphabet (RFC 4648 §5) */
		tmp[i] = c;
	}
	for (size_t i = inlen; i < padded; i++)
		tmp[i] = '=';
	tmp[padded] = '\0';
	int n = EVP_DecodeBlock(out, (const unsigned char *)tmp, (int)padded);
	if (n < 0)
		goto fail;
	/* EVP_DecodeBlock counts the padding as zero bytes; drop them. */
	n -= (int)(padded - inlen);
	*outlen = (size_t)n;
	free(tmp);
	return out;
fail:
	free(tmp);
	free(out);
	return NULL;
}

void crypto_wipe(void *p, size_t len)
{
	OPENSSL_cleanse(p, len);
}
