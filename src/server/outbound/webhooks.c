/*
 * webhooks.c — the webhooks table: create, list, read, change, delete
 * (webhooks.h). URLs are checked when saved (webhook_url_check) and again
 * at every connection by the SSRF guard; secrets are sealed at rest.
 */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/text.h"
#include "crypto/envelope.h"
#include "crypto/crypto.h"
#include "server/db/db.h"
#include "server/outbound/webhooks.h"
#include "server/outbound/webhooks_internal.h"
#include "server/settings/settings.h"

const char *const webhook_events[] = {
	"*",
	"agent.enroll.failed",
	"agent.probe.detected",
	"agent.source.ip.changed",
	"agent.token.mismatch",
	"agent.token.retired_use",
	"agent.token.rotated",
	"agent.token.suspended",
	"api_key.create",
	"api_key.revoke",
	"auth.login",
	"auth.login.failed",
	"auth.login.rate_limited",
	"auth.mfa.disable",
	"auth.password.change",
	"auth.refresh.reuse_detected",
	"device.agent_token.reset",
	"device.agent_token.rotation_requested",
	"device.decommission",
	"device.enroll",
	"device.enroll.rate_limited",
	"device.offline",
	"device.online",
	"device.review",
	"device.update",
	"enrollment_key.create",
	"enrollment_key.revoke",
	"organization.update",
	"role.create",
	"role.delete",
	"role.update",
	"site.create",
	"site.delete",
	"site.update",
	"user.create",
	NULL,
};

#define WH_COLS                                                                                    \
	"w.id, w.org_id, w.url, array_to_json(w.events)::text, w.enabled,"                         \
	" coalesce(w.created_by::text, ''), " DB_TS("w.created_at") ", " DB_TS("w.updated_at")

/* Live webhooks of a scope: $1 its organization ids. */
#define WH_SCOPE "w.org_id = ANY($1::uuid[]) AND w.deleted_at IS NULL"

void webhook_from_row(const PGresult *r, int i, struct webhook *w)
{
	json_t *ev = json_loads(PQgetvalue(r, i, 3), 0, NULL);
	size_t k;
	json_t *e;

	memset(w, 0, sizeof(*w));
	text_copy(w->id, sizeof(w->id), PQgetvalue(r, i, 0));
	text_copy(w->org_id, sizeof(w->org_id), PQgetvalue(r, i, 1));
	text_copy(w->url, sizeof(w->url), PQgetvalue(r, i, 2));
	json_array_foreach(ev, k, e) {
		if (w->n_events < WEBHOOK_EVENTS_MAX && json_is_string(e))
			text_copy(w->events[w->n_events++], WEBHOOK_EVENT_LEN,
				  json_string_value(e));
	}
	json_decref(ev);
	w->enabled = PQgetvalue(r, i, 4)[0] == 't';
	text_copy(w->created_by, sizeof(w->created_by), PQgetvalue(r, i, 5));
	text_copy(w->created_at, sizeof(w->created_at), PQgetvalue(r, i, 6));
	text_copy(w->updated_at, sizeof(w->updated_at), PQgetvalue(r, i, 7));
}

json_t *webhook_events_json(const struct webhook *w)
{
	json_t *a = json_array();

	for (size_t i = 0; i < w->n_events; i++)
		json_array_append_new(a, json_string(w->events[i]));
	return a;
}

int webhook_scope_check(const struct tenancy_scope *sc, struct bz_errinfo *why)
{
	if (tenancy_scope_site_limited(sc))
		return bz_fail(why, BZ_ERR_FORBIDDEN, "forbidden", NULL,
			       "webhooks are organization-wide: a site-limited account cannot "
			       "use them");
	return 0;
}

/* The message of a refused URL, naming the refusal kind (static). */
static const char *url_refusal(enum ssrf_kind k)
{
	switch (k) {
	case SSRF_BAD_SCHEME:
		return "url refused (bad_scheme): only http and https URLs are allowed";
	case SSRF_BLOCKED_HOST:
		return "url refused (blocked_host): that host name is not allowed";
	case SSRF_BLOCKED_ADDRESS:
		return "url refused (blocked_address): that address is not allowed";
	default:
		return "url refused (bad_url): must be an absolute http(s) URL without "
		       "user name or password";
	}
}

