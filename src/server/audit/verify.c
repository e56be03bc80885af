/*
 * verify.c — verification of audit chains (checklist L4) and their export.
 *
 * One pass over a chain in seq order recomputes every checksum and link.
 * Rows come from a server-side cursor in binary format (no text parsing of
 * numbers, uuids or timestamps on either side) and the next FETCH is sent
 * before the current batch is hashed, so PostgreSQL reads while we hash.
 * One encoding buffer and one digest context serve the whole chain: nothing
 * is allocated per row.
 *
 * The same state machine verifies an export file offline (no database).
 */
#include "server/audit/audit_chain.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "crypto/crypto.h"
#include "server/audit/audit_checkpoint.h"
#include "server/db/db.h"

#define FETCH_ROWS 50000
/* Microseconds from 1970-01-01 to 2000-01-01, PostgreSQL's binary epoch. */
#define PG_EPOCH_US 946684800000000LL
#define NO_SEQ (-1LL)

struct checkpoint {
	long long id, seq, created_at;
	char checksum[65], pub[65], sig[129];
	int done; /* compared (or reported) already */
};

struct anchor {
	int present;
	long long id, first_seq, pruned_rows;
	char prev[65], pub[65], sig[129];
	int has_sig;
	char pruned_before[32], created_at[32];
};

struct vstate {
	struct audit_report *rep;
	const struct audit_verify_opts *opts;
	struct anchor anchor;
	struct checkpoint *cps;
	size_t ncps, cpi;
	size_t n_signed_ok; /* checkpoints whose signature a trusted key verified */
	int has_head;
	long long head_seq;
	char head_checksum[65];

	long long start_seq;    /* first position of the verified range */
	const char *start_prev; /* its expected prev_checksum; NULL: a context row comes first */
	long long context_seq;  /* seq of the context row (window's predecessor) */

	int have_prev;
	long long prev_seq, prev_id, last_seq;
	char prev_c[65];
	/* A row whose link failed: decided by its successor (skipped → inserted). */
	int pending;
	long long pend_seq, pend_id;
	char pend_pred[65];

	EVP_MD_CTX *md;
	EVP_MD *sha256;
	char *buf;
	size_t cap;
	int err;
};

