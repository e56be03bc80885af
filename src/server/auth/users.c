/*
 * users.c — users and roles: the SQL of both tables. Partner staff manage
 * users; every read is bound to the caller's tenancy scope, and another
 * tenant's user is "not found". Scope limits (memberships) belong to the
 * tenancy module and are read and written through it.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/text.h"
#include "crypto/crypto.h"
#include "crypto/password.h"
#include "server/auth/auth.h"
#include "server/db/db.h"

#define USER_COLS                                                                                  \
	"u.id, u.email, u.name, r.name, coalesce(u.partner_id::text, ''),"                         \
	" coalesce(u.org_id::text, ''), u.status, u.mfa_enabled, " DB_TS(                          \
		"u.created_at") ","                                                                \
				" coalesce(" DB_TS("u.last_login_at") ", ''), r.force_mfa"
#define USER_FROM " FROM users u JOIN roles r ON r.id = u.role_id"

/* The users a scope sees ($1 its partner or NULL, $2 its organizations,
 * $3 organization-limited, $4 the caller): organization-limited partner
 * users see partner staff only as themselves. */
#define USER_VISIBLE                                                                               \
	" ((u.partner_id = $1::uuid AND ($3::boolean IS NOT TRUE OR u.id = $4::uuid))"             \
	"  OR u.org_id = ANY($2::uuid[]))"

/* The built-in role that administers a partner; a partner keeps at least
 * one active user with it. */
#define PARTNER_ADMIN_ROLE "partner_admin"

static void user_from_row(const PGresult *r, int i, struct auth_user *u)
{
	text_copy(u->id, sizeof(u->id), PQgetvalue(r, i, 0));
	text_copy(u->email, sizeof(u->email), PQgetvalue(r, i, 1));
	text_copy(u->name, sizeof(u->name), PQgetvalue(r, i, 2));
	text_copy(u->role, sizeof(u->role), PQgetvalue(r, i, 3));
	text_copy(u->partner_id, sizeof(u->partner_id), PQgetvalue(r, i, 4));
	text_copy(u->org_id, sizeof(u->org_id), PQgetvalue(r, i, 5));
	text_copy(u->status, sizeof(u->status), PQgetvalue(r, i, 6));
	u->mfa_enabled = PQgetvalue(r, i, 7)[0] == 't';
	text_copy(u->created_at, sizeof(u->created_at), PQgetvalue(r, i, 8));
	text_copy(u->last_login_at, sizeof(u->last_login_at), PQgetvalue(r, i, 9));
	u->force_mfa = PQgetvalue(r, i, 10)[0] == 't';
}

/* The first four parameters of USER_VISIBLE for SC. */
static void visible_params(const struct tenancy_scope *sc, const char *p[4])
{
	p[0] = sc->partner_id[0] ? sc->partner_id : NULL;
	p[1] = sc->org_ids_pg;
	p[2] = sc->limited ? "true" : "false";
	p[3] = sc->user_id;
}

int auth_normalize_email(const char *in, char *out, size_t outlen)
{
	size_t n;

	while (isspace((unsigned char)*in))
		in++;
	n = strlen(in);
	while (n > 0 && isspace((unsigned char)in[n - 1]))
		n--;
	if (n < 3 || n > 254 || n >= outlen)
		return BZ_ERR_INVALID;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)in[i];
		if (ch < 0x21 || ch == 0x7f)
			return BZ_ERR_INVALID;
		out[i] = (char)tolower(ch);
	}
	out[n] = '\0';
	const char *at = strchr(out, '@');
	if (at == NULL || at == out || at[1] == '\0' || strchr(at + 1, '@') != NULL)
		return BZ_ERR_INVALID;
	/* No control, bidirectional or invisible characters: an address must
	 * not pass for another one ("\u200badmin@…", "…\u202emoc.…"). */
	char shown[255];
	if (text_check(out, n, 0, NULL) != 0)
		return BZ_ERR_INVALID;
	text_strip_blanks(out, shown, sizeof(shown));
	return strcmp(shown, out) == 0 ? 0 : BZ_ERR_INVALID;
}

