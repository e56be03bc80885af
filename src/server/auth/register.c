/*
 * register.c — self-service sign-up (ENABLE_REGISTRATION, checklist A3): a
 * new partner and its first partner_admin.
 *
 * The answer must not tell whether the e-mail address has an account. So
 * both cases do the same work — the password policy, one argon2id hash, a
 * lookup, one audit row — and end alike: a new address gets its partner and
 * administrator (who signs in at once: there is no e-mail delivery to
 * confirm the address with); an address that exists changes nothing and
 * leaves only an auth.register.duplicate row in the system chain. Without
 * e-mail the owner of an existing address is not told of the attempt; when
 * delivery exists, that mail (and confirmation of new addresses) belongs in
 * this file.
 */
#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "crypto/crypto.h"
#include "crypto/password.h"
#include "server/auth/auth.h"
#include "server/db/db.h"

/* The built-in role a registered partner's first user gets. */
#define REGISTER_ROLE "partner_admin"

static int email_taken(PGconn *c, const char *email, int *taken)
{
	static const char *sql = "SELECT 1 FROM users WHERE email = $1";
	const char *p[1] = {email};
	PGresult *r = db_query(c, sql, 1, p, NULL);

	if (r == NULL)
		return BZ_ERR_DB;
	*taken = PQntuples(r) > 0;
	PQclear(r);
	return 0;
}

/* Inserts the partner and its administrator; *TAKEN when the e-mail was
 * registered meanwhile (unique violation: the caller starts over). */
static int create_account(PGconn *c, const struct auth_register_input *in, const char *email,
			  const char *hash, struct auth_register_result *out, int *taken)
{
	static const char *partner_sql = "INSERT INTO partners (name) VALUES ($1) RETURNING id";
	static const char *user_sql =
		"INSERT INTO users (partner_id, role_id, email, name, password_hash)"
		" SELECT $1::uuid, id, $2, $3, $4 FROM roles WHERE builtin AND name = $5"
		" RETURNING id";
	char sqlstate[6];
	PGresult *r;

	const char *pp[1] = {in->partner_name};
	if ((r = db_query(c, partner_sql, 1, pp, NULL)) == NULL)
		return BZ_ERR_DB;
	snprintf(out->partner_id, sizeof(out->partner_id), "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	const char *up[5] = {out->partner_id, email, in->name, hash, REGISTER_ROLE};
	if ((r = db_query(c, user_sql, 5, up, sqlstate)) == NULL) {
		*taken = !strcmp(sqlstate, "23505");
		return *taken ? 0 : BZ_ERR_DB;
	}
	if (PQntuples(r) != 1) {
		PQclear(r);
		return BZ_ERR_INTERNAL;
	}
	snprintf(out->user_id, sizeof(out->user_id), "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	return 0;
}

/* The one audit row of a registration, for EV: the new administrator's act
 * in its partner's chain, or the refused duplicate in the system chain. */
static void describe(const struct auth_register_input *in, const char *email,
		     const struct auth_register_result *out, struct audit_event *ev)
{
	if (out->created)
		*ev = (struct audit_event){.actor_type = "user",
					   .actor_id = out->user_id,
					   .action = "auth.register",
					   .resource = "partners",
					   .resource_id = out->partner_id,
					   .details = json_pack("{s:s,s:s,s:s}", "email", email,
								"partner", in->partner_name,
								"userId", out->user_id)};
	else
		*ev = (struct audit_event){.actor_type = "system",
					   .action = "auth.register.duplicate",
					   .resource = "users",
					   .result = "failure",
					   .details = json_pack("{s:s}", "email", email)};
}

int auth_register(PGconn *c, const struct auth_register_input *in, struct auth_register_result *out,
		  struct audit_event *ev, struct bz_errinfo *why)
{
	char email[AUTH_EMAIL_MAX + 1], hash[PASSWORD_HASH_MAX];
	int taken = 0, rc;

	memset(out, 0, sizeof(*out));
	*ev = (struct audit_event){0};
	if (auth_normalize_email(in->email, email, sizeof(email)) != 0)
		return bz_fail(why, BZ_ERR_INVALID, "validation_error", "email",
			       "field 'email' must be an e-mail address");
	if ((rc = auth_password_check(in->password, email, why)) != 0)
		return rc;
	/* Hashed whether or not the address is free: the same work either way. */
	if ((rc = password_hash(in->password, hash, sizeof(hash))) != 0)
		return rc; /* BZ_ERR_UNAVAILABLE when too many hash at once: 503 */
	if ((rc = db_begin(c)) != 0)
		goto out;
	if ((rc = email_taken(c, email, &taken)) == 0 && !taken)
		rc = create_account(c, in, email, hash, out, &taken);
	if (rc == 0 && taken) {
		/* Lost a race to the same address: nothing of ours stays. */
		db_rollback(c);
		memset(out, 0, sizeof(*out));
		rc = db_begin(c);
	}
	if (rc != 0) {
		db_rollback(c);
		goto out;
	}
	out->created = !taken;
	describe(in, email, out, ev);
out:
	crypto_wipe(hash, sizeof(hash));
	return rc;
}
