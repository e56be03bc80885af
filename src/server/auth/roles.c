/*
 * roles.c — the roles table: built-in roles (shared, partner_id NULL) and
 * custom roles (one partner's). A caller sees the built-in roles and its
 * own partner's; another partner's role is "not found". Only partner staff
 * without organization limits who hold roles:write change roles, and
 * nobody grants what they do not hold. A built-in role's forceMfa is set
 * per partner (partner_role_settings, migration 0010), never on the shared
 * row, so one partner's choice never reaches another's users.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/text.h"
#include "server/auth/auth.h"
#include "server/auth/permissions.h"
#include "server/db/db.h"

/* $1 is the caller: its partner (user_partner(), migration 0010) decides
 * which custom roles it sees and which forceMfa settings apply. */
#define ROLE_COLS                                                                                  \
	"r.id, r.name, r.scope, array_to_json(r.permissions),"                                     \
	" coalesce(s.force_mfa, r.force_mfa), r.builtin, r.partner_id IS NOT NULL"
#define ROLE_FROM                                                                                  \
	" FROM roles r LEFT JOIN partner_role_settings s"                                          \
	"   ON s.role_id = r.id AND s.partner_id = user_partner($1::uuid)"
#define ROLE_VISIBLE " (r.partner_id IS NULL OR r.partner_id = user_partner($1::uuid))"

static void role_from_row(const PGresult *r, int i, struct auth_role *o)
{
	text_copy(o->id, sizeof(o->id), PQgetvalue(r, i, 0));
	text_copy(o->name, sizeof(o->name), PQgetvalue(r, i, 1));
	text_copy(o->scope, sizeof(o->scope), PQgetvalue(r, i, 2));
	o->permissions = json_loads(PQgetvalue(r, i, 3), 0, NULL);
	if (!json_is_array(o->permissions)) {
		json_decref(o->permissions);
		o->permissions = json_array();
	}
	o->force_mfa = PQgetvalue(r, i, 4)[0] == 't';
	o->builtin = PQgetvalue(r, i, 5)[0] == 't';
	o->owned = PQgetvalue(r, i, 6)[0] == 't';
}

int auth_role_list(PGconn *c, const struct tenancy_scope *sc, struct auth_role **out, size_t *n)
{
	static const char *sql = "SELECT " ROLE_COLS ROLE_FROM " WHERE" ROLE_VISIBLE
				 " ORDER BY r.builtin DESC, r.name";
	const char *p[1] = {sc->user_id};
	PGresult *r = db_query(c, sql, 1, p, NULL);
	struct auth_role *a = NULL;

	*out = NULL;
	*n = 0;
	if (r == NULL)
		return BZ_ERR_DB;
	if (PQntuples(r) > 0 && (a = calloc((size_t)PQntuples(r), sizeof(*a))) == NULL) {
		PQclear(r);
		return BZ_ERR_NOMEM;
	}
	for (int i = 0; i < PQntuples(r); i++)
		role_from_row(r, i, &a[i]);
	*n = (size_t)PQntuples(r);
	*out = a;
	PQclear(r);
	return 0;
}

void auth_roles_free(struct auth_role *roles, size_t n)
{
	for (size_t i = 0; i < n; i++)
		json_decref(roles[i].permissions);
	free(roles);
}

void auth_role_free(struct auth_role *role)
{
	json_decref(role->permissions);
	role->permissions = NULL;
}

/* Role ID visible to SC into OUT (LOCK: FOR UPDATE of the role row). */
static int load_role(PGconn *c, const struct tenancy_scope *sc, const char *id, int lock,
		     struct auth_role *out, struct bz_errinfo *why)
{
	static const char *sql = "SELECT " ROLE_COLS ROLE_FROM " WHERE" ROLE_VISIBLE
				 " AND r.id = $2::uuid";
	static const char *sql_lock = "SELECT " ROLE_COLS ROLE_FROM " WHERE" ROLE_VISIBLE
				      " AND r.id = $2::uuid FOR UPDATE OF r";
	const char *p[2] = {sc->user_id, id};
	PGresult *r;