int auth_user_list(PGconn *c, const struct tenancy_scope *sc, struct auth_user **out, size_t *n)
{
	static const char *sql = "SELECT " USER_COLS USER_FROM " WHERE" USER_VISIBLE
				 " ORDER BY u.email";
	const char *p[4];
	PGresult *r;

	*out = NULL;
	*n = 0;
	visible_params(sc, p);
	if ((r = db_query(c, sql, 4, p, NULL)) == NULL)
		return BZ_ERR_DB;
	if (PQntuples(r) > 0 && (*out = calloc((size_t)PQntuples(r), sizeof(**out))) == NULL) {
		PQclear(r);
		return BZ_ERR_NOMEM;
	}
	for (int i = 0; i < PQntuples(r); i++)
		user_from_row(r, i, &(*out)[i]);
	*n = (size_t)PQntuples(r);
	PQclear(r);
	return 0;
}

int auth_user_get(PGconn *c, const struct tenancy_scope *sc, const char *id, struct auth_user *out)
{
	static const char *sql = "SELECT " USER_COLS USER_FROM " WHERE" USER_VISIBLE
				 " AND u.id = $5::uuid";
	const char *p[5];
	PGresult *r;
	int rc = BZ_ERR_NOT_FOUND;

	if (!is_uuid(id))
		return BZ_ERR_NOT_FOUND;
	visible_params(sc, p);
	p[4] = id;
	if ((r = db_query(c, sql, 5, p, NULL)) == NULL)
		return BZ_ERR_DB;
	if (PQntuples(r) == 1) {
		user_from_row(r, 0, out);
		rc = 0;
	}
	PQclear(r);
	return rc;
}

/* User ID without a scope check, after this file changed it. */
static int read_user(PGconn *c, const char *id, struct auth_user *out)
{
	static const char *sql = "SELECT " USER_COLS USER_FROM " WHERE u.id = $1::uuid";
	const char *p[1] = {id};
	PGresult *r = db_query(c, sql, 1, p, NULL);
	int rc = BZ_ERR_INTERNAL;

	if (r == NULL)
		return BZ_ERR_DB;
	if (PQntuples(r) == 1) {
		user_from_row(r, 0, out);
		rc = 0;
	}
	PQclear(r);
	return rc;
}

/* Sets *WITHIN to 1 if every permission of role ROLE_ID is also one of
 * user CALLER_ID's role, else 0. Returns 0 or BZ_ERR_DB. */
static int role_within(PGconn *c, const char *caller_id, const char *role_id, int *within)
{
	static const char *sql =
		"SELECT coalesce((SELECT permissions FROM roles WHERE id = $2::uuid)"
		"       <@ (SELECT r.permissions FROM users u JOIN roles r ON r.id = u.role_id"
		"            WHERE u.id = $1::uuid), false)";
	const char *p[2] = {caller_id, role_id};
	PGresult *r = db_query(c, sql, 2, p, NULL);

	if (r == NULL)
		return BZ_ERR_DB;
	*within = PQgetvalue(r, 0, 0)[0] == 't';
	PQclear(r);
	return 0;
}

/* Role NAME into ROLE_ID[37] and whether it is a partner role. Nobody
 * grants what they do not hold: a role with a permission the caller's own
 * role (CALLER_ID) lacks is refused (403), so users:write is never a way to
 * mint a partner_admin. Returns 0, BZ_ERR_INVALID (no such role),
 * BZ_ERR_FORBIDDEN or BZ_ERR_DB, with WHY set. */