static void add_break(struct vstate *st, enum audit_break_kind kind, long long seq, long long id,
		      const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void add_break(struct vstate *st, enum audit_break_kind kind, long long seq, long long id,
		      const char *fmt, ...)
{
	struct audit_report *rep = st->rep;
	va_list ap;

	rep->n_breaks++;
	rep->ok = 0;
	if (rep->n_kept >= AUDIT_MAX_BREAKS)
		return;
	if (rep->breaks == NULL) {
		rep->breaks = calloc(AUDIT_MAX_BREAKS, sizeof(*rep->breaks));
		if (rep->breaks == NULL) {
			st->err = BZ_ERR_NOMEM;
			return;
		}
	}
	struct audit_break *b = &rep->breaks[rep->n_kept++];
	b->kind = kind;
	b->seq = seq;
	b->id = id;
	va_start(ap, fmt);
	vsnprintf(b->detail, sizeof(b->detail), fmt, ap);
	va_end(ap);
}

/* First 12 characters of a checksum, for messages. */
static const char *short_sum(const char *s, char out[16])
{
	snprintf(out, 16, "%.12s", s ? s : "(null)");
	return out;
}

static int key_trusted(const struct audit_verify_opts *o, const char *pub)
{
	for (size_t i = 0; i < o->n_public_keys; i++)
		if (strcmp(o->public_keys[i], pub) == 0)
			return 1;
	return 0;
}

static int vstate_init(struct vstate *st, struct audit_report *rep,
		       const struct audit_verify_opts *opts, const char *chain_id)
{
	memset(st, 0, sizeof(*st));
	memset(rep, 0, sizeof(*rep));
	snprintf(rep->chain_id, sizeof(rep->chain_id), "%s", chain_id);
	rep->system = strcmp(chain_id, AUDIT_SYSTEM_CHAIN) == 0;
	rep->ok = 1;
	st->rep = rep;
	st->opts = opts;
	st->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
	st->md = EVP_MD_CTX_new();
	if (st->sha256 == NULL || st->md == NULL)
		return BZ_ERR_CRYPTO;
	return 0;
}

static void vstate_free(struct vstate *st)
{
	EVP_MD_CTX_free(st->md);
	EVP_MD_free(st->sha256);
	free(st->buf);
	free(st->cps);
}

/* Checks the anchor's signature and sets where the chain starts. */
static void start_full(struct vstate *st)
{
	const struct anchor *a = &st->anchor;
	const struct audit_verify_opts *o = st->opts;

	st->start_seq = 1;
	st->start_prev = AUDIT_GENESIS;
	if (!a->present)
		return;
	st->start_seq = a->first_seq;
	st->start_prev = a->prev;
	if (o->n_public_keys == 0)
		return;
	if (!a->has_sig)
		add_break(st, AUDIT_BREAK_BAD_ANCHOR, a->first_seq, NO_SEQ,
			  "anchor %lld (chain starts at seq %lld) is not signed", a->id, a->first_seq);
	else if (!key_trusted(o, a->pub))
		add_break(st, AUDIT_BREAK_BAD_ANCHOR, a->first_seq, NO_SEQ,
			  "anchor %lld is signed by an untrusted key %.16s…", a->id, a->pub);
	else if (!audit_anchor_sig_ok(a->pub, st->rep->chain_id, a->first_seq, a->prev, a->sig))
		add_break(st, AUDIT_BREAK_BAD_ANCHOR, a->first_seq, NO_SEQ,
			  "anchor %lld has an invalid signature", a->id);
}

/* Checks checkpoint signatures and skips those before FROM_SEQ - 1 (rows
 * pruned or outside the window). With an anchor, the checkpoint exactly at
 * first_seq - 1 must sign the anchor's prev_checksum. */
static void checkpoints_prepare(struct vstate *st, long long from_seq, int use_anchor)
{
	const struct audit_verify_opts *o = st->opts;
	char a[16], b[16];

	for (size_t i = 0; i < st->ncps; i++) {
		struct checkpoint *c = &st->cps[i];
		if (c->seq < from_seq - 1) {
			c->done = 1;
			continue;
		}
		if (o->n_public_keys > 0) {
			if (!key_trusted(o, c->pub)) {
				add_break(st, AUDIT_BREAK_CHECKPOINT_MISMATCH, c->seq, NO_SEQ,
					  "checkpoint %lld is signed by an untrusted key %.16s…",
					  c->id, c->pub);
				c->done = 1;
				continue;
			}
			if (!audit_checkpoint_sig_ok(c->pub, st->rep->chain_id, c->seq, c->checksum,
						     c->created_at, c->sig)) {
				add_break(st, AUDIT_BREAK_CHECKPOINT_MISMATCH, c->seq, NO_SEQ,
					  "checkpoint %lld has an invalid signature", c->id);
				c->done = 1;
				continue;
			}
			st->n_signed_ok++;
		}
		if (use_anchor && st->anchor.present && c->seq == st->anchor.first_seq - 1) {
			if (strcmp(c->checksum, st->anchor.prev) != 0)
				add_break(st, AUDIT_BREAK_CHECKPOINT_MISMATCH, c->seq, NO_SEQ,
					  "checkpoint %lld signs seq %lld as %s…, the anchor says %s…",
					  c->id, c->seq, short_sum(c->checksum, a),
					  short_sum(st->anchor.prev, b));
			c->done = 1;
		}
	}
	st->cpi = 0;
}

/* Compares the checkpoints at SEQ with the row's stored CHECKSUM; those
 * below SEQ never met their row: it is gone. */
static void checkpoints_advance(struct vstate *st, long long seq, const char *checksum)
{
	char a[16], b[16];

	while (st->cpi < st->ncps && st->cps[st->cpi].seq <= seq) {
		struct checkpoint *c = &st->cps[st->cpi++];
		if (c->done)
			continue;
		c->done = 1;
		if (c->seq < seq)
			add_break(st, AUDIT_BREAK_CHECKPOINT_MISMATCH, c->seq, NO_SEQ,
				  "checkpoint %lld signs seq %lld, which is not in the chain", c->id,
				  c->seq);
		else if (strcmp(c->checksum, checksum) != 0)
			add_break(st, AUDIT_BREAK_CHECKPOINT_MISMATCH, c->seq, NO_SEQ,
				  "checkpoint %lld signs seq %lld as %s…, the row has %s…", c->id,
				  c->seq, short_sum(c->checksum, a), short_sum(checksum, b));
	}
}

/* Copies a checksum (normally 64 characters) into OUT[65], truncating. */
static void copy_sum(char out[65], const char *s)
{
	size_t n = s ? strnlen(s, 64) : 0;

	memcpy(out, s ? s : "", n);
	out[n] = '\0';
}

/* The window's predecessor: only its stored checksum matters. */
static void feed_context(struct vstate *st, long long seq, long long id, const char *checksum)
{
	checkpoints_advance(st, seq, checksum);
	st->have_prev = 1;
	st->prev_seq = st->last_seq = seq;
	st->prev_id = id;
	copy_sum(st->prev_c, checksum);
}

static int checksum_ok(struct vstate *st, const struct audit_row *r, char out[65])
{
	size_t len = 0;
	unsigned char md[32];
	unsigned int mdlen = 0;

	if (audit_canonical_encode(r, &st->buf, &st->cap, &len) != 0) {
		st->err = BZ_ERR_NOMEM;
		return 0;
	}
	if (EVP_DigestInit_ex(st->md, st->sha256, NULL) != 1 ||
	    EVP_DigestUpdate(st->md, st->buf, len) != 1 ||
	    EVP_DigestFinal_ex(st->md, md, &mdlen) != 1) {
		st->err = BZ_ERR_CRYPTO;
		return 0;
	}
	crypto_hex(md, sizeof(md), out);
	return r->checksum != NULL && strcmp(out, r->checksum) == 0;
}

static void resolve_pending(struct vstate *st, const char *successor_prev)
{
	if (!st->pending)
		return;
	st->pending = 0;
	if (successor_prev != NULL && strcmp(successor_prev, st->pend_pred) == 0)
		add_break(st, AUDIT_BREAK_INSERTED_ROW, st->pend_seq, st->pend_id,
			  "row is not part of the chain: its successor links to seq %lld",
			  st->pend_seq - 1);
	else
		add_break(st, AUDIT_BREAK_BROKEN_LINK, st->pend_seq, st->pend_id,
			  "prev_checksum does not match the checksum of the preceding row");
}

/* "row 7 is" / "rows 7..9 are" */
static void gap_text(char *out, size_t len, long long a, long long b)
{
	if (a == b)
		snprintf(out, len, "row %lld is", a);
	else
		snprintf(out, len, "rows %lld..%lld are", a, b);
}

/* One row of the verified range, in seq order. */
static void feed_row(struct vstate *st, const struct audit_row *r, long long seq, long long id)
{
	const char *prev = r->prev_checksum ? r->prev_checksum : "";
	const char *stored = r->checksum ? r->checksum : "";
	char computed[65], a[16], b[16], gap[64];
	int skipped = 0;

	if (!st->have_prev && st->start_prev != NULL && st->anchor.present &&
	    seq < st->anchor.first_seq) {
		add_break(st, AUDIT_BREAK_INSERTED_ROW, seq, id,
			  "row precedes the chain's start (anchor at seq %lld)", st->anchor.first_seq);
		return;
	}
	if (st->have_prev && seq < st->prev_seq) {
		add_break(st, AUDIT_BREAK_INSERTED_ROW, seq, id, "row out of order after seq %lld",
			  st->prev_seq);
		return;
	}
	/* The previous row's failed link is decided first: if this row links
	 * past it, it was inserted. Keeps breaks in seq order. */
	if (st->have_prev && seq != st->prev_seq) {
		skipped = st->pending && strcmp(prev, st->pend_pred) == 0;
		resolve_pending(st, prev);
	}
	st->rep->rows_checked++;
	if (!checksum_ok(st, r, computed))
		add_break(st, AUDIT_BREAK_ALTERED_ROW, seq, id,
			  "stored checksum %s…, recomputed %s…", short_sum(stored, a),
			  short_sum(computed, b));
	if (st->has_head && seq > st->head_seq)
		add_break(st, AUDIT_BREAK_INSERTED_ROW, seq, id,
			  "row lies beyond the chain head the sealing trigger recorded (seq %lld)",
			  st->head_seq);

	if (!st->have_prev) {
		if (st->start_prev == NULL) {
			/* Window whose predecessor row is gone. */
			gap_text(gap, sizeof(gap), st->context_seq, seq - 1);
			add_break(st, AUDIT_BREAK_MISSING_ROW, seq, id,
				  "%s missing before the window", gap);
		} else if (seq > st->start_seq) {
			gap_text(gap, sizeof(gap), st->start_seq, seq - 1);
			if (st->anchor.present)
				add_break(st, AUDIT_BREAK_BAD_ANCHOR, seq, id,
					  "chain starts at seq %lld, its anchor at seq %lld", seq,
					  st->start_seq);
			else
				add_break(st, AUDIT_BREAK_MISSING_ROW, seq, id,
					  "%s missing at the start of the chain", gap);
		} else if (strcmp(prev, st->start_prev) != 0) {
			if (st->anchor.present)
				add_break(st, AUDIT_BREAK_BAD_ANCHOR, seq, id,
					  "prev_checksum %s… does not match the anchor's %s…",
					  short_sum(prev, a), short_sum(st->start_prev, b));
			else
				add_break(st, AUDIT_BREAK_BROKEN_LINK, seq, id,
					  "first row does not link to the genesis value");
		}
	} else if (seq == st->prev_seq) {
		/* Two rows at one position: the one that does not link is inserted. */
		if (st->pending && st->pend_seq == seq && strcmp(prev, st->pend_pred) == 0) {
			st->pending = 0;
			add_break(st, AUDIT_BREAK_INSERTED_ROW, st->pend_seq, st->pend_id,
				  "second row at seq %lld; row %lld is the chained one", seq, id);
		} else {
			add_break(st, AUDIT_BREAK_INSERTED_ROW, seq, id,
				  "second row at seq %lld (row %lld is the chained one)", seq,
				  st->prev_id);
			return;
		}
	} else if (seq > st->prev_seq + 1) {
		gap_text(gap, sizeof(gap), st->prev_seq + 1, seq - 1);
		add_break(st, AUDIT_BREAK_MISSING_ROW, seq, id, "%s missing", gap);
	} else if (!skipped && strcmp(prev, st->prev_c) != 0) {
		st->pending = 1;
		st->pend_seq = seq;
		st->pend_id = id;
		memcpy(st->pend_pred, st->prev_c, sizeof(st->pend_pred));
	}
	checkpoints_advance(st, seq, stored);
	st->have_prev = 1;
	st->prev_seq = st->last_seq = seq;
	st->prev_id = id;
	copy_sum(st->prev_c, stored);
}

/* After the last row: pending links, checkpoints beyond the last row
 * (newest rows deleted) and, from the database, the recorded head. */
static void finish(struct vstate *st, int check_head, int check_tail_checkpoints)
{
	resolve_pending(st, NULL);
	if (check_tail_checkpoints) {
		for (; st->cpi < st->ncps; st->cpi++) {
			struct checkpoint *c = &st->cps[st->cpi];
			if (c->done)
				continue;
			c->done = 1;
			if (st->have_prev)
				add_break(st, AUDIT_BREAK_CHECKPOINT_MISMATCH, c->seq, NO_SEQ,
					  "chain ends at seq %lld but checkpoint %lld signs seq %lld:"
					  " newest rows deleted",
					  st->last_seq, c->id, c->seq);
			else
				add_break(st, AUDIT_BREAK_CHECKPOINT_MISMATCH, c->seq, NO_SEQ,
					  "chain has no rows but checkpoint %lld signs seq %lld", c->id,
					  c->seq);
		}
	}
	if (check_head && st->has_head) {
		long long last = st->have_prev ? st->last_seq : st->start_seq - 1;
		if (st->head_seq > last) {
			char gap[64];
			gap_text(gap, sizeof(gap), last + 1, st->head_seq);
			add_break(st, AUDIT_BREAK_MISSING_ROW, last + 1, NO_SEQ,
				  "%s missing at the head (audit_chain_heads records seq %lld)", gap,
				  st->head_seq);
		}
		else if (st->head_seq == last && st->have_prev &&
			 strcmp(st->head_checksum, st->prev_c) != 0)
			add_break(st, AUDIT_BREAK_ALTERED_ROW, last, st->prev_id,
				  "checksum differs from the head recorded by the sealing trigger");
	}
}

/* ------------------------------------------------------------ database */

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
	char tmp[24];
	unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
	size_t i = 0, k = 0;

	do {
		tmp[i++] = (char)('0' + u % 10);
		u /= 10;
	} while (u != 0);
	if (v < 0)
		out[k++] = '-';
	while (i > 0)
		out[k++] = tmp[--i];
	out[k] = '\0';
}

