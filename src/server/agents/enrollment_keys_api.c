/*
 * enrollment_keys_api.c — the enrolment key routes (G5). Each handler is
 * parse → one agents call → render; the raw key is in the creation answer
 * only, never in a listing, a detail or an audit row.
 */
#include <stdlib.h>

#include "crypto/crypto.h"
#include "server/agents/agents.h"
#include "server/agents/agents_api.h"

static json_t *key_json(const struct agents_key *k)
{
	return json_pack("{s:s,s:s,s:s,s:s,s:s,s:i,s:i,s:s,s:s?,s:s,s:s}", "id", k->id, "orgId",
			 k->org_id, "siteId", k->site_id, "name", k->name, "keyPrefix",
			 k->key_prefix, "maxUsage", k->max_usage, "usageCount", k->usage_count,
			 "expiresAt", k->expires_at, "revokedAt",
			 k->revoked_at[0] ? k->revoked_at : NULL, "createdAt", k->created_at,
			 "status", k->status);
}

struct key_body {
	struct body_str org_id, site_id, name, expires_at;
	struct body_int max_usage, ttl_min;
};

static const struct body_field key_fields[] = {
	BODY_FIELD("orgId", BODY_UUID, BODY_NULLABLE, struct key_body, org_id, 0, 0),
	BODY_FIELD("siteId", BODY_UUID, BODY_REQUIRED, struct key_body, site_id, 0, 0),
	BODY_FIELD("name", BODY_TEXT, BODY_REQUIRED, struct key_body, name, 1, AGENTS_NAME_MAX),
	BODY_FIELD("maxUsage", BODY_INT, 0, struct key_body, max_usage, 1, 100000),
	BODY_FIELD("ttlMinutes", BODY_INT, 0, struct key_body, ttl_min, 1, 525600),
	BODY_FIELD("expiresAt", BODY_STRING, 0, struct key_body, expires_at, 0, 40),
	{NULL},
};

/* Parses and cross-checks the creation body into IN. */
static int key_input(struct request *rq, struct agents_key_input *in)
{
	struct key_body b = {0};

	if (http_body_parse(rq, key_fields, &b) != 0)
		return BZ_ERR_RESPONDED;
	/* orgId may be left out (the site's organization), not sent as null. */
	if (b.org_id.present && b.org_id.v == NULL) {
		http_fail_why(rq, BZ_ERR_INVALID,
			      &(struct bz_errinfo){.code = "validation_error",
						   .field = "orgId",
						   .msg = "field 'orgId' must be a UUID"});
		return BZ_ERR_RESPONDED;
	}
	if (b.expires_at.present && b.ttl_min.present) {
		http_fail(rq, 400, "validation_error",
			  "give either 'ttlMinutes' or 'expiresAt', not both");
		return BZ_ERR_RESPONDED;
	}
	*in = (struct agents_key_input){.org_id = b.org_id.v,
					.site_id = b.site_id.v,
					.name = b.name.v,
					.max_usage = b.max_usage.present ? b.max_usage.v : 1,
					.ttl_min = b.ttl_min.present ? b.ttl_min.v : 60,
					.expires_at = b.expires_at.v,
					.created_by = rq->who.user_id[0] ? rq->who.user_id : NULL};
	return 0;
}

static void create_key(struct request *rq)
{
	struct agents_key_input in;
	struct agents_key k;
	struct audit_event ev = {0};
	struct bz_errinfo why = {0};
	char raw[AGENTS_KEY_LEN + 1];
	json_t *out = NULL;
	PGconn *c;

	if (key_input(rq, &in) != 0 || (c = http_db_begin(rq)) == NULL)
		return;
	int rc = agents_key_create(c, &rq->scope,
				   rq->app->cfg->secrets[SECRET_ENROLLMENT_KEY_PEPPER], &in, &k,
				   raw, &ev, &why);
	if (rc == 0) {
		/* The raw key leaves the server exactly once, here. */
		out = key_json(&k);
		json_object_set_new(out, "key", json_string(raw));
		http_idem_withhold(rq, "key");
	}
	crypto_wipe(raw, sizeof(raw));
	http_commit(rq, c, rc, &why, &ev, 201, out);
}

static void list_keys(struct request *rq)
{
	const char *org = http_query(rq, "orgId");
	struct agents_key *keys;
	size_t n;
	PGconn *c;

	if (org != NULL && !is_uuid(org)) {
		http_fail(rq, 400, "validation_error", "parameter 'orgId' must be a UUID");
		return;
	}
	if ((c = http_db(rq)) == NULL)
		return;
	int rc = agents_key_list(c, &rq->scope, org, &keys, &n);
	if (rc != 0) {
		http_fail_why(rq, rc, &(struct bz_errinfo){.msg = "organization not found"});
		return;
	}
	json_t *arr = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, key_json(&keys[i]));
	free(keys);
	http_reply(rq, 200, json_pack("{s:o}", "enrollmentKeys", arr));
}

static void get_key(struct request *rq)
{
	struct agents_key k;
	char id[37];
	PGconn *c;

	if (http_path_uuid(rq, "id", id, "enrollment key not found") != 0 ||
	    (c = http_db(rq)) == NULL)
		return;
	int rc = agents_key_get(c, &rq->scope, id, &k);
	if (rc != 0) {
		http_fail_why(rq, rc, &(struct bz_errinfo){.msg = "enrollment key not found"});
		return;
	}
	http_reply(rq, 200, key_json(&k));
}

static void revoke_key(struct request *rq)
{
	struct agents_key k;
	struct audit_event ev = {0};
	struct bz_errinfo why = {0};
	char id[37];
	PGconn *c;

	if (http_path_uuid(rq, "id", id, "enrollment key not found") != 0 ||
	    (c = http_db_begin(rq)) == NULL)
		return;
	int rc = agents_key_revoke(c, &rq->scope, id, &k, &ev, &why);
	http_commit(rq, c, rc, &why, &ev, 200,
		    rc == 0 ? json_pack("{s:s,s:s}", "id", k.id, "revokedAt", k.revoked_at) : NULL);
}

/* Query parameters the list routes read (struct route.query). */
static const char *const key_list_query[] = {"orgId", NULL};

const struct route enrollment_key_routes[] = {
	{"POST", "/api/v1/enrollment-keys", create_key,
	 ROUTE_USER | ROUTE_JSON_BODY | ROUTE_IDEMPOTENT, "enrollment_keys:write",
	 "enrollment_key.create", NULL},
	{"GET", "/api/v1/enrollment-keys", list_keys, ROUTE_USER, "enrollment_keys:read", NULL,
	 key_list_query},
	{"GET", "/api/v1/enrollment-keys/:id", get_key, ROUTE_USER, "enrollment_keys:read", NULL,
	 NULL},
	{"DELETE", "/api/v1/enrollment-keys/:id", revoke_key, ROUTE_USER, "enrollment_keys:write",
	 "enrollment_key.revoke", NULL},
};
const size_t enrollment_key_routes_count =
	sizeof(enrollment_key_routes) / sizeof(*enrollment_key_routes);
