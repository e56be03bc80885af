/*
 * auth_api.c — the authentication hook: bearer access token → live
 * session → principal → tenancy scope, or X-API-Key → the key's principal
 * → its creator's scope (narrowed to the key's organization), for every
 * ROUTE_USER request.
 */
#include <string.h>
#include <strings.h>

#include "common/clock.h"
#include "server/auth/auth.h"
#include "server/auth/auth_api.h"

static int unauthorized(struct request *rq, const char *challenge, const char *msg)
{
	http_set_header(rq, "WWW-Authenticate", challenge);
	http_fail(rq, 401, "unauthorized", "%s", msg);
	return BZ_ERR_RESPONDED;
}

/* X-API-Key: the key's principal (auth_api_key_principal) and its
 * creator's scope, narrowed to the key's organization when it names one. */
static int authenticate_key(struct request *rq, const char *key)
{
	char org_id[37];
	PGconn *c;
	int rc;

	if (http_header(rq, "Authorization") != NULL)
		return unauthorized(rq, "Bearer",
				    "send either a bearer token or an API key, not both");
	if ((c = http_db(rq)) == NULL)
		return BZ_ERR_RESPONDED;
	rc = auth_api_key_principal(c, key, bz_now(), &rq->who, org_id);
	if (rc == BZ_ERR_UNAUTHORIZED)
		return unauthorized(rq, "Bearer", "invalid, expired or revoked API key");
	if (rc == 0)
		rc = tenancy_scope_compute(c, rq->who.user_id, rq->who.partner_id, rq->who.org_id,
					   &rq->scope);
	if (rc == 0 && org_id[0])
		rc = tenancy_scope_restrict_org(&rq->scope, org_id);
	if (rc != 0) {
		http_fail_err(rq, rc, NULL);
		return BZ_ERR_RESPONDED;
	}
	return 0;
}

int auth_api_authenticate(struct request *rq)
{
	const struct config *cfg = rq->app->cfg;
	const char *h = http_header(rq, "Authorization");
	const char *key = http_header(rq, "X-API-Key");
	const char *jwt_secret = cfg->secrets[SECRET_JWT];
	struct jwt_claims cl;
	PGconn *c;
	int rc;

	if (key != NULL)
		return authenticate_key(rq, key);
	if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0)
		return unauthorized(rq, "Bearer", "missing bearer token");
	if (auth_jwt_verify(jwt_secret, strlen(jwt_secret), h + 7, bz_now(),
			    cfg->access_token_ttl_s, &cl) != 0)
		return unauthorized(rq, "Bearer error=\"invalid_token\"",
				    "invalid or expired token");
	if ((c = http_db(rq)) == NULL)
		return BZ_ERR_RESPONDED;
	rc = auth_session_principal(c, cfg, cl.sid, cl.sub, &rq->who);
	if (rc == BZ_ERR_UNAUTHORIZED)
		return unauthorized(rq, "Bearer error=\"invalid_token\"",
				    "session expired or revoked");
	if (rc == 0)
		rc = tenancy_scope_compute(c, rq->who.user_id, rq->who.partner_id, rq->who.org_id,
					   &rq->scope);
	if (rc != 0) {
		http_fail_err(rq, rc, NULL);
		return BZ_ERR_RESPONDED;
	}
	return 0;
}
