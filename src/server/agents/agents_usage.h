/*
 * agents_usage.h — what an organization or site still holds of the agents
 * module's tables (devices, enrolment keys), for the tenancy module's
 * "may this be deleted?" check. No HTTP here.
 */
#ifndef BZ_AGENTS_USAGE_H
#define BZ_AGENTS_USAGE_H

#include <libpq-fe.h>

struct agents_usage {
	long long active_devices; /* devices whose status is not 'decommissioned' */
	long long usable_keys;	  /* enrolment keys not revoked, not expired, with uses left */
};

/*
 * Counts into OUT the devices and usable enrolment keys of organization
 * ORG_ID (a UUID), only those of site SITE_ID when it is non-NULL, on
 * connection C (inside the caller's transaction; "expired" is judged at the
 * transaction's start, like enrolment's own check). Reads only: the caller
 * holds the lock that keeps new rows out while it decides. Returns 0 or
 * BZ_ERR_DB.
 */
int agents_usage_count(PGconn *c, const char *org_id, const char *site_id,
		       struct agents_usage *out);

#endif
