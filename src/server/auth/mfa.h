/*
 * mfa.h — TOTP multi-factor authentication of users (checklist A1, A2):
 * enrolment (setup → enable), disabling, recovery codes, and the second
 * step of a login (mfaToken → auth_mfa_verify()). No HTTP here: the routes
 * are in mfa_api.c, the 428 enrolment gate in the dispatcher.
 *
 * Files: mfa.c (secrets, codes, enrolment), mfa_login.c (the login's
 * second step), mfa_qr.c (the otpauth URI and its QR code as SVG).
 *
 * Every function runs inside the caller's open transaction on C. A
 * refusal worth recording (wrong password or code, dead mfaToken) returns
 * its error with EV set to the failure event: the caller then commits EV,
 * with whatever the refusal itself changed (an mfaToken's failure count),
 * and answers the error. Other errors leave EV->action NULL and the caller
 * rolls back.
 */
#ifndef BZ_MFA_H
#define BZ_MFA_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "common/err.h"
#include "server/audit/audit.h"
#include "server/auth/auth.h"
#include "server/auth/principal.h"

struct config;

#define MFA_ISSUER "Breeze"			/* otpauth issuer and label prefix */
#define MFA_RECOVERY_CODE_COUNT 10		/* codes per user */
#define MFA_RECOVERY_CODE_LEN 9			/* "XXXX-XXXX", without the NUL */
#define MFA_TOKEN_TTL_S 300			/* an mfaToken lives 5 minutes */
#define MFA_TOKEN_MAX_FAILURES 5		/* wrong codes before an mfaToken dies */
#define MFA_USER_MAX_FAILURES 20		/* wrong codes per user per window ... */
#define MFA_FAILURE_WINDOW_S 900		/* ... of 15 minutes, over all its tokens */
#define MFA_ENROLL_URL "/api/v1/auth/mfa/setup" /* named by the 428 answer */

/* Ten fresh recovery codes, shown once. Wipe after rendering. */
struct mfa_codes {
	char v[MFA_RECOVERY_CODE_COUNT][MFA_RECOVERY_CODE_LEN + 1];
};

/* What POST /auth/mfa/setup shows once. Free with auth_mfa_setup_free(). */
struct mfa_setup {
	char secret[64];   /* base32 of the 160-bit secret, unpadded */
	char *otpauth_uri; /* malloc'd: otpauth://totp/Breeze:<email>?secret=… */
	char *qr_svg;	   /* malloc'd: the URI as an SVG QR code */
	struct mfa_codes codes;
};

/*
 * Starts (or restarts) the enrolment of WHO after checking PASSWORD: a
 * fresh 160-bit secret sealed under MFA_ENCRYPTION_KEY with the user id as
 * associated data, pending until auth_mfa_enable(), and ten new recovery
 * codes (HMAC-SHA-256 with MFA_RECOVERY_CODE_PEPPER), replacing any
 * pending ones. Fills OUT and EV (auth.mfa.setup). Returns 0,
 * BZ_ERR_FORBIDDEN ("invalid_password", audited), BZ_ERR_CONFLICT
 * ("mfa_already_enabled": disable first), BZ_ERR_UNAVAILABLE
 * ("mfa_not_configured": no MFA_ENCRYPTION_KEY or pepper), BZ_ERR_CRYPTO,
 * BZ_ERR_NOMEM or BZ_ERR_DB.
 */
int auth_mfa_setup(PGconn *c, const struct config *cfg, const struct principal *who,
		   const char *password, struct mfa_setup *out, struct audit_event *ev,
		   struct bz_errinfo *why);

/* Wipes and frees what auth_mfa_setup() put in S. Safe on a zeroed one. */
void auth_mfa_setup_free(struct mfa_setup *s);

/*
 * Turns WHO's pending enrolment on with a current CODE (RFC 6238 §5.2: its
 * step, ±1, is then used up), sets users.mfa_enabled and revokes every
 * other session of the user ("mfa_enabled"). EV: auth.mfa.enable. Returns
 * 0, BZ_ERR_FORBIDDEN ("invalid_code", audited), BZ_ERR_CONFLICT
 * ("mfa_already_enabled", "mfa_not_pending": no setup first),
 * BZ_ERR_UNAVAILABLE, BZ_ERR_CRYPTO or BZ_ERR_DB.
 */
int auth_mfa_enable(PGconn *c, const struct config *cfg, const struct principal *who,
		    const char *code, struct audit_event *ev, struct bz_errinfo *why);

