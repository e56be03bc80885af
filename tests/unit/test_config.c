/* Unit tests for src/server/config.c: configuration from the environment.
 * One table of bad production settings (S1, S4, S5, A3, N4, missing values,
 * malformed numbers and addresses), each of which must be fatal, name its
 * variable and never echo a secret; the same table run in development,
 * where weak secrets are only warnings; a good production configuration
 * built from fresh random secrets; and the secret/entropy helpers. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/err.h"
#include "crypto/crypto.h"
#include "server/config.h"

/* Every variable config_load reads; cleared before each test. */
static const char *all_vars[] = {
	"BREEZE_ENV",
	"DATABASE_URL",
	"MIGRATION_DATABASE_URL",
	"REDIS_URL",
	"DATABASE_POOL_SIZE",
	"ARGON2_MEMORY_KIB",
	"ARGON2_ITERATIONS",
	"ARGON2_PARALLELISM",
	"ARGON2_MAX_CONCURRENT",
	"LISTEN_ADDR",
	"JWT_SECRET",
	"APP_ENCRYPTION_KEY",
	"MFA_ENCRYPTION_KEY",
	"MFA_RECOVERY_CODE_PEPPER",
	"MFA_ENCRYPTION_KEY_PREVIOUS",
	"ENROLLMENT_KEY_PEPPER",
	"AGENT_ENROLLMENT_SECRET",
	"METRICS_SCRAPE_TOKEN",
	"ENABLE_REGISTRATION",
	"SESSION_MAX_AGE",
	"HEARTBEAT_INTERVAL_SECONDS",
	"AGENT_TOKEN_MAX_AGE_DAYS",
	"TRUSTED_PROXY_CIDRS",
	"HTTP_MAX_BODY_BYTES",
	"HTTP_MAX_CONNECTIONS",
	"HTTP_TIMEOUT_SECONDS",
	"AUDIT_SIGNING_KEY",
	"AUDIT_ADMIN_DATABASE_URL",
	"AUDIT_RETENTION_DAYS",
	"AUDIT_CHECKPOINT_INTERVAL_SECONDS",
	"AUDIT_VERIFY_INTERVAL_SECONDS",
	"AUDIT_RETENTION_INTERVAL_SECONDS",
	"HTTP_MAX_CONNECTIONS_PER_IP",
	"HTTP_DRAIN_SECONDS",
	"HTTP_HEADER_TIMEOUT_SECONDS",
	"DATABASE_STATEMENT_TIMEOUT_MS",
	"DATABASE_LOCK_TIMEOUT_MS",
	"DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS",
	"DATABASE_KEEPALIVE_IDLE_SECONDS",
	"DATABASE_KEEPALIVE_INTERVAL_SECONDS",
	"DATABASE_KEEPALIVE_COUNT",
	"DATABASE_TCP_USER_TIMEOUT_MS",
	"DATABASE_REQUEST_DEADLINE_MS",
	"RATE_LIMIT_LOGIN",
	"RATE_LIMIT_LOGIN_IP",
	"RATE_LIMIT_API_USER",
	"RATE_LIMIT_AGENT_DEVICE",
	"AGENT_ORG_RATE_LIMIT_PER_MIN",
	"RATE_LIMIT_ENROLL",
	"RATE_LIMIT_MFA",
	"RATE_LIMIT_WEBHOOK_TEST",
	"RATE_LIMIT_ON_REDIS_FAILURE",
	"RATE_LIMIT_REDIS_TIMEOUT_MS",
	"WEBHOOK_WORKER_THREADS",
	"WEBHOOK_ORG_MAX_IN_FLIGHT",
};

/* Fresh `openssl rand -hex 32`-style values for every secret, plus a Redis
 * password, so no test depends on a value written in this file. */
static char good_secret[SECRET_COUNT][65];
static char redis_pw[65];
static char redis_url[128];

static void clear_env(void)
{
	for (size_t i = 0; i < sizeof(all_vars) / sizeof(*all_vars); i++)
		unsetenv(all_vars[i]);
}

static void set_good_env(const char *breeze_env)
{
	clear_env();
	for (int s = 0; s < SECRET_COUNT; s++) {
		assert_int_equal(crypto_random_hex(32, good_secret[s]), 0);
		assert_int_equal(setenv(config_secret_name(s), good_secret[s], 1), 0);
	}
	assert_int_equal(crypto_random_hex(32, redis_pw), 0);
	snprintf(redis_url, sizeof(redis_url), "redis://:%s@127.0.0.1:6379/0", redis_pw);
	assert_int_equal(setenv("BREEZE_ENV", breeze_env, 1), 0);
	assert_int_equal(setenv("DATABASE_URL", "postgresql://breeze_app@127.0.0.1:5432/breeze", 1),
			 0);
	assert_int_equal(setenv("REDIS_URL", redis_url, 1), 0);
	/* Audit retention (L5) runs as a separate database role in production. */
	assert_int_equal(setenv("AUDIT_ADMIN_DATABASE_URL",
				"postgresql://breeze_audit_admin@127.0.0.1:5432/breeze", 1),
			 0);
}

static int setup(void **state)
{
	(void)state;
	clear_env();
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	clear_env();
	return 0;
}

/* Fails if any problem text contains VALUE (or its first 12 characters). */
static void assert_not_leaked(const struct config_problems *p, const char *value, const char *ctx)
{
	char prefix[13];
	size_t n;

	if (value == NULL || strlen(value) < 4)
		return;
	/* Deliberately cut to 12 bytes: copied, not printed, so the compiler
	 * does not see an unintended truncation (-Wformat-truncation). */
	n = strnlen(value, sizeof(prefix) - 1);
	memcpy(prefix, value, n);
	prefix[n] = '\0';
	for (unsigned i = 0; i < p->n; i++)
		if (strstr(p->items[i].text, value) != NULL ||
		    (strlen(prefix) == 12 && strstr(p->items[i].text, prefix) != NULL))
			fail_msg("%s: problem text leaks a secret: %s", ctx, p->items[i].text);
}

