/*
 * session_api.c — the session routes: POST /api/v1/auth/refresh and
 * /auth/logout (cookie-authenticated: the refresh-token cookie, the CSRF
 * double submit and the Origin check), POST /auth/password, and
 * GET/DELETE /auth/sessions. Handlers parse, call sessions.c, refresh.c or
 * password_change.c, and render; the rules live there.
 *
 * Why cookies and CSRF: the refresh token is HttpOnly, so page scripts (and
 * an XSS) cannot read it; SameSite=Strict keeps browsers from sending it
 * with cross-site requests; and because a cookie is sent by the browser
 * whoever asks, /refresh and /logout also want the CSRF cookie's value
 * echoed in X-Breeze-CSRF, which only a page of our own origin can read
 * (double submit), and refuse a foreign Origin outright.
 */
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "crypto/crypto.h"
#include "server/auth/auth.h"
#include "server/auth/auth_api.h"
#include "server/http/cookie.h"

/* ---- Cookies, CSRF and Origin ---- */

/* The cookies' names for RQ's configuration (see auth_api.h). */
static const char *refresh_cookie(const struct request *rq)
{
	return rq->app->cfg->session_cookie_secure ? AUTH_HOST_REFRESH_COOKIE : AUTH_REFRESH_COOKIE;
}

static const char *csrf_cookie(const struct request *rq)
{
	return rq->app->cfg->session_cookie_secure ? AUTH_HOST_CSRF_COOKIE : AUTH_CSRF_COOKIE;
}

static void set_cookie(struct request *rq, const char *name, const char *value, int64_t max_age,
		       const char *path, int http_only)
{
	int secure = rq->app->cfg->session_cookie_secure;
	char v[AUTH_REFRESH_TOKEN_LEN + 32];

	/* ulfius writes Max-Age only when it is positive; a cookie is
	 * deleted with Max-Age=0 (RFC 6265 §5.2.2), so that one is written
	 * into the value position, before the attributes. */
	if (max_age <= 0)
		snprintf(v, sizeof(v), "; Max-Age=0");
	else
		snprintf(v, sizeof(v), "%s", value);
	ulfius_add_same_site_cookie_to_response(rq->resp, name, v,
						max_age <= 0 ? "Thu, 01 Jan 1970 00:00:00 GMT"
							     : NULL,
						max_age > 0 ? (unsigned)max_age : 0, NULL, path,
						secure, http_only, U_COOKIE_SAME_SITE_STRICT);
	crypto_wipe(v, sizeof(v));
}

void auth_api_session_cookies(struct request *rq, const struct auth_login *l)
{
	int64_t left = l != NULL ? l->session_expires_at - l->now : 0;

	if (l != NULL && left <= 0)
		left = 1; /* never a deleting cookie for a live session */
	set_cookie(rq, refresh_cookie(rq), l ? l->refresh_token : "", l ? left : 0,
		   rq->app->cfg->session_cookie_secure ? "/" : AUTH_REFRESH_COOKIE_PATH, 1);
	set_cookie(rq, csrf_cookie(rq), l ? l->csrf_token : "", l ? left : 0, "/", 0);
}

int auth_api_check_origin(struct request *rq)
{
	const struct config_origins *allowed = &rq->app->cfg->allowed_origins;
	const char *origin = http_header(rq, "Origin");
	char norm[CONFIG_ORIGIN_LEN];

	if (origin == NULL)
		return 0;
	if (config_origin_normalize(origin, norm, sizeof(norm)) == 0)
		for (unsigned i = 0; i < allowed->n; i++)
			if (strcmp(norm, allowed->v[i]) == 0)
				return 0;
	http_fail(rq, 403, "origin_not_allowed", "requests from this origin are not allowed");
	return BZ_ERR_RESPONDED;
}

int auth_api_step_up_limit(struct request *rq)
{
	const struct ratelimit_item it = {.limiter = RL_MFA, .tag = rq->who.user_id};
	const struct audit_event refusal = {.actor_type = "user",
					    .actor_id = rq->who.user_id,
					    .action = "auth.step_up.rate_limited",
					    .resource = "users",
					    .resource_id = rq->who.user_id};

	return http_rate_limit(rq, &it, 1, &refusal);
}

