/*
 * mfa_login.c — the second step of a login with MFA on (mfa.h): the
 * password earns a one-time mfaToken; POST /auth/mfa/verify trades it and
 * a TOTP or recovery code for the session.
 *
 * The token is stored only as its SHA-256 and lives MFA_TOKEN_TTL_S
 * seconds (bz_now(), so the test clock moves it). Its row is locked for
 * the whole check, so concurrent verifies of one token are serialized and
 * at most one of them starts a session.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/metrics.h"
#include "crypto/crypto.h"
#include "server/auth/mfa_internal.h"
#include "server/config.h"
#include "server/db/db.h"

/* The expiry time (seconds) of a challenge created MFA_FAILURE_WINDOW_S
 * before bz_now(), as text: the older ones are out of the failure window. */
static void window_start_text(char out[24])
{
	snprintf(out, 24, "%lld", (long long)(bz_now() - MFA_FAILURE_WINDOW_S + MFA_TOKEN_TTL_S));
}

int auth_mfa_challenge_start(PGconn *c, const char *user_id, char token[64], int64_t *ttl_s)
{
	static const char *sql = "INSERT INTO mfa_challenges (user_id, token_hash, expires_at)"
				 " VALUES ($1::uuid, $2, to_timestamp($3::bigint))";
	/* Old challenges of the user go as new ones come: the table stays
	 * small without a sweeper. One with wrong codes stays until it is out
	 * of the failure window (user_failures()). */
	static const char *sweep =
		"DELETE FROM mfa_challenges WHERE user_id = $1::uuid"
		" AND ((failures = 0 AND (used_at IS NOT NULL"
		"                         OR expires_at < to_timestamp($2::bigint)))"
		"      OR expires_at < to_timestamp($3::bigint))";
	uint8_t raw[32];
	char hash[BZ_SHA256_HEX_LEN + 1], exp[24], now[24], window[24];
	char *b64;
	int rc;

	token[0] = '\0';
	if (crypto_random_bytes(raw, sizeof(raw)) != 0 ||
	    (b64 = crypto_base64url_encode(raw, sizeof(raw))) == NULL)
		return BZ_ERR_CRYPTO;
	crypto_wipe(raw, sizeof(raw));
	rc = crypto_sha256_hex(b64, strlen(b64), hash);
	snprintf(exp, sizeof(exp), "%lld", (long long)(bz_now() + MFA_TOKEN_TTL_S));
	mfa_now_text(now);
	window_start_text(window);
	const char *p[3] = {user_id, hash, exp};
	const char *sp[3] = {user_id, now, window};
	if (rc == 0 && (db_exec(c, sweep, 3, sp) != 0 || db_exec(c, sql, 3, p) != 0))
		rc = BZ_ERR_DB;
	if (rc == 0) {
		snprintf(token, 64, "%s", b64);
		*ttl_s = MFA_TOKEN_TTL_S;
	}
	crypto_wipe(b64, strlen(b64));
	free(b64);
	return rc;
}

int auth_mfa_challenges_drop(PGconn *c, const char *user_id)
{
	static const char *sql = "DELETE FROM mfa_challenges WHERE user_id = $1::uuid";
	const char *p[1] = {user_id};

	return db_exec(c, sql, 1, p) == 0 ? 0 : BZ_ERR_DB;
}

/* The live challenge behind TOKEN, locked: its id and user. */
struct challenge {
	char id[37];
	char user_id[37];
	int live; /* unused, unexpired and not dead */
};

