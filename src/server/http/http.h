/*
 * http.h — the request context, route table types and response helpers.
 *
 * Every route goes through one dispatcher (server.c) that assigns the
 * request id, resolves the client IP, enforces the body limit (413), the
 * JSON content type (415) and JSON syntax (400), authenticates, resolves the
 * caller's tenancy scope, checks the route's permission, runs the handler,
 * and writes one JSON log line. Handlers are thin: parse → module call →
 * render with http_reply()/http_fail().
 */
#ifndef BZ_HTTP_H
#define BZ_HTTP_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdint.h>
#include <ulfius.h>

#include "server/config.h"
#include "server/db/db.h"
#include "server/http/client_ip.h"

struct app {
	const struct config *cfg;
	struct db_pool *pool;
	struct _u_instance inst;
	atomic_int in_flight;
	atomic_int draining;
};

/* Who is calling. Filled by the dispatcher for ROUTE_USER routes. */
struct principal {
	int authenticated;
	char user_id[37];
	char session_id[37];
	char partner_id[37]; /* home partner ("" for organization users) */
	char org_id[37];     /* home organization ("" for partner users) */
	char email[256];
	char name[201];
	char role_id[37];
	char role_name[64];
	int force_mfa;
	int mfa_enabled;
	json_t *permissions; /* array of strings; owned by the request */
};

/* The organizations (and optionally sites) the caller may see, resolved once
 * per request by tenancy_resolve(). Every tenant-scoped query binds
 * org_ids_pg (and site_ids_pg when non-NULL) as uuid[] parameters. */
struct tenancy_scope {
	char partner_id[37];
	json_t *org_ids;     /* array of uuid strings; owned */
	char *org_ids_pg;    /* "{uuid,uuid}" Postgres array literal; owned */
	char *site_ids_pg;   /* NULL = every site of those orgs; owned */
	int limited;         /* partner user limited to listed organizations */
};

struct request;
typedef void (*route_fn)(struct request *rq);

enum route_flags {
	ROUTE_PUBLIC = 0,         /* no authentication */
	ROUTE_USER = 1 << 0,      /* JWT access token of a user session */
	ROUTE_JSON_BODY = 1 << 1, /* body must be a JSON object */
	/* A mutating route that writes no audit row by design. Only for
	 * high-rate telemetry (agent heartbeats, ~1/min/device): the changes
	 * worth auditing inside it (source IP change, G7) are audited as
	 * their own events. tests/unit/test_routes.c lists the allowed ones. */
	ROUTE_AUDIT_EXEMPT = 1 << 2,
};

struct route {
	const char *method;       /* "GET", "POST", … */
	const char *path;         /* ulfius template: /api/v1/devices/:id */
	route_fn fn;
	unsigned flags;
	const char *permission;   /* required permission or NULL */
	const char *audit_action; /* action audited by a mutating route, or NULL */
};

struct request {
	struct app *app;
	const struct route *route;
	const struct _u_request *u;
	struct _u_response *resp;
	char request_id[37];
	char client_ip[CLIENT_IP_LEN];
	json_t *body; /* parsed JSON object for ROUTE_JSON_BODY routes; owned */
	struct principal who;
	struct tenancy_scope scope;
	int status;
	int64_t start_ms;
	PGconn *db; /* taken lazily by http_db(), released by the dispatcher */
};

/* The request's database connection, taken from the pool on first use and
 * released when the request ends (an open transaction is rolled back).
 * Returns NULL after failing the request with 503 if none is available. */
PGconn *http_db(struct request *rq);

/* http_db() followed by BEGIN: the connection inside a fresh transaction
 * (rolled back by the dispatcher if the handler does not commit), or NULL
 * after failing the request with 503 (no connection) or 500 (BEGIN failed). */
PGconn *http_db_begin(struct request *rq);

/* Sets the response to STATUS with BODY (reference stolen; NULL = empty). */
void http_reply(struct request *rq, int status, json_t *body);

/* Sets an error response {"error":{"code":CODE,"message":…}} with STATUS.
 * The message is formatted from FMT; it must never contain secrets. */
void http_fail(struct request *rq, int status, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Like http_fail, with EXTRA's members (stolen) merged into the top-level
 * object next to "error" (e.g. {"reason": "expired"}). */
void http_fail_extra(struct request *rq, int status, const char *code, json_t *extra,
		     const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Maps a bz_err (common/err.h) to its status and code, with MSG as text. */
void http_fail_err(struct request *rq, int err, const char *msg);

/* Value of path parameter NAME (":name" in the route template), decoded,
 * copied into OUT (OUTLEN bytes). Returns 0, or -1 if absent/too long. */
int http_path_param(const struct request *rq, const char *name, char *out, size_t outlen);

/* Query-string parameter NAME or NULL. Names that are also path parameters
 * of the route are never read from the query. */
const char *http_query(const struct request *rq, const char *name);

/* Request header NAME (case-insensitive) or NULL. */
const char *http_header(const struct request *rq, const char *name);

/* Adds response header NAME: VALUE. */
void http_set_header(struct request *rq, const char *name, const char *value);

/* 1 if the caller's role has permission PERM. */
int http_has_permission(const struct request *rq, const char *perm);

/* Field readers for JSON bodies. Each returns 0 and stores the value, or
 * fails the request with 400 naming the field and returns -1. A missing
 * optional field leaves *OUT unchanged and returns 0. */
int body_string(struct request *rq, const char *field, int required, size_t maxlen,
		const char **out);
int body_int(struct request *rq, const char *field, int required, json_int_t min, json_int_t max,
	     json_int_t *out);
int body_object(struct request *rq, const char *field, int required, json_t **out);
int body_uuid(struct request *rq, const char *field, int required, const char **out);

/* 1 if S is a canonical lower/upper-case hex UUID (8-4-4-4-12). */
int is_uuid(const char *s);

/* Starts the HTTP server for APP on the configured address with ROUTES
 * (N entries; the table must outlive the server). Returns 0 or -1. */
int http_server_start(struct app *app, const struct route *routes, size_t n);

/* Stops accepting connections, waits up to DRAIN_MS milliseconds for
 * in-flight requests to finish, then stops the server. */
void http_server_stop(struct app *app, int drain_ms);

#endif
