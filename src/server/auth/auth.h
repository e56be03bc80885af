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

#include <jansson.h>
#include <libpq-fe.h>

#include "common/err.h"
#include "crypto/crypto.h"
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

/* last_seen_at is written at most once per this many seconds per session
 * (and per SESSION_IDLE_TIMEOUT / 4 when that is shorter), not on every
 * request: the idle timeout may therefore end a session up to this long
 * before it has really been idle for SESSION_IDLE_TIMEOUT, never later. */
#define AUTH_SESSION_TOUCH_INTERVAL_S 60

/* Loads into OUT the caller behind session SID of user SUB (both UUIDs,
 * from a verified access token) on C, at time bz_now(). A token is only as
 * good as its session: a revoked session, one past its absolute end
 * (SESSION_MAX_AGE, A5) or idle longer than cfg->session_idle_timeout_s,
 * or a disabled user is refused. Records the use in last_seen_at (at most
 * once per touch interval, see above). PostgreSQL decides every time: no
 * cache, so a revocation holds on every instance at once (A6). Returns 0,
 * BZ_ERR_UNAUTHORIZED or BZ_ERR_DB. OUT owns its permissions
 * (principal_free()). */
int auth_session_principal(PGconn *c, const struct config *cfg, const char *sid, const char *sub,
			   struct principal *out);

/*
 * Creates a session of USER_ID living MAX_AGE_S seconds from NOW (epoch
 * seconds, bz_now()), inside the caller's transaction on C, recording
 * client address IP (text inet or NULL/"") and USER_AGENT (NULL, or stored
 * cut to AUTH_USER_AGENT_MAX bytes on a UTF-8 boundary; "" when not UTF-8).
 * Its refresh family's id is its own id. Copies the new session id into
 * SID_OUT[37] and its expiry (epoch seconds) into *EXPIRES_AT. Returns 0
 * or BZ_ERR_DB.
 */
int auth_session_create(PGconn *c, const char *user_id, int64_t now, int64_t max_age_s,
			const char *ip, const char *user_agent, char sid_out[37],
			int64_t *expires_at);

/* Revokes every live session of USER_ID on C (inside the caller's
 * transaction) with REASON (e.g. "user_disabled"), so all its access tokens
 * stop working on their next request; *REVOKED (when non-NULL) receives the
 * number revoked. Returns 0 or BZ_ERR_DB. */
int auth_sessions_revoke_user(PGconn *c, const char *user_id, const char *reason, long *revoked);

/* Like auth_sessions_revoke_user(), sparing session KEEP_SID (the caller's
 * own, e.g. after a password change). Returns 0 or BZ_ERR_DB. */
int auth_sessions_revoke_others(PGconn *c, const char *user_id, const char *keep_sid,
				const char *reason, long *revoked);

/* A live session as GET /auth/sessions shows it. */
struct auth_session {
	char id[37];
	char created_at[32], last_seen_at[32], expires_at[32]; /* ISO 8601 UTC */
	char ip[64];					       /* "" = unknown */
	char user_agent[AUTH_USER_AGENT_MAX + 1];
	int current; /* the session of the request */
};

/* The live sessions of USER_ID (not revoked, not past their end or idle
 * timeout at bz_now()), newest first, into a malloc'd array *OUT (caller
 * frees; NULL when *N is 0); CURRENT_SID is marked current. Returns 0,
 * BZ_ERR_DB or BZ_ERR_NOMEM. */
int auth_session_list(PGconn *c, const struct config *cfg, const char *user_id,
		      const char *current_sid, struct auth_session **out, size_t *n);

/* What a revocation of one session needs to audit (EV's strings point here). */
struct auth_session_ref {
	char id[37];
	char user_id[37];
	char org_id[37]; /* the user's organization, "" for partner staff */
};

/* Revokes session SID of USER_ID inside the caller's transaction on C and
 * describes it in EV (auth.session.revoke; strings point into OUT). Another
 * user's session, an unknown id and a session that is no longer live are
 * all BZ_ERR_NOT_FOUND. Returns 0, BZ_ERR_NOT_FOUND or BZ_ERR_DB, with WHY
 * set. */
int auth_session_revoke(PGconn *c, const char *user_id, const char *org_id, const char *sid,
			struct auth_session_ref *out, struct audit_event *ev,
			struct bz_errinfo *why);

/* ---- Users and roles (users.c) ---- */

