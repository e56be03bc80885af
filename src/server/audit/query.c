/*
 * query.c — GET /api/v1/audit (checklist L6): the audit log of the
 * caller's organizations, filtered, newest first, with an opaque keyset
 * cursor. Scoped like every other read: only rows whose org_id is in the
 * caller's tenancy scope, so the system chain and other tenants' rows never
 * appear, and an orgId the caller cannot see answers 404. A caller limited
 * to some sites sees the rows of those sites and the organization-wide rows
 * (site_id NULL), never another site's (docs/audit-chain.md §10).
 *
 * ?partnerId= lists the caller's own partner chain instead (partner staff
 * logins, failed logins, partner-scoped user changes), for partner users
 * not limited to some organizations; for anyone else it answers 404.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/err.h"
#include "common/iso8601.h"
#include "crypto/crypto.h"
#include "server/audit/audit.h"
#include "server/audit/audit_chain.h"
#include "server/audit/audit_internal.h"
#include "server/db/db.h"
#include "server/audit/audit_api.h"
#include "server/http/http.h"
#include "server/tenancy/tenancy.h"

#define LIMIT_DEFAULT 50
#define LIMIT_MAX 500
#define TEXT_MAX 255	 /* actorId, resourceId */
#define RESOURCE_MAX 100 /* as the column's CHECK */
#define ACTION_MAX 100
#define CURSOR_MAX 200 /* base64url of {"t":…,"i":…} is about 60 characters */

struct audit_filter {
	char org_id[37];     /* "" = every organization in scope */
	char partner_id[37]; /* "" = organizations; else this partner's chain */
	const char *resource, *action, *actor_type, *actor_id, *resource_id, *result;
	char from[32], to[32]; /* canonical timestamps, "" = open */
	char cur_ts[32];       /* keyset position, "" = first page */
	char cur_id[24];
	long limit;
};

/* The cursor is opaque to clients: base64url of {"t":epoch µs,"i":id} of
 * the last entry shown. Integers, so no time zone or parsing is involved. */
static char *cursor_encode(const char *ts_us, const char *id)
{
	json_t *j = json_pack("{s:I,s:I}", "t", (json_int_t)strtoll(ts_us, NULL, 10), "i",
			      (json_int_t)strtoll(id, NULL, 10));
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
	char *out = s ? crypto_base64url_encode((const uint8_t *)s, strlen(s)) : NULL;

	free(s);
	json_decref(j);
	return out;
}

static int cursor_decode(const char *cur, struct audit_filter *f)
{
	size_t len, n = strlen(cur);
	int rc = BZ_ERR_INVALID;

	if (n == 0 || n > CURSOR_MAX)
		return BZ_ERR_INVALID;
	uint8_t *raw = crypto_base64url_decode(cur, n, &len);
	if (raw == NULL)
		return BZ_ERR_INVALID;
	json_t *j = json_loadb((const char *)raw, len, 0, NULL);
	free(raw);
	json_t *t = json_object_get(j, "t"), *i = json_object_get(j, "i");
	if (json_is_integer(t) && json_is_integer(i) && json_integer_value(i) > 0 &&
	    iso8601_format_us((int64_t)json_integer_value(t), f->cur_ts) == 0) {
		snprintf(f->cur_id, sizeof(f->cur_id), "%lld", (long long)json_integer_value(i));
		rc = 0;
	}
	json_decref(j);
	return rc;
}

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
	if (cursor != NULL && cursor_decode(cursor, f) != 0) {
		http_fail(rq, 400, "validation_error", "parameter 'cursor' is not a valid cursor");
		return BZ_ERR_INVALID;
	}
	return scope_filter(rq, f, org, partner);
}

/* Newest first across the caller's organizations: a top-N per organization
 * (an index range on (org_id, ts, id), or on the action / resource index
 * when those filters are given — migration 0003), merged and cut to the
 * limit. A plain ORDER BY over org_id = ANY(…) would sort every row of
 * every visible organization instead. One more row than asked is fetched
 * to know whether there is a next page. Parameters that are NULL disable
 * their filter; the planner drops those conditions (custom plan). With
 * $15 true the one "organization" is a partner id and the rows are its
 * partner chain's (index audit_log_partner_ts_idx, migration 0004; such
 * rows have no org_id by a CHECK, and testing org_id IS NULL here would
 * make the planner walk the system chain's index too); $14 is the caller's
 * site limit. */
