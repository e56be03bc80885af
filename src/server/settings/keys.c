/*
 * keys.c — the keyring of the configuration, sealing with a count of
 * encryptions per key, and opening with a clear, logged error
 * (settings.h; docs/encryption.md).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "crypto/crypto.h"
#include "server/db/db.h"
#include "server/settings/settings.h"

int settings_keyring(const struct config *cfg, struct crypto_keyring *kr, struct bz_errinfo *why)
{
	const char *hex = cfg->secrets[SECRET_APP_ENCRYPTION_KEY];

	if (hex == NULL || crypto_keyring_load(kr, hex, cfg->app_encryption_key_id,
					       cfg->app_encryption_keyring, NULL) != 0)
		return bz_fail(why, BZ_ERR_UNAVAILABLE, "encryption_key_missing", NULL,
			       "encrypted values need APP_ENCRYPTION_KEY");
	return 0;
}

void settings_aad(char *out, size_t len, const char *table, const char *column, const char *row_id)
{
	snprintf(out, len, "%s.%s:%s", table, column, row_id);
}

int settings_count_encryptions(PGconn *c, const char *key_id, long long n, long long *total)
{
	static const char *sql =
		"INSERT INTO encryption_key_usage AS u (key_id, encryptions) VALUES ($1, $2::bigint)"
		" ON CONFLICT (key_id) DO UPDATE SET encryptions = u.encryptions + EXCLUDED.encryptions,"
		" last_used_at = now() RETURNING encryptions";
	char nbuf[24];
	PGresult *r;

	snprintf(nbuf, sizeof(nbuf), "%lld", n);
	const char *p[2] = {key_id, nbuf};
	if ((r = db_query(c, sql, 2, p, NULL)) == NULL)
		return BZ_ERR_DB;
	long long t = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	if (t >= SETTINGS_KEY_WARN_ENCRYPTIONS) {
		char tbuf[24];
		snprintf(tbuf, sizeof(tbuf), "%lld", t);
		log_warn("encryption.key.usage_high", "keyId", key_id, "encryptions", tbuf, "limit",
			 "4294967296", "action",
			 "rotate APP_ENCRYPTION_KEY (docs/encryption.md): NIST SP 800-38D bounds "
			 "random-nonce GCM to 2^32 encryptions per key",
			 NULL);
	}
	if (total != NULL)
		*total = t;
	return 0;
}

int settings_seal(PGconn *c, const struct crypto_keyring *kr, const char *table, const char *column,
		  const char *row_id, const void *plain, size_t len, char **out)
{
	char aad[160];

	*out = NULL;
	if (len > CRYPTO_ENV_MAX_PLAIN)
		return BZ_ERR_TOO_LARGE;
	settings_aad(aad, sizeof(aad), table, column, row_id);
	if ((*out = crypto_env_seal(kr, plain, len, aad)) == NULL)
		return BZ_ERR_CRYPTO;
	int rc = settings_count_encryptions(c, kr->k[0].id, 1, NULL);
	if (rc != 0) {
		free(*out);
		*out = NULL;
	}
	return rc;
}

/* Opens a pre-0017 "v1:" value (crypto/aead.h) with every key of KR under
 * its aead fingerprint. */
static int open_legacy(const struct crypto_keyring *kr, const char *sealed, const char *aad,
		       uint8_t **plain, size_t *len)
{
	struct crypto_aead_key keys[CRYPTO_ENV_MAX_KEYS];
	int rc;

	for (size_t i = 0; i < kr->n; i++) {
		memcpy(keys[i].key, kr->k[i].key, sizeof(keys[i].key));
		memcpy(keys[i].id, kr->k[i].fingerprint, sizeof(keys[i].id));
	}
	rc = crypto_aead_open(keys, kr->n, sealed, aad, strlen(aad), plain, len, NULL);
	crypto_wipe(keys, sizeof(keys));
	/* aead.h says BZ_ERR_INVALID for "no key of that id" as well. */
	return rc;
}

int settings_open(const struct crypto_keyring *kr, const char *table, const char *column,
		  const char *row_id, const char *sealed, const char *legacy_aad, uint8_t **plain,
		  size_t *len, int *used, struct bz_errinfo *why)
{
	char aad[160], id[CRYPTO_ENV_KEY_ID_MAX + 1] = "";
	size_t k = 0;
	int rc;

	*plain = NULL;
	*len = 0;
	if (legacy_aad != NULL && strncmp(sealed, "v1:", 3) == 0) {
		snprintf(id, sizeof(id), "v1:%.8s", sealed + 3);
		rc = open_legacy(kr, sealed, legacy_aad, plain, len);
		if (rc == 0 && used != NULL)
			*used = -1;
	} else {
		settings_aad(aad, sizeof(aad), table, column, row_id);
		crypto_env_key_id(sealed, id);
		rc = crypto_env_open(kr, sealed, aad, plain, len, &k);
		if (rc == 0 && used != NULL)
			*used = (int)k;
	}
	if (rc == 0)
		return 0;
	log_error("encryption.undecryptable", "table", table, "column", column, "rowId", row_id,
		  "keyId", id[0] ? id : "(none)", "reason", crypto_env_error_name(rc), NULL);
	return bz_fail(why, BZ_ERR_INTERNAL, SETTINGS_UNDECRYPTABLE, NULL,
		       "a stored encrypted value cannot be decrypted (wrong or unknown key, or "
		       "the value was altered)");
}
