/* Unit tests for src/server/auth/jwt.c and auth_normalize_email: HS256
 * access tokens round-trip, and a table of forged or malformed tokens
 * (alg=none, HS512 with the same secret, bad claims, tampering) that must
 * all be refused. Forgeries are built by hand with OpenSSL HMAC so they do
 * not depend on the library under test. */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/err.h"
#include "crypto/crypto.h"
#include "server/auth/auth.h"

#define SECRET "4f1c0a9e7b3d5a2c8e6f0b1d3a5c7e9f2b4d6a8c0e1f3a5b7c9d1e3f5a7b9c0d"
#define OTHER_SECRET "a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1"
#define SUB_ID "11111111-2222-4333-8444-555555555555"
#define SID_ID "66666666-7777-4888-9999-aaaaaaaaaaaa"
#define NOW 1767225600 /* 2026-01-01T00:00:00Z */
#define TTL 900	       /* access_token_ttl_s */

/* Claim fragments; NOW and NOW+900 written out so the table stays data. */
#define C_SUB "\"sub\":\"" SUB_ID "\""
#define C_SID "\"sid\":\"" SID_ID "\""
#define C_ISS "\"iss\":\"breeze\""
#define C_AUD "\"aud\":\"breeze-api\""
#define C_IAT "\"iat\":1767225600"
#define C_EXP "\"exp\":1767226500"
#define GOOD_CLAIMS C_SUB "," C_SID "," C_ISS "," C_AUD "," C_IAT "," C_EXP
#define H_HS256 "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"

/* "h64.p64.sig" where sig is HMAC(MD, KEY) over "h64.p64", or empty when
 * MD is NULL (an unsigned alg=none token). Caller frees. */
static char *make_token(const char *header, const char *payload, const EVP_MD *md, const char *key)
{
	char *h = crypto_base64url_encode((const uint8_t *)header, strlen(header));
	char *p = crypto_base64url_encode((const uint8_t *)payload, strlen(payload));
	char *sig = NULL, *tok = NULL;
	size_t inlen;

	assert_non_null(h);
	assert_non_null(p);
	inlen = strlen(h) + 1 + strlen(p);
	char *input = malloc(inlen + 1);
	assert_non_null(input);
	snprintf(input, inlen + 1, "%s.%s", h, p);
	if (md != NULL) {
		uint8_t mac[EVP_MAX_MD_SIZE];
		unsigned int maclen = 0;

		assert_non_null(HMAC(md, key, (int)strlen(key), (const uint8_t *)input, inlen, mac,
				     &maclen));
		sig = crypto_base64url_encode(mac, maclen);
	} else {
		sig = strdup("");
	}
	assert_non_null(sig);
	size_t toklen = inlen + 1 + strlen(sig) + 1;
	tok = malloc(toklen);
	assert_non_null(tok);
	snprintf(tok, toklen, "%s.%s", input, sig);
	free(input);
	free(sig);
	free(p);
	free(h);
	return tok;
}

enum sig_kind { SIG_HS256, SIG_HS384, SIG_HS512, SIG_NONE, SIG_HS256_OTHER_KEY };

struct token_case {
	const char *name;
	const char *header;
	const char *claims; /* inside the braces */
	enum sig_kind sig;
	int want_ok;
};

