/*
 * config.h — server configuration from environment variables (optionally
 * loaded from --env-file first). Validated once at start: every problem is
 * reported at once, one line each, naming the variable and never its value.
 */
#ifndef BZ_CONFIG_H
#define BZ_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/client_ip.h"
#include "server/outbound/ssrf.h"
#include "server/ratelimit/rule.h"

enum breeze_env { BREEZE_ENV_DEVELOPMENT, BREEZE_ENV_TEST, BREEZE_ENV_PRODUCTION };

/* The secrets the server knows, in a fixed order (checklist S1). */
enum config_secret {
	SECRET_JWT,
	SECRET_APP_ENCRYPTION_KEY,
	SECRET_MFA_ENCRYPTION_KEY,
	SECRET_MFA_RECOVERY_CODE_PEPPER,
	SECRET_ENROLLMENT_KEY_PEPPER,
	SECRET_AGENT_ENROLLMENT_SECRET,
	SECRET_METRICS_SCRAPE_TOKEN,
	SECRET_AUDIT_SIGNING_KEY, /* Ed25519 seed, 64 hex chars (L4 checkpoints) */
	/* The MFA key before the last rotation: opens TOTP secrets not yet
	 * re-sealed under MFA_ENCRYPTION_KEY. Optional; not generated. */
	SECRET_MFA_ENCRYPTION_KEY_PREVIOUS,
	SECRET_COUNT
};

/* Variable name of secret S (e.g. "JWT_SECRET"). */
const char *config_secret_name(enum config_secret s);

/* Browser origins trusted to call the cookie routes (ALLOWED_ORIGINS),
 * each normalized by config_origin_normalize(). */
#define CONFIG_ORIGINS_MAX 8
#define CONFIG_PATH_MAX 1024 /* bytes of a path variable (WEB_ROOT), with the NUL */
#define CONFIG_ORIGIN_LEN 256
struct config_origins {
	unsigned n;
	char v[CONFIG_ORIGINS_MAX][CONFIG_ORIGIN_LEN];
};

