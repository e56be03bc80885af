/*
 * orgs.c — organizations and sites API. Partner administrators create
 * organizations; sites belong to an organization. Reads are scoped by
 * tenancy_resolve(); another tenant's ids answer 404.
 */
#include <string.h>

#include "common/err.h"
#include "server/audit/audit.h"
#include "server/db/db.h"
#include "server/tenancy/tenancy.h"

static json_t *org_json(PGresult *r, int i)
{
	return json_pack("{s:s,s:s,s:s,s:s}", "id", PQgetvalue(r, i, 0), "partnerId",
			 PQgetvalue(r, i, 1), "name", PQgetvalue(r, i, 2), "createdAt",
			 PQgetvalue(r, i, 3));
}

static json_t *site_json(PGresult *r, int i)
{
	return json_pack("{s:s,s:s,s:s,s:s}", "id", PQgetvalue(r, i, 0), "orgId",
			 PQgetvalue(r, i, 1), "name", PQgetvalue(r, i, 2), "createdAt",
			 PQgetvalue(r, i, 3));
}

#define ORG_COLS "id, partner_id, name, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
#define SITE_COLS "id, org_id, name, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

static void list_orgs(struct request *rq)
{
	static const char *sql = "SELECT " ORG_COLS " FROM organizations"
				 " WHERE id = ANY($1::uuid[]) ORDER BY name, id";
	PGconn *c = http_db(rq);
	if (c == NULL)
		return;
	const char *p[1] = {rq->scope.org_ids_pg};
	PGresult *r = db_query(c, sql, 1, p, NULL);
	if (r == NULL) {
		http_fail_err(rq, BZ_ERR_DB, NULL);
		return;
	}
	json_t *arr = json_array();
	for (int i = 0; i < PQntuples(r); i++)
		json_array_append_new(arr, org_json(r, i));
	PQclear(r);
	http_reply(rq, 200, json_pack("{s:o}", "organizations", arr));
}

static void get_org(struct request *rq)
{
	static const char *sql = "SELECT " ORG_COLS " FROM organizations WHERE id = $1::uuid";
	char id[64];

	if (http_path_param(rq, "id", id, sizeof(id)) != 0 || !is_uuid(id) ||
	    !tenancy_org_visible(rq, id)) {
		http_fail(rq, 404, "not_found", "organization not found");
		return;
	}
	PGconn *c = http_db(rq);
	if (c == NULL)
		return;
	const char *p[1] = {id};
	PGresult *r = db_query(c, sql, 1, p, NULL);
	if (r == NULL) {
		http_fail_err(rq, BZ_ERR_DB, NULL);
		return;
	}
	if (PQntuples(r) != 1) {
		PQclear(r);
		http_fail(rq, 404, "not_found", "organization not found");
		return;
	}
	json_t *o = org_json(r, 0);
	PQclear(r);
	http_reply(rq, 200, o);
}

static void create_org(struct request *rq)
{
	static const char *sql = "INSERT INTO organizations (partner_id, name) VALUES ($1, $2)"
				 " RETURNING " ORG_COLS;
	const char *name = NULL;
	char sqlstate[6];

	if (rq->who.partner_id[0] == '\0' || rq->scope.limited) {
		http_fail(rq, 403, "forbidden",
				 "only partner users with access to every organization can create organizations");
		return;
	}
	if (body_string(rq, "name", 1, 200, &name) != 0)
		return;
	if (name[0] == '\0') {
		http_fail(rq, 400, "validation_error", "field 'name' must not be empty");
		return;
	}
	PGconn *c = http_db_begin(rq);
	if (c == NULL)
		return;
	const char *p[2] = {rq->who.partner_id, name};
	PGresult *r = db_query(c, sql, 2, p, sqlstate);
	if (r == NULL) {
		db_rollback(c);
		if (!strcmp(sqlstate, "23505")) {
			http_fail(rq, 409, "conflict", "an organization with that name exists");
			return;
		}
		http_fail_err(rq, BZ_ERR_DB, NULL);
		return;
	}
	json_t *o = org_json(r, 0);
	PQclear(r);
	struct audit_event ev = {.org_id = json_string_value(json_object_get(o, "id")),
				 .action = "organization.create",
				 .resource = "organizations",
				 .resource_id = json_string_value(json_object_get(o, "id")),
				 .details = json_pack("{s:s}", "name", name)};
	audit_event_from_request(&ev, rq);
	int rc = audit_write(c, &ev);
	json_decref(ev.details);
	if (rc != 0 || db_commit(c) != 0) {
		db_rollback(c);
		json_decref(o);
		http_fail_err(rq, BZ_ERR_DB, NULL);
		return;
	}
	http_reply(rq, 201, o);
}

