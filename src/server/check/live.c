/*
 * live.c — `check --live` on the host itself: listening sockets (N1), the
 * SSH server's effective settings (N6), the firewall (N7) and the
 * certificate served on 443 (N10).
 *
 * With BREEZE_ENV=test only, BREEZE_TEST_CHECK_HOST_DIR names a directory
 * standing in for the host: proc-net/{tcp,tcp6,udp,udp6}, sshd-T and
 * nft-ruleset files are read instead of /proc/net and the output of
 * `sshd -T` and `nft list ruleset` (the tests' way to show a good host on
 * a machine that is not one).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "server/check/check_internal.h"

#define CMD_OUT_MAX (256 * 1024)

/* The stand-in host directory, or NULL (see above). */
static const char *host_dir(const struct check_ctx *ctx)
{
	const char *d = getenv("BREEZE_TEST_CHECK_HOST_DIR");

	return d != NULL && *d != '\0' && !strcmp(ctx->env_name, "test") ? d : NULL;
}

/* Reads FILE of the stand-in directory into OUT; -1 if absent. */
static int read_stand_in(const char *dir, const char *file, char *out, size_t outlen)
{
	char path[1024];
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	n = fread(out, 1, outlen - 1, f);
	out[n] = '\0';
	fclose(f);
	return 0;
}

/* Ports allowed to listen beyond loopback (N1). */
static int port_allowed(unsigned port)
{
	return port == 22 || port == 80 || port == 443 || port == 3478;
}

/* One /proc/net/{tcp,udp}[6] table: every non-loopback listener (TCP state
 * 0A, or any bound UDP socket) on a port outside the allowed ones. */
static void sockets(struct check_ctx *ctx, const char *table, int v6, int udp, int *bad)
{
	char path[1024], line[512];
	const char *dir = host_dir(ctx);
	FILE *f;

	if (dir != NULL)
		snprintf(path, sizeof(path), "%s/proc-net/%s", dir, table);
	else
		snprintf(path, sizeof(path), "/proc/net/%s", table);
	if ((f = fopen(path, "r")) == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL) {
		char local[64];
		unsigned port, state;
		if (sscanf(line, " %*d: %63[0-9A-Fa-f]:%x %*s %x", local, &port, &state) != 3)
			continue;
		if ((!udp && state != 0x0A) || (udp && state != 0x07) || port_allowed(port))
			continue;
		/* the kernel prints the address as 32-bit words in host order */
		int mapped = !strncmp(local, "0000000000000000FFFF0000", 24);
		int lo = v6 ? (!strcmp(local, "00000000000000000000000001000000") ||
			       (mapped && !strncasecmp(local + 30, "7F", 2)))
			    : !strncasecmp(local + 6, "7F", 2);
		if (lo)
			continue;
		check_add(&ctx->rep, "N1", CHECK_FAIL, "%s port %u listens beyond loopback (%s)",
			  udp ? "UDP" : "TCP", port, table);
		*bad = 1;
	}
	fclose(f);
}

static void listeners(struct check_ctx *ctx)
{
	int bad = 0;

	sockets(ctx, "tcp", 0, 0, &bad);
	sockets(ctx, "tcp6", 1, 0, &bad);
	sockets(ctx, "udp", 0, 1, &bad);
	sockets(ctx, "udp6", 1, 1, &bad);
	if (!bad)
		check_add(&ctx->rep, "N1", CHECK_PASS,
			  "this host listens beyond loopback only on 22, 80, 443 (and 3478)");
}

