/*
 * users.c — users and roles API (partner administrators manage users).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "crypto/crypto.h"
#include "crypto/password.h"
#include "server/audit/audit.h"
#include "server/auth/auth.h"
#include "server/auth/auth_api.h"
#include "server/db/db.h"
#include "server/tenancy/tenancy.h"

void users_list(struct request *rq);
void users_create(struct request *rq);
void roles_list(struct request *rq);

#define TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

void users_list(struct request *rq)
{
	static const char *sql =
		"SELECT u.id, u.email, u.name, r.name, coalesce(u.partner_id::text, ''),"
		"       coalesce(u.org_id::text, ''), u.status, u.mfa_enabled, " TS("u.created_at") ","
		"       coalesce(" TS("u.last_login_at") ", '')"
		"  FROM users u JOIN roles r ON r.id = u.role_id"
		" WHERE (u.partner_id = $1::uuid AND ($3::boolean IS NOT TRUE OR u.id = $4::uuid))"
		"    OR u.org_id = ANY($2::uuid[])"
		" ORDER BY u.email";
	PGconn *c = http_db(rq);
	if (c == NULL)
		return;
	/* Organization-limited partner users see partner staff only as themselves. */
	const char *p[4] = {rq->who.partner_id[0] ? rq->who.partner_id : NULL, rq->scope.org_ids_pg,
			    rq->scope.limited ? "true" : "false", rq->who.user_id};
	PGresult *r = db_query(c, sql, 4, p, NULL);
	if (r == NULL) {
		http_fail_err(rq, BZ_ERR_DB, NULL);
		return;
	}
	json_t *arr = json_array();
	for (int i = 0; i < PQntuples(r); i++) {
		const char *pid = PQgetvalue(r, i, 4), *oid = PQgetvalue(r, i, 5),
			   *last = PQgetvalue(r, i, 9);
		json_array_append_new(
			arr, json_pack("{s:s,s:s,s:s,s:s,s:s?,s:s?,s:s,s:b,s:s,s:s?}", "id",
				       PQgetvalue(r, i, 0), "email", PQgetvalue(r, i, 1), "name",
				       PQgetvalue(r, i, 2), "role", PQgetvalue(r, i, 3), "partnerId",
				       pid[0] ? pid : NULL, "orgId", oid[0] ? oid : NULL, "status",
				       PQgetvalue(r, i, 6), "mfaEnabled", PQgetvalue(r, i, 7)[0] == 't',
				       "createdAt", PQgetvalue(r, i, 8), "lastLoginAt",
				       last[0] ? last : NULL));
	}
	PQclear(r);
	http_reply(rq, 200, json_pack("{s:o}", "users", arr));
}

/* Reads an optional array of UUIDs FIELD from the body into a Postgres array
 * literal (malloc'd, caller frees; NULL when absent). Returns 0 or -1 after
 * failing the request. */
static int body_uuid_array(struct request *rq, const char *field, char **out)
{
	json_t *v = json_object_get(rq->body, field), *e;
	size_t i;

	*out = NULL;
	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_array(v) || json_array_size(v) > 1000) {
		http_fail(rq, 400, "validation_error", "field '%s' must be an array of UUIDs", field);
		return -1;
	}
	if (json_array_size(v) == 0)
		return 0;
	char *s = malloc(json_array_size(v) * 37 + 3);
	size_t off = 0;
	if (s == NULL) {
		http_fail_err(rq, BZ_ERR_NOMEM, NULL);
		return -1;
	}
	s[off++] = '{';
	json_array_foreach(v, i, e)
	{
		if (!json_is_string(e) || !is_uuid(json_string_value(e))) {
			free(s);
			http_fail(rq, 400, "validation_error", "field '%s' must be an array of UUIDs",
				  field);
			return -1;
		}
		if (i)
			s[off++] = ',';
		memcpy(s + off, json_string_value(e), 36);
		off += 36;
	}
	s[off++] = '}';
	s[off] = '\0';
	*out = s;
	return 0;
}

