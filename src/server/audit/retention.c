/*
 * retention.c — audit retention pruning (checklist L5) and the background
 * worker of `serve` that runs it and the signed checkpoints (L4).
 *
 * The database decides what may be deleted (audit_check_prune, migration
 * 0002): only breeze_audit_admin with breeze.allow_audit_retention = '1',
 * only the oldest run of a chain, never its head, and only after an anchor
 * for the new start was inserted in the same transaction. This file picks
 * the run and writes the anchor; it cannot widen what the triggers allow.
 */
#include "server/audit/audit_retention.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/text.h"
#include "common/log.h"
#include "common/periodic.h"
#include "server/audit/audit_chain.h"
#include "server/audit/audit_checkpoint.h"
#include "server/audit/audit_internal.h"
#include "server/db/db.h"

/* The worker's first runs come this soon after start, and a failed run is
 * retried after this long rather than a whole interval later. */
#define WORKER_FIRST_S 60
#define WORKER_RETRY_S 60

/* Every chain that has rows, with its retention in days: the run's
 * override ($2), else the organization's own, else the default ($3).
 * Chains come from audit_chain_heads, so the system chain and chains of
 * deleted organizations are included. */
static const char *chains_sql =
	"SELECT h.chain_id, coalesce($2::int, o.audit_retention_days, $3::int)"
	"  FROM audit_chain_heads h LEFT JOIN organizations o ON o.id = h.chain_id"
	" WHERE ($1::uuid IS NULL OR h.chain_id = $1::uuid) AND h.seq > 0"
	" ORDER BY h.chain_id";

/* Two retention runs (two `serve` instances, or serve and the CLI) must
 * not prune one chain at once: their anchors would disagree. A
 * transaction-level advisory lock per chain serializes them without
 * touching a row that writers need; the loser skips the chain. */
static const char *lock_sql =
	"SELECT pg_try_advisory_xact_lock(hashtext('breeze.audit_retention'), hashtext($1))";

/* The run to prune: the rows below both the head and the first row (in
 * seq order) that is not older than the cutoff, so every pruned row is
 * older than the cutoff even if the clock once stepped back. Returns the
 * cutoff, then — if there is anything to prune — the last pruned seq, its
 * checksum, the number of rows and the first seq. */
static const char *plan_sql =
	"WITH b AS ("
	"  SELECT (SELECT max(seq) FROM audit_log WHERE chain_id = $1::uuid) AS head,"
	"         (SELECT seq FROM audit_log WHERE chain_id = $1::uuid"
	"             AND ts >= now() - make_interval(days => $2::int)"
	"           ORDER BY seq LIMIT 1) AS young"
	"), last AS ("
	"  SELECT l.seq, l.checksum FROM audit_log l, b"
	"   WHERE l.chain_id = $1::uuid AND l.seq < least(b.head, b.young)"
	"   ORDER BY l.seq DESC LIMIT 1"
	")"
	" SELECT audit_ts_text(now() - make_interval(days => $2::int)), last.seq, last.checksum,"
	"        (SELECT count(*) FROM audit_log WHERE chain_id = $1::uuid AND seq <= last.seq),"
	"        (SELECT min(seq) FROM audit_log WHERE chain_id = $1::uuid)"
	"   FROM (SELECT 1) one LEFT JOIN last ON true";

static const char *allow_sql = "SELECT set_config('breeze.allow_audit_retention', '1', true)";

static const char *anchor_sql =
	"INSERT INTO audit_anchors (chain_id, first_seq, prev_checksum, pruned_rows, pruned_before,"
	"                           public_key, signature)"
	" VALUES ($1::uuid, $2::bigint, $3, $4::bigint, now() - make_interval(days => $5::int),"
	"         $6, $7)";

static const char *delete_sql =
	"DELETE FROM audit_log WHERE chain_id = $1::uuid AND seq <= $2::bigint";

/* A webhook delivery's payload copies its audit row's public fields
 * (migration 0014), so it never outlives the row: the deliveries of the
 * rows about to be pruned go in the same transaction, whatever their
 * state. One still pending has waited longer than the organization keeps
 * its audit log (its webhook disabled, or no worker running): it is
 * dropped, not sent late (docs/webhooks.md, "Retention"). */