static void assert_no_good_secret_leaked(const struct config_problems *p, const char *ctx)
{
	for (int s = 0; s < SECRET_COUNT; s++)
		assert_not_leaked(p, good_secret[s], ctx);
	assert_not_leaked(p, redis_pw, ctx);
}

/* 1 if some problem (fatal when FATAL) starts with "VAR:". */
static int names_var(const struct config_problems *p, const char *var, int fatal)
{
	size_t vl = strlen(var);

	for (unsigned i = 0; i < p->n; i++)
		if (p->items[i].fatal == fatal && strncmp(p->items[i].text, var, vl) == 0 &&
		    p->items[i].text[vl] == ':')
			return 1;
	return 0;
}

static void dump(const struct config_problems *p)
{
	for (unsigned i = 0; i < p->n; i++)
		print_message("    [%s] %s\n", p->items[i].fatal ? "fatal" : "warn",
			      p->items[i].text);
}

#define A64 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define AB64 "abababababababababababababababababababababababababababababababab"

enum dev_outcome {
	DEV_WARN,      /* development: returns 0 with at least one warning */
	DEV_NOT_FATAL, /* development: returns 0 */
	DEV_FATAL,     /* fatal in every environment */
};

struct bad_case {
	const char *name;
	const char *var;       /* variable changed from the good configuration */
	const char *value;     /* new value; NULL = unset */
	const char *copy_from; /* if set: the value is this variable's (good) value */
	const char *names;     /* the variable a fatal problem must name */
	int is_secret;	       /* VALUE must never appear in problem text */
	enum dev_outcome dev;
};

