/*
 * liveness_worker.c — the thread of `serve` that keeps device_metrics
 * partitioned (agents_metrics_maintain, at start and then every
 * METRICS_MAINTENANCE_INTERVAL_SECONDS) and sweeps for offline devices
 * (agents_liveness_sweep, every DEVICE_SWEEP_INTERVAL_SECONDS), and the
 * one-shot run of `breeze-server maintain`. Every instance may run it:
 * both jobs are safe to run concurrently (agents_metrics.h).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "server/agents/agents_metrics.h"
#include "server/db/db.h"

/* A failed job is retried this soon rather than a whole interval later. */
#define RETRY_MS 10000

static struct {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv; /* on CLOCK_MONOTONIC */
	int started;
	atomic_int stop;
	const struct config *cfg;
} W = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* Sleeps until monotonic time DUE_MS or until stopped. Returns 1 if
 * stopped. */
static int wait_until(int64_t due_ms)
{
	struct timespec ts;
	int stopped;

	pthread_mutex_lock(&W.mu);
	while (!atomic_load(&W.stop)) {
		int64_t left = due_ms - bz_monotonic_ms();
		if (left <= 0)
			break;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += (time_t)(left / 1000);
		ts.tv_nsec += (long)(left % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&W.cv, &W.mu, &ts);
	}
	stopped = atomic_load(&W.stop);
	pthread_mutex_unlock(&W.mu);
	return stopped;
}

/* (Re)connects *C when it is not usable. Returns 0 or BZ_ERR_DB. */
static int ensure_conn(PGconn **c)
{
	if (*c != NULL && PQstatus(*c) == CONNECTION_OK)
		return 0;
	PQfinish(*c);
	*c = db_connect(W.cfg->database_url);
	return *c != NULL ? 0 : BZ_ERR_DB;
}

static int run_maintain(PGconn **c)
{
	struct agents_metrics_maintenance m;
	char created[16], dropped[16], moved[24], skipped[16];

	if (ensure_conn(c) != 0 ||
	    agents_metrics_maintain(*c, bz_now(), W.cfg->metrics_retention_days, &m) != 0) {
		log_warn("metrics.maintenance.failed", NULL);
		return BZ_ERR_DB;
	}
	snprintf(created, sizeof(created), "%d", m.created);
	snprintf(dropped, sizeof(dropped), "%d", m.dropped);
	snprintf(moved, sizeof(moved), "%lld", m.moved);
	log_info("metrics.maintenance.done", "created", created, "dropped", dropped, "movedRows",
		 moved, NULL);
	if (m.skipped > 0) {
		snprintf(skipped, sizeof(skipped), "%d", m.skipped);
		log_warn("metrics.maintenance.skipped_days", "days", skipped, NULL);
	}
	return 0;
}

static int run_sweep(PGconn **c)
{
	long n = 0;
	char marked[24];

	if (ensure_conn(c) != 0 || agents_liveness_sweep(*c, bz_now(), &n) != 0) {
		log_warn("devices.sweep.failed", NULL);
		return BZ_ERR_DB;
	}
	if (n > 0) {
		snprintf(marked, sizeof(marked), "%ld", n);
		log_info("devices.sweep.offline", "devices", marked, NULL);
	}
	return 0;
}

static void *worker_main(void *arg)
{
	const struct config *cfg = arg;
	int64_t mt_ms = (int64_t)cfg->metrics_maintenance_interval_s * 1000,
		sw_ms = (int64_t)cfg->device_sweep_interval_s * 1000;
	int64_t now = bz_monotonic_ms();
	int64_t next_mt = mt_ms > 0 ? now : INT64_MAX,
		next_sw = sw_ms > 0 ? now + sw_ms : INT64_MAX;
	PGconn *c = NULL;

	while (!wait_until(next_mt < next_sw ? next_mt : next_sw)) {
		now = bz_monotonic_ms();
		if (now >= next_mt)
			next_mt = bz_monotonic_ms() +
				  (run_maintain(&c) == 0 || mt_ms < RETRY_MS ? mt_ms : RETRY_MS);
		if (now >= next_sw && !atomic_load(&W.stop))
			next_sw = bz_monotonic_ms() +
				  (run_sweep(&c) == 0 || sw_ms < RETRY_MS ? sw_ms : RETRY_MS);
	}
	PQfinish(c);
	return NULL;
}

int agents_liveness_worker_start(const struct config *cfg)
{
	pthread_condattr_t ca;

	if (W.started ||
	    (cfg->metrics_maintenance_interval_s <= 0 && cfg->device_sweep_interval_s <= 0))
		return 0;
	W.cfg = cfg;
	atomic_store(&W.stop, 0);
	if (pthread_condattr_init(&ca) != 0)
		goto fail;
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	int err = pthread_cond_init(&W.cv, &ca);
	pthread_condattr_destroy(&ca);
	if (err != 0)
		goto fail;
	if (pthread_create(&W.thread, NULL, worker_main, (void *)cfg) != 0) {
		pthread_cond_destroy(&W.cv);
		goto fail;
	}
	W.started = 1;
	return 0;
fail:
	log_error("devices.worker.failed", "reason", "cannot start the thread", NULL);
	return BZ_ERR_INTERNAL;
}

void agents_liveness_worker_stop(void)
{
	if (!W.started)
		return;
	pthread_mutex_lock(&W.mu);
	atomic_store(&W.stop, 1);
	pthread_cond_signal(&W.cv);
	pthread_mutex_unlock(&W.mu);
	pthread_join(W.thread, NULL);
	pthread_cond_destroy(&W.cv);
	W.started = 0;
}

int agents_maintain_once(PGconn *c, const struct config *cfg, FILE *report)
{
	struct agents_metrics_maintenance m;
	long n = 0;
	int64_t now = bz_now();
	int rc = agents_metrics_maintain(c, now, cfg->metrics_retention_days, &m);

	if (rc != 0)
		return rc;
	fprintf(report,
		"metrics partitions: %d created, %d dropped (retention %d days), %lld rows moved "
		"from the default partition\n",
		m.created, m.dropped, cfg->metrics_retention_days, m.moved);
	if (m.skipped > 0)
		fprintf(report,
			"metrics partitions: %d day(s) of the default partition skipped (rows "
			"outside 2000-01-01..9999-12-30 stay there)\n",
			m.skipped);
	if ((rc = agents_liveness_sweep(c, now, &n)) != 0)
		return rc;
	fprintf(report, "devices marked offline: %ld\n", n);
	return 0;
}