static const char *deliveries_of_run_sql =
	"DELETE FROM webhook_deliveries WHERE org_id = $1::uuid AND audit_id IN"
	" (SELECT id FROM audit_log WHERE chain_id = $1::uuid AND seq <= $2::bigint)";

/* Then, in a statement of its own, the organization's finished deliveries
 * (delivered or failed, test deliveries included) older than the cutoff,
 * and any older one whose audit row is already gone. */
static const char *old_deliveries_sql =
	"DELETE FROM webhook_deliveries d WHERE d.org_id = $1::uuid"
	"   AND d.created_at < now() - make_interval(days => $2::int)"
	"   AND (d.status IN ('delivered', 'failed') OR (d.audit_id IS NOT NULL"
	"        AND NOT EXISTS (SELECT 1 FROM audit_log a WHERE a.id = d.audit_id)))";

/* The prune's own row, appended to the chain it pruned (same transaction):
 * the chain itself then says when, how much and up to where history was
 * removed. org_id / partner_id are copied from the chain's head row, which
 * puts the row in that chain. */
static const char *pruned_row_sql =
	"INSERT INTO audit_log (org_id, partner_id, actor_type, action, resource, resource_id, details)"
	" SELECT l.org_id, l.partner_id, 'system', 'audit.pruned', 'audit_log', $3, $2"
	"   FROM audit_log l WHERE l.chain_id = $1::uuid ORDER BY l.seq DESC LIMIT 1";