static const struct bad_case bad_cases[] = {
	/* S4: at least 32 characters. */
	{"S4 short secret", "JWT_SECRET", "9f86d081884c7d659a2feaa0c55ad01", NULL, "JWT_SECRET", 1,
	 DEV_WARN},
	{"S4 short pepper", "ENROLLMENT_KEY_PEPPER", "k3Jq9xZ2", NULL, "ENROLLMENT_KEY_PEPPER", 1,
	 DEV_WARN},
	/* S1: known example values. */
	{"S1 changeme", "JWT_SECRET", "changeme-changeme-changeme-changeme", NULL, "JWT_SECRET", 1,
	 DEV_WARN},
	{"S1 example inside random", "AGENT_ENROLLMENT_SECRET",
	 "e3b0c44298fc1c149afbf4c8996fb924-ChangeMe-27ae41e4649b934c", NULL,
	 "AGENT_ENROLLMENT_SECRET", 1, DEV_WARN},
	/* Fatal everywhere: besides S1, the MFA key must be 64 hex digits. */
	{"S1 your-secret", "MFA_ENCRYPTION_KEY", "your-secret-key-goes-here-0123456789abcdef", NULL,
	 "MFA_ENCRYPTION_KEY", 1, DEV_FATAL},
	{"S1 your-secret pepper", "MFA_RECOVERY_CODE_PEPPER",
	 "your-secret-key-goes-here-0123456789abcdef", NULL, "MFA_RECOVERY_CODE_PEPPER", 1,
	 DEV_WARN},
	{"MFA key not hex", "MFA_ENCRYPTION_KEY",
	 "g3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", NULL,
	 "MFA_ENCRYPTION_KEY", 1, DEV_FATAL},
	{"MFA key short", "MFA_ENCRYPTION_KEY",
	 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b8", NULL,
	 "MFA_ENCRYPTION_KEY", 1, DEV_FATAL},
	{"previous MFA key not hex", "MFA_ENCRYPTION_KEY_PREVIOUS",
	 "g3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", NULL,
	 "MFA_ENCRYPTION_KEY_PREVIOUS", 1, DEV_FATAL},
	{"previous MFA key == current", "MFA_ENCRYPTION_KEY_PREVIOUS", NULL, "MFA_ENCRYPTION_KEY",
	 "MFA_ENCRYPTION_KEY_PREVIOUS", 1, DEV_WARN},
	/* S1: low entropy at full length. */
	{"S1 a*64", "MFA_RECOVERY_CODE_PEPPER", A64, NULL, "MFA_RECOVERY_CODE_PEPPER", 1, DEV_WARN},
	{"S1 abab*32", "METRICS_SCRAPE_TOKEN", AB64, NULL, "METRICS_SCRAPE_TOKEN", 1, DEV_WARN},
	{"S1 low entropy app key", "APP_ENCRYPTION_KEY", A64, NULL, "APP_ENCRYPTION_KEY", 1,
	 DEV_WARN},
	/* S5: the encryption key is used for nothing else. */
	{"S5 app == mfa", "APP_ENCRYPTION_KEY", NULL, "MFA_ENCRYPTION_KEY", "APP_ENCRYPTION_KEY", 1,
	 DEV_WARN},
	{"S5 app == jwt", "APP_ENCRYPTION_KEY", NULL, "JWT_SECRET", "APP_ENCRYPTION_KEY", 1,
	 DEV_WARN},
	{"S5 app == metrics", "METRICS_SCRAPE_TOKEN", NULL, "APP_ENCRYPTION_KEY",
	 "APP_ENCRYPTION_KEY", 1, DEV_WARN},
	{"secret reused", "AGENT_ENROLLMENT_SECRET", NULL, "ENROLLMENT_KEY_PEPPER",
	 "AGENT_ENROLLMENT_SECRET", 1, DEV_WARN},
	/* A3. */
	{"A3 registration on", "ENABLE_REGISTRATION", "true", NULL, "ENABLE_REGISTRATION", 0,
	 DEV_NOT_FATAL},
	{"A3 registration yes", "ENABLE_REGISTRATION", "YES", NULL, "ENABLE_REGISTRATION", 0,
	 DEV_NOT_FATAL},
	{"bad boolean", "ENABLE_REGISTRATION", "maybe", NULL, "ENABLE_REGISTRATION", 0, DEV_FATAL},
	/* Missing secrets: all are required in production. */
	{"missing MFA key", "MFA_ENCRYPTION_KEY", NULL, NULL, "MFA_ENCRYPTION_KEY", 0,
	 DEV_NOT_FATAL},
	{"missing metrics token", "METRICS_SCRAPE_TOKEN", NULL, NULL, "METRICS_SCRAPE_TOKEN", 0,
	 DEV_NOT_FATAL},
	{"missing JWT secret", "JWT_SECRET", NULL, NULL, "JWT_SECRET", 0, DEV_FATAL},
	{"empty JWT secret", "JWT_SECRET", "", NULL, "JWT_SECRET", 0, DEV_FATAL},
	{"missing agent secret", "AGENT_ENROLLMENT_SECRET", NULL, NULL, "AGENT_ENROLLMENT_SECRET",
	 0, DEV_FATAL},
	/* N4: production Redis requires a password. */
	{"N4 no credentials", "REDIS_URL", "redis://127.0.0.1:6379/0", NULL, "REDIS_URL", 0,
	 DEV_NOT_FATAL},
	{"N4 user but no password", "REDIS_URL", "redis://default@127.0.0.1:6379/0", NULL,
	 "REDIS_URL", 0, DEV_NOT_FATAL},
	{"N4 empty password", "REDIS_URL", "redis://:@127.0.0.1:6379/0", NULL, "REDIS_URL", 0,
	 DEV_NOT_FATAL},
	{"missing REDIS_URL", "REDIS_URL", NULL, NULL, "REDIS_URL", 0, DEV_FATAL},
	{"missing DATABASE_URL", "DATABASE_URL", NULL, NULL, "DATABASE_URL", 0, DEV_FATAL},
	/* Malformed settings. */
	{"listen host name", "LISTEN_ADDR", "localhost:8080", NULL, "LISTEN_ADDR", 0, DEV_FATAL},
	{"listen no port", "LISTEN_ADDR", "127.0.0.1", NULL, "LISTEN_ADDR", 0, DEV_FATAL},
	{"listen port 0", "LISTEN_ADDR", "127.0.0.1:0", NULL, "LISTEN_ADDR", 0, DEV_FATAL},
	{"listen port too big", "LISTEN_ADDR", "127.0.0.1:70000", NULL, "LISTEN_ADDR", 0,
	 DEV_FATAL},
	{"listen bad brackets", "LISTEN_ADDR", "[::1:8080", NULL, "LISTEN_ADDR", 0, DEV_FATAL},
	{"listen trailing junk", "LISTEN_ADDR", "127.0.0.1:8080x", NULL, "LISTEN_ADDR", 0,
	 DEV_FATAL},
	{"pool size 0", "DATABASE_POOL_SIZE", "0", NULL, "DATABASE_POOL_SIZE", 0, DEV_FATAL},
	{"pool size 201", "DATABASE_POOL_SIZE", "201", NULL, "DATABASE_POOL_SIZE", 0, DEV_FATAL},
	{"pool size word", "DATABASE_POOL_SIZE", "eight", NULL, "DATABASE_POOL_SIZE", 0, DEV_FATAL},
	{"pool size negative", "DATABASE_POOL_SIZE", "-1", NULL, "DATABASE_POOL_SIZE", 0,
	 DEV_FATAL},
	{"pool size suffix", "DATABASE_POOL_SIZE", "8k", NULL, "DATABASE_POOL_SIZE", 0, DEV_FATAL},
	{"argon2 memory too low", "ARGON2_MEMORY_KIB", "4096", NULL, "ARGON2_MEMORY_KIB", 0,
	 DEV_FATAL},
	{"bad proxy CIDR", "TRUSTED_PROXY_CIDRS", "10.0.0.0/33", NULL, "TRUSTED_PROXY_CIDRS", 0,
	 DEV_FATAL},
	/* A proxy list that trusts everyone lets any client pick its address. */
	{"trust every IPv4", "TRUSTED_PROXY_CIDRS", "0.0.0.0/0", NULL, "TRUSTED_PROXY_CIDRS", 0,
	 DEV_WARN},
	{"trust every IPv6", "TRUSTED_PROXY_CIDRS", "127.0.0.1/32, ::/0", NULL,
	 "TRUSTED_PROXY_CIDRS", 0, DEV_WARN},
	{"trust every IPv4 in halves", "TRUSTED_PROXY_CIDRS", "0.0.0.0/1,128.0.0.0/1", NULL,
	 "TRUSTED_PROXY_CIDRS", 0, DEV_WARN},
	/* Database URLs: postgresql:// URIs libpq accepts. (URI-shaped values
	 * share their first characters with the message's example, so the
	 * leak check for them is test_database_url_never_echoed.) */
	{"database URL keyword form", "DATABASE_URL",
	 "host=db.internal dbname=breeze password=kw-pass-1", NULL, "DATABASE_URL", 1, DEV_FATAL},
	{"database URL garbage", "DATABASE_URL", "not a url at all", NULL, "DATABASE_URL", 1,
	 DEV_FATAL},
	{"database URL bad option", "DATABASE_URL",
	 "postgresql://breeze_app:uri-pass-2@127.0.0.1/breeze?nosuchoption=1", NULL, "DATABASE_URL",
	 0, DEV_FATAL},
	{"database URL other scheme", "DATABASE_URL",
	 "mysql://breeze_app:uri-pass-3@127.0.0.1/breeze", NULL, "DATABASE_URL", 0, DEV_FATAL},
	{"migration URL keyword form", "MIGRATION_DATABASE_URL",
	 "host=db user=breeze password=kw-4", NULL, "MIGRATION_DATABASE_URL", 1, DEV_FATAL},
	{"audit admin URL malformed", "AUDIT_ADMIN_DATABASE_URL",
	 "postgresql://admin:uri-pass-5@[::1/breeze", NULL, "AUDIT_ADMIN_DATABASE_URL", 0,
	 DEV_FATAL},
	{"missing audit admin URL", "AUDIT_ADMIN_DATABASE_URL", NULL, NULL,
	 "AUDIT_ADMIN_DATABASE_URL", 0, DEV_NOT_FATAL},
	{"audit signing key not hex", "AUDIT_SIGNING_KEY",
	 "Zq3v8Tn1Rx6Wm0Lk5Hj2Gf9Dd4Sa7Pb1Zq3v8Tn1Rx6Wm0Lk5Hj2Gf9Dd4Sa7Pb1", NULL,
	 "AUDIT_SIGNING_KEY", 1, DEV_FATAL},
	{"max connections 0", "HTTP_MAX_CONNECTIONS", "0", NULL, "HTTP_MAX_CONNECTIONS", 0,
	 DEV_FATAL},
	{"body limit too small", "HTTP_MAX_BODY_BYTES", "1023", NULL, "HTTP_MAX_BODY_BYTES", 0,
	 DEV_FATAL},
	{"session max age too big", "SESSION_MAX_AGE", "2592001", NULL, "SESSION_MAX_AGE", 0,
	 DEV_FATAL},
	{"per-IP limit word", "HTTP_MAX_CONNECTIONS_PER_IP", "many", NULL,
	 "HTTP_MAX_CONNECTIONS_PER_IP", 0, DEV_FATAL},
	/* Rate limits: COUNT/SECONDS, never off. */
	{"login limit without window", "RATE_LIMIT_LOGIN", "5", NULL, "RATE_LIMIT_LOGIN", 0,
	 DEV_FATAL},
	{"login limit zero", "RATE_LIMIT_LOGIN", "0/300", NULL, "RATE_LIMIT_LOGIN", 0, DEV_FATAL},
	{"API limit zero window", "RATE_LIMIT_API_USER", "100/0", NULL, "RATE_LIMIT_API_USER", 0,
	 DEV_FATAL},
	{"device limit spaces", "RATE_LIMIT_AGENT_DEVICE", "120 / 60", NULL,
	 "RATE_LIMIT_AGENT_DEVICE", 0, DEV_FATAL},
	{"org limit as a rule", "AGENT_ORG_RATE_LIMIT_PER_MIN", "600/60", NULL,
	 "AGENT_ORG_RATE_LIMIT_PER_MIN", 0, DEV_FATAL},
	{"org limit zero", "AGENT_ORG_RATE_LIMIT_PER_MIN", "0", NULL,
	 "AGENT_ORG_RATE_LIMIT_PER_MIN", 0, DEV_FATAL},
	{"enrol limit negative", "RATE_LIMIT_ENROLL", "-1/60", NULL, "RATE_LIMIT_ENROLL", 0,
	 DEV_FATAL},
	{"MFA limit window too long", "RATE_LIMIT_MFA", "10/86401", NULL, "RATE_LIMIT_MFA", 0,
	 DEV_FATAL},
	{"Redis-failure policy off", "RATE_LIMIT_ON_REDIS_FAILURE", "allow", NULL,
	 "RATE_LIMIT_ON_REDIS_FAILURE", 0, DEV_FATAL},
	{"rate-limit Redis budget zero", "RATE_LIMIT_REDIS_TIMEOUT_MS", "0", NULL,
	 "RATE_LIMIT_REDIS_TIMEOUT_MS", 0, DEV_FATAL},
};