/* The double submit: the CSRF cookie and header X-Breeze-CSRF
 * must both be there and equal (constant-time). Returns 0 or
 * BZ_ERR_RESPONDED (403 csrf_failed). */
static int check_csrf(struct request *rq)
{
	char cookie[AUTH_REFRESH_TOKEN_LEN + 1];
	const char *header = http_header(rq, AUTH_CSRF_HEADER);
	int ok = http_cookie_get(http_header(rq, "Cookie"), csrf_cookie(rq), cookie,
				 sizeof(cookie)) == 0 &&
		 auth_token_well_formed(cookie) && header != NULL &&
		 crypto_ct_streq(cookie, header);

	crypto_wipe(cookie, sizeof(cookie));
	if (ok)
		return 0;
	http_fail(rq, 403, "csrf_failed", "missing or mismatched CSRF token");
	return BZ_ERR_RESPONDED;
}

/* Origin, CSRF, then the refresh-token cookie into TOKEN. A missing or
 * unreadable cookie is 401 invalid_refresh_token. Returns 0 or
 * BZ_ERR_RESPONDED. */
static int cookie_request(struct request *rq, char token[AUTH_REFRESH_TOKEN_LEN + 1])
{
	if (auth_api_check_origin(rq) != 0 || check_csrf(rq) != 0)
		return BZ_ERR_RESPONDED;
	if (http_cookie_get(http_header(rq, "Cookie"), refresh_cookie(rq), token,
			    AUTH_REFRESH_TOKEN_LEN + 1) != 0) {
		http_fail(rq, 401, "invalid_refresh_token", "missing or invalid refresh token");
		return BZ_ERR_RESPONDED;
	}
	return 0;
}

/* ---- Handlers ---- */

static void refresh(struct request *rq)
{
	char token[AUTH_REFRESH_TOKEN_LEN + 1];
	struct auth_login res;
	struct audit_event ev;
	struct bz_errinfo why = {0};
	PGconn *c;
	int rc;

	memset(&res, 0, sizeof(res));
	if (cookie_request(rq, token) != 0 || (c = http_db(rq)) == NULL)
		goto out;
	rc = auth_refresh(c, rq->app->cfg, token, rq->client_ip, &res, &ev, &why);
	if (rc != 0) {
		http_fail_why(rq, rc, &why); /* no transaction is open, no cookie set */
		goto out;
	}
	http_commit(rq, c, 0, &why, &ev, 200,
		    json_pack("{s:s,s:s,s:I}", "accessToken", res.access_token, "tokenType",
			      "Bearer", "expiresIn", (json_int_t)res.expires_in_s));
	if (rq->status == 200)
		auth_api_session_cookies(rq, &res);
out:
	crypto_wipe(token, sizeof(token));
	auth_login_free(&res);
}

static void logout(struct request *rq)
{
	char token[AUTH_REFRESH_TOKEN_LEN + 1];
	struct auth_session_ref ref;
	struct audit_event ev;
	struct bz_errinfo why = {0};
	PGconn *c;

	if (cookie_request(rq, token) != 0 || (c = http_db_begin(rq)) == NULL)
		goto out;
	int rc = auth_logout(c, token, &ref, &ev, &why);
	/* 200 only once the revocation is committed (503 otherwise). */
	http_commit(rq, c, rc, &why, &ev, 200, json_pack("{s:s}", "sessionId", ref.id));
	if (rq->status == 200)
		auth_api_session_cookies(rq, NULL);
out:
	crypto_wipe(token, sizeof(token));
}

/* The body of POST /auth/password: secrets, so only length bounds here. */
struct password_input {
	struct body_str current_password;
	struct body_str new_password;
};

