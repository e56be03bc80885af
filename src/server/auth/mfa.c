/*
 * mfa.c — TOTP enrolment, disabling and recovery codes (mfa.h), and the
 * helpers the login's second step shares (mfa_internal.h).
 *
 * The secret exists in clear only in memory: at rest it is sealed with
 * AES-256-GCM under MFA_ENCRYPTION_KEY as "enc:v1:<key fingerprint>:…"
 * with "user_mfa.secret_enc:<user id>" as associated data (crypto/
 * envelope.h, docs/encryption.md), so a ciphertext copied to another
 * user's row does not open. A secret sealed under
 * MFA_ENCRYPTION_KEY_PREVIOUS, or in the "v1:" form of before migration
 * 0017 (crypto/aead.h, the user id as associated data), still opens and is
 * re-sealed under the current key the next time it is used.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/err.h"
#include "crypto/crypto.h"
#include "crypto/totp.h"
#include "server/auth/mfa_internal.h"
#include "server/config.h"
#include "server/db/db.h"
#include "server/settings/settings.h"

/* Recovery-code alphabet: no 0/O, 1/I/L (unambiguous when read aloud or
 * typed from paper). 31 symbols, 8 per code: about 39.6 bits each. */
static const char recovery_alphabet[] = "23456789ABCDEFGHJKMNPQRSTUVWXYZ";
#define ALPHABET_N (sizeof(recovery_alphabet) - 1)

void mfa_now_text(char out[24])
{
	snprintf(out, 24, "%lld", (long long)bz_now());
}

int mfa_keys_load(const struct config *cfg, struct mfa_keys *keys, struct bz_errinfo *why)
{
	const char *cur = cfg->secrets[SECRET_MFA_ENCRYPTION_KEY];
	const char *prev = cfg->secrets[SECRET_MFA_ENCRYPTION_KEY_PREVIOUS];

	memset(keys, 0, sizeof(*keys));
	keys->pepper = cfg->secrets[SECRET_MFA_RECOVERY_CODE_PEPPER];
	if (cur == NULL || keys->pepper == NULL)
		goto unavailable;
	/* Keys named by fingerprint; a previous key equal to the current one
	 * (a configuration warning outside production) is just left out. */
	if (crypto_keyring_load(&keys->ring, cur, NULL, prev, NULL) != 0 &&
	    crypto_keyring_load(&keys->ring, cur, NULL, NULL, NULL) != 0)
		goto unavailable;
	return 0;
unavailable:
	mfa_keys_wipe(keys);
	return bz_fail(why, BZ_ERR_UNAVAILABLE, "mfa_not_configured", NULL,
		       "MFA is not configured on this server");
}

void mfa_keys_wipe(struct mfa_keys *keys)
{
	crypto_wipe(keys, sizeof(*keys));
}

/* ---- Recovery codes ---- */

/* Normalizes IN (any case, one optional dash after the fourth symbol)
 * into OUT[9] ("XXXXXXXX"). Returns 0 or BZ_ERR_UNAUTHORIZED. */
static int recovery_normalize(const char *in, char out[9])
{
	size_t n = 0;

	if (in == NULL)
		return BZ_ERR_UNAUTHORIZED;
	for (size_t i = 0; in[i] != '\0'; i++) {
		char ch = in[i];
		if (ch == '-' && n == 4 && in[i + 1] != '-')
			continue;
		if (ch >= 'a' && ch <= 'z')
			ch = (char)(ch - 'a' + 'A');
		if (n == 8 || strchr(recovery_alphabet, ch) == NULL || ch == '\0')
			return BZ_ERR_UNAUTHORIZED;
		out[n++] = ch;
	}
	out[n] = '\0';
	return n == 8 ? 0 : BZ_ERR_UNAUTHORIZED;
}

/* HMAC-SHA-256 with the pepper of "<user id>:<normalized code>". */
static int recovery_hash(const struct mfa_keys *keys, const char *user_id, const char norm[9],
			 char out[BZ_SHA256_HEX_LEN + 1])
{
	char msg[64];
	int rc;

	snprintf(msg, sizeof(msg), "%s:%s", user_id, norm);
	rc = crypto_hmac_sha256_hex(keys->pepper, strlen(keys->pepper), msg, strlen(msg), out);
	crypto_wipe(msg, sizeof(msg));
	return rc;
}

/* One code "XXXX-XXXX" into OUT[10], by rejection sampling (no modulo
 * bias: bytes >= 248 = 8 * 31 are drawn again). */
