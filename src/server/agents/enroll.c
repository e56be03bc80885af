/*
 * enroll.c — agent enrolment: consuming a use of an enrolment key and
 * creating the device.
 *
 * Enrolment consumes one use of the key with a guarded UPDATE in the same
 * transaction as the device insert, so concurrent enrolments can never
 * exceed the key's use limit (PostgreSQL re-checks the WHERE clause of a
 * row it waited for). The agent token is 32 random bytes, returned once;
 * only its SHA-256 is stored, in agent_tokens (G1; tokens.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"
#include "common/clock.h"
#include "common/text.h"
#include "common/metrics.h"
#include "server/agents/agents.h"
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
	" agent_version, heartbeat_interval_s, enrollment_key_id, hardware, last_ip, enrolled_at)"
	" VALUES ($1::uuid, $2::uuid, $3, $4, $5, $6, $7, $8::int, $9::uuid, $10::jsonb, $11::inet,"
	"         to_timestamp($12::bigint))"
	" RETURNING id";

int agents_enroll_check_secret(const char *given, const char *expected, struct bz_errinfo *why)
{
	/* Checked first, in constant time, so keys cannot be probed without it. */
	if (!crypto_ct_streq(given, expected)) {
		metrics_inc(METRIC_ENROLLMENTS, "failure");
		return bz_fail(why, BZ_ERR_FORBIDDEN, "invalid_enrollment_secret", NULL,
			       "enrollment secret is wrong");
	}
	return 0;
}

/* Consumes one use of the key with HMAC HASH; fills OUT's key, org, site. */
static int consume_key(PGconn *c, const char *hash, struct agents_enrollment *out)
{
	const char *p[1] = {hash};
	PGresult *r = db_query(c, consume_key_sql, 1, p, NULL);

	if (r == NULL)
		return BZ_ERR_DB;
	if (PQntuples(r) != 1) {
		PQclear(r);
		return BZ_ERR_UNAUTHORIZED;
	}
	text_copy(out->key_id, sizeof(out->key_id), PQgetvalue(r, 0, 0));
	text_copy(out->org_id, sizeof(out->org_id), PQgetvalue(r, 0, 1));
	text_copy(out->site_id, sizeof(out->site_id), PQgetvalue(r, 0, 2));
	PQclear(r);
	return 0;
}

static const char *or_empty(const char *s)
{
	return s != NULL ? s : "";
}

int agents_enroll(PGconn *c, const char *pepper, const struct agents_enroll_input *in,
		  struct agents_enrollment *out, struct audit_event *ev)
{
	char hash[65], token_hash[65], interval[16], now_s[24];
	int rc;

	memset(out, 0, sizeof(*out));
	if (agents_key_hash(pepper, in->key, hash) != 0)
		return BZ_ERR_CRYPTO;
	if ((rc = consume_key(c, hash, out)) != 0)
		return rc;
	/* G6: after the key (the organization is the key's), before anything
	 * is created; the caller's rollback returns the key's use. */
	if ((rc = agents_enroll_blocked(c, out->org_id, in->hostname, in->hardware, &out->block)) !=
	    0)
		return rc;
	if ((rc = agents_token_new(out->token, token_hash)) != 0)
		return rc;
	char *hw = in->hardware ? json_dumps(in->hardware, AGENTS_JSON_FLAGS) : strdup("{}");
	if (hw == NULL) {
		crypto_wipe(out->token, sizeof(out->token));
		return BZ_ERR_NOMEM;
	}
	int64_t now = bz_now();
	snprintf(interval, sizeof(interval), "%d", in->heartbeat_interval_s);
	snprintf(now_s, sizeof(now_s), "%lld", (long long)now);
	const char *p[12] = {out->org_id,
			     out->site_id,
			     in->hostname,
			     in->os_type,
			     or_empty(in->os_version),
			     or_empty(in->architecture),
			     or_empty(in->agent_version),
			     interval,
			     out->key_id,
			     hw,
			     in->client_ip,
			     now_s};
	PGresult *r = db_query(c, insert_device_sql, 12, p, NULL);
	free(hw);
	if (r == NULL) {
		crypto_wipe(out->token, sizeof(out->token));
		return BZ_ERR_DB;
	}
	text_copy(out->device_id, sizeof(out->device_id), PQgetvalue(r, 0, 0));
	PQclear(r);
	rc = agents_token_insert(c, out->device_id, out->org_id, token_hash, AGENTS_TOKEN_CURRENT,
				 now, 0);
	if (rc == 0) /* G7: the enrolment address opens the history */
		rc = agents_ip_history_seed(c, out->device_id, out->org_id, in->client_ip, now);
	if (rc != 0) {
		crypto_wipe(out->token, sizeof(out->token));
		return rc;
	}
	*ev = (struct audit_event){.org_id = out->org_id,
				   .actor_type = "agent",
				   .actor_id = out->device_id,
				   .action = "device.enroll",
				   .resource = "devices",
				   .resource_id = out->device_id,
				   .details = json_pack("{s:s,s:s,s:s,s:s}", "hostname",
							in->hostname, "siteId", out->site_id,
							"enrollmentKeyId", out->key_id, "osType",
							in->os_type)};
	metrics_inc(METRIC_ENROLLMENTS, "success");
	return 0;
}

int agents_enroll_refusal(PGconn *c, const char *pepper, const char *key, const char *hostname,
			  struct agents_refusal *out, struct audit_event *ev)
{
	char hash[65];
	const char *p[1] = {hash};
	PGresult *r = NULL;

	memset(out, 0, sizeof(*out));
	text_copy(out->reason, sizeof(out->reason), "unknown");
	if (agents_key_hash(pepper, key, hash) == 0)
		r = db_query(c, key_reason_sql, 1, p, NULL);
	if (r != NULL && PQntuples(r) == 1) {
		text_copy(out->key_id, sizeof(out->key_id), PQgetvalue(r, 0, 0));
		text_copy(out->org_id, sizeof(out->org_id), PQgetvalue(r, 0, 1));
		text_copy(out->reason, sizeof(out->reason), PQgetvalue(r, 0, 2));
	}
	PQclear(r);
	*ev = (struct audit_event){.org_id = out->org_id[0] ? out->org_id : NULL,
				   .actor_type = "agent",
				   .action = "agent.enroll.failed",
				   .resource = "enrollment_keys",
				   .resource_id = out->key_id[0] ? out->key_id : NULL,
				   .result = "failure",
				   .details = json_pack("{s:s,s:s}", "reason", out->reason,
							"hostname", hostname)};
	metrics_inc(METRIC_ENROLLMENTS, "failure");
	return 0;
}
