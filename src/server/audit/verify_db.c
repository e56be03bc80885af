/*
 * verify_db.c — verification of audit chains in PostgreSQL (checklist L4):
 * the rows, anchor, checkpoints and head of one chain, read in one
 * REPEATABLE READ snapshot and fed to the state machine (verify_state.c).
 *
 * Rows come from a server-side cursor in binary format (no text parsing of
 * numbers, uuids or timestamps on either side) and the next FETCH is sent
 * before the current batch is hashed, so PostgreSQL reads while we hash.
 */
#include "server/audit/audit_verify_int.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/iso8601.h"
#include "common/log.h"
#include "server/audit/audit_internal.h"
#include "server/db/db.h"

#define FETCH_ROWS 50000
/* Microseconds from 1970-01-01 to 2000-01-01, PostgreSQL's binary epoch. */
#define PG_EPOCH_US 946684800000000LL

static int64_t be64(const char *p)
{
	const unsigned char *u = (const unsigned char *)p;
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | u[i];
	return (int64_t)v;
}

static void uuid_text(const char *p, char out[37])
{
	static const char hx[] = "0123456789abcdef";
	const unsigned char *u = (const unsigned char *)p;
	char *o = out;

	for (int i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			*o++ = '-';
		*o++ = hx[u[i] >> 4];
		*o++ = hx[u[i] & 15];
	}
	*o = '\0';
}

/* Decimal text of V into OUT[24]; snprintf costs more than the hash here. */
static void ll_text(long long v, char out[24])
{
	size_t k = 0;

	if (v < 0)
		out[k++] = '-';
	k += audit_put_decimal(out + k,
			       v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v);
	out[k] = '\0';
}

/* Columns of the cursor, fetched in binary. */
static const char *declare_sql =
	"DECLARE audit_rows NO SCROLL CURSOR FOR"
	" SELECT id, org_id, seq, ts, actor_type, actor_id, action, resource, resource_id,"
	"        details, ip_address, result, prev_checksum, checksum, partner_id, site_id"
	"   FROM audit_log WHERE chain_id = $1::uuid AND seq BETWEEN $2::bigint AND $3::bigint"
	"  ORDER BY seq";

static int send_fetch(PGconn *conn)
{
	static const char *sql = "FETCH 50000 FROM audit_rows";

	_Static_assert(FETCH_ROWS == 50000, "FETCH count in the SQL");
	return PQsendQueryParams(conn, sql, 0, NULL, NULL, NULL, NULL, 1) == 1 ? 0 : BZ_ERR_DB;
}

/* The one result of the query in flight (then drains to NULL). */
static PGresult *take_result(PGconn *conn)
{
	PGresult *r = PQgetResult(conn), *extra;

	while ((extra = PQgetResult(conn)) != NULL)
		PQclear(extra);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		log_error("audit.verify.fetch_failed", "error",
			  r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : PQerrorMessage(conn),
			  NULL);
		PQclear(r);
		return NULL;
	}
	return r;
}

