#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "common/metrics.h"
#include "crypto/crypto.h"
#include "server/http/http.h"
#include "server/http/http_internal.h"
#include "server/http/static.h"

#define DB_ACQUIRE_TIMEOUT_MS 5000

/* One entry per registered path: its routes, for 405 and the Allow header. */
struct path_entry {
	struct app *app;
	const char *path;
	char allow[64];
};

static struct path_entry *paths;
static size_t n_paths;
static struct route not_found_route = {"*", "(unmatched)", NULL, ROUTE_PUBLIC, NULL, NULL, NULL};
static struct route not_allowed_route = {"*",  "(method not allowed)",
					 NULL, ROUTE_PUBLIC,
					 NULL, NULL,
					 NULL};

/*
 * The pooled connections requests hold, with what PQcancel() needs to stop
 * their queries at the drain deadline (http_server_stop). One slot per pool
 * connection; a slot is filled by http_db() and emptied by request_free().
 */
struct held_conn {
	PGconn *conn;
	PGcancel *cancel;
};

static struct {
	pthread_mutex_t mu;
	struct held_conn *slots;
	size_t n;
} held = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void held_add(PGconn *c)
{
	PGcancel *k = PQgetCancel(c);

	pthread_mutex_lock(&held.mu);
	for (size_t i = 0; i < held.n; i++)
		if (held.slots[i].conn == NULL) {
			held.slots[i].conn = c;
			held.slots[i].cancel = k;
			k = NULL;
			break;
		}
	pthread_mutex_unlock(&held.mu);
	PQfreeCancel(k); /* no free slot (cannot happen with one per pool connection) */
}

static void held_remove(PGconn *c)
{
	PGcancel *k = NULL;

	pthread_mutex_lock(&held.mu);
	for (size_t i = 0; i < held.n; i++)
		if (held.slots[i].conn == c) {
			k = held.slots[i].cancel;
			held.slots[i].conn = NULL;
			held.slots[i].cancel = NULL;
			break;
		}
	pthread_mutex_unlock(&held.mu);
	PQfreeCancel(k);
}

/* Asks PostgreSQL to cancel whatever runs on every connection a request
 * holds. Returns how many cancel requests were sent. */
static unsigned held_cancel_all(void)
{
	unsigned n = 0;
	char err[256];

	pthread_mutex_lock(&held.mu);
	for (size_t i = 0; i < held.n; i++)
		if (held.slots[i].cancel != NULL &&
		    PQcancel(held.slots[i].cancel, err, sizeof(err)))
			n++;
	pthread_mutex_unlock(&held.mu);
	return n;
}

PGconn *http_db(struct request *rq)
{
	if (rq->db == NULL) {
		rq->db = db_acquire(rq->app->pool, DB_ACQUIRE_TIMEOUT_MS);
		if (rq->db == NULL)
			http_fail(rq, 503, "database_unavailable", "database unavailable");
		else
			held_add(rq->db);
	}
	return rq->db;
}

void http_db_release(struct request *rq)
{
	if (rq->db == NULL)
		return;
	held_remove(rq->db);
	db_release(rq->app->pool, rq->db);
	rq->db = NULL;
}

PGconn *http_db_begin(struct request *rq)
{
	PGconn *c = http_db(rq);

	if (c != NULL && db_begin(c) != 0) {
		http_fail_err(rq, BZ_ERR_DB, NULL);
		return NULL;
	}
	if (c != NULL && http_idem_begin(rq, c) != 0)
		return NULL; /* answered: a replay, or why not */
	return c;
}

/*
 * The libmicrohttpd connection whose request this thread is running, set by
 * guard_access() around ulfius's dispatcher (which runs the route callback,
 * and so dispatch(), synchronously inside that call); NULL elsewhere.
 */
_Thread_local struct MHD_Connection *http_current_conn;

/* Collects the field lines of one header, in the order received. */
struct header_lines {
	const char *name;
	unsigned n;
	size_t len; /* bytes of the combined value, without the NUL */
	char *buf;  /* NULL while counting; else where the values are joined */
};

