/*
 * agent_api.c — the endpoints agents call: enrolment and heartbeats.
 *
 * Enrolment consumes one use of the key with a guarded UPDATE in the same
 * transaction as the device insert, so concurrent enrolments can never
 * exceed the key's use limit (PostgreSQL re-checks the WHERE clause of a
 * row it waited for). The agent token is 32 random bytes, returned once;
 * only its SHA-256 is stored (G1).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "crypto/crypto.h"
#include "server/agents/agents_internal.h"
#include "server/audit/audit.h"
#include "server/db/db.h"

static const char *consume_key_sql =
	"UPDATE enrollment_keys SET usage_count = usage_count + 1"
	" WHERE key_hash = $1 AND revoked_at IS NULL AND expires_at > now()"
	"   AND usage_count < max_usage"
	" RETURNING id, org_id, site_id";

static const char *key_reason_sql =
	"SELECT id, org_id, CASE WHEN revoked_at IS NOT NULL THEN 'revoked'"
	"  WHEN expires_at <= now() THEN 'expired' ELSE 'exhausted' END"
	" FROM enrollment_keys WHERE key_hash = $1";

static const char *insert_device_sql =
	"INSERT INTO devices (org_id, site_id, hostname, os_type, os_version, architecture,"
	" agent_version, auth_token_hash, heartbeat_interval_s, enrollment_key_id, hardware, last_ip)"
	" VALUES ($1::uuid, $2::uuid, $3, $4, $5, $6, $7, $8, $9::int, $10::uuid, $11::jsonb, $12::inet)"
	" RETURNING id";

/* Largest integer a double (and so every JSON consumer) holds exactly. */
#define JSON_SAFE_INTEGER 9007199254740992.0

/* 1 if every number inside V (at any depth up to 32) is finite and within
 * ±2^53, so what is stored can be read back by any JSON parser. */
static int numbers_bounded(const json_t *v, int depth)
{
	const char *k;
	json_t *child;
	size_t i;

	if (depth > 32)
		return 0;
	if (json_is_number(v)) {
		double d = json_number_value(v);
		return d == d && d <= JSON_SAFE_INTEGER && d >= -JSON_SAFE_INTEGER;
	}
	if (json_is_object(v)) {
		json_object_foreach((json_t *)v, k, child) if (!numbers_bounded(child, depth + 1)) return 0;
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, child) if (!numbers_bounded(child, depth + 1)) return 0;
	}
	return 1;
}

/* A hostname as devices report it: 1–255 bytes, no control characters, not
 * only blanks. (Not RFC 1123: Windows names may hold other characters.) */
static int hostname_ok(const char *h)
{
	int visible = 0;

	for (const unsigned char *p = (const unsigned char *)h; *p; p++) {
		if (*p < 0x20 || *p == 0x7f)
			return 0;
		if (*p != ' ')
			visible = 1;
	}
	return visible;
}

/* Refuses an enrolment with 401 and the reason, and audits the attempt. */
static void enroll_refused(struct request *rq, PGconn *c, const char *hash, const char *hostname)
{
	const char *p[1] = {hash};
	char reason[16] = "unknown", org[37] = "", key_id[37] = "";
	PGresult *r = db_query(c, key_reason_sql, 1, p, NULL);

	if (r != NULL && PQntuples(r) == 1) {
		snprintf(key_id, sizeof(key_id), "%s", PQgetvalue(r, 0, 0));
		snprintf(org, sizeof(org), "%s", PQgetvalue(r, 0, 1));
		snprintf(reason, sizeof(reason), "%s", PQgetvalue(r, 0, 2));
	}
	PQclear(r);
	struct audit_event ev = {.org_id = org[0] ? org : NULL,
				 .actor_type = "agent",
				 .action = "agent.enroll.failed",
				 .resource = "enrollment_keys",
				 .resource_id = key_id[0] ? key_id : NULL,
				 .result = "failure",
				 .ip_address = rq->client_ip,
				 .details = json_pack("{s:s,s:s}", "reason", reason, "hostname", hostname)};
	if (audit_write_standalone(c, &ev) != 0)
		log_error("audit.write.failed", "action", ev.action, NULL);
	json_decref(ev.details);
	http_fail_extra(rq, 401, "invalid_enrollment_key", json_pack("{s:s}", "reason", reason),
			"enrollment key is %s", reason);
}

