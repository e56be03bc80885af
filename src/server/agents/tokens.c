/*
 * tokens.c — agent credentials (table agent_tokens, migration 0011): issuing
 * a token, finding the device a token speaks for, and taking every token of
 * a device out of service.
 *
 * A token is "brz_" and 64 hex digits (32 random bytes). Only its SHA-256
 * is stored (G1); every token a device was given stays as a row with its
 * state, so a retired token that shows up again is recognised (G2). Expiry
 * is judged against bz_now() passed in as a parameter, never PostgreSQL's
 * now(), so the test clock moves it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/clock.h"
#include "common/text.h"
#include "crypto/crypto.h"
#include "server/agents/agents.h"
#include "server/db/db.h"

static const struct {
	const char *name;
	enum agents_token_state state;
} state_names[] = {
	{"pending", AGENTS_TOKEN_PENDING},     {"current", AGENTS_TOKEN_CURRENT},
	{"previous", AGENTS_TOKEN_PREVIOUS},   {"retired", AGENTS_TOKEN_RETIRED},
	{"suspended", AGENTS_TOKEN_SUSPENDED},
};

const char *agents_token_state_name(enum agents_token_state s)
{
	for (size_t i = 0; i < sizeof(state_names) / sizeof(*state_names); i++)
		if (state_names[i].state == s)
			return state_names[i].name;
	return "unknown";
}

static enum agents_token_state state_parse(const char *s)
{
	for (size_t i = 0; i < sizeof(state_names) / sizeof(*state_names); i++)
		if (strcmp(state_names[i].name, s) == 0)
			return state_names[i].state;
	return AGENTS_TOKEN_RETIRED;
}

int agents_token_new(char token[AGENTS_TOKEN_LEN + 1], char hash[65])
{
	memcpy(token, AGENT_TOKEN_PREFIX, 4);
	if (crypto_random_hex(32, token + 4) != 0 ||
	    crypto_sha256_hex(token, strlen(token), hash) != 0) {
		crypto_wipe(token, AGENTS_TOKEN_LEN + 1);
		return BZ_ERR_CRYPTO;
	}
	return 0;
}

int agents_token_insert(PGconn *c, const char *device_id, const char *org_id, const char *hash,
			enum agents_token_state state, int64_t now, int64_t expires_at)
{
	static const char *sql =
		"INSERT INTO agent_tokens (token_hash, device_id, org_id, state, created_at,"
		"       activated_at, expires_at)"
		" VALUES ($1, $2::uuid, $3::uuid, $4, to_timestamp($5::bigint),"
		"         CASE WHEN $4::text = 'current' THEN to_timestamp($5::bigint) END,"
		"         to_timestamp($6::bigint))";
	char now_s[24], exp_s[24];

	snprintf(now_s, sizeof(now_s), "%lld", (long long)now);
	snprintf(exp_s, sizeof(exp_s), "%lld", (long long)expires_at);
	const char *p[6] = {hash,   device_id,
			    org_id, agents_token_state_name(state),
			    now_s,  expires_at > 0 ? exp_s : NULL};
	return db_exec(c, sql, 6, p);
}

/* The token row and its device, by primary key. Columns: 0 device id,
 * 1 org id, 2 device status, 3 heartbeat interval, 4 last ip, 5 hostname,
 * 6 token state, 7 live (1 when inside expires_at or without one),
 * 8 activated_at as epoch seconds (or NULL), 9 rotation requested, 10 a live
 * pending token exists (asked only for a current token: a probe of the
 * partial pending index, which holds at most one row per device, so the
 * heartbeat learns whether to ask for a rotation in the same statement),
 * 12 devices.online as 1, 0 or -1 for NULL (never seen; liveness.c). */
#define LOOKUP_COLUMNS                                                                             \
	"SELECT d.id, d.org_id, d.status, d.heartbeat_interval_s, coalesce(host(d.last_ip), ''),"  \
	"       d.hostname,"                                                                       \
	"       CASE WHEN t.state = 'retired' AND t.retired_reason = 'expired' THEN 'pending'"     \
	"            ELSE t.state END,"                                                            \
	"       (t.expires_at IS NULL OR t.expires_at > to_timestamp($2::bigint))::int"            \
	"         * (t.retired_reason IS DISTINCT FROM 'expired')::int,"                           \
	"       extract(epoch FROM t.activated_at)::bigint,"                                       \
	"       (t.rotation_requested_at IS NOT NULL)::int, d.credential_version,"                 \
	"       CASE WHEN t.state = 'current' THEN EXISTS (SELECT 1 FROM agent_tokens p"           \
	"            WHERE p.device_id = t.device_id AND p.state = 'pending'"                      \
	"              AND p.expires_at > to_timestamp($2::bigint))::int ELSE 0 END,"              \
	"       coalesce(d.online::int, -1)"

