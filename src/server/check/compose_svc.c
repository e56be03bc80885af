/*
 * compose_svc.c — the container items K1–K5 of one compose service, and
 * compose's ${…} interpolation as far as the checks need it. K2 covers
 * everything that hands a container the host: capabilities (privileged,
 * cap_add), the host's namespaces (network_mode is N1's), devices, and
 * binds of the Docker socket or of host system directories.
 */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "server/check/check_internal.h"

const char *check_json_str(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	return json_is_string(v) ? json_string_value(v) : "";
}

static int truthy(const char *s)
{
	return !strcasecmp(s, "true") || !strcasecmp(s, "yes") || !strcmp(s, "1");
}

int check_interp(const char *in, char *out, size_t outlen, const char *placeholder)
{
	size_t n = 0;
	int flags = 0;

	for (const char *p = in; *p != '\0';) {
		const char *rep = NULL;
		size_t replen = 0;
		if (p[0] == '$' && p[1] == '$') {
			rep = "$", replen = 1, p += 2;
		} else if (p[0] == '$' && p[1] == '{') {
			const char *end = strchr(p, '}');
			if (end == NULL)
				return -1;
			const char *op = p + 2 +
					 strspn(p + 2, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmn"
						       "opqrstuvwxyz0123456789_");
			if (op[0] == ':' && op[1] == '-') {
				rep = op + 2, replen = (size_t)(end - op - 2); /* the default */
			} else if (op[0] == '-') {
				rep = op + 1, replen = (size_t)(end - op - 1);
			} else {
				/* ${V:?…} is never empty; ${V}, ${V?…}, ${V:+…} may be */
				flags |= CHECK_INTERP_VAR;
				if (!(op[0] == ':' && op[1] == '?'))
					flags |= CHECK_INTERP_MAYBE_EMPTY;
				rep = placeholder, replen = strlen(placeholder);
			}
			p = end + 1;
		} else if (p[0] == '$' && (p[1] == '_' || (p[1] >= 'A' && p[1] <= 'Z') ||
					   (p[1] >= 'a' && p[1] <= 'z'))) {
			flags |= CHECK_INTERP_VAR | CHECK_INTERP_MAYBE_EMPTY;
			rep = placeholder, replen = strlen(placeholder);
			p += 1 + strspn(p + 1,
					"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
					"0123456789_");
		} else {
			rep = p++, replen = 1;
		}
		if (n + replen >= outlen)
			return -1;
		memcpy(out + n, rep, replen);
		n += replen;
	}
	out[n] = '\0';
	return flags;
}

/* A positive decimal number, the whole string, optionally followed by one
 * of the UNITS suffixes (case-insensitive; "" for none). */
static int positive(const char *s, const char *const *units)
{
	char *end;
	double v;

	if (*s == '\0' || *s == '+' || *s == '-' || *s == ' ')
		return 0;
	v = strtod(s, &end);
	if (end == s || !isfinite(v) || v <= 0)
		return 0;
	for (; *units != NULL; units++)
		if (!strcasecmp(end, *units))
			return 1;
	return 0;
}

/* K4: the limit TOP (service level) and DEPLOY_KEY (deploy.resources.
 * limits) of SVC: at least one set, and each that is set a positive value
 * ("0" and -1 are Docker's "unlimited"). */
static int limit_ok(json_t *svc, const char *top, const char *deploy_key, const char *const *units)
{
	json_t *lim = json_object_get(json_object_get(json_object_get(svc, "deploy"), "resources"),
				      "limits");
	json_t *a = json_object_get(svc, top), *b = json_object_get(lim, deploy_key);

	if (a == NULL && b == NULL)
		return 0;
	if (a != NULL && !(json_is_string(a) && positive(json_string_value(a), units)))
		return 0;
	return b == NULL || (json_is_string(b) && positive(json_string_value(b), units));
}

static int limits_ok(json_t *svc)
{
	static const char *const num[] = {"", NULL};
	static const char *const size[] = {"", "b", "k", "kb", "m", "mb", "g", "gb", NULL};

	return limit_ok(svc, "cpus", "cpus", num) && limit_ok(svc, "mem_limit", "memory", size) &&
	       limit_ok(svc, "pids_limit", "pids", num);
}

/* K5: the uid USER (compose's user: "UID[:GID]" or "NAME[:GROUP]") runs
 * as, into *UID (-1 for a name other than root). Returns CHECK_PASS when
 * readable, CHECK_MANUAL when a variable without a default decides it,
 * CHECK_FAIL when unreadable. Docker parses a numeric uid as an integer,
 * so "00" and "+0" are uid 0. */
static enum check_result user_uid(const char *user, long *uid)
{
	char buf[256], *end;
	int flags = check_interp(user, buf, sizeof(buf), "$");

