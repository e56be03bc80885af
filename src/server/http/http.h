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
#include <stddef.h>
#include <stdint.h>
#include <ulfius.h>

#include "common/err.h"
#include "common/text.h"
#include "server/audit/audit.h"
#include "server/auth/principal.h"
#include "server/config.h"
#include "server/db/db.h"
#include "server/ratelimit/ratelimit.h"
#include "common/client_ip.h"
#include "server/tenancy/tenancy.h"

struct request;

struct app {
	const struct config *cfg;
	struct db_pool *pool;
	struct _u_instance inst;
	atomic_int in_flight;
	atomic_int draining;
	/* Authenticates a ROUTE_USER request: fills rq->who and rq->scope, or
	 * answers it (401, 503, …) and returns BZ_ERR_RESPONDED. Registered by
	 * main.c; the dispatcher knows no authentication scheme by name. */
	int (*authenticate)(struct request *rq);
	/* The rate limiter (docs/rate-limiting.md), opened by main.c at serve
	 * start; a limited route without one answers 500, never unlimited. */
	struct ratelimit *rl;
};

typedef void (*route_fn)(struct request *rq);

enum route_flags {
	ROUTE_PUBLIC = 0,	  /* no authentication */
	ROUTE_USER = 1 << 0,	  /* JWT access token of a user session */
	ROUTE_JSON_BODY = 1 << 1, /* body must be a JSON object */
	/* A mutating route that writes no audit row by design. Only for
	 * high-rate telemetry (agent heartbeats, ~1/min/device): the changes
	 * worth auditing inside it (source IP change, G7) are audited as
	 * their own events. tests/unit/test_routes.c lists the allowed ones. */
	ROUTE_AUDIT_EXEMPT = 1 << 2,
	/* A create route that honours an Idempotency-Key header
	 * (idempotency.c): its http_db_begin() may answer a retry with the
	 * first answer, and its http_commit() remembers that answer. A public
	 * route must name its caller with http_idem_caller() first. */
	ROUTE_IDEMPOTENT = 1 << 3,
	/* A ROUTE_USER route that needs no permission because it acts only on
	 * the caller's own account (auth/me). Every other ROUTE_USER route
	 * names a permission; one with neither is refused (403), fail closed.
	 * API keys never reach these routes: an account is a person's. */
	ROUTE_SELF_SERVICE = 1 << 4,
	/* A ROUTE_USER route closed to API keys (403 api_key_not_allowed):
	 * what mints identities or credentials (API keys, roles, users). */
	ROUTE_NO_API_KEY = 1 << 5,
	/* Reachable while the caller's role forces MFA and none is enrolled
	 * (checklist A2): every other ROUTE_USER route answers 428
	 * mfa_enrollment_required. Only enrolment, "who am I", logout and
	 * refresh carry it. */
	ROUTE_MFA_EXEMPT = 1 << 6,
	/* A dashboard page (static.c): its query string belongs to the app in
	 * the browser (filters, campaign tags) and the server reads none, so
	 * any parameter is accepted (still valid UTF-8), as on the SPA
	 * fallback's paths. */
	ROUTE_ANY_QUERY = 1 << 7,
	/* Runs on the event loop thread instead of a worker, so it answers
	 * even while every worker waits on the database (/healthz). Only for a
	 * handler that never blocks: no database, Redis or outbound call. */
	ROUTE_INLINE = 1 << 8,
};

/* The Content-Security-Policy of every JSON answer: JSON is never a page
 * (the dashboard's files set their own, static.c). */
#define HTTP_API_CSP "default-src 'none'; frame-ancestors 'none'"

struct route {
	const char *method; /* "GET", "POST", … */
	const char *path;   /* ulfius template: /api/v1/devices/:id */
	route_fn fn;
	unsigned flags;
	/* Required permission (a name of auth/permissions.c's table), or NULL
	 * for public and ROUTE_SELF_SERVICE routes. */
	const char *permission;
	const char *audit_action; /* action audited by a mutating route, or NULL */
	/* The query parameters the route reads (NULL-terminated), or NULL for
	 * none: any other parameter is a 400 naming it, so a misspelt filter
	 * never silently widens a list. */
	const char *const *query;
};

/* The Idempotency-Key state of one request (idempotency.c). */
struct http_idem {
	int has_key;		 /* a valid key was sent to a ROUTE_IDEMPOTENT route */
	int armed;		 /* no answer remembered yet: http_commit() stores one */
	char key[256];		 /* the key, unquoted: 1..255 printable ASCII bytes */
	char caller[96];	 /* "user:<uuid>" or "<kind>:<hmac hex>"; "" = not named */
	char fingerprint[65];	 /* HMAC-SHA-256 hex of method, path and body */
	const char *withhold[4]; /* secret members never stored (http_idem_withhold) */
	size_t n_withhold;
};

