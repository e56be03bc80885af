/*
 * verify_api.c — GET /api/v1/audit/verify (checklist L4): verification of
 * one chain, for callers with audit:read:
 *
 *   ?orgId=ID[&from=&to=]      an organization the caller can see, unless
 *                              the caller is limited to some sites (a
 *                              site-limited reader sees only part of the
 *                              chain, so cannot verify all of it: 403)
 *   ?partnerId=ID[&from=&to=]  the caller's own partner's chain, for
 *                              partner staff not limited to some
 *                              organizations
 *
 * Another tenant's id, and any partner chain but the caller's own, answers
 * 404. The system chain is never verified through the API (operators use
 * `breeze-server audit verify`).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/err.h"
#include "common/iso8601.h"
#include "server/audit/audit_chain.h"
#include "server/audit/audit_checkpoint.h"
#include "server/audit/audit_api.h"
#include "server/audit/audit_internal.h"
#include "server/http/http.h"
#include "server/tenancy/tenancy.h"

/* from/to into O. Returns 0, or fails the request with 400 and returns
 * BZ_ERR_INVALID. */
static int parse_window(struct request *rq, struct audit_verify_opts *o)
{
	const char *from = http_query(rq, "from"), *to = http_query(rq, "to");

	if (from != NULL && iso8601_parse_us(from, &o->from_us) != 0) {
		http_fail(rq, 400, "validation_error", "parameter 'from' must be an ISO 8601 time");
		return BZ_ERR_INVALID;
	}
	if (to != NULL && iso8601_parse_us(to, &o->to_us) != 0) {
		http_fail(rq, 400, "validation_error", "parameter 'to' must be an ISO 8601 time");
		return BZ_ERR_INVALID;
	}
	o->has_from = from != NULL;
	o->has_to = to != NULL;
	if (o->has_from && o->has_to && o->from_us > o->to_us) {
		http_fail(rq, 400, "validation_error", "parameter 'from' is after 'to'");
		return BZ_ERR_INVALID;
	}
	return 0;
}

/* The chain to verify into ID[37], from orgId or partnerId, checked
 * against the caller's scope. Returns 0, or fails the request and returns
 * a negative bz_err. */
static int pick_chain(struct request *rq, char id[37])
{
	const char *org = http_query(rq, "orgId"), *partner = http_query(rq, "partnerId");

	if ((org == NULL || *org == '\0') == (partner == NULL || *partner == '\0')) {
		http_fail(rq, 400, "validation_error",
			  "exactly one of the parameters 'orgId' and 'partnerId' is required");
		return BZ_ERR_INVALID;
	}
	const char *v = org ? org : partner;
	if (!is_uuid(v)) {
		http_fail(rq, 400, "validation_error", "parameter '%s' must be a UUID",
			  org ? "orgId" : "partnerId");
		return BZ_ERR_INVALID;
	}
	audit_id_lower(id, v);
	if (partner != NULL) {
		/* Partner-level history is for the partner's unrestricted staff. */
		if (rq->who.partner_id[0] == '\0' || rq->scope.limited ||
		    strcasecmp(rq->who.partner_id, id) != 0) {
			http_fail(rq, 404, "not_found", "partner not found");
			return BZ_ERR_NOT_FOUND;
		}
		return 0;
	}
	if (!tenancy_scope_has_org(&rq->scope, id)) {
		http_fail(rq, 404, "not_found", "organization not found");
		return BZ_ERR_NOT_FOUND;
	}
	if (rq->scope.site_ids_pg != NULL) {
		http_fail(rq, 403, "forbidden",
			  "site-limited users cannot verify the organization's whole chain");
		return BZ_ERR_FORBIDDEN;
	}
	return 0;
}

static void verify_chain(struct request *rq)
{
	struct audit_verify_opts o = {0};
	struct audit_report rep;
	char pub[65], id[37];
	const char *keys[1];

	if (pick_chain(rq, id) != 0 || parse_window(rq, &o) != 0)
		return;
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

/* Query parameters the list routes read (struct route.query). */
static const char *const audit_verify_query[] = {"orgId", "partnerId", "from", "to", NULL};

const struct route audit_verify_routes[] = {
	{"GET", "/api/v1/audit/verify", verify_chain, ROUTE_USER, "audit:read", NULL,
	 audit_verify_query},
};
const size_t audit_verify_routes_count = sizeof(audit_verify_routes) / sizeof(*audit_verify_routes);
