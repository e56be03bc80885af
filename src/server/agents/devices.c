/*
 * devices.c — GET /api/v1/devices (filters, cursor pagination) and
 * GET /api/v1/devices/:id. Scoped by the caller's tenancy; another
 * tenant's device answers 404.
 *
 * A device is "online" when seen within 3 heartbeat intervals, "never" if it
 * has not sent one, else "offline".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "crypto/crypto.h"
#include "server/agents/agents_internal.h"
#include "server/db/db.h"
#include "server/tenancy/tenancy.h"

#define STATUS_EXPR                                                                                \
	"CASE WHEN d.last_seen_at IS NULL THEN 'never'"                                            \
	"     WHEN d.last_seen_at > now() - make_interval(secs => 3 * d.heartbeat_interval_s)"     \
	"     THEN 'online' ELSE 'offline' END"

#define DEVICE_COLS                                                                                \
	"d.id, d.org_id, d.site_id, d.hostname, d.os_type, d.os_version, " STATUS_EXPR ","        \
	" coalesce(" AGENTS_TS("d.last_seen_at") ", ''), coalesce(host(d.last_ip), ''), d.status"

static json_t *device_json(PGresult *r, int i)
{
	const char *seen = PQgetvalue(r, i, 7), *ip = PQgetvalue(r, i, 8);

	return json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s?,s:s?,s:b}", "id", PQgetvalue(r, i, 0),
			 "orgId", PQgetvalue(r, i, 1), "siteId", PQgetvalue(r, i, 2), "hostname",
			 PQgetvalue(r, i, 3), "osType", PQgetvalue(r, i, 4), "osVersion",
			 PQgetvalue(r, i, 5), "status", PQgetvalue(r, i, 6), "lastSeenAt",
			 seen[0] ? seen : NULL, "lastIp", ip[0] ? ip : NULL, "suspended",
			 strcmp(PQgetvalue(r, i, 9), "suspended") == 0);
}

/* The cursor is opaque to clients: base64url of {"h":hostname,"i":id}. */
static char *cursor_encode(const char *hostname, const char *id)
{
	json_t *j = json_pack("{s:s,s:s}", "h", hostname, "i", id);
	char *s = json_dumps(j, JSON_COMPACT);
	char *out = s ? crypto_base64url_encode((const uint8_t *)s, strlen(s)) : NULL;

	free(s);
	json_decref(j);
	return out;
}

static int cursor_decode(const char *cur, char *host, size_t hostlen, char id[37])
{
	size_t len;
	uint8_t *raw = crypto_base64url_decode(cur, strlen(cur), &len);
	int rc = -1;

	if (raw == NULL)
		return -1;
	json_t *j = json_loadb((const char *)raw, len, 0, NULL);
	free(raw);
	json_t *h = json_object_get(j, "h"), *i = json_object_get(j, "i");
	if (json_is_string(h) && json_is_string(i) && is_uuid(json_string_value(i)) &&
	    json_string_length(h) < hostlen) {
		snprintf(host, hostlen, "%s", json_string_value(h));
		snprintf(id, 37, "%s", json_string_value(i));
		rc = 0;
	}
	json_decref(j);
	return rc;
}

/* Escapes LIKE metacharacters of PREFIX and appends '%'. Caller frees. */
static char *like_prefix(const char *prefix)
{
	size_t n = strlen(prefix);
	char *out = malloc(2 * n + 2), *o = out;

	if (out == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (prefix[i] == '%' || prefix[i] == '_' || prefix[i] == '\\')
			*o++ = '\\';
		*o++ = prefix[i];
	}
	*o++ = '%';
	*o = '\0';
	return out;
}

