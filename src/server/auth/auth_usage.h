/*
 * auth_usage.h — how many users an organization still has, for the tenancy
 * module's "may this be deleted?" check. No HTTP here.
 */
#ifndef BZ_AUTH_USAGE_H
#define BZ_AUTH_USAGE_H

#include <libpq-fe.h>

/*
 * Counts into *USERS the active users that belong to organization ORG_ID
 * (a UUID; users.org_id) on connection C, inside the caller's transaction.
 * Disabled users do not count: users are disabled, never deleted. Returns
 * 0 or BZ_ERR_DB.
 */
int auth_usage_count(PGconn *c, const char *org_id, long long *users);

#endif
