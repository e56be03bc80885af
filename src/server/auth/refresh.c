/*
 * refresh.c — refresh-token families (checklist A7): the SQL of the
 * refresh_tokens table (migrations/0008_refresh_tokens.sql).
 *
 * A session has one family. Login issues generation 0; each refresh
 * consumes the live token with one UPDATE … WHERE rotated_at IS NULL, so of
 * concurrent refreshes with one token exactly one row update wins, and
 * issues generation + 1. A token that was already rotated and is shown
 * again means two parties hold the family: the session is revoked (and
 * with it every token of the family and every access token naming it),
 * and the revocation is committed even though the request fails. All the
 * times compared here are bz_now(), passed into SQL as parameters.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/metrics.h"
#include "crypto/crypto.h"
#include "common/text.h"
#include "server/audit/audit.h"
#include "server/auth/auth.h"
#include "server/config.h"
#include "server/db/db.h"

static void i64(char buf[24], int64_t v)
{
	snprintf(buf, 24, "%lld", (long long)v);
}

int auth_token_random(char out[AUTH_REFRESH_TOKEN_LEN + 1])
{
	unsigned char raw[AUTH_REFRESH_TOKEN_BYTES];
	char *s;

	out[0] = '\0';
	if (crypto_random_bytes(raw, sizeof(raw)) != 0)
		return BZ_ERR_CRYPTO;
	s = crypto_base64url_encode(raw, sizeof(raw));
	crypto_wipe(raw, sizeof(raw));
	if (s == NULL)
		return BZ_ERR_CRYPTO;
	if (strlen(s) != AUTH_REFRESH_TOKEN_LEN) {
		crypto_wipe(s, strlen(s));
		free(s);
		return BZ_ERR_INTERNAL;
	}
	memcpy(out, s, AUTH_REFRESH_TOKEN_LEN + 1);
	crypto_wipe(s, AUTH_REFRESH_TOKEN_LEN);
	free(s);
	return 0;
}

int auth_token_well_formed(const char *token)
{
	static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
				       "0123456789-_";

	return token != NULL && strlen(token) == AUTH_REFRESH_TOKEN_LEN &&
	       strspn(token, alphabet) == AUTH_REFRESH_TOKEN_LEN;
}

int auth_refresh_token_hash(const char *token, char hash[BZ_SHA256_HEX_LEN + 1])
{
	hash[0] = '\0';
	if (!auth_token_well_formed(token))
		return BZ_ERR_INVALID;
	return crypto_sha256_hex(token, strlen(token), hash) == 0 ? 0 : BZ_ERR_CRYPTO;
}

int auth_refresh_family_add(PGconn *c, const char *sid, int generation, int64_t now,
			    struct auth_login *out)
{
	static const char *sql =
		"INSERT INTO refresh_tokens (token_hash, session_id, generation, created_at)"
		" VALUES ($1, $2::uuid, $3::integer, to_timestamp($4::bigint))";
	char hash[BZ_SHA256_HEX_LEN + 1], gen[24], now_s[24];
	int rc;

	if ((rc = auth_token_random(out->refresh_token)) != 0 ||
	    (rc = auth_token_random(out->csrf_token)) != 0 ||
	    (rc = auth_refresh_token_hash(out->refresh_token, hash)) != 0)
		return rc == BZ_ERR_INVALID ? BZ_ERR_INTERNAL : rc;
	i64(gen, generation);
	i64(now_s, now);
	const char *p[4] = {hash, sid, gen, now_s};
	return db_exec(c, sql, 4, p) == 0 ? 0 : BZ_ERR_DB;
}

/* What the lookups below learn about a token's session. */
struct family {
	char sid[37], user_id[37], org_id[37];
	int generation;	    /* of the presented token */
	int current;	    /* the family's live generation */
	int revoked;	    /* the session is revoked */
	int active;	    /* the user is active */
	int64_t expires_at; /* the session's absolute end */
	int64_t last_seen;  /* its last recorded use */
	int64_t rotated_at; /* when the presented token was rotated (0 = live) */
};

#define FAMILY_COLS                                                                                \
	"t.session_id, s.user_id, coalesce(u.org_id::text, ''), t.generation,"                     \
	" s.refresh_generation, s.revoked_at IS NOT NULL, u.status = 'active',"                    \
	" extract(epoch FROM s.expires_at)::bigint, extract(epoch FROM s.last_seen_at)::bigint,"   \
	" coalesce(extract(epoch FROM t.rotated_at)::bigint, 0)"

static void family_from_row(const PGresult *r, struct family *f)
{
	text_copy(f->sid, sizeof(f->sid), PQgetvalue(r, 0, 0));
	text_copy(f->user_id, sizeof(f->user_id), PQgetvalue(r, 0, 1));
	text_copy(f->org_id, sizeof(f->org_id), PQgetvalue(r, 0, 2));
	f->generation = atoi(PQgetvalue(r, 0, 3));
	f->current = atoi(PQgetvalue(r, 0, 4));
	f->revoked = PQgetvalue(r, 0, 5)[0] == 't';
	f->active = PQgetvalue(r, 0, 6)[0] == 't';
	f->expires_at = strtoll(PQgetvalue(r, 0, 7), NULL, 10);
	f->last_seen = strtoll(PQgetvalue(r, 0, 8), NULL, 10);
	f->rotated_at = strtoll(PQgetvalue(r, 0, 9), NULL, 10);
}

