/*
 * live_db.c — `check --live` against PostgreSQL (as DATABASE_URL, the
 * application role) and Redis: where PostgreSQL listens and how it
 * authenticates (N2), Redis's bind and password (N3, N4), admins without
 * MFA and admin roles that do not force it (A1, A2), agent tokens only as
 * hashes (G1), enrolment keys (G5), the audit log's triggers, chains and
 * pruning rights (L3, L4, L5) and the enrolment secret's age (S6).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "common/err.h"
#include "crypto/crypto.h"
#include "server/agents/agents.h"
#include "server/audit/audit_chain.h"
#include "server/audit/audit_checkpoint.h"
#include "server/check/check_internal.h"
#include "server/db/db.h"
#include "server/redis/redis.h"
#include "server/settings/settings.h"

/* A role that can manage users or roles: an administrator (A1, A2). */
#define ADMIN_ROLE_SQL                                                                             \
	"(r.permissions && ARRAY['users:write','roles:write'] OR"                                  \
	" (r.builtin AND r.name IN ('partner_admin','org_admin')))"

/* One-row, one-column query: the value copied into OUT, or -1. */
static int one(PGconn *c, const char *sql, char *out, size_t outlen)
{
	PGresult *r = db_query(c, sql, 0, NULL, NULL);
	int rc = -1;

	if (r != NULL && PQntuples(r) == 1 && PQnfields(r) >= 1) {
		snprintf(out, outlen, "%s", db_val(r, 0, 0) ? db_val(r, 0, 0) : "");
		rc = 0;
	}
	PQclear(r);
	return rc;
}

static int all_loopback(const char *list)
{
	char buf[512];

	snprintf(buf, sizeof(buf), "%s", list);
	for (char *save = NULL, *t = strtok_r(buf, ", ", &save); t; t = strtok_r(NULL, ", ", &save))
		if (strcmp(t, "localhost") != 0 && strncmp(t, "127.", 4) != 0 &&
		    strcmp(t, "::1") != 0)
			return 0;
	return 1;
}

/* N2/N3 when the service listens beyond loopback: fine only inside a
 * container network whose port is not published (the compose check). */
static void listens_wide(struct check_ctx *ctx, const char *id, const char *what, const char *addrs)
{
	for (size_t i = 0; i < ctx->rep.n; i++)
		if (!strcmp(ctx->rep.rows[i].id, id) && ctx->rep.rows[i].judged &&
		    ctx->rep.rows[i].result == CHECK_PASS) {
			check_add(&ctx->rep, id, CHECK_PASS,
				  "%s listens on %s inside the container network only", what,
				  addrs);
			return;
		}
	check_add(&ctx->rep, id, CHECK_FAIL,
		  "%s listens on %s, not only 127.0.0.1 (and no compose file shows it unpublished)",
		  what, addrs);
}

static void postgres_network(struct check_ctx *ctx, PGconn *c)
{
	char v[512];
	PGresult *r;

	if (one(c, "SHOW listen_addresses", v, sizeof(v)) != 0)
		check_add(&ctx->rep, "N2", CHECK_MANUAL, "listen_addresses could not be read");
	else if (all_loopback(v))
		check_add(&ctx->rep, "N2", CHECK_PASS, "PostgreSQL listens on %s", v);
	else
		listens_wide(ctx, "N2", "PostgreSQL", v);
	r = db_query(c,
		     "SELECT count(*) FILTER (WHERE auth_method IN ('trust', 'password')),"
		     "       count(*) FILTER (WHERE auth_method = 'md5')"
		     "  FROM pg_hba_file_rules WHERE error IS NULL AND type <> 'local'",
		     0, NULL, NULL);
	if (r == NULL) {
		check_add(
			&ctx->rep, "N2", CHECK_MANUAL,
			"pg_hba_file_rules needs a superuser: check that pg_hba.conf has no trust "
			"or password rule and uses scram-sha-256");
		return;
	}
	long weak = strtol(db_val(r, 0, 0), NULL, 10), md5 = strtol(db_val(r, 0, 1), NULL, 10);
	PQclear(r);
	if (weak > 0)
		check_add(&ctx->rep, "N2", CHECK_FAIL,
			  "pg_hba.conf has %ld network rule(s) with trust or password", weak);
	else if (md5 > 0)
		check_add(&ctx->rep, "N2", CHECK_WARN,
			  "pg_hba.conf has %ld md5 rule(s): prefer scram-sha-256", md5);
	else
		check_add(&ctx->rep, "N2", CHECK_PASS,
			  "pg_hba.conf network rules use scram-sha-256");
}

