#include "server/audit/audit.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/err.h"
#include "common/log.h"
#include "common/metrics.h"
#include "server/audit/audit_checkpoint.h"
#include "server/audit/audit_internal.h"
#include "server/db/db.h"

static int is_secret_key(const char *k)
{
	static const char *words[] = {"password",      "passphrase", "secret",	   "token",
				      "key",	       "pepper",     "totp",	   "otp",
				      "authorization", "cookie",     "credential", "mfacode",
				      "recoverycode"};
	size_t kl = strlen(k);

	/* "enrollmentKeyId", "api_key_id": identifiers, not secrets. */
	if ((kl > 2 && !strcmp(k + kl - 2, "Id")) || (kl > 3 && !strcmp(k + kl - 3, "_id")))
		return 0;
	for (size_t i = 0; i < sizeof(words) / sizeof(*words); i++)
		if (strcasestr(k, words[i]) != NULL)
			return 1;
	return 0;
}

static json_t *redact(const json_t *v)
{
	const char *k;
	json_t *child;
	size_t i;

	if (json_is_object(v)) {
		json_t *out = json_object();
		json_object_foreach((json_t *)v, k, child) {
			if (is_secret_key(k))
				json_object_set_new(out, k, json_string("[REDACTED]"));
			else
				json_object_set_new(out, k, redact(child));
		}
		return out;
	}
	if (json_is_array(v)) {
		json_t *out = json_array();
		json_array_foreach(v, i, child)
			json_array_append_new(out, redact(child));
		return out;
	}
	return json_deep_copy(v);
}

json_t *audit_redact(const json_t *details)
{
	if (details == NULL)
		return json_object();
	return redact(details);
}

/* partner_id and site_id are derived in the database (audit_event_partner,
 * audit_event_site; migration 0004): the acting partner user's partner for
 * an event without an organization, the site of the device, enrolment
 * key or site the event concerns. The sealing trigger sets the rest. */
static const char *insert_sql =
	"INSERT INTO audit_log (org_id, partner_id, site_id, actor_type, actor_id, action, resource,"
	" resource_id, details, ip_address, result)"
	" VALUES ($1::uuid, audit_event_partner($1::uuid, $2, $3),"
	"         audit_event_site($1::uuid, $5, $6, $7), $2, $3, $4, $5, $6, $7, host($8::inet), $9)"
	" RETURNING chain_id, seq, checksum";

int audit_write(PGconn *conn, const struct audit_event *ev)
{
	json_t *clean = audit_redact(ev->details);
	char *details = json_dumps(clean, JSON_COMPACT | JSON_SORT_KEYS);
	const char *seed = audit_first_row_seed();
	int rc = 0;

	json_decref(clean);
	if (details == NULL)
		return BZ_ERR_NOMEM;
	const char *p[9] = {ev->org_id,
			    ev->actor_type ? ev->actor_type : "system",
			    ev->actor_id,
			    ev->action,
			    ev->resource,
			    ev->resource_id,
			    details,
			    ev->ip_address,
			    ev->result ? ev->result : "success"};
	PGresult *r = db_query(conn, insert_sql, 9, p, NULL);
	free(details);
	if (r == NULL)
		return BZ_ERR_DB;
	metrics_inc(METRIC_AUDIT_ROWS, NULL);
	/* A new chain is signed in the transaction that starts it (L4): its
	 * first rows cannot vanish unnoticed before the next checkpoint pass. */
	if (seed != NULL && strcmp(PQgetvalue(r, 0, 1), "1") == 0)
		rc = audit_checkpoint_write(conn, seed, PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1),
					    PQgetvalue(r, 0, 2));
	PQclear(r);
	if (rc != 0)
		log_error("audit.checkpoint.first_row_failed", NULL);
	return rc != 0 ? BZ_ERR_DB : 0;
}

int audit_write_standalone(PGconn *conn, const struct audit_event *ev)
{
	if (db_begin(conn) != 0)
		return BZ_ERR_DB;
	if (audit_write(conn, ev) != 0 || db_commit(conn) != 0) {
		db_rollback(conn);
		return BZ_ERR_DB;
	}
	return 0;
}