/* A pending token retired because it expired unconfirmed was never in
 * service: column 6 reads it as what it was, an expired pending token (409
 * rotation_expired on confirm, no theft signal). */
static const char *lookup_sql = LOOKUP_COLUMNS
	"  FROM agent_tokens t JOIN devices d ON d.id = t.device_id"
	" WHERE t.token_hash = $1";

/* The same for many hashes at once (the heartbeat group commit): $1 is a
 * JSON array of hashes, column 13 the position (from 1) in it of the hash
 * the row answers. Token hashes are unique: at most one row per element. */
static const char *lookup_many_sql = LOOKUP_COLUMNS
	", q.i"
	"  FROM jsonb_array_elements_text($1::jsonb) WITH ORDINALITY AS q(h, i)"
	"  JOIN agent_tokens t ON t.token_hash = q.h JOIN devices d ON d.id = t.device_id";

/* Fills OUT from row ROW of R. */
static void agent_fill(PGresult *r, int row, struct agents_agent *out)
{
	text_copy(out->device_id, sizeof(out->device_id), PQgetvalue(r, row, 0));
	text_copy(out->org_id, sizeof(out->org_id), PQgetvalue(r, row, 1));
	text_copy(out->device_status, sizeof(out->device_status), PQgetvalue(r, row, 2));
	out->heartbeat_interval_s = atoi(PQgetvalue(r, row, 3));
	text_copy(out->old_ip, sizeof(out->old_ip), PQgetvalue(r, row, 4));
	text_copy(out->hostname, sizeof(out->hostname), PQgetvalue(r, row, 5));
	out->token_state = state_parse(PQgetvalue(r, row, 6));
	out->token_live = strcmp(PQgetvalue(r, row, 7), "1") == 0;
	out->token_activated_at = PQgetisnull(r, row, 8) ? 0
							 : strtoll(PQgetvalue(r, row, 8), NULL, 10);
	out->rotation_requested = strcmp(PQgetvalue(r, row, 9), "1") == 0;
	out->credential_version = atoi(PQgetvalue(r, row, 10));
	out->pending_live = strcmp(PQgetvalue(r, row, 11), "1") == 0;
	out->online = atoi(PQgetvalue(r, row, 12));
}

int agents_token_lookup_many(PGconn *c, const char *const *hashes, size_t n, int64_t now,
			     struct agents_agent *const *out, int *rcs)
{
	json_t *arr = json_array();
	char now_s[24], *param = NULL;
	PGresult *r = NULL;
	int rc = BZ_ERR_NOMEM;

	for (size_t i = 0; i < n; i++) {
		memset(out[i], 0, sizeof(*out[i]));
		rcs[i] = BZ_ERR_NOT_FOUND;
		if (arr != NULL && json_array_append_new(arr, json_string(hashes[i])) != 0)
			goto out;
	}
	if (arr == NULL || (param = json_dumps(arr, JSON_COMPACT)) == NULL)
		goto out;
	snprintf(now_s, sizeof(now_s), "%lld", (long long)now);
	const char *p[2] = {param, now_s};
	rc = BZ_ERR_DB;
	if (n > 0 && (r = db_query(c, lookup_many_sql, 2, p, NULL)) == NULL)
		goto out;
	for (int t = 0; r != NULL && t < PQntuples(r); t++) {
		long e = strtol(PQgetvalue(r, t, 13), NULL, 10);
		if (e >= 1 && (size_t)e <= n) {
			agent_fill(r, t, out[e - 1]);
			rcs[e - 1] = 0;
		}
	}
	rc = 0;
out:
	PQclear(r);
	free(param);
	json_decref(arr);
	return rc;
}

