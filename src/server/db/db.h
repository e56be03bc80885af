/*
 * db.h — fixed-size libpq connection pool and query helpers. Every query is
 * parameterized ($1…$n, PQexecParams); SQL text never contains input.
 */
#ifndef BZ_DB_H
#define BZ_DB_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stddef.h>

struct db_pool;

/* Opens SIZE connections to URL (a libpq connection URI). Connections that
 * fail are retried lazily on acquire. Returns NULL if not even the first
 * connection can be made; *ERR (static string) then says why, without the
 * URL (which holds a password). */
struct db_pool *db_pool_open(const char *url, unsigned size, const char **err);

/* Closes every connection and frees the pool. Connections must be released. */
void db_pool_close(struct db_pool *pool);

/* Takes a connection, waiting at most TIMEOUT_MS milliseconds. A broken
 * connection is reset first. Returns NULL on timeout or if the database is
 * unreachable (callers answer 503). Release with db_release(). */
PGconn *db_acquire(struct db_pool *pool, int timeout_ms);

/* Returns CONN to the pool. If a transaction was left open it is rolled
 * back first, so a handler's early return cannot leak one. */
void db_release(struct db_pool *pool, PGconn *conn);

/* Runs SQL with NPARAMS text parameters (NULL entries are SQL NULL).
 * Returns the result (caller PQclear()s) when its status is
 * PGRES_COMMAND_OK or PGRES_TUPLES_OK, else logs the server's message and
 * SQLSTATE, clears it and returns NULL. If SQLSTATE is non-NULL it receives
 * the 5-character SQLSTATE (or "") in a 6-byte buffer. */
PGresult *db_query(PGconn *conn, const char *sql, int nparams, const char *const *params,
		   char *sqlstate);

/* Runs SQL like db_query and discards the result. Returns 0 or BZ_ERR_DB. */
int db_exec(PGconn *conn, const char *sql, int nparams, const char *const *params);

/* BEGIN / COMMIT / ROLLBACK. Return 0 or BZ_ERR_DB. */
int db_begin(PGconn *conn);
int db_commit(PGconn *conn);
int db_rollback(PGconn *conn);

/* Connects to URL once (for CLI subcommands). NULL on failure (message
 * logged without the URL). */
PGconn *db_connect(const char *url);

/* 0 if SELECT 1 works on a pooled connection within TIMEOUT_MS. */
int db_ping(struct db_pool *pool, int timeout_ms);

/* Value of row R column C, or NULL for SQL NULL. */
const char *db_val(const PGresult *res, int r, int c);

/* SQL expression rendering the timestamptz column COL as ISO 8601 UTC with
 * whole seconds ("2026-01-02T03:04:05Z"), the API's time format. */
#define DB_TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

/* Builds the PostgreSQL array literal "{id,id,…}" from N canonical UUID
 * strings IDS (each checked with is_uuid()), for binding as a uuid[]
 * parameter. Returns a malloc'd string (caller frees), or NULL when an
 * entry is not a UUID or allocation fails. N = 0 gives "{}". */
char *db_uuid_array(const char *const *ids, size_t n);

/* db_uuid_array() over a jansson array of UUID strings (borrowed). */
char *db_uuid_array_json(const json_t *ids);

#endif