/* An IP-literal HOST (IPv6 in brackets, as curl_url gives it) judged as
 * the address it names; SSRF_OK for a name. */
static enum ssrf_kind literal_allowed(const struct ssrf_policy *p, const char *host)
{
	struct sockaddr_in6 a6 = {.sin6_family = AF_INET6};
	struct sockaddr_in a4 = {.sin_family = AF_INET};
	char buf[SSRF_HOST_MAX + 1];
	size_t n = strlen(host);

	if (inet_pton(AF_INET, host, &a4.sin_addr) == 1)
		return ssrf_address_allowed(p, (struct sockaddr *)&a4, 0, NULL);
	if (n < 3 || n > sizeof(buf) + 1 || host[0] != '[' || host[n - 1] != ']')
		return SSRF_OK;
	memcpy(buf, host + 1, n - 2);
	buf[n - 2] = '\0';
	char *zone = strchr(buf, '%');
	if (zone != NULL)
		return SSRF_BLOCKED_ADDRESS; /* a zone id only makes sense on a link */
	if (inet_pton(AF_INET6, buf, &a6.sin6_addr) != 1)
		return SSRF_BAD_URL;
	return ssrf_address_allowed(p, (struct sockaddr *)&a6, 0, NULL);
}

void webhook_url_redact(const char *url, char *out, size_t len)
{
	char *scheme = NULL, *host = NULL, *port = NULL;
	CURLU *u = curl_url();

	text_copy(out, len, "\u2026");
	if (u != NULL && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
		curl_url_get(u, CURLUPART_PORT, &port, 0);
		snprintf(out, len, "%s://%s%s%s/\u2026", scheme, host, port ? ":" : "",
			 port ? port : "");
	}
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(u);
}

int webhook_url_check(const struct ssrf_policy *p, const char *url, struct bz_errinfo *why)
{
	char *scheme = NULL, *host = NULL, *x = NULL;
	enum ssrf_kind k = SSRF_BAD_URL;
	CURLU *u = curl_url();

	if (u == NULL)
		return BZ_ERR_NOMEM;
	CURLUcode uc = curl_url_set(u, CURLUPART_URL, url, 0);
	if (uc == CURLUE_UNSUPPORTED_SCHEME || uc == CURLUE_BAD_SCHEME)
		k = SSRF_BAD_SCHEME;
	else if (uc != CURLUE_OK)
		k = SSRF_BAD_URL;
	else if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
		 (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0))
		k = SSRF_BAD_SCHEME;
	else if (curl_url_get(u, CURLUPART_USER, &x, 0) == CURLUE_OK ||
		 curl_url_get(u, CURLUPART_PASSWORD, &x, 0) == CURLUE_OK)
		k = SSRF_BAD_URL;
	else if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || host[0] == '\0')
		k = SSRF_BAD_URL;
	else if ((k = ssrf_host_allowed(p, host, NULL)) == SSRF_OK)
		k = literal_allowed(p, host);
	curl_free(scheme);
	curl_free(host);
	curl_free(x);
	curl_url_cleanup(u);
	size_t len = strlen(url);
	if (k == SSRF_OK && (len < 8 || len > 2048)) /* the table's bounds */
		return bz_fail(why, BZ_ERR_INVALID, "validation_error", "url",
			       "field 'url' must be 8 to 2048 bytes");
	if (k == SSRF_OK)
		return 0;
	return bz_fail(why, BZ_ERR_INVALID, "validation_error", "url", url_refusal(k));
}

/* Checks EVENTS (an array of strings) against webhook_events: 1..MAX,
 * known, no repeats. Its compact JSON into *OUT (caller frees). */
