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
 * 8 activated_at as epoch seconds (or NULL). */
static const char *lookup_sql =
	"SELECT d.id, d.org_id, d.status, d.heartbeat_interval_s, coalesce(host(d.last_ip), ''),"
	"       d.hostname, t.state,"
	"       (t.expires_at IS NULL OR t.expires_at > to_timestamp($2::bigint))::int,"
	"       extract(epoch FROM t.activated_at)::bigint"
	"  FROM agent_tokens t JOIN devices d ON d.id = t.device_id"
	" WHERE t.token_hash = $1";

/* Fills OUT from row 0 of R. */
static void agent_fill(PGresult *r, struct agents_agent *out)
{
	text_copy(out->device_id, sizeof(out->device_id), PQgetvalue(r, 0, 0));
	text_copy(out->org_id, sizeof(out->org_id), PQgetvalue(r, 0, 1));
	text_copy(out->device_status, sizeof(out->device_status), PQgetvalue(r, 0, 2));
	out->heartbeat_interval_s = atoi(PQgetvalue(r, 0, 3));
	text_copy(out->old_ip, sizeof(out->old_ip), PQgetvalue(r, 0, 4));
	text_copy(out->hostname, sizeof(out->hostname), PQgetvalue(r, 0, 5));
	out->token_state = state_parse(PQgetvalue(r, 0, 6));
	out->token_live = strcmp(PQgetvalue(r, 0, 7), "1") == 0;
	out->token_activated_at = PQgetisnull(r, 0, 8) ? 0 : strtoll(PQgetvalue(r, 0, 8), NULL, 10);
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
	agent_fill(r, out);
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
