#include "server/tenancy/tenancy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/text.h"
#include "server/db/db.h"

/* Organizations of a partner user: all of the partner's, unless the user has
 * organization-limited memberships. */
static const char *partner_orgs_sql =
	"SELECT o.id, EXISTS (SELECT 1 FROM memberships m WHERE m.user_id = $2 AND m.org_id IS NOT NULL)"
	"  FROM organizations o"
	" WHERE o.partner_id = $1"
	"   AND (NOT EXISTS (SELECT 1 FROM memberships m WHERE m.user_id = $2 AND m.org_id IS NOT NULL)"
	"        OR o.id IN (SELECT m.org_id FROM memberships m WHERE m.user_id = $2))"
	" ORDER BY o.id";

/* Site limits of an organization user (none = every site). */
static const char *org_sites_sql =
	"SELECT coalesce(array_agg(m.site_id ORDER BY m.site_id)::text, '')"
	"  FROM memberships m JOIN sites s ON s.id = m.site_id"
	" WHERE m.user_id = $1 AND s.org_id = $2";

static int partner_scope(PGconn *c, struct tenancy_scope *sc)
{
	const char *p[2] = {sc->partner_id, sc->user_id};
	PGresult *r = db_query(c, partner_orgs_sql, 2, p, NULL);

	if (r == NULL)
		return BZ_ERR_DB;
	for (int i = 0; i < PQntuples(r); i++)
		json_array_append_new(sc->org_ids, json_string(PQgetvalue(r, i, 0)));
	/* No rows: limited to organizations that no longer exist. */
	sc->limited = PQntuples(r) > 0 ? PQgetvalue(r, 0, 1)[0] == 't' : 1;
	PQclear(r);
	return 0;
}

static int org_scope(PGconn *c, const char *org_id, struct tenancy_scope *sc)
{
	const char *p[2] = {sc->user_id, org_id};
	PGresult *r;
	int rc = 0;

	json_array_append_new(sc->org_ids, json_string(org_id));
	r = db_query(c, org_sites_sql, 2, p, NULL);
	if (r == NULL)
		return BZ_ERR_DB;
	const char *v = PQgetvalue(r, 0, 0);
	if (v[0] != '\0' && (sc->site_ids_pg = strdup(v)) == NULL)
		rc = BZ_ERR_NOMEM;
	PQclear(r);
	return rc;
}

int tenancy_scope_compute(PGconn *c, const char *user_id, const char *partner_id,
			  const char *org_id, struct tenancy_scope *sc)
{
	int rc;

	memset(sc, 0, sizeof(*sc));
	snprintf(sc->user_id, sizeof(sc->user_id), "%s", user_id);
	snprintf(sc->partner_id, sizeof(sc->partner_id), "%s", partner_id ? partner_id : "");
	sc->org_ids = json_array();
	if (sc->org_ids == NULL)
		return BZ_ERR_NOMEM;
	if (sc->partner_id[0])
		rc = partner_scope(c, sc);
	else
		rc = org_scope(c, org_id, sc);
	if (rc == 0 && (sc->org_ids_pg = db_uuid_array_json(sc->org_ids)) == NULL)
		rc = BZ_ERR_NOMEM;
	if (rc != 0)
		tenancy_scope_free(sc);
	return rc;
}

void tenancy_scope_free(struct tenancy_scope *sc)
{
	json_decref(sc->org_ids);
	free(sc->org_ids_pg);
	free(sc->site_ids_pg);
	sc->org_ids = NULL;
	sc->org_ids_pg = NULL;
	sc->site_ids_pg = NULL;
}

int tenancy_scope_has_org(const struct tenancy_scope *sc, const char *org_id)
{
	size_t i;
	json_t *v;

	if (org_id == NULL || sc->org_ids == NULL)
		return 0;
	json_array_foreach(sc->org_ids, i, v)
	{
		if (!strcasecmp(json_string_value(v), org_id))
			return 1;
	}
	return 0;
}

int tenancy_scope_site_limited(const struct tenancy_scope *sc) { return sc->site_ids_pg != NULL; }

int tenancy_site_visible(PGconn *c, const struct tenancy_scope *sc, const char *site_id,
			 char *org_out)
{
	static const char *sql = "SELECT org_id FROM sites WHERE id = $1::uuid"
				 " AND org_id = ANY($2::uuid[])"
				 " AND ($3::uuid[] IS NULL OR id = ANY($3::uuid[]))";
	const char *p[3] = {site_id, sc->org_ids_pg, sc->site_ids_pg};
	PGresult *r;

	if (!is_uuid(site_id))
		return BZ_ERR_NOT_FOUND;
	r = db_query(c, sql, 3, p, NULL);
	if (r == NULL)
		return BZ_ERR_DB;
	int found = PQntuples(r) == 1;
	if (found && org_out != NULL)
		snprintf(org_out, 37, "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	return found ? 0 : BZ_ERR_NOT_FOUND;
}