static int recovery_generate(char out[MFA_RECOVERY_CODE_LEN + 1])
{
	uint8_t b[32];
	size_t n = 0;

	while (n < 8) {
		if (crypto_random_bytes(b, sizeof(b)) != 0)
			return BZ_ERR_CRYPTO;
		for (size_t i = 0; i < sizeof(b) && n < 8; i++) {
			if (b[i] >= 8 * ALPHABET_N)
				continue;
			out[n < 4 ? n : n + 1] = recovery_alphabet[b[i] % ALPHABET_N];
			n++;
		}
	}
	out[4] = '-';
	out[MFA_RECOVERY_CODE_LEN] = '\0';
	crypto_wipe(b, sizeof(b));
	return 0;
}

/* Replaces USER_ID's recovery codes with ten new ones (into OUT). */
static int recovery_replace(PGconn *c, const struct mfa_keys *keys, const char *user_id,
			    struct mfa_codes *out)
{
	static const char *del = "DELETE FROM mfa_recovery_codes WHERE user_id = $1::uuid";
	static const char *ins = "INSERT INTO mfa_recovery_codes (user_id, code_hash)"
				 " VALUES ($1::uuid, $2)";
	char norm[9], hash[BZ_SHA256_HEX_LEN + 1];
	const char *p[2] = {user_id, hash};
	int rc;

	if ((rc = db_exec(c, del, 1, p)) != 0)
		return BZ_ERR_DB;
	for (size_t i = 0; i < MFA_RECOVERY_CODE_COUNT; i++) {
		if (recovery_generate(out->v[i]) != 0 || recovery_normalize(out->v[i], norm) != 0 ||
		    recovery_hash(keys, user_id, norm, hash) != 0)
			return BZ_ERR_CRYPTO;
		/* A repeated code (2^-39) would hit the UNIQUE constraint:
		 * a 500, never a shared code. */
		if (db_exec(c, ins, 2, p) != 0)
			return BZ_ERR_DB;
	}
	crypto_wipe(norm, sizeof(norm));
	return 0;
}

int mfa_recovery_use(PGconn *c, const struct mfa_keys *keys, const char *user_id, const char *code)
{
	static const char *sql = "UPDATE mfa_recovery_codes SET used_at = to_timestamp($3)"
				 " WHERE user_id = $1::uuid AND code_hash = $2 AND used_at IS NULL"
				 " RETURNING id";
	char norm[9], hash[BZ_SHA256_HEX_LEN + 1], now[24];
	const char *p[3] = {user_id, hash, now};
	PGresult *r;
	int rc;

	if (recovery_normalize(code, norm) != 0)
		return BZ_ERR_UNAUTHORIZED;
	rc = recovery_hash(keys, user_id, norm, hash);
	crypto_wipe(norm, sizeof(norm));
	if (rc != 0)
		return BZ_ERR_CRYPTO;
	mfa_now_text(now);
	/* The stored value is a keyed hash: the lookup by equality reveals
	 * nothing an attacker could time against. */
	if ((r = db_query(c, sql, 3, p, NULL)) == NULL)
		return BZ_ERR_DB;
	rc = PQntuples(r) == 1 ? 0 : BZ_ERR_UNAUTHORIZED;
	PQclear(r);
	return rc;
}

/* ---- TOTP secrets ---- */

/* Seals SECRET (LEN bytes) of USER_ID under the current key into *SEALED
 * (caller frees), counting the encryption on C (settings.h). */
static int seal(PGconn *c, const struct mfa_keys *keys, const char *user_id, const uint8_t *secret,
		size_t len, char **sealed)
{
	int rc = settings_seal(c, &keys->ring, "user_mfa", "secret_enc", user_id, secret, len,
			       sealed);
	return rc == BZ_ERR_DB ? BZ_ERR_DB : rc != 0 ? BZ_ERR_CRYPTO : 0;
}

/* Re-seals SECRET under the current key (rotation, MFA_ENCRYPTION_KEY_PREVIOUS,
 * or the pre-0017 format). */
static int reseal(PGconn *c, const struct mfa_keys *keys, const char *user_id,
		  const uint8_t *secret, size_t len)
{
	static const char *sql = "UPDATE user_mfa SET secret_enc = $2 WHERE user_id = $1::uuid";
	char *sealed = NULL;
	int rc;

	if ((rc = seal(c, keys, user_id, secret, len, &sealed)) != 0)
		return rc;
	const char *p[2] = {user_id, sealed};
	rc = db_exec(c, sql, 2, p) == 0 ? 0 : BZ_ERR_DB;
	free(sealed);
	return rc;
}

