/*
 * orgs_api.c — the organizations and sites routes. Each handler is parse →
 * one tenancy call → render; another tenant's ids, and deleted
 * organizations and sites, answer 404.
 */
#include <stdlib.h>

#include "server/tenancy/tenancy_api.h"

static json_t *org_json(const struct tenancy_org *o)
{
	return json_pack("{s:s,s:s,s:s,s:s}", "id", o->id, "partnerId", o->partner_id, "name",
			 o->name, "createdAt", o->created_at);
}

static json_t *site_json(const struct tenancy_site *s)
{
	return json_pack("{s:s,s:s,s:s,s:s}", "id", s->id, "orgId", s->org_id, "name", s->name,
			 "createdAt", s->created_at);
}

/* The body of POST /organizations, POST /organizations/:id/sites and of
 * PATCH /organizations/:id and /sites/:id (name is the one changeable
 * field, so it is required there too). */
struct name_input {
	struct body_str name;
};

static const struct body_field name_fields[] = {
	BODY_FIELD("name", BODY_TEXT, BODY_REQUIRED, struct name_input, name, 1, TENANCY_NAME_MAX),
	BODY_FIELDS_END,
};

static void list_orgs(struct request *rq)
{
	struct tenancy_org *orgs;
	size_t n;
	PGconn *c = http_db(rq);

	if (c == NULL)
		return;
	int rc = tenancy_org_list(c, &rq->scope, &orgs, &n);
	if (rc != 0) {
		http_fail_why(rq, rc, NULL);
		return;
	}
	json_t *arr = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, org_json(&orgs[i]));
	free(orgs);
	http_reply(rq, 200, json_pack("{s:o}", "organizations", arr));
}

static void get_org(struct request *rq)
{
	struct tenancy_org org;
	char id[37];
	PGconn *c;

	if (http_path_uuid(rq, "id", id, "organization not found") != 0 ||
	    (c = http_db(rq)) == NULL)
		return;
	int rc = tenancy_org_get(c, &rq->scope, id, &org);
	if (rc != 0) {
		http_fail_why(rq, rc, &(struct bz_errinfo){.msg = "organization not found"});
		return;
	}
	http_reply(rq, 200, org_json(&org));
}

static void create_org(struct request *rq)
{
	struct name_input in = {0};
	struct tenancy_org org;
	struct audit_event ev = {0};
	struct bz_errinfo why = {0};
	PGconn *c;

	if (http_body_parse(rq, name_fields, &in) != 0 || (c = http_db_begin(rq)) == NULL)
		return;
	int rc = tenancy_org_create(c, &rq->scope, in.name.v, &org, &ev, &why);
	http_commit(rq, c, rc, &why, &ev, 201, rc == 0 ? org_json(&org) : NULL);
}

static void list_sites(struct request *rq)
{
	struct tenancy_site *sites;
	size_t n;
	char id[37];
	PGconn *c;

	if (http_path_uuid(rq, "id", id, "organization not found") != 0 ||
	    (c = http_db(rq)) == NULL)
		return;
	int rc = tenancy_site_list(c, &rq->scope, id, &sites, &n);
	if (rc != 0) {
		http_fail_why(rq, rc, &(struct bz_errinfo){.msg = "organization not found"});
		return;
	}
	json_t *arr = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, site_json(&sites[i]));
	free(sites);
	http_reply(rq, 200, json_pack("{s:o}", "sites", arr));
}

static void create_site(struct request *rq)
{
	struct name_input in = {0};
	struct tenancy_site site;
	struct audit_event ev = {0};
	struct bz_errinfo why = {0};
	char id[37];
	PGconn *c;

	if (http_path_uuid(rq, "id", id, "organization not found") != 0 ||
	    http_body_parse(rq, name_fields, &in) != 0 || (c = http_db_begin(rq)) == NULL)
		return;
	int rc = tenancy_site_create(c, &rq->scope, id, in.name.v, &site, &ev, &why);
	http_commit(rq, c, rc, &why, &ev, 201, rc == 0 ? site_json(&site) : NULL);
}

