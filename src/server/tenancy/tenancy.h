/*
 * tenancy.h — the one place that decides which tenants a caller may see.
 *
 * Partner users see every organization of their partner, or only the ones
 * listed in memberships; organization users see only their organization,
 * optionally only some of its sites. tenancy_scope_compute() works that out
 * once (per request, or once for a CLI command or worker), and every
 * tenant-scoped query binds scope->org_ids_pg (and site_ids_pg) as uuid[]
 * parameters. Another tenant's object answers "not found", never
 * "forbidden", so ids cannot be probed. Deleted organizations and sites
 * (soft-deleted, migration 0006) are in no scope: they answer "not found"
 * like another tenant's.
 *
 * Organizations, sites and memberships are this module's tables; the SQL
 * that touches them lives here (orgs.c, sites.c, memberships.c).
 */
#ifndef BZ_TENANCY_H
#define BZ_TENANCY_H

#include <jansson.h>
#include <libpq-fe.h>

#include "common/err.h"
#include "server/audit/audit.h"

/* The organizations (and optionally sites) a caller may see. */
struct tenancy_scope {
	char partner_id[37]; /* the caller's partner, "" for organization users */
	char user_id[37];
	json_t *org_ids;   /* array of uuid strings; owned */
	char *org_ids_pg;  /* "{uuid,uuid}" Postgres array literal; owned */
	char *site_ids_pg; /* NULL = every site of those orgs; owned */
	int limited;	   /* partner user limited to listed organizations */
};

/*
 * Computes the scope of user USER_ID whose home is PARTNER_ID (partner
 * staff; ORG_ID "") or ORG_ID (organization users; PARTNER_ID "") into OUT,
 * on connection C. No HTTP: usable from the CLI and workers. Returns 0,
 * BZ_ERR_DB or BZ_ERR_NOMEM; on error OUT holds nothing to free.
 */
int tenancy_scope_compute(PGconn *c, const char *user_id, const char *partner_id,
			  const char *org_id, struct tenancy_scope *out);

/* Frees what tenancy_scope_compute() allocated. Safe on a zeroed scope. */
void tenancy_scope_free(struct tenancy_scope *scope);

/* Narrows SCOPE to organization ORG_ID (a canonical UUID) — to nothing
 * when the scope does not hold it — for a credential limited to one
 * organization (an API key's orgId). Partner staff become "limited".
 * Returns 0 or BZ_ERR_NOMEM (the scope is then unchanged). */
int tenancy_scope_restrict_org(struct tenancy_scope *scope, const char *org_id);

/* 1 if ORG_ID (a UUID, either case) is one of the scope's organizations. */
int tenancy_scope_has_org(const struct tenancy_scope *scope, const char *org_id);

/* 1 if the scope is limited to some sites (organization users with site
 * memberships), else 0. */
int tenancy_scope_site_limited(const struct tenancy_scope *scope);

/*
 * Checks on C that SITE_ID exists, is not deleted, and is visible in SCOPE (its organization
 * in scope, and the site allowed when the scope is site-limited); copies its
 * organization id into ORG_OUT[37] when non-NULL. Returns 0,
 * BZ_ERR_NOT_FOUND (also for another tenant's site) or BZ_ERR_DB.
 */
int tenancy_site_visible(PGconn *c, const struct tenancy_scope *scope, const char *site_id,
			 char *org_out);

/* ---- Organizations and sites (orgs.c) ---- */

#define TENANCY_NAME_MAX 200 /* bytes of an organization or site name */

struct tenancy_org {
	char id[37];
	char partner_id[37];
	char name[TENANCY_NAME_MAX + 1];
	char created_at[32]; /* ISO 8601 UTC */
};

struct tenancy_site {
	char id[37];
	char org_id[37];
	char name[TENANCY_NAME_MAX + 1];
	char created_at[32]; /* ISO 8601 UTC */
};

/* The organizations visible in SCOPE, by name, into a malloc'd array *OUT
 * (caller frees; NULL when *N is 0). Returns 0, BZ_ERR_DB or BZ_ERR_NOMEM. */
int tenancy_org_list(PGconn *c, const struct tenancy_scope *scope, struct tenancy_org **out,
		     size_t *n);

/* Organization ID if visible in SCOPE. Returns 0, BZ_ERR_NOT_FOUND or
 * BZ_ERR_DB. */
int tenancy_org_get(PGconn *c, const struct tenancy_scope *scope, const char *id,
		    struct tenancy_org *out);

/*
 * Creates organization NAME (a checked display string) under the scope's
 * partner, inside the caller's transaction on C, and describes the change
 * in EV (action organization.create; EV's strings point into OUT). Only
 * partner staff who see every organization of their partner may.
 * Returns 0, BZ_ERR_FORBIDDEN, BZ_ERR_CONFLICT (name taken) or BZ_ERR_DB,
 * with WHY set.
 */
int tenancy_org_create(PGconn *c, const struct tenancy_scope *scope, const char *name,
		       struct tenancy_org *out, struct audit_event *ev, struct bz_errinfo *why);

/* The sites of organization ORG_ID visible in SCOPE, by name, into a
 * malloc'd array (caller frees). Returns 0, BZ_ERR_NOT_FOUND (organization
 * not visible), BZ_ERR_DB or BZ_ERR_NOMEM. */
int tenancy_site_list(PGconn *c, const struct tenancy_scope *scope, const char *org_id,
		      struct tenancy_site **out, size_t *n);

