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

/*
 * Deadlines of pooled connections (0 = off for each). The three timeouts
 * are PostgreSQL session settings (statement_timeout, lock_timeout,
 * idle_in_transaction_session_timeout, in milliseconds); the keepalive
 * values are libpq's keepalives_idle/_interval (seconds), keepalives_count
 * and tcp_user_timeout (milliseconds). REQUEST_DEADLINE_MS bounds everything
 * one holder does between db_acquire() (its pool wait included) and
 * db_release(): a query still unanswered then is abandoned on the client
 * side (the connection is dropped), which also covers a frozen server that
 * no longer enforces its own timeouts.
 */
struct db_options {
	int statement_timeout_ms;
	int lock_timeout_ms;
	int idle_in_transaction_timeout_ms;
	int keepalive_idle_s;
	int keepalive_interval_s;
	int keepalive_count;
	int tcp_user_timeout_ms;
	int request_deadline_ms;
};

/* Opens SIZE connections to URL (a libpq connection URI) with OPTS (copied;
 * NULL = all off). Connections that fail are replaced lazily on acquire.
 * Returns NULL if not even the first connection can be made; *ERR (static
 * string) then says why, without the URL (which holds a password). */
struct db_pool *db_pool_open(const char *url, unsigned size, const struct db_options *opts,
			     const char **err);

/* Closes every connection and frees the pool. Connections must be released. */
void db_pool_close(struct db_pool *pool);

/* Takes a connection, waiting at most TIMEOUT_MS milliseconds (and never
 * past the pool's request deadline, which starts here). An idle connection
 * is checked before reuse without a round trip (the server's FATAL or EOF
 * after a restart or pg_terminate_backend is read from its socket), and a
 * broken one is replaced. Returns NULL on timeout or if the database is
 * unreachable (callers answer 503). Release with db_release() from the same
 * thread: the deadline and db_error() state are per thread. */
PGconn *db_acquire(struct db_pool *pool, int timeout_ms);

/* Returns CONN to the pool. If a transaction was left open it is rolled
 * back first (bounded by the request deadline), so a handler's early return
 * cannot leak one. A connection that failed, was lost or was abandoned at
 * the deadline is closed instead, and its slot reconnects on next use. */
void db_release(struct db_pool *pool, PGconn *conn);

/* Runs SQL with NPARAMS text parameters (NULL entries are SQL NULL).
 * Returns the result (caller PQclear()s) when its status is
 * PGRES_COMMAND_OK or PGRES_TUPLES_OK, else logs libpq's message and the
 * SQLSTATE, clears it and returns NULL; db_error() then classifies the
 * failure. If SQLSTATE is non-NULL it receives the 5-character SQLSTATE (or
 * "") in a 6-byte buffer. On a pooled connection the wait for the answer
 * ends at the request deadline. A statement that found the connection dead
 * is sent once more on a reconnected one when nothing can have taken effect:
 * it is the holder's first statement, outside a transaction, and a BEGIN or
 * a SELECT (the code base's SELECTs do not write). */
PGresult *db_query(PGconn *conn, const char *sql, int nparams, const char *const *params,
		   char *sqlstate);

/*
 * The one convention for telling a transient database failure from a real
 * one: the bz_err of this thread's last failed statement since
 * db_acquire(). BZ_ERR_UNAVAILABLE (503, retry later) when the statement was
 * cancelled (57014 statement_timeout, 55P03 lock_timeout, 25P03
 * idle-in-transaction timeout), the server is shutting down or refusing
 * (57P01-57P03, 53300), the connection is lost (class 08, or libpq's own
 * error without SQLSTATE) or the request deadline passed; else BZ_ERR_DB.
 * Domain code returns BZ_ERR_DB as before; the HTTP layer asks db_error()
 * to pick the status.
 */
int db_error(void);

/* Runs SQL like db_query and discards the result. Returns 0 or db_error()
 * (BZ_ERR_DB or BZ_ERR_UNAVAILABLE). */
int db_exec(PGconn *conn, const char *sql, int nparams, const char *const *params);

/* BEGIN / COMMIT / ROLLBACK. Return 0 or db_error(). */
int db_begin(PGconn *conn);
int db_commit(PGconn *conn);
int db_rollback(PGconn *conn);

/* Connects to URL once (for CLI subcommands and workers: TCP keepalives,
 * no statement timeouts). NULL on failure (message logged without the
 * URL). */
PGconn *db_connect(const char *url);

/* 0 if SELECT 1 works on a pooled connection within TIMEOUT_MS
 * milliseconds in total (pool wait, reconnect and answer), else
 * BZ_ERR_UNAVAILABLE. A server that does not answer in time (frozen) is
 * down; its connection is dropped. */
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
