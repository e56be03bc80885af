#include "server/config.h"

#include "crypto/crypto.h"
#include "server/redis/redis.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *secret_names[SECRET_COUNT] = {
	"JWT_SECRET",
	"APP_ENCRYPTION_KEY",
	"MFA_ENCRYPTION_KEY",
	"MFA_RECOVERY_CODE_PEPPER",
	"ENROLLMENT_KEY_PEPPER",
	"AGENT_ENROLLMENT_SECRET",
	"METRICS_SCRAPE_TOKEN",
	"AUDIT_SIGNING_KEY",
};

/* Values from docs, examples and tutorials that must never reach
 * production (S1). Compared case-insensitively as substrings. */
static const char *known_examples[] = {
	"changeme", "change-me", "change_me", "example", "your-secret", "your_secret",
	"yoursecret", "secret", "password", "default", "placeholder", "replace",
	"insecure", "breeze", "0123456789", "qwerty", "letmein", "test",
};

const char *config_secret_name(enum config_secret s) { return secret_names[s]; }

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

static int parse_uint(const char *name, const char *def, unsigned long min, unsigned long max,
		      unsigned long *out, struct config_problems *p)
{
	const char *v = getenv(name);
	char *end;

	if (v == NULL || *v == '\0')
		v = def;
	errno = 0;
	unsigned long x = strtoul(v, &end, 10);
	if (errno != 0 || end == v || *end != '\0' || v[0] == '-' || x < min || x > max) {
		problem(p, 1, "%s: must be an integer between %lu and %lu", name, min, max);
		return -1;
	}
	*out = x;
	return 0;
}

static int parse_bool(const char *name, int def, int *out, struct config_problems *p)
{
	const char *v = getenv(name);

	if (v == NULL || *v == '\0') {
		*out = def;
		return 0;
	}
	if (!strcasecmp(v, "true") || !strcmp(v, "1") || !strcasecmp(v, "yes")) {
		*out = 1;
		return 0;
	}
	if (!strcasecmp(v, "false") || !strcmp(v, "0") || !strcasecmp(v, "no")) {
		*out = 0;
		return 0;
	}
	problem(p, 1, "%s: must be true or false", name);
	return -1;
}

static void parse_listen(struct config *cfg, struct config_problems *p)
{
	const char *v = getenv("LISTEN_ADDR");
	char buf[96];

	if (v == NULL || *v == '\0')
		v = "127.0.0.1:8080";
	if (strlen(v) >= sizeof(buf))
		goto bad;
	memcpy(buf, v, strlen(v) + 1);
	char *colon = strrchr(buf, ':');
	if (colon == NULL)
		goto bad;
	*colon = '\0';
	char *host = buf, *end;
	if (*host == '[') {
		size_t hl = strlen(host);
		if (hl < 3 || host[hl - 1] != ']')
			goto bad;
		host[hl - 1] = '\0';
		host++;
	}
	errno = 0;
	unsigned long port = strtoul(colon + 1, &end, 10);
	if (errno || *end || end == colon + 1 || port == 0 || port > 65535)
		goto bad;
	if (strlen(host) >= sizeof(cfg->listen_host) || !client_ip_is_literal(host))
		goto bad;
	memcpy(cfg->listen_host, host, strlen(host) + 1);
	cfg->listen_port = (uint16_t)port;
	return;
bad:
	problem(p, 1, "LISTEN_ADDR: must be IP:PORT (e.g. 127.0.0.1:8080 or [::1]:8080)");
}

