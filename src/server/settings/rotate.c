/*
 * rotate.c — re-encryption of every encrypted value under the active key
 * (settings_rotate) and the per-key encryption counts (settings.h;
 * docs/encryption.md, "Rotating the key"). Batches of rows taken with
 * FOR UPDATE SKIP LOCKED, one transaction each, so the server keeps
 * serving and a crash loses at most the batch in flight, which a rerun
 * redoes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"
#include "server/db/db.h"
#include "server/settings/settings.h"

/* Every encrypted column. LEGACY: the AAD prefix (before the row id) of its pre-0017 "v1:"
 * values (crypto/aead.h), or NULL. The names are constants, never input. */
static const struct target {
	const char *table, *column, *legacy;
} targets[] = {
	{"partners", "settings_enc", NULL},
	{"sites", "settings_enc", NULL},
	{"webhooks", "secret_enc", "webhooks.secret:"},
};

#define ZERO_UUID "00000000-0000-0000-0000-000000000000"

/* Running totals of one target. */
struct tally {
	long long done, failed;
	int batches;
};

/* Re-seals the value SEALED of row ID of T under KR's active key into
 * *OUT. Returns 0 or settings_open()'s error (logged there). */
static int reseal(const struct crypto_keyring *kr, const struct target *t, const char *id,
		  const char *sealed, char **out)
{
	char aad[160], legacy[96];
	uint8_t *plain = NULL;
	size_t len = 0;
	int rc;

	*out = NULL;
	if (t->legacy != NULL)
		snprintf(legacy, sizeof(legacy), "%s%s", t->legacy, id);
	rc = settings_open(kr, t->table, t->column, id, sealed, t->legacy ? legacy : NULL, &plain,
			   &len, NULL, NULL);
	if (rc != 0)
		return rc;
	settings_aad(aad, sizeof(aad), t->table, t->column, id);
	*out = crypto_env_seal(kr, plain, len, aad);
	crypto_wipe(plain, len);
	free(plain);
	return *out == NULL ? BZ_ERR_CRYPTO : 0;
}

/* Re-encrypts the rows of R (id, value) inside the open transaction;
 * counts them into TL. */
static int reseal_rows(PGconn *c, const struct crypto_keyring *kr, const struct target *t,
		       PGresult *r, struct tally *tl, long long *n_done)
{
	char sql[160];
	char *sealed;

	snprintf(sql, sizeof(sql), "UPDATE %s SET %s = $2 WHERE id = $1::uuid", t->table,
		 t->column);
	for (int i = 0; i < PQntuples(r); i++) {
		const char *id = PQgetvalue(r, i, 0);
		if (reseal(kr, t, id, PQgetvalue(r, i, 1), &sealed) != 0) {
			tl->failed++;
			continue;
		}
		const char *p[2] = {id, sealed};
		int rc = db_exec(c, sql, 2, p);
		free(sealed);
		if (rc != 0)
			return rc;
		(*n_done)++;
	}
	return 0;
}

/* One batch of T after row LAST (updated): up to N rows not under the
 * active key, re-encrypted and counted in one transaction. *GOT gets the
 * number of rows taken (0: this pass is over). */
static int one_batch(PGconn *c, const struct crypto_keyring *kr, const struct target *t, int n,
		     char last[37], int *got, struct tally *tl)
{
	char sql[400], prefix[64], nbuf[16];
	long long n_done = 0;
	PGresult *r;
	int rc;

	snprintf(sql, sizeof(sql),
		 "SELECT id::text, %s FROM %s WHERE %s IS NOT NULL"
		 " AND left(%s, length($1)) <> $1 AND id > $2::uuid"
		 " ORDER BY id LIMIT $3::int FOR UPDATE SKIP LOCKED",
		 t->column, t->table, t->column, t->column);
	snprintf(prefix, sizeof(prefix), CRYPTO_ENV_PREFIX "%s:", kr->k[0].id);
	snprintf(nbuf, sizeof(nbuf), "%d", n);
	const char *p[3] = {prefix, last, nbuf};
	*got = 0;
	if ((rc = db_begin(c)) != 0)
		return rc;
	if ((r = db_query(c, sql, 3, p, NULL)) == NULL) {
		db_rollback(c);
		return BZ_ERR_DB;
	}
	*got = PQntuples(r);
	if (*got > 0)
		snprintf(last, 37, "%s", PQgetvalue(r, *got - 1, 0));
	rc = reseal_rows(c, kr, t, r, tl, &n_done);
	PQclear(r);
	if (rc == 0 && n_done > 0)
		rc = settings_count_encryptions(c, kr->k[0].id, n_done, NULL);
	if (rc == 0)
		rc = db_commit(c);
	if (rc != 0) {
		db_rollback(c);
		return rc;
	}
	tl->done += n_done;
	return 0;
}

/* The values of T not under the active key. Returns the count or -1. */
static long long remaining(PGconn *c, const struct crypto_keyring *kr, const struct target *t)
{
	char sql[200], prefix[64];
	long long n;

	snprintf(sql, sizeof(sql),
		 "SELECT count(*) FROM %s WHERE %s IS NOT NULL AND left(%s, length($1)) <> $1",
		 t->table, t->column, t->column);
	snprintf(prefix, sizeof(prefix), CRYPTO_ENV_PREFIX "%s:", kr->k[0].id);
	const char *p[1] = {prefix};
	PGresult *r = db_query(c, sql, 1, p, NULL);
	if (r == NULL)
		return -1;
	n = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	return n;
}

/* Rotates T: passes over its rows until one re-encrypts nothing. *BUDGET
 * counts the batches left (-1: no limit). */
