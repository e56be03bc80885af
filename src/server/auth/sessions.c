/*
 * sessions.c — login sessions: the SQL of the sessions table. An access
 * token names its session (sid); the session row decides whether the token
 * is still good, so revoking a session ends every token of it at once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/text.h"
#include "server/auth/auth.h"
#include "server/db/db.h"

/* A token is only as good as its session: revoked or expired sessions and
 * disabled users are refused even while the JWT itself is unexpired. */
static const char *principal_sql =
	"SELECT u.id, coalesce(u.partner_id::text, ''), coalesce(u.org_id::text, ''), u.email,"
	"       u.name, r.id, r.name, r.force_mfa, u.mfa_enabled, array_to_json(r.permissions)"
	"  FROM sessions s JOIN users u ON u.id = s.user_id JOIN roles r ON r.id = u.role_id"
	" WHERE s.id = $1::uuid AND s.user_id = $2::uuid AND s.revoked_at IS NULL"
	"   AND s.expires_at > now() AND u.status = 'active'";

static void copy(char *dst, size_t n, const char *src)
{
	snprintf(dst, n, "%s", src ? src : "");
}

int auth_session_principal(PGconn *c, const char *sid, const char *sub, struct principal *w)
{
	const char *p[2] = {sid, sub};
	PGresult *r = db_query(c, principal_sql, 2, p, NULL);

	memset(w, 0, sizeof(*w));
	if (r == NULL)
		return BZ_ERR_DB;
	if (PQntuples(r) != 1) {
		PQclear(r);
		return BZ_ERR_UNAUTHORIZED;
	}
	w->authenticated = 1;
	copy(w->user_id, sizeof(w->user_id), PQgetvalue(r, 0, 0));
	copy(w->session_id, sizeof(w->session_id), sid);
	copy(w->partner_id, sizeof(w->partner_id), PQgetvalue(r, 0, 1));
	copy(w->org_id, sizeof(w->org_id), PQgetvalue(r, 0, 2));
	copy(w->email, sizeof(w->email), PQgetvalue(r, 0, 3));
	copy(w->name, sizeof(w->name), PQgetvalue(r, 0, 4));
	copy(w->role_id, sizeof(w->role_id), PQgetvalue(r, 0, 5));
	copy(w->role_name, sizeof(w->role_name), PQgetvalue(r, 0, 6));
	w->force_mfa = PQgetvalue(r, 0, 7)[0] == 't';
	w->mfa_enabled = PQgetvalue(r, 0, 8)[0] == 't';
	w->permissions = json_loads(PQgetvalue(r, 0, 9), 0, NULL);
	PQclear(r);
	if (!json_is_array(w->permissions)) {
		json_decref(w->permissions);
		w->permissions = json_array();
	}
	return 0;
}

/* Copies the User-Agent UA into OUT (OUTLEN bytes) for storage: "" when it
 * is absent or not UTF-8, cut to fit without splitting a UTF-8 sequence. */
static void user_agent_copy(const char *ua, char *out, size_t outlen)
{
	size_t ul, k;

	snprintf(out, outlen, "%s", ua != NULL && text_utf8_valid(ua, strlen(ua)) ? ua : "");
	/* Never cut a UTF-8 sequence in half: drop a trailing partial one. */
	ul = strlen(out);
	k = ul;
	while (k > 0 && ((unsigned char)out[k - 1] & 0xC0) == 0x80)
		k--;
	if (k > 0 && ((unsigned char)out[k - 1] & 0x80)) {
		unsigned char lead = (unsigned char)out[k - 1];
		size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
		if (ul - (k - 1) < need)
			out[k - 1] = '\0';
	}
}

int auth_session_create(PGconn *c, const char *user_id, int64_t max_age_s, const char *ip,
			const char *user_agent, char sid_out[37], int64_t *expires_at)
{
	static const char *sql =
		"INSERT INTO sessions (user_id, expires_at, ip_address, user_agent)"
		" VALUES ($1::uuid, now() + make_interval(secs => $2::bigint), $3::inet, $4)"
		" RETURNING id, extract(epoch FROM expires_at)::bigint";
	char max_age[24], ua[AUTH_USER_AGENT_MAX + 1];
	PGresult *r;

	snprintf(max_age, sizeof(max_age), "%lld", (long long)max_age_s);
	user_agent_copy(user_agent, ua, sizeof(ua));
	const char *p[4] = {user_id, max_age, ip != NULL && ip[0] ? ip : NULL, ua};
	if ((r = db_query(c, sql, 4, p, NULL)) == NULL)
		return BZ_ERR_DB;
	copy(sid_out, 37, PQgetvalue(r, 0, 0));
	*expires_at = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
	PQclear(r);
	return 0;
}

int auth_sessions_revoke_user(PGconn *c, const char *user_id, const char *reason, long *revoked)
{
	static const char *sql = "UPDATE sessions SET revoked_at = now(), revoked_reason = $2"
				 " WHERE user_id = $1::uuid AND revoked_at IS NULL";
	const char *p[2] = {user_id, reason};
	PGresult *r = db_query(c, sql, 2, p, NULL);

	if (r == NULL)
		return BZ_ERR_DB;
	if (revoked != NULL)
		*revoked = strtol(PQcmdTuples(r), NULL, 10);
	PQclear(r);
	return 0;
}

int auth_sessions_revoke_others(PGconn *c, const char *user_id, const char *keep_sid,
				const char *reason, long *revoked)
{
	static const char *sql = "UPDATE sessions SET revoked_at = now(), revoked_reason = $2"
				 " WHERE user_id = $1::uuid AND revoked_at IS NULL"
				 "   AND id IS DISTINCT FROM $3::uuid";
	const char *p[3] = {user_id, reason, keep_sid != NULL && keep_sid[0] ? keep_sid : NULL};
	PGresult *r = db_query(c, sql, 3, p, NULL);

	if (r == NULL)
		return BZ_ERR_DB;
	if (revoked != NULL)
		*revoked = strtol(PQcmdTuples(r), NULL, 10);
	PQclear(r);
	return 0;
}