static void header_lines_add(struct header_lines *h, const char *value)
{
	size_t vl = strlen(value), sep = h->n > 0 ? 2 : 0;

	/* RFC 9110 §5.6.1: empty list elements do not count. */
	if (vl == 0)
		return;
	if (h->buf != NULL) {
		memcpy(h->buf + h->len, ", ", sep);
		memcpy(h->buf + h->len + sep, value, vl);
		h->buf[h->len + sep + vl] = '\0';
	}
	h->len += sep + vl;
	h->n++;
}

static enum MHD_Result header_line_cb(void *cls, enum MHD_ValueKind kind, const char *key,
				      const char *value)
{
	struct header_lines *h = cls;

	(void)kind;
	if (key != NULL && value != NULL && strcasecmp(key, h->name) == 0)
		header_lines_add(h, value);
	return MHD_YES;
}

/* Walks every field line named H->name: from the raw connection when there
 * is one (exact arrival order), else from ulfius's map, which merges only
 * lines whose names are spelled in the same letter case. */
static void header_lines_walk(struct MHD_Connection *conn, const struct _u_map *map,
			      struct header_lines *h)
{
	h->n = 0;
	h->len = 0;
	if (conn != NULL) {
		MHD_get_connection_values(conn, MHD_HEADER_KIND, header_line_cb, h);
		return;
	}
	for (int i = 0; map != NULL && i < map->nb_values; i++)
		if (map->keys[i] != NULL && map->values[i] != NULL &&
		    strcasecmp(map->keys[i], h->name) == 0)
			header_lines_add(h, map->values[i]);
}

/*
 * Every field line of header NAME joined into one comma-separated list in
 * the order received (RFC 9110 §5.3), so a header split over several lines,
 * in any letter case, is read as the whole the sender meant: a client behind
 * a trusted proxy cannot add a second X-Forwarded-For line that a reader of
 * only the first would believe. The joined value is stored in the request's
 * header map (ulfius frees it with the request). NULL if absent or on OOM.
 */
const char *http_header_combined(struct MHD_Connection *conn, struct _u_map *map, const char *name)
{
	struct header_lines h = {.name = name};
	const char *v;

	if (map == NULL)
		return NULL;
	header_lines_walk(conn, map, &h);
	if (h.n == 0)
		return NULL;
	h.buf = malloc(h.len + 1);
	if (h.buf == NULL)
		return NULL;
	h.buf[0] = '\0';
	header_lines_walk(conn, map, &h);
	/* One key for the merged value, so a later call (or the fallback walk
	 * over the map) does not count a line twice. */
	u_map_remove_from_key_case(map, name);
	v = u_map_put(map, name, h.buf) == U_OK ? u_map_get(map, name) : NULL;
	free(h.buf);
	return v;
}

const char *http_header(const struct request *rq, const char *name)
{
	/* ulfius allocated the map; it is const here only through the request. */
	struct _u_map *map = (struct _u_map *)rq->u->map_header;

	return http_header_combined(http_current_conn, map, name);
}

static int is_path_param(const struct request *rq, const char *name)
{
	const char *t = rq->route->path;
	size_t nl = strlen(name);

	while ((t = strchr(t, ':')) != NULL) {
		t++;
		if (strncmp(t, name, nl) == 0 && (t[nl] == '/' || t[nl] == '\0'))
			return 1;
	}
	return 0;
}

const char *http_query(const struct request *rq, const char *name)
{
	if (is_path_param(rq, name))
		return NULL;
	return u_map_get(rq->u->map_url, name);
}

int http_path_param(const struct request *rq, const char *name, char *out, size_t outlen)
{
	const char *t = rq->route->path, *p = rq->u->url_path;
	size_t nl = strlen(name);

	/* Walk template and path segment by segment. */
	while (*t && *p) {
		while (*t == '/')
			t++;
		while (*p == '/')
			p++;
		const char *te = strchr(t, '/'), *pe = strchr(p, '/');
		size_t tl = te ? (size_t)(te - t) : strlen(t);
		size_t pl = pe ? (size_t)(pe - p) : strlen(p);
		if (*t == ':' && tl - 1 == nl && strncmp(t + 1, name, nl) == 0) {
			if (pl == 0 || pl >= outlen)
				return BZ_ERR_NOT_FOUND;
			memcpy(out, p, pl);
			out[pl] = '\0';
			return 0;
		}
		t += tl;
		p += pl;
	}
	return BZ_ERR_NOT_FOUND;
}

