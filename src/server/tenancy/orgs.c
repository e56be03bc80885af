/*
 * orgs.c — organizations and sites: the SQL of both tables. Partner staff
 * who see every organization of their partner create and delete
 * organizations; partner staff who see one may rename it; sites belong to
 * an organization. Every read is bound to a tenancy scope, and a deleted
 * (soft-deleted: deleted_at set) organization or site is never read.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/text.h"
#include "server/agents/agents_usage.h"
#include "server/auth/auth_usage.h"
#include "server/db/db.h"
#include "server/tenancy/tenancy.h"

#define ORG_COLS "id, partner_id, name, " DB_TS("created_at")
#define SITE_COLS "id, org_id, name, " DB_TS("created_at")

static void org_from_row(const PGresult *r, int i, void *dst)
{
	struct tenancy_org *o = dst;

	text_copy(o->id, sizeof(o->id), PQgetvalue(r, i, 0));
	text_copy(o->partner_id, sizeof(o->partner_id), PQgetvalue(r, i, 1));
	text_copy(o->name, sizeof(o->name), PQgetvalue(r, i, 2));
	text_copy(o->created_at, sizeof(o->created_at), PQgetvalue(r, i, 3));
}

static void site_from_row(const PGresult *r, int i, void *dst)
{
	struct tenancy_site *s = dst;

	text_copy(s->id, sizeof(s->id), PQgetvalue(r, i, 0));
	text_copy(s->org_id, sizeof(s->org_id), PQgetvalue(r, i, 1));
	text_copy(s->name, sizeof(s->name), PQgetvalue(r, i, 2));
	text_copy(s->created_at, sizeof(s->created_at), PQgetvalue(r, i, 3));
}

/* Runs SQL and collects every row with FROM_ROW into a malloc'd array of
 * SIZE-byte elements. Returns 0, BZ_ERR_DB or BZ_ERR_NOMEM. */
static int collect(PGconn *c, const char *sql, int np, const char *const *p, size_t size,
		   void (*from_row)(const PGresult *, int, void *), void **out, size_t *n)
{
	PGresult *r = db_query(c, sql, np, p, NULL);
	char *arr = NULL;

	*out = NULL;
	*n = 0;
	if (r == NULL)
		return BZ_ERR_DB;
	if (PQntuples(r) > 0 && (arr = calloc((size_t)PQntuples(r), size)) == NULL) {
		PQclear(r);
		return BZ_ERR_NOMEM;
	}
	for (int i = 0; i < PQntuples(r); i++)
		from_row(r, i, arr + (size_t)i * size);
	*n = (size_t)PQntuples(r);
	*out = arr;
	PQclear(r);
	return 0;
}

/* Runs SQL, which yields at most one row, into OUT with FROM_ROW.
 * Returns 0, BZ_ERR_NOT_FOUND (no row) or BZ_ERR_DB. */
static int one_row(PGconn *c, const char *sql, int np, const char *const *p,
		   void (*from_row)(const PGresult *, int, void *), void *out)
{
	PGresult *r = db_query(c, sql, np, p, NULL);
	int rc = BZ_ERR_NOT_FOUND;

	if (r == NULL)
		return BZ_ERR_DB;
	if (PQntuples(r) == 1) {
		from_row(r, 0, out);
		rc = 0;
	}
	PQclear(r);
	return rc;
}

int tenancy_org_list(PGconn *c, const struct tenancy_scope *sc, struct tenancy_org **out, size_t *n)
{
	static const char *sql =
		"SELECT " ORG_COLS " FROM organizations"
		" WHERE id = ANY($1::uuid[]) AND deleted_at IS NULL ORDER BY name, id";
	const char *p[1] = {sc->org_ids_pg};

	return collect(c, sql, 1, p, sizeof(**out), org_from_row, (void **)out, n);
}

int tenancy_org_get(PGconn *c, const struct tenancy_scope *sc, const char *id,
		    struct tenancy_org *out)
{
	static const char *sql = "SELECT " ORG_COLS " FROM organizations"
				 " WHERE id = $1::uuid AND deleted_at IS NULL";
	const char *p[1] = {id};

	if (!tenancy_scope_has_org(sc, id))
		return BZ_ERR_NOT_FOUND;
	return one_row(c, sql, 1, p, org_from_row, out);
}

int tenancy_org_create(PGconn *c, const struct tenancy_scope *sc, const char *name,
		       struct tenancy_org *out, struct audit_event *ev, struct bz_errinfo *why)
{
	static const char *sql = "INSERT INTO organizations (partner_id, name) VALUES ($1, $2)"
				 " RETURNING " ORG_COLS;
	const char *p[2] = {sc->partner_id, name};
	char sqlstate[6];
	PGresult *r;

