#include "server/config.h"

#include <curl/curl.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <stddef.h>

#include "common/err.h"
#include "crypto/crypto.h"
#include "crypto/envelope.h"
#include "server/redis/redis.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char secret_name_SECRET_JWT[] = "JWT_SECRET";
static const char secret_name_SECRET_APP_ENCRYPTION_KEY[] = "APP_ENCRYPTION_KEY";
static const char secret_name_SECRET_MFA_ENCRYPTION_KEY[] = "MFA_ENCRYPTION_KEY";
static const char secret_name_SECRET_MFA_RECOVERY_CODE_PEPPER[] = "MFA_RECOVERY_CODE_PEPPER";
static const char secret_name_SECRET_ENROLLMENT_KEY_PEPPER[] = "ENROLLMENT_KEY_PEPPER";
static const char secret_name_SECRET_AGENT_ENROLLMENT_SECRET[] = "AGENT_ENROLLMENT_SECRET";
static const char secret_name_SECRET_METRICS_SCRAPE_TOKEN[] = "METRICS_SCRAPE_TOKEN";
static const char secret_name_SECRET_AUDIT_SIGNING_KEY[] = "AUDIT_SIGNING_KEY";
static const char secret_name_SECRET_MFA_ENCRYPTION_KEY_PREVIOUS[] = "MFA_ENCRYPTION_KEY_PREVIOUS";

static const char *const secret_names[SECRET_COUNT] = {
	secret_name_SECRET_JWT,
	secret_name_SECRET_APP_ENCRYPTION_KEY,
	secret_name_SECRET_MFA_ENCRYPTION_KEY,
	secret_name_SECRET_MFA_RECOVERY_CODE_PEPPER,
	secret_name_SECRET_ENROLLMENT_KEY_PEPPER,
	secret_name_SECRET_AGENT_ENROLLMENT_SECRET,
	secret_name_SECRET_METRICS_SCRAPE_TOKEN,
	secret_name_SECRET_AUDIT_SIGNING_KEY,
	secret_name_SECRET_MFA_ENCRYPTION_KEY_PREVIOUS,
};

/* Values from docs, examples and tutorials that must never reach
 * production (S1). Compared case-insensitively as substrings. */
static const char *known_examples[] = {
	"changeme",   "change-me", "change_me",	 "example", "your-secret", "your_secret",
	"yoursecret", "secret",	   "password",	 "default", "placeholder", "replace",
	"insecure",   "breeze",	   "0123456789", "qwerty",  "letmein",	   "test",
};

const char *config_secret_name(enum config_secret s)
{
	return secret_names[s];
}

