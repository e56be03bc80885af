/*
 * roles_api.c — the roles routes. Each handler is parse → one roles.c
 * call → render; another partner's custom role answers 404. The routes
 * that change roles are closed to API keys (ROUTE_NO_API_KEY).
 */
#include <stdlib.h>

#include "server/auth/auth.h"
#include "server/auth/auth_api.h"
#include "server/auth/permissions.h"

static json_t *role_json(const struct auth_role *r)
{
	return json_pack("{s:s,s:s,s:s,s:O,s:b,s:b}", "id", r->id, "name", r->name, "scope",
			 r->scope, "permissions", r->permissions, "forceMfa", r->force_mfa,
			 "builtin", r->builtin);
}

static const char *const role_scopes[] = {"partner", "organization", NULL};

/* The body of POST /roles. */
struct role_create_input {
	struct body_str name, scope;
	struct body_json permissions;
};

static const struct body_field role_create_fields[] = {
	BODY_FIELD("name", BODY_TEXT, BODY_REQUIRED, struct role_create_input, name, 1,
		   AUTH_CUSTOM_ROLE_NAME_MAX),
	BODY_ENUM_FIELD("scope", BODY_REQUIRED, struct role_create_input, scope, role_scopes),
	BODY_FIELD("permissions", BODY_STRING_ARRAY, BODY_REQUIRED, struct role_create_input,
		   permissions, 0, 64),
	BODY_FIELDS_END,
};

/* The body of PATCH /roles/:id. */
struct role_patch_input {
	struct body_str name;
	struct body_json permissions;
	struct body_bool force_mfa;
};

static const struct body_field role_patch_fields[] = {
	BODY_FIELD("name", BODY_TEXT, 0, struct role_patch_input, name, 1,
		   AUTH_CUSTOM_ROLE_NAME_MAX),
	BODY_FIELD("permissions", BODY_STRING_ARRAY, 0, struct role_patch_input, permissions, 0,
		   64),
	BODY_FIELD("forceMfa", BODY_BOOL, 0, struct role_patch_input, force_mfa, 0, 0),
	BODY_FIELDS_END,
};

static void list_roles(struct request *rq)
{
	struct auth_role *roles;
	size_t n;
	PGconn *c = http_db(rq);

	if (c == NULL)
		return;
	int rc = auth_role_list(c, &rq->scope, &roles, &n);
	if (rc != 0) {
		http_fail_why(rq, rc, NULL);
		return;
	}
	json_t *arr = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, role_json(&roles[i]));
	auth_roles_free(roles, n);
	json_t *perms = json_array();
	for (size_t i = 0; i < permissions_count; i++)
		json_array_append_new(perms,
				      json_pack("{s:s,s:s}", "name", permissions_table[i].name,
						"description", permissions_table[i].description));
	http_reply(rq, 200, json_pack("{s:o,s:o}", "roles", arr, "permissions", perms));
}

static void create_role(struct request *rq)
{
	struct role_create_input in = {0};
	struct auth_role r = {0};
	struct audit_event ev = {0};
	struct bz_errinfo why = {0};
	PGconn *c;

	if (http_body_parse(rq, role_create_fields, &in) != 0 || (c = http_db_begin(rq)) == NULL)
		return;
	const struct auth_role_new nr = {.name = in.name.v,
					 .scope = in.scope.v,
					 .permissions = in.permissions.v};
	int rc = auth_role_create(c, &rq->scope, rq->who.permissions, &nr, &r, &ev, &why);
	http_commit(rq, c, rc, &why, &ev, 201, rc == 0 ? role_json(&r) : NULL);
	auth_role_free(&r);
}

static void patch_role(struct request *rq)
{
	struct role_patch_input in = {0};
	struct auth_role r = {0};
	struct audit_event ev = {0};
	struct bz_errinfo why = {0};
	char id[37];
	PGconn *c;

	if (http_path_uuid(rq, "id", id, "role not found") != 0 ||
	    http_body_parse(rq, role_patch_fields, &in) != 0 || (c = http_db_begin(rq)) == NULL)
		return;
	const struct auth_role_change ch = {.name = in.name.v,
					    .permissions = in.permissions.v,
					    .force_mfa_set = in.force_mfa.present,
					    .force_mfa = in.force_mfa.v};
	int rc = auth_role_update(c, &rq->scope, rq->who.permissions, id, &ch, &r, &ev, &why);
	http_commit(rq, c, rc, &why, &ev, 200, rc == 0 ? role_json(&r) : NULL);
	auth_role_free(&r);
}

static void delete_role(struct request *rq)
{
	struct auth_role r = {0};
	struct audit_event ev = {0};
	struct bz_errinfo why = {0};
	char id[37];
	PGconn *c;

	if (http_path_uuid(rq, "id", id, "role not found") != 0 || (c = http_db_begin(rq)) == NULL)
		return;
	int rc = auth_role_delete(c, &rq->scope, rq->who.permissions, id, &r, &ev, &why);
	http_commit(rq, c, rc, &why, &ev, 200, rc == 0 ? role_json(&r) : NULL);
	auth_role_free(&r);
}

const struct route auth_role_routes[] = {
	{"GET", "/api/v1/roles", list_roles, ROUTE_USER, "roles:read", NULL, NULL},
	{"POST", "/api/v1/roles", create_role, ROUTE_USER | ROUTE_JSON_BODY | ROUTE_NO_API_KEY,
	 "roles:write", "role.create", NULL},
	{"PATCH", "/api/v1/roles/:id", patch_role, ROUTE_USER | ROUTE_JSON_BODY | ROUTE_NO_API_KEY,
	 "roles:write", "role.update", NULL},
	{"DELETE", "/api/v1/roles/:id", delete_role, ROUTE_USER | ROUTE_NO_API_KEY, "roles:write",
	 "role.delete", NULL},
};
const size_t auth_role_routes_count = sizeof(auth_role_routes) / sizeof(*auth_role_routes);