/* A unit of work for the HTTP worker pool (workers.c), embedded in its
 * owner's state (the queue never allocates). RUN is called once on a
 * worker thread, or REFUSE instead. */
struct http_job {
	struct http_job *next;
	void (*run)(struct http_job *job);
	/* Called instead of RUN (on the draining thread) for a job still queued
	 * when the drain's cancel phase begins; must not block. */
	void (*refuse)(struct http_job *job);
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
	struct http_idem idem;
	/* Deferred answers (http_defer): the connection and the guard's state
	 * of this request, and the work http_defer_run() queued. */
	struct MHD_Connection *conn;
	void *guard;
	int deferred; /* set on the dispatcher's copy: the handler deferred */
	struct http_job job;
	void (*defer_fn)(struct request *d);
};

/* The request's database connection, taken from the pool on first use and
 * released when the request ends (an open transaction is rolled back).
 * Returns NULL after failing the request with 503 if none is available. */
PGconn *http_db(struct request *rq);

/* http_db() followed by BEGIN: the connection inside a fresh transaction
 * (rolled back by the dispatcher if the handler does not commit), or NULL
 * after failing the request with 503 (no connection) or 500 (BEGIN failed). */
PGconn *http_db_begin(struct request *rq);

/* ---- Deferred answers (server.c) ----
 * Route handlers run on a fixed pool of worker threads while their
 * connection is suspended in libmicrohttpd's event loop. A handler that
 * must wait for something that is not its own work (the heartbeat group
 * commit) defers its answer instead of blocking: it then holds no thread
 * and no pool connection while it waits, and its connection stays
 * suspended until the answer is sent. The drain counts a deferred request
 * as in flight until http_resume(). */

/* Moves RQ (the dispatcher's) to the heap and marks it deferred: the
 * handler must return right after and never touch RQ again; the caller owns
 * the returned request until it passes it to http_resume() or
 * http_defer_run(). RQ's pooled connection is released first (an open
 * transaction rolled back). A deferred answer carries headers and a body,
 * never cookies. Returns the deferred request, or NULL (no memory, or not
 * running under the worker pool: RQ is answered 503; just return). */
struct request *http_defer(struct request *rq);

/* Finishes deferred request D from any thread, exactly once: the answer set
 * on D with http_reply()/http_fail*()/http_set_header() (500 if none) is
 * sent, the request is logged and counted, D is freed. */
void http_resume(struct request *d);

/* Runs FN(D) on a worker thread, for a deferred request whose rest needs
 * blocking work (a transaction, an audit row); FN must end with
 * http_resume(D). While the server stops, D is answered 503 with
 * Retry-After and resumed instead. */
void http_defer_run(struct request *d, void (*fn)(struct request *d));

/* Returns the request's pooled connection early (an open transaction is
 * rolled back), for a handler about to wait on something else. A later
 * http_db() takes a connection again. No-op without one. */
void http_db_release(struct request *rq);

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

/* Maps a bz_err (common/err.h) to its status and code, with MSG as text
 * (ignored for 5xx answers, which say "internal error"). */
void http_fail_err(struct request *rq, int err, const char *msg);

/* Value of path parameter NAME (":name" in the route template), decoded,
 * copied into OUT (OUTLEN bytes). Returns 0, or BZ_ERR_NOT_FOUND if absent
 * or too long. */
int http_path_param(const struct request *rq, const char *name, char *out, size_t outlen);

/* Query-string parameter NAME or NULL. Names that are also path parameters
 * of the route are never read from the query. */
const char *http_query(const struct request *rq, const char *name);

/* Request header NAME (case-insensitive) or NULL. */
const char *http_header(const struct request *rq, const char *name);

/* Adds response header NAME: VALUE. */
void http_set_header(struct request *rq, const char *name, const char *value);

/* 1 if the caller has permission PERM: its role's, or for an API key the
 * key's permissions that its creator's role still holds. */
int http_has_permission(const struct request *rq, const char *perm);

/* ---- Request bodies (body.c) ---- */

/* A string member of a parsed body: PRESENT is 1 when the field was in the
 * body (V is then the value, or NULL for JSON null on BODY_NULLABLE
 * fields). V points into rq->body and lives as long as the request. */
