/*
 * api_keys.c — API keys: the SQL of the api_keys table (migration 0010).
 *
 * A key is "brz_key_" + base64url of 32 random bytes, shown once; only its
 * SHA-256 is stored. A key authenticates as its creator, with the key's
 * permissions that the creator's role holds at the time of each request,
 * within the creator's scope and, when the key names an organization, only
 * that one. Revoked or expired keys (bz_now()) and keys of disabled users
 * are refused.
 *
 * The key is found by its hash through the unique index, not compared
 * byte by byte in C: a timing difference in the index lookup can only tell
 * an attacker something about the SHA-256 of the value they sent, and with
 * 256 random bits behind each key no hash prefix leads back to a key, so
 * there is nothing for a constant-time compare to protect.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/iso8601.h"
#include "common/log.h"
#include "common/text.h"
#include "crypto/crypto.h"
#include "server/auth/auth.h"
#include "server/auth/permissions.h"
#include "server/db/db.h"

#define KEY_RANDOM_BYTES 32
#define KEY_BODY_LEN 43		  /* base64url of 32 bytes, unpadded */
#define LAST_USED_RESOLUTION_S 60 /* lastUsedAt is exact to about a minute */

#define KEY_COLS                                                                                   \
	"k.id, k.name, k.key_prefix, coalesce(k.org_id::text, ''), k.created_by,"                  \
	" array_to_json(k.permissions), " DB_TS(                                                   \
		"k.created_at") ","                                                                \
				" coalesce(" DB_TS("k.last_used_at") ", ''), coalesce(" DB_TS(     \
					"k.expires_at") ", ''),"                                   \
							" coalesce(" DB_TS("k.revoked_at") ", '')"

/* The keys a caller manages ($1 the caller, $2 whether it manages other
 * users' keys, $3.. the user visibility of users.c): its own, and with
 * users:write those of every user it sees. */
#define KEY_MANAGED                                                                                \
	" (k.created_by = $1::uuid OR ($2::boolean AND k.created_by IN"                            \
	"   (SELECT u.id FROM users u WHERE (u.partner_id = $3::uuid AND NOT $5::boolean)"         \
	"     OR u.org_id = ANY($4::uuid[]))))"

static void key_from_row(const PGresult *r, int i, struct auth_api_key *k)
{
	text_copy(k->id, sizeof(k->id), PQgetvalue(r, i, 0));
	text_copy(k->name, sizeof(k->name), PQgetvalue(r, i, 1));
	text_copy(k->prefix, sizeof(k->prefix), PQgetvalue(r, i, 2));
	text_copy(k->org_id, sizeof(k->org_id), PQgetvalue(r, i, 3));
	text_copy(k->created_by, sizeof(k->created_by), PQgetvalue(r, i, 4));
	k->permissions = json_loads(PQgetvalue(r, i, 5), 0, NULL);
	if (!json_is_array(k->permissions)) {
		json_decref(k->permissions);
		k->permissions = json_array();
	}
	text_copy(k->created_at, sizeof(k->created_at), PQgetvalue(r, i, 6));
	text_copy(k->last_used_at, sizeof(k->last_used_at), PQgetvalue(r, i, 7));
	text_copy(k->expires_at, sizeof(k->expires_at), PQgetvalue(r, i, 8));
	text_copy(k->revoked_at, sizeof(k->revoked_at), PQgetvalue(r, i, 9));
}

void auth_api_key_free(struct auth_api_key *k)
{
	json_decref(k->permissions);
	k->permissions = NULL;
}

void auth_api_keys_free(struct auth_api_key *keys, size_t n)
{
	for (size_t i = 0; i < n; i++)
		auth_api_key_free(&keys[i]);
	free(keys);
}

/* The chain a key's events go to: its organization, else an organization
 * user's own; partner staff's keys without one go to the partner chain. */
static const char *audit_org(const struct tenancy_scope *sc, const struct auth_api_key *k)
{
	if (k->org_id[0])
		return k->org_id;
	if (sc->partner_id[0] == '\0')
		return json_string_value(json_array_get(sc->org_ids, 0));
	return NULL;
}