static int role_lookup(PGconn *c, const char *caller_id, const char *name, char role_id[37],
		       int *partner_scope, struct bz_errinfo *why)
{
	/* A built-in role, or a custom role of the caller's partner: another
	 * partner's role names nothing here (migration 0010). */
	static const char *sql = "SELECT id, scope FROM roles WHERE name = $1"
				 " AND (partner_id IS NULL OR partner_id = user_partner($2::uuid))";
	const char *p[2] = {name, caller_id};
	PGresult *r = db_query(c, sql, 2, p, NULL);
	int within, rc;

	if (r == NULL)
		return BZ_ERR_DB;
	if (PQntuples(r) != 1) {
		PQclear(r);
		return bz_fail(why, BZ_ERR_INVALID, "validation_error", "role",
			       "field 'role' names no role");
	}
	text_copy(role_id, 37, PQgetvalue(r, 0, 0));
	*partner_scope = strcmp(PQgetvalue(r, 0, 1), "partner") == 0;
	PQclear(r);
	if ((rc = role_within(c, caller_id, role_id, &within)) != 0)
		return rc;
	if (!within)
		return bz_fail(why, BZ_ERR_FORBIDDEN, NULL, "role",
			       "you cannot give a role with permissions your own role lacks");
	return 0;
}

/* ---- Creating users ---- */

/* Where a new user goes: its role and its partner or organization, with
 * the scope limits to record. */
struct placement {
	char role_id[37];
	int partner_scope;
	char org_id[37];   /* organization roles */
	char *org_ids_pg;  /* partner roles: organization limits or NULL; owned */
	char *site_ids_pg; /* organization roles: site limits or NULL; owned */
};

static const json_t *nonempty(const json_t *a)
{
	return json_array_size(a) > 0 ? a : NULL;
}

/* Partner roles: optional organization limits, all in scope; a caller
 * limited to some organizations cannot mint a wider user. */
static int place_partner(PGconn *c, const struct tenancy_scope *sc, const struct auth_user_new *in,
			 struct placement *pl, struct bz_errinfo *why)
{
	const json_t *org_ids = nonempty(in->org_ids), *e;
	size_t i;
	int limited, rc;

	if (in->org_id != NULL || nonempty(in->site_ids) != NULL)
		return bz_fail(why, BZ_ERR_INVALID, "validation_error",
			       in->org_id != NULL ? "orgId" : "siteIds",
			       "partner roles take 'orgIds', not 'orgId' or 'siteIds'");
	if ((rc = tenancy_user_limited(c, sc->user_id, &limited)) != 0)
		return rc;
	if (limited && org_ids == NULL)
		return bz_fail(
			why, BZ_ERR_FORBIDDEN, NULL, NULL,
			"organization-limited users cannot create unrestricted partner users");
	if (org_ids == NULL)
		return 0;
	json_array_foreach(org_ids, i, e) {
		if (!tenancy_scope_has_org(sc, json_string_value(e)))
			return bz_fail(why, BZ_ERR_NOT_FOUND, NULL, NULL, "organization not found");
	}
	if ((pl->org_ids_pg = db_uuid_array_json(org_ids)) == NULL)
		return bz_fail(why, BZ_ERR_INVALID, "validation_error", "orgIds",
			       "field 'orgIds' must be an array of UUIDs");
	return 0;
}

/* Organization roles: orgId, or the one organization of siteIds. */
static int place_org(PGconn *c, const struct tenancy_scope *sc, const struct auth_user_new *in,
		     struct placement *pl, struct bz_errinfo *why)
{
	const json_t *site_ids = nonempty(in->site_ids);

	if (in->org_id == NULL && site_ids == NULL)
		return bz_fail(why, BZ_ERR_INVALID, "validation_error", "orgId",
			       "field 'orgId' (or 'siteIds') is required for organization roles");
	if (nonempty(in->org_ids) != NULL)
		return bz_fail(why, BZ_ERR_INVALID, "validation_error", "orgIds",
			       "organization roles take 'orgId', not 'orgIds'");
	if (in->org_id != NULL && (!is_uuid(in->org_id) || !tenancy_scope_has_org(sc, in->org_id)))
		return bz_fail(why, BZ_ERR_NOT_FOUND, NULL, NULL, "organization not found");
	if (site_ids == NULL) {
		text_copy(pl->org_id, sizeof(pl->org_id), in->org_id);
		return 0;
	}
	if ((pl->site_ids_pg = db_uuid_array_json(site_ids)) == NULL)
		return bz_fail(why, BZ_ERR_INVALID, "validation_error", "siteIds",
			       "field 'siteIds' must be an array of UUIDs");
	return tenancy_sites_org(c, sc, pl->site_ids_pg, in->org_id, pl->org_id, why);
}

