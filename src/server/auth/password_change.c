/*
 * password_change.c — POST /auth/password: a user changes their own
 * password. The current password is required (a stolen access token alone
 * cannot lock the owner out), and every other session of the user is
 * revoked, so whoever else was logged in with the old password is out; so
 * is every pending mfaToken, which only the old password could have earned.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/log.h"
#include "crypto/crypto.h"
#include "crypto/password.h"
#include "common/text.h"
#include "server/audit/audit.h"
#include "server/auth/auth.h"
#include "server/auth/mfa.h"
#include "server/db/db.h"

/* The same rules as a password chosen at POST /users (users.c), plus: not
 * the account's own e-mail address. */
static int check_new_password(const char *pw, const char *email, struct bz_errinfo *why)
{
	size_t n = strlen(pw);

	if (n < AUTH_PASSWORD_MIN || n > AUTH_PASSWORD_MAX)
		return bz_fail(why, BZ_ERR_INVALID, "validation_error", "newPassword",
			       "field 'newPassword' must be 12 to 1024 bytes");
	if (strcasecmp(pw, email) == 0)
		return bz_fail(why, BZ_ERR_INVALID, "validation_error", "newPassword",
			       "field 'newPassword' must not be the e-mail address");
	return 0;
}

/* Loads the caller's e-mail, organization and password hash, locking the
 * row until COMMIT so two changes do not interleave. Returns 0,
 * BZ_ERR_UNAUTHORIZED (no longer active) or BZ_ERR_DB. */
static int lock_user(PGconn *c, const char *user_id, char *email, size_t emaillen, char *org_id,
		     char *hash, size_t hashlen)
{
	static const char *sql =
		"SELECT email, coalesce(org_id::text, ''), password_hash"
		"  FROM users WHERE id = $1::uuid AND status = 'active' FOR UPDATE";
	const char *p[1] = {user_id};
	PGresult *r = db_query(c, sql, 1, p, NULL);

	if (r == NULL)
		return BZ_ERR_DB;
	if (PQntuples(r) != 1) {
		PQclear(r);
		return BZ_ERR_UNAUTHORIZED;
	}
	text_copy(email, emaillen, PQgetvalue(r, 0, 0));
	text_copy(org_id, 37, PQgetvalue(r, 0, 1));
	text_copy(hash, hashlen, PQgetvalue(r, 0, 2));
	PQclear(r);
	return 0;
}

/* Audits the refused change in its own transaction (the change rolled
 * back) and answers like every wrong current password. */
static int wrong_password(PGconn *c, const struct auth_password_change *in, const char *org_id,
			  struct bz_errinfo *why)
{
	struct audit_event ev = {.org_id = org_id[0] ? org_id : NULL,
				 .actor_type = "user",
				 .actor_id = in->user_id,
				 .action = "auth.password.change.failed",
				 .resource = "users",
				 .resource_id = in->user_id,
				 .ip_address = in->ip && in->ip[0] ? in->ip : NULL,
				 .result = "failure",
				 .details = json_pack("{s:s}", "reason", "bad_current_password")};
	int rc = audit_write_standalone(c, &ev);
	json_decref(ev.details);
	if (rc != 0) {
		log_error("audit.write.failed", "action", ev.action, NULL);
		return BZ_ERR_DB;
	}
	return bz_fail(why, BZ_ERR_FORBIDDEN, "invalid_current_password", NULL,
		       "the current password is wrong");
}

static int store_password(PGconn *c, const char *user_id, const char *password)
{
	static const char *sql = "UPDATE users SET password_hash = $2 WHERE id = $1::uuid";
	char hash[PASSWORD_HASH_MAX];
	int rc;

	if ((rc = password_hash(password, hash, sizeof(hash))) != 0)
		return rc; /* BZ_ERR_UNAVAILABLE when too many hash at once: 503 */
	const char *p[2] = {user_id, hash};
	rc = db_exec(c, sql, 2, p) == 0 ? 0 : BZ_ERR_DB;
	crypto_wipe(hash, sizeof(hash));
	return rc;
}

int auth_password_change(PGconn *c, const struct auth_password_change *in,
			 struct auth_session_ref *out, long *revoked, struct audit_event *ev,
			 struct bz_errinfo *why)
{
	char email[AUTH_EMAIL_MAX + 1], hash[256];
	int rc, ok;

	memset(out, 0, sizeof(*out));
	*ev = (struct audit_event){0};
	*revoked = 0;
	if (db_begin(c) != 0)
		return BZ_ERR_DB;
	/* The pending mfaTokens go first: a verify holds its token's row and
	 * then waits for the user row, so taking them in that order too
	 * cannot deadlock, and a verify that was first has committed its
	 * session before the revocation below runs. A refusal rolls back. */
	if ((rc = auth_mfa_challenges_drop(c, in->user_id)) == 0)
		rc = lock_user(c, in->user_id, email, sizeof(email), out->org_id, hash,
			       sizeof(hash));
	if (rc != 0) {
		db_rollback(c);
		return rc;
	}
	ok = password_check(in->current_password, hash);
	crypto_wipe(hash, sizeof(hash));
	if (ok == BZ_ERR_UNAVAILABLE) {
		db_rollback(c);
		return bz_fail(why, ok, "server_busy", NULL,
			       "too many password checks at once; retry shortly");
	}
	if (ok != 1) {
		db_rollback(c);
		return wrong_password(c, in, out->org_id, why);
	}
	if ((rc = check_new_password(in->new_password, email, why)) != 0 ||
	    (rc = store_password(c, in->user_id, in->new_password)) != 0 ||
	    (rc = auth_sessions_revoke_others(c, in->user_id, in->session_id, "password_changed",
					      revoked)) != 0) {
		db_rollback(c);
		return rc;
	}
	text_copy(out->id, sizeof(out->id), in->session_id);
	text_copy(out->user_id, sizeof(out->user_id), in->user_id);
	*ev = (struct audit_event){.org_id = out->org_id[0] ? out->org_id : NULL,
				   .action = "auth.password.change",
				   .resource = "users",
				   .resource_id = out->user_id,
				   .details = json_pack("{s:I}", "revokedSessions",
							(json_int_t)*revoked)};
	return 0;
}
