/*
 * enroll_secret.c — since when the current AGENT_ENROLLMENT_SECRET is in
 * use (checklist S6), kept as a fingerprint in secret_fingerprints
 * (migration 0020).
 */
#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "crypto/crypto.h"
#include "server/agents/agents.h"
#include "server/db/db.h"

#define FINGERPRINT_LABEL "breeze secret fingerprint v1"
#define SECRET_VAR "AGENT_ENROLLMENT_SECRET"

/* The first 128 bits of HMAC-SHA-256(SECRET, label) as 32 hex digits. */
static int fingerprint(const char *secret, char out[33])
{
	char mac[BZ_SHA256_HEX_LEN + 1];

	if (crypto_hmac_sha256_hex(secret, strlen(secret), FINGERPRINT_LABEL,
				   strlen(FINGERPRINT_LABEL), mac) != 0)
		return BZ_ERR_CRYPTO;
	memcpy(out, mac, 32);
	out[32] = '\0';
	return 0;
}

int agents_enrollment_secret_seen(PGconn *c, const char *secret, int64_t now)
{
	char fp[33], ts[24];

	if (secret == NULL || *secret == '\0' || fingerprint(secret, fp) != 0)
		return BZ_ERR_INVALID;
	snprintf(ts, sizeof(ts), "%lld", (long long)now);
	const char *p[] = {SECRET_VAR, fp, ts};
	return db_exec(c,
		       "INSERT INTO secret_fingerprints (name, fingerprint, first_seen_at)"
		       " VALUES ($1, $2, to_timestamp($3::bigint)) ON CONFLICT DO NOTHING",
		       3, p);
}

int agents_enrollment_secret_age(PGconn *c, const char *secret, int64_t *first_seen,
				 int64_t *first_enrolment)
{
	char fp[33];
	PGresult *r;

	*first_seen = *first_enrolment = -1;
	if (secret == NULL || *secret == '\0' || fingerprint(secret, fp) != 0)
		return BZ_ERR_INVALID;
	const char *p[] = {SECRET_VAR, fp};
	r = db_query(
		c,
		"SELECT (SELECT floor(extract(epoch FROM first_seen_at))::bigint"
		"          FROM secret_fingerprints WHERE name = $1 AND fingerprint = $2),"
		"       (SELECT floor(extract(epoch FROM min(enrolled_at)))::bigint FROM devices)",
		2, p, NULL);
	if (r == NULL)
		return db_error();
	long long v;
	if (db_val(r, 0, 0) != NULL && sscanf(db_val(r, 0, 0), "%lld", &v) == 1)
		*first_seen = v;
	if (db_val(r, 0, 1) != NULL && sscanf(db_val(r, 0, 1), "%lld", &v) == 1)
		*first_enrolment = v;
	PQclear(r);
	return 0;
}