static int insert_user(PGconn *c, const struct placement *pl, const char *partner_id,
		       const char *email, const char *name, const char *hash, char id_out[37],
		       struct bz_errinfo *why)
{
	static const char *sql =
		"INSERT INTO users (partner_id, org_id, role_id, email, name, password_hash)"
		" VALUES ($1::uuid, $2::uuid, $3::uuid, $4, $5, $6) RETURNING id";
	const char *p[6] = {pl->partner_scope ? partner_id : NULL,
			    pl->partner_scope ? NULL : pl->org_id,
			    pl->role_id,
			    email,
			    name,
			    hash};
	char sqlstate[6];
	PGresult *r = db_query(c, sql, 6, p, sqlstate);

	if (r == NULL) {
		if (!strcmp(sqlstate, "23505"))
			return bz_fail(why, BZ_ERR_CONFLICT, "conflict", "email",
				       "a user with that e-mail exists");
		return BZ_ERR_DB;
	}
	text_copy(id_out, 37, PQgetvalue(r, 0, 0));
	PQclear(r);
	return 0;
}

int auth_user_create(PGconn *c, const struct tenancy_scope *sc, const struct auth_user_new *in,
		     struct auth_user *out, char *gen_pw, struct audit_event *ev,
		     struct bz_errinfo *why)
{
	struct placement pl = {0};
	char email[AUTH_EMAIL_MAX + 1], hash[PASSWORD_HASH_MAX], id[37];
	const char *password = in->password;
	int rc;

	gen_pw[0] = '\0';
	memset(out, 0, sizeof(*out));
	if (sc->partner_id[0] == '\0')
		return bz_fail(why, BZ_ERR_FORBIDDEN, NULL, NULL,
			       "only partner users can manage users");
	if (auth_normalize_email(in->email, email, sizeof(email)) != 0 ||
	    text_check(email, AUTH_EMAIL_MAX, 0, NULL) != 0)
		return bz_fail(why, BZ_ERR_INVALID, "validation_error", "email",
			       "field 'email' must be an e-mail address");
	if (text_check(in->name, AUTH_NAME_MAX, 0, NULL) != 0)
		return bz_fail(why, BZ_ERR_INVALID, "validation_error", "name",
			       "field 'name' must be a display name of 1 to 200 bytes");
	if (password != NULL &&
	    (strlen(password) < AUTH_PASSWORD_MIN || strlen(password) > AUTH_PASSWORD_MAX))
		return bz_fail(why, BZ_ERR_INVALID, "validation_error", "password",
			       "field 'password' must be at least 12 characters");
	if ((rc = role_lookup(c, sc->user_id, in->role, pl.role_id, &pl.partner_scope, why)) != 0)
		return rc;
	rc = pl.partner_scope ? place_partner(c, sc, in, &pl, why) : place_org(c, sc, in, &pl, why);
	if (rc != 0)
		goto out;
	if (password == NULL) {
		if (crypto_random_hex(16, gen_pw) != 0) {
			rc = BZ_ERR_CRYPTO;
			goto out;
		}
		password = gen_pw;
	}
	if ((rc = password_hash(password, hash, sizeof(hash))) != 0)
		goto out; /* BZ_ERR_UNAVAILABLE when too many hash at once: 503 */
	if ((rc = insert_user(c, &pl, sc->partner_id, email, in->name, hash, id, why)) != 0 ||
	    (rc = tenancy_memberships_add(c, id, pl.org_ids_pg, pl.site_ids_pg)) != 0 ||
	    (rc = read_user(c, id, out)) != 0)
		goto out;
	*ev = (struct audit_event){.org_id = pl.partner_scope ? NULL : out->org_id,
				   .action = "user.create",
				   .resource = "users",
				   .resource_id = out->id,
				   .details = json_pack("{s:s,s:s}", "email", out->email, "role",
							in->role)};
out:
	crypto_wipe(hash, sizeof(hash));
	if (rc != 0)
		crypto_wipe(gen_pw, AUTH_GENERATED_PASSWORD_LEN);
	free(pl.org_ids_pg);
	free(pl.site_ids_pg);
	return rc;
}

