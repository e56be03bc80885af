/*
 * mfa_qr.c — what an authenticator app scans: the otpauth URI (Key Uri
 * Format: otpauth://totp/ISSUER:ACCOUNT?secret=…&issuer=…&algorithm=SHA1
 * &digits=6&period=30) and that URI as a QR code in SVG. libcurl
 * percent-encodes, libqrencode builds the symbol; this file only writes
 * its dark modules out as one SVG path.
 */
#include <curl/curl.h>
#include <qrencode.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/totp.h"
#include "server/auth/mfa.h"

#define QUIET 4 /* modules of quiet zone around the symbol (ISO/IEC 18004 §6.3.8) */

/* STR percent-encoded (every byte but RFC 3986 unreserved ones), malloc'd. */
static char *escape(const char *str)
{
	char *e = curl_easy_escape(NULL, str, (int)strlen(str));
	char *out = e ? strdup(e) : NULL;

	curl_free(e);
	return out;
}

char *auth_mfa_otpauth_uri(const char *email, const char *secret_b32)
{
	char *issuer = escape(MFA_ISSUER), *account = escape(email), *secret = escape(secret_b32);
	char *out = NULL;

	if (issuer != NULL && account != NULL && secret != NULL) {
		size_t cap = 2 * strlen(issuer) + strlen(account) + strlen(secret) + 128;
		if ((out = malloc(cap)) != NULL)
			snprintf(out, cap,
				 "otpauth://totp/%s:%s?secret=%s&issuer=%s&algorithm=SHA1"
				 "&digits=%d&period=%d",
				 issuer, account, secret, issuer, CRYPTO_TOTP_DIGITS,
				 CRYPTO_TOTP_STEP_S);
	}
	free(issuer);
	free(account);
	if (secret != NULL) {
		memset(secret, 0, strlen(secret));
		free(secret);
	}
	return out;
}

/* Appends "M<x> <y>h1v1h-1z" for each dark module of row Y. */
static size_t row_path(const QRcode *q, int y, char *p, size_t cap)
{
	size_t n = 0;

	for (int x = 0; x < q->width; x++) {
		if (!(q->data[y * q->width + x] & 1))
			continue;
		int w = snprintf(p + n, cap - n, "M%d %dh1v1h-1z", x + QUIET, y + QUIET);
		if (w < 0 || (size_t)w >= cap - n)
			return cap; /* cannot happen: cap is sized for every module */
		n += (size_t)w;
	}
	return n;
}

char *auth_mfa_qr_svg(const char *text)
{
	QRcode *q = QRcode_encodeString(text, 0, QR_ECLEVEL_M, QR_MODE_8, 1);
	char *out = NULL;
	size_t cap, n;
	int size, w;

	if (q == NULL)
		return NULL;
	size = q->width + 2 * QUIET;
	/* At most 18 bytes per module ("M177 177h1v1h-1z") plus the frame. */
	cap = (size_t)q->width * (size_t)q->width * 20 + 512;
	if ((out = malloc(cap)) == NULL)
		goto out;
	w = snprintf(out, cap,
		     "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 %d %d\" "
		     "shape-rendering=\"crispEdges\"><rect width=\"%d\" height=\"%d\" "
		     "fill=\"#fff\"/><path fill=\"#000\" d=\"",
		     size, size, size, size);
	n = (size_t)w;
	for (int y = 0; y < q->width && n < cap; y++)
		n += row_path(q, y, out + n, cap - n);
	if (n + 16 > cap) {
		free(out);
		out = NULL;
		goto out;
	}
	snprintf(out + n, cap - n, "\"/></svg>");
out:
	QRcode_free(q);
	return out;
}
