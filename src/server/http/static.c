/*
 * static.c — the web dashboard's files (docs/dashboard.md). `/` and every
 * GET/HEAD path the API does not route (outside /api/) answer from
 * WEB_ROOT: assets/<name> as itself, anything else with index.html, so a
 * bookmark of /devices/… or a reload of /mfa/enroll loads the app, which
 * then routes in the browser. /api/… keeps the dispatcher's JSON 404.
 *
 * Lookup: the request path is never joined onto the root. Only two shapes
 * are looked up — "index.html" and "assets/<name>" with NAME of
 * [A-Za-z0-9._-], not starting with "." — each component opened with
 * openat(O_NOFOLLOW) from a descriptor of the root, so no "..", no symbolic
 * link below the root and no encoded slash can lead out of it (the decoded
 * path would not even be looked at: a raw path with any percent escape is
 * refused, see http_current_path_escaped). The root itself may be a
 * symbolic link: it is the operator's setting. Files are read per request
 * (a rebuild needs no restart) and must be regular and at most
 * STATIC_MAX_BYTES.
 */
#include "server/http/static.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "server/http/http_internal.h"

#define STATIC_MAX_BYTES (8 * 1024 * 1024)
#define STATIC_NAME_MAX 128

/* The types the dashboard ships, by file extension. */
static const struct {
	const char *ext;
	const char *type;
} types[] = {
	{".html", "text/html; charset=utf-8"},
	{".js", "text/javascript; charset=utf-8"},
	{".css", "text/css; charset=utf-8"},
	{".svg", "image/svg+xml"},
};

static const char *type_of(const char *name)
{
	size_t nl = strlen(name);

	for (size_t i = 0; i < sizeof(types) / sizeof(*types); i++) {
		size_t el = strlen(types[i].ext);
		if (nl > el && strcmp(name + nl - el, types[i].ext) == 0)
			return types[i].type;
	}
	return NULL;
}

/* 1 if NAME is one path component we may look up: 1..STATIC_NAME_MAX bytes
 * of [A-Za-z0-9._-], not starting with "." (no ".", "..", hidden file). */
static int name_ok(const char *name, size_t len)
{
	if (len == 0 || len > STATIC_NAME_MAX || name[0] == '.')
		return 0;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return 0;
	}
	return 1;
}

/* Reads the regular file NAME in directory DFD (no symbolic link followed)
 * into *OUT (malloc'd, *LEN bytes). Returns 0, BZ_ERR_NOT_FOUND (absent,
 * not a regular file, a link), BZ_ERR_IO (also: over STATIC_MAX_BYTES) or
 * BZ_ERR_NOMEM. */
static int read_at(int dfd, const char *name, char **out, size_t *len)
{
	struct stat st;
	char *buf = NULL;
	size_t got = 0;
	int rc = BZ_ERR_NOT_FOUND;
	int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);

	if (fd < 0)
		return errno == ENOENT || errno == ELOOP || errno == ENOTDIR ? BZ_ERR_NOT_FOUND
									     : BZ_ERR_IO;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
		goto out;
	rc = BZ_ERR_IO;
	if (st.st_size > STATIC_MAX_BYTES)
		goto out;
	rc = BZ_ERR_NOMEM;
	if ((buf = malloc((size_t)st.st_size + 1)) == NULL)
		goto out;
	rc = BZ_ERR_IO;
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			goto out;
		got += (size_t)n;
	}
	*out = buf;
	*len = got;
	buf = NULL;
	rc = 0;
out:
	free(buf);
	close(fd);
	return rc;
}

/* Reads DIR/NAME below ROOT (DIR NULL: NAME in the root itself). */
static int read_file(const char *root, const char *dir, const char *name, char **out, size_t *len)
{
	int rfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC), dfd = rfd, rc;

	if (rfd < 0)
		return BZ_ERR_UNAVAILABLE;
	if (dir != NULL)
		dfd = openat(rfd, dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	rc = dfd < 0 ? BZ_ERR_NOT_FOUND : read_at(dfd, name, out, len);
	if (dfd >= 0 && dfd != rfd)
		close(dfd);
	close(rfd);
	return rc;
}

/* Answers 200 with BODY (LEN bytes, freed here) as NAME's type. The page's
 * policy replaces the API's; index.html is revalidated on every load (it
 * names the current assets), hashed assets never change under their name. */
