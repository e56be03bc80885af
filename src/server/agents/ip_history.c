/*
 * ip_history.c — the source addresses of a device (checklist G7; table
 * device_ip_history, migration 0013; docs/probes-and-addresses.md).
 *
 * A device keeps its last 20 addresses with when each was first and last
 * seen. The hot path stays one statement: a heartbeat from the device's
 * current address writes nothing here, because the current address's last
 * sighting is the device's own last_seen_at (read back by
 * agents_ip_history_json()). Only a move to another address touches the
 * table, inside the heartbeat's transaction: the old address's row gets the
 * device's last_seen_at, the new one is inserted or brought up to date, and
 * the rows beyond the 20 most recently seen are pruned.
 *
 * agent.source.ip.changed is written for a move to an address at most once
 * per AGENT_IP_CHANGE_DEDUP_SECONDS (default one day) per device and
 * address, so an agent flapping between two networks writes one row for
 * each address a day rather than one per heartbeat. The window is judged
 * against bz_now() (the test clock moves it). An address pruned from the
 * 20 loses its memory: a device cycling through more than 20 addresses is
 * bounded only by its heartbeat rate limit (R3).
 */
#include <stdio.h>
#include <string.h>

#include "server/agents/agents.h"
#include "server/db/db.h"

#define IP_HISTORY_MAX 20

int agents_ip_history_seed(PGconn *c, const char *device_id, const char *org_id, const char *ip,
			   int64_t now)
{
	static const char *sql =
		"INSERT INTO device_ip_history (device_id, org_id, ip, first_seen_at, last_seen_at)"
		" VALUES ($1::uuid, $2::uuid, $3::inet, to_timestamp($4::bigint),"
		"         to_timestamp($4::bigint))"
		" ON CONFLICT (device_id, ip) DO NOTHING";
	char now_s[24];
	const char *p[4] = {device_id, org_id, ip, now_s};

	if (ip == NULL)
		return 0;
	snprintf(now_s, sizeof(now_s), "%lld", (long long)now);
	return db_exec(c, sql, 4, p);
}

/* The address the device is leaving: its last sighting is the device's
 * last_seen_at (or its enrolment), taken before the heartbeat overwrites
 * it. FOR UPDATE: concurrent heartbeats of the device take turns. */
static const char *leave_sql =
	"INSERT INTO device_ip_history (device_id, org_id, ip, first_seen_at, last_seen_at)"
	" SELECT d.id, d.org_id, d.last_ip, coalesce(d.last_seen_at, d.enrolled_at),"
	"        coalesce(d.last_seen_at, d.enrolled_at)"
	"   FROM devices d WHERE d.id = $1::uuid AND d.last_ip IS NOT NULL FOR UPDATE"
	" ON CONFLICT (device_id, ip) DO UPDATE"
	"    SET last_seen_at = greatest(device_ip_history.last_seen_at, excluded.last_seen_at)";

/* The address it arrives at. Every part of the statement sees the table as
 * it was before it, so "recent" is the address's previous event time: an
 * event was written for it within the window ($5 s before $4). $6: the move
 * is audited at all (the device had an address). Returns 1 to write the
 * event (and records its time), 0 when it is a repeat. */
static const char *arrive_sql =
	"WITH prev AS (SELECT coalesce((SELECT last_event_at"
	"                                      > to_timestamp($4::bigint) - make_interval(secs => $5::int)"
	"                                 FROM device_ip_history"
	"                                WHERE device_id = $1::uuid AND ip = $3::inet), false) AS recent),"
	" up AS (INSERT INTO device_ip_history (device_id, org_id, ip, first_seen_at, last_seen_at,"
	"               last_event_at)"
	"        SELECT $1::uuid, $2::uuid, $3::inet, now(), now(),"
	"               CASE WHEN $6::int = 1 AND NOT recent THEN to_timestamp($4::bigint) END FROM prev"
	"        ON CONFLICT (device_id, ip) DO UPDATE SET last_seen_at = excluded.last_seen_at,"
	"           last_event_at = coalesce(excluded.last_event_at, device_ip_history.last_event_at))"
	" SELECT (NOT recent)::int FROM prev";

static const char *prune_sql =
	"DELETE FROM device_ip_history WHERE device_id = $1::uuid AND ip NOT IN"
	" (SELECT ip FROM device_ip_history WHERE device_id = $1::uuid"
	"   ORDER BY last_seen_at DESC, first_seen_at DESC LIMIT $2::int)";

int agents_ip_history_move(PGconn *c, const struct agents_agent *a, const char *ip, int dedup_s,
			   int64_t now, int *audit)
{
	char now_s[24], dedup[16], max_s[16];
	const char *lp[1] = {a->device_id};
	const char *ap[6] = {a->device_id, a->org_id, ip, now_s, dedup, a->old_ip[0] ? "1" : "0"};
	const char *pp[2] = {a->device_id, max_s};
	PGresult *r;
	int rc;

	*audit = 0;
	snprintf(now_s, sizeof(now_s), "%lld", (long long)now);
	snprintf(dedup, sizeof(dedup), "%d", dedup_s);
	snprintf(max_s, sizeof(max_s), "%d", IP_HISTORY_MAX);
	if (a->old_ip[0] && (rc = db_exec(c, leave_sql, 1, lp)) != 0)
		return rc;
	if ((r = db_query(c, arrive_sql, 6, ap, NULL)) == NULL)
		return BZ_ERR_DB;
	*audit = a->old_ip[0] && PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), "1") == 0;
	PQclear(r);
	return db_exec(c, prune_sql, 2, pp);
}

int agents_ip_history_json(PGconn *c, const char *device_id, json_t **out)
{
	static const char *sql = "SELECT host(h.ip), " DB_TS("h.first_seen_at") ", " DB_TS(
		"s.seen") "  FROM device_ip_history h JOIN devices d ON d.id = h.device_id,"
			  "       LATERAL (SELECT CASE WHEN h.ip = d.last_ip AND d.last_seen_at IS NOT NULL"
			  "                            THEN greatest(h.last_seen_at, d.last_seen_at)"
			  "                            ELSE h.last_seen_at END AS seen) s"
			  " WHERE h.device_id = $1::uuid"
			  " ORDER BY s.seen DESC, h.first_seen_at DESC LIMIT $2::int";
	char max_s[16];
	const char *p[2] = {device_id, max_s};
	PGresult *r;

	*out = NULL;
	snprintf(max_s, sizeof(max_s), "%d", IP_HISTORY_MAX);
	if ((r = db_query(c, sql, 2, p, NULL)) == NULL)
		return BZ_ERR_DB;
	json_t *arr = json_array();
	for (int i = 0; arr != NULL && i < PQntuples(r); i++)
		json_array_append_new(arr, json_pack("{s:s,s:s,s:s}", "ip", PQgetvalue(r, i, 0),
						     "firstSeenAt", PQgetvalue(r, i, 1),
						     "lastSeenAt", PQgetvalue(r, i, 2)));
	PQclear(r);
	if (arr == NULL)
		return BZ_ERR_NOMEM;
	*out = arr;
	return 0;
}
