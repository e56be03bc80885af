#include "server/routes.h"

#include <stdlib.h>
#include <string.h>

#include "server/agents/agents_api.h"
#include "server/audit/audit_api.h"
#include "server/auth/auth_api.h"
#include "server/http/health.h"
#include "server/tenancy/tenancy_api.h"

struct route *routes_all(size_t *n)
{
	const struct {
		const struct route *r;
		size_t n;
	} tables[] = {
		{health_routes, health_routes_count},
		{auth_routes, auth_routes_count},
		{auth_user_routes, auth_user_routes_count},
		{tenancy_routes, tenancy_routes_count},
		{enrollment_key_routes, enrollment_key_routes_count},
		{agent_routes, agent_routes_count},
		{device_routes, device_routes_count},
		{audit_query_routes, audit_query_routes_count},
		{audit_verify_routes, audit_verify_routes_count},
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