static const struct body_field password_fields[] = {
	BODY_FIELD("currentPassword", BODY_STRING, BODY_REQUIRED, struct password_input,
		   current_password, 0, AUTH_PASSWORD_MAX),
	BODY_FIELD("newPassword", BODY_STRING, BODY_REQUIRED, struct password_input, new_password,
		   0, 4 * AUTH_PASSWORD_MAX),
	BODY_FIELDS_END,
};

static void change_password(struct request *rq)
{
	struct password_input in = {0};
	struct auth_session_ref ref;
	struct audit_event ev;
	struct bz_errinfo why = {0};
	long revoked = 0;
	PGconn *c;

	if (http_body_parse(rq, password_fields, &in) != 0 || auth_api_step_up_limit(rq) != 0 ||
	    (c = http_db(rq)) == NULL)
		return;
	const struct auth_password_change pc = {.user_id = rq->who.user_id,
						.session_id = rq->who.session_id,
						.current_password = in.current_password.v,
						.new_password = in.new_password.v,
						.ip = rq->client_ip};
	int rc = auth_password_change(c, &pc, &ref, &revoked, &ev, &why);
	if (rc != 0)
		http_fail_why(rq, rc, &why); /* no transaction is open */
	else
		http_commit(rq, c, 0, &why, &ev, 200,
			    json_pack("{s:I}", "revokedSessions", (json_int_t)revoked));
}

static json_t *session_json(const struct auth_session *s)
{
	return json_pack("{s:s,s:s,s:s,s:s,s:s?,s:s?,s:b}", "id", s->id, "createdAt", s->created_at,
			 "lastSeenAt", s->last_seen_at, "expiresAt", s->expires_at, "ip",
			 s->ip[0] ? s->ip : NULL, "userAgent",
			 s->user_agent[0] ? s->user_agent : NULL, "current", s->current);
}

static void list_sessions(struct request *rq)
{
	struct auth_session *all = NULL;
	size_t n = 0;
	PGconn *c;
	int rc;

	if ((c = http_db(rq)) == NULL)
		return;
	rc = auth_session_list(c, rq->app->cfg, rq->who.user_id, rq->who.session_id, &all, &n);
	if (rc != 0) {
		http_fail_err(rq, rc, NULL);
		return;
	}
	json_t *arr = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, session_json(&all[i]));
	free(all);
	http_reply(rq, 200, json_pack("{s:o}", "sessions", arr));
}

static void revoke_session(struct request *rq)
{
	char id[37];
	struct auth_session_ref ref;
	struct audit_event ev;
	struct bz_errinfo why = {0};
	PGconn *c;

	if (http_path_uuid(rq, "id", id, "session not found") != 0 ||
	    (c = http_db_begin(rq)) == NULL)
		return;
	int rc = auth_session_revoke(c, rq->who.user_id, rq->who.org_id, id, &ref, &ev, &why);
	http_commit(rq, c, rc, &why, &ev, 204, NULL);
}

/* /refresh and /logout carry no bearer token: the refresh-token cookie is
 * the credential. They are public routes to the dispatcher and check it
 * themselves (cookie_request). */
const struct route auth_session_routes[] = {
	{"POST", "/api/v1/auth/refresh", refresh, ROUTE_PUBLIC, NULL, "auth.refresh", NULL},
	{"POST", "/api/v1/auth/logout", logout, ROUTE_PUBLIC, NULL, "auth.logout", NULL},
	{"POST", "/api/v1/auth/password", change_password,
	 ROUTE_USER | ROUTE_SELF_SERVICE | ROUTE_JSON_BODY, NULL, "auth.password.change", NULL},
	{"GET", "/api/v1/auth/sessions", list_sessions, ROUTE_USER | ROUTE_SELF_SERVICE, NULL, NULL,
	 NULL},
	{"DELETE", "/api/v1/auth/sessions/:id", revoke_session, ROUTE_USER | ROUTE_SELF_SERVICE,
	 NULL, "auth.session.revoke", NULL},
};
const size_t auth_session_routes_count = sizeof(auth_session_routes) / sizeof(*auth_session_routes);
