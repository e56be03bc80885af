/*
 * checkpoint.c — signed chain heads (checklist L4) and the Ed25519
 * signatures of checkpoints and retention anchors, via OpenSSL EVP.
 *
 * A checkpoint is what lets verification notice that the newest rows of a
 * chain were deleted: the chain itself still looks intact, but a signed
 * (seq, checksum) that the database operator could not forge is gone.
 */
#include "server/audit/audit_checkpoint.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "common/text.h"
#include "crypto/crypto.h"
#include "server/db/db.h"

#define ED25519_LEN 32
#define ED25519_SIG_LEN 64
#define PAYLOAD_MAX 512

/* Decodes exactly 2*LEN hex characters of HEX into OUT (OpenSSL's
 * decoder, no separators). Returns 0 or BZ_ERR_INVALID. */
static int unhex(const char *hex, uint8_t *out, size_t len)
{
	size_t n = 0;

	if (hex == NULL || strlen(hex) != 2 * len ||
	    OPENSSL_hexstr2buf_ex(out, len, &n, hex, '\0') != 1 || n != len)
		return BZ_ERR_INVALID;
	return 0;
}

/* Appends one canonical field "S<len>:<value>," to BUF (LEN used of CAP). */
static int put_field(char *buf, size_t cap, size_t *len, const char *v)
{
	int n = snprintf(buf + *len, cap - *len, "S%zu:%s,", strlen(v), v);

	if (n < 0 || (size_t)n >= cap - *len)
		return BZ_ERR_INVALID;
	*len += (size_t)n;
	return 0;
}

static int checkpoint_payload(char *buf, size_t cap, size_t *len, const char *chain_id,
			      long long seq, const char *checksum, long long created_at)
{
	char s[24], t[24];

	snprintf(s, sizeof(s), "%lld", seq);
	snprintf(t, sizeof(t), "%lld", created_at);
	*len = 0;
	if (put_field(buf, cap, len, "breeze-audit-checkpoint-v1") ||
	    put_field(buf, cap, len, chain_id) || put_field(buf, cap, len, s) ||
	    put_field(buf, cap, len, checksum) || put_field(buf, cap, len, t))
		return BZ_ERR_INVALID;
	return 0;
}

static int anchor_payload(char *buf, size_t cap, size_t *len, const char *chain_id,
			  long long first_seq, const char *prev_checksum)
{
	char s[24];

	snprintf(s, sizeof(s), "%lld", first_seq);
	*len = 0;
	if (put_field(buf, cap, len, "breeze-audit-anchor-v1") ||
	    put_field(buf, cap, len, chain_id) || put_field(buf, cap, len, s) ||
	    put_field(buf, cap, len, prev_checksum))
		return BZ_ERR_INVALID;
	return 0;
}

static int seal_payload(char *buf, size_t cap, size_t *len, const char *chain_id,
			long long last_seq, const char *last_checksum, long long rows,
			long long exported_at)
{
	char s[24], n[24], t[24];

	snprintf(s, sizeof(s), "%lld", last_seq);
	snprintf(n, sizeof(n), "%lld", rows);
	snprintf(t, sizeof(t), "%lld", exported_at);
	*len = 0;
	if (put_field(buf, cap, len, "breeze-audit-export-v1") ||
	    put_field(buf, cap, len, chain_id) || put_field(buf, cap, len, s) ||
	    put_field(buf, cap, len, last_checksum) || put_field(buf, cap, len, n) ||
	    put_field(buf, cap, len, t))
		return BZ_ERR_INVALID;
	return 0;
}

static EVP_PKEY *key_from_seed(const char *seed_hex)
{
	uint8_t seed[ED25519_LEN];
	EVP_PKEY *k = NULL;

	if (unhex(seed_hex, seed, sizeof(seed)) == 0)
		k = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, sizeof(seed));
	OPENSSL_cleanse(seed, sizeof(seed));
	return k;
}

int audit_public_key_hex(const char *seed_hex, char out[65])
{
	uint8_t pub[ED25519_LEN];
	size_t len = sizeof(pub);
	EVP_PKEY *k = key_from_seed(seed_hex);

	if (k == NULL)
		return BZ_ERR_INVALID;
	int ok = EVP_PKEY_get_raw_public_key(k, pub, &len) == 1 && len == sizeof(pub);
	EVP_PKEY_free(k);
	if (!ok)
		return BZ_ERR_CRYPTO;
	crypto_hex(pub, sizeof(pub), out);
	return 0;
}