	if (sc->partner_id[0] == '\0' || sc->limited)
		return bz_fail(why, BZ_ERR_FORBIDDEN, NULL, NULL,
			       "only partner users with access to every organization can create "
			       "organizations");
	if ((r = db_query(c, sql, 2, p, sqlstate)) == NULL) {
		if (!strcmp(sqlstate, "23505"))
			return bz_fail(why, BZ_ERR_CONFLICT, NULL, "name",
				       "an organization with that name exists");
		return BZ_ERR_DB;
	}
	org_from_row(r, 0, out);
	PQclear(r);
	*ev = (struct audit_event){.org_id = out->id,
				   .action = "organization.create",
				   .resource = "organizations",
				   .resource_id = out->id,
				   .details = json_pack("{s:s}", "name", out->name)};
	return 0;
}

int tenancy_site_list(PGconn *c, const struct tenancy_scope *sc, const char *org_id,
		      struct tenancy_site **out, size_t *n)
{
	static const char *sql =
		"SELECT " SITE_COLS " FROM sites WHERE org_id = $1::uuid"
		" AND deleted_at IS NULL"
		" AND ($2::uuid[] IS NULL OR id = ANY($2::uuid[])) ORDER BY name, id";
	const char *p[2] = {org_id, sc->site_ids_pg};

	if (!tenancy_scope_has_org(sc, org_id))
		return BZ_ERR_NOT_FOUND;
	return collect(c, sql, 2, p, sizeof(**out), site_from_row, (void **)out, n);
}

int tenancy_site_create(PGconn *c, const struct tenancy_scope *sc, const char *org_id,
			const char *name, struct tenancy_site *out, struct audit_event *ev,
			struct bz_errinfo *why)
{
	static const char *sql = "INSERT INTO sites (org_id, name) VALUES ($1::uuid, $2)"
				 " RETURNING " SITE_COLS;
	const char *p[2] = {org_id, name};
	char sqlstate[6];
	PGresult *r;

	if (!tenancy_scope_has_org(sc, org_id))
		return bz_fail(why, BZ_ERR_NOT_FOUND, NULL, NULL, "organization not found");
	if (tenancy_scope_site_limited(sc))
		return bz_fail(why, BZ_ERR_FORBIDDEN, NULL, NULL,
			       "site-limited users cannot create sites");
	if ((r = db_query(c, sql, 2, p, sqlstate)) == NULL) {
		if (!strcmp(sqlstate, "23505"))
			return bz_fail(why, BZ_ERR_CONFLICT, NULL, "name",
				       "a site with that name exists");
		/* The organization was deleted after the scope was computed
		 * (trigger tenancy_require_live_parent, migration 0006). */
		if (!strcmp(sqlstate, "23503"))
			return bz_fail(why, BZ_ERR_NOT_FOUND, NULL, NULL, "organization not found");
		return BZ_ERR_DB;
	}
	site_from_row(r, 0, out);
	PQclear(r);
	*ev = (struct audit_event){.org_id = out->org_id,
				   .action = "site.create",
				   .resource = "sites",
				   .resource_id = out->id,
				   .details = json_pack("{s:s}", "name", out->name)};
	return 0;
}

int tenancy_site_get(PGconn *c, const struct tenancy_scope *sc, const char *id,
		     struct tenancy_site *out)
{
	static const char *sql = "SELECT " SITE_COLS " FROM sites WHERE id = $1::uuid"
				 " AND deleted_at IS NULL AND org_id = ANY($2::uuid[])"
				 " AND ($3::uuid[] IS NULL OR id = ANY($3::uuid[]))";
	const char *p[3] = {id, sc->org_ids_pg, sc->site_ids_pg};

	if (!is_uuid(id))
		return BZ_ERR_NOT_FOUND;
	return one_row(c, sql, 3, p, site_from_row, out);
}