/* Problem texts speak for themselves: no pointers to documents outside the
 * repository. */
static void assert_self_contained(const struct config_problems *p, const char *ctx)
{
	for (unsigned i = 0; i < p->n; i++)
		if (strstr(p->items[i].text, ".md") != NULL ||
		    strstr(p->items[i].text, "shared/") != NULL)
			fail_msg("%s: problem text points outside the repository: %s", ctx,
				 p->items[i].text);
}

/* Applies case C on top of the good configuration; returns the value set. */
static const char *apply(const struct bad_case *c)
{
	const char *v = c->value;

	if (c->copy_from != NULL)
		v = getenv(c->copy_from);
	if (v == NULL && c->copy_from == NULL)
		assert_int_equal(unsetenv(c->var), 0);
	else
		assert_int_equal(setenv(c->var, v, 1), 0);
	return v;
}

static void test_production_fatal_table(void **state)
{
	unsigned failures = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(*bad_cases); i++) {
		const struct bad_case *c = &bad_cases[i];
		struct config cfg;
		struct config_problems p;

		set_good_env("production");
		const char *v = apply(c);
		int rc = config_load(&cfg, CONFIG_FOR_SERVE, &p);
		if (rc != BZ_ERR_INVALID || p.n_fatal == 0 || !names_var(&p, c->names, 1)) {
			print_error(
				"production case \"%s\": rc=%d n_fatal=%u, want a fatal problem "
				"naming %s\n",
				c->name, rc, p.n_fatal, c->names);
			dump(&p);
			failures++;
		}
		if (c->is_secret)
			assert_not_leaked(&p, v, c->name);
		assert_no_good_secret_leaked(&p, c->name);
		assert_self_contained(&p, c->name);
	}
	assert_int_equal(failures, 0);
}

static void test_development_table(void **state)
{
	unsigned failures = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(*bad_cases); i++) {
		const struct bad_case *c = &bad_cases[i];
		struct config cfg;
		struct config_problems p;

		set_good_env("development");
		const char *v = apply(c);
		int rc = config_load(&cfg, CONFIG_FOR_SERVE, &p);
		int ok;
		switch (c->dev) {
		case DEV_WARN:
			ok = rc == 0 && p.n_fatal == 0 && p.n_warn > 0 &&
			     names_var(&p, c->names, 0);
			break;
		case DEV_NOT_FATAL:
			ok = rc == 0 && p.n_fatal == 0;
			break;
		default:
			ok = rc == BZ_ERR_INVALID && names_var(&p, c->names, 1);
			break;
		}
		if (!ok) {
			print_error("development case \"%s\": rc=%d n_fatal=%u n_warn=%u\n",
				    c->name, rc, p.n_fatal, p.n_warn);
			dump(&p);
			failures++;
		}
		if (c->is_secret)
			assert_not_leaked(&p, v, c->name);
		assert_no_good_secret_leaked(&p, c->name);
		assert_self_contained(&p, c->name);
	}
	assert_int_equal(failures, 0);
}