#define AUTH_EMAIL_MAX 254	       /* bytes of a normalized e-mail address (RFC 5321 path) */
#define AUTH_NAME_MAX 200	       /* bytes of a user's display name */
#define AUTH_ROLE_NAME_MAX 200	       /* bytes of a role name kept in the structs below */
#define AUTH_PASSWORD_MIN 12	       /* bytes of a password chosen by a caller */
#define AUTH_PASSWORD_MAX 1024	       /* bytes of a password (argon2 input bound) */
#define AUTH_GENERATED_PASSWORD_LEN 33 /* 32 hex characters + NUL */

/* Lower-cases and trims an e-mail address into OUT (OUTLEN bytes).
 * Returns 0, or BZ_ERR_INVALID if it is empty, too long, not of the form
 * a@b, or holds a character text_check() refuses or calls blank. */
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
	int force_mfa;	     /* in force for the reader's partner (roles.c) */
	int builtin;
	int owned; /* a custom role of a partner (else shared: built-in or made in SQL) */
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

/* ---- Roles (roles.c) ---- */

#define AUTH_CUSTOM_ROLE_NAME_MAX 63 /* bytes of a custom role's name */

/* POST /roles input (borrowed). */
struct auth_role_new {
	const char *name;	   /* a display string, 1..63 bytes */
	const char *scope;	   /* "partner" or "organization" */
	const json_t *permissions; /* array of permission names */
};

/* PATCH /roles/:id input: NULL / unset members stay unchanged. */
struct auth_role_change {
	const char *name;
	const json_t *permissions;
	int force_mfa_set;
	int force_mfa;
};

/* The roles SCOPE's caller sees — every built-in role and its partner's
 * custom roles, built-in first, by name — with the forceMfa in force for
 * its partner, into a malloc'd array (free with auth_roles_free). Returns
 * 0, BZ_ERR_DB or BZ_ERR_NOMEM. */
int auth_role_list(PGconn *c, const struct tenancy_scope *scope, struct auth_role **out, size_t *n);

/* Frees N roles from auth_role_list(). */
void auth_roles_free(struct auth_role *roles, size_t n);

/* Frees what one struct auth_role owns. Safe on a zeroed struct. */
void auth_role_free(struct auth_role *role);

/* Role ID if SCOPE's caller sees it (as auth_role_list). Returns 0,
 * BZ_ERR_NOT_FOUND (also another partner's) or BZ_ERR_DB; free OUT with
 * auth_role_free(). */
int auth_role_get(PGconn *c, const struct tenancy_scope *scope, const char *id,
		  struct auth_role *out);

/*
 * Creates a custom role of the scope's partner from IN inside the caller's
 * transaction on C, into OUT (free with auth_role_free), and describes it
 * in EV (role.create). Only partner staff without organization limits may
 * (BZ_ERR_FORBIDDEN); every permission must be in the table
 * (permissions.h; else BZ_ERR_INVALID, field "permissions") and in HELD,
 * the caller's own permissions (else BZ_ERR_FORBIDDEN, code
 * "permission_not_held", the message naming the first one lacking). A name
 * taken by a built-in role or another role of the partner is
 * BZ_ERR_CONFLICT. Returns 0 or one of those, or BZ_ERR_DB, with WHY set.
 */
int auth_role_create(PGconn *c, const struct tenancy_scope *scope, const json_t *held,
		     const struct auth_role_new *in, struct auth_role *out, struct audit_event *ev,
		     struct bz_errinfo *why);

/*
 * Applies IN to role ID as auth_role_create's rules say, into OUT (the role
 * as it is now). A built-in role takes only forceMfa, recorded for the
 * caller's partner alone (BZ_ERR_FORBIDDEN, code "builtin_role", for name
 * or permissions); a custom role is changed only by a caller holding all
 * its permissions. EV: role.update with the changes, or no action when
 * nothing changes. Returns 0, BZ_ERR_INVALID, BZ_ERR_FORBIDDEN,
 * BZ_ERR_NOT_FOUND, BZ_ERR_CONFLICT or BZ_ERR_DB, with WHY set.
 */
int auth_role_update(PGconn *c, const struct tenancy_scope *scope, const json_t *held,
		     const char *id, const struct auth_role_change *in, struct auth_role *out,
		     struct audit_event *ev, struct bz_errinfo *why);

/* Deletes custom role ID (role.delete into EV; OUT receives it as it was).
 * Built-in roles cannot be deleted (BZ_ERR_FORBIDDEN); a role users still
 * hold is BZ_ERR_CONFLICT, code "role_in_use". Returns 0 or BZ_ERR_*, with
 * WHY set. */
