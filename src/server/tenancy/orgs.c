/*
 * orgs.c — organizations and sites: the SQL of both tables. Partner staff
 * who see every organization of their partner create organizations; sites
 * belong to an organization. Every read is bound to a tenancy scope.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/db/db.h"
#include "server/tenancy/tenancy.h"

#define ORG_COLS "id, partner_id, name, " DB_TS("created_at")
#define SITE_COLS "id, org_id, name, " DB_TS("created_at")

static void copy(char *dst, size_t n, const char *src) { snprintf(dst, n, "%s", src); }

static void org_from_row(const PGresult *r, int i, void *dst)
{
	struct tenancy_org *o = dst;

	copy(o->id, sizeof(o->id), PQgetvalue(r, i, 0));
	copy(o->partner_id, sizeof(o->partner_id), PQgetvalue(r, i, 1));
	copy(o->name, sizeof(o->name), PQgetvalue(r, i, 2));
	copy(o->created_at, sizeof(o->created_at), PQgetvalue(r, i, 3));
}

static void site_from_row(const PGresult *r, int i, void *dst)
{
	struct tenancy_site *s = dst;

	copy(s->id, sizeof(s->id), PQgetvalue(r, i, 0));
	copy(s->org_id, sizeof(s->org_id), PQgetvalue(r, i, 1));
	copy(s->name, sizeof(s->name), PQgetvalue(r, i, 2));
	copy(s->created_at, sizeof(s->created_at), PQgetvalue(r, i, 3));
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

int tenancy_org_list(PGconn *c, const struct tenancy_scope *sc, struct tenancy_org **out,
		     size_t *n)
{
	static const char *sql = "SELECT " ORG_COLS " FROM organizations"
				 " WHERE id = ANY($1::uuid[]) ORDER BY name, id";
	const char *p[1] = {sc->org_ids_pg};

	return collect(c, sql, 1, p, sizeof(**out), org_from_row,
		       (void **)out, n);
}

int tenancy_org_get(PGconn *c, const struct tenancy_scope *sc, const char *id,
		    struct tenancy_org *out)
{
	static const char *sql = "SELECT " ORG_COLS " FROM organizations WHERE id = $1::uuid";
	const char *p[1] = {id};
	PGresult *r;
	int rc = BZ_ERR_NOT_FOUND;

	if (!tenancy_scope_has_org(sc, id))
		return BZ_ERR_NOT_FOUND;
	if ((r = db_query(c, sql, 1, p, NULL)) == NULL)
		return BZ_ERR_DB;
	if (PQntuples(r) == 1) {
		org_from_row(r, 0, out);
		rc = 0;
	}
	PQclear(r);
	return rc;
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
	static const char *sql = "SELECT " SITE_COLS " FROM sites WHERE org_id = $1::uuid"
				 " AND ($2::uuid[] IS NULL OR id = ANY($2::uuid[])) ORDER BY name, id";
	const char *p[2] = {org_id, sc->site_ids_pg};

	if (!tenancy_scope_has_org(sc, org_id))
		return BZ_ERR_NOT_FOUND;
	return collect(c, sql, 2, p, sizeof(**out),
		       site_from_row, (void **)out, n);
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