int http_has_permission(const struct request *rq, const char *perm)
{
	return principal_has_permission(&rq->who, perm);
}

static int content_type_is_json(const char *ct)
{
	static const char want[] = "application/json";

	if (ct == NULL)
		return 0;
	while (*ct == ' ')
		ct++;
	if (strncasecmp(ct, want, sizeof(want) - 1) != 0)
		return 0;
	ct += sizeof(want) - 1;
	while (*ct == ' ')
		ct++;
	if (*ct == '\0')
		return 1;
	if (*ct != ';')
		return 0;
	/* RFC 8259 §8.1: JSON is UTF-8; any other declared charset is refused. */
	const char *cs = strcasestr(ct, "charset=");
	if (cs == NULL)
		return 1;
	cs += 8;
	if (*cs == '"')
		cs++;
	return strncasecmp(cs, "utf-8", 5) == 0 &&
	       (cs[5] == '\0' || cs[5] == '"' || cs[5] == ';' || cs[5] == ' ');
}

static int utf8_ok(const char *s)
{
	return text_utf8_valid(s, strlen(s));
}

/* 1 if NAME is one of ROUTE's query parameters (struct route.query). */
static int query_known(const struct route *route, const char *name)
{
	for (size_t i = 0; route->query != NULL && route->query[i] != NULL; i++)
		if (!strcmp(route->query[i], name))
			return 1;
	return 0;
}

/* Query parameters must be valid UTF-8 (ulfius's own check would drop a bad
 * value silently, turning a filter into no filter) and known to the route
 * (a misspelt filter is no filter either). Returns 0 or fails the request
 * with 400 naming the parameter. */

static int check_query(struct request *rq)
{
	const char **keys = u_map_enum_keys(rq->u->map_url);

	for (size_t i = 0; keys != NULL && keys[i] != NULL; i++) {
		const char *v = u_map_get(rq->u->map_url, keys[i]);
		if (!utf8_ok(keys[i]) || (v != NULL && !utf8_ok(v))) {
			char name[64];
			snprintf(name, sizeof(name), "%s", utf8_ok(keys[i]) ? keys[i] : "?");
			http_fail(rq, 400, "validation_error", "parameter '%s' must be valid UTF-8",
				  name);
			return BZ_ERR_RESPONDED;
		}
		/* ulfius keeps path parameters in the same map. */
		if (!is_path_param(rq, keys[i]) && !(rq->route->flags & ROUTE_ANY_QUERY) &&
		    !query_known(rq->route, keys[i])) {
			http_fail(rq, 400, "validation_error",
				  "parameter '%.64s' is not a known parameter of this route",
				  keys[i]);
			return BZ_ERR_RESPONDED;
		}
	}
	return 0;
}

static int method_has_body(const char *m)
{
	return !strcmp(m, "POST") || !strcmp(m, "PUT") || !strcmp(m, "PATCH");
}

/* Body checks shared by every route: size (413), then for JSON routes the
 * content type (415) and syntax (400). Returns 0 to continue. */