static void say(FILE *report, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void say(FILE *report, const char *fmt, ...)
{
	va_list ap;

	if (report == NULL)
		return;
	va_start(ap, fmt);
	vfprintf(report, fmt, ap);
	va_end(ap);
}

/* Appends the audit.pruned row for a prune of ROWS rows up to LAST_SEQ
 * (first surviving seq FIRST_SEQ) with cutoff CUTOFF to CHAIN, inside the
 * prune's transaction. Returns 0, BZ_ERR_NOMEM or BZ_ERR_DB. */
static int write_pruned_row(PGconn *c, const char *chain, long long rows, long long last_seq,
			    long long first_seq, const char *cutoff, const char *days)
{
	json_t *d = json_pack("{s:I,s:s,s:I,s:I,s:i}", "rows", (json_int_t)rows, "cutoff", cutoff,
			      "lastPrunedSeq", (json_int_t)last_seq, "firstSeq",
			      (json_int_t)first_seq, "retentionDays", atoi(days));
	char *text = d ? json_dumps(d, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	int rc = BZ_ERR_NOMEM;

	json_decref(d);
	if (text == NULL)
		return rc;
	const char *p[3] = {chain, text, chain};
	PGresult *r = db_query(c, pruned_row_sql, 3, p, NULL);
	free(text);
	if (r == NULL)
		return BZ_ERR_DB;
	rc = strcmp(PQcmdTuples(r), "1") == 0 ? 0 : BZ_ERR_DB;
	PQclear(r);
	return rc;
}

/* Deletes CHAIN's rows up to seq LAST and, first, the webhook deliveries
 * that copy them, inside the prune's transaction. Returns the audit rows
 * deleted, or -1 on a database error. */
static long long delete_run(PGconn *c, const char *chain, const char *last)
{
	const char *p[2] = {chain, last};
	long long n;

	if (db_exec(c, deliveries_of_run_sql, 2, p) != 0)
		return -1;
	PGresult *d = db_query(c, delete_sql, 2, p, NULL);
	if (d == NULL)
		return -1;
	n = atoll(PQcmdTuples(d));
	PQclear(d);
	return n;
}

/* Deletes CHAIN's finished webhook deliveries older than DAYS (a chain
 * that is no organization's has none), reporting how many. Returns 0 or
 * BZ_ERR_DB. */
static int prune_old_deliveries(PGconn *c, const char *chain, const char *days, FILE *report)
{
	const char *p[2] = {chain, days};
	PGresult *r = db_query(c, old_deliveries_sql, 2, p, NULL);

	if (r == NULL) {
		log_error("audit.retention.deliveries_failed", "chainId", chain, NULL);
		return BZ_ERR_DB;
	}
	if (strcmp(PQcmdTuples(r), "0") != 0) {
		say(report, "chain %s: removed %s finished webhook deliveries older than %s days\n",
		    chain, PQcmdTuples(r), days);
		log_info("audit.retention.deliveries", "chainId", chain, "rows", PQcmdTuples(r),
			 NULL);
	}
	PQclear(r);
	return 0;
}

/* Prunes one chain in its own transaction. *ROWS receives the rows pruned
 * (or that would be, in a dry run). Returns 0 or BZ_ERR_DB / BZ_ERR_CRYPTO
 * / BZ_ERR_INTERNAL; on error nothing of this chain changed. (A little over
 * 80 lines: the steps of one transaction in order, sharing its single
 * rollback path.) */
static int prune_chain(PGconn *c, const char *chain, const char *days, const char *seed,
		       int dry_run, FILE *report, long long *rows)
{
	PGresult *r = NULL;
	char sig[129], pub[65], first_seq[24];
	int rc = BZ_ERR_DB;

	*rows = 0;
	if (db_begin(c) != 0)
		return BZ_ERR_DB;
	const char *lp[1] = {chain};
	if ((r = db_query(c, lock_sql, 1, lp, NULL)) == NULL)
		goto out;
	if (strcmp(PQgetvalue(r, 0, 0), "t") != 0) {
		say(report, "chain %s: skipped, another retention run is pruning it\n", chain);
		rc = 0;
		goto out;
	}
	PQclear(r);
	const char *pp[2] = {chain, days};
	if ((r = db_query(c, plan_sql, 2, pp, NULL)) == NULL || PQntuples(r) != 1)
		goto out;
	const char *cutoff = PQgetvalue(r, 0, 0);
	if (PQgetisnull(r, 0, 1)) {
		say(report, "chain %s: retention %s days, cutoff %s: nothing to prune\n", chain,
		    days, cutoff);
		rc = 0;
		goto out;
	}
	const char *last = PQgetvalue(r, 0, 1), *prev = PQgetvalue(r, 0, 2),
		   *count = PQgetvalue(r, 0, 3), *first = PQgetvalue(r, 0, 4);
	long long last_seq = atoll(last), n = atoll(count);
	snprintf(first_seq, sizeof(first_seq), "%lld", last_seq + 1);
	if (dry_run) {
		say(report,
		    "chain %s: retention %s days, cutoff %s: would prune %lld rows (seq %s-%s)\n",
		    chain, days, cutoff, n, first, last);
		*rows = n;
		rc = 0;
		goto out;
	}
	const char *sig_p = NULL, *pub_p = NULL;
	if (seed != NULL) {
		if ((rc = audit_anchor_sign(seed, chain, last_seq + 1, prev, sig, pub)) != 0)
			goto out;
		sig_p = sig;
		pub_p = pub;
		rc = BZ_ERR_DB;
	}
	const char *ap[7] = {chain, first_seq, prev, count, days, pub_p, sig_p};
	if (db_exec(c, allow_sql, 0, NULL) != 0 || db_exec(c, anchor_sql, 7, ap) != 0)
		goto out;
	long long deleted = delete_run(c, chain, last);
	if (deleted < 0)
		goto out;
	/* Nothing can add rows below the head while we hold the chain, so a
	 * different count means the plan was wrong: keep everything. */
	if (deleted != n) {
		log_error("audit.retention.mismatch", "chainId", chain, "planned", count, NULL);
		rc = BZ_ERR_INTERNAL;
		goto out;
	}
	if ((rc = write_pruned_row(c, chain, n, last_seq, last_seq + 1, cutoff, days)) != 0)
		goto out;
	rc = BZ_ERR_DB;
	if (db_commit(c) != 0)
		goto out;
	say(report,
	    "chain %s: retention %s days, cutoff %s: pruned %lld rows (seq %s-%s), "
	    "chain now starts at seq %s\n",
	    chain, days, cutoff, n, first, last, first_seq);
	log_info("audit.retention.pruned", "chainId", chain, "rows", count, "firstSeq", first_seq,
		 "cutoff", cutoff, "signed", seed != NULL ? "true" : "false", NULL);
	*rows = n;
	rc = 0;
out:
	PQclear(r);
	if (PQtransactionStatus(c) != PQTRANS_IDLE)
		db_rollback(c);
	if (rc != 0) {
		say(report, "chain %s: failed, nothing pruned (see log)\n", chain);
		log_error("audit.retention.chain_failed", "chainId", chain, NULL);
	}
	return rc;
}

/* The whole run. OVERRIDE_DAYS < 0: configured retention. STOP, when
 * non-NULL, is checked between chains. */
static int run(PGconn *c, const char *org_id, int override_days, int default_days, const char *seed,
	       int dry_run, FILE *report, long long *pruned, const atomic_int *stop)
{
	char over[16], def[16], pub[65];
	int rc = 0;

	*pruned = 0;
	if (org_id != NULL && !is_uuid(org_id))
		return BZ_ERR_INVALID;
	if (default_days < 1)
		return BZ_ERR_INVALID;
	/* A bad key fails the run before anything is pruned, not chain by chain. */
	if (seed != NULL && !dry_run && audit_public_key_hex(seed, pub) != 0)
		return BZ_ERR_INVALID;
	snprintf(over, sizeof(over), "%d", override_days);
	snprintf(def, sizeof(def), "%d", default_days);
	const char *p[3] = {org_id, override_days >= 0 ? over : NULL, def};
	PGresult *r = db_query(c, chains_sql, 3, p, NULL);
	if (r == NULL)
		return BZ_ERR_DB;
	if (PQntuples(r) == 0 && org_id != NULL)
		say(report, "chain %s: no audit rows\n", org_id);
	for (int i = 0; i < PQntuples(r); i++) {
		long long n = 0;

		if (stop != NULL && atomic_load(stop))
			break;
		if (prune_chain(c, PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), seed, dry_run, report,
				&n) != 0 ||
		    (!dry_run && prune_old_deliveries(c, PQgetvalue(r, i, 0), PQgetvalue(r, i, 1),
						      report) != 0)) {
			rc = BZ_ERR_DB;
			if (PQstatus(c) != CONNECTION_OK)
				break;
		}
		*pruned += n;
	}
	PQclear(r);
	return rc;
}

int audit_retention_run(PGconn *admin, const char *org_id, int default_days,
			const char *signing_key_hex, int dry_run, FILE *report, long long *pruned)
{
	return run(admin, org_id, -1, default_days, signing_key_hex, dry_run, report, pruned, NULL);
}

int audit_retention_run_older_than(PGconn *admin, const char *org_id, int older_than_days,
				   const char *signing_key_hex, int dry_run, FILE *report,
				   long long *pruned)
{
	*pruned = 0;
	if (older_than_days < 0)
		return BZ_ERR_INVALID;
	return run(admin, org_id, older_than_days, 1, signing_key_hex, dry_run, report, pruned,
		   NULL);
}

/* ---- The worker inside `serve` ---- */

/* The worker's signing seed while it records checkpoints; read by every
 * request thread's audit_write(). */
static _Atomic(const char *) first_row_seed;

const char *audit_first_row_seed(void)
{
	return atomic_load(&first_row_seed);
}

/* The worker's thread (common/periodic.h) and what its stop reads. */
static struct bz_periodic P = BZ_PERIODIC_INIT;
static struct {
	PGcancel *cancel; /* of the retention connection while it is open; under P's lock */
	const struct config *cfg;
} W;

/* Under P's lock: replaces W.cancel with ARG (a PGcancel, or NULL). */
static void set_cancel(void *arg)
{
	PQfreeCancel(W.cancel);
	W.cancel = arg;
}

/* P's on_stop, under its lock: a first retention run over a large backlog
 * can take minutes; the cancelled transaction rolls back whole, so
 * stopping loses no work that was not redone on the next start. */
static void cancel_query(void *arg)
{
	char err[256];

	(void)arg;
	if (W.cancel != NULL)
		PQcancel(W.cancel, err, sizeof(err));
}

static void admin_close(PGconn **c)
{
	bz_periodic_locked(&P, set_cancel, NULL);
	PQfinish(*c);
	*c = NULL;
}

/* (Re)connects *C to URL when it is not usable. Returns 0 or BZ_ERR_DB. */
static int ensure_conn(PGconn **c, const char *url, int is_admin)
{
	if (*c != NULL && PQstatus(*c) == CONNECTION_OK)
		return 0;
	if (is_admin)
		admin_close(c);
	else {
		PQfinish(*c);
		*c = NULL;
	}
	if ((*c = db_connect(url)) == NULL)
		return BZ_ERR_DB;
	if (is_admin)
		bz_periodic_locked(&P, set_cancel, PQgetCancel(*c));
	return 0;
}

static int worker_retention(PGconn **admin)
{
	const struct config *cfg = W.cfg;
	long long pruned = 0;
	char rows[24], ms[24];
	int64_t t0 = bz_monotonic_ms();

	if (ensure_conn(admin, cfg->audit_admin_database_url, 1) != 0) {
		log_warn("audit.retention.failed", "reason", "cannot connect as the audit admin",
			 NULL);
		return BZ_ERR_DB;
	}
	int rc = run(*admin, NULL, -1, cfg->audit_retention_days,
		     cfg->secrets[SECRET_AUDIT_SIGNING_KEY], 0, NULL, &pruned,
		     bz_periodic_stop_flag(&P));
	snprintf(rows, sizeof(rows), "%lld", pruned);
	snprintf(ms, sizeof(ms), "%lld", (long long)(bz_monotonic_ms() - t0));
	if (rc != 0 && bz_periodic_stopping(&P)) {
		log_info("audit.retention.cancelled", "rowsPruned", rows, "durationMs", ms, NULL);
		return BZ_ERR_DB;
	}
	if (rc != 0) {
		log_warn("audit.retention.failed", "rowsPruned", rows, "durationMs", ms, NULL);
		if (PQstatus(*admin) != CONNECTION_OK)
			admin_close(admin);
		return BZ_ERR_DB;
	}
	log_info("audit.retention.done", "rowsPruned", rows, "durationMs", ms, NULL);
	return 0;
}

static int worker_checkpoint(PGconn **app)
{
	const struct config *cfg = W.cfg;
	int written = 0;

	if (ensure_conn(app, cfg->database_url, 0) != 0) {
		log_warn("audit.checkpoint.failed", "reason", "cannot connect to the database",
			 NULL);
		return BZ_ERR_DB;
	}
	if (audit_checkpoint_all(*app, cfg->secrets[SECRET_AUDIT_SIGNING_KEY], &written) != 0) {
		log_warn("audit.checkpoint.failed", NULL);
		if (PQstatus(*app) != CONNECTION_OK) {
			PQfinish(*app);
			*app = NULL;
		}
		return BZ_ERR_DB;
	}
	return 0;
}

/* Verifies every chain (audit_verify_all()), trusting the public key of
 * AUDIT_SIGNING_KEY when it is set. Returns 0 or BZ_ERR_DB. */
static int worker_verify(PGconn **app)
{
	const struct config *cfg = W.cfg;
	const char *seed = cfg->secrets[SECRET_AUDIT_SIGNING_KEY];
	char pub[65];
	const char *keys[1] = {pub};
	struct audit_verify_opts o = {0};
	size_t chains, broken;

	if (seed != NULL && audit_public_key_hex(seed, pub) == 0) {
		o.public_keys = keys;
		o.n_public_keys = 1;
	}
	if (ensure_conn(app, cfg->database_url, 0) != 0 ||
	    audit_verify_all(*app, &o, &chains, &broken) != 0) {
		log_warn("audit.verify.failed", "reason", "database error", NULL);
		if (*app != NULL && PQstatus(*app) != CONNECTION_OK) {
			PQfinish(*app);
			*app = NULL;
		}
		return BZ_ERR_DB;
	}
	return 0;
}

static int64_t min64(int64_t a, int64_t b)
{
	return a < b ? a : b;
}

static void *worker_main(void *arg)
{
	const struct config *cfg = arg;
	const int64_t never = INT64_MAX;
	int64_t ret_ms = (int64_t)cfg->audit_retention_interval_s * 1000,
		cp_ms = (int64_t)cfg->audit_checkpoint_interval_s * 1000;
	int do_ret = ret_ms > 0 && cfg->audit_admin_database_url != NULL;
	int do_cp = cp_ms > 0 && cfg->secrets[SECRET_AUDIT_SIGNING_KEY] != NULL;
	int64_t vf_ms = (int64_t)cfg->audit_verify_interval_s * 1000;
	int64_t now = bz_monotonic_ms();
	int64_t next_ret = do_ret ? now + min64(ret_ms, WORKER_FIRST_S * 1000) : never;
	int64_t next_cp = do_cp ? now + min64(cp_ms, WORKER_FIRST_S * 1000) : never;
	int64_t next_vf = vf_ms > 0 ? now + min64(vf_ms, WORKER_FIRST_S * 1000) : never;
	PGconn *admin = NULL, *app = NULL;

	while (!bz_periodic_wait_until(&P, min64(min64(next_ret, next_cp), next_vf))) {
		now = bz_monotonic_ms();
		if (now >= next_vf) {
			int ok = worker_verify(&app) == 0;
			next_vf = bz_monotonic_ms() +
				  (ok ? vf_ms : min64(vf_ms, WORKER_RETRY_S * 1000));
		}
		if (now >= next_cp) {
			int ok = worker_checkpoint(&app) == 0;
			next_cp = bz_monotonic_ms() +
				  (ok ? cp_ms : min64(cp_ms, WORKER_RETRY_S * 1000));
		}
		if (now >= next_ret && !bz_periodic_stopping(&P)) {
			int ok = worker_retention(&admin) == 0;
			next_ret = bz_monotonic_ms() +
				   (ok ? ret_ms : min64(ret_ms, WORKER_RETRY_S * 1000));
		}
	}
	admin_close(&admin);
	PQfinish(app);
	return NULL;
}

int audit_worker_start(const struct config *cfg)
{
	char ret_s[16], cp_s[16], vf_s[16];

	if (P.started)
		return 0;
	if (cfg->audit_retention_interval_s > 0 && cfg->audit_admin_database_url == NULL)
		log_warn("audit.retention.disabled", "reason",
			 "AUDIT_ADMIN_DATABASE_URL is not set", NULL);
	if (cfg->audit_checkpoint_interval_s > 0 && cfg->secrets[SECRET_AUDIT_SIGNING_KEY] == NULL)
		log_warn("audit.checkpoint.disabled", "reason", "AUDIT_SIGNING_KEY is not set",
			 NULL);
	int do_ret = cfg->audit_retention_interval_s > 0 && cfg->audit_admin_database_url != NULL;
	int do_cp = cfg->audit_checkpoint_interval_s > 0 &&
		    cfg->secrets[SECRET_AUDIT_SIGNING_KEY] != NULL;
	if (!do_ret && !do_cp && cfg->audit_verify_interval_s <= 0)
		return 0;

	W.cfg = cfg;
	P.arg = (void *)cfg;
	P.on_stop = cancel_query;
	if (bz_periodic_start(&P, 1, worker_main) != 0) {
		log_error("audit.worker.failed", "reason", "cannot start the thread", NULL);
		return BZ_ERR_INTERNAL;
	}
	if (do_cp)
		atomic_store(&first_row_seed, cfg->secrets[SECRET_AUDIT_SIGNING_KEY]);
	snprintf(ret_s, sizeof(ret_s), "%d", do_ret ? cfg->audit_retention_interval_s : 0);
	snprintf(cp_s, sizeof(cp_s), "%d", do_cp ? cfg->audit_checkpoint_interval_s : 0);
	snprintf(vf_s, sizeof(vf_s), "%d", cfg->audit_verify_interval_s);
	log_info("audit.worker.started", "retentionIntervalSeconds", ret_s,
		 "checkpointIntervalSeconds", cp_s, "verifyIntervalSeconds", vf_s, NULL);
	return 0;
}

void audit_worker_stop(void)
{
	if (!P.started)
		return;
	atomic_store(&first_row_seed, NULL);
	bz_periodic_stop(&P); /* cancels a retention query in progress (cancel_query) */
	log_info("audit.worker.stopped", NULL);
}