static void problem(struct config_problems *p, int fatal, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void problem(struct config_problems *p, int fatal, const char *fmt, ...)
{
	va_list ap;

	if (fatal)
		p->n_fatal++;
	else
		p->n_warn++;
	if (p->n >= CONFIG_MAX_PROBLEMS)
		return;
	p->items[p->n].fatal = fatal;
	va_start(ap, fmt);
	vsnprintf(p->items[p->n].text, CONFIG_PROBLEM_LEN, fmt, ap);
	va_end(ap);
	p->n++;
}

double config_entropy_bits(const char *s)
{
	size_t counts[256] = {0};
	size_t n = strlen(s);
	double h = 0;

	if (n == 0)
		return 0;
	for (size_t i = 0; i < n; i++)
		counts[(unsigned char)s[i]]++;
	for (int c = 0; c < 256; c++) {
		if (counts[c] == 0)
			continue;
		double q = (double)counts[c] / (double)n;
		h -= q * log2(q);
	}
	return h * (double)n;
}

int config_check_secret(const char *name, const char *value, int fatal,
			struct config_problems *probs)
{
	int found = 0;
	size_t len = strlen(value);

	if (len < 32) {
		problem(probs, fatal, "%s: must be at least 32 characters (S4)", name);
		found++;
	}
	for (size_t i = 0; i < sizeof(known_examples) / sizeof(*known_examples); i++) {
		if (strcasestr(value, known_examples[i]) != NULL) {
			problem(probs, fatal,
				"%s: looks like an example or default value; generate one with "
				"`breeze-server gen-secrets` (S1)",
				name);
			found++;
			break;
		}
	}
	/* 32 random bytes as hex carry ~128 bits by this estimate; 96 bits
	 * catches repeated or patterned strings while accepting any real one. */
	if (len >= 32 && config_entropy_bits(value) < 96.0) {
		problem(probs, fatal, "%s: value has too little entropy to be random (S1)", name);
		found++;
	}
	return found;
}

/*
 * The variables, one row each, read in this order. Every rule about a
 * single variable lives in its row; only rules between variables (S5 and
 * secret reuse) are written out in config_load().
 */
enum var_type {
	VAR_ENV,       /* BREEZE_ENV: development (default), test, production */
	VAR_UINT,      /* decimal integer in [min, max] */
	VAR_BOOL,      /* true/false, 1/0, yes/no */
	VAR_PG_URL,    /* postgresql:// URI, checked with libpq's PQconninfoParse */
	VAR_REDIS_URL, /* redis://[:password@]host:port[/db] (redis_url_parse) */
	VAR_LISTEN,    /* IP:PORT or [IPv6]:PORT */
	VAR_CIDRS,     /* comma-separated CIDR list */
	VAR_SECRET,    /* one of enum config_secret; S1/S4 checked */
	VAR_SEED_HEX,  /* a secret that must also be 64 hex characters (Ed25519 seed) */
	VAR_ORIGINS,   /* comma-separated web origins (config_origin_normalize) */
	VAR_KEY_HEX,   /* a secret that must also be 64 hex characters (AES-256 key) */
	VAR_RATE,      /* COUNT/SECONDS (ratelimit_rule_parse) */
	VAR_RATE_MIN,  /* a count per minute: COUNT/60 */
	VAR_RATE_FAIL, /* local or deny */
	VAR_PATH,      /* an absolute file-system path */
	VAR_SSRF,      /* SSRF_ALLOWLIST (ssrf_policy_parse) */
	VAR_STRING,    /* borrowed as is; checked with the variables it goes with */
};

enum var_need {
	NEED_OPTIONAL,
	NEED_ALWAYS,	 /* missing or empty: fatal everywhere */
	NEED_PRODUCTION, /* missing or empty: fatal in production */
};

/* Extra rule applied in production (fatal there, a warning elsewhere
 * unless noted). */
enum var_prod_rule {
	PROD_NONE,
	PROD_FALSE,	     /* a boolean that must be off (A3) */
	PROD_TRUE,	     /* a boolean that must be on; its default there is true */
	PROD_REDIS_PASSWORD, /* Redis must require a password (N4); nothing elsewhere */
	PROD_STRONG_SECRET,  /* S1/S4 */
	PROD_NARROW_CIDRS,   /* must not trust every IPv4 or IPv6 address */
};

struct var {
	const char *name;
	enum var_type type;
	int serve_only; /* not read for CONFIG_FOR_DATABASE */
	enum var_need need;
	const char *need_hint; /* text after "NAME: required" */
	const char *def;       /* default for VAR_UINT/VAR_BOOL/VAR_LISTEN */
	unsigned long min, max;
	enum var_prod_rule prod;
	size_t off;  /* offset of the field in struct config */
	size_t size; /* its size, for integers */
};

/* WEB_ROOT's default, the dashboard built in the source tree (CMake sets
 * it: -DBREEZE_WEB_ROOT_DEFAULT=… for an installed copy). */
#ifndef BREEZE_WEB_ROOT_DEFAULT
#define BREEZE_WEB_ROOT_DEFAULT "/usr/share/breeze/web"
#endif

#define F(field) offsetof(struct config, field), sizeof(((struct config *)0)->field)
#define GEN_HINT "; generate with `breeze-server gen-secrets`"
#define SECRET_ROW(s, type, need)                                                                  \
	{                                                                                          \
		secret_name_##s, type, 1, need, GEN_HINT, NULL, 0, 0, PROD_STRONG_SECRET,          \
			F(secrets[s])                                                              \
	}

static const struct var vars[] = {
	{"BREEZE_ENV", VAR_ENV, 0, NEED_OPTIONAL, NULL, "development", 0, 0, PROD_NONE, F(env)},
	{"DATABASE_URL", VAR_PG_URL, 0, NEED_ALWAYS, " (postgresql://user:password@host:port/db)",
	 NULL, 0, 0, PROD_NONE, F(database_url)},
	{"MIGRATION_DATABASE_URL", VAR_PG_URL, 0, NEED_OPTIONAL, NULL, NULL, 0, 0, PROD_NONE,
	 F(migration_database_url)},
	{"AUDIT_ADMIN_DATABASE_URL", VAR_PG_URL, 0, NEED_OPTIONAL, NULL, NULL, 0, 0, PROD_NONE,
	 F(audit_admin_database_url)},
	{"AUDIT_RETENTION_DAYS", VAR_UINT, 0, NEED_OPTIONAL, NULL, "365", 1, 36500, PROD_NONE,
	 F(audit_retention_days)},
	{"DATABASE_POOL_SIZE", VAR_UINT, 0, NEED_OPTIONAL, NULL, "8", 1, 200, PROD_NONE,
	 F(database_pool_size)},
	{"ARGON2_MEMORY_KIB", VAR_UINT, 0, NEED_OPTIONAL, NULL, "19456", 8192, 4UL * 1024 * 1024,
	 PROD_NONE, F(argon2_memory_kib)},
	{"ARGON2_ITERATIONS", VAR_UINT, 0, NEED_OPTIONAL, NULL, "2", 1, 64, PROD_NONE,
	 F(argon2_iterations)},
	{"ARGON2_PARALLELISM", VAR_UINT, 0, NEED_OPTIONAL, NULL, "1", 1, 16, PROD_NONE,
	 F(argon2_parallelism)},
	{"ARGON2_MAX_CONCURRENT", VAR_UINT, 0, NEED_OPTIONAL, NULL, "4", 1, 256, PROD_NONE,
	 F(argon2_max_concurrent)},

	/* Below: serve only. */
	{"REDIS_URL", VAR_REDIS_URL, 1, NEED_ALWAYS, " (redis://:password@host:port/0)", NULL, 0, 0,
	 PROD_REDIS_PASSWORD, F(redis_url)},
	{"LISTEN_ADDR", VAR_LISTEN, 1, NEED_OPTIONAL, NULL, "127.0.0.1:8080", 0, 0, PROD_NONE,
	 F(listen_host)},
	SECRET_ROW(SECRET_JWT, VAR_SECRET, NEED_ALWAYS),
	SECRET_ROW(SECRET_APP_ENCRYPTION_KEY, VAR_KEY_HEX, NEED_PRODUCTION),
	/* Checked with APP_ENCRYPTION_KEY by check_keyring(). */
	{"APP_ENCRYPTION_KEY_ID", VAR_STRING, 1, NEED_OPTIONAL, NULL, NULL, 0, 0, PROD_NONE,
	 F(app_encryption_key_id)},
	{"APP_ENCRYPTION_KEYRING", VAR_STRING, 1, NEED_OPTIONAL, NULL, NULL, 0, 0, PROD_NONE,
	 F(app_encryption_keyring)},
	SECRET_ROW(SECRET_MFA_ENCRYPTION_KEY, VAR_KEY_HEX, NEED_PRODUCTION),
	SECRET_ROW(SECRET_MFA_ENCRYPTION_KEY_PREVIOUS, VAR_KEY_HEX, NEED_OPTIONAL),
	SECRET_ROW(SECRET_MFA_RECOVERY_CODE_PEPPER, VAR_SECRET, NEED_PRODUCTION),
	SECRET_ROW(SECRET_ENROLLMENT_KEY_PEPPER, VAR_SECRET, NEED_ALWAYS),
	SECRET_ROW(SECRET_AGENT_ENROLLMENT_SECRET, VAR_SECRET, NEED_ALWAYS),
	SECRET_ROW(SECRET_METRICS_SCRAPE_TOKEN, VAR_SECRET, NEED_PRODUCTION),
	SECRET_ROW(SECRET_AUDIT_SIGNING_KEY, VAR_SEED_HEX, NEED_PRODUCTION),
	{"ENABLE_REGISTRATION", VAR_BOOL, 1, NEED_OPTIONAL, NULL, "false", 0, 0, PROD_FALSE,
	 F(enable_registration)},
	{"SESSION_COOKIE_SECURE", VAR_BOOL, 1, NEED_OPTIONAL, NULL, "false", 0, 0, PROD_TRUE,
	 F(session_cookie_secure)},
	{"SESSION_MAX_AGE", VAR_UINT, 1, NEED_OPTIONAL, NULL, "86400", 300, 30UL * 86400, PROD_NONE,
	 F(session_max_age_s)},
	{"SESSION_IDLE_TIMEOUT", VAR_UINT, 1, NEED_OPTIONAL, NULL, "28800", 0, 30UL * 86400,
	 PROD_NONE, F(session_idle_timeout_s)},
	{"REFRESH_REUSE_GRACE_SECONDS", VAR_UINT, 1, NEED_OPTIONAL, NULL, "0", 0, 60, PROD_NONE,
	 F(refresh_reuse_grace_s)},
	{"ALLOWED_ORIGINS", VAR_ORIGINS, 1, NEED_OPTIONAL, NULL, NULL, 0, 0, PROD_NONE,
	 F(allowed_origins)},
	{"WEB_ROOT", VAR_PATH, 1, NEED_OPTIONAL, NULL, BREEZE_WEB_ROOT_DEFAULT, 0, 0, PROD_NONE,
	 F(web_root)},
	{"HEARTBEAT_INTERVAL_SECONDS", VAR_UINT, 1, NEED_OPTIONAL, NULL, "60", 5, 3600, PROD_NONE,
	 F(heartbeat_interval_s)},
	{"HEARTBEAT_GROUP_COMMIT", VAR_BOOL, 1, NEED_OPTIONAL, NULL, "true", 0, 0, PROD_NONE,
	 F(heartbeat_group_commit)},
	{"HEARTBEAT_QUEUE_MAX", VAR_UINT, 1, NEED_OPTIONAL, NULL, "10000", 1, 1000000, PROD_NONE,
	 F(heartbeat_queue_max)},
	{"AGENT_TOKEN_MAX_AGE_DAYS", VAR_UINT, 1, NEED_OPTIONAL, NULL, "30", 1, 3650, PROD_NONE,
	 F(agent_token_max_age_days)},
	{"AGENT_IP_CHANGE_DEDUP_SECONDS", VAR_UINT, 1, NEED_OPTIONAL, NULL, "86400", 0,
	 30UL * 86400, PROD_NONE, F(agent_ip_change_dedup_s)},
	{"AUDIT_CHECKPOINT_INTERVAL_SECONDS", VAR_UINT, 1, NEED_OPTIONAL, NULL, "300", 0, 86400,
	 PROD_NONE, F(audit_checkpoint_interval_s)},
	{"AUDIT_VERIFY_INTERVAL_SECONDS", VAR_UINT, 1, NEED_OPTIONAL, NULL, "86400", 0, 604800,
	 PROD_NONE, F(audit_verify_interval_s)},
	{"AUDIT_RETENTION_INTERVAL_SECONDS", VAR_UINT, 1, NEED_OPTIONAL, NULL, "86400", 0,
	 7UL * 86400, PROD_NONE, F(audit_retention_interval_s)},
	{"TRUSTED_PROXY_CIDRS", VAR_CIDRS, 1, NEED_OPTIONAL, NULL, NULL, 0, 0, PROD_NARROW_CIDRS,
	 F(trusted_proxies)},
	{"HTTP_MAX_BODY_BYTES", VAR_UINT, 1, NEED_OPTIONAL, NULL, "1048576", 1024,
	 64UL * 1024 * 1024, PROD_NONE, F(http_max_body_bytes)},
	{"HTTP_MAX_CONNECTIONS", VAR_UINT, 1, NEED_OPTIONAL, NULL, "1024", 8, 65536, PROD_NONE,
	 F(http_max_connections)},
	{"HTTP_WORKER_THREADS", VAR_UINT, 1, NEED_OPTIONAL, NULL, "64", 2, 1024, PROD_NONE,
	 F(http_worker_threads)},
	{"HTTP_MAX_CONNECTIONS_PER_IP", VAR_UINT, 1, NEED_OPTIONAL, NULL, "0", 0, 65536, PROD_NONE,
	 F(http_max_connections_per_ip)},
	{"HTTP_TIMEOUT_SECONDS", VAR_UINT, 1, NEED_OPTIONAL, NULL, "30", 1, 3600, PROD_NONE,
	 F(http_timeout_s)},
	/* Drain and connections. */
	{"HTTP_DRAIN_SECONDS", VAR_UINT, 1, NEED_OPTIONAL, NULL, "25", 1, 600, PROD_NONE,
	 F(http_drain_s)},
	{"HTTP_HEADER_TIMEOUT_SECONDS", VAR_UINT, 1, NEED_OPTIONAL, NULL, "10", 1, 600, PROD_NONE,
	 F(http_header_timeout_s)},
	/* Deadlines of pooled database connections. */
	{"DATABASE_STATEMENT_TIMEOUT_MS", VAR_UINT, 1, NEED_OPTIONAL, NULL, "10000", 0, 3600000,
	 PROD_NONE, F(database_statement_timeout_ms)},
	{"DATABASE_LOCK_TIMEOUT_MS", VAR_UINT, 1, NEED_OPTIONAL, NULL, "3000", 0, 3600000,
	 PROD_NONE, F(database_lock_timeout_ms)},
	{"DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS", VAR_UINT, 1, NEED_OPTIONAL, NULL, "20000", 0,
	 3600000, PROD_NONE, F(database_idle_in_transaction_timeout_ms)},
	{"DATABASE_KEEPALIVE_IDLE_SECONDS", VAR_UINT, 1, NEED_OPTIONAL, NULL, "30", 1, 7200,
	 PROD_NONE, F(database_keepalive_idle_s)},
	{"DATABASE_KEEPALIVE_INTERVAL_SECONDS", VAR_UINT, 1, NEED_OPTIONAL, NULL, "10", 1, 600,
	 PROD_NONE, F(database_keepalive_interval_s)},
	{"DATABASE_KEEPALIVE_COUNT", VAR_UINT, 1, NEED_OPTIONAL, NULL, "3", 1, 100, PROD_NONE,
	 F(database_keepalive_count)},
	{"DATABASE_TCP_USER_TIMEOUT_MS", VAR_UINT, 1, NEED_OPTIONAL, NULL, "30000", 0, 3600000,
	 PROD_NONE, F(database_tcp_user_timeout_ms)},
	{"DATABASE_REQUEST_DEADLINE_MS", VAR_UINT, 1, NEED_OPTIONAL, NULL, "15000", 100, 600000,
	 PROD_NONE, F(database_request_deadline_ms)},
	/* Rate limits (issue 9): defaults from checklist R1–R5. */
	{"RATE_LIMIT_LOGIN", VAR_RATE, 1, NEED_OPTIONAL, NULL, "5/300", 0, 0, PROD_NONE,
	 F(rate_login)},
	{"RATE_LIMIT_LOGIN_IP", VAR_RATE, 1, NEED_OPTIONAL, NULL, "20/300", 0, 0, PROD_NONE,
	 F(rate_login_ip)},
	{"RATE_LIMIT_API_USER", VAR_RATE, 1, NEED_OPTIONAL, NULL, "100/60", 0, 0, PROD_NONE,
	 F(rate_api_user)},
	{"RATE_LIMIT_AGENT_DEVICE", VAR_RATE, 1, NEED_OPTIONAL, NULL, "120/60", 0, 0, PROD_NONE,
	 F(rate_agent_device)},
	{"AGENT_ORG_RATE_LIMIT_PER_MIN", VAR_RATE_MIN, 1, NEED_OPTIONAL, NULL, "600", 1,
	 RATELIMIT_MAX_LIMIT, PROD_NONE, F(rate_agent_org)},
	{"RATE_LIMIT_ENROLL", VAR_RATE, 1, NEED_OPTIONAL, NULL, "10/60", 0, 0, PROD_NONE,
	 F(rate_enroll)},
	{"RATE_LIMIT_MFA", VAR_RATE, 1, NEED_OPTIONAL, NULL, "10/300", 0, 0, PROD_NONE,
	 F(rate_mfa)},
	{"RATE_LIMIT_WEBHOOK_TEST", VAR_RATE, 1, NEED_OPTIONAL, NULL, "20/600", 0, 0, PROD_NONE,
	 F(rate_webhook_test)},
	{"RATE_LIMIT_ON_REDIS_FAILURE", VAR_RATE_FAIL, 1, NEED_OPTIONAL, NULL, "local", 0, 0,
	 PROD_NONE, F(rate_limit_on_redis_failure)},
	{"RATE_LIMIT_REDIS_TIMEOUT_MS", VAR_UINT, 1, NEED_OPTIONAL, NULL, "100", 10, 10000,
	 PROD_NONE, F(rate_limit_redis_timeout_ms)},
	/* Outbound requests (issue 12; docs/outbound.md, docs/webhooks.md). */
	{"SSRF_ALLOWLIST", VAR_SSRF, 1, NEED_OPTIONAL, NULL, NULL, 0, 0, PROD_NONE,
	 F(ssrf_allowlist)},
	{"WEBHOOK_WORKER_INTERVAL_MS", VAR_UINT, 1, NEED_OPTIONAL, NULL, "2000", 0, 600000,
	 PROD_NONE, F(webhook_worker_interval_ms)},
	{"WEBHOOK_WORKER_THREADS", VAR_UINT, 1, NEED_OPTIONAL, NULL, "4", 1, 32, PROD_NONE,
	 F(webhook_worker_threads)},
	{"WEBHOOK_ORG_MAX_IN_FLIGHT", VAR_UINT, 1, NEED_OPTIONAL, NULL, "1", 1, 32, PROD_NONE,
	 F(webhook_org_max_in_flight)},
	/* Metrics history and liveness (issue 13 §3; docs/architecture.md). */
	{"METRICS_RETENTION_DAYS", VAR_UINT, 0, NEED_OPTIONAL, NULL, "30", 1, 3650, PROD_NONE,
	 F(metrics_retention_days)},
	{"METRICS_MAINTENANCE_INTERVAL_SECONDS", VAR_UINT, 1, NEED_OPTIONAL, NULL, "3600", 0, 86400,
	 PROD_NONE, F(metrics_maintenance_interval_s)},
	{"DEVICE_SWEEP_INTERVAL_SECONDS", VAR_UINT, 1, NEED_OPTIONAL, NULL, "30", 0, 3600,
	 PROD_NONE, F(device_sweep_interval_s)},
};

/* Stores X in the integer field of V (int, unsigned, uint32_t, int64_t or
 * size_t; every range in the table fits each of them). */
static void store_uint(struct config *cfg, const struct var *v, unsigned long x)
{
	char *field = (char *)cfg + v->off;

	if (v->size == sizeof(uint32_t)) {
		uint32_t y = (uint32_t)x;
		memcpy(field, &y, sizeof(y));
	} else {
		uint64_t y = (uint64_t)x;
		memcpy(field, &y, sizeof(y));
	}
}

static int parse_uint(const struct var *v, const char *s, unsigned long *out)
{
	char *end;

	errno = 0;
	unsigned long x = strtoul(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || x < v->min || x > v->max)
		return BZ_ERR_INVALID;
	*out = x;
	return 0;
}

static int parse_bool(const char *s, int *out)
{
	if (!strcasecmp(s, "true") || !strcmp(s, "1") || !strcasecmp(s, "yes")) {
		*out = 1;
		return 0;
	}
	if (!strcasecmp(s, "false") || !strcmp(s, "0") || !strcasecmp(s, "no")) {
		*out = 0;
		return 0;
	}
	return BZ_ERR_INVALID;
}

static int parse_listen(struct config *cfg, const char *v)
{
	char buf[96];

	if (strlen(v) >= sizeof(buf))
		return BZ_ERR_INVALID;
	memcpy(buf, v, strlen(v) + 1);
	char *colon = strrchr(buf, ':');
	if (colon == NULL)
		return BZ_ERR_INVALID;
	*colon = '\0';
	char *host = buf, *end;
	if (*host == '[') {
		size_t hl = strlen(host);
		if (hl < 3 || host[hl - 1] != ']')
			return BZ_ERR_INVALID;
		host[hl - 1] = '\0';
		host++;
	}
	errno = 0;
	unsigned long port = strtoul(colon + 1, &end, 10);
	if (errno || *end || end == colon + 1 || port == 0 || port > 65535)
		return BZ_ERR_INVALID;
	if (strlen(host) >= sizeof(cfg->listen_host) || !client_ip_is_literal(host))
		return BZ_ERR_INVALID;
	memcpy(cfg->listen_host, host, strlen(host) + 1);
	cfg->listen_port = (uint16_t)port;
	return 0;
}

/*
 * 0 if S is a PostgreSQL connection URI that libpq accepts
 * (PQconninfoParse). The keyword=value form is refused too: one form
 * everywhere keeps the documentation, the checks and the operators' files
 * alike. libpq's error text may quote the value, so it is dropped.
 */
static int check_pg_url(const char *s)
{
	char *err = NULL;
	PQconninfoOption *opts;

	if (strncmp(s, "postgresql://", 13) != 0 && strncmp(s, "postgres://", 11) != 0)
		return BZ_ERR_INVALID;
	opts = PQconninfoParse(s, &err);
	if (err != NULL)
		PQfreemem(err);
	if (opts == NULL)
		return BZ_ERR_INVALID;
	PQconninfoFree(opts);
	return 0;
}

int config_origin_normalize(const char *in, char *out, size_t outlen)
{
	char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL, *x = NULL;
	CURLU *u = curl_url();
	int rc = BZ_ERR_INVALID;

	if (u == NULL || in == NULL || strlen(in) >= CONFIG_ORIGIN_LEN ||
	    curl_url_set(u, CURLUPART_URL, in, 0) != CURLUE_OK)
		goto out;
	if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || host[0] == '\0')
		goto out;
	/* An origin is scheme, host and port only (RFC 6454 §6.1). */
	if (curl_url_get(u, CURLUPART_USER, &x, 0) == CURLUE_OK ||
	    curl_url_get(u, CURLUPART_QUERY, &x, 0) == CURLUE_OK ||
	    curl_url_get(u, CURLUPART_FRAGMENT, &x, 0) == CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK || strcmp(path, "/") != 0 ||
	    in[strlen(in) - 1] == '/')
		goto out;
	curl_url_get(u, CURLUPART_PORT, &port, 0); /* NULL: none given */
	int dflt = port != NULL && ((!strcmp(scheme, "http") && !strcmp(port, "80")) ||
				    (!strcmp(scheme, "https") && !strcmp(port, "443")));
	int n = snprintf(out, outlen, "%s://%s%s%s", scheme, host, port && !dflt ? ":" : "",
			 port && !dflt ? port : "");
	if (n < 0 || (size_t)n >= outlen)
		goto out;
	for (char *c = out; *c; c++)
		*c = (char)tolower((unsigned char)*c);
	rc = 0;
out:
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_free(path);
	curl_free(x);
	curl_url_cleanup(u);
	if (rc != 0 && outlen > 0)
		out[0] = '\0';
	return rc;
}