/* Checks CODE against the opened secret and records its step. */
static int totp_check_and_record(PGconn *c, const char *user_id, const uint8_t *secret, size_t len,
				 int64_t last_step, const char *code)
{
	static const char *sql = "UPDATE user_mfa SET last_step = $2::bigint"
				 " WHERE user_id = $1::uuid AND last_step < $2::bigint";
	char step_s[24];
	int64_t step;
	int rc;

	if ((rc = crypto_totp_check(secret, len, bz_now(), last_step, code, &step)) != 0)
		return rc;
	snprintf(step_s, sizeof(step_s), "%lld", (long long)step);
	const char *p[2] = {user_id, step_s};
	return db_exec(c, sql, 2, p) == 0 ? 0 : BZ_ERR_DB;
}

int mfa_totp_use(PGconn *c, const struct mfa_keys *keys, const char *user_id, int enabled,
		 const char *code)
{
	/* FOR UPDATE: concurrent uses of one code are serialized, and the
	 * second sees the step the first recorded. */
	static const char *sql =
		"SELECT secret_enc, last_step FROM user_mfa"
		" WHERE user_id = $1::uuid AND (enabled_at IS NOT NULL) = $2::boolean"
		" FOR UPDATE";
	const char *p[2] = {user_id, enabled ? "true" : "false"};
	PGresult *r = db_query(c, sql, 2, p, NULL);
	uint8_t *secret = NULL;
	size_t len = 0;
	int used = 0;
	int64_t last_step;
	int rc;

	if (r == NULL)
		return BZ_ERR_DB;
	if (PQntuples(r) != 1) {
		PQclear(r);
		return BZ_ERR_NOT_FOUND;
	}
	last_step = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
	/* The pre-0017 form has the bare user id as associated data. */
	rc = settings_open(&keys->ring, "user_mfa", "secret_enc", user_id, PQgetvalue(r, 0, 0),
			   user_id, &secret, &len, &used, NULL);
	PQclear(r);
	if (rc != 0)
		/* A secret no configured key opens (lost key, moved row) is an
		 * operator's problem, never a pass. */
		return BZ_ERR_CRYPTO;
	rc = totp_check_and_record(c, user_id, secret, len, last_step, code);
	if (rc == 0 && used != 0)
		rc = reseal(c, keys, user_id, secret, len);
	crypto_wipe(secret, len);
	free(secret);
	return rc;
}

/* ---- Enrolment ---- */

/* WHO's MFA state, locking the user row: *ENABLED from users.mfa_enabled. */
static int mfa_state(PGconn *c, const char *user_id, int *enabled)
{
	static const char *sql = "SELECT mfa_enabled FROM users WHERE id = $1::uuid FOR UPDATE";
	const char *p[1] = {user_id};
	PGresult *r = db_query(c, sql, 1, p, NULL);

	if (r == NULL)
		return BZ_ERR_DB;
	*enabled = PQntuples(r) == 1 && PQgetvalue(r, 0, 0)[0] == 't';
	PQclear(r);
	return 0;
}

/* The event of an MFA change of WHO (ACTION; RESULT NULL = success; REASON
 * a static failure reason or NULL). */
static void mfa_event(struct audit_event *ev, const struct principal *who, const char *action,
		      const char *reason)
{
	*ev = (struct audit_event){.org_id = who->org_id[0] ? who->org_id : NULL,
				   .actor_type = "user",
				   .actor_id = who->user_id,
				   .action = action,
				   .resource = "users",
				   .resource_id = who->user_id,
				   .result = reason ? "failure" : NULL,
				   .details = reason ? json_pack("{s:s}", "reason", reason) : NULL};
}

/* Checks WHO's PASSWORD; a wrong one is an audited refusal of ACTION. */
static int recheck_password(PGconn *c, const struct principal *who, const char *password,
			    const char *action, struct audit_event *ev, struct bz_errinfo *why)
{
	int rc = auth_user_check_password(c, who->user_id, password);

	if (rc == BZ_ERR_UNAUTHORIZED) {
		mfa_event(ev, who, action, "invalid_password");
		return bz_fail(why, BZ_ERR_FORBIDDEN, "invalid_password", "currentPassword",
			       "the current password is wrong");
	}
	return rc;
}