static void enroll(struct request *rq)
{
	const struct config *cfg = rq->app->cfg;
	const char *key = NULL, *secret = NULL, *hostname = NULL, *os_type = NULL, *os_version = "",
		   *arch = "", *agent_version = "";
	json_t *hardware = NULL;
	char hash[65], token[4 + 65], token_hash[65], interval[16];

	if (body_string(rq, "enrollmentKey", 1, 256, &key) ||
	    body_string(rq, "enrollmentSecret", 1, 512, &secret) ||
	    body_string(rq, "hostname", 1, 255, &hostname) ||
	    body_string(rq, "osType", 1, 32, &os_type) ||
	    body_string(rq, "osVersion", 0, 200, &os_version) ||
	    body_string(rq, "architecture", 0, 64, &arch) ||
	    body_string(rq, "agentVersion", 0, 64, &agent_version) ||
	    body_object(rq, "hardware", 0, &hardware))
		return;
	if (!hostname_ok(hostname)) {
		http_fail(rq, 400, "validation_error",
				 "field 'hostname' must be non-blank text without control characters");
		return;
	}
	if (hardware != NULL && !numbers_bounded(hardware, 0)) {
		http_fail(rq, 400, "validation_error",
				 "field 'hardware' holds a number out of range or is nested too deeply");
		return;
	}
	/* The shared secret is checked first, in constant time, so keys
	 * cannot be probed without it. */
	if (!crypto_ct_streq(secret, cfg->secrets[SECRET_AGENT_ENROLLMENT_SECRET])) {
		http_fail(rq, 403, "invalid_enrollment_secret", "enrollment secret is wrong");
		return;
	}
	if (enrollment_key_hash(cfg->secrets[SECRET_ENROLLMENT_KEY_PEPPER], key, hash) != 0) {
		http_fail_err(rq, BZ_ERR_CRYPTO, NULL);
		return;
	}

	PGconn *c = http_db_begin(rq);
	if (c == NULL)
		return;
	const char *pk[1] = {hash};
	PGresult *r = db_query(c, consume_key_sql, 1, pk, NULL);
	if (r == NULL) {
		db_rollback(c);
		http_fail_err(rq, BZ_ERR_DB, NULL);
		return;
	}
	if (PQntuples(r) != 1) {
		PQclear(r);
		db_rollback(c);
		enroll_refused(rq, c, hash, hostname);
		return;
	}
	char key_id[37], org[37], site[37];
	snprintf(key_id, sizeof(key_id), "%s", PQgetvalue(r, 0, 0));
	snprintf(org, sizeof(org), "%s", PQgetvalue(r, 0, 1));
	snprintf(site, sizeof(site), "%s", PQgetvalue(r, 0, 2));
	PQclear(r);

	memcpy(token, AGENT_TOKEN_PREFIX, 4);
	if (crypto_random_hex(32, token + 4) != 0 ||
	    crypto_sha256_hex(token, strlen(token), token_hash) != 0) {
		db_rollback(c);
		http_fail_err(rq, BZ_ERR_CRYPTO, NULL);
		return;
	}
	char *hw = hardware ? json_dumps(hardware, JSON_COMPACT) : strdup("{}");
	if (hw == NULL) {
		db_rollback(c);
		crypto_wipe(token, sizeof(token));
		http_fail_err(rq, BZ_ERR_NOMEM, NULL);
		return;
	}
	snprintf(interval, sizeof(interval), "%d", cfg->heartbeat_interval_s);
	const char *pd[12] = {org, site, hostname, os_type, os_version, arch, agent_version,
			      token_hash, interval, key_id, hw, rq->client_ip[0] ? rq->client_ip : NULL};
	r = db_query(c, insert_device_sql, 12, pd, NULL);
	free(hw);
	if (r == NULL)
		goto dberr;
	char device_id[37];
	snprintf(device_id, sizeof(device_id), "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	struct audit_event ev = {.org_id = org,
				 .actor_type = "agent",
				 .actor_id = device_id,
				 .action = "device.enroll",
				 .resource = "devices",
				 .resource_id = device_id,
				 .ip_address = rq->client_ip,
				 .details = json_pack("{s:s,s:s,s:s,s:s}", "hostname", hostname, "siteId",
						      site, "enrollmentKeyId", key_id, "osType", os_type)};
	int rc = audit_write(c, &ev);
	json_decref(ev.details);
	if (rc != 0 || db_commit(c) != 0)
		goto dberr;
	json_t *out = json_pack("{s:s,s:s,s:s,s:s,s:{s:i}}", "agentId", device_id, "authToken", token,
				"orgId", org, "siteId", site, "config", "heartbeatIntervalSeconds",
				cfg->heartbeat_interval_s);
	crypto_wipe(token, sizeof(token));
	http_reply(rq, 201, out);
	return;
dberr:
	crypto_wipe(token, sizeof(token));
	db_rollback(c);
	http_fail_err(rq, BZ_ERR_DB, NULL);
}

/* Token lookup: current hash, or the previous one inside its grace period
 * (G2, rotation comes with a later issue). */
static const char *device_by_token_sql =
	"SELECT id, org_id, status, auth_token_hash, heartbeat_interval_s,"
	"       coalesce(host(last_ip), ''), hostname FROM devices"
	" WHERE auth_token_hash = $1"
	"    OR (prev_token_hash = $1 AND prev_token_expires_at > now())";