/* Parses the comma-separated origins S into O. Returns 0 or BZ_ERR_INVALID. */
static int parse_origins(const char *s, struct config_origins *o)
{
	char item[CONFIG_ORIGIN_LEN];

	o->n = 0;
	while (*s) {
		size_t len = strcspn(s, ",");
		if (len == 0 || len >= sizeof(item) || o->n == CONFIG_ORIGINS_MAX)
			return BZ_ERR_INVALID;
		memcpy(item, s, len);
		item[len] = '\0';
		if (config_origin_normalize(item, o->v[o->n], sizeof(o->v[o->n])) != 0)
			return BZ_ERR_INVALID;
		o->n++;
		s += len;
		if (*s == ',' && *++s == '\0')
			return BZ_ERR_INVALID;
	}
	return 0;
}

/* The rate-limit rows: a rule ("5/300", or a count per minute) or the
 * Redis-down policy. */
static void load_rate(struct config *cfg, const struct var *v, const char *s,
		      struct config_problems *p)
{
	char *field = (char *)cfg + v->off;
	struct ratelimit_rule r;
	enum ratelimit_on_failure f;
	const char *why = NULL;
	unsigned long x;

	if (v->type == VAR_RATE_FAIL) {
		if (ratelimit_on_failure_parse(s, &f) != 0)
			problem(p, 1, "%s: must be local or deny", v->name);
		else
			memcpy(field, &f, sizeof(f));
		return;
	}
	if (v->type == VAR_RATE_MIN) {
		if (parse_uint(v, s, &x) != 0) {
			problem(p, 1, "%s: must be a count per minute between %lu and %lu", v->name,
				v->min, v->max);
			return;
		}
		r.limit = (uint32_t)x;
		r.window_s = 60;
	} else if (ratelimit_rule_parse(s, &r, &why) != 0) {
		problem(p, 1, "%s: %s", v->name, why);
		return;
	}
	memcpy(field, &r, sizeof(r));
}