static int challenge_lock(PGconn *c, const char *token, struct challenge *ch, int *found)
{
	static const char *sql =
		"SELECT id, user_id, (used_at IS NULL AND expires_at > to_timestamp($2::bigint)"
		"                     AND failures < $3::integer)"
		"  FROM mfa_challenges WHERE token_hash = $1 FOR UPDATE";
	char hash[BZ_SHA256_HEX_LEN + 1], now[24], max[8];
	PGresult *r;

	*found = 0;
	if (crypto_sha256_hex(token, strlen(token), hash) != 0)
		return BZ_ERR_CRYPTO;
	mfa_now_text(now);
	snprintf(max, sizeof(max), "%d", MFA_TOKEN_MAX_FAILURES);
	const char *p[3] = {hash, now, max};
	if ((r = db_query(c, sql, 3, p, NULL)) == NULL)
		return BZ_ERR_DB;
	if (PQntuples(r) == 1) {
		snprintf(ch->id, sizeof(ch->id), "%s", PQgetvalue(r, 0, 0));
		snprintf(ch->user_id, sizeof(ch->user_id), "%s", PQgetvalue(r, 0, 1));
		ch->live = PQgetvalue(r, 0, 2)[0] == 't';
		*found = 1;
	}
	PQclear(r);
	return 0;
}

/* The wrong codes given for USER_ID's challenges created within the last
 * MFA_FAILURE_WINDOW_S seconds, into *N. The user's MFA row is locked first
 * (before the code is checked, in the order check_code() takes it), so
 * concurrent verifies of the user's tokens count one after another.
 * Returns 0 or BZ_ERR_DB. */
