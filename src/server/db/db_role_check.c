#include "server/db/db_role_check.h"

#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "common/text.h"
#include "server/db/db.h"

/* One row: who we are, and each way the role could get round the audit
 * log's protections. $1 is the schema name. */
static const char *role_check_sql =
	"SELECT current_user::text,"
	" EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolsuper"
	"         AND pg_has_role(current_user, r.oid, 'MEMBER')),"
	" EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolbypassrls"
	"         AND pg_has_role(current_user, r.oid, 'MEMBER')),"
	" EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolcreaterole"
	"         AND pg_has_role(current_user, r.oid, 'MEMBER')),"
	" pg_has_role(current_user, n.nspowner, 'MEMBER'),"
	" (SELECT c.relname::text FROM pg_class c"
	"   WHERE c.relnamespace = n.oid AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')"
	"     AND pg_has_role(current_user, c.relowner, 'MEMBER')"
	"   ORDER BY c.relname LIMIT 1),"
	" (SELECT string_agg(t.name || ' ' || p.priv, ', ' ORDER BY t.ord, p.ord)"
	"   FROM unnest(ARRAY['audit_log', 'audit_anchors', 'audit_checkpoints',"
	"                     'audit_chain_heads']) WITH ORDINALITY AS t(name, ord),"
	"        unnest(ARRAY['UPDATE', 'DELETE', 'TRUNCATE']) WITH ORDINALITY AS p(priv, ord)"
	"   WHERE has_table_privilege(current_user,"
	"           to_regclass(quote_ident(n.nspname) || '.' || quote_ident(t.name))::oid,"
	"           p.priv))"
	" FROM pg_namespace n WHERE n.nspname = $1";

int db_role_check(PGconn *conn, const char *schema, struct db_role_findings *out)
{
	const char *params[1] = {schema};
	PGresult *r;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	r = db_query(conn, role_check_sql, 1, params, NULL);
	if (r == NULL)
		return BZ_ERR_DB;
	if (PQntuples(r) != 1) {
		rc = BZ_ERR_NOT_FOUND;
		goto out;
	}
	text_copy(out->role, sizeof(out->role), db_val(r, 0, 0));
	out->superuser = !strcmp(PQgetvalue(r, 0, 1), "t");
	out->bypass_rls = !strcmp(PQgetvalue(r, 0, 2), "t");
	out->createrole = !strcmp(PQgetvalue(r, 0, 3), "t");
	out->owns_schema = !strcmp(PQgetvalue(r, 0, 4), "t");
	text_copy(out->owned_table, sizeof(out->owned_table), db_val(r, 0, 5));
	text_copy(out->audit_grants, sizeof(out->audit_grants), db_val(r, 0, 6));
out:
	PQclear(r);
	return rc;
}

int db_role_findings_count(const struct db_role_findings *f)
{
	return (f->superuser != 0) + (f->bypass_rls != 0) + (f->createrole != 0) +
	       (f->owns_schema != 0) + (f->owned_table[0] != '\0') + (f->audit_grants[0] != '\0');
}
