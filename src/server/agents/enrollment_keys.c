/*
 * enrollment_keys.c — enrolment keys (checklist G5).
 *
 * A key is "bek_" + 32 random bytes in hex, returned once at creation.
 * Only HMAC-SHA-256(ENROLLMENT_KEY_PEPPER, key) is stored, so a database
 * dump alone cannot be replayed to enrol rogue devices. Every key has an
 * expiry (default 60 minutes, at most 365 days) and a use limit (1–100000).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "crypto/crypto.h"
#include "server/agents/agents_internal.h"
#include "server/audit/audit.h"
#include "server/db/db.h"
#include "server/tenancy/tenancy.h"

#define KEY_PREFIX "bek_"

int enrollment_key_hash(const char *pepper, const char *key, char out[65])
{
	return crypto_hmac_sha256_hex(pepper, strlen(pepper), key, strlen(key), out);
}

#define KEY_COLS                                                                                   \
	"k.id, k.org_id, k.site_id, k.name, k.key_prefix, k.max_usage, k.usage_count,"             \
	" " AGENTS_TS("k.expires_at") ", coalesce(" AGENTS_TS("k.revoked_at") ", ''),"              \
	" " AGENTS_TS("k.created_at") ","                                                          \
	" CASE WHEN k.revoked_at IS NOT NULL THEN 'revoked'"                                       \
	"      WHEN k.expires_at <= now() THEN 'expired'"                                          \
	"      WHEN k.usage_count >= k.max_usage THEN 'exhausted' ELSE 'active' END"

static json_t *key_json(PGresult *r, int i)
{
	const char *revoked = PQgetvalue(r, i, 8);

	return json_pack("{s:s,s:s,s:s,s:s,s:s,s:i,s:i,s:s,s:s?,s:s,s:s}", "id", PQgetvalue(r, i, 0),
			 "orgId", PQgetvalue(r, i, 1), "siteId", PQgetvalue(r, i, 2), "name",
			 PQgetvalue(r, i, 3), "keyPrefix", PQgetvalue(r, i, 4), "maxUsage",
			 atoi(PQgetvalue(r, i, 5)), "usageCount", atoi(PQgetvalue(r, i, 6)),
			 "expiresAt", PQgetvalue(r, i, 7), "revokedAt", revoked[0] ? revoked : NULL,
			 "createdAt", PQgetvalue(r, i, 9), "status", PQgetvalue(r, i, 10));
}

/* Accepts only characters an ISO 8601 timestamp can contain; PostgreSQL
 * then does the real parsing (in the UTC session set by the pool). */
static int looks_like_iso8601(const char *s)
{
	size_t n = strlen(s);

	if (n < 10 || n > 40 || !isdigit((unsigned char)s[0]))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!isdigit((unsigned char)s[i]) && !strchr("-:T.Z+", s[i]))
			return 0;
	return 1;
}

