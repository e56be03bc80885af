/*
 * fuzz_jwt_verify.c — access-token verification (auth_jwt_verify in
 * src/server/auth/jwt.c) with a fixed secret and clock.
 *
 * An input is a token, verified twice: as sent, and with its first two
 * segments re-signed with the secret. The fuzzer cannot forge HMACs, so
 * without the second pass it would never get past the signature to the
 * claim checks. An input with a newline (which no token has) is instead
 * "HEADER-JSON\nCLAIMS-JSON": both are base64url-encoded and signed, so the
 * fuzzer can mutate the JSON itself. A token that verifies must carry claims
 * that satisfy the documented rules.
 */
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "crypto/crypto.h"
#include "fuzz.h"
#include "server/auth/auth.h"

static const char secret[] = "fuzz-secret-0123456789abcdef0123456789abcdef";
static const int64_t now = 1767225600; /* 2026-01-01T00:00:00Z */
static const int64_t ttl_s = 900;      /* access_token_ttl_s */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	return 0;
}

static void verify(const char *token)
{
	struct jwt_claims c;

	if (auth_jwt_verify(secret, sizeof(secret) - 1, token, now, ttl_s, &c) == 0) {
		FUZZ_ASSERT(c.exp > now && c.iat <= now + 60);
		FUZZ_ASSERT(c.exp <= now + ttl_s + 60 && c.iat >= c.exp - ttl_s);
		FUZZ_ASSERT(strlen(c.sub) == 36 && strlen(c.sid) == 36);
	} else {
		static const struct jwt_claims zero;
		FUZZ_ASSERT(memcmp(&c, &zero, sizeof(c)) == 0);
	}
}

/* "H.P" of TOKEN (up to its second dot) followed by ".<HMAC of H.P>", or
 * NULL if TOKEN has no second part. The caller frees it. */
static char *resign(const char *token)
{
	const char *d1 = strchr(token, '.'), *d2;
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned maclen = 0;
	char *sig, *out = NULL;

	if (d1 == NULL)
		return NULL;
	d2 = strchr(d1 + 1, '.');
	size_t hp = d2 ? (size_t)(d2 - token) : strlen(token);
	if (HMAC(EVP_sha256(), secret, (int)sizeof(secret) - 1, (const unsigned char *)token, hp,
		 mac, &maclen) == NULL)
		return NULL;
	if ((sig = crypto_base64url_encode(mac, maclen)) == NULL)
		return NULL;
	size_t sl = strlen(sig);
	if ((out = malloc(hp + 1 + sl + 1)) != NULL) {
		memcpy(out, token, hp);
		out[hp] = '.';
		memcpy(out + hp + 1, sig, sl + 1);
	}
	free(sig);
	return out;
}

/* "b64url(HEADER).b64url(CLAIMS)" for the two halves of S split at NL.
 * The caller frees it. */
static char *encode_parts(const char *s, const char *nl)
{
	char *h = crypto_base64url_encode((const uint8_t *)s, (size_t)(nl - s));
	char *p = crypto_base64url_encode((const uint8_t *)nl + 1, strlen(nl + 1));
	char *out = NULL;

	if (h != NULL && p != NULL && (out = malloc(strlen(h) + strlen(p) + 2)) != NULL) {
		memcpy(out, h, strlen(h));
		out[strlen(h)] = '.';
		memcpy(out + strlen(h) + 1, p, strlen(p) + 1);
	}
	free(h);
	free(p);
	return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *tok = fuzz_cstr(data, size), *signed_tok, *nl;

	if (tok == NULL)
		return 0;
	if ((nl = strchr(tok, '\n')) != NULL) {
		char *hp = encode_parts(tok, nl);
		free(tok);
		if ((tok = hp) == NULL)
			return 0;
	}
	verify(tok);
	if ((signed_tok = resign(tok)) != NULL) {
		verify(signed_tok);
		free(signed_tok);
	}
	free(tok);
	return 0;
}