int auth_role_delete(PGconn *c, const struct tenancy_scope *scope, const json_t *held,
		     const char *id, struct auth_role *out, struct audit_event *ev,
		     struct bz_errinfo *why);

/* ---- API keys (api_keys.c) ---- */

#define AUTH_API_KEY_PREFIX "brz_key_"
#define AUTH_API_KEY_LEN 51	     /* "brz_key_" + 43 base64url characters */
#define AUTH_API_KEY_PREFIX_SHOWN 12 /* characters of a key kept to tell keys apart */

/* An API key as the API shows it (never the key or its hash). */
struct auth_api_key {
	char id[37];
	char name[AUTH_NAME_MAX + 1];
	char prefix[AUTH_API_KEY_PREFIX_SHOWN + 1];
	char org_id[37];     /* "" = every organization its creator sees */
	char created_by[37]; /* the creator's user id */
	json_t *permissions; /* array of strings; owned (auth_api_key_free) */
	char created_at[32], last_used_at[32], expires_at[32], revoked_at[32]; /* "" = none */
};

/* POST /api-keys input (borrowed). */
struct auth_api_key_new {
	const char *name;	   /* a checked display string */
	const char *org_id;	   /* NULL = not limited to one organization */
	const json_t *permissions; /* array of permission names */
	const char *expires_at;	   /* ISO 8601, or NULL = never */
};

/*
 * Creates an API key for SCOPE's caller inside the caller's transaction on
 * C at time NOW (bz_now() seconds): the raw key goes to RAW (shown once;
 * the caller wipes it), only its SHA-256 is stored, OUT (free with
 * auth_api_key_free) describes it and EV says api_key.create. Every
 * permission must be in the table (BZ_ERR_INVALID) and in HELD, the
 * caller's own (BZ_ERR_FORBIDDEN, code "permission_not_held", naming it);
 * an orgId out of scope is BZ_ERR_NOT_FOUND; expiresAt must lie after NOW.
 * Returns 0, those, BZ_ERR_CRYPTO or BZ_ERR_DB, with WHY set.
 */
int auth_api_key_create(PGconn *c, const struct tenancy_scope *scope, const json_t *held,
			const struct auth_api_key_new *in, int64_t now, struct auth_api_key *out,
			char raw[AUTH_API_KEY_LEN + 1], struct audit_event *ev,
			struct bz_errinfo *why);

/* The keys SCOPE's caller manages — its own and, with MANAGE_OTHERS (the
 * caller holds users:write), those of every user it sees — newest first,
 * at most 1000, into a malloc'd array (auth_api_keys_free). Returns 0,
 * BZ_ERR_DB or BZ_ERR_NOMEM. */
int auth_api_key_list(PGconn *c, const struct tenancy_scope *scope, int manage_others,
		      struct auth_api_key **out, size_t *n);

/* Revokes key ID (one the caller manages, as auth_api_key_list) at NOW,
 * into OUT; EV says api_key.revoke, or nothing for a key already revoked.
 * Returns 0, BZ_ERR_NOT_FOUND or BZ_ERR_DB, with WHY set. */
int auth_api_key_revoke(PGconn *c, const struct tenancy_scope *scope, int manage_others,
			const char *id, int64_t now, struct auth_api_key *out,
			struct audit_event *ev, struct bz_errinfo *why);

/*
 * The caller behind raw key RAW (the X-API-Key header) at time NOW: its
 * creator, with OUT->api_key_id set, the key's permissions that the
 * creator's role holds now, and the creator's force_mfa and mfa_enabled.
 * ORG_ID[37] receives the key's organization limit ("" = none). Refused
 * (BZ_ERR_UNAUTHORIZED): malformed, unknown, revoked or expired keys and
 * keys of disabled users. Records lastUsedAt at most once a minute.
 * Returns 0, BZ_ERR_UNAUTHORIZED, BZ_ERR_CRYPTO or BZ_ERR_DB.
 */
int auth_api_key_principal(PGconn *c, const char *raw, int64_t now, struct principal *out,
			   char org_id[37]);

/* Frees what a struct auth_api_key owns / N keys from auth_api_key_list. */
void auth_api_key_free(struct auth_api_key *key);
void auth_api_keys_free(struct auth_api_key *keys, size_t n);

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

/* ---- Password policy (password_policy.c) and registration (register.c) ---- */

#define AUTH_REGISTER_PASSWORD_MAX 128 /* characters of a self-chosen password */
#define AUTH_PASSWORD_LOCAL_PART_MIN 4 /* an e-mail local part this long may not be in it */