static void list_sites(struct request *rq)
{
	static const char *sql = "SELECT " SITE_COLS " FROM sites WHERE org_id = $1::uuid"
				 " AND ($2::uuid[] IS NULL OR id = ANY($2::uuid[])) ORDER BY name, id";
	char id[64];

	if (http_path_param(rq, "id", id, sizeof(id)) != 0 || !is_uuid(id) ||
	    !tenancy_org_visible(rq, id)) {
		http_fail(rq, 404, "not_found", "organization not found");
		return;
	}
	PGconn *c = http_db(rq);
	if (c == NULL)
		return;
	const char *p[2] = {id, rq->scope.site_ids_pg};
	PGresult *r = db_query(c, sql, 2, p, NULL);
	if (r == NULL) {
		http_fail_err(rq, BZ_ERR_DB, NULL);
		return;
	}
	json_t *arr = json_array();
	for (int i = 0; i < PQntuples(r); i++)
		json_array_append_new(arr, site_json(r, i));
	PQclear(r);
	http_reply(rq, 200, json_pack("{s:o}", "sites", arr));
}

static void create_site(struct request *rq)
{
	static const char *sql = "INSERT INTO sites (org_id, name) VALUES ($1::uuid, $2)"
				 " RETURNING " SITE_COLS;
	const char *name = NULL;
	char id[64], sqlstate[6];

	if (http_path_param(rq, "id", id, sizeof(id)) != 0 || !is_uuid(id) ||
	    !tenancy_org_visible(rq, id)) {
		http_fail(rq, 404, "not_found", "organization not found");
		return;
	}
	if (rq->scope.site_ids_pg != NULL) {
		http_fail(rq, 403, "forbidden", "site-limited users cannot create sites");
		return;
	}
	if (body_string(rq, "name", 1, 200, &name) != 0)
		return;
	if (name[0] == '\0') {
		http_fail(rq, 400, "validation_error", "field 'name' must not be empty");
		return;
	}
	PGconn *c = http_db_begin(rq);
	if (c == NULL)
		return;
	const char *p[2] = {id, name};
	PGresult *r = db_query(c, sql, 2, p, sqlstate);
	if (r == NULL) {
		db_rollback(c);
		if (!strcmp(sqlstate, "23505")) {
			http_fail(rq, 409, "conflict", "a site with that name exists");
			return;
		}
		http_fail_err(rq, BZ_ERR_DB, NULL);
		return;
	}
	json_t *o = site_json(r, 0);
	PQclear(r);
	struct audit_event ev = {.org_id = id,
				 .action = "site.create",
				 .resource = "sites",
				 .resource_id = json_string_value(json_object_get(o, "id")),
				 .details = json_pack("{s:s}", "name", name)};
	audit_event_from_request(&ev, rq);
	int rc = audit_write(c, &ev);
	json_decref(ev.details);
	if (rc != 0 || db_commit(c) != 0) {
		db_rollback(c);
		json_decref(o);
		http_fail_err(rq, BZ_ERR_DB, NULL);
		return;
	}
	http_reply(rq, 201, o);
}

const struct route tenancy_routes[] = {
	{"GET", "/api/v1/organizations", list_orgs, ROUTE_USER, "orgs:read", NULL},
	{"POST", "/api/v1/organizations", create_org, ROUTE_USER | ROUTE_JSON_BODY, "orgs:write",
	 "organization.create"},
	{"GET", "/api/v1/organizations/:id", get_org, ROUTE_USER, "orgs:read", NULL},
	{"GET", "/api/v1/organizations/:id/sites", list_sites, ROUTE_USER, "sites:read", NULL},
	{"POST", "/api/v1/organizations/:id/sites", create_site, ROUTE_USER | ROUTE_JSON_BODY,
	 "sites:write", "site.create"},
};
const size_t tenancy_routes_count = sizeof(tenancy_routes) / sizeof(*tenancy_routes);