typedef void (*row_fn)(void *arg, const struct audit_row *r, long long seq, long long id);

/* Columns of the cursor, fetched in binary. */
static const char *declare_sql =
	"DECLARE audit_rows NO SCROLL CURSOR FOR"
	" SELECT id, org_id, seq, ts, actor_type, actor_id, action, resource, resource_id,"
	"        details, ip_address, result, prev_checksum, checksum"
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

static void emit_rows(PGresult *r, row_fn fn, void *arg)
{
	char id[24], org[37], seq[24], ts[32];
	int n = PQntuples(r);

	for (int i = 0; i < n; i++) {
		struct audit_row row;
		const char *v[14];
		for (int c = 0; c < 14; c++)
			v[c] = PQgetisnull(r, i, c) ? NULL : PQgetvalue(r, i, c);
		if (v[0] == NULL || v[2] == NULL || v[3] == NULL || PQgetlength(r, i, 0) != 8 ||
		    PQgetlength(r, i, 2) != 8 || PQgetlength(r, i, 3) != 8 ||
		    (v[1] != NULL && PQgetlength(r, i, 1) != 16))
			continue; /* NOT NULL columns of fixed size: cannot happen */
		long long lid = be64(v[0]), lseq = be64(v[2]);
		ll_text(lid, id);
		ll_text(lseq, seq);
		if (v[1] != NULL)
			uuid_text(v[1], org);
		if (audit_ts_format(be64(v[3]) + PG_EPOCH_US, ts) != 0)
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
		fn(arg, &row, lseq, lid);
	}
}

