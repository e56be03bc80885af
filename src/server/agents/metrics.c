/*
 * metrics.c — the metrics history of devices: the aggregated series behind
 * GET /api/v1/devices/:id/metrics, and the partition maintenance of
 * device_metrics (migration 0019). The heartbeat writes the rows
 * (heartbeat.c, in the statement that records the heartbeat).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/text.h"
#include "server/agents/agents_metrics.h"
#include "server/db/db.h"

static const char *const metric_names[AGENTS_METRIC_COUNT] = {"cpuPercent",  "memoryPercent",
							      "diskPercent", "load1",
							      "load5",	     "load15"};

const char *agents_metric_name(enum agents_metric m)
{
	return (unsigned)m < AGENTS_METRIC_COUNT ? metric_names[m] : "";
}

int agents_metrics_bucket_seconds(const char *name)
{
	static const struct {
		const char *name;
		int s;
	} tab[] = {{"1m", 60},	 {"5m", 300},	{"15m", 900},
		   {"1h", 3600}, {"6h", 21600}, {"1d", 86400}};

	for (size_t i = 0; name != NULL && i < sizeof(tab) / sizeof(*tab); i++)
		if (strcmp(name, tab[i].name) == 0)
			return tab[i].s;
	return 0;
}

/* The device, if SCOPE sees it: $1 org ids, $2 site ids, $3 device id. */
static const char *visible_sql = "SELECT 1 FROM devices d"
				 " WHERE d.id = $3::uuid AND d.org_id = ANY($1::uuid[])"
				 "   AND ($2::uuid[] IS NULL OR d.site_id = ANY($2::uuid[]))";

/* A percentage of two byte counts as float8 (numeric arithmetic cost
 * ~5x more per row); NULL when either is missing or the total is not
 * positive. */
#define PCT(used, total) "100.0::float8 * " used " / CASE WHEN " total " > 0 THEN " total " END"

/* Buckets of device $1: ts between $2 and $3 (epoch seconds, the partition
 * key, so the planner prunes to the days asked for), $4 seconds wide,
 * aligned to the epoch. Every column read is in the partitions' covering
 * (device_id, ts) index (migration 0019): an index-only scan, one index
 * range per day. The device's organization is not filtered here: device
 * ids are unique, its organization never changes, and the caller's scope
 * was checked on devices just before (a filter on org_id also made the
 * planner misjudge the row count by 100x). Columns: bucket start, samples,
 * then avg and max of each series in enum agents_metric order. */
static const char *series_sql =
	"SELECT extract(epoch FROM b)::bigint, count(*), avg(cpu_percent), max(cpu_percent),"
	"       avg(mem), max(mem), avg(disk), max(disk), avg(load1), max(load1),"
	"       avg(load5), max(load5), avg(load15), max(load15)"
	"  FROM (SELECT date_bin(make_interval(secs => $4::int), m.ts, timestamptz 'epoch') AS b,"
	"               m.cpu_percent, m.load1, m.load5, m.load15,"
	"               " PCT(
		"m.mem_used_bytes",
		"m.mem_total_bytes") " AS mem,"
				     "               " PCT(
					     "m.disk_used_bytes",
					     "m.disk_total_bytes") " AS disk"
								   "          FROM device_metrics m"
								   "         WHERE m.device_id = $1::uuid"
								   "           AND m.ts >= to_timestamp($2::bigint) AND m.ts < to_timestamp($3::bigint)) s"
								   " GROUP BY b ORDER BY b";

/* Fills point P from row I of R (columns of series_sql). */
static void point_from_row(const PGresult *r, int i, struct agents_metrics_point *p)
{
	p->t = strtoll(PQgetvalue(r, i, 0), NULL, 10);
	p->samples = strtol(PQgetvalue(r, i, 1), NULL, 10);
	for (int m = 0; m < AGENTS_METRIC_COUNT; m++) {
		int col = 2 + 2 * m;
		p->has[m] = !PQgetisnull(r, i, col) && !PQgetisnull(r, i, col + 1);
		p->avg[m] = p->has[m] ? strtod(PQgetvalue(r, i, col), NULL) : 0;
		p->max[m] = p->has[m] ? strtod(PQgetvalue(r, i, col + 1), NULL) : 0;
		/* NaN/Inf cannot be JSON; real columns could hold them. */
		if (!isfinite(p->avg[m]) || !isfinite(p->max[m]))
			p->has[m] = 0;
	}
}

int agents_metrics_series(PGconn *c, const struct tenancy_scope *scope, const char *id,
			  int64_t from_s, int64_t to_s, int bucket_s,
			  struct agents_metrics_point **out, size_t *n)
{
	char from[24], to[24], bucket[16];
	PGresult *r;

	*out = NULL;
	*n = 0;
	if (bucket_s <= 0 || from_s >= to_s || to_s - from_s > AGENTS_METRICS_MAX_RANGE_S ||
	    (to_s - from_s + bucket_s - 1) / bucket_s > AGENTS_METRICS_MAX_POINTS)
		return BZ_ERR_INVALID;
	if (!is_uuid(id))
		return BZ_ERR_NOT_FOUND;
	const char *vp[3] = {scope->org_ids_pg, scope->site_ids_pg, id};
	if ((r = db_query(c, visible_sql, 3, vp, NULL)) == NULL)
		return BZ_ERR_DB;
	int visible = PQntuples(r) == 1;
	PQclear(r);
	if (!visible)
		return BZ_ERR_NOT_FOUND;
	snprintf(from, sizeof(from), "%lld", (long long)from_s);
	snprintf(to, sizeof(to), "%lld", (long long)to_s);
	snprintf(bucket, sizeof(bucket), "%d", bucket_s);
	const char *p[4] = {id, from, to, bucket};
	if ((r = db_query(c, series_sql, 4, p, NULL)) == NULL)
		return BZ_ERR_DB;
	int rows = PQntuples(r);
	if (rows > 0 && (*out = calloc((size_t)rows, sizeof(**out))) == NULL) {
		PQclear(r);
		return BZ_ERR_NOMEM;
	}
	for (int i = 0; i < rows; i++)
		point_from_row(r, i, &(*out)[i]);
	*n = (size_t)rows;
	PQclear(r);
	return 0;
}

int agents_metrics_maintain(PGconn *c, int64_t now, int retention_days,
			    struct agents_metrics_maintenance *out)
{
	static const char *sql = "SELECT created, dropped, moved, skipped"
				 "  FROM device_metrics_maintain(to_timestamp($1::bigint), $2::int,"
				 "                               $3::int)";
	char now_s[24], ahead[8], days[16];
	PGresult *r;

	memset(out, 0, sizeof(*out));
	if (retention_days < 1 || retention_days > 3650 || now <= 0)
		return BZ_ERR_INVALID;
	snprintf(now_s, sizeof(now_s), "%lld", (long long)now);
	snprintf(ahead, sizeof(ahead), "%d", AGENTS_METRICS_DAYS_AHEAD);
	snprintf(days, sizeof(days), "%d", retention_days);
	const char *p[3] = {now_s, ahead, days};
	if ((r = db_query(c, sql, 3, p, NULL)) == NULL)
		return BZ_ERR_DB;
	if (PQntuples(r) == 1) {
		out->created = atoi(PQgetvalue(r, 0, 0));
		out->dropped = atoi(PQgetvalue(r, 0, 1));
		out->moved = atoll(PQgetvalue(r, 0, 2));
		out->skipped = atoi(PQgetvalue(r, 0, 3));
	}
	PQclear(r);
	return 0;
}