	if (flags < 0)
		return CHECK_FAIL;
	if (flags & CHECK_INTERP_VAR)
		return CHECK_MANUAL;
	buf[strcspn(buf, ":")] = '\0';
	if (buf[0] == '\0' || !strcmp(buf, "root")) {
		*uid = 0;
		return CHECK_PASS;
	}
	if (strchr("+-0123456789", buf[0]) == NULL) {
		*uid = -1; /* a user name: the image says which uid */
		return CHECK_PASS;
	}
	*uid = strtol(buf, &end, 10);
	return *end != '\0' || *uid < 0 || *uid > INT_MAX ? CHECK_FAIL : CHECK_PASS;
}

static void user_row(struct check_ctx *ctx, const char *name, json_t *svc, int api, int *bad)
{
	const char *user = check_json_str(svc, "user");
	long uid = 0;
	enum check_result r = user_uid(user, &uid);

	if (r == CHECK_MANUAL) {
		check_add(&ctx->rep, "K5", CHECK_MANUAL,
			  "%s: user %s comes from a variable without a default: check it is not "
			  "0%s",
			  name, user, api ? " (breeze-server: 1001)" : "");
		bad[5] = 1;
	} else if (r == CHECK_FAIL) {
		check_add(&ctx->rep, "K5", CHECK_FAIL, "%s: user %s is not a readable uid", name,
			  user);
		bad[5] = 1;
	} else if (uid == 0) {
		check_add(&ctx->rep, "K5", CHECK_FAIL, "%s: no non-root user (uid 0)", name);
		bad[5] = 1;
	} else if (api && uid != 1001) {
		check_add(&ctx->rep, "K5", CHECK_FAIL, "%s: user is %s, not UID 1001", name, user);
		bad[5] = 1;
	}
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

/* K1: security_opt entries that switch a confinement off. */
static const char *unconfined(json_t *opts)
{
	static const char *const bad[] = {"seccomp=unconfined",	 "seccomp:unconfined",
					  "apparmor=unconfined", "apparmor:unconfined",
					  "label=disable",	 "label:disable"};
	size_t i;
	json_t *e;

	json_array_foreach(opts, i, e) {
		const char *s = json_is_string(e) ? json_string_value(e) : "";
		for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++)
			if (!strcasecmp(s, bad[k]))
				return bad[k];
	}
	return NULL;
}

/* K2: cap_add entries beyond the allow-list. The allow-list is empty but
 * for NET_BIND_SERVICE on the proxy (PROXY): binding 80 and 443 as a
 * non-root user on an engine that refuses the unprivileged-port sysctl
 * (deploy/docker-compose.prod.yml explains). Docker applies cap_add after
 * cap_drop, so anything else undoes cap_drop: [ALL]. */
static const char *cap_added(json_t *caps, int proxy)
{
	size_t i;
	json_t *e;

	if (json_is_string(caps))
		return json_string_value(caps);
	json_array_foreach(caps, i, e) {
		const char *s = json_is_string(e) ? json_string_value(e) : "(not a string)";
		const char *c = !strncasecmp(s, "CAP_", 4) ? s + 4 : s;
		if (!(proxy && !strcasecmp(c, "NET_BIND_SERVICE")))
			return s;
	}
	return NULL;
}

/* Is the host path P (absolute, normalised) the Docker socket or a host
 * system directory? Binding one of them gives the container the host. */
static int sensitive_path(const char *p)
{
	static const char *const exact[] = {"/",	"/etc", "/root", "/run", "/var", "/var/run",
					    "/var/lib", "/usr", "/home", "/lib", "/bin", "/sbin"};
	static const char *const under[] = {"/proc",
					    "/sys",
					    "/dev",
					    "/boot",
					    "/var/lib/docker",
					    "/var/lib/containerd",
					    "/run/docker",
					    "/run/containerd",
					    "/var/run/docker",
					    "/run/podman",
					    "/var/run/podman"};
	const char *base = strrchr(p, '/');

	for (size_t i = 0; i < sizeof(exact) / sizeof(exact[0]); i++)
		if (!strcmp(p, exact[i]))
			return 1;
	for (size_t i = 0; i < sizeof(under) / sizeof(under[0]); i++) {
		size_t n = strlen(under[i]);
		if (!strncmp(p, under[i], n) && (p[n] == '\0' || p[n] == '/'))
			return 1;
	}
	return base != NULL && (strstr(base, "docker.sock") || strstr(base, "containerd.sock") ||
				strstr(base, "podman.sock") || strstr(base, "crio.sock"));
}

/* The host side of a bind in volume V (short "SRC:DST[:MODE]" or long
 * syntax) resolved against the compose file's directory DIR (symbolic
 * links followed when it exists) into OUT; 0 when V is a bind, else -1. */