/* A1/A2: administrators without MFA; admin roles that do not force it. */
static void admins(struct check_ctx *ctx, PGconn *c)
{
	char n[32], ids[512], roles[512];

	if (one(c,
		"SELECT count(*) FROM users u JOIN roles r ON r.id = u.role_id"
		" WHERE u.status = 'active' AND NOT u.mfa_enabled AND " ADMIN_ROLE_SQL,
		n, sizeof(n)) != 0 ||
	    one(c,
		"SELECT coalesce(string_agg(id::text, ', '), '') FROM (SELECT u.id FROM users u"
		" JOIN roles r ON r.id = u.role_id WHERE u.status = 'active' AND NOT u.mfa_enabled"
		" AND " ADMIN_ROLE_SQL " ORDER BY u.id LIMIT 5) s",
		ids, sizeof(ids)) != 0 ||
	    one(c,
		"SELECT coalesce(string_agg(r.name, ', ' ORDER BY r.name), '') FROM roles r"
		" WHERE " ADMIN_ROLE_SQL
		" AND ((NOT r.force_mfa AND EXISTS (SELECT 1 FROM partners p"
		"   WHERE NOT EXISTS (SELECT 1 FROM partner_role_settings s"
		"                      WHERE s.partner_id = p.id AND s.role_id = r.id)))"
		"  OR EXISTS (SELECT 1 FROM partner_role_settings s"
		"              WHERE s.role_id = r.id AND NOT s.force_mfa))",
		roles, sizeof(roles)) != 0) {
		check_add(&ctx->rep, "A1", CHECK_MANUAL, "users and roles could not be read");
		check_add(&ctx->rep, "A2", CHECK_MANUAL, "roles could not be read");
		return;
	}
	if (strcmp(n, "0") != 0)
		check_add(&ctx->rep, "A1", CHECK_FAIL,
			  "%s active administrator(s) without MFA (user ids %s%s)", n, ids,
			  strtol(n, NULL, 10) > 5 ? ", …" : "");
	else
		check_add(&ctx->rep, "A1", CHECK_PASS, "every active administrator has TOTP MFA");
	if (*roles)
		check_add(
			&ctx->rep, "A2", CHECK_FAIL,
			"administrator roles that do not force MFA (for some or all partners): %s",
			roles);
	else
		check_add(&ctx->rep, "A2", CHECK_PASS,
			  "every administrator role forces MFA (428 until enrolled)");
}

static void agent_tokens(struct check_ctx *ctx, PGconn *c)
{
	char bad[32], cols[512];

	if (one(c, "SELECT count(*) FROM agent_tokens WHERE token_hash !~ '^[0-9a-f]{64}$'", bad,
		sizeof(bad)) != 0 ||
	    one(c,
		"SELECT coalesce(string_agg(table_name || '.' || column_name, ', '), '')"
		"  FROM information_schema.columns WHERE table_schema = 'public'"
		"   AND column_name ~ '(^|_)token$'",
		cols, sizeof(cols)) != 0) {
		check_add(&ctx->rep, "G1", CHECK_MANUAL, "agent_tokens could not be read");
		return;
	}
	if (strcmp(bad, "0") != 0)
		check_add(&ctx->rep, "G1", CHECK_FAIL,
			  "%s agent token row(s) hold something other than a SHA-256 hash", bad);
	else if (*cols)
		check_add(&ctx->rep, "G1", CHECK_FAIL, "columns that may hold plaintext tokens: %s",
			  cols);
	else
		check_add(
			&ctx->rep, "G1", CHECK_PASS,
			"agent tokens are stored only as SHA-256 hashes (agent_tokens.token_hash)");
}