/* Streams the rows of CHAIN with LO ≤ seq ≤ HI to FN, in seq order, inside
 * the caller's transaction. The next batch is requested before the
 * current one is processed. */
static int read_rows(PGconn *conn, const char *chain, long long lo, long long hi, row_fn fn,
		     void *arg)
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

static const char *head_sql = "SELECT seq, checksum FROM audit_chain_heads WHERE chain_id = $1::uuid";

/* Loads the latest anchor, the checkpoints and the head of CHAIN. */
static int load_meta(PGconn *conn, const char *chain, struct vstate *st)
{
	const char *p[1] = {chain};
	PGresult *r;

	if ((r = db_query(conn, anchor_sql, 1, p, NULL)) == NULL)
		return BZ_ERR_DB;
	if (PQntuples(r) == 1) {
		struct anchor *a = &st->anchor;
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
		struct checkpoint *c = &st->cps[i];
		c->id = atoll(PQgetvalue(r, i, 0));
		c->seq = atoll(PQgetvalue(r, i, 1));
		snprintf(c->checksum, sizeof(c->checksum), "%s", PQgetvalue(r, i, 2));
		c->created_at = atoll(PQgetvalue(r, i, 3));
		snprintf(c->pub, sizeof(c->pub), "%s", PQgetvalue(r, i, 4));
		snprintf(c->sig, sizeof(c->sig), "%s", PQgetvalue(r, i, 5));
	}
	st->ncps = (size_t)n;
	PQclear(r);

	if ((r = db_query(conn, head_sql, 1, p, NULL)) == NULL)
		return BZ_ERR_DB;
	if (PQntuples(r) == 1) {
		st->has_head = 1;
		st->head_seq = atoll(PQgetvalue(r, 0, 0));
		snprintf(st->head_checksum, sizeof(st->head_checksum), "%s", PQgetvalue(r, 0, 1));
	}
	PQclear(r);
	return 0;
}