static int sign(const char *seed_hex, const char *msg, size_t len, char sig_hex[129],
		char pub_hex[65])
{
	uint8_t sig[ED25519_SIG_LEN];
	size_t siglen = sizeof(sig);
	EVP_PKEY *k = key_from_seed(seed_hex);
	EVP_MD_CTX *ctx = NULL;
	int rc = BZ_ERR_CRYPTO;

	if (k == NULL)
		return BZ_ERR_INVALID;
	if ((ctx = EVP_MD_CTX_new()) == NULL)
		goto out;
	/* Ed25519 is "pure": no digest is named, the whole message is signed. */
	if (EVP_DigestSignInit(ctx, NULL, NULL, NULL, k) != 1 ||
	    EVP_DigestSign(ctx, sig, &siglen, (const uint8_t *)msg, len) != 1 ||
	    siglen != sizeof(sig))
		goto out;
	crypto_hex(sig, sizeof(sig), sig_hex);
	if (pub_hex != NULL) {
		uint8_t pub[ED25519_LEN];
		size_t plen = sizeof(pub);
		if (EVP_PKEY_get_raw_public_key(k, pub, &plen) != 1 || plen != sizeof(pub))
			goto out;
		crypto_hex(pub, sizeof(pub), pub_hex);
	}
	rc = 0;
out:
	EVP_MD_CTX_free(ctx);
	EVP_PKEY_free(k);
	return rc;
}

static int sig_ok(const char *pub_hex, const char *msg, size_t len, const char *sig_hex)
{
	uint8_t pub[ED25519_LEN], sig[ED25519_SIG_LEN];
	EVP_PKEY *k = NULL;
	EVP_MD_CTX *ctx = NULL;
	int ok = 0;

	if (unhex(pub_hex, pub, sizeof(pub)) || unhex(sig_hex, sig, sizeof(sig)))
		return 0;
	k = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, sizeof(pub));
	ctx = EVP_MD_CTX_new();
	if (k != NULL && ctx != NULL && EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, k) == 1)
		ok = EVP_DigestVerify(ctx, sig, sizeof(sig), (const uint8_t *)msg, len) == 1;
	EVP_MD_CTX_free(ctx);
	EVP_PKEY_free(k);
	return ok;
}

int audit_checkpoint_sign(const char *seed_hex, const char *chain_id, long long seq,
			  const char *checksum, long long created_at, char sig_hex[129],
			  char pub_hex[65])
{
	char msg[PAYLOAD_MAX];
	size_t len;

	if (checkpoint_payload(msg, sizeof(msg), &len, chain_id, seq, checksum, created_at))
		return BZ_ERR_INVALID;
	return sign(seed_hex, msg, len, sig_hex, pub_hex);
}

int audit_checkpoint_sig_ok(const char *pub_hex, const char *chain_id, long long seq,
			    const char *checksum, long long created_at, const char *sig_hex)
{
	char msg[PAYLOAD_MAX];
	size_t len;

	if (checkpoint_payload(msg, sizeof(msg), &len, chain_id, seq, checksum, created_at))
		return 0;
	return sig_ok(pub_hex, msg, len, sig_hex);
}

int audit_anchor_sign(const char *seed_hex, const char *chain_id, long long first_seq,
		      const char *prev_checksum, char sig_hex[129], char pub_hex[65])
{
	char msg[PAYLOAD_MAX];
	size_t len;

	if (anchor_payload(msg, sizeof(msg), &len, chain_id, first_seq, prev_checksum))
		return BZ_ERR_INVALID;
	return sign(seed_hex, msg, len, sig_hex, pub_hex);
}

int audit_anchor_sig_ok(const char *pub_hex, const char *chain_id, long long first_seq,
			const char *prev_checksum, const char *sig_hex)
{
	char msg[PAYLOAD_MAX];
	size_t len;

	if (anchor_payload(msg, sizeof(msg), &len, chain_id, first_seq, prev_checksum))
		return 0;
	return sig_ok(pub_hex, msg, len, sig_hex);
}

int audit_export_seal_sign(const char *seed_hex, const char *chain_id, long long last_seq,
			   const char *last_checksum, long long rows, long long exported_at,
			   char sig_hex[129], char pub_hex[65])
{
	char msg[PAYLOAD_MAX];
	size_t len;

	if (seal_payload(msg, sizeof(msg), &len, chain_id, last_seq, last_checksum, rows,
			 exported_at))
		return BZ_ERR_INVALID;
	return sign(seed_hex, msg, len, sig_hex, pub_hex);
}

int audit_export_seal_ok(const char *pub_hex, const char *chain_id, long long last_seq,
			 const char *last_checksum, long long rows, long long exported_at,
			 const char *sig_hex)
{
	char msg[PAYLOAD_MAX];
	size_t len;

	if (seal_payload(msg, sizeof(msg), &len, chain_id, last_seq, last_checksum, rows,
			 exported_at))
		return 0;
	return sig_ok(pub_hex, msg, len, sig_hex);
}

/* Heads that moved since their chain's newest checkpoint. The head must be
 * a row that exists with that checksum: a head row edited behind the
 * trigger's back is never signed. */