/* ---- Changing users ---- */

/* The user a PATCH changes, as it was, and what changes. */
struct user_change {
	struct auth_user was;
	char role_id[37];     /* current role */
	int partner_staff;    /* a partner user (else an organization user) */
	char new_role_id[37]; /* "" = role unchanged */
	const char *name;     /* new name or NULL */
	const char *status;   /* new status or NULL */
	int disabling;
};

/* Serializes user changes within a partner (PARTNER_ID), so two
 * administrators disabling each other at once cannot both succeed. The
 * two-key form keeps it apart from bootstrap's one-key lock. */
static int lock_partner_users(PGconn *c, const char *partner_id)
{
	static const char *sql = "SELECT pg_advisory_xact_lock(7314007, hashtext($1))";
	const char *p[1] = {partner_id};
	PGresult *r = db_query(c, sql, 1, p, NULL);

	if (r == NULL)
		return BZ_ERR_DB;
	PQclear(r);
	return 0;
}

/* Loads user ID, if SC sees it, locked for the change, into CH->was. */
static int load_for_change(PGconn *c, const struct tenancy_scope *sc, const char *id,
			   struct user_change *ch, struct bz_errinfo *why)
{
	static const char *sql = "SELECT " USER_COLS ", u.role_id" USER_FROM " WHERE" USER_VISIBLE
				 " AND u.id = $5::uuid FOR UPDATE OF u";
	const char *p[5];
	PGresult *r;

	if (!is_uuid(id))
		return bz_fail(why, BZ_ERR_NOT_FOUND, NULL, NULL, "user not found");
	visible_params(sc, p);
	p[4] = id;
	if ((r = db_query(c, sql, 5, p, NULL)) == NULL)
		return BZ_ERR_DB;
	if (PQntuples(r) != 1) {
		PQclear(r);
		return bz_fail(why, BZ_ERR_NOT_FOUND, NULL, NULL, "user not found");
	}
	user_from_row(r, 0, &ch->was);
	text_copy(ch->role_id, sizeof(ch->role_id), PQgetvalue(r, 0, 11));
	ch->partner_staff = ch->was.partner_id[0] != '\0';
	PQclear(r);
	return 0;
}

/* Works out what IN changes of CH->was; checks the role and self-changes. */
static int plan_change(PGconn *c, const struct tenancy_scope *sc, const struct auth_user_change *in,
		       struct user_change *ch, struct bz_errinfo *why)
{
	char role_id[37];
	int partner_role, within, rc;

	/* Nor does anyone change a user more powerful than they are. */
	if ((rc = role_within(c, sc->user_id, ch->role_id, &within)) != 0)
		return rc;
	if (!within)
		return bz_fail(why, BZ_ERR_FORBIDDEN, NULL, NULL,
			       "you cannot change a user whose role has permissions your own role "
			       "lacks");
	if (in->role != NULL) {
		if ((rc = role_lookup(c, sc->user_id, in->role, role_id, &partner_role, why)) != 0)
			return rc;
		if (partner_role != ch->partner_staff)
			return bz_fail(why, BZ_ERR_INVALID, "validation_error", "role",
				       ch->partner_staff
					       ? "partner staff take partner roles"
					       : "organization users take organization roles");
		if (strcmp(role_id, ch->role_id) != 0)
			text_copy(ch->new_role_id, sizeof(ch->new_role_id), role_id);
	}
	if (in->name != NULL && strcmp(in->name, ch->was.name) != 0)
		ch->name = in->name;
	if (in->status != NULL && strcmp(in->status, ch->was.status) != 0)
		ch->status = in->status;
	ch->disabling = ch->status != NULL && !strcmp(ch->status, "disabled");
	if (!strcmp(ch->was.id, sc->user_id) && (ch->new_role_id[0] || ch->disabling))
		return bz_fail(why, BZ_ERR_FORBIDDEN, NULL, NULL,
			       "you cannot disable or change the role of your own account");
	return 0;
}

/* Whether some active partner_admin of CH's partner other than CH's user
 * remains; with UNLIMITED, one without organization limits (memberships). */