struct body_str {
	int present;
	const char *v;
};
struct body_int {
	int present;
	int64_t v;
};
struct body_bool {
	int present;
	int v;
};
/* BODY_OBJECT / BODY_UUID_ARRAY / BODY_STRING_ARRAY members: V is borrowed
 * from rq->body. */
struct body_json {
	int present;
	json_t *v;
};

enum body_type {
	BODY_STRING,	   /* struct body_str: any string up to MAX bytes, no NUL */
	BODY_TEXT,	   /* struct body_str: a display string (text_check()), MIN..MAX bytes */
	BODY_UUID,	   /* struct body_str: a canonical UUID */
	BODY_ENUM,	   /* struct body_str: one of ALLOWED */
	BODY_INT,	   /* struct body_int: an integer in MIN..MAX */
	BODY_BOOL,	   /* struct body_bool */
	BODY_OBJECT,	   /* struct body_json: any JSON object */
	BODY_UUID_ARRAY,   /* struct body_json: an array of at most MAX UUID strings */
	BODY_STRING_ARRAY, /* struct body_json: an array of at most MAX strings (≤ 64 bytes) */
};

enum body_field_flags {
	BODY_REQUIRED = 1 << 0, /* absent (or null) is a 400 */
	BODY_NULLABLE = 1 << 1, /* JSON null is a value (present, v = NULL) */
};

/* One accepted member of a JSON request body; tables end with BODY_FIELDS_END. */
struct body_field {
	const char *name;
	enum body_type type;
	unsigned flags;
	size_t offset;		    /* offsetof() the member in the output struct */
	int64_t min, max;	    /* BODY_INT range; BODY_TEXT/STRING length in bytes */
	const char *const *allowed; /* BODY_ENUM: NULL-terminated list */
};

#define BODY_FIELD(name, type, flags, st, member, min, max)                                        \
	{                                                                                          \
		name, type, flags, offsetof(st, member), min, max, NULL                            \
	}
#define BODY_ENUM_FIELD(name, flags, st, member, allowed)                                          \
	{                                                                                          \
		name, BODY_ENUM, flags, offsetof(st, member), 0, 0, allowed                        \
	}
/* The end of a struct body_field table. */
#define BODY_FIELDS_END                                                                            \
	{                                                                                          \
		NULL, BODY_STRING, 0, 0, 0, 0, NULL                                                \
	}

/*
 * Parses rq->body (a JSON object, checked by the dispatcher) against FIELDS
 * into OUT (a struct whose members FIELDS locate). Strict: a member that is
 * not in FIELDS, a missing required member, a wrong type, a string that is
 * too long or fails text_check(), or an integer out of range fails the
 * request with 400 validation_error naming the field (also in
 * "error.field"). A route without a body (rq->body NULL) parses as {}.
 * Returns 0 or BZ_ERR_RESPONDED.
 */
int http_body_parse(struct request *rq, const struct body_field *fields, void *out);

/* ---- Ending a mutation ---- */

/* Fills the actor (user, api_key with the key id, or system) and client IP
 * of EV from RQ. */
void http_audit_actor(struct audit_event *ev, const struct request *rq);

/*
 * Ends a mutating handler on C, inside the transaction opened by
 * http_db_begin(). When RC is 0: writes EV (if EV->action is non-NULL; a
 * no-op change writes no row) with the caller as actor, commits, and
 * replies STATUS with BODY. Otherwise — or when the audit write or COMMIT
 * fails — rolls back and answers the error RC explained by WHY (may be
 * NULL). BODY and EV->details are stolen in every case.
 */
void http_commit(struct request *rq, PGconn *c, int rc, const struct bz_errinfo *why,
		 struct audit_event *ev, int status, json_t *body);

/*
 * Ends a mutating handler whose domain call refused with RC but wants the
 * refusal kept: writes EV (a failure event, e.g. a wrong MFA code) with the
 * caller as actor and commits it together with whatever the refusal
 * changed (a failure count), then answers the error RC explained by WHY.
 * If the audit write or COMMIT fails, rolls back and answers that error.
 * EV->details is stolen.
 */
void http_commit_refusal(struct request *rq, PGconn *c, int rc, const struct bz_errinfo *why,
			 struct audit_event *ev);

/* Answers the error RC (a bz_err) with WHY's code, message and field when
 * given (WHY may be NULL). 5xx answers never carry WHY's message. Does
 * nothing for BZ_ERR_RESPONDED. */
void http_fail_why(struct request *rq, int rc, const struct bz_errinfo *why);

/* Reads path parameter NAME as a UUID into OUT[37], canonical (lower
 * case, RFC 4122 §3) whatever case the client sent; answers 404 with
 * NOT_FOUND_MSG (e.g. "device not found") when it is not one. Returns 0 or
 * BZ_ERR_RESPONDED. */
