/*
 * cookie.h — reading one cookie from a request's Cookie header.
 */
#ifndef BZ_HTTP_COOKIE_H
#define BZ_HTTP_COOKIE_H

#include <stddef.h>

/*
 * Finds cookie NAME in HEADER, the value of a Cookie request header
 * (RFC 6265 §4.2.1: "name=value" pairs separated by ";" and optional
 * spaces; a value may be wrapped in double quotes, which are removed), and
 * copies its value into OUT (OUTLEN bytes). HEADER may be NULL. A name
 * sent twice is refused rather than guessed at: a cookie tossed in by a
 * sibling subdomain or a wider path must not shadow or be shadowed by the
 * server's own. Returns 0, BZ_ERR_NOT_FOUND (absent), BZ_ERR_CONFLICT
 * (named more than once), BZ_ERR_TOO_LARGE (value of OUTLEN bytes or more)
 * or BZ_ERR_INVALID (its value holds a byte RFC 6265 §4.1.1 does not
 * allow). Pairs without "=" are skipped. OUT is "" unless 0 is returned.
 */
int http_cookie_get(const char *header, const char *name, char *out, size_t outlen);

#endif
