/*
 * compose.c — the production compose file: the container items K1–K5 for
 * every service, and the network items N1–N5 (what is published, and
 * Redis's password). Services are told apart by their image (postgres,
 * redis, caddy, prometheus, grafana, loki) or, for breeze-server, by name.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/err.h"
#include "server/check/check_internal.h"

/* A scalar member as a string ("" if absent or not a scalar). */
static const char *str(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	return json_is_string(v) ? json_string_value(v) : "";
}

static int truthy(const char *s)
{
	return !strcasecmp(s, "true") || !strcasecmp(s, "yes") || !strcmp(s, "1");
}

/* Does the list (or the single string) V hold an entry WANT (case-
 * insensitive, a trailing ":true"/"=true" allowed for security_opt)? */
static int list_has(json_t *v, const char *want)
{
	size_t i, n = strlen(want);
	json_t *e;

	if (json_is_string(v))
		return !strcasecmp(json_string_value(v), want);
	json_array_foreach(v, i, e) {
		const char *s = json_is_string(e) ? json_string_value(e) : "";
		if (!strncasecmp(s, want, n) &&
		    (s[n] == '\0' || !strcasecmp(s + n, ":true") || !strcasecmp(s + n, "=true")))
			return 1;
	}
	return 0;
}

static int image_is(json_t *svc, const char *what)
{
	const char *img = str(svc, "image");

	return strcasestr(img, what) != NULL;
}

/* The limit KEY (cpus, mem_limit/memory, pids_limit/pids) of SVC, at the
 * top level or under deploy.resources.limits. */
static int has_limit(json_t *svc, const char *top, const char *deploy_key)
{
	json_t *lim = json_object_get(json_object_get(json_object_get(svc, "deploy"), "resources"),
				      "limits");

	return *str(svc, top) != '\0' || json_is_integer(json_object_get(svc, top)) ||
	       *str(lim, deploy_key) != '\0';
}

/* One published port, short ("[HOST:]PUBLISHED:TARGET[/proto]", or just
 * TARGET, which publishes a random port on every address) or long syntax,
 * into the host address it binds ("" = every address) and the published
 * port (0 = random). Returns 0, or -1 when unreadable. */
static int port_entry(json_t *e, char *host, size_t hostlen, long *published)
{
	*published = 0;
	host[0] = '\0';
	if (json_is_object(e)) {
		snprintf(host, hostlen, "%s", str(e, "host_ip"));
		*published = strtol(str(e, "published"), NULL, 10);
		return 0;
	}
	if (!json_is_string(e))
		return -1;
	char buf[128];
	snprintf(buf, sizeof(buf), "%s", json_string_value(e));
	buf[strcspn(buf, "/")] = '\0';
	char *last = strrchr(buf, ':');
	if (last == NULL)
		return 0; /* TARGET only: a random port on every address */
	*last = '\0';
	char *pub = strrchr(buf, ':');
	if (pub == NULL || (buf[0] == '[' && strchr(buf, ']') > pub)) {
		*published = strtol(buf, NULL, 10);
		return 0;
	}
	*pub = '\0';
	*published = strtol(pub + 1, NULL, 10);
	snprintf(host, hostlen, "%s", buf[0] == '[' ? buf + 1 : buf);
	host[strcspn(host, "]")] = '\0';
	return 0;
}

static int loopback(const char *h)
{
	return !strncmp(h, "127.", 4) || !strcmp(h, "::1") || !strcasecmp(h, "localhost");
}

/* N1/N2/N3/N5: what service NAME publishes beyond the loopback address. */
static void ports(struct check_ctx *ctx, const char *name, json_t *svc, int *n1_bad)
{
	json_t *list = json_object_get(svc, "ports"), *e;
	int proxy = image_is(svc, "caddy") || image_is(svc, "coturn");
	const char *id = image_is(svc, "postgres") ? "N2"
			 : image_is(svc, "redis")  ? "N3"
			 : image_is(svc, "prometheus") || image_is(svc, "grafana") ||
					 image_is(svc, "loki")
				 ? "N5"
				 : NULL;
	size_t i;
	int svc_bad = 0;

	json_array_foreach(list, i, e) {
		char host[128];
		long pub;
		if (port_entry(e, host, sizeof(host), &pub) != 0) {
			check_add(&ctx->rep, "N1", CHECK_FAIL, "%s: unreadable ports entry", name);
			*n1_bad = 1;
			continue;
		}
		if (loopback(host))
			continue;
		int allowed = proxy &&
			      (pub == 80 || pub == 443 || (pub == 3478 && image_is(svc, "coturn")));
		if (!allowed) {
			check_add(&ctx->rep, "N1", CHECK_FAIL, "%s publishes port %ld on %s", name,
				  pub, host[0] ? host : "every address");
			*n1_bad = svc_bad = 1;
			if (id != NULL)
				check_add(&ctx->rep, id, CHECK_FAIL,
					  "%s publishes port %ld beyond 127.0.0.1", name, pub);
		}
	}
	if (id == NULL || svc_bad)
		return;
	if (!json_array_size(list))
		check_add(&ctx->rep, id, CHECK_PASS, "%s publishes no port", name);
	else
		check_add(&ctx->rep, id, CHECK_PASS, "%s publishes only on 127.0.0.1", name);
}