static const struct token_case token_cases[] = {
	/* Positive controls: the hand-built token is what auth_jwt_issue makes. */
	{"valid", H_HS256, GOOD_CLAIMS, SIG_HS256, 1},
	{"valid without typ", "{\"alg\":\"HS256\"}", GOOD_CLAIMS, SIG_HS256, 1},
	{"iat at the 60 s leeway", H_HS256,
	 C_SUB "," C_SID "," C_ISS "," C_AUD ",\"iat\":1767225660," C_EXP, SIG_HS256, 1},

	/* The algorithm is pinned. */
	{"alg none, no signature", "{\"alg\":\"none\",\"typ\":\"JWT\"}", GOOD_CLAIMS, SIG_NONE, 0},
	{"alg none, HS256 signature", "{\"alg\":\"none\",\"typ\":\"JWT\"}", GOOD_CLAIMS, SIG_HS256,
	 0},
	{"alg HS256 header, no signature", H_HS256, GOOD_CLAIMS, SIG_NONE, 0},
	{"alg HS512, same secret", "{\"alg\":\"HS512\",\"typ\":\"JWT\"}", GOOD_CLAIMS, SIG_HS512,
	 0},
	{"alg HS384, same secret", "{\"alg\":\"HS384\",\"typ\":\"JWT\"}", GOOD_CLAIMS, SIG_HS384,
	 0},
	{"alg HS512 header, HS256 signature", "{\"alg\":\"HS512\",\"typ\":\"JWT\"}", GOOD_CLAIMS,
	 SIG_HS256, 0},
	{"alg RS256 with HMAC (key confusion)", "{\"alg\":\"RS256\",\"typ\":\"JWT\"}", GOOD_CLAIMS,
	 SIG_HS256, 0},
	{"alg lower-case", "{\"alg\":\"hs256\",\"typ\":\"JWT\"}", GOOD_CLAIMS, SIG_HS256, 0},
	{"alg missing", "{\"typ\":\"JWT\"}", GOOD_CLAIMS, SIG_HS256, 0},
	{"duplicate alg", "{\"alg\":\"HS256\",\"alg\":\"none\"}", GOOD_CLAIMS, SIG_HS256, 0},
	{"crit header", "{\"alg\":\"HS256\",\"crit\":[\"exp\"]}", GOOD_CLAIMS, SIG_HS256, 0},
	{"header not JSON", "alg=HS256", GOOD_CLAIMS, SIG_HS256, 0},
	{"wrong secret", H_HS256, GOOD_CLAIMS, SIG_HS256_OTHER_KEY, 0},

	/* exp: integer, strictly in the future. */
	{"missing exp", H_HS256, C_SUB "," C_SID "," C_ISS "," C_AUD "," C_IAT, SIG_HS256, 0},
	{"exp as string", H_HS256,
	 C_SUB "," C_SID "," C_ISS "," C_AUD "," C_IAT ",\"exp\":\"1767226500\"", SIG_HS256, 0},
	{"exp as real", H_HS256,
	 C_SUB "," C_SID "," C_ISS "," C_AUD "," C_IAT ",\"exp\":1767226500.0", SIG_HS256, 0},
	{"exp null", H_HS256, C_SUB "," C_SID "," C_ISS "," C_AUD "," C_IAT ",\"exp\":null",
	 SIG_HS256, 0},
	{"exp == now", H_HS256,
	 C_SUB "," C_SID "," C_ISS "," C_AUD ",\"iat\":1767220000,\"exp\":1767225600", SIG_HS256,
	 0},
	{"exp in the past", H_HS256,
	 C_SUB "," C_SID "," C_ISS "," C_AUD ",\"iat\":1767220000,\"exp\":1767220900", SIG_HS256,
	 0},

	/* iat: integer, not in the future beyond the leeway. */
	{"missing iat", H_HS256, C_SUB "," C_SID "," C_ISS "," C_AUD "," C_EXP, SIG_HS256, 0},
	{"iat as string", H_HS256,
	 C_SUB "," C_SID "," C_ISS "," C_AUD ",\"iat\":\"1767225600\"," C_EXP, SIG_HS256, 0},
	{"iat 61 s in the future", H_HS256,
	 C_SUB "," C_SID "," C_ISS "," C_AUD ",\"iat\":1767225661," C_EXP, SIG_HS256, 0},
	{"iat far in the future", H_HS256,
	 C_SUB "," C_SID "," C_ISS "," C_AUD ",\"iat\":1893456000,\"exp\":1893456900", SIG_HS256,
	 0},

	/* exp and iat must fit one access-token lifetime (900 s, 60 s skew). */
	{"exp a year ahead", H_HS256,
	 C_SUB "," C_SID "," C_ISS "," C_AUD "," C_IAT ",\"exp\":1798761600", SIG_HS256, 0},
	{"exp one lifetime + skew + 1 ahead", H_HS256,
	 C_SUB "," C_SID "," C_ISS "," C_AUD ",\"iat\":1767225660,\"exp\":1767226561", SIG_HS256,
	 0},
	{"exp one lifetime + skew ahead", H_HS256,
	 C_SUB "," C_SID "," C_ISS "," C_AUD ",\"iat\":1767225660,\"exp\":1767226560", SIG_HS256,
	 1},
	{"iat older than exp - ttl", H_HS256,
	 C_SUB "," C_SID "," C_ISS "," C_AUD ",\"iat\":1767224000,\"exp\":1767225700", SIG_HS256,
	 0},
	{"iat exactly exp - ttl", H_HS256,
	 C_SUB "," C_SID "," C_ISS "," C_AUD ",\"iat\":1767224800,\"exp\":1767225700", SIG_HS256,
	 1},

	/* nbf: optional, an integer, not in the future beyond the skew. */
	{"nbf now", H_HS256, GOOD_CLAIMS ",\"nbf\":1767225600", SIG_HS256, 1},
	{"nbf at the 60 s skew", H_HS256, GOOD_CLAIMS ",\"nbf\":1767225660", SIG_HS256, 1},
	{"nbf 61 s in the future", H_HS256, GOOD_CLAIMS ",\"nbf\":1767225661", SIG_HS256, 0},
	{"nbf far in the future", H_HS256, GOOD_CLAIMS ",\"nbf\":1893456000", SIG_HS256, 0},
	{"nbf as string", H_HS256, GOOD_CLAIMS ",\"nbf\":\"1767225600\"", SIG_HS256, 0},
	{"nbf null", H_HS256, GOOD_CLAIMS ",\"nbf\":null", SIG_HS256, 0},

	/* iss/aud. */
	{"wrong iss", H_HS256, C_SUB "," C_SID ",\"iss\":\"evil\"," C_AUD "," C_IAT "," C_EXP,
	 SIG_HS256, 0},
	{"missing iss", H_HS256, C_SUB "," C_SID "," C_AUD "," C_IAT "," C_EXP, SIG_HS256, 0},
	{"wrong aud", H_HS256,
	 C_SUB "," C_SID "," C_ISS ",\"aud\":\"breeze-agent\"," C_IAT "," C_EXP, SIG_HS256, 0},
	{"missing aud", H_HS256, C_SUB "," C_SID "," C_ISS "," C_IAT "," C_EXP, SIG_HS256, 0},

	/* sub/sid must be UUIDs. */
	{"sub not a UUID", H_HS256,
	 "\"sub\":\"admin\"," C_SID "," C_ISS "," C_AUD "," C_IAT "," C_EXP, SIG_HS256, 0},
	{"sub UUID plus suffix", H_HS256,
	 "\"sub\":\"" SUB_ID "x\"," C_SID "," C_ISS "," C_AUD "," C_IAT "," C_EXP, SIG_HS256, 0},
	{"sub SQL-ish", H_HS256,
	 "\"sub\":\"' OR 1=1 --\"," C_SID "," C_ISS "," C_AUD "," C_IAT "," C_EXP, SIG_HS256, 0},
	{"sub as number", H_HS256, "\"sub\":42," C_SID "," C_ISS "," C_AUD "," C_IAT "," C_EXP,
	 SIG_HS256, 0},
	{"missing sub", H_HS256, C_SID "," C_ISS "," C_AUD "," C_IAT "," C_EXP, SIG_HS256, 0},
	{"sid not a UUID", H_HS256,
	 C_SUB ",\"sid\":\"session-1\"," C_ISS "," C_AUD "," C_IAT "," C_EXP, SIG_HS256, 0},
	{"missing sid", H_HS256, C_SUB "," C_ISS "," C_AUD "," C_IAT "," C_EXP, SIG_HS256, 0},
};