	memset(out, 0, sizeof(*out));
	if (!is_uuid(id))
		return bz_fail(why, BZ_ERR_NOT_FOUND, NULL, NULL, "role not found");
	if ((r = db_query(c, lock ? sql_lock : sql, 2, p, NULL)) == NULL)
		return BZ_ERR_DB;
	if (PQntuples(r) != 1) {
		PQclear(r);
		return bz_fail(why, BZ_ERR_NOT_FOUND, NULL, NULL, "role not found");
	}
	role_from_row(r, 0, out);
	PQclear(r);
	return 0;
}

int auth_role_get(PGconn *c, const struct tenancy_scope *sc, const char *id, struct auth_role *out)
{
	return load_role(c, sc, id, 0, out, NULL);
}

/* Roles are partner-wide: only partner staff who see the whole partner
 * change them (the route already demanded roles:write). */
static int may_manage(const struct tenancy_scope *sc, struct bz_errinfo *why)
{
	if (sc->partner_id[0] == '\0' || sc->limited)
		return bz_fail(why, BZ_ERR_FORBIDDEN, NULL, NULL,
			       "only partner staff without organization limits manage roles");
	return 0;
}

/* PERMS must name known permissions, each once, all held by the caller. */
static int check_grant(const json_t *perms, const json_t *held, struct bz_errinfo *why)
{
	const struct permission *missing;

	if (permissions_check_list(perms, NULL) != 0)
		return bz_fail(why, BZ_ERR_INVALID, "validation_error", "permissions",
			       "field 'permissions' must list known permissions, each once");
	if (!permissions_within(perms, held, &missing))
		return bz_fail(why, BZ_ERR_FORBIDDEN, "permission_not_held", "permissions",
			       missing != NULL ? missing->not_held_msg
					       : "you cannot grant a permission you lack");
	return 0;
}

/* A custom role may not take a built-in role's name: user creation names
 * roles, and "partner_admin" must always mean the built-in one. */
static int check_name(PGconn *c, const char *name, struct bz_errinfo *why)
{
	static const char *sql = "SELECT 1 FROM roles WHERE builtin AND name = $1";
	const char *p[1] = {name};
	PGresult *r;
	int taken;

	if (text_check(name, AUTH_CUSTOM_ROLE_NAME_MAX, 0, NULL) != 0)
		return bz_fail(why, BZ_ERR_INVALID, "validation_error", "name",
			       "field 'name' must be a display name of 1 to 63 bytes");
	if ((r = db_query(c, sql, 1, p, NULL)) == NULL)
		return BZ_ERR_DB;
	taken = PQntuples(r) > 0;
	PQclear(r);
	if (taken)
		return bz_fail(why, BZ_ERR_CONFLICT, "conflict", "name",
			       "a built-in role has that name");
	return 0;
}

static int name_conflict(const char *sqlstate, struct bz_errinfo *why)
{
	if (!strcmp(sqlstate, "23505"))
		return bz_fail(why, BZ_ERR_CONFLICT, "conflict", "name",
			       "a role with that name exists");
	return BZ_ERR_DB;
}

int auth_role_create(PGconn *c, const struct tenancy_scope *sc, const json_t *held,
		     const struct auth_role_new *in, struct auth_role *out, struct audit_event *ev,
		     struct bz_errinfo *why)
{
	static const char *sql =
		"INSERT INTO roles (name, scope, permissions, partner_id, builtin)"
		" SELECT $1, $2, ARRAY(SELECT json_array_elements_text($3::json)), $4::uuid, false"
		" RETURNING id";
	char sqlstate[6], *perms = NULL, id[37];
	PGresult *r;
	int rc;

	memset(out, 0, sizeof(*out));
	if ((rc = may_manage(sc, why)) != 0 || (rc = check_name(c, in->name, why)) != 0 ||
	    (rc = check_grant(in->permissions, held, why)) != 0)
		return rc;
	if (strcmp(in->scope, "partner") != 0 && strcmp(in->scope, "organization") != 0)
		return bz_fail(why, BZ_ERR_INVALID, "validation_error", "scope",
			       "field 'scope' must be 'partner' or 'organization'");
	if ((perms = json_dumps(in->permissions, JSON_COMPACT)) == NULL)
		return BZ_ERR_NOMEM;
	const char *p[4] = {in->name, in->scope, perms, sc->partner_id};
	r = db_query(c, sql, 4, p, sqlstate);
	free(perms);
	if (r == NULL)
		return name_conflict(sqlstate, why);
	text_copy(id, sizeof(id), PQgetvalue(r, 0, 0));
	PQclear(r);
	if ((rc = load_role(c, sc, id, 0, out, why)) != 0)
		return rc;
	*ev = (struct audit_event){.action = "role.create",
				   .resource = "roles",
				   .resource_id = out->id,
				   .details = json_pack("{s:s,s:s,s:O}", "name", out->name, "scope",
							out->scope, "permissions",
							out->permissions)};
	return 0;
}