static void test_good_production(void **state)
{
	struct config cfg;
	struct config_problems p;

	(void)state;
	set_good_env("production");
	assert_int_equal(config_load(&cfg, CONFIG_FOR_SERVE, &p), 0);
	if (p.n != 0) {
		dump(&p);
		fail_msg("good production config reported %u problems", p.n);
	}
	assert_int_equal(p.n_fatal, 0);
	assert_int_equal(p.n_warn, 0);
	assert_int_equal(cfg.env, BREEZE_ENV_PRODUCTION);
	for (int s = 0; s < SECRET_COUNT; s++) {
		assert_non_null(cfg.secrets[s]);
		assert_string_equal(cfg.secrets[s], good_secret[s]);
	}
	assert_string_equal(cfg.redis_url, redis_url);
	assert_null(cfg.migration_database_url);
	/* Documented defaults. */
	assert_string_equal(cfg.listen_host, "127.0.0.1");
	assert_int_equal(cfg.listen_port, 8080);
	assert_int_equal(cfg.database_pool_size, 8);
	assert_int_equal(cfg.enable_registration, 0);
	assert_int_equal(cfg.session_max_age_s, 86400);
	assert_int_equal(cfg.session_idle_timeout_s, 28800);
	assert_int_equal(cfg.refresh_reuse_grace_s, 0);
	assert_int_equal(cfg.allowed_origins.n, 0);
	assert_int_equal(cfg.access_token_ttl_s, 900);
	assert_int_equal(cfg.heartbeat_interval_s, 60);
	assert_int_equal(cfg.agent_token_max_age_days, 30);
	assert_int_equal(cfg.trusted_proxies.n, 0);
	assert_int_equal(cfg.argon2_memory_kib, 19456);
	assert_int_equal(cfg.argon2_iterations, 2);
	assert_int_equal(cfg.argon2_parallelism, 1);
	assert_int_equal(cfg.http_max_body_bytes, 1048576);
	assert_int_equal(cfg.http_max_connections, 1024);
	assert_int_equal(cfg.http_timeout_s, 30);
	assert_int_equal(cfg.database_statement_timeout_ms, 10000);
	assert_int_equal(cfg.database_lock_timeout_ms, 3000);
	assert_int_equal(cfg.database_idle_in_transaction_timeout_ms, 20000);
	assert_int_equal(cfg.database_keepalive_idle_s, 30);
	assert_int_equal(cfg.database_keepalive_interval_s, 10);
	assert_int_equal(cfg.database_keepalive_count, 3);
	assert_int_equal(cfg.database_tcp_user_timeout_ms, 30000);
	assert_int_equal(cfg.database_request_deadline_ms, 15000);
}

/* The request deadline must end before the HTTP idle timeout, so a client
 * gets its 503 instead of a closed connection. */
static void test_request_deadline_below_http_timeout(void **state)
{
	struct config cfg;
	struct config_problems p;

	(void)state;
	set_good_env("development");
	assert_int_equal(setenv("DATABASE_LOCK_TIMEOUT_MS", "0", 1), 0);
	assert_int_equal(setenv("DATABASE_REQUEST_DEADLINE_MS", "29999", 1), 0);
	assert_int_equal(config_load(&cfg, CONFIG_FOR_SERVE, &p), 0);
	assert_int_equal(cfg.database_lock_timeout_ms, 0);
	assert_int_equal(setenv("DATABASE_REQUEST_DEADLINE_MS", "30000", 1), 0);
	assert_int_equal(config_load(&cfg, CONFIG_FOR_SERVE, &p), BZ_ERR_INVALID);
	assert_int_equal(p.n_fatal, 1);
	int found = 0;
	for (unsigned i = 0; i < p.n; i++)
		found |= p.items[i].fatal &&
			 strstr(p.items[i].text, "DATABASE_REQUEST_DEADLINE_MS");
	assert_true(found);
}

static void test_good_production_overrides(void **state)
{
	struct config cfg;
	struct config_problems p;

	(void)state;
	set_good_env("production");
	assert_int_equal(setenv("LISTEN_ADDR", "[::1]:9443", 1), 0);
	assert_int_equal(setenv("DATABASE_POOL_SIZE", "200", 1), 0);
	assert_int_equal(setenv("ENABLE_REGISTRATION", "false", 1), 0);
	assert_int_equal(setenv("TRUSTED_PROXY_CIDRS", "127.0.0.1/32, 10.0.0.0/8", 1), 0);
	assert_int_equal(config_load(&cfg, CONFIG_FOR_SERVE, &p), 0);
	assert_int_equal(p.n, 0);
	assert_string_equal(cfg.listen_host, "::1");
	assert_int_equal(cfg.listen_port, 9443);
	assert_int_equal(cfg.database_pool_size, 200);
	assert_int_equal(cfg.trusted_proxies.n, 2);
}