/* K1–K5 for one service: a finding sets BAD[k] for item Kk. */
static void hardening(struct check_ctx *ctx, const char *name, json_t *svc, int *bad)
{
	int api = !strcmp(name, "breeze-server") || !strcmp(name, "api");
	int web = !strcmp(name, "web") || image_is(svc, "caddy");
	const char *user = str(svc, "user");
	int root = *user == '\0' || !strcmp(user, "root") || !strcmp(user, "0") ||
		   !strncmp(user, "0:", 2) || !strncmp(user, "root:", 5);

	if (!list_has(json_object_get(svc, "security_opt"), "no-new-privileges")) {
		check_add(&ctx->rep, "K1", CHECK_FAIL, "%s: no security_opt no-new-privileges:true",
			  name);
		bad[1] = 1;
	}
	if (!list_has(json_object_get(svc, "cap_drop"), "ALL")) {
		check_add(&ctx->rep, "K2", CHECK_FAIL, "%s: cap_drop does not hold ALL", name);
		bad[2] = 1;
	}
	if ((api || web) && !truthy(str(svc, "read_only"))) {
		check_add(&ctx->rep, "K3", CHECK_FAIL, "%s: read_only is not true", name);
		bad[3] = 1;
	}
	if (!has_limit(svc, "cpus", "cpus") || !has_limit(svc, "mem_limit", "memory") ||
	    !has_limit(svc, "pids_limit", "pids")) {
		check_add(&ctx->rep, "K4", CHECK_FAIL,
			  "%s: cpus, mem_limit and pids_limit are not all set", name);
		bad[4] = 1;
	}
	if (root) {
		check_add(&ctx->rep, "K5", CHECK_FAIL, "%s: no non-root user", name);
		bad[5] = 1;
	} else if (api && strcmp(user, "1001") != 0 && strncmp(user, "1001:", 5) != 0) {
		check_add(&ctx->rep, "K5", CHECK_FAIL, "%s: user is %s, not UID 1001", name, user);
		bad[5] = 1;
	}
}

/* N4: Redis starts with a password and breeze-server's REDIS_URL carries
 * one. */
static void redis_password(struct check_ctx *ctx, const char *name, json_t *svc)
{
	json_t *cmd = json_object_get(svc, "command");
	char *text = json_dumps(cmd, JSON_ENCODE_ANY);
	int ok = text != NULL && strstr(text, "requirepass") != NULL;

	free(text);
	check_add(&ctx->rep, "N4", ok ? CHECK_PASS : CHECK_FAIL,
		  ok ? "%s starts with requirepass" : "%s: no requirepass in its command", name);
}

static void server_env(struct check_ctx *ctx, const char *name, json_t *svc)
{
	json_t *env = json_object_get(svc, "environment"), *e;
	const char *url = NULL;
	size_t i;

	if (json_is_object(env))
		url = str(env, "REDIS_URL");
	json_array_foreach(env, i, e) {
		const char *s = json_is_string(e) ? json_string_value(e) : "";
		if (!strncmp(s, "REDIS_URL=", 10))
			url = s + 10;
	}
	if (url == NULL || *url == '\0')
		return; /* from the env file: judged there */
	const char *at = strchr(url, '@'), *scheme = strstr(url, "://");
	int ok = at != NULL && scheme != NULL && at > scheme + 3 && strchr(scheme + 3, ':') < at;
	check_add(&ctx->rep, "N4", ok ? CHECK_PASS : CHECK_FAIL,
		  ok ? "%s: REDIS_URL carries a password" : "%s: REDIS_URL has no password", name);
}

int check_compose(struct check_ctx *ctx)
{
	static const char *const k_ok[] = {
		NULL,
		"every service has security_opt no-new-privileges:true",
		"every service drops ALL capabilities",
		"breeze-server and the web service are read_only",
		"every service has cpus, mem_limit and pids_limit",
		"every service runs as a non-root user (breeze-server as UID 1001)",
	};
	char err[512], id[4];
	json_t *services, *svc;
	const char *name;
	int bad[6] = {0}, n1_bad = 0, have_server = 0;

	if (ctx->compose == NULL)
		return 0;
	if (check_yaml_load(ctx->compose, &ctx->compose_doc, err, sizeof(err)) != 0) {
		for (int k = 1; k <= 5; k++) {
			snprintf(id, sizeof(id), "K%d", k);
			check_add(&ctx->rep, id, CHECK_FAIL, "%s", err);
		}
		check_add(&ctx->rep, "N1", CHECK_FAIL, "%s", err);
		return 0;
	}
	services = json_object_get(ctx->compose_doc, "services");
	json_object_foreach(services, name, svc) {
		have_server |= !strcmp(name, "breeze-server") || !strcmp(name, "api");
		hardening(ctx, name, svc, bad);
		ports(ctx, name, svc, &n1_bad);
		if (image_is(svc, "redis"))
			redis_password(ctx, name, svc);
		if (!strcmp(name, "breeze-server") || !strcmp(name, "api"))
			server_env(ctx, name, svc);
	}
	if (!have_server) {
		check_add(&ctx->rep, "K3", CHECK_FAIL, "%s has no breeze-server service",
			  ctx->compose);
		bad[3] = 1;
	}
	for (int k = 1; k <= 5; k++)
		if (!bad[k]) {
			snprintf(id, sizeof(id), "K%d", k);
			check_add(&ctx->rep, id, CHECK_PASS, "%s: %s", ctx->compose, k_ok[k]);
		}
	if (!n1_bad)
		check_add(&ctx->rep, "N1", CHECK_PASS,
			  "%s: only the proxy publishes, on 80 and 443 (3478 for TURN)",
			  ctx->compose);
	return 0;
}