/* The built-in role's forceMfa for the caller's partner. */
static int set_partner_force_mfa(PGconn *c, const struct tenancy_scope *sc, const char *role_id,
				 int force_mfa)
{
	static const char *sql =
		"INSERT INTO partner_role_settings (partner_id, role_id, force_mfa)"
		" VALUES ($1::uuid, $2::uuid, $3::boolean) ON CONFLICT (partner_id, role_id)"
		" DO UPDATE SET force_mfa = EXCLUDED.force_mfa, updated_at = now()";
	const char *p[3] = {sc->partner_id, role_id, force_mfa ? "true" : "false"};

	return db_exec(c, sql, 3, p);
}

static int update_custom(PGconn *c, const struct auth_role *was, const struct auth_role_change *in)
{
	static const char *sql =
		"UPDATE roles SET name = coalesce($2, name),"
		" permissions = CASE WHEN $3::json IS NULL THEN permissions"
		"               ELSE ARRAY(SELECT json_array_elements_text($3::json)) END,"
		" force_mfa = coalesce($4::boolean, force_mfa) WHERE id = $1::uuid";
	char *perms = in->permissions ? json_dumps(in->permissions, JSON_COMPACT) : NULL;
	const char *p[4] = {was->id, in->name, perms,
			    !in->force_mfa_set ? NULL
			    : in->force_mfa    ? "true"
					       : "false"};
	char sqlstate[6];
	PGresult *r;

	if (in->permissions != NULL && perms == NULL)
		return BZ_ERR_NOMEM;
	r = db_query(c, sql, 4, p, sqlstate);
	free(perms);
	if (r == NULL)
		return name_conflict(sqlstate, NULL);
	PQclear(r);
	return 0;
}

/* The audit details of a change from WAS to NOW: {name, changes}. */
static json_t *change_details(const struct auth_role *was, const struct auth_role *now)
{
	json_t *ch = json_object();

	if (strcmp(was->name, now->name) != 0)
		json_object_set_new(ch, "name",
				    json_pack("{s:s,s:s}", "from", was->name, "to", now->name));
	if (!json_equal(was->permissions, now->permissions))
		json_object_set_new(ch, "permissions",
				    json_pack("{s:O,s:O}", "from", was->permissions, "to",
					      now->permissions));
	if (was->force_mfa != now->force_mfa)
		json_object_set_new(ch, "forceMfa",
				    json_pack("{s:b,s:b}", "from", was->force_mfa, "to",
					      now->force_mfa));
	if (json_object_size(ch) == 0) {
		json_decref(ch);
		return NULL;
	}
	return json_pack("{s:s,s:b,s:o}", "name", now->name, "builtin", now->builtin, "changes",
			 ch);
}

/* What may change of WAS: a built-in role only its forceMfa; either only
 * while the caller holds every permission it has (and, for a custom role,
 * will have). */
static int check_change(PGconn *c, const struct auth_role *was, const json_t *held,
			const struct auth_role_change *in, struct bz_errinfo *why)
{
	const struct permission *missing;
	int rc;

	if (in->name == NULL && in->permissions == NULL && !in->force_mfa_set)
		return bz_fail(why, BZ_ERR_INVALID, "validation_error", NULL,
			       "give at least one of 'name', 'permissions' and 'forceMfa'");
	if (was->builtin && (in->name != NULL || in->permissions != NULL))
		return bz_fail(why, BZ_ERR_FORBIDDEN, "builtin_role", NULL,
			       "a built-in role's name and permissions cannot be changed; "
			       "only its forceMfa");
	if (!was->builtin && !was->owned)
		return bz_fail(why, BZ_ERR_FORBIDDEN, NULL, NULL,
			       "a role shared by every partner cannot be changed here");
	/* Also for a built-in role's forceMfa: roles:write on a lesser role is
	 * no way to lift forced MFA off the partner's administrators. */
	if (!permissions_within(was->permissions, held, &missing))
		return bz_fail(why, BZ_ERR_FORBIDDEN, NULL, NULL,
			       "you cannot change a role with permissions your own role lacks");
	if (was->builtin)
		return 0;
	if (in->name != NULL && strcmp(in->name, was->name) != 0 &&
	    (rc = check_name(c, in->name, why)) != 0)
		return rc;
	if (in->permissions != NULL && (rc = check_grant(in->permissions, held, why)) != 0)
		return rc;
	return 0;
}

