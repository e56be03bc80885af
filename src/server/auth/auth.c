#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/clock.h"
#include "common/err.h"
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

static void copy(char *dst, size_t n, const char *src) { snprintf(dst, n, "%s", src ? src : ""); }

int auth_authenticate(struct request *rq)
{
	const struct config *cfg = rq->app->cfg;
	const char *h = http_header(rq, "Authorization");
	struct jwt_claims cl;

	if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0) {
		http_set_header(rq, "WWW-Authenticate", "Bearer");
		http_fail(rq, 401, "unauthorized", "missing bearer token");
		return -1;
	}
	const char *jwt_secret = cfg->secrets[SECRET_JWT];
	if (auth_jwt_verify(jwt_secret, strlen(jwt_secret), h + 7, bz_now(),
			    cfg->access_token_ttl_s, &cl) != 0) {
		http_set_header(rq, "WWW-Authenticate", "Bearer error=\"invalid_token\"");
		http_fail(rq, 401, "unauthorized", "invalid or expired token");
		return -1;
	}
	PGconn *c = http_db(rq);
	if (c == NULL)
		return -1;
	const char *p[2] = {cl.sid, cl.sub};
	PGresult *r = db_query(c, principal_sql, 2, p, NULL);
	if (r == NULL) {
		http_fail_err(rq, BZ_ERR_DB, NULL);
		return -1;
	}
	if (PQntuples(r) != 1) {
		PQclear(r);
		http_set_header(rq, "WWW-Authenticate", "Bearer error=\"invalid_token\"");
		http_fail(rq, 401, "unauthorized", "session expired or revoked");
		return -1;
	}
	struct principal *w = &rq->who;
	w->authenticated = 1;
	copy(w->user_id, sizeof(w->user_id), PQgetvalue(r, 0, 0));
	copy(w->session_id, sizeof(w->session_id), cl.sid);
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

int auth_normalize_email(const char *in, char *out, size_t outlen)
{
	size_t n;

	while (isspace((unsigned char)*in))
		in++;
	n = strlen(in);
	while (n > 0 && isspace((unsigned char)in[n - 1]))
		n--;
	if (n < 3 || n > 254 || n >= outlen)
		return -1;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)in[i];
		if (ch < 0x21 || ch == 0x7f)
			return -1;
		out[i] = (char)tolower(ch);
	}
	out[n] = '\0';
	const char *at = strchr(out, '@');
	if (at == NULL || at == out || at[1] == '\0' || strchr(at + 1, '@') != NULL)
		return -1;
	return 0;
}
