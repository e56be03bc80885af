/*
 * env.c — the items `breeze-server check` judges from the configuration
 * (the env file, or the environment): secrets (S1, S4, S5), Redis password
 * (N4), registration (A3), sessions (A5, A7), rate limits (A4, G4, R1–R5),
 * the SSRF allow-list (O1), the metrics token (M1) and the proxy's domain
 * and ACME e-mail (N8). The configuration is judged by the server's own
 * rules (config_load) as if BREEZE_ENV were production.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/check/check_internal.h"

/* Is the problem about one of the secrets (its text starts "NAME:")? */
static int about_secret(const char *text)
{
	for (int s = 0; s < SECRET_COUNT; s++) {
		const char *name = config_secret_name((enum config_secret)s);
		size_t n = strlen(name);
		if (!strncmp(text, name, n) && text[n] == ':')
			return 1;
	}
	return 0;
}

/* The checklist ID a problem text ends its rule with, e.g. "… (S4)", into
 * ID; 0 if it names one, else -1. */
static int problem_tag(const char *text, char id[CHECK_ID_LEN])
{
	const char *open = strrchr(text, '(');
	char tag[CHECK_ID_LEN];
	int n = 0;

	if (open == NULL || sscanf(open, "(%3[A-Z0-9])%n", tag, &n) != 1 || open[n] != '\0')
		return -1;
	snprintf(id, CHECK_ID_LEN, "%s", tag);
	return 0;
}

/* The rows the server's own configuration rules speak to: each problem
 * goes to the item its text names ("(S4)"), a secret's other problems to
 * S1 (S5 for reuse); what fits no item is printed as a configuration
 * problem (a fatal one fails the check). Items without a problem that
 * the rules cover pass. */
static void from_problems(struct check_ctx *ctx, unsigned *unmapped)
{
	static const struct {
		const char *id, *ok;
	} covered[] = {
		{"S1", "every secret is set, not a known example value and random-looking"},
		{"S4", "JWT_SECRET and every other secret have at least 32 characters"},
		{"S5", "APP_ENCRYPTION_KEY, MFA_ENCRYPTION_KEY and the other secrets are distinct"},
		{"A3", "ENABLE_REGISTRATION is false"},
		{"N4", "REDIS_URL carries a password"},
		{"L5", "AUDIT_ADMIN_DATABASE_URL is set for the retention worker"},
	};
	const struct config_problems *p = &ctx->probs;
	int hit[sizeof(covered) / sizeof(covered[0])] = {0};

	for (unsigned i = 0; i < p->n; i++) {
		const char *t = p->items[i].text;
		enum check_result r = p->items[i].fatal ? CHECK_FAIL : CHECK_WARN;
		char id[CHECK_ID_LEN] = "";
		if (problem_tag(t, id) != 0 && about_secret(t))
			snprintf(id, sizeof(id), "%s",
				 strstr(t, ": must differ from ") ? "S5" : "S1");
		size_t k = 0;
		while (k < sizeof(covered) / sizeof(covered[0]) && strcmp(covered[k].id, id) != 0)
			k++;
		if (k < sizeof(covered) / sizeof(covered[0])) {
			check_add(&ctx->rep, id, r, "%s", t);
			hit[k] = 1;
		} else {
			fprintf(stderr, "breeze-server check: configuration %s: %s\n",
				p->items[i].fatal ? "error" : "warning", t);
			*unmapped += p->items[i].fatal;
		}
	}
	for (size_t k = 0; k < sizeof(covered) / sizeof(covered[0]); k++)
		if (!hit[k] && (strcmp(covered[k].id, "N4") != 0 || ctx->cfg.redis_url != NULL))
			check_add(&ctx->rep, covered[k].id, CHECK_PASS, "%s", covered[k].ok);
}

/* A rate-limit rule against the checklist's LIMIT per WINDOW seconds: at
 * most LIMIT in a window at least as long passes; anything looser is RES. */
static void rule_row(struct check_ctx *ctx, const char *id, const char *var,
		     const struct ratelimit_rule *r, unsigned limit, unsigned window,
		     enum check_result looser)
{
	if (r->limit <= limit && r->window_s >= window)
		check_add(&ctx->rep, id, CHECK_PASS, "%s is %u/%u s (checklist: %u per %u s)", var,
			  r->limit, r->window_s, limit, window);
	else
		check_add(&ctx->rep, id, looser,
			  "%s is %u/%u s, looser than the checklist's %u per %u s", var, r->limit,
			  r->window_s, limit, window);
}

static void limits(struct check_ctx *ctx)
{
	const struct config *c = &ctx->cfg;

	rule_row(ctx, "R1", "RATE_LIMIT_LOGIN", &c->rate_login, 5, 300, CHECK_FAIL);
	rule_row(ctx, "A4", "RATE_LIMIT_LOGIN", &c->rate_login, 5, 300, CHECK_FAIL);
	rule_row(ctx, "R2", "RATE_LIMIT_API_USER", &c->rate_api_user, 100, 60, CHECK_WARN);
	rule_row(ctx, "R3", "RATE_LIMIT_AGENT_DEVICE", &c->rate_agent_device, 120, 60, CHECK_WARN);
	rule_row(ctx, "G4", "RATE_LIMIT_AGENT_DEVICE", &c->rate_agent_device, 120, 60, CHECK_WARN);
	rule_row(ctx, "R4", "AGENT_ORG_RATE_LIMIT_PER_MIN", &c->rate_agent_org, 600, 60,
		 CHECK_WARN);
	rule_row(ctx, "R5", "RATE_LIMIT_ENROLL", &c->rate_enroll, 10, 60, CHECK_FAIL);
}