static const char *heartbeat_sql =
	"WITH d AS ("
	"  UPDATE devices SET last_seen_at = now(), last_ip = $2::inet,"
	"         agent_version = coalesce($3, agent_version),"
	"         hostname = coalesce($8, hostname), os_version = coalesce($9, os_version)"
	"   WHERE id = $1::uuid RETURNING id, org_id)"
	" INSERT INTO device_heartbeats (device_id, org_id, received_at, source_ip, agent_status,"
	"        agent_version, uptime_seconds, metrics, inventory)"
	" SELECT d.id, d.org_id, now(), $2::inet, $4, coalesce($3, ''), $5::bigint, $6::jsonb, $7::jsonb"
	"   FROM d"
	" ON CONFLICT (device_id) DO UPDATE SET received_at = excluded.received_at,"
	"    source_ip = excluded.source_ip, agent_status = excluded.agent_status,"
	"    agent_version = excluded.agent_version, uptime_seconds = excluded.uptime_seconds,"
	"    metrics = excluded.metrics, inventory = excluded.inventory";

/* Inventory fields a heartbeat may carry besides metrics. */
static const char *inventory_fields[] = {"hostname", "osType", "osVersion", "kernel",
					 "architecture", "cpuModel", "cpuCount"};

static int heartbeat_body(struct request *rq, const char **status, const char **version,
			  json_int_t *uptime, json_t **metrics, json_t **inventory)
{
	const char *s;
	json_t *v;

	*status = "online";
	*uptime = -1;
	if (body_string(rq, "status", 0, 32, status) || body_string(rq, "agentVersion", 0, 64, version) ||
	    body_int(rq, "uptimeSeconds", 0, 0, INT64_MAX, uptime) ||
	    body_object(rq, "metrics", 0, metrics))
		return -1;
	if (*metrics != NULL) {
		json_object_foreach(*metrics, s, v) if (!json_is_number(v) || !numbers_bounded(v, 0))
		{
			http_fail(rq, 400, "validation_error",
				  "field 'metrics.%.64s' must be a number within ±2^53", s);
			return -1;
		}
	}
	*inventory = json_object();
	for (size_t i = 0; i < sizeof(inventory_fields) / sizeof(*inventory_fields); i++) {
		v = json_object_get(rq->body, inventory_fields[i]);
		if (v == NULL || json_is_null(v))
			continue;
		if (!json_is_string(v) && !json_is_integer(v)) {
			http_fail(rq, 400, "validation_error", "field '%s' must be a string",
				  inventory_fields[i]);
			json_decref(*inventory);
			*inventory = NULL;
			return -1;
		}
		if (json_is_string(v) && json_string_length(v) > 255) {
			http_fail(rq, 400, "validation_error", "field '%s' is too long", inventory_fields[i]);
			json_decref(*inventory);
			*inventory = NULL;
			return -1;
		}
		if (json_is_string(v) && !strcmp(inventory_fields[i], "hostname") &&
		    !hostname_ok(json_string_value(v))) {
			http_fail(rq, 400, "validation_error",
				  "field 'hostname' must be non-blank text without control characters");
			json_decref(*inventory);
			*inventory = NULL;
			return -1;
		}
		if (json_is_integer(v) && !numbers_bounded(v, 0)) {
			http_fail(rq, 400, "validation_error", "field '%s' is out of range", inventory_fields[i]);
			json_decref(*inventory);
			*inventory = NULL;
			return -1;
		}
		json_object_set(*inventory, inventory_fields[i], v);
	}
	return 0;
}

