/*
 * settings.c — partner and site settings (settings.h): a JSON object per
 * partner and per site, stored only as "enc:v1:" ciphertext in
 * partners.settings_enc and sites.settings_enc (checklist O2), changed by
 * JSON merge patch (RFC 7396) and audited with secret values redacted.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "common/text.h"
#include "crypto/crypto.h"
#include "server/db/db.h"
#include "server/settings/settings.h"

/* What differs between the two owners. The SQL names are constants. */
static const struct owner {
	const char *table, *noun, *action, *select_sql, *lock_sql, *update_sql;
} owners[] = {
	[SETTINGS_PARTNER] = {"partners", "partner", "partner.settings.update",
			      "SELECT settings_enc FROM partners WHERE id = $1::uuid",
			      "SELECT settings_enc FROM partners WHERE id = $1::uuid FOR UPDATE",
			      "UPDATE partners SET settings_enc = $2 WHERE id = $1::uuid"},
	[SETTINGS_SITE] =
		{"sites", "site", "site.settings.update",
		 "SELECT settings_enc FROM sites WHERE id = $1::uuid AND deleted_at IS NULL",
		 "SELECT settings_enc FROM sites WHERE id = $1::uuid AND deleted_at IS NULL"
		 " FOR UPDATE",
		 "UPDATE sites SET settings_enc = $2 WHERE id = $1::uuid"},
};

#define COLUMN "settings_enc"

int settings_name_is_secret(const char *name)
{
	/* Word parts of secret names, matched anywhere in NAME in any letter
	 * case (docs/encryption.md "Audit"): "pass" covers passwd/passphrase,
	 * "auth" an authorization header or a nodemailer-style "auth" object. */
	static const char *const words[] = {"secret",  "password", "token",	"key",
					    "pass",    "pwd",	   "auth",	"dsn",
					    "private", "cert",	   "credential"};

	for (size_t i = 0; i < sizeof(words) / sizeof(*words); i++)
		if (strcasestr(name, words[i]) != NULL)
			return 1;
	return 0;
}

json_t *settings_redact(const json_t *v)
{
	const char *k;
	json_t *m, *out;

	if (json_is_array(v)) {
		size_t i;
		out = json_array();
		json_array_foreach(v, i, m)
			json_array_append_new(out, settings_redact(m));
		return out;
	}
	if (!json_is_object(v))
		return json_deep_copy(v);
	out = json_object();
	json_object_foreach((json_t *)v, k, m) {
		if (settings_name_is_secret(k) && !json_is_null(m))
			json_object_set_new(out, k, json_string("[REDACTED]"));
		else
			json_object_set_new(out, k, settings_redact(m));
	}
	return out;
}

json_t *settings_merge_patch(const json_t *target, const json_t *patch)
{
	const char *k;
	json_t *m;

	if (!json_is_object(patch))
		return json_deep_copy(patch);
	json_t *out = json_is_object(target) ? json_deep_copy(target) : json_object();
	if (out == NULL)
		return NULL;
	json_object_foreach((json_t *)patch, k, m) {
		if (json_is_null(m)) {
			json_object_del(out, k);
			continue;
		}
		json_t *merged = settings_merge_patch(json_object_get(out, k), m);
		if (merged == NULL || json_object_set_new(out, k, merged) != 0) {
			json_decref(out);
			return NULL;
		}
	}
	return out;
}

/* 1 if every top-level member name of PATCH is 1..64 characters of
 * [A-Za-z0-9_.-] starting with a letter (docs/openapi.yaml). */
static int names_ok(const json_t *patch)
{
	const char *k;
	json_t *m;

	json_object_foreach((json_t *)patch, k, m) {
		size_t n = strlen(k);
		if (n < 1 || n > 64 || !isalpha((unsigned char)k[0]) ||
		    strspn(k,
			   "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") !=
			    n)
			return 0;
	}
	return 1;
}

/* Copies the UUID ID into OUT[37] in its canonical spelling (lower case,
 * RFC 4122 §3), the one the database returns and the associated data of
 * the sealed value uses (docs/encryption.md). BZ_ERR_NOT_FOUND when ID is
 * not a UUID. */
static int canonical_id(const char *id, char out[37])
{
	if (!is_uuid(id))
		return BZ_ERR_NOT_FOUND;
	for (size_t i = 0; i < 36; i++)
		out[i] = (char)tolower((unsigned char)id[i]);
	out[36] = '\0';
	return 0;
}

/* 1 if PATCH, as compact JSON, is longer than SETTINGS_MAX_BYTES (it is
 * copied, redacted, into the audit row, which nothing trims). */
static int patch_too_large(const json_t *patch)
{
	size_t n = json_dumpb(patch, NULL, 0, JSON_COMPACT);
	return n == 0 || n > SETTINGS_MAX_BYTES;
}

/* Access to the settings of ID (settings_get's rules); ORG[37] gets the
 * site's organization ("" for a partner). */
static int check_access(PGconn *c, const struct tenancy_scope *sc, enum settings_owner o,
			const char *id, char org[37], struct bz_errinfo *why)
{
	org[0] = '\0';
	if (o == SETTINGS_SITE) {
		int rc = tenancy_site_visible(c, sc, id, org);
		return rc == 0 || rc == BZ_ERR_DB ? rc : BZ_ERR_NOT_FOUND;
	}
	if (sc->partner_id[0] == '\0' || strcmp(sc->partner_id, id) != 0)
		return BZ_ERR_NOT_FOUND;
	if (sc->limited)
		return bz_fail(why, BZ_ERR_FORBIDDEN, NULL, NULL,
			       "only partner users with access to every organization can use the "
			       "partner's settings");
	return 0;
}

/* Reads and opens the settings of ID with SQL (plain or FOR UPDATE) into
 * *OUT (a new object; {} when none). */
