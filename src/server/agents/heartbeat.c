/*
 * heartbeat.c — what agents report after enrolment: token authentication
 * (G1, G2), the latest heartbeat per device (device_heartbeats), and the
 * audited changes a heartbeat can carry (G7: a new source address; a new
 * hostname).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/clock.h"
#include "common/text.h"
#include "common/metrics.h"
#include "server/agents/agents.h"
#include "server/agents/agents_metrics.h"
#include "server/db/db.h"

/* Largest integer a double (and so every JSON consumer) holds exactly. */
#define JSON_SAFE_INTEGER 9007199254740992.0
#define JSON_SAFE_INTEGER_I 9007199254740992LL
#define JSON_MAX_DEPTH 32
#define JSON_STRING_MAX 1024

/* 1 if V and everything inside it (up to JSON_MAX_DEPTH levels) is a
 * bounded number, a display string, or another kind of value. */
static int value_ok(const json_t *v, int depth)
{
	const char *k, *why;
	json_t *child;
	size_t i;

	if (depth > JSON_MAX_DEPTH)
		return 0;
	/* Integers are compared as integers: 2^53 + 1 would round to 2^53 as
	 * a double and pass. */
	if (json_is_integer(v))
		return json_integer_value(v) <= JSON_SAFE_INTEGER_I &&
		       json_integer_value(v) >= -JSON_SAFE_INTEGER_I;
	if (json_is_real(v)) {
		double d = json_real_value(v);
		return d == d && d <= JSON_SAFE_INTEGER && d >= -JSON_SAFE_INTEGER;
	}
	if (json_is_string(v))
		return text_check(json_string_value(v), JSON_STRING_MAX, TEXT_ALLOW_EMPTY, &why) ==
			       0 &&
		       strlen(json_string_value(v)) == json_string_length(v);
	if (json_is_object(v)) {
		json_object_foreach((json_t *)v, k, child)
			if (!value_ok(child, depth + 1))
				return 0;
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, child)
			if (!value_ok(child, depth + 1))
				return 0;
	}
	return 1;
}

int agents_json_check(const json_t *obj, unsigned flags, const char **bad_key)
{
	const char *k;
	json_t *v;

	if (bad_key != NULL)
		*bad_key = NULL;
	json_object_foreach((json_t *)obj, k, v) {
		if (((flags & AGENTS_JSON_NUMBERS) && !json_is_number(v)) || !value_ok(v, 1)) {
			if (bad_key != NULL)
				*bad_key = k;
			return BZ_ERR_INVALID;
		}
	}
	return 0;
}

int agents_agent_auth(PGconn *c, const char *token_hash, const char *path_id,
		      struct agents_agent *out, struct bz_errinfo *why)
{
	int64_t now = bz_now();
	int rc = agents_token_lookup(c, token_hash, now, out);

	/* A pending or previous token seen past its expiry is retired for
	 * good, so a clock stepped back cannot bring it back. */
	if (rc == 0 && !agents_token_usable(out) && !out->token_live &&
	    agents_token_retire_expired(c, token_hash, out->token_state, now) != 0)
		return BZ_ERR_DB;
	if (rc == BZ_ERR_NOT_FOUND || (rc == 0 && !agents_token_usable(out)))
		return bz_fail(why, BZ_ERR_UNAUTHORIZED, "unauthorized", NULL,
			       "invalid agent token");
	if (rc != 0)
		return rc;
	/* A token only speaks for its own device; aimed at another tenant's
	 * device it is a probe (G6, probe.c). */
	if (strcasecmp(out->device_id, path_id) != 0)
		return agents_probe_classify(c, out, path_id, why);
	return agents_agent_admit(out, path_id, why);
}

int agents_agent_admit(const struct agents_agent *a, const char *path_id, struct bz_errinfo *why)
{
	if (!agents_token_usable(a) || strcasecmp(a->device_id, path_id) != 0)
		return BZ_ERR_NOT_FOUND;
	if (strcmp(a->device_status, "active") != 0)
		return bz_fail(why, BZ_ERR_FORBIDDEN, "device_suspended", NULL,
			       "device is suspended; an administrator must review it");
	return 0;
}

int agents_heartbeat_plain(const struct agents_agent *a, const struct agents_heartbeat *hb)
{
	int ip_changed = hb->client_ip != NULL && strcmp(a->old_ip, hb->client_ip) != 0;
	int renamed = hb->hostname != NULL && strcmp(hb->hostname, a->hostname) != 0;

	return a->token_state != AGENTS_TOKEN_PENDING && !ip_changed && !renamed && a->online != 0;
}

/* One statement per heartbeat: the device row (last seen at $11, the
 * server's bz_now(); a device never seen becomes online — the transition
 * from offline is liveness.c's), the metrics history row (device_metrics,
 * migration 0019; only when the heartbeat carried metrics, whose members
 * the body parser checked to be numbers within ±2^53, so the numeric casts
 * cannot fail) and the latest state (device_heartbeats). */