static int events_check(const json_t *events, char **out, struct bz_errinfo *why)
{
	size_t i, n = json_array_size(events);
	json_t *e;

	*out = NULL;
	if (!json_is_array(events) || n == 0 || n > WEBHOOK_EVENTS_MAX)
		return bz_fail(why, BZ_ERR_INVALID, "validation_error", "events",
			       "field 'events' must list 1 to 32 events");
	json_array_foreach(events, i, e) {
		const char *s = json_string_value(e);
		int known = 0;
		for (size_t j = 0; s != NULL && webhook_events[j] != NULL; j++)
			known |= strcmp(s, webhook_events[j]) == 0;
		for (size_t j = 0; known && j < i; j++)
			known = strcmp(s, json_string_value(json_array_get(events, j))) != 0;
		if (!known)
			return bz_fail(why, BZ_ERR_INVALID, "validation_error", "events",
				       "field 'events' holds an unknown or repeated event; see "
				       "docs/webhooks.md for the list");
	}
	*out = json_dumps(events, JSON_COMPACT);
	return *out == NULL ? BZ_ERR_NOMEM : 0;
}

/* The organization of a new webhook into ORG[37]: IN's (in scope), or the
 * scope's only one. */
static int create_org(const struct tenancy_scope *sc, const char *org_id, char org[37],
		      struct bz_errinfo *why)
{
	if (org_id != NULL) {
		if (!tenancy_scope_has_org(sc, org_id))
			return bz_fail(why, BZ_ERR_NOT_FOUND, NULL, "orgId",
				       "organization not found");
		text_copy(org, 37, org_id);
		return 0;
	}
	if (json_array_size(sc->org_ids) != 1)
		return bz_fail(why, BZ_ERR_INVALID, "validation_error", "orgId",
			       "field 'orgId' is required");
	text_copy(org, 37, json_string_value(json_array_get(sc->org_ids, 0)));
	return 0;
}

/* The host of URL for audit details (a URL's path and query may carry a
 * receiver's token, so they are never audited) into OUT. */
static void url_host(const char *url, char *out, size_t len)
{
	CURLU *u = curl_url();
	char *h = NULL;

	out[0] = '\0';
	if (u != NULL && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_HOST, &h, 0) == CURLUE_OK)
		text_copy(out, len, h);
	curl_free(h);
	curl_url_cleanup(u);
}

/* A new secret into SECRET, sealed for webhook ID into *SEALED (caller
 * frees) as "enc:v1:" under the active key with associated data
 * "webhooks.secret_enc:<id>", counted on C (settings.h). */
static int new_secret(PGconn *c, const struct config *cfg, const char *id,
		      char secret[WEBHOOK_SECRET_LEN + 1], char **sealed, struct bz_errinfo *why)
{
	struct crypto_keyring kr;
	int rc;

	*sealed = NULL;
	if ((rc = settings_keyring(cfg, &kr, why)) != 0)
		return rc;
	memcpy(secret, "whsec_", 6);
	rc = crypto_random_hex(32, secret + 6) == 0 ? 0 : BZ_ERR_CRYPTO;
	if (rc == 0)
		rc = settings_seal(c, &kr, "webhooks", "secret_enc", id, secret, strlen(secret),
				   sealed);
	crypto_keyring_wipe(&kr);
	return rc;
}

static void audit_of(struct audit_event *ev, const char *action, const struct webhook *w,
		     json_t *details)
{
	*ev = (struct audit_event){.org_id = w->org_id,
				   .action = action,
				   .resource = "webhooks",
				   .resource_id = w->id,
				   .details = details};
}

int webhook_create(PGconn *c, const struct config *cfg, const struct tenancy_scope *sc,
		   const struct webhook_input *in, struct webhook *out,
		   char secret[WEBHOOK_SECRET_LEN + 1], struct audit_event *ev,
		   struct bz_errinfo *why)
{
	static const char *sql =
		"WITH w AS (INSERT INTO webhooks (id, org_id, url, events, enabled, secret_enc,"
		" created_by) VALUES ($1::uuid, $2::uuid, $3,"
		" ARRAY(SELECT jsonb_array_elements_text($4::jsonb)), $5::boolean, $6, $7::uuid)"
		" RETURNING *) SELECT " WH_COLS " FROM w";
	char org[37], id[37], host[256];
	char *events = NULL, *sealed = NULL;
	PGresult *r;
	int rc;

