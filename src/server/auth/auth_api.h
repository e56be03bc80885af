/*
 * auth_api.h — the auth module's HTTP face: its routes (login_api.c: login,
 * me; users_api.c: users; roles_api.c; api_keys_api.c; register_api.c) and the authentication hook main.c
 * registers with the dispatcher (auth_api.c).
 */
#ifndef BZ_AUTH_API_H
#define BZ_AUTH_API_H

#include <stddef.h>

#include "server/auth/auth.h"
#include "server/http/http.h"

/* The dispatcher's authentication hook (struct app.authenticate): checks
 * "Authorization: Bearer <access token>" against a live session, or
 * "X-API-Key: brz_key_…" against a live API key (auth_api_key_principal;
 * both headers at once are a 401), fills rq->who and computes rq->scope. Returns 0, or answers 401 (503 when the
 * database is down, 500 on other failures) and returns BZ_ERR_RESPONDED. */
int auth_api_authenticate(struct request *rq);

/* Cookie names and the header that must echo the CSRF cookie. With
 * SESSION_COOKIE_SECURE (always in production) both cookies are Secure,
 * Path=/ and named with the __Host- prefix (RFC 6265bis §4.1.3.2): a
 * browser takes such a cookie only from this very host, never with a
 * Domain attribute, so a sibling subdomain cannot plant or shadow one.
 * Without it (plain-http development) the unprefixed names are used and
 * the refresh cookie is scoped to Path=/api/v1/auth. */
#define AUTH_REFRESH_COOKIE "breeze_refresh_token"
#define AUTH_CSRF_COOKIE "breeze_csrf_token"
#define AUTH_HOST_REFRESH_COOKIE "__Host-breeze_refresh_token"
#define AUTH_HOST_CSRF_COOKIE "__Host-breeze_csrf_token"
#define AUTH_CSRF_HEADER "X-Breeze-CSRF"
#define AUTH_REFRESH_COOKIE_PATH "/api/v1/auth"

/* Ends a successful login (or MFA verification, or refresh) on C: writes
 * EV, commits (http_commit) and answers 200 with L's access token; only
 * when that succeeded sets the cookies: L's refresh token (HttpOnly,
 * SameSite=Strict, Max-Age = the session's remaining lifetime) and CSRF
 * token (readable by the page, SameSite=Strict, Path=/), named and scoped
 * as described above. The refresh token is never in the body.
 * EV->details is stolen. */
void login_api_render_session(struct request *rq, struct auth_login *l, PGconn *c,
			      struct audit_event *ev);

/* Sets both session cookies of L on RQ's response (see above), or, when L
 * is NULL, clears them (Max-Age=0). */
void auth_api_session_cookies(struct request *rq, const struct auth_login *l);

/* Refuses a browser request from a foreign origin: when the request has
 * an Origin header, it must be one of ALLOWED_ORIGINS (normalized with
 * config_origin_normalize); else 403 origin_not_allowed. A request without
 * Origin (not a browser's cross-site request) passes. Returns 0 or
 * BZ_ERR_RESPONDED. */
int auth_api_check_origin(struct request *rq);

/* Counts one re-entered credential of the signed-in user (the current
 * password of a password change, MFA setup or recovery-code regeneration;
 * the code and password of MFA disable) against the per-user `mfa` limiter
 * (RATE_LIMIT_MFA), before anything is checked: a stolen access token must
 * not be a faster password or TOTP oracle than the login and MFA
 * verification routes (checklist R1). Returns 0 or BZ_ERR_RESPONDED (429,
 * audited auth.step_up.rate_limited once per user per window). */
int auth_api_step_up_limit(struct request *rq);

extern const struct route auth_routes[];
extern const size_t auth_routes_count;

extern const struct route auth_session_routes[];
extern const size_t auth_session_routes_count;
extern const struct route auth_mfa_routes[];
extern const size_t auth_mfa_routes_count;


extern const struct route auth_user_routes[];
extern const size_t auth_user_routes_count;

extern const struct route auth_role_routes[]; /* roles_api.c */
extern const size_t auth_role_routes_count;

extern const struct route auth_api_key_routes[]; /* api_keys_api.c */
extern const size_t auth_api_key_routes_count;

/* POST /auth/register (register_api.c): in the route table always, served
 * only with ENABLE_REGISTRATION (routes_serve()). */
extern const struct route auth_register_routes[];
extern const size_t auth_register_routes_count;

#endif