/* The URL rows (VAR_PG_URL, VAR_REDIS_URL): stored as given (borrowed),
 * checked with libpq's and the Redis URL parser; production Redis needs a
 * password (N4). */
static void load_url(struct config *cfg, const struct var *v, const char *s, int prod,
		     struct config_problems *p)
{
	char *field = (char *)cfg + v->off;
	struct redis_target rt;

	memcpy(field, &s, sizeof(s));
	if (v->type == VAR_PG_URL) {
		if (check_pg_url(s) != 0)
			problem(p, 1,
				"%s: must be a postgresql:// URI accepted by libpq "
				"(postgresql://user:password@host:port/db)",
				v->name);
		return;
	}
	if (redis_url_parse(s, &rt) != 0)
		problem(p, 1, "%s: must be redis://[:password@]host:port[/db]", v->name);
	else if (prod && v->prod == PROD_REDIS_PASSWORD && rt.password[0] == '\0')
		problem(p, 1, "%s: production Redis must require a password (N4)", v->name);
	crypto_wipe(&rt, sizeof(rt));
}

/* TRUSTED_PROXY_CIDRS: at most 32 CIDRs; trusting every address is fatal in
 * production (a warning elsewhere). */
static void load_cidrs(struct config *cfg, const struct var *v, const char *s, int prod,
		       struct config_problems *p)
{
	if (cidr_list_parse(s, &cfg->trusted_proxies) != 0) {
		problem(p, 1,
			"%s: must be a comma-separated list of CIDRs (at most 32), e.g. "
			"127.0.0.1/32,10.0.0.0/8",
			v->name);
		return;
	}
	if (v->prod == PROD_NARROW_CIDRS && (cidr_list_covers_all(&cfg->trusted_proxies, AF_INET) ||
					     cidr_list_covers_all(&cfg->trusted_proxies, AF_INET6)))
		problem(p, prod,
			"%s: trusts every IPv4 or IPv6 address, so any client could choose "
			"the address recorded for it; list only the proxies' own addresses",
			v->name);
}