static void test_token_table(void **state)
{
	unsigned failures = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(token_cases) / sizeof(*token_cases); i++) {
		const struct token_case *c = &token_cases[i];
		char payload[512];
		const EVP_MD *md = NULL;
		const char *key = SECRET;
		struct jwt_claims cl;

		snprintf(payload, sizeof(payload), "{%s}", c->claims);
		switch (c->sig) {
		case SIG_HS256:
			md = EVP_sha256();
			break;
		case SIG_HS384:
			md = EVP_sha384();
			break;
		case SIG_HS512:
			md = EVP_sha512();
			break;
		case SIG_NONE:
			md = NULL;
			break;
		case SIG_HS256_OTHER_KEY:
			md = EVP_sha256();
			key = OTHER_SECRET;
			break;
		}
		char *tok = make_token(c->header, payload, md, key);
		memset(&cl, 0x5a, sizeof(cl));
		int rc = auth_jwt_verify(SECRET, strlen(SECRET), tok, NOW, TTL, &cl);
		free(tok);
		if (c->want_ok) {
			if (rc != 0 || strcmp(cl.sub, SUB_ID) != 0 || strcmp(cl.sid, SID_ID) != 0) {
				print_error("case \"%s\": valid token not accepted (rc=%d)\n",
					    c->name, rc);
				failures++;
			}
		} else if (rc != BZ_ERR_UNAUTHORIZED) {
			print_error("case \"%s\": forged token accepted (rc=%d)\n", c->name, rc);
			failures++;
		} else if (cl.sub[0] != '\0' || cl.sid[0] != '\0') {
			/* Nothing from a refused token may leak into OUT. */
			print_error("case \"%s\": refused but claims left in OUT\n", c->name);
			failures++;
		}
	}
	assert_int_equal(failures, 0);
}