static void emit_rows(PGresult *r, audit_row_fn fn, void *arg)
{
	char id[24], org[37], partner[37], site[37], seq[24], ts[32];
	int n = PQntuples(r);

	for (int i = 0; i < n; i++) {
		struct audit_row row;
		const char *v[16];
		for (int c = 0; c < 16; c++)
			v[c] = PQgetisnull(r, i, c) ? NULL : PQgetvalue(r, i, c);
		if (v[0] == NULL || v[2] == NULL || v[3] == NULL || PQgetlength(r, i, 0) != 8 ||
		    PQgetlength(r, i, 2) != 8 || PQgetlength(r, i, 3) != 8 ||
		    (v[1] != NULL && PQgetlength(r, i, 1) != 16) ||
		    (v[14] != NULL && PQgetlength(r, i, 14) != 16) ||
		    (v[15] != NULL && PQgetlength(r, i, 15) != 16))
			continue; /* NOT NULL columns of fixed size: cannot happen */
		long long lid = be64(v[0]), lseq = be64(v[2]);
		ll_text(lid, id);
		ll_text(lseq, seq);
		if (v[1] != NULL)
			uuid_text(v[1], org);
		if (v[14] != NULL)
			uuid_text(v[14], partner);
		if (v[15] != NULL)
			uuid_text(v[15], site);
		if (iso8601_format_us(be64(v[3]) + PG_EPOCH_US, ts) != 0)
			snprintf(ts, sizeof(ts), "(out of range)");
		row.id = id;
		row.org_id = v[1] ? org : NULL;
		row.seq = seq;
		row.ts = ts;
		row.actor_type = v[4];
		row.actor_id = v[5];
		row.action = v[6];
		row.resource = v[7];
		row.resource_id = v[8];
		row.details = v[9];
		row.ip_address = v[10];
		row.result = v[11];
		row.prev_checksum = v[12];
		row.checksum = v[13];
		row.partner_id = v[14] ? partner : NULL;
		row.site_id = v[15] ? site : NULL;
		fn(arg, &row, lseq, lid);
	}
}

/* Streams the rows of CHAIN with LO ≤ seq ≤ HI to FN, in seq order, inside
 * the caller's transaction. The next batch is requested before the
 * current one is processed. */
int audit_vdb_read_rows(PGconn *conn, const char *chain, long long lo, long long hi,
			audit_row_fn fn, void *arg)
{
	char los[24], his[24];
	int rc = BZ_ERR_DB;

	snprintf(los, sizeof(los), "%lld", lo);
	snprintf(his, sizeof(his), "%lld", hi);
	const char *p[3] = {chain, los, his};
	if (db_exec(conn, declare_sql, 3, p) != 0)
		return BZ_ERR_DB;
	if (send_fetch(conn) != 0)
		goto out;
	for (;;) {
		PGresult *r = take_result(conn);
		if (r == NULL)
			goto out;
		int n = PQntuples(r), more = n == FETCH_ROWS;
		if (more && send_fetch(conn) != 0) {
			PQclear(r);
			goto out;
		}
		emit_rows(r, fn, arg);
		PQclear(r);
		if (!more)
			break;
	}
	rc = 0;
out:
	if (db_exec(conn, "CLOSE audit_rows", 0, NULL) != 0)
		rc = BZ_ERR_DB;
	return rc;
}

static const char *anchor_sql =
	"SELECT id, first_seq, prev_checksum, public_key, signature, pruned_rows,"
	"       audit_ts_text(pruned_before), audit_ts_text(created_at)"
	"  FROM audit_anchors WHERE chain_id = $1::uuid ORDER BY first_seq DESC, id DESC LIMIT 1";

static const char *checkpoints_sql =
	"SELECT id, seq, checksum, floor(extract(epoch FROM created_at))::bigint, public_key,"
	"       signature"
	"  FROM audit_checkpoints WHERE chain_id = $1::uuid ORDER BY seq, id";

static const char *head_sql =
	"SELECT seq, checksum FROM audit_chain_heads WHERE chain_id = $1::uuid";

/* What the chain is: an existing organization's (which must have a
 * history), a partner's (the partner exists, or its rows say so), or
 * neither (the system chain, a deleted organization's). */
static const char *kind_sql = "SELECT EXISTS (SELECT 1 FROM organizations WHERE id = $1::uuid),"
			      "       EXISTS (SELECT 1 FROM partners WHERE id = $1::uuid)"
			      "    OR EXISTS (SELECT 1 FROM audit_log WHERE partner_id = $1::uuid)";