static void send_file(struct request *rq, const char *name, char *body, size_t len, int immutable)
{
	http_set_header(rq, "Content-Type", type_of(name));
	http_set_header(rq, "Cache-Control",
			immutable ? "public, max-age=31536000, immutable" : "no-cache");
	http_set_header(rq, "Content-Security-Policy", HTTP_STATIC_CSP);
	http_set_header(rq, "Referrer-Policy", "no-referrer");
	http_set_header(rq, "Cross-Origin-Opener-Policy", "same-origin");
	http_set_header(rq, "X-Frame-Options", "DENY");
	rq->status = 200;
	ulfius_set_binary_body_response(rq->resp, 200, body, len);
	free(body);
}

/* Answers with index.html. Returns 0, or the read error (nothing sent). */
static int send_index(struct request *rq)
{
	char *body;
	size_t len;
	int rc = read_file(rq->app->cfg->web_root, NULL, "index.html", &body, &len);

	if (rc == 0)
		send_file(rq, "index.html", body, len, 0);
	return rc;
}

static void static_index(struct request *rq)
{
	int rc = send_index(rq);

	if (rc == BZ_ERR_NOT_FOUND || rc == BZ_ERR_UNAVAILABLE)
		http_fail(rq, 503, "web_not_built",
			  "the web dashboard is not built: run `make web` (or point WEB_ROOT at "
			  "a built copy); the API under /api/v1 works without it");
	else if (rc != 0)
		http_fail_err(rq, rc, NULL);
}

/* 1 if PATH (decoded, from "/") may be an app route or asset: no
 * backslash, no empty, "." or ".." segment. */
static int path_plain(const char *path)
{
	if (strchr(path, '\\') != NULL)
		return 0;
	for (const char *p = path; *p == '/';) {
		const char *seg = p + 1;
		size_t len = strcspn(seg, "/");
		if (seg[len] == '/' && len == 0)
			return 0; /* "//" */
		if ((len == 1 && seg[0] == '.') || (len == 2 && seg[0] == '.' && seg[1] == '.'))
			return 0;
		p = seg + len;
	}
	return 1;
}

/* What the request log names an answer of the fallback. */
static const struct route fallback_route = {"GET", "(dashboard)", NULL, ROUTE_PUBLIC,
					    NULL,  NULL,	  NULL};

int http_static_fallback(struct request *rq)
{
	const char *m = rq->u->http_verb, *path = rq->u->url_path;
	static const char assets[] = "/assets/";

	if (path == NULL || (strcmp(m, "GET") != 0 && strcmp(m, "HEAD") != 0))
		return BZ_ERR_NOT_FOUND;
	/* In any letter case: /API/V1/… is no page of the app either, and a
	 * client probing the API's routing should see the API's 404. */
	if (strcasecmp(path, "/api") == 0 || strncasecmp(path, "/api/", 5) == 0)
		return BZ_ERR_NOT_FOUND;
	if (http_current_path_escaped || path[0] != '/' || !path_plain(path))
		return BZ_ERR_NOT_FOUND;
	if (strncmp(path, assets, sizeof(assets) - 1) == 0) {
		const char *name = path + sizeof(assets) - 1;
		char *body;
		size_t len;
		if (!name_ok(name, strlen(name)) || type_of(name) == NULL ||
		    read_file(rq->app->cfg->web_root, "assets", name, &body, &len) != 0)
			return BZ_ERR_NOT_FOUND;
		rq->route = &fallback_route;
		send_file(rq, name, body, len, 1);
		return 0;
	}
	if (send_index(rq) != 0)
		return BZ_ERR_NOT_FOUND;
	rq->route = &fallback_route;
	return 0;
}

void http_static_check_root(const struct config *cfg)
{
	char *body = NULL;
	size_t len = 0;
	int rc = read_file(cfg->web_root, NULL, "index.html", &body, &len);

	free(body);
	if (rc == 0)
		log_info("web.root", "webRoot", cfg->web_root, NULL);
	else
		log_warn("web.not_built", "webRoot", cfg->web_root, "reason",
			 "no index.html there: the dashboard is not served (the API is); build it "
			 "with `make web` or set WEB_ROOT",
			 NULL);
}

const struct route static_routes[] = {
	{"GET", "/", static_index, ROUTE_PUBLIC | ROUTE_ANY_QUERY, NULL, NULL, NULL},
	{"HEAD", "/", static_index, ROUTE_PUBLIC | ROUTE_ANY_QUERY, NULL, NULL, NULL},
};
const size_t static_routes_count = sizeof(static_routes) / sizeof(*static_routes);