static int check_body(struct request *rq)
{
	const struct config *cfg = rq->app->cfg;
	const char *cl = http_header(rq, "Content-Length");

	if (cl != NULL) {
		char *end;
		unsigned long long n = strtoull(cl, &end, 10);
		if (end == cl || *end != '\0') {
			http_fail(rq, 400, "invalid_request", "invalid Content-Length");
			return BZ_ERR_RESPONDED;
		}
		if (n > cfg->http_max_body_bytes) {
			http_fail(rq, 413, "payload_too_large", "request body exceeds %zu bytes",
				  cfg->http_max_body_bytes);
			return BZ_ERR_RESPONDED;
		}
	}
	/* ulfius keeps at most max+1 bytes; more than max means truncated. */
	if (rq->u->binary_body_length > cfg->http_max_body_bytes) {
		http_fail(rq, 413, "payload_too_large", "request body exceeds %zu bytes",
			  cfg->http_max_body_bytes);
		return BZ_ERR_RESPONDED;
	}
	if (!method_has_body(rq->u->http_verb))
		return 0;
	/* A POST/PUT/PATCH route without a body (e.g. decommission) takes
	 * nothing, or an empty JSON object, which some clients always send. */
	int json_route = (rq->route->flags & ROUTE_JSON_BODY) != 0;
	if (!json_route && rq->u->binary_body_length == 0)
		return 0;
	if (!content_type_is_json(http_header(rq, "Content-Type"))) {
		http_fail(rq, 415, "unsupported_media_type",
			  "Content-Type must be application/json");
		return BZ_ERR_RESPONDED;
	}
	json_error_t jerr;
	rq->body = json_loadb(rq->u->binary_body, rq->u->binary_body_length, JSON_REJECT_DUPLICATES,
			      &jerr);
	if (rq->body == NULL) {
		/* Two members of one name: which one counts would depend on the
		 * parser, so neither does (RFC 8259 §4 leaves it open). */
		if (json_error_code(&jerr) == json_error_duplicate_key)
			http_fail(rq, 400, "invalid_json",
				  "duplicate member name in a JSON object at line %d column %d",
				  jerr.line, jerr.column);
		else
			http_fail(rq, 400, "invalid_json", "malformed JSON at line %d column %d",
				  jerr.line, jerr.column);
		return BZ_ERR_RESPONDED;
	}
	if (!json_is_object(rq->body)) {
		http_fail(rq, 400, "invalid_json", "request body must be a JSON object");
		return BZ_ERR_RESPONDED;
	}
	if (!json_route) {
		static const struct body_field none[] = {BODY_FIELDS_END};
		return http_body_parse(rq, none, NULL); /* names the first member */
	}
	return 0;
}

/* Draining: the client is told not to send another request on this
 * connection (RFC 9112 §9.6), and MHD closes it after the response. Called
 * when a request starts and again when it ends, for requests that were
 * running when the drain began. */
static void drain_close(struct request *rq)
{
	if (atomic_load(&rq->app->draining))
		http_set_header(rq, "Connection", "close");
}

static void set_common_headers(struct request *rq)
{
	http_set_header(rq, "X-Request-Id", rq->request_id);
	http_set_header(rq, "Content-Type", "application/json");
	http_set_header(rq, "Cache-Control", "no-store");
	http_set_header(rq, "X-Content-Type-Options", "nosniff");
	http_set_header(rq, "Content-Security-Policy", HTTP_API_CSP);
	/* N9: the API sends HSTS itself too, in case the proxy forgets. */
	http_set_header(rq, "Strict-Transport-Security",
			"max-age=31536000; includeSubDomains; preload");
	drain_close(rq);
}

/* The request's line in the metrics registry: its route TEMPLATE (never the
 * path: no ids in labels), method, status class and duration. */
static void observe_request(const struct request *rq)
{
	metrics_http_observe(rq->u->http_verb, rq->route->path, rq->status,
			     (bz_monotonic_ms() - rq->start_ms) * 1000);
}

static void log_request(struct request *rq)
{
	json_t *f = json_pack("{s:s,s:s,s:s,s:i,s:I,s:s}", "requestId", rq->request_id, "method",
			      rq->u->http_verb ? rq->u->http_verb : "", "route", rq->route->path,
			      "status", rq->status, "durationMs",
			      (json_int_t)(bz_monotonic_ms() - rq->start_ms), "clientIp",
			      rq->client_ip);
	if (rq->who.authenticated)
		json_object_set_new(f, "userId", json_string(rq->who.user_id));
	log_json(rq->status >= 500 ? LOG_LEVEL_ERROR : LOG_LEVEL_INFO, "http.request", f);
	json_decref(f);
}

static void request_free(struct request *rq)
{
	if (rq->db != NULL) {
		held_remove(rq->db);
		db_release(rq->app->pool, rq->db);
	}
	json_decref(rq->body);
	principal_free(&rq->who);
	tenancy_scope_free(&rq->scope);
}