/* Loads the latest anchor, the checkpoints and the head of CHAIN. */
int audit_vdb_load_meta(PGconn *conn, const char *chain, struct audit_vstate *st)
{
	const char *p[1] = {chain};
	PGresult *r;

	if ((r = db_query(conn, anchor_sql, 1, p, NULL)) == NULL)
		return BZ_ERR_DB;
	if (PQntuples(r) == 1) {
		struct audit_vanchor *a = &st->anchor;
		a->present = 1;
		a->id = atoll(PQgetvalue(r, 0, 0));
		a->first_seq = atoll(PQgetvalue(r, 0, 1));
		snprintf(a->prev, sizeof(a->prev), "%s", PQgetvalue(r, 0, 2));
		a->has_sig = !PQgetisnull(r, 0, 3) && !PQgetisnull(r, 0, 4);
		snprintf(a->pub, sizeof(a->pub), "%s", PQgetvalue(r, 0, 3));
		snprintf(a->sig, sizeof(a->sig), "%s", PQgetvalue(r, 0, 4));
		a->pruned_rows = atoll(PQgetvalue(r, 0, 5));
		snprintf(a->pruned_before, sizeof(a->pruned_before), "%s", PQgetvalue(r, 0, 6));
		snprintf(a->created_at, sizeof(a->created_at), "%s", PQgetvalue(r, 0, 7));
	}
	PQclear(r);

	if ((r = db_query(conn, checkpoints_sql, 1, p, NULL)) == NULL)
		return BZ_ERR_DB;
	int n = PQntuples(r);
	if (n > 0 && (st->cps = calloc((size_t)n, sizeof(*st->cps))) == NULL) {
		PQclear(r);
		return BZ_ERR_NOMEM;
	}
	for (int i = 0; i < n; i++) {
		struct audit_vcheckpoint *c = &st->cps[i];
		c->id = atoll(PQgetvalue(r, i, 0));
		c->seq = atoll(PQgetvalue(r, i, 1));
		snprintf(c->checksum, sizeof(c->checksum), "%s", PQgetvalue(r, i, 2));
		c->created_at = atoll(PQgetvalue(r, i, 3));
		snprintf(c->pub, sizeof(c->pub), "%s", PQgetvalue(r, i, 4));
		snprintf(c->sig, sizeof(c->sig), "%s", PQgetvalue(r, i, 5));
	}
	st->ncps = (size_t)n;
	PQclear(r);
	if (audit_witness_merge(st) != 0)
		return BZ_ERR_NOMEM;

	if ((r = db_query(conn, head_sql, 1, p, NULL)) == NULL)
		return BZ_ERR_DB;
	if (PQntuples(r) == 1) {
		st->has_head = 1;
		st->head_seq = atoll(PQgetvalue(r, 0, 0));
		snprintf(st->head_checksum, sizeof(st->head_checksum), "%s", PQgetvalue(r, 0, 1));
	}
	PQclear(r);

	if (st->rep->system)
		return 0;
	if ((r = db_query(conn, kind_sql, 1, p, NULL)) == NULL)
		return BZ_ERR_DB;
	st->org_exists = PQgetvalue(r, 0, 0)[0] == 't';
	st->rep->partner = !st->org_exists && PQgetvalue(r, 0, 1)[0] == 't';
	PQclear(r);
	return 0;
}

static void verify_row_cb(void *arg, const struct audit_row *r, long long seq, long long id)
{
	struct audit_vstate *st = arg;

	if (st->start_prev == NULL && !st->have_prev && seq == st->context_seq)
		audit_vs_feed_context(st, seq, id, r->checksum);
	else
		audit_vs_feed_row(st, r, seq, id);
}

static const char *window_sql = "SELECT min(seq), max(seq) FROM audit_log WHERE chain_id = $1::uuid"
				"   AND ($2::timestamptz IS NULL OR ts >= $2::timestamptz)"
				"   AND ($3::timestamptz IS NULL OR ts < $3::timestamptz)";

/* Checkpoints past the window's last row: the rows they sign must still
 * be there with the signed checksum (stored, not recomputed). */
static const char *tail_rows_sql =
	"SELECT c.seq, l.checksum FROM unnest($2::bigint[]) AS c(seq)"
	"  LEFT JOIN audit_log l ON l.chain_id = $1::uuid AND l.seq = c.seq ORDER BY c.seq";

