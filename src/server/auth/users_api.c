/*
 * users_api.c — the users routes (roles: roles_api.c). Each handler is parse → one
 * users.c call → render; another tenant's user answers 404.
 */
#include <stdlib.h>

#include "crypto/crypto.h"
#include "server/auth/auth.h"
#include "server/auth/auth_api.h"

#define UUID_ARRAY_MAX 1000 /* ids in orgIds / siteIds */

/* The User object; FULL adds mfaEnabled and lastLoginAt (every answer but
 * POST /users, whose shape predates them). */
static json_t *user_json(const struct auth_user *u, int full)
{
	json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:s?,s:s?,s:s,s:s}", "id", u->id, "email", u->email,
			      "name", u->name, "role", u->role, "partnerId",
			      u->partner_id[0] ? u->partner_id : NULL, "orgId",
			      u->org_id[0] ? u->org_id : NULL, "status", u->status, "createdAt",
			      u->created_at);

	if (full && o != NULL) {
		json_object_set_new(o, "mfaEnabled", json_boolean(u->mfa_enabled));
		json_object_set_new(o, "lastLoginAt",
				    u->last_login_at[0] ? json_string(u->last_login_at)
							: json_null());
	}
	return o;
}

/* The body of POST /users. */
struct user_create_input {
	struct body_str email, name, password, role, org_id;
	struct body_json org_ids, site_ids;
};

static const struct body_field user_create_fields[] = {
	BODY_FIELD("email", BODY_STRING, BODY_REQUIRED, struct user_create_input, email, 1, 320),
	BODY_FIELD("name", BODY_TEXT, BODY_REQUIRED, struct user_create_input, name, 1,
		   AUTH_NAME_MAX),
	BODY_FIELD("password", BODY_STRING, 0, struct user_create_input, password, 0,
		   AUTH_PASSWORD_MAX),
	BODY_FIELD("role", BODY_STRING, BODY_REQUIRED, struct user_create_input, role, 1, 64),
	BODY_FIELD("orgId", BODY_UUID, 0, struct user_create_input, org_id, 0, 36),
	BODY_FIELD("orgIds", BODY_UUID_ARRAY, 0, struct user_create_input, org_ids, 0,
		   UUID_ARRAY_MAX),
	BODY_FIELD("siteIds", BODY_UUID_ARRAY, 0, struct user_create_input, site_ids, 0,
		   UUID_ARRAY_MAX),
	{NULL},
};

/* The body of PATCH /users/:id. */
struct user_patch_input {
	struct body_str name, role, status;
};

static const char *const user_statuses[] = {"active", "disabled", NULL};

static const struct body_field user_patch_fields[] = {
	BODY_FIELD("name", BODY_TEXT, 0, struct user_patch_input, name, 1, AUTH_NAME_MAX),
	BODY_FIELD("role", BODY_STRING, 0, struct user_patch_input, role, 1, 64),
	BODY_ENUM_FIELD("status", 0, struct user_patch_input, status, user_statuses),
	{NULL},
};

static void list_users(struct request *rq)
{
	struct auth_user *users;
	size_t n;
	PGconn *c = http_db(rq);

	if (c == NULL)
		return;
	int rc = auth_user_list(c, &rq->scope, &users, &n);
	if (rc != 0) {
		http_fail_why(rq, rc, NULL);
		return;
	}
	json_t *arr = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, user_json(&users[i], 1));
	free(users);
	http_reply(rq, 200, json_pack("{s:o}", "users", arr));
}

static void get_user(struct request *rq)
{
	struct auth_user u;
	char id[37];
	PGconn *c;

	if (http_path_uuid(rq, "id", id, "user not found") != 0 || (c = http_db(rq)) == NULL)
		return;
	int rc = auth_user_get(c, &rq->scope, id, &u);
	if (rc != 0) {
		http_fail_why(rq, rc, &(struct bz_errinfo){.msg = "user not found"});
		return;
	}
	http_reply(rq, 200, user_json(&u, 1));
}

static void create_user(struct request *rq)
{
	struct user_create_input in = {0};
	struct auth_user u;
	struct audit_event ev = {0};
	struct bz_errinfo why = {0};
	char gen_pw[AUTH_GENERATED_PASSWORD_LEN] = "";
	json_t *out = NULL;
	PGconn *c;

	if (http_body_parse(rq, user_create_fields, &in) != 0 || (c = http_db_begin(rq)) == NULL)
		return;
	const struct auth_user_new nu = {.email = in.email.v,
					 .name = in.name.v,
					 .password = in.password.v,
					 .role = in.role.v,
					 .org_id = in.org_id.v,
					 .org_ids = in.org_ids.v,
					 .site_ids = in.site_ids.v};
	int rc = auth_user_create(c, &rq->scope, &nu, &u, gen_pw, &ev, &why);
	/* A generated password is shown exactly once, in this response. */
	if (rc == 0 && (out = user_json(&u, 0)) != NULL && gen_pw[0]) {
		json_object_set_new(out, "password", json_string(gen_pw));
		http_idem_withhold(rq, "password");
	}
	crypto_wipe(gen_pw, sizeof(gen_pw));
	http_commit(rq, c, rc, &why, &ev, 201, out);
}

static void patch_user(struct request *rq)
{
	struct user_patch_input in = {0};
	struct auth_user u;
	struct audit_event ev = {0};
	struct bz_errinfo why = {0};
	char id[37];
	PGconn *c;

	if (http_path_uuid(rq, "id", id, "user not found") != 0 ||
	    http_body_parse(rq, user_patch_fields, &in) != 0 || (c = http_db_begin(rq)) == NULL)
		return;
	const struct auth_user_change ch = {.name = in.name.v,
					    .role = in.role.v,
					    .status = in.status.v};
	int rc = auth_user_update(c, &rq->scope, id, &ch, &u, &ev, &why);
	http_commit(rq, c, rc, &why, &ev, 200, rc == 0 ? user_json(&u, 1) : NULL);
}

const struct route auth_user_routes[] = {
	{"GET", "/api/v1/users", list_users, ROUTE_USER, "users:read", NULL, NULL},
	/* Closed to API keys: a key never mints an identity with a password. */
	{"POST", "/api/v1/users", create_user,
	 ROUTE_USER | ROUTE_JSON_BODY | ROUTE_IDEMPOTENT | ROUTE_NO_API_KEY, "users:write",
	 "user.create", NULL},
	{"GET", "/api/v1/users/:id", get_user, ROUTE_USER, "users:read", NULL, NULL},
	{"PATCH", "/api/v1/users/:id", patch_user, ROUTE_USER | ROUTE_JSON_BODY | ROUTE_NO_API_KEY,
	 "users:write", "user.update", NULL},
};
const size_t auth_user_routes_count = sizeof(auth_user_routes) / sizeof(*auth_user_routes);