static const char *moved_heads_sql =
	"SELECT h.chain_id, h.seq, h.checksum FROM audit_chain_heads h"
	" JOIN audit_log l ON l.chain_id = h.chain_id AND l.seq = h.seq AND l.checksum = h.checksum"
	" WHERE h.seq > 0 AND h.seq IS DISTINCT FROM (SELECT c.seq FROM audit_checkpoints c"
	"   WHERE c.chain_id = h.chain_id ORDER BY c.seq DESC, c.id DESC LIMIT 1)"
	" ORDER BY h.chain_id";

/* created_at is stored in whole seconds: exactly the value that is signed. */
static const char *insert_checkpoint_sql =
	"INSERT INTO audit_checkpoints (chain_id, seq, checksum, created_at, public_key, signature)"
	" VALUES ($1::uuid, $2::bigint, $3, to_timestamp($4::bigint), $5, $6)";

/* One signed checkpoint as written: what its log line carries. */
struct signed_cp {
	char chain_id[37], seq[24], checksum[65], pub[65], sig[129];
	long long created_at;
};

/* Signs and inserts (CHAIN_ID, SEQ, CHECKSUM, now) into *CP. Returns 0 or
 * BZ_ERR_*. */
static int checkpoint_insert(PGconn *conn, const char *seed_hex, const char *chain_id,
			     const char *seq, const char *checksum, struct signed_cp *cp)
{
	char when[24];
	int rc;

	cp->created_at = (long long)bz_now();
	if (strlen(chain_id) >= sizeof(cp->chain_id) || strlen(seq) >= sizeof(cp->seq) ||
	    strlen(checksum) >= sizeof(cp->checksum))
		return BZ_ERR_INVALID;
	text_copy(cp->chain_id, sizeof(cp->chain_id), chain_id);
	text_copy(cp->seq, sizeof(cp->seq), seq);
	text_copy(cp->checksum, sizeof(cp->checksum), checksum);
	rc = audit_checkpoint_sign(seed_hex, chain_id, atoll(seq), checksum, cp->created_at,
				   cp->sig, cp->pub);
	if (rc != 0)
		return rc;
	snprintf(when, sizeof(when), "%lld", cp->created_at);
	const char *p[6] = {chain_id, seq, checksum, when, cp->pub, cp->sig};
	return db_exec(conn, insert_checkpoint_sql, 6, p) != 0 ? BZ_ERR_DB : 0;
}

int audit_checkpoint_write(PGconn *conn, const char *seed_hex, const char *chain_id,
			   const char *seq, const char *checksum)
{
	struct signed_cp cp;

	return checkpoint_insert(conn, seed_hex, chain_id, seq, checksum, &cp);
}

/* The witness line of CP (docs/logging.md): everything needed to check the
 * checkpoint later without the database — `audit verify --witness` reads
 * these lines back (witness.c). Public values only: the signature and key
 * are not secrets. */
static void log_checkpoint(const struct signed_cp *cp)
{
	json_t *f = json_pack("{s:s,s:I,s:s,s:I,s:s,s:s}", "chainId", cp->chain_id, "seq",
			      (json_int_t)atoll(cp->seq), "checksum", cp->checksum, "createdAt",
			      (json_int_t)cp->created_at, "publicKey", cp->pub, "signature",
			      cp->sig);

	if (f != NULL)
		log_json(LOG_LEVEL_INFO, AUDIT_CHECKPOINT_LOG_MSG, f);
	json_decref(f);
}

int audit_checkpoint_all(PGconn *conn, const char *seed_hex, int *written)
{
	char pub[65];
	int rc = BZ_ERR_DB, n = 0;
	PGresult *r = NULL;
	struct signed_cp *cps = NULL;

	*written = 0;
	if ((rc = audit_public_key_hex(seed_hex, pub)) != 0)
		return rc;
	rc = BZ_ERR_DB;
	if (db_begin(conn) != 0)
		return BZ_ERR_DB;
	if ((r = db_query(conn, moved_heads_sql, 0, NULL, NULL)) == NULL)
		goto out;
	if (PQntuples(r) > 0 && (cps = calloc((size_t)PQntuples(r), sizeof(*cps))) == NULL) {
		rc = BZ_ERR_NOMEM;
		goto out;
	}
	for (int i = 0; i < PQntuples(r); i++) {
		int err = checkpoint_insert(conn, seed_hex, PQgetvalue(r, i, 0),
					    PQgetvalue(r, i, 1), PQgetvalue(r, i, 2), &cps[n]);
		if (err != 0) {
			rc = err;
			goto out;
		}
		n++;
	}
	if (db_commit(conn) != 0)
		goto out;
	*written = n;
	rc = 0;
	/* Logged only once committed: a witness line names a checkpoint that
	 * exists (or existed, until someone removed it). */
	for (int i = 0; i < n; i++)
		log_checkpoint(&cps[i]);
	if (n > 0) {
		char nbuf[16];
		snprintf(nbuf, sizeof(nbuf), "%d", n);
		log_info("audit.checkpoint.done", "chains", nbuf, NULL);
	}
out:
	PQclear(r);
	free(cps);
	if (rc != 0)
		db_rollback(conn);
	return rc;
}