/* ---- Renaming and deleting ----
 *
 * Every change first locks the row it changes (SELECT … FOR NO KEY UPDATE
 * for a rename, FOR UPDATE for a deletion) and re-reads it, so two changes
 * of one row serialize and the second sees the first (a rename or a second
 * deletion of a row deleted meanwhile answers 404).
 *
 * A deletion counts what the organization or site still holds only after
 * it holds the lock. Every insert that points at an organization or site —
 * a device enrolling, an enrolment key, a user, a membership, a site — takes
 * FOR SHARE on that row (trigger tenancy_require_live_parent, migration
 * 0006), which conflicts with FOR UPDATE: an insert that got in first has
 * committed before the counts run (READ COMMITTED: each count sees what
 * committed before it started) and refuses the deletion; one that comes
 * later waits and then fails on the deleted row. Enrolment consumes a key
 * and inserts its device in one transaction, so a key use in flight is
 * either seen as a device or (uncommitted) still shows the key as usable —
 * either way the deletion is refused.
 */

/* What an organization or site still holds that keeps it from deletion. */
enum { HOLDS_DEVICES = 1, HOLDS_USERS = 2, HOLDS_KEYS = 4 };

/* The 409 messages, indexed by the HOLDS_* bits (static strings, see
 * struct bz_errinfo). */
static const char *const org_not_empty_msg[8] = {
	NULL,
	"organization is not empty: it still has devices that are not decommissioned",
	"organization is not empty: it still has users",
	"organization is not empty: it still has devices that are not decommissioned and users",
	"organization is not empty: it still has usable enrollment keys",
	"organization is not empty: it still has devices that are not decommissioned and usable "
	"enrollment keys",
	"organization is not empty: it still has users and usable enrollment keys",
	"organization is not empty: it still has devices that are not decommissioned, users and "
	"usable enrollment keys",
};
static const char *const site_not_empty_msg[8] = {
	NULL,
	"site is not empty: it still has devices that are not decommissioned",
	"site is not empty: it still has users limited to it",
	"site is not empty: it still has devices that are not decommissioned and users limited to "
	"it",
	"site is not empty: it still has usable enrollment keys",
	"site is not empty: it still has devices that are not decommissioned and usable enrollment "
	"keys",
	"site is not empty: it still has users limited to it and usable enrollment keys",
	"site is not empty: it still has devices that are not decommissioned, users limited to it "
	"and usable enrollment keys",
};

/* Active users whose memberships limit them to organization $1 or one of
 * its sites ($2 NULL), or to site $2. A disabled user does not hold an
 * organization or site: users are disabled, never deleted, so counting
 * them would make every organization that ever had one permanent. (The
 * one read of auth's users table from here: memberships are ours.) */
static const char *members_sql =
	"SELECT count(DISTINCT m.user_id) FROM memberships m"
	"  JOIN users u ON u.id = m.user_id AND u.status = 'active'"
	" WHERE ($2::uuid IS NOT NULL AND m.site_id = $2::uuid)"
	"    OR ($2::uuid IS NULL AND (m.org_id = $1::uuid"
	"        OR m.site_id IN (SELECT s.id FROM sites s WHERE s.org_id = $1::uuid)))";

/* What organization ORG_ID (SITE_ID NULL) or its site SITE_ID still holds,
 * as HOLDS_* bits into *HOLDS, on C inside the caller's transaction (the
 * caller holds the row lock). Returns 0 or BZ_ERR_DB. */
static int holdings(PGconn *c, const char *org_id, const char *site_id, unsigned *holds)
{
	const char *p[2] = {org_id, site_id};
	struct agents_usage u;
	long long users = 0, members;
	PGresult *r;
	int rc;

	if ((rc = agents_usage_count(c, org_id, site_id, &u)) != 0)
		return rc;
	if (site_id == NULL && (rc = auth_usage_count(c, org_id, &users)) != 0)
		return rc;
	if ((r = db_query(c, members_sql, 2, p, NULL)) == NULL)
		return BZ_ERR_DB;
	members = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	*holds = (u.active_devices > 0 ? HOLDS_DEVICES : 0) |
		 (users + members > 0 ? HOLDS_USERS : 0) | (u.usable_keys > 0 ? HOLDS_KEYS : 0);
	return 0;
}

/* The live organization ID of the caller's partner, locked with LOCK_SQL,
 * into OUT. Organization users may change no organization (FORBIDDEN_MSG),
 * and nor may organization-limited partner staff when ALL_ORGS is set.
 * Returns 0, BZ_ERR_NOT_FOUND, BZ_ERR_FORBIDDEN or BZ_ERR_DB with WHY. */
static int org_for_change(PGconn *c, const struct tenancy_scope *sc, const char *id,
			  const char *lock_sql, int all_orgs, const char *forbidden_msg,
			  struct tenancy_org *out, struct bz_errinfo *why)
{
	const char *p[1] = {id};
	int rc;