/* Runs SQL (parameters P, a token hash first) and reads its one row into
 * F. Returns 1 when there was a row, 0 when none, BZ_ERR_DB. */
static int family_query(PGconn *c, const char *sql, int np, const char *const *p, struct family *f)
{
	PGresult *r = db_query(c, sql, np, p, NULL);
	int found;

	memset(f, 0, sizeof(*f));
	if (r == NULL)
		return BZ_ERR_DB;
	found = PQntuples(r) == 1;
	if (found)
		family_from_row(r, f);
	PQclear(r);
	return found;
}

/* The atomic step: rotates the live token HASH at NOW. Concurrent callers
 * queue on the row lock; once the winner commits, the WHERE no longer
 * holds for the others, so they update nothing. */
static int consume(PGconn *c, const char *hash, int64_t now, struct family *f)
{
	static const char *sql =
		"WITH t AS (UPDATE refresh_tokens SET rotated_at = to_timestamp($2::bigint)"
		"            WHERE token_hash = $1 AND rotated_at IS NULL RETURNING *)"
		"SELECT " FAMILY_COLS
		"  FROM t JOIN sessions s ON s.id = t.session_id JOIN users u ON u.id = s.user_id";
	char now_s[24];

	i64(now_s, now);
	const char *p[2] = {hash, now_s};
	return family_query(c, sql, 2, p, f);
}

static int lookup(PGconn *c, const char *hash, struct family *f)
{
	static const char *sql = "SELECT " FAMILY_COLS
				 "  FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id"
				 "  JOIN users u ON u.id = s.user_id WHERE t.token_hash = $1";
	const char *p[1] = {hash};
	return family_query(c, sql, 1, p, f);
}

/* 1 if the session of F is past its absolute end or idle timeout at NOW. */
static int family_dead(const struct config *cfg, const struct family *f, int64_t now)
{
	if (f->expires_at <= now)
		return 1;
	return cfg->session_idle_timeout_s > 0 && f->last_seen <= now - cfg->session_idle_timeout_s;
}

static int refused(struct bz_errinfo *why, const char *code, const char *msg)
{
	return bz_fail(why, BZ_ERR_UNAUTHORIZED, code, NULL, msg);
}

/*
 * A rotated token came back (F describes it; the transaction is open).
 * The immediate predecessor of the live token within the grace is a race
 * between two tabs of one browser; anything else is reuse: the session is
 * revoked and the event audited, and both are committed here.
 */
static int rotated_token(PGconn *c, const struct config *cfg, const struct family *f,
			 const char *ip, int64_t now, struct bz_errinfo *why)
{
	static const char *revoke_sql =
		"UPDATE sessions SET revoked_at = now(), revoked_reason = 'refresh_token_reused'"
		" WHERE id = $1::uuid AND revoked_at IS NULL RETURNING id";
	int grace = cfg->refresh_reuse_grace_s;
	PGresult *r;

	if (grace > 0 && f->generation == f->current - 1 && now - f->rotated_at <= grace) {
		db_rollback(c);
		return refused(why, "refresh_raced",
			       "this refresh token was just rotated by a concurrent refresh");
	}
	const char *p[1] = {f->sid};
	if ((r = db_query(c, revoke_sql, 1, p, NULL)) == NULL) {
		db_rollback(c);
		return BZ_ERR_DB;
	}
	int revoked_now = PQntuples(r) == 1;
	PQclear(r);
	if (!revoked_now) { /* a concurrent reuse detection was first */
		db_rollback(c);
		return refused(why, "session_revoked", "session revoked");
	}
	struct audit_event ev = {.org_id = f->org_id[0] ? f->org_id : NULL,
				 .actor_type = "user",
				 .actor_id = f->user_id,
				 .action = "auth.refresh.reuse_detected",
				 .resource = "sessions",
				 .resource_id = f->sid,
				 .ip_address = ip && ip[0] ? ip : NULL,
				 .result = "failure",
				 .details = json_pack("{s:i,s:i}", "presentedGeneration",
						      f->generation, "currentGeneration",
						      f->current)};
	int rc = audit_write(c, &ev);
	json_decref(ev.details);
	if (rc == 0)
		rc = db_commit(c);
	if (rc != 0) {
		log_error("audit.write.failed", "action", ev.action, NULL);
		db_rollback(c);
		return BZ_ERR_DB;
	}
	log_warn("auth.refresh.reuse_detected", "sessionId", f->sid, NULL);
	metrics_inc(METRIC_REFRESH_REUSE, NULL);
	return refused(why, "refresh_token_reused",
		       "refresh token reused: the session has been revoked");
}

/* The live token was consumed (F; transaction open): checks the session
 * and issues the next generation. */