static void sessions(struct check_ctx *ctx)
{
	const struct config *c = &ctx->cfg;

	if (c->session_max_age_s <= 86400)
		check_add(&ctx->rep, "A5", CHECK_PASS, "SESSION_MAX_AGE is %lld s",
			  (long long)c->session_max_age_s);
	else
		check_add(&ctx->rep, "A5", CHECK_WARN, "SESSION_MAX_AGE is %lld s, more than a day",
			  (long long)c->session_max_age_s);
	if (c->session_idle_timeout_s == 0)
		check_add(&ctx->rep, "A5", CHECK_WARN,
			  "SESSION_IDLE_TIMEOUT is 0: an unused session lives to SESSION_MAX_AGE");
	if (c->refresh_reuse_grace_s == 0)
		check_add(&ctx->rep, "A7", CHECK_PASS,
			  "REFRESH_REUSE_GRACE_SECONDS is 0: any replay of a rotated refresh token "
			  "revokes its family");
	else
		check_add(
			&ctx->rep, "A7", CHECK_WARN,
			"REFRESH_REUSE_GRACE_SECONDS is %d: a replay of the previous refresh token "
			"within that time is accepted",
			c->refresh_reuse_grace_s);
}

static void outbound(struct check_ctx *ctx)
{
	const struct ssrf_policy *a = &ctx->cfg.ssrf_allowlist;
	size_t n = a->n_names + a->n_suffixes + a->n_cidrs;

	if (n == 0)
		check_add(&ctx->rep, "O1", CHECK_PASS,
			  "every outbound request goes through the SSRF guard; SSRF_ALLOWLIST is "
			  "empty");
	else
		check_add(&ctx->rep, "O1", CHECK_WARN,
			  "SSRF_ALLOWLIST opens %zu internal destination%s to outbound requests: "
			  "review each",
			  n, n == 1 ? "" : "s");
}

static int looks_like_example(const char *s)
{
	static const char *const bad[] = {"example.com", "example.org", "example.net",
					  ".example",	 "localhost",	".local",
					  ".test",	 ".invalid",	".internal"};
	size_t n = strlen(s);

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size_t m = strlen(bad[i]);
		if (n >= m && !strcasecmp(s + n - m, bad[i]))
			return 1;
	}
	return 0;
}

/* N8's env part: the domain and ACME e-mail Caddy gets from the env file. */
static void proxy_names(struct check_ctx *ctx)
{
	const char *dom = getenv("BREEZE_DOMAIN"), *mail = getenv("ACME_EMAIL");

	if (dom == NULL || *dom == '\0')
		check_add(&ctx->rep, "N8", CHECK_FAIL, "BREEZE_DOMAIN is not set");
	else if (strchr(dom, '.') == NULL || strspn(dom, "0123456789.:[]") == strlen(dom) ||
		 looks_like_example(dom))
		check_add(&ctx->rep, "N8", CHECK_FAIL,
			  "BREEZE_DOMAIN is not a public domain name (an address, localhost, or "
			  "an example/test name): ACME cannot issue a certificate for it");
	else
		check_add(&ctx->rep, "N8", CHECK_PASS, "BREEZE_DOMAIN is %s", dom);
	if (mail == NULL || strchr(mail, '@') == NULL)
		check_add(&ctx->rep, "N8", CHECK_FAIL,
			  "ACME_EMAIL is not set to an e-mail address");
	else if (looks_like_example(strchr(mail, '@') + 1))
		check_add(&ctx->rep, "N8", CHECK_FAIL, "ACME_EMAIL is an example address");
	else
		check_add(&ctx->rep, "N8", CHECK_PASS, "ACME_EMAIL is set");
}

int check_env(struct check_ctx *ctx)
{
	unsigned unmapped = 0;
	const char *env = getenv("BREEZE_ENV");

	snprintf(ctx->env_name, sizeof(ctx->env_name), "%s",
		 env != NULL && *env != '\0' ? env : "development");
	/* The checklist is for production: judge by production's rules. */
	if (setenv("BREEZE_ENV", "production", 1) != 0)
		return -1;
	config_load(&ctx->cfg, CONFIG_FOR_SERVE, &ctx->probs);
	ctx->cfg_loaded = 1;
	from_problems(ctx, &unmapped);
	limits(ctx);
	sessions(ctx);
	outbound(ctx);
	proxy_names(ctx);
	if (ctx->cfg.secrets[SECRET_METRICS_SCRAPE_TOKEN] == NULL)
		check_add(&ctx->rep, "M1", CHECK_FAIL,
			  "METRICS_SCRAPE_TOKEN is not set: GET /metrics answers 404");
	else
		check_add(&ctx->rep, "M1", CHECK_PASS,
			  "METRICS_SCRAPE_TOKEN is set: GET /metrics needs it as a bearer token");
	if (strcmp(ctx->env_name, "production") != 0)
		check_add(&ctx->rep, "S1", CHECK_WARN,
			  "BREEZE_ENV is %s, not production: the server would not enforce these "
			  "rules at start",
			  ctx->env_name);
	return unmapped ? 1 : 0;
}