static int load(PGconn *c, const struct crypto_keyring *kr, enum settings_owner o, const char *sql,
		const char *id, json_t **out, struct bz_errinfo *why)
{
	const char *p[1] = {id};
	uint8_t *plain = NULL;
	size_t len = 0;
	PGresult *r;
	int rc = 0;

	*out = NULL;
	if ((r = db_query(c, sql, 1, p, NULL)) == NULL)
		return BZ_ERR_DB;
	if (PQntuples(r) != 1) {
		PQclear(r);
		return BZ_ERR_NOT_FOUND;
	}
	if (PQgetisnull(r, 0, 0)) {
		PQclear(r);
		*out = json_object();
		return *out == NULL ? BZ_ERR_NOMEM : 0;
	}
	rc = settings_open(kr, owners[o].table, COLUMN, id, PQgetvalue(r, 0, 0), NULL, &plain, &len,
			   NULL, why);
	PQclear(r);
	if (rc != 0)
		return rc;
	*out = json_loadb((const char *)plain, len, JSON_REJECT_DUPLICATES, NULL);
	crypto_wipe(plain, len);
	free(plain);
	if (!json_is_object(*out)) {
		json_decref(*out);
		*out = NULL;
		return bz_fail(why, BZ_ERR_INTERNAL, SETTINGS_UNDECRYPTABLE, NULL,
			       "stored settings are not a JSON object");
	}
	return 0;
}

int settings_get(PGconn *c, const struct config *cfg, const struct tenancy_scope *sc,
		 enum settings_owner o, const char *any_id, json_t **out, struct bz_errinfo *why)
{
	struct crypto_keyring kr;
	char org[37], id[37];
	int rc;

	*out = NULL;
	if ((rc = canonical_id(any_id, id)) != 0 ||
	    (rc = check_access(c, sc, o, id, org, why)) != 0 ||
	    (rc = settings_keyring(cfg, &kr, why)) != 0)
		return rc;
	rc = load(c, &kr, o, owners[o].select_sql, id, out, why);
	crypto_keyring_wipe(&kr);
	return rc;
}

/* Seals NEW (NULL for {}: the column becomes NULL) for ID and stores it. */
static int store(PGconn *c, const struct crypto_keyring *kr, enum settings_owner o, const char *id,
		 const json_t *settings)
{
	char *text = NULL, *sealed = NULL;
	int rc = 0;

	if (json_object_size(settings) > 0) {
		if ((text = json_dumps(settings, JSON_COMPACT | JSON_SORT_KEYS)) == NULL)
			return BZ_ERR_NOMEM;
		if (strlen(text) > SETTINGS_MAX_BYTES)
			rc = BZ_ERR_TOO_LARGE;
		else
			rc = settings_seal(c, kr, owners[o].table, COLUMN, id, text, strlen(text),
					   &sealed);
		crypto_wipe(text, strlen(text));
		free(text);
	}
	if (rc == 0) {
		const char *p[2] = {id, sealed};
		rc = db_exec(c, owners[o].update_sql, 2, p);
	}
	free(sealed);
	return rc;
}

/* The top-level members PATCH changes in OLD → NEW, as a new array. */
static json_t *changed_members(const json_t *old, const json_t *new, const json_t *patch)
{
	json_t *names = json_array(), *m;
	const char *k;

	json_object_foreach((json_t *)patch, k, m) {
		json_t *a = json_object_get(old, k), *b = json_object_get(new, k);
		/* json_equal(NULL, NULL) is 0: absent before and after is no change. */
		if ((a != NULL || b != NULL) && !json_equal(a, b))
			json_array_append_new(names, json_string(k));
	}
	return names;
}

int settings_patch(PGconn *c, const struct config *cfg, const struct tenancy_scope *sc,
		   enum settings_owner o, char id[37], const json_t *patch, json_t **out,
		   char org[37], struct audit_event *ev, struct bz_errinfo *why)
{
	struct crypto_keyring kr;
	json_t *old = NULL, *new = NULL;
	int rc;

	*out = NULL;
	if ((rc = canonical_id(id, id)) != 0)
		return rc;
	if (!json_is_object(patch) || !names_ok(patch))
		return bz_fail(why, BZ_ERR_INVALID, NULL, NULL,
			       "settings member names are 1 to 64 characters of letters, digits, "
			       "'_', '-' and '.', starting with a letter");
	if (patch_too_large(patch))
		return bz_fail(why, BZ_ERR_TOO_LARGE, NULL, NULL,
			       "a settings patch is limited to 16384 bytes of JSON");
	if ((rc = check_access(c, sc, o, id, org, why)) != 0 ||
	    (rc = settings_keyring(cfg, &kr, why)) != 0)
		return rc;
	if ((rc = load(c, &kr, o, owners[o].lock_sql, id, &old, why)) != 0)
		goto out;
	if ((new = settings_merge_patch(old, patch)) == NULL) {
		rc = BZ_ERR_NOMEM;
		goto out;
	}
	if (!json_equal(old, new)) {
		if ((rc = store(c, &kr, o, id, new)) == BZ_ERR_TOO_LARGE)
			bz_fail(why, rc, NULL, NULL, "settings are limited to 16384 bytes of JSON");
		if (rc != 0)
			goto out;
		*ev = (struct audit_event){.org_id = o == SETTINGS_SITE ? org : NULL,
					   .action = owners[o].action,
					   .resource = owners[o].table,
					   .resource_id = id,
					   .details = json_pack("{s:o,s:o}", "changed",
								changed_members(old, new, patch),
								"patch", settings_redact(patch))};
	}
	*out = new;
	new = NULL;
out:
	crypto_keyring_wipe(&kr);
	json_decref(old);
	json_decref(new);
	return rc;
}