/* The value of KEY in `sshd -T` output (lower-case "key value" lines). */
static const char *sshd_value(const char *out, const char *key, char *val, size_t vallen)
{
	size_t n = strlen(key);

	for (const char *l = out; l != NULL && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
		if (!strncmp(l, key, n) && l[n] == ' ') {
			snprintf(val, vallen, "%.*s", (int)strcspn(l + n + 1, "\n"), l + n + 1);
			return val;
		}
	return NULL;
}

static void sshd(struct check_ctx *ctx, char *out)
{
	const char *dir = host_dir(ctx);
	const char *argv[] = {"sshd", "-T", NULL};
	char v1[64], v2[64], v3[64];

	if (dir != NULL ? read_stand_in(dir, "sshd-T", out, CMD_OUT_MAX) != 0
			: check_run(argv, out, CMD_OUT_MAX, 10) != 0) {
		check_add(&ctx->rep, "N6", CHECK_MANUAL,
			  "`sshd -T` could not be run here (no SSH server, or not root): make sure "
			  "PasswordAuthentication and KbdInteractiveAuthentication are no");
		return;
	}
	const char *pw = sshd_value(out, "passwordauthentication", v1, sizeof(v1));
	const char *kbd = sshd_value(out, "kbdinteractiveauthentication", v2, sizeof(v2));
	const char *root = sshd_value(out, "permitrootlogin", v3, sizeof(v3));
	if (pw == NULL || strcmp(pw, "no") != 0 || (kbd != NULL && strcmp(kbd, "no") != 0))
		check_add(&ctx->rep, "N6", CHECK_FAIL,
			  "sshd accepts passwords (passwordauthentication %s, "
			  "kbdinteractiveauthentication %s)",
			  pw ? pw : "?", kbd ? kbd : "?");
	else if (root != NULL && !strcmp(root, "yes"))
		check_add(&ctx->rep, "N6", CHECK_FAIL, "sshd: permitrootlogin yes");
	else
		check_add(&ctx->rep, "N6", CHECK_PASS, "sshd takes keys only (permitrootlogin %s)",
			  root ? root : "?");
}

/* N7: an nftables ruleset with an input chain that drops by default (ufw
 * and iptables-nft both show up there). */
static void firewall(struct check_ctx *ctx, char *out)
{
	const char *dir = host_dir(ctx);
	const char *argv[] = {"nft", "list", "ruleset", NULL};

	if (dir != NULL ? read_stand_in(dir, "nft-ruleset", out, CMD_OUT_MAX) != 0
			: check_run(argv, out, CMD_OUT_MAX, 10) != 0) {
		check_add(&ctx->rep, "N7", CHECK_MANUAL,
			  "`nft list ruleset` could not be run (not root, or no nftables): check "
			  "the firewall by hand (deploy/firewall/)");
		return;
	}
	int input = strstr(out, "hook input") != NULL;
	int drops = strstr(out, "policy drop") != NULL;
	if (input && drops)
		check_add(&ctx->rep, "N7", CHECK_PASS,
			  "an nftables input chain drops what is not allowed");
	else
		check_add(&ctx->rep, "N7", CHECK_FAIL,
			  input ? "the nftables input chain does not drop by default"
				: "no firewall: no nftables input chain (see deploy/firewall/)");
}

/* N10: a TLS handshake with the public name, verified against the system's
 * trust store. */
static void certificate(struct check_ctx *ctx)
{
	char target[300], host[256], port[8] = "443";
	const char *dom = getenv("BREEZE_DOMAIN");

	if (ctx->tls_target != NULL)
		snprintf(target, sizeof(target), "%s", ctx->tls_target);
	else if (dom != NULL && *dom)
		snprintf(target, sizeof(target), "%s:443", dom);
	else {
		check_add(&ctx->rep, "N10", CHECK_MANUAL, "no BREEZE_DOMAIN to connect to");
		return;
	}
	char *colon = strrchr(target, ':');
	snprintf(host, sizeof(host), "%.*s", (int)(colon ? colon - target : (long)strlen(target)),
		 target);
	if (colon)
		snprintf(port, sizeof(port), "%s", colon + 1);

	SSL_CTX *sc = SSL_CTX_new(TLS_client_method());
	BIO *bio = NULL;
	SSL *ssl = NULL;
	if (sc == NULL || SSL_CTX_set_default_verify_paths(sc) != 1)
		goto manual;
	SSL_CTX_set_verify(sc, SSL_VERIFY_NONE, NULL); /* judged below, not refused */
	bio = BIO_new_ssl_connect(sc);
	if (bio == NULL || BIO_get_ssl(bio, &ssl) != 1 || ssl == NULL)
		goto manual;
	char *name = dom != NULL && *dom ? (char *)dom : host; /* OpenSSL's macro takes char * */
	SSL_set_tlsext_host_name(ssl, name);
	SSL_set1_host(ssl, name);
	BIO_set_conn_hostname(bio, host);
	BIO_set_conn_port(bio, port);
	if (BIO_do_connect(bio) != 1 || BIO_do_handshake(bio) != 1) {
		check_add(&ctx->rep, "N10", CHECK_MANUAL,
			  "no TLS handshake with %s: check the certificate from outside", target);
		goto out;
	}
	long v = SSL_get_verify_result(ssl);
	if (v == X509_V_OK)
		check_add(&ctx->rep, "N10", CHECK_PASS,
			  "%s serves a certificate a public trust store accepts", target);
	else
		check_add(&ctx->rep, "N10", CHECK_FAIL, "%s: the certificate is not trusted (%s)",
			  target, X509_verify_cert_error_string(v));
	goto out;
manual:
	check_add(&ctx->rep, "N10", CHECK_MANUAL, "TLS could not be set up here");
out:
	BIO_free_all(bio);
	SSL_CTX_free(sc);
	ERR_clear_error();
}

int check_live_host(struct check_ctx *ctx)
{
	char *out = malloc(CMD_OUT_MAX);

	if (out == NULL)
		return -1;
	listeners(ctx);
	sshd(ctx, out);
	firewall(ctx, out);
	certificate(ctx);
	free(out);
	return 0;
}
