/*
 * tenancy.h — the one place that decides which tenants a caller may see.
 *
 * Partner users see every organization of their partner, or only the ones
 * listed in memberships; organization users see only their organization,
 * optionally only some of its sites. tenancy_resolve() computes that once
 * per request into rq->scope, and every tenant-scoped query binds
 * rq->scope.org_ids_pg (and site_ids_pg) as uuid[] parameters. Another
 * tenant's object answers 404, never 403, so ids cannot be probed.
 */
#ifndef BZ_TENANCY_H
#define BZ_TENANCY_H

#include "server/http/http.h"

/* Resolves rq->scope for the authenticated caller. Returns 0, or fails the
 * request (503/500) and returns -1. */
int tenancy_resolve(struct request *rq);

/* Frees what tenancy_resolve() allocated. Safe on a zeroed scope. */
void tenancy_scope_free(struct tenancy_scope *scope);

/* 1 if ORG_ID is one of the caller's organizations. */
int tenancy_org_visible(const struct request *rq, const char *org_id);

/* Checks that SITE_ID exists and is visible to the caller (its organization
 * in scope, and the site allowed when the caller is site-limited); copies
 * its organization id into ORG_OUT[37] when non-NULL. Returns 0,
 * BZ_ERR_NOT_FOUND, or BZ_ERR_DB. */
int tenancy_site_visible(struct request *rq, const char *site_id, char *org_out);

/* Registers the tenancy routes (organizations, sites). */
#include <stddef.h>
extern const struct route tenancy_routes[];
extern const size_t tenancy_routes_count;

#endif