/*
 * Turns WHO's MFA off after checking PASSWORD and a current TOTP CODE:
 * the secret, the recovery codes and open mfaTokens are deleted. Refused
 * with BZ_ERR_FORBIDDEN "mfa_required_by_role" when WHO's role forces MFA
 * (A2). EV: auth.mfa.disable. Returns 0, BZ_ERR_FORBIDDEN
 * ("mfa_required_by_role", "invalid_password", "invalid_code": audited),
 * BZ_ERR_CONFLICT ("mfa_not_enabled"), BZ_ERR_UNAVAILABLE, BZ_ERR_CRYPTO
 * or BZ_ERR_DB.
 */
int auth_mfa_disable(PGconn *c, const struct config *cfg, const struct principal *who,
		     const char *code, const char *password, struct audit_event *ev,
		     struct bz_errinfo *why);

/*
 * Replaces WHO's recovery codes with ten new ones (into OUT) after checking
 * PASSWORD; the old ones stop working. EV: auth.mfa.recovery_codes.
 * Returns 0, BZ_ERR_FORBIDDEN ("invalid_password", audited),
 * BZ_ERR_CONFLICT ("mfa_not_enabled"), BZ_ERR_UNAVAILABLE, BZ_ERR_CRYPTO or
 * BZ_ERR_DB.
 */
int auth_mfa_recovery_regenerate(PGconn *c, const struct config *cfg, const struct principal *who,
				 const char *password, struct mfa_codes *out,
				 struct audit_event *ev, struct bz_errinfo *why);

/*
 * The first step of a login with MFA on: a one-time mfaToken (256 random
 * bits, base64url, stored as SHA-256 only) for USER_ID, living
 * MFA_TOKEN_TTL_S seconds from bz_now(), into TOKEN (64 bytes) and its
 * lifetime into *TTL_S. Returns 0, BZ_ERR_CRYPTO or BZ_ERR_DB.
 */
int auth_mfa_challenge_start(PGconn *c, const char *user_id, char token[64], int64_t *ttl_s);

/*
 * Ends every pending mfaToken of USER_ID (inside the caller's transaction):
 * a token earned with a password that has since been changed must not
 * finish its login. Returns 0 or BZ_ERR_DB.
 */
int auth_mfa_challenges_drop(PGconn *c, const char *user_id);

/*
 * The user an mfaToken TOKEN was issued to, live or not, into USER_ID (37
 * bytes; "" for an unknown token), read without locking or writing: the
 * key of the MFA-verify rate limit (checklist R1), checked before
 * auth_mfa_verify() writes anything. Returns 0, BZ_ERR_CRYPTO or BZ_ERR_DB.
 */
int auth_mfa_token_user(PGconn *c, const char *token, char user_id[37]);

struct auth_mfa_verify_input {
	const char *mfa_token;	   /* from the login answer */
	const char *code;	   /* a TOTP code, or NULL */
	const char *recovery_code; /* or a recovery code (any case, dash optional) */
	const char *ip;		   /* client address or "" */
	const char *user_agent;	   /* User-Agent or NULL */
};

/*
 * The second step of a login: checks IN's code (exactly one of code and
 * recovery_code) for the user of a live mfaToken, uses the token up and
 * starts the session (auth_login_issue()) into OUT. A wrong code counts
 * against the token: after MFA_TOKEN_MAX_FAILURES it is dead; and against
 * the user: after MFA_USER_MAX_FAILURES wrong codes over all the user's
 * tokens created within the last MFA_FAILURE_WINDOW_S seconds, no token of
 * the user is accepted until those have left the window (a password alone earns any number
 * of tokens, so the limit per token alone bounds nothing). A TOTP
 * step is used once; a recovery code once (one UPDATE … WHERE used_at IS
 * NULL: of concurrent uses exactly one wins). EV: auth.login (details:
 * method). Returns 0, BZ_ERR_INVALID (neither or both codes),
 * BZ_ERR_UNAUTHORIZED ("mfa_token_invalid": unknown, used, expired or
 * dead; "invalid_code"; both audited), BZ_ERR_UNAVAILABLE, BZ_ERR_CRYPTO
 * or BZ_ERR_DB. Free OUT with auth_login_free().
 */
int auth_mfa_verify(PGconn *c, const struct config *cfg, const struct auth_mfa_verify_input *in,
		    struct auth_login *out, struct audit_event *ev, struct bz_errinfo *why);

/*
 * The otpauth URI of the Key Uri Format (issuer MFA_ISSUER, SHA1, 6
 * digits, 30 s) for account EMAIL and base32 SECRET, with the label and
 * parameters percent-encoded (RFC 3986 §2.1, libcurl's curl_easy_escape).
 * Returns a malloc'd string or NULL.
 */
char *auth_mfa_otpauth_uri(const char *email, const char *secret_b32);

/* TEXT as a QR code (libqrencode, error correction level M) in a
 * self-contained SVG document, one <path> of unit squares with a four-module
 * quiet zone. Returns a malloc'd string or NULL. */
char *auth_mfa_qr_svg(const char *text);

#endif