static void test_many_problems_reported_at_once(void **state)
{
	struct config cfg;
	struct config_problems p;

	(void)state;
	set_good_env("production");
	assert_int_equal(setenv("JWT_SECRET", "too-short-but-random-9f86d0", 1), 0);
	assert_int_equal(setenv("ENABLE_REGISTRATION", "true", 1), 0);
	assert_int_equal(setenv("LISTEN_ADDR", "localhost:8080", 1), 0);
	assert_int_equal(setenv("DATABASE_POOL_SIZE", "0", 1), 0);
	assert_int_equal(config_load(&cfg, CONFIG_FOR_SERVE, &p), BZ_ERR_INVALID);
	if (p.n_fatal < 3) {
		dump(&p);
		fail_msg("only %u fatal problems reported", p.n_fatal);
	}
	assert_true(names_var(&p, "JWT_SECRET", 1));
	assert_true(names_var(&p, "ENABLE_REGISTRATION", 1));
	assert_true(names_var(&p, "LISTEN_ADDR", 1));
	assert_true(names_var(&p, "DATABASE_POOL_SIZE", 1));
	assert_not_leaked(&p, "too-short-but-random-9f86d0", "many problems");
	assert_no_good_secret_leaked(&p, "many problems");
}

static void test_development_weak_secrets_warn(void **state)
{
	struct config cfg;
	struct config_problems p;

	(void)state;
	/* Unset BREEZE_ENV means development. */
	set_good_env("development");
	assert_int_equal(unsetenv("BREEZE_ENV"), 0);
	assert_int_equal(setenv("JWT_SECRET", "changeme-changeme-changeme-changeme", 1), 0);
	assert_int_equal(setenv("ENROLLMENT_KEY_PEPPER", A64, 1), 0);
	assert_int_equal(setenv("AGENT_ENROLLMENT_SECRET", "dev", 1), 0);
	assert_int_equal(setenv("APP_ENCRYPTION_KEY", good_secret[SECRET_MFA_ENCRYPTION_KEY], 1),
			 0);
	assert_int_equal(setenv("REDIS_URL", "redis://127.0.0.1:6379", 1), 0);
	assert_int_equal(config_load(&cfg, CONFIG_FOR_SERVE, &p), 0);
	assert_int_equal(cfg.env, BREEZE_ENV_DEVELOPMENT);
	assert_int_equal(p.n_fatal, 0);
	assert_true(p.n_warn >= 4);
	for (unsigned i = 0; i < p.n; i++)
		assert_int_equal(p.items[i].fatal, 0);
	assert_not_leaked(&p, "changeme-changeme-changeme-changeme", "dev");
	assert_not_leaked(&p, A64, "dev");
	assert_no_good_secret_leaked(&p, "dev");
}

static void test_unknown_environment(void **state)
{
	struct config cfg;
	struct config_problems p;

	(void)state;
	/* A typo must not silently fall back to the lenient development rules. */
	set_good_env("prod");
	assert_int_equal(config_load(&cfg, CONFIG_FOR_SERVE, &p), BZ_ERR_INVALID);
	assert_true(names_var(&p, "BREEZE_ENV", 1));
}

static void test_for_database(void **state)
{
	struct config cfg;
	struct config_problems p;

	(void)state;
	/* migrate/bootstrap need no application secrets. */
	clear_env();
	assert_int_equal(setenv("BREEZE_ENV", "production", 1), 0);
	assert_int_equal(setenv("DATABASE_URL", "postgresql://breeze_app@127.0.0.1/breeze", 1), 0);
	assert_int_equal(setenv("MIGRATION_DATABASE_URL", "postgresql://breeze@127.0.0.1/breeze",
				1),
			 0);
	assert_int_equal(config_load(&cfg, CONFIG_FOR_DATABASE, &p), 0);
	assert_int_equal(p.n, 0);
	assert_string_equal(cfg.migration_database_url, "postgresql://breeze@127.0.0.1/breeze");

	assert_int_equal(unsetenv("DATABASE_URL"), 0);
	assert_int_equal(config_load(&cfg, CONFIG_FOR_DATABASE, &p), BZ_ERR_INVALID);
	assert_true(names_var(&p, "DATABASE_URL", 1));

	/* The URLs are checked for migrate/bootstrap too; an empty one is unset. */
	assert_int_equal(setenv("DATABASE_URL", "dbname=breeze user=breeze_app", 1), 0);
	assert_int_equal(config_load(&cfg, CONFIG_FOR_DATABASE, &p), BZ_ERR_INVALID);
	assert_true(names_var(&p, "DATABASE_URL", 1));
	assert_int_equal(setenv("DATABASE_URL", "postgres://breeze_app@127.0.0.1/breeze", 1), 0);
	assert_int_equal(setenv("MIGRATION_DATABASE_URL", "", 1), 0);
	assert_int_equal(config_load(&cfg, CONFIG_FOR_DATABASE, &p), 0);
	assert_null(cfg.migration_database_url);
	/* Serve-only settings are not read: a bad one is no problem here. */
	assert_int_equal(setenv("HTTP_MAX_CONNECTIONS", "0", 1), 0);
	assert_int_equal(config_load(&cfg, CONFIG_FOR_DATABASE, &p), 0);
	assert_int_equal(p.n, 0);
}

static void test_database_url_never_echoed(void **state)
{
	static const char *const bad[] = {
		"postgresql://breeze_app:uri-pass-2@127.0.0.1/breeze?nosuchoption=1",
		"mysql://breeze_app:uri-pass-3@127.0.0.1/breeze",
		"postgresql://admin:uri-pass-5@[::1/breeze",
		"host=db.internal dbname=breeze password=uri-pass-6",
	};
	static const char *const vars[] = {"DATABASE_URL", "MIGRATION_DATABASE_URL",
					   "AUDIT_ADMIN_DATABASE_URL"};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
		for (size_t j = 0; j < sizeof(vars) / sizeof(*vars); j++) {
			struct config cfg;
			struct config_problems p;

			set_good_env("production");
			assert_int_equal(setenv(vars[j], bad[i], 1), 0);
			assert_int_equal(config_load(&cfg, CONFIG_FOR_SERVE, &p), BZ_ERR_INVALID);
			assert_true(names_var(&p, vars[j], 1));
			assert_not_leaked(&p, strstr(bad[i], "uri-pass"), vars[j]);
			assert_not_leaked(&p, "breeze_app", vars[j]);
			assert_not_leaked(&p, "db.internal", vars[j]);
			for (unsigned k = 0; k < p.n; k++)
				if (strncmp(p.items[k].text, vars[j], strlen(vars[j])) == 0 &&
				    strstr(p.items[k].text, "postgresql:// URI") == NULL)
					fail_msg("unexpected text: %s", p.items[k].text);
		}
}

