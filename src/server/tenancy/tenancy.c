#include "server/tenancy/tenancy.h"

#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/err.h"
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

static char *pg_array(json_t *ids)
{
	size_t n = json_array_size(ids), cap = 3 + n * 37, off = 0;
	char *s = malloc(cap);
	size_t i;
	json_t *v;

	if (s == NULL)
		return NULL;
	s[off++] = '{';
	json_array_foreach(ids, i, v)
	{
		if (i > 0)
			s[off++] = ',';
		memcpy(s + off, json_string_value(v), 36);
		off += 36;
	}
	s[off++] = '}';
	s[off] = '\0';
	return s;
}

int tenancy_resolve(struct request *rq)
{
	struct tenancy_scope *sc = &rq->scope;
	PGconn *c = http_db(rq);
	PGresult *r;

	if (c == NULL)
		return -1;
	sc->org_ids = json_array();
	if (rq->who.partner_id[0]) {
		const char *p[2] = {rq->who.partner_id, rq->who.user_id};
		memcpy(sc->partner_id, rq->who.partner_id, 37);
		r = db_query(c, partner_orgs_sql, 2, p, NULL);
		if (r == NULL)
			goto fail;
		for (int i = 0; i < PQntuples(r); i++)
			json_array_append_new(sc->org_ids, json_string(PQgetvalue(r, i, 0)));
		if (PQntuples(r) > 0)
			sc->limited = PQgetvalue(r, 0, 1)[0] == 't';
		else
			sc->limited = 1; /* limited to organizations that no longer exist */
		PQclear(r);
	} else {
		const char *p[2] = {rq->who.user_id, rq->who.org_id};
		json_array_append_new(sc->org_ids, json_string(rq->who.org_id));
		r = db_query(c, org_sites_sql, 2, p, NULL);
		if (r == NULL)
			goto fail;
		const char *v = PQgetvalue(r, 0, 0);
		if (v[0] != '\0') {
			sc->site_ids_pg = strdup(v);
			if (sc->site_ids_pg == NULL) {
				PQclear(r);
				goto fail;
			}
		}
		PQclear(r);
	}
	sc->org_ids_pg = pg_array(sc->org_ids);
	if (sc->org_ids_pg == NULL)
		goto fail;
	return 0;
fail:
	http_fail(rq, 500, "internal", "internal error");
	return -1;
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

int tenancy_org_visible(const struct request *rq, const char *org_id)
{
	size_t i;
	json_t *v;

	if (org_id == NULL)
		return 0;
	json_array_foreach(rq->scope.org_ids, i, v) if (!strcasecmp(json_string_value(v), org_id)) return 1;
	return 0;
}

int tenancy_site_visible(struct request *rq, const char *site_id, char *org_out)
{
	static const char *sql = "SELECT org_id FROM sites WHERE id = $1::uuid"
				 " AND org_id = ANY($2::uuid[])"
				 " AND ($3::uuid[] IS NULL OR id = ANY($3::uuid[]))";
	PGconn *c = http_db(rq);

	if (c == NULL)
		return BZ_ERR_UNAVAILABLE;
	const char *p[3] = {site_id, rq->scope.org_ids_pg, rq->scope.site_ids_pg};
	PGresult *r = db_query(c, sql, 3, p, NULL);
	if (r == NULL)
		return BZ_ERR_DB;
	int found = PQntuples(r) == 1;
	if (found && org_out != NULL)
		snprintf(org_out, 37, "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	return found ? 0 : BZ_ERR_NOT_FOUND;
}
