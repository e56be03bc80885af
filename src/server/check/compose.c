/*
 * compose.c — the production compose file: the container items K1–K5 for
 * every service (compose_svc.c), the network items N1–N5 (what is
 * published, network_mode, Redis's password) and S3's compose part (no
 * literal secret in a committed file). Services are told apart by their
 * image (postgres, redis, caddy, prometheus, grafana, loki) or, for
 * breeze-server, by name.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <openssl/crypto.h>

#include "common/err.h"
#include "server/check/check_internal.h"
#include "server/redis/redis.h"

static int image_is(json_t *svc, const char *what)
{
	const char *img = check_json_str(svc, "image");

	return strcasestr(img, what) != NULL;
}

/* A published port: one decimal port 1-65535, the whole string (a range
 * such as "80-9000" publishes every port in it). 0 when S is not one. */
static long one_port(const char *s)
{
	char *end;
	long v;

	if (*s < '0' || *s > '9')
		return 0;
	v = strtol(s, &end, 10);
	return *end == '\0' && v > 0 && v <= 65535 ? v : 0;
}

/* One published port, short ("[HOST:]PUBLISHED:TARGET[/proto]", or just
 * TARGET, which publishes a random port on every address) or long syntax,
 * into the host address it binds ("" = every address) and the published
 * port (0 = random). Returns 0, or -1 when unreadable (a range, a name,
 * anything but one decimal port). */
static int port_entry(json_t *e, char *host, size_t hostlen, long *published)
{
	*published = 0;
	host[0] = '\0';
	if (json_is_object(e)) {
		snprintf(host, hostlen, "%s", check_json_str(e, "host_ip"));
		if (json_object_get(e, "published") == NULL)
			return 0;
		*published = one_port(check_json_str(e, "published"));
		return *published ? 0 : -1;
	}
	if (!json_is_string(e))
		return -1;
	char buf[128];
	snprintf(buf, sizeof(buf), "%s", json_string_value(e));
	buf[strcspn(buf, "/")] = '\0';
	char *last = strrchr(buf, ':');
	if (last == NULL)
		return strchr(buf, '-') ? -1 : 0; /* TARGET: a random port, every address */
	*last = '\0';
	char *pub = strrchr(buf, ':');
	if (pub == NULL || (buf[0] == '[' && strchr(buf, ']') > pub)) {
		*published = one_port(buf);
		return *published ? 0 : -1;
	}
	*pub = '\0';
	if (pub[1] != '\0' && (*published = one_port(pub + 1)) == 0)
		return -1; /* "HOST::TARGET" is a random port on HOST */
	snprintf(host, hostlen, "%s", buf[0] == '[' ? buf + 1 : buf);
	host[strcspn(host, "]")] = '\0';
	return 0;
}

static int loopback(const char *h)
{
	return !strncmp(h, "127.", 4) || !strcmp(h, "::1") || !strcasecmp(h, "localhost");
}

/* N1 and ID: network_mode host puts service NAME on the host's network
 * stack (every port it listens on is on every host address, with no
 * ports entry); container:/service: share another container's. Returns 1
 * (FAIL rows added) when so. */