/* A fresh raw key into RAW[AUTH_API_KEY_LEN + 1] and its hash into HASH. */
static int new_key(char raw[AUTH_API_KEY_LEN + 1], char hash[BZ_SHA256_HEX_LEN + 1])
{
	unsigned char rnd[KEY_RANDOM_BYTES];
	char *b64;
	int rc = BZ_ERR_CRYPTO;

	if (crypto_random_bytes(rnd, sizeof(rnd)) != 0)
		return BZ_ERR_CRYPTO;
	b64 = crypto_base64url_encode(rnd, sizeof(rnd));
	crypto_wipe(rnd, sizeof(rnd));
	if (b64 == NULL)
		return BZ_ERR_NOMEM;
	if (strlen(b64) == KEY_BODY_LEN) {
		snprintf(raw, AUTH_API_KEY_LEN + 1, "%s%s", AUTH_API_KEY_PREFIX, b64);
		rc = crypto_sha256_hex(raw, strlen(raw), hash);
	}
	crypto_wipe(b64, strlen(b64));
	free(b64);
	return rc;
}

/* Checks IN against the caller (SC, HELD) and the clock NOW. */
static int check_new(const struct tenancy_scope *sc, const json_t *held,
		     const struct auth_api_key_new *in, int64_t now, char expires[32],
		     struct bz_errinfo *why)
{
	const struct permission *missing;
	int64_t us;

	expires[0] = '\0';
	if (permissions_check_list(in->permissions, NULL) != 0)
		return bz_fail(why, BZ_ERR_INVALID, "validation_error", "permissions",
			       "field 'permissions' must list known permissions, each once");
	if (!permissions_within(in->permissions, held, &missing))
		return bz_fail(why, BZ_ERR_FORBIDDEN, "permission_not_held", "permissions",
			       missing != NULL ? missing->not_held_msg
					       : "you cannot grant a permission you lack");
	if (in->org_id != NULL && !tenancy_scope_has_org(sc, in->org_id))
		return bz_fail(why, BZ_ERR_NOT_FOUND, NULL, NULL, "organization not found");
	if (in->expires_at == NULL)
		return 0;
	if (iso8601_parse_us(in->expires_at, &us) != 0 || us / 1000000 <= now)
		return bz_fail(why, BZ_ERR_INVALID, "validation_error", "expiresAt",
			       "field 'expiresAt' must be an ISO 8601 time in the future");
	snprintf(expires, 32, "%lld", (long long)(us / 1000000));
	return 0;
}

/* Key ID as the API shows it, into OUT (no scope check). */
static int read_key(PGconn *c, const char *id, struct auth_api_key *out)
{
	static const char *sql = "SELECT " KEY_COLS " FROM api_keys k WHERE k.id = $1::uuid";
	const char *p[1] = {id};
	PGresult *r = db_query(c, sql, 1, p, NULL);
	int rc = BZ_ERR_INTERNAL;

	if (r == NULL)
		return BZ_ERR_DB;
	if (PQntuples(r) == 1) {
		key_from_row(r, 0, out);
		rc = 0;
	}
	PQclear(r);
	return rc;
}

int auth_api_key_create(PGconn *c, const struct tenancy_scope *sc, const json_t *held,
			const struct auth_api_key_new *in, int64_t now, struct auth_api_key *out,
			char raw[AUTH_API_KEY_LEN + 1], struct audit_event *ev,
			struct bz_errinfo *why)
{
	static const char *sql =
		"INSERT INTO api_keys (created_by, org_id, name, key_hash, key_prefix, permissions,"
		" created_at, expires_at)"
		" VALUES ($1::uuid, $2::uuid, $3, $4, $5,"
		"  ARRAY(SELECT json_array_elements_text($6::json)), to_timestamp($7::bigint),"
		"  to_timestamp($8::bigint)) RETURNING id";
	char hash[BZ_SHA256_HEX_LEN + 1], prefix[AUTH_API_KEY_PREFIX_SHOWN + 1], expires[32];
	char now_s[24], id[37], *perms = NULL;
	PGresult *r;
	int rc;

	memset(out, 0, sizeof(*out));
	raw[0] = '\0';
	if ((rc = check_new(sc, held, in, now, expires, why)) != 0)
		return rc;
	if ((rc = new_key(raw, hash)) != 0)
		goto out;
	if ((perms = json_dumps(in->permissions, JSON_COMPACT)) == NULL) {
		rc = BZ_ERR_NOMEM;
		goto out;
	}
	text_copy(prefix, sizeof(prefix), raw);
	snprintf(now_s, sizeof(now_s), "%lld", (long long)now);
	const char *p[8] = {sc->user_id, in->org_id, in->name, hash,
			    prefix,	 perms,	     now_s,    expires[0] ? expires : NULL};
	if ((r = db_query(c, sql, 8, p, NULL)) == NULL) {
		rc = BZ_ERR_DB;
		goto out;
	}
	text_copy(id, sizeof(id), PQgetvalue(r, 0, 0));
	PQclear(r);
	if ((rc = read_key(c, id, out)) != 0)
		goto out;
	*ev = (struct audit_event){.org_id = audit_org(sc, out),
				   .action = "api_key.create",
				   .resource = "api_keys",
				   .resource_id = out->id,
				   .details =
					   json_pack("{s:s,s:s,s:O,s:s?}", "name", out->name,
						     "prefix", out->prefix, "permissions",
						     out->permissions, "expiresAt",
						     out->expires_at[0] ? out->expires_at : NULL)};
out:
	free(perms);
	if (rc != 0)
		crypto_wipe(raw, AUTH_API_KEY_LEN + 1);
	return rc;
}

