/*
 * probe.c — an agent token sent for another device's path (checklist G6;
 * docs/probes-and-addresses.md).
 *
 * A token aimed at a device of another organization is a cross-tenant
 * probe: a stolen or copied token being tried against someone else's
 * fleet. The token and every other live token of its device are suspended
 * at once and the device is suspended until an administrator reviews it;
 * the state is in PostgreSQL, which every request of every server instance
 * reads, so the token is refused everywhere from the commit on. The caller
 * gets the same 401 as for a random token: nothing tells it that the device
 * exists. Aimed at another device of its own organization (or at no
 * device), the token is refused with 403 and the mismatch audited, at most
 * once per token per minute, but not suspended: that is a misconfigured
 * agent, not a tenant boundary.
 *
 * Who learns what (each organization's admins read only their own chain):
 * - the token's organization: agent.token.suspended with the path device
 *   id (which the caller sent itself) but not the other organization's id,
 *   so its admins — who might be the prober — cannot map devices to
 *   tenants through their audit log;
 * - the probed organization: agent.probe.detected on its device, with the
 *   source address but no id of the prober's organization or device;
 * - the system chain (platform operators): agent.token.suspended with
 *   every id.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/text.h"
#include "common/metrics.h"
#include "server/agents/agents.h"
#include "server/db/db.h"

#define PROBE_REASON "cross_tenant_probe"

/* A mismatch is audited at most once per token in this many seconds. */
#define MISMATCH_AUDIT_INTERVAL_S 60

int agents_probe_classify(PGconn *c, struct agents_agent *a, const char *path_id,
			  struct bz_errinfo *why)
{
	static const char *sql = "SELECT org_id FROM devices WHERE id = $1::uuid";
	const char *p[1] = {path_id};
	PGresult *r = db_query(c, sql, 1, p, NULL);

	if (r == NULL)
		return BZ_ERR_DB;
	text_copy(a->probe_device_id, sizeof(a->probe_device_id), path_id);
	if (PQntuples(r) == 1)
		text_copy(a->probe_org_id, sizeof(a->probe_org_id), PQgetvalue(r, 0, 0));
	PQclear(r);
	if (!a->probe_org_id[0])
		a->probe = AGENTS_PROBE_UNKNOWN_DEVICE;
	else if (strcasecmp(a->probe_org_id, a->org_id) == 0)
		a->probe = AGENTS_PROBE_SAME_ORG;
	else
		a->probe = AGENTS_PROBE_CROSS_TENANT;
	if (a->probe == AGENTS_PROBE_CROSS_TENANT)
		/* Word for word the refusal of an unknown token (heartbeat.c). */
		return bz_fail(why, BZ_ERR_UNAUTHORIZED, "unauthorized", NULL,
			       "invalid agent token");
	return bz_fail(why, BZ_ERR_FORBIDDEN, "forbidden", NULL,
		       "token does not belong to this agent");
}

/* Suspends the live tokens of A's device and the device itself at NOW_S
 * (epoch seconds, text). *N gets the number of tokens suspended. */
static int suspend_rows(PGconn *c, const struct agents_agent *a, const char *now_s, int *n)
{
	/* The device row first, as every token change does (tokens.c): in
	 * the opposite order a probe racing a confirm, rotation or reset
	 * deadlocks, and a rotation committing meanwhile would leave a
	 * pending token this UPDATE did not see. */
	static const char *lock_sql = "SELECT 1 FROM devices WHERE id = $1::uuid FOR UPDATE";
	/* Expired pending and previous tokens too: nothing of the device's
	 * credentials may answer differently from the rest. */
	static const char *tokens_sql =
		"UPDATE agent_tokens SET state = 'suspended', expires_at = NULL,"
		"       retired_at = to_timestamp($2::bigint), retired_reason = '" PROBE_REASON "'"
		" WHERE device_id = $1::uuid AND state IN ('pending', 'current', 'previous')";
	static const char *device_sql =
		"UPDATE devices SET status = 'suspended', suspended_at = to_timestamp($2::bigint),"
		"       suspension_reason = '" PROBE_REASON "', reenrollment_blocked = true"
		" WHERE id = $1::uuid AND status = 'active'";
	const char *p[2] = {a->device_id, now_s};
	PGresult *r = db_query(c, lock_sql, 1, p, NULL);

	if (r == NULL)
		return BZ_ERR_DB;
	PQclear(r);
	if ((r = db_query(c, tokens_sql, 2, p, NULL)) == NULL)
		return BZ_ERR_DB;
	*n = atoi(PQcmdTuples(r));
	PQclear(r);
	return *n > 0 ? db_exec(c, device_sql, 2, p) : 0;
}