static void list_devices(struct request *rq)
{
	const char *org = http_query(rq, "orgId"), *site = http_query(rq, "siteId"),
		   *status = http_query(rq, "status"), *host = http_query(rq, "hostname"),
		   *limit_s = http_query(rq, "limit"), *cursor = http_query(rq, "cursor");
	char cur_host[256] = "", cur_id[37] = "", limit_buf[8];
	long limit = 50;
	char *like = NULL;

	if (org && !is_uuid(org)) {
		http_fail(rq, 400, "validation_error", "parameter 'orgId' must be a UUID");
		return;
	}
	if (site && !is_uuid(site)) {
		http_fail(rq, 400, "validation_error", "parameter 'siteId' must be a UUID");
		return;
	}
	if (status && strcmp(status, "online") && strcmp(status, "offline") && strcmp(status, "never")) {
		http_fail(rq, 400, "validation_error",
				 "parameter 'status' must be online, offline or never");
		return;
	}
	if (host && strlen(host) > 255) {
		http_fail(rq, 400, "validation_error", "parameter 'hostname' is too long");
		return;
	}
	if (limit_s) {
		char *end;
		limit = strtol(limit_s, &end, 10);
		if (*limit_s == '\0' || *end != '\0' || limit < 1 || limit > 500) {
			http_fail(rq, 400, "validation_error",
					 "parameter 'limit' must be an integer between 1 and 500");
			return;
		}
	}
	if (cursor && cursor_decode(cursor, cur_host, sizeof(cur_host), cur_id) != 0) {
		http_fail(rq, 400, "validation_error", "parameter 'cursor' is not a valid cursor");
		return;
	}
	if (org && !tenancy_scope_has_org(&rq->scope, org)) {
		http_fail(rq, 404, "not_found", "organization not found");
		return;
	}
	if (site) {
		PGconn *c0 = http_db(rq);
		if (c0 == NULL)
			return;
		int vis = tenancy_site_visible(c0, &rq->scope, site, NULL);
		if (vis == BZ_ERR_NOT_FOUND) {
			http_fail(rq, 404, "not_found", "site not found");
			return;
		}
		if (vis != 0) {
			if (rq->status == 0)
				http_fail_err(rq, vis, "database unavailable");
			return;
		}
	}
	if (host && (like = like_prefix(host)) == NULL) {
		http_fail_err(rq, BZ_ERR_NOMEM, NULL);
		return;
	}

	PGconn *c = http_db(rq);
	if (c == NULL) {
		free(like);
		return;
	}
	snprintf(limit_buf, sizeof(limit_buf), "%ld", limit + 1);
	const char *p[9] = {rq->scope.org_ids_pg, rq->scope.site_ids_pg, org, site, status, like,
			    cursor ? cur_host : NULL, cursor ? cur_id : NULL, limit_buf};
	PGresult *r = db_query(c,
			       "SELECT " DEVICE_COLS " FROM devices d"
			       " WHERE d.org_id = ANY($1::uuid[])"
			       "   AND ($2::uuid[] IS NULL OR d.site_id = ANY($2::uuid[]))"
			       "   AND ($3::uuid IS NULL OR d.org_id = $3::uuid)"
			       "   AND ($4::uuid IS NULL OR d.site_id = $4::uuid)"
			       "   AND ($5::text IS NULL OR " STATUS_EXPR " = $5)"
			       "   AND ($6::text IS NULL OR d.hostname LIKE $6)"
			       "   AND ($7::text IS NULL OR (d.hostname, d.id) > ($7, $8::uuid))"
			       " ORDER BY d.hostname, d.id LIMIT $9::int",
			       9, p, NULL);
	free(like);
	if (r == NULL) {
		http_fail_err(rq, BZ_ERR_DB, NULL);
		return;
	}
	int n = PQntuples(r), shown = n > limit ? (int)limit : n;
	json_t *arr = json_array();
	for (int i = 0; i < shown; i++)
		json_array_append_new(arr, device_json(r, i));
	char *next = NULL;
	if (n > limit)
		next = cursor_encode(PQgetvalue(r, shown - 1, 3), PQgetvalue(r, shown - 1, 0));
	PQclear(r);
	json_t *out = json_pack("{s:o,s:s?}", "devices", arr, "nextCursor", next);
	free(next);
	http_reply(rq, 200, out);
}

static void get_device(struct request *rq)
{
	char id[64];

	if (http_path_param(rq, "id", id, sizeof(id)) != 0 || !is_uuid(id)) {
		http_fail(rq, 404, "not_found", "device not found");
		return;
	}
	PGconn *c = http_db(rq);
	if (c == NULL)
		return;
	const char *p[3] = {id, rq->scope.org_ids_pg, rq->scope.site_ids_pg};
	PGresult *r = db_query(c,
			       "SELECT " DEVICE_COLS ", d.architecture, d.agent_version,"
			       " " AGENTS_TS("d.enrolled_at") ", d.hardware::text,"
			       " coalesce(h.inventory, '{}')::text, coalesce(h.metrics, '{}')::text,"
			       " coalesce(h.uptime_seconds::text, ''), d.heartbeat_interval_s"
			       " FROM devices d LEFT JOIN device_heartbeats h ON h.device_id = d.id"
			       " WHERE d.id = $1::uuid AND d.org_id = ANY($2::uuid[])"
			       "   AND ($3::uuid[] IS NULL OR d.site_id = ANY($3::uuid[]))",
			       3, p, NULL);
	if (r == NULL) {
		http_fail_err(rq, BZ_ERR_DB, NULL);
		return;
	}
	if (PQntuples(r) != 1) {
		PQclear(r);
		http_fail(rq, 404, "not_found", "device not found");
		return;
	}
	json_t *d = device_json(r, 0);
	json_t *hw = json_loads(PQgetvalue(r, 0, 13), 0, NULL);
	json_t *inv = json_loads(PQgetvalue(r, 0, 14), 0, NULL);
	json_t *met = json_loads(PQgetvalue(r, 0, 15), 0, NULL);
	const char *up = PQgetvalue(r, 0, 16);
	json_object_set_new(d, "architecture", json_string(PQgetvalue(r, 0, 10)));
	json_object_set_new(d, "agentVersion", json_string(PQgetvalue(r, 0, 11)));
	json_object_set_new(d, "enrolledAt", json_string(PQgetvalue(r, 0, 12)));
	json_object_set_new(d, "hardware", hw ? hw : json_object());
	json_object_set_new(d, "inventory", inv ? inv : json_object());
	json_object_set_new(d, "metrics", met ? met : json_object());
	json_object_set_new(d, "uptimeSeconds", up[0] ? json_integer(atoll(up)) : json_null());
	json_object_set_new(d, "heartbeatIntervalSeconds", json_integer(atoi(PQgetvalue(r, 0, 17))));
	PQclear(r);
	http_reply(rq, 200, d);
}

const struct route device_routes[] = {
	{"GET", "/api/v1/devices", list_devices, ROUTE_USER, "devices:read", NULL},
	{"GET", "/api/v1/devices/:id", get_device, ROUTE_USER, "devices:read", NULL},
};
const size_t device_routes_count = sizeof(device_routes) / sizeof(*device_routes);