/* Applies row V to the value S (never NULL or empty here). */
static void load_var(struct config *cfg, const struct var *v, const char *s, int prod,
		     struct config_problems *p)
{
	char *field = (char *)cfg + v->off;
	unsigned long x;
	int b;

	switch (v->type) {
	case VAR_ENV:
		/* Read before every other row; see config_load(). */
		break;
	case VAR_UINT:
		if (parse_uint(v, s, &x) != 0)
			problem(p, 1, "%s: must be an integer between %lu and %lu", v->name, v->min,
				v->max);
		else
			store_uint(cfg, v, x);
		break;
	case VAR_BOOL:
		if (parse_bool(s, &b) != 0) {
			problem(p, 1, "%s: must be true or false", v->name);
			break;
		}
		memcpy(field, &b, sizeof(b));
		if (b && v->prod == PROD_FALSE)
			problem(p, prod, "%s: must be false in production (A3)", v->name);
		if (!b && v->prod == PROD_TRUE && prod)
			problem(p, 1, "%s: must be true in production", v->name);
		break;
	case VAR_PG_URL:
	case VAR_REDIS_URL:
		load_url(cfg, v, s, prod, p);
		break;
	case VAR_LISTEN:
		if (parse_listen(cfg, s) != 0)
			problem(p, 1, "%s: must be IP:PORT (e.g. 127.0.0.1:8080 or [::1]:8080)",
				v->name);
		break;
	case VAR_CIDRS:
		load_cidrs(cfg, v, s, prod, p);
		break;
	case VAR_RATE:
	case VAR_RATE_MIN:
	case VAR_RATE_FAIL:
		load_rate(cfg, v, s, p);
		break;
	case VAR_SECRET:
	case VAR_SEED_HEX:
	case VAR_KEY_HEX:
		memcpy(field, &s, sizeof(s));
		if (v->prod == PROD_STRONG_SECRET)
			config_check_secret(v->name, s, prod, p);
		if (v->type != VAR_SECRET &&
		    (strlen(s) != 64 || strspn(s, "0123456789abcdefABCDEF") != 64))
			problem(p, 1, "%s: must be 64 hex characters (%s)", v->name,
				v->type == VAR_SEED_HEX ? "an Ed25519 seed" : "a 256-bit key");
		break;
	case VAR_STRING:
		memcpy(field, &s, sizeof(s));
		break;
	case VAR_PATH:
		memcpy(field, &s, sizeof(s));
		if (s[0] != '/' || strlen(s) >= CONFIG_PATH_MAX)
			problem(p, 1, "%s: must be an absolute path (at most %d bytes)", v->name,
				CONFIG_PATH_MAX - 1);
		break;
	case VAR_SSRF: {
		char why[160];
		if (ssrf_policy_parse(s, &cfg->ssrf_allowlist, why, sizeof(why)) != 0)
			problem(p, 1, "%s: %s", v->name, why);
		break;
	}
	case VAR_ORIGINS:
		if (parse_origins(s, (struct config_origins *)(void *)field) != 0)
			problem(p, 1,
				"%s: must be a comma-separated list of at most %d origins, e.g. "
				"https://rmm.example.com",
				v->name, CONFIG_ORIGINS_MAX);
		break;
	}
}

