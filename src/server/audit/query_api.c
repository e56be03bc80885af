/*
 * query_api.c — GET /api/v1/audit: the query parameters, who may read
 * which chain, and the page of entries (query.c reads them).
 *
 * ?partnerId= lists the caller's own partner chain (partner staff logins,
 * failed logins, partner-scoped user changes), for partner users not
 * limited to some organizations; for anyone else it answers 404, as does an
 * orgId the caller cannot see.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/err.h"
#include "common/iso8601.h"
#include "server/audit/audit.h"
#include "server/audit/audit_api.h"
#include "server/audit/audit_internal.h"
#include "server/http/http.h"

#define LIMIT_DEFAULT 50
#define LIMIT_MAX 500
#define TEXT_MAX 255	 /* actorId, resourceId */
#define RESOURCE_MAX 100 /* as the column's CHECK */
#define ACTION_MAX 100

/* Reads optional text parameter NAME into *OUT: 1..MAXLEN bytes of valid
 * UTF-8 (checked by jansson), so the database never sees bytes it would
 * refuse. Returns 0, or fails the request with 400 and returns BZ_ERR_INVALID. */
static int text_param(struct request *rq, const char *name, size_t maxlen, const char **out)
{
	const char *v = http_query(rq, name);
	size_t n;

	*out = NULL;
	if (v == NULL)
		return 0;
	n = strlen(v);
	if (n == 0 || n > maxlen) {
		http_fail(rq, 400, "validation_error", "parameter '%s' must be 1 to %zu characters",
			  name, maxlen);
		return BZ_ERR_INVALID;
	}
	json_t *s = json_stringn(v, n);
	if (s == NULL) {
		http_fail(rq, 400, "validation_error", "parameter '%s' must be valid UTF-8", name);
		return BZ_ERR_INVALID;
	}
	json_decref(s);
	*out = v;
	return 0;
}

static int one_of(const char *v, const char *const *allowed)
{
	for (; *allowed != NULL; allowed++)
		if (strcmp(v, *allowed) == 0)
			return 1;
	return 0;
}

/* from/to: ISO 8601 (audit_ts_parse: a date, or a time with Z, ±HH:MM or
 * no zone meaning UTC), normalized to the canonical form so the SQL cast
 * cannot fail. */
static int time_param(struct request *rq, const char *name, char out[32])
{
	const char *v = http_query(rq, name);
	int64_t us;

	out[0] = '\0';
	if (v == NULL)
		return 0;
	if (iso8601_parse_us(v, &us) != 0 || iso8601_format_us(us, out) != 0) {
		http_fail(rq, 400, "validation_error",
			  "parameter '%s' must be an ISO 8601 time (e.g. 2026-01-02T03:04:05Z)",
			  name);
		return BZ_ERR_INVALID;
	}
	return 0;
}

/* The chain part of F: orgId (visible to the caller) or partnerId (the
 * caller's own partner, for unlimited partner staff). Returns 0, or fails
 * the request with 404 and returns BZ_ERR_NOT_FOUND. */
static int scope_filter(struct request *rq, struct audit_filter *f, const char *org,
			const char *partner)
{
	if (org != NULL) {
		audit_id_lower(f->org_id, org);
		if (!tenancy_scope_has_org(&rq->scope, f->org_id)) {
			http_fail(rq, 404, "not_found", "organization not found");
			return BZ_ERR_NOT_FOUND;
		}
	}
	if (partner != NULL) {
		audit_id_lower(f->partner_id, partner);
		/* Only the partner's own staff, and only those who see all of it. */
		if (rq->who.partner_id[0] == '\0' || rq->scope.limited ||
		    strcasecmp(rq->who.partner_id, f->partner_id) != 0) {
			http_fail(rq, 404, "not_found", "partner not found");
			return BZ_ERR_NOT_FOUND;
		}
	}
	return 0;
}

/* Fills F from the query string. Returns 0, or fails the request (400, or
 * 404 for an organization or partner the caller cannot see) and returns a
 * negative bz_err. */