static void enrolment_keys(struct check_ctx *ctx, PGconn *c)
{
	char live[32], long_lived[32], nullable[32];

	if (one(c,
		"SELECT count(*) FROM information_schema.columns WHERE table_schema = 'public'"
		"   AND table_name = 'enrollment_keys' AND column_name IN ('expires_at', 'max_usage')"
		"   AND is_nullable = 'YES'",
		nullable, sizeof(nullable)) != 0 ||
	    one(c,
		"SELECT count(*) FROM enrollment_keys WHERE revoked_at IS NULL"
		"   AND expires_at > now() AND usage_count < max_usage",
		live, sizeof(live)) != 0 ||
	    one(c,
		"SELECT count(*) FROM enrollment_keys WHERE revoked_at IS NULL"
		"   AND expires_at > now() + interval '90 days' AND usage_count < max_usage",
		long_lived, sizeof(long_lived)) != 0) {
		check_add(&ctx->rep, "G5", CHECK_MANUAL, "enrollment_keys could not be read");
		return;
	}
	if (strcmp(nullable, "0") != 0)
		check_add(&ctx->rep, "G5", CHECK_FAIL,
			  "enrollment_keys.expires_at or max_usage may be empty");
	else if (strcmp(long_lived, "0") != 0)
		check_add(&ctx->rep, "G5", CHECK_WARN,
			  "%s usable enrolment key(s) expire more than 90 days from now",
			  long_lived);
	else
		check_add(&ctx->rep, "G5", CHECK_PASS,
			  "every enrolment key has an expiry and a use limit (%s usable now)",
			  live);
}

static void audit_rules(struct check_ctx *ctx, PGconn *c)
{
	char n[32], del[8];

	if (one(c,
		"SELECT count(*) FROM pg_trigger WHERE tgrelid = 'public.audit_log'::regclass"
		"   AND tgenabled <> 'D' AND tgname IN ('audit_log_no_update', 'audit_log_no_delete',"
		"   'audit_log_no_truncate', 'audit_log_seal')",
		n, sizeof(n)) != 0)
		check_add(&ctx->rep, "L3", CHECK_MANUAL,
			  "the triggers of audit_log could not be read");
	else if (strcmp(n, "4") != 0)
		check_add(&ctx->rep, "L3", CHECK_FAIL,
			  "only %s of the 4 audit_log triggers (seal, no update, no delete, no "
			  "truncate) are present and enabled",
			  n);
	else
		check_add(&ctx->rep, "L3", CHECK_PASS,
			  "audit_log refuses UPDATE, DELETE and TRUNCATE (triggers enabled)");
	if (one(c,
		"SELECT has_table_privilege(current_user, 'public.audit_log', 'DELETE')::text"
		"    || (SELECT count(*) FROM pg_roles WHERE rolname = 'breeze_audit_admin')::text",
		del, sizeof(del)) != 0)
		check_add(&ctx->rep, "L5", CHECK_MANUAL, "privileges could not be read");
	else if (strncmp(del, "false", 5) != 0)
		check_add(&ctx->rep, "L5", CHECK_FAIL,
			  "the application role may DELETE from audit_log");
	else if (strcmp(del + 5, "1") != 0)
		check_add(&ctx->rep, "L5", CHECK_FAIL, "there is no role breeze_audit_admin");
	else
		check_add(&ctx->rep, "L5", CHECK_PASS,
			  "only breeze_audit_admin (with breeze.allow_audit_retention) may prune "
			  "audit_log");
}

/* L4: every chain verified, signatures checked with AUDIT_SIGNING_KEY's
 * public key when it is set. */
static void chains(struct check_ctx *ctx, PGconn *c)
{
	const char *seed = ctx->cfg.secrets[SECRET_AUDIT_SIGNING_KEY];
	char pub[65], first[37] = "";
	const char *keys[1] = {pub};
	struct audit_verify_opts o = {0};
	char(*ids)[37] = NULL;
	size_t n = 0, broken = 0;
	long long rows = 0;

	if (seed != NULL && audit_public_key_hex(seed, pub) == 0) {
		o.public_keys = keys;
		o.n_public_keys = 1;
	}
	if (audit_chain_list(c, &ids, &n) != 0) {
		check_add(&ctx->rep, "L4", CHECK_MANUAL, "the audit chains could not be listed");
		free(ids);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		struct audit_report rep;
		memset(&rep, 0, sizeof(rep));
		if ((audit_verify_chain(c, ids[i], &o, &rep) != 0 || !rep.ok) && !broken++)
			snprintf(first, sizeof(first), "%s",
				 strcmp(ids[i], AUDIT_SYSTEM_CHAIN) ? ids[i] : "system");
		rows += rep.rows_checked;
		audit_report_free(&rep);
	}
	free(ids);
	if (broken)
		check_add(&ctx->rep, "L4", CHECK_FAIL,
			  "%zu of %zu audit chains are broken (first: %s; run `breeze-server audit "
			  "verify --org %s`)",
			  broken, n, first, first);
	else
		check_add(&ctx->rep, "L4", CHECK_PASS, "%zu audit chains verified, %lld rows%s", n,
			  rows,
			  o.n_public_keys ? "" : " (no AUDIT_SIGNING_KEY: signatures not checked)");
}