static void create_key(struct request *rq)
{
	const char *org_id = NULL, *site_id = NULL, *name = NULL, *expires_at = NULL;
	json_int_t max_usage = 1, ttl_min = 60;
	char site_org[37], raw[4 + 65], hash[65], prefix[13], sqlstate[6];

	if (body_uuid(rq, "orgId", 1, &org_id) || body_uuid(rq, "siteId", 1, &site_id) ||
	    body_string(rq, "name", 1, 200, &name) ||
	    body_int(rq, "maxUsage", 0, 1, 100000, &max_usage) ||
	    body_int(rq, "ttlMinutes", 0, 1, 525600, &ttl_min) ||
	    body_string(rq, "expiresAt", 0, 40, &expires_at))
		return;
	if (name[0] == '\0') {
		http_fail(rq, 400, "validation_error", "field 'name' must not be empty");
		return;
	}
	if (expires_at != NULL && json_object_get(rq->body, "ttlMinutes") != NULL) {
		http_fail(rq, 400, "validation_error",
				 "give either 'ttlMinutes' or 'expiresAt', not both");
		return;
	}
	if (expires_at != NULL && !looks_like_iso8601(expires_at)) {
		http_fail(rq, 400, "validation_error",
				 "field 'expiresAt' must be an ISO 8601 timestamp");
		return;
	}
	if (!tenancy_scope_has_org(&rq->scope, org_id)) {
		http_fail(rq, 404, "not_found", "organization not found");
		return;
	}
	PGconn *c0 = http_db(rq);
	if (c0 == NULL)
		return;
	int vis = tenancy_site_visible(c0, &rq->scope, site_id, site_org);
	if (vis == BZ_ERR_NOT_FOUND || (vis == 0 && strcasecmp(site_org, org_id) != 0)) {
		http_fail(rq, 404, "not_found", "site not found");
		return;
	}
	if (vis != 0) {
		http_fail_err(rq, vis, "database unavailable");
		return;
	}

	PGconn *c = http_db(rq);
	if (c == NULL)
		return;
	char ttl_s[24], max_s[24];
	snprintf(ttl_s, sizeof(ttl_s), "%lld", (long long)ttl_min * 60);
	snprintf(max_s, sizeof(max_s), "%lld", (long long)max_usage);
	if (expires_at != NULL) {
		const char *pe[1] = {expires_at};
		PGresult *r = db_query(c,
				       "SELECT extract(epoch FROM $1::timestamptz - now())::bigint", 1, pe,
				       sqlstate);
		if (r == NULL) {
			if (strncmp(sqlstate, "22", 2) == 0)
				http_fail(rq, 400, "validation_error",
					  "field 'expiresAt' must be an ISO 8601 timestamp");
			else
				http_fail_err(rq, BZ_ERR_DB, NULL);
			return;
		}
		long long secs = atoll(PQgetvalue(r, 0, 0));
		PQclear(r);
		if (secs <= 0 || secs > 525600LL * 60) {
			http_fail(rq, 400, "validation_error",
					 "field 'expiresAt' must be in the future and at most 365 days away");
			return;
		}
		snprintf(ttl_s, sizeof(ttl_s), "%lld", secs);
	}

	memcpy(raw, KEY_PREFIX, 4);
	if (crypto_random_hex(32, raw + 4) != 0 ||
	    enrollment_key_hash(rq->app->cfg->secrets[SECRET_ENROLLMENT_KEY_PEPPER], raw, hash) != 0) {
		http_fail_err(rq, BZ_ERR_CRYPTO, NULL);
		return;
	}
	snprintf(prefix, sizeof(prefix), "%.12s", raw);

	if (db_begin(c) != 0) {
		http_fail_err(rq, BZ_ERR_DB, NULL);
		return;
	}
	/* An explicit expiresAt is stored exactly as given; otherwise now + TTL. */
	const char *p[9] = {org_id, site_id, name, hash, prefix, max_s, ttl_s, rq->who.user_id,
			    expires_at};
	PGresult *r = db_query(
		c,
		"WITH k AS (INSERT INTO enrollment_keys (org_id, site_id, name, key_hash, key_prefix,"
		" max_usage, expires_at, created_by) VALUES ($1::uuid, $2::uuid, $3, $4, $5,"
		" $6::int, coalesce($9::timestamptz, now() + make_interval(secs => $7::bigint)),"
		" $8::uuid) RETURNING *)"
		" SELECT " KEY_COLS " FROM k",
		9, p, sqlstate);
	if (r == NULL) {
		db_rollback(c);
		crypto_wipe(raw, sizeof(raw));
		http_fail_err(rq, BZ_ERR_DB, NULL);
		return;
	}
	json_t *out = key_json(r, 0);
	PQclear(r);
	struct audit_event ev = {.org_id = org_id,
				 .action = "enrollment_key.create",
				 .resource = "enrollment_keys",
				 .resource_id = json_string_value(json_object_get(out, "id")),
				 .details = json_pack("{s:s,s:s,s:I,s:s}", "name", name, "siteId", site_id,
						      "maxUsage", max_usage, "expiresAt",
						      json_string_value(json_object_get(out, "expiresAt")))};
	http_audit_actor(&ev, rq);
	int rc = audit_write(c, &ev);
	json_decref(ev.details);
	if (rc != 0 || db_commit(c) != 0) {
		db_rollback(c);
		json_decref(out);
		crypto_wipe(raw, sizeof(raw));
		http_fail_err(rq, BZ_ERR_DB, NULL);
		return;
	}
	/* The raw key leaves the server exactly once, here. */
	json_object_set_new(out, "key", json_string(raw));
	crypto_wipe(raw, sizeof(raw));
	http_reply(rq, 201, out);
}

