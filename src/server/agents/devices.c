/*
 * devices.c — devices as operators see them: listing (filters, keyset
 * pagination), detail, display name and site changes, and decommissioning.
 * Every read and change is bound to the caller's tenancy scope; another
 * tenant's device is BZ_ERR_NOT_FOUND.
 *
 * A device is "online" when seen within 3 heartbeat intervals, "never" if it
 * has not sent one, else "offline" — and "decommissioned" once retired,
 * whatever its last heartbeat.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/clock.h"
#include "common/text.h"
#include "server/agents/agents.h"
#include "server/db/db.h"

#define STATUS_EXPR                                                                                \
	"CASE WHEN d.status = 'decommissioned' THEN 'decommissioned'"                              \
	"     WHEN d.status = 'suspended' THEN 'suspended'"                                        \
	"     WHEN d.last_seen_at IS NULL THEN 'never'"                                            \
	"     WHEN d.last_seen_at > now() - make_interval(secs => 3 * d.heartbeat_interval_s)"     \
	"     THEN 'online' ELSE 'offline' END"

/* Suspension and review (migration 0013): columns 12..17 of DEVICE_COLS. */
#define SUSPENSION_COLS                                                                            \
	" coalesce(" DB_TS(                                                                        \
		"d.suspended_at") ", ''), coalesce(d.suspension_reason, ''),"                      \
				  " d.reenrollment_blocked::int, coalesce(d.review_decision, '')," \
				  " coalesce(" DB_TS(                                              \
					  "d.reviewed_at") ", ''), coalesce(d.review_note, '')"

#define DEVICE_COLS                                                                                \
	"d.id, d.org_id, d.site_id, d.hostname, coalesce(d.display_name, ''), d.os_type,"          \
	" d.os_version, " STATUS_EXPR ", coalesce(" DB_TS(                                         \
		"d.last_seen_at") ", ''),"                                                         \
				  " coalesce(host(d.last_ip), ''), coalesce(" DB_TS(               \
					  "d.decommissioned_at") ", ''), d.status," SUSPENSION_COLS
#define DEVICE_NCOLS 18

#define DETAIL_COLS                                                                                                       \
	DEVICE_COLS ", d.architecture, d.agent_version, " DB_TS(                                                          \
		"d.enrolled_at") ","                                                                                      \
				 " d.hardware::text, coalesce(h.inventory, '{}')::text, coalesce(h.metrics, '{}')::text," \
				 " coalesce(h.uptime_seconds::text, ''), d.heartbeat_interval_s"

/* Devices visible in a scope: $1 org ids, $2 site ids (NULL = all sites). */
#define DEVICE_SCOPE                                                                               \
	"d.org_id = ANY($1::uuid[]) AND ($2::uuid[] IS NULL OR d.site_id = ANY($2::uuid[]))"

static void device_from_row(const PGresult *r, int i, struct agents_device *d)
{
	text_copy(d->id, sizeof(d->id), PQgetvalue(r, i, 0));
	text_copy(d->org_id, sizeof(d->org_id), PQgetvalue(r, i, 1));
	text_copy(d->site_id, sizeof(d->site_id), PQgetvalue(r, i, 2));
	text_copy(d->hostname, sizeof(d->hostname), PQgetvalue(r, i, 3));
	text_copy(d->display_name, sizeof(d->display_name), PQgetvalue(r, i, 4));
	text_copy(d->os_type, sizeof(d->os_type), PQgetvalue(r, i, 5));
	text_copy(d->os_version, sizeof(d->os_version), PQgetvalue(r, i, 6));
	text_copy(d->status, sizeof(d->status), PQgetvalue(r, i, 7));
	text_copy(d->last_seen_at, sizeof(d->last_seen_at), PQgetvalue(r, i, 8));
	text_copy(d->last_ip, sizeof(d->last_ip), PQgetvalue(r, i, 9));
	text_copy(d->decommissioned_at, sizeof(d->decommissioned_at), PQgetvalue(r, i, 10));
	d->suspended = strcmp(PQgetvalue(r, i, 11), "suspended") == 0;
	text_copy(d->suspended_at, sizeof(d->suspended_at), PQgetvalue(r, i, 12));
	text_copy(d->suspension_reason, sizeof(d->suspension_reason), PQgetvalue(r, i, 13));
	d->reenrollment_blocked = strcmp(PQgetvalue(r, i, 14), "1") == 0;
	text_copy(d->review_decision, sizeof(d->review_decision), PQgetvalue(r, i, 15));
	text_copy(d->reviewed_at, sizeof(d->reviewed_at), PQgetvalue(r, i, 16));
	text_copy(d->review_note, sizeof(d->review_note), PQgetvalue(r, i, 17));
	d->uptime_s = -1;
}