static int rotate_target(PGconn *c, const struct crypto_keyring *kr, const struct target *t,
			 const struct settings_rotate_opts *o, int *budget, struct tally *tl)
{
	long long before;
	int got, rc;

	do {
		char last[37] = ZERO_UUID;
		before = tl->done;
		tl->failed = 0;
		do {
			if (*budget == 0)
				return 0;
			if ((rc = one_batch(c, kr, t, o->batch, last, &got, tl)) != 0)
				return rc;
			if (got > 0) {
				if (*budget > 0)
					(*budget)--;
				tl->batches++;
				fprintf(o->out,
					"rotate-encryption-key: %s.%s: batch %d: %lld re-encrypted, "
					"%lld undecryptable so far\n",
					t->table, t->column, tl->batches, tl->done, tl->failed);
				fflush(o->out);
			}
		} while (got > 0);
	} while (tl->done > before);
	return 0;
}

/* 1 if a key of KR has the crypto_aead fingerprint FP (the key named in a
 * pre-0017 "v1:<fingerprint>:…" value), else 0. Fingerprints are public. */
static int fingerprint_known(const struct crypto_keyring *kr, const char *fp)
{
	for (size_t i = 0; i < kr->n; i++)
		if (strcmp(kr->k[i].fingerprint, fp) == 0)
			return 1;
	return 0;
}

/* --dry-run: the values of T per key, as lines on OUT; *UNKNOWN grows by
 * the number of values no key of KR can open (unknown key id, or a "v1:"
 * value whose fingerprint is no keyring key's). */
static int dry_run(PGconn *c, const struct crypto_keyring *kr, const struct target *t, FILE *out,
		   long long *unknown)
{
	char sql[400];
	PGresult *r;

	snprintf(sql, sizeof(sql),
		 "SELECT CASE WHEN %s LIKE 'enc:v1:%%' THEN split_part(%s, ':', 3)"
		 " ELSE 'v1:' || split_part(%s, ':', 2) END, count(*) FROM %s"
		 " WHERE %s IS NOT NULL GROUP BY 1 ORDER BY 1",
		 t->column, t->column, t->column, t->table, t->column);
	if ((r = db_query(c, sql, 0, NULL, NULL)) == NULL)
		return BZ_ERR_DB;
	for (int i = 0; i < PQntuples(r); i++) {
		const char *k = PQgetvalue(r, i, 0), *what = "unknown key: cannot be re-encrypted";
		int idx = crypto_keyring_find(kr, k);
		if (idx == 0)
			what = "active";
		else if (idx > 0)
			what = "previous: to re-encrypt";
		else if (strncmp(k, "v1:", 3) == 0 && fingerprint_known(kr, k + 3))
			what = "old format: to re-encrypt";
		else
			*unknown += strtoll(PQgetvalue(r, i, 1), NULL, 10);
		fprintf(out, "%s.%s key=%s values=%s (%s)\n", t->table, t->column, k,
			PQgetvalue(r, i, 1), what);
	}
	PQclear(r);
	return 0;
}

int settings_rotate(PGconn *c, const struct crypto_keyring *kr,
		    const struct settings_rotate_opts *o)
{
	const size_t nt = sizeof(targets) / sizeof(*targets);
	int budget = o->max_batches > 0 ? o->max_batches : -1, rc;
	long long left = 0, failed = 0, unknown = 0;

	for (size_t i = 0; i < nt; i++) {
		if (o->dry_run) {
			if ((rc = dry_run(c, kr, &targets[i], o->out, &unknown)) != 0)
				return rc;
			continue;
		}
		struct tally tl = {0};
		if ((rc = rotate_target(c, kr, &targets[i], o, &budget, &tl)) != 0)
			return rc;
		failed += tl.failed;
	}
	for (size_t i = 0; i < nt; i++) {
		long long n = remaining(c, kr, &targets[i]);
		if (n < 0)
			return BZ_ERR_DB;
		left += n;
		fprintf(o->out, "%s.%s: %lld value(s) not under key %s\n", targets[i].table,
			targets[i].column, n, kr->k[0].id);
	}
	if (o->dry_run) {
		if (unknown > 0)
			fprintf(o->out,
				"rotate-encryption-key: %lld value(s) under an unknown key cannot "
				"be re-encrypted; put their key into APP_ENCRYPTION_KEYRING\n",
				unknown);
		return 0;
	}
	if (budget == 0 && left > failed)
		fprintf(o->out,
			"rotate-encryption-key: stopped after %d batch(es); run it again to "
			"continue\n",
			o->max_batches);
	if (failed > 0)
		fprintf(o->out,
			"rotate-encryption-key: %lld value(s) cannot be decrypted with any key "
			"of the keyring (see the log lines encryption.undecryptable)\n",
			failed);
	return left > 0 ? BZ_ERR_CONFLICT : 0;
}

int settings_key_usage_check(PGconn *c, FILE *out)
{
	static const char *sql = "SELECT key_id, encryptions, encryptions >= $1::bigint"
				 " FROM encryption_key_usage ORDER BY key_id";
	char warn[24];
	int n_warn = 0;
	PGresult *r;

	snprintf(warn, sizeof(warn), "%lld", SETTINGS_KEY_WARN_ENCRYPTIONS);
	const char *p[1] = {warn};
	if ((r = db_query(c, sql, 1, p, NULL)) == NULL)
		return BZ_ERR_DB;
	for (int i = 0; i < PQntuples(r); i++) {
		int high = PQgetvalue(r, i, 2)[0] == 't';
		n_warn += high;
		fprintf(out, "key %s: %s encryption(s)%s\n", PQgetvalue(r, i, 0),
			PQgetvalue(r, i, 1),
			high ? " — WARNING: past 2^31, rotate the key (NIST SP 800-38D limit "
			       "2^32)"
			     : "");
	}
	PQclear(r);
	return n_warn;
}
