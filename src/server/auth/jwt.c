#include <errno.h>
#include <jwt.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "crypto/crypto.h"
#include "common/text.h"
#include "server/auth/auth.h"

/*
 * Clock skew tolerated between the instance that issued a token and the one
 * verifying it (seconds): instances behind one proxy run NTP, so a minute
 * covers drift without stretching a token's life noticeably.
 */
#define JWT_CLOCK_SKEW_S 60

char *auth_jwt_issue(const char *secret, size_t secretlen, const char *sub, const char *sid,
		     int64_t now, int64_t exp)
{
	jwt_t *jwt = NULL;
	char *tok = NULL;

	if (jwt_new(&jwt) != 0)
		return NULL;
	if (jwt_add_grant(jwt, "sub", sub) || jwt_add_grant(jwt, "sid", sid) ||
	    jwt_add_grant(jwt, "iss", AUTH_JWT_ISSUER) ||
	    jwt_add_grant(jwt, "aud", AUTH_JWT_AUDIENCE) ||
	    jwt_add_grant_int(jwt, "iat", (long)now) || jwt_add_grant_int(jwt, "exp", (long)exp) ||
	    jwt_set_alg(jwt, JWT_ALG_HS256, (const unsigned char *)secret, (int)secretlen))
		goto out;
	tok = jwt_encode_str(jwt);
out:
	jwt_free(jwt);
	return tok;
}

/* The header must say HS256 before libjwt sees the token, so a token can
 * never choose its own algorithm (alg=none, HS512, RS256 key confusion). */
static int header_is_hs256(const char *token)
{
	const char *dot = strchr(token, '.');
	size_t len;
	int ok = 0;

	if (dot == NULL || dot == token)
		return 0;
	uint8_t *raw = crypto_base64url_decode(token, (size_t)(dot - token), &len);
	if (raw == NULL)
		return 0;
	json_t *h = json_loadb((const char *)raw, len, JSON_REJECT_DUPLICATES, NULL);
	free(raw);
	if (json_is_object(h)) {
		json_t *alg = json_object_get(h, "alg"), *typ = json_object_get(h, "typ");
		ok = json_is_string(alg) && !strcmp(json_string_value(alg), "HS256") &&
		     (typ == NULL ||
		      (json_is_string(typ) && !strcmp(json_string_value(typ), "JWT"))) &&
		     json_object_get(h, "crit") == NULL;
	}
	json_decref(h);
	return ok;
}

/* libjwt keeps the last of duplicate claims; refuse them outright. */
static int payload_has_no_duplicates(const char *token)
{
	const char *p = strchr(token, '.'), *e;
	size_t len;

	if (p == NULL || (e = strchr(p + 1, '.')) == NULL)
		return 0;
	uint8_t *raw = crypto_base64url_decode(p + 1, (size_t)(e - p - 1), &len);
	if (raw == NULL)
		return 0;
	json_t *j = json_loadb((const char *)raw, len, JSON_REJECT_DUPLICATES, NULL);
	free(raw);
	int ok = json_is_object(j);
	json_decref(j);
	return ok;
}

static int claim_string(json_t *claims, const char *name, const char *want, char *out)
{
	json_t *v = json_object_get(claims, name);

	if (!json_is_string(v))
		return BZ_ERR_UNAUTHORIZED;
	if (want != NULL)
		return strcmp(json_string_value(v), want) == 0 ? 0 : BZ_ERR_UNAUTHORIZED;
	if (!is_uuid(json_string_value(v)))
		return BZ_ERR_UNAUTHORIZED;
	memcpy(out, json_string_value(v), 37);
	return 0;
}

int auth_jwt_verify(const char *secret, size_t secretlen, const char *token, int64_t now,
		    int64_t ttl_s, struct jwt_claims *out)
{
	jwt_t *jwt = NULL;
	char *grants = NULL;
	json_t *claims = NULL;
	int rc = BZ_ERR_UNAUTHORIZED;

	memset(out, 0, sizeof(*out));
	if (token == NULL || strlen(token) > 4096 || !header_is_hs256(token) ||
	    !payload_has_no_duplicates(token))
		return rc;
	if (jwt_decode(&jwt, token, (const unsigned char *)secret, (int)secretlen) != 0 ||
	    jwt == NULL || jwt_get_alg(jwt) != JWT_ALG_HS256)
		goto out;
	grants = jwt_get_grants_json(jwt, NULL);
	if (grants == NULL)
		goto out;
	claims = json_loads(grants, JSON_REJECT_DUPLICATES, NULL);
	if (!json_is_object(claims))
		goto out;
	json_t *exp = json_object_get(claims, "exp"), *iat = json_object_get(claims, "iat");
	if (!json_is_integer(exp) || !json_is_integer(iat))
		goto out;
	out->exp = json_integer_value(exp);
	out->iat = json_integer_value(iat);
	/*
	 * This server issues exp = iat + ttl_s, so a token is plausible only if
	 * it is unexpired, was not issued in the future, lives no longer than one
	 * lifetime from now, and its iat is no older than exp - ttl_s (a signed
	 * token claiming a longer life was not made by this server's rules).
	 */
	if (ttl_s <= 0 || out->exp <= now || out->iat > now + JWT_CLOCK_SKEW_S ||
	    out->exp > now + ttl_s + JWT_CLOCK_SKEW_S || out->iat < out->exp - ttl_s)
		goto out;
	/* RFC 7519 §4.1.5: not before; this server never sets it, but a token
	 * carrying one is honoured, with the same skew, and must be an integer. */
	json_t *nbf = json_object_get(claims, "nbf");
	if (nbf != NULL &&
	    (!json_is_integer(nbf) || json_integer_value(nbf) > now + JWT_CLOCK_SKEW_S))
		goto out;
	if (claim_string(claims, "iss", AUTH_JWT_ISSUER, NULL) ||
	    claim_string(claims, "aud", AUTH_JWT_AUDIENCE, NULL) ||
	    claim_string(claims, "sub", NULL, out->sub) ||
	    claim_string(claims, "sid", NULL, out->sid))
		goto out;
	rc = 0;
out:
	if (rc != 0)
		memset(out, 0, sizeof(*out));
	json_decref(claims);
	free(grants);
	jwt_free(jwt);
	return rc;
}
