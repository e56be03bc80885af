/*
 * api_keys_api.c — the API key routes. Each handler is parse → one
 * api_keys.c call → render. All three are closed to API keys: a key never
 * makes or revokes keys (ROUTE_NO_API_KEY).
 */
#include <stdlib.h>

#include "common/clock.h"
#include "crypto/crypto.h"
#include "server/auth/auth.h"
#include "server/auth/auth_api.h"

static json_t *key_json(const struct auth_api_key *k)
{
#define OPT(s) ((s)[0] ? json_string(s) : json_null())
	return json_pack("{s:s,s:s,s:s,s:o,s:s,s:O,s:s,s:o,s:o,s:o}", "id", k->id, "name", k->name,
			 "prefix", k->prefix, "orgId", OPT(k->org_id), "createdBy", k->created_by,
			 "permissions", k->permissions, "createdAt", k->created_at, "lastUsedAt",
			 OPT(k->last_used_at), "expiresAt", OPT(k->expires_at), "revokedAt",
			 OPT(k->revoked_at));
#undef OPT
}

/* The body of POST /api-keys. */
struct key_create_input {
	struct body_str name, org_id, expires_at;
	struct body_json permissions;
};

static const struct body_field key_create_fields[] = {
	BODY_FIELD("name", BODY_TEXT, BODY_REQUIRED, struct key_create_input, name, 1,
		   AUTH_NAME_MAX),
	BODY_FIELD("orgId", BODY_UUID, 0, struct key_create_input, org_id, 0, 36),
	BODY_FIELD("permissions", BODY_STRING_ARRAY, BODY_REQUIRED, struct key_create_input,
		   permissions, 0, 64),
	BODY_FIELD("expiresAt", BODY_STRING, 0, struct key_create_input, expires_at, 1, 64),
	BODY_FIELDS_END,
};

/* Managers of users also manage the keys of the users they see. */
static int manages_others(const struct request *rq)
{
	return http_has_permission(rq, "users:write");
}

static void create_key(struct request *rq)
{
	struct key_create_input in = {0};
	struct auth_api_key k = {0};
	struct audit_event ev = {0};
	struct bz_errinfo why = {0};
	char raw[AUTH_API_KEY_LEN + 1] = "";
	json_t *out = NULL;
	PGconn *c;

	if (http_body_parse(rq, key_create_fields, &in) != 0 || (c = http_db_begin(rq)) == NULL)
		return;
	const struct auth_api_key_new nk = {.name = in.name.v,
					    .org_id = in.org_id.v,
					    .permissions = in.permissions.v,
					    .expires_at = in.expires_at.v};
	int rc = auth_api_key_create(c, &rq->scope, rq->who.permissions, &nk, bz_now(), &k, raw,
				     &ev, &why);
	/* The raw key is shown exactly once, in this response. */
	if (rc == 0 && (out = key_json(&k)) != NULL)
		json_object_set_new(out, "key", json_string(raw));
	crypto_wipe(raw, sizeof(raw));
	http_commit(rq, c, rc, &why, &ev, 201, out);
	auth_api_key_free(&k);
}

static void list_keys(struct request *rq)
{
	struct auth_api_key *keys;
	size_t n;
	PGconn *c = http_db(rq);

	if (c == NULL)
		return;
	int rc = auth_api_key_list(c, &rq->scope, manages_others(rq), &keys, &n);
	if (rc != 0) {
		http_fail_why(rq, rc, NULL);
		return;
	}
	json_t *arr = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, key_json(&keys[i]));
	auth_api_keys_free(keys, n);
	http_reply(rq, 200, json_pack("{s:o}", "apiKeys", arr));
}

static void revoke_key(struct request *rq)
{
	struct auth_api_key k = {0};
	struct audit_event ev = {0};
	struct bz_errinfo why = {0};
	char id[37];
	PGconn *c;

	if (http_path_uuid(rq, "id", id, "API key not found") != 0 ||
	    (c = http_db_begin(rq)) == NULL)
		return;
	int rc =
		auth_api_key_revoke(c, &rq->scope, manages_others(rq), id, bz_now(), &k, &ev, &why);
	http_commit(rq, c, rc, &why, &ev, 200, rc == 0 ? key_json(&k) : NULL);
	auth_api_key_free(&k);
}

const struct route auth_api_key_routes[] = {
	{"POST", "/api/v1/api-keys", create_key, ROUTE_USER | ROUTE_JSON_BODY | ROUTE_NO_API_KEY,
	 "api_keys:write", "api_key.create", NULL},
	{"GET", "/api/v1/api-keys", list_keys, ROUTE_USER | ROUTE_NO_API_KEY, "api_keys:read", NULL,
	 NULL},
	{"DELETE", "/api/v1/api-keys/:id", revoke_key, ROUTE_USER | ROUTE_NO_API_KEY,
	 "api_keys:write", "api_key.revoke", NULL},
};
const size_t auth_api_key_routes_count = sizeof(auth_api_key_routes) / sizeof(*auth_api_key_routes);
