/*
 * audit_chain.h — the canonical form of an audit row, its checksum, and
 * verification of a chain (checklist L2, L4). The byte-for-byte definition
 * is docs/audit-chain.md; migrations/0002_audit_chain.sql computes the same
 * thing in the sealing trigger.
 */
#ifndef BZ_AUDIT_CHAIN_H
#define BZ_AUDIT_CHAIN_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>


#define AUDIT_SYSTEM_CHAIN "00000000-0000-0000-0000-000000000000"
#define AUDIT_GENESIS "0000000000000000000000000000000000000000000000000000000000000000"

/* One audit row as text fields, exactly as stored. NULL = SQL NULL. A row
 * with partner_id or site_id is encoded as breeze-audit-v2, one with both
 * NULL as breeze-audit-v1 (docs/audit-chain.md §1). */
struct audit_row {
	const char *id;	    /* decimal */
	const char *org_id; /* lower-case UUID, NULL for the system and partner chains */
	const char *seq;    /* decimal */
	const char *ts;	    /* "YYYY-MM-DDTHH:MM:SS.ffffffZ" (UTC, 6 digits) */
	const char *actor_type, *actor_id, *action, *resource, *resource_id;
	const char *details; /* JSON text, byte-exact */
	const char *ip_address;
	const char *result;
	const char *prev_checksum;
	const char *checksum; /* not part of the canonical form */
	/* Last, so that positional initializers of v1 rows stay valid. */
	const char *partner_id; /* lower-case UUID of a partner chain's partner, else NULL */
	const char *site_id;	/* lower-case UUID of the site concerned, else NULL */
};

struct audit_witness;

/* Kinds of chain breaks verification reports. */
enum audit_break_kind {
	AUDIT_BREAK_ALTERED_ROW,	/* checksum does not match the row */
	AUDIT_BREAK_MISSING_ROW,	/* gap in seq */
	AUDIT_BREAK_INSERTED_ROW,	/* a row that is not part of the chain */
	AUDIT_BREAK_BROKEN_LINK,	/* prev_checksum != predecessor's checksum */
	AUDIT_BREAK_BAD_ANCHOR,		/* chain start does not match its anchor */
	AUDIT_BREAK_CHECKPOINT_MISMATCH /* a signed head vanished or changed */
};

/* "altered_row", "missing_row", … */
const char *audit_break_kind_name(enum audit_break_kind k);

/* ---- Canonical form (canonical.c) ---- */

/* Length of the canonical timestamp text, "2026-01-02T03:04:05.000006Z". */
#define AUDIT_TS_LEN 27

/* Writes the canonical encoding of ROW (format breeze-audit-v1, or -v2 when
 * it has a partner_id or site_id) into *BUF,
 * growing it with realloc when *CAP is too small (*BUF may start NULL; the
 * caller frees it), and its length into *LEN. Returns 0 or BZ_ERR_NOMEM. */
int audit_canonical_encode(const struct audit_row *row, char **buf, size_t *cap, size_t *len);

/* checksum = lower-case hex SHA-256 of the canonical encoding of ROW into
 * OUT[65]. Returns 0, BZ_ERR_NOMEM or BZ_ERR_CRYPTO. */
int audit_row_checksum(const struct audit_row *row, char out[65]);

/* Timestamps are formatted and parsed by common/iso8601.h. */

/* ---- Verification (verify_state.c, verify_db.c, verify_file.c, verify_report.c, export.c) ---- */

/* At most this many breaks are kept per chain (all are counted). */
#define AUDIT_MAX_BREAKS 1000

struct audit_break {
	enum audit_break_kind kind;
	long long seq; /* the row (or position) concerned; -1 if none */
	long long id;  /* audit_log.id of the row, -1 if none */
	char detail[200];
};

/* Something verification could not vouch for but that is not a break: a
 * checkpoint no trusted key signed (anyone with INSERT on the table can
 * add one, so it must not mark the chain broken), or checkpoints not
 * checked at all for want of a trusted key. */
#define AUDIT_MAX_WARNINGS 100

struct audit_warning {
	const char *kind; /* "untrusted_checkpoint", "unchecked_checkpoints" */
	long long seq;	  /* -1 if none */
	long long id;	  /* audit_checkpoints.id, -1 if none */
	char detail[200];
};

struct audit_report {
	char chain_id[37];
	int system;  /* 1: the system chain (orgId null) */
	int partner; /* 1: a partner chain (chain_id is the partner id) */
	long long rows_checked;
	long long n_breaks; /* breaks found */
	size_t n_kept;	    /* breaks[] entries (≤ AUDIT_MAX_BREAKS) */
	struct audit_break *breaks;
	long long n_warnings; /* warnings found */
	size_t n_warn_kept;   /* warnings[] entries (≤ AUDIT_MAX_WARNINGS) */
	struct audit_warning *warnings;
	int ok; /* no break */
};