static void test_issue_verify_round_trip(void **state)
{
	struct jwt_claims cl;
	char *tok;

	(void)state;
	tok = auth_jwt_issue(SECRET, strlen(SECRET), SUB_ID, SID_ID, NOW, NOW + 900);
	assert_non_null(tok);
	assert_int_equal(auth_jwt_verify(SECRET, strlen(SECRET), tok, NOW, TTL, &cl), 0);
	assert_string_equal(cl.sub, SUB_ID);
	assert_string_equal(cl.sid, SID_ID);
	assert_int_equal(cl.iat, NOW);
	assert_int_equal(cl.exp, NOW + 900);

	/* Valid until the last second before exp, refused from exp on. */
	assert_int_equal(auth_jwt_verify(SECRET, strlen(SECRET), tok, NOW + 899, TTL, &cl), 0);
	assert_int_equal(auth_jwt_verify(SECRET, strlen(SECRET), tok, NOW + 900, TTL, &cl),
			 BZ_ERR_UNAUTHORIZED);
	assert_int_equal(auth_jwt_verify(SECRET, strlen(SECRET), tok, NOW + 100000, TTL, &cl),
			 BZ_ERR_UNAUTHORIZED);
	/* Issued more than the leeway after "now": a clock-skewed or forged iat. */
	assert_int_equal(auth_jwt_verify(SECRET, strlen(SECRET), tok, NOW - 61, TTL, &cl),
			 BZ_ERR_UNAUTHORIZED);
	/* A token issued for a longer life than the configured one is refused;
	 * a non-positive lifetime accepts nothing. */
	assert_int_equal(auth_jwt_verify(SECRET, strlen(SECRET), tok, NOW, 600, &cl),
			 BZ_ERR_UNAUTHORIZED);
	assert_int_equal(auth_jwt_verify(SECRET, strlen(SECRET), tok, NOW, 0, &cl),
			 BZ_ERR_UNAUTHORIZED);
	/* Another secret, or the same secret truncated, does not verify it. */
	assert_int_equal(auth_jwt_verify(OTHER_SECRET, strlen(OTHER_SECRET), tok, NOW, TTL, &cl),
			 BZ_ERR_UNAUTHORIZED);
	assert_int_equal(auth_jwt_verify(SECRET, strlen(SECRET) - 1, tok, NOW, TTL, &cl),
			 BZ_ERR_UNAUTHORIZED);
	free(tok);
}

static void test_tampered(void **state)
{
	struct jwt_claims cl;
	char *tok, *forged;
	const char *evil = "{" C_SUB "," C_SID "," C_ISS "," C_AUD "," C_IAT ",\"exp\":1893456000}";

	(void)state;
	tok = auth_jwt_issue(SECRET, strlen(SECRET), SUB_ID, SID_ID, NOW, NOW + 900);
	assert_non_null(tok);
	char *dot1 = strchr(tok, '.');
	assert_non_null(dot1);
	char *dot2 = strchr(dot1 + 1, '.');
	assert_non_null(dot2);

	/* Swap in a payload with a later exp, keeping the original signature. */
	char *p64 = crypto_base64url_encode((const uint8_t *)evil, strlen(evil));
	assert_non_null(p64);
	size_t len = (size_t)(dot1 - tok) + 1 + strlen(p64) + strlen(dot2) + 1;
	forged = malloc(len);
	assert_non_null(forged);
	snprintf(forged, len, "%.*s.%s%s", (int)(dot1 - tok), tok, p64, dot2);
	assert_int_equal(auth_jwt_verify(SECRET, strlen(SECRET), forged, NOW, TTL, &cl),
			 BZ_ERR_UNAUTHORIZED);
	free(forged);
	free(p64);

	/* Flip one character of the payload and of the signature. */
	forged = strdup(tok);
	assert_non_null(forged);
	size_t pi = (size_t)(dot1 - tok) + 5;
	forged[pi] = forged[pi] == 'A' ? 'B' : 'A';
	assert_int_equal(auth_jwt_verify(SECRET, strlen(SECRET), forged, NOW, TTL, &cl),
			 BZ_ERR_UNAUTHORIZED);
	free(forged);

	forged = strdup(tok);
	assert_non_null(forged);
	size_t si = strlen(forged) - 3;
	forged[si] = forged[si] == 'A' ? 'B' : 'A';
	assert_int_equal(auth_jwt_verify(SECRET, strlen(SECRET), forged, NOW, TTL, &cl),
			 BZ_ERR_UNAUTHORIZED);
	free(forged);

	/* Signature stripped, extra segment appended. */
	len = strlen(tok) + 8;
	forged = malloc(len);
	assert_non_null(forged);
	snprintf(forged, len, "%.*s.", (int)(dot2 - tok), tok);
	assert_int_equal(auth_jwt_verify(SECRET, strlen(SECRET), forged, NOW, TTL, &cl),
			 BZ_ERR_UNAUTHORIZED);
	snprintf(forged, len, "%s.AAAA", tok);
	assert_int_equal(auth_jwt_verify(SECRET, strlen(SECRET), forged, NOW, TTL, &cl),
			 BZ_ERR_UNAUTHORIZED);
	free(forged);
	free(tok);
}

