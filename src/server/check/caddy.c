/*
 * caddy.c — the Caddyfile: automatic TLS for a real domain with an ACME
 * e-mail (N8), no internal or self-signed certificates (N10), HSTS (N9),
 * /metrics kept off the public site (M1) and the optional mTLS block for
 * agents (G8). Read as text, comments dropped; `caddy validate` (run by
 * the tests) is what proves the file is well-formed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "server/check/check_internal.h"

#define CADDYFILE_MAX (1 << 20)

/* The file without comments ('#' to the end of a line, outside quotes). */
static char *read_uncommented(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	size_t n = 0;
	int c, quoted = 0, comment = 0;

	if (f == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if ((buf = malloc(CADDYFILE_MAX + 1)) == NULL) {
		fclose(f);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	while ((c = fgetc(f)) != EOF && n < CADDYFILE_MAX) {
		if (c == '\n')
			comment = quoted = 0;
		else if (!comment && c == '"')
			quoted = !quoted;
		else if (!quoted && c == '#')
			comment = 1;
		if (!comment)
			buf[n++] = (char)c;
	}
	buf[n] = '\0';
	fclose(f);
	return buf;
}

/* N9: the HSTS value after "Strict-Transport-Security". */
static void hsts(struct check_ctx *ctx, const char *t)
{
	const char *h = strcasestr(t, "Strict-Transport-Security");
	char line[256];

	if (h == NULL) {
		check_add(&ctx->rep, "N9", CHECK_FAIL,
			  "%s sets no Strict-Transport-Security header", ctx->caddyfile);
		return;
	}
	snprintf(line, sizeof(line), "%.*s", (int)strcspn(h, "\n"), h);
	const char *ma = strcasestr(line, "max-age=");
	long age = ma ? strtol(ma + 8, NULL, 10) : 0;
	if (age >= 31536000 && strcasestr(line, "includeSubDomains") && strcasestr(line, "preload"))
		check_add(&ctx->rep, "N9", CHECK_PASS,
			  "%s sends HSTS max-age=%ld; includeSubDomains; preload (the API sends it "
			  "too)",
			  ctx->caddyfile, age);
	else
		check_add(
			&ctx->rep, "N9", CHECK_FAIL,
			"%s: HSTS needs max-age of at least 31536000, includeSubDomains and preload",
			ctx->caddyfile);
}

int check_caddyfile(struct check_ctx *ctx)
{
	char err[512];
	const char *f = ctx->caddyfile;
	char *t;

	if (f == NULL)
		return 0;
	if ((t = read_uncommented(f, err, sizeof(err))) == NULL) {
		check_add(&ctx->rep, "N8", CHECK_FAIL, "%s", err);
		check_add(&ctx->rep, "N9", CHECK_FAIL, "%s", err);
		return 0;
	}
	ctx->caddy_text = t;
	if (strstr(t, "{$BREEZE_DOMAIN}") == NULL)
		check_add(&ctx->rep, "N8", CHECK_FAIL, "%s has no site for {$BREEZE_DOMAIN}", f);
	else if (strstr(t, "{$ACME_EMAIL}") == NULL)
		check_add(&ctx->rep, "N8", CHECK_FAIL, "%s gives ACME no e-mail ({$ACME_EMAIL})",
			  f);
	else if (strstr(t, "auto_https off") != NULL || strstr(t, "http://{$BREEZE_DOMAIN}"))
		check_add(&ctx->rep, "N8", CHECK_FAIL, "%s turns automatic HTTPS off", f);
	else
		check_add(&ctx->rep, "N8", CHECK_PASS,
			  "%s: automatic TLS for {$BREEZE_DOMAIN} with e-mail {$ACME_EMAIL}", f);
	if (strstr(t, "tls internal") != NULL || strstr(t, "local_certs") != NULL)
		check_add(&ctx->rep, "N10", CHECK_FAIL,
			  "%s uses Caddy's internal (self-signed) certificate authority", f);
	else if (strstr(t, "acme-staging") != NULL)
		check_add(&ctx->rep, "N10", CHECK_FAIL,
			  "%s uses the ACME staging CA (untrusted certificates)", f);
	else
		check_add(&ctx->rep, "N10", CHECK_PASS,
			  "%s issues certificates from a public ACME CA only", f);
	hsts(ctx, t);
	if (strstr(t, "/metrics") == NULL)
		check_add(&ctx->rep, "M1", CHECK_WARN,
			  "%s does not mention /metrics: the proxy may pass it to the public", f);
	else
		check_add(&ctx->rep, "M1", CHECK_PASS, "%s keeps /metrics off the public site", f);
	if (strstr(t, "client_auth") != NULL)
		check_add(&ctx->rep, "G8", CHECK_PASS, "%s requires client certificates (mTLS)", f);
	return 0;
}