	if (!tenancy_scope_has_org(sc, id))
		return bz_fail(why, BZ_ERR_NOT_FOUND, NULL, NULL, "organization not found");
	if (sc->partner_id[0] == '\0' || (all_orgs && sc->limited))
		return bz_fail(why, BZ_ERR_FORBIDDEN, NULL, NULL, forbidden_msg);
	rc = one_row(c, lock_sql, 1, p, org_from_row, out);
	return rc == 0 ? 0 : bz_fail(why, rc, NULL, NULL, "organization not found");
}

/* The live site ID visible in SC, locked with LOCK_SQL, into OUT.
 * Site-limited callers may change no site (FORBIDDEN_MSG). Returns 0,
 * BZ_ERR_NOT_FOUND, BZ_ERR_FORBIDDEN or BZ_ERR_DB with WHY. */
static int site_for_change(PGconn *c, const struct tenancy_scope *sc, const char *id,
			   const char *lock_sql, const char *forbidden_msg,
			   struct tenancy_site *out, struct bz_errinfo *why)
{
	const char *p[1] = {id};
	int rc = tenancy_site_visible(c, sc, id, NULL);

	if (rc != 0)
		return bz_fail(why, rc, NULL, NULL, "site not found");
	if (tenancy_scope_site_limited(sc))
		return bz_fail(why, BZ_ERR_FORBIDDEN, NULL, NULL, forbidden_msg);
	rc = one_row(c, lock_sql, 1, p, site_from_row, out);
	return rc == 0 ? 0 : bz_fail(why, rc, NULL, NULL, "site not found");
}

int tenancy_org_rename(PGconn *c, const struct tenancy_scope *sc, const char *id, const char *name,
		       struct tenancy_org *out, struct audit_event *ev, struct bz_errinfo *why)
{
	static const char *lock_sql = "SELECT " ORG_COLS " FROM organizations"
				      " WHERE id = $1::uuid AND deleted_at IS NULL"
				      " FOR NO KEY UPDATE";
	static const char *sql = "UPDATE organizations SET name = $2 WHERE id = $1::uuid"
				 " RETURNING " ORG_COLS;
	const char *p[2] = {id, name};
	char previous[TENANCY_NAME_MAX + 1], sqlstate[6];
	PGresult *r;
	int rc;

	*ev = (struct audit_event){0};
	rc = org_for_change(c, sc, id, lock_sql, 0,
			    "organization users cannot rename their organization", out, why);
	if (rc != 0)
		return rc;
	if (!strcmp(out->name, name))
		return 0; /* unchanged: 200, and no audit row (ev->action NULL) */
	text_copy(previous, sizeof(previous), out->name);
	if ((r = db_query(c, sql, 2, p, sqlstate)) == NULL) {
		if (!strcmp(sqlstate, "23505"))
			return bz_fail(why, BZ_ERR_CONFLICT, NULL, "name",
				       "an organization with that name exists");
		return BZ_ERR_DB;
	}
	org_from_row(r, 0, out);
	PQclear(r);
	*ev = (struct audit_event){.org_id = out->id,
				   .action = "organization.update",
				   .resource = "organizations",
				   .resource_id = out->id,
				   .details = json_pack("{s:s,s:s}", "name", out->name,
							"previousName", previous)};
	return 0;
}

/* Locks the live sites of organization ORG_ID FOR UPDATE (so no membership
 * limited to one of them can be added while the organization is deleted)
 * and returns their ids as a new JSON array in *IDS. Returns 0, BZ_ERR_DB
 * or BZ_ERR_NOMEM. */
static int lock_org_sites(PGconn *c, const char *org_id, json_t **ids)
{
	static const char *sql = "SELECT id FROM sites WHERE org_id = $1::uuid"
				 " AND deleted_at IS NULL ORDER BY id FOR UPDATE";
	const char *p[1] = {org_id};
	PGresult *r = db_query(c, sql, 1, p, NULL);

	if (r == NULL)
		return BZ_ERR_DB;
	if ((*ids = json_array()) == NULL) {
		PQclear(r);
		return BZ_ERR_NOMEM;
	}
	for (int i = 0; i < PQntuples(r); i++)
		json_array_append_new(*ids, json_string(PQgetvalue(r, i, 0)));
	PQclear(r);
	return 0;
}

