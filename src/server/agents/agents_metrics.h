/*
 * agents_metrics.h — metrics history and liveness of devices: the
 * device_metrics time series (migration 0019) and its partition
 * maintenance (metrics.c), the offline sweep and the back-online transition
 * (liveness.c), and the worker of `serve` that runs both (liveness_worker.c).
 * docs/architecture.md, "Metrics history and liveness", explains the model.
 */
#ifndef BZ_AGENTS_METRICS_H
#define BZ_AGENTS_METRICS_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "server/agents/agents.h"
#include "server/config.h"
#include "server/tenancy/tenancy.h"

/* ---- The series (metrics.c) ---- */

/* Longest time range one metrics query may cover, in seconds (31 days:
 * the default retention plus a day), and most points in one answer. */
#define AGENTS_METRICS_MAX_RANGE_S (31 * 86400LL)
#define AGENTS_METRICS_MAX_POINTS 1500

/* The series of a point, in answer order. */
enum agents_metric {
	AGENTS_METRIC_CPU,    /* cpuPercent */
	AGENTS_METRIC_MEMORY, /* memoryPercent: 100 * used / total bytes */
	AGENTS_METRIC_DISK,   /* diskPercent: 100 * used / total bytes */
	AGENTS_METRIC_LOAD1,
	AGENTS_METRIC_LOAD5,
	AGENTS_METRIC_LOAD15,
	AGENTS_METRIC_COUNT
};

/* One bucket that holds at least one sample. */
struct agents_metrics_point {
	int64_t t;    /* bucket start, epoch seconds (buckets align to 1970-01-01 UTC) */
	long samples; /* heartbeats in the bucket */
	int has[AGENTS_METRIC_COUNT]; /* 0: no sample of the bucket carried this metric */
	double avg[AGENTS_METRIC_COUNT], max[AGENTS_METRIC_COUNT];
};

/* The JSON name of series M ("cpuPercent", ...). Static storage. */
const char *agents_metric_name(enum agents_metric m);

/* Seconds of bucket NAME: "1m", "5m", "15m", "1h", "6h" or "1d"; 0 for
 * anything else. */
int agents_metrics_bucket_seconds(const char *name);

/*
 * The series of device ID (visible in SCOPE, else BZ_ERR_NOT_FOUND) for
 * samples with FROM_S <= ts < TO_S (epoch seconds), averaged and maximized
 * per BUCKET_S-second bucket: *OUT (malloc'd, caller frees; NULL when
 * empty) gets *N points in time order, empty buckets left out. The range
 * must already be checked (FROM_S < TO_S, at most AGENTS_METRICS_MAX_RANGE_S
 * and AGENTS_METRICS_MAX_POINTS buckets; BZ_ERR_INVALID otherwise). The
 * partition key is in the WHERE clause, so only the partitions of the days
 * asked for are read. Returns 0, BZ_ERR_NOT_FOUND, BZ_ERR_INVALID,
 * BZ_ERR_NOMEM or BZ_ERR_DB.
 */
int agents_metrics_series(PGconn *c, const struct tenancy_scope *scope, const char *id,
			  int64_t from_s, int64_t to_s, int bucket_s,
			  struct agents_metrics_point **out, size_t *n);

/* Partitions device_metrics has ahead of today (UTC days after today's). */
#define AGENTS_METRICS_DAYS_AHEAD 3

struct agents_metrics_maintenance {
	int created;	 /* day partitions created */
	int dropped;	 /* day partitions dropped (older than the retention) */
	long long moved; /* rows moved out of the DEFAULT partition */
	int skipped;	 /* days of DEFAULT rows no partition can hold (migration 0021) */
};

/*
 * Partition maintenance of device_metrics at time NOW (epoch seconds,
 * bz_now()): creates the UTC day partitions of today and
 * AGENTS_METRICS_DAYS_AHEAD days ahead, moves rows the DEFAULT partition
 * caught into partitions of their own days, and drops (DROP TABLE) the
 * partitions of days before today minus RETENTION_DAYS (1..3650). Runs the
 * SECURITY DEFINER function device_metrics_maintain() (migration 0019), so
 * breeze_app needs no ownership; concurrent runs are serialized by its
 * advisory lock and idempotent. Returns 0, BZ_ERR_INVALID or BZ_ERR_DB.
 */
int agents_metrics_maintain(PGconn *c, int64_t now, int retention_days,
			    struct agents_metrics_maintenance *out);

/* ---- Liveness (liveness.c) ---- */

/* A device is offline after this many missed heartbeat intervals. */
#define AGENTS_OFFLINE_MISSED_INTERVALS 3

/* Devices one sweep transaction marks at most; a sweep repeats until done. */
#define AGENTS_SWEEP_BATCH 1000

/*
 * The offline sweep at time NOW (epoch seconds, bz_now()): every active
 * device announced online whose last_seen_at is older than
 * AGENTS_OFFLINE_MISSED_INTERVALS of its heartbeat interval is marked
 * offline (devices.online = false) by one UPDATE per batch of
 * AGENTS_SWEEP_BATCH, with a device.offline audit row (actor system) each in
 * the same transaction. Rows another sweep or a heartbeat holds are skipped
 * (SKIP LOCKED) and the UPDATE re-checks online, so two instances sweeping
 * at once write one row per transition. *MARKED (may be NULL) gets the
 * number of devices marked. Returns 0 or BZ_ERR_DB / BZ_ERR_NOMEM.
 */
int agents_liveness_sweep(PGconn *c, int64_t now, long *marked);

/*
 * Inside the caller's transaction: if device A is announced offline, marks
 * it online and writes its device.online audit row (actor the agent, from
 * address IP, may be NULL). A concurrent heartbeat of the same device waits
 * on the row and then finds it online: one row per transition. Returns 0
 * or BZ_ERR_DB.
 */
int agents_liveness_back_online(PGconn *c, const struct agents_agent *a, const char *ip);

/* ---- The worker inside `serve` (liveness_worker.c) ---- */

/*
 * Starts the thread that runs agents_metrics_maintain() at once and then
 * every CFG->metrics_maintenance_interval_s, and agents_liveness_sweep()
 * every CFG->device_sweep_interval_s (0 = not that job), on its own
 * connection to CFG->database_url. CFG must outlive the worker. Returns 0
 * (also when both are off) or BZ_ERR_INTERNAL.
 */
int agents_liveness_worker_start(const struct config *cfg);

/* Stops and joins the worker; no-op when not started. */
void agents_liveness_worker_stop(void);

/*
 * `breeze-server maintain`: one maintenance run and one sweep on C at
 * bz_now() with the configured retention, reported on REPORT. Returns 0
 * or a negative bz_err.
 */
int agents_maintain_once(PGconn *c, const struct config *cfg, FILE *report);

#endif