static int dispatch(const struct _u_request *u, struct _u_response *resp, struct app *app,
		    const struct route *route)
{
	struct request rq;

	memset(&rq, 0, sizeof(rq));
	atomic_fetch_add(&app->in_flight, 1);
	metrics_gauge_add(METRIC_HTTP_IN_FLIGHT, 1);
	rq.app = app;
	rq.route = route;
	rq.u = u;
	rq.resp = resp;
	rq.start_ms = bz_monotonic_ms();
	rq.conn = http_current_conn;
	rq.guard = http_current_guard;
	if (crypto_random_uuid(rq.request_id) != 0)
		snprintf(rq.request_id, sizeof(rq.request_id), "unknown");
	client_ip_resolve(u->client_address, http_header(&rq, "X-Forwarded-For"),
			  &app->cfg->trusted_proxies, rq.client_ip);

	set_common_headers(&rq);

	if (route == &not_found_route) { /* the dashboard's files, or no such route */
		if (http_static_fallback(&rq) != 0)
			http_fail(&rq, 404, "not_found", "no such route");
		goto out;
	}
	if (check_query(&rq) != 0 || check_body(&rq) != 0 || http_idem_parse(&rq) != 0)
		goto out;
	if (route->flags & ROUTE_USER) {
		if (app->authenticate == NULL || app->authenticate(&rq) != 0) {
			if (rq.status == 0)
				http_fail(&rq, 500, "internal", "internal error");
			goto out;
		}
		if (http_admit_user(&rq) != 0)
			goto out;
	}
	route->fn(&rq);
	if (rq.deferred)
		return U_CALLBACK_COMPLETE; /* ulfius's answer is dropped (guard.c) */
	if (rq.status == 0)
		http_fail(&rq, 500, "internal", "internal error");
out:
	http_request_end(&rq);
	return U_CALLBACK_COMPLETE;
}

void http_request_end(struct request *rq)
{
	drain_close(rq);
	log_request(rq);
	observe_request(rq);
	request_free(rq);
	metrics_gauge_add(METRIC_HTTP_IN_FLIGHT, -1);
	atomic_fetch_sub(&rq->app->in_flight, 1);
}

static int route_callback(const struct _u_request *u, struct _u_response *resp, void *data)
{
	const struct route *r = data;
	return dispatch(u, resp, http_current_app, r);
}

struct app *http_current_app;

static int not_found_callback(const struct _u_request *u, struct _u_response *resp, void *data)
{
	(void)data;
	return dispatch(u, resp, http_current_app, &not_found_route);
}

static int not_allowed_callback(const struct _u_request *u, struct _u_response *resp, void *data)
{
	struct path_entry *pe = data;
	struct request rq;

	memset(&rq, 0, sizeof(rq));
	rq.app = pe->app;
	rq.route = &not_allowed_route;
	rq.u = u;
	rq.resp = resp;
	rq.start_ms = bz_monotonic_ms();
	crypto_random_uuid(rq.request_id);
	client_ip_resolve(u->client_address, http_header(&rq, "X-Forwarded-For"),
			  &pe->app->cfg->trusted_proxies, rq.client_ip);
	set_common_headers(&rq);
	http_set_header(&rq, "Allow", pe->allow);
	http_fail(&rq, 405, "method_not_allowed", "method not allowed; allowed: %s", pe->allow);
	log_request(&rq);
	observe_request(&rq);
	return U_CALLBACK_COMPLETE;
}

/* The ROUTE_INLINE routes (at most a few), for the guard. */
#define INLINE_MAX 4
static const struct route *inline_routes[INLINE_MAX];
static size_t n_inline;

int http_route_inline(const char *method, const char *url)
{
	for (size_t i = 0; i < n_inline; i++)
		if (!strcmp(inline_routes[i]->method, method) &&
		    !strcmp(inline_routes[i]->path, url))
			return 1;
	return 0;
}

/* Registers ROUTES (N entries) with ulfius: each route by method, then per
 * path a lower-priority catch-all answering 405 with Allow, and the 404
 * default. Returns 0 or BZ_ERR_NOMEM. */