static const char *list_sql =
	"SELECT x.id, x.org_id, x.seq, audit_ts_text(x.ts), x.actor_type, x.actor_id, x.action,"
	"       x.resource, x.resource_id, x.details, x.ip_address, x.result, x.checksum,"
	"       x.prev_checksum, (extract(epoch FROM x.ts) * 1000000)::bigint, x.partner_id,"
	"       x.site_id"
	"  FROM (SELECT DISTINCT u FROM unnest($1::uuid[]) u"
	"         WHERE $2::uuid IS NULL OR u = $2::uuid) o"
	" CROSS JOIN LATERAL ("
	"   SELECT a.* FROM audit_log a"
	"    WHERE (($15::boolean AND a.partner_id = o.u)"
	"           OR (NOT $15::boolean AND a.org_id = o.u))"
	"      AND ($14::uuid[] IS NULL OR a.site_id IS NULL OR a.site_id = ANY($14::uuid[]))"
	"      AND ($3::text IS NULL OR a.resource = $3::text)"
	"      AND ($4::text IS NULL OR a.action = $4::text)"
	"      AND ($5::text IS NULL OR a.actor_type = $5::text)"
	"      AND ($6::text IS NULL OR a.actor_id = $6::text)"
	"      AND ($7::text IS NULL OR a.resource_id = $7::text)"
	"      AND ($8::text IS NULL OR a.result = $8::text)"
	"      AND ($9::timestamptz IS NULL OR a.ts >= $9::timestamptz)"
	"      AND ($10::timestamptz IS NULL OR a.ts < $10::timestamptz)"
	"      AND ($11::timestamptz IS NULL OR (a.ts, a.id) < ($11::timestamptz, $12::bigint))"
	"    ORDER BY a.ts DESC, a.id DESC LIMIT $13::int) x"
	" ORDER BY x.ts DESC, x.id DESC LIMIT $13::int";

static const char *nz(const char *s)
{
	return s[0] ? s : NULL;
}

/* Runs the query for F on CONN. Returns the result or NULL (logged). */
static PGresult *query_entries(PGconn *conn, const struct tenancy_scope *sc,
			       const struct audit_filter *f)
{
	char limit[24], one[40];
	int partner = f->partner_id[0] != '\0';

	snprintf(limit, sizeof(limit), "%ld", f->limit + 1);
	snprintf(one, sizeof(one), "{%s}", f->partner_id);
	const char *p[15] = {partner ? one : sc->org_ids_pg,
			     partner ? f->partner_id : nz(f->org_id),
			     f->resource,
			     f->action,
			     f->actor_type,
			     f->actor_id,
			     f->resource_id,
			     f->result,
			     nz(f->from),
			     nz(f->to),
			     nz(f->cur_ts),
			     nz(f->cur_id),
			     limit,
			     sc->site_ids_pg,
			     partner ? "true" : "false"};
	return db_query(conn, list_sql, 15, p, NULL);
}

static json_t *entry_json(const PGresult *r, int i)
{
	const char *details = db_val(r, i, 9);
	json_t *d = json_loads(details, JSON_DECODE_ANY, NULL);

	/* details is JSON by the column's CHECK; should jansson refuse it
	 * (e.g. a \u0000 escape), the exact text is still returned. */
	if (d == NULL)
		d = json_string(details);
	return json_pack("{s:I,s:s?,s:s?,s:s?,s:I,s:s,s:s,s:s?,s:s,s:s,s:s?,s:o,s:s?,s:s,s:s,s:s}",
			 "id", (json_int_t)strtoll(db_val(r, i, 0), NULL, 10), "orgId",
			 db_val(r, i, 1), "partnerId", db_val(r, i, 15), "siteId", db_val(r, i, 16),
			 "seq", (json_int_t)strtoll(db_val(r, i, 2), NULL, 10), "timestamp",
			 db_val(r, i, 3), "actorType", db_val(r, i, 4), "actorId", db_val(r, i, 5),
			 "action", db_val(r, i, 6), "resource", db_val(r, i, 7), "resourceId",
			 db_val(r, i, 8), "details", d, "ipAddress", db_val(r, i, 10), "result",
			 db_val(r, i, 11), "checksum", db_val(r, i, 12), "prevChecksum",
			 db_val(r, i, 13));
}

static void list_audit(struct request *rq)
{
	struct audit_filter f;

	if (parse_filter(rq, &f) != 0)
		return;
	PGconn *c = http_db(rq);
	if (c == NULL)
		return;
	PGresult *r = query_entries(c, &rq->scope, &f);
	if (r == NULL) {
		http_fail_err(rq, BZ_ERR_DB, NULL);
		return;
	}
	int n = PQntuples(r), shown = n > f.limit ? (int)f.limit : n;
	json_t *arr = json_array();
	for (int i = 0; i < shown; i++)
		json_array_append_new(arr, entry_json(r, i));
	char *next = n > f.limit ? cursor_encode(db_val(r, shown - 1, 14), db_val(r, shown - 1, 0))
				 : NULL;
	int nomem = n > f.limit && next == NULL;
	PQclear(r);
	if (nomem) {
		json_decref(arr);
		http_fail_err(rq, BZ_ERR_NOMEM, NULL);
		return;
	}
	json_t *out = json_pack("{s:o,s:s?}", "entries", arr, "nextCursor", next);
	free(next);
	http_reply(rq, 200, out);
}

const struct route audit_query_routes[] = {
	{"GET", "/api/v1/audit", list_audit, ROUTE_USER, "audit:read", NULL},
};
const size_t audit_query_routes_count = sizeof(audit_query_routes) / sizeof(*audit_query_routes);
