/*
 * db_role_check.h — is the role `serve` connects as too powerful?
 *
 * The audit log is append-only because triggers refuse UPDATE and DELETE
 * and breeze_app holds only SELECT/INSERT on it. A role that is a
 * superuser, bypasses row-level security, has CREATEROLE (up to
 * PostgreSQL 15 it may grant itself membership in any non-superuser role,
 * the tables' owner included), owns the tables (an owner can disable
 * triggers and grant itself anything) or simply holds UPDATE,
 * DELETE or TRUNCATE on an audit table defeats that, so `serve` checks its
 * own role at start: the application role must not be able to rewrite
 * history. The SQL only reads the catalogs; nothing is changed.
 */
#ifndef BZ_DB_ROLE_CHECK_H
#define BZ_DB_ROLE_CHECK_H

#include <libpq-fe.h>

struct db_role_findings {
	char role[64];		/* current_user */
	int superuser;		/* is, or is a member of, a superuser role */
	int bypass_rls;		/* is, or is a member of, a BYPASSRLS role */
	int createrole;		/* is, or is a member of, a CREATEROLE role */
	int owns_schema;	/* owns the schema, or is a member of its owner */
	char owned_table[64];	/* a table of the schema it owns (or whose owner it is a
				 * member of); "" when none */
	char audit_grants[160]; /* "audit_log DELETE, audit_chain_heads UPDATE"; "" when none */
};

/*
 * Reads the privileges of CONN's current role over SCHEMA (e.g. "public")
 * into OUT. Membership counts the way PostgreSQL counts it for SET ROLE
 * (pg_has_role … 'MEMBER'), and grants include those through PUBLIC and
 * member roles (has_table_privilege). The audit tables are audit_log,
 * audit_anchors, audit_checkpoints and audit_chain_heads; missing ones are
 * skipped. Returns 0, BZ_ERR_NOT_FOUND if SCHEMA does not exist, or
 * BZ_ERR_DB.
 */
int db_role_check(PGconn *conn, const char *schema, struct db_role_findings *out);

/* Number of problems in F (0 = the role is fit to run serve). */
int db_role_findings_count(const struct db_role_findings *f);

#endif