static int register_routes(struct app *app, const struct route *routes, size_t n)
{
	paths = calloc(n, sizeof(*paths));
	if (paths == NULL)
		return BZ_ERR_NOMEM;
	n_inline = 0;
	for (size_t i = 0; i < n; i++) {
		const struct route *r = &routes[i];
		/* Only fixed paths: the guard compares the path as sent. */
		if ((r->flags & ROUTE_INLINE) && (n_inline == INLINE_MAX || strchr(r->path, ':')))
			return BZ_ERR_INVALID;
		if (r->flags & ROUTE_INLINE)
			inline_routes[n_inline++] = r;
		if (ulfius_add_endpoint_by_val(&app->inst, r->method, NULL, r->path, 0,
					       route_callback, (void *)r) != U_OK)
			return BZ_ERR_NOMEM;
		size_t j;
		for (j = 0; j < n_paths; j++)
			if (!strcmp(paths[j].path, r->path))
				break;
		if (j == n_paths) {
			paths[n_paths].app = app;
			paths[n_paths].path = r->path;
			n_paths++;
		}
		struct path_entry *pe = &paths[j];
		size_t al = strlen(pe->allow);
		snprintf(pe->allow + al, sizeof(pe->allow) - al, "%s%s", al ? ", " : "", r->method);
	}
	/* Lower priority: runs only when no method-specific endpoint matched. */
	for (size_t j = 0; j < n_paths; j++)
		if (ulfius_add_endpoint_by_val(&app->inst, "*", NULL, paths[j].path, 1,
					       not_allowed_callback, &paths[j]) != U_OK)
			return BZ_ERR_NOMEM;
	ulfius_set_default_endpoint(&app->inst, not_found_callback, NULL);
	return 0;
}

/* The sweeper: every SWEEP_MS it applies the header deadline and, while
 * draining, closes kept-alive connections between requests (guard.c). */
#define SWEEP_MS 100
#define SWEEP_LOG_MS 5000

static struct {
	pthread_t thread;
	int running;
	atomic_int stop;
	struct app *app;
	/* The listening socket, for the sweep's "is a client waiting?" while
	 * accept() is stalled; -1 once the drain closes it (under MU). */
	pthread_mutex_t mu;
	int listen_fd;
} sweeper = {.mu = PTHREAD_MUTEX_INITIALIZER, .listen_fd = -1};

/* 1 if a connection waits in the listening socket's queue. */
static int client_waiting(void)
{
	int waiting = 0;

	pthread_mutex_lock(&sweeper.mu);
	if (sweeper.listen_fd >= 0) {
		struct pollfd p = {.fd = sweeper.listen_fd, .events = POLLIN};
		waiting = poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
	}
	pthread_mutex_unlock(&sweeper.mu);
	return waiting;
}

static void *sweeper_main(void *arg)
{
	struct app *app = arg;
	int64_t header_ms = (int64_t)app->cfg->http_header_timeout_s * 1000, last_log = 0;
	int64_t idle_ms = (int64_t)app->cfg->http_timeout_s * 1000;
	unsigned closed = 0;

	while (!atomic_load(&sweeper.stop)) {
		struct timespec ts = {0, SWEEP_MS * 1000000L};
		nanosleep(&ts, NULL);
		closed += http_guard_sweep(header_ms, idle_ms, atomic_load(&app->draining),
					   client_waiting);
		int64_t now = bz_monotonic_ms();
		/* One line per SWEEP_LOG_MS however many slow clients there are. */
		if (closed > 0 && now - last_log >= SWEEP_LOG_MS) {
			char n[16], limit[16];
			snprintf(n, sizeof(n), "%u", closed);
			snprintf(limit, sizeof(limit), "%u", app->cfg->http_header_timeout_s);
			log_warn("http.header_timeout", "closed", n, "limitSeconds", limit, NULL);
			closed = 0;
			last_log = now;
		}
	}
	return NULL;
}

static void sweeper_stop(void)
{
	if (!sweeper.running)
		return;
	atomic_store(&sweeper.stop, 1);
	pthread_join(sweeper.thread, NULL);
	sweeper.running = 0;
}

static void held_free(void)
{
	pthread_mutex_lock(&held.mu);
	for (size_t i = 0; i < held.n; i++)
		PQfreeCancel(held.slots[i].cancel);
	free(held.slots);
	held.slots = NULL;
	held.n = 0;
	pthread_mutex_unlock(&held.mu);
}

/* Starts libmicrohttpd through ulfius on ADDR (which must outlive the
 * server) with the body-size guard in front of ulfius's handler. Returns 0,
 * BZ_ERR_IO (could not listen) or BZ_ERR_INTERNAL (the guard did not go in:
 * the server must not run without it); the reason is logged. */