/* The parameters of KEY_MANAGED for SC. */
static void managed_params(const struct tenancy_scope *sc, int manage_others, const char *p[5])
{
	p[0] = sc->user_id;
	p[1] = manage_others ? "true" : "false";
	p[2] = sc->partner_id[0] ? sc->partner_id : NULL;
	p[3] = sc->org_ids_pg;
	p[4] = sc->limited ? "true" : "false";
}

int auth_api_key_list(PGconn *c, const struct tenancy_scope *sc, int manage_others,
		      struct auth_api_key **out, size_t *n)
{
	static const char *sql = "SELECT " KEY_COLS " FROM api_keys k WHERE" KEY_MANAGED
				 " ORDER BY k.created_at DESC, k.id LIMIT 1000";
	const char *p[5];
	PGresult *r;

	*out = NULL;
	*n = 0;
	managed_params(sc, manage_others, p);
	if ((r = db_query(c, sql, 5, p, NULL)) == NULL)
		return BZ_ERR_DB;
	if (PQntuples(r) > 0 && (*out = calloc((size_t)PQntuples(r), sizeof(**out))) == NULL) {
		PQclear(r);
		return BZ_ERR_NOMEM;
	}
	for (int i = 0; i < PQntuples(r); i++)
		key_from_row(r, i, &(*out)[i]);
	*n = (size_t)PQntuples(r);
	PQclear(r);
	return 0;
}

int auth_api_key_revoke(PGconn *c, const struct tenancy_scope *sc, int manage_others,
			const char *id, int64_t now, struct auth_api_key *out,
			struct audit_event *ev, struct bz_errinfo *why)
{
	static const char *sql = "UPDATE api_keys k SET revoked_at = to_timestamp($7::bigint)"
				 " WHERE k.id = $6::uuid AND k.revoked_at IS NULL AND" KEY_MANAGED;
	static const char *sql_seen = "SELECT 1 FROM api_keys k WHERE k.id = $6::uuid AND"
				      " $7::text IS NOT NULL AND" KEY_MANAGED;
	char now_s[24];
	const char *p[7];
	PGresult *r;
	int rc;

	memset(out, 0, sizeof(*out));
	*ev = (struct audit_event){0};
	if (!is_uuid(id))
		return bz_fail(why, BZ_ERR_NOT_FOUND, NULL, NULL, "API key not found");
	snprintf(now_s, sizeof(now_s), "%lld", (long long)now);
	managed_params(sc, manage_others, p);
	p[5] = id;
	p[6] = now_s;
	if ((r = db_query(c, sql, 7, p, NULL)) == NULL)
		return BZ_ERR_DB;
	int revoked = strtol(PQcmdTuples(r), NULL, 10) == 1;
	PQclear(r);
	if (!revoked) {
		/* Revoking twice changes nothing and writes no second row. */
		if ((r = db_query(c, sql_seen, 7, p, NULL)) == NULL)
			return BZ_ERR_DB;
		int seen = PQntuples(r) == 1;
		PQclear(r);
		if (!seen)
			return bz_fail(why, BZ_ERR_NOT_FOUND, NULL, NULL, "API key not found");
	}
	if ((rc = read_key(c, id, out)) != 0)
		return rc;
	if (revoked)
		*ev = (struct audit_event){.org_id = audit_org(sc, out),
					   .action = "api_key.revoke",
					   .resource = "api_keys",
					   .resource_id = out->id,
					   .details = json_pack("{s:s,s:s}", "name", out->name,
								"prefix", out->prefix)};
	return 0;
}

/* ---- Authenticating with a key ---- */

/* The key behind hash $1 at time $2, if it still works: not revoked, not
 * expired, its creator active. Its permissions are those of the key that
 * the creator's role holds now; force_mfa and mfa_enabled are the
 * creator's, for the forced-enrolment gate. The last column says whether
 * last_used_at is older than LAST_USED_RESOLUTION_S. */