static json_t *json_or_empty(const char *text)
{
	json_t *j = json_loads(text, 0, NULL);

	return j != NULL ? j : json_object();
}

static void detail_from_row(const PGresult *r, int i, struct agents_device *d)
{
	const char *up = PQgetvalue(r, i, DEVICE_NCOLS + 6);

	device_from_row(r, i, d);
	text_copy(d->architecture, sizeof(d->architecture), PQgetvalue(r, i, DEVICE_NCOLS));
	text_copy(d->agent_version, sizeof(d->agent_version), PQgetvalue(r, i, DEVICE_NCOLS + 1));
	text_copy(d->enrolled_at, sizeof(d->enrolled_at), PQgetvalue(r, i, DEVICE_NCOLS + 2));
	d->hardware = json_or_empty(PQgetvalue(r, i, DEVICE_NCOLS + 3));
	d->inventory = json_or_empty(PQgetvalue(r, i, DEVICE_NCOLS + 4));
	d->metrics = json_or_empty(PQgetvalue(r, i, DEVICE_NCOLS + 5));
	d->uptime_s = up[0] ? atoll(up) : -1;
	d->heartbeat_interval_s = atoi(PQgetvalue(r, i, DEVICE_NCOLS + 7));
}

void agents_device_free(struct agents_device *d)
{
	json_decref(d->hardware);
	json_decref(d->inventory);
	json_decref(d->metrics);
	json_decref(d->ip_history);
	d->hardware = d->inventory = d->metrics = d->ip_history = NULL;
}

/* Escapes LIKE metacharacters of PREFIX and appends '%'. Caller frees. */
static char *like_prefix(const char *prefix)
{
	size_t n = strlen(prefix);
	char *out = malloc(2 * n + 2), *o = out;

	if (out == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (prefix[i] == '%' || prefix[i] == '_' || prefix[i] == '\\')
			*o++ = '\\';
		*o++ = prefix[i];
	}
	*o++ = '%';
	*o = '\0';
	return out;
}

/* The filters' organization and site must be visible in SC. */
static int filter_visible(PGconn *c, const struct tenancy_scope *sc,
			  const struct agents_device_filter *f, struct bz_errinfo *why)
{
	if (f->org_id != NULL && !tenancy_scope_has_org(sc, f->org_id))
		return bz_fail(why, BZ_ERR_NOT_FOUND, NULL, NULL, "organization not found");
	if (f->site_id == NULL)
		return 0;
	int rc = tenancy_site_visible(c, sc, f->site_id, NULL);
	if (rc == BZ_ERR_NOT_FOUND)
		return bz_fail(why, rc, NULL, NULL, "site not found");
	return rc;
}