static int start_mhd(struct app *app, struct sockaddr_in *addr)
{
	const struct config *cfg = app->cfg;

	/* The JSON logger (mhd_log) is not in this array: MHD_start_daemon()
	 * above puts it before the array, as MHD's very first option. The
	 * completion and URI callbacks are ulfius's, wrapped by the body guard. */
	struct MHD_OptionItem ops[] = {
		{MHD_OPTION_SOCK_ADDR, 0, addr},
		{MHD_OPTION_CONNECTION_LIMIT, (intptr_t)cfg->http_max_connections, NULL},
		/* A backstop for stalled bodies and answers: the sweeper closes
		 * idle kept-alive connections at HTTP_TIMEOUT_SECONDS itself,
		 * never one whose next request has begun to arrive. */
		{MHD_OPTION_CONNECTION_TIMEOUT,
		 (intptr_t)(cfg->http_timeout_s + cfg->http_header_timeout_s), NULL},
		{MHD_OPTION_CONNECTION_MEMORY_LIMIT, (intptr_t)(64 * 1024), NULL},
		{MHD_OPTION_PER_IP_CONNECTION_LIMIT, (intptr_t)cfg->http_max_connections_per_ip,
		 NULL},
		{MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)http_guard_completed, NULL},
		{MHD_OPTION_URI_LOG_CALLBACK, (intptr_t)http_guard_uri_log, NULL},
		{MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)http_guard_notify_conn, NULL},
		{MHD_OPTION_END, 0, NULL},
	};
	/* One epoll event loop moves the bytes of every connection; each
	 * request's handler runs on the worker pool (workers.c) while its
	 * connection is suspended, so a handler waiting on PostgreSQL holds up
	 * only its own request, never /healthz or another client's, and a
	 * deferred answer (http_defer) holds no thread at all. Concurrency on
	 * the database is bounded by the pool, whose wait is part of the
	 * request deadline; handlers running at once by HTTP_WORKER_THREADS. */
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
			 MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ITC | MHD_USE_ERROR_LOG;
	char port[8];
	snprintf(port, sizeof(port), "%u", (unsigned)cfg->listen_port);
	http_guard_arm(cfg->http_max_body_bytes);
	int started = ulfius_start_framework_with_mhd_options(&app->inst, flags, ops) == U_OK;
	int logger_first, installed = http_guard_disarm(&logger_first);
	if (!started) {
		log_error("http.start.failed", "listen", cfg->listen_host, "port", port, "reason",
			  "could not start the HTTP server (address in use or not available?)",
			  NULL);
		return BZ_ERR_IO;
	}
	if (!installed) {
		log_error("http.start.failed", "listen", cfg->listen_host, "port", port, "reason",
			  "body-size guard not installed in front of ulfius", NULL);
		ulfius_stop_framework(&app->inst);
		return BZ_ERR_INTERNAL;
	}
	if (!logger_first)
		log_warn(
			"http.mhd.logger", "reason",
			"unexpected MHD options from ulfius; MHD's own messages go to stderr as text",
			NULL);
	return 0;
}

int http_server_start(struct app *app, const struct route *routes, size_t n)
{
	const struct config *cfg = app->cfg;
	static struct sockaddr_in addr;

	http_current_app = app;
	memset(&addr, 0, sizeof(addr));
	addr.sin_family = AF_INET;
	addr.sin_port = htons(cfg->listen_port);
	if (inet_pton(AF_INET, cfg->listen_host, &addr.sin_addr) != 1) {
		log_error("http.listen.invalid", "reason",
			  "LISTEN_ADDR must be an IPv4 address (ulfius keeps only a struct "
			  "sockaddr of the peer, which truncates IPv6 addresses)",
			  NULL);
		return BZ_ERR_INVALID;
	}
	if (ulfius_init_instance(&app->inst, cfg->listen_port, &addr, NULL) != U_OK)
		return BZ_ERR_NOMEM;
	/* Keep max+1 bytes so an oversized body is detected (413), not truncated. */
	app->inst.max_post_body_size = cfg->http_max_body_bytes + 1;
	app->inst.allowed_post_processor = U_POST_PROCESS_NONE;
	/* Validated by the dispatcher instead (check_query), with a 400. */
	app->inst.check_utf8 = 0;

	int rc = register_routes(app, routes, n);
	if (rc != 0)
		goto fail;
	held.slots = calloc(cfg->database_pool_size, sizeof(*held.slots));
	if (held.slots == NULL) {
		rc = BZ_ERR_NOMEM;
		goto fail;
	}
	held.n = cfg->database_pool_size;

	if ((rc = http_workers_start(cfg->http_worker_threads)) != 0) {
		log_error("http.start.failed", "reason", "cannot start the worker threads", NULL);
		goto fail;
	}
	if ((rc = start_mhd(app, &addr)) != 0) {
		http_workers_stop();
		goto fail;
	}
	atomic_store(&sweeper.stop, 0);
	const union MHD_DaemonInfo *di =
		MHD_get_daemon_info(app->inst.mhd_daemon, MHD_DAEMON_INFO_LISTEN_FD);
	sweeper.listen_fd = di != NULL ? di->listen_fd : -1;
	if (pthread_create(&sweeper.thread, NULL, sweeper_main, app) != 0) {
		log_error("http.start.failed", "reason", "cannot start the connection sweeper",
			  NULL);
		ulfius_stop_framework(&app->inst);
		http_workers_stop();
		rc = BZ_ERR_INTERNAL;
		goto fail;
	}
	sweeper.running = 1;
	return 0;
fail:
	/* Nothing is listening: free what was set up, so a refused start is clean. */
	ulfius_clean_instance(&app->inst);
	held_free();
	free(paths);
	paths = NULL;
	n_paths = 0;
	return rc;
}