/* HTTP_MAX_CONNECTIONS_PER_IP: on by default without a trusted proxy, off
 * behind one (every client shares its address), an explicit value kept
 * (warned about behind a proxy). */
static void test_per_ip_default_follows_trusted_proxies(void **state)
{
	struct config cfg;
	struct config_problems p;

	(void)state;
	set_good_env("production");
	assert_int_equal(config_load(&cfg, CONFIG_FOR_SERVE, &p), 0);
	assert_int_equal(cfg.http_max_connections_per_ip, 64);
	assert_int_equal(setenv("TRUSTED_PROXY_CIDRS", "10.0.0.0/8", 1), 0);
	assert_int_equal(config_load(&cfg, CONFIG_FOR_SERVE, &p), 0);
	assert_int_equal(cfg.http_max_connections_per_ip, 0);
	assert_int_equal(p.n_warn, 0);
	assert_int_equal(setenv("HTTP_MAX_CONNECTIONS_PER_IP", "16", 1), 0);
	assert_int_equal(config_load(&cfg, CONFIG_FOR_SERVE, &p), 0);
	assert_int_equal(cfg.http_max_connections_per_ip, 16);
	assert_int_equal(p.n_warn, 1);
	assert_non_null(strstr(p.items[0].text, "HTTP_MAX_CONNECTIONS_PER_IP"));
	assert_int_equal(unsetenv("TRUSTED_PROXY_CIDRS"), 0);
	assert_int_equal(setenv("HTTP_MAX_CONNECTIONS_PER_IP", "0", 1), 0);
	assert_int_equal(config_load(&cfg, CONFIG_FOR_SERVE, &p), 0);
	assert_int_equal(cfg.http_max_connections_per_ip, 0);
	assert_int_equal(setenv("HTTP_DRAIN_SECONDS", "0", 1), 0);
	assert_int_not_equal(config_load(&cfg, CONFIG_FOR_SERVE, &p), 0);
}

static void test_every_variable_documented_default(void **state)
{
	struct config cfg;
	struct config_problems p;

	(void)state;
	/* Development with only the required values: every default applies. */
	clear_env();
	assert_int_equal(setenv("DATABASE_URL", "postgresql://breeze_app@127.0.0.1/breeze", 1), 0);
	assert_int_equal(setenv("REDIS_URL", "redis://127.0.0.1:6379/0", 1), 0);
	for (int s = 0; s < SECRET_COUNT; s++)
		if (s == SECRET_JWT || s == SECRET_ENROLLMENT_KEY_PEPPER ||
		    s == SECRET_AGENT_ENROLLMENT_SECRET) {
			assert_int_equal(crypto_random_hex(32, good_secret[s]), 0);
			assert_int_equal(setenv(config_secret_name(s), good_secret[s], 1), 0);
		}
	assert_int_equal(config_load(&cfg, CONFIG_FOR_SERVE, &p), 0);
	if (p.n != 0) {
		dump(&p);
		fail_msg("minimal development config reported %u problems", p.n);
	}
	assert_int_equal(cfg.env, BREEZE_ENV_DEVELOPMENT);
	assert_null(cfg.secrets[SECRET_APP_ENCRYPTION_KEY]);
	assert_null(cfg.audit_admin_database_url);
	assert_int_equal(cfg.audit_retention_days, 365);
	assert_int_equal(cfg.audit_checkpoint_interval_s, 300);
	assert_int_equal(cfg.audit_retention_interval_s, 86400);
	assert_int_equal(cfg.argon2_max_concurrent, 4);
	/* No trusted proxy: clients connect directly, one address is limited. */
	assert_int_equal(cfg.http_max_connections_per_ip, CONFIG_PER_IP_DEFAULT);
	assert_int_equal(CONFIG_PER_IP_DEFAULT, 64);
	assert_int_equal(cfg.http_drain_s, 25);
	assert_int_equal(cfg.http_header_timeout_s, 10);
	assert_int_equal(cfg.access_token_ttl_s, 900);
	/* Rate limits: checklist R1–R5 and the table. */
	assert_int_equal(cfg.rate_login.limit, 5);
	assert_int_equal(cfg.rate_login.window_s, 300);
	assert_int_equal(cfg.rate_login_ip.limit, 20);
	assert_int_equal(cfg.rate_login_ip.window_s, 300);
	assert_int_equal(cfg.rate_api_user.limit, 100);
	assert_int_equal(cfg.rate_api_user.window_s, 60);
	assert_int_equal(cfg.rate_agent_device.limit, 120);
	assert_int_equal(cfg.rate_agent_device.window_s, 60);
	assert_int_equal(cfg.rate_agent_org.limit, 600);
	assert_int_equal(cfg.rate_agent_org.window_s, 60);
	assert_int_equal(cfg.rate_enroll.limit, 10);
	assert_int_equal(cfg.rate_enroll.window_s, 60);
	assert_int_equal(cfg.rate_mfa.limit, 10);
	assert_int_equal(cfg.rate_mfa.window_s, 300);
	assert_int_equal(cfg.rate_limit_on_redis_failure, RATELIMIT_FAIL_LOCAL);
	assert_int_equal(cfg.rate_limit_redis_timeout_ms, 100);

	/* Upper bounds are accepted exactly, one more is not. */
	assert_int_equal(setenv("HTTP_MAX_BODY_BYTES", "67108864", 1), 0);
	assert_int_equal(setenv("SESSION_MAX_AGE", "2592000", 1), 0);
	assert_int_equal(setenv("AUDIT_CHECKPOINT_INTERVAL_SECONDS", "0", 1), 0);
	assert_int_equal(config_load(&cfg, CONFIG_FOR_SERVE, &p), 0);
	assert_int_equal(cfg.http_max_body_bytes, 67108864);
	assert_int_equal(cfg.session_max_age_s, 2592000);
	assert_int_equal(cfg.audit_checkpoint_interval_s, 0);

	/* Rate limits as set. */
	assert_int_equal(setenv("RATE_LIMIT_LOGIN", "100000/86400", 1), 0);
	assert_int_equal(setenv("AGENT_ORG_RATE_LIMIT_PER_MIN", "1200", 1), 0);
	assert_int_equal(setenv("RATE_LIMIT_ON_REDIS_FAILURE", "deny", 1), 0);
	assert_int_equal(setenv("RATE_LIMIT_REDIS_TIMEOUT_MS", "10000", 1), 0);
	assert_int_equal(config_load(&cfg, CONFIG_FOR_SERVE, &p), 0);
	assert_int_equal(cfg.rate_limit_redis_timeout_ms, 10000);
	assert_int_equal(cfg.rate_login.limit, 100000);
	assert_int_equal(cfg.rate_login.window_s, 86400);
	assert_int_equal(cfg.rate_agent_org.limit, 1200);
	assert_int_equal(cfg.rate_agent_org.window_s, 60);
	assert_int_equal(cfg.rate_limit_on_redis_failure, RATELIMIT_FAIL_DENY);
}

