/*
 * mfa_api.c — the MFA routes: /api/v1/auth/mfa/{setup,enable,disable,
 * recovery-codes,verify}. Parse, one call into mfa.c / mfa_login.c,
 * render. Setup and enable stay reachable for a caller the 428 gate holds
 * (ROUTE_MFA_EXEMPT); verify is public (the mfaToken is the credential).
 */
#include "crypto/crypto.h"
#include "server/auth/auth.h"
#include "server/auth/auth_api.h"
#include "server/auth/mfa.h"

struct mfa_input {
	struct body_str password;
	struct body_str code;
	struct body_str recovery_code;
	struct body_str mfa_token;
};

#define PASSWORD_FIELD(flags)                                                                      \
	BODY_FIELD("currentPassword", BODY_STRING, flags, struct mfa_input, password, 0,           \
		   AUTH_PASSWORD_MAX)
#define CODE_FIELD(flags) BODY_FIELD("code", BODY_STRING, flags, struct mfa_input, code, 0, 16)

static const struct body_field setup_fields[] = {PASSWORD_FIELD(BODY_REQUIRED), BODY_FIELDS_END};
static const struct body_field enable_fields[] = {CODE_FIELD(BODY_REQUIRED), BODY_FIELDS_END};
static const struct body_field disable_fields[] = {CODE_FIELD(BODY_REQUIRED),
						   PASSWORD_FIELD(BODY_REQUIRED), BODY_FIELDS_END};
static const struct body_field verify_fields[] = {
	BODY_FIELD("mfaToken", BODY_STRING, BODY_REQUIRED, struct mfa_input, mfa_token, 1, 128),
	CODE_FIELD(0),
	BODY_FIELD("recoveryCode", BODY_STRING, 0, struct mfa_input, recovery_code, 0, 32),
	BODY_FIELDS_END,
};

/* Ends an MFA mutation: success commits EV and answers STATUS with BODY;
 * an audited refusal (EV set) commits EV and answers the error; any other
 * error rolls back. */
static void finish(struct request *rq, PGconn *c, int rc, const struct bz_errinfo *why,
		   struct audit_event *ev, int status, json_t *body)
{
	if (rc == 0 || ev->action == NULL) {
		http_commit(rq, c, rc, why, ev, status, body);
		return;
	}
	json_decref(body);
	http_commit_refusal(rq, c, rc, why, ev);
}

static json_t *codes_json(struct mfa_codes *codes)
{
	json_t *a = json_array();

	for (size_t i = 0; i < MFA_RECOVERY_CODE_COUNT; i++)
		json_array_append_new(a, json_string(codes->v[i]));
	crypto_wipe(codes, sizeof(*codes));
	return a;
}

static void setup(struct request *rq)
{
	struct mfa_input in = {0};
	struct mfa_setup s;
	struct audit_event ev;
	struct bz_errinfo why = {0};
	json_t *body = NULL;
	PGconn *c;

	if (http_body_parse(rq, setup_fields, &in) != 0 || auth_api_step_up_limit(rq) != 0 ||
	    (c = http_db_begin(rq)) == NULL)
		return;
	int rc = auth_mfa_setup(c, rq->app->cfg, &rq->who, in.password.v, &s, &ev, &why);
	if (rc == 0)
		body = json_pack("{s:s,s:s,s:s,s:o}", "secret", s.secret, "otpauthUri",
				 s.otpauth_uri, "qrSvg", s.qr_svg, "recoveryCodes",
				 codes_json(&s.codes));
	finish(rq, c, rc, &why, &ev, 200, body);
	auth_mfa_setup_free(&s);
}

static void enable(struct request *rq)
{
	struct mfa_input in = {0};
	struct audit_event ev;
	struct bz_errinfo why = {0};
	PGconn *c;

	if (http_body_parse(rq, enable_fields, &in) != 0 || (c = http_db_begin(rq)) == NULL)
		return;
	int rc = auth_mfa_enable(c, rq->app->cfg, &rq->who, in.code.v, &ev, &why);
	finish(rq, c, rc, &why, &ev, 200, json_pack("{s:b}", "mfaEnabled", 1));
}

