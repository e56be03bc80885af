/*
 * idempotency.h — the idempotency_keys table (migrations/0007): the
 * remembered answers of create requests sent with an Idempotency-Key
 * header. Storage only; the HTTP meaning (scopes, fingerprints, replays) is
 * src/server/http/idempotency.c. It lives in db/ because the HTTP layer, not
 * a domain module, owns it, and http/ may only call layers below it.
 */
#ifndef BZ_DB_IDEMPOTENCY_H
#define BZ_DB_IDEMPOTENCY_H

#include <libpq-fe.h>

/* How long a row may be replayed, in seconds (24 h, as the IETF draft
 * "The Idempotency-Key HTTP Header Field" suggests a key lives a day). */
#define IDEM_TTL_S 86400

/* Which row: all three are NUL-terminated, borrowed. */
struct idem_id {
	const char *caller;   /* "user:<uuid>" or "enroll:<hex>", at most 200 bytes */
	const char *route;    /* "POST /api/v1/users", at most 200 bytes */
	const char *key_hash; /* SHA-256 hex of the key */
};

/* A remembered answer. RESPONSE is malloc'd JSON text (NULL for none) that
 * idem_record_free() releases. */
struct idem_record {
	char fingerprint[65];
	int status;
	int withheld; /* a secret was removed from RESPONSE: not to be replayed */
	char *response;
};

/* Takes the transaction-level advisory lock of ID on C (inside a
 * transaction), without waiting: held until COMMIT or ROLLBACK, so one
 * request per key runs at a time. Returns 0, BZ_ERR_CONFLICT when another
 * transaction holds it (the first request is still running) or BZ_ERR_DB. */
int idem_lock(PGconn *c, const struct idem_id *id);

/* Reads the live (younger than IDEM_TTL_S) row of ID into OUT. Returns 0,
 * BZ_ERR_NOT_FOUND (none, or only an expired one) or BZ_ERR_DB. */
int idem_lookup(PGconn *c, const struct idem_id *id, struct idem_record *out);

/* Inserts REC for ID inside the caller's transaction (replacing an expired
 * row of the same id), then deletes at most 32 other expired rows, skipping
 * rows another transaction has locked, so expiry costs every insert a
 * little and no insert waits for it. Returns 0, BZ_ERR_CONFLICT (a live row
 * exists: cannot happen under idem_lock) or BZ_ERR_DB. */
int idem_store(PGconn *c, const struct idem_id *id, const struct idem_record *rec);

/* Frees REC->response. NULL-safe. */
void idem_record_free(struct idem_record *rec);

#endif
