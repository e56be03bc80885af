/*
 * enrollment_keys.c — enrolment keys (checklist G5): the SQL of
 * enrollment_keys.
 *
 * A key is "bek_" + 32 random bytes in hex, returned once at creation.
 * Only HMAC-SHA-256(ENROLLMENT_KEY_PEPPER, key) is stored, so a database
 * dump alone cannot be replayed to enrol rogue devices. Every key has an
 * expiry (default 60 minutes, at most 365 days) and a use limit (1–100000).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/clock.h"
#include "common/iso8601.h"
#include "crypto/crypto.h"
#include "common/text.h"
#include "server/agents/agents.h"
#include "server/db/db.h"

#define KEY_PREFIX "bek_"
#define KEY_TTL_MAX_S (525600LL * 60) /* 365 days */

#define KEY_COLS                                                                                             \
	"k.id, k.org_id, k.site_id, k.name, k.key_prefix, k.max_usage, k.usage_count,"                       \
	" " DB_TS("k.expires_at") ", coalesce(" DB_TS(                                                       \
		"k.revoked_at") ", ''),"                                                                     \
				" " DB_TS(                                                                   \
					"k.created_at") ","                                                  \
							" CASE WHEN k.revoked_at IS NOT NULL THEN 'revoked'" \
							"      WHEN k.expires_at <= now() THEN 'expired'"    \
							"      WHEN k.usage_count >= k.max_usage THEN 'exhausted' ELSE 'active' END"

/* Keys visible in a scope: $1 org ids, $2 site ids (NULL = all sites). */
#define KEY_SCOPE                                                                                  \
	"k.org_id = ANY($1::uuid[]) AND ($2::uuid[] IS NULL OR k.site_id = ANY($2::uuid[]))"

int agents_key_hash(const char *pepper, const char *key, char out[65])
{
	return crypto_hmac_sha256_hex(pepper, strlen(pepper), key, strlen(key), out);
}

static void key_from_row(const PGresult *r, int i, struct agents_key *k)
{
	text_copy(k->id, sizeof(k->id), PQgetvalue(r, i, 0));
	text_copy(k->org_id, sizeof(k->org_id), PQgetvalue(r, i, 1));
	text_copy(k->site_id, sizeof(k->site_id), PQgetvalue(r, i, 2));
	text_copy(k->name, sizeof(k->name), PQgetvalue(r, i, 3));
	text_copy(k->key_prefix, sizeof(k->key_prefix), PQgetvalue(r, i, 4));
	k->max_usage = atoi(PQgetvalue(r, i, 5));
	k->usage_count = atoi(PQgetvalue(r, i, 6));
	text_copy(k->expires_at, sizeof(k->expires_at), PQgetvalue(r, i, 7));
	text_copy(k->revoked_at, sizeof(k->revoked_at), PQgetvalue(r, i, 8));
	text_copy(k->created_at, sizeof(k->created_at), PQgetvalue(r, i, 9));
	text_copy(k->status, sizeof(k->status), PQgetvalue(r, i, 10));
}

/* Seconds from now until EXPIRES_AT (ISO 8601, common/iso8601.h) into
 * TTL_S[24], checked to be in the future and at most 365 days away. */
static int expiry_seconds(const char *expires_at, char ttl_s[24], struct bz_errinfo *why)
{
	int64_t us;

	if (iso8601_parse_us(expires_at, &us) != 0)
		return bz_fail(why, BZ_ERR_INVALID, "validation_error", "expiresAt",
			       "field 'expiresAt' must be an ISO 8601 timestamp");
	long long secs = (long long)(us / 1000000 - bz_now());
	if (secs <= 0 || secs > KEY_TTL_MAX_S)
		return bz_fail(why, BZ_ERR_INVALID, "validation_error", "expiresAt",
			       "field 'expiresAt' must be in the future and at most 365 days away");
	snprintf(ttl_s, 24, "%lld", secs);
	return 0;
}

/* The organization of IN's site into ORG[37], checked against IN->org_id. */
static int key_org(PGconn *c, const struct tenancy_scope *sc, const struct agents_key_input *in,
		   char org[37], struct bz_errinfo *why)
{
	if (in->org_id != NULL && !tenancy_scope_has_org(sc, in->org_id))
		return bz_fail(why, BZ_ERR_NOT_FOUND, NULL, "orgId", "organization not found");
	int rc = tenancy_site_visible(c, sc, in->site_id, org);
	if (rc == BZ_ERR_NOT_FOUND ||
	    (rc == 0 && in->org_id != NULL && strcasecmp(org, in->org_id)))
		return bz_fail(why, BZ_ERR_NOT_FOUND, NULL, "siteId", "site not found");
	return rc;
}