/* Parses the built-in common-password list (data/common-passwords.txt) once
 * per process; serve calls it at start. *COUNT (when non-NULL) receives the
 * number of entries. Thread-safe. Returns 0, BZ_ERR_NOMEM or BZ_ERR_INVALID
 * (an empty list). */
int auth_password_policy_init(size_t *count);

/*
 * Checks a self-chosen PASSWORD for the account with normalized e-mail
 * EMAIL (NULL: none yet): valid UTF-8 of AUTH_PASSWORD_MIN to
 * AUTH_REGISTER_PASSWORD_MAX characters (code points), at least
 * AUTH_PASSWORD_MIN of them neither spaces nor invisible (text_strip_blanks(),
 * which also runs before the next two rules), not containing the
 * address or its local part (at least AUTH_PASSWORD_LOCAL_PART_MIN bytes),
 * and not a common password, case-insensitively, also once trailing digits
 * and punctuation are taken off. Returns 0, or BZ_ERR_INVALID with WHY
 * (code "weak_password", field "password") saying which rule failed.
 */
int auth_password_check(const char *password, const char *email, struct bz_errinfo *why);

/* POST /auth/register input (borrowed; NAME and PARTNER_NAME are checked
 * display strings). */
struct auth_register_input {
	const char *email, *name, *password, *partner_name;
};

struct auth_register_result {
	int created; /* 0: the address had an account; nothing was changed */
	char partner_id[37], user_id[37];
};

/*
 * Signs up a new partner and its first partner_admin from IN on C. The
 * e-mail must be an address and the password pass auth_password_check()
 * (else BZ_ERR_INVALID, no transaction open). Then, whether the address is
 * free or not — the answer must not tell — the same work is done and 0 is
 * returned INSIDE an open transaction, with EV describing the one audit row
 * to write (auth.register, or auth.register.duplicate when nothing was
 * created; EV's strings point into OUT): the caller commits. Returns 0,
 * BZ_ERR_INVALID, BZ_ERR_CRYPTO or BZ_ERR_DB, with WHY set.
 */
int auth_register(PGconn *c, const struct auth_register_input *in, struct auth_register_result *out,
		  struct audit_event *ev, struct bz_errinfo *why);

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

/* A refresh token (and a CSRF token): 32 bytes from OpenSSL's CSPRNG as
 * unpadded base64url (RFC 4648 §5), 43 characters. */
#define AUTH_REFRESH_TOKEN_BYTES 32
#define AUTH_REFRESH_TOKEN_LEN 43

