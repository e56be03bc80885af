/*
 * usage.c — counts of the devices and enrolment keys an organization or a
 * site still holds (agents_usage.h).
 */
#include <stdlib.h>

#include "common/err.h"
#include "server/agents/agents_usage.h"
#include "server/db/db.h"

/* A key is usable exactly when enrolment's consume_key_sql (agent_api.c)
 * would still accept it. */
static const char *usage_sql =
	"SELECT (SELECT count(*) FROM devices"
	"         WHERE org_id = $1::uuid AND ($2::uuid IS NULL OR site_id = $2::uuid)"
	"           AND status <> 'decommissioned'),"
	"       (SELECT count(*) FROM enrollment_keys"
	"         WHERE org_id = $1::uuid AND ($2::uuid IS NULL OR site_id = $2::uuid)"
	"           AND revoked_at IS NULL AND expires_at > now() AND usage_count < max_usage)";

int agents_usage_count(PGconn *c, const char *org_id, const char *site_id, struct agents_usage *out)
{
	const char *p[2] = {org_id, site_id};
	PGresult *r = db_query(c, usage_sql, 2, p, NULL);

	if (r == NULL)
		return BZ_ERR_DB;
	out->active_devices = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	out->usable_keys = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
	PQclear(r);
	return 0;
}