	secret[0] = '\0';
	if ((rc = webhook_scope_check(sc, why)) != 0 ||
	    (rc = create_org(sc, in->org_id, org, why)) != 0 ||
	    (rc = webhook_url_check(&cfg->ssrf_allowlist, in->url, why)) != 0 ||
	    (rc = events_check(in->events, &events, why)) != 0)
		goto done;
	if ((r = db_query(c, "SELECT gen_random_uuid()", 0, NULL, NULL)) == NULL) {
		rc = BZ_ERR_DB;
		goto done;
	}
	text_copy(id, sizeof(id), PQgetvalue(r, 0, 0));
	PQclear(r);
	if ((rc = new_secret(c, cfg, id, secret, &sealed, why)) != 0)
		goto done;
	const char *p[7] = {
		id,	org,	       in->url, events, in->enabled == 0 ? "false" : "true",
		sealed, in->created_by};
	if ((r = db_query(c, sql, 7, p, NULL)) == NULL) {
		rc = BZ_ERR_DB;
		goto done;
	}
	webhook_from_row(r, 0, out);
	PQclear(r);
	url_host(out->url, host, sizeof(host));
	audit_of(ev, "webhook.create", out,
		 json_pack("{s:s,s:o,s:b}", "host", host, "events", webhook_events_json(out),
			   "enabled", out->enabled));
done:
	if (rc != 0)
		crypto_wipe(secret, WEBHOOK_SECRET_LEN + 1);
	free(events);
	free(sealed);
	return rc;
}

int webhook_list(PGconn *c, const struct tenancy_scope *sc, const char *org_id, long limit,
		 struct webhook **out, size_t *n)
{
	static const char *sql = "SELECT " WH_COLS " FROM webhooks w WHERE " WH_SCOPE
				 "   AND ($2::uuid IS NULL OR w.org_id = $2::uuid)"
				 " ORDER BY w.created_at DESC, w.id LIMIT $3::int";
	char lim[24];
	PGresult *r;

	*out = NULL;
	*n = 0;
	if (tenancy_scope_site_limited(sc))
		return BZ_ERR_FORBIDDEN;
	if (org_id != NULL && !tenancy_scope_has_org(sc, org_id))
		return BZ_ERR_NOT_FOUND;
	snprintf(lim, sizeof(lim), "%ld", limit);
	const char *p[3] = {sc->org_ids_pg, org_id, lim};
	if ((r = db_query(c, sql, 3, p, NULL)) == NULL)
		return BZ_ERR_DB;
	int rows = PQntuples(r);
	if (rows > 0 && (*out = calloc((size_t)rows, sizeof(**out))) == NULL) {
		PQclear(r);
		return BZ_ERR_NOMEM;
	}
	for (int i = 0; i < rows; i++)
		webhook_from_row(r, i, &(*out)[i]);
	*n = (size_t)rows;
	PQclear(r);
	return 0;
}

/* Webhook ID in scope into OUT; FOR_UPDATE locks its row. */
static int get_row(PGconn *c, const struct tenancy_scope *sc, const char *id, int for_update,
		   struct webhook *out)
{
	static const char *sql = "SELECT " WH_COLS
				 " FROM webhooks w WHERE w.id = $2::uuid AND " WH_SCOPE;
	static const char *sql_lock = "SELECT " WH_COLS
				      " FROM webhooks w WHERE w.id = $2::uuid AND " WH_SCOPE
				      " FOR UPDATE";
	const char *p[2] = {sc->org_ids_pg, id};
	PGresult *r;
	int rc = BZ_ERR_NOT_FOUND;

	if (tenancy_scope_site_limited(sc))
		return BZ_ERR_FORBIDDEN;
	if ((r = db_query(c, for_update ? sql_lock : sql, 2, p, NULL)) == NULL)
		return BZ_ERR_DB;
	if (PQntuples(r) == 1) {
		webhook_from_row(r, 0, out);
		rc = 0;
	}
	PQclear(r);
	return rc;
}

int webhook_get(PGconn *c, const struct tenancy_scope *sc, const char *id, struct webhook *out)
{
	return get_row(c, sc, id, 0, out);
}

