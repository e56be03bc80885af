/*
 * export.c — an audit chain as JSON lines (docs/audit-chain.md §8): a
 * header with the anchor and checkpoints, every row exactly as stored, and
 * a signed seal, all from one REPEATABLE READ snapshot. verify_file.c
 * verifies the result offline.
 */
#include "server/audit/audit_verify_int.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/err.h"
#include "server/audit/audit_checkpoint.h"
#include "server/audit/audit_internal.h"
#include "server/db/db.h"

struct export_ctx {
	FILE *out;
	int err;
	long long rows, last_seq;
	char last_checksum[65];
};

static void export_row_cb(void *arg, const struct audit_row *r, long long seq, long long id)
{
	struct export_ctx *x = arg;

	(void)seq;
	(void)id;
	if (x->err)
		return;
	json_t *o = json_pack("{s:s,s:o,s:s,s:s,s:s,s:o,s:s,s:s,s:o,s:s,s:o,s:s,s:s,s:s}", "id",
			      r->id, "orgId", audit_json_str_or_null(r->org_id), "seq", r->seq,
			      "ts", r->ts, "actorType", r->actor_type, "actorId",
			      audit_json_str_or_null(r->actor_id), "action", r->action, "resource",
			      r->resource, "resourceId", audit_json_str_or_null(r->resource_id),
			      "details", r->details, "ipAddress",
			      audit_json_str_or_null(r->ip_address), "result", r->result,
			      "prevChecksum", r->prev_checksum, "checksum", r->checksum);
	/* v2: every row says which partner and site it has (null when none). */
	if (o != NULL &&
	    (json_object_set_new(o, "partnerId", audit_json_str_or_null(r->partner_id)) ||
	     json_object_set_new(o, "siteId", audit_json_str_or_null(r->site_id)))) {
		json_decref(o);
		o = NULL;
	}
	if (o == NULL) {
		x->err = BZ_ERR_NOMEM;
		return;
	}
	if (json_dumpf(o, x->out, JSON_COMPACT) != 0 || fputc('\n', x->out) == EOF)
		x->err = BZ_ERR_IO;
	json_decref(o);
	x->rows++;
	x->last_seq = seq;
	snprintf(x->last_checksum, sizeof(x->last_checksum), "%s", r->checksum);
}

static json_t *export_header(const struct audit_vstate *st, const char *chain_id)
{
	int org = !st->rep->system && !st->rep->partner;
	const struct audit_vanchor *a = &st->anchor;
	json_t *cps = json_array(), *anchor = json_null();
	char created[32];

	for (size_t i = 0; i < st->ncps; i++) {
		const struct audit_vcheckpoint *c = &st->cps[i];
		if (bz_format_iso8601(c->created_at, created, sizeof(created)) != 0)
			created[0] = '\0';
		json_array_append_new(cps,
				      json_pack("{s:I,s:s,s:s,s:s,s:s}", "seq", (json_int_t)c->seq,
						"checksum", c->checksum, "createdAt", created,
						"publicKey", c->pub, "signature", c->sig));
	}
	if (a->present)
		anchor = json_pack("{s:I,s:s,s:I,s:s,s:s,s:o,s:o}", "firstSeq",
				   (json_int_t)a->first_seq, "prevChecksum", a->prev, "prunedRows",
				   (json_int_t)a->pruned_rows, "prunedBefore", a->pruned_before,
				   "createdAt", a->created_at, "publicKey",
				   a->has_sig ? json_string(a->pub) : json_null(), "signature",
				   a->has_sig ? json_string(a->sig) : json_null());
	char now[32];
	bz_format_iso8601(bz_now(), now, sizeof(now));
	return json_pack("{s:s,s:o,s:o,s:s,s:s,s:o,s:o}", "format", "breeze-audit-export-v2",
			 "orgId", org ? json_string(chain_id) : json_null(), "partnerId",
			 st->rep->partner ? json_string(chain_id) : json_null(), "chainId",
			 chain_id, "exportedAt", now, "anchor", anchor, "checkpoints", cps);
}

int audit_export(PGconn *conn, const char *chain_id, const char *seed_hex, FILE *out)
{
	struct audit_verify_opts none = {0};
	struct audit_report rep;
	struct audit_vstate st;
	struct export_ctx x = {out, 0, 0, 0, ""};
	int rc;

	if ((rc = audit_vs_init(&st, &rep, &none, chain_id)) != 0)
		goto out;
	rc = BZ_ERR_DB;
	if (db_exec(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY", 0, NULL) != 0)
		goto out;
	if ((rc = audit_vdb_load_meta(conn, chain_id, &st)) != 0)
		goto rollback;
	json_t *h = export_header(&st, chain_id);
	if (h == NULL) {
		rc = BZ_ERR_NOMEM;
		goto rollback;
	}
	int werr = json_dumpf(h, out, JSON_COMPACT) != 0 || fputc('\n', out) == EOF;
	json_decref(h);
	if (werr) {
		rc = BZ_ERR_IO;
		goto rollback;
	}
	if ((rc = audit_vdb_read_rows(conn, chain_id, 0, INT64_MAX, export_row_cb, &x)) != 0)
		goto rollback;
	rc = x.err;
	if (rc == 0 && seed_hex != NULL) {
		/* The seal: the last line, signed, naming the last row and the
		 * number of rows (§8). */
		char sig[129], pub[65];
		long long at = (long long)bz_now();
		rc = audit_export_seal_sign(seed_hex, chain_id, x.last_seq,
					    x.rows ? x.last_checksum : AUDIT_GENESIS, x.rows, at,
					    sig, pub);
		if (rc == 0) {
			json_t *seal = json_pack("{s:{s:s,s:I,s:s,s:I,s:I,s:s,s:s}}", "exportSeal",
						 "chainId", chain_id, "lastSeq",
						 (json_int_t)x.last_seq, "lastChecksum",
						 x.rows ? x.last_checksum : AUDIT_GENESIS, "rows",
						 (json_int_t)x.rows, "exportedAt", (json_int_t)at,
						 "publicKey", pub, "signature", sig);
			if (seal == NULL || json_dumpf(seal, out, JSON_COMPACT) != 0 ||
			    fputc('\n', out) == EOF)
				rc = BZ_ERR_IO;
			json_decref(seal);
		}
	}
	if (rc == 0 && fflush(out) != 0)
		rc = BZ_ERR_IO;
rollback:
	if (db_exec(conn, "ROLLBACK", 0, NULL) != 0 && rc == 0)
		rc = BZ_ERR_DB;
out:
	audit_vs_free(&st);
	audit_report_free(&rep);
	return rc;
}