int agents_token_lookup(PGconn *c, const char *token_hash, int64_t now, struct agents_agent *out)
{
	char now_s[24];
	const char *p[2] = {token_hash, now_s};
	PGresult *r;

	memset(out, 0, sizeof(*out));
	snprintf(now_s, sizeof(now_s), "%lld", (long long)now);
	if ((r = db_query(c, lookup_sql, 2, p, NULL)) == NULL)
		return BZ_ERR_DB;
	if (PQntuples(r) != 1) {
		PQclear(r);
		return BZ_ERR_NOT_FOUND;
	}
	agent_fill(r, 0, out);
	PQclear(r);
	return 0;
}

int agents_token_usable(const struct agents_agent *a)
{
	if (strcmp(a->device_status, "decommissioned") == 0)
		return 0;
	switch (a->token_state) {
	case AGENTS_TOKEN_CURRENT:
		return 1;
	case AGENTS_TOKEN_PENDING:
	case AGENTS_TOKEN_PREVIOUS:
		return a->token_live;
	default:
		return 0;
	}
}

int agents_token_retire_expired(PGconn *c, const char *token_hash, enum agents_token_state state,
				int64_t now)
{
	static const char *sql =
		"UPDATE agent_tokens SET state = 'retired', expires_at = NULL,"
		"       retired_at = to_timestamp($3::bigint), retired_reason = $4"
		" WHERE token_hash = $1 AND state = $2 AND expires_at <= to_timestamp($3::bigint)";
	char now_s[24];

	if (state != AGENTS_TOKEN_PENDING && state != AGENTS_TOKEN_PREVIOUS)
		return 0;
	snprintf(now_s, sizeof(now_s), "%lld", (long long)now);
	const char *p[4] = {token_hash, agents_token_state_name(state), now_s,
			    state == AGENTS_TOKEN_PENDING ? "expired" : "grace_over"};
	return db_exec(c, sql, 4, p);
}

int agents_tokens_retire_all(PGconn *c, const char *device_id, const char *reason, int64_t now)
{
	/* Suspended tokens keep their state: why they left service matters
	 * more than how the device ended. */
	static const char *sql =
		"UPDATE agent_tokens SET state = 'retired', expires_at = NULL,"
		"       retired_at = to_timestamp($3::bigint), retired_reason = $2"
		" WHERE device_id = $1::uuid AND state IN ('pending', 'current', 'previous')";
	char now_s[24];
	const char *p[3] = {device_id, reason, now_s};

	snprintf(now_s, sizeof(now_s), "%lld", (long long)now);
	return db_exec(c, sql, 3, p);
}

/* ---- Rotation (G2) ---- */

static void epoch_str(int64_t t, char out[24])
{
	snprintf(out, 24, "%lld", (long long)t);
}

/* Every change of a device's token states takes its device row lock first
 * (decommissioning takes it by its UPDATE of the row), so rotations,
 * confirmations, resets and decommissioning of one device run one after
 * another, and in one lock order: never two current tokens, never a
 * deadlock. A heartbeat's UPDATE of the row waits for it too, for the few
 * milliseconds a rotation step takes. STATUS gets the device status. */
static int device_lock(PGconn *c, const char *device_id, char status[16])
{
	static const char *sql = "SELECT status FROM devices WHERE id = $1::uuid FOR NO KEY UPDATE";
	const char *p[1] = {device_id};
	PGresult *r = db_query(c, sql, 1, p, NULL);

	if (r == NULL)
		return BZ_ERR_DB;
	if (PQntuples(r) != 1) {
		PQclear(r);
		return BZ_ERR_NOT_FOUND;
	}
	text_copy(status, 16, PQgetvalue(r, 0, 0));
	PQclear(r);
	return 0;
}

/* Locks the device of A, then reads TOKEN_HASH's state as it is now (read
 * after the lock: a rotation step that held it has committed). */
static int lock_token(PGconn *c, const char *token_hash, const struct agents_agent *a, int64_t now,
		      enum agents_token_state *st, int *live, char status[16])
{
	static const char *sql =
		"SELECT state, (expires_at IS NULL OR expires_at > to_timestamp($2::bigint))::int"
		"  FROM agent_tokens WHERE token_hash = $1 AND device_id = $3::uuid";
	char now_s[24];
	const char *p[3] = {token_hash, now_s, a->device_id};
	PGresult *r;
	int rc = device_lock(c, a->device_id, status);