int auth_role_update(PGconn *c, const struct tenancy_scope *sc, const json_t *held, const char *id,
		     const struct auth_role_change *in, struct auth_role *out,
		     struct audit_event *ev, struct bz_errinfo *why)
{
	struct auth_role was;
	int rc;

	memset(out, 0, sizeof(*out));
	*ev = (struct audit_event){0};
	if ((rc = may_manage(sc, why)) != 0 || (rc = load_role(c, sc, id, 1, &was, why)) != 0)
		return rc;
	if ((rc = check_change(c, &was, held, in, why)) != 0)
		goto out;
	if (was.builtin)
		rc = in->force_mfa_set && in->force_mfa != was.force_mfa
			     ? set_partner_force_mfa(c, sc, was.id, in->force_mfa)
			     : 0;
	else
		rc = update_custom(c, &was, in);
	if (rc == BZ_ERR_CONFLICT)
		rc = bz_fail(why, BZ_ERR_CONFLICT, "conflict", "name",
			     "a role with that name exists");
	if (rc != 0 || (rc = load_role(c, sc, was.id, 0, out, why)) != 0)
		goto out;
	json_t *d = change_details(&was, out);
	if (d != NULL)
		*ev = (struct audit_event){.action = "role.update",
					   .resource = "roles",
					   .resource_id = out->id,
					   .details = d};
out:
	auth_role_free(&was);
	return rc;
}

int auth_role_delete(PGconn *c, const struct tenancy_scope *sc, const json_t *held, const char *id,
		     struct auth_role *out, struct audit_event *ev, struct bz_errinfo *why)
{
	static const char *sql_users = "SELECT count(*) FROM users WHERE role_id = $1::uuid";
	static const char *sql_delete = "DELETE FROM roles WHERE id = $1::uuid AND NOT builtin"
					" AND partner_id IS NOT NULL";
	const struct permission *missing;
	char sqlstate[6];
	PGresult *r;
	int rc;

	*ev = (struct audit_event){0};
	if ((rc = may_manage(sc, why)) != 0 || (rc = load_role(c, sc, id, 1, out, why)) != 0)
		return rc;
	if (out->builtin)
		return bz_fail(why, BZ_ERR_FORBIDDEN, "builtin_role", NULL,
			       "built-in roles cannot be deleted");
	if (!out->owned)
		return bz_fail(why, BZ_ERR_FORBIDDEN, NULL, NULL,
			       "a role shared by every partner cannot be deleted here");
	if (!permissions_within(out->permissions, held, &missing))
		return bz_fail(why, BZ_ERR_FORBIDDEN, NULL, NULL,
			       "you cannot delete a role with permissions your own role lacks");
	const char *p[1] = {out->id};
	if ((r = db_query(c, sql_users, 1, p, NULL)) == NULL)
		return BZ_ERR_DB;
	long holders = strtol(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	if (holders > 0)
		return bz_fail(why, BZ_ERR_CONFLICT, "role_in_use", NULL,
			       "users hold this role: give them another role first");
	/* A user given the role meanwhile holds a key-share lock on it: the
	 * delete then fails on the foreign key, and that is the same 409. */
	if ((r = db_query(c, sql_delete, 1, p, sqlstate)) == NULL)
		return !strcmp(sqlstate, "23503")
			       ? bz_fail(why, BZ_ERR_CONFLICT, "role_in_use", NULL,
					 "users hold this role: give them another role first")
			       : BZ_ERR_DB;
	PQclear(r);
	*ev = (struct audit_event){.action = "role.delete",
				   .resource = "roles",
				   .resource_id = out->id,
				   .details = json_pack("{s:s,s:s,s:O}", "name", out->name, "scope",
							out->scope, "permissions",
							out->permissions)};
	return 0;
}