/* Whether W's events equal the JSON array EVENTS, in order. */
static int same_events(const struct webhook *w, const json_t *events)
{
	if (json_array_size(events) != w->n_events)
		return 0;
	for (size_t i = 0; i < w->n_events; i++)
		if (strcmp(w->events[i], json_string_value(json_array_get(events, i))) != 0)
			return 0;
	return 1;
}

/* The changes IN makes to W as audit details (new reference; empty when
 * none), after checking them. */
static int update_details(const struct config *cfg, const struct webhook *w,
			  const struct webhook_input *in, char **events, json_t **d,
			  struct bz_errinfo *why)
{
	char host[256];
	int rc;

	*d = json_object();
	*events = NULL;
	if (in->url != NULL && strcmp(in->url, w->url) != 0) {
		if ((rc = webhook_url_check(&cfg->ssrf_allowlist, in->url, why)) != 0)
			return rc;
		url_host(in->url, host, sizeof(host));
		json_object_set_new(*d, "host", json_string(host));
		json_object_set_new(*d, "urlChanged", json_true());
	}
	if (in->events != NULL) {
		if ((rc = events_check(in->events, events, why)) != 0)
			return rc;
		if (!same_events(w, in->events))
			json_object_set_new(*d, "events", json_deep_copy(in->events));
	}
	if (in->enabled >= 0 && (in->enabled != 0) != w->enabled)
		json_object_set_new(*d, "enabled", json_boolean(in->enabled));
	return 0;
}

int webhook_update(PGconn *c, const struct config *cfg, const struct tenancy_scope *sc,
		   const char *id, const struct webhook_input *in, struct webhook *out,
		   struct audit_event *ev, struct bz_errinfo *why)
{
	static const char *sql =
		"WITH w AS (UPDATE webhooks SET url = coalesce($2, url),"
		" events = CASE WHEN $3::jsonb IS NULL THEN events"
		"          ELSE ARRAY(SELECT jsonb_array_elements_text($3::jsonb)) END,"
		" enabled = coalesce($4::boolean, enabled), updated_at = now()"
		" WHERE id = $1::uuid RETURNING *) SELECT " WH_COLS " FROM w";
	struct webhook cur;
	char *events = NULL;
	json_t *d = NULL;
	PGresult *r;
	int rc;

	*ev = (struct audit_event){0};
	if ((rc = get_row(c, sc, id, 1, &cur)) != 0) {
		if (rc == BZ_ERR_NOT_FOUND)
			bz_fail(why, rc, NULL, NULL, "webhook not found");
		return rc;
	}
	*out = cur;
	if ((rc = update_details(cfg, &cur, in, &events, &d, why)) != 0 || json_object_size(d) == 0)
		goto done;
	const char *en = in->enabled < 0 ? NULL : in->enabled ? "true" : "false";
	const char *p[4] = {id, in->url, events, en};
	if ((r = db_query(c, sql, 4, p, NULL)) == NULL) {
		rc = BZ_ERR_DB;
		goto done;
	}
	webhook_from_row(r, 0, out);
	PQclear(r);
	audit_of(ev, "webhook.update", out, d);
	d = NULL;
done:
	json_decref(d);
	free(events);
	return rc;
}

int webhook_delete(PGconn *c, const struct tenancy_scope *sc, const char *id, struct webhook *out,
		   struct audit_event *ev, struct bz_errinfo *why)
{
	static const char *del_sql = "UPDATE webhooks SET deleted_at = now(), enabled = false,"
				     " updated_at = now() WHERE id = $1::uuid";
	static const char *fail_sql =
		"UPDATE webhook_deliveries SET status = 'failed', last_error = 'webhook deleted',"
		" lease_id = NULL WHERE webhook_id = $1::uuid AND status IN ('pending', 'delivering')";
	const char *p[1] = {id};
	int rc;

	*ev = (struct audit_event){0};
	if ((rc = get_row(c, sc, id, 1, out)) != 0) {
		if (rc == BZ_ERR_NOT_FOUND)
			bz_fail(why, rc, NULL, NULL, "webhook not found");
		return rc;
	}
	if (db_exec(c, del_sql, 1, p) != 0 || db_exec(c, fail_sql, 1, p) != 0)
		return BZ_ERR_DB;
	audit_of(ev, "webhook.delete", out, NULL);
	return 0;
}