static int bind_source(json_t *v, const char *dir, char *out, size_t outlen)
{
	char buf[PATH_MAX], joined[2 * PATH_MAX + 2];

	if (json_is_object(v)) {
		if (strcmp(check_json_str(v, "type"), "bind") != 0)
			return -1;
		snprintf(buf, sizeof(buf), "%s", check_json_str(v, "source"));
	} else if (json_is_string(v)) {
		snprintf(buf, sizeof(buf), "%s", json_string_value(v));
		buf[strcspn(buf, ":")] = '\0';
	} else {
		return -1;
	}
	if (buf[0] != '/' && buf[0] != '.')
		return -1; /* a named volume */
	if (buf[0] == '/')
		snprintf(joined, sizeof(joined), "%s", buf);
	else
		snprintf(joined, sizeof(joined), "%s/%s", dir, buf);
	if (outlen < PATH_MAX || realpath(joined, out) == NULL) {
		if (strlen(joined) >= outlen)
			return -1;
		memcpy(out, joined, strlen(joined) + 1);
	}
	size_t n = strlen(out);
	while (n > 1 && out[n - 1] == '/')
		out[--n] = '\0';
	return 0;
}

int check_compose_host_access(struct check_ctx *ctx, const char *name, json_t *svc)
{
	static const char *const ns[] = {"pid", "ipc", "uts", "cgroup", "userns_mode"};
	char dir[PATH_MAX], src[PATH_MAX];
	json_t *e;
	size_t i;
	int bad = 0;

	snprintf(dir, sizeof(dir), "%s", ctx->compose);
	char *slash = strrchr(dir, '/');
	if (slash == NULL)
		snprintf(dir, sizeof(dir), ".");
	else
		slash[slash == dir] = '\0'; /* "/compose.yml" → "/" */
	for (size_t k = 0; k < sizeof(ns) / sizeof(ns[0]); k++)
		if (!strcasecmp(check_json_str(svc, ns[k]), "host")) {
			check_add(&ctx->rep, "K2", CHECK_FAIL,
				  "%s: %s: host (the host's namespace)", name, ns[k]);
			bad = 1;
		}
	if (json_array_size(json_object_get(svc, "devices")) ||
	    json_array_size(json_object_get(svc, "device_cgroup_rules"))) {
		check_add(&ctx->rep, "K2", CHECK_FAIL, "%s: maps host devices (devices)", name);
		bad = 1;
	}
	json_array_foreach(json_object_get(svc, "volumes"), i, e) {
		if (bind_source(e, dir, src, sizeof(src)) != 0)
			continue;
		if (sensitive_path(src) || strstr(src, "/..") != NULL) {
			check_add(
				&ctx->rep, "K2", CHECK_FAIL,
				"%s: binds the host's %s (the Docker socket or a system directory)",
				name, src);
			bad = 1;
		}
	}
	return bad;
}

/* K1–K4 (K5: user_row) for one service: a finding sets BAD[k] for Kk. */
void check_compose_service(struct check_ctx *ctx, const char *name, json_t *svc, int *bad)
{
	int api = !strcmp(name, "breeze-server") || !strcmp(name, "api");
	int web = !strcmp(name, "web") || strcasestr(check_json_str(svc, "image"), "caddy");
	int proxy = web || strcasestr(check_json_str(svc, "image"), "coturn");
	const char *s;

	if (!list_has(json_object_get(svc, "security_opt"), "no-new-privileges")) {
		check_add(&ctx->rep, "K1", CHECK_FAIL, "%s: no security_opt no-new-privileges:true",
			  name);
		bad[1] = 1;
	}
	if ((s = unconfined(json_object_get(svc, "security_opt"))) != NULL) {
		check_add(&ctx->rep, "K1", CHECK_FAIL, "%s: security_opt %s", name, s);
		bad[1] = 1;
	}
	if (!list_has(json_object_get(svc, "cap_drop"), "ALL")) {
		check_add(&ctx->rep, "K2", CHECK_FAIL, "%s: cap_drop does not hold ALL", name);
		bad[2] = 1;
	}
	if (truthy(check_json_str(svc, "privileged"))) {
		check_add(&ctx->rep, "K2", CHECK_FAIL,
			  "%s: privileged (every capability and device, no seccomp)", name);
		bad[2] = 1;
	}
	if ((s = cap_added(json_object_get(svc, "cap_add"), proxy)) != NULL) {
		check_add(&ctx->rep, "K2", CHECK_FAIL,
			  "%s: cap_add %s (only NET_BIND_SERVICE, "
			  "for the proxy, may be added back)",
			  name, s);
		bad[2] = 1;
	}
	if (check_compose_host_access(ctx, name, svc))
		bad[2] = 1;
	if ((api || web) && !truthy(check_json_str(svc, "read_only"))) {
		check_add(&ctx->rep, "K3", CHECK_FAIL, "%s: read_only is not true", name);
		bad[3] = 1;
	}
	if (!limits_ok(svc)) {
		check_add(&ctx->rep, "K4", CHECK_FAIL,
			  "%s: cpus, mem_limit and pids_limit are not all set to a positive value "
			  "(0 and -1 mean unlimited)",
			  name);
		bad[4] = 1;
	}
	user_row(ctx, name, svc, api, bad);
}
