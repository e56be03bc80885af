/*
 * webhook_worker.c — the delivery senders inside `serve` (webhooks.h):
 * WEBHOOK_WORKER_THREADS threads (common/periodic.h), each with its own
 * database connection, reconnecting after failures. Each claims one due
 * delivery at a time (webhook_deliver_pass(): the fairest one, at most
 * WEBHOOK_ORG_MAX_IN_FLIGHT per organization), sends it and claims again
 * at once; with nothing due it sleeps WEBHOOK_WORKER_INTERVAL_MS. So a
 * receiver that never answers holds at most its organization's cap of
 * senders, for at most one attempt's timeout each, while the other
 * senders serve the other organizations.
 */
#include <stdio.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/periodic.h"
#include "server/db/db.h"
#include "server/outbound/webhooks_internal.h"

#define BATCH 1	      /* deliveries claimed per pass of one sender */
#define RETRY_MS 5000 /* after a failed pass */

static struct bz_periodic W = BZ_PERIODIC_INIT;

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
	if (webhook_deliver_pass(*c, cfg, BATCH, bz_periodic_stop_flag(&W), &sent) != 0) {
		log_warn("webhook.worker.failed", NULL);
		return -1;
	}
	return sent;
}

static void *sender_main(void *arg)
{
	const struct config *cfg = arg;
	int64_t next = bz_monotonic_ms();
	PGconn *c = NULL;

	while (!bz_periodic_wait_until(&W, next)) {
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
	char ms[16], n[16], cap[16];

	if (cfg->webhook_worker_interval_ms <= 0)
		return 0;
	if (cfg->secrets[SECRET_APP_ENCRYPTION_KEY] == NULL)
		log_warn("webhook.worker.no_key", "reason",
			 "APP_ENCRYPTION_KEY is not set: deliveries cannot be signed", NULL);
	W.arg = (void *)cfg;
	if (bz_periodic_start(&W, cfg->webhook_worker_threads, sender_main) != 0) {
		log_error("webhook.worker.failed", "reason", "cannot start the threads", NULL);
		return BZ_ERR_INTERNAL;
	}
	snprintf(ms, sizeof(ms), "%d", cfg->webhook_worker_interval_ms);
	snprintf(n, sizeof(n), "%d", cfg->webhook_worker_threads);
	snprintf(cap, sizeof(cap), "%d", cfg->webhook_org_max_in_flight);
	log_info("webhook.worker.started", "intervalMs", ms, "threads", n, "orgMaxInFlight", cap,
		 NULL);
	return 0;
}

void webhook_worker_stop(void)
{
	if (!W.started)
		return;
	bz_periodic_stop(&W);
	log_info("webhook.worker.stopped", NULL);
}
