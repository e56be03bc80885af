/*
 * mfa_internal.h — what mfa.c shares with mfa_login.c; not part of the
 * module's public face (mfa.h).
 */
#ifndef BZ_MFA_INTERNAL_H
#define BZ_MFA_INTERNAL_H

#include "crypto/envelope.h"
#include "server/auth/mfa.h"

/* MFA_ENCRYPTION_KEY (ring.k[0]) and MFA_ENCRYPTION_KEY_PREVIOUS (ring.k[1],
 * when set and different), each named by its fingerprint, and
 * MFA_RECOVERY_CODE_PEPPER (borrowed). TOTP secrets are "enc:v1:" values
 * (crypto/envelope.h, docs/encryption.md) with associated data
 * "user_mfa.secret_enc:<user id>"; ones sealed before migration 0017 are
 * crypto/aead.h's "v1:" with the user id as associated data, and still
 * open. */
struct mfa_keys {
	struct crypto_keyring ring;
	const char *pepper;
};

/* Loads KEYS from CFG. Returns 0, or BZ_ERR_UNAVAILABLE with WHY
 * "mfa_not_configured" when the key or pepper is unset or malformed. */
int mfa_keys_load(const struct config *cfg, struct mfa_keys *keys, struct bz_errinfo *why);

/* Zeroes KEYS. */
void mfa_keys_wipe(struct mfa_keys *keys);

/*
 * Checks TOTP CODE against USER_ID's secret (the live one when ENABLED,
 * the pending one otherwise), locking its row; on success records the
 * code's step as used (and re-seals a secret found under the previous key,
 * or in the old format, with the current one). Returns 0, BZ_ERR_NOT_FOUND (no such secret),
 * BZ_ERR_UNAUTHORIZED (wrong, out of window or already used),
 * BZ_ERR_CRYPTO or BZ_ERR_DB.
 */
int mfa_totp_use(PGconn *c, const struct mfa_keys *keys, const char *user_id, int enabled,
		 const char *code);

/* Spends recovery code CODE of USER_ID (any case, dash optional) in one
 * UPDATE … WHERE used_at IS NULL. Returns 0, BZ_ERR_UNAUTHORIZED (not one,
 * or already used), BZ_ERR_CRYPTO or BZ_ERR_DB. */
int mfa_recovery_use(PGconn *c, const struct mfa_keys *keys, const char *user_id, const char *code);

/* bz_now() as text, for to_timestamp($n) in SQL (the test clock). */
void mfa_now_text(char out[24]);

#endif
