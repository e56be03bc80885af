/*
 * caddy_json.c — the Caddyfile as Caddy itself reads it: `caddy adapt
 * --adapter caddyfile` turns it into Caddy's JSON configuration, and N8,
 * N9, N10 and M1 are judged from that (listen addresses, TLS issuers,
 * header handlers, the route that answers /metrics) rather than from the
 * text. Used when a caddy binary is on PATH.
 */
#include <fnmatch.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "server/check/check_internal.h"

#define DOMAIN_MARK "breeze-domain.check.invalid"
#define EMAIL_MARK "acme-email@check.invalid"
#define ADAPT_OUT_MAX (8u << 20)
#define ENV_MAX 512

extern char **environ;

/* Does the array V hold the string WANT (case-insensitive)? */
static int has_str(json_t *v, const char *want)
{
	size_t i;
	json_t *e;

	json_array_foreach(v, i, e) {
		if (json_is_string(e) && !strcasecmp(json_string_value(e), want))
			return 1;
	}
	return 0;
}

/* The server and its route list holding the site for the domain. */
static json_t *site_server(json_t *cfg, const char **sname)
{
	json_t *servers = json_object_get(json_object_get(json_object_get(cfg, "apps"), "http"),
					  "servers"),
	       *srv, *r, *m;
	size_t i, k;

	json_object_foreach(servers, *sname, srv) {
		json_array_foreach(json_object_get(srv, "routes"), i, r) {
			json_array_foreach(json_object_get(r, "match"), k, m) {
				if (has_str(json_object_get(m, "host"), DOMAIN_MARK))
					return srv;
			}
		}
	}
	return NULL;
}

/* The TLS issuers that cover the domain: policies naming it, or none. */
static json_t *issuers_for_domain(json_t *cfg)
{
	json_t *pol = json_object_get(json_object_get(json_object_get(json_object_get(cfg, "apps"),
								      "tls"),
						      "automation"),
				      "policies"),
	       *p, *out = json_array();
	size_t i, k;
	json_t *is;

	json_array_foreach(pol, i, p) {
		json_t *subj = json_object_get(p, "subjects");
		if (json_array_size(subj) && !has_str(subj, DOMAIN_MARK))
			continue;
		json_array_foreach(json_object_get(p, "issuers"), k, is)
			json_array_append(out, is);
	}
	return out;
}

static void judge_n8(struct check_ctx *ctx, json_t *cfg, json_t *srv)
{
	const char *f = ctx->caddyfile;
	json_t *auto_https = json_object_get(srv, "automatic_https"), *e, *iss;
	size_t i;
	int mail = 0;

	json_array_foreach(json_object_get(srv, "listen"), i, e) {
		const char *l = json_is_string(e) ? json_string_value(e) : "";
		size_t n = strlen(l);
		if (n < 4 || strcmp(l + n - 4, ":443") != 0) {
			check_add(&ctx->rep, "N8", CHECK_FAIL,
				  "%s: the site for {$BREEZE_DOMAIN} listens on %s, not 443 "
				  "(caddy adapt)",
				  f, l);
			return;
		}
	}
	if (json_is_true(json_object_get(auto_https, "disable")) ||
	    has_str(json_object_get(auto_https, "skip"), DOMAIN_MARK)) {
		check_add(&ctx->rep, "N8", CHECK_FAIL, "%s turns automatic HTTPS off (caddy adapt)",
			  f);
		return;
	}
	iss = issuers_for_domain(cfg);
	json_array_foreach(iss, i, e) {
		mail |= !strcmp(check_json_str(e, "email"), EMAIL_MARK);
	}
	json_decref(iss);
	if (!mail)
		check_add(&ctx->rep, "N8", CHECK_FAIL,
			  "%s gives ACME no e-mail ({$ACME_EMAIL}) (caddy adapt)", f);
	else
		check_add(&ctx->rep, "N8", CHECK_PASS,
			  "%s: automatic TLS on 443 for {$BREEZE_DOMAIN} with e-mail {$ACME_EMAIL} "
			  "(caddy adapt)",
			  f);
}

