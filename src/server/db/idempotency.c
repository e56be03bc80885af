/*
 * idempotency.c — SQL of the idempotency_keys table (see idempotency.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "server/db/db.h"
#include "server/db/idempotency.h"

int idem_lock(PGconn *c, const struct idem_id *id)
{
	/* 7314010: this table's advisory lock class (see users.c, migrate.c
	 * for the others). A 32-bit hash collision only makes one request of
	 * an unrelated key wait for a retry (409), never share an answer. */
	static const char *sql =
		"SELECT pg_try_advisory_xact_lock(7314010, hashtext($1 || ' ' || $2 || ' ' || $3))";
	const char *p[] = {id->caller, id->route, id->key_hash};
	PGresult *r = db_query(c, sql, 3, p, NULL);

	if (r == NULL)
		return BZ_ERR_DB;
	int got = PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
	PQclear(r);
	return got ? 0 : BZ_ERR_CONFLICT;
}

int idem_lookup(PGconn *c, const struct idem_id *id, struct idem_record *out)
{
	static const char *sql =
		"SELECT fingerprint, status, response::text, withheld FROM idempotency_keys"
		" WHERE caller = $1 AND route = $2 AND key_hash = $3"
		" AND created_at > now() - make_interval(secs => $4)";
	char ttl[16];
	snprintf(ttl, sizeof(ttl), "%d", IDEM_TTL_S);
	const char *p[] = {id->caller, id->route, id->key_hash, ttl};
	PGresult *r = db_query(c, sql, 4, p, NULL);
	int rc = 0;

	memset(out, 0, sizeof(*out));
	if (r == NULL)
		return BZ_ERR_DB;
	if (PQntuples(r) != 1) {
		rc = BZ_ERR_NOT_FOUND;
		goto out;
	}
	snprintf(out->fingerprint, sizeof(out->fingerprint), "%s", PQgetvalue(r, 0, 0));
	out->status = atoi(PQgetvalue(r, 0, 1));
	out->withheld = strcmp(PQgetvalue(r, 0, 3), "t") == 0;
	if (!PQgetisnull(r, 0, 2) && (out->response = strdup(PQgetvalue(r, 0, 2))) == NULL)
		rc = BZ_ERR_NOMEM;
out:
	PQclear(r);
	return rc;
}

int idem_store(PGconn *c, const struct idem_id *id, const struct idem_record *rec)
{
	static const char *insert_sql =
		"INSERT INTO idempotency_keys"
		" (caller, route, key_hash, fingerprint, status, response, withheld)"
		" VALUES ($1, $2, $3, $4, $5::integer, $6::jsonb, $7::boolean)"
		" ON CONFLICT (caller, route, key_hash) DO UPDATE SET"
		" fingerprint = EXCLUDED.fingerprint, status = EXCLUDED.status,"
		" response = EXCLUDED.response, withheld = EXCLUDED.withheld, created_at = now()"
		" WHERE idempotency_keys.created_at <= now() - make_interval(secs => $8)";
	static const char *sweep_sql = "DELETE FROM idempotency_keys WHERE ctid = ANY (ARRAY("
				       " SELECT ctid FROM idempotency_keys"
				       " WHERE created_at <= now() - make_interval(secs => $1)"
				       " LIMIT 32 FOR UPDATE SKIP LOCKED))";
	char status[16], ttl[16];

	snprintf(status, sizeof(status), "%d", rec->status);
	snprintf(ttl, sizeof(ttl), "%d", IDEM_TTL_S);
	const char *p[] = {id->caller,
			   id->route,
			   id->key_hash,
			   rec->fingerprint,
			   status,
			   rec->response,
			   rec->withheld ? "true" : "false",
			   ttl};
	PGresult *r = db_query(c, insert_sql, 8, p, NULL);
	if (r == NULL)
		return BZ_ERR_DB;
	int n = atoi(PQcmdTuples(r));
	PQclear(r);
	if (n != 1)
		return BZ_ERR_CONFLICT;
	const char *sp[] = {ttl};
	return db_exec(c, sweep_sql, 1, sp);
}

void idem_record_free(struct idem_record *rec)
{
	if (rec == NULL)
		return;
	free(rec->response);
	rec->response = NULL;
}
