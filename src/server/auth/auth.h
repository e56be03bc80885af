/*
 * auth.h — user authentication: JWT access tokens (HS256 only) bound to a
 * session row, login with argon2id, users and roles. No HTTP here: the
 * routes and the request hook are in auth_api.h.
 */
#ifndef BZ_AUTH_H
#define BZ_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "server/auth/principal.h"

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
 * Verifies TOKEN (RFC 7519) against SECRET at time NOW (epoch seconds).
 * Accepted only when: the header's alg is exactly "HS256" (no "none", no
 * other algorithm — the algorithm is pinned, not taken from the token), the
 * signature verifies, iss and aud match, exp is an integer > NOW, iat an
 * integer not in the future (60 s leeway), and sub/sid are UUIDs. Fills
 * OUT. Returns 0 or BZ_ERR_UNAUTHORIZED.
 */
int auth_jwt_verify(const char *secret, size_t secretlen, const char *token, int64_t now,
		    struct jwt_claims *out);

/* Loads into OUT the caller behind session SID of user SUB (both UUIDs,
 * from a verified access token) on C. A token is only as good as its
 * session: a revoked or expired session or a disabled user is refused.
 * Returns 0, BZ_ERR_UNAUTHORIZED or BZ_ERR_DB. OUT owns its permissions
 * (principal_free()). */
int auth_session_principal(PGconn *c, const char *sid, const char *sub, struct principal *out);

/* Lower-cases and trims an e-mail address into OUT (OUTLEN bytes).
 * Returns 0, or BZ_ERR_INVALID if it is empty, too long or not of the
 * form a@b. */
int auth_normalize_email(const char *in, char *out, size_t outlen);

#endif
