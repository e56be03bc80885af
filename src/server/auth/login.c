/*
 * login.c — POST /api/v1/auth/login and GET /api/v1/auth/me.
 *
 * Unknown e-mail, wrong password and disabled account get the same 401 body
 * and cost the same argon2id work (a dummy hash is verified when there is no
 * user), so neither the answer nor its timing tells which accounts exist.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "crypto/crypto.h"
#include "crypto/password.h"
#include "server/audit/audit.h"
#include "server/auth/auth.h"
#include "server/auth/auth_api.h"
#include "server/db/db.h"

static const char *user_by_email_sql =
	"SELECT u.id, u.password_hash, u.status, coalesce(u.org_id::text, ''),"
	"       coalesce(u.partner_id::text, ''), u.name, r.name"
	"  FROM users u JOIN roles r ON r.id = u.role_id WHERE u.email = $1";

static const char *create_session_sql =
	"INSERT INTO sessions (user_id, expires_at, ip_address, user_agent)"
	" VALUES ($1::uuid, now() + make_interval(secs => $2::bigint), $3::inet, $4)"
	" RETURNING id, extract(epoch FROM expires_at)::bigint";

static void login_failed(struct request *rq, PGconn *c, const char *email, const char *user_id,
			 const char *org_id, const char *reason)
{
	struct audit_event ev = {.org_id = (org_id && org_id[0]) ? org_id : NULL,
				 .actor_type = "user",
				 .actor_id = user_id,
				 .action = "auth.login.failed",
				 .resource = "sessions",
				 .result = "failure",
				 .details = json_pack("{s:s,s:s}", "email", email, "reason", reason)};
	ev.ip_address = rq->client_ip;
	if (audit_write_standalone(c, &ev) != 0)
		log_error("audit.write.failed", "action", ev.action, NULL);
	json_decref(ev.details);
	http_fail(rq, 401, "invalid_credentials", "invalid e-mail or password");
}

static void login(struct request *rq)
{
	const struct config *cfg = rq->app->cfg;
	const char *email_in = NULL, *password = NULL;
	char email[256];

	if (body_string(rq, "email", 1, 320, &email_in) != 0 ||
	    body_string(rq, "password", 1, 1024, &password) != 0)
		return;
	if (auth_normalize_email(email_in, email, sizeof(email)) != 0) {
		/* Malformed addresses cannot exist; still spend the same time. */
		password_verify(password, NULL);
		http_fail(rq, 401, "invalid_credentials", "invalid e-mail or password");
		return;
	}
	PGconn *c = http_db(rq);
	if (c == NULL)
		return;
	const char *p1[1] = {email};
	PGresult *r = db_query(c, user_by_email_sql, 1, p1, NULL);
	if (r == NULL) {
		http_fail_err(rq, BZ_ERR_DB, NULL);
		return;
	}
	int found = PQntuples(r) == 1;
	const char *hash = found ? PQgetvalue(r, 0, 1) : NULL;
	int ok = password_verify(password, hash);
	if (!found) {
		PQclear(r);
		login_failed(rq, c, email, NULL, NULL, "unknown_user");
		return;
	}
	char user_id[37], org_id[37], partner_id[37];
	snprintf(user_id, sizeof(user_id), "%s", PQgetvalue(r, 0, 0));
	snprintf(org_id, sizeof(org_id), "%s", PQgetvalue(r, 0, 3));
	snprintf(partner_id, sizeof(partner_id), "%s", PQgetvalue(r, 0, 4));
	int active = strcmp(PQgetvalue(r, 0, 2), "active") == 0;
	json_t *user = json_pack("{s:s,s:s,s:s,s:s,s:s?,s:s?}", "id", user_id, "email", email, "name",
				 PQgetvalue(r, 0, 5), "role", PQgetvalue(r, 0, 6), "partnerId",
				 partner_id[0] ? partner_id : NULL, "orgId",
				 org_id[0] ? org_id : NULL);
	PQclear(r);
	if (!ok || !active) {
		json_decref(user);
		login_failed(rq, c, email, user_id, org_id, ok ? "account_disabled" : "bad_password");
		return;
	}

	char max_age[24];
	snprintf(max_age, sizeof(max_age), "%lld", (long long)cfg->session_max_age_s);
	const char *ua = http_header(rq, "User-Agent");
	json_t *ua_check = ua ? json_string(ua) : NULL; /* jansson validates UTF-8 */
	if (ua_check == NULL)
		ua = NULL;
	json_decref(ua_check);
	char ua_short[256];
	snprintf(ua_short, sizeof(ua_short), "%s", ua ? ua : "");
	/* Never cut a UTF-8 sequence in half: drop a trailing partial one. */
	size_t ul = strlen(ua_short), k = ul;
	while (k > 0 && ((unsigned char)ua_short[k - 1] & 0xC0) == 0x80)
		k--;
	if (k > 0 && ((unsigned char)ua_short[k - 1] & 0x80)) {
		unsigned char lead = (unsigned char)ua_short[k - 1];
		size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
		if (ul - (k - 1) < need)
			ua_short[k - 1] = '\0';
	}
	if (db_begin(c) != 0)
		goto dberr;
	const char *p2[4] = {user_id, max_age, rq->client_ip[0] ? rq->client_ip : NULL, ua_short};
	r = db_query(c, create_session_sql, 4, p2, NULL);
	if (r == NULL)
		goto dberr;
	char sid[37];
	snprintf(sid, sizeof(sid), "%s", PQgetvalue(r, 0, 0));
	int64_t session_exp = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
	PQclear(r);
	const char *p3[1] = {user_id};
	if (db_exec(c, "UPDATE users SET last_login_at = now() WHERE id = $1::uuid", 1, p3) != 0)
		goto dberr;
	struct audit_event ev = {.org_id = org_id[0] ? org_id : NULL,
				 .actor_type = "user",
				 .actor_id = user_id,
				 .action = "auth.login",
				 .resource = "sessions",
				 .resource_id = sid,
				 .ip_address = rq->client_ip};
	if (audit_write(c, &ev) != 0 || db_commit(c) != 0)
		goto dberr;

	int64_t now = bz_now();
	int64_t exp = now + cfg->access_token_ttl_s;
	if (exp > session_exp)
		exp = session_exp;
	const char *secret = cfg->secrets[SECRET_JWT];
	char *tok = auth_jwt_issue(secret, strlen(secret), user_id, sid, now, exp);
	if (tok == NULL) {
		json_decref(user);
		http_fail_err(rq, BZ_ERR_CRYPTO, NULL);
		return;
	}
	json_t *out = json_pack("{s:s,s:s,s:I,s:o}", "accessToken", tok, "tokenType", "Bearer",
				"expiresIn", (json_int_t)(exp - now), "user", user);
	crypto_wipe(tok, strlen(tok));
	free(tok);
	http_reply(rq, 200, out);
	return;
