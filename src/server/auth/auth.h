/*
 * auth.h — user authentication: JWT access tokens (HS256 only) bound to a
 * session row, login with argon2id, users and roles. No HTTP here: the
 * routes and the request hook are in auth_api.h.
 *
 * Files: jwt.c (tokens), sessions.c (the sessions table), login.c
 * (credentials → session → token), users.c (the users and roles tables).
 */
#ifndef BZ_AUTH_H
#define BZ_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "common/err.h"
#include "server/audit/audit.h"
#include "server/auth/principal.h"
#include "server/tenancy/tenancy.h"

struct config;

#define AUTH_JWT_ISSUER "breeze"
#define AUTH_JWT_AUDIENCE "breeze-api"

struct jwt_claims {
	char sub[37];	  /* user id */
	char sid[37];	  /* session id */
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


/* ---- Sessions (sessions.c) ---- */

#define AUTH_USER_AGENT_MAX 255 /* bytes of a session's stored User-Agent */

/* Loads into OUT the caller behind session SID of user SUB (both UUIDs,
 * from a verified access token) on C. A token is only as good as its
 * session: a revoked or expired session or a disabled user is refused.
 * Returns 0, BZ_ERR_UNAUTHORIZED or BZ_ERR_DB. OUT owns its permissions
 * (principal_free()). */
int auth_session_principal(PGconn *c, const char *sid, const char *sub, struct principal *out);

/*
 * Creates a session of USER_ID living MAX_AGE_S seconds from now, inside
 * the caller's transaction on C, recording client address IP (text inet or
 * NULL/"") and USER_AGENT (NULL, or stored cut to AUTH_USER_AGENT_MAX bytes
 * on a UTF-8 boundary; "" when not UTF-8). Copies the new session id into
 * SID_OUT[37] and its expiry (epoch seconds) into *EXPIRES_AT. Returns 0 or
 * BZ_ERR_DB.
 */
int auth_session_create(PGconn *c, const char *user_id, int64_t max_age_s, const char *ip,
			const char *user_agent, char sid_out[37], int64_t *expires_at);

/* Revokes every live session of USER_ID on C (inside the caller's
 * transaction) with REASON (e.g. "user_disabled"), so all its access tokens
 * stop working on their next request; *REVOKED (when non-NULL) receives the
 * number revoked. Returns 0 or BZ_ERR_DB. */
int auth_sessions_revoke_user(PGconn *c, const char *user_id, const char *reason, long *revoked);

/* Like auth_sessions_revoke_user(), sparing session KEEP_SID (the
 * caller's own; NULL or "" spares none). */
int auth_sessions_revoke_others(PGconn *c, const char *user_id, const char *keep_sid,
				const char *reason, long *revoked);

/* ---- Users and roles (users.c) ---- */

#define AUTH_EMAIL_MAX 254	       /* bytes of a normalized e-mail address (RFC 5321 path) */
#define AUTH_NAME_MAX 200	       /* bytes of a user's display name */
#define AUTH_ROLE_NAME_MAX 200	       /* bytes of a role name kept in the structs below */
#define AUTH_PASSWORD_MIN 12	       /* bytes of a password chosen by a caller */
#define AUTH_PASSWORD_MAX 1024	       /* bytes of a password (argon2 input bound) */
#define AUTH_GENERATED_PASSWORD_LEN 33 /* 32 hex characters + NUL */

/* Lower-cases and trims an e-mail address into OUT (OUTLEN bytes).
 * Returns 0, or BZ_ERR_INVALID if it is empty, too long or not of the
 * form a@b. */
int auth_normalize_email(const char *in, char *out, size_t outlen);

/* A user as the API shows it (never its password hash). */
struct auth_user {
	char id[37];
	char email[AUTH_EMAIL_MAX + 1];
	char name[AUTH_NAME_MAX + 1];
	char role[AUTH_ROLE_NAME_MAX + 1]; /* role name */
	char partner_id[37];		   /* "" for organization users */
	char org_id[37];		   /* "" for partner staff */
	char status[16];		   /* "active" or "disabled" */
	int mfa_enabled;
	char created_at[32];	/* ISO 8601 UTC */
	char last_login_at[32]; /* ISO 8601 UTC, "" = never */
	int force_mfa;		/* the role forces MFA enrolment (checklist A2) */
};

/* POST /users input. Strings are borrowed; arrays are jansson arrays of
 * UUID strings (borrowed; NULL or empty = absent). */
struct auth_user_new {
	const char *email;	/* any case, surrounding blanks allowed */
	const char *name;	/* a display string checked by the caller (text_check) */
	const char *password;	/* NULL: one is generated and returned once */
	const char *role;	/* role name */
	const char *org_id;	/* organization roles; NULL: derived from site_ids */
	const json_t *org_ids;	/* partner roles: organizations the user is limited to */
	const json_t *site_ids; /* organization roles: sites the user is limited to */
};

/* PATCH /users/:id input: NULL members stay unchanged. */
struct auth_user_change {
	const char *name;   /* a display string checked by the caller */
	const char *role;   /* role name of the same scope kind as the current one */
	const char *status; /* "active" or "disabled" */
};

struct auth_role {
	char id[37];
	char name[AUTH_ROLE_NAME_MAX + 1];
	char scope[16];	     /* "partner" or "organization" */
	json_t *permissions; /* array of strings; owned (auth_roles_free) */
	int force_mfa;
	int builtin;
};

/*
 * The users visible in SCOPE, by e-mail, into a malloc'd array *OUT (caller
 * frees; NULL when *N is 0). Visible: partner staff of the scope's partner
 * (an organization-limited partner user sees only itself among them) and
 * the users of the scope's organizations. Returns 0, BZ_ERR_DB or
 * BZ_ERR_NOMEM.
 */
int auth_user_list(PGconn *c, const struct tenancy_scope *scope, struct auth_user **out, size_t *n);

/* User ID (a UUID) if visible in SCOPE (as auth_user_list()). Returns 0,
 * BZ_ERR_NOT_FOUND (also another tenant's user) or BZ_ERR_DB. */
int auth_user_get(PGconn *c, const struct tenancy_scope *scope, const char *id,
		  struct auth_user *out);

/*
 * Creates a user from IN inside the caller's transaction on C and describes
 * it in EV (user.create; EV's strings point into OUT). Only partner staff
 * manage users. Partner roles take org_ids (an organization-limited caller
 * must give some, all in scope); organization roles take org_id and/or
 * site_ids (all sites visible and of one organization, which is org_id when
 * given). A generated password is copied into GEN_PW
 * (AUTH_GENERATED_PASSWORD_LEN bytes, "" when IN gave one; the caller shows
 * it once and wipes it). Returns 0, BZ_ERR_INVALID, BZ_ERR_FORBIDDEN,
 * BZ_ERR_NOT_FOUND, BZ_ERR_CONFLICT (e-mail taken), BZ_ERR_CRYPTO or
 * BZ_ERR_DB, with WHY set.
 */
int auth_user_create(PGconn *c, const struct tenancy_scope *scope, const struct auth_user_new *in,
		     struct auth_user *out, char *gen_pw, struct audit_event *ev,
		     struct bz_errinfo *why);

/*
 * Applies CH to user ID inside the caller's transaction on C and copies the
 * user as it is afterwards into OUT. Only partner staff manage users, and
 * only users visible in SCOPE (else BZ_ERR_NOT_FOUND, as for GET). A role
 * change stays within the role's scope kind; the caller cannot disable or
 * change the role of its own account (BZ_ERR_FORBIDDEN); the last active
 * partner_admin of a partner cannot be disabled or given another role
 * (BZ_ERR_CONFLICT, code "last_administrator"). Disabling revokes all the
 * user's sessions. EV describes the change (user.disable, user.enable or
 * user.update, with the changed fields in its details; EV's strings point
 * into OUT); a change that changes nothing leaves EV->action NULL. Returns
 * 0, BZ_ERR_INVALID, BZ_ERR_FORBIDDEN, BZ_ERR_NOT_FOUND, BZ_ERR_CONFLICT or
 * BZ_ERR_DB, with WHY set.
 */
int auth_user_update(PGconn *c, const struct tenancy_scope *scope, const char *id,
		     const struct auth_user_change *ch, struct auth_user *out,
		     struct audit_event *ev, struct bz_errinfo *why);

/* Every role, by name, into a malloc'd array (free with auth_roles_free).
 * Returns 0, BZ_ERR_DB or BZ_ERR_NOMEM. */
int auth_role_list(PGconn *c, struct auth_role **out, size_t *n);

/* Frees N roles from auth_role_list(). */
void auth_roles_free(struct auth_role *roles, size_t n);

/* What login needs of the user with normalized e-mail EMAIL. */
struct auth_credentials {
	struct auth_user user;
	char password_hash[256]; /* PHC string; wipe after use */
};

/* Looks up the user with normalized e-mail EMAIL on C into OUT; *FOUND is
 * set to 0 when there is none. Returns 0 or BZ_ERR_DB. */
int auth_user_credentials(PGconn *c, const char *email, struct auth_credentials *out, int *found);

/* Records a login of USER_ID (last_login_at = now()) inside the caller's
 * transaction, locking the user row so a concurrent disable waits for the
 * new session (and then revokes it). Returns 0, BZ_ERR_UNAUTHORIZED when
 * the user is no longer active, or BZ_ERR_DB. */
int auth_user_login_touch(PGconn *c, const char *user_id);

/* User ID (a UUID) without a scope check, for the login's second step.
 * Returns 0, BZ_ERR_NOT_FOUND or BZ_ERR_DB. */
int auth_user_by_id(PGconn *c, const char *id, struct auth_user *out);

/* Re-authentication: 0 if PASSWORD is the current password of the active
 * user USER_ID, else BZ_ERR_UNAUTHORIZED (after the same argon2id work when
 * there is no such user), or BZ_ERR_DB. */
int auth_user_check_password(PGconn *c, const char *user_id, const char *password);

/* ---- Login (login.c) ---- */

struct auth_login_input {
	const char *email;	/* as typed */
	const char *password;	/* at most AUTH_PASSWORD_MAX bytes */
	const char *ip;		/* client address or "" */
	const char *user_agent; /* User-Agent header or NULL */
};

struct auth_login {
	struct auth_user user; /* id, email, name, role, partner_id, org_id */
	char session_id[37];
	char *access_token;   /* malloc'd; auth_login_free() wipes it */
	int64_t expires_in_s; /* seconds the access token lives */
	/* The user's role forces MFA and none is enrolled yet (A2): every
	 * route but enrolment, logout and "me" answers 428 until it is. */
	int mfa_enrollment_required;
	/* MFA is on (A1): no session yet, only this one-time mfaToken for
	 * POST /auth/mfa/verify (base64url, "" otherwise; wiped on free). */
	char mfa_token[64];
	int64_t mfa_expires_in_s;
};

/*
 * Starts the session of USER once every factor is verified: a session row
 * (client address IP, USER_AGENT), and an HS256 access token
 * (cfg->secrets[SECRET_JWT]) living cfg->access_token_ttl_s seconds, never
 * past the session's end (cfg->session_max_age_s), into OUT (which gets a
 * copy of USER). Runs inside the caller's open transaction on C, after
 * auth_user_login_touch(); the caller writes the audit event and commits,
 * or rolls back on error. Returns 0, BZ_ERR_DB or BZ_ERR_CRYPTO.
 */
int auth_login_issue(PGconn *c, const struct config *cfg, const struct auth_user *user,
		     const char *ip, const char *user_agent, struct auth_login *out);

/*
 * Verifies IN's credentials on C and starts a session: an HS256 access
 * token (cfg->secrets[SECRET_JWT]) living cfg->access_token_ttl_s seconds,
 * never past the session's end (cfg->session_max_age_s). Unknown e-mail,
 * wrong password and disabled account all answer BZ_ERR_UNAUTHORIZED with
 * WHY code "invalid_credentials" after the same argon2id work (a dummy hash
 * when there is no user), and write auth.login.failed in its own
 * transaction. On success returns 0 INSIDE an open transaction: the caller
 * writes EV (auth.login; its strings point into OUT) and commits. On error
 * no transaction is left open. A user with MFA on gets no session: OUT
 * then holds an mfa_token (auth.login.mfa_challenge audited
 * instead; mfa.h).
 * Returns 0, BZ_ERR_UNAUTHORIZED, BZ_ERR_DB or BZ_ERR_CRYPTO. Free OUT
 * with auth_login_free() in every case.
 */
int auth_login(PGconn *c, const struct config *cfg, const struct auth_login_input *in,
	       struct auth_login *out, struct audit_event *ev, struct bz_errinfo *why);

/* Wipes and frees what auth_login() put in L. Safe on a zeroed struct. */
void auth_login_free(struct auth_login *l);

#endif
