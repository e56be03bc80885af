#include "server/bootstrap.h"

#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "crypto/password.h"
#include "server/audit/audit.h"
#include "server/auth/auth.h"
#include "server/db/db.h"

static int insert_returning_id(PGconn *c, const char *sql, int n, const char *const *p, char *out)
{
	PGresult *r = db_query(c, sql, n, p, NULL);

	if (r == NULL)
		return BZ_ERR_DB;
	snprintf(out, 37, "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	return 0;
}

/* The audit rows of a bootstrap, in its transaction on C: system.bootstrap
 * in the system chain, then the organization's chain starting with its
 * creation and its first site, each row about what it names (a row with a
 * site id in its details is that site's row, docs/audit-chain.md §10).
 * EMAIL is the normalized administrator address. Returns 0 or BZ_ERR_DB. */
static int audit_rows(PGconn *c, const struct bootstrap_input *in, const char *email,
		      const struct bootstrap_result *out)
{
	json_t *d = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "partnerId", out->partner_id, "orgId",
			      out->org_id, "siteId", out->site_id, "userId", out->user_id, "email",
			      email, "partner", in->partner);
	struct audit_event sys = {.actor_type = "system",
				  .action = "system.bootstrap",
				  .resource = "partners",
				  .resource_id = out->partner_id,
				  .details = d};
	json_t *od = json_pack("{s:s}", "name", in->org),
	       *sd = json_pack("{s:s}", "name", in->site);
	struct audit_event org = {.org_id = out->org_id,
				  .actor_type = "system",
				  .action = "organization.create",
				  .resource = "organizations",
				  .resource_id = out->org_id,
				  .details = od};
	struct audit_event site = {.org_id = out->org_id,
				   .actor_type = "system",
				   .action = "site.create",
				   .resource = "sites",
				   .resource_id = out->site_id,
				   .details = sd};
	int arc = audit_write(c, &sys) || audit_write(c, &org) || audit_write(c, &site);
	json_decref(d);
	json_decref(od);
	json_decref(sd);
	return arc ? BZ_ERR_DB : 0;
}

int bootstrap_run(PGconn *c, const struct bootstrap_input *in, struct bootstrap_result *out)
{
	char email[256], hash[PASSWORD_HASH_MAX];
	int rc;

	memset(out, 0, sizeof(*out));
	if (auth_normalize_email(in->email, email, sizeof(email)) != 0 || !in->name[0] ||
	    !in->partner[0] || !in->org[0] || !in->site[0] || strlen(in->password) < 12)
		return BZ_ERR_INVALID;
	if (password_hash(in->password, hash, sizeof(hash)) != 0)
		return BZ_ERR_CRYPTO;
	if (db_begin(c) != 0)
		return BZ_ERR_DB;
	/* Serialize concurrent bootstraps, then refuse if an admin exists. */
	PGresult *r =
		db_query(c,
			 "SELECT pg_advisory_xact_lock(7314002), EXISTS (SELECT 1 FROM users u"
			 " JOIN roles r ON r.id = u.role_id WHERE r.name = 'partner_admin')",
			 0, NULL, NULL);
	if (r == NULL) {
		rc = BZ_ERR_DB;
		goto fail;
	}
	int exists = PQgetvalue(r, 0, 1)[0] == 't';
	PQclear(r);
	if (exists) {
		rc = BZ_ERR_CONFLICT;
		goto fail;
	}
	const char *pp[1] = {in->partner};
	const char *po[2] = {NULL, in->org};
	const char *ps[2] = {NULL, in->site};
	const char *pu[4] = {NULL, email, in->name, hash};
	rc = BZ_ERR_DB;
	if (insert_returning_id(c, "INSERT INTO partners (name) VALUES ($1) RETURNING id", 1, pp,
				out->partner_id))
		goto fail;
	po[0] = out->partner_id;
	if (insert_returning_id(
		    c, "INSERT INTO organizations (partner_id, name) VALUES ($1, $2) RETURNING id",
		    2, po, out->org_id))
		goto fail;
	ps[0] = out->org_id;
	if (insert_returning_id(c, "INSERT INTO sites (org_id, name) VALUES ($1, $2) RETURNING id",
				2, ps, out->site_id))
		goto fail;
	pu[0] = out->partner_id;
	if (insert_returning_id(
		    c,
		    "INSERT INTO users (partner_id, role_id, email, name, password_hash)"
		    " SELECT $1::uuid, id, $2, $3, $4 FROM roles WHERE name = 'partner_admin'"
		    " RETURNING id",
		    4, pu, out->user_id))
		goto fail;
	int arc = audit_rows(c, in, email, out);
	if (arc || db_commit(c) != 0)
		goto fail;
	return 0;
fail:
	db_rollback(c);
	return rc;
}
