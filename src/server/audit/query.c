/*
 * query.c — reading the audit log (checklist L6): the rows of the
 * organizations in a tenancy scope, filtered, newest first, with an opaque
 * keyset cursor. Only rows whose org_id is in the scope are read, so the
 * system chain and other tenants' rows never appear. A scope limited to
 * some sites reads the rows of those sites and the organization-wide rows
 * (site_id NULL), never another site's (docs/audit-chain.md §10). A filter
 * naming a partner reads that partner's own chain instead; whether the
 * caller may is decided by the caller (query_api.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/iso8601.h"
#include "crypto/crypto.h"
#include "server/audit/audit.h"
#include "server/db/db.h"
#include "server/tenancy/tenancy.h"

#define CURSOR_MAX AUDIT_CURSOR_MAX

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

int audit_cursor_decode(const char *cur, struct audit_filter *f)
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

int audit_query(PGconn *c, const struct tenancy_scope *sc, const struct audit_filter *f,
		json_t **entries, char **next_cursor)
{
	PGresult *r = query_entries(c, sc, f);

	*entries = NULL;
	*next_cursor = NULL;
	if (r == NULL)
		return BZ_ERR_DB;
	int n = PQntuples(r), shown = n > f->limit ? (int)f->limit : n;
	json_t *arr = json_array();
	for (int i = 0; i < shown; i++)
		json_array_append_new(arr, entry_json(r, i));
	if (n > f->limit) {
		*next_cursor = cursor_encode(db_val(r, shown - 1, 14), db_val(r, shown - 1, 0));
		if (*next_cursor == NULL) {
			PQclear(r);
			json_decref(arr);
			return BZ_ERR_NOMEM;
		}
	}
	PQclear(r);
	*entries = arr;
	return 0;
}
