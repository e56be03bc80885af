/*
 * caddy.c — the Caddyfile: automatic TLS for a real domain with an ACME
 * e-mail (N8), no internal or self-signed certificates (N10), HSTS (N9),
 * /metrics kept off the public site (M1) and the optional mTLS block for
 * agents (G8). Read as Caddy's lexer reads it (tokens, quotes with
 * escapes, comments dropped); when a caddy binary is on PATH, N8–N10 and
 * M1 are judged from `caddy adapt`'s JSON too (caddy_json.c), the worse
 * of both counting.
 */
#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "server/check/check_internal.h"

#define CADDYFILE_MAX (1 << 20)
#define QUOTED_SPACE '\x1f'

/* The file as Caddy's lexer sees it: one line per line, its tokens joined
 * by one space, quotes ("…" with \" escapes, `…`) removed (white space
 * inside them becomes QUOTED_SPACE, so a token stays one), comments ('#'
 * at the start of a token, to the end of the line) dropped. NULL with ERR
 * when unreadable, or larger than CADDYFILE_MAX (judged on nothing rather
 * than on a prefix). Caller frees. */
static char *read_tokens(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	size_t n = 0, len = 0;
	int c, quote = 0, comment = 0, in_tok = 0;

	if (f == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if ((buf = malloc(CADDYFILE_MAX + 2)) == NULL) {
		fclose(f);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	while ((c = fgetc(f)) != EOF) {
		if (++len > CADDYFILE_MAX) {
			fclose(f);
			free(buf);
			snprintf(err, errlen, "%s is over %d bytes: too large to judge", path,
				 CADDYFILE_MAX);
			return NULL;
		}
		if (quote == '"' && c == '\\') {
			int d = fgetc(f);
			len++;
			if (d == '"' || d == '\\')
				c = d;
			else if (d != EOF)
				ungetc(d, f), len--;
			buf[n++] = (char)c;
			continue;
		}
		if (quote) {
			if (c == quote)
				quote = 0;
			else
				buf[n++] = c == '\n' || c == ' ' || c == '\t' ? QUOTED_SPACE
									      : (char)c;
			continue;
		}
		if (c == '\n') {
			comment = in_tok = 0;
			buf[n++] = '\n';
		} else if (comment) {
			continue;
		} else if (c == ' ' || c == '\t' || c == '\r') {
			if (in_tok)
				buf[n++] = ' ';
			in_tok = 0;
		} else if (c == '#' && !in_tok) {
			comment = 1;
		} else if ((c == '"' || c == '`') && !in_tok) {
			in_tok = 1; /* a quote opens a token only at its start */
			quote = c;
		} else {
			in_tok = 1;
			buf[n++] = (char)c;
		}
	}
	buf[n] = '\0';
	fclose(f);
	return buf;
}

/* The next token of line text *P (tokens are one-space separated, lines
 * '\n'-ended) into TOK (TOKLEN bytes, truncated); 0 at the end of the
 * line. */
static int next_tok(const char **p, char *tok, size_t toklen)
{
	const char *s = *p;

	while (*s == ' ')
		s++;
	if (*s == '\0' || *s == '\n') {
		*p = s;
		return 0;
	}
	size_t n = strcspn(s, " \n");
	snprintf(tok, toklen, "%.*s", (int)n, s);
	*p = s + n;
	return 1;
}

/* Splits the line starting at L into at most MAX tokens of TOKLEN bytes;
 * returns how many. */
#define TOK_MAX 8
#define TOK_LEN 256
static int line_toks(const char *l, char toks[TOK_MAX][TOK_LEN])
{
	int n = 0;
	char sink[TOK_LEN] = "";

	while (next_tok(&l, n < TOK_MAX ? toks[n] : sink, TOK_LEN))
		n += n < TOK_MAX;
	return n;
}

/* N9: every Strict-Transport-Security value is at least a year with
 * includeSubDomains and preload, none is removed ("-Strict-…"), and there
 * is one. */
static void hsts(struct check_ctx *ctx, const char *t)
{
	char tk[TOK_MAX][TOK_LEN];
	int good = 0, bad = 0;

	for (const char *l = t; *l != '\0'; l += strcspn(l, "\n") + (l[strcspn(l, "\n")] != 0)) {
		int n = line_toks(l, tk);
		for (int i = 0; i < n; i++) {
			const char *h = tk[i][0] == '+' ? tk[i] + 1 : tk[i];
			if (!strcasecmp(h, "-Strict-Transport-Security"))
				bad = 1;
			if (strcasecmp(h, "Strict-Transport-Security") != 0)
				continue;
			const char *v = i + 1 < n ? tk[i + 1] : "";
			const char *ma = strcasestr(v, "max-age=");
			if (ma && strtol(ma + 8, NULL, 10) >= 31536000 &&
			    strcasestr(v, "includeSubDomains") && strcasestr(v, "preload"))
				good++;
			else
				bad = 1;
		}
	}
	if (good && !bad)
		check_add(&ctx->rep, "N9", CHECK_PASS,
			  "%s sends HSTS max-age>=31536000; includeSubDomains; preload (the API "
			  "sends it too)",
			  ctx->caddyfile);
	else if (!good && !bad)
		check_add(&ctx->rep, "N9", CHECK_FAIL,
			  "%s sets no Strict-Transport-Security header", ctx->caddyfile);
	else
		check_add(&ctx->rep, "N9", CHECK_FAIL,
			  "%s: HSTS needs max-age of at least 31536000, includeSubDomains and "
			  "preload, and must not be removed (-Strict-Transport-Security)",
			  ctx->caddyfile);
}

/* N8's text part: a site address for {$BREEZE_DOMAIN} with an http://
 * scheme or a port other than 443, or automatic HTTPS off. NULL if none,
 * else what is wrong. */
static const char *plain_http(const char *t)
{
	if (strstr(t, "auto_https off") != NULL || strstr(t, "auto_https disable_certs") != NULL)
		return "turns automatic HTTPS off";
	for (const char *d = t; (d = strstr(d, "{$BREEZE_DOMAIN}")) != NULL; d++) {
		const char *start = d;
		while (start > t && start[-1] != ' ' && start[-1] != '\n')
			start--;
		if (!strncasecmp(start, "http://", 7))
			return "serves {$BREEZE_DOMAIN} over http://";
		const char *after = d + strlen("{$BREEZE_DOMAIN}");
		if (*after == ':' && strtol(after + 1, NULL, 10) != 443)
			return "gives {$BREEZE_DOMAIN} a port other than 443 (no automatic HTTPS)";
	}
	return NULL;
}

/* N10's text part, on tokens: tls internal, issuer internal, local_certs,
 * a staging CA. NULL if none. */
static const char *self_signed(const char *t)
{
	char tk[TOK_MAX][TOK_LEN];

	if (strstr(t, "acme-staging") != NULL)
		return "uses the ACME staging CA (untrusted certificates)";
	for (const char *l = t; *l != '\0'; l += strcspn(l, "\n") + (l[strcspn(l, "\n")] != 0)) {
		int n = line_toks(l, tk);
		for (int i = 0; i < n; i++)
			if (!strcmp(tk[i], "local_certs") ||
			    ((!strcmp(tk[i], "tls") || !strcmp(tk[i], "issuer")) && i + 1 < n &&
			     !strcmp(tk[i + 1], "internal")))
				return "uses Caddy's internal (self-signed) certificate authority";
	}
	return NULL;
}

/* Does the matcher token M (a path, or @NAME of a path matcher in T)
 * match /metrics? */
static int metrics_matcher(const char *t, const char *m)
{
	char tk[TOK_MAX][TOK_LEN];

	if (m[0] == '/')
		return fnmatch(m, "/metrics", FNM_CASEFOLD) == 0;
	if (m[0] != '@')
		return 0;
	for (const char *l = t; *l != '\0'; l += strcspn(l, "\n") + (l[strcspn(l, "\n")] != 0)) {
		int n = line_toks(l, tk);
		if (n < 3 || strcmp(tk[0], m) != 0 || strcmp(tk[1], "path") != 0)
			continue;
		for (int i = 2; i < n; i++)
			if (fnmatch(tk[i], "/metrics", FNM_CASEFOLD) == 0)
				return 1;
	}
	return 0;
}

/* M1's text part: /metrics is answered by respond 4xx/5xx, abort or error
 * and handed to nothing else (reverse_proxy, file_server, handle, …). */
static void metrics_text(struct check_ctx *ctx, const char *t)
{
	static const char *const pass_on[] = {"reverse_proxy", "file_server", "php_fastcgi",
					      "handle",	       "handle_path", "route",
					      "rewrite",       "uri",	      "try_files",
					      "redir",	       "templates",   "invoke"};
	char tk[TOK_MAX][TOK_LEN];
	int blocked = 0, passed = 0;

	for (const char *l = t; *l != '\0'; l += strcspn(l, "\n") + (l[strcspn(l, "\n")] != 0)) {
		int n = line_toks(l, tk);
		if (n < 2 || !metrics_matcher(t, tk[1]))
			continue;
		if (!strcmp(tk[0], "abort") || !strcmp(tk[0], "error"))
			blocked = 1;
		for (int i = 2; !strcmp(tk[0], "respond") && i < n && i < TOK_MAX; i++)
			blocked |= strlen(tk[i]) == 3 && (tk[i][0] == '4' || tk[i][0] == '5');
		for (size_t k = 0; k < sizeof(pass_on) / sizeof(pass_on[0]); k++)
			passed |= !strcmp(tk[0], pass_on[k]);
	}
	if (blocked && !passed)
		check_add(&ctx->rep, "M1", CHECK_PASS,
			  "%s answers /metrics itself (respond 4xx, abort or error)",
			  ctx->caddyfile);
	else
		check_add(&ctx->rep, "M1", CHECK_WARN, "%s %s: only the bearer token guards it",
			  ctx->caddyfile,
			  passed ? "hands /metrics to a handler (reverse_proxy, handle, …)"
				 : "does not answer /metrics with respond 4xx, abort or error");
}

int check_caddyfile(struct check_ctx *ctx)
{
	char err[512];
	const char *f = ctx->caddyfile, *why;
	char *t;

	if (f == NULL)
		return 0;
	if ((t = read_tokens(f, err, sizeof(err))) == NULL) {
		check_add(&ctx->rep, "N8", CHECK_FAIL, "%s", err);
		check_add(&ctx->rep, "N9", CHECK_FAIL, "%s", err);
		check_add(&ctx->rep, "N10", CHECK_FAIL, "%s", err);
		return 0;
	}
	ctx->caddy_text = t;
	if (strstr(t, "{$BREEZE_DOMAIN}") == NULL)
		check_add(&ctx->rep, "N8", CHECK_FAIL, "%s has no site for {$BREEZE_DOMAIN}", f);
	else if (strstr(t, "{$ACME_EMAIL}") == NULL)
		check_add(&ctx->rep, "N8", CHECK_FAIL, "%s gives ACME no e-mail ({$ACME_EMAIL})",
			  f);
	else if ((why = plain_http(t)) != NULL)
		check_add(&ctx->rep, "N8", CHECK_FAIL, "%s %s", f, why);
	else
		check_add(&ctx->rep, "N8", CHECK_PASS,
			  "%s: automatic TLS for {$BREEZE_DOMAIN} with e-mail {$ACME_EMAIL}", f);
	if ((why = self_signed(t)) != NULL)
		check_add(&ctx->rep, "N10", CHECK_FAIL, "%s %s", f, why);
	else
		check_add(&ctx->rep, "N10", CHECK_PASS,
			  "%s issues certificates from a public ACME CA only", f);
	hsts(ctx, t);
	metrics_text(ctx, t);
	check_caddy_adapt(ctx);
	if (strstr(t, "client_auth") != NULL)
		check_add(&ctx->rep, "G8", CHECK_PASS, "%s requires client certificates (mTLS)", f);
	return 0;
}