/* Seals a fresh secret for WHO as the pending one and renders it. */
static int new_pending_secret(PGconn *c, const struct mfa_keys *keys, const struct principal *who,
			      struct mfa_setup *out)
{
	static const char *sql =
		"INSERT INTO user_mfa (user_id, secret_enc) VALUES ($1::uuid, $2)"
		" ON CONFLICT (user_id) DO UPDATE SET secret_enc = EXCLUDED.secret_enc,"
		"   last_step = -1, created_at = now() WHERE user_mfa.enabled_at IS NULL";
	uint8_t secret[CRYPTO_TOTP_SECRET_LEN];
	char *sealed = NULL, *b32 = NULL;
	int rc = BZ_ERR_CRYPTO;

	if (crypto_random_bytes(secret, sizeof(secret)) != 0)
		goto out;
	if ((rc = seal(c, keys, who->user_id, secret, sizeof(secret), &sealed)) != 0)
		goto out;
	rc = BZ_ERR_CRYPTO;
	b32 = crypto_base32_encode(secret, sizeof(secret));
	if (b32 == NULL || strlen(b32) >= sizeof(out->secret))
		goto out;
	const char *p[2] = {who->user_id, sealed};
	if (db_exec(c, sql, 2, p) != 0) {
		rc = BZ_ERR_DB;
		goto out;
	}
	snprintf(out->secret, sizeof(out->secret), "%s", b32);
	out->otpauth_uri = auth_mfa_otpauth_uri(who->email, b32);
	out->qr_svg = out->otpauth_uri ? auth_mfa_qr_svg(out->otpauth_uri) : NULL;
	rc = out->qr_svg != NULL ? 0 : BZ_ERR_NOMEM;
out:
	crypto_wipe(secret, sizeof(secret));
	if (b32 != NULL) {
		crypto_wipe(b32, strlen(b32));
		free(b32);
	}
	free(sealed);
	return rc;
}

int auth_mfa_setup(PGconn *c, const struct config *cfg, const struct principal *who,
		   const char *password, struct mfa_setup *out, struct audit_event *ev,
		   struct bz_errinfo *why)
{
	struct mfa_keys keys;
	int enabled = 0, rc;

	memset(out, 0, sizeof(*out));
	*ev = (struct audit_event){0};
	if ((rc = mfa_keys_load(cfg, &keys, why)) != 0)
		return rc;
	if ((rc = recheck_password(c, who, password, "auth.mfa.setup", ev, why)) != 0)
		goto out;
	if ((rc = mfa_state(c, who->user_id, &enabled)) != 0)
		goto out;
	if (enabled) {
		rc = bz_fail(why, BZ_ERR_CONFLICT, "mfa_already_enabled", NULL,
			     "MFA is already on; disable it first to enrol a new device");
		goto out;
	}
	rc = new_pending_secret(c, &keys, who, out);
	if (rc == 0)
		rc = recovery_replace(c, &keys, who->user_id, &out->codes);
	if (rc == 0)
		mfa_event(ev, who, "auth.mfa.setup", NULL);
out:
	mfa_keys_wipe(&keys);
	return rc;
}

void auth_mfa_setup_free(struct mfa_setup *s)
{
	if (s->otpauth_uri != NULL) {
		crypto_wipe(s->otpauth_uri, strlen(s->otpauth_uri));
		free(s->otpauth_uri);
	}
	free(s->qr_svg);
	crypto_wipe(s, sizeof(*s));
}

/* A wrong TOTP code as the audited refusal of ACTION, or RC passed on. */
static int code_refused(int rc, const struct principal *who, const char *action,
			struct audit_event *ev, struct bz_errinfo *why)
{
	if (rc != BZ_ERR_UNAUTHORIZED)
		return rc;
	mfa_event(ev, who, action, "invalid_code");
	return bz_fail(why, BZ_ERR_FORBIDDEN, "invalid_code", "code",
		       "the code is wrong, expired or already used");
}