/* BREEZE_ENV decides what is fatal, so it is read first. */
static void load_env(struct config *cfg, const struct var *v, struct config_problems *p)
{
	const char *env = getenv(v->name);

	if (env == NULL || *env == '\0')
		env = v->def;
	if (!strcmp(env, "development"))
		cfg->env = BREEZE_ENV_DEVELOPMENT;
	else if (!strcmp(env, "test"))
		cfg->env = BREEZE_ENV_TEST;
	else if (!strcmp(env, "production"))
		cfg->env = BREEZE_ENV_PRODUCTION;
	else
		problem(p, 1, "%s: must be development, test or production", v->name);
}

/*
 * HTTP_MAX_CONNECTIONS_PER_IP when unset: CONFIG_PER_IP_DEFAULT without a
 * trusted proxy (clients connect directly, so one address must not take
 * every connection), off behind one (every client shares its address). A
 * limit set behind a proxy is kept but warned about.
 */
static void per_ip_default(struct config *cfg, struct config_problems *p)
{
	const char *s = getenv("HTTP_MAX_CONNECTIONS_PER_IP");

	if (s == NULL || *s == '\0') {
		cfg->http_max_connections_per_ip =
			cfg->trusted_proxies.n == 0 ? CONFIG_PER_IP_DEFAULT : 0;
		return;
	}
	if (cfg->trusted_proxies.n > 0 && cfg->http_max_connections_per_ip > 0)
		problem(p, 0,
			"HTTP_MAX_CONNECTIONS_PER_IP: limits each proxy in TRUSTED_PROXY_CIDRS, "
			"not each client (all clients share the proxy's address)");
}