static void heartbeat(struct request *rq)
{
	char path_id[64], token_hash[65], uptime_s[24];
	const char *h = http_header(rq, "Authorization");
	const char *status = NULL, *version = NULL;
	json_int_t uptime = -1;
	json_t *metrics = NULL, *inventory = NULL;

	if (http_path_param(rq, "agentId", path_id, sizeof(path_id)) != 0 || !is_uuid(path_id)) {
		http_fail(rq, 404, "not_found", "agent not found");
		return;
	}
	if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0 || strlen(h + 7) != 68 ||
	    strncmp(h + 7, AGENT_TOKEN_PREFIX, 4) != 0) {
		http_fail(rq, 401, "unauthorized", "missing or malformed agent token");
		return;
	}
	if (crypto_sha256_hex(h + 7, strlen(h + 7), token_hash) != 0) {
		http_fail_err(rq, BZ_ERR_CRYPTO, NULL);
		return;
	}
	PGconn *c = http_db(rq);
	if (c == NULL)
		return;
	const char *pt[1] = {token_hash};
	PGresult *r = db_query(c, device_by_token_sql, 1, pt, NULL);
	if (r == NULL) {
		http_fail_err(rq, BZ_ERR_DB, NULL);
		return;
	}
	if (PQntuples(r) != 1) {
		PQclear(r);
		http_fail(rq, 401, "unauthorized", "invalid agent token");
		return;
	}
	char device_id[37], org_id[37], old_ip[CLIENT_IP_LEN], old_host[256];
	snprintf(device_id, sizeof(device_id), "%s", PQgetvalue(r, 0, 0));
	snprintf(org_id, sizeof(org_id), "%s", PQgetvalue(r, 0, 1));
	int suspended = strcmp(PQgetvalue(r, 0, 2), "active") != 0;
	int interval = atoi(PQgetvalue(r, 0, 4));
	snprintf(old_ip, sizeof(old_ip), "%s", PQgetvalue(r, 0, 5));
	snprintf(old_host, sizeof(old_host), "%s", PQgetvalue(r, 0, 6));
	PQclear(r);
	/* A token only speaks for its own device. */
	if (strcasecmp(device_id, path_id) != 0) {
		http_fail(rq, 403, "forbidden", "token does not belong to this agent");
		return;
	}
	if (suspended) {
		http_fail(rq, 403, "device_suspended", "device is suspended; an administrator must review it");
		return;
	}
	if (heartbeat_body(rq, &status, &version, &uptime, &metrics, &inventory) != 0)
		return;

	char *m = metrics ? json_dumps(metrics, JSON_COMPACT) : strdup("{}");
	char *inv = json_dumps(inventory, JSON_COMPACT);
	if (m == NULL || inv == NULL) {
		free(m);
		free(inv);
		json_decref(inventory);
		http_fail_err(rq, BZ_ERR_NOMEM, NULL);
		return;
	}
	json_t *hn = json_object_get(inventory, "hostname"), *ov = json_object_get(inventory, "osVersion");
	snprintf(uptime_s, sizeof(uptime_s), "%lld", (long long)uptime);
	const char *ph[9] = {device_id,
			     rq->client_ip[0] ? rq->client_ip : NULL,
			     version,
			     status,
			     uptime >= 0 ? uptime_s : NULL,
			     m,
			     inv,
			     (json_is_string(hn) && json_string_length(hn) > 0) ? json_string_value(hn) : NULL,
			     json_is_string(ov) ? json_string_value(ov) : NULL};
	/* G7: a new source address (token theft, NAT change) and a renamed
	 * device are audited, in the same transaction as the change. */
	int ip_changed = old_ip[0] && rq->client_ip[0] && strcmp(old_ip, rq->client_ip) != 0;
	int renamed = ph[7] != NULL && strcmp(ph[7], old_host) != 0;
	int rc = (ip_changed || renamed) ? db_begin(c) : 0;
	if (rc == 0)
		rc = db_exec(c, heartbeat_sql, 9, ph);
	if (rc == 0 && ip_changed) {
		struct audit_event ev = {.org_id = org_id, .actor_type = "agent", .actor_id = device_id,
					 .action = "agent.source.ip.changed", .resource = "devices",
					 .resource_id = device_id, .ip_address = rq->client_ip,
					 .details = json_pack("{s:s,s:s}", "previousIp", old_ip, "newIp",
							      rq->client_ip)};
		rc = audit_write(c, &ev);
		json_decref(ev.details);
	}
	if (rc == 0 && renamed) {
		struct audit_event ev = {.org_id = org_id, .actor_type = "agent", .actor_id = device_id,
					 .action = "device.renamed", .resource = "devices",
					 .resource_id = device_id, .ip_address = rq->client_ip,
					 .details = json_pack("{s:s,s:s}", "previousHostname", old_host,
							      "hostname", ph[7])};
		rc = audit_write(c, &ev);
		json_decref(ev.details);
	}
	if (rc == 0 && (ip_changed || renamed))
		rc = db_commit(c);
	free(m);
	free(inv);
	json_decref(inventory);
	if (rc != 0) {
		db_rollback(c);
		http_fail_err(rq, BZ_ERR_DB, NULL);
		return;
	}
	http_reply(rq, 200,
		   json_pack("{s:{s:i},s:[]}", "config", "heartbeatIntervalSeconds", interval, "commands"));
}

const struct route agent_routes[] = {
	{"POST", "/api/v1/agents/enroll", enroll, ROUTE_PUBLIC | ROUTE_JSON_BODY, NULL, "device.enroll"},
	{"POST", "/api/v1/agents/:agentId/heartbeat", heartbeat,
	 ROUTE_PUBLIC | ROUTE_JSON_BODY | ROUTE_AUDIT_EXEMPT, NULL, NULL},
};
const size_t agent_routes_count = sizeof(agent_routes) / sizeof(*agent_routes);