static void disable(struct request *rq)
{
	struct mfa_input in = {0};
	struct audit_event ev;
	struct bz_errinfo why = {0};
	PGconn *c;

	if (http_body_parse(rq, disable_fields, &in) != 0 || auth_api_step_up_limit(rq) != 0 ||
	    (c = http_db_begin(rq)) == NULL)
		return;
	int rc = auth_mfa_disable(c, rq->app->cfg, &rq->who, in.code.v, in.password.v, &ev, &why);
	finish(rq, c, rc, &why, &ev, 200, json_pack("{s:b}", "mfaEnabled", 0));
}

static void recovery_codes(struct request *rq)
{
	struct mfa_input in = {0};
	struct mfa_codes codes;
	struct audit_event ev;
	struct bz_errinfo why = {0};
	PGconn *c;

	if (http_body_parse(rq, setup_fields, &in) != 0 || auth_api_step_up_limit(rq) != 0 ||
	    (c = http_db_begin(rq)) == NULL)
		return;
	int rc = auth_mfa_recovery_regenerate(c, rq->app->cfg, &rq->who, in.password.v, &codes, &ev,
					      &why);
	finish(rq, c, rc, &why, &ev, 200,
	       rc == 0 ? json_pack("{s:o}", "recoveryCodes", codes_json(&codes)) : NULL);
	crypto_wipe(&codes, sizeof(codes));
}

/* MFA verification attempts per user (the token's), before the code is
 * checked or anything is written; an unknown token has no user to count
 * against and is refused by auth_mfa_verify(). Returns 0 or
 * BZ_ERR_RESPONDED (429, audited once per user per window). */
static int verify_limit(struct request *rq, PGconn *c, const char *token)
{
	char user_id[37];
	int rc = auth_mfa_token_user(c, token, user_id);

	if (rc != 0) {
		http_fail_err(rq, rc, NULL);
		return BZ_ERR_RESPONDED;
	}
	if (!user_id[0])
		return 0;
	const struct ratelimit_item it = {.limiter = RL_MFA, .tag = user_id};
	const struct audit_event refusal = {.actor_type = "user",
					    .actor_id = user_id,
					    .action = "auth.mfa.verify.rate_limited",
					    .resource = "sessions"};
	return http_rate_limit(rq, &it, 1, &refusal);
}

static void verify(struct request *rq)
{
	struct mfa_input in = {0};
	struct auth_login res;
	struct audit_event ev;
	struct bz_errinfo why = {0};
	PGconn *c;

	if (auth_api_check_origin(rq) != 0 || http_body_parse(rq, verify_fields, &in) != 0 ||
	    (c = http_db(rq)) == NULL || verify_limit(rq, c, in.mfa_token.v) != 0 ||
	    (c = http_db_begin(rq)) == NULL)
		return;
	const struct auth_mfa_verify_input vi = {.mfa_token = in.mfa_token.v,
						 .code = in.code.v,
						 .recovery_code = in.recovery_code.v,
						 .ip = rq->client_ip,
						 .user_agent = http_header(rq, "User-Agent")};
	int rc = auth_mfa_verify(c, rq->app->cfg, &vi, &res, &ev, &why);
	if (rc == 0)
		login_api_render_session(rq, &res, c, &ev);
	else
		finish(rq, c, rc, &why, &ev, 0, NULL);
	auth_login_free(&res);
}

#define MFA_BODY (ROUTE_USER | ROUTE_SELF_SERVICE | ROUTE_JSON_BODY)

const struct route auth_mfa_routes[] = {
	{"POST", "/api/v1/auth/mfa/setup", setup, MFA_BODY | ROUTE_MFA_EXEMPT, NULL,
	 "auth.mfa.setup", NULL},
	{"POST", "/api/v1/auth/mfa/enable", enable, MFA_BODY | ROUTE_MFA_EXEMPT, NULL,
	 "auth.mfa.enable", NULL},
	{"POST", "/api/v1/auth/mfa/disable", disable, MFA_BODY, NULL, "auth.mfa.disable", NULL},
	{"POST", "/api/v1/auth/mfa/recovery-codes", recovery_codes, MFA_BODY, NULL,
	 "auth.mfa.recovery_codes", NULL},
	{"POST", "/api/v1/auth/mfa/verify", verify, ROUTE_PUBLIC | ROUTE_JSON_BODY, NULL,
	 "auth.login", NULL},
};
const size_t auth_mfa_routes_count = sizeof(auth_mfa_routes) / sizeof(*auth_mfa_routes);