static void enrolment_secret(struct check_ctx *ctx, PGconn *c)
{
	int64_t seen, first;
	char a[32], b[32];

	if (agents_enrollment_secret_age(c, ctx->cfg.secrets[SECRET_AGENT_ENROLLMENT_SECRET], &seen,
					 &first) != 0) {
		check_add(&ctx->rep, "S6", CHECK_MANUAL, "the enrolment history could not be read");
		return;
	}
	if (first < 0) {
		check_add(
			&ctx->rep, "S6", CHECK_PASS,
			"no agent has enrolled yet: rotate AGENT_ENROLLMENT_SECRET after the first "
			"enrolment batch");
		return;
	}
	struct tm tm;
	time_t t = (time_t)first;
	strftime(a, sizeof(a), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
	if (seen < 0)
		check_add(
			&ctx->rep, "S6", CHECK_PASS,
			"AGENT_ENROLLMENT_SECRET is newer than the first enrolment (%s): no server "
			"has used it yet",
			a);
	else if (seen <= first) {
		t = (time_t)seen;
		strftime(b, sizeof(b), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
		check_add(&ctx->rep, "S6", CHECK_WARN,
			  "AGENT_ENROLLMENT_SECRET is in use since %s, before the first enrolment "
			  "(%s): rotate it (docs/deploy.md)",
			  b, a);
	} else
		check_add(&ctx->rep, "S6", CHECK_PASS,
			  "AGENT_ENROLLMENT_SECRET was rotated after the first enrolment (%s)", a);
}

/* The encrypted columns (O2): values not in the sealed format, values
 * still under a previous key, and a key near its encryption limit. */
#define SEALED_COLUMNS_SQL                                                                          \
	"SELECT 'partners.settings_enc', settings_enc FROM partners WHERE settings_enc IS NOT NULL" \
	" UNION ALL SELECT 'sites.settings_enc', settings_enc FROM sites"                           \
	"  WHERE settings_enc IS NOT NULL"                                                          \
	" UNION ALL SELECT 'webhooks.secret_enc', secret_enc FROM webhooks"

static void encrypted_settings(struct check_ctx *ctx, PGconn *c)
{
	struct crypto_keyring kr;
	struct bz_errinfo why = {0};
	char plain[32], old[512], legacy[32], high[32];

	if (settings_keyring(&ctx->cfg, &kr, &why) != 0) {
		check_add(&ctx->rep, "O2", CHECK_FAIL, "APP_ENCRYPTION_KEY is not usable");
		return;
	}
	char active_id[CRYPTO_ENV_KEY_ID_MAX + 1], sql[1024];
	const char *active = active_id;
	snprintf(active_id, sizeof(active_id), "%s", kr.k[0].id);
	snprintf(sql, sizeof(sql),
		 "SELECT count(*) FROM (" SEALED_COLUMNS_SQL ") v(col, val)"
		 " WHERE val NOT LIKE 'enc:v1:%%' AND val NOT LIKE 'v1:%%'");
	int bad =
		one(c,
		    "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'public'"
		    "   AND table_name IN ('partners', 'sites') AND column_name = 'settings'",
		    legacy, sizeof(legacy)) != 0 ||
		one(c, sql, plain, sizeof(plain)) != 0 ||
		one(c, "SELECT count(*) FROM encryption_key_usage WHERE encryptions >= 2147483648",
		    high, sizeof(high)) != 0;
	PGresult *r =
		bad ? NULL
		    : db_query(
			      c,
			      "SELECT coalesce(string_agg(col || ' ' || n || ' under '"
			      "   || coalesce(nullif(k, ''), 'v1'), ', '), '') FROM ("
			      "  SELECT col, CASE WHEN val LIKE 'enc:v1:%' THEN split_part(val, ':', 3)"
			      "   ELSE '' END AS k, count(*)::text AS n FROM (" SEALED_COLUMNS_SQL
			      ") v(col, val) GROUP BY 1, 2) g WHERE k IS DISTINCT FROM $1",
			      1, &active, NULL);
	crypto_keyring_wipe(&kr);
	if (r == NULL) {
		check_add(&ctx->rep, "O2", CHECK_MANUAL, "the encrypted columns could not be read");
		return;
	}
	snprintf(old, sizeof(old), "%s", db_val(r, 0, 0) ? db_val(r, 0, 0) : "");
	PQclear(r);
	if (strcmp(legacy, "0") != 0 || strcmp(plain, "0") != 0)
		check_add(&ctx->rep, "O2", CHECK_FAIL,
			  "%s plaintext settings column(s), %s value(s) not sealed", legacy, plain);
	else if (*old)
		check_add(&ctx->rep, "O2", CHECK_WARN,
			  "values not under the active key %s: %s (run `breeze-server "
			  "rotate-encryption-key`)",
			  active, old);
	else
		check_add(
			&ctx->rep, "O2", CHECK_PASS,
			"partner and site settings and webhook secrets are AES-256-GCM sealed under "
			"the active key %s",
			active);
	if (strcmp(high, "0") != 0)
		check_add(
			&ctx->rep, "O2", CHECK_WARN,
			"%s key(s) sealed 2^31 values or more: the NIST SP 800-38D limit for random "
			"nonces is 2^32; rotate to a new key",
			high);
}

int check_live_db(struct check_ctx *ctx)
{
	PGconn *c;

	if (ctx->cfg.database_url == NULL || (c = db_connect(ctx->cfg.database_url)) == NULL) {
		const char *ids[] = {"N2", "A1", "A2", "G1", "G5", "L3", "L4", "L5", "S6", "O2"};
		for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++)
			check_add(&ctx->rep, ids[i], CHECK_FAIL,
				  "cannot connect to PostgreSQL (DATABASE_URL)");
		return 0;
	}
	postgres_network(ctx, c);
	admins(ctx, c);
	agent_tokens(ctx, c);
	enrolment_keys(ctx, c);
	audit_rules(ctx, c);
	chains(ctx, c);
	enrolment_secret(ctx, c);
	encrypted_settings(ctx, c);
	PQfinish(c);
	return 0;
}

/* N3/N4: Redis refuses an unauthenticated client, and binds where it
 * should (CONFIG may be disabled, as deploy/redis/redis.conf does). */
int check_live_redis(struct check_ctx *ctx)
{
	struct redis_target t;
	struct timeval tv = {.tv_sec = 2};
	redisContext *rc;
	redisReply *r;

	if (ctx->cfg.redis_url == NULL || redis_url_parse(ctx->cfg.redis_url, &t) != 0)
		return 0;
	crypto_wipe(t.password, sizeof(t.password));
	rc = redisConnectWithTimeout(t.host, t.port, tv);
	if (rc == NULL || rc->err) {
		check_add(&ctx->rep, "N4", CHECK_FAIL, "cannot connect to Redis at %s:%d", t.host,
			  t.port);
		redisFree(rc);
		return 0;
	}
	redisSetTimeout(rc, tv);
	r = redisCommand(rc, "PING");
	if (r != NULL && r->type == REDIS_REPLY_ERROR && strstr(r->str, "NOAUTH") != NULL)
		check_add(&ctx->rep, "N4", CHECK_PASS,
			  "Redis refuses clients without the password");
	else
		check_add(&ctx->rep, "N4", CHECK_FAIL, "Redis answers clients without a password");
	freeReplyObject(r);
	redisFree(rc);

	if ((rc = redis_connect_url(ctx->cfg.redis_url, 2000)) == NULL) {
		check_add(&ctx->rep, "N3", CHECK_MANUAL, "cannot log in to Redis with REDIS_URL");
		return 0;
	}
	r = redisCommand(rc, "CONFIG GET bind");
	if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
	    r->element[1]->type == REDIS_REPLY_STRING) {
		if (all_loopback(r->element[1]->str))
			check_add(&ctx->rep, "N3", CHECK_PASS, "Redis binds %s",
				  r->element[1]->str);
		else
			listens_wide(ctx, "N3", "Redis", r->element[1]->str);
	} else
		check_add(
			&ctx->rep, "N3", CHECK_MANUAL,
			"CONFIG is disabled (as deploy/redis/redis.conf does): check that bind is "
			"127.0.0.1 in redis.conf");
	freeReplyObject(r);
	redisFree(rc);
	return 0;
}