struct auth_login {
	struct auth_user user; /* id, email, name, role, partner_id, org_id */
	char session_id[37];
	char *access_token;   /* malloc'd; auth_login_free() wipes it */
	int64_t expires_in_s; /* seconds the access token lives */
	/* The session's new refresh token (cookie breeze_refresh_token only,
	 * never a JSON body) and CSRF token (cookie breeze_csrf_token). */
	char refresh_token[AUTH_REFRESH_TOKEN_LEN + 1];
	char csrf_token[AUTH_REFRESH_TOKEN_LEN + 1];
	int64_t session_expires_at; /* epoch seconds: the absolute end (A5) */
	int64_t now;		    /* bz_now() when the tokens were issued */
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

/*
 * The step after the credentials (and MFA) are verified: locks and touches
 * USER (auth_user_login_touch), starts a session recording IP and
 * USER_AGENT (auth_session_create), the session's refresh-token family
 * (generation 0), a CSRF token and an access token (auth_access_token_issue),
 * all into OUT (OUT->user = *USER). Runs inside the transaction the caller
 * has open on C; returns 0 with it still open (the caller audits and
 * commits). On error the caller rolls back. Returns 0, BZ_ERR_UNAUTHORIZED
 * (the user is no longer active), BZ_ERR_DB or BZ_ERR_CRYPTO.
 */
int auth_login_issue(PGconn *c, const struct config *cfg, const struct auth_user *user,
		     const char *ip, const char *user_agent, struct auth_login *out);

/* Issues OUT->access_token for USER_ID and session SID at NOW, living
 * cfg->access_token_ttl_s seconds but never past SESSION_EXP (both epoch
 * seconds), and sets OUT->expires_in_s. Returns 0 or BZ_ERR_CRYPTO. */
int auth_access_token_issue(const struct config *cfg, const char *user_id, const char *sid,
			    int64_t now, int64_t session_exp, struct auth_login *out);

/* Wipes and frees what auth_login() put in L. Safe on a zeroed struct. */
void auth_login_free(struct auth_login *l);

/* ---- Refresh-token families (refresh.c) ---- */

/* Writes a fresh token (AUTH_REFRESH_TOKEN_BYTES from RAND_bytes, base64url)
 * into OUT[AUTH_REFRESH_TOKEN_LEN + 1]. Returns 0 or BZ_ERR_CRYPTO. */
int auth_token_random(char out[AUTH_REFRESH_TOKEN_LEN + 1]);

/* 1 if TOKEN has the form auth_token_random() gives (43 base64url
 * characters), else 0. Says nothing about whether it is known. */
int auth_token_well_formed(const char *token);

/* SHA-256 hex of refresh token TOKEN into HASH[65] (the only form stored).
 * Returns 0, BZ_ERR_INVALID (not well formed) or BZ_ERR_CRYPTO. */
int auth_refresh_token_hash(const char *token, char hash[BZ_SHA256_HEX_LEN + 1]);

/* Adds generation GENERATION of the refresh family of session SID at NOW
 * (epoch seconds) inside the caller's transaction on C, and a fresh CSRF
 * token, into OUT->refresh_token and OUT->csrf_token. Returns 0, BZ_ERR_DB
 * or BZ_ERR_CRYPTO. */
int auth_refresh_family_add(PGconn *c, const char *sid, int generation, int64_t now,
			    struct auth_login *out);

/*
 * POST /auth/refresh: consumes refresh token TOKEN on C atomically (of
 * concurrent refreshes with one token at most one wins) and issues the next
 * generation of its family plus an access token into OUT (OUT->user has
 * only id and org_id). Refused with BZ_ERR_UNAUTHORIZED and WHY code:
 * invalid_refresh_token (malformed or unknown), session_revoked,
 * session_expired (past SESSION_MAX_AGE — no refresh extends it — or idle
 * past SESSION_IDLE_TIMEOUT), refresh_raced (the immediate predecessor of
 * the live token, within REFRESH_REUSE_GRACE_SECONDS of its rotation:
 * nothing is revoked), refresh_token_reused (any other rotated token: the
 * session and its whole family are revoked and auth.refresh.reuse_detected
 * is audited, committed before returning; A7). On success returns 0 INSIDE
 * an open transaction: the caller writes EV (auth.refresh) and commits. On
 * error no transaction is left open. Returns 0, BZ_ERR_UNAUTHORIZED,
 * BZ_ERR_DB or BZ_ERR_CRYPTO. Free OUT with auth_login_free().
 */
int auth_refresh(PGconn *c, const struct config *cfg, const char *token, const char *ip,
		 struct auth_login *out, struct audit_event *ev, struct bz_errinfo *why);

/* POST /auth/logout: revokes the session (and so the family) of refresh
 * token TOKEN (live or rotated) inside the caller's transaction on C, and
 * describes it in EV (auth.logout; strings point into OUT). A session that
 * is already revoked stays so (EV->action NULL: nothing to audit). Returns
 * 0, BZ_ERR_UNAUTHORIZED (why: invalid_refresh_token) or BZ_ERR_DB. */
int auth_logout(PGconn *c, const char *token, struct auth_session_ref *out, struct audit_event *ev,
		struct bz_errinfo *why);

/* ---- Password change (password_change.c) ---- */

struct auth_password_change {
	const char *user_id, *session_id; /* the caller and its session */
	const char *current_password;	  /* verified with argon2id */
	const char *new_password;	  /* AUTH_PASSWORD_MIN..MAX bytes, not the e-mail */
	const char *ip;			  /* for the failure's audit row */
};

/*
 * POST /auth/password: checks the caller's current password (a wrong one
 * is BZ_ERR_FORBIDDEN, code invalid_current_password, audited as
 * auth.password.change.failed in its own transaction), sets the new one
 * (BZ_ERR_INVALID, field newPassword, when shorter than AUTH_PASSWORD_MIN
 * or longer than AUTH_PASSWORD_MAX bytes or equal to the e-mail address)
 * and revokes every other session of the user (*REVOKED of them) and every
 * pending mfaToken (auth_mfa_challenges_drop()). On success returns 0
 * INSIDE an open transaction: the caller writes EV
 * (auth.password.change; strings point into OUT) and commits. On error no
 * transaction is left open. Returns 0, BZ_ERR_INVALID, BZ_ERR_FORBIDDEN,
 * BZ_ERR_UNAUTHORIZED, BZ_ERR_DB or BZ_ERR_CRYPTO.
 */
int auth_password_change(PGconn *c, const struct auth_password_change *in,
			 struct auth_session_ref *out, long *revoked, struct audit_event *ev,
			 struct bz_errinfo *why);

#endif