static int check_tail_checkpoints(PGconn *conn, struct audit_vstate *st)
{
	size_t cap = 16, len = 0;
	char *arr = malloc(cap);
	int rc = BZ_ERR_DB;

	if (arr == NULL)
		return BZ_ERR_NOMEM;
	arr[len++] = '{';
	for (size_t i = st->cpi; i < st->ncps; i++) {
		if (len + 24 > cap) {
			char *na = realloc(arr, cap * 2);
			if (na == NULL) {
				free(arr);
				return BZ_ERR_NOMEM;
			}
			arr = na;
			cap *= 2;
		}
		len += (size_t)snprintf(arr + len, cap - len, "%s%lld", len > 1 ? "," : "",
					st->cps[i].seq);
	}
	arr[len++] = '}';
	arr[len] = '\0';
	const char *p[2] = {st->rep->chain_id, arr};
	PGresult *r = db_query(conn, tail_rows_sql, 2, p, NULL);
	free(arr);
	if (r == NULL)
		return BZ_ERR_DB;
	for (int i = 0; i < PQntuples(r); i++) {
		long long seq = atoll(PQgetvalue(r, i, 0));
		if (PQgetisnull(r, i, 1))
			audit_vs_checkpoints_advance(st, seq + 1, ""); /* reports seq as missing */
		else
			audit_vs_checkpoints_advance(st, seq, PQgetvalue(r, i, 1));
	}
	rc = 0;
	PQclear(r);
	return rc;
}

/* Narrows the range to the rows of the time window: their first and last
 * seq into LO and HI (LO one lower when the window starts inside the chain,
 * for the predecessor's link). *EMPTY is set when no row is in the window.
 * Returns 0, BZ_ERR_INVALID or BZ_ERR_DB. */
static int setup_window(PGconn *conn, const char *chain_id, struct audit_vstate *st, long long *lo,
			long long *hi, int *empty)
{
	const struct audit_verify_opts *opts = st->opts;
	char from[32], to[32];

	if ((opts->has_from && iso8601_format_us(opts->from_us, from) != 0) ||
	    (opts->has_to && iso8601_format_us(opts->to_us, to) != 0))
		return BZ_ERR_INVALID;
	const char *p[3] = {chain_id, opts->has_from ? from : NULL, opts->has_to ? to : NULL};
	PGresult *r = db_query(conn, window_sql, 3, p, NULL);
	if (r == NULL)
		return BZ_ERR_DB;
	*empty = PQgetisnull(r, 0, 0);
	if (!*empty) {
		*lo = atoll(PQgetvalue(r, 0, 0));
		*hi = atoll(PQgetvalue(r, 0, 1));
	}
	PQclear(r);
	if (*empty)
		return 0;
	if (*lo > st->start_seq) {
		/* Start inside the chain: the predecessor gives the link. */
		st->start_seq = *lo;
		st->start_prev = NULL;
		st->context_seq = *lo - 1;
		audit_vs_checkpoints_prepare(st, *lo, 0);
		*lo = *lo - 1;
	} else {
		audit_vs_checkpoints_prepare(st, st->start_seq, 1);
		*lo = 0;
	}
	return 0;
}

int audit_verify_chain(PGconn *conn, const char *chain_id, const struct audit_verify_opts *opts,
		       struct audit_report *rep)
{
	struct audit_vstate st;
	int windowed = opts->has_from || opts->has_to;
	long long lo = 0, hi = INT64_MAX;
	int rc;

