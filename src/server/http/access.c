/*
 * access.c — what an authenticated user request passes before its handler,
 * in this order: the per-user rate limit (R2), the forced-MFA-enrolment
 * gate (A2) and the route's permission (one table, auth/permissions.c).
 */
#include <jansson.h>

#include "server/http/http.h"
#include "server/http/http_internal.h"

/* The one permission check, after authentication: API keys are kept off
 * the routes closed to them and off self-service routes; every other user
 * route needs its permission, and one naming none that is not marked
 * self-service is refused (fail closed). Returns 0 or BZ_ERR_RESPONDED. */
static int check_access(struct request *rq)
{
	const struct route *route = rq->route;

	if (rq->who.api_key_id[0] && (route->flags & (ROUTE_NO_API_KEY | ROUTE_SELF_SERVICE))) {
		http_fail(rq, 403, "api_key_not_allowed",
			  "this route needs a signed-in user; API keys cannot use it");
		return BZ_ERR_RESPONDED;
	}
	if (route->permission == NULL) {
		if (route->flags & ROUTE_SELF_SERVICE)
			return 0;
		http_fail(rq, 403, "forbidden", "route names no permission");
		return BZ_ERR_RESPONDED;
	}
	if (!http_has_permission(rq, route->permission)) {
		http_fail(rq, 403, "forbidden", "missing permission %s", route->permission);
		return BZ_ERR_RESPONDED;
	}
	return 0;
}

/* A2: a caller whose role forces MFA and who has none enrolled reaches only
 * the ROUTE_MFA_EXEMPT routes, whatever the credential; everything else is
 * 428 with the enrolment route named. Answers and returns
 * BZ_ERR_RESPONDED, or 0. */
static int mfa_gate(struct request *rq)
{
	if (!rq->who.force_mfa || rq->who.mfa_enabled || (rq->route->flags & ROUTE_MFA_EXEMPT))
		return 0;
	http_reply(rq, 428,
		   json_pack("{s:{s:s,s:s,s:s}}", "error", "code", "mfa_enrollment_required",
			     "message",
			     "your role requires multi-factor authentication: enrol a TOTP "
			     "device first",
			     "enrollUrl", "/api/v1/auth/mfa/setup"));
	return BZ_ERR_RESPONDED;
}

/* R2: every authenticated user request counts against its user, or its
 * API key for a key, whatever the route answers after. Returns 0 or
 * BZ_ERR_RESPONDED (429, 503 in deny mode). */
static int limit_user(struct request *rq)
{
	const char *id = rq->who.api_key_id[0] ? rq->who.api_key_id : rq->who.user_id;
	const struct ratelimit_item it = {.limiter = RL_API_USER, .tag = id};

	return http_rate_limit(rq, &it, 1, NULL);
}

int http_admit_user(struct request *rq)
{
	if (limit_user(rq) != 0 || mfa_gate(rq) != 0 || check_access(rq) != 0)
		return BZ_ERR_RESPONDED;
	return 0;
}
