#include "server/db/migrate.h"

#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "server/db/db.h"

static const char *create_table_sql = "CREATE TABLE IF NOT EXISTS schema_migrations ("
				      " version text PRIMARY KEY, name text NOT NULL,"
				      " applied_at timestamptz NOT NULL DEFAULT now())";

/* Arbitrary constant identifying the migration lock. */
static const char *lock_sql = "SELECT pg_advisory_xact_lock(7314001)";

static int is_applied(PGconn *conn, const char *version, int *applied)
{
	const char *p[1] = {version};
	PGresult *r =
		db_query(conn, "SELECT 1 FROM schema_migrations WHERE version = $1", 1, p, NULL);

	if (r == NULL)
		return BZ_ERR_DB;
	*applied = PQntuples(r) > 0;
	PQclear(r);
	return 0;
}

int migrate_apply(PGconn *conn, int *applied)
{
	*applied = 0;
	if (db_exec(conn, "SET client_min_messages = warning", 0, NULL) != 0 ||
	    db_exec(conn, create_table_sql, 0, NULL) != 0)
		return BZ_ERR_DB;
	for (size_t i = 0; i < migrations_embedded_count; i++) {
		const struct migration *m = &migrations_embedded[i];
		int done = 0;

		if (db_begin(conn) != 0 || db_exec(conn, lock_sql, 0, NULL) != 0)
			goto fail;
		if (is_applied(conn, m->version, &done) != 0)
			goto fail;
		if (done) {
			db_rollback(conn);
			continue;
		}
		/* Migration files are part of the binary, not input: run as a
		 * multi-statement script. */
		PGresult *r = PQexec(conn, m->sql);
		if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
			log_error("migrate.failed", "version", m->version, "name", m->name, "error",
				  PQresultErrorMessage(r), NULL);
			PQclear(r);
			goto fail;
		}
		PQclear(r);
		const char *p[2] = {m->version, m->name};
		if (db_exec(conn, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
			    2, p) != 0 ||
		    db_commit(conn) != 0)
			goto fail;
		log_info("migrate.applied", "version", m->version, "name", m->name, NULL);
		(*applied)++;
	}
	return 0;
fail:
	db_rollback(conn);
	return BZ_ERR_DB;
}

int migrate_pending(PGconn *conn, int *pending)
{
	PGresult *r = db_query(conn, "SELECT to_regclass('schema_migrations') IS NOT NULL", 0, NULL,
			       NULL);

	*pending = (int)migrations_embedded_count;
	if (r == NULL)
		return BZ_ERR_DB;
	int exists = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
	PQclear(r);
	if (!exists)
		return 0;
	*pending = 0;
	for (size_t i = 0; i < migrations_embedded_count; i++) {
		int done = 0;
		if (is_applied(conn, migrations_embedded[i].version, &done) != 0)
			return BZ_ERR_DB;
		if (!done)
			(*pending)++;
	}
	return 0;
}
