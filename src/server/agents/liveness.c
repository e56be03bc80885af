/*
 * liveness.c — offline detection. A device is offline after
 * AGENTS_OFFLINE_MISSED_INTERVALS missed heartbeat intervals. The list's
 * status (devices.c) is computed from last_seen_at at read time; this file
 * announces each transition once, as an audit row (and so a webhook):
 * device.offline from the periodic sweep, device.online from the first
 * heartbeat after it. devices.online (migration 0019) holds the last
 * announced state, so neither side writes per heartbeat beyond the
 * heartbeat's own UPDATE.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/err.h"
#include "server/agents/agents_metrics.h"
#include "server/db/db.h"

/* One batch of the sweep in one statement: $1 now (epoch seconds), $2 the
 * missed intervals, $3 the batch size. SKIP LOCKED leaves rows a heartbeat
 * or another sweep holds; the outer UPDATE re-checks online and
 * last_seen_at on the row it locks, so a device that heartbeated meanwhile
 * or that another sweep already marked is not marked (again). */
static const char *sweep_sql =
	"UPDATE devices d SET online = false"
	"  FROM (SELECT id FROM devices"
	"         WHERE online AND status = 'active'"
	"           AND last_seen_at < to_timestamp($1::bigint)"
	"               - make_interval(secs => $2::int * heartbeat_interval_s)"
	"         LIMIT $3::int FOR UPDATE SKIP LOCKED) s"
	" WHERE d.id = s.id AND d.online AND d.status = 'active'"
	"   AND d.last_seen_at < to_timestamp($1::bigint)"
	"       - make_interval(secs => $2::int * d.heartbeat_interval_s)"
	" RETURNING d.id, d.org_id, " DB_TS("d.last_seen_at") ", d.heartbeat_interval_s";

/* The device.offline row of row I of R (sweep_sql's columns), actor system. */
static int audit_offline(PGconn *c, const PGresult *r, int i)
{
	json_t *d = json_pack("{s:s,s:i,s:i}", "lastSeenAt", PQgetvalue(r, i, 2),
			      "heartbeatIntervalSeconds", atoi(PQgetvalue(r, i, 3)),
			      "missedIntervals", AGENTS_OFFLINE_MISSED_INTERVALS);
	struct audit_event ev = {.org_id = PQgetvalue(r, i, 1),
				 .actor_type = "system",
				 .action = "device.offline",
				 .resource = "devices",
				 .resource_id = PQgetvalue(r, i, 0),
				 .details = d};
	int rc = d != NULL ? audit_write(c, &ev) : BZ_ERR_NOMEM;

	json_decref(d);
	return rc;
}

/* One batch in one transaction. *N gets the devices marked. */
static int sweep_batch(PGconn *c, int64_t now, int *n)
{
	char now_s[24], missed[8], batch[16];
	int rc = 0;

	*n = 0;
	snprintf(now_s, sizeof(now_s), "%lld", (long long)now);
	snprintf(missed, sizeof(missed), "%d", AGENTS_OFFLINE_MISSED_INTERVALS);
	snprintf(batch, sizeof(batch), "%d", AGENTS_SWEEP_BATCH);
	const char *p[3] = {now_s, missed, batch};
	if (db_begin(c) != 0)
		return BZ_ERR_DB;
	PGresult *r = db_query(c, sweep_sql, 3, p, NULL);
	if (r == NULL) {
		db_rollback(c);
		return BZ_ERR_DB;
	}
	for (int i = 0; rc == 0 && i < PQntuples(r); i++)
		rc = audit_offline(c, r, i);
	*n = PQntuples(r);
	PQclear(r);
	if (rc == 0 && db_commit(c) != 0)
		rc = BZ_ERR_DB;
	if (rc != 0) {
		db_rollback(c);
		*n = 0;
	}
	return rc;
}

int agents_liveness_sweep(PGconn *c, int64_t now, long *marked)
{
	long total = 0;
	int n, rc;

	/* A full batch may mean more are due; a batch that is not full ends
	 * the sweep (rows skipped as locked are fresh, or the next sweep's). */
	do {
		rc = sweep_batch(c, now, &n);
		total += n;
	} while (rc == 0 && n == AGENTS_SWEEP_BATCH);
	if (marked != NULL)
		*marked = total;
	return rc;
}

int agents_liveness_back_online(PGconn *c, const struct agents_agent *a, const char *ip)
{
	static const char *sql = "UPDATE devices SET online = true"
				 " WHERE id = $1::uuid AND online = false RETURNING 1";
	const char *p[1] = {a->device_id};
	PGresult *r = db_query(c, sql, 1, p, NULL);

	if (r == NULL)
		return BZ_ERR_DB;
	int flipped = PQntuples(r) == 1;
	PQclear(r);
	if (!flipped)
		return 0;
	struct audit_event ev = {.org_id = a->org_id,
				 .actor_type = "agent",
				 .actor_id = a->device_id,
				 .action = "device.online",
				 .resource = "devices",
				 .resource_id = a->device_id,
				 .ip_address = ip};
	return audit_write(c, &ev);
}