static void test_malformed_inputs(void **state)
{
	struct jwt_claims cl;
	static const char *bad[] = {"", ".", "..", "abc", "a.b.c", "eyJhbGciOiJIUzI1NiJ9"};

	(void)state;
	assert_int_equal(auth_jwt_verify(SECRET, strlen(SECRET), NULL, NOW, TTL, &cl),
			 BZ_ERR_UNAUTHORIZED);
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
		if (auth_jwt_verify(SECRET, strlen(SECRET), bad[i], NOW, TTL, &cl) !=
		    BZ_ERR_UNAUTHORIZED)
			fail_msg("accepted malformed token [%s]", bad[i]);

	/* A valid token padded past the 4 KiB limit is refused before parsing. */
	char payload[6000];
	int n = snprintf(payload, sizeof(payload), "{" GOOD_CLAIMS ",\"pad\":\"");
	memset(payload + n, 'x', 4000);
	snprintf(payload + n + 4000, sizeof(payload) - (size_t)n - 4000, "\"}");
	char *tok = make_token(H_HS256, payload, EVP_sha256(), SECRET);
	assert_true(strlen(tok) > 4096);
	assert_int_equal(auth_jwt_verify(SECRET, strlen(SECRET), tok, NOW, TTL, &cl),
			 BZ_ERR_UNAUTHORIZED);
	free(tok);
}

static const struct {
	const char *in;
	const char *want; /* NULL: must be refused */
} email_cases[] = {
	{"alice@example.com", "alice@example.com"},
	{"  Alice@Example.COM  ", "alice@example.com"},
	{"\tBOB@x.io\r\n", "bob@x.io"},
	{"a@b", "a@b"},
	{"", NULL},
	{"   ", NULL},
	{"alice.example.com", NULL},
	{"a@b@c.com", NULL},
	{"@example.com", NULL},
	{"alice@", NULL},
	{"al ice@example.com", NULL},
	{"alice\x01@example.com", NULL},
	{"alice@exa\x7fmple.com", NULL},
	{"alice@example.com\x1b[0m", NULL},
	{"ab", NULL},
};

static void test_normalize_email_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(email_cases) / sizeof(*email_cases); i++) {
		char out[256];
		int rc = auth_normalize_email(email_cases[i].in, out, sizeof(out));

		if (email_cases[i].want == NULL) {
			if (rc != BZ_ERR_INVALID)
				fail_msg("accepted e-mail [%s] as [%s]", email_cases[i].in, out);
		} else {
			if (rc != 0)
				fail_msg("refused e-mail [%s]", email_cases[i].in);
			assert_string_equal(out, email_cases[i].want);
		}
	}
}

static void test_normalize_email_lengths(void **state)
{
	char in[300], out[300];

	(void)state;
	/* 254 characters is the longest address (RFC 5321 path limit). */
	memset(in, 'a', 254);
	in[0] = 'X';
	in[100] = '@';
	in[254] = '\0';
	assert_int_equal(auth_normalize_email(in, out, sizeof(out)), 0);
	assert_int_equal(strlen(out), 254);
	assert_int_equal(out[0], 'x');

	in[254] = 'a';
	in[255] = '\0';
	assert_int_equal(auth_normalize_email(in, out, sizeof(out)), BZ_ERR_INVALID);

	/* OUT too small for the address is an error, not a truncation. */
	assert_int_equal(auth_normalize_email("alice@example.com", out, 10), BZ_ERR_INVALID);
	assert_int_equal(auth_normalize_email("alice@example.com", out, 17), BZ_ERR_INVALID);
	assert_int_equal(auth_normalize_email("alice@example.com", out, 18), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_token_table),
		cmocka_unit_test(test_issue_verify_round_trip),
		cmocka_unit_test(test_tampered),
		cmocka_unit_test(test_malformed_inputs),
		cmocka_unit_test(test_normalize_email_table),
		cmocka_unit_test(test_normalize_email_lengths),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