struct config {
	enum breeze_env env;
	char listen_host[64];
	uint16_t listen_port;
	const char *database_url;	      /* borrowed from environ */
	const char *migration_database_url;   /* borrowed; may be NULL */
	const char *redis_url;		      /* borrowed */
	const char *audit_admin_database_url; /* borrowed; NULL disables the retention worker */
	int audit_retention_days;	      /* default for organizations without their own, 365 */
	int audit_checkpoint_interval_s;   /* signed checkpoints every N s, default 300; 0 = off */
	int audit_retention_interval_s;	   /* retention pass every N s, default 86400; 0 = off */
	const char *secrets[SECRET_COUNT]; /* borrowed; NULL when unset */
	/* APP_ENCRYPTION_KEY_ID names APP_ENCRYPTION_KEY (NULL: its 8-hex
	 * fingerprint); APP_ENCRYPTION_KEYRING holds previous keys for
	 * decryption only, "id:hex,id:hex" (crypto/envelope.h,
	 * docs/encryption.md). Both borrowed; checked by crypto_keyring_load. */
	const char *app_encryption_key_id;
	const char *app_encryption_keyring;
	unsigned database_pool_size;	       /* connections, 1..200, default 8 */
	int enable_registration;	       /* 0/1, default 0 */
	int session_cookie_secure;	       /* 0/1: __Host- cookies, Secure; 1 in production */
	int64_t session_max_age_s;	       /* absolute session lifetime, default 86400 (A5) */
	int64_t session_idle_timeout_s;	       /* unused session dies, default 28800; 0 = off */
	int refresh_reuse_grace_s;	       /* 0..60, default 0 (strict reuse detection, A7) */
	struct config_origins allowed_origins; /* ALLOWED_ORIGINS, normalized */
	/* WEB_ROOT: the built dashboard (index.html, assets/), an absolute
	 * path; borrowed. Default: BREEZE_WEB_ROOT_DEFAULT, set by CMake to
	 * the source tree's web/dist. Checked at serve start (a warning). */
	const char *web_root;
	int64_t access_token_ttl_s; /* 900 (15 min), fixed */
	int heartbeat_interval_s;   /* default 60 */
	/* HEARTBEAT_GROUP_COMMIT (default on): plain heartbeats are written in batches of
	 * one statement each (agents/heartbeat_batch.c), answered after their
	 * batch committed; at most HEARTBEAT_QUEUE_MAX (default 10000) wait,
	 * beyond that 503 heartbeat_queue_full. */
	int heartbeat_group_commit;
	unsigned heartbeat_queue_max;
	int agent_token_max_age_days; /* rotation asked past it, default 30 (G2) */
	/* AGENT_IP_CHANGE_DEDUP_SECONDS, 0..30 days, default 86400: at most one
	 * agent.source.ip.changed per device and new address in this (G7) */
	int agent_ip_change_dedup_s;
	struct cidr_list trusted_proxies;
	uint32_t argon2_memory_kib, argon2_iterations, argon2_parallelism, argon2_max_concurrent;
	size_t http_max_body_bytes;    /* default 1 MiB */
	unsigned http_max_connections; /* default 1024 */
	/* HTTP_WORKER_THREADS, 2..1024, default 64: route handlers running at
	 * once (the event loop suspends the rest until a worker is free). */
	unsigned http_worker_threads;
	/* 0 = unlimited; unset: CONFIG_PER_IP_DEFAULT without TRUSTED_PROXY_CIDRS,
	 * 0 behind a proxy (all clients share its address) */
	unsigned http_max_connections_per_ip;
	unsigned http_timeout_s;	/* idle connection timeout, default 30 */
	unsigned http_drain_s;		/* SIGTERM drain bound in seconds, default 25 */
	unsigned http_header_timeout_s; /* request line + headers deadline, default 10 */
	/* Deadlines of pooled database connections (struct db_options). */
	int database_statement_timeout_ms;	     /* default 10000; 0 = off */
	int database_lock_timeout_ms;		     /* default 3000; 0 = off */
	int database_idle_in_transaction_timeout_ms; /* default 20000; 0 = off */
	int database_keepalive_idle_s;		     /* default 30 */
	int database_keepalive_interval_s;	     /* default 10 */
	int database_keepalive_count;		     /* default 3 */
	int database_tcp_user_timeout_ms;	     /* default 30000; 0 = system default */
	int database_request_deadline_ms;	     /* pool wait + queries, default 15000 */
	/* Sliding-window limits (issue 9; docs/rate-limiting.md), COUNT/SECONDS. */
	struct ratelimit_rule rate_login;	 /* RATE_LIMIT_LOGIN, 5/300 (R1) */
	struct ratelimit_rule rate_login_ip;	 /* RATE_LIMIT_LOGIN_IP, 20/300 */
	struct ratelimit_rule rate_api_user;	 /* RATE_LIMIT_API_USER, 100/60 (R2) */
	struct ratelimit_rule rate_agent_device; /* RATE_LIMIT_AGENT_DEVICE, 120/60 (R3) */
	struct ratelimit_rule rate_agent_org;	 /* AGENT_ORG_RATE_LIMIT_PER_MIN, 600/60 (R4) */
	struct ratelimit_rule rate_enroll;	 /* RATE_LIMIT_ENROLL, 10/60 (R5) */
	struct ratelimit_rule rate_mfa;		 /* RATE_LIMIT_MFA, 10/300 */
	struct ratelimit_rule rate_webhook_test; /* RATE_LIMIT_WEBHOOK_TEST, 20/600 */
	enum ratelimit_on_failure rate_limit_on_redis_failure; /* local (default) or deny */
	/* RATE_LIMIT_REDIS_TIMEOUT_MS, 10..10000, default 100: Redis budget of
	 * one check (connect, pool wait, command), then the check falls back. */
	int rate_limit_redis_timeout_ms;
	/* SSRF_ALLOWLIST: internal destinations outbound requests may reach
	 * (docs/outbound.md); empty = the default block list only. */
	struct ssrf_policy ssrf_allowlist;
	/* WEBHOOK_WORKER_INTERVAL_MS, 0..600000, default 2000: how often the
	 * delivery worker looks for due webhook deliveries; 0 = no worker. */
	int webhook_worker_interval_ms;
	/* WEBHOOK_WORKER_THREADS, 1..32, default 4: delivery senders per
	 * instance (each with its own database connection). */
	int webhook_worker_threads;
	/* WEBHOOK_ORG_MAX_IN_FLIGHT, 1..32, default 1: deliveries of one
	 * organization being sent at once, over all instances. */
	int webhook_org_max_in_flight;
	/* AUDIT_VERIFY_INTERVAL_SECONDS, 0..604800, default 86400: how often
	 * serve's worker verifies every audit chain; 0 = never. */
	int audit_verify_interval_s;
	/* Metrics history and liveness (src/server/agents/liveness_worker.c):
	 * METRICS_RETENTION_DAYS, 1..3650, default 30: days of device_metrics
	 * kept (whole day partitions); METRICS_MAINTENANCE_INTERVAL_SECONDS,
	 * 0..86400, default 3600: partition maintenance period of `serve`;
	 * DEVICE_SWEEP_INTERVAL_SECONDS, 0..3600, default 30: offline sweep
	 * period of `serve`. 0 = not run by this instance. */
	int metrics_retention_days;
	int metrics_maintenance_interval_s;
	int device_sweep_interval_s;
};