void users_create(struct request *rq)
{
	const char *email_in = NULL, *name = NULL, *password = NULL, *role = NULL, *org_id = NULL;
	char email[256], gen_pw[33] = "", hash[PASSWORD_HASH_MAX], sqlstate[6];
	char *org_ids = NULL, *site_ids = NULL;
	PGresult *r = NULL;

	if (rq->who.partner_id[0] == '\0') {
		http_fail(rq, 403, "forbidden", "only partner users can manage users");
		return;
	}
	if (body_string(rq, "email", 1, 320, &email_in) || body_string(rq, "name", 1, 200, &name) ||
	    body_string(rq, "password", 0, 1024, &password) ||
	    body_string(rq, "role", 1, 64, &role) || body_uuid(rq, "orgId", 0, &org_id) ||
	    body_uuid_array(rq, "orgIds", &org_ids) || body_uuid_array(rq, "siteIds", &site_ids))
		goto out;
	if (auth_normalize_email(email_in, email, sizeof(email)) != 0) {
		http_fail(rq, 400, "validation_error", "field 'email' must be an e-mail address");
		goto out;
	}
	if (name[0] == '\0') {
		http_fail(rq, 400, "validation_error", "field 'name' must not be empty");
		goto out;
	}
	if (password != NULL && strlen(password) < 12) {
		http_fail(rq, 400, "validation_error", "field 'password' must be at least 12 characters");
		goto out;
	}
	PGconn *c = http_db(rq);
	if (c == NULL)
		goto out;
	const char *pr[1] = {role};
	r = db_query(c, "SELECT id, scope FROM roles WHERE name = $1", 1, pr, NULL);
	if (r == NULL) {
		http_fail_err(rq, BZ_ERR_DB, NULL);
		goto out;
	}
	if (PQntuples(r) != 1) {
		http_fail(rq, 400, "validation_error", "field 'role' names no role");
		goto out;
	}
	char role_id[37];
	snprintf(role_id, sizeof(role_id), "%s", PQgetvalue(r, 0, 0));
	int partner_scope = strcmp(PQgetvalue(r, 0, 1), "partner") == 0;
	PQclear(r);
	r = NULL;

	if (partner_scope) {
		if (org_id != NULL || site_ids != NULL) {
			http_fail(rq, 400, "validation_error",
				  "partner roles take 'orgIds', not 'orgId' or 'siteIds'");
			goto out;
		}
		/* A caller limited to some organizations cannot mint a wider user. */
		const char *pc[1] = {rq->who.user_id};
		r = db_query(c, "SELECT 1 FROM memberships WHERE user_id = $1::uuid LIMIT 1", 1, pc, NULL);
		if (r == NULL) {
			http_fail_err(rq, BZ_ERR_DB, NULL);
			goto out;
		}
		int limited = PQntuples(r) > 0;
		PQclear(r);
		r = NULL;
		if (limited && org_ids == NULL) {
			http_fail(rq, 403, "forbidden", "organization-limited users cannot create unrestricted partner users");
			goto out;
		}
		if (org_ids != NULL) {
			json_t *v = json_object_get(rq->body, "orgIds"), *e;
			size_t i;
			json_array_foreach(v, i, e) if (!tenancy_scope_has_org(&rq->scope, json_string_value(e)))
			{
				http_fail(rq, 404, "not_found", "organization not found");
				goto out;
			}
		}
	} else {
		if (org_id == NULL) {
			http_fail(rq, 400, "validation_error", "field 'orgId' is required for organization roles");
			goto out;
		}
		if (org_ids != NULL) {
			http_fail(rq, 400, "validation_error", "organization roles take 'orgId', not 'orgIds'");
			goto out;
		}
		if (!tenancy_scope_has_org(&rq->scope, org_id)) {
			http_fail(rq, 404, "not_found", "organization not found");
			goto out;
		}
		if (site_ids != NULL) {
			const char *ps[2] = {site_ids, org_id};
			r = db_query(c,
				     "SELECT count(*) = cardinality($1::uuid[]) FROM sites"
				     " WHERE id = ANY($1::uuid[]) AND org_id = $2::uuid",
				     2, ps, NULL);
			if (r == NULL) {
				http_fail_err(rq, BZ_ERR_DB, NULL);
				goto out;
			}
			int ok = PQgetvalue(r, 0, 0)[0] == 't';
			PQclear(r);
			r = NULL;
			if (!ok) {
				http_fail(rq, 404, "not_found", "site not found");
				goto out;
			}
		}
	}

	if (password == NULL) {
		if (crypto_random_hex(16, gen_pw) != 0) {
			http_fail_err(rq, BZ_ERR_CRYPTO, NULL);
			goto out;
		}
		password = gen_pw;
	}
	if (password_hash(password, hash, sizeof(hash)) != 0) {
		http_fail_err(rq, BZ_ERR_CRYPTO, NULL);
		goto out;
	}
	if (db_begin(c) != 0) {
		http_fail_err(rq, BZ_ERR_DB, NULL);
		goto out;
	}
	const char *pi[6] = {partner_scope ? rq->who.partner_id : NULL,
			     partner_scope ? NULL : org_id,
			     role_id,
			     email,
			     name,
			     hash};
	r = db_query(c,
		     "INSERT INTO users (partner_id, org_id, role_id, email, name, password_hash)"
		     " VALUES ($1::uuid, $2::uuid, $3::uuid, $4, $5, $6)"
		     " RETURNING id, " TS("created_at"),
		     6, pi, sqlstate);
	if (r == NULL) {
		db_rollback(c);
		if (!strcmp(sqlstate, "23505"))
			http_fail(rq, 409, "conflict", "a user with that e-mail exists");
		else
			http_fail_err(rq, BZ_ERR_DB, NULL);
		goto out;
	}
	char uid[37], created[32];
	snprintf(uid, sizeof(uid), "%s", PQgetvalue(r, 0, 0));
	snprintf(created, sizeof(created), "%s", PQgetvalue(r, 0, 1));
	PQclear(r);
	r = NULL;
	const char *pmo[2] = {uid, org_ids}, *pms[2] = {uid, site_ids};
	if ((org_ids && db_exec(c,
				"INSERT INTO memberships (user_id, org_id)"
				" SELECT $1::uuid, unnest($2::uuid[])",
				2, pmo)) ||
	    (site_ids && db_exec(c,
				 "INSERT INTO memberships (user_id, site_id)"
				 " SELECT $1::uuid, unnest($2::uuid[])",
				 2, pms)))
		goto dberr;
	struct audit_event ev = {.org_id = partner_scope ? NULL : org_id,
				 .action = "user.create",
				 .resource = "users",
				 .resource_id = uid,
				 .details = json_pack("{s:s,s:s}", "email", email, "role", role)};
	http_audit_actor(&ev, rq);
	int rc = audit_write(c, &ev);
	json_decref(ev.details);
	if (rc != 0 || db_commit(c) != 0)
		goto dberr;
	json_t *out = json_pack("{s:s,s:s,s:s,s:s,s:s?,s:s?,s:s,s:s}", "id", uid, "email", email,
				"name", name, "role", role, "partnerId",
				partner_scope ? rq->who.partner_id : NULL, "orgId",
				partner_scope ? NULL : org_id, "status", "active", "createdAt", created);
	/* A generated password is shown exactly once, in this response. */
	if (gen_pw[0])
		json_object_set_new(out, "password", json_string(gen_pw));
	http_reply(rq, 201, out);
	goto out;
dberr:
	db_rollback(c);
	http_fail_err(rq, BZ_ERR_DB, NULL);
out:
	crypto_wipe(gen_pw, sizeof(gen_pw));
	PQclear(r);
	free(org_ids);
	free(site_ids);
}

void roles_list(struct request *rq)
{
	PGconn *c = http_db(rq);
	if (c == NULL)
		return;
	PGresult *r = db_query(c,
			       "SELECT id, name, scope, array_to_json(permissions), force_mfa, builtin"
			       " FROM roles ORDER BY name",
			       0, NULL, NULL);
	if (r == NULL) {
		http_fail_err(rq, BZ_ERR_DB, NULL);
		return;
	}
	json_t *arr = json_array();
	for (int i = 0; i < PQntuples(r); i++) {
		json_t *perms = json_loads(PQgetvalue(r, i, 3), 0, NULL);
		json_array_append_new(arr, json_pack("{s:s,s:s,s:s,s:o,s:b,s:b}", "id",
						     PQgetvalue(r, i, 0), "name", PQgetvalue(r, i, 1),
						     "scope", PQgetvalue(r, i, 2), "permissions",
						     perms ? perms : json_array(), "forceMfa",
						     PQgetvalue(r, i, 4)[0] == 't', "builtin",
						     PQgetvalue(r, i, 5)[0] == 't'));
	}
	PQclear(r);
	http_reply(rq, 200, json_pack("{s:o}", "roles", arr));
}