static const struct {
	const char *value;
	int ok; /* 1: no problem expected */
} secret_cases[] = {
	{"", 0},
	{"short", 0},
	{"9f86d081884c7d659a2feaa0c55ad01", 0}, /* 31 characters */
	{A64, 0},
	{AB64, 0},
	{"changeme-changeme-changeme-changeme", 0},
	{"CHANGEME-9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15", 0},
	{"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", 1},
	{"Zq3v8Tn1Rx6Wm0Lk5Hj2Gf9Dd4Sa7Pb1", 1}, /* 32 mixed characters */
};

static void test_check_secret(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(secret_cases) / sizeof(*secret_cases); i++) {
		struct config_problems p;
		const char *v = secret_cases[i].value;

		memset(&p, 0, sizeof(p));
		int n = config_check_secret("TEST_SECRET", v, 1, &p);
		if (secret_cases[i].ok ? n != 0 : n < 1) {
			dump(&p);
			fail_msg("check_secret(%s) = %d", v, n);
		}
		assert_int_equal(p.n_fatal, (unsigned)n);
		assert_int_equal(p.n_warn, 0);
		assert_int_equal(p.n, (unsigned)n);
		for (unsigned j = 0; j < p.n; j++) {
			assert_int_equal(strncmp(p.items[j].text, "TEST_SECRET:", 12), 0);
			if (strlen(v) >= 4 && strstr(p.items[j].text, v) != NULL)
				fail_msg("leak: %s", p.items[j].text);
		}

		/* Non-fatal mode records the same problems as warnings. */
		memset(&p, 0, sizeof(p));
		assert_int_equal(config_check_secret("TEST_SECRET", v, 0, &p), n);
		assert_int_equal(p.n_fatal, 0);
		assert_int_equal(p.n_warn, (unsigned)n);
	}

	/* A freshly generated secret always passes. */
	for (int i = 0; i < 20; i++) {
		char hex[65];
		struct config_problems p;

		memset(&p, 0, sizeof(p));
		assert_int_equal(crypto_random_hex(32, hex), 0);
		assert_int_equal(config_check_secret("TEST_SECRET", hex, 1, &p), 0);
	}
}

static void test_entropy_bits(void **state)
{
	char hex[65];

	(void)state;
	assert_true(fabs(config_entropy_bits("")) < 1e-9);
	assert_true(fabs(config_entropy_bits("aaaa")) < 1e-9);
	assert_true(fabs(config_entropy_bits(A64)) < 1e-9);
	assert_true(fabs(config_entropy_bits("ab") - 2.0) < 1e-9);
	assert_true(fabs(config_entropy_bits("abcd") - 8.0) < 1e-9);
	assert_true(fabs(config_entropy_bits(AB64) - 64.0) < 1e-9);
	assert_true(fabs(config_entropy_bits("0123456789abcdef0123456789abcdef") - 128.0) < 1e-9);
	assert_int_equal(crypto_random_hex(32, hex), 0);
	assert_true(config_entropy_bits(hex) > 96.0);
}

static void test_secret_names(void **state)
{
	(void)state;
	assert_string_equal(config_secret_name(SECRET_JWT), "JWT_SECRET");
	assert_string_equal(config_secret_name(SECRET_APP_ENCRYPTION_KEY), "APP_ENCRYPTION_KEY");
	assert_string_equal(config_secret_name(SECRET_MFA_ENCRYPTION_KEY), "MFA_ENCRYPTION_KEY");
	assert_string_equal(config_secret_name(SECRET_METRICS_SCRAPE_TOKEN),
			    "METRICS_SCRAPE_TOKEN");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_production_fatal_table, setup, teardown),
		cmocka_unit_test_setup_teardown(test_development_table, setup, teardown),
		cmocka_unit_test_setup_teardown(test_good_production, setup, teardown),
		cmocka_unit_test_setup_teardown(test_good_production_overrides, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many_problems_reported_at_once, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_development_weak_secrets_warn, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_unknown_environment, setup, teardown),
		cmocka_unit_test_setup_teardown(test_for_database, setup, teardown),
		cmocka_unit_test_setup_teardown(test_database_url_never_echoed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_per_ip_default_follows_trusted_proxies, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_every_variable_documented_default, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_request_deadline_below_http_timeout, setup,
						teardown),
		cmocka_unit_test(test_check_secret),
		cmocka_unit_test(test_entropy_bits),
		cmocka_unit_test(test_secret_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