	if (rc != 0)
		return rc;
	epoch_str(now, now_s);
	if ((r = db_query(c, sql, 3, p, NULL)) == NULL)
		return BZ_ERR_DB;
	if (PQntuples(r) != 1) {
		PQclear(r);
		return BZ_ERR_NOT_FOUND;
	}
	*st = state_parse(PQgetvalue(r, 0, 0));
	*live = strcmp(PQgetvalue(r, 0, 1), "1") == 0;
	PQclear(r);
	return 0;
}

static int bad_token(struct bz_errinfo *why)
{
	return bz_fail(why, BZ_ERR_UNAUTHORIZED, "unauthorized", NULL, "invalid agent token");
}

/* The agent-actor event ACTION of the device in OUT, with DETAILS (owned by
 * the event). */
static void agent_event(struct audit_event *ev, const struct agents_rotation *out,
			const char *action, json_t *details)
{
	*ev = (struct audit_event){.org_id = out->org_id,
				   .actor_type = "agent",
				   .actor_id = out->device_id,
				   .action = action,
				   .resource = "devices",
				   .resource_id = out->device_id,
				   .details = details};
}

static void rotation_init(struct agents_rotation *out, const struct agents_agent *a,
			  struct audit_event *ev)
{
	memset(out, 0, sizeof(*out));
	*ev = (struct audit_event){0};
	text_copy(out->device_id, sizeof(out->device_id), a->device_id);
	text_copy(out->org_id, sizeof(out->org_id), a->org_id);
}

/* Retires an expired pending token of DEVICE_ID, then tells whether a live
 * one is left (*BUSY). Runs under the device lock. */
static int pending_busy(PGconn *c, const char *device_id, int64_t now, int *busy)
{
	static const char *expire_sql =
		"UPDATE agent_tokens SET state = 'retired', expires_at = NULL,"
		"       retired_at = to_timestamp($2::bigint), retired_reason = 'expired'"
		" WHERE device_id = $1::uuid AND state = 'pending'"
		"   AND expires_at <= to_timestamp($2::bigint)";
	static const char *busy_sql =
		"SELECT 1 FROM agent_tokens WHERE device_id = $1::uuid AND state = 'pending'";
	char now_s[24];
	const char *p[2] = {device_id, now_s};
	PGresult *r;

	epoch_str(now, now_s);
	if (db_exec(c, expire_sql, 2, p) != 0 || (r = db_query(c, busy_sql, 1, p, NULL)) == NULL)
		return BZ_ERR_DB;
	*busy = PQntuples(r) > 0;
	PQclear(r);
	return 0;
}

int agents_token_rotate_start(PGconn *c, const char *token_hash, const struct agents_agent *a,
			      int64_t now, struct agents_rotation *out, struct audit_event *ev,
			      struct bz_errinfo *why)
{
	enum agents_token_state st;
	char status[16], hash[65], exp[32];
	int live, busy, rc;

	rotation_init(out, a, ev);
	if ((rc = lock_token(c, token_hash, a, now, &st, &live, status)) != 0)
		return rc == BZ_ERR_NOT_FOUND ? bad_token(why) : rc;
	if ((st == AGENTS_TOKEN_PENDING || st == AGENTS_TOKEN_PREVIOUS) && live)
		return bz_fail(why, BZ_ERR_CONFLICT, "token_superseded", NULL,
			       "only the current token can start a rotation");
	if (st != AGENTS_TOKEN_CURRENT || strcmp(status, "decommissioned") == 0)
		return bad_token(why);
	if (strcmp(status, "active") != 0)
		return bz_fail(why, BZ_ERR_FORBIDDEN, "device_suspended", NULL,
			       "device is suspended; an administrator must review it");
	if ((rc = pending_busy(c, a->device_id, now, &busy)) != 0)
		return rc;
	if (busy)
		return bz_fail(why, BZ_ERR_CONFLICT, "rotation_in_progress", NULL,
			       "a rotation is in progress: confirm its token or wait for it to "
			       "expire");
	if ((rc = agents_token_new(out->token, hash)) != 0)
		return rc;
	out->expires_at = now + AGENTS_PENDING_TTL_S;
	if ((rc = agents_token_insert(c, a->device_id, a->org_id, hash, AGENTS_TOKEN_PENDING, now,
				      out->expires_at)) != 0) {
		crypto_wipe(out->token, sizeof(out->token));
		return rc;
	}
	bz_format_iso8601(out->expires_at, exp, sizeof(exp));
	agent_event(ev, out, "agent.token.rotation_started",
		    json_pack("{s:s}", "pendingExpiresAt", exp));
	return 0;
}

