/*
 * sessions.c — login sessions: the SQL of the sessions table. An access
 * token names its session (sid); the session row decides whether the token
 * is still good, so revoking a session ends every token of it at once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/text.h"
#include "server/auth/auth.h"
#include "server/config.h"
#include "server/db/db.h"

/* A token is only as good as its session: revoked, expired or idle
 * sessions and disabled users are refused even while the JWT itself is
 * unexpired. $3 is bz_now(), $4 the idle timeout in seconds (0 = off). */
static const char *principal_sql =
	"SELECT u.id, coalesce(u.partner_id::text, ''), coalesce(u.org_id::text, ''), u.email,"
	"       u.name, r.id, r.name, role_force_mfa(r.id, u.id), u.mfa_enabled,"
	"       array_to_json(r.permissions), extract(epoch FROM s.last_seen_at)::bigint"
	"  FROM sessions s JOIN users u ON u.id = s.user_id JOIN roles r ON r.id = u.role_id"
	" WHERE s.id = $1::uuid AND s.user_id = $2::uuid AND s.revoked_at IS NULL"
	"   AND s.expires_at > to_timestamp($3::bigint) AND u.status = 'active'"
	"   AND ($4::bigint = 0 OR s.last_seen_at > to_timestamp($3::bigint - $4::bigint))";

/* Seconds between two writes of a session's last_seen_at. */
static int64_t touch_interval(const struct config *cfg)
{
	int64_t i = AUTH_SESSION_TOUCH_INTERVAL_S;

	if (cfg->session_idle_timeout_s > 0 && cfg->session_idle_timeout_s / 4 < i)
		i = cfg->session_idle_timeout_s / 4;
	return i;
}

/* Records a use of session SID at NOW unless one was recorded within the
 * touch interval: one small write per session per interval, not per
 * request. The WHERE makes concurrent requests write it at most once. */
static int session_touch(PGconn *c, const struct config *cfg, const char *sid, int64_t now,
			 int64_t last_seen)
{
	static const char *sql = "UPDATE sessions SET last_seen_at = to_timestamp($2::bigint)"
				 " WHERE id = $1::uuid AND revoked_at IS NULL"
				 "   AND last_seen_at <= to_timestamp($2::bigint - $3::bigint)";
	char n[24], iv[24];
	int64_t interval = touch_interval(cfg);

	if (now - last_seen < interval)
		return 0;
	snprintf(n, sizeof(n), "%lld", (long long)now);
	snprintf(iv, sizeof(iv), "%lld", (long long)interval);
	const char *p[3] = {sid, n, iv};
	return db_exec(c, sql, 3, p) == 0 ? 0 : BZ_ERR_DB;
}

int auth_session_principal(PGconn *c, const struct config *cfg, const char *sid, const char *sub,
			   struct principal *w)
{
	char now_s[24], idle_s[24];
	int64_t now = bz_now(), last_seen;

	snprintf(now_s, sizeof(now_s), "%lld", (long long)now);
	snprintf(idle_s, sizeof(idle_s), "%lld", (long long)cfg->session_idle_timeout_s);
	const char *p[4] = {sid, sub, now_s, idle_s};
	PGresult *r = db_query(c, principal_sql, 4, p, NULL);

