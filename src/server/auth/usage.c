/*
 * usage.c — the number of users of an organization (auth_usage.h).
 */
#include <stdlib.h>

#include "common/err.h"
#include "server/auth/auth_usage.h"
#include "server/db/db.h"

static const char *users_sql =
	"SELECT count(*) FROM users WHERE org_id = $1::uuid AND status = 'active'";

int auth_usage_count(PGconn *c, const char *org_id, long long *users)
{
	const char *p[1] = {org_id};
	PGresult *r = db_query(c, users_sql, 1, p, NULL);

	if (r == NULL)
		return BZ_ERR_DB;
	*users = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	return 0;
}