/* The confirm's three steps, in the order the partial unique indexes
 * allow: the old previous token retired, the current one previous until
 * GRACE_END, the pending one current. */
static int promote(PGconn *c, const char *token_hash, const char *device_id, int64_t now,
		   int64_t grace_end)
{
	static const char *retire_sql =
		"UPDATE agent_tokens SET state = 'retired', expires_at = NULL,"
		"       retired_at = to_timestamp($2::bigint), retired_reason = 'rotated'"
		" WHERE device_id = $1::uuid AND state = 'previous'";
	static const char *demote_sql =
		"UPDATE agent_tokens SET state = 'previous', expires_at = to_timestamp($2::bigint)"
		" WHERE device_id = $1::uuid AND state = 'current'";
	static const char *promote_sql =
		"UPDATE agent_tokens SET state = 'current', expires_at = NULL,"
		"       activated_at = to_timestamp($2::bigint)"
		" WHERE token_hash = $1 AND state = 'pending'";
	char now_s[24], end_s[24];
	const char *p1[2] = {device_id, now_s}, *p2[2] = {device_id, end_s};
	const char *p3[2] = {token_hash, now_s};

	epoch_str(now, now_s);
	epoch_str(grace_end, end_s);
	if (db_exec(c, retire_sql, 2, p1) != 0 || db_exec(c, demote_sql, 2, p2) != 0 ||
	    db_exec(c, promote_sql, 2, p3) != 0)
		return BZ_ERR_DB;
	return 0;
}

int agents_token_confirm(PGconn *c, const char *token_hash, const struct agents_agent *a,
			 int64_t now, const char *via, struct agents_rotation *out,
			 struct audit_event *ev, struct bz_errinfo *why)
{
	enum agents_token_state st;
	char status[16], exp[32];
	int live, rc;

	rotation_init(out, a, ev);
	if ((rc = lock_token(c, token_hash, a, now, &st, &live, status)) != 0)
		return rc == BZ_ERR_NOT_FOUND ? bad_token(why) : rc;
	if (strcmp(status, "decommissioned") == 0)
		return bad_token(why);
	if (st == AGENTS_TOKEN_CURRENT)
		return bz_fail(why, BZ_ERR_CONFLICT, "already_confirmed", NULL,
			       "this token is already the current token");
	if (st == AGENTS_TOKEN_PENDING && !live)
		return bz_fail(why, BZ_ERR_CONFLICT, "rotation_expired", NULL,
			       "the rotated token was not confirmed within its hour; keep using "
			       "the current token");
	if (st == AGENTS_TOKEN_PREVIOUS && live)
		return bz_fail(why, BZ_ERR_CONFLICT, "token_superseded", NULL,
			       "this token was replaced by a confirmed rotation");
	if (st != AGENTS_TOKEN_PENDING)
		return bad_token(why);
	out->expires_at = now + AGENTS_TOKEN_GRACE_S;
	if ((rc = promote(c, token_hash, a->device_id, now, out->expires_at)) != 0)
		return rc;
	bz_format_iso8601(out->expires_at, exp, sizeof(exp));
	agent_event(ev, out, "agent.token.rotated",
		    json_pack("{s:s,s:s}", "previousExpiresAt", exp, "via", via));
	return 0;
}