int tenancy_org_delete(PGconn *c, const struct tenancy_scope *sc, const char *id,
		       struct tenancy_org *out, struct audit_event *ev, struct bz_errinfo *why)
{
	static const char *lock_sql = "SELECT " ORG_COLS " FROM organizations"
				      " WHERE id = $1::uuid AND deleted_at IS NULL FOR UPDATE";
	static const char *delete_sites_sql = "UPDATE sites SET deleted_at = now()"
					      " WHERE org_id = $1::uuid AND deleted_at IS NULL";
	static const char *delete_sql = "UPDATE organizations SET deleted_at = now()"
					" WHERE id = $1::uuid";
	const char *p[1] = {id};
	json_t *site_ids = NULL;
	unsigned holds = 0;
	int rc;

	*ev = (struct audit_event){0};
	rc = org_for_change(c, sc, id, lock_sql, 1,
			    "only partner users with access to every organization can delete "
			    "organizations",
			    out, why);
	if (rc != 0 || (rc = lock_org_sites(c, id, &site_ids)) != 0 ||
	    (rc = holdings(c, id, NULL, &holds)) != 0)
		goto fail;
	if (holds != 0) {
		rc = bz_fail(why, BZ_ERR_CONFLICT, "organization_not_empty", NULL,
			     org_not_empty_msg[holds]);
		goto fail;
	}
	if ((rc = db_exec(c, delete_sites_sql, 1, p)) != 0 ||
	    (rc = db_exec(c, delete_sql, 1, p)) != 0)
		goto fail;
	*ev = (struct audit_event){.org_id = out->id,
				   .action = "organization.delete",
				   .resource = "organizations",
				   .resource_id = out->id,
				   .details = json_pack("{s:s,s:o}", "name", out->name, "siteIds",
							site_ids)};
	return 0;
fail:
	json_decref(site_ids);
	return rc;
}

int tenancy_site_rename(PGconn *c, const struct tenancy_scope *sc, const char *id, const char *name,
			struct tenancy_site *out, struct audit_event *ev, struct bz_errinfo *why)
{
	static const char *lock_sql =
		"SELECT " SITE_COLS " FROM sites"
		" WHERE id = $1::uuid AND deleted_at IS NULL FOR NO KEY UPDATE";
	static const char *sql = "UPDATE sites SET name = $2 WHERE id = $1::uuid"
				 " RETURNING " SITE_COLS;
	const char *p[2] = {id, name};
	char previous[TENANCY_NAME_MAX + 1], sqlstate[6];
	PGresult *r;
	int rc;

	*ev = (struct audit_event){0};
	rc = site_for_change(c, sc, id, lock_sql, "site-limited users cannot rename sites", out,
			     why);
	if (rc != 0)
		return rc;
	if (!strcmp(out->name, name))
		return 0; /* unchanged: 200, and no audit row */
	text_copy(previous, sizeof(previous), out->name);
	if ((r = db_query(c, sql, 2, p, sqlstate)) == NULL) {
		if (!strcmp(sqlstate, "23505"))
			return bz_fail(why, BZ_ERR_CONFLICT, NULL, "name",
				       "a site with that name exists");
		return BZ_ERR_DB;
	}
	site_from_row(r, 0, out);
	PQclear(r);
	*ev = (struct audit_event){.org_id = out->org_id,
				   .action = "site.update",
				   .resource = "sites",
				   .resource_id = out->id,
				   .details = json_pack("{s:s,s:s}", "name", out->name,
							"previousName", previous)};
	return 0;
}

int tenancy_site_delete(PGconn *c, const struct tenancy_scope *sc, const char *id,
			struct tenancy_site *out, struct audit_event *ev, struct bz_errinfo *why)
{
	static const char *lock_sql = "SELECT " SITE_COLS " FROM sites"
				      " WHERE id = $1::uuid AND deleted_at IS NULL FOR UPDATE";
	static const char *sql = "UPDATE sites SET deleted_at = now() WHERE id = $1::uuid";
	const char *p[1] = {id};
	unsigned holds = 0;
	int rc;

	*ev = (struct audit_event){0};
	rc = site_for_change(c, sc, id, lock_sql, "site-limited users cannot delete sites", out,
			     why);
	if (rc != 0 || (rc = holdings(c, out->org_id, out->id, &holds)) != 0)
		return rc;
	if (holds != 0)
		return bz_fail(why, BZ_ERR_CONFLICT, "site_not_empty", NULL,
			       site_not_empty_msg[holds]);
	if ((rc = db_exec(c, sql, 1, p)) != 0)
		return rc;
	*ev = (struct audit_event){.org_id = out->org_id,
				   .action = "site.delete",
				   .resource = "sites",
				   .resource_id = out->id,
				   .details = json_pack("{s:s}", "name", out->name)};
	return 0;
}