/* The three rows of a suspension (see the top of this file). */
static int suspend_audit(PGconn *c, const struct agents_agent *a, const char *ip, int n)
{
	json_t *own = json_pack("{s:s,s:s,s:s?,s:i}", "reason", PROBE_REASON, "targetDeviceId",
				a->probe_device_id, "sourceIp", ip, "suspendedCount", n);
	json_t *target = json_pack("{s:s,s:s?}", "reason", PROBE_REASON, "sourceIp", ip);
	json_t *sys = json_pack("{s:s,s:s,s:s,s:s,s:s?,s:i}", "reason", PROBE_REASON, "orgId",
				a->org_id, "targetOrgId", a->probe_org_id, "targetDeviceId",
				a->probe_device_id, "sourceIp", ip, "suspendedCount", n);
	struct audit_event ev = {.org_id = a->org_id,
				 .actor_type = "agent",
				 .actor_id = a->device_id,
				 .action = "agent.token.suspended",
				 .resource = "devices",
				 .resource_id = a->device_id,
				 .details = own,
				 .ip_address = ip};
	int rc = own && target && sys ? audit_write(c, &ev) : BZ_ERR_NOMEM;

	if (rc == 0) {
		ev = (struct audit_event){.org_id = a->probe_org_id,
					  .actor_type = "agent",
					  .action = "agent.probe.detected",
					  .resource = "devices",
					  .resource_id = a->probe_device_id,
					  .details = target,
					  .ip_address = ip,
					  .result = "denied"};
		rc = audit_write(c, &ev);
	}
	if (rc == 0) {
		ev = (struct audit_event){.actor_type = "agent",
					  .actor_id = a->device_id,
					  .action = "agent.token.suspended",
					  .resource = "devices",
					  .resource_id = a->device_id,
					  .details = sys,
					  .ip_address = ip};
		rc = audit_write(c, &ev);
	}
	json_decref(own);
	json_decref(target);
	json_decref(sys);
	return rc;
}

/* The suspension and its audit rows in one transaction. */
static int suspend(PGconn *c, const struct agents_agent *a, const char *ip, int64_t now)
{
	char now_s[24];
	int n = 0, rc;

	snprintf(now_s, sizeof(now_s), "%lld", (long long)now);
	if ((rc = db_begin(c)) != 0)
		return rc;
	rc = suspend_rows(c, a, now_s, &n);
	if (rc == 0 && n > 0)
		rc = suspend_audit(c, a, ip, n);
	if (rc == 0)
		rc = db_commit(c);
	if (rc != 0)
		db_rollback(c);
	else
		metrics_add(METRIC_AGENT_TOKEN_SUSPENSIONS, NULL, (uint64_t)n);
	return rc;
}

/* agent.token.mismatch, at most once per token per MISMATCH_AUDIT_INTERVAL_S. */
static int mismatch_audit(PGconn *c, const char *token_hash, const struct agents_agent *a,
			  const char *ip, int64_t now)
{
	static const char *claim_sql =
		"UPDATE agent_tokens SET mismatch_audited_at = to_timestamp($2::bigint)"
		" WHERE token_hash = $1 AND (mismatch_audited_at IS NULL"
		"       OR mismatch_audited_at <= to_timestamp($2::bigint) - make_interval(secs => $3))";
	char now_s[24], every_s[16];
	const char *p[3] = {token_hash, now_s, every_s};
	const char *reason = a->probe == AGENTS_PROBE_SAME_ORG ? "same_organization"
							       : "unknown_device";
	int rc;

	snprintf(now_s, sizeof(now_s), "%lld", (long long)now);
	snprintf(every_s, sizeof(every_s), "%d", MISMATCH_AUDIT_INTERVAL_S);
	if ((rc = db_begin(c)) != 0)
		return rc;
	PGresult *r = db_query(c, claim_sql, 3, p, NULL);
	int claimed = r != NULL && strcmp(PQcmdTuples(r), "1") == 0;
	rc = r == NULL ? BZ_ERR_DB : 0;
	PQclear(r);
	if (rc == 0 && claimed) {
		json_t *d = json_pack("{s:s,s:s,s:s?}", "reason", reason, "targetDeviceId",
				      a->probe_device_id, "sourceIp", ip);
		struct audit_event ev = {.org_id = a->org_id,
					 .actor_type = "agent",
					 .actor_id = a->device_id,
					 .action = "agent.token.mismatch",
					 .resource = "devices",
					 .resource_id = a->device_id,
					 .details = d,
					 .ip_address = ip,
					 .result = "denied"};
		rc = d != NULL ? audit_write(c, &ev) : BZ_ERR_NOMEM;
		json_decref(d);
	}
	if (rc == 0)
		rc = db_commit(c);
	if (rc != 0)
		db_rollback(c);
	return rc;
}

int agents_probe_record(PGconn *c, const char *token_hash, const struct agents_agent *a,
			const char *ip, int64_t now)
{
	switch (a->probe) {
	case AGENTS_PROBE_CROSS_TENANT:
		return suspend(c, a, ip, now);
	case AGENTS_PROBE_SAME_ORG:
	case AGENTS_PROBE_UNKNOWN_DEVICE:
		return mismatch_audit(c, token_hash, a, ip, now);
	default:
		return 0;
	}
}
