/*
 * memberships.c — the memberships table: which organizations a partner user
 * is limited to, and which sites an organization user is limited to (no
 * rows = no limit). tenancy.c reads them into a scope; this file answers
 * the questions user management asks and writes new limits.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/db/db.h"
#include "server/tenancy/tenancy.h"

int tenancy_user_limited(PGconn *c, const char *user_id, int *limited)
{
	static const char *sql = "SELECT 1 FROM memberships WHERE user_id = $1::uuid LIMIT 1";
	const char *p[1] = {user_id};
	PGresult *r = db_query(c, sql, 1, p, NULL);

	if (r == NULL)
		return BZ_ERR_DB;
	*limited = PQntuples(r) > 0;
	PQclear(r);
	return 0;
}

int tenancy_sites_org(PGconn *c, const struct tenancy_scope *sc, const char *site_ids_pg,
		      const char *org_id, char org_out[37], struct bz_errinfo *why)
{
	/* A repeated id counts once in the join but twice in cardinality(): it
	 * is refused like an unknown site, as before. */
	static const char *sql =
		"SELECT count(*) = cardinality($1::uuid[]), count(DISTINCT org_id),"
		"       coalesce(min(org_id::text), '')"
		"  FROM sites WHERE id = ANY($1::uuid[]) AND org_id = ANY($2::uuid[]) AND deleted_at IS NULL"
		"   AND ($3::uuid[] IS NULL OR id = ANY($3::uuid[]))"
		"   AND ($4::uuid IS NULL OR org_id = $4::uuid)";
	const char *p[4] = {site_ids_pg, sc->org_ids_pg, sc->site_ids_pg, org_id};
	PGresult *r = db_query(c, sql, 4, p, NULL);
	int all, orgs;

	if (r == NULL)
		return BZ_ERR_DB;
	all = PQgetvalue(r, 0, 0)[0] == 't';
	orgs = (int)strtol(PQgetvalue(r, 0, 1), NULL, 10);
	snprintf(org_out, 37, "%s", PQgetvalue(r, 0, 2));
	PQclear(r);
	if (!all || orgs == 0)
		return bz_fail(why, BZ_ERR_NOT_FOUND, NULL, NULL, "site not found");
	if (orgs > 1)
		return bz_fail(why, BZ_ERR_INVALID, "validation_error", "siteIds",
			       "field 'siteIds' names sites of more than one organization");
	return 0;
}

int tenancy_memberships_add(PGconn *c, const char *user_id, const char *org_ids_pg,
			    const char *site_ids_pg)
{
	static const char *org_sql = "INSERT INTO memberships (user_id, org_id)"
				     " SELECT DISTINCT $1::uuid, unnest($2::uuid[])";
	static const char *site_sql = "INSERT INTO memberships (user_id, site_id)"
				      " SELECT DISTINCT $1::uuid, unnest($2::uuid[])";
	const char *po[2] = {user_id, org_ids_pg}, *ps[2] = {user_id, site_ids_pg};

	if (org_ids_pg != NULL && db_exec(c, org_sql, 2, po) != 0)
		return BZ_ERR_DB;
	if (site_ids_pg != NULL && db_exec(c, site_sql, 2, ps) != 0)
		return BZ_ERR_DB;
	return 0;
}