int agents_token_confirm_heartbeat(PGconn *c, const char *token_hash, struct agents_agent *a,
				   const char *ip, int64_t now, struct bz_errinfo *why)
{
	struct agents_rotation r;
	struct audit_event ev = {0};
	struct bz_errinfo w = {0};
	int rc = db_begin(c);

	if (rc == 0)
		rc = agents_token_confirm(c, token_hash, a, now, "heartbeat", &r, &ev, &w);
	if (rc == 0) {
		ev.ip_address = ip;
		rc = audit_write(c, &ev);
	}
	json_decref(ev.details);
	if (rc == 0)
		rc = db_commit(c);
	if (rc != 0)
		db_rollback(c);
	/* A confirm (or another heartbeat) that got the lock first did the
	 * same transition: this heartbeat goes on with the token as it is. */
	if (rc == BZ_ERR_CONFLICT && strcmp(w.code, "rotation_expired") != 0) {
		int current = strcmp(w.code, "already_confirmed") == 0;
		a->token_state = current ? AGENTS_TOKEN_CURRENT : AGENTS_TOKEN_PREVIOUS;
		a->token_activated_at = current ? now : a->token_activated_at;
		rc = 0;
	} else if (rc == 0) {
		a->token_state = AGENTS_TOKEN_CURRENT;
		a->token_activated_at = now;
	} else if (rc == BZ_ERR_CONFLICT || rc == BZ_ERR_UNAUTHORIZED) {
		rc = bad_token(why);
	}
	a->token_live = 1;
	a->rotation_requested = a->pending_live = 0;
	return rc;
}

int agents_token_confirm_expired(const struct agents_agent *a, const char *path_id,
				 struct bz_errinfo *why)
{
	if (a->device_id[0] && a->token_state == AGENTS_TOKEN_PENDING && !a->token_live &&
	    strcasecmp(a->device_id, path_id) == 0 &&
	    strcmp(a->device_status, "decommissioned") != 0)
		return bz_fail(why, BZ_ERR_CONFLICT, "rotation_expired", NULL,
			       "the rotated token was not confirmed within its hour; keep using "
			       "the current token");
	return BZ_ERR_UNAUTHORIZED;
}

int agents_token_rotate_due(const struct agents_agent *a, int64_t now, int64_t max_age_s)
{
	if (a->token_state != AGENTS_TOKEN_CURRENT || a->pending_live)
		return 0;
	return a->rotation_requested || a->token_activated_at <= 0 ||
	       now - a->token_activated_at > max_age_s;
}

int agents_token_is_retired(const struct agents_agent *a)
{
	if (a->device_id[0] == '\0')
		return 0;
	return a->token_state == AGENTS_TOKEN_RETIRED || a->token_state == AGENTS_TOKEN_SUSPENDED ||
	       (a->token_state == AGENTS_TOKEN_PREVIOUS && !a->token_live);
}

int agents_token_retired_use(PGconn *c, const char *token_hash, const struct agents_agent *a,
			     const char *ip, int64_t now)
{
	/* The guard also passes when the stamp lies more than an hour ahead
	 * of NOW (a clock set far back), so a wrong clock cannot silence the
	 * signal for long; instances whose clocks differ by less than that
	 * cannot take turns to flood it. */
	static const char *sql =
		"UPDATE agent_tokens SET retired_use_audited_at = to_timestamp($2::bigint)"
		" WHERE token_hash = $1 AND (retired_use_audited_at IS NULL"
		"    OR retired_use_audited_at <= to_timestamp($2::bigint) - interval '60 seconds'"
		"    OR retired_use_audited_at > to_timestamp($2::bigint) + interval '1 hour')"
		" RETURNING coalesce(retired_reason, '')";
	char now_s[24];
	const char *p[2] = {token_hash, now_s};
	PGresult *r;
	int rc;

	if (!agents_token_is_retired(a))
		return 0;
	epoch_str(now, now_s);
	if ((rc = db_begin(c)) != 0)
		return rc;
	if ((r = db_query(c, sql, 2, p, NULL)) == NULL) {
		db_rollback(c);
		return BZ_ERR_DB;
	}
	if (PQntuples(r) != 1) { /* audited less than a minute ago */
		PQclear(r);
		return db_rollback(c);
	}
	/* A previous token still in that state has outlived its grace. */
	const char *reason = a->token_state == AGENTS_TOKEN_PREVIOUS ? "grace_over"
			     : PQgetvalue(r, 0, 0)[0]		     ? PQgetvalue(r, 0, 0)
								     : "unknown";
	json_t *details = json_pack("{s:s,s:s,s:s?}", "state",
				    agents_token_state_name(a->token_state), "reason", reason,
				    "sourceIp", ip);
	struct audit_event ev = {.org_id = a->org_id,
				 .actor_type = "agent",
				 .actor_id = a->device_id,
				 .action = "agent.token.retired_use",
				 .resource = "devices",
				 .resource_id = a->device_id,
				 .details = details,
				 .ip_address = ip,
				 .result = "denied"};
	rc = audit_write(c, &ev);
	json_decref(details);
	PQclear(r);
	if (rc == 0)
		rc = db_commit(c);
	if (rc != 0)
		db_rollback(c);
	return rc;
}