int http_path_uuid(struct request *rq, const char *name, char out[37], const char *not_found_msg);

/* ---- Rate limits (limit.c; docs/rate-limiting.md) ---- */

/* RQ's client address as a rate-limit tag (ratelimit_norm_ip(): IPv4 as
 * is, IPv6 folded to its /64) into OUT (LEN bytes, at least
 * RATELIMIT_IP_LEN + 4); "unknown" if it is no address literal. */
void http_rate_ip(const struct request *rq, char *out, size_t len);

/*
 * One check of the N limiters ITEMS (1..RATELIMIT_MAX_ITEMS) at bz_now_ms()
 * through RQ's app->rl, before any password hash or database write of the
 * route. Sets X-RateLimit-Limit, -Remaining and -Reset (epoch seconds) on
 * the answer either way. Refused: answers 429 rate_limited with
 * Retry-After (whole seconds) and, when REFUSAL is non-NULL (a template
 * naming action, resource and actor; details are filled here), audits the
 * first refusal of the key in its window in its own transaction. Deny
 * mode with Redis down: 503 rate_limit_unavailable with Retry-After: 1.
 * Returns 0 (admitted) or BZ_ERR_RESPONDED.
 */
/*
 * Like http_rate_limit() but silent: counts the N limiters ITEMS and
 * returns 1 when the request is admitted, 0 when it is over a limit or the
 * limiter cannot answer, setting no header and writing no answer. For
 * refusals that must look the same over the limit as under it (a retired
 * agent token is answered like an unknown one) and only decide whether
 * their audit row is written.
 */
int http_rate_admits(struct request *rq, const struct ratelimit_item *items, size_t n);

int http_rate_limit(struct request *rq, const struct ratelimit_item *items, size_t n,
		    const struct audit_event *refusal);

/* ---- Idempotency-Key (idempotency.c) ---- */

/* Dispatcher step for ROUTE_IDEMPOTENT routes: reads the Idempotency-Key
 * header (absent: nothing to do) and answers 400 invalid_idempotency_key
 * when it is not 1..255 printable ASCII bytes (bare, or quoted as a
 * Structured Field string, RFC 8941 §3.3.3, as the IETF draft "The
 * Idempotency-Key HTTP Header Field" writes it). Returns 0 or
 * BZ_ERR_RESPONDED. */
int http_idem_parse(struct request *rq);

/* Names the caller of a public ROUTE_IDEMPOTENT route (no user session) by
 * KIND ("enroll", at most 16 bytes) and CREDENTIAL, a secret only that
 * caller holds (the enrolment key): stored as a keyed hash only. Keys of
 * different callers never meet. Returns 0 or BZ_ERR_CRYPTO. */
int http_idem_caller(struct request *rq, const char *kind, const char *credential);

/* Marks response member NAME (a string literal: at most 4 per request) as a
 * secret shown once: the remembered answer leaves it out, and a retry then
 * gets 409 idempotency_key_secret_withheld with the rest of the answer,
 * never the secret again. */
void http_idem_withhold(struct request *rq, const char *name);

/* Called by http_db_begin() inside the new transaction on C: for a request
 * with a key, takes the key's lock and either answers it from the
 * remembered answer (replay, 409 in progress, 422 reused) or arms
 * http_commit() to remember this one. Returns 0 to run the handler, or
 * BZ_ERR_RESPONDED. */
int http_idem_begin(struct request *rq, PGconn *c);

/* Called by http_commit() before COMMIT: stores STATUS and BODY (secret
 * members removed) when armed. Returns 0 or a negative bz_err. */
int http_idem_store(struct request *rq, PGconn *c, int status, const json_t *body);

/* Starts the HTTP server for APP on the configured address with ROUTES
 * (N entries; the table must outlive the server). APP->authenticate must be
 * set when any route has ROUTE_USER. Returns 0, BZ_ERR_INVALID (bad listen
 * address) or BZ_ERR_IO. */
int http_server_start(struct app *app, const struct route *routes, size_t n);

/* Drains and stops the server: stops accepting, answers with
 * "Connection: close" from then on, closes kept-alive connections between
 * requests, waits for in-flight requests and, shortly before DRAIN_MS
 * milliseconds have passed, cancels the queries they still run (PQcancel).
 * Returns 0 once stopped, or BZ_ERR_UNAVAILABLE when requests are still
 * running at the bound: the server is then left running and the caller
 * must end the process without freeing what those requests use. */
int http_server_stop(struct app *app, int drain_ms);

#endif
