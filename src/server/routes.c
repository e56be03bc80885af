#include "server/routes.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "server/agents/agents_api.h"
#include "server/audit/audit_api.h"
#include "server/auth/auth_api.h"
#include "server/http/health.h"
#include "server/http/static.h"
#include "server/metrics/metrics_api.h"
#include "server/outbound/webhooks_api.h"
#include "server/settings/settings_api.h"
#include "server/tenancy/tenancy_api.h"

struct route *routes_all(size_t *n)
{
	const struct {
		const struct route *r;
		size_t n;
	} tables[] = {
		{health_routes, health_routes_count},
		{static_routes, static_routes_count},
		{metrics_routes, metrics_routes_count},
		{auth_routes, auth_routes_count},
		{auth_session_routes, auth_session_routes_count},
		{auth_mfa_routes, auth_mfa_routes_count},
		{auth_user_routes, auth_user_routes_count},
		{auth_role_routes, auth_role_routes_count},
		{auth_api_key_routes, auth_api_key_routes_count},
		{auth_register_routes, auth_register_routes_count},
		{tenancy_routes, tenancy_routes_count},
		{enrollment_key_routes, enrollment_key_routes_count},
		{agent_routes, agent_routes_count},
		{device_routes, device_routes_count},
		{device_metrics_routes, device_metrics_routes_count},
		{audit_query_routes, audit_query_routes_count},
		{audit_verify_routes, audit_verify_routes_count},
		{webhook_routes, webhook_routes_count},
		{settings_routes, settings_routes_count},
	};
	size_t total = 0, off = 0;

	for (size_t i = 0; i < sizeof(tables) / sizeof(*tables); i++)
		total += tables[i].n;
	struct route *all = calloc(total, sizeof(*all));
	if (all == NULL)
		return NULL;
	for (size_t i = 0; i < sizeof(tables) / sizeof(*tables); i++) {
		memcpy(all + off, tables[i].r, tables[i].n * sizeof(*all));
		off += tables[i].n;
	}
	*n = total;
	return all;
}

struct route *routes_serve(const struct config *cfg, size_t *n)
{
	struct route *all = routes_all(n);
	size_t k = 0;

	if (all == NULL || cfg->enable_registration)
		return all;
	/* Registration off (A3): the route is not registered at all, so it
	 * answers exactly like any unknown path, whatever the request holds. */
	for (size_t i = 0; i < *n; i++) {
		int drop = 0;
		for (size_t j = 0; j < auth_register_routes_count; j++)
			drop |= all[i].fn == auth_register_routes[j].fn;
		if (!drop)
			all[k++] = all[i];
	}
	*n = k;
	return all;
}

int routes_print_json(FILE *out)
{
	size_t n = 0;
	struct route *all = routes_all(&n);
	int rc = 0;

	if (all == NULL)
		return BZ_ERR_NOMEM;
	for (size_t i = 0; i < n && rc == 0; i++) {
		const struct route *r = &all[i];
		int user = (r->flags & ROUTE_USER) != 0;
		json_t *j = json_pack("{s:s,s:s,s:b,s:b,s:b,s:b,s:b,s:s?,s:b,s:b,s:s?}", "method",
				      r->method, "path", r->path, "public", !user, "user", user,
				      "jsonBody", (r->flags & ROUTE_JSON_BODY) != 0, "auditExempt",
				      (r->flags & ROUTE_AUDIT_EXEMPT) != 0, "mfaExempt",
				      (r->flags & ROUTE_MFA_EXEMPT) != 0, "permission",
				      r->permission, "selfService",
				      (r->flags & ROUTE_SELF_SERVICE) != 0, "apiKey",
				      user && !(r->flags & (ROUTE_SELF_SERVICE | ROUTE_NO_API_KEY)),
				      "auditAction", r->audit_action);
		json_t *q = json_array();
		for (size_t k = 0; r->query != NULL && r->query[k] != NULL; k++)
			json_array_append_new(q, json_string(r->query[k]));
		if (j == NULL || json_object_set_new(j, "query", q) != 0) {
			json_decref(j);
			rc = BZ_ERR_NOMEM;
			break;
		}
		if (json_dumpf(j, out, JSON_COMPACT) != 0 || fputc('\n', out) == EOF)
			rc = BZ_ERR_IO;
		json_decref(j);
	}
	free(all);
	if (rc == 0 && fflush(out) != 0)
		rc = BZ_ERR_IO;
	return rc;
}