int config_load(struct config *cfg, enum config_purpose purpose, struct config_problems *p)
{
	unsigned long x;
	const char *env = getenv("BREEZE_ENV");

	memset(cfg, 0, sizeof(*cfg));
	memset(p, 0, sizeof(*p));
	if (env == NULL || *env == '\0' || !strcmp(env, "development"))
		cfg->env = BREEZE_ENV_DEVELOPMENT;
	else if (!strcmp(env, "test"))
		cfg->env = BREEZE_ENV_TEST;
	else if (!strcmp(env, "production"))
		cfg->env = BREEZE_ENV_PRODUCTION;
	else
		problem(p, 1, "BREEZE_ENV: must be development, test or production");
	int prod = cfg->env == BREEZE_ENV_PRODUCTION;

	cfg->database_url = getenv("DATABASE_URL");
	cfg->migration_database_url = getenv("MIGRATION_DATABASE_URL");
	cfg->redis_url = getenv("REDIS_URL");
	cfg->audit_admin_database_url = getenv("AUDIT_ADMIN_DATABASE_URL");
	if (cfg->audit_admin_database_url && *cfg->audit_admin_database_url == '\0')
		cfg->audit_admin_database_url = NULL;
	if (!parse_uint("AUDIT_RETENTION_DAYS", "365", 1, 36500, &x, p))
		cfg->audit_retention_days = (int)x;
	if (cfg->database_url == NULL || *cfg->database_url == '\0')
		problem(p, 1, "DATABASE_URL: required (postgresql://user:password@host:port/db)");
	if (!parse_uint("DATABASE_POOL_SIZE", "8", 1, 200, &x, p))
		cfg->database_pool_size = (unsigned)x;
	if (!parse_uint("ARGON2_MEMORY_KIB", "19456", 8192, 4UL * 1024 * 1024, &x, p))
		cfg->argon2_memory_kib = (uint32_t)x;
	if (!parse_uint("ARGON2_ITERATIONS", "2", 1, 64, &x, p))
		cfg->argon2_iterations = (uint32_t)x;
	if (!parse_uint("ARGON2_PARALLELISM", "1", 1, 16, &x, p))
		cfg->argon2_parallelism = (uint32_t)x;
	if (!parse_uint("ARGON2_MAX_CONCURRENT", "4", 1, 256, &x, p))
		cfg->argon2_max_concurrent = (uint32_t)x;
	if (purpose == CONFIG_FOR_DATABASE)
		return p->n_fatal ? -1 : 0;

	if (cfg->redis_url == NULL || *cfg->redis_url == '\0')
		problem(p, 1, "REDIS_URL: required (redis://:password@host:port/0)");
	else {
		struct redis_target rt;
		if (redis_url_parse(cfg->redis_url, &rt) != 0)
			problem(p, 1, "REDIS_URL: must be redis://[:password@]host:port[/db]");
		else if (prod && rt.password[0] == '\0')
			problem(p, 1, "REDIS_URL: production Redis must require a password (N4)");
		crypto_wipe(&rt, sizeof(rt));
	}

	parse_listen(cfg, p);

	/* Secrets: present, strong (S1, S4), and distinct (S5). */
	for (int s = 0; s < SECRET_COUNT; s++) {
		const char *v = getenv(secret_names[s]);
		cfg->secrets[s] = (v != NULL && *v != '\0') ? v : NULL;
		int required = prod || s == SECRET_JWT || s == SECRET_ENROLLMENT_KEY_PEPPER ||
			       s == SECRET_AGENT_ENROLLMENT_SECRET;
		if (cfg->secrets[s] == NULL) {
			if (required)
				problem(p, 1, "%s: required; generate with `breeze-server gen-secrets`",
					secret_names[s]);
			continue;
		}
		config_check_secret(secret_names[s], cfg->secrets[s], prod, p);
	}
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
	/* Reusing any other secret for two purposes is the same mistake. */
	for (int a = 0; a < SECRET_COUNT; a++)
		for (int b = a + 1; b < SECRET_COUNT; b++)
			if (a != SECRET_APP_ENCRYPTION_KEY && b != SECRET_APP_ENCRYPTION_KEY &&
			    cfg->secrets[a] && cfg->secrets[b] &&
			    strcmp(cfg->secrets[a], cfg->secrets[b]) == 0)
				problem(p, prod, "%s: must differ from %s", secret_names[b],
					secret_names[a]);

	if (!parse_bool("ENABLE_REGISTRATION", 0, &cfg->enable_registration, p) &&
	    cfg->enable_registration)
		problem(p, prod, "ENABLE_REGISTRATION: must be false in production (A3)");
	if (!parse_uint("SESSION_MAX_AGE", "86400", 300, 30UL * 86400, &x, p))
		cfg->session_max_age_s = (int64_t)x;
	cfg->access_token_ttl_s = 900;
	if (!parse_uint("HEARTBEAT_INTERVAL_SECONDS", "60", 5, 3600, &x, p))
		cfg->heartbeat_interval_s = (int)x;

	if (!parse_uint("AUDIT_CHECKPOINT_INTERVAL_SECONDS", "300", 0, 86400, &x, p))
		cfg->audit_checkpoint_interval_s = (int)x;
	if (!parse_uint("AUDIT_RETENTION_INTERVAL_SECONDS", "86400", 0, 7UL * 86400, &x, p))
		cfg->audit_retention_interval_s = (int)x;
	const char *sk = cfg->secrets[SECRET_AUDIT_SIGNING_KEY];
	if (sk != NULL && (strlen(sk) != 64 || strspn(sk, "0123456789abcdefABCDEF") != 64))
		problem(p, 1, "AUDIT_SIGNING_KEY: must be 64 hex characters (an Ed25519 seed)");
	if (prod && cfg->audit_admin_database_url == NULL)
		problem(p, 1, "AUDIT_ADMIN_DATABASE_URL: required in production for audit retention (L5)");

	const char *tp = getenv("TRUSTED_PROXY_CIDRS");
	if (tp != NULL && *tp != '\0' && cidr_list_parse(tp, &cfg->trusted_proxies) != 0)
		problem(p, 1, "TRUSTED_PROXY_CIDRS: must be a comma-separated list of CIDRs "
			      "(at most 32), e.g. 127.0.0.1/32,10.0.0.0/8");

	if (!parse_uint("HTTP_MAX_BODY_BYTES", "1048576", 1024, 64UL * 1024 * 1024, &x, p))
		cfg->http_max_body_bytes = (size_t)x;
	if (!parse_uint("HTTP_THREADS", "8", 1, 256, &x, p))
		cfg->http_threads = (unsigned)x;
	if (!parse_uint("HTTP_MAX_CONNECTIONS", "1024", 8, 65536, &x, p))
		cfg->http_max_connections = (unsigned)x;
	if (!parse_uint("HTTP_MAX_CONNECTIONS_PER_IP", "0", 0, 65536, &x, p))
		cfg->http_max_connections_per_ip = (unsigned)x;
	if (!parse_uint("HTTP_TIMEOUT_SECONDS", "30", 1, 3600, &x, p))
		cfg->http_timeout_s = (unsigned)x;
	return p->n_fatal ? -1 : 0;
}

int config_load_report(struct config *cfg, enum config_purpose purpose, FILE *err)
{
	struct config_problems *probs = calloc(1, sizeof(*probs));
	int rc;

	if (probs == NULL) {
		fprintf(err, "breeze-server: out of memory\n");
		return -1;
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