struct audit_verify_opts {
	int has_from, has_to;
	int64_t from_us, to_us; /* window: from ≤ ts < to, epoch microseconds */
	/* Ed25519 public keys (64 hex) trusted for checkpoints and anchors.
	 * Only checkpoints validly signed by one of them are compared with the
	 * chain; others are warnings. With no key, no checkpoint is compared
	 * and anchor signatures are not checked (a warning says so). */
	const char *const *public_keys;
	size_t n_public_keys;
	/* Checkpoints read back from the server's log (audit_witness.h), or
	 * NULL: compared with the chain like the stored ones, so rows and
	 * checkpoints rewritten together in the database still show. */
	const struct audit_witness *witness;
};

/* Verifies chain CHAIN_ID (an organization id, a partner id, or
 * AUDIT_SYSTEM_CHAIN) on
 * CONN in one REPEATABLE READ, READ ONLY transaction: every checksum and
 * link from the latest anchor (or genesis) to the head, the anchor, the
 * signed checkpoints and the head recorded in audit_chain_heads. With a
 * window, only rows from the first to the last row in it are checked, plus
 * the link of the first to its predecessor. An existing organization
 * with no rows, no head and no anchor is a break (its whole history is
 * gone). Fills REP (free with audit_report_free). Returns 0 (see rep->ok),
 * BZ_ERR_DB or BZ_ERR_NOMEM. */
int audit_verify_chain(PGconn *conn, const char *chain_id, const struct audit_verify_opts *opts,
		       struct audit_report *rep);

/* Verifies an export (audit_export's format) read from F with no database
 * (the time window of OPTS is not used). Returns 0 (see rep->ok),
 * BZ_ERR_INVALID for input that is not an export (ERR, ERRLEN bytes, then
 * says which line and why) or BZ_ERR_NOMEM. */
int audit_verify_file(FILE *f, const struct audit_verify_opts *opts, struct audit_report *rep,
		      char *err, size_t errlen);

/* Every chain known to the database (heads, rows, anchors, checkpoints,
 * and every organization, which must have one),
 * as a malloc'd array of 37-byte ids in *IDS (caller frees) and *N.
 * Returns 0, BZ_ERR_DB or BZ_ERR_NOMEM. */
int audit_chain_list(PGconn *conn, char (**ids)[37], size_t *n);

/* Sets *KNOWN to 1 if CHAIN (a lower-case UUID) is an organization, a
 * partner, or has any audit row, head, anchor or checkpoint, else 0 (a
 * mistyped id, which verification would otherwise call an intact empty
 * chain). Returns 0 or BZ_ERR_DB. */
int audit_chain_known(PGconn *conn, const char *chain, int *known);

/* Verifies every chain of audit_chain_list() with OPTS (audit_verify_chain),
 * logs each broken chain and one audit.verify.done line, and records the
 * outcome in the metrics registry (breeze_audit_chain_verify_last_success,
 * _timestamp_seconds from bz_now(), _broken_chains). *N_CHAINS and
 * *N_BROKEN receive the counts. Returns 0, or BZ_ERR_DB / BZ_ERR_NOMEM
 * (nothing is recorded then: the last success stays as old as it is). */
int audit_verify_all(PGconn *conn, const struct audit_verify_opts *opts, size_t *n_chains,
		     size_t *n_broken);

/* {"orgId","partnerId","rowsChecked","ok","breaks":[{"kind","seq","id","detail"}],
 *  "warnings":[{"kind","seq","id","detail"}]} (plus "breaksTotal" /
 * "warningsTotal" when entries were left out). New reference. */
json_t *audit_report_json(const struct audit_report *rep);

void audit_report_free(struct audit_report *rep);

/* Writes the export of chain CHAIN_ID as JSON lines to OUT: a header line
 * {"format":"breeze-audit-export-v2","orgId","partnerId","chainId","anchor","checkpoints"},
 * one line per row in seq order, and, when SEED_HEX (the Ed25519 signing
 * seed) is given, a last line {"exportSeal":{…}} signing the chain, last
 * row and row count (docs/audit-chain.md §8). Returns 0, BZ_ERR_DB,
 * BZ_ERR_IO, BZ_ERR_CRYPTO or BZ_ERR_NOMEM. */
int audit_export(PGconn *conn, const char *chain_id, const char *seed_hex, FILE *out);

#endif