int agents_device_list(PGconn *c, const struct tenancy_scope *sc,
		       const struct agents_device_filter *f, struct agents_device **out, size_t *n,
		       int *more, struct bz_errinfo *why)
{
	static const char *sql =
		"SELECT " DEVICE_COLS " FROM devices d WHERE " DEVICE_SCOPE
		"   AND ($3::uuid IS NULL OR d.org_id = $3::uuid)"
		"   AND ($4::uuid IS NULL OR d.site_id = $4::uuid)"
		"   AND CASE WHEN $5::text IS NULL THEN d.status <> 'decommissioned'"
		"            ELSE " STATUS_EXPR " = $5 END"
		"   AND ($6::text IS NULL OR d.hostname LIKE $6)"
		"   AND ($7::text IS NULL OR (d.hostname, d.id) > ($7, $8::uuid))"
		" ORDER BY d.hostname, d.id LIMIT $9::int";
	char limit_s[16], *like = NULL;
	PGresult *r;
	int rc;

	*out = NULL;
	*n = 0;
	*more = 0;
	if ((rc = filter_visible(c, sc, f, why)) != 0)
		return rc;
	if (f->hostname != NULL && (like = like_prefix(f->hostname)) == NULL)
		return BZ_ERR_NOMEM;
	snprintf(limit_s, sizeof(limit_s), "%d", f->limit + 1);
	const char *p[9] = {sc->org_ids_pg, sc->site_ids_pg, f->org_id,	  f->site_id, f->status,
			    like,	    f->after_host,   f->after_id, limit_s};
	r = db_query(c, sql, 9, p, NULL);
	free(like);
	if (r == NULL)
		return BZ_ERR_DB;
	int rows = PQntuples(r), shown = rows > f->limit ? f->limit : rows;
	if (shown > 0 && (*out = calloc((size_t)shown, sizeof(**out))) == NULL) {
		PQclear(r);
		return BZ_ERR_NOMEM;
	}
	for (int i = 0; i < shown; i++)
		device_from_row(r, i, &(*out)[i]);
	*n = (size_t)shown;
	*more = rows > f->limit;
	PQclear(r);
	return 0;
}

/* Device ID in SC with details; FOR UPDATE locks it for a change. */
static int device_get(PGconn *c, const struct tenancy_scope *sc, const char *id, int for_update,
		      struct agents_device *out)
{
	static const char *sql = "SELECT " DETAIL_COLS " FROM devices d"
				 " LEFT JOIN device_heartbeats h ON h.device_id = d.id"
				 " WHERE d.id = $3::uuid AND " DEVICE_SCOPE;
	static const char *sql_lock = "SELECT " DETAIL_COLS " FROM devices d"
				      " LEFT JOIN device_heartbeats h ON h.device_id = d.id"
				      " WHERE d.id = $3::uuid AND " DEVICE_SCOPE " FOR UPDATE OF d";
	const char *p[3] = {sc->org_ids_pg, sc->site_ids_pg, id};
	PGresult *r = db_query(c, for_update ? sql_lock : sql, 3, p, NULL);
	int rc = BZ_ERR_NOT_FOUND;

	memset(out, 0, sizeof(*out));
	out->uptime_s = -1;
	if (r == NULL)
		return BZ_ERR_DB;
	if (PQntuples(r) == 1) {
		detail_from_row(r, 0, out);
		rc = 0;
	}
	PQclear(r);
	if (rc == 0 && (rc = agents_ip_history_json(c, out->id, &out->ip_history)) != 0)
		agents_device_free(out);
	return rc;
}

int agents_device_get(PGconn *c, const struct tenancy_scope *sc, const char *id,
		      struct agents_device *out)
{
	return device_get(c, sc, id, 0, out);
}

/* Checks that SITE_ID is a site visible in SC of organization ORG_ID. */
static int target_site(PGconn *c, const struct tenancy_scope *sc, const char *site_id,
		       const char *org_id, struct bz_errinfo *why)
{
	char site_org[37];
	int rc = tenancy_site_visible(c, sc, site_id, site_org);

	if (rc == BZ_ERR_NOT_FOUND)
		return bz_fail(why, rc, "not_found", "siteId", "site not found");
	if (rc != 0)
		return rc;
	if (strcasecmp(site_org, org_id) != 0)
		return bz_fail(why, BZ_ERR_INVALID, "validation_error", "siteId",
			       "field 'siteId' must be a site of the device's organization; moving "
			       "a device to another organization is not supported");
	return 0;
}

/* {"from": FROM or null, "to": TO or null}; "" counts as null. */
static json_t *change(const char *from, const char *to)
{
	return json_pack("{s:s?,s:s?}", "from", from && from[0] ? from : NULL, "to",
			 to && to[0] ? to : NULL);
}

int agents_device_update(PGconn *c, const struct tenancy_scope *sc, const char *id,
			 const struct agents_device_patch *p, struct agents_device *out,
			 struct audit_event *ev, struct bz_errinfo *why)
{
	static const char *sql = "UPDATE devices SET display_name = $2, site_id = $3::uuid"
				 " WHERE id = $1::uuid";
	struct agents_device cur;
	int rc;

