/*
 * review.c — what becomes of a device suspended by a cross-tenant probe
 * (checklist G6; probe.c; docs/probes-and-addresses.md): an administrator's
 * review, and the re-enrolment block a suspended device holds until then.
 *
 * A suspended device's tokens never work again, whatever the review says:
 * the machine comes back, if at all, by enrolling anew (a new device, a new
 * token). So both decisions end the device row (decommissioned, review
 * recorded). They differ in the block: "allow_reenrollment" lifts it (the
 * machine was cleaned or the probe explained); "decommission" keeps it, so
 * the same machine cannot quietly return with a spare enrolment key — the
 * block ends only with a later "allow_reenrollment" on that device.
 *
 * The block is per organization: a device blocks enrolments into its own
 * organization of the same hostname (case-insensitive: DNS names are) or
 * the same hardware fingerprint, the agent-reported hardware.machineId
 * (e.g. /etc/machine-id). Across organizations nothing is blocked: the
 * fingerprint is reported by the agent, so trusting it across tenants
 * would let one tenant's device lock another tenant's machines out.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/clock.h"
#include "common/text.h"
#include "server/agents/agents.h"
#include "server/db/db.h"

static const char *decision_name(enum agents_review_decision d)
{
	return d == AGENTS_REVIEW_DECOMMISSION ? "decommission" : "allow_reenrollment";
}

/* The guarded change: a suspended device takes either decision; a device a
 * review decommissioned (still blocking) takes allow_reenrollment only. */
static const char *review_sql =
	"UPDATE devices SET status = 'decommissioned',"
	"       decommissioned_at = coalesce(decommissioned_at, now()),"
	"       reviewed_at = now(), review_decision = $4, review_note = $5,"
	"       reenrollment_blocked = ($4 = 'decommission')"
	" WHERE id = $3::uuid AND org_id = ANY($1::uuid[])"
	"   AND ($2::uuid[] IS NULL OR site_id = ANY($2::uuid[]))"
	"   AND (status = 'suspended'"
	"        OR (reenrollment_blocked AND $4 = 'allow_reenrollment'))";

int agents_device_review(PGconn *c, const struct tenancy_scope *sc, const char *id,
			 enum agents_review_decision decision, const char *note,
			 struct agents_device *out, struct audit_event *ev, struct bz_errinfo *why)
{
	const char *dec = decision_name(decision);
	const char *p[5] = {sc->org_ids_pg, sc->site_ids_pg, id, dec, note};
	struct agents_device cur;
	PGresult *r;
	int rc;

	*ev = (struct audit_event){0};
	if ((rc = agents_device_get(c, sc, id, &cur)) != 0)
		return rc == BZ_ERR_NOT_FOUND ? bz_fail(why, rc, NULL, NULL, "device not found")
					      : rc;
	agents_device_free(&cur);
	if ((r = db_query(c, review_sql, 5, p, NULL)) == NULL)
		return BZ_ERR_DB;
	int changed = strcmp(PQcmdTuples(r), "1") == 0;
	PQclear(r);
	if (!changed)
		return bz_fail(why, BZ_ERR_CONFLICT, "not_under_review", NULL,
			       "device is not awaiting review (only a suspended device, or one a "
			       "review decommissioned, for allow_reenrollment)");
	/* Nothing should be live; whatever is, is over. Suspended tokens keep
	 * their state and reason. */
	if ((rc = agents_tokens_retire_all(c, id, "reviewed", bz_now())) != 0)
		return rc;
	if ((rc = agents_device_get(c, sc, id, out)) != 0)
		return rc == BZ_ERR_NOT_FOUND ? BZ_ERR_INTERNAL : rc;
	*ev = (struct audit_event){
		.org_id = out->org_id,
		.action = "device.review",
		.resource = "devices",
		.resource_id = out->id,
		.details = json_pack("{s:s,s:s,s:s,s:s,s:s?,s:b}", "decision", dec, "note", note,
				     "hostname", out->hostname, "previousStatus",
				     cur.suspended ? "suspended" : "decommissioned",
				     "suspensionReason",
				     cur.suspension_reason[0] ? cur.suspension_reason : NULL,
				     "reenrollmentBlocked", out->reenrollment_blocked)};
	return 0;
}

/* Blocking devices of organization $1 with hostname $2 or fingerprint $3;
 * a suspended device first. Host names are compared as DNS names: case,
 * surrounding spaces and the trailing dot of an absolute name do not count
 * (the blocked devices of one organization are few: a scan of them). */
#define HOST_NORM(x) "lower(rtrim(btrim(" x "), '.'))"
static const char *blocked_sql = "SELECT id, CASE WHEN " HOST_NORM("hostname") " = " HOST_NORM(
	"$2") "            THEN 'hostname' ELSE 'fingerprint' END,"
	      "       (status = 'suspended')::int"
	      "  FROM devices"
	      " WHERE reenrollment_blocked AND org_id = $1::uuid"
	      "   AND (" HOST_NORM("hostname") " = " HOST_NORM(
		      "$2") "        OR ($3::text IS NOT NULL AND hardware ? 'machineId'"
			    "            AND lower(hardware ->> 'machineId') = lower($3)))"
			    " ORDER BY (status = 'suspended') DESC, id LIMIT 1";

int agents_enroll_blocked(PGconn *c, const char *org_id, const char *hostname,
			  const json_t *hardware, struct agents_enroll_block *out)
{
	const json_t *mid = hardware ? json_object_get(hardware, "machineId") : NULL;
	const char *fp = json_is_string(mid) && json_string_length(mid) > 0 ? json_string_value(mid)
									    : NULL;
	const char *p[3] = {org_id, hostname, fp};
	PGresult *r = db_query(c, blocked_sql, 3, p, NULL);

	memset(out, 0, sizeof(*out));
	if (r == NULL)
		return BZ_ERR_DB;
	if (PQntuples(r) == 0) {
		PQclear(r);
		return 0;
	}
	text_copy(out->device_id, sizeof(out->device_id), PQgetvalue(r, 0, 0));
	out->match = strcmp(PQgetvalue(r, 0, 1), "hostname") == 0 ? "hostname" : "fingerprint";
	out->under_review = strcmp(PQgetvalue(r, 0, 2), "1") == 0;
	PQclear(r);
	return BZ_ERR_CONFLICT;
}
