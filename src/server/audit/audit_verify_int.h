/*
 * audit_verify_int.h — internals shared by the verification files of the
 * audit module (not part of its public face; nothing outside
 * src/server/audit/ includes this):
 *
 *   verify_state.c   the state machine: rows in seq order → breaks
 *   verify_db.c      rows, anchor, checkpoints and head from PostgreSQL
 *   verify_file.c    the same from an export file, offline
 *   verify_report.c  the report as JSON
 *   export.c         writing an export
 */
#ifndef BZ_AUDIT_VERIFY_INT_H
#define BZ_AUDIT_VERIFY_INT_H

#include <openssl/evp.h>
#include <stddef.h>

#include "server/audit/audit_chain.h"

#define NO_SEQ (-1LL)

struct audit_vcheckpoint {
	long long id, seq, created_at;
	char checksum[65], pub[65], sig[129];
	int done;		/* compared (or reported) already */
	long long witness_line; /* > 0: read from line N of a witness log, id unused */
};

struct audit_vanchor {
	int present;
	long long id, first_seq, pruned_rows;
	char prev[65], pub[65], sig[129];
	int has_sig;
	char pruned_before[32], created_at[32];
};

/* One verification in progress. */
struct audit_vstate {
	struct audit_report *rep;
	const struct audit_verify_opts *opts;
	struct audit_vanchor anchor;
	struct audit_vcheckpoint *cps;
	size_t ncps, cpi;
	size_t n_signed_ok; /* checkpoints whose signature a trusted key verified */
	int has_head;
	int org_exists; /* the chain is an existing organization's */
	long long head_seq;
	char head_checksum[65];

	long long start_seq;	/* first position of the verified range */
	const char *start_prev; /* its expected prev_checksum; NULL: a context row comes first */
	long long context_seq;	/* seq of the context row (window's predecessor) */

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

/* ---- verify_state.c ---- */

/* Clears ST and REP for chain CHAIN_ID. Returns 0 or BZ_ERR_CRYPTO. */
int audit_vs_init(struct audit_vstate *st, struct audit_report *rep,
		  const struct audit_verify_opts *opts, const char *chain_id);
void audit_vs_free(struct audit_vstate *st);

/* 1 if PUB (64 hex) is one of O's trusted public keys. */
int audit_vs_key_trusted(const struct audit_verify_opts *o, const char *pub);

/* Records a break (formatted DETAIL, at most 200 bytes kept). */
void audit_vs_break(struct audit_vstate *st, enum audit_break_kind kind, long long seq,
		    long long id, const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Checks the anchor's signature and sets where the chain starts. */
void audit_vs_start_full(struct audit_vstate *st);

/* Checks checkpoint signatures and skips those before FROM_SEQ - 1; with
 * USE_ANCHOR, the checkpoint at the anchor's first_seq - 1 must sign its
 * prev_checksum. */
void audit_vs_checkpoints_prepare(struct audit_vstate *st, long long from_seq, int use_anchor);

/* Compares the checkpoints up to SEQ with the row's stored CHECKSUM. */
void audit_vs_checkpoints_advance(struct audit_vstate *st, long long seq, const char *checksum);

/* The window's predecessor row: only its stored checksum matters. */
void audit_vs_feed_context(struct audit_vstate *st, long long seq, long long id,
			   const char *checksum);

/* One row of the verified range, in seq order. */
void audit_vs_feed_row(struct audit_vstate *st, const struct audit_row *r, long long seq,
		       long long id);

/* After the last row: pending links, checkpoints past the last row (with
 * CHECK_TAIL_CHECKPOINTS) and the recorded head (with CHECK_HEAD). */
void audit_vs_finish(struct audit_vstate *st, int check_head, int check_tail_checkpoints);

/* "checkpoint <id>" or "witness line <n>" for C into BUF (LEN bytes). */
const char *audit_vs_cp_name(const struct audit_vcheckpoint *c, char *buf, size_t len);

/* ---- witness.c ---- */

/* Adds OPTS->witness's checkpoints of ST's chain (when there is a witness)
 * to ST->cps, leaving out copies of stored ones, and sorts them by seq.
 * Returns 0 or BZ_ERR_NOMEM. */
int audit_witness_merge(struct audit_vstate *st);

/* ---- verify_db.c ---- */

typedef void (*audit_row_fn)(void *arg, const struct audit_row *r, long long seq, long long id);

/* Loads the latest anchor, the checkpoints and the head of CHAIN into ST
 * (inside the caller's transaction). Returns 0, BZ_ERR_DB or BZ_ERR_NOMEM. */
int audit_vdb_load_meta(PGconn *conn, const char *chain, struct audit_vstate *st);

/* Streams the rows of CHAIN with LO ≤ seq ≤ HI to FN in seq order, inside
 * the caller's transaction. Returns 0 or BZ_ERR_DB. */
int audit_vdb_read_rows(PGconn *conn, const char *chain, long long lo, long long hi,
			audit_row_fn fn, void *arg);

#endif