int auth_mfa_enable(PGconn *c, const struct config *cfg, const struct principal *who,
		    const char *code, struct audit_event *ev, struct bz_errinfo *why)
{
	static const char *on_sql =
		"UPDATE user_mfa SET enabled_at = now() WHERE user_id = $1::uuid";
	static const char *user_sql = "UPDATE users SET mfa_enabled = true WHERE id = $1::uuid";
	const char *p[1] = {who->user_id};
	struct mfa_keys keys;
	int enabled = 0, rc;
	long revoked = 0;

	*ev = (struct audit_event){0};
	if ((rc = mfa_keys_load(cfg, &keys, why)) != 0)
		return rc;
	if ((rc = mfa_state(c, who->user_id, &enabled)) != 0)
		goto out;
	if (enabled) {
		rc = bz_fail(why, BZ_ERR_CONFLICT, "mfa_already_enabled", NULL,
			     "MFA is already on");
		goto out;
	}
	rc = mfa_totp_use(c, &keys, who->user_id, 0, code);
	if (rc == BZ_ERR_NOT_FOUND) {
		rc = bz_fail(why, BZ_ERR_CONFLICT, "mfa_not_pending", NULL,
			     "no pending enrolment: call POST /api/v1/auth/mfa/setup first");
		goto out;
	}
	if ((rc = code_refused(rc, who, "auth.mfa.enable", ev, why)) != 0)
		goto out;
	if (db_exec(c, on_sql, 1, p) != 0 || db_exec(c, user_sql, 1, p) != 0 ||
	    auth_sessions_revoke_others(c, who->user_id, who->session_id, "mfa_enabled",
					&revoked) != 0) {
		rc = BZ_ERR_DB;
		goto out;
	}
	mfa_event(ev, who, "auth.mfa.enable", NULL);
	ev->details = json_pack("{s:I}", "sessionsRevoked", (json_int_t)revoked);
out:
	mfa_keys_wipe(&keys);
	return rc;
}

/* Deletes every trace of USER_ID's MFA. */
static int mfa_remove(PGconn *c, const char *user_id)
{
	static const char *const sql[] = {
		"DELETE FROM user_mfa WHERE user_id = $1::uuid",
		"DELETE FROM mfa_recovery_codes WHERE user_id = $1::uuid",
		"DELETE FROM mfa_challenges WHERE user_id = $1::uuid",
		"UPDATE users SET mfa_enabled = false WHERE id = $1::uuid",
	};
	const char *p[1] = {user_id};

	for (size_t i = 0; i < sizeof(sql) / sizeof(*sql); i++)
		if (db_exec(c, sql[i], 1, p) != 0)
			return BZ_ERR_DB;
	return 0;
}

int auth_mfa_disable(PGconn *c, const struct config *cfg, const struct principal *who,
		     const char *code, const char *password, struct audit_event *ev,
		     struct bz_errinfo *why)
{
	struct mfa_keys keys;
	int enabled = 0, rc;

	*ev = (struct audit_event){0};
	if (who->force_mfa) {
		mfa_event(ev, who, "auth.mfa.disable", "mfa_required_by_role");
		return bz_fail(why, BZ_ERR_FORBIDDEN, "mfa_required_by_role", NULL,
			       "the caller's role requires MFA");
	}
	if ((rc = mfa_keys_load(cfg, &keys, why)) != 0)
		return rc;
	if ((rc = mfa_state(c, who->user_id, &enabled)) != 0)
		goto out;
	if (!enabled) {
		rc = bz_fail(why, BZ_ERR_CONFLICT, "mfa_not_enabled", NULL, "MFA is not on");
		goto out;
	}
	if ((rc = recheck_password(c, who, password, "auth.mfa.disable", ev, why)) != 0)
		goto out;
	rc = code_refused(mfa_totp_use(c, &keys, who->user_id, 1, code), who, "auth.mfa.disable",
			  ev, why);
	if (rc == 0)
		rc = mfa_remove(c, who->user_id);
	if (rc == 0)
		mfa_event(ev, who, "auth.mfa.disable", NULL);
out:
	mfa_keys_wipe(&keys);
	return rc;
}

int auth_mfa_recovery_regenerate(PGconn *c, const struct config *cfg, const struct principal *who,
				 const char *password, struct mfa_codes *out,
				 struct audit_event *ev, struct bz_errinfo *why)
{
	struct mfa_keys keys;
	int enabled = 0, rc;

	memset(out, 0, sizeof(*out));
	*ev = (struct audit_event){0};
	if ((rc = mfa_keys_load(cfg, &keys, why)) != 0)
		return rc;
	if ((rc = mfa_state(c, who->user_id, &enabled)) != 0)
		goto out;
	if (!enabled) {
		rc = bz_fail(why, BZ_ERR_CONFLICT, "mfa_not_enabled", NULL, "MFA is not on");
		goto out;
	}
	if ((rc = recheck_password(c, who, password, "auth.mfa.recovery_codes", ev, why)) != 0)
		goto out;
	if ((rc = recovery_replace(c, &keys, who->user_id, out)) == 0)
		mfa_event(ev, who, "auth.mfa.recovery_codes", NULL);
out:
	mfa_keys_wipe(&keys);
	return rc;
}
