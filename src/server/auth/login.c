/*
 * login.c — credentials → session → refresh-token family and access token.
 *
 * Unknown e-mail, wrong password and disabled account get the same answer
 * and cost the same argon2id work (a dummy hash is verified when there is no
 * user), so neither the answer nor its timing tells which accounts exist.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "common/metrics.h"
#include "crypto/crypto.h"
#include "crypto/password.h"
#include "server/audit/audit.h"
#include "server/auth/auth.h"
#include "server/auth/mfa.h"
#include "server/config.h"
#include "server/db/db.h"

static int invalid_credentials(struct bz_errinfo *why)
{
	return bz_fail(why, BZ_ERR_UNAUTHORIZED, "invalid_credentials", NULL,
		       "invalid e-mail or password");
}

/* Too many logins wait for a password hashing slot (password_check): 503
 * with Retry-After, nothing verified, nothing audited. */
static int hashing_busy(struct bz_errinfo *why)
{
	return bz_fail(why, BZ_ERR_UNAVAILABLE, "server_busy", NULL,
		       "too many sign-ins at once; retry shortly");
}

/* Writes auth.login.failed in its own transaction and answers like every
 * other failed login. */
static int login_failed(PGconn *c, const struct auth_login_input *in, const char *email,
			const char *user_id, const char *org_id, const char *reason,
			struct bz_errinfo *why)
{
	struct audit_event ev = {.org_id = (org_id && org_id[0]) ? org_id : NULL,
				 .actor_type = "user",
				 .actor_id = user_id,
				 .action = "auth.login.failed",
				 .resource = "sessions",
				 .result = "failure",
				 .details =
					 json_pack("{s:s,s:s}", "email", email, "reason", reason)};
	ev.ip_address = in->ip;
	metrics_inc(METRIC_LOGINS, "failure");
	if (audit_write_standalone(c, &ev) != 0)
		log_error("audit.write.failed", "action", ev.action, NULL);
	json_decref(ev.details);
	return invalid_credentials(why);
}

int auth_access_token_issue(const struct config *cfg, const char *user_id, const char *sid,
			    int64_t now, int64_t session_exp, struct auth_login *out)
{
	const char *secret = cfg->secrets[SECRET_JWT];
	int64_t exp = now + cfg->access_token_ttl_s;

	/* An access token never outlives its session (A5). */
	if (exp > session_exp)
		exp = session_exp;
	out->access_token = auth_jwt_issue(secret, strlen(secret), user_id, sid, now, exp);
	if (out->access_token == NULL)
		return BZ_ERR_CRYPTO;
	out->expires_in_s = exp - now;
	return 0;
}

int auth_login_issue(PGconn *c, const struct config *cfg, const struct auth_user *user,
		     const char *ip, const char *user_agent, struct auth_login *out)
{
	int rc;

	if (&out->user != user)
		out->user = *user;
	out->now = bz_now();
	/* The user row stays locked until COMMIT, so a concurrent disable waits
	 * for this session and then revokes it. */
	if ((rc = auth_user_login_touch(c, user->id)) != 0)
		return rc;
	rc = auth_session_create(c, user->id, out->now, cfg->session_max_age_s, ip, user_agent,
				 out->session_id, &out->session_expires_at);
	if (rc == 0)
		rc = auth_refresh_family_add(c, out->session_id, 0, out->now, out);
	if (rc == 0)
		rc = auth_access_token_issue(cfg, user->id, out->session_id, out->now,
					     out->session_expires_at, out);
	out->mfa_enrollment_required = out->user.force_mfa && !out->user.mfa_enabled;
	return rc;
}

/* Opens the transaction and starts the session (auth_login_issue) or, with
 * MFA on, the second step (an mfaToken). On error the transaction is rolled
 * back. */
static int start_session(PGconn *c, const struct config *cfg, const struct auth_login_input *in,
			 const struct auth_user *user, struct auth_login *out,
			 struct audit_event *ev, struct bz_errinfo *why)
{
	int rc;

	if (db_begin(c) != 0)
		return BZ_ERR_DB;
	/* A1: with MFA on, the password only earns the second step; the
	 * login is recorded when that succeeds (auth_mfa_verify()). */
	if (user->mfa_enabled) {
		out->user = *user;
		rc = auth_mfa_challenge_start(c, user->id, out->mfa_token, &out->mfa_expires_in_s);
	} else {
		rc = auth_login_issue(c, cfg, user, in->ip, in->user_agent, out);
	}
	if (rc == BZ_ERR_UNAUTHORIZED) {
		db_rollback(c);
		return login_failed(c, in, user->email, user->id, user->org_id, "account_disabled",
				    why);
	}
	if (rc != 0) {
		db_rollback(c);
		return rc;
	}
	*ev = (struct audit_event){.org_id = out->user.org_id[0] ? out->user.org_id : NULL,
				   .actor_type = "user",
				   .actor_id = out->user.id,
				   .action = out->mfa_token[0] ? "auth.login.mfa_challenge"
							       : "auth.login",
				   .resource = "sessions",
				   .resource_id = out->mfa_token[0] ? NULL : out->session_id,
				   .ip_address = in->ip};
	metrics_inc(METRIC_LOGINS, out->mfa_token[0] ? "mfa_challenge" : "success");
	return 0;
}

int auth_login(PGconn *c, const struct config *cfg, const struct auth_login_input *in,
	       struct auth_login *out, struct audit_event *ev, struct bz_errinfo *why)
{
	struct auth_credentials cr;
	char email[AUTH_EMAIL_MAX + 1];
	int found, ok, rc;

	memset(out, 0, sizeof(*out));
	*ev = (struct audit_event){0};
	if (auth_normalize_email(in->email, email, sizeof(email)) != 0) {
		/* Malformed addresses cannot exist; still spend the same time. */
		if (password_check(in->password, NULL) == BZ_ERR_UNAVAILABLE)
			return hashing_busy(why);
		metrics_inc(METRIC_LOGINS, "failure");
		return invalid_credentials(why);
	}
	if ((rc = auth_user_credentials(c, email, &cr, &found)) != 0)
		return rc;
	rc = password_check(in->password, found ? cr.password_hash : NULL);
	crypto_wipe(cr.password_hash, sizeof(cr.password_hash));
	if (rc == BZ_ERR_UNAVAILABLE)
		return hashing_busy(why);
	ok = rc == 1;
	if (!found)
		return login_failed(c, in, email, NULL, NULL, "unknown_user", why);
	int active = strcmp(cr.user.status, "active") == 0;
	if (!ok || !active)
		return login_failed(c, in, email, cr.user.id, cr.user.org_id,
				    ok ? "account_disabled" : "bad_password", why);
	return start_session(c, cfg, in, &cr.user, out, ev, why);
}

void auth_login_free(struct auth_login *l)
{
	crypto_wipe(l->mfa_token, sizeof(l->mfa_token));
	if (l->access_token != NULL) {
		crypto_wipe(l->access_token, strlen(l->access_token));
		free(l->access_token);
		l->access_token = NULL;
	}
	crypto_wipe(l->refresh_token, sizeof(l->refresh_token));
	crypto_wipe(l->csrf_token, sizeof(l->csrf_token));
}