/* 1 if secret S is a 64-hex key equal to one of KR's keys. */
static int secret_in_ring(const char *s, const struct crypto_keyring *kr)
{
	struct crypto_aead_key k;
	int found = 0;

	if (s == NULL || crypto_aead_key_from_hex(s, &k) != 0)
		return 0;
	for (size_t i = 0; i < kr->n; i++)
		found |= crypto_ct_equal(k.key, sizeof(k.key), kr->k[i].key, sizeof(k.key));
	crypto_aead_key_wipe(&k);
	return found;
}

/* APP_ENCRYPTION_KEY_ID and APP_ENCRYPTION_KEYRING (crypto_keyring_load's
 * rules; fatal everywhere), and S5 for the previous keys as well: none may
 * be another secret's value. Without APP_ENCRYPTION_KEY they are unused. */
static void check_keyring(const struct config *cfg, int prod, struct config_problems *p)
{
	struct crypto_keyring kr;
	const char *why = NULL;
	const char *app = cfg->secrets[SECRET_APP_ENCRYPTION_KEY];

	if (app == NULL) {
		if (cfg->app_encryption_key_id != NULL || cfg->app_encryption_keyring != NULL)
			problem(p, 1, "APP_ENCRYPTION_KEYRING: set without APP_ENCRYPTION_KEY");
		return;
	}
	if (strlen(app) != 64 || strspn(app, "0123456789abcdefABCDEF") != 64)
		return; /* APP_ENCRYPTION_KEY's own row reported it */
	if (crypto_keyring_load(&kr, app, cfg->app_encryption_key_id, cfg->app_encryption_keyring,
				&why) != 0) {
		problem(p, 1, "%s: %s",
			cfg->app_encryption_key_id != NULL &&
					!crypto_env_key_id_valid(cfg->app_encryption_key_id)
				? "APP_ENCRYPTION_KEY_ID"
				: "APP_ENCRYPTION_KEYRING",
			why != NULL ? why : "invalid");
		return;
	}
	for (int s = 0; s < SECRET_COUNT; s++)
		if (s != SECRET_APP_ENCRYPTION_KEY && secret_in_ring(cfg->secrets[s], &kr))
			problem(p, prod, "APP_ENCRYPTION_KEYRING: must differ from %s (S5)",
				secret_names[s]);
	crypto_keyring_wipe(&kr);
}