	*ev = (struct audit_event){0};
	if ((rc = device_get(c, sc, id, 1, &cur)) != 0)
		return rc == BZ_ERR_NOT_FOUND ? bz_fail(why, rc, NULL, NULL, "device not found")
					      : rc;
	agents_device_free(&cur);
	if (cur.decommissioned_at[0])
		return bz_fail(why, BZ_ERR_CONFLICT, "device_decommissioned", NULL,
			       "device is decommissioned and cannot be changed");
	if (p->site_id != NULL && (rc = target_site(c, sc, p->site_id, cur.org_id, why)) != 0)
		return rc;
	/* The row afterwards: NAME NULL = no display name. */
	const char *name = p->set_display_name	 ? p->display_name
			   : cur.display_name[0] ? cur.display_name
						 : NULL;
	const char *site = p->site_id != NULL ? p->site_id : cur.site_id;
	json_t *changes = json_object();
	if (strcmp(name ? name : "", cur.display_name) != 0)
		json_object_set_new(changes, "displayName", change(cur.display_name, name));
	if (strcasecmp(site, cur.site_id) != 0)
		json_object_set_new(changes, "siteId", change(cur.site_id, site));
	if (json_object_size(changes) > 0) {
		const char *q[3] = {id, name, site};
		if (db_exec(c, sql, 3, q) != 0) {
			json_decref(changes);
			return BZ_ERR_DB;
		}
	}
	if ((rc = device_get(c, sc, id, 0, out)) != 0) {
		json_decref(changes);
		return rc == BZ_ERR_NOT_FOUND ? BZ_ERR_INTERNAL : rc;
	}
	if (json_object_size(changes) == 0) {
		json_decref(changes);
		return 0; /* nothing changed: nothing to audit */
	}
	*ev = (struct audit_event){.org_id = out->org_id,
				   .action = "device.update",
				   .resource = "devices",
				   .resource_id = out->id,
				   .details = json_pack("{s:o}", "changes", changes)};
	return 0;
}

int agents_device_decommission(PGconn *c, const struct tenancy_scope *sc, const char *id,
			       struct agents_device *out, struct audit_event *ev,
			       struct bz_errinfo *why)
{
	/* The tokens are retired in the same transaction as the status: from
	 * this commit on, neither the current nor a grace-period token works. */
	static const char *sql =
		"UPDATE devices d SET status = 'decommissioned', decommissioned_at = now()"
		" WHERE d.id = $3::uuid AND d.status = 'active' AND " DEVICE_SCOPE
		" RETURNING d.id";
	const char *p[3] = {sc->org_ids_pg, sc->site_ids_pg, id};
	PGresult *r;
	int changed, rc;

	*ev = (struct audit_event){0};
	if ((r = db_query(c, sql, 3, p, NULL)) == NULL)
		return BZ_ERR_DB;
	changed = PQntuples(r) == 1;
	rc = changed ? agents_tokens_retire_all(c, PQgetvalue(r, 0, 0), "decommissioned", bz_now())
		     : 0;
	PQclear(r);
	if (rc != 0)
		return rc;
	if ((rc = device_get(c, sc, id, 0, out)) != 0)
		return rc == BZ_ERR_NOT_FOUND ? bz_fail(why, rc, NULL, NULL, "device not found")
					      : rc;
	if (!changed && out->suspended) {
		agents_device_free(out);
		return bz_fail(why, BZ_ERR_CONFLICT, "device_under_review", NULL,
			       "device is suspended and awaits review: POST "
			       "/api/v1/devices/{id}/review decides what becomes of it");
	}
	if (!changed)
		return 0; /* already decommissioned: nothing to audit */
	*ev = (struct audit_event){.org_id = out->org_id,
				   .action = "device.decommission",
				   .resource = "devices",
				   .resource_id = out->id,
				   .details = json_pack("{s:s,s:s}", "hostname", out->hostname,
							"decommissionedAt",
							out->decommissioned_at)};
	return 0;
}