/* Finds device ID in SC into OUT and takes its lock; refuses a
 * decommissioned device. */
static int admin_target(PGconn *c, const struct tenancy_scope *sc, const char *id,
			struct agents_device *out, struct bz_errinfo *why)
{
	char status[16];
	int rc = agents_device_get(c, sc, id, out);

	if (rc == BZ_ERR_NOT_FOUND)
		return bz_fail(why, rc, "not_found", NULL, "device not found");
	if (rc == 0 && (rc = device_lock(c, out->id, status)) == 0 &&
	    strcmp(status, "decommissioned") == 0)
		rc = bz_fail(why, BZ_ERR_CONFLICT, "device_decommissioned", NULL,
			     "device is decommissioned; it has no agent token");
	return rc;
}

int agents_token_request_rotation(PGconn *c, const struct tenancy_scope *sc, const char *id,
				  struct agents_device *out, struct audit_event *ev,
				  struct bz_errinfo *why)
{
	static const char *sql =
		"UPDATE agent_tokens SET rotation_requested_at = to_timestamp($2::bigint)"
		" WHERE device_id = $1::uuid AND state = 'current' AND rotation_requested_at IS NULL"
		" RETURNING 1";
	static const char *current_sql =
		"SELECT 1 FROM agent_tokens WHERE device_id = $1::uuid AND state = 'current'";
	char now_s[24];
	const char *p[2] = {id, now_s};
	PGresult *r;
	int rc, asked, current;

	*ev = (struct audit_event){0};
	if ((rc = admin_target(c, sc, id, out, why)) != 0)
		return rc;
	epoch_str(bz_now(), now_s);
	if ((r = db_query(c, sql, 2, p, NULL)) == NULL)
		return BZ_ERR_DB;
	asked = PQntuples(r) == 1;
	PQclear(r);
	if (!asked) {
		if ((r = db_query(c, current_sql, 1, p, NULL)) == NULL)
			return BZ_ERR_DB;
		current = PQntuples(r) == 1;
		PQclear(r);
		if (!current)
			return bz_fail(why, BZ_ERR_CONFLICT, "no_agent_token", NULL,
				       "device has no agent token (it was reset); the agent must "
				       "enrol again");
		return 0; /* already asked: nothing to audit */
	}
	*ev = (struct audit_event){.org_id = out->org_id,
				   .action = "device.agent_token.rotation_requested",
				   .resource = "devices",
				   .resource_id = out->id,
				   .details = json_pack("{s:s}", "hostname", out->hostname)};
	return 0;
}

int agents_token_reset(PGconn *c, const struct tenancy_scope *sc, const char *id, int64_t now,
		       struct agents_device *out, struct audit_event *ev, struct bz_errinfo *why)
{
	/* Suspended tokens keep their state, as in agents_tokens_retire_all(). */
	static const char *sql =
		"UPDATE agent_tokens SET state = 'retired', expires_at = NULL,"
		"       retired_at = to_timestamp($2::bigint), retired_reason = 'reset'"
		" WHERE device_id = $1::uuid AND state IN ('pending', 'current', 'previous')"
		" RETURNING 1";
	char now_s[24];
	const char *p[2] = {id, now_s};
	PGresult *r;
	int rc;

	*ev = (struct audit_event){0};
	if ((rc = admin_target(c, sc, id, out, why)) != 0)
		return rc;
	epoch_str(now, now_s);
	if ((r = db_query(c, sql, 2, p, NULL)) == NULL)
		return BZ_ERR_DB;
	/* A heartbeat that read a token before this commit must not land
	 * after it (migration 0015). */
	if ((rc = db_exec(c,
			  "UPDATE devices SET credential_version = credential_version + 1"
			  " WHERE id = $1::uuid",
			  1, p)) != 0) {
		PQclear(r);
		return rc;
	}
	*ev = (struct audit_event){.org_id = out->org_id,
				   .action = "device.agent_token.reset",
				   .resource = "devices",
				   .resource_id = out->id,
				   .details = json_pack("{s:s,s:i}", "hostname", out->hostname,
							"retiredCount", PQntuples(r))};
	PQclear(r);
	return 0;
}