	if ((rc = audit_vs_init(&st, rep, opts, chain_id)) != 0)
		goto out;
	rc = BZ_ERR_DB;
	if (db_exec(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY", 0, NULL) != 0)
		goto out;
	if ((rc = audit_vdb_load_meta(conn, chain_id, &st)) != 0)
		goto rollback;
	audit_vs_start_full(&st);
	if (windowed) {
		int empty = 0;
		if ((rc = setup_window(conn, chain_id, &st, &lo, &hi, &empty)) != 0 || empty)
			goto rollback; /* an empty window has nothing to verify */
	} else {
		audit_vs_checkpoints_prepare(&st, st.start_seq, 1);
	}
	if ((rc = audit_vdb_read_rows(conn, chain_id, lo, hi, verify_row_cb, &st)) != 0)
		goto rollback;
	if ((rc = st.err) != 0)
		goto rollback;
	if (windowed) {
		/* Checkpoints inside the window that met no row, then those after it. */
		while (st.cpi < st.ncps && st.cps[st.cpi].seq <= hi)
			audit_vs_checkpoints_advance(&st, st.cps[st.cpi].seq + 1, "");
		if (st.cpi < st.ncps && (rc = check_tail_checkpoints(conn, &st)) != 0)
			goto rollback;
		audit_vs_finish(&st, 0, 0);
	} else {
		audit_vs_finish(&st, 1, 1);
		/* Every organization's chain starts with its organization.create
		 * row; one with nothing at all lost its whole history (rows, head
		 * and checkpoints), which no per-row check can see. */
		if (st.org_exists && !st.has_head && !st.anchor.present && st.ncps == 0 &&
		    rep->rows_checked == 0)
			audit_vs_break(&st, AUDIT_BREAK_MISSING_ROW, NO_SEQ, NO_SEQ,
				       "organization %s has no audit rows, no chain head and no "
				       "anchor: its whole history is missing",
				       chain_id);
	}
	rc = st.err;
rollback:
	/* Read only: nothing to keep. */
	if (db_exec(conn, "ROLLBACK", 0, NULL) != 0 && rc == 0)
		rc = BZ_ERR_DB;
out:
	audit_vs_free(&st);
	return rc;
}

static const char *chains_sql =
	"WITH RECURSIVE t(c) AS ("
	"   (SELECT chain_id FROM audit_log ORDER BY chain_id LIMIT 1)"
	"   UNION ALL"
	"   SELECT (SELECT chain_id FROM audit_log WHERE chain_id > t.c ORDER BY chain_id LIMIT 1)"
	"     FROM t WHERE t.c IS NOT NULL)"
	" SELECT c FROM t WHERE c IS NOT NULL"
	" UNION SELECT chain_id FROM audit_chain_heads"
	" UNION SELECT chain_id FROM audit_checkpoints"
	" UNION SELECT chain_id FROM audit_anchors"
	" UNION SELECT id FROM organizations"
	" ORDER BY 1";

int audit_chain_list(PGconn *conn, char (**ids)[37], size_t *n)
{
	PGresult *r = db_query(conn, chains_sql, 0, NULL, NULL);

	*ids = NULL;
	*n = 0;
	if (r == NULL)
		return BZ_ERR_DB;
	int rows = PQntuples(r);
	if (rows > 0 && (*ids = calloc((size_t)rows, sizeof(**ids))) == NULL) {
		PQclear(r);
		return BZ_ERR_NOMEM;
	}
	for (int i = 0; i < rows; i++)
		snprintf((*ids)[i], 37, "%s", PQgetvalue(r, i, 0));
	*n = (size_t)rows;
	PQclear(r);
	return 0;
}

int audit_chain_known(PGconn *conn, const char *chain, int *known)
{
	static const char *sql =
		"SELECT EXISTS (SELECT 1 FROM organizations WHERE id = $1::uuid)"
		"    OR EXISTS (SELECT 1 FROM partners WHERE id = $1::uuid)"
		"    OR EXISTS (SELECT 1 FROM audit_chain_heads WHERE chain_id = $1::uuid)"
		"    OR EXISTS (SELECT 1 FROM audit_anchors WHERE chain_id = $1::uuid)"
		"    OR EXISTS (SELECT 1 FROM audit_checkpoints WHERE chain_id = $1::uuid)"
		"    OR EXISTS (SELECT 1 FROM audit_log WHERE chain_id = $1::uuid)";
	const char *p[1] = {chain};
	PGresult *r = db_query(conn, sql, 1, p, NULL);

	if (r == NULL)
		return BZ_ERR_DB;
	*known = PQgetvalue(r, 0, 0)[0] == 't';
	PQclear(r);
	return 0;
}
