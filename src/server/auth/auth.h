/*
 * auth.h — user authentication: JWT access tokens (HS256 only) bound to a
 * session row, login with argon2id, and the users/roles API.
 */
#ifndef BZ_AUTH_H
#define BZ_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "server/http/http.h"

#define AUTH_JWT_ISSUER "breeze"
#define AUTH_JWT_AUDIENCE "breeze-api"

struct jwt_claims {
	char sub[37]; /* user id */
	char sid[37]; /* session id */
	int64_t iat, exp; /* seconds since the epoch */
};

/*
 * Issues an HS256 JWT signed with SECRET (SECRETLEN bytes) for user SUB and
 * session SID, issued at NOW and expiring at EXP (both epoch seconds), with
 * iss/aud from the constants above. Returns a malloc'd token (caller frees)
 * or NULL on failure.
 */
char *auth_jwt_issue(const char *secret, size_t secretlen, const char *sub, const char *sid,
		     int64_t now, int64_t exp);

/*
 * Verifies TOKEN (RFC 7519) against SECRET at time NOW (epoch seconds) for
 * an access-token lifetime of TTL_S seconds (config access_token_ttl_s).
 * Accepted only when: the header's alg is exactly "HS256" (no "none", no
 * other algorithm — the algorithm is pinned, not taken from the token), the
 * signature verifies, iss and aud match, sub/sid are UUIDs, and the times
 * are plausible with a 60 s clock skew: exp and iat are integers, exp > NOW,
 * exp <= NOW + TTL_S (+ skew), iat <= NOW (+ skew), iat >= exp - TTL_S, and
 * nbf, if present, is an integer <= NOW (+ skew). Fills OUT (zeroed when
 * refused). Returns 0 or BZ_ERR_UNAUTHORIZED (also for TTL_S <= 0).
 */
int auth_jwt_verify(const char *secret, size_t secretlen, const char *token, int64_t now,
		    int64_t ttl_s, struct jwt_claims *out);

/* Authenticates the request's "Authorization: Bearer <jwt>" against a live
 * session and fills rq->who. Returns 0, or fails the request with 401
 * (503 if the database is down) and returns -1. */
int auth_authenticate(struct request *rq);

/* Lower-cases and trims an e-mail address into OUT (OUTLEN bytes).
 * Returns 0, or -1 if it is empty, too long or not of the form a@b. */
int auth_normalize_email(const char *in, char *out, size_t outlen);

extern const struct route auth_routes[];
extern const size_t auth_routes_count;

#endif