	memset(w, 0, sizeof(*w));
	if (r == NULL)
		return BZ_ERR_DB;
	if (PQntuples(r) != 1) {
		PQclear(r);
		return BZ_ERR_UNAUTHORIZED;
	}
	w->authenticated = 1;
	text_copy(w->user_id, sizeof(w->user_id), PQgetvalue(r, 0, 0));
	text_copy(w->session_id, sizeof(w->session_id), sid);
	text_copy(w->partner_id, sizeof(w->partner_id), PQgetvalue(r, 0, 1));
	text_copy(w->org_id, sizeof(w->org_id), PQgetvalue(r, 0, 2));
	text_copy(w->email, sizeof(w->email), PQgetvalue(r, 0, 3));
	text_copy(w->name, sizeof(w->name), PQgetvalue(r, 0, 4));
	text_copy(w->role_id, sizeof(w->role_id), PQgetvalue(r, 0, 5));
	text_copy(w->role_name, sizeof(w->role_name), PQgetvalue(r, 0, 6));
	w->force_mfa = PQgetvalue(r, 0, 7)[0] == 't';
	w->mfa_enabled = PQgetvalue(r, 0, 8)[0] == 't';
	w->permissions = json_loads(PQgetvalue(r, 0, 9), 0, NULL);
	last_seen = strtoll(PQgetvalue(r, 0, 10), NULL, 10);
	PQclear(r);
	if (!json_is_array(w->permissions)) {
		json_decref(w->permissions);
		w->permissions = json_array();
	}
	if (session_touch(c, cfg, sid, now, last_seen) != 0) {
		principal_free(w);
		memset(w, 0, sizeof(*w));
		return BZ_ERR_DB;
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

int auth_session_create(PGconn *c, const char *user_id, int64_t now, int64_t max_age_s,
			const char *ip, const char *user_agent, char sid_out[37],
			int64_t *expires_at)
{
	/* The family id is the session id: one family per session. The times
	 * the server reasons about are bz_now(); created_at (display and
	 * ordering only) keeps the database's microseconds. */
	static const char *sql =
		"INSERT INTO sessions (id, user_id, last_seen_at, expires_at, ip_address,"
		"                      user_agent, refresh_family_id, refresh_generation)"
		" SELECT g.id, $1::uuid, to_timestamp($2::bigint),"
		"        to_timestamp($2::bigint + $3::bigint), $4::inet, $5, g.id, 0"
		"   FROM (SELECT gen_random_uuid() AS id) g"
		" RETURNING id, extract(epoch FROM expires_at)::bigint";
	char now_s[24], max_age[24], ua[AUTH_USER_AGENT_MAX + 1];
	PGresult *r;

	snprintf(now_s, sizeof(now_s), "%lld", (long long)now);
	snprintf(max_age, sizeof(max_age), "%lld", (long long)max_age_s);
	user_agent_copy(user_agent, ua, sizeof(ua));
	const char *p[5] = {user_id, now_s, max_age, ip != NULL && ip[0] ? ip : NULL, ua};
	if ((r = db_query(c, sql, 5, p, NULL)) == NULL)
		return BZ_ERR_DB;
	text_copy(sid_out, 37, PQgetvalue(r, 0, 0));
	*expires_at = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
	PQclear(r);
	return 0;
}

int auth_sessions_revoke_user(PGconn *c, const char *user_id, const char *reason, long *revoked)
{
	return auth_sessions_revoke_others(c, user_id, NULL, reason, revoked);
}

int auth_sessions_revoke_others(PGconn *c, const char *user_id, const char *keep_sid,
				const char *reason, long *revoked)
{
	static const char *sql = "UPDATE sessions SET revoked_at = now(), revoked_reason = $2"
				 " WHERE user_id = $1::uuid AND revoked_at IS NULL"
				 "   AND ($3::uuid IS NULL OR id <> $3::uuid)";
	const char *p[3] = {user_id, reason, keep_sid};
	PGresult *r = db_query(c, sql, 3, p, NULL);

	if (r == NULL)
		return BZ_ERR_DB;
	if (revoked != NULL)
		*revoked = strtol(PQcmdTuples(r), NULL, 10);
	PQclear(r);
	return 0;
}

/* $2 is bz_now(), $3 the idle timeout in seconds (0 = off), as in
 * principal_sql: the list shows exactly the sessions a token could use. */
#define LIVE_SESSION                                                                               \
	"s.revoked_at IS NULL AND s.expires_at > to_timestamp($2::bigint)"                         \
	" AND ($3::bigint = 0 OR s.last_seen_at > to_timestamp($2::bigint - $3::bigint))"

int auth_session_list(PGconn *c, const struct config *cfg, const char *user_id,
		      const char *current_sid, struct auth_session **out, size_t *n)
{
	static const char *sql =
		"SELECT s.id, " DB_TS("s.created_at") ", " DB_TS("s.last_seen_at") ", " DB_TS(
			"s.expires_at") ", coalesce(host(s.ip_address), ''), coalesce(s.user_agent, '')"
					"  FROM sessions s WHERE s.user_id = $1::uuid AND " LIVE_SESSION
					" ORDER BY s.created_at DESC, s.id";
	char now_s[24], idle_s[24];
	struct auth_session *arr = NULL;
	PGresult *r;

	*out = NULL;
	*n = 0;
	snprintf(now_s, sizeof(now_s), "%lld", (long long)bz_now());
	snprintf(idle_s, sizeof(idle_s), "%lld", (long long)cfg->session_idle_timeout_s);
	const char *p[3] = {user_id, now_s, idle_s};
	if ((r = db_query(c, sql, 3, p, NULL)) == NULL)
		return BZ_ERR_DB;
	if (PQntuples(r) > 0 && (arr = calloc((size_t)PQntuples(r), sizeof(*arr))) == NULL) {
		PQclear(r);
		return BZ_ERR_NOMEM;
	}
	for (int i = 0; i < PQntuples(r); i++) {
		struct auth_session *s = &arr[i];
		text_copy(s->id, sizeof(s->id), PQgetvalue(r, i, 0));
		text_copy(s->created_at, sizeof(s->created_at), PQgetvalue(r, i, 1));
		text_copy(s->last_seen_at, sizeof(s->last_seen_at), PQgetvalue(r, i, 2));
		text_copy(s->expires_at, sizeof(s->expires_at), PQgetvalue(r, i, 3));
		text_copy(s->ip, sizeof(s->ip), PQgetvalue(r, i, 4));
		text_copy(s->user_agent, sizeof(s->user_agent), PQgetvalue(r, i, 5));
		s->current = current_sid != NULL && strcmp(s->id, current_sid) == 0;
	}
	*n = (size_t)PQntuples(r);
	*out = arr;
	PQclear(r);
	return 0;
}

int auth_session_revoke(PGconn *c, const char *user_id, const char *org_id, const char *sid,
			struct auth_session_ref *out, struct audit_event *ev,
			struct bz_errinfo *why)
{
	/* Only the caller's own live session: anything else is not found. */
	static const char *sql =
		"UPDATE sessions s SET revoked_at = now(), revoked_reason = 'revoked_by_user'"
		" WHERE s.id = $1::uuid AND s.user_id = $4::uuid AND " LIVE_SESSION
		" RETURNING s.id";
	char now_s[24], idle_s[24];
	PGresult *r;

	memset(out, 0, sizeof(*out));
	*ev = (struct audit_event){0};
	snprintf(now_s, sizeof(now_s), "%lld", (long long)bz_now());
	/* A session idle past its timeout is dead already: revoking it too is
	 * harmless, so the idle clause is off ($3 = 0) here. */
	snprintf(idle_s, sizeof(idle_s), "0");
	const char *p[4] = {sid, now_s, idle_s, user_id};
	if ((r = db_query(c, sql, 4, p, NULL)) == NULL)
		return BZ_ERR_DB;
	int found = PQntuples(r) == 1;
	PQclear(r);
	if (!found)
		return bz_fail(why, BZ_ERR_NOT_FOUND, NULL, NULL, "session not found");
	text_copy(out->id, sizeof(out->id), sid);
	text_copy(out->user_id, sizeof(out->user_id), user_id);
	text_copy(out->org_id, sizeof(out->org_id), org_id);
	*ev = (struct audit_event){.org_id = out->org_id[0] ? out->org_id : NULL,
				   .action = "auth.session.revoke",
				   .resource = "sessions",
				   .resource_id = out->id};
	return 0;
}