/* Connections per client address when HTTP_MAX_CONNECTIONS_PER_IP is unset
 * and no trusted proxy is configured. */
#define CONFIG_PER_IP_DEFAULT 64

#define CONFIG_MAX_PROBLEMS 64
#define CONFIG_PROBLEM_LEN 200

struct config_problems {
	unsigned n_fatal, n_warn;
	unsigned n;
	struct {
		int fatal;
		char text[CONFIG_PROBLEM_LEN];
	} items[CONFIG_MAX_PROBLEMS];
};

/* What the caller needs from the configuration. */
enum config_purpose {
	CONFIG_FOR_SERVE,    /* everything */
	CONFIG_FOR_DATABASE, /* migrate/bootstrap: database URLs only */
};

/*
 * Reads the configuration from the environment into CFG and records every
 * problem in PROBS. Rules: S1 (no known example values, no low-entropy
 * secrets), S4 (secrets at least 32 characters), S5 (APP_ENCRYPTION_KEY
 * distinct from MFA_ENCRYPTION_KEY and every other secret), A3 (registration
 * off in production). In production those are fatal; elsewhere warnings.
 * Missing required values are always fatal, and so are malformed values
 * (database URLs must be postgresql:// URIs that libpq's PQconninfoParse
 * accepts). TRUSTED_PROXY_CIDRS covering every IPv4 or IPv6 address is
 * fatal in production, a warning elsewhere. Every variable is one row of a
 * table in config.c (name, type, range, default, production rule). An empty
 * value counts as unset. Returns 0 when nothing is fatal, BZ_ERR_INVALID
 * otherwise. CFG borrows strings from the environment.
 */
int config_load(struct config *cfg, enum config_purpose purpose, struct config_problems *probs);

/*
 * config_load() for command-line use: writes every problem to ERR, one
 * line each ("breeze-server: config error: NAME: …"; names, never values),
 * and a closing line when something is fatal. Returns config_load()'s
 * result, or BZ_ERR_NOMEM.
 */
int config_load_report(struct config *cfg, enum config_purpose purpose, FILE *err);

/*
 * Checks one secret VALUE named NAME for S1/S4 and records problems
 * (FATAL selects fatal vs warning). Exposed for unit tests. Returns the
 * number of problems found (0 = fine).
 */
int config_check_secret(const char *name, const char *value, int fatal,
			struct config_problems *probs);

/*
 * Normalizes the web origin IN (RFC 6454 §7: "scheme://host[:port]", as a
 * browser sends it in the Origin header) into OUT (OUTLEN bytes, at most
 * CONFIG_ORIGIN_LEN): scheme http or https, host lower-cased, the port
 * left out when it is the scheme's default. Parsed with libcurl's URL
 * parser; user info, a path other than none, a query or a fragment make
 * it no origin. Returns 0 or BZ_ERR_INVALID ("null" is no origin either).
 */
int config_origin_normalize(const char *in, char *out, size_t outlen);

/* Estimated entropy of S in bits (Shannon entropy of its character
 * distribution times its length). Used for the low-entropy rule (S1). */
double config_entropy_bits(const char *s);

#endif