static const char *principal_sql =
	"SELECT k.id, u.id, coalesce(u.partner_id::text, ''), coalesce(u.org_id::text, ''),"
	"       u.email, u.name, r.id, r.name, role_force_mfa(r.id, u.id), u.mfa_enabled,"
	"       array_to_json(ARRAY(SELECT p FROM unnest(k.permissions) p"
	"                            WHERE p = ANY(r.permissions) ORDER BY p)),"
	"       coalesce(k.org_id::text, ''),"
	"       k.last_used_at IS NULL"
	"        OR k.last_used_at < to_timestamp($2::bigint) - make_interval(secs => $3::int)"
	"  FROM api_keys k JOIN users u ON u.id = k.created_by JOIN roles r ON r.id = u.role_id"
	" WHERE k.key_hash = $1 AND k.revoked_at IS NULL"
	"   AND (k.expires_at IS NULL OR k.expires_at > to_timestamp($2::bigint))"
	"   AND u.status = 'active'";

/* At most one write per key per LAST_USED_RESOLUTION_S, not one per
 * request; a failure only costs the timestamp. */
static void touch(PGconn *c, const char *id, const char *now_s)
{
	static const char *sql = "UPDATE api_keys SET last_used_at = to_timestamp($2::bigint)"
				 " WHERE id = $1::uuid";
	const char *p[2] = {id, now_s};

	if (db_exec(c, sql, 2, p) != 0)
		log_warn("api_key.touch_failed", "apiKeyId", id, NULL);
}

static int well_formed(const char *raw)
{
	size_t plen = strlen(AUTH_API_KEY_PREFIX);

	if (raw == NULL || strlen(raw) != AUTH_API_KEY_LEN ||
	    strncmp(raw, AUTH_API_KEY_PREFIX, plen))
		return 0;
	for (const char *s = raw + plen; *s; s++)
		if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') ||
		      (*s >= '0' && *s <= '9') || *s == '-' || *s == '_'))
			return 0;
	return 1;
}

static void principal_from_row(const PGresult *r, struct principal *w, char org_id[37])
{
	w->authenticated = 1;
	text_copy(w->api_key_id, sizeof(w->api_key_id), PQgetvalue(r, 0, 0));
	text_copy(w->user_id, sizeof(w->user_id), PQgetvalue(r, 0, 1));
	text_copy(w->partner_id, sizeof(w->partner_id), PQgetvalue(r, 0, 2));
	text_copy(w->org_id, sizeof(w->org_id), PQgetvalue(r, 0, 3));
	text_copy(w->email, sizeof(w->email), PQgetvalue(r, 0, 4));
	text_copy(w->name, sizeof(w->name), PQgetvalue(r, 0, 5));
	text_copy(w->role_id, sizeof(w->role_id), PQgetvalue(r, 0, 6));
	text_copy(w->role_name, sizeof(w->role_name), PQgetvalue(r, 0, 7));
	w->force_mfa = PQgetvalue(r, 0, 8)[0] == 't';
	w->mfa_enabled = PQgetvalue(r, 0, 9)[0] == 't';
	w->permissions = json_loads(PQgetvalue(r, 0, 10), 0, NULL);
	if (!json_is_array(w->permissions)) {
		json_decref(w->permissions);
		w->permissions = json_array();
	}
	text_copy(org_id, 37, PQgetvalue(r, 0, 11));
}

int auth_api_key_principal(PGconn *c, const char *raw, int64_t now, struct principal *out,
			   char org_id[37])
{
	char hash[BZ_SHA256_HEX_LEN + 1], now_s[24], res[16];
	PGresult *r;

	memset(out, 0, sizeof(*out));
	org_id[0] = '\0';
	if (!well_formed(raw))
		return BZ_ERR_UNAUTHORIZED;
	if (crypto_sha256_hex(raw, strlen(raw), hash) != 0)
		return BZ_ERR_CRYPTO;
	snprintf(now_s, sizeof(now_s), "%lld", (long long)now);
	snprintf(res, sizeof(res), "%d", LAST_USED_RESOLUTION_S);
	const char *p[3] = {hash, now_s, res};
	if ((r = db_query(c, principal_sql, 3, p, NULL)) == NULL)
		return BZ_ERR_DB;
	if (PQntuples(r) != 1) {
		PQclear(r);
		return BZ_ERR_UNAUTHORIZED;
	}
	principal_from_row(r, out, org_id);
	int stale = PQgetvalue(r, 0, 12)[0] == 't';
	PQclear(r);
	if (stale)
		touch(c, out->api_key_id, now_s);
	return 0;
}
