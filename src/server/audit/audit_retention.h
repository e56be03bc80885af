/*
 * audit_retention.h — retention pruning (checklist L5) and the background
 * worker inside `serve` that runs retention and signed checkpoints.
 */
#ifndef BZ_AUDIT_RETENTION_H
#define BZ_AUDIT_RETENTION_H

#include <libpq-fe.h>
#include <stdio.h>

#include "server/config.h"

/*
 * Prunes audit rows older than each chain's retention period on ADMIN, a
 * connection as breeze_audit_admin. A chain's retention is
 * organizations.audit_retention_days, else DEFAULT_DAYS (the system chain,
 * and chains of organizations that no longer exist, use DEFAULT_DAYS).
 * For each chain (only ORG_ID when non-NULL; AUDIT_SYSTEM_CHAIN names the
 * system chain), in one transaction with breeze.allow_audit_retention = '1'
 * set locally, it deletes the oldest contiguous run of rows that all have
 * ts < now() - retention, never the head and never a row younger than the
 * cutoff, after recording an anchor (first surviving seq, checksum of the
 * last pruned row, rows pruned, the cutoff) signed with SIGNING_KEY_HEX
 * when non-NULL (audit_anchor_sign(); unsigned otherwise), and appends an
 * audit.pruned row (rows, cutoff, lastPrunedSeq, firstSeq, retentionDays)
 * to the chain in the same transaction, where it also deletes the webhook
 * deliveries of the pruned rows (any state: a payload never outlives its
 * audit row); then, in a statement of its own, the organization's
 * finished (delivered, failed) deliveries older than the cutoff and older
 * ones whose audit row is gone (docs/webhooks.md, "Retention"). A chain that
 * another retention run is pruning at the same moment is skipped. DRY_RUN
 * counts without writing. Writes one line per chain to REPORT (may be
 * NULL) and stores the total rows pruned (or that would be) in *PRUNED.
 * Returns 0, or BZ_ERR_DB if any chain failed (the others are still done).
 */
int audit_retention_run(PGconn *admin, const char *org_id, int default_days,
			const char *signing_key_hex, int dry_run, FILE *report, long long *pruned);

/*
 * Like audit_retention_run(), but every chain in scope uses OLDER_THAN_DAYS
 * (>= 0) instead of its configured retention: `audit prune
 * --older-than-days N`, an operator's explicit choice for one run. 0 means
 * "everything but the head that is older than now()", which tests need
 * (the sealing trigger stamps every row with the current time). The caller
 * refuses N < 1 when BREEZE_ENV=production. Returns 0, BZ_ERR_INVALID
 * (negative N) or BZ_ERR_DB.
 */
int audit_retention_run_older_than(PGconn *admin, const char *org_id, int older_than_days,
				   const char *signing_key_hex, int dry_run, FILE *report,
				   long long *pruned);

/* Starts the background worker for `serve` (one thread, its own database
 * connections, reconnecting after failures): about 60 s after start and
 * then every cfg->audit_retention_interval_s it runs audit_retention_run()
 * over AUDIT_ADMIN_DATABASE_URL (skipped, with a warning, when unset), and
 * every cfg->audit_checkpoint_interval_s (the first after at most 60 s) it
 * records signed checkpoints over DATABASE_URL (skipped, with a warning,
 * without AUDIT_SIGNING_KEY), and every cfg->audit_verify_interval_s (the
 * first after at most 60 s) it verifies every chain (audit_verify_all(),
 * trusting AUDIT_SIGNING_KEY's public key). An interval of 0 turns that
 * task off; with all off no thread starts. While it records checkpoints, audit_write()
 * also signs every chain's first row in the transaction that writes it.
 * CFG must outlive the worker. Returns 0 or BZ_ERR_INTERNAL. */
int audit_worker_start(const struct config *cfg);

/* Stops the worker: wakes it, cancels a retention query in progress (its
 * transaction rolls back, nothing half-pruned is left) and joins. Safe if
 * never started. */
void audit_worker_stop(void);

#endif