static void judge_n10(struct check_ctx *ctx, json_t *cfg)
{
	json_t *iss = issuers_for_domain(cfg), *e;
	const char *bad = NULL;
	size_t i;

	json_array_foreach(iss, i, e) {
		if (!strcmp(check_json_str(e, "module"), "internal"))
			bad = "uses Caddy's internal (self-signed) certificate authority";
		else if (strstr(check_json_str(e, "ca"), "staging") != NULL)
			bad = "uses the ACME staging CA (untrusted certificates)";
	}
	json_decref(iss);
	if (bad != NULL)
		check_add(&ctx->rep, "N10", CHECK_FAIL, "%s %s (caddy adapt)", ctx->caddyfile, bad);
	else
		check_add(&ctx->rep, "N10", CHECK_PASS,
			  "%s issues certificates from a public ACME CA only (caddy adapt)",
			  ctx->caddyfile);
}

/* N9 over every handler under V: *GOOD counts HSTS values that pass, a
 * weak value or a deletion sets *BAD. */
static void hsts_walk(json_t *v, int *good, int *bad)
{
	const char *k;
	json_t *e;
	size_t i;

	if (json_is_array(v)) {
		json_array_foreach(v, i, e)
			hsts_walk(e, good, bad);
		return;
	}
	if (!json_is_object(v))
		return;
	if (!strcmp(check_json_str(v, "handler"), "headers")) {
		json_t *resp = json_object_get(v, "response");
		if (has_str(json_object_get(resp, "delete"), "Strict-Transport-Security"))
			*bad = 1;
		const char *ops[] = {"set", "add"};
		for (int o = 0; o < 2; o++)
			json_object_foreach(json_object_get(resp, ops[o]), k, e) {
				if (strcasecmp(k, "Strict-Transport-Security") != 0)
					continue;
				const char *val = json_string_value(json_array_get(e, 0));
				const char *ma = val ? strcasestr(val, "max-age=") : NULL;
				if (ma && strtol(ma + 8, NULL, 10) >= 31536000 &&
				    strcasestr(val, "includeSubDomains") &&
				    strcasestr(val, "preload"))
					(*good)++;
				else
					*bad = 1;
			}
	}
	json_object_foreach(v, k, e) {
		if (json_is_array(e) || json_is_object(e))
			hsts_walk(e, good, bad);
	}
}

/* May top-level route R serve the domain (no host matcher, or one naming
 * it)? */
static int for_domain(json_t *r)
{
	json_t *sets = json_object_get(r, "match"), *m;
	size_t i;

	json_array_foreach(sets, i, m) {
		json_t *h = json_object_get(m, "host");
		if (h == NULL || has_str(h, DOMAIN_MARK))
			return 1;
	}
	return json_array_size(sets) == 0;
}

static void judge_n9(struct check_ctx *ctx, json_t *srv)
{
	int good = 0, bad = 0;
	json_t *r;
	size_t i;

	json_array_foreach(json_object_get(srv, "routes"), i, r) {
		if (for_domain(r))
			hsts_walk(r, &good, &bad);
	}
	if (good && !bad)
		check_add(&ctx->rep, "N9", CHECK_PASS,
			  "%s sends HSTS max-age>=31536000; includeSubDomains; preload and never "
			  "removes it (caddy adapt)",
			  ctx->caddyfile);
	else
		check_add(
			&ctx->rep, "N9", CHECK_FAIL, "%s: %s (caddy adapt)", ctx->caddyfile,
			bad ? "a Strict-Transport-Security header is weak (max-age under 31536000, "
			      "no includeSubDomains or preload) or removed"
			    : "no Strict-Transport-Security header");
}