static int parse_filter(struct request *rq, struct audit_filter *f)
{
	static const char *const actor_types[] = {"user", "api_key", "agent", "system", NULL};
	static const char *const results[] = {"success", "failure", "denied", NULL};
	const char *org = http_query(rq, "orgId"), *limit = http_query(rq, "limit"),
		   *cursor = http_query(rq, "cursor"), *partner = http_query(rq, "partnerId");

	memset(f, 0, sizeof(*f));
	f->limit = LIMIT_DEFAULT;
	if (org != NULL && !is_uuid(org)) {
		http_fail(rq, 400, "validation_error", "parameter 'orgId' must be a UUID");
		return BZ_ERR_INVALID;
	}
	if (partner != NULL && !is_uuid(partner)) {
		http_fail(rq, 400, "validation_error", "parameter 'partnerId' must be a UUID");
		return BZ_ERR_INVALID;
	}
	if (org != NULL && partner != NULL) {
		http_fail(rq, 400, "validation_error",
			  "parameters 'orgId' and 'partnerId' exclude each other");
		return BZ_ERR_INVALID;
	}
	if (text_param(rq, "resource", RESOURCE_MAX, &f->resource) ||
	    text_param(rq, "action", ACTION_MAX, &f->action) ||
	    text_param(rq, "actorType", 16, &f->actor_type) ||
	    text_param(rq, "actorId", TEXT_MAX, &f->actor_id) ||
	    text_param(rq, "resourceId", TEXT_MAX, &f->resource_id) ||
	    text_param(rq, "result", 16, &f->result))
		return BZ_ERR_INVALID;
	if (f->action != NULL &&
	    strspn(f->action, "abcdefghijklmnopqrstuvwxyz0123456789_.") != strlen(f->action)) {
		http_fail(rq, 400, "validation_error",
			  "parameter 'action' must be a dotted action name (e.g. device.delete)");
		return BZ_ERR_INVALID;
	}
	if (f->actor_type != NULL && !one_of(f->actor_type, actor_types)) {
		http_fail(rq, 400, "validation_error",
			  "parameter 'actorType' must be user, api_key, agent or system");
		return BZ_ERR_INVALID;
	}
	if (f->result != NULL && !one_of(f->result, results)) {
		http_fail(rq, 400, "validation_error",
			  "parameter 'result' must be success, failure or denied");
		return BZ_ERR_INVALID;
	}
	if (time_param(rq, "from", f->from) || time_param(rq, "to", f->to))
		return BZ_ERR_INVALID;
	/* Canonical timestamps of equal length compare like the times. */
	if (f->from[0] && f->to[0] && strcmp(f->from, f->to) > 0) {
		http_fail(rq, 400, "validation_error", "parameter 'from' is after 'to'");
		return BZ_ERR_INVALID;
	}
	if (limit != NULL) {
		char *end;
		f->limit = strtol(limit, &end, 10);
		if (*limit == '\0' || *end != '\0' || f->limit < 1 || f->limit > LIMIT_MAX) {
			http_fail(rq, 400, "validation_error",
				  "parameter 'limit' must be an integer between 1 and %d",
				  LIMIT_MAX);
			return BZ_ERR_INVALID;
		}
	}
	if (cursor != NULL && audit_cursor_decode(cursor, f) != 0) {
		http_fail(rq, 400, "validation_error", "parameter 'cursor' is not a valid cursor");
		return BZ_ERR_INVALID;
	}
	return scope_filter(rq, f, org, partner);
}

static void list_audit(struct request *rq)
{
	struct audit_filter f;
	json_t *entries;
	char *next;
	PGconn *c;

	if (parse_filter(rq, &f) != 0 || (c = http_db(rq)) == NULL)
		return;
	int rc = audit_query(c, &rq->scope, &f, &entries, &next);
	if (rc != 0) {
		http_fail_err(rq, rc, NULL);
		return;
	}
	json_t *out = json_pack("{s:o,s:s?}", "entries", entries, "nextCursor", next);
	free(next);
	http_reply(rq, 200, out);
}

/* Query parameters the list routes read (struct route.query). */
static const char *const audit_list_query[] = {"orgId",	    "partnerId", "resource",   "action",
					       "actorType", "actorId",	 "resourceId", "result",
					       "from",	    "to",	 "limit",      "cursor",
					       NULL};

const struct route audit_query_routes[] = {
	{"GET", "/api/v1/audit", list_audit, ROUTE_USER, "audit:read", NULL, audit_list_query},
};
const size_t audit_query_routes_count = sizeof(audit_query_routes) / sizeof(*audit_query_routes);