static int other_administrator(PGconn *c, const struct user_change *ch, int unlimited, int *found)
{
	static const char *sql = "SELECT u.id FROM users u JOIN roles r ON r.id = u.role_id"
				 " WHERE u.partner_id = $1::uuid AND u.id <> $2::uuid"
				 "   AND u.status = 'active' AND r.name = $3";
	const char *p[3] = {ch->was.partner_id, ch->was.id, PARTNER_ADMIN_ROLE};
	PGresult *r;
	int rc = 0;

	*found = 0;
	if ((r = db_query(c, sql, 3, p, NULL)) == NULL)
		return BZ_ERR_DB;
	for (int i = 0; i < PQntuples(r) && !*found && rc == 0; i++) {
		int limited = 0;
		if (unlimited)
			rc = tenancy_user_limited(c, PQgetvalue(r, i, 0), &limited);
		*found = rc == 0 && !limited;
	}
	PQclear(r);
	return rc;
}

/*
 * Refuses to disable or demote the last active partner_admin of a partner,
 * and the last one without organization limits: a limited administrator
 * sees no partner staff and cannot create unrestricted users, so it cannot
 * stand in for the partner's administration.
 */
static int keep_an_administrator(PGconn *c, const struct user_change *ch, struct bz_errinfo *why)
{
	int limited, found, rc;

	if (!ch->partner_staff || strcmp(ch->was.status, "active") != 0 ||
	    strcmp(ch->was.role, PARTNER_ADMIN_ROLE) != 0 || !(ch->disabling || ch->new_role_id[0]))
		return 0;
	if ((rc = tenancy_user_limited(c, ch->was.id, &limited)) != 0 ||
	    (rc = other_administrator(c, ch, !limited, &found)) != 0)
		return rc;
	if (!found)
		return bz_fail(why, BZ_ERR_CONFLICT, "last_administrator", NULL,
			       limited ? "the last active administrator of a partner cannot be "
					 "disabled or given another role"
				       : "the last active administrator of a partner without "
					 "organization limits cannot be disabled or given another "
					 "role");
	return 0;
}

/* The audit details of CH: {"email", "changes": {field: {"from", "to"}}}. */
static json_t *change_details(const struct user_change *ch, const struct auth_user *now,
			      long revoked)
{
	json_t *changes = json_object();

	if (ch->name != NULL)
		json_object_set_new(changes, "name",
				    json_pack("{s:s,s:s}", "from", ch->was.name, "to", now->name));
	if (ch->new_role_id[0])
		json_object_set_new(changes, "role",
				    json_pack("{s:s,s:s}", "from", ch->was.role, "to", now->role));
	if (ch->status != NULL)
		json_object_set_new(changes, "status",
				    json_pack("{s:s,s:s}", "from", ch->was.status, "to",
					      now->status));
	json_t *d = json_pack("{s:s,s:o}", "email", now->email, "changes", changes);
	if (ch->disabling)
		json_object_set_new(d, "sessionsRevoked", json_integer(revoked));
	return d;
}

int auth_user_update(PGconn *c, const struct tenancy_scope *sc, const char *id,
		     const struct auth_user_change *in, struct auth_user *out,
		     struct audit_event *ev, struct bz_errinfo *why)
{
	static const char *sql =
		"UPDATE users SET name = coalesce($2, name),"
		" role_id = coalesce($3::uuid, role_id), status = coalesce($4, status)"
		" WHERE id = $1::uuid";
	struct user_change ch = {0};
	long revoked = 0;
	int rc;

