/*
 * webhook_worker.c — the delivery worker inside `serve` (webhooks.h): one
 * thread with its own database connection, reconnecting after failures,
 * running webhook_deliver_pass() every WEBHOOK_WORKER_INTERVAL_MS (at once
 * again while a pass finds a full batch). The lifecycle follows the audit
 * worker's (audit/retention.c).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

#include "common/clock.h"
#include "common/log.h"
#include "server/db/db.h"
#include "server/outbound/webhooks_internal.h"

#define BATCH 10      /* deliveries claimed per pass */
#define RETRY_MS 5000 /* after a failed pass */

static struct {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv; /* on CLOCK_MONOTONIC */
	int started;
	atomic_int stop;
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

/* One pass on *C, (re)connecting first. Returns the deliveries sent, or
 * -1 after a failure. */
static int pass(PGconn **c, const struct config *cfg)
{
	int sent = 0;

	if (*c == NULL || PQstatus(*c) != CONNECTION_OK) {
		PQfinish(*c);
		if ((*c = db_connect(cfg->database_url)) == NULL) {
			log_warn("webhook.worker.failed", "reason",
				 "cannot connect to the database", NULL);
			return -1;
		}
	}
	if (webhook_deliver_pass(*c, cfg, BATCH, &W.stop, &sent) != 0) {
		log_warn("webhook.worker.failed", NULL);
		return -1;
	}
	return sent;
}

static void *worker_main(void *arg)
{
	const struct config *cfg = arg;
	int64_t next = bz_monotonic_ms();
	PGconn *c = NULL;

	while (!wait_until(next)) {
		int sent = pass(&c, cfg);
		int64_t wait = sent < 0	       ? RETRY_MS
			       : sent >= BATCH ? 0
					       : cfg->webhook_worker_interval_ms;
		next = bz_monotonic_ms() + wait;
	}
	PQfinish(c);
	return NULL;
}

int webhook_worker_start(const struct config *cfg)
{
	pthread_condattr_t ca;
	char ms[16];

	if (W.started || cfg->webhook_worker_interval_ms <= 0)
		return 0;
	if (cfg->secrets[SECRET_APP_ENCRYPTION_KEY] == NULL)
		log_warn("webhook.worker.no_key", "reason",
			 "APP_ENCRYPTION_KEY is not set: deliveries cannot be signed", NULL);
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
	snprintf(ms, sizeof(ms), "%d", cfg->webhook_worker_interval_ms);
	log_info("webhook.worker.started", "intervalMs", ms, NULL);
	return 0;
fail:
	log_error("webhook.worker.failed", "reason", "cannot start the thread", NULL);
	return BZ_ERR_INTERNAL;
}

void webhook_worker_stop(void)
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
	log_info("webhook.worker.stopped", NULL);
}