static int rotate(PGconn *c, const struct config *cfg, const struct family *f, int64_t now,
		  struct auth_login *out, struct bz_errinfo *why)
{
	static const char *sql = "UPDATE sessions SET refresh_generation = $2::integer,"
				 "       last_seen_at = to_timestamp($3::bigint)"
				 " WHERE id = $1::uuid AND revoked_at IS NULL RETURNING id";
	char gen[24], now_s[24];
	PGresult *r;
	int rc;

	if (!f->active)
		return refused(why, "session_revoked", "session revoked");
	if (family_dead(cfg, f, now))
		return refused(why, "session_expired", "session expired");
	i64(gen, f->generation + 1);
	i64(now_s, now);
	const char *p[3] = {f->sid, gen, now_s};
	/* Waits for a concurrent revocation of the session, then sees it. */
	if ((r = db_query(c, sql, 3, p, NULL)) == NULL)
		return BZ_ERR_DB;
	int live = PQntuples(r) == 1;
	PQclear(r);
	if (!live)
		return refused(why, "session_revoked", "session revoked");
	if ((rc = auth_refresh_family_add(c, f->sid, f->generation + 1, now, out)) != 0)
		return rc;
	return auth_access_token_issue(cfg, f->user_id, f->sid, now, f->expires_at, out);
}

int auth_refresh(PGconn *c, const struct config *cfg, const char *token, const char *ip,
		 struct auth_login *out, struct audit_event *ev, struct bz_errinfo *why)
{
	char hash[BZ_SHA256_HEX_LEN + 1];
	struct family f;
	int64_t now = bz_now();
	int rc;

	memset(out, 0, sizeof(*out));
	*ev = (struct audit_event){0};
	if (auth_refresh_token_hash(token, hash) != 0)
		return refused(why, "invalid_refresh_token", "invalid refresh token");
	if (db_begin(c) != 0)
		return BZ_ERR_DB;
	if ((rc = consume(c, hash, now, &f)) == 1 && !f.revoked) {
		rc = rotate(c, cfg, &f, now, out, why);
		if (rc != 0) {
			db_rollback(c);
			return rc;
		}
		text_copy(out->user.id, sizeof(out->user.id), f.user_id);
		text_copy(out->user.org_id, sizeof(out->user.org_id), f.org_id);
		text_copy(out->session_id, sizeof(out->session_id), f.sid);
		out->session_expires_at = f.expires_at;
		out->now = now;
		*ev = (struct audit_event){.org_id = out->user.org_id[0] ? out->user.org_id : NULL,
					   .actor_type = "user",
					   .actor_id = out->user.id,
					   .action = "auth.refresh",
					   .resource = "sessions",
					   .resource_id = out->session_id,
					   .ip_address = ip && ip[0] ? ip : NULL};
		return 0;
	}
	if (rc == 1) /* consumed, but its session is revoked: undo */
		rc = refused(why, "session_revoked", "session revoked");
	else if (rc == 0 && (rc = lookup(c, hash, &f)) == 1)
		rc = f.revoked ? refused(why, "session_revoked", "session revoked")
		     : family_dead(cfg, &f, now)
			     ? refused(why, "session_expired", "session expired")
			     : rotated_token(c, cfg, &f, ip, now, why);
	else if (rc == 0)
		rc = refused(why, "invalid_refresh_token", "invalid refresh token");
	if (rc != 0 && PQtransactionStatus(c) != PQTRANS_IDLE)
		db_rollback(c);
	return rc;
}

int auth_logout(PGconn *c, const char *token, struct auth_session_ref *out, struct audit_event *ev,
		struct bz_errinfo *why)
{
	static const char *sql = "UPDATE sessions SET revoked_at = now(), revoked_reason = 'logout'"
				 " WHERE id = $1::uuid AND revoked_at IS NULL RETURNING id";
	char hash[BZ_SHA256_HEX_LEN + 1];
	struct family f;
	PGresult *r;
	int rc;

	memset(out, 0, sizeof(*out));
	*ev = (struct audit_event){0};
	if (auth_refresh_token_hash(token, hash) != 0)
		return refused(why, "invalid_refresh_token", "invalid refresh token");
	if ((rc = lookup(c, hash, &f)) < 0)
		return rc;
	if (rc == 0)
		return refused(why, "invalid_refresh_token", "invalid refresh token");
	const char *p[1] = {f.sid};
	if ((r = db_query(c, sql, 1, p, NULL)) == NULL)
		return BZ_ERR_DB;
	int revoked_now = PQntuples(r) == 1;
	PQclear(r);
	text_copy(out->id, sizeof(out->id), f.sid);
	text_copy(out->user_id, sizeof(out->user_id), f.user_id);
	text_copy(out->org_id, sizeof(out->org_id), f.org_id);
	if (revoked_now)
		*ev = (struct audit_event){.org_id = out->org_id[0] ? out->org_id : NULL,
					   .actor_type = "user",
					   .actor_id = out->user_id,
					   .action = "auth.logout",
					   .resource = "sessions",
					   .resource_id = out->id};
	return 0;
}