static int user_failures(PGconn *c, const char *user_id, long *n)
{
	static const char *lock = "SELECT 1 FROM user_mfa WHERE user_id = $1::uuid FOR UPDATE";
	static const char *sql =
		"SELECT coalesce(sum(failures), 0) FROM mfa_challenges"
		" WHERE user_id = $1::uuid AND expires_at >= to_timestamp($2::bigint)";
	char start[24];
	const char *p[2] = {user_id, start};
	PGresult *r;

	window_start_text(start);
	if (db_exec(c, lock, 1, p) != 0 || (r = db_query(c, sql, 2, p, NULL)) == NULL)
		return BZ_ERR_DB;
	*n = strtol(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	return 0;
}

int auth_mfa_token_user(PGconn *c, const char *token, char user_id[37])
{
	static const char *sql = "SELECT user_id FROM mfa_challenges WHERE token_hash = $1";
	char hash[BZ_SHA256_HEX_LEN + 1];
	PGresult *r;

	user_id[0] = '\0';
	if (crypto_sha256_hex(token, strlen(token), hash) != 0)
		return BZ_ERR_CRYPTO;
	const char *p[1] = {hash};
	if ((r = db_query(c, sql, 1, p, NULL)) == NULL)
		return BZ_ERR_DB;
	if (PQntuples(r) == 1)
		snprintf(user_id, 37, "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	return 0;
}

/* Marks challenge ID used (SUCCESS) or counts one more wrong code. */
static int challenge_mark(PGconn *c, const char *id, int success)
{
	static const char *used = "UPDATE mfa_challenges SET used_at = to_timestamp($2::bigint)"
				  " WHERE id = $1::uuid";
	static const char *fail = "UPDATE mfa_challenges SET failures = failures + 1"
				  " WHERE id = $1::uuid";
	char now[24];
	const char *p[2] = {id, now};

	mfa_now_text(now);
	return db_exec(c, success ? used : fail, success ? 2 : 1, p) == 0 ? 0 : BZ_ERR_DB;
}

/* The audited refusal of a verify: OUT->user (when known) as actor. */
static int refused(const struct auth_mfa_verify_input *in, struct auth_login *out, const char *code,
		   const char *reason, const char *msg, struct audit_event *ev,
		   struct bz_errinfo *why)
{
	const struct auth_user *u = &out->user;

	*ev = (struct audit_event){.org_id = u->org_id[0] ? u->org_id : NULL,
				   .actor_type = u->id[0] ? "user" : "system",
				   .actor_id = u->id[0] ? u->id : NULL,
				   .action = "auth.mfa.verify.failed",
				   .resource = "sessions",
				   .result = "failure",
				   .ip_address = in->ip,
				   .details = json_pack("{s:s}", "reason", reason)};
	metrics_inc(METRIC_MFA_FAILURES, NULL);
	return bz_fail(why, BZ_ERR_UNAUTHORIZED, code, NULL, msg);
}

static int token_refused(const struct auth_mfa_verify_input *in, struct auth_login *out,
			 const char *reason, struct audit_event *ev, struct bz_errinfo *why)
{
	return refused(in, out, "mfa_token_invalid", reason,
		       "the MFA token is unknown, used, expired or has had too many wrong codes; "
		       "log in again",
		       ev, why);
}

/* Checks IN's code for the challenge's user. 0, BZ_ERR_UNAUTHORIZED or an error. */
static int check_code(PGconn *c, const struct config *cfg, const struct auth_mfa_verify_input *in,
		      const char *user_id, struct bz_errinfo *why)
{
	struct mfa_keys keys;
	int rc;

	if ((rc = mfa_keys_load(cfg, &keys, why)) != 0)
		return rc;
	if (in->code != NULL)
		rc = mfa_totp_use(c, &keys, user_id, 1, in->code);
	else
		rc = mfa_recovery_use(c, &keys, user_id, in->recovery_code);
	if (rc == BZ_ERR_NOT_FOUND) /* MFA turned off meanwhile */
		rc = BZ_ERR_UNAUTHORIZED;
	mfa_keys_wipe(&keys);
	return rc;
}

int auth_mfa_verify(PGconn *c, const struct config *cfg, const struct auth_mfa_verify_input *in,
		    struct auth_login *out, struct audit_event *ev, struct bz_errinfo *why)
{
	struct challenge ch = {0};
	int found = 0, rc;

	memset(out, 0, sizeof(*out));
	*ev = (struct audit_event){0};
	if ((in->code == NULL) == (in->recovery_code == NULL))
		return bz_fail(why, BZ_ERR_INVALID, "validation_error", "code",
			       "give exactly one of code and recoveryCode");
	if ((rc = challenge_lock(c, in->mfa_token, &ch, &found)) != 0)
		return rc;
	if (!found)
		return token_refused(in, out, "unknown_token", ev, why);
	if ((rc = auth_user_by_id(c, ch.user_id, &out->user)) != 0)
		return rc == BZ_ERR_NOT_FOUND ? token_refused(in, out, "unknown_user", ev, why)
					      : rc;
	if (!ch.live)
		return token_refused(in, out, "token_not_live", ev, why);
	long failures = 0;
	if ((rc = user_failures(c, ch.user_id, &failures)) != 0)
		return rc;
	if (failures >= MFA_USER_MAX_FAILURES)
		return refused(in, out, "mfa_token_invalid", "too_many_failures",
			       "too many wrong codes for this account; wait 15 minutes and log in "
			       "again",
			       ev, why);
	rc = check_code(c, cfg, in, ch.user_id, why);
	if (rc == BZ_ERR_UNAUTHORIZED) {
		if ((rc = challenge_mark(c, ch.id, 0)) != 0)
			return rc;
		return refused(in, out, "invalid_code",
			       in->code ? "invalid_totp_code" : "invalid_recovery_code",
			       "the code is wrong, expired or already used", ev, why);
	}
	if (rc != 0)
		return rc;
	if ((rc = challenge_mark(c, ch.id, 1)) != 0)
		return rc;
	/* Records the login and locks the user row (auth_user_login_touch),
	 * then starts the session, as a password-only login does. */
	rc = auth_login_issue(c, cfg, &out->user, in->ip, in->user_agent, out);
	if (rc == BZ_ERR_UNAUTHORIZED)
		return token_refused(in, out, "account_disabled", ev, why);
	if (rc != 0)
		return rc;
	*ev = (struct audit_event){.org_id = out->user.org_id[0] ? out->user.org_id : NULL,
				   .actor_type = "user",
				   .actor_id = out->user.id,
				   .action = "auth.login",
				   .resource = "sessions",
				   .resource_id = out->session_id,
				   .ip_address = in->ip,
				   .details = json_pack("{s:s}", "mfa",
							in->code ? "totp" : "recovery_code")};
	metrics_inc(METRIC_LOGINS, "success");
	return 0;
}