/* Creates site NAME in organization ORG_ID inside the caller's transaction
 * and describes it in EV (site.create). Site-limited callers may not.
 * Returns 0, BZ_ERR_NOT_FOUND, BZ_ERR_FORBIDDEN, BZ_ERR_CONFLICT or
 * BZ_ERR_DB, with WHY set. */
int tenancy_site_create(PGconn *c, const struct tenancy_scope *scope, const char *org_id,
			const char *name, struct tenancy_site *out, struct audit_event *ev,
			struct bz_errinfo *why);

/* Site ID if it is live and visible in SCOPE (its organization in scope,
 * and the site allowed when the scope is site-limited). Returns 0,
 * BZ_ERR_NOT_FOUND or BZ_ERR_DB. */
int tenancy_site_get(PGconn *c, const struct tenancy_scope *scope, const char *id,
		     struct tenancy_site *out);

/*
 * Renames organization ID to NAME (a checked display string) inside the
 * caller's transaction on C, into OUT (the organization as it is now), and
 * describes the change in EV (organization.update, details {name,
 * previousName}; EV's strings point into OUT). Partner staff who see the
 * organization may, organization-limited ones included; organization
 * users may not. Renaming to the current name changes nothing and leaves
 * EV->action NULL (no audit row). Returns 0, BZ_ERR_NOT_FOUND (not in
 * SCOPE, or deleted), BZ_ERR_FORBIDDEN, BZ_ERR_CONFLICT (another live
 * organization of the partner has NAME; field "name") or BZ_ERR_DB, with
 * WHY set.
 */
int tenancy_org_rename(PGconn *c, const struct tenancy_scope *scope, const char *id,
		       const char *name, struct tenancy_org *out, struct audit_event *ev,
		       struct bz_errinfo *why);

/*
 * Soft-deletes organization ID and its sites inside the caller's
 * transaction on C (OUT receives the organization, EV describes it:
 * organization.delete, details {name, siteIds}). Only partner staff who see
 * every organization of their partner may. Refused while the organization
 * holds devices that are not decommissioned, users (users.org_id, or
 * memberships limited to it or its sites) or usable enrolment keys (not
 * revoked, not expired, uses left): BZ_ERR_CONFLICT with code
 * "organization_not_empty" and a message naming what is left. Returns 0,
 * BZ_ERR_NOT_FOUND, BZ_ERR_FORBIDDEN, BZ_ERR_CONFLICT or BZ_ERR_DB, with
 * WHY set. Concurrency: see the comment above the lifecycle code in orgs.c.
 */
int tenancy_org_delete(PGconn *c, const struct tenancy_scope *scope, const char *id,
		       struct tenancy_org *out, struct audit_event *ev, struct bz_errinfo *why);

/* Renames site ID to NAME like tenancy_org_rename (site.update; no-op for
 * the current name). Site-limited callers may not (BZ_ERR_FORBIDDEN);
 * BZ_ERR_CONFLICT when another live site of the organization has NAME. */
int tenancy_site_rename(PGconn *c, const struct tenancy_scope *scope, const char *id,
			const char *name, struct tenancy_site *out, struct audit_event *ev,
			struct bz_errinfo *why);

/*
 * Soft-deletes site ID inside the caller's transaction (site.delete,
 * details {name}). Site-limited callers may not (BZ_ERR_FORBIDDEN).
 * Refused while it holds devices that are not decommissioned, users
 * limited to it (memberships.site_id) or usable enrolment keys:
 * BZ_ERR_CONFLICT with code "site_not_empty". An organization's last site
 * may be deleted. Returns 0, BZ_ERR_NOT_FOUND, BZ_ERR_FORBIDDEN,
 * BZ_ERR_CONFLICT or BZ_ERR_DB, with WHY set.
 */
int tenancy_site_delete(PGconn *c, const struct tenancy_scope *scope, const char *id,
			struct tenancy_site *out, struct audit_event *ev, struct bz_errinfo *why);

/* ---- Memberships: scope limits of users (memberships.c) ---- */

/* Sets *LIMITED to 1 if user USER_ID has any membership row (an
 * organization or site limit), else 0. Returns 0 or BZ_ERR_DB. */
int tenancy_user_limited(PGconn *c, const char *user_id, int *limited);

/*
 * Checks on C that every site of SITE_IDS_PG (a non-empty uuid[] literal)
 * exists, is visible in SCOPE and, when ORG_ID is non-NULL, belongs to
 * ORG_ID; without ORG_ID they must all belong to one organization. Copies
 * that organization's id into ORG_OUT[37]. Returns 0, BZ_ERR_NOT_FOUND
 * (a site missing, not visible, or not of ORG_ID), BZ_ERR_INVALID (sites of
 * several organizations; field "siteIds") or BZ_ERR_DB, with WHY set.
 */
int tenancy_sites_org(PGconn *c, const struct tenancy_scope *scope, const char *site_ids_pg,
		      const char *org_id, char org_out[37], struct bz_errinfo *why);

/* Limits new user USER_ID to the organizations ORG_IDS_PG and/or the sites
 * SITE_IDS_PG (uuid[] literals; NULL = none), inside the caller's
 * transaction on C. Callers check visibility first. Returns 0 or BZ_ERR_DB. */
int tenancy_memberships_add(PGconn *c, const char *user_id, const char *org_ids_pg,
			    const char *site_ids_pg);

#endif