	*ev = (struct audit_event){0};
	if (sc->partner_id[0] == '\0')
		return bz_fail(why, BZ_ERR_FORBIDDEN, NULL, NULL,
			       "only partner users can manage users");
	if (in->name == NULL && in->role == NULL && in->status == NULL)
		return bz_fail(why, BZ_ERR_INVALID, "validation_error", NULL,
			       "give at least one of 'name', 'role' and 'status'");
	if (in->name != NULL && text_check(in->name, AUTH_NAME_MAX, 0, NULL) != 0)
		return bz_fail(why, BZ_ERR_INVALID, "validation_error", "name",
			       "field 'name' must be a display name of 1 to 200 bytes");
	if (in->status != NULL && strcmp(in->status, "active") != 0 &&
	    strcmp(in->status, "disabled") != 0)
		return bz_fail(why, BZ_ERR_INVALID, "validation_error", "status",
			       "field 'status' must be 'active' or 'disabled'");
	if ((rc = lock_partner_users(c, sc->partner_id)) != 0 ||
	    (rc = load_for_change(c, sc, id, &ch, why)) != 0 ||
	    (rc = plan_change(c, sc, in, &ch, why)) != 0)
		return rc;
	if (ch.name == NULL && ch.status == NULL && !ch.new_role_id[0]) {
		*out = ch.was; /* nothing changes: no write, no audit row */
		return 0;
	}
	const char *p[4] = {ch.was.id, ch.name, ch.new_role_id[0] ? ch.new_role_id : NULL,
			    ch.status};
	if ((rc = keep_an_administrator(c, &ch, why)) != 0 || (rc = db_exec(c, sql, 4, p)) != 0 ||
	    (ch.disabling &&
	     (rc = auth_sessions_revoke_user(c, ch.was.id, "user_disabled", &revoked)) != 0) ||
	    (rc = read_user(c, ch.was.id, out)) != 0)
		return rc;
	*ev = (struct audit_event){.org_id = out->org_id[0] ? out->org_id : NULL,
				   .action = ch.disabling ? "user.disable"
					     : ch.status  ? "user.enable"
							  : "user.update",
				   .resource = "users",
				   .resource_id = out->id,
				   .details = change_details(&ch, out, revoked)};
	return 0;
}

/* ---- Login lookups ---- */

int auth_user_credentials(PGconn *c, const char *email, struct auth_credentials *out, int *found)
{
	static const char *sql = "SELECT " USER_COLS ", u.password_hash" USER_FROM
				 " WHERE u.email = $1";
	const char *p[1] = {email};
	PGresult *r = db_query(c, sql, 1, p, NULL);

	memset(out, 0, sizeof(*out));
	*found = 0;
	if (r == NULL)
		return BZ_ERR_DB;
	if (PQntuples(r) == 1) {
		user_from_row(r, 0, &out->user);
		text_copy(out->password_hash, sizeof(out->password_hash), PQgetvalue(r, 0, 11));
		*found = 1;
	}
	PQclear(r);
	return 0;
}

int auth_user_login_touch(PGconn *c, const char *user_id)
{
	static const char *sql = "UPDATE users SET last_login_at = now()"
				 " WHERE id = $1::uuid AND status = 'active' RETURNING id";
	const char *p[1] = {user_id};
	PGresult *r = db_query(c, sql, 1, p, NULL);
	int rc;

	if (r == NULL)
		return BZ_ERR_DB;
	rc = PQntuples(r) == 1 ? 0 : BZ_ERR_UNAUTHORIZED;
	PQclear(r);
	return rc;
}

int auth_user_by_id(PGconn *c, const char *id, struct auth_user *out)
{
	int rc;

	memset(out, 0, sizeof(*out));
	rc = read_user(c, id, out);
	return rc == BZ_ERR_INTERNAL ? BZ_ERR_NOT_FOUND : rc;
}

int auth_user_check_password(PGconn *c, const char *user_id, const char *password)
{
	static const char *sql = "SELECT password_hash FROM users"
				 " WHERE id = $1::uuid AND status = 'active'";
	const char *p[1] = {user_id};
	char hash[256] = "";
	PGresult *r = db_query(c, sql, 1, p, NULL);
	int ok;

	if (r == NULL)
		return BZ_ERR_DB;
	if (PQntuples(r) == 1)
		text_copy(hash, sizeof(hash), PQgetvalue(r, 0, 0));
	PQclear(r);
	ok = password_check(password != NULL ? password : "", hash[0] ? hash : NULL);
	crypto_wipe(hash, sizeof(hash));
	return ok == 1 ? 0 : ok == BZ_ERR_UNAVAILABLE ? ok : BZ_ERR_UNAUTHORIZED;
}