int config_load(struct config *cfg, enum config_purpose purpose, struct config_problems *p)
{
	memset(cfg, 0, sizeof(*cfg));
	memset(p, 0, sizeof(*p));
	for (size_t i = 0; i < sizeof(vars) / sizeof(*vars); i++)
		if (vars[i].type == VAR_ENV)
			load_env(cfg, &vars[i], p);
	int prod = cfg->env == BREEZE_ENV_PRODUCTION;

	for (size_t i = 0; i < sizeof(vars) / sizeof(*vars); i++) {
		const struct var *v = &vars[i];
		const char *s = getenv(v->name);

		if (v->type == VAR_ENV || (purpose == CONFIG_FOR_DATABASE && v->serve_only))
			continue;
		if (s == NULL || *s == '\0') {
			if (v->need == NEED_ALWAYS || (v->need == NEED_PRODUCTION && prod)) {
				problem(p, 1, "%s: required%s", v->name,
					v->need_hint ? v->need_hint : "");
				continue;
			}
			if (v->def == NULL)
				continue; /* optional and unset: the field stays NULL/0 */
			s = v->prod == PROD_TRUE && prod ? "true" : v->def;
		}
		load_var(cfg, v, s, prod, p);
	}
	cfg->access_token_ttl_s = 900; /* fixed: not configurable (see auth_jwt_verify) */
	if (purpose == CONFIG_FOR_DATABASE)
		return p->n_fatal ? BZ_ERR_INVALID : 0;

	/* S5: the application encryption key is used for nothing else. */
	const char *app = cfg->secrets[SECRET_APP_ENCRYPTION_KEY];
	if (app != NULL) {
		for (int s = 0; s < SECRET_COUNT; s++) {
			if (s == SECRET_APP_ENCRYPTION_KEY || cfg->secrets[s] == NULL)
				continue;
			if (strcmp(app, cfg->secrets[s]) == 0)
				problem(p, prod, "APP_ENCRYPTION_KEY: must differ from %s (S5)",
					secret_names[s]);
		}
	}
	check_keyring(cfg, prod, p);
	/* Reusing any other secret for two purposes is the same mistake. */
	for (int a = 0; a < SECRET_COUNT; a++)
		for (int b = a + 1; b < SECRET_COUNT; b++)
			if (a != SECRET_APP_ENCRYPTION_KEY && b != SECRET_APP_ENCRYPTION_KEY &&
			    cfg->secrets[a] && cfg->secrets[b] &&
			    strcmp(cfg->secrets[a], cfg->secrets[b]) == 0)
				problem(p, prod, "%s: must differ from %s", secret_names[b],
					secret_names[a]);
	if (prod && cfg->audit_admin_database_url == NULL)
		problem(p, 1,
			"AUDIT_ADMIN_DATABASE_URL: required in production for audit retention (L5)");
	per_ip_default(cfg, p);
	/* A request must get its 503 before the client's idle timeout. */
	if ((unsigned long)cfg->database_request_deadline_ms >= cfg->http_timeout_s * 1000UL)
		problem(p, 1, "DATABASE_REQUEST_DEADLINE_MS: must be below HTTP_TIMEOUT_SECONDS");
	return p->n_fatal ? BZ_ERR_INVALID : 0;
}

int config_load_report(struct config *cfg, enum config_purpose purpose, FILE *err)
{
	struct config_problems *probs = calloc(1, sizeof(*probs));
	int rc;

	if (probs == NULL) {
		fprintf(err, "breeze-server: out of memory\n");
		return BZ_ERR_NOMEM;
	}
	rc = config_load(cfg, purpose, probs);
	for (unsigned i = 0; i < probs->n; i++)
		fprintf(err, "breeze-server: config %s: %s\n",
			probs->items[i].fatal ? "error" : "warning", probs->items[i].text);
	if (probs->n_fatal + probs->n_warn > probs->n)
		fprintf(err, "breeze-server: config: %u more problems not shown\n",
			probs->n_fatal + probs->n_warn - probs->n);
	if (rc != 0)
		fprintf(err, "breeze-server: refusing to start: %u configuration error(s)\n",
			probs->n_fatal);
	free(probs);
	return rc;
}
