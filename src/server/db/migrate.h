/*
 * migrate.h — schema migrations, embedded in the binary at build time from
 * migrations/NNNN_name.sql. Each runs in its own transaction and is recorded
 * in schema_migrations.
 */
#ifndef BZ_MIGRATE_H
#define BZ_MIGRATE_H

#include <libpq-fe.h>
#include <stddef.h>

struct migration {
	const char *version; /* "0001" */
	const char *name;    /* "foundation" */
	const char *sql;     /* whole file, NUL-terminated */
};

extern const struct migration migrations_embedded[];
extern const size_t migrations_embedded_count;

/* Applies every embedded migration not yet recorded, in order, each in its
 * own transaction under an advisory lock (so two migrators cannot race).
 * CONN must be the schema owner's connection. *APPLIED receives how many
 * ran. Returns 0 or BZ_ERR_DB (the failing migration is rolled back and
 * logged). */
int migrate_apply(PGconn *conn, int *applied);

/* Counts embedded migrations not recorded in schema_migrations into
 * *PENDING (all of them if the table does not exist). Returns 0 or
 * BZ_ERR_DB. */
int migrate_pending(PGconn *conn, int *pending);

#endif