static void list_keys(struct request *rq)
{
	const char *org = http_query(rq, "orgId");

	if (org != NULL && !is_uuid(org)) {
		http_fail(rq, 400, "validation_error", "parameter 'orgId' must be a UUID");
		return;
	}
	if (org != NULL && !tenancy_scope_has_org(&rq->scope, org)) {
		http_fail(rq, 404, "not_found", "organization not found");
		return;
	}
	PGconn *c = http_db(rq);
	if (c == NULL)
		return;
	const char *p[3] = {rq->scope.org_ids_pg, rq->scope.site_ids_pg, org};
	PGresult *r = db_query(c,
			       "SELECT " KEY_COLS " FROM enrollment_keys k"
			       " WHERE k.org_id = ANY($1::uuid[])"
			       "   AND ($2::uuid[] IS NULL OR k.site_id = ANY($2::uuid[]))"
			       "   AND ($3::uuid IS NULL OR k.org_id = $3::uuid)"
			       " ORDER BY k.created_at DESC, k.id LIMIT 1000",
			       3, p, NULL);
	if (r == NULL) {
		http_fail_err(rq, BZ_ERR_DB, NULL);
		return;
	}
	json_t *arr = json_array();
	for (int i = 0; i < PQntuples(r); i++)
		json_array_append_new(arr, key_json(r, i));
	PQclear(r);
	http_reply(rq, 200, json_pack("{s:o}", "enrollmentKeys", arr));
}

static void revoke_key(struct request *rq)
{
	char id[64];

	if (http_path_param(rq, "id", id, sizeof(id)) != 0 || !is_uuid(id)) {
		http_fail(rq, 404, "not_found", "enrollment key not found");
		return;
	}
	PGconn *c = http_db_begin(rq);
	if (c == NULL)
		return;
	const char *p[3] = {id, rq->scope.org_ids_pg, rq->scope.site_ids_pg};
	/* Revoking twice keeps the first revocation time. */
	PGresult *r = db_query(c,
			       "UPDATE enrollment_keys SET revoked_at = coalesce(revoked_at, now())"
			       " WHERE id = $1::uuid AND org_id = ANY($2::uuid[])"
			       "   AND ($3::uuid[] IS NULL OR site_id = ANY($3::uuid[]))"
			       " RETURNING id, org_id, " AGENTS_TS("revoked_at"),
			       3, p, NULL);
	if (r == NULL) {
		db_rollback(c);
		http_fail_err(rq, BZ_ERR_DB, NULL);
		return;
	}
	if (PQntuples(r) != 1) {
		PQclear(r);
		db_rollback(c);
		http_fail(rq, 404, "not_found", "enrollment key not found");
		return;
	}
	json_t *out = json_pack("{s:s,s:s}", "id", PQgetvalue(r, 0, 0), "revokedAt", PQgetvalue(r, 0, 2));
	char org[37];
	snprintf(org, sizeof(org), "%s", PQgetvalue(r, 0, 1));
	PQclear(r);
	struct audit_event ev = {.org_id = org,
				 .action = "enrollment_key.revoke",
				 .resource = "enrollment_keys",
				 .resource_id = id};
	http_audit_actor(&ev, rq);
	if (audit_write(c, &ev) != 0 || db_commit(c) != 0) {
		db_rollback(c);
		json_decref(out);
		http_fail_err(rq, BZ_ERR_DB, NULL);
		return;
	}
	http_reply(rq, 200, out);
}

const struct route enrollment_key_routes[] = {
	{"POST", "/api/v1/enrollment-keys", create_key, ROUTE_USER | ROUTE_JSON_BODY,
	 "enrollment_keys:write", "enrollment_key.create"},
	{"GET", "/api/v1/enrollment-keys", list_keys, ROUTE_USER, "enrollment_keys:read", NULL},
	{"DELETE", "/api/v1/enrollment-keys/:id", revoke_key, ROUTE_USER, "enrollment_keys:write",
	 "enrollment_key.revoke"},
};
const size_t enrollment_key_routes_count = sizeof(enrollment_key_routes) / sizeof(*enrollment_key_routes);