static void verify_row_cb(void *arg, const struct audit_row *r, long long seq, long long id)
{
	struct vstate *st = arg;

	if (st->start_prev == NULL && !st->have_prev && seq == st->context_seq)
		feed_context(st, seq, id, r->checksum);
	else
		feed_row(st, r, seq, id);
}

static const char *window_sql =
	"SELECT min(seq), max(seq) FROM audit_log WHERE chain_id = $1::uuid"
	"   AND ($2::timestamptz IS NULL OR ts >= $2::timestamptz)"
	"   AND ($3::timestamptz IS NULL OR ts < $3::timestamptz)";

/* Checkpoints past the window's last row: the rows they sign must still
 * be there with the signed checksum (stored, not recomputed). */
static const char *tail_rows_sql =
	"SELECT c.seq, l.checksum FROM unnest($2::bigint[]) AS c(seq)"
	"  LEFT JOIN audit_log l ON l.chain_id = $1::uuid AND l.seq = c.seq ORDER BY c.seq";

static int check_tail_checkpoints(PGconn *conn, struct vstate *st)
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
			checkpoints_advance(st, seq + 1, ""); /* reports seq as missing */
		else
			checkpoints_advance(st, seq, PQgetvalue(r, i, 1));
	}
	rc = 0;
	PQclear(r);
	return rc;
}

int audit_verify_chain(PGconn *conn, const char *chain_id, const struct audit_verify_opts *opts,
		       struct audit_report *rep)
{
	struct vstate st;
	int windowed = opts->has_from || opts->has_to;
	long long lo = 0, hi = INT64_MAX;
	int rc;

