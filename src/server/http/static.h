/*
 * static.h — the web dashboard's static files (docs/dashboard.md): GET/HEAD
 * `/` and every path the API does not route, from WEB_ROOT.
 */
#ifndef BZ_HTTP_STATIC_H
#define BZ_HTTP_STATIC_H

#include <stddef.h>

#include "server/config.h"
#include "server/http/http.h"

/* The Content-Security-Policy of every dashboard page and asset. */
#define HTTP_STATIC_CSP                                                                            \
	"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "          \
	"connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "         \
	"form-action 'self'; require-trusted-types-for 'script'; trusted-types 'none'"

/* GET and HEAD `/`: index.html, or 503 web_not_built. */
extern const struct route static_routes[];
extern const size_t static_routes_count;

/*
 * The dispatcher's step for a request that matched no route: a GET or HEAD
 * outside /api/ is answered from CFG->web_root — a file of assets/ as
 * itself (404 when there is none), any other path with index.html (the
 * single-page app's routes: /mfa/enroll, /devices/…). Only names of
 * [A-Za-z0-9._-] are looked up, one openat(O_NOFOLLOW) per component below
 * the root, so no path leaves it; a path with a percent escape, a
 * backslash, an empty, "." or ".." segment is never looked up (404).
 * Returns 0 when it answered, BZ_ERR_NOT_FOUND to leave RQ to the
 * dispatcher's 404 (API paths, other methods, no built dashboard).
 */
int http_static_fallback(struct request *rq);

/*
 * Logs at serve start whether CFG->web_root holds a built dashboard
 * (index.html): a warning saying how to build it when not. The API works
 * either way. Never fails.
 */
void http_static_check_root(const struct config *cfg);

#endif