int agents_key_create(PGconn *c, const struct tenancy_scope *sc, const char *pepper,
		      const struct agents_key_input *in, struct agents_key *out,
		      char raw[AGENTS_KEY_LEN + 1], struct audit_event *ev, struct bz_errinfo *why)
{
	/* An explicit expiresAt is stored exactly as given; otherwise now + TTL. */
	static const char *sql =
		"WITH k AS (INSERT INTO enrollment_keys (org_id, site_id, name, key_hash, key_prefix,"
		" max_usage, expires_at, created_by) VALUES ($1::uuid, $2::uuid, $3, $4, $5,"
		" $6::int, coalesce($9::timestamptz, now() + make_interval(secs => $7::bigint)),"
		" $8::uuid) RETURNING *)"
		" SELECT " KEY_COLS " FROM k";
	char org[37], hash[65], prefix[13], ttl_s[24], max_s[24];
	PGresult *r;
	int rc;

	raw[0] = '\0';
	if ((rc = key_org(c, sc, in, org, why)) != 0)
		return rc;
	snprintf(ttl_s, sizeof(ttl_s), "%lld", (long long)in->ttl_min * 60);
	snprintf(max_s, sizeof(max_s), "%lld", (long long)in->max_usage);
	if (in->expires_at != NULL && (rc = expiry_seconds(in->expires_at, ttl_s, why)) != 0)
		return rc;
	memcpy(raw, KEY_PREFIX, 4);
	if (crypto_random_hex(32, raw + 4) != 0 || agents_key_hash(pepper, raw, hash) != 0) {
		crypto_wipe(raw, AGENTS_KEY_LEN + 1);
		return BZ_ERR_CRYPTO;
	}
	snprintf(prefix, sizeof(prefix), "%.12s", raw);
	const char *p[9] = {org,   in->site_id, in->name,	hash,	       prefix,
			    max_s, ttl_s,	in->created_by, in->expires_at};
	if ((r = db_query(c, sql, 9, p, NULL)) == NULL) {
		crypto_wipe(raw, AGENTS_KEY_LEN + 1);
		return BZ_ERR_DB;
	}
	key_from_row(r, 0, out);
	PQclear(r);
	*ev = (struct audit_event){.org_id = out->org_id,
				   .action = "enrollment_key.create",
				   .resource = "enrollment_keys",
				   .resource_id = out->id,
				   .details = json_pack("{s:s,s:s,s:i,s:s}", "name", out->name,
							"siteId", out->site_id, "maxUsage",
							out->max_usage, "expiresAt",
							out->expires_at)};
	return 0;
}

int agents_key_list(PGconn *c, const struct tenancy_scope *sc, const char *org_id,
		    struct agents_key **out, size_t *n)
{
	static const char *sql = "SELECT " KEY_COLS " FROM enrollment_keys k WHERE " KEY_SCOPE
				 "   AND ($3::uuid IS NULL OR k.org_id = $3::uuid)"
				 " ORDER BY k.created_at DESC, k.id LIMIT 1000";
	const char *p[3] = {sc->org_ids_pg, sc->site_ids_pg, org_id};
	PGresult *r;

	*out = NULL;
	*n = 0;
	if (org_id != NULL && !tenancy_scope_has_org(sc, org_id))
		return BZ_ERR_NOT_FOUND;
	if ((r = db_query(c, sql, 3, p, NULL)) == NULL)
		return BZ_ERR_DB;
	int rows = PQntuples(r);
	if (rows > 0 && (*out = calloc((size_t)rows, sizeof(**out))) == NULL) {
		PQclear(r);
		return BZ_ERR_NOMEM;
	}
	for (int i = 0; i < rows; i++)
		key_from_row(r, i, &(*out)[i]);
	*n = (size_t)rows;
	PQclear(r);
	return 0;
}

int agents_key_get(PGconn *c, const struct tenancy_scope *sc, const char *id,
		   struct agents_key *out)
{
	static const char *sql = "SELECT " KEY_COLS " FROM enrollment_keys k"
				 " WHERE k.id = $3::uuid AND " KEY_SCOPE;
	const char *p[3] = {sc->org_ids_pg, sc->site_ids_pg, id};
	PGresult *r;
	int rc = BZ_ERR_NOT_FOUND;

	if ((r = db_query(c, sql, 3, p, NULL)) == NULL)
		return BZ_ERR_DB;
	if (PQntuples(r) == 1) {
		key_from_row(r, 0, out);
		rc = 0;
	}
	PQclear(r);
	return rc;
}

int agents_key_revoke(PGconn *c, const struct tenancy_scope *sc, const char *id,
		      struct agents_key *out, struct audit_event *ev, struct bz_errinfo *why)
{
	/* Only a key not yet revoked is changed: a concurrent second revoke
	 * waits for the first, re-checks the WHERE clause and changes nothing. */
	static const char *sql = "WITH k AS (UPDATE enrollment_keys k SET revoked_at = now()"
				 " WHERE k.id = $3::uuid AND k.revoked_at IS NULL AND " KEY_SCOPE
				 " RETURNING k.*) SELECT " KEY_COLS " FROM k";
	const char *p[3] = {sc->org_ids_pg, sc->site_ids_pg, id};
	PGresult *r;
	int changed;

	*ev = (struct audit_event){0};
	if ((r = db_query(c, sql, 3, p, NULL)) == NULL)
		return BZ_ERR_DB;
	changed = PQntuples(r) == 1;
	if (changed)
		key_from_row(r, 0, out);
	PQclear(r);
	if (!changed) {
		int rc = agents_key_get(c, sc, id, out);
		if (rc == BZ_ERR_NOT_FOUND)
			return bz_fail(why, rc, NULL, NULL, "enrollment key not found");
		return rc; /* already revoked: nothing to audit */
	}
	*ev = (struct audit_event){.org_id = out->org_id,
				   .action = "enrollment_key.revoke",
				   .resource = "enrollment_keys",
				   .resource_id = out->id};
	return 0;
}