static void patch_org(struct request *rq)
{
	struct name_input in = {0};
	struct tenancy_org org;
	struct audit_event ev = {0};
	struct bz_errinfo why = {0};
	char id[37];
	PGconn *c;

	if (http_path_uuid(rq, "id", id, "organization not found") != 0 ||
	    http_body_parse(rq, name_fields, &in) != 0 || (c = http_db_begin(rq)) == NULL)
		return;
	int rc = tenancy_org_rename(c, &rq->scope, id, in.name.v, &org, &ev, &why);
	http_commit(rq, c, rc, &why, &ev, 200, rc == 0 ? org_json(&org) : NULL);
}

static void delete_org(struct request *rq)
{
	struct tenancy_org org;
	struct audit_event ev = {0};
	struct bz_errinfo why = {0};
	char id[37];
	PGconn *c;

	if (http_path_uuid(rq, "id", id, "organization not found") != 0 ||
	    (c = http_db_begin(rq)) == NULL)
		return;
	int rc = tenancy_org_delete(c, &rq->scope, id, &org, &ev, &why);
	http_commit(rq, c, rc, &why, &ev, 204, NULL);
}

static void get_site(struct request *rq)
{
	struct tenancy_site site;
	char id[37];
	PGconn *c;

	if (http_path_uuid(rq, "id", id, "site not found") != 0 || (c = http_db(rq)) == NULL)
		return;
	int rc = tenancy_site_get(c, &rq->scope, id, &site);
	if (rc != 0) {
		http_fail_why(rq, rc, &(struct bz_errinfo){.msg = "site not found"});
		return;
	}
	http_reply(rq, 200, site_json(&site));
}

static void patch_site(struct request *rq)
{
	struct name_input in = {0};
	struct tenancy_site site;
	struct audit_event ev = {0};
	struct bz_errinfo why = {0};
	char id[37];
	PGconn *c;

	if (http_path_uuid(rq, "id", id, "site not found") != 0 ||
	    http_body_parse(rq, name_fields, &in) != 0 || (c = http_db_begin(rq)) == NULL)
		return;
	int rc = tenancy_site_rename(c, &rq->scope, id, in.name.v, &site, &ev, &why);
	http_commit(rq, c, rc, &why, &ev, 200, rc == 0 ? site_json(&site) : NULL);
}

static void delete_site(struct request *rq)
{
	struct tenancy_site site;
	struct audit_event ev = {0};
	struct bz_errinfo why = {0};
	char id[37];
	PGconn *c;

	if (http_path_uuid(rq, "id", id, "site not found") != 0 || (c = http_db_begin(rq)) == NULL)
		return;
	int rc = tenancy_site_delete(c, &rq->scope, id, &site, &ev, &why);
	http_commit(rq, c, rc, &why, &ev, 204, NULL);
}

const struct route tenancy_routes[] = {
	{"GET", "/api/v1/organizations", list_orgs, ROUTE_USER, "orgs:read", NULL, NULL},
	{"POST", "/api/v1/organizations", create_org,
	 ROUTE_USER | ROUTE_JSON_BODY | ROUTE_IDEMPOTENT, "orgs:write", "organization.create",
	 NULL},
	{"GET", "/api/v1/organizations/:id", get_org, ROUTE_USER, "orgs:read", NULL, NULL},
	{"PATCH", "/api/v1/organizations/:id", patch_org, ROUTE_USER | ROUTE_JSON_BODY,
	 "orgs:write", "organization.update", NULL},
	{"DELETE", "/api/v1/organizations/:id", delete_org, ROUTE_USER, "orgs:write",
	 "organization.delete", NULL},
	{"GET", "/api/v1/organizations/:id/sites", list_sites, ROUTE_USER, "sites:read", NULL,
	 NULL},
	{"POST", "/api/v1/organizations/:id/sites", create_site,
	 ROUTE_USER | ROUTE_JSON_BODY | ROUTE_IDEMPOTENT, "sites:write", "site.create", NULL},
	{"GET", "/api/v1/sites/:id", get_site, ROUTE_USER, "sites:read", NULL, NULL},
	{"PATCH", "/api/v1/sites/:id", patch_site, ROUTE_USER | ROUTE_JSON_BODY, "sites:write",
	 "site.update", NULL},
	{"DELETE", "/api/v1/sites/:id", delete_site, ROUTE_USER, "sites:write", "site.delete",
	 NULL},
};
const size_t tenancy_routes_count = sizeof(tenancy_routes) / sizeof(*tenancy_routes);
