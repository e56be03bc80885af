/*
 * verify_api.c — GET /api/v1/audit/verify?orgId=&from=&to= (checklist L4):
 * verification of one organization's chain, for callers with audit:read
 * who can see that organization. Another tenant's id answers 404.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "server/audit/audit_chain.h"
#include "server/audit/audit_checkpoint.h"
#include "server/audit/audit_internal.h"
#include "server/http/http.h"
#include "server/tenancy/tenancy.h"

static void verify_org(struct request *rq)
{
	const char *org = http_query(rq, "orgId"), *from = http_query(rq, "from"),
		   *to = http_query(rq, "to");
	struct audit_verify_opts o = {0};
	struct audit_report rep;
	char pub[65], id[37];
	const char *keys[1];

	if (org == NULL || *org == '\0') {
		http_fail(rq, 400, "validation_error", "parameter 'orgId' is required");
		return;
	}
	if (!is_uuid(org)) {
		http_fail(rq, 400, "validation_error", "parameter 'orgId' must be a UUID");
		return;
	}
	if (from != NULL && audit_ts_parse(from, &o.from_us) != 0) {
		http_fail(rq, 400, "validation_error",
				 "parameter 'from' must be an ISO 8601 time");
		return;
	}
	if (to != NULL && audit_ts_parse(to, &o.to_us) != 0) {
		http_fail(rq, 400, "validation_error", "parameter 'to' must be an ISO 8601 time");
		return;
	}
	o.has_from = from != NULL;
	o.has_to = to != NULL;
	if (o.has_from && o.has_to && o.from_us > o.to_us) {
		http_fail(rq, 400, "validation_error", "parameter 'from' is after 'to'");
		return;
	}
	audit_id_lower(id, org);
	if (!tenancy_org_visible(rq, id)) {
		http_fail(rq, 404, "not_found", "organization not found");
		return;
	}

	/* The server's own key is the trusted one; the seed never leaves here. */
	const char *seed = rq->app->cfg->secrets[SECRET_AUDIT_SIGNING_KEY];
	if (seed != NULL && audit_public_key_hex(seed, pub) == 0) {
		keys[0] = pub;
		o.public_keys = keys;
		o.n_public_keys = 1;
	}
	PGconn *c = http_db(rq);
	if (c == NULL)
		return;
	int rc = audit_verify_chain(c, id, &o, &rep);
	if (rc != 0) {
		audit_report_free(&rep);
		http_fail_err(rq, rc, NULL);
		return;
	}
	json_t *out = audit_report_json(&rep);
	audit_report_free(&rep);
	if (out == NULL) {
		http_fail_err(rq, BZ_ERR_NOMEM, NULL);
		return;
	}
	http_reply(rq, 200, out);
}

const struct route audit_verify_routes[] = {
	{"GET", "/api/v1/audit/verify", verify_org, ROUTE_USER, "audit:read", NULL},
};
const size_t audit_verify_routes_count = sizeof(audit_verify_routes) / sizeof(*audit_verify_routes);
