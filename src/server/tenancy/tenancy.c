#include "server/tenancy/tenancy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/text.h"
#include "server/db/db.h"

/* Organizations of a partner user: all of the partner's, unless the user has
 * organization-limited memberships; deleted ones never. One row at least:
 * the limit flag, with a NULL id when no organization is visible (so a
 * partner admin whose partner has no organization left is still unlimited
 * and may create one). */
static const char *partner_orgs_sql =
	"WITH lim AS (SELECT count(*) > 0 AS limited FROM memberships m"
	"              WHERE m.user_id = $2 AND m.org_id IS NOT NULL)"
	"SELECT lim.limited, o.id"
	"  FROM lim LEFT JOIN organizations o"
	"    ON o.partner_id = $1 AND o.deleted_at IS NULL"
	"   AND (NOT lim.limited OR o.id IN (SELECT m.org_id FROM memberships m WHERE m.user_id = $2))"
	" ORDER BY o.id";

/* An organization user: whether the organization is live, whether the user
 * has site limits, and the live sites among them ("{}" when every listed
 * site is deleted: the user then sees no site, not every site). */
static const char *org_sites_sql =
	"SELECT EXISTS (SELECT 1 FROM organizations WHERE id = $2::uuid AND deleted_at IS NULL),"
	"       count(m.site_id) > 0,"
	"       coalesce(array_agg(m.site_id ORDER BY m.site_id) FILTER (WHERE s.deleted_at IS NULL),"
	"                '{}')::text"
	"  FROM memberships m JOIN sites s ON s.id = m.site_id"
	" WHERE m.user_id = $1 AND s.org_id = $2";

static int partner_scope(PGconn *c, struct tenancy_scope *sc)
{
	const char *p[2] = {sc->partner_id, sc->user_id};
	PGresult *r = db_query(c, partner_orgs_sql, 2, p, NULL);

	if (r == NULL)
		return BZ_ERR_DB;
	for (int i = 0; i < PQntuples(r); i++)
		if (!PQgetisnull(r, i, 1))
			json_array_append_new(sc->org_ids, json_string(PQgetvalue(r, i, 1)));
	/* No row cannot happen (lim always has one); treat it as limited. */
	sc->limited = PQntuples(r) > 0 ? PQgetvalue(r, 0, 0)[0] == 't' : 1;
	PQclear(r);
	return 0;
}

static int org_scope(PGconn *c, const char *org_id, struct tenancy_scope *sc)
{
	const char *p[2] = {sc->user_id, org_id};
	PGresult *r;
	int rc = 0;

	r = db_query(c, org_sites_sql, 2, p, NULL);
	if (r == NULL)
		return BZ_ERR_DB;
	/* A deleted organization leaves its users an empty scope. */
	if (PQgetvalue(r, 0, 0)[0] == 't')
		json_array_append_new(sc->org_ids, json_string(org_id));
	if (PQgetvalue(r, 0, 1)[0] == 't' &&
	    (sc->site_ids_pg = strdup(PQgetvalue(r, 0, 2))) == NULL)
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
	json_array_foreach(sc->org_ids, i, v) {
		if (!strcasecmp(json_string_value(v), org_id))
			return 1;
	}
	return 0;
}

int tenancy_scope_site_limited(const struct tenancy_scope *sc)
{
	return sc->site_ids_pg != NULL;
}

int tenancy_site_visible(PGconn *c, const struct tenancy_scope *sc, const char *site_id,
			 char *org_out)
{
	static const char *sql = "SELECT org_id FROM sites WHERE id = $1::uuid"
				 " AND deleted_at IS NULL AND org_id = ANY($2::uuid[])"
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

int tenancy_scope_restrict_org(struct tenancy_scope *sc, const char *org_id)
{
	json_t *keep = json_array();
	char *pg;

	if (keep == NULL)
		return BZ_ERR_NOMEM;
	if (tenancy_scope_has_org(sc, org_id))
		json_array_append_new(keep, json_string(org_id));
	if ((pg = db_uuid_array_json(keep)) == NULL) {
		json_decref(keep);
		return BZ_ERR_NOMEM;
	}
	json_decref(sc->org_ids);
	free(sc->org_ids_pg);
	sc->org_ids = keep;
	sc->org_ids_pg = pg;
	/* Partner staff narrowed to one organization act as if limited to it:
	 * no partner-wide actions, no partner chain, no other staff. */
	if (sc->partner_id[0])
		sc->limited = 1;
	return 0;
}