enum m1 { M1_NONE, M1_BLOCK, M1_PASSED, M1_END };

/* Does matcher set SET match a request for /metrics on the domain? 1 yes,
 * 0 no, 2 maybe (a matcher this check does not evaluate). */
static int set_match(json_t *set)
{
	const char *k;
	json_t *v, *p;
	size_t i;
	int r = 1;

	json_object_foreach(set, k, v) {
		if (!strcmp(k, "host")) {
			if (!has_str(v, DOMAIN_MARK))
				return 0;
		} else if (!strcmp(k, "path")) {
			int hit = 0;
			json_array_foreach(v, i, p) {
				hit |= json_is_string(p) &&
				       fnmatch(json_string_value(p), "/metrics", FNM_CASEFOLD) == 0;
			}
			if (!hit)
				return 0;
		} else {
			r = 2;
		}
	}
	return r;
}

static int route_match(json_t *route)
{
	json_t *sets = json_object_get(route, "match"), *s;
	size_t i;
	int r = json_array_size(sets) ? 0 : 1;

	json_array_foreach(sets, i, s) {
		int m = set_match(s);
		if (m == 1)
			return 1;
		if (m == 2)
			r = 2;
	}
	return r;
}

static int blocking(json_t *h)
{
	json_t *st = json_object_get(h, "status_code");
	long code = json_is_integer(st)	 ? (long)json_integer_value(st)
		    : json_is_string(st) ? strtol(json_string_value(st), NULL, 10)
					 : 0;

	return !strcmp(check_json_str(h, "handler"), "error") ||
	       json_is_true(json_object_get(h, "abort")) || code >= 400;
}

/* Which of ROUTES answers GET /metrics on the domain, in Caddy's order:
 * M1_BLOCK when a respond 4xx/abort/error does, M1_PASSED when anything
 * else may (its handler in *WHO), M1_END when a terminal route ends with
 * none, M1_NONE when no route decides. */
static enum m1 m1_routes(json_t *routes, const char **who, int depth)
{
	static const char *const middle[] = {"headers", "request_body",	 "encode",
					     "vars",	"map",		 "push",
					     "tracing", "authentication"};
	json_t *r, *h;
	size_t i, k;

	if (depth > 32)
		return *who = "nested too deep", M1_PASSED;
	json_array_foreach(routes, i, r) {
		int m = route_match(r);
		if (m == 0)
			continue;
		json_array_foreach(json_object_get(r, "handle"), k, h) {
			const char *name = check_json_str(h, "handler");
			size_t j = 0;
			while (j < sizeof(middle) / sizeof(middle[0]) && strcmp(middle[j], name))
				j++;
			if (j < sizeof(middle) / sizeof(middle[0]))
				continue;
			if (!strcmp(name, "subroute")) {
				enum m1 s = m1_routes(json_object_get(h, "routes"), who, depth + 1);
				if (s == M1_PASSED || (m == 1 && s != M1_NONE))
					return s;
				if (s != M1_NONE)
					break;
				continue;
			}
			if ((!strcmp(name, "static_response") || !strcmp(name, "error")) &&
			    (blocking(h) || m == 2)) {
				if (m == 1)
					return blocking(h) ? M1_BLOCK : (*who = name, M1_PASSED);
				break; /* maybe matched: decides nothing */
			}
			*who = name[0] ? name : "(unnamed handler)";
			return M1_PASSED;
		}
		if (m == 1 && json_is_true(json_object_get(r, "terminal")))
			return M1_END;
	}
	return M1_NONE;
}