static const char *heartbeat_sql =
	"WITH d AS ("
	"  UPDATE devices SET last_seen_at = to_timestamp($11::bigint), last_ip = $2::inet,"
	"         agent_version = coalesce($3, agent_version),"
	"         hostname = coalesce($8, hostname), os_version = coalesce($9, os_version),"
	"         online = coalesce(online, true)"
	"   WHERE id = $1::uuid AND status = 'active' AND credential_version = $10::int"
	"   RETURNING id, org_id),"
	" m AS ("
	"  INSERT INTO device_metrics (device_id, org_id, ts, cpu_percent, mem_used_bytes,"
	"         mem_total_bytes, disk_used_bytes, disk_total_bytes, load1, load5, load15)"
	"  SELECT d.id, d.org_id, to_timestamp($11::bigint), x.\"cpuPercent\"::real,"
	"         round(x.\"memoryUsedBytes\")::bigint, round(x.\"memoryTotalBytes\")::bigint,"
	"         round(x.\"diskUsedBytes\")::bigint, round(x.\"diskTotalBytes\")::bigint,"
	"         x.load1::real, x.load5::real, x.load15::real"
	"    FROM d, jsonb_to_record($6::jsonb) AS x(\"cpuPercent\" numeric,"
	"         \"memoryUsedBytes\" numeric, \"memoryTotalBytes\" numeric,"
	"         \"diskUsedBytes\" numeric, \"diskTotalBytes\" numeric, load1 numeric,"
	"         load5 numeric, load15 numeric)"
	"   WHERE $6::jsonb <> '{}'::jsonb)"
	" INSERT INTO device_heartbeats (device_id, org_id, received_at, source_ip, agent_status,"
	"        agent_version, uptime_seconds, metrics, inventory)"
	" SELECT d.id, d.org_id, to_timestamp($11::bigint), $2::inet, $4, coalesce($3, ''),"
	"        $5::bigint, $6::jsonb, $7::jsonb"
	"   FROM d"
	" ON CONFLICT (device_id) DO UPDATE SET received_at = excluded.received_at,"
	"    source_ip = excluded.source_ip, agent_status = excluded.agent_status,"
	"    agent_version = excluded.agent_version, uptime_seconds = excluded.uptime_seconds,"
	"    metrics = excluded.metrics, inventory = excluded.inventory"
	" RETURNING device_id";

/* Runs heartbeat_sql with P; BZ_ERR_UNAUTHORIZED when the device row no
 * longer matched (reset, suspended or decommissioned since the lookup). */
static int heartbeat_write(PGconn *c, const char *const p[11])
{
	PGresult *r = db_query(c, heartbeat_sql, 11, p, NULL);
	int n;

	if (r == NULL)
		return BZ_ERR_DB;
	n = PQntuples(r);
	PQclear(r);
	return n == 1 ? 0 : BZ_ERR_UNAUTHORIZED;
}

/* Writes the agent-actor audit row ACTION with DETAILS (stolen) on C. */
static int audit_agent(PGconn *c, const struct agents_agent *a, const char *ip, const char *action,
		       json_t *details)
{
	struct audit_event ev = {.org_id = a->org_id,
				 .actor_type = "agent",
				 .actor_id = a->device_id,
				 .action = action,
				 .resource = "devices",
				 .resource_id = a->device_id,
				 .ip_address = ip,
				 .details = details};
	int rc = audit_write(c, &ev);

	json_decref(details);
	return rc;
}

int agents_heartbeat_record(PGconn *c, const struct agents_agent *a,
			    const struct agents_heartbeat *hb)
{
	char uptime_s[24], version[16], now_s[24];
	const char *ip = hb->client_ip;
	char *m = hb->metrics ? json_dumps(hb->metrics, AGENTS_JSON_FLAGS) : strdup("{}");
	char *inv = hb->inventory ? json_dumps(hb->inventory, AGENTS_JSON_FLAGS) : strdup("{}");
	int rc = BZ_ERR_NOMEM;

	if (m == NULL || inv == NULL)
		goto out;
	snprintf(uptime_s, sizeof(uptime_s), "%lld", (long long)hb->uptime_s);
	snprintf(version, sizeof(version), "%d", a->credential_version);
	snprintf(now_s, sizeof(now_s), "%lld", (long long)bz_now());
	const char *p[11] = {a->device_id,
			     ip,
			     hb->agent_version,
			     hb->status ? hb->status : "online",
			     hb->uptime_s >= 0 ? uptime_s : NULL,
			     m,
			     inv,
			     hb->hostname,
			     hb->os_version,
			     version,
			     now_s};
	/* G7: a new source address (token theft, NAT change) goes into the
	 * address history and is audited (deduplicated, ip_history.c), and a
	 * renamed device is audited, in the same transaction as the change. */
	int ip_changed = ip != NULL && strcmp(a->old_ip, ip) != 0, ip_audit = 0;
	int renamed = hb->hostname != NULL && strcmp(hb->hostname, a->hostname) != 0;
	/* Back from offline: device.online in the same transaction (liveness.c). */
	int back = a->online == 0;
	int tx = ip_changed || renamed || back;
	rc = tx ? db_begin(c) : 0;
	if (rc == 0 && ip_changed)
		rc = agents_ip_history_move(c, a, ip, hb->ip_dedup_s, bz_now(), &ip_audit);
	if (rc == 0)
		rc = heartbeat_write(c, p);
	if (rc == 0 && ip_audit)
		rc = audit_agent(c, a, ip, "agent.source.ip.changed",
				 json_pack("{s:s,s:s}", "previousIp", a->old_ip, "newIp", ip));
	if (rc == 0 && renamed)
		rc = audit_agent(c, a, ip, "device.renamed",
				 json_pack("{s:s,s:s}", "previousHostname", a->hostname, "hostname",
					   hb->hostname));
	if (rc == 0 && back)
		rc = agents_liveness_back_online(c, a, ip);
	if (rc == 0 && tx)
		rc = db_commit(c);
	if (rc != 0 && tx)
		db_rollback(c);
	if (rc == 0)
		metrics_inc(METRIC_HEARTBEATS, NULL);
out:
	free(m);
	free(inv);
	return rc;
}