/* What the drain waits for: requests in a handler, and requests whose
 * connection is suspended (queued, running, deferred, or answered and not
 * yet sent: libmicrohttpd must not stop with a suspended connection). */
static int drain_left(struct app *app)
{
	return atomic_load(&app->in_flight) + (int)http_workers_busy() + (int)http_guard_pending();
}

/* Sleeps until APP has no request in flight or the monotonic clock reaches
 * UNTIL_MS; with CANCEL, every 100 ms meanwhile answers the requests still
 * queued for a worker 503 and cancels running queries.
 * Returns the requests still in flight. */
static int drain_wait(struct app *app, int64_t until_ms, int cancel)
{
	int64_t next_cancel = 0;

	while (drain_left(app) > 0 && bz_monotonic_ms() < until_ms) {
		if (cancel && bz_monotonic_ms() >= next_cancel) {
			/* Requests still queued behind busy workers would only start
			 * queries to be cancelled: they are answered 503 instead. */
			unsigned shed = http_workers_shed();
			unsigned k = held_cancel_all();
			if (next_cancel == 0 || shed > 0) {
				char n[16], q[16];
				snprintf(n, sizeof(n), "%u", k);
				snprintf(q, sizeof(q), "%u", shed);
				log_warn("server.drain.cancel", "queriesCancelled", n,
					 "queuedRefused", q, NULL);
			}
			next_cancel = bz_monotonic_ms() + 100;
		}
		struct timespec ts = {0, 20 * 1000000L};
		nanosleep(&ts, NULL);
	}
	return drain_left(app);
}

int http_server_stop(struct app *app, int drain_ms)
{
	int64_t start = bz_monotonic_ms(), deadline = start + drain_ms;
	/* Queries are cancelled a little before the bound, so that the requests
	 * they held can answer and the server still stops within it. */
	int64_t grace = drain_ms / 5 < 2000 ? drain_ms / 5 : 2000;

	atomic_store(&app->draining, 1);
	/* Stop accepting; in-flight requests keep their connections, idle
	 * kept-alive ones are closed by the sweeper, every response from now on
	 * says Connection: close. */
	if (app->inst.mhd_daemon != NULL) {
		MHD_socket ls = MHD_quiesce_daemon(app->inst.mhd_daemon);
		pthread_mutex_lock(&sweeper.mu);
		sweeper.listen_fd = -1;
		pthread_mutex_unlock(&sweeper.mu);
		if (ls != MHD_INVALID_SOCKET)
			close(ls); /* after quiescing, the listen socket is ours to close */
	}
	if (drain_wait(app, deadline - grace, 0) > 0 && drain_wait(app, deadline, 1) > 0) {
		char n[16];
		snprintf(n, sizeof(n), "%d", atomic_load(&app->in_flight));
		log_error("server.drain.timeout", "inFlight", n, "reason",
			  "requests still running at the drain deadline", NULL);
		return BZ_ERR_UNAVAILABLE;
	}
	sweeper_stop();
	http_workers_stop();
	ulfius_stop_framework(&app->inst);
	ulfius_clean_instance(&app->inst);
	held_free();
	free(paths);
	paths = NULL;
	n_paths = 0;
	return 0;
}
