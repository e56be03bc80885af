/*
 * login_api.c — POST /api/v1/auth/login and GET /api/v1/auth/me. The
 * handlers parse, call login.c, and render; the credential checks, the
 * timing equalisation and the audit events live in login.c. A login's
 * cookies are set by session_api.c.
 */
#include "server/auth/auth.h"
#include "server/auth/auth_api.h"

/* The body of POST /auth/login. The password is a secret: no display-string
 * check, only a length bound; an empty one is a wrong one (401). */
struct login_input {
	struct body_str email;
	struct body_str password;
};

static const struct body_field login_fields[] = {
	BODY_FIELD("email", BODY_STRING, BODY_REQUIRED, struct login_input, email, 0, 320),
	BODY_FIELD("password", BODY_STRING, BODY_REQUIRED, struct login_input, password, 0,
		   AUTH_PASSWORD_MAX),
	{NULL},
};

static json_t *login_json(const struct auth_login *l)
{
	const struct auth_user *u = &l->user;
	json_t *user = json_pack("{s:s,s:s,s:s,s:s,s:s?,s:s?}", "id", u->id, "email", u->email,
				 "name", u->name, "role", u->role, "partnerId",
				 u->partner_id[0] ? u->partner_id : NULL, "orgId",
				 u->org_id[0] ? u->org_id : NULL);

	json_t *out = json_pack("{s:s,s:s,s:I,s:o}", "accessToken", l->access_token, "tokenType",
				"Bearer", "expiresIn", (json_int_t)l->expires_in_s, "user", user);

	/* A2: said only when it applies, so clients that do not know it see
	 * the same answer as before. */
	if (out != NULL && l->mfa_enrollment_required)
		json_object_set_new(out, "mfaEnrollmentRequired", json_true());
	return out;
}

/* A1: the password was right and MFA is on; no session yet. */
static json_t *mfa_challenge_json(const struct auth_login *l)
{
	return json_pack("{s:b,s:s,s:I}", "mfaRequired", 1, "mfaToken", l->mfa_token, "expiresIn",
			 (json_int_t)l->mfa_expires_in_s);
}

void login_api_render_session(struct request *rq, struct auth_login *l, PGconn *c,
			      struct audit_event *ev)
{
	http_commit(rq, c, 0, NULL, ev, 200, login_json(l));
	if (rq->status == 200)
		auth_api_session_cookies(rq, l);
}

/* R1: every attempt counts, successful ones too, against the client's
 * address with the e-mail and the address alone, in one check before the
 * password is hashed; a body without a usable e-mail counts against the
 * address only. Returns 0 or BZ_ERR_RESPONDED (429, audited once per key
 * per window). */
static int login_limit(struct request *rq, const char *email)
{
	char ip[RATELIMIT_IP_LEN + 4], norm[RATELIMIT_EMAIL_MAX + 1];
	struct ratelimit_item it[2] = {{.limiter = RL_LOGIN_IP, .tag = ip}};
	size_t n = 1;
	const struct audit_event refusal = {.actor_type = "system",
					    .action = "auth.login.rate_limited",
					    .resource = "sessions"};

	http_rate_ip(rq, ip, sizeof(ip));
	if (ratelimit_norm_email(email, norm, sizeof(norm)) == 0)
		it[n++] = (struct ratelimit_item){.limiter = RL_LOGIN, .tag = ip, .subject = norm};
	return http_rate_limit(rq, it, n, &refusal);
}

static void login(struct request *rq)
{
	struct login_input in = {0};
	struct auth_login res;
	struct audit_event ev;
	struct bz_errinfo why = {0};
	PGconn *c;

	if (auth_api_check_origin(rq) != 0 || http_body_parse(rq, login_fields, &in) != 0 ||
	    login_limit(rq, in.email.v) != 0 || (c = http_db(rq)) == NULL)
		return;
	const struct auth_login_input li = {.email = in.email.v,
					    .password = in.password.v,
					    .ip = rq->client_ip,
					    .user_agent = http_header(rq, "User-Agent")};
	int rc = auth_login(c, rq->app->cfg, &li, &res, &ev, &why);
	if (rc != 0)
		http_fail_why(rq, rc, &why); /* no transaction is open */
	else if (res.mfa_token[0])
		http_commit(rq, c, 0, &why, &ev, 200, mfa_challenge_json(&res));
	else
		login_api_render_session(rq, &res, c, &ev);
	auth_login_free(&res);
}

static void me(struct request *rq)
{
	const struct principal *w = &rq->who;
	json_t *out = json_pack("{s:s,s:s,s:s,s:s?,s:s?,s:{s:s,s:s,s:b},s:O,s:b,s:s,s:O}", "id",
				w->user_id, "email", w->email, "name", w->name, "partnerId",
				w->partner_id[0] ? w->partner_id : NULL, "orgId",
				w->org_id[0] ? w->org_id : NULL, "role", "id", w->role_id, "name",
				w->role_name, "forceMfa", w->force_mfa, "permissions",
				w->permissions, "mfaEnabled", w->mfa_enabled, "sessionId",
				w->session_id, "organizationIds", rq->scope.org_ids);
	http_reply(rq, 200, out);
}

const struct route auth_routes[] = {
	{"POST", "/api/v1/auth/login", login, ROUTE_PUBLIC | ROUTE_JSON_BODY, NULL, "auth.login",
	 NULL},
	{"GET", "/api/v1/auth/me", me, ROUTE_USER | ROUTE_SELF_SERVICE | ROUTE_MFA_EXEMPT, NULL,
	 NULL, NULL},
};
const size_t auth_routes_count = sizeof(auth_routes) / sizeof(*auth_routes);