	if ((rc = vstate_init(&st, rep, opts, chain_id)) != 0)
		goto out;
	rc = BZ_ERR_DB;
	if (db_exec(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY", 0, NULL) != 0)
		goto out;
	if ((rc = load_meta(conn, chain_id, &st)) != 0)
		goto rollback;
	start_full(&st);
	if (windowed) {
		char from[32], to[32];
		if ((opts->has_from && audit_ts_format(opts->from_us, from) != 0) ||
		    (opts->has_to && audit_ts_format(opts->to_us, to) != 0)) {
			rc = BZ_ERR_INVALID;
			goto rollback;
		}
		const char *p[3] = {chain_id, opts->has_from ? from : NULL, opts->has_to ? to : NULL};
		PGresult *r = db_query(conn, window_sql, 3, p, NULL);
		rc = BZ_ERR_DB;
		if (r == NULL)
			goto rollback;
		int empty = PQgetisnull(r, 0, 0);
		if (!empty) {
			lo = atoll(PQgetvalue(r, 0, 0));
			hi = atoll(PQgetvalue(r, 0, 1));
		}
		PQclear(r);
		if (empty) {
			rc = 0; /* nothing in the window */
			goto rollback;
		}
		if (lo > st.start_seq) {
			/* Start inside the chain: the predecessor gives the link. */
			st.start_seq = lo;
			st.start_prev = NULL;
			st.context_seq = lo - 1;
			checkpoints_prepare(&st, lo, 0);
			lo = lo - 1;
		} else {
			checkpoints_prepare(&st, st.start_seq, 1);
			lo = 0;
		}
	} else {
		checkpoints_prepare(&st, st.start_seq, 1);
	}
	if ((rc = read_rows(conn, chain_id, lo, hi, verify_row_cb, &st)) != 0)
		goto rollback;
	if ((rc = st.err) != 0)
		goto rollback;
	if (windowed) {
		/* Checkpoints inside the window that met no row, then those after it. */
		while (st.cpi < st.ncps && st.cps[st.cpi].seq <= hi)
			checkpoints_advance(&st, st.cps[st.cpi].seq + 1, "");
		if (st.cpi < st.ncps && (rc = check_tail_checkpoints(conn, &st)) != 0)
			goto rollback;
		finish(&st, 0, 0);
	} else {
		finish(&st, 1, 1);
	}
	rc = st.err;
rollback:
	/* Read only: nothing to keep. */
	if (db_exec(conn, "ROLLBACK", 0, NULL) != 0 && rc == 0)
		rc = BZ_ERR_DB;
out:
	vstate_free(&st);
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

/* -------------------------------------------------------------- report */

json_t *audit_report_json(const struct audit_report *rep)
{
	json_t *breaks = json_array();

	for (size_t i = 0; i < rep->n_kept; i++) {
		const struct audit_break *b = &rep->breaks[i];
		json_array_append_new(
			breaks, json_pack("{s:s,s:o,s:o,s:s}", "kind", audit_break_kind_name(b->kind),
					  "seq", b->seq >= 0 ? json_integer(b->seq) : json_null(),
					  "id", b->id >= 0 ? json_integer(b->id) : json_null(),
					  "detail", b->detail));
	}
	json_t *o = json_pack("{s:o,s:I,s:b,s:o}", "orgId",
			      rep->system ? json_null() : json_string(rep->chain_id), "rowsChecked",
			      (json_int_t)rep->rows_checked, "ok", rep->ok, "breaks", breaks);
	if (o != NULL && (long long)rep->n_kept < rep->n_breaks)
		json_object_set_new(o, "breaksTotal", json_integer(rep->n_breaks));
	return o;
}

void audit_report_free(struct audit_report *rep)
{
	free(rep->breaks);
	rep->breaks = NULL;
	rep->n_kept = 0;
}

/* -------------------------------------------------------------- export */

struct export_ctx {
	FILE *out;
	int err;
	long long rows, last_seq;
	char last_checksum[65];
};

static json_t *str_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

static void export_row_cb(void *arg, const struct audit_row *r, long long seq, long long id)
{
	struct export_ctx *x = arg;

	(void)seq;
	(void)id;
	if (x->err)
		return;
	json_t *o = json_pack("{s:s,s:o,s:s,s:s,s:s,s:o,s:s,s:s,s:o,s:s,s:o,s:s,s:s,s:s}", "id",
			      r->id, "orgId", str_or_null(r->org_id), "seq", r->seq, "ts", r->ts,
			      "actorType", r->actor_type, "actorId", str_or_null(r->actor_id),
			      "action", r->action, "resource", r->resource, "resourceId",
			      str_or_null(r->resource_id), "details", r->details, "ipAddress",
			      str_or_null(r->ip_address), "result", r->result, "prevChecksum",
			      r->prev_checksum, "checksum", r->checksum);
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

static json_t *export_header(const struct vstate *st, const char *chain_id)
{
	const struct anchor *a = &st->anchor;
	json_t *cps = json_array(), *anchor = json_null();
	char created[32];

	for (size_t i = 0; i < st->ncps; i++) {
		const struct checkpoint *c = &st->cps[i];
		if (bz_format_iso8601(c->created_at, created, sizeof(created)) != 0)
			created[0] = '\0';
		json_array_append_new(cps, json_pack("{s:I,s:s,s:s,s:s,s:s}", "seq",
						     (json_int_t)c->seq, "checksum", c->checksum,
						     "createdAt", created, "publicKey", c->pub,
						     "signature", c->sig));
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
	return json_pack("{s:s,s:o,s:s,s:s,s:o,s:o}", "format", "breeze-audit-export-v1", "orgId",
			 strcmp(chain_id, AUDIT_SYSTEM_CHAIN) ? json_string(chain_id) : json_null(),
			 "chainId", chain_id, "exportedAt", now, "anchor", anchor, "checkpoints",
			 cps);
}

int audit_export(PGconn *conn, const char *chain_id, const char *seed_hex, FILE *out)
{
	struct audit_verify_opts none = {0};
	struct audit_report rep;
	struct vstate st;
	struct export_ctx x = {out, 0, 0, 0, ""};
	int rc;

	if ((rc = vstate_init(&st, &rep, &none, chain_id)) != 0)
		goto out;
	rc = BZ_ERR_DB;
	if (db_exec(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY", 0, NULL) != 0)
		goto out;
	if ((rc = load_meta(conn, chain_id, &st)) != 0)
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
	if ((rc = read_rows(conn, chain_id, 0, INT64_MAX, export_row_cb, &x)) != 0)
		goto rollback;
	rc = x.err;
	if (rc == 0 && seed_hex != NULL) {
		/* The seal: the last line, signed, naming the last row and the
		 * number of rows (§8). */
		char sig[129], pub[65];
		long long at = (long long)bz_now();
		rc = audit_export_seal_sign(seed_hex, chain_id, x.last_seq,
					    x.rows ? x.last_checksum : AUDIT_GENESIS, x.rows, at, sig,
					    pub);
		if (rc == 0) {
			json_t *seal = json_pack("{s:{s:s,s:I,s:s,s:I,s:I,s:s,s:s}}", "exportSeal",
						 "chainId", chain_id, "lastSeq", (json_int_t)x.last_seq,
						 "lastChecksum", x.rows ? x.last_checksum : AUDIT_GENESIS,
						 "rows", (json_int_t)x.rows, "exportedAt", (json_int_t)at,
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
	vstate_free(&st);
	audit_report_free(&rep);
	return rc;
}

/* ------------------------------------------------------ offline (file) */

/* "123" → 123; anything but plain decimal digits fails. */
static int parse_ll(const char *s, long long *out)
{
	char *end;

	if (s == NULL || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return -1;
	*out = v;
	return 0;
}

/* String member KEY of O (NULL for JSON null). Returns -1 if absent or of
 * another type. */
static int member_str(json_t *o, const char *key, int nullable, const char **out)
{
	json_t *v = json_object_get(o, key);

	if (nullable && json_is_null(v)) {
		*out = NULL;
		return 0;
	}
	if (!json_is_string(v))
		return -1;
	*out = json_string_value(v);
	return 0;
}

static int hex_field(json_t *o, const char *key, size_t len, char *out)
{
	const char *s;

	if (member_str(o, key, 0, &s) != 0 || strlen(s) != len)
		return -1;
	memcpy(out, s, len + 1);
	return 0;
}

static int read_header(json_t *h, struct vstate *st, char chain[37])
{
	const char *fmt, *cid;
	json_t *a = json_object_get(h, "anchor"), *cps = json_object_get(h, "checkpoints");

	if (member_str(h, "format", 0, &fmt) || strcmp(fmt, "breeze-audit-export-v1") != 0 ||
	    member_str(h, "chainId", 0, &cid) || strlen(cid) != 36 || !json_is_array(cps))
		return -1;
	snprintf(chain, 37, "%s", cid);
	if (json_is_object(a)) {
		struct anchor *an = &st->anchor;
		json_t *fs = json_object_get(a, "firstSeq");
		const char *pub = NULL, *sig = NULL;
		if (!json_is_integer(fs) || hex_field(a, "prevChecksum", 64, an->prev) ||
		    member_str(a, "publicKey", 1, &pub) || member_str(a, "signature", 1, &sig))
			return -1;
		an->present = 1;
		an->first_seq = json_integer_value(fs);
		if (an->first_seq < 2)
			return -1; /* an anchor starts a chain after pruned rows */
		an->has_sig = pub != NULL && sig != NULL;
		snprintf(an->pub, sizeof(an->pub), "%s", pub ? pub : "");
		snprintf(an->sig, sizeof(an->sig), "%s", sig ? sig : "");
	} else if (!json_is_null(a)) {
		return -1;
	}
	size_t n = json_array_size(cps);
	if (n > 0 && (st->cps = calloc(n, sizeof(*st->cps))) == NULL)
		return -1;
	for (size_t i = 0; i < n; i++) {
		json_t *c = json_array_get(cps, i), *seq = json_object_get(c, "seq");
		struct checkpoint *cp = &st->cps[i];
		const char *created;
		int64_t us;
		if (!json_is_integer(seq) || hex_field(c, "checksum", 64, cp->checksum) ||
		    hex_field(c, "publicKey", 64, cp->pub) || hex_field(c, "signature", 128, cp->sig) ||
		    member_str(c, "createdAt", 0, &created) || audit_ts_parse(created, &us) != 0)
			return -1;
		cp->id = (long long)i + 1;
		cp->seq = json_integer_value(seq);
		if (cp->seq < 1)
			return -1;
		cp->created_at = us / 1000000;
		if (i > 0 && cp->seq < st->cps[i - 1].seq)
			return -1; /* the format lists checkpoints by seq */
	}
	st->ncps = n;
	return 0;
}

/* One row line into R (pointing into O). Returns -1 if malformed. */
static int read_row(json_t *o, struct audit_row *r, long long *seq, long long *id)
{
	if (!json_is_object(o) || member_str(o, "id", 0, &r->id) ||
	    member_str(o, "orgId", 1, &r->org_id) || member_str(o, "seq", 0, &r->seq) ||
	    member_str(o, "ts", 0, &r->ts) || member_str(o, "actorType", 0, &r->actor_type) ||
	    member_str(o, "actorId", 1, &r->actor_id) || member_str(o, "action", 0, &r->action) ||
	    member_str(o, "resource", 0, &r->resource) ||
	    member_str(o, "resourceId", 1, &r->resource_id) ||
	    member_str(o, "details", 0, &r->details) ||
	    member_str(o, "ipAddress", 1, &r->ip_address) ||
	    member_str(o, "result", 0, &r->result) ||
	    member_str(o, "prevChecksum", 0, &r->prev_checksum) ||
	    member_str(o, "checksum", 0, &r->checksum) || parse_ll(r->seq, seq) ||
	    parse_ll(r->id, id))
		return -1;
	return 0;
}

/* The export seal must be present, signed by a trusted key, and name this
 * chain, its last row and its row count: what stops an export being cut
 * short or re-sealed after rows were dropped. */
static void check_seal(struct vstate *st, const struct audit_verify_opts *opts, json_t *seal,
		       const char *chain, long long last_seq, const char *last_sum, long long rows)
{
	const char *cid = NULL, *sum = NULL, *pub = NULL, *sig = NULL;
	json_t *ls = json_object_get(seal, "lastSeq"), *nr = json_object_get(seal, "rows"),
	       *at = json_object_get(seal, "exportedAt");

	/* Without a trusted key a seal proves nothing (anyone can make one);
	 * the CLI refuses to verify an export without a key. */
	if (opts->n_public_keys == 0)
		return;
	if (seal == NULL) {
		add_break(st, AUDIT_BREAK_MISSING_ROW, NO_SEQ, NO_SEQ,
			  "the export has no seal line: it may have been cut short");
		return;
	}
	if (member_str(seal, "chainId", 0, &cid) || member_str(seal, "lastChecksum", 0, &sum) ||
	    member_str(seal, "publicKey", 0, &pub) || member_str(seal, "signature", 0, &sig) ||
	    !json_is_integer(ls) || !json_is_integer(nr) || !json_is_integer(at)) {
		add_break(st, AUDIT_BREAK_ALTERED_ROW, NO_SEQ, NO_SEQ, "the export seal is malformed");
		return;
	}
	if (strcmp(cid, chain) != 0 || json_integer_value(ls) != last_seq ||
	    strcmp(sum, last_sum) != 0 || json_integer_value(nr) != rows) {
		add_break(st, AUDIT_BREAK_MISSING_ROW, NO_SEQ, NO_SEQ,
			  "the export seal names %lld rows ending at seq %lld; the file holds %lld "
			  "ending at seq %lld",
			  (long long)json_integer_value(nr), (long long)json_integer_value(ls), rows,
			  last_seq);
		return;
	}
	for (size_t i = 0; i < opts->n_public_keys; i++)
		if (!strcmp(opts->public_keys[i], pub) &&
		    audit_export_seal_ok(pub, cid, last_seq, sum, rows, json_integer_value(at), sig))
			return;
	add_break(st, AUDIT_BREAK_CHECKPOINT_MISMATCH, NO_SEQ, NO_SEQ,
		  "the export seal is not signed by a trusted key");
}

int audit_verify_file(FILE *f, const struct audit_verify_opts *opts, struct audit_report *rep,
		      char *err, size_t errlen)
{
	struct vstate st;
	char *line = NULL, chain[37] = "";
	size_t cap = 0;
	long long lineno = 0;
	ssize_t n;
	int rc;

	if ((rc = vstate_init(&st, rep, opts, AUDIT_SYSTEM_CHAIN)) != 0)
		goto out;
	rc = BZ_ERR_INVALID;
	if ((n = getline(&line, &cap, f)) <= 0) {
		snprintf(err, errlen, "line 1: empty file, expected the export header");
		goto out;
	}
	lineno = 1;
	json_t *h = json_loadb(line, (size_t)n, 0, NULL);
	int bad = h == NULL || read_header(h, &st, chain) != 0;
	json_decref(h);
	if (bad) {
		snprintf(err, errlen, "line 1: not a breeze-audit-export-v1 header");
		goto out;
	}
	snprintf(rep->chain_id, sizeof(rep->chain_id), "%s", chain);
	rep->system = strcmp(chain, AUDIT_SYSTEM_CHAIN) == 0;
	start_full(&st);
	checkpoints_prepare(&st, st.start_seq, 1);
	json_t *seal = NULL;
	long long last_seq = 0;
	char last_sum[65] = AUDIT_GENESIS;
	while ((n = getline(&line, &cap, f)) > 0) {
		struct audit_row r;
		long long seq, id;
		lineno++;
		if (n == 1 && line[0] == '\n')
			continue;
		json_t *o = json_loadb(line, (size_t)n, JSON_REJECT_DUPLICATES, NULL);
		if (seal != NULL) {
			add_break(&st, AUDIT_BREAK_INSERTED_ROW, NO_SEQ, NO_SEQ,
				  "line %lld follows the export seal", lineno);
		} else if (json_is_object(o) && json_object_size(o) == 1 &&
			   json_is_object(json_object_get(o, "exportSeal"))) {
			seal = json_incref(json_object_get(o, "exportSeal"));
		} else if (read_row(o, &r, &seq, &id) != 0) {
			add_break(&st, AUDIT_BREAK_ALTERED_ROW, NO_SEQ, NO_SEQ,
				  "line %lld is not a valid export row", lineno);
		} else if ((r.org_id == NULL) != (rep->system != 0) ||
			   (r.org_id != NULL && strcmp(r.org_id, chain) != 0)) {
			add_break(&st, AUDIT_BREAK_INSERTED_ROW, seq, id,
				  "row belongs to another chain (%s)", r.org_id ? r.org_id : "system");
		} else {
			feed_row(&st, &r, seq, id);
			last_seq = seq;
			snprintf(last_sum, sizeof(last_sum), "%s", r.checksum);
		}
		json_decref(o);
		if (st.err != 0)
			break;
	}
	finish(&st, 0, 1);
	check_seal(&st, opts, seal, chain, last_seq, last_sum, (long long)rep->rows_checked);
	json_decref(seal);
	/* With a trusted key, an export none of whose checkpoints it signed is
	 * only self-consistent: anyone can re-seal rows. */
	if (opts->n_public_keys > 0 && st.n_signed_ok == 0 && rep->rows_checked > 0)
		add_break(&st, AUDIT_BREAK_CHECKPOINT_MISMATCH, NO_SEQ, NO_SEQ,
			  "the export holds no checkpoint signed by a trusted key: nothing vouches "
			  "for its rows (run `audit checkpoint` before exporting)");
	rc = st.err;
out:
	free(line);
	vstate_free(&st);
	return rc;
}
