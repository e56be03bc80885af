/*
 * audit_checkpoint.h — signed chain heads (checklist L4). A checkpoint
 * records (chain, seq, checksum, time) signed with Ed25519
 * (AUDIT_SIGNING_KEY, a 32-byte seed in hex; RFC 8032), so deleting the
 * newest rows of a chain — which the hash chain alone cannot reveal — is
 * detected by verification.
 */
#ifndef BZ_AUDIT_CHECKPOINT_H
#define BZ_AUDIT_CHECKPOINT_H

#include <libpq-fe.h>
#include <stddef.h>

/* Derives the public key (64 hex chars + NUL into OUT) from SEED_HEX.
 * Returns 0 or BZ_ERR_CRYPTO / BZ_ERR_INVALID. */
int audit_public_key_hex(const char *seed_hex, char out[65]);

/*
 * Signatures. The signed message is the canonical field encoding of
 * docs/audit-chain.md ("N" / "S<len>:<value>,") of:
 *   checkpoint: "breeze-audit-checkpoint-v1", chain id, seq, checksum,
 *               created_at (epoch seconds, decimal)
 *   anchor:     "breeze-audit-anchor-v1", chain id, first_seq, prev_checksum
 * signed with pure Ed25519 (no pre-hash). Keys and signatures are
 * lower-case hex (64 and 128 characters).
 *
 * *_sign write SIG_HEX[129] and, when PUB_HEX is non-NULL, the public key
 * into PUB_HEX[65]; they return 0, BZ_ERR_INVALID (bad seed) or
 * BZ_ERR_CRYPTO. *_sig_ok return 1 for a valid signature, else 0.
 */
int audit_checkpoint_sign(const char *seed_hex, const char *chain_id, long long seq,
			  const char *checksum, long long created_at, char sig_hex[129],
			  char pub_hex[65]);
int audit_checkpoint_sig_ok(const char *pub_hex, const char *chain_id, long long seq,
			    const char *checksum, long long created_at, const char *sig_hex);
/* The seal on the last line of an export (docs/audit-chain.md §8): signs
 * ("breeze-audit-export-v1", chain id, last seq, last checksum, row count,
 * exported-at epoch seconds) so an export cannot be cut short or have rows
 * dropped and re-sealed without the verifier noticing. _sign returns 0 or
 * BZ_ERR_*; _ok returns 1 when SIG_HEX verifies under PUB_HEX. */
int audit_export_seal_sign(const char *seed_hex, const char *chain_id, long long last_seq,
			   const char *last_checksum, long long rows, long long exported_at,
			   char sig_hex[129], char pub_hex[65]);
int audit_export_seal_ok(const char *pub_hex, const char *chain_id, long long last_seq,
			 const char *last_checksum, long long rows, long long exported_at,
			 const char *sig_hex);

int audit_anchor_sign(const char *seed_hex, const char *chain_id, long long first_seq,
		      const char *prev_checksum, char sig_hex[129], char pub_hex[65]);
int audit_anchor_sig_ok(const char *pub_hex, const char *chain_id, long long first_seq,
			const char *prev_checksum, const char *sig_hex);

/* Signs (chain CHAIN_ID, SEQ, CHECKSUM, now) with SEED_HEX and inserts the
 * checkpoint on CONN, inside the caller's transaction (SEQ is decimal
 * text). Returns 0, BZ_ERR_INVALID (bad seed), BZ_ERR_CRYPTO or BZ_ERR_DB. */
int audit_checkpoint_write(PGconn *conn, const char *seed_hex, const char *chain_id,
			   const char *seq, const char *checksum);

/* The msg of the log line written for every checkpoint that
 * audit_checkpoint_all() committed (M4, the off-host witness of the chain
 * heads): {"msg":"audit.checkpoint","chainId","seq","checksum",
 * "createdAt" (epoch seconds, signed),"publicKey","signature"}. */
#define AUDIT_CHECKPOINT_LOG_MSG "audit.checkpoint"

/* Records one checkpoint per chain whose head moved since its last
 * checkpoint, on CONN (breeze_app), and once committed writes one
 * AUDIT_CHECKPOINT_LOG_MSG line per checkpoint on stderr. (The checkpoint
 * audit_write() signs inside a new chain's first transaction is not
 * logged: that transaction may still roll back.) *WRITTEN receives how
 * many. Returns 0, BZ_ERR_DB, BZ_ERR_NOMEM or BZ_ERR_CRYPTO. */
int audit_checkpoint_all(PGconn *conn, const char *seed_hex, int *written);

#endif