static int shared_network(struct check_ctx *ctx, const char *name, json_t *svc, const char *id)
{
	const char *m = check_json_str(svc, "network_mode");

	if (strcasecmp(m, "host") != 0 && strncasecmp(m, "container:", 10) != 0 &&
	    strncasecmp(m, "service:", 8) != 0)
		return 0;
	check_add(&ctx->rep, "N1", CHECK_FAIL,
		  "%s: network_mode %s (listens on the host's or another container's network, "
		  "whatever ports says)",
		  name, m);
	if (id != NULL)
		check_add(&ctx->rep, id, CHECK_FAIL, "%s: network_mode %s", name, m);
	return 1;
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

	if (shared_network(ctx, name, svc, id)) {
		*n1_bad = 1;
		return;
	}
	json_array_foreach(list, i, e) {
		char host[128];
		long pub;
		if (port_entry(e, host, sizeof(host), &pub) != 0) {
			check_add(&ctx->rep, "N1", CHECK_FAIL,
				  "%s: a ports entry is not one port (a range or unreadable)",
				  name);
			if (id != NULL)
				check_add(
					&ctx->rep, id, CHECK_FAIL,
					"%s: a ports entry is not one port (a range or unreadable)",
					name);
			*n1_bad = svc_bad = 1;
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

/* Is S the requirepass directive or option? */
static int requirepass_word(const char *s, size_t n)
{
	return (n == 11 && !strncmp(s, "requirepass", 11)) ||
	       (n == 13 && !strncmp(s, "--requirepass", 13));
}

/* An argument after requirepass that sets a password: not empty, not an
 * empty quoted string. */
static int pass_arg(const char *s, size_t n)
{
	return n > 0 && !(n == 2 && (!strncmp(s, "\"\"", 2) || !strncmp(s, "''", 2)));
}

/* Does the command (a string, or a list of arguments, each perhaps a
 * shell script) give requirepass a non-empty argument? */
static int requirepass_set(json_t *cmd)
{
	json_t *one = json_is_string(cmd) ? json_pack("[O]", cmd) : json_incref(cmd), *e;
	size_t i, n = json_array_size(one);
	int ok = 0, want_next = 0;

	json_array_foreach(one, i, e) {
		const char *s = json_is_string(e) ? json_string_value(e) : "";
		if (want_next) {
			ok |= pass_arg(s, strlen(s));
			want_next = 0;
			continue;
		}
		for (const char *p = s + strspn(s, " \t\n"); *p != '\0' && !ok;) {
			size_t w = strcspn(p, " \t\n");
			const char *next = p + w + strspn(p + w, " \t\n");
			if (requirepass_word(p, w)) {
				if (*next == '\0') {
					want_next = i + 1 < n;
					break;
				}
				ok = pass_arg(next, strcspn(next, " \t\n"));
			}
			p = next;
		}
	}
	json_decref(one);
	return ok;
}

/* N4: Redis starts with a non-empty requirepass. */
static void redis_password(struct check_ctx *ctx, const char *name, json_t *svc)
{
	int ok = requirepass_set(json_object_get(svc, "command"));

	check_add(&ctx->rep, "N4", ok ? CHECK_PASS : CHECK_FAIL,
		  ok ? "%s starts with requirepass"
		     : "%s: no requirepass with a password in its "
		       "command",
		  name);
}

/* The value of variable VAR in SVC's environment (mapping or "K=V" list),
 * or NULL. */
static const char *env_value(json_t *svc, const char *var)
{
	json_t *env = json_object_get(svc, "environment"), *e;
	size_t i, n = strlen(var);

	if (json_is_object(env))
		return json_is_string(json_object_get(env, var)) ? check_json_str(env, var) : NULL;
	json_array_foreach(env, i, e) {
		const char *s = json_is_string(e) ? json_string_value(e) : "";
		if (!strncmp(s, var, n) && s[n] == '=')
			return s + n + 1;
	}
	return NULL;
}

/* N4: breeze-server's REDIS_URL, read by the server's own parser
 * (redis_url_parse()), has a non-empty password. ${V:?…} counts as one;
 * ${V:-D} is judged by D; any other reference may be empty: MANUAL. */
static void server_env(struct check_ctx *ctx, const char *name, json_t *svc)
{
	const char *url = env_value(svc, "REDIS_URL");
	struct redis_target t;
	char buf[1024];
	int flags;

	if (url == NULL || *url == '\0')
		return; /* from the env file: judged there */
	flags = check_interp(url, buf, sizeof(buf), "interpolated");
	if (flags < 0 || redis_url_parse(buf, &t) != 0)
		check_add(&ctx->rep, "N4", CHECK_FAIL, "%s: REDIS_URL is not a redis:// URL", name);
	else if (t.password[0] == '\0')
		check_add(&ctx->rep, "N4", CHECK_FAIL, "%s: REDIS_URL has no password", name);
	else if (flags & CHECK_INTERP_MAYBE_EMPTY)
		check_add(&ctx->rep, "N4", CHECK_MANUAL,
			  "%s: REDIS_URL's password comes from a variable that may be empty: use "
			  "${VAR:?…}",
			  name);
	else
		check_add(&ctx->rep, "N4", CHECK_PASS, "%s: REDIS_URL carries a password", name);
	OPENSSL_cleanse(t.password, sizeof(t.password));
}

/* Is VAR a secret's name: one of the server's secrets
 * (config_secret_name()), or …_PASSWORD / …_SECRET? */
static int secret_var(const char *var)
{
	size_t n = strlen(var);

	for (int s = 0; s < SECRET_COUNT; s++)
		if (!strcmp(var, config_secret_name((enum config_secret)s)))
			return 1;
	return (n >= 9 && !strcmp(var + n - 9, "_PASSWORD")) ||
	       (n >= 7 && !strcmp(var + n - 7, "_SECRET"));
}

/* Is VALUE of variable VAR a literal secret: a secret variable whose value
 * holds no ${…} reference, or a …_URL whose password (libcurl's parser)
 * holds none? */
static int literal_secret(const char *var, const char *value)
{
	static const char mark[] = "bzcheckref";
	char buf[1024], *pw = NULL;
	size_t n = strlen(var);
	int flags = check_interp(value, buf, sizeof(buf), mark), lit = 0;

	if (flags < 0 || *value == '\0')
		return 0;
	if (secret_var(var))
		return !(flags & CHECK_INTERP_VAR);
	if (n < 4 || strcmp(var + n - 4, "_URL") != 0)
		return 0;
	CURLU *u = curl_url();
	if (u != NULL &&
	    curl_url_set(u, CURLUPART_URL, buf, CURLU_NON_SUPPORT_SCHEME) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_PASSWORD, &pw, CURLU_URLDECODE) == CURLUE_OK)
		lit = pw[0] != '\0' && strstr(pw, mark) == NULL;
	if (pw != NULL) {
		OPENSSL_cleanse(pw, strlen(pw));
		curl_free(pw);
	}
	curl_url_cleanup(u);
	return lit;
}

/* S3's compose part: the compose file is committed, so every secret in a
 * service's environment must be a ${…} reference to the git-ignored env
 * file. Names the variable, never the value. */
static void literal_secrets(struct check_ctx *ctx, const char *name, json_t *svc)
{
	json_t *env = json_object_get(svc, "environment"), *e;
	const char *var;
	size_t i;
	char key[256];

	json_object_foreach(env, var, e) {
		if (json_is_string(e) && literal_secret(var, json_string_value(e))) {
			check_add(&ctx->rep, "S3", CHECK_FAIL,
				  "%s (compose file): %s sets %s to a literal value: reference it "
				  "from the git-ignored env file (${%s:?…}) and rotate it",
				  ctx->compose, name, var, var);
		}
	}
	json_array_foreach(env, i, e) {
		const char *s = json_is_string(e) ? json_string_value(e) : "";
		const char *eq = strchr(s, '=');
		if (eq == NULL || (size_t)(eq - s) >= sizeof(key))
			continue;
		snprintf(key, sizeof(key), "%.*s", (int)(eq - s), s);
		if (literal_secret(key, eq + 1)) {
			check_add(&ctx->rep, "S3", CHECK_FAIL,
				  "%s (compose file): %s sets %s to a literal value: reference it "
				  "from the git-ignored env file (${%s:?…}) and rotate it",
				  ctx->compose, name, key, key);
		}
	}
}

int check_compose(struct check_ctx *ctx)
{
	static const char *const k_ok[] = {
		NULL,
		"every service has security_opt no-new-privileges:true",
		"every service drops ALL capabilities, is not privileged and gets no host "
		"namespace, device, Docker socket or system directory",
		"breeze-server and the web service are read_only",
		"every service has positive cpus, mem_limit and pids_limit",
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
		check_compose_service(ctx, name, svc, bad);
		ports(ctx, name, svc, &n1_bad);
		literal_secrets(ctx, name, svc);
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