dberr:
	db_rollback(c);
	json_decref(user);
	http_fail_err(rq, BZ_ERR_DB, NULL);
}

static void me(struct request *rq)
{
	const struct principal *w = &rq->who;
	json_t *out = json_pack("{s:s,s:s,s:s,s:s?,s:s?,s:{s:s,s:s,s:b},s:O,s:b,s:s,s:O}", "id",
				w->user_id, "email", w->email, "name", w->name, "partnerId",
				w->partner_id[0] ? w->partner_id : NULL, "orgId",
				w->org_id[0] ? w->org_id : NULL, "role", "id", w->role_id, "name",
				w->role_name, "forceMfa", w->force_mfa, "permissions", w->permissions,
				"mfaEnabled", w->mfa_enabled, "sessionId", w->session_id,
				"organizationIds", rq->scope.org_ids);
	http_reply(rq, 200, out);
}

extern void users_list(struct request *rq);
extern void users_create(struct request *rq);
extern void roles_list(struct request *rq);

const struct route auth_routes[] = {
	{"POST", "/api/v1/auth/login", login, ROUTE_PUBLIC | ROUTE_JSON_BODY, NULL, "auth.login"},
	{"GET", "/api/v1/auth/me", me, ROUTE_USER, NULL, NULL},
	{"GET", "/api/v1/users", users_list, ROUTE_USER, "users:read", NULL},
	{"POST", "/api/v1/users", users_create, ROUTE_USER | ROUTE_JSON_BODY, "users:write",
	 "user.create"},
	{"GET", "/api/v1/roles", roles_list, ROUTE_USER, "roles:read", NULL},
};
const size_t auth_routes_count = sizeof(auth_routes) / sizeof(*auth_routes);