static void judge_m1(struct check_ctx *ctx, json_t *srv)
{
	const char *who = NULL, *f = ctx->caddyfile;

	switch (m1_routes(json_object_get(srv, "routes"), &who, 0)) {
	case M1_BLOCK:
		check_add(&ctx->rep, "M1", CHECK_PASS,
			  "%s answers /metrics itself (respond 4xx, abort or error) (caddy adapt)",
			  f);
		break;
	case M1_PASSED:
		check_add(&ctx->rep, "M1", CHECK_WARN,
			  "%s passes /metrics to %s: only the bearer token guards it (caddy adapt)",
			  f, who);
		break;
	default:
		check_add(&ctx->rep, "M1", CHECK_WARN,
			  "%s does not answer /metrics with respond 4xx, abort or error (caddy "
			  "adapt)",
			  f);
	}
}

/* Is PROG an executable file in a directory of PATH? */
static int on_path(const char *prog)
{
	const char *path = getenv("PATH");
	char buf[4096];

	for (const char *p = path ? path : ""; *p != '\0';) {
		size_t n = strcspn(p, ":");
		if (n > 0 &&
		    snprintf(buf, sizeof(buf), "%.*s/%s", (int)n, p, prog) < (int)sizeof(buf) &&
		    access(buf, X_OK) == 0)
			return 1;
		p += n + (p[n] == ':');
	}
	return 0;
}

/* The environment with BREEZE_DOMAIN and ACME_EMAIL set to the markers
 * (free() the array; the strings are borrowed). */
static const char **marked_env(void)
{
	size_t n = 0, k = 0;

	while (environ[n] != NULL)
		n++;
	const char **env = calloc(n + 3, sizeof(*env));
	if (env == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "BREEZE_DOMAIN=", 14) &&
		    strncmp(environ[i], "ACME_EMAIL=", 11))
			env[k++] = environ[i];
	env[k++] = "BREEZE_DOMAIN=" DOMAIN_MARK;
	env[k++] = "ACME_EMAIL=" EMAIL_MARK;
	return env;
}

static void adapt_fail(struct check_ctx *ctx, const char *why)
{
	check_add(&ctx->rep, "N8", CHECK_FAIL, "%s: %s", ctx->caddyfile, why);
	check_add(&ctx->rep, "N9", CHECK_FAIL, "%s: %s", ctx->caddyfile, why);
	check_add(&ctx->rep, "N10", CHECK_FAIL, "%s: %s", ctx->caddyfile, why);
}

int check_caddy_adapt(struct check_ctx *ctx)
{
	const char *argv[] = {"caddy",	   "adapt",	"--config", ctx->caddyfile,
			      "--adapter", "caddyfile", NULL};
	const char **env;
	char *out;
	json_t *cfg, *srv;
	const char *sname;

	if (!on_path("caddy"))
		return 1;
	env = marked_env();
	out = malloc(ADAPT_OUT_MAX);
	int rc = env && out ? check_run_env(argv, env, out, ADAPT_OUT_MAX, 30) : -1;
	free(env);
	if (rc != 0 || strlen(out) >= ADAPT_OUT_MAX - 1) {
		adapt_fail(ctx, rc > 0	 ? "caddy adapt refuses it (caddy would not start)"
				: rc < 0 ? "caddy adapt could not run or timed out"
					 : "caddy adapt's output is too large to judge");
		free(out);
		return 0;
	}
	cfg = json_loads(out, 0, NULL);
	free(out);
	if (cfg == NULL) {
		adapt_fail(ctx, "caddy adapt's output is not JSON");
		return 0;
	}
	if ((srv = site_server(cfg, &sname)) == NULL) {
		check_add(&ctx->rep, "N8", CHECK_FAIL,
			  "%s has no site for {$BREEZE_DOMAIN} (caddy adapt)", ctx->caddyfile);
		check_add(&ctx->rep, "N9", CHECK_FAIL,
			  "%s: no site for {$BREEZE_DOMAIN} to send HSTS (caddy adapt)",
			  ctx->caddyfile);
	} else {
		judge_n8(ctx, cfg, srv);
		judge_n9(ctx, srv);
		judge_m1(ctx, srv);
	}
	judge_n10(ctx, cfg);
	json_decref(cfg);
	return 0;
}
