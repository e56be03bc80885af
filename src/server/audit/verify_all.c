/*
 * verify_all.c — one verification of every audit chain, as the worker of
 * `serve` runs it every AUDIT_VERIFY_INTERVAL_SECONDS (checklist L4): its
 * outcome goes to the log and to the metrics registry
 * (breeze_audit_chain_verify_last_*), so an alert fires when a chain breaks
 * or when verification stops running.
 */
#include <stdio.h>
#include <stdlib.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "common/metrics.h"
#include "server/audit/audit_chain.h"

int audit_verify_all(PGconn *conn, const struct audit_verify_opts *opts, size_t *n_chains,
		     size_t *n_broken)
{
	char(*ids)[37] = NULL;
	size_t n = 0, broken = 0;
	long long rows = 0;
	int64_t t0 = bz_monotonic_ms();
	int rc;

	*n_chains = *n_broken = 0;
	if ((rc = audit_chain_list(conn, &ids, &n)) != 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		struct audit_report rep;
		if ((rc = audit_verify_chain(conn, ids[i], opts, &rep)) != 0) {
			audit_report_free(&rep);
			goto out;
		}
		rows += rep.rows_checked;
		if (!rep.ok) {
			broken++;
			log_error("audit.verify.broken", "chainId", ids[i], NULL);
		}
		audit_report_free(&rep);
	}
	*n_chains = n;
	*n_broken = broken;
	metrics_gauge_set(METRIC_AUDIT_VERIFY_OK, broken == 0);
	metrics_gauge_set(METRIC_AUDIT_VERIFY_BROKEN, (int64_t)broken);
	metrics_gauge_set(METRIC_AUDIT_VERIFY_TIME, bz_now());
	char c[24], b[24], r[24], ms[24];
	snprintf(c, sizeof(c), "%zu", n);
	snprintf(b, sizeof(b), "%zu", broken);
	snprintf(r, sizeof(r), "%lld", rows);
	snprintf(ms, sizeof(ms), "%lld", (long long)(bz_monotonic_ms() - t0));
	log_kv(broken ? LOG_LEVEL_ERROR : LOG_LEVEL_INFO, "audit.verify.done", "chains", c,
	       "brokenChains", b, "rows", r, "durationMs", ms, NULL);
out:
	free(ids);
	return rc;
}
